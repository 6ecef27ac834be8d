"""Articulated human hand: adult proportions, forward kinematics, 21 keypoints, left = mirror of right.

Wrist frame (dexman_msgs/Hand3D): origin at keypoint 0; x towards the middle-finger MCP (9);
RIGHT hand y from the little MCP (17) towards the index MCP (5), LEFT hand from 5 towards 17;
z = x cross y, out of the back of the hand. The model is written for the right hand; the left hand
is its exact mirror image through the wrist frame's x-z plane (y -> -y), so both wrist frames are
right-handed and the same joint angles give mirror-image postures.

Keypoints (MANO/OpenPose order): 0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index MCP, PIP, DIP,
tip; 9-12 middle; 13-16 ring; 17-20 little. A fingertip keypoint is the end of the finger (the
rounded end of the distal capsule).

A posture is a HandPose: per finger [abduction, flexion 1, flexion 2, flexion 3] in radians
(thumb: [unused, CMC, MCP, IP]) plus the thumb base rotation (the thumb's metacarpal direction is
its x axis; flexion rotates about its y axis, moving the thumb towards its -z axis).
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np
import trimesh

from .transforms import apply_T, normalize, rot_y, rot_z

LEFT, RIGHT = 0, 1
FINGERS = ('thumb', 'index', 'middle', 'ring', 'little')
TIP_IDS = (4, 8, 12, 16, 20)
MCP_IDS = (5, 9, 13, 17)
# skeleton edges for drawing
EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (0, 9), (9, 10), (10, 11),
         (11, 12), (0, 13), (13, 14), (14, 15), (15, 16), (0, 17), (17, 18), (18, 19), (19, 20),
         (5, 9), (9, 13), (13, 17)]

# ---- right-hand geometry at scale 1 (metres, wrist frame). Palm (wrist -> middle MCP) 8.6 cm.
BASES = np.array([
    [0.026, 0.024, -0.014],     # thumb CMC
    [0.081, 0.025, -0.002],     # index MCP   (index and little MCP share z: y axis exact)
    [0.086, 0.000, 0.000],      # middle MCP  (on the x axis by definition)
    [0.080, -0.019, -0.001],    # ring MCP
    [0.071, -0.037, -0.002],    # little MCP
])
# phalanx lengths: thumb metacarpal/proximal/distal, fingers proximal/middle/distal
LENGTHS = np.array([
    [0.042, 0.032, 0.027],
    [0.040, 0.024, 0.021],
    [0.045, 0.028, 0.023],
    [0.042, 0.027, 0.022],
    [0.033, 0.020, 0.019],
])
RADII = np.array([
    [0.0120, 0.0100, 0.0088],
    [0.0088, 0.0080, 0.0072],
    [0.0090, 0.0082, 0.0074],
    [0.0085, 0.0077, 0.0070],
    [0.0076, 0.0069, 0.0063],
])
SPLAY = np.array([0.0, 0.07, 0.0, -0.07, -0.16])        # finger rest directions about z
# joint limits for closure (flexion 1..3)
MAX_FLEX = np.array([[1.1, 1.0, 1.3], [1.55, 1.85, 1.3], [1.55, 1.85, 1.3], [1.55, 1.85, 1.3],
                     [1.55, 1.85, 1.3]])
# palm: convex hull of these spheres (centre, radius)
_PALM_SPHERES = [
    ((0.004, 0.020, -0.005), 0.016), ((0.004, -0.020, -0.004), 0.016),
    ((0.030, 0.021, -0.010), 0.016), ((0.040, -0.029, -0.007), 0.014),
    ((0.050, 0.000, -0.007), 0.015),
    ((0.077, 0.025, -0.003), 0.010), ((0.082, 0.000, -0.001), 0.0105),
    ((0.076, -0.019, -0.002), 0.010), ((0.067, -0.036, -0.003), 0.009),
]


@dataclasses.dataclass
class HandPose:
    angles: np.ndarray                 # (5, 4)
    thumb_R: np.ndarray                # (3, 3) thumb base rotation in the (right) wrist frame

    def copy(self) -> 'HandPose':
        return HandPose(self.angles.copy(), self.thumb_R.copy())


def thumb_base(direction, closes_towards) -> np.ndarray:
    """Thumb base rotation: metacarpal along `direction`, flexion moving it towards `closes_towards`."""
    x = normalize(direction)
    v = np.asarray(closes_towards, float)
    v = normalize(v - np.dot(v, x) * x)
    z = -v
    return np.stack([x, np.cross(z, x), z], axis=1)


def make_pose(fingers=(0.2, 0.3, 0.2), spread=0.0, thumb_dir=(0.6, 0.65, -0.45),
              thumb_close=(0.3, -0.6, -0.7), thumb_flex=(0.0, 0.15, 0.15)) -> HandPose:
    a = np.zeros((5, 4))
    a[1:, 1:] = fingers
    a[1:, 0] = np.array([1.0, 0.0, -1.0, -1.6]) * spread
    a[0, 1:] = thumb_flex
    return HandPose(a, thumb_base(thumb_dir, thumb_close))


def relaxed_pose() -> HandPose:
    return make_pose((0.25, 0.35, 0.2), 0.02)


def interp_pose(p0: HandPose, p1: HandPose, s: float) -> HandPose:
    from scipy.spatial.transform import Rotation, Slerp
    s = float(np.clip(s, 0, 1))
    a = (1 - s) * p0.angles + s * p1.angles
    if s in (0.0, 1.0):
        R = (p0.thumb_R if s == 0 else p1.thumb_R).copy()
    else:
        R = Slerp([0, 1], Rotation.from_matrix(np.stack([p0.thumb_R, p1.thumb_R])))([s]).as_matrix()[0]
    return HandPose(a, R)


@dataclasses.dataclass
class HandShape:
    """One person's hand: a uniform scale of the adult model."""
    scale: float = 1.0

    @functools.cached_property
    def bases(self):
        return BASES * self.scale

    @functools.cached_property
    def lengths(self):
        return LENGTHS * self.scale

    @functools.cached_property
    def radii(self):
        return RADII * self.scale

    @functools.cached_property
    def palm_mesh(self) -> trimesh.Trimesh:
        """Right palm (convex hull of spheres), wrist frame."""
        ico = trimesh.creation.icosphere(2)
        pts = np.concatenate([np.asarray(c) * self.scale + ico.vertices * r * self.scale
                              for c, r in _PALM_SPHERES])
        return trimesh.convex.convex_hull(pts)

    @functools.cached_property
    def palm_spheres(self) -> tuple[np.ndarray, np.ndarray]:
        """Collision spheres filling the palm (centres (K, 3), radii (K,)), right hand."""
        c = [np.asarray(c) * self.scale for c, _ in _PALM_SPHERES]
        r = [rr * self.scale for _, rr in _PALM_SPHERES]
        hull = self.palm_mesh
        for x in np.arange(0.008, 0.075, 0.011):
            for y in np.arange(-0.030, 0.026, 0.011):
                p = np.array([x, y, -0.006]) * self.scale
                if hull.bounds[0][0] < p[0] < hull.bounds[1][0]:
                    c.append(p)
                    r.append(0.0135 * self.scale)
        return np.array(c), np.array(r)

    # ---------------------------------------------------------------- kinematics
    def finger_chain(self, pose: HandPose, f: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """Joint positions (4, 3) [base, j1, j2, tip] and segment rotations of finger f (right)."""
        a = pose.angles[f]
        if f == 0:
            R = pose.thumb_R @ rot_z(a[0])
        else:
            R = rot_z(SPLAY[f] + a[0])
        pts = [self.bases[f]]
        rots = []
        for k in range(3):
            R = R @ rot_y(a[k + 1])
            rots.append(R)
            pts.append(pts[-1] + R[:, 0] * self.lengths[f, k])
        return np.array(pts), rots

    def keypoints(self, pose: HandPose, side: int = RIGHT) -> np.ndarray:
        """(21, 3) keypoints in the wrist frame of hand `side`."""
        kp = np.zeros((21, 3))
        for f in range(5):
            pts, _ = self.finger_chain(pose, f)
            kp[1 + 4 * f: 5 + 4 * f] = pts
        return mirror(kp) if side == LEFT else kp

    def segments(self, pose: HandPose, side: int = RIGHT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Phalanx capsules (15): endpoints p0, p1 (15, 3) and radii (15,), wrist frame.
        The distal capsule ends one radius short of the tip keypoint, so its surface reaches it."""
        p0, p1, r = [], [], []
        for f in range(5):
            pts, _ = self.finger_chain(pose, f)
            for k in range(3):
                a, b = pts[k], pts[k + 1]
                if k == 2:
                    b = b - normalize(b - a) * self.radii[f, k]
                p0.append(a)
                p1.append(b)
                r.append(self.radii[f, k])
        p0, p1 = np.array(p0), np.array(p1)
        if side == LEFT:
            p0, p1 = mirror(p0), mirror(p1)
        return p0, p1, np.array(r)

    def palm(self, side: int = RIGHT) -> trimesh.Trimesh:
        m = self.palm_mesh
        if side == RIGHT:
            return m
        return trimesh.Trimesh(mirror(m.vertices), m.faces[:, ::-1], process=False)

    def collision_points(self, pose: HandPose, side: int = RIGHT, fingers=range(5),
                         segments=range(3), palm: bool = True, spacing: float = 0.004):
        """Sample spheres (centres (K, 3), radii (K,)) covering the hand's solid, wrist frame."""
        c, r = [], []
        if palm:
            pc, pr = self.palm_spheres
            c.append(mirror(pc) if side == LEFT else pc)
            r.append(pr)
        p0, p1, rad = self.segments(pose, side)
        for f in fingers:
            for k in segments:
                i = 3 * f + k
                n = max(2, int(np.ceil(np.linalg.norm(p1[i] - p0[i]) / spacing)) + 1)
                t = np.linspace(0, 1, n)[:, None]
                c.append(p0[i] + (p1[i] - p0[i]) * t)
                r.append(np.full(n, rad[i]))
        return np.concatenate(c), np.concatenate(r)


def mirror(p: np.ndarray) -> np.ndarray:
    q = np.array(p, float, copy=True)
    q[..., 1] *= -1
    return q


def wrist_frame_from_keypoints(kp: np.ndarray, side: int) -> np.ndarray:
    """4x4 wrist frame from 21 keypoints, exactly as dexman_msgs/Hand3D defines it."""
    x = normalize(kp[9] - kp[0])
    y = kp[5] - kp[17] if side == RIGHT else kp[17] - kp[5]
    y = normalize(y - np.dot(y, x) * x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, np.cross(x, y)], axis=1)
    T[:3, 3] = kp[0]
    return T


def world_keypoints(shape: HandShape, pose: HandPose, side: int, T_world_wrist: np.ndarray) -> np.ndarray:
    return apply_T(T_world_wrist, shape.keypoints(pose, side))
