"""scene_node: camera -> world transform of the demonstration (paper 3.3, Appendix B.4), once.

    ros2 run dexman_perception scene_node --ros-args -p robot_pelvis:="[0.0, 0.0, 0.793]"

Stage 'scene' (one method, backend `table_hips`). Inputs, joined by stamp: /dexman/masks
(segmentation, primary), /dexman/depth/image (depth, metric 32FC1), /dexman/body (body),
/dexman/hands (hands, optional); intrinsics from the latest camera_info (StageNode's
`camera_info_topic`, /camera/camera_info).

From the first frames (core.scene_alignment.align_scene):
  * table: the first frame with an object mask, metric depth and K. Pixels in a ring around the
    object masks (dilated by `ring_outer_px`, minus every labelled mask dilated by
    `ring_inner_px`) are lifted with the depth; a RANSAC plane (cpu_segmentation.fit_plane_ransac,
    `plane_threshold`) picks the table among them; its inliers are the table cloud whose SVD gives
    the normal. (The paper finds the table with OWLv2 + SAM2; a ring around the objects is our
    CPU stand-in: the objects stand on it.)
  * hips and pelvis: the per-coordinate median of the first `body_frames` valid BodyPose
    messages (from the first frame on); with fewer valid ones after `max_wait_frames` frames,
    those found are used.
  * entity points (kept in reach by the y shift): the median 3D point of each object mask and the
    valid hand keypoints of the table frame.

Outputs (transient local, published once): /dexman/scene (dexman_msgs/SceneAlignment) and
/tf_static (world -> <camera frame>, tf2_msgs/TFMessage). Status on /dexman/perception/status:
RUNNING until the end of the bag, then DONE; frames_invalid counts the frames examined before the
alignment that had no valid body. STOPPED, with the reason, when: the depth stage stopped (the
alignment needs metric depth), the body or segmentation stage stopped, no valid body within
`max_wait_frames` frames, no table plane within `max_wait_frames` frames, or the bag ended first.
Once the alignment is published, later stops of the producers no longer matter.

Settings: config_file [scene_alignment] (core.scene_alignment.SceneAlignmentConfig: robot pelvis,
reach region, table ring and body settings); the parameters robot_pelvis, reach_shift,
reach_x/_y/_z (the reach box), body_frames, max_wait_frames, plane_threshold, ransac_iterations,
ring_inner_px, ring_outer_px, min_table_points and seed override it when set.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from dexman_msgs.msg import BodyPose, Hands3D, ObjectMasks, SceneAlignment, StageStatus
from geometry_msgs.msg import Vector3
from sensor_msgs.msg import Image
from tf2_msgs.msg import TFMessage

from ..core import scene_alignment as sa
from ..core.backends.cpu_segmentation import backproject, fit_plane_ransac
from ..core.stages import StageFailure
from . import perception_msgs as pm
from .config_params import override
from dexman_common.ros.node_util import declare, latched_qos
from .stage_node import Input, StageNode, run_stage

SCENE_TOPIC = '/dexman/scene'
TF_STATIC_TOPIC = '/tf_static'


# --------------------------------------------------------------------------- ROS-free helpers
def _disk(r: int) -> np.ndarray:
    y, x = np.ogrid[-r:r + 1, -r:r + 1]
    return x * x + y * y <= r * r


def table_ring(masks: dict[str, np.ndarray], object_ids: list[str], inner_px: int, outer_px: int) -> np.ndarray:
    """Pixels within `outer_px` of an object mask and farther than `inner_px` from every labelled
    mask (objects and hands): where the table around the objects shows."""
    shape = next(iter(masks.values())).shape
    obj = np.zeros(shape, bool)
    for oid in object_ids:
        obj |= masks[oid]
    labelled = np.zeros(shape, bool)
    for m in masks.values():
        labelled |= m
    outer = ndimage.binary_dilation(obj, _disk(outer_px)) if outer_px > 0 else obj
    excl = ndimage.binary_dilation(labelled, _disk(inner_px)) if inner_px > 0 else labelled
    return outer & ~excl


def table_points(points_hw3: np.ndarray, ring: np.ndarray, threshold: float, iterations: int,
                 seed: int, min_points: int) -> np.ndarray:
    """Inliers (N, 3) of the dominant plane among the ring's 3D points; StageFailure with the
    reason when there is none."""
    P = points_hw3[ring]
    P = P[np.isfinite(P).all(1)]
    if len(P) < min_points:
        raise StageFailure(f'only {len(P)} pixel(s) with depth around the objects (need {min_points})')
    plane = fit_plane_ransac(P, threshold=threshold, iterations=iterations, seed=seed)
    if plane is None:
        raise StageFailure('no plane found around the objects')
    n, d = plane
    inl = P[np.abs(P @ n + d) < threshold]
    if len(inl) < min_points:
        raise StageFailure(f'the plane around the objects has {len(inl)} inlier(s) within '
                           f'{threshold * 1000:.0f} mm (need {min_points})')
    return inl


def entity_points(points_hw3: np.ndarray, masks: dict[str, np.ndarray], object_ids: list[str],
                  hand_keypoints: np.ndarray | None = None, hand_valid=None) -> np.ndarray:
    """Median 3D point of each object mask (pixels with depth) + the valid hand keypoints."""
    out = []
    for oid in object_ids:
        P = points_hw3[masks[oid]]
        P = P[np.isfinite(P).all(1)]
        if len(P):
            out.append(np.median(P, axis=0))
    if hand_keypoints is not None:
        for i in range(2):
            if hand_valid[i]:
                out.extend(hand_keypoints[i])
    return np.asarray(out, float).reshape(-1, 3)


def median_body(bodies) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(left_hip, right_hip, pelvis): per-coordinate medians of BodyEstimates."""
    return (np.median([b.left_hip for b in bodies], axis=0), np.median([b.right_hip for b in bodies], axis=0),
            np.median([b.pelvis for b in bodies], axis=0))


# ------------------------------------------------------------------------------------- node
class SceneNode(StageNode):

    def __init__(self) -> None:
        super().__init__('scene_node', 'scene', backend_choices=['table_hips'])
        cfg = self.load_config(sa.SceneAlignmentConfig)
        for param, field, desc in (
                ('robot_pelvis', None, 'robot pelvis position in world, m'),
                ('reach_shift', None, 'shift along world y so the first-frame objects and hands are in '
                 'the reach region (paper B.4); false: pelvis onto pelvis only'),
                ('reach_x', 'reach_box.x', 'reach box x range [min, max] in world, m'),
                ('reach_y', 'reach_box.y', 'reach box y range [min, max] in world, m'),
                ('reach_z', 'reach_box.z', 'reach box z range [min, max] in world, m'),
                ('body_frames', None, 'hips/pelvis = median of the first this many valid BodyPose messages'),
                ('max_wait_frames', None, 'frames to wait for a valid body and a table plane before stopping'),
                ('plane_threshold', None, 'RANSAC inlier distance of the table plane, m'),
                ('ransac_iterations', None, 'RANSAC iterations of the table plane'),
                ('ring_inner_px', None, 'table ring: pixels kept clear of every labelled mask (mixed depth '
                 'at the silhouettes)'),
                ('ring_outer_px', None, 'table ring: width around the object masks, pixels; 0 = '
                 'ring_outer_fraction x the image\'s smaller side (at least ring_outer_min_px)'),
                ('min_table_points', None, 'fewest table-plane inliers accepted'),
                ('seed', None, 'RANSAC seed')):
            cfg = override(self, cfg, param, f'{desc} (overrides config_file [scene_alignment])', field)
        self.config = cfg
        self.record_config(cfg)
        self.robot_pelvis = np.asarray(cfg.robot_pelvis, float)
        self.reach_shift = cfg.reach_shift
        self.reach = cfg.reach_box if cfg.reach_region == 'box' else cfg.reach_sphere
        self.body_frames = cfg.body_frames
        self.max_wait_frames = cfg.max_wait_frames
        self.plane_threshold = cfg.plane_threshold
        self.ransac_iterations = cfg.ransac_iterations
        self.ring_inner_px = cfg.ring_inner_px
        self.ring_outer_px = cfg.ring_outer_px
        self.min_table_points = cfg.min_table_points
        self.seed = cfg.seed
        self.world_frame = declare(self, 'world_frame', 'world', 'name of the world frame', str, read_only=True)
        if self.backend_options:
            self.get_logger().warning(f'backend table_hips takes no options; ignoring {self.backend_options}')

        self.frames_seen = 0
        self.bodies = []
        self.table = None              # (stamp, camera frame, table points, entity points)
        self.table_reason = 'no frame yet'
        self.alignment: sa.SceneAlignment | None = None
        self.scene_pub = self.create_publisher(SceneAlignment, SCENE_TOPIC, latched_qos(1))
        self.tf_pub = self.create_publisher(TFMessage, TF_STATIC_TOPIC, latched_qos(1))
        self.setup_inputs([
            Input('masks', '/dexman/masks', ObjectMasks, producer='segmentation'),
            Input('depth', '/dexman/depth/image', Image, producer='depth'),
            Input('body', '/dexman/body', BodyPose, producer='body'),
            Input('hands', '/dexman/hands', Hands3D, producer='hands', required=False)], primary='masks')
        self.get_logger().info(f'scene: waiting for masks, depth, body (and hands); robot pelvis '
                               f'{self.robot_pelvis.tolist()}, reach {self.reach if self.reach_shift else "off"}')

    # ------------------------------------------------------------------------------ inputs
    def _on_stage_status(self, msg: StageStatus) -> None:
        if (msg.state == StageStatus.STATE_STOPPED and self.alignment is None and not self.stopped
                and msg.node != self.get_fully_qualified_name()):
            why = {
                'depth': 'scene alignment needs metric depth on /dexman/depth/image (a depth camera in '
                         'the bag, or the depth stage with backend vggt)',
                'body': 'scene alignment needs the human hips on /dexman/body (body stage, backend '
                        f'{msg.backend or "?"})',
                'segmentation': 'scene alignment needs the object masks on /dexman/masks to find the '
                                'table around the objects',
            }.get(msg.stage)
            if why:
                self.stop(f'{why}; the {msg.stage} stage stopped: {msg.message}')
                return
        super()._on_stage_status(msg)

    # ------------------------------------------------------------------------------ frames
    def process(self, stamp: int, inputs: dict, missing: list[str]) -> bool:
        if self.alignment is not None:
            return True
        self.frames_seen += 1
        body = pm.body_of(inputs['body']) if 'body' in inputs else None
        if body is not None and all(np.isfinite(p).all() for p in (body.left_hip, body.right_hip, body.pelvis)):
            self.bodies.append(body)
        else:
            body = None
        if self.table is None:
            try:
                self.table = self._table_frame(stamp, inputs)
            except StageFailure as e:
                self.table_reason = str(e)
        if self.table is not None and len(self.bodies) >= self.body_frames:
            self._align()
        elif self.frames_seen >= self.max_wait_frames:
            self._align_or_stop(f'within the first {self.max_wait_frames} frames')
        return body is not None

    def _table_frame(self, stamp: int, inputs: dict):
        if 'masks' not in inputs:
            raise StageFailure('no object masks for the frame')
        if 'depth' not in inputs:
            raise StageFailure('no depth image (/dexman/depth/image) for the frame')
        K = self.K()                            # StageFailure before the first camera_info
        masks = pm.masks_of(inputs['masks'])
        ids = [k for k, m in masks.items() if k.startswith('object_') and m.any()]
        if not ids:
            raise StageFailure('no object mask in the frame')
        depth = pm.depth_of(inputs['depth'])
        shape = next(iter(masks.values())).shape
        if depth.shape != shape:
            raise StageFailure(f'depth is {depth.shape[1]}x{depth.shape[0]}, masks {shape[1]}x{shape[0]}')
        outer = self.ring_outer_px or max(self.config.ring_outer_min_px,
                                          int(round(self.config.ring_outer_fraction * min(shape))))
        P = backproject(depth, K)
        ring = table_ring(masks, ids, self.ring_inner_px, outer)
        tab = table_points(P, ring, self.plane_threshold, self.ransac_iterations, self.seed,
                           self.min_table_points)
        kp, hv = None, None
        if 'hands' in inputs:
            kp, hv, _ = pm.hands_arrays(inputs['hands'])
        ent = entity_points(P, masks, ids, kp, hv)
        frame = inputs['depth'].header.frame_id or inputs['masks'].header.frame_id or 'camera_optical'
        self.get_logger().info(f'table: {len(tab)} points around {ids} in frame {stamp} '
                               f'({len(ent)} entity points)')
        return stamp, frame, tab, ent

    def _align_or_stop(self, when: str) -> None:
        if self.table is not None and self.bodies:
            self._align()
            return
        if not self.bodies:
            body = self.producers.get('body')
            backend = body.backend if body is not None and body.backend else '?'
            self.stop(f'no valid body (hips) {when}: the body stage (backend {backend}) found no person; '
                      'scene alignment needs the hips (try backend 4dhumans, or a video showing the torso)')
        else:
            self.stop(f'no table plane {when}: {self.table_reason}')

    def _align(self) -> None:
        stamp, frame, tab, ent = self.table
        lh, rh, pelvis = median_body(self.bodies[:self.body_frames])
        try:
            res = sa.align_scene(tab, lh, rh, pelvis, entity_points_camera=ent if len(ent) else None,
                                 robot_pelvis=self.robot_pelvis, reach=self.reach if self.reach_shift else None)
        except sa.SceneAlignmentError as e:
            self.stop(f'scene alignment failed: {e}')
            return
        self.alignment = res
        for i in self.inputs.values():          # producers stopping later no longer matter
            i.required = False
        T = res.T_world_camera
        n_world = T[:3, :3] @ res.plane.normal
        note = (f'table: {res.plane.n_points} points, rms {res.plane.rms_distance * 1000:.1f} mm; body: median '
                f'of {min(len(self.bodies), self.body_frames)} frame(s); entities: {res.n_entity_points} points, '
                f'{res.n_out_of_reach_before} out of reach before the y shift, {res.n_out_of_reach_after} after')
        if res.reach_note:
            note += f'; {res.reach_note}'
        msg = SceneAlignment(
            header=pm.header(stamp, self.world_frame), camera_frame=frame,
            world_from_camera=pm.transform_msg(T),
            table_point=pm.point(T[:3, :3] @ res.plane.centroid + T[:3, 3]),
            table_normal=Vector3(x=float(n_world[0]), y=float(n_world[1]), z=float(n_world[2])),
            pelvis=pm.point(res.pelvis_world), facing_angle=float(res.facing_angle),
            y_shift=float(res.y_shift), reach_fits=bool(res.reach_fits), note=note)
        self.scene_pub.publish(msg)
        self.tf_pub.publish(TFMessage(transforms=[pm.transform_stamped(T, stamp, self.world_frame, frame)]))
        self.message = note
        self.get_logger().info(
            f'scene aligned ({self.world_frame} <- {frame}): table height {res.table_height:.3f} m, facing '
            f'{np.degrees(res.facing_angle):.1f} deg, y shift {res.y_shift:+.3f} m, reach fits {res.reach_fits}; '
            f'{note}')
        self.publish_status()

    def finish(self) -> None:
        if self.alignment is None and not self.stopped:
            self._align_or_stop('before the bag ended')


def main(args: list[str] | None = None) -> None:
    run_stage(SceneNode, args)


if __name__ == '__main__':
    main()
