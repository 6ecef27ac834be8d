"""The dexman_msgs contract: every type builds, serializes to CDR and back, reads in rosbags
(the bag path of the pipeline), and crosses a process boundary over real DDS."""
import math
import pathlib
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from dexman_msgs.msg import (BodyPose, DemonstrationInfo, Hand3D, Hands3D, ObjectMasks,  # noqa: E402
                             PlaybackStatus, ReferenceInfo, TrackedObject, TrackedObjectArray,
                             TrainingProgress)
from dexman_msgs.srv import TrainSkill  # noqa: E402
from dexman_msgs.action import RunTraining  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402

MSG_DIR = pathlib.Path(__file__).resolve().parents[1] / 'src' / 'dexman_msgs' / 'msg'


def make_hand(handedness: int, offset: float) -> Hand3D:
    h = Hand3D(handedness=handedness, confidence=0.75, valid=True)
    h.header.frame_id = 'camera_optical'
    h.header.stamp.sec, h.header.stamp.nanosec = 12, 345
    for i, p in enumerate(h.keypoints):
        p.x, p.y, p.z = offset + 0.01 * i, -0.02 * i, 0.5 + 0.001 * i
    h.keypoint_confidence = np.linspace(0.0, 1.0, 21, dtype=np.float32)
    h.wrist_pose.orientation.w = 1.0
    h.wrist_pose.position.x = offset
    return h


def test_hand_has_21_keypoints_and_round_trips():
    hands = Hands3D(hands=[make_hand(Hand3D.LEFT, -0.1), make_hand(Hand3D.RIGHT, 0.1)])
    hands.header.frame_id = 'camera_optical'
    back = deserialize_message(serialize_message(hands), Hands3D)
    assert [h.handedness for h in back.hands] == [0, 1]
    assert len(back.hands[1].keypoints) == 21
    assert back.hands[1].keypoints[20].x == pytest.approx(0.1 + 0.2)
    assert back.hands[0].keypoints[7].y == pytest.approx(-0.14)
    np.testing.assert_allclose(back.hands[0].keypoint_confidence, np.linspace(0, 1, 21), atol=1e-7)
    assert back.hands[0].header.stamp.nanosec == 345


def test_object_and_summary_messages_round_trip():
    obj = TrackedObject(id='object_0', label='mug', scale=0.12, mesh_resource='file:///tmp/mug.obj',
                        confidence=0.9, status=TrackedObject.STATUS_PREDICTED)
    obj.pose.position.z = 0.8
    obj.pose.orientation.w = math.cos(0.3)
    obj.pose.orientation.z = math.sin(0.3)
    arr = deserialize_message(serialize_message(TrackedObjectArray(objects=[obj, obj])), TrackedObjectArray)
    assert arr.objects[1].label == 'mug' and arr.objects[1].status == 1
    assert arr.objects[0].pose.orientation.z == pytest.approx(math.sin(0.3))
    demo = DemonstrationInfo(demonstration_id='d1', artefact_uri='file:///x/d1/', frame_count=90,
                             valid_frame_count=88, frame_rate=30.0, object_ids=['object_0'],
                             has_right_hand=True)
    back = deserialize_message(serialize_message(demo), DemonstrationInfo)
    assert (back.frame_count, back.valid_frame_count, back.object_ids) == (90, 88, ['object_0'])
    prog = TrainingProgress(job_id='j', state=TrainingProgress.STATE_RUNNING, epoch=3, total_epochs=10,
                            env_steps=2**40, fraction_done=0.3)
    back = deserialize_message(serialize_message(prog), TrainingProgress)
    assert back.env_steps == 2**40 and back.state == TrainingProgress.STATE_RUNNING
    for t in (BodyPose, ObjectMasks, PlaybackStatus, ReferenceInfo):
        assert isinstance(deserialize_message(serialize_message(t()), t), t)


def test_train_skill_service_types_carry_parameter_overrides():
    req = TrainSkill.Request(demonstration_id='demo_7', overrides=[
        Parameter(name='num_envs', value=ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=64))])
    back = deserialize_message(serialize_message(req), TrainSkill.Request)
    assert back.overrides[0].name == 'num_envs' and back.overrides[0].value.integer_value == 64
    resp = deserialize_message(serialize_message(TrainSkill.Response(accepted=False, message='no such demo')),
                               TrainSkill.Response)
    assert resp.accepted is False and resp.message == 'no such demo'
    fb = RunTraining.Feedback()
    fb.progress.epoch = 5
    assert deserialize_message(serialize_message(fb), RunTraining.Feedback).progress.epoch == 5


def test_rosbags_reads_our_cdr_with_types_from_the_msg_files():
    """Bags written by rclpy/ros2 bag must be readable by the pure-Python bag path."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for f in sorted(MSG_DIR.glob('*.msg')):
        types.update(get_types_from_msg(f.read_text(), f'dexman_msgs/msg/{f.stem}'))
    store.register(types)
    raw = serialize_message(Hands3D(hands=[make_hand(Hand3D.RIGHT, 0.2)]))
    msg = store.deserialize_cdr(bytes(raw), 'dexman_msgs/msg/Hands3D')
    assert msg.hands[0].handedness == 1
    assert msg.hands[0].keypoints[4].x == pytest.approx(0.24)
    # and back: rosbags-written bytes decode in rclpy (padding bytes may differ, so compare fields)
    again = deserialize_message(bytes(store.serialize_cdr(msg, 'dexman_msgs/msg/Hands3D')), Hands3D)
    assert again.hands[0].keypoints[4].x == pytest.approx(0.24)
    assert again.hands[0].wrist_pose.position.x == pytest.approx(0.2)


def test_tf2_msgs_is_available_and_not_shadowing_a_system_one():
    """Exactly one tf2_msgs on the ament prefix path: the environment's when it has one, else the
    project's compat/ build (setup.sh builds compat/ only when the environment lacks it)."""
    import os
    from tf2_msgs.msg import TFMessage
    from geometry_msgs.msg import TransformStamped
    root = pathlib.Path(__file__).resolve().parents[1]
    providers = [pathlib.Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep)
                 if p and (pathlib.Path(p) / 'share/ament_index/resource_index/packages/tf2_msgs').is_file()]
    assert len(providers) == 1, providers
    ours = root / 'install' / 'tf2_msgs'
    if providers[0] != ours:
        assert not ours.exists(), 'compat/tf2_msgs was built although the environment has tf2_msgs'
    m = TFMessage(transforms=[TransformStamped(child_frame_id='object_0')])
    assert deserialize_message(serialize_message(m), TFMessage).transforms[0].child_frame_id == 'object_0'


@pytest.mark.ros
def test_hands_cross_a_process_boundary_over_dds(tmp_path):
    """A publisher in another process, a subscriber here: real Fast DDS on loopback."""
    pub_code = textwrap.dedent('''
        import sys, time, rclpy
        from dexman_msgs.msg import Hands3D, Hand3D
        rclpy.init(); n = rclpy.create_node('hands_pub')
        p = n.create_publisher(Hands3D, '/dexman/test_hands', 10)
        deadline = time.time() + 20
        while p.get_subscription_count() == 0 and time.time() < deadline:
            rclpy.spin_once(n, timeout_sec=0.05)
        for k in range(5):
            m = Hands3D(); h = Hand3D(handedness=Hand3D.RIGHT, valid=True); h.keypoints[8].x = 0.1 * k
            m.hands = [h]; m.header.stamp.sec = k; p.publish(m); time.sleep(0.05)
        time.sleep(0.5); n.destroy_node(); rclpy.shutdown()
    ''')
    rclpy.init()
    try:
        node = rclpy.create_node('hands_sub')
        got = []
        node.create_subscription(Hands3D, '/dexman/test_hands', got.append, 10)
        proc = subprocess.Popen([sys.executable, '-c', pub_code])
        deadline = time.time() + 30
        while len(got) < 5 and time.time() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        proc.wait(timeout=30)
        assert proc.returncode == 0
        assert [m.header.stamp.sec for m in got] == [0, 1, 2, 3, 4]
        assert got[3].hands[0].keypoints[8].x == pytest.approx(0.3)
        node.destroy_node()
    finally:
        rclpy.shutdown()
