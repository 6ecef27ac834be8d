"""Human body proxy at the table: pelvis, hips, torso, head, legs (static) and arms to the wrists.

Person frame P (REP 103 body convention): origin at the pelvis (midpoint of the hip joints),
x forward (towards the table), y towards the person's own left, z up. The body does not move
(as in the paper's prompts); the arms follow the wrists by two-link inverse kinematics.

World: table top centre above the origin, the person on the -y side of the table facing +y, so
the person's right is +x in the world.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .transforms import make_T, normalize, rot_y, rot_z

SKIN_TONES = [(0.96, 0.80, 0.69), (0.92, 0.74, 0.60), (0.85, 0.65, 0.50), (0.74, 0.55, 0.40),
              (0.58, 0.41, 0.29), (0.42, 0.29, 0.20)]


@dataclasses.dataclass
class Geom:
    """A static primitive in the world (MuJoCo geom semantics: size as in MJCF)."""
    name: str
    type: str                    # box | sphere | capsule | ellipsoid | cylinder
    size: tuple
    pos: np.ndarray
    R: np.ndarray
    rgba: tuple
    label: int = 253


@dataclasses.dataclass
class Body:
    posture: str                 # seated | standing
    scale: float
    T_world_pelvis: np.ndarray
    hips: np.ndarray             # (2, 3) world, [0] left hip, [1] right hip
    shoulders: np.ndarray        # (2, 3) world, [0] left, [1] right
    upper_arm: float
    forearm: float
    arm_radius: tuple            # (upper, fore)
    skin: tuple
    shirt: tuple
    geoms: list[Geom]
    table_height: float
    table_edge_y: float          # y of the table edge on the person's side

    def elbow(self, side: int, wrist: np.ndarray, prev: np.ndarray | None = None) -> np.ndarray:
        """Elbow position for a wrist target (two-link IK, elbow down/out, clear of the table)."""
        s = self.shoulders[side]
        l1, l2 = self.upper_arm, self.forearm
        d_vec = wrist - s
        d = np.linalg.norm(d_vec)
        if d > l1 + l2 - 1e-6:
            raise ValueError(f'wrist {np.round(wrist, 3)} out of reach ({d:.3f} m > {l1 + l2:.3f} m)')
        u = d_vec / d
        a = (l1 ** 2 - l2 ** 2 + d ** 2) / (2 * d)
        rad = np.sqrt(max(l1 ** 2 - a ** 2, 0.0))
        c = s + a * u
        e1 = normalize(np.cross(u, (0, 0, 1.0)) if abs(u[2]) < 0.99 else np.cross(u, (1.0, 0, 0)))
        e2 = np.cross(u, e1)
        out = np.array([-1.0 if side == 0 else 1.0, -0.35, -1.0])   # down, outwards, back
        best, best_cost = None, np.inf
        for th in np.linspace(0, 2 * np.pi, 96, endpoint=False):
            el = c + rad * (np.cos(th) * e1 + np.sin(th) * e2)
            cost = -np.dot(normalize(el - c), normalize(out))
            # keep the forearm above the table where it crosses the table edge
            if wrist[1] > self.table_edge_y > el[1]:
                t = (self.table_edge_y - el[1]) / (wrist[1] - el[1])
                zc = el[2] + t * (wrist[2] - el[2])
                cost += 20.0 * max(0.0, self.table_height + 0.045 - zc)
            if el[1] > self.table_edge_y - 0.03:
                cost += 20.0 * max(0.0, self.table_height + 0.045 - el[2])
            if prev is not None:
                cost += 2.0 * np.linalg.norm(el - prev)
            if cost < best_cost:
                best, best_cost = el, cost
        return best


def make_body(rng: np.random.Generator, posture: str, table_height: float, table_edge_y: float,
              scale: float) -> Body:
    u = rng.uniform
    skin = SKIN_TONES[int(rng.integers(len(SKIN_TONES)))]
    shirt = tuple(float(c) for c in rng.uniform(0.1, 0.8, 3))
    trousers = tuple(float(c) for c in rng.uniform(0.05, 0.35, 3))
    hair = tuple(float(c) for c in rng.uniform(0.03, 0.25) * np.array([1.0, 0.8, 0.6]))
    x0 = u(-0.03, 0.03)
    if posture == 'seated':
        pelvis_h = 0.55 * scale
        lean = np.deg2rad(u(8, 16))
        back = u(0.20, 0.25)
    else:
        pelvis_h = 0.96 * scale
        lean = np.deg2rad(u(18, 26))
        back = u(0.16, 0.2)
    T = make_T(rot_z(np.pi / 2), (x0, table_edge_y - back, pelvis_h))   # person x -> world +y
    R = T[:3, :3]

    def W(p):
        return T[:3, 3] + R @ np.asarray(p, float)

    trunk = rot_y(lean)                    # forward pitch about the person's y (left) axis

    def Wt(p):
        return W(trunk @ (np.asarray(p, float) * scale))

    geoms: list[Geom] = []

    def add(name, type_, size, pos, Rg=np.eye(3), rgba=shirt, label=253):
        geoms.append(Geom(name, type_, tuple(float(s) for s in size), np.asarray(pos, float), Rg,
                          tuple(rgba) + ((1.0,) if len(rgba) == 3 else ()), label))

    Rt = R @ trunk
    hips = np.array([W((0, 0.09 * scale, 0)), W((0, -0.09 * scale, 0))])
    add('pelvis', 'ellipsoid', np.array([0.10, 0.17, 0.10]) * scale, Wt((0, 0, 0.03)), Rt, trousers)
    add('abdomen', 'ellipsoid', np.array([0.105, 0.155, 0.15]) * scale, Wt((0.0, 0, 0.20)), Rt)
    add('chest', 'ellipsoid', np.array([0.115, 0.175, 0.14]) * scale, Wt((0.0, 0, 0.38)), Rt)
    add('neck', 'capsule', np.array([0.045, 0.04]) * scale, Wt((0.0, 0, 0.55)), Rt, skin)
    add('head', 'ellipsoid', np.array([0.10, 0.085, 0.115]) * scale, Wt((0.01, 0, 0.68)), Rt, skin)
    add('hair', 'ellipsoid', np.array([0.098, 0.088, 0.09]) * scale, Wt((-0.012, 0, 0.72)), Rt, hair)
    shoulders = np.array([Wt((0.0, 0.185, 0.47)), Wt((0.0, -0.185, 0.47))])
    for i, s in enumerate(shoulders):
        add(f'shoulder_{"lr"[i]}', 'sphere', (0.055 * scale,), s, np.eye(3))
    # legs
    for i, side in enumerate((1, -1)):
        hip = hips[i]
        if posture == 'seated':
            knee = W((0.45 * scale, side * 0.11 * scale, 0.02))
            ankle = knee + np.array([0, 0, -(knee[2] - 0.08)])
        else:
            knee = W((0.02, side * 0.10 * scale, -0.46 * scale))
            ankle = np.array([knee[0], knee[1], 0.08])
        for nm, a, b, r in (('thigh', hip, knee, 0.075), ('shank', knee, ankle, 0.055)):
            _capsule(add, f'{nm}_{"lr"[i]}', a, b, r * scale, trousers)
        foot_c = ankle + R @ np.array([0.07, 0, -0.045])
        add(f'foot_{"lr"[i]}', 'box', (0.12, 0.05, 0.035), foot_c, R, (0.15, 0.12, 0.1))
    if posture == 'seated':          # a chair
        chair = (0.35, 0.25, 0.2)
        seat_top = pelvis_h - 0.09 * scale
        add('chair_seat', 'box', (0.22, 0.22, 0.02), W((0.02, 0, 0)) + [0, 0, seat_top - 0.02 - pelvis_h],
            R, chair)
        add('chair_back', 'box', (0.02, 0.21, 0.25), W((-0.2, 0, 0)) + [0, 0, seat_top + 0.27 - pelvis_h],
            R @ rot_y(-0.12), chair)
        for sx in (-1, 1):
            for sy in (-1, 1):
                p = W((0.02 + sx * 0.19, sy * 0.19, 0))
                add(f'chair_leg{sx}{sy}', 'box', (0.015, 0.015, (seat_top - 0.04) / 2),
                    (p[0], p[1], (seat_top - 0.04) / 2), np.eye(3), chair)
    return Body(posture, scale, T, hips, shoulders, 0.29 * scale, 0.26 * scale, (0.045 * scale, 0.034 * scale),
                skin, shirt, geoms, table_height, table_edge_y)


def _capsule(add, name, a, b, r, rgba):
    from .transforms import frame_from_xz
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    L = np.linalg.norm(d)
    z = d / L
    helper = (1, 0, 0) if abs(z[0]) < 0.9 else (0, 1, 0)
    R = frame_from_xz(np.cross(helper, z), z)
    add(name, 'capsule', (r, L / 2), (a + b) / 2, R, rgba)
