"""Metric scale of relative depth from the hand's width (DexMan paper, Sec. 3.2 and B.2).

HaMeR gives a metrically sized MANO mesh of the right hand in the first frame; VGGT's depth is
only relative (correct up to one scale factor). B.2 unprojects the hand mask with the relative
depth and compares horizontal extents:

    scale = (x_max^HaMeR − x_min^HaMeR) / (x_max^VGGT − x_min^VGGT)

then multiplies every depth map of the video by that one factor.

Frames and units: ``camera_optical`` (OpenCV: z forward, x right, y down), metres for the metric
hand. "Horizontal" is the camera x axis (image rows run along it; ``axis=0``). A pixel (u, v)
with depth z unprojects to

    X = (u − c_x) · z / f_x,   Y = (v − c_y) · z / f_y,   Z = z

(pixel centres at integer coordinates, K = [[f_x, 0, c_x], [0, f_y, c_y], [0, 0, 1]]). Because
X is linear in z, multiplying the depth by ``scale`` multiplies the unprojected extent by
``scale``: after rescaling, the cloud's x-extent equals the mesh's.

Our calls where the paper is silent
    * Outliers: the extents are percentiles, ``depth_percentiles=(lo, hi)`` of the unprojected
      cloud's x and ``metric_percentiles`` of the metric hand's x. The default (0, 100) is exactly
      the paper's min/max. Mask-edge "flying pixels" can stretch the cloud's extent; e.g. (1, 99)
      trims them, but trimmed extents of the mesh vertices and of the pixel cloud are only
      comparable when both are sampled alike, so that is a trade-off left to the caller.
    * Invalid depth (NaN, ±inf, <= 0) inside the mask is ignored.
    * The metric hand may be any point set of it in camera_optical: MANO vertices (the paper) or
      the 21 keypoints; the two have slightly different extents.
    * The mesh includes the hand's occluded side while the cloud holds only visible pixels; the
      paper accepts this, so do we.

Nothing here imports rclpy.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from dexman_common.camera import masked_depth_points
from dexman_common.config import ConfigBase

from .perception_config import YAML_FILE, configured

HORIZONTAL_AXIS = 0          # camera_optical x (right in the image)
PAPER_PERCENTILES = (0.0, 100.0)


@dataclasses.dataclass(frozen=True)
class HandScaleConfig(ConfigBase):
    """Tunables of B.2 (module docstring); values in config/perception.yaml [hand_metric_scale]."""

    SECTION = 'hand_metric_scale'
    YAML_FILE = YAML_FILE

    axis: int = HORIZONTAL_AXIS                                  # 0 = camera x (the paper's horizontal)
    depth_percentiles: tuple[float, float] = PAPER_PERCENTILES   # extent of the unprojected cloud
    metric_percentiles: tuple[float, float] = PAPER_PERCENTILES  # extent of the metric hand


class HandScaleError(ValueError):
    """The scale cannot be computed (empty mask, no valid depth, zero extent, bad input)."""


@dataclasses.dataclass(frozen=True)
class HandScaleResult:
    scale: float                       # metres per relative-depth unit
    metric_extent: float               # x_max − x_min of the metric hand, metres
    depth_extent: float                # x_max − x_min of the unprojected cloud, relative units
    metric_range: tuple[float, float]  # (x_min, x_max) metric
    depth_range: tuple[float, float]   # (x_min, x_max) relative
    n_metric_points: int
    n_depth_points: int                # valid masked pixels used
    axis: int
    depth_percentiles: tuple[float, float]
    metric_percentiles: tuple[float, float]


def unproject(depth: np.ndarray, K: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(M, 3) camera_optical points of the valid (finite, > 0) pixels of ``mask`` (all if None)."""
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 2:
        raise HandScaleError(f'depth must be (H, W), got {depth.shape}')
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not (K[0, 0] > 0 and K[1, 1] > 0):
        raise HandScaleError(f'bad intrinsics {K.tolist()}')
    if mask is not None and np.shape(mask) != depth.shape:
        raise HandScaleError(f'mask {np.shape(mask)} and depth {depth.shape} differ in shape')
    return masked_depth_points(depth, K, mask)


def _extent(values: np.ndarray, percentiles: Sequence[float], what: str) -> tuple[float, float]:
    lo, hi = (float(p) for p in percentiles)
    if not 0.0 <= lo < hi <= 100.0:
        raise HandScaleError(f'{what} percentiles must satisfy 0 <= lo < hi <= 100, got {percentiles}')
    if lo == 0.0 and hi == 100.0:
        return float(values.min()), float(values.max())
    a, b = np.percentile(values, [lo, hi])
    return float(a), float(b)


def hand_metric_scale(metric_hand_points: np.ndarray, depth: np.ndarray, hand_mask: np.ndarray,
                      K: np.ndarray, *, config: HandScaleConfig | None = None,
                      **overrides) -> HandScaleResult:
    """scale = (x_max^metric − x_min^metric) / (x_max^depth − x_min^depth)  (B.2).

    metric_hand_points: (P, 3) metric hand (HaMeR MANO vertices or keypoints) in camera_optical,
        metres; non-finite rows are ignored.
    depth: (H, W) relative depth of the same (first) frame; hand_mask: (H, W) bool hand mask;
    K: 3x3 intrinsics of that image. config: a HandScaleConfig (default: its defaults =
    config/perception.yaml [hand_metric_scale]); keyword overrides replace its values: axis
    (0 = camera x, the paper's horizontal; 1 = y for a rotated camera), depth_percentiles,
    metric_percentiles (default: the paper's exact min/max).
    """
    cfg = configured(HandScaleConfig, config, overrides)
    axis, depth_percentiles, metric_percentiles = cfg.axis, cfg.depth_percentiles, cfg.metric_percentiles
    M = np.asarray(metric_hand_points, dtype=np.float64)
    if M.ndim != 2 or M.shape[1] != 3:
        raise HandScaleError(f'metric_hand_points must be (P, 3), got {M.shape}')
    if axis not in (0, 1, 2):
        raise HandScaleError(f'axis must be 0, 1 or 2, got {axis}')
    M = M[np.isfinite(M).all(1)]
    if M.shape[0] < 2:
        raise HandScaleError(f'{M.shape[0]} finite metric hand point(s); need at least 2')
    C = unproject(depth, K, hand_mask)
    if C.shape[0] < 2:
        raise HandScaleError(f'{C.shape[0]} hand pixel(s) with valid depth; need at least 2')
    m_rng = _extent(M[:, axis], metric_percentiles, 'metric')
    d_rng = _extent(C[:, axis], depth_percentiles, 'depth')
    m_ext = m_rng[1] - m_rng[0]
    d_ext = d_rng[1] - d_rng[0]
    if not m_ext > 0:
        raise HandScaleError('the metric hand has zero horizontal extent')
    if not d_ext > 0:
        raise HandScaleError('the unprojected hand cloud has zero horizontal extent')
    return HandScaleResult(scale=m_ext / d_ext, metric_extent=m_ext, depth_extent=d_ext,
                           metric_range=m_rng, depth_range=d_rng, n_metric_points=int(M.shape[0]),
                           n_depth_points=int(C.shape[0]), axis=axis,
                           depth_percentiles=tuple(float(p) for p in depth_percentiles),
                           metric_percentiles=tuple(float(p) for p in metric_percentiles))


def apply_depth_scale(depths: np.ndarray, scale: float) -> np.ndarray:
    """Metric depth = scale · relative depth, the same factor for every frame (NaN stays NaN)."""
    if not (np.isfinite(scale) and scale > 0):
        raise HandScaleError(f'scale must be finite and > 0, got {scale}')
    d = np.asarray(depths)
    out_dtype = d.dtype if np.issubdtype(d.dtype, np.floating) else np.float64
    return (d * scale).astype(out_dtype, copy=False)
