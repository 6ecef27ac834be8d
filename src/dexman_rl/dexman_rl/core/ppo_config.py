"""PPO settings of the residual policy (paper Table 5) and their translation to rl_games 1.6.5 params.

Defaults = DexMan Table 5, which equals ManipTrans's residual config key for key: actor-critic MLP
[256, 512, 128, 64] ELU (shared trunk), lr 5e-4 with warm-up, γ 0.99, GAE τ 0.95, horizon 32,
minibatch 1024, 5 mini-epochs, entropy 0, critic coef 4, grad-norm clip 1, clip ε 0.2, bounds-loss
1e-4; plus ManipTrans's unstated defaults: input and value normalisation, advantage normalisation,
value bootstrap on time-outs, clipped value loss, "standard" (once per mini-epoch) lr schedule.

Warm-up (``lr_schedule: warmup``, ManipTrans style; stock rl_games 1.6.5 has only ``adaptive``,
``linear`` and constant): lr rises linearly from ``warmup_start_lr`` (1e-6) to ``learning_rate``
over ``warmup_epochs`` epochs, then follows rl_games' KL-adaptive rule (÷1.5 if KL > 2·thr,
×1.5 if KL < thr/2, clamped to [1e-6, 1e-2], thr = ``kl_threshold`` 0.008). Implemented as an
rl_games scheduler in ``ppo_trainer.WarmupAdaptiveScheduler``.

Scaling for a 2-core CPU (documented deviation from the paper's 2048 envs): ``num_envs`` 64
instead of 2048, horizon 32 kept, so one epoch is 64 x 32 = 2048 env steps instead of 65 536.
The minibatch stays at Table 5's 1024 samples (same gradient noise per step), so an epoch has
2 minibatches x 5 mini-epochs = 10 gradient steps instead of 64 x 5 = 320. ``minibatch_size``
must divide ``num_envs * horizon_length`` (rl_games raises otherwise); this is checked here with a
``ConfigError`` listing valid sizes. ``max_epochs`` counts epochs of this (smaller) size.

Residual-policy initialisation (ManipTrans residual network): μ layer glorot-normal with gain
``mu_init_gain`` 0.01 (the residual starts near zero; ``None`` = rl_games' default init), state-
independent learnable log-σ initialised to ``init_log_sigma`` -1 (σ ≈ 0.37).

Runtime: ``torch_compile`` off (31 s first epoch on CPU), ``torch_threads`` 1 so physics threads
keep the other core (0 = leave torch's setting), checkpoints every ``save_every_epochs`` epochs
(0 = only at the end / on stop), ``max_wall_s`` wall-clock budget (None = none).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from dexman_common.config import ConfigBase, ConfigError

LR_SCHEDULES = ('warmup', 'adaptive', 'linear', 'constant')
SCHEDULE_TYPES = ('standard', 'legacy')
ACTIVATIONS = ('relu', 'tanh', 'elu', 'selu', 'swish', 'gelu', 'softplus')


@dataclasses.dataclass(frozen=True)
class PPOConfig(ConfigBase):
    """PPO hyper-parameters and training-run settings (config/rl.yaml, section ``ppo``)."""

    SECTION = 'ppo'
    YAML_FILE = 'rl.yaml'

    # batch geometry (2-CPU scale, see module docstring)
    num_envs: int = 64
    horizon_length: int = 32
    minibatch_size: int = 1024
    mini_epochs: int = 5
    # optimiser and lr schedule
    learning_rate: float = 5e-4
    lr_schedule: str = 'warmup'          # warmup | adaptive | linear | constant
    warmup_epochs: int = 10
    warmup_start_lr: float = 1e-6
    kl_threshold: float = 0.008
    schedule_type: str = 'standard'      # standard: lr update per mini-epoch; legacy: per minibatch
    # PPO losses
    gamma: float = 0.99
    tau: float = 0.95
    entropy_coef: float = 0.0
    critic_coef: float = 4.0             # rl_games loss uses 0.5 * critic_coef * c_loss
    grad_norm: float = 1.0
    e_clip: float = 0.2
    bounds_loss_coef: float = 1e-4
    reward_scale: float = 1.0            # rl_games reward_shaper scale_value
    normalize_input: bool = True
    normalize_value: bool = True
    normalize_advantage: bool = True
    value_bootstrap: bool = True
    clip_value: bool = True
    # network
    units: tuple[int, ...] = (256, 512, 128, 64)
    activation: str = 'elu'
    init_log_sigma: float = -1.0
    mu_init_gain: float | None = 0.01
    # run
    max_epochs: int = 500
    save_every_epochs: int = 25
    save_best_after: int = 10            # epochs before best.pth (best mean episode return) is kept
    eval_every_epochs: int = 0           # call train(eval_fn=...) every N epochs (0: only at the end)
    max_wall_s: float | None = None
    seed: int = 42
    torch_threads: int = 1
    torch_compile: bool = False
    device: str = 'cpu'
    games_to_track: int = 100            # finished episodes in rl_games' mean episode return

    def __post_init__(self):
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise ConfigError(msg)

        for name in ('num_envs', 'horizon_length', 'minibatch_size', 'mini_epochs', 'max_epochs',
                     'games_to_track'):
            need(getattr(self, name) >= 1, f'{name} must be >= 1, got {getattr(self, name)}')
        for name in ('warmup_epochs', 'save_every_epochs', 'save_best_after', 'eval_every_epochs',
                     'torch_threads', 'seed'):
            need(getattr(self, name) >= 0, f'{name} must be >= 0, got {getattr(self, name)}')
        batch = self.num_envs * self.horizon_length
        if batch % self.minibatch_size:
            divisors = [d for d in range(64, batch + 1) if batch % d == 0]
            raise ConfigError(
                f'minibatch_size {self.minibatch_size} must divide num_envs * horizon_length = '
                f'{self.num_envs} * {self.horizon_length} = {batch} (rl_games splits each epoch\'s '
                f'batch into equal minibatches); valid sizes >= 64: {divisors}')
        need(self.lr_schedule in LR_SCHEDULES, f'lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}')
        need(self.schedule_type in SCHEDULE_TYPES,
             f'schedule_type must be one of {SCHEDULE_TYPES}, got {self.schedule_type!r}')
        need(self.activation in ACTIVATIONS, f'activation must be one of {ACTIVATIONS}, got {self.activation!r}')
        need(len(self.units) >= 1 and all(u >= 1 for u in self.units),
             f'units must be a non-empty list of positive layer widths, got {list(self.units)}')
        for name in ('learning_rate', 'warmup_start_lr', 'kl_threshold', 'grad_norm', 'e_clip', 'reward_scale'):
            need(getattr(self, name) > 0.0, f'{name} must be > 0, got {getattr(self, name)}')
        for name in ('entropy_coef', 'critic_coef', 'bounds_loss_coef'):
            need(getattr(self, name) >= 0.0, f'{name} must be >= 0, got {getattr(self, name)}')
        need(0.0 < self.gamma <= 1.0, f'gamma must be in (0, 1], got {self.gamma}')
        need(0.0 <= self.tau <= 1.0, f'tau must be in [0, 1], got {self.tau}')
        need(self.max_wall_s is None or self.max_wall_s > 0.0,
             f'max_wall_s must be > 0 or null (no budget), got {self.max_wall_s}')
        need(self.mu_init_gain is None or self.mu_init_gain > 0.0,
             f'mu_init_gain must be > 0 or null (rl_games default init), got {self.mu_init_gain}')

    @property
    def batch_size(self) -> int:
        """Env steps (= PPO samples) per epoch."""
        return self.num_envs * self.horizon_length

    def rl_games_params(self, env_name: str, *, train_dir: str = 'runs',
                        experiment_name: str = 'rl_games') -> dict[str, Any]:
        """The ``{'params': ...}`` mapping ``rl_games.torch_runner.Runner.load`` takes.

        ``lr_schedule`` 'warmup' and 'constant' are not rl_games names (rl_games falls back to a
        constant lr); ``ppo_trainer``'s agent installs the warm-up scheduler from
        ``warmup_epochs``/``warmup_start_lr`` carried in the same config. rl_games writes its
        TensorBoard summaries to ``train_dir/experiment_name/summaries``.
        """
        mu_init = ({'name': 'default'} if self.mu_init_gain is None
                   else {'name': 'glorot_normal_initializer', 'gain': self.mu_init_gain})
        network = {
            'name': 'actor_critic',
            'separate': False,
            'space': {'continuous': {
                'mu_activation': 'None', 'sigma_activation': 'None',
                'mu_init': mu_init,
                'sigma_init': {'name': 'const_initializer', 'val': self.init_log_sigma},
                'fixed_sigma': True}},
            'mlp': {'units': list(self.units), 'activation': self.activation,
                    'd2rl': False, 'initializer': {'name': 'default'}},
        }
        config = {
            'name': 'dexman_ppo',
            'full_experiment_name': experiment_name,
            'train_dir': train_dir,
            'env_name': env_name,
            'device': self.device,
            'multi_gpu': False,
            'mixed_precision': False,
            'torch_compile': self.torch_compile,
            'ppo': True,
            'num_actors': self.num_envs,
            'horizon_length': self.horizon_length,
            'minibatch_size': self.minibatch_size,
            'mini_epochs': self.mini_epochs,
            'learning_rate': self.learning_rate,
            'lr_schedule': self.lr_schedule,
            'warmup_epochs': self.warmup_epochs,
            'warmup_start_lr': self.warmup_start_lr,
            'kl_threshold': self.kl_threshold,
            'schedule_type': self.schedule_type,
            'gamma': self.gamma,
            'tau': self.tau,
            'entropy_coef': self.entropy_coef,
            'critic_coef': self.critic_coef,
            'truncate_grads': True,
            'grad_norm': self.grad_norm,
            'e_clip': self.e_clip,
            'bounds_loss_coef': self.bounds_loss_coef,
            'bound_loss_type': 'bound',
            'reward_shaper': {'scale_value': self.reward_scale},
            'normalize_input': self.normalize_input,
            'normalize_value': self.normalize_value,
            'normalize_advantage': self.normalize_advantage,
            'value_bootstrap': self.value_bootstrap,
            'clip_value': self.clip_value,
            'clip_actions': True,
            'max_epochs': self.max_epochs,
            'save_frequency': 0,               # the harness writes checkpoints/last.pth itself
            'save_best_after': self.save_best_after,
            'games_to_track': self.games_to_track,
            'print_stats': False,
            'seq_length': 4,
        }
        return {'params': {
            'seed': self.seed,
            'torch_threads': self.torch_threads,
            'algo': {'name': 'a2c_continuous'},
            'model': {'name': 'continuous_a2c_logstd'},
            'network': network,
            'config': config,
        }}
