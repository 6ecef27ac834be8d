"""Load a trained skill and run it: evaluation, a recorded rollout, or step-by-step playback. ROS-free.

``SkillPlayer.open(skill_dir)`` reads the skill artefact, rebuilds its configuration exactly as it
was trained (the ``config`` recorded in skill.json), checks that the installed robot model is the
one the policy was trained on (manifest hash), loads the reference the skill was trained on (or
the one given) and the policy (rl_games checkpoint, normalisers included).
"""
from __future__ import annotations

import pathlib
from typing import Any

import numpy as np


class SkillPlaybackError(RuntimeError):
    """The skill cannot be played here (robot model differs, reference missing, policy unreadable)."""


class SkillPlayer:
    def __init__(self, skill, configs, ref_data, model_dir: pathlib.Path, policy):
        self.skill, self.configs, self.ref_data = skill, configs, ref_data
        self.model_dir, self.policy = model_dir, policy
        self._eval_env = None

    @classmethod
    def open(cls, skill_dir, *, reference_dir=None, robot_model_dir=None) -> 'SkillPlayer':
        from dexman_common.artefacts import skill as skm
        from dexman_common.config import ConfigError

        from . import skill_training as st
        from .ppo_trainer import load_policy
        from .reference_data import load as load_reference
        skill = skm.load(skill_dir)
        classes = st.config_classes()
        try:
            cfgs = st.RLConfigs(**{name: cls_.from_dict(skill.config.get(name, {}), where=f'{skill_dir}/skill.json [{name}]')
                                   for name, cls_ in classes.items()})
        except ConfigError as e:
            raise SkillPlaybackError(f'skill {skill.skill_id}: its recorded configuration no longer loads ({e})') from e
        model_dir = pathlib.Path(robot_model_dir) if robot_model_dir else pathlib.Path(cfgs.sim.robot_model_path())
        have = st.robot_model_hash(model_dir)
        if have != skill.robot_model_hash:
            raise SkillPlaybackError(
                f'skill {skill.skill_id} was trained on robot model {skill.robot_model_hash[:12]}, the installed one '
                f'({model_dir}) is {have[:12]}: retrain the skill on this model (or pass the matching build)')
        ref_dir = reference_dir or skill.provenance.get('reference_dir')
        if not ref_dir or not pathlib.Path(ref_dir).is_dir():
            raise SkillPlaybackError(f'skill {skill.skill_id}: reference {ref_dir!r} not found; pass --reference')
        ref_data = load_reference(ref_dir, max_unreachable_fraction=cfgs.env.max_unreachable_fraction,
                                  penetration_tolerance=cfgs.sim.penetration_tolerance,
                                  max_table_tilt_deg=cfgs.sim.table_max_tilt_deg)
        if ref_data.reference_id != skill.reference_id:
            raise SkillPlaybackError(f'{ref_dir} holds reference {ref_data.reference_id!r}, the skill was trained on '
                                     f'{skill.reference_id!r}')
        try:
            policy = load_policy(skill.policy_path, skill.obs_dim, skill.act_dim, cfgs.ppo)
        except Exception as e:  # noqa: BLE001 - torch/pickle errors all mean an unusable checkpoint
            raise SkillPlaybackError(f'skill {skill.skill_id}: cannot load {skill.policy_path} ({e})') from e
        return cls(skill, cfgs, ref_data, model_dir, policy)

    def _env(self):
        from . import skill_training as st
        if self._eval_env is None:
            self._eval_env = st.make_env(self.ref_data, self.configs, self.configs.job.eval_envs, train=False,
                                          model_dir=self.model_dir)
            if (self._eval_env.obs_dim, self._eval_env.act_dim) != (self.skill.obs_dim, self.skill.act_dim):
                raise SkillPlaybackError(f'env dims {self._eval_env.obs_dim}/{self._eval_env.act_dim} differ from the '
                                         f'skill\'s {self.skill.obs_dim}/{self.skill.act_dim}')
        return self._eval_env

    def evaluate(self, rollouts: int | None = None) -> dict[str, Any]:
        """{'policy': summary, 'replay': summary} over ``rollouts`` frame-0 rollouts each (paper 4.2)."""
        from . import skill_training as st
        from .evaluate import evaluate
        env = self._env()
        return {'skill_id': self.skill.skill_id,
                'policy': st.summary_dict(evaluate(env, self.policy, rollouts)),
                'replay': st.summary_dict(evaluate(env, None, rollouts))}

    def rollout(self, policy: bool = True):
        """(Rollout, qpos (T, nq), model, look-at) of one unperturbed rollout from frame 0."""
        from . import skill_training as st
        return st.record_rollout(self.ref_data, self.configs, self.model_dir, self.policy if policy else None)

    def close(self) -> None:
        if self._eval_env is not None:
            self._eval_env.close()
            self._eval_env = None
