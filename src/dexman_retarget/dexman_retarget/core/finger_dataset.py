"""Supervised data for the finger retargeting network (paper 3.3): forward kinematics of the
Shadow hand of the G1 model, fingertips in the hand's wrist frame, normalised by its hand length.

- Joint configurations: the 18 actuated joints of one hand (``rm.hand_actuated_joints``), drawn
  within their limits: a share uniformly, the rest near natural grasps (:data:`GRASP_ANCHORS`:
  open hand, power and hook grasps, thumb-to-finger pinches, tripod), see
  :func:`sample_actuated`. Deterministic per seed (numpy ``default_rng``).
- The distal joints J0 (no actuator) follow J1 as the model's coupling tendon ``T_xxJ1c``
  prescribes: 0.00705 J0 - 0.00805 J1 in [-0.001, 0.001], i.e. J0 = 1.1418 J1 +- 0.142 rad. The
  data use the centre of that band, J0 = clip(1.1418 J1, J0 limits); in simulation J0 can sit
  anywhere in the band (no spring: it lags at the band's edge, +-3.7 mm at the fingertip). The band
  also bounds J1: with J0 <= 1.571 the tendon admits J1 <= (1.571 + 0.142) / 1.1418 = 1.50 rad
  (the simulator never goes further: docs/retargeting.md), so J1's usable range is [0, 1.50], not the joint
  range [0, 1.571]. All of this is read from the model (:class:`ShadowHandKinematics`).
- Fingertips: the ``S_*tip`` sites (thumb, index, middle, ring, little), computed with
  ``mj_kinematics`` on the whole model, expressed in the hand's Hand3D-style
  wrist frame, fixed in the palm (``hand_keypoints.ShadowHandFrame``), so the arm's pose does not
  matter. Normalised input = tips / hand length (0.1956 m), the same normalisation as the human
  side (``hand_keypoints.normalized_fingertips``).

The network works in right-hand coordinates; a left hand's data are the mirror image (y -> -y in
the wrist frame) with the same joint angles (tested).
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from . import hand_keypoints as hk
from dexman_description import robot_model as rm

# Anchor postures, actuated joints in rm.HAND_ACTUATED_JOINTS order:
# FFJ3 FFJ2 FFJ1 | MFJ3 MFJ2 MFJ1 | RFJ3 RFJ2 RFJ1 | LFJ4 LFJ3 LFJ2 LFJ1 | THJ4 THJ3 THJ2 THJ1 THJ0.
# The pinches and the tripod were solved (least squares, thumb tip onto the finger tip(s) to
# < 1 mm) on this model; open, power and hook are hand-set.
GRASP_ANCHORS = {
    'open': [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.5, 0.3, 0, 0, 0],
    'power': [0, 1.0, 1.1, 0, 1.0, 1.1, 0, 1.0, 1.1, 0.4, 0, 1.0, 1.1, 1.0, 1.15, 0.15, 0.3, -0.6],
    'hook': [0, 0.2, 1.35, 0, 0.2, 1.35, 0, 0.2, 1.35, 0.2, 0, 0.2, 1.35, 0, 0, 0, 0, 0],
    'pinch_ff': [-0.01, 0.81, 0.83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.57, 0.96, 0.08, -0.03, -0.32],
    'pinch_mf': [0, 0, 0, 0, 0.86, 0.88, 0, 0, 0, 0, 0, 0, 0, 0.66, 1.11, 0.16, -0.11, -0.35],
    'pinch_rf': [0, 0, 0, 0, 0, 0, 0.16, 0.61, 1.14, 0, 0, 0, 0, 0.88, 1.22, 0.21, -0.17, -0.31],
    'pinch_lf': [0, 0, 0, 0, 0, 0, 0, 0, 0, 0.61, 0.18, 0.63, 0.79, 0.53, 1.22, 0.21, -0.01, -0.29],
    'tripod': [0, 0.86, 0.83, 0, 0.86, 0.83, 0, 0, 0, 0, 0, 0, 0, 0.61, 1.04, 0.12, -0.07, -0.34],
}
# Columns of each finger (FF, MF, RF, LF) in the actuated vector, flexion joints last two.
_FINGER_COLS = {'FF': (0, 1, 2), 'MF': (3, 4, 5), 'RF': (6, 7, 8), 'LF': (9, 10, 11, 12)}
GRASP_NOISE = 0.12          # rad, per-joint Gaussian noise around the anchor blend


@dataclasses.dataclass(frozen=True)
class Coupling:
    """J0 = clip(ratio * J1 + offset, j0_lo, j0_hi) for one finger (centre of the tendon band)."""
    j0: int        # index in the 22 hand joints
    j1: int        # index in the 22 hand joints
    ratio: float
    offset: float
    slack: float   # half-width of the tendon band, in J0 radians
    j0_lo: float
    j0_hi: float


class ShadowHandKinematics:
    """Forward kinematics of one Shadow hand of the G1 model (any MjModel built by robot_model).

    ``actuated`` joint vectors are (N, 18) in ``rm.HAND_ACTUATED_JOINTS`` order; ``full`` ones
    (N, 22) in ``rm.HAND_JOINTS`` order (qpos order).
    """

    def __init__(self, model, side='right'):
        import mujoco
        self.model = model
        self.side = hk.side_name(side)
        self.data = mujoco.MjData(model)
        self.joint_names = rm.hand_joints(self.side)
        self.actuated_names = rm.hand_actuated_joints(self.side)
        self.qadr = np.array([model.joint(j).qposadr[0] for j in self.joint_names])
        self.act_idx = np.array([self.joint_names.index(j) for j in self.actuated_names])
        rng = np.array([model.joint(j).range for j in self.joint_names], dtype=float)
        self.full_lo, self.full_hi = rng[:, 0], rng[:, 1]
        self.couplings = tuple(self._coupling(f) for f in ('FF', 'MF', 'RF', 'LF'))
        lo, hi = self.full_lo[self.act_idx].copy(), self.full_hi[self.act_idx].copy()
        for c in self.couplings:     # the tendon band bounds J1 (see module docstring)
            k = int(np.flatnonzero(self.act_idx == c.j1)[0])
            hi[k] = min(hi[k], (c.j0_hi + c.slack - c.offset) / c.ratio)
        self.lo, self.hi = lo, hi
        self.site_ids = np.array([model.site(s).id for s in rm.fingertip_sites(self.side)])
        self.palm_id = model.body(hk.hand_prefix(self.side) + rm.PALM_BODY).id
        self.frame = hk.shadow_hand_frame(model, self.side)
        self.scale = self.frame.scale

    def _coupling(self, finger: str) -> Coupling:
        m = self.model
        pre = hk.hand_prefix(self.side)
        t = m.tendon(f'{pre}T_{finger}J1c').id
        adr, num = m.tendon_adr[t], m.tendon_num[t]
        coef = {m.joint(int(m.wrap_objid[adr + i])).name: float(m.wrap_prm[adr + i])
                for i in range(num)}
        j0n, j1n = f'{pre}{finger}J0', f'{pre}{finger}J1'
        c0, c1 = coef[j0n], coef[j1n]
        lo_t, hi_t = (float(x) for x in m.tendon_range[t])
        if set(coef) != {j0n, j1n} or not m.tendon_limited[t] or c0 <= 0 or -c1 / c0 <= 0:
            raise ValueError(f'unexpected coupling tendon {pre}T_{finger}J1c: {coef}')
        i0, i1 = self.joint_names.index(j0n), self.joint_names.index(j1n)
        return Coupling(j0=i0, j1=i1, ratio=-c1 / c0, offset=0.5 * (lo_t + hi_t) / c0,
                        slack=0.5 * (hi_t - lo_t) / c0, j0_lo=self.full_lo[i0], j0_hi=self.full_hi[i0])

    # ------------------------------------------------------------------ joint vectors
    def full_q(self, q_act) -> np.ndarray:
        """(..., 18) actuated -> (..., 22) hand joints, J0 coupled to J1."""
        q_act = np.asarray(q_act, dtype=float)
        q = np.zeros(q_act.shape[:-1] + (len(self.joint_names),))
        q[..., self.act_idx] = q_act
        for c in self.couplings:
            q[..., c.j0] = np.clip(c.ratio * q[..., c.j1] + c.offset, c.j0_lo, c.j0_hi)
        return q

    def clip(self, q_act) -> np.ndarray:
        return np.clip(q_act, self.lo, self.hi)

    # ------------------------------------------------------------------ forward kinematics
    def fingertips(self, q_act) -> np.ndarray:
        """Fingertip sites (N, 5, 3) in the hand's wrist frame, metres (thumb, index, ..., little)."""
        import mujoco
        q_act = np.atleast_2d(np.asarray(q_act, dtype=float))
        qf = self.full_q(q_act)
        m, d = self.model, self.data
        d.qpos[:] = m.qpos0
        out = np.empty((len(qf), 5, 3))
        for i in range(len(qf)):
            d.qpos[self.qadr] = qf[i]
            mujoco.mj_kinematics(m, d)
            out[i] = d.site_xpos[self.site_ids]
        # all samples share the palm pose (only hand joints move): one transform for the batch
        T_w = hk.palm_frame(m, d, self.side) @ self.frame.T_palm_wrist
        return hk.to_frame(out, T_w)

    def normalized(self, tips) -> np.ndarray:
        """Tips (metres, wrist frame) -> network input units (tips / hand length)."""
        return np.asarray(tips, dtype=float) / self.scale

    # ------------------------------------------------------------------ identity
    def probe_configs(self) -> np.ndarray:
        """Fixed configurations (actuated) used to check a model against a checkpoint."""
        r = np.random.default_rng(12345).uniform(size=(6, len(self.lo)))
        anchors = np.array([GRASP_ANCHORS[k] for k in ('open', 'power', 'pinch_ff', 'tripod')])
        return self.clip(np.concatenate([np.zeros((1, len(self.lo))), anchors,
                                         self.lo + r * (self.hi - self.lo)]))

    def probe(self) -> np.ndarray:
        """Fingertips (11, 5, 3) at :meth:`probe_configs`, right-hand coordinates (a left hand is
        mirrored), metres."""
        t = self.fingertips(self.probe_configs())
        return hk.mirror_wrist_coords(t) if self.side == 'left' else t

    def hand_hash(self) -> str:
        """SHA-256 of this hand's kinematic parameters (body/joint/site placement, axes, ranges,
        coupling), rounded to 1e-5 (the robot MJCF keeps 6 significant digits), in right-hand
        coordinates: the left hand of a correct build has the same hash as the right one."""
        m = self.model
        pre = hk.hand_prefix(self.side)
        M = np.diag([-1.0, 1.0, 1.0])
        rows = []
        bodies = [b for b in range(m.nbody) if m.body(b).name.startswith(pre)]
        for b in bodies:
            name = m.body(b).name[len(pre):]
            pos, quat = m.body_pos[b].copy(), m.body_quat[b].copy()
            if name == rm.PALM_BODY:       # the mount is not part of the hand
                pos, quat = np.zeros(3), np.array([1.0, 0, 0, 0])
            if self.side == 'left':
                pos, quat = M @ pos, quat * np.array([1, 1, -1, -1])
            if quat[0] < 0:
                quat = -quat
            parent = '' if name == rm.PALM_BODY else m.body(int(m.body_parentid[b])).name
            rows.append((name, parent.removeprefix(pre), pos, quat))
        for j in self.joint_names:
            jj = m.joint(j)
            pos, ax = jj.pos.copy(), jj.axis.copy()
            if self.side == 'left':
                pos, ax = M @ pos, np.array([ax[0], -ax[1], -ax[2]])   # pseudo-vector
            rows.append((j[len(pre):], pos, ax, jj.range.copy()))
        for s in self.site_ids:
            pos = m.site_pos[s].copy()
            rows.append((m.site(int(s)).name[len(pre):], M @ pos if self.side == 'left' else pos))
        for c in self.couplings:
            rows.append((c.ratio, c.offset, c.slack))
        h = hashlib.sha256()
        for row in rows:
            for v in row:
                if isinstance(v, str):
                    h.update(v.encode())
                else:
                    a = np.round(np.atleast_1d(np.asarray(v, dtype=float)), 5) + 0.0  # no -0.0
                    h.update(a.tobytes())
        return h.hexdigest()


# ---------------------------------------------------------------------------------- sampling
def sample_actuated(kin: ShadowHandKinematics, n: int, rng: np.random.Generator,
                    grasp_share: float = 0.5, grasp_noise: float = GRASP_NOISE) -> np.ndarray:
    """(n, 18) actuated configurations within ``kin.lo/hi``: round(grasp_share * n) near the
    grasp anchors, the rest uniform. Near a grasp: anchor k (uniform), closure s = sqrt(u)
    (biased towards closed), q = s * anchor; fingers the anchor leaves straight get a random curl
    (half of them); then N(0, grasp_noise) on every joint, clipped into the limits."""
    n_grasp = int(round(grasp_share * n))
    n_uni = n - n_grasp
    lo, hi = kin.lo, kin.hi
    uni = lo + rng.uniform(size=(n_uni, len(lo))) * (hi - lo)
    names = list(GRASP_ANCHORS)
    A = np.clip(np.array([GRASP_ANCHORS[k] for k in names], dtype=float), lo, hi)
    k = rng.integers(len(names), size=n_grasp)
    s = np.sqrt(rng.uniform(size=(n_grasp, 1)))
    q = s * A[k]
    for cols in _FINGER_COLS.values():
        idle = np.all(A[k][:, list(cols)] == 0, axis=1) & (rng.uniform(size=n_grasp) < 0.5)
        curl = rng.uniform(size=n_grasp) * rng.uniform(0.5, 1.0, size=(n_grasp,))
        for c in cols[-2:]:                       # J2, J1 flexion
            q[:, c] = np.where(idle, curl * hi[c], q[:, c])
    q = q + rng.normal(0.0, grasp_noise, size=q.shape)
    grasp = np.clip(q, lo, hi)
    out = np.concatenate([uni, grasp])
    return out[rng.permutation(n)]


@dataclasses.dataclass
class FingerDataset:
    q: np.ndarray          # (N, 18) actuated joint angles, rad
    tips: np.ndarray       # (N, 5, 3) fingertip sites in the wrist frame, metres (right coords)
    x: np.ndarray          # (N, 15) network input: tips / hand length, flattened
    scale: float           # the hand length used, m
    seed: int
    side: str

    def __len__(self) -> int:
        return len(self.q)


def make_dataset(kin: ShadowHandKinematics, n: int, seed: int = 0,
                 grasp_share: float = 0.5, grasp_noise: float = GRASP_NOISE) -> FingerDataset:
    """``n`` FK samples of ``kin``'s hand, deterministic for a given seed. Left-hand data are
    returned mirrored into right-hand coordinates (the network's input convention)."""
    rng = np.random.default_rng(seed)
    q = sample_actuated(kin, n, rng, grasp_share, grasp_noise)
    tips = kin.fingertips(q)
    if kin.side == 'left':
        tips = hk.mirror_wrist_coords(tips)
    x = kin.normalized(tips).reshape(n, 15)
    return FingerDataset(q=q, tips=tips, x=x, scale=kin.scale, seed=seed, side=kin.side)
