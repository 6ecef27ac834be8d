"""Simulator backend selection (dexman_rl.core.backends, EnvConfig.backend) and the split between the
simulator-independent base env and its MuJoCo backend."""
import pytest

from dexman_common.config import ConfigError, config_dir, load_section
from dexman_rl.core import backends
from dexman_rl.core.env_config import BACKENDS, EnvConfig


def test_backend_key_defaults_to_mujoco_in_the_dataclass_and_the_yaml():
    assert EnvConfig().backend == 'mujoco'
    assert load_section(EnvConfig, config_dir() / 'rl.yaml').backend == 'mujoco'
    assert BACKENDS == ('mujoco', 'genesis', 'isaacgym')


def test_unknown_backend_is_a_config_error_listing_the_known_ones():
    known = 'known backends: mujoco, genesis, isaacgym'
    with pytest.raises(ConfigError, match=f"unknown simulator backend 'bullet'; {known}"):
        EnvConfig(backend='bullet')
    with pytest.raises(ConfigError, match='known backends: mujoco, genesis, isaacgym'):
        EnvConfig.from_dict({'backend': 'physx'})
    with pytest.raises(ConfigError, match="'bullet'; known backends: mujoco, genesis, isaacgym"):
        backends.env_class('bullet')


def test_env_class_of_each_backend():
    from dexman_rl.core.genesis_env import GenesisResidualEnv
    from dexman_rl.core.isaacgym_env import IsaacGymResidualEnv
    from dexman_rl.core.mujoco_env import MujocoResidualEnv
    from dexman_rl.core.residual_env import ResidualEnvBase
    classes = {b: backends.env_class(b) for b in BACKENDS}
    assert classes == {'mujoco': MujocoResidualEnv, 'genesis': GenesisResidualEnv, 'isaacgym': IsaacGymResidualEnv}
    assert all(issubclass(c, ResidualEnvBase) for c in classes.values())
    assert [c.backend_name for c in classes.values()] == list(BACKENDS)
    # the physics is all a backend supplies
    own = {'_init_physics', '_write_state', '_physics', '_close_physics'}
    for c in classes.values():
        assert own <= set(vars(c))
        assert not {'step', 'reset', 'rewards', '_observe', 'controls'} & set(vars(c))


def test_skill_training_builds_its_envs_through_the_factory(monkeypatch):
    """``skill_training.make_env`` follows ``env.backend`` (a fake backend records its arguments)."""
    from dexman_rl.core import skill_training as st
    made = {}

    class Fake:
        def __init__(self, reference, num_envs, cfg, **kw):
            made.update(reference=reference, num_envs=num_envs, cfg=cfg, **kw)

    monkeypatch.setitem(backends._CLASSES, 'genesis', ('skill_training', 'FakeEnvForTest'))
    monkeypatch.setattr(st, 'FakeEnvForTest', Fake, raising=False)
    cfgs = st.load_configs({'env': {'backend': 'genesis'}})
    env = st.make_env('REF', cfgs, 5, train=False, model_dir='MODEL', env_overrides={'threads': 1})
    assert isinstance(env, Fake)
    assert made['reference'] == 'REF' and made['num_envs'] == 5 and made['train'] is False
    assert made['cfg'].backend == 'genesis' and made['cfg'].threads == 1
    assert made['robot_model_dir'] == 'MODEL' and made['sim_cfg'] is cfgs.sim
    assert made['reward_cfg'] is cfgs.reward and made['success_cfg'] is cfgs.success
