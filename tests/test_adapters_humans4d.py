"""4D-Humans adapter (backends/humans4d_adapter.py): HMR 2.0 outputs (pred_cam (3,),
pred_keypoints_3d (44, 3), OpenPose BODY_25 first) -> hips and pelvis in camera_optical."""
import numpy as np
import pytest

from dexman_perception.core.backends import humans4d_adapter as h4

K = np.array([[500.0, 0, 320.0], [0, 500.0, 240.0], [0, 0, 1]])


def test_body25_indices_follow_smpl_to_openpose():
    # hmr2 smpl_wrapper: smpl_to_openpose[i] is the SMPL joint at OpenPose index i
    smpl_to_openpose = [24, 12, 17, 19, 21, 16, 18, 20, 0, 2, 5, 8, 1, 4, 7,
                        25, 26, 27, 28, 29, 30, 31, 32, 33, 34]
    assert smpl_to_openpose[h4.MIDHIP] == 0      # SMPL pelvis
    assert smpl_to_openpose[h4.RHIP] == 2        # SMPL right hip
    assert smpl_to_openpose[h4.LHIP] == 1        # SMPL left hip


def test_hmr2_to_body_hand_computed():
    kp = np.zeros((44, 3))
    kp[h4.MIDHIP] = [0.0, 0.0, 0.0]
    kp[h4.RHIP] = [-0.1, 0.02, 0.0]              # facing the camera: right hip on the image left
    kp[h4.LHIP] = [0.1, 0.02, 0.01]
    body = h4.hmr2_to_body(np.array([0.5, 0.1, -0.2]), kp, np.array([420.0, 190.0]), 200.0, K, 0.9)
    t = np.array([2.1, -1.2, 10.0])              # 2*500/(200*0.5), 2*100/100+0.1, 2*(-50)/100-0.2
    np.testing.assert_allclose(body.pelvis, t)
    np.testing.assert_allclose(body.right_hip, t + [-0.1, 0.02, 0.0])
    np.testing.assert_allclose(body.left_hip, t + [0.1, 0.02, 0.01])
    assert body.confidence == pytest.approx(0.9)
    with pytest.raises(ValueError):
        h4.hmr2_to_body(np.array([0.5, 0, 0]), np.zeros((10, 3)), np.zeros(2), 100.0, K, 1.0)


def test_select_person():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 50, 40], [5, 5, 20, 20]], float)
    scores = np.array([0.99, 0.6, 0.8])
    assert h4.select_person(boxes, scores) == 1
    assert h4.select_person(boxes, scores, 'score') == 0
    with pytest.raises(ValueError):
        h4.select_person(np.zeros((0, 4)), np.zeros(0))
    with pytest.raises(ValueError):
        h4.select_person(boxes, scores, 'closest')
