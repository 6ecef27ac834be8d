"""Skill training end to end on a tiny budget (dexman_rl.core.skill_training, skill_playback, CLIs)."""
import json
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from dexman_common.config import ConfigError
from dexman_description import robot_model as rm

_OK, _WHY = rm.assets_available()
pytestmark = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')

TINY = {'ppo': {'num_envs': 4, 'minibatch_size': 128, 'max_epochs': 3, 'save_every_epochs': 1,
                'eval_every_epochs': 0},
        'job': {'render_video': False, 'eval_envs': 2}, 'success': {'rollouts_per_sequence': 2},
        'env': {'threads': 1}}


def _cfgs(**extra):
    from rl_reference import sim_config
    from dexman_rl.core import skill_training as st
    over = json.loads(json.dumps(TINY))
    for k, v in extra.items():
        over.setdefault(k, {}).update(v)
    c = st.load_configs(over)
    return st.RLConfigs(**{**{f: getattr(c, f) for f in ('env', 'reward', 'success', 'ppo', 'video', 'job')},
                           'sim': sim_config()})


def test_config_overrides_and_errors():
    from dexman_rl.core import skill_training as st
    assert st.overrides_from_strings(['ppo.max_epochs=5', 'env.residual.pos_scale=0.01', 'reward.use_contact=false']) \
        == {'ppo': {'max_epochs': 5}, 'env': {'residual': {'pos_scale': 0.01}}, 'reward': {'use_contact': False}}
    c = st.load_configs({'env': {'residual': {'pos_scale': 0.01}}, 'ppo': {'max_epochs': 7}})
    assert c.env.residual.pos_scale == 0.01 and c.ppo.max_epochs == 7 and c.ppo.gamma == 0.99
    with pytest.raises(ConfigError, match="unknown configuration section"):
        st.load_configs({'pp0': {'max_epochs': 1}})
    with pytest.raises(ConfigError, match="unknown key.*'max_epoch'"):
        st.load_configs({'ppo': {'max_epoch': 1}})
    with pytest.raises(ConfigError, match="'max_epochs' of PPOConfig must be int"):
        st.load_configs({'ppo': {'max_epochs': 'many'}})
    with pytest.raises(ConfigError, match='expected section.key=value'):
        st.parse_override('max_epochs=3')


def test_train_evaluate_export_and_resume(tmp_path):
    from rl_reference import reference_dir, robot_model_dir
    from dexman_common.artefacts import skill as skm
    from dexman_rl.core import skill_playback as sp
    from dexman_rl.core import skill_training as st
    ref, model = reference_dir(), robot_model_dir()
    stop = threading.Event()
    seen = []

    def progress(p):
        seen.append(p['epoch'])
        stop.set()         # asked during epoch 1's report: the stop takes effect at the end of epoch 2
    first = st.train_skill(ref, tmp_path, skill_id='s1', configs=_cfgs(), progress=progress, stop=stop,
                           robot_model_dir=model)
    assert first.skill is None and first.stop_reason == 'stop' and seen == [1, 2]
    assert (tmp_path / '.work' / 's1' / 'checkpoints' / 'last.pth').is_file()
    with pytest.raises(st.SkillTrainingError, match='config differ'):
        st.train_skill(ref, tmp_path, skill_id='s1', configs=_cfgs(reward={'use_contact': False}), resume=True,
                       robot_model_dir=model)
    seen.clear()
    done = st.train_skill(ref, tmp_path, skill_id='s1', configs=_cfgs(), resume=True,
                          progress=lambda p: seen.append(p['epoch']), robot_model_dir=model)
    assert seen == [3] and done.skill.training['epochs'] == 3       # epochs 1-2 were not trained again
    assert not (tmp_path / '.work' / 's1').exists()                  # work dir removed once the skill is written
    skill = skm.load(tmp_path / 's1')
    assert skill.robot_model_hash == st.robot_model_hash(model) and skill.config['ppo']['num_envs'] == 4
    for k in ('policy', 'replay'):
        ev = skill.evaluation[k]
        assert ev['count'] == 2 and 0.0 <= ev['success_rate'] <= 1.0
    r = skill.load_rollout()
    assert len(r.joint_names) == 50 and r.positions.shape[1] == 50 and np.all(np.diff(r.time_from_start) > 0)
    np.testing.assert_allclose(np.diff(r.time_from_start), 1 / 30.0)
    assert r.object_poses.shape[:2] == (1, len(r.time_from_start))
    # playback checks the robot model it runs on
    bad = tmp_path / 'other_model'
    shutil.copytree(model, bad)
    (bad / 'manifest.json').write_text((bad / 'manifest.json').read_text() + ' ')
    with pytest.raises(sp.SkillPlaybackError, match='trained on robot model'):
        sp.SkillPlayer.open(tmp_path / 's1', robot_model_dir=bad)
    player = sp.SkillPlayer.open(tmp_path / 's1', robot_model_dir=model)
    try:
        out = player.evaluate(2)
        assert out['policy']['count'] == 2 and out['replay']['count'] == 2
        # the replay baseline is deterministic for the same evaluation starts
        assert player.evaluate(2)['replay'] == out['replay']
    finally:
        player.close()


def test_cli_bad_input(tmp_path):
    p = subprocess.run([sys.executable, '-m', 'dexman_rl.train_cli', str(tmp_path / 'none'), '--skills', str(tmp_path),
                        '--no-progress'], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and 'train:' in p.stderr and 'Traceback' not in p.stderr
    p = subprocess.run([sys.executable, '-m', 'dexman_rl.train_cli', str(tmp_path), '--set', 'ppo.nope=1',
                        '--no-progress'], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "unknown key" in p.stderr and 'nope' in p.stderr
    p = subprocess.run([sys.executable, '-m', 'dexman_rl.evaluate_cli', str(tmp_path)], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and 'not a skill' in p.stderr
