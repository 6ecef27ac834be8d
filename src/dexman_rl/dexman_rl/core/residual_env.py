"""The simulator-independent residual-control environment (paper 3.4, B.5; Tables 5-7). ROS-free.

:class:`ResidualEnvBase` implements :class:`dexman_rl.core.vec_env.VecEnv` for N envs tracking one
reference; a backend subclass supplies only the physics (see "Backend contract" below):
``MujocoResidualEnv`` (:mod:`.mujoco_env`), ``GenesisResidualEnv`` (:mod:`.genesis_env`),
``IsaacGymResidualEnv`` (:mod:`.isaacgym_env`). Everything here is vectorised numpy over envs.

The scene is always compiled once with ``dexman_sim.scene.build_scene`` (G1 + two Shadow hands,
table, the reference's objects with their convex parts, masses and pair friction): that
``MjModel`` (:attr:`model`) is the KINEMATIC model of every backend. Joint and actuator order,
joint limits, control ranges, the per-frame arm IK linearisation (:mod:`.arm_ik`) and the contact
keypoints (:mod:`.keypoints`) come from it, and every backend reports its state in its layout.

Time. The reference has T frames at 30 Hz = 1/``SimConfig.control_dt``. An env's state is "at
frame t". A step targets frame t+1: residual -> wrist and finger targets of frame t+1
(:mod:`.residual`) -> arm joints (:mod:`.arm_ik`) -> position-actuator targets (ctrl) ->
``SimConfig.substeps`` physics steps (4 x 1/120 s) -> the state is at frame t+1 and is scored
against the reference there. An episode from frame 0 therefore has T - 1 steps (the SuccessTracker
horizon) and ends at the last frame with ``time_outs`` True.

Reset (frame t0): robot joints = the reference joints at t0 (J0 included), objects at the
reference poses ``object_poses[:, t0]``, every velocity 0, ctrl = the reference joint targets. The
residual sums are zeroed. Training mode: t0 is uniform in [0, T-2] with probability
``rsi_probability`` (reference state initialisation, RSI), else 0; evaluation mode
(``train=False``, :meth:`set_mode`): always 0, each object's start shifted by a small seeded
Gaussian offset (``eval_object_noise_pos`` in xy, ``eval_object_noise_yaw`` about world z) so that
repeated rollouts of a deterministic policy differ (the paper's 10 rollouts).

Observations (paper Table 6), float32, layout (``obs_layout()``; O objects; "next" = the target
frame min(t+1, T-1) the next action aims at):

======================  =====  ================================================================
name                    size   content
======================  =====  ================================================================
joint_pos               58     robot joint positions (qpos order: left arm 7, left hand 22,
                               right arm 7, right hand 22), rad
joint_vel               58     their velocities, rad/s
ref_finger_pos          44     reference hand joints at the next frame (2 x 22, hand_joints order)
wrist_pose              18     current palm 6D poses: per hand position (3, world m) + the first
                               two columns of the rotation matrix (6: R00 R10 R20 R01 R11 R21)
ref_wrist_pose          18     reference palm 6D poses at the next frame (same layout)
object_pose             9 O    current object 6D poses (same layout, object frame origin)
target_object_pose      9 O    reference object 6D poses at the next frame
phase                   1      time step as the phase t / (T - 1) in [0, 1]
======================  =====  ================================================================

The reference palm pose is the forward kinematics of the reference arm joints (what the robot can
reach; equal to ``wrist_targets`` on reachable frames). Non-finite values become 0 and
everything is clipped to +-``obs_clip``.

Rewards: ``dexman_rl.core.rewards.reward_terms`` (Table 7; ``reward:`` section) on the state at
frame t+1 against the reference at t+1: contact keypoints and normals from :mod:`.keypoints`, the
prior's vertices mapped by the CURRENT object pose, palm poses, the 22 joints of each hand, hands
without a wrist target inactive, resting heights from :mod:`.reference_data`.
``info['reward_terms']`` holds the per-env terms (N,) of the step.

Episode end (``done``), decisions where the paper is silent:

- time limit: the state reached the reference's last frame (``time_outs`` True: bootstrap);
- early termination (failure), after ``term_grace_steps`` steps of the episode: any object's
  position error > ``term_pos_error`` (0.1 m) or rotation error > ``term_rot_error`` (1 rad);
- instability: a non-finite qpos/qvel, a speed above ``max_speed``, or the backend's own
  instability flag (MuJoCo: a bad qpos/qvel/qacc/ctrl warning, after which MuJoCo resets the data
  to qpos0 by itself; Genesis: its per-env error code): the env is terminated with reward 0
  (minus ``termination_penalty``), reset, and flagged in ``info['unstable']``; no NaN reaches the
  learner.

``termination_penalty`` is subtracted from the reward of a failing step (0 by default: the paper
has none). Success (``info['episode']['success']``) is the section-4.2 criterion
(``dexman_rl.core.success``): every step of the episode within the thresholds and the reference's
end reached; rollouts that started at frame 0 are also collected as ``RolloutResult`` in
:attr:`ResidualEnvBase.rollouts` (E_r, E_t) through a ``SuccessTracker`` for :mod:`.evaluate`.

Backend contract. A subclass implements

- ``_init_physics()``: called at the end of ``__init__`` (everything above is ready): build the
  simulator's scene of ``self.scene`` (same robot, table, objects, friction, masses) for
  ``num_envs`` envs, dt = ``sim_cfg.timestep``, ``sim_cfg.substeps`` per control step;
- ``_write_state(idx, qpos, ctrl)``: put envs ``idx`` (K,) into the configuration ``qpos``
  (K, model.nq; MuJoCo qpos layout: robot joints, then per object position + wxyz quaternion)
  with zero velocity and actuator targets ``ctrl`` (K, model.nu; MuJoCo actuator order), then
  refresh their rows of the gathered state (below);
- ``_physics(ctrl)``: hold the targets ``ctrl`` (N, nu) for ``substeps`` physics steps of every
  env (PD position control), then refresh the gathered state of every env and ``bad_acc`` (N,)
  bool (the simulator's own instability flag of the step);
- ``_close_physics()`` (optional): release simulator resources.

Gathered state, always in the kinematic model's layout (so that rewards, observations and success
never depend on the backend): ``qpos`` (N, nq), ``qvel`` (N, nv) (free joints: linear velocity in
the world frame, angular velocity in the body frame, as MuJoCo), ``xpos`` (N, nbody, 3),
``xmat`` (N, nbody, 9) body frames in the world (the palms, the keypoint bodies and the objects at
least), ``site_xpos`` (N, nsite, 3) (the fingertip sites at least; :func:`site_positions` derives
them from the body frames).
"""
from __future__ import annotations

import collections
import pathlib
from typing import Any

import numpy as np

from dexman_common.geometry import matrix_from_quat, quat_from_matrix

from .arm_ik import ArmIK
from .env_config import EnvConfig
from .keypoints import ContactKeypoints
from .reference_data import ReferenceData, ReferenceDataError, prepare
from .residual import ResidualAccumulator
from .rewards import RewardConfig, reward_terms
from .success import RolloutResult, SuccessConfig, SuccessTracker, step_errors

SIDES = ('left', 'right')
ROLLOUT_MEMORY = 10000       # frame-0 rollouts kept in ResidualEnvBase.rollouts (oldest dropped)
EVAL_SEED_OFFSET = 7919      # the evaluation start perturbations use their own seeded generator


def pose6d(pos: np.ndarray, R: np.ndarray) -> np.ndarray:
    """(..., 9) = position (3) + the first two columns of R (R00 R10 R20 R01 R11 R21)."""
    R = np.asarray(R, dtype=float)
    cols = np.swapaxes(R[..., :, :2], -1, -2).reshape(R.shape[:-2] + (6,))
    return np.concatenate([np.asarray(pos, dtype=float), cols], axis=-1)


def _quat_to_mat(q: np.ndarray) -> np.ndarray:
    return matrix_from_quat(q, scalar_first=True)


def _mat_to_quat(R: np.ndarray) -> np.ndarray:
    return quat_from_matrix(R, scalar_first=True)


def site_positions(model, xpos: np.ndarray, xmat: np.ndarray) -> np.ndarray:
    """(N, nsite, 3) world site positions from body frames xpos (N, nbody, 3), xmat (N, nbody, 9):
    each site is fixed in its body at ``model.site_pos`` (what MuJoCo's kinematics computes)."""
    b = np.asarray(model.site_bodyid)
    R = np.asarray(xmat, dtype=float).reshape(xpos.shape[0], -1, 3, 3)[:, b]
    return np.asarray(xpos, dtype=float)[:, b] + np.einsum('nsij,sj->nsi', R, np.asarray(model.site_pos))


class StateView:
    """Read-only ``qpos``/``qvel`` of one env of a non-MuJoCo backend, shaped like an ``MjData`` for
    code that reads one env's state (e.g. ``Scene.object_pose(env.datas[i], k)``)."""

    def __init__(self, env: 'ResidualEnvBase', i: int):
        self._env, self._i = env, int(i)

    @property
    def qpos(self) -> np.ndarray:
        return self._env.qpos[self._i]

    @property
    def qvel(self) -> np.ndarray:
        return self._env.qvel[self._i]


class ResidualEnvBase:
    """N envs tracking one reference with residual actions (module docstring); abstract physics.

    ``reference``: a reference directory, a loaded ``Reference`` or a prepared ``ReferenceData``.
    """

    backend_name = ''

    def __init__(self, reference, num_envs: int | None = None, cfg: EnvConfig | None = None, *,
                 sim_cfg=None, reward_cfg: RewardConfig | None = None,
                 success_cfg: SuccessConfig | None = None, robot_model_dir=None, train: bool = True):
        import mujoco

        from dexman_description import robot_model as rm
        from dexman_sim.config import SimConfig
        from dexman_sim.scene import SceneObjectSpec, build_scene

        self.cfg = cfg or EnvConfig()
        self.sim_cfg = sim_cfg or SimConfig()
        self.reward_cfg = reward_cfg or RewardConfig()
        self.success_cfg = success_cfg or SuccessConfig()
        self.num_envs = int(num_envs if num_envs is not None else self.cfg.num_envs)
        if self.num_envs < 1:
            raise ValueError(f'num_envs must be >= 1, got {self.num_envs}')
        self.train = bool(train)

        if isinstance(reference, ReferenceData):
            ref = reference
        elif isinstance(reference, (str, pathlib.Path)):
            from .reference_data import load as load_ref
            ref = load_ref(reference, max_unreachable_fraction=self.cfg.max_unreachable_fraction,
                           penetration_tolerance=self.sim_cfg.penetration_tolerance,
                           max_table_tilt_deg=self.sim_cfg.table_max_tilt_deg)
        else:
            ref = prepare(reference, max_unreachable_fraction=self.cfg.max_unreachable_fraction,
                          penetration_tolerance=self.sim_cfg.penetration_tolerance,
                          max_table_tilt_deg=self.sim_cfg.table_max_tilt_deg)
        self.ref = ref
        if abs(ref.frame_rate * self.sim_cfg.control_dt - 1.0) > 1e-6:
            raise ReferenceDataError(f'reference {ref.reference_id}: frame rate {ref.frame_rate} Hz does not '
                                     f'match the control rate 1/control_dt = {1.0 / self.sim_cfg.control_dt} Hz')
        if ref.n_frames < 2:
            raise ReferenceDataError(f'reference {ref.reference_id}: needs at least 2 frames, has {ref.n_frames}')
        self.T, self.O = ref.n_frames, ref.n_objects

        model_dir = robot_model_dir if robot_model_dir is not None else self.sim_cfg.robot_model_path()
        self.robot_model_dir = pathlib.Path(model_dir)
        self.scene = build_scene([SceneObjectSpec(oid, ref.meshes[oid], ref.object_pose[0, k])
                                  for k, oid in enumerate(ref.object_ids)],
                                 ref.table_point, ref.table_normal, robot_model_dir=model_dir, cfg=self.sim_cfg)
        self.warnings = list(ref.warnings) + list(self.scene.warnings)
        m = self.model = self.scene.model

        # ---- index maps
        def jadr(names):
            return np.array([m.jnt_qposadr[m.joint(n).id] for n in names])

        def dadr(names):
            return np.array([m.jnt_dofadr[m.joint(n).id] for n in names])

        robot_names = [n for s in SIDES for n in rm.arm_joints(s) + rm.hand_joints(s)]
        self.robot_joint_names = robot_names
        self.robot_qadr, self.robot_dadr = jadr(robot_names), dadr(robot_names)
        self.hand_qadr = np.stack([jadr(rm.hand_joints(s)) for s in SIDES])             # (2, 22)
        finger_ids = np.stack([[m.joint(n).id for n in rm.hand_actuated_joints(s)] for s in SIDES])
        self.n_fingers = finger_ids.shape[1]
        act_of_joint = {int(m.actuator_trnid[a, 0]): a for a in range(m.nu)
                        if m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT}
        arm_ids = np.stack([[m.joint(n).id for n in rm.arm_joints(s)] for s in SIDES])
        try:
            self.arm_act = np.vectorize(act_of_joint.__getitem__)(arm_ids)                # (2, 7)
            self.finger_act = np.vectorize(act_of_joint.__getitem__)(finger_ids)          # (2, 18)
        except KeyError as e:
            raise ValueError(f'robot model: joint id {e} has no position actuator') from e
        self.palm_ids = np.array([m.body(rm.HAND_PREFIX[s] + rm.PALM_BODY).id for s in SIDES])
        self.obj_qadr = np.asarray(self.scene.object_qpos_adr)

        # ---- per-frame reference tensors
        self.qpos_ref = ref.qpos_robot(m)                                                # (T, nq)
        for o in range(self.O):
            a = self.obj_qadr[o]
            self.qpos_ref[:, a:a + 3] = ref.object_pos[:, o]
            self.qpos_ref[:, a + 3:a + 7] = ref.object_quat[:, o]
        self.ik = ArmIK(m, self.qpos_ref, self.cfg.arm_ik)
        self.ref_palm_quat = _mat_to_quat(self.ik.palm_rot)                              # (T, 2, 4)
        self.ref_palm_6d = pose6d(self.ik.palm_pos, self.ik.palm_rot)                    # (T, 2, 9)
        self.ref_obj_6d = pose6d(ref.object_pos, ref.object_pose[..., :3, :3])           # (T, O, 9)
        lo = m.jnt_range[finger_ids, 0]
        hi = m.jnt_range[finger_ids, 1]
        self.residual = ResidualAccumulator(self.num_envs, self.n_fingers, lo, hi, self.cfg.residual)
        self.finger_ref = np.clip(ref.finger_q, lo, hi)                                  # (T, 2, 18)
        self.ctrl_ref = np.zeros((self.T, m.nu))
        self.ctrl_ref[:, self.arm_act.ravel()] = self.ik.q_ref.reshape(self.T, -1)
        self.ctrl_ref[:, self.finger_act.ravel()] = self.finger_ref.reshape(self.T, -1)
        self.ctrl_ref = np.clip(self.ctrl_ref, m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1])
        self.keypoints = ContactKeypoints(m)

        # ---- gathered simulation state (kinematic-model layout) and episode bookkeeping
        N = self.num_envs
        self.qpos = np.zeros((N, m.nq))
        self.qvel = np.zeros((N, m.nv))
        self.xpos = np.zeros((N, m.nbody, 3))
        self.xmat = np.zeros((N, m.nbody, 9))
        self.site_xpos = np.zeros((N, m.nsite, 3))
        self.bad_acc = np.zeros(N, dtype=bool)
        self.frame = np.zeros(N, dtype=int)
        self.start_frame = np.zeros(N, dtype=int)
        self.steps = np.zeros(N, dtype=int)
        self.ep_return = np.zeros(N)
        self.ep_ok = np.ones(N, dtype=bool)
        self.rng = np.random.default_rng(self.cfg.seed)
        self.eval_rng = np.random.default_rng(self.cfg.seed + EVAL_SEED_OFFSET)
        self.env_frames = 0
        self.tracker = SuccessTracker(N, self.T - 1, self.success_cfg)
        self.rollouts: collections.deque[RolloutResult] = collections.deque(maxlen=ROLLOUT_MEMORY)
        self._layout = self._make_layout()
        self.obs_dim = self._layout[-1][2]
        self.act_dim = self.residual.act_dim
        self._obs = None
        self.last_ctrl = np.zeros((N, m.nu))
        self._init_physics()

    # ------------------------------------------------------------------ backend (module docstring)
    def _init_physics(self) -> None:
        raise NotImplementedError

    def _write_state(self, idx: np.ndarray, qpos: np.ndarray, ctrl: np.ndarray) -> None:
        raise NotImplementedError

    def _physics(self, ctrl: np.ndarray) -> None:
        raise NotImplementedError

    def _close_physics(self) -> None:
        pass

    # ------------------------------------------------------------------ layout
    def _make_layout(self):
        sizes = [('joint_pos', len(self.robot_qadr)), ('joint_vel', len(self.robot_dadr)),
                 ('ref_finger_pos', 2 * self.hand_qadr.shape[1]), ('wrist_pose', 18), ('ref_wrist_pose', 18),
                 ('object_pose', 9 * self.O), ('target_object_pose', 9 * self.O), ('phase', 1)]
        out, i = [], 0
        for name, n in sizes:
            out.append((name, i, i + n))
            i += n
        return out

    def obs_layout(self) -> dict[str, slice]:
        """{name: slice into the observation vector} (module docstring)."""
        return {name: slice(a, b) for name, a, b in self._layout}

    @property
    def horizon(self) -> int:
        """Steps of an episode from frame 0 (T - 1)."""
        return self.T - 1

    # ------------------------------------------------------------------ resets
    def _load_frames(self, idx: np.ndarray, frames: np.ndarray) -> None:
        """Put envs idx into the reference state of their frames (positions, zero velocity, ctrl);
        evaluation starts at frame 0 get the object perturbation."""
        idx = np.asarray(idx, dtype=int).reshape(-1)
        frames = np.asarray(frames, dtype=int).reshape(-1)
        qpos = self.qpos_ref[frames].copy()
        if not self.train:
            for k, t in enumerate(frames):
                if t == 0:
                    self._perturb_objects(qpos[k])
        self._write_state(idx, qpos, self.ctrl_ref[frames])

    def _perturb_objects(self, qpos: np.ndarray) -> None:
        """Evaluation starts: each object in ``qpos`` (nq,) shifted in xy and turned about world z by
        small seeded Gaussian amounts (``eval_object_noise_pos``/``_yaw``), so the rollouts of a
        deterministic policy in a deterministic simulator differ (paper 4.2: 10 rollouts per sequence)."""
        sp, sy = self.cfg.eval_object_noise_pos, self.cfg.eval_object_noise_yaw
        if sp == 0 and sy == 0:
            return
        for a in self.obj_qadr:
            qpos[a:a + 2] += self.eval_rng.normal(0.0, sp, 2) if sp > 0 else 0.0
            if sy > 0:
                half = 0.5 * self.eval_rng.normal(0.0, sy)
                w, x, y, z = qpos[a + 3:a + 7]
                c, s_ = np.cos(half), np.sin(half)           # q_z(yaw) ⊗ q (world-frame rotation)
                qpos[a + 3:a + 7] = [c * w - s_ * z, c * x - s_ * y, c * y + s_ * x, c * z + s_ * w]

    def _reset_envs(self, idx: np.ndarray, frames: np.ndarray) -> None:
        self._load_frames(idx, frames)
        mask = np.zeros(self.num_envs, dtype=bool)
        mask[idx] = True
        self.frame[idx] = frames
        self.start_frame[idx] = frames
        self.steps[idx] = 0
        self.ep_return[idx] = 0.0
        self.ep_ok[idx] = True
        self.residual.reset(mask)
        self.tracker.discard(mask)

    def _start_frames(self, n: int) -> np.ndarray:
        if not self.train:
            return np.zeros(n, dtype=int)
        rsi = self.rng.random(n) < self.cfg.rsi_probability
        return np.where(rsi, self.rng.integers(0, self.T - 1, n), 0)

    # ------------------------------------------------------------------ state views
    def object_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(pos (N, O, 3), quat wxyz (N, O, 4)) of the objects from the gathered qpos."""
        adr = self.obj_qadr
        pos = self.qpos[:, adr[:, None] + np.arange(3)]
        quat = self.qpos[:, adr[:, None] + 3 + np.arange(4)]
        return pos, quat

    def palm_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(pos (N, 2, 3), rotation (N, 2, 3, 3)) of the two palms."""
        return self.xpos[:, self.palm_ids], self.xmat[:, self.palm_ids].reshape(-1, 2, 3, 3)

    def _observe(self) -> np.ndarray:
        N = self.num_envs
        nxt = np.minimum(self.frame + 1, self.T - 1)
        ppos, prot = self.palm_state()
        opos, oquat = self.object_state()
        parts = [self.qpos[:, self.robot_qadr], self.qvel[:, self.robot_dadr],
                 self.ref.hand_q[nxt].reshape(N, -1),
                 pose6d(ppos, prot).reshape(N, -1), self.ref_palm_6d[nxt].reshape(N, -1),
                 pose6d(opos, _quat_to_mat(oquat)).reshape(N, -1),
                 self.ref_obj_6d[nxt].reshape(N, -1), (self.frame / (self.T - 1))[:, None]]
        obs = np.concatenate(parts, axis=1)
        c = self.cfg.obs_clip
        if not np.isfinite(obs).all():
            obs = np.nan_to_num(obs, nan=0.0, posinf=c, neginf=-c)
        return np.clip(obs, -c, c).astype(np.float32)

    # ------------------------------------------------------------------ VecEnv
    def reset(self) -> np.ndarray:
        idx = np.arange(self.num_envs)
        self._reset_envs(idx, self._start_frames(self.num_envs))
        self._obs = self._observe()
        return self._obs

    def reset_to(self, frames) -> np.ndarray:
        """Reset every env to the given reference frame(s) (int or (N,) ints in [0, T-2])."""
        f = np.broadcast_to(np.asarray(frames, dtype=int), (self.num_envs,)).copy()
        if np.any((f < 0) | (f > self.T - 2)):
            raise ValueError(f'reset frames must be in [0, {self.T - 2}]')
        self._reset_envs(np.arange(self.num_envs), f)
        self._obs = self._observe()
        return self._obs

    def controls(self, actions: np.ndarray) -> np.ndarray:
        """Accumulate the residual and return the ctrl (N, nu) for the step to frame t+1."""
        tgt = np.minimum(self.frame + 1, self.T - 1)
        fref = self.finger_ref[tgt]
        self.residual.accumulate(actions, fref)
        x, R, th = self.residual.targets(self.ik.palm_pos[tgt], self.ik.palm_rot[tgt], fref)
        q_arm = self.ik.solve(tgt, x, R)
        ctrl = self.ctrl_ref[tgt].copy()
        ctrl[:, self.arm_act.ravel()] = q_arm.reshape(self.num_envs, -1)
        ctrl[:, self.finger_act.ravel()] = th.reshape(self.num_envs, -1)
        return np.clip(ctrl, self.model.actuator_ctrlrange[:, 0], self.model.actuator_ctrlrange[:, 1])

    def rewards(self) -> dict[str, np.ndarray]:
        """Table 7 reward terms (N,) of the current state against the reference at its frame."""
        t = self.frame
        opos, oquat = self.object_state()
        Robj = _quat_to_mat(oquat)
        kp_pos, kp_normal = self.keypoints.compute(self.xpos, self.xmat, self.site_xpos)
        verts = np.einsum('noij,nhkoj->nhkoi', Robj, self.ref.prior_vertex[t]) + opos[:, None, None]
        ppos, prot = self.palm_state()
        return reward_terms(
            self.reward_cfg, obj_pos=opos, rest_z=self.ref.rest_z, obj_quat=oquat,
            target_pos=self.ref.object_pos[t], target_quat=self.ref.object_quat[t],
            kp_pos=kp_pos, kp_normal=kp_normal, prior_mask=self.ref.prior_mask[t], target_vertex=verts,
            wrist_pos=ppos, wrist_quat=_mat_to_quat(prot), ref_wrist_pos=self.ik.palm_pos[t],
            ref_wrist_quat=self.ref_palm_quat[t], finger_q=self.qpos[:, self.hand_qadr],
            ref_finger_q=self.ref.hand_q[t], hand_active=self.ref.hand_active[t])

    def object_errors(self) -> tuple[np.ndarray, np.ndarray]:
        """(pos_err (N, O) m, rot_err (N, O) rad) of the objects against the reference at their frame."""
        opos, oquat = self.object_state()
        return step_errors(opos, oquat, self.ref.object_pos[self.frame], self.ref.object_quat[self.frame])

    def step(self, actions: np.ndarray):
        N = self.num_envs
        actions = np.asarray(actions, dtype=float).reshape(N, self.act_dim)
        ctrl = self.controls(actions)
        self.last_ctrl = ctrl                 # (N, nu) the actuator targets of this step (exported rollouts)
        self._physics(ctrl)
        self.frame = np.minimum(self.frame + 1, self.T - 1)
        self.steps += 1

        finite = np.isfinite(self.qpos).all(axis=1) & np.isfinite(self.qvel).all(axis=1)
        unstable = ~finite | self.bad_acc
        unstable[finite] |= (np.abs(self.qvel[finite]) > self.cfg.max_speed).any(axis=1)
        if unstable.any():      # score a finite stand-in state; the env is reset below
            idx = np.flatnonzero(unstable)
            self._load_frames(idx, self.frame[idx])
        terms = self.rewards()
        pos_err, rot_err = self.object_errors()
        if unstable.any():
            terms = {k: np.where(unstable, 0.0, v) for k, v in terms.items()}
            pos_err = np.where(unstable[:, None], np.inf, pos_err)
            rot_err = np.where(unstable[:, None], np.inf, rot_err)

        within = ((pos_err < self.success_cfg.pos_threshold) & (rot_err < self.success_cfg.rot_threshold)).all(axis=1)
        self.ep_ok &= within
        failed = (self.steps >= self.cfg.term_grace_steps) & (
            (pos_err > self.cfg.term_pos_error) | (rot_err > self.cfg.term_rot_error)).any(axis=1)
        terminated = failed | unstable
        time_out = (self.frame >= self.T - 1) & ~terminated
        done = terminated | time_out

        reward = terms['total'] - self.cfg.termination_penalty * terminated
        if not np.isfinite(reward).all():      # cannot happen from a finite state; never pass it on
            reward = np.nan_to_num(reward, nan=0.0, posinf=0.0, neginf=0.0)
        self.ep_return += reward
        for r in self.tracker.step(np.minimum(pos_err, 1e9), np.minimum(rot_err, 1e9), done):
            if self.start_frame[r.env_id] == 0:
                self.rollouts.append(r)
        info: dict[str, Any] = {
            'time_outs': time_out.copy(), 'unstable': unstable.copy(), 'frame': self.frame.copy(),
            'reward_terms': {k: terms[k].astype(np.float32) for k in ('contact', 'object', 'imitation')}}
        idx = np.flatnonzero(done)
        if idx.size:
            info['episode'] = {'success': (self.ep_ok[idx] & time_out[idx]).copy(),
                               'length': self.steps[idx].copy(), 'return': self.ep_return[idx].astype(np.float32),
                               'start_frame': self.start_frame[idx].copy(),
                               'unstable': unstable[idx].copy()}
            self._reset_envs(idx, self._start_frames(idx.size))
        self._obs = self._observe()
        return self._obs, reward.astype(np.float32), done, info

    def set_mode(self, train: bool) -> None:
        """Training (RSI resets) or evaluation (every reset at frame 0, objects perturbed by the
        evaluation noise; entering evaluation reseeds it, so every evaluation sees the same starts)."""
        self.train = bool(train)
        if not self.train:
            self.eval_rng = np.random.default_rng(self.cfg.seed + EVAL_SEED_OFFSET)

    def set_train_info(self, env_frames: int) -> None:
        self.env_frames = int(env_frames)

    def get_state(self) -> dict[str, Any]:
        return {'rng': self.rng.bit_generator.state, 'env_frames': self.env_frames}

    def set_state(self, state: dict[str, Any]) -> None:
        if 'rng' in state:
            self.rng.bit_generator.state = state['rng']
        self.env_frames = int(state.get('env_frames', self.env_frames))

    def close(self) -> None:
        self._close_physics()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
