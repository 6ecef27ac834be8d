"""Metric scale from the hand width (B.2): dexman_perception.core.hand_metric_scale."""
import numpy as np
import pytest

from dexman_perception.core import hand_metric_scale as hms

K = np.array([[500.0, 0, 80.0], [0, 500.0, 60.0], [0, 0, 1]])


def test_hand_computed_extents():
    # fx = 100, cx = 2: pixel u at depth z has x = (u - 2) z / 100
    K1 = np.array([[100.0, 0, 2.0], [0, 100.0, 0.0], [0, 0, 1]])
    depth = np.array([[1.0, 7.0, np.nan, 0.0, 1.0]])
    mask = np.array([[True, False, True, True, True]])      # NaN and 0 in the mask are ignored
    metric = np.array([[-0.04, 0.0, 0.5], [0.04, 0.01, 0.5], [0.0, -0.02, 0.52]])
    r = hms.hand_metric_scale(metric, depth, mask, K1)
    # cloud x: u=0 -> -0.02, u=4 -> +0.02: extent 0.04; metric extent 0.08 -> scale 2
    assert r.depth_range == pytest.approx((-0.02, 0.02), abs=1e-15)
    assert r.metric_extent == pytest.approx(0.08, abs=1e-15)
    assert r.scale == pytest.approx(2.0, abs=1e-12)
    assert r.n_depth_points == 2 and r.axis == 0
    depth[0, 4] = 2.0                                        # x = 0.04 -> extent 0.06
    assert hms.hand_metric_scale(metric, depth, mask, K1).scale == pytest.approx(0.08 / 0.06, abs=1e-12)


def synthetic_hand(true_scale=3.7):
    """A curved, tilted hand-sized patch 55 cm away: metric depth, relative depth, mask, metric points."""
    v, u = np.mgrid[0:120, 0:160].astype(float)
    mask = ((u - 80) / 45) ** 2 + ((v - 60) / 30) ** 2 < 1          # ~9 cm wide at 0.55 m
    metric_depth = 0.55 + 0.03 * np.cos((u - 80) / 20) + 0.0004 * (v - 60)
    metric_depth = np.where(mask, metric_depth, 2.0)
    relative = metric_depth / true_scale
    metric_points = hms.unproject(metric_depth, K, mask)         # stands in for the MANO mesh
    return metric_depth, relative, mask, metric_points


def test_known_scale_is_recovered_and_applied():
    metric_depth, relative, mask, metric_points = synthetic_hand(3.7)
    r = hms.hand_metric_scale(metric_points, relative, mask, K)
    assert r.scale == pytest.approx(3.7, rel=1e-12)
    assert r.metric_extent == pytest.approx(90 * 0.55 / 500, rel=0.05)       # ~9.9 cm
    rescaled = hms.apply_depth_scale(np.stack([relative, relative * 0.5]), r.scale)
    np.testing.assert_allclose(rescaled[0], metric_depth, rtol=1e-12)
    np.testing.assert_allclose(rescaled[1], metric_depth * 0.5, rtol=1e-12)   # same factor everywhere
    np.testing.assert_allclose(hms.unproject(rescaled[0], K, mask), metric_points, rtol=1e-12)


def test_flying_pixel_outlier_and_percentiles():
    metric_depth, relative, mask, metric_points = synthetic_hand(3.7)
    # one mask pixel at the far right edge gets a far background depth (a mask-edge flying pixel)
    mask = mask.copy()
    mask[60, 150] = True
    relative = relative.copy()
    relative[60, 150] = 2.0 / 3.7 * 2
    paper = hms.hand_metric_scale(metric_points, relative, mask, K)
    assert abs(paper.scale / 3.7 - 1) > 0.3                       # min/max is thrown off
    robust = hms.hand_metric_scale(metric_points, relative, mask, K,
                                   depth_percentiles=(1, 99), metric_percentiles=(1, 99))
    assert robust.scale == pytest.approx(3.7, rel=0.02)
    assert robust.depth_percentiles == (1.0, 99.0)


def test_axis_and_errors():
    metric_depth, relative, mask, metric_points = synthetic_hand(2.0)
    assert hms.hand_metric_scale(metric_points, relative, mask, K, axis=1).scale == pytest.approx(2.0)
    with pytest.raises(hms.HandScaleError, match='valid depth'):
        hms.hand_metric_scale(metric_points, relative, np.zeros_like(mask), K)
    with pytest.raises(hms.HandScaleError, match='percentiles'):
        hms.hand_metric_scale(metric_points, relative, mask, K, depth_percentiles=(50, 50))
    with pytest.raises(hms.HandScaleError, match='zero horizontal extent'):
        hms.hand_metric_scale(np.array([[0.1, 0, 0.5], [0.1, 0.05, 0.5]]), relative, mask, K)
    with pytest.raises(hms.HandScaleError):
        hms.apply_depth_scale(relative, -1.0)
