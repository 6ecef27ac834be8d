"""bag_player + frame_probe as real processes over DDS: every frame arrives with its recorded
stamp, encoding and data; pacing follows `rate`; a bad bag gives an ERROR status and exit 2."""
import json
import os
import shutil
import subprocess
import zlib

import numpy as np
import pytest
from rosbags.rosbag2 import Writer
from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

from dexman_common.bag_reader import BagReader, make_typestore
from dexman_common.image_codec import numpy_to_image
from ros_args import param_args, ros2

pytestmark = pytest.mark.ros

TS = make_typestore()
T = TS.types
IMG, INFO = 'sensor_msgs/msg/Image', 'sensor_msgs/msg/CameraInfo'
N, W, H, PERIOD_NS = 15, 80, 60, 50_000_000           # 15 frames at 20 Hz: 0.7 s
RECORD_START_NS = 1_000 * 10**9                       # recorded (receive) times
STAMP_START_NS = 1_700_000_000 * 10**9 + 123          # header stamps: deliberately different


def _header(ns):
    return T['std_msgs/msg/Header'](
        stamp=T['builtin_interfaces/msg/Time'](sec=ns // 10**9, nanosec=ns % 10**9),
        frame_id='camera_optical')


@pytest.fixture(scope='module')
def short_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('player') / 'short_bag'
    w = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    w.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    rng = np.random.default_rng(7)
    with w:
        ci = w.add_connection('/camera/image_raw', IMG, typestore=TS)
        cc = w.add_connection('/camera/camera_info', INFO, typestore=TS)
        for i in range(N):
            rec, stamp = RECORD_START_NS + i * PERIOD_NS, STAMP_START_NS + i * PERIOD_NS
            rgb = rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8)
            img = T[IMG](header=_header(stamp),
                         **numpy_to_image(rgb, 'rgb8').as_kwargs(numpy_data=True))
            w.write(ci, rec, TS.serialize_cdr(img, IMG))
            info = T[INFO](header=_header(stamp), height=H, width=W, distortion_model='plumb_bob',
                           d=np.zeros(5), k=np.array([70.0, 0, 39.5, 0, 70.0, 29.5, 0, 0, 1]),
                           r=np.eye(3).reshape(9), p=np.zeros(12), binning_x=0, binning_y=0,
                           roi=T['sensor_msgs/msg/RegionOfInterest'](
                               x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
            w.write(cc, rec, TS.serialize_cdr(info, INFO))
    return path


def _expected(bag, start_index=0):
    with BagReader(bag) as b:
        out = []
        for m in b.messages(['/camera/image_raw']):
            img = b.deserialize(m)
            out.append({'sec': img.header.stamp.sec, 'nanosec': img.header.stamp.nanosec,
                        'encoding': img.encoding, 'width': img.width, 'height': img.height,
                        'data_crc32': zlib.crc32(img.data.tobytes())})
        return out[start_index:]


def _start(executable, params):
    cmd = [ros2(), 'run', 'dexman_perception', executable, '--ros-args']
    cmd += param_args(params)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))


def _finish(procs, timeout):
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            outs.append((p.returncode, out + err))
    except subprocess.TimeoutExpired:
        for p in procs:
            if p.poll() is None:
                p.kill()
        details = '\n'.join(f'--- {i}:\n{"".join(p.communicate()[0:2])}'
                            for i, p in enumerate(procs))
        pytest.fail(f'processes did not finish within {timeout} s\n{details}')
    return outs


def _play(bag, tmp_path, player=None, probe=None, timeout=45):
    report = tmp_path / 'probe.json'
    probe_p = _start('frame_probe', {'report_path': str(report), 'timeout_s': 35.0,
                                     **(probe or {})})
    player_p = _start('bag_player', {'bag_path': str(bag), 'wait_for_subscribers': 1,
                                     'subscriber_timeout_s': 30.0, 'exit_on_finish': True,
                                     **(player or {})})
    (player_rc, player_log), (probe_rc, probe_log) = _finish([player_p, probe_p], timeout)
    rep = json.loads(report.read_text()) if report.exists() else None
    return player_rc, player_log, probe_rc, probe_log, rep


def _frames(rep):
    keys = ('sec', 'nanosec', 'encoding', 'width', 'height', 'data_crc32')
    return [{k: f[k] for k in keys} for f in rep['frames']]


def _check_complete(rep, expected):
    assert rep['result'] == 'finished'
    assert _frames(rep) == expected                 # every frame, in order, stamps untouched
    assert rep['status']['frames_published'] == rep['status']['frames_total'] == len(expected)
    last = rep['status']['last_stamp']
    assert (last['sec'], last['nanosec']) == (expected[-1]['sec'], expected[-1]['nanosec'])
    assert rep['encodings'] == {'rgb8': len(expected)}


def test_rate0_reliable_every_frame(short_bag, tmp_path):
    player_rc, player_log, probe_rc, probe_log, rep = _play(
        short_bag, tmp_path, player={'rate': 0.0}, probe={'reliability': 'reliable'})
    assert (player_rc, probe_rc) == (0, 0), player_log + probe_log
    _check_complete(rep, _expected(short_bag))
    assert rep['frames'][0]['sec'] == STAMP_START_NS // 10**9    # header, not recorded, time
    assert 'finished: 15 image(s)' in player_log


def test_rate1_real_time(short_bag, tmp_path):
    player_rc, player_log, probe_rc, probe_log, rep = _play(
        short_bag, tmp_path, player={'rate': 1.0}, probe={'reliability': 'best_effort'})
    assert (player_rc, probe_rc) == (0, 0), player_log + probe_log
    _check_complete(rep, _expected(short_bag))
    span = rep['receive_span_s']                 # 14 gaps of 50 ms = 0.7 s of bag time
    assert 0.6 <= span <= 1.7, span


def test_rate2_offset_and_topic_selection(short_bag, tmp_path):
    player_rc, player_log, probe_rc, probe_log, rep = _play(
        short_bag, tmp_path, player={'rate': 2, 'start_offset_s': 0.3,
                                     'topics': ['/camera/image_raw']})
    assert (player_rc, probe_rc) == (0, 0), player_log + probe_log
    expected = _expected(short_bag, start_index=6)        # recorded >= start + 0.3 s
    _check_complete(rep, expected)
    span = rep['receive_span_s']                          # 8 gaps x 50 ms / 2 = 0.2 s
    assert 0.15 <= span <= 1.0, span
    assert 'topics /camera/image_raw;' in player_log      # camera_info not played


def test_corrupt_bag_error_status_and_exit_2(short_bag, tmp_path):
    bad = tmp_path / 'bad_bag'
    shutil.copytree(short_bag, bad)
    mcap = bad / 'short_bag.mcap'
    data = mcap.read_bytes()
    mcap.write_bytes(data[:len(data) * 2 // 3])            # truncated: an interrupted copy
    player_rc, player_log, probe_rc, probe_log, rep = _play(bad, tmp_path, timeout=40)
    assert player_rc == 2, player_log
    assert 'cannot play bag' in player_log and str(bad) in player_log
    assert 'Traceback' not in player_log
    assert probe_rc == 3, probe_log
    assert rep['result'] == 'player_error'
    assert rep['status']['state'] == 2                         # STATE_ERROR
    assert 'corrupt' in rep['status']['message'] and str(bad) in rep['status']['message']
    assert rep['frame_count'] == 0


def test_missing_bag_and_bad_parameter_exit_2(tmp_path):
    out = _finish([_start('bag_player', {'bag_path': str(tmp_path / 'none')}),
                   _start('bag_player', {'bag_path': str(tmp_path), 'rate': 'fast'})], 30)
    (rc1, log1), (rc2, log2) = out
    assert rc1 == 2 and 'bag not found' in log1 and 'Traceback' not in log1
    assert rc2 == 2 and "parameter 'rate' must be a float" in log2 and 'Traceback' not in log2
