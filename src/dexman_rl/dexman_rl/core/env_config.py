"""Configuration of the residual-control environment (``env:`` section of config/rl.yaml). ROS-free.

:class:`EnvConfig` holds what every simulator backend shares (episode rules, RSI, evaluation
noise, residual scales, arm IK) plus ``backend``, the simulator that steps the physics:
``'mujoco'`` (default), ``'genesis'`` (optional install) or ``'isaacgym'`` (untested; see
``dexman_rl.core.backends``). :func:`load_configs` reads it with the reward, success and sim sections.
"""
from __future__ import annotations

import dataclasses
import pathlib

from dexman_common.config import ConfigBase, ConfigError

from .arm_ik import ArmIKConfig
from .residual import ResidualConfig

BACKENDS = ('mujoco', 'genesis', 'isaacgym')


@dataclasses.dataclass(frozen=True)
class EnvConfig(ConfigBase):
    """The residual-control environment (``dexman_rl.core.residual_env``); ``env:`` section of config/rl.yaml."""

    SECTION = 'env'
    YAML_FILE = 'rl.yaml'

    backend: str = 'mujoco'              # physics simulator: 'mujoco' | 'genesis' | 'isaacgym'
    num_envs: int = 64                   # default N when the caller gives none
    threads: int = 2                     # physics worker threads (1: step in the calling thread; MuJoCo)
    rsi_probability: float = 0.5         # training: P(start at a uniformly random frame)
    term_grace_steps: int = 8            # no early termination in the first steps (ManipTrans: 8)
    term_pos_error: float = 0.1          # m, object position error ending the episode
    term_rot_error: float = 1.0          # rad, object rotation error ending the episode
    termination_penalty: float = 0.0     # subtracted from the reward of a failing step
    max_speed: float = 100.0             # |qvel| above this (rad/s or m/s) counts as unstable
    obs_clip: float = 100.0              # observations are clipped to +-obs_clip
    max_unreachable_fraction: float = 0.5   # more unreachable wrist frames: the reference is refused
    seed: int = 0
    eval_object_noise_pos: float = 0.005    # m, std of the xy offset of each object at an evaluation start
    eval_object_noise_yaw: float = 0.05     # rad, std of its rotation about the world z axis
    residual: ResidualConfig = ResidualConfig()
    arm_ik: ArmIKConfig = ArmIKConfig()

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ConfigError(f'unknown simulator backend {self.backend!r}; known backends: {", ".join(BACKENDS)}')
        if self.num_envs < 1 or self.threads < 1:
            raise ValueError(f'num_envs and threads must be >= 1, got {self.num_envs}, {self.threads}')
        if not 0.0 <= self.rsi_probability <= 1.0:
            raise ValueError(f'rsi_probability must be in [0, 1], got {self.rsi_probability}')
        if self.term_grace_steps < 0:
            raise ValueError(f'term_grace_steps must be >= 0, got {self.term_grace_steps}')
        for name in ('term_pos_error', 'term_rot_error', 'max_speed', 'obs_clip'):
            if not getattr(self, name) > 0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        if not 0.0 <= self.max_unreachable_fraction <= 1.0:
            raise ValueError(f'max_unreachable_fraction must be in [0, 1], got {self.max_unreachable_fraction}')
        if self.termination_penalty < 0:
            raise ValueError(f'termination_penalty must be >= 0, got {self.termination_penalty}')
        if self.eval_object_noise_pos < 0 or self.eval_object_noise_yaw < 0:
            raise ValueError('eval_object_noise_pos and eval_object_noise_yaw must be >= 0')


def load_configs(path: str | pathlib.Path | None = None):
    """(EnvConfig, RewardConfig, SuccessConfig) from config/rl.yaml (``path`` overrides) and the
    SimConfig from config/sim.yaml (defaults where a file or section is missing)."""
    from dexman_common.config import config_dir, load_section
    from dexman_sim.config import SimConfig

    from .rewards import RewardConfig
    from .success import SuccessConfig
    rl = pathlib.Path(path) if path is not None else config_dir() / 'rl.yaml'

    def sec(cls, p):
        try:
            return load_section(cls, p)
        except ConfigError as e:
            if 'not found' in str(e) or 'no section' in str(e):
                return cls()
            raise
    sim_path = config_dir() / SimConfig.YAML_FILE
    return (sec(EnvConfig, rl), sec(RewardConfig, rl), sec(SuccessConfig, rl), sec(SimConfig, sim_path))
