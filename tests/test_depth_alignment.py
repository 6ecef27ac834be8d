"""Object-centric chunk depth alignment (B.1): dexman_perception.core.depth_alignment."""
import numpy as np
import pytest

from dexman_perception.core import depth_alignment as da

H, W, N_FRAMES = 24, 32, 10
CHUNKS = [list(range(0, 5)), list(range(4, 8)), list(range(6, 10))]     # overlaps: [4], [6, 7]
# (a, b) mapping each chunk's raw depth to the truth, per region; chunk 0 is the reference
TRUE_AB = {
    1: {'hand': (1.30, -0.20), 'mug': (0.80, 0.15), None: (1.10, 0.05)},
    2: {'hand': (0.70, 0.40), 'mug': (1.25, -0.10), None: (0.95, -0.02)},
}


def scene():
    """Truth depth (N, H, W) and masks: a moving 'hand' disc and a static 'mug' box."""
    v, u = np.mgrid[0:H, 0:W].astype(float)
    truth = np.empty((N_FRAMES, H, W))
    masks = {}
    for f in range(N_FRAMES):
        d = 1.5 + 0.4 * u / W + 0.3 * v / H + 0.02 * f                  # tilted table/background
        hand = (u - 6 - 2 * f) ** 2 + (v - 8) ** 2 < 16
        mug = (u >= 20) & (u < 27) & (v >= 12) & (v < 20)
        d = np.where(hand, 0.9 + 0.05 * np.sin(u + f) + 0.01 * v, d)
        d = np.where(mug, 1.1 + 0.02 * (u - 20) + 0.01 * v, d)
        truth[f] = d
        masks[f] = {'hand': hand, 'mug': mug}
    return truth, masks


def make_chunks(truth, masks):
    chunks = []
    for k, frames in enumerate(CHUNKS):
        raw = truth[frames].copy()
        if k:
            for j, f in enumerate(frames):
                bg = ~(masks[f]['hand'] | masks[f]['mug'])
                for ent, sel in (('hand', masks[f]['hand']), ('mug', masks[f]['mug']), (None, bg)):
                    a, b = TRUE_AB[k][ent]
                    raw[j][sel] = (truth[f][sel] - b) / a
        chunks.append(da.DepthChunk(frames, raw))
    return chunks


def test_hand_computed_two_chunks():
    # frame 1 is shared; on it the entity 'o' covers all 3 pixels
    # x = [1, 2, 3] (chunk 1 raw), y = [1, 3, 4] (chunk 0): a = cov/var = 3/2, b = 8/3 - 3 = -1/3,
    # residuals [-1/6, 1/3, -1/6] -> rms = sqrt(1/18)
    c0 = da.DepthChunk([0, 1], np.array([[[5.0, 5.0, 5.0]], [[1.0, 3.0, 4.0]]]))
    c1 = da.DepthChunk([1, 2], np.array([[[1.0, 2.0, 3.0]], [[2.0, 2.0, 2.0]]]))
    o = np.ones((1, 3), bool)
    masks = {0: {'o': o}, 1: {'o': o}, 2: {'o': o}}
    res = da.align_depth_chunks([c0, c1], masks, min_pixels=3, dtype=np.float64)
    fit = res.fit(1, 'o')
    assert fit.source == 'entity' and fit.n_pixels == 3
    assert fit.a == pytest.approx(1.5, abs=1e-12)
    assert fit.b == pytest.approx(-1 / 3, abs=1e-12)
    assert fit.rms_residual == pytest.approx(np.sqrt(1 / 18), abs=1e-12)
    np.testing.assert_allclose(res.depth(2), [[8 / 3] * 3], atol=1e-12)
    np.testing.assert_allclose(res.depth(1), [[1, 3, 4]], atol=1e-12)       # 'first' policy
    last = da.align_depth_chunks([c0, c1], masks, min_pixels=3, overlap_policy='last', dtype=float)
    np.testing.assert_allclose(last.depth(1), [[7 / 6, 8 / 3, 25 / 6]], atol=1e-12)
    mean = da.align_depth_chunks([c0, c1], masks, min_pixels=3, overlap_policy='mean', dtype=float)
    np.testing.assert_allclose(mean.depth(1), [[13 / 12, 17 / 6, 49 / 12]], atol=1e-12)


def test_per_entity_affines_are_recovered_and_depth_equals_truth():
    truth, masks = scene()
    res = da.align_depth_chunks(make_chunks(truth, masks), masks, dtype=np.float64)
    assert res.frames == list(range(N_FRAMES))
    assert res.overlaps == [[], [4], [6, 7]]
    for k, per in TRUE_AB.items():
        for ent, (a, b) in per.items():
            fit = res.fit(k, ent)
            assert fit.source == ('background' if ent is None else 'entity')
            assert fit.a == pytest.approx(a, abs=1e-6) and fit.b == pytest.approx(b, abs=1e-6)
            assert fit.rms_residual < 1e-9
    np.testing.assert_allclose(res.depths, truth, atol=1e-9)
    assert res.fallbacks == []
    # the problem is not solvable by one affine map: a single global fit leaves cm-level errors
    glob = da.align_depth_chunks(make_chunks(truth, masks), {}, dtype=np.float64)
    assert np.nanmax(np.abs(glob.depths - truth)) > 0.05


def test_invalid_depth_is_ignored_and_stays_invalid():
    truth, masks = scene()
    chunks = make_chunks(truth, masks)
    rng = np.random.default_rng(0)
    holes = {}
    for k in (1, 2):
        d = chunks[k].depths
        sel = rng.random(d.shape) < 0.15
        d[sel & (rng.random(d.shape) < 0.5)] = np.nan
        d[sel & ~np.isnan(d)] = 0.0
        holes[k] = sel
    res = da.align_depth_chunks(chunks, masks, dtype=np.float64)
    for k, per in TRUE_AB.items():
        for ent, (a, b) in per.items():
            assert res.fit(k, ent).a == pytest.approx(a, abs=1e-6)
            assert res.fit(k, ent).b == pytest.approx(b, abs=1e-6)
    # frames 8, 9 come only from chunk 2: its holes are NaN, everything else is the truth
    for j, f in enumerate(CHUNKS[2]):
        if f in (8, 9):
            out = res.depth(f)
            assert np.all(np.isnan(out[holes[2][j]]))
            np.testing.assert_allclose(out[~holes[2][j]], truth[f][~holes[2][j]], atol=1e-9)


def test_entity_absent_from_overlap_falls_back_to_global_fit():
    truth, masks = scene()
    chunks = make_chunks(truth, masks)
    # a 'cup' visible only in frames 8 and 9 (chunk 2, after the overlap [6, 7])
    cup = np.zeros((H, W), bool)
    cup[2:6, 2:10] = True
    for f in (8, 9):
        masks[f] = dict(masks[f], cup=cup)
    res = da.align_depth_chunks(chunks, masks, dtype=np.float64)
    fit = res.fit(2, 'cup')
    assert fit.source == 'global' and 'absent from the overlap' in fit.reason
    assert res.fallbacks == [fit]
    # the global fit: every valid pixel of the overlap frames 6, 7 (chunk 2 raw vs chunk 1 aligned)
    x = np.concatenate([chunks[2].depths[CHUNKS[2].index(f)].ravel() for f in (6, 7)])
    y = np.concatenate([res.chunk_depths[1][CHUNKS[1].index(f)].ravel() for f in (6, 7)])
    a_ref, b_ref = np.polyfit(x, y, 1)
    assert fit.a == pytest.approx(a_ref, abs=1e-9) and fit.b == pytest.approx(b_ref, abs=1e-9)
    assert fit.n_pixels == x.size
    raw9 = chunks[2].depths[CHUNKS[2].index(9)]
    np.testing.assert_allclose(res.depth(9)[cup], a_ref * raw9[cup] + b_ref, atol=1e-9)
    # the others are unaffected
    np.testing.assert_allclose(res.depth(9)[masks[9]['hand']], truth[9][masks[9]['hand']], atol=1e-9)


def test_too_few_or_flat_pixels_fall_back():
    truth, masks = scene()
    chunks = make_chunks(truth, masks)
    res = da.align_depth_chunks(chunks, masks, min_pixels=10_000, dtype=np.float64)
    assert res.fit(1, 'hand').source == 'global' and '< 10000' in res.fit(1, 'hand').reason
    # a flat (constant-depth) entity region has no spread: a, b not identifiable
    flat = np.zeros((1, 8))
    flat[0, :4] = 2.0
    flat[0, 4:] = np.arange(4) + 1.0
    c0 = da.DepthChunk([0], flat.copy()[None])
    c1 = da.DepthChunk([0, 1], np.stack([flat, flat]))
    m = np.zeros((1, 8), bool)
    m[0, :4] = True
    res = da.align_depth_chunks([c0, c1], {0: {'box': m}, 1: {'box': m}}, min_pixels=2)
    assert res.fit(1, 'box').source == 'global' and 'no spread' in res.fit(1, 'box').reason
    # a fit with a < 0 would turn the region inside out: refused, global fit instead
    c1_inv = da.DepthChunk([0, 1], np.stack([flat, flat]))
    c1_inv.depths[0, 0, :4] = [4.0, 3.0, 2.0, 1.0]
    c0_inc = da.DepthChunk([0], flat.copy()[None])
    c0_inc.depths[0, 0, :4] = [1.0, 2.0, 3.0, 4.0]
    res = da.align_depth_chunks([c0_inc, c1_inv], {0: {'box': m}, 1: {'box': m}}, min_pixels=2)
    assert res.fit(1, 'box').source == 'global' and 'a = -1 <= 0' in res.fit(1, 'box').reason


def test_background_modes_and_errors():
    truth, masks = scene()
    chunks = make_chunks(truth, masks)
    raw = da.align_depth_chunks(chunks, masks, background='raw', dtype=np.float64)
    bg9 = ~(masks[9]['hand'] | masks[9]['mug'])
    np.testing.assert_array_equal(raw.depth(9)[bg9], chunks[2].depths[3][bg9])
    glob = da.align_depth_chunks(chunks, masks, background='global', dtype=np.float64)
    assert glob.fit(2, None).source == 'global'
    np.testing.assert_allclose(glob.depth(9)[masks[9]['mug']], truth[9][masks[9]['mug']], atol=1e-9)
    with pytest.raises(da.DepthAlignmentError, match='share no frame'):
        da.align_depth_chunks([da.DepthChunk([0, 1], truth[:2]), da.DepthChunk([2, 3], truth[2:4])], masks)
    nan = np.full((2, H, W), np.nan)
    with pytest.raises(da.DepthAlignmentError, match='no global fit'):
        da.align_depth_chunks([da.DepthChunk([0, 1], truth[:2]), da.DepthChunk([1, 2], nan)], masks)
