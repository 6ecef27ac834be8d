"""bag_player: play a rosbag2 recording (mcap or sqlite3) into the ROS graph.

    ros2 run dexman_perception bag_player --ros-args -p bag_path:=/data/clip_bag -p rate:=1.0

Every message is published with its recorded content (the serialized CDR bytes are published
as they are, so header stamps are untouched). Progress is reported as dexman_msgs/PlaybackStatus
on /dexman/playback/status (transient local, depth 1): PLAYING at the start and every
``status_period_s``, FINISHED at the end, ERROR with a message when the bag cannot be played.

QoS: images and camera_info best effort (sensor data) when ``rate > 0`` (unless ``reliable``); with ``rate <= 0``
every publisher is reliable and each message waits for all subscribers' acknowledgements, so
playback runs as fast as reliable subscribers take it. Other topics: reliable; /tf_static:
reliable + transient local.

Exit status: 0 finished (with exit_on_finish) or interrupted; 2 bad bag or parameters;
1 no subscriber within subscriber_timeout_s.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import rclpy
from builtin_interfaces.msg import Time as TimeMsg
from rclpy.duration import Duration
from rclpy.node import Node

from dexman_common.bag_reader import CAMERA_INFO_TYPE, IMAGE_TYPES, BagError, BagReader
from dexman_common.stamps import seconds_to_ns
from dexman_common.ros.node_util import (ParamError, declare, import_message, latched_qos,
                       reliable_qos, run_main, sensor_qos, sleep_until)

STATUS_TOPIC = '/dexman/playback/status'


class PlaybackFailed(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


class BagPlayer(Node):

    def __init__(self) -> None:
        super().__init__('bag_player')
        from dexman_msgs.msg import PlaybackStatus
        self._Status = PlaybackStatus
        self.status_pub = self.create_publisher(PlaybackStatus, STATUS_TOPIC, latched_qos(1))
        self.bag_uri = ''
        self.frames_published = 0
        self.frames_total = 0
        self.last_stamp = TimeMsg()
        self._last_status = 0.0
        self._warned_ack: set[str] = set()
        self._params_error: str | None = None
        self.wait_for_subscribers, self.subscriber_timeout_s, self.exit_on_finish = 0, 30.0, True
        try:
            self._declare()
        except ParamError as err:
            self._params_error = str(err)

    def _declare(self) -> None:
        self.bag_path = declare(self, 'bag_path', '',
                                'rosbag2 to play: a directory with metadata.yaml, or a .mcap/.db3 '
                                'file (required)', str, read_only=True)
        self.rate = declare(self, 'rate', 1.0,
                            'playback speed: 1.0 real time by the recorded timestamps, 2.0 twice '
                            'as fast; 0 or negative: as fast as the subscribers keep up '
                            '(reliable publishers, each message waits for all acknowledgements)',
                            float, read_only=True)
        self.topics = declare(self, 'topics', [],
                              'topics to play (string array); empty: every topic whose message '
                              'type rclpy can import', list, read_only=True)
        self.exclude_topics = declare(self, 'exclude_topics', [],
                                      'topics never played (e.g. a recording\'s ground truth or '
                                      '/tf_static when the graph computes its own frames)', list,
                                      read_only=True)
        self.reliable = declare(self, 'reliable', False,
                                'publish images and camera_info reliably also when rate > 0 (for '
                                'offline processing nodes with reliable subscriptions); rate <= 0 '
                                'is always reliable', bool, read_only=True)
        self.wait_for_subscribers = declare(
            self, 'wait_for_subscribers', 0,
            'before starting, wait until the image topic(s) have at least this many matched '
            'subscribers (0: do not wait)', int, read_only=True)
        self.wait_for_stages = declare(
            self, 'wait_for_stages', 0,
            'before starting, wait until this many perception stage nodes reported their state on '
            '/dexman/perception/status (ready or stopped), so none misses the first frames',
            int, read_only=True)
        self.subscriber_timeout_s = declare(
            self, 'subscriber_timeout_s', 30.0,
            'give up (ERROR status, exit 1) when the subscribers do not appear within this '
            'time; <= 0 waits forever', float, read_only=True)
        self.settle_s = declare(
            self, 'settle_s', 0.3,
            'extra wait after the subscribers are matched, so that their side of discovery '
            'completes too (best-effort readers would miss the first frames otherwise)',
            float, read_only=True)
        self.loop = declare(self, 'loop', False,
                            'play the bag again and again (FINISHED is then never published)',
                            bool, read_only=True)
        self.start_offset_s = declare(
            self, 'start_offset_s', 0.0,
            'skip the first seconds of the bag (by recorded time); /tf_static before the offset '
            'is still published', float, read_only=True)
        self.exit_on_finish = declare(
            self, 'exit_on_finish', False,
            'exit (status 0) once FINISHED is published and acknowledged; otherwise keep '
            'spinning so the status stays available', bool, read_only=True)
        self.status_period_s = declare(self, 'status_period_s', 1.0,
                                       'period of the PLAYING status messages, seconds', float,
                                       read_only=True)
        self.ack_timeout_s = declare(
            self, 'ack_timeout_s', 5.0,
            'with rate <= 0: longest wait for the subscribers to acknowledge one message',
            float, read_only=True)
        if self.wait_for_subscribers < 0:
            raise ParamError('parameter wait_for_subscribers must be >= 0')
        if self.start_offset_s < 0:
            raise ParamError('parameter start_offset_s must be >= 0')
        if self.status_period_s <= 0:
            raise ParamError('parameter status_period_s must be > 0')

    # ------------------------------------------------------------------------------- status
    def publish_status(self, state: int, message: str = '') -> None:
        msg = self._Status()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.state = state
        msg.bag_uri = self.bag_uri
        msg.frames_published = self.frames_published
        msg.frames_total = self.frames_total
        msg.last_stamp = self.last_stamp
        msg.message = message
        self.status_pub.publish(msg)
        self._last_status = time.monotonic()

    def _tick(self) -> None:
        if time.monotonic() - self._last_status >= self.status_period_s:
            self.publish_status(self._Status.STATE_PLAYING)

    def _wait_status_readers(self) -> None:
        """Give the status a chance to reach its subscribers before the process exits."""
        if self.wait_for_subscribers > 0:
            timeout = self.subscriber_timeout_s if self.subscriber_timeout_s > 0 else 3600.0
            deadline = time.monotonic() + timeout
            while rclpy.ok() and self.status_pub.get_subscription_count() < 1 \
                    and time.monotonic() < deadline:
                time.sleep(0.02)
        if self.status_pub.get_subscription_count() > 0:
            wait_all_acked(self.status_pub, 2.0)

    def fail(self, message: str, code: int) -> int:
        self.get_logger().error(message)
        try:
            self.publish_status(self._Status.STATE_ERROR, message)
            self._wait_status_readers()
        except Exception:  # noqa: BLE001 - shut down meanwhile
            pass
        return code

    # ------------------------------------------------------------------------------ playback
    def run(self) -> int:
        if self._params_error:
            return self.fail(self._params_error, 2)
        if not self.bag_path:
            return self.fail('parameter bag_path is required (e.g. --ros-args -p '
                             'bag_path:=/path/to/bag)', 2)
        self.bag_uri = str(Path(self.bag_path).expanduser().resolve())
        try:
            with BagReader(self.bag_uri) as bag:
                return self._play(bag)
        except BagError as err:
            return self.fail(f'cannot play bag: {err}', 2)
        except PlaybackFailed as err:
            return self.fail(str(err), err.code)

    def _make_publishers(self, bag: BagReader) -> tuple[dict, list[str]]:
        topics = bag.topics
        if self.topics:
            unknown = [t for t in self.topics if t not in topics]
            if unknown:
                raise PlaybackFailed(
                    f'topic(s) {", ".join(unknown)} not in bag {self.bag_uri}; its topics: '
                    f'{", ".join(topics) or "none"}')
            selected = list(dict.fromkeys(self.topics))
        else:
            selected = list(topics)
        selected = [t for t in selected if t not in self.exclude_topics]
        if STATUS_TOPIC in selected:     # a recorded status would contradict the live one
            selected.remove(STATUS_TOPIC)
            self.get_logger().warning(f'not replaying the recorded {STATUS_TOPIC}')
        reliable_all = self.rate <= 0 or self.reliable
        pubs, skipped = {}, []
        for name in selected:
            msgtype = topics[name].msgtype
            cls = import_message(msgtype)
            if cls is None:
                if self.topics:
                    raise PlaybackFailed(f'cannot play topic {name}: message type {msgtype} '
                                         'is not importable in this environment')
                skipped.append(f'{name} ({msgtype})')
                continue
            if name.endswith('tf_static'):
                qos = latched_qos(100)
            elif msgtype in IMAGE_TYPES or msgtype == CAMERA_INFO_TYPE:
                qos = reliable_qos(5) if reliable_all else sensor_qos(5)
            else:
                qos = reliable_qos(10)
            pubs[name] = self.create_publisher(cls, name, qos)
        if skipped:
            self.get_logger().warning(
                f'not playing topics whose types cannot be imported: {", ".join(skipped)}')
        image_topics = [t for t in pubs if topics[t].msgtype in IMAGE_TYPES]
        if not image_topics:
            listing = ', '.join(f'{t.name} ({t.msgtype})' for t in topics.values())
            raise PlaybackFailed(f'bag {self.bag_uri} has no playable image topic '
                                 f'(sensor_msgs/msg/Image or CompressedImage) among the '
                                 f'selected topics; its topics: {listing or "none"}')
        # frames are counted, and subscribers awaited, on the colour image topics; depth images
        # travel with them (a depth-only bag counts its depth images)
        colour = [t for t in image_topics if 'depth' not in t.split('/')]
        return pubs, colour or image_topics

    def _wait_for_stages(self, pubs: dict, image_topics: list[str]) -> None:
        """Wait until `wait_for_stages` stage nodes reported (ready or stopped), then until every
        image subscriber the graph knows of is matched and no new one appeared for 1 s: a stage
        that reported ready has its subscriptions, but under load their discovery can lag."""
        n = self.wait_for_stages
        if n <= 0:
            return
        from dexman_msgs.msg import StageStatus
        seen: dict[str, str] = {}
        sub = self.create_subscription(StageStatus, '/dexman/perception/status',
                                       lambda m: seen.__setitem__(m.node, m.stage), latched_qos(50))
        t0 = time.monotonic()
        self.get_logger().info(f'waiting for {n} perception stage(s) to be ready')
        while len(seen) < n:
            if not rclpy.ok():
                raise KeyboardInterrupt
            if 0 < self.subscriber_timeout_s <= time.monotonic() - t0:
                raise PlaybackFailed(f'only {len(seen)} of {n} perception stages ready within '
                                     f'{self.subscriber_timeout_s:g} s: {sorted(seen.values())}', code=1)
            rclpy.spin_once(self, timeout_sec=0.02)
            self._tick()
        self.destroy_subscription(sub)
        stable_since, last = time.monotonic(), None
        while True:
            counts = tuple(pubs[t].get_subscription_count() for t in image_topics)
            known = tuple(len(self.get_subscriptions_info_by_topic(t)) for t in image_topics)
            if counts != last:
                stable_since, last = time.monotonic(), counts
            if all(c >= k for c, k in zip(counts, known)) and time.monotonic() - stable_since >= 1.0:
                break
            if 0 < self.subscriber_timeout_s <= time.monotonic() - t0:
                raise PlaybackFailed(f'image subscribers not all matched within {self.subscriber_timeout_s:g} s: '
                                     f'{counts} matched of {known} known', code=1)
            if not rclpy.ok():
                raise KeyboardInterrupt
            time.sleep(0.05)
            self._tick()
        if self.settle_s > 0:
            sleep_until(time.monotonic() + self.settle_s, tick=self._tick)

    def _wait_for_subscribers(self, pubs: dict, image_topics: list[str]) -> None:
        self._wait_for_stages(pubs, image_topics)
        n = self.wait_for_subscribers
        if n <= 0:
            return
        t0 = time.monotonic()
        self.get_logger().info(f'waiting for {n} subscriber(s) on {", ".join(image_topics)}')
        while min(pubs[t].get_subscription_count() for t in image_topics) < n:
            if not rclpy.ok():
                raise KeyboardInterrupt
            if 0 < self.subscriber_timeout_s <= time.monotonic() - t0:
                have = {t: pubs[t].get_subscription_count() for t in image_topics}
                raise PlaybackFailed(f'no {n} subscriber(s) within {self.subscriber_timeout_s:g} '
                                     f's on the image topic(s): {have}', code=1)
            time.sleep(0.02)
            self._tick()
        if self.settle_s > 0:
            sleep_until(time.monotonic() + self.settle_s, tick=self._tick)

    def _wait_acked(self, pubs: dict, unacked: list, timeout: float) -> None:
        for topic in dict.fromkeys(unacked):
            if not wait_all_acked(pubs[topic], timeout) and topic not in self._warned_ack:
                self._warned_ack.add(topic)
                self.get_logger().warning(
                    f'subscribers of {topic} did not acknowledge within {self.ack_timeout_s:g} '
                    's; continuing (they may lose messages)')
        unacked.clear()

    def _play(self, bag: BagReader) -> int:
        pubs, image_topics = self._make_publishers(bag)
        image_set = set(image_topics)
        topics = list(pubs)
        if bag.message_count == 0:
            raise PlaybackFailed(f'bag {self.bag_uri} holds no messages')
        start_ns = bag.start_ns + seconds_to_ns(self.start_offset_s)
        if start_ns > bag.end_ns:
            raise PlaybackFailed(
                f'start_offset_s {self.start_offset_s:g} is beyond the end of the bag '
                f'({(bag.end_ns - bag.start_ns) / 1e9:.3f} s long)')
        self.frames_total = (bag.count(image_topics) if self.start_offset_s == 0
                             else bag.count(image_topics, start_ns))
        self.publish_status(self._Status.STATE_PLAYING, 'waiting for subscribers'
                            if self.wait_for_subscribers > 0 else '')
        self._wait_for_subscribers(pubs, image_topics)
        tf_static = [t for t in topics if t.endswith('tf_static')]
        reliable_all = self.rate <= 0 or self.reliable
        ack = max(self.ack_timeout_s, 0.0)
        log = self.get_logger()
        log.info(f'playing {self.bag_uri}: {self.frames_total} image(s) on '
                 f'{", ".join(image_topics)}; topics {", ".join(topics)}; rate {self.rate:g}')
        passes = 0
        t_start = time.monotonic()
        while True:
            passes += 1
            if passes > 1:
                self.frames_published = 0
            if self.start_offset_s > 0 and tf_static:
                for m in bag.messages(tf_static, stop_ns=start_ns):
                    pubs[m.topic].publish(m.data)
            first_ns, t0, unacked = None, time.monotonic(), []
            for m in bag.messages(topics, start_ns=start_ns):
                if not rclpy.ok():
                    raise KeyboardInterrupt
                if first_ns is None:
                    first_ns = m.recorded_ns
                if self.rate > 0:
                    due = t0 + (m.recorded_ns - first_ns) / 1e9 / self.rate
                    if due - time.monotonic() > 0.0005 and not sleep_until(due, 0.05, self._tick):
                        raise KeyboardInterrupt
                pubs[m.topic].publish(m.data)
                if reliable_all:   # after each image: wait until everything sent is acknowledged
                    unacked.append(m.topic)
                    if m.topic in image_set or len(unacked) >= 8:
                        self._wait_acked(pubs, unacked, ack)
                if m.topic in image_set:
                    self.frames_published += 1
                    if m.header_stamp is not None:
                        self.last_stamp = TimeMsg(sec=m.header_stamp[0],
                                                  nanosec=m.header_stamp[1])
                self._tick()
            if not self.loop:
                break
            log.info(f'pass {passes} done; looping')
        elapsed = time.monotonic() - t_start
        self.publish_status(self._Status.STATE_FINISHED,
                            f'published {self.frames_published} image(s) in {elapsed:.3f} s')
        log.info(f'finished: {self.frames_published} image(s) in {elapsed:.2f} s '
                 f'({self.frames_published / elapsed if elapsed > 0 else 0:.1f} images/s)')
        for pub in list(pubs.values()) + [self.status_pub]:
            if pub.get_subscription_count() > 0:
                wait_all_acked(pub, 2.0)
        return 0


def wait_all_acked(pub, timeout_s: float) -> bool:
    """publisher.wait_for_all_acked in 50 ms slices, giving up as soon as ROS shuts down (Ctrl-C)
    instead of blocking for the whole timeout. (It does not cure the abort on a SIGINT that
    arrives just after the last subscriber left: see the known issue in the README.)"""
    deadline = time.monotonic() + timeout_s
    while rclpy.ok():
        if pub.wait_for_all_acked(Duration(seconds=min(0.05, max(deadline - time.monotonic(), 0.0)))):
            return True
        if time.monotonic() >= deadline:
            return False
    return False


def _spin_in_background(node: Node):
    """Spin in a thread that stops within 0.1 s of `stop` being set or ROS shutting down, so it has
    always left the executor's C++ wait before the node is destroyed (a thread still waiting at
    interpreter exit aborts the process)."""
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    stop = threading.Event()

    def spin() -> None:
        try:
            while rclpy.ok() and not stop.is_set():
                executor.spin_once(timeout_sec=0.1)
        except Exception:  # noqa: BLE001 - ROS shut down while spinning
            pass
    thread = threading.Thread(target=spin, name='bag_player_spin')
    thread.start()
    return executor, thread, stop


def _run() -> int:
    node = BagPlayer()
    executor, thread, stop = _spin_in_background(node)   # parameter services stay responsive
    try:
        code = node.run()
        if code == 0 and not node.exit_on_finish:
            while rclpy.ok() and thread.is_alive():   # keep the status available
                thread.join(0.5)
        return code
    finally:
        stop.set()
        thread.join()
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()


def main(args: list[str] | None = None) -> None:
    # rate <= 0 waits for acknowledgements: config/fastdds_localhost.xml (set by env.sh) makes
    # writers heartbeat every 5 ms so that wait is short; with Fast DDS defaults it is up to 3 s.
    run_main(_run, args)


if __name__ == '__main__':
    main()
