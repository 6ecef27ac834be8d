"""The Isaac Gym Preview 4 backend (dexman_rl.core.isaacgym_env). It cannot be installed here, so it
is UNTESTED as a simulator: these tests check that the module imports without Isaac Gym, that
selecting it without Isaac Gym is a clear error raised before any scene work, and its pure helpers
(PhysX per-shape friction, the object URDF)."""
import dataclasses
import importlib
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from dexman_rl.core import backends
from dexman_rl.core.env_config import EnvConfig

MISSING = r"needs the `isaacgym` package \(Isaac Gym Preview 4: isaacgym\.gymapi and isaacgym\.gymtorch\)"


@pytest.fixture
def no_isaacgym(monkeypatch):
    monkeypatch.setitem(sys.modules, 'isaacgym', None)        # `import isaacgym` fails, installed or not


def test_module_imports_without_isaacgym(no_isaacgym):
    import dexman_rl.core.isaacgym_env as ig
    ig = importlib.reload(ig)
    assert ig.IsaacGymResidualEnv.backend_name == 'isaacgym'


def test_missing_isaacgym_is_a_clear_error(no_isaacgym):
    from dexman_rl.core import isaacgym_env as ig
    with pytest.raises(ig.IsaacGymUnavailable, match=MISSING) as e:
        ig.import_isaacgym()
    assert 'developer.nvidia.com/isaac-gym' in str(e.value) and 'import isaacgym before torch' in str(e.value)


def test_selecting_the_backend_without_isaacgym_fails_before_loading_anything(no_isaacgym, tmp_path):
    from dexman_rl.core import isaacgym_env as ig
    cfgs = type('Cfgs', (), {'env': EnvConfig(backend='isaacgym'), 'sim': None, 'reward': None, 'success': None})
    # a reference path that does not exist: the Isaac Gym error must come first
    with pytest.raises(ig.IsaacGymUnavailable, match=MISSING):
        backends.make_vec_env(tmp_path / 'no_reference', cfgs, 4, train=True, model_dir=tmp_path / 'no_model')


def test_torch_imported_first_is_named(monkeypatch, tmp_path):
    """Isaac Gym refuses to load after torch; the error says what to do."""
    pkg = tmp_path / 'isaacgym'
    pkg.mkdir()
    (pkg / '__init__.py').write_text(
        "raise ImportError('PyTorch was imported before isaacgym modules.  '\n"
        "                  'Please import torch after isaacgym modules.')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, 'isaacgym', raising=False)
    from dexman_rl.core import isaacgym_env as ig
    with pytest.raises(ig.IsaacGymUnavailable, match='isaacgym must be imported before torch'):
        ig.import_isaacgym()


def test_physx_shape_friction_averages_to_the_pair_values():
    from dexman_rl.core.isaacgym_env import physx_shape_friction
    from dexman_sim.config import SimConfig
    from dexman_sim.friction import pair_friction
    # the default 'average' convention: exactly Table 5's per-body values
    f = physx_shape_friction(pair_friction(SimConfig()))
    assert (f.hand, f.table, f.object) == pytest.approx((4.0, 0.25, 1.0))
    # 'max': pairs hand-object 4.0, object-table 1.0, object-object 1.0 -> per shape 7.0, 1.0, 1.0
    pair = pair_friction(SimConfig(friction_convention='max'))
    f = physx_shape_friction(pair)
    assert (f.hand, f.table, f.object) == pytest.approx((7.0, 1.0, 1.0))
    assert 0.5 * (f.hand + f.object) == pytest.approx(pair.hand_object)
    assert 0.5 * (f.table + f.object) == pytest.approx(pair.object_table)
    # a hand-object pair below half the object's own coefficient has no non-negative hand value
    with pytest.raises(ValueError, match='cannot be produced by averaging'):
        physx_shape_friction(dataclasses.replace(pair, hand_object=0.2))


def test_object_urdf_carries_the_parts_and_the_mass_properties():
    from dexman_rl.core.isaacgym_env import object_urdf
    I = np.array([[2e-4, 1e-6, 0.0], [1e-6, 3e-4, 2e-6], [0.0, 2e-6, 4e-4]])
    root = ET.fromstring(object_urdf('object_0', ['/a/p0.obj', '/a/p1.obj'], 0.25, [0.0, 0.01, 0.05], I))
    link = root.find('link')
    assert root.tag == 'robot' and link.get('name') == 'object_0'
    assert float(link.find('inertial/mass').get('value')) == 0.25
    assert [float(x) for x in link.find('inertial/origin').get('xyz').split()] == [0.0, 0.01, 0.05]
    inertia = link.find('inertial/inertia').attrib
    assert {k: float(v) for k, v in inertia.items()} == {'ixx': 2e-4, 'ixy': 1e-6, 'ixz': 0.0, 'iyy': 3e-4,
                                                          'iyz': 2e-6, 'izz': 4e-4}
    assert [m.get('filename') for m in link.findall('collision/geometry/mesh')] == ['/a/p0.obj', '/a/p1.obj']
