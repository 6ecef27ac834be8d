"""One MuJoCo scene builder for placement and RL: [robot +] table + free objects.

``build_scene(objects, table_point, table_normal, robot_model_dir=..., cfg=...)`` returns a
``Scene`` holding the compiled ``mujoco.MjModel`` and the indices a simulator needs.

- Robot (optional): ``g1_shadow.xml`` of a robot-model build, read with ``mujoco.MjSpec.from_file``
  (fixed pelvis at the origin, facing +y). None: table and objects only (stable placement).
- Table: ``dexman_sim.table`` (a box under the plane, covering the objects, in front of the robot).
- Objects: one free body each, its frame = the object frame (so the free joint's qpos is
  T_world_object), one collision geom per convex part (``dexman_sim.collision``), explicit mass,
  COM and inertia from the mesh (``dexman_sim.mass``), plus an optional non-colliding visual geom
  of the full mesh (geom group 2; collision parts are group 3).
- Friction: the effective pair values of ``dexman_sim.friction`` through geom priorities.
- Physics options (timestep, integrator, solver, cone, gravity) from ``SimConfig``.
- An object whose lowest collision point starts more than ``penetration_tolerance`` below the
  table top is lifted onto it; the lift is reported in ``Scene.warnings`` (never a crash). The
  model's qpos0 holds the (repaired) initial poses, so ``mj_resetData`` restores them.

Errors (``SceneInputError``): an empty or non-finite mesh, a pose that is not a finite rigid
transform, a table normal tilted beyond ``table_max_tilt_deg``, an object standing inside the robot.
"""
from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from . import collision as col
from . import robot as rb
from .config import SimConfig
from .errors import SceneInputError
from .friction import PairFriction, pair_friction
from .mass import MassProperties, mass_properties
from .mesh_repair import repair_mesh
from .table import TableBox, make_table

COLLISION_GROUP = 3
VISUAL_GROUP = 2
ROT_TOL = 1e-4            # |R^T R - I| and |det R - 1| allowed in an input pose


@dataclasses.dataclass
class SceneObjectSpec:
    """One object: its id, mesh (trimesh.Trimesh, object frame, metres), initial T_world_object (4x4),
    and optionally its own convex decomposition (else ``SimConfig.collision`` decides)."""
    id: str
    mesh: Any
    pose: np.ndarray
    collision_parts: Sequence[Any] | None = None


@dataclasses.dataclass
class Scene:
    """A compiled scene and its indices (arrays are per object, in ``object_ids`` order)."""
    model: Any                              # mujoco.MjModel
    config: SimConfig
    object_ids: list[str]
    object_body_ids: np.ndarray             # (O,) int
    object_qpos_adr: np.ndarray             # (O,) int, free-joint qpos start (x y z qw qx qy qz)
    object_qvel_adr: np.ndarray             # (O,) int, free-joint dof start (v world, omega body)
    object_geom_ids: list[np.ndarray]       # collision geoms per object
    object_mass: np.ndarray                 # (O,) kg
    object_com: np.ndarray                  # (O, 3) object frame, m
    object_inertia: np.ndarray              # (O, 3, 3) about the COM, object axes, kg m^2
    collision_vertices: list[np.ndarray]    # (N_i, 3) object frame: all convex-part vertices
    collision_method: list[str]             # 'coacd' | 'hull' | 'given' per object
    initial_poses: np.ndarray               # (O, 4, 4) T_world_object at qpos0 (after any lift)
    table: TableBox
    table_geom_id: int
    friction: PairFriction                  # effective pair values as simulated
    has_robot: bool
    robot_geom_ids: np.ndarray              # all geoms of the robot (empty without robot)
    hand_geom_ids: dict[str, np.ndarray]    # 'left' / 'right' -> geoms of each hand
    warnings: list[str]                     # repairs and fallbacks (mesh, CoACD, lifted objects)
    robot_model_dir: pathlib.Path | None = None

    @property
    def table_top_z(self) -> float:
        return self.table.top_z

    @property
    def n_objects(self) -> int:
        return len(self.object_ids)

    def make_data(self):
        """A fresh ``mujoco.MjData`` at the initial state, forward kinematics done."""
        import mujoco
        d = mujoco.MjData(self.model)
        mujoco.mj_forward(self.model, d)
        return d

    def set_object_pose(self, data, i: int, T: np.ndarray, zero_velocity: bool = True) -> None:
        """Write T_world_object of object i into ``data.qpos`` (and zero its velocity)."""
        T = check_pose(T, self.object_ids[i])
        a = int(self.object_qpos_adr[i])
        data.qpos[a:a + 3] = T[:3, 3]
        data.qpos[a + 3:a + 7] = Rotation.from_matrix(T[:3, :3]).as_quat(scalar_first=True)
        if zero_velocity:
            v = int(self.object_qvel_adr[i])
            data.qvel[v:v + 6] = 0.0

    def object_pose(self, data, i: int) -> np.ndarray:
        """T_world_object of object i from ``data.qpos`` (4x4)."""
        a = int(self.object_qpos_adr[i])
        T = np.eye(4)
        q = np.asarray(data.qpos[a + 3:a + 7], float)
        T[:3, :3] = Rotation.from_quat(q / np.linalg.norm(q), scalar_first=True).as_matrix()
        T[:3, 3] = data.qpos[a:a + 3]
        return T

    def lowest_point(self, i: int, T: np.ndarray) -> float:
        """Lowest world z of object i's collision shape at pose T, m."""
        T = np.asarray(T, float)
        return float(np.min(self.collision_vertices[i] @ T[2, :3] + T[2, 3]))

    def place_on_table(self, i: int, T: np.ndarray) -> np.ndarray:
        """T moved along world z so that object i's lowest collision point lies on the table top."""
        out = check_pose(T, self.object_ids[i]).copy()
        out[2, 3] += self.table.top_z - self.lowest_point(i, out)
        return out


def check_pose(T, name: str = 'object') -> np.ndarray:
    """A finite 4x4 rigid transform (rotation re-orthonormalised), else SceneInputError."""
    A = np.asarray(T, dtype=float)
    if A.shape != (4, 4):
        raise SceneInputError(f'{name}: pose must be a 4x4 matrix, got shape {A.shape}')
    if not np.all(np.isfinite(A)):
        raise SceneInputError(f'{name}: pose is not finite (NaN or inf)')
    R = A[:3, :3]
    if (np.abs(R.T @ R - np.eye(3)).max() > ROT_TOL or abs(np.linalg.det(R) - 1.0) > ROT_TOL
            or np.abs(A[3] - [0, 0, 0, 1]).max() > ROT_TOL):
        raise SceneInputError(f'{name}: pose is not a rigid transform (rotation not orthonormal '
                              'with det +1, or last row not 0 0 0 1)')
    U, _, Vt = np.linalg.svd(R)
    out = np.eye(4)
    out[:3, :3] = U @ Vt
    out[:3, 3] = A[:3, 3]
    return out


@dataclasses.dataclass
class _Prepared:
    spec: SceneObjectSpec
    shape: col.CollisionShape
    props: MassProperties
    visual: Any
    pose: np.ndarray
    warnings: list[str]


def _prepare(o: SceneObjectSpec, cfg: SimConfig) -> _Prepared:
    name = f'object {o.id!r}'
    pose = check_pose(o.pose, name)
    rep = repair_mesh(o.mesh, name)
    shape = (col.given_parts(o.collision_parts, name) if o.collision_parts
             else col.collision_shape(rep.mesh, cfg, name))
    props = mass_properties(rep, cfg.object_density, cfg.object_mass_cap)
    return _Prepared(o, shape, props, rep.mesh, pose, list(rep.warnings) + list(shape.warnings))


def build_scene(objects: Sequence[SceneObjectSpec], table_point, table_normal, *,
                robot_model_dir: str | pathlib.Path | None = None,
                cfg: SimConfig | None = None) -> Scene:
    """Compile [robot +] table + objects (module docstring). ``robot_model_dir`` None: no robot."""
    import mujoco
    cfg = cfg or SimConfig()
    ids = [str(o.id) for o in objects]
    if len(set(ids)) != len(ids):
        raise SceneInputError(f'object ids must be unique, got {ids}')
    prep = [_prepare(o, cfg) for o in objects]
    warnings = [w for p in prep for w in p.warnings]

    footprint = np.concatenate([_world(p.shape.vertices, p.pose)[:, :2] for p in prep]) if prep \
        else np.zeros((0, 2))
    y_min = None
    if robot_model_dir is not None:
        y_min = rb.trunk_max_y(robot_model_dir) + cfg.robot_clearance
    table = make_table(table_point, table_normal, footprint, margin=cfg.table_margin,
                       thickness=cfg.table_thickness, max_tilt_deg=cfg.table_max_tilt_deg, y_min=y_min)

    for p in prep:      # starts inside the table: lift onto the top (reported)
        low = float(np.min(_world(p.shape.vertices, p.pose)[:, 2]))
        if low < table.top_z - cfg.penetration_tolerance:
            p.pose = p.pose.copy()
            p.pose[2, 3] += table.top_z - low
            warnings.append(f'object {p.spec.id!r} started {1000 * (table.top_z - low):.1f} mm inside '
                            f'the table (top z = {table.top_z:.4f} m); lifted onto the table top')

    fr = pair_friction(cfg)
    if robot_model_dir is not None:
        spec = rb.load_robot_spec(robot_model_dir)
        p0 = max([g.priority for g in spec.geoms] + [0])
        for side in rb.SIDES:
            for g in rb.hand_geoms(spec, side):
                g.priority = p0 + 2
                g.friction = [fr.hand_geom, g.friction[1], g.friction[2]]
    else:
        spec = mujoco.MjSpec()
        spec.modelname = 'dexman_scene'
        p0 = 0
    _set_options(spec, cfg)

    tb = spec.worldbody.add_body(name='table', pos=table.center)
    tb.add_geom(name='table', type=mujoco.mjtGeom.mjGEOM_BOX, size=table.size,
                friction=[fr.table_geom, cfg.torsional_friction, cfg.rolling_friction],
                priority=p0 + 1, contype=1, conaffinity=1, condim=3, rgba=[0.55, 0.45, 0.35, 1.0])

    for i, p in enumerate(prep):
        _add_object(spec, i, p, cfg, fr, p0)

    try:
        model = spec.compile()
    except Exception as e:  # noqa: BLE001 - MuJoCo compile errors carry the reason
        raise SceneInputError(f'MuJoCo could not compile the scene: {e}') from e

    body_ids = np.array([model.body(f'object_{i}').id for i in range(len(prep))], int)
    jnt = [model.joint(f'object_{i}').id for i in range(len(prep))]
    geom_ids = [np.array([model.geom(f'object_{i}_part{j}').id for j in range(len(p.shape.parts))], int)
                for i, p in enumerate(prep)]
    if robot_model_dir is not None:
        mine = {int(model.geom('table').id)}.union(*[set(g.tolist()) for g in geom_ids])
        mine |= {g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in set(body_ids.tolist())}
        robot = np.array([g for g in range(model.ngeom) if model.geom_bodyid[g] != 0 and g not in mine], int)
        hands = {}
        for side in rb.SIDES:
            bodies = set(rb.subtree_bodies(model, model.body(rb.palm_body_name(side)).id).tolist())
            hands[side] = np.array([g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in bodies], int)
    else:
        robot = np.zeros(0, int)
        hands = {side: np.zeros(0, int) for side in rb.SIDES}

    O = len(prep)
    return Scene(
        model=model, config=cfg, object_ids=ids, object_body_ids=body_ids,
        object_qpos_adr=np.array([model.jnt_qposadr[j] for j in jnt], int),
        object_qvel_adr=np.array([model.jnt_dofadr[j] for j in jnt], int),
        object_geom_ids=geom_ids,
        object_mass=np.array([p.props.mass for p in prep], float),
        object_com=np.array([p.props.com for p in prep], float).reshape(O, 3),
        object_inertia=np.array([p.props.inertia for p in prep], float).reshape(O, 3, 3),
        collision_vertices=[p.shape.vertices for p in prep],
        collision_method=[p.shape.method for p in prep],
        initial_poses=np.array([p.pose for p in prep], float).reshape(O, 4, 4),
        table=table, table_geom_id=int(model.geom('table').id), friction=fr,
        has_robot=robot_model_dir is not None, robot_geom_ids=robot, hand_geom_ids=hands,
        warnings=warnings,
        robot_model_dir=None if robot_model_dir is None else pathlib.Path(robot_model_dir))


def _world(vertices: np.ndarray, T: np.ndarray) -> np.ndarray:
    return vertices @ T[:3, :3].T + T[:3, 3]


def _set_options(spec, cfg: SimConfig) -> None:
    import mujoco
    o = spec.option
    o.timestep = cfg.timestep
    o.integrator = getattr(mujoco.mjtIntegrator, f'mjINT_{cfg.integrator.upper()}')
    o.solver = getattr(mujoco.mjtSolver, f'mjSOL_{cfg.solver.upper()}')
    o.cone = getattr(mujoco.mjtCone, f'mjCONE_{cfg.cone.upper()}')
    o.iterations = cfg.iterations
    o.ls_iterations = cfg.ls_iterations
    o.gravity = list(cfg.gravity)


def _add_object(spec, i: int, p: _Prepared, cfg: SimConfig, fr: PairFriction, p0: int) -> None:
    import mujoco
    q = Rotation.from_matrix(p.pose[:3, :3]).as_quat(scalar_first=True)
    body = spec.worldbody.add_body(name=f'object_{i}', pos=p.pose[:3, 3], quat=q)
    body.add_freejoint(name=f'object_{i}')
    body.explicitinertial = True
    body.mass = p.props.mass
    body.ipos = p.props.com
    body.fullinertia = p.props.fullinertia()
    for j, part in enumerate(p.shape.parts):
        mname = f'object_{i}_part{j}'
        m = spec.add_mesh(name=mname)
        m.uservert = np.asarray(part.vertices, np.float32).ravel().tolist()
        m.userface = np.asarray(part.faces, np.int32).ravel().tolist()
        m.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_CONVEX
        body.add_geom(name=mname, type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mname,
                      friction=[fr.object_geom, cfg.torsional_friction, cfg.rolling_friction],
                      priority=p0, contype=1, conaffinity=1, condim=3, group=COLLISION_GROUP,
                      rgba=[0.3, 0.6, 0.9, 0.5])
    if cfg.visual_meshes:
        vname = f'object_{i}_visual'
        m = spec.add_mesh(name=vname)
        m.uservert = np.asarray(p.visual.vertices, np.float32).ravel().tolist()
        m.userface = np.asarray(p.visual.faces, np.int32).ravel().tolist()
        m.inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_SHELL
        body.add_geom(name=vname, type=mujoco.mjtGeom.mjGEOM_MESH, meshname=vname,
                      contype=0, conaffinity=0, group=VISUAL_GROUP, rgba=[0.8, 0.5, 0.2, 1.0])
