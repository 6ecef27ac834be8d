"""Object-pose metrics of the DexMan paper (appendix B.6): ADD-S AUC, VSD, failure rate, stability.

ROS-free, numpy/scipy only. All poses are 4x4 homogeneous `T_world_object` matrices (metres,
radians), trajectories are (N, 4, 4) arrays of N frames.

What the paper defines, and how it is implemented here
------------------------------------------------------
Alignment (B.6 "Setup"). ΔR = R1* R1ᵀ, Δt = t1* − ΔR t1, T̃_i = [ΔR R_i | ΔR t_i + Δt], all in the
world frame. Choice: "frame 1" is the first frame whose prediction is valid (usually index 0); the
index used is reported as `align_frame`. A trajectory with no valid frame is not aligned at all.

Validity of a predicted frame. Invalid when the predictor flagged it invalid (`pred_valid`
False, which includes a frame the prediction file lacks), when the pose has NaN/inf, when the
last row is not [0 0 0 1] (tolerance 1e-6) or the rotation block is not a rotation:
max|RᵀR − I| > 1e-3 or |det R − 1| > 1e-3 (`ROTATION_TOL`). A frame whose ground truth is not
finite is invalid too. Invalid frames are failures everywhere:
  * ADD-S: d = +inf, i.e. a failure at every threshold (counted in the AUC's 1/T); the mean
    ADD-S distance `add_s_mean_m` is over valid frames only.
  * VSD: s = 0 (counted in the AUC's 1/L).
  * failure rate: counted as a failure.
  * stability: pairs with an invalid frame are skipped (the paper averages "over i").

ADD-S. d = mean_i min_j ||(R̃ x_i + t̃) − (R* x_j + t*)||, computed as a nearest-neighbour query
of R*ᵀ(R̃ x_i + t̃ − t*) in a cKDTree of the model points (one tree for the whole trajectory).
The model is deterministically subsampled to at most `ADD_S_MAX_POINTS` = 5000 points
(numpy Generator seed 0, choice without replacement, order kept); both sides use the same
subsample (the paper uses one set M on both sides). AUC: (1/0.1) ∫_0^0.1 (1/T) Σ_t 1(d_t ≤ τ) dτ;
the exact integral is mean_t clip(1 − d_t/0.1, 0, 1) (`auc_add_s(..., n_samples=None)`, the figure
reported); the "thresholds sampled uniformly" version uses the midpoints of n equal bins
(`n_samples=n`) and agrees with the closed form within 0.5/n.

VSD. The model's surface points (dense, deterministic, see `sample_surface`: a lattice on every
triangle; `choose_render_spacing` sets the spacing to 0.7 x the pixel footprint z_near/f at the
nearest depth the object reaches in the ground truth, so that every pixel the surface covers gets a
sample (covering radius ≤ ~0.5 px); at most 300k points, the spacing grows beyond that) are
projected under T̃ with K and T_world_camera; pixel = round(K X / Z) (pixel centres at integer coordinates, K of
the ground-truth record), points with Z ≤ 1 mm or outside the image are dropped; per pixel the
smallest Z is the "rendered depth" z (a point z-buffer). Optionally (outward normals given, i.e. a
closed, consistently wound mesh) back-facing points are culled first, so that a sampling hole can
never show the far side of the object. Ω_vis = pixels with a rendered z, M = 1 and D > 0 (finite).
s = |{|z − D| < δ}| / |Ω_vis|, δ = 0.02 m. Choices:
  * Ω_vis empty while the prediction is valid (the projection misses the visible object, or is
    behind the camera / out of the image): s = 0, counted in `n_vsd_no_overlap`.
  * Frames "filtered" by the paper (missing mask or invalid depth): the observed mask is empty, or
    no mask pixel has a finite depth > 0. They are excluded from the VSD and failure-rate
    denominators (reported as `n_filtered`); ADD-S and stability still use them.
  * Note that, as defined, s only looks at pixels where the prediction and the observed object
    overlap: a purely lateral offset of a fronto-parallel plate keeps s = 1 (the IoU catches it).
AUC over score thresholds τ ∈ [0.1, 0.5]: exact value mean_i clip(s_i − 0.1, 0, 0.4)/0.4
(`n_samples` gives the sampled version). Success rate: fraction of the
non-filtered frames with s > 0.3 (strict, as written). This is the paper's own simplified VSD,
not the BOP VSD of Hodaň et al. (no visibility masks of the estimate, no τ sweep of δ).

Failure rate. Silhouette = pixels hit by a projected surface point (same projection as VSD, no
culling effect on a closed surface), dilated once with the 3x3 plus (cross) element; IoU with the
observed mask M (the visible mask, so occlusion lowers the IoU, as in the paper). Failure =
invalid or IoU < 0.1; rate = failures / non-filtered frames. Needs masks only (depth only for the
filtering); VSD needs depth and masks. Missing images → the figure is None with the reason in
`unavailable`, never a made-up number.

Temporal stability. ΔT*_i = (T*_i)⁻¹ T*_{i+1}, ΔT̃_i = T̃_i⁻¹ T̃_{i+1} (the alignment cancels here),
e_trans = ||Δt̃ − Δt*||, e_rot = the rotation angle of ΔR̃ ΔR*ᵀ in [0, π],
s = ½ exp(−e_trans/0.01) + ½ exp(−e_rot/0.1); mean and population std (ddof 0) over the pairs of
consecutive evaluated frames where both predictions are valid.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from dexman_common.camera import project_points
from dexman_common.geometry import invert_transform as rigid_inverse  # noqa: F401 (public name)
from dexman_common.geometry import rotation_angle_between
from dexman_common.mesh_sampling import sample_surface  # noqa: F401 (public name)

ADD_S_MAX_THRESHOLD = 0.10      # m, τ range [0, 0.10]
ADD_S_MAX_POINTS = 5000         # model points used by ADD-S (deterministic subsample)
VSD_DELTA = 0.02                # m
VSD_TAU_MIN, VSD_TAU_MAX = 0.1, 0.5
VSD_SUCCESS_THRESHOLD = 0.3     # success: s_VSD > 0.3
IOU_FAILURE_THRESHOLD = 0.1
STAB_TRANS_SCALE = 0.01         # m
STAB_ROT_SCALE = 0.1            # rad
ROTATION_TOL = 1e-3
NEAR_PLANE = 1e-3               # m, points closer than this to the camera plane are dropped
RENDER_SPACING_FACTOR = 0.7     # surface sample spacing = 0.7 x pixel footprint at the nearest depth
from dexman_common.mesh_sampling import RENDER_MAX_POINTS  # noqa: E402,F401 (public name)


# --------------------------------------------------------------------------- basics
def is_valid_pose(T: np.ndarray, tol: float = ROTATION_TOL) -> np.ndarray:
    """(...,4,4) -> (...) bool: finite, last row [0 0 0 1], rotation block a proper rotation."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape[-2:] != (4, 4):
        raise ValueError(f'poses must be (..., 4, 4), got {T.shape}')
    finite = np.all(np.isfinite(T), axis=(-2, -1))
    Ts = np.where(finite[..., None, None], T, np.eye(4))
    R = Ts[..., :3, :3]
    ortho = np.max(np.abs(np.swapaxes(R, -1, -2) @ R - np.eye(3)), axis=(-2, -1)) <= tol
    det = np.abs(np.linalg.det(R) - 1.0) <= tol
    last = np.max(np.abs(Ts[..., 3, :] - np.array([0.0, 0.0, 0.0, 1.0])), axis=-1) <= 1e-6
    return finite & ortho & det & last


def alignment_transform(T_gt_first: np.ndarray, T_pred_first: np.ndarray) -> np.ndarray:
    """The 4x4 A = [ΔR | Δt] with ΔR = R1* R1ᵀ, Δt = t1* − ΔR t1, so that T̃_i = A T_i."""
    R1s, t1s = T_gt_first[:3, :3], T_gt_first[:3, 3]
    R1, t1 = T_pred_first[:3, :3], T_pred_first[:3, 3]
    dR = R1s @ R1.T
    A = np.eye(4)
    A[:3, :3] = dR
    A[:3, 3] = t1s - dR @ t1
    return A


def align_to_first_frame(gt_poses: np.ndarray, pred_poses: np.ndarray,
                         valid: np.ndarray | None = None) -> tuple[np.ndarray, int | None]:
    """T̃_i = [ΔR R_i | ΔR t_i + Δt] anchored at the first valid frame (index returned; None and an
    unchanged copy when no frame is valid). Invalid frames are transformed too but mean nothing."""
    gt_poses = np.asarray(gt_poses, np.float64)
    pred_poses = np.asarray(pred_poses, np.float64)
    if valid is None:
        valid = is_valid_pose(pred_poses)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return pred_poses.copy(), None
    a = int(idx[0])
    A = alignment_transform(gt_poses[a], pred_poses[a])
    with np.errstate(invalid='ignore', over='ignore'):
        return np.einsum('ij,njk->nik', A, pred_poses), a


# --------------------------------------------------------------------------- ADD-S
def subsample_points(points: np.ndarray, max_points: int | None = ADD_S_MAX_POINTS,
                     seed: int = 0) -> np.ndarray:
    points = np.asarray(points, np.float64).reshape(-1, 3)
    if max_points is None or len(points) <= max_points:
        return points
    idx = np.sort(np.random.default_rng(seed).choice(len(points), size=max_points, replace=False))
    return points[idx]


def add_s_distances(gt_poses: np.ndarray, pred_poses: np.ndarray, model_points: np.ndarray,
                    valid: np.ndarray | None = None,
                    max_points: int | None = ADD_S_MAX_POINTS) -> np.ndarray:
    """(N,) ADD-S distance per frame in metres (NaN where invalid). Poses are used as given (pass
    the aligned T̃ for the paper's figure)."""
    from scipy.spatial import cKDTree
    gt_poses = np.asarray(gt_poses, np.float64).reshape(-1, 4, 4)
    pred_poses = np.asarray(pred_poses, np.float64).reshape(-1, 4, 4)
    n = len(gt_poses)
    if valid is None:
        valid = is_valid_pose(pred_poses) & is_valid_pose(gt_poses)
    X = subsample_points(model_points, max_points)
    d = np.full(n, np.nan)
    idx = np.flatnonzero(valid)
    if idx.size == 0 or len(X) == 0:
        return d
    tree = cKDTree(X)
    # model under T̃ expressed in the ground-truth object frame: R*ᵀ(R̃ x + t̃ − t*)
    Rs = gt_poses[idx, :3, :3]
    M = np.swapaxes(Rs, 1, 2) @ pred_poses[idx, :3, :3]
    c = np.einsum('nji,nj->ni', Rs, pred_poses[idx, :3, 3] - gt_poses[idx, :3, 3])
    chunk = max(1, 500_000 // len(X))
    for s in range(0, idx.size, chunk):
        Y = np.einsum('nij,pj->npi', M[s:s + chunk], X) + c[s:s + chunk, None, :]
        dist, _ = tree.query(Y.reshape(-1, 3))
        d[idx[s:s + chunk]] = dist.reshape(-1, len(X)).mean(axis=1)
    return d


def add_distances(gt_poses: np.ndarray, pred_poses: np.ndarray, model_points: np.ndarray) -> np.ndarray:
    """(N,) plain ADD (point-to-same-point) distance, for comparison with ADD-S."""
    X = np.asarray(model_points, np.float64).reshape(-1, 3)
    gt_poses = np.asarray(gt_poses, np.float64).reshape(-1, 4, 4)
    pred_poses = np.asarray(pred_poses, np.float64).reshape(-1, 4, 4)
    a = np.einsum('nij,pj->npi', pred_poses[:, :3, :3], X) + pred_poses[:, None, :3, 3]
    b = np.einsum('nij,pj->npi', gt_poses[:, :3, :3], X) + gt_poses[:, None, :3, 3]
    return np.linalg.norm(a - b, axis=-1).mean(axis=1)


def auc_add_s(distances: np.ndarray, max_threshold: float = ADD_S_MAX_THRESHOLD,
              n_samples: int | None = None) -> float:
    """Normalised area under the success-rate curve over τ ∈ [0, max_threshold].

    NaN/inf distances (invalid frames) fail at every threshold. n_samples=None: the exact integral
    mean clip(1 − d/max, 0, 1); an int: thresholds at the midpoints of n_samples equal bins."""
    d = np.asarray(distances, np.float64).ravel()
    if d.size == 0:
        return float('nan')
    d = np.where(np.isfinite(d), d, np.inf)
    if n_samples is None:
        return float(np.mean(np.clip(1.0 - d / max_threshold, 0.0, 1.0)))
    taus = (np.arange(n_samples) + 0.5) * (max_threshold / n_samples)
    return float(np.mean(d[None, :] <= taus[:, None]))


# --------------------------------------------------------------------------- VSD
def auc_vsd(scores: np.ndarray, tau_min: float = VSD_TAU_MIN, tau_max: float = VSD_TAU_MAX,
            n_samples: int | None = None) -> float:
    """(1/(τmax−τmin)) ∫ (1/L) Σ 1(s_i ≥ τ) dτ; exact: mean clip(s − τmin, 0, τmax − τmin)/(τmax − τmin).
    NaN scores count as 0."""
    s = np.nan_to_num(np.asarray(scores, np.float64).ravel(), nan=0.0)
    if s.size == 0:
        return float('nan')
    w = tau_max - tau_min
    if n_samples is None:
        return float(np.mean(np.clip(s - tau_min, 0.0, w) / w))
    taus = tau_min + (np.arange(n_samples) + 0.5) * (w / n_samples)
    return float(np.mean(s[None, :] >= taus[:, None]))


def vsd_score(rendered_depth: np.ndarray, depth: np.ndarray, mask: np.ndarray,
              delta: float = VSD_DELTA) -> tuple[float, int]:
    """(s_VSD, N_v). rendered_depth: (H, W), 0 where no model point projects. s = NaN when N_v = 0."""
    D = np.asarray(depth)
    with np.errstate(invalid='ignore'):
        omega = (rendered_depth > 0) & np.asarray(mask, bool) & np.isfinite(D) & (D > 0)
    nv = int(np.count_nonzero(omega))
    if nv == 0:
        return float('nan'), 0
    ok = np.abs(rendered_depth[omega] - D[omega]) < delta
    return float(np.count_nonzero(ok)) / nv, nv


# --------------------------------------------------------------------------- projection
def render_point_depth(points: np.ndarray, T_world_object: np.ndarray, K: np.ndarray,
                       T_world_camera: np.ndarray, height: int, width: int,
                       normals: np.ndarray | None = None) -> np.ndarray:
    """Point z-buffer: (H, W) depth (metres along the optical axis), 0 where nothing projects.

    points/normals in the object frame. With normals, points whose normal faces away from the
    camera (n·(c − p) < 0) are culled first."""
    P = np.asarray(points, np.float64).reshape(-1, 3)
    T_co = rigid_inverse(np.asarray(T_world_camera, np.float64)) @ np.asarray(T_world_object, np.float64)
    if normals is not None:
        c_obj = rigid_inverse(T_co)[:3, 3]
        keep = np.einsum('pi,pi->p', np.asarray(normals, np.float64).reshape(-1, 3), c_obj - P) >= 0.0
        P = P[keep]
    pc = P @ T_co[:3, :3].T + T_co[:3, 3]
    pc = pc[pc[:, 2] > NEAR_PLANE]
    img = np.full(height * width, np.inf)
    if len(pc):
        u, v = np.floor(project_points(pc, K) + 0.5).T
        ok = (u >= 0) & (u < width) & (v >= 0) & (v < height)
        lin = v[ok].astype(np.int64) * width + u[ok].astype(np.int64)
        np.minimum.at(img, lin, pc[ok, 2])
    img[np.isinf(img)] = 0.0
    return img.reshape(height, width)


def cross_dilate(mask: np.ndarray) -> np.ndarray:
    """One dilation with the 3x3 plus-shaped (cross) structuring element."""
    m = np.asarray(mask, bool)
    out = m.copy()
    out[1:, :] |= m[:-1, :]
    out[:-1, :] |= m[1:, :]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def silhouette_iou(rendered_mask: np.ndarray, observed_mask: np.ndarray, dilate: bool = True) -> float:
    s = cross_dilate(rendered_mask) if dilate else np.asarray(rendered_mask, bool)
    m = np.asarray(observed_mask, bool)
    union = np.count_nonzero(s | m)
    return float(np.count_nonzero(s & m)) / union if union else 0.0


# --------------------------------------------------------------------------- surface samples
def choose_render_spacing(K: np.ndarray, gt_poses: np.ndarray, T_world_camera: np.ndarray,
                          model_points: np.ndarray, factor: float = RENDER_SPACING_FACTOR) -> float:
    """Sample spacing (m) = factor x the pixel footprint z_near / max(fx, fy) at the nearest depth the
    object reaches in the ground truth (origin depth minus the model's bounding radius, ≥ 5 cm)."""
    K = np.asarray(K, np.float64)
    radius = float(np.max(np.linalg.norm(np.asarray(model_points, np.float64).reshape(-1, 3), axis=1)))
    T_cw = rigid_inverse(np.asarray(T_world_camera, np.float64))
    origins = np.asarray(gt_poses, np.float64).reshape(-1, 4, 4)[:, :, 3]
    T_cw = np.broadcast_to(T_cw, (len(origins), 4, 4))
    z = np.einsum('nij,nj->ni', T_cw, origins)[:, 2]
    z_near = max(0.05, float(np.min(z)) - radius)
    return factor * z_near / max(K[0, 0], K[1, 1])


# --------------------------------------------------------------------------- stability
def temporal_stability(gt_poses: np.ndarray, pred_poses: np.ndarray,
                       valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores (P,), first frame index of each pair (P,)) over consecutive pairs with both valid."""
    gt_poses = np.asarray(gt_poses, np.float64).reshape(-1, 4, 4)
    pred_poses = np.asarray(pred_poses, np.float64).reshape(-1, 4, 4)
    if valid is None:
        valid = is_valid_pose(pred_poses)
    valid = np.asarray(valid, bool)
    i = np.flatnonzero(valid[:-1] & valid[1:])
    if i.size == 0:
        return np.zeros(0), i
    dgt = rigid_inverse(gt_poses[i]) @ gt_poses[i + 1]
    dpr = rigid_inverse(pred_poses[i]) @ pred_poses[i + 1]
    e_t = np.linalg.norm(dpr[:, :3, 3] - dgt[:, :3, 3], axis=1)
    e_r = rotation_angle_between(dpr[:, :3, :3], dgt[:, :3, :3])     # angle of ΔR̃ᵀ ΔR* (= of ΔR̃ ΔR*ᵀ)
    s = 0.5 * np.exp(-e_t / STAB_TRANS_SCALE) + 0.5 * np.exp(-e_r / STAB_ROT_SCALE)
    return s, i


# --------------------------------------------------------------------------- perturbation
def perturb_trajectory(poses: np.ndarray, trans_sigma_m: float, rot_sigma_rad: float, seed: int,
                       drift: float | tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """A noisy copy of (..., N, 4, 4) poses, for tests and benchmarks.

    Per frame k: T' = [I | w_k + k·d_t·a] · T · [exp(ω_k + k·d_r·b) | 0], with w_k ~ N(0, σ_t² I)
    (world frame), ω_k ~ N(0, σ_r² I) (object frame, rotation about the object origin), and a
    linear drift of d_t m/frame along a random unit direction a and d_r rad/frame about a random
    unit axis b (one a, b per trajectory). drift: d_t or (d_t, d_r). Deterministic in seed."""
    from scipy.spatial.transform import Rotation
    P = np.array(poses, np.float64)
    if P.shape[-2:] != (4, 4) or P.ndim < 3:
        raise ValueError(f'poses must be (..., N, 4, 4), got {P.shape}')
    dt, dr = (float(drift), 0.0) if np.isscalar(drift) else (float(drift[0]), float(drift[1]))
    rng = np.random.default_rng(seed)
    flat = P.reshape(-1, P.shape[-3], 4, 4)
    n = flat.shape[1]
    k = np.arange(n, dtype=np.float64)
    for traj in flat:
        w = rng.normal(0.0, trans_sigma_m, (n, 3)) if trans_sigma_m > 0 else np.zeros((n, 3))
        om = rng.normal(0.0, rot_sigma_rad, (n, 3)) if rot_sigma_rad > 0 else np.zeros((n, 3))
        a = rng.normal(size=3)
        b = rng.normal(size=3)
        a /= np.linalg.norm(a)
        b /= np.linalg.norm(b)
        w = w + k[:, None] * dt * a
        om = om + k[:, None] * dr * b
        dR = Rotation.from_rotvec(om).as_matrix()
        traj[:, :3, :3] = traj[:, :3, :3] @ dR
        traj[:, :3, 3] = traj[:, :3, 3] + w
    return flat.reshape(P.shape)


# --------------------------------------------------------------------------- everything
def evaluate_trajectory(gt_poses: np.ndarray, pred_poses: np.ndarray, pred_valid: np.ndarray | None,
                        model_points: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray,
                        depth: np.ndarray | None = None, masks: np.ndarray | None = None, *,
                        surface_points: np.ndarray | None = None,
                        surface_normals: np.ndarray | None = None,
                        add_s_max_points: int | None = ADD_S_MAX_POINTS,
                        per_frame: bool = False) -> dict[str, Any]:
    """All B.6 figures for one object's trajectory (N frames, world frame).

    gt_poses, pred_poses: (N, 4, 4) T_world_object. pred_valid: (N,) bool or None (all flagged
    valid). model_points: (P, 3) object-frame points for ADD-S. K: (3, 3). T_world_camera: (4, 4)
    or (N, 4, 4). depth: (N, H, W) metres (0 = no depth), masks: (N, H, W) bool observed visible
    masks. surface_points/normals: dense object-frame samples projected for VSD and the silhouette
    (default: model_points; normals enable back-face culling). Returns a dict of plain Python
    numbers (None where a figure cannot be computed, with the reason in `unavailable`)."""
    gt = np.asarray(gt_poses, np.float64)
    pred = np.asarray(pred_poses, np.float64)
    if gt.ndim != 3 or gt.shape[1:] != (4, 4):
        raise ValueError(f'gt_poses must be (N, 4, 4), got {gt.shape}')
    if pred.shape != gt.shape:
        raise ValueError(f'pred_poses has shape {pred.shape}, ground truth {gt.shape}')
    n = len(gt)
    flagged = np.ones(n, bool) if pred_valid is None else np.asarray(pred_valid, bool).reshape(-1)
    if flagged.shape != (n,):
        raise ValueError(f'pred_valid has shape {flagged.shape}, expected ({n},)')
    T_wc = np.asarray(T_world_camera, np.float64)
    if T_wc.shape == (4, 4):
        T_wc = np.broadcast_to(T_wc, (n, 4, 4))
    elif T_wc.shape != (n, 4, 4):
        raise ValueError(f'T_world_camera must be (4, 4) or ({n}, 4, 4), got {T_wc.shape}')
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise ValueError(f'K must be (3, 3), got {K.shape}')

    valid = flagged & is_valid_pose(pred) & np.all(np.isfinite(gt), axis=(1, 2))
    aligned, anchor = align_to_first_frame(gt, pred, valid)
    unavailable: dict[str, str] = {}
    res: dict[str, Any] = {'n_frames': n, 'n_valid': int(valid.sum()), 'n_invalid': int(n - valid.sum()),
                           'align_frame': anchor}

    # ADD-S
    d = add_s_distances(gt, aligned, model_points, valid, add_s_max_points)
    res['add_s_auc'] = auc_add_s(d) if n else None
    res['add_s_mean_m'] = float(np.nanmean(d)) if valid.any() else None
    if not valid.any():
        unavailable['add_s_mean_m'] = 'no valid predicted frame'

    # stability
    stab, pair_idx = temporal_stability(gt, aligned, valid)
    res['n_stability_pairs'] = int(stab.size)
    if stab.size:
        res['stability_mean'] = float(stab.mean())
        res['stability_std'] = float(stab.std())
    else:
        res['stability_mean'] = res['stability_std'] = None
        unavailable['stability_mean'] = unavailable['stability_std'] = \
            'no pair of consecutive frames with both predictions valid'

    # render metrics
    vsd = np.full(n, np.nan)
    iou = np.full(n, np.nan)
    filtered = np.zeros(n, bool)
    no_overlap = np.zeros(n, bool)
    have_masks = masks is not None
    have_depth = depth is not None
    if have_masks:
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[0] != n:
            raise ValueError(f'masks must be (N={n}, H, W), got {masks.shape}')
        h, w = masks.shape[1:]
        if have_depth:
            depth = np.asarray(depth)
            if depth.shape != masks.shape:
                raise ValueError(f'depth has shape {depth.shape}, masks {masks.shape}')
        sp = np.asarray(model_points if surface_points is None else surface_points, np.float64).reshape(-1, 3)
        sn = None if surface_normals is None else np.asarray(surface_normals, np.float64).reshape(-1, 3)
        if sn is not None and sn.shape != sp.shape:
            raise ValueError(f'surface_normals {sn.shape} do not match surface_points {sp.shape}')
        for i in range(n):
            M = masks[i].astype(bool, copy=False)
            if not M.any():
                filtered[i] = True
                continue
            if have_depth:
                Dm = depth[i][M]
                with np.errstate(invalid='ignore'):
                    if not np.any(np.isfinite(Dm) & (Dm > 0)):
                        filtered[i] = True
                        continue
            if not valid[i]:
                vsd[i], iou[i] = 0.0, 0.0
                continue
            z = render_point_depth(sp, aligned[i], K, T_wc[i], h, w, sn)
            iou[i] = silhouette_iou(z > 0, M)
            if have_depth:
                s, nv = vsd_score(z, depth[i], M)
                if nv == 0:
                    no_overlap[i] = True
                    s = 0.0
                vsd[i] = s
    used = ~filtered
    res['n_filtered'] = int(filtered.sum()) if have_masks else None
    if have_masks and used.any():
        fail = (~valid[used]) | (iou[used] < IOU_FAILURE_THRESHOLD)
        res['failure_rate'] = float(fail.mean())
        res['iou_mean'] = float(np.mean(iou[used]))
    else:
        res['failure_rate'] = res['iou_mean'] = None
        unavailable['failure_rate'] = unavailable['iou_mean'] = (
            'no observed masks given' if not have_masks else
            'every frame was filtered (empty observed mask or no valid depth)')
    if have_masks and have_depth and used.any():
        res['vsd_auc'] = auc_vsd(vsd[used])
        res['vsd_success_0p3'] = float(np.mean(vsd[used] > VSD_SUCCESS_THRESHOLD))
        res['vsd_mean'] = float(np.mean(vsd[used]))
        res['n_vsd_no_overlap'] = int(no_overlap.sum())
    else:
        res['vsd_auc'] = res['vsd_success_0p3'] = res['vsd_mean'] = res['n_vsd_no_overlap'] = None
        unavailable['vsd_auc'] = unavailable['vsd_success_0p3'] = unavailable['vsd_mean'] = (
            'no observed depth and masks given' if not (have_masks and have_depth) else
            'every frame was filtered (empty observed mask or no valid depth)')
    res['unavailable'] = unavailable
    if per_frame:
        stab_full = np.full(max(n - 1, 0), np.nan)
        stab_full[pair_idx] = stab
        res['per_frame'] = {
            'valid': valid.tolist(), 'add_s_m': _nan_to_none(d),
            'vsd': _nan_to_none(vsd) if have_masks and have_depth else None,
            'iou': _nan_to_none(iou) if have_masks else None,
            'filtered': filtered.tolist() if have_masks else None,
            'stability': _nan_to_none(stab_full),
        }
    return res


def _nan_to_none(a: np.ndarray) -> list:
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(a, np.float64).ravel()]
