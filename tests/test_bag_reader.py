"""bag_reader: rosbag2 (mcap, sqlite3) topics, time order, header stamps, custom types, errors."""
import sqlite3

import numpy as np
import pytest
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

from dexman_common.bag_reader import (BagError, BagReader, header_stamp_from_cdr,
                                                list_topics, make_typestore)
from dexman_common.image_codec import image_to_numpy, numpy_to_image

TS = make_typestore()
T = TS.types
IMG, INFO, STR = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo', 'std_msgs/msg/String'
STATUS = 'dexman_msgs/msg/PlaybackStatus'
BASE_NS = 1_700_000_000 * 10**9


def _header(ns, frame_id='camera_optical'):
    return T['std_msgs/msg/Header'](
        stamp=T['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9),
        frame_id=frame_id)


def _image(ns, value, w=8, h=6):
    rgb = np.full((h, w, 3), value, np.uint8)
    rgb[0, 0] = (1, 2, 3)
    return T[IMG](header=_header(ns), **numpy_to_image(rgb, 'rgb8').as_kwargs(numpy_data=True))


def write_bag(path, storage='mcap', n=5, period_ns=100_000_000, header_offset_ns=-5_000_000,
              strings_out_of_order=True, zstd=True):
    """n images + n camera_info (header = recorded + offset) and 3 strings written out of order."""
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    w = Writer(path, version=9, storage_plugin=plugin)
    if zstd and storage == 'mcap':
        w.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with w:
        img = w.add_connection('/camera/image_raw', IMG, typestore=TS)
        info = w.add_connection('/camera/camera_info', INFO, typestore=TS)
        txt = w.add_connection('/notes', STR, typestore=TS)
        for i in range(n):
            t = BASE_NS + i * period_ns
            w.write(img, t, TS.serialize_cdr(_image(t + header_offset_ns, 10 * i), IMG))
            w.write(info, t, TS.serialize_cdr(T[INFO](
                header=_header(t + header_offset_ns), height=6, width=8,
                distortion_model='plumb_bob',
                d=np.zeros(5), k=np.arange(9, dtype=float), r=np.eye(3).reshape(9),
                p=np.zeros(12), binning_x=0, binning_y=0,
                roi=T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                           width=0, do_rectify=False)), INFO))
        order = [3, 0, 1] if strings_out_of_order else [0, 1, 3]
        for k in order:      # recorded between frames k and k+1
            t = BASE_NS + k * period_ns + period_ns // 2
            w.write(txt, t, TS.serialize_cdr(T[STR](data=f'note {k}'), STR))
    return path


@pytest.fixture(params=['mcap', 'sqlite3'])
def bag(request, tmp_path):
    return write_bag(tmp_path / f'bag_{request.param}', request.param), request.param


def test_topics_types_counts(bag):
    path, storage = bag
    with BagReader(path) as b:
        assert b.storage_id == storage
        topics = b.topics
        assert list(topics) == ['/camera/camera_info', '/camera/image_raw', '/notes']
        assert {n: (t.msgtype, t.count) for n, t in topics.items()} == {
            '/camera/camera_info': (INFO, 5), '/camera/image_raw': (IMG, 5), '/notes': (STR, 3)}
        assert b.image_topics() == ['/camera/image_raw']
        assert b.message_count == 13
        assert b.start_ns == BASE_NS
        assert b.end_ns == BASE_NS + 4 * 100_000_000
        assert b.count(['/camera/image_raw']) == 5
        assert b.count(['/camera/image_raw'], start_ns=BASE_NS + 150_000_000) == 3
    assert [t.name for t in list_topics(path)] == list(topics)


def test_messages_in_time_order_with_header_stamps(bag):
    path, _ = bag
    with BagReader(path) as b:
        msgs = list(b.messages())
        recorded = [m.recorded_ns for m in msgs]
        assert recorded == sorted(recorded)
        assert len(msgs) == 13
        notes = [m for m in msgs if m.topic == '/notes']
        assert [b.deserialize(m).data for m in notes] == ['note 0', 'note 1', 'note 3']
        assert all(m.header_stamp is None for m in notes)       # std_msgs/String: no header
        images = [m for m in msgs if m.topic == '/camera/image_raw']
        for i, m in enumerate(images):
            expected = BASE_NS + i * 100_000_000 - 5_000_000
            assert m.recorded_ns == BASE_NS + i * 100_000_000
            assert m.header_stamp_ns == expected
            assert m.header_stamp == divmod(expected, 10**9)
            assert m.msgtype == IMG and isinstance(m.data, bytes)
            img = b.deserialize(m)
            assert (img.header.stamp.sec, img.header.stamp.nanosec) == m.header_stamp
            arr = image_to_numpy(img)
            assert arr.shape == (6, 8, 3) and int(arr[3, 3, 0]) == 10 * i
            assert arr[0, 0].tolist() == [1, 2, 3]


def test_topic_selection_and_time_window(bag):
    path, _ = bag
    with BagReader(path) as b:
        sel = list(b.messages(['/camera/image_raw', '/notes'],
                              start_ns=BASE_NS + 100_000_000, stop_ns=BASE_NS + 300_000_000))
        assert [(m.topic, m.recorded_ns - BASE_NS) for m in sel] == [
            ('/camera/image_raw', 100_000_000), ('/notes', 150_000_000),
            ('/camera/image_raw', 200_000_000)]
        with pytest.raises(BagError, match=r'/nope not in bag .*its topics: /camera/camera_info'):
            list(b.messages(['/nope']))


def test_single_storage_file_is_a_bag(tmp_path):
    path = write_bag(tmp_path / 'b', 'mcap')
    with BagReader(path / 'b.mcap') as b:
        assert b.storage_id == 'mcap' and b.count() == 13


def test_zstd_message_compressed_sqlite3(tmp_path):
    w = Writer(tmp_path / 'z2', version=9, storage_plugin=StoragePlugin.SQLITE3)
    w.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    with w:
        c = w.add_connection('/camera/image_raw', IMG, typestore=TS)
        w.write(c, 42, TS.serialize_cdr(_image(41, 77), IMG))
    with BagReader(tmp_path / 'z2') as b:
        (m,) = list(b.messages())
        assert m.header_stamp == (0, 41) and image_to_numpy(b.deserialize(m))[2, 2, 1] == 77


def test_custom_dexman_type_without_embedded_definitions(tmp_path):
    """A bag that does not embed message definitions still reads dexman_msgs types, from the
    .msg files (ament index or src/dexman_msgs)."""
    path = tmp_path / 'status'
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        c = w.add_connection('/dexman/playback/status', STATUS, typestore=TS)
        msg = T[STATUS](header=_header(BASE_NS + 7), state=1, bag_uri='/x', frames_published=4,
                        frames_total=5,
                        last_stamp=T['builtin_interfaces/msg/Time'](sec=3, nanosec=9),
                        message='done')
        w.write(c, BASE_NS, TS.serialize_cdr(msg, STATUS))
    db = next(path.glob('*.db3'))
    with sqlite3.connect(db) as con:          # as older recorders wrote them: no definitions
        con.execute('DELETE FROM message_definitions')
    with BagReader(path) as b:
        assert b.topics['/dexman/playback/status'].msgtype == STATUS
        with pytest.raises(BagError, match='no image topic.*/dexman/playback/status'):
            b.image_topics()
        assert b.image_topics(required=False) == []
        (m,) = list(b.messages())
        assert m.header_stamp == (BASE_NS // 10**9, 7)
        got = b.deserialize(m)
        assert (got.state, got.frames_published, got.frames_total, got.message) == (1, 4, 5, 'done')
        assert (got.last_stamp.sec, got.last_stamp.nanosec) == (3, 9)


def test_header_stamp_from_cdr_both_endians():
    le = b'\x00\x01\x00\x00' + (5).to_bytes(4, 'little') + (6).to_bytes(4, 'little')
    be = b'\x00\x00\x00\x00' + (5).to_bytes(4, 'big') + (6).to_bytes(4, 'big')
    assert header_stamp_from_cdr(le) == (5, 6)
    assert header_stamp_from_cdr(be) == (5, 6)
    with pytest.raises(BagError, match='too short'):
        header_stamp_from_cdr(b'\x00\x01\x00\x00')


def test_missing_path(tmp_path):
    with pytest.raises(BagError, match=r'bag not found: .*nothing_here'):
        BagReader(tmp_path / 'nothing_here')


def test_not_a_bag(tmp_path):
    (tmp_path / 'notes.txt').write_text('hello')
    with pytest.raises(BagError, match='is not a rosbag2 bag'):
        BagReader(tmp_path / 'notes.txt')
    (tmp_path / 'fake.mcap').write_bytes(b'hello world, not mcap')
    with pytest.raises(BagError, match='is not an MCAP file'):
        BagReader(tmp_path / 'fake.mcap')
    (tmp_path / 'fake.db3').write_bytes(b'hello world, not sqlite')
    with pytest.raises(BagError, match='is not an SQLite 3 database'):
        BagReader(tmp_path / 'fake.db3')
    (tmp_path / 'emptydir').mkdir()
    with pytest.raises(BagError, match='not a rosbag2 directory: it has no metadata.yaml'):
        BagReader(tmp_path / 'emptydir')
    (tmp_path / 'old.bag').write_bytes(b'#ROSBAG V2.0\n')
    with pytest.raises(BagError, match='ROS 1 bag'):
        BagReader(tmp_path / 'old.bag')
    bad = write_bag(tmp_path / 'badmeta', 'mcap')
    (bad / 'metadata.yaml').write_text('garbage: [unclosed')
    with pytest.raises(BagError, match=r'cannot open bag .*badmeta.*YAML'):
        BagReader(bad)


def test_truncated_mcap(tmp_path):
    path = write_bag(tmp_path / 'trunc', 'mcap')
    f = path / 'trunc.mcap'
    data = f.read_bytes()
    f.write_bytes(data[:len(data) // 2])
    with pytest.raises(BagError, match=r'cannot open bag .*trunc.*(corrupt|truncated)'):
        with BagReader(path) as b:
            list(b.messages())


def test_corrupt_mcap_chunk(tmp_path):
    """Damage inside the (zstd) chunk: the index is fine, reading the messages fails."""
    path = tmp_path / 'flip'
    w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    w.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with w:
        c = w.add_connection('/camera/image_raw', IMG, typestore=TS)
        for i in range(4):
            w.write(c, BASE_NS + i, TS.serialize_cdr(_image(BASE_NS + i, i, 64, 48), IMG))
    f = path / 'flip.mcap'
    data = bytearray(f.read_bytes())
    for i in range(300, 700):
        data[i] ^= 0x5A
    f.write_bytes(bytes(data))
    with pytest.raises(BagError, match=r'flip.*(corrupt|truncated)'):
        with BagReader(path) as b:
            list(b.messages())


def test_corrupt_sqlite3(tmp_path):
    path = write_bag(tmp_path / 'sq', 'sqlite3')
    db = next(path.glob('*.db3'))
    db.write_bytes(b'SQLite format 3\x00' + b'\xff' * 4000)
    with pytest.raises(BagError, match=r'cannot open bag .*sq .*corrupt.*not a database'):
        with BagReader(path) as b:
            list(b.messages())
