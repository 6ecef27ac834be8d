"""Collision shape of an object: convex parts from CoACD (cached on disk), or one convex hull.

MuJoCo collides a mesh geom through its convex hull, so a concave object (a mug's cavity, a bowl)
needs a convex decomposition: one geom per convex part. CoACD (Wei et al. 2022, pip ``coacd``)
computes it; ``SimConfig.coacd_*`` are its parameters.

Cache: parts are stored under ``SimConfig.cache_path()`` as ``<key>.npz`` where

    key = sha256(float64 vertices bytes, int64 faces bytes, JSON of the CoACD parameters, CoACD version)

of the cleaned mesh (``mesh_repair``); files are written atomically, so concurrent writers never
leave a partial file. An unreadable cache file is recomputed; an unwritable cache folder only
costs a warning. Without the ``coacd`` package (or ``collision: hull``) the object collides through
its convex hull, with a warning when CoACD was asked for.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import pathlib
import time

import numpy as np

from dexman_common.atomic_io import atomic_open

from .config import SimConfig
from .errors import SceneInputError

log = logging.getLogger(__name__)
CACHE_FORMAT = 1
MIN_PART_VOLUME = 1e-12      # m^3; flatter CoACD parts are dropped (MuJoCo cannot take them)


@dataclasses.dataclass(frozen=True)
class CollisionShape:
    parts: tuple           # convex trimesh.Trimesh parts, object frame, metres
    method: str            # 'coacd' | 'hull' | 'given'
    key: str               # cache key ('' unless CoACD ran or was read back)
    cache_hit: bool
    seconds: float         # wall time of the decomposition (0 on a cache hit)
    warnings: tuple[str, ...]

    @property
    def vertices(self) -> np.ndarray:
        """(N, 3) all part vertices, object frame (for lowest-point computations)."""
        return np.concatenate([np.asarray(p.vertices, float) for p in self.parts])


def coacd_version() -> str | None:
    """The installed CoACD version, or None without the package."""
    try:
        from importlib.metadata import version
        import coacd  # noqa: F401
        return version('coacd')
    except Exception:  # noqa: BLE001 - not installed or unusable
        return None


def mesh_key(mesh, params: dict, version: str) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(mesh.vertices, dtype='<f8').tobytes())
    h.update(np.ascontiguousarray(mesh.faces, dtype='<i8').tobytes())
    h.update(json.dumps({'params': params, 'coacd': version, 'format': CACHE_FORMAT},
                        sort_keys=True).encode())
    return h.hexdigest()


def convex_hull_parts(mesh) -> tuple:
    return (mesh.convex_hull,)


def given_parts(parts, name: str = 'object') -> CollisionShape:
    """A caller's decomposition: each part is replaced by its convex hull."""
    from .mesh_repair import validate_mesh
    out = tuple(validate_mesh(p, f'{name} part {i}').convex_hull for i, p in enumerate(parts))
    if not out:
        raise SceneInputError(f'{name}: collision_parts is empty')
    return CollisionShape(out, 'given', '', False, 0.0, ())


def collision_shape(mesh, cfg: SimConfig, name: str = 'object') -> CollisionShape:
    """Convex parts of a cleaned mesh (``mesh_repair.repair_mesh(...).mesh``), per ``cfg.collision``."""
    if cfg.collision == 'hull':
        return CollisionShape(convex_hull_parts(mesh), 'hull', '', False, 0.0, ())
    version = coacd_version()
    if version is None:
        w = f'{name}: the coacd package is not installed; colliding through the convex hull'
        log.warning(w)
        return CollisionShape(convex_hull_parts(mesh), 'hull', '', False, 0.0, (w,))
    params = cfg.coacd_params()
    key = mesh_key(mesh, params, version)
    path = cfg.cache_path() / f'{key}.npz'
    warnings: list[str] = []
    parts = _read_cache(path, warnings)
    if parts is not None:
        return CollisionShape(parts, 'coacd', key, True, 0.0, tuple(warnings))
    t0 = time.perf_counter()
    parts = run_coacd(mesh, params)
    seconds = time.perf_counter() - t0
    if not parts:
        warnings.append(f'{name}: CoACD returned no usable part; colliding through the convex hull')
        return CollisionShape(convex_hull_parts(mesh), 'hull', key, False, seconds, tuple(warnings))
    try:
        _write_cache(path, parts)
    except OSError as e:
        warnings.append(f'{name}: cannot write the CoACD cache {path}: {e}')
    return CollisionShape(parts, 'coacd', key, False, seconds, tuple(warnings))


def run_coacd(mesh, params: dict) -> tuple:
    """CoACD's convex parts of ``mesh`` (flat parts dropped), as trimesh hulls."""
    import coacd
    import trimesh
    coacd.set_log_level('error')
    cm = coacd.Mesh(np.asarray(mesh.vertices, float), np.asarray(mesh.faces, np.int32))
    out = []
    for v, f in coacd.run_coacd(cm, **params):
        part = trimesh.Trimesh(np.asarray(v, float), np.asarray(f, np.int64), process=True).convex_hull
        if part.volume > MIN_PART_VOLUME:
            out.append(part)
    return tuple(out)


def _write_cache(path: pathlib.Path, parts) -> None:
    verts = [np.asarray(p.vertices, float) for p in parts]
    faces = [np.asarray(p.faces, np.int64) for p in parts]
    buf = io.BytesIO()
    np.savez(buf, format=np.array(CACHE_FORMAT),
             vertices=np.concatenate(verts), faces=np.concatenate(faces),
             n_vertices=np.array([len(v) for v in verts]), n_faces=np.array([len(f) for f in faces]))
    with atomic_open(path, 'wb') as f:
        f.write(buf.getvalue())


def _read_cache(path: pathlib.Path, warnings: list) -> tuple | None:
    import trimesh
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            if int(z['format']) != CACHE_FORMAT:
                return None
            V, F = z['vertices'], z['faces']
            vo = np.concatenate([[0], np.cumsum(z['n_vertices'])])
            fo = np.concatenate([[0], np.cumsum(z['n_faces'])])
        return tuple(trimesh.Trimesh(V[vo[i]:vo[i + 1]], F[fo[i]:fo[i + 1]], process=False)
                     for i in range(len(vo) - 1))
    except Exception as e:  # noqa: BLE001 - a damaged cache file is recomputed
        warnings.append(f'unreadable CoACD cache file {path} ({e}); recomputing')
        return None
