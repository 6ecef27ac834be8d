"""The paper's fused object-pose tracker (Sec. 3.2, Appendix B.3) and its two ablations.

For k = 1..N-1:

    fused     ΔT_{k-1}^k from the object's 3D point tracks (Kabsch + RANSAC,
              track_propagation.propagate_pose_from_tracks), T_k^init = ΔT · T_{k-1},
              T_k = refiner.refine(frame k, T_k^init), fused with T_k^init (below)
    refiner   (ablation a) T_k^init = T_{k-1}, T_k = refiner.refine(frame k, T_k^init)
    tracks    (ablation b) T_k = ΔT · T_{k-1}, no refinement

T_0 comes from refiner.register on frame 0 (or is given). Works with any PoseRefiner /
PointTracker backend (CPU defaults: IcpRefiner, LucasKanadeTracker).

Fusion (fused mode, when the refiner reports the information matrix of its result, as IcpRefiner
does in `last_information`): a small information filter on the object-frame twist. The pose
covariance grows every step by the track step's noise (track_sigma + track_sigma_rmse x the Kabsch
inlier RMSE; lost_sigma when the tracks fail); the refinement is combined with the prediction in
the tangent space at T_k^init, so that what the depth constrains comes from the refinement and what
it does not (the spin of a can, the slide of a handle along its axis, a flat face sliding in its
plane, a partly hidden object) from the tracks. When the two disagree beyond chance (normalised
innovation squared > gate_chi2): if the mask covers at least min_coverage of the object's
silhouette at T_k^init, the refinement is taken alone (LK loses fast rotations, e.g. pouring);
otherwise the tracks are kept (a hand hides most of the object and the few points left fit
anywhere; status 'predicted', valid). A refiner without `last_information` (FoundationPose) gives
T_k as is.

Two forms share one per-step chain (`ObjectPoseStream._advance`):
* `ObjectPoseStream` (online, for nodes that receive one frame at a time): start(frame 0) then
  step(frame k) -> FramePose. Needs a tracker with `stream(K)` (LucasKanadeTracker), or none
  ('refiner' mode).
* `track_object` (a whole clip): runs the stream over the frames; with precomputed `tracks=` or a
  batch-only tracker backend (SpatialTracker) the tracks are computed for the whole clip first and
  the same chain consumes them frame by frame.

Per frame, status: 'tracking' (a refinement was accepted, or in 'tracks' mode the tracks gave the
motion), 'predicted' (propagated by the tracks without an accepted refinement), 'lost' (nothing
usable: the last pose is kept). Invalid frames are marked, never raised: a vanished (empty) mask,
too few object points with depth (NaN / missing depth), a refinement below the refiner's score
(fused and refiner modes: a frame is valid only with an accepted refinement, or in fused mode
the tracks-kept case above), or (tracks) fewer than `min_tracks` usable 3D tracks. The chain carries on through an invalid frame from its best
guess (T_init for the refiner modes, T_{k-1} when the tracks fail), so the object can be
re-acquired (`project_mask` gives the segmenter the silhouette at that guess). Output poses are
T_camera_object in `camera_optical`.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Sequence

import numpy as np

from dexman_common import geometry as rt
from dexman_common.camera import project_points
from dexman_common.config import ConfigBase

from . import track_propagation as tp
from .perception_config import YAML_FILE, configured
from .pose_trajectory import PoseTrajectory

MODES = ('fused', 'refiner', 'tracks')
STATUSES = ('tracking', 'predicted', 'lost')


@dataclasses.dataclass(frozen=True)
class TrackerConfig(ConfigBase):
    """Tunables of the fused tracker (module docstring); values in config/perception.yaml [tracker]."""

    SECTION = 'tracker'
    YAML_FILE = YAML_FILE

    mode: str = 'fused'                 # 'fused' | 'refiner' | 'tracks' (paper Table 1 ablations)
    n_queries: int = 200                # point tracks sampled in the first mask
    ransac_threshold: float | None = 0.01   # m, RANSAC inlier distance of the track step (None: plain LSQ)
    min_tracks: int = 6                 # fewest usable 3D tracks for a track step
    track_sigma: float = 0.0003         # m, pose noise added per track step
    track_sigma_rmse: float = 2.0       # x the Kabsch inlier RMSE, added to track_sigma
    lost_sigma: float = 0.03            # m, pose noise of a step without usable tracks
    gate_chi2: float = 22.5             # normalised innovation squared above which the two disagree
    min_coverage: float = 0.4           # mask / silhouette at T_init above which the refinement wins a disagreement
    initial_sigma: float = 0.002        # m, pose covariance at registration (rotations / radius)
    max_speed: float | None = 1.0       # m/s, fastest plausible object motion (None: no check)
    max_gap_s: float = 0.25             # s, the jump allowance grows with the time since the last valid pose up to this
    jump_noise: float = 0.02            # m, pose noise allowed on top of max_speed x time

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {self.mode!r}')


@dataclasses.dataclass
class ObjectTrackResult:
    poses: np.ndarray            # (N, 4, 4) T_camera_object
    valid: np.ndarray            # (N,) bool
    reasons: list[str]           # '' where valid
    scores: np.ndarray           # (N,) refiner score (NaN where not refined)
    mode: str
    seconds: float               # tracking time (registration, tracks and chain), s
    steps: list = dataclasses.field(default_factory=list)   # track_propagation.TrackingStep per k >= 1
    status: list = dataclasses.field(default_factory=list)  # FramePose.status per frame


@dataclasses.dataclass
class FramePose:
    """One frame of an ObjectPoseStream."""
    T_camera_object: np.ndarray          # (4, 4) camera_optical
    valid: bool
    reason: str                          # '' when valid
    score: float                         # refiner score, NaN when not refined
    status: str                          # 'tracking' | 'predicted' | 'lost'
    tracks_2d: np.ndarray                # (M, 2) current 2D track positions (pixels), for display
    track_ids: np.ndarray                # (M,) their ids
    step: tp.TrackingStep | None = None  # the k-1 -> k track step (None: first frame / no tracks)
    points_3d: np.ndarray | None = None  # (M, 3) the tracks in camera_optical (m; NaN without depth)


def _empty(m) -> bool:
    return m is None or not np.any(m)


def _gray(f):
    import cv2
    f = np.asarray(f)
    return f if f.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(f, np.uint8), cv2.COLOR_RGB2GRAY)


class _StreamTracks:
    """Track source over an online tracker (LkStream)."""

    def __init__(self, tracker, K, n_queries):
        self.s = tracker.stream(K)
        self.n_queries = n_queries

    def start(self, rgb, depth, mask):
        from .backends.lk_tracks import sample_points
        if not _empty(mask):
            self.s.add_queries(sample_points(mask, self.n_queries, gray=_gray(rgb)))
        f = self.s.start(rgb, depth, mask)
        return f.xy, f.ids, f.points_3d

    def step(self, rgb, depth, mask):
        f = self.s.step(rgb, depth, mask)
        return f.prev_points_3d, f.curr_points_3d, f.xy, f.ids, f.points_3d


class _PrecomputedTracks:
    """Track source over PointTracks computed for the whole clip (frame by frame)."""

    def __init__(self, tracks):
        if tracks.positions_3d is None:
            raise ValueError('the point tracker gave no 3D positions (needs depth)')
        self.P3 = np.asarray(tracks.positions_3d, np.float64)
        self.P2 = np.asarray(tracks.positions_2d, np.float64)
        self.vis = np.asarray(tracks.visible, bool)
        self.k = 0

    def _now(self, k):
        v = np.flatnonzero(self.vis[k])
        return self.P2[k, v], v, self.P3[k, v]

    def start(self, rgb, depth, mask):
        self.k = 0
        return self._now(0)

    def step(self, rgb, depth, mask):
        self.k += 1
        k = self.k
        if k >= len(self.P3):
            raise IndexError(f'the precomputed tracks have {len(self.P3)} frames')
        use = self.vis[k - 1] & self.vis[k]
        use &= np.isfinite(self.P3[k - 1]).all(1) & np.isfinite(self.P3[k]).all(1)
        xy, ids, p3 = self._now(k)
        return self.P3[k - 1, use], self.P3[k, use], xy, ids, p3


class ObjectPoseStream:
    """Online object pose tracking (one object): start(frame 0) then step(frame k) -> FramePose.

    refiner: a PoseRefiner (default: the registry's CPU default); tracker: a point tracker with
    `stream(K)` (default: the registry's); config: a TrackerConfig (default: its defaults, which
    equal config/perception.yaml [tracker]); mode and keyword overrides (any TrackerConfig field:
    n_queries, ransac_threshold, min_tracks of the track step; track_sigma, track_sigma_rmse,
    lost_sigma, gate_chi2, min_coverage of the fusion; max_speed, max_gap_s, jump_noise of the
    plausibility check of `_out`, only with step(..., dt)) replace its values. `Sigma` is the
    current 6x6 pose covariance (object-frame twist (ω, u)), fused mode."""

    def __init__(self, refiner=None, tracker=None, mode: str | None = None, *,
                 config: TrackerConfig | None = None, _tracks=None, **overrides):
        if mode is not None:
            if mode not in MODES:
                raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
            overrides['mode'] = mode
        cfg = self.config = configured(TrackerConfig, config, overrides)
        mode = cfg.mode
        self.track_sigma = cfg.track_sigma
        self.track_sigma_rmse = cfg.track_sigma_rmse
        self.lost_sigma = cfg.lost_sigma
        self.gate_chi2 = cfg.gate_chi2
        self.min_coverage = cfg.min_coverage
        self.max_speed = cfg.max_speed
        self.max_gap_s = cfg.max_gap_s
        self._t = 0.0                                               # seconds since start (from step dt)
        self._dt_known = False
        self._last_valid: tuple[float, np.ndarray] | None = None   # (time, position) of the last valid pose
        self.last_coverage = float('nan')
        self.last_nis = float('nan')          # fused: normalised innovation squared of the last fusion
        from .backends import registry
        self.refiner = refiner if refiner is not None else registry.create('pose', registry.default('pose'))
        self.mode = mode
        self.n_queries = cfg.n_queries
        self.ransac_threshold = cfg.ransac_threshold
        self.min_tracks = cfg.min_tracks
        self._precomputed = _tracks
        self.tracker = tracker
        if mode != 'refiner' and _tracks is None:
            if self.tracker is None:
                self.tracker = registry.create('tracks', registry.default('tracks'))
            if not hasattr(self.tracker, 'stream'):
                raise ValueError(f'{type(self.tracker).__name__} has no online form (stream); use '
                                 'track_object on the whole clip')
        self._src = None
        self.T = None
        self.k = -1

    # ------------------------------------------------------------------------------------ API
    def start(self, rgb, depth, mask, mesh, K, T0: np.ndarray | None = None) -> FramePose:
        """Frame 0: T0 given, else refiner.register on the mask (raises ValueError when the mask
        is empty or registration gives no finite pose)."""
        self.mesh = mesh
        self.K = np.asarray(K, np.float64)
        self.k = 0
        self._t = 0.0
        self._last_valid = None
        score, valid, reason = float('nan'), True, ''
        if T0 is None:
            if _empty(mask):
                raise ValueError('the first frame has no object mask: nothing to register')
            est = self.refiner.register(rgb, depth, mask, mesh, self.K)
            T0 = est.T_camera_object
            score = float(est.score)
            if not est.valid:
                valid, reason = False, f'registration failed: {est.reason}'
                if not np.all(np.isfinite(T0)):
                    raise ValueError(f'registration failed on the first frame: {est.reason}')
        self.T = np.asarray(T0, np.float64).copy()
        # fused: covariance of the pose (object-frame twist (ω, u)), rotations scaled by the radius
        V = np.asarray(getattr(mesh, 'vertices', np.zeros((2, 3))), np.float64).reshape(-1, 3)
        self._radius = max(0.5 * float(np.linalg.norm(np.ptp(V, axis=0))), 1e-3) if len(V) else 0.05
        self._scale = np.array([self._radius] * 3 + [1.0] * 3)
        self.Sigma = self._iso(self.config.initial_sigma)
        xy, ids, p3 = np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros((0, 3))
        if self.mode != 'refiner':
            if self._precomputed is not None:
                self._src = _PrecomputedTracks(self._precomputed)
            else:
                if depth is None:
                    raise ValueError('3D point tracks need depth')
                self._src = _StreamTracks(self.tracker, self.K, self.n_queries)
            xy, ids, p3 = self._src.start(rgb, depth, mask)
        self._p3 = p3
        return self._out(self.T, valid, reason, score, 'tracking' if valid else 'lost', xy, ids, None)

    def step(self, rgb, depth, mask, dt: float | None = None) -> FramePose:
        """Next frame; dt: seconds since the previous frame (enables the max_speed check)."""
        if self.T is None:
            raise RuntimeError('ObjectPoseStream.step() before start()')
        self.k += 1
        self._dt_known = dt is not None and dt > 0
        self._t += dt if self._dt_known else 0.0
        return self._advance(rgb, depth, mask)

    # ------------------------------------------------------------------------------------ chain
    def _advance(self, rgb, depth, mask) -> FramePose:
        T_prev = self.T
        step = None
        xy, ids, self._p3 = np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros((0, 3))
        if self.mode != 'refiner':
            P_prev, P_curr, xy, ids, self._p3 = self._src.step(rgb, depth, mask)
            step = tp.propagate_pose_from_tracks(P_prev, P_curr, T_prev,
                                                 ransac_threshold=self.ransac_threshold,
                                                 min_tracks=self.min_tracks)
        if self.mode == 'tracks':
            T = step.T_init
            if not step.ok:
                return self._out(T, False, f'point tracks: {step.reason}', float('nan'), 'lost', xy, ids, step)
            if _empty(mask):
                return self._out(T, False, 'object mask vanished', float('nan'), 'predicted', xy, ids, step)
            return self._out(T, True, '', float('nan'), 'tracking', xy, ids, step)
        T_init = T_prev if step is None else step.T_init
        tracked = step is not None and step.ok
        fallback = 'predicted' if tracked else 'lost'
        # covariance of T_init: the previous one grown by the track step's noise (no motion
        # information: lost_sigma)
        fused = self.mode == 'fused'
        if fused:
            sig = self.track_sigma + self.track_sigma_rmse * float(step.rmse) if tracked else self.lost_sigma
            S_pred = self.Sigma + self._iso(sig)
            self.Sigma = S_pred
        if _empty(mask):
            return self._out(T_init, False, 'object mask vanished', float('nan'), fallback, xy, ids, step)
        est = self.refiner.refine(rgb, depth, mask, self.mesh, self.K, T_init)
        info = getattr(self.refiner, 'last_information', None) if est.valid and fused else None
        if info is not None:
            info = np.asarray(info, np.float64)
            if tracked:
                est = self._fuse(T_init, est, info, S_pred, mask)
                if est is None:          # an unreliable refinement against the tracks: keep them
                    return self._out(T_init, True, '', float('nan'), 'predicted', xy, ids, step)
            else:
                self.Sigma = np.linalg.inv(info + np.linalg.inv(S_pred))
        if not est.valid:
            return self._out(T_init, False, est.reason or 'refinement failed', float(est.score), fallback,
                             xy, ids, step)
        return self._out(est.T_camera_object, True, '', float(est.score), 'tracking', xy, ids, step)

    def _fuse(self, T_init, est, info, S_pred, mask):
        """Information-form fusion of the track prediction T_init (covariance Sigma + the track
        step's noise) and the refinement (information `info`), in the object-frame tangent space
        at T_init. When the two disagree beyond chance (normalised innovation squared above
        `gate_chi2`), the refinement alone when the mask covers at least min_coverage of the
        silhouette at T_init, else None (keep the prediction)."""
        E = rt.invert_transform(T_init) @ est.T_camera_object
        xi = np.concatenate([rt.axis_angle_from_rotation(E[:3, :3]), E[:3, 3]])
        L_pred = np.linalg.inv(S_pred)
        S_post = np.linalg.inv(L_pred + info)
        S_post = 0.5 * (S_post + S_post.T)
        g = info @ xi
        xi_post = S_post @ g
        # NIS = ξᵀ (S_pred + info⁻¹)⁻¹ ξ = ξᵀ info ξ − gᵀ (L_pred + info)⁻¹ g (no inverse of info)
        nis = float(xi @ g - g @ xi_post)
        self.last_nis = nis
        if nis > self.gate_chi2:
            # disagreement: believe the refinement when it saw enough of the object (the tracks
            # lose fast rotations), the tracks when it did not (a hand covers most of the object
            # and a few points fit anywhere)
            sil = np.count_nonzero(project_mask(self.mesh, T_init, self.K, np.shape(mask)))
            coverage = np.count_nonzero(mask) / max(sil, 1)
            self.last_coverage = coverage
            if coverage < self.min_coverage:
                self.Sigma = S_pred
                return None
            self.Sigma = np.linalg.inv(info + np.linalg.inv(self._iso(self.lost_sigma)))
            return est
        self.Sigma = S_post
        T = T_init @ _exp_twist(xi_post)
        return dataclasses.replace(est, T_camera_object=T)

    def _iso(self, sigma_m: float) -> np.ndarray:
        """A covariance of sigma_m metres in translation and sigma_m / radius in rotation."""
        return np.diag((sigma_m / self._scale) ** 2)

    def _out(self, T, valid, reason, score, status, xy, ids, step) -> FramePose:
        T = np.asarray(T, np.float64)
        if not np.all(np.isfinite(T)):
            valid, reason = False, reason or 'non-finite pose'
        if valid and self.max_speed is not None and self._dt_known and self._last_valid is not None:
            # plausibility (only when step() is given the frame interval): a held object moves at
            # most max_speed (m/s); a pose farther from the last valid one -- refined onto a mask
            # that latched onto something else -- is rejected. The allowance grows with the time
            # since that pose up to max_gap_s: an object that moved farther while lost is not
            # re-acquired rather than re-acquired onto something else. jump_noise for pose noise.
            t0, p0 = self._last_valid
            jump = float(np.linalg.norm(T[:3, 3] - p0))
            if jump > self.max_speed * min(self._t - t0, self.max_gap_s) + self.config.jump_noise:
                reason = f'implausible jump of {jump:.2f} m in {self._t - t0:.2f} s'
                valid, status, T = False, 'lost', self.T if self.T is not None else T
        if valid:
            self._last_valid = (self._t, T[:3, 3].copy())
        self.T = T.copy()
        return FramePose(T.copy(), bool(valid), reason, score, status, np.asarray(xy).reshape(-1, 2),
                         np.asarray(ids).reshape(-1), step, np.asarray(self._p3).reshape(-1, 3))


def project_mask(mesh, T_camera_object: np.ndarray, K: np.ndarray, shape: tuple[int, int],
                 with_depth: bool = False) -> np.ndarray:
    """(H, W) bool silhouette of a mesh at a pose (its camera-facing triangles filled; faces with a
    vertex behind the camera skipped): the prior a segmenter can use to find the object where the
    tracker expects it (`DepthColorSegmenter.step(..., priors=...)`). with_depth: a float32 depth
    map instead (metres, +inf off the silhouette; painter's algorithm on the triangles' mean depth),
    which also tells the segmenter the expected depth range."""
    import cv2
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    zmap = np.full((h, w), np.inf, np.float32) if with_depth else None
    T = np.asarray(T_camera_object, np.float64)
    if not np.all(np.isfinite(T)):
        return zmap if with_depth else out.astype(bool)
    V = np.asarray(mesh.vertices, np.float64) @ T[:3, :3].T + T[:3, 3]
    F = np.asarray(mesh.faces, np.int64)
    front = V[:, 2] > 1e-3
    F = F[front[F].all(1)]
    if len(F):
        uv = project_points(V, K)                  # NaN behind the camera: those faces are gone
        tri = np.round(np.clip(uv[F], -4 * max(h, w), 4 * max(h, w)) * 4).astype(np.int32)
        e1, e2 = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]
        facing = (e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]) > 0   # camera-facing (image y down)
        if not with_depth:
            for t in tri[facing]:
                cv2.fillConvexPoly(out, t, 1, lineType=cv2.LINE_8, shift=2)
            return out.astype(bool)
        zf = V[F[facing], 2].mean(1)
        for i in np.argsort(-zf):                     # far to near
            out[:] = 0
            cv2.fillConvexPoly(out, tri[facing][i], 1, lineType=cv2.LINE_8, shift=2)
            zmap[out > 0] = zf[i]
    return zmap if with_depth else out.astype(bool)


def _exp_twist(xi: np.ndarray) -> np.ndarray:
    return rt.make_transform(rt.rotation_from_axis_angle(xi[:3]), xi[3:])


def track_object(frames: Sequence[np.ndarray], depths: Sequence[np.ndarray] | None,
                 masks: Sequence[np.ndarray | None], mesh, K: np.ndarray, *, refiner=None,
                 tracker=None, mode: str | None = None, T0: np.ndarray | None = None,
                 tracks=None, config: TrackerConfig | None = None, **overrides) -> ObjectTrackResult:
    """Track one object through a clip. masks: per-frame bool masks (None/empty = vanished).
    tracks: precomputed PointTracks with positions_3d (else `tracker` is run: online when it has
    `stream`, else on queries sampled in the first mask for the whole clip first). config, mode
    and keyword overrides (TrackerConfig fields) as ObjectPoseStream. Returns poses, validity and
    reasons per frame. The batch form of ObjectPoseStream."""
    if mode is not None:
        if mode not in MODES:
            raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
        overrides['mode'] = mode
    config = configured(TrackerConfig, config, overrides)
    mode, n_queries = config.mode, config.n_queries
    from .backends import registry
    if refiner is None:
        refiner = registry.create('pose', registry.default('pose'))
    n = len(frames)
    K = np.asarray(K, np.float64)
    dep = (lambda k: None) if depths is None else (lambda k: depths[k])
    t_start = time.perf_counter()
    if n == 0:
        return ObjectTrackResult(np.zeros((0, 4, 4)), np.ones(0, bool), [], np.zeros(0), mode, 0.0)
    if mode != 'refiner':
        if tracker is None and tracks is None:
            tracker = registry.create('tracks', registry.default('tracks'))
        if tracks is None and not hasattr(tracker, 'stream'):   # a batch-only backend: whole clip first
            from .backends.lk_tracks import sample_queries
            if depths is None:
                raise ValueError('3D point tracks need depth')
            if _empty(masks[0]):
                raise ValueError('the first frame has no object mask: nothing to track')
            q = sample_queries(masks[0], n_queries, 0, gray=_gray(frames[0]))
            try:
                tracks = tracker.track(frames, q, depths, K, masks=masks)
            except TypeError:   # a backend without mask support
                tracks = tracker.track(frames, q, depths, K)
    stream = ObjectPoseStream(refiner, tracker, config=config, _tracks=tracks)
    out = [stream.start(frames[0], dep(0), masks[0], mesh, K, T0)]
    for k in range(1, n):
        out.append(stream.step(frames[k], dep(k), masks[k]))
    return _result(out, mode, time.perf_counter() - t_start)


def _result(out: list[FramePose], mode: str, seconds: float) -> ObjectTrackResult:
    return ObjectTrackResult(poses=np.stack([f.T_camera_object for f in out]),
                             valid=np.array([f.valid for f in out], bool),
                             reasons=[f.reason for f in out],
                             scores=np.array([f.score for f in out], np.float64),
                             mode=mode, seconds=seconds,
                             steps=[f.step for f in out[1:]] if mode != 'refiner' else [],
                             status=[f.status for f in out])


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
