"""Train a skill from a reference: residual PPO in the MuJoCo env, evaluation, export. ROS-free.

``train_skill(reference_dir, skills_root, ...)``:

1. loads every configuration section (``config/rl.yaml``: env, reward, success, ppo, video, job;
   ``config/sim.yaml``: sim) with the caller's overrides ({section: {key: value}}, checked like
   the YAML);
2. trains with ``ppo_trainer.train`` in a work directory ``<skills_root>/.work/<skill_id>/``
   (checkpoints, TensorBoard summaries, ``job.json`` = the configuration of the run). ``resume``
   continues from its last checkpoint, and refuses when the configuration differs from the
   interrupted run's (a resumed run must be the same experiment);
3. evaluates the final policy and the zero-residual replay baseline the same way (paper 4.2:
   ``SuccessConfig.rollouts_per_sequence`` rollouts from frame 0, success rate, E_r and E_t over
   successful rollouts);
4. records one deterministic rollout from frame 0 (unperturbed start) as a JointTrajectory-shaped
   array and, if ``job.render_video``, an offscreen MP4;
5. writes the skill artefact ``<skills_root>/<skill_id>/`` atomically
   (``dexman_common.artefacts.skill``); the work directory is kept until then, so an interrupted
   run loses at most ``ppo.save_every_epochs`` epochs.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import platform
import shutil
import threading
from typing import Any, Callable

import numpy as np

from dexman_common.atomic_io import write_json_atomic
from dexman_common.config import ConfigBase, ConfigError, config_dir, read_yaml

WORK_DIR = '.work'
JOB_FILE = 'job.json'


@dataclasses.dataclass(frozen=True)
class JobConfig(ConfigBase):
    """What a training job does around PPO (``job:`` section of config/rl.yaml)."""

    SECTION = 'job'
    YAML_FILE = 'rl.yaml'

    render_video: bool = True            # write rollout.mp4 into the skill
    keep_work_dir: bool = False          # keep <skills>/.work/<skill_id>/ after the skill is written
    eval_envs: int = 10                  # envs of the evaluation env (rollouts run in parallel)


@dataclasses.dataclass(frozen=True)
class RLConfigs:
    """Every configuration a skill is trained with (one ConfigBase per section)."""

    env: Any
    sim: Any
    reward: Any
    success: Any
    ppo: Any
    video: Any
    job: JobConfig

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name).to_dict() for f in dataclasses.fields(self)}


class SkillTrainingError(RuntimeError):
    """A training job cannot start or finish (bad reference, config mismatch on resume, ...)."""


def config_classes() -> dict[str, type]:
    from dexman_sim.config import SimConfig

    from .mujoco_env import EnvConfig
    from .ppo_config import PPOConfig
    from .rewards import RewardConfig
    from .rollout_video import VideoConfig
    from .success import SuccessConfig
    return {'env': EnvConfig, 'sim': SimConfig, 'reward': RewardConfig, 'success': SuccessConfig,
            'ppo': PPOConfig, 'video': VideoConfig, 'job': JobConfig}


def load_configs(overrides: dict[str, dict[str, Any]] | None = None, *,
                 rl_yaml: str | os.PathLike | None = None, sim_yaml: str | os.PathLike | None = None) -> RLConfigs:
    """All sections from the YAML files (default ``config_dir()``), then ``overrides`` merged in
    ({section: {key: value}}; nested sections as nested dicts). Unknown sections/keys raise ConfigError."""
    overrides = dict(overrides or {})
    classes = config_classes()
    unknown = sorted(set(overrides) - set(classes))
    if unknown:
        raise ConfigError(f'unknown configuration section(s) {unknown}; known: {sorted(classes)}')
    rl_path = pathlib.Path(rl_yaml) if rl_yaml else config_dir() / 'rl.yaml'
    sim_path = pathlib.Path(sim_yaml) if sim_yaml else config_dir() / 'sim.yaml'
    files = {'rl': read_yaml(rl_path), 'sim': read_yaml(sim_path)}
    out = {}
    for name, cls in classes.items():
        path, data = (sim_path, files['sim']) if name == 'sim' else (rl_path, files['rl'])
        section = dict(data.get(cls.SECTION, {}) or {})
        _merge(section, overrides.get(name, {}))
        out[name] = cls.from_dict(section, where=f'{path} [{cls.SECTION}] + overrides')
    return RLConfigs(**out)


def _merge(base: dict, extra: dict) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def parse_override(text: str) -> tuple[str, str, Any]:
    """``section.key[.sub]=value`` (value parsed as YAML: 3, 0.5, true, [1, 2], text) -> (section,
    dotted key, value)."""
    import yaml
    if '=' not in text:
        raise ConfigError(f'override {text!r}: expected section.key=value')
    key, raw = text.split('=', 1)
    parts = key.strip().split('.')
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f'override {text!r}: expected section.key=value (e.g. ppo.max_epochs=50)')
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise ConfigError(f'override {text!r}: value is not valid YAML ({e})') from e
    return parts[0], '.'.join(parts[1:]), value


def overrides_from_strings(items: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        section, key, value = parse_override(item)
        node = out.setdefault(section, {})
        *path, leaf = key.split('.')
        for p in path:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def robot_model_hash(model_dir: str | os.PathLike) -> str:
    """The robot model's identity (``robot_model.manifest_sha256``, as the reference records it)."""
    from dexman_description import robot_model as rm
    try:
        return rm.manifest_sha256(model_dir)
    except FileNotFoundError as e:
        raise SkillTrainingError(f'{model_dir} is not a robot-model build (no manifest.json)') from e


@dataclasses.dataclass
class TrainedSkill:
    skill: Any                      # dexman_common.artefacts.skill.Skill
    path: pathlib.Path
    stop_reason: str


def make_env(ref_data, cfgs: RLConfigs, num_envs: int, *, train: bool, model_dir, env_overrides=None):
    from .backends import make_vec_env
    env_cfg = cfgs.env if not env_overrides else cfgs.env.replace(**env_overrides)
    return make_vec_env(ref_data, cfgs, num_envs, train=train, model_dir=model_dir, env_cfg=env_cfg)


def summary_dict(s) -> dict[str, Any]:
    d = s.to_dict() if hasattr(s, 'to_dict') else dict(s)
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in d.items()}


def record_rollout(ref_data, cfgs: RLConfigs, model_dir, policy=None):
    """One rollout from frame 0 with the unperturbed start (1 env): (Rollout, qpos (T, nq), env model,
    look-at point). ``policy=None`` replays the reference (zero residual). positions[k] is the target
    of the step that ends at time k·dt (k = 0: the reference start); the rollout stops at the last
    state before the episode ended (time limit or failure)."""
    from dexman_common.artefacts.skill import Rollout
    env = make_env(ref_data, cfgs, 1, train=False, model_dir=model_dir,
                    env_overrides={'eval_object_noise_pos': 0.0, 'eval_object_noise_yaw': 0.0, 'threads': 1})
    try:
        m = env.model
        act_ids = np.concatenate([env.arm_act.ravel(), env.finger_act.ravel()])
        joint_ids = m.actuator_trnid[act_ids, 0]
        names = [m.joint(int(j)).name for j in joint_ids]
        qadr = m.jnt_qposadr[joint_ids]
        obs = env.reset_to(0)
        qpos, targets, measured, obj = [env.qpos[0].copy()], [], [], []
        ctrl0 = env.ctrl_ref[0][act_ids]
        targets.append(ctrl0)
        measured.append(env.qpos[0, qadr].copy())
        obj.append(np.stack([env.scene.object_pose(env.datas[0], k) for k in range(env.O)]))
        for _ in range(env.horizon):
            a = np.zeros((1, env.act_dim), np.float32) if policy is None else np.asarray(policy(obs), np.float32).reshape(1, -1)
            obs, _, done, info = env.step(a)
            targets.append(env.last_ctrl[0, act_ids].copy())
            if done[0]:        # the env auto-reset: its state is the next episode's (the end frame is not kept)
                break
            qpos.append(env.qpos[0].copy())
            measured.append(env.qpos[0, qadr].copy())
            obj.append(np.stack([env.scene.object_pose(env.datas[0], k) for k in range(env.O)]))
        T = len(measured)
        targets = np.asarray(targets[:T])
        ref_obj = np.transpose(ref_data.object_pose[:T], (1, 0, 2, 3))
        rollout = Rollout(joint_names=names, time_from_start=np.arange(T) * cfgs.sim.control_dt,
                          positions=targets, measured_positions=np.asarray(measured),
                          object_poses=np.transpose(np.asarray(obj), (1, 0, 2, 3)), target_object_poses=ref_obj)
        lookat = ref_data.object_pos[0].mean(axis=0)
        return rollout, np.asarray(qpos), m, lookat
    finally:
        env.close()


def _git_rev() -> str:
    import subprocess
    try:
        root = pathlib.Path(__file__).resolve().parents[4]
        return subprocess.run(['git', '-C', str(root), 'rev-parse', 'HEAD'], capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001 - not a checkout
        return ''


def _versions() -> dict[str, str]:
    import mujoco
    import torch
    out = {'mujoco': mujoco.__version__, 'torch': str(torch.__version__), 'numpy': np.__version__,
           'python': platform.python_version()}
    try:
        import importlib.metadata as md
        out['rl_games'] = md.version('rl-games')
    except Exception:  # noqa: BLE001
        pass
    return out


def train_skill(reference_dir: str | os.PathLike, skills_root: str | os.PathLike, *,
                skill_id: str | None = None, configs: RLConfigs | None = None, resume: bool = False,
                progress: Callable[[dict], None] | None = None, stop: threading.Event | None = None,
                robot_model_dir: str | os.PathLike | None = None, log: Callable[[str], None] | None = None
                ) -> TrainedSkill:
    """Train, evaluate and write a skill (module docstring). Raises SkillTrainingError, ConfigError,
    ReferenceDataError, ppo_trainer.TrainingDivergedError (the last good checkpoint is kept)."""
    from dexman_common.artefacts import skill as skm

    from . import ppo_trainer
    from .evaluate import evaluate
    from .reference_data import load as load_reference
    from .rollout_video import RolloutVideoError, render_rollout

    say = log or (lambda _m: None)
    cfgs = configs or load_configs()
    model_dir = pathlib.Path(robot_model_dir) if robot_model_dir else pathlib.Path(cfgs.sim.robot_model_path())
    model_hash = robot_model_hash(model_dir)
    ref_data = load_reference(reference_dir, max_unreachable_fraction=cfgs.env.max_unreachable_fraction,
                              penetration_tolerance=cfgs.sim.penetration_tolerance,
                              max_table_tilt_deg=cfgs.sim.table_max_tilt_deg)
    skill_id = skill_id or f'skill_{ref_data.reference_id}'
    if not skill_id or '/' in skill_id or skill_id.startswith('.'):
        raise SkillTrainingError(f'skill id {skill_id!r} must be a plain file name')
    skills_root = pathlib.Path(skills_root)
    work = skills_root / WORK_DIR / skill_id
    job = {'skill_id': skill_id, 'reference_dir': str(pathlib.Path(reference_dir).resolve()),
           'reference_id': ref_data.reference_id, 'robot_model_hash': model_hash, 'config': cfgs.to_dict()}
    job_file = work / JOB_FILE
    if resume:
        if not job_file.is_file():
            raise SkillTrainingError(f'nothing to resume: {job_file} does not exist')
        old = json.loads(job_file.read_text())
        old_cmp = {k: old.get(k) for k in ('reference_id', 'robot_model_hash', 'config')}
        new_cmp = {k: job[k] for k in ('reference_id', 'robot_model_hash', 'config')}
        if old_cmp != new_cmp:
            diff = sorted(k for k in new_cmp if old_cmp.get(k) != new_cmp[k])
            raise SkillTrainingError(f'cannot resume {skill_id}: the {", ".join(diff)} differ from the interrupted run '
                                     f'({job_file}); start a new skill id or train without resume')
    else:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        write_json_atomic(job_file, job)

    say(f'{skill_id}: reference {ref_data.reference_id} ({ref_data.n_frames} frames, {ref_data.n_objects} object(s)), '
        f'{cfgs.ppo.num_envs} envs, {cfgs.ppo.max_epochs} epochs max'
        + (f', {cfgs.ppo.max_wall_s:.0f} s budget' if cfgs.ppo.max_wall_s else ''))
    eval_env = None

    def eval_fn(policy, epoch):
        nonlocal eval_env
        if eval_env is None:
            eval_env = make_env(ref_data, cfgs, cfgs.job.eval_envs, train=False, model_dir=model_dir)
        return summary_dict(evaluate(eval_env, policy))

    try:
        res = ppo_trainer.train(lambda: make_env(ref_data, cfgs, cfgs.ppo.num_envs, train=True, model_dir=model_dir),
                                cfgs.ppo, work, resume=resume, progress=progress, stop=stop,
                                eval_fn=eval_fn if cfgs.ppo.eval_every_epochs > 0 else None)
        if res.checkpoint is None or not pathlib.Path(res.checkpoint).is_file():
            raise SkillTrainingError(f'{skill_id}: training ended ({res.stop_reason}) without a checkpoint')
        if res.stop_reason in ('stop', 'sigterm'):
            say(f'{skill_id}: stopped ({res.stop_reason}) at epoch {res.epoch}; resume to continue')
            return TrainedSkill(None, work, res.stop_reason)
        if eval_env is None:
            eval_env = make_env(ref_data, cfgs, cfgs.job.eval_envs, train=False, model_dir=model_dir)
        policy = ppo_trainer.load_policy(res.checkpoint, eval_env.obs_dim, eval_env.act_dim, cfgs.ppo)
        say(f'{skill_id}: evaluating the policy and the replay baseline '
            f'({cfgs.success.rollouts_per_sequence} rollouts each from frame 0)')
        ev_policy = summary_dict(evaluate(eval_env, policy))
        ev_replay = summary_dict(evaluate(eval_env, None))
        obs_dim, act_dim = eval_env.obs_dim, eval_env.act_dim
    finally:
        if eval_env is not None:
            eval_env.close()

    rollout, qpos, model, lookat = record_rollout(ref_data, cfgs, model_dir, policy)
    video = None
    if cfgs.job.render_video:
        try:
            video = render_rollout(model, qpos, work / 'rollout.mp4', lookat=lookat, cfg=cfgs.video)
        except RolloutVideoError as e:
            say(f'{skill_id}: no video ({e})')
    hist = res.history
    skill = skm.Skill(
        skill_id=skill_id, reference_id=ref_data.reference_id,
        demonstration_id=ref_data.demonstration_id, robot_model_hash=model_hash,
        obs_dim=obs_dim, act_dim=act_dim, num_frames=ref_data.n_frames, control_rate=1.0 / cfgs.sim.control_dt,
        config=cfgs.to_dict(),
        training={'epochs': res.epoch, 'env_steps': res.env_steps, 'stop_reason': res.stop_reason,
                  'wall_s_this_call': res.elapsed_s,
                  'final_mean_reward': hist[-1]['mean_reward'] if hist else None,
                  'curve': [{k: h.get(k) for k in ('epoch', 'env_steps', 'elapsed_s', 'mean_reward', 'reward_terms',
                                                   'success_rate', 'eval')} for h in hist]},
        evaluation={'policy': ev_policy, 'replay': ev_replay,
                    'rollout_frames': int(len(rollout.time_from_start)), 'protocol':
                    'paper 4.2: success = every step, every object: rotation error < rot_threshold and position '
                    'error < pos_threshold; E_r, E_t over successful rollouts; starts perturbed by the env '
                    'evaluation noise'},
        provenance={'reference_dir': job['reference_dir'], 'robot_model_dir': str(model_dir),
                    'created_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                    'git_rev': _git_rev(), 'versions': _versions(), 'host': platform.node(),
                    'warnings': list(getattr(ref_data, 'warnings', []))})
    summaries = work / 'rl_games' / 'summaries'
    path = skm.save(skill, skills_root, res.checkpoint, rollout=rollout, video=video,
                    training_dir=summaries if summaries.is_dir() else None)
    if not cfgs.job.keep_work_dir:
        shutil.rmtree(work, ignore_errors=True)
    say(f'{skill_id}: written to {path} (policy success {ev_policy.get("success_rate")}, '
        f'replay {ev_replay.get("success_rate")})')
    return TrainedSkill(skill, path, res.stop_reason)
