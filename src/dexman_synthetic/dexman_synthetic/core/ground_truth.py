"""The ground-truth record of one synthetic demonstration: data types, save and load.

A case directory holds

    <case>/bag/                  rosbag2 (mcap): the video the pipeline sees (see docs/ground_truth.md)
    <case>/ground_truth/
        meta.json                scalars, intrinsics, extrinsics, table, object list (schema below)
        trajectories.npz         per-frame arrays (shapes below)
        scene.npz                per-frame metric depth (float16, m) and label images (uint8)
        meshes/<object_id>.obj   object meshes, metres, in the object frame

Frames and units (REP 103): metres, radians, right-handed. `world` is z up with the table top
horizontal; `camera_optical` is the OpenCV camera frame (z forward, x right, y down). A pose
`T_a_b` is a 4x4 homogeneous matrix mapping points in frame b to frame a.

Hands use index 0 = LEFT, 1 = RIGHT (dexman_msgs/Hand3D constants), 21 keypoints in
MANO/OpenPose order, wrist frames as defined in dexman_msgs/Hand3D.msg.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any

import numpy as np

FORMAT_VERSION = 1
LEFT, RIGHT = 0, 1


class GroundTruthError(RuntimeError):
    """A ground-truth record is missing, incomplete or inconsistent."""


@dataclasses.dataclass
class ObjectInfo:
    id: str                    # "object_0", TF frame "object_<id>"
    label: str                 # "mug", "bottle", ...
    shape: str                 # generator shape family: box, cylinder, mug, bowl, tool, slab
    mesh_file: str             # relative to ground_truth/, e.g. "meshes/object_0.obj"
    # Symmetry for ADD-S style metrics: "none", "z_axial" (continuous about the object z axis),
    # "z_2fold", "box" (the 3 axes 2-fold), as a hint; ADD-S itself needs no symmetry list.
    symmetry: str = 'none'
    extents: tuple[float, float, float] = (0.0, 0.0, 0.0)   # bounding box size in the object frame, m
    mass: float = 0.0                                        # kg


@dataclasses.dataclass
class GroundTruth:
    case_id: str
    task: str                  # pick_place | pick_pour | bimanual_lift | handover
    seed: int
    fps: float
    width: int
    height: int
    K: np.ndarray              # (3, 3) intrinsics, pixel centres at integer coordinates
    T_world_camera: np.ndarray  # (4, 4) camera_optical in world (static camera)
    table_point: np.ndarray    # (3,) a point on the table top, world
    table_normal: np.ndarray   # (3,) unit normal of the table top, world (= +z)
    table_extents: np.ndarray  # (2,) table top size x, y, m
    objects: list[ObjectInfo]
    stamps_ns: np.ndarray      # (N,) int64 header stamps of the frames
    object_poses: np.ndarray   # (O, N, 4, 4) T_world_object
    hand_keypoints: np.ndarray  # (2, N, 21, 3) world, m
    hand_present: np.ndarray   # (2, N) bool: the hand is in the scene (not necessarily visible)
    wrist_poses: np.ndarray    # (2, N, 4, 4) T_world_wrist
    pelvis_poses: np.ndarray   # (N, 4, 4) T_world_pelvis: origin mid-hips, x forward, y to the person's left, z up
    hips: np.ndarray           # (N, 2, 3) world; [:, 0] left hip, [:, 1] right hip
    grasped: np.ndarray        # (2, N) int: index of the object held by the hand, -1 = none
    frame_in_bag: np.ndarray   # (N,) bool: False where a frame drop degradation removed the frame
    degradations: dict[str, Any] = dataclasses.field(default_factory=dict)
    root: pathlib.Path | None = None   # case directory this was loaded from
    # Optional (absent in older records): (2, N, 5) bool, finger f (0 thumb .. 4 little) of hand h
    # touches (within 1 mm) the object it holds in frame n; all False when the hand holds nothing.
    finger_contacts: np.ndarray | None = None
    # Optional free-form scene description (posture, camera sampling, grasp kinds, generator version).
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    # ------------------------------------------------------------------ derived views
    @property
    def n_frames(self) -> int:
        return int(self.stamps_ns.shape[0])

    @property
    def T_camera_world(self) -> np.ndarray:
        return np.linalg.inv(self.T_world_camera)

    def object_poses_in_camera(self) -> np.ndarray:
        """(O, N, 4, 4) T_camera_object."""
        return np.einsum('ij,onjk->onik', self.T_camera_world, self.object_poses)

    def object_index(self, object_id: str) -> int:
        for i, o in enumerate(self.objects):
            if o.id == object_id:
                return i
        raise GroundTruthError(f'no object {object_id!r} in case {self.case_id} '
                               f'(objects: {[o.id for o in self.objects]})')

    def mesh_path(self, object_id: str) -> pathlib.Path:
        if self.root is None:
            raise GroundTruthError('ground truth was not loaded from disk: no mesh path')
        return self.root / 'ground_truth' / self.objects[self.object_index(object_id)].mesh_file

    def load_mesh(self, object_id: str):
        import trimesh
        return trimesh.load(self.mesh_path(object_id), force='mesh', process=False)

    def load_scene(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame metric depth (N, H, W) float32 (0 = nothing) and label images (N, H, W) uint8
        (0 = background (floor, walls), 1 + i = objects[i], 254 = left hand (palm and fingers),
        255 = right hand, 253 = body, arms, table and chair). Depth is the camera_optical z (m),
        stored as float16 (about 1 mm resolution below 2 m)."""
        if self.root is None:
            raise GroundTruthError('ground truth was not loaded from disk: no scene images')
        p = self.root / 'ground_truth' / 'scene.npz'
        if not p.is_file():
            raise GroundTruthError(f'{p} is missing')
        with np.load(p) as z:
            return z['depth'].astype(np.float32), z['labels']

    def prompt_boxes(self, frame: int | None = None, pad: int = 3) -> list[float]:
        """First-frame object boxes as a user would draw them: [x0, y0, x1, y1] per object (pixels,
        `pad` around the visible label), flat, in object order; frame: default the first frame in
        the bag. Raises GroundTruthError for an object not visible there."""
        _, labels = self.load_scene()
        if frame is None:
            frame = int(np.flatnonzero(self.frame_in_bag)[0])
        out = []
        for i, o in enumerate(self.objects):
            ys, xs = np.nonzero(labels[frame] == i + 1)
            if len(xs) == 0:
                raise GroundTruthError(f'{o.id} is not visible in frame {frame}')
            out += [float(max(0, xs.min() - pad)), float(max(0, ys.min() - pad)),
                    float(min(self.width - 1, xs.max() + pad)), float(min(self.height - 1, ys.max() + pad))]
        return out

    # ------------------------------------------------------------------ I/O
    _ARRAYS = ('K', 'T_world_camera', 'table_point', 'table_normal', 'table_extents', 'stamps_ns',
               'object_poses', 'hand_keypoints', 'hand_present', 'wrist_poses', 'pelvis_poses',
               'hips', 'grasped', 'frame_in_bag')

    def validate(self) -> None:
        n, o = self.n_frames, len(self.objects)
        shapes = {'K': (3, 3), 'T_world_camera': (4, 4), 'table_point': (3,), 'table_normal': (3,),
                  'table_extents': (2,), 'object_poses': (o, n, 4, 4),
                  'hand_keypoints': (2, n, 21, 3), 'hand_present': (2, n), 'wrist_poses': (2, n, 4, 4),
                  'pelvis_poses': (n, 4, 4), 'hips': (n, 2, 3), 'grasped': (2, n), 'frame_in_bag': (n,)}
        for name, shape in shapes.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise GroundTruthError(f'{self.case_id}: {name} has shape {got}, expected {shape}')
        if self.finger_contacts is not None and np.shape(self.finger_contacts) != (2, n, 5):
            raise GroundTruthError(f'{self.case_id}: finger_contacts has shape {np.shape(self.finger_contacts)}, '
                                   f'expected {(2, n, 5)}')
        for name in ('object_poses', 'hand_keypoints', 'wrist_poses', 'K', 'T_world_camera'):
            if not np.all(np.isfinite(getattr(self, name))):
                raise GroundTruthError(f'{self.case_id}: {name} has non-finite values')


def save(gt: GroundTruth, case_dir: str | os.PathLike, meshes: dict[str, Any],
         depth: np.ndarray | None = None, labels: np.ndarray | None = None) -> pathlib.Path:
    """Write `<case_dir>/ground_truth/` atomically (a temp dir renamed into place).

    meshes: object id -> trimesh.Trimesh in the object frame, metres.
    depth, labels: (N, H, W) per-frame scene depth (m) and label images, see load_scene().
    """
    gt.validate()
    case_dir = pathlib.Path(case_dir)
    case_dir.mkdir(parents=True, exist_ok=True)
    final = case_dir / 'ground_truth'
    tmp = pathlib.Path(tempfile.mkdtemp(prefix='.ground_truth.', dir=case_dir))
    try:
        (tmp / 'meshes').mkdir()
        for obj in gt.objects:
            if obj.id not in meshes:
                raise GroundTruthError(f'no mesh given for object {obj.id}')
            meshes[obj.id].export(tmp / obj.mesh_file)
        meta = {
            'format_version': FORMAT_VERSION, 'case_id': gt.case_id, 'task': gt.task, 'seed': gt.seed,
            'fps': gt.fps, 'width': gt.width, 'height': gt.height,
            'objects': [dataclasses.asdict(o) for o in gt.objects],
            'degradations': gt.degradations,
            'info': gt.info,
            'frames': {'world': 'z up, table top horizontal, metres',
                       'camera_optical': 'OpenCV: z forward, x right, y down',
                       'poses': 'T_a_b maps points in b to a'},
        }
        (tmp / 'meta.json').write_text(json.dumps(meta, indent=2))
        arrays = {k: np.asarray(getattr(gt, k)) for k in GroundTruth._ARRAYS}
        if gt.finger_contacts is not None:
            arrays['finger_contacts'] = np.asarray(gt.finger_contacts, bool)
        np.savez_compressed(tmp / 'trajectories.npz', **arrays)
        if depth is not None or labels is not None:
            if depth is None or labels is None:
                raise GroundTruthError('depth and labels go together')
            np.savez_compressed(tmp / 'scene.npz', depth=np.asarray(depth, np.float16),
                                labels=np.asarray(labels, np.uint8))
        if final.exists():
            old = case_dir / '.ground_truth.old'
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
            tmp.rename(final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load(case_dir: str | os.PathLike) -> GroundTruth:
    """Load `<case_dir>/ground_truth/` (or the ground_truth dir itself)."""
    case_dir = pathlib.Path(case_dir)
    if case_dir.name == 'ground_truth':
        case_dir = case_dir.parent
    d = case_dir / 'ground_truth'
    meta_p, traj_p = d / 'meta.json', d / 'trajectories.npz'
    if not meta_p.is_file() or not traj_p.is_file():
        raise GroundTruthError(f'{case_dir} is not a ground-truth case (needs ground_truth/meta.json '
                               'and ground_truth/trajectories.npz)')
    try:
        meta = json.loads(meta_p.read_text())
        with np.load(traj_p) as z:
            arrays = {k: z[k] for k in GroundTruth._ARRAYS}
            contacts = z['finger_contacts'] if 'finger_contacts' in z.files else None
    except (ValueError, KeyError, OSError) as e:
        raise GroundTruthError(f'{d}: unreadable ground truth ({e})') from e
    if meta.get('format_version') != FORMAT_VERSION:
        raise GroundTruthError(f'{d}: format_version {meta.get("format_version")}, expected {FORMAT_VERSION}')
    gt = GroundTruth(
        case_id=meta['case_id'], task=meta['task'], seed=int(meta['seed']), fps=float(meta['fps']),
        width=int(meta['width']), height=int(meta['height']),
        objects=[ObjectInfo(**{**o, 'extents': tuple(o['extents'])}) for o in meta['objects']],
        degradations=meta.get('degradations', {}), root=case_dir, finger_contacts=contacts,
        info=meta.get('info', {}), **arrays)
    gt.validate()
    return gt
