"""What the MediaPipe Tasks landmarker backends (hands, body) share: input checks, the VIDEO-mode
clock, and the landmarker's lifecycle (close it explicitly: an interpreter exit that finds it
open raises inside MediaPipe)."""
from __future__ import annotations

import numpy as np

from ._adapter_util import check_rgb as _check_rgb

RUNNING_MODES = ('IMAGE', 'VIDEO')


def check_rgb(rgb) -> np.ndarray:
    """A C-contiguous uint8 (H, W, 3) RGB image (MediaPipe needs contiguity), or ValueError."""
    return np.ascontiguousarray(_check_rgb(rgb))


class VideoClock:
    """Strictly increasing millisecond timestamps for MediaPipe's VIDEO mode: the caller's time
    (seconds) when given, else a 30 fps counter; never equal or decreasing."""

    def __init__(self, fps: float = 30.0):
        self._last = -1
        self._step = max(int(round(1000.0 / fps)), 1)

    def next(self, timestamp: float | None) -> int:
        ms = self._last + self._step if timestamp is None else int(round(timestamp * 1000.0))
        ms = max(ms, self._last + 1)
        self._last = ms
        return ms


class LandmarkerBackend:
    """Base of the landmarker backends: subclasses set `_mp` (the mediapipe module),
    `_landmarker`, `running_mode` and `_clock` in their constructor."""
    _landmarker = None

    def close(self) -> None:
        lm, self._landmarker = getattr(self, '_landmarker', None), None
        if lm is not None:
            lm.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:    # noqa: BLE001  (interpreter shutdown: the runtime is gone)
            pass

    def detect(self, rgb: np.ndarray, timestamp: float | None = None):
        """MediaPipe's raw landmarker result for one RGB image."""
        if self._landmarker is None:
            raise RuntimeError(f'{type(self).__name__} is closed')
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=check_rgb(rgb))
        if self.running_mode == 'VIDEO':
            return self._landmarker.detect_for_video(image, self._clock.next(timestamp))
        return self._landmarker.detect(image)
