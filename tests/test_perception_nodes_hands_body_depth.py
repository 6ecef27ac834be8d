"""depth_node, hands_node, body_node and the RViz marker builders.

Pure: marker messages; depth conversion (encodings, invalid pixels, size check); converter round
trips; the VGGT chunk alignment of the depth node with a fake estimator.
Integration (real processes over DDS, a private ROS domain per test, bag_player rate 0):
  * RGB-D synthetic bag (320x240, 10 frames, depth with zero holes): depth out == bag depth (NaN
    where 0); Hands3D + MarkerArray + BodyPose once per image with the image's header; hands
    metric and near the ground truth; every stage DONE.
  * RGB-only bag with one image in an unknown encoding: the depth stage STOPS naming vggt; the
    hands go on without depth (one Hands3D per image, the bad one empty), DONE, still running.
"""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dexman_common import image_codec
from ros_args import param_args

pytestmark = pytest.mark.ros

W, H, FPS, DURATION = 320, 240, 10.0, 1.0          # 10 frames; MediaPipe finds the hands at this size
EXCLUDE = ['/tf', '/tf_static', '/ground_truth/hands', '/ground_truth/objects']


# ======================================================================================= pure
def _hands3d(hands, stamp=(5, 7), frame='camera_optical'):
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header
    from dexman_perception.nodes.perception_msgs import hands_msg
    return hands_msg(hands, Header(stamp=Time(sec=stamp[0], nanosec=stamp[1]), frame_id=frame))


def _hand(side, offset=0.0, conf=0.9):
    from dexman_perception.core.stages import HandEstimate
    rng = np.random.default_rng(side)
    kp = np.array([0.1 * side - 0.05, 0.0, 0.6]) + rng.normal(0, 0.03, (21, 3))
    kp[9] = kp[0] + [0.0, -0.09, 0.0]
    kp[5], kp[17] = kp[9] + [0.02, 0.0, 0.0], kp[9] + [-0.04, 0.0, 0.0]
    return HandEstimate(handedness=side, keypoints=kp + offset, keypoints_2d=np.zeros((21, 2)),
                        keypoint_confidence=np.full(21, 0.8), confidence=conf, metric=True)


def test_hand_markers_per_side_and_deletes_for_missing_hands():
    from visualization_msgs.msg import Marker
    from dexman_perception.nodes import markers
    right = _hand(1)
    arr = markers.hand_markers(_hands3d([right]), ns='hands')
    by_id = {m.id: m for m in arr.markers}
    assert sorted(by_id) == [0, 1, 2, 3]                  # fixed ids: 2*side (+1)
    assert by_id[0].action == by_id[1].action == Marker.DELETE      # no left hand: stale one goes
    bones, joints = by_id[2], by_id[3]
    assert (bones.type, joints.type) == (Marker.LINE_LIST, Marker.SPHERE_LIST)
    assert bones.action == joints.action == Marker.ADD
    assert bones.header.frame_id == 'camera_optical'
    assert (bones.header.stamp.sec, bones.header.stamp.nanosec) == (5, 7)
    assert len(bones.points) == 2 * len(markers.HAND_BONES) and len(joints.points) == 21
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in joints.points], right.keypoints)
    assert bones.points[1].x == pytest.approx(right.keypoints[1][0])     # bone (0, 1)
    assert bones.color.r > bones.color.b and bones.scale.x > 0 and joints.scale.x > 0
    assert all(m.ns == 'hands' for m in arr.markers)
    # two hands of one side: the more confident one; both sides drawn in their colours
    arr = markers.hand_markers(_hands3d([_hand(0, conf=0.3), _hand(0, 0.1, conf=0.8), right]))
    by_id = {m.id: m for m in arr.markers}
    assert all(m.action == Marker.ADD for m in arr.markers) and len(arr.markers) == 4
    assert by_id[1].points[0].z == pytest.approx(_hand(0, 0.1).keypoints[0][2])
    assert by_id[0].color.b > by_id[0].color.r
    # no hands at all: only deletes
    assert [m.action for m in markers.hand_markers(_hands3d([])).markers] == [Marker.DELETE] * 4


def test_mesh_and_points_markers():
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header
    from visualization_msgs.msg import Marker
    from dexman_perception.nodes import markers
    v = np.array([[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0], [0, 0, 0.1]], float)
    f = np.array([[0, 1, 2], [0, 1, 3], [1, 2, 3]])
    hdr = Header(stamp=Time(sec=3, nanosec=9), frame_id='camera_optical')
    m = markers.mesh_marker(v, f, 'object_0', hdr, 'meshes', 4, (0.2, 0.8, 0.2, 0.7))
    assert m.type == Marker.TRIANGLE_LIST and m.frame_locked and m.id == 4 and m.ns == 'meshes'
    assert m.header.frame_id == 'object_0' and (m.header.stamp.sec, m.header.stamp.nanosec) == (3, 9)
    assert m.pose.orientation.w == 1.0 and (m.scale.x, m.scale.y, m.scale.z) == (1.0, 1.0, 1.0)
    np.testing.assert_allclose([[p.x, p.y, p.z] for p in m.points], v[f.ravel()])
    assert m.color.a == pytest.approx(0.7)
    assert markers.mesh_marker(v, f, 'o', 3_000_000_009, 'n', 0, (1, 1, 1, 1)).header.stamp.nanosec == 9
    with pytest.raises(ValueError):
        markers.mesh_marker(v, [[0, 1, 4]], 'o', hdr, 'n', 0, (1, 1, 1, 1))
    pts = np.array([[0, 0, 1], [np.nan, 0, 1], [1, 2, 3]], float)
    p = markers.points_marker(pts, hdr, 'tracks', 2, (1, 0, 0, 1), size=0.01)
    assert p.type == Marker.POINTS and p.header.frame_id == 'camera_optical'
    assert len(p.points) == 2 and (p.scale.x, p.scale.y) == (0.01, 0.01)
    assert len(markers.points_marker(np.zeros((0, 3)), hdr, 't', 0, (1, 1, 1, 1)).points) == 0


def _image(arr, encoding, stamp_ns=1_000_000_007):
    from sensor_msgs.msg import Image
    from dexman_perception.nodes.perception_msgs import header
    f = image_codec.numpy_to_image(arr, encoding)
    return Image(header=header(stamp_ns, 'camera_optical'), height=f.height, width=f.width,
                 encoding=f.encoding, is_bigendian=f.is_bigendian, step=f.step, data=f.data)


def test_metric_depth_encodings_invalid_pixels_and_size():
    from dexman_perception.core.stages import StageFailure
    from dexman_perception.nodes.depth_node import metric_depth
    from dexman_perception.nodes.perception_msgs import depth_msg, depth_of
    d = np.array([[0.5, 0.0, -1.0], [np.inf, np.nan, 2.25]], np.float32)
    out = metric_depth(_image(d, '32FC1'), (2, 3))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0.5, np.nan, np.nan], [np.nan, np.nan, 2.25]])
    mm = np.array([[500, 0, 1234]], np.uint16)
    np.testing.assert_allclose(metric_depth(_image(mm, '16UC1'), (1, 3)), [[0.5, np.nan, 1.234]])
    with pytest.raises(StageFailure, match='registered to the colour image'):
        metric_depth(_image(d, '32FC1'), (4, 6))
    with pytest.raises(StageFailure, match='not a metric depth encoding'):
        metric_depth(_image(np.zeros((2, 3), np.uint8), 'mono8'), (2, 3))
    # the output message round-trips, NaN included, with the source header
    msg = depth_msg(out, _image(d, '32FC1').header)
    assert msg.encoding == '32FC1' and msg.header.stamp.nanosec == 7
    np.testing.assert_array_equal(depth_of(msg), out)


def test_converters_round_trip():
    from dexman_perception.core.stages import BodyEstimate
    from dexman_perception.nodes.perception_msgs import body_msg, body_of, hands_arrays, header
    left, right = _hand(0), _hand(1)
    kp, valid, wrist = hands_arrays(_hands3d([right, left]))
    assert valid.tolist() == [True, True]
    np.testing.assert_allclose(kp[0], left.keypoints)
    np.testing.assert_allclose(kp[1], right.keypoints)
    np.testing.assert_allclose(wrist[1][:3, 3], right.keypoints[0])
    b = BodyEstimate(left_hip=np.array([0.1, 0.3, 1.2]), right_hip=np.array([-0.1, 0.3, 1.2]),
                     pelvis=np.array([0.0, 0.3, 1.2]), confidence=0.75)
    back = body_of(body_msg(b, header(1, 'camera_optical')))
    np.testing.assert_allclose(back.left_hip, b.left_hip)
    np.testing.assert_allclose(back.pelvis, b.pelvis)
    assert back.confidence == pytest.approx(0.75)
    assert body_of(body_msg(None, header(1, 'camera_optical'))) is None


def test_relative_depth_video_aligns_the_chunks():
    """The vggt path of the depth node: chunks of relative depth (each with its own affine map)
    come out aligned to the first chunk."""
    from dexman_perception.nodes.depth_node import relative_depth_video
    rng = np.random.default_rng(3)
    truth = [1.0 + rng.random((6, 8)).astype(np.float32) for _ in range(11)]
    frames = [np.full((6, 8, 3), i, np.uint8) for i in range(11)]

    class Fake:
        calls = []

        def predict(self, chunk):
            k = len(self.calls)
            self.calls.append([int(f[0, 0, 0]) for f in chunk])
            a, b = 1.0 + 0.5 * k, 0.1 * k
            return [a * truth[int(f[0, 0, 0])] + b for f in chunk]

    fake = Fake()
    out = relative_depth_video(fake, frames, chunk_size=5, overlap=2)
    assert fake.calls == [[0, 1, 2, 3, 4], [3, 4, 5, 6, 7], [6, 7, 8, 9, 10]]
    assert len(out) == 11
    np.testing.assert_allclose(np.stack(out), np.stack(truth), rtol=1e-5)


# ================================================================================ integration
def _domain(k: int) -> int:
    """A private domain per test (k = 0, 1, 2): 215..232, apart from conftest's 1..100, and
    above Linux's ephemeral port range (domains 102..214 map Fast DDS ports into it, where
    another process's socket can take a participant's port)."""
    return 215 + (os.getpid() % 6) * 3 + k


def test_depth_node_vggt_batch_in_order_with_a_fake_backend(monkeypatch):
    """backend:=vggt in-process (no DDS traffic): frames are buffered, a bad frame stays in its
    place, and finish() publishes every frame in stamp order, aligned, NaN for the bad one."""
    import rclpy
    from dexman_msgs.msg import StageStatus
    from dexman_perception.nodes import depth_node as dn
    truth = {i: 1.0 + 0.1 * i + np.arange(12, dtype=np.float32).reshape(3, 4) / 100 for i in range(7)}

    class Fake:
        n = 0

        def predict(self, frames):
            Fake.n += 1
            return [(0.5 * Fake.n) * truth[int(f[0, 0, 0])] for f in frames]

    monkeypatch.setattr(dn.DepthNode, 'create_backend', lambda self, *a, **k: Fake())
    rclpy.init(domain_id=_domain(2),           # the default context: StageNode takes no context
               args=['x', '--ros-args', '-p', 'backend:=vggt', '-p', 'chunk_size:=4',
                     '-p', 'chunk_overlap:=2'])
    try:
        node = dn.DepthNode()
    except BaseException:
        rclpy.shutdown()
        raise
    try:
        published = []
        monkeypatch.setattr(node.pub, 'publish', published.append)
        assert node.state == StageStatus.STATE_WAITING and isinstance(node.backend, Fake)
        frames = []
        for i in range(7):
            img = _image(np.full((3, 4, 3), i, np.uint8), 'rgb8', stamp_ns=10**9 + i)
            if i == 3:
                img.encoding = 'not_an_encoding'
            frames.append(img)
        node._run([(10**9 + i, {'image': img}, []) for i, img in enumerate(frames)])
        assert published == [] and node.frames_out == 7 and node.frames_invalid == 1
        node.finish()
        from dexman_perception.nodes.perception_msgs import depth_of
        assert [m.header.stamp.nanosec for m in published] == list(range(7))
        good = [i for i in range(7) if i != 3]
        for i in good:
            np.testing.assert_allclose(depth_of(published[i]), 0.5 * truth[i], rtol=1e-5)
        assert np.isnan(depth_of(published[3])).all() and depth_of(published[3]).shape == (3, 4)
        assert 'not applied' in node.message
    finally:
        node.destroy_node()
        rclpy.shutdown()


def test_depth_node_vggt_without_checkpoint_stops_with_the_adapters_message():
    import rclpy
    from dexman_msgs.msg import StageStatus
    from dexman_perception.nodes import depth_node as dn
    rclpy.init(domain_id=_domain(2), args=['x', '--ros-args', '-p', 'backend:=vggt'])
    try:
        node = dn.DepthNode()
        try:
            assert node.state == StageStatus.STATE_STOPPED and node.backend is None
            assert "depth backend 'vggt' cannot run here: vggt:" in node.message
            assert 'checkpoint' in node.message or 'pip install' in node.message
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown()


def test_hands_node_drops_non_metric_depth_and_checks_the_camera_info():
    """In-process HandsNode: a depth stage on vggt (relative depth) is dropped from the join
    like a stopped one; a CameraInfo of another size makes the frame invalid (empty Hands3D)."""
    import rclpy
    from sensor_msgs.msg import CameraInfo
    from dexman_msgs.msg import StageStatus
    from dexman_perception.core.backends import mediapipe_models as mm
    from dexman_perception.nodes import hands_node as hn
    try:
        mm.bundle_path(mm.HAND_BUNDLE, None)
    except Exception as e:  # noqa: BLE001
        pytest.skip(f'MediaPipe hand bundle unavailable: {e}')
    rclpy.init(domain_id=_domain(2), args=['x'])
    try:
        node = hn.HandsNode()
        try:
            published = []
            node.hands_pub.publish = published.append
            assert 'depth' not in node.sync.absent
            node._on_stage_status(StageStatus(stage='depth', node='/other', backend='vggt',
                                              state=StageStatus.STATE_RUNNING))
            assert 'depth' in node.sync.absent
            node._on_camera_info(CameraInfo(width=640, height=480,
                                            k=[500.0, 0, 320, 0, 500, 240, 0, 0, 1]))
            img = _image(np.zeros((120, 160, 3), np.uint8), 'rgb8', stamp_ns=2 * 10**9)
            node._run([(2 * 10**9, {'image': img}, ['depth'])])
            assert len(published) == 1 and published[0].hands == [] and node.frames_invalid == 1
            assert 'camera_info is for 640x480 images, the image is 160x120' in node.message
        finally:
            node.close()
            node.destroy_node()
    finally:
        rclpy.shutdown()


def _env(domain):
    return dict(os.environ, ROS_DOMAIN_ID=str(domain), RCUTILS_COLORIZED_OUTPUT='0',
                GLOG_minloglevel='2', TF_CPP_MIN_LOG_LEVEL='2')


def _start(module, params, domain, log):
    cmd = [sys.executable, '-m', f'dexman_perception.nodes.{module}', '--ros-args']
    cmd += param_args(params)
    return subprocess.Popen(cmd, stdout=open(log, 'w'), stderr=subprocess.STDOUT, env=_env(domain))


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return [p.returncode for p in procs]


class Graph:
    """The test's own node: collects every output and the stage statuses."""

    def __init__(self, domain):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from sensor_msgs.msg import Image
        from visualization_msgs.msg import MarkerArray
        from dexman_msgs.msg import BodyPose, Hands3D, StageStatus
        from dexman_common.ros.node_util import latched_qos, reliable_keep_all_qos
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node('perception_nodes_test', context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.got = collections.defaultdict(list)
        self.t_recv = collections.defaultdict(list)       # monotonic receive times per topic
        self.status = {}
        q = reliable_keep_all_qos()
        self.subs = {}
        for topic, t in (('/dexman/depth/image', Image), ('/dexman/hands', Hands3D),
                         ('/dexman/markers/hands', MarkerArray), ('/dexman/body', BodyPose)):
            self.subs[topic] = self.node.create_subscription(t, topic, self._keep(topic), q)
        self.node.create_subscription(StageStatus, '/dexman/perception/status',
                                      lambda m: self.status.__setitem__(m.stage, m), latched_qos(50))

    def _keep(self, topic):
        def cb(msg):
            self.got[topic].append(msg)
            self.t_recv[topic].append(time.monotonic())
        return cb

    def rate(self, topic):
        """Outputs per second between the first and the last one on `topic`."""
        t = self.t_recv[topic]
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else float('nan')

    def spin_until(self, cond, timeout, procs, logs, fail=True):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            for p, log in zip(procs, logs):
                if p.poll() is not None:
                    pytest.fail(f'{log.name} exited with {p.returncode}:\n{log.read_text()[-3000:]}')
            self.ex.spin_once(timeout_sec=0.05)
        if not fail:
            return
        details = '\n'.join(f'--- {log.name}:\n{log.read_text()[-2000:]}' for log in logs)
        states = [(s, m.state, m.frames_out, m.message) for s, m in self.status.items()]
        pytest.fail(f'timeout; statuses {states}; '
                    f'received {({t: len(v) for t, v in self.got.items()})}\n{details}')

    def final(self, stage):
        from dexman_msgs.msg import StageStatus
        st = self.status.get(stage)
        return st is not None and st.state in (StageStatus.STATE_DONE, StageStatus.STATE_STOPPED)

    def close(self):
        import rclpy
        self.ex.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def _run_graph(bag, nodes, tmp_path, domain, expect_final, timeout=60):
    """Start the stage nodes, the test's collector and the player; wait until every stage in
    `expect_final` is DONE or STOPPED; returns (graph, {node: log path}, procs, seconds)."""
    g = Graph(domain)
    procs, logs = [], []
    try:
        for module, params in nodes:
            log = tmp_path / f'{module}.log'
            procs.append(_start(module, params, domain, log))
            logs.append(log)
        # outputs are volatile: the player starts once this node is matched with every stage's
        # outputs (discovery under CPU load can take seconds) and every stage is ready
        stages = [m.replace('_node', '') for m, _ in nodes]
        g.spin_until(lambda: all(s in g.status for s in stages) and all(
            g.subs[t].get_publisher_count() > 0 for s in stages for t in _OUT[s]), 60, procs, logs)
        g.spin_until(lambda: False, 0.3, procs, logs, fail=False)
        log = tmp_path / 'bag_player.log'
        procs.append(_start('bag_player', {'bag_path': str(bag), 'rate': 0.0, 'exit_on_finish': False,
                                           'wait_for_stages': len(nodes), 'subscriber_timeout_s': 60.0,
                                           'exclude_topics': EXCLUDE}, domain, log))
        logs.append(log)
        t0 = time.monotonic()
        g.spin_until(lambda: all(g.final(s) for s in expect_final), timeout, procs, logs)
        # outputs are published before the DONE status; let the last ones land
        g.spin_until(lambda: all(len(g.got[t]) >= n for t, n in _expected_counts(g)), 5, procs, logs)
        elapsed = time.monotonic() - t0
        alive = [p.poll() is None for p in procs[:-1]]
    except BaseException:
        _stop(procs)
        g.close()
        raise
    rcs = _stop(procs)
    g.exit_codes = dict(zip([m for m, _ in nodes], rcs))        # the player's is not checked
    return g, dict(zip([m for m, _ in nodes] + ['bag_player'], logs)), alive, elapsed


_OUT = {'depth': ['/dexman/depth/image'], 'hands': ['/dexman/hands', '/dexman/markers/hands'],
        'body': ['/dexman/body']}


def _expected_counts(g):
    from dexman_msgs.msg import StageStatus
    return [(t, st.frames_out) for s, st in g.status.items() if st.state == StageStatus.STATE_DONE
            for t in _OUT.get(s, [])]


def _check_clean_exit(g, logs):
    """Ctrl-C ends every stage node with status 0 and no traceback."""
    for node, rc in g.exit_codes.items():
        text = logs[node].read_text()
        assert rc == 0 and 'Traceback' not in text, (node, rc, text[-3000:])


def _stamp(msg):
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def _bag_frames(bag, topic):
    from dexman_common.bag_reader import BagReader
    with BagReader(bag) as b:
        return [b.deserialize(m) for m in b.messages([topic])]


@pytest.fixture(scope='module')
def cases(tmp_path_factory):
    from dexman_synthetic.core.degradations import DegradationConfig
    from dexman_synthetic.core.generate import GenerateOptions, generate
    root = tmp_path_factory.mktemp('perception_nodes')
    common = dict(task='pick_place', shape='cylinder', seed=0, width=W, height=H, fps=FPS,
                  duration=DURATION)
    generate(GenerateOptions(**common, depth=True, case_id='rgbd',
                             degrade=DegradationConfig(depth_holes=2, hole_value='zero')),
             root / 'rgbd', progress=False)
    generate(GenerateOptions(**common, depth=False, case_id='rgb'), root / 'rgb', progress=False)
    _with_bad_image(root / 'rgb' / 'bag', root / 'rgb_bad_bag', index=2)
    return root


def _with_bad_image(src, dst, index):
    """Copy the camera topics of a bag, giving image `index` an unknown encoding."""
    from rosbags.rosbag2 import Reader, Writer
    from rosbags.rosbag2.enums import StoragePlugin
    from dexman_synthetic.core.bag_writer import typestore
    ts = typestore()
    keep = ('/camera/image_raw', '/camera/camera_info')
    with Reader(src) as r, Writer(dst, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        conns = {c.id: w.add_connection(c.topic, c.msgtype, typestore=ts) for c in r.connections
                 if c.topic in keep}
        n = 0
        for c, t, raw in r.messages():
            if c.id not in conns:
                continue
            if c.topic == '/camera/image_raw':
                if n == index:
                    msg = ts.deserialize_cdr(raw, c.msgtype)
                    msg.encoding = 'not_an_encoding'
                    raw = ts.serialize_cdr(msg, c.msgtype)
                n += 1
            w.write(conns[c.id], t, raw)


@pytest.mark.flaky(reruns=1)   # timing under CPU load: 1 failure in 3 clean-clone runs (see the stop note)
def test_rgbd_bag_depth_hands_body(cases, tmp_path):
    from dexman_msgs.msg import StageStatus
    from visualization_msgs.msg import Marker
    from dexman_perception.nodes.perception_msgs import depth_of
    from dexman_synthetic.core import ground_truth as gtm
    case = cases / 'rgbd'
    bag = case / 'bag'
    images = _bag_frames(bag, '/camera/image_raw')
    stamps = [_stamp(m) for m in images]
    nodes = [('depth_node', {}), ('hands_node', {}), ('body_node', {})]
    g, logs, alive, elapsed = _run_graph(bag, nodes, tmp_path, _domain(0), ['depth', 'hands', 'body'])
    try:
        for stage in ('depth', 'hands', 'body'):
            st = g.status[stage]
            log = logs[f'{stage}_node'].read_text()[-2000:]
            assert st.state == StageStatus.STATE_DONE, (stage, st.message, log)
            assert st.frames_in == st.frames_out == len(stamps), stage
        assert all(alive)
        _check_clean_exit(g, logs)
        # one output per image, in order, with the image's header
        for topic in ('/dexman/depth/image', '/dexman/hands', '/dexman/body'):
            assert [_stamp(m) for m in g.got[topic]] == stamps, topic
            assert {m.header.frame_id for m in g.got[topic]} == {'camera_optical'}, topic
        assert [_stamp(m.markers[0]) for m in g.got['/dexman/markers/hands']] == stamps

        # depth: exactly the bag's depth, NaN where the bag has 0 (holes)
        bag_depth = _bag_frames(bag, '/camera/depth/image_raw')
        n_holes = 0
        for out, src in zip(g.got['/dexman/depth/image'], bag_depth):
            assert out.encoding == '32FC1' and (out.height, out.width) == (H, W)
            d = image_codec.image_to_numpy(src).astype(np.float32)
            n_holes += int((d == 0).sum())
            expect = np.where(d > 0, d, np.nan)
            np.testing.assert_array_equal(depth_of(out), expect)
        assert n_holes > 0                                 # the holes were there and became NaN
        assert g.status['depth'].frames_invalid == 0

        # hands: metric, near the ground truth (camera_optical)
        gt = gtm.load(case)
        idx = {int(s): i for i, s in enumerate(gt.stamps_ns)}
        Tcw = gt.T_camera_world
        errors, frames_with_hands = [], 0
        for msg in g.got['/dexman/hands']:
            frames_with_hands += bool(msg.hands)
            assert len({h.handedness for h in msg.hands}) == len(msg.hands) <= 2
            for h in msg.hands:
                assert h.valid and 0 <= h.confidence <= 1
                kp = np.array([[p.x, p.y, p.z] for p in h.keypoints])
                truth = gt.hand_keypoints[h.handedness, idx[_stamp(msg)]] @ Tcw[:3, :3].T + Tcw[:3, 3]
                errors.append(float(np.linalg.norm(kp - truth, axis=1).mean()))
        print(f'\nRGB-D graph: {len(stamps)} frames in {elapsed:.1f} s; hands in {frames_with_hands} '
              f'frames, {len(errors)} hands, mean keypoint error median '
              f'{np.median(errors) * 100:.1f} cm, '
              f'max {np.max(errors) * 100:.1f} cm')
        assert frames_with_hands >= 0.8 * len(stamps)
        assert np.median(errors) < 0.06 and np.max(errors) < 0.15
        assert g.status['hands'].frames_invalid == len(stamps) - frames_with_hands
        for arr, msg in zip(g.got['/dexman/markers/hands'], g.got['/dexman/hands']):
            adds = {m.id for m in arr.markers if m.action == Marker.ADD}
            assert adds == {2 * h.handedness + k for h in msg.hands for k in (0, 1)}

        # body: a BodyPose per frame; a found body is placed in front of the camera
        bodies = g.got['/dexman/body']
        for b in bodies:
            if b.valid:
                assert 0.2 < b.pelvis.z < 5.0
        assert g.status['body'].frames_invalid == sum(not b.valid for b in bodies)
    finally:
        g.close()


def test_rgb_only_bag_depth_stops_and_hands_go_on(cases, tmp_path):
    from dexman_msgs.msg import StageStatus
    bag = cases / 'rgb_bad_bag'
    images = _bag_frames(bag, '/camera/image_raw')
    stamps = [_stamp(m) for m in images]
    assert images[2].encoding == 'not_an_encoding'
    g, logs, alive, elapsed = _run_graph(bag, [('depth_node', {}), ('hands_node', {})], tmp_path,
                                         _domain(1), ['depth', 'hands'])
    try:
        depth, hands = g.status['depth'], g.status['hands']
        assert depth.state == StageStatus.STATE_STOPPED
        assert 'no depth on /camera/depth/image_raw' in depth.message and 'RGB-only' in depth.message
        assert 'backend:=vggt' in depth.message
        log = logs['hands_node'].read_text()[-2000:]
        assert hands.state == StageStatus.STATE_DONE, (hands.message, log)
        assert alive == [True, True]                     # both stay up (late joiners see why)
        _check_clean_exit(g, logs)
        assert g.got['/dexman/depth/image'] == []
        msgs = g.got['/dexman/hands']
        assert [_stamp(m) for m in msgs] == stamps        # every frame, the bad one included
        assert msgs[2].hands == []                        # unknown encoding: invalid, empty
        with_hands = [m for m in msgs if m.hands]
        assert len(with_hands) >= 0.6 * len(stamps)
        for m in with_hands:                              # RGB-only PnP: metric, in front
            for h in m.hands:
                z = np.array([p.z for p in h.keypoints])
                assert np.all(np.isfinite(z)) and 0.2 < np.median(z) < 5.0
        assert hands.frames_out == len(stamps) and hands.frames_invalid >= 1
        assert 'not_an_encoding' in logs['hands_node'].read_text()
        print(f'\nRGB-only graph: {len(stamps)} frames in {elapsed:.1f} s; hands in '
              f'{len(with_hands)} frames')
    finally:
        g.close()
