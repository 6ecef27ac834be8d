"""Human (Hand3D, MANO/OpenPose 21) and Shadow hand keypoints: index mapping, the wrist frame of
both hands (orthonormal, right-handed, left = mirror of right), the hand-length normalisation and
the Shadow keypoints / wrist frame read from the G1 + Shadow model. The Shadow tests are skipped,
with the reason, when the robot asset packages are not installed."""
import numpy as np
import pytest

from dexman_retarget.core import hand_keypoints as hk

# A right hand in its own wrist frame (metres): middle MCP on +x, index and little MCP at the same
# z, so the Hand3D frame built from these points is exactly the identity.
_BASES = np.array([[0.026, 0.024, -0.014], [0.081, 0.025, -0.002], [0.086, 0.0, 0.0],
                   [0.080, -0.019, -0.002], [0.071, -0.037, -0.002]])
_LENGTHS = np.array([[0.042, 0.032, 0.027], [0.040, 0.024, 0.021], [0.045, 0.028, 0.023],
                     [0.042, 0.027, 0.022], [0.033, 0.020, 0.019]])


def _rot(axis, a):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def local_right_hand(flex=0.0, spread=0.0) -> np.ndarray:
    """(21, 3) right-hand keypoints in the wrist frame; flexion bends every finger towards -z
    (the palm side), i.e. a rotation about the wrist frame's +y axis."""
    kp = np.zeros((21, 3))
    for f in range(5):
        d = _rot([0, 0, 1], (0.3 if f == 0 else 0.08 * (2 - f)) + spread * (f - 2))[:, 0]
        p = _BASES[f].copy()
        kp[1 + 4 * f] = p
        for k in range(3):
            d = _rot([0, 1, 0], flex) @ d
            p = p + _LENGTHS[f, k] * d
            kp[2 + 4 * f + k] = p
    return kp


def _random_pose(rng):
    R = _rot(rng.normal(size=3), rng.uniform(0, np.pi))
    return R, rng.normal(size=3)


# ------------------------------------------------------------------------------------ mapping
def test_keypoint_index_mapping():
    assert hk.TIP_IDS == (4, 8, 12, 16, 20)
    assert hk.MCP_IDS == (5, 9, 13, 17)
    assert hk.CONTACT_IDS == (4, 8, 12, 16, 20, 5, 9, 13, 17)
    assert len(hk.SHADOW_KEYPOINTS) == hk.N_KEYPOINTS == 21
    assert hk.SHADOW_KEYPOINTS[0] == ('body', 'palm')
    # tips -> the fingertip sites, in robot_model's order (thumb, index, middle, ring, little)
    from dexman_description.robot_model import FINGERTIP_SITES
    assert [hk.SHADOW_KEYPOINTS[i] for i in hk.TIP_IDS] == [('site', s) for s in FINGERTIP_SITES]
    assert [hk.SHADOW_KEYPOINTS[i][1] for i in hk.MCP_IDS] == [
        'ffknuckle', 'mfknuckle', 'rfknuckle', 'lfknuckle']
    # each finger's chain stays on one Shadow finger
    for f, sf in enumerate(hk.SHADOW_FINGERS):
        names = [hk.SHADOW_KEYPOINTS[1 + 4 * f + k][1] for k in range(4)]
        assert all(n.removeprefix('S_').startswith(sf) for n in names), names
    kp = np.arange(63.0).reshape(21, 3)
    assert np.array_equal(hk.contact_keypoints(kp)[:5], kp[[4, 8, 12, 16, 20]])


def test_side_names():
    assert hk.side_name('left') == hk.side_name(hk.LEFT) == hk.side_name('L') == 'left'
    assert hk.side_name('right') == hk.side_name(hk.RIGHT) == hk.side_name(np.uint8(1)) == 'right'
    for bad in ('up', 2, None, True):
        with pytest.raises(ValueError):
            hk.side_name(bad)
    with pytest.raises(ValueError, match='21, 3'):
        hk.wrist_frame(np.zeros((20, 3)), 'right')


# ------------------------------------------------------------------------------- wrist frame
def test_wrist_frame_right_recovers_local_frame():
    rng = np.random.default_rng(0)
    local = local_right_hand(flex=0.4)
    assert np.allclose(hk.wrist_frame(local, 'right'), np.eye(4), atol=1e-12)
    for _ in range(10):
        R, t = _random_pose(rng)
        kp = local @ R.T + t
        T = hk.wrist_frame(kp, hk.RIGHT)
        Rw = T[:3, :3]
        assert np.allclose(Rw.T @ Rw, np.eye(3), atol=1e-12)
        assert np.linalg.det(Rw) == pytest.approx(1.0, abs=1e-12)      # right-handed
        assert np.allclose(Rw, R, atol=1e-12) and np.allclose(T[:3, 3], t)
        assert np.allclose(hk.to_frame(kp, T), local, atol=1e-12)
        # x towards the middle MCP, y towards the index side, z out of the back of the hand:
        # the flexed fingertips lie on the palm side (z < 0)
        loc = hk.to_frame(kp, T)
        assert loc[9, 0] > 0 and abs(loc[9, 1]) < 1e-12 and loc[5, 1] > 0 > loc[17, 1]
        assert np.all(loc[[8, 12, 16, 20], 2] < 0)


@pytest.mark.parametrize('plane_normal', [[1, 0, 0], [0.3, -0.5, 0.8]])
def test_wrist_frame_left_is_mirror_of_right(plane_normal):
    rng = np.random.default_rng(1)
    n = np.asarray(plane_normal, float) / np.linalg.norm(plane_normal)
    Mw = np.eye(3) - 2 * np.outer(n, n)                        # a reflection of the world
    S = np.diag([1.0, -1.0, 1.0])
    for _ in range(5):
        R, t = _random_pose(rng)
        right = local_right_hand(flex=rng.uniform(0, 1), spread=rng.uniform(-0.1, 0.1)) @ R.T + t
        left = right @ Mw.T                                   # the mirror image: a left hand
        Rr = hk.wrist_frame_axes(right, 'right')
        Rl = hk.wrist_frame_axes(left, 'left')
        assert np.linalg.det(Rr) == pytest.approx(1) and np.linalg.det(Rl) == pytest.approx(1)
        assert np.allclose(Rl.T @ Rl, np.eye(3), atol=1e-12)
        # the left definition is the mirror image of the right one: R_L = Mw R_R diag(1,-1,1)
        assert np.allclose(Rl, Mw @ Rr @ S, atol=1e-12)
        # so a left hand in its own wrist frame is the right one with y -> -y
        loc_r = hk.to_frame(right, hk.wrist_frame(right, 'right'))
        loc_l = hk.to_frame(left, hk.wrist_frame(left, 'left'))
        assert np.allclose(loc_l, hk.mirror_wrist_coords(loc_r), atol=1e-12)
        # z is the dorsal normal on both hands: flexed tips are at z < 0 in both frames
        assert np.all(loc_l[[8, 12, 16, 20], 2] < 0)
        # network input: the left hand mirrored to right coordinates equals the right hand's
        assert np.allclose(hk.normalized_fingertips(left, 'left'),
                           hk.normalized_fingertips(right, 'right'), atol=1e-12)
        assert np.allclose(hk.normalized_fingertips(left, 'left', mirror_to_right=False),
                           hk.mirror_wrist_coords(hk.normalized_fingertips(right, 'right')),
                           atol=1e-12)


def test_wrist_frame_batched_and_degenerate():
    rng = np.random.default_rng(2)
    kps = np.stack([local_right_hand(0.2) @ _random_pose(rng)[0].T for _ in range(4)]
                   + [np.zeros((21, 3))])                     # an invalid Hand3D: all zeros
    T = hk.wrist_frame(kps, 'right')
    assert T.shape == (5, 4, 4)
    for i in range(4):
        assert np.allclose(T[i], hk.wrist_frame(kps[i], 'right'))
    assert np.all(np.isnan(T[4, :3, :3]))                      # NaN, not an exception
    tips = hk.normalized_fingertips(kps, 'right')
    assert tips.shape == (5, 5, 3) and np.all(np.isfinite(tips[:4])) and np.all(np.isnan(tips[4]))


# ---------------------------------------------------------------------------- normalisation
def test_hand_scale_is_pose_invariant_skeleton_length():
    L = np.linalg.norm(_BASES[2]) + _LENGTHS[2].sum()          # wrist -> middle tip skeleton
    rng = np.random.default_rng(3)
    for flex in (0.0, 0.5, 1.2):
        R, t = _random_pose(rng)
        kp = local_right_hand(flex) @ R.T + t
        assert hk.hand_scale(kp) == pytest.approx(L, abs=1e-12)
        assert hk.hand_scale(2.0 * kp) == pytest.approx(2 * L, abs=1e-12)
        # normalised fingertips do not depend on the person's hand size
        assert np.allclose(hk.normalized_fingertips(1.3 * kp, 'right'),
                           hk.normalized_fingertips(kp, 'right'), atol=1e-12)
    # an explicit (e.g. per-sequence median) scale is used as given
    kp = local_right_hand(0.0)
    assert np.allclose(hk.normalized_fingertips(kp, 'right', scale=0.2) * 0.2,
                       hk.fingertips_in_wrist(kp, 'right'), atol=1e-12)


# --------------------------------------------------------------------------------- Shadow
mujoco = pytest.importorskip('mujoco')
from dexman_description import robot_model as rm  # noqa: E402

_OK, _WHY = rm.assets_available()
needs_assets = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')
M_PALM = np.diag([-1.0, 1.0, 1.0])     # the left hand's reflection in the palm frame


@pytest.fixture(scope='module')
def model():
    return rm.build_model()


def _set_hand(m, d, side, q22):
    for j, v in zip(rm.hand_joints(side), q22):
        d.qpos[m.joint(j).qposadr[0]] = v
    mujoco.mj_kinematics(m, d)


@needs_assets
def test_shadow_wrist_frame_and_scale(model):
    fr = {s: hk.shadow_hand_frame(model, s) for s in ('right', 'left')}
    for s, f in fr.items():
        R = f.T_palm_wrist[:3, :3]
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-12) and np.linalg.det(R) == pytest.approx(1)
        assert np.allclose(f.T_palm_wrist[:3, 3], 0)           # origin: the palm (wrist) origin
        assert np.allclose(f.T_wrist_palm @ f.T_palm_wrist, np.eye(4), atol=1e-12)
        # x ~ palm z (fingers) tilted 6.3 deg to the middle knuckle, z = palm y (back of the hand)
        assert np.degrees(np.arccos(R[2, 0])) == pytest.approx(6.34, abs=0.05)
        assert np.allclose(R[:, 2], [0, 1, 0], atol=1e-9)
    # hand length: palm origin -> middle knuckle (99.6 mm) + 45 + 25 + 26 mm
    assert fr['right'].scale == pytest.approx(0.19561, abs=1e-4)
    assert fr['left'].scale == pytest.approx(fr['right'].scale, abs=1e-12)
    # the left frame is the mirror of the right in the palm frame
    S = np.diag([1.0, -1.0, 1.0])
    assert np.allclose(fr['left'].T_palm_wrist[:3, :3],
                       M_PALM @ fr['right'].T_palm_wrist[:3, :3] @ S, atol=1e-12)
    assert np.allclose(fr['left'].keypoints_palm, fr['right'].keypoints_palm @ M_PALM, atol=1e-12)


@needs_assets
def test_shadow_keypoints_mirror_and_normalisation(model):
    d = mujoco.MjData(model)
    rng = np.random.default_rng(4)
    lo, hi = (np.array([model.joint(j).range[k] for j in rm.hand_joints('right')]) for k in (0, 1))
    fr = {s: hk.shadow_hand_frame(model, s) for s in ('right', 'left')}
    ids = {s: hk.shadow_keypoint_ids(model, s) for s in ('right', 'left')}
    for _ in range(10):
        q = rng.uniform(lo, hi)
        _set_hand(model, d, 'right', q)
        _set_hand(model, d, 'left', q)                        # same angles on both hands
        kp = {s: hk.to_frame(hk.shadow_keypoints(model, d, s, ids[s]), hk.palm_frame(model, d, s))
              for s in ('right', 'left')}
        assert np.allclose(kp['left'], kp['right'] @ M_PALM, atol=1e-12)
        # the contact keypoints are the fingertip sites then the knuckles
        ck = hk.shadow_contact_keypoints(model, d, 'right', ids['right'])
        tips = np.array([d.site_xpos[model.site(s).id] for s in rm.fingertip_sites('right')])
        assert np.allclose(ck[:5], tips)
        assert np.allclose(ck[6], d.xpos[model.body('rh_mfknuckle').id])
        # normalised tips: left mirrored into right coordinates = right
        nr = hk.shadow_normalized_fingertips(model, d, 'right', fr['right'])
        nl = hk.shadow_normalized_fingertips(model, d, 'left', fr['left'])
        assert np.allclose(nl, nr, atol=1e-12)
        # and the same function as for a human hand, applied to the Shadow's 21 keypoints
        # (per-configuration frame): equal when LFJ4 is 0 (the frame is fixed at LFJ4 = 0)
    q = rng.uniform(lo, hi)
    q[rm.HAND_JOINTS.index('LFJ4')] = 0.0
    _set_hand(model, d, 'right', q)
    via_human = hk.normalized_fingertips(hk.shadow_keypoints(model, d, 'right'), 'right')
    assert np.allclose(via_human, hk.shadow_normalized_fingertips(model, d, 'right'), atol=1e-9)
    # the scratch-data helper gives the same keypoints for that configuration
    kp_w = hk.shadow_keypoints_at(model, 'right', q, frame='wrist')
    assert np.allclose(kp_w[list(hk.TIP_IDS)] / fr['right'].scale, via_human, atol=1e-9)
    kp_l = hk.shadow_keypoints_at(model, 'left', q)
    assert np.allclose(kp_l, hk.shadow_keypoints_at(model, 'right', q) @ M_PALM, atol=1e-12)
    with pytest.raises(ValueError):
        hk.shadow_keypoints_at(model, 'right', q[:18])


@needs_assets
def test_extended_fingers_reach_the_same_normalised_distance(model):
    """The point of the hand-length normalisation: an extended middle finger reaches ~1.0 on
    both a human hand (exactly 1 when straight) and the Shadow hand (0.997)."""
    d = mujoco.MjData(model)
    _set_hand(model, d, 'right', np.zeros(22))
    shadow = hk.shadow_normalized_fingertips(model, d, 'right')
    human = hk.normalized_fingertips(local_right_hand(0.0, 0.0), 'right')
    assert np.linalg.norm(human[2]) == pytest.approx(1.0, abs=2e-3)
    assert np.linalg.norm(shadow[2]) == pytest.approx(0.9985, abs=2e-3)
    # a palm-size normalisation (wrist -> middle MCP) would overshoot the Shadow by ~8%
    palm_h = np.linalg.norm(_BASES[2])
    palm_s = np.linalg.norm(hk.shadow_hand_frame(model, 'right').keypoints_palm[9])
    ratio = (np.linalg.norm(human[2]) * hk.hand_scale(local_right_hand()) / palm_h) / (
        np.linalg.norm(shadow[2]) * hk.shadow_hand_frame(model, 'right').scale / palm_s)
    assert ratio > 1.05
