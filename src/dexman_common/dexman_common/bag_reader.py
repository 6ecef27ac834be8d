"""Read rosbag2 recordings (mcap and sqlite3) with ``rosbags``, without ROS.

    with BagReader('/path/to/bag') as bag:
        for name, info in bag.topics.items(): ...          # type and message count per topic
        for m in bag.messages(['/camera/image_raw']):      # time order over the chosen topics
            m.topic, m.msgtype, m.recorded_ns, m.header_stamp, m.data   # data: raw CDR bytes
            img = bag.deserialize(m)                       # rosbags message object

A bag is a rosbag2 directory (with ``metadata.yaml``) or a single ``.mcap`` / ``.db3`` file.
Message definitions come from the bag itself when it embeds them (mcap, recent sqlite3);
otherwise from the ROS 2 Kilted (or Jazzy) definitions shipped with ``rosbags``, plus the
project's ``dexman_msgs`` types read from their ``.msg`` files (found through the ament index,
or in ``src/dexman_msgs`` of this checkout). Every failure to read is a :class:`BagError` with a
message that names the bag and what is wrong.
"""
from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from .stamps import NS_PER_SEC

IMAGE_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage')
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
_STORES = {'kilted': Stores.ROS2_KILTED, 'jazzy': Stores.ROS2_JAZZY, 'humble': Stores.ROS2_HUMBLE}
_MCAP_MAGIC = b'\x89MCAP0\r\n'
_SQLITE_MAGIC = b'SQLite format 3\x00'


class BagError(Exception):
    """The bag cannot be read (missing, not a bag, corrupt, truncated, lacks what is needed)."""


@dataclass(frozen=True)
class TopicInfo:
    name: str
    msgtype: str
    count: int

    @property
    def is_image(self) -> bool:
        return self.msgtype in IMAGE_TYPES


@dataclass(frozen=True)
class BagMessage:
    topic: str
    msgtype: str
    recorded_ns: int                          # the bag's (receive) timestamp
    header_stamp: tuple[int, int] | None      # (sec, nanosec) of header.stamp, None: no header
    data: bytes                               # serialized CDR, encapsulation header included

    @property
    def header_stamp_ns(self) -> int | None:
        if self.header_stamp is None:
            return None
        return self.header_stamp[0] * NS_PER_SEC + self.header_stamp[1]


# ------------------------------------------------------------------------------ type definitions


def dexman_msg_dirs() -> list[Path]:
    """Directories holding the ``dexman_msgs`` ``.msg`` files (installed share first)."""
    dirs: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory
        dirs.append(Path(get_package_share_directory('dexman_msgs')) / 'msg')
    except Exception:   # noqa: BLE001 - no ament index or package not installed: use the checkout
        pass
    if os.environ.get('DEXMAN_ROOT'):
        dirs.append(Path(os.environ['DEXMAN_ROOT']) / 'src' / 'dexman_msgs' / 'msg')
    for parent in Path(__file__).resolve().parents:
        dirs.append(parent / 'src' / 'dexman_msgs' / 'msg')
        dirs.append(parent / 'dexman_msgs' / 'msg')
    seen, out = set(), []
    for d in dirs:
        if d.is_dir() and any(d.glob('*.msg')) and d.resolve() not in seen:
            seen.add(d.resolve())
            out.append(d)
    return out


@functools.lru_cache(maxsize=1)
def dexman_msg_types() -> dict[str, Any]:
    """rosbags type definitions of every ``dexman_msgs/msg/*`` (empty if none are found)."""
    for d in dexman_msg_dirs():
        types: dict[str, Any] = {}
        for f in sorted(d.glob('*.msg')):
            types.update(get_types_from_msg(f.read_text(), f'dexman_msgs/msg/{f.stem}'))
        return types
    return {}


def make_typestore(distro: str = 'kilted', with_dexman: bool = True):
    """A rosbags typestore with the standard ROS 2 messages of ``distro`` and dexman_msgs."""
    store = _STORES.get(distro.lower())
    if store is None:
        raise BagError(f'unknown ROS distribution {distro!r}; known: {", ".join(_STORES)}')
    typestore = get_typestore(store)
    if with_dexman:
        types = {k: v for k, v in dexman_msg_types().items() if k not in typestore.fielddefs}
        if types:
            typestore.register(types)
    return typestore


def _has_header_first(typestore, msgtype: str) -> bool:
    fielddefs = typestore.fielddefs.get(msgtype)
    if not fielddefs or not fielddefs[1]:
        return False
    name, (_nodetype, spec) = fielddefs[1][0]
    return name == 'header' and spec == 'std_msgs/msg/Header'


def header_stamp_from_cdr(data: bytes) -> tuple[int, int]:
    """(sec, nanosec) of a CDR message whose first field is a std_msgs/Header."""
    if len(data) < 12:
        raise BagError(f'message of {len(data)} bytes is too short to hold a header stamp')
    fmt = '<iI' if data[1] & 1 else '>iI'       # encapsulation id: odd = little endian
    sec, nanosec = struct.unpack_from(fmt, data, 4)
    return sec, nanosec


# ------------------------------------------------------------------------------------- reader


def _check_path(path: Path) -> None:
    if not path.exists():
        raise BagError(f'bag not found: {path}')
    if path.is_dir():
        if not (path / 'metadata.yaml').is_file():
            storage = sorted(path.glob('*.mcap')) + sorted(path.glob('*.db3'))
            hint = (f'; to read the storage file alone, pass {storage[0]}' if storage else '')
            raise BagError(f'{path} is not a rosbag2 directory: it has no metadata.yaml{hint}')
        return
    if path.suffix == '.bag':
        raise BagError(f'{path} looks like a ROS 1 bag; only rosbag2 (mcap, sqlite3) is '
                       'supported (convert it with `rosbags-convert`)')
    try:
        with path.open('rb') as f:
            head = f.read(16)
    except OSError as err:
        raise BagError(f'cannot read {path}: {err.strerror or err}') from None
    if path.suffix == '.mcap' and not head.startswith(_MCAP_MAGIC):
        raise BagError(f'{path} is not an MCAP file (bad magic bytes)')
    if path.suffix == '.db3' and not head.startswith(_SQLITE_MAGIC):
        raise BagError(f'{path} is not an SQLite 3 database (bad magic bytes)')
    if path.suffix not in ('.mcap', '.db3'):
        raise BagError(f'{path} is not a rosbag2 bag: expected a directory with metadata.yaml, '
                       'or a .mcap / .db3 file')


def _describe(err: BaseException) -> str:
    text = ' '.join(str(a) for a in err.args) if err.args else ''
    name = type(err).__name__
    if text and name in ('AnyReaderError', 'ReaderError', 'FileNotFoundError'):
        return text                      # rosbags' own messages read well on their own
    return f'{name}: {text}' if text else name


class BagReader:
    """An open rosbag2 recording. Use as a context manager (or call :meth:`close`)."""

    def __init__(self, path: str | os.PathLike, *, distro: str = 'kilted') -> None:
        self.path = Path(path).expanduser()
        _check_path(self.path)
        self._default_typestore = make_typestore(distro)
        try:
            self._reader = AnyReader([self.path], default_typestore=self._default_typestore)
            self._reader.open()
        except BagError:
            raise
        except Exception as err:  # noqa: BLE001 - rosbags raises many kinds on corrupt input
            raise BagError(f'cannot open bag {self.path} (corrupt, truncated or not a rosbag2?): '
                           f'{_describe(err)}') from None
        self.typestore = self._reader.typestore
        if any(c.msgtype not in self.typestore.fielddefs for c in self._reader.connections):
            # definitions embedded for some types only: fill in the rest from the defaults
            deps = {k: v for k, v in self._default_typestore.fielddefs.items()
                    if k not in self.typestore.fielddefs}
            self.typestore.register(deps)
        self._header_first = {c.msgtype: _has_header_first(self.typestore, c.msgtype)
                              for c in self._reader.connections}

    # -- context manager
    def close(self) -> None:
        if getattr(self, '_reader', None) is not None:
            try:
                self._reader.close()
            except Exception:  # noqa: BLE001 - closing a broken reader must not mask the error
                pass
            self._reader = None

    def __enter__(self) -> BagReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata
    @property
    def storage_id(self) -> str:
        if self.path.is_file():
            return 'mcap' if self.path.suffix == '.mcap' else 'sqlite3'
        text = (self.path / 'metadata.yaml').read_text(errors='replace')
        return 'mcap' if 'storage_identifier: mcap' in text else 'sqlite3'

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time) if self.message_count else 0

    @property
    def end_ns(self) -> int:
        """Recorded time of the last message (inclusive)."""
        return int(self._reader.end_time) - 1 if self.message_count else 0

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Topics of the bag by name (sorted), with their type and message count."""
        out: dict[str, TopicInfo] = {}
        for name, info in sorted(self._reader.topics.items()):
            types = {c.msgtype for c in info.connections}
            msgtype = info.msgtype or ' | '.join(sorted(types))
            out[name] = TopicInfo(name, msgtype, int(info.msgcount))
        return out

    def image_topics(self, required: bool = True) -> list[str]:
        """Topics of type sensor_msgs/Image or CompressedImage; BagError if none and required."""
        found = [t.name for t in self.topics.values() if t.is_image]
        if required and not found:
            listing = ', '.join(f'{t.name} ({t.msgtype})' for t in self.topics.values())
            raise BagError(f'bag {self.path} has no image topic (sensor_msgs/msg/Image or '
                           f'CompressedImage); its topics: {listing or "none"}')
        return found

    def has_header(self, msgtype: str) -> bool:
        return self._header_first.get(msgtype, False)

    # -- messages
    def _select(self, topics: Iterable[str] | None) -> list:
        conns = list(self._reader.connections)
        if topics is None:
            return conns
        wanted = list(dict.fromkeys(topics))
        have = {c.topic for c in conns}
        unknown = [t for t in wanted if t not in have]
        if unknown:
            raise BagError(f'topic(s) {", ".join(unknown)} not in bag {self.path}; its topics: '
                           f'{", ".join(sorted(have)) or "none"}')
        return [c for c in conns if c.topic in wanted]

    def count(self, topics: Iterable[str] | None = None, start_ns: int | None = None) -> int:
        """Messages on ``topics`` (all if None) at or after ``start_ns`` (index only when
        ``start_ns`` is None, otherwise by scanning the timestamps)."""
        conns = self._select(topics)
        if start_ns is None:
            return sum(int(c.msgcount) for c in conns)
        return sum(1 for _ in self._raw(conns, start_ns, None))

    def _raw(self, conns: Sequence, start_ns: int | None, stop_ns: int | None) -> Iterator:
        if not conns:
            return
        try:
            yield from self._reader.messages(connections=conns, start=start_ns, stop=stop_ns)
        except BagError:
            raise
        except Exception as err:  # noqa: BLE001
            raise BagError(f'bag {self.path} is corrupt or truncated: {_describe(err)}') from None

    def messages(self, topics: Iterable[str] | None = None, *, start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` (all if None) in recorded-time order, with the recorded time
        in ``[start_ns, stop_ns)``."""
        for conn, recorded_ns, raw in self._raw(self._select(topics), start_ns, stop_ns):
            data = raw if isinstance(raw, bytes) else bytes(raw)
            stamp = None
            if self._header_first.get(conn.msgtype):
                try:
                    stamp = header_stamp_from_cdr(data)
                except (BagError, struct.error):
                    raise BagError(f'bag {self.path}: message on {conn.topic} at {recorded_ns} '
                                   f'is truncated ({len(data)} bytes)') from None
            yield BagMessage(conn.topic, conn.msgtype, int(recorded_ns), stamp, data)

    def deserialize(self, msg: BagMessage) -> Any:
        """The rosbags message object of a :class:`BagMessage`."""
        try:
            return self.typestore.deserialize_cdr(msg.data, msg.msgtype)
        except Exception as err:  # noqa: BLE001
            raise BagError(f'bag {self.path}: cannot deserialize {msg.msgtype} on {msg.topic}: '
                           f'{_describe(err)}') from None


def list_topics(path: str | os.PathLike) -> list[TopicInfo]:
    """Topics of a bag (name, type, count), sorted by name."""
    with BagReader(path) as bag:
        return list(bag.topics.values())
