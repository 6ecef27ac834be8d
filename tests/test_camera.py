"""dexman_common.camera: projection and back-projection with intrinsics K (hand-computed values)."""
import numpy as np
import pytest

from dexman_common import camera as cam

K = np.array([[500.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]])


def test_principal_point_and_focal_offsets_by_hand():
    np.testing.assert_allclose(cam.unproject_pixels([320.0, 240.0], 2.0, K), [0.0, 0.0, 2.0])
    # one focal length right of / below the principal point: x = z, y = z
    np.testing.assert_allclose(cam.unproject_pixels([[820.0, 240.0], [320.0, 640.0]], [2.0, 3.0], K),
                               [[2.0, 0.0, 2.0], [0.0, 3.0, 3.0]])
    np.testing.assert_allclose(cam.project_points([[2.0, 0.0, 2.0], [0.0, 3.0, 3.0], [0.1, -0.2, 0.5]], K),
                               [[820.0, 240.0], [320.0, 640.0], [420.0, 80.0]])


def test_round_trip_with_skew_and_any_leading_shape():
    Ks = K.copy()
    Ks[0, 1] = 3.0
    rng = np.random.default_rng(0)
    P = rng.uniform([-1, -1, 0.5], [1, 1, 3], (4, 5, 3))
    uv = cam.project_points(P, Ks)
    assert uv.shape == (4, 5, 2)
    np.testing.assert_allclose(cam.unproject_pixels(uv, P[..., 2], Ks), P, rtol=1e-12)
    # skew by hand: u = fx x/z + s y/z + cx
    assert cam.project_points([1.0, 1.0, 1.0], Ks)[0] == pytest.approx(500 + 3 + 320)


def test_invalid_depths_and_points_behind_the_camera():
    P = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    uv = cam.project_points(P, K)
    assert np.isfinite(uv[0]).all() and np.isnan(uv[1:]).all()
    np.testing.assert_allclose(cam.project_points(P[:2], K, nan_behind=False), [[320, 240], [-180, 240]])
    pts = cam.unproject_pixels([[0.0, 0.0]] * 4, [1.0, 0.0, -1.0, np.nan], K)
    assert np.isfinite(pts[0]).all() and np.isnan(pts[1:]).all()
    raw = cam.unproject_pixels([[0.0, 0.0]], [-1.0], K, nan_invalid=False)
    np.testing.assert_allclose(raw, [[0.64, 0.6, -1.0]])


def test_depth_image_clouds():
    depth = np.array([[1.0, 0.0, np.nan], [2.0, np.inf, 4.0]])
    Kc = np.array([[1.0, 0.0, 1.0], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])
    grid = cam.depth_to_points(depth, Kc)
    assert grid.shape == (2, 3, 3)
    # pixel (u=0, v=0) at z=1: x = (0 − 1)·1/1 = −1, y = (0 − 0.5)·1/2 = −0.25
    np.testing.assert_allclose(grid[0, 0], [-1.0, -0.25, 1.0])
    np.testing.assert_allclose(grid[1, 2], [4.0, 1.0, 4.0])
    assert np.isnan(grid[0, 1]).all() and np.isnan(grid[0, 2]).all() and np.isnan(grid[1, 1]).all()
    pts = cam.masked_depth_points(depth, Kc)                      # valid pixels, row-major
    np.testing.assert_allclose(pts, grid[[0, 1, 1], [0, 0, 2]])
    only = cam.masked_depth_points(depth, Kc, np.array([[False, True, True], [False, False, True]]))
    np.testing.assert_allclose(only, [[4.0, 1.0, 4.0]])           # (0, 1) and (0, 2) have no depth
    with pytest.raises(ValueError, match='differ in shape'):
        cam.masked_depth_points(depth, Kc, np.ones((3, 3), bool))
    with pytest.raises(ValueError, match=r'\(H, W\)'):
        cam.depth_to_points(np.ones(4), Kc)


def test_check_intrinsics():
    np.testing.assert_array_equal(cam.check_intrinsics(K.tolist()), K)
    for bad in (np.eye(3) * -1, np.eye(2), np.full((3, 3), np.nan)):
        with pytest.raises(ValueError, match='intrinsic'):
            cam.check_intrinsics(bad)
