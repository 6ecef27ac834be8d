"""Run the processes of a launch plan the way ``ros2 launch`` does, without ROS.

ROS-free. Each process runs in its own session and process group, with stdin from /dev/null and
its stdout/stderr read line by line and routed by its ``output`` mode, upstream style:

* ``screen``: both streams to the screen; ``log``: both to ``launch.log``, stderr also to the
  screen (the default); ``both``: both to screen and ``launch.log``; ``own_log``: to
  ``<name>-stdout.log``, ``<name>-stderr.log`` and ``<name>.log``; ``full``: all of these.
  Screen lines are written to ``stdout`` as ``[name] line``; log files only exist when a
  ``log_dir`` is given.

Shutdown (on SIGINT/SIGTERM to the supervisor, when a process with ``on_exit="shutdown"`` exits,
or on ``run(timeout=...)``): every running process group gets SIGINT, then SIGTERM after its
``sigterm_timeout``, then SIGKILL after its ``sigkill_timeout``; a second signal to the
supervisor escalates at once. Pending respawns are cancelled. Nothing waits without a deadline.

Exit code of :meth:`ProcessSupervisor.run`:

* the exit code of the ``on_exit="shutdown"`` process that ended the launch, if non-zero;
* else the exit code of the first process that failed (non-zero, not respawned, exited before
  any shutdown began) - a process that cannot start counts as failing with 127 (not found),
  126 (not executable) or 1;
* else ``128 + signal`` when a SIGINT/SIGTERM ended the launch, 124 when ``timeout`` did;
* else 0. Codes from signals are reported as ``128 + N``.

Children get ``PYTHONUNBUFFERED=1`` unless the environment sets it, so Python nodes' output is
not held back by pipe buffering (upstream leaves it unset; it only changes timing).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from .launch_description import ProcessSpec, format_command

# output mode -> destinations for 'both' streams, 'stdout' only, 'stderr' only (upstream
# launch.logging._normalize_output_configuration)
_OUTPUT_ROUTES: Dict[str, Dict[str, Set[str]]] = {
    'screen': {'both': {'screen'}, 'stdout': set(), 'stderr': set()},
    'log': {'both': {'log'}, 'stdout': set(), 'stderr': {'screen'}},
    'both': {'both': {'log', 'screen'}, 'stdout': set(), 'stderr': set()},
    'own_log': {'both': {'own_log'}, 'stdout': {'own_log'}, 'stderr': {'own_log'}},
    'full': {'both': {'screen', 'log', 'own_log'}, 'stdout': {'own_log'}, 'stderr': {'own_log'}},
}

_KILL_GIVE_UP_S = 5.0      # after SIGKILL, stop waiting for a process after this long
_READER_JOIN_S = 1.0       # how long to wait for a finished process's remaining output


def normalize_returncode(returncode: int) -> int:
    """A ``Popen.returncode`` as a shell exit status (``-N`` for signal N becomes ``128+N``)."""
    return 128 - returncode if returncode < 0 else returncode


@dataclass
class _Managed:
    """The supervisor's record of one planned process."""

    spec: ProcessSpec
    popen: Optional[subprocess.Popen] = None
    readers: List[threading.Thread] = field(default_factory=list)
    starts: int = 0
    respawn_at: Optional[float] = None
    done: bool = False
    returncode: Optional[int] = None
    stage: int = 0                  # 0 running, 1 SIGINT sent, 2 SIGTERM sent, 3 SIGKILL sent
    deadline: float = 0.0

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.returncode is None and not self.done


class ProcessSupervisor:
    """Starts, watches and stops the processes of a launch plan; see the module docstring."""

    def __init__(self, specs: Sequence[ProcessSpec], *, stdout: Optional[IO[str]] = None,
                 log_dir: Union[str, Path, None] = None,
                 environ: Optional[Mapping[str, str]] = None, poll_interval: float = 0.05,
                 handle_signals: bool = True) -> None:
        self._procs = [_Managed(s) for s in specs]
        self._stdout = stdout if stdout is not None else sys.stdout
        self._log_dir = Path(log_dir) if log_dir is not None else None
        self._environ = dict(os.environ if environ is None else environ)
        self._poll = poll_interval
        self._handle_signals = handle_signals
        self._lock = threading.Lock()
        self._log_files: Dict[str, IO[str]] = {}
        self._shutting_down = False
        self._shutdown_reason = ''
        self._requested: Optional[str] = None      # shutdown asked from another thread
        self._signals: List[int] = []               # signals received, in order
        self._signal_count_handled = 0
        self._trigger: Optional[Tuple[str, int]] = None
        self._failures: List[Tuple[str, int]] = []
        self._timed_out = False

    # public -----------------------------------------------------------------------------
    def request_shutdown(self, reason: str = 'shutdown requested') -> None:
        """Ask a running :meth:`run` (in another thread) to stop everything."""
        self._requested = reason

    def run(self, timeout: Optional[float] = None) -> int:
        """Start every process, supervise until the launch ends, return the exit code."""
        previous = self._install_signal_handlers()
        try:
            for m in self._procs:
                if self._shutting_down or self._signals or self._requested is not None:
                    break   # the loop below handles it; the rest are never started
                self._start(m)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    now = time.monotonic()
                    self._check_requests(now, deadline)
                    self._reap(now)
                    if not self._shutting_down:
                        self._respawn_due(now)
                    else:
                        self._escalate(now)
                    if not any(m.running or (m.respawn_at is not None and not m.done)
                               for m in self._procs):
                        break
                    time.sleep(self._poll)
                except KeyboardInterrupt:   # only when signal handling is off
                    self._signals.append(signal.SIGINT)
            return self._exit_code()
        finally:
            self._restore_signal_handlers(previous)
            self._emergency_stop()
            for m in self._procs:
                for t in m.readers:
                    t.join(timeout=_READER_JOIN_S)
            with self._lock:
                for f in self._log_files.values():
                    try:
                        f.close()
                    except OSError:
                        pass
                self._log_files.clear()

    # signals ----------------------------------------------------------------------------
    def _install_signal_handlers(self) -> Dict[int, object]:
        previous: Dict[int, object] = {}
        if not self._handle_signals or threading.current_thread() is not threading.main_thread():
            return previous
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    def _restore_signal_handlers(self, previous: Dict[int, object]) -> None:
        for sig, handler in previous.items():
            try:
                signal.signal(sig, handler)  # type: ignore[arg-type]
            except (ValueError, TypeError):
                pass

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._signals.append(signum)

    def _check_requests(self, now: float, deadline: Optional[float]) -> None:
        while self._signal_count_handled < len(self._signals):
            sig = self._signals[self._signal_count_handled]
            self._signal_count_handled += 1
            name = signal.Signals(sig).name
            if not self._shutting_down:
                what = 'user interrupted with ctrl-c (SIGINT)' if sig == signal.SIGINT \
                    else f'received {name}'
                self._log('WARNING', 'launch', what)
                self._begin_shutdown(f'{name} received', now)
            else:
                self._log('WARNING', 'launch', f'{name} received again: escalating')
                for m in self._procs:
                    if m.running:
                        m.deadline = now
        if self._requested is not None and not self._shutting_down:
            self._begin_shutdown(self._requested, now)
        if deadline is not None and now >= deadline and not self._shutting_down:
            self._timed_out = True
            self._log('WARNING', 'launch', 'timeout reached')
            self._begin_shutdown('timeout', now)

    # process life cycle ------------------------------------------------------------------
    def _start(self, m: _Managed) -> None:
        spec = m.spec
        env = dict(self._environ)
        env.update(spec.env)
        env.setdefault('PYTHONUNBUFFERED', '1')
        m.starts += 1
        m.respawn_at = None
        m.stage = 0
        try:
            popen = subprocess.Popen(
                list(spec.argv), env=env, cwd=spec.cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            code = 127 if isinstance(exc, FileNotFoundError) else \
                126 if isinstance(exc, PermissionError) else 1
            self._log('ERROR', spec.name, f'failed to start {format_command(spec.argv)!r}: '
                                          f'{exc.strerror or exc}')
            m.done = True
            m.returncode = code
            self._failures.append((spec.name, code))
            self._begin_shutdown(f'{spec.name} failed to start', time.monotonic())
            return
        m.popen = popen
        m.readers = [
            threading.Thread(target=self._read, args=(m, popen.stdout, 'stdout'), daemon=True,
                             name=f'{spec.name}-stdout'),
            threading.Thread(target=self._read, args=(m, popen.stderr, 'stderr'), daemon=True,
                             name=f'{spec.name}-stderr'),
        ]
        for t in m.readers:
            t.start()
        self._log('INFO', spec.name, f'process started with pid [{popen.pid}]')

    def _reap(self, now: float) -> None:
        for m in self._procs:
            if m.popen is None or m.done or m.popen.returncode is not None:
                continue
            rc = m.popen.poll()
            if rc is None:
                continue
            for t in m.readers:              # let its last lines out before the exit message
                t.join(timeout=_READER_JOIN_S)
            m.returncode = rc
            pid = m.popen.pid
            if rc == 0:
                self._log('INFO', m.spec.name, f'process has finished cleanly [pid {pid}]')
            else:
                self._log('ERROR', m.spec.name,
                          f"process has died [pid {pid}, exit code {rc}, "
                          f"cmd '{format_command(m.spec.argv)}'].")
            spec = m.spec
            if self._shutting_down:
                m.done = True
            elif spec.ends_launch:
                m.done = True
                self._trigger = (spec.name, rc)
                self._begin_shutdown(f'{spec.name} exited (on_exit=shutdown)', now)
            elif spec.respawn and (spec.respawn_max_retries < 0 or
                                   m.starts <= spec.respawn_max_retries):
                m.respawn_at = now + spec.respawn_delay
            else:
                m.done = True
                if rc != 0:
                    self._failures.append((spec.name, rc))

    def _respawn_due(self, now: float) -> None:
        for m in self._procs:
            if not m.done and m.respawn_at is not None and now >= m.respawn_at:
                self._log('INFO', m.spec.name, 'respawning')
                self._start(m)

    def _begin_shutdown(self, reason: str, now: float) -> None:
        if self._shutting_down:
            return
        self._shutting_down = True
        self._shutdown_reason = reason
        for m in self._procs:
            if m.respawn_at is not None and not m.running:
                m.respawn_at = None
                m.done = True
        for m in self._procs:
            if m.running:
                self._signal(m, signal.SIGINT)
                m.stage = 1
                m.deadline = now + m.spec.sigterm_timeout

    def _escalate(self, now: float) -> None:
        for m in self._procs:
            if not m.running or now < m.deadline:
                continue
            if m.stage <= 1:
                self._log('WARNING', m.spec.name,
                          f"process[{m.spec.name}] failed to terminate "
                          f"{m.spec.sigterm_timeout:g} seconds after receiving 'SIGINT', "
                          f"escalating to 'SIGTERM'")
                self._signal(m, signal.SIGTERM)
                m.stage = 2
                m.deadline = now + m.spec.sigkill_timeout
            elif m.stage == 2:
                self._log('WARNING', m.spec.name,
                          f"process[{m.spec.name}] failed to terminate "
                          f"{m.spec.sigkill_timeout:g} seconds after receiving 'SIGTERM', "
                          f"escalating to 'SIGKILL'")
                self._signal(m, signal.SIGKILL)
                m.stage = 3
                m.deadline = now + _KILL_GIVE_UP_S
            else:
                self._log('ERROR', m.spec.name, 'process did not exit after SIGKILL; giving up '
                                                'on it')
                m.done = True

    def _signal(self, m: _Managed, sig: int) -> None:
        if m.popen is None:
            return
        try:
            os.killpg(m.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _emergency_stop(self) -> None:
        """Leaving ``run`` with processes still up (an exception): kill their groups."""
        for m in self._procs:
            if m.popen is not None and m.popen.returncode is None:
                self._signal(m, signal.SIGKILL)
                try:
                    m.popen.wait(timeout=_KILL_GIVE_UP_S)
                except subprocess.TimeoutExpired:
                    pass

    def _exit_code(self) -> int:
        if self._trigger is not None and self._trigger[1] != 0:
            return normalize_returncode(self._trigger[1])
        if self._failures:
            return normalize_returncode(self._failures[0][1])
        if self._signals:
            return 128 + self._signals[0]
        if self._timed_out:
            return 124
        return 0

    # output -----------------------------------------------------------------------------
    def _read(self, m: _Managed, pipe: IO[bytes], source: str) -> None:
        try:
            for raw in iter(pipe.readline, b''):
                self._emit(m.spec, source, raw.decode('utf-8', 'replace').rstrip('\r\n'))
        except (OSError, ValueError):
            pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def _emit(self, spec: ProcessSpec, source: str, line: str) -> None:
        routes = _OUTPUT_ROUTES.get(spec.output, _OUTPUT_ROUTES['log'])
        dests = routes['both'] | routes[source]
        text = f'[{spec.name}] {line}'
        with self._lock:
            if 'screen' in dests:
                self._write_screen(text)
            if 'log' in dests:
                self._write_file('launch.log', f'{time.time():.7f} {text}')
            if 'own_log' in routes[source]:
                self._write_file(f'{spec.name}-{source}.log', line)
            if 'own_log' in routes['both']:
                self._write_file(f'{spec.name}.log', line)

    def _log(self, level: str, who: str, msg: str) -> None:
        text = f'[{level}] [{who}]: {msg}'
        with self._lock:
            self._write_screen(text)
            self._write_file('launch.log', f'{time.time():.7f} {text}')

    def _write_screen(self, text: str) -> None:
        try:
            self._stdout.write(text + '\n')
            self._stdout.flush()
        except (OSError, ValueError):
            pass

    def _write_file(self, name: str, text: str) -> None:
        if self._log_dir is None:
            return
        f = self._log_files.get(name)
        if f is None:
            try:
                self._log_dir.mkdir(parents=True, exist_ok=True)
                f = open(self._log_dir / name, 'a', encoding='utf-8')
            except OSError:
                self._log_dir = None
                return
            self._log_files[name] = f
        try:
            f.write(text + '\n')
            f.flush()
        except OSError:
            pass


def run_processes(specs: Sequence[ProcessSpec], **kwargs: object) -> int:
    """Convenience: ``ProcessSupervisor(specs, **kwargs).run()``."""
    return ProcessSupervisor(specs, **kwargs).run()  # type: ignore[arg-type]
