"""SAM2 adapter (backends/sam2_adapter.py): pure pre/post-processing, and a real end-to-end run of
the sam2 1.1.0 video predictor with random weights at 256 px on tiny frames (skipped when the
optional sam2 extra is not installed). With random weights the propagated masks are noise; only
their shapes/types and the first frame (SAM2 passes a mask prompt through as that frame's output)
are meaningful."""
import importlib.util

import numpy as np
import pytest

from dexman_perception.core.backends import registry
from dexman_perception.core.backends import sam2_adapter as sa
from dexman_perception.core.stages import BackendUnavailable, Segmenter

HAVE_SAM2 = importlib.util.find_spec('sam2') is not None
needs_sam2 = pytest.mark.skipif(
    not HAVE_SAM2, reason='optional SAM2 extra not installed: pip install pillow hydra-core iopath; '
                          'SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation sam2==1.1.0')


def test_resolution_overrides():
    assert sa.resolution_overrides(None) == []
    ov = sa.resolution_overrides(256)
    assert '++model.image_size=256' in ov
    assert '++model.memory_attention.layer.self_attention.feat_sizes=[16,16]' in ov
    assert '++model.memory_attention.layer.cross_attention.feat_sizes=[16,16]' in ov
    with pytest.raises(ValueError):
        sa.resolution_overrides(250)


def test_normalize_prompts():
    m = np.zeros((4, 6), bool)
    m[1:3, 2:4] = True
    out = sa.normalize_prompts({'mug': m, 'table': [-3, 1, 9, 3]}, (4, 6))
    assert [(o, k) for o, k, _ in out] == [('mug', 'mask'), ('table', 'box')]
    assert out[0][2].dtype == bool and out[0][2].sum() == 4
    np.testing.assert_array_equal(out[1][2], np.array([0, 1, 5, 3], np.float32))   # clipped
    assert out[1][2].dtype == np.float32
    with pytest.raises(ValueError, match='empty'):
        sa.normalize_prompts({'a': np.zeros((4, 6), bool)}, (4, 6))
    with pytest.raises(ValueError, match='is \\(4, 5\\)'):
        sa.normalize_prompts({'a': np.ones((4, 5), bool)}, (4, 6))
    with pytest.raises(ValueError, match='degenerate'):
        sa.normalize_prompts({'a': [3, 1, 3, 2]}, (4, 6))
    with pytest.raises(ValueError, match='no prompts'):
        sa.normalize_prompts({}, (4, 6))


def test_masks_from_logits_maps_ids_and_thresholds():
    import torch
    logits = torch.tensor([[[[1.0, -1.0], [0.0, 2.0]]], [[[-5.0, 0.5], [0.1, -0.1]]]])  # (2,1,2,2)
    out = sa.masks_from_logits(logits, [1, 2], {1: 'mug', 2: 'hand'})
    np.testing.assert_array_equal(out['mug'], [[True, False], [False, True]])      # > 0.0
    np.testing.assert_array_equal(out['hand'], [[False, True], [True, False]])
    assert out['mug'].dtype == bool
    out = sa.masks_from_logits(logits.numpy(), [1, 2], {1: 'mug', 2: 'hand'}, threshold=0.3)
    np.testing.assert_array_equal(out['hand'], [[False, True], [False, False]])
    with pytest.raises(ValueError):
        sa.masks_from_logits(logits, [1], {1: 'mug'})


@needs_sam2
def test_refuses_to_run_without_checkpoint(tmp_path):
    with pytest.raises(BackendUnavailable, match='checkpoint'):
        registry.create('segmentation', 'sam2')
    with pytest.raises(BackendUnavailable, match='does not exist'):
        registry.create('segmentation', 'sam2', checkpoint=str(tmp_path / 'missing.pt'))


@needs_sam2
@pytest.mark.filterwarnings("ignore:cannot import name '_C'")     # optional CUDA extension absent
def test_sam2_video_predictor_end_to_end_random_weights():
    seg = registry.create('segmentation', 'sam2', image_size=256, device='cpu',
                          allow_random_weights=True)
    assert isinstance(seg, Segmenter) and seg.random_weights
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    mug = np.zeros((48, 64), bool)
    mug[10:30, 20:40] = True
    out = seg.segment_video(frames, {'mug': mug, 'table': np.array([2.0, 30.0, 60.0, 47.0])})
    assert len(out) == 3
    for per_frame in out:
        assert set(per_frame) == {'mug', 'table'}
        for m in per_frame.values():
            assert m.shape == (48, 64) and m.dtype == bool
    # a mask prompt is SAM2's own output on its frame (use_mask_input_as_output_without_sam)
    iou = (out[0]['mug'] & mug).sum() / (out[0]['mug'] | mug).sum()
    assert iou > 0.9
