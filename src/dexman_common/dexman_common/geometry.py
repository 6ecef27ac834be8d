"""Geometry shared by every stage: SE(3) helpers, least-squares rigid transforms (DexMan paper, B.3).

The paper (Appendix B.3) tracks 3D points of each object o with SpatialTracker and, for two
consecutive frames k-1 -> k with corresponding points P_{k-1}^o, P_k^o, computes

    ΔT_{k-1}^k = argmin_{ΔT ∈ SE(3)} || ΔT · P̄_{k-1}^o − P̄_k^o ||_F^2          (P̄: homogeneous)

with the Kabsch / Arun et al. (1987) SVD solution. ΔT applied to the previous pose gives the
initial guess that FoundationPose refines at frame k (Sec. 3.2):

    T_k^init = ΔT_{k-1}^k · T_{k-1}

Frames and units: metres, radians, right-handed (REP 103). Points and poses are expressed in
``camera_optical`` (OpenCV: z forward, x right, y down). A pose ``T_a_b`` is a 4x4 homogeneous
matrix mapping points in frame b to frame a, so for an object pose T_{k-1} = T_camera_object at
frame k-1 and points p_k = ΔT p_{k-1} of the object, T_k = ΔT · T_{k-1}.

Contents (the one implementation of each; every package imports these)
    fit_rigid_transform      weighted Kabsch/Arun, reflection-safe, degenerate-input detection
    ransac_rigid_transform   RANSAC over minimal 3-point samples (seeded, deterministic), then a
                             least-squares refit on the inliers
    (the B.3 tracking step built on these lives in dexman_perception.core.track_propagation)
    fit_plane / PlaneFit     total least-squares (SVD) plane, optionally oriented to a viewpoint
    SE(3) helpers            make_transform, invert_transform, compose_transforms, transform_points
    SO(3)                    axis_angle_from_rotation (log), rotation_from_axis_angle (exp),
                             rotation_angle / rotation_angle_between (matrices, vectorised),
                             quat_angle, quat_from_matrix, matrix_from_quat (either order),
                             vector_angle (between two directions)

Nothing here imports rclpy.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import numpy as np
from scipy.spatial.transform import Rotation

# A point set is "degenerate" (collinear or coincident) when its second-largest singular value
# (after centring) is below this fraction of the largest one. For < 3 points, or all points on one
# line, the rotation about that line is not determined.
COLLINEAR_RTOL = 1e-6
# Minimal RANSAC samples are rejected with a looser bound (nearly collinear triples amplify noise).
SAMPLE_COLLINEAR_RTOL = 1e-2


class RigidTransformError(ValueError):
    """The rigid transform is not determined by the input (too few, collinear, or bad points)."""


class DegenerateInputError(RigidTransformError):
    """Fewer than 3 usable points, or all usable points (nearly) on one line or at one place."""


# --------------------------------------------------------------------------------------------
# SE(3) helpers
# --------------------------------------------------------------------------------------------

def make_transform(R: np.ndarray | None = None, t: Sequence[float] | np.ndarray | None = None) -> np.ndarray:
    """4x4 homogeneous matrix [[R, t], [0, 1]] (R defaults to identity, t to zero)."""
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = np.asarray(R, dtype=float)
    if t is not None:
        T[:3, 3] = np.asarray(t, dtype=float).reshape(3)
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid transform (or a stack (..., 4, 4)): [[Rᵀ, −Rᵀt], [0, 1]]."""
    T = np.asarray(T, dtype=float)
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    Ti = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    Ti[..., :3, :3] = Rt
    Ti[..., :3, 3] = -np.einsum('...ij,...j->...i', Rt, t)
    Ti[..., 3, 3] = 1.0
    return Ti


def compose_transforms(*Ts: np.ndarray) -> np.ndarray:
    """T_1 · T_2 · ... · T_n (the rightmost applies first)."""
    out = np.eye(4)
    for T in Ts:
        out = out @ np.asarray(T, dtype=float)
    return out


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid transform to points (..., 3); NaN rows stay NaN."""
    T = np.asarray(T, dtype=float)
    P = np.asarray(points, dtype=float)
    return P @ T[:3, :3].T + T[:3, 3]


def _as_rotations(R, name: str = 'R') -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim < 2 or R.shape[-2:] != (3, 3):
        raise ValueError(f'{name} must have shape (..., 3, 3), got {R.shape}')
    return R


def _log_parts(R: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, sin θ, θ) of rotations (..., 3, 3): w = vee(R − Rᵀ) = 2 sin θ · axis, θ in [0, π]."""
    w = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0],
                  R[..., 1, 0] - R[..., 0, 1]], axis=-1)
    s = 0.5 * np.linalg.norm(w, axis=-1)
    c = 0.5 * (np.trace(R, axis1=-2, axis2=-1) - 1.0)
    return w, s, np.arctan2(s, c)


def _log_one(R: np.ndarray) -> tuple[tuple[float, float, float], float, float]:
    """_log_parts of one (3, 3) matrix in plain floats (no numpy overhead per element)."""
    (a, b, c), (d, e, f), (g, h, i) = R.tolist()
    w = (h - f, c - g, d - b)
    s = 0.5 * math.sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2])
    return w, s, math.atan2(s, 0.5 * (a + e + i - 1.0))


_NEAR_PI = np.pi - 1e-3     # above this angle the log's axis comes from scipy (see below)


def axis_angle_from_rotation(R: np.ndarray) -> np.ndarray:
    """SO(3) log: the axis-angle vector (unit axis times angle in [0, π]) of rotations (..., 3, 3).

    θ = atan2(|w|/2, (tr R − 1)/2) with w = vee(R − Rᵀ) (accurate at every angle, unlike
    arccos of the trace near 0 and π) and log R = θ / (2 sin θ) · w; 0.5 w below sin θ = 1e-12;
    within 1e-3 rad of π, where w no longer fixes the axis well, scipy's Rotation (exact there).
    Plain numpy / floats otherwise, far cheaper than scipy's from_matrix for one matrix (the wrist
    IK and the ICP call it per iteration).
    """
    R = _as_rotations(R)
    if R.shape == (3, 3):
        w, s, ang = _log_one(R)
        if ang > _NEAR_PI:
            return Rotation.from_matrix(R).as_rotvec()
        k = ang / (2.0 * s) if s > 1e-12 else 0.5
        return np.array([w[0] * k, w[1] * k, w[2] * k])
    w, s, ang = _log_parts(R)
    with np.errstate(divide='ignore', invalid='ignore'):
        scale = np.where(s > 1e-12, ang / (2.0 * s), 0.5)
    out = w * scale[..., None]
    near_pi = ang > _NEAR_PI
    if np.any(near_pi):
        out[near_pi] = Rotation.from_matrix(R[near_pi]).as_rotvec()
    return out


def rotation_from_axis_angle(rotvec: Sequence[float] | np.ndarray) -> np.ndarray:
    """SO(3) exp: rotation matrices (..., 3, 3) of axis-angle vectors (..., 3) (radians)."""
    v = np.asarray(rotvec, dtype=float)
    if v.ndim < 1 or v.shape[-1] != 3:
        raise ValueError(f'rotvec must have shape (..., 3), got {v.shape}')
    return Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix().reshape(v.shape[:-1] + (3, 3))


def rotation_angle(R: np.ndarray) -> float | np.ndarray:
    """Rotation angle in [0, π] (radians) of rotations (..., 3, 3): the geodesic distance to the
    identity, atan2(|vee(R − Rᵀ)|/2, (tr R − 1)/2). A float for one matrix, else an array."""
    R = _as_rotations(R)
    if R.shape == (3, 3):
        return _log_one(R)[2]
    return _log_parts(R)[2]


def rotation_angle_between(R1: np.ndarray, R2: np.ndarray) -> float | np.ndarray:
    """Geodesic angle (radians, [0, π]) of R1ᵀ R2: the rotation taking R1 to R2 (= that of
    R1 R2ᵀ, R2ᵀ R1, ...). Broadcasts over leading dimensions: (3, 3) against (N, 3, 3) gives (N,)."""
    R1 = _as_rotations(R1, 'R1')
    R2 = _as_rotations(R2, 'R2')
    return rotation_angle(np.swapaxes(R1, -1, -2) @ R2)


def quat_angle(q1: np.ndarray, q2: np.ndarray) -> np.ndarray:
    """Rotation angle (rad, in [0, π]) between quaternions q1, q2 (..., 4), broadcast.

    Any norm > 0 (normalised here; ValueError for a zero one, NaN out for a NaN one),
    sign-invariant (q ~ −q), and the same for (w, x, y, z) and (x, y, z, w) order: with unit a, b
    and b flipped so that a·b >= 0, θ = 4 atan2(|a − b|, |a + b|) (accurate also near 0 and π).
    Returns an array of shape (...)."""
    a, b = np.broadcast_arrays(np.asarray(q1, dtype=float), np.asarray(q2, dtype=float))
    if a.ndim < 1 or a.shape[-1] != 4:
        raise ValueError(f'quaternions must have last dimension 4, got {a.shape}')
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    if np.any(na == 0) or np.any(nb == 0):
        raise ValueError('zero-norm quaternion: the rotation angle is undefined')
    a, b = a / na, b / nb
    b = np.where(np.sum(a * b, axis=-1, keepdims=True) < 0.0, -b, b)
    return 4.0 * np.arctan2(np.linalg.norm(a - b, axis=-1), np.linalg.norm(a + b, axis=-1))


def quat_from_matrix(R: np.ndarray, *, scalar_first: bool = False) -> np.ndarray:
    """Unit quaternions (..., 4) of rotations (..., 3, 3), scalar part >= 0 (scipy's canonical
    sign); (x, y, z, w) as geometry_msgs, or (w, x, y, z) as MuJoCo with ``scalar_first``."""
    R = _as_rotations(R)
    q = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_quat(canonical=True, scalar_first=scalar_first)
    return q.reshape(R.shape[:-2] + (4,))


def matrix_from_quat(q: np.ndarray, *, scalar_first: bool = False) -> np.ndarray:
    """Rotation matrices (..., 3, 3) of quaternions (..., 4) of any norm > 0 (normalised);
    (x, y, z, w) order, or (w, x, y, z) with ``scalar_first``."""
    q = np.asarray(q, dtype=float)
    if q.ndim < 1 or q.shape[-1] != 4:
        raise ValueError(f'quaternions must have last dimension 4, got {q.shape}')
    R = Rotation.from_quat(q.reshape(-1, 4), scalar_first=scalar_first).as_matrix()
    return R.reshape(q.shape[:-1] + (3, 3))


def vector_angle(a: np.ndarray, b: np.ndarray) -> float | np.ndarray:
    """Angle (radians, [0, π]) between vectors a, b (..., 3) of any non-zero length, broadcast:
    atan2(|a × b|, a · b) (accurate also for nearly parallel vectors, unlike arccos)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    ang = np.arctan2(np.linalg.norm(np.cross(a, b), axis=-1), np.sum(a * b, axis=-1))
    return float(ang) if ang.ndim == 0 else ang


def is_rotation_matrix(R: np.ndarray, tol: float = 1e-6) -> bool:
    """True for a proper rotation: RᵀR = I and det R = +1 (within tol)."""
    R = np.asarray(R, dtype=float)
    return (R.shape == (3, 3) and bool(np.all(np.isfinite(R)))
            and np.allclose(R.T @ R, np.eye(3), atol=tol) and abs(np.linalg.det(R) - 1.0) < tol)


# --------------------------------------------------------------------------------------------
# Planes
# --------------------------------------------------------------------------------------------

class PlaneFitError(ValueError):
    """The plane is not determined: fewer than 3 finite points, or all on one line / at one place."""


@dataclasses.dataclass(frozen=True)
class PlaneFit:
    """A least-squares plane n·p + offset = 0 through ``centroid``."""
    centroid: np.ndarray          # (3,) in the input frame
    normal: np.ndarray            # (3,) unit; oriented towards the viewpoint when one was given
    singular_values: np.ndarray   # (3,) of the centred points, descending
    rms_distance: float           # RMS point-to-plane distance, input units
    n_points: int

    @property
    def offset(self) -> float:
        """d of n·p + d = 0 (= −n·centroid)."""
        return float(-self.normal @ self.centroid)


def fit_plane(points: np.ndarray, viewpoint: Sequence[float] | np.ndarray | None = None, *,
              collinear_rtol: float = COLLINEAR_RTOL) -> PlaneFit:
    """Total least-squares plane through (N, 3) points (non-finite rows ignored) by SVD.

    normal = the right-singular vector of the smallest singular value of the centred points;
    with a ``viewpoint`` it is signed so that normal · (viewpoint − centroid) >= 0 (a viewpoint
    in the plane leaves the SVD's sign: callers that need a side check for 0). Raises
    PlaneFitError for fewer than 3 finite points, coincident points, or collinear ones (second
    singular value <= collinear_rtol x the first; collinear_rtol=0 rejects only exact lines).
    """
    P = np.asarray(points, dtype=float)
    if P.ndim != 2 or P.shape[1] != 3:
        raise PlaneFitError(f'points must have shape (N, 3), got {P.shape}')
    P = P[np.isfinite(P).all(1)]
    if P.shape[0] < 3:
        raise PlaneFitError(f'{P.shape[0]} finite point(s); a plane needs at least 3')
    c = P.mean(0)
    _, s, Vt = np.linalg.svd(P - c, full_matrices=False)
    if s[0] <= 1e-12 or s[1] <= collinear_rtol * s[0]:
        raise PlaneFitError(f'the points are collinear or coincident (singular values {s})')
    n = Vt[2] / np.linalg.norm(Vt[2])
    if viewpoint is not None and float(n @ (np.asarray(viewpoint, dtype=float).reshape(3) - c)) < 0:
        n = -n
    rms = float(np.sqrt(np.mean(((P - c) @ n) ** 2)))
    return PlaneFit(centroid=c, normal=n, singular_values=s, rms_distance=rms, n_points=int(P.shape[0]))


# --------------------------------------------------------------------------------------------
# Kabsch / Arun
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class RigidFit:
    """A fitted rigid transform ``T`` (4x4) with dst ≈ R·src + t, i.e. T = T_dst_src.

    residuals: per-point ||R p_i + t − q_i|| (metres) for every input row (NaN for unusable rows);
    rmse: root mean square of the residuals over the points used in the final fit (weighted by the
    weights when given); inliers: bool mask over the input rows of the points used in the final fit.
    """
    T: np.ndarray
    rmse: float
    n_points: int
    inliers: np.ndarray
    residuals: np.ndarray
    n_iterations: int = 0          # RANSAC iterations (0 for a plain least-squares fit)

    @property
    def R(self) -> np.ndarray:
        return self.T[:3, :3]

    @property
    def t(self) -> np.ndarray:
        return self.T[:3, 3]


def _as_points(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or a.shape[1] != 3:
        raise RigidTransformError(f'{name} must have shape (N, 3), got {a.shape}')
    return a


def degeneracy_reason(points: np.ndarray, weights: np.ndarray | None = None,
                      rtol: float = COLLINEAR_RTOL) -> str | None:
    """Why ``points`` (N, 3) cannot fix a rotation, or None if they can.

    Uses the singular values s1 >= s2 >= s3 of the (weighted) centred points: fewer than 3 points,
    all points at one place (s1 ~ 0) or on one line (s2 <= rtol * s1) are degenerate.
    """
    P = np.asarray(points, dtype=float)
    n = P.shape[0] if weights is None else int(np.count_nonzero(np.asarray(weights) > 0))
    if n < 3:
        return f'{n} usable point(s); at least 3 non-collinear points are needed'
    w = np.ones(P.shape[0]) if weights is None else np.asarray(weights, dtype=float)
    c = (w[:, None] * P).sum(0) / w.sum()
    s = np.linalg.svd(np.sqrt(w)[:, None] * (P - c), compute_uv=False)
    scale = max(1.0, float(np.abs(P).max()))
    if s[0] <= 1e-12 * scale:
        return f'all {n} points coincide'
    if s[1] <= rtol * s[0]:
        return (f'the {n} points are collinear (singular values {s[0]:.3g}, {s[1]:.3g}, {s[2]:.3g}); '
                'the rotation about their line is undetermined')
    return None


def _kabsch(P: np.ndarray, Q: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Kabsch on already validated arrays; returns 4x4 T with Q ≈ R P + t."""
    wsum = w.sum()
    cp = (w[:, None] * P).sum(0) / wsum
    cq = (w[:, None] * Q).sum(0) / wsum
    H = (w[:, None] * (P - cp)).T @ (Q - cq)            # 3x3 cross-covariance Σ w p̃ q̃ᵀ
    U, _, Vt = np.linalg.svd(H)
    # Reflection guard (Arun et al. 1987; Umeyama 1991): force det R = +1.
    d = 1.0 if np.linalg.det(Vt.T @ U.T) >= 0 else -1.0
    R = Vt.T @ np.diag([1.0, 1.0, d]) @ U.T
    return make_transform(R, cq - R @ cp)


def fit_rigid_transform(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None,
                        *, collinear_rtol: float = COLLINEAR_RTOL) -> RigidFit:
    """Weighted least-squares rigid transform (Kabsch / Arun et al. 1987).

    Solves  min_{R ∈ SO(3), t}  Σ_i w_i || R p_i + t − q_i ||²  for src p_i, dst q_i (N, 3), which
    is the paper's min_ΔT ||ΔT P̄_{k-1} − P̄_k||_F² with P = src = P_{k-1}, Q = dst = P_k.
    With centroids p̄, q̄ and H = Σ w_i (p_i − p̄)(q_i − q̄)ᵀ = U S Vᵀ:
        R = V diag(1, 1, det(V Uᵀ)) Uᵀ,   t = q̄ − R p̄
    The diag term keeps R a proper rotation (never a reflection), also for planar or noisy input.

    Rows with a non-finite coordinate (either set) or weight <= 0 are ignored. Raises
    DegenerateInputError (with the reason) when fewer than 3 usable points remain or the usable
    src or dst points are collinear / coincident.
    """
    P = _as_points(src, 'src')
    Q = _as_points(dst, 'dst')
    if P.shape != Q.shape:
        raise RigidTransformError(f'src and dst differ in shape: {P.shape} vs {Q.shape}')
    w = np.ones(P.shape[0]) if weights is None else np.asarray(weights, dtype=float).reshape(-1)
    if w.shape[0] != P.shape[0]:
        raise RigidTransformError(f'{w.shape[0]} weights for {P.shape[0]} points')
    if np.any(w < 0) or np.any(np.isnan(w)):
        raise RigidTransformError('weights must be non-negative and not NaN')
    use = np.isfinite(P).all(1) & np.isfinite(Q).all(1) & np.isfinite(w) & (w > 0)
    for name, X in (('src', P), ('dst', Q)):
        reason = degeneracy_reason(X[use], w[use], collinear_rtol)
        if reason is not None:
            raise DegenerateInputError(f'{name}: {reason}')
    T = _kabsch(P[use], Q[use], w[use])
    res = np.full(P.shape[0], np.nan)
    res[use] = np.linalg.norm(transform_points(T, P[use]) - Q[use], axis=1)
    rmse = float(np.sqrt((w[use] * res[use] ** 2).sum() / w[use].sum()))
    return RigidFit(T=T, rmse=rmse, n_points=int(use.sum()), inliers=use, residuals=res)


def ransac_rigid_transform(src: np.ndarray, dst: np.ndarray, *, inlier_threshold: float,
                           max_iterations: int = 1000, confidence: float = 0.999,
                           min_inliers: int = 3, seed: int = 0, refine_iterations: int = 5,
                           collinear_rtol: float = COLLINEAR_RTOL) -> RigidFit:
    """RANSAC rigid transform, robust to outlier correspondences (e.g. drifting point tracks).

    Each iteration fits Kabsch to a random minimal sample of 3 correspondences (samples whose
    points are nearly collinear are skipped) and counts inliers: rows with
    ||R p_i + t − q_i|| < inlier_threshold (metres). The best hypothesis has the most inliers
    (ties: smallest summed inlier residual). The iteration count adapts to the inlier ratio ŵ,
    N = log(1 − confidence) / log(1 − ŵ³), capped at max_iterations. The winner is refitted by
    least squares on its inliers and the inlier set re-evaluated, up to ``refine_iterations`` times
    or until it stops changing. The random generator is numpy's default_rng(seed): the same input
    and seed give the same result.

    Raises DegenerateInputError when fewer than max(3, min_inliers) inliers (non-collinear) exist.
    """
    P = _as_points(src, 'src')
    Q = _as_points(dst, 'dst')
    if P.shape != Q.shape:
        raise RigidTransformError(f'src and dst differ in shape: {P.shape} vs {Q.shape}')
    if not inlier_threshold > 0:
        raise RigidTransformError('inlier_threshold must be > 0')
    finite = np.isfinite(P).all(1) & np.isfinite(Q).all(1)
    idx = np.flatnonzero(finite)
    n = idx.size
    need = max(3, int(min_inliers))
    if n < need:
        raise DegenerateInputError(f'{n} usable correspondence(s); RANSAC needs at least {need}')
    Pf, Qf = P[idx], Q[idx]
    rng = np.random.default_rng(seed)
    best_count, best_cost, best_mask = -1, np.inf, None
    n_iter, limit = 0, int(max_iterations)
    while n_iter < limit:
        n_iter += 1
        s = rng.choice(n, size=3, replace=False)
        if degeneracy_reason(Pf[s], rtol=SAMPLE_COLLINEAR_RTOL) is not None:
            continue
        T = _kabsch(Pf[s], Qf[s], np.ones(3))
        r = np.linalg.norm(transform_points(T, Pf) - Qf, axis=1)
        mask = r < inlier_threshold
        count = int(mask.sum())
        cost = float(r[mask].sum())
        if count > best_count or (count == best_count and cost < best_cost):
            best_count, best_cost, best_mask = count, cost, mask
            ratio = count / n
            if ratio >= 1.0:
                limit = n_iter
            elif ratio > 0:
                needed = np.log(1.0 - confidence) / np.log(1.0 - ratio ** 3)
                limit = min(limit, max(n_iter, int(np.ceil(needed))))
    if best_mask is None or best_count < need:
        raise DegenerateInputError(
            f'RANSAC found {max(best_count, 0)} inlier(s) of {n} (threshold {inlier_threshold} m); '
            f'{need} needed')
    mask = best_mask
    for _ in range(max(1, refine_iterations)):
        try:
            fit = fit_rigid_transform(Pf[mask], Qf[mask], collinear_rtol=collinear_rtol)
        except DegenerateInputError as e:
            raise DegenerateInputError(f'RANSAC inliers are degenerate: {e}') from None
        r = np.linalg.norm(transform_points(fit.T, Pf) - Qf, axis=1)
        new_mask = r < inlier_threshold
        if new_mask.sum() < need or np.array_equal(new_mask, mask):
            break
        mask = new_mask
    fit = fit_rigid_transform(Pf[mask], Qf[mask], collinear_rtol=collinear_rtol)
    res = np.full(P.shape[0], np.nan)
    res[idx] = np.linalg.norm(transform_points(fit.T, Pf) - Qf, axis=1)
    inliers = np.zeros(P.shape[0], dtype=bool)
    inliers[idx[mask]] = True
    return RigidFit(T=fit.T, rmse=fit.rmse, n_points=int(mask.sum()), inliers=inliers,
                    residuals=res, n_iterations=n_iter)
