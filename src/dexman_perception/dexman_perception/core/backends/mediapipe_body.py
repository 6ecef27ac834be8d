"""CPU default of the body stage: hips and pelvis from MediaPipe Tasks PoseLandmarker.

    with registry.create('body', 'mediapipe') as body:
        est = body.estimate(rgb, K, depth)       # BodyEstimate in camera_optical, or None

BlazePose (``pose_landmarker.task``, built by ``mediapipe_models`` from the pose_detection and
pose_landmark_full models of the mediapipe 0.10.21 wheel) gives 33 image landmarks with
visibility and 33 metric world landmarks (hip-centred). The body is placed in camera_optical like
the hands (``hand_lifting``): PnP of the world landmarks against the confidently seen image
landmarks (RGB only; metric through BlazePose's body-size prior, so the distance is off by the
person's size deviation), or with a depth image lifted landmark by landmark, the
hips falling back to the depth-anchored body model where the depth under them disagrees with it
(e.g. hips hidden behind the table read the table).

Hips: landmarks 23 (the person's own left hip) and 24 (right); pelvis = their midpoint (BodyPose).
Confidence: the smaller hip visibility x presence.

Limits seen on the project's clips: BlazePose's detector keys on the face/upper body; with the
head out of the frame (most tabletop clips) it finds no person, and ``estimate`` returns None;
hips behind a table are extrapolated by the model (their visibility stays high all the same).
The depth-lifted landmarks lie on the body's surface while BlazePose's joints are inside it
(behind the skin): the lifting's ``surface_offset`` shifts the depth-anchored body along the
optical axis if wanted. Tunables: ``MediaPipeBodyConfig``, config/perception.yaml [mediapipe_body].
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from dexman_common.config import ConfigBase

from ..perception_config import YAML_FILE, configured
from ..stages import BodyEstimate
from . import hand_lifting as hl
from . import mediapipe_models as mm
from .mediapipe_runtime import RUNNING_MODES, LandmarkerBackend, VideoClock, check_rgb

LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP = 11, 12, 23, 24
N_POSE = 33


@dataclasses.dataclass(frozen=True)
class MediaPipeBodyConfig(ConfigBase):
    """MediaPipe PoseLandmarker runtime options and the lifting of its landmarks (body scale);
    values in config/perception.yaml [mediapipe_body]."""

    SECTION = 'mediapipe_body'
    YAML_FILE = YAML_FILE

    min_confidence: float = 0.5         # pose detection threshold
    min_presence: float = 0.5           # pose presence threshold
    min_tracking: float = 0.5           # VIDEO-mode tracking threshold
    min_visibility: float = 0.5         # landmarks below it are not used to place the body
    running_mode: str = 'IMAGE'         # 'IMAGE' | 'VIDEO'
    clock_fps: float = 30.0             # VIDEO mode without timestamps: the frame rate assumed
    lifting: hl.LiftingConfig = hl.LiftingConfig(window=3, max_dev=0.4, tol=0.08)   # at body scale

    def __post_init__(self):
        if str(self.running_mode).upper() not in RUNNING_MODES:
            raise ValueError(f'running_mode must be one of {RUNNING_MODES}, got {self.running_mode!r}')


class MediaPipeBody(LandmarkerBackend):
    """BodyEstimator on CPU (see the module doc).

    model_dir: bundle directory (default: the project's model cache). config: a
    MediaPipeBodyConfig (default: its defaults = config/perception.yaml [mediapipe_body]);
    keyword overrides (its fields, e.g. a node's backend_options ``min_visibility=0.3``) replace
    its values.
    """
    CONFIG = MediaPipeBodyConfig

    def __init__(self, model_dir=None, config: MediaPipeBodyConfig | None = None, **overrides):
        cfg = self.config = configured(MediaPipeBodyConfig, config, overrides)
        mode = str(cfg.running_mode).upper()
        min_confidence, min_presence, min_tracking = cfg.min_confidence, cfg.min_presence, cfg.min_tracking
        mp = mm.import_mediapipe()
        path = mm.bundle_path(mm.POSE_BUNDLE, model_dir)
        from mediapipe.tasks.python import BaseOptions, vision
        self._mp = mp
        self.running_mode = mode
        self.min_visibility = float(cfg.min_visibility)
        self.model_path = path
        options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=getattr(vision.RunningMode, mode), num_poses=1,
            min_pose_detection_confidence=float(min_confidence),
            min_pose_presence_confidence=float(min_presence),
            min_tracking_confidence=float(min_tracking), output_segmentation_masks=False)
        self._landmarker = vision.PoseLandmarker.create_from_options(options)
        self._clock = VideoClock(cfg.clock_fps)
        self.last_timing_ms: dict[str, float] = {}
        self.last_landmarks: np.ndarray | None = None     # (33, 3) camera_optical of the last body

    def estimate(self, rgb: np.ndarray, K: np.ndarray, depth: np.ndarray | None = None,
                 timestamp: float | None = None) -> BodyEstimate | None:
        """Hips and pelvis in camera_optical (m), or None when no body is found or it cannot be
        placed."""
        rgb = check_rgb(rgb)
        Hh, Ww = rgb.shape[:2]
        if K is None:
            raise ValueError('MediaPipeBody.estimate needs the intrinsics K')
        if depth is not None and np.shape(depth) != (Hh, Ww):
            raise ValueError(f'depth {np.shape(depth)} does not match the image {(Hh, Ww)}')
        t0 = time.perf_counter()
        result = self.detect(rgb, timestamp)
        t1 = time.perf_counter()
        self.last_landmarks = None
        if not result.pose_landmarks:
            self.last_timing_ms = {'detect': (t1 - t0) * 1e3, 'lift': 0.0}
            return None
        lms, world_lms = result.pose_landmarks[0], result.pose_world_landmarks[0]
        norm = np.array([[p.x, p.y] for p in lms], dtype=np.float64)
        vis = np.array([p.visibility if p.visibility is not None else 1.0 for p in lms])
        pres = np.array([p.presence if p.presence is not None else 1.0 for p in lms])
        world = np.array([[p.x, p.y, p.z] for p in world_lms], dtype=np.float64)
        uv = hl.normalized_to_pixels(norm, Ww, Hh)
        use = hl.inside_image(uv, Ww, Hh) & (vis >= self.min_visibility)
        try:
            if depth is not None:
                points = hl.lift_with_depth(uv, world, depth, K, use=use,
                                            config=self.config.lifting).points
            else:
                points = hl.rgb_only_points(uv, world, K, use=use)
        except hl.LiftingError:
            self.last_timing_ms = {'detect': (t1 - t0) * 1e3,
                                   'lift': (time.perf_counter() - t1) * 1e3}
            return None
        self.last_landmarks = points
        left, right = points[LEFT_HIP], points[RIGHT_HIP]
        conf = float(np.clip(min(vis[LEFT_HIP] * pres[LEFT_HIP],
                                 vis[RIGHT_HIP] * pres[RIGHT_HIP]), 0.0, 1.0))
        self.last_timing_ms = {'detect': (t1 - t0) * 1e3, 'lift': (time.perf_counter() - t1) * 1e3}
        return BodyEstimate(left_hip=left.copy(), right_hip=right.copy(),
                            pelvis=0.5 * (left + right), confidence=conf)
