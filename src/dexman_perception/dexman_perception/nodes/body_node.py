"""body_node: hips and pelvis per image for scene alignment (paper B.4: 4D-Humans; CPU default:
MediaPipe Pose).

    ros2 run dexman_perception body_node --ros-args -p backend:=mediapipe
    ros2 run dexman_perception body_node --ros-args -p backend:=4dhumans \\
        -p "backend_options:=['checkpoint=/data/hmr2.ckpt','device=cuda']"

Inputs as the hands node (hands_node.CameraStageNode): image_topic (/camera/image_raw, the
frames), camera_info_topic (latest K; frames before any camera_info are invalid), depth_topic
(/dexman/depth/image of the depth stage, optional; use_depth:=false when no depth stage runs).
Output, one per image with the image's header (camera_optical), also when invalid:
  /dexman/body   dexman_msgs/BodyPose (valid=false when no body was found or the frame failed)

MediaPipe Pose keys on the face and upper body: with the head out of the frame (most tabletop
clips) it finds no person, and the frames are published valid=false (counted invalid).
"""
from __future__ import annotations

import numpy as np

from dexman_msgs.msg import BodyPose

from ..core.stages import StageFailure
from .hands_node import CameraStageNode
from .stage_node import run_stage
from .perception_msgs import body_msg

BODY_TOPIC = '/dexman/body'


class BodyNode(CameraStageNode):

    def __init__(self) -> None:
        super().__init__('body_node', 'body')
        self.body_pub = self.create_publisher(BodyPose, BODY_TOPIC, self.output_qos())
        self.start()

    def run_frame(self, stamp, img, rgb, K, depth) -> bool:
        if self.backend is None:
            raise StageFailure(f'no {self.stage} backend')
        est = self.backend.estimate(rgb, K, **self.backend_kwargs('estimate', stamp, depth))
        if est is not None and not all(np.all(np.isfinite(p))
                                       for p in (est.left_hip, est.right_hip, est.pelvis)):
            est = None                  # nothing metric to say about this body
        msg = body_msg(est, img.header)
        self.body_pub.publish(msg)
        return bool(msg.valid)

    def publish_empty(self, stamp, hdr, reason) -> None:
        self.body_pub.publish(BodyPose(header=hdr, valid=False))


def main(args: list[str] | None = None) -> None:
    run_stage(BodyNode, args)


if __name__ == '__main__':
    main()
