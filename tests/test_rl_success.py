"""Success metric (paper 4.2): per-step thresholds over whole rollouts, E_r / E_t over successes only."""
import math
import pathlib

import numpy as np
import pytest

from dexman_common.config import ConfigError, load_section
from dexman_rl.core.success import SuccessConfig, SuccessTracker, step_errors, summarise

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_config_defaults_and_yaml():
    c = SuccessConfig()
    assert (c.rot_threshold, c.pos_threshold, c.rollouts_per_sequence) == (0.5, 0.03, 10)
    assert load_section(SuccessConfig, ROOT / 'config' / 'rl.yaml') == c
    with pytest.raises(ConfigError, match='pos_treshold'):
        SuccessConfig.from_dict({'pos_treshold': 0.03})
    with pytest.raises(ConfigError):
        SuccessConfig.from_dict({'rollouts_per_sequence': 0})


def test_step_errors():
    pos = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]])
    ref = np.array([[[0.03, 0.04, 0.0], [1.0, 1.0, 1.0]]])
    q = np.array([[[1.0, 0, 0, 0], [1.0, 0, 0, 0]]])
    half = 0.25                                                   # rotation of 0.5 rad about y
    rq = np.array([[[-math.cos(half), 0, -math.sin(half), 0], [1.0, 0, 0, 0]]])   # negated: same rotation
    pe, re = step_errors(pos, q, ref, rq)
    np.testing.assert_allclose(pe, [[0.05, 0.0]])
    np.testing.assert_allclose(re, [[0.5, 0.0]], atol=1e-12)


def run(tracker, pos_seq, rot_seq, done_seq=None):
    out = []
    for t in range(len(pos_seq)):
        out += tracker.step(np.asarray(pos_seq[t], float), np.asarray(rot_seq[t], float),
                            None if done_seq is None else np.asarray(done_seq[t], bool))
    return out


def test_threshold_boundaries_and_one_bad_step():
    # 6 envs, 1 object, 3 steps. Columns: env0..env5
    pos = [[0.0299, 0.0299, 0.0, 0.0, 0.0, 0.0],
           [0.0299, 0.0301, 0.0, 0.0, 0.03, 0.0],
           [0.0299, 0.0, 0.0, 0.0, 0.0, 0.0]]
    rot = [[0.0, 0.0, 0.49, 0.49, 0.0, 0.0],
           [0.0, 0.0, 0.49, 0.49, 0.0, 0.5],
           [0.0, 0.0, 0.49, 0.51, 0.0, 0.0]]
    tr = SuccessTracker(6, horizon=3)
    res = run(tr, [[[p] for p in row] for row in pos], [[[r] for r in row] for row in rot])
    assert [r.env_id for r in res] == list(range(6))
    # 0.0299 m ok; 0.0301 m once fails; 0.49 rad ok; 0.51 rad at the last step fails;
    # exactly at the thresholds (0.03 m, 0.5 rad) fails ("below")
    assert [r.success for r in res] == [True, False, True, False, False, False]
    assert all(r.completed and r.length == 3 for r in res)


def test_every_object_must_pass():
    tr = SuccessTracker(1, horizon=2)
    res = run(tr, [[[0.0, 0.0]], [[0.0, 0.04]]], [[[0.0, 0.0]], [[0.0, 0.0]]])
    assert len(res) == 1 and not res[0].success


def test_rollout_means_and_summary_over_successes_only():
    tr = SuccessTracker(3, horizon=3)
    # rows: steps t0..t2; columns: env0, env1, env2 (one object each)
    pos = [[[0.01], [0.02], [0.00]],
           [[0.02], [0.05], [0.00]],       # env1 fails at step 1 (0.05 m)
           [[0.00], [0.02], [0.01]]]
    rot = [[[0.1], [0.2], [0.3]],
           [[0.3], [0.1], [0.2]],
           [[0.2], [0.2], [0.2]]]
    res = run(tr, pos, rot)
    by_env = {r.env_id: r for r in res}
    assert by_env[0].e_t == pytest.approx((0.01 + 0.02 + 0.0) / 3)
    assert by_env[0].e_r == pytest.approx((0.1 + 0.3 + 0.2) / 3)
    assert by_env[1].e_t == pytest.approx((0.02 + 0.05 + 0.02) / 3) and not by_env[1].success
    assert by_env[2].e_t == pytest.approx((0.0 + 0.0 + 0.01) / 3)
    assert by_env[2].e_r == pytest.approx((0.3 + 0.2 + 0.2) / 3)
    s = summarise(res)
    assert (s.count, s.num_success) == (3, 2)
    assert s.success_rate == pytest.approx(2 / 3)
    # averaged over env0 and env2 only; env1 (failed, E_t 0.03) is left out
    assert s.e_r == pytest.approx(((0.1 + 0.3 + 0.2) / 3 + (0.3 + 0.2 + 0.2) / 3) / 2)
    assert s.e_t == pytest.approx(((0.01 + 0.02 + 0.0) / 3 + (0.0 + 0.0 + 0.01) / 3) / 2)
    assert s.to_dict()['num_success'] == 2


def test_multi_object_means():
    tr = SuccessTracker(1, horizon=2)
    res = run(tr, [[[0.01, 0.02]], [[0.0, 0.01]]], [[[0.1, 0.2]], [[0.3, 0.0]]])
    assert res[0].success
    assert res[0].e_t == pytest.approx((0.01 + 0.02 + 0.0 + 0.01) / 4)
    assert res[0].e_r == pytest.approx((0.1 + 0.2 + 0.3 + 0.0) / 4)


def test_early_termination_fails_and_tracker_restarts():
    tr = SuccessTracker(2, horizon=3)
    ok = [[0.0], [0.0]]
    out = tr.step(np.array(ok), np.array(ok), np.array([False, False]))
    assert out == []
    out = tr.step(np.array(ok), np.array(ok), np.array([True, False]))   # env0 ends at step 2 of 3
    assert len(out) == 1 and out[0].env_id == 0
    assert not out[0].success and not out[0].completed and out[0].length == 2
    out = tr.step(np.array(ok), np.array(ok), np.array([False, False]))  # env1 completes
    assert [(r.env_id, r.success, r.length) for r in out] == [(1, True, 3)]
    # env0's new rollout started from scratch: two more clean steps complete it
    out = tr.step(np.array(ok), np.array(ok))
    assert out == []
    out = tr.step(np.array(ok), np.array(ok))
    assert [(r.env_id, r.success, r.length) for r in out] == [(0, True, 3)]


def test_failure_does_not_leak_into_next_rollout():
    tr = SuccessTracker(1, horizon=2)
    res = run(tr, [[[0.1]], [[0.0]], [[0.0]], [[0.0]]], [[[0.0]]] * 4)
    assert [r.success for r in res] == [False, True]


def test_nan_error_is_failure_and_discard():
    tr = SuccessTracker(2, horizon=2)
    res = run(tr, [[[np.nan], [0.0]], [[0.0], [0.0]]], [[[0.0], [0.0]]] * 2)
    assert [r.success for r in res] == [False, True]
    tr.step(np.array([[0.5], [0.0]]), np.zeros((2, 1)))                 # env0 bad partial rollout
    tr.discard(np.array([True, False]))                                  # ... dropped
    out = tr.step(np.zeros((2, 1)), np.zeros((2, 1)))
    assert [(r.env_id, r.success) for r in out] == [(1, True)]
    out = tr.step(np.zeros((2, 1)), np.zeros((2, 1)))
    assert [(r.env_id, r.success, r.length) for r in out] == [(0, True, 2)]


def test_summarise_edge_cases():
    s = summarise([])
    assert s.count == 0 and math.isnan(s.success_rate) and math.isnan(s.e_r) and math.isnan(s.e_t)
    tr = SuccessTracker(10, horizon=1)
    pos = np.full((10, 1), 0.1)
    pos[:3] = 0.01                                                       # 3 of 10 rollouts succeed
    s = summarise(tr.step(pos, np.zeros((10, 1))))
    assert (s.count, s.num_success, s.success_rate) == (10, 3, 0.3)
    assert s.e_t == pytest.approx(0.01) and s.e_r == pytest.approx(0.0)
    s = summarise(tr.step(np.full((10, 1), 0.1), np.zeros((10, 1))))
    assert s.success_rate == 0.0 and math.isnan(s.e_r) and math.isnan(s.e_t)


def test_shape_checks():
    tr = SuccessTracker(2, horizon=2)
    with pytest.raises(ValueError):
        tr.step(np.zeros((3, 1)), np.zeros((3, 1)))
    with pytest.raises(ValueError):
        tr.step(np.zeros((2, 1)), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        SuccessTracker(0, horizon=2)
