"""A Foxglove WebSocket server for ROS 2 topics, ROS-free: ``foxglove-sdk``'s server with one
channel per topic carrying the serialized CDR messages as they are (``message_encoding='cdr'``)
and the ``ros2msg`` schema text of their type (``core.recorder_msgdefs``), which is what the
Foxglove app decodes ROS 2 messages with.

    server = FoxgloveServer(host='127.0.0.1', port=8765)
    server.advertise('/joint_states', 'sensor_msgs/msg/JointState')
    for kind, client, topic in server.pop_events(): ...      # 'subscribe' / 'unsubscribe'
    server.log('/joint_states', cdr_bytes, log_time_ns)
    server.stop()

Clients subscribe to channels; the server reports each (un)subscription as an event, so the caller
subscribes to a ROS topic only while a client watches it. The protocol is the Foxglove WebSocket
protocol, negotiated as subprotocol ``foxglove.sdk.v1`` by this SDK (the same messages as the
older ``foxglove.websocket.v1``; current Foxglove apps speak both).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from .recorder_msgdefs import MessageDefinitions

SUBPROTOCOL = 'foxglove.sdk.v1'


class FoxgloveError(Exception):
    """The server cannot start, or a channel cannot be made; one-line message."""


class _Listener:
    """foxglove ServerListener: (un)subscriptions go to the owner's event queue."""

    def __init__(self, owner: 'FoxgloveServer') -> None:
        self._owner = owner

    def on_subscribe(self, client, channel) -> None:
        self._owner._event('subscribe', client.id, channel.topic)

    def on_unsubscribe(self, client, channel) -> None:
        self._owner._event('unsubscribe', client.id, channel.topic)


class FoxgloveServer:
    """See the module docstring. ``on_event`` (optional) is called from the server's thread after
    each event is queued; everything else is called from the owner's thread."""

    def __init__(self, host: str = '127.0.0.1', port: int = 8765, *, name: str = 'dexman',
                 definitions: MessageDefinitions | None = None,
                 on_event: Callable[[], None] | None = None) -> None:
        import foxglove
        if not (0 <= int(port) <= 65535):
            raise FoxgloveError(f'port must be in [0, 65535], got {port}')
        self._foxglove = foxglove
        self.definitions = definitions or MessageDefinitions()
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._on_event = on_event
        self._lock = threading.Lock()
        self._context = foxglove.Context()
        self.channels: dict[str, object] = {}
        self.types: dict[str, str] = {}
        try:
            self._server = foxglove.start_server(name=name, host=host, port=int(port),
                                                 context=self._context, server_listener=_Listener(self))
        except Exception as err:  # noqa: BLE001 - the SDK raises RuntimeError/OSError variants
            raise FoxgloveError(f'cannot serve Foxglove on {host}:{port}: {err}') from None
        self.host = host
        self.port: int = self._server.port

    @property
    def url(self) -> str:
        return f'ws://{self.host}:{self.port}'

    def _event(self, kind: str, client: int, topic: str) -> None:
        self._events.put((kind, client, topic))
        if self._on_event is not None:
            self._on_event()

    def pop_events(self) -> list[tuple[str, int, str]]:
        """The (kind, client id, topic) events since the last call, in order."""
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def advertise(self, topic: str, msgtype: str) -> None:
        """Offer ``topic`` to clients (once; DefinitionError when the type has no definition)."""
        with self._lock:
            if topic in self.channels:
                return
            msgdef, _ = self.definitions.definition(msgtype)
            schema = self._foxglove.Schema(name=msgtype, encoding='ros2msg', data=msgdef.encode())
            self.channels[topic] = self._foxglove.Channel(topic, schema=schema, message_encoding='cdr',
                                                          context=self._context)
            self.types[topic] = msgtype

    def unadvertise(self, topic: str) -> None:
        with self._lock:
            channel = self.channels.pop(topic, None)
            self.types.pop(topic, None)
        if channel is not None:
            channel.close()

    def log(self, topic: str, data: bytes, log_time_ns: int) -> None:
        """Send one CDR message of an advertised topic to the clients subscribed to it."""
        channel = self.channels.get(topic)
        if channel is not None:
            channel.log(bytes(data), log_time=int(log_time_ns))

    def stop(self) -> None:
        with self._lock:
            channels, self.channels = list(self.channels.values()), {}
        for channel in channels:
            channel.close()
        self._server.stop()


__all__ = ['FoxgloveServer', 'FoxgloveError', 'SUBPROTOCOL']
