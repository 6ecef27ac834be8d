"""mesh_node: one mesh per target object from its first clear view (paper 3.1: Trellis).

Inputs (joined by stamp): /camera/image_raw (primary), /dexman/depth/image (depth stage; needed by
the fused_cloud default), /dexman/masks (segmentation stage). For every object, the first frame
whose mask has at least `min_mask_pixels` pixels is reconstructed; the mesh is written atomically
to `<mesh_dir>/<object id>.obj` and published once on /dexman/object_meshes (dexman_msgs/ObjectMesh,
transient local) with a TRIANGLE_LIST marker on /dexman/markers/meshes in the object's own frame
(RViz places it with the tracker's TF). A failed reconstruction is retried on the next frame.

Backends: fused_cloud (embedded CPU default: the object's depth points closed onto the table
plane; metric), trellis (TRELLIS image-to-3D from the masked crop; unscaled -- the tracker
estimates the scale, Any6D style).
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from dexman_msgs.msg import ObjectMasks, ObjectMesh
from sensor_msgs.msg import Image
from visualization_msgs.msg import MarkerArray

from dexman_common.atomic_io import write_bytes_atomic
from ..core.stages import StageFailure
from . import perception_msgs as pm
from .markers import mesh_marker
from dexman_common.ros.node_util import declare, latched_qos
from .stage_node import Input, StageNode, run_stage


def default_mesh_dir() -> str:
    home = os.environ.get('ROS_HOME') or os.path.join(os.path.expanduser('~'), '.ros')
    return os.path.join(home, 'dexman', 'meshes')


class MeshNode(StageNode):
    def __init__(self) -> None:
        super().__init__('mesh_node', 'mesh')
        self.mesh_dir = pathlib.Path(declare(self, 'mesh_dir', '', 'directory the object meshes '
                                             '(.obj) are written to; empty: $ROS_HOME/dexman/meshes')
                                     or default_mesh_dir())
        self.min_mask_pixels = declare(self, 'min_mask_pixels', 50,
                                       'smallest object mask (pixels) a mesh is made from')
        labels = declare(self, 'object_labels', [], 'class label per object id object_<n>, in order')
        self.labels = {f'object_{i}': lab for i, lab in enumerate(labels) if lab}
        self.pub = self.create_publisher(ObjectMesh, '/dexman/object_meshes', latched_qos(32))
        self.marker_pub = self.create_publisher(MarkerArray, '/dexman/markers/meshes', latched_qos(1))
        self.markers = MarkerArray()
        self.done: dict[str, ObjectMesh] = {}
        self.tries: dict[str, str] = {}
        self.backend = self.create_backend()
        if self.backend is None:
            return
        self.metric = self.backend_name == 'fused_cloud'
        self.status_every_frame = True     # the tracker waits on our progress until every mesh exists
        self.setup_inputs([
            Input('image', '/camera/image_raw', Image),
            Input('depth', '/dexman/depth/image', Image, producer='depth', required=self.metric),
            Input('masks', '/dexman/masks', ObjectMasks, producer='segmentation')])

    def process(self, stamp, got, missing) -> bool:
        if 'masks' not in got:
            raise StageFailure('no object masks for this frame')
        masks = {k: v for k, v in pm.masks_of(got['masks']).items() if k.startswith('object_')}
        self.status_every_frame = not all(k in self.done for k in masks)
        todo = [k for k in masks if k not in self.done and masks[k].sum() >= self.min_mask_pixels]
        if not todo:
            return True
        rgb = pm.rgb_of(got['image'])
        depth = pm.depth_of(got['depth']) if 'depth' in got else None
        K = self.K()
        for oid in todo:
            try:
                mesh = self.backend.reconstruct(rgb, masks[oid], depth, K)
            except StageFailure as e:
                self.tries[oid] = str(e)
                self.warn_frame(f'{oid}: no mesh from this frame: {e}')
                continue
            self._publish(oid, mesh, stamp)
        return True

    def _publish(self, oid: str, mesh, stamp: int) -> None:
        self.mesh_dir.mkdir(parents=True, exist_ok=True)
        path = self.mesh_dir / f'{oid}.obj'
        data = mesh.export(file_type='obj')
        write_bytes_atomic(path, data.encode() if isinstance(data, str) else data)
        msg = pm.mesh_msg(mesh, oid, self.labels.get(oid, oid), path.resolve().as_uri(), self.metric, 1.0, stamp)
        self.done[oid] = msg
        self.pub.publish(msg)
        self.markers.markers.append(mesh_marker(np.asarray(mesh.vertices), np.asarray(mesh.faces), oid,
                                                pm.header(stamp, oid), 'object_meshes',
                                                len(self.markers.markers), (0.2, 0.6, 1.0, 0.8)))
        self.marker_pub.publish(self.markers)
        ext = np.round(np.asarray(mesh.extents), 3).tolist()
        self.get_logger().info(f'{oid}: mesh {len(mesh.vertices)} vertices, extents {ext} m -> {path}')

    def finish(self) -> None:
        missing = [oid for oid in self.tries if oid not in self.done]
        if not self.done:
            why = '; '.join(f'{k}: {v}' for k, v in self.tries.items()) or 'no object mask large enough'
            raise StageFailure(f'no object mesh could be made ({why})')
        if missing:
            self.get_logger().warning(f'no mesh for {missing}')


def main(args: list[str] | None = None) -> None:
    run_stage(MeshNode, args)


if __name__ == '__main__':
    main()
