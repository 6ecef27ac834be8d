"""The skill artefact (dexman_common.artefacts.skill): atomic write, round trip, validation."""
import json

import numpy as np
import pytest

from dexman_common.artefacts import skill as sk


def _skill(**kw):
    base = dict(skill_id='pick_box', reference_id='ref_a', demonstration_id='demo_a', robot_model_hash='abc123',
                obs_dim=200, act_dim=48, num_frames=90, control_rate=30.0,
                config={'env': {'num_envs': 8}, 'ppo': {'horizon_length': 32}, 'reward': {'contact_lambda': 400.0}},
                training={'epochs': 3, 'env_steps': 768}, evaluation={'policy': {'success_rate': 0.5}},
                provenance={'created': 'now'})
    base.update(kw)
    return sk.Skill(**base)


def _rollout(T=5, J=3, O=1):
    return sk.Rollout(joint_names=['a', 'b', 'c'][:J], time_from_start=np.arange(T) / 30.0,
                      positions=np.zeros((T, J)), measured_positions=np.ones((T, J)),
                      object_poses=np.tile(np.eye(4), (O, T, 1, 1)), target_object_poses=np.tile(np.eye(4), (O, T, 1, 1)))


def test_round_trip(tmp_path):
    ckpt = tmp_path / 'last.pth'
    ckpt.write_bytes(b'weights')
    path = sk.save(_skill(), tmp_path / 'skills', ckpt, rollout=_rollout())
    assert path == tmp_path / 'skills' / 'pick_box'
    back = sk.load(path)
    assert back.act_dim == 48 and back.config['reward']['contact_lambda'] == 400.0
    assert back.policy_path.read_bytes() == b'weights'
    r = back.load_rollout()
    assert r.joint_names == ['a', 'b', 'c'] and r.positions.shape == (5, 3)
    np.testing.assert_allclose(r.time_from_start[1], 1 / 30.0)
    meta = json.loads((path / 'skill.json').read_text())
    assert meta['files']['video'] is None and meta['format_version'] == sk.FORMAT_VERSION


def test_rewrite_replaces_whole_directory_and_failure_keeps_the_old(tmp_path):
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'1')
    p = sk.save(_skill(), tmp_path, ckpt, rollout=_rollout())
    with pytest.raises(sk.SkillArtefactError, match='not strictly increasing'):
        bad = _rollout()
        bad.time_from_start[:] = 0.0
        sk.save(_skill(), tmp_path, ckpt, rollout=bad)
    assert sk.load(p).load_rollout() is not None           # the first version is intact
    sk.save(_skill(), tmp_path, ckpt)                        # without a rollout
    assert sk.load(p).load_rollout() is None
    assert sorted(x.name for x in tmp_path.iterdir()) == ['c.pth', 'pick_box']   # no temp dirs left


def test_errors(tmp_path):
    with pytest.raises(sk.SkillArtefactError, match='does not exist'):
        sk.save(_skill(), tmp_path, tmp_path / 'none.pth')
    with pytest.raises(sk.SkillArtefactError, match="lacks the 'ppo' section"):
        _skill(config={'env': {}, 'reward': {}}).validate()
    with pytest.raises(sk.SkillArtefactError, match='not a skill'):
        sk.load(tmp_path)
    ckpt = tmp_path / 'c.pth'
    ckpt.write_bytes(b'1')
    p = sk.save(_skill(), tmp_path / 's', ckpt)
    (p / 'policy.pth').unlink()
    with pytest.raises(sk.SkillArtefactError, match='policy.pth is missing'):
        sk.load(p)
    meta = json.loads((p / 'skill.json').read_text())
    (p / 'skill.json').write_text(json.dumps({**meta, 'format_version': 7}))
    with pytest.raises(sk.SkillArtefactError, match='format_version 7'):
        sk.load(p)
