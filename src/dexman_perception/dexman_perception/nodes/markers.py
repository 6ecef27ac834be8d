"""RViz markers of the perception graph: pure message builders (no node, no publishing).

    hand_markers(hands: Hands3D, ns='hands') -> MarkerArray    skeleton + keypoints per hand
    mesh_marker(vertices, faces, frame_id, stamp_header, ns, marker_id, rgba) -> Marker
    points_marker(points, header, ns, marker_id, rgba, size=0.005) -> Marker

Hands: per side a LINE_LIST skeleton (id 2*side) and a SPHERE_LIST of the 21 keypoints
(id 2*side + 1), side 0 LEFT (blue), 1 RIGHT (red), in the Hands3D header's frame. The ids are
fixed per side, so each new array replaces the previous hand in RViz, and a side without a valid
hand gets DELETE markers for its two ids: a hand that disappears leaves no stale skeleton behind,
without a DELETEALL that would also wipe other namespaces of the same display.

Meshes: TRIANGLE_LIST in the object's own frame (frame_locked: RViz re-reads TF every frame, so
the mesh moves with the object's transform). rgba: four floats in [0, 1].
"""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from dexman_common.stamps import ns_to_sec_nanosec

# bones of the 21-keypoint hand (MANO/OpenPose order), palm edges included
HAND_BONES = ((0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10),
              (10, 11), (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18),
              (18, 19), (19, 20), (5, 9), (9, 13), (13, 17))
HAND_COLOURS = {0: (0.15, 0.45, 1.0, 1.0), 1: (1.0, 0.25, 0.15, 1.0)}      # LEFT blue, RIGHT red
BONE_WIDTH = 0.004      # m
JOINT_SIZE = 0.008      # m


def _colour(rgba) -> ColorRGBA:
    c = np.asarray(rgba, np.float64).ravel()
    if c.shape != (4,) or not np.all(np.isfinite(c)):
        raise ValueError(f'rgba must be four finite numbers, got {rgba!r}')
    c = np.clip(c, 0.0, 1.0)
    return ColorRGBA(r=float(c[0]), g=float(c[1]), b=float(c[2]), a=float(c[3]))


def _header(stamp_or_header, frame_id: str | None = None) -> Header:
    """A Header from a Header (copied), a builtin_interfaces Time, or integer nanoseconds."""
    if isinstance(stamp_or_header, Header):
        stamp = stamp_or_header.stamp
        frame = stamp_or_header.frame_id if frame_id is None else frame_id
    elif isinstance(stamp_or_header, Time):
        stamp, frame = stamp_or_header, frame_id or ''
    elif isinstance(stamp_or_header, (int, np.integer)):
        sec, nanosec = ns_to_sec_nanosec(stamp_or_header)
        stamp, frame = Time(sec=sec, nanosec=nanosec), frame_id or ''
    else:
        raise TypeError(f'expected a Header, a Time or nanoseconds, '
                        f'got {type(stamp_or_header).__name__}')
    return Header(stamp=Time(sec=int(stamp.sec), nanosec=int(stamp.nanosec)), frame_id=frame)


def _points(xyz) -> list[Point]:
    return [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in xyz]


def _base(hdr: Header, ns: str, marker_id: int, kind: int) -> Marker:
    return Marker(header=hdr, ns=ns, id=int(marker_id), type=kind, action=Marker.ADD,
                  pose=Pose(orientation=Quaternion(w=1.0)), lifetime=Duration())


# ------------------------------------------------------------------------------------- hands
def hand_markers(hands_msg, ns: str = 'hands') -> MarkerArray:
    """Skeleton (LINE_LIST) and keypoints (SPHERE_LIST) of the most confident valid hand per
    side of a dexman_msgs/Hands3D; DELETE markers for a side without one (see the module doc)."""
    hdr = _header(hands_msg.header)
    best: dict[int, object] = {}
    for h in hands_msg.hands:
        side = int(h.handedness)
        if not h.valid or side not in HAND_COLOURS or len(h.keypoints) != 21:
            continue
        kp = np.array([[p.x, p.y, p.z] for p in h.keypoints], np.float64)
        if not np.all(np.isfinite(kp)):
            continue
        if side not in best or h.confidence > best[side][0].confidence:
            best[side] = (h, kp)
    out = MarkerArray()
    for side, colour in HAND_COLOURS.items():
        if side not in best:
            for k in (0, 1):
                out.markers.append(Marker(header=hdr, ns=ns, id=2 * side + k, action=Marker.DELETE))
            continue
        _, kp = best[side]
        col = _colour(colour)
        bones = _base(hdr, ns, 2 * side, Marker.LINE_LIST)
        bones.scale = Vector3(x=BONE_WIDTH, y=0.0, z=0.0)
        bones.color = col
        bones.points = _points(kp[np.asarray(HAND_BONES).ravel()])
        joints = _base(hdr, ns, 2 * side + 1, Marker.SPHERE_LIST)
        joints.scale = Vector3(x=JOINT_SIZE, y=JOINT_SIZE, z=JOINT_SIZE)
        joints.color = col
        joints.points = _points(kp)
        out.markers += [bones, joints]
    return out


# ------------------------------------------------------------------------------------ meshes
def mesh_marker(vertices, faces, frame_id: str, stamp_header, ns: str, marker_id: int,
                rgba) -> Marker:
    """TRIANGLE_LIST of a mesh in its own frame `frame_id` (frame_locked). vertices (N, 3) m,
    faces (M, 3) vertex indices; stamp_header: a Header (its stamp is used), a Time or ns."""
    v = np.asarray(vertices, np.float64)
    f = np.asarray(faces, np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or not np.all(np.isfinite(v)):
        raise ValueError(f'vertices must be finite (N, 3), got shape {v.shape}')
    if f.size == 0:
        f = f.reshape(0, 3)
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f'faces must be (M, 3), got shape {f.shape}')
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f'face index out of range for {len(v)} vertices')
    m = _base(_header(stamp_header, frame_id), ns, marker_id, Marker.TRIANGLE_LIST)
    m.frame_locked = True
    m.scale = Vector3(x=1.0, y=1.0, z=1.0)
    m.color = _colour(rgba)
    m.points = _points(v[f.ravel()])
    return m


def points_marker(points, header, ns: str, marker_id: int, rgba, size: float = 0.005) -> Marker:
    """POINTS marker of the finite rows of `points` (N, 3) in header's frame; size: m."""
    p = np.asarray(points, np.float64).reshape(-1, 3) if np.size(points) else np.zeros((0, 3))
    if not size > 0:
        raise ValueError(f'size must be > 0, got {size}')
    m = _base(_header(header), ns, marker_id, Marker.POINTS)
    m.scale = Vector3(x=float(size), y=float(size), z=0.0)
    m.color = _colour(rgba)
    m.points = _points(p[np.all(np.isfinite(p), axis=1)])
    return m


__all__ = ['hand_markers', 'mesh_marker', 'points_marker', 'HAND_BONES', 'HAND_COLOURS']
