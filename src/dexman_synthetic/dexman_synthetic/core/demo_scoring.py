"""Score a perceived demonstration against the ground truth of a synthetic case (ROS-free).

The perceived world (robot frame after scene alignment) and the synthetic world differ by design,
so everything is compared in the camera frame, which both share:

* objects: the mesh centroid of the ground-truth object carried by the perceived motion
  T_c_o(k) · T_c_o(0)⁻¹ (the paper's first-frame alignment: the reconstructed mesh has its own
  object frame) vs its true position; metres per frame on frames the demonstration marks valid;
* hands: keypoints in the camera frame vs the ground truth, per hand, on frames both have;
* table: angle between the perceived and the true table normal (after alignment the perceived
  one is world +z).
"""
from __future__ import annotations

import numpy as np

from dexman_common.geometry import vector_angle
from dexman_common.report import summary_stats


def object_centre_errors(demo, gt, object_index: int = 0, gt_object_index: int | None = None) -> np.ndarray:
    """Per frame (NaN where the demonstration's pose is invalid) centroid error, m."""
    gi = object_index if gt_object_index is None else gt_object_index
    frames = np.flatnonzero(gt.frame_in_bag)
    if len(frames) != demo.n_frames:
        raise ValueError(f'the demonstration has {demo.n_frames} frames, the bag {len(frames)}')
    T_cw = np.linalg.inv(demo.T_world_camera)
    pred = T_cw @ demo.object_poses[object_index]
    true = gt.object_poses_in_camera()[gi, frames]
    valid = demo.object_valid[object_index]
    first = int(np.flatnonzero(valid)[0]) if valid.any() else 0
    c = np.r_[np.asarray(gt.load_mesh(gt.objects[gi].id).centroid, float), 1.0]
    anchor = np.linalg.inv(pred[first]) @ true[first] @ c
    err = np.full(demo.n_frames, np.nan)
    for k in np.flatnonzero(valid):
        err[k] = np.linalg.norm((pred[k] @ anchor)[:3] - (true[k] @ c)[:3])
    return err


def hand_keypoint_errors(demo, gt) -> dict[str, np.ndarray]:
    """{'left'/'right': (frames with both, 21) keypoint errors in m} in the camera frame."""
    frames = np.flatnonzero(gt.frame_in_bag)
    T_cw_pred = np.linalg.inv(demo.T_world_camera)
    T_cw_true = gt.T_camera_world
    out = {}
    for h, name in enumerate(('left', 'right')):
        both = demo.hand_valid[h] & gt.hand_present[h, frames]
        P = demo.hand_keypoints[h, both] @ T_cw_pred[:3, :3].T + T_cw_pred[:3, 3]
        Q = gt.hand_keypoints[h, frames[both]] @ T_cw_true[:3, :3].T + T_cw_true[:3, 3]
        out[name] = np.linalg.norm(P - Q, axis=-1)
    return out


def object_error_vs_ground_truth(demo, case_dir) -> dict:
    """JSON-able summary: per object centroid error stats and valid fraction, hand keypoint error
    stats, detection rate per hand, table normal angle (deg)."""
    from dexman_synthetic.core import ground_truth as gtio
    gt = gtio.load(case_dir)
    out = {'objects': {}, 'hands': {}}
    for i, o in enumerate(demo.objects):
        gi = gt.object_index(o.id) if o.id in [g.id for g in gt.objects] else i
        err = object_centre_errors(demo, gt, i, gi)
        out['objects'][o.id] = {**summary_stats(err[np.isfinite(err)], suffix='_m'),
                                'valid_fraction': float(demo.object_valid[i].mean())}
    frames = np.flatnonzero(gt.frame_in_bag)
    for name, e in hand_keypoint_errors(demo, gt).items():
        h = 0 if name == 'left' else 1
        present = gt.hand_present[h, frames]
        out['hands'][name] = {**summary_stats(e, suffix='_m'),
                              'detection_rate': float((demo.hand_valid[h] & present).sum() / max(1, present.sum()))}
    n_true = np.asarray(gt.table_normal, float) @ gt.T_camera_world[:3, :3].T
    n_pred = np.asarray(demo.table_normal, float) @ np.linalg.inv(demo.T_world_camera)[:3, :3].T
    angle = vector_angle(n_true, n_pred)
    out['table_normal_error_deg'] = float(np.degrees(min(angle, np.pi - angle)))   # normals: either sign
    return out
