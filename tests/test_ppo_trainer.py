"""PPO harness (dexman_rl.core.ppo_trainer) on rl_games 1.6.5 with a tiny numpy VecEnv.

Toy task: N 1-D point masses must track targets moving as a·sin(ω t + φ). Action a ∈ [-1, 1] sets
the velocity (0.5 a per step); observation = (position error, target velocity / 0.5, phase
features); reward exp(-5 |error|). Episodes last 40 steps (time-outs), start 0.5-1 away from the
target. A good policy reaches ~0.8 mean step reward; a random or zero one gets ~0.1-0.2.
"""
from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
import torch

pytest.importorskip('rl_games')

from dexman_common.config import ConfigError, load_section  # noqa: E402
from dexman_rl.core.ppo_config import PPOConfig  # noqa: E402
from dexman_rl.core.ppo_trainer import (  # noqa: E402
    TrainingDivergedError, WarmupAdaptiveScheduler, checkpoint_path, load_policy, read_checkpoint, train)

OBS_DIM, ACT_DIM, EP_LEN = 4, 1, 40


class TrackEnv:
    """1-D target tracking; see the module docstring. Optional fault injection for the NaN tests."""

    def __init__(self, num_envs: int, seed: int = 0, nan_at_step: int | None = None, nan_in: str = 'reward',
                 huge_reward_at_step: int | None = None):
        self.num_envs, self.obs_dim, self.act_dim = num_envs, OBS_DIM, ACT_DIM
        self.rng = np.random.default_rng(seed)
        self.nan_at_step, self.nan_in, self.huge_at = nan_at_step, nan_in, huge_reward_at_step
        self.steps = 0
        self.frames_told = 0
        self.restored = None
        self.closed = False
        self.x = np.zeros(num_envs)
        self.t = np.zeros(num_envs, dtype=int)
        self.phase = np.zeros(num_envs)

    def _reset_idx(self, idx):
        n = len(idx)
        self.phase[idx] = self.rng.uniform(0, 2 * np.pi, n)
        self.t[idx] = 0
        self.x[idx] = self._target(idx) + self.rng.choice([-1.0, 1.0], n) * self.rng.uniform(0.5, 1.0, n)

    def _target(self, idx=slice(None)):
        return 0.8 * np.sin(0.15 * self.t[idx] + self.phase[idx])

    def _obs(self):
        ang = 0.15 * self.t + self.phase
        tvel = 0.8 * 0.15 * np.cos(ang)
        return np.stack([self.x - self._target(), tvel / 0.5, np.sin(ang), np.cos(ang)], 1).astype(np.float32)

    def reset(self):
        self._reset_idx(np.arange(self.num_envs))
        return self._obs()

    def step(self, actions):
        assert actions.shape == (self.num_envs, ACT_DIM) and np.all(np.abs(actions) <= 1.0)
        self.steps += 1
        self.x = self.x + 0.5 * actions[:, 0]
        self.t += 1
        err = np.abs(self.x - self._target())
        rew = np.exp(-5.0 * err).astype(np.float32)
        done = self.t >= EP_LEN
        info = {'time_outs': done.copy(), 'reward_terms': {'track': rew.copy(), 'err': err}}
        if done.any():
            idx = np.nonzero(done)[0]
            info['episode'] = {'success': err[idx] < 0.1, 'length': self.t[idx].copy(),
                               'return': np.zeros(len(idx))}
            self._reset_idx(idx)
        obs = self._obs()
        if self.nan_at_step is not None and self.steps >= self.nan_at_step:
            if self.nan_in == 'reward':
                rew[0] = np.nan
            else:
                obs[1, 2] = np.nan
        if self.huge_at is not None and self.steps >= self.huge_at:
            rew[:] = 3e38
        return obs, rew, done, info

    def set_train_info(self, env_frames):
        self.frames_told = env_frames

    def get_state(self):
        return {'steps': self.steps, 'rng': self.rng.bit_generator.state}

    def set_state(self, state):
        self.restored = state
        self.rng.bit_generator.state = state['rng']

    def close(self):
        self.closed = True


def _cfg(**kw) -> PPOConfig:
    base = dict(num_envs=32, horizon_length=16, minibatch_size=256, mini_epochs=4, units=[64, 64],
                learning_rate=3e-3, lr_schedule='warmup', warmup_epochs=2, init_log_sigma=-0.5,
                max_epochs=25, save_every_epochs=5, save_best_after=5, seed=3, torch_threads=1)
    base.update(kw)
    return PPOConfig.from_dict(base)


@pytest.fixture(scope='module')
def learned(tmp_path_factory):
    """One 25-epoch run shared by the learning / policy / TensorBoard tests."""
    out = tmp_path_factory.mktemp('ppo_learn')
    envs, evals = [], []

    def factory():
        envs.append(TrackEnv(32, seed=1))
        return envs[-1]

    def eval_fn(policy, epoch):
        obs = np.random.default_rng(7).normal(size=(5, OBS_DIM)).astype(np.float32)
        evals.append((epoch, obs, policy(obs)))
        return {'probe_mean_action': float(np.mean(evals[-1][2]))}

    cfg = _cfg()
    res = train(factory, cfg, out, resume=False, eval_fn=eval_fn)
    return cfg, out, res, envs, evals


def test_learning_improves_reward(learned):
    cfg, out, res, envs, _ = learned
    r = [h['mean_reward'] for h in res.history]
    print('mean step reward per epoch:', np.round(r, 3))
    assert res.epoch == cfg.max_epochs and res.stop_reason == 'max_epochs'
    assert len(res.history) == cfg.max_epochs
    assert np.mean(r[-3:]) > np.mean(r[:2]) + 0.25, r
    assert np.mean(r[-3:]) > 0.55, r
    h = res.history[-1]
    assert h['env_steps'] == cfg.max_epochs * cfg.batch_size
    assert set(h['reward_terms']) == {'track', 'err'}
    assert h['reward_terms']['track'] == pytest.approx(h['mean_reward'], rel=1e-5)
    assert 0.0 <= h['success_rate'] <= 1.0 and h['episodes'] > 0
    assert h['fps'] > 0 and h['eta_s'] == 0.0 and h['total_epochs'] == cfg.max_epochs
    assert envs[0].closed and envs[0].frames_told == (cfg.max_epochs - 1) * cfg.batch_size
    # warm-up: lr after epoch 1 is half-way (warmup_epochs 2), afterwards KL-adaptive
    assert res.history[0]['lr'] == pytest.approx(1e-6 + (3e-3 - 1e-6) / 2)
    # TensorBoard summaries written by rl_games (plus ours)
    events = list((out / 'rl_games' / 'summaries').glob('events.out.tfevents.*'))
    assert events and sum(e.stat().st_size for e in events) > 1000


def test_warmup_scheduler_then_adaptive():
    s = WarmupAdaptiveScheduler(5e-4, 10, 1e-6, 0.008)
    assert s.lr_at(0) == pytest.approx(1e-6) and s.lr_at(10) == pytest.approx(5e-4)
    assert s.update(1.0, 0.0, 5, 0, kl_dist=1.0)[0] == pytest.approx(1e-6 + (5e-4 - 1e-6) * 0.5)
    assert s.update(5e-4, 0.0, 11, 0, kl_dist=0.1)[0] == pytest.approx(5e-4 / 1.5)    # KL > 2 thr
    assert s.update(5e-4, 0.0, 11, 0, kl_dist=0.001)[0] == pytest.approx(7.5e-4)     # KL < thr / 2
    assert s.update(5e-4, 0.0, 11, 0, kl_dist=0.008)[0] == pytest.approx(5e-4)


def test_load_policy_deterministic_and_same_as_training(learned):
    cfg, out, res, _, evals = learned
    pol = load_policy(res.checkpoint, OBS_DIM, ACT_DIM, cfg)
    obs = np.random.default_rng(0).normal(size=(7, OBS_DIM)).astype(np.float32)
    a1, a2 = pol(obs), pol(obs)
    assert a1.shape == (7, ACT_DIM) and a1.dtype == np.float32
    np.testing.assert_array_equal(a1, a2)
    assert np.all(np.abs(a1) <= 1.0)
    assert pol(obs[0]).shape == (ACT_DIM,)
    np.testing.assert_allclose(pol(obs[0]), a1[0], atol=1e-6)
    # the final epoch's eval_fn saw the same policy (normaliser included) as the checkpoint
    epoch, probe, acts = evals[-1]
    assert epoch == cfg.max_epochs and pol.epoch == cfg.max_epochs
    np.testing.assert_allclose(pol(probe), acts, atol=1e-6)
    # a learned tracker pushes against the error: error +0.5 -> negative action, -0.5 -> positive
    o = np.array([[0.5, 0, 0, 1], [-0.5, 0, 0, 1]], np.float32)
    a = pol(o)[:, 0]
    assert a[0] < -0.3 and a[1] > 0.3, a
    with pytest.raises(ValueError, match='obs_dim'):
        pol(np.zeros((2, OBS_DIM + 1), np.float32))
    assert (out / 'checkpoints' / 'best.pth').is_file() and res.best_checkpoint is not None


def test_checkpoint_and_resume(tmp_path):
    envs = []

    def factory():
        envs.append(TrackEnv(32, seed=5))
        return envs[-1]

    cfg = _cfg(max_epochs=3, save_every_epochs=2)
    r1 = train(factory, cfg, tmp_path, resume=False)
    ck = checkpoint_path(tmp_path)
    assert r1.epoch == 3 and r1.checkpoint == ck and ck.is_file()
    assert [h['checkpoint'] is not None for h in r1.history] == [False, True, True]
    c1 = read_checkpoint(ck)
    assert c1['epoch'] == 3 and c1['dexman']['epoch'] == 3 and c1['frame'] == 3 * cfg.batch_size
    assert '"epoch": 3' in (tmp_path / 'checkpoints' / 'last.json').read_text()
    steps1 = max(int(s['step']) for s in c1['optimizer']['state'].values())
    assert steps1 == 3 * cfg.mini_epochs * (cfg.batch_size // cfg.minibatch_size)
    assert 'running_mean_std.running_mean' in c1['model']

    r2 = train(factory, cfg.replace(max_epochs=6), tmp_path, resume=True)
    assert r2.epoch == 6 and [h['epoch'] for h in r2.history] == [4, 5, 6]
    assert r2.history[0]['env_steps'] == 4 * cfg.batch_size
    assert envs[1].restored == c1['env_state']                      # env state round trip
    assert r2.history[0]['lr'] != pytest.approx(1e-6)             # lr not restarted at warm-up
    c2 = read_checkpoint(ck)
    assert c2['epoch'] == 6 and c2['frame'] == 6 * cfg.batch_size
    steps2 = max(int(s['step']) for s in c2['optimizer']['state'].values())
    assert steps2 == 2 * steps1                                      # Adam state continued
    # running input statistics continued too (count only grows)
    assert float(c2['model']['running_mean_std.count']) > float(c1['model']['running_mean_std.count'])
    # nothing left to do at max_epochs
    r3 = train(factory, cfg.replace(max_epochs=6), tmp_path, resume=True)
    assert r3.epoch == 6 and r3.history == [] and len(envs) == 2
    with pytest.raises(FileNotFoundError):
        train(factory, cfg, tmp_path / 'empty', resume=True)
    # a fresh (resume=False) run in the same folder starts over at epoch 1
    r4 = train(factory, cfg.replace(max_epochs=1), tmp_path, resume=False)
    assert r4.epoch == 1 and read_checkpoint(ck)['epoch'] == 1


@pytest.mark.parametrize('fault', ['reward', 'obs', 'huge_reward'])
def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path, fault):
    cfg = _cfg(max_epochs=10, save_every_epochs=1)
    per_epoch = cfg.horizon_length
    if fault == 'huge_reward':
        env_kw = dict(huge_reward_at_step=2 * per_epoch + 3)
    else:
        env_kw = dict(nan_at_step=2 * per_epoch + 3, nan_in=fault)
    with pytest.raises(TrainingDivergedError, match='epoch 3') as e:
        train(lambda: TrackEnv(32, **env_kw), cfg, tmp_path)
    assert e.value.epoch == 3
    c = read_checkpoint(checkpoint_path(tmp_path))
    assert c['epoch'] == 2
    pol = load_policy(checkpoint_path(tmp_path), OBS_DIM, ACT_DIM, cfg)
    assert np.all(np.isfinite(pol(np.zeros((3, OBS_DIM), np.float32))))


def test_sigterm_checkpoints_and_stops(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    started = threading.Event()

    def killer():
        started.wait(30)
        os.kill(os.getpid(), signal.SIGTERM)

    th = threading.Thread(target=killer, daemon=True)
    th.start()
    cfg = _cfg(max_epochs=10_000, save_every_epochs=0)
    res = train(lambda: TrackEnv(32), cfg, tmp_path,
                progress=lambda info: started.set() if info['epoch'] == 2 else None)
    th.join(5)
    assert res.stop_reason == 'sigterm' and 2 <= res.epoch < 50
    assert read_checkpoint(res.checkpoint)['epoch'] == res.epoch
    assert res.history[-1]['checkpoint'] == str(res.checkpoint)
    assert signal.getsignal(signal.SIGTERM) is previous                # handler restored


def test_stop_event_and_wall_clock(tmp_path):
    stop = threading.Event()
    res = train(lambda: TrackEnv(32), _cfg(max_epochs=1000, save_every_epochs=0), tmp_path / 'a',
                progress=lambda info: stop.set() if info['epoch'] == 2 else None, stop=stop)
    assert res.stop_reason == 'stop' and res.epoch == 3
    assert read_checkpoint(res.checkpoint)['epoch'] == 3
    res = train(lambda: TrackEnv(32), _cfg(max_epochs=1000, save_every_epochs=0, max_wall_s=1.5), tmp_path / 'b')
    assert res.stop_reason == 'wall_clock' and 1 <= res.epoch < 1000 and res.elapsed_s < 4.0
    assert read_checkpoint(res.checkpoint)['epoch'] == res.epoch


def test_config_validation_and_defaults(tmp_path):
    with pytest.raises(ConfigError, match='unknown key'):
        PPOConfig.from_dict({'learning_rat': 1e-3})
    with pytest.raises(ConfigError, match='must divide'):
        PPOConfig.from_dict({'num_envs': 64, 'horizon_length': 32, 'minibatch_size': 1000})
    with pytest.raises(ConfigError, match='lr_schedule'):
        PPOConfig.from_dict({'lr_schedule': 'cosine'})
    with pytest.raises(ConfigError):
        PPOConfig.from_dict({'num_envs': 'many'})
    d = PPOConfig()
    assert (d.units, d.activation, d.learning_rate, d.gamma, d.tau, d.horizon_length, d.minibatch_size,
            d.mini_epochs, d.entropy_coef, d.critic_coef, d.grad_norm, d.e_clip, d.bounds_loss_coef) == \
        ((256, 512, 128, 64), 'elu', 5e-4, 0.99, 0.95, 32, 1024, 5, 0.0, 4.0, 1.0, 0.2, 1e-4)
    assert d.batch_size % d.minibatch_size == 0 and not d.torch_compile and d.torch_threads == 1
    # the shipped config/rl.yaml section parses and keeps Table 5
    here = os.path.dirname(os.path.abspath(__file__))
    y = load_section(PPOConfig, os.path.join(here, '..', 'config', 'rl.yaml'))
    assert y.units == d.units and y.minibatch_size == 1024 and y.learning_rate == 5e-4
    p = d.rl_games_params('x')['params']
    assert p['config']['minibatch_size'] == 1024 and p['config']['torch_compile'] is False
    assert p['torch_threads'] == 1 and p['network']['mlp']['units'] == [256, 512, 128, 64]


def test_torch_threads_restored(tmp_path):
    before = torch.get_num_threads()
    train(lambda: TrackEnv(32), _cfg(max_epochs=1, torch_threads=1), tmp_path)
    assert torch.get_num_threads() == before
