"""Small rclpy helpers shared by every node: QoS profiles, documented parameters,
message type import, and a main() wrapper that turns shutdown and errors into exit codes."""
from __future__ import annotations

import importlib
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import rclpy
from rcl_interfaces.msg import ParameterDescriptor, ParameterType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy


class ParamError(ValueError):
    """A parameter has a value of the wrong type or outside its range."""


# --------------------------------------------------------------------------------------- QoS


def sensor_qos(depth: int = 5) -> QoSProfile:
    """Sensor data: best effort, volatile, keep last ``depth`` (rclpy's qos_profile_sensor_data)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def reliable_qos(depth: int = 10) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def reliable_keep_all_qos() -> QoSProfile:
    """Reliable and keep-all: a subscriber that never loses a sample to a full history
    (the writer is throttled instead)."""
    return QoSProfile(history=HistoryPolicy.KEEP_ALL, depth=1000,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos(depth: int = 1) -> QoSProfile:
    """Reliable + transient local: late subscribers get the last ``depth`` messages."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


# -------------------------------------------------------------------------------- parameters

class FloatList(list):
    """`kind` of a double-array parameter (declare(..., kind=FloatList))."""


_PTYPE = {FloatList: ParameterType.PARAMETER_DOUBLE_ARRAY, float: ParameterType.PARAMETER_DOUBLE, int: ParameterType.PARAMETER_INTEGER,
          bool: ParameterType.PARAMETER_BOOL, str: ParameterType.PARAMETER_STRING,
          list: ParameterType.PARAMETER_STRING_ARRAY}
_TRUE, _FALSE = {'true', 'yes', 'on', '1'}, {'false', 'no', 'off', '0'}


def _coerce(name: str, value: Any, kind: type) -> Any:
    if kind is FloatList:
        vals = list(value) if isinstance(value, (list, tuple)) else [value]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
            return [float(v) for v in vals]
        raise ParamError(f'parameter {name!r} must be a list of numbers, got {value!r}')
    if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind is bool and isinstance(value, str) and value.lower() in _TRUE | _FALSE:
        return value.lower() in _TRUE
    if kind is bool and isinstance(value, int) and value in (0, 1):
        return bool(value)
    if kind in (list, FloatList) and value is None:     # an empty list in a parameter file
        return []
    if kind is list and isinstance(value, str):
        return [value] if value else []
    if kind is list and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return list(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    what = 'a list of strings' if kind is list else f'a {kind.__name__}'
    raise ParamError(f'parameter {name!r} must be {what}, got {value!r}')


def declare(node, name: str, default: Any, description: str, kind: type | None = None,
            *, read_only: bool = False) -> Any:
    """Declare a parameter with a description and return its value as ``kind``.

    ``kind`` (float, int, bool, str, list for a string array, FloatList for a double array) defaults to the type of
    ``default``. An override of a compatible type (``rate:=1`` for a double) is accepted and
    converted; anything else is a :class:`ParamError` with a readable message.
    """
    kind = kind or (list if isinstance(default, (list, tuple)) else type(default))
    desc = ParameterDescriptor(description=description, type=_PTYPE[kind], read_only=read_only)
    try:
        param = node.declare_parameter(name, default, desc)
    except (InvalidParameterTypeException, InvalidParameterValueException):
        desc = ParameterDescriptor(description=description, dynamic_typing=True,
                                   read_only=read_only)
        try:
            param = node.declare_parameter(name, default, desc)
        except Exception as err:  # noqa: BLE001
            raise ParamError(f'parameter {name!r}: {err}') from None
    return _coerce(name, param.value, kind)


# ------------------------------------------------------------------------------------ types


def import_message(msgtype: str):
    """The rclpy class of ``pkg/msg/Name`` (or ``pkg/Name``); None if it cannot be imported."""
    parts = msgtype.split('/')
    if len(parts) == 2:
        parts = [parts[0], 'msg', parts[1]]
    if len(parts) != 3:
        return None
    try:
        module = importlib.import_module(f'{parts[0]}.{parts[1]}')
        return getattr(module, parts[2])
    except (ImportError, AttributeError):
        return None


# ------------------------------------------------------------------------------------- misc


def sleep_until(deadline: float, step: float = 0.05,
                tick: Callable[[], None] | None = None) -> bool:
    """Sleep until ``time.monotonic() >= deadline`` in slices, calling ``tick`` in between;
    False if ROS was shut down meanwhile."""
    while True:
        if not rclpy.ok():
            return False
        now = time.monotonic()
        if now >= deadline:
            return True
        time.sleep(min(step, deadline - now))
        if tick is not None:
            tick()


def ignore_further_sigint() -> None:
    """Once a node is shutting down, a further Ctrl-C / SIGINT from the launcher must not raise
    KeyboardInterrupt inside cleanup or object finalisers (rclpy's handler may be gone by then)."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:          # not the main thread: nothing to do
        pass


def run_main(make_and_run: Callable[[], int], args: list[str] | None = None) -> None:
    """rclpy.init, call ``make_and_run`` (returns the exit code), shut down, ``sys.exit``.

    Ctrl-C / external shutdown exit 0; a ParamError exits 2 with its message.
    """
    from rclpy.executors import ExternalShutdownException
    code = 0
    try:
        rclpy.init(args=args if args is not None else sys.argv)
    except Exception as err:  # noqa: BLE001 - e.g. malformed --ros-args
        print(f'error: cannot initialise ROS: {err}', file=sys.stderr)
        sys.exit(2)
    try:
        code = make_and_run()
    except ParamError as err:
        print(f'error: {err}', file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        code = 0
    finally:
        ignore_further_sigint()
        try:
            if rclpy.ok():
                rclpy.shutdown()
        except Exception:  # noqa: BLE001
            pass
    sys.exit(code)


def default_executor_threads() -> int:
    """Threads of a MultiThreadedExecutor for a node whose callbacks block (services waiting on work)."""
    import os
    return max(4, min(8, (os.cpu_count() or 2) + 2))


def run_node(factory: Callable[[], Any], args: list[str] | None = None, *, threads: int | None = None) -> None:
    """``run_main`` for a node that only spins: build it with ``factory``, spin until shutdown (one
    thread, or a MultiThreadedExecutor of ``threads`` threads), then call its ``shutdown()`` or
    ``close()`` (if it has one) and destroy it."""
    def _run() -> int:
        node = factory()
        executor = None
        if threads:
            from rclpy.executors import MultiThreadedExecutor
            executor = MultiThreadedExecutor(num_threads=threads)
            executor.add_node(node)
        try:
            if executor is not None:
                executor.spin()
            else:
                rclpy.spin(node)
        finally:
            ignore_further_sigint()
            for name in ('shutdown', 'close'):
                hook = getattr(node, name, None)
                if callable(hook):
                    hook()
                    break
            if executor is not None:
                executor.shutdown(timeout_sec=2.0)
            node.destroy_node()
        return 0
    run_main(_run, args)
