"""Embedded CPU default of the pose stage: point-to-plane ICP of a mesh on the masked depth cloud.

Stands in for FoundationPose. scipy cKDTree + a damped Gauss-Newton point-to-plane step.

* Model: even surface samples of the mesh with their face normals (mesh_sampling.sample_surface,
  spacing = the mesh's largest extent / `model_samples_per_extent`, evenly thinned to at most
  `model_points`), a cKDTree on them, built once per mesh and cached.
* Data: the masked depth pixels (mask eroded by 1 px against silhouette mixing), back-projected,
  subsampled to at most `max_points`.
* refine(T_init): each iteration expresses the data in the object frame (T⁻¹ q), finds the
  nearest model sample (data -> model, so that parts of the model hidden by a hand or by the
  object itself need no visibility test), drops pairs further than the max correspondence
  distance (annealed from `max_corr_start` to `max_corr_end`), and solves the linearised
  point-to-plane problem min Σ w ρ(((I + [ω]×) q' + u − p)·n) with Huber weights (δ =
  `huber_delta`) and Levenberg damping (`damping` x the mean diagonal). Directions the data do not
  constrain (eigenvalues of the Gauss-Newton matrix, rotations scaled by the model radius, below
  `weak_ratio` x the largest: the spin of a can, a handle seen in part sliding along its axis) are
  anchored to the initial guess by a prior on the deviation from T_init (stiffness
  anchor_strength x weak_ratio x the largest eigenvalue); without it they drift frame by frame
  on partial views. The Gauss-Newton matrix of the last iteration / point_sigma² is left
  in `last_information` (the fused tracker weighs the refinement against its track prediction).
* Before ICP, a coarse re-centring when fewer than half the data points have a model point
  within `max_corr_start` (see `_recentre`): large frame-to-frame translations are recovered.
* score: inlier ratio = fraction of data points within `inlier_distance` of the model after the
  last iteration. Invalid (valid=False, T_init returned) when fewer than `min_points` data points
  have depth, or the score is below `min_score`.
* Tunables: `IcpConfig` (config/perception.yaml [icp_refiner]).
* register(): centres the mesh on the masked cloud. When the mesh carries
  metadata['T_camera_object'] (FusedCloudMesh does) that pose is the start; otherwise 24
  axis-aligned orientations are tried, each translated so that the model centre lies
  `radius` behind the cloud centroid along the viewing ray, refined, and the best scored kept.
"""
from __future__ import annotations

import dataclasses
import itertools

import cv2
import numpy as np
from scipy.spatial import cKDTree

from dexman_common.camera import depth_to_points
from dexman_common.config import ConfigBase
from dexman_common.geometry import (axis_angle_from_rotation, invert_transform, make_transform,
                                    rotation_from_axis_angle)

from ..perception_config import YAML_FILE, configured
from ..stages import PoseEstimate


@dataclasses.dataclass(frozen=True)
class IcpConfig(ConfigBase):
    """Tunables of IcpRefiner (module docstring); values in config/perception.yaml [icp_refiner]."""

    SECTION = 'icp_refiner'
    YAML_FILE = YAML_FILE

    iterations: int = 25
    max_points: int = 1500              # data points (masked depth) kept, evenly subsampled
    model_points: int = 4000            # model surface samples kept, evenly thinned
    model_samples_per_extent: float = 40.0   # model sample spacing = largest extent / this
    max_corr_start: float = 0.03        # m, max correspondence distance, first iteration
    max_corr_end: float = 0.01          # m, ... last iteration (annealed linearly)
    huber_delta: float = 0.004          # m
    inlier_distance: float = 0.006      # m, for the score (inlier ratio)
    min_points: int = 25                # fewest data points with depth
    min_score: float = 0.3              # lowest accepted inlier ratio
    damping: float = 1e-3               # Levenberg damping x the mean diagonal
    weak_ratio: float = 0.0005          # eigenvalue ratio below which a direction is unconstrained
    anchor_strength: float = 1.0        # prior stiffness on those directions (x weak_ratio x largest)
    point_sigma: float = 0.002          # m, point-to-plane residual scale of `last_information`
    seed: int = 0


def _cross(a, b):
    return np.stack([a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1], a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2],
                     a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]], axis=1)


class IcpRefiner:
    """config: an IcpConfig (default: its defaults = config/perception.yaml [icp_refiner]);
    keyword overrides (IcpConfig fields, e.g. a node's backend_options) replace its values."""
    CONFIG = IcpConfig

    def __init__(self, config: IcpConfig | None = None, **overrides):
        cfg = self.config = configured(IcpConfig, config, overrides)
        self.point_sigma = cfg.point_sigma
        self.last_information = None
        self.weak_ratio = cfg.weak_ratio
        self.anchor_strength = cfg.anchor_strength
        self.iterations = cfg.iterations
        self.max_points = cfg.max_points
        self.model_points = cfg.model_points
        self.max_corr_start = cfg.max_corr_start
        self.max_corr_end = cfg.max_corr_end
        self.huber_delta = cfg.huber_delta
        self.inlier_distance = cfg.inlier_distance
        self.min_points = cfg.min_points
        self.min_score = cfg.min_score
        self.damping = cfg.damping
        self.seed = cfg.seed
        self._cache: dict[int, tuple] = {}

    # ------------------------------------------------------------------------------ model
    def model(self, mesh):
        key = id(mesh)
        if key not in self._cache:
            from dexman_common.mesh_sampling import sample_surface
            V = np.asarray(mesh.vertices, np.float64)
            F = np.asarray(mesh.faces, np.int64)
            extent = float(np.max(np.ptp(V, axis=0)))
            pts, nrm, _ = sample_surface(V, F, max(extent / self.config.model_samples_per_extent, 1e-4),
                                         max_points=None)
            if len(pts) > self.model_points:   # thin the fine samples evenly (a capped sample_surface
                sel = np.linspace(0, len(pts) - 1, self.model_points).astype(int)   # coarsens instead)
                pts, nrm = pts[sel], nrm[sel]
            self._cache[key] = (mesh, pts, nrm, cKDTree(pts))   # keep mesh alive: id stays unique
        return self._cache[key][1:]

    def data_points(self, depth, mask, K) -> np.ndarray:
        if depth is None or mask is None:
            return np.zeros((0, 3))
        m = np.asarray(mask, bool)
        inner = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        if inner.sum() < self.min_points:
            inner = m
        P = depth_to_points(depth, K)[inner]
        P = P[np.isfinite(P).all(1)]
        if len(P) > self.max_points:
            P = P[np.linspace(0, len(P) - 1, self.max_points).astype(int)]
        return P

    # ------------------------------------------------------------------------------ API
    def refine(self, rgb, depth, mask, mesh, K, T_init, anchor: bool = True) -> PoseEstimate:
        """ICP from T_init (anchor: hold the unconstrained directions at T_init, see `_icp`).
        After a successful call `last_information` holds the (6, 6) information matrix of the
        result, for the object-frame twist ξ = (ω [rad], u [m]) with T = T_est · exp(ξ): the
        Gauss-Newton matrix of the last iteration over point_sigma² (the point-to-plane residual
        scale; None after a failure). The fused tracker combines it with the track prediction."""
        self.last_information = None
        T_init = np.asarray(T_init, np.float64)
        if not np.all(np.isfinite(T_init)):
            return PoseEstimate(T_init, 0.0, False, 'initial pose is not finite')
        Q = self.data_points(depth, mask, np.asarray(K, np.float64))
        if len(Q) < self.min_points:
            return PoseEstimate(T_init.copy(), 0.0, False,
                                f'{len(Q)} object points with depth (need {self.min_points})')
        pts, nrm, tree = self.model(mesh)
        T, score, info = self._icp(Q, pts, nrm, tree, T_init, anchor=anchor)
        if score < self.min_score:
            return PoseEstimate(T_init.copy(), score, False, f'inlier ratio {score:.2f} < {self.min_score}')
        self.last_information = info
        return PoseEstimate(T, score, True, '')

    def register(self, rgb, depth, mask, mesh, K) -> PoseEstimate:
        K = np.asarray(K, np.float64)
        Q = self.data_points(depth, mask, K)
        if len(Q) < self.min_points:
            return PoseEstimate(np.full((4, 4), np.nan), 0.0, False,
                                f'{len(Q)} object points with depth (need {self.min_points})')
        meta = getattr(mesh, 'metadata', None) or {}
        if 'T_camera_object' in meta:
            return self.refine(rgb, depth, mask, mesh, K, meta['T_camera_object'], anchor=False)
        pts, nrm, tree = self.model(mesh)
        c_model = 0.5 * (pts.min(0) + pts.max(0))
        radius = 0.5 * float(np.min(np.ptp(pts, axis=0)))
        c = Q.mean(0)
        c = c + radius * c / np.linalg.norm(c)
        best = None
        for R in _rotations24():
            T0 = np.eye(4)
            T0[:3, :3] = R
            T0[:3, 3] = c - R @ c_model
            T, s, _ = self._icp(Q, pts, nrm, tree, T0)
            if best is None or s > best[1]:
                best = (T, s)
        T, s = best
        return PoseEstimate(T, s, s >= self.min_score, '' if s >= self.min_score else f'inlier ratio {s:.2f}')

    # ------------------------------------------------------------------------------ ICP core
    def _recentre(self, Q, pts, nrm, tree, T):
        """Coarse step before ICP: when fewer than half the data points lie within the max
        correspondence distance of the model, shift T so that the centroid of the model's
        camera-facing samples meets the data centroid (recovers large translations)."""
        Ti = np.linalg.inv(T)
        d, _ = tree.query(Q @ Ti[:3, :3].T + Ti[:3, 3], distance_upper_bound=self.max_corr_start)
        if np.mean(np.isfinite(d)) >= 0.5:
            return T
        pc = pts @ T[:3, :3].T + T[:3, 3]
        nc = nrm @ T[:3, :3].T
        front = np.einsum('ij,ij->i', nc, -pc) > 0
        if front.sum() < 3:
            front[:] = True
        T = T.copy()
        T[:3, 3] += Q.mean(0) - pc[front].mean(0)
        return T

    def _icp(self, Q, pts, nrm, tree, T_init, anchor: bool = False):
        T = self._recentre(Q, pts, nrm, tree, T_init.copy())
        # anchor: the directions the data barely constrain (eigenvalues of the Gauss-Newton matrix,
        # rotations scaled by the model radius, below weak_ratio x the largest: the spin of a
        # cylinder, the slide of a handle along its axis, a flat face sliding in its plane) are
        # pulled back towards T_init with a stiffness of anchor_strength x weak_ratio x the largest
        Ta_inv = invert_transform(T_init)
        use_anchor = anchor and self.weak_ratio > 0 and self.anchor_strength > 0
        radius = 0.5 * float(np.linalg.norm(np.ptp(pts, axis=0)))
        Dg = np.array([radius] * 3 + [1.0] * 3)
        DD = np.outer(Dg, Dg)
        H_last = None
        n_it = max(1, self.iterations)
        for it in range(n_it):
            a = it / max(1, n_it - 1)
            max_corr = self.max_corr_start * (1 - a) + self.max_corr_end * a
            Ti = invert_transform(T)
            q = Q @ Ti[:3, :3].T + Ti[:3, 3]           # data in the object frame
            dist, idx = tree.query(q, distance_upper_bound=max_corr)
            ok = np.isfinite(dist)
            if ok.sum() < 6:
                break
            q, p, n = q[ok], pts[idx[ok]], nrm[idx[ok]]
            r = np.einsum('ij,ij->i', q - p, n)
            A = np.concatenate([_cross(q, n), n], axis=1)
            w = np.where(np.abs(r) <= self.huber_delta, 1.0, self.huber_delta / np.maximum(np.abs(r), 1e-12))
            H = A.T @ (w[:, None] * A)
            g = A.T @ (w * r)
            lam = self.damping * np.trace(H) / 6.0 + 1e-12
            Hp, gp = H + lam * np.eye(6), g
            H_last = H
            if use_anchor:
                ev, V = np.linalg.eigh(H / DD)
                weak = ev < self.weak_ratio * ev[-1]
                if weak.any():
                    Vw = V[:, weak]
                    Lam = self.anchor_strength * self.weak_ratio * ev[-1] * (Vw @ Vw.T) * DD
                    E = Ta_inv @ T                         # deviation from the anchor (object frame)
                    e = np.concatenate([axis_angle_from_rotation(E[:3, :3]), E[:3, 3]])
                    Hp, gp = Hp + Lam, g - Lam @ e
            x = -np.linalg.solve(Hp, gp)
            D = make_transform(rotation_from_axis_angle(x[:3]), x[3:])   # on the data, object frame
            T = T @ invert_transform(D)
            if np.linalg.norm(x[:3]) < 1e-5 and np.linalg.norm(x[3:]) < 1e-5:
                break
        Ti = np.linalg.inv(T)
        q = Q @ Ti[:3, :3].T + Ti[:3, 3]
        dist, _ = tree.query(q)
        score = float(np.mean(dist < self.inlier_distance))
        info = np.zeros((6, 6)) if H_last is None else H_last / self.point_sigma ** 2
        return T, score, info


def _rotations24():
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            R = np.zeros((3, 3))
            for i, (j, s) in enumerate(zip(perm, signs)):
                R[i, j] = s
            if np.linalg.det(R) > 0:
                out.append(R)
    return out
