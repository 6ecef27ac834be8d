"""Exact point-to-mesh distances without rtree/embree (numpy + scipy only).

trimesh.proximity needs the optional `rtree` package, which this environment does not ship, so the
generator (grasp closure) and the tests use this module. Distances are exact (closest point on
each candidate triangle, Ericson's region test); candidate triangles are culled with axis-aligned
boxes, which is conservative, so culling never changes the result.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest points to p on triangles (a, b, c); all arrays broadcast to (..., 3)."""
    p, a, b, c = np.broadcast_arrays(p, a, b, c)
    ab, ac, ap = b - a, c - a, p - a
    d1 = np.einsum('...i,...i->...', ab, ap)
    d2 = np.einsum('...i,...i->...', ac, ap)
    bp = p - b
    d3 = np.einsum('...i,...i->...', ab, bp)
    d4 = np.einsum('...i,...i->...', ac, bp)
    cp = p - c
    d5 = np.einsum('...i,...i->...', ab, cp)
    d6 = np.einsum('...i,...i->...', ac, cp)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    with np.errstate(divide='ignore', invalid='ignore'):
        denom = va + vb + vc
        v = np.where(denom != 0, vb / denom, 0.0)
        w = np.where(denom != 0, vc / denom, 0.0)
        res = a + ab * v[..., None] + ac * w[..., None]          # inside the face
        # edges
        t_ab = np.where((d1 - d3) != 0, d1 / (d1 - d3), 0.0)
        t_ac = np.where((d2 - d6) != 0, d2 / (d2 - d6), 0.0)
        t_bc = np.where(((d4 - d3) + (d5 - d6)) != 0, (d4 - d3) / ((d4 - d3) + (d5 - d6)), 0.0)
    m_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    res = np.where(m_bc[..., None], b + (c - b) * t_bc[..., None], res)
    m_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    res = np.where(m_ac[..., None], a + ac * t_ac[..., None], res)
    m_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    res = np.where(m_ab[..., None], a + ab * t_ab[..., None], res)
    # vertices (checked last so they win)
    m_c = (d6 >= 0) & (d5 <= d6)
    res = np.where(m_c[..., None], c, res)
    m_b = (d3 >= 0) & (d4 <= d3)
    res = np.where(m_b[..., None], b, res)
    m_a = (d1 <= 0) & (d2 <= 0)
    res = np.where(m_a[..., None], a, res)
    return res


class MeshQuery:
    """Distance queries against one triangle mesh (vertices (V, 3), faces (F, 3))."""

    def __init__(self, vertices: np.ndarray, faces: np.ndarray):
        self.vertices = np.asarray(vertices, float)
        self.faces = np.asarray(faces, np.int64)
        self.tri = self.vertices[self.faces]               # (F, 3, 3)
        self.tmin = self.tri.min(axis=1)
        self.tmax = self.tri.max(axis=1)
        self._vtree = cKDTree(self.vertices)

    @classmethod
    def from_trimesh(cls, mesh) -> 'MeshQuery':
        return cls(mesh.vertices, mesh.faces)

    def _candidates(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        keep = np.all(self.tmax >= lo, axis=1) & np.all(self.tmin <= hi, axis=1)
        return np.nonzero(keep)[0]

    def min_distance(self, points: np.ndarray, within: float) -> float:
        """Smallest distance from `points` (P, 3) to the surface, or inf if all are farther than
        `within` (only triangles that can be closer than `within` are examined)."""
        points = np.asarray(points, float).reshape(-1, 3)
        idx = self._candidates(points.min(0) - within, points.max(0) + within)
        if idx.size == 0:
            return np.inf
        tri = self.tri[idx]
        best = np.inf
        for s in range(0, len(points), 64):
            p = points[s:s + 64, None, :]
            q = closest_on_triangles(p, tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])
            best = min(best, float(np.sqrt(((q - p) ** 2).sum(-1)).min()))
        return best if best <= within else np.inf

    def distance(self, points: np.ndarray, chunk: int = 96) -> np.ndarray:
        """Exact unsigned distance from each point (P, 3) to the surface."""
        points = np.asarray(points, float).reshape(-1, 3)
        out = np.empty(len(points))
        if len(points) == 0:
            return out
        # spatially coherent chunks: sort by a coarse voxel key
        key = np.floor(points / 0.02).astype(np.int64)
        order = np.lexsort((key[:, 2], key[:, 1], key[:, 0]))
        ub, _ = self._vtree.query(points)                  # distance to nearest vertex >= exact
        for s in range(0, len(points), chunk):
            sel = order[s:s + chunk]
            p = points[sel]
            r = ub[sel].max() + 1e-9
            idx = self._candidates(p.min(0) - r, p.max(0) + r)
            tri = self.tri[idx]
            best = np.full(len(sel), np.inf)
            for f in range(0, len(idx), 2048):
                t = tri[f:f + 2048]
                q = closest_on_triangles(p[:, None, :], t[None, :, 0], t[None, :, 1], t[None, :, 2])
                best = np.minimum(best, np.sqrt(((q - p[:, None, :]) ** 2).sum(-1)).min(1))
            out[sel] = best
        return out

    def min_clearance(self, centres: np.ndarray, radii: np.ndarray, within: float) -> float:
        """min_i (distance(centre_i, surface) - radius_i), exact whenever it is below `within`;
        otherwise some value >= `within` (inf when no triangle is that close)."""
        centres = np.asarray(centres, float).reshape(-1, 3)
        radii = np.broadcast_to(np.asarray(radii, float), (len(centres),))
        best = np.inf
        for s in range(0, len(centres), 32):
            c, r = centres[s:s + 32], radii[s:s + 32]
            pad = within + float(r.max())
            idx = self._candidates(c.min(0) - pad, c.max(0) + pad)
            if idx.size == 0:
                continue
            tri = self.tri[idx]
            q = closest_on_triangles(c[:, None, :], tri[None, :, 0], tri[None, :, 1], tri[None, :, 2])
            d = np.sqrt(((q - c[:, None, :]) ** 2).sum(-1)).min(1) - r
            best = min(best, float(d.min()))
        return best
