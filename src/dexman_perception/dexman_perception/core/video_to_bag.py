"""Turn a video file (MP4 or anything OpenCV decodes) into a rosbag2 recording, without ROS.

Topics written (frame_id ``camera_optical`` by default, one message of each per video frame,
header stamp = recorded time = ``start + frame_index / fps``):

* ``/camera/image_raw``             sensor_msgs/msg/Image, encoding rgb8 (default), or
  ``/camera/image_raw/compressed``  sensor_msgs/msg/CompressedImage, jpeg (``compressed=True``);
* ``/camera/camera_info``           sensor_msgs/msg/CameraInfo from an assumed horizontal FOV.

Intrinsics (pinhole, plumb_bob with zero distortion). Pixel-centre convention of OpenCV and
ROS: integer pixel coordinates are pixel *centres*, the image spans [-0.5, W - 0.5] x
[-0.5, H - 0.5], so the principal point at the image centre is ``cx = (W - 1) / 2``,
``cy = (H - 1) / 2``, and the horizontal field of view covers the full width W::

    fx = (W / 2) / tan(hfov / 2),   fy = fx  (square pixels)

When ``resize`` changes the aspect ratio of the source, pixels stop being square and fy is
scaled by the vertical/horizontal resize ratio: ``fy = fx * (H / H_src) / (W / W_src)``.

The bag is written into a temporary directory beside the destination and renamed into place
when complete, so a reader never sees a half-written bag.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from dexman_common.bag_reader import make_typestore
from dexman_common.image_codec import encode_compressed
from dexman_common.stamps import ns_to_sec_nanosec

IMAGE_TOPIC = '/camera/image_raw'
COMPRESSED_TOPIC = '/camera/image_raw/compressed'
CAMERA_INFO_TOPIC = '/camera/camera_info'
FRAME_ID = 'camera_optical'


class VideoError(Exception):
    """The video cannot be converted (missing, undecodable, bad options, output exists)."""


@dataclass(frozen=True)
class Intrinsics:
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float

    @property
    def K(self) -> list[float]:          # noqa: N802 - ROS name
        return [self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0]

    @property
    def P(self) -> list[float]:          # noqa: N802 - ROS name
        return [self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0]


def intrinsics_from_hfov(width: int, height: int, hfov_deg: float,
                         source_size: tuple[int, int] | None = None) -> Intrinsics:
    """Pinhole intrinsics of a ``width`` x ``height`` image with horizontal FOV ``hfov_deg``.

    ``source_size`` (W_src, H_src): size before a resize, for the non-square pixel correction.
    """
    if not 0.0 < hfov_deg < 180.0:
        raise VideoError(f'horizontal field of view must be in (0, 180) degrees, got {hfov_deg}')
    if width <= 0 or height <= 0:
        raise VideoError(f'image size must be positive, got {width}x{height}')
    fx = (width / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    fy = fx
    if source_size is not None:
        sx, sy = width / source_size[0], height / source_size[1]
        fy = fx * sy / sx
    return Intrinsics(width, height, fx, fy, (width - 1) / 2.0, (height - 1) / 2.0)


@dataclass
class VideoInfo:
    path: Path
    fps: float
    frame_count: int        # as the container reports it (an estimate for some formats)
    width: int
    height: int


@dataclass
class ConversionResult:
    bag_path: Path
    frames: int
    fps: float
    width: int
    height: int
    source_width: int
    source_height: int
    image_topic: str
    storage: str
    compression: str
    size_bytes: int
    seconds: float
    intrinsics: Intrinsics
    first_stamp_ns: int
    last_stamp_ns: int
    topics: dict[str, str] = field(default_factory=dict)


def _open_video(path: Path) -> cv2.VideoCapture:
    if not path.exists():
        raise VideoError(f'video not found: {path}')
    if not path.is_file():
        raise VideoError(f'not a video file: {path}')
    if not os.access(path, os.R_OK):
        raise VideoError(f'video not readable (permission denied): {path}')
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f'cannot decode video {path}: OpenCV/FFmpeg does not recognise it as a '
                         'video file')
    return cap


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, reported frame count and size of a video."""
    p = Path(path)
    cap = _open_video(p)
    try:
        return VideoInfo(p, float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
                         int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
                         int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
                         int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0))
    finally:
        cap.release()


def _rate(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(100_000)        # 29.97002997 -> 30000/1001


def _stamp_ns(start_ns: int, rate: Fraction, index: int) -> int:
    """``start_ns + round(index / rate)`` in integer nanoseconds (halves round up)."""
    num, den = rate.numerator, rate.denominator
    return start_ns + (2 * index * 1_000_000_000 * den + num) // (2 * num)


def frame_stamps_ns(start_ns: int, fps: float, count: int) -> list[int]:
    """Stamps of the first ``count`` frames: ``start_ns + round(i * 1e9 / fps)``, exact."""
    rate = _rate(fps)
    return [_stamp_ns(start_ns, rate, i) for i in range(count)]


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def convert_video(video: str | os.PathLike, bag: str | os.PathLike, *,
                  hfov_deg: float = 60.0, start_ns: int = 0, fps: float | None = None,
                  max_frames: int | None = None, resize: tuple[int, int] | None = None,
                  compressed: bool = False, jpeg_quality: int = 90, storage: str = 'mcap',
                  compression: str = 'zstd', frame_id: str = FRAME_ID,
                  overwrite: bool = False, progress: bool = False) -> ConversionResult:
    """Write ``video`` as a rosbag2 directory at ``bag`` (see the module doc)."""
    from rosbags.rosbag2 import Writer
    from rosbags.rosbag2.enums import CompressionFormat, CompressionMode, StoragePlugin

    t0 = time.monotonic()
    video, bag = Path(video).expanduser(), Path(bag).expanduser()
    if storage not in ('mcap', 'sqlite3'):
        raise VideoError(f'storage must be mcap or sqlite3, got {storage!r}')
    if compression not in ('zstd', 'none'):
        raise VideoError(f'compression must be zstd or none, got {compression!r}')
    if max_frames is not None and max_frames <= 0:
        raise VideoError(f'max_frames must be positive, got {max_frames}')
    if resize is not None and (resize[0] <= 0 or resize[1] <= 0):
        raise VideoError(f'resize size must be positive, got {resize[0]}x{resize[1]}')
    if not 1 <= jpeg_quality <= 100:
        raise VideoError(f'jpeg quality must be in 1..100, got {jpeg_quality}')
    if bag.exists() and not overwrite:
        raise VideoError(f'output {bag} exists already (pass overwrite to replace it)')
    if bag.exists() and not (bag / 'metadata.yaml').is_file():
        raise VideoError(f'output {bag} exists and is not a rosbag2 directory; not replacing it')

    cap = _open_video(video)
    tmp_root: Path | None = None
    try:
        video_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        use_fps = float(fps) if fps is not None else video_fps
        if not math.isfinite(use_fps) or use_fps <= 0:
            raise VideoError(f'video {video} reports no frame rate ({video_fps}); pass fps')
        reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoError(f'cannot decode video {video}: no frame could be decoded')
        src_h, src_w = frame.shape[:2]
        width, height = resize if resize is not None else (src_w, src_h)
        intr = intrinsics_from_hfov(width, height, hfov_deg,
                                    source_size=(src_w, src_h) if resize else None)
        typestore = make_typestore()
        T = typestore.types
        image_topic = COMPRESSED_TOPIC if compressed else IMAGE_TOPIC
        image_type = 'sensor_msgs/msg/CompressedImage' if compressed else 'sensor_msgs/msg/Image'
        info_msg_template = dict(
            height=height, width=width, distortion_model='plumb_bob',
            d=np.zeros(5, dtype=np.float64), k=np.array(intr.K, dtype=np.float64),
            r=np.eye(3, dtype=np.float64).reshape(9), p=np.array(intr.P, dtype=np.float64),
            binning_x=0, binning_y=0,
            roi=T['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0,
                                                      width=0, do_rectify=False))

        bag.parent.mkdir(parents=True, exist_ok=True)
        tmp_root = Path(tempfile.mkdtemp(prefix=f'.{bag.name}.tmp-', dir=bag.parent))
        tmp_bag = tmp_root / bag.name
        writer = Writer(tmp_bag, version=9,
                        storage_plugin=StoragePlugin.MCAP if storage == 'mcap'
                        else StoragePlugin.SQLITE3)
        if compression == 'zstd':
            writer.set_compression(
                CompressionMode.STORAGE if storage == 'mcap' else CompressionMode.MESSAGE,
                CompressionFormat.ZSTD)
        total = reported if reported > 0 else None
        if max_frames is not None:
            total = min(total, max_frames) if total else max_frames
        rate = _rate(use_fps)
        interp = cv2.INTER_AREA if resize and width * height < src_w * src_h else cv2.INTER_LINEAR
        count, first_ns, stamp_ns = 0, start_ns, start_ns
        from tqdm import tqdm
        bar = tqdm(total=total, unit='frame', file=sys.stderr, disable=not progress,
                   desc=video.name, dynamic_ncols=True)
        writer.open()
        try:
            conn_img = writer.add_connection(image_topic, image_type, typestore=typestore)
            conn_info = writer.add_connection(CAMERA_INFO_TOPIC, 'sensor_msgs/msg/CameraInfo',
                                              typestore=typestore)
            while ok and frame is not None:
                if frame.shape[:2] != (src_h, src_w):
                    raise VideoError(f'frame {count} of {video} is {frame.shape[1]}x'
                                     f'{frame.shape[0]}, the first was {src_w}x{src_h}')
                if resize is not None and (width, height) != (src_w, src_h):
                    frame = cv2.resize(frame, (width, height), interpolation=interp)
                stamp_ns = _stamp_ns(start_ns, rate, count)
                sec, nanosec = ns_to_sec_nanosec(stamp_ns)
                header = T['std_msgs/msg/Header'](
                    stamp=T['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
                    frame_id=frame_id)
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                if compressed:   # format as image_transport writes it: 'rgb8; jpeg compressed bgr8'
                    cf = encode_compressed(rgb, 'rgb8', 'jpeg', jpeg_quality=jpeg_quality)
                    msg = T[image_type](header=header, format=cf.format,
                                        data=np.frombuffer(cf.data, dtype=np.uint8))
                else:
                    msg = T[image_type](header=header, height=height, width=width,
                                        encoding='rgb8', is_bigendian=0, step=width * 3,
                                        data=rgb.reshape(-1))
                writer.write(conn_img, stamp_ns, typestore.serialize_cdr(msg, image_type))
                info = T['sensor_msgs/msg/CameraInfo'](header=header, **info_msg_template)
                writer.write(conn_info, stamp_ns,
                             typestore.serialize_cdr(info, 'sensor_msgs/msg/CameraInfo'))
                count += 1
                bar.update(1)
                if max_frames is not None and count >= max_frames:
                    break
                ok, frame = cap.read()
        except BaseException:
            writer.abort()
            raise
        finally:
            bar.close()
        writer.close()
        if bag.exists():     # overwrite: move the old bag aside, then swap in the new one
            os.rename(bag, tmp_root / (bag.name + '.old'))
        os.rename(tmp_bag, bag)
        return ConversionResult(
            bag_path=bag, frames=count, fps=use_fps, width=width, height=height,
            source_width=src_w, source_height=src_h, image_topic=image_topic, storage=storage,
            compression=compression, size_bytes=_dir_size(bag),
            seconds=time.monotonic() - t0, intrinsics=intr, first_stamp_ns=first_ns,
            last_stamp_ns=stamp_ns,
            topics={image_topic: image_type, CAMERA_INFO_TOPIC: 'sensor_msgs/msg/CameraInfo'})
    finally:
        cap.release()
        if tmp_root is not None:
            shutil.rmtree(tmp_root, ignore_errors=True)
