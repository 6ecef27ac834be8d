"""Scripted manipulation tasks: one-hand pick-and-place, pick-and-pour, two-hand lift, hand-over.

Each task samples an object pose on the table, plans the grasp(s) (grasp.py) in the object frame
and writes a keyframed Script (timeline.py). World: table top centre above the origin at height
`table_h`, the person at the -y edge facing +y, the person's right hand towards +x.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from . import grasp as G
from .body_model import Body
from .hand_model import LEFT, RIGHT, HandShape, relaxed_pose
from .mesh_query import MeshQuery
from .objects import ObjectModel
from .timeline import Script
from .transforms import apply_T, inv_T, make_T, rot_z, rotation_about

TASKS = ('pick_place', 'pick_pour', 'bimanual_lift', 'handover')
SIZE_FOR_TASK = {'pick_place': 'hand', 'pick_pour': 'hand', 'bimanual_lift': 'large', 'handover': 'tall'}
DEFAULT_DURATION = {'pick_place': 3.5, 'pick_pour': 4.0, 'bimanual_lift': 3.5, 'handover': 4.0}
SIDE_NAME = {LEFT: 'left', RIGHT: 'right'}


class TaskError(RuntimeError):
    pass


@dataclasses.dataclass
class Layout:
    table_h: float
    edge_y: float          # table edge on the person's side
    body: Body
    hand: HandShape
    obj: ObjectModel

    @property
    def mq(self) -> MeshQuery:
        if not hasattr(self, '_mq'):
            self._mq = MeshQuery.from_trimesh(self.obj.mesh)
        return self._mq


@dataclasses.dataclass
class TaskResult:
    script: Script
    info: dict
    grasps: list


def object_size(task: str, shape: str) -> str:
    size = SIZE_FOR_TASK[task]
    if size == 'tall' and shape in ('bowl', 'tool'):
        return 'hand'
    return size


def _s(side: int) -> float:
    return 1.0 if side == RIGHT else -1.0


def rest_pose(L: Layout, side: int, rng, avoid=()) -> np.ndarray:
    """Idle hand resting palm down on the table near the body, at least 1.5 cm outside the object's
    bounding box at each pose in `avoid` (moved outwards, then towards the body, until it is)."""
    s = _s(side)
    a = 0.35
    f = np.array([-s * np.sin(a), np.cos(a), 0.0])
    R = G._frame(f, (0, 0, 1.0))
    pose = relaxed_pose()
    c, r = L.hand.collision_points(pose, side)
    low = float(((c @ R.T)[:, 2] - r).min())
    x0, y0 = rng.uniform(0.2, 0.25), rng.uniform(0.05, 0.09)
    lo, hi = L.mq.vertices.min(0), L.mq.vertices.max(0)
    for dy in (0.0, -0.03, -0.06):
        for dx in np.arange(0.0, 0.2, 0.02):
            T = make_T(R, (s * (x0 + dx), L.edge_y + y0 + dy, L.table_h + 0.002 - low))
            ok = True
            for T_wo in avoid:
                co = apply_T(inv_T(T_wo) @ T, c)
                inside = np.all((co > lo - r[:, None] - 0.015) & (co < hi + r[:, None] + 0.015), axis=1)
                if inside.any():            # conservative: clear of the object's bounding box
                    ok = False
                    break
            if ok:
                return T
    raise TaskError('no free resting place for the idle hand')


def _obj_pose(L: Layout, x, y, yaw) -> np.ndarray:
    return make_T(rot_z(yaw), (x, y, L.table_h))


def _to_obj(T_wo: np.ndarray, v_world) -> np.ndarray:
    return T_wo[:3, :3].T @ np.asarray(v_world, float)


def _check(g: G.Grasp, need_thumb: bool = True) -> bool:
    fingers = int(g.finger_contact[1:].sum())
    if need_thumb:
        return bool(g.finger_contact[0]) and fingers >= 2
    return (g.palm_contact or g.finger_contact[0]) and fingers >= 2


# ---------------------------------------------------------------------------- one-hand grasps
def one_hand_grasp(L: Layout, side: int, T_wo: np.ndarray, rng, height_frac: float | None = None,
                   capsules=None, table=True, along: float | None = None,
                   on_head: bool = False) -> G.Grasp:
    """A plausible one-hand grasp of L.obj posed at T_wo (world), planned in the object frame.
    height_frac: wrap height as a fraction of the object height; along: claw position along the
    object x axis (m) for tools and slabs; on_head: claw the tool's head instead of its handle;
    table: the object stands on the table now (else it is held in the air)."""
    o, s, p = L.obj, _s(side), L.obj.params
    # the table plane (object z = 0) is an obstacle even for a grasp planned in the air: the object
    # is put down upright later, and no finger may then be below its bottom face
    hz = 0.0
    if o.shape in ('cylinder', 'mug', 'box'):
        a = rng.uniform(0.15, 0.45)
        n_w = np.array([-s * np.cos(a), np.sin(a), 0.0])
        n = _to_obj(T_wo, n_w)
        if o.shape == 'box':                       # snap to the nearest face normal
            k = int(np.argmax(np.abs(n[:2])))
            n = np.zeros(3)
            n[k] = np.sign(_to_obj(T_wo, n_w)[k])
        f = rot_z(-s * np.pi / 2) @ n
        if np.dot(T_wo[:3, :3] @ f, (0, 1, 0)) < -0.2:
            f = -f
        if height_frac is None:
            height_frac = {'cylinder': p.get('grip_height', 0.0) / o.extents[2], 'mug': 0.45}.get(o.shape, 0.5)
        h = height_frac * o.extents[2]
        rear = 0.045 * L.hand.scale if o.shape == 'box' else 0.03 * L.hand.scale
        return G.plan_wrap(L.hand, side, L.mq, np.array([0, 0, h]), n, f, rear, tilt=rng.uniform(0.1, 0.25),
                           table_z=hz, capsules=capsules)
    if o.shape == 'bowl':
        b = rng.uniform(0.3, 0.8)
        out_w = np.array([s * np.cos(b), -np.sin(b), 0.0])
        out = _to_obj(T_wo, out_w)
        out[2] = 0
        out /= np.linalg.norm(out)
        R, hgt, t = p['radius'], p['height'], p['wall']
        rim = out * (R - t / 2) + np.array([0, 0, hgt])
        return G.plan_claw(L.hand, side, L.mq, rim, -out, tip_z=max(0.45 * hgt, t + 0.025),
                           table_z=hz, capsules=capsules, shift=-0.01, span=0.09, thumb='back')
    if o.shape in ('tool', 'slab'):
        fy = np.array([0, 1.0, 0])
        if np.dot(T_wo[:3, :3] @ fy, (0, 1, 0)) < 0:
            fy = -fy
        if o.shape == 'tool':
            if on_head and p['head'] is not None:
                cx, hh = p['head'][0], p['head'][3]
            else:
                cx = p['handle_center'] if along is None else along
                hh = 2 * p['handle_radius']
        else:
            cx = along if along is not None else rng.uniform(-0.15, 0.15) * p['extents'][0]
            hh = p['extents'][2]
        # on the table the thumb hangs sideways (closing along the table); in the air it opposes
        return G.plan_claw(L.hand, side, L.mq, np.array([cx, 0, 0]), fy, tip_z=max(0.012, 0.5 * hh),
                           table_z=hz, capsules=capsules, thumb='side' if table else 'back')
    raise TaskError(f'no one-hand grasp for {o.shape}')


def _pregrasp(g: G.Grasp, T_wo: np.ndarray, back: float = 0.08) -> np.ndarray:
    """Wrist pose before the final approach: backed off along the approach, and up."""
    T = T_wo @ g.T_obj_wrist
    out = T.copy()
    if g.kind == 'claw':
        out[:3, 3] += np.array([0, 0, back])
    else:
        palm_out = T[:3, 2]                  # dorsal direction = away from the object
        out[:3, 3] += palm_out * back + np.array([0, 0, 0.03])
    return out


def _reach(S: Script, h: int, t0: float, t1: float, T_from: np.ndarray, T_to: np.ndarray, pose_from,
           pose_to) -> None:
    """Keys for a reach from T_from (already keyed at t0) to T_to at t1, through a point 4 cm above
    T_to, so the hand comes down onto its pre-grasp pose instead of sweeping across the table."""
    from .hand_model import interp_pose
    from .transforms import interp_T
    via = interp_T(T_from, T_to, 0.75)
    via[2, 3] = max(via[2, 3], T_to[2, 3]) + 0.04
    S.hand(h, t0 + 0.6 * (t1 - t0), via, interp_pose(pose_from, pose_to, 0.6))
    S.hand(h, t1, T_to, pose_to)


def _lift_height(L: Layout, T_wo: np.ndarray, extra_T=None, clearance: float = 0.03) -> float:
    """How much to raise so the (rotated) object clears the table by `clearance`."""
    T = T_wo if extra_T is None else extra_T @ T_wo
    z = apply_T(T, L.obj.mesh.vertices)[:, 2].min()
    return max(0.0, L.table_h + clearance - z)


def _robust(fn, L, rng, tries=6, what='grasp'):
    last = None
    for _ in range(tries):
        try:
            g = fn()
        except G.GraspFailed as e:
            last = str(e)
            continue
        if _check(g):
            return g
        last = f'contacts {g.finger_contact.astype(int).tolist()}, palm {g.palm_contact}'
    raise TaskError(f'no valid {what} of the {L.obj.shape} found (last try: {last})')


# ---------------------------------------------------------------------------- tasks
def pick_place(L: Layout, rng, pour: bool = False) -> TaskResult:
    side = RIGHT if rng.random() < 0.75 else LEFT
    s = _s(side)
    other = 1 - side
    S = Script()
    yaw = rng.uniform(-np.pi, np.pi) if L.obj.symmetry == 'z_axial' else rng.uniform(-0.35, 0.35)
    x0, y0 = s * rng.uniform(0.06, 0.16), L.edge_y + rng.uniform(0.2, 0.28)
    if L.obj.shape == 'mug':     # handle pointing away from the hand, towards the far side/back
        yaw = np.arctan2(-0.6, -s) + rng.uniform(-0.35, 0.35)
    T0 = _obj_pose(L, x0, y0, yaw)

    def try_grasp():
        g = one_hand_grasp(L, side, T0, rng)
        return g
    g = _robust(try_grasp, L, rng)
    Tg = T0 @ g.T_obj_wrist
    Tpre = _pregrasp(g, T0)
    relaxed = relaxed_pose()
    # place pose
    dx = -s * rng.uniform(0.08, 0.16)
    T1 = _obj_pose(L, x0 + dx, y0 + rng.uniform(-0.04, 0.06), yaw + rng.uniform(-0.3, 0.3))
    lift = rng.uniform(0.10, 0.15)
    rest = {h: rest_pose(L, h, rng, (T0, T1)) for h in (LEFT, RIGHT)}
    t = 0.0
    S.hand(other, 0.0, rest[other], relaxed)
    S.hand(side, t, rest[side], relaxed)
    S.obj(0.0, T0)
    t += 0.25
    S.hand(side, t, rest[side], relaxed)
    _reach(S, side, t, t + 0.75, rest[side], Tpre, relaxed, g.open_pose)
    t += 0.75
    t += 0.4
    S.hand(side, t, Tg, g.open_pose)
    t += 0.3
    S.hand(side, t, Tg, g.closed_pose)
    t_att = t
    S.obj(t, T0)
    Tlift = T0.copy()
    Tlift[2, 3] += lift
    t += 0.45
    S.obj(t, Tlift)
    info = {}
    if pour:
        # pour: move towards the middle/front and rotate about the forward axis through the grasp
        Tmove = Tlift.copy()
        Tmove[:3, 3] += np.array([-s * rng.uniform(0.05, 0.1), rng.uniform(0.0, 0.05), rng.uniform(0.04, 0.08)])
        angle = -s * np.deg2rad(rng.uniform(95, 120))
        pivot = (Tmove @ g.T_obj_wrist)[:3, 3] * 0.5 + Tmove[:3, 3] * 0.5 + np.array([0, 0, 0.5 * L.obj.extents[2]])
        Rp = rotation_about(pivot, (0, 1.0, 0), angle)
        up = _lift_height(L, Tmove, Rp, clearance=0.05)
        Tmove[2, 3] += up
        Rp = rotation_about(pivot + np.array([0, 0, up]), (0, 1.0, 0), angle)
        Tpour = Rp @ Tmove
        t += 0.55
        S.obj(t, Tmove)
        t += 0.6
        S.obj(t, Tpour)
        t += 0.45
        S.obj(t, Tpour)
        t += 0.6
        S.obj(t, Tmove)
        info['pour_angle_deg'] = float(np.rad2deg(angle))
    Tabove = T1.copy()
    Tabove[2, 3] += lift
    t += 0.7
    S.obj(t, Tabove)
    t += 0.45
    S.obj(t, T1)
    t_det = t
    S.attach(side, t_att, t_det, g.T_obj_wrist, g.closed_pose, g.finger_contact)
    Tg1 = T1 @ g.T_obj_wrist
    S.hand(side, t, Tg1, g.closed_pose)
    t += 0.3
    S.hand(side, t, Tg1, g.open_pose)
    t += 0.5
    S.hand(side, t, _pregrasp(g, T1), g.open_pose)
    t += 0.5
    S.hand(side, t, rest[side], relaxed)
    S.obj(t, T1)
    S.hand(other, t, rest[other], relaxed)
    info.update(hand=SIDE_NAME[side], grasp=g.kind, contacts=g.finger_contact.tolist())
    return TaskResult(S, info, [g])


def pick_pour(L: Layout, rng) -> TaskResult:
    return pick_place(L, rng, pour=True)


def bimanual_lift(L: Layout, rng) -> TaskResult:
    o, p = L.obj, L.obj.params
    S = Script()
    relaxed = relaxed_pose()
    yaw = rng.uniform(-0.2, 0.2)
    if o.shape == 'mug':
        yaw = (np.pi / 2 if rng.random() < 0.5 else -np.pi / 2) + rng.uniform(-0.2, 0.2)
    if o.shape == 'bowl':
        yaw = rng.uniform(-np.pi, np.pi)
    T0 = _obj_pose(L, rng.uniform(-0.04, 0.04), L.edge_y + rng.uniform(0.22, 0.28), yaw)
    grasps = {}

    def two_hand_grasp(side):
        s = _s(side)
        if o.shape in ('box', 'cylinder', 'mug', 'slab'):
            n = _to_obj(T0, (-s, 0, 0))
            n[2] = 0
            n /= np.linalg.norm(n)
            f = _to_obj(T0, (0, 1.0, 0))
            c = -n * 0.0
            if o.shape == 'slab':
                beta = np.deg2rad(rng.uniform(40, 50))
                k = int(np.argmax(np.abs(n[:2])))
                half = p['extents'][k] / 2
                c = np.zeros(3)
                c[k] = -np.sign(n[k]) * half
                c[2] = p['extents'][2]
                n = n * np.cos(beta) + np.array([0, 0, -np.sin(beta)])
            else:
                c[2] = 0.5 * o.extents[2]
            # fingers along the face with their tips at its front edge
            g = G.plan_wrap(L.hand, side, L.mq, c, n, f, None, tilt=rng.uniform(0.2, 0.35), kind='press',
                            front_x=0.165 * L.hand.scale)
            ok = _check(g, need_thumb=False)
        elif o.shape == 'bowl':
            out = _to_obj(T0, rot_z(rng.uniform(-0.35, 0.35)) @ np.array([s, 0, 0]))
            out[2] = 0
            out /= np.linalg.norm(out)
            rim = out * (p['radius'] - p['wall'] / 2) + np.array([0, 0, p['height']])
            g = G.plan_claw(L.hand, side, L.mq, rim, -out, tip_z=max(0.45 * p['height'], p['wall'] + 0.025),
                            shift=-0.01, span=0.09, thumb='back')
            ok = _check(g)
        else:   # tool: a long bar, claws across it
            xh = s * rng.uniform(0.13, 0.16)
            c = _to_obj(T0, (xh, 0, 0))
            c[1] = c[2] = 0
            fy = np.array([0, 1.0, 0]) if np.dot(T0[:3, :3] @ (0, 1.0, 0), (0, 1, 0)) > 0 else np.array([0, -1.0, 0])
            g = G.plan_claw(L.hand, side, L.mq, c, fy, tip_z=max(0.012, p['handle_radius']))
            ok = _check(g)
        return g, ok

    for side in (RIGHT, LEFT):
        for _ in range(4):
            g, ok = two_hand_grasp(side)
            if ok:
                break
        else:
            raise TaskError(f'two-hand grasp of the {o.shape} failed ({SIDE_NAME[side]}: contacts '
                            f'{g.finger_contact.astype(int).tolist()}, palm {g.palm_contact})')
        grasps[side] = g
    lift = rng.uniform(0.12, 0.18)
    T1 = _obj_pose(L, T0[0, 3] + rng.uniform(-0.06, 0.06), T0[1, 3] + rng.uniform(-0.04, 0.04),
                   yaw + rng.uniform(-0.25, 0.25))
    rest = {h: rest_pose(L, h, rng, (T0, T1)) for h in (LEFT, RIGHT)}
    t = 0.0
    S.obj(0.0, T0)
    for h in (LEFT, RIGHT):
        S.hand(h, 0.0, rest[h], relaxed)
        S.hand(h, 0.25, rest[h], relaxed)
        _reach(S, h, 0.25, 1.05, rest[h], _pregrasp(grasps[h], T0), relaxed, grasps[h].open_pose)
        S.hand(h, 1.45, T0 @ grasps[h].T_obj_wrist, grasps[h].open_pose)
        S.hand(h, 1.75, T0 @ grasps[h].T_obj_wrist, grasps[h].closed_pose)
    t = 1.75
    S.obj(t, T0)
    Tl = T0.copy()
    Tl[2, 3] += lift
    S.obj(t + 0.6, Tl)
    Tm = T1.copy()
    Tm[2, 3] += lift
    S.obj(t + 1.3, Tm)
    S.obj(t + 1.9, T1)
    t_det = t + 1.9
    for h in (LEFT, RIGHT):
        g = grasps[h]
        S.attach(h, t, t_det, g.T_obj_wrist, g.closed_pose, g.finger_contact)
        S.hand(h, t_det, T1 @ g.T_obj_wrist, g.closed_pose)
        S.hand(h, t_det + 0.3, T1 @ g.T_obj_wrist, g.open_pose)
        S.hand(h, t_det + 0.8, _pregrasp(g, T1), g.open_pose)
        S.hand(h, t_det + 1.2, rest[h], relaxed)
    S.obj(t_det + 1.2, T1)
    info = dict(hand='both', grasp=grasps[RIGHT].kind,
                contacts={SIDE_NAME[h]: grasps[h].finger_contact.tolist() for h in grasps})
    return TaskResult(S, info, [grasps[LEFT], grasps[RIGHT]])


def handover(L: Layout, rng) -> TaskResult:
    o, p = L.obj, L.obj.params
    giver = RIGHT if rng.random() < 0.75 else LEFT
    recv = 1 - giver
    s = _s(giver)
    S = Script()
    relaxed = relaxed_pose()
    yaw = rng.uniform(-np.pi, np.pi) if o.symmetry == 'z_axial' else rng.uniform(-0.3, 0.3)
    if o.shape == 'mug':
        yaw = np.arctan2(-0.6, -s) + rng.uniform(-0.3, 0.3)
    if o.shape == 'tool':          # head (object +x) towards the receiver, handle end towards the giver
        yaw = (np.pi if s > 0 else 0.0) + rng.uniform(-0.3, 0.3)
    T0 = _obj_pose(L, s * rng.uniform(0.1, 0.16), L.edge_y + rng.uniform(0.2, 0.27), yaw)
    lowfrac = 0.27 if o.shape in ('box', 'cylinder', 'mug') else None
    along = None
    if o.shape == 'tool':           # giver holds the far end of the handle, receiver takes the head
        along = p['handle_center'] - 0.22 * p['handle_length']
    elif o.shape == 'slab':         # giver and receiver at opposite ends of the book
        along = s * 0.28 * p['extents'][0]

    def g1_try():
        return one_hand_grasp(L, giver, T0, rng, height_frac=lowfrac, along=along)
    g1 = _robust(g1_try, L, rng, what='giving grasp')
    # hand-over pose: lifted in front of the person, near the middle
    Th = T0.copy()
    Th[:3, 3] = [s * rng.uniform(0.0, 0.04), T0[1, 3] + rng.uniform(0.0, 0.04), L.table_h + rng.uniform(0.12, 0.16)]
    # the receiving grasp, planned on the held object with the giver's hand as an obstacle
    p0, p1, rr = L.hand.segments(g1.closed_pose, giver)
    pc, pr = L.hand.palm_spheres
    if giver == LEFT:
        pc = pc * np.array([1, -1, 1])
    caps = (np.concatenate([apply_T(g1.T_obj_wrist, p0), apply_T(g1.T_obj_wrist, pc)]),
            np.concatenate([apply_T(g1.T_obj_wrist, p1), apply_T(g1.T_obj_wrist, pc)]),
            np.concatenate([rr, pr]))

    def g2_try():
        if o.shape in ('box', 'cylinder', 'mug'):     # two wraps, one above the other
            g = one_hand_grasp(L, recv, Th, rng, height_frac=0.74, capsules=caps, table=False)
        elif o.shape == 'bowl':
            g = one_hand_grasp(L, recv, Th, rng, capsules=caps, table=False)
        elif o.shape == 'tool':
            g = one_hand_grasp(L, recv, Th, rng, capsules=caps, table=False, on_head=True)
        else:  # slab: the other end
            g = one_hand_grasp(L, recv, Th, rng, capsules=caps, table=False, along=-along)
        return g
    g2 = _robust(g2_try, L, rng, what='receiving grasp')
    T1 = _obj_pose(L, -s * rng.uniform(0.1, 0.16), L.edge_y + rng.uniform(0.2, 0.27), yaw + rng.uniform(-0.3, 0.3))
    rest = {h: rest_pose(L, h, rng, (T0, T1)) for h in (LEFT, RIGHT)}
    # timeline
    S.obj(0.0, T0)
    for h in (LEFT, RIGHT):
        S.hand(h, 0.0, rest[h], relaxed)
    S.hand(giver, 0.2, rest[giver], relaxed)
    _reach(S, giver, 0.2, 0.85, rest[giver], _pregrasp(g1, T0), relaxed, g1.open_pose)
    S.hand(giver, 1.2, T0 @ g1.T_obj_wrist, g1.open_pose)
    S.hand(giver, 1.45, T0 @ g1.T_obj_wrist, g1.closed_pose)
    t_a1 = 1.45
    S.obj(t_a1, T0)
    S.obj(t_a1 + 0.8, Th)                       # giver brings it to the middle
    t_h = t_a1 + 0.8
    S.hand(recv, 1.0, rest[recv], relaxed)
    _reach(S, recv, 1.0, t_h, rest[recv], _pregrasp(g2, Th, 0.07), relaxed, g2.open_pose)
    S.hand(recv, t_h + 0.35, Th @ g2.T_obj_wrist, g2.open_pose)
    S.hand(recv, t_h + 0.6, Th @ g2.T_obj_wrist, g2.closed_pose)
    t_a2 = t_h + 0.6
    S.obj(t_a2 + 0.3, Th)
    t_d1 = t_a2 + 0.05
    S.attach(giver, t_a1, t_d1, g1.T_obj_wrist, g1.closed_pose, g1.finger_contact)
    S.hand(giver, t_d1, Th @ g1.T_obj_wrist, g1.closed_pose)
    S.hand(giver, t_d1 + 0.25, Th @ g1.T_obj_wrist, g1.open_pose)
    S.hand(giver, t_d1 + 0.55, _pregrasp(g1, Th, 0.07), g1.open_pose)
    S.hand(giver, t_d1 + 1.1, rest[giver], relaxed)
    t = t_a2 + 0.3
    Tab = T1.copy()
    Tab[2, 3] = Th[2, 3]
    S.obj(t + 0.6, Tab)
    S.obj(t + 1.05, T1)
    t_d2 = t + 1.05
    S.attach(recv, t_a2, t_d2, g2.T_obj_wrist, g2.closed_pose, g2.finger_contact)
    S.hand(recv, t_d2, T1 @ g2.T_obj_wrist, g2.closed_pose)
    S.hand(recv, t_d2 + 0.25, T1 @ g2.T_obj_wrist, g2.open_pose)
    S.hand(recv, t_d2 + 0.6, _pregrasp(g2, T1), g2.open_pose)
    S.hand(recv, t_d2 + 1.0, rest[recv], relaxed)
    S.hand(giver, t_d2 + 1.0, rest[giver], relaxed)
    S.obj(t_d2 + 1.0, T1)
    info = dict(hand=f'{SIDE_NAME[giver]}->{SIDE_NAME[recv]}', grasp=f'{g1.kind}->{g2.kind}',
                contacts={SIDE_NAME[giver]: g1.finger_contact.tolist(), SIDE_NAME[recv]: g2.finger_contact.tolist()})
    return TaskResult(S, info, [g1, g2])


BUILDERS = {'pick_place': pick_place, 'pick_pour': pick_pour, 'bimanual_lift': bimanual_lift,
            'handover': handover}


def build(task: str, L: Layout, rng) -> TaskResult:
    if task not in BUILDERS:
        raise TaskError(f'unknown task {task!r} (choose from {", ".join(TASKS)})')
    res = BUILDERS[task](L, rng)
    res.script.check()
    return res
