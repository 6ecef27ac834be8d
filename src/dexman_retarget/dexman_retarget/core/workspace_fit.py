"""Workspace fit: one translation of the whole demonstration that the G1's arms can follow (beyond
the paper). ROS-free.

The paper's scene alignment (B.4 step 3, ``dexman_perception.core.scene_alignment``) puts the
human pelvis on the robot pelvis and then shifts along y, judged on the FIRST frame's entities
against a reach box. A policy cannot track what the arms cannot reach, and the lifts and pours
that follow the first frame are what leaves the palm targets out of reach. This step, applied to
the demonstration already in the robot world and before the wrist IK, chooses a translation
``delta`` (x, y and z) over the WHOLE demonstration:

- Objective: the number of frames where a hand with a target is out of reach, over both wrists,
  judged by the real arm: a reach test with the project's wrist IK (``WristIK.closest_pose``:
  Levenberg-Marquardt on the MuJoCo model, within the joint limits, from the ``search_seeds``
  poses of a table of ``search_seed_table`` sampled arm poses nearest to the target) on the palm
  targets shifted by ``delta``; the pipeline's search IK avoids collisions (``search_ik``), so a
  target reached only through the robot's own body or through the table (which moves with
  ``delta``) counts as out of reach. The test of a frame does not depend on other frames (no warm
  start), so any subset of frames can be judged. A target counts as reached within ``margin``
  times the IK's reach tolerances (``reach_tol_pos`` / ``reach_tol_rot``): the chosen
  translation keeps some room for the pipeline's trajectory IK. Among translations with equally
  many such frames, the summed excess of the errors over those tolerances (unitless:
  error / tolerance - 1) guides the search; the final choice among the evaluated translations
  with the fewest frames out of reach is the one nearest to the paper's translation (``delta`` =
  0), and ``delta`` = 0 stays when nothing does better.
- Frames: every frame is judged at ``delta`` = 0 ("before") and at each round's choice; the
  compass search judges ``search_frames`` evenly spaced frames plus (up to ``search_frames`` of)
  those out of reach at ``delta`` = 0; frames the round's choice leaves out of reach join them for
  another round (at most ``max_rounds``).
- Search: compass (pattern) search on a lattice of ``min_step``: poll +-step along x, y and z
  (inside the bounds), move to the best poll that scores better, halve the step when none does,
  from ``initial_step`` down to ``min_step``; a poll stops judging frames once it is known to be
  worse than the current point; at most ``max_evaluations`` frame-set judgements in all. A round
  stops as soon as every judged frame is reached with zero excess.
- Bounds (the robot's table, not a reach guess): ``|delta_i| <= max_shift[i]``; the table top
  (the plane's height under the objects' initial positions) stays within ``table_height_range``
  (a height the G1 can work at); every object position of every frame stays at
  ``y >= min_object_y`` (in front of the robot's torso: the table never moves into the robot).
  A bound the demonstration already violates is not enforced against ``delta`` = 0: the search
  may stay where it is, or move towards the bound, never further away from it.

``method``: ``whole_demo`` (this search, the default) or ``paper`` (``delta`` = 0: the paper's
translation as perception computed it). The pipeline applies ``delta`` to everything (hands,
wrists, keypoints, objects, table) and records :meth:`WorkspaceFit.summary` in the reference's
provenance; the measured figures are in docs/retargeting.md.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from dexman_common.config import ConfigBase

METHODS = ('paper', 'whole_demo')


@dataclasses.dataclass(frozen=True)
class WorkspaceFitConfig(ConfigBase):
    """Tunables of the workspace fit (module doc). Lengths in metres."""

    SECTION = 'workspace_fit'
    YAML_FILE = 'retarget.yaml'

    method: str = 'whole_demo'                                  # 'whole_demo' | 'paper'
    max_shift: tuple[float, float, float] = (0.15, 0.20, 0.35)  # |delta| per axis (x, y, z)
    table_height_range: tuple[float, float] = (0.75, 1.10)      # world z of the table top
    min_object_y: float = 0.15           # object positions stay in front of the torso (y >=)
    search_frames: int = 40              # frames judged per candidate (evenly spaced)
    initial_step: float = 0.08           # first compass step
    min_step: float = 0.01               # last compass step, and the lattice of candidates
    max_evaluations: int = 60            # frame-set judgements at most (delta = 0 included)
    max_rounds: int = 3                  # searches, each adding the frames the last one missed
    margin: float = 0.5                  # reached within margin x the IK reach tolerances
    search_seeds: int = 2                # reach test: LM from this many nearest seed-table poses
    search_seed_table: int = 20000       # arm poses sampled once per arm to take those seeds from
    search_max_iters: int = 30           # LM iterations per seed

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if any(not (s >= 0.0) for s in self.max_shift):
            raise ValueError(f'max_shift must be >= 0 on every axis, got {self.max_shift}')
        lo, hi = self.table_height_range
        if not lo <= hi:
            raise ValueError(f'table_height_range must be (low, high) with low <= high, '
                             f'got {self.table_height_range}')
        if not 0.0 < self.min_step <= self.initial_step:
            raise ValueError(f'need 0 < min_step <= initial_step, got {self.min_step}, {self.initial_step}')
        if self.search_frames < 2 or self.max_evaluations < 1 or self.max_rounds < 1:
            raise ValueError('search_frames must be >= 2, max_evaluations and max_rounds >= 1')
        if not 0.0 < self.margin <= 1.0:
            raise ValueError(f'margin must be in (0, 1], got {self.margin}')
        if self.search_seeds < 1 or self.search_seed_table < 1 or self.search_max_iters < 1:
            raise ValueError('search_seeds, search_seed_table and search_max_iters must be >= 1')


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """One candidate translation judged by the reach test on a set of frames."""
    delta: np.ndarray            # (3,) m
    unreachable: np.ndarray      # (F, 2) bool [left, right]: a target not reached (search tolerances)
    has_target: np.ndarray       # (F, 2) bool
    excess: float                # sum over unreached targets of (error / tolerance - 1), pos + rot
    complete: bool = True        # False: stopped early, known to be worse than the search's best

    @property
    def bad_frames(self) -> int:
        return int(np.count_nonzero(self.unreachable.any(axis=1)))

    @property
    def key(self) -> tuple[int, float]:
        return self.bad_frames, self.excess

    def fractions(self) -> dict:
        """Unreachable fractions: per wrist (of its targeted frames) and of the frames."""
        n_t = self.has_target.sum(axis=0)
        per = [float(u) / float(n) if n else 0.0 for u, n in zip(self.unreachable.sum(axis=0), n_t)]
        F = len(self.unreachable)
        return {'left': round(per[0], 4), 'right': round(per[1], 4),
                'frames': round(self.bad_frames / F, 4) if F else 0.0}


@dataclasses.dataclass
class WorkspaceFit:
    method: str
    delta: np.ndarray                       # (3,) m, applied to the whole demonstration
    lower: np.ndarray                       # (3,) bounds on delta
    upper: np.ndarray
    frames: np.ndarray                      # frame indices the compass search judged
    before: Evaluation | None               # delta = 0 on every frame (None: 'paper' or no target)
    after: Evaluation | None                # the chosen delta on every frame
    evaluations: int
    seconds: float
    table_height: float                     # table top before the shift, m
    notes: list = dataclasses.field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready record for the reference's provenance."""
        out = {'method': self.method, 'delta_m': [round(float(v), 4) for v in self.delta],
               'bounds_m': {'lower': [round(float(v), 4) for v in self.lower],
                            'upper': [round(float(v), 4) for v in self.upper]},
               'table_height_m': {'before': round(self.table_height, 4),
                                  'after': round(self.table_height + float(self.delta[2]), 4)},
               'search_frames': int(len(self.frames)), 'evaluations': int(self.evaluations),
               'seconds': round(self.seconds, 3), 'notes': list(self.notes)}
        if self.before is not None:
            out['search_ik_unreachable_before'] = self.before.fractions()
        if self.after is not None:
            out['search_ik_unreachable_after'] = self.after.fractions()
        return out

    def report_line(self) -> str:
        d = 1e3 * self.delta
        line = (f'workspace fit ({self.method}): shift ({d[0]:+.0f}, {d[1]:+.0f}, {d[2]:+.0f}) mm, table top '
                f'{self.table_height:.3f} -> {self.table_height + self.delta[2]:.3f} m')
        if self.before is not None and self.after is not None:
            line += (f'; frames with a wrist out of reach (search IK, {len(self.before.unreachable)} frames): '
                     f'{self.before.bad_frames} -> {self.after.bad_frames} ({self.evaluations} IK passes, '
                     f'{self.seconds:.1f} s)')
        if self.notes:
            line += '; ' + '; '.join(self.notes)
        return line


# ------------------------------------------------------------------------------------- helpers
def translate_poses(P: np.ndarray, delta) -> np.ndarray:
    """Poses (..., 4, 4) with ``delta`` added to their translation (NaN stays NaN)."""
    out = np.array(P, dtype=float, copy=True)
    out[..., :3, 3] += np.asarray(delta, float)
    return out


def translate_points(P: np.ndarray, delta) -> np.ndarray:
    """Points (..., 3) plus ``delta``."""
    return np.asarray(P, dtype=float) + np.asarray(delta, float)


def search_frames(n: int, k: int) -> np.ndarray:
    """Indices of ``min(n, k)`` evenly spaced frames of ``n`` (first and last included)."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(int))


def shift_bounds(table_height: float, object_y_min: float | None, config: WorkspaceFitConfig):
    """(lower (3,), upper (3,), notes): the box of admissible translations (module doc, Bounds).
    Always contains 0."""
    m = np.asarray(config.max_shift, float)
    lo, hi = -m.copy(), m.copy()
    notes = []
    z_lo, z_hi = config.table_height_range
    lo[2] = max(lo[2], min(0.0, z_lo - table_height))
    hi[2] = min(hi[2], max(0.0, z_hi - table_height))
    if not z_lo <= table_height <= z_hi:
        notes.append(f'the table top ({table_height:.3f} m) is outside table_height_range '
                     f'[{z_lo:.2f}, {z_hi:.2f}] m')
    if object_y_min is not None and np.isfinite(object_y_min):
        lo[1] = max(lo[1], min(0.0, config.min_object_y - object_y_min))
        if object_y_min < config.min_object_y:
            notes.append(f'an object comes to y = {object_y_min:.3f} m, closer to the robot than '
                         f'min_object_y = {config.min_object_y:.2f} m')
    return lo, hi, notes


def _snap(d: np.ndarray, lo: np.ndarray, hi: np.ndarray, h: float) -> np.ndarray:
    """``d`` clipped into [lo, hi] and put on the lattice h Z^3, staying inside (0 is in the box
    and on the lattice, so a lattice point between 0 and each bound exists)."""
    k = np.round(np.clip(d, lo, hi) / h)
    k = np.where(k * h > hi + 1e-12, k - 1, k)
    k = np.where(k * h < lo - 1e-12, k + 1, k)
    return k * h


def search_ik(model, ik_options, config: WorkspaceFitConfig, avoid_collisions: bool = False):
    """The ``wrist_ik.WristIK`` of the search: the pipeline's IK options with the search
    tolerances (``margin`` x ``reach_tol_*``), ``search_max_iters`` and ``search_seed_table``;
    ``avoid_collisions``: a target reached only through the robot's body or the table (a model
    from ``ik_scene.robot_with_table``, its table set with ``set_table``; it moves with each
    candidate translation) counts as missed."""
    from .wrist_ik import WristIK
    return WristIK(model, dataclasses.replace(
        ik_options, tol_pos=config.margin * ik_options.reach_tol_pos,
        tol_rot=config.margin * ik_options.reach_tol_rot, max_iters=config.search_max_iters,
        seed_table=config.search_seed_table), avoid_collisions=avoid_collisions)


def evaluate(ik, targets: np.ndarray, delta, n_seeds: int = 2, stop_above: int | None = None,
             first=None) -> Evaluation:
    """Judge ``targets`` (2, F, 4, 4) [left, right] shifted by ``delta``: per frame and arm with a
    target, ``ik.closest_pose`` (a reach test independent of the other frames); a target is
    reached within ``ik.opt.tol_pos`` / ``tol_rot``.

    stop_above: stop as soon as more than this many frames are out of reach (the result is then
    ``complete=False``, its excess infinite: only known to be worse); ``first``: (F,) bool, frames
    to judge first (those out of reach at the current best, so that a worse candidate stops early).
    """
    delta = np.asarray(delta, float)
    tg = translate_poses(targets, delta)
    if getattr(ik, 'table_box', None) is not None:       # the table moves with the demonstration
        ik.set_table(ik.table_box, delta)
    has = np.isfinite(tg).all(axis=(2, 3)).T                   # (F, 2)
    bad = np.zeros_like(has)
    excess = 0.0
    tp, tr = ik.opt.tol_pos, ik.opt.tol_rot
    frames = np.arange(has.shape[0])
    if first is not None:
        frames = np.concatenate([frames[first], frames[~first]])
    n_bad = 0
    for f in frames:
        for k in np.flatnonzero(has[f]):
            _, (pe, re) = ik.closest_pose(('left', 'right')[k], tg[k, f], n_seeds)
            if pe > tp or re > tr:
                bad[f, k] = True
                excess += max(pe / tp - 1.0, 0.0) + max(re / tr - 1.0, 0.0)
        n_bad += bool(bad[f].any())
        if stop_above is not None and n_bad > stop_above:
            return Evaluation(delta=delta.copy(), unreachable=bad, has_target=has, excess=float('inf'),
                              complete=False)
    return Evaluation(delta=delta.copy(), unreachable=bad, has_target=has, excess=excess)


# ------------------------------------------------------------------------------------- the fit
def fit(ik, targets: np.ndarray, table_height: float, object_positions: np.ndarray | None,
        config: WorkspaceFitConfig = WorkspaceFitConfig()) -> WorkspaceFit:
    """Choose the translation of the whole demonstration (module doc).

    ik: the search's ``wrist_ik.WristIK`` (:func:`search_ik`: a target is reached within its
        ``tol_pos`` / ``tol_rot``).
    targets: (2, T, 4, 4) palm targets ``T_world_palm`` [left, right], NaN where the hand has none.
    table_height: world z of the table top under the objects (before the shift).
    object_positions: (..., 3) object positions over the demonstration (NaN ignored) or None.
    """
    t0 = time.perf_counter()
    targets = np.asarray(targets, float)
    if targets.ndim != 4 or targets.shape[0] != 2 or targets.shape[2:] != (4, 4):
        raise ValueError(f'targets must have shape (2, T, 4, 4), got {targets.shape}')
    y_min = None
    if object_positions is not None:
        P = np.asarray(object_positions, float).reshape(-1, 3)
        P = P[np.isfinite(P).all(axis=1)]
        y_min = float(P[:, 1].min()) if len(P) else None
    lo, hi, notes = shift_bounds(float(table_height), y_min, config)
    frames = search_frames(targets.shape[1], config.search_frames)
    zero = np.zeros(3)
    if config.method == 'paper':
        return WorkspaceFit('paper', zero, lo, hi, frames, None, None, 0, time.perf_counter() - t0,
                            float(table_height), notes)
    if not np.isfinite(targets).all(axis=(2, 3)).any():
        notes.append('no hand target: nothing to fit')
        return WorkspaceFit(config.method, zero, lo, hi, frames, None, None, 0, time.perf_counter() - t0,
                            float(table_height), notes)
    before = evaluate(ik, targets, zero, config.search_seeds)   # every frame, delta = 0
    n_eval, best = 1, before
    if before.bad_frames:
        # the searched frames: an even subsample plus those out of reach at delta = 0; frames the
        # chosen translation misses on the whole demonstration join them for another round
        frames = np.union1d(frames, _spread(np.flatnonzero(before.unreachable.any(axis=1)), config.search_frames))
        start = zero
        for _ in range(config.max_rounds):
            chosen, n = _compass(ik, targets[:, frames], start, lo, hi, config,
                                 config.max_evaluations - n_eval)
            n_eval += n
            if np.allclose(chosen.delta, best.delta):
                break
            whole = evaluate(ik, targets, chosen.delta, config.search_seeds)
            n_eval += 1
            if _rank(whole) < _rank(best):
                best = whole
            missed = np.setdiff1d(np.flatnonzero(whole.unreachable.any(axis=1)), frames)
            if not len(missed) or n_eval >= config.max_evaluations:
                break
            frames = np.union1d(frames, _spread(missed, config.search_frames))
            start = chosen.delta
    if best.bad_frames:
        notes.append(f'{best.bad_frames} of {targets.shape[1]} frames stay out of reach for the search IK')
    return WorkspaceFit(config.method, best.delta.copy(), lo, hi, frames, before, best, n_eval,
                        time.perf_counter() - t0, float(table_height), notes)


def _rank(e: Evaluation) -> tuple[int, float]:
    """Fewer frames out of reach first, then nearer to the paper's translation."""
    return e.bad_frames, float(np.linalg.norm(e.delta))


def _spread(idx: np.ndarray, k: int) -> np.ndarray:
    """At most ``k`` evenly spaced entries of ``idx``."""
    return idx if len(idx) <= k else idx[search_frames(len(idx), k)]


_DIRECTIONS = [np.array(v, float) for v in ((0, 0, -1), (0, 0, 1), (0, -1, 0), (0, 1, 0), (-1, 0, 0), (1, 0, 0))]


def _compass(ik, targets, start, lo, hi, config: WorkspaceFitConfig, budget: int):
    """Compass search on ``targets`` (2, F, 4, 4) from ``start`` (module doc). Returns (the
    chosen Evaluation on these frames, IK passes used)."""
    h = config.min_step
    cache: dict[tuple, Evaluation] = {}

    def score(d, cur=None) -> Evaluation:
        k = tuple(int(v) for v in np.round(np.asarray(d) / h))
        if k not in cache:
            cache[k] = evaluate(ik, targets, np.array(k, float) * h, config.search_seeds,
                                None if cur is None else cur.bad_frames,
                                None if cur is None else cur.unreachable.any(axis=1))
        return cache[k]

    first = cur = score(start)
    step = config.initial_step
    while step >= h - 1e-12 and cur.key != (0, 0.0) and len(cache) < budget:
        polls = []
        for u in _DIRECTIONS:
            cand = _snap(cur.delta + step * u, lo, hi, h)
            if not np.allclose(cand, cur.delta) and len(cache) < budget:
                polls.append(score(cand, cur))
        better = [e for e in polls if e.key < cur.key]
        if better:
            cur = min(better, key=lambda e: e.key)
        else:
            step /= 2.0
    done = [e for e in cache.values() if e.complete]
    best_n = min(e.bad_frames for e in done)
    if first.bad_frames == best_n:
        return first, len(cache)
    tied = [e for e in done if e.bad_frames == best_n]
    return min(tied, key=lambda e: (float(np.linalg.norm(e.delta)), e.excess)), len(cache)
