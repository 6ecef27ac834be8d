"""Embedded CPU default of the point-track stage: pyramidal Lucas-Kanade, lifted to 3D with depth.

Stands in for SpatialTracker. `track(frames, queries, depths, K, masks=None)`:

* Query points (frame index, x, y) become active at their frame and are tracked frame to frame
  with OpenCV's pyramidal LK (window `win`, `levels` pyramid levels), forward and backward; a
  track is lost (invisible from then on) when the forward-backward error exceeds `fb_threshold`
  px, LK reports failure, it leaves the image, or -- when per-frame object masks are given -- it
  leaves the object mask (a point covered by a hand or drifted onto the background).
* Re-seeding (needs masks): when fewer than `min_alive` tracks of the object survive into a
  frame, new tracks are started there on Shi-Tomasi corners (falling back to a regular grid, since
  untextured objects have few corners) inside the eroded mask; they are extra columns of the
  output, invisible (NaN) before their first frame. `sample_queries(mask, n)` gives the initial
  query set the same way.
* 3D: positions_3d = the back-projected depth at the rounded track position (camera_optical, m);
  NaN (and invisible) where depth is missing.

Tracks come back as PointTracks (T, P, ...) with P >= len(queries).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..stages import PointTracks


def sample_points(mask: np.ndarray, n: int, min_distance: int = 2, gray: np.ndarray | None = None) -> np.ndarray:
    """(m, 2) pixel positions (x, y) inside the eroded mask: corners first, then a regular grid."""
    m = np.asarray(mask, bool)
    er = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8))
    if er.sum() < 4:
        er = m.astype(np.uint8)
    pts = np.zeros((0, 2))
    if gray is not None:
        c = cv2.goodFeaturesToTrack(gray, maxCorners=n, qualityLevel=0.01, minDistance=min_distance, mask=er)
        if c is not None:
            pts = c.reshape(-1, 2).astype(np.float64)
    if len(pts) < n:
        ys, xs = np.nonzero(er)
        if len(xs):
            step = max(1, int(np.sqrt(len(xs) / max(1, n - len(pts)))))
            sel = (xs % step == 0) & (ys % step == 0)
            grid = np.stack([xs[sel], ys[sel]], 1).astype(np.float64)
            pts = np.concatenate([pts, grid[: n - len(pts)]])
    return pts


def sample_queries(mask: np.ndarray, n: int = 200, frame: int = 0, gray: np.ndarray | None = None) -> np.ndarray:
    """(m, 3) query rows (frame, x, y) inside a mask."""
    p = sample_points(mask, n, gray=gray)
    return np.concatenate([np.full((len(p), 1), float(frame)), p], 1)


def _gray(f):
    f = np.asarray(f)
    return f if f.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(f, np.uint8), cv2.COLOR_RGB2GRAY)


class LucasKanadeTracker:
    def __init__(self, win: int = 15, levels: int = 3, fb_threshold: float = 1.0, min_alive: int = 30,
                 reseed_points: int = 200):
        self.win = win
        self.levels = levels
        self.fb_threshold = fb_threshold
        self.min_alive = min_alive
        self.reseed_points = reseed_points

    def track(self, frames: Sequence[np.ndarray], queries: np.ndarray, depths: Sequence[np.ndarray] | None,
              K: np.ndarray, masks: Sequence[np.ndarray | None] | None = None) -> PointTracks:
        n = len(frames)
        q = np.asarray(queries, np.float64).reshape(-1, 3)
        cols = [(int(round(r[0])), r[1:].copy()) for r in q]      # (start frame, xy)
        pos = [np.full((n, 2), np.nan) for _ in cols]
        lk = dict(winSize=(self.win, self.win), maxLevel=self.levels,
                  criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
        grays = [_gray(f) for f in frames]
        h, w = grays[0].shape if n else (0, 0)
        alive = np.zeros(len(cols), bool)
        for k in range(n):
            mk = None if masks is None or masks[k] is None else np.asarray(masks[k], bool)
            if k > 0:
                idx = np.flatnonzero(alive)
                if idx.size:
                    p0 = np.stack([pos[i][k - 1] for i in idx]).astype(np.float32).reshape(-1, 1, 2)
                    p1, st1, _ = cv2.calcOpticalFlowPyrLK(grays[k - 1], grays[k], p0, None, **lk)
                    pb, st2, _ = cv2.calcOpticalFlowPyrLK(grays[k], grays[k - 1], p1, None, **lk)
                    fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
                    p1 = p1.reshape(-1, 2).astype(np.float64)
                    ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < self.fb_threshold)
                    ok &= (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
                    if mk is not None:
                        xi = np.clip(np.round(p1[:, 0]).astype(int), 0, w - 1)
                        yi = np.clip(np.round(p1[:, 1]).astype(int), 0, h - 1)
                        ok &= mk[yi, xi]
                    for j, i in enumerate(idx):
                        if ok[j]:
                            pos[i][k] = p1[j]
                        else:
                            alive[i] = False
            for i, (s, xy) in enumerate(cols):          # queries starting here
                if s == k:
                    pos[i][k] = xy
                    alive[i] = True
            if mk is not None and mk.any() and alive.sum() < self.min_alive:
                new = sample_points(mk, self.reseed_points, gray=grays[k])
                for xy in new:
                    cols.append((k, xy))
                    p = np.full((n, 2), np.nan)
                    p[k] = xy
                    pos.append(p)
                alive = np.concatenate([alive, np.ones(len(new), bool)])
        P2 = np.stack(pos, 1) if pos else np.zeros((n, 0, 2))
        vis = np.isfinite(P2).all(-1)
        P3 = None
        if depths is not None:
            K = np.asarray(K, np.float64)
            P3 = np.full(P2.shape[:2] + (3,), np.nan)
            for k in range(n):
                v = np.flatnonzero(vis[k])
                if not v.size:
                    continue
                d = np.asarray(depths[k], np.float64)
                x, y = P2[k, v, 0], P2[k, v, 1]
                z = d[np.clip(np.round(y).astype(int), 0, h - 1), np.clip(np.round(x).astype(int), 0, w - 1)]
                good = np.isfinite(z) & (z > 0)
                P3[k, v[good]] = np.stack([(x[good] - K[0, 2]) * z[good] / K[0, 0],
                                           (y[good] - K[1, 2]) * z[good] / K[1, 1], z[good]], 1)
            vis &= np.isfinite(P3).all(-1)
        return PointTracks(positions_2d=P2, visible=vis, positions_3d=P3)
