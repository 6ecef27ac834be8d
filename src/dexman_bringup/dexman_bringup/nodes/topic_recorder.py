"""topic_recorder: record every topic of the graph into an MCAP rosbag2 (``ros2 bag record -a``
for machines without rosbag2), a thin shell over ``dexman_bringup.core.recorder``.

    ros2 run dexman_bringup topic_recorder --ros-args -p output:=/runs/run1/bag

Every ``discovery_period_s`` it looks for topics with publishers (all, or ``topics``, minus
``exclude_topics``) and subscribes to each new one with raw (serialized) subscriptions matching
its publishers' QoS (rosbag2's rule, ``core.recorder_qos``: latched topics are received from
their publishers' history). Each message is written as it arrives, stamped with the node's
clock at reception, so memory stays bounded. A topic whose type cannot be imported or defined
here is skipped with one warning.

The bag is written into ``<output>.partial/`` and moved to ``output`` when the node stops
(SIGINT, SIGTERM, or ``duration_s`` elapsed): a bag at ``output`` is always complete. Exit status:
0 after closing the bag (or at once when ``output`` is empty and ``required`` is false: how a
launch file makes the recording optional); 2 bad parameters (e.g. ``output`` exists already).
"""
from __future__ import annotations

from rclpy.node import Node

from dexman_common.ros.node_util import ParamError, declare, run_main

from ..core.recorder import COMPRESSIONS, BagRecorder, RecorderError
from ..core.recorder_msgdefs import DefinitionError
from ..core.recorder_qos import subscription_qos
from .graph_topics import GraphTopic, TopicWatcher, raw_subscription


class TopicRecorder(Node):

    def __init__(self) -> None:
        super().__init__('topic_recorder')
        output = declare(self, 'output', '', 'rosbag2 directory to create (must not exist)', read_only=True)
        topics = declare(self, 'topics', [''], 'topics to record (exact names); empty = every topic',
                         list, read_only=True)
        exclude = declare(self, 'exclude_topics', [''], 'topics never recorded (exact names)', list,
                          read_only=True)
        period = declare(self, 'discovery_period_s', 0.5, 'how often the graph is searched for new topics',
                         read_only=True)
        self.depth = declare(self, 'depth', 100, 'subscription history depth (deeper for latched topics '
                             'whose publishers keep more)', read_only=True)
        compression = declare(self, 'compression', 'none', f'MCAP chunk compression: {COMPRESSIONS}',
                              read_only=True)
        self.duration_s = declare(self, 'duration_s', 0.0, 'stop after this long (0 = until SIGINT/SIGTERM)',
                                  read_only=True)
        required = declare(self, 'required', True, 'false: an empty output records nothing and the node '
                           'exits 0 (an optional recording in a launch file)', read_only=True)
        self.recorder: BagRecorder | None = None
        if not output:
            if required:
                raise ParamError("parameter 'output' (the bag directory to create) is required")
            self.get_logger().info('output is empty: recording off')
            return
        if period <= 0 or self.depth < 1 or self.duration_s < 0:
            raise ParamError('discovery_period_s must be > 0, depth >= 1 and duration_s >= 0')
        try:
            self.recorder = BagRecorder(output, compression=compression)
        except RecorderError as err:
            raise ParamError(str(err)) from None
        self.watcher = TopicWatcher(self, [t for t in topics if t], [t for t in exclude if t])
        self._ros_subs: dict[str, object] = {}
        self._skipped: set[str] = set()
        self.create_timer(period, self._discover)
        self.get_logger().info(f'recording into {self.recorder.partial} (moved to {self.recorder.out} '
                               f'when stopped)')
        self._discover()

    def _discover(self) -> None:
        new, _gone = self.watcher.poll()       # a topic that goes away keeps its subscription
        for topic in new:
            if topic.name not in self._ros_subs and topic.name not in self._skipped:
                self._subscribe(topic)

    def _subscribe(self, topic: GraphTopic) -> None:
        qos = subscription_qos(topic.offers, self.depth)
        try:
            self.recorder.add_topic(topic.name, topic.msgtype, topic.offers)
        except (DefinitionError, RecorderError) as err:
            self._skipped.add(topic.name)
            self.get_logger().warn(f'not recording {topic.name}: {err}')
            return
        now = self.get_clock().now

        def on_message(data: bytes, name=topic.name) -> None:
            if not self.recorder.closed:
                self.recorder.write(name, now().nanoseconds, data)
        sub = raw_subscription(self, topic, qos, on_message)
        if sub is None:
            self._skipped.add(topic.name)
            self.get_logger().warn(f'not recording {topic.name}: message type {topic.msgtype} cannot be '
                                   f'imported here')
            return
        self._ros_subs[topic.name] = sub
        self.get_logger().info(f'recording {topic.name} [{topic.msgtype}] ({qos.reliability}, '
                               f'{qos.durability})')

    def close(self) -> None:
        if self.recorder is None or self.recorder.closed:
            return
        out = self.recorder.close()
        counts = ', '.join(f'{t}: {n}' for t, n in sorted(self.recorder.counts.items()))
        print(f'[topic_recorder] wrote {out} ({sum(self.recorder.counts.values())} messages; {counts})',
              flush=True)


def _run() -> int:
    import time

    import rclpy
    node = TopicRecorder()
    try:
        if node.recorder is None:
            return 0
        if node.duration_s > 0:
            end = time.monotonic() + node.duration_s
            while rclpy.ok() and time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=min(0.1, max(end - time.monotonic(), 0.0)))
        else:
            rclpy.spin(node)
    finally:
        node.close()             # SIGINT/SIGTERM shut rclpy down: the bag is closed here
        node.destroy_node()
    return 0


def main(args: list[str] | None = None) -> None:
    run_main(_run, args)


if __name__ == '__main__':
    main()
