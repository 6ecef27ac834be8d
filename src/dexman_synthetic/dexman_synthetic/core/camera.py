"""Pinhole camera: intrinsics from the MuJoCo fovy, projection, and the high, far third-person placement.

Pixel convention: pixel (u, v) = (column, row) has its CENTRE at integer coordinates, row 0 at the top
of the image; so the principal point of MuJoCo's symmetric frustum is cx = (W - 1) / 2,
cy = (H - 1) / 2, and fx = fy = (H / 2) / tan(fovy / 2). (A renderer that puts pixel centres at
half-integers would use cx = W / 2.) `camera_optical` is the OpenCV frame: z forward, x right,
y down; MuJoCo's camera frame has the same x, y up and looks along -z.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dexman_common.camera import masked_depth_points, project_points

from .transforms import apply_T, inv_T, make_T, normalize

OPTICAL_FROM_MUJOCO = np.diag([1.0, -1.0, -1.0])


def intrinsics(fovy_deg: float, width: int, height: int) -> np.ndarray:
    f = (height / 2.0) / np.tan(np.deg2rad(fovy_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def project(K: np.ndarray, T_camera_world: np.ndarray, pts_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (..., 2) and depths (...,) of world points (pinhole formula also for
    points behind the camera: check z)."""
    pc = apply_T(T_camera_world, pts_world)
    return project_points(pc, K, nan_behind=False), pc[..., 2]


def backproject(K: np.ndarray, depth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Camera-frame points (M, 3) of the pixels in `mask` (default: all) with depth > 0."""
    return masked_depth_points(depth, K, mask)


def look_at(eye, target) -> np.ndarray:
    """T_world_optical for a camera at `eye` looking at `target`, image x roughly horizontal."""
    z = normalize(np.asarray(target, float) - np.asarray(eye, float))
    x = np.cross(z, (0, 0, 1.0))
    if np.linalg.norm(x) < 1e-6:
        x = np.array([1.0, 0, 0])
    x = normalize(x)
    y = np.cross(z, x)
    return make_T(np.stack([x, y, z], axis=1), eye)


@dataclasses.dataclass
class CameraSpec:
    T_world_optical: np.ndarray
    fovy: float
    width: int
    height: int
    info: dict

    @property
    def K(self) -> np.ndarray:
        return intrinsics(self.fovy, self.width, self.height)

    def mujoco_xyaxes(self) -> tuple[np.ndarray, np.ndarray]:
        R = self.T_world_optical[:3, :3] @ OPTICAL_FROM_MUJOCO
        return R[:, 0], R[:, 1]


def sample_camera(rng: np.random.Generator, width: int, height: int, person_xy: np.ndarray,
                  table_height: float, must_see: np.ndarray, target: np.ndarray,
                  tries: int = 400) -> CameraSpec:
    """High, far third-person camera facing the person across the table.

    Horizontal distance from the person 1.2-1.8 m, 0.6-1.2 m above the table, optical axis 30-60
    degrees below the horizon, azimuth within +-25 degrees of straight in front of the person,
    fovy 35-50 degrees; resampled until every point of `must_see` (world) projects inside the image
    with a 4% margin.
    """
    margin = 0.04
    for i in range(tries):
        az = np.deg2rad(rng.uniform(-25, 25))
        dist = rng.uniform(1.2, 1.8)
        h = rng.uniform(0.6, 1.2)
        fovy = rng.uniform(35, 50)
        jitter = rng.uniform(-0.05, 0.05, 3) * np.array([1, 1, 0.5])
        eye = np.array([person_xy[0] + dist * np.sin(az), person_xy[1] + dist * np.cos(az), table_height + h])
        tgt = target + jitter
        T = look_at(eye, tgt)
        pitch = np.rad2deg(np.arcsin(-T[2, 2]))
        if not 30.0 <= pitch <= 60.0:
            continue
        K = intrinsics(fovy, width, height)
        uv, z = project(K, inv_T(T), must_see)
        if np.all(z > 0.2) and np.all(uv[:, 0] > margin * width) and np.all(uv[:, 0] < (1 - margin) * width) \
                and np.all(uv[:, 1] > margin * height) and np.all(uv[:, 1] < (1 - margin) * height):
            return CameraSpec(T, float(fovy), width, height,
                              dict(azimuth_deg=float(np.rad2deg(az)), distance_to_person_m=float(dist),
                                   height_above_table_m=float(h), pitch_deg=float(pitch),
                                   fovy_deg=float(fovy), tries=i + 1))
    raise RuntimeError('no camera placement sees the whole scene; widen the ranges')
