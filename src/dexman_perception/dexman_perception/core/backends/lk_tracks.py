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

Online form: `LucasKanadeTracker.stream(K)` -> LkStream, start(rgb, depth, mask) / step(rgb, depth,
mask) -> LkFrame with the current 2D positions and track ids and the 3D correspondences between
the previous and the current frame (what Kabsch needs). `track` is built on it (same output).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np

from dexman_common.camera import unproject_pixels
from dexman_common.config import ConfigBase

from ..perception_config import YAML_FILE, configured
from ..stages import PointTracks


@dataclasses.dataclass(frozen=True)
class LkConfig(ConfigBase):
    """Tunables of LucasKanadeTracker (module docstring); values in config/perception.yaml
    [lucas_kanade]."""

    SECTION = 'lucas_kanade'
    YAML_FILE = YAML_FILE

    win: int = 15                       # px, LK window
    levels: int = 3                     # pyramid levels
    fb_threshold: float = 1.0           # px, forward-backward error above which a track is lost
    min_alive: int = 30                 # fewer surviving tracks: re-seed in the mask
    reseed_points: int = 200            # points sampled when re-seeding
    max_iterations: int = 30            # LK termination: iterations ...
    epsilon: float = 0.01               # ... or this change (px)


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


@dataclasses.dataclass
class LkFrame:
    """One frame of an `LkStream`.

    ids, xy: the tracks alive in this frame (their ids and 2D positions, pixels) -- for display;
    points_3d: their back-projected positions (camera_optical, m; NaN where depth is missing).
    Correspondences for Kabsch between the previous and this frame (tracks alive in both, with
    depth in both): pair_ids, prev_points_3d, curr_points_3d (empty on the first frame)."""
    index: int
    ids: np.ndarray                 # (M,) int
    xy: np.ndarray                  # (M, 2)
    points_3d: np.ndarray           # (M, 3)
    pair_ids: np.ndarray            # (C,) int
    prev_points_3d: np.ndarray      # (C, 3)
    curr_points_3d: np.ndarray      # (C, 3)


class LkStream:
    """Online (frame by frame) pyramidal Lucas-Kanade tracks lifted to 3D (see the module
    docstring); `LucasKanadeTracker.track` is its batch form. Track ids are assigned in creation
    order from `first_id` (explicit ids may be given with `add_queries`)."""

    def __init__(self, tracker: 'LucasKanadeTracker', K: np.ndarray | None, first_id: int = 0):
        self.tracker = tracker
        self.K = None if K is None else np.asarray(K, np.float64)
        self._next_id = int(first_id)
        self._k = -1
        self._gray = None
        self._ids = np.zeros(0, np.int64)
        self._xy = np.zeros((0, 2))
        self._p3 = np.zeros((0, 3))
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []

    @property
    def frame_index(self) -> int:
        return self._k

    def add_queries(self, xy: np.ndarray, ids: Sequence[int] | None = None) -> np.ndarray:
        """Start tracks at the given positions (x, y) in the NEXT frame passed to start/step.
        Returns their ids."""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        if ids is None:
            ids = np.arange(self._next_id, self._next_id + len(xy))
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(ids) != len(xy):
            raise ValueError(f'{len(ids)} ids for {len(xy)} queries')
        if len(ids):
            self._next_id = max(self._next_id, int(ids.max()) + 1)
        self._pending.append((ids, xy))
        return ids

    def start(self, rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray | None = None,
              n_queries: int | None = None) -> LkFrame:
        """First frame: tracks start on the queries added so far, else on `n_queries` (default:
        the tracker's reseed_points) points sampled in the mask (corners first, then a grid)."""
        self._k = -1
        self._gray = None
        self._ids = np.zeros(0, np.int64)
        self._xy = np.zeros((0, 2))
        self._p3 = np.zeros((0, 3))
        if not self._pending and mask is not None and np.any(mask):
            self.add_queries(sample_points(mask, n_queries or self.tracker.reseed_points, gray=_gray(rgb)))
        return self.step(rgb, depth, mask)

    def step(self, rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray | None = None) -> LkFrame:
        """Next frame: LK (forward-backward) from the previous frame; tracks that fail, leave the
        image or leave `mask` are dropped; new queries start; re-seeding in the mask when fewer
        than `min_alive` tracks survive."""
        tr = self.tracker
        gray = _gray(rgb)
        h, w = gray.shape
        mk = None if mask is None else np.asarray(mask, bool)
        self._k += 1
        prev_ids, prev_p3 = self._ids, self._p3
        if self._k > 0 and len(self._ids):
            p0 = self._xy.astype(np.float32).reshape(-1, 1, 2)
            lk = dict(winSize=(tr.win, tr.win), maxLevel=tr.levels,
                      criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, tr.config.max_iterations,
                                tr.config.epsilon))
            p1, st1, _ = cv2.calcOpticalFlowPyrLK(self._gray, gray, p0, None, **lk)
            pb, st2, _ = cv2.calcOpticalFlowPyrLK(gray, self._gray, p1, None, **lk)
            fb = np.linalg.norm((pb - p0).reshape(-1, 2), axis=1)
            p1 = p1.reshape(-1, 2).astype(np.float64)
            ok = (st1.ravel() == 1) & (st2.ravel() == 1) & (fb < tr.fb_threshold)
            ok &= (p1[:, 0] >= 0) & (p1[:, 0] <= w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] <= h - 1)
            if mk is not None:
                xi = np.clip(np.round(p1[:, 0]).astype(int), 0, w - 1)
                yi = np.clip(np.round(p1[:, 1]).astype(int), 0, h - 1)
                ok &= mk[yi, xi]
            self._ids, self._xy = self._ids[ok], p1[ok]
        elif self._k > 0:
            self._ids, self._xy = self._ids[:0], self._xy[:0]
        for ids, xy in self._pending:            # queries starting here
            self._ids = np.concatenate([self._ids, ids])
            self._xy = np.concatenate([self._xy, xy])
        self._pending = []
        if mk is not None and mk.any() and len(self._ids) < tr.min_alive:
            new = sample_points(mk, tr.reseed_points, gray=gray)
            ids = np.arange(self._next_id, self._next_id + len(new))
            self._next_id += len(new)
            self._ids = np.concatenate([self._ids, ids])
            self._xy = np.concatenate([self._xy, new.reshape(-1, 2)])
        self._gray = gray
        self._p3 = _lift(self._xy, depth, self.K, h, w)
        # correspondences with the previous frame (tracks alive in both, depth in both)
        _, ip, ic = np.intersect1d(prev_ids, self._ids, assume_unique=True, return_indices=True)
        good = np.isfinite(prev_p3[ip]).all(1) & np.isfinite(self._p3[ic]).all(1)
        ip, ic = ip[good], ic[good]                          # ascending track id
        return LkFrame(self._k, self._ids.copy(), self._xy.copy(), self._p3.copy(),
                       self._ids[ic].copy(), prev_p3[ip].copy(), self._p3[ic].copy())


def _lift(xy, depth, K, h, w) -> np.ndarray:
    P3 = np.full((len(xy), 3), np.nan)
    if depth is None or K is None or not len(xy):
        return P3
    d = np.asarray(depth, np.float64)
    x, y = xy[:, 0], xy[:, 1]
    z = d[np.clip(np.round(y).astype(int), 0, h - 1), np.clip(np.round(x).astype(int), 0, w - 1)]
    return unproject_pixels(xy, z, K)              # NaN where the depth is invalid


class LucasKanadeTracker:
    """config: an LkConfig (default: its defaults = config/perception.yaml [lucas_kanade]);
    keyword overrides (its fields, e.g. a node's tracks_options) replace its values."""
    CONFIG = LkConfig

    def __init__(self, config: LkConfig | None = None, **overrides):
        cfg = self.config = configured(LkConfig, config, overrides)
        self.win = cfg.win
        self.levels = cfg.levels
        self.fb_threshold = cfg.fb_threshold
        self.min_alive = cfg.min_alive
        self.reseed_points = cfg.reseed_points

    def stream(self, K: np.ndarray | None, first_id: int = 0) -> LkStream:
        """An online tracker (start / step per frame) with this tracker's settings."""
        return LkStream(self, K, first_id)

    def track(self, frames: Sequence[np.ndarray], queries: np.ndarray, depths: Sequence[np.ndarray] | None,
              K: np.ndarray, masks: Sequence[np.ndarray | None] | None = None) -> PointTracks:
        """Batch form of `stream`: queries (frame, x, y) are columns 0..Q-1, re-seeded tracks
        follow in creation order."""
        n = len(frames)
        q = np.asarray(queries, np.float64).reshape(-1, 3)
        start = np.round(q[:, 0]).astype(int)
        s = self.stream(None if depths is None else K, first_id=len(q))
        got = []
        for k in range(n):
            sel = np.flatnonzero(start == k)
            if sel.size:
                s.add_queries(q[sel, 1:], ids=sel)
            f = s.step(frames[k], None if depths is None else depths[k],
                       None if masks is None or masks[k] is None else masks[k])
            got.append(f)
        P = max([len(q)] + [int(f.ids.max()) + 1 for f in got if len(f.ids)])
        P2 = np.full((n, P, 2), np.nan)
        P3 = None if depths is None else np.full((n, P, 3), np.nan)
        for k, f in enumerate(got):
            P2[k, f.ids] = f.xy
            if P3 is not None:
                P3[k, f.ids] = f.points_3d
        vis = np.isfinite(P2).all(-1)
        if P3 is not None:
            vis &= np.isfinite(P3).all(-1)
        return PointTracks(positions_2d=P2, visible=vis, positions_3d=P3)
