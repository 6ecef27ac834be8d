"""Read a synthetic demonstration bag back (rosbags): images, depth, camera info, ground-truth topics."""
from __future__ import annotations

import pathlib

import numpy as np
from rosbags.rosbag2 import Reader

from .bag_writer import TOPIC_DEPTH, TOPIC_IMAGE, typestore


def stamp_ns(header) -> int:
    return int(header.stamp.sec) * 10**9 + int(header.stamp.nanosec)


def image_array(msg) -> np.ndarray:
    if msg.encoding == 'rgb8':
        return np.asarray(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
    if msg.encoding == '32FC1':
        return np.asarray(msg.data, np.uint8).view('<f4').reshape(msg.height, msg.width)
    raise ValueError(f'unsupported encoding {msg.encoding}')


def read_topics(bag_dir: str | pathlib.Path, topics: list[str] | None = None):
    """Yield (topic, log_time_ns, message) in log-time order."""
    ts = typestore()
    with Reader(pathlib.Path(bag_dir)) as r:
        conns = [c for c in r.connections if topics is None or c.topic in topics]
        for c, t, raw in r.messages(connections=conns):
            yield c.topic, t, ts.deserialize_cdr(raw, c.msgtype)


def image_at(bag_dir: str | pathlib.Path, stamp: int, topic: str = TOPIC_IMAGE) -> np.ndarray | None:
    """The image (or depth) whose header stamp equals `stamp`, or None (e.g. a dropped frame)."""
    for _, t, msg in read_topics(bag_dir, [topic]):
        if stamp_ns(msg.header) == stamp:
            return image_array(msg)
    return None


__all__ = ['read_topics', 'image_at', 'image_array', 'stamp_ns', 'TOPIC_IMAGE', 'TOPIC_DEPTH']
