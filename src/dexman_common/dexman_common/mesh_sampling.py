"""Deterministic, even surface samples of a triangle mesh (points with their face normals).

Used by the pose metrics (ADD-S, VSD) and by the CPU pose refiner's model points.
"""
from __future__ import annotations

import math

import numpy as np

RENDER_MAX_POINTS = 300_000      # default cap on the number of samples

def sample_surface(vertices: np.ndarray, faces: np.ndarray, spacing: float,
                   max_points: int | None = RENDER_MAX_POINTS) -> tuple[np.ndarray, np.ndarray, float]:
    """Deterministic, even surface samples: (points (P,3), face normals (P,3), spacing used).

    Each triangle gets a lattice p = v0 + (i/k1) e1 + (j/k2) e2 (i/k1 + j/k2 ≤ 1), v0 the vertex
    opposite the longest edge, k = ceil(|e|/spacing), plus points every ≤ spacing along its three
    edges. Neighbouring samples are thus ≤ spacing apart along the lattice directions. When more
    than max_points would result, the spacing grows by sqrt(count/max_points) until it fits.
    Normals come from the face winding ((b − a) × (c − a)); zero-area faces are skipped."""
    V = np.asarray(vertices, np.float64).reshape(-1, 3)
    F = np.asarray(faces, np.int64).reshape(-1, 3)
    tri = V[F]                                                  # (T,3,3)
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area2 = np.linalg.norm(n, axis=1)
    keep = area2 > 1e-14
    tri, n, area2 = tri[keep], n[keep], area2[keep]
    if len(tri) == 0:
        raise ValueError('mesh has no non-degenerate triangle')
    n = n / area2[:, None]
    opp = np.stack([np.linalg.norm(tri[:, 1] - tri[:, 2], axis=1),
                    np.linalg.norm(tri[:, 2] - tri[:, 0], axis=1),
                    np.linalg.norm(tri[:, 0] - tri[:, 1], axis=1)], axis=1)
    a = np.argmax(opp, axis=1)
    rows = np.arange(len(tri))
    v0, v1, v2 = tri[rows, a], tri[rows, (a + 1) % 3], tri[rows, (a + 2) % 3]
    e1, e2 = v1 - v0, v2 - v0
    l1, l2 = np.linalg.norm(e1, axis=1), np.linalg.norm(e2, axis=1)
    edges = np.concatenate([opp[:, 0], opp[:, 1], opp[:, 2]])
    starts = np.concatenate([tri[:, 1], tri[:, 2], tri[:, 0]])
    ends = np.concatenate([tri[:, 2], tri[:, 0], tri[:, 1]])
    en = np.concatenate([n, n, n])

    def counts(s):
        k1 = np.maximum(1, np.ceil(l1 / s)).astype(np.int64)
        k2 = np.maximum(1, np.ceil(l2 / s)).astype(np.int64)
        m = np.maximum(1, np.ceil(edges / s)).astype(np.int64)
        return k1, k2, m

    def lattice(s):
        k1, k2, m = counts(s)
        # interior lattice, vectorised over triangles
        cnt = (k1 + 1) * (k2 + 1)
        t_idx = np.repeat(np.arange(len(tri)), cnt)
        local = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        i = local // (k2[t_idx] + 1)
        j = local % (k2[t_idx] + 1)
        a_, b_ = i / k1[t_idx], j / k2[t_idx]
        ok = a_ + b_ <= 1.0 + 1e-9
        t_idx, a_, b_ = t_idx[ok], a_[ok], b_[ok]
        pts = [v0[t_idx] + a_[:, None] * e1[t_idx] + b_[:, None] * e2[t_idx]]
        nrm = [n[t_idx]]
        # edges (b→c), (c→a), (a→b) of every triangle, m + 1 points each
        e_idx = np.repeat(np.arange(len(starts)), m + 1)
        local = np.arange(int((m + 1).sum())) - np.repeat(np.cumsum(m + 1) - (m + 1), m + 1)
        f = local / m[e_idx]
        pts.append(starts[e_idx] + f[:, None] * (ends[e_idx] - starts[e_idx]))
        nrm.append(en[e_idx])
        return np.concatenate(pts), np.concatenate(nrm)

    s = float(spacing)
    if not s > 0:
        raise ValueError(f'spacing must be > 0, got {spacing}')
    coarsest = float(max(l1.max(), l2.max(), edges.max()))   # every k = 1: fewest points possible
    if max_points is not None:
        while s < coarsest:   # cheap estimate first, so that no huge array is ever built
            k1, k2, m = counts(s)
            approx = int(np.sum((k1 + 1) * (k2 + 2)) // 2 + np.sum(m + 1))
            if approx <= max_points:
                break
            s = min(coarsest, s * math.sqrt(approx / max_points) * 1.01)
    while True:
        pts, nrm = lattice(s)
        if max_points is None or len(pts) <= max_points:
            return pts, nrm, s
        if s >= coarsest:
            # a mesh with more faces than max_points allows even at one lattice cell per face:
            # keep an evenly strided, deterministic subset
            keep = np.linspace(0, len(pts) - 1, max_points).round().astype(np.int64)
            return pts[keep], nrm[keep], s
        s = min(coarsest, s * math.sqrt(len(pts) / max_points) * 1.01)
