"""The synthetic bag read back with rosbags: topics, stamps, encodings, intrinsics, ground truth, degradations."""
import numpy as np
from scipy.spatial.transform import Rotation
from synth_cases import case

from dexman_synthetic.core import ground_truth as gtm
from dexman_synthetic.core.bag_reader import image_array, read_topics, stamp_ns


def _by_topic(case_dir):
    out = {}
    for topic, t, msg in read_topics(case_dir / 'bag'):
        out.setdefault(topic, []).append((t, msg))
    return out


def _T(pose):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_quat([pose.orientation.x, pose.orientation.y, pose.orientation.z,
                                    pose.orientation.w]).as_matrix()
    T[:3, 3] = [pose.position.x, pose.position.y, pose.position.z]
    return T


def test_bag_round_trip():
    gt = gtm.load(case('pick_cyl'))
    msgs = _by_topic(gt.root)
    n = gt.n_frames
    assert {'/camera/image_raw', '/camera/camera_info', '/camera/depth/image_raw', '/tf', '/tf_static',
            '/ground_truth/hands', '/ground_truth/objects'} <= set(msgs)
    depth_gt, _ = gt.load_scene()
    for topic in ('/camera/image_raw', '/camera/camera_info', '/camera/depth/image_raw', '/tf',
                  '/ground_truth/hands', '/ground_truth/objects'):
        assert len(msgs[topic]) == n, topic
        stamps = [stamp_ns(m.header) if hasattr(m, 'header') else stamp_ns(m.transforms[0].header)
                  for _, m in msgs[topic]]
        np.testing.assert_array_equal(stamps, gt.stamps_ns)
        np.testing.assert_array_equal([t for t, _ in msgs[topic]], gt.stamps_ns)     # log time = stamp
    for (_, img), (_, info), (_, dep), k in zip(msgs['/camera/image_raw'], msgs['/camera/camera_info'],
                                                msgs['/camera/depth/image_raw'], range(n)):
        assert img.encoding == 'rgb8' and img.header.frame_id == 'camera_optical'
        assert image_array(img).shape == (gt.height, gt.width, 3)
        assert dep.encoding == '32FC1' and dep.header.frame_id == 'camera_optical'
        np.testing.assert_allclose(image_array(dep), depth_gt[k], atol=2e-3)      # GT stores float16
        assert info.header.frame_id == 'camera_optical' and (info.width, info.height) == (gt.width, gt.height)
        np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), gt.K)
        np.testing.assert_array_equal(np.asarray(info.p).reshape(3, 4)[:, :3], gt.K)
    (_, static), = msgs['/tf_static']
    tf = static.transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ('world', 'camera_optical')
    np.testing.assert_allclose([tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z],
                               gt.T_world_camera[:3, 3])
    for k, ((_, objs), (_, hands), (_, tfm)) in enumerate(zip(msgs['/ground_truth/objects'],
                                                               msgs['/ground_truth/hands'], msgs['/tf'])):
        (o,) = objs.objects
        assert objs.header.frame_id == 'world' and o.id == 'object_0'
        np.testing.assert_allclose(_T(o.pose), gt.object_poses[0, k], atol=1e-9)
        assert o.mesh_resource.startswith('file://') and o.mesh_resource.endswith('ground_truth/meshes/object_0.obj')
        assert gt.mesh_path('object_0').is_file()
        assert [hd.handedness for hd in hands.hands] == [0, 1]
        for h, hd in enumerate(hands.hands):
            kp = np.array([[p.x, p.y, p.z] for p in hd.keypoints])
            np.testing.assert_array_equal(kp, gt.hand_keypoints[h, k])
            np.testing.assert_allclose(_T(hd.wrist_pose), gt.wrist_poses[h, k], atol=1e-9)
        children = {t.child_frame_id for t in tfm.transforms}
        assert children == {'hand_left_wrist', 'hand_right_wrist', 'object_0'}


def test_bag_is_mcap_with_zstd_chunks():
    from mcap.reader import make_reader
    bag = case('pick_cyl') / 'bag'
    files = list(bag.glob('*.mcap'))
    assert len(files) == 1 and (bag / 'metadata.yaml').is_file()
    with open(files[0], 'rb') as f:
        summary = make_reader(f).get_summary()
    assert summary.chunk_indexes and {c.compression for c in summary.chunk_indexes} == {'zstd'}


def test_frame_drops_and_relative_depth():
    gt = gtm.load(case('degraded'))
    msgs = _by_topic(gt.root)
    dropped = gt.degradations['frame_drops']['dropped']
    assert dropped and not gt.frame_in_bag[dropped].any() and gt.frame_in_bag[0]
    img_stamps = [stamp_ns(m.header) for _, m in msgs['/camera/image_raw']]
    np.testing.assert_array_equal(img_stamps, gt.stamps_ns[gt.frame_in_bag])
    assert len(msgs['/camera/depth/image_raw']) == len(msgs['/camera/camera_info']) == gt.frame_in_bag.sum()
    assert len(msgs['/ground_truth/objects']) == gt.n_frames                     # truth for every frame
    rel = gt.degradations['relative_depth']
    depth_gt, _ = gt.load_scene()
    k_of = {s: k for k, s in enumerate(gt.stamps_ns)}
    holes = 0
    for _, m in msgs['/camera/depth/image_raw']:
        k = k_of[stamp_ns(m.header)]
        chunk = rel['chunks'][rel['frame_chunk'][k]]
        d = image_array(m)
        holes += np.isnan(d).sum()
        ok = np.isfinite(d) & (depth_gt[k] > 0)
        A = np.stack([depth_gt[k][ok], np.ones(ok.sum())], 1)
        a, b = np.linalg.lstsq(A, d[ok].astype(float), rcond=None)[0]
        # 1 % depth noise and float16 ground truth: the affine map is recovered to ~1 %
        assert abs(a / chunk['a'] - 1) < 0.02 and abs(b - chunk['b']) < 0.03, (k, a, b, chunk)
        resid = d[ok] - (chunk['a'] * depth_gt[k][ok] + chunk['b'])
        assert 0.004 < np.std(resid / (chunk['a'] * depth_gt[k][ok])) < 0.02      # sigma_rel = 1 %
    assert holes > 0
