"""numpy <-> ROS message conversions of the perception graph (the only place that builds them).

Frames: per-frame outputs keep the source image's header (stamp, `camera_optical` frame_id).
Every builder checks sizes before touching a message: rclpy (Kilted wheels) does not check
fixed array lengths and crashes while serializing a wrong one (Hand3D keypoints: exactly 21).
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, Quaternion, Transform, TransformStamped, Vector3
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header

from dexman_msgs.msg import BodyPose, Hand3D, Hands3D, ObjectMesh, TrackedObject

from dexman_common import image_codec
from dexman_common.stamps import ns_to_sec_nanosec, stamp_ns  # noqa: F401 (stamp_ns: public name)
from ..core.backends.hand_lifting import wrist_frame
from ..core.stages import BodyEstimate, HandEstimate

N_KEYPOINTS = 21


# ------------------------------------------------------------------------------- stamps, poses
def header(stamp: int, frame_id: str) -> Header:
    sec, nanosec = ns_to_sec_nanosec(stamp)
    return Header(stamp=Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


def _finite_T(T) -> np.ndarray:
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        raise ValueError(f'a pose must be a finite 4x4 matrix, got shape {T.shape}')
    return T


def pose_msg(T) -> Pose:
    T = _finite_T(T)
    q = Rotation.from_matrix(T[:3, :3]).as_quat()
    return Pose(position=Point(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))


def transform_msg(T) -> Transform:
    p = pose_msg(T)
    return Transform(translation=Vector3(x=p.position.x, y=p.position.y, z=p.position.z),
                     rotation=p.orientation)


def transform_stamped(T, stamp: int, parent: str, child: str) -> TransformStamped:
    return TransformStamped(header=header(stamp, parent), child_frame_id=child, transform=transform_msg(T))


def matrix(pose_or_transform) -> np.ndarray:
    """geometry_msgs Pose or Transform -> 4x4."""
    if hasattr(pose_or_transform, 'position'):
        p, q = pose_or_transform.position, pose_or_transform.orientation
    else:
        p, q = pose_or_transform.translation, pose_or_transform.rotation
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    T[:3, 3] = [p.x, p.y, p.z]
    return T


def point(v) -> Point:
    return Point(x=float(v[0]), y=float(v[1]), z=float(v[2]))


def array(p) -> np.ndarray:
    return np.array([p.x, p.y, p.z], np.float64)


# ------------------------------------------------------------------------------------- images
def rgb_of(msg) -> np.ndarray:
    """sensor_msgs/Image (any colour encoding) -> RGB uint8 (H, W, 3)."""
    return image_codec.to_rgb8(msg)


def depth_of(msg) -> np.ndarray:
    """Depth image (32FC1 metres, or 16UC1 millimetres per REP 118) -> float32 metres, NaN unknown."""
    d = image_codec.image_to_numpy(msg)
    if d.ndim != 2:
        raise ValueError(f'a depth image has one channel, got {msg.encoding!r}')
    if msg.encoding.upper() in ('16UC1', 'MONO16'):
        d = d.astype(np.float32) / 1000.0
    d = np.asarray(d, np.float32).copy()
    d[~(np.isfinite(d) & (d > 0))] = np.nan
    return d


def depth_msg(depth: np.ndarray, hdr: Header):
    img = image_codec.numpy_to_image(np.ascontiguousarray(depth, np.float32), '32FC1')
    from sensor_msgs.msg import Image
    return Image(header=hdr, height=img.height, width=img.width, encoding=img.encoding,
                 is_bigendian=img.is_bigendian, step=img.step, data=img.data)


def K_of(camera_info) -> np.ndarray:
    K = np.asarray(camera_info.k, np.float64).reshape(3, 3)
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ValueError('camera_info has no intrinsics (K is zero)')
    return K


# -------------------------------------------------------------------------------------- hands
def hands_msg(hands: list[HandEstimate], hdr: Header) -> Hands3D:
    """Hands3D with one Hand3D per estimated hand (keypoints in hdr.frame_id)."""
    out = Hands3D(header=hdr)
    for h in hands:
        kp = np.asarray(h.keypoints, np.float64)
        if kp.shape != (N_KEYPOINTS, 3) or np.shape(h.keypoint_confidence) != (N_KEYPOINTS,):
            raise ValueError(f'a hand needs 21 keypoints and confidences, got {kp.shape}')
        if not np.all(np.isfinite(kp)):
            continue          # nothing metric to say about this hand
        m = Hand3D(header=hdr, handedness=int(h.handedness), confidence=float(h.confidence), valid=True)
        m.keypoints = [point(p) for p in kp]
        m.keypoint_confidence = [float(c) for c in np.clip(h.keypoint_confidence, 0, 1)]
        m.wrist_pose = pose_msg(wrist_frame(kp, int(h.handedness)))
        out.hands.append(m)
    return out


def hands_arrays(msg: Hands3D) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hands3D -> keypoints (2, 21, 3), valid (2,), wrist poses (2, 4, 4); index 0 LEFT, 1 RIGHT.
    Two hands of the same side: the more confident one."""
    kp = np.zeros((2, N_KEYPOINTS, 3))
    valid = np.zeros(2, bool)
    wrist = np.tile(np.eye(4), (2, 1, 1))
    conf = np.full(2, -1.0)
    for h in msg.hands:
        side = int(h.handedness)
        if not h.valid or side not in (0, 1) or h.confidence <= conf[side]:
            continue
        kp[side] = [array(p) for p in h.keypoints]
        wrist[side] = matrix(h.wrist_pose)
        valid[side], conf[side] = True, h.confidence
    return kp, valid, wrist


# --------------------------------------------------------------------------------------- body
def body_msg(body: BodyEstimate | None, hdr: Header) -> BodyPose:
    if body is None:
        return BodyPose(header=hdr, valid=False)
    return BodyPose(header=hdr, valid=True, confidence=float(body.confidence), pelvis=point(body.pelvis),
                    left_hip=point(body.left_hip), right_hip=point(body.right_hip))


def body_of(msg: BodyPose) -> BodyEstimate | None:
    if not msg.valid:
        return None
    return BodyEstimate(left_hip=array(msg.left_hip), right_hip=array(msg.right_hip),
                        pelvis=array(msg.pelvis), confidence=float(msg.confidence))


# -------------------------------------------------------------------------------------- masks
def masks_msg(masks: dict[str, np.ndarray], hdr: Header, shape: tuple[int, int]):
    """{label id: bool mask} -> dexman_msgs/ObjectMasks (mono8 label image, value k = ids[k-1];
    later entries win where masks overlap)."""
    from dexman_msgs.msg import ObjectMasks
    ids = list(masks)
    if len(ids) > 254:
        raise ValueError('at most 254 labels')
    lab = np.zeros(shape, np.uint8)
    for k, i in enumerate(ids, start=1):
        m = masks[i]
        if m is not None and np.shape(m) == tuple(shape):
            lab[np.asarray(m, bool)] = k
    img = image_codec.numpy_to_image(lab, 'mono8')
    from sensor_msgs.msg import Image
    labels = Image(header=hdr, height=img.height, width=img.width, encoding='mono8',
                   is_bigendian=False, step=img.step, data=img.data)
    return ObjectMasks(header=hdr, labels=labels, label_ids=ids)


def masks_of(msg) -> dict[str, np.ndarray]:
    lab = image_codec.image_to_numpy(msg.labels)
    return {i: lab == k for k, i in enumerate(msg.label_ids, start=1)}


# -------------------------------------------------------------------------------------- meshes
def mesh_msg(mesh, object_id: str, label: str, uri: str, metric: bool, scale: float, stamp: int) -> ObjectMesh:
    v = np.asarray(mesh.vertices, np.float64)
    f = np.asarray(mesh.faces, np.int64)
    if not np.all(np.isfinite(v)):
        raise ValueError(f'{object_id}: mesh has non-finite vertices')
    return ObjectMesh(header=header(stamp, object_id), id=object_id, label=label, mesh_resource=uri,
                      metric=bool(metric), scale=float(scale), vertices=[point(p) for p in v],
                      triangles=f.reshape(-1).astype(np.uint32).tolist())


def mesh_of(msg: ObjectMesh):
    import trimesh
    v = np.array([[p.x, p.y, p.z] for p in msg.vertices], np.float64).reshape(-1, 3)
    f = np.asarray(msg.triangles, np.int64).reshape(-1, 3)
    if len(f) and (f.max() >= len(v)):
        raise ValueError(f'{msg.id}: triangle index out of range')
    return trimesh.Trimesh(v, f, process=False)


# ------------------------------------------------------------------------------------- objects
STATUS = {'tracking': TrackedObject.STATUS_TRACKING, 'predicted': TrackedObject.STATUS_PREDICTED,
          'lost': TrackedObject.STATUS_LOST}


def tracked_object_msg(object_id: str, label: str, T, hdr: Header, *, status: str, confidence: float,
                       mesh_uri: str = '', scale: float = 1.0) -> TrackedObject:
    T = np.asarray(T, np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        T, status = np.eye(4), 'lost'
    c = float(confidence) if np.isfinite(confidence) else 0.0
    return TrackedObject(header=hdr, id=object_id, label=label, pose=pose_msg(T), scale=float(scale),
                         mesh_resource=mesh_uri, confidence=float(np.clip(c, 0, 1)), status=STATUS[status])
