"""Batched per-frame linearised arm IK (dexman_rl.core.arm_ik): exact reference joints at zero
residual, forward kinematics of the solution near small residual targets, joint limits, and the
box-constrained damped least squares on hand-computed problems."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

mujoco = pytest.importorskip('mujoco')

from dexman_description import robot_model as rm  # noqa: E402
from dexman_rl.core.arm_ik import ArmIK, ArmIKConfig, box_dls  # noqa: E402

_OK, _WHY = rm.assets_available()


@pytest.fixture(scope='module')
def model():
    if not _OK:
        pytest.skip(f'robot asset packages not installed: {_WHY}')
    from rl_reference import robot_model_dir
    return rm.load_model(robot_model_dir())


@pytest.fixture(scope='module')
def ik_case(model):
    """8 frames of arm poses in the central 60 % of every joint range (no limit, no singularity)."""
    rng = np.random.default_rng(3)
    q = np.zeros((8, model.nq))
    for s in ('left', 'right'):
        for n in rm.arm_joints(s):
            j = model.joint(n)
            lo, hi = model.jnt_range[j.id]
            q[:, j.qposadr[0]] = rng.uniform(lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo), 8)
    return q, ArmIK(model, q)


def _fk(model, q_full, ik, q_arm):
    d = mujoco.MjData(model)
    d.qpos[:] = q_full
    d.qpos[ik.qpos_adr.ravel()] = q_arm.ravel()
    mujoco.mj_kinematics(model, d)
    return d.xpos[ik.palm_body_ids].copy(), d.xmat[ik.palm_body_ids].reshape(2, 3, 3).copy()


def test_precomputed_palm_pose_is_forward_kinematics(model, ik_case):
    q, ik = ik_case
    for t in (0, 5):
        p, R = _fk(model, q[t], ik, ik.q_ref[t])
        np.testing.assert_allclose(ik.palm_pos[t], p, atol=1e-12)
        np.testing.assert_allclose(ik.palm_rot[t], R, atol=1e-12)


def test_zero_residual_gives_exactly_the_reference_joints(ik_case):
    _, ik = ik_case
    t = np.array([0, 3, 7, 3])
    np.testing.assert_array_equal(ik.solve(t, ik.palm_pos[t], ik.palm_rot[t]), ik.q_ref[t])


def test_small_residual_lands_within_millimetres(model, ik_case):
    q, ik = ik_case
    rng = np.random.default_rng(0)
    t = np.repeat(np.arange(8), 4)
    N = len(t)
    # near a singular configuration (a Jacobian singular value ~0) the damped step stays short
    # instead of reaching the target: checked apart, below
    sigma_min = np.linalg.svd(ik.jac, compute_uv=False)[..., -1]               # (T, 2)
    regular = sigma_min[t] > 0.05
    dx = rng.normal(size=(N, 2, 3))
    dx *= 0.01 / np.linalg.norm(dx, axis=-1, keepdims=True)                     # 1 cm
    dw = rng.normal(size=(N, 2, 3))
    dw *= 0.05 / np.linalg.norm(dw, axis=-1, keepdims=True)                     # 0.05 rad
    x = ik.palm_pos[t] + dx
    R = ik.palm_rot[t] @ Rotation.from_rotvec(dw.reshape(-1, 3)).as_matrix().reshape(N, 2, 3, 3)
    qa = ik.solve(t, x, R)
    pos_err, rot_err = [], []
    for n in range(N):
        p, Rs = _fk(model, q[t[n]], ik, qa[n])
        pos_err.append(np.linalg.norm(p - x[n], axis=-1))
        rot_err.append(Rotation.from_matrix(Rs @ np.swapaxes(R[n], -1, -2)).magnitude())
    pos_err, rot_err = np.array(pos_err), np.array(rot_err)
    assert regular.sum() > N                          # most (env, arm) pairs are regular
    assert pos_err[regular].max() < 0.004 and rot_err[regular].max() < 0.012, (pos_err.max(), rot_err.max())
    assert np.median(pos_err) < 0.0015 and np.median(rot_err) < 0.005
    assert np.abs(qa - ik.q_ref[t]).max() < 0.3       # bounded steps, singular ones included


def test_large_residual_stays_within_joint_limits(ik_case):
    _, ik = ik_case
    t = np.arange(8)
    q = ik.solve(t, ik.palm_pos[t] + 0.5, ik.palm_rot[t])
    assert np.all(q >= ik.lower - 1e-12) and np.all(q <= ik.upper + 1e-12)
    assert np.any(np.isclose(q, ik.lower) | np.isclose(q, ik.upper))


def test_box_dls_hand_computed():
    lo, hi = -np.ones(3), np.ones(3)
    # identity Jacobian: each joint independently clipped
    np.testing.assert_allclose(box_dls(np.eye(3), np.array([2.0, 0.5, -0.2]), 0.0, lo, hi, 3), [1.0, 0.5, -0.2])
    # one task row, two joints: min-norm (0.75, 0.75); joint 0 capped at 0.5 -> joint 1 takes 1.0
    J = np.array([[1.0, 1.0]])
    np.testing.assert_allclose(box_dls(J, np.array([1.5]), 0.0, np.array([-1.0, -1.0]), np.array([0.5, 1.0]), 3),
                               [0.5, 1.0], atol=1e-12)
    # unreachable: both at their bounds
    np.testing.assert_allclose(box_dls(J, np.array([3.0]), 0.0, -np.ones(2), np.ones(2), 3), [1.0, 1.0], atol=1e-12)
    # damping shrinks the step: J^T (J J^T + l^2)^-1 e = 0.9 / (2 + 0.25) = 0.4 (undamped 0.45)
    np.testing.assert_allclose(box_dls(J, np.array([0.9]), 0.5, -np.ones(2), np.ones(2), 3), [0.4, 0.4], atol=1e-12)
    # batched
    out = box_dls(np.stack([np.eye(3)] * 2), np.array([[2.0, 0, 0], [0, 0.3, 0]]), 0.0, lo, hi, 3)
    np.testing.assert_allclose(out, [[1, 0, 0], [0, 0.3, 0]])


def test_bad_input(model):
    with pytest.raises(ValueError, match='nq'):
        ArmIK(model, np.zeros((3, model.nq + 1)))
    q = np.zeros((2, model.nq))
    q[1, 0] = np.nan
    with pytest.raises(ValueError, match='non-finite'):
        ArmIK(model, q)
    with pytest.raises(ValueError, match='clamp_iterations'):
        ArmIKConfig(clamp_iterations=0)
