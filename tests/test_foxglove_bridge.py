"""foxglove_bridge: the foxglove-sdk server core and the node over DDS, checked with a WebSocket
client speaking the Foxglove WebSocket protocol (serverInfo, advertise, subscribe, binary
message data, unsubscribe, unadvertise).

Core: a channel is advertised with the ``cdr`` encoding and the full ``ros2msg`` schema; client
(un)subscriptions become events; a logged message reaches the subscribed client byte for byte
with its log time; a busy port is a clear error.
Node: the graph's topics are advertised; the bridge subscribes to a ROS topic only while a client
watches it; a latched message published before the client subscribed, and a stream of
JointStates, arrive and decode to what was published.
"""
import asyncio
import json
import os
import socket
import struct
import subprocess
import threading
import time

import pytest

websockets = pytest.importorskip('websockets')
pytest.importorskip('foxglove')

from dexman_bringup.core.foxglove_server import FoxgloveError, FoxgloveServer  # noqa: E402
from dexman_bringup.core.recorder_msgdefs import DefinitionError, MessageDefinitions  # noqa: E402
from ros_args import param_args, ros2  # noqa: E402

SUBPROTOCOLS = ['foxglove.sdk.v1', 'foxglove.websocket.v1']   # the SDK speaks the first
MESSAGE_DATA = 0x01                                            # binary opcode, server -> client


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Client:
    """A minimal Foxglove WebSocket protocol client (what the Foxglove app does)."""

    def __init__(self, ws):
        self.ws = ws
        self.channels = {}                 # topic -> advertised channel dict
        self.server_info = None
        self.unadvertised = set()
        self._next_sub = 1
        self.subs = {}                     # subscription id -> topic

    @classmethod
    async def connect(cls, port, timeout=30.0):
        end = time.monotonic() + timeout
        while True:
            try:
                ws = await websockets.connect(f'ws://127.0.0.1:{port}', subprotocols=SUBPROTOCOLS,
                                              max_size=None)
                return cls(ws)
            except (OSError, websockets.exceptions.InvalidHandshake):
                if time.monotonic() > end:
                    raise
                await asyncio.sleep(0.2)

    async def next(self, timeout):
        """The next frame: text frames update the state and are returned as dicts; binary message
        data as (topic, log_time_ns, payload)."""
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        if isinstance(frame, str):
            msg = json.loads(frame)
            if msg['op'] == 'serverInfo':
                self.server_info = msg
            elif msg['op'] == 'advertise':
                for ch in msg['channels']:
                    self.channels[ch['topic']] = ch
            elif msg['op'] == 'unadvertise':
                for topic, ch in list(self.channels.items()):
                    if ch['id'] in msg['channelIds']:
                        del self.channels[topic]
                        self.unadvertised.add(topic)
            return msg
        assert frame[0] == MESSAGE_DATA, f'unexpected binary opcode {frame[0]}'
        sub_id, log_time = struct.unpack_from('<IQ', frame, 1)
        return self.subs[sub_id], log_time, frame[13:]

    async def until(self, cond, timeout, what):
        end = time.monotonic() + timeout
        while not cond():
            left = end - time.monotonic()
            if left <= 0:
                pytest.fail(f'timed out waiting for {what}')
            try:
                await self.next(left)
            except asyncio.TimeoutError:
                pass
        return cond()

    async def subscribe(self, topic):
        sub_id, self._next_sub = self._next_sub, self._next_sub + 1
        self.subs[sub_id] = topic
        await self.ws.send(json.dumps({'op': 'subscribe', 'subscriptions': [
            {'id': sub_id, 'channelId': self.channels[topic]['id']}]}))
        return sub_id

    async def unsubscribe(self, sub_id):
        await self.ws.send(json.dumps({'op': 'unsubscribe', 'subscriptionIds': [sub_id]}))

    async def messages(self, topic, count, timeout):
        out = []
        end = time.monotonic() + timeout
        while len(out) < count:
            left = end - time.monotonic()
            if left <= 0:
                pytest.fail(f'received {len(out)} of {count} messages on {topic}')
            try:
                got = await self.next(left)
            except asyncio.TimeoutError:
                continue
            if isinstance(got, tuple) and got[0] == topic:
                out.append(got)
        return out


# ------------------------------------------------------------------------------------ core

def test_core_server_protocol_round_trip():
    from rosbags.typesys import Stores, get_typestore
    ts = get_typestore(Stores.ROS2_KILTED)
    data = ts.serialize_cdr(ts.types['std_msgs/msg/String'](data='hello foxglove'), 'std_msgs/msg/String')
    server = FoxgloveServer('127.0.0.1', 0)
    try:
        assert server.port > 0 and server.url == f'ws://127.0.0.1:{server.port}'
        server.advertise('/chatter', 'std_msgs/msg/String')
        with pytest.raises(DefinitionError):
            server.advertise('/nope', 'nope_msgs/msg/Nothing')
        with pytest.raises(FoxgloveError, match=f'cannot serve Foxglove on 127.0.0.1:{server.port}'):
            FoxgloveServer('127.0.0.1', server.port)

        async def session():
            c = await Client.connect(server.port)
            try:
                assert c.ws.subprotocol in SUBPROTOCOLS
                await c.until(lambda: c.server_info and '/chatter' in c.channels, 5, 'advertise')
                ch = c.channels['/chatter']
                assert (ch['encoding'], ch['schemaName'], ch['schemaEncoding']) == \
                    ('cdr', 'std_msgs/msg/String', 'ros2msg')
                assert ch['schema'] == MessageDefinitions().definition('std_msgs/msg/String')[0] == 'string data\n'
                sub = await c.subscribe('/chatter')
                end = time.monotonic() + 5
                events = []
                while not events and time.monotonic() < end:
                    await asyncio.sleep(0.05)
                    events = server.pop_events()
                assert [(k, t) for k, _, t in events] == [('subscribe', '/chatter')]
                server.log('/chatter', data, 123_456_789)
                (topic, log_time, payload), = await c.messages('/chatter', 1, 5)
                assert (topic, log_time, payload) == ('/chatter', 123_456_789, data)
                await c.unsubscribe(sub)
                end = time.monotonic() + 5
                while not events[1:] and time.monotonic() < end:
                    await asyncio.sleep(0.05)
                    events += server.pop_events()
                assert [k for k, _, _ in events] == ['subscribe', 'unsubscribe']
                server.unadvertise('/chatter')
                await c.until(lambda: '/chatter' in c.unadvertised, 5, 'unadvertise')
            finally:
                await c.ws.close()
        asyncio.run(session())
    finally:
        server.stop()


# ----------------------------------------------------------------------------- node over DDS

@pytest.mark.ros
def test_node_serves_graph_topics_to_a_websocket_client():
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node('foxglove_test', context=ctx)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    pub_desc = node.create_publisher(String, '/fox_test/description', latched)
    pub_js = node.create_publisher(JointState, '/fox_test/joint_states', 10)
    pub_desc.publish(String(data='<robot name="latched before anyone listened"/>'))
    counter = [0]

    def tick():
        i = counter[0]
        counter[0] += 1
        js = JointState(name=['right_elbow_joint'], position=[0.001 * i])
        js.header.stamp.sec = 500 + i
        pub_js.publish(js)
    node.create_timer(0.05, tick)
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.05)
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()

    port = _free_port()
    cmd = [ros2(), 'run', 'dexman_bringup', 'foxglove_bridge', '--ros-args'] + param_args(
        {'port': port, 'topics': ['/fox_test/description', '/fox_test/joint_states'],
         'discovery_period_s': 0.2})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))

    def subscribers(pub, n, timeout=10):
        end = time.monotonic() + timeout
        while pub.get_subscription_count() != n and time.monotonic() < end:
            time.sleep(0.05)
        return pub.get_subscription_count()

    async def session():
        c = await Client.connect(port)
        try:
            await c.until(lambda: {'/fox_test/description', '/fox_test/joint_states'} <= set(c.channels),
                          20, 'both topics advertised')
            ch = c.channels['/fox_test/joint_states']
            assert (ch['encoding'], ch['schemaName'], ch['schemaEncoding']) == \
                ('cdr', 'sensor_msgs/msg/JointState', 'ros2msg')
            assert ch['schema'] == MessageDefinitions().definition('sensor_msgs/msg/JointState')[0]
            assert set(c.channels) == {'/fox_test/description', '/fox_test/joint_states'}   # `topics`
            # nothing is subscribed on the ROS side until a client watches
            assert pub_js.get_subscription_count() == 0 and pub_desc.get_subscription_count() == 0

            await c.subscribe('/fox_test/description')
            (_, _, payload), = await c.messages('/fox_test/description', 1, 10)
            assert deserialize_message(payload, String).data == '<robot name="latched before anyone listened"/>'

            sub = await c.subscribe('/fox_test/joint_states')
            got = await c.messages('/fox_test/joint_states', 5, 10)
            msgs = [deserialize_message(p, JointState) for _, _, p in got]
            secs = [m.header.stamp.sec for m in msgs]
            assert secs == list(range(secs[0], secs[0] + 5))              # consecutive, in order
            for m in msgs:
                assert list(m.name) == ['right_elbow_joint']
                assert m.position[0] == pytest.approx(0.001 * (m.header.stamp.sec - 500))
            assert all(abs(t - time.time_ns()) < 60e9 for _, t, _ in got)  # log time: receive time

            # a second client subscribing later to the latched topic gets the kept message too
            c2 = await Client.connect(port)
            try:
                await c2.until(lambda: '/fox_test/description' in c2.channels, 10, 'advertise (2nd client)')
                await c2.subscribe('/fox_test/description')
                (_, _, payload), = await c2.messages('/fox_test/description', 1, 10)
                assert deserialize_message(payload, String).data == '<robot name="latched before anyone listened"/>'
            finally:
                await c2.ws.close()

            await c.unsubscribe(sub)
            return await asyncio.get_running_loop().run_in_executor(None, subscribers, pub_js, 0)
        finally:
            await c.ws.close()
    try:
        assert asyncio.run(session()) == 0          # ROS subscription dropped with the last client
        assert proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.terminate()
        out = proc.communicate(timeout=20)[0]
        stop.set()
        spinner.join()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
    assert proc.returncode == 0, out
    assert f'Foxglove WebSocket server on ws://127.0.0.1:{port}' in out, out


@pytest.mark.ros
def test_node_busy_port_exits_2():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen()
        port = s.getsockname()[1]
        out = subprocess.run([ros2(), 'run', 'dexman_bringup', 'foxglove_bridge', '--ros-args', '-p',
                              f'port:={port}'], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and f'cannot serve Foxglove on 127.0.0.1:{port}' in out.stderr, out.stderr
