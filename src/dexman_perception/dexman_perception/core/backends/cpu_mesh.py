"""Embedded CPU default of the mesh stage: a metric convex mesh from the first frame's depth.

Stands in for Trellis. `reconstruct(rgb, mask, depth, K)`:

1. Back-project the object mask with depth and K (camera_optical, metres); pixels on the mask
   border (1-pixel erosion) are dropped to avoid mixed depth at silhouettes, and points further
   than 3 MAD from the median depth are dropped.
2. Table plane: RANSAC on a ring of pixels around the mask (as in the depth_color segmenter),
   or `table_plane=(n, d)` given by the caller.
3. Completion of the unseen back side -- the documented assumption: the object rests on the table
   in this frame and the camera looks down on it, so its top is seen; the object is the convex
   hull of the visible cloud together with the cloud's vertical projection onto the table plane
   ("extrusion to the table"). This is exact for convex objects whose top outline is visible
   (boxes, cans, slabs) and overestimates concave ones (a mug's handle gap, a bowl's cavity are
   filled).
4. Object frame: origin at the bottom centre (the centre of the footprint's bounding rectangle
   on the table), z = table normal (up), x = the footprint's principal axis, y = z × x.

Returns a watertight trimesh in that frame, metric; `mesh.metadata['T_camera_object']` holds
the frame's pose in the camera at this frame (4x4), which `IcpRefiner.register` uses.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from dexman_common.config import ConfigBase

from ..perception_config import YAML_FILE, configured
from ..stages import StageFailure
from .cpu_segmentation import backproject, fit_plane_ransac


@dataclasses.dataclass(frozen=True)
class FusedMeshConfig(ConfigBase):
    """Tunables of FusedCloudMesh; values in config/perception.yaml [fused_cloud_mesh]."""

    SECTION = 'fused_cloud_mesh'
    YAML_FILE = YAML_FILE

    min_points: int = 30                # fewest object points with depth
    plane_threshold: float = 0.008      # m, RANSAC inlier distance of the table plane
    max_plane_points: int = 4000        # ring points the table plane is fitted on (random subsample)
    seed: int = 0


class FusedCloudMesh:
    """config: a FusedMeshConfig (default: its defaults = config/perception.yaml
    [fused_cloud_mesh]); keyword overrides (its fields) replace its values."""
    CONFIG = FusedMeshConfig

    def __init__(self, config: FusedMeshConfig | None = None, **overrides):
        cfg = self.config = configured(FusedMeshConfig, config, overrides)
        self.min_points = cfg.min_points
        self.plane_threshold = cfg.plane_threshold
        self.seed = cfg.seed

    def reconstruct(self, rgb: np.ndarray, mask: np.ndarray, depth: np.ndarray | None, K: np.ndarray,
                    table_plane: tuple[np.ndarray, float] | None = None):
        import trimesh
        if depth is None:
            raise StageFailure('the fused_cloud mesh needs metric depth (use the trellis backend for RGB only)')
        K = np.asarray(K, np.float64)
        mask = np.asarray(mask, bool)
        pts = backproject(depth, K)
        inner = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if inner.sum() < self.min_points:
            inner = mask
        P = pts[inner]
        P = P[np.isfinite(P).all(1)]
        if len(P) < self.min_points:
            raise StageFailure(f'only {len(P)} object points with depth (need {self.min_points})')
        z = P[:, 2]
        med = np.median(z)
        mad = max(np.median(np.abs(z - med)) * 1.4826, 0.005)
        P = P[np.abs(z - med) < 3 * mad + 0.02]
        if table_plane is None:
            table_plane = self._table(pts, mask)
        if table_plane is None:
            raise StageFailure('no table plane found around the object')
        n, d = np.asarray(table_plane[0], np.float64), float(table_plane[1])
        hgt = P @ n + d
        P, hgt = P[hgt > -0.01], hgt[hgt > -0.01]
        if len(P) < self.min_points:
            raise StageFailure('the object cloud is below the table plane')
        foot = P - hgt[:, None] * n                  # vertical projection onto the table
        cloud = np.concatenate([P, foot])
        # object frame: z up, x footprint principal axis, origin footprint centre on the table
        ref = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        e1 = np.cross(n, ref)
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(n, e1)
        uv = np.stack([foot @ e1, foot @ e2], 1)
        c = uv.mean(0)
        evals, evecs = np.linalg.eigh(np.cov((uv - c).T))
        ax = evecs[:, int(np.argmax(evals))]
        x = ax[0] * e1 + ax[1] * e2
        x /= np.linalg.norm(x)
        y = np.cross(n, x)
        R = np.stack([x, y, n], 1)                   # columns: object axes in the camera
        local = (foot - foot.mean(0)) @ R
        lo, hi = local[:, :2].min(0), local[:, :2].max(0)
        origin = foot.mean(0) + R[:, :2] @ (0.5 * (lo + hi))
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, origin
        obj = (cloud - origin) @ R
        hull = trimesh.Trimesh(obj).convex_hull
        if not hull.is_watertight or hull.volume <= 0:
            raise StageFailure('the convex hull of the object cloud is degenerate')
        hull.metadata['T_camera_object'] = T
        hull.metadata['table_plane'] = (n, d)
        return hull

    def _table(self, pts, mask):
        ys, xs = np.nonzero(mask)
        h, w = mask.shape
        size = max(int(np.ptp(xs)), int(np.ptp(ys)), 8)
        ring = np.zeros_like(mask)
        ring[max(0, ys.min() - size):min(h, ys.max() + 2 * size + 1),
             max(0, xs.min() - 2 * size):min(w, xs.max() + 2 * size + 1)] = True
        ring &= ~cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        P = pts[ring]
        P = P[np.isfinite(P).all(1)]
        n_max = self.config.max_plane_points
        if len(P) > n_max:
            P = P[np.random.default_rng(self.seed).choice(len(P), n_max, replace=False)]
        return fit_plane_ransac(P, self.plane_threshold, seed=self.seed)
