"""video_to_bag: frames, stamps and intrinsics of the bag made from a video; errors exit 2."""
import math
import os
import shutil
import subprocess
import time

import cv2
import numpy as np
import pytest

from dexman_common.bag_reader import BagReader
from dexman_common.image_codec import decode_compressed_rgb8, image_to_numpy
from dexman_perception.core.video_to_bag import (VideoError, convert_video, frame_stamps_ns,
                                                  intrinsics_from_hfov)
from dexman_perception.video_to_bag_cli import main as cli_main

SYN_W, SYN_H, SYN_FPS, SYN_N = 64, 48, 10.0, 12


def _syn_colour(i):
    """RGB of frame i of the synthetic clip (big uniform areas survive mp4v compression)."""
    return (20 * i + 10, 100, 200)


@pytest.fixture(scope='module')
def synthetic_mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp('video') / 'synthetic.mp4'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), SYN_FPS, (SYN_W, SYN_H))
    assert writer.isOpened(), 'OpenCV cannot write mp4v here'
    for i in range(SYN_N):
        rgb = np.zeros((SYN_H, SYN_W, 3), np.uint8)
        rgb[:] = _syn_colour(i)
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _decoded_frames(path):
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return frames, fps


def _read_bag(path, image_topic='/camera/image_raw'):
    with BagReader(path) as b:
        topics = {n: (t.msgtype, t.count) for n, t in b.topics.items()}
        imgs = [(m, b.deserialize(m)) for m in b.messages([image_topic])]
        infos = [(m, b.deserialize(m)) for m in b.messages(['/camera/camera_info'])]
        return b.storage_id, topics, imgs, infos


def _check_intrinsics(info, w, h, hfov_deg, fy_scale=1.0):
    fx = (w / 2) / math.tan(math.radians(hfov_deg) / 2)
    k = np.asarray(info.k).reshape(3, 3)
    np.testing.assert_allclose(k, [[fx, 0, (w - 1) / 2], [0, fx * fy_scale, (h - 1) / 2],
                                   [0, 0, 1]], rtol=1e-12)
    np.testing.assert_allclose(np.asarray(info.p).reshape(3, 4)[:, :3], k, rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(info.r).reshape(3, 3), np.eye(3))
    assert info.distortion_model == 'plumb_bob'
    assert list(info.d) == [0.0] * 5
    assert (info.width, info.height) == (w, h)


def test_intrinsics_formula_and_pixel_centres():
    k = intrinsics_from_hfov(640, 480, 90.0)
    assert k.fx == pytest.approx(320.0) and k.fy == pytest.approx(320.0)
    assert (k.cx, k.cy) == (319.5, 239.5)       # centres of pixels 0..W-1 average to (W-1)/2
    # the left edge of pixel 0 (u = -0.5) and the right edge of pixel W-1 (u = W-0.5) span hfov
    left = math.degrees(math.atan2(-0.5 - k.cx, k.fx))
    right = math.degrees(math.atan2(640 - 0.5 - k.cx, k.fx))
    assert right - left == pytest.approx(90.0)
    k60 = intrinsics_from_hfov(848, 480, 60.0)
    assert k60.fx == pytest.approx(424 / math.tan(math.radians(30)))
    squeezed = intrinsics_from_hfov(32, 32, 60.0, source_size=(64, 48))   # x/2, y/1.5
    assert squeezed.fy == pytest.approx(squeezed.fx * (32 / 48) / (32 / 64))
    with pytest.raises(VideoError, match='field of view'):
        intrinsics_from_hfov(10, 10, 180.0)


def test_frame_stamps_exact():
    assert frame_stamps_ns(0, 30.0, 4) == [0, 33_333_333, 66_666_667, 100_000_000]
    ntsc = frame_stamps_ns(5, 30000 / 1001, 1002)
    assert ntsc[1001] - ntsc[0] == 1001 * 1001 * 1_000_000 // 30    # 1001 frames = 33.4 s


def test_synthetic_clip_to_mcap(synthetic_mp4, tmp_path, capsys):
    frames, fps = _decoded_frames(synthetic_mp4)
    assert len(frames) == SYN_N and fps == SYN_FPS
    out = tmp_path / 'syn_bag'
    assert cli_main([str(synthetic_mp4), str(out), '--hfov-deg', '70', '-q']) == 0
    assert f'wrote {SYN_N} frames (64x48, 10 fps)' in capsys.readouterr().out
    storage, topics, imgs, infos = _read_bag(out)
    assert storage == 'mcap'
    assert topics == {'/camera/image_raw': ('sensor_msgs/msg/Image', SYN_N),
                      '/camera/camera_info': ('sensor_msgs/msg/CameraInfo', SYN_N)}
    from mcap.reader import make_reader
    with open(out / 'syn_bag.mcap', 'rb') as f:
        chunks = make_reader(f).get_summary().chunk_indexes
    assert chunks and {c.compression for c in chunks} == {'zstd'}
    assert sum(c.compressed_size for c in chunks) < sum(c.uncompressed_size for c in chunks) / 5
    for i, ((m, img), (mi, info)) in enumerate(zip(imgs, infos)):
        stamp = round(i * 1e9 / SYN_FPS)
        assert m.recorded_ns == stamp and m.header_stamp_ns == stamp
        assert mi.header_stamp_ns == stamp
        assert img.header.frame_id == 'camera_optical' == info.header.frame_id
        assert (img.encoding, img.width, img.height, img.step) == ('rgb8', 64, 48, 192)
        rgb = image_to_numpy(img)
        np.testing.assert_array_equal(rgb, cv2.cvtColor(frames[i], cv2.COLOR_BGR2RGB))
        assert np.abs(rgb[24, 32].astype(int) - _syn_colour(i)).max() <= 12   # RGB, not BGR
        _check_intrinsics(info, 64, 48, 70.0)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.syn_bag')]   # no temp left


def test_options_sqlite3_compressed_resize_start_max(synthetic_mp4, tmp_path):
    out = tmp_path / 'opts'
    rc = cli_main([str(synthetic_mp4), str(out), '--storage', 'sqlite3', '--compressed',
                   '--resize', '32x32', '--start-time', '1700000000.123456789',
                   '--max-frames', '5', '-q'])
    assert rc == 0
    storage, topics, imgs, infos = _read_bag(out, '/camera/image_raw/compressed')
    assert storage == 'sqlite3'
    assert topics == {'/camera/image_raw/compressed': ('sensor_msgs/msg/CompressedImage', 5),
                      '/camera/camera_info': ('sensor_msgs/msg/CameraInfo', 5)}
    start = 1_700_000_000_123_456_789
    assert [m.header_stamp_ns for m, _ in imgs] == [start + i * 100_000_000 for i in range(5)]
    for i, (_, img) in enumerate(imgs):
        assert img.format == 'rgb8; jpeg compressed bgr8'
        rgb = decode_compressed_rgb8(img.data, img.format)
        assert rgb.shape == (32, 32, 3)
        assert np.abs(rgb[16, 16].astype(int) - _syn_colour(i)).max() <= 16
    _check_intrinsics(infos[0][1], 32, 32, 60.0, fy_scale=(32 / 48) / (32 / 64))


def test_output_exists_and_overwrite(synthetic_mp4, tmp_path, capsys):
    out = tmp_path / 'twice'
    assert cli_main([str(synthetic_mp4), str(out), '--max-frames', '2', '-q']) == 0
    assert cli_main([str(synthetic_mp4), str(out), '--max-frames', '3', '-q']) == 2
    assert 'exists already' in capsys.readouterr().err
    assert _read_bag(out)[1]['/camera/image_raw'][1] == 2           # untouched
    assert cli_main([str(synthetic_mp4), str(out), '--max-frames', '3', '-q',
                     '--overwrite']) == 0
    assert _read_bag(out)[1]['/camera/image_raw'][1] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ['twice']


def test_undecodable_and_missing_video_exit_2(tmp_path, capsys):
    junk = tmp_path / 'junk.mp4'
    junk.write_bytes(os.urandom(5000))
    assert cli_main([str(junk), str(tmp_path / 'out1'), '-q']) == 2
    err = capsys.readouterr().err
    assert err.startswith('video_to_bag: error: cannot decode video') and 'junk.mp4' in err
    assert 'Traceback' not in err
    assert cli_main([str(tmp_path / 'missing.mp4'), str(tmp_path / 'out2'), '-q']) == 2
    assert 'video not found' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['junk.mp4']   # nothing half-written
    with pytest.raises(SystemExit) as e:
        cli_main([str(junk), str(tmp_path / 'o'), '--resize', '64by48'])
    assert e.value.code == 2


def test_installed_console_script_exit_2(tmp_path):
    exe = shutil.which('ros2')
    if exe is None:
        pytest.skip('ros2 (scripts/ros2cli) not on PATH: source env.sh')
    junk = tmp_path / 'junk.mp4'
    junk.write_bytes(b'\0' * 1000)
    r = subprocess.run([exe, 'run', 'dexman_perception', 'video_to_bag', str(junk),
                        str(tmp_path / 'out')], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert 'video_to_bag: error: cannot decode video' in r.stderr
    assert 'Traceback' not in r.stderr


def test_shared_clip(shared_videos, tmp_path):
    """One real clip: every frame OpenCV decodes is in the bag, 1/fps apart, with K from hfov."""
    def reported(p):
        cap = cv2.VideoCapture(str(p))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
        return n
    clip = min(shared_videos, key=reported)          # the shortest clip keeps the test quick
    frames, fps = _decoded_frames(clip)
    h, w = frames[0].shape[:2]
    out = tmp_path / 'clip_bag'
    t0 = time.monotonic()
    res = convert_video(clip, out, hfov_deg=60.0)
    seconds = time.monotonic() - t0
    assert res.frames == len(frames) == reported(clip)
    storage, topics, imgs, infos = _read_bag(out)
    assert topics['/camera/image_raw'] == ('sensor_msgs/msg/Image', len(frames))
    assert topics['/camera/camera_info'] == ('sensor_msgs/msg/CameraInfo', len(frames))
    stamps = np.array([m.header_stamp_ns for m, _ in imgs], dtype=np.int64)
    assert stamps[0] == 0
    np.testing.assert_allclose(np.diff(stamps), 1e9 / fps, atol=1.0)
    assert [m.recorded_ns for m, _ in imgs] == stamps.tolist()
    for idx in (0, len(frames) // 2, len(frames) - 1):
        np.testing.assert_array_equal(image_to_numpy(imgs[idx][1]),
                                      cv2.cvtColor(frames[idx], cv2.COLOR_BGR2RGB))
    _check_intrinsics(infos[0][1], w, h, 60.0)
    raw = len(frames) * w * h * 3
    print(f'\n{clip.name}: {len(frames)} frames {w}x{h} @ {fps:g} fps -> {res.size_bytes / 1e6:.1f}'
          f' MB mcap+zstd ({100 * res.size_bytes / raw:.0f}% of raw) in {seconds:.2f} s')
