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

Per evaluation (the model's kinematics done in ``data``, e.g. after ``mj_kinematics``): a
bounding-sphere test (``geom_rbound``) drops pairs farther apart than the activation distance;
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

SIDES = ('left', 'right')


@dataclasses.dataclass
class Proximity:
    """The pairs closer than the evaluation's distance: arrays over those pairs."""
    pair: np.ndarray        # (k,) indices into ArmCollisionModel's pair arrays
    dist: np.ndarray        # (k,) signed distance (m), negative when penetrating
    p1: np.ndarray          # (k, 3) nearest point on the arm geom (world)
    p2: np.ndarray          # (k, 3) nearest point on the other geom (world)
    normal: np.ndarray      # (k, 3) unit direction in which moving p2 away from p1 increases dist


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
        for k, s in enumerate(SIDES):
            try:
                root = model.body(f'{s}_shoulder_pitch_link').id
            except KeyError:
                raise ValueError(f'body {s}_shoulder_pitch_link is not in the model (not a G1 build of '
                                 'robot_model)') from None
            self.side_of_body[_subtree(model, root)] = k
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
        g1s, g2s = [], []
        for a in geoms:
            sa = self.side_of_body[gbody[a]]
            if sa < 0:
                continue
            for b in geoms:
                sb = self.side_of_body[gbody[b]]
                if sb == sa or (sb >= 0 and sa != 0):
                    continue            # same arm; arm-arm pairs once, the left geom first
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
        self.rsum = model.geom_rbound[self.g1] + model.geom_rbound[self.g2]
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

    def proximity(self, data, within: float, mask=None) -> Proximity:
        """Pairs (of ``mask``, default all) whose signed distance is below ``within`` (m)."""
        m = self.model
        idx = np.arange(self.n_pairs) if mask is None else np.flatnonzero(mask)
        centre = np.linalg.norm(data.geom_xpos[self.g1[idx]] - data.geom_xpos[self.g2[idx]], axis=1)
        idx = idx[centre - self.rsum[idx] < within]
        keep, dist, p1, p2 = [], [], [], []
        ft = self._fromto
        for i in idx:
            d = self.mj.mj_geomDistance(m, data, int(self.g1[i]), int(self.g2[i]), within, ft)
            if d < within:
                keep.append(i)
                dist.append(d)
                p1.append(ft[:3].copy())
                p2.append(ft[3:].copy())
        k = len(keep)
        p1a = np.asarray(p1).reshape(k, 3)
        p2a = np.asarray(p2).reshape(k, 3)
        dista = np.asarray(dist, float)
        v = p2a - p1a
        nv = np.linalg.norm(v, axis=1)
        normal = np.zeros((k, 3))
        ok = nv > 1e-9
        normal[ok] = v[ok] / nv[ok, None] * np.where(dista[ok] < 0, -1.0, 1.0)[:, None]
        if (~ok).any():          # touching: the direction between the geom centres
            c = data.geom_xpos[self.g2[np.asarray(keep, int)[~ok]]] - data.geom_xpos[self.g1[np.asarray(keep, int)[~ok]]]
            normal[~ok] = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
        return Proximity(np.asarray(keep, int), dista, p1a, p2a, normal)

    def gradient(self, data, prox: Proximity, dofs) -> np.ndarray:
        """(k, len(dofs)) d(dist)/dq of the pairs of ``prox`` over the given dof columns (needs
        ``mj_comPos`` done on ``data``)."""
        out = np.zeros((len(prox.pair), len(dofs)))
        for r, i in enumerate(prox.pair):
            self.mj.mj_jac(self.model, data, self._jac1, None, prox.p1[r], int(self.body1[i]))
            self.mj.mj_jac(self.model, data, self._jac2, None, prox.p2[r], int(self.body2[i]))
            out[r] = prox.normal[r] @ (self._jac2[:, dofs] - self._jac1[:, dofs])
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
