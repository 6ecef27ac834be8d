"""hand_lifting: metric hands in camera_optical from MediaPipe-format landmarks (no mediapipe).

Synthetic hands: 21 keypoints of a right (or mirrored left) hand in its Hand3D wrist frame, placed
in front of a 640x480 camera; the MediaPipe-format outputs are fabricated from them (normalised
image landmarks, world landmarks in an arbitrary rotated hand-centred frame) and a depth image is
rendered from bone samples over a table-like background."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dexman_perception.core.backends import hand_lifting as hl

W, H = 640, 480
K = np.array([[600.0, 0, 319.5], [0, 600.0, 239.5], [0, 0, 1]])
BONES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
         (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19),
         (19, 20), (5, 9), (9, 13), (13, 17)]


def hand_in_wrist_frame(side=hl.RIGHT, flex=0.35):
    """(21, 3) keypoints in the Hand3D wrist frame: x to the middle MCP, y radial (towards the
    index for a right hand), z dorsal; fingers flex towards -z (palm side)."""
    kp = np.zeros((21, 3))
    mcps = {5: (0.085, 0.024), 9: (0.088, 0.0), 13: (0.082, -0.019), 17: (0.073, -0.036)}
    lengths = {5: (0.040, 0.024, 0.019), 9: (0.044, 0.028, 0.020), 13: (0.041, 0.027, 0.019),
               17: (0.032, 0.020, 0.017)}
    spread = {5: 0.12, 9: 0.0, 13: -0.1, 17: -0.2}
    for m, (x, y) in mcps.items():
        kp[m] = [x, y, 0.0]
        p, phi = kp[m].copy(), 0.0
        for k, L in enumerate(lengths[m]):
            phi += flex
            d = np.array([np.cos(phi) * np.cos(spread[m]), np.cos(phi) * np.sin(spread[m]),
                          -np.sin(phi)])
            p = p + L * d
            kp[m + 1 + k] = p
    d = np.array([0.55, 0.75, -0.35])
    d /= np.linalg.norm(d)
    kp[1] = [0.022, 0.020, -0.012]
    for k, L in enumerate((0.040, 0.032, 0.028)):
        kp[2 + k] = kp[1 + k] + L * d
    if side == hl.LEFT:
        kp[:, 1] *= -1           # the left hand is the mirror image; its wrist frame likewise
    return kp


def pose(rotvec, t):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = t
    return T


def apply(T, p):
    return p @ T[:3, :3].T + T[:3, 3]


# a hand 0.7 m ahead, back of the hand towards the camera, fingers pointing right-up
T_RIGHT = pose([2.6, 0.4, -0.3], [0.03, 0.02, 0.70])
T_LEFT = pose([2.4, 0.6, -0.5], [-0.05, 0.01, 0.68])


def fabricate_mediapipe(kp_cam, rng=None, world_noise=0.0):
    """MediaPipe-format outputs of a camera-frame hand: normalised image landmarks (21, 3) and
    world landmarks (21, 3) in an arbitrary rotated, hand-centred frame (plus shape noise)."""
    uv = hl.project(kp_cam, K)
    norm = np.zeros((21, 3))
    norm[:, :2] = hl.pixels_to_normalized(uv, W, H)
    norm[:, 2] = (kp_cam[:, 2] - kp_cam[0, 2]) / 0.2       # relative depth: unused by the lifting
    R_mp = Rotation.from_rotvec([0.3, -1.1, 0.7]).as_matrix()   # MediaPipe's own axes
    world = (kp_cam - kp_cam.mean(0)) @ R_mp.T
    if world_noise:
        world = world + (rng or np.random.default_rng(0)).normal(0, world_noise, world.shape)
    return uv, norm, world


def render_depth(kp_cam, background=1.2, radius=4, samples=12):
    """Depth image of the hand's bones (samples along each bone painted as small discs,
    z-buffered) over a constant background."""
    depth = np.full((H, W), background, np.float32)
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    disc = xx ** 2 + yy ** 2 <= radius ** 2
    pts = [kp_cam[a] + s * (kp_cam[b] - kp_cam[a])
           for a, b in BONES for s in np.linspace(0, 1, samples)]
    pts = np.array(pts)
    for (u, v), z in zip(hl.project(pts, K), pts[:, 2]):
        ui, vi = int(round(u)), int(round(v))
        for dv, du in zip(yy[disc], xx[disc]):
            if 0 <= vi + dv < H and 0 <= ui + du < W and z < depth[vi + dv, ui + du]:
                depth[vi + dv, ui + du] = z
    return depth


def err_mm(a, b):
    return np.linalg.norm(a - b, axis=1) * 1000


# ------------------------------------------------------------------------------- order, frame
def test_mediapipe_order_is_hand3d_order():
    assert np.array_equal(hl.MEDIAPIPE_TO_HAND3D, np.arange(21))
    assert (hl.WRIST, hl.INDEX_MCP, hl.MIDDLE_MCP, hl.LITTLE_MCP) == (0, 5, 9, 17)


@pytest.mark.parametrize('side, T', [(hl.RIGHT, T_RIGHT), (hl.LEFT, T_LEFT)])
def test_wrist_frame_recovers_the_placed_frame(side, T):
    kp_cam = apply(T, hand_in_wrist_frame(side))
    F = hl.wrist_frame(kp_cam, side)
    assert np.allclose(F[:3, 3], kp_cam[0])
    assert np.allclose(F[:3, :3], T[:3, :3], atol=1e-9)           # right-handed for both hands
    assert np.isclose(np.linalg.det(F[:3, :3]), 1.0)
    # z is dorsal: the flexed fingertips lie on the palm side (negative z in the wrist frame)
    tips_local = (kp_cam[[8, 12, 16, 20]] - F[:3, 3]) @ F[:3, :3]
    assert (tips_local[:, 2] < -0.01).all()
    # x points at the middle MCP, y towards the thumb side for a right hand, away for a left
    assert np.allclose(F[:3, 0], (kp_cam[9] - kp_cam[0]) / np.linalg.norm(kp_cam[9] - kp_cam[0]))
    radial = (kp_cam[5] - kp_cam[17]) @ F[:3, 1]
    assert radial > 0 if side == hl.RIGHT else radial < 0


def test_wrist_frame_left_and_right_of_the_same_points_differ_by_a_half_turn_about_x():
    kp = apply(T_RIGHT, hand_in_wrist_frame(hl.RIGHT))
    FR, FL = hl.wrist_frame(kp, hl.RIGHT), hl.wrist_frame(kp, hl.LEFT)
    assert np.allclose(FL[:3, 0], FR[:3, 0]) and np.allclose(FL[:3, 1:3], -FR[:3, 1:3])


def test_wrist_frame_rejects_bad_input():
    with pytest.raises(hl.LiftingError):
        hl.wrist_frame(np.zeros((21, 3)), hl.RIGHT)
    with pytest.raises(hl.LiftingError):
        hl.wrist_frame(np.zeros((20, 3)), hl.RIGHT)
    with pytest.raises(hl.LiftingError):
        hl.wrist_frame(hand_in_wrist_frame(), 2)


def test_quaternion_matches_scipy():
    for rv in ([0.1, 0.2, 0.3], [3.0, 0.1, -0.2], [0, np.pi, 0], [2.0, -2.0, 1.0]):
        R = Rotation.from_rotvec(rv).as_matrix()
        q = hl.quaternion_xyzw(R)
        q_ref = Rotation.from_matrix(R).as_quat()
        assert np.isclose(abs(q @ q_ref), 1.0, atol=1e-9)
        assert np.allclose(Rotation.from_quat(q).as_matrix(), R, atol=1e-9)


def test_pixel_convention_round_trip():
    uv = np.array([[0.0, 0.0], [319.5, 239.5], [639.0, 479.0]])
    n = hl.pixels_to_normalized(uv, W, H)
    assert np.allclose(n[1], [0.5, 0.5])                   # image centre
    assert np.allclose(n[0], [0.5 / W, 0.5 / H])           # first pixel's centre
    assert np.allclose(hl.normalized_to_pixels(n, W, H), uv)


def test_handedness_labels():
    assert hl.handedness_from_label('Right') == hl.RIGHT
    assert hl.handedness_from_label('left') == hl.LEFT
    assert hl.handedness_from_label('Right', mirrored=True) == hl.LEFT
    with pytest.raises(hl.LiftingError):
        hl.handedness_from_label('Unknown')


# ------------------------------------------------------------------------------- (b) PnP
def test_pnp_exact_shape_perfect_2d_is_metric_to_a_millimetre():
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    uv, _, world = fabricate_mediapipe(kp)
    pl = hl.place_with_pnp(uv, world, K)
    assert err_mm(pl.points, kp).max() < 1.0
    assert pl.rms_px < 1e-3
    assert np.linalg.det(pl.R) == pytest.approx(1.0)


def test_pnp_with_2d_noise_and_shape_error_stays_within_documented_limits():
    """1 px 2D noise and 3 mm shape noise at 0.7 m: a few cm at worst, mostly along the ray."""
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    errs, lateral = [], []
    for seed in range(10):
        rng = np.random.default_rng(seed)
        uv, _, world = fabricate_mediapipe(kp, rng, world_noise=0.003)
        pl = hl.place_with_pnp(uv + rng.normal(0, 1.0, uv.shape), world, K)
        c, c_ref = pl.points.mean(0), kp.mean(0)
        errs.append(np.linalg.norm(c - c_ref))
        ray = c_ref / np.linalg.norm(c_ref)
        lateral.append(np.linalg.norm((c - c_ref) - ((c - c_ref) @ ray) * ray))
    assert np.median(errs) < 0.02 and max(errs) < 0.04
    assert max(lateral) < 0.005          # the bearing is fixed by the 2D landmarks


def test_pnp_hand_size_prior_error_scales_the_distance():
    """The documented limit: the world landmarks' size is a prior; 10 % too big -> 10 % too far,
    while the bearing stays right."""
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    uv, _, world = fabricate_mediapipe(kp)
    pl = hl.place_with_pnp(uv, 1.1 * world, K)
    c, c_ref = pl.points.mean(0), kp.mean(0)
    assert np.linalg.norm(c) / np.linalg.norm(c_ref) == pytest.approx(1.1, abs=0.005)
    cosang = c @ c_ref / np.linalg.norm(c) / np.linalg.norm(c_ref)
    assert np.degrees(np.arccos(min(cosang, 1.0))) < 0.1


def test_pnp_needs_four_points():
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    uv, _, world = fabricate_mediapipe(kp)
    use = np.zeros(21, bool)
    use[:3] = True
    with pytest.raises(hl.LiftingError):
        hl.place_with_pnp(uv, world, K, use=use)


def test_rgb_only_points_keep_the_2d_landmarks():
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    rng = np.random.default_rng(1)
    uv, _, world = fabricate_mediapipe(kp, rng, world_noise=0.004)
    uv_noisy = uv + rng.normal(0, 1.0, uv.shape)
    pts = hl.rgb_only_points(uv_noisy, world, K)
    assert np.allclose(hl.project(pts, K), uv_noisy, atol=1e-6)
    assert np.median(err_mm(pts, kp)) < 20.0


# ------------------------------------------------------------------------------- (a) depth
@pytest.mark.parametrize('side, T', [(hl.RIGHT, T_RIGHT), (hl.LEFT, T_LEFT)])
def test_depth_lifting_recovers_keypoints_within_a_few_mm(side, T):
    kp = apply(T, hand_in_wrist_frame(side))
    uv, _, world = fabricate_mediapipe(kp, world_noise=0.004)
    lifted = hl.lift_with_depth(uv, world, render_depth(kp), K)
    assert lifted.from_depth.sum() >= 19
    e = err_mm(lifted.points, kp)
    assert np.median(e) < 1.5 and e.max() < 4.0


def test_depth_lifting_with_sensor_noise():
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    uv, _, world = fabricate_mediapipe(kp, world_noise=0.004)
    rng = np.random.default_rng(3)
    depth = render_depth(kp) + rng.normal(0, 0.002, (H, W)).astype(np.float32)
    e = err_mm(hl.lift_with_depth(uv, world, depth, K).points, kp)
    assert np.median(e) < 2.0 and e.max() < 5.0


def test_depth_holes_and_occluders_fall_back_to_the_anchored_model():
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    uv, _, world = fabricate_mediapipe(kp, world_noise=0.003)
    depth = render_depth(kp)
    # a hole (0 and NaN) under the thumb tip and IP, an occluder 6 cm in front of the index tip
    for i, val in ((4, 0.0), (3, np.nan)):
        u, v = np.round(uv[i]).astype(int)
        depth[v - 6:v + 7, u - 6:u + 7] = val
    u, v = np.round(uv[8]).astype(int)
    depth[v - 5:v + 6, u - 5:u + 6] = kp[8, 2] - 0.06
    lifted = hl.lift_with_depth(uv, world, depth, K)
    assert not lifted.from_depth[[3, 4, 8]].any()
    assert lifted.from_depth.sum() >= 16
    e = err_mm(lifted.points, kp)
    assert e[lifted.from_depth].max() < 4.0
    assert e[[3, 4, 8]].max() < 15.0       # model shape error (3 mm noise) + PnP orientation
    # the 2D landmarks are kept exactly
    assert np.allclose(hl.project(lifted.points, K), uv, atol=1e-6)


def test_background_behind_thin_fingers_is_rejected():
    """Half of each window on a background 0.5 m behind: the median around the hand's depth
    ignores it."""
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    uv, _, world = fabricate_mediapipe(kp)
    depth = render_depth(kp, radius=2, background=1.2)      # thin bones: windows hit background
    lifted = hl.lift_with_depth(uv, world, depth, K, window=3)
    assert np.median(err_mm(lifted.points, kp)) < 2.0


def test_no_valid_depth_is_the_rgb_only_placement():
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    uv, _, world = fabricate_mediapipe(kp)
    for depth in (np.zeros((H, W), np.float32), np.full((H, W), np.nan, np.float32)):
        lifted = hl.lift_with_depth(uv, world, depth, K)
        assert not lifted.from_depth.any() and np.isnan(lifted.depth_offset)
        assert np.allclose(lifted.points, hl.rgb_only_points(uv, world, K))
        assert err_mm(lifted.points, kp).max() < 1.0


def test_depth_corrects_a_wrong_size_prior():
    """RGB-D does not depend on the world landmarks' size the way PnP does."""
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    uv, _, world = fabricate_mediapipe(kp)
    depth = render_depth(kp)
    e_d = err_mm(hl.lift_with_depth(uv, 1.15 * world, depth, K).points, kp)
    e_p = err_mm(hl.place_with_pnp(uv, 1.15 * world, K).points, kp)
    assert np.median(e_d) < 2.0 and np.median(e_p) > 50.0


# ------------------------------------------------------------------------------- HandEstimate
@pytest.mark.parametrize('use_depth', [False, True])
def test_hand_from_mediapipe_builds_a_hand_estimate(use_depth):
    kp = apply(T_LEFT, hand_in_wrist_frame(hl.LEFT))
    uv, norm, world = fabricate_mediapipe(kp)
    depth = render_depth(kp) if use_depth else None
    est = hl.hand_from_mediapipe(norm, world, hl.LEFT, 0.9, (W, H), K, depth=depth)
    assert est.handedness == hl.LEFT and est.metric and est.confidence == pytest.approx(0.9)
    assert est.keypoints.shape == (21, 3) and est.keypoints_2d.shape == (21, 2)
    assert np.allclose(est.keypoints_2d, uv, atol=1e-9)
    assert err_mm(est.keypoints, kp).max() < (4.0 if use_depth else 1.0)
    assert np.all((est.keypoint_confidence > 0) & (est.keypoint_confidence <= 0.9))
    F = hl.wrist_frame(est.keypoints, est.handedness)
    dR = Rotation.from_matrix(F[:3, :3].T @ T_LEFT[:3, :3]).magnitude()
    assert np.degrees(dR) < (3.0 if use_depth else 0.1)


def test_keypoints_off_the_image_get_zero_confidence():
    T = T_RIGHT.copy()
    T[0, 3] = 0.24                       # push 7 keypoints off the right image edge
    kp = apply(T, hand_in_wrist_frame())
    uv, norm, world = fabricate_mediapipe(kp)
    off = ~hl.inside_image(uv, W, H)
    assert 0 < off.sum() < 17
    for depth in (None, render_depth(kp)):
        est = hl.hand_from_mediapipe(norm, world, hl.RIGHT, 0.8, (W, H), K, depth=depth)
        assert (est.keypoint_confidence[off] == 0).all()
        assert (est.keypoint_confidence[~off] > 0).all()
        assert err_mm(est.keypoints, kp).max() < 5.0


def test_depth_of_the_wrong_size_is_rejected():
    kp = apply(T_RIGHT, hand_in_wrist_frame())
    _, norm, world = fabricate_mediapipe(kp)
    with pytest.raises(hl.LiftingError):
        hl.hand_from_mediapipe(norm, world, hl.RIGHT, 0.9, (W, H), K, depth=np.ones((10, 10)))
