"""The demonstration artefact: what perception recovers from a video, in the robot's world frame.

Written atomically by the demonstration assembler (a directory renamed into place), announced with
dexman_msgs/DemonstrationInfo, read by retargeting and training. A synthetic ground-truth case
converts to the same form (``dexman_synthetic.core.demo_alignment.from_ground_truth``, benchmark
side), so every downstream stage can be scored on exact inputs.

    <root>/<demonstration_id>/
        demonstration.json     scalars, object list, frames, provenance
        trajectories.npz       per-frame arrays (shapes below)
        meshes/<object_id>.obj object meshes, metres, object frame

Frames and units (REP 103): `world` z up (table top horizontal), the robot at the origin facing
+y after scene alignment; metres, radians; T_a_b maps points in b to a. Hands: index 0 = LEFT,
1 = RIGHT, 21 keypoints in MANO/OpenPose order, wrist frames as dexman_msgs/Hand3D defines them.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from typing import Any

import numpy as np

from ..atomic_io import atomic_directory
from .meta_io import read_meta

FORMAT_VERSION = 1


class DemonstrationError(RuntimeError):
    """A demonstration artefact is missing, incomplete or inconsistent."""


@dataclasses.dataclass
class DemoObject:
    id: str
    label: str
    mesh_file: str                       # relative to the demonstration directory


@dataclasses.dataclass
class Demonstration:
    demonstration_id: str
    fps: float
    stamps_ns: np.ndarray                # (N,) int64 image stamps
    objects: list[DemoObject]
    object_poses: np.ndarray             # (O, N, 4, 4) T_world_object
    object_valid: np.ndarray             # (O, N) bool
    hand_keypoints: np.ndarray           # (2, N, 21, 3) world
    hand_valid: np.ndarray               # (2, N) bool
    wrist_poses: np.ndarray              # (2, N, 4, 4) T_world_wrist
    T_world_camera: np.ndarray           # (4, 4)
    K: np.ndarray                        # (3, 3) intrinsics of the source video
    table_point: np.ndarray              # (3,) world
    table_normal: np.ndarray             # (3,) world, unit
    source_uri: str = ''
    provenance: dict[str, Any] = dataclasses.field(default_factory=dict)   # backends, versions
    root: pathlib.Path | None = None

    _ARRAYS = ('stamps_ns', 'object_poses', 'object_valid', 'hand_keypoints', 'hand_valid',
               'wrist_poses', 'T_world_camera', 'K', 'table_point', 'table_normal')

    @property
    def n_frames(self) -> int:
        return int(self.stamps_ns.shape[0])

    def mesh_path(self, object_id: str) -> pathlib.Path:
        if self.root is None:
            raise DemonstrationError('demonstration not loaded from disk: no mesh path')
        for o in self.objects:
            if o.id == object_id:
                return self.root / o.mesh_file
        raise DemonstrationError(f'no object {object_id!r} in {self.demonstration_id}')

    def load_mesh(self, object_id: str):
        import trimesh
        return trimesh.load(self.mesh_path(object_id), force='mesh', process=False)

    def validate(self) -> None:
        n, o = self.n_frames, len(self.objects)
        shapes = {'object_poses': (o, n, 4, 4), 'object_valid': (o, n), 'hand_keypoints': (2, n, 21, 3),
                  'hand_valid': (2, n), 'wrist_poses': (2, n, 4, 4), 'T_world_camera': (4, 4), 'K': (3, 3),
                  'table_point': (3,), 'table_normal': (3,)}
        for name, shape in shapes.items():
            if np.shape(getattr(self, name)) != shape:
                raise DemonstrationError(f'{self.demonstration_id}: {name} has shape '
                                         f'{np.shape(getattr(self, name))}, expected {shape}')
        for name in ('object_poses', 'hand_keypoints', 'wrist_poses'):
            valid = self.object_valid if name == 'object_poses' else self.hand_valid
            if not np.all(np.isfinite(getattr(self, name)[valid])):
                raise DemonstrationError(f'{self.demonstration_id}: {name} is not finite on a frame '
                                         'marked valid')


def save(demo: Demonstration, root: str | os.PathLike, meshes: dict[str, Any]) -> pathlib.Path:
    """Write `<root>/<demonstration_id>/` atomically; meshes: object id -> trimesh (object frame, m)."""
    demo.validate()
    root = pathlib.Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / demo.demonstration_id
    with atomic_directory(final) as tmp:
        (tmp / 'meshes').mkdir()
        for obj in demo.objects:
            if obj.id not in meshes:
                raise DemonstrationError(f'no mesh given for object {obj.id}')
            meshes[obj.id].export(tmp / obj.mesh_file)
        meta = {'format_version': FORMAT_VERSION, 'demonstration_id': demo.demonstration_id,
                'fps': demo.fps, 'source_uri': demo.source_uri, 'provenance': demo.provenance,
                'objects': [dataclasses.asdict(o) for o in demo.objects],
                'frames': {'world': 'z up, table top horizontal, robot at the origin facing +y',
                           'poses': 'T_a_b maps points in b to a', 'hands': '0 LEFT, 1 RIGHT'}}
        (tmp / 'demonstration.json').write_text(json.dumps(meta, indent=2))
        np.savez_compressed(tmp / 'trajectories.npz',
                            **{k: np.asarray(getattr(demo, k)) for k in Demonstration._ARRAYS})
    demo.root = final
    return final


def load(path: str | os.PathLike) -> Demonstration:
    path = pathlib.Path(path)
    meta_p, traj_p = path / 'demonstration.json', path / 'trajectories.npz'
    if not meta_p.is_file() or not traj_p.is_file():
        raise DemonstrationError(f'{path} is not a demonstration (needs demonstration.json and '
                                 'trajectories.npz)')
    meta = read_meta(path, 'demonstration.json', FORMAT_VERSION, DemonstrationError)
    try:
        with np.load(traj_p) as z:
            arrays = {k: z[k] for k in Demonstration._ARRAYS}
    except (ValueError, KeyError, OSError) as e:
        raise DemonstrationError(f'{path}: unreadable demonstration ({e})') from e
    demo = Demonstration(demonstration_id=meta['demonstration_id'], fps=float(meta['fps']),
                         objects=[DemoObject(**o) for o in meta['objects']],
                         source_uri=meta.get('source_uri', ''), provenance=meta.get('provenance', {}),
                         root=path, **arrays)
    demo.validate()
    return demo
