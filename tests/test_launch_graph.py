"""The launch files run the graph as separate processes over real DDS: `ros2 launch` (the real one
on a full ROS 2 install, scripts/ros2cli/ros2 -> dexman_launch here) starts bag_player and
frame_probe from launch/*.launch.xml with config/*.yaml; every frame arrives with its recorded
stamp and encoding. Also the whole MP4 -> bag -> topics path."""
import json
import os
import pathlib
import shutil
import subprocess
import zlib

import cv2
import numpy as np
import pytest

from dexman_common.bag_reader import BagReader

pytestmark = pytest.mark.ros
ROOT = pathlib.Path(__file__).resolve().parents[1]


def ros2():
    exe = shutil.which('ros2')
    if exe is None:
        pytest.skip('no ros2 on PATH: source env.sh first')
    return exe


def recorded_frames(bag, topic='/camera/image_raw'):
    with BagReader(bag) as b:
        out = []
        for m in b.messages([topic]):
            img = b.deserialize(m)
            out.append({'sec': img.header.stamp.sec, 'nanosec': img.header.stamp.nanosec,
                        'encoding': img.encoding, 'width': img.width, 'height': img.height,
                        'data_crc32': zlib.crc32(img.data.tobytes())})
    return out


def launch(launch_file, timeout=90, **args):
    cmd = [ros2(), 'launch', str(ROOT / 'launch' / launch_file)] + [f'{k}:={v}' for k, v in args.items()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))
    return p.returncode, p.stdout + p.stderr


def received(report):
    rep = json.loads(pathlib.Path(report).read_text())
    keys = ('sec', 'nanosec', 'encoding', 'width', 'height', 'data_crc32')
    return rep, [{k: f[k] for k in keys} for f in rep['frames']]


def make_mp4(path, n=24, w=160, h=120, fps=24.0):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
    assert vw.isOpened()
    for i in range(n):
        img = np.zeros((h, w, 3), np.uint8)
        cv2.rectangle(img, (5 + 4 * i, 30), (35 + 4 * i, 70), (0, 200, 255), -1)
        vw.write(img)
    vw.release()


def video_to_bag(video, bag, *extra):
    p = subprocess.run([ros2(), 'run', 'dexman_perception', 'video_to_bag', str(video), str(bag), *extra],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return bag


def test_main_launch_file_plays_every_frame_with_recorded_stamps(tmp_path):
    """launch/dexman.launch.xml perception:=false -> include bag_playback.launch.xml -> two processes,
    real time."""
    make_mp4(tmp_path / 'clip.mp4')
    bag = video_to_bag(tmp_path / 'clip.mp4', tmp_path / 'bag')
    report = tmp_path / 'frames.json'
    rc, log = launch('dexman.launch.xml', bag=bag, report=report, rate='1.0', perception='false')
    assert rc == 0, log
    expected = recorded_frames(bag)
    assert len(expected) == 24
    rep, got = received(report)
    assert got == expected, log              # every frame, in order, stamps and encodings as recorded
    assert rep['encodings'] == {'rgb8': 24}
    # stamps are 1/24 s apart from 0 (video_to_bag's clock), so real-time playback takes ~1 s
    assert expected[1]['nanosec'] - expected[0]['nanosec'] == round(1e9 / 24)
    assert 0.8 < rep['frames'][-1]['recv_s'] - rep['frames'][0]['recv_s'] < 3.0
    # both processes ran in the /dexman namespace and the launch ended with the probe
    assert '[bag_player' in log and '[frame_probe' in log


def test_shared_clip_through_mp4_bag_topics(shared_videos, tmp_path):
    """A real input clip of the paper: MP4 -> rosbag2 -> /camera/image_raw, lossless at rate 0."""
    clip = min(shared_videos, key=lambda p: p.stat().st_size)
    bag = video_to_bag(clip, tmp_path / 'bag', '--hfov-deg', '60', '--max-frames', '60')
    report = tmp_path / 'frames.json'
    rc, log = launch('bag_playback.launch.xml', bag=bag, report=report, rate='0',
                     probe_reliability='reliable')
    assert rc == 0, log
    rep, got = received(report)
    expected = recorded_frames(bag)
    assert len(expected) == 60 and got == expected, log
    cap = cv2.VideoCapture(str(clip))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    cap.release()
    assert (got[0]['width'], got[0]['height']) == (w, h)


def test_launch_with_a_corrupt_bag_fails_cleanly(tmp_path):
    bad = tmp_path / 'bad_bag'
    bad.mkdir()
    (bad / 'metadata.yaml').write_text('rosbag2_bagfile_information: {version: 9, storage_identifier: mcap\n')
    (bad / 'bad_bag_0.mcap').write_bytes(b'\x89MCAP0\r\n' + os.urandom(200))
    rc, log = launch('bag_playback.launch.xml', timeout=60, bag=bad, report=tmp_path / 'r.json')
    assert rc != 0
    assert 'Traceback' not in log
    assert 'bag' in log.lower() and ('error' in log.lower())


def test_missing_launch_argument_is_a_clear_error():
    rc, log = launch('dexman.launch.xml', timeout=30)
    assert rc == 2
    assert "missing required launch argument 'bag'" in log and 'Traceback' not in log


def test_launch_files_are_installed_in_the_bringup_share():
    """`ros2 launch dexman_bringup dexman.launch.xml` resolves like the file path does, with the
    parameter files found beside it."""
    p = subprocess.run([ros2(), 'launch', 'dexman_bringup', 'dexman.launch.xml', 'bag:=/tmp/some_bag', '--print'],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    # retarget node + the perception graph (player, 7 stages, assembler)
    assert 'share/dexman_bringup/launch/dexman.launch.xml: 14 process(es)' in p.stdout
    assert 'share/dexman_bringup/launch/../config/bag_player.yaml' in p.stdout
    assert '-p bag_path:=/tmp/some_bag' in p.stdout
