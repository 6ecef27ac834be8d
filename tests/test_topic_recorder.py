"""topic_recorder: the QoS rule, the MCAP bag writer (core) and the node over DDS.

Core: every message written comes back from ``rosbags`` byte for byte with its timestamp, type and
offered QoS; the bag appears at ``out`` only when closed (``out.partial`` before, nothing after
an abort); chunks reach the disk while recording (bounded memory) and an unclosed file keeps them
readable; a type unknown to rosbags is read from its installed .msg file.
Node: a latched String published before the recorder starts, a stream of JointStates and
best-effort PointStamped messages are recorded and read back with ``rosbags`` after SIGINT (and
SIGTERM); an existing ``output`` exits 2 with the reason; an empty optional output exits 0."""
import os
import signal
import subprocess
import time

import numpy as np
import pytest

from dexman_bringup.core.recorder import BagRecorder, RecorderError, partial_path
from dexman_bringup.core.recorder_msgdefs import DefinitionError, MessageDefinitions
from dexman_bringup.core.recorder_qos import TopicQos, subscription_qos
from dexman_common.bag_reader import BagReader, make_typestore
from ros_args import param_args, ros2

TS = make_typestore()
LATCHED = TopicQos('reliable', 'transient_local', 'keep_last', 1)
STREAM = TopicQos('reliable', 'volatile', 'keep_last', 10)


# ------------------------------------------------------------------------------------ QoS rule

def test_subscription_qos_follows_rosbag2():
    assert subscription_qos([STREAM], 100) == TopicQos('reliable', 'volatile', 'keep_last', 100)
    # one best-effort publisher: a reliable subscription would not match it
    assert subscription_qos([STREAM, TopicQos('best_effort')], 100).reliability == 'best_effort'
    # latched only if every publisher is; depth covers the deepest publisher's history
    q = subscription_qos([LATCHED, TopicQos('reliable', 'transient_local', 'keep_last', 250)], 100)
    assert (q.durability, q.depth) == ('transient_local', 250)
    assert subscription_qos([LATCHED, STREAM], 100).durability == 'volatile'
    with pytest.raises(ValueError, match='without publishers'):
        subscription_qos([], 10)
    with pytest.raises(ValueError, match='durability'):
        TopicQos('reliable', 'latched')


# --------------------------------------------------------------------------------- bag writer

def _string(text):
    return TS.serialize_cdr(TS.types['std_msgs/msg/String'](data=text), 'std_msgs/msg/String')


def _joint_state(i):
    T = TS.types
    msg = T['sensor_msgs/msg/JointState'](
        header=T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=100 + i, nanosec=7),
                                        frame_id=''),
        name=['a', 'b'], position=np.array([0.1 * i, -0.2 * i]), velocity=np.zeros(0), effort=np.zeros(0))
    return TS.serialize_cdr(msg, 'sensor_msgs/msg/JointState')


def _read(bag):
    """{topic: [(recorded_ns, data)]}, {topic: msgtype} and {topic: [offered Qos]} via rosbags."""
    from rosbags.highlevel import AnyReader
    out, types, qos = {}, {}, {}
    with AnyReader([bag], default_typestore=TS) as reader:
        for c in reader.connections:
            types[c.topic] = c.msgtype
            qos[c.topic] = list(c.ext.offered_qos_profiles)
        for c, t, data in reader.messages():
            out.setdefault(c.topic, []).append((t, bytes(data)))
    return out, types, qos


def test_bag_round_trip_and_atomic_close(tmp_path):
    out = tmp_path / 'run' / 'bag'
    rec = BagRecorder(out)
    assert rec.partial == partial_path(out) == tmp_path / 'run' / 'bag.partial'
    rec.add_topic('/latched', 'std_msgs/msg/String', [LATCHED])
    rec.add_topic('/js', 'sensor_msgs/msg/JointState', [STREAM, STREAM])
    rec.add_topic('/js', 'sensor_msgs/msg/JointState')               # again: no-op
    with pytest.raises(RecorderError, match='recorded as sensor_msgs/msg/JointState'):
        rec.add_topic('/js', 'std_msgs/msg/String')
    with pytest.raises(DefinitionError, match='no definition of nope_msgs/msg/Nothing'):
        rec.add_topic('/x', 'nope_msgs/msg/Nothing')
    rec.write('/latched', 1_000, _string('hello'))
    for i in range(5):
        rec.write('/js', 2_000 + i, _joint_state(i))
    with pytest.raises(RecorderError, match='not added'):
        rec.write('/x', 3_000, b'')
    assert not out.exists() and rec.partial.is_dir()                 # nothing at out while recording
    assert rec.close() == out
    assert out.is_dir() and not rec.partial.exists()
    assert sorted(p.name for p in out.iterdir()) == ['bag.mcap', 'metadata.yaml']

    msgs, types, qos = _read(out)
    assert types == {'/latched': 'std_msgs/msg/String', '/js': 'sensor_msgs/msg/JointState'}
    assert msgs['/latched'] == [(1_000, _string('hello'))]
    assert msgs['/js'] == [(2_000 + i, _joint_state(i)) for i in range(5)]
    assert [q.durability.name for q in qos['/latched']] == ['TRANSIENT_LOCAL']
    assert [(q.reliability.name, q.depth) for q in qos['/js']] == [('RELIABLE', 10)] * 2
    with BagReader(out) as b:                                         # the project's reader too
        m = next(iter(b.messages(['/js'])))
        assert list(b.deserialize(m).position) == [0.0, 0.0]
        assert m.header_stamp == (100, 7)
    with pytest.raises(RecorderError, match='exists already'):
        BagRecorder(out)


def test_bag_schema_is_the_full_ros2msg_definition(tmp_path):
    """The MCAP schema Foxglove decodes with: ros2msg text with the dependencies."""
    from mcap.reader import make_reader
    rec = BagRecorder(tmp_path / 'b')
    rec.add_topic('/js', 'sensor_msgs/msg/JointState', [STREAM])
    rec.write('/js', 1, _joint_state(1))
    rec.close()
    with open(tmp_path / 'b' / 'b.mcap', 'rb') as f:
        summary = make_reader(f).get_summary()
    (schema,) = summary.schemas.values()
    (channel,) = summary.channels.values()
    assert (schema.name, schema.encoding, channel.message_encoding) == ('sensor_msgs/msg/JointState', 'ros2msg', 'cdr')
    text = schema.data.decode()
    assert text.startswith('std_msgs/Header header\nstring[] name\nfloat64[] position\n')
    assert 'MSG: std_msgs/Header' in text and 'MSG: builtin_interfaces/Time' in text


def test_abort_leaves_nothing_and_stale_partial_is_refused(tmp_path):
    rec = BagRecorder(tmp_path / 'bag')
    rec.add_topic('/s', 'std_msgs/msg/String', [STREAM])
    rec.write('/s', 5, _string('x'))
    rec.abort()
    assert list(tmp_path.iterdir()) == []
    (tmp_path / 'bag2.partial').mkdir()
    with pytest.raises(RecorderError, match='interrupted recording'):
        BagRecorder(tmp_path / 'bag2')
    with pytest.raises(RecorderError, match='compression'):
        BagRecorder(tmp_path / 'bag3', compression='lz4')


def test_writes_as_it_receives_and_unclosed_file_stays_readable(tmp_path):
    """Memory is bounded: full chunks go to disk while recording. A recording killed before close
    keeps every chunk written so far, readable by the mcap stream reader up to the cut."""
    from mcap.exceptions import McapError
    from mcap.records import Message
    from mcap.stream_reader import StreamReader
    rec = BagRecorder(tmp_path / 'big')
    rec.add_topic('/s', 'std_msgs/msg/String', [STREAM])
    payload = 'x' * 100_000
    for i in range(40):                                    # ~4 MB of messages
        rec.write('/s', i, _string(payload))
    mcap_file = rec.partial / 'big' / 'big.mcap'
    assert mcap_file.stat().st_size > 3_000_000            # at most one ~1 MiB chunk in memory
    got = []
    with open(mcap_file, 'rb') as f:
        try:
            for record in StreamReader(f).records:
                if isinstance(record, Message):
                    got.append(record.log_time)
        except (McapError, EOFError, ValueError):
            pass                                           # the cut: no summary, no footer
    assert got == list(range(len(got))) and len(got) >= 30
    rec.close()


def test_definitions_from_installed_msg_files():
    """A type the typestore lacks (here: a store without dexman_msgs) comes from share/<pkg>/msg."""
    defs = MessageDefinitions(make_typestore(with_dexman=False))
    text, digest = defs.definition('dexman_msgs/msg/ReferenceInfo')
    full_text, full_digest = MessageDefinitions().definition('dexman_msgs/msg/ReferenceInfo')
    assert text == full_text and digest == full_digest and digest.startswith('RIHS01_')
    with pytest.raises(DefinitionError, match='not a message type name'):
        defs.definition('justaname')


# ----------------------------------------------------------------------------- node over DDS

def _start(params):
    cmd = [ros2(), 'run', 'dexman_bringup', 'topic_recorder', '--ros-args'] + param_args(params)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))


def _finish(proc, sig=None, timeout=20):
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
        pytest.fail(f'recorder did not exit:\n{out}')
    return proc.returncode, out


@pytest.fixture
def ros_node():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node('recorder_test', context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    yield node, ex
    node.destroy_node()
    rclpy.shutdown(context=ctx)


def _record_session(tmp_path, ros_node, sig, prefix):
    from geometry_msgs.msg import PointStamped
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    node, ex = ros_node
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    best_effort = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
    pub_latched = node.create_publisher(String, f'{prefix}/latched', latched)
    pub_js = node.create_publisher(JointState, f'{prefix}/joint_states', 10)
    pub_pt = node.create_publisher(PointStamped, f'{prefix}/point', best_effort)
    description = String(data='<robot name="before the recorder started"/>')
    pub_latched.publish(description)                      # before the recorder exists

    out = tmp_path / 'bag'
    proc = _start({'output': str(out), 'topics': [f'{prefix}/latched', f'{prefix}/joint_states',
                                                    f'{prefix}/point'], 'discovery_period_s': 0.2})
    end = time.monotonic() + 30
    while not (pub_js.get_subscription_count() and pub_pt.get_subscription_count()
               and pub_latched.get_subscription_count()):
        if proc.poll() is not None or time.monotonic() > end:
            pytest.fail(f'recorder never subscribed:\n{_finish(proc)[1]}')
        ex.spin_once(timeout_sec=0.05)
    sent_js, sent_pt = [], []
    for i in range(20):
        js = JointState(name=['right_elbow_joint', 'rh_FFJ1'], position=[0.01 * i, 1.5 - 0.05 * i])
        js.header.stamp.sec, js.header.frame_id = 1000 + i, 'world'
        pt = PointStamped()
        pt.point.x, pt.header.stamp.sec = float(i), 2000 + i
        pub_js.publish(js)
        pub_pt.publish(pt)
        sent_js.append(js)
        sent_pt.append(pt)
        ex.spin_once(timeout_sec=0.01)
    time.sleep(1.0)                                       # let the last messages arrive
    assert not out.exists() and partial_path(out).is_dir()
    code, log = _finish(proc, sig)
    assert code == 0, log
    assert 'wrote' in log and not partial_path(out).exists(), log
    return out, description, sent_js, sent_pt, log


def _decoded(msgs, topic, cls):
    """The recorded messages of ``topic`` as rclpy messages (bytes may differ from a local
    serialization in trailing CDR padding, so contents are compared)."""
    from rclpy.serialization import deserialize_message
    return [deserialize_message(d, cls) for _, d in msgs[topic]]


@pytest.mark.ros
def test_node_records_latched_stream_and_best_effort_sigint(tmp_path, ros_node):
    from geometry_msgs.msg import PointStamped
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    prefix = '/rec_test'
    out, description, sent_js, sent_pt, log = _record_session(tmp_path, ros_node, signal.SIGINT, prefix)
    msgs, types, qos = _read(out)
    assert types == {f'{prefix}/latched': 'std_msgs/msg/String',
                     f'{prefix}/joint_states': 'sensor_msgs/msg/JointState',
                     f'{prefix}/point': 'geometry_msgs/msg/PointStamped'}
    assert _decoded(msgs, f'{prefix}/latched', String) == [description]
    assert _decoded(msgs, f'{prefix}/joint_states', JointState) == sent_js    # all, in order
    got_pt = _decoded(msgs, f'{prefix}/point', PointStamped)
    assert got_pt and all(d in sent_pt for d in got_pt)                       # best effort: a subset
    assert [sent_pt.index(d) for d in got_pt] == sorted(sent_pt.index(d) for d in got_pt)
    stamps = [t for _, lst in msgs.items() for t, _ in lst]
    assert all(abs(t - time.time_ns()) < 120e9 for t in stamps)               # receive times (now)
    assert [q.durability.name for q in qos[f'{prefix}/latched']] == ['TRANSIENT_LOCAL']
    assert [q.reliability.name for q in qos[f'{prefix}/point']] == ['BEST_EFFORT']
    with BagReader(out) as b:
        js = [b.deserialize(m) for m in b.messages([f'{prefix}/joint_states'])]
    assert [j.header.stamp.sec for j in js] == list(range(1000, 1020))
    np.testing.assert_allclose(js[7].position, [0.07, 1.15])


@pytest.mark.ros
def test_node_closes_bag_on_sigterm(tmp_path, ros_node):
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    out, description, sent_js, _, _ = _record_session(tmp_path, ros_node, signal.SIGTERM, '/rec_term')
    msgs, _, _ = _read(out)
    assert _decoded(msgs, '/rec_term/latched', String) == [description]
    assert _decoded(msgs, '/rec_term/joint_states', JointState) == sent_js


@pytest.mark.ros
def test_node_bad_and_optional_output(tmp_path):
    (tmp_path / 'exists').mkdir()
    code, log = _finish(_start({'output': str(tmp_path / 'exists')}))
    assert code == 2 and 'exists already' in log, log
    code, log = _finish(_start({'output': "''"}))
    assert code == 2 and "parameter 'output'" in log, log
    code, log = _finish(_start({'output': "''", 'required': False}))
    assert code == 0 and 'recording off' in log, log
    assert sorted(p.name for p in tmp_path.iterdir()) == ['exists']


@pytest.mark.ros
def test_launch_record_arg_records_the_run(tmp_path):
    """dexman.launch.xml record:=DIR: the recorder runs beside the graph and the bag is complete
    when the launch ends; its camera frames are the played bag's, in order."""
    from test_launch_graph import launch, make_mp4, recorded_frames, video_to_bag
    make_mp4(tmp_path / 'clip.mp4')
    bag = video_to_bag(tmp_path / 'clip.mp4', tmp_path / 'bag')
    run = tmp_path / 'run_bag'
    rc, log = launch('dexman.launch.xml', bag=bag, report=tmp_path / 'frames.json', rate='0.5',
                     perception='false', retarget='false', record=run)
    assert rc == 0, log
    assert run.is_dir() and not partial_path(run).exists(), log
    played, got = recorded_frames(bag), recorded_frames(run)
    assert got, log                                            # the recorder saw the stream
    start = played.index(got[0])
    assert got == played[start:start + len(got)]               # the same frames, in order
    assert got[-1] == played[-1]                               # up to the last one
