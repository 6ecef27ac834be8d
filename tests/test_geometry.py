"""Kabsch/Arun rigid transform, RANSAC and the B.3 tracking step (dexman_common.geometry)."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dexman_common import geometry as rt
from dexman_perception.core import track_propagation as tp


def random_pose(rng, max_t=0.3):
    return rt.make_transform(Rotation.random(random_state=rng).as_matrix(), rng.uniform(-max_t, max_t, 3))


def test_hand_computed_quarter_turn():
    # 90 deg about z, then t = (1, 2, 3): (x, y, z) -> (-y + 1, x + 2, z + 3)
    src = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    dst = np.array([[1, 2, 3], [1, 3, 3], [0, 2, 3]], float)
    fit = rt.fit_rigid_transform(src, dst)
    np.testing.assert_allclose(fit.R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(fit.t, [1, 2, 3], atol=1e-12)
    assert fit.rmse < 1e-12 and fit.n_points == 3


def test_noisy_points_error_bound():
    rng = np.random.default_rng(1)
    T = random_pose(rng)
    P = rng.uniform(-0.1, 0.1, (200, 3)) + [0, 0, 0.6]          # a 20 cm object 60 cm away
    sigma = 0.001
    Q = rt.transform_points(T, P) + rng.normal(0, sigma, P.shape)
    fit = rt.fit_rigid_transform(P, Q)
    # expected rotation error ~ sigma/(sqrt(N) * rms spread) ~ 1.2e-3 rad per axis (this seed:
    # 1.7e-3); the translation error is about that times the 0.6 m lever arm (this seed: 0.9 mm)
    assert rt.rotation_angle_between(fit.R, T[:3, :3]) < 4e-3
    assert np.linalg.norm(fit.t - T[:3, 3]) < 2e-3
    # the rmse of a correct fit is the noise level: sigma * sqrt(3 (N - 6) / N)
    assert fit.rmse == pytest.approx(sigma * np.sqrt(3 * 194 / 200), rel=0.15)
    assert rt.is_rotation_matrix(fit.R)


def test_planar_points_give_a_rotation_not_a_reflection():
    # coplanar exact points: H has rank 2 and an unguarded SVD may return det = -1
    rng = np.random.default_rng(2)
    P = np.c_[rng.uniform(-1, 1, (6, 2)), np.zeros(6)]
    for _ in range(20):
        T = random_pose(rng)
        fit = rt.fit_rigid_transform(P, rt.transform_points(T, P))
        assert np.linalg.det(fit.R) == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(fit.T, T, atol=1e-10)


def test_mirrored_target_still_returns_a_proper_rotation():
    rng = np.random.default_rng(3)
    P = rng.normal(size=(30, 3)) * [0.3, 0.2, 0.1]
    Q = P * [-1, 1, 1]                                              # a mirror image: no rotation fits
    fit = rt.fit_rigid_transform(P, Q)
    assert rt.is_rotation_matrix(fit.R)
    # the unguarded solution is the reflection diag(-1, 1, 1) with zero residual; ours cannot be
    assert fit.rmse > 0.05


def test_weights_ignore_zero_weight_outliers():
    rng = np.random.default_rng(4)
    T = random_pose(rng)
    P = rng.normal(size=(20, 3)) * 0.1
    Q = rt.transform_points(T, P)
    Q[:5] += 0.5                                                    # five corrupted rows
    w = np.ones(20)
    w[:5] = 0
    np.testing.assert_allclose(rt.fit_rigid_transform(P, Q, w).T, T, atol=1e-10)
    assert np.linalg.norm(rt.fit_rigid_transform(P, Q).t - T[:3, 3]) > 0.05


@pytest.mark.parametrize('pts, match', [
    (np.array([[0, 0, 0], [1, 0, 0]], float), 'at least 3'),
    (np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]], float), 'collinear'),
    (np.ones((5, 3)), 'coincide'),
])
def test_degenerate_input_is_reported(pts, match):
    with pytest.raises(rt.DegenerateInputError, match=match):
        rt.fit_rigid_transform(pts, pts + 1.0)


def test_nan_rows_are_dropped_before_the_count():
    P = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [np.nan, 0, 0]], float)
    fit = rt.fit_rigid_transform(P, P + [0.1, 0, 0])
    assert fit.n_points == 3 and np.isnan(fit.residuals[3])
    np.testing.assert_allclose(fit.t, [0.1, 0, 0], atol=1e-12)
    with pytest.raises(rt.DegenerateInputError):
        rt.fit_rigid_transform(P[[0, 1, 3]], P[[0, 1, 3]])


def test_ransac_rejects_30_percent_outliers_deterministically():
    rng = np.random.default_rng(5)
    T = random_pose(rng)
    N = 100
    P = rng.uniform(-0.1, 0.1, (N, 3)) + [0, 0, 0.7]
    Q = rt.transform_points(T, P) + rng.normal(0, 0.001, P.shape)
    bad = rng.choice(N, 30, replace=False)
    Q[bad] += rng.uniform(0.05, 0.2, (30, 3)) * rng.choice([-1, 1], (30, 3))
    fit = rt.ransac_rigid_transform(P, Q, inlier_threshold=0.01, seed=0)
    good = np.ones(N, bool)
    good[bad] = False
    np.testing.assert_array_equal(fit.inliers, good)
    assert rt.rotation_angle_between(fit.R, T[:3, :3]) < 5e-3
    assert np.linalg.norm(fit.t - T[:3, 3]) < 2e-3
    # plain least squares is badly off on the same data
    ls = rt.fit_rigid_transform(P, Q)
    assert np.linalg.norm(ls.t - T[:3, 3]) > 0.01
    again = rt.ransac_rigid_transform(P, Q, inlier_threshold=0.01, seed=0)
    np.testing.assert_array_equal(again.T, fit.T)
    assert again.n_iterations == fit.n_iterations


def test_tracking_step_initial_guess_is_delta_times_previous():
    rng = np.random.default_rng(6)
    model = rng.uniform(-0.05, 0.05, (60, 3))                       # object-frame points
    T_prev = random_pose(rng) @ rt.make_transform(t=[0, 0, 0.6])
    dT = rt.make_transform(rt.rotation_from_axis_angle([0.02, -0.05, 0.1]), [0.01, -0.02, 0.005])
    T_curr = dT @ T_prev
    Pk1 = rt.transform_points(T_prev, model)
    Pk = rt.transform_points(T_curr, model)
    vis = np.ones(60, bool)
    vis[:10] = False
    Pk[:10] = 5.0                                                   # invisible tracks are garbage
    step = tp.propagate_pose_from_tracks(Pk1, Pk, T_prev, visible_curr=vis, ransac_threshold=None)
    assert step.ok and step.n_tracks == 50
    np.testing.assert_allclose(step.delta_T, dT, atol=1e-10)
    np.testing.assert_allclose(step.T_init, T_curr, atol=1e-10)
    # too few tracks: fall back to the previous pose, with a reason
    fail = tp.propagate_pose_from_tracks(Pk1[:2], Pk1[:2], T_prev)
    assert not fail.ok and fail.delta_T is None and 'track' in fail.reason
    np.testing.assert_array_equal(fail.T_init, T_prev)


def test_chain_with_refine_callback():
    rng = np.random.default_rng(7)
    model = rng.uniform(-0.05, 0.05, (40, 3))
    step = rt.make_transform(rt.rotation_from_axis_angle([0, 0, 0.05]), [0.01, 0, 0])
    poses_true = [rt.make_transform(t=[0, 0, 0.5])]
    for _ in range(4):
        poses_true.append(step @ poses_true[-1])
    tracks = np.stack([rt.transform_points(T, model) for T in poses_true])
    poses, steps = tp.chain_poses_from_tracks(tracks, poses_true[0])
    np.testing.assert_allclose(poses, np.stack(poses_true), atol=1e-9)
    seen = []
    tp.chain_poses_from_tracks(tracks, poses_true[0], refine=lambda k, T: seen.append(k) or T)
    assert seen == [1, 2, 3, 4] and all(s.ok for s in steps)


def test_se3_helpers():
    R = rt.rotation_from_axis_angle([0, 0, np.pi / 2])
    np.testing.assert_allclose(R, [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(rt.axis_angle_from_rotation(R), [0, 0, np.pi / 2], atol=1e-12)
    T = rt.make_transform(R, [1, 2, 3])
    np.testing.assert_allclose(rt.compose_transforms(T, rt.invert_transform(T)), np.eye(4), atol=1e-12)
    np.testing.assert_allclose(rt.transform_points(T, [1, 0, 0]), [1, 3, 3], atol=1e-12)
    assert rt.rotation_angle_between(np.eye(3), R) == pytest.approx(np.pi / 2)
    assert rt.rotation_angle_between(R, R) == pytest.approx(0.0, abs=1e-12)
    stack = np.stack([T, np.eye(4)])
    np.testing.assert_allclose(rt.invert_transform(stack)[0], np.linalg.inv(T), atol=1e-12)
