"""policy_node: play a trained skill to a robot stack, simulated or open loop (a shell over
``dexman_rl.core.skill_stream``).

    ros2 run dexman_rl policy_node --ros-args -r __ns:=/dexman -p rate:=30.0

Action ``execute_skill`` (dexman_msgs/action/ExecuteSkill). ``skill_uri``: a skill directory
(``file://`` URI or path) or a skill id under ``skills_dir``. ``simulate`` true: the skill's
policy runs in its simulator (MuJoCo by default), closed loop, from reference frame 0 to the
reference's end (or the early termination of a failing rollout); false: open loop, the exported
``rollout.npz`` is streamed as recorded, nothing is simulated. Steps are paced at ``rate`` Hz of
wall clock (0: as fast as possible). Feedback every step: step, total_steps and the object
errors (m, rad; the largest over the objects; in open loop the recorded ones). Result: paper 4.2
success and the mean errors E_t / E_r of the run. A goal that cannot run (unknown skill, a robot
model whose hash differs from the one the skill was trained on, no rollout.npz for open loop,
another goal executing) is accepted and then aborted with the reason in ``result.message`` (an
action goal rejection carries no reason); the node keeps serving. Cancel stops at the next step.

Published, relative names (``/dexman/...`` in the launch):

- ``joint_states`` (sensor_msgs/JointState): every movable joint of the URDF (arms and hands,
  the coupled J0 included), at each step, stamped now; a robot_state_publisher in the same
  namespace turns it into the links' TF;
- ``joint_trajectory`` (trajectory_msgs/JointTrajectory): the ACTUATED joints (arms then hands, no
  J0), positions within the URDF limits, header stamp 0 (= start on receipt, as a ros2_control
  JointTrajectoryController reads it). Open loop: the whole exported trajectory once at goal
  start (point 0 = the start configuration at time_from_start 0, then one point per control
  step, strictly increasing; times scaled by control_rate / rate when rate > 0). Simulated: at
  every step a one-point trajectory, the step's actuator targets at time_from_start = one step
  (a streaming command; the closed loop has no future to send). Not latched: a late controller
  never receives an old command;
- ``/tf``: ``world -> object_<n>`` (the objects, simulated or recorded) and ``world ->
  object_<n>_target`` (the reference's pose at that frame) every step;
- ``markers`` (visualization_msgs/MarkerArray, transient local): each object's mesh in
  ``object_<n>`` (ns "objects") and, translucent, in ``object_<n>_target`` (ns "targets");
  small spheres when the mesh is not available (open loop without the reference);
- ``robot_description`` (std_msgs/String, transient local): the URDF of the robot model.

Exit status: 0 on shutdown; 2 for bad parameters (robot model not built, bad rate).
"""
from __future__ import annotations

import math
import pathlib
import threading
import time
import urllib.parse

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from dexman_common.ros.node_util import (ParamError, declare, default_executor_threads, latched_qos, reliable_qos,
                                          run_node)
from dexman_common.stamps import ns_to_sec_nanosec, seconds_to_ns

OBJECT_RGBA = (0.35, 0.55, 0.85, 1.0)
TARGET_RGBA = (0.2, 0.85, 0.3, 0.35)
FALLBACK_SPHERE_M = 0.04


def _duration(seconds: float):
    from builtin_interfaces.msg import Duration
    sec, nanosec = ns_to_sec_nanosec(seconds_to_ns(seconds))
    return Duration(sec=sec, nanosec=nanosec)


def resolve_skill(uri: str, skills_dir: pathlib.Path) -> pathlib.Path:
    """``file://`` URI, absolute path or a skill id under ``skills_dir`` -> directory (ValueError)."""
    uri = (uri or '').strip()
    if not uri:
        raise ValueError('skill_uri is empty: give a skill directory (file:// URI or path) or a skill id')
    u = urllib.parse.urlparse(uri)
    if u.scheme == 'file':
        path = pathlib.Path(urllib.parse.unquote(u.path))
    elif u.scheme:
        raise ValueError(f'skill_uri {uri!r}: only file:// URIs, paths or skill ids are supported')
    elif '/' in uri:
        path = pathlib.Path(uri).expanduser()
    else:
        path = skills_dir / uri
    if not path.is_dir():
        raise ValueError(f'no skill at {path} (skill_uri {uri!r})')
    return path


class PolicyNode(Node):

    def __init__(self) -> None:
        super().__init__('policy_node')
        from dexman_msgs.action import ExecuteSkill
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage
        from trajectory_msgs.msg import JointTrajectory
        from visualization_msgs.msg import MarkerArray

        from dexman_description.nodes.robot_state_publisher import TF_TOPIC, tf_qos
        self._ExecuteSkill, self._JointState, self._JointTrajectory = ExecuteSkill, JointState, JointTrajectory
        self._TFMessage, self._MarkerArray = TFMessage, MarkerArray
        self._declare()
        self.joint_state_pub = self.create_publisher(JointState, 'joint_states', reliable_qos(10))
        self.trajectory_pub = self.create_publisher(JointTrajectory, 'joint_trajectory', reliable_qos(10))
        self.tf_pub = self.create_publisher(TFMessage, TF_TOPIC, tf_qos())
        self.marker_pub = self.create_publisher(MarkerArray, 'markers', latched_qos(1))
        self.description_pub = self.create_publisher(String, 'robot_description', latched_qos(1))
        self.description_pub.publish(String(data=self.urdf))
        self._busy = threading.Lock()
        self._current = ''
        self._closing = False
        self._action = ActionServer(self, ExecuteSkill, 'execute_skill', execute_callback=self._execute,
                                    goal_callback=lambda _g: GoalResponse.ACCEPT,
                                    cancel_callback=lambda _h: CancelResponse.ACCEPT,
                                    callback_group=ReentrantCallbackGroup())
        self.get_logger().info(f'ready: execute_skill; robot model {self.robot_model_dir}; skills in '
                               f'{self.skills_dir}; rate {self.rate:g} Hz')

    def _declare(self) -> None:
        from dexman_common.config import ConfigError, config_dir, load_section
        from dexman_description import robot_model as rm
        from dexman_retarget.core import retarget_pipeline as rp
        from dexman_sim.config import SimConfig
        default_skills = str(rp.dexman_root() / 'artifacts' / 'skills')
        self.skills_dir = pathlib.Path(declare(
            self, 'skills_dir', default_skills, 'where a skill_uri that is a bare skill id is looked up (empty: '
            '<DEXMAN_ROOT>/artifacts/skills)', str, read_only=True) or default_skills).expanduser().resolve()
        model = declare(self, 'robot_model_dir', '',
                        'the installed robot-model build (empty: config/sim.yaml sim.robot_model_dir); a skill '
                        'trained on another build (manifest hash) is refused', str, read_only=True)
        self.rate = declare(self, 'rate', 30.0, 'playback rate, control steps per wall-clock second (0: as fast '
                            'as possible)', float, read_only=True)
        self.world_frame = declare(self, 'world_frame', 'world', 'parent frame of the object transforms', str,
                                   read_only=True)
        self.frame_prefix = declare(self, 'frame_prefix', '', 'prefix of the object frames (object_<n>, '
                                    'object_<n>_target), e.g. "sim/" beside a perception graph', str, read_only=True)
        if not (self.rate >= 0 and math.isfinite(self.rate)):
            raise ParamError(f"parameter 'rate' must be >= 0 (0: as fast as possible), got {self.rate}")
        if model:
            self.robot_model_dir = pathlib.Path(model).expanduser().resolve()
        else:
            try:
                self.robot_model_dir = load_section(SimConfig, config_dir() / 'sim.yaml').robot_model_path()
            except ConfigError as e:
                raise ParamError(f'config/sim.yaml: {e}') from None
        urdf = self.robot_model_dir / rm.URDF_NAME
        if not (self.robot_model_dir / rm.MANIFEST_NAME).is_file() or not urdf.is_file():
            raise ParamError(f"parameter 'robot_model_dir': {self.robot_model_dir} holds no robot-model build "
                             '(bash scripts/setup.sh builds artifacts/robot_model)')
        self.urdf = urdf.read_text()

    # ------------------------------------------------------------------ messages
    def _frame(self, i: int, target: bool = False) -> str:
        return f'{self.frame_prefix}object_{i}' + ('_target' if target else '')

    def _tf(self, step, stamp):
        from geometry_msgs.msg import Quaternion, Transform, TransformStamped, Vector3

        from dexman_common.geometry import quat_from_matrix
        out = []
        for poses, target in ((step.object_poses, False), (step.target_poses, True)):
            P = np.asarray(poses, float)
            q = quat_from_matrix(P[:, :3, :3])         # xyzw
            for i in range(len(P)):
                x, y, z = P[i, :3, 3].tolist()
                qx, qy, qz, qw = q[i].tolist()
                ts = TransformStamped(transform=Transform(translation=Vector3(x=x, y=y, z=z),
                                                          rotation=Quaternion(x=qx, y=qy, z=qz, w=qw)))
                ts.header.stamp, ts.header.frame_id = stamp, self.world_frame
                ts.child_frame_id = self._frame(i, target)
                out.append(ts)
        return self._TFMessage(transforms=out)

    def _markers(self, meshes: dict, n_objects: int):
        from geometry_msgs.msg import Point, Vector3
        from std_msgs.msg import ColorRGBA
        from visualization_msgs.msg import Marker
        arr = self._MarkerArray()
        clear = Marker(action=Marker.DELETEALL)
        arr.markers.append(clear)
        for i in range(n_objects):
            for ns, rgba, target in (('objects', OBJECT_RGBA, False), ('targets', TARGET_RGBA, True)):
                m = Marker(ns=ns, id=i, action=Marker.ADD, frame_locked=True)
                m.header.frame_id = self._frame(i, target)
                m.pose.orientation.w = 1.0
                m.color = ColorRGBA(r=rgba[0], g=rgba[1], b=rgba[2], a=rgba[3])
                mesh = meshes.get(i)
                if mesh is not None and len(mesh.faces):
                    v = np.asarray(mesh.vertices, float)[np.asarray(mesh.faces).ravel()]
                    m.type, m.scale = Marker.TRIANGLE_LIST, Vector3(x=1.0, y=1.0, z=1.0)
                    m.points = [Point(x=a, y=b, z=c) for a, b, c in v.tolist()]
                else:
                    m.type = Marker.SPHERE
                    m.scale = Vector3(x=FALLBACK_SPHERE_M, y=FALLBACK_SPHERE_M, z=FALLBACK_SPHERE_M)
                arr.markers.append(m)
        return arr

    def _publish_state(self, step, names) -> None:
        stamp = self.get_clock().now().to_msg()
        js = self._JointState(name=list(names), position=np.asarray(step.joint_positions, float).tolist())
        js.header.stamp = stamp
        self.joint_state_pub.publish(js)
        self.tf_pub.publish(self._tf(step, stamp))

    def _trajectory(self, names, times, positions):
        from trajectory_msgs.msg import JointTrajectoryPoint
        traj = self._JointTrajectory(joint_names=list(names))
        traj.header.frame_id = self.world_frame          # stamp 0: start on receipt
        traj.points = [JointTrajectoryPoint(positions=np.asarray(q, float).tolist(), time_from_start=_duration(t))
                       for t, q in zip(times, positions)]
        return traj

    # ------------------------------------------------------------------ action
    def _abort(self, goal_handle, message: str):
        self.get_logger().error(f'execute_skill: {message}')
        goal_handle.abort()
        return self._ExecuteSkill.Result(success=False, message=message)

    def _execute(self, goal_handle):
        req = goal_handle.request
        if not self._busy.acquire(blocking=False):
            return self._abort(goal_handle, f'busy: executing {self._current}; cancel it first')
        try:
            return self._run(goal_handle, req.skill_uri, bool(req.simulate))
        except Exception as e:  # noqa: BLE001 - keep serving
            import traceback
            self.get_logger().error(traceback.format_exc())
            return self._abort(goal_handle, f'internal error: {type(e).__name__}: {e}')
        finally:
            self._current = ''
            self._busy.release()

    def _open(self, uri: str, simulate: bool):
        """(stream, meshes {index: trimesh}) or raise ValueError with the reason."""
        from dexman_common.artefacts import skill as skm
        from dexman_common.config import ConfigError

        from ..core import skill_playback as sp
        from ..core import skill_stream as ss
        from ..core.success import SuccessConfig
        path = resolve_skill(uri, self.skills_dir)
        try:
            if simulate:
                player = sp.SkillPlayer.open(path, robot_model_dir=self.robot_model_dir)
                try:
                    stream = ss.SimulatedStream(player)
                except Exception:
                    player.close()
                    raise
                return stream, stream.meshes()
            skill = skm.load(path)
            success = SuccessConfig.from_dict(skill.config.get('success', {}))
            stream = ss.OpenLoopStream(skill, self.robot_model_dir, success)
            return stream, self._reference_meshes(skill)
        except (skm.SkillArtefactError, sp.SkillPlaybackError, ss.SkillStreamError, ConfigError) as e:
            raise ValueError(str(e)) from None

    def _reference_meshes(self, skill) -> dict:
        from dexman_common.artefacts import reference as refm
        d = skill.provenance.get('reference_dir')
        try:
            ref = refm.load(d)
            return {i: ref.load_mesh(o.id) for i, o in enumerate(ref.objects)}
        except Exception as e:  # noqa: BLE001 - markers only; the stream does not need them
            self.get_logger().warning(f'skill {skill.skill_id}: no object meshes for the markers ({e})')
            return {}

    def _run(self, goal_handle, uri: str, simulate: bool):
        Result, Feedback = self._ExecuteSkill.Result, self._ExecuteSkill.Feedback
        try:
            stream, meshes = self._open(uri, simulate)
        except ValueError as e:
            return self._abort(goal_handle, str(e))
        skill = stream.skill
        self._current = skill.skill_id
        mode = 'simulated' if simulate else 'open loop'
        self.get_logger().info(f'executing {skill.skill_id} ({mode}, {stream.total_steps} steps at {self.rate:g} Hz)')
        period = 1.0 / self.rate if self.rate > 0 else 0.0
        scale = (float(skill.control_rate) / self.rate) if self.rate > 0 else 1.0
        step_dt = period if period > 0 else stream.control_dt
        names = stream.joint_names
        k = 0
        try:
            first = stream.start()
            self.marker_pub.publish(self._markers(meshes, len(first.object_poses)))
            if not simulate:
                jn, tfs, q = stream.trajectory()
                self.trajectory_pub.publish(self._trajectory(jn, tfs * scale, q))
            self._publish_state(first, names)
            t0 = time.monotonic()
            while True:
                if goal_handle.is_cancel_requested:
                    goal_handle.canceled()
                    return Result(success=False, steps=k, message=f'cancelled at step {k}')
                if self._closing:
                    goal_handle.abort()
                    return Result(success=False, steps=k, message=f'the policy node shut down at step {k}')
                if period > 0:
                    delay = t0 + (k + 1) * period - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                st = stream.step(k + 1)
                if simulate:             # a one-point streaming command per step (module docstring)
                    command = st.command if st is not None else getattr(stream, 'last_command', None)
                    if command is not None:
                        self.trajectory_pub.publish(self._trajectory(stream.command_names, [step_dt],
                                                                     [stream.clip(command)]))
                if st is None:
                    break
                k += 1
                self._publish_state(st, names)
                goal_handle.publish_feedback(Feedback(
                    step=st.step, total_steps=stream.total_steps,
                    position_error=float(np.max(st.pos_err)) if len(st.pos_err) else 0.0,
                    rotation_error=float(np.max(st.rot_err)) if len(st.rot_err) else 0.0))
            res = stream.result
        finally:
            stream.close()
        out = Result(success=bool(res and res.success), steps=int(res.steps if res else k),
                     mean_rotation_error=float(res.e_r) if res else math.nan,
                     mean_position_error=float(res.e_t) if res else math.nan)
        out.message = (f'{skill.skill_id} ({mode}): {out.steps}/{stream.total_steps} steps, '
                       + ('success' if out.success else ('failed' if res and res.completed else
                                                         'ended early (an object left the tolerance)'))
                       + f'; E_t {out.mean_position_error:.4f} m, E_r {out.mean_rotation_error:.4f} rad')
        self.get_logger().info(out.message)
        goal_handle.succeed()
        return out

    def shutdown(self) -> None:
        self._closing = True


def main(args: list[str] | None = None) -> None:
    import torch
    torch.set_num_threads(1)
    run_node(PolicyNode, args, threads=default_executor_threads())


if __name__ == '__main__':
    main()
