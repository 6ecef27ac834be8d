"""The retargeted reference artefact: a demonstration on the G1 + two Shadow hands (paper 3.3-3.4).

Written atomically by the retarget pipeline (a temporary sibling directory renamed into place),
announced with dexman_msgs/ReferenceInfo, read by training (the reference motion, the contact
rewards and the initial object placement).

    <root>/<reference_id>/
        reference.json       scalars, joint names, objects, placement and IK summaries, the reach
                             report, per-frame IK messages, provenance
        trajectories.npz     per-frame arrays (shapes below)
        meshes/<id>.obj      object meshes (object frame, metres), copied from the demonstration

Frames and units (REP 103): ``world`` z up, the robot at the origin facing +y (the robot model's
world), table top horizontal; metres, radians, seconds; ``T_a_b`` maps points in b to a. Hands
and arms: index 0 = LEFT, 1 = RIGHT (dexman_msgs/Hand3D). T frames at ``frame_rate`` (30 Hz),
O objects, C contacts, J joints.

=========================  ==================  ==================================================
array                      shape               content
=========================  ==================  ==================================================
stamps_ns                  (T,) int64          time of each frame (demonstration clock)
joint_positions            (T, J)              every joint of the model, ``joint_names`` order
                                               (qpos order: left arm, left hand, right arm, right
                                               hand; the coupled J0 joints included)
wrist_targets              (2, T, 4, 4)        IK targets ``T_world_palm`` of ``{lh,rh}_palm``;
                                               NaN where the hand has no target (not tracked)
human_wrist_poses          (2, T, 4, 4)        the human Hand3D wrist frames they came from
hand_keypoints             (2, T, 21, 3)       human keypoints (world), NaN where not valid
hand_valid                 (2, T) bool
ik_pos_err, ik_rot_err     (2, T)              palm error of the solution, m / rad (NaN: no target)
ik_reachable               (2, T) bool         within the reach tolerances (True: no target)
ik_converged               (2, T) bool         within the solver tolerances
ik_has_target              (2, T) bool
contact_frame/hand/        (C,) int            one row per (frame, hand, keypoint, object) in the
contact_keypoint/                              contact prior P(t) (paper 3.4); keypoint: MANO
contact_object                                 index (tips 4, 8, 12, 16, 20; MCPs 5, 9, 13, 17)
contact_vertex_index       (C,) int            nearest vertex, index into the searched vertex set
contact_vertex_object      (C, 3)              that vertex in the OBJECT frame, m
contact_distance           (C,)                keypoint-vertex distance, m (<= its threshold)
contact_keypoints          (9,) int            the contact keypoints J (MANO indices)
contact_thresholds         (9,)                tau_j, m
object_poses               (O, T, 4, 4)        object trajectory ``T_world_object``, re-based on
                                               the placed initial pose (see below)
object_valid               (O, T) bool         tracked in the demonstration at that time (other
                                               frames are interpolated / held)
object_estimated_initial   (O, 4, 4)           the demonstration's initial pose
object_initial_poses       (O, 4, 4)           the stable placed initial pose (on the table)
object_settled_poses       (O, 4, 4)           that pose after the placement simulation
object_initial_stable      (O,) bool           a stable configuration was found
object_original_stable     (O,) bool           the estimated pose itself was stable
table_point, table_normal  (3,), (3,)          the table plane, world
=========================  ==================  ==================================================

Re-basing: ``object_poses[o, t] = demo_pose[o, t] @ inv(demo_pose[o, 0]) @ placed[o]``, so
``object_poses[o, 0]`` is the placed pose and every later pose keeps the demonstration's motion
relative to the start (a constant offset in the object frame).
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
from typing import Any

import numpy as np
from dexman_common.atomic_io import atomic_directory
from dexman_common.artefacts.meta_io import json_default, read_meta

FORMAT_VERSION = 1
META_NAME = 'reference.json'
ARRAYS_NAME = 'trajectories.npz'


class ReferenceArtefactError(RuntimeError):
    """A reference artefact is missing, incomplete or inconsistent."""


@dataclasses.dataclass
class RefObject:
    id: str
    label: str
    mesh_file: str                   # relative to the reference directory


@dataclasses.dataclass
class Reference:
    reference_id: str
    demonstration_id: str
    frame_rate: float
    joint_names: list[str]
    stamps_ns: np.ndarray
    joint_positions: np.ndarray
    wrist_targets: np.ndarray
    human_wrist_poses: np.ndarray
    hand_keypoints: np.ndarray
    hand_valid: np.ndarray
    ik_pos_err: np.ndarray
    ik_rot_err: np.ndarray
    ik_reachable: np.ndarray
    ik_converged: np.ndarray
    ik_has_target: np.ndarray
    contact_frame: np.ndarray
    contact_hand: np.ndarray
    contact_keypoint: np.ndarray
    contact_object: np.ndarray
    contact_vertex_index: np.ndarray
    contact_vertex_object: np.ndarray
    contact_distance: np.ndarray
    contact_keypoints: np.ndarray
    contact_thresholds: np.ndarray
    objects: list[RefObject]
    object_poses: np.ndarray
    object_valid: np.ndarray
    object_estimated_initial: np.ndarray
    object_initial_poses: np.ndarray
    object_settled_poses: np.ndarray
    object_initial_stable: np.ndarray
    object_original_stable: np.ndarray
    table_point: np.ndarray
    table_normal: np.ndarray
    joint_groups: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    ik_messages: list[str] = dataclasses.field(default_factory=list)
    placement: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    report: str = ''
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)
    root: pathlib.Path | None = None

    _ARRAYS = ('stamps_ns', 'joint_positions', 'wrist_targets', 'human_wrist_poses', 'hand_keypoints',
               'hand_valid', 'ik_pos_err', 'ik_rot_err', 'ik_reachable', 'ik_converged', 'ik_has_target',
               'contact_frame', 'contact_hand', 'contact_keypoint', 'contact_object',
               'contact_vertex_index', 'contact_vertex_object', 'contact_distance', 'contact_keypoints',
               'contact_thresholds', 'object_poses', 'object_valid', 'object_estimated_initial',
               'object_initial_poses', 'object_settled_poses', 'object_initial_stable',
               'object_original_stable', 'table_point', 'table_normal')

    # ------------------------------------------------------------------ derived views
    @property
    def n_frames(self) -> int:
        return int(np.shape(self.stamps_ns)[0])

    @property
    def time_from_start(self) -> np.ndarray:
        """(T,) seconds from the first frame."""
        return (np.asarray(self.stamps_ns, np.int64) - int(self.stamps_ns[0])) * 1e-9

    @property
    def unreachable(self) -> np.ndarray:
        """(2, T) bool: the hand had a target that the arm could not reach."""
        return np.asarray(self.ik_has_target, bool) & ~np.asarray(self.ik_reachable, bool)

    @property
    def unreachable_frames(self) -> int:
        """Frames where at least one targeted wrist was out of reach."""
        return int(np.count_nonzero(self.unreachable.any(axis=0)))

    def joint_index(self, names) -> list[int]:
        idx = {n: i for i, n in enumerate(self.joint_names)}
        missing = [n for n in names if n not in idx]
        if missing:
            raise KeyError(f'{self.reference_id}: no joint(s) {missing} in the reference')
        return [idx[n] for n in names]

    def positions_of(self, names) -> np.ndarray:
        """(T, len(names)) joint positions of the named joints."""
        return np.asarray(self.joint_positions)[:, self.joint_index(names)]

    def contacts_at(self, t: int) -> list[dict[str, Any]]:
        """The contact prior P(t): dicts with hand, keypoint, object (id), vertex_object, distance."""
        rows = np.flatnonzero(np.asarray(self.contact_frame) == t)
        return [{'hand': int(self.contact_hand[i]), 'keypoint': int(self.contact_keypoint[i]),
                 'object': self.objects[int(self.contact_object[i])].id,
                 'vertex_index': int(self.contact_vertex_index[i]),
                 'vertex_object': np.asarray(self.contact_vertex_object[i], float),
                 'distance': float(self.contact_distance[i])} for i in rows]

    def mesh_path(self, object_id: str) -> pathlib.Path:
        if self.root is None:
            raise ReferenceArtefactError('reference not loaded from disk: no mesh path')
        for o in self.objects:
            if o.id == object_id:
                return self.root / o.mesh_file
        raise ReferenceArtefactError(f'no object {object_id!r} in reference {self.reference_id}')

    def load_mesh(self, object_id: str):
        import trimesh
        return trimesh.load(self.mesh_path(object_id), force='mesh', process=False)

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        rid = self.reference_id or '<no id>'

        def fail(msg):
            raise ReferenceArtefactError(f'reference {rid}: {msg}')

        if not self.reference_id or '/' in self.reference_id or self.reference_id.startswith('.'):
            fail('reference_id must be a non-empty name without "/" that does not start with "."')
        if not (np.isfinite(self.frame_rate) and self.frame_rate > 0):
            fail(f'frame_rate must be > 0, got {self.frame_rate}')
        T, J, O = self.n_frames, len(self.joint_names), len(self.objects)
        C = int(np.shape(self.contact_frame)[0]) if np.ndim(self.contact_frame) == 1 else -1
        K = int(np.shape(self.contact_keypoints)[0]) if np.ndim(self.contact_keypoints) == 1 else -1
        if T < 1:
            fail('no frames')
        if len(set(self.joint_names)) != J:
            fail('duplicate joint names')
        shapes = {'stamps_ns': (T,), 'joint_positions': (T, J), 'wrist_targets': (2, T, 4, 4),
                  'human_wrist_poses': (2, T, 4, 4), 'hand_keypoints': (2, T, 21, 3), 'hand_valid': (2, T),
                  'ik_pos_err': (2, T), 'ik_rot_err': (2, T), 'ik_reachable': (2, T), 'ik_converged': (2, T),
                  'ik_has_target': (2, T), 'contact_frame': (C,), 'contact_hand': (C,),
                  'contact_keypoint': (C,), 'contact_object': (C,), 'contact_vertex_index': (C,),
                  'contact_vertex_object': (C, 3), 'contact_distance': (C,), 'contact_keypoints': (K,),
                  'contact_thresholds': (K,), 'object_poses': (O, T, 4, 4), 'object_valid': (O, T),
                  'object_estimated_initial': (O, 4, 4), 'object_initial_poses': (O, 4, 4),
                  'object_settled_poses': (O, 4, 4), 'object_initial_stable': (O,),
                  'object_original_stable': (O,), 'table_point': (3,), 'table_normal': (3,)}
        for name, shape in shapes.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                fail(f'{name} has shape {got}, expected {shape}')
        if not np.all(np.isfinite(self.joint_positions)):
            fail('joint_positions has non-finite values')
        if T > 1 and np.any(np.diff(np.asarray(self.stamps_ns, np.int64)) <= 0):
            fail('stamps_ns is not strictly increasing')
        for name in ('object_poses', 'object_initial_poses', 'table_point', 'table_normal'):
            if not np.all(np.isfinite(getattr(self, name))):
                fail(f'{name} has non-finite values')
        has = np.asarray(self.ik_has_target, bool)
        wt = np.asarray(self.wrist_targets, float)
        if not np.all(np.isfinite(wt[has])):
            fail('wrist_targets is not finite on a frame with a target')
        if C:
            if np.any((self.contact_frame < 0) | (self.contact_frame >= T)):
                fail('contact_frame out of range')
            if np.any((self.contact_hand < 0) | (self.contact_hand > 1)):
                fail('contact_hand must be 0 (LEFT) or 1 (RIGHT)')
            if np.any((self.contact_object < 0) | (self.contact_object >= O)):
                fail('contact_object out of range')
            if not np.all(np.isin(self.contact_keypoint, self.contact_keypoints)):
                fail('contact_keypoint not among contact_keypoints')
        if len(self.ik_messages) not in (0, T):
            fail(f'{len(self.ik_messages)} IK messages for {T} frames')


def save(ref: Reference, root: str | os.PathLike, meshes: dict[str, Any]) -> pathlib.Path:
    """Write ``<root>/<reference_id>/`` atomically; meshes: object id -> trimesh (object frame, m)
    or a path to a mesh file (copied as it is). Replaces a previous reference of the same id."""
    ref.validate()
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / ref.reference_id
    with atomic_directory(final) as tmp:
        (tmp / 'meshes').mkdir()
        for obj in ref.objects:
            if obj.id not in meshes:
                raise ReferenceArtefactError(f'no mesh given for object {obj.id}')
            m = meshes[obj.id]
            if isinstance(m, (str, os.PathLike)):
                shutil.copyfile(m, tmp / obj.mesh_file)
            else:
                m.export(tmp / obj.mesh_file)
        meta = {
            'format_version': FORMAT_VERSION, 'reference_id': ref.reference_id,
            'demonstration_id': ref.demonstration_id, 'frame_rate': ref.frame_rate,
            'frame_count': ref.n_frames, 'unreachable_frames': ref.unreachable_frames,
            'joint_names': list(ref.joint_names), 'joint_groups': ref.joint_groups,
            'objects': [dataclasses.asdict(o) for o in ref.objects],
            'placement': ref.placement, 'report': ref.report, 'ik_messages': list(ref.ik_messages),
            'provenance': ref.provenance,
            'frames': {'world': 'z up, the robot at the origin facing +y, table top horizontal',
                       'poses': 'T_a_b maps points in b to a', 'hands': '0 LEFT, 1 RIGHT',
                       'wrist_targets': 'T_world_palm of {lh,rh}_palm',
                       'contact_vertex_object': 'object frame'},
        }
        (tmp / META_NAME).write_text(json.dumps(meta, indent=2, default=json_default))
        np.savez_compressed(tmp / ARRAYS_NAME, **{k: np.asarray(getattr(ref, k)) for k in Reference._ARRAYS})
    ref.root = final
    return final


def load(path: str | os.PathLike) -> Reference:
    """Read and validate ``<root>/<reference_id>/``; ReferenceArtefactError with the reason."""
    path = pathlib.Path(path)
    meta_p, arr_p = path / META_NAME, path / ARRAYS_NAME
    if not meta_p.is_file() or not arr_p.is_file():
        raise ReferenceArtefactError(f'{path} is not a reference (needs {META_NAME} and {ARRAYS_NAME})')
    meta = read_meta(path, META_NAME, FORMAT_VERSION, ReferenceArtefactError)
    try:
        with np.load(arr_p) as z:
            missing = [k for k in Reference._ARRAYS if k not in z.files]
            if missing:
                raise ReferenceArtefactError(f'{path}: {ARRAYS_NAME} lacks {", ".join(missing)}')
            arrays = {k: z[k] for k in Reference._ARRAYS}
    except ReferenceArtefactError:
        raise
    except Exception as e:  # noqa: BLE001 - zip/pickle/IO errors all mean a damaged file
        raise ReferenceArtefactError(f'{path}: unreadable {ARRAYS_NAME} ({e})') from e
    try:
        ref = Reference(
            reference_id=meta['reference_id'], demonstration_id=meta['demonstration_id'],
            frame_rate=float(meta['frame_rate']), joint_names=list(meta['joint_names']),
            joint_groups=dict(meta.get('joint_groups', {})),
            objects=[RefObject(**o) for o in meta['objects']], placement=list(meta.get('placement', [])),
            report=str(meta.get('report', '')), ik_messages=list(meta.get('ik_messages', [])),
            provenance=dict(meta.get('provenance', {})), root=path, **arrays)
    except (KeyError, TypeError, ValueError) as e:
        raise ReferenceArtefactError(f'{path}: {META_NAME} is incomplete ({type(e).__name__}: {e})') from e
    ref.validate()
    for o in ref.objects:
        if not (path / o.mesh_file).is_file():
            raise ReferenceArtefactError(f'{path}: mesh {o.mesh_file} of object {o.id} is missing')
    return ref
