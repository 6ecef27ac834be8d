"""All foundation-model adapters: registry wiring, stage-interface conformance, and lazy imports
that fail as BackendUnavailable naming what to install (the library made unimportable here)."""
import importlib
import sys

import numpy as np
import pytest

from dexman_perception.core import stages
from dexman_perception.core.backends import _adapter_util as au
from dexman_perception.core.backends import registry

ADAPTERS = [  # (stage, name, protocol, module blocked to simulate a missing library, options)
    ('segmentation', 'sam2', stages.Segmenter, 'sam2.build_sam', {}),
    ('depth', 'vggt', stages.DepthEstimator, 'vggt', {}),
    ('hands', 'hamer', stages.HandEstimator, 'hamer', {}),
    ('body', '4dhumans', stages.BodyEstimator, 'hmr2', {}),
    ('mesh', 'trellis', stages.MeshReconstructor, 'trellis', {}),
    ('pose', 'foundationpose', stages.PoseRefiner, None, {}),
    ('tracks', 'spatialtracker', stages.PointTracker, None, {}),
    ('detection', 'owlv2', None, 'transformers', {}),
]


def adapter_class(stage, name):
    module, cls = registry.BACKENDS[stage][name].split(':')
    return getattr(importlib.import_module(f'{registry.__package__}.{module}'), cls)


@pytest.mark.parametrize('stage,name,protocol,blocked,opts', ADAPTERS)
def test_registered_and_implements_stage(stage, name, protocol, blocked, opts):
    cls = adapter_class(stage, name)
    obj = object.__new__(cls)                      # interface check without loading a model
    if protocol is not None:
        assert isinstance(obj, protocol)
    else:
        assert callable(getattr(obj, 'detect'))
    assert 'follows' in (importlib.import_module(cls.__module__).__doc__ or '').lower()


@pytest.mark.parametrize('stage,name,protocol,blocked,opts', ADAPTERS)
def test_missing_library_or_checkpoint_is_backend_unavailable(monkeypatch, stage, name, protocol,
                                                              blocked, opts):
    if blocked is not None:
        monkeypatch.setitem(sys.modules, blocked, None)           # import now raises ImportError
    with pytest.raises(stages.BackendUnavailable) as e:
        registry.create(stage, name, **opts)
    msg = str(e.value)
    assert len(msg) > 40 and ('install' in msg.lower() or 'download' in msg.lower()
                              or 'clone' in msg.lower())


def test_depth_adapter_is_relative():
    assert adapter_class('depth', 'vggt').metric is False


def test_resolve_device_and_paths(tmp_path):
    assert au.resolve_device('cpu', 'x') == 'cpu'
    import torch
    if not torch.cuda.is_available():
        assert au.resolve_device('auto', 'x') == 'cpu'
        with pytest.raises(stages.BackendUnavailable, match='no CUDA'):
            au.resolve_device('cuda', 'x')
    with pytest.raises(stages.BackendUnavailable, match='CUDA only'):
        au.resolve_device('cpu', 'x', cuda_only=True)
    with pytest.raises(stages.BackendUnavailable, match='no weights configured'):
        au.require_path(None, 'x', 'weights', 'get them')
    with pytest.raises(stages.BackendUnavailable, match='does not exist'):
        au.require_path(tmp_path / 'nope', 'x', 'weights', 'get them')
    assert au.require_path(tmp_path, 'x', 'weights', '') == tmp_path


def test_input_checks():
    with pytest.raises(ValueError):
        au.check_rgb(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError):
        au.check_frames([])
    with pytest.raises(ValueError):
        au.check_K(np.eye(3) * -1)
