"""rosbag2 (mcap, zstd chunk compression) of one synthetic demonstration, written with `rosbags`.

Topics (all stamps = the frame's header stamp):
  /camera/image_raw            sensor_msgs/Image rgb8, frame camera_optical
  /camera/camera_info          sensor_msgs/CameraInfo (plumb_bob, zero distortion)
  /camera/depth/image_raw      sensor_msgs/Image 32FC1, metres (or relative units), optional
  /tf_static                   tf2_msgs/TFMessage world -> camera_optical (transient local, once)
  /tf                          world -> hand_left_wrist, hand_right_wrist, object_<id>
  /ground_truth/hands          dexman_msgs/Hands3D, world
  /ground_truth/objects        dexman_msgs/TrackedObjectArray, world
Camera topics are absent for dropped frames; /tf and ground truth are written for every frame.
The bag is written into a temporary directory beside the target and renamed into place.
"""
from __future__ import annotations

import functools
import pathlib
import shutil
import tempfile

import numpy as np
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

from dexman_common.bag_reader import make_typestore
from dexman_common.stamps import ns_to_sec_nanosec

from .transforms import quat_xyzw

TOPIC_IMAGE = '/camera/image_raw'
TOPIC_INFO = '/camera/camera_info'
TOPIC_DEPTH = '/camera/depth/image_raw'
TOPIC_TF = '/tf'
TOPIC_TF_STATIC = '/tf_static'
TOPIC_HANDS = '/ground_truth/hands'
TOPIC_OBJECTS = '/ground_truth/objects'
CAMERA_FRAME = 'camera_optical'
WORLD_FRAME = 'world'
WRIST_FRAMES = ('hand_left_wrist', 'hand_right_wrist')


def object_tf_frame(object_id: str) -> str:
    """TF frame of an object, as dexman_msgs/TrackedObject specifies: the id itself ("object_0")."""
    return object_id


@functools.lru_cache(maxsize=1)
def typestore():
    """ROS 2 Kilted typestore (tf2_msgs included) with dexman_msgs: the bag reader's
    (dexman_common.bag_reader.make_typestore), built once."""
    ts = make_typestore('kilted')
    if 'dexman_msgs/msg/Hands3D' not in ts.fielddefs:
        raise FileNotFoundError('dexman_msgs .msg files not found (ament index or src/)')
    return ts


def _qos(durability) -> Qos:
    return Qos(QosHistory.KEEP_LAST, 1 if durability == QosDurability.TRANSIENT_LOCAL else 10,
               QosReliability.RELIABLE, durability, QosTime(0, 0), QosTime(0, 0),
               QosLiveliness.AUTOMATIC, QosTime(0, 0), False)


class BagWriter:
    """Streamed writer: open(), write_* per frame, close() renames the finished bag into place."""

    def __init__(self, target: str | pathlib.Path, with_depth: bool):
        self.target = pathlib.Path(target)
        self.with_depth = with_depth
        self.ts = typestore()
        T = self.ts.types
        self.M = {k: T[k] for k in T}
        self._tmpdir = None
        self._w = None

    # ------------------------------------------------------------------ helpers
    def _header(self, stamp_ns: int, frame: str):
        M = self.M
        sec, nanosec = ns_to_sec_nanosec(stamp_ns)
        return M['std_msgs/msg/Header'](stamp=M['builtin_interfaces/msg/Time'](sec=sec, nanosec=nanosec),
                                        frame_id=frame)

    def _tfs(self, stamp_ns, parent, child, T):
        M = self.M
        q = quat_xyzw(T[:3, :3])
        return M['geometry_msgs/msg/TransformStamped'](
            header=self._header(stamp_ns, parent), child_frame_id=child,
            transform=M['geometry_msgs/msg/Transform'](
                translation=M['geometry_msgs/msg/Vector3'](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                rotation=M['geometry_msgs/msg/Quaternion'](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3]))))

    def _pose(self, T):
        M = self.M
        q = quat_xyzw(T[:3, :3])
        return M['geometry_msgs/msg/Pose'](
            position=M['geometry_msgs/msg/Point'](x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
            orientation=M['geometry_msgs/msg/Quaternion'](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))

    def _write(self, conn, stamp_ns, msg):
        self._w.write(conn, int(stamp_ns), self.ts.serialize_cdr(msg, msg.__msgtype__))

    # ------------------------------------------------------------------ API
    def open(self) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._tmpdir = pathlib.Path(tempfile.mkdtemp(prefix='.bag.', dir=self.target.parent))
        self._w = Writer(self._tmpdir / 'bag', version=9, storage_plugin=StoragePlugin.MCAP)
        self._w.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._w.open()
        ts = self.ts
        add = self._w.add_connection
        vol = [_qos(QosDurability.VOLATILE)]
        self.c_image = add(TOPIC_IMAGE, 'sensor_msgs/msg/Image', typestore=ts, offered_qos_profiles=vol)
        self.c_info = add(TOPIC_INFO, 'sensor_msgs/msg/CameraInfo', typestore=ts, offered_qos_profiles=vol)
        self.c_depth = add(TOPIC_DEPTH, 'sensor_msgs/msg/Image', typestore=ts, offered_qos_profiles=vol) \
            if self.with_depth else None
        self.c_tf = add(TOPIC_TF, 'tf2_msgs/msg/TFMessage', typestore=ts, offered_qos_profiles=vol)
        self.c_tfs = add(TOPIC_TF_STATIC, 'tf2_msgs/msg/TFMessage', typestore=ts,
                         offered_qos_profiles=[_qos(QosDurability.TRANSIENT_LOCAL)])
        self.c_hands = add(TOPIC_HANDS, 'dexman_msgs/msg/Hands3D', typestore=ts, offered_qos_profiles=vol)
        self.c_objs = add(TOPIC_OBJECTS, 'dexman_msgs/msg/TrackedObjectArray', typestore=ts, offered_qos_profiles=vol)

    def write_static(self, stamp_ns: int, T_world_camera: np.ndarray) -> None:
        msg = self.M['tf2_msgs/msg/TFMessage'](transforms=[self._tfs(stamp_ns, WORLD_FRAME, CAMERA_FRAME, T_world_camera)])
        self._write(self.c_tfs, stamp_ns, msg)

    def write_camera(self, stamp_ns: int, rgb: np.ndarray, K: np.ndarray, depth: np.ndarray | None) -> None:
        M = self.M
        h, w = rgb.shape[:2]
        hdr = self._header(stamp_ns, CAMERA_FRAME)
        P = np.zeros((3, 4))
        P[:, :3] = K
        info = M['sensor_msgs/msg/CameraInfo'](
            header=hdr, height=h, width=w, distortion_model='plumb_bob', d=np.zeros(5), k=K.ravel().astype(float),
            r=np.eye(3).ravel(), p=P.ravel(), binning_x=0, binning_y=0,
            roi=M['sensor_msgs/msg/RegionOfInterest'](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
        self._write(self.c_info, stamp_ns, info)
        img = M['sensor_msgs/msg/Image'](header=hdr, height=h, width=w, encoding='rgb8', is_bigendian=0, step=3 * w,
                                         data=np.ascontiguousarray(rgb, np.uint8).ravel())
        self._write(self.c_image, stamp_ns, img)
        if self.c_depth is not None and depth is not None:
            d = np.ascontiguousarray(depth, '<f4')
            msg = M['sensor_msgs/msg/Image'](header=hdr, height=h, width=w, encoding='32FC1', is_bigendian=0,
                                             step=4 * w, data=d.view(np.uint8).ravel())
            self._write(self.c_depth, stamp_ns, msg)

    def write_truth(self, stamp_ns: int, wrist_T: np.ndarray, keypoints: np.ndarray, present: np.ndarray,
                    object_ids: list[str], labels: list[str], object_T: np.ndarray, mesh_uris: list[str]) -> None:
        """wrist_T (2, 4, 4), keypoints (2, 21, 3), present (2,), object_T (O, 4, 4), world frame."""
        M = self.M
        tfs = [self._tfs(stamp_ns, WORLD_FRAME, WRIST_FRAMES[h], wrist_T[h]) for h in (0, 1)]
        tfs += [self._tfs(stamp_ns, WORLD_FRAME, object_tf_frame(i), T) for i, T in zip(object_ids, object_T)]
        self._write(self.c_tf, stamp_ns, M['tf2_msgs/msg/TFMessage'](transforms=tfs))
        hdr = self._header(stamp_ns, WORLD_FRAME)
        hands = []
        for h in (0, 1):
            ok = bool(present[h])
            kp = keypoints[h] if ok else np.zeros((21, 3))
            hands.append(M['dexman_msgs/msg/Hand3D'](
                header=hdr, handedness=h,
                keypoints=[M['geometry_msgs/msg/Point'](x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in kp],
                keypoint_confidence=np.full(21, 1.0 if ok else 0.0, np.float32),
                wrist_pose=self._pose(wrist_T[h]), confidence=1.0 if ok else 0.0, valid=ok))
        self._write(self.c_hands, stamp_ns, M['dexman_msgs/msg/Hands3D'](header=hdr, hands=hands))
        objs = [M['dexman_msgs/msg/TrackedObject'](header=hdr, id=i, label=lab, pose=self._pose(T), scale=1.0,
                                                   mesh_resource=uri, confidence=1.0, status=0)
                for i, lab, T, uri in zip(object_ids, labels, object_T, mesh_uris)]
        self._write(self.c_objs, stamp_ns, M['dexman_msgs/msg/TrackedObjectArray'](header=hdr, objects=objs))

    def close(self) -> pathlib.Path:
        self._w.close()
        self._w = None
        if self.target.exists():
            old = self.target.parent / (self.target.name + '.old')
            shutil.rmtree(old, ignore_errors=True)
            self.target.rename(old)
            (self._tmpdir / 'bag').rename(self.target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            (self._tmpdir / 'bag').rename(self.target)
        shutil.rmtree(self._tmpdir, ignore_errors=True)
        return self.target

    def abort(self) -> None:
        if self._w is not None:
            try:
                self._w.close()
            except Exception:   # noqa: BLE001
                pass
            self._w = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
