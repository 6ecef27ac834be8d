"""Policy success metric (paper section 4.2, after ManipTrans, over whole episodes). ROS-free numpy.

A rollout is played from reference frame 0 to the end of the reference (``horizon`` steps). It
SUCCEEDS iff at every step and for every object the rotation error is below ``rot_threshold``
(0.5 rad) and the position error below ``pos_threshold`` (0.03 m), both strict; a rollout that
ends before ``horizon`` steps (early termination) fails. Per rollout, E_r (rad) and E_t (m) are
the mean over its steps and objects of the object rotation / position errors against the
reference object pose. ``summarise`` reports the success rate over all rollouts and E_r, E_t
averaged over the SUCCESSFUL rollouts only (NaN when there is none). The paper runs
``rollouts_per_sequence`` (10) rollouts per sequence.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable

import numpy as np

from dexman_common.config import ConfigBase
from dexman_common.geometry import quat_angle as _quat_angle


@dataclasses.dataclass(frozen=True)
class SuccessConfig(ConfigBase):
    """Thresholds of the success test and the evaluation protocol size."""

    SECTION = 'success'
    YAML_FILE = 'rl.yaml'

    rot_threshold: float = 0.5          # rad, per step and object, strict '<'
    pos_threshold: float = 0.03         # m, per step and object, strict '<'
    rollouts_per_sequence: int = 10

    def __post_init__(self):
        if not (self.rot_threshold > 0 and self.pos_threshold > 0):
            raise ValueError('rot_threshold and pos_threshold must be > 0')
        if self.rollouts_per_sequence < 1:
            raise ValueError('rollouts_per_sequence must be >= 1')


def step_errors(obj_pos: np.ndarray, obj_quat: np.ndarray, ref_pos: np.ndarray,
                ref_quat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pos_err (N, O) m, rot_err (N, O) rad in [0, π]) of simulated object poses against the
    reference: positions (N, O, 3) world m, quaternions (N, O, 4) wxyz (sign-invariant)."""
    pos_err = np.linalg.norm(np.asarray(obj_pos, dtype=float) - np.asarray(ref_pos, dtype=float), axis=-1)
    return pos_err, _quat_angle(obj_quat, ref_quat)


@dataclasses.dataclass(frozen=True)
class RolloutResult:
    env_id: int
    success: bool
    length: int          # steps recorded
    completed: bool      # reached the end of the reference (length == horizon)
    e_r: float           # mean rotation error over steps and objects (rad)
    e_t: float           # mean position error over steps and objects (m)


@dataclasses.dataclass(frozen=True)
class SuccessSummary:
    count: int
    num_success: int
    success_rate: float  # num_success / count (NaN when count == 0)
    e_r: float           # mean of E_r over successful rollouts (NaN when none)
    e_t: float           # mean of E_t over successful rollouts (NaN when none)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class SuccessTracker:
    """Accumulates per-step object errors of N envs stepping together; emits one
    :class:`RolloutResult` per finished rollout.

    Call :meth:`step` once per env step with the errors of the state that step reached (before any
    auto-reset) and ``done`` (N,) bool for envs whose episode ended at that step. An env's
    rollout finishes when it has ``horizon`` steps (complete) or when ``done`` is set earlier
    (early termination: failure); its accumulators then restart for the next rollout, which must
    again begin at reference frame 0. :meth:`discard` drops partial rollouts (e.g. an env reset
    to a frame other than 0).
    """

    def __init__(self, num_envs: int, horizon: int, cfg: SuccessConfig | None = None):
        if num_envs < 1 or horizon < 1:
            raise ValueError(f'num_envs and horizon must be >= 1, got {num_envs}, {horizon}')
        self.num_envs, self.horizon = int(num_envs), int(horizon)
        self.cfg = cfg or SuccessConfig()
        self._length = np.zeros(self.num_envs, dtype=int)
        self._ok = np.ones(self.num_envs, dtype=bool)
        self._sum_r = np.zeros(self.num_envs)
        self._sum_t = np.zeros(self.num_envs)

    def discard(self, env_mask: np.ndarray) -> None:
        """Forget the partial rollouts of the envs in env_mask (N,) bool."""
        m = np.asarray(env_mask, dtype=bool)
        self._length[m] = 0
        self._ok[m] = True
        self._sum_r[m] = 0.0
        self._sum_t[m] = 0.0

    def step(self, pos_err: np.ndarray, rot_err: np.ndarray,
             done: np.ndarray | None = None) -> list[RolloutResult]:
        """Record one step: pos_err, rot_err (N, O); done (N,) bool or None. Returns the rollouts
        finished by this step (possibly empty), in env order."""
        pos_err = np.asarray(pos_err, dtype=float)
        rot_err = np.asarray(rot_err, dtype=float)
        if pos_err.shape != rot_err.shape or pos_err.ndim != 2 or pos_err.shape[0] != self.num_envs:
            raise ValueError(f'pos_err and rot_err must both be ({self.num_envs}, O), '
                             f'got {pos_err.shape} and {rot_err.shape}')
        ok = ((rot_err < self.cfg.rot_threshold) & (pos_err < self.cfg.pos_threshold)).all(axis=1)
        self._ok &= ok                       # NaN errors compare False: a failure
        self._length += 1
        self._sum_r += rot_err.mean(axis=1)
        self._sum_t += pos_err.mean(axis=1)
        finished = self._length >= self.horizon
        if done is not None:
            finished |= np.asarray(done, dtype=bool)
        results = []
        for i in np.flatnonzero(finished):
            n = int(self._length[i])
            completed = n >= self.horizon
            results.append(RolloutResult(env_id=int(i), success=bool(self._ok[i] and completed), length=n,
                                         completed=completed, e_r=float(self._sum_r[i] / n),
                                         e_t=float(self._sum_t[i] / n)))
        self.discard(finished)
        return results


def summarise(results: Iterable[RolloutResult]) -> SuccessSummary:
    """Success rate over all rollouts; E_r, E_t averaged over the successful ones (NaN if none)."""
    results = list(results)
    good = [r for r in results if r.success]
    n = len(results)
    return SuccessSummary(
        count=n, num_success=len(good),
        success_rate=len(good) / n if n else float('nan'),
        e_r=float(np.mean([r.e_r for r in good])) if good else float('nan'),
        e_t=float(np.mean([r.e_t for r in good])) if good else float('nan'))
