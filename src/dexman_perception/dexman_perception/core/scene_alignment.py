"""Camera frame -> simulator world frame from the table and the human body (DexMan paper, B.4).

Three consecutive transforms, estimated on the first frame, map ``camera_optical`` (OpenCV:
z forward, x right, y down) to the simulator ``world`` frame (z up, gravity −z; the robot stands
at the origin facing +y, so its right-hand side is +x):

1. Gravity. The table points (first frame, metres, camera_optical) are centred and decomposed,
   P − p̄ = U S Vᵀ; the table normal n is the right-singular vector of the smallest singular value
   (the paper's "principal axis with the smallest eigenvalue"). SVD gives n only up to sign; we
   orient it towards the camera, n · (0 − p̄) > 0: the camera sees the table from above, so the
   side of the plane holding the camera centre (the camera_optical origin) is "up". R_g is the
   smallest rotation with R_g n = +z (Rodrigues about n × z; 180° about a horizontal axis if
   n = −z).
2. Facing. h = R_g (p_r.hip − p_l.hip) is the hip vector after the gravity rotation; R_f = R_z(−θ)
   with θ = atan2(h_y, h_x) rotates its horizontal part onto +x (a rotation about z keeps gravity).
   A person facing +y has their right hip at +x, so the human then faces the robot's +y.
3. Translation. t = p_pelvis^robot − R_f R_g p_pelvis^human puts the human pelvis on the robot
   pelvis. Then, if entity points (object initial positions, hand keypoints) are outside the
   robot's reach, a shift Δy along world y is added: the smallest |Δy| that brings every entity
   point into the reach region (a box or a sphere); when no Δy does, the one that minimises the
   largest violation along y, reported as not fitting. Reach violations along x/z cannot be
   fixed by a y shift and are reported.

    T_world_camera = Trans(t + Δy·e_y) · R_f · R_g

The same T_world_camera is then applied to object poses (T_world_object = T_world_camera ·
T_camera_object), hand keypoints and the table cloud (helpers below).

Our calls where the paper is silent: the normal orientation rule above; the minimal rotation for
R_g (its yaw is free and fixed by R_f anyway); the hip vector's vertical component is dropped
before R_f; the robot pelvis default is the Unitree G1 standing pelvis of MuJoCo Menagerie's
g1.xml; the default reach box is ours - pass the robot's own. Both, and the scene stage's table
and body settings, are ``SceneAlignmentConfig`` (config/perception.yaml [scene_alignment]). All
inputs must share one metric camera frame (4D-Humans joints expressed in the same camera frame
and scale as the depth).

Nothing here imports rclpy.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from dexman_common.geometry import PlaneFit, PlaneFitError, fit_plane

from dexman_common.config import ConfigBase

from .perception_config import YAML_FILE

COLLINEAR_RTOL = 1e-6
REACH_REGIONS = ('box', 'sphere')


class SceneAlignmentError(ValueError):
    """The alignment is not determined (degenerate table, vertical hips, bad input)."""


# --------------------------------------------------------------------------------------------
# Reach regions (world frame, metres)
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ReachBox(ConfigBase):
    """Axis-aligned reach box in world: x, y, z ranges (use ±inf for a free axis).

    Default: the G1 + Shadow workspace in front of the robot (robot at the origin facing +y),
    chosen so that the table-top entities stay inside the G1 arm's reach (docs/perception.md has
    the measurement)."""
    x: tuple[float, float] = (-0.5, 0.5)
    y: tuple[float, float] = (0.10, 0.45)
    z: tuple[float, float] = (-np.inf, np.inf)

    def __post_init__(self):
        for name in ('x', 'y', 'z'):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f'reach box {name} must be [min, max] with min <= max, got {[lo, hi]}')

    def y_interval(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per point, the Δy interval [lo, hi] that puts it inside (lo > hi: impossible)."""
        inside_xz = ((P[:, 0] >= self.x[0]) & (P[:, 0] <= self.x[1])
                     & (P[:, 2] >= self.z[0]) & (P[:, 2] <= self.z[1]))
        lo = np.where(inside_xz, self.y[0] - P[:, 1], np.inf)
        hi = np.where(inside_xz, self.y[1] - P[:, 1], -np.inf)
        return lo, hi

    def contains(self, P: np.ndarray) -> np.ndarray:
        return ((P[:, 0] >= self.x[0]) & (P[:, 0] <= self.x[1]) & (P[:, 1] >= self.y[0])
                & (P[:, 1] <= self.y[1]) & (P[:, 2] >= self.z[0]) & (P[:, 2] <= self.z[1]))


@dataclasses.dataclass(frozen=True)
class ReachSphere(ConfigBase):
    """Reach ball in world: |p − center| <= radius (e.g. centred between the shoulders)."""
    center: tuple[float, float, float] = (0.0, 0.2, 1.0)
    radius: float = 0.6

    def y_interval(self, P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = np.asarray(self.center, dtype=float)
        rho2 = (P[:, 0] - c[0]) ** 2 + (P[:, 2] - c[2]) ** 2
        h = np.sqrt(np.maximum(self.radius ** 2 - rho2, 0.0))
        ok = rho2 <= self.radius ** 2
        lo = np.where(ok, c[1] - h - P[:, 1], np.inf)
        hi = np.where(ok, c[1] + h - P[:, 1], -np.inf)
        return lo, hi

    def contains(self, P: np.ndarray) -> np.ndarray:
        return np.linalg.norm(P - np.asarray(self.center, dtype=float), axis=1) <= self.radius


@dataclasses.dataclass(frozen=True)
class SceneAlignmentConfig(ConfigBase):
    """Tunables of the scene stage (B.4): the robot, the reach region, and how the scene node finds
    the table and the body; values in config/perception.yaml [scene_alignment]."""

    SECTION = 'scene_alignment'
    YAML_FILE = YAML_FILE

    robot_pelvis: tuple[float, float, float] = (0.0, 0.0, 0.793)   # m, world (G1 standing, Menagerie g1.xml)
    reach_shift: bool = True            # shift along world y so the first-frame entities are in reach
    reach_region: str = 'box'           # 'box' | 'sphere'
    reach_box: ReachBox = ReachBox()
    reach_sphere: ReachSphere = ReachSphere()
    body_frames: int = 5                # hips/pelvis = median of the first this many valid bodies
    max_wait_frames: int = 30           # give up on a body / table plane after this many frames
    plane_threshold: float = 0.01       # m, RANSAC inlier distance of the table plane
    ransac_iterations: int = 300
    ring_inner_px: int = 2              # table ring: pixels kept clear of every labelled mask
    ring_outer_px: int = 0              # table ring width around the objects; 0: ring_outer_fraction x min(H, W)
    ring_outer_fraction: float = 0.08
    ring_outer_min_px: int = 8
    min_table_points: int = 50          # fewest table-plane inliers accepted
    seed: int = 0                       # RANSAC seed

    def __post_init__(self):
        if self.reach_region not in REACH_REGIONS:
            raise ValueError(f'reach_region must be one of {REACH_REGIONS}, got {self.reach_region!r}')
        for name in ('body_frames', 'max_wait_frames', 'ransac_iterations', 'min_table_points'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        if self.plane_threshold <= 0 or self.ring_inner_px < 0 or self.ring_outer_px < 0:
            raise ValueError('plane_threshold must be > 0 and the ring widths >= 0')

    def reach(self) -> ReachBox | ReachSphere | None:
        """The reach region ``align_scene`` shifts into (None: reach_shift off)."""
        if not self.reach_shift:
            return None
        return self.reach_box if self.reach_region == 'box' else self.reach_sphere


ROBOT_PELVIS_DEFAULT = SceneAlignmentConfig.robot_pelvis


# --------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------

def _points(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    if a.ndim != 2 or a.shape[1] != 3:
        raise SceneAlignmentError(f'{name} must have shape (N, 3), got {a.shape}')
    return a[np.isfinite(a).all(1)]


def _vec3(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=float).reshape(-1)
    if a.shape != (3,) or not np.all(np.isfinite(a)):
        raise SceneAlignmentError(f'{name} must be a finite 3-vector, got {a}')
    return a


def fit_plane_svd(points: np.ndarray, viewpoint: Sequence[float] = (0.0, 0.0, 0.0)) -> PlaneFit:
    """Plane through (N, 3) points by SVD: normal = right-singular vector of the smallest singular
    value of the centred points, signed so that normal · (viewpoint − centroid) > 0 (default
    viewpoint: the camera centre, the origin of camera_optical). Non-finite rows are ignored."""
    P = _points(points, 'table points')
    if P.shape[0] < 3:
        raise SceneAlignmentError(f'{P.shape[0]} finite table point(s); need at least 3')
    view = _vec3(viewpoint, 'viewpoint')
    try:
        plane = fit_plane(P, view, collinear_rtol=COLLINEAR_RTOL)
    except PlaneFitError as e:
        raise SceneAlignmentError(f'table points: {e}') from None
    if float(plane.normal @ (view - plane.centroid)) == 0:
        raise SceneAlignmentError('the viewpoint lies in the table plane: the up side is undefined')
    return plane


def rotation_between_vectors(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation R with R â = b̂ (Rodrigues about â × b̂; 180° about an axis ⟂ â if opposite)."""
    a = _vec3(a, 'a')
    b = _vec3(b, 'b')
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = np.cross(a, b)
    c = float(a @ b)
    s = float(np.linalg.norm(v))
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # opposite: rotate π about an axis ⟂ â (â × the coordinate axis least aligned with â)
        e = np.zeros(3)
        e[int(np.argmin(np.abs(a)))] = 1.0
        axis = np.cross(a, e)
        axis /= np.linalg.norm(axis)
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx * ((1.0 - c) / s ** 2)


def rot_z(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def gravity_rotation(table_points_camera: np.ndarray) -> tuple[np.ndarray, PlaneFit]:
    """R_g (3x3) mapping the camera-facing table normal onto world +z, and the plane fit."""
    plane = fit_plane_svd(table_points_camera)
    return rotation_between_vectors(plane.normal, np.array([0.0, 0.0, 1.0])), plane


def facing_rotation(left_hip: np.ndarray, right_hip: np.ndarray, R_gravity: np.ndarray,
                    min_horizontal: float = 1e-6) -> tuple[np.ndarray, float]:
    """R_f = R_z(−θ), θ = atan2(h_y, h_x), h = R_g (right_hip − left_hip): the hip vector's
    horizontal part onto world +x. Returns (R_f, θ). Raises if h is (nearly) vertical."""
    hip = _vec3(right_hip, 'right_hip') - _vec3(left_hip, 'left_hip')
    h = np.asarray(R_gravity, dtype=float) @ hip
    if np.hypot(h[0], h[1]) <= min_horizontal:
        raise SceneAlignmentError(f'the hip vector {h} has no horizontal part after the gravity '
                                  'rotation: the facing direction is undefined')
    theta = float(np.arctan2(h[1], h[0]))
    return rot_z(-theta), theta


def y_shift_into_reach(points_world: np.ndarray, reach: ReachBox | ReachSphere) -> tuple[float, bool, str]:
    """Smallest |Δy| putting every point inside ``reach`` after p ← p + Δy·e_y.

    Returns (Δy, fits, note). Each point allows Δy ∈ [lo_i, hi_i]; the intersection is
    [max lo, min hi]. If it contains 0, Δy = 0; otherwise the end nearest 0. If it is empty
    (entities spread wider than the reach along y, or a point outside it along x/z), Δy centres
    the feasible part: the midpoint of the points that can fit, fits=False, with a note.
    """
    P = _points(points_world, 'entity points')
    if P.shape[0] == 0:
        return 0.0, True, 'no entity points'
    lo, hi = reach.y_interval(P)
    unreachable = int(np.count_nonzero(lo > hi))
    if unreachable:
        ok = lo <= hi
        note = f'{unreachable} point(s) outside the reach region in x/z: no y shift reaches them'
        if not np.any(ok):
            return 0.0, False, note
        lo, hi = lo[ok], hi[ok]
    else:
        note = ''
    L, U = float(lo.max()), float(hi.min())
    if L <= U:
        dy = 0.0 if L <= 0.0 <= U else (L if L > 0 else U)
        return dy, unreachable == 0, note
    # infeasible along y: minimise the largest violation max(L - dy, dy - U) -> the midpoint
    dy = 0.5 * (L + U)
    return dy, False, (note + '; ' if note else '') + (
        f'the entities span {U - L:+.3f} m more along y than the reach allows; centred instead')


# --------------------------------------------------------------------------------------------
# The full alignment
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class SceneAlignment:
    T_world_camera: np.ndarray     # 4x4
    R_gravity: np.ndarray          # 3x3
    R_facing: np.ndarray           # 3x3 (about world z)
    facing_angle: float            # θ, radians: hip vector heading after R_g, before R_f
    translation: np.ndarray        # (3,) pelvis translation t (without the y shift)
    y_shift: float                 # Δy, metres
    reach_fits: bool               # every entity point ends in reach
    reach_note: str
    plane: PlaneFit                # table plane in camera_optical
    table_height: float            # world z of the table plane (centroid), metres
    pelvis_world: np.ndarray       # human pelvis after the transform (robot pelvis + Δy e_y)
    n_entity_points: int
    n_out_of_reach_before: int     # entity points out of reach before the y shift
    n_out_of_reach_after: int


def align_scene(table_points_camera: np.ndarray, left_hip: np.ndarray, right_hip: np.ndarray,
                pelvis: np.ndarray, *, entity_points_camera: np.ndarray | None = None,
                robot_pelvis: Sequence[float] = ROBOT_PELVIS_DEFAULT,
                reach: ReachBox | ReachSphere | None = ReachBox()) -> SceneAlignment:
    """T_world_camera = Trans(t + Δy e_y) · R_f · R_g from the first frame (B.4).

    table_points_camera: (N, 3) table cloud (depth-lifted table mask, first frame), metres.
    left_hip, right_hip, pelvis: 3D human joints (4D-Humans) in the same camera frame, metres.
    entity_points_camera: (M, 3) points that must end up in reach (object initial positions,
        hand keypoints), camera frame; None or reach=None skips the y shift.
    robot_pelvis: the robot pelvis position in world (metres).
    """
    R_g, plane = gravity_rotation(table_points_camera)
    R_f, theta = facing_rotation(left_hip, right_hip, R_g)
    R = R_f @ R_g
    t = _vec3(robot_pelvis, 'robot_pelvis') - R @ _vec3(pelvis, 'pelvis')
    dy, fits, note, n_in, before, after = 0.0, True, '', 0, 0, 0
    if entity_points_camera is not None and reach is not None:
        E = _points(entity_points_camera, 'entity_points_camera') @ R.T + t
        n_in = int(E.shape[0])
        before = int(np.count_nonzero(~reach.contains(E)))
        dy, fits, note = y_shift_into_reach(E, reach)
        after = int(np.count_nonzero(~reach.contains(E + [0.0, dy, 0.0])))
        fits = fits and after == 0
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t + [0.0, dy, 0.0]
    return SceneAlignment(T_world_camera=T, R_gravity=R_g, R_facing=R_f, facing_angle=theta,
                          translation=t, y_shift=float(dy), reach_fits=bool(fits), reach_note=note,
                          plane=plane, table_height=float((T[:3, :3] @ plane.centroid + T[:3, 3])[2]),
                          pelvis_world=T[:3, :3] @ _vec3(pelvis, 'pelvis') + T[:3, 3],
                          n_entity_points=n_in, n_out_of_reach_before=before,
                          n_out_of_reach_after=after)


# --------------------------------------------------------------------------------------------
# Applying T_world_camera
# --------------------------------------------------------------------------------------------

def transform_points(T_world_camera: np.ndarray, points_camera: np.ndarray) -> np.ndarray:
    """Points (..., 3) in camera_optical -> world (hand keypoints, the table cloud). NaN stays NaN."""
    T = np.asarray(T_world_camera, dtype=float)
    return np.asarray(points_camera, dtype=float) @ T[:3, :3].T + T[:3, 3]


def transform_poses(T_world_camera: np.ndarray, T_camera_object: np.ndarray) -> np.ndarray:
    """Object poses (..., 4, 4) T_camera_object -> T_world_object = T_world_camera · T_camera_object."""
    return np.asarray(T_world_camera, dtype=float) @ np.asarray(T_camera_object, dtype=float)
