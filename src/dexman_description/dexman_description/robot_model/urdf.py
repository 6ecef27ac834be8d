"""Write a URDF (for robot_description / RViz) of a compiled MuJoCo model.

One URDF link per MuJoCo body, with the same name and the same frame; a MuJoCo hinge becomes a
revolute joint of the same name, a body without joints a fixed joint named ``<child>_fixed``;
a ``world`` link carries the fixed pelvis. Joint origins are the bodies' poses in their parents,
axes and limits the MuJoCo ones.

Geometry: geoms with contype = conaffinity = 0 become ``<visual>``, the others ``<collision>``.
URDF has no capsule: a capsule is written as a cylinder plus two end spheres. Meshes are
referenced as ``file://`` absolute paths with the MJCF scale, placed at the geom's authored frame
(MuJoCo re-centres meshes at compile time; that offset is undone here). URDF consumers
(RViz/Ogre, most collision checkers) do not handle a negative scale (it turns the mesh inside
out), so each mesh with a mirroring scale is written as an STL whose vertices are already
scaled and mirrored and whose faces have their winding reversed (``<mesh>`` scale 1).

Velocity limits are not in the MJCF sources: every revolute joint states ``VELOCITY_LIMIT``
(a placeholder, not enforced anywhere). Effort limits come from the joint's actuator force
range, else ``DEFAULT_EFFORT``.
"""
from __future__ import annotations

import math
import os
import pathlib
import xml.etree.ElementTree as ET

import numpy as np

from .mirror import quat_to_mat

VELOCITY_LIMIT = 10.0   # rad/s, placeholder
DEFAULT_EFFORT = 1.0    # N m, joints without an actuator (the coupled distal finger joints)


def _f(x: float) -> str:
    x = float(x)
    return '0' if abs(x) < 1e-12 else f'{x:.12g}'


def _vec(v) -> str:
    return ' '.join(_f(x) for x in v)


def mat_to_rpy(R) -> np.ndarray:
    """URDF roll-pitch-yaw (R = Rz(yaw) Ry(pitch) Rx(roll)), robust at pitch = +-90 deg."""
    R = np.asarray(R, dtype=float)
    cp = math.hypot(R[0, 0], R[1, 0])
    if cp > 1e-9:
        return np.array([math.atan2(R[2, 1], R[2, 2]), math.atan2(-R[2, 0], cp),
                         math.atan2(R[1, 0], R[0, 0])])
    # gimbal lock: only yaw - roll (pitch = +90) or yaw + roll (pitch = -90) is defined; roll = 0
    pitch = math.copysign(math.pi / 2, -R[2, 0])
    return np.array([0.0, pitch, math.atan2(-R[0, 1], R[1, 1])])


def rpy_to_mat(rpy) -> np.ndarray:
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    Rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    Ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    Rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def _origin(parent: ET.Element, pos, R) -> None:
    ET.SubElement(parent, 'origin', xyz=_vec(pos), rpy=_vec(mat_to_rpy(R)))


def write_mirrored_stl(src: str, scale, dst: str | pathlib.Path) -> None:
    """STL of ``src`` with its vertices multiplied by ``scale`` (which has an odd number of
    negative components) and the face winding reversed, so the normals point outwards again."""
    import trimesh
    mesh = trimesh.load(src, force='mesh', process=False)
    v = np.asarray(mesh.vertices, dtype=float) * np.asarray(scale, dtype=float)
    f = np.asarray(mesh.faces)[:, ::-1]
    out = trimesh.Trimesh(vertices=v, faces=f, process=False)
    out.export(str(dst), file_type='stl')


def write_urdf(model, mesh_files: dict, path, mesh_dir, final_mesh_dir) -> list[str]:
    """Write the URDF of ``model`` to ``path``.

    mesh_files: MuJoCo mesh name -> (absolute source file, scale) as in the MJCF.
    mesh_dir: where mirrored STLs are written now; final_mesh_dir: where they will live when the
    URDF is read (the build writes into a temporary folder that is renamed afterwards).
    Returns the names of the mirrored STL files written."""
    import mujoco
    mesh_dir = pathlib.Path(mesh_dir)
    final_mesh_dir = pathlib.Path(final_mesh_dir)
    written = []
    mesh_uri = {}
    for name, (src, scale) in mesh_files.items():
        scale = np.asarray(scale, dtype=float)
        if np.prod(np.sign(scale)) < 0:
            mesh_dir.mkdir(parents=True, exist_ok=True)
            fname = f'{name}.stl'
            write_mirrored_stl(src, scale, mesh_dir / fname)
            written.append(fname)
            mesh_uri[name] = ('file://' + str(final_mesh_dir / fname), np.ones(3))
        else:
            mesh_uri[name] = ('file://' + os.path.abspath(src), scale)

    robot = ET.Element('robot', name=bytes(model.names).split(b'\0', 1)[0].decode() or 'robot')
    # materials, one per colour
    colours = {}

    def material_of(g):
        rgba = model.mat_rgba[model.geom_matid[g]] if model.geom_matid[g] >= 0 else model.geom_rgba[g]
        key = tuple(float(c) for c in np.round(rgba, 4))
        if key not in colours:
            colours[key] = f'color_{len(colours)}'
        return colours[key]

    ET.SubElement(robot, 'link', name='world')
    links = []
    for b in range(1, model.nbody):
        bname = model.body(b).name
        link = ET.Element('link', name=bname)
        if model.body_mass[b] > 0:
            inertial = ET.SubElement(link, 'inertial')
            _origin(inertial, model.body_ipos[b], quat_to_mat(model.body_iquat[b]))
            ET.SubElement(inertial, 'mass', value=_f(model.body_mass[b]))
            I = model.body_inertia[b]
            ET.SubElement(inertial, 'inertia', ixx=_f(I[0]), ixy='0', ixz='0', iyy=_f(I[1]),
                          iyz='0', izz=_f(I[2]))
        for g in range(model.body_geomadr[b], model.body_geomadr[b] + model.body_geomnum[b]):
            _add_geom(model, g, link, mesh_uri, material_of)
        links.append(link)

        parent = model.body_parentid[b]
        pname = 'world' if parent == 0 else model.body(parent).name
        njnt = model.body_jntnum[b]
        if njnt == 0:
            joint = ET.Element('joint', name=f'{bname}_fixed', type='fixed')
        elif njnt == 1 and model.jnt_type[model.body_jntadr[b]] == mujoco.mjtJoint.mjJNT_HINGE:
            j = model.body_jntadr[b]
            if np.linalg.norm(model.jnt_pos[j]) > 1e-12:
                raise ValueError(f'joint {model.joint(j).name!r} is not at its body origin: '
                                 'the URDF writer needs link frame = joint frame')
            limited = bool(model.jnt_limited[j])
            joint = ET.Element('joint', name=model.joint(j).name,
                               type='revolute' if limited else 'continuous')
        else:
            raise ValueError(f'body {bname!r}: only hinge or no joint per body is supported')
        ET.SubElement(joint, 'parent', link=pname)
        ET.SubElement(joint, 'child', link=bname)
        _origin(joint, model.body_pos[b], quat_to_mat(model.body_quat[b]))
        if njnt == 1:
            ET.SubElement(joint, 'axis', xyz=_vec(model.jnt_axis[j]))
            lim = {'effort': _f(_effort(model, j)), 'velocity': _f(VELOCITY_LIMIT)}
            if model.jnt_limited[j]:
                lim.update(lower=_f(model.jnt_range[j][0]), upper=_f(model.jnt_range[j][1]))
            ET.SubElement(joint, 'limit', **lim)
        links.append(joint)

    for rgba, name in colours.items():
        mat = ET.SubElement(robot, 'material', name=name)
        ET.SubElement(mat, 'color', rgba=_vec(rgba))
    robot.extend(links)
    ET.indent(robot, space='  ')
    header = ('<?xml version="1.0"?>\n<!-- Generated by dexman_description.robot_model from the '
              'installed asset packages (see manifest.json). Do not edit. -->\n')
    pathlib.Path(path).write_text(header + ET.tostring(robot, encoding='unicode') + '\n')
    return written


def _effort(model, j) -> float:
    if model.jnt_actfrclimited[j]:
        return float(np.max(np.abs(model.jnt_actfrcrange[j])))
    for a in range(model.nu):
        if model.actuator_trntype[a] == 0 and model.actuator_trnid[a][0] == j and model.actuator_forcelimited[a]:
            return float(np.max(np.abs(model.actuator_forcerange[a])))
    return DEFAULT_EFFORT


def _add_geom(model, g, link, mesh_uri, material_of) -> None:
    import mujoco
    visual = model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0
    tag = 'visual' if visual else 'collision'
    gtype = model.geom_type[g]
    pos = np.array(model.geom_pos[g], dtype=float)
    R = quat_to_mat(model.geom_quat[g])
    size = model.geom_size[g]
    gname = model.geom(g).name

    def element(p, Rm, suffix=''):
        el = ET.SubElement(link, tag, **({'name': gname + suffix} if gname else {}))
        _origin(el, p, Rm)
        geo = ET.SubElement(el, 'geometry')
        if visual:
            ET.SubElement(el, 'material', name=material_of(g))
        return geo

    if gtype == mujoco.mjtGeom.mjGEOM_MESH:
        mid = model.geom_dataid[g]
        # compiled geom frame = authored frame * (mesh_pos, mesh_quat): undo the re-centring
        Rm = quat_to_mat(model.mesh_quat[mid])
        R0 = R @ Rm.T
        p0 = pos - R0 @ model.mesh_pos[mid]
        uri, scale = mesh_uri[model.mesh(mid).name]
        attrs = {'filename': uri}
        if not np.allclose(scale, 1.0):
            attrs['scale'] = _vec(scale)
        ET.SubElement(element(p0, R0), 'mesh', **attrs)
    elif gtype == mujoco.mjtGeom.mjGEOM_BOX:
        ET.SubElement(element(pos, R), 'box', size=_vec(2 * size))
    elif gtype == mujoco.mjtGeom.mjGEOM_SPHERE:
        ET.SubElement(element(pos, R), 'sphere', radius=_f(size[0]))
    elif gtype == mujoco.mjtGeom.mjGEOM_CYLINDER:
        ET.SubElement(element(pos, R), 'cylinder', radius=_f(size[0]), length=_f(2 * size[1]))
    elif gtype == mujoco.mjtGeom.mjGEOM_CAPSULE:
        ET.SubElement(element(pos, R), 'cylinder', radius=_f(size[0]), length=_f(2 * size[1]))
        for i, s in enumerate((-1.0, 1.0)):
            ET.SubElement(element(pos + R @ np.array([0, 0, s * size[1]]), R, f'_end{i}'), 'sphere',
                          radius=_f(size[0]))
    # planes, ellipsoids, height fields: none on this robot; not representable in plain URDF
