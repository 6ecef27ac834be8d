"""robot_state_publisher_py: the robot's link TF from joint states, for systems without the
upstream ``robot_state_publisher`` (pip-only installs); a thin shell over
``dexman_description.urdf_fk``. Same topics, parameters and semantics as upstream, so a launch
file can start either:

    ros2 run dexman_description robot_state_publisher_py --ros-args -p urdf_file:=artifacts/robot_model/g1_shadow.urdf

- subscribes ``joint_states`` (sensor_msgs/JointState, sensor-data QoS, relative name);
- publishes ``/tf`` (tf2_msgs/TFMessage): for each message, one transform per moving joint it
  names (and per mimic joint of those), parent link -> child link, stamped with the message's
  stamp, rate-limited by ``publish_frequency`` as upstream (``ignore_timestamp`` lifts that);
- publishes ``/tf_static`` (transient local) once at start: every fixed joint, stamped now;
- latches ``robot_description`` (std_msgs/String, transient local, relative name): the URDF.

Parameters (upstream): ``robot_description`` (URDF XML), ``use_robot_description_topic`` (take
the URDF from the ``robot_description`` topic instead, e.g. from the retarget node; fixed
transforms are re-published for each one received), ``publish_frequency`` (Hz, (0, 1000],
default 20), ``ignore_timestamp``, ``frame_prefix``. Ours: ``urdf_file``, a URDF path used when
``robot_description`` is empty (a 90 kB URDF does not fit a command line comfortably).
Not carried over: changing ``robot_description`` at run time through the parameter service.

A JointState whose names and positions differ in length, or with a non-finite position, is
ignored with a (throttled) warning, and the node keeps running. Exit status: 0 on shutdown;
2 for bad parameters or a URDF that cannot be read.
"""
from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from dexman_common.geometry import quat_from_matrix
from dexman_common.ros.node_util import ParamError, declare, latched_qos, run_node, sensor_qos
from dexman_common.stamps import time_to_ns

from ..urdf_fk import JointTransform, PublishGate, UrdfError, UrdfKinematics, finite_positions

TF_TOPIC, TF_STATIC_TOPIC = '/tf', '/tf_static'


def tf_qos() -> QoSProfile:
    """tf2_ros TransformBroadcaster's QoS: reliable, volatile, keep last 100."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100,
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


class RobotStatePublisher(Node):

    def __init__(self) -> None:
        super().__init__('robot_state_publisher')
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage
        self._TFMessage = TFMessage
        self.use_topic = declare(self, 'use_robot_description_topic', False,
                                 'take the URDF from the robot_description topic (transient local)',
                                 read_only=True)
        description = declare(self, 'robot_description', '', 'the robot URDF (XML text)', read_only=True)
        urdf_file = declare(self, 'urdf_file', '', 'URDF file used when robot_description is empty '
                            '(not an upstream parameter)', read_only=True)
        frequency = declare(self, 'publish_frequency', 20.0,
                            'Hz; a joint is re-published at most this often by joint-state stamp')
        self.ignore_timestamp = declare(self, 'ignore_timestamp', False,
                                        'publish every joint state whatever its stamp')
        self.frame_prefix = declare(self, 'frame_prefix', '', 'prefix of every published frame id')
        try:
            self.gate = PublishGate(frequency, self.ignore_timestamp)
        except ValueError as err:
            raise ParamError(f'publish_frequency: {err}') from None

        self.tf_pub = self.create_publisher(TFMessage, TF_TOPIC, tf_qos())
        self.tf_static_pub = self.create_publisher(TFMessage, TF_STATIC_TOPIC, latched_qos(1))
        self.kinematics: UrdfKinematics | None = None
        if self.use_topic:
            self.create_subscription(String, 'robot_description', self._on_description, latched_qos(1))
            self.get_logger().info('waiting for the URDF on the robot_description topic')
        else:
            self.kinematics = self._load(description, urdf_file)
            self.description_pub = self.create_publisher(String, 'robot_description', latched_qos(1))
            self.description_pub.publish(String(data=self._urdf))
            self._publish_fixed()
        self.create_subscription(JointState, 'joint_states', self._on_joint_state, sensor_qos())

    # ----------------------------------------------------------------------------- the URDF
    def _load(self, description: str, urdf_file: str) -> UrdfKinematics:
        if description and urdf_file:
            raise ParamError('set robot_description or urdf_file, not both')
        try:
            if description:
                kin, self._urdf = UrdfKinematics.from_xml(description), description
            elif urdf_file:
                kin = UrdfKinematics.from_file(urdf_file)
                self._urdf = open(urdf_file, encoding='utf-8').read()
            else:
                raise ParamError('robot_description parameter must not be empty (or set urdf_file, '
                                 'or use_robot_description_topic:=true)')
        except UrdfError as err:
            raise ParamError(str(err)) from None
        self._describe(kin)
        return kin

    def _describe(self, kin: UrdfKinematics) -> None:
        skipped = f'; floating joints skipped: {kin.skipped}' if kin.skipped else ''
        self.get_logger().info(f'robot {kin.name!r}: {len(kin.links)} links, {len(kin.moving)} moving '
                               f'and {len(kin.static)} fixed joints, root {kin.root!r}{skipped}')

    def _on_description(self, msg) -> None:
        try:
            self.kinematics = UrdfKinematics.from_xml(msg.data)
        except UrdfError as err:
            self.get_logger().error(f'failed to parse the robot description from the topic: {err}')
            return
        self._describe(self.kinematics)
        self._publish_fixed()

    # ------------------------------------------------------------------------------- output
    def _tf_message(self, transforms: list[JointTransform], stamp):
        from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3
        if not transforms:
            return self._TFMessage(transforms=[])
        mats = np.stack([t.matrix for t in transforms])
        quats = quat_from_matrix(mats[:, :3, :3]).tolist()     # one conversion for all
        out = []
        for t, (x, y, z), (qx, qy, qz, qw) in zip(transforms, mats[:, :3, 3].tolist(), quats):
            ts = TransformStamped(transform=Transform(translation=Vector3(x=x, y=y, z=z),
                                                      rotation=Quaternion(x=qx, y=qy, z=qz, w=qw)))
            ts.header.stamp = stamp
            ts.header.frame_id = self.frame_prefix + t.parent
            ts.child_frame_id = self.frame_prefix + t.child
            out.append(ts)
        return self._TFMessage(transforms=out)

    def _publish_fixed(self) -> None:
        assert self.kinematics is not None
        stamp = self.get_clock().now().to_msg()
        self.tf_static_pub.publish(self._tf_message(self.kinematics.fixed_transforms(), stamp))

    def _on_joint_state(self, msg) -> None:
        if self.kinematics is None:
            self.get_logger().warn('joint state before any robot description: ignored',
                                   throttle_duration_sec=5.0)
            return
        try:
            positions = finite_positions(msg.name, msg.position)
        except ValueError as err:
            self.get_logger().warn(f'ignored an invalid JointState message: {err}', throttle_duration_sec=5.0)
            return
        if not positions:
            return
        now_ns = self.get_clock().now().nanoseconds
        if not self.gate.check(positions, time_to_ns(msg.header.stamp), now_ns):
            return
        transforms = self.kinematics.moving_transforms(positions)
        if transforms:
            self.tf_pub.publish(self._tf_message(transforms, msg.header.stamp))


def main(args: list[str] | None = None) -> None:
    run_node(RobotStatePublisher, args)


if __name__ == '__main__':
    main()
