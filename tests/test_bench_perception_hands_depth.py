"""bench/perception_hands_depth.py on a tiny relative-depth case, with ground-truth "hands" (no
MediaPipe): the error bookkeeping, B.1 + B.2 wiring and the JSON-ability of the reports."""
import importlib.util
import json
import pathlib
import tempfile

import numpy as np
import pytest

from dexman_perception.core.stages import HandEstimate

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope='module')
def bench():
    spec = importlib.util.spec_from_file_location('perception_hands_depth',
                                                  ROOT / 'bench' / 'perception_hands_depth.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def case(bench):
    with tempfile.TemporaryDirectory(prefix='dexman_bench_hd_test_') as d:
        cdir = bench.ensure_case(pathlib.Path(d), 'pick_place', 'cylinder', 0, width=160, height=120,
                                 fps=10.0, duration=1.2, chunk=4, overlap=1)
        yield bench.Case(cdir)


def truth_estimates(case, drop_right_after=None):
    """Per frame HandEstimates equal to the ground truth (right hand missing from frame
    ``drop_right_after`` on)."""
    out = []
    for k in range(len(case)):
        ests = []
        for h in (0, 1):
            if h == 1 and drop_right_after is not None and k >= drop_right_after:
                continue
            P = case.kp_cam[h, k]
            ests.append(HandEstimate(h, P.copy(), case.project(P), np.ones(21), 1.0, True))
        out.append(ests)
    return out


def test_perfect_hands_have_zero_error_and_honest_detection_rate(bench, case):
    r = bench.hand_keypoint_errors(case, truth_estimates(case, drop_right_after=6), 1.0, rgb_only=True)
    assert r['keypoint_error_mm']['median'] == pytest.approx(0.0, abs=1e-9)
    left, right = r['per_hand']['left'], r['per_hand']['right']
    assert left['handedness_swaps'] == 0 and left['depth_ratio_median'] == pytest.approx(1.0)
    vis = right['frames_visible']
    assert right['frames_detected_while_visible'] <= 6
    assert right['detection_rate'] == pytest.approx(right['frames_detected_while_visible'] / vis)
    json.dumps(r)


def test_b1_b2_chain_on_the_relative_case(bench, case):
    chunks, ab = bench.relative_chunks(case)
    assert len(chunks) == len(case.gt.degradations['relative_depth']['chunks']) >= 3
    r = bench.relative_depth_scale(case, truth_estimates(case))
    D_al = r.pop('_aligned_depth')
    assert D_al.shape == case.depth.shape
    json.dumps(r)
    assert r['true_scale'] == pytest.approx(1 / ab[0][0])
    assert r['b1']['object_rel_error_pct_median'] < 0.01          # exact affine chunks: exact B.1
    b2 = r['b2']
    # the "hands stage" here is the ground truth: same frame-0 scale as the gt_keypoints variant
    assert b2['mediapipe_rgb_only']['scale'] == pytest.approx(b2['gt_keypoints']['scale'])
    # with the true visible hand surface only the depth offset b0 is left: small error
    assert abs(b2['oracle_visible_surface']['scale_error_pct']) < 3
    # joint centres span less than the skin the mask sees: keypoint-based B.2 comes out low
    assert b2['gt_keypoints']['scale_error_pct'] < 0
