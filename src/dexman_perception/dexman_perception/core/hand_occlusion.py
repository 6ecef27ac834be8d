"""Where the hands are in an image: a hand depth map from 3D hand keypoints (ROS-free).

The segmentation stage removes hand pixels before it looks for the object (paper 3.1 segments
hands and objects separately; our CPU segmenter needs the hand explicitly). Input: the hands
stage's keypoints in camera_optical (metres); output: float32 (H, W) depth of the drawn hand
surface, +inf off the hands (see cpu_segmentation.hand_mask_from_keypoints), which
DepthColorSegmenter takes as `hand`.
"""
from __future__ import annotations

import numpy as np

from .backends.cpu_segmentation import hand_mask_from_keypoints


def hand_depth_map(keypoints: np.ndarray, valid: np.ndarray, K: np.ndarray,
                   shape: tuple[int, int]) -> np.ndarray | None:
    """keypoints (H, 21, 3) camera_optical m for H hands, valid (H,) bool -> hand depth map, or
    None when no valid hand is in front of the camera."""
    kp = np.asarray(keypoints, np.float64).reshape(-1, 21, 3)
    valid = np.asarray(valid, bool).reshape(-1)
    K = np.asarray(K, np.float64)
    out = None
    for P, ok in zip(kp, valid):
        if not ok:
            continue
        front = np.isfinite(P).all(1) & (P[:, 2] > 1e-3)
        if front.sum() < 2:
            continue
        uv = np.full((21, 2), np.nan)
        uv[front] = (P[front] @ K.T)[:, :2] / P[front, 2:3]
        z = np.where(front, P[:, 2], np.nan)
        m = hand_mask_from_keypoints(uv, z, K, shape, with_depth=True)
        out = m if out is None else np.minimum(out, m)
    return out
