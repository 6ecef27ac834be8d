"""The paper's fused object-pose tracker (Sec. 3.2, Appendix B.3) and its two ablations.

For k = 1..N-1 (rigid_transform.chain_poses_from_tracks):

    fused     ΔT_{k-1}^k from the object's 3D point tracks (Kabsch + RANSAC,
              rigid_transform.propagate_pose_from_tracks), T_k^init = ΔT · T_{k-1},
              T_k = refiner.refine(frame k, T_k^init)
    refiner   (ablation a) T_k^init = T_{k-1}, T_k = refiner.refine(frame k, T_k^init)
    tracks    (ablation b) T_k = ΔT · T_{k-1}, no refinement

T_0 comes from refiner.register on frame 0 (or is given). Works with any PoseRefiner /
PointTracker backend (CPU defaults: IcpRefiner, LucasKanadeTracker).

Invalid frames are marked, never raised: a vanished (empty) mask, too few object points with
depth (NaN / missing depth), a refinement below the refiner's score, or (tracks) fewer than 3 usable
3D tracks. The chain carries on through an invalid frame from its best guess (T_init for the
refiner modes, T_{k-1} when the tracks fail), so the object can be re-acquired. Output poses are
T_camera_object in `camera_optical`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np

from . import rigid_transform as rt
from .pose_trajectory import PoseTrajectory

MODES = ('fused', 'refiner', 'tracks')


@dataclasses.dataclass
class ObjectTrackResult:
    poses: np.ndarray            # (N, 4, 4) T_camera_object
    valid: np.ndarray            # (N,) bool
    reasons: list[str]           # '' where valid
    scores: np.ndarray           # (N,) refiner score (NaN where not refined)
    mode: str
    seconds: float               # tracking time (registration, tracks and chain), s
    steps: list = dataclasses.field(default_factory=list)   # rigid_transform.TrackingStep per k >= 1


def _empty(m) -> bool:
    return m is None or not np.any(m)


def track_object(frames: Sequence[np.ndarray], depths: Sequence[np.ndarray] | None,
                 masks: Sequence[np.ndarray | None], mesh, K: np.ndarray, *, refiner=None,
                 tracker=None, mode: str = 'fused', T0: np.ndarray | None = None,
                 tracks=None, n_queries: int = 200, ransac_threshold: float = 0.01,
                 min_tracks: int = 6) -> ObjectTrackResult:
    """Track one object through a clip. masks: per-frame bool masks (None/empty = vanished).
    tracks: precomputed PointTracks with positions_3d (else `tracker` is run on queries sampled
    in the first mask). Returns poses, validity and reasons per frame."""
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    from .backends import registry
    if refiner is None:
        refiner = registry.create('pose', registry.default('pose'))
    n = len(frames)
    K = np.asarray(K, np.float64)
    dep = (lambda k: None) if depths is None else (lambda k: depths[k])
    t_start = time.perf_counter()
    valid = np.ones(n, bool)
    reasons = [''] * n
    scores = np.full(n, np.nan)
    if n == 0:
        return ObjectTrackResult(np.zeros((0, 4, 4)), valid, reasons, scores, mode, 0.0)

    if T0 is None:
        if _empty(masks[0]):
            raise ValueError('the first frame has no object mask: nothing to register')
        est = refiner.register(frames[0], dep(0), masks[0], mesh, K)
        T0 = est.T_camera_object
        scores[0] = est.score
        if not est.valid:
            valid[0], reasons[0] = False, f'registration failed: {est.reason}'
            if not np.all(np.isfinite(T0)):
                raise ValueError(f'registration failed on the first frame: {est.reason}')
    T0 = np.asarray(T0, np.float64)

    def refine_at(k, T_init):
        if _empty(masks[k]):
            valid[k], reasons[k] = False, 'object mask vanished'
            return T_init
        est = refiner.refine(frames[k], dep(k), masks[k], mesh, K, T_init)
        scores[k] = est.score
        if not est.valid:
            valid[k], reasons[k] = False, est.reason or 'refinement failed'
            return T_init
        return est.T_camera_object

    steps = []
    if mode == 'refiner':
        poses = np.empty((n, 4, 4))
        poses[0] = T0
        for k in range(1, n):
            poses[k] = refine_at(k, poses[k - 1])
    else:
        if tracks is None:
            from .backends.lk_tracks import sample_queries
            if tracker is None:
                tracker = registry.create('tracks', registry.default('tracks'))
            if depths is None:
                raise ValueError('3D point tracks need depth')
            import cv2
            g0 = np.asarray(frames[0])
            g0 = g0 if g0.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(g0, np.uint8), cv2.COLOR_RGB2GRAY)
            q = sample_queries(masks[0], n_queries, 0, gray=g0)
            try:
                tracks = tracker.track(frames, q, depths, K, masks=masks)
            except TypeError:   # a backend without mask support
                tracks = tracker.track(frames, q, depths, K)
        if tracks.positions_3d is None:
            raise ValueError('the point tracker gave no 3D positions (needs depth)')
        poses, steps = rt.chain_poses_from_tracks(
            tracks.positions_3d, T0, visibility=tracks.visible,
            refine=refine_at if mode == 'fused' else None,
            ransac_threshold=ransac_threshold, min_tracks=min_tracks)
        for k, st in enumerate(steps, start=1):
            if not st.ok and mode == 'tracks':
                valid[k], reasons[k] = False, f'point tracks: {st.reason}'
            elif mode == 'tracks' and _empty(masks[k]):
                valid[k], reasons[k] = False, 'object mask vanished'
    bad = ~np.all(np.isfinite(poses), axis=(1, 2))
    for k in np.flatnonzero(bad):
        valid[k], reasons[k] = False, reasons[k] or 'non-finite pose'
    return ObjectTrackResult(poses, valid, reasons, scores, mode, time.perf_counter() - t_start, steps)


def to_trajectory(results: dict[str, ObjectTrackResult], stamps_ns: np.ndarray, method: str = '') -> PoseTrajectory:
    """A camera_optical PoseTrajectory from per-object results (invalid rows set to NaN-free poses
    but flagged invalid)."""
    ids = list(results)
    poses = np.stack([results[i].poses for i in ids]) if ids else np.zeros((0, len(stamps_ns), 4, 4))
    valid = np.stack([results[i].valid for i in ids]) if ids else np.zeros((0, len(stamps_ns)), bool)
    traj = PoseTrajectory(object_ids=ids, stamps_ns=np.asarray(stamps_ns, np.int64), poses=poses,
                          valid=valid, frame='camera_optical', method=method)
    traj.validate()
    return traj
