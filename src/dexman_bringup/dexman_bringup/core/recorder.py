"""Write received messages into an MCAP rosbag2 (ROS-free): the storage of ``topic_recorder``.

    rec = BagRecorder('/runs/run1/bag')               # writes into /runs/run1/bag.partial/
    rec.add_topic('/joint_states', 'sensor_msgs/msg/JointState', [TopicQos(...)])
    rec.write('/joint_states', receive_time_ns, cdr_bytes)
    rec.close()                                       # -> /runs/run1/bag/{bag.mcap, metadata.yaml}

The bag is ``rosbags.rosbag2.Writer`` output (rosbag2 version 9, MCAP storage): one ``.mcap`` with
a ``ros2msg`` schema per type (the full definition, so Foxglove and ``rosbags`` decode it without
the type installed) and each topic's offered QoS in its channel metadata and in
``metadata.yaml`` (a replay re-latches transient-local topics). Memory stays bounded: messages go
into an MCAP chunk of at most ~1 MiB (optionally zstd-compressed) that is written to the file when
full; only the small per-chunk index stays in memory until the summary is written.

Never a half-written bag at ``out``: everything is written below ``<out>.partial/`` and renamed
to ``out`` by :meth:`close` (after the MCAP summary and ``metadata.yaml`` are written). If the
process dies before (SIGKILL, power loss), ``<out>.partial/<name>/<name>.mcap`` keeps every chunk
written so far but no summary; ``mcap recover`` (the MCAP CLI) rebuilds a readable file from it.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from .recorder_msgdefs import MessageDefinitions
from .recorder_qos import TopicQos

COMPRESSIONS = ('none', 'zstd')


class RecorderError(Exception):
    """The bag cannot be created or written; one-line message."""


def partial_path(out: str | os.PathLike) -> Path:
    """Where the bag at ``out`` is written until it is closed."""
    out = Path(out)
    return out.with_name(out.name + '.partial')


class BagRecorder:
    """An MCAP rosbag2 being written (see the module docstring)."""

    def __init__(self, out: str | os.PathLike, *, compression: str = 'none',
                 definitions: MessageDefinitions | None = None) -> None:
        from rosbags.rosbag2 import Writer
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin
        if compression not in COMPRESSIONS:
            raise RecorderError(f'compression must be one of {COMPRESSIONS}, got {compression!r}')
        self.out = Path(out).expanduser().absolute()
        if not self.out.name or self.out.name in ('.', '..'):
            raise RecorderError(f'bad bag path {str(out)!r}: it must name a new directory')
        if self.out.exists():
            raise RecorderError(f'{self.out} exists already: a recording never replaces anything; '
                                f'choose a new path')
        self.partial = partial_path(self.out)
        if self.partial.exists():
            raise RecorderError(f'{self.partial} exists (an interrupted recording?): recover it with '
                                f'`mcap recover` or remove it')
        self.definitions = definitions or MessageDefinitions()
        try:
            self.partial.mkdir(parents=True)
        except OSError as err:
            raise RecorderError(f'cannot create {self.partial}: {err.strerror or err}') from None
        self._writer = Writer(self.partial / self.out.name, version=9,
                              storage_plugin=StoragePlugin.MCAP)
        if compression == 'zstd':
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.open()
        self._connections: dict[str, object] = {}
        self.types: dict[str, str] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def add_topic(self, topic: str, msgtype: str, offered_qos: Sequence[TopicQos] = ()) -> None:
        """Register ``topic`` (once; DefinitionError from the definitions when the type is unknown,
        RecorderError when the topic was added with another type)."""
        if self.closed:
            raise RecorderError('the bag is closed')
        if topic in self.types:
            if self.types[topic] != msgtype:
                raise RecorderError(f'topic {topic} is recorded as {self.types[topic]}, not {msgtype}')
            return
        msgdef, digest = self.definitions.definition(msgtype)
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, msgdef=msgdef, rihs01=digest,
            offered_qos_profiles=[q.to_rosbags() for q in offered_qos])
        self.types[topic] = msgtype
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        """Append one serialized (CDR) message of an added topic, stamped ``timestamp_ns``."""
        if self.closed:
            raise RecorderError('the bag is closed')
        conn = self._connections.get(topic)
        if conn is None:
            raise RecorderError(f'topic {topic} was not added')
        self._writer.write(conn, int(timestamp_ns), data)
        self.counts[topic] += 1

    def close(self) -> Path:
        """Finish the MCAP and metadata.yaml, move the bag to ``out``; returns ``out``."""
        if self.closed:
            return self.out
        self.closed = True
        self._writer.close()
        (self.partial / self.out.name).rename(self.out)
        shutil.rmtree(self.partial)
        return self.out

    def abort(self) -> None:
        """Stop writing and remove the partial bag (``out`` is never created)."""
        if self.closed:
            return
        self.closed = True
        try:
            self._writer.abort()
        finally:
            shutil.rmtree(self.partial, ignore_errors=True)


__all__ = ['BagRecorder', 'RecorderError', 'COMPRESSIONS', 'partial_path']
