"""retarget_node: demonstrations -> G1 + two Shadow hands references (paper 3.3-3.4), a thin shell
over ``dexman_retarget.core.retarget_pipeline``.

    python -m dexman_retarget.nodes.retarget_node --ros-args -p demonstration_root:=/data/demos

Serves ``/dexman/retarget`` (dexman_msgs/srv/RetargetDemonstration): demonstration id -> reference
(the per-frame reach report in ``message``; an unknown id or a bad artefact gives success=false
with the reason, and the node keeps running). With ``auto`` it also retargets every new
demonstration announced on ``/dexman/demonstration`` (DemonstrationInfo, transient local). After
writing a reference (``output_dir/<reference_id>/``, atomically) it publishes

- ``/dexman/reference`` (dexman_msgs/ReferenceInfo, transient local);
- ``/dexman/reference/joint_trajectory`` (trajectory_msgs/JointTrajectory, transient local):
  every joint of the model (arms, fingers, coupled J0), one point per frame at 30 Hz;
- ``/joint_states`` (sensor_msgs/JointState) at the reference frame rate, looping over the latest
  reference for display (``play_joint_states``; the model's zero pose before the first one);

and at start-up ``/robot_description`` (std_msgs/String, transient local: the URDF of the robot
model, as robot_state_publisher takes it). The robot model is built into ``robot_model_dir``
when that holds no build yet.

Threads: a MultiThreadedExecutor; the service and the demonstration subscription run in a
reentrant callback group and hand the work to one worker thread (the pipeline takes seconds and
is not thread-safe), so the joint-state timer and parameter services keep running; a service
call waits for its own job and then responds.

Settings: ``config_file`` (default config/retarget.yaml, ``dexman_retarget.core.options``); the
``frame_rate``, ``ik_backend`` and ``finger_checkpoint`` parameters default to its ``pipeline``
section and replace it when given. The reference records the settings it was made with.

Exit status: 0 on shutdown; 2 bad parameters (a bad config_file included), missing robot asset
packages or finger checkpoint.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import pathlib
import re
import threading
import traceback
import urllib.parse

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node

from dexman_common.config import ConfigError
from dexman_common.ros.node_util import (ParamError, declare, default_executor_threads, latched_qos, reliable_qos,
                                          run_node)

from dexman_common.artefacts import reference as refm
from dexman_common.stamps import ns_to_sec_nanosec, seconds_to_ns
from ..core import retarget_pipeline as rp

SERVICE = '/dexman/retarget'
DEMO_TOPIC = '/dexman/demonstration'
REFERENCE_TOPIC = '/dexman/reference'
TRAJECTORY_TOPIC = '/dexman/reference/joint_trajectory'
JOINT_STATES_TOPIC = '/joint_states'
DESCRIPTION_TOPIC = '/robot_description'
_ID_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.\-]*$')


def _uri_to_path(uri: str) -> pathlib.Path | None:
    if not uri:
        return None
    u = urllib.parse.urlparse(uri)
    if u.scheme not in ('', 'file'):
        return None
    return pathlib.Path(urllib.parse.unquote(u.path))


def _duration(seconds: float):
    from builtin_interfaces.msg import Duration
    sec, nanosec = ns_to_sec_nanosec(seconds_to_ns(seconds))
    return Duration(sec=sec, nanosec=nanosec)


class RetargetNode(Node):

    def __init__(self) -> None:
        super().__init__('retarget_node')
        from dexman_msgs.msg import DemonstrationInfo, ReferenceInfo
        from dexman_msgs.srv import RetargetDemonstration
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String
        from trajectory_msgs.msg import JointTrajectory
        self._ReferenceInfo, self._JointState = ReferenceInfo, JointState
        self._JointTrajectory = JointTrajectory
        self._declare()

        log = self.get_logger()
        try:
            model_dir, built = rp.ensure_robot_model(self.robot_model_dir, self.config_file)
            if built:
                log.info(f'built the robot model into {model_dir}')
            self.retargeter = rp.Retargeter(model_dir, dataclasses.replace(
                self.options, frame_rate=self.frame_rate, ik_backend=self.ik_backend, progress=False,
                finger_checkpoint=self.finger_checkpoint or None), self.config_file)
        except rp.RetargetError as e:
            raise ParamError(str(e)) from None
        self.urdf = (model_dir / rp.rm.URDF_NAME).read_text()

        self._worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix='retarget')
        self._jobs: dict[str, concurrent.futures.Future] = {}
        self._jobs_lock = threading.Lock()
        self._known: dict[str, pathlib.Path] = {}        # demonstration id -> artefact dir (from topics)
        self._auto_seen: set[tuple] = set()
        self._play_lock = threading.Lock()
        self._play = (list(self.retargeter.joint_names),
                      np.asarray(self.retargeter.model.qpos0, float)[None], 0)

        self.reference_pub = self.create_publisher(ReferenceInfo, REFERENCE_TOPIC, latched_qos(1))
        self.trajectory_pub = self.create_publisher(JointTrajectory, TRAJECTORY_TOPIC, latched_qos(1))
        self.description_pub = self.create_publisher(String, DESCRIPTION_TOPIC, latched_qos(1))
        self.joint_state_pub = self.create_publisher(JointState, JOINT_STATES_TOPIC, reliable_qos(10))
        self.description_pub.publish(String(data=self.urdf))

        group = ReentrantCallbackGroup()
        self.create_service(RetargetDemonstration, SERVICE, self._on_service, callback_group=group)
        self.create_subscription(DemonstrationInfo, DEMO_TOPIC, self._on_demonstration, latched_qos(10),
                                 callback_group=group)
        if self.play_joint_states:
            self.create_timer(1.0 / self.frame_rate, self._on_joint_state_timer,
                              callback_group=MutuallyExclusiveCallbackGroup())
        log.info(f'ready: {SERVICE}; demonstrations from {self.demonstration_root}, references into '
                 f'{self.output_dir}; robot model {model_dir}; IK backend {self.ik_backend}; '
                 f'auto {self.auto}')

    def _declare(self) -> None:
        self.config_file = pathlib.Path(declare(
            self, 'config_file', str(rp.default_config_file()),
            'retargeting settings (YAML, one section per stage: dexman_retarget.core.options); '
            'frame_rate, ik_backend and finger_checkpoint below default to its pipeline section',
            str, read_only=True)).expanduser().resolve()
        try:
            self.options = rp.load_options(self.config_file)
        except ConfigError as e:
            raise ParamError(f"parameter 'config_file': {e}") from None
        self.output_dir = pathlib.Path(declare(
            self, 'output_dir', str(rp.default_reference_dir()),
            'root folder of the references: each is written atomically into '
            'output_dir/<reference_id>/', str, read_only=True)).expanduser().resolve()
        self.robot_model_dir = pathlib.Path(declare(
            self, 'robot_model_dir', str(rp.default_robot_model_dir()),
            'robot-model build (g1_shadow.xml, .urdf, manifest.json); built with robot_model.build '
            'when it holds no build yet', str, read_only=True)).expanduser().resolve()
        self.demonstration_root = pathlib.Path(declare(
            self, 'demonstration_root', str(rp.default_demonstration_dir()),
            'folder of the demonstration artefacts: the service looks up <demonstration_root>/<id>/ '
            '(ids announced on /dexman/demonstration are found through their artefact_uri)',
            str, read_only=True)).expanduser().resolve()
        self.ik_backend = declare(self, 'ik_backend', self.options.ik_backend,
                                  "wrist IK backend: 'mujoco' (damped least squares) or 'genesis' "
                                  "(optional genesis-world install); default: config_file's", str, read_only=True)
        self.auto = declare(self, 'auto', True,
                            'retarget every new demonstration announced on /dexman/demonstration', bool,
                            read_only=True)
        self.play_joint_states = declare(
            self, 'play_joint_states', True,
            'publish /joint_states at the reference frame rate, looping over the latest reference '
            '(the zero pose before the first one), for robot_state_publisher / RViz', bool, read_only=True)
        self.frame_rate = declare(self, 'frame_rate', self.options.frame_rate,
                                  "reference frame rate, Hz (30 in the paper); default: config_file's",
                                  float, read_only=True)
        self.finger_checkpoint = declare(self, 'finger_checkpoint', self.options.finger_checkpoint or '',
                                         'finger-MLP checkpoint (empty: the shipped finger_mlp_v1.pt); '
                                         "default: config_file's", str, read_only=True)
        if self.ik_backend not in rp.IK_BACKENDS:
            raise ParamError(f"parameter 'ik_backend' must be one of {', '.join(rp.IK_BACKENDS)}, "
                             f'got {self.ik_backend!r}')
        if not 1.0 <= self.frame_rate <= 1000.0:
            raise ParamError(f"parameter 'frame_rate' must be in [1, 1000] Hz, got {self.frame_rate}")

    # ------------------------------------------------------------------ requests
    def _resolve(self, demo_id: str) -> pathlib.Path:
        if not demo_id or not _ID_RE.match(demo_id):
            raise rp.RetargetError(f'invalid demonstration id {demo_id!r} (letters, digits, "_", "-", "."; '
                                   'no path)')
        if demo_id in self._known:
            return self._known[demo_id]
        path = self.demonstration_root / demo_id
        if not path.exists():
            raise rp.RetargetError(f'unknown demonstration {demo_id!r}: no {path} (and not announced '
                                   f'on {DEMO_TOPIC})')
        return path

    def submit(self, demo_id: str, path: pathlib.Path | None = None) -> concurrent.futures.Future:
        """Queue one retargeting job on the worker (a running job for the same id is shared)."""
        with self._jobs_lock:
            fut = self._jobs.get(demo_id)
            if fut is not None and not fut.done():
                return fut
            fut = self._worker.submit(self._process, demo_id, path)
            self._jobs[demo_id] = fut
            return fut

    def _process(self, demo_id: str, path: pathlib.Path | None) -> tuple[bool, str, str, str]:
        """(success, reference_id, artefact_uri, message); never raises."""
        log = self.get_logger()
        try:
            path = path or self._resolve(demo_id)
            demo, meshes = rp.load_input(path)
            if demo.demonstration_id != demo_id and (path / 'demonstration.json').is_file():
                raise rp.RetargetError(f'{path} holds demonstration {demo.demonstration_id!r}, '
                                       f'not {demo_id!r}')
            log.info(f'retargeting {demo_id} ({demo.n_frames} frames) from {path}')
            res = self.retargeter.run(demo, meshes, reference_id=demo_id)
            out = refm.save(res.reference, self.output_dir, res.meshes)
        except (rp.RetargetError, refm.ReferenceArtefactError) as e:
            log.error(f'retarget {demo_id!r} failed: {e}')
            return False, '', '', str(e)
        except Exception as e:  # noqa: BLE001 - keep serving; the traceback goes to the log
            log.error(f'retarget {demo_id!r}: unexpected error\n{traceback.format_exc()}')
            return False, '', '', f'internal error: {type(e).__name__}: {e}'
        ref = res.reference
        uri = out.as_uri() + '/'
        self._publish(ref, uri)
        log.info(f'wrote {out}: {ref.n_frames} frames, {ref.unreachable_frames} unreachable, '
                 f'{res.timings["total_s"]:.1f} s')
        return True, ref.reference_id, uri, ref.report

    def _publish(self, ref: refm.Reference, uri: str) -> None:
        from trajectory_msgs.msg import JointTrajectoryPoint
        now = self.get_clock().now().to_msg()
        info = self._ReferenceInfo()
        info.header.stamp, info.header.frame_id = now, 'world'
        info.reference_id, info.demonstration_id, info.artefact_uri = ref.reference_id, ref.demonstration_id, uri
        info.frame_count, info.frame_rate = ref.n_frames, float(ref.frame_rate)
        info.unreachable_frames = ref.unreachable_frames
        traj = self._JointTrajectory()
        traj.header.stamp, traj.header.frame_id = now, 'world'
        traj.joint_names = list(ref.joint_names)
        q = np.asarray(ref.joint_positions, float)
        tfs = ref.time_from_start
        traj.points = [JointTrajectoryPoint(positions=q[t].tolist(), time_from_start=_duration(tfs[t]))
                       for t in range(ref.n_frames)]
        with self._play_lock:
            self._play = (list(ref.joint_names), q, 0)
        self.trajectory_pub.publish(traj)
        self.reference_pub.publish(info)

    def _on_service(self, request, response):
        demo_id = request.demonstration_id.strip()
        try:
            path = self._resolve(demo_id)
        except rp.RetargetError as e:
            response.success, response.message = False, str(e)
            self.get_logger().warning(f'{SERVICE}: {e}')
            return response
        ok, rid, uri, msg = self.submit(demo_id, path).result()
        response.success, response.reference_id, response.artefact_uri, response.message = ok, rid, uri, msg
        return response

    def _on_demonstration(self, msg) -> None:
        demo_id = msg.demonstration_id
        path = _uri_to_path(msg.artefact_uri)
        if not demo_id or not _ID_RE.match(demo_id):
            self.get_logger().error(f'{DEMO_TOPIC}: ignoring a demonstration with the invalid id {demo_id!r}')
            return
        if path is not None:
            self._known[demo_id] = path
        if not self.auto:
            return
        key = (demo_id, msg.artefact_uri, msg.header.stamp.sec, msg.header.stamp.nanosec)
        if key in self._auto_seen:
            return
        self._auto_seen.add(key)
        if path is None:
            self.get_logger().error(f'{DEMO_TOPIC}: demonstration {demo_id!r} has an artefact_uri that is '
                                    f'not a local file URI: {msg.artefact_uri!r}')
            return
        self.submit(demo_id, path)

    def _on_joint_state_timer(self) -> None:
        with self._play_lock:
            names, q, i = self._play
            self._play = (names, q, (i + 1) % len(q))
        js = self._JointState()
        js.header.stamp = self.get_clock().now().to_msg()
        js.name = names
        js.position = q[i].tolist()
        self.joint_state_pub.publish(js)

    def shutdown(self) -> None:
        self._worker.shutdown(wait=False, cancel_futures=True)


def main(args: list[str] | None = None) -> None:
    import torch
    torch.set_num_threads(1)
    run_node(RetargetNode, args, threads=default_executor_threads())


if __name__ == '__main__':
    main()
