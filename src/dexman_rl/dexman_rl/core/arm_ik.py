"""Batched differential IK of the two G1 arms for the residual wrist targets. ROS-free numpy + MuJoCo.

The residual moves each palm target only a little away from the reference palm pose, whose arm
joints q̄_t the retargeting already solved. So instead of an iterative IK per env and step, we
linearise once per reference frame (at env construction):

- for every frame t and arm h: the palm pose FK(q̄_t) (``{lh,rh}_palm`` body, world) and the
  6x7 palm Jacobian J_t,h at q̄_t (``mj_jacBody``: linear rows then angular rows, world frame,
  over the 7 ``arm_joints(side)`` dofs; the waist is welded, fingers do not move the palm);

Per step, for N envs at once (batched 6x6 solves, no MuJoCo call):

    e   = [x_t - p̄_t ;  log(R_t p̄R_tᵀ)]      (position error m, world rotation vector rad)
    q   = q̄_t + J⁺_t e,   J⁺ = Jᵀ (J Jᵀ + λ² I)⁻¹  (damped least squares, λ = ``damping``)

within the joint limits: a joint whose step would leave its range is fixed at the limit and the
other joints re-solved against the remaining error (:func:`box_dls`; the reference often has a
joint exactly at a limit, where a plain clip would lose the motion of the whole step).

Zero residual gives e = 0, so exactly q̄_t. The error of one linear step grows with the square of
the residual; it is the tracking target of a PD controller and the policy closes the loop through
its observations (current vs reference wrist), so the small second-order error is acceptable
(tests/test_rl_arm_ik.py bounds it for 1 cm / 0.05 rad residuals). ``rot_weight`` scales the
angular rows against the linear ones (metres vs radians) in the damped solve.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dexman_common.config import ConfigBase
from dexman_common.geometry import axis_angle_from_rotation

SIDES = ('left', 'right')


@dataclasses.dataclass(frozen=True)
class ArmIKConfig(ConfigBase):
    """Damped least squares of the per-frame linearised arm IK. Nested in EnvConfig (``env: arm_ik:``)."""

    YAML_FILE = 'rl.yaml'

    damping: float = 0.02          # λ of J⁺ = Jᵀ(JJᵀ + λ²I)⁻¹ (units of the weighted residual)
    rot_weight: float = 0.3        # m per rad: angular error rows weighted by this in the solve
    clamp_iterations: int = 3      # rounds of fixing joints at their limits and re-solving

    def __post_init__(self):
        if not (np.isfinite(self.damping) and self.damping >= 0):
            raise ValueError(f'damping must be finite and >= 0, got {self.damping}')
        if self.clamp_iterations < 1:
            raise ValueError(f'clamp_iterations must be >= 1, got {self.clamp_iterations}')
        if not (np.isfinite(self.rot_weight) and self.rot_weight > 0):
            raise ValueError(f'rot_weight must be finite and > 0, got {self.rot_weight}')


class ArmIK:
    """Per-frame linearised IK of both arms.

    ``model``: the MjModel (robot or whole scene); ``qpos_ref`` (T, model.nq): the reference
    configuration of every frame (robot joints at the reference; other qpos entries, e.g. free
    objects, do not move the palms). Attributes after construction: ``palm_pos`` (T, 2, 3),
    ``palm_rot`` (T, 2, 3, 3), ``q_ref`` (T, 2, 7), ``jac`` (T, 2, 6, 7),
    ``lower``/``upper`` (2, 7), ``qpos_adr`` (2, 7) the arm joints' qpos addresses.
    """

    def __init__(self, model, qpos_ref: np.ndarray, cfg: ArmIKConfig | None = None):
        import mujoco

        from dexman_description import robot_model as rm
        self.cfg = cfg or ArmIKConfig()
        qpos_ref = np.asarray(qpos_ref, dtype=float)
        if qpos_ref.ndim != 2 or qpos_ref.shape[1] != model.nq:
            raise ValueError(f'qpos_ref must be (T, nq={model.nq}), got {qpos_ref.shape}')
        if not np.all(np.isfinite(qpos_ref)):
            raise ValueError('qpos_ref has non-finite values')
        T = qpos_ref.shape[0]
        jids = np.array([[model.joint(n).id for n in rm.arm_joints(s)] for s in SIDES])
        self.qpos_adr = model.jnt_qposadr[jids]
        dof_adr = model.jnt_dofadr[jids]
        self.lower = model.jnt_range[jids, 0].copy()
        self.upper = model.jnt_range[jids, 1].copy()
        palm = [model.body(rm.HAND_PREFIX[s] + rm.PALM_BODY).id for s in SIDES]
        self.palm_body_ids = np.array(palm)
        self.palm_pos = np.zeros((T, 2, 3))
        self.palm_rot = np.zeros((T, 2, 3, 3))
        self.jac = np.zeros((T, 2, 6, 7))
        data = mujoco.MjData(model)
        jacp = np.zeros((3, model.nv))
        jacr = np.zeros((3, model.nv))
        for t in range(T):
            data.qpos[:] = qpos_ref[t]
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            for h, b in enumerate(palm):
                self.palm_pos[t, h] = data.xpos[b]
                self.palm_rot[t, h] = data.xmat[b].reshape(3, 3)
                mujoco.mj_jacBody(model, data, jacp, jacr, b)
                self.jac[t, h, :3] = jacp[:, dof_adr[h]]
                self.jac[t, h, 3:] = jacr[:, dof_adr[h]]
        self.q_ref = qpos_ref[:, self.qpos_adr]

    @property
    def n_frames(self) -> int:
        return self.palm_pos.shape[0]

    def errors(self, frames: np.ndarray, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
        """(N, 2, 6) twist [x - p̄_t ; log(R p̄R_tᵀ)] of targets pos (N, 2, 3), rot (N, 2, 3, 3)."""
        t = np.asarray(frames, dtype=int)
        e = np.empty(np.shape(pos)[:2] + (6,))
        e[..., :3] = np.asarray(pos, dtype=float) - self.palm_pos[t]
        dR = np.asarray(rot, dtype=float) @ np.swapaxes(self.palm_rot[t], -1, -2)
        e[..., 3:] = axis_angle_from_rotation(dR)
        return e

    def solve(self, frames: np.ndarray, pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
        """Arm joint targets (N, 2, 7) for palm targets pos (N, 2, 3) m, rot (N, 2, 3, 3) at the
        reference frames ``frames`` (N,) int: q̄_t + J⁺_t e within the joint limits (see
        :func:`box_dls`)."""
        t = np.asarray(frames, dtype=int)
        w = np.array([1.0, 1.0, 1.0] + [self.cfg.rot_weight] * 3)
        dq = box_dls(self.jac[t] * w[:, None], self.errors(t, pos, rot) * w, self.cfg.damping,
                     self.lower - self.q_ref[t], self.upper - self.q_ref[t], self.cfg.clamp_iterations)
        return np.clip(self.q_ref[t] + dq, self.lower, self.upper)


def box_dls(J: np.ndarray, e: np.ndarray, damping: float, lo: np.ndarray, hi: np.ndarray,
            iterations: int) -> np.ndarray:
    """Damped least-squares step dq (..., n) for J (..., m, n) dq = e (..., m) with lo <= dq <= hi,
    batched: a joint whose unconstrained step leaves its box is fixed at the bound it crossed and
    the others re-solved against the remaining error (up to ``iterations`` rounds; a last clip).
    A 1e-12 floor on the damping keeps the solve defined when every joint is fixed."""
    free = np.ones(J.shape[:-2] + J.shape[-1:], dtype=bool)
    fixed_dq = np.zeros(free.shape)
    eye = np.eye(J.shape[-2])
    dq = fixed_dq
    for _ in range(max(1, iterations)):
        Jf = J * free[..., None, :]
        r = e - np.einsum('...ij,...j->...i', J, fixed_dq)
        y = np.linalg.solve(Jf @ np.swapaxes(Jf, -1, -2) + max(damping ** 2, 1e-12) * eye, r[..., None])[..., 0]
        dq = fixed_dq + np.einsum('...ji,...j->...i', Jf, y)
        viol = free & ((dq < lo - 1e-12) | (dq > hi + 1e-12))
        if not viol.any():
            break
        fixed_dq = np.where(viol, np.clip(dq, lo, hi), fixed_dq)
        free &= ~viol
    return np.clip(dq, lo, hi)
