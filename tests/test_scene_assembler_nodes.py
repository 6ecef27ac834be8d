"""scene_node + demo_assembler as real processes over DDS, fed by an in-process fake of the other
stages built from a synthetic case's ground truth (camera_optical messages, one per frame):
the scene transform honours the B.4 invariants, the demonstration written has every frame with
the gaps marked invalid and world poses consistent with the published transform; stopped
stages give a report that says why and exit status 3."""
import json
import os
import pathlib
import subprocess
import time

import numpy as np
import pytest

from dexman_common.artefacts import demonstration as dm
from dexman_perception.core.backends.cpu_segmentation import backproject
from dexman_perception.core.demo_assembly import DemoAssemblyConfig
from dexman_perception.core.object_tracker import TrackerConfig
from dexman_perception.core import perception_config as pc
from dexman_perception.core.scene_alignment import SceneAlignmentConfig
from dexman_perception.core.stages import BodyEstimate, HandEstimate
from dexman_perception.nodes import scene_node as sn
from dexman_synthetic.core.ground_truth import load

from synth_cases import case
from ros_args import param_args, ros2

ROOT = pathlib.Path(__file__).resolve().parents[1]
ROBOT_PELVIS = (0.0, 0.0, 0.793)
LOST_FRAME, NO_HAND_FRAME, NO_HANDS_MSG_FRAME = 5, 2, 7


@pytest.fixture(scope='module')
def gt():
    return load(case('pick_cyl'))


def _start(executable, params):
    cmd = [ros2(), 'run', 'dexman_perception', executable, '--ros-args']
    cmd += param_args(params)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))


def _stop(p, timeout=10):
    if p.poll() is None:
        p.send_signal(subprocess.signal.SIGINT)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out


# ------------------------------------------------------------------------------ ground truth
def _cam(gt, P):
    Tcw = np.linalg.inv(gt.T_world_camera)
    return np.asarray(P) @ Tcw[:3, :3].T + Tcw[:3, 3]


def _frame(gt, depth, labels, f):
    """Per-frame camera_optical ground truth as the stages would publish it."""
    d = depth[f].astype(np.float32)
    d[d <= 0] = np.nan
    masks = {o.id: labels[f] == 1 + i for i, o in enumerate(gt.objects)}
    masks['hand_left'], masks['hand_right'] = labels[f] == 254, labels[f] == 255
    lh, rh = _cam(gt, gt.hips[f])
    body = BodyEstimate(left_hip=lh, right_hip=rh, pelvis=_cam(gt, gt.pelvis_poses[f][:3, 3]), confidence=0.9)
    hands = [HandEstimate(handedness=h, keypoints=_cam(gt, gt.hand_keypoints[h, f]),
                          keypoints_2d=np.zeros((21, 2)), keypoint_confidence=np.ones(21), confidence=0.9,
                          metric=True) for h in (0, 1) if gt.hand_present[h, f]]
    return d, masks, body, hands, gt.object_poses_in_camera()[:, f]


# ------------------------------------------------------------------------------ fake stages
class FakeStages:
    """One rclpy node in its own context: publishes what the other stages would, listens to
    what the nodes under test publish."""

    def __init__(self):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        from dexman_msgs.msg import (BodyPose, DemonstrationInfo, Hands3D, ObjectMasks, ObjectMesh,
                                     PlaybackStatus, SceneAlignment, StageStatus, TrackedObjectArray)
        from dexman_common.ros.node_util import latched_qos, reliable_keep_all_qos, reliable_qos
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage
        self.rclpy = rclpy
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node('fake_stages', context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        n, rk = self.node, reliable_keep_all_qos()
        self.pub = {'info': n.create_publisher(CameraInfo, '/camera/camera_info', reliable_qos(100)),
                    'depth': n.create_publisher(Image, '/dexman/depth/image', rk),
                    'masks': n.create_publisher(ObjectMasks, '/dexman/masks', rk),
                    'body': n.create_publisher(BodyPose, '/dexman/body', rk),
                    'hands': n.create_publisher(Hands3D, '/dexman/hands', rk),
                    'objects': n.create_publisher(TrackedObjectArray, '/dexman/objects', rk),
                    'mesh': n.create_publisher(ObjectMesh, '/dexman/object_meshes', latched_qos(32)),
                    'status': n.create_publisher(StageStatus, '/dexman/perception/status', latched_qos(20)),
                    'playback': n.create_publisher(PlaybackStatus, '/dexman/playback/status', latched_qos(1)),
                    'config': n.create_publisher(String, '/dexman/perception/config', latched_qos(1))}
        self.got = {'scene': [], 'tf': [], 'demo': [], 'status': []}
        n.create_subscription(SceneAlignment, '/dexman/scene', self.got['scene'].append, latched_qos(1))
        n.create_subscription(TFMessage, '/tf_static', self.got['tf'].append, latched_qos(1))
        n.create_subscription(DemonstrationInfo, '/dexman/demonstration', self.got['demo'].append, latched_qos(1))
        n.create_subscription(StageStatus, '/dexman/perception/status', self.got['status'].append, latched_qos(50))
        self.StageStatus, self.PlaybackStatus, self.String = StageStatus, PlaybackStatus, String

    def spin_until(self, cond, timeout, procs=()):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.ex.spin_once(timeout_sec=0.05)
            if cond():
                return True
            if any(p.poll() is not None for p in procs):
                return cond()
        return False

    def wait_matched(self, counts, procs, timeout=40):
        ok = self.spin_until(lambda: all(self.pub[k].get_subscription_count() >= c for k, c in counts.items()),
                             timeout, procs)
        if not ok:
            logs = '\n'.join(_stop(p) for p in procs)
            pytest.fail(f'nodes did not subscribe: { {k: self.pub[k].get_subscription_count() for k in counts} }'
                        f'\n{logs}')
        self.spin_until(lambda: False, 0.5)          # let the subscribers' side of discovery settle

    def status(self, stage, state, frames_out=0, message='', backend='fake'):
        self.pub['status'].publish(self.StageStatus(
            stage=stage, node=f'/fake/{stage}', backend=backend, state=state, frames_in=frames_out,
            frames_out=frames_out, message=message))

    def playback(self, state, n, bag='/bags/pick_cyl_bag'):
        self.pub['playback'].publish(self.PlaybackStatus(state=state, bag_uri=bag, frames_published=n,
                                                         frames_total=n))

    def stage_states(self, stage):
        return [s for s in self.got['status'] if s.stage == stage]

    def close(self):
        self.node.destroy_node()
        self.rclpy.shutdown(context=self.ctx)


@pytest.fixture
def fake():
    f = FakeStages()
    yield f
    f.close()


def _publish_frames(fake, gt, *, body_valid=lambda f: f > 0, depth_and_masks=True, objects=True):
    from sensor_msgs.msg import CameraInfo
    from dexman_msgs.msg import TrackedObjectArray
    from dexman_perception.nodes import perception_msgs as pm
    depth, labels = gt.load_scene()
    published = {'hands': 0, 'objects': 0}
    for f in range(gt.n_frames):
        hdr = pm.header(int(gt.stamps_ns[f]), 'camera_optical')
        d, masks, body, hands, T_co = _frame(gt, depth, labels, f)
        fake.pub['info'].publish(CameraInfo(header=hdr, height=gt.height, width=gt.width,
                                            k=gt.K.reshape(-1).tolist()))
        if depth_and_masks:
            fake.pub['depth'].publish(pm.depth_msg(d, hdr))
            fake.pub['masks'].publish(pm.masks_msg(masks, hdr, d.shape))
        fake.pub['body'].publish(pm.body_msg(body if body_valid(f) else None, hdr))
        if f != NO_HANDS_MSG_FRAME:
            fake.pub['hands'].publish(pm.hands_msg([] if f == NO_HAND_FRAME else hands, hdr))
            published['hands'] += 1
        if objects:
            arr = TrackedObjectArray(header=hdr)
            for o, T in zip(gt.objects, T_co):
                arr.objects.append(pm.tracked_object_msg(
                    o.id, o.label, T, hdr, status='lost' if f == LOST_FRAME else 'tracking', confidence=0.9))
            fake.pub['objects'].publish(arr)
            published['objects'] += 1
        fake.spin_until(lambda: False, 0.02)
    return published


# ------------------------------------------------------------------------------ unit helpers
def test_table_ring_and_points_on_ground_truth(gt):
    depth, labels = gt.load_scene()
    d, masks, *_ = _frame(gt, depth, labels, 0)
    P = backproject(d, gt.K)
    ring = sn.table_ring(masks, ['object_0'], 2, 10)
    assert not (ring & masks['object_0']).any() and ring.sum() > 100
    tab = sn.table_points(P, ring, 0.01, 300, 0, 50)
    z = (tab @ gt.T_world_camera[:3, :3].T + gt.T_world_camera[:3, 3])[:, 2]
    assert np.abs(z - gt.table_point[2]).max() < 0.01        # only table-top points
    ent = sn.entity_points(P, masks, ['object_0'])
    T_co = gt.object_poses_in_camera()[0, 0]               # the median surface point lies on the object
    p_obj = np.linalg.inv(T_co) @ [*ent[0], 1.0]
    lo, hi = gt.load_mesh('object_0').bounds
    assert np.all(p_obj[:3] >= lo - 0.01) and np.all(p_obj[:3] <= hi + 0.01)
    with pytest.raises(sn.StageFailure, match='pixel'):
        sn.table_points(P, np.zeros_like(ring), 0.01, 10, 0, 50)


# ------------------------------------------------------------------------------ DDS
@pytest.mark.ros
def test_scene_and_demonstration_from_ground_truth(gt, fake, tmp_path):
    n = gt.n_frames
    report = tmp_path / 'report.json'
    scene = _start('scene_node', {'body_frames': 3, 'robot_pelvis': ROBOT_PELVIS, 'status_period_s': 0.5})
    asm = _start('demo_assembler', {'output_dir': str(tmp_path / 'demos'), 'demonstration_id': 'synth_demo',
                                    'report_path': str(report), 'exit_when_done': True,
                                    'finish_timeout_s': 40.0, 'status_period_s': 0.5})
    procs = [scene, asm]
    try:
        fake.wait_matched({'masks': 1, 'depth': 1, 'body': 1, 'hands': 2, 'objects': 1, 'info': 2}, procs)
        mesh = gt.load_mesh('object_0')
        from dexman_perception.nodes import perception_msgs as pm
        fake.pub['mesh'].publish(pm.mesh_msg(mesh, 'object_0', gt.objects[0].label, 'file:///nowhere/object_0.obj',
                                             True, 1.0, int(gt.stamps_ns[0])))
        tracking_config = {'stage': 'tracking', 'node': '/fake/tracking', 'backend': 'icp', 'backend_options': {},
                           'config_file': '', 'sections': {'tracker': TrackerConfig(mode='refiner').to_dict()}}
        fake.pub['config'].publish(fake.String(data=json.dumps(tracking_config)))
        fake.playback(fake.PlaybackStatus.STATE_PLAYING, 0)
        published = _publish_frames(fake, gt)
        S = fake.StageStatus
        for stage in ('segmentation', 'depth', 'body'):
            fake.status(stage, S.STATE_DONE, n)
        fake.status('hands', S.STATE_DONE, published['hands'])
        fake.status('tracking', S.STATE_DONE, published['objects'], backend='icp')
        fake.status('mesh', S.STATE_DONE, n, backend='fused_cloud')
        fake.playback(fake.PlaybackStatus.STATE_FINISHED, n)
        assert fake.spin_until(lambda: asm.poll() is not None and fake.got['demo'] and fake.got['scene'], 45), \
            '\n'.join(_stop(p) for p in procs)
        asm_log = _stop(asm)
        assert asm.returncode == 0, asm_log
        fake.spin_until(lambda: fake.got['tf'], 5)
        scene_done = fake.spin_until(lambda: any(s.state == S.STATE_DONE for s in fake.stage_states('scene')), 5)
    finally:
        scene_log = _stop(scene)
        if asm.poll() is None:
            _stop(asm)
    assert scene_done, scene_log
    assert 'Traceback' not in scene_log + asm_log

    # --- scene: B.4 invariants against the synthetic world (which is not the robot world)
    from dexman_perception.nodes.perception_msgs import array, matrix
    msg = fake.got['scene'][-1]
    T = matrix(msg.world_from_camera)
    M = T @ np.linalg.inv(gt.T_world_camera)                  # synthetic world -> robot world
    z_err = np.degrees(np.arccos(np.clip(M[2, 2], -1, 1)))
    hip = M[:3, :3] @ (gt.hips[1:4, 1] - gt.hips[1:4, 0]).mean(0)
    hip_err = np.degrees(np.arctan2(abs(hip[1]), hip[0]))
    print(f'scene: table normal error {z_err:.3f} deg, hip direction error {hip_err:.3f} deg, '
          f'y shift {msg.y_shift:+.3f} m, reach fits {msg.reach_fits}')
    assert z_err < 1.0 and hip_err < 1.0
    assert [msg.table_normal.x, msg.table_normal.y, msg.table_normal.z] == pytest.approx([0, 0, 1], abs=1e-9)
    pel = np.median([_cam(gt, gt.pelvis_poses[f][:3, 3]) for f in (1, 2, 3)], axis=0)
    expected_pelvis = np.add(ROBOT_PELVIS, [0, msg.y_shift, 0])
    assert array(msg.pelvis) == pytest.approx(expected_pelvis, abs=1e-6)
    assert T[:3, :3] @ pel + T[:3, 3] == pytest.approx(expected_pelvis, abs=1e-6)
    assert array(msg.table_point)[2] == pytest.approx((M @ [*gt.table_point, 1])[2], abs=0.01)
    assert msg.camera_frame == 'camera_optical' and msg.header.frame_id == 'world'
    tf = fake.got['tf'][-1].transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == ('world', 'camera_optical')
    assert matrix(tf.transform) == pytest.approx(T, abs=1e-9)

    # --- demonstration: every frame, gaps invalid, world poses = T . camera ground truth
    info = fake.got['demo'][-1]
    assert (info.demonstration_id, info.frame_count, info.valid_frame_count) == ('synth_demo', n, n - 1)
    assert list(info.object_ids) == ['object_0'] and info.has_left_hand and info.has_right_hand
    demo = dm.load(tmp_path / 'demos' / 'synth_demo')
    assert info.artefact_uri == (tmp_path / 'demos' / 'synth_demo').resolve().as_uri() + '/'
    assert demo.n_frames == n and demo.stamps_ns.tolist() == gt.stamps_ns.tolist()
    assert demo.fps == pytest.approx(gt.fps)
    assert demo.object_valid[0].tolist() == [f != LOST_FRAME for f in range(n)]
    expect_obj = np.einsum('ij,njk->nik', T, gt.object_poses_in_camera()[0])
    ok = demo.object_valid[0]
    assert np.abs(demo.object_poses[0, ok] - expect_obj[ok]).max() < 1e-6
    assert np.abs(demo.object_poses[0, ok] - np.einsum('ij,njk->nik', M, gt.object_poses[0])[ok]).max() < 1e-6
    no_hand = [f in (NO_HAND_FRAME, NO_HANDS_MSG_FRAME) for f in range(n)]
    assert demo.hand_valid.tolist() == [[bool(gt.hand_present[h, f]) and not no_hand[f] for f in range(n)]
                                        for h in (0, 1)]
    hv = demo.hand_valid
    kp_expect = np.einsum('ij,hnkj->hnki', M[:3, :3], gt.hand_keypoints) + M[:3, 3]
    assert np.abs(demo.hand_keypoints[hv] - kp_expect[hv]).max() < 1e-6
    assert np.isnan(demo.hand_keypoints[:, NO_HANDS_MSG_FRAME]).all()
    assert demo.T_world_camera == pytest.approx(T) and demo.K == pytest.approx(gt.K)
    assert demo.load_mesh('object_0').extents == pytest.approx(mesh.extents, rel=1e-6)

    # --- provenance: the configuration every stage ran with (the scene node's body_frames parameter
    # overrides config/perception.yaml), and the assembler's own
    cfg = demo.provenance['config']
    assert cfg['demo_assembly'] == DemoAssemblyConfig().to_dict()
    assert cfg['stages']['tracking'] == tracking_config
    scene_rec = cfg['stages']['scene']
    assert scene_rec['node'] == '/scene_node' and scene_rec['backend'] == 'table_hips'
    assert scene_rec['config_file'] == str(ROOT / 'config' / 'perception.yaml')
    assert (SceneAlignmentConfig.from_dict(scene_rec['sections']['scene_alignment'])
            == pc.load(SceneAlignmentConfig, ROOT / 'config' / 'perception.yaml').replace(body_frames=3))

    rep = json.loads(report.read_text())
    assert rep['written'] and rep['reason'] == '' and rep['path'] == str(tmp_path / 'demos' / 'synth_demo')
    assert rep['stage_configs_received'] == ['scene', 'tracking']
    assert {k: v['state'] for k, v in rep['stages'].items()} == {
        'segmentation': 'DONE', 'depth': 'DONE', 'hands': 'DONE', 'body': 'DONE', 'mesh': 'DONE',
        'tracking': 'DONE', 'scene': 'DONE'}
    assert rep['stages']['hands']['received_by_assembler'] == n - 1
    assert rep['summary']['objects']['object_0']['status_counts'] == {'tracking': n - 1, 'predicted': 0, 'lost': 1}
    assert rep['summary']['frames_without_hands_message'] == 1


@pytest.mark.ros
def test_stopped_depth_stage_no_demonstration_exit_3(gt, fake, tmp_path):
    """RGB-only video: no metric depth -> scene, mesh and tracking stop; the report says why."""
    n = gt.n_frames
    report = tmp_path / 'report.json'
    scene = _start('scene_node', {'status_period_s': 0.5})
    asm = _start('demo_assembler', {'output_dir': str(tmp_path / 'demos'), 'demonstration_id': 'rgb_only',
                                    'report_path': str(report), 'exit_when_done': True,
                                    'finish_timeout_s': 40.0})
    procs = [scene, asm]
    S = fake.StageStatus
    try:
        fake.wait_matched({'hands': 2, 'body': 1, 'info': 2}, procs)
        depth_msg = 'no depth image in the bag and backend vggt is not installed'
        fake.status('depth', S.STATE_STOPPED, message=depth_msg)
        fake.status('segmentation', S.STATE_RUNNING)
        published = _publish_frames(fake, gt, depth_and_masks=False, objects=False)
        needs = 'needs /dexman/depth/image from the depth stage, which stopped'
        fake.status('mesh', S.STATE_STOPPED, message=needs)
        fake.status('tracking', S.STATE_STOPPED, message=needs)
        fake.status('hands', S.STATE_DONE, published['hands'])
        fake.status('body', S.STATE_DONE, n, backend='mediapipe')
        fake.playback(fake.PlaybackStatus.STATE_FINISHED, n)
        assert fake.spin_until(lambda: asm.poll() is not None, 45), '\n'.join(_stop(p) for p in procs)
        asm_log = _stop(asm)
    finally:
        scene_log = _stop(scene)
    assert asm.returncode == 3, asm_log
    scene_st = fake.stage_states('scene')
    assert scene_st and scene_st[-1].state == S.STATE_STOPPED, scene_log
    assert 'needs metric depth' in scene_st[-1].message and depth_msg in scene_st[-1].message
    assert not fake.got['scene'] and not fake.got['demo']
    assert not (tmp_path / 'demos' / 'rgb_only').exists()
    rep = json.loads(report.read_text())
    assert rep['written'] is False
    assert 'no scene alignment' in rep['reason'] and 'tracking: needs /dexman/depth/image' in rep['reason']
    assert rep['stages']['scene']['state'] == 'STOPPED' and 'metric depth' in rep['stages']['scene']['message']
    assert rep['stages']['tracking']['state'] == 'STOPPED' and rep['stages']['segmentation']['state'] == 'RUNNING'
    assert rep['summary']['frames'] == n                      # every camera_info stamp was seen
    assert 'no demonstration written' in asm_log and 'Traceback' not in asm_log + scene_log


@pytest.mark.ros
def test_scene_stops_without_a_body(gt, fake):
    scene = _start('scene_node', {'max_wait_frames': 4, 'status_period_s': 0.5})
    S = fake.StageStatus
    try:
        fake.wait_matched({'masks': 1, 'depth': 1, 'body': 1, 'hands': 1, 'info': 1}, [scene])
        fake.status('body', S.STATE_RUNNING, backend='mediapipe')
        _publish_frames(fake, gt, body_valid=lambda f: False, objects=False)
        stopped = fake.spin_until(lambda: any(s.state == S.STATE_STOPPED for s in fake.stage_states('scene')),
                                  20, [scene])
    finally:
        log = _stop(scene)
    assert stopped, log
    msg = [s for s in fake.stage_states('scene') if s.state == S.STATE_STOPPED][-1].message
    assert 'no valid body (hips) within the first 4 frames' in msg and 'backend mediapipe' in msg
    assert not fake.got['scene']


@pytest.mark.ros
def test_assembler_times_out_with_a_report(gt, fake, tmp_path):
    """No stage ever reports: after finish_timeout_s without anything new it reports what it was
    waiting for, writes nothing and exits 3."""
    asm = _start('demo_assembler', {'output_dir': str(tmp_path), 'exit_when_done': True,
                                    'finish_timeout_s': 5.0})
    try:
        fake.wait_matched({'hands': 1, 'info': 1}, [asm])
        fake.playback(fake.PlaybackStatus.STATE_PLAYING, 0, bag='/bags/my clip.mcap')
        _publish_frames(fake, gt, depth_and_masks=False, objects=False)
        assert fake.spin_until(lambda: asm.poll() is not None, 20), _stop(asm)
    finally:
        log = _stop(asm)
    assert asm.returncode == 3, log
    reports = list(tmp_path.glob('my_clip_*.report.json'))      # default id: <bag name>_<UTC time>
    assert len(reports) == 1, log
    rep = json.loads(reports[0].read_text())
    assert rep['timed_out'] and not rep['written'] and rep['summary']['frames'] == gt.n_frames
    assert any('bag player to finish' in w for w in rep['waiting_for'])
    assert 'scene (no status)' in rep['waiting_for'] and 'timed out after 5 s' in rep['reason']
    assert [p.name for p in tmp_path.iterdir()] == [reports[0].name]
