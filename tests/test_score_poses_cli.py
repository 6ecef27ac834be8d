"""score_poses CLI and the prediction file format (dexman_perception.core.pose_trajectory)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from dexman_synthetic.core import pose_metrics as pm
from dexman_perception.core import pose_trajectory as ptio
from dexman_synthetic.core import ground_truth as gtio

K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
W, H, N = 160, 120, 10
DROPPED = 5                      # a frame a degradation removed from the bag
OFFSET = np.array([0.02, 0.0, 0.0])


def look_at(eye, target, up=(0.0, 0.0, 1.0)):
    eye, target, up = (np.asarray(a, float) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, np.cross(z, x), z], axis=1)
    T[:3, 3] = eye
    return T


T_WC = look_at([0.45, -0.3, 0.4], [0.0, 0.0, 0.05])


@pytest.fixture(scope='module')
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp('score_case')
    mesh = trimesh.creation.box(extents=(0.10, 0.07, 0.05))
    t = np.linspace(0, 1, N)
    poses = np.tile(np.eye(4), (N, 1, 1))
    poses[:, :3, :3] = Rotation.from_rotvec(np.stack([0.2 * t, 0.1 * t, 1.2 * t], 1)).as_matrix()
    poses[:, :3, 3] = np.stack([0.05 * np.sin(2 * t), 0.06 * t, 0.05 + 0.08 * t], 1)
    sp, sn, _ = pm.sample_surface(mesh.vertices, mesh.faces, 0.0008)
    depth = np.stack([pm.render_point_depth(sp, T, K, T_WC, H, W, sn) for T in poses])
    labels = (depth > 0).astype(np.uint8)                 # label 1 = objects[0]
    in_bag = np.ones(N, bool)
    in_bag[DROPPED] = False
    gt = gtio.GroundTruth(
        case_id='test_case', task='pick_place', seed=0, fps=10.0, width=W, height=H, K=K,
        T_world_camera=T_WC, table_point=np.zeros(3), table_normal=np.array([0.0, 0, 1]),
        table_extents=np.array([1.0, 1.0]),
        objects=[gtio.ObjectInfo(id='object_0', label='box', shape='box', mesh_file='meshes/object_0.obj',
                                 symmetry='box', extents=(0.10, 0.07, 0.05), mass=0.1)],
        stamps_ns=(1_000_000_000 + 100_000_000 * np.arange(N)).astype(np.int64),
        object_poses=poses[None], hand_keypoints=np.zeros((2, N, 21, 3)),
        hand_present=np.zeros((2, N), bool), wrist_poses=np.tile(np.eye(4), (2, N, 1, 1)),
        pelvis_poses=np.tile(np.eye(4), (N, 1, 1)), hips=np.zeros((N, 2, 3)),
        grasped=-np.ones((2, N), int), frame_in_bag=in_bag)
    gtio.save(gt, root, {'object_0': mesh}, depth=depth, labels=labels)
    return root, gt, mesh


def _run(*args):
    p = subprocess.run([sys.executable, '-m', 'dexman_synthetic.score_poses_cli', *map(str, args)],
                       capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def _traj(gt, poses, stamps=None, frame='world', valid=None):
    stamps = gt.stamps_ns if stamps is None else stamps
    return ptio.PoseTrajectory(object_ids=['object_0'], stamps_ns=np.asarray(stamps), poses=poses[None],
                               valid=np.ones((1, len(stamps)), bool) if valid is None else valid,
                               frame=frame, method='test')


def test_perfect_prediction(case, tmp_path):
    root, gt, _ = case
    in_bag = np.flatnonzero(gt.frame_in_bag)
    pred = ptio.save(_traj(gt, gt.object_poses[0, in_bag], gt.stamps_ns[in_bag]), tmp_path / 'perfect.npz')
    rc, out, err = _run('--ground-truth', root, '--prediction', pred)
    assert rc == 0, err
    res = json.loads(out)
    r = res['objects']['object_0']
    assert res['n_frames_scored'] == N - 1 and res['n_unmatched_prediction_frames'] == 0
    assert r['n_invalid'] == 0 and r['n_missing_frames'] == 0 and r['n_filtered'] == 0
    assert r['add_s_auc'] == pytest.approx(1.0) and r['add_s_mean_m'] == pytest.approx(0.0, abs=1e-9)
    assert r['vsd_auc'] == 1.0 and r['vsd_success_0p3'] == 1.0
    assert r['failure_rate'] == 0.0 and r['iou_mean'] > 0.8
    assert r['stability_mean'] == pytest.approx(1.0, abs=1e-6)
    assert r['settings']['backface_culling'] is True
    assert res['mean']['add_s_auc'] == r['add_s_auc']


def test_offset_prediction_in_camera_frame_with_missing_frame(case, tmp_path):
    root, gt, mesh = case
    in_bag = np.flatnonzero(gt.frame_in_bag)
    world = gt.object_poses[0, in_bag].copy()
    world[1:, :3, 3] += OFFSET                              # 2 cm off from the 2nd scored frame on
    cam = np.einsum('ij,njk->nik', np.linalg.inv(T_WC), world)
    keep = np.ones(len(in_bag), bool)
    keep[6] = False                                          # ground-truth frame 7 not predicted
    stamps = np.append(gt.stamps_ns[in_bag][keep], 5)        # plus one stamp the truth lacks
    poses = np.concatenate([cam[keep], np.eye(4)[None]])
    pred = ptio.save(_traj(gt, poses, stamps, frame='camera_optical'), tmp_path / 'offset.npz')
    rc, out, err = _run('--ground-truth', root, '--prediction', pred, '--objects', 'object_0', '--per-frame')
    assert rc == 0, err
    res = json.loads(out)
    r = res['objects']['object_0']
    assert res['prediction_frame'] == 'camera_optical' and res['n_unmatched_prediction_frames'] == 1
    assert r['n_missing_frames'] == 1 and r['n_invalid'] == 1
    assert r['per_frame']['valid'] == [k != 6 for k in range(N - 1)]
    # ADD-S against dense surface samples of the same geometry
    dense, _, _ = pm.sample_surface(mesh.vertices, mesh.faces, 0.001, max_points=None)
    d = pm.add_s_distances(gt.object_poses[0, in_bag], world, dense, max_points=None)
    d[6] = np.inf
    assert r['add_s_auc'] == pytest.approx(pm.auc_add_s(d), abs=0.01)
    assert 0.5 < r['add_s_auc'] < 0.95
    # one invalid frame of 9; the 2 cm offset keeps the silhouette IoU well above 0.1
    assert r['failure_rate'] == pytest.approx(1 / 9)
    assert 0.0 < r['vsd_auc'] <= 8 / 9 + 1e-12
    # scored frames 0,1,2,3,4,6,7,8,9 (5 dropped): pairs (0,1) jump 2 cm, (4,6),(1,2).. exact,
    # the two pairs touching the missing frame drop out
    assert r['n_stability_pairs'] == 6
    jump = 0.5 * math.exp(-2.0) + 0.5
    assert r['stability_mean'] == pytest.approx((jump + 5) / 6, abs=1e-6)


def test_no_render_metrics(case, tmp_path):
    root, gt, _ = case
    pred = ptio.save(_traj(gt, gt.object_poses[0]), tmp_path / 'all.npz')
    rc, out, err = _run('--ground-truth', root, '--prediction', pred, '--no-render-metrics',
                        '--include-dropped-frames')
    assert rc == 0, err
    r = json.loads(out)['objects']['object_0']
    assert r['vsd_auc'] is None and r['failure_rate'] is None
    assert 'no-render-metrics' in r['unavailable']['vsd_auc']
    assert r['n_frames'] == N and r['add_s_auc'] == pytest.approx(1.0)


def test_bad_input_exits_2(case, tmp_path):
    root, gt, _ = case
    good = ptio.save(_traj(gt, gt.object_poses[0]), tmp_path / 'good.npz')
    bad_shape = tmp_path / 'bad_shape.npz'
    np.savez(bad_shape, object_ids=np.array(['object_0']), stamps_ns=gt.stamps_ns,
             poses=np.zeros((1, N - 1, 4, 4)), valid=np.ones((1, N), bool), frame=np.array('world'))
    cases = [
        (('--ground-truth', root, '--prediction', tmp_path / 'missing.npz'), 'no such prediction file'),
        (('--ground-truth', tmp_path, '--prediction', good), 'not a ground-truth case'),
        (('--ground-truth', root, '--prediction', good, '--objects', 'object_9'), "unknown object 'object_9'"),
        (('--ground-truth', root, '--prediction', bad_shape), 'poses has shape'),
    ]
    for args, msg in cases:
        rc, out, err = _run(*args)
        assert rc == 2, (args, out, err)
        assert out == '' and 'Traceback' not in err
        assert len(err.strip().splitlines()) == 1 and msg in err, err


# ------------------------------------------------------------------ the file format
def test_trajectory_roundtrip_and_atomic_save(tmp_path):
    poses = np.tile(np.eye(4), (2, 3, 1, 1))
    poses[1, 2] = np.nan
    t = ptio.PoseTrajectory(object_ids=['a', 'b'], stamps_ns=np.array([1, 2, 3]), poses=poses,
                            valid=np.array([[1, 1, 1], [1, 1, 0]], bool), frame='camera_optical',
                            method='m')
    p = ptio.save(t, tmp_path / 'sub' / 'pred.npz')
    assert sorted(os.listdir(tmp_path / 'sub')) == ['pred.npz']
    u = ptio.load(p)
    assert u.object_ids == ['a', 'b'] and u.stamps_ns.dtype == np.int64 and u.frame == 'camera_optical'
    assert u.method == 'm' and u.valid.tolist() == t.valid.tolist()
    np.testing.assert_array_equal(u.poses, poses)
    Twc = np.eye(4)
    Twc[:3, 3] = [1, 2, 3]
    w = u.to_world(Twc)
    assert w.frame == 'world' and np.allclose(w.poses[0, 0, :3, 3], [1, 2, 3])


@pytest.mark.parametrize('change, msg', [
    (dict(frame='map'), 'frame is'),
    (dict(stamps_ns=np.array([1, 1, 3])), 'duplicate stamps'),
    (dict(object_ids=['a', 'a']), 'duplicates'),
    (dict(valid=np.ones((2, 2), bool)), 'valid has shape'),
    (dict(stamps_ns=np.array([1.0, 2.0, 3.0])), 'must be integers'),
])
def test_trajectory_validation_errors(tmp_path, change, msg):
    base = dict(object_ids=['a', 'b'], stamps_ns=np.array([1, 2, 3]), poses=np.tile(np.eye(4), (2, 3, 1, 1)),
                valid=np.ones((2, 3), bool), frame='world')
    with pytest.raises(ptio.PoseTrajectoryError, match=msg):
        ptio.save(ptio.PoseTrajectory(**{**base, **change}), tmp_path / 'x.npz')
    assert not (tmp_path / 'x.npz').exists()


def test_trajectory_load_errors(tmp_path):
    (tmp_path / 'junk.npz').write_bytes(b'not a zip')
    with pytest.raises(ptio.PoseTrajectoryError, match='not a readable'):
        ptio.load(tmp_path / 'junk.npz')
    np.savez(tmp_path / 'partial.npz', object_ids=np.array(['a']))
    with pytest.raises(ptio.PoseTrajectoryError, match='missing arrays'):
        ptio.load(tmp_path / 'partial.npz')
