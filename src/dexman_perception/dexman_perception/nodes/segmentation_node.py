"""segmentation_node: target-object masks through the video (paper 3.1: SAM2 video predictor).

    ros2 run dexman_perception segmentation_node --ros-args -p prompt_boxes:="[120., 80., 200., 170.]"

Inputs (joined by stamp): /camera/image_raw (primary), /dexman/depth/image (depth stage; needed
by the depth_color default), /dexman/hands (hands stage, optional: hand pixels are removed before
the object is looked for). Output: /dexman/masks (dexman_msgs/ObjectMasks, one per image, the
image's header; labels "object_<n>" and "hand_left"/"hand_right"). An invalid frame (no depth,
object vanished) is published with empty masks.

Prompt (first frame): `prompt_boxes`, 4 numbers per object [x0, y0, x1, y1] in pixels, object ids
object_0, object_1, ... in that order, labels from `object_labels`. Without a prompt the stage
stops and says so (an automatic detector, backend owlv2, needs a GPU here).

Tracker feedback (`tracker_feedback`, default on, depth_color): frame k is segmented where the
tracker put the object in frame k-1 (its mesh projected at that pose, with its depth range) instead
of around the previous mask, so the mask neither creeps into a touching arm or sleeve nor stays lost
after an occlusion. Segmentation and tracking then run in lock step; frame k waits for the
tracker's frame k-1 (at most `feedback_timeout_s`, and not at all once the tracking stage stopped).

Backends: depth_color (embedded CPU default, online frame by frame), sam2 (SAM2 video predictor:
runs on the whole clip when the bag has finished; options checkpoint=..., config=..., device=...).
"""
from __future__ import annotations

import collections
import time

import numpy as np

from dexman_msgs.msg import Hands3D, ObjectMasks, ObjectMesh, TrackedObject, TrackedObjectArray
from sensor_msgs.msg import Image

from ..core.hand_occlusion import hand_depth_map
from ..core.object_scale import scale_mesh
from ..core.object_tracker import project_mask
from . import perception_msgs as pm
from dexman_common.ros.node_util import FloatList, ParamError, declare, latched_qos, reliable_keep_all_qos
from .stage_node import Input, StageNode, run_stage

HAND_IDS = ('hand_left', 'hand_right')


class SegmentationNode(StageNode):
    def __init__(self) -> None:
        super().__init__('segmentation_node', 'segmentation')
        boxes = declare(self, 'prompt_boxes', [0.0], 'first-frame boxes, 4 numbers per object '
                        '[x0, y0, x1, y1] (pixels); object ids object_0, object_1, ... in this order; '
                        '[0.0] = none', kind=FloatList)
        labels = declare(self, 'object_labels', [], 'class label per object ("mug"); default: the id')
        if boxes == [0.0]:
            boxes = []
        if len(boxes) % 4:
            raise ParamError(f'prompt_boxes needs 4 numbers per object, got {len(boxes)}')
        self.prompts = {f'object_{i}': np.asarray(boxes[4 * i:4 * i + 4]) for i in range(len(boxes) // 4)}
        for oid, b in self.prompts.items():
            if not (b[2] > b[0] and b[3] > b[1]):
                raise ParamError(f'{oid}: prompt box {b.tolist()} must have x1 > x0 and y1 > y0')
        self.labels = {oid: (labels[i] if i < len(labels) and labels[i] else oid) for i, oid in enumerate(self.prompts)}
        self.feedback = declare(self, 'tracker_feedback', True, 'segment each frame where the tracker '
                                'put the object in the previous frame (lock step with the tracker)')
        self.feedback_timeout_s = declare(self, 'feedback_timeout_s', 30.0, 'longest wait for the '
                                          "tracker's previous frame before segmenting without it, s")
        self.pub = self.create_publisher(ObjectMasks, '/dexman/masks', self.output_qos())
        self.queue: collections.deque = collections.deque()
        self.prev_stamp: int | None = None
        self.poses: dict[int, dict[str, tuple[np.ndarray, float]]] = {}     # stamp -> id -> (T, scale)
        self.meshes: dict[str, object] = {}
        self._scaled: dict[tuple[str, float], object] = {}
        self.waiting_since: float | None = None
        self.seg = None
        self.started = False
        self.clip: list[tuple[int, dict]] = []        # batch backends: the buffered clip
        if not self.prompts:
            self.stop('no object prompt: set prompt_boxes (x0, y0, x1, y1 per object, pixels of the '
                      'first frame); automatic detection (detection backend owlv2) needs a GPU')
            return
        self.seg = self.create_backend()
        if self.seg is None:
            return
        self.online = hasattr(self.seg, 'step')
        self.feedback = self.feedback and self.online
        if self.feedback:
            self.create_subscription(TrackedObjectArray, '/dexman/objects', self._on_objects,
                                     reliable_keep_all_qos())
            self.create_subscription(ObjectMesh, '/dexman/object_meshes', self._on_mesh, latched_qos(32))
        needs_depth = self.backend_name == 'depth_color'
        self.setup_inputs([
            Input('image', '/camera/image_raw', Image),
            Input('depth', '/dexman/depth/image', Image, producer='depth', required=needs_depth),
            Input('hands', '/dexman/hands', Hands3D, producer='hands', required=False)])

    # --------------------------------------------------------------------------------------
    def _hand_maps(self, got, shape, K) -> dict[str, np.ndarray]:
        """{'hand_left' / 'hand_right': hand depth map} of the valid hands of this frame."""
        if 'hands' not in got:
            return {}
        kp, valid, _ = pm.hands_arrays(got['hands'])
        maps = {HAND_IDS[i]: hand_depth_map(kp[i:i + 1], valid[i:i + 1], K, shape) for i in range(2)}
        return {k: v for k, v in maps.items() if v is not None}

    @staticmethod
    def _combined(maps: dict[str, np.ndarray]):
        return None if not maps else np.minimum.reduce(list(maps.values()))

    def process(self, stamp, got, missing) -> bool:
        rgb = pm.rgb_of(got['image'])
        K = self.K()
        depth = pm.depth_of(got['depth']) if 'depth' in got else None
        hands = self._hand_maps(got, rgb.shape[:2], K)
        if not self.online:
            self.clip.append((stamp, dict(header=got['image'].header, rgb=rgb, depth=depth, hands=hands)))
            return True
        error = ''
        if depth is None:
            error = 'no depth image for this frame'
        elif not np.isfinite(depth).any():
            error = 'the depth image has no valid pixel (all NaN / zero)'
        # queued, also when invalid: outputs leave in frame order
        self.queue.append((stamp, got['image'].header, rgb, depth, hands, K, error))
        self._drain()
        return True

    # ------------------------------------------------------------------------ tracker feedback
    def _on_objects(self, msg: TrackedObjectArray) -> None:
        self.poses[pm.stamp_ns(msg.header)] = {
            o.id: (pm.matrix(o.pose), o.scale) for o in msg.objects if o.status != TrackedObject.STATUS_LOST}
        self._drain()

    def _on_mesh(self, msg: ObjectMesh) -> None:
        try:
            self.meshes[msg.id] = pm.mesh_of(msg)
            self._scaled = {k: v for k, v in self._scaled.items() if k[0] != msg.id}
        except ValueError as e:
            self.get_logger().error(f'bad mesh for {msg.id}: {e}')

    def _mesh_at_scale(self, oid: str, scale: float):
        """The object's mesh at the tracker's scale (TrackedObject.scale), scaled once."""
        key = (oid, scale)
        if key not in self._scaled:
            m = self.meshes[oid]
            self._scaled[key] = m if scale == 1.0 else scale_mesh(m, scale)
        return self._scaled[key]

    def _feedback_for(self, stamp_prev: int | None):
        """(ready, priors) for the frame after `stamp_prev`."""
        if not self.feedback or stamp_prev is None or self.stage_finished('tracking'):
            return True, None
        if stamp_prev not in self.poses:
            now = time.monotonic()
            self.waiting_since = self.waiting_since or now
            if now - self.waiting_since < self.feedback_timeout_s:
                return False, None
            self.get_logger().warning(f'no tracker output for frame {stamp_prev} within '
                                      f'{self.feedback_timeout_s:g} s; segmenting without it')
            return True, None
        return True, self.poses.pop(stamp_prev)

    def _drain(self) -> None:
        while self.queue and not self.stopped:
            stamp, hdr, rgb, depth, hands, K, error = self.queue[0]
            ready, poses = self._feedback_for(self.prev_stamp)
            if not ready:
                return
            self.queue.popleft()
            self.waiting_since = None
            if error:
                self.prev_stamp = stamp
                self.frames_invalid += 1
                self.warn_frame(error)
                self._publish(hdr, {oid: None for oid in self.prompts}, hands, rgb.shape[:2])
                continue
            priors = None
            if poses:
                priors = {oid: project_mask(self._mesh_at_scale(oid, sc),
                                            T, K, rgb.shape[:2], with_depth=True)
                          for oid, (T, sc) in poses.items() if oid in self.meshes}
            hand = self._combined(hands)
            if not self.started:
                masks = self.seg.start(rgb, depth, self.prompts, K=K, hand=hand)
                self.started = True
            else:
                masks = self.seg.step(rgb, depth, hand, priors=priors)
            self.prev_stamp = stamp
            self._publish(hdr, masks, hands, rgb.shape[:2])
            if not all(np.any(m) for m in masks.values()):
                self.frames_invalid += 1
                self.warn_frame('an object mask is empty (object vanished or occluded)')

    def busy(self) -> bool:
        if self.queue:
            self._drain()
        return bool(self.queue)

    def publish_invalid(self, stamp, got, reason) -> None:
        img = got['image']
        self._publish(img.header, {oid: None for oid in self.prompts}, {}, (img.height, img.width))

    def _publish(self, hdr, masks, hands, shape) -> None:
        """Hands first, objects last: where they overlap the object label wins."""
        labels = {k: np.isfinite(v) for k, v in hands.items()}
        labels.update(masks)
        self.pub.publish(pm.masks_msg(labels, hdr, shape))

    def finish(self) -> None:
        if self.online or not self.clip:
            return
        frames = [c['rgb'] for _, c in self.clip]
        masks = self.seg.segment_video(frames, self.prompts)
        for (_, c), m in zip(self.clip, masks):
            self._publish(c['header'], m, c['hands'], c['rgb'].shape[:2])
        self.clip.clear()


def main(args: list[str] | None = None) -> None:
    run_stage(SegmentationNode, args)


if __name__ == '__main__':
    main()
