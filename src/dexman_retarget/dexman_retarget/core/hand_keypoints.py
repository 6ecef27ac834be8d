"""Human hand keypoints (MANO/OpenPose 21) and the corresponding Shadow hand keypoints (ROS-free).

The one implementation of the Hand3D wrist frame, the side names and the 21-keypoint human/Shadow
correspondence: ``wrist_targets`` (human wrist -> palm IK target), ``wrist_ik``, ``finger_dataset``
and ``finger_mlp`` build on it.

Human side (``dexman_msgs/Hand3D``): 21 keypoints, 0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index
MCP, PIP, DIP, tip; 9-12 middle; 13-16 ring; 17-20 little.

Wrist frame, exactly as Hand3D defines it (right-handed for both hands; the left definition is the
mirror image of the right one): origin keypoint 0; x = unit(k9 - k0) (towards the middle MCP);
y = RIGHT: k5 - k17 (little MCP -> index MCP), LEFT: k17 - k5, made orthogonal to x;
z = x cross y, out of the back of the hand for both hands. Consequence: a left hand expressed in
its own wrist frame is the mirror image, y -> -y, of a right hand in its wrist frame
(:func:`mirror_wrist_coords`), which is how one right-hand network serves both hands.

Shadow side: the same 21 keypoints on the Shadow hand of the G1 model (:data:`SHADOW_KEYPOINTS`):
the palm frame origin (the Shadow wrist-joint centre) for the wrist, the joint-centre bodies for
the MCP/PIP/DIP (knuckle, middle, distal bodies; thumb: base, hub, distal) and the fingertip sites
``S_*tip``. Its wrist frame is the Hand3D definition applied to those keypoints at the reference
pose (all finger joints 0): a frame FIXED in the palm (:class:`ShadowHandFrame`). It is not
recomputed per configuration, because the Shadow little-finger metacarpal joint LFJ4 moves the
little knuckle by up to 3 cm towards the palm, which would tilt a per-configuration frame by up to
26 deg at LFJ4 = 0.785 (17 deg at 0.5) and twist every fingertip with it. In the palm frame (z fingers,
x thumb side of the right hand, y back of the hand) the fixed wrist frame is x ~ palm z tilted
6.3 deg towards the thumb (the Shadow middle knuckle is 11 mm off the palm axis), y ~ palm x,
z ~ palm y (the back of the hand).

Hand-size normalisation (:func:`hand_scale`): the HAND LENGTH, the skeleton length from the wrist
to the middle fingertip, |k9-k0| + |k10-k9| + |k11-k10| + |k12-k11|: the palm length plus the
three middle-finger segment lengths. It does not depend on the pose (bones are rigid), it is
observable in every frame, and it makes an extended human finger and an extended Shadow finger
reach the same normalised distance, which a palm-only size (wrist -> MCP) does not: the Shadow's
fingers are short for its palm (palm 99.6 mm, hand length 195.6 mm, ratio 0.51; an adult human
hand ~0.47). Normalised fingertips = fingertips in the wrist frame / hand length; multiplying by
the Shadow's own hand length (``ShadowHandFrame.scale``, 0.1956 m) gives Shadow-sized targets.
Per-frame estimates of the human length are noisy: a caller with a whole sequence should pass
one robust value (e.g. the median of :func:`hand_scale` over the valid frames) as ``scale``.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from dexman_common.geometry import invert_transform  # noqa: F401 (re-exported)

# Hand3D.handedness values; the robot model names the sides 'left' / 'right' (index = Hand3D value).
LEFT, RIGHT = 0, 1
SIDES = ('left', 'right')
N_KEYPOINTS = 21
WRIST = 0
FINGERS = ('thumb', 'index', 'middle', 'ring', 'little')
SHADOW_FINGERS = ('th', 'ff', 'mf', 'rf', 'lf')          # same order as FINGERS
TIP_IDS = (4, 8, 12, 16, 20)                               # thumb, index, middle, ring, little
MCP_IDS = (5, 9, 13, 17)                                   # index, middle, ring, little
CONTACT_IDS = TIP_IDS + MCP_IDS                            # paper 3.4: the 9 contact keypoints
HAND_LENGTH_CHAIN = (0, 9, 10, 11, 12)                     # wrist -> middle fingertip skeleton

# The Shadow keypoint for each human keypoint: (kind, name without the rh_/lh_ prefix).
SHADOW_KEYPOINTS = (
    ('body', 'palm'),                                                            # 0 wrist
    ('body', 'thbase'), ('body', 'thhub'), ('body', 'thdistal'), ('site', 'S_thtip'),      # 1-4
    ('body', 'ffknuckle'), ('body', 'ffmiddle'), ('body', 'ffdistal'), ('site', 'S_fftip'),  # 5-8
    ('body', 'mfknuckle'), ('body', 'mfmiddle'), ('body', 'mfdistal'), ('site', 'S_mftip'),  # 9-12
    ('body', 'rfknuckle'), ('body', 'rfmiddle'), ('body', 'rfdistal'), ('site', 'S_rftip'),  # 13-16
    ('body', 'lfknuckle'), ('body', 'lfmiddle'), ('body', 'lfdistal'), ('site', 'S_lftip'),  # 17-20
)
# The reflection that maps a right hand onto a left hand in WRIST-frame coordinates.
MIRROR_WRIST = np.diag([1.0, -1.0, 1.0])


def side_name(side) -> str:
    """'left' / 'right' from 'left'/'right'/'l'/'r' or Hand3D's LEFT (0) / RIGHT (1)."""
    if isinstance(side, str):
        s = side.strip().lower()
        if s in ('left', 'l', 'lh'):
            return 'left'
        if s in ('right', 'r', 'rh'):
            return 'right'
    elif isinstance(side, (int, np.integer)) and not isinstance(side, bool):
        if int(side) == LEFT:
            return 'left'
        if int(side) == RIGHT:
            return 'right'
    raise ValueError(f'unknown hand side {side!r} (expected left/right or Hand3D LEFT=0/RIGHT=1)')


def _check_kp(kp) -> np.ndarray:
    kp = np.asarray(kp, dtype=float)
    if kp.ndim < 2 or kp.shape[-2:] != (N_KEYPOINTS, 3):
        raise ValueError(f'expected keypoints of shape (..., 21, 3), got {kp.shape}')
    return kp


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid='ignore', divide='ignore'):
        return np.where(n > 1e-9, v / n, np.nan)


def wrist_frame_axes(kp, side) -> np.ndarray:
    """Rotation (..., 3, 3) whose columns are the wrist frame's x, y, z (Hand3D definition).

    Degenerate hands (coincident keypoints, e.g. the all-zero keypoints of an invalid Hand3D)
    give NaN rotations rather than an exception, so whole sequences can be processed at once.
    """
    kp = _check_kp(kp)
    s = side_name(side)
    x = _unit(kp[..., 9, :] - kp[..., 0, :])
    y = kp[..., 5, :] - kp[..., 17, :] if s == 'right' else kp[..., 17, :] - kp[..., 5, :]
    y = _unit(y - np.sum(y * x, axis=-1, keepdims=True) * x)
    z = np.cross(x, y)
    return np.stack([x, y, z], axis=-1)


def wrist_frame(kp, side, strict: bool = False) -> np.ndarray:
    """4x4 homogeneous wrist frame(s) (..., 4, 4) in the keypoints' frame (Hand3D definition).

    ``strict``: raise ValueError for degenerate keypoints (coincident wrist / MCP points, NaN)
    instead of returning NaN frames.
    """
    kp = _check_kp(kp)
    T = np.zeros(kp.shape[:-2] + (4, 4))
    T[..., :3, :3] = wrist_frame_axes(kp, side)
    T[..., :3, 3] = kp[..., 0, :]
    T[..., 3, 3] = 1.0
    if strict and not np.all(np.isfinite(T)):
        raise ValueError('degenerate hand keypoints: coincident wrist / MCP points or non-finite '
                         'values, the wrist frame is undefined')
    return T


def to_frame(points, T) -> np.ndarray:
    """Points (..., K, 3) expressed in the frame T (..., 4, 4): R^T (p - o)."""
    p = np.asarray(points, dtype=float)
    T = np.asarray(T, dtype=float)
    return np.einsum('...ji,...kj->...ki', T[..., :3, :3], p - T[..., None, :3, 3])


def hand_scale(kp) -> np.ndarray:
    """Hand length (...,): |k9-k0| + |k10-k9| + |k11-k10| + |k12-k11| (metres)."""
    kp = _check_kp(kp)
    c = kp[..., HAND_LENGTH_CHAIN, :]
    return np.linalg.norm(np.diff(c, axis=-2), axis=-1).sum(axis=-1)


def mirror_wrist_coords(p) -> np.ndarray:
    """Right-hand <-> left-hand wrist-frame coordinates: y -> -y (its own inverse)."""
    q = np.array(p, dtype=float, copy=True)
    q[..., 1] *= -1.0
    return q


def fingertips_in_wrist(kp, side) -> np.ndarray:
    """The five fingertips (thumb, index, middle, ring, little) in the wrist frame (..., 5, 3), m."""
    kp = _check_kp(kp)
    return to_frame(kp[..., TIP_IDS, :], wrist_frame(kp, side))


def normalized_fingertips(kp, side, scale=None, mirror_to_right: bool = True) -> np.ndarray:
    """Fingertips in the wrist frame divided by the hand length (..., 5, 3), dimensionless.

    ``scale``: the hand length to use (a scalar or one per frame; default: :func:`hand_scale` of
    each frame). ``mirror_to_right``: express a left hand in right-hand coordinates (y -> -y), the
    finger network's input convention; a right hand is unchanged.
    """
    kp = _check_kp(kp)
    tips = fingertips_in_wrist(kp, side)
    s = hand_scale(kp) if scale is None else np.asarray(scale, dtype=float)
    with np.errstate(invalid='ignore', divide='ignore'):
        out = tips / np.asarray(s)[..., None, None]
    if mirror_to_right and side_name(side) == 'left':
        out = mirror_wrist_coords(out)
    return out


def contact_keypoints(kp) -> np.ndarray:
    """The 9 contact keypoints (5 tips, then index/middle/ring/little MCP), (..., 9, 3)."""
    return _check_kp(kp)[..., CONTACT_IDS, :]


# ----------------------------------------------------------------------------------- Shadow
def hand_prefix(side) -> str:
    return 'lh_' if side_name(side) == 'left' else 'rh_'


def shadow_keypoint_ids(model, side) -> list[tuple[str, int]]:
    """(kind, id) in ``model`` of the 21 Shadow keypoints of one hand."""
    import mujoco
    pre = hand_prefix(side)
    out = []
    for kind, name in SHADOW_KEYPOINTS:
        obj = mujoco.mjtObj.mjOBJ_BODY if kind == 'body' else mujoco.mjtObj.mjOBJ_SITE
        i = mujoco.mj_name2id(model, obj, pre + name)
        if i < 0:
            raise KeyError(f'the model has no {kind} {pre + name!r} (not the G1 + Shadow model?)')
        out.append((kind, i))
    return out


def shadow_keypoints(model, data, side, ids=None) -> np.ndarray:
    """The 21 Shadow keypoints (21, 3) in world coordinates from ``data`` (after mj_kinematics or
    any mj_forward/mj_step): the human keypoint order, see :data:`SHADOW_KEYPOINTS`."""
    ids = shadow_keypoint_ids(model, side) if ids is None else ids
    return np.array([data.xpos[i] if k == 'body' else data.site_xpos[i] for k, i in ids])


def shadow_keypoints_at(model, side, q_hand, frame: str = 'palm') -> np.ndarray:
    """The 21 Shadow keypoints (21, 3) for a hand configuration ``q_hand`` (22 angles in
    ``rm.hand_joints(side)`` order), on a scratch MjData, in the palm frame (``frame='palm'``) or
    the hand's fixed wrist frame (``frame='wrist'``); the arm pose does not matter."""
    import mujoco

    from dexman_description.robot_model import hand_joints
    names = hand_joints(side_name(side))
    q_hand = np.asarray(q_hand, dtype=float)
    if q_hand.shape != (len(names),):
        raise ValueError(f'expected {len(names)} hand joint angles, got shape {q_hand.shape}')
    data = mujoco.MjData(model)
    for j, v in zip(names, q_hand):
        data.qpos[model.joint(j).qposadr[0]] = v
    mujoco.mj_kinematics(model, data)
    T = palm_frame(model, data, side)
    if frame == 'wrist':
        T = T @ shadow_hand_frame(model, side).T_palm_wrist
    elif frame != 'palm':
        raise ValueError(f"frame must be 'palm' or 'wrist', not {frame!r}")
    return to_frame(shadow_keypoints(model, data, side), T)


def shadow_contact_keypoints(model, data, side, ids=None) -> np.ndarray:
    """The 9 Shadow contact keypoints (5 fingertip sites, 4 knuckles), (9, 3), world."""
    return shadow_keypoints(model, data, side, ids)[list(CONTACT_IDS)]


def palm_frame(model, data, side) -> np.ndarray:
    """4x4 world pose of the Shadow palm body (``rh_palm`` / ``lh_palm``)."""
    b = model.body(hand_prefix(side) + 'palm').id
    T = np.eye(4)
    T[:3, :3] = data.xmat[b].reshape(3, 3)
    T[:3, 3] = data.xpos[b]
    return T


@dataclasses.dataclass(frozen=True)
class ShadowHandFrame:
    """The Hand3D-style wrist frame of one Shadow hand, fixed in its palm frame, and its size.

    T_palm_wrist: 4x4, the wrist frame in the palm body frame (origin = palm origin).
    scale: the Shadow hand length (palm origin -> middle knuckle -> middle -> distal -> tip), m.
    keypoints_palm: the 21 keypoints at the reference pose (all hand joints 0), palm frame.
    """
    side: str
    T_palm_wrist: np.ndarray
    scale: float
    keypoints_palm: np.ndarray

    @property
    def T_wrist_palm(self) -> np.ndarray:
        """The palm frame in the wrist frame: a wrist-IK target is T_world_wrist @ T_wrist_palm."""
        return invert_transform(self.T_palm_wrist)

    def wrist_in_world(self, T_world_palm) -> np.ndarray:
        return np.asarray(T_world_palm, dtype=float) @ self.T_palm_wrist


def shadow_hand_frame(model, side) -> ShadowHandFrame:
    """Compute :class:`ShadowHandFrame` from the model at the reference pose (hand joints 0)."""
    import mujoco
    s = side_name(side)
    data = mujoco.MjData(model)
    data.qpos[:] = model.qpos0
    pre = hand_prefix(s)
    for j in range(model.njnt):
        if model.joint(j).name.startswith(pre):
            data.qpos[model.jnt_qposadr[j]] = 0.0
    mujoco.mj_kinematics(model, data)
    kp_world = shadow_keypoints(model, data, s)
    T_wp = palm_frame(model, data, s)
    kp = to_frame(kp_world, T_wp)
    T_pw = wrist_frame(kp, s)
    return ShadowHandFrame(side=s, T_palm_wrist=T_pw, scale=float(hand_scale(kp)), keypoints_palm=kp)


def shadow_wrist_frame(model, data, side, frame: ShadowHandFrame | None = None) -> np.ndarray:
    """World pose of the Shadow hand's (fixed) Hand3D-style wrist frame."""
    frame = shadow_hand_frame(model, side) if frame is None else frame
    return palm_frame(model, data, side) @ frame.T_palm_wrist


def shadow_normalized_fingertips(model, data, side, frame: ShadowHandFrame | None = None,
                                 mirror_to_right: bool = True) -> np.ndarray:
    """Shadow fingertip sites in its wrist frame / its hand length (5, 3): comparable with
    :func:`normalized_fingertips` of a human hand."""
    frame = shadow_hand_frame(model, side) if frame is None else frame
    kp = shadow_keypoints(model, data, side)
    out = to_frame(kp[list(TIP_IDS)], shadow_wrist_frame(model, data, side, frame)) / frame.scale
    if mirror_to_right and frame.side == 'left':
        out = mirror_wrist_coords(out)
    return out
