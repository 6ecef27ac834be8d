"""The residual-control environment on Genesis (optional backend; ``EnvConfig.backend: genesis``). ROS-free.

:class:`GenesisResidualEnv` is a :class:`dexman_rl.core.residual_env.ResidualEnvBase` whose physics
runs in one batched Genesis scene of ``num_envs`` envs on the CPU backend. Everything else
(residual, arm IK, observations, rewards, success, resets) is the base class's; the state is
reported in the layout of the MuJoCo scene of ``dexman_sim.scene.build_scene`` (the kinematic model).

Optional: Genesis is not a project dependency. ``requirements/genesis.txt`` pins ``genesis-world``
and the packages it needs here (installed with ``--no-deps`` so that torch, numpy, pillow and
mujoco are never replaced; README "Simulator backends"). Imported lazily: a missing package raises
:class:`GenesisUnavailable` naming the install step. Written against ``genesis-world`` 1.4.5.

The Genesis scene (``gs.Scene``, ``SimOptions(dt=control_dt, substeps=substeps)``: one
``scene.step()`` per control step = 4 rigid substeps of 1/120 s; gravity, Newton/CG solver,
iterations, friction cone from ``SimConfig``; Genesis's own integrator, approximate implicitfast):

- robot: the build's ``g1_shadow.xml`` through ``gs.morphs.MJCF`` (fixed pelvis), as written by
  :func:`robot_mjcf`: Genesis has no tendons, so each coupled distal joint J0 of the four
  fingers gets a joint equality ``J0 = r J1`` with r read from the model's coupling tendon
  ``T_xxJ1c`` (which MuJoCo keeps within +-1 mm of zero); the hand geoms carry the hand
  friction below. Genesis ignores MJCF ``<pair>`` elements (the thumb-finger contact pairs);
  contype/conaffinity filtering and the armature, damping and friction loss of the joints are
  kept (``default_armature=None``: no armature is added).
- PD position control: each actuated joint gets the MuJoCo actuator's gains, kp = ``gainprm[0]``
  and kv = ``-biasprm[2]``, and its force range (``forcerange`` where ``forcelimited``);
  ``control_dofs_position`` holds ``ctrl`` (MuJoCo actuator order) for the step.
- table: a fixed ``gs.morphs.Box`` with the scene's table extent and height.
- objects: one MJCF entity each (:func:`object_mjcf`): a free body whose frame is the object
  frame, one mesh geom per convex part of ``dexman_sim.collision`` (CoACD, the same cached
  parts the MuJoCo scene uses; ``decimate=False``), explicit mass, COM and inertia from
  ``dexman_sim.mass``.

Friction. Genesis combines two geoms by the MAXIMUM of their coefficients, with no priority
(``collider/contact.py``: ``max(max(f_a, f_b), 1e-2)``), so the effective pair values of
``dexman_sim.friction`` are produced by per-geom values (:func:`genesis_geom_friction`):
hand = hand-object pair, table = object-table pair, object = min(object_friction, object-table
pair). With the paper's values under the default 'average' convention that gives hand-object
2.5 and object-table 0.625 exactly; object-object becomes 0.625 instead of 1.0 and hand-table 2.5
(as in MuJoCo). Under 'max' every pair is exact. The robot's other links keep the MJCF values.

State: ``rigid_solver.get_qpos`` / ``get_dofs_velocity`` / ``get_links_pos`` / ``get_links_quat``
(one call each per step, all entities) mapped by joint and body name into the kinematic model's
``qpos``, ``qvel`` (object free joints: Genesis's dof velocities), ``xpos``, ``xmat``; sites from
the body frames (:func:`dexman_rl.core.residual_env.site_positions`). Instability flag: Genesis's
per-env error code (``get_error_envs_mask``: NaN accelerations or forces, contact buffer
overflow); the base class resets such envs, which clears the code before the next step (Genesis
raises on a set code at the start of a step). Genesis computes in float32 (``PRECISION``), so a
reset reproduces the reference to float32 rounding, not bit for bit. The CPU backend
parallelises over envs itself (``EnvConfig.threads`` is not used). The first ``scene.build``
compiles kernels (minutes); they are cached on disk afterwards.
"""
from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET

import numpy as np

from dexman_common.geometry import matrix_from_quat, quat_from_matrix

from .residual_env import ResidualEnvBase, StateView, site_positions

GENESIS_DIST = 'genesis-world'
GENESIS_VERSION = '1.4.5'
INSTALL_HINT = ('pip install --no-deps -r requirements/genesis.txt (after the project setup; the '
                'README section "Simulator backends" lists the steps)')
PRECISION = '32'
MAX_COLLISION_PAIRS = 300          # Genesis's default (150) is too small for two hands on CoACD parts


class GenesisUnavailable(RuntimeError):
    """Genesis (the optional ``genesis-world`` package) is not installed or cannot be imported."""


def import_genesis():
    """``import genesis`` or :class:`GenesisUnavailable` with the install step."""
    try:
        import genesis
    except Exception as e:  # noqa: BLE001 - ImportError, or a broken install raising anything
        raise GenesisUnavailable(f'the genesis backend needs {GENESIS_DIST}=={GENESIS_VERSION}, which cannot be '
                                 f'imported ({type(e).__name__}: {e}); install it with: {INSTALL_HINT}') from e
    return genesis


@dataclasses.dataclass(frozen=True)
class GeomFriction:
    """Per-geom sliding friction given to Genesis (max rule) for the effective pair values."""
    hand: float
    table: float
    object: float


def genesis_geom_friction(pair) -> GeomFriction:
    """Per-geom values under Genesis's max rule from ``dexman_sim.friction.PairFriction`` (module docstring)."""
    return GeomFriction(hand=float(pair.hand_object), table=float(pair.object_table),
                        object=float(min(pair.object_object, pair.object_table)))


def coupling_ratios(model) -> dict[str, tuple[str, float]]:
    """{J0 joint: (J1 joint, r)} of both hands: the coupling tendon ``T_<F>J1c`` (fixed, two joint
    wraps c0 J0 + c1 J1 kept near 0) gives J0 = r J1 with r = -c1 / c0."""
    import mujoco

    from dexman_description import robot_model as rm
    out = {}
    for side in ('left', 'right'):
        pre = rm.HAND_PREFIX[side]
        for j0 in rm.HAND_COUPLED_JOINTS:
            finger = j0[:2]
            name = f'{pre}T_{finger}J1c'
            try:
                t = model.tendon(name).id
            except KeyError as e:
                raise ValueError(f'robot model: no coupling tendon {name!r} for {pre}{j0}') from e
            adr, num = int(model.tendon_adr[t]), int(model.tendon_num[t])
            wraps = {model.joint(int(model.wrap_objid[w])).name: float(model.wrap_prm[w])
                     for w in range(adr, adr + num) if model.wrap_type[w] == mujoco.mjtWrap.mjWRAP_JOINT}
            a, b = pre + j0, f'{pre}{finger}J1'
            if set(wraps) != {a, b} or wraps[a] == 0.0:
                raise ValueError(f'robot model: tendon {name!r} does not couple {a} and {b} ({wraps})')
            out[a] = (b, -wraps[b] / wraps[a])
    return out


def robot_mjcf(model_dir, model, hand_friction: float) -> str:
    """The build's ``g1_shadow.xml`` for Genesis (module docstring): hand geoms with
    ``hand_friction`` (sliding; torsional and rolling kept), a joint equality per coupled J0."""
    from dexman_description import robot_model as rm
    from dexman_sim import robot as rb
    tree = ET.parse(rb.robot_xml(model_dir))
    root = tree.getroot()
    palms = {rm.HAND_PREFIX[s] + rm.PALM_BODY for s in ('left', 'right')}
    for body in root.iter('body'):
        if body.get('name') in palms:
            for g in body.iter('geom'):
                fr = (g.get('friction') or '1 0.005 0.0001').split()
                g.set('friction', ' '.join([repr(float(hand_friction))] + fr[1:]))
    eq = root.find('equality')
    if eq is None:
        eq = ET.SubElement(root, 'equality')
    for j0, (j1, r) in coupling_ratios(model).items():
        ET.SubElement(eq, 'joint', name=f'{j0}_coupling', joint1=j0, joint2=j1, polycoef=f'0 {r!r} 0 0 0')
    return ET.tostring(root, encoding='unicode')


def object_mjcf(name: str, parts, mass: float, com, inertia, friction: float, torsional: float,
                rolling: float, pose=None) -> str:
    """An MJCF of one free object: body frame = object frame (initially at ``pose`` 4x4, default
    identity), one mesh geom per convex part (trimesh, object frame), explicit mass (kg), COM (3,)
    and inertia (3, 3) about the COM."""
    def num(v):
        return ' '.join(repr(float(x)) for x in np.ravel(v))
    T = np.eye(4) if pose is None else np.asarray(pose, float)
    root = ET.Element('mujoco', model=name)
    ET.SubElement(root, 'compiler', angle='radian')
    asset = ET.SubElement(root, 'asset')
    body = ET.SubElement(ET.SubElement(root, 'worldbody'), 'body', name=name, pos=num(T[:3, 3]),
                         quat=num(quat_from_matrix(T[:3, :3], scalar_first=True)))
    ET.SubElement(body, 'freejoint', name=name)
    I = np.asarray(inertia, float)
    ET.SubElement(body, 'inertial', pos=num(com), mass=repr(float(mass)),
                  fullinertia=num([I[0, 0], I[1, 1], I[2, 2], I[0, 1], I[0, 2], I[1, 2]]))
    for j, p in enumerate(parts):
        mesh = f'{name}_part{j}'
        ET.SubElement(asset, 'mesh', name=mesh, vertex=num(p.vertices),
                      face=' '.join(str(int(i)) for i in np.ravel(p.faces)))
        ET.SubElement(body, 'geom', name=mesh, type='mesh', mesh=mesh, contype='1', conaffinity='1',
                      condim='3', friction=num([friction, torsional, rolling]))
    return ET.tostring(root, encoding='unicode')


class GenesisResidualEnv(ResidualEnvBase):
    """N envs of one batched Genesis scene tracking one reference with residual actions (module docstring).

    Same arguments as :class:`dexman_rl.core.mujoco_env.MujocoResidualEnv`. ``datas[i]`` are
    read-only views of env i's gathered qpos/qvel (``residual_env.StateView``).
    """

    backend_name = 'genesis'

    def __init__(self, *args, **kwargs):
        import_genesis()                   # fail before any scene work when Genesis is missing
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------------ build
    def _init_physics(self) -> None:
        gs = import_genesis()
        if not getattr(gs, '_initialized', False):
            gs.init(backend=gs.cpu, precision=PRECISION, logging_level='warning')
        from dexman_sim import collision as col
        from dexman_sim.mesh_repair import repair_mesh

        m, sc, cfg = self.model, self.scene, self.sim_cfg
        fr = genesis_geom_friction(sc.friction)
        self.geom_friction = fr
        scene = gs.Scene(
            show_viewer=False,
            sim_options=gs.options.SimOptions(dt=cfg.control_dt, substeps=cfg.substeps, gravity=tuple(cfg.gravity)),
            rigid_options=gs.options.RigidOptions(
                constraint_solver=gs.constraint_solver.CG if cfg.solver == 'CG' else gs.constraint_solver.Newton,
                iterations=cfg.iterations, ls_iterations=cfg.ls_iterations,
                friction_cone=getattr(gs.friction_cone, cfg.cone), max_collision_pairs=MAX_COLLISION_PAIRS),
        )
        self.robot = scene.add_entity(
            gs.morphs.MJCF(file=robot_mjcf(self.robot_model_dir, m, fr.hand), default_armature=None,
                           visualization=False))
        tb = sc.table
        scene.add_entity(gs.morphs.Box(lower=tuple(tb.center - tb.size), upper=tuple(tb.center + tb.size),
                                       fixed=True, visualization=False),
                         material=gs.materials.Rigid(friction=max(fr.table, 0.01)))
        self.objects = []
        for k, oid in enumerate(sc.object_ids):
            parts = col.collision_shape(repair_mesh(self.ref.meshes[oid], f'object {oid!r}').mesh, cfg).parts
            xml = object_mjcf(f'object_{k}', parts, sc.object_mass[k], sc.object_com[k], sc.object_inertia[k],
                              fr.object, cfg.torsional_friction, cfg.rolling_friction, sc.initial_poses[k])
            # align=False keeps the body frame = object frame (Genesis would move a free body's origin to its COM)
            self.objects.append(scene.add_entity(gs.morphs.MJCF(file=xml, default_armature=None, align=False,
                                                                convexify=True, decimate=False, visualization=False)))
        scene.build(n_envs=self.num_envs)
        self.gs_scene = scene
        self.solver = scene.sim.rigid_solver
        self._index_maps()
        self._set_gains()
        self.datas = [StateView(self, i) for i in range(self.num_envs)]
        self._gather()

    def _index_maps(self) -> None:
        """Genesis qs / dofs / links of every kinematic-model joint and moving body."""
        import mujoco
        m, robot = self.model, self.robot
        q_gs, q_mj, d_gs, d_mj = [], [], [], []
        for j in range(m.njnt):
            if m.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
                continue
            jg = robot.get_joint(m.joint(j).name)
            q_gs.append(int(np.ravel(jg.qs_idx)[0]))
            d_gs.append(int(np.ravel(jg.dofs_idx)[0]))
            q_mj.append(int(m.jnt_qposadr[j]))
            d_mj.append(int(m.jnt_dofadr[j]))
        for k, ent in enumerate(self.objects):
            qa, da = int(self.scene.object_qpos_adr[k]), int(self.scene.object_qvel_adr[k])
            q_gs += list(range(ent.q_start, ent.q_start + 7))
            q_mj += list(range(qa, qa + 7))
            d_gs += list(range(ent.dof_start, ent.dof_start + 6))
            d_mj += list(range(da, da + 6))
        if (len(q_mj), len(d_mj)) != (m.nq, m.nv) or (len(q_gs), len(d_gs)) != (self.solver.n_qs, self.solver.n_dofs):
            raise RuntimeError(f'genesis scene: mapped {len(q_mj)}/{m.nq} qpos, {len(d_mj)}/{m.nv} dofs of the '
                               f'kinematic model onto {self.solver.n_qs} Genesis qs, {self.solver.n_dofs} dofs')
        self._q_gs, self._q_mj = np.array(q_gs), np.array(q_mj)
        self._d_gs, self._d_mj = np.array(d_gs), np.array(d_mj)
        b_gs, b_mj = [], []
        names = {ln.name: ln.idx for ln in robot.links}
        for b in range(1, m.nbody):
            nm = m.body(b).name
            if nm in names:
                b_gs.append(names[nm])
                b_mj.append(b)
        for k, ent in enumerate(self.objects):
            b_gs.append(ent.base_link.idx)
            b_mj.append(int(self.scene.object_body_ids[k]))
        needed = (set(self.palm_ids.tolist()) | set(self.keypoints.frame_body.ravel().tolist())
                  | set(np.asarray(m.site_bodyid).tolist())) - {0, int(m.body('table').id)}
        missing = sorted(m.body(b).name for b in needed - set(b_mj))
        if missing:
            raise RuntimeError(f'genesis scene: bodies {missing} have no Genesis link')
        self._b_gs, self._b_mj = np.array(b_gs), np.array(b_mj)
        # actuators -> Genesis dofs
        self._act_dofs = np.array([int(np.ravel(robot.get_joint(m.joint(int(m.actuator_trnid[a, 0])).name).dofs_idx)[0])
                                   for a in range(m.nu)])
        # fixed bodies (world, table) keep their kinematic-model pose
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        self.xpos[:] = d.xpos
        self.xmat[:] = d.xmat

    def _set_gains(self) -> None:
        m = self.model
        kp = m.actuator_gainprm[:, 0].copy()
        kv = -m.actuator_biasprm[:, 2].copy()
        lim = m.actuator_forcelimited.astype(bool)
        lo = np.where(lim, m.actuator_forcerange[:, 0], -np.inf)
        hi = np.where(lim, m.actuator_forcerange[:, 1], np.inf)
        self.solver.set_dofs_kp(kp, self._act_dofs)
        self.solver.set_dofs_kv(kv, self._act_dofs)
        self.solver.set_dofs_force_range(lo, hi, self._act_dofs)

    # ------------------------------------------------------------------ state
    def _gather(self) -> None:
        s = self.solver
        q = s.get_qpos().cpu().numpy()
        v = s.get_dofs_velocity().cpu().numpy()
        pos = s.get_links_pos().cpu().numpy()
        quat = s.get_links_quat().cpu().numpy()
        self.qpos[:, self._q_mj] = q[:, self._q_gs]
        self.qvel[:, self._d_mj] = v[:, self._d_gs]
        self.xpos[:, self._b_mj] = pos[:, self._b_gs]
        R = matrix_from_quat(quat[:, self._b_gs].reshape(-1, 4).astype(float), scalar_first=True)
        self.xmat[:, self._b_mj] = R.reshape(self.num_envs, len(self._b_gs), 9)
        self.site_xpos[:] = site_positions(self.model, self.xpos, self.xmat)

    def _write_state(self, idx: np.ndarray, qpos: np.ndarray, ctrl: np.ndarray) -> None:
        if len(idx) == 0:
            return
        import torch
        s = self.solver
        envs = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        q = np.zeros((len(idx), s.n_qs))
        q[:, self._q_gs] = qpos[:, self._q_mj]
        s.set_qpos(torch.as_tensor(q, dtype=torch.float32), envs_idx=envs)
        s.set_dofs_velocity(torch.zeros((len(idx), s.n_dofs)), envs_idx=envs)
        s.control_dofs_position(torch.as_tensor(ctrl, dtype=torch.float32), self._act_dofs, envs_idx=envs)
        self._gather()
        self.bad_acc[idx] = False

    def _physics(self, ctrl: np.ndarray) -> None:
        import torch
        self.solver.control_dofs_position(torch.as_tensor(ctrl, dtype=torch.float32), self._act_dofs)
        self.gs_scene.step()
        self.bad_acc[:] = self.solver.get_error_envs_mask().cpu().numpy().reshape(-1)
        self._gather()

    def _close_physics(self) -> None:
        scene = getattr(self, 'gs_scene', None)
        if scene is not None:
            try:
                scene.destroy()
            except Exception:  # noqa: BLE001 - best effort; Genesis versions differ here
                pass
            self.gs_scene = None
