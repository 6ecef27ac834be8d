"""TRELLIS adapter (backends/trellis_adapter.py): the RGBA object crop handed to
TrellisImageTo3DPipeline.run and the conversion of its MeshExtractResult (vertices (V, 3) float,
faces (F, 3) long torch tensors) to trimesh."""
import numpy as np
import pytest
import torch

from dexman_perception.core.backends import trellis_adapter as tr
from dexman_perception.core.stages import StageFailure


def test_mask_crop_rgba_hand_computed():
    rgb = np.random.default_rng(0).integers(0, 256, (100, 100, 3), dtype=np.uint8)
    mask = np.zeros((100, 100), bool)
    mask[10:30, 40:50] = True                         # 20 rows x 10 cols
    crop = tr.mask_crop_rgba(rgb, mask, margin=0.1)
    # side 20, half = 20 * 0.6 = 12 around centre (45, 20): x 33..57, y 8..32
    assert crop.shape == (24, 24, 4) and crop.dtype == np.uint8
    np.testing.assert_array_equal(crop[..., :3], rgb[8:32, 33:57])
    np.testing.assert_array_equal(crop[..., 3] == 255, mask[8:32, 33:57])
    assert set(np.unique(crop[..., 3])) == {0, 255}
    # clipped at the image border
    edge = np.zeros((100, 100), bool)
    edge[0:10, 95:100] = True
    # side 10, half 6 around (97.5, 5): x floor(91.5)=91..100 (clipped), y 0 (clipped)..11
    assert tr.mask_crop_rgba(rgb, edge).shape[:2] == (11, 9)
    with pytest.raises(ValueError):
        tr.mask_crop_rgba(rgb, np.zeros((100, 100), bool))
    with pytest.raises(ValueError):
        tr.mask_crop_rgba(rgb, np.ones((50, 100), bool))


def test_trellis_mesh_to_trimesh():
    v = torch.tensor([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float32) * 0.5
    f = torch.tensor([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=torch.int64)
    m = tr.trellis_mesh_to_trimesh(v, f)
    assert m.vertices.shape == (4, 3) and m.faces.shape == (4, 3)
    assert m.volume == pytest.approx(0.125 / 6)
    y = tr.trellis_mesh_to_trimesh(v, f, up_axis='y')
    # to_glb's z-up -> y-up: (x, y, z) -> (x, z, -y)
    rows = {tuple(np.round(r, 6)) for r in y.vertices}
    assert (0.0, 0.5, 0.0) in rows and (0.0, 0.0, -0.5) in rows and (0.5, 0.0, 0.0) in rows
    with pytest.raises(StageFailure):
        tr.trellis_mesh_to_trimesh(np.zeros((0, 3)), np.zeros((0, 3), int))
    with pytest.raises(ValueError):
        tr.trellis_mesh_to_trimesh(v, f, up_axis='x')
