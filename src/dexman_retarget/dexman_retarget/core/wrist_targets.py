"""Human wrist frame -> robot palm target (paper 3.3, wrist retargeting).

The human wrist frame is the one of ``dexman_msgs/Hand3D`` (``wrist_pose``), built from the 21
MANO/OpenPose keypoints:

- origin: keypoint 0 (the wrist);
- x: unit vector from keypoint 0 towards the middle-finger MCP (keypoint 9);
- y: right hand from the little-finger MCP (17) towards the index MCP (5), left hand from 5 towards
  17 (the radial resp. ulnar direction), made orthogonal to x;
- z = x cross y: out of the back of the hand (dorsal) on both hands.

The robot's IK target is the Shadow palm body frame ``{lh,rh}_palm`` (``rm.PALM_BODY``): origin at the
Shadow wrist-flexion joint centre (the removed WRJ0, on the hand's long axis at the base of the
palm), z along the fingers, y dorsal, x radial (thumb side) on the right hand, ulnar on the mirrored
left hand (docs/robot_model.md).

Correspondence (derived from the model, not typed in): the human keypoints that define the wrist
frame are matched to the same anatomical points of the Shadow hand -

======================  ==========================================
human keypoint          Shadow model point
======================  ==========================================
0 wrist                 palm body origin (wrist-flexion joint centre)
5 index MCP             ``ffknuckle`` body origin (FF MCP joint)
9 middle MCP            ``mfknuckle`` body origin
17 little MCP           ``lfknuckle`` body origin (with ``LFJ4`` = 0)
======================  ==========================================

and the Hand3D construction is applied to those points in the palm frame (flat hand). That gives
the pose of "the human wrist frame of the robot hand" in the palm frame, ``T_palm_hw``, and the
fixed mapping is its inverse ``T_hw_palm``: a human wrist pose ``T_world_hw`` becomes the palm target
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

A human hand frame built with :func:`wrist_frame_from_keypoints` from the Shadow model's own
keypoints (:func:`robot_hand_keypoints`) therefore maps back exactly onto the palm frame whenever
``LFJ4`` = 0 (the other finger joints do not move the knuckles); the little-finger metacarpal
joint ``LFJ4`` moves keypoint 17 and tilts the frame by up to a few degrees, as a cupping human
palm does.
"""
from __future__ import annotations

import numpy as np

from .robot_model import FINGERTIP_SITES, HAND_PREFIX, PALM_BODY

SIDES = ('left', 'right')
HAND3D_LEFT, HAND3D_RIGHT = 0, 1   # dexman_msgs/Hand3D handedness constants

# The 21 MANO/OpenPose keypoints as points of the Shadow model: ('body', name) is the body frame
# origin (the joint centre of the joints on that body), ('site', name) a site. Names without the
# rh_/lh_ prefix. Thumb: CMC = thbase (THJ4/THJ3), MCP = thhub (THJ2/THJ1), IP = thdistal (THJ0).
ROBOT_KEYPOINTS = (
    ('body', PALM_BODY),
    ('body', 'thbase'), ('body', 'thhub'), ('body', 'thdistal'), ('site', FINGERTIP_SITES[0]),
    ('body', 'ffknuckle'), ('body', 'ffmiddle'), ('body', 'ffdistal'), ('site', FINGERTIP_SITES[1]),
    ('body', 'mfknuckle'), ('body', 'mfmiddle'), ('body', 'mfdistal'), ('site', FINGERTIP_SITES[2]),
    ('body', 'rfknuckle'), ('body', 'rfmiddle'), ('body', 'rfdistal'), ('site', FINGERTIP_SITES[3]),
    ('body', 'lfknuckle'), ('body', 'lfmiddle'), ('body', 'lfdistal'), ('site', FINGERTIP_SITES[4]),
)


def side_name(side) -> str:
    """'left' / 'right' from a side name or a Hand3D handedness constant (LEFT = 0, RIGHT = 1)."""
    if isinstance(side, str):
        s = side.lower()
        if s in SIDES:
            return s
    elif side in (HAND3D_LEFT, HAND3D_RIGHT):
        return SIDES[int(side)]
    raise ValueError(f"side must be 'left', 'right', 0 (Hand3D.LEFT) or 1 (Hand3D.RIGHT), got {side!r}")


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    if np.any(n < 1e-12):
        raise ValueError('degenerate hand keypoints: coincident wrist / MCP points')
    return v / n


def wrist_frame_from_keypoints(keypoints, side) -> np.ndarray:
    """The Hand3D wrist frame (4x4, or (..., 4, 4)) from 21 keypoints (21, 3) or (..., 21, 3)."""
    kp = np.asarray(keypoints, dtype=float)
    if kp.shape[-2:] != (21, 3):
        raise ValueError(f'keypoints must have shape (..., 21, 3), got {kp.shape}')
    right = side_name(side) == 'right'
    x = _unit(kp[..., 9, :] - kp[..., 0, :])
    y = (kp[..., 5, :] - kp[..., 17, :]) if right else (kp[..., 17, :] - kp[..., 5, :])
    y = _unit(y - np.sum(y * x, axis=-1, keepdims=True) * x)
    T = np.zeros(kp.shape[:-2] + (4, 4))
    T[..., :3, 0], T[..., :3, 1], T[..., :3, 2] = x, y, np.cross(x, y)
    T[..., :3, 3] = kp[..., 0, :]
    T[..., 3, 3] = 1.0
    return T


def robot_hand_keypoints(model, data, side) -> np.ndarray:
    """The Shadow hand's 21 keypoints (world, (21, 3)) from ``data`` after forward kinematics."""
    pre = HAND_PREFIX[side_name(side)]
    out = np.empty((21, 3))
    for i, (kind, name) in enumerate(ROBOT_KEYPOINTS):
        if kind == 'body':
            out[i] = data.xpos[model.body(pre + name).id]
        else:
            out[i] = data.site_xpos[model.site(pre + name).id]
    return out


def palm_from_human_wrist(model, side) -> np.ndarray:
    """``T_hw_palm`` (4x4): the palm frame in the human wrist frame, derived from the model.

    Keypoints of the flat hand (all hand joints 0) in the palm frame -> Hand3D frame ``T_palm_hw``
    -> inverse. Only the palm subtree matters, so the arm pose is irrelevant.
    """
    import mujoco
    s = side_name(side)
    data = mujoco.MjData(model)
    data.qpos[:] = 0.0
    mujoco.mj_kinematics(model, data)
    palm = model.body(HAND_PREFIX[s] + PALM_BODY).id
    R, o = data.xmat[palm].reshape(3, 3), data.xpos[palm]
    kp_palm = (robot_hand_keypoints(model, data, s) - o) @ R          # rows: R^T (p - o)
    T_palm_hw = wrist_frame_from_keypoints(kp_palm, s)
    return invert(T_palm_hw)


def invert(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid transforms (4, 4) or (..., 4, 4)."""
    T = np.asarray(T, dtype=float)
    out = np.zeros_like(T)
    Rt = np.swapaxes(T[..., :3, :3], -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum('...ij,...j->...i', Rt, T[..., :3, 3])
    out[..., 3, 3] = 1.0
    return out


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
