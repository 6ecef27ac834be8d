"""What the recorder and the Foxglove bridge share: discovering the graph's topics, their types and
the QoS their publishers offer, and making raw (serialized) subscriptions that match it."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from dexman_common.ros.node_util import import_message

from ..core.recorder_qos import TopicQos


@dataclass(frozen=True)
class GraphTopic:
    """A topic with publishers: its name, type ('pkg/msg/Name') and each publisher's QoS."""

    name: str
    msgtype: str
    offers: tuple[TopicQos, ...]


def topic_qos(profile: QoSProfile) -> TopicQos:
    """The TopicQos of an rclpy profile (unknown/system-default policies as ROS 2 defaults)."""
    return TopicQos(
        'best_effort' if profile.reliability == ReliabilityPolicy.BEST_EFFORT else 'reliable',
        'transient_local' if profile.durability == DurabilityPolicy.TRANSIENT_LOCAL else 'volatile',
        'keep_all' if profile.history == HistoryPolicy.KEEP_ALL else 'keep_last',
        max(int(profile.depth), 0))


def rclpy_qos(q: TopicQos) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_ALL if q.history == 'keep_all' else HistoryPolicy.KEEP_LAST,
        depth=max(q.depth, 1),
        reliability=ReliabilityPolicy.RELIABLE if q.reliability == 'reliable' else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if q.latched else DurabilityPolicy.VOLATILE)


class TopicWatcher:
    """Polls the graph for topics with publishers; ``poll()`` -> (new topics, topics gone).

    ``include`` (exact names; empty = every topic) and ``exclude`` (exact names) select topics.
    A topic is reported once (its first type when publishers disagree); it is gone when it has no
    publisher left, and reported again if one comes back.
    """

    def __init__(self, node, include: Iterable[str] = (), exclude: Iterable[str] = ()) -> None:
        self.node = node
        self.include = set(include)
        self.exclude = set(exclude)
        self.known: dict[str, GraphTopic] = {}

    def poll(self) -> tuple[list[GraphTopic], list[str]]:
        present: set[str] = set()
        new: list[GraphTopic] = []
        for name, types in self.node.get_topic_names_and_types():
            if (self.include and name not in self.include) or name in self.exclude or not types:
                continue
            infos = self.node.get_publishers_info_by_topic(name)
            if not infos:
                continue
            present.add(name)
            if name in self.known:
                continue
            msgtype = infos[0].topic_type or types[0]
            offers = tuple(topic_qos(i.qos_profile) for i in infos if i.topic_type == msgtype)
            topic = GraphTopic(name, msgtype, offers)
            self.known[name] = topic
            new.append(topic)
        gone = sorted(set(self.known) - present)
        for name in gone:
            del self.known[name]
        return new, gone


def raw_subscription(node, topic: GraphTopic, qos: TopicQos, callback: Callable[[bytes], None],
                     **kwargs):
    """A subscription delivering the serialized CDR bytes of ``topic``; None when its message class
    cannot be imported here."""
    cls = import_message(topic.msgtype)
    if cls is None:
        return None
    return node.create_subscription(cls, topic.name, callback, rclpy_qos(qos), raw=True, **kwargs)
