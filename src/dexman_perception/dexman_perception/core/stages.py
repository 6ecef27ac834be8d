"""The perception stages as interfaces: what every backend of a stage takes and returns.

Each stage has an embedded CPU default that works on this machine and optional foundation-model
backends (SAM2, VGGT, HaMeR, Trellis, FoundationPose, SpatialTracker, OWLv2, 4D-Humans) selected
by a node's `backend` parameter through `backends.registry`. Backends are imported lazily: a
missing package or checkpoint is a `BackendUnavailable` naming what to install, never a fake
result.

Conventions for every stage (REP 103): metres, radians; images are numpy arrays, RGB uint8
(H, W, 3); depth float32 (H, W) metres with 0 or NaN = unknown; masks bool (H, W);
intrinsics K (3, 3) with pixel centres at integer coordinates; 3D outputs in `camera_optical`
(OpenCV: z forward, x right, y down); poses are 4x4 T_camera_object.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence, runtime_checkable

import numpy as np


class BackendUnavailable(RuntimeError):
    """A backend cannot run here: its package, checkpoint or hardware is missing. The message
    names what to install or configure."""


class StageFailure(RuntimeError):
    """A stage ran but could not produce a result for this input (e.g. no hand found); the
    message says why. Nodes mark the frame invalid and go on."""


# ------------------------------------------------------------------------------ data types
@dataclasses.dataclass
class HandEstimate:
    """One 3D hand (dexman_msgs/Hand3D in numpy form)."""
    handedness: int                    # 0 LEFT, 1 RIGHT (the person's own hand)
    keypoints: np.ndarray              # (21, 3) camera_optical, m, MANO/OpenPose order
    keypoints_2d: np.ndarray           # (21, 2) pixels
    keypoint_confidence: np.ndarray    # (21,) [0, 1]
    confidence: float
    metric: bool                       # True: keypoints are metric (scale known), else up to scale
    vertices: np.ndarray | None = None  # (778, 3) MANO vertices when the backend gives them


@dataclasses.dataclass
class BodyEstimate:
    """Hips and pelvis (dexman_msgs/BodyPose in numpy form), camera_optical, m."""
    left_hip: np.ndarray
    right_hip: np.ndarray
    pelvis: np.ndarray
    confidence: float


@dataclasses.dataclass
class PointTracks:
    """Point tracks over a clip: positions (T, P, 2) pixels, visibility (T, P) bool, and 3D
    positions (T, P, 3) camera_optical m when the backend lifts them (else None)."""
    positions_2d: np.ndarray
    visible: np.ndarray
    positions_3d: np.ndarray | None = None


@dataclasses.dataclass
class PoseEstimate:
    """A 6D object pose T_camera_object with a score (higher is better) and validity."""
    T_camera_object: np.ndarray
    score: float
    valid: bool = True
    reason: str = ''


# ------------------------------------------------------------------------------ interfaces
@runtime_checkable
class Segmenter(Protocol):
    """Segment target objects through a clip (paper: SAM2 video predictor)."""
    def segment_video(self, frames: Sequence[np.ndarray],
                      prompts: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """prompts: object id -> first-frame prompt, a bool mask (H, W) or a box [x0, y0, x1, y1].
        Returns per frame {object id: bool mask (H, W)}."""


@runtime_checkable
class DepthEstimator(Protocol):
    """Per-frame depth (paper: VGGT on chunks; B.1 aligns chunks). `metric` says whether the
    output is metric or only relative (affine-ambiguous per chunk)."""
    metric: bool

    def predict(self, frames: Sequence[np.ndarray], K: np.ndarray | None) -> list[np.ndarray]:
        """Depth per frame (float32 (H, W)); one chunk: the frames share one unknown affine map
        when not metric."""


@runtime_checkable
class HandEstimator(Protocol):
    """3D hands in one image (paper: HaMeR)."""
    def estimate(self, rgb: np.ndarray, K: np.ndarray) -> list[HandEstimate]:
        ...


@runtime_checkable
class BodyEstimator(Protocol):
    """Hips and pelvis in one image (paper: 4D-Humans)."""
    def estimate(self, rgb: np.ndarray, K: np.ndarray, depth: np.ndarray | None) -> BodyEstimate | None:
        ...


@runtime_checkable
class MeshReconstructor(Protocol):
    """An object mesh from the first frame (paper: Trellis from the SAM2 crop; unscaled)."""
    def reconstruct(self, rgb: np.ndarray, mask: np.ndarray, depth: np.ndarray | None,
                    K: np.ndarray):
        """Returns a trimesh.Trimesh in its own frame (metric when depth is metric)."""


@runtime_checkable
class PoseRefiner(Protocol):
    """Register and refine a mesh's pose in an image (paper: FoundationPose)."""
    def register(self, rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray, mesh,
                 K: np.ndarray) -> PoseEstimate:
        ...

    def refine(self, rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray | None, mesh,
               K: np.ndarray, T_init: np.ndarray) -> PoseEstimate:
        ...


@runtime_checkable
class PointTracker(Protocol):
    """Dense point tracks through a clip (paper: SpatialTracker, 3D)."""
    def track(self, frames: Sequence[np.ndarray], queries: np.ndarray,
              depths: Sequence[np.ndarray] | None, K: np.ndarray) -> PointTracks:
        """queries: (P, 3) rows (frame index, x, y) in pixels."""
