"""StageNode: the shell every perception stage node shares (inputs, backend, health, end of bag).

A stage node subscribes to its per-frame inputs, joins them by exact stamp (core.stamp_sync),
calls its ROS-free backend once per frame and publishes one output per input frame -- also for
a frame it cannot handle (no hand, lost object, NaN depth): that output is marked invalid and
counted, the node keeps running. Health goes to /dexman/perception/status
(dexman_msgs/StageStatus, transient local): WAITING, RUNNING, DONE (the bag finished and every
frame was handled), STOPPED (the stage cannot run here -- missing backend package, checkpoint or
input such as depth -- with a message naming what it needs; the node stays up so late joiners
see why).

Inputs are declared with their producer: 'bag' (the bag player's topics) or a stage name. A
required input whose stage STOPPED stops this node too; an optional one is then dropped from
the join. End of bag: when the player reported FINISHED, every primary frame arrived and every
producer stage is DONE with as many outputs as this node received, the join is flushed and
`finish()` runs (batch backends work there).

QoS of inputs: `input_reliability` reliable (default; keep-all, so offline playback loses
nothing: the bag player with rate:=0 waits for the slowest stage) or best_effort (sensor data,
live cameras). Outputs: reliable, keep-all.

Parameters common to all stages: backend, backend_options (key=value strings, YAML-typed values,
passed to the backend constructor; for a backend with a config section they override the
section's values), config_file (the algorithm settings, config/perception.yaml: each stage loads
the sections of the algorithms it runs, see nodes/config_params.py for the precedence),
input_reliability, status_period_s, camera_info_topic (K from the latest CameraInfo; frames wait
for the first one). What the stage ran with is published on /dexman/perception/config.
"""
from __future__ import annotations

import collections
import dataclasses
import time
import traceback
from typing import Any, Callable

import rclpy
import yaml
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import String

from dexman_common.config import ConfigBase, ConfigError
from dexman_msgs.msg import PlaybackStatus, StageStatus

from ..core.backends import registry
from ..core.stages import BackendUnavailable, StageFailure
from ..core.stamp_sync import StampSync
from . import config_params
from .perception_msgs import K_of, stamp_ns
from dexman_common.ros.node_util import ParamError, declare, latched_qos, reliable_keep_all_qos, sensor_qos

STATUS_TOPIC = '/dexman/perception/status'
FLUSH_GRACE_S = 1.0   # s: longest wait for bag messages still in flight at the end
PLAYBACK_TOPIC = '/dexman/playback/status'


@dataclasses.dataclass
class Input:
    name: str
    topic: str
    msg_type: Any
    producer: str = 'bag'        # 'bag' or the stage name that publishes it
    required: bool = True


def parse_options(items: list[str]) -> dict[str, Any]:
    """['checkpoint=/x.pt', 'device=cuda', 'num_hands=2'] -> {'checkpoint': '/x.pt', ...}."""
    out = {}
    for it in items:
        if not it.strip():
            continue
        key, sep, val = it.partition('=')
        if not sep or not key.strip():
            raise ParamError(f'backend_options entries are key=value, got {it!r}')
        try:
            out[key.strip()] = yaml.safe_load(val) if val.strip() else ''
        except yaml.YAMLError:
            out[key.strip()] = val
    return out


class StageNode(Node):
    """Base class; subclasses call `setup_inputs`, implement `process(stamp, inputs, missing)`
    and optionally `finish()`."""

    def __init__(self, node_name: str, stage: str, *, backend_stage: str | None = None,
                 default_backend: str | None = None, backend_choices: list[str] | None = None) -> None:
        super().__init__(node_name)
        self.stage = stage
        backend_stage = backend_stage or stage
        self.backend_stage = backend_stage
        choices = backend_choices or list(registry.BACKENDS.get(backend_stage, {}))
        default_backend = default_backend or choices[0]
        self.backend_name = declare(self, 'backend', default_backend,
                                    f'{stage} backend, one of {choices} (first = embedded CPU default)')
        if self.backend_name not in choices:
            raise ParamError(f'unknown {stage} backend {self.backend_name!r}; choose one of {choices}')
        self.backend_options = parse_options(declare(
            self, 'backend_options', [], 'key=value options for the backend constructor '
            '(e.g. checkpoint=/path/model.pt, device=cuda); values are YAML-typed', list))
        rel = declare(self, 'input_reliability', 'reliable',
                      'reliable (keep all: lossless offline playback) or best_effort (sensor data)')
        if rel not in ('reliable', 'best_effort'):
            raise ParamError(f"input_reliability must be 'reliable' or 'best_effort', got {rel!r}")
        self.input_qos = reliable_keep_all_qos() if rel == 'reliable' else sensor_qos(10)
        period = declare(self, 'status_period_s', 2.0, 'period of the StageStatus heartbeat, s')
        info_topic = declare(self, 'camera_info_topic', '/camera/camera_info',
                             'sensor_msgs/CameraInfo of the colour images (intrinsics K)')
        self.config_file = config_params.declare_config_file(self)
        self.configs: dict[str, dict] = {}      # section -> values the stage runs with
        self._config_pub = self.create_publisher(String, config_params.CONFIG_TOPIC, latched_qos(1))

        self.state = StageStatus.STATE_WAITING
        self.message = ''
        self.frames_in = self.frames_out = self.frames_invalid = 0
        self.counts: dict[str, int] = {}
        self.inputs: dict[str, Input] = {}
        self.sync: StampSync | None = None
        self.playback: PlaybackStatus | None = None
        self.producers: dict[str, StageStatus] = {}
        self.waits_for: dict[str, bool] = {}    # stage -> required; must be DONE/STOPPED before finish()
        self.finished = False
        self._last_error_log = 0.0
        self._status_pub = self.create_publisher(StageStatus, STATUS_TOPIC, latched_qos(1))
        self.create_subscription(PlaybackStatus, PLAYBACK_TOPIC, self._on_playback, latched_qos(1))
        self.create_subscription(StageStatus, STATUS_TOPIC, self._on_stage_status, latched_qos(50))
        self.camera_info = None
        self.needs_camera_info = True     # frames wait for the first CameraInfo
        self.status_every_frame = False   # publish StageStatus after every frame (progress others wait on)
        self._backlog: collections.deque = collections.deque()
        self.create_subscription(CameraInfo, info_topic, self._on_camera_info, self.input_qos)
        self.create_timer(max(0.1, period), self.publish_status)
        self._last_input = time.monotonic()
        self._last_wait_log = 0.0
        self.create_timer(0.25, self._check_finished)

    # ------------------------------------------------------------------------------ set-up
    def create_backend(self, stage: str | None = None, name: str | None = None,
                       options: dict | None = None, **extra):
        """The configured backend, or None after stopping the node with the reason. options:
        the key=value options (default: backend_options). A backend with a config section
        (its class's CONFIG) gets it from config_file, the options overriding its values; the
        config it ends up with is recorded (`record_config`)."""
        stage, name = stage or self.backend_stage, name or self.backend_name
        options = self.backend_options if options is None else options
        try:
            cls = registry.backend_class(stage, name)
            kwargs = {**options, **extra}
            config_cls = getattr(cls, 'CONFIG', None)
            if config_cls is not None:
                kwargs['config'] = self.load_config(config_cls)
            backend = cls(**kwargs)
        except BackendUnavailable as e:
            self.stop(f'{stage} backend {name!r} cannot run here: {e}')
            return None
        except (TypeError, ConfigError) as e:
            self.stop(f'{stage} backend {name!r}: bad backend options {options}: {e}')
            return None
        if isinstance(getattr(backend, 'config', None), ConfigBase):
            self.record_config(backend.config)
        return backend

    def load_config(self, cls: type[ConfigBase]) -> ConfigBase:
        """``cls`` from its section of `config_file` (ParamError naming the file and key)."""
        return config_params.load_config(cls, self.config_file)

    def record_config(self, config: ConfigBase) -> None:
        """Note that this stage runs with ``config`` (its section) and publish the record."""
        self.configs[config.SECTION] = config.to_dict()
        self.publish_config()

    def publish_config(self) -> None:
        self._config_pub.publish(String(data=config_params.config_message(
            stage=self.stage, node=self.get_fully_qualified_name(), backend=self.backend_name,
            backend_options=self.backend_options, config_file=self.config_file, sections=self.configs)))

    def setup_inputs(self, inputs: list[Input], primary: str | None = None) -> None:
        self.inputs = {i.name: i for i in inputs}
        self.sync = StampSync([i.name for i in inputs if i.required],
                              [i.name for i in inputs if not i.required], primary=primary)
        self.counts = {i.name: 0 for i in inputs}
        for i in inputs:
            self.create_subscription(i.msg_type, i.topic, self._input_cb(i.name), self.input_qos)
        self.publish_config()
        self.publish_status()     # ready: the bag player may start (wait_for_stages)

    def K(self):
        """Intrinsics (3, 3) of the latest CameraInfo; StageFailure (frame invalid) before the first."""
        if self.camera_info is None:
            raise StageFailure('no CameraInfo received yet (intrinsics unknown)')
        try:
            return K_of(self.camera_info)
        except ValueError as e:
            raise StageFailure(str(e)) from None

    def _on_camera_info(self, msg) -> None:
        first = self.camera_info is None
        self.camera_info = msg
        if first and self._backlog:
            self._run([])
            self._check_finished()

    def depends_on(self, stage: str, required: bool = True) -> None:
        """A stage whose output is not per frame (e.g. meshes): finish() waits until it is DONE
        or STOPPED; a required one that STOPPED stops this node."""
        self.waits_for[stage] = required

    def stage_finished(self, stage: str) -> bool:
        st = self.producers.get(stage)
        return st is not None and st.state in (StageStatus.STATE_DONE, StageStatus.STATE_STOPPED)

    def output_qos(self):
        return reliable_keep_all_qos()

    # ------------------------------------------------------------------------------ hooks
    def process(self, stamp: int, inputs: dict[str, Any], missing: list[str]) -> bool:
        """Handle one frame and publish its output; return False when the output is invalid.
        Raise StageFailure to have `publish_invalid` called with the reason."""
        raise NotImplementedError

    def publish_invalid(self, stamp: int, inputs: dict[str, Any], reason: str) -> None:
        """Publish this frame's output marked invalid (default: nothing)."""

    def finish(self) -> None:
        """End of bag, after the last frame (batch backends run here)."""

    def busy(self) -> bool:
        """True while frames handed to `process` still wait inside the node (e.g. for another
        stage's output): finish() and DONE wait for them."""
        return False

    # ------------------------------------------------------------------------------ health
    def stop(self, message: str) -> None:
        if self.state == StageStatus.STATE_STOPPED:
            return
        self.state, self.message = StageStatus.STATE_STOPPED, message
        self.get_logger().error(f'{self.stage} stage stopped: {message}')
        self.publish_status()

    @property
    def stopped(self) -> bool:
        return self.state == StageStatus.STATE_STOPPED

    def publish_status(self) -> None:
        self._status_pub.publish(StageStatus(
            header=self._now_header(), stage=self.stage, node=self.get_fully_qualified_name(),
            backend=self.backend_name, state=self.state, frames_in=self.frames_in,
            frames_out=self.frames_out, frames_invalid=self.frames_invalid, message=self.message))

    def _now_header(self):
        from std_msgs.msg import Header
        return Header(stamp=self.get_clock().now().to_msg(), frame_id='')

    def warn_frame(self, reason: str) -> None:
        self.message = reason
        now = time.monotonic()
        if now - self._last_error_log > 5.0:
            self._last_error_log = now
            self.get_logger().warning(f'frame marked invalid: {reason}')

    # ------------------------------------------------------------------------------ plumbing
    def _input_cb(self, name: str) -> Callable[[Any], None]:
        def cb(msg) -> None:
            if self.stopped or self.sync is None:
                return
            self.counts[name] += 1
            self._last_input = time.monotonic()
            if name == self.sync.primary:
                self.frames_in += 1
            self._run(self.sync.put(name, stamp_ns(msg.header), msg))
            self._check_finished()
        return cb

    def _run(self, frames) -> None:
        """Process released frames in order; they wait in a backlog until the first CameraInfo
        has arrived (it may trail the first image by a moment), or the bag has finished."""
        self._backlog.extend(frames)
        while self._backlog and not self.stopped:
            if self.needs_camera_info and self.camera_info is None and not self._bag_finished():
                return
            stamp, got, missing = self._backlog.popleft()
            if self.state == StageStatus.STATE_WAITING:
                self.state = StageStatus.STATE_RUNNING
                self.publish_status()
            try:
                ok = self.process(stamp, got, missing)
            except StageFailure as e:
                ok = False
                self.warn_frame(str(e))
                self._safe_invalid(stamp, got, str(e))
            except Exception as e:  # noqa: BLE001 - one bad frame must not end the stage
                ok = False
                self.get_logger().error(f'frame {stamp}: {type(e).__name__}: {e}\n{traceback.format_exc(limit=4)}')
                self.message = f'{type(e).__name__}: {e}'
                self._safe_invalid(stamp, got, f'{type(e).__name__}: {e}')
            self.frames_out += 1
            self.frames_invalid += 0 if ok else 1
            if self.status_every_frame:
                self.publish_status()

    def _bag_finished(self) -> bool:
        return self.playback is not None and self.playback.state == PlaybackStatus.STATE_FINISHED

    def _safe_invalid(self, stamp, got, reason) -> None:
        try:
            self.publish_invalid(stamp, got, reason)
        except Exception as e:  # noqa: BLE001
            self.get_logger().error(f'cannot publish the invalid output of frame {stamp}: {e}')

    def _on_playback(self, msg: PlaybackStatus) -> None:
        self.playback = msg
        if msg.state == PlaybackStatus.STATE_ERROR:
            self.stop(f'the bag player failed: {msg.message}')
        self._check_finished()

    def _on_stage_status(self, msg: StageStatus) -> None:
        if msg.node == self.get_fully_qualified_name():
            return
        self.producers[msg.stage] = msg
        if msg.state == StageStatus.STATE_STOPPED and self.waits_for.get(msg.stage) and not self.stopped:
            self.stop(f'needs the {msg.stage} stage, which stopped: {msg.message}')
            return
        if msg.state == StageStatus.STATE_STOPPED and self.sync is not None and not self.stopped:
            for i in self.inputs.values():
                if i.producer != msg.stage:
                    continue
                if i.required:
                    self.stop(f'needs {i.topic} from the {msg.stage} stage, which stopped: {msg.message}')
                    return
                if i.name not in self.sync.absent:
                    self.get_logger().warning(f'{msg.stage} stage stopped; going on without {i.topic}')
                    self._run(self.sync.set_absent(i.name))
        self._check_finished()

    def _inputs_complete(self) -> bool:
        why = self.waiting_for()
        if why and self._bag_finished() and time.monotonic() - self._last_wait_log > 10.0:
            self._last_wait_log = time.monotonic()
            self.get_logger().info(f'end of bag: still waiting for {why}')
        return not why

    def waiting_for(self) -> str:
        """What the end of this stage still waits for ('' when every input is in)."""
        pb = self.playback
        if pb is None or pb.state != PlaybackStatus.STATE_FINISHED or self.sync is None:
            return 'the bag player to finish'
        for s in self.waits_for:
            if not self.stage_finished(s):
                return f'the {s} stage to finish'
        n_primary = self.counts[self.sync.primary]
        for i in self.inputs.values():
            if i.producer == 'bag':
                if i.name == self.sync.primary and self.counts[i.name] < pb.frames_total:
                    return f'{i.topic}: {self.counts[i.name]} of {pb.frames_total} images'
                # another bag topic (depth) has no known count: the player publishes it right after
                # each image, and FINISHED may overtake the last ones; wait for as many as images,
                # at most FLUSH_GRACE_S after the last input (a bag may hold fewer)
                if (i.name != self.sync.primary and 0 < self.counts[i.name] < n_primary
                        and time.monotonic() - self._last_input < FLUSH_GRACE_S):
                    return f'{i.topic}: {self.counts[i.name]} of {n_primary} messages in flight'
                continue
            st = self.producers.get(i.producer)
            if st is None:
                return f'a status of the {i.producer} stage'
            if st.state == StageStatus.STATE_STOPPED:
                continue
            if st.state != StageStatus.STATE_DONE:
                return f'the {i.producer} stage to finish'
            if self.counts[i.name] < st.frames_out:
                return f'{i.topic}: {self.counts[i.name]} of {st.frames_out} messages'
        return ''

    def _check_finished(self) -> None:
        if self.finished or self.stopped or not self._inputs_complete():
            return
        self._run(self.sync.flush())
        if self._backlog or self.busy():
            return
        self.finished = True
        try:
            self.finish()
        except StageFailure as e:
            self.stop(str(e))
            return
        if not self.stopped:
            self.state = StageStatus.STATE_DONE
            self.get_logger().info(f'{self.stage}: done, {self.frames_out} frames '
                                   f'({self.frames_invalid} invalid)')
            self.publish_status()


def spin_stage(make_node) -> int:
    """Create the node, spin until shutdown, close its backend."""
    node = make_node()
    try:
        rclpy.spin(node)
    except Exception:  # noqa: BLE001
        if rclpy.ok():
            raise
        # Ctrl-C while rclpy takes a message: the take fails on the context being shut down
        # ("Unable to convert call argument"), which is the requested shutdown, not an error
    finally:
        from dexman_common.ros.node_util import ignore_further_sigint
        ignore_further_sigint()
        close = getattr(node, 'close', None)
        if callable(close):
            close()
        node.destroy_node()
    return 0


def run_stage(make_node, args: list[str] | None = None) -> None:
    """main() of a stage node: rclpy.init, spin `make_node()` until shutdown, exit status."""
    from dexman_common.ros.node_util import run_main
    run_main(lambda: spin_stage(make_node), args)
