"""tracker_node: 6D pose of every target object in every frame (paper 3.2, Appendix B.3).

Inputs (joined by stamp): /camera/image_raw (primary), /dexman/depth/image (depth stage),
/dexman/masks (segmentation stage); meshes from /dexman/object_meshes (mesh stage, transient
local; frames wait for them). Per object: registration on its first frame (for an unscaled mesh
the scale is estimated first by sampling candidate scales and keeping the best-scoring
registration, Any6D style), then per frame the paper's fused step: the rigid motion of the
object's 3D point tracks (Kabsch + RANSAC) gives T_init, the pose refiner refines it.

Outputs, one per image: /dexman/objects (dexman_msgs/TrackedObjectArray, camera_optical;
TRACKING = refined, PREDICTED = carried by the point tracks only, LOST = last pose kept, invalid),
/tf (<camera frame> -> object_<n>, for poses that are not LOST), /dexman/markers/tracks (the
object's current 3D point tracks).

Parameters: backend (pose refiner: icp = embedded CPU default, foundationpose), tracks_backend
(lucas_kanade = CPU default, online; spatialtracker = whole clip, run when the bag has finished),
tracks_options, mode (fused | refiner | tracks: the paper's Table 1 ablations; overrides
config_file [tracker] mode when set). Algorithm settings from config_file: [tracker],
[object_scale], and the backends' sections ([icp_refiner], [lucas_kanade]).
"""
from __future__ import annotations

import collections

import numpy as np

from dexman_msgs.msg import ObjectMasks, ObjectMesh, TrackedObjectArray
from sensor_msgs.msg import Image
from tf2_msgs.msg import TFMessage
from visualization_msgs.msg import MarkerArray

from ..core import object_tracker as ot
from ..core.backends import registry
from ..core.object_scale import ScaleSearchConfig, estimate_object_scale, scale_mesh
from ..core.stages import StageFailure
from . import config_params
from . import perception_msgs as pm
from .markers import points_marker
from dexman_common.ros.node_util import ParamError, declare, latched_qos
from .stage_node import Input, StageNode, parse_options, run_stage


class TrackerNode(StageNode):
    def __init__(self) -> None:
        super().__init__('tracker_node', 'tracking', backend_stage='pose')
        self.tracker_config = config_params.override(
            self, self.load_config(ot.TrackerConfig), 'mode',
            f'tracking mode, one of {list(ot.MODES)} (paper Table 1); overrides config_file [tracker]')
        self.mode = self.tracker_config.mode
        self.scale_config = self.load_config(ScaleSearchConfig)
        self.record_config(self.tracker_config)
        tracks_choices = list(registry.BACKENDS['tracks'])
        self.tracks_name = declare(self, 'tracks_backend', tracks_choices[0],
                                   f'point-track backend, one of {tracks_choices}')
        if self.tracks_name not in tracks_choices:
            raise ParamError(f'tracks_backend must be one of {tracks_choices}, got {self.tracks_name!r}')
        tracks_opts = parse_options(declare(self, 'tracks_options', [], 'key=value options of the '
                                            'point-track backend', list))
        self.pub = self.create_publisher(TrackedObjectArray, '/dexman/objects', self.output_qos())
        self.tf_pub = self.create_publisher(TFMessage, '/tf', 100)
        self.marker_pub = self.create_publisher(MarkerArray, '/dexman/markers/tracks', 10)
        self.meshes: dict[str, tuple[object, ObjectMesh]] = {}
        self.streams: dict[str, object] = {}
        self.last_stamp: dict[str, int] = {}
        self.scales: dict[str, float] = {}
        self.queue: collections.deque = collections.deque()
        self.object_ids: list[str] | None = None
        self.frames_tracked = 0            # frames taken from the queue
        self.refiner = self.create_backend()
        if self.refiner is None:
            return
        self.tracker = self.create_backend('tracks', self.tracks_name, options=tracks_opts)
        if self.tracker is None:
            return
        self.online = self.mode == 'refiner' or hasattr(self.tracker, 'stream')
        self.create_subscription(ObjectMesh, '/dexman/object_meshes', self._on_mesh, latched_qos(32))
        self.depends_on('mesh')
        self.setup_inputs([
            Input('image', '/camera/image_raw', Image),
            Input('depth', '/dexman/depth/image', Image, producer='depth'),
            Input('masks', '/dexman/masks', ObjectMasks, producer='segmentation')])

    # ------------------------------------------------------------------------------ meshes
    def _on_stage_status(self, msg) -> None:
        super()._on_stage_status(msg)
        if msg.stage == 'mesh':
            self._drain()          # the mesh stage moved on: frames may be ready

    def _on_mesh(self, msg: ObjectMesh) -> None:
        try:
            self.meshes[msg.id] = (pm.mesh_of(msg), msg)
        except ValueError as e:
            self.get_logger().error(f'bad mesh for {msg.id}: {e}')
            return
        self._drain()

    def _ready(self) -> bool:
        """The next queued frame can be tracked: every object has its mesh, or the mesh stage has
        handled this frame (its StageStatus counts it) without making one (that object is then
        LOST in this frame), or it has finished."""
        if self.object_ids is None:
            return False
        if all(o in self.meshes for o in self.object_ids) or self.stage_finished('mesh'):
            return True
        st = self.producers.get('mesh')
        return st is not None and st.frames_out > self.frames_tracked

    # ------------------------------------------------------------------------------ frames
    def process(self, stamp, got, missing) -> bool:
        if 'masks' not in got or 'depth' not in got:
            raise StageFailure(f'missing input for this frame: {missing}')
        masks = {k: v for k, v in pm.masks_of(got['masks']).items() if k.startswith('object_')}
        if self.object_ids is None:
            self.object_ids = list(masks)
        self.queue.append((stamp, got['image'].header, pm.rgb_of(got['image']), pm.depth_of(got['depth']), masks))
        self._drain()
        return True

    def publish_invalid(self, stamp, got, reason) -> None:
        hdr = got['image'].header
        self._publish(hdr, {o: ('lost', np.eye(4), 0.0, None) for o in (self.object_ids or [])}, count=False)

    def _drain(self) -> None:
        if not self.online:
            return                 # whole-clip tracks: finish() does the work
        while self.queue and self._ready():
            stamp, hdr, rgb, depth, masks = self.queue.popleft()
            self.frames_tracked += 1
            self._publish(hdr, {o: self._step(o, stamp, rgb, depth, masks.get(o)) for o in self.object_ids})

    def _step(self, oid, stamp, rgb, depth, mask):
        """(status, T, confidence, track points 3D) of one object in one frame."""
        if oid not in self.meshes:
            return 'lost', np.eye(4), 0.0, None
        K = self.K()
        st = self.streams.get(oid)
        if st is None:
            if mask is None or not mask.any():
                return 'lost', np.eye(4), 0.0, None        # not registered yet: wait for a mask
            mesh, msg = self.meshes[oid]
            T0 = None
            if not msg.metric:
                if self.scale_config.SECTION not in self.configs:
                    self.record_config(self.scale_config)
                res = estimate_object_scale(self.refiner, rgb, depth, mask, mesh, K, config=self.scale_config)
                mesh = scale_mesh(mesh, res.scale)
                self.meshes[oid] = (mesh, msg)
                self.scales[oid], T0 = res.scale, res.T_camera_object
                self.get_logger().info(f'{oid}: scale {res.scale:.3f} (best of {len(res.table)} candidates)')
            st = ot.ObjectPoseStream(refiner=self.refiner, tracker=self.tracker, config=self.tracker_config)
            fp = st.start(rgb, depth, mask, mesh, K, T0=T0)
            self.streams[oid] = st
        else:
            fp = st.step(rgb, depth, mask, dt=(stamp - self.last_stamp[oid]) * 1e-9)
        self.last_stamp[oid] = stamp
        return fp.status, fp.T_camera_object, _confidence(fp), fp.points_3d

    def _publish(self, hdr, results: dict, count: bool = True) -> None:
        """One TrackedObjectArray (+ TF, markers); count: add a frame with a lost object to
        frames_invalid (queued frames are published after process() returned)."""
        out = TrackedObjectArray(header=hdr)
        tfs, markers = [], MarkerArray()
        stamp = pm.stamp_ns(hdr)
        for i, (oid, (status, T, conf, pts)) in enumerate(results.items()):
            mesh_msg = self.meshes.get(oid, (None, None))[1]
            out.objects.append(pm.tracked_object_msg(
                oid, mesh_msg.label if mesh_msg else oid, T, hdr, status=status, confidence=conf,
                mesh_uri=mesh_msg.mesh_resource if mesh_msg else '', scale=self.scales.get(oid, 1.0)))
            if status != 'lost':
                tfs.append(pm.transform_stamped(T, stamp, hdr.frame_id, oid))
            if pts is not None and len(pts):
                markers.markers.append(points_marker(pts, hdr, 'tracks', i, (1.0, 0.8, 0.1, 1.0)))
        self.pub.publish(out)
        if tfs:
            self.tf_pub.publish(TFMessage(transforms=tfs))
        if markers.markers:
            self.marker_pub.publish(markers)
        if count and any(r[0] == 'lost' for r in results.values()):
            self.frames_invalid += 1

    def finish(self) -> None:
        if self.online:
            self._drain()
            for stamp, hdr, *_ in list(self.queue):
                self._publish(hdr, {o: ('lost', np.eye(4), 0.0, None) for o in (self.object_ids or [])})
            self.queue.clear()
            return
        self._finish_batch()

    def _finish_batch(self) -> None:
        """Whole-clip point tracks (e.g. SpatialTracker): track every object over the buffered clip."""
        frames = list(self.queue)
        self.queue.clear()
        if not frames:
            return
        rgbs = [f[2] for f in frames]
        depths = [f[3] for f in frames]
        K = self.K()
        per_obj = {}
        for oid in self.object_ids or []:
            if oid not in self.meshes:
                continue
            masks = [f[4].get(oid) for f in frames]
            first = next((k for k, m in enumerate(masks) if m is not None and m.any()), None)
            if first is None:
                continue
            r = ot.track_object(rgbs[first:], depths[first:], masks[first:], self.meshes[oid][0], K,
                                refiner=self.refiner, tracker=self.tracker, config=self.tracker_config)
            per_obj[oid] = (first, r)
        for k, (stamp, hdr, *_rest) in enumerate(frames):
            res = {}
            for oid in self.object_ids or []:
                if oid not in per_obj or k < per_obj[oid][0]:
                    res[oid] = ('lost', np.eye(4), 0.0, None)
                    continue
                first, r = per_obj[oid]
                j = k - first
                ok = bool(r.valid[j])
                res[oid] = ('tracking' if ok else 'lost', r.poses[j], float(r.scores[j]) if ok else 0.0, None)
            self._publish(hdr, res)


def _confidence(fp) -> float:
    """[0, 1]: the refiner's score for a refined pose; for a pose carried by the point tracks
    alone, the RANSAC inlier fraction of the track step; 0 when lost."""
    if not fp.valid or fp.status == 'lost':
        return 0.0
    if fp.status == 'tracking' and np.isfinite(fp.score):
        return float(np.clip(fp.score, 0.0, 1.0))
    st = fp.step
    if st is not None and st.ok and st.n_tracks > 0:
        return float(st.n_inliers / st.n_tracks)
    return 0.0


def main(args: list[str] | None = None) -> None:
    run_stage(TrackerNode, args)


if __name__ == '__main__':
    main()
