"""Wrist retargeting (paper 3.3): the human wrist frame -> Shadow palm target mapping, and the
damped-least-squares IK to the G1 arm joints (both arms, whole trajectories). Real numbers on the
real model: targets come from forward kinematics of in-range arm configurations. Skipped (with
the reason) when the robot asset packages are not installed."""
import time

import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')

from dexman_description import robot_model as rm  # noqa: E402
from dexman_retarget.core import wrist_ik as wik  # noqa: E402
from dexman_retarget.core import wrist_targets as wt  # noqa: E402

_OK, _WHY = rm.assets_available()
needs_assets = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')

S = np.diag([-1.0, 1.0, 1.0])          # the robot's sagittal plane x = 0 (world)


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    if not _OK:
        pytest.skip(f'robot asset packages not installed: {_WHY}')
    return rm.build(tmp_path_factory.mktemp('robot') / 'g1_shadow').model


@pytest.fixture(scope='module')
def ik(model):
    return wik.WristIK(model)


def _rot_angle(Ra, Rb):
    return float(np.linalg.norm(wik._rotvec(Ra @ Rb.T)))


def _smooth_path(ik, rng, T=240, scale=0.6):
    """A smooth in-range joint path for both arms (sum of slow sines around a random pose)."""
    mid = 0.5 * (ik.lo + ik.hi)
    half = 0.5 * (ik.hi - ik.lo)
    c = mid + scale * half * rng.uniform(-0.5, 0.5, 14)
    t = np.linspace(0.0, 1.0, T)[:, None]
    amp = 0.25 * scale * half * rng.uniform(0.5, 1.0, (2, 14))
    ph = rng.uniform(0, 2 * np.pi, (2, 14))
    q = c + amp[0] * np.sin(2 * np.pi * t + ph[0]) + amp[1] * np.sin(4 * np.pi * t + ph[1])
    return np.clip(q, ik.lo, ik.hi)


# --- the human wrist frame ------------------------------------------------------------------------
def _human_keypoints(side):
    """A flat human hand, palm down, fingers along +y, in world coordinates (metres)."""
    kp = np.zeros((21, 3))
    sgn = 1.0 if side == 'right' else -1.0      # the thumb/index side is -x for a right hand here
    for f, (x, length) in enumerate([(-0.035, 0.05), (-0.022, 0.09), (0.0, 0.095), (0.02, 0.09), (0.038, 0.085)]):
        for j in range(4):
            kp[1 + 4 * f + j] = [sgn * x, length + 0.02 * j, 0.0]
    return kp


def test_wrist_frame_follows_hand3d_definition():
    for side in ('left', 'right'):
        T = wt.wrist_frame_from_keypoints(_human_keypoints(side), side)
        R = T[:3, :3]
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-12) and np.linalg.det(R) > 0
        assert np.allclose(R[:, 0], [0, 1, 0])             # towards the middle MCP
        assert np.allclose(R[:, 2], [0, 0, 1])             # dorsal (palm down) on both hands
        # y: radial (towards the index) on the right hand, ulnar on the left hand
        assert np.allclose(R[:, 1], [-1, 0, 0])   # index (right) / little finger (left) on -x
    # the left definition is the mirror image of the right one
    kr = _human_keypoints('right')
    Tl = wt.wrist_frame_from_keypoints(kr @ S, 'left')
    Tr = wt.wrist_frame_from_keypoints(kr, 'right')
    assert np.allclose(Tl[:3, :3], S @ Tr[:3, :3] @ np.diag([1.0, -1.0, 1.0]))
    # batched, and Hand3D handedness constants
    batch = np.stack([kr, kr + 1.0])
    assert wt.wrist_frame_from_keypoints(batch, wt.HAND3D_RIGHT).shape == (2, 4, 4)
    with pytest.raises(ValueError):
        wt.wrist_frame_from_keypoints(np.zeros((21, 3)), 'right')
    with pytest.raises(ValueError):
        wt.side_name('middle')


@needs_assets
def test_palm_mapping_derived_from_model(model):
    Tr = wt.palm_from_human_wrist(model, 'right')
    Tl = wt.palm_from_human_wrist(model, 'left')
    for T in (Tr, Tl):
        assert np.allclose(T[:3, 3], 0.0, atol=1e-12)      # keypoint 0 = palm origin
        R = T[:3, :3]
        assert np.allclose(R.T @ R, np.eye(3), atol=1e-12) and np.linalg.det(R) > 0
        # palm y (dorsal) = human z; palm z (fingers) within 6.34 deg of human x
        assert np.allclose(R[:, 1], [0, 0, 1], atol=1e-12)
        assert np.degrees(np.arccos(R[0, 2])) == pytest.approx(6.34, abs=0.01)
    assert np.allclose(Tr[:3, :3], [[0.1104, 0, 0.9939], [0.9939, 0, -0.1104], [0, 1, 0]], atol=1e-4)
    # the left mapping is the mirror image (human-frame and palm-frame reflections)
    assert np.allclose(Tl[:3, :3], np.diag([1.0, -1.0, 1.0]) @ Tr[:3, :3] @ np.diag([-1.0, 1.0, 1.0]), atol=1e-12)


@needs_assets
def test_robot_keypoints_map_back_onto_palm(model):
    """A Hand3D frame built from the Shadow model's own 21 keypoints maps onto the palm: ~0 error
    (random arm and finger poses, LFJ4 = 0); the little-finger metacarpal tilts it (cupping)."""
    d = mujoco.MjData(model)
    rng = np.random.default_rng(3)
    lo, hi = model.jnt_range.T
    worst = 0.0
    for _ in range(20):
        for side in ('left', 'right'):
            d.qpos[:] = rng.uniform(lo, hi)
            d.qpos[model.jnt_qposadr[model.joint(rm.HAND_PREFIX[side] + 'LFJ4').id]] = 0.0
            mujoco.mj_kinematics(model, d)
            kp = wt.robot_hand_keypoints(model, d, side)
            T = wt.palm_targets_from_human(model, wt.wrist_frame_from_keypoints(kp, side), side)
            b = model.body(rm.HAND_PREFIX[side] + rm.PALM_BODY).id
            worst = max(worst, np.linalg.norm(T[:3, 3] - d.xpos[b]),
                        _rot_angle(T[:3, :3], d.xmat[b].reshape(3, 3)))
    assert worst < 1e-9
    # LFJ4 = 0.3 rad: keypoint 17 moves, the frame tilts (documented; 0.18 rad)
    d.qpos[:] = 0.0
    d.qpos[model.jnt_qposadr[model.joint('rh_LFJ4').id]] = 0.3
    mujoco.mj_kinematics(model, d)
    hw = wt.wrist_frame_from_keypoints(wt.robot_hand_keypoints(model, d, 'right'), 'right')
    T = wt.palm_targets_from_human(model, hw, 'right')
    b = model.body('rh_palm').id
    assert _rot_angle(T[:3, :3], d.xmat[b].reshape(3, 3)) == pytest.approx(0.178, abs=0.002)


# --- IK ---------------------------------------------------------------------------------------
@needs_assets
def test_recovers_random_reachable_targets(model, ik):
    """Targets = FK of random in-range configurations of both arms (independent frames, solved
    as one trajectory): < 1 mm and < 0.01 rad on >= 95 % of frames, per arm."""
    rng = np.random.default_rng(10)      # not the solver's seed-table seed (0)
    N = 120
    q_true = rng.uniform(ik.lo, ik.hi, size=(N, 14))
    P = ik.forward(q_true)
    res = wik.solve_trajectory(model, P[:, 0], P[:, 1])
    ok = (res.pos_err < 1e-3) & (res.rot_err < 0.01)
    print(res.report)
    assert ok.mean(axis=0).min() >= 0.95, res.report
    assert res.reachable.mean(axis=0).min() >= 0.95
    assert np.all(res.q >= ik.lo) and np.all(res.q <= ik.hi)
    # the reported errors are the real ones
    P2 = ik.forward(res.q)
    pe = np.linalg.norm(P2[:, :, :3, 3] - P[:, :, :3, 3], axis=-1)
    assert np.allclose(pe, res.pos_err, atol=1e-12)


@needs_assets
def test_smooth_targets_give_smooth_joints(model, ik):
    rng = np.random.default_rng(1)
    q_true = _smooth_path(ik, rng, T=240)
    P = ik.forward(q_true)
    t0 = time.perf_counter()
    res = wik.solve_trajectory(model, P[:, 0], P[:, 1], q0=q_true[0])
    dt = (time.perf_counter() - t0) / len(P)
    print(res.report, f'\n{1e3 * dt:.2f} ms/frame')
    assert res.converged.all(), res.report
    assert np.nanmax(res.pos_err) < 1e-4 and np.nanmax(res.rot_err) < 1e-3
    step = np.abs(np.diff(res.q, axis=0)).max()
    true_step = np.abs(np.diff(q_true, axis=0)).max()
    assert step <= 2.0 * true_step + 1e-3, (step, true_step)
    assert np.all(res.q >= ik.lo) and np.all(res.q <= ik.hi)
    assert dt < 0.01                                  # measured ~0.2 ms/frame (both arms)


@needs_assets
def test_far_target_unreachable_closest_pose(model, ik):
    """A target 2 m from the shoulder: reported unreachable, with the closest pose (position-only
    weighting: no FK sample of 4000 random poses is closer)."""
    opts = wik.IKOptions(rot_weight=0.0, tol_rot=4.0, reach_tol_rot=4.0)   # orientation ignored
    left = ik.forward(0.5 * (ik.lo + ik.hi))[0, 0]
    far = np.eye(4)
    direction = np.array([0.3, 0.8, -0.2]) / np.linalg.norm([0.3, 0.8, -0.2])
    far[:3, 3] = ik.shoulder['right'] + 2.0 * direction
    res = wik.solve_trajectory(model, left[None], far[None], options=opts)
    assert not res.reachable[0, 1] and not res.converged[0, 1]
    assert res.reachable[0, 0] and res.pos_err[0, 0] < 1e-4
    assert "right: unreachable: target 2.000 m from the shoulder, beyond the arm's reach" in res.messages[0]
    assert 'left' not in res.messages[0]
    qs = np.random.default_rng(2).uniform(ik.lo, ik.hi, size=(4000, 14))
    best = np.linalg.norm(ik.forward(qs)[:, 1, :3, 3] - far[:3, 3], axis=1).min()
    assert 2.0 - ik.reach['right'] <= res.pos_err[0, 1] <= best + 1e-3
    assert np.all(res.q >= ik.lo) and np.all(res.q <= ik.hi)
    # the arm points at the target: the palm lies on the shoulder-target line (within 5 cm)
    p = ik.forward(res.q)[0, 1, :3, 3] - ik.shoulder['right']
    assert np.linalg.norm(p - (p @ direction) * direction) < 0.05


@needs_assets
def test_joint_limits_never_violated(model, ik):
    """Targets made with joints at their limits are recovered; a sequence that drives the arms
    past their workspace never leaves the joint ranges."""
    rng = np.random.default_rng(4)
    q = rng.uniform(ik.lo, ik.hi, size=(30, 14))
    for t in range(30):                  # one joint per arm at a limit
        for j in (rng.integers(0, 7), rng.integers(7, 14)):
            q[t, j] = ik.lo[j] if rng.random() < 0.5 else ik.hi[j]
    P = ik.forward(q)
    res = wik.solve_trajectory(model, P[:, 0], P[:, 1])
    assert np.all(res.q >= ik.lo) and np.all(res.q <= ik.hi)
    assert ((res.pos_err < 1e-3) & (res.rot_err < 0.01)).mean() >= 0.95, res.report
    # targets moving away from the body, out of reach
    base = ik.forward(np.zeros(14))[0]
    tl = np.repeat(base[0][None], 20, axis=0)
    tr = np.repeat(base[1][None], 20, axis=0)
    s = np.linspace(0.0, 0.8, 20)
    tl[:, :3, 3] += s[:, None] * np.array([-0.7, 0.7, 0.3])
    tr[:, :3, 3] += s[:, None] * np.array([0.7, 0.7, -0.3])
    res = wik.solve_trajectory(model, tl, tr)
    assert np.all(res.q >= ik.lo) and np.all(res.q <= ik.hi)
    assert res.reachable[0].all() and not res.reachable[-1].any()


@needs_assets
def test_left_right_symmetric(model, ik):
    """Mirrored targets give mirrored solutions (q_left = MIRROR_SIGNS * q_right)."""
    rng = np.random.default_rng(5)
    qr = _smooth_path(ik, rng, T=90)[:, 7:]
    q = np.concatenate([wik.MIRROR_SIGNS * qr, qr], axis=1)
    P = ik.forward(q)
    # the targets are mirror images: position x -> -x, rotation S R diag(-1, 1, 1)
    assert np.allclose(P[:, 0, :3, 3], P[:, 1, :3, 3] @ S, atol=2e-4)
    assert np.allclose(P[:, 0, :3, :3], S @ P[:, 1, :3, :3] @ S, atol=2e-3)
    q0 = np.concatenate([wik.MIRROR_SIGNS * qr[0], qr[0]]) * 0.5
    res = wik.solve_trajectory(model, P[:, 0], P[:, 1], q0=q0)
    assert res.converged.all()
    assert np.abs(res.q[:, :7] - wik.MIRROR_SIGNS * res.q[:, 7:]).max() < 1e-3
    assert np.abs(np.nanmax(res.pos_err, axis=0)).max() < 1e-4


@needs_assets
def test_missing_targets_hold_the_arm(model, ik):
    rng = np.random.default_rng(6)
    q = _smooth_path(ik, rng, T=20)
    P = ik.forward(q)
    tl = P[:, 0].copy()
    tl[5:8] = np.nan                                 # left hand lost for 3 frames
    res = wik.solve_trajectory(model, tl, None, q0=q[0])
    assert res.q.shape == (20, 14) and res.joint_names == rm.arm_joints('left') + rm.arm_joints('right')
    assert np.all(res.q[:, 7:] == q[0, 7:])          # right arm: no target, held at q0
    assert np.all(res.q[5:8, :7] == res.q[4, :7])    # left arm held while the target is NaN
    assert not res.has_target[5:8, 0].any() and res.has_target[:5, 0].all() and not res.has_target[:, 1].any()
    assert np.isnan(res.pos_err[5:8, 0]).all() and res.converged[np.r_[0:5, 8:20], 0].all()
    assert 'frame 6 left: no target (NaN): arm held' in res.messages[6]
    assert res.messages[0] == ''
    # full qpos: hand (and all other) joints held at qpos_hold
    full = res.full_qpos(model)
    arm = [model.jnt_qposadr[model.joint(n).id] for n in res.joint_names]
    other = np.setdiff1d(np.arange(model.nq), arm)
    assert np.all(full[:, other] == model.qpos0[other]) and np.allclose(full[:, arm], res.q)
    # hands held at a given pose do not change the palm frames' solution
    hold = model.qpos0.copy()
    for side in ('left', 'right'):
        for j in rm.hand_joints(side):
            jid = model.joint(j).id
            hold[model.jnt_qposadr[jid]] = model.jnt_range[jid].mean()
    res2 = wik.solve_trajectory(model, P[:, 0], P[:, 1], q0=q[0], qpos_hold=hold)
    assert res2.converged.all()
    assert np.all(res2.full_qpos(model, hold)[:, other] == hold[other])


@needs_assets
def test_solve_from_human_wrist_frames(model, ik):
    """Human wrist frames built from the robot's own keypoints (flat hands) -> arm joints that
    put the palms there."""
    rng = np.random.default_rng(7)
    q = _smooth_path(ik, rng, T=40)
    d = mujoco.MjData(model)
    human = {s: np.empty((40, 4, 4)) for s in ('left', 'right')}
    for t in range(40):
        d.qpos[:] = 0.0
        d.qpos[ik.qadr] = q[t]
        mujoco.mj_kinematics(model, d)
        for s in human:
            human[s][t] = wt.wrist_frame_from_keypoints(wt.robot_hand_keypoints(model, d, s), s)
    res = wik.solve_from_human(model, human['left'], human['right'], q0=q[0])
    assert res.converged.all() and np.nanmax(res.pos_err) < 1e-4
    P = ik.forward(q)
    P2 = ik.forward(res.q)
    assert np.abs(P2 - P).max() < 1e-3


@needs_assets
def test_input_checks(model, ik):
    P = ik.forward(np.zeros(14))
    with pytest.raises(ValueError, match='no targets'):
        wik.solve_trajectory(model, None, None)
    with pytest.raises(ValueError, match='differ in length'):
        wik.solve_trajectory(model, P[:, 0], np.repeat(P[:, 1], 2, axis=0))
    with pytest.raises(ValueError, match='shape'):
        wik.solve_trajectory(model, np.zeros((3, 3, 3)))
    bad = P[:, 0].copy()
    bad[0, :3, :3] *= 2.0
    with pytest.raises(ValueError, match='rotation'):
        wik.solve_trajectory(model, bad)
    with pytest.raises(ValueError, match='outside the joint limits'):
        wik.solve_trajectory(model, P[:, 0], q0=ik.hi + 1.0)
    with pytest.raises(ValueError, match='extra_joints'):
        wik.WristIK(model, wik.IKOptions(extra_joints=('waist_yaw_joint',)))
    # a single 4x4 is one frame
    assert wik.solve_trajectory(model, P[0, 0]).q.shape == (1, 14)
