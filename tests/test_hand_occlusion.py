"""hand_depth_map: projected hand keypoints drawn at their depth, +inf elsewhere."""
import numpy as np

from dexman_perception.core.hand_occlusion import hand_depth_map

K = np.array([[100.0, 0, 80], [0, 100.0, 60], [0, 0, 1]])


def _flat_hand(z):
    # a hand in the plane z: wrist at the centre, fingers along +x (image right)
    kp = np.zeros((21, 3))
    for f in range(5):
        for j in range(4):
            kp[1 + 4 * f + j] = [0.02 + 0.015 * j, -0.03 + 0.015 * f, 0]
    kp[:, 2] = z
    return kp


def test_hand_is_drawn_at_its_depth_and_nowhere_else():
    kp = _flat_hand(0.5)
    m = hand_depth_map(kp[None], [True], K, (120, 160))
    assert m.dtype == np.float32
    # the index MCP (0.02, -0.015, 0.5) projects to (84, 57)
    assert m[57, 84] == np.float32(0.5)
    assert np.isinf(m[5, 5]) and np.isinf(m[110, 150])
    assert 50 < np.isfinite(m).sum() < 120 * 160 / 4


def test_nearest_hand_wins_and_invalid_or_behind_hands_are_ignored():
    near, far = _flat_hand(0.4), _flat_hand(0.8)
    m = hand_depth_map(np.stack([far, near]), [True, True], K, (120, 160))
    u, v = (near[5, :2] / 0.4 * 100 + [80, 60]).round().astype(int)
    assert m[v, u] == np.float32(0.4)
    assert hand_depth_map(near[None], [False], K, (120, 160)) is None
    assert hand_depth_map(-near[None], [True], K, (120, 160)) is None     # behind the camera
