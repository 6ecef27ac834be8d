"""A trained skill as a stream of control steps, for the policy node. ROS-free.

Two streams, one :class:`StreamStep` per control step (the skill's ``control_rate``, 30 Hz):

- :class:`SimulatedStream` (closed loop): the skill's policy in a one-env residual environment of
  its training backend (MuJoCo by default), evaluation mode WITHOUT the start noise (the same
  rollout as the exported ``rollout.npz``), step by step from reference frame 0 until the
  episode ends (the reference's end, or early termination when an object strays);
- :class:`OpenLoopStream`: the exported ``rollout.npz`` as it was recorded, nothing simulated.

A step carries the actuator position targets of that step (``command``, the actuated joints:
arms then hands, coupled J0 joints excluded, clipped to the URDF limits), every robot joint's
position after it (``joint_positions``, the URDF's movable joints: the J0 joints included),
the object poses ``T_world_object`` and their reference targets, and the per-object position /
rotation errors (m / rad). In open loop the state and errors are the recorded ones.

The coupled J0 joints are not in ``rollout.npz``; in open loop each follows its J1 through the
Shadow coupling tendon of the robot model (the narrowest fixed tendon over the pair:
``coef_J0 * q_J0 + coef_J1 * q_J1 ~ 0``, so ``q_J0 = -coef_J1 / coef_J0 * q_J1``), clipped to its
limits.

Success and errors of a whole run (:class:`StreamResult`) follow paper 4.2
(``core.success``): every step, every object within the skill's thresholds and the reference's
end reached; E_r / E_t = mean rotation / position error over steps and objects.
"""
from __future__ import annotations

import dataclasses
import pathlib
import xml.etree.ElementTree as ET

import numpy as np

from dexman_common.geometry import matrix_from_quat, quat_from_matrix


class SkillStreamError(RuntimeError):
    """The skill cannot be streamed (robot model differs, no exported rollout, bad URDF)."""


@dataclasses.dataclass
class StreamStep:
    step: int                    # 1-based control step (0 = the start state, not streamed as a step)
    total_steps: int             # steps of a complete run (reference frames - 1)
    time_s: float                # control time of the state after this step, s
    command: np.ndarray          # (J,) actuator position targets of this step, rad
    joint_positions: np.ndarray  # (R,) every robot joint after the step, rad (``joint_names`` order)
    object_poses: np.ndarray     # (O, 4, 4) T_world_object after the step
    target_poses: np.ndarray     # (O, 4, 4) the reference's object poses at this frame
    pos_err: np.ndarray          # (O,) m
    rot_err: np.ndarray          # (O,) rad


@dataclasses.dataclass
class StreamResult:
    success: bool
    steps: int
    completed: bool
    e_r: float                   # rad, mean over steps and objects
    e_t: float                   # m


def urdf_limits(urdf_path) -> dict[str, tuple[float, float]]:
    """{joint: (lower, upper)} of the URDF's revolute/prismatic joints (continuous: +-inf)."""
    try:
        root = ET.parse(str(urdf_path)).getroot()
    except (OSError, ET.ParseError) as e:
        raise SkillStreamError(f'cannot read the URDF {urdf_path}: {e}') from e
    out = {}
    for j in root.iter('joint'):
        kind = j.get('type')
        if kind in (None, 'fixed', 'floating', 'planar'):
            continue
        lim = j.find('limit')
        if kind == 'continuous' or lim is None:
            out[j.get('name')] = (-np.inf, np.inf)
        else:
            out[j.get('name')] = (float(lim.get('lower', '-inf')), float(lim.get('upper', 'inf')))
    return out


def coupled_joints(model) -> dict[str, tuple[str, float]]:
    """{J0: (J1, ratio)} with q_J0 = ratio * q_J1 for each coupled joint of the robot model (module
    docstring), from the MjModel's fixed tendons."""
    import mujoco

    from dexman_description import robot_model as rm
    coupled = {f'{p}{j}' for p in rm.HAND_PREFIX.values() for j in rm.HAND_COUPLED_JOINTS}
    best: dict[str, tuple[float, str, float]] = {}
    for t in range(model.ntendon):
        adr, num = int(model.tendon_adr[t]), int(model.tendon_num[t])
        if num != 2 or not all(model.wrap_type[adr + i] == mujoco.mjtWrap.mjWRAP_JOINT for i in range(2)):
            continue
        names = [model.joint(int(model.wrap_objid[adr + i])).name for i in range(2)]
        coefs = [float(model.wrap_prm[adr + i]) for i in range(2)]
        width = float(np.ptp(model.tendon_range[t])) if model.tendon_limited[t] else np.inf
        for k in range(2):
            if names[k] in coupled and coefs[k] != 0.0 and coefs[k] * coefs[1 - k] < 0:
                if names[k] not in best or width < best[names[k]][0]:
                    best[names[k]] = (width, names[1 - k], -coefs[1 - k] / coefs[k])
    return {j0: (j1, ratio) for j0, (_, j1, ratio) in best.items()}


def _poses(pos: np.ndarray, quat_wxyz: np.ndarray) -> np.ndarray:
    T = np.tile(np.eye(4), pos.shape[:-1] + (1, 1))
    T[..., :3, :3] = matrix_from_quat(quat_wxyz, scalar_first=True)
    T[..., :3, 3] = pos
    return T


def pose_errors(poses: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pos_err, rot_err) (..., O) of poses (..., O, 4, 4) against targets, with core.success."""
    from .success import step_errors
    q = quat_from_matrix(poses[..., :3, :3], scalar_first=True)
    qt = quat_from_matrix(targets[..., :3, :3], scalar_first=True)
    return step_errors(poses[..., :3, 3], q, targets[..., :3, 3], qt)


class _Stream:
    """Shared: joint naming, limits, the result."""

    def __init__(self, skill, model_dir: pathlib.Path, success_cfg):
        from dexman_description import robot_model as rm
        self.skill, self.model_dir = skill, pathlib.Path(model_dir)
        self.control_dt = 1.0 / float(skill.control_rate)
        self.limits = urdf_limits(self.model_dir / rm.URDF_NAME)
        self.joint_names = list(self.limits)                 # every movable robot joint (URDF order)
        self.success_cfg = success_cfg
        self.total_steps = int(skill.num_frames) - 1
        self.result: StreamResult | None = None

    def _setup_command(self, names: list[str]) -> None:
        self.command_names = list(names)
        missing = [n for n in names if n not in self.limits]
        if missing:
            raise SkillStreamError(f'actuated joints {missing} are not in the URDF of {self.model_dir}')
        self.lo = np.array([self.limits[n][0] for n in names])
        self.hi = np.array([self.limits[n][1] for n in names])

    def clip(self, q: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(q, float), self.lo, self.hi)

    def close(self) -> None:
        pass


def check_robot_model(skill, model_dir) -> None:
    """SkillStreamError when the installed robot model is not the one the skill was trained on."""
    from .skill_training import robot_model_hash
    have = robot_model_hash(model_dir)
    if have != skill.robot_model_hash:
        raise SkillStreamError(
            f'skill {skill.skill_id} was trained on robot model {skill.robot_model_hash[:12]}, the installed one '
            f'({model_dir}) is {have[:12]}: retrain the skill on this model (or pass the matching build)')


class OpenLoopStream(_Stream):
    """The exported rollout.npz, step by step (module docstring)."""

    def __init__(self, skill, model_dir, success_cfg):
        super().__init__(skill, model_dir, success_cfg)
        check_robot_model(skill, self.model_dir)
        r = skill.load_rollout()
        if r is None:
            raise SkillStreamError(f'skill {skill.skill_id} has no exported rollout ({skill.root}/rollout.npz): '
                                   'open-loop mode needs one')
        self.rollout = r
        self._setup_command(r.joint_names)
        from dexman_description import robot_model as rm
        model = rm.load_model(self.model_dir)
        col = {n: i for i, n in enumerate(r.joint_names)}
        self._state_src = []          # per robot joint: (column, ratio, derived from a coupled joint)
        couple = coupled_joints(model)
        for n in self.joint_names:
            if n in col:
                self._state_src.append((col[n], 1.0, False))
            elif n in couple and couple[n][0] in col:
                self._state_src.append((col[couple[n][0]], couple[n][1], True))
            else:
                raise SkillStreamError(f'joint {n} is neither in the rollout nor coupled to a joint in it')
        self._state_lo = np.array([self.limits[n][0] for n in self.joint_names])
        self._state_hi = np.array([self.limits[n][1] for n in self.joint_names])
        self.pos_err, self.rot_err = pose_errors(np.transpose(r.object_poses, (1, 0, 2, 3)),
                                                 np.transpose(r.target_object_poses, (1, 0, 2, 3)))   # (T, O)

    @property
    def n_points(self) -> int:
        return len(self.rollout.time_from_start)

    def trajectory(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(joint names, time_from_start (T,) s, positions (T, J) rad clipped to the URDF limits): the
        whole exported trajectory, point 0 = the start configuration at time 0."""
        return self.command_names, np.asarray(self.rollout.time_from_start, float), self.clip(self.rollout.positions)

    def state(self, k: int) -> np.ndarray:
        """Every robot joint at point k: the recorded positions as they are; a coupled J0 from its J1,
        clipped to its own limits (as the tendon saturates in the simulator)."""
        m = np.asarray(self.rollout.measured_positions[k], float)
        q = np.array([m[c] * ratio for c, ratio, _ in self._state_src])
        derived = np.array([d for _, _, d in self._state_src])
        return np.where(derived, np.clip(q, self._state_lo, self._state_hi), q)

    def _recorded(self, k: int) -> StreamStep:
        r = self.rollout
        return StreamStep(step=k, total_steps=self.total_steps, time_s=float(r.time_from_start[k]),
                          command=self.clip(r.positions[k]), joint_positions=self.state(k),
                          object_poses=np.asarray(r.object_poses[:, k]),
                          target_poses=np.asarray(r.target_object_poses[:, k]),
                          pos_err=self.pos_err[k], rot_err=self.rot_err[k])

    def start(self) -> StreamStep:
        """The recorded start state (point 0) as step 0."""
        from .success import SuccessTracker
        self._tracker = SuccessTracker(1, max(self.total_steps, 1), self.success_cfg)
        return self._recorded(0)

    def step(self, k: int) -> StreamStep | None:
        """The recorded state after step k (1 .. T-1); None past the last one (``result`` is then set)."""
        T = self.n_points
        if k >= T:
            return None
        for rr in self._tracker.step(self.pos_err[k][None], self.rot_err[k][None], np.array([k == T - 1])):
            self.result = StreamResult(rr.success, rr.length, rr.completed, rr.e_r, rr.e_t)
        return self._recorded(k)


class SimulatedStream(_Stream):
    """The policy in a one-env residual environment (module docstring). ``player``: an open
    ``skill_playback.SkillPlayer`` (it checked the robot model)."""

    def __init__(self, player):
        super().__init__(player.skill, player.model_dir, player.configs.success)
        from .backends import make_vec_env
        self.player = player
        cfgs = player.configs
        env_cfg = cfgs.env.replace(eval_object_noise_pos=0.0, eval_object_noise_yaw=0.0, threads=1)
        self.env = make_vec_env(player.ref_data, cfgs, 1, train=False, model_dir=player.model_dir, env_cfg=env_cfg)
        env, m = self.env, self.env.model
        if (env.obs_dim, env.act_dim) != (player.skill.obs_dim, player.skill.act_dim):
            self.env.close()
            raise SkillStreamError(f'env dims {env.obs_dim}/{env.act_dim} differ from the skill\'s '
                                   f'{player.skill.obs_dim}/{player.skill.act_dim}')
        self.act_ids = np.concatenate([env.arm_act.ravel(), env.finger_act.ravel()])
        self._setup_command([m.joint(int(j)).name for j in m.actuator_trnid[self.act_ids, 0]])
        self.qadr = np.array([m.joint(n).qposadr[0] for n in self.joint_names])
        self.total_steps = env.horizon

    def meshes(self) -> dict:
        return {i: self.player.ref_data.meshes[o] for i, o in enumerate(self.player.ref_data.object_ids)}

    def start(self) -> StreamStep:
        """Reset to frame 0; the start state as step 0."""
        self._obs = self.env.reset_to(0)
        self._n0 = len(self.env.rollouts)
        return self._state(0, self.env.ctrl_ref[0][self.act_ids])

    def _state(self, k: int, command) -> StreamStep:
        env = self.env
        pos, quat = env.object_state()
        poses = _poses(pos[0], quat[0])
        t = int(env.frame[0])
        targets = np.asarray(env.ref.object_pose[t])
        pe, re_ = env.object_errors()
        return StreamStep(step=k, total_steps=self.total_steps, time_s=t * self.control_dt, command=self.clip(command),
                          joint_positions=env.qpos[0, self.qadr].copy(), object_poses=poses, target_poses=targets,
                          pos_err=pe[0].copy(), rot_err=re_[0].copy())

    def step(self, k: int) -> StreamStep | None:
        """One control step; None when the episode ended with it (``result`` is then set; the env
        auto-reset, so that end state is not returned)."""
        env = self.env
        a = np.asarray(self.player.policy(self._obs), np.float32).reshape(1, -1)
        self._obs, _, done, _ = env.step(a)
        command = env.last_ctrl[0, self.act_ids].copy()
        if done[0]:
            rr = env.rollouts[-1] if len(env.rollouts) > self._n0 else None
            self.result = StreamResult(bool(rr and rr.success), rr.length if rr else k, bool(rr and rr.completed),
                                       rr.e_r if rr else float('nan'), rr.e_t if rr else float('nan'))
            self.last_command = command
            return None
        return self._state(k, command)

    def close(self) -> None:
        self.env.close()
