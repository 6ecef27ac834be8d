"""hands_node: metric 3D hands per image (paper Sec. 3.2: HaMeR; CPU default: MediaPipe + depth).

    ros2 run dexman_perception hands_node --ros-args -p backend:=mediapipe
    ros2 run dexman_perception hands_node --ros-args -p backend:=hamer \\
        -p "backend_options:=['hamer_root=/opt/hamer','device=cuda']"

Inputs (StageNode, joined by exact stamp):
  image_topic        /camera/image_raw (bag; the frames)
  camera_info_topic  /camera/camera_info (bag; StageNode: the latest one gives K; frames wait
                     for the first one, and are published invalid with that reason when the bag
                     ends without any)
  depth_topic        /dexman/depth/image (the depth stage, optional: when the depth stage STOPS,
                     e.g. on an RGB-only video, or runs a backend whose depth is not metric
                     (vggt, until the hand scale B.2 is applied), the hands go on without depth;
                     use_depth:=false when no depth stage runs at all, else frames wait for it)
Outputs, one per image with the image's header (stamp, camera_optical), also when invalid:
  /dexman/hands          dexman_msgs/Hands3D (at most one LEFT and one RIGHT hand; empty: none)
  /dexman/markers/hands  visualization_msgs/MarkerArray (skeleton + keypoints per hand)

Metric: with depth the MediaPipe landmarks are lifted with the depth image (sensor accuracy);
without it, by PnP against MediaPipe's metric world landmarks (its hand-size prior; distance
errors of tens of centimetres at table range). The StageStatus message says which is in use.
A frame without any hand is valid output (an empty Hands3D) but counted as invalid.

This module also holds `CameraStageNode`, the image + camera_info + optional depth shell that
the body node shares (main loop: stage_node.run_stage).
"""
from __future__ import annotations

import inspect

import numpy as np
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from dexman_msgs.msg import Hands3D

from ..core.stages import StageFailure
from . import markers
from .perception_msgs import depth_of, header, hands_msg, rgb_of
from dexman_common.ros.node_util import declare
from .stage_node import Input, StageNode, run_stage

IMAGE_TOPIC = '/camera/image_raw'
DEPTH_TOPIC = '/dexman/depth/image'
HANDS_TOPIC = '/dexman/hands'
HAND_MARKERS_TOPIC = '/dexman/markers/hands'
DEFAULT_FRAME = 'camera_optical'
# depth stage backends whose output is metric (vggt: relative until the hand scale, B.2, lands)
METRIC_DEPTH_BACKENDS = ('topic',)


class CameraStageNode(StageNode):
    """A stage on the colour image with the latest camera intrinsics and, optionally, the depth
    stage's metric depth. Subclasses implement `run_frame(stamp, image_msg, rgb, K, depth)` and
    `publish_empty(stamp, hdr, reason)`."""

    def __init__(self, node_name: str, stage: str, **kwargs) -> None:
        super().__init__(node_name, stage, **kwargs)
        self.image_topic = declare(self, 'image_topic', IMAGE_TOPIC, 'colour image topic (the frames)',
                                   str, read_only=True)
        self.use_depth = declare(self, 'use_depth', True,
                                 'join the depth stage output (optional input: dropped when the '
                                 'depth stage stops); false when no depth stage runs', bool,
                                 read_only=True)
        self.depth_topic = declare(self, 'depth_topic', DEPTH_TOPIC,
                                   'metric depth (32FC1 m) of the depth stage', str, read_only=True)
        self.frames_with_depth = 0
        self._params_cache: dict[str, set[str]] = {}
        self._no_depth_reason = 'the depth stage stopped'
        self.backend = None

    def start(self) -> None:
        """Create the backend (or STOP with its reason) and subscribe to the inputs."""
        self.backend = self.create_backend()
        inputs = [Input('image', self.image_topic, Image, 'bag')]
        if self.use_depth:
            inputs.append(Input('depth', self.depth_topic, Image, 'depth', required=False))
        self.setup_inputs(inputs, primary='image')
        if self.stopped:
            return
        depth = f', depth from {self.depth_topic}' if self.use_depth else ', no depth (use_depth false)'
        self.get_logger().info(f'{self.stage}: backend {self.backend_name!r} on {self.image_topic}'
                               f'{depth}')

    def close(self) -> None:
        closer = getattr(self.backend, 'close', None)
        self.backend = None
        if callable(closer):
            try:
                closer()
            except Exception as e:  # noqa: BLE001
                self.get_logger().warning(f'closing the {self.stage} backend: {e}')

    # ------------------------------------------------------------------------------ inputs
    def _on_stage_status(self, msg) -> None:
        super()._on_stage_status(msg)
        # a depth stage whose output is not metric (VGGT before the hand scale, B.2, is applied)
        # would make the lifted positions wrong: go on without it, as when it stops
        if (msg.stage == 'depth' and msg.backend not in METRIC_DEPTH_BACKENDS and self.use_depth
                and self.sync is not None and 'depth' not in self.sync.absent and not self.stopped):
            self.get_logger().warning(f'the depth stage runs backend {msg.backend!r}, whose depth is '
                                      f'not metric yet; going on without {self.depth_topic}')
            self._no_depth_reason = f'the depth backend {msg.backend!r} is not metric'
            self._run(self.sync.set_absent('depth'))
            self._check_finished()

    def frame_K(self, h: int, w: int) -> np.ndarray:
        """K of the latest CameraInfo (StageNode; StageFailure before the first one), checked
        against the image size."""
        K = self.K()
        info = self.camera_info
        if info.width and info.height and (int(info.height), int(info.width)) != (h, w):
            raise StageFailure(f'the camera_info is for {info.width}x{info.height} images, the '
                               f'image is {w}x{h}')
        return K

    def frame_depth(self, inputs: dict, h: int, w: int) -> np.ndarray | None:
        """The depth of this frame in metres, or None (no depth stage, stopped, all unknown)."""
        msg = inputs.get('depth')
        if msg is None:
            return None
        try:
            d = depth_of(msg)
        except ValueError as e:
            raise StageFailure(f'cannot read the depth on {self.depth_topic}: {e}') from None
        if d.shape != (h, w):
            raise StageFailure(f'depth {d.shape[1]}x{d.shape[0]} on {self.depth_topic} does not '
                               f'match the image {w}x{h}')
        if not np.isfinite(d).any():
            return None                 # the depth stage marked this frame invalid
        return d

    def process(self, stamp: int, inputs: dict, missing: list[str]) -> bool:
        img = inputs['image']
        try:
            rgb = rgb_of(img)
        except ValueError as e:         # ImageEncodingError: unknown encoding, bad sizes
            raise StageFailure(f'cannot read the image on {self.image_topic}: {e}') from None
        h, w = rgb.shape[:2]
        K = self.frame_K(h, w)
        depth = self.frame_depth(inputs, h, w)
        if depth is not None:
            self.frames_with_depth += 1
        elif self.use_depth and 'depth' in self.sync.absent:
            self.message = (f'{self._no_depth_reason}: {self.stage} without depth (RGB-only, '
                            f'metric through the backend\'s size prior)')
        return self.run_frame(stamp, img, rgb, K, depth)

    def publish_invalid(self, stamp: int, inputs: dict, reason: str) -> None:
        img = inputs.get('image')
        hdr = img.header if img is not None else header(stamp, DEFAULT_FRAME)
        self.publish_empty(stamp, hdr, reason)

    def backend_kwargs(self, method: str, stamp: int, depth) -> dict:
        """depth= and timestamp= for backends whose `method` takes them (MediaPipe VIDEO mode
        needs increasing timestamps: the image stamps)."""
        params = self._params_cache.get(method)
        if params is None:
            try:
                params = set(inspect.signature(getattr(self.backend, method)).parameters)
            except (TypeError, ValueError):
                params = set()
            self._params_cache[method] = params
        kw = {}
        if 'depth' in params:
            kw['depth'] = depth
        if 'timestamp' in params and str(getattr(self.backend, 'running_mode', '')).upper() == 'VIDEO':
            kw['timestamp'] = stamp * 1e-9
        return kw

    def finish(self) -> None:
        self.get_logger().info(f'{self.stage}: {self.frames_with_depth} of {self.frames_out} '
                               f'frame(s) used depth')

    # ------------------------------------------------------------------------------ hooks
    def run_frame(self, stamp: int, img, rgb, K, depth) -> bool:
        raise NotImplementedError

    def publish_empty(self, stamp: int, hdr, reason: str) -> None:
        raise NotImplementedError


class HandsNode(CameraStageNode):

    def __init__(self) -> None:
        super().__init__('hands_node', 'hands')
        self.publish_markers = declare(self, 'publish_markers', True,
                                       f'publish RViz markers on {HAND_MARKERS_TOPIC}', bool,
                                       read_only=True)
        self.hands_pub = self.create_publisher(Hands3D, HANDS_TOPIC, self.output_qos())
        self.markers_pub = (self.create_publisher(MarkerArray, HAND_MARKERS_TOPIC, self.output_qos())
                            if self.publish_markers else None)
        self.start()

    def run_frame(self, stamp, img, rgb, K, depth) -> bool:
        if self.backend is None:
            raise StageFailure(f'no {self.stage} backend')
        found = self.backend.estimate(rgb, K, **self.backend_kwargs('estimate', stamp, depth))
        best = {}
        for h in found:                 # Hands3D: at most one hand per side
            if h.handedness not in best or h.confidence > best[h.handedness].confidence:
                best[h.handedness] = h
        msg = hands_msg([best[s] for s in sorted(best)], img.header)
        self._publish(msg)
        return bool(msg.hands)

    def publish_empty(self, stamp, hdr, reason) -> None:
        self._publish(Hands3D(header=hdr))

    def _publish(self, msg: Hands3D) -> None:
        self.hands_pub.publish(msg)
        if self.markers_pub is not None:
            self.markers_pub.publish(markers.hand_markers(msg))


def main(args: list[str] | None = None) -> None:
    run_stage(HandsNode, args)


if __name__ == '__main__':
    main()
