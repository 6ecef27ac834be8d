"""Simulator backend selection: ``EnvConfig.backend`` -> the residual env class. ROS-free.

=========  ==========================================  ===============================================
backend    class                                       status
=========  ==========================================  ===============================================
mujoco     ``mujoco_env.MujocoResidualEnv``            default, tested
genesis    ``genesis_env.GenesisResidualEnv``          optional (``requirements/genesis.txt``), tested
                                                       when ``import genesis`` works
isaacgym   ``isaacgym_env.IsaacGymResidualEnv``        written against Isaac Gym Preview 4, UNTESTED
=========  ==========================================  ===============================================

Every class takes the same arguments and implements the same interface
(:class:`dexman_rl.core.residual_env.ResidualEnvBase`); modules are imported only when chosen,
so a missing optional simulator matters only to the one who selects it.
"""
from __future__ import annotations

import importlib

from dexman_common.config import ConfigError

from .env_config import BACKENDS

_CLASSES = {'mujoco': ('mujoco_env', 'MujocoResidualEnv'),
            'genesis': ('genesis_env', 'GenesisResidualEnv'),
            'isaacgym': ('isaacgym_env', 'IsaacGymResidualEnv')}


def env_class(backend: str) -> type:
    """The residual env class of ``backend`` (ConfigError naming the known ones when unknown)."""
    if backend not in _CLASSES:
        raise ConfigError(f'unknown simulator backend {backend!r}; known backends: {", ".join(BACKENDS)}')
    module, name = _CLASSES[backend]
    return getattr(importlib.import_module(f'{__package__}.{module}'), name)


def make_vec_env(reference, cfgs, num_envs: int, *, train: bool, model_dir=None, env_cfg=None):
    """A residual env of the backend ``(env_cfg or cfgs.env).backend``. ``cfgs``: anything with
    ``env``, ``sim``, ``reward`` and ``success`` configs (e.g. ``skill_training.RLConfigs``);
    ``reference``: a reference directory, ``Reference`` or ``ReferenceData``."""
    env_cfg = env_cfg if env_cfg is not None else cfgs.env
    cls = env_class(env_cfg.backend)
    return cls(reference, num_envs, env_cfg, sim_cfg=cfgs.sim, reward_cfg=cfgs.reward,
               success_cfg=cfgs.success, robot_model_dir=model_dir, train=train)


def main(argv=None) -> int:
    """``python -m dexman_rl.core.backends REFERENCE_DIR [--backend B] [--envs N] [--steps S]``:
    builds the env of backend B (config/rl.yaml and config/sim.yaml otherwise) and prints, as
    JSON, its build time and its rate in env control steps/s (zero actions, training resets,
    after 5 warm-up steps; wall clock and process CPU time)."""
    import argparse
    import json
    import time
    import types

    import numpy as np

    from .env_config import load_configs
    p = argparse.ArgumentParser(description='env steps/s of a residual env backend')
    p.add_argument('reference')
    p.add_argument('--backend', choices=BACKENDS, default=None, help='default: env.backend of config/rl.yaml')
    p.add_argument('--envs', type=int, default=64)
    p.add_argument('--steps', type=int, default=50)
    a = p.parse_args(argv)
    env_cfg, reward, success, sim = load_configs()
    if a.backend:
        env_cfg = env_cfg.replace(backend=a.backend)
    cfgs = types.SimpleNamespace(env=env_cfg, sim=sim, reward=reward, success=success)
    t0 = time.perf_counter()
    env = make_vec_env(a.reference, cfgs, a.envs, train=True)
    build = time.perf_counter() - t0
    try:
        zero = np.zeros((env.num_envs, env.act_dim), np.float32)
        env.reset()
        for _ in range(5):
            env.step(zero)
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            env.step(zero)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        env.close()
    n = env.num_envs * a.steps
    print(json.dumps({'backend': env_cfg.backend, 'num_envs': env.num_envs, 'steps': a.steps,
                      'build_s': round(build, 1), 'env_steps_per_s': round(n / wall, 1),
                      'env_steps_per_cpu_s': round(n / cpu, 1)}))
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
