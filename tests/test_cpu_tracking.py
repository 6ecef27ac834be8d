"""The embedded CPU object-tracking defaults (segmentation, mesh, ICP, LK tracks, fused tracker)
on a tiny synthetic RGB-D case with exact ground truth (320x240, 10 fps, 1.5 s; at 160x120 the can covers ~90 px, too few for depth segmentation)."""
from __future__ import annotations


import numpy as np
import pytest

from dexman_perception.core import object_tracker as ot
from dexman_synthetic.core import pose_metrics as pm
from dexman_perception.core.backends import registry
from dexman_perception.core.backends.lk_tracks import sample_queries
from dexman_perception.core.stages import PointTracker, PoseRefiner, Segmenter

from tracking_case import tracking_case


@pytest.fixture(scope='module')
def case():
    yield from tracking_case('cpu_track')


@pytest.fixture(scope='module')
def masks(case):
    seg = registry.create('segmentation', 'depth_color')
    out = seg.segment_video(case['rgb'], {'o': case['labels'][0] == 1}, depths=case['dep'],
                            K=case['gt'].K, hand_masks=case['hands'])
    return [m['o'] for m in out]


def _iou(a, b):
    u = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / u if u else 1.0


def test_registry_defaults_satisfy_the_stage_interfaces():
    assert isinstance(registry.create('segmentation', 'depth_color'), Segmenter)
    assert isinstance(registry.create('pose', 'icp'), PoseRefiner)
    assert isinstance(registry.create('tracks', 'lucas_kanade'), PointTracker)
    assert hasattr(registry.create('mesh', 'fused_cloud'), 'reconstruct')


def test_segmentation_iou(case, masks):
    ious = [_iou(m, case['labels'][k] == 1) for k, m in enumerate(masks)]
    print('segmentation IoU mean', np.mean(ious), 'min', np.min(ious), 'first 4', np.mean(ious[:4]))
    # measured on this case: mean 0.78, min 0.50 (hand occlusion during the grasp); the
    # first 4 frames, before the hand arrives: 0.97
    assert np.mean(ious) > 0.65
    assert np.mean(ious[:4]) > 0.85
    assert all(m.dtype == bool and m.shape == case['labels'][0].shape for m in masks)


def test_box_prompt_gives_the_object(case):
    ys, xs = np.nonzero(case['labels'][0] == 1)
    box = np.array([xs.min() - 2, ys.min() - 2, xs.max() + 2, ys.max() + 2])
    seg = registry.create('segmentation', 'depth_color')
    out = seg.segment_video(case['rgb'][:2], {'o': box}, depths=case['dep'][:2], K=case['gt'].K)
    assert _iou(out[0]['o'], case['labels'][0] == 1) > 0.7


def test_mesh_is_watertight_metric_and_close_in_size(case, masks):
    mesh = registry.create('mesh', 'fused_cloud').reconstruct(case['rgb'][0], masks[0], case['dep'][0], case['gt'].K)
    assert mesh.is_watertight and mesh.volume > 0
    ours = np.sort(mesh.extents)
    ref = np.sort(case['gt'].objects[0].extents)
    print('mesh extents', ours, 'gt', ref)
    # measured: height exact, diameter 0.054-0.059 vs 0.072 (-25 %: the back of the can is
    # inferred from the top cap, which is partly hidden at this viewing angle)
    assert abs(ours[2] - ref[2]) < 0.01
    assert np.all(np.abs(ours - ref) / ref < 0.4)
    assert mesh.bounds[0, 2] == pytest.approx(0.0, abs=1e-9)     # origin at the bottom


def test_icp_recovers_a_1cm_5deg_perturbation(case):
    from scipy.spatial.transform import Rotation
    gt_T = case['T'][0]
    dT = np.eye(4)
    dT[:3, :3] = Rotation.from_rotvec(np.deg2rad(5.0) * np.array([1.0, 0.0, 0.0])).as_matrix()
    dT[:3, 3] = [0.006, -0.006, 0.005]                              # ~1 cm
    T_init = gt_T @ dT
    est = registry.create('pose', 'icp').refine(case['rgb'][0], case['dep'][0], case['labels'][0] == 1,
                                                case['mesh'], case['gt'].K, T_init)
    print('icp', est.score, np.linalg.norm(est.T_camera_object[:3, 3] - gt_T[:3, 3]),
          np.rad2deg(np.arccos(np.clip(est.T_camera_object[:3, 2] @ gt_T[:3, 2], -1, 1))))
    assert est.valid and est.score > 0.8    # measured: score 1.0, 0.07 mm, 0.03 deg
    assert np.linalg.norm(est.T_camera_object[:3, 3] - gt_T[:3, 3]) < 0.003
    # the cylinder's spin about its own axis is not observable: compare the axis direction
    ang = np.arccos(np.clip(est.T_camera_object[:3, 2] @ gt_T[:3, 2], -1, 1))
    assert np.rad2deg(ang) < 1.5


def test_lk_tracks_3d_error_small(case, masks):
    gt, T = case['gt'], case['T']
    g0 = case['rgb'][0].mean(-1).astype(np.uint8)
    q = sample_queries(case['labels'][0] == 1, 100, 0, gray=g0)
    tr = registry.create('tracks', 'lucas_kanade').track(case['rgb'], q, case['dep'], gt.K, masks=masks)
    P = tr.positions_3d
    nq = len(q)
    p_obj = (P[0, :nq] - T[0, :3, 3]) @ T[0, :3, :3]                 # the physical points
    errs = []
    for k in range(1, 6):                                              # before the hand arrives
        v = tr.visible[k, :nq]
        pred = P[k, :nq][v]
        truth = p_obj[v] @ T[k, :3, :3].T + T[k, :3, 3]
        errs.append(np.linalg.norm(pred - truth, axis=1))
    e = np.concatenate(errs)
    print('lk 3D error median', np.median(e), 'n', len(e))
    assert len(e) > 100
    assert np.median(e) < 0.002        # measured 0.07 mm over 374 track-frames


def _add_s_auc(case, r):
    T = case['T']
    poses = r.poses @ (np.linalg.inv(r.poses[0]) @ T[0])
    pts, _, _ = pm.sample_surface(case['mesh'].vertices, case['mesh'].faces, 0.004, max_points=None)
    valid = r.valid & pm.is_valid_pose(poses)
    d = pm.add_s_distances(T, poses, pts, valid)
    return pm.auc_add_s(d)


def test_fused_tracker_add_s_not_worse_than_tracks_alone(case, masks):
    mesh = registry.create('mesh', 'fused_cloud').reconstruct(case['rgb'][0], masks[0], case['dep'][0], case['gt'].K)
    auc = {}
    for mode in ot.MODES:
        r = ot.track_object(case['rgb'], case['dep'], masks, mesh, case['gt'].K, mode=mode)
        assert r.poses.shape == (len(case['rgb']), 4, 4)
        auc[mode] = _add_s_auc(case, r)
    print('add-s auc', auc)
    # measured: fused 0.99, refiner 0.96, tracks 0.78 (the can's LK tracks drift during the grasp)
    assert auc['fused'] > 0.85
    assert auc['fused'] >= auc['tracks'] - 0.01


def test_nan_depth_and_empty_mask_frames_are_marked_invalid(case, masks):
    dep = [d.copy() for d in case['dep']]
    dep[3][:] = np.nan
    mk = [m.copy() for m in masks]
    mk[5][:] = False
    mesh = registry.create('mesh', 'fused_cloud').reconstruct(case['rgb'][0], masks[0], case['dep'][0], case['gt'].K)
    for mode in ot.MODES:
        r = ot.track_object(case['rgb'], dep, mk, mesh, case['gt'].K, mode=mode)
        assert not r.valid[5] and r.reasons[5], mode
        assert not r.valid[3] and r.reasons[3], mode
        assert np.all(np.isfinite(r.poses))
        assert r.valid[1]
        traj = ot.to_trajectory({'object_0': r}, case['gt'].stamps_ns, method=mode)
        assert traj.frame == 'camera_optical' and traj.valid.shape == (1, len(case['rgb']))
