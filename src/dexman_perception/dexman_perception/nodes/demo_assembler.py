"""demo_assembler: the perception graph's outputs -> one demonstration artefact (world frame).

    ros2 run dexman_perception demo_assembler --ros-args -p output_dir:=/data/demos \\
        -p demonstration_id:=pour_01 -p exit_when_done:=true

Collects (reliable, keep all) /dexman/hands (Hands3D), /dexman/objects (TrackedObjectArray);
(transient local) /dexman/object_meshes (ObjectMesh), /dexman/scene (SceneAlignment),
/dexman/playback/status, /dexman/perception/status; and /camera/camera_info (best effort, deep
history: it matches the player's best-effort and reliable publishers), whose stamps are the
frames of the bag. Every stamp seen is a frame of the demonstration; a frame without a stage's
output is recorded invalid (core.demo_assembly has the rules: tracked poses count when TRACKING,
or PREDICTED with confidence > 0 unless accept_predicted is false; meshes are scaled by the
tracker's scale). Settings: config_file [demo_assembly]; the parameters accept_predicted and
require_hands override it when set. /dexman/perception/config (transient local): what every stage
ran with (nodes/config_params.py), recorded with this assembly's settings in the demonstration's
provenance ('config').

It assembles once: when the bag player reported FINISHED and every stage in `wait_for_stages` is
STOPPED, or DONE with every per-frame output received (hands, tracking: as many messages as the
stage's frames_out); or when nothing new arrived for `finish_timeout_s` (then it goes on with
what it has and the report lists what it was still waiting for). It then
  * writes `<output_dir>/<demonstration_id>/` atomically (core.demonstration.save; an existing
    directory of that id is never replaced unless `overwrite`),
  * publishes dexman_msgs/DemonstrationInfo on /dexman/demonstration (transient local),
  * writes the JSON report to `report_path` (atomically; always, also when no demonstration could
    be made): per stage backend, state, frames in/out/invalid, invalid rate, message, messages
    received here; the demonstration's per-output counts; `written` and, if false, `reason`,
  * reports itself as stage 'assembler' on /dexman/perception/status (DONE, or STOPPED with the
    reason).

Exit status (with exit_when_done; otherwise it keeps spinning so the latched outputs stay
available): 0 a demonstration was written; 3 none could be made (the report says why: e.g. the
object stages stopped on an RGB-only video, no scene alignment); 2 bad parameters.

Default output_dir: $ROS_HOME/dexman/demonstrations ($ROS_HOME defaults to ~/.ros), beside the
mesh node's $ROS_HOME/dexman/meshes; default report: <output_dir>/<demonstration_id>.report.json;
default demonstration_id: <bag name>_<UTC time YYYYmmddTHHMMSSZ>.
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
import time
import urllib.parse

import rclpy
from rclpy.duration import Duration
from rclpy.node import Node

from dexman_msgs.msg import (DemonstrationInfo, Hands3D, ObjectMesh, PlaybackStatus, SceneAlignment,
                             StageStatus, TrackedObjectArray)
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import String

from dexman_common.artefacts import demonstration as dm
from dexman_common.atomic_io import write_json_atomic
from ..core.demo_assembly import DemoAssembly, DemoAssemblyConfig, ObjectObservation, stage_entry, tracked_pose_valid
from . import config_params
from . import perception_msgs as pm
from dexman_common.ros.node_util import ParamError, declare, latched_qos, reliable_keep_all_qos, run_main, sensor_qos
from .stage_node import PLAYBACK_TOPIC, STATUS_TOPIC

DEMO_TOPIC = '/dexman/demonstration'
STATE_NAMES = {StageStatus.STATE_WAITING: 'WAITING', StageStatus.STATE_RUNNING: 'RUNNING',
               StageStatus.STATE_DONE: 'DONE', StageStatus.STATE_STOPPED: 'STOPPED'}
PLAYBACK_NAMES = {PlaybackStatus.STATE_PLAYING: 'PLAYING', PlaybackStatus.STATE_FINISHED: 'FINISHED',
                  PlaybackStatus.STATE_ERROR: 'ERROR'}
PER_FRAME = {'hands': 'hands', 'tracking': 'objects'}      # stage -> per-frame topic counted here
EXIT_WRITTEN, EXIT_NOT_WRITTEN = 0, 3
_ID_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.\-]*$')


def default_output_dir() -> pathlib.Path:
    home = os.environ.get('ROS_HOME') or os.path.join(os.path.expanduser('~'), '.ros')
    return pathlib.Path(home) / 'dexman' / 'demonstrations'


def default_demonstration_id(bag_uri: str, now: datetime.datetime | None = None) -> str:
    """<bag name>_<UTC time>: the bag directory or file name without extension, sanitised."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    path = urllib.parse.urlparse(bag_uri).path if '://' in bag_uri else bag_uri
    name = pathlib.Path(path.rstrip('/')).name if path else ''
    name = re.sub(r'\.(mcap|db3)$', '', name)
    name = re.sub(r'[^A-Za-z0-9_.\-]+', '_', name).strip('._-') or 'demonstration'
    return f'{name}_{now.strftime("%Y%m%dT%H%M%SZ")}'


def _uri_path(uri: str) -> pathlib.Path | None:
    u = urllib.parse.urlparse(uri)
    if u.scheme not in ('', 'file') or not u.path:
        return None
    return pathlib.Path(urllib.parse.unquote(u.path))


class DemoAssembler(Node):

    def __init__(self) -> None:
        super().__init__('demo_assembler')
        out = declare(self, 'output_dir', '', 'root of the demonstration artefacts (each written atomically '
                      'into output_dir/<demonstration_id>/); empty: $ROS_HOME/dexman/demonstrations',
                      str, read_only=True)
        self.output_dir = (pathlib.Path(out).expanduser() if out else default_output_dir()).resolve()
        self.demo_id_param = declare(self, 'demonstration_id', '', 'id (and folder name) of the '
                                     'demonstration; empty: <bag name>_<UTC time>', str, read_only=True)
        if self.demo_id_param and not _ID_RE.match(self.demo_id_param):
            raise ParamError(f"parameter 'demonstration_id' must be letters, digits, '_', '.', '-' "
                             f'(not starting with . or -), got {self.demo_id_param!r}')
        rp = declare(self, 'report_path', '', 'JSON report (written atomically, also when no demonstration '
                     'could be made); empty: <output_dir>/<demonstration_id>.report.json', str, read_only=True)
        self.report_path_param = pathlib.Path(rp).expanduser() if rp else None
        self.finish_timeout_s = declare(self, 'finish_timeout_s', 120.0, 'assemble with what arrived when '
                                        'nothing new came for this long, s', float, read_only=True)
        self.settle_s = declare(self, 'settle_s', 1.0, 'once the stages are complete, longest extra wait for '
                                'camera_info stamps still in flight, s', float, read_only=True)
        self.exit_when_done = declare(self, 'exit_when_done', False, 'exit once assembled: 0 written, 3 not '
                                      '(the launch sets true); false keeps the latched outputs up', bool,
                                      read_only=True)
        self.wait_for_stages = declare(self, 'wait_for_stages', ['hands', 'tracking', 'mesh', 'scene'],
                                       'stages that must be DONE or STOPPED before assembling', list,
                                       read_only=True)
        self.config_file = config_params.declare_config_file(self)
        cfg = config_params.load_config(DemoAssemblyConfig, self.config_file)
        cfg = config_params.override(self, cfg, 'accept_predicted', 'count PREDICTED object poses (point '
                                     'tracks only) with confidence > 0 as valid; overrides config_file '
                                     '[demo_assembly]')
        cfg = config_params.override(self, cfg, 'require_hands', 'refuse a demonstration without a valid '
                                     'hand in any frame; overrides config_file [demo_assembly]')
        self.accept_predicted, self.require_hands = cfg.accept_predicted, cfg.require_hands
        self.overwrite = declare(self, 'overwrite', False, 'replace an existing demonstration of the same id '
                                 '(atomically); false: refuse, exit 3', bool, read_only=True)
        self.world_frame = declare(self, 'world_frame', 'world', 'name of the world frame', str, read_only=True)
        period = declare(self, 'status_period_s', 2.0, 'period of the StageStatus heartbeat, s', float,
                         read_only=True)
        if self.finish_timeout_s <= 0 or self.settle_s < 0:
            raise ParamError('finish_timeout_s must be > 0 and settle_s >= 0')

        self.asm = DemoAssembly(cfg)
        self.received = {'camera_info': 0, 'hands': 0, 'objects': 0, 'meshes': 0, 'scene': 0}
        self.mesh_msgs: dict[str, ObjectMesh] = {}
        self.scene: SceneAlignment | None = None
        self.playback: PlaybackStatus | None = None
        self.stages: dict[str, StageStatus] = {}
        self.frame_mismatch = 0          # per-frame messages in neither the camera nor the world frame
        self.last_progress = time.monotonic()
        self.complete_since: float | None = None
        self.result: int | None = None
        self.state, self.message = StageStatus.STATE_WAITING, ''
        self.frames_out = self.frames_invalid = 0

        self.info_pub = self.create_publisher(DemonstrationInfo, DEMO_TOPIC, latched_qos(1))
        self.status_pub = self.create_publisher(StageStatus, STATUS_TOPIC, latched_qos(1))
        rk = reliable_keep_all_qos()
        self.create_subscription(Hands3D, '/dexman/hands', self._on_hands, rk)
        self.create_subscription(TrackedObjectArray, '/dexman/objects', self._on_objects, rk)
        self.create_subscription(ObjectMesh, '/dexman/object_meshes', self._on_mesh, latched_qos(32))
        self.create_subscription(SceneAlignment, '/dexman/scene', self._on_scene, latched_qos(1))
        self.create_subscription(CameraInfo, '/camera/camera_info', self._on_info, sensor_qos(1000))
        self.create_subscription(PlaybackStatus, PLAYBACK_TOPIC, self._on_playback, latched_qos(1))
        self.create_subscription(StageStatus, STATUS_TOPIC, self._on_status, latched_qos(50))
        self.create_subscription(String, config_params.CONFIG_TOPIC, self._on_config, latched_qos(50))
        self.create_timer(max(0.1, period), self.publish_status)
        self.publish_status()
        self.get_logger().info(f'assembling into {self.output_dir}; waiting for the bag to finish and the '
                               f'stages {self.wait_for_stages}')

    # ------------------------------------------------------------------------------ inputs
    def _progress(self) -> None:
        self.last_progress = time.monotonic()
        if self.state == StageStatus.STATE_WAITING:
            self.state = StageStatus.STATE_RUNNING

    def _in_world(self, header) -> bool:
        if header.frame_id == self.world_frame:
            return True
        if self.scene is not None and self.scene.camera_frame and header.frame_id != self.scene.camera_frame:
            self.frame_mismatch += 1
        return False

    def _on_info(self, msg: CameraInfo) -> None:
        if self.result is not None:
            return
        self.received['camera_info'] += 1
        self.asm.add_frame(pm.stamp_ns(msg.header))
        if self.asm.K is None:
            try:
                self.asm.set_intrinsics(pm.K_of(msg))
            except ValueError as e:
                self.message = f'camera_info: {e}'
        self._progress()

    def _on_hands(self, msg: Hands3D) -> None:
        if self.result is not None:
            return
        self.received['hands'] += 1
        kp, valid, wrists = pm.hands_arrays(msg)
        self.asm.add_hands(pm.stamp_ns(msg.header), kp, valid, wrists, in_world=self._in_world(msg.header))
        self._progress()

    def _on_objects(self, msg: TrackedObjectArray) -> None:
        if self.result is not None:
            return
        self.received['objects'] += 1
        obs = []
        for o in msg.objects:
            T = pm.matrix(o.pose)
            obs.append(ObjectObservation(
                id=o.id, T=T, label=o.label, status=int(o.status), confidence=float(o.confidence),
                scale=float(o.scale) if o.scale > 0 else 1.0,
                valid=tracked_pose_valid(int(o.status), float(o.confidence), T,
                                         accept_predicted=self.accept_predicted)))
        self.asm.add_objects(pm.stamp_ns(msg.header), obs, in_world=self._in_world(msg.header))
        self._progress()

    def _on_mesh(self, msg: ObjectMesh) -> None:
        self.received['meshes'] += 1
        self.mesh_msgs[msg.id] = msg
        self._progress()

    def _on_scene(self, msg: SceneAlignment) -> None:
        self.received['scene'] += 1
        self.scene = msg
        try:
            self.asm.set_scene(pm.matrix(msg.world_from_camera), pm.array(msg.table_point),
                               [msg.table_normal.x, msg.table_normal.y, msg.table_normal.z])
        except ValueError as e:
            self.message = f'bad scene alignment: {e}'
            self.get_logger().error(self.message)
        self._progress()

    def _on_config(self, msg: String) -> None:
        if self.result is not None:
            return
        try:
            rec = json.loads(msg.data)
            self.asm.set_stage_config(rec['stage'], rec)
        except (ValueError, KeyError, TypeError) as e:
            self.get_logger().error(f'bad message on {config_params.CONFIG_TOPIC}: {e}')

    def _on_playback(self, msg: PlaybackStatus) -> None:
        if self.playback is None or (msg.state, msg.frames_published) != (
                self.playback.state, self.playback.frames_published):
            self._progress()
        self.playback = msg

    def _on_status(self, msg: StageStatus) -> None:
        if msg.node == self.get_fully_qualified_name() or msg.stage == 'assembler':
            return
        old = self.stages.get(msg.stage)
        if old is None or (old.state, old.frames_out) != (msg.state, msg.frames_out):
            self._progress()
        self.stages[msg.stage] = msg

    # ------------------------------------------------------------------------------ end of bag
    def waiting_for(self) -> list[str]:
        """What assembling still waits for (empty: ready)."""
        out = []
        pb = self.playback
        if pb is None:
            out.append('the bag player (no PlaybackStatus yet)')
        elif pb.state == PlaybackStatus.STATE_PLAYING:
            out.append(f'the bag player to finish ({pb.frames_published}/{pb.frames_total} frames)')
        for stage in self.wait_for_stages:
            st = self.stages.get(stage)
            if st is None:
                out.append(f'{stage} (no status)')
            elif st.state == StageStatus.STATE_STOPPED:
                continue
            elif st.state != StageStatus.STATE_DONE:
                out.append(f'{stage} ({STATE_NAMES.get(st.state, st.state)})')
            elif stage in PER_FRAME and self.received[PER_FRAME[stage]] < st.frames_out:
                out.append(f'{stage} outputs ({self.received[PER_FRAME[stage]]}/{st.frames_out} received)')
        return out

    def tick(self) -> int | None:
        """Assemble when ready or timed out; returns the exit code once done."""
        if self.result is not None:
            return self.result
        now = time.monotonic()
        waiting = self.waiting_for()
        if not waiting:
            pb = self.playback
            frames_total = pb.frames_total if pb is not None and pb.state == PlaybackStatus.STATE_FINISHED else 0
            if self.complete_since is None:
                self.complete_since = now
            if self.received['camera_info'] < frames_total and now - self.complete_since < self.settle_s:
                return None
            return self.conclude(waiting=[], timed_out=False)
        self.complete_since = None
        if now - self.last_progress > self.finish_timeout_s:
            self.get_logger().warning(f'nothing new for {self.finish_timeout_s:g} s; assembling with what '
                                      f'arrived (still waiting for: {"; ".join(waiting)})')
            return self.conclude(waiting=waiting, timed_out=True)
        return None

    # ------------------------------------------------------------------------------ assemble
    def _load_meshes(self) -> list[str]:
        problems = []
        for oid, msg in self.mesh_msgs.items():
            try:
                if len(msg.vertices) and len(msg.triangles):
                    mesh = pm.mesh_of(msg)
                else:
                    import trimesh
                    path = _uri_path(msg.mesh_resource)
                    if path is None or not path.is_file():
                        raise ValueError(f'no geometry in the message and no file at {msg.mesh_resource!r}')
                    mesh = trimesh.load(path, force='mesh', process=False)
                self.asm.set_mesh(oid, mesh, label=msg.label, metric=msg.metric, source=msg.mesh_resource)
            except Exception as e:  # noqa: BLE001 - one bad mesh: that object is dropped, with the reason
                problems.append(f'{oid}: unusable mesh: {e}')
        return problems

    def _stage_report(self) -> dict:
        out = {}
        names = list(dict.fromkeys(['segmentation', 'depth', 'hands', 'body', 'mesh', 'tracking', 'scene',
                                    *self.wait_for_stages, *self.stages]))
        for stage in names:
            st = self.stages.get(stage)
            topic = PER_FRAME.get(stage)
            received = self.received[topic] if topic else None
            if st is None:
                out[stage] = stage_entry(stage=stage, state='MISSING', received=received,
                                         message='no status received')
                continue
            out[stage] = stage_entry(stage=stage, backend=st.backend, node=st.node,
                                     state=STATE_NAMES.get(st.state, str(st.state)), frames_in=st.frames_in,
                                     frames_out=st.frames_out, frames_invalid=st.frames_invalid,
                                     message=st.message, received=received)
        return out

    def _stopped_summary(self) -> str:
        out = ''
        if self.playback is not None and self.playback.state == PlaybackStatus.STATE_ERROR:
            out += f'; the bag player failed: {self.playback.message}'
        stopped = [f'{s}: {st.message}' for s, st in self.stages.items() if st.state == StageStatus.STATE_STOPPED]
        return out + ('; stopped stages -- ' + ' | '.join(stopped) if stopped else '')

    def conclude(self, *, waiting: list[str], timed_out: bool) -> int:
        pb = self.playback
        bag_uri = pb.bag_uri if pb is not None else ''
        demo_id = self.demo_id_param or default_demonstration_id(bag_uri)
        report_path = self.report_path_param or (self.output_dir / f'{demo_id}.report.json')
        mesh_problems = self._load_meshes()
        report = {
            'demonstration_id': demo_id, 'written': False, 'reason': '', 'path': '',
            'output_dir': str(self.output_dir), 'source_uri': bag_uri,
            'playback': None if pb is None else {
                'state': PLAYBACK_NAMES.get(pb.state, str(pb.state)), 'frames_published': int(pb.frames_published),
                'frames_total': int(pb.frames_total), 'message': pb.message},
            'timed_out': timed_out, 'waiting_for': waiting, 'received': dict(self.received),
            'config_file': self.config_file, 'stage_configs_received': sorted(self.asm.stage_configs),
            'stages': self._stage_report(), 'mesh_problems': mesh_problems,
            'messages_in_unknown_frame': self.frame_mismatch,
            'scene': None if self.scene is None else {
                'camera_frame': self.scene.camera_frame, 'facing_angle': self.scene.facing_angle,
                'y_shift': self.scene.y_shift, 'reach_fits': self.scene.reach_fits, 'note': self.scene.note},
        }
        code = EXIT_NOT_WRITTEN
        try:
            final = self.output_dir / demo_id
            if final.exists() and not self.overwrite:
                raise dm.DemonstrationError(f'{final} already exists (set overwrite:=true or another '
                                            'demonstration_id); it was left as it was')
            prov = {'source': 'perception', 'bag_uri': bag_uri, 'assembler': self.get_fully_qualified_name(),
                    'assembled_at': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
                    'backends': {s: st.backend for s, st in self.stages.items()},
                    'timed_out': timed_out}
            if self.scene is not None:
                prov['scene'] = report['scene']
            demo, meshes = self.asm.build(demo_id, source_uri=bag_uri, provenance=prov)
            path = dm.save(demo, self.output_dir, meshes)
            report.update(written=True, path=str(path))
            self._publish_info(demo, path, bag_uri)
            self.frames_out = demo.n_frames
            valid = int(demo.object_valid.all(axis=0).sum())
            self.frames_invalid = demo.n_frames - valid
            self.state = StageStatus.STATE_DONE
            self.message = (f'{demo.n_frames} frames ({valid} with every object tracked), '
                            f'{len(demo.objects)} object(s) -> {path}')
            self.get_logger().info(f'demonstration {demo_id}: {self.message}')
            code = EXIT_WRITTEN
        except (dm.DemonstrationError, ValueError, OSError) as e:
            reason = f'{e}{self._stopped_summary()}'
            if timed_out:
                reason += f'; timed out after {self.finish_timeout_s:g} s waiting for: {"; ".join(waiting)}'
            report['reason'] = reason
            self.state, self.message = StageStatus.STATE_STOPPED, f'no demonstration: {reason}'
            self.get_logger().error(f'no demonstration written: {reason}')
        report['summary'] = self.asm.summary()
        try:
            write_json_atomic(report_path, report)
            self.get_logger().info(f'report: {report_path}')
        except OSError as e:
            self.get_logger().error(f'cannot write the report {report_path}: {e}')
        self.report = report
        self.result = code
        self.publish_status()
        return code

    def _publish_info(self, demo, path: pathlib.Path, bag_uri: str) -> None:
        msg = DemonstrationInfo(
            header=pm.header(self.get_clock().now().nanoseconds, self.world_frame),
            demonstration_id=demo.demonstration_id, artefact_uri=path.resolve().as_uri() + '/',
            source_uri=bag_uri, frame_count=demo.n_frames,
            valid_frame_count=int(demo.object_valid.all(axis=0).sum()), frame_rate=float(demo.fps),
            object_ids=[o.id for o in demo.objects], has_left_hand=bool(demo.hand_valid[0].any()),
            has_right_hand=bool(demo.hand_valid[1].any()))
        self.info_pub.publish(msg)

    def publish_status(self) -> None:
        self.status_pub.publish(StageStatus(
            header=pm.header(self.get_clock().now().nanoseconds, ''), stage='assembler',
            node=self.get_fully_qualified_name(), backend='demo_assembly', state=self.state,
            frames_in=self.received['camera_info'], frames_out=self.frames_out,
            frames_invalid=self.frames_invalid, message=self.message))


def _wait_acked(node: DemoAssembler, timeout: float = 2.0) -> None:
    """Give the latched outputs a moment to reach matched subscribers before exiting."""
    deadline = time.monotonic() + timeout
    pubs = [p for p in (node.info_pub, node.status_pub) if p.get_subscription_count() > 0]
    for p in pubs:
        try:
            p.wait_for_all_acked(Duration(seconds=max(0.0, deadline - time.monotonic())))
        except Exception:  # noqa: BLE001
            pass


def _run() -> int:
    node = DemoAssembler()
    try:
        while rclpy.ok():
            rclpy.spin_once(node, timeout_sec=0.1)
            code = node.tick()
            if code is not None and node.exit_when_done:
                _wait_acked(node)
                return code
        return 0
    finally:
        node.destroy_node()


def main(args: list[str] | None = None) -> None:
    run_main(_run, args)


if __name__ == '__main__':
    main()
