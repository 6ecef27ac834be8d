"""video_to_bag: convert a video (MP4 or any format OpenCV decodes) into a rosbag2 recording.

    video_to_bag clip.mp4 out_bag [--hfov-deg 60] [--start-time 0] [--max-frames N]
                 [--resize 640x480] [--compressed] [--storage mcap|sqlite3]

Writes /camera/image_raw (sensor_msgs/Image rgb8; or /camera/image_raw/compressed jpeg with
--compressed) and /camera/camera_info, stamped start + i / fps. Exit status: 0 on success,
2 on any error (message on stderr), 130 when interrupted.
"""
from __future__ import annotations

import argparse
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected WIDTHxHEIGHT such as 640x480, got {text!r}')
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f'width and height must be positive, got {text!r}')
    return w, h


def _start_ns(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(
            f'expected seconds (e.g. 0 or 1700000000.25), got {text!r}')
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f'start time must be finite and >= 0, got {text!r}')
    return int((value * 1_000_000_000).to_integral_value())


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}')
    if v <= 0:
        raise argparse.ArgumentTypeError(f'expected a positive integer, got {text!r}')
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected a number, got {text!r}')
    if not v > 0 or v == float('inf'):
        raise argparse.ArgumentTypeError(f'expected a positive number, got {text!r}')
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog='video_to_bag', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('video', type=Path, help='input video file')
    p.add_argument('bag', type=Path, help='output rosbag2 directory (must not exist)')
    p.add_argument('--hfov-deg', type=float, default=60.0,
                   help='assumed horizontal field of view of the camera, degrees')
    p.add_argument('--start-time', type=_start_ns, default=0, metavar='SECONDS',
                   help='stamp of the first frame, seconds (epoch time allowed)')
    p.add_argument('--fps', type=_positive_float, default=None,
                   help='frame rate to stamp with (default: the video\'s own)')
    p.add_argument('--max-frames', type=_positive_int, default=None, help='stop after N frames')
    p.add_argument('--resize', type=_size, default=None, metavar='WxH',
                   help='resize every frame (intrinsics follow the new size)')
    p.add_argument('--compressed', action='store_true',
                   help='write /camera/image_raw/compressed (jpeg) instead of raw rgb8')
    p.add_argument('--jpeg-quality', type=int, default=90, help='with --compressed')
    p.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    p.add_argument('--compression', choices=('zstd', 'none'), default='zstd',
                   help='zstd: compressed mcap chunks (mcap) or messages (sqlite3)')
    p.add_argument('--frame-id', default='camera_optical')
    p.add_argument('--overwrite', action='store_true', help='replace an existing output bag')
    p.add_argument('-q', '--quiet', action='store_true', help='no progress bar')
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # FFmpeg's own log lines ("moov atom not found") would only repeat our error message
    os.environ.setdefault('OPENCV_FFMPEG_LOGLEVEL', '-8')
    from dexman_common.bag_reader import BagError
    from dexman_common.image_codec import ImageEncodingError
    from .core.video_to_bag import VideoError, convert_video
    try:
        res = convert_video(
            args.video, args.bag, hfov_deg=args.hfov_deg, start_ns=args.start_time,
            fps=args.fps, max_frames=args.max_frames, resize=args.resize,
            compressed=args.compressed, jpeg_quality=args.jpeg_quality, storage=args.storage,
            compression=args.compression, frame_id=args.frame_id, overwrite=args.overwrite,
            progress=not args.quiet)
    except KeyboardInterrupt:
        print('video_to_bag: interrupted; no bag written', file=sys.stderr)
        return 130
    except (VideoError, BagError, ImageEncodingError) as err:
        print(f'video_to_bag: error: {err}', file=sys.stderr)
        return 2
    except OSError as err:
        print(f'video_to_bag: error: {err.strerror or err}'
              f'{": " + str(err.filename) if err.filename else ""}', file=sys.stderr)
        return 2
    except Exception as err:  # noqa: BLE001 - e.g. rosbags WriterError: report, never a traceback
        print(f'video_to_bag: error: {type(err).__name__}: {err}', file=sys.stderr)
        return 2
    k = res.intrinsics
    print(f'wrote {res.frames} frames ({res.width}x{res.height}, {res.fps:g} fps) to {res.bag_path}'
          f' [{res.storage}, {res.compression}, {res.size_bytes / 1e6:.1f} MB] in '
          f'{res.seconds:.1f} s; topics {res.image_topic}, /camera/camera_info; '
          f'fx={k.fx:.3f} fy={k.fy:.3f} cx={k.cx:.1f} cy={k.cy:.1f}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
