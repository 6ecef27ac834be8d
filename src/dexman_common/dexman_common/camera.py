"""Pinhole camera geometry: projection and back-projection with intrinsics K (ROS-free).

K = [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (sensor_msgs/CameraInfo ``k``; the skew s is 0 for
every camera we use, but honoured). Points are in ``camera_optical`` (OpenCV, REP 103: x right,
y down, z forward), pixels (u, v) = (column, row), depths are z (not ray lengths), in the depth
image's units (metres, or the relative units of a relative depth map).

    u = fx x/z + s y/z + cx,  v = fy y/z + cy          (project_points)
    y = (v − cy) z / fy,  x = (u − cx − s y/z) z / fx  (unproject_pixels, its inverse)

A depth pixel is valid when it is finite and > 0 (0 / NaN / inf mean "no depth").
"""
from __future__ import annotations

import numpy as np


def check_intrinsics(K: np.ndarray) -> np.ndarray:
    """Intrinsics as float64 (3, 3), finite, with fx, fy > 0; else ValueError."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise ValueError(f'K must be a finite (3, 3) intrinsic matrix with fx, fy > 0, got {K!r}')
    return K


def project_points(points: np.ndarray, K: np.ndarray, *, nan_behind: bool = True) -> np.ndarray:
    """(..., 3) camera_optical points -> (..., 2) pixels.

    nan_behind: points with z <= 0 (or NaN) give NaN pixels; False: the plain pinhole formula
    for every point (a point behind the camera lands mirrored through the principal point)."""
    p = np.asarray(points, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    z = p[..., 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        y = p[..., 1] / z
        uv = np.stack([K[0, 0] * p[..., 0] / z + K[0, 1] * y + K[0, 2], K[1, 1] * y + K[1, 2]], axis=-1)
    if nan_behind:
        uv[~(z > 0)] = np.nan
    return uv


def unproject_pixels(uv: np.ndarray, z: np.ndarray, K: np.ndarray, *, nan_invalid: bool = True) -> np.ndarray:
    """Pixels (..., 2) at depths z (...) -> camera_optical points (..., 3).

    nan_invalid: a non-finite or non-positive depth gives a NaN point; False: the formula for
    every depth (z <= 0 gives a point at or behind the camera)."""
    uv = np.asarray(uv, dtype=np.float64)
    z = np.asarray(z, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    yn = (uv[..., 1] - K[1, 2]) / K[1, 1]
    xn = (uv[..., 0] - K[0, 2] - K[0, 1] * yn) / K[0, 0]
    with np.errstate(invalid='ignore', over='ignore'):
        pts = np.stack([xn * z, yn * z, np.broadcast_to(z, xn.shape)], axis=-1)
        if nan_invalid:
            pts[~(np.isfinite(z) & (z > 0))] = np.nan
    return pts


def depth_to_points(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(H, W, 3) organised cloud of a depth image (H, W): NaN where the depth is invalid."""
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f'depth must be (H, W), got {d.shape}')
    v, u = np.indices(d.shape, dtype=np.float64)
    return unproject_pixels(np.stack([u, v], axis=-1), d, K)


def masked_depth_points(depth: np.ndarray, K: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(M, 3) points of the pixels of ``mask`` (all if None) with valid depth, in row-major order."""
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f'depth must be (H, W), got {d.shape}')
    with np.errstate(invalid='ignore'):
        ok = np.isfinite(d) & (d > 0)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != d.shape:
            raise ValueError(f'mask {mask.shape} and depth {d.shape} differ in shape')
        ok &= mask
    v, u = np.nonzero(ok)
    return unproject_pixels(np.stack([u, v], axis=-1), d[v, u], K)


__all__ = ['check_intrinsics', 'project_points', 'unproject_pixels', 'depth_to_points',
           'masked_depth_points']
