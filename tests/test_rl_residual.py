"""Cumulative residual action space (paper B.5, dexman_rl.core.residual) against hand-computed values."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dexman_rl.core.residual import ResidualAccumulator, ResidualConfig, act_dim, split_actions

F = 18


def _acc(n=1, lower=-1.0, upper=1.0, **cfg):
    base = dict(pos_scale=0.01, rot_scale=0.1, finger_scale=0.1)
    base.update(cfg)
    return ResidualAccumulator(n, F, np.full(F, lower), np.full(F, upper), ResidualConfig(**base))


def _action(n=1, hand=0, x=(0, 0, 0), w=(0, 0, 0), th=None):
    a = np.zeros((n, 2, 6 + F))
    a[:, hand, 0:3] = x
    a[:, hand, 3:6] = w
    if th is not None:
        a[:, hand, 6:] = th
    return a.reshape(n, -1)


def _ref(n=1, R=None, th=0.0):
    pos = np.tile([0.1, 0.4, 1.1], (n, 2, 1))
    rot = np.tile(np.eye(3) if R is None else R, (n, 2, 1, 1))
    return pos, rot, np.full((n, 2, F), th)


def test_layout_is_two_hands_of_wrist_then_fingers():
    assert act_dim(F) == 48
    a = np.arange(48, dtype=float)[None] / 100
    x, w, th = split_actions(a, F)
    np.testing.assert_allclose(x[0, 1], [0.24, 0.25, 0.26])      # right hand starts at index 24
    np.testing.assert_allclose(w[0, 0], [0.03, 0.04, 0.05])
    assert th.shape == (1, 2, F) and th[0, 1, 0] == 0.30
    with pytest.raises(ValueError, match=r'\(N, 48\)'):
        split_actions(np.zeros((1, 47)), F)


def test_position_sums_in_the_world_frame():
    acc = _acc()
    pos, rot, th = _ref(R=Rotation.from_euler('x', 90, degrees=True).as_matrix())
    for _ in range(2):
        x, _, _ = acc.step(_action(x=(1.0, 0.0, -0.5)), pos, rot, th)
    np.testing.assert_allclose(x[0, 0], pos[0, 0] + [0.02, 0.0, -0.01], atol=1e-15)
    np.testing.assert_allclose(x[0, 1], pos[0, 1])                 # the other hand untouched


def test_two_steps_of_0p1_rad_about_z_give_0p2_rad_right_multiplied():
    Rbar = Rotation.from_euler('x', 90, degrees=True).as_matrix()
    acc = _acc()
    pos, rot, th = _ref(R=Rbar)
    for _ in range(2):
        _, R, _ = acc.step(_action(hand=1, w=(0, 0, 1.0)), pos, rot, th)
    Rz = Rotation.from_euler('z', 0.2).as_matrix()
    np.testing.assert_allclose(acc.rot[0, 1], Rz, atol=1e-12)
    np.testing.assert_allclose(R[0, 1], Rbar @ Rz, atol=1e-12)        # local (palm) frame
    assert np.abs(R[0, 1] - Rz @ Rbar).max() > 0.1                     # not the world frame
    np.testing.assert_allclose(R[0, 0], Rbar)


def test_rotation_steps_compose_in_step_order():
    acc = _acc()
    pos, rot, th = _ref()
    acc.step(_action(w=(1.0, 0, 0)), pos, rot, th)
    _, R, _ = acc.step(_action(w=(0, 0, 1.0)), pos, rot, th)
    expect = Rotation.from_euler('x', 0.1).as_matrix() @ Rotation.from_euler('z', 0.1).as_matrix()
    np.testing.assert_allclose(R[0, 0], expect, atol=1e-12)


def test_fingers_clip_at_the_limits_with_and_without_anti_windup():
    pos, rot, th = _ref(th=1.5)
    up = np.ones(F)
    # anti-windup: sum clipped to upper - ref = 0.071 -> one step back down lands inside
    acc = _acc(lower=0.0, upper=1.571)
    _, _, t1 = acc.step(_action(th=up), pos, rot, th)
    np.testing.assert_allclose(t1[0, 0], 1.571)
    np.testing.assert_allclose(acc.sum_th[0, 0], 0.071, atol=1e-12)
    _, _, t2 = acc.step(_action(th=-up), pos, rot, th)
    np.testing.assert_allclose(t2[0, 0], 1.471, atol=1e-12)
    # plain paper formula: the sum winds up to 0.2, the target stays clipped after one step back
    acc = _acc(lower=0.0, upper=1.571, finger_anti_windup=False)
    acc.step(_action(th=up), pos, rot, th)
    acc.step(_action(th=up), pos, rot, th)
    _, _, t3 = acc.step(_action(th=-up), pos, rot, th)
    np.testing.assert_allclose(acc.sum_th[0, 0], 0.1, atol=1e-12)
    np.testing.assert_allclose(t3[0, 0], 1.571)
    # lower limit
    acc = _acc(lower=0.0, upper=1.571)
    _, _, t4 = acc.step(_action(th=-up), *_ref(th=0.05))
    np.testing.assert_allclose(t4[0, 0], 0.0)


def test_actions_are_clipped_and_nan_is_zero():
    acc = _acc()
    pos, rot, th = _ref()
    a = _action(x=(5.0, np.nan, -3.0))
    x, _, _ = acc.step(a, pos, rot, th)
    np.testing.assert_allclose(x[0, 0] - pos[0, 0], [0.01, 0.0, -0.01])


def test_sum_bounds_and_reset_of_selected_envs():
    acc = _acc(n=3, max_wrist_offset=0.05, max_wrist_angle=0.3)
    pos, rot, th = _ref(n=3)
    for _ in range(20):
        acc.step(_action(n=3, x=(1.0, 1.0, 0.0), w=(0, 1.0, 0)), pos, rot, th)
    np.testing.assert_allclose(np.linalg.norm(acc.sum_x[:, 0], axis=-1), 0.05)
    np.testing.assert_allclose(Rotation.from_matrix(acc.rot[:, 0]).magnitude(), 0.3, atol=1e-9)
    np.testing.assert_allclose(Rotation.from_matrix(acc.rot[:, 0]).as_rotvec()[:, 1], 0.3, atol=1e-9)
    acc.reset(np.array([False, True, False]))
    assert np.all(acc.sum_x[1] == 0) and np.all(acc.rot[1] == np.eye(3)) and np.all(acc.sum_th[1] == 0)
    np.testing.assert_allclose(np.linalg.norm(acc.sum_x[[0, 2], 0], axis=-1), 0.05)


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match='pos_scale'):
        ResidualConfig(pos_scale=-1.0)
    with pytest.raises(ValueError, match='lower > upper'):
        ResidualAccumulator(1, 2, [1.0, 0.0], [0.0, 1.0])
