"""HaMeR adapter (backends/hamer_adapter.py) and the shared crop-camera conversion: inputs in HaMeR's
output format (pred_cam (N, 3), pred_keypoints_3d (N, 21, 3) OpenPose order, pred_vertices
(N, 778, 3), box_center (N, 2), box_size (N,), right (N,)) and ViTPose whole-body keypoints
(133, 3); expectations computed by hand."""
import numpy as np
import pytest

from dexman_perception.core.backends import _adapter_util as au
from dexman_perception.core.backends import hamer_adapter as ha

K = np.array([[500.0, 0, 320.0], [0, 500.0, 240.0], [0, 0, 1]])


def demo_cam_crop_to_full(cam, center, size, img_wh, focal):
    """HaMeR/4D-Humans demo's cam_crop_to_full, transcribed (principal point = image centre)."""
    w2, h2 = img_wh[0] / 2, img_wh[1] / 2
    bs = size * cam[:, 0] + 1e-9
    return np.stack([2 * (center[:, 0] - w2) / bs + cam[:, 1],
                     2 * (center[:, 1] - h2) / bs + cam[:, 2], 2 * focal / bs], -1)


def test_cam_crop_to_camera_hand_computed():
    t = au.cam_crop_to_camera(np.array([[0.5, 0.1, -0.2]]), np.array([[420.0, 190.0]]),
                              np.array([200.0]), K)
    # b s = 100: tz = 2 * 500 / 100 = 10, tx = 2 * 100 / 100 + 0.1, ty = 2 * (-50) / 100 - 0.2
    np.testing.assert_allclose(t, [[2.1, -1.2, 10.0]], atol=1e-6)
    # the root projects to box centre + (b s / 2) * (tx, ty): 420 + 5, 190 - 10
    np.testing.assert_allclose(au.project(t, K), [[425.0, 180.0]], atol=1e-6)
    # equals the demo's formula when K's principal point is the image centre
    cams = np.array([[0.7, -0.05, 0.02], [1.3, 0.2, 0.1]])
    centers = np.array([[100.0, 50.0], [600.0, 400.0]])
    sizes = np.array([150.0, 80.0])
    np.testing.assert_allclose(au.cam_crop_to_camera(cams, centers, sizes, K),
                               demo_cam_crop_to_full(cams, centers, sizes, (640, 480), 500.0))


def test_project_unproject_roundtrip():
    Ks = np.array([[500.0, 0, 320.0], [0, 400.0, 240.0], [0, 0, 1]])
    uv = np.array([[420.0, 140.0], [0.0, 0.0]])
    P = au.unproject(uv, np.array([2.0, 0.0]), Ks)
    np.testing.assert_allclose(P[0], [0.4, -0.5, 2.0])
    assert np.all(np.isnan(P[1]))                                  # z = 0: unknown
    np.testing.assert_allclose(au.project(P[:1], Ks), uv[:1])


def test_hand_boxes_from_wholebody():
    kp = np.zeros((133, 3))
    xs, ys = np.linspace(100, 120, 21), np.linspace(200, 230, 21)
    kp[112:133] = np.stack([xs, ys, np.full(21, 0.9)], 1)          # right hand: all confident
    kp[112, 2] = 0.2                                               # wrist below threshold
    kp[91:94] = [[10, 10, 0.9], [20, 30, 0.9], [15, 5, 0.9]]       # left: only 3 -> rejected
    hands = ha.hand_boxes_from_wholebody(kp)
    assert len(hands) == 1 and hands[0]['is_right'] == 1
    np.testing.assert_allclose(hands[0]['box'], [xs[1], ys[1], 120, 230])
    assert hands[0]['score'] == pytest.approx(0.9)
    assert hands[0]['keypoint_confidence'][0] == pytest.approx(0.2)
    kp[94] = [12, 12, 0.9]                                         # 4 valid: demo's sum > 3
    hands = ha.hand_boxes_from_wholebody(kp)
    assert [h['is_right'] for h in hands] == [0, 1]
    np.testing.assert_allclose(hands[0]['box'], [10, 5, 20, 30])
    with pytest.raises(ValueError):
        ha.hand_boxes_from_wholebody(np.zeros((21, 3)))


def test_hamer_outputs_to_camera_frame_hands():
    j = np.arange(21, dtype=float)
    kp = np.stack([0.01 * j, 0.002 * j, 0.001 * j], 1)             # MANO joints, crop-camera axes
    verts = np.tile([[0.05, 0.01, 0.0]], (778, 1))
    pred_cam = np.array([[0.5, 0.1, -0.2], [0.5, 0.1, -0.2]])
    hands = ha.hamer_to_hand_estimates(
        pred_cam, np.stack([kp, kp]), np.stack([verts, verts]), np.array([[420.0, 190.0]] * 2),
        np.array([200.0, 200.0]), np.array([1.0, 0.0]), K, [0.8, 0.6],
        [np.full(21, 0.7), np.full(21, 0.5)])
    right, left = hands
    assert right.handedness == 1 and left.handedness == 0
    assert right.metric and left.metric
    # right hand: translation (2.1, -1.2, 10) (see test_cam_crop_to_camera_hand_computed)
    np.testing.assert_allclose(right.keypoints[5], [0.05 + 2.1, 0.01 - 1.2, 0.005 + 10.0])
    # left hand was cropped mirrored: x of the joints and tx negated -> t = (2.0 - 0.1, -1.2, 10)
    np.testing.assert_allclose(left.keypoints[5], [-0.05 + 1.9, 0.01 - 1.2, 0.005 + 10.0])
    np.testing.assert_allclose(left.vertices[0], [-0.05 + 1.9, 0.01 - 1.2, 10.0])
    assert right.keypoints.shape == (21, 3) and right.vertices.shape == (778, 3)
    np.testing.assert_allclose(right.keypoints_2d, au.project(right.keypoints, K))
    np.testing.assert_allclose(right.keypoints_2d[0], [425.0, 180.0], atol=1e-9)
    assert right.confidence == pytest.approx(0.8)
    np.testing.assert_allclose(left.keypoint_confidence, 0.5)
    # without per-keypoint scores the box score is used
    h = ha.hamer_to_hand_estimates(pred_cam[:1], kp[None], None, np.array([[420.0, 190.0]]),
                                   np.array([200.0]), np.array([1]), K, [0.3])[0]
    np.testing.assert_allclose(h.keypoint_confidence, 0.3)
    assert h.vertices is None
