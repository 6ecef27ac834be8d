"""Wrist retargeting (paper 3.3): inverse kinematics from palm (wrist) targets to the G1 arm joints,
both arms together, over a whole trajectory. The CPU default; ``wrist_ik_genesis`` is the paper's
Genesis backend.

Method: damped least squares (Levenberg-Marquardt) on the MuJoCo model of ``robot_model``.

- Unknowns: the 7 arm joints of each side (``rm.arm_joints``), stacked into one vector (left then
  right) plus optional ``extra_joints`` shared by both arms (e.g. the waist of a ``--waist``
  build; by default every other joint, waist and fingers included, is held at ``qpos_hold``).
- Residual per targeted arm: ``[w_p (p* - p), w_r log(R* R^T)]`` (world frame) for the palm body
  frame ``{lh,rh}_palm``; Jacobian from ``mj_jacBody`` (after ``mj_kinematics`` + ``mj_comPos``).
  The arms share no joint while the waist is fixed, so the stacked Jacobian is block diagonal and
  the stacked solve is two independent solves done at once.
- Per frame: warm start from the previous frame's solution; cost
  ``1/2 |r(q)|^2 + mu/2 |q - q_prev|^2`` (``smooth_weight`` = mu, regularisation towards the
  previous frame, which also fixes the arm's redundant 7th DoF); Nielsen's adaptive damping with
  gain-ratio step acceptance; each step is a box-constrained solve (joints at or pushed past a
  limit are fixed at the limit and the rest re-solved), capped at ``max_step`` rad, so joint
  limits are never violated. If the regularisation alone keeps the error above the tolerance, a
  short unregularised polish follows (minimum-norm steps, so the pose stays close).
- Where the warm start's palm is far from the target (``jump_pos`` / ``jump_rot``: the first frame,
  a hand re-detected elsewhere, unrelated frames), that arm starts instead from the pose of a table
  of ``seed_table`` random in-range poses (sampled once per solver) whose palm pose is nearest to
  the target, if it is nearer.
- Targets the warm start does not reach within the tolerance, and which are within the arm's
  geometric reach (a local minimum, typically at a joint limit), are retried from up to
  ``restarts`` other seeds, only that arm's joints: half of them the table poses nearest to the
  target, then the nominal pose, then random in-range poses; the best result is kept.
- Per frame and arm: position error (m), orientation error (rad), ``converged`` (errors within
  ``tol_pos`` / ``tol_rot``), ``reachable`` (errors within ``reach_tol_pos`` / ``reach_tol_rot``;
  targets beyond the arm's reach, i.e. farther from the shoulder-pitch joint than the length of
  the chain to the palm origin, 0.463 m, are never reachable; not checked with ``extra_joints``)
  and a message for every arm that is not reachable or has no target. An unreachable target gets
  the closest pose found (weighted least squares of position and orientation error).

Trackability (what the RL environment's PD controllers can follow; the pipeline's setting):

- ``avoid_collisions``: one more residual row ``collision_weight * (margin - d)`` per pair of an
  arm (links and hand) and the rest of the robot or the table closer than its margin
  (``self_collision``: signed distances and their joint gradients from MuJoCo;
  ``collision_margin`` for the body, the other arm and arm links against the table,
  ``hand_table_margin`` for a hand against the table, negative: a hand may rest on the table that
  deep). The arm's redundancy then swings the elbow and upper arm clear instead of through the
  torso; a target reachable only through the body is missed by the closest collision-free pose.
  The table is that of the RL scene (``ik_scene``: a mocap box in the IK's own model,
  :meth:`WristIK.set_table`). Convergence also asks every pair out of its margin (``tol_pos``).
- ``frame_rate``: consecutive frames form a trajectory (:meth:`WristIK.solve_frames`). An arm's
  first targeted frame picks its branch deliberately (:meth:`WristIK.branch`: of the solutions
  from the seeds that reach the target clear of the robot and the table, the one nearest the
  nominal pose, the most relaxed arm); every later frame stays within
  ``max_joint_speed / frame_rate`` of the previous one per joint (a box constraint of the LM; no
  jump start, no restarts), so no frame jumps to another branch, and a target that moves faster
  than that is followed at the cap (the frame is flagged ``speed_limited``; the reference is not
  re-timed). An arm that cannot follow its target on its branch while not at the cap (a joint
  limit, the body in the way) looks for the nearest branch that reaches the target
  (:meth:`WristIK.branch` near its joints; again ``switch_retry`` frames later if there is none)
  and moves there at the cap, pulled by ``switch_weight`` |q - goal|^2 instead of the smoothing
  term, the goal following the target, until it arrives or reaches the target again: a branch
  switch spread over frames the PD controllers can follow. Frames before an arm's first target
  take that target's solution. Without a frame rate frames are independent targets (the tests'
  random poses: the behaviour described above).

``closest_pose`` is a reach test of one target that does not depend on other frames (LM from the
seed-table poses nearest to it, found with a KD-tree; with ``avoid_collisions`` a solution through
the body or the table is re-solved with the collision rows), used by ``workspace_fit``. Tunables:
:class:`IKOptions`, config/retarget.yaml [ik]. Speed and accuracy figures: docs/retargeting.md.

Frames with no target for an arm (``None`` for a side, or NaN entries: hand not tracked) hold
that arm's joints at their last value. The other joints (fingers, waist) are ``qpos_hold``, or per
frame ``hold`` (:meth:`WristIK.solve_frames`; the pipeline's fingers, which the collision rows see).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from dexman_common.geometry import axis_angle_from_rotation as _rotvec
from dexman_common.geometry import rotation_angle_between
from dexman_common.report import format_index_ranges
from dexman_common.config import ConfigBase
from dexman_description import robot_model as rm
from .hand_keypoints import SIDES
from .self_collision import ArmCollisionModel
from .wrist_targets import palm_targets_from_human

# q_left = MIRROR_SIGNS * q_right gives the mirror pose (docs/robot_model.md).
COLLISION_DEPTH = 1e-3     # m: shallower penetrations are contact, not collision (the penalty's residue)
MIRROR_SIGNS = np.array([1.0, -1.0, -1.0, 1.0, -1.0, 1.0, -1.0])


@dataclasses.dataclass(frozen=True)
class IKOptions(ConfigBase):
    """Tunables of the wrist IK (module doc); values in config/retarget.yaml [ik]."""

    SECTION = 'ik'
    YAML_FILE = 'retarget.yaml'

    pos_weight: float = 1.0        # residual weight of the position error (1/m)
    rot_weight: float = 0.2        # of the orientation error (1/rad): 1 rad weighs as 0.2 m
    smooth_weight: float = 1e-4    # mu: pull towards the previous frame's joints
    max_iters: int = 60            # LM iterations per frame and seed
    tol_pos: float = 1e-4          # converged: position error (m) ...
    tol_rot: float = 1e-3          # ... and orientation error (rad) at most these
    reach_tol_pos: float = 5e-3    # reachable: errors at most these
    reach_tol_rot: float = 0.05
    max_step: float = 0.5          # max joint change per LM iteration (rad)
    restarts: int = 16             # extra seeds for targets the warm start does not reach
    seed_table: int = 2048         # in-range arm poses sampled (per arm, lazily) to pick seeds from
    jump_pos: float = 0.1          # warm start this far (m) ...
    jump_rot: float = 1.0          # ... or this far (rad) from the target: try the nearest table pose
    seed: int = 0                  # random generator of the seed table
    extra_joints: tuple[str, ...] = ()   # joints solved with both arms (e.g. rm.WAIST_JOINTS)
    collision_weight: float = 10.0       # 1/m, residual per metre of missing clearance (0: collisions ignored)
    collision_margin: float = 0.005      # m, clearance kept between an arm and the robot or the table
    hand_table_margin: float = -0.005    # m, ... between a hand and the table (< 0: that much contact depth tolerated)
    max_joint_speed: float = 8.0         # rad/s, joint change cap between consecutive frames (0: none)
    switch_weight: float = 1.0           # pull (per rad^2) towards another branch an arm stuck on its own moves to
    switch_retry: int = 5                # frames between searches for such a branch while an arm stays stuck

    def __post_init__(self):
        if not (self.pos_weight > 0 and self.rot_weight >= 0 and self.smooth_weight >= 0):
            raise ValueError('pos_weight must be > 0, rot_weight and smooth_weight >= 0')
        if not (self.tol_pos > 0 and self.tol_rot > 0 and self.reach_tol_pos >= self.tol_pos
                and self.reach_tol_rot >= self.tol_rot):
            raise ValueError('need 0 < tol_pos <= reach_tol_pos and 0 < tol_rot <= reach_tol_rot')
        if self.max_iters < 1 or self.restarts < 0 or self.seed_table < 1 or not self.max_step > 0:
            raise ValueError('need max_iters >= 1, restarts >= 0, seed_table >= 1, max_step > 0')
        if not (self.collision_weight >= 0 and self.collision_margin >= 0 and self.max_joint_speed >= 0):
            raise ValueError('collision_weight, collision_margin and max_joint_speed must be >= 0')
        if not self.switch_weight > 0 or self.switch_retry < 1:
            raise ValueError('need switch_weight > 0 and switch_retry >= 1')
        if not -0.05 <= self.hand_table_margin <= 0.05:
            raise ValueError(f'hand_table_margin must be within +-0.05 m, got {self.hand_table_margin}')


@dataclasses.dataclass
class IKResult:
    q: np.ndarray              # (T, n) solved joints, order of joint_names
    joint_names: list          # left arm (7), right arm (7), extra_joints
    pos_err: np.ndarray        # (T, 2) [left, right] palm position error (m); NaN: no target
    rot_err: np.ndarray        # (T, 2) palm orientation error (rad); NaN: no target
    converged: np.ndarray      # (T, 2) bool, within tol_pos / tol_rot (True where no target)
    reachable: np.ndarray      # (T, 2) bool, within reach_tol_* (True where no target)
    has_target: np.ndarray     # (T, 2) bool
    iterations: np.ndarray     # (T,) LM iterations (all seeds)
    messages: list             # (T,) str: '' or one line per arm that is not fine
    time_s: float              # wall time of the solve
    options: IKOptions
    sides: tuple = SIDES
    speed_limited: np.ndarray | None = None   # (T, 2) bool, a joint at the speed cap (lags the target)
    clearance: np.ndarray | None = None       # (T, 2) m, WristIK.clearance per frame (< 0: a collision)

    @property
    def report(self) -> str:
        """A summary: per arm, how many frames are reachable, errors on them, the failing frames."""
        T = len(self.q)
        lines = [f'wrist IK: {T} frames, {self.time_s:.3f} s ({1e3 * self.time_s / max(T, 1):.2f} ms/frame, '
                 f'both arms), {int(self.iterations.sum())} LM iterations']
        for k, side in enumerate(self.sides):
            has = self.has_target[:, k]
            if not has.any():
                lines.append(f'  {side}: no target (arm held)')
                continue
            ok = has & self.reachable[:, k]
            bad = np.flatnonzero(has & ~self.reachable[:, k])
            line = f'  {side}: {int(ok.sum())}/{int(has.sum())} targeted frames reachable'
            if ok.any():
                pe, re = self.pos_err[ok, k], self.rot_err[ok, k]
                line += (f'; on those position error median {1e3 * np.median(pe):.3f} mm, max '
                         f'{1e3 * pe.max():.3f} mm, orientation median {np.median(re):.2e} rad, max {re.max():.2e} rad')
            if len(bad):
                line += f'; unreachable frames: {format_index_ranges(bad)}'
            if self.speed_limited is not None and self.speed_limited[:, k].any():
                lag = np.flatnonzero(self.speed_limited[:, k])
                line += (f'; at the joint speed cap ({self.options.max_joint_speed:g} rad/s) on '
                         f'{len(lag)} frames ({format_index_ranges(lag)})')
            if self.clearance is not None:
                hit = np.flatnonzero(self.clearance[:, k] < -COLLISION_DEPTH)
                line += (f'; in collision (robot or table) on {len(hit)} frames ({format_index_ranges(hit)}), '
                         f'deepest {-1e3 * self.clearance[hit, k].min():.1f} mm' if len(hit) else
                         f'; no collision (deeper than {1e3 * COLLISION_DEPTH:g} mm)')
            lines.append(line)
        return '\n'.join(lines)

    def full_qpos(self, model, qpos_hold=None) -> np.ndarray:
        """(T, nq): ``qpos_hold`` (default ``model.qpos0``) with the solved joints filled in."""
        base = np.array(model.qpos0 if qpos_hold is None else qpos_hold, dtype=float)
        out = np.repeat(base[None], len(self.q), axis=0)
        out[:, [model.jnt_qposadr[model.joint(n).id] for n in self.joint_names]] = self.q
        return out


def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A x = b; the minimum-norm least-squares x when A is numerically singular (the LM damping
    can shrink to ~1e-18 of a rank-deficient J^T J)."""
    try:
        return np.linalg.solve(A, b)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(A, b, rcond=None)[0]


def _check_targets(targets, name):
    if targets is None:
        return None
    T = np.asarray(targets, dtype=float)
    if T.ndim == 2:
        T = T[None]
    if T.ndim != 3 or T.shape[1:] != (4, 4):
        raise ValueError(f'{name} must have shape (T, 4, 4), got {np.shape(targets)}')
    fin = np.isfinite(T).all(axis=(1, 2))
    if fin.any():
        R = T[fin, :3, :3]
        dev = np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max()
        if dev > 1e-3 or np.any(np.linalg.det(R) < 0):
            raise ValueError(f'{name}: rotation parts are not proper rotations (|R R^T - I| = {dev:.2g})')
    return T


class WristIK:
    """The solver, bound to one model (keeps an ``MjData``; not thread-safe)."""

    def __init__(self, model, options: IKOptions = IKOptions(), qpos_hold=None, frame_rate: float | None = None,
                 avoid_collisions: bool = False):
        """frame_rate (Hz): the rate of the trajectories solved; with it, consecutive frames of an
        arm differ by at most ``max_joint_speed / frame_rate`` per joint. None: frames are
        independent targets (no speed cap). avoid_collisions: keep the arms out of the rest of the
        robot and out of the table (a model from ``ik_scene.robot_with_table``; ``self_collision``)
        with the collision rows (``collision_weight`` > 0); False: kinematics only."""
        import mujoco
        self.mj = mujoco
        self.model = model
        self.opt = options
        if frame_rate is not None and not (np.isfinite(frame_rate) and frame_rate > 0):
            raise ValueError(f'frame_rate must be > 0 Hz, got {frame_rate}')
        self.frame_rate = frame_rate
        self.max_dq = (options.max_joint_speed / frame_rate if frame_rate and options.max_joint_speed > 0
                       else np.inf)
        self.collisions = ArmCollisionModel(model) if avoid_collisions and options.collision_weight > 0 else None
        if self.collisions is not None:      # the clearance kept per pair
            c = self.collisions
            self.margins = np.where(c.hand1 & c.obstacle2, options.hand_table_margin, options.collision_margin)
        self.data = mujoco.MjData(model)
        self.qpos_hold = np.array(model.qpos0 if qpos_hold is None else qpos_hold, dtype=float)
        if self.qpos_hold.shape != (model.nq,):
            raise ValueError(f'qpos_hold must have shape ({model.nq},), got {self.qpos_hold.shape}')
        self.joint_names = rm.arm_joints('left') + rm.arm_joints('right') + list(options.extra_joints)
        ids = []
        for n in self.joint_names:
            try:
                ids.append(model.joint(n).id)
            except KeyError:
                raise ValueError(f'joint {n!r} is not in the model (is it a G1 + Shadow build of '
                                 'robot_model? extra_joints need a build that keeps them)') from None
        ids = np.array(ids)
        if np.any((model.jnt_type[ids] != mujoco.mjtJoint.mjJNT_HINGE)
                  & (model.jnt_type[ids] != mujoco.mjtJoint.mjJNT_SLIDE)):
            raise ValueError('only hinge/slide joints can be solved')
        self.qadr = model.jnt_qposadr[ids]
        self.dadr = model.jnt_dofadr[ids]
        lim = model.jnt_limited[ids].astype(bool)
        self.lo = np.where(lim, model.jnt_range[ids, 0], -np.inf)
        self.hi = np.where(lim, model.jnt_range[ids, 1], np.inf)
        ne = len(options.extra_joints)
        self.side_cols = {'left': np.arange(7), 'right': np.arange(7, 14)}
        self.extra_cols = np.arange(14, 14 + ne)
        self.palm = {s: model.body(rm.HAND_PREFIX[s] + rm.PALM_BODY).id for s in SIDES}
        self.jacp = np.zeros((3, model.nv))
        self.jacr = np.zeros((3, model.nv))
        self.nominal = np.clip(self.qpos_hold[self.qadr], self.lo, self.hi)
        # Geometric reach: shoulder-pitch anchor and the chain length to the palm origin (an
        # upper bound on the shoulder-palm distance; anchors and the chain are fixed while the
        # waist is).
        self._fk(self.nominal)
        self.shoulder, self.reach = {}, {}
        for s in SIDES:
            anc = [self.data.xanchor[model.joint(j).id].copy() for j in rm.arm_joints(s)]
            pts = anc + [self.data.xpos[self.palm[s]].copy()]
            self.shoulder[s] = anc[0]
            self.reach[s] = float(sum(np.linalg.norm(pts[i + 1] - pts[i]) for i in range(len(pts) - 1)))
            if ne:      # extra joints (waist) move the shoulder: no geometric pre-check
                self.reach[s] = float('inf')
        self.rng = np.random.default_rng(options.seed)
        self._table = {}
        self._trees = {}           # side -> KD-tree over the seed table (closest_pose)
        self._pair_masks = {}      # tuple of sides -> collision pairs involving them
        self._prox = None          # collision pairs of the last _residual
        self.table_box = None      # the table (set_table), unshifted
        self._reach_memo = {}      # closest_pose results while the table stays where it is

    def set_table(self, box=None, shift=(0.0, 0.0, 0.0)) -> None:
        """The table the arms must stay out of: a ``dexman_sim.TableBox`` translated by ``shift``
        (m), or None (no table). Needs a model from ``ik_scene.robot_with_table``."""
        from . import ik_scene
        if not ik_scene.has_table(self.model):
            if box is None:
                return
            raise ValueError('this IK model has no table geom: build it with ik_scene.robot_with_table')
        ik_scene.set_table(self.model, self.data, box, shift)
        self.table_box = box
        self._reach_memo.clear()

    # --- kinematics -------------------------------------------------------------------------
    def _fk(self, q):
        d = self.data
        d.qpos[:] = self.qpos_hold
        d.qpos[self.qadr] = q
        self.mj.mj_kinematics(self.model, d)

    def palm_pose(self, side) -> np.ndarray:
        """4x4 of the palm after the last forward kinematics."""
        T = np.eye(4)
        b = self.palm[side]
        T[:3, :3] = self.data.xmat[b].reshape(3, 3)
        T[:3, 3] = self.data.xpos[b]
        return T

    def forward(self, q) -> np.ndarray:
        """Palm poses (T, 2, 4, 4) [left, right] of joint vectors q (T, n) or (n,)."""
        q = np.atleast_2d(np.asarray(q, dtype=float))
        out = np.empty((len(q), 2, 4, 4))
        for t, qt in enumerate(q):
            self._fk(qt)
            for k, s in enumerate(SIDES):
                out[t, k] = self.palm_pose(s)
        return out

    def _residual(self, targets, sides, collide=True):
        """Weighted residual of the current kinematics: 6 rows per side (palm position, orientation),
        then with ``collide`` one row ``collision_weight * (collision_margin - d)`` per arm-robot
        pair of those arms closer than the margin (``self_collision``). Returns (residual, the raw
        (pos, rot) error norms per side, the collision penalty per side: the sum of the squared
        collision rows of the pairs that involve that arm)."""
        o = self.opt
        r = np.empty(6 * len(sides))
        err = {}
        for i, s in enumerate(sides):
            b = self.palm[s]
            ep = targets[s][:3, 3] - self.data.xpos[b]
            er = _rotvec(targets[s][:3, :3] @ self.data.xmat[b].reshape(3, 3).T)
            r[6 * i:6 * i + 3] = o.pos_weight * ep
            r[6 * i + 3:6 * i + 6] = o.rot_weight * er
            err[s] = (float(np.linalg.norm(ep)), float(np.linalg.norm(er)))
        pen = dict.fromkeys(sides, 0.0)
        self._prox = None
        if collide and self.collisions is not None:
            key = tuple(sides)
            if key not in self._pair_masks:
                self._pair_masks[key] = self.collisions.pair_mask(sides)
            prox = self.collisions.proximity(self.data, self.margins, self._pair_masks[key])
            self._prox = prox
            if len(prox.pair):
                rc = o.collision_weight * (self.margins[prox.pair] - prox.dist)
                c = self.collisions
                for s in sides:
                    k = SIDES.index(s)
                    sel = (c.side1[prox.pair] == k) | (c.side2[prox.pair] == k)
                    pen[s] = float(rc[sel] @ rc[sel])
                r = np.concatenate([r, rc])
        return r, err, pen

    def _jacobian(self, sides, cols):
        """Jacobian of the rows of the last :meth:`_residual` (at the current kinematics)."""
        self.mj.mj_comPos(self.model, self.data)
        o = self.opt
        J = np.empty((6 * len(sides), len(cols)))
        dofs = self.dadr[cols]
        for i, s in enumerate(sides):
            self.mj.mj_jacBody(self.model, self.data, self.jacp, self.jacr, self.palm[s])
            J[6 * i:6 * i + 3] = o.pos_weight * self.jacp[:, dofs]
            J[6 * i + 3:6 * i + 6] = o.rot_weight * self.jacr[:, dofs]
        if self._prox is not None and len(self._prox.pair):
            J = np.vstack([J, o.collision_weight * self.collisions.gradient(self.data, self._prox, dofs)])
        return J

    def _seeds(self, side, target, k, with_dist=False):
        """k arm poses (k, 7) from the seed table whose palm poses are nearest to the target."""
        o = self.opt
        if side not in self._table:
            c = self.side_cols[side]
            qs = self.rng.uniform(self.lo[c], self.hi[c], size=(max(o.seed_table, 1), len(c)))
            q = self.nominal.copy()
            pos = np.empty((len(qs), 3))
            rot = np.empty((len(qs), 3, 3))
            b = self.palm[side]
            for i, qi in enumerate(qs):
                q[c] = qi
                self._fk(q)
                pos[i] = self.data.xpos[b]
                rot[i] = self.data.xmat[b].reshape(3, 3)
            self._table[side] = (qs, pos, rot)
        qs, pos, rot = self._table[side]
        ang = rotation_angle_between(target[:3, :3], rot)
        d = (o.pos_weight ** 2) * np.sum((pos - target[:3, 3]) ** 2, axis=1) + (o.rot_weight * ang) ** 2
        idx = np.argsort(d)[:k]
        return (qs[idx], d[idx]) if with_dist else qs[idx]

    # --- one frame ----------------------------------------------------------------------------
    @staticmethod
    def _box_solve(H, g, lo, hi):
        """argmin 1/2 x'Hx - g'x subject to lo <= x <= hi (lo <= 0 <= hi), by fixing violators."""
        x = _solve(H, g)
        viol = (x < lo) | (x > hi)
        if not viol.any():
            return x
        free = np.ones(len(g), bool)
        for _ in range(len(g)):
            x[viol] = np.clip(x[viol], lo[viol], hi[viol])
            free &= ~viol
            if not free.any():
                break
            fixed = ~free
            Hf = H[free]
            x[free] = _solve(Hf[:, free], g[free] - Hf[:, fixed] @ x[fixed])
            viol = free & ((x < lo) | (x > hi))
            if not viol.any():
                break
        return np.clip(x, lo, hi)

    def _converged(self, err, tol_pos, tol_rot):
        return all(e[0] <= tol_pos and e[1] <= tol_rot for e in err.values())

    def _clear(self, pen) -> bool:
        """No pair deeper into the collision margin than ``tol_pos`` (the collision rows' share of
        the convergence test)."""
        return sum(pen.values()) <= (self.opt.collision_weight * self.opt.tol_pos) ** 2

    def _lm(self, q, targets, sides, cols, q_ref, mu, max_iters, lo=None, hi=None, collide=True):
        """Levenberg-Marquardt from q on the given columns, within the box lo <= q <= hi (default
        the joint limits); mu: the weight of |q - q_ref|^2, a number or one per column. Returns
        (q, err, collision penalty, iterations)."""
        o = self.opt
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        mu = np.broadcast_to(np.asarray(mu, float), (len(cols),))
        q = q.copy()
        self._fk(q)
        r, err, pen = self._residual(targets, sides, collide)
        dqr = q[cols] - q_ref[cols]
        F = 0.5 * (r @ r + dqr @ (mu * dqr))
        lam, nu, J = None, 2.0, None
        eye = np.eye(len(cols))
        it = 0
        while it < max_iters:
            if self._converged(err, o.tol_pos, o.tol_rot) and self._clear(pen):
                break
            if J is None:   # after an accepted step (data holds q)
                J = self._jacobian(sides, cols)
                A = J.T @ J
                g = J.T @ r - mu * dqr
                if lam is None:
                    lam = 1e-3 * max(float(np.max(np.diag(A))), 1e-9)
                if np.max(np.abs(g)) < 1e-12:
                    break
            it += 1
            H = A + lam * eye + np.diag(mu)
            dq = self._box_solve(H, g, lo[cols] - q[cols], hi[cols] - q[cols])
            big = np.max(np.abs(dq))
            if big > o.max_step:
                dq *= o.max_step / big
            if np.max(np.abs(dq)) < 1e-12:
                break
            qn = q.copy()
            qn[cols] = np.clip(q[cols] + dq, lo[cols], hi[cols])
            self._fk(qn)
            rn, errn, penn = self._residual(targets, sides, collide)
            dqrn = qn[cols] - q_ref[cols]
            Fn = 0.5 * (rn @ rn + dqrn @ (mu * dqrn))
            pred = g @ dq - 0.5 * (dq @ A @ dq + dq @ (mu * dq))
            rho = (F - Fn) / pred if pred > 0 else -1.0
            if rho > 0:
                small = F - Fn <= 1e-14 + 1e-10 * F
                q, r, err, pen, F, dqr = qn, rn, errn, penn, Fn, dqrn
                lam *= max(1.0 / 3.0, 1.0 - (2.0 * rho - 1.0) ** 3)
                nu = 2.0
                J = None
                if small:
                    break
            else:
                lam *= nu
                nu *= 2.0
                if lam > 1e12:
                    break
        self._fk(q)   # leave data at the returned pose
        return q, err, pen, it

    def _cost(self, err, pen=None):
        """Weighted squared palm errors plus the collision penalty (``pen``), summed over sides."""
        o = self.opt
        return sum((o.pos_weight * e[0]) ** 2 + (o.rot_weight * e[1]) ** 2 + (pen or {}).get(s, 0.0)
                   for s, e in err.items())

    def _jump_start(self, q, targets, sides):
        """Where a target is far from the warm start's palm pose (> jump_pos or > jump_rot: a
        jump, e.g. the first frame or a re-detected hand), start that arm from the seed-table pose
        nearest to the target instead, if that one is nearer."""
        o = self.opt
        self._fk(q)
        _, err, _ = self._residual(targets, sides, collide=False)
        q = q.copy()
        for s in sides:
            if err[s][0] <= o.jump_pos and err[s][1] <= o.jump_rot:
                continue
            seed, dist = self._seeds(s, targets[s], 1, with_dist=True)
            if dist[0] < self._cost({s: err[s]}):
                q[self.side_cols[s]] = seed[0]
        return q

    def _embed(self, pos, rot) -> np.ndarray:
        """(N, 12) points whose squared distances are w_p^2 |dp|^2 + w_r^2 |dR|_F^2 / 2, the chordal
        form of the seed distance (w_r^2 (2 - 2 cos angle), ~ (w_r angle)^2 for small angles)."""
        o = self.opt
        pos = np.asarray(pos, dtype=float).reshape(-1, 3)
        rot = np.asarray(rot, dtype=float).reshape(-1, 9)
        return np.hstack([o.pos_weight * pos, (o.rot_weight / np.sqrt(2.0)) * rot])

    def _nearest_seeds(self, side, target, k) -> np.ndarray:
        """k seed-table arm poses (k, 7) nearest to the target, by a KD-tree (:meth:`_embed`)."""
        if side not in self._trees:
            from scipy.spatial import cKDTree
            self._seeds(side, target, 1)                    # samples the table once
            _, pos, rot = self._table[side]
            self._trees[side] = cKDTree(self._embed(pos, rot))
        _, idx = self._trees[side].query(self._embed(target[:3, 3], target[:3, :3])[0], k=k)
        return self._table[side][0][np.atleast_1d(idx)]

    def closest_pose(self, side: str, target, n_seeds: int = 2, max_iters: int | None = None):
        """A reach test for one arm and one target (4x4) that does not depend on any previous frame:
        LM without regularisation from the ``n_seeds`` seed-table poses nearest to the target,
        stopping at the first that converges (``tol_pos`` / ``tol_rot``). The LM first ignores
        collisions; a result that reaches the target inside the robot or the table is then
        re-solved with the collision rows, so that a target the arm reaches only through its own
        body (or the table) counts as missed. Returns (the 7 arm joints, (position error m,
        orientation error rad)) of the best (weighted errors plus collision penalty)."""
        o = self.opt
        c = self.side_cols[side]
        target = np.asarray(target, dtype=float)
        iters = max_iters or o.max_iters
        key = (side, target.tobytes(), int(n_seeds), iters)
        if key in self._reach_memo:           # held hands repeat their target frame after frame
            q, e = self._reach_memo[key]
            return q.copy(), e
        best_q, best_e, best_c = None, None, np.inf
        for seed in self._nearest_seeds(side, target, max(int(n_seeds), 1)):
            q = self.nominal.copy()
            q[c] = seed
            qk, ek, _, _ = self._lm(q, {side: target}, [side], c, q, 0.0, iters, collide=False)
            pk = {side: 0.0}
            if (self.collisions is not None and ek[side][0] <= o.tol_pos and ek[side][1] <= o.tol_rot
                    and self._collides(qk, side)):
                qk, ek, pk, _ = self._lm(qk, {side: target}, [side], c, qk, 0.0, iters)
            cost = self._cost(ek, pk)
            if cost < best_c:
                best_q, best_e, best_c = qk[c].copy(), ek[side], cost
            if best_e[0] <= o.tol_pos and best_e[1] <= o.tol_rot:
                break
        if len(self._reach_memo) > 100000:
            self._reach_memo.clear()
        self._reach_memo[key] = (best_q.copy(), best_e)
        return best_q, best_e

    def branch(self, side: str, target, q, near=None):
        """Solutions of ``side``'s arm for one target from the ``restarts`` seeds (the seed-table
        poses nearest to the target, ``q`` itself, the nominal pose, random in-range poses): of
        those that reach it (``reach_tol_*``) clear of the robot and the table, the one nearest to
        ``near`` (arm joints (7,), default the nominal pose) in joint space. Returns (q (n,) with
        that arm, True), or (the lowest-cost solution, False) when none does. The start of a
        trajectory (the most relaxed arm: near the nominal pose), and the branch a stuck arm moves
        to (near its joints: the shortest switch)."""
        o = self.opt
        c = self.side_cols[side]
        near = self.nominal[c] if near is None else np.asarray(near, float)
        n_nn = max((o.restarts + 1) // 2, 1)
        seeds = list(self._seeds(side, target, n_nn)) + [q[c], self.nominal[c]]
        seeds += list(self.rng.uniform(self.lo[c], self.hi[c], size=(max(o.restarts - len(seeds), 0), len(c))))
        best, best_key = None, None
        for seed in seeds:
            qs = q.copy()
            qs[c] = seed
            qk, ek, pk, _ = self._lm(qs, {side: target}, [side], c, qs, 0.0, o.max_iters)
            e = ek[side]
            ok = e[0] <= o.reach_tol_pos and e[1] <= o.reach_tol_rot and not self._collides(qk, side)
            key = (0, float(np.linalg.norm(qk[c] - near))) if ok else (1, self._cost(ek, pk))
            if best_key is None or key < best_key:
                best, best_key = qk, key
        return best, best_key[0] == 0

    def _follow(self, side: str, target, q, goal):
        """The branch ``goal`` (7,) of a switching arm moved along with the target (LM from it,
        collision rows, no speed cap): the new goal, or None when it no longer reaches the target
        clear of the robot and the table."""
        o = self.opt
        c = self.side_cols[side]
        qs = q.copy()
        qs[c] = goal
        qk, ek, _, _ = self._lm(qs, {side: target}, [side], c, qs, 0.0, o.max_iters)
        e = ek[side]
        if e[0] <= o.reach_tol_pos and e[1] <= o.reach_tol_rot and not self._collides(qk, side):
            return qk[c].copy()
        return None

    def speed_box(self, q_prev, sides):
        """(lo, hi) joint bounds of a frame that follows ``q_prev``: the joints of ``sides`` (and
        ``extra_joints``) within ``max_dq`` of it, inside the joint limits; the others at the limits."""
        lo, hi = self.lo.copy(), self.hi.copy()
        if sides and np.isfinite(self.max_dq):
            c = np.concatenate([self.side_cols[s] for s in sides] + [self.extra_cols])
            lo[c] = np.maximum(self.lo[c], q_prev[c] - self.max_dq)
            hi[c] = np.minimum(self.hi[c], q_prev[c] + self.max_dq)
        return lo, hi

    def solve_frame(self, targets: dict, q_init, q_prev=None, limited=(), goals=None):
        """One frame. targets: {side: 4x4} for the arms to move; ``limited``: the sides that follow
        ``q_prev`` at most ``max_dq`` per joint (a consecutive frame, :meth:`solve_frames`; no
        effect without ``frame_rate``); ``goals``: {side: (7,) arm joints} of limited arms moving
        to another branch (pulled there with ``switch_weight`` instead of towards ``q_prev``).
        Returns (q, err, iterations)."""
        o = self.opt
        sides = [s for s in SIDES if s in targets]
        q_prev = q_init if q_prev is None else q_prev
        cols = np.concatenate([self.side_cols[s] for s in sides] + [self.extra_cols])
        q_ref, mu = q_prev, np.full(len(cols), o.smooth_weight)
        for s, g in (goals or {}).items():
            if s in sides and s in limited:
                q_ref = q_ref.copy()
                q_ref[self.side_cols[s]] = g
                mu[np.isin(cols, self.side_cols[s])] = o.switch_weight
        limited = [s for s in sides if s in limited] if np.isfinite(self.max_dq) else []
        lo, hi = self.speed_box(q_prev, limited)
        q_init = np.clip(q_init, lo, hi)
        free = [s for s in sides if s not in limited]
        if free:      # a far target: start from the seed table (not for speed-limited arms)
            q_init = self._jump_start(q_init, targets, free)
        q, err, pen, iters = self._lm(q_init, targets, sides, cols, q_ref, mu, o.max_iters, lo, hi)
        if (o.smooth_weight > 0 and not goals and not self._converged(err, o.tol_pos, o.tol_rot)
                and self._converged(err, o.reach_tol_pos, o.reach_tol_rot)):
            # close but not within tolerance: the regularisation's bias; polish without it
            q2, err2, pen2, it2 = self._lm(q, targets, sides, cols, q_prev, 0.0, o.max_iters, lo, hi)
            iters += it2
            if self._cost(err2, pen2) <= self._cost(err, pen):
                q, err, pen = q2, err2, pen2
        for s in free:
            e = err[s]
            if ((e[0] <= o.tol_pos and e[1] <= o.tol_rot and not self._collides(q, s)) or o.restarts <= 0
                    or np.linalg.norm(targets[s][:3, 3] - self.shoulder[s]) > self.reach[s]):
                continue        # reached out of collision, or beyond reach (the closest pose found stands)
            c = self.side_cols[s]
            best_q, best_e, best_p = q, e, pen[s]
            n_nn = (o.restarts + 1) // 2
            seeds = list(self._seeds(s, targets[s], n_nn)) + [self.nominal[c]]
            seeds += list(self.rng.uniform(self.lo[c], self.hi[c], size=(max(o.restarts - len(seeds), 0), len(c))))
            for seed in seeds[:o.restarts]:
                qs = best_q.copy()
                qs[c] = seed
                qk, ek, pk, itk = self._lm(qs, {s: targets[s]}, [s], c, qs, 0.0, o.max_iters)
                iters += itk
                if self._cost({s: ek[s]}, pk) < self._cost({s: best_e}, {s: best_p}):
                    best_q, best_e, best_p = qk, ek[s], pk[s]
                    if best_e[0] <= o.tol_pos and best_e[1] <= o.tol_rot and not self._collides(best_q, s):
                        break
            q, err[s] = best_q, best_e
        self._fk(q)
        return q, err, iters

    # --- a trajectory -------------------------------------------------------------------------
    def prepare(self, targets_left=None, targets_right=None, q0=None):
        """Checked targets (T, 4, 4) or None per side, T, and the initial joints (n,).

        q0: initial joints (n,) in ``joint_names`` order, or a full qpos (nq,) (its other joints
        then replace ``qpos_hold``); default: the nominal pose (``qpos_hold``'s arm joints).
        """
        tl = _check_targets(targets_left, 'targets_left')
        tr = _check_targets(targets_right, 'targets_right')
        if tl is None and tr is None:
            raise ValueError('no targets: give targets_left and/or targets_right')
        lens = {len(t) for t in (tl, tr) if t is not None}
        if len(lens) != 1:
            raise ValueError(f'targets_left and targets_right differ in length: {sorted(lens)}')
        n = len(self.joint_names)
        if q0 is None:
            q = self.nominal.copy()
        else:
            q0 = np.asarray(q0, dtype=float)
            if q0.shape == (self.model.nq,):
                self.qpos_hold = q0.copy()
                q0 = q0[self.qadr]
            if q0.shape != (n,):
                raise ValueError(f'q0 must have shape ({n},) or ({self.model.nq},), got {q0.shape}')
            q = q0.copy()
        if np.any(q < self.lo - 1e-9) or np.any(q > self.hi + 1e-9):
            raise ValueError('q0 is outside the joint limits')
        return tl, tr, lens.pop(), np.clip(q, self.lo, self.hi)

    @staticmethod
    def frame_targets(tl, tr, t) -> dict:
        """{side: 4x4} of frame t, leaving out arms without a (finite) target."""
        return {s: tt[t] for s, tt in zip(SIDES, (tl, tr)) if tt is not None and np.isfinite(tt[t]).all()}

    def solve_frames(self, tl, tr, q, frames=None, backend=None, hold=None):
        """The frame loop of a trajectory (checked targets ``tl``, ``tr`` and initial joints ``q``
        from :meth:`prepare`). Per frame and arm with a target: solved warm-started from the
        previous frame; with ``frame_rate``, an arm's first targeted frame starts from
        :meth:`branch`, every targeted frame is speed-limited (:meth:`solve_frame`) and a stuck arm
        moves to another branch at that speed (module doc). An arm
        without a target holds its joints; the frames before its first target take the first
        target's solution (the trajectory starts where the hand first appears instead of jumping
        there). ``frames``: an iterable over range(T) (e.g. a progress bar); ``backend``: another
        solver's ``solve_frame(targets, q) -> q`` (e.g. Genesis; no speed cap); ``hold``: (T, nq)
        per-frame values of the joints not solved (e.g. the reference's fingers, which the
        collision rows see), default ``qpos_hold``. Returns (q (T, n), iterations (T,), seconds
        per frame (T,), speed_limited (T, 2) bool: an arm with a joint at the speed cap)."""
        T = len(tl) if tl is not None else len(tr)
        res_q = np.empty((T, len(self.joint_names)))
        iters = np.zeros(T, int)
        secs = np.zeros(T)
        at_cap = np.zeros((T, 2), bool)
        started: set = set()
        hold = self._check_hold(hold, T)
        base = self.qpos_hold.copy()
        o = self.opt
        capped = np.isfinite(self.max_dq)
        goals, retry = {}, {}          # switching arms: the branch they move to; stuck: next search
        for t in (range(T) if frames is None else frames):
            t0 = time.perf_counter()
            self.qpos_hold = base if hold is None else hold[t]
            targets = self.frame_targets(tl, tr, t)
            if targets:
                q_prev = q
                if backend is None:
                    limited = tuple(s for s in targets if s in started)
                    if capped:      # an arm's first target: choose its branch, keep it
                        for s in targets:
                            if s not in started:
                                q, _ = self.branch(s, targets[s], q)
                        q_prev = q
                        limited = tuple(targets)
                        for s in [s for s in goals if s in targets]:
                            goals[s] = self._follow(s, targets[s], q, goals[s])
                            if goals[s] is None:
                                del goals[s]
                    q, err, iters[t] = self.solve_frame(targets, q, q, limited=limited,
                                                        goals={s: g for s, g in goals.items() if s in targets})
                    for k, s in enumerate(SIDES):
                        if s not in limited:
                            continue
                        c = self.side_cols[s]
                        at_cap[t, k] = bool(np.any(np.abs(q[c] - q_prev[c]) >= self.max_dq * (1 - 1e-9)))
                        if not capped:
                            continue
                        reached = err[s][0] <= o.reach_tol_pos and err[s][1] <= o.reach_tol_rot
                        if s in goals:          # arrived, or the own branch reaches again
                            if reached or np.abs(q[c] - goals[s]).max() <= self.max_dq:
                                del goals[s]
                        elif (not reached and not at_cap[t, k] and t >= retry.get(s, 0)
                              and np.linalg.norm(targets[s][:3, 3] - self.shoulder[s]) <= self.reach[s]):
                            # stuck on this branch (not lagging): move to the nearest one that reaches
                            g, ok = self.branch(s, targets[s], q, near=q[c])
                            if ok:
                                goals[s] = g[c].copy()
                            else:
                                retry[s] = t + o.switch_retry
                else:
                    q = np.clip(backend.solve_frame(targets, q), self.lo, self.hi)
                for s in targets:
                    if s not in started and t > 0:
                        res_q[:t, self.side_cols[s]] = q[self.side_cols[s]]
                started |= set(targets)
            res_q[t] = q
            secs[t] = time.perf_counter() - t0
        self.qpos_hold = base
        return res_q, iters, secs, at_cap

    def _check_hold(self, hold, T):
        if hold is None:
            return None
        hold = np.asarray(hold, dtype=float)
        if hold.shape != (T, self.model.nq) or not np.isfinite(hold).all():
            raise ValueError(f'hold must be finite with shape ({T}, {self.model.nq}), got {hold.shape}')
        return hold

    def solve_trajectory(self, targets_left=None, targets_right=None, q0=None) -> IKResult:
        """Solve palm targets (T, 4, 4) per side (``None``: that arm held) over a trajectory;
        q0 as in :meth:`prepare`."""
        tl, tr, T, q = self.prepare(targets_left, targets_right, q0)
        t0 = time.perf_counter()
        res_q, iters, _, at_cap = self.solve_frames(tl, tr, q)
        return self.evaluate(res_q, tl, tr, iters, time.perf_counter() - t0, speed_limited=at_cap)

    def _collides(self, q, side) -> bool:
        """The arm of ``side`` is deeper than COLLISION_DEPTH in the robot or the table at q."""
        return bool(self.clearance(q)[SIDES.index(side)] < -COLLISION_DEPTH)

    def clearance(self, q) -> np.ndarray:
        """(2,) [left, right] the smallest signed distance (m) of each arm to the rest of the robot
        and the table (if set) at joints q (n,), less the contact depth tolerated between a hand
        and the table (``hand_table_margin`` < 0): < 0 is a collision. Reported up to
        ``collision_margin`` (that value: at least that far); NaN without collision avoidance."""
        out = np.full(2, np.nan)
        if self.collisions is None:
            return out
        self._fk(q)
        prox = self.collisions.proximity(self.data, self.opt.collision_margin)
        c = self.collisions
        slack = prox.dist - np.minimum(self.margins[prox.pair], 0.0)
        for k in range(2):
            sel = (c.side1[prox.pair] == k) | (c.side2[prox.pair] == k)
            out[k] = min(float(slack[sel].min()), self.opt.collision_margin) if sel.any() else self.opt.collision_margin
        return out

    def evaluate(self, q, tl, tr, iterations=None, time_s=float('nan'), speed_limited=None, hold=None) -> IKResult:
        """Errors, flags and messages of joint trajectories q (T, n) against the targets, by this
        model's forward kinematics (the same measure for every backend), and each arm's clearance
        to the rest of the robot and the table. ``speed_limited`` (T, 2): frames at the joint speed
        cap (named as the cause of an unreachable frame); ``hold`` as in :meth:`solve_frames`."""
        o = self.opt
        T = len(q)
        pos_err = np.full((T, 2), np.nan)
        rot_err = np.full((T, 2), np.nan)
        conv = np.ones((T, 2), bool)
        reach = np.ones((T, 2), bool)
        has = np.zeros((T, 2), bool)
        clear = np.full((T, 2), np.nan)
        lag = np.zeros((T, 2), bool) if speed_limited is None else np.asarray(speed_limited, bool)
        msgs = []
        hold = self._check_hold(hold, T)
        base = self.qpos_hold.copy()
        for t in range(T):
            self.qpos_hold = base if hold is None else hold[t]
            targets = self.frame_targets(tl, tr, t)
            clear[t] = self.clearance(q[t])
            self._fk(q[t])
            _, err, _ = self._residual(targets, list(targets), collide=False)
            lines = []
            for k, s in enumerate(SIDES):
                if s not in targets:
                    if (tl, tr)[k] is not None:
                        lines.append(f'{s}: no target (NaN): arm held')
                    continue
                has[t, k] = True
                pe, re = err[s]
                pos_err[t, k], rot_err[t, k] = pe, re
                conv[t, k] = pe <= o.tol_pos and re <= o.tol_rot
                reach[t, k] = pe <= o.reach_tol_pos and re <= o.reach_tol_rot
                if not reach[t, k]:
                    dist = float(np.linalg.norm(targets[s][:3, 3] - self.shoulder[s]))
                    if dist > self.reach[s]:
                        why = f"target {dist:.3f} m from the shoulder, beyond the arm's reach ({self.reach[s]:.3f} m)"
                    elif lag[t, k]:
                        why = f'the target moves faster than the joint speed cap ({o.max_joint_speed:g} rad/s)'
                    else:
                        why = f'not reached within {1e3 * o.reach_tol_pos:.1f} mm / {o.reach_tol_rot:.3f} rad'
                    off = f'{1e3 * pe:.1f} mm' if pe < 1.0 else f'{pe:.3f} m'
                    lines.append(f'{s}: unreachable: {why}; closest pose found is {off} / {re:.3f} rad off')
            for k, s in enumerate(SIDES):
                if clear[t, k] < -COLLISION_DEPTH:
                    lines.append(f'{s}: collision: the arm is {-1e3 * clear[t, k]:.1f} mm into the robot or the table')
            msgs.append('; '.join(f'frame {t} {ln}' for ln in lines))
        self.qpos_hold = base
        return IKResult(q=np.asarray(q, dtype=float), joint_names=list(self.joint_names), pos_err=pos_err,
                        rot_err=rot_err, converged=conv, reachable=reach, has_target=has,
                        iterations=np.zeros(T, int) if iterations is None else np.asarray(iterations),
                        messages=msgs, time_s=time_s, options=o, speed_limited=lag,
                        clearance=None if self.collisions is None else clear)


def solve_trajectory(model, targets_left=None, targets_right=None, q0=None,
                     options: IKOptions = IKOptions(), qpos_hold=None, frame_rate: float | None = None,
                     avoid_collisions: bool = False) -> IKResult:
    """Palm targets ``T_world_palm`` (T, 4, 4) per side -> G1 arm joints (T, 14). See the module doc;
    ``frame_rate`` (Hz): consecutive frames, joint speeds capped (``max_joint_speed``);
    ``avoid_collisions``: arms kept out of the robot's body (and a table, :class:`WristIK`)."""
    return WristIK(model, options, qpos_hold, frame_rate, avoid_collisions).solve_trajectory(
        targets_left, targets_right, q0)


def solve_from_human(model, human_left=None, human_right=None, q0=None,
                     options: IKOptions = IKOptions(), qpos_hold=None) -> IKResult:
    """Human wrist frames (Hand3D ``wrist_pose`` as 4x4, (T, 4, 4), world) -> arm joints: maps
    them to palm targets (``wrist_targets.palm_targets_from_human``) and solves."""
    tl = None if human_left is None else palm_targets_from_human(model, human_left, 'left')
    tr = None if human_right is None else palm_targets_from_human(model, human_right, 'right')
    return solve_trajectory(model, tl, tr, q0=q0, options=options, qpos_hold=qpos_hold)


def palm_poses(model, q, joint_names=None, qpos_hold=None) -> np.ndarray:
    """Forward kinematics: palm poses (T, 2, 4, 4) [left, right] of arm joints q (T, 14)."""
    ik = WristIK(model, IKOptions(), qpos_hold)
    if joint_names is not None and list(joint_names) != ik.joint_names:
        raise ValueError('palm_poses: joint_names must be the 14 arm joints, left then right')
    return ik.forward(q)
