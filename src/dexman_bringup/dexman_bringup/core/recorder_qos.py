"""The QoS a recorder or bridge subscribes a topic with, from what its publishers offer (ROS-free).

rosbag2's rule (``ros2 bag record``), so that every message is received and latched topics stay
latched: reliable only when every publisher is reliable (a reliable subscription does not match
a best-effort publisher); transient local only when every publisher is (a transient-local
subscription does not match a volatile publisher), with a history at least as deep as the
deepest publisher's, so a late subscriber gets every message a publisher keeps.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

RELIABILITIES = ('reliable', 'best_effort')
DURABILITIES = ('transient_local', 'volatile')
HISTORIES = ('keep_last', 'keep_all')


@dataclass(frozen=True)
class TopicQos:
    """The QoS settings that matter for matching and replay (names as in rosbag2 metadata)."""

    reliability: str = 'reliable'
    durability: str = 'volatile'
    history: str = 'keep_last'
    depth: int = 10

    def __post_init__(self) -> None:
        if self.reliability not in RELIABILITIES:
            raise ValueError(f'reliability must be one of {RELIABILITIES}, got {self.reliability!r}')
        if self.durability not in DURABILITIES:
            raise ValueError(f'durability must be one of {DURABILITIES}, got {self.durability!r}')
        if self.history not in HISTORIES:
            raise ValueError(f'history must be one of {HISTORIES}, got {self.history!r}')
        if self.depth < 0:
            raise ValueError(f'depth must be >= 0, got {self.depth}')

    @property
    def latched(self) -> bool:
        return self.durability == 'transient_local'

    def to_rosbags(self):
        """The ``rosbags.interfaces.Qos`` of these settings (other policies: system default)."""
        from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                        QosReliability, QosTime)
        zero = QosTime(sec=0, nsec=0)
        return Qos(history=QosHistory[self.history.upper()], depth=self.depth,
                   reliability=QosReliability[self.reliability.upper()],
                   durability=QosDurability[self.durability.upper()],
                   deadline=zero, lifespan=zero, liveliness=QosLiveliness.SYSTEM_DEFAULT,
                   liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)


def subscription_qos(offers: Sequence[TopicQos], depth: int) -> TopicQos:
    """The subscription QoS for a topic whose publishers offer ``offers`` (keep last ``depth``,
    deeper for a latched topic whose publishers keep more). ValueError without any offer."""
    if not offers:
        raise ValueError('a topic without publishers has no QoS to match')
    if depth < 1:
        raise ValueError(f'depth must be >= 1, got {depth}')
    reliable = all(o.reliability == 'reliable' for o in offers)
    latched = all(o.latched for o in offers)
    if latched:
        depth = max([depth] + [o.depth for o in offers if o.history == 'keep_last'])
    return TopicQos('reliable' if reliable else 'best_effort',
                    'transient_local' if latched else 'volatile', 'keep_last', depth)


__all__ = ['TopicQos', 'subscription_qos', 'RELIABILITIES', 'DURABILITIES', 'HISTORIES']
