"""Checks and repairs of an input object mesh before it is simulated.

- Empty (no vertices or faces), non-finite vertices, or face indices out of range: SceneInputError.
- Otherwise a copy is cleaned with trimesh: duplicate vertices merged, degenerate and duplicate
  faces dropped, holes filled (``trimesh.repair.fill_holes``), winding and normals made consistent
  (``trimesh.repair.fix_normals``, so a closed mesh has a positive volume).
- If the result is still not watertight (or its volume is not positive), mass properties come from
  its convex hull instead, and a warning string says so. Convex decomposition (CoACD) takes the
  cleaned mesh in any case: its own pre-processing remeshes non-manifold input.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .errors import SceneInputError


@dataclasses.dataclass(frozen=True)
class RepairedMesh:
    mesh: object             # trimesh.Trimesh, cleaned, object frame
    solid: object            # trimesh.Trimesh used for mass properties (mesh, or its convex hull)
    solid_kind: str          # 'mesh' | 'filled' (holes filled) | 'hull'
    warnings: tuple[str, ...]


def validate_mesh(mesh, name: str = 'object'):
    """The mesh as a trimesh.Trimesh with finite vertices and valid faces, else SceneInputError."""
    import trimesh
    if not isinstance(mesh, trimesh.Trimesh):
        raise SceneInputError(f'{name}: mesh must be a trimesh.Trimesh, got {type(mesh).__name__}')
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.faces)
    if v.ndim != 2 or len(v) == 0 or f.ndim != 2 or len(f) == 0:
        raise SceneInputError(f'{name}: empty mesh ({len(v)} vertices, {len(f)} faces)')
    if not np.all(np.isfinite(v)):
        bad = int(np.sum(~np.all(np.isfinite(v), axis=1)))
        raise SceneInputError(f'{name}: {bad} vertices are not finite (NaN or inf)')
    if f.min() < 0 or f.max() >= len(v):
        raise SceneInputError(f'{name}: face indices out of range [0, {len(v)})')
    return mesh


def repair_mesh(mesh, name: str = 'object') -> RepairedMesh:
    """Validate and clean ``mesh``; choose the solid for mass properties (module docstring)."""
    import trimesh
    validate_mesh(mesh, name)
    m = trimesh.Trimesh(vertices=np.asarray(mesh.vertices, float), faces=np.asarray(mesh.faces),
                        process=True, validate=True)
    warnings: list[str] = []
    if len(m.faces) == 0:
        raise SceneInputError(f'{name}: mesh has no non-degenerate faces')
    kind = 'mesh'
    if not m.is_watertight:
        trimesh.repair.fill_holes(m)
        kind = 'filled'
        if m.is_watertight:
            warnings.append(f'{name}: mesh was not watertight; holes filled for mass properties')
    if m.is_watertight:
        trimesh.repair.fix_normals(m)
    if m.is_watertight and m.volume > 0.0:
        return RepairedMesh(m, m, kind, tuple(warnings))
    hull = m.convex_hull
    if not hull.volume > 0.0:
        raise SceneInputError(f'{name}: mesh is flat or degenerate (convex hull volume {hull.volume:.3g} m^3)')
    warnings.append(f'{name}: mesh is not watertight (holes could not be filled); mass properties '
                    f'use its convex hull')
    return RepairedMesh(m, hull, 'hull', tuple(warnings))
