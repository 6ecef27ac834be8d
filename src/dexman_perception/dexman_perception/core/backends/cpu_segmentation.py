"""Embedded CPU default of the segmentation stage: depth + colour video object segmentation.

Stands in for SAM2's video predictor on a machine without a GPU or downloaded weights. Needs
metric depth and intrinsics (passed to `segment_video` or to the constructor).

Per object, from a first-frame prompt (bool mask, or box [x0, y0, x1, y1]):

1. Table plane: RANSAC (seeded) on the back-projected depth of a ring of pixels around the prompt
   (the object rests on the table in the first frame), normal oriented towards the camera; in
   later frames the plane is refitted by least squares on the pixels that were its inliers
   (a moving camera keeps it), falling back to the previous plane. `table_plane_near` gives the
   first-frame plane and its inlier points (the scene alignment uses them).
2. Candidate pixels: finite depth, height above the plane in [min_height, max_height].
3. Hand pixels removed. Preferred: a per-frame hand mask from the caller (`hand_masks`, e.g. the
   hand keypoints of the hands stage drawn as thick finger segments, see `hand_mask_from_keypoints`),
   dilated by `hand_margin_px`. Fallback when none is given: a skin-colour test in YCrCb
   (`skin_cr`, `skin_cb`: the classic Chai & Ngan range), applied only to pixels whose colour
   is not closer to the object's own colour model (so a skin-coloured object is not erased).
   Without either, a hand touching the object merges with it (documented limitation).
4. Connected components (8-connectivity) of what remains, with the pixels at depth
   discontinuities (> `depth_jump` between neighbours) removed first so that an object in front
   of the body or an arm does not merge with it (object-coloured discontinuity pixels next to the
   result are given back afterwards); the object is the union of the components that overlap
   the motion gate, ranked by overlap. Motion gate: the previous mask dilated by
   `search_radius_px`, less the pixels farther than `motion_3d` (m, per frame) from the object's
   previous 3D points (what lies far behind or in front of it, e.g. the chair behind a person
   holding a box up); or, when the caller gives a prior (`step(..., priors=)`: the mesh projected
   at the tracker's pose, `object_tracker.project_mask`), that prior dilated, with its depth
   range. The object colour model (mean and covariance in Lab of the prompt pixels) breaks ties:
   components whose mean colour is far (Mahalanobis > `colour_gate`) from it are dropped unless
   nothing else overlaps. A result larger than `growth_limit` x the prompt's area (merged with
   an arm or the body) keeps only its object-coloured pixels.
5. Vanishing object (fewer than `min_pixels` pixels): an empty mask for that frame; the previous
   non-empty mask stays the reference for the motion gate, which widens by `search_radius_px`
   (and `motion_3d`) per missing frame; a prior re-acquires it wherever the tracker puts it.
   Without a prior, an object-coloured neighbour connected to the object (green sleeves next to
   a green slab) can be taken in and the gate creeps along it; the prior stops that.

Two forms: `segment_video` (a clip) and `start` / `step` (one frame at a time, for nodes);
`segment_video` is `start` + `step` and gives the same masks.

Without depth (`depths` None) the stage raises StageFailure: colour alone is not a segmenter.
Tunables: `SegmenterConfig` (config/perception.yaml [depth_color_segmenter]).
Pure numpy / scipy / OpenCV; no rclpy.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import cv2
import numpy as np
from scipy.spatial import cKDTree

from dexman_common.camera import depth_to_points as backproject
from dexman_common.config import ConfigBase
from dexman_common.geometry import PlaneFitError, fit_plane

from ..perception_config import YAML_FILE, configured
from ..stages import StageFailure


@dataclasses.dataclass(frozen=True)
class SegmenterConfig(ConfigBase):
    """Tunables of DepthColorSegmenter (module docstring); values in config/perception.yaml
    [depth_color_segmenter]. Lengths in metres, image distances in pixels."""

    SECTION = 'depth_color_segmenter'
    YAML_FILE = YAML_FILE

    plane_threshold: float = 0.008      # m, table-plane inlier distance
    min_height: float = 0.006           # m, candidate pixels: height above the table in
    max_height: float = 0.6             # m    [min_height, max_height]
    search_radius_px: int | None = None   # motion gate radius; None: search_radius_fraction x the image's larger side
    search_radius_fraction: float = 0.05
    min_search_radius_px: int = 6
    min_pixels: int = 12                # fewer: the object vanished in this frame
    hand_margin_px: int = 2             # dilation of the hand mask
    colour_gate: float = 6.0            # Mahalanobis distance (Lab) of an object-coloured pixel
    use_skin_fallback: bool = True      # without a hand mask, drop skin-coloured pixels
    skin_cr: tuple[int, int] = (133, 173)   # skin range in OpenCV's 8-bit YCrCb (Chai & Ngan 1999)
    skin_cb: tuple[int, int] = (77, 127)
    hand_depth_tolerance: float = 0.015   # m, pixels this far in front of a hand depth map stay
    growth_limit: float = 1.5           # x the prompt's area: larger keeps only object-coloured pixels
    depth_jump: float = 0.03            # m, depth discontinuity that breaks connectivity
    motion_3d: float | None = 0.10      # m per frame, 3D motion gate (None: off)
    prior_margin: float = 1.0           # x the search radius, dilation of a tracker prior
    seed: int = 0


# Skin range in YCrCb (Chai & Ngan 1999), OpenCV's 8-bit YCrCb: the SegmenterConfig defaults.
SKIN_CR = SegmenterConfig.skin_cr
SKIN_CB = SegmenterConfig.skin_cb


def fit_plane_ransac(points: np.ndarray, threshold: float = 0.01, iterations: int = 200,
                     seed: int = 0) -> tuple[np.ndarray, float] | None:
    """(n, d) with n·p + d = 0, |n| = 1, n pointing towards the camera (d > 0), or None.
    RANSAC over 3-point samples, then a least-squares refit on the inliers."""
    P = np.asarray(points, np.float64).reshape(-1, 3)
    P = P[np.isfinite(P).all(1)]
    if len(P) < 10:
        return None
    rng = np.random.default_rng(seed)
    best, best_cnt = None, -1
    for _ in range(iterations):
        s = P[rng.choice(len(P), 3, replace=False)]
        n = np.cross(s[1] - s[0], s[2] - s[0])
        nn = np.linalg.norm(n)
        if nn < 1e-9:
            continue
        n /= nn
        d = -n @ s[0]
        cnt = int(np.count_nonzero(np.abs(P @ n + d) < threshold))
        if cnt > best_cnt:
            best, best_cnt = (n, d), cnt
    if best is None:
        return None
    inl = np.abs(P @ best[0] + best[1]) < threshold
    return refit_plane(P[inl]) or best


def refit_plane(P: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(n, d) of the least-squares plane through the finite points, n towards the camera (the
    origin: d >= 0); None for fewer than 10 points or (nearly) collinear ones."""
    P = np.asarray(P, np.float64).reshape(-1, 3)
    P = P[np.isfinite(P).all(1)]
    if len(P) < 10:
        return None
    try:
        fit = fit_plane(P, viewpoint=(0.0, 0.0, 0.0), collinear_rtol=0.0)
    except PlaneFitError:
        return None
    if fit.singular_values[1] < 1e-9:
        return None
    return fit.normal, fit.offset


def hand_mask_from_keypoints(keypoints_2d: np.ndarray, depth_m: float | np.ndarray, K: np.ndarray,
                             shape: tuple[int, int], finger_width_m: float = 0.018,
                             with_depth: bool = False) -> np.ndarray:
    """A hand mask drawn from 21 MANO/OpenPose keypoints (pixels): the palm polygon filled and
    each finger bone a line as thick as `finger_width_m` at depth `depth_m` (scalar or per
    keypoint). NaN keypoints are skipped. with_depth: return instead a float32 (H, W) hand depth
    map (metres, +inf off the hand; nearest bone wins), which `DepthColorSegmenter` uses to remove
    only the pixels at or behind the hand surface (an object held in front of the palm stays)."""
    kp = np.asarray(keypoints_2d, np.float64).reshape(21, 2)
    z = np.broadcast_to(np.asarray(depth_m, np.float64), (21,))
    f = float(K[0, 0])
    chains = [[0, 1, 2, 3, 4], [0, 5, 6, 7, 8], [0, 9, 10, 11, 12], [0, 13, 14, 15, 16],
              [0, 17, 18, 19, 20]]
    zbuf = np.full(shape, np.inf, np.float32)
    tmp = np.zeros(shape, np.uint8)

    def paint(zz):
        np.minimum(zbuf, np.where(tmp > 0, np.float32(zz), np.inf), out=zbuf)
        tmp[:] = 0

    palm = [0, 1, 5, 9, 13, 17]
    if np.isfinite(kp[palm]).all() and np.isfinite(z[palm]).all():
        cv2.fillPoly(tmp, [np.round(kp[palm]).astype(np.int32)], 1)
        paint(float(np.mean(z[palm])))
    for ch in chains:
        for a, b in zip(ch[:-1], ch[1:]):
            if not (np.isfinite(kp[[a, b]]).all() and np.isfinite(z[[a, b]]).all()):
                continue
            zz = max(0.05, 0.5 * (z[a] + z[b]))
            t = int(max(1, round(finger_width_m * f / zz)))
            cv2.line(tmp, tuple(int(v) for v in np.round(kp[a])), tuple(int(v) for v in np.round(kp[b])), 1, t)
            paint(zz)
    return zbuf if with_depth else np.isfinite(zbuf)


def skin_mask(rgb: np.ndarray, cr_range: Sequence[int] = SKIN_CR, cb_range: Sequence[int] = SKIN_CB) -> np.ndarray:
    """(H, W) bool: pixels whose YCrCb Cr and Cb lie in the given (inclusive) ranges."""
    ycc = cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2YCrCb)
    cr, cb = ycc[..., 1], ycc[..., 2]
    return (cr >= cr_range[0]) & (cr <= cr_range[1]) & (cb >= cb_range[0]) & (cb <= cb_range[1])


class _ColourModel:
    """Gaussian colour model in Lab of the object's prompt pixels."""

    def __init__(self, rgb: np.ndarray, mask: np.ndarray):
        lab = cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2LAB).reshape(-1, 3)
        x = lab[mask.reshape(-1)].astype(np.float64)
        self.mean = x.mean(0) if len(x) else np.zeros(3)
        cov = np.cov(x.T) if len(x) > 3 else np.eye(3)
        self.icov = np.linalg.inv(cov + np.eye(3) * 16.0)   # floor: ~4 Lab units of spread

    def distance(self, lab_pixels: np.ndarray) -> np.ndarray:
        d = lab_pixels.astype(np.float64) - self.mean
        return np.sqrt(np.einsum('ni,ij,nj->n', d, self.icov, d))


def _subsample(P: np.ndarray, n: int) -> np.ndarray:
    P = P[np.isfinite(P).all(1)]
    return P if len(P) <= n else P[np.linspace(0, len(P) - 1, n).astype(int)]


def _mask_from_prompt(prompt: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    p = np.asarray(prompt)
    if p.shape == tuple(shape):
        return p.astype(bool), True
    if p.size == 4:
        x0, y0, x1, y1 = [int(round(float(v))) for v in p.reshape(4)]
        m = np.zeros(shape, bool)
        m[max(0, y0):max(0, y1) + 1, max(0, x0):max(0, x1) + 1] = True
        return m, False
    raise ValueError(f'prompt must be a bool mask {shape} or a box [x0, y0, x1, y1], got shape {p.shape}')


def table_plane_near(points_hw3: np.ndarray, mask: np.ndarray, threshold: float = 0.008, seed: int = 0,
                     max_points: int = 4000) -> tuple[tuple[np.ndarray, float] | None, np.ndarray]:
    """The table plane under an object resting on it, and the table's inlier points.

    points_hw3: (H, W, 3) back-projected depth (`backproject`); mask: (H, W) bool first-frame object
    mask. RANSAC (seeded) on the points of a ring of pixels around the mask (2x its size sideways
    and below, 1x above; the mask dilated by 2 px excluded), subsampled to `max_points`; falls
    back to the whole image (every 4th pixel) when the ring gives no plane. Returns ((n, d),
    inliers (N, 3)) with n·p + d = 0, |n| = 1, n towards the camera, inliers the sampled points
    within `threshold` of the plane; (None, (0, 3)) when no plane is found."""
    pts = np.asarray(points_hw3, np.float64)
    m0 = np.asarray(mask, bool)
    h, w = m0.shape
    ys, xs = np.nonzero(m0)
    if len(xs) == 0:
        return None, np.zeros((0, 3))
    size = max(int(np.ptp(xs)), int(np.ptp(ys)), 8)
    ring = np.zeros_like(m0)
    x0, x1 = max(0, xs.min() - 2 * size), min(w, xs.max() + 2 * size + 1)
    y0, y1 = max(0, ys.min() - size), min(h, ys.max() + 2 * size + 1)
    ring[y0:y1, x0:x1] = True
    ring &= ~cv2.dilate(m0.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    P = pts[ring]
    P = P[np.isfinite(P).all(1)]
    if len(P) > max_points:
        P = P[np.random.default_rng(seed).choice(len(P), max_points, replace=False)]
    obj = pts[m0]
    obj = obj[np.isfinite(obj).all(1)]
    plane = _supporting_plane(P, obj, threshold, seed)
    if plane is None:   # fall back to the whole image
        P = pts[::4, ::4].reshape(-1, 3)
        P = P[np.isfinite(P).all(1)]
        plane = _supporting_plane(P, obj, threshold, seed)
    if plane is None:
        return None, np.zeros((0, 3))
    return plane, P[np.abs(P @ plane[0] + plane[1]) < threshold]


def _supporting_plane(P: np.ndarray, obj: np.ndarray, threshold: float, seed: int, max_planes: int = 3,
                      max_rest_height: float = 0.3):
    """The plane the object rests on among the dominant planes of P (sequential RANSAC, up to
    `max_planes`, each with >= 15 % of the points): the first one whose height under the
    object's lowest points (10th percentile) is in (-0.02, max_rest_height] m; else the dominant
    plane. A floor seen around a table (the object ~0.8 m above it) is skipped for the table top."""
    first = None
    rest = P
    for i in range(max_planes):
        if len(rest) < max(10, 0.15 * len(P)):
            break
        plane = fit_plane_ransac(rest, threshold, seed=seed + i)
        if plane is None:
            break
        first = first or plane
        inl = np.abs(rest @ plane[0] + plane[1]) < threshold
        if inl.sum() < 0.15 * len(P):
            break
        if not len(obj):
            return plane
        h = float(np.percentile(obj @ plane[0] + plane[1], 10))
        if -0.02 < h <= max_rest_height:
            return plane
        rest = rest[~inl]
    return first


class DepthColorSegmenter:
    """Depth-plane + connected-component video segmenter (see the module docstring).

    K: intrinsics (or pass them to `start` / `segment_video`); config: a SegmenterConfig (default:
    its defaults = config/perception.yaml [depth_color_segmenter]); keyword overrides
    (SegmenterConfig fields, e.g. a node's backend_options) replace its values."""
    CONFIG = SegmenterConfig

    def __init__(self, K: np.ndarray | None = None, config: SegmenterConfig | None = None, **overrides):
        cfg = self.config = configured(SegmenterConfig, config, overrides)
        self.motion_3d = cfg.motion_3d
        self.prior_margin = cfg.prior_margin
        self.hand_depth_tolerance = cfg.hand_depth_tolerance
        self.growth_limit = cfg.growth_limit
        self.depth_jump = cfg.depth_jump
        self.K = None if K is None else np.asarray(K, np.float64)
        self.plane_threshold = cfg.plane_threshold
        self.min_height = cfg.min_height
        self.max_height = cfg.max_height
        self.search_radius_px = cfg.search_radius_px
        self.min_pixels = cfg.min_pixels
        self.hand_margin_px = cfg.hand_margin_px
        self.colour_gate = cfg.colour_gate
        self.use_skin_fallback = cfg.use_skin_fallback
        self.seed = cfg.seed
        self.planes: list[tuple[np.ndarray, float] | None] = []   # per frame, after a run

    # -------------------------------------------------------------------------------- API
    def segment_video(self, frames: Sequence[np.ndarray], prompts: dict[str, np.ndarray],
                      depths: Sequence[np.ndarray] | None = None, K: np.ndarray | None = None,
                      hand_masks: Sequence[np.ndarray | None] | None = None) -> list[dict[str, np.ndarray]]:
        """Per frame {object id: bool mask}. depths: (H, W) metres per frame (required);
        K: intrinsics (or the constructor's); hand_masks: optional per-frame hand masks (None entries
        allowed): bool (H, W) masks removed entirely, or float hand depth maps (metres, inf off
        the hand, see `hand_mask_from_keypoints(..., with_depth=True)`) removing only pixels not
        more than `hand_depth_tolerance` in front of the hand. The batch form of `start` + `step`;
        `self.planes` gets the table plane of each frame."""
        if depths is None or (K is None and self.K is None):
            raise StageFailure('the depth_color segmenter needs per-frame metric depth and K '
                               '(segment_video(..., depths=..., K=...)); use the sam2 backend for RGB only')
        n = len(frames)
        if len(depths) != n:
            raise ValueError(f'{len(depths)} depth images for {n} frames')
        if n == 0:
            self.planes = []
            return []
        hand = (lambda k: None) if hand_masks is None else (lambda k: hand_masks[k])
        out = [self.start(frames[0], depths[0], prompts, K=K, hand=hand(0))]
        planes = [self._last_plane()]
        for k in range(1, n):
            out.append(self.step(frames[k], depths[k], hand=hand(k)))
            planes.append(self._last_plane())
        self.planes = planes
        return out

    def start(self, rgb0: np.ndarray, depth0: np.ndarray, prompts: dict[str, np.ndarray],
              K: np.ndarray | None = None, hand: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Streaming form, first frame: fits each object's table plane and colour model from its
        prompt (bool (H, W) mask, taken as given, or box [x0, y0, x1, y1]: the largest above-table
        component inside it). Returns {object id: bool mask}; `step` continues the video."""
        K = self.K if K is None else np.asarray(K, np.float64)
        if depth0 is None or K is None:
            raise StageFailure('the depth_color segmenter needs metric depth and K; '
                               'use the sam2 backend for RGB only')
        self._K = K
        rgb0 = np.asarray(rgb0)
        h, w = rgb0.shape[:2]
        self._shape = (h, w)
        self._radius = self.search_radius_px or max(
            self.config.min_search_radius_px, int(round(self.config.search_radius_fraction * max(h, w))))
        self._frame = 0
        pts0 = backproject(depth0, K)
        self._state = {}
        for oid, prompt in prompts.items():
            m0, is_mask = _mask_from_prompt(prompt, (h, w))
            plane = self._initial_plane(pts0, m0)
            if plane is None:
                raise StageFailure(f'{oid}: no table plane found around the prompt')
            box = None
            if not is_mask:   # box: the largest above-table component inside the box
                box = m0
                cand = self._candidates(pts0, plane) & m0
                m0 = self._largest_component(cand)
            self._state[oid] = dict(plane=plane, prev=m0, missing=0, colour=_ColourModel(rgb0, m0),
                                    area0=int(m0.sum()), given=is_mask, prev_pts=None, box=box)
        return self._masks(rgb0, pts0, hand)

    def step(self, rgb: np.ndarray, depth: np.ndarray, hand: np.ndarray | None = None,
             priors: dict[str, np.ndarray | None] | None = None) -> dict[str, np.ndarray]:
        """Streaming form, next frame: {object id: bool mask} (empty when the object vanished).
        hand: None, a bool hand mask or a hand depth map (see `segment_video`). priors: optional
        {object id: where the object is expected}, e.g. its mesh projected at the tracker's pose
        (`object_tracker.project_mask`): a bool (H, W) mask, or a float depth map (+inf / 0 off
        the object; `project_mask(..., with_depth=True)`). It replaces the motion gate: the
        prior dilated by prior_margin x search_radius_px instead of the previous mask dilated
        (no creeping into object-coloured neighbours, re-acquisition wherever the tracker puts
        the object); with a depth map, its depth range (± motion_3d) replaces the 3D gate on the
        previous points."""
        if not hasattr(self, '_state'):
            raise RuntimeError('DepthColorSegmenter.step() before start()')
        if depth is None:
            raise StageFailure('the depth_color segmenter needs metric depth in every frame')
        self._frame += 1
        return self._masks(np.asarray(rgb), backproject(depth, self._K), hand, priors)

    def plane_of(self, oid: str) -> tuple[np.ndarray, float] | None:
        """The current table plane (n, d) of an object (n·p + d = 0 in camera_optical, n towards
        the camera), refitted every frame."""
        st = getattr(self, '_state', {}).get(oid)
        return None if st is None else st['plane']

    @property
    def current_planes(self) -> dict[str, tuple[np.ndarray, float]]:
        return {oid: st['plane'] for oid, st in getattr(self, '_state', {}).items()}

    def _last_plane(self):
        st = getattr(self, '_state', {})
        return list(st.values())[-1]['plane'] if st else None

    def _masks(self, rgb, pts, hand, priors=None) -> dict[str, np.ndarray]:
        h, w = self._shape
        if rgb.shape[:2] != (h, w) or pts.shape[:2] != (h, w):
            raise ValueError(f'frame {rgb.shape[:2]} / depth {pts.shape[:2]} differ from the first frame {(h, w)}')
        out = {}
        lab = None
        for oid, st in self._state.items():
            if self._frame > 0:
                st['plane'] = self._track_plane(pts, st['plane'])
            if self._frame == 0 and st['given']:
                # the prompt mask is taken as given (it is the reference, e.g. SAM2's click)
                m = st['prev'].copy()
            else:
                if lab is None:
                    lab = cv2.cvtColor(np.ascontiguousarray(rgb, np.uint8), cv2.COLOR_RGB2LAB)
                prior = None if priors is None else priors.get(oid)
                m = self._segment(rgb, lab, pts, st, hand, self._radius, prior)
                if self._frame == 0 and st['box'] is not None:
                    # first frame of a box prompt: the user's box bounds the object
                    m = self._largest_component(m & st['box'])
            if np.count_nonzero(m) < self.min_pixels:
                out[oid] = np.zeros((h, w), bool)
                st['missing'] += 1
            else:
                out[oid] = m
                st['prev'] = m
                st['prev_pts'] = _subsample(pts[m], 800)
                st['missing'] = 0
        return out

    # -------------------------------------------------------------------------------- pieces
    def _initial_plane(self, pts: np.ndarray, m0: np.ndarray):
        return table_plane_near(pts, m0, self.plane_threshold, self.seed)[0]

    def _track_plane(self, pts: np.ndarray, plane):
        n, d = plane
        P = pts[::3, ::3].reshape(-1, 3)
        P = P[np.isfinite(P).all(1)]
        inl = P[np.abs(P @ n + d) < self.plane_threshold]
        if len(inl) < 50:
            return plane
        new = refit_plane(inl)
        if new is None or float(new[0] @ n) < 0.98:   # reject a jump to another plane
            return plane
        return new

    def _candidates(self, pts: np.ndarray, plane) -> np.ndarray:
        n, d = plane
        with np.errstate(invalid='ignore'):
            hgt = pts @ n + d
            return np.isfinite(hgt) & (hgt > self.min_height) & (hgt < self.max_height)

    @staticmethod
    def _largest_component(mask: np.ndarray) -> np.ndarray:
        cnt, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        if cnt <= 1:
            return np.zeros_like(mask, bool)
        return lab == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))

    def _segment(self, rgb, lab, pts, st, hand, radius, prior=None) -> np.ndarray:
        cand = self._candidates(pts, st['plane'])
        colour: _ColourModel = st['colour']
        h, w = cand.shape
        ambiguous = None
        if hand is not None:
            hand = np.asarray(hand)
            if hand.dtype != bool:   # hand depth map: remove pixels at or behind the hand surface
                with np.errstate(invalid='ignore'):
                    hm = np.isfinite(hand) & ~(pts[..., 2] < hand - self.hand_depth_tolerance)
                region = np.isfinite(hand)
            else:
                hm = region = hand
            if self.hand_margin_px > 0:
                k = 2 * self.hand_margin_px + 1
                hm = cv2.dilate(hm.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
            cand &= ~hm
            # pixels near the hand are ambiguous (fingers, wrist, arm): keep object-coloured ones
            ambiguous = cv2.dilate(region.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        elif self.use_skin_fallback:
            ambiguous = skin_mask(rgb, self.config.skin_cr, self.config.skin_cb)
        if ambiguous is not None:
            amb = ambiguous & cand
            if amb.any():
                far = colour.distance(lab[amb]) > self.colour_gate
                idx = np.flatnonzero(amb.reshape(-1))[far]
                cand.reshape(-1)[idx] = False
        # break connectivity at depth discontinuities (an object in front of the body or arm)
        cand_full = cand.copy()
        z = np.nan_to_num(pts[..., 2], nan=0.0)
        jump = np.zeros_like(cand)
        dzx = np.abs(np.diff(z, axis=1)) > self.depth_jump
        dzy = np.abs(np.diff(z, axis=0)) > self.depth_jump
        jump[:, :-1] |= dzx
        jump[:, 1:] |= dzx
        jump[:-1, :] |= dzy
        jump[1:, :] |= dzy
        cand &= ~jump
        prior_gate = prior_range = None
        if prior is not None:
            prior = np.asarray(prior)
            if prior.dtype != bool:              # a depth map of the expected object (inf / 0 off it)
                with np.errstate(invalid='ignore'):
                    on = np.isfinite(prior) & (prior > 0)
                if on.any():
                    prior_range = (float(prior[on].min()), float(prior[on].max()))
                prior = on
            if prior.any():
                rp = max(2, int(round(self.prior_margin * radius)))
                prior_gate = cv2.dilate(prior.astype(np.uint8), cv2.getStructuringElement(
                    cv2.MORPH_ELLIPSE, (2 * rp + 1, 2 * rp + 1))).astype(bool)
        if prior_gate is not None:
            gate = prior_gate.copy()
        else:
            r = radius * (1 + st['missing'])
            gate = cv2.dilate(st['prev'].astype(np.uint8), cv2.getStructuringElement(
                cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))).astype(bool)
        ref = st.get('prev_pts')
        if prior_range is not None:
            # the expected depth range replaces the 3D gate on the previous points
            m3 = self.motion_3d or 0.0
            with np.errstate(invalid='ignore'):
                z = pts[..., 2]
                gate &= (z > prior_range[0] - m3) & (z < prior_range[1] + m3)
        elif self.motion_3d and ref is not None and len(ref) >= 3:
            # 3D motion gate: within motion_3d (per frame) of the object's previous points, so
            # that what lies far behind or in front of it (the body, the chair) is not taken
            gi = np.flatnonzero((gate & cand).reshape(-1))
            if gi.size:
                dist, _ = cKDTree(ref).query(pts.reshape(-1, 3)[gi],
                                             distance_upper_bound=self.motion_3d * (1 + st['missing']))
                gate.reshape(-1)[gi[~np.isfinite(dist)]] = False
        cnt, labels, stats, _ = cv2.connectedComponentsWithStats(cand.astype(np.uint8), connectivity=8)
        if cnt <= 1:
            return np.zeros_like(cand)
        ov = np.bincount(labels[gate], minlength=cnt)
        ov[0] = 0
        ids = np.flatnonzero(ov > 0)
        if ids.size == 0:
            return np.zeros_like(cand)
        # colour tie-breaker: median colour distance of each overlapping component
        flat_lab = lab.reshape(-1, 3)
        lflat = labels.reshape(-1)
        keep = []
        for i in ids:
            px = flat_lab[lflat == i]
            if len(px) > 400:
                px = px[:: len(px) // 400]
            keep.append(float(np.median(colour.distance(px))) <= self.colour_gate)
        keep = np.asarray(keep)
        if keep.any():
            ids = ids[keep]
        else:   # nothing has the object's colour: the single best-overlapping component
            ids = ids[[int(np.argmax(ov[ids]))]]
        m = np.isin(labels, ids) & gate
        # give back the discontinuity pixels next to the object that have its colour
        ring = cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & cand_full & ~m & jump
        if ring.any():
            ri = np.flatnonzero(ring.reshape(-1))
            near = colour.distance(flat_lab[ri]) <= self.colour_gate
            m.reshape(-1)[ri[near]] = True
        # a region that grew far beyond the previous mask (merged with an arm, the body, a
        # second object): keep only its object-coloured pixels
        area_ref = max(1, st['area0'])
        if m.sum() > self.growth_limit * area_ref:
            mi = np.flatnonzero(m.reshape(-1))
            far = colour.distance(flat_lab[mi]) > self.colour_gate
            m.reshape(-1)[mi[far]] = False
        return m
