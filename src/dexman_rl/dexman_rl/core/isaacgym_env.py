"""The residual-control environment on Isaac Gym Preview 4 (``EnvConfig.backend: isaacgym``). UNTESTED.

Status: written against the Isaac Gym Preview 4 Python API (``isaacgym.gymapi``, ``gymtorch``) as
documented and as used by public Preview 4 task code; Isaac Gym cannot be installed in the
project's environment (NVIDIA download, Python <= 3.8, CUDA GPU), so this backend has NEVER RUN.
Only its pure helpers and its "not installed" error are tested. Expect to debug it on a machine
with Isaac Gym before trusting any number from it.

:class:`IsaacGymResidualEnv` is a :class:`dexman_rl.core.residual_env.ResidualEnvBase`: physics
in one PhysX sim of ``num_envs`` envs, state reported in the layout of the MuJoCo kinematic model.
Isaac Gym must be imported before torch in the process (its own rule); :func:`import_isaacgym`
says so when it fails for that reason.

Simulation (paper Table 5 as Isaac Gym parameters): ``SimParams.dt = control_dt`` (1/30 s) with
``substeps = SimConfig.substeps`` (4), i.e. PhysX steps of 1/120 s and one ``gym.simulate`` per
control step; z up, gravity from ``SimConfig``; PhysX TGS solver; ``sim_device='cpu'`` (default)
or ``'cuda:K'`` (GPU PhysX with the GPU tensor pipeline; tensors are copied to numpy each step).

Assets (one env = robot + table + objects, in its own collision group):

- robot: the build's ``g1_shadow.urdf`` (same link names and frames as the MJCF bodies),
  ``AssetOptions``: ``fix_base_link``, ``collapse_fixed_joints=False`` (the palms and other
  fixed links stay bodies), ``default_dof_drive_mode = DOF_MODE_POS``, ``vhacd_enabled`` (PhysX
  collides through convex shapes; VHACD decomposes the link meshes). The robot actor's collision
  filter is 1: no self-collision (the MuJoCo model disables hand-hand contacts too).
- DOF drives: each actuated joint gets the MuJoCo actuator's kp (``stiffness``) and kv
  (``damping``) and its force range (``effort``); joint armature and friction loss as in the
  MJCF. URDF has no tendons: each coupled distal joint J0 is position-driven too, with the
  target r * (target of its J1), r from the coupling tendon
  (:func:`dexman_rl.core.genesis_env.coupling_ratios`), and the J1 actuator's gains.
- table: ``gym.create_box`` with the scene's table extent, ``fix_base_link``.
- objects: a URDF per object (:func:`object_urdf`) with one collision mesh per convex part of
  ``dexman_sim.collision`` (OBJ files; no VHACD: the parts are convex already) and the explicit
  mass, COM and inertia of ``dexman_sim.mass``.

Friction: PhysX combines two shapes by the AVERAGE of their coefficients (its default combine
mode), so per-shape values are set (:func:`physx_shape_friction`) such that the averages are the
effective pair values of ``dexman_sim.friction``: object = object-object value, table =
2 x object-table - object, hand = 2 x hand-object - object. Under the default 'average'
convention these are exactly Table 5's per-body values (hand 4.0, object 1.0, table 0.25).

State: ``acquire_dof_state_tensor`` (robot joint positions and velocities),
``acquire_actor_root_state_tensor`` (objects: position, quaternion xyzw -> wxyz, linear and
angular velocity in the world frame, the latter rotated into the body frame as MuJoCo's free
joint has it), ``acquire_rigid_body_state_tensor`` (body frames of the robot links and objects).
Every env is created with a zero extent, so all envs share the sim's origin and env and sim
coordinates coincide (no env-origin offsets to get wrong); each env's actors are in their own
collision group, so the overlapping envs never touch. Resets write the
DOF state, the object root states and the DOF position targets through the ``*_indexed`` setters.
Instability: Isaac Gym has no per-env error flag; the base class catches non-finite or too fast
states.
"""
from __future__ import annotations

import dataclasses
import pathlib
import tempfile
import xml.etree.ElementTree as ET

import numpy as np

from dexman_common.geometry import matrix_from_quat

from .residual_env import ResidualEnvBase, StateView, site_positions

INSTALL_HINT = ('Isaac Gym Preview 4 is not on PyPI: download it from NVIDIA (developer.nvidia.com/isaac-gym), '
                'then `pip install -e isaacgym/python` in a Python 3.6-3.8 environment with a CUDA GPU driver, '
                'and import isaacgym before torch')
UNLIMITED_EFFORT = 1e6       # N m, drive force limit of actuators MuJoCo does not force-limit (URDF says 25)
UNLIMITED_VELOCITY = 1e3     # rad/s, DOF velocity limit (the URDF's 10 rad/s is a placeholder)


class IsaacGymUnavailable(RuntimeError):
    """Isaac Gym (``isaacgym.gymapi`` / ``gymtorch``) is not installed or cannot be imported."""


def import_isaacgym():
    """``(gymapi, gymtorch)`` or :class:`IsaacGymUnavailable` naming what is missing."""
    try:
        from isaacgym import gymapi, gymtorch
    except ImportError as e:
        if 'torch' in str(e).lower() and 'before' in str(e).lower():
            raise IsaacGymUnavailable(f'isaacgym must be imported before torch in this process ({e}); '
                                      'add `import isaacgym` at the top of the entry script') from e
        raise IsaacGymUnavailable(f'the isaacgym backend needs the `isaacgym` package (Isaac Gym Preview 4: '
                                  f'isaacgym.gymapi and isaacgym.gymtorch), which cannot be imported '
                                  f'({type(e).__name__}: {e}). {INSTALL_HINT}') from e
    return gymapi, gymtorch


@dataclasses.dataclass(frozen=True)
class ShapeFriction:
    """Per-shape friction given to PhysX (average rule) for the effective pair values."""
    hand: float
    table: float
    object: float


def physx_shape_friction(pair) -> ShapeFriction:
    """Per-shape values whose PhysX averages are the pair values of ``dexman_sim.friction.PairFriction``
    (module docstring); ValueError when a pair value is below half the object's."""
    o = float(pair.object_object)
    out = ShapeFriction(hand=2.0 * float(pair.hand_object) - o, table=2.0 * float(pair.object_table) - o, object=o)
    if min(out.hand, out.table, out.object) < 0.0:
        raise ValueError(f'friction pairs {pair} cannot be produced by averaging non-negative coefficients')
    return out


def object_urdf(name: str, part_files, mass: float, com, inertia) -> str:
    """A URDF of one rigid object: link ``name`` (frame = object frame), one collision mesh per
    convex part file (object frame, m), explicit mass (kg), COM (3,) and inertia (3, 3) about the COM."""
    def num(v):
        return ' '.join(repr(float(x)) for x in np.ravel(v))
    I = np.asarray(inertia, float)
    robot = ET.Element('robot', name=name)
    link = ET.SubElement(robot, 'link', name=name)
    inertial = ET.SubElement(link, 'inertial')
    ET.SubElement(inertial, 'origin', xyz=num(com), rpy='0 0 0')
    ET.SubElement(inertial, 'mass', value=repr(float(mass)))
    ET.SubElement(inertial, 'inertia', **{k: repr(float(I[i, j])) for k, (i, j) in
                                          (('ixx', (0, 0)), ('ixy', (0, 1)), ('ixz', (0, 2)),
                                           ('iyy', (1, 1)), ('iyz', (1, 2)), ('izz', (2, 2)))})
    for f in part_files:
        col = ET.SubElement(link, 'collision')
        ET.SubElement(col, 'origin', xyz='0 0 0', rpy='0 0 0')
        ET.SubElement(ET.SubElement(col, 'geometry'), 'mesh', filename=str(f))
    return ET.tostring(robot, encoding='unicode')


class IsaacGymResidualEnv(ResidualEnvBase):
    """N envs of one Isaac Gym (PhysX) sim tracking one reference with residual actions. UNTESTED
    (module docstring). Same arguments as ``MujocoResidualEnv``, plus ``sim_device`` ('cpu' or
    'cuda:K'). ``datas[i]`` are read-only views of env i's gathered qpos/qvel."""

    backend_name = 'isaacgym'

    def __init__(self, reference, num_envs=None, cfg=None, *, sim_device: str = 'cpu', **kwargs):
        import_isaacgym()                  # fail before any scene work when Isaac Gym is missing
        self.sim_device = str(sim_device)
        super().__init__(reference, num_envs, cfg, **kwargs)

    # ------------------------------------------------------------------ build
    def _init_physics(self) -> None:
        gymapi, gymtorch = import_isaacgym()
        import torch
        self._gymapi, self._gymtorch, self._torch = gymapi, gymtorch, torch
        gym = self.gym = gymapi.acquire_gym()
        cfg, sc, m = self.sim_cfg, self.scene, self.model
        gpu = self.sim_device.startswith('cuda')
        dev_id = int(self.sim_device.split(':')[1]) if gpu and ':' in self.sim_device else 0

        sp = gymapi.SimParams()
        sp.dt = cfg.control_dt
        sp.substeps = cfg.substeps
        sp.up_axis = gymapi.UP_AXIS_Z
        sp.gravity = gymapi.Vec3(*cfg.gravity)
        sp.use_gpu_pipeline = gpu
        sp.physx.use_gpu = gpu
        sp.physx.solver_type = 1                     # TGS
        sp.physx.num_position_iterations = 8
        sp.physx.num_velocity_iterations = 0
        sp.physx.contact_offset = 0.002
        sp.physx.rest_offset = 0.0
        self.sim = gym.create_sim(dev_id, -1, gymapi.SIM_PHYSX, sp)
        if self.sim is None:
            raise RuntimeError(f'isaacgym: create_sim failed on {self.sim_device}')
        self._tmp = tempfile.TemporaryDirectory(prefix='dexman_isaacgym_')
        tmp = pathlib.Path(self._tmp.name)
        fr = physx_shape_friction(sc.friction)
        self.shape_friction = fr

        # robot
        from dexman_description import robot_model as rm
        urdf = pathlib.Path(self.robot_model_dir) / rm.URDF_NAME
        if not urdf.is_file():
            raise FileNotFoundError(f'no robot URDF at {urdf}: rebuild the robot model')
        ro = gymapi.AssetOptions()
        ro.fix_base_link = True
        ro.collapse_fixed_joints = False
        ro.default_dof_drive_mode = gymapi.DOF_MODE_POS
        ro.vhacd_enabled = True
        ro.vhacd_params = gymapi.VhacdParams()
        ro.vhacd_params.resolution = 100000
        ro.use_physx_armature = True
        ro.flip_visual_attachments = False
        robot_asset = gym.load_asset(self.sim, str(urdf.parent), urdf.name, ro)
        self._robot_dof_props = self._robot_drives(gym.get_asset_dof_properties(robot_asset), robot_asset)
        shapes = gym.get_asset_rigid_shape_properties(robot_asset)
        ranges = gym.get_asset_rigid_body_shape_indices(robot_asset)
        body_names = gym.get_asset_rigid_body_names(robot_asset)
        hand_prefixes = tuple(rm.HAND_PREFIX[s] for s in ('left', 'right'))
        for b, r in enumerate(ranges):
            if body_names[b].startswith(hand_prefixes):
                for s in range(r.start, r.start + r.count):
                    shapes[s].friction = fr.hand
        gym.set_asset_rigid_shape_properties(robot_asset, shapes)

        # table
        to = gymapi.AssetOptions()
        to.fix_base_link = True
        hx, hy, hz = 2.0 * np.asarray(sc.table.size, float)
        table_asset = gym.create_box(self.sim, float(hx), float(hy), float(hz), to)
        tshapes = gym.get_asset_rigid_shape_properties(table_asset)
        for s in tshapes:
            s.friction = fr.table
        gym.set_asset_rigid_shape_properties(table_asset, tshapes)

        # objects
        from dexman_sim import collision as col
        from dexman_sim.mesh_repair import repair_mesh
        object_assets = []
        for k, oid in enumerate(sc.object_ids):
            parts = col.collision_shape(repair_mesh(self.ref.meshes[oid], f'object {oid!r}').mesh, cfg).parts
            files = []
            for j, p in enumerate(parts):
                f = tmp / f'object_{k}_part{j}.obj'
                p.export(str(f))
                files.append(f)
            (tmp / f'object_{k}.urdf').write_text(object_urdf(f'object_{k}', files, sc.object_mass[k],
                                                              sc.object_com[k], sc.object_inertia[k]))
            oo = gymapi.AssetOptions()
            oo.vhacd_enabled = False
            oo.override_com = False
            oo.override_inertia = False
            asset = gym.load_asset(self.sim, str(tmp), f'object_{k}.urdf', oo)
            osh = gym.get_asset_rigid_shape_properties(asset)
            for s in osh:
                s.friction = fr.object
            gym.set_asset_rigid_shape_properties(asset, osh)
            object_assets.append(asset)

        # envs
        lower = upper = gymapi.Vec3(0.0, 0.0, 0.0)          # all envs at the sim origin (docstring)
        per_row = int(np.ceil(np.sqrt(self.num_envs)))
        ident = gymapi.Transform()
        tpose = gymapi.Transform()
        tpose.p = gymapi.Vec3(*map(float, sc.table.center))
        self.envs, robot_actors, obj_actors = [], [], []
        for i in range(self.num_envs):
            env = gym.create_env(self.sim, lower, upper, per_row)
            ra = gym.create_actor(env, robot_asset, ident, 'robot', i, 1, 0)
            gym.set_actor_dof_properties(env, ra, self._robot_dof_props)
            gym.create_actor(env, table_asset, tpose, 'table', i, 0, 0)
            acts = []
            for k, asset in enumerate(object_assets):
                T = sc.initial_poses[k]
                pose = gymapi.Transform()
                pose.p = gymapi.Vec3(*map(float, T[:3, 3]))
                q = _wxyz(T[:3, :3])
                pose.r = gymapi.Quat(float(q[1]), float(q[2]), float(q[3]), float(q[0]))
                acts.append(gym.create_actor(env, asset, pose, f'object_{k}', i, 0, 0))
            self.envs.append(env)
            robot_actors.append(ra)
            obj_actors.append(acts)
        gym.prepare_sim(self.sim)
        self._index_maps(robot_actors, obj_actors)
        self._acquire_tensors()
        self.datas = [StateView(self, i) for i in range(self.num_envs)]
        self._refresh_and_gather()

    def _robot_drives(self, props, asset):
        """DOF properties: POS drives with the MuJoCo actuator gains; J0 driven like its J1 (docstring)."""
        gymapi, gym, m = self._gymapi, self.gym, self.model
        from .genesis_env import coupling_ratios
        names = list(gym.get_asset_dof_names(asset))
        act_of = {m.joint(int(m.actuator_trnid[a, 0])).name: a for a in range(m.nu)}
        self._coupled = {j0: (j1, r) for j0, (j1, r) in coupling_ratios(m).items()}
        for d, name in enumerate(names):
            a = act_of.get(name, act_of.get(self._coupled.get(name, (None,))[0]))
            j = m.joint(name).id
            props['driveMode'][d] = gymapi.DOF_MODE_POS if a is not None else gymapi.DOF_MODE_NONE
            props['armature'][d] = float(m.dof_armature[m.jnt_dofadr[j]])
            props['friction'][d] = float(m.dof_frictionloss[m.jnt_dofadr[j]])
            props['velocity'][d] = UNLIMITED_VELOCITY      # the URDF's velocity limit is a placeholder
            if a is None:
                continue
            props['stiffness'][d] = float(m.actuator_gainprm[a, 0])
            # PhysX drive: f = kp (target - q) - kd qdot; MuJoCo's passive joint damping joins kd
            props['damping'][d] = float(-m.actuator_biasprm[a, 2] + m.dof_damping[m.jnt_dofadr[j]])
            props['effort'][d] = (float(np.max(np.abs(m.actuator_forcerange[a]))) if m.actuator_forcelimited[a]
                                  else UNLIMITED_EFFORT)
        self._dof_names = names
        return props

    def _index_maps(self, robot_actors, obj_actors) -> None:
        gymapi, gym, m = self._gymapi, self.gym, self.model
        dom = gymapi.DOMAIN_SIM
        N = self.num_envs
        self._robot_idx = np.array([gym.get_actor_index(e, a, dom) for e, a in zip(self.envs, robot_actors)],
                                   np.int32)
        self._obj_idx = np.array([[gym.get_actor_index(e, a, dom) for a in acts]
                                  for e, acts in zip(self.envs, obj_actors)], np.int32).reshape(N, self.O)
        # robot dofs (sim domain) per kinematic-model joint, actuators, coupled joints
        env0, ra0 = self.envs[0], robot_actors[0]
        dof_local = {n: gym.find_actor_dof_index(env0, ra0, n, gymapi.DOMAIN_ACTOR) for n in self._dof_names}
        self._dofs_per_env = gym.get_sim_dof_count(self.sim) // N
        jn = [m.joint(j).name for j in range(m.njnt) if m.joint(j).name in dof_local]
        self._q_mj = np.array([m.jnt_qposadr[m.joint(n).id] for n in jn])
        self._d_mj = np.array([m.jnt_dofadr[m.joint(n).id] for n in jn])
        self._q_dof = np.array([dof_local[n] for n in jn])
        self._act_dof = np.array([dof_local[m.joint(int(m.actuator_trnid[a, 0])).name] for a in range(m.nu)])
        act_of = {m.joint(int(m.actuator_trnid[a, 0])).name: a for a in range(m.nu)}
        self._coupled_dof = np.array([dof_local[j0] for j0 in self._coupled], dtype=int)
        self._coupled_src = np.array([act_of[j1] for j1, _ in self._coupled.values()], dtype=int)
        self._coupled_ratio = np.array([r for _, r in self._coupled.values()])
        # rigid bodies (sim domain index of env 0; bodies per env are contiguous)
        self._bodies_per_env = gym.get_sim_rigid_body_count(self.sim) // N
        b_is, b_mj = [], []
        for b in range(1, m.nbody):
            i = gym.find_actor_rigid_body_index(env0, ra0, m.body(b).name, gymapi.DOMAIN_ENV)
            if i >= 0:
                b_is.append(i)
                b_mj.append(b)
        for k in range(self.O):
            b_is.append(gym.find_actor_rigid_body_index(env0, obj_actors[0][k], f'object_{k}', gymapi.DOMAIN_ENV))
            b_mj.append(int(self.scene.object_body_ids[k]))
        self._b_is, self._b_mj = np.array(b_is), np.array(b_mj)
        import mujoco
        d = mujoco.MjData(m)
        mujoco.mj_forward(m, d)
        self.xpos[:] = d.xpos
        self.xmat[:] = d.xmat

    def _acquire_tensors(self) -> None:
        gym, gt, torch = self.gym, self._gymtorch, self._torch
        N = self.num_envs
        self._dof_state = gt.wrap_tensor(gym.acquire_dof_state_tensor(self.sim))             # (N*dofs, 2)
        self._root_state = gt.wrap_tensor(gym.acquire_actor_root_state_tensor(self.sim))     # (actors, 13)
        self._body_state = gt.wrap_tensor(gym.acquire_rigid_body_state_tensor(self.sim))     # (N*bodies, 13)
        dev = self._dof_state.device
        self._targets = torch.zeros(N * self._dofs_per_env, dtype=torch.float32, device=dev)

    # ------------------------------------------------------------------ state
    def _refresh_and_gather(self) -> None:
        gym, sim = self.gym, self.sim
        gym.refresh_dof_state_tensor(sim)
        gym.refresh_actor_root_state_tensor(sim)
        gym.refresh_rigid_body_state_tensor(sim)
        N = self.num_envs
        dof = self._dof_state.cpu().numpy().reshape(N, self._dofs_per_env, 2)
        self.qpos[:, self._q_mj] = dof[:, self._q_dof, 0]
        self.qvel[:, self._d_mj] = dof[:, self._q_dof, 1]
        root = self._root_state.cpu().numpy()[self._obj_idx]                                 # (N, O, 13)
        quat = root[..., [6, 3, 4, 5]]                                                        # xyzw -> wxyz
        R = matrix_from_quat(quat.reshape(-1, 4).astype(float), scalar_first=True).reshape(N, self.O, 3, 3)
        for k in range(self.O):
            qa, da = int(self.scene.object_qpos_adr[k]), int(self.scene.object_qvel_adr[k])
            self.qpos[:, qa:qa + 3] = root[:, k, 0:3]
            self.qpos[:, qa + 3:qa + 7] = quat[:, k]
            self.qvel[:, da:da + 3] = root[:, k, 7:10]
            self.qvel[:, da + 3:da + 6] = np.einsum('nji,nj->ni', R[:, k], root[:, k, 10:13])   # world -> body
        body = self._body_state.cpu().numpy().reshape(N, self._bodies_per_env, 13)[:, self._b_is]
        self.xpos[:, self._b_mj] = body[..., 0:3]
        bq = body[..., [6, 3, 4, 5]].reshape(-1, 4).astype(float)
        self.xmat[:, self._b_mj] = matrix_from_quat(bq, scalar_first=True).reshape(N, len(self._b_is), 9)
        self.site_xpos[:] = site_positions(self.model, self.xpos, self.xmat)

    def _dof_targets(self, ctrl: np.ndarray) -> np.ndarray:
        """(K, dofs per env) targets: actuators from ctrl, coupled J0 = r * (their J1 target)."""
        t = np.zeros((ctrl.shape[0], self._dofs_per_env), np.float32)
        t[:, self._act_dof] = ctrl
        if self._coupled_dof.size:
            t[:, self._coupled_dof] = ctrl[:, self._coupled_src] * self._coupled_ratio
        return t

    def _write_state(self, idx: np.ndarray, qpos: np.ndarray, ctrl: np.ndarray) -> None:
        if len(idx) == 0:
            return
        torch, gt, gym = self._torch, self._gymtorch, self.gym
        idx = np.asarray(idx, int)
        dev = self._dof_state.device
        dof = self._dof_state.view(self.num_envs, self._dofs_per_env, 2)
        pos = torch.as_tensor(qpos[:, self._q_mj], dtype=torch.float32, device=dev)
        sel = torch.as_tensor(idx, device=dev)
        qd = torch.as_tensor(self._q_dof, device=dev)
        dof[sel[:, None], qd[None, :], 0] = pos
        dof[sel, :, 1] = 0.0
        tgt = self._targets.view(self.num_envs, self._dofs_per_env)
        tgt[sel] = torch.as_tensor(self._dof_targets(ctrl), device=dev)
        robots = torch.as_tensor(self._robot_idx[idx], dtype=torch.int32, device=dev)
        gym.set_dof_state_tensor_indexed(self.sim, gt.unwrap_tensor(self._dof_state), gt.unwrap_tensor(robots),
                                         len(idx))
        gym.set_dof_position_target_tensor_indexed(self.sim, gt.unwrap_tensor(self._targets), gt.unwrap_tensor(robots),
                                                   len(idx))
        root = self._root_state
        for k in range(self.O):
            qa = int(self.scene.object_qpos_adr[k])
            ai = torch.as_tensor(self._obj_idx[idx, k].astype(np.int64), device=dev)
            p = qpos[:, qa:qa + 3]
            q = qpos[:, qa + 3:qa + 7][:, [1, 2, 3, 0]]                                       # wxyz -> xyzw
            root[ai, 0:3] = torch.as_tensor(p, dtype=torch.float32, device=dev)
            root[ai, 3:7] = torch.as_tensor(q, dtype=torch.float32, device=dev)
            root[ai, 7:13] = 0.0
        objs = torch.as_tensor(self._obj_idx[idx].ravel(), dtype=torch.int32, device=dev)
        gym.set_actor_root_state_tensor_indexed(self.sim, gt.unwrap_tensor(root), gt.unwrap_tensor(objs), len(objs))
        # the new state is visible to the tensors after the next simulate; report the written one
        self.qpos[idx] = qpos
        self.qvel[idx] = 0.0
        self._forward_kinematics(idx, qpos)
        self.bad_acc[idx] = False

    def _forward_kinematics(self, idx: np.ndarray, qpos: np.ndarray) -> None:
        """Body frames and sites of the written configurations from the kinematic model."""
        import mujoco
        m = self.model
        d = mujoco.MjData(m)
        for k, i in enumerate(idx):
            d.qpos[:] = qpos[k]
            mujoco.mj_kinematics(m, d)
            self.xpos[i] = d.xpos
            self.xmat[i] = d.xmat
            self.site_xpos[i] = d.site_xpos

    def _physics(self, ctrl: np.ndarray) -> None:
        torch, gt, gym = self._torch, self._gymtorch, self.gym
        self._targets.copy_(torch.as_tensor(self._dof_targets(ctrl).ravel(), device=self._targets.device))
        gym.set_dof_position_target_tensor(self.sim, gt.unwrap_tensor(self._targets))
        gym.simulate(self.sim)
        gym.fetch_results(self.sim, True)
        self._refresh_and_gather()
        self.bad_acc[:] = False

    def _close_physics(self) -> None:
        sim = getattr(self, 'sim', None)
        if sim is not None:
            self.gym.destroy_sim(sim)
            self.sim = None
        tmp = getattr(self, '_tmp', None)
        if tmp is not None:
            tmp.cleanup()
            self._tmp = None


def _wxyz(R: np.ndarray) -> np.ndarray:
    from dexman_common.geometry import quat_from_matrix
    return quat_from_matrix(np.asarray(R, float), scalar_first=True)
