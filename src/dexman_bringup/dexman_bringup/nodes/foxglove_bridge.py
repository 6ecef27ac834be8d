"""foxglove_bridge: the graph's topics to the Foxglove app over a WebSocket, for machines where
RViz (and the upstream foxglove_bridge) cannot be installed; a thin shell over
``dexman_bringup.core.foxglove_server`` (the ``foxglove-sdk`` server from PyPI).

    ros2 run dexman_bringup foxglove_bridge --ros-args -p port:=8765
    # Foxglove app: Open connection -> Foxglove WebSocket -> ws://127.0.0.1:8765

Every ``discovery_period_s`` the topics with publishers (all, or ``topics``, minus
``exclude_topics``) are advertised as channels (CDR messages, ``ros2msg`` schema); a topic with
no publisher left is unadvertised. The bridge subscribes to a ROS topic (raw, with its
publishers' QoS) only while a client is subscribed to its channel, so nothing flows unwatched;
when a client subscribes to a latched topic, its subscription is renewed so that the client
receives the publishers' kept messages (other clients get them again too). Messages are
forwarded as they arrive, stamped with the node's clock.

Exit status: 0 on shutdown; 2 for bad parameters or a port that cannot be bound.
"""
from __future__ import annotations

from rclpy.node import Node

from dexman_common.ros.node_util import ParamError, declare, run_node

from ..core.foxglove_server import FoxgloveError, FoxgloveServer
from ..core.recorder_msgdefs import DefinitionError
from ..core.recorder_qos import subscription_qos
from .graph_topics import GraphTopic, TopicWatcher, raw_subscription

EVENT_PERIOD_S = 0.05        # how often client (un)subscriptions are turned into ROS subscriptions


class FoxgloveBridge(Node):

    def __init__(self) -> None:
        super().__init__('foxglove_bridge')
        host = declare(self, 'address', '127.0.0.1', 'interface the WebSocket server binds to', read_only=True)
        port = declare(self, 'port', 8765, 'WebSocket port (0 = any free port, logged)', read_only=True)
        topics = declare(self, 'topics', [''], 'topics to serve (exact names); empty = every topic', list,
                         read_only=True)
        exclude = declare(self, 'exclude_topics', [''], 'topics never served (exact names)', list,
                          read_only=True)
        period = declare(self, 'discovery_period_s', 1.0, 'how often the graph is searched for topics',
                         read_only=True)
        self.depth = declare(self, 'depth', 10, 'subscription history depth', read_only=True)
        if period <= 0 or self.depth < 1:
            raise ParamError('discovery_period_s must be > 0 and depth >= 1')
        try:
            self.server = FoxgloveServer(host, port, name='dexman')
        except FoxgloveError as err:
            raise ParamError(str(err)) from None
        self.watcher = TopicWatcher(self, [t for t in topics if t], [t for t in exclude if t])
        self._topics: dict[str, GraphTopic] = {}          # advertised
        self._watching: dict[str, set[int]] = {}          # topic -> subscribed client ids
        self._ros_subs: dict[str, object] = {}            # topic -> ROS subscription
        self._skipped: set[str] = set()
        self.create_timer(period, self._discover)
        self.create_timer(EVENT_PERIOD_S, self._process_events)
        self.get_logger().info(f'Foxglove WebSocket server on {self.server.url}')
        self._discover()

    # ------------------------------------------------------------------------------ topics
    def _discover(self) -> None:
        new, gone = self.watcher.poll()
        for name in gone:
            if name in self._topics:
                self._unsubscribe(name)
                self._watching.pop(name, None)
                del self._topics[name]
                self.server.unadvertise(name)
        for topic in new:
            if topic.name in self._skipped:
                continue
            try:
                self.server.advertise(topic.name, topic.msgtype)
            except DefinitionError as err:
                self._skipped.add(topic.name)
                self.get_logger().warn(f'not serving {topic.name}: {err}')
                continue
            self._topics[topic.name] = topic

    # ----------------------------------------------------------------------- subscriptions
    def _process_events(self) -> None:
        for kind, client, name in self.server.pop_events():
            clients = self._watching.setdefault(name, set())
            topic = self._topics.get(name)
            if kind == 'subscribe' and topic is not None:
                clients.add(client)
                latched = subscription_qos(topic.offers, self.depth).latched
                if name not in self._ros_subs or latched:
                    self._subscribe(topic)
            elif kind == 'unsubscribe':
                clients.discard(client)
                if not clients:
                    self._unsubscribe(name)

    def _subscribe(self, topic: GraphTopic) -> None:
        self._unsubscribe(topic.name)
        now, server = self.get_clock().now, self.server

        def forward(data: bytes, name=topic.name) -> None:
            server.log(name, data, now().nanoseconds)
        sub = raw_subscription(self, topic, subscription_qos(topic.offers, self.depth), forward)
        if sub is None:
            self.get_logger().warn(f'cannot subscribe to {topic.name}: message type {topic.msgtype} cannot '
                                   f'be imported here', throttle_duration_sec=10.0)
            return
        self._ros_subs[topic.name] = sub

    def _unsubscribe(self, name: str) -> None:
        sub = self._ros_subs.pop(name, None)
        if sub is not None:
            self.destroy_subscription(sub)

    def close(self) -> None:
        self.server.stop()


def main(args: list[str] | None = None) -> None:
    run_node(FoxgloveBridge, args)


if __name__ == '__main__':
    main()
