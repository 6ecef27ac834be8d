"""The cumulative residual action space of DexMan (paper B.5), vectorised over N envs. ROS-free numpy.

Per hand h (index 0 LEFT, 1 RIGHT) the policy outputs a_h in [-1, 1]^(3 + 3 + F), F = 18 actuated
finger joints (``dexman_description.robot_model.hand_actuated_joints(side)``; the coupled J0 joints
follow J1 through the model's tendons). The action of one env is the two hands concatenated:
``[left: Δx (3), Δω (3), Δθ (18) | right: Δx, Δω, Δθ]``, ``act_dim = 2 * (6 + F)`` = 48.

Scaling (our choice; the paper gives none): each dimension is multiplied by a per-step scale,
``Δx = pos_scale * a[0:3]`` (m), ``Δω = rot_scale * a[3:6]`` (rad, axis-angle),
``Δθ = finger_scale * a[6:]`` (rad). The defaults are DexTrack's cumulative-residual RATES
(0.5 m/s, 0.5 rad/s, 20 rad/s, residual-rl-notes.md section 1) times our control period 1/30 s,
i.e. at most 1/60 m, 1/60 rad and 2/3 rad per control step and dimension (DexTrack's per-step
bounds at its 60 Hz are half of these; the RATE is what we keep when going to 30 Hz).

Accumulation (paper B.5, bars = retargeted reference at the TARGET frame t):

    x_t = x̄_t + Σ_k Δx_k                      (world frame)
    q_t = q̄_t ⊗ Π_k exp(Δω_k)                 (right-multiplied)
    θ_t = clip(θ̄_t + Σ_k Δθ_k, lower, upper)   (joint limits)

Frame convention of the rotation: right multiplication means each Δω_k is an axis-angle in the
reference wrist's LOCAL (palm body) frame, and the product is taken in step order,
``A_k = A_{k-1} · exp(Δω_k)`` (A_0 = I), so ``R_t = R̄_t · A_t``. Two steps of Δω = 0.1 rad about
the local z give A = Rz(0.2). Δx is in the world frame (the paper writes a plain vector sum).

Anti-windup (our addition, ``finger_anti_windup``): after each step the finger sum Σθ is clipped
to ``[lower - θ̄_t, upper - θ̄_t]``. This does not change θ_t of that step (clip(θ̄ + Σ) = θ̄ +
clip(Σ, lower - θ̄, upper - θ̄)) but stops the sum from growing unboundedly past a limit, which
would make the finger unresponsive for many steps afterwards. ``max_wrist_offset`` (m) and
``max_wrist_angle`` (rad) bound |Σx| and the angle of A in the same way (0 disables a bound).

The sums (Σx (N, 2, 3), A (N, 2, 3, 3), Σθ (N, 2, F)) are kept per env and zeroed by
:meth:`ResidualAccumulator.reset`. NaN actions count as 0; actions are clipped to [-1, 1].
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dexman_common.config import ConfigBase
from dexman_common.geometry import axis_angle_from_rotation, rotation_angle, rotation_from_axis_angle

N_HANDS = 2
WRIST_DIMS = 6                       # Δx (3) + Δω (3)


@dataclasses.dataclass(frozen=True)
class ResidualConfig(ConfigBase):
    """Per-step residual scales (action 1.0 -> this much per control step) and the sum bounds.
    Nested in :class:`dexman_rl.core.mujoco_env.EnvConfig` (``env: residual:`` in config/rl.yaml)."""

    SECTION = ''
    YAML_FILE = 'rl.yaml'

    pos_scale: float = 0.5 / 30.0       # m per step (DexTrack 0.5 m/s at 30 Hz)
    rot_scale: float = 0.5 / 30.0       # rad per step (DexTrack 0.5 rad/s at 30 Hz)
    finger_scale: float = 20.0 / 30.0   # rad per step (DexTrack dofSpeedScale 20 rad/s at 30 Hz)
    finger_anti_windup: bool = True     # clip Σθ so that θ̄_t + Σθ stays within the limits
    max_wrist_offset: float = 0.2       # m, bound on |Σx| (0: none)
    max_wrist_angle: float = 1.0        # rad, bound on the angle of the accumulated rotation (0: none)

    def __post_init__(self):
        for name in ('pos_scale', 'rot_scale', 'finger_scale', 'max_wrist_offset', 'max_wrist_angle'):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0.0):
                raise ValueError(f'{name} must be finite and >= 0, got {v}')


def act_dim(n_fingers: int) -> int:
    """Action dimension of the two hands for ``n_fingers`` actuated finger joints per hand."""
    return N_HANDS * (WRIST_DIMS + int(n_fingers))


def split_actions(actions: np.ndarray, n_fingers: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 2*(6+F)) raw actions -> (a_x (N,2,3), a_w (N,2,3), a_th (N,2,F)), NaN -> 0, clipped to [-1, 1]."""
    a = np.asarray(actions, dtype=float)
    if a.ndim != 2 or a.shape[1] != act_dim(n_fingers):
        raise ValueError(f'actions must be (N, {act_dim(n_fingers)}), got {a.shape}')
    a = np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
    a = a.reshape(a.shape[0], N_HANDS, WRIST_DIMS + n_fingers)
    return a[..., 0:3], a[..., 3:6], a[..., 6:]


def _clip_norm(v: np.ndarray, bound: float) -> np.ndarray:
    if bound <= 0:
        return v
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v * np.minimum(1.0, bound / np.maximum(n, 1e-12))


class ResidualAccumulator:
    """The per-env cumulative residual of both hands (see module docstring).

    ``lower``/``upper`` (2, F) or (F,): the finger joint limits (rad) of the actuated joints.
    """

    def __init__(self, num_envs: int, n_fingers: int, lower: np.ndarray, upper: np.ndarray,
                 cfg: ResidualConfig | None = None):
        self.cfg = cfg or ResidualConfig()
        self.num_envs, self.n_fingers = int(num_envs), int(n_fingers)
        self.lower = np.broadcast_to(np.asarray(lower, dtype=float), (N_HANDS, self.n_fingers)).copy()
        self.upper = np.broadcast_to(np.asarray(upper, dtype=float), (N_HANDS, self.n_fingers)).copy()
        if np.any(self.lower > self.upper):
            raise ValueError('finger joint limits: lower > upper')
        self.sum_x = np.zeros((self.num_envs, N_HANDS, 3))
        self.rot = np.tile(np.eye(3), (self.num_envs, N_HANDS, 1, 1))
        self.sum_th = np.zeros((self.num_envs, N_HANDS, self.n_fingers))

    @property
    def act_dim(self) -> int:
        return act_dim(self.n_fingers)

    def reset(self, env_mask: np.ndarray | None = None) -> None:
        """Zero the sums of the envs in env_mask (N,) bool (None: all)."""
        m = slice(None) if env_mask is None else np.asarray(env_mask, dtype=bool)
        self.sum_x[m] = 0.0
        self.rot[m] = np.eye(3)
        self.sum_th[m] = 0.0

    def accumulate(self, actions: np.ndarray, ref_fingers: np.ndarray | None = None) -> None:
        """Add one step of actions (N, act_dim) to the sums; ``ref_fingers`` (N, 2, F) = θ̄_t of the
        target frame, needed only for the anti-windup clip."""
        a_x, a_w, a_th = split_actions(actions, self.n_fingers)
        c = self.cfg
        self.sum_x = _clip_norm(self.sum_x + c.pos_scale * a_x, c.max_wrist_offset)
        step = rotation_from_axis_angle(c.rot_scale * a_w)
        rot = self.rot @ step
        if c.max_wrist_angle > 0:
            over = rotation_angle(rot) > c.max_wrist_angle
            if over.any():
                rv = axis_angle_from_rotation(rot[over])
                rot[over] = rotation_from_axis_angle(_clip_norm(rv, c.max_wrist_angle))
        self.rot = rot
        self.sum_th = self.sum_th + c.finger_scale * a_th
        if c.finger_anti_windup and ref_fingers is not None:
            ref = np.asarray(ref_fingers, dtype=float)
            self.sum_th = np.clip(self.sum_th, self.lower - ref, self.upper - ref)

    def targets(self, ref_pos: np.ndarray, ref_rot: np.ndarray, ref_fingers: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Wrist and finger targets of the target frame from the reference there:
        ref_pos (N, 2, 3) m, ref_rot (N, 2, 3, 3), ref_fingers (N, 2, F) rad ->
        (x_t (N, 2, 3), R_t (N, 2, 3, 3), θ_t (N, 2, F) clipped to the limits)."""
        x = np.asarray(ref_pos, dtype=float) + self.sum_x
        R = np.asarray(ref_rot, dtype=float) @ self.rot
        th = np.clip(np.asarray(ref_fingers, dtype=float) + self.sum_th, self.lower, self.upper)
        return x, R, th

    def step(self, actions: np.ndarray, ref_pos: np.ndarray, ref_rot: np.ndarray, ref_fingers: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`accumulate` then :meth:`targets` (the usual per-step call)."""
        self.accumulate(actions, ref_fingers)
        return self.targets(ref_pos, ref_rot, ref_fingers)

    def get_state(self) -> dict:
        return {'sum_x': self.sum_x.copy(), 'rot': self.rot.copy(), 'sum_th': self.sum_th.copy()}

    def set_state(self, state: dict) -> None:
        self.sum_x = np.array(state['sum_x'], dtype=float)
        self.rot = np.array(state['rot'], dtype=float)
        self.sum_th = np.array(state['sum_th'], dtype=float)
