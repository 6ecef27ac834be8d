"""Grasp synthesis: place the open hand against the object, then close each finger onto its surface.

Everything is computed in the object frame. The hand is a set of spheres (palm) and capsules
(phalanges) from hand_model; obstacles are the object mesh (exact distances, mesh_query), the
table top (a half-space) and optionally the other hand's capsules.

1. Placement: the pre-shaped hand starts far from the object along a direction and moves towards
   it in steps shorter than any hand radius until it comes within `gap` of an obstacle; bisection
   then finds the closest collision-free placement.
2. Closure (per finger, joint by joint from the knuckle out, like an under-actuated hand): each
   flexion angle sweeps towards its limit in steps that move the distal points by < 3 mm, and the
   first contact (clearance <= 0.5 mm) is refined by bisection. A finger is "in contact" when it
   stopped on the object. The thumb closes last and treats the fingers as obstacles.
Three families: wrap (palm against the side, fingers around), press (flat palm on a face, for
two-hand lifts) and claw (from above, thumb and fingers on opposite sides, also for bowl rims).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .hand_model import LEFT, HandPose, HandShape, MAX_FLEX, make_pose
from .mesh_query import MeshQuery
from .transforms import apply_T, make_T, normalize

CONTACT_TOL = 0.0005
STEP = 0.003

PRESHAPES = {
    'wrap': dict(fingers=(0.1, 0.1, 0.05), spread=0.05, thumb_dir=(-0.15, 0.35, -0.92),
                 thumb_close=(1.0, 0.0, 0.0), thumb_flex=(0.0, 0.0, 0.0)),
    'press': dict(fingers=(0.05, 0.05, 0.0), spread=0.03, thumb_dir=(0.55, 0.8, -0.2),
                  thumb_close=(0.0, 0.0, -1.0), thumb_flex=(0.0, 0.0, 0.0)),
    'claw': dict(fingers=(0.9, 0.5, 0.2), spread=0.06, thumb_dir=(-0.35, 0.35, -0.85),
                 thumb_close=(1.0, 0.0, 0.0), thumb_flex=(0.0, 0.25, 0.25)),
}


def preshape(kind: str) -> HandPose:
    return make_pose(**PRESHAPES[kind])


class GraspFailed(RuntimeError):
    pass


@dataclasses.dataclass
class Obstacles:
    mesh: MeshQuery
    table_z: float | None = None                   # half-space z < table_z is solid (object frame)
    capsules: tuple | None = None                  # (p0 (K, 3), p1 (K, 3), r (K,)) object frame

    def clearance(self, c: np.ndarray, r: np.ndarray, within: float = 0.01) -> tuple[float, str]:
        best, what = self.mesh.min_clearance(c, r, within), 'object'
        if self.table_z is not None:
            t = float((c[:, 2] - r - self.table_z).min())
            if t < best:
                best, what = t, 'table'
        if self.capsules is not None:
            p0, p1, rr = self.capsules
            d = p1 - p0
            ap = c[:, None, :] - p0[None]
            tt = np.clip(np.einsum('pki,ki->pk', ap, d) / np.maximum((d * d).sum(-1), 1e-12), 0, 1)
            q = p0[None] + tt[..., None] * d[None]
            dist = np.linalg.norm(c[:, None, :] - q, axis=-1) - r[:, None] - rr[None]
            h = float(dist.min())
            if h < best:
                best, what = h, 'hand'
        return best, what


@dataclasses.dataclass
class Grasp:
    side: int
    kind: str
    T_obj_wrist: np.ndarray        # wrist frame in the object frame
    open_pose: HandPose
    closed_pose: HandPose
    finger_contact: np.ndarray     # (5,) bool, thumb..little stopped on the object
    palm_contact: bool

    @property
    def n_contacts(self) -> int:
        return int(self.finger_contact.sum())


def _hand_spheres(hand: HandShape, pose: HandPose, side: int, T: np.ndarray, **kw):
    c, r = hand.collision_points(pose, side, **kw)
    return apply_T(T, c), r


def place(hand: HandShape, pose: HandPose, side: int, T0: np.ndarray, away: np.ndarray,
          obst: Obstacles, gap: float, s_max: float = 0.3, s_min: float = 0.0,
          fingers=range(5)) -> tuple[np.ndarray, bool]:
    """Closest collision-free placement T0 translated by s * away, s in [s_min, s_max], approaching
    from s_max. Returns the pose and whether the hand stopped on an obstacle (vs reaching s_min)."""
    away = normalize(away)

    def T_at(s):
        T = T0.copy()
        T[:3, 3] += s * away
        return T

    def hit(s):
        c, r = _hand_spheres(hand, pose, side, T_at(s), fingers=fingers)
        return obst.clearance(c, r, gap + 0.005)[0] < gap

    if hit(s_max):
        raise GraspFailed('hand collides even at the start of its approach')
    s_prev, s = s_max, s_max
    while s > s_min:
        s = max(s_min, s - STEP)
        if hit(s):
            lo, hi = s, s_prev              # hi free, lo colliding
            for _ in range(12):
                mid = (lo + hi) / 2
                if hit(mid):
                    lo = mid
                else:
                    hi = mid
            return T_at(hi), True
        s_prev = s
    return T_at(s_min), False


def close_hand(hand: HandShape, pose: HandPose, side: int, T: np.ndarray, obst: Obstacles,
               fingers=(1, 2, 3, 4, 0)) -> tuple[HandPose, np.ndarray]:
    """Flex each finger joint by joint until it touches an obstacle; thumb (0) last, against the
    object, the table and the other fingers. Returns the closed posture, per-finger object contact
    and the open posture actually used (a thumb that started inside the object is opened first)."""
    pose = pose.copy()
    start = pose.copy()
    contact = np.zeros(5, bool)
    for f in fingers:
        extra = obst
        if f == 0:
            p0, p1, rr = hand.segments(pose, side)
            keep = np.arange(3, 15)
            caps = (apply_T(T, p0[keep]), apply_T(T, p1[keep]), rr[keep])
            if obst.capsules is not None:
                caps = tuple(np.concatenate([a, b]) for a, b in zip(caps, obst.capsules))
            extra = Obstacles(obst.mesh, obst.table_z, caps)
        stopped_on = None
        for k in range(3):
            lever = hand.lengths[f, k:].sum()
            dtheta = STEP / lever
            lim = MAX_FLEX[f, k]

            joint = apply_T(T, hand.keypoints(pose, side)[1 + 4 * f + k])

            def clear(theta):
                p = pose.copy()
                p.angles[f, k + 1] = theta
                c, r = _hand_spheres(hand, p, side, T, fingers=[f], segments=range(k, 3), palm=False)
                # the joint itself does not move with this rotation: ignore the sphere around it,
                # so a knuckle resting on the surface does not stop the next phalanx from curling
                keep = np.linalg.norm(c - joint, axis=1) > 0.8 * r
                return extra.clearance(c[keep], r[keep], 0.01)

            th = pose.angles[f, k + 1]
            cl, what = clear(th)
            if cl < 0 and k == 0:
                # starts inside an obstacle (e.g. a thumb placed after the palm): open it first
                while cl < CONTACT_TOL and th > -0.8:
                    th -= dtheta
                    cl, what = clear(th)
                pose.angles[f, k + 1] = th
                start.angles[f, k + 1] = th
            if cl <= CONTACT_TOL:
                stopped_on = what
                continue
            prev = th
            while th < lim:
                th = min(lim, th + dtheta)
                cl, what = clear(th)
                if cl <= CONTACT_TOL:
                    lo, hi = prev, th           # lo free
                    for _ in range(10):
                        mid = (lo + hi) / 2
                        c2, w2 = clear(mid)
                        if c2 <= CONTACT_TOL:
                            hi, what = mid, w2
                        else:
                            lo = mid
                    th = lo
                    stopped_on = what
                    break
                prev = th
            pose.angles[f, k + 1] = th
        if stopped_on is None and f != 0 and contact[1:].any():
            # closed on nothing (a fist): take the mean posture of the fingers that touch, if free
            trial = pose.copy()
            trial.angles[f, 1:] = pose.angles[1:][contact[1:], 1:].mean(0)
            c, r = _hand_spheres(hand, trial, side, T, fingers=[f], palm=False)
            if obst.clearance(c, r, 0.01)[0] > CONTACT_TOL:
                pose = trial
        # contact: the finger ends within 1 mm of the object surface
        c, r = _hand_spheres(hand, pose, side, T, fingers=[f], palm=False)
        contact[f] = obst.mesh.min_clearance(c, r, 0.002) <= 0.001
    return pose, contact, start


def _frame(x, z) -> np.ndarray:
    x = normalize(x)
    z = normalize(np.asarray(z, float) - np.dot(z, x) * x)
    return np.stack([x, np.cross(z, x), z], axis=1)


def _palm_contact(hand, pose, side, T, obst, tol=0.006) -> bool:
    c, r = hand.palm_spheres
    if side == LEFT:
        c = c * np.array([1, -1, 1])
    return obst.mesh.min_clearance(apply_T(T, c), r, tol + 0.004) <= tol


def plan_wrap(hand: HandShape, side: int, mq: MeshQuery, centre: np.ndarray, normal: np.ndarray,
              finger_dir: np.ndarray, rear_x: float | None, tilt: float = 0.2,
              table_z: float | None = 0.0, kind: str = 'wrap', capsules=None,
              gap: float = 0.002, front_x: float | None = None) -> Grasp:
    """Palm approaches `centre` (object frame) along `normal` (from the hand towards the object),
    fingers along `finger_dir` dipped by `tilt` rad; the object's rear edge (along the fingers)
    sits at wrist-frame x = rear_x, or its front edge at x = front_x (neither: the palm centre
    faces `centre`)."""
    n = normalize(normal)
    f = normalize(np.asarray(finger_dir, float) - np.dot(finger_dir, n) * n)
    x = normalize(f * np.cos(tilt) + np.array([0, 0, -1.0]) * np.sin(tilt))
    R = _frame(x, -n)
    # extent of the object behind the centre, along the finger direction, near the grasp height
    v = mq.vertices
    band = np.abs(v[:, 2] - centre[2]) < 0.025
    vv = v[band] if band.any() else v
    if rear_x is not None:
        o = centre + (float(((vv - centre) @ x).min()) - rear_x) * x
    elif front_x is not None:
        o = centre + (float(((vv - centre) @ x).max()) - front_x) * x
    else:
        o = centre - 0.05 * hand.scale * x
    pose = preshape(kind)
    if table_z is not None:         # keep the open hand (fingers dipped) above the table
        c, r = hand.collision_points(pose, side)
        low = float(((c @ R.T)[:, 2] - r).min())
        o[2] = max(o[2], table_z + 0.006 - low)
    T0 = make_T(R, o)
    obst = Obstacles(mq, table_z, capsules)
    T, touched = place(hand, pose, side, T0, -n, obst, gap, s_max=0.3, s_min=-0.05, fingers=range(1, 5))
    closed, contact, pose = close_hand(hand, pose, side, T, obst)
    return Grasp(side, kind, T, pose, closed, contact, _palm_contact(hand, closed, side, T, obst))


def claw_preshape(openness: float, thumb: str = 'side') -> HandPose:
    """Claw pre-shape; openness 0 (thumb-finger span ~9 cm) .. 1 (~15-19 cm). thumb='side': the
    thumb hangs abducted sideways and closes forwards (objects on the table); 'back': it points
    down and back, opposing the fingers directly (bowl rims)."""
    o = float(np.clip(openness, 0, 1))
    if thumb == 'back':
        return make_pose((0.9 - 0.55 * o, 0.5 - 0.15 * o, 0.2 - 0.05 * o), 0.06,
                         (-0.35 - 0.35 * o, 0.35, -0.85 + 0.25 * o), (1.0, 0.0, 0.0),
                         (0.0, 0.25 - 0.15 * o, 0.25 - 0.15 * o))
    # the thumb hangs down and sideways (abducted, its tip level with the fingertips), so that
    # closing moves its tip forwards rather than into the table
    a = 0.7 + 0.425 * o
    return make_pose((0.9 - 0.55 * o, 0.5 - 0.15 * o, 0.2 - 0.05 * o), 0.06,
                     (-0.1 - 0.2 * o, np.sin(a), -np.cos(a)), (1.0, 0.0, 0.25), (0.0, 0.1, 0.1))


def plan_claw(hand: HandShape, side: int, mq: MeshQuery, centre: np.ndarray, finger_dir: np.ndarray,
              tip_z: float, table_z: float | None = 0.0, capsules=None, gap: float = 0.002,
              shift: float = 0.0, span: float | None = None, thumb: str = 'side') -> Grasp:
    """Claw from above: palm down, fingers along `finger_dir` (horizontal), thumb and fingertips on
    either side of the object's extent along the fingers (measured near `centre`; or, with `span`
    given, of an extent `span` centred on `centre`), the fingertips at height `tip_z` (raised if
    the open hand would touch anything). The opening is the smallest that clears the extent."""
    f = normalize(np.array([finger_dir[0], finger_dir[1], 0.0]))
    R = _frame(f, (0, 0, 1.0))
    centre = np.asarray(centre, float).copy()
    if span is None:
        v = mq.vertices
        lat = (v - centre) @ R[:, 1]
        vv = v[np.abs(lat) < 0.03] if np.any(np.abs(lat) < 0.03) else v
        e = (vv - centre) @ f
        centre = centre + f * 0.5 * (e.min() + e.max())
        span = float(e.max() - e.min())
    need = span + 2 * (0.0095 * hand.scale + 0.008)
    for o in np.linspace(0, 1, 9):
        pose = claw_preshape(o, thumb)
        kp = hand.keypoints(pose, side)
        if kp[[8, 12, 16], 0].min() - kp[4, 0] >= need:
            break
    tips = kp[[8, 12, 16]]
    mid = (tips.mean(0) + kp[4]) / 2
    low = tips[:, 2].min()
    o = centre - R @ np.array([mid[0] - shift, mid[1], 0.0])
    o[2] = tip_z - low
    T0 = make_T(R, o)
    obst = Obstacles(mq, table_z, capsules)
    T, _ = place(hand, pose, side, T0, np.array([0, 0, 1.0]), obst, gap, s_max=0.3, s_min=0.0)
    closed, contact, pose = close_hand(hand, pose, side, T, obst)
    return Grasp(side, 'claw', T, pose, closed, contact, _palm_contact(hand, closed, side, T, obst))
