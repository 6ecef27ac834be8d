"""Policy evaluation on one reference (paper 4.2): success rate, E_r, E_t over rollouts from frame 0.

``evaluate(env, policy=None, rollouts=10)`` switches the env to evaluation mode (every reset at
reference frame 0, no RSI), resets it and steps all N envs until each has finished
``ceil(rollouts / N)`` rollouts; it then takes the first ``rollouts`` of them in (round, env) order,
so early failures are not over-represented, and returns ``success.summarise`` of them: success
rate over all, E_r and E_t over the successful ones. ``policy=None`` is the replay baseline (zero
residual: the retargeted reference played through the PD controllers); otherwise ``policy(obs)``
maps observations (N, obs_dim) float32 to actions (N, act_dim) (numpy or torch). The env is left
in its previous mode but in an arbitrary state: reset it before training on.
"""
from __future__ import annotations

import math

import numpy as np

from .success import RolloutResult, SuccessSummary, summarise


def _as_numpy(a) -> np.ndarray:
    if hasattr(a, 'detach'):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float32)


def collect_rollouts(env, policy=None, count: int | None = None, max_steps: int | None = None) -> list[RolloutResult]:
    """The ``count`` frame-0 rollouts described in the module docstring (list of RolloutResult)."""
    count = int(count if count is not None else env.success_cfg.rollouts_per_sequence)
    if count < 1:
        raise ValueError(f'rollouts must be >= 1, got {count}')
    N = env.num_envs
    rounds = math.ceil(count / N)
    limit = max_steps if max_steps is not None else rounds * (env.horizon + 1) + 1
    was_training = env.train
    env.set_mode(False)
    try:
        env.rollouts.clear()
        obs = env.reset()
        per_env: list[list[RolloutResult]] = [[] for _ in range(N)]
        zero = np.zeros((N, env.act_dim), dtype=np.float32)
        for _ in range(limit):
            if min(len(r) for r in per_env) >= rounds:
                break
            actions = zero if policy is None else _as_numpy(policy(obs)).reshape(N, env.act_dim)
            obs, _, _, _ = env.step(actions)
            while env.rollouts:
                r = env.rollouts.popleft()
                per_env[r.env_id].append(r)
        else:
            raise RuntimeError(f'evaluation did not finish {count} rollouts within {limit} steps')
    finally:
        env.set_mode(was_training)
    ordered = [per_env[i][k] for k in range(rounds) for i in range(N)]
    return ordered[:count]


def evaluate(env, policy=None, rollouts: int | None = None) -> SuccessSummary:
    """Success summary of ``rollouts`` frame-0 rollouts (default ``SuccessConfig.rollouts_per_sequence``;
    module docstring)."""
    return summarise(collect_rollouts(env, policy, rollouts))
