"""Metric scale of an unscaled object mesh, Any6D style (DexMan paper, Sec. 3.2 and B.3).

The mesh stage (Trellis) gives a mesh of the right shape but no metric size. The paper follows
Any6D: sample candidate scales, register the scaled mesh with FoundationPose at each, keep the
scale whose pose scores best. ``estimate_object_scale`` does that with any ``PoseRefiner``
(CPU default ``IcpRefiner``, or FoundationPose):

    from dexman_perception.core.object_scale import estimate_object_scale, scale_mesh
    r = estimate_object_scale(refiner, rgb, depth, mask, mesh, K, occluder_mask=hand_masks)
    r.scale, r.T_camera_object, r.score, r.table       # table: [(scale, score), ...]
    metric_mesh = scale_mesh(mesh, r.scale)            # r.T_camera_object is the pose of that mesh

Search (our calls where the paper is silent)
    * Initial guess: the ratio of the largest principal extent of the masked depth cloud
      (2nd-98th percentile, depth outliers dropped) to that of the mesh's surface. A partial view
      can under- or overestimate it, hence the wide grid.
    * Coarse pass: ``n_coarse`` scales on a geometric grid from guess/``span`` to
      guess·``span``, each registered from scratch with
      ``refiner.register`` (the paper: FoundationPose registration per candidate) and, with
      ``pca_inits`` (default), also refined from the 4 poses that align the model's principal
      axes with the observed cloud's (IcpRefiner.register only tries camera-aligned
      orientations, which fails on e.g. a slab seen by a tilted camera at 320x240); the
      best-scoring pose is kept. When the best scale lies on the grid's end, the grid is extended
      past it by up to ``max_extend`` x 3 steps.
    * Fine pass: ``n_fine`` scales on each side of the best coarse scale, up to its
      neighbours, each refined with ``refiner.refine`` from the
      best coarse pose (its translation shifted so that the scaled mesh keeps its bounding-box
      centre where it was); then one more refine at the vertex of the parabola (in log scale)
      through the best and its two neighbours. ``n_fine=0`` skips both. Explicit ``candidates``
      replace the whole search: every candidate is registered.
    * The returned scale is the best-scoring candidate, its pose that candidate's pose for
      ``scale_mesh(mesh, scale)`` (scaled about the mesh's own origin; metadata copied as is).

Why not the refiner's score: IcpRefiner's score is the fraction of observed points within
``inlier_distance`` of the model (observation -> model only). It is not fair across scales: a
too-large mesh explains every observed point with a part of its bigger surface and scores as
well as the right one (tests: a plate 1.4x too large scores like the right one). The default
``score='bidirectional'`` therefore scores every candidate pose here, on the same observation
for every scale, as the F-measure of two fractions:

    fit      = mean over the observed object points (all mask pixels with valid depth, depth
               outliers dropped) of  k(point-to-plane residual to the nearest model sample) ·
               (1 − the part of the pixel's 1 px cell that lies outside the model's projected
               silhouette)                                  -> penalises a too-small mesh;
    coverage = mean over the model's camera-visible surface samples (back faces culled, point
               z-buffer) of  k(|observed depth − sample depth|) where the sample's pixel is in
               the object mask (1 px dilated) and the depth agrees within ``tau``, else 0
                                                            -> penalises a too-large mesh (its
               extra surface lands on the table or background, or floats in front of it);
    score    = 2 · fit · coverage / (fit + coverage),   k(r) = max(0, 1 − (r / tau)²).

  Both terms compare the model's outline with the union of the mask's pixel cells, which is an
  area-unbiased stand-in for the object's outline: at the right scale the expected penalties
  on either side balance (tests/test_object_scale.py checks a hand-computed plate).
  The silhouette is the model's triangles filled on a 4x supersampled raster; observed depth
  at a sample is interpolated bilinearly within the mask (or outside it), so in-pixel depth
  changes of sloped surfaces do not count as residual. Surface samples are area-uniform
  (seeded), ``sample_px`` pixel footprints apart at the object's depth, the same spacing
  in metres at every scale.
  Visible samples are ignored where the observed surface lies more than ``tau`` in front of them
  outside the object mask (an occluder such as a hand), or where the depth is invalid inside the
  mask. Pass ``occluder_mask`` (e.g. the hand masks) to accept occlusions only there: otherwise
  any nearer surface counts as an occluder, which lets a too-large mesh hide the part of it that
  sinks into the table top (only its sideways excess is penalised then).
  ``score='refiner'`` uses the refiner's own score instead (FoundationPose's learned score; with
  IcpRefiner it biases the choice towards large scales).

Tunables: ``ScaleSearchConfig`` (config/perception.yaml [object_scale]); measured accuracy and
run time: docs/perception.md (with the command).

Frames and units (REP 103): camera_optical (OpenCV: z forward, x right, y down), metres; depth
(H, W) metres, 0/NaN/inf = unknown; mask (H, W) bool; K (3, 3), pixel centres at integer
coordinates. The mesh may be in any unit (Trellis: unit-ish size): ``scale`` is metres per mesh
unit. ``score`` in [0, 1], higher is better; a low best score means no candidate was
registered well, and the scale is then not to be trusted (docs/perception.md).

Nothing here imports rclpy.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Sequence

import cv2
import numpy as np
from scipy.spatial import cKDTree

from dexman_common.camera import masked_depth_points
from dexman_common.config import ConfigBase

from .perception_config import YAML_FILE, configured
from .stages import PoseEstimate, StageFailure

SCORES = ('bidirectional', 'refiner')
SUPERSAMPLE = 4                  # raster of the model's outline, per pixel


@dataclasses.dataclass(frozen=True)
class ScaleSearchConfig(ConfigBase):
    """Tunables of the scale search and its score (module doc); values in config/perception.yaml
    [object_scale]."""

    SECTION = 'object_scale'
    YAML_FILE = YAML_FILE

    n_coarse: int = 11               # scales on the coarse geometric grid
    span: float = 1.5                # the grid runs from guess / span to guess x span
    n_fine: int = 4                  # fine scales on each side of the best coarse one (0: no fine pass)
    max_extend: int = 2              # extensions of the grid past its end (3 steps each)
    score: str = 'bidirectional'     # 'bidirectional' | 'refiner'
    tau: float = 0.006               # m, residual scale of the score's kernel
    sample_px: float = 0.7           # model surface sample spacing, pixel footprints at the object's depth
    max_samples: int = 30000         # most model surface samples
    max_obs_points: int = 3000       # most observed points (evenly subsampled)
    pca_inits: bool = True           # also refine from the 4 principal-axis alignments


class ObjectScaleError(ValueError):
    """The scale cannot be estimated (empty mask, no valid depth, degenerate mesh, bad input)."""


@dataclasses.dataclass
class ScaleCandidate:
    scale: float                   # metres per mesh unit
    score: float                   # the score used for the choice (see ``ScaleResult.score_kind``)
    fit: float                     # observed points explained by the model (bidirectional term)
    coverage: float                # visible model samples explained by the observation
    refiner_score: float           # the refiner's own score (nan when it gives none)
    refiner_valid: bool
    T_camera_object: np.ndarray    # (4, 4) pose of scale_mesh(mesh, scale)
    stage: str                     # 'coarse' | 'extend' | 'fine' | 'interp' | 'given'
    seconds: float


@dataclasses.dataclass
class ScaleResult:
    scale: float
    T_camera_object: np.ndarray
    score: float
    initial_scale: float           # the guess the grid was centred on (nan when candidates given)
    candidates: list[ScaleCandidate]
    score_kind: str
    seconds: float

    @property
    def table(self) -> list[tuple[float, float]]:
        """(scale, score) of every candidate, sorted by scale."""
        return sorted((c.scale, c.score) for c in self.candidates)

    @property
    def best(self) -> ScaleCandidate:
        return max(self.candidates, key=_key)


def _key(c: ScaleCandidate) -> tuple[float, float]:
    s = c.score if math.isfinite(c.score) else -math.inf
    return (s, c.fit if math.isfinite(c.fit) else -math.inf)


# ------------------------------------------------------------------------------ helpers
def scale_mesh(mesh, scale: float):
    """A copy of ``mesh`` scaled by ``scale`` about its own origin (metadata copied as is)."""
    if not (math.isfinite(scale) and scale > 0):
        raise ObjectScaleError(f'scale must be finite and > 0, got {scale}')
    m = mesh.copy()
    m.apply_scale(float(scale))
    return m


def _mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    V = np.asarray(getattr(mesh, 'vertices', ()), np.float64).reshape(-1, 3)
    F = np.asarray(getattr(mesh, 'faces', ()), np.int64).reshape(-1, 3)
    if len(V) < 3 or len(F) < 1 or not np.all(np.isfinite(V)):
        raise ObjectScaleError('the mesh has no finite triangles')
    if not float(np.max(np.ptp(V, axis=0))) > 0:
        raise ObjectScaleError('the mesh has zero extent')
    return V, F


def observed_points(depth: np.ndarray, mask: np.ndarray, K: np.ndarray,
                    erode: bool = False) -> np.ndarray:
    """(M, 3) camera_optical points of the masked pixels with valid depth; erode: the mask
    eroded by 1 px first (against silhouette mixing) unless that leaves fewer than 25 pixels.
    The scale search uses the whole mask: erosion would shrink the outline by 1 px a side and
    bias the scale low."""
    d = np.asarray(depth, np.float64)
    m = np.asarray(mask, bool)
    if erode:
        inner = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if inner.sum() >= 25:
            m = inner
    return masked_depth_points(d, K, m)


def _robust_cloud(P: np.ndarray) -> np.ndarray:
    """Drop depth outliers (flying pixels, background leaking into the mask)."""
    z = P[:, 2]
    med = np.median(z)
    mad = max(1.4826 * float(np.median(np.abs(z - med))), 0.005)
    return P[np.abs(z - med) < 3 * mad + 0.02]


def principal_extents(P: np.ndarray, lo: float = 0.0, hi: float = 100.0) -> np.ndarray:
    """Extents along the principal axes (largest first), percentile lo..hi along each."""
    P = np.asarray(P, np.float64)
    c = P - P.mean(0)
    _, _, Vt = np.linalg.svd(c, full_matrices=False)
    proj = c @ Vt.T
    a, b = np.percentile(proj, [lo, hi], axis=0)
    return np.sort(b - a)[::-1]


def initial_scale_guess(cloud: np.ndarray, mesh_points: np.ndarray) -> float:
    """Largest principal extent of the observed cloud (2-98 %) / that of the mesh surface."""
    e_obs = principal_extents(cloud, 2.0, 98.0)[0]
    e_mesh = principal_extents(mesh_points)[0]
    if not (e_obs > 0 and e_mesh > 0):
        raise ObjectScaleError('zero extent: cannot guess a scale')
    return float(e_obs / e_mesh)


def _surface(V: np.ndarray, F: np.ndarray, spacing: float, max_points: int, seed: int = 0):
    """(points, face normals, mean spacing): area-uniform random surface samples, about one per
    spacing² of area (at most max_points), from a fixed seed (the same pattern at every scale).
    Uniform in area on purpose: a lattice with extra samples along the triangle edges would
    over-weight the outline, where the pixel quantisation of the observed mask lives."""
    tri = V[F]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    a2 = np.linalg.norm(n, axis=1)
    keep = a2 > 1e-14
    if not keep.any():
        raise ObjectScaleError('the mesh has no non-degenerate triangle')
    tri, n, a2 = tri[keep], n[keep] / a2[keep, None], a2[keep]
    area = 0.5 * float(a2.sum())
    count = int(min(max_points, max(100, math.ceil(area / spacing ** 2))))
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(a2)
    face = np.minimum(np.searchsorted(cdf, rng.random(count) * cdf[-1]), len(cdf) - 1)
    r1, r2 = rng.random(count), rng.random(count)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    t = tri[face]
    pts = t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])
    return pts, n[face], math.sqrt(area / count)


# ------------------------------------------------------------------------------ scoring
@dataclasses.dataclass
class _Obs:
    depth: np.ndarray              # float64, NaN where invalid
    mask: np.ndarray               # object mask
    mask_dil: np.ndarray           # object mask dilated by 1 px
    dist_out: np.ndarray           # float32 distance (px) of every pixel to the nearest mask pixel
    occ_ok: np.ndarray | None      # where an occluder may be (None: anywhere)
    Q: np.ndarray                  # observed object points (subsampled)
    K: np.ndarray

    @property
    def Q_uv(self) -> np.ndarray:
        """(M, 2) pixel coordinates of Q (their pixel centres)."""
        uvw = self.Q @ self.K.T
        return uvw[:, :2] / uvw[:, 2:]


def _sample_depth(depth: np.ndarray, region: np.ndarray, uf: np.ndarray, vf: np.ndarray,
                  lin: np.ndarray) -> np.ndarray:
    """Observed depth at sub-pixel positions: bilinear where the 4 neighbouring pixels are valid
    and on the same side of the object mask (``region``) as the nearest pixel, else the nearest
    pixel's value (NaN when invalid). Removes most of the in-pixel depth change of sloped
    surfaces from the residual without mixing object and background depths at silhouettes."""
    H, W = depth.shape
    near = depth.ravel()[lin]
    r_near = region.ravel()[lin]
    u0 = np.clip(np.floor(uf).astype(np.int64), 0, W - 2)
    v0 = np.clip(np.floor(vf).astype(np.int64), 0, H - 2)
    a = np.clip(uf - u0, 0.0, 1.0)
    b = np.clip(vf - v0, 0.0, 1.0)
    same = ((region[v0, u0] == r_near) & (region[v0, u0 + 1] == r_near)
            & (region[v0 + 1, u0] == r_near) & (region[v0 + 1, u0 + 1] == r_near))
    d00, d01 = depth[v0, u0], depth[v0, u0 + 1]
    d10, d11 = depth[v0 + 1, u0], depth[v0 + 1, u0 + 1]
    bil = (1 - b) * ((1 - a) * d00 + a * d01) + b * ((1 - a) * d10 + a * d11)
    return np.where(same & np.isfinite(bil), bil, near)


def _bilinear(img: np.ndarray, uf: np.ndarray, vf: np.ndarray) -> np.ndarray:
    H, W = img.shape
    u0 = np.clip(np.floor(uf).astype(np.int64), 0, W - 2)
    v0 = np.clip(np.floor(vf).astype(np.int64), 0, H - 2)
    a = np.clip(uf - u0, 0.0, 1.0)
    b = np.clip(vf - v0, 0.0, 1.0)
    return ((1 - b) * ((1 - a) * img[v0, u0] + a * img[v0, u0 + 1])
            + b * ((1 - a) * img[v0 + 1, u0] + a * img[v0 + 1, u0 + 1]))


def _kernel(r: np.ndarray, tau: float) -> np.ndarray:
    """Soft inlier weight 1 − (r/τ)² for r < τ, else 0 (a residual of τ/2 counts 3/4)."""
    return np.clip(1.0 - (np.asarray(r, np.float64) / tau) ** 2, 0.0, None)


def _signed_outline_distance(uv_tri: np.ndarray, at: np.ndarray, ss: int = SUPERSAMPLE) -> np.ndarray:
    """Signed distance (px; > 0 outside) of the points ``at`` (N, 2) to the outline of the
    model's silhouette: the union of its projected triangles ``uv_tri`` (T, 3, 2), filled on an
    ``ss`` x supersampled raster (fixed-point sub-pixel vertices)."""
    lo = np.floor(np.minimum(uv_tri.reshape(-1, 2).min(0), at.min(0))) - 2
    hi = np.ceil(np.maximum(uv_tri.reshape(-1, 2).max(0), at.max(0))) + 2
    w, h = (int(x) for x in (hi - lo) * ss + 1)
    img = np.zeros((h, w), np.uint8)
    shift = 4                                           # 1/16 of a raster cell
    pix = np.rint(((uv_tri - lo) * ss + 0.0) * (1 << shift)).astype(np.int32)
    for tri in pix:
        cv2.fillConvexPoly(img, tri, 1, cv2.LINE_8, shift)
    d_out = cv2.distanceTransform((1 - img).astype(np.uint8), cv2.DIST_L2, 5)
    d_in = cv2.distanceTransform(img, cv2.DIST_L2, 5)
    sd = np.where(img > 0, 0.5 - d_in, d_out - 0.5) / ss
    iu = np.clip(np.rint((at[:, 0] - lo[0]) * ss).astype(np.int64), 0, w - 1)
    iv = np.clip(np.rint((at[:, 1] - lo[1]) * ss).astype(np.int64), 0, h - 1)
    return sd[iv, iu]


def bidirectional_score(obs: _Obs, pts: np.ndarray, nrm: np.ndarray, tri: np.ndarray,
                        T: np.ndarray, tau: float, spacing: float) -> tuple[float, float, float, int]:
    """(score, fit, coverage, n_visible) of the model at pose T: surface samples ``pts``/``nrm``
    and triangles ``tri`` (T, 3, 3), object frame, already scaled; samples ``spacing`` m apart.
    See the module doc."""
    if not np.all(np.isfinite(T)):
        return 0.0, 0.0, 0.0, 0
    R, t = T[:3, :3], T[:3, 3]
    H, W = obs.depth.shape
    # ---- the model's camera-visible samples: back faces culled, point z-buffer
    pc = pts @ R.T + t
    nc = nrm @ R.T
    front = (np.einsum('ij,ij->i', nc, -pc) > 0) & (pc[:, 2] > 1e-3)
    pc = pc[front]
    uvw = pc @ obs.K.T
    uf, vf = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    u, v = np.floor(uf + 0.5), np.floor(vf + 0.5)
    inimg = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    u, v, z = u[inimg].astype(np.int64), v[inimg].astype(np.int64), pc[inimg, 2]
    uf, vf = uf[inimg], vf[inimg]
    lin = v * W + u
    zbuf = np.full(H * W, np.inf)
    np.minimum.at(zbuf, lin, z)
    vis = z <= zbuf[lin] + tau                       # self-occlusion by the model's own front
    lin, z, uf, vf = lin[vis], z[vis], uf[vis], vf[vis]
    if len(lin) == 0:
        return 0.0, 0.0, 0.0, 0

    # ---- fit: observed points -> model
    # depth: soft kernel of the point-to-plane residual to the nearest model sample (3D);
    # outline: each observed pixel stands for its 1 px cell, and the part of that cell outside
    # the model's projected outline (signed distance of its centre past the outline + 0.5,
    # clipped to [0, 1]) is unexplained
    tree = cKDTree(pts)
    q = (obs.Q - t) @ R                              # = R^T (Q - t)
    dist, idx = tree.query(q, distance_upper_bound=tau + spacing)
    near = np.isfinite(dist)
    w_depth = np.zeros(len(q))
    if near.any():
        diff = q[near] - pts[idx[near]]
        w_depth[near] = _kernel(np.abs(np.einsum('ij,ij->i', diff, nrm[idx[near]])), tau)
    tc = tri @ R.T + t
    tc = tc[np.all(tc[:, :, 2] > 1e-3, axis=1)]
    tuv = tc @ obs.K.T
    x = _signed_outline_distance(tuv[:, :, :2] / tuv[:, :, 2:], obs.Q_uv)
    fit = float(np.mean(w_depth * (1.0 - np.clip(x + 0.5, 0.0, 1.0))))

    # ---- coverage: visible model samples -> observation
    d = _sample_depth(obs.depth, obs.mask, uf, vf, lin)
    m = obs.mask_dil.ravel()[lin]
    valid = np.isfinite(d)
    explained = valid & m & (np.abs(d - z) < tau)
    occluded = valid & ~m & (d < z - tau)
    if obs.occ_ok is not None:
        occluded &= obs.occ_ok.ravel()[lin]
    ignored = occluded | (~valid & m)                # hidden by an occluder / no depth on the object
    # the samples whose pixel is off the mask and not explained count in full: the union of the
    # mask's 1 px cells stands for the object's outline (area-unbiased), as in the fit term
    n_vis = int(np.count_nonzero(~ignored))
    coverage = (float(np.sum(_kernel(np.abs(d[explained] - z[explained]), tau))) / n_vis
                if n_vis else 0.0)
    score = 2 * fit * coverage / (fit + coverage) if fit + coverage > 0 else 0.0
    return score, fit, coverage, n_vis


def _observation(d: np.ndarray, m: np.ndarray, K: np.ndarray, occluder_mask, max_obs_points: int):
    """(_Obs, all robust observed points) from validated depth / mask / K."""
    P = observed_points(d, m, K)
    if len(P) < 25:
        raise ObjectScaleError(f'{len(P)} object pixel(s) with valid depth (need 25)')
    P = _robust_cloud(P)
    if len(P) < 25:
        raise ObjectScaleError(f'{len(P)} object points left after outlier removal (need 25)')
    Q = P if len(P) <= max_obs_points else P[np.linspace(0, len(P) - 1, max_obs_points).astype(int)]
    with np.errstate(invalid='ignore'):
        d_valid = np.where(np.isfinite(d) & (d > 0), d, np.nan)
    k3 = np.ones((3, 3), np.uint8)
    mask_dil = cv2.dilate(m.astype(np.uint8), k3).astype(bool)
    dist_out = cv2.distanceTransform((~m).astype(np.uint8), cv2.DIST_L2, 5)
    occ = None if occluder_mask is None else np.asarray(occluder_mask, bool)
    if occ is not None and occ.shape != m.shape:
        raise ObjectScaleError(f'occluder_mask {occ.shape} and mask {m.shape} differ in shape')
    return _Obs(d_valid, m, mask_dil, dist_out, occ, Q, K), P


def _check_inputs(depth, mask, K):
    if depth is None:
        raise ObjectScaleError('the scale search needs a depth image (metric, e.g. B.2-rescaled)')
    d = np.asarray(depth, np.float64)
    if d.ndim != 2:
        raise ObjectScaleError(f'depth must be (H, W), got {d.shape}')
    m = np.asarray(mask, bool)
    if m.shape != d.shape:
        raise ObjectScaleError(f'mask {m.shape} and depth {d.shape} differ in shape')
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3) or not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ObjectScaleError(f'bad intrinsics {K.tolist()}')
    if not m.any():
        raise ObjectScaleError('the object mask is empty')
    return d, m, K


def score_pose(depth: np.ndarray, mask: np.ndarray, K: np.ndarray, mesh, T_camera_object: np.ndarray,
               *, occluder_mask: np.ndarray | None = None, config: ScaleSearchConfig | None = None,
               **overrides) -> tuple[float, float, float]:
    """(score, fit, coverage) of ``mesh`` (metric, as is) at ``T_camera_object`` against the
    observed depth and object mask: the scale-fair score of the module doc. config / keyword
    overrides: ScaleSearchConfig (tau, sample_px, max_samples, max_obs_points are used)."""
    cfg = configured(ScaleSearchConfig, config, overrides)
    tau, sample_px, max_samples, max_obs_points = cfg.tau, cfg.sample_px, cfg.max_samples, cfg.max_obs_points
    d, m, K = _check_inputs(depth, mask, K)
    V, F = _mesh_arrays(mesh)
    obs, P = _observation(d, m, K, occluder_mask, max_obs_points)
    spacing = sample_px * float(np.median(P[:, 2])) / max(K[0, 0], K[1, 1])
    pts, nrm, used = _surface(V, F, spacing, max_samples)
    s, fit, cov, _ = bidirectional_score(obs, pts, nrm, V[F], np.asarray(T_camera_object, np.float64),
                                         tau, used)
    return s, fit, cov


# ------------------------------------------------------------------------------ search
def pca_initial_poses(cloud: np.ndarray, pts: np.ndarray, nrm: np.ndarray) -> list[np.ndarray]:
    """The 4 proper rotations that map the model's principal axes (of its surface samples
    ``pts``) onto the observed cloud's, largest to largest (sign flips with det = +1); each
    translated so that the centroid of the model's camera-facing samples meets the cloud's
    centroid. A second start for refiners whose register() only tries camera-aligned
    orientations (IcpRefiner): a flat or elongated object seen by a tilted camera."""
    c_obs, c_mod = cloud.mean(0), pts.mean(0)
    _, _, Vo = np.linalg.svd(cloud - c_obs, full_matrices=False)
    _, _, Vm = np.linalg.svd(pts - c_mod, full_matrices=False)
    Eo, Em = Vo.T, Vm.T                                # columns: principal axes, largest first
    out = []
    for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        S = np.diag([sx, sy, 1.0])
        R = Eo @ S @ Em.T
        if np.linalg.det(R) < 0:
            R = Eo @ np.diag([sx, sy, -1.0]) @ Em.T
        t = c_obs - R @ c_mod
        pc = pts @ R.T + t
        front = np.einsum('ij,ij->i', nrm @ R.T, -pc) > 0
        if front.any():
            t = t + (c_obs - pc[front].mean(0))
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = R, t
        out.append(T)
    return out


def geometric_grid(centre: float, span: float, n: int) -> np.ndarray:
    """n scales from centre/span to centre·span, equally spaced in log (n = 1: [centre])."""
    if n <= 1:
        return np.array([float(centre)])
    return float(centre) * np.exp(np.linspace(-math.log(span), math.log(span), int(n)))


def _rescaled_pose(T: np.ndarray, s_from: float, s_to: float, centre_unit: np.ndarray) -> np.ndarray:
    """Pose for the mesh scaled by s_to that keeps the bounding-box centre where the mesh scaled
    by s_from had it under T."""
    T2 = np.array(T, np.float64, copy=True)
    T2[:3, 3] = T[:3, 3] + T[:3, :3] @ (centre_unit * (s_from - s_to))
    return T2


def _parabola_vertex(x: np.ndarray, y: np.ndarray) -> float | None:
    """Abscissa of the vertex of the parabola through 3 points (x increasing), if it is a
    maximum strictly between the outer two; else None."""
    if not np.all(np.isfinite(y)):
        return None
    A = np.stack([x * x, x, np.ones(3)], axis=1)
    try:
        a, b, _ = np.linalg.solve(A, y)
    except np.linalg.LinAlgError:
        return None
    if not a < 0:
        return None
    xs = -b / (2 * a)
    return float(xs) if x[0] < xs < x[2] else None


def estimate_object_scale(refiner, rgb: np.ndarray | None, depth: np.ndarray, mask: np.ndarray,
                          mesh, K: np.ndarray, candidates: Sequence[float] | None = None, *,
                          occluder_mask: np.ndarray | None = None, initial_scale: float | None = None,
                          config: ScaleSearchConfig | None = None, **overrides) -> ScaleResult:
    """Any6D-style scale search (see the module doc). Returns the best-scoring candidate.

    refiner: a PoseRefiner (register / refine); rgb: (H, W, 3) uint8 (passed to the refiner;
    IcpRefiner ignores it); depth: (H, W) metres (metric, e.g. B.2-rescaled VGGT depth);
    mask: (H, W) bool object mask; mesh: trimesh.Trimesh in its own (unscaled) frame;
    K: (3, 3). candidates: explicit scales (each registered; no guess, no fine pass).
    initial_scale: centre of the coarse grid instead of the extent-ratio guess.
    pca_inits: besides ``register``, refine every registered candidate from the 4 poses that
    align the model's principal axes with the observed cloud's (see ``pca_initial_poses``)
    and keep the best-scoring of the 5 poses.
    occluder_mask: (H, W) bool, where occluders (hands) may hide the object (None: anywhere).
    config: a ScaleSearchConfig (default: its defaults = config/perception.yaml [object_scale]);
    keyword overrides (its fields: n_coarse, span, n_fine, max_extend, score, tau, sample_px,
    max_samples, max_obs_points, pca_inits) replace its values.
    Raises ObjectScaleError on an empty mask, too few valid depth pixels in it, a degenerate mesh
    or bad options.
    """
    t_start = time.perf_counter()
    cfg = configured(ScaleSearchConfig, config, overrides)
    n_coarse, span, n_fine, max_extend, score = cfg.n_coarse, cfg.span, cfg.n_fine, cfg.max_extend, cfg.score
    tau, sample_px, max_samples, max_obs_points = cfg.tau, cfg.sample_px, cfg.max_samples, cfg.max_obs_points
    pca_inits = cfg.pca_inits
    if score not in SCORES:
        raise ObjectScaleError(f'score must be one of {SCORES}, got {score!r}')
    d, m, K = _check_inputs(depth, mask, K)
    if not (tau > 0 and span > 1 and sample_px > 0):
        raise ObjectScaleError('tau and sample_px must be > 0 and span > 1')
    V, F = _mesh_arrays(mesh)
    obs, P = _observation(d, m, K, occluder_mask, max_obs_points)
    # sample spacing in metres: sample_px pixel footprints at the object's median depth
    z_med = float(np.median(P[:, 2]))
    spacing_m = sample_px * z_med / max(K[0, 0], K[1, 1])
    unit_pts, _, _ = _surface(V, F, float(np.max(np.ptp(V, 0))) / 50.0, 20000)
    centre_unit = 0.5 * (V.min(0) + V.max(0))
    guess = float('nan')
    if candidates is None:
        guess = float(initial_scale) if initial_scale is not None else initial_scale_guess(P, unit_pts)
        if not (math.isfinite(guess) and guess > 0):
            raise ObjectScaleError(f'bad initial scale {guess}')

    done: dict[float, ScaleCandidate] = {}

    def evaluate(s: float, stage: str, T_init: np.ndarray | None = None) -> ScaleCandidate:
        s = float(s)
        key = round(s, 12)
        if key in done:
            return done[key]
        t0 = time.perf_counter()
        scaled = scale_mesh(mesh, s)
        pts, nrm, used = _surface(V * s, F, spacing_m, max_samples)
        tri = V[F] * s
        calls = [(lambda: refiner.register(rgb, d, m, scaled, K)) if T_init is None
                 else (lambda: refiner.refine(rgb, d, m, scaled, K, T_init))]
        if T_init is None and pca_inits:
            calls += [(lambda T0=T0: refiner.refine(rgb, d, m, scaled, K, T0))
                      for T0 in pca_initial_poses(P, pts, nrm)]
        tries = []
        for call in calls:
            try:
                tries.append(call())
            except StageFailure as e:            # this start failed; the others may not
                tries.append(PoseEstimate(np.full((4, 4), np.nan), float('nan'), False, str(e)))
        best = None
        for est in tries:
            T = np.asarray(est.T_camera_object, np.float64)
            b, fit, cov, _ = bidirectional_score(obs, pts, nrm, tri, T, tau, used)
            rs = float(est.score) if est.score is not None else float('nan')
            chosen = b if score == 'bidirectional' else (rs if np.all(np.isfinite(T)) else float('nan'))
            c = ScaleCandidate(s, float(chosen), fit, cov, rs, bool(est.valid), T, stage, 0.0)
            if best is None or _key(c) > _key(best):
                best = c
        best.seconds = time.perf_counter() - t0
        done[key] = best
        return best

    if candidates is not None:
        cands = [float(c) for c in candidates]
        if not cands or not all(math.isfinite(c) and c > 0 for c in cands):
            raise ObjectScaleError(f'candidates must be finite and > 0, got {cands}')
        for s in cands:
            evaluate(s, 'given')
    else:
        grid = list(geometric_grid(guess, span, n_coarse))
        step = (grid[1] / grid[0]) if len(grid) > 1 else span
        for s in grid:
            evaluate(s, 'coarse')
        for _ in range(max(0, int(max_extend))):
            order = sorted(done.values(), key=lambda c: c.scale)
            best = max(order, key=_key)
            if best is order[-1]:
                new = [best.scale * step ** i for i in (1, 2, 3)]
            elif best is order[0]:
                new = [best.scale / step ** i for i in (1, 2, 3)]
            else:
                break
            for s in new:
                evaluate(s, 'extend')
        if n_fine > 0 and len(done) > 1:
            best = max(done.values(), key=_key)
            order = sorted(done.values(), key=lambda c: c.scale)
            i = order.index(best)
            lo = order[i - 1].scale if i > 0 else best.scale / step
            hi = order[i + 1].scale if i + 1 < len(order) else best.scale * step
            fine = [best.scale * (lo / best.scale) ** (j / (n_fine + 1)) for j in range(n_fine, 0, -1)]
            fine += [best.scale * (hi / best.scale) ** (j / (n_fine + 1)) for j in range(1, n_fine + 1)]
            T_best, s_best = best.T_camera_object, best.scale
            if np.all(np.isfinite(T_best)):
                for s in fine:
                    evaluate(s, 'fine', _rescaled_pose(T_best, s_best, s, centre_unit))

        if n_fine > 0 and len(done) > 2:
            # parabola through the best and its two neighbours (in log scale): one more refine
            order = sorted(done.values(), key=lambda c: c.scale)
            best = max(order, key=_key)
            i = order.index(best)
            if 0 < i < len(order) - 1 and np.all(np.isfinite(best.T_camera_object)):
                x = np.log([order[i - 1].scale, best.scale, order[i + 1].scale])
                y = np.array([order[i - 1].score, best.score, order[i + 1].score])
                x_star = _parabola_vertex(x, y)
                if x_star is not None:
                    evaluate(math.exp(x_star), 'interp',
                             _rescaled_pose(best.T_camera_object, best.scale, math.exp(x_star),
                                            centre_unit))

    cands_out = sorted(done.values(), key=lambda c: c.scale)
    best = max(cands_out, key=_key)
    if not (math.isfinite(best.score) and np.all(np.isfinite(best.T_camera_object))):
        raise ObjectScaleError('no candidate scale produced a pose (the refiner failed on all)')
    return ScaleResult(scale=best.scale, T_camera_object=best.T_camera_object, score=best.score,
                       initial_scale=guess, candidates=cands_out, score_kind=score,
                       seconds=time.perf_counter() - t_start)
