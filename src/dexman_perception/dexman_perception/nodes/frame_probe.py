"""frame_probe: record which frames arrive on an image topic, for tests and users.

    ros2 run dexman_perception frame_probe --ros-args -p image_topic:=/camera/image_raw \\
        -p report_path:=/tmp/probe.json

Subscribes to ``image_topic`` (sensor_msgs/Image, or CompressedImage with ``image_type``) and to
the bag player's dexman_msgs/PlaybackStatus. For every frame it records the header stamp
(sec, nanosec), encoding, width, height, step, a CRC-32 of the data and the receive time. When
the player reports FINISHED and every announced frame arrived (or ``settle_s`` passed), it writes
a JSON report to ``report_path`` (atomically) and exits 0 (``exit_on_finish``).

Exit status: 0 finished; 1 timeout (``timeout_s``) before FINISHED; 3 the player reported ERROR;
2 bad parameters. The report is written in every case when ``report_path`` is set.
"""
from __future__ import annotations

import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import rclpy
from rclpy.node import Node

from dexman_common.atomic_io import write_json_atomic
from dexman_common.ros.node_util import (ParamError, declare, import_message, latched_qos, reliable_keep_all_qos,
                       run_main, sensor_qos)

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'


class FrameProbe(Node):

    def __init__(self) -> None:
        super().__init__('frame_probe')
        self.image_topic = declare(self, 'image_topic', '/camera/image_raw',
                                   'image topic to record', str, read_only=True)
        self.image_type = declare(self, 'image_type', IMAGE_TYPE,
                                  f'{IMAGE_TYPE} or {COMPRESSED_TYPE}', str, read_only=True)
        self.reliability = declare(
            self, 'reliability', 'best_effort',
            'best_effort: sensor-data QoS (matches any publisher); reliable: reliable keep-all '
            '(no loss; needed to follow a bag_player at rate <= 0 without drops)', str,
            read_only=True)
        self.qos_depth = declare(self, 'qos_depth', 50,
                                 'history depth of the best-effort subscription', int,
                                 read_only=True)
        self.status_topic = declare(self, 'status_topic', '/dexman/playback/status',
                                    'PlaybackStatus topic of the player', str, read_only=True)
        report = declare(self, 'report_path', '',
                         'JSON report to write (atomically); empty: no file, summary on stdout',
                         str, read_only=True)
        self.report_path = Path(report).expanduser() if report else None
        self.exit_on_finish = declare(self, 'exit_on_finish', True,
                                      'exit 0 once the report is written after FINISHED', bool,
                                      read_only=True)
        self.settle_s = declare(self, 'settle_s', 0.5,
                                'after FINISHED, longest wait for frames still in flight', float,
                                read_only=True)
        self.timeout_s = declare(self, 'timeout_s', 60.0,
                                 'exit 1 when FINISHED has not arrived after this many seconds '
                                 '(<= 0: never)', float, read_only=True)
        self.checksum = declare(self, 'checksum', True, 'record a CRC-32 of every frame\'s data',
                                bool, read_only=True)
        if self.image_type not in (IMAGE_TYPE, COMPRESSED_TYPE):
            raise ParamError(f'parameter image_type must be {IMAGE_TYPE} or {COMPRESSED_TYPE}, '
                             f'got {self.image_type!r}')
        if self.reliability not in ('best_effort', 'reliable'):
            raise ParamError(f'parameter reliability must be best_effort or reliable, got '
                             f'{self.reliability!r}')
        if self.qos_depth < 1:
            raise ParamError('parameter qos_depth must be >= 1')
        from dexman_msgs.msg import PlaybackStatus
        self._Status = PlaybackStatus
        qos = reliable_keep_all_qos() if self.reliability == 'reliable' \
            else sensor_qos(self.qos_depth)
        self.frames: list[dict] = []
        self.t_start = time.monotonic()
        self.t_first: float | None = None
        self.status: PlaybackStatus | None = None
        self.finished_at: float | None = None
        self.error: str | None = None
        self.reported = False
        self.create_subscription(import_message(self.image_type), self.image_topic,
                                 self._on_image, qos)
        self.create_subscription(PlaybackStatus, self.status_topic, self._on_status,
                                 latched_qos(1))
        self.get_logger().info(f'recording {self.image_topic} ({self.reliability}); '
                               f'waiting for FINISHED on {self.status_topic}')

    def _on_image(self, msg) -> None:
        now = time.monotonic()
        if self.t_first is None:
            self.t_first = now
        data = msg.data
        rec = {'sec': int(msg.header.stamp.sec), 'nanosec': int(msg.header.stamp.nanosec),
               'frame_id': msg.header.frame_id}
        if self.image_type == IMAGE_TYPE:
            rec.update(encoding=msg.encoding, width=int(msg.width), height=int(msg.height),
                       step=int(msg.step))
        else:
            rec.update(encoding=msg.format, **self._compressed_size(data))
        rec['size'] = len(data)
        if self.checksum:
            rec['data_crc32'] = zlib.crc32(data)
        rec['recv_s'] = round(now - self.t_first, 6)
        self.frames.append(rec)

    @staticmethod
    def _compressed_size(data) -> dict:
        try:
            import cv2
            import numpy as np
            img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
        except Exception:  # noqa: BLE001
            img = None
        if img is None:
            return {'width': 0, 'height': 0, 'step': 0}
        return {'width': int(img.shape[1]), 'height': int(img.shape[0]), 'step': 0}

    def _on_status(self, msg) -> None:
        self.status = msg
        if msg.state == self._Status.STATE_FINISHED and self.finished_at is None:
            self.finished_at = time.monotonic()
        elif msg.state == self._Status.STATE_ERROR and self.error is None:
            self.error = msg.message or 'player reported ERROR without a message'
        elif msg.state == self._Status.STATE_PLAYING:
            self.finished_at = None

    def settled(self) -> bool:
        if self.finished_at is None or self.status is None:
            return False
        return (len(self.frames) >= self.status.frames_total
                or time.monotonic() - self.finished_at >= self.settle_s)

    def report(self, result: str, message: str) -> dict:
        st = self.status
        status = None if st is None else {
            'state': int(st.state), 'bag_uri': st.bag_uri,
            'frames_published': int(st.frames_published), 'frames_total': int(st.frames_total),
            'last_stamp': {'sec': int(st.last_stamp.sec), 'nanosec': int(st.last_stamp.nanosec)},
            'message': st.message}
        n = len(self.frames)
        span = self.frames[-1]['recv_s'] if n else 0.0
        return {
            'result': result, 'message': message, 'image_topic': self.image_topic,
            'image_type': self.image_type, 'reliability': self.reliability, 'status': status,
            'frame_count': n, 'encodings': dict(Counter(f['encoding'] for f in self.frames)),
            'receive_span_s': span,
            'receive_rate_hz': round((n - 1) / span, 3) if n > 1 and span > 0 else 0.0,
            'frames': self.frames}

    def finish(self, result: str, message: str) -> None:
        rep = self.report(result, message)
        if self.report_path is not None:
            write_json_atomic(self.report_path, rep)
        summary = (f'frame_probe: {result}: {len(self.frames)} frame(s) on {self.image_topic}'
                   + (f'; {message}' if message else '')
                   + (f'; report {self.report_path}' if self.report_path else ''))
        print(summary, file=sys.stdout if result == 'finished' else sys.stderr, flush=True)


def _run() -> int:
    node = FrameProbe()
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.05)
            if node.error is not None:
                node.finish('player_error', node.error)
                return 3
            if node.settled():
                st = node.status
                node.finish('finished', f'player published {st.frames_published} of '
                            f'{st.frames_total} frame(s); received {len(node.frames)}')
                if node.exit_on_finish:
                    return 0
                node.finished_at, node.reported = None, True
            if node.timeout_s > 0 and time.monotonic() - node.t_start > node.timeout_s \
                    and node.finished_at is None and not node.reported:
                node.finish('timeout', f'no FINISHED status on {node.status_topic} within '
                            f'{node.timeout_s:g} s')
                return 1
        return 0
    finally:
        node.destroy_node()


def main(args: list[str] | None = None) -> None:
    run_main(_run, args)


if __name__ == '__main__':
    main()
