"""VGGT adapter (backends/vggt_adapter.py): load_and_preprocess_images' resize/crop/pad geometry,
mapping depth/confidence/intrinsics back to the original frame, chunking. Inputs have the shapes
of VGGT's outputs: depth (1, S, h, w, 1), depth_conf (1, S, h, w), intrinsics (S, 3, 3)."""
import numpy as np
import pytest

from dexman_perception.core.backends import vggt_adapter as va


def test_geometry_crop_landscape():
    g = va.vggt_geometry(480, 640)
    # width -> 518, height round(480 * 518/640 / 14) * 14 = round(27.75) * 14 = 392, no crop
    assert (g.resized_h, g.resized_w, g.out_h, g.out_w, g.crop_top) == (392, 518, 392, 518, 0)


def test_geometry_crop_portrait_and_pad():
    g = va.vggt_geometry(640, 480)
    # height round(640 * 518/480 / 14) * 14 = round(49.33) * 14 = 686 > 518: centre crop 84 rows
    assert (g.resized_h, g.resized_w, g.out_h, g.out_w, g.crop_top) == (686, 518, 518, 518, 84)
    g = va.vggt_geometry(480, 640, 'pad')
    assert (g.resized_h, g.resized_w, g.out_h, g.out_w, g.pad_top, g.pad_left) == (
        392, 518, 518, 518, 63, 0)
    g = va.vggt_geometry(640, 480, 'pad')
    assert (g.resized_h, g.resized_w, g.pad_top, g.pad_left) == (518, 392, 0, 63)
    # the library uses Python's round: 28 x 56 -> 518 * 28/56 / 14 = 18.5 -> 18 -> 252
    assert va.vggt_geometry(28, 56).resized_h == 252
    with pytest.raises(ValueError):
        va.vggt_geometry(10, 10, 'square')


def test_preprocess_matches_pil_bicubic_and_crop():
    Image = pytest.importorskip('PIL.Image', reason='Pillow not installed (VGGT itself needs it)')
    rng = np.random.default_rng(1)
    f = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)       # portrait: crop mode crops
    x, g = va.vggt_preprocess([f, f])
    assert x.shape == (2, 3, 518, 518) and x.dtype == np.float32
    ref = np.asarray(Image.fromarray(f).resize((g.resized_w, g.resized_h),
                                               Image.Resampling.BICUBIC), np.float32) / 255
    np.testing.assert_allclose(x[0], ref[g.crop_top:g.crop_top + 518].transpose(2, 0, 1), atol=1e-6)
    x, g = va.vggt_preprocess([f], 'pad')
    assert np.all(x[0, :, :, :g.pad_left] == 1.0)                 # white padding
    with pytest.raises(ValueError):
        va.vggt_preprocess([f, f[:32]])


def test_map_back_linear_ramp_and_crop_nan():
    g = va.vggt_geometry(480, 640)
    ramp = np.broadcast_to(np.arange(518, dtype=np.float32), (1, 392, 518))
    out = va.vggt_map_to_original(ramp, g)
    assert out.shape == (1, 480, 640) and out.dtype == np.float32
    # u = 320 samples x = 320.5 * 518/640 - 0.5 = 258.9047
    assert out[0, 100, 320] == pytest.approx(320.5 * 518 / 640 - 0.5, abs=1e-3)
    assert out[0, 5, 0] == 0.0                                     # edge-replicated
    # portrait crop: rows whose sample falls in the cut-away 84 rows are NaN
    g = va.vggt_geometry(640, 480)
    out = va.vggt_map_to_original(np.ones((1, 518, 518), np.float32), g)
    rows_valid = ~np.isnan(out[0, :, 0])
    # y = (v + 0.5) * 686/640 - 84.5 lies in [-0.5, 517.5] for v = 78 .. 561
    assert np.nonzero(rows_valid)[0][[0, -1]].tolist() == [78, 561]
    with pytest.raises(ValueError):
        va.vggt_map_to_original(np.ones((1, 10, 10)), g)


def test_map_back_pad_mode_never_mixes_in_padding():
    g = va.vggt_geometry(480, 640, 'pad')                        # image rows 63 .. 454 of 518
    m = np.full((1, 518, 518), 100.0, np.float32)                  # padding value
    m[0, 63:455] = np.arange(63, 455, dtype=np.float32)[:, None]  # image rows: value = row
    out = va.vggt_map_to_original(m, g)[0]
    assert not np.isnan(out).any()
    # v = 0 samples y = 0.5 * 392/480 - 0.5 + 63 = 62.908 -> clamped to row 63 (not padding)
    assert out[0, 0] == pytest.approx(63.0)
    assert out[479, 0] == pytest.approx(454.0)
    assert out[240, 5] == pytest.approx(240.5 * 392 / 480 - 0.5 + 63, abs=1e-4)


def test_outputs_to_depths_real_shapes():
    g = va.vggt_geometry(480, 640)
    depth = np.full((1, 2, 392, 518, 1), 2.5, np.float32)
    depth[0, 1, :, :259] = -1.0                                    # invalid half in frame 1
    conf = np.full((1, 2, 392, 518), 3.0, np.float32)
    conf[0, 0, :196] = 1.0                                         # low-confidence top in frame 0
    d, c = va.vggt_outputs_to_depths(depth, conf, g, min_confidence=2.0)
    assert len(d) == 2 and d[0].shape == (480, 640) and d[0].dtype == np.float32
    assert np.isnan(d[0][10, 300]) and d[0][400, 300] == pytest.approx(2.5)
    assert np.isnan(d[1][240, 10]) and d[1][240, 600] == pytest.approx(2.5)
    assert c[0][10, 300] == pytest.approx(1.0) and c[0][400, 300] == pytest.approx(3.0)
    with pytest.raises(ValueError):
        va.vggt_outputs_to_depths(depth[..., 0], conf, g)


def test_intrinsics_back_to_original():
    g = va.vggt_geometry(480, 640)
    Kp = np.array([[400.0, 0, 259.0], [0, 410.0, 196.0], [0, 0, 1]])
    Ko = va.vggt_intrinsics_to_original(Kp[None], g)[0]
    sx, sy = 518 / 640, 392 / 480
    assert Ko[0, 0] == pytest.approx(400 / sx) and Ko[1, 1] == pytest.approx(410 / sy)
    assert Ko[0, 2] == pytest.approx(259.5 / sx - 0.5) and Ko[1, 2] == pytest.approx(196.5 / sy - 0.5)
    # consistency: a 3D point projects to u in the original and to (u + .5) s - .5 in VGGT's image
    P = np.array([0.3, -0.2, 2.0])
    u = Ko @ P / P[2]
    x = Kp @ P / P[2]
    assert x[0] == pytest.approx((u[0] + 0.5) * sx - 0.5) and x[1] == pytest.approx((u[1] + 0.5) * sy - 0.5)
    # portrait crop shifts cy by the crop
    g = va.vggt_geometry(640, 480)
    Ko = va.vggt_intrinsics_to_original(Kp, g)
    assert Ko[1, 2] == pytest.approx((196.0 + 84 + 0.5) * 640 / 686 - 0.5)


def test_chunk_ranges():
    assert va.chunk_ranges(10, 4, 1) == [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]]
    assert va.chunk_ranges(11, 4, 2)[-1] == [7, 8, 9, 10]            # last chunk shifted back
    assert va.chunk_ranges(3, 4, 1) == [[0, 1, 2]]
    assert va.chunk_ranges(0, 4, 1) == []
    for ch in va.chunk_ranges(50, 16, 4):
        assert len(ch) == 16
    with pytest.raises(ValueError):
        va.chunk_ranges(10, 4, 4)
