"""Human wrist frame -> robot palm target (paper 3.3, wrist retargeting).

The wrist frame, the side names and the 21-keypoint correspondence with the Shadow hand live in
ONE place, :mod:`hand_keypoints` (Hand3D's ``wrist_pose``: origin keypoint 0; x towards the middle
MCP 9; y right hand 17 -> 5, left hand 5 -> 17, made orthogonal to x; z = x cross y, dorsal on
both hands). This module only maps such a human wrist frame onto the IK target, the Shadow palm
body frame ``{lh,rh}_palm`` (``rm.PALM_BODY``: origin at the Shadow wrist-flexion joint centre, z
along the fingers, y dorsal, x radial on the right hand, ulnar on the mirrored left hand).

Correspondence (derived from the model, not typed in): the Hand3D construction is applied to the
Shadow hand's own keypoints (``hand_keypoints.SHADOW_KEYPOINTS``: 0 = palm origin, 5/9/17 = the
ff/mf/lf knuckle bodies) at the flat-hand reference pose, giving the wrist frame fixed in the palm,
``ShadowHandFrame.T_palm_wrist``; the fixed mapping is its inverse ``T_hw_palm``
(``ShadowHandFrame.T_wrist_palm``): a human wrist pose ``T_world_hw`` becomes the palm target
``T_world_palm = T_world_hw @ T_hw_palm``. With the assets of docs/robot_model.md:

- translation 0 (keypoint 0 is the palm origin; the Shadow wrist-to-middle-MCP distance, 99.6 mm,
  is that of an adult human hand, ~95-100 mm, so no scaling is applied);
- rotation: human x ~ palm z (fingers), human y ~ palm x, human z ~ palm y (dorsal), plus a tilt
  of 6.34 deg about the dorsal axis, because the Shadow middle knuckle sits 11 mm off the palm's
  long axis towards the thumb (atan(0.011 / 0.099)). ``R_hw_palm`` (row-major; its columns are
  the palm x, y, z axes in the human wrist frame):

  right: ``[[0.1104, 0, 0.9939], [0.9939, 0, -0.1104], [0, 1, 0]]``
  left:  ``[[-0.1104, 0, 0.9939], [0.9939, 0, 0.1104], [0, 1, 0]]``, the mirror image
  ``diag(1,-1,1) R_right diag(-1,1,1)`` (human-frame and palm-frame reflections).

A human hand frame built from the Shadow model's own keypoints therefore maps back exactly onto
the palm frame whenever ``LFJ4`` = 0 (the other finger joints do not move the knuckles); the
little-finger metacarpal joint ``LFJ4`` moves keypoint 17 and tilts the frame by up to a few
degrees, as a cupping human palm does.

The names ``side_name``, ``SIDES``, ``HAND3D_LEFT/RIGHT``, ``ROBOT_KEYPOINTS``,
``wrist_frame_from_keypoints``, ``robot_hand_keypoints`` and ``invert`` are kept here as aliases of
the :mod:`hand_keypoints` implementation for existing callers.
"""
from __future__ import annotations

import numpy as np

from . import hand_keypoints as hk

SIDES = hk.SIDES
HAND3D_LEFT, HAND3D_RIGHT = hk.LEFT, hk.RIGHT       # dexman_msgs/Hand3D handedness constants
ROBOT_KEYPOINTS = hk.SHADOW_KEYPOINTS
side_name = hk.side_name
robot_hand_keypoints = hk.shadow_keypoints          # (model, data, side) -> (21, 3) world
invert = hk.invert_transform


def wrist_frame_from_keypoints(keypoints, side) -> np.ndarray:
    """The Hand3D wrist frame (4x4, or (..., 4, 4)) from 21 keypoints (21, 3) or (..., 21, 3);
    ValueError for degenerate keypoints (``hand_keypoints.wrist_frame`` with ``strict=True``)."""
    return hk.wrist_frame(keypoints, side, strict=True)


def palm_from_human_wrist(model, side) -> np.ndarray:
    """``T_hw_palm`` (4x4): the palm frame in the human wrist frame, derived from the model
    (``hand_keypoints.shadow_hand_frame(model, side).T_wrist_palm``)."""
    return hk.shadow_hand_frame(model, side).T_wrist_palm


def palm_targets_from_human(model, human_wrist, side) -> np.ndarray:
    """Palm targets ``T_world_palm`` ((T, 4, 4) or (4, 4)) from human wrist frames ``T_world_hw``.

    Frames with NaN entries (hand not tracked) stay NaN: the IK holds the arm there.
    """
    Tw = np.asarray(human_wrist, dtype=float)
    if Tw.shape[-2:] != (4, 4):
        raise ValueError(f'human wrist frames must have shape (..., 4, 4), got {Tw.shape}')
    return Tw @ palm_from_human_wrist(model, side)


def pose_to_matrix(position, quat_xyzw) -> np.ndarray:
    """4x4 from a geometry_msgs/Pose-like position (x, y, z) and quaternion (x, y, z, w)."""
    from scipy.spatial.transform import Rotation
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat(np.asarray(quat_xyzw, dtype=float)).as_matrix()
    T[:3, 3] = position
    return T
