"""PPO training harness: rl_games 1.6.5 ``a2c_continuous`` on any simulator's ``VecEnv``. ROS-free.

``train(env_factory, cfg, out_dir, resume=..., progress=..., stop=...)`` registers an rl_games
vecenv adapter around the ``VecEnv`` the factory builds (``vecenv.register`` +
``env_configurations.register``, names unique per call and removed afterwards) and runs the
stock ``Runner().load(params)`` / ``run({'train': True, 'checkpoint': ...})``. The PPO maths is
rl_games'; the harness hooks in by subclassing ``A2CAgent`` (registered with the runner's
``algo_factory`` under 'a2c_continuous'):

- ``__init__``: installs ``WarmupAdaptiveScheduler`` when ``lr_schedule`` is 'warmup'.
- ``train_epoch``: after rl_games' rollout + update, any non-finite loss, KL or model tensor
  (weights, σ, normaliser statistics) raises ``TrainingDivergedError(epoch)``; a non-finite
  observation or reward from the env raises it from the adapter. Nothing is saved after the
  divergence, so ``checkpoints/last.pth`` stays the last good one.
- ``write_stats`` (end of each epoch, after rl_games' own TensorBoard scalars): logs the env's
  reward terms and success rate, writes ``checkpoints/last.pth`` every ``save_every_epochs``
  epochs, at ``max_epochs`` and when asked to stop (``stop`` event set, SIGTERM received, or the
  next epoch would overrun ``max_wall_s``); a stop then ends rl_games' loop by lowering its
  ``max_epochs`` to the current epoch. Then the progress callback and ``eval_fn`` run.
- ``save``: rl_games' own saves are redirected: its best-mean-return save goes to
  ``checkpoints/best.pth``; its 'last_*' saves are dropped (the harness writes last.pth).
- ``restore`` / ``update_epoch``: on resume, also restore the adaptive lr, the RNG states and
  the best-return threshold (stock rl_games resets the last two).

Checkpoints are rl_games' own dict (``model`` with the input/value normalisers, ``epoch``,
``frame``, ``optimizer``, ``env_state`` from ``VecEnv.get_state``) plus ``dexman`` (epoch, env
steps, lr, dims, the PPOConfig, reason), written atomically (temp file + ``os.replace``), with
``last.json`` beside it recording the epoch. Signals: a SIGTERM handler is installed only while
training and only from the main thread; a stop takes effect at the end of the running epoch.
TensorBoard summaries: ``out_dir/rl_games/summaries``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import pathlib
import random
import signal
import sys
import threading
import time
import uuid
from typing import Any, Callable

import numpy as np
import torch

from dexman_rl.core.ppo_config import PPOConfig
from dexman_rl.core.vec_env import VecEnv

log = logging.getLogger('dexman_rl.ppo')

CHECKPOINT_DIR = 'checkpoints'
LAST_CHECKPOINT = 'last.pth'
BEST_CHECKPOINT = 'best.pth'
LR_MIN, LR_MAX = 1e-6, 1e-2     # rl_games AdaptiveScheduler bounds

ProgressFn = Callable[[dict], None]
EvalFn = Callable[[Callable[[np.ndarray], np.ndarray], int], dict]


class TrainingDivergedError(RuntimeError):
    """Training produced a NaN/inf (loss, parameters, env output); the last good checkpoint is kept."""

    def __init__(self, epoch: int, what: str):
        self.epoch = epoch
        super().__init__(f'PPO training diverged at epoch {epoch}: {what}. '
                         'Training stopped; checkpoints/last.pth (if any) is the last good checkpoint.')


@dataclasses.dataclass
class TrainResult:
    epoch: int                         # epochs trained in total (including resumed ones)
    env_steps: int                     # env steps trained in total
    stop_reason: str                   # max_epochs | stop | sigterm | wall_clock
    checkpoint: pathlib.Path | None    # checkpoints/last.pth
    best_checkpoint: pathlib.Path | None
    elapsed_s: float                   # wall time of this call
    history: list[dict]                # progress dicts of this call's epochs


def checkpoint_path(out_dir: str | os.PathLike) -> pathlib.Path:
    """``out_dir/checkpoints/last.pth`` (it may not exist)."""
    return pathlib.Path(out_dir) / CHECKPOINT_DIR / LAST_CHECKPOINT


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict written by ``train`` (CPU tensors)."""
    return torch.load(str(path), map_location='cpu', weights_only=False)


class WarmupAdaptiveScheduler:
    """rl_games scheduler (``update(lr, entropy_coef, epoch, frames, kl_dist)``): linear warm-up from
    ``start_lr`` to ``target_lr`` over ``warmup_epochs`` epochs, then KL-adaptive like rl_games'
    ``AdaptiveScheduler`` (÷1.5 above 2·thr, ×1.5 below thr/2, clamped to [1e-6, 1e-2])."""

    def __init__(self, target_lr: float, warmup_epochs: int, start_lr: float, kl_threshold: float):
        self.target_lr, self.warmup_epochs = float(target_lr), int(warmup_epochs)
        self.start_lr, self.kl_threshold = float(start_lr), float(kl_threshold)

    def lr_at(self, epoch: int) -> float:
        """Warm-up lr of ``epoch`` (1-based as rl_games counts; 0 = before training)."""
        frac = min(max(epoch, 0) / self.warmup_epochs, 1.0) if self.warmup_epochs else 1.0
        return self.start_lr + (self.target_lr - self.start_lr) * frac

    def update(self, current_lr, entropy_coef, epoch, frames, kl_dist, **kwargs):
        if epoch <= self.warmup_epochs:
            return self.lr_at(epoch), entropy_coef
        lr = current_lr
        if kl_dist > 2.0 * self.kl_threshold:
            lr = max(current_lr / 1.5, LR_MIN)
        if kl_dist < 0.5 * self.kl_threshold:
            lr = min(current_lr * 1.5, LR_MAX)
        return lr, entropy_coef


class Policy:
    """Deterministic policy obs -> action (numpy): μ of rl_games' model, input normaliser applied
    exactly as in training, clamped to [-1, 1]. Accepts (obs_dim,) or (N, obs_dim)."""

    def __init__(self, model: torch.nn.Module, obs_dim: int, act_dim: int, epoch: int | None = None):
        self.model, self.obs_dim, self.act_dim, self.epoch = model, obs_dim, act_dim, epoch

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == 1
        if x.shape[-1] != self.obs_dim or x.ndim not in (1, 2):
            raise ValueError(f'policy expects observations (obs_dim,) or (N, obs_dim) with obs_dim '
                             f'{self.obs_dim}, got shape {x.shape}')
        t = torch.from_numpy(x[None] if single else x).to(next(self.model.parameters()).device)
        was_training = self.model.training
        self.model.eval()        # never update the running statistics here
        try:
            with torch.no_grad():
                mu = self.model.a2c_network({'obs': self.model.norm_obs(t)})[0]
        finally:
            self.model.train(was_training)
        a = torch.clamp(mu, -1.0, 1.0).cpu().numpy().astype(np.float32)
        return a[0] if single else a


def load_policy(checkpoint: str | os.PathLike, obs_dim: int, act_dim: int, cfg: PPOConfig) -> Policy:
    """The deterministic policy of a ``train`` checkpoint (last.pth or best.pth), built with
    rl_games' model builder from ``cfg``'s network settings."""
    from rl_games.algos_torch import model_builder

    params = cfg.rl_games_params(env_name='unused')['params']
    with contextlib.redirect_stdout(sys.stderr):         # rl_games prints the network it builds
        model = model_builder.ModelBuilder().load(params).build({
            'actions_num': act_dim, 'input_shape': (obs_dim,), 'num_seqs': 1, 'value_size': 1,
            'normalize_value': cfg.normalize_value, 'normalize_input': cfg.normalize_input})
    ckpt = read_checkpoint(checkpoint)
    prefix = '_orig_mod.'                                 # a torch.compile'd model's keys
    model.load_state_dict({k[len(prefix):] if k.startswith(prefix) else k: v for k, v in ckpt['model'].items()})
    model.eval()
    return Policy(model, obs_dim, act_dim, epoch=ckpt.get('epoch'))


class _EpochStats:
    """Per-epoch sums of what the env reports (raw rewards, reward terms, finished episodes)."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.steps = 0
        self.reward_sum = 0.0
        self.terms: dict[str, float] = {}
        self.episodes = 0
        self.successes = 0
        self.success_reported = False

    def add(self, reward: np.ndarray, info: dict) -> None:
        self.steps += reward.shape[0]
        self.reward_sum += float(reward.sum(dtype=np.float64))
        for k, v in (info.get('reward_terms') or {}).items():
            self.terms[k] = self.terms.get(k, 0.0) + float(np.sum(v))
        ep = info.get('episode')
        if ep:
            n = len(ep.get('length', ep.get('return', ep.get('success', ()))))
            self.episodes += n
            if 'success' in ep:
                self.success_reported = True
                self.successes += int(np.sum(ep['success']))


def _import_rl_games():
    from rl_games.algos_torch import a2c_continuous, torch_ext
    from rl_games.common import env_configurations, vecenv
    from rl_games.common.algo_observer import AlgoObserver
    from rl_games.common.gym_compat import spaces
    from rl_games.common.ivecenv import IVecEnv
    from rl_games.torch_runner import Runner
    return a2c_continuous, torch_ext, env_configurations, vecenv, AlgoObserver, spaces, IVecEnv, Runner


class _Run:
    """State of one ``train`` call shared by the adapter and the agent."""

    def __init__(self, cfg: PPOConfig, out_dir: pathlib.Path, progress: ProgressFn | None,
                 stop: threading.Event | None, eval_fn: EvalFn | None):
        self.cfg, self.out_dir, self.progress, self.stop, self.eval_fn = cfg, out_dir, progress, stop, eval_fn
        self.ckpt_dir = out_dir / CHECKPOINT_DIR
        self.last_path = self.ckpt_dir / LAST_CHECKPOINT
        self.best_path = self.ckpt_dir / BEST_CHECKPOINT
        self.t0 = time.perf_counter()
        self.stats = _EpochStats()
        self.history: list[dict] = []
        self.sigterm = False
        self.stop_reason = 'max_epochs'
        self.agent = None
        self.env: VecEnv | None = None
        self.first_epoch: int | None = None

    def epoch(self) -> int:
        return int(getattr(self.agent, 'epoch_num', 0))

    # -- checkpoints -----------------------------------------------------------------------
    def write_checkpoint(self, agent, path: pathlib.Path, reason: str) -> None:
        state = agent.get_full_state_weights()
        state['dexman'] = {
            'epoch': int(agent.epoch_num), 'env_steps': int(agent.frame), 'last_lr': float(agent.last_lr),
            'obs_dim': int(self.env.obs_dim), 'act_dim': int(self.env.act_dim),
            'ppo': self.cfg.to_dict(), 'reason': reason, 'time': time.time(),
            'rng': {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(), 'python': random.getstate()},
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, lambda f: torch.save(state, f))
        meta = {k: state['dexman'][k] for k in ('epoch', 'env_steps', 'last_lr', 'reason', 'time')}
        meta['best_mean_return'] = _finite_or_none(agent.last_mean_rewards)
        _atomic_write(path.with_suffix('.json'), lambda f: f.write(json.dumps(meta, indent=1).encode()))
        log.info('checkpoint %s: epoch %d (%s)', path, agent.epoch_num, reason)

    # -- end of epoch ------------------------------------------------------------------------
    def end_of_epoch(self, agent, epoch: int, epoch_s: float, a_losses, c_losses, kls) -> None:
        cfg, s = self.cfg, self.stats
        if self.first_epoch is None:
            self.first_epoch = epoch
        elapsed = time.perf_counter() - self.t0
        n_epochs = epoch - self.first_epoch + 1
        remaining = max(cfg.max_epochs - epoch, 0)
        eta = remaining * elapsed / n_epochs
        steps = max(s.steps, 1)
        ep_return = (float(agent.game_rewards.get_mean()[0]) if agent.game_rewards.current_size > 0 else None)
        info = {
            'epoch': epoch, 'total_epochs': cfg.max_epochs, 'env_steps': int(agent.frame),
            'mean_reward': s.reward_sum / steps,                    # per env step, this epoch
            'reward_terms': {k: v / steps for k, v in s.terms.items()},
            'episodes': s.episodes,
            'success_rate': (s.successes / s.episodes) if (s.success_reported and s.episodes) else None,
            'mean_episode_return': ep_return,                      # rl_games: last games_to_track episodes
            'fps': s.steps / max(epoch_s, 1e-9),
            'elapsed_s': elapsed,
            'eta_s': eta if cfg.max_wall_s is None else min(eta, max(cfg.max_wall_s - elapsed, 0.0)),
            'lr': float(agent.last_lr),
            'kl': _mean(kls), 'a_loss': _mean(a_losses), 'c_loss': _mean(c_losses),
            'checkpoint': None,
        }
        s.reset()
        w = agent.writer
        if w is not None:
            w.add_scalar('dexman/mean_step_reward', info['mean_reward'], epoch)
            for k, v in info['reward_terms'].items():
                w.add_scalar(f'reward_terms/{k}', v, epoch)
            if info['success_rate'] is not None:
                w.add_scalar('dexman/success_rate', info['success_rate'], epoch)

        # stop requests are read once per epoch
        reason = None
        if self.sigterm:
            reason = 'sigterm'
        elif self.stop is not None and self.stop.is_set():
            reason = 'stop'
        elif cfg.max_wall_s is not None and elapsed + epoch_s > cfg.max_wall_s and epoch < cfg.max_epochs:
            reason = 'wall_clock'
        final = epoch >= cfg.max_epochs
        if reason or final or (cfg.save_every_epochs and epoch % cfg.save_every_epochs == 0):
            self.write_checkpoint(agent, self.last_path, reason or ('final' if final else 'periodic'))
            info['checkpoint'] = str(self.last_path)
        if reason:
            self.stop_reason = reason
            agent.max_epochs = epoch          # rl_games' loop ends after this epoch
            log.info('stopping PPO at epoch %d: %s', epoch, reason)

        due = cfg.eval_every_epochs and epoch % cfg.eval_every_epochs == 0
        if self.eval_fn is not None and (final or reason or due):
            res = self.eval_fn(Policy(agent.model, self.env.obs_dim, self.env.act_dim, epoch), epoch) or {}
            info['eval'] = dict(res)
            for k, v in res.items():
                if w is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
                    w.add_scalar(f'eval/{k}', v, epoch)
        if w is not None:
            w.flush()
        self.history.append(info)
        if self.progress is not None:
            self.progress(info)


def _mean(xs) -> float | None:
    return float(torch.stack([torch.as_tensor(x).detach().float().mean() for x in xs]).mean()) if xs else None


def _finite_or_none(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) and x > -1e8 else None


def _atomic_write(path: pathlib.Path, write: Callable[[Any], None]) -> None:
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        with open(tmp, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _build_classes():
    """The adapter and agent classes (defined lazily so importing this module stays cheap)."""
    a2c_continuous, torch_ext, _, _, _, spaces, IVecEnv, _ = _import_rl_games()

    class VecEnvAdapter(IVecEnv):
        """rl_games IVecEnv over a DexMan VecEnv; validates shapes and finiteness of what it returns."""

        def __init__(self, env: VecEnv, run: _Run):
            self.env, self.run = env, run
            if env.num_envs != run.cfg.num_envs:
                raise ValueError(f'the env factory built {env.num_envs} envs but PPOConfig.num_envs is '
                                 f'{run.cfg.num_envs}')
            self.n, self.obs_dim, self.act_dim = env.num_envs, env.obs_dim, env.act_dim

        def get_env_info(self):
            return {'observation_space': spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float32),
                    'action_space': spaces.Box(-1.0, 1.0, (self.act_dim,), np.float32),
                    'agents': 1, 'value_size': 1}

        def _obs(self, obs) -> np.ndarray:
            obs = np.ascontiguousarray(obs, dtype=np.float32)
            if obs.shape != (self.n, self.obs_dim):
                raise ValueError(f'env returned observations of shape {obs.shape}, expected {(self.n, self.obs_dim)}')
            if not np.isfinite(obs).all():
                bad = np.unique(np.nonzero(~np.isfinite(obs))[0])[:8].tolist()
                raise TrainingDivergedError(self.run.epoch(), f'the env returned a non-finite observation '
                                            f'(env indices {bad})')
            return obs

        def reset(self):
            return self._obs(self.env.reset())

        def step(self, actions):
            obs, rew, done, info = self.env.step(np.asarray(actions, dtype=np.float32))
            obs = self._obs(obs)
            rew = np.asarray(rew, dtype=np.float32).reshape(-1)
            done = np.asarray(done).reshape(-1)
            if rew.shape != (self.n,) or done.shape != (self.n,):
                raise ValueError(f'env returned reward {rew.shape} / done {done.shape}, expected ({self.n},)')
            if not np.isfinite(rew).all():
                bad = np.nonzero(~np.isfinite(rew))[0][:8].tolist()
                raise TrainingDivergedError(self.run.epoch(),
                                            f'the env returned a non-finite reward (env indices {bad})')
            self.run.stats.add(rew, info)
            time_outs = np.asarray(info.get('time_outs', np.zeros(self.n, bool))).reshape(-1)
            return obs, rew, done.astype(np.uint8), {'time_outs': time_outs.astype(np.uint8)}

        def get_number_of_agents(self):
            return 1

        def set_train_info(self, env_frames, *args, **kwargs):
            self.env.set_train_info(int(env_frames))

        def get_env_state(self):
            return self.env.get_state()

        def set_env_state(self, env_state):
            if env_state is not None:
                self.env.set_state(env_state)

    class Agent(a2c_continuous.A2CAgent):
        """rl_games' continuous PPO agent with the harness hooks (see the module docstring)."""

        def __init__(self, base_name, params, run: _Run):
            self._run = run
            self._restored_best = None
            self._epoch_t0 = time.perf_counter()
            run.agent = self
            super().__init__(base_name, params)
            if self.config['lr_schedule'] == 'warmup':
                self.scheduler = WarmupAdaptiveScheduler(self.config['learning_rate'], self.config['warmup_epochs'],
                                                         self.config['warmup_start_lr'], self.config['kl_threshold'])
                self.last_lr = self.scheduler.lr_at(0)
                self.update_lr(self.last_lr)

        def restore(self, fn, set_epoch=True):
            ckpt = torch_ext.load_checkpoint(fn)
            self.set_full_state_weights(ckpt, set_epoch=set_epoch)
            extra = ckpt.get('dexman', {})
            if 'last_lr' in extra:
                self.last_lr = float(extra['last_lr'])
                self.update_lr(self.last_lr)
            rng = extra.get('rng')
            if rng:
                torch.set_rng_state(rng['torch'])
                np.random.set_state(rng['numpy'])
                random.setstate(rng['python'])
            self._restored_best = ckpt.get('last_mean_rewards')

        def update_epoch(self):
            if self._restored_best is not None:       # rl_games' train() resets it to -1e9
                self.last_mean_rewards, self._restored_best = self._restored_best, None
            self._epoch_t0 = time.perf_counter()
            return super().update_epoch()

        def train_epoch(self):
            out = super().train_epoch()
            _, _, _, _, a_losses, c_losses, b_losses, _, kls, _, _ = out
            for name, xs in (('actor loss', a_losses), ('critic loss', c_losses),
                             ('bounds loss', b_losses), ('KL', kls)):
                if xs and not bool(torch.isfinite(torch.stack([torch.as_tensor(x).float().mean() for x in xs])).all()):
                    raise TrainingDivergedError(self.epoch_num, f'non-finite {name}')
            for k, v in self.model.state_dict().items():
                if torch.is_floating_point(v) and not bool(torch.isfinite(v).all()):
                    raise TrainingDivergedError(self.epoch_num, f'non-finite values in model tensor {k!r}')
            return out

        def write_stats(self, total_time, epoch_num, step_time, play_time, update_time, a_losses, c_losses,
                        entropies, kls, last_lr, lr_mul, frame, scaled_time, scaled_play_time, curr_frames):
            super().write_stats(total_time, epoch_num, step_time, play_time, update_time, a_losses, c_losses,
                                entropies, kls, last_lr, lr_mul, frame, scaled_time, scaled_play_time, curr_frames)
            self._run.end_of_epoch(self, epoch_num, time.perf_counter() - self._epoch_t0, a_losses, c_losses, kls)

        def save(self, fn):
            if os.path.basename(fn).startswith('last_'):
                return          # rl_games' periodic/final saves: the harness writes last.pth itself
            self._run.write_checkpoint(self, self._run.best_path, 'best')

    return VecEnvAdapter, Agent


def train(env_factory: Callable[[], VecEnv], cfg: PPOConfig, out_dir: str | os.PathLike, *,
          resume: bool = False, progress: ProgressFn | None = None, stop: threading.Event | None = None,
          eval_fn: EvalFn | None = None) -> TrainResult:
    """Train a PPO policy on ``env_factory()`` until ``cfg.max_epochs`` (total, including resumed
    epochs), a stop request, SIGTERM or the wall-clock budget. See the module docstring.

    ``resume``: continue from ``out_dir/checkpoints/last.pth`` (FileNotFoundError if absent);
    without it a fresh run starts and deletes the checkpoints (last/best) already there. ``progress(info)`` is
    called after every epoch with: epoch, total_epochs, env_steps, mean_reward (raw reward per env
    step this epoch), reward_terms {name: mean per env step}, episodes (finished this epoch),
    success_rate (None unless the env reports ``episode['success']``), mean_episode_return
    (rl_games' mean over the last ``games_to_track`` episodes, None before the first), fps (env
    steps per wall second, rollout + update), elapsed_s, eta_s, lr, kl, a_loss, c_loss,
    checkpoint (path written this epoch or None), eval (``eval_fn``'s dict, when it ran).
    ``eval_fn(policy, epoch) -> dict`` gets the current deterministic ``Policy``; it runs every
    ``cfg.eval_every_epochs`` epochs and at the last epoch, its numbers go to TensorBoard (eval/*).
    ``TrainingDivergedError`` on NaN/inf (nothing saved for that epoch).
    """
    _, _, env_configurations, vecenv, AlgoObserver, _, _, Runner = _import_rl_games()
    VecEnvAdapter, Agent = _build_classes()
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(cfg, out, progress, stop, eval_fn)
    ckpt_arg = None
    if resume:
        if not run.last_path.is_file():
            raise FileNotFoundError(f'resume=True but there is no checkpoint at {run.last_path}')
        done = read_checkpoint(run.last_path)
        if int(done['epoch']) >= cfg.max_epochs:
            log.info('checkpoint %s is at epoch %d >= max_epochs %d: nothing to train',
                     run.last_path, done['epoch'], cfg.max_epochs)
            return TrainResult(int(done['epoch']), int(done['frame']), 'max_epochs', run.last_path,
                               run.best_path if run.best_path.is_file() else None, 0.0, [])
        ckpt_arg = str(run.last_path)
    else:
        stale = [p for p in run.ckpt_dir.glob('*') if p.name.split('.')[0] in ('last', 'best')]
        for p in stale:
            p.unlink()
        if stale:
            log.warning('resume=False: removed the previous checkpoints in %s', run.ckpt_dir)

    tag = f'dexman_ppo_{uuid.uuid4().hex[:10]}'

    def make_vec_env(config_name, num_actors, **kwargs):
        run.env = env_factory()
        return VecEnvAdapter(run.env, run)

    vecenv.register(tag, make_vec_env)
    env_configurations.register(tag, {'vecenv_type': tag, 'env_creator': lambda **kwargs: None})
    runner = Runner(algo_observer=AlgoObserver())
    runner.algo_factory.register_builder('a2c_continuous', lambda **kw: Agent(run=run, **kw))

    old_threads = torch.get_num_threads()
    old_handler, installed = None, False
    if threading.current_thread() is threading.main_thread():
        def on_sigterm(signum, frame):
            run.sigterm = True
            log.warning('SIGTERM: PPO will checkpoint and stop at the end of epoch %d', run.epoch())
        old_handler = signal.signal(signal.SIGTERM, on_sigterm)
        installed = True
    else:
        log.info('train() runs outside the main thread: no SIGTERM handler; use the stop event')
    try:
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        with contextlib.redirect_stdout(sys.stderr):     # rl_games prints its chatter to stdout
            runner.load(cfg.rl_games_params(tag, train_dir=str(out)))
            runner.run({'train': True, 'play': False, 'checkpoint': ckpt_arg})
    finally:
        if installed:
            signal.signal(signal.SIGTERM, old_handler if old_handler is not None else signal.SIG_DFL)
        torch.set_num_threads(old_threads)
        vecenv.vecenv_config.pop(tag, None)
        env_configurations.configurations.pop(tag, None)
        if run.agent is not None and getattr(run.agent, 'writer', None) is not None:
            run.agent.writer.close()
        if run.env is not None:
            run.env.close()
    agent = run.agent
    return TrainResult(int(agent.epoch_num), int(agent.frame), run.stop_reason,
                       run.last_path if run.last_path.is_file() else None,
                       run.best_path if run.best_path.is_file() else None,
                       time.perf_counter() - run.t0, run.history)
