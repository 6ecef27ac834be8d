"""The vectorised environment interface every simulator backend implements (MuJoCo, Genesis, Isaac Gym).

N environments step together. Arrays are numpy, float32 for observations/actions/rewards, shape
leading dimension N. Actions are in [-1, 1] per dimension; the environment scales them (the
residual scales live in its config). ``step`` auto-resets every environment whose episode ended
(rl_games never calls reset after the first one): the returned observation of such an env is
the first observation of its next episode, and ``info['time_outs']`` marks episodes cut by the
time limit (value bootstrap) as opposed to terminated by a failure.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class VecEnv(Protocol):
    num_envs: int
    obs_dim: int
    act_dim: int

    def reset(self) -> np.ndarray:
        """Reset every env; returns observations (N, obs_dim) float32."""

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Apply actions (N, act_dim) in [-1, 1]; returns (obs (N, obs_dim), reward (N,), done (N,) bool,
        info). ``info`` holds at least ``time_outs`` (N,) bool and ``reward_terms`` {name: (N,) float}
        (the per-term rewards of this step, for logging); finished episodes add ``episode``
        {``success`` (K,) bool, ``length`` (K,) int, ``return`` (K,) float} for the K envs that ended."""

    def set_train_info(self, env_frames: int) -> None:
        """Told the number of env steps trained so far (drives curricula); no-op if unused."""

    def get_state(self) -> dict[str, Any]:
        """Curriculum / RNG state to store in a checkpoint."""

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore what ``get_state`` returned (resume)."""

    def close(self) -> None:
        """Release simulator resources (threads, renderers)."""
