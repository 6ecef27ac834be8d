"""The 9 robot contact keypoints per hand and their outward surface normals (paper 3.4, n_rob). ROS-free.

Keypoints, in the order of ``dexman_retarget.core.hand_keypoints.CONTACT_IDS`` (MANO 4, 8, 12,
16, 20, 5, 9, 13, 17): the 5 fingertip sites ``S_thtip, S_fftip, S_mftip, S_rftip, S_lftip`` and
the 4 knuckle bodies ``ffknuckle, mfknuckle, rfknuckle, lfknuckle`` (the MCP joint centres),
exactly the Shadow keypoints :data:`~dexman_retarget.core.hand_keypoints.SHADOW_KEYPOINTS` maps to
those MANO indices, prefixed ``lh_`` / ``rh_``.

Outward normal n_rob (the paper does not define it; our definition, computed once from the model
at the zero pose and then FIXED in the frame of the body that carries the keypoint, so it turns
with that segment):

- fingertip: the direction in which the tip site moves when the finger's DISTAL joint flexes
  (J0 for the four fingers, THJ0 for the thumb; flexion = the side of the joint range with the
  larger magnitude: + for J0 in [0, 1.571], - for THJ0 in [-1.571, 0]), i.e. the direction of the
  finger pad; for the fingers at the zero pose it is the palm normal.
- MCP (knuckle): the palm normal on the palmar side, ``-y`` of the ``{lh,rh}_palm`` body (its y
  axis points out of the back of the hand for both hands), expressed in the knuckle body frame
  (which turns with the abduction J3 and, for the little finger, the metacarpal LFJ4).

World positions and normals come from the bodies' ``xpos``/``xmat`` and the sites' ``site_xpos`` of
N MjData, stacked by the caller (:meth:`ContactKeypoints.compute`), vectorised over envs.
"""
from __future__ import annotations

import numpy as np

SIDES = ('left', 'right')
N_KEYPOINTS = 9


def _contact_names() -> list[tuple[str, str]]:
    from dexman_retarget.core.hand_keypoints import CONTACT_IDS, SHADOW_KEYPOINTS
    return [SHADOW_KEYPOINTS[i] for i in CONTACT_IDS]


class ContactKeypoints:
    """Ids and local normals of the contact keypoints of both hands in ``model``.

    Attributes: ``kinds`` (9,) 'site'/'body'; ``ids`` (2, 9) site or body id per keypoint;
    ``frame_body`` (2, 9) the body carrying each keypoint; ``normal_local`` (2, 9, 3) unit normals
    in those body frames.
    """

    def __init__(self, model):
        import mujoco

        from dexman_description import robot_model as rm
        names = _contact_names()
        if len(names) != N_KEYPOINTS:
            raise ValueError(f'expected {N_KEYPOINTS} contact keypoints, got {len(names)}')
        self.kinds = tuple(k for k, _ in names)
        self.ids = np.zeros((2, N_KEYPOINTS), dtype=int)
        self.frame_body = np.zeros((2, N_KEYPOINTS), dtype=int)
        self.normal_local = np.zeros((2, N_KEYPOINTS, 3))
        data = mujoco.MjData(model)
        mujoco.mj_resetData(model, data)
        data.qpos[:] = 0.0
        for jid in range(model.njnt):          # free joints (objects): identity quaternions
            if model.jnt_type[jid] == mujoco.mjtJoint.mjJNT_FREE:
                data.qpos[model.jnt_qposadr[jid] + 3] = 1.0
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        jacp = np.zeros((3, model.nv))
        for h, side in enumerate(SIDES):
            pre = rm.HAND_PREFIX[side]
            palm = model.body(pre + rm.PALM_BODY).id
            palmar = -data.xmat[palm].reshape(3, 3)[:, 1]
            for k, (kind, name) in enumerate(names):
                if kind == 'site':
                    sid = model.site(pre + name).id
                    body = int(model.site_bodyid[sid])
                    finger = name[2:4].upper()                   # S_fftip -> FF, S_thtip -> TH
                    joint = model.joint(pre + f'{finger}J0')
                    lo, hi = model.jnt_range[joint.id]
                    flex = 1.0 if abs(hi) >= abs(lo) else -1.0
                    mujoco.mj_jacSite(model, data, jacp, None, sid)
                    n_world = flex * jacp[:, model.jnt_dofadr[joint.id]]
                else:
                    sid = model.body(pre + name).id
                    body = sid
                    n_world = palmar
                nrm = np.linalg.norm(n_world)
                if not nrm > 1e-9:
                    raise ValueError(f'{pre + name}: degenerate normal direction')
                self.ids[h, k] = sid
                self.frame_body[h, k] = body
                self.normal_local[h, k] = data.xmat[body].reshape(3, 3).T @ (n_world / nrm)
        self._site_mask = np.array([k == 'site' for k in self.kinds])

    def compute(self, xpos: np.ndarray, xmat: np.ndarray, site_xpos: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """World keypoints and normals of N envs from stacked MjData arrays: xpos (N, nbody, 3),
        xmat (N, nbody, 9) or (N, nbody, 3, 3), site_xpos (N, nsite, 3) -> (pos (N, 2, 9, 3),
        normal (N, 2, 9, 3), unit)."""
        xpos = np.asarray(xpos, dtype=float)
        n = xpos.shape[0]
        xmat = np.asarray(xmat, dtype=float).reshape(n, -1, 3, 3)
        site_xpos = np.asarray(site_xpos, dtype=float)
        pos = np.where(self._site_mask[None, None, :, None],
                       site_xpos[:, np.where(self._site_mask, self.ids, 0)],
                       xpos[:, np.where(self._site_mask, 0, self.ids)])
        R = xmat[:, self.frame_body]                                        # (N, 2, 9, 3, 3)
        normal = np.einsum('nhkij,hkj->nhki', R, self.normal_local)
        return pos, normal

    def compute_data(self, data) -> tuple[np.ndarray, np.ndarray]:
        """(pos (2, 9, 3), normal (2, 9, 3)) of one MjData."""
        p, nrm = self.compute(data.xpos[None], data.xmat[None], data.site_xpos[None])
        return p[0], nrm[0]
