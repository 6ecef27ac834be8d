"""Workspace fit (beyond the paper): one translation of the whole demonstration chosen against the
G1 arms' reach. Real numbers on the real model: palm targets are forward kinematics of in-range
arm paths (reachable by construction) moved by a known offset, and "out of reach" is checked
against the hand-computable limit (a palm farther from its shoulder than the chain length is
never reachable) and the pipeline's own IK. Skipped (with the reason) when the robot asset
packages are not installed."""
import dataclasses

import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')

from dexman_common.config import ConfigError  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402
from dexman_retarget.core import workspace_fit as wf  # noqa: E402
from dexman_retarget.core import wrist_ik as wik  # noqa: E402

_OK, _WHY = rm.assets_available()
needs_assets = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')
SIDES = ('left', 'right')
OFFSET = np.array([0.0, 0.12, 0.10])     # moves part of the path beyond both arms' reach


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    if not _OK:
        pytest.skip(f'robot asset packages not installed: {_WHY}')
    return rm.build(tmp_path_factory.mktemp('robot') / 'g1_shadow').model


@pytest.fixture(scope='module')
def ik(model):
    return wik.WristIK(model)


@pytest.fixture(scope='module')
def search(model):
    return wf.search_ik(model, wik.IKOptions(), wf.WorkspaceFitConfig())


@pytest.fixture(scope='module')
def targets(ik):
    """(2, 24, 4, 4) palm poses [left, right] of a smooth in-range path of both arms."""
    rng = np.random.default_rng(0)
    t = np.linspace(0.0, 1.0, 24)[:, None]
    mid, half = 0.5 * (ik.lo + ik.hi), 0.5 * (ik.hi - ik.lo)
    q = np.clip(mid + 0.3 * half * np.sin(2 * np.pi * t + rng.uniform(0, 6, 14)), ik.lo, ik.hi)
    return np.transpose(ik.forward(q), (1, 0, 2, 3)).copy()


def _beyond_reach(ik, targets):
    """(T, 2) bool: the palm target is farther from its shoulder than the arm's chain length."""
    return np.stack([np.linalg.norm(targets[k, :, :3, 3] - ik.shoulder[s], axis=1) > ik.reach[s]
                     for k, s in enumerate(SIDES)], axis=1)


def test_shift_bounds_hand_computed():
    cfg = wf.WorkspaceFitConfig(max_shift=(0.15, 0.2, 0.35), table_height_range=(0.75, 1.10), min_object_y=0.15)
    lo, hi, notes = wf.shift_bounds(1.0, 0.20, cfg)
    np.testing.assert_allclose(lo, [-0.15, -0.05, -0.25])      # objects stop at y = 0.15; table at 0.75
    np.testing.assert_allclose(hi, [0.15, 0.2, 0.10])          # table at 1.10
    assert notes == []
    # a table already below the range may only go up, objects already too close only away
    lo, hi, notes = wf.shift_bounds(0.70, 0.10, cfg)
    np.testing.assert_allclose(lo, [-0.15, 0.0, 0.0])
    np.testing.assert_allclose(hi, [0.15, 0.2, 0.35])
    assert len(notes) == 2 and 'table_height_range' in notes[0] and 'min_object_y' in notes[1]
    # no object positions: y limited by max_shift only
    lo, _, _ = wf.shift_bounds(1.0, None, cfg)
    assert lo[1] == -0.2


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match='method must be one of paper, whole_demo'):
        wf.WorkspaceFitConfig(method='box')
    with pytest.raises(ConfigError, match=r"config/retarget.yaml \[workspace_fit\].*table_height_range"):
        wf.WorkspaceFitConfig.from_dict({'table_height_range': [1.2, 0.8]})
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['reach_box'\]"):
        wf.WorkspaceFitConfig.from_dict({'reach_box': [0.1, 0.45]})


@needs_assets
def test_closest_pose_is_a_reach_test(ik, targets):
    # reachable by construction: reached to the solver tolerance
    for k, s in enumerate(SIDES):
        _, (pe, re) = ik.closest_pose(s, targets[k, 5], n_seeds=2)
        assert pe <= ik.opt.tol_pos and re <= ik.opt.tol_rot
    # 10 cm beyond the chain length: the error is at least the excess distance
    s = 'right'
    tg = targets[1, 5].copy()
    u = tg[:3, 3] - ik.shoulder[s]
    tg[:3, 3] = ik.shoulder[s] + u / np.linalg.norm(u) * (ik.reach[s] + 0.10)
    _, (pe, _) = ik.closest_pose(s, tg, n_seeds=2)
    assert pe >= 0.10 - 1e-6


@needs_assets
def test_fit_brings_a_moved_path_back_into_reach(ik, search, targets):
    moved = wf.translate_poses(targets, OFFSET)
    far = _beyond_reach(ik, moved)
    assert far[:, 0].sum() == 10 and far[:, 1].sum() == 7          # out of reach whatever the IK
    cfg = wf.WorkspaceFitConfig()
    fit = wf.fit(search, moved, 0.9, None, cfg)
    # the search's own reach test saw at least those frames before, none after
    assert np.all(fit.before.unreachable[far]) and fit.before.bad_frames >= far.any(axis=1).sum()
    assert fit.after.bad_frames == 0 and fit.after.complete
    d = fit.delta
    assert np.all(d >= fit.lower - 1e-12) and np.all(d <= fit.upper + 1e-12)
    np.testing.assert_allclose(d / cfg.min_step, np.round(d / cfg.min_step), atol=1e-9)   # on the lattice
    shifted = wf.translate_poses(moved, d)
    assert not _beyond_reach(ik, shifted).any()
    # the pipeline's IK (warm-started trajectory, restarts) reaches every frame of both arms
    res = ik.solve_trajectory(shifted[0], shifted[1])
    assert res.reachable.all(), res.report
    s = fit.summary()
    assert s['method'] == 'whole_demo' and s['delta_m'] == [round(float(v), 4) for v in d]
    assert s['search_ik_unreachable_after'] == {'left': 0.0, 'right': 0.0, 'frames': 0.0}
    assert s['search_ik_unreachable_before']['left'] >= 10 / 24


@needs_assets
def test_fit_keeps_a_reachable_demonstration_and_the_paper_rule(search, targets):
    fit = wf.fit(search, targets, 0.9, None)
    assert fit.before.bad_frames == 0 and np.all(fit.delta == 0) and fit.evaluations == 1
    moved = wf.translate_poses(targets, OFFSET)
    paper = wf.fit(search, moved, 0.9, None, wf.WorkspaceFitConfig(method='paper'))
    assert paper.method == 'paper' and np.all(paper.delta == 0) and paper.evaluations == 0
    assert paper.before is None and 'search_ik_unreachable_before' not in paper.summary()
    assert 'workspace fit (paper): shift (+0, +0, +0) mm' in paper.report_line()


@needs_assets
def test_fit_stays_within_its_bounds(ik, search, targets):
    moved = wf.translate_poses(targets, OFFSET)
    cfg = wf.WorkspaceFitConfig(max_shift=(0.02, 0.03, 0.02))
    # objects at y >= 0.17 (min_object_y 0.15): delta_y >= -0.02; the table at 1.09: delta_z <= 0.01
    obj = np.array([[0.0, 0.17, 1.09], [0.1, 0.4, 1.2]])
    fit = wf.fit(search, moved, 1.09, obj, cfg)
    np.testing.assert_allclose(fit.lower, [-0.02, -0.02, -0.02])
    np.testing.assert_allclose(fit.upper, [0.02, 0.03, 0.01])
    assert np.all(fit.delta >= fit.lower - 1e-12) and np.all(fit.delta <= fit.upper + 1e-12)
    # a frame whose target is beyond reach for every delta in the box stays out of reach: the
    # nearest point of the box to (shoulder - target) is still farther than the chain length
    still = np.zeros((moved.shape[1], 2), bool)
    for k, s in enumerate(SIDES):
        v = ik.shoulder[s] - moved[k, :, :3, 3]
        still[:, k] = np.linalg.norm(v - np.clip(v, fit.lower, fit.upper), axis=1) > ik.reach[s]
    assert still.any() and fit.after.bad_frames >= still.any(axis=1).sum()
    assert fit.after.bad_frames <= fit.before.bad_frames
    assert any('stay out of reach' in n for n in fit.notes)


def test_translate_helpers_keep_nan_and_rotation():
    P = np.repeat(np.eye(4)[None], 3, axis=0)
    P[1] = np.nan
    Q = wf.translate_poses(P, [0.1, -0.2, 0.3])
    np.testing.assert_allclose(Q[0, :3, 3], [0.1, -0.2, 0.3])
    np.testing.assert_array_equal(Q[0, :3, :3], np.eye(3))
    assert np.isnan(Q[1]).all() and P[0, 0, 3] == 0.0          # a copy
    np.testing.assert_allclose(wf.translate_points(np.zeros((2, 3)), [1, 2, 3]), [[1, 2, 3]] * 2)
    np.testing.assert_array_equal(wf.search_frames(5, 40), np.arange(5))
    np.testing.assert_array_equal(wf.search_frames(101, 5), [0, 25, 50, 75, 100])
    assert dataclasses.is_dataclass(wf.WorkspaceFit)
