"""Mirror a (right) hand across its palm's sagittal plane to make a true left hand.

The mirror is the reflection ``M = diag(-1, 1, 1)`` in the Shadow palm frame, whose x axis runs
across the palm (thumb side = +x on the right hand), y is the back-of-hand direction (the palm
faces -y) and z points along the fingers. The plane x = 0 holds the finger direction and the palm
normal: the hand's sagittal plane.

What is mirrored, for every element below (and excluding) the attached root body:

- positions (body, inertial, geom, site, joint anchor): ``p -> M p``;
- orientations (body, inertial frame, geom, site): ``R -> M R M``, i.e. the quaternion
  ``(w, x, y, z) -> (w, x, -y, -z)`` (the principal inertias are unchanged);
- mesh vertices: the mesh scale's x component is negated (``scale -> (-sx, sy, sz)``); MuJoCo
  flips the face winding of such a mesh, so volumes and inertias stay positive;
- hinge axes as pseudo-vectors: ``a -> det(M) M a = (ax, -ay, -az)``. With this choice a joint
  angle q on the left hand gives exactly the mirror image of the right hand at the same q, so
  joint ranges, actuator control ranges, the coupling tendons and any joint-space policy are
  shared unchanged between the hands. (The equivalent "polar" convention ``a -> M a`` negates
  the angle: it would need every range swapped in sign, ``[lo, hi] -> [-hi, -lo]``, and the
  tendon coefficients negated; we do not use it.)

Primitive geoms (boxes, capsules, spheres, cylinders, ellipsoids) are symmetric in their own
frames, so moving their frames is enough.
"""
from __future__ import annotations

import numpy as np

from dexman_common.geometry import matrix_from_quat, quat_from_matrix

REFLECTION = np.diag([-1.0, 1.0, 1.0])


def mirror_pos(p) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.array([-p[0], p[1], p[2]])


def mirror_quat(q) -> np.ndarray:
    """Quaternion (w, x, y, z) of ``M R M`` for the rotation R of q."""
    q = np.asarray(q, dtype=float)
    return np.array([q[0], q[1], -q[2], -q[3]])


def mirror_axis(a) -> np.ndarray:
    """Hinge axis of the mirrored joint, same angle convention (pseudo-vector)."""
    a = np.asarray(a, dtype=float)
    return np.array([a[0], -a[1], -a[2]])


def mirror_scale(s) -> np.ndarray:
    s = np.asarray(s, dtype=float)
    return np.array([-s[0], s[1], s[2]])


def quat_to_mat(q) -> np.ndarray:
    """Rotation matrix of a MuJoCo quaternion (w, x, y, z), any norm > 0."""
    return matrix_from_quat(q, scalar_first=True)


def mat_to_quat(R) -> np.ndarray:
    """Quaternion (w, x, y, z), w >= 0, of a rotation matrix."""
    return quat_from_matrix(R, scalar_first=True)


def _resolve(spec, elem, attr='alt', quat_attr='quat'):
    """Turn an element's alternative orientation (euler, axisangle, ...) into its quaternion."""
    import mujoco
    alt = getattr(elem, attr)
    if alt.type != mujoco.mjtOrientation.mjORIENTATION_QUAT:
        q = spec.resolve_orientation(spec.compiler.degree, spec.compiler.eulerseq, alt)
        setattr(elem, quat_attr, np.asarray(q, dtype=float))
        alt.type = mujoco.mjtOrientation.mjORIENTATION_QUAT


def mirror_subtree(spec, root) -> dict:
    """Mirror, in place, every body, inertial, joint, geom and site strictly below ``root``
    (and the geoms/sites/joints of ``root`` itself, whose frame stays put), plus the meshes they
    use. Returns counts of what was changed, for the build manifest."""
    import mujoco
    counts = {'bodies': 0, 'joints': 0, 'geoms': 0, 'sites': 0, 'meshes': 0}
    meshes = set()

    def do_elements(body):
        for j in body.joints:
            if j.type not in (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE):
                raise ValueError(f'cannot mirror joint {j.name!r} of type {j.type}')
            j.pos = mirror_pos(j.pos)
            # hinge axes are pseudo-vectors (same angle); slide axes polar vectors (same q too)
            j.axis = mirror_axis(j.axis) if j.type == mujoco.mjtJoint.mjJNT_HINGE else mirror_pos(j.axis)
            counts['joints'] += 1
        for g in body.geoms:
            if not np.isnan(g.fromto[0]):
                raise ValueError(f'geom {g.name!r} uses fromto: not supported by the mirror')
            _resolve(spec, g)
            g.pos = mirror_pos(g.pos)
            g.quat = mirror_quat(g.quat)
            if g.type == mujoco.mjtGeom.mjGEOM_MESH:
                meshes.add(g.meshname)
            elif g.type not in (mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_CAPSULE,
                                mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_CYLINDER,
                                mujoco.mjtGeom.mjGEOM_ELLIPSOID):
                raise ValueError(f'geom {g.name!r} of type {g.type} is not mirror-symmetric')
            counts['geoms'] += 1
        for s in body.sites:
            _resolve(spec, s)
            s.pos = mirror_pos(s.pos)
            s.quat = mirror_quat(s.quat)
            counts['sites'] += 1
        if body.frames:
            raise ValueError(f'body {body.name!r} has frames: not supported by the mirror')

    def walk(body, is_root):
        if not is_root:
            _resolve(spec, body)
            body.pos = mirror_pos(body.pos)
            body.quat = mirror_quat(body.quat)
            counts['bodies'] += 1
        if body.explicitinertial:
            if not np.isnan(body.fullinertia[0]):
                raise ValueError(f'body {body.name!r} uses fullinertia: not supported')
            _resolve(spec, body, 'ialt', 'iquat')
            body.ipos = mirror_pos(body.ipos)
            body.iquat = mirror_quat(body.iquat)
        do_elements(body)
        for child in body.bodies:
            walk(child, False)

    walk(root, True)
    for name in sorted(meshes):
        m = spec.mesh(name)
        m.scale = mirror_scale(m.scale)
        counts['meshes'] += 1
    return counts
