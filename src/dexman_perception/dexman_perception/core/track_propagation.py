"""The B.3 tracking step: ΔT from 3D point tracks (Kabsch, RANSAC), T_init = ΔT · T_prev.

Frames and units as in dexman_common.geometry: metres, ``camera_optical``, T_a_b maps b to a.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from dexman_common.geometry import (DegenerateInputError, RigidTransformError, _as_points, fit_rigid_transform,
                                    ransac_rigid_transform)


# --------------------------------------------------------------------------------------------
# The B.3 tracking step
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TrackingStep:
    """One k-1 -> k step: ΔT (None on failure), T_init = ΔT · T_prev (T_prev on failure)."""
    delta_T: np.ndarray | None
    T_init: np.ndarray
    ok: bool
    reason: str                    # '' when ok
    n_tracks: int                  # tracks visible and finite in both frames
    n_inliers: int
    rmse: float                    # metres, over the inliers (NaN on failure)


def propagate_pose_from_tracks(points_prev: np.ndarray, points_curr: np.ndarray, T_prev: np.ndarray,
                               *, visible_prev: np.ndarray | None = None,
                               visible_curr: np.ndarray | None = None,
                               ransac_threshold: float | None = 0.01, seed: int = 0,
                               min_tracks: int = 3) -> TrackingStep:
    """ΔT from the object's 3D point tracks between frames k-1 and k, and T_k^init = ΔT · T_{k-1}.

    points_prev, points_curr: (N, 3) track positions in camera_optical (metres) at k-1 and k, row i
    the same track. visible_*: optional (N,) bool visibility (SpatialTracker's); invisible or
    non-finite tracks are dropped. T_prev: 4x4 T_camera_object at k-1 (the previous, refined pose).
    ransac_threshold (metres): RANSAC inlier threshold; None uses plain least squares on all tracks
    (the paper's formula exactly). On failure (too few / degenerate tracks) ΔT is None and T_init
    is T_prev unchanged (the "unadjusted previous pose"), with the reason.
    """
    P = _as_points(points_prev, 'points_prev')
    Q = _as_points(points_curr, 'points_curr')
    if P.shape != Q.shape:
        raise RigidTransformError(f'track arrays differ in shape: {P.shape} vs {Q.shape}')
    T_prev = np.asarray(T_prev, dtype=float)
    use = np.isfinite(P).all(1) & np.isfinite(Q).all(1)
    if visible_prev is not None:
        use &= np.asarray(visible_prev, dtype=bool).reshape(-1)
    if visible_curr is not None:
        use &= np.asarray(visible_curr, dtype=bool).reshape(-1)
    n = int(use.sum())
    if n < max(3, min_tracks):
        return TrackingStep(None, T_prev.copy(), False,
                            f'{n} usable track(s), {max(3, min_tracks)} needed', n, 0, float('nan'))
    try:
        if ransac_threshold is None:
            fit = fit_rigid_transform(P[use], Q[use])
        else:
            fit = ransac_rigid_transform(P[use], Q[use], inlier_threshold=ransac_threshold,
                                         seed=seed, min_inliers=min_tracks)
    except RigidTransformError as e:
        return TrackingStep(None, T_prev.copy(), False, str(e), n, 0, float('nan'))
    return TrackingStep(fit.T, fit.T @ T_prev, True, '', n, fit.n_points, fit.rmse)


def chain_poses_from_tracks(tracks: np.ndarray, T0: np.ndarray, *, visibility: np.ndarray | None = None,
                            refine: Callable[[int, np.ndarray], np.ndarray] | None = None,
                            ransac_threshold: float | None = 0.01, seed: int = 0,
                            min_tracks: int = 3) -> tuple[np.ndarray, list[TrackingStep]]:
    """The B.3 loop over a clip: for k = 1..F-1, T_k = refine(k, ΔT_{k-1}^k · T_{k-1}).

    tracks: (F, N, 3) point tracks in camera_optical (metres); visibility: optional (F, N) bool;
    T0: 4x4 pose at frame 0. ``refine`` stands for FoundationPose's refinement from the initial
    guess (None = keep the initial guess, i.e. tracking only). Returns the (F, 4, 4) poses and the
    per-step reports (len F-1).
    """
    tracks = np.asarray(tracks, dtype=float)
    if tracks.ndim != 3 or tracks.shape[2] != 3:
        raise RigidTransformError(f'tracks must have shape (F, N, 3), got {tracks.shape}')
    F = tracks.shape[0]
    poses = np.empty((F, 4, 4))
    poses[0] = np.asarray(T0, dtype=float)
    steps = []
    for k in range(1, F):
        vp = None if visibility is None else visibility[k - 1]
        vc = None if visibility is None else visibility[k]
        step = propagate_pose_from_tracks(tracks[k - 1], tracks[k], poses[k - 1], visible_prev=vp,
                                          visible_curr=vc, ransac_threshold=ransac_threshold,
                                          seed=seed, min_tracks=min_tracks)
        steps.append(step)
        poses[k] = step.T_init if refine is None else np.asarray(refine(k, step.T_init), dtype=float)
    return poses, steps
