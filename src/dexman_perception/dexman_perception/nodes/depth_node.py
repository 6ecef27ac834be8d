"""depth_node: per-frame depth in metres for the perception graph (paper Sec. 3.2, B.1).

    ros2 run dexman_perception depth_node                       # backend:=topic (the bag's depth)
    ros2 run dexman_perception depth_node --ros-args -p backend:=vggt \\
        -p "backend_options:=['checkpoint=/data/vggt/model.pt','device=cuda']"

Output, one per image with the image's header (stamp, camera_optical), also when invalid:
  /dexman/depth/image   sensor_msgs/Image 32FC1, metres, NaN = unknown (an all-NaN image marks an
                        invalid frame)

Backends (the `backend` parameter):
  topic (embedded default)  the recording's own metric depth, `depth_topic`
        (/camera/depth/image_raw: 32FC1/64FC1 metres or 16UC1/mono16 millimetres, REP 118),
        converted to 32FC1 metres, NaN where 0, negative or not finite; joined to the image by
        exact stamp and checked to have the image's size. A bag without depth (an RGB-only video)
        STOPS the stage with a message naming what metric depth needs (backend:=vggt): decided
        once `no_depth_after_frames` images arrived without a single depth image, or at the end
        of a shorter bag. Downstream stages then go on without depth.
  vggt  VGGT (core.backends.vggt_adapter) on overlapping chunks of the whole video
        (`chunk_size`, `chunk_overlap`), aligned chunk to chunk by core.depth_alignment (B.1; one
        whole-image entity, no masks; config_file [depth_alignment], whose chunk_size and
        chunk_overlap the parameters of that name override when set). Needs the vggt package, a checkpoint and a GPU: when the
        adapter cannot be created the stage STOPS with the adapter's message. Batch: frames are
        buffered (RGB, H x W x 3 bytes each) and every output is published at the end of the bag.
        NOT metric yet: the output is in VGGT's relative units (the hand-based metric scale, B.2,
        core.hand_metric_scale, is a follow-up); the StageStatus message says so.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sensor_msgs.msg import Image

from ..core.depth_alignment import DepthAlignmentConfig, align_depth_chunks
from ..core.stages import StageFailure
from . import config_params
from .hands_node import IMAGE_TOPIC
from .perception_msgs import depth_msg, depth_of, header, rgb_of
from dexman_common.ros.node_util import ParamError, declare
from .stage_node import Input, StageNode, run_stage

BAG_DEPTH_TOPIC = '/camera/depth/image_raw'
DEPTH_TOPIC = '/dexman/depth/image'
BACKENDS = ['topic', 'vggt']
DEPTH_ENCODINGS = ('32FC1', '64FC1', '16UC1', 'MONO16')
DEFAULT_FRAME = 'camera_optical'


# ------------------------------------------------------------------------------ pure helpers
def metric_depth(msg, shape: tuple[int, int]) -> np.ndarray:
    """A recorded depth image -> float32 (H, W) metres, NaN unknown; StageFailure when its
    encoding is not a depth encoding or its size differs from the colour image's `shape`."""
    enc = str(msg.encoding)
    if enc.upper() not in DEPTH_ENCODINGS:
        raise StageFailure(f'depth encoding {enc!r} is not a metric depth encoding '
                           f'(32FC1/64FC1 metres, 16UC1/mono16 millimetres)')
    try:
        d = depth_of(msg)
    except ValueError as e:
        raise StageFailure(f'cannot read the depth image: {e}') from None
    if d.shape != tuple(shape):
        raise StageFailure(f'depth is {d.shape[1]}x{d.shape[0]}, the colour image '
                           f'{shape[1]}x{shape[0]}: depth must be registered to the colour image')
    return d


def relative_depth_video(estimator, frames: Sequence[np.ndarray], chunk_size: int,
                         overlap: int, masks=None, config: DepthAlignmentConfig | None = None) -> list[np.ndarray]:
    """Relative depth of every frame: `estimator.predict` (one chunk of frames at a time, e.g.
    VggtDepth) on overlapping chunks, aligned to the first chunk (B.1, `config`). masks: frame
    index -> {entity: bool mask}; none: one affine map per chunk for the whole image."""
    from ..core.backends.vggt_adapter import chunk_ranges
    chunks = []
    for idx in chunk_ranges(len(frames), chunk_size, overlap):
        d = np.stack([np.asarray(x, np.float32) for x in estimator.predict([frames[i] for i in idx])])
        chunks.append((idx, d))
    if not chunks:
        return []
    res = align_depth_chunks(chunks, masks or {}, config=config)
    return [res.depth(i).astype(np.float32) for i in range(len(frames))]


def no_depth_message(depth_topic: str, n_images: int) -> str:
    return (f'no depth on {depth_topic}: {n_images} image(s) arrived without any depth image, so '
            f'this is an RGB-only video (or the depth topic is not played). Metric depth needs '
            f"backend:=vggt (GPU, VGGT checkpoint: backend_options:=['checkpoint=/path/model.pt']); "
            f'the stages downstream go on without depth')


# ------------------------------------------------------------------------------------- node
class DepthNode(StageNode):

    def __init__(self) -> None:
        super().__init__('depth_node', 'depth', backend_choices=BACKENDS)
        self.needs_camera_info = False          # neither backend uses the intrinsics
        self.image_topic = declare(self, 'image_topic', IMAGE_TOPIC, 'colour image topic (the frames)',
                                   str, read_only=True)
        self.depth_topic = declare(self, 'depth_topic', BAG_DEPTH_TOPIC,
                                   "backend topic: the recording's metric depth (32FC1 m or 16UC1 mm)",
                                   str, read_only=True)
        self.no_depth_after_frames = declare(
            self, 'no_depth_after_frames', 5,
            'backend topic: STOP (RGB-only video) once this many images arrived without any depth '
            'image (<= 0: decide only at the end of the bag)', int, read_only=True)
        cfg = config_params.override(self, self.load_config(DepthAlignmentConfig), 'chunk_size',
                                     'backend vggt: frames per VGGT chunk; overrides config_file '
                                     '[depth_alignment]')
        cfg = config_params.override(self, cfg, 'chunk_overlap',
                                     'backend vggt: frames shared by consecutive chunks (B.1); overrides '
                                     'config_file [depth_alignment]')
        self.alignment_config = cfg
        self.chunk_size, self.chunk_overlap = cfg.chunk_size, cfg.chunk_overlap
        if self.chunk_size < 2 or not 1 <= self.chunk_overlap < self.chunk_size:
            raise ParamError(f'need chunk_size >= 2 and 1 <= chunk_overlap < chunk_size, got '
                             f'{self.chunk_size}, {self.chunk_overlap}')
        self.pub = self.create_publisher(Image, DEPTH_TOPIC, self.output_qos())
        self.backend = None
        self._buffer: list[tuple] = []          # vggt: (header, rgb or None, (h, w))
        inputs = [Input('image', self.image_topic, Image, 'bag')]
        if self.backend_name == 'topic':
            if self.backend_options:
                self.get_logger().warning(f'backend topic takes no backend_options; ignoring '
                                          f'{self.backend_options}')
            inputs.append(Input('depth', self.depth_topic, Image, 'bag'))
            what = f'depth from {self.depth_topic}'
        else:
            self.backend = self.create_backend('depth', 'vggt')
            self.record_config(self.alignment_config)
            what = (f'VGGT relative depth, chunks of {self.chunk_size} sharing '
                    f'{self.chunk_overlap} frames, at the end of the bag')
        self.setup_inputs(inputs, primary='image')
        if not self.stopped:
            self.get_logger().info(f'depth: backend {self.backend_name!r}: {what} -> {DEPTH_TOPIC}')

    def close(self) -> None:
        self.backend = None
        self._buffer.clear()

    # ------------------------------------------------------------------ end of bag, RGB-only
    def _input_cb(self, name):
        cb = super()._input_cb(name)
        if self.backend_name != 'topic' or name != 'image':
            return cb

        def on_image(msg) -> None:
            # before the frame enters the join: once enough images came without any depth image
            # (the player publishes a frame's depth right after its image), stop at once
            n = self.counts.get('image', 0) + 1
            if (not self.stopped and self.counts.get('depth', 0) == 0
                    and 0 < self.no_depth_after_frames <= n):
                self.stop(no_depth_message(self.depth_topic, n))
            cb(msg)
        return on_image

    # ------------------------------------------------------------------------------- frames
    def process(self, stamp: int, inputs: dict, missing: list[str]) -> bool:
        img = inputs['image']
        shape = (int(img.height), int(img.width))
        if self.backend_name == 'vggt':
            try:
                rgb = rgb_of(img)
            except ValueError as e:
                raise StageFailure(f'cannot read the image on {self.image_topic}: {e}') from None
            self._buffer.append((img.header, rgb, rgb.shape[:2]))
            return True
        if 'depth' in missing:
            raise StageFailure(f'no depth image with this stamp on {self.depth_topic}')
        d = metric_depth(inputs['depth'], shape)
        self.pub.publish(depth_msg(d, img.header))
        if not np.isfinite(d).any():
            self.warn_frame('the depth image has no valid pixel')
            return False
        return True

    def publish_invalid(self, stamp: int, inputs: dict, reason: str) -> None:
        img = inputs.get('image')
        hdr = img.header if img is not None else header(stamp, DEFAULT_FRAME)
        shape = (int(img.height), int(img.width)) if img is not None else (0, 0)
        if self.backend_name == 'vggt':
            self._buffer.append((hdr, None, shape))      # published in order at the end
            return
        self.pub.publish(depth_msg(np.full(shape, np.nan, np.float32), hdr))

    def finish(self) -> None:
        if self.backend_name == 'topic':
            if self.counts.get('depth', 0) == 0 and self.counts.get('image', 0) > 0:
                raise StageFailure(no_depth_message(self.depth_topic, self.counts['image']))
            return
        self._finish_vggt()

    def _finish_vggt(self) -> None:
        buf, self._buffer = self._buffer, []
        good = [i for i, b in enumerate(buf) if b[1] is not None]
        sizes = {buf[i][2] for i in good}
        if len(sizes) > 1:
            raise StageFailure(f'vggt: the frames have different sizes {sorted(sizes)}')
        depths: dict[int, np.ndarray] = {}
        if good:
            self.get_logger().info(f'depth: running VGGT on {len(good)} frame(s)')
            try:
                out = relative_depth_video(self.backend, [buf[i][1] for i in good],
                                           self.chunk_size, self.chunk_overlap, config=self.alignment_config)
            except StageFailure:
                raise
            except Exception as e:  # noqa: BLE001 - CUDA out of memory, alignment failure, ...
                raise StageFailure(f'vggt failed on the video: {type(e).__name__}: {e}') from None
            depths = dict(zip(good, out))
        for i, (hdr, _, shape) in enumerate(buf):
            d = depths.get(i)
            if d is None or not np.isfinite(d).any():
                self.frames_invalid += int(i in depths)
                d = np.full(shape, np.nan, np.float32)
            self.pub.publish(depth_msg(d, hdr))
        self.message = ('relative depth in VGGT units (chunks aligned, B.1); the metric scale from '
                        'the hand (B.2) is not applied')


def main(args: list[str] | None = None) -> None:
    run_stage(DepthNode, args)


if __name__ == '__main__':
    main()
