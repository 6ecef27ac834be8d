"""robot_state_publisher_py and its FK core (dexman_description.urdf_fk).

Core: link poses of the G1 + Shadow URDF equal MuJoCo's ``mj_kinematics`` on the MJCF of the same
build (every body, random in-range joints); the pelvis' fixed transform is the documented mount;
revolute/continuous/prismatic/mimic/planar/floating joints of a small URDF give hand-computed
transforms; bad URDFs and joint states are rejected with the reason; the /tf rate limit behaves as
upstream's.
Node over DDS: a JointState with an elbow angle gives /tf stamped with its stamp, which composed
with /tf_static puts the elbow and palm links where MuJoCo does; /robot_description is latched;
an invalid JointState is ignored and the node keeps publishing; a URDF taken from the
robot_description topic with a mimic joint; missing or bad URDF exits 2.
"""
import math
import os
import subprocess
import time

import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')

from dexman_common.geometry import matrix_from_quat  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402
from dexman_description.urdf_fk import (PublishGate, UrdfError, UrdfKinematics,  # noqa: E402
                                        finite_positions)
from ros_args import param_args, ros2  # noqa: E402

_OK, _WHY = rm.assets_available()
needs_assets = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')

SMALL_URDF = """<?xml version="1.0"?>
<robot name="small">
  <link name="base"/> <link name="l1"/> <link name="l2"/> <link name="l3"/> <link name="l4"/>
  <link name="l5"/> <link name="l6"/>
  <joint name="a" type="revolute">
    <parent link="base"/> <child link="l1"/>
    <origin xyz="0 0 1" rpy="0 0 0"/> <axis xyz="0 0 2"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/>
  </joint>
  <joint name="b" type="revolute">
    <parent link="l1"/> <child link="l2"/>
    <origin xyz="1 0 0" rpy="0 0 0"/> <axis xyz="0 1 0"/>
    <limit lower="-3" upper="3" effort="1" velocity="1"/>
    <mimic joint="a" multiplier="2" offset="0.1"/>
  </joint>
  <joint name="c" type="prismatic">
    <parent link="l2"/> <child link="l3"/>
    <origin xyz="0 0 0" rpy="0 0 1.5707963267948966"/> <axis xyz="1 0 0"/>
    <limit lower="0" upper="1" effort="1" velocity="1"/>
  </joint>
  <joint name="d" type="continuous">
    <parent link="l3"/> <child link="l4"/> <axis xyz="1 0 0"/>
  </joint>
  <joint name="e" type="fixed">
    <parent link="base"/> <child link="l5"/> <origin xyz="0.5 0 0"/>
  </joint>
  <joint name="f" type="floating">
    <parent link="base"/> <child link="l6"/> <origin xyz="0 0.5 0"/>
  </joint>
</robot>
"""


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    if not _OK:
        pytest.skip(f'robot asset packages not installed: {_WHY}')
    out = tmp_path_factory.mktemp('rsp') / 'robot'
    rm.build(out)
    return out


def _mj_poses(built, q_by_name):
    m = rm.load_model(built)
    d = mujoco.MjData(m)
    for name, q in q_by_name.items():
        d.qpos[m.jnt_qposadr[m.joint(name).id]] = q
    mujoco.mj_kinematics(m, d)
    return m, {m.body(b).name: (d.xpos[b].copy(), d.xmat[b].reshape(3, 3).copy()) for b in range(1, m.nbody)}


# ------------------------------------------------------------------------------------ FK core

@needs_assets
def test_fk_equals_mujoco_for_every_link(built):
    kin = UrdfKinematics.from_file(built / rm.URDF_NAME)
    m = rm.load_model(built)
    assert kin.root == 'world' and not kin.mimics and not kin.skipped
    assert len(kin.moving) == m.njnt == 58 and len(kin.static) == 18
    rng = np.random.default_rng(3)
    for _ in range(3):
        q = rng.uniform(m.jnt_range[:, 0], m.jnt_range[:, 1])
        names = [m.joint(j).name for j in range(m.njnt)]
        _, mj = _mj_poses(built, dict(zip(names, q)))
        poses = kin.link_poses(dict(zip(names, q)))
        assert set(mj) <= set(poses) and len(poses) == m.nbody     # + the URDF's world link
        for body, (p, R) in mj.items():
            np.testing.assert_allclose(poses[body][:3, 3], p, atol=1e-9, err_msg=body)
            np.testing.assert_allclose(poses[body][:3, :3], R, atol=1e-9, err_msg=body)


@needs_assets
def test_fixed_transforms_and_pelvis_mount(built):
    kin = UrdfKinematics.from_file(built / rm.URDF_NAME)
    fixed = {t.joint: t for t in kin.fixed_transforms()}
    assert len(fixed) == 18 and all(t.joint.endswith('_fixed') for t in fixed.values())
    pelvis = fixed['pelvis_fixed']
    assert (pelvis.parent, pelvis.child) == ('world', 'pelvis')
    # docs/robot_model.md: pelvis at (0, 0, 0.791864), turned +90 deg about z
    np.testing.assert_allclose(pelvis.translation, [0, 0, 0.791864], atol=1e-9)
    np.testing.assert_allclose(pelvis.quaternion_xyzw, [0, 0, math.sqrt(0.5), math.sqrt(0.5)], atol=1e-9)
    moving = kin.moving_transforms({'right_elbow_joint': 0.5, 'not_a_joint': 1.0, 'rh_palm_fixed': 2.0})
    assert [(t.joint, t.parent, t.child) for t in moving] == [
        ('right_elbow_joint', 'right_shoulder_yaw_link', 'right_elbow_link')]


def test_joint_types_and_mimic_hand_computed():
    kin = UrdfKinematics.from_xml(SMALL_URDF)
    assert kin.root == 'base' and kin.mimics['b'].multiplier == 2.0 and kin.skipped == ['f']
    t = {x.joint: x.matrix for x in kin.moving_transforms({'a': 0.3, 'c': 0.25, 'd': -0.4})}
    assert sorted(t) == ['a', 'b', 'c', 'd']                      # b from its mimic of a
    np.testing.assert_allclose(t['a'][:3, :3], _rz(0.3), atol=1e-12)        # axis (0,0,2) normalised
    np.testing.assert_allclose(t['a'][:3, 3], [0, 0, 1])
    np.testing.assert_allclose(t['b'][:3, :3], _ry(2 * 0.3 + 0.1), atol=1e-12)
    np.testing.assert_allclose(t['b'][:3, 3], [1, 0, 0])
    # prismatic along x of its joint frame, which is turned 90 deg about z: moves along +y
    np.testing.assert_allclose(t['c'][:3, 3], [0, 0.25, 0], atol=1e-12)
    c, s = math.cos(-0.4), math.sin(-0.4)
    np.testing.assert_allclose(t['d'][:3, :3], [[1, 0, 0], [0, c, -s], [0, s, c]], atol=1e-12)
    # an explicitly given mimic joint keeps its value (upstream)
    t2 = {x.joint: x.matrix for x in kin.moving_transforms({'a': 0.3, 'b': -1.0})}
    np.testing.assert_allclose(t2['b'][:3, :3], _ry(-1.0), atol=1e-12)
    assert [x.joint for x in kin.fixed_transforms()] == ['e']         # floating f: no transform
    poses = kin.link_poses({'a': 0.3})
    # l2 = Rz(0.3) at (0,0,1), then (1,0,0) in that frame
    np.testing.assert_allclose(poses['l2'][:3, 3], [math.cos(0.3), math.sin(0.3), 1.0], atol=1e-12)
    assert 'l6' not in poses and np.allclose(poses['l5'][:3, 3], [0.5, 0, 0])


@pytest.mark.parametrize('xml, match', [
    ('', 'is empty'),
    ('not xml at all', 'not a valid URDF'),
    ('<robot name="r"><link name="a"/><link name="b"/></robot>', 'one root link'),
    ('<robot name="r"><link name="a"/><link name="b"/><joint name="j" type="revolute">'
     '<parent link="a"/><child link="b"/><axis xyz="0 0 1"/><mimic joint="zz"/></joint></robot>',
     "mimics unknown joint 'zz'"),
    ('<robot name="r"><link name="a"/><joint name="j" type="fixed"><parent link="a"/>'
     '<child link="c"/></joint></robot>', "undeclared links \\['c'\\]"),
])
def test_bad_urdf_is_rejected_with_the_reason(xml, match):
    with pytest.raises(UrdfError, match=match):
        UrdfKinematics.from_xml(xml)


def test_bad_joint_states_are_rejected():
    assert finite_positions(['a', 'b'], [0.5, -1]) == {'a': 0.5, 'b': -1.0}
    with pytest.raises(ValueError, match='2 joint names but 1 positions'):
        finite_positions(['a', 'b'], [0.5])
    with pytest.raises(ValueError, match=r"non-finite position for joint\(s\) \['b'\]"):
        finite_positions(['a', 'b'], [0.5, float('nan')])


def test_publish_gate_is_upstreams_rate_limit():
    ms = 1_000_000
    gate = PublishGate(20.0)                                # interval int(1000/20) = 50 ms
    now = 10_000 * ms
    assert gate.check(['a'], 1000 * ms, now)                # first time: always
    assert not gate.check(['a'], 1040 * ms, now)            # 40 ms later: too soon
    assert gate.check(['a'], 1050 * ms, now)                # 50 ms: published
    assert gate.check(['a', 'b'], 1060 * ms, now)           # b never published: its last is 0
    assert not gate.check(['a', 'b'], 1100 * ms, now)       # least recent (a, b) at 1060
    assert not gate.check(['a'], 1000 * ms, now)            # older stamp
    assert gate.check(['a'], 1000 * ms, now - 1)            # clock went back: record cleared
    assert PublishGate(30.0).interval_ns == 33 * ms         # integer milliseconds, as upstream
    assert PublishGate(20.0, ignore_timestamp=True).check(['a'], 0, now)
    with pytest.raises(ValueError, match='publish_frequency'):
        PublishGate(0.0)


# ------------------------------------------------------------------------------ node over DDS

def _start(params, ns=None):
    cmd = [ros2(), 'run', 'dexman_description', 'robot_state_publisher_py', '--ros-args']
    cmd += param_args(params) + (['-r', f'__ns:={ns}'] if ns else [])
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))


def _stop(proc):
    if proc.stdout is None or proc.stdout.closed:          # stopped before
        return ''
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.communicate()[0]


class _Listener:
    """A test node collecting /tf, /tf_static and robot_description."""

    def __init__(self, ns=''):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node('rsp_test', context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.tf, self.static, self.desc = [], [], []
        self.node.create_subscription(TFMessage, '/tf', self.tf.append, 100)
        self.node.create_subscription(TFMessage, '/tf_static', self.static.append, latched)
        self.node.create_subscription(String, f'{ns}/robot_description', self.desc.append, latched)
        self.js_pub = self.node.create_publisher(JointState, f'{ns}/joint_states', 10)
        self.desc_pub = self.node.create_publisher(String, f'{ns}/robot_description', latched)
        self.JointState, self.String = JointState, String

    def spin_until(self, cond, timeout, proc):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            if proc.poll() is not None:
                pytest.fail(f'node exited with {proc.returncode}:\n{_stop(proc)}')
            self.ex.spin_once(timeout_sec=0.05)
        return cond()

    def joint_state(self, positions, sec, nanosec=0):
        js = self.JointState(name=list(positions), position=[float(v) for v in positions.values()])
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nanosec
        return js

    def tf_at(self, sec, nanosec=0):
        """{child: (parent, 4x4)} of the /tf messages stamped (sec, nanosec)."""
        out = {}
        for msg in self.tf:
            for t in msg.transforms:
                if (t.header.stamp.sec, t.header.stamp.nanosec) == (sec, nanosec):
                    out[t.child_frame_id] = (t.header.frame_id, _matrix(t.transform))
        return out

    def publish_until_tf(self, js, proc, timeout=10):
        """Publish ``js`` (best-effort subscriber: again every 0.2 s) until /tf carries its stamp."""
        sec, nanosec = js.header.stamp.sec, js.header.stamp.nanosec
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.js_pub.publish(js)
            if self.spin_until(lambda: self.tf_at(sec, nanosec), 0.2, proc):
                return self.tf_at(sec, nanosec)
        pytest.fail(f'no /tf for the joint state stamped {sec}.{nanosec:09d}')

    def close(self):
        import rclpy
        self.node.destroy_node()
        rclpy.shutdown(context=self.ctx)


def _matrix(transform):
    T = np.eye(4)
    r, t = transform.rotation, transform.translation
    T[:3, :3] = matrix_from_quat(np.array([r.x, r.y, r.z, r.w]))
    T[:3, 3] = [t.x, t.y, t.z]
    return T


def _chain(frames, link, root='world'):
    """Pose of ``link`` in ``root`` by composing {child: (parent, T)} up the tree."""
    T = np.eye(4)
    while link != root:
        parent, Tp = frames[link]
        T = Tp @ T
        link = parent
    return T


@needs_assets
@pytest.mark.ros
def test_node_publishes_link_tf_matching_mujoco(built):
    urdf = built / rm.URDF_NAME
    proc = _start({'urdf_file': str(urdf)})
    lis = _Listener()
    try:
        assert lis.spin_until(lambda: lis.desc and lis.static, 30, proc), _stop(proc)
        assert lis.desc[0].data == urdf.read_text()
        static = {t.child_frame_id: (t.header.frame_id, _matrix(t.transform))
                  for t in lis.static[0].transforms}
        assert len(static) == 18 and static['pelvis'][0] == 'world'

        m = rm.load_model(built)
        q = {m.joint(j).name: 0.0 for j in range(m.njnt)}
        q.update({'right_shoulder_pitch_joint': -0.4, 'right_elbow_joint': 1.2,
                  'right_wrist_roll_joint': 0.3, 'rh_FFJ2': 0.8})
        tf = lis.publish_until_tf(lis.joint_state(q, 1234, 5678), proc)
        assert len(tf) == 58                                  # every moving joint, this stamp
        _, mj = _mj_poses(built, q)
        # the elbow transform alone: the elbow link in the shoulder-yaw link
        parent, T = tf['right_elbow_link']
        assert parent == 'right_shoulder_yaw_link'
        p0, R0 = mj[parent]
        p1, R1 = mj['right_elbow_link']
        np.testing.assert_allclose(T[:3, :3], R0.T @ R1, atol=1e-9)
        np.testing.assert_allclose(T[:3, 3], R0.T @ (p1 - p0), atol=1e-9)
        # world -> palm through /tf_static and /tf
        frames = {**static, **tf}
        for link in ('right_elbow_link', 'rh_palm', 'rh_ffdistal', 'left_wrist_yaw_link'):
            W = _chain(frames, link)
            np.testing.assert_allclose(W[:3, 3], mj[link][0], atol=1e-9, err_msg=link)
            np.testing.assert_allclose(W[:3, :3], mj[link][1], atol=1e-9, err_msg=link)

        # an invalid joint state is ignored; the node keeps publishing
        bad = lis.JointState(name=['right_elbow_joint', 'rh_FFJ2'], position=[0.1])
        bad.header.stamp.sec = 1300
        lis.js_pub.publish(bad)
        # 10 ms after the last published stamp: inside the 20 Hz interval, not published
        soon = lis.joint_state({'right_elbow_joint': 0.0}, 1234, 15_000_678)
        for _ in range(3):
            lis.js_pub.publish(soon)
            lis.spin_until(lambda: False, 0.2, proc)
        assert not lis.tf_at(1234, 15_000_678) and not lis.tf_at(1300)
        tf = lis.publish_until_tf(lis.joint_state({'right_elbow_joint': 0.0}, 1235), proc)
        assert list(tf) == ['right_elbow_link']
        assert proc.poll() is None
        log = _stop(proc)
        assert 'ignored an invalid JointState message: 2 joint names but 1 positions' in log, log
    finally:
        lis.close()
        _stop(proc)


@pytest.mark.ros
def test_node_takes_urdf_from_topic_with_mimic():
    lis = _Listener(ns='/rsp_topic')
    lis.desc_pub.publish(lis.String(data=SMALL_URDF))
    proc = _start({'use_robot_description_topic': True}, ns='/rsp_topic')
    try:
        assert lis.spin_until(lambda: any(t.child_frame_id == 'l5' for m in lis.static
                                          for t in m.transforms), 30, proc), _stop(proc)
        tf = lis.publish_until_tf(lis.joint_state({'a': 0.3}, 77), proc)
        assert sorted(tf) == ['l1', 'l2']                     # l2: the mimic joint b
        np.testing.assert_allclose(tf['l2'][1][:3, :3], _ry(0.7), atol=1e-9)
        assert tf['l2'][0] == 'l1'
    finally:
        lis.close()
        _stop(proc)


@pytest.mark.ros
def test_node_without_or_with_bad_urdf_exits_2(tmp_path):
    out = subprocess.run([ros2(), 'run', 'dexman_description', 'robot_state_publisher_py'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and 'robot_description parameter must not be empty' in out.stderr
    bad = tmp_path / 'bad.urdf'
    bad.write_text('<robot name="r"><link name="a"/><link name="b"/></robot>')
    proc = _start({'urdf_file': str(bad)})
    log = proc.communicate(timeout=60)[0]
    assert proc.returncode == 2 and 'one root link' in log, log
