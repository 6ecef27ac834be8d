"""Arm self-collision distances for the wrist IK: signed distances between the G1 arms (links and
Shadow hands) and the rest of the robot, with their joint gradients (MuJoCo ``mj_geomDistance``).

Pairs (built once from the model, the rules MuJoCo's own collision detection uses):

- one side: every collision geom of an arm, i.e. of the subtree of ``{side}_shoulder_pitch_link``
  (upper arm, forearm, wrist, hand);
- other side: every robot geom outside that subtree (torso, head, pelvis, waist, legs), the
  other arm's geoms (each arm-arm pair once), and static obstacles: geoms of bodies outside the
  robot without degrees of freedom (the table of ``ik_scene``, a mocap body);
- kept when MuJoCo would collide them: ``contype``/``conaffinity`` bitmasks compatible, the two
  bodies are not parent and child (unless the model disables that filter), no ``<exclude>``.

Per evaluation (the model's kinematics done in ``data``, e.g. after ``mj_kinematics``): tests of
bounding spheres (around each geom's local bounding box, ``geom_aabb``), then of the boxes'
world-aligned bounds, drop pairs farther apart than the activation distance;
for the rest ``mj_geomDistance`` gives the signed distance ``d`` (negative: penetration) and the
nearest points ``p1`` (arm geom) and ``p2``. The gradient of ``d`` over the joints is
``n . (J(p2) - J(p1))`` with ``n`` the unit vector from ``p1`` to ``p2`` for separated geoms
(reversed for penetrating ones, where the nearest-point segment points the other way), ``J`` the
translational Jacobian of the point on its body (``mj_jac``).

The IK (``wrist_ik``) turns each pair closer than ``margin`` into a residual
``w (margin - d)`` (a one-sided, squared-hinge penalty), so that the arm's redundancy moves the
elbow and upper arm away from the body instead of through it.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dexman_description import robot_model as rm

SIDES = ('left', 'right')


@dataclasses.dataclass
class Proximity:
    """The pairs closer than the evaluation's distance: arrays over those pairs."""
    pair: np.ndarray        # (k,) indices into ArmCollisionModel's pair arrays
    dist: np.ndarray        # (k,) signed distance (m), negative when penetrating
    p1: np.ndarray          # (k, 3) nearest point on the arm geom (world)
    p2: np.ndarray          # (k, 3) nearest point on the other geom (world)


def _subtree(model, root: int) -> np.ndarray:
    """(nbody,) bool: bodies in the subtree of ``root``."""
    inside = np.zeros(model.nbody, bool)
    for b in range(model.nbody):
        a = b
        while a > 0:
            if a == root:
                inside[b] = True
                break
            a = int(model.body_parentid[a])
    return inside


class ArmCollisionModel:
    """The arm collision pairs of one robot model (module doc). Stateless over evaluations."""

    def __init__(self, model):
        import mujoco
        self.mj = mujoco
        self.model = model
        self.side_of_body = np.full(model.nbody, -1)
        hand_body = np.zeros(model.nbody, bool)
        for k, s in enumerate(SIDES):
            try:
                root = model.body(f'{s}_shoulder_pitch_link').id
                palm = model.body(rm.HAND_PREFIX[s] + rm.PALM_BODY).id
            except KeyError:
                raise ValueError(f'body {s}_shoulder_pitch_link or the {s} palm is not in the model (not a '
                                 'G1 + Shadow build of robot_model)') from None
            self.side_of_body[_subtree(model, root)] = k
            hand_body |= _subtree(model, palm)
        # the robot: the subtree of the arms' root body (the child of the world they hang from)
        root = model.body('left_shoulder_pitch_link').id
        while model.body_parentid[root] > 0:
            root = int(model.body_parentid[root])
        robot = _subtree(model, root)
        robot[root] = True
        static = np.array([b > 0 and not robot[b] and model.body_dofnum[b] == 0
                           and model.body_weldid[b] == b for b in range(model.nbody)])
        gbody = model.geom_bodyid
        coll = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
        geoms = np.flatnonzero(coll & (robot | static)[gbody])
        filterparent = not (model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_FILTERPARENT)
        excluded = set()
        for e in range(model.nexclude):
            b1, b2 = int(model.exclude_signature[e] >> 16), int(model.exclude_signature[e] & 0xFFFF)
            excluded |= {(b1, b2), (b2, b1)}
        # geoms of the robot's trunk that an arm cannot reach (the feet, the shins): farther from
        # the shoulder than the hanging arm's extent (bounding spheres at qpos0, 0.1 m slack)
        data = mujoco.MjData(model)
        mujoco.mj_kinematics(model, data)
        centre = data.geom_xpos + (data.geom_xmat.reshape(-1, 3, 3) @ model.geom_aabb[:, :3, None])[:, :, 0]
        radius = np.linalg.norm(model.geom_aabb[:, 3:], axis=1)
        shoulder, extent = [], []
        for k, s in enumerate(SIDES):
            p = data.xpos[model.body(f'{s}_shoulder_pitch_link').id]
            arm = [g for g in geoms if self.side_of_body[gbody[g]] == k]
            shoulder.append(p)
            extent.append(max(np.linalg.norm(centre[g] - p) + radius[g] for g in arm) + 0.1)
        g1s, g2s = [], []
        for a in geoms:
            sa = self.side_of_body[gbody[a]]
            if sa < 0:
                continue
            for b in geoms:
                sb = self.side_of_body[gbody[b]]
                if sb == sa or (sb >= 0 and sa != 0):
                    continue            # same arm; arm-arm pairs once, the left geom first
                if sb < 0 and robot[gbody[b]] and np.linalg.norm(centre[b] - shoulder[sa]) - radius[b] > extent[sa]:
                    continue            # out of the arm's reach
                if not ((model.geom_contype[a] & model.geom_conaffinity[b])
                        or (model.geom_contype[b] & model.geom_conaffinity[a])):
                    continue
                ba, bb = int(gbody[a]), int(gbody[b])
                if filterparent and (model.body_parentid[ba] == bb or model.body_parentid[bb] == ba):
                    continue
                if (ba, bb) in excluded:
                    continue
                g1s.append(a)
                g2s.append(b)
        self.g1 = np.asarray(g1s, int)                   # arm geom
        self.g2 = np.asarray(g2s, int)                   # other geom
        self.side1 = self.side_of_body[gbody[self.g1]]   # 0 left, 1 right
        self.side2 = self.side_of_body[gbody[self.g2]]   # -1 body or obstacle, else the other arm
        self.body1 = gbody[self.g1]
        self.body2 = gbody[self.g2]
        self.hand1 = hand_body[self.body1]               # the arm geom belongs to the hand
        self.obstacle2 = static[self.body2]              # the other geom is a static obstacle (table)
        self._cache = {}                                 # pair mask -> _candidates
        self._fromto = np.zeros(6)
        self._jac1 = np.zeros((3, model.nv))
        self._jac2 = np.zeros((3, model.nv))

    @property
    def n_pairs(self) -> int:
        return len(self.g1)

    def pair_mask(self, sides) -> np.ndarray:
        """(n_pairs,) bool: pairs that involve an arm of ``sides`` (names)."""
        ks = [SIDES.index(s) for s in sides]
        return np.isin(self.side1, ks) | np.isin(self.side2, ks)

    def _candidates(self, mask):
        """(pair indices, their geoms, slots of each pair's two geoms in those, the geoms' local
        bounding-box centres and half sizes, the pairs' summed bounding radii) of a pair mask."""
        key = None if mask is None else np.packbits(mask).tobytes()
        if key not in self._cache:
            idx = np.arange(self.n_pairs) if mask is None else np.flatnonzero(mask)
            geoms, inv = np.unique(np.concatenate([self.g1[idx], self.g2[idx]]), return_inverse=True)
            s1, s2 = inv[:len(idx)], inv[len(idx):]
            r = np.linalg.norm(self.model.geom_aabb[geoms, 3:], axis=1)
            self._cache[key] = (idx, geoms, s1, s2, self.model.geom_aabb[geoms, :3, None].copy(),
                                self.model.geom_aabb[geoms, 3:, None].copy(), r[s1] + r[s2])
        return self._cache[key]

    def proximity(self, data, within, mask=None) -> Proximity:
        """Pairs (of ``mask``, default all) whose signed distance is below ``within`` (m; a number
        or one per pair, (n_pairs,))."""
        m = self.model
        idx, g, s1, s2, box_c, box_h, rsum = self._candidates(mask)
        lim = np.broadcast_to(np.asarray(within, float), (self.n_pairs,))[idx]
        # bounding spheres of the geoms' local boxes: centre x + R c, radius |half|
        c = data.geom_xpos[g] + (data.geom_xmat[g].reshape(-1, 3, 3) @ box_c)[:, :, 0]
        d = c[s1] - c[s2]
        reach = rsum + lim
        near = np.flatnonzero(np.einsum('ij,ij->i', d, d) < reach * reach)
        if len(near):     # then their world-aligned boxes (tighter for long geoms, e.g. the table)
            a, b = s1[near], s2[near]
            R = data.geom_xmat[g].reshape(-1, 3, 3)
            half = np.abs(R[a]) @ box_h[a] + np.abs(R[b]) @ box_h[b]
            gap = np.abs(d[near]) - half[:, :, 0]
            near = near[(gap < lim[near, None]).all(axis=1)]
        idx, lim = idx[near], lim[near]
        keep, dist, p1, p2 = [], [], [], []
        if not len(idx):
            return Proximity(np.zeros(0, int), np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)))
        ft = self._fromto
        for i, li in zip(idx.tolist(), lim.tolist()):
            d = self.mj.mj_geomDistance(m, data, int(self.g1[i]), int(self.g2[i]), max(li, 0.0), ft)
            if d < li:
                keep.append(i)
                dist.append(d)
                p1.append(ft[:3].copy())
                p2.append(ft[3:].copy())
        k = len(keep)
        if not k:
            return Proximity(np.zeros(0, int), np.zeros(0), np.zeros((0, 3)), np.zeros((0, 3)))
        return Proximity(np.asarray(keep, int), np.asarray(dist, float), np.asarray(p1), np.asarray(p2))

    def _normals(self, data, prox: Proximity) -> np.ndarray:
        """(k, 3) unit directions in which moving p2 away from p1 increases the signed distance:
        p1 -> p2 for separated geoms, reversed for penetrating ones; the direction between the geom
        centres where the two points coincide."""
        v = prox.p2 - prox.p1
        nv = np.linalg.norm(v, axis=1)
        normal = np.zeros_like(v)
        ok = nv > 1e-9
        normal[ok] = v[ok] / nv[ok, None] * np.where(prox.dist[ok] < 0, -1.0, 1.0)[:, None]
        if (~ok).any():
            i = prox.pair[~ok]
            c = data.geom_xpos[self.g2[i]] - data.geom_xpos[self.g1[i]]
            normal[~ok] = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        return normal

    def gradient(self, data, prox: Proximity, dofs) -> np.ndarray:
        """(k, len(dofs)) d(dist)/dq of the pairs of ``prox`` over the given dof columns (needs
        ``mj_comPos`` done on ``data``)."""
        out = np.zeros((len(prox.pair), len(dofs)))
        normal = self._normals(data, prox)
        for r, i in enumerate(prox.pair):
            self.mj.mj_jac(self.model, data, self._jac1, None, prox.p1[r], int(self.body1[i]))
            self.mj.mj_jac(self.model, data, self._jac2, None, prox.p2[r], int(self.body2[i]))
            out[r] = normal[r] @ (self._jac2[:, dofs] - self._jac1[:, dofs])
        return out

    def clearance(self, data) -> np.ndarray:
        """(2,) the smallest signed distance (m) of each arm to the rest of the robot, up to 1 m."""
        prox = self.proximity(data, 1.0)
        out = np.full(2, 1.0)
        for k in range(2):
            sel = (self.side1[prox.pair] == k) | (self.side2[prox.pair] == k)
            if sel.any():
                out[k] = float(prox.dist[sel].min())
        return out

    def pair_names(self, prox: Proximity) -> list[str]:
        """'arm body / other body' of each pair of ``prox``."""
        m = self.model
        return [f'{m.body(int(self.body1[i])).name} / {m.body(int(self.body2[i])).name}' for i in prox.pair]
