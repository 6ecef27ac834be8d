"""SpatialTracker (SpaTracker) 3D point-track adapter (paper Sec. 3.2, B.3: 3D tracks of object
points -> per-frame rigid motion ΔT by Kabsch -> FoundationPose's initial pose).

Follows henry123-boy/SpaTracker (main branch, CVPR 2024 release; demo.py, `spaT_final.pth`):

    from models.spatracker.predictor import SpaTrackerPredictor      # run from the repo root
    model = SpaTrackerPredictor(checkpoint='checkpoints/spaT_final.pth', interp_shape=(384, 512),
                                seq_length=12)
    tracks, visibility, T_firsts = model(video (1, T, 3, H, W) float 0..255,
                                         video_depth=(T, 1, H, W) float, queries=(1, N, 3) float
                                         rows (t, x, y) in pixels, wind_length=12)
    tracks     (1, T, N, 3)   x, y in the input's pixels, z = the given depth along the track
    visibility (1, T, N)      bool (> 0.9)
    T_firsts   (1, N)         query frame of each track

With explicit queries the predictor adds (and strips again) its own 6x6 support grid, resizes
video and depth to interp_shape internally and rescales x, y back. The adapter passes our depth
(NaN/inf/<= 0 -> 0) as video_depth and lifts each track point with the real K:
X = (x - cx) z / fx, Y = (y - cy) z / fy, Z = z (camera_optical, the depth's units); points with
z <= 0 get NaN. Without depth maps SpaTracker would need its own monocular depth model
(ZoeDepth via mde.py); the adapter requires depths instead (the pipeline has VGGT's).

Install: SpaTracker is not on PyPI: clone henry123-boy/SpaTracker, install its requirements
(einops, easydict, timm, ...) and pass repo_dir=<checkout> (it imports a top-level package
named `models`); weights: checkpoints/spaT_final.pth.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..stages import PointTracks, StageFailure
from ._adapter_util import (check_K, check_frames, repo_context, require_module, require_path,
                            resolve_device, to_numpy, unproject)

BACKEND = 'spatialtracker'
INSTALL_HINT = ("SpaTracker is not on PyPI: clone henry123-boy/SpaTracker, install its "
                "requirements and pass repo_dir=<checkout>.")
CKPT_HINT = "Download spaT_final.pth (SpaTracker release) and pass checkpoint=<path>."


# ------------------------------------------------------------------------------ pure helpers
def frames_to_video(frames: Sequence[np.ndarray]) -> np.ndarray:
    """RGB uint8 frames -> SpaTracker's video (1, T, 3, H, W) float32 in 0..255."""
    f = np.stack(check_frames(frames)).astype(np.float32)
    return f.transpose(0, 3, 1, 2)[None]


def depths_to_video_depth(depths: Sequence[np.ndarray], n_frames: int, shape: tuple[int, int]
                          ) -> np.ndarray:
    """Per-frame depth (H, W) -> video_depth (T, 1, H, W) float32, unknown (NaN, inf, <= 0) -> 0."""
    d = np.stack([np.asarray(x, dtype=np.float32) for x in depths])
    if d.shape != (n_frames, *shape):
        raise ValueError(f'depths {d.shape} do not match {n_frames} frames of {shape}')
    return np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)[:, None]


def queries_to_spatracker(queries: np.ndarray, n_frames: int, shape: tuple[int, int]) -> np.ndarray:
    """Our queries (P, 3) rows (frame, x, y) -> SpaTracker's (1, P, 3) float32 (t, x, y); frames
    must be integers in range and points inside the image."""
    q = np.asarray(queries, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 3 or len(q) == 0:
        raise ValueError(f'queries must be (P, 3) rows (frame, x, y), got {q.shape}')
    t = q[:, 0]
    if np.any(t != np.round(t)) or np.any(t < 0) or np.any(t >= n_frames):
        raise ValueError(f'query frames must be integers in [0, {n_frames})')
    h, w = shape
    if np.any(q[:, 1] < 0) or np.any(q[:, 1] > w - 1) or np.any(q[:, 2] < 0) or np.any(q[:, 2] > h - 1):
        raise ValueError(f'query points must lie inside the {w}x{h} image')
    return q.astype(np.float32)[None]


def spatracker_to_point_tracks(tracks: np.ndarray, visibility: np.ndarray, K: np.ndarray
                               ) -> PointTracks:
    """SpaTracker's tracks (1, T, N, 3) [x, y, depth] and visibility (1, T, N) -> PointTracks:
    positions_2d (T, N, 2) px, visible (T, N) bool, positions_3d (T, N, 3) camera_optical lifted
    with K (NaN where the depth is not positive/finite)."""
    K = check_K(K)
    tr = np.asarray(to_numpy(tracks), dtype=np.float64)
    vis = np.asarray(to_numpy(visibility)).astype(bool)
    if tr.ndim != 4 or tr.shape[0] != 1 or tr.shape[-1] != 3:
        raise ValueError(f'tracks must be (1, T, N, 3), got {tr.shape}')
    if vis.shape != tr.shape[:3]:
        raise ValueError(f'visibility must be {tr.shape[:3]}, got {vis.shape}')
    xy, z = tr[0, ..., :2], tr[0, ..., 2]
    return PointTracks(positions_2d=xy, visible=vis[0], positions_3d=unproject(xy, z, K))


# ------------------------------------------------------------------------------ adapter
class SpatialTrackerTracks:
    """PointTracker backend 'spatialtracker'.

    Options: repo_dir (SpaTracker checkout), checkpoint (default <repo_dir>/checkpoints/
    spaT_final.pth), device, interp_shape ((384, 512) as the demo), seq_length / wind_length
    (12, one of the released 8/12/16), backward_tracking (False).
    """

    def __init__(self, repo_dir: str | None = None, checkpoint: str | None = None,
                 device: str = 'auto', interp_shape: tuple[int, int] = (384, 512),
                 seq_length: int = 12, wind_length: int | None = None,
                 backward_tracking: bool = False):
        root = require_path(repo_dir, BACKEND, 'repo_dir', INSTALL_HINT)
        if checkpoint is None:
            checkpoint = str(root / 'checkpoints' / 'spaT_final.pth')
        ckpt = require_path(checkpoint, BACKEND, 'checkpoint', CKPT_HINT)
        self.device = resolve_device(device, BACKEND)
        with repo_context(root):
            pred = require_module('models.spatracker.predictor', BACKEND, INSTALL_HINT)
            self.model = pred.SpaTrackerPredictor(checkpoint=str(ckpt),
                                                  interp_shape=tuple(interp_shape),
                                                  seq_length=int(seq_length))
        self.model = self.model.to(self.device).eval()
        self.wind_length = int(wind_length or seq_length)
        self.backward_tracking = bool(backward_tracking)

    def track(self, frames: Sequence[np.ndarray], queries: np.ndarray,
              depths: Sequence[np.ndarray] | None, K: np.ndarray) -> PointTracks:
        """queries: (P, 3) rows (frame index, x, y) px. Returns tracks of every query over all
        frames, lifted to 3D with the given depths and K."""
        import torch
        K = check_K(K)
        video = frames_to_video(frames)
        T, (H, W) = video.shape[1], video.shape[3:]
        if depths is None:
            raise StageFailure('SpatialTracker adapter needs depth maps (e.g. the scaled VGGT depth)')
        vd = depths_to_video_depth(depths, T, (H, W))
        q = queries_to_spatracker(queries, T, (H, W))
        dev = self.device
        tracks, vis, _ = self.model(torch.from_numpy(video).to(dev),
                                    video_depth=torch.from_numpy(vd).to(dev),
                                    queries=torch.from_numpy(q).to(dev),
                                    backward_tracking=self.backward_tracking,
                                    wind_length=self.wind_length)
        return spatracker_to_point_tracks(tracks, vis, K)
