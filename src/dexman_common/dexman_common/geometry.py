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

Contents
    fit_rigid_transform      weighted Kabsch/Arun, reflection-safe, degenerate-input detection
    ransac_rigid_transform   RANSAC over minimal 3-point samples (seeded, deterministic), then a
                             least-squares refit on the inliers
    (the B.3 tracking step built on these lives in dexman_perception.core.track_propagation)
    small SE(3) helpers built on scipy.spatial.transform.Rotation

Nothing here imports rclpy.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

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


def rotation_angle(R: np.ndarray) -> float:
    """Rotation angle in [0, π] (radians) of a rotation matrix (geodesic distance to identity)."""
    return float(Rotation.from_matrix(np.asarray(R, dtype=float)).magnitude())


def rotation_angle_between(R1: np.ndarray, R2: np.ndarray) -> float:
    """Geodesic angle (radians, [0, π]) of R1ᵀ R2: the rotation taking R1 to R2."""
    R1 = np.asarray(R1, dtype=float)
    R2 = np.asarray(R2, dtype=float)
    return rotation_angle(R1.T @ R2)


def rotation_from_axis_angle(rotvec: Sequence[float] | np.ndarray) -> np.ndarray:
    """3x3 rotation from an axis-angle vector (unit axis times angle, radians)."""
    return Rotation.from_rotvec(np.asarray(rotvec, dtype=float)).as_matrix()


def axis_angle_from_rotation(R: np.ndarray) -> np.ndarray:
    """Axis-angle vector (unit axis times angle in [0, π]) of a 3x3 rotation."""
    return Rotation.from_matrix(np.asarray(R, dtype=float)).as_rotvec()


def is_rotation_matrix(R: np.ndarray, tol: float = 1e-6) -> bool:
    """True for a proper rotation: RᵀR = I and det R = +1 (within tol)."""
    R = np.asarray(R, dtype=float)
    return (R.shape == (3, 3) and bool(np.all(np.isfinite(R)))
            and np.allclose(R.T @ R, np.eye(3), atol=tol) and abs(np.linalg.det(R) - 1.0) < tol)


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
