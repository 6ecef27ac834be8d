"""Target-object shape families as metric, watertight trimesh meshes, randomised per seed.

Object frame: origin at the centre of the bottom (support) face, z up when the object rests on the
table, metres. Families: box, cylinder (can or bottle), mug (with handle), bowl, tool (handle +
head, or a long bar for two hands), slab (book-like). Each family has three size classes:
'hand' (one-hand tasks), 'tall' (hand-over: room for two hands) and 'large' (two-hand lift).

The mug and the tool are two closed components (body + handle, handle + head) whose ends overlap
by a few millimetres: every edge is shared by exactly two faces (trimesh reports them watertight),
but the union is not merged (no boolean engine in this environment).
"""
from __future__ import annotations

import colorsys
import dataclasses

import numpy as np
import trimesh

SHAPES = ('box', 'cylinder', 'mug', 'bowl', 'tool', 'slab')
SIZE_CLASSES = ('hand', 'tall', 'large')
SYMMETRY = {'box': 'box', 'cylinder': 'z_axial', 'mug': 'none', 'bowl': 'z_axial', 'tool': 'none',
            'slab': 'box'}
DENSITY = {'box': 300.0, 'cylinder': 600.0, 'mug': 1500.0, 'bowl': 1500.0, 'tool': 700.0,
           'slab': 600.0}
SECTIONS = 64


@dataclasses.dataclass
class ObjectModel:
    shape: str
    label: str
    mesh: trimesh.Trimesh
    rgba: tuple[float, float, float, float]
    symmetry: str
    mass: float
    params: dict            # family parameters used by the grasp planner (metres)

    @property
    def extents(self) -> tuple[float, float, float]:
        return tuple(float(e) for e in self.mesh.extents)


def _revolve(profile) -> trimesh.Trimesh:
    """Closed solid from an (r, z) profile that starts and ends on the axis (r = 0)."""
    m = trimesh.creation.revolve(_densify(profile, 0.02), sections=SECTIONS)
    m.merge_vertices()
    if m.volume < 0:
        m.invert()
    return m


def _densify(profile, max_len: float) -> np.ndarray:
    """Insert points on long profile segments (keeps revolved triangles reasonably shaped)."""
    p = np.asarray(profile, float)
    out = [p[0]]
    for a, b in zip(p[:-1], p[1:]):
        n = int(np.ceil(np.linalg.norm(b - a) / max_len))
        for t in np.arange(1, n + 1) / n:
            out.append(a + (b - a) * t)
    return np.array(out)


def _box(ex, ey, ez) -> trimesh.Trimesh:
    m = trimesh.creation.box((ex, ey, ez))
    m.apply_translation((0, 0, ez / 2))
    return m


def _tube_arc(center, radius, tube_r, a0, a1, n=24, nc=16) -> trimesh.Trimesh:
    """Closed tube of radius tube_r along a circular arc in the x-z plane (the mug handle)."""
    cx, cz = center
    verts, faces = [], []
    angles = np.linspace(a0, a1, n)
    phi = np.linspace(0, 2 * np.pi, nc, endpoint=False)
    for a in angles:
        c = np.array([cx + radius * np.cos(a), 0.0, cz + radius * np.sin(a)])
        radial = np.array([np.cos(a), 0.0, np.sin(a)])
        for p in phi:
            verts.append(c + tube_r * (np.cos(p) * radial + np.sin(p) * np.array([0, 1.0, 0])))
    for i in range(n - 1):
        for j in range(nc):
            a, b = i * nc + j, i * nc + (j + 1) % nc
            c, d = a + nc, b + nc
            faces += [[a, b, d], [a, d, c]]
    # caps (fans around an end-centre vertex)
    for end, sign in ((0, -1), (n - 1, 1)):
        a = angles[end]
        verts.append([cx + radius * np.cos(a), 0.0, cz + radius * np.sin(a)])
        ci = len(verts) - 1
        for j in range(nc):
            u, v = end * nc + j, end * nc + (j + 1) % nc
            faces.append([ci, v, u] if sign < 0 else [ci, u, v])
    m = trimesh.Trimesh(np.array(verts), np.array(faces), process=True)
    if m.volume < 0:
        m.invert()
    return m


def _colour(rng, saturated=True) -> tuple[float, float, float, float]:
    h = rng.random()
    s = rng.uniform(0.45, 0.85) if saturated else rng.uniform(0.1, 0.4)
    v = rng.uniform(0.45, 0.9)
    return (*colorsys.hsv_to_rgb(h, s, v), 1.0)


def make_object(shape: str, size: str, rng: np.random.Generator) -> ObjectModel:
    if shape not in SHAPES:
        raise ValueError(f'unknown object shape {shape!r} (choose from {", ".join(SHAPES)})')
    if size not in SIZE_CLASSES:
        raise ValueError(f'unknown size class {size!r}')
    u = rng.uniform
    params: dict = {}
    if shape == 'box':
        if size == 'large':
            ex, ey, ez = u(0.24, 0.32), u(0.16, 0.22), u(0.10, 0.16)
        else:
            ex, ey = u(0.055, 0.075), u(0.06, 0.085)
            ez = u(0.19, 0.22) if size == 'tall' else u(0.12, 0.16)
        mesh = _box(ex, ey, ez)
        label = 'box'
        params = dict(extents=(ex, ey, ez))
    elif shape == 'cylinder':
        if size == 'large':
            r, h = u(0.085, 0.11), u(0.12, 0.18)
            bottle = False
        else:
            r = u(0.029, 0.038)
            h = u(0.19, 0.24) if size == 'tall' else u(0.13, 0.22)
            bottle = bool(rng.random() < 0.6)
        bev = min(0.004, r * 0.1)
        if bottle:
            neck_r, shoulder = u(0.011, 0.014), u(0.55, 0.65) * h
            top = h - u(0.05, 0.07)
            prof = [(0, 0), (r - bev, 0), (r, bev), (r, shoulder)]
            for t in np.linspace(0.15, 1.0, 8):                   # rounded shoulder
                prof.append((neck_r + (r - neck_r) * np.cos(t * np.pi / 2),
                             shoulder + (top - shoulder) * np.sin(t * np.pi / 2)))
            prof += [(neck_r, h - 0.003), (neck_r - 0.002, h), (0, h)]
            label = 'bottle'
        else:
            prof = [(0, 0), (r - bev, 0), (r, bev), (r, h - bev), (r - bev, h), (0, h)]
            label = 'pot' if size == 'large' else 'can'
        mesh = _revolve(prof)
        params = dict(radius=r, height=h, grip_height=(0.3 if bottle else 0.5) * h)
    elif shape == 'mug':
        if size == 'large':
            r, h, t = u(0.065, 0.08), u(0.15, 0.19), 0.006
            label = 'pitcher'
        elif size == 'tall':
            r, h, t = u(0.036, 0.042), u(0.15, 0.17), u(0.004, 0.005)
            label = 'tall mug'
        else:
            r, h, t = u(0.036, 0.043), u(0.085, 0.11), u(0.004, 0.005)
            label = 'mug'
        tb = 0.008
        body = _revolve([(0, 0), (r, 0), (r, h), (r - t, h), (r - t, tb), (0, tb)])
        hr, tr = 0.35 * h, 0.0065 * (1.4 if size == 'large' else 1.0)
        # a C-shaped arc on the +x side whose ends sink 2 mm into the wall
        handle = _tube_arc((0.0, 0.5 * h), hr * 0.9, tr, -np.deg2rad(75), np.deg2rad(75))
        handle.apply_translation((r - 0.002 - handle.vertices[:, 0].min(), 0, 0))
        mesh = trimesh.util.concatenate([body, handle])
        params = dict(radius=r, height=h, wall=t, handle_reach=float(mesh.bounds[1][0] - r))
    elif shape == 'bowl':
        if size == 'large':
            R, h, t = u(0.11, 0.13), u(0.08, 0.10), 0.006
        else:
            R, h, t = u(0.065, 0.08), u(0.05, 0.065), 0.005
        foot = 0.55 * R
        prof = [(0, 0), (foot, 0), (foot, 0.006)]
        for s in np.linspace(0.0, 1.0, 10)[1:]:                # outer wall, convex
            prof.append((foot + (R - foot) * np.sin(s * np.pi / 2), 0.006 + (h - 0.006) * (1 - np.cos(s * np.pi / 2)) ** 0.8))
        prof.append((R - t, h))
        for s in np.linspace(1.0, 0.0, 10)[1:-1]:              # inner wall
            prof.append(((R - t) * np.sin(s * np.pi / 2),
                         t + 0.006 + (h - t - 0.006) * (1 - np.cos(s * np.pi / 2)) ** 0.8))
        prof.append((0, t + 0.006))
        mesh = _revolve(prof)
        label = 'bowl'
        params = dict(radius=R, height=h, wall=t)
    elif shape == 'tool':
        if size == 'large':
            L, r = u(0.42, 0.52), u(0.016, 0.019)
            mesh = trimesh.creation.cylinder(radius=r, height=L, sections=SECTIONS)
            mesh.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0)))
            mesh.apply_translation((0, 0, r))
            label = 'bar'
            params = dict(handle_length=L, handle_radius=r, handle_center=0.0, head=None)
        else:
            Lh, r = u(0.14, 0.18), u(0.013, 0.016)
            hl, hw, ht = u(0.05, 0.07), u(0.04, 0.055), u(0.022, 0.032)
            handle = trimesh.creation.cylinder(radius=r, height=Lh + 0.004, sections=SECTIONS)
            handle.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0)))
            handle.apply_translation((-(Lh + 0.004) / 2 + 0.004, 0, r))    # x in [-Lh, 0.004]
            head = _box(hl, hw, ht)
            head.apply_translation((hl / 2, 0, 0))                         # x in [0, hl]
            mesh = trimesh.util.concatenate([handle, head])
            cx = (mesh.bounds[0][0] + mesh.bounds[1][0]) / 2
            mesh.apply_translation((-cx, 0, 0))
            label = 'hammer' if ht > 0.027 else 'brush'
            params = dict(handle_length=Lh, handle_radius=r, handle_center=-Lh / 2 - cx,
                          head=(hl / 2 - cx, hl, hw, ht))
    else:  # slab
        if size == 'large':
            ex, ey, ez = u(0.25, 0.30), u(0.18, 0.22), u(0.03, 0.045)
        elif size == 'tall':
            ex, ey, ez = u(0.22, 0.26), u(0.08, 0.095), u(0.022, 0.032)
        else:
            ex, ey, ez = u(0.14, 0.18), u(0.08, 0.095), u(0.022, 0.032)
        mesh = _box(ex, ey, ez)
        label = 'book'
        params = dict(extents=(ex, ey, ez))
    mesh.apply_translation((0, 0, -mesh.bounds[0][2]))          # rests exactly on z = 0
    rgba = _colour(rng)
    mass = float(abs(mesh.volume) * DENSITY[shape])
    return ObjectModel(shape, label, mesh, rgba, SYMMETRY[shape], mass, params)

