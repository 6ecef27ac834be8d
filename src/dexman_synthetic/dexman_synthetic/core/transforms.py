"""Rigid transforms, rotations and interpolation helpers of the synthetic generator (the SE(3)
and quaternion ones are dexman_common.geometry's, imported under the short names used here).

Conventions: 4x4 homogeneous matrices `T_a_b` map points in frame b to frame a. Quaternions are
(w, x, y, z) for MuJoCo and (x, y, z, w) for ROS messages; the helpers name which one they use.
"""
from __future__ import annotations

import hashlib

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

# The SE(3) / quaternion helpers are dexman_common.geometry's, under this package's short names.
from dexman_common.geometry import invert_transform as inv_T  # noqa: F401
from dexman_common.geometry import make_transform as make_T
from dexman_common.geometry import quat_from_matrix, rotation_from_axis_angle
from dexman_common.geometry import quat_from_matrix as quat_xyzw  # noqa: F401
from dexman_common.geometry import transform_points as apply_T  # noqa: F401


def stable_seed(*parts) -> int:
    """A 64-bit seed from a stable hash of `parts` (never Python's salted hash())."""
    text = '|'.join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], 'little')


def make_rng(*parts) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(stable_seed(*parts)))


def rot_axis(axis, angle: float) -> np.ndarray:
    return rotation_from_axis_angle(normalize(axis) * angle)


def rot_x(a: float) -> np.ndarray:
    return rot_axis((1, 0, 0), a)


def rot_y(a: float) -> np.ndarray:
    return rot_axis((0, 1, 0), a)


def rot_z(a: float) -> np.ndarray:
    return rot_axis((0, 0, 1), a)


def normalize(v) -> np.ndarray:
    v = np.asarray(v, float)
    return v / np.linalg.norm(v)


def frame_from_xz(x, z) -> np.ndarray:
    """Rotation whose x axis is `x` and whose z axis is `z` made orthogonal to x."""
    x = normalize(x)
    z = np.asarray(z, float) - np.dot(z, x) * x
    z = normalize(z)
    return np.stack([x, np.cross(z, x), z], axis=1)


def quat_wxyz(R: np.ndarray) -> np.ndarray:
    return quat_from_matrix(R, scalar_first=True)


def min_jerk(s: np.ndarray | float) -> np.ndarray:
    """Minimum-jerk time scaling of s in [0, 1]."""
    s = np.clip(s, 0.0, 1.0)
    return s ** 3 * (10 - 15 * s + 6 * s ** 2)


def interp_T(T0: np.ndarray, T1: np.ndarray, s: float) -> np.ndarray:
    """Pose between T0 (s=0) and T1 (s=1): linear position, slerp rotation."""
    if s <= 0:
        return T0.copy()
    if s >= 1:
        return T1.copy()
    rots = Rotation.from_matrix(np.stack([T0[:3, :3], T1[:3, :3]]))
    R = Slerp([0.0, 1.0], rots)([s]).as_matrix()[0]
    return make_T(R, (1 - s) * T0[:3, 3] + s * T1[:3, 3])


def rotation_about(point, axis, angle: float) -> np.ndarray:
    """4x4 rotation by `angle` about the line through `point` along `axis`."""
    R = rot_axis(axis, angle)
    p = np.asarray(point, float)
    return make_T(R, p - R @ p)
