"""CPU default of the hands stage: MediaPipe Tasks HandLandmarker + metric lifting.

    from dexman_perception.core.backends import registry
    with registry.create('hands', 'mediapipe') as hands:       # or hands.close() when done
        for hand in hands.estimate(rgb, K, depth=depth):        # depth optional
            ...                                                 # HandEstimate, camera_optical

MediaPipe finds up to ``num_hands`` hands and gives 21 image landmarks and 21 metric world
landmarks each; ``hand_lifting`` turns them into metric camera_optical keypoints, with the depth
image when given (RGB-D: the sensor's accuracy) and by PnP against the world landmarks otherwise
(RGB only: metric through MediaPipe's hand-size prior; see hand_lifting for the accuracy).

Handedness: MediaPipe Tasks' label, which on ordinary (non-mirrored) images is the person's own
hand (checked on the project's clips); pass ``mirrored=True`` for selfie-flipped input.
Hand confidence: MediaPipe's handedness score (the Tasks API exposes no other per-hand score;
hands under ``min_presence`` are already dropped inside MediaPipe). At most one hand per side is
returned (Hands3D), the more confident one.

Models: ``hand_landmarker.task`` (or ``_lite``) from ``mediapipe_models`` in ``model_dir``
(default: the project's model cache), built from the mediapipe 0.10.21 wheel. Missing mediapipe
or bundle -> BackendUnavailable naming the install / fetch command.

Close the landmarker (``close()`` or a ``with`` block): MediaPipe's C runtime shuts down its
dispatcher at interpreter exit, and closing after that fails.

Tunables (landmarker thresholds, running mode, model, lifting): ``MediaPipeHandsConfig``,
config/perception.yaml [mediapipe_hands]. Timing per frame: docs/perception.md (with the command).
"""
from __future__ import annotations

import dataclasses
import logging
import time

import numpy as np

from dexman_common.config import ConfigBase

from ..perception_config import YAML_FILE, configured
from ..stages import HandEstimate
from . import hand_lifting as hl
from . import mediapipe_models as mm
from .mediapipe_runtime import RUNNING_MODES, LandmarkerBackend, VideoClock, check_rgb  # noqa: F401

_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class MediaPipeHandsConfig(ConfigBase):
    """MediaPipe HandLandmarker runtime options and the lifting of its landmarks; values in
    config/perception.yaml [mediapipe_hands]."""

    SECTION = 'mediapipe_hands'
    YAML_FILE = YAML_FILE

    num_hands: int = 2                  # most hands MediaPipe looks for
    min_confidence: float = 0.5         # palm detection threshold
    min_presence: float = 0.5           # hand presence threshold
    min_tracking: float = 0.5           # VIDEO-mode tracking threshold
    running_mode: str = 'IMAGE'         # 'IMAGE' (independent frames) | 'VIDEO' (tracks between frames)
    model: str = 'full'                 # 'full' | 'lite'
    mirrored: bool = False              # selfie-mirrored input (swaps the labels)
    clock_fps: float = 30.0             # VIDEO mode without timestamps: the frame rate assumed
    fallback_confidence: float = hl.FALLBACK_CONFIDENCE   # x score, keypoints not measured in the depth
    lifting: hl.LiftingConfig = hl.LiftingConfig()        # hand_lifting.lift_with_depth at hand scale

    def __post_init__(self):
        if str(self.running_mode).upper() not in RUNNING_MODES:
            raise ValueError(f'running_mode must be one of {RUNNING_MODES}, got {self.running_mode!r}')
        if self.model not in ('full', 'lite'):
            raise ValueError(f"model must be 'full' or 'lite', got {self.model!r}")

class MediaPipeHands(LandmarkerBackend):
    """HandEstimator on CPU (see the module doc).

    model_dir: bundle directory (default: mediapipe_models.default_model_dir()).
    config: a MediaPipeHandsConfig (default: its defaults = config/perception.yaml
    [mediapipe_hands]); keyword overrides (its fields, e.g. a node's backend_options
    ``running_mode=VIDEO``, ``lifting={window: 3}``) replace its values. In VIDEO mode pass
    increasing ``timestamp`` seconds to ``estimate``.
    """
    CONFIG = MediaPipeHandsConfig

    def __init__(self, model_dir=None, config: MediaPipeHandsConfig | None = None, **overrides):
        cfg = self.config = configured(MediaPipeHandsConfig, config, overrides)
        mode = str(cfg.running_mode).upper()
        model, mirrored = cfg.model, cfg.mirrored
        num_hands, min_confidence = cfg.num_hands, cfg.min_confidence
        min_presence, min_tracking = cfg.min_presence, cfg.min_tracking
        mp = mm.import_mediapipe()
        path = mm.bundle_path(mm.HAND_BUNDLE if model == 'full' else mm.HAND_LITE_BUNDLE,
                              model_dir)
        from mediapipe.tasks.python import BaseOptions, vision
        self._mp = mp
        self.running_mode = mode
        self.mirrored = bool(mirrored)
        self.model_path = path
        options = vision.HandLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=getattr(vision.RunningMode, mode),
            num_hands=int(num_hands), min_hand_detection_confidence=float(min_confidence),
            min_hand_presence_confidence=float(min_presence),
            min_tracking_confidence=float(min_tracking))
        self._landmarker = vision.HandLandmarker.create_from_options(options)
        self._clock = VideoClock(cfg.clock_fps)
        self.last_timing_ms: dict[str, float] = {}

    # -------------------------------------------------------------------------- inference
    def estimate(self, rgb: np.ndarray, K: np.ndarray, depth: np.ndarray | None = None,
                 timestamp: float | None = None) -> list[HandEstimate]:
        """Hands in one image: [] when none. K: (3, 3) intrinsics of ``rgb``; depth: optional
        (H, W) metres registered to ``rgb`` (0/NaN unknown); timestamp: seconds (VIDEO mode)."""
        rgb = check_rgb(rgb)
        Hh, Ww = rgb.shape[:2]
        if K is None:
            raise ValueError('MediaPipeHands.estimate needs the intrinsics K for metric hands')
        if depth is not None and np.shape(depth) != (Hh, Ww):
            raise ValueError(f'depth {np.shape(depth)} does not match the image {(Hh, Ww)}')
        t0 = time.perf_counter()
        result = self.detect(rgb, timestamp)
        t1 = time.perf_counter()
        best: dict[int, HandEstimate] = {}
        for i, landmarks in enumerate(result.hand_landmarks):
            cat = result.handedness[i][0]
            img = np.array([[p.x, p.y, p.z] for p in landmarks], dtype=np.float64)
            world = np.array([[p.x, p.y, p.z] for p in result.hand_world_landmarks[i]],
                             dtype=np.float64)
            try:
                side = hl.handedness_from_label(cat.category_name or cat.display_name,
                                                self.mirrored)
                hand = hl.hand_from_mediapipe(img, world, side, float(cat.score), (Ww, Hh), K,
                                              depth=depth, lifting=self.config.lifting,
                                              fallback_confidence=self.config.fallback_confidence)
            except hl.LiftingError as e:
                _log.debug('hand %d dropped: %s', i, e)
                continue
            if side not in best or hand.confidence > best[side].confidence:
                best[side] = hand
        self.last_timing_ms = {'detect': (t1 - t0) * 1e3,
                               'lift': (time.perf_counter() - t1) * 1e3}
        return [best[s] for s in sorted(best)]
