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
