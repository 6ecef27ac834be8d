"""The table of a scene: a box whose top face lies on the demonstration's table plane.

World: z up (the demonstration was rotated so that the table normal is +z). A normal further than
``table_max_tilt_deg`` from +z is an error naming the angle; within it the table is simulated
horizontal, at the plane's height above the centre of the objects' footprint:

    top_z = p_z - (n_x (c_x - p_x) + n_y (c_y - p_y)) / n_z,   p = table point, n = normal, c = centre

Extent: the xy bounding box of all objects' collision vertices (at their initial poses) grown by
``table_margin`` on every side. With a robot (the G1 stands at the world origin facing +y) the edge
nearest the robot is moved to ``y_min = trunk_y + robot_clearance``, trunk_y = the largest y of the
robot's colliding trunk geoms (pelvis, legs, torso: everything but the arms and hands, whose pose
changes) at the model's default pose; an object reaching below y_min is an error (it would stand
inside the robot). The box is ``table_thickness`` thick.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dexman_common.geometry import vector_angle

from .errors import SceneInputError

MIN_HALF = 0.01    # m, smallest half extent of the box (zero margin and no object)


@dataclasses.dataclass(frozen=True)
class TableBox:
    top_z: float                # m, world height of the top face
    center_xy: np.ndarray       # (2,) m
    half_extents: np.ndarray    # (2,) m, x and y
    thickness: float            # m
    tilt_deg: float             # angle between the input normal and +z

    @property
    def center(self) -> np.ndarray:
        """(3,) centre of the box, world."""
        return np.array([self.center_xy[0], self.center_xy[1], self.top_z - 0.5 * self.thickness])

    @property
    def size(self) -> np.ndarray:
        """(3,) MuJoCo box half sizes."""
        return np.array([self.half_extents[0], self.half_extents[1], 0.5 * self.thickness])


def table_tilt_deg(normal) -> float:
    """Angle between a table normal and world +z, degrees (NaN or zero normal: SceneInputError)."""
    n = np.asarray(normal, float).reshape(-1)
    if n.shape != (3,) or not np.all(np.isfinite(n)) or np.linalg.norm(n) < 1e-9:
        raise SceneInputError(f'table normal must be a finite non-zero 3-vector, got {normal!r}')
    return float(np.degrees(vector_angle(n, (0.0, 0.0, 1.0))))


def plane_height(point, normal, xy) -> float:
    p = np.asarray(point, float).reshape(-1)
    n = np.asarray(normal, float).reshape(-1)
    if p.shape != (3,) or not np.all(np.isfinite(p)):
        raise SceneInputError(f'table point must be a finite 3-vector, got {point!r}')
    return float(p[2] - (n[0] * (xy[0] - p[0]) + n[1] * (xy[1] - p[1])) / n[2])


def make_table(point, normal, footprint_xy: np.ndarray, *, margin: float, thickness: float,
               max_tilt_deg: float, y_min: float | None = None) -> TableBox:
    """The table box (module docstring). footprint_xy: (N, 2) object collision vertices, world xy
    (N may be 0: the table is then centred on the table point); y_min: the robot-side edge, or None."""
    tilt = table_tilt_deg(normal)
    if tilt > max_tilt_deg:
        raise SceneInputError(f'table normal {np.round(np.asarray(normal, float), 4).tolist()} is '
                              f'{tilt:.1f} deg from world +z (at most {max_tilt_deg:g} deg): the '
                              'demonstration must be gravity-aligned (z up)')
    pts = np.asarray(footprint_xy, float).reshape(-1, 2)
    if len(pts):
        lo, hi = pts.min(axis=0), pts.max(axis=0)
    else:
        lo = hi = np.asarray(point, float)[:2]
    center = 0.5 * (lo + hi)
    top = plane_height(point, normal, center)
    lo, hi = lo - margin, hi + margin
    if y_min is not None:
        if len(pts) and pts[:, 1].min() < y_min:
            raise SceneInputError(f'an object reaches y = {pts[:, 1].min():.3f} m, inside the robot '
                                  f'(the table must start at y >= {y_min:.3f} m: objects stand in front '
                                  'of the G1, which faces +y from the origin)')
        lo[1] = max(lo[1], y_min)
        if hi[1] <= lo[1]:
            hi[1] = lo[1] + 2.0 * margin
    return TableBox(top_z=top, center_xy=0.5 * (lo + hi), half_extents=np.maximum(0.5 * (hi - lo), MIN_HALF),
                    thickness=float(thickness), tilt_deg=tilt)
