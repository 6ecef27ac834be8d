"""The skill artefact: a residual policy trained on a reference (DexMan paper 3.4), ready to evaluate,
play in simulation or export to a robot stack.

Written atomically by ``dexman_rl`` training (a temporary sibling directory renamed into place),
announced on a latched topic by the trainer node, read by evaluation, the policy node and users.

    <skills>/<skill_id>/
        skill.json          ids, robot-model hash, observation/action sizes, the full configuration
                            (env, sim, reward, success, ppo), training summary, evaluation figures
                            (residual policy and the zero-residual replay baseline), provenance
        policy.pth          the rl_games checkpoint the policy is loaded from (model + normalisers)
        rollout.npz         a deterministic rollout from frame 0 (see below), optional
        rollout.mp4         that rollout rendered offscreen, optional
        training/           TensorBoard summaries of the run, optional

rollout.npz (JointTrajectory-shaped, the actuated joints at the control rate):

=====================  =================  ====================================================
array                  shape              content
=====================  =================  ====================================================
joint_names            (J,) str           actuated joints (arms, then hands; coupled J0 joints
                                          excluded: they follow their J1 through the tendons)
time_from_start        (T,) float64       s, monotonic, 0 at the first frame
positions              (T, J)             rad, the position targets sent to the actuators
measured_positions     (T, J)             rad, the simulated joint positions after the step
object_poses           (O, T, 4, 4)       simulated ``T_world_object``
target_object_poses    (O, T, 4, 4)       the reference's object trajectory
=====================  =================  ====================================================

Frames and units (REP 103): ``world`` z up, the robot at the origin facing +y; metres, radians,
seconds.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
from typing import Any

import numpy as np

from ..atomic_io import atomic_directory
from .meta_io import json_default, read_meta

FORMAT_VERSION = 1
META_NAME = 'skill.json'
POLICY_NAME = 'policy.pth'
ROLLOUT_NAME = 'rollout.npz'
VIDEO_NAME = 'rollout.mp4'
_ROLLOUT_ARRAYS = ('joint_names', 'time_from_start', 'positions', 'measured_positions', 'object_poses',
                   'target_object_poses')


class SkillArtefactError(RuntimeError):
    """A skill artefact is missing, incomplete or inconsistent (the message says what and where)."""


@dataclasses.dataclass
class Rollout:
    joint_names: list[str]
    time_from_start: np.ndarray
    positions: np.ndarray
    measured_positions: np.ndarray
    object_poses: np.ndarray
    target_object_poses: np.ndarray

    def validate(self) -> None:
        T, J = np.shape(self.positions)
        if len(self.joint_names) != J:
            raise SkillArtefactError(f'rollout: {len(self.joint_names)} joint names for {J} columns')
        if np.shape(self.time_from_start) != (T,) or np.shape(self.measured_positions) != (T, J):
            raise SkillArtefactError('rollout: time_from_start / measured_positions do not match positions')
        if T > 1 and not np.all(np.diff(self.time_from_start) > 0):
            raise SkillArtefactError('rollout: time_from_start is not strictly increasing')
        if np.ndim(self.object_poses) != 4 or np.shape(self.object_poses)[1] != T \
                or np.shape(self.object_poses) != np.shape(self.target_object_poses):
            raise SkillArtefactError('rollout: object_poses must be (O, T, 4, 4) like target_object_poses')
        if not np.all(np.isfinite(self.positions)):
            raise SkillArtefactError('rollout: non-finite joint positions')


@dataclasses.dataclass
class Skill:
    skill_id: str
    reference_id: str
    demonstration_id: str
    robot_model_hash: str                 # manifest hash of the robot model the policy was trained on
    obs_dim: int
    act_dim: int
    num_frames: int                       # reference length = episode length, control steps
    control_rate: float                   # Hz
    config: dict[str, Any]                # {'env': ..., 'sim': ..., 'reward': ..., 'success': ..., 'ppo': ...}
    training: dict[str, Any]              # epochs, env_steps, wall_s, stop_reason, ...
    evaluation: dict[str, Any]            # {'policy': {...}, 'replay': {...}} (success_rate, e_r, e_t, rollouts)
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    root: pathlib.Path | None = None

    @property
    def policy_path(self) -> pathlib.Path:
        if self.root is None:
            raise SkillArtefactError(f'skill {self.skill_id} has not been saved')
        return self.root / POLICY_NAME

    def load_rollout(self) -> Rollout | None:
        if self.root is None or not (self.root / ROLLOUT_NAME).is_file():
            return None
        with np.load(self.root / ROLLOUT_NAME, allow_pickle=False) as z:
            r = Rollout(**{k: z[k] for k in _ROLLOUT_ARRAYS})
        r.joint_names = [str(n) for n in r.joint_names]
        return r

    def validate(self) -> None:
        def fail(msg):
            raise SkillArtefactError(f'skill {self.skill_id!r}: {msg}')
        if not self.skill_id or '/' in self.skill_id or self.skill_id.startswith('.'):
            fail('skill_id must be a non-empty file name')
        if self.obs_dim <= 0 or self.act_dim <= 0 or self.num_frames <= 0 or self.control_rate <= 0:
            fail('obs_dim, act_dim, num_frames and control_rate must be positive')
        for key in ('env', 'ppo', 'reward'):
            if key not in self.config:
                fail(f'config lacks the {key!r} section')


def save(skill: Skill, root: str | os.PathLike, policy_checkpoint: str | os.PathLike, *,
         rollout: Rollout | None = None, video: str | os.PathLike | None = None,
         training_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Write ``<root>/<skill_id>/`` atomically (replacing a previous skill of the same id)."""
    skill.validate()
    ckpt = pathlib.Path(policy_checkpoint)
    if not ckpt.is_file():
        raise SkillArtefactError(f'policy checkpoint {ckpt} does not exist')
    if rollout is not None:
        rollout.validate()
    final = pathlib.Path(root) / skill.skill_id
    with atomic_directory(final) as tmp:
        shutil.copyfile(ckpt, tmp / POLICY_NAME)
        if rollout is not None:
            np.savez_compressed(tmp / ROLLOUT_NAME, **{k: np.asarray(getattr(rollout, k)) for k in _ROLLOUT_ARRAYS})
        if video is not None and pathlib.Path(video).is_file():
            shutil.copyfile(video, tmp / VIDEO_NAME)
        if training_dir is not None and pathlib.Path(training_dir).is_dir():
            shutil.copytree(training_dir, tmp / 'training')
        meta = {'format_version': FORMAT_VERSION,
                **{f.name: getattr(skill, f.name) for f in dataclasses.fields(skill) if f.name != 'root'},
                'files': {'policy': POLICY_NAME, 'rollout': ROLLOUT_NAME if rollout is not None else None,
                          'video': VIDEO_NAME if (tmp / VIDEO_NAME).is_file() else None},
                'frames': {'world': 'z up, the robot at the origin facing +y', 'units': 'm, rad, s'}}
        (tmp / META_NAME).write_text(json.dumps(meta, indent=2, default=json_default))
    skill.root = final
    return final


def load(path: str | os.PathLike) -> Skill:
    """Read and validate ``<skills>/<skill_id>/``; SkillArtefactError with the reason."""
    path = pathlib.Path(path)
    if not (path / META_NAME).is_file():
        raise SkillArtefactError(f'{path} is not a skill (no {META_NAME})')
    meta = read_meta(path, META_NAME, FORMAT_VERSION, SkillArtefactError)
    names = [f.name for f in dataclasses.fields(Skill) if f.name != 'root']
    try:
        skill = Skill(**{k: meta[k] for k in names}, root=path)
    except KeyError as e:
        raise SkillArtefactError(f'{path}: {META_NAME} lacks {e}') from e
    skill.validate()
    if not (path / POLICY_NAME).is_file():
        raise SkillArtefactError(f'{path}: {POLICY_NAME} is missing')
    return skill
