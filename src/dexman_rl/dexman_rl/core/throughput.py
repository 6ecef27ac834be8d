"""Throughput of the residual environment against raw MuJoCo stepping of the same scene.

``measure(env, steps)`` times, in the same process and one after the other:

- ``env_steps_per_s``: full control steps of ``env`` (residual + arm IK + physics + rewards +
  observations + auto-resets) with zero actions, counted in env steps (N per ``step`` call);
- ``raw_steps_per_s``: the same scene and thread count doing only the physics of those control
  steps: N copies of the env's MjData taken at the start of the env run replay the ctrl sequence
  the env applied, ``d.ctrl[:] = u; mj_step(m, d, nstep=substeps)`` split over the same number of
  threads, and follow the env's resets outside the timed part (so both runs simulate the same
  motions and contacts), also in env control steps per second;

and returns both with ``ratio = env / raw`` (the share of the physics rate the Python side keeps;
the project's target is >= 0.8) and ``mj_steps_per_s`` (raw physics steps, = raw * substeps).
``cpu_ratio`` is the same ratio on process CPU time (all threads) instead of wall time: less
sensitive to other processes competing for the cores, but blind to threads waiting on each other.
"""
from __future__ import annotations

import concurrent.futures
import copy
import time

import numpy as np


def _raw_rate(env, start, ctrls, resets) -> tuple[float, float]:
    import mujoco
    m, nstep = env.model, env.sim_cfg.substeps
    datas = [copy.copy(d) for d in start]
    chunks = [c for c in np.array_split(np.arange(len(datas)), min(env.cfg.threads, len(datas))) if len(c)]

    def work(idx, u):
        for i in idx:
            datas[i].ctrl[:] = u[i]
            mujoco.mj_step(m, datas[i], nstep=nstep)

    pool = concurrent.futures.ThreadPoolExecutor(len(chunks)) if len(chunks) > 1 else None
    wall = cpu = 0.0
    try:
        for k, u in enumerate(ctrls):
            t0, c0 = time.perf_counter(), time.process_time()
            if pool is None:
                work(chunks[0], u)
            else:
                for f in [pool.submit(work, c, u) for c in chunks]:
                    f.result()
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            for idx, frames in resets.get(k, ()):          # untimed: follow the env's resets
                for i, t in zip(idx, frames):
                    d = datas[i]
                    mujoco.mj_resetData(m, d)
                    d.qpos[:] = env.qpos_ref[t]
                    d.ctrl[:] = env.ctrl_ref[t]
                    mujoco.mj_forward(m, d)
    finally:
        if pool is not None:
            pool.shutdown()
    n = len(datas) * len(ctrls)
    return n / wall, n / cpu


def _env_rate(env, steps: int) -> tuple[float, float, list, list, dict]:
    """(env steps per wall s, per process-CPU s, MjData copies at the start, the ctrl (N, nu) of
    every step, {step: [(env ids, frames)]} the resets done after each step's physics)."""
    start = [copy.copy(d) for d in env.datas]
    ctrls, resets = [], {}
    physics, load = env._physics, env._load_frames

    def recording(ctrl):
        ctrls.append(np.array(ctrl))
        physics(ctrl)

    def loading(idx, frames):
        resets.setdefault(len(ctrls) - 1, []).append((np.array(idx), np.array(frames)))
        load(idx, frames)
    a = np.zeros((env.num_envs, env.act_dim), dtype=np.float32)
    env._physics, env._load_frames = recording, loading
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(steps):
            env.step(a)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        del env._physics, env._load_frames
    return env.num_envs * steps / dt, env.num_envs * steps / cpu, start, ctrls, resets


def measure(env, steps: int = 100, warmup: int = 5, repeats: int = 1) -> dict:
    """{'env_steps_per_s', 'raw_steps_per_s', 'ratio', 'cpu_ratio', 'mj_steps_per_s', 'num_envs',
    'threads', 'steps'}; with ``repeats`` > 1 the two measurements alternate and the best of each is kept."""
    if steps < 1:
        raise ValueError(f'steps must be >= 1, got {steps}')
    env.reset()
    _env_rate(env, warmup)
    env_best = raw_best = env_cpu = raw_cpu = 0.0
    for _ in range(max(1, repeats)):
        rate, cpu_rate, start, ctrls, resets = _env_rate(env, steps)
        env_best, env_cpu = max(env_best, rate), max(env_cpu, cpu_rate)
        rate, cpu_rate = _raw_rate(env, start, ctrls, resets)
        raw_best, raw_cpu = max(raw_best, rate), max(raw_cpu, cpu_rate)
    return {'env_steps_per_s': env_best, 'raw_steps_per_s': raw_best, 'ratio': env_best / raw_best,
            'cpu_ratio': env_cpu / raw_cpu, 'mj_steps_per_s': raw_best * env.sim_cfg.substeps,
            'num_envs': env.num_envs, 'threads': env.cfg.threads, 'steps': steps}


def main(argv=None) -> int:
    """``python -m dexman_rl.core.throughput REFERENCE_DIR [--envs N] [--threads K] [--steps S]``."""
    import argparse
    import json

    from .mujoco_env import MujocoResidualEnv, load_configs
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('reference')
    p.add_argument('--envs', type=int, default=64)
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--steps', type=int, default=100)
    p.add_argument('--repeats', type=int, default=2)
    a = p.parse_args(argv)
    env_cfg, rew, suc, sim = load_configs()
    if a.threads is not None:
        env_cfg = env_cfg.replace(threads=a.threads)
    with MujocoResidualEnv(a.reference, a.envs, env_cfg, sim_cfg=sim, reward_cfg=rew, success_cfg=suc) as env:
        print(json.dumps(measure(env, a.steps, repeats=a.repeats)))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
