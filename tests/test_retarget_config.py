"""config/retarget.yaml: every retargeting / robot-model section equals its dataclass defaults and
names every field; unknown sections and keys, ill-typed and bad values are refused with a message
naming the file, the section and the key; the CLI refuses a bad file with exit status 2."""
import dataclasses
import pathlib

import pytest

from dexman_common.config import ConfigError, load_section, read_yaml
from dexman_description.robot_model import BuildOptions
from dexman_retarget.core import options as ro
from dexman_retarget.core.contact_priors import ContactConfig
from dexman_retarget.core.finger_mlp import TrainConfig
from dexman_retarget.core.workspace_fit import WorkspaceFitConfig
from dexman_retarget.core.wrist_ik import IKOptions
from dexman_retarget.core.wrist_ik_genesis import GenesisIKOptions

ROOT = pathlib.Path(__file__).resolve().parents[1]
YAML = ROOT / 'config' / 'retarget.yaml'
# the sections this package owns (placement: stable_placement's own test)
OWN = (ro.RetargetOptions, IKOptions, GenesisIKOptions, ContactConfig, WorkspaceFitConfig, TrainConfig, BuildOptions)


def _fields(cls):
    return {f.name for f in dataclasses.fields(cls) if f.init}


def test_yaml_equals_the_defaults():
    assert ro.load_options(YAML) == ro.RetargetOptions()
    for cls in OWN[1:]:
        assert load_section(cls, YAML) == cls(), cls.__name__
    assert ro.default_config_file().resolve() == YAML.resolve()


def test_yaml_names_every_field():
    data = read_yaml(YAML)
    stages = ro.stage_sections()
    assert set(stages) == {'ik', 'genesis_ik', 'contact_priors', 'workspace_fit', 'placement'}
    assert set(data[ro.RetargetOptions.SECTION]) == _fields(ro.RetargetOptions) - set(stages)
    for cls in OWN[1:]:
        assert cls.YAML_FILE == 'retarget.yaml'
        assert set(data[cls.SECTION]) == _fields(cls), cls.__name__


def _write(tmp_path, text):
    p = tmp_path / 'retarget.yaml'
    p.write_text(text)
    return p


def test_unknown_keys_and_sections_are_refused(tmp_path):
    p = _write(tmp_path, 'ik:\n  max_iter: 10\n')
    with pytest.raises(ConfigError, match=r"retarget.yaml \[ik\]: unknown key\(s\) \['max_iter'\] for IKOptions; "
                                          r"known keys: .*'max_iters'"):
        ro.load_options(p)
    p = _write(tmp_path, 'workspace:\n  method: paper\n')
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \['workspace'\]; known sections: .*'workspace_fit'"):
        ro.load_options(p)
    p = _write(tmp_path, 'pipeline:\n  ik:\n    max_iters: 10\n')
    with pytest.raises(ConfigError, match=r"\[pipeline\]: \['ik'\] are sections of their own"):
        ro.load_options(p)
    p = _write(tmp_path, 'finger_mlp:\n  epoch: 3\n')
    with pytest.raises(ConfigError, match=r"\[finger_mlp\]: unknown key\(s\) \['epoch'\] for TrainConfig"):
        load_section(TrainConfig, p)


def test_bad_types_and_values_are_refused(tmp_path):
    p = _write(tmp_path, 'ik:\n  max_iters: many\n')
    with pytest.raises(ConfigError, match=r"\[ik\]: key 'max_iters' of IKOptions must be int, got 'many'"):
        ro.load_options(p)
    p = _write(tmp_path, 'pipeline:\n  ik_backend: magic\n')
    with pytest.raises(ConfigError, match=r"\[pipeline\]: RetargetOptions: unknown ik_backend 'magic'"):
        ro.load_options(p)
    p = _write(tmp_path, 'workspace_fit:\n  method: box\n')
    with pytest.raises(ConfigError, match=r"\[workspace_fit\]: WorkspaceFitConfig: method must be one of"):
        ro.load_options(p)
    p = _write(tmp_path, 'contact_priors:\n  tau_tip: -0.01\n')
    with pytest.raises(ConfigError, match=r'tau_tip and tau_palm must be > 0'):
        ro.load_options(p)
    # a bad value set in code is a RetargetError (and a ValueError)
    with pytest.raises(ro.RetargetError, match='frame_rate must be in'):
        ro.RetargetOptions(frame_rate=0.5)


def test_sections_left_out_take_the_defaults_and_overrides_apply(tmp_path):
    p = _write(tmp_path, 'workspace_fit:\n  method: paper\n')
    o = ro.load_options(p, frame_rate=15.0)
    assert o.workspace_fit == WorkspaceFitConfig(method='paper') and o.frame_rate == 15.0
    assert o.ik == IKOptions() and o.contact_priors == ContactConfig()
    d = o.to_dict()
    assert d['workspace_fit']['method'] == 'paper' and d['ik']['extra_joints'] == []
    assert ro.RetargetOptions.from_dict(d) == o                      # the provenance record round-trips


def test_cli_refuses_a_bad_config(tmp_path, capsys):
    from dexman_retarget import retarget_cli
    p = _write(tmp_path, 'ik:\n  bogus: 1\n')
    demo = tmp_path / 'demo'
    demo.mkdir()
    assert retarget_cli.main([str(demo), '--out', str(tmp_path / 'out'), '--config', str(p), '--no-progress']) == 2
    err = capsys.readouterr().err
    assert "unknown key(s) ['bogus'] for IKOptions" in err and 'Traceback' not in err
