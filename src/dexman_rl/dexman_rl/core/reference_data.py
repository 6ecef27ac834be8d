"""Per-frame tensors of a reference artefact, in the layout the RL environment uses. ROS-free numpy.

:func:`prepare` turns a :class:`dexman_common.artefacts.reference.Reference` (read with
``reference.load(path)``; its docstring lists every array) into a :class:`ReferenceData`:

=====================  ==================  =========================================================
field                  shape               content
=====================  ==================  =========================================================
arm_q                  (T, 2, 7)           reference arm joints, ``robot_model.arm_joints(side)``
hand_q                 (T, 2, 22)          reference hand joints, ``hand_joints(side)`` (J0 included)
finger_q               (T, 2, 18)          the actuated ones, ``hand_actuated_joints(side)``
hand_active            (T, 2) bool         the hand had a wrist target (``ik_has_target``)
unreachable            (T, 2) bool         it had one the arm could not reach (``ik_reachable``)
object_pose            (T, O, 4, 4)        object targets ``T_world_object`` (after the repair below)
object_pos / _quat     (T, O, 3) / (T, O, 4)  the same as position and wxyz quaternion
prior_mask             (T, 2, 9, O) bool   contact prior P(t): (hand, keypoint k, object) pairs;
                                           k in ``CONTACT_IDS`` order (tips then MCPs)
prior_vertex           (T, 2, 9, O, 3)     the prior's vertex in the OBJECT frame (0 where masked)
rest_z                 (O,)                resting height of each object's origin (the settled
                                           placement, else the placed initial pose): ``lifted``
meshes                 {id: trimesh}       object meshes (object frame, m), as stored
table_z                float               height of the (horizontal) table top, m
=====================  ==================  =========================================================

Hands: 0 LEFT, 1 RIGHT. Bad input:

- non-finite joint positions or object poses, inconsistent shapes: ``ReferenceDataError`` (from the
  artefact's own validation);
- a missing or unreadable mesh, or one with no faces: ``ReferenceDataError``. A mesh that is not
  watertight is accepted: the scene builder (``dexman_sim.mesh_repair``) fills its holes or takes
  mass properties from its convex hull, and collision uses convex parts anyway;
- unreachable frames (``ik_reachable`` False): repaired by construction, because the environment
  takes the reference palm pose from the forward kinematics of the reference arm joints (the
  closest pose the retargeting found), not from ``wrist_targets``; more than
  ``max_unreachable_fraction`` of the frames of a hand is an error (the reference is not worth
  tracking), fewer are listed in ``warnings``;
- an object pose whose mesh reaches more than ``penetration_tolerance`` below the table top (e.g.
  a noisy video trajectory sinking into the table): that frame's pose is lifted by the depth
  (reported in ``warnings``), so that a reset to any frame starts without interpenetration;
- a table normal more than ``max_table_tilt_deg`` from +z: ``ReferenceDataError``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dexman_common.geometry import quat_from_matrix, vector_angle

SIDES = ('left', 'right')
N_KEYPOINTS = 9


class ReferenceDataError(ValueError):
    """A reference cannot be used for training; the message names the reference and the reason."""


@dataclasses.dataclass
class ReferenceData:
    reference_id: str
    frame_rate: float
    object_ids: list[str]
    arm_q: np.ndarray
    hand_q: np.ndarray
    finger_q: np.ndarray
    hand_active: np.ndarray
    unreachable: np.ndarray
    object_pose: np.ndarray
    object_pos: np.ndarray
    object_quat: np.ndarray
    prior_mask: np.ndarray
    prior_vertex: np.ndarray
    rest_z: np.ndarray
    meshes: dict
    table_z: float
    table_point: np.ndarray
    table_normal: np.ndarray
    warnings: list[str] = dataclasses.field(default_factory=list)
    demonstration_id: str = ''

    @property
    def n_frames(self) -> int:
        return int(self.arm_q.shape[0])

    @property
    def n_objects(self) -> int:
        return len(self.object_ids)

    def qpos_robot(self, model) -> np.ndarray:
        """(T, model.nq) the reference robot configuration in ``model``'s qpos layout (arm and hand
        joints of both sides; every other entry 0, free joints at the identity quaternion)."""
        import mujoco

        from dexman_description import robot_model as rm
        q = np.zeros((self.n_frames, model.nq))
        for jid in range(model.njnt):
            if model.jnt_type[jid] == mujoco.mjtJoint.mjJNT_FREE:
                q[:, model.jnt_qposadr[jid] + 3] = 1.0
        for h, s in enumerate(SIDES):
            for names, vals in ((rm.arm_joints(s), self.arm_q[:, h]), (rm.hand_joints(s), self.hand_q[:, h])):
                adr = [model.jnt_qposadr[model.joint(n).id] for n in names]
                q[:, adr] = vals
        return q


def _fail(ref, msg: str):
    raise ReferenceDataError(f'reference {getattr(ref, "reference_id", "?")}: {msg}')


def prepare(ref, *, max_unreachable_fraction: float = 0.5, penetration_tolerance: float = 1e-3,
            max_table_tilt_deg: float = 5.0) -> ReferenceData:
    """:class:`ReferenceData` of a loaded reference (see the module docstring for the checks)."""
    from dexman_common.artefacts.reference import ReferenceArtefactError
    from dexman_description import robot_model as rm
    from dexman_retarget.core.hand_keypoints import CONTACT_IDS

    try:
        ref.validate()
    except ReferenceArtefactError as e:
        raise ReferenceDataError(str(e)) from e
    T, O = ref.n_frames, len(ref.objects)
    if O < 1:
        _fail(ref, 'has no object to track')
    warnings: list[str] = []
    try:
        arm_q = np.stack([ref.positions_of(rm.arm_joints(s)) for s in SIDES], axis=1)
        hand_q = np.stack([ref.positions_of(rm.hand_joints(s)) for s in SIDES], axis=1)
        finger_q = np.stack([ref.positions_of(rm.hand_actuated_joints(s)) for s in SIDES], axis=1)
    except KeyError as e:
        _fail(ref, f'not a G1 + Shadow reference: {e}')
    hand_active = np.asarray(ref.ik_has_target, bool).T.copy()
    unreachable = np.asarray(ref.unreachable, bool).T.copy()
    for h, s in enumerate(SIDES):
        frac = unreachable[:, h].mean()
        if frac > max_unreachable_fraction:
            _fail(ref, f'the {s} wrist target is unreachable on {unreachable[:, h].sum()}/{T} frames '
                       f'(more than max_unreachable_fraction = {max_unreachable_fraction})')
        if unreachable[:, h].any():
            warnings.append(f'{s} wrist unreachable on {unreachable[:, h].sum()}/{T} frames: tracking the '
                            f'forward kinematics of the retargeted arm joints there')

    # table
    n = np.asarray(ref.table_normal, float)
    n = n / np.linalg.norm(n)
    tilt = np.degrees(vector_angle(n, (0.0, 0.0, 1.0)))
    if tilt > max_table_tilt_deg:
        _fail(ref, f'table normal {n.round(3).tolist()} is {tilt:.1f} deg from +z (max {max_table_tilt_deg})')
    table_z = float(ref.table_point[2])

    # meshes
    meshes = {}
    for o in ref.objects:
        try:
            mesh = ref.load_mesh(o.id)
        except Exception as e:  # noqa: BLE001 - missing file, parse error: all mean no mesh
            _fail(ref, f'mesh of object {o.id} cannot be read ({type(e).__name__}: {e})')
        if len(getattr(mesh, 'faces', ())) == 0 or not np.all(np.isfinite(mesh.vertices)):
            _fail(ref, f'mesh of object {o.id} is empty or has non-finite vertices')
        meshes[o.id] = mesh

    # object targets, lifted out of the table where they sink into it
    pose = np.transpose(np.asarray(ref.object_poses, float), (1, 0, 2, 3)).copy()     # (T, O, 4, 4)
    for i, o in enumerate(ref.objects):
        v = np.asarray(meshes[o.id].convex_hull.vertices, float)
        low = (pose[:, i, 2, :3] @ v.T).min(axis=1) + pose[:, i, 2, 3]                  # (T,)
        depth = table_z - low
        bad = depth > penetration_tolerance
        if bad.any():
            pose[bad, i, 2, 3] += depth[bad]
            warnings.append(f'object {o.id}: {int(bad.sum())}/{T} target poses reached up to '
                            f'{1e3 * depth.max():.1f} mm into the table; lifted onto it')
    object_pos = pose[..., :3, 3].copy()
    object_quat = quat_from_matrix(pose[..., :3, :3], scalar_first=True)   # wxyz

    # dense contact prior
    prior_mask = np.zeros((T, 2, N_KEYPOINTS, O), dtype=bool)
    prior_vertex = np.zeros((T, 2, N_KEYPOINTS, O, 3))
    kidx = {mano: k for k, mano in enumerate(CONTACT_IDS)}
    kp = np.asarray(ref.contact_keypoint, int)
    if kp.size and not np.all(np.isin(kp, list(kidx))):
        _fail(ref, f'contact keypoints {sorted(set(kp.tolist()) - set(kidx))} are not contact keypoints')
    order = np.argsort(-np.asarray(ref.contact_distance, float), kind='stable')   # nearest written last
    for c in order:
        t, h, o = int(ref.contact_frame[c]), int(ref.contact_hand[c]), int(ref.contact_object[c])
        v = np.asarray(ref.contact_vertex_object[c], float)
        if not np.all(np.isfinite(v)):
            continue
        k = kidx[int(kp[c])]
        prior_mask[t, h, k, o] = True
        prior_vertex[t, h, k, o] = v

    settled = np.asarray(ref.object_settled_poses, float)[:, 2, 3]
    rest_z = np.where(np.isfinite(settled), settled, pose[0, :, 2, 3])
    return ReferenceData(
        reference_id=ref.reference_id, demonstration_id=str(ref.demonstration_id), frame_rate=float(ref.frame_rate),
        object_ids=[o.id for o in ref.objects], arm_q=arm_q, hand_q=hand_q, finger_q=finger_q,
        hand_active=hand_active, unreachable=unreachable, object_pose=pose, object_pos=object_pos,
        object_quat=object_quat, prior_mask=prior_mask, prior_vertex=prior_vertex, rest_z=rest_z,
        meshes=meshes, table_z=table_z, table_point=np.asarray(ref.table_point, float),
        table_normal=n, warnings=warnings)


def load(path, **kwargs) -> ReferenceData:
    """``prepare(reference.load(path))``; every failure is a ReferenceDataError."""
    from dexman_common.artefacts import reference as refm
    try:
        ref = refm.load(path)
    except refm.ReferenceArtefactError as e:
        raise ReferenceDataError(str(e)) from e
    return prepare(ref, **kwargs)
