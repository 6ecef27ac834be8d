"""Metric 3D hands (and other landmark sets) in camera_optical from MediaPipe-style landmarks.

MediaPipe's HandLandmarker gives, per hand,
    * 21 image landmarks: x, y normalised to the image width/height (0 = left/top edge, 1 =
      right/bottom edge), z a relative depth (wrist-relative, unitless: NOT used here);
    * 21 world landmarks: metres, origin near the hand's centre, in MediaPipe's own axes (a
      rotation of the camera axes that MediaPipe predicts; a proper, right-handed frame: on the
      project's clips palm-down hands placed by a proper-rotation PnP get the dorsal wrist axis
      towards the camera, and a z-mirrored copy fits no better).
      On real frames the rigid world landmarks reproject several pixels off the image landmarks
      (docs/perception.md): the two outputs are not exactly consistent.
This module turns the pair into keypoints in ``camera_optical`` (OpenCV: x right, y down,
z forward; metres; pixel centres at integer coordinates) in two ways:

(a) ``lift_with_depth`` (a depth image is available, RGB-D): the 2D landmarks are kept (they are
    MediaPipe's most accurate output) and each gets the depth measured under it: the median of a
    small window, restricted to values near the hand's median depth (rejects background and
    flying pixels at finger borders). The world landmarks, placed by PnP (below), give each
    keypoint's expected relative depth; measurements that disagree with that shape by more than
    ``tol`` (occluders in front of the hand, holes filled by the background) are rejected, and
    every rejected or unmeasured keypoint falls back to the world-landmark geometry anchored at the
    hand's measured depth (z = z_model + median offset of the measured keypoints). Accuracy is the
    depth sensor's for measured keypoints (tests/test_hand_lifting.py bounds it); fallback
    keypoints carry the world landmarks' shape error. A keypoint hidden behind the hand's own
    fingers (fingertips curled away from the camera) reads the occluding finger: too near by up
    to ``tol``. The sensor sees the skin surface, not the joint centre (about one finger radius
    behind it): ``surface_offset`` adds a constant to z if wanted.
    Tunables: ``LiftingConfig`` (config/perception.yaml [hand_lifting]; the MediaPipe hands and
    body backends carry their own, body-scale for the body).

(b) ``place_with_pnp`` (RGB only): a PnP fit (OpenCV SQPnP, then Levenberg-Marquardt refinement)
    of the metric world landmarks to the 2D landmarks with the intrinsics K gives the hand's
    rotation and metric translation; ``rgb_only_points`` keeps each 2D landmark's ray and takes
    its depth from that placement. It is metric only through the *size* of MediaPipe's world
    landmarks, which is the model's prior of an adult hand, not the observed person's: the
    distance scales with the hand-size error (a hand larger than the prior by some fraction
    appears closer by that fraction). The error is almost all along the viewing ray: the 2D
    landmarks fix the bearing. On real MediaPipe output, whose world landmarks disagree with its
    image landmarks and whose size is a prior, two hands of one person can come out at visibly
    different depths; far hands, small hands in the image and fingers pointing at the camera are
    worst. Measured accuracy: docs/perception.md. Use a depth image whenever there is one.

Keypoint order: MediaPipe's 21 hand landmarks (WRIST, THUMB_CMC, THUMB_MCP, THUMB_IP, THUMB_TIP,
INDEX_FINGER_MCP ... PINKY_TIP) are in exactly the MANO/OpenPose 21-keypoint order of
dexman_msgs/Hand3D (0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index MCP, PIP, DIP, tip; 9-12
middle; 13-16 ring; 17-20 little), so ``MEDIAPIPE_TO_HAND3D`` is the identity (checked against
``mediapipe.tasks.python.vision.hand_landmarker.HandLandmark`` in the tests).

Nothing here imports rclpy or mediapipe.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from dexman_common.camera import project_points, unproject_pixels
from dexman_common.config import ConfigBase
from dexman_common.geometry import quat_from_matrix as quaternion_xyzw  # noqa: F401 (x, y, z, w), w >= 0

from ..perception_config import YAML_FILE, configured
from ..stages import HandEstimate

LEFT, RIGHT = 0, 1
N_HAND = 21
MEDIAPIPE_TO_HAND3D = np.arange(N_HAND)     # identity: same order (see module doc)
WRIST, MIDDLE_MCP, INDEX_MCP, LITTLE_MCP = 0, 9, 5, 17
FALLBACK_CONFIDENCE = 0.5                   # keypoint confidence factor when depth was not used


class LiftingError(ValueError):
    """The landmarks cannot be placed (too few points, degenerate geometry, bad input)."""


@dataclasses.dataclass(frozen=True)
class LiftingConfig(ConfigBase):
    """Tunables of ``lift_with_depth``; values in config/perception.yaml [hand_lifting]."""

    SECTION = 'hand_lifting'
    YAML_FILE = YAML_FILE

    window: int = 2                 # px, half size of the median window
    max_dev: float = 0.10           # m, depth values farther than this from the hand's median are ignored
    tol: float = 0.025              # m, a measurement off the placed model by more falls back to the model
    min_measured: int = 3           # fewer measured keypoints: no depth anchor (RGB-only placement)
    surface_offset: float = 0.0     # m, added to z (skin surface -> joint centre)


@dataclasses.dataclass
class Placement:
    """A rigid placement of model points in camera_optical: p_cam = R @ p_model + t."""
    R: np.ndarray                # (3, 3)
    t: np.ndarray                # (3,)
    points: np.ndarray           # (N, 3) the placed model points
    rms_px: float                # RMS reprojection error of the used points, pixels


@dataclasses.dataclass
class Lifted:
    """Result of ``lift_with_depth``."""
    points: np.ndarray           # (N, 3) camera_optical, m
    from_depth: np.ndarray       # (N,) bool: z measured in the depth image (else model fallback)
    depth_offset: float          # m the model was shifted along z to meet the depth (NaN: none)
    placement: Placement         # the PnP placement of the model used for the fallback


# ------------------------------------------------------------------------------- helpers
def normalized_to_pixels(landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N, >=2) MediaPipe normalised image landmarks -> (N, 2) pixels (centres at integers).

    MediaPipe's normalised coordinates run from the left/top image edge (0) to the right/bottom
    edge (1), so pixel i's centre is at (i + 0.5) / W: u = x W - 0.5."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return np.stack([lm[:, 0] * width - 0.5, lm[:, 1] * height - 0.5], axis=1)


def pixels_to_normalized(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inverse of ``normalized_to_pixels`` (x, y only)."""
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([(uv[:, 0] + 0.5) / width, (uv[:, 1] + 0.5) / height], axis=1)


def project(points: np.ndarray, K: np.ndarray) -> np.ndarray:
    """(N, 3) camera_optical -> (N, 2) pixels (the plain pinhole formula, also behind the camera)."""
    return project_points(points, K, nan_behind=False)


def unproject_points(uv: np.ndarray, z: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (N, 2) at depths z (N,) -> (N, 3) camera_optical (every depth, no NaN masking)."""
    return unproject_pixels(uv, z, K, nan_invalid=False)


def inside_image(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """(N,) bool: the pixel lies on the image (centres at integers, edges at -0.5 and W-0.5)."""
    uv = np.asarray(uv, dtype=np.float64)
    return ((uv[:, 0] >= -0.5) & (uv[:, 0] <= width - 0.5)
            & (uv[:, 1] >= -0.5) & (uv[:, 1] <= height - 0.5) & np.isfinite(uv).all(1))


def _check_K(K) -> np.ndarray:
    K = np.asarray(K, dtype=np.float64)
    if K.shape != (3, 3) or not (K[0, 0] > 0 and K[1, 1] > 0) or not np.isfinite(K).all():
        raise LiftingError(f'bad intrinsics K: {K.tolist()}')
    return K


def depth_windows(depth: np.ndarray, uv: np.ndarray, window: int = 2) -> list[np.ndarray]:
    """Valid (finite, > 0) depth values of the (2 window + 1)^2 pixels around each point
    (clipped to the image; empty for a point off the image)."""
    d = np.asarray(depth)
    if d.ndim != 2:
        raise LiftingError(f'depth must be (H, W), got {d.shape}')
    H, W = d.shape
    out = []
    for u, v in np.asarray(uv, dtype=np.float64):
        if not (np.isfinite(u) and np.isfinite(v)):
            out.append(np.empty(0))
            continue
        ui, vi = int(round(u)), int(round(v))
        if not (0 <= ui < W and 0 <= vi < H):
            out.append(np.empty(0))
            continue
        win = d[max(vi - window, 0):vi + window + 1, max(ui - window, 0):ui + window + 1]
        win = win[np.isfinite(win) & (win > 0)]
        out.append(win.astype(np.float64).ravel())
    return out


def sample_depth(depth: np.ndarray, uv: np.ndarray, window: int = 2,
                 around: float | None = None, max_dev: float = np.inf) -> np.ndarray:
    """(N,) median of the valid depth in a window around each pixel; with ``around``, only
    values within ``max_dev`` of it count. NaN where nothing valid remains."""
    z = np.full(len(uv), np.nan)
    for i, w in enumerate(depth_windows(depth, uv, window)):
        if around is not None:
            w = w[np.abs(w - around) <= max_dev]
        if w.size:
            z[i] = float(np.median(w))
    return z


# ------------------------------------------------------------------------------- (b) PnP
def place_with_pnp(uv: np.ndarray, model_points: np.ndarray, K: np.ndarray,
                   use: np.ndarray | None = None) -> Placement:
    """Rigid placement of metric ``model_points`` (N, 3, any right-handed frame, e.g. MediaPipe
    world landmarks) that best reprojects onto pixels ``uv`` (N, 2) with intrinsics K.

    ``use``: (N,) bool, the correspondences to fit (default: all finite ones); at least 4.
    SQPnP gives the global minimum of its algebraic cost, refined by Levenberg-Marquardt on the
    reprojection error. See the module doc for the accuracy this can give."""
    K = _check_K(K)
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    X = np.asarray(model_points, dtype=np.float64).reshape(-1, 3)
    if len(uv) != len(X):
        raise LiftingError(f'{len(uv)} pixels but {len(X)} model points')
    ok = np.isfinite(uv).all(1) & np.isfinite(X).all(1)
    if use is not None:
        ok &= np.asarray(use, dtype=bool)
    if ok.sum() < 4:
        raise LiftingError(f'{int(ok.sum())} usable correspondences; PnP needs at least 4')
    Xo, uo = X[ok], uv[ok]
    if np.linalg.matrix_rank(Xo - Xo.mean(0), tol=1e-6) < 2:
        raise LiftingError('model points are degenerate (collinear)')
    found, rvec, tvec = cv2.solvePnP(Xo, uo, K, None, flags=cv2.SOLVEPNP_SQPNP)
    if not found:
        raise LiftingError('PnP found no solution')
    rvec, tvec = cv2.solvePnPRefineLM(Xo, uo, K, None, rvec, tvec)
    R = cv2.Rodrigues(rvec)[0]
    t = tvec.reshape(3)
    P = X @ R.T + t
    if np.median(P[ok, 2]) <= 0:
        raise LiftingError('PnP placed the points behind the camera')
    rms = float(np.sqrt(np.mean(np.sum((project(P[ok], K) - uo) ** 2, axis=1))))
    return Placement(R=R, t=t, points=P, rms_px=rms)


def rgb_only_points(uv: np.ndarray, model_points: np.ndarray, K: np.ndarray,
                    use: np.ndarray | None = None) -> np.ndarray:
    """RGB-only metric keypoints: each pixel's ray at the depth of its PnP-placed model point.

    Keeps the 2D landmarks exactly (they reproject onto themselves; on real MediaPipe output the
    rigid world landmarks reproject several pixels off them, docs/perception.md) and takes only
    the depths from the placement: the 3D shape bends by that mismatch instead."""
    placement = place_with_pnp(uv, model_points, K, use=use)
    return unproject_points(uv, placement.points[:, 2], K)


# ------------------------------------------------------------------------------- (a) depth
def lift_with_depth(uv: np.ndarray, model_points: np.ndarray, depth: np.ndarray, K: np.ndarray,
                    *, use: np.ndarray | None = None, config: LiftingConfig | None = None,
                    **overrides) -> Lifted:
    """Lift pixels ``uv`` (N, 2) to camera_optical with a metric depth image.

    model_points: (N, 3) metric shape of the same points (MediaPipe world landmarks), for the
        outlier test and the fallback. depth: (H, W) metres, 0/NaN = unknown, registered to the
        image the landmarks come from.
    use: (N,) bool, the points allowed to be measured and fitted (e.g. on-image ones).
    config: a LiftingConfig (default: its defaults = config/perception.yaml [hand_lifting]);
    keyword overrides replace its values: window: half size of the median window (pixels).
        max_dev: values farther than this from the hand's median depth are ignored (background,
        flying pixels). tol: a keypoint whose measured depth disagrees with the placed model
        shape by more than this falls back to the model. min_measured: fewer measured keypoints
        than this -> no depth anchor, the result is the RGB-only PnP placement (``depth_offset``
        NaN). surface_offset: added to every z.
    """
    cfg = configured(LiftingConfig, config, overrides)
    window, max_dev, tol = cfg.window, cfg.max_dev, cfg.tol
    min_measured, surface_offset = cfg.min_measured, cfg.surface_offset
    K = _check_K(K)
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    X = np.asarray(model_points, dtype=np.float64).reshape(-1, 3)
    n = len(uv)
    use = np.ones(n, bool) if use is None else np.asarray(use, dtype=bool)
    placement = place_with_pnp(uv, X, K, use=use)
    z_model = placement.points[:, 2]

    # 1. robust per-keypoint depth around the hand's median depth
    z_raw = sample_depth(depth, uv, window)
    z_raw[~use] = np.nan
    finite = np.isfinite(z_raw)
    z_meas = np.full(n, np.nan)
    if finite.any():
        z_hand = float(np.median(z_raw[finite]))
        z_meas = sample_depth(depth, uv, window, around=z_hand, max_dev=max_dev)
        z_meas[~use] = np.nan
    measured = np.isfinite(z_meas)

    # 2. consistency with the model's shape: anchor the model at the measured depth, reject
    #    disagreeing measurements (occluders, background in holes), re-anchor; twice.
    offset = np.nan
    for _ in range(2):
        if measured.sum() < min_measured:
            break
        offset = float(np.median(z_meas[measured] - z_model[measured]))
        resid = np.abs(z_meas - (z_model + offset))
        keep = measured & (resid <= tol)
        if keep.sum() < min_measured:
            break
        measured = keep
    if measured.sum() < min_measured:
        return Lifted(points=unproject_points(uv, z_model, K), from_depth=np.zeros(n, bool),
                      depth_offset=np.nan, placement=placement)
    offset = float(np.median(z_meas[measured] - z_model[measured]))

    # 3. measured depth where trusted, the anchored model elsewhere; the 2D landmarks fix x, y
    z = np.where(measured, z_meas + surface_offset, z_model + offset + surface_offset)
    pts = unproject_points(uv, z, K)
    return Lifted(points=pts, from_depth=measured, depth_offset=offset, placement=placement)


# ------------------------------------------------------------------------------- wrist frame
def wrist_frame(keypoints: np.ndarray, handedness: int) -> np.ndarray:
    """4x4 wrist frame of dexman_msgs/Hand3D from 21 keypoints (same frame as the keypoints).

    Origin keypoint 0; x towards the middle MCP (9); y: RIGHT from the little MCP (17) towards
    the index MCP (5), LEFT from 5 towards 17, made orthogonal to x; z = x cross y (dorsal)."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (N_HAND, 3):
        raise LiftingError(f'keypoints must be (21, 3), got {kp.shape}')
    if handedness not in (LEFT, RIGHT):
        raise LiftingError(f'handedness must be LEFT (0) or RIGHT (1), got {handedness}')
    x = kp[MIDDLE_MCP] - kp[WRIST]
    nx = np.linalg.norm(x)
    if not nx > 1e-9:
        raise LiftingError('wrist and middle MCP coincide')
    x /= nx
    y = kp[INDEX_MCP] - kp[LITTLE_MCP] if handedness == RIGHT else kp[LITTLE_MCP] - kp[INDEX_MCP]
    y = y - np.dot(y, x) * x
    ny = np.linalg.norm(y)
    if not ny > 1e-9:
        raise LiftingError('index and little MCPs are collinear with the wrist-middle axis')
    y /= ny
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, np.cross(x, y)], axis=1)
    T[:3, 3] = kp[WRIST]
    return T


# ------------------------------------------------------------------------------- hands
def handedness_from_label(label: str, mirrored: bool = False) -> int:
    """MediaPipe Tasks' 'Left'/'Right' -> LEFT/RIGHT as the person's own hand.

    On ordinary (non-mirrored) camera images MediaPipe Tasks 1.2.x' label is already the
    person's own hand (checked on the project's clips: a person facing the camera has the
    'Right' hand on the image's left). ``mirrored=True`` for selfie-style flipped input."""
    lab = label.strip().lower()
    if lab not in ('left', 'right'):
        raise LiftingError(f'unknown handedness label {label!r}')
    side = RIGHT if lab == 'right' else LEFT
    return 1 - side if mirrored else side


def hand_from_mediapipe(image_landmarks: np.ndarray, world_landmarks: np.ndarray,
                        handedness: int, score: float, image_size: tuple[int, int],
                        K: np.ndarray, depth: np.ndarray | None = None, *,
                        lifting: LiftingConfig | None = None,
                        fallback_confidence: float = FALLBACK_CONFIDENCE) -> HandEstimate:
    """One MediaPipe hand -> HandEstimate in camera_optical, metres, Hand3D order.

    image_landmarks: (21, >=2) normalised; world_landmarks: (21, 3) metres; handedness LEFT/RIGHT
    (person's own); score: detection confidence [0, 1]; image_size: (width, height).
    With ``depth`` (H, W metres, registered to the image) uses ``lift_with_depth``, else
    ``rgb_only_points`` (``lifting``: its LiftingConfig). Keypoint confidence: ``score`` for
    keypoints measured in the depth (RGB-D) or, RGB-only, for every on-image keypoint;
    ``fallback_confidence * score`` for model fallbacks in RGB-D; 0 for keypoints off the image.
    Raises LiftingError when the hand cannot be placed."""
    W, H = int(image_size[0]), int(image_size[1])
    lm = np.asarray(image_landmarks, dtype=np.float64)[MEDIAPIPE_TO_HAND3D]
    world = np.asarray(world_landmarks, dtype=np.float64)[MEDIAPIPE_TO_HAND3D]
    if lm.shape[0] != N_HAND or world.shape != (N_HAND, 3):
        raise LiftingError(f'need 21 image and 21 world landmarks, got {lm.shape} and '
                           f'{world.shape}')
    score = float(np.clip(score, 0.0, 1.0))
    uv = normalized_to_pixels(lm, W, H)
    on_image = inside_image(uv, W, H)
    if depth is not None:
        if np.shape(depth) != (H, W):
            raise LiftingError(f'depth {np.shape(depth)} does not match the image ({H}, {W})')
        lifted = lift_with_depth(uv, world, depth, K, use=on_image, config=lifting)
        points = lifted.points
        conf = np.where(lifted.from_depth, score, fallback_confidence * score)
    else:
        points = rgb_only_points(uv, world, K, use=on_image)
        conf = np.full(N_HAND, score)
    conf = np.where(on_image, conf, 0.0).astype(np.float64)
    return HandEstimate(handedness=int(handedness), keypoints=points, keypoints_2d=uv,
                        keypoint_confidence=conf, confidence=score, metric=True)
