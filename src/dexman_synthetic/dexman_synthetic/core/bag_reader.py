"""Read a synthetic demonstration bag back: images, depth, camera info, ground-truth topics.

The project's bag reader (dexman_common.bag_reader), image codec and stamp conversion, under
the names the synthetic tests and benches use.
"""
from __future__ import annotations

import pathlib

import numpy as np

from dexman_common.bag_reader import BagReader
from dexman_common.image_codec import image_to_numpy as image_array
from dexman_common.stamps import stamp_ns

from .bag_writer import TOPIC_DEPTH, TOPIC_IMAGE


def read_topics(bag_dir: str | pathlib.Path, topics: list[str] | None = None):
    """Yield (topic, log_time_ns, message) in log-time order; topics the bag lacks yield nothing."""
    with BagReader(bag_dir) as bag:
        if topics is not None:
            topics = [t for t in topics if t in bag.topics]
        for m in bag.messages(topics):
            yield m.topic, m.recorded_ns, bag.deserialize(m)


def image_at(bag_dir: str | pathlib.Path, stamp: int, topic: str = TOPIC_IMAGE) -> np.ndarray | None:
    """The image (or depth) whose header stamp equals `stamp`, or None (e.g. a dropped frame)."""
    for _, t, msg in read_topics(bag_dir, [topic]):
        if stamp_ns(msg.header) == stamp:
            return image_array(msg)
    return None


__all__ = ['read_topics', 'image_at', 'image_array', 'stamp_ns', 'TOPIC_IMAGE', 'TOPIC_DEPTH']
