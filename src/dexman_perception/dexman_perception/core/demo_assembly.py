"""Assemble a demonstration artefact from the perception graph's per-frame outputs (ROS-free).

The demonstration assembler node feeds a `DemoAssembly` with what arrives on the graph and calls
`build()` at the end of the bag:

    asm = DemoAssembly()
    asm.add_frame(stamp)                                  # every image stamp of the bag
    asm.add_hands(stamp, keypoints, valid, wrists)        # (2, 21, 3), (2,), (2, 4, 4); 0 LEFT
    asm.add_objects(stamp, [ObjectObservation('object_0', T_camera_object, valid=True)])
    asm.set_mesh('object_0', mesh, label='mug')           # trimesh, object frame, metres
    asm.set_scene(T_world_camera, table_point_world, table_normal_world)   # B.4
    asm.set_intrinsics(K)
    demo, meshes = asm.build('my_demo', source_uri='/data/bag')

Rules (ours; the paper does not say how gaps are stored):
  * Frames. Every stamp seen (image stamps from `add_frame`, plus any stamp a stage output
    carries) is a frame, in stamp order. A frame lacking a stage's output is kept and marked
    invalid for that output; nothing is dropped or interpolated here (retargeting resamples).
  * Invalid entries hold NaN (keypoints, wrist and object poses), so nothing can use them by
    accident; `hand_valid` / `object_valid` say which entries are measurements.
  * Frames. Per-frame inputs are in the camera frame (`camera_optical`) unless added with
    in_world=True; `build` maps them with T_world_camera: p_w = R p_c + t for keypoints,
    T_world_x = T_world_camera · T_camera_x for wrist and object poses.
  * Objects. An object enters the demonstration when it has a mesh and at least one valid pose;
    others are listed in `dropped_objects` with the reason. None left: DemonstrationError.
  * Tracked-object validity (`tracked_pose_valid`): TRACKING is valid; PREDICTED (propagated by
    point tracks, refiner rejected) is valid when accepted (default) and its confidence is > 0;
    LOST is invalid. A non-finite pose is always invalid.
  * Meshes. The tracked pose is the pose of the mesh scaled by the tracker's `scale` (1.0 for a
    metric mesh; Any6D-style estimate for an unscaled one, as the tracker node applies it), so the
    demonstration stores mesh × scale of the object's last valid observation.
  * fps = 1e9 / median(diff(stamps)): robust to frames dropped from the bag.
  * Configuration. `provenance['config']` records the algorithm configuration the
    demonstration was made with: `demo_assembly` (this assembly's `DemoAssemblyConfig`) and
    `stages`, per stage what `set_stage_config` was given (the stage nodes publish the sections
    they actually ran with, ROS-parameter overrides applied, on /dexman/perception/config).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterable

import numpy as np

from dexman_common.artefacts.demonstration import Demonstration, DemonstrationError, DemoObject
from dexman_common.config import ConfigBase

from .perception_config import YAML_FILE, configured

N_KEYPOINTS = 21
HAND_NAMES = ('left', 'right')
STATUS_TRACKING, STATUS_PREDICTED, STATUS_LOST = 0, 1, 2     # dexman_msgs/TrackedObject
STATUS_NAMES = {STATUS_TRACKING: 'tracking', STATUS_PREDICTED: 'predicted', STATUS_LOST: 'lost'}


@dataclasses.dataclass(frozen=True)
class DemoAssemblyConfig(ConfigBase):
    """Rules of the assembly (module docstring); values in config/perception.yaml [demo_assembly]."""

    SECTION = 'demo_assembly'
    YAML_FILE = YAML_FILE

    accept_predicted: bool = True      # PREDICTED poses (point tracks only) with confidence > 0 count as valid
    require_hands: bool = True         # no valid hand in any frame: no demonstration


def tracked_pose_valid(status: int, confidence: float, T=None, *, accept_predicted: bool = True) -> bool:
    """Whether a TrackedObject pose counts as a measured pose (see the module rules)."""
    if T is not None:
        T = np.asarray(T, float)
        if T.shape != (4, 4) or not np.all(np.isfinite(T)):
            return False
    if status == STATUS_TRACKING:
        return True
    if status == STATUS_PREDICTED:
        return bool(accept_predicted) and np.isfinite(confidence) and float(confidence) > 0.0
    return False


@dataclasses.dataclass
class ObjectObservation:
    id: str
    T: np.ndarray                 # (4, 4) T_camera_object (or T_world_object with in_world)
    valid: bool
    label: str = ''
    status: int = STATUS_TRACKING
    confidence: float = 1.0
    scale: float = 1.0            # scale the tracker applied to the object's mesh (TrackedObject.scale)


@dataclasses.dataclass
class _Hands:
    keypoints: np.ndarray         # (2, 21, 3)
    valid: np.ndarray             # (2,)
    wrists: np.ndarray            # (2, 4, 4)
    in_world: bool


@dataclasses.dataclass
class _Mesh:
    mesh: Any
    label: str
    metric: bool
    source: str


def fps_from_stamps(stamps_ns) -> float:
    s = np.unique(np.asarray(stamps_ns, np.int64))
    if s.size < 2:
        raise DemonstrationError(f'{s.size} frame(s): a demonstration needs at least 2 frames to have a '
                                 'frame rate')
    return float(1e9 / np.median(np.diff(s)))


def _check_T(T, what: str) -> np.ndarray:
    T = np.asarray(T, float)
    if T.shape != (4, 4):
        raise ValueError(f'{what} must be a 4x4 matrix, got shape {T.shape}')
    return T


class DemoAssembly:
    """Collects per-frame records and the scene alignment; builds a world-frame Demonstration.

    config: a DemoAssemblyConfig (default: its defaults = config/perception.yaml [demo_assembly]);
    keyword overrides (its fields) replace its values."""

    def __init__(self, config: DemoAssemblyConfig | None = None, **overrides) -> None:
        self.config = configured(DemoAssemblyConfig, config, overrides)
        self.stage_configs: dict[str, dict[str, Any]] = {}
        self._frames: set[int] = set()
        self._hands: dict[int, _Hands] = {}
        self._objects: dict[int, dict[str, tuple[ObjectObservation, bool]]] = {}
        self._labels: dict[str, str] = {}
        self._meshes: dict[str, _Mesh] = {}
        self.T_world_camera: np.ndarray | None = None
        self.table_point: np.ndarray | None = None
        self.table_normal: np.ndarray | None = None
        self.K: np.ndarray | None = None
        self.duplicates = 0            # messages for a stamp that already had one (last one kept)

    # ---------------------------------------------------------------------------- inputs
    def add_frame(self, stamp_ns: int) -> None:
        self._frames.add(int(stamp_ns))

    def add_hands(self, stamp_ns: int, keypoints, valid, wrists, *, in_world: bool = False) -> None:
        kp = np.asarray(keypoints, float)
        v = np.asarray(valid, bool).reshape(-1)
        w = np.asarray(wrists, float)
        if kp.shape != (2, N_KEYPOINTS, 3) or v.shape != (2,) or w.shape != (2, 4, 4):
            raise ValueError(f'hands need keypoints (2, 21, 3), valid (2,), wrists (2, 4, 4); got '
                             f'{kp.shape}, {v.shape}, {w.shape}')
        v = v & np.isfinite(kp).all(axis=(1, 2)) & np.isfinite(w).all(axis=(1, 2))
        stamp_ns = int(stamp_ns)
        self.duplicates += stamp_ns in self._hands
        self._hands[stamp_ns] = _Hands(kp.copy(), v, w.copy(), bool(in_world))
        self._frames.add(stamp_ns)

    def add_objects(self, stamp_ns: int, observations: Iterable[ObjectObservation], *,
                    in_world: bool = False) -> None:
        stamp_ns = int(stamp_ns)
        rec = {}
        for o in observations:
            T = _check_T(o.T, f'pose of {o.id}')
            ok = bool(o.valid) and bool(np.all(np.isfinite(T)))
            rec[o.id] = (dataclasses.replace(o, T=T.copy(), valid=ok), bool(in_world))
            if o.label and o.id not in self._labels:
                self._labels[o.id] = o.label
        self.duplicates += stamp_ns in self._objects
        self._objects[stamp_ns] = rec
        self._frames.add(stamp_ns)

    def set_mesh(self, object_id: str, mesh, *, label: str = '', metric: bool = True,
                 source: str = '') -> None:
        if mesh is None or len(getattr(mesh, 'vertices', [])) == 0 or len(getattr(mesh, 'faces', [])) == 0:
            raise ValueError(f'{object_id}: empty mesh')
        self._meshes[object_id] = _Mesh(mesh, label, bool(metric), source)
        if label:
            self._labels.setdefault(object_id, label)

    def set_scene(self, T_world_camera, table_point, table_normal) -> None:
        T = _check_T(T_world_camera, 'T_world_camera')
        if not np.all(np.isfinite(T)) or abs(np.linalg.det(T[:3, :3]) - 1.0) > 1e-3:
            raise ValueError('T_world_camera must be a finite rigid transform')
        n = np.asarray(table_normal, float).reshape(3)
        if not np.isfinite(n).all() or np.linalg.norm(n) < 1e-9:
            raise ValueError(f'table normal {n} is not a direction')
        self.T_world_camera = T.copy()
        self.table_point = np.asarray(table_point, float).reshape(3).copy()
        self.table_normal = n / np.linalg.norm(n)

    def set_stage_config(self, stage: str, config: dict[str, Any]) -> None:
        """The algorithm configuration a stage ran with (JSON-able; the last one per stage is kept),
        recorded in the demonstration's provenance."""
        if not stage:
            raise ValueError('a stage config needs the stage name')
        self.stage_configs[str(stage)] = dict(config)

    def set_intrinsics(self, K) -> None:
        K = np.asarray(K, float).reshape(3, 3)
        if not (np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0):
            raise ValueError('K has no intrinsics (fx, fy must be > 0)')
        self.K = K.copy()

    # ---------------------------------------------------------------------------- views
    @property
    def stamps(self) -> np.ndarray:
        return np.array(sorted(self._frames), np.int64)

    @property
    def has_scene(self) -> bool:
        return self.T_world_camera is not None

    @property
    def object_ids(self) -> list[str]:
        ids = set(self._meshes)
        for rec in self._objects.values():
            ids.update(rec)
        return sorted(ids)

    def _object_counts(self, object_id: str) -> dict[str, int]:
        c = {'valid': 0, 'tracking': 0, 'predicted': 0, 'lost': 0, 'rejected': 0}
        for rec in self._objects.values():
            if object_id not in rec:
                continue
            o = rec[object_id][0]
            c[STATUS_NAMES.get(o.status, 'lost')] += 1
            c['valid'] += o.valid
            c['rejected'] += (o.status != STATUS_LOST) and not o.valid
        return c

    def mesh_scale(self, object_id: str) -> float:
        """The tracker's scale for the object's mesh: that of its last valid observation (1.0 if none)."""
        for s in sorted(self._objects, reverse=True):
            o = self._objects[s].get(object_id)
            if o is not None and o[0].valid and np.isfinite(o[0].scale) and o[0].scale > 0:
                return float(o[0].scale)
        return 1.0

    def dropped_objects(self) -> dict[str, str]:
        out = {}
        for oid in self.object_ids:
            c = self._object_counts(oid)
            if oid not in self._meshes:
                out[oid] = 'no mesh was received for it (mesh stage)'
            elif c['valid'] == 0:
                out[oid] = ('never tracked: no valid pose in any frame' if any(
                    oid in r for r in self._objects.values()) else 'no pose was received for it (tracking stage)')
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-able counts of what the demonstration would hold (per output, per object)."""
        stamps = self.stamps
        n = int(stamps.size)
        hands = {name: int(sum(bool(h.valid[i]) for h in self._hands.values())) for i, name in enumerate(HAND_NAMES)}
        objects = {}
        for oid in self.object_ids:
            c = self._object_counts(oid)
            objects[oid] = {'label': self._labels.get(oid, oid), 'has_mesh': oid in self._meshes,
                            'mesh_metric': self._meshes[oid].metric if oid in self._meshes else None,
                            'mesh_scale': self.mesh_scale(oid),
                            'frames_valid': c['valid'], 'frames_invalid': n - c['valid'],
                            'status_counts': {k: c[k] for k in ('tracking', 'predicted', 'lost')},
                            'predicted_or_tracked_rejected': c['rejected']}
        return {'frames': n,
                'fps': fps_from_stamps(stamps) if n >= 2 else None,
                'first_stamp_ns': int(stamps[0]) if n else None,
                'last_stamp_ns': int(stamps[-1]) if n else None,
                'frames_without_hands_message': int(sum(s not in self._hands for s in stamps.tolist())),
                'frames_without_objects_message': int(sum(s not in self._objects for s in stamps.tolist())),
                'hand_frames_valid': hands,
                'objects': objects,
                'dropped_objects': self.dropped_objects(),
                'has_scene_alignment': self.has_scene,
                'has_intrinsics': self.K is not None,
                'duplicate_messages': int(self.duplicates)}

    # ---------------------------------------------------------------------------- build
    def check(self, *, require_hands: bool | None = None) -> None:
        """Raise DemonstrationError naming why no demonstration can be built (first reason).
        require_hands: None = the config's."""
        self._kept_objects(require_hands=self.config.require_hands if require_hands is None else require_hands)

    def _kept_objects(self, *, require_hands: bool) -> list[str]:
        n = len(self._frames)
        if n == 0:
            raise DemonstrationError('no frames: nothing arrived from the bag (camera_info) or the stages')
        if n < 2:
            raise DemonstrationError('only 1 frame: a demonstration needs at least 2')
        if self.T_world_camera is None:
            raise DemonstrationError('no scene alignment (T_world_camera) was received from the scene stage: '
                                     'the world frame is unknown')
        if self.K is None:
            raise DemonstrationError('no camera intrinsics: no camera_info arrived')
        if require_hands and not any(h.valid.any() for h in self._hands.values()):
            raise DemonstrationError('no valid hand in any frame (hands stage): nothing to imitate')
        dropped = self.dropped_objects()
        kept = [o for o in self.object_ids if o not in dropped]
        if not kept:
            why = '; '.join(f'{k}: {v}' for k, v in dropped.items()) or 'no object was reported at all'
            raise DemonstrationError(f'no object tracked with a mesh ({why})')
        return kept

    def build(self, demonstration_id: str, *, source_uri: str = '', provenance: dict | None = None,
              require_hands: bool | None = None) -> tuple[Demonstration, dict[str, Any]]:
        """The world-frame Demonstration and its meshes {object id: trimesh}; DemonstrationError
        (with the reason) when none can be made. require_hands: None = the config's. The
        provenance gets 'config' (module docstring)."""
        if not demonstration_id or '/' in demonstration_id or demonstration_id in ('.', '..'):
            raise ValueError(f'bad demonstration id {demonstration_id!r}')
        if require_hands is None:
            require_hands = self.config.require_hands
        kept = self._kept_objects(require_hands=require_hands)
        stamps = self.stamps
        n = stamps.size
        Twc = self.T_world_camera
        R, t = Twc[:3, :3], Twc[:3, 3]
        nan44 = np.full((4, 4), np.nan)

        kp = np.full((2, n, N_KEYPOINTS, 3), np.nan)
        wr = np.tile(nan44, (2, n, 1, 1))
        hv = np.zeros((2, n), bool)
        for f, s in enumerate(stamps.tolist()):
            h = self._hands.get(s)
            if h is None:
                continue
            for i in range(2):
                if not h.valid[i]:
                    continue
                hv[i, f] = True
                kp[i, f] = h.keypoints[i] if h.in_world else h.keypoints[i] @ R.T + t
                wr[i, f] = h.wrists[i] if h.in_world else Twc @ h.wrists[i]

        op = np.tile(nan44, (len(kept), n, 1, 1))
        ov = np.zeros((len(kept), n), bool)
        for f, s in enumerate(stamps.tolist()):
            rec = self._objects.get(s, {})
            for j, oid in enumerate(kept):
                if oid not in rec or not rec[oid][0].valid:
                    continue
                obs, in_world = rec[oid]
                ov[j, f] = True
                op[j, f] = obs.T if in_world else Twc @ obs.T

        prov = dict(provenance or {})
        prov.setdefault('source', 'perception')
        prov['invalid_frames'] = {'hands': {name: int(n - hv[i].sum()) for i, name in enumerate(HAND_NAMES)},
                                  'objects': {oid: int(n - ov[j].sum()) for j, oid in enumerate(kept)}}
        scales = {oid: self.mesh_scale(oid) for oid in kept}
        prov['mesh_scales'] = scales
        nonmetric = [oid for oid in kept if not self._meshes[oid].metric and scales[oid] == 1.0]
        if nonmetric:
            prov['non_metric_meshes'] = nonmetric     # unscaled mesh and no scale from the tracker
        dropped = self.dropped_objects()
        if dropped:
            prov['dropped_objects'] = dropped
        prov['config'] = {'demo_assembly': self.config.to_dict(),
                          'stages': {k: self.stage_configs[k] for k in sorted(self.stage_configs)}}
        demo = Demonstration(
            demonstration_id=demonstration_id, fps=fps_from_stamps(stamps), stamps_ns=stamps,
            objects=[DemoObject(id=oid, label=self._labels.get(oid, oid), mesh_file=f'meshes/{oid}.obj')
                     for oid in kept],
            object_poses=op, object_valid=ov, hand_keypoints=kp, hand_valid=hv, wrist_poses=wr,
            T_world_camera=Twc.copy(), K=self.K.copy(), table_point=self.table_point.copy(),
            table_normal=self.table_normal.copy(), source_uri=source_uri, provenance=prov)
        demo.validate()
        meshes = {}
        for oid in kept:
            m = self._meshes[oid].mesh
            meshes[oid] = m if scales[oid] == 1.0 else m.copy().apply_scale(scales[oid])
        return demo, meshes


def stage_entry(*, stage: str, backend: str = '', node: str = '', state: str = 'MISSING',
                frames_in: int = 0, frames_out: int = 0, frames_invalid: int = 0, message: str = '',
                received: int | None = None) -> dict[str, Any]:
    """One stage's line of the assembler report (state: WAITING/RUNNING/DONE/STOPPED/MISSING)."""
    e = {'stage': stage, 'backend': backend, 'node': node, 'state': state, 'frames_in': int(frames_in),
         'frames_out': int(frames_out), 'frames_invalid': int(frames_invalid),
         'invalid_rate': round(frames_invalid / frames_out, 4) if frames_out else None, 'message': message}
    if received is not None:
        e['received_by_assembler'] = int(received)
    return e
