"""dexman_common.geometry: Kabsch/Arun, RANSAC, the B.3 tracking step, SO(3) log/exp, rotation and
quaternion angles, quaternion conversion, plane fit."""
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


# --------------------------------------------------------------------------- SO(3)
RX90 = np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])         # +90 deg about x, by hand


def test_log_of_hand_computed_rotations():
    np.testing.assert_allclose(rt.axis_angle_from_rotation(RX90), [np.pi / 2, 0, 0], atol=1e-15)
    np.testing.assert_array_equal(rt.axis_angle_from_rotation(np.eye(3)), [0, 0, 0])
    rz180 = np.diag([-1.0, -1.0, 1.0])                           # 180 deg about z: axis sign free
    v = rt.axis_angle_from_rotation(rz180)
    np.testing.assert_allclose(np.abs(v), [0, 0, np.pi], atol=1e-12)
    # tiny angle about y: R = I + [w]x to first order; arccos of the trace would lose it entirely
    a = 1e-9
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    np.testing.assert_allclose(rt.axis_angle_from_rotation(ry), [0, a, 0], rtol=1e-12, atol=1e-24)
    assert rt.rotation_angle(ry) == pytest.approx(a, rel=1e-12)


def test_log_exp_round_trip_single_and_batched_near_and_far_from_pi():
    rng = np.random.default_rng(3)
    axes = rng.normal(size=(200, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, np.pi, 194), [1e-7, 1e-3, np.pi - 1e-2, np.pi - 1e-3 - 1e-9,
                                                            np.pi - 1e-6, np.pi - 1e-12]])
    rv = axes * angles[:, None]
    R = rt.rotation_from_axis_angle(rv)
    assert R.shape == (200, 3, 3)
    back = rt.axis_angle_from_rotation(R)
    assert back.shape == (200, 3)
    np.testing.assert_allclose(np.linalg.norm(back, axis=1), angles, atol=1e-9)
    np.testing.assert_allclose(rt.rotation_from_axis_angle(back), R, atol=1e-9)   # same rotation
    single = np.stack([rt.axis_angle_from_rotation(r) for r in R])
    np.testing.assert_allclose(single, back, atol=1e-12)
    np.testing.assert_allclose(rt.rotation_angle(R), angles, atol=1e-9)
    with pytest.raises(ValueError, match=r'\(\.\.\., 3, 3\)'):
        rt.axis_angle_from_rotation(np.eye(4))


def test_rotation_angle_values_and_broadcasting():
    assert rt.rotation_angle(np.diag([1.0, -1.0, -1.0])) == pytest.approx(np.pi)
    assert isinstance(rt.rotation_angle(RX90), float) and rt.rotation_angle(RX90) == pytest.approx(np.pi / 2)
    rz = rt.rotation_from_axis_angle(np.outer([0.1, 0.5, 2.0, 3.0], [0, 0, 1]))       # (4, 3, 3)
    np.testing.assert_allclose(rt.rotation_angle_between(np.eye(3), rz), [0.1, 0.5, 2.0, 3.0])
    # between 0.5 and 3.0 about the same axis: 2.5; between +3.0 and -3.0: 2π − 6
    assert rt.rotation_angle_between(rz[1], rz[3]) == pytest.approx(2.5)
    assert rt.rotation_angle_between(rz[3], rz[3].T) == pytest.approx(2 * np.pi - 6.0)


def test_quat_angle_hand_values_order_sign_and_norm():
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    ident_wxyz, rx90_wxyz = np.array([1.0, 0, 0, 0]), np.array([c, s, 0, 0])
    assert rt.quat_angle(ident_wxyz, rx90_wxyz) == pytest.approx(np.pi / 2)
    assert rt.quat_angle(ident_wxyz, -rx90_wxyz) == pytest.approx(np.pi / 2)        # q ~ −q
    assert rt.quat_angle(2.0 * ident_wxyz, 5.0 * rx90_wxyz) == pytest.approx(np.pi / 2)
    assert rt.quat_angle(np.roll(ident_wxyz, -1), np.roll(rx90_wxyz, -1)) == pytest.approx(np.pi / 2)  # xyzw
    assert rt.quat_angle(ident_wxyz, [0.0, 0, 1, 0]) == pytest.approx(np.pi)
    assert rt.quat_angle(rx90_wxyz, rx90_wxyz) == pytest.approx(0.0, abs=1e-15)
    tiny = np.array([np.cos(5e-10), np.sin(5e-10), 0, 0])                           # 1e-9 rad
    assert rt.quat_angle(ident_wxyz, tiny) == pytest.approx(1e-9, rel=1e-9)
    batch = rt.quat_angle(np.zeros((2, 3, 4)) + ident_wxyz, rx90_wxyz)               # broadcast
    assert batch.shape == (2, 3) and np.allclose(batch, np.pi / 2)
    assert rt.quat_angle(np.zeros((2, 0, 4)), np.zeros((2, 0, 4))).shape == (2, 0)
    with pytest.raises(ValueError, match='zero-norm'):
        rt.quat_angle(ident_wxyz, np.zeros(4))


def test_quat_angle_matches_matrix_angle():
    rng = np.random.default_rng(5)
    Ra, Rb = Rotation.random(50, random_state=rng), Rotation.random(50, random_state=rng)
    expected = rt.rotation_angle_between(Ra.as_matrix(), Rb.as_matrix())
    np.testing.assert_allclose(rt.quat_angle(Ra.as_quat(), Rb.as_quat()), expected, atol=1e-12)


def test_quaternion_conversions_by_hand():
    c, s = np.cos(np.pi / 4), np.sin(np.pi / 4)
    rz90 = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(rt.quat_from_matrix(rz90), [0, 0, s, c], atol=1e-15)
    np.testing.assert_allclose(rt.quat_from_matrix(rz90, scalar_first=True), [c, 0, 0, s], atol=1e-15)
    # 270 deg about x = −90 deg about x: the canonical quaternion has w >= 0
    np.testing.assert_allclose(rt.quat_from_matrix(RX90.T, scalar_first=True), [c, -s, 0, 0], atol=1e-15)
    np.testing.assert_allclose(rt.matrix_from_quat([0, 0, 2 * s, 2 * c]), rz90, atol=1e-15)   # any norm
    np.testing.assert_allclose(rt.matrix_from_quat([c, s, 0, 0], scalar_first=True), RX90, atol=1e-15)
    stack = np.stack([rz90, RX90])
    np.testing.assert_allclose(rt.matrix_from_quat(rt.quat_from_matrix(stack)), stack, atol=1e-15)


# --------------------------------------------------------------------------- planes
def test_plane_fit_of_four_coplanar_points():
    # four points of the plane x + y + z = 1 (normal (1, 1, 1)/√3, distance 1/√3 from the origin)
    P = np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, -1]])
    fit = rt.fit_plane(P)
    n = np.ones(3) / np.sqrt(3)
    assert abs(fit.normal @ n) == pytest.approx(1.0)
    np.testing.assert_allclose(fit.centroid, [0.5, 0.5, 0.0], atol=1e-15)
    assert fit.rms_distance == pytest.approx(0.0, abs=1e-15) and fit.n_points == 4
    assert fit.singular_values[2] == pytest.approx(0.0, abs=1e-12)
    towards_origin = rt.fit_plane(P, viewpoint=(0, 0, 0))                   # n·(0 − c) > 0
    np.testing.assert_allclose(towards_origin.normal, -n, atol=1e-15)
    assert towards_origin.offset == pytest.approx(1.0 / np.sqrt(3))        # d of n·p + d = 0
    np.testing.assert_allclose(rt.fit_plane(P, viewpoint=(5, 5, 5)).normal, n, atol=1e-15)


def test_plane_fit_residual_nan_rows_and_degenerate_input():
    # z = 0 plane with points ±0.01 off it: rms 0.01, normal ±z
    P = np.array([[0, 0, 0.01], [1, 0, -0.01], [0, 1, -0.01], [1, 1, 0.01], [np.nan, 0, 0]])
    fit = rt.fit_plane(P, viewpoint=(0, 0, 1))
    np.testing.assert_allclose(fit.normal, [0, 0, 1], atol=1e-12)
    assert fit.rms_distance == pytest.approx(0.01) and fit.n_points == 4
    with pytest.raises(rt.PlaneFitError, match='collinear'):
        rt.fit_plane([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]])
    with pytest.raises(rt.PlaneFitError, match='at least 3'):
        rt.fit_plane([[0, 0, 0], [1, 0, 0], [np.inf, 0, 0]])
    with pytest.raises(rt.PlaneFitError, match=r'\(N, 3\)'):
        rt.fit_plane(np.zeros((4, 2)))


def test_vector_angle():
    assert rt.vector_angle([1.0, 0, 0], [0, 2.0, 0]) == pytest.approx(np.pi / 2)
    assert rt.vector_angle([0, 0, 1.0], [0, 0, -3.0]) == pytest.approx(np.pi)
    assert rt.vector_angle([0, 0, 1.0], [1e-9, 0, 1.0]) == pytest.approx(1e-9, rel=1e-9)   # arccos: 0
    np.testing.assert_allclose(rt.vector_angle([[1.0, 1, 0], [0, 1, 1]], [1.0, 0, 0]), [np.pi / 4, np.pi / 2])


def test_quat_angle_of_a_nan_quaternion_is_nan():
    out = rt.quat_angle([[1.0, 0, 0, 0], [np.nan, 0, 0, 0]], [1.0, 0, 0, 0])
    assert out[0] == 0.0 and np.isnan(out[1])
