"""Rigid transforms, rotations and interpolation helpers (numpy only).

Conventions: 4x4 homogeneous matrices `T_a_b` map points in frame b to frame a. Quaternions are
(w, x, y, z) for MuJoCo and (x, y, z, w) for ROS messages; the helpers name which one they use.
"""
from __future__ import annotations

import hashlib

import numpy as np
from scipy.spatial.transform import Rotation, Slerp


def stable_seed(*parts) -> int:
    """A 64-bit seed from a stable hash of `parts` (never Python's salted hash())."""
    text = '|'.join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], 'little')


def make_rng(*parts) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(stable_seed(*parts)))


def make_T(R: np.ndarray | None = None, t=None) -> np.ndarray:
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    if t is not None:
        T[:3, 3] = t
    return T


def inv_T(T: np.ndarray) -> np.ndarray:
    R, t = T[..., :3, :3], T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum('...ij,...j->...i', Rt, t)
    out[..., 3, 3] = 1.0
    return out


def apply_T(T: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Transform (..., 3) points by one 4x4 matrix."""
    return pts @ T[:3, :3].T + T[:3, 3]


def rot_axis(axis, angle: float) -> np.ndarray:
    axis = np.asarray(axis, float)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()


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
    x, y, z, w = Rotation.from_matrix(R).as_quat()
    return np.array([w, x, y, z])


def quat_xyzw(R: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(R).as_quat()


def rot_from_xyzw(q) -> np.ndarray:
    return Rotation.from_quat(q).as_matrix()


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
