"""The predicted object-pose trajectory file: one .npz per run of a pose tracker.

Arrays (np.savez_compressed, readable with allow_pickle=False):

    object_ids  (O,)        str      ground-truth object ids, e.g. "object_0"
    stamps_ns   (N,)        int64    header stamps of the frames (unique), matched exactly to the
                                     ground truth's stamps_ns
    poses       (O, N, 4, 4) float64 T_<frame>_object; rows of invalid frames may be NaN
    valid       (O, N)      bool     False where the tracker had no pose (lost, not initialised)
    frame       ()          str      'world' or 'camera_optical' (OpenCV optical frame of the camera)
    method      ()          str      optional free text, e.g. "dexman", "foundationpose"

Frames and units follow REP 103 (metres, radians); `T_a_b` maps points in b to a.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import zipfile

import numpy as np

from dexman_common.atomic_io import atomic_open

FRAMES = ('world', 'camera_optical')


class PoseTrajectoryError(ValueError):
    """A prediction file is missing, unreadable or inconsistent."""


@dataclasses.dataclass
class PoseTrajectory:
    object_ids: list[str]
    stamps_ns: np.ndarray      # (N,) int64
    poses: np.ndarray          # (O, N, 4, 4) float64
    valid: np.ndarray          # (O, N) bool
    frame: str = 'world'
    method: str = ''

    @property
    def n_frames(self) -> int:
        return int(np.shape(self.stamps_ns)[0])

    def validate(self) -> None:
        """Normalise dtypes in place and check shapes; raises PoseTrajectoryError."""
        ids = [str(x) for x in np.asarray(self.object_ids).reshape(-1)]
        if np.ndim(self.object_ids) != 1:
            raise PoseTrajectoryError(f'object_ids must be 1-D, got shape {np.shape(self.object_ids)}')
        if any(not x for x in ids):
            raise PoseTrajectoryError('object_ids has an empty id')
        if len(set(ids)) != len(ids):
            raise PoseTrajectoryError(f'object_ids has duplicates: {ids}')
        stamps = np.asarray(self.stamps_ns)
        if stamps.ndim != 1:
            raise PoseTrajectoryError(f'stamps_ns must be 1-D, got shape {stamps.shape}')
        if stamps.size and not np.issubdtype(stamps.dtype, np.integer):
            raise PoseTrajectoryError(f'stamps_ns must be integers (ns), got dtype {stamps.dtype}')
        stamps = stamps.astype(np.int64)
        if len(np.unique(stamps)) != len(stamps):
            raise PoseTrajectoryError('stamps_ns has duplicate stamps')
        o, n = len(ids), len(stamps)
        poses = np.asarray(self.poses)
        if poses.shape != (o, n, 4, 4):
            raise PoseTrajectoryError(f'poses has shape {poses.shape}, expected (O={o}, N={n}, 4, 4)')
        if poses.size and not (np.issubdtype(poses.dtype, np.floating) or np.issubdtype(poses.dtype, np.integer)):
            raise PoseTrajectoryError(f'poses must be real numbers, got dtype {poses.dtype}')
        valid = np.asarray(self.valid)
        if valid.shape != (o, n):
            raise PoseTrajectoryError(f'valid has shape {valid.shape}, expected (O={o}, N={n})')
        if valid.dtype != bool:
            if not np.issubdtype(valid.dtype, np.integer) or not np.all((valid == 0) | (valid == 1)):
                raise PoseTrajectoryError(f'valid must be bool (or 0/1), got dtype {valid.dtype}')
        frame = str(self.frame)
        if frame not in FRAMES:
            raise PoseTrajectoryError(f'frame is {frame!r}, expected one of {FRAMES}')
        self.object_ids = ids
        self.stamps_ns = stamps
        self.poses = poses.astype(np.float64)
        self.valid = valid.astype(bool)
        self.frame = frame
        self.method = '' if self.method is None else str(self.method)

    def object_index(self, object_id: str) -> int:
        try:
            return self.object_ids.index(object_id)
        except ValueError:
            raise PoseTrajectoryError(f'prediction has no object {object_id!r} '
                                      f'(objects: {self.object_ids})') from None

    def to_world(self, T_world_camera: np.ndarray) -> 'PoseTrajectory':
        """A copy in the world frame (T_world_object = T_world_camera T_camera_object)."""
        if self.frame == 'world':
            return dataclasses.replace(self, poses=self.poses.copy(), valid=self.valid.copy())
        T = np.asarray(T_world_camera, np.float64)
        if T.shape != (4, 4):
            raise PoseTrajectoryError(f'T_world_camera must be (4, 4), got {T.shape}')
        with np.errstate(invalid='ignore', over='ignore'):
            poses = np.einsum('ij,onjk->onik', T, self.poses)
        return dataclasses.replace(self, poses=poses, valid=self.valid.copy(), frame='world')


def save(traj: PoseTrajectory, path: str | os.PathLike) -> pathlib.Path:
    """Validate and write atomically (temp file in the same folder, then os.replace)."""
    traj.validate()
    path = pathlib.Path(path)
    with atomic_open(path, 'wb') as f:
        np.savez_compressed(
            f, object_ids=np.asarray(traj.object_ids, dtype=str).reshape(-1),
            stamps_ns=traj.stamps_ns, poses=traj.poses, valid=traj.valid,
            frame=np.asarray(traj.frame, dtype=str), method=np.asarray(traj.method, dtype=str))
    return path


def load(path: str | os.PathLike) -> PoseTrajectory:
    """Read and validate a prediction file; raises PoseTrajectoryError with the reason."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise PoseTrajectoryError(f'{path}: no such prediction file')
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ('object_ids', 'stamps_ns', 'poses', 'valid', 'frame') if k not in z.files]
            if missing:
                raise PoseTrajectoryError(f'{path}: missing arrays {missing} (has {sorted(z.files)})')
            d = {k: z[k] for k in z.files}
    except PoseTrajectoryError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise PoseTrajectoryError(f'{path}: not a readable .npz prediction ({e})') from None
    if d['object_ids'].dtype.kind not in 'US':
        raise PoseTrajectoryError(f'{path}: object_ids must be strings, got dtype {d["object_ids"].dtype}')
    for k in ('frame', 'method'):
        if k in d and (d[k].ndim != 0 or d[k].dtype.kind not in 'US'):
            raise PoseTrajectoryError(f'{path}: {k} must be a single string')
    traj = PoseTrajectory(object_ids=list(d['object_ids'].reshape(-1)) if d['object_ids'].ndim == 1
                          else d['object_ids'],
                          stamps_ns=d['stamps_ns'], poses=d['poses'], valid=d['valid'],
                          frame=str(d['frame']), method=str(d['method']) if 'method' in d else '')
    try:
        traj.validate()
    except PoseTrajectoryError as e:
        raise PoseTrajectoryError(f'{path}: {e}') from None
    return traj
