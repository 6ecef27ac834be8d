"""Demonstration -> reference on the G1 + two Shadow hands (paper 3.3-3.4), ROS-free.

Stages (:class:`Retargeter.run`):

1. Resample to ``frame_rate`` (30 Hz) on the demonstration's own clock (``stamps_ns``, so dropped
   frames are handled): positions linearly, rotations by slerp. A hand is valid at an output time
   when both bracketing input frames are valid (a hand that is not tracked stays untracked); an
   object's pose is interpolated between its valid frames and held before the first / after the
   last one (``object_valid`` keeps where it was really tracked).
2. Wrist targets: the human Hand3D wrist frames mapped onto the Shadow palm frames
   (``wrist_targets.palm_targets_from_human``; the frame definition and the keypoint
   correspondence live in ``hand_keypoints``). Then the workspace fit (beyond the paper,
   ``workspace_fit``): one translation of the whole demonstration (hands, wrists, objects, table)
   chosen against the arms' reach over every frame; ``workspace_fit.method: paper`` keeps the
   scene alignment's translation.
3. Fingers: the shipped finger network (``finger_mlp.FingerRetargeter``, one right-hand network,
   the left hand mirrored) on the fingertips normalised by the hand length (one robust value per
   hand: the median over its valid frames); frames without a valid hand hold the nearest valid
   prediction (an open hand when the hand never appears). Before the IK, whose collision rows
   see the hands with these fingers.
4. Bimanual wrist IK: ``wrist_ik.WristIK`` (default, damped least squares on MuJoCo) or, with
   ``ik_backend='genesis'``, ``wrist_ik_genesis.GenesisWristIK``; both judged by the same MuJoCo
   forward kinematics (errors, converged / reachable flags, per-frame messages, clearance). The
   MuJoCo IK runs on its own model, the robot plus the table the RL scene will build
   (``ik_scene``), with ``avoid_collisions`` and the frame rate: arms kept out of the body and the
   table, joint speeds capped, one branch per arm (``wrist_ik`` module doc); the workspace fit's
   reach test keeps them out too. A frame without a target for an arm holds that arm.
5. Contact priors (``contact_priors.compute_contact_priors``): human keypoints against the object
   meshes in the demonstration's object poses (paper thresholds 3 cm / 5 cm).
6. Stable placement of every object's initial pose on the table
   (``stable_placement.find_stable_placement``, table top from the demonstration's table plane),
   and the object trajectories re-based on the placed pose (``reference`` module doc).

Settings: ``options.RetargetOptions`` (config/retarget.yaml, one section per stage; the
reference's provenance records them all, ``config``).

The demonstration must be in the robot world (robot at the origin facing +y, table top
horizontal): perception's scene alignment does that; for a synthetic ground-truth case use
``dexman_synthetic.core.demo_alignment.demonstration_from_ground_truth`` (benchmark side).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import pathlib
import sys
import time
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from . import contact_priors as cp
from . import hand_keypoints as hk
from . import ik_scene
from dexman_common.artefacts import reference as refm
from dexman_common.geometry import rotation_angle_between
from dexman_common.report import format_index_ranges
from dexman_common.hashing import sha256_file
from dexman_description import robot_model as rm
from . import stable_placement as sp
from . import wrist_ik as wik
from . import wrist_targets as wt
from . import workspace_fit as wf

# the configuration lives in .options (re-exported: rp.RetargetOptions, rp.load_options, ...)
from .options import (FRAME_RATE, IK_BACKENDS, RetargetError, RetargetOptions,  # noqa: E402,F401
                      RetargetOptionsError, default_config_file, load_options)


# ------------------------------------------------------------------------------- resampling
@dataclasses.dataclass
class Resampled:
    stamps_ns: np.ndarray          # (T,)
    hand_keypoints: np.ndarray     # (2, T, 21, 3), NaN where not valid
    wrist_poses: np.ndarray        # (2, T, 4, 4), NaN where not valid
    hand_valid: np.ndarray         # (2, T)
    object_poses: np.ndarray       # (O, T, 4, 4), interpolated / held
    object_valid: np.ndarray       # (O, T)


def _bracket(t_src: np.ndarray, t_out: np.ndarray):
    """Indices i (into t_src) and weights a with t_out = (1-a) t_src[i] + a t_src[i+1]."""
    if len(t_src) == 1:
        return np.zeros(len(t_out), int), np.zeros(len(t_out))
    i = np.clip(np.searchsorted(t_src, t_out, side='right') - 1, 0, len(t_src) - 2)
    a = np.clip((t_out - t_src[i]) / (t_src[i + 1] - t_src[i]).astype(float), 0.0, 1.0)
    return i, a


def _interp_poses(P: np.ndarray, i: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Poses (N, 4, 4) (finite) interpolated at (i, a): lerp + slerp."""
    j = np.minimum(i + 1, len(P) - 1)
    Ra = Rotation.from_matrix(P[i, :3, :3])
    Rb = Rotation.from_matrix(P[j, :3, :3])
    rel = (Ra.inv() * Rb).as_rotvec()
    out = np.zeros((len(i), 4, 4))
    out[:, :3, :3] = (Ra * Rotation.from_rotvec(rel * a[:, None])).as_matrix()
    out[:, :3, 3] = (1 - a)[:, None] * P[i, :3, 3] + a[:, None] * P[j, :3, 3]
    out[:, 3, 3] = 1.0
    return out


def resample(demo, frame_rate: float = FRAME_RATE) -> Resampled:
    """The demonstration at ``frame_rate`` on its own clock (module doc, stage 1)."""
    stamps = np.asarray(demo.stamps_ns, np.int64)
    if len(stamps) < 1:
        raise RetargetError(f'{demo.demonstration_id}: no frames')
    if len(stamps) > 1 and np.any(np.diff(stamps) <= 0):
        raise RetargetError(f'{demo.demonstration_id}: stamps_ns is not strictly increasing')
    t_src = stamps - stamps[0]                          # int64 ns: exact bracketing
    n_out = int(np.floor(t_src[-1] * 1e-9 * frame_rate + 1e-6)) + 1
    t_out = np.round(np.arange(n_out) * (1e9 / frame_rate)).astype(np.int64)
    stamps_out = stamps[0] + t_out
    i, a = _bracket(t_src, t_out)
    j = np.minimum(i + 1, len(t_src) - 1)

    kp = np.asarray(demo.hand_keypoints, float)
    wp = np.asarray(demo.wrist_poses, float)
    hv = (np.asarray(demo.hand_valid, bool) & np.isfinite(kp).all(axis=(2, 3))
          & np.isfinite(wp).all(axis=(2, 3)))
    kp_out = np.full((2, n_out, 21, 3), np.nan)
    wp_out = np.full((2, n_out, 4, 4), np.nan)
    hv_out = np.zeros((2, n_out), bool)
    for h in range(2):
        ok = (hv[h, i] | (a >= 1.0)) & (hv[h, j] | (a <= 0.0))
        hv_out[h] = ok
        if not ok.any():
            continue
        kps = np.where(hv[h][:, None, None], kp[h], 0.0)
        wps = np.where(hv[h][:, None, None], wp[h], np.eye(4))
        kp_out[h, ok] = ((1 - a[ok])[:, None, None] * kps[i[ok]] + a[ok][:, None, None] * kps[j[ok]])
        wp_out[h, ok] = _interp_poses(wps, i[ok], a[ok])

    op = np.asarray(demo.object_poses, float)
    ov = np.asarray(demo.object_valid, bool) & np.isfinite(op).all(axis=(2, 3))
    O = op.shape[0]
    op_out = np.zeros((O, n_out, 4, 4))
    ov_out = np.zeros((O, n_out), bool)
    for o in range(O):
        if not ov[o].any():
            raise RetargetError(f'{demo.demonstration_id}: object {demo.objects[o].id} has no valid pose '
                                'in any frame: it cannot be placed or tracked')
        ov_out[o] = (ov[o, i] | (a >= 1.0)) & (ov[o, j] | (a <= 0.0))
        ts, ps = t_src[ov[o]], op[o, ov[o]]
        io, ao = _bracket(ts, t_out)
        op_out[o] = _interp_poses(ps, io, ao)
    return Resampled(stamps_out, kp_out, wp_out, hv_out, op_out, ov_out)


def _fill_nearest(values: np.ndarray, valid: np.ndarray, default: np.ndarray) -> np.ndarray:
    """(T, k) with invalid rows replaced by the nearest valid row (``default`` if none is)."""
    out = np.array(values, float)
    if not valid.any():
        out[:] = default
        return out
    idx = np.flatnonzero(valid)
    pos = np.clip(np.searchsorted(idx, np.arange(len(out))), 0, len(idx) - 1)
    prev = idx[np.maximum(pos - 1, 0)]
    nxt = idx[pos]
    t = np.arange(len(out))
    near = np.where(np.abs(t - prev) <= np.abs(nxt - t), prev, nxt)
    out[~valid] = out[near[~valid]]
    return out


def table_height_at(point, normal, xy) -> float:
    """z of the table plane (point, normal) at the horizontal position xy."""
    p = np.asarray(point, float)
    n = np.asarray(normal, float)
    n = n / np.linalg.norm(n)
    if abs(n[2]) < 0.9:
        raise RetargetError(f'the table normal {np.round(n, 3)} is far from vertical: the demonstration '
                            'is not in the robot world (run the scene alignment first)')
    return float(p[2] - (n[0] * (xy[0] - p[0]) + n[1] * (xy[1] - p[1])) / n[2])




def shift_resampled(rs: Resampled, delta) -> Resampled:
    """``rs`` with every position translated by ``delta`` (3,) m (hands, wrists, objects)."""
    if not np.any(delta):
        return rs
    return dataclasses.replace(rs, hand_keypoints=wf.translate_points(rs.hand_keypoints, delta),
                               wrist_poses=wf.translate_poses(rs.wrist_poses, delta),
                               object_poses=wf.translate_poses(rs.object_poses, delta))


def _unreachable_fractions(ik: wik.IKResult) -> dict:
    """Unreachable fractions of the final IK: per wrist (of its targeted frames) and of the frames."""
    un = ik.has_target & ~ik.reachable
    n = ik.has_target.sum(axis=0)
    out = {s: round(float(u) / float(k), 4) if k else 0.0 for s, u, k in zip(hk.SIDES, un.sum(axis=0), n)}
    out['frames'] = round(float(un.any(axis=1).sum()) / max(len(un), 1), 4)
    return out


# ------------------------------------------------------------------------------- pipeline
@dataclasses.dataclass
class RetargetResult:
    reference: refm.Reference
    meshes: dict[str, Any]                 # object id -> trimesh or mesh file path (for refm.save)
    ik: wik.IKResult
    contacts: cp.ContactPriors
    placements: list[sp.PlacementReport]
    resampled: Resampled
    timings: dict[str, float]
    ik_frame_s: np.ndarray                 # (T,) wall time of the IK per frame (both arms)


class Retargeter:
    """The robot model, the finger network and the IK solver, loaded once; :meth:`run` per
    demonstration. Not thread-safe (one run at a time)."""

    def __init__(self, robot_model_dir, options: RetargetOptions | None = None, config_file=None):
        """options: the settings (default: :func:`load_options` of ``config_file``, default
        config/retarget.yaml); config_file: recorded in the reference's provenance."""
        from .finger_mlp import CheckpointError, FingerRetargeter
        if options is None:
            config_file = config_file or default_config_file()
            options = load_options(config_file)
        self.config_file = pathlib.Path(config_file) if config_file is not None else None
        self.options = options
        self.options.validate()
        self.model_dir = pathlib.Path(robot_model_dir).expanduser().resolve()
        manifest = self.model_dir / rm.MANIFEST_NAME
        xml = self.model_dir / rm.XML_NAME
        if not manifest.is_file() or not xml.is_file():
            raise RetargetError(f'{self.model_dir} is not a robot-model build (needs {rm.XML_NAME} and '
                                f'{rm.MANIFEST_NAME}): python -m dexman_description.build_robot_cli --out DIR')
        try:
            self.manifest = json.loads(manifest.read_text())
            self.model = rm.load_model(self.model_dir)
        except Exception as e:  # noqa: BLE001 - a damaged build: say which and why
            raise RetargetError(f'cannot load the robot model in {self.model_dir}: {e}') from e
        self.manifest_sha256 = rm.manifest_sha256(self.model_dir)
        try:
            self.fingers = FingerRetargeter.load(self.model, self.options.finger_checkpoint)
        except CheckpointError as e:
            raise RetargetError(str(e)) from e
        self.joint_names = [self.model.joint(j).name for j in range(self.model.njnt)]
        if self.model.nq != self.model.njnt:
            raise RetargetError('the robot model has non-hinge joints (nq != njnt): not a G1 + Shadow build')
        self.qadr = {n: int(self.model.joint(n).qposadr[0]) for n in self.joint_names}
        # the IK's own model: the robot plus the RL scene's table (ik_scene), kept out of by the arms
        self.ik = wik.WristIK(ik_scene.robot_with_table(self.model_dir), self.options.ik,
                              frame_rate=self.options.frame_rate, avoid_collisions=True)
        self._genesis = None
        self._fit_ik = None                               # the workspace fit's IK (lazily)
        self.frame_time_s = np.zeros(0)
        if self.options.ik_backend == 'genesis':      # fail now, not in the middle of a run
            from .wrist_ik_genesis import genesis_available
            ok, why = genesis_available()
            if not ok:
                raise RetargetError(why)
        ck_path = pathlib.Path(self.options.finger_checkpoint) if self.options.finger_checkpoint else None
        from .finger_mlp import DEFAULT_CHECKPOINT
        ck_path = ck_path or DEFAULT_CHECKPOINT
        ck = self.fingers.checkpoint
        self.finger_provenance = {'file': ck_path.name, 'sha256': sha256_file(ck_path),
                                  'format': ck.get('format'), 'format_version': ck.get('format_version'),
                                  'created_utc': ck.get('created_utc'), 'hand_hash': ck.get('hand_hash')}

    # ---------------------------------------------------------------- stages
    def _solver(self):
        if self.options.ik_backend == 'genesis':
            if self._genesis is None:
                from .wrist_ik_genesis import BackendUnavailable, GenesisWristIK
                try:
                    self._genesis = GenesisWristIK(self.model_dir, self.options.genesis_ik)
                except BackendUnavailable as e:
                    raise RetargetError(str(e)) from e
            return self._genesis
        return self.ik

    def table_box(self, table_point, table_normal, rs: Resampled, meshes: dict | None):
        """(the table the RL scene will build, ``ik_scene.table_box``, from the footprint of the
        object meshes (id -> trimesh, in ``rs``'s object order) at their first poses; '') or
        (None, why) when the scene could not build one (e.g. an object inside the robot): the IK
        then ignores the table."""
        from dexman_sim import SceneInputError
        xy = [np.zeros((0, 2))]
        for k, m in enumerate((meshes or {}).values()):
            P = rs.object_poses[k, 0]
            xy.append((np.asarray(m.vertices, float) @ P[:3, :3].T + P[:3, 3])[:, :2])
        try:
            return ik_scene.table_box(table_point, table_normal, np.concatenate(xy), self.model_dir), ''
        except SceneInputError as e:
            return None, f'no table for the IK (the RL scene could not build one: {e})'

    def fit_workspace(self, targets, rs: Resampled, table_point, table_normal, meshes=None) -> wf.WorkspaceFit:
        """The workspace fit (``workspace_fit``) of palm targets (2, T, 4, 4): the table height
        under the objects' initial positions, the object positions of every frame; with the object
        meshes (id -> trimesh), the reach test keeps the arms out of the table as well."""
        cfg = self.options.workspace_fit
        if cfg.method != 'paper' and self._fit_ik is None:
            self._fit_ik = wf.search_ik(ik_scene.robot_with_table(self.model_dir), self.options.ik, cfg,
                                        avoid_collisions=True)
        if self._fit_ik is not None:
            self._fit_ik.set_table(None if meshes is None else self.table_box(table_point, table_normal, rs, meshes)[0])
        xy = rs.object_poses[:, 0, :2, 3] if len(rs.object_poses) else np.asarray(table_point, float)[None, :2]
        z = float(np.mean([table_height_at(table_point, table_normal, p) for p in xy]))
        return wf.fit(self._fit_ik, targets, z, rs.object_poses[:, :, :3, 3], cfg)

    def solve_ik(self, targets, progress: bool, desc: str = 'wrist IK', hold=None) -> wik.IKResult:
        """targets: (2, T, 4, 4) palm targets, NaN where none. Frame loop with a tqdm bar. hold:
        (T, nq) the other joints per frame (the fingers), default the model's qpos0."""
        from tqdm import tqdm
        tl = targets[0] if np.isfinite(targets[0]).all(axis=(1, 2)).any() else None
        tr = targets[1] if np.isfinite(targets[1]).all(axis=(1, 2)).any() else None
        T = targets.shape[1]
        ev = self.ik
        self.frame_time_s = np.zeros(T)
        if tl is None and tr is None:       # no hand anywhere: both arms held at the nominal pose
            q = np.repeat(ev.nominal[None], T, axis=0)
            return ev.evaluate(q, None, None, np.zeros(T, int), 0.0)
        solver = self._solver()
        tl, tr, T, q = ev.prepare(tl, tr, None)
        t0 = time.perf_counter()
        frames = tqdm(range(T), desc=desc, file=sys.stderr, disable=not progress, leave=False, unit='frame')
        res_q, iters, self.frame_time_s, at_cap = ev.solve_frames(tl, tr, q, frames,
                                                                  backend=None if solver is ev else solver, hold=hold)
        return ev.evaluate(res_q, tl, tr, iters, time.perf_counter() - t0, speed_limited=at_cap, hold=hold)

    def fingers_q(self, kp: np.ndarray, valid: np.ndarray, side: str) -> tuple[np.ndarray, float]:
        """(T, 22) hand joints (rm.hand_joints order) and the hand length used."""
        T = kp.shape[0]
        q_act = np.zeros((T, len(rm.HAND_ACTUATED_JOINTS)))
        scale = float('nan')
        if valid.any():
            scale = float(np.median(hk.hand_scale(kp[valid])))
            q_act[valid] = self.fingers.from_keypoints(kp[valid], side, scale=scale)
        q_act = _fill_nearest(q_act, valid, np.zeros(q_act.shape[1]))
        return self.fingers.full_q(q_act), scale

    # ---------------------------------------------------------------- the run
    def run(self, demo, meshes: dict[str, Any] | None = None, reference_id: str | None = None,
            progress: bool | None = None) -> RetargetResult:
        """Retarget one demonstration (``dexman_common.artefacts.demonstration.Demonstration`` in the
        robot world). meshes: object id -> trimesh (default: the demonstration's mesh files)."""
        import trimesh
        o = self.options
        progress = o.progress if progress is None else progress
        tm = {}
        t_all = time.perf_counter()
        try:
            demo.validate()
        except Exception as e:  # noqa: BLE001 - DemonstrationError or a shape error
            raise RetargetError(f'invalid demonstration: {e}') from e
        rid = reference_id or demo.demonstration_id
        # meshes
        mesh_src: dict[str, Any] = {}
        mesh_obj: dict[str, Any] = {}
        for ob in demo.objects:
            if meshes is not None and ob.id in meshes:
                m = meshes[ob.id]
                mesh_src[ob.id] = m
            else:
                try:
                    path = demo.mesh_path(ob.id)
                except Exception as e:  # noqa: BLE001
                    raise RetargetError(f'no mesh for object {ob.id}: {e}') from e
                if not path.is_file():
                    raise RetargetError(f'mesh of object {ob.id} is missing: {path}')
                mesh_src[ob.id] = path
                m = path
            if not isinstance(m, trimesh.Trimesh):
                try:
                    m = trimesh.load(m, force='mesh', process=False)
                except Exception as e:  # noqa: BLE001
                    raise RetargetError(f'cannot read the mesh of object {ob.id} ({m}): {e}') from e
            if len(m.vertices) == 0:
                raise RetargetError(f'the mesh of object {ob.id} is empty')
            mesh_obj[ob.id] = m

        # 1. resample
        t0 = time.perf_counter()
        rs = resample(demo, o.frame_rate)
        T = len(rs.stamps_ns)
        tm['resample_s'] = time.perf_counter() - t0

        # 2. wrist targets, and the workspace fit: one translation of everything (beyond the paper)
        t0 = time.perf_counter()
        targets = np.full((2, T, 4, 4), np.nan)
        for h, side in enumerate(hk.SIDES):
            v = rs.hand_valid[h]
            if v.any():
                targets[h, v] = wt.palm_targets_from_human(self.model, rs.wrist_poses[h, v], side)
        meshes_in_order = {ob.id: mesh_obj[ob.id] for ob in demo.objects}
        fit = self.fit_workspace(targets, rs, demo.table_point, demo.table_normal, meshes_in_order)
        rs = shift_resampled(rs, fit.delta)
        targets = wf.translate_poses(targets, fit.delta)
        table_point = wf.translate_points(demo.table_point, fit.delta)
        tm['workspace_fit_s'] = time.perf_counter() - t0

        # 3. fingers (first: the IK keeps the hands, fingers included, out of the body and table)
        t0 = time.perf_counter()
        q = np.repeat(np.asarray(self.model.qpos0, float)[None], T, axis=0)
        scales = {}
        for h, side in enumerate(hk.SIDES):
            qh, scales[side] = self.fingers_q(rs.hand_keypoints[h], rs.hand_valid[h], side)
            q[:, [self.qadr[n] for n in rm.hand_joints(side)]] = qh
        tm['fingers_s'] = time.perf_counter() - t0

        # 4. IK, against the table the RL scene will have
        t0 = time.perf_counter()
        table, table_note = self.table_box(table_point, demo.table_normal, rs, meshes_in_order)
        self.ik.set_table(table)
        ik = self.solve_ik(targets, progress, desc=f'wrist IK {rid}', hold=q)
        q[:, [self.qadr[n] for n in ik.joint_names]] = ik.q
        tm['ik_s'] = time.perf_counter() - t0
        lim = self.model.jnt_limited.astype(bool)
        lo, hi = self.model.jnt_range[:, 0], self.model.jnt_range[:, 1]
        adr = self.model.jnt_qposadr
        clipped = np.clip(q[:, adr], np.where(lim, lo, -np.inf), np.where(lim, hi, np.inf))
        n_clip = int(np.count_nonzero(np.abs(clipped - q[:, adr]) > 1e-9))
        q[:, adr] = clipped

        # 5. contact priors
        t0 = time.perf_counter()
        ids = [ob.id for ob in demo.objects]
        pri = cp.compute_contact_priors(rs.hand_keypoints, rs.hand_valid, [mesh_obj[i] for i in ids],
                                        rs.object_poses, tau_tip=o.contact_priors.tau_tip,
                                        tau_palm=o.contact_priors.tau_palm,
                                        densify_max_edge=o.contact_priors.densify_max_edge, object_ids=ids)
        hh, tt, kk, oo = np.nonzero(pri.in_contact)
        order = np.lexsort((oo, kk, hh, tt))
        hh, tt, kk, oo = hh[order], tt[order], kk[order], oo[order]
        tm['contacts_s'] = time.perf_counter() - t0

        # 6. stable placement + re-based trajectories
        t0 = time.perf_counter()
        placements, place_meta = [], []
        O = len(ids)
        est = np.zeros((O, 4, 4))
        placed = np.zeros((O, 4, 4))
        settled = np.zeros((O, 4, 4))
        obj_traj = np.zeros_like(rs.object_poses)
        for k, oid in enumerate(ids):
            T_est = rs.object_poses[k, 0]
            z = table_height_at(table_point, demo.table_normal, T_est[:2, 3])
            cfg = dataclasses.replace(o.placement, table_top_z=z)
            rep = sp.find_stable_placement(mesh_obj[oid], T_est, seed=o.placement_seed + k, config=cfg)
            placements.append(rep)
            est[k], placed[k], settled[k] = T_est, rep.chosen_pose, rep.chosen_settled_pose
            offset = np.linalg.inv(T_est) @ placed[k]
            obj_traj[k] = rs.object_poses[k] @ offset
            s = rep.summary()
            s.update(object_id=oid, table_top_z=z,
                     lift_m=float(placed[k][2, 3] - T_est[2, 3]),
                     rotation_rad=rotation_angle_between(T_est[:3, :3], placed[k][:3, :3]))
            place_meta.append(s)
        tm['placement_s'] = time.perf_counter() - t0

        # report
        unreach = ik.has_target & ~ik.reachable                       # (T, 2)
        lines = [f'reference {rid} from demonstration {demo.demonstration_id}: {T} frames at '
                 f'{o.frame_rate:g} Hz ({(T - 1) / o.frame_rate:.2f} s; source {demo.n_frames} frames at '
                 f'{demo.fps:g} fps), IK backend {o.ik_backend}']
        lines.append(fit.report_line())
        lines.append(ik.report)
        if table_note:
            lines.append(f'  {table_note}')
        for h, side in enumerate(hk.SIDES):
            lines.append(f'  {side}: hand tracked on {int(rs.hand_valid[h].sum())}/{T} frames'
                         + (f', hand length {1e3 * scales[side]:.1f} mm' if np.isfinite(scales[side]) else '')
                         + f'; unreachable frames: {format_index_ranges(np.flatnonzero(unreach[:, h]), "none")}')
        if n_clip:
            lines.append(f'  {n_clip} joint values clipped into the joint limits')
        for h, side in enumerate(hk.SIDES):
            fr = np.flatnonzero(pri.in_contact[h].any(axis=(1, 2)))
            lines.append(f'contacts {side}: {int(pri.in_contact[h].sum())} keypoint-object pairs on '
                         f'{len(fr)} frames ({format_index_ranges(fr, "none")})')
        for s, ob in zip(place_meta, demo.objects):
            if s['original_stable']:
                how = f'estimated pose stable (settles {s["original_settled_angle"]:.3f} rad)'
            elif s['found_stable']:
                how = (f'estimated pose unstable ({s["original_settled_angle"]:.2f} rad); sample '
                       f'{s["chosen_index"]} rotated {np.degrees(s["chosen_angle"]):.1f} deg is stable')
            else:
                how = 'NO stable configuration among the samples (estimated pose kept)'
            lines.append(f'placement {ob.id} ({ob.label}): {how}; moved {1e3 * s["lift_m"]:+.1f} mm '
                         f'vertically onto the table at z = {s["table_top_z"]:.3f} m')
        n_unreach = int(np.count_nonzero(unreach.any(axis=1)))
        lines.append(f'unreachable frames: {n_unreach}/{T}')
        tm['total_s'] = time.perf_counter() - t_all
        import mujoco
        import torch
        prov = {
            'demonstration_id': demo.demonstration_id,
            'demonstration_uri': str(demo.root) if demo.root is not None else '',
            'demonstration_source_uri': demo.source_uri,
            'demonstration_provenance': demo.provenance,
            'robot_model': {'dir': str(self.model_dir), 'manifest_sha256': self.manifest_sha256,
                            'options': self.manifest.get('options', {})},
            'finger_checkpoint': self.finger_provenance,
            'hand_length_m': scales,
            'ik_backend': o.ik_backend,
            'config': o.to_dict(),
            'config_file': str(self.config_file) if self.config_file is not None else None,
            'workspace_fit': {**fit.summary(), 'ik_unreachable_after': _unreachable_fractions(ik)},
            'created_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'versions': {'mujoco': mujoco.__version__, 'numpy': np.__version__, 'torch': str(torch.__version__)},
            'timings_s': {k: round(v, 4) for k, v in tm.items()},
        }
        ref = refm.Reference(
            reference_id=rid, demonstration_id=demo.demonstration_id, frame_rate=float(o.frame_rate),
            joint_names=list(self.joint_names), stamps_ns=rs.stamps_ns, joint_positions=q,
            joint_groups=self.manifest.get('joint_groups', {}),
            wrist_targets=targets, human_wrist_poses=rs.wrist_poses, hand_keypoints=rs.hand_keypoints,
            hand_valid=rs.hand_valid, ik_pos_err=ik.pos_err.T.copy(), ik_rot_err=ik.rot_err.T.copy(),
            ik_reachable=ik.reachable.T.copy(), ik_converged=ik.converged.T.copy(),
            ik_has_target=ik.has_target.T.copy(), ik_messages=list(ik.messages),
            contact_frame=tt.astype(np.int64), contact_hand=hh.astype(np.int64),
            contact_keypoint=np.asarray(pri.keypoints, np.int64)[kk] if len(kk) else np.zeros(0, np.int64),
            contact_object=oo.astype(np.int64), contact_vertex_index=pri.vertex_index[hh, tt, kk, oo],
            contact_vertex_object=pri.vertex_object[hh, tt, kk, oo].reshape(-1, 3),
            contact_distance=pri.distance[hh, tt, kk, oo],
            contact_keypoints=np.asarray(pri.keypoints, np.int64), contact_thresholds=pri.thresholds,
            objects=[refm.RefObject(ob.id, ob.label, f'meshes/{ob.id}.obj') for ob in demo.objects],
            object_poses=obj_traj, object_valid=rs.object_valid, object_estimated_initial=est,
            object_initial_poses=placed, object_settled_poses=settled,
            object_initial_stable=np.array([r.found_stable for r in placements], bool),
            object_original_stable=np.array([r.original_stable for r in placements], bool),
            table_point=np.asarray(table_point, float), table_normal=np.asarray(demo.table_normal, float),
            placement=place_meta, report='\n'.join(lines), provenance=prov)
        ref.validate()
        return RetargetResult(reference=ref, meshes={i: mesh_obj[i] for i in ids}, ik=ik, contacts=pri,
                              placements=placements, resampled=rs, timings=tm,
                              ik_frame_s=self.frame_time_s.copy())


def retarget(demo, robot_model_dir, out_root=None, *, meshes=None, options: RetargetOptions | None = None,
             reference_id: str | None = None) -> RetargetResult:
    """One-shot: :class:`Retargeter` + run (+ ``reference.save`` into ``out_root`` when given)."""
    res = Retargeter(robot_model_dir, options).run(demo, meshes, reference_id)
    if out_root is not None:
        refm.save(res.reference, out_root, res.meshes)
    return res


def dexman_root() -> pathlib.Path:
    """``$DEXMAN_ROOT`` (set by env.sh), else the checkout this file is in (or the cwd)."""
    import os
    env = os.environ.get('DEXMAN_ROOT')
    if env:
        return pathlib.Path(env).expanduser().resolve()
    for parent in pathlib.Path(__file__).resolve().parents:
        if (parent / 'env.sh').is_file() and (parent / 'src').is_dir():
            return parent
    return pathlib.Path.cwd()


def default_robot_model_dir() -> pathlib.Path:
    return dexman_root() / 'artifacts' / 'robot_model'


def default_reference_dir() -> pathlib.Path:
    return dexman_root() / 'artifacts' / 'references'


def default_demonstration_dir() -> pathlib.Path:
    return dexman_root() / 'artifacts' / 'demonstrations'


def ensure_robot_model(model_dir, config_file=None) -> tuple[pathlib.Path, bool]:
    """(dir, built): build the robot model into ``model_dir`` with ``robot_model.build`` when it
    holds no build yet, with the ``robot_model`` section of ``config_file`` (default
    config/retarget.yaml). RetargetError when the asset packages are missing or the folder is
    something else."""
    d = pathlib.Path(model_dir).expanduser().resolve()
    if (d / rm.XML_NAME).is_file() and (d / rm.MANIFEST_NAME).is_file():
        return d, False
    from dexman_common.config import ConfigError, load_section
    try:
        build_options = load_section(rm.BuildOptions, config_file or default_config_file())
    except ConfigError as e:
        raise RetargetError(str(e)) from e
    try:
        rm.build(d, build_options)
    except rm.AssetsNotFoundError as e:
        raise RetargetError(f'cannot build the robot model into {d}: {e}') from e
    except FileExistsError as e:
        raise RetargetError(str(e)) from e
    return d, True


def load_input(path):
    """(Demonstration in the robot world, meshes or None) from a demonstration artefact directory.

    A synthetic case (``ground_truth/``) is benchmark data, not a runtime input: convert it first
    with ``ros2 run dexman_synthetic dexman_synth demo CASE --out DIR`` (exact demonstration, put
    into the robot world)."""
    from dexman_common.artefacts import demonstration as dm
    p = pathlib.Path(path).expanduser()
    if (p / 'demonstration.json').is_file():
        try:
            return dm.load(p), None
        except dm.DemonstrationError as e:
            raise RetargetError(str(e)) from e
    if not p.exists():
        raise RetargetError(f'{p} does not exist')
    case = p.parent if p.name == 'ground_truth' else p
    if (case / 'ground_truth' / 'meta.json').is_file():
        raise RetargetError(f'{p} is a synthetic case, not a demonstration: convert it with '
                            f'`ros2 run dexman_synthetic dexman_synth demo {case} --out DIR`, then retarget DIR/<id>')
    raise RetargetError(f'{p} is neither a demonstration (demonstration.json) nor a synthetic case '
                        '(ground_truth/meta.json)')
