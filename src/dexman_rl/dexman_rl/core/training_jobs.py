"""Training jobs of the trainer node: request validation, a queue run one job at a time in a child
process, and a journal on disk that survives the node. ROS-free (the node is a thin shell).

Requests (:func:`validate_request`): an id that names a reference artefact
(``<reference_root>/<id>/reference.json``, or one announced with its ``artefact_uri``) or a
demonstration (``<demonstration_root>/<id>/demonstration.json``, or announced); a reference wins
when both exist (the retarget node names a demonstration's reference after it). Overrides are
``(section.key[.sub], value)`` pairs merged into config/rl.yaml + config/sim.yaml with
``skill_training.load_configs`` (unknown section/key, wrong type, bad value: rejected with its
message). The wall-clock budget ``ppo.max_wall_s`` (the override, else the node's default budget,
else the YAML's) must lie in ``[min_budget_s, max_budget_s]``; no budget at all (null) is refused
while ``max_budget_s`` is set. A rejected request leaves nothing behind.

Journal: one JSON file per job, ``<skills_root>/.jobs/<job_id>.json``, rewritten atomically on
every state change and every epoch: the request, the full resolved configuration (so a resumed
job is the same experiment whatever happens to the YAML files meanwhile), state, last progress,
result. The child's stdout/stderr go to ``<job_id>.log`` beside it. ``<skills_root>/.jobs/.lock``
(flock) keeps a second manager off the same skills root.

States: queued -> running -> succeeded | failed | cancelled. At start the manager re-queues, ahead
of the others, the job it finds ``running`` (its node was killed) or interrupted by a shutdown:
it resumes from ``<skills_root>/.work/<skill_id>/checkpoints/last.pth`` when there is one (the
epochs trained after that checkpoint are lost and reported in ``resumes``), else starts again; a
job whose skill was already written is marked succeeded.

Child process (:mod:`.training_child`): ``python -m dexman_rl.core.training_child`` with the
journal path; it retargets first when the source is a demonstration without a reference, then
``skill_training.train_skill``; progress comes back as JSON lines on a dedicated pipe. It dies
with its parent (``PR_SET_PDEATHSIG`` on Linux, and a parent-pid watchdog). The process is spawned
from the manager's supervisor thread, which lives as long as the manager (the death signal follows
the spawning thread). Cancel: queued -> removed at once; running -> SIGTERM, the child
checkpoints at the end of the running epoch (or stops at once outside PPO) and exits; after
``cancel_grace_s`` it is killed. Shutdown: SIGTERM, ``shutdown_grace_s``, kill; the job stays
resumable. Child exit status: 0 skill written, 3 stopped, 2 bad input, 1 diverged/error.
"""
from __future__ import annotations

import dataclasses
import datetime
import fcntl
import json
import os
import pathlib
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

from dexman_common.atomic_io import write_json_atomic
from dexman_common.config import ConfigError

JOBS_DIR = '.jobs'
LOCK_NAME = '.lock'
FORMAT_VERSION = 1
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = 'queued', 'running', 'succeeded', 'failed', 'cancelled'
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
EXIT_WRITTEN, EXIT_ERROR, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 3
ID_RE = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.\-]*$')
BUDGET_KEY = 'ppo.max_wall_s'


class JobRejected(ValueError):
    """A training request cannot be accepted; the message says why (nothing was started)."""


class JobsLocked(RuntimeError):
    """Another job manager (another trainer node) uses the same skills root."""


def _utc() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='milliseconds')


# ------------------------------------------------------------------------------ validation
@dataclasses.dataclass(frozen=True)
class Budget:
    """Wall-clock budget rules (seconds): ``default_s`` applies when the request sets none
    (0: the YAML's ``ppo.max_wall_s``); the budget must lie in [min_s, max_s] (max_s 0: no bound,
    and no budget at all is allowed)."""

    min_s: float = 6.0
    max_s: float = 86400.0
    default_s: float = 0.0

    def __post_init__(self):
        if self.min_s < 0 or self.max_s < 0 or self.default_s < 0:
            raise ValueError('budget bounds and default must be >= 0')
        if self.max_s and self.min_s > self.max_s:
            raise ValueError(f'min budget {self.min_s} s exceeds max budget {self.max_s} s')


@dataclasses.dataclass(frozen=True)
class Source:
    kind: str                  # 'reference' | 'demonstration'
    id: str
    path: pathlib.Path


class SourceResolver:
    """Finds the reference or demonstration an id names (module docstring); ids announced on the
    graph (with their artefact directories) are remembered with :meth:`announce`."""

    def __init__(self, reference_root, demonstration_root):
        self.reference_root = pathlib.Path(reference_root)
        self.demonstration_root = pathlib.Path(demonstration_root)
        self._lock = threading.Lock()
        self._known: dict[str, dict[str, pathlib.Path]] = {'reference': {}, 'demonstration': {}}

    def announce(self, kind: str, ident: str, path) -> None:
        with self._lock:
            self._known[kind][ident] = pathlib.Path(path)

    def _candidate(self, kind: str, ident: str) -> pathlib.Path | None:
        marker = 'reference.json' if kind == 'reference' else 'demonstration.json'
        root = self.reference_root if kind == 'reference' else self.demonstration_root
        with self._lock:
            known = self._known[kind].get(ident)
        for p in (known, root / ident):
            if p is not None and (p / marker).is_file():
                return p
        return None

    def resolve(self, ident: str) -> Source:
        ident = (ident or '').strip()
        if not ident:
            raise JobRejected('no id given: set demonstration_id to a demonstration or reference id')
        if not ID_RE.match(ident):
            raise JobRejected(f'invalid id {ident!r} (letters, digits, "_", "-", "."; no path)')
        for kind in ('reference', 'demonstration'):
            p = self._candidate(kind, ident)
            if p is not None:
                return Source(kind, ident, p.resolve())
        raise JobRejected(
            f'unknown demonstration or reference {ident!r}: no {self.reference_root / ident}/reference.json, '
            f'no {self.demonstration_root / ident}/demonstration.json, and none announced under that id')


def overrides_from_pairs(pairs) -> dict[str, dict[str, Any]]:
    """[('ppo.max_epochs', 6), ('env.residual.pos_scale', 0.01)] -> {section: {key: value}} (nested);
    JobRejected for a malformed or repeated name."""
    out: dict[str, dict[str, Any]] = {}
    seen = set()
    for name, value in pairs:
        parts = str(name).strip().split('.')
        if len(parts) < 2 or not all(p and re.match(r'^[A-Za-z_][A-Za-z0-9_]*$', p) for p in parts):
            raise JobRejected(f'malformed override name {name!r}: expected section.key, e.g. ppo.max_epochs '
                              '(sections: env, sim, reward, success, ppo, video, job)')
        if name in seen:
            raise JobRejected(f'override {name!r} given twice')
        seen.add(name)
        node = out.setdefault(parts[0], {})
        for p in parts[1:-1]:
            nxt = node.setdefault(p, {})
            if not isinstance(nxt, dict):
                raise JobRejected(f'override {name!r} conflicts with {".".join(parts[:-1])!r}')
            node = nxt
        if isinstance(node.get(parts[-1]), dict):
            raise JobRejected(f'override {name!r} conflicts with a deeper override of the same key')
        node[parts[-1]] = value
    return out


@dataclasses.dataclass
class Validated:
    source: Source
    overrides: dict[str, dict[str, Any]]
    config: dict[str, Any]          # the full resolved configuration (RLConfigs.to_dict())
    budget_s: float | None


def validate_request(ident: str, pairs, resolver: SourceResolver, budget: Budget, *,
                     rl_yaml=None, sim_yaml=None) -> Validated:
    """Check a request (module docstring); JobRejected with the reason."""
    from . import skill_training as st
    source = resolver.resolve(ident)
    overrides = overrides_from_pairs(pairs)
    names = {n for n, _ in pairs}
    if BUDGET_KEY not in names and budget.default_s > 0:
        overrides.setdefault('ppo', {})['max_wall_s'] = float(budget.default_s)
    try:
        cfgs = st.load_configs(overrides, rl_yaml=rl_yaml, sim_yaml=sim_yaml)
    except (ConfigError, ValueError, TypeError) as e:
        raise JobRejected(f'bad override: {e}') from None
    b = cfgs.ppo.max_wall_s
    if b is None:
        if budget.max_s:
            raise JobRejected(f'no training budget: set {BUDGET_KEY} (seconds, within [{budget.min_s:g}, '
                              f'{budget.max_s:g}])')
    elif b < budget.min_s or (budget.max_s and b > budget.max_s):
        hi = f'{budget.max_s:g}' if budget.max_s else 'inf'
        raise JobRejected(f'budget {BUDGET_KEY}={b:g} s is outside the allowed range [{budget.min_s:g}, {hi}] s')
    return Validated(source, overrides, cfgs.to_dict(), b)


# ------------------------------------------------------------------------------------ jobs
def new_job_id() -> str:
    return f'job_{datetime.datetime.now(datetime.timezone.utc):%Y%m%d_%H%M%S}_{secrets.token_hex(3)}'


def checkpoint_epoch(skills_root, skill_id: str) -> int | None:
    """Epoch of the last PPO checkpoint of a skill's work directory (None: no checkpoint)."""
    from . import skill_training as st
    from .ppo_trainer import CHECKPOINT_DIR, LAST_CHECKPOINT
    ck = pathlib.Path(skills_root) / st.WORK_DIR / skill_id / CHECKPOINT_DIR / LAST_CHECKPOINT
    if not ck.is_file():
        return None
    try:
        return int(json.loads(ck.with_suffix('.json').read_text())['epoch'])
    except (OSError, ValueError, KeyError, TypeError):
        return None


UpdateFn = Callable[[dict, str], None]     # (job snapshot, what: 'state' | 'progress')


class JobManager:
    """The queue, the journal and the child process (module docstring). Thread-safe.

    ``on_update(job, what)`` is called (from the manager's threads, never under its lock) with a
    snapshot of the job's journal record after every state change ('state') and epoch
    ('progress')."""

    def __init__(self, skills_root, *, on_update: UpdateFn | None = None, robot_model_dir=None,
                 reference_root=None, retarget_config_file=None, cancel_grace_s: float = 120.0,
                 shutdown_grace_s: float = 20.0, python: str | None = None,
                 log: Callable[[str], None] | None = None):
        self.skills_root = pathlib.Path(skills_root).expanduser().resolve()
        self.jobs_dir = self.skills_root / JOBS_DIR
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.jobs_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise JobsLocked(f'{self.jobs_dir} is in use by another trainer node') from None
        self.on_update = on_update or (lambda job, what: None)
        self.robot_model_dir = str(robot_model_dir) if robot_model_dir else ''
        self.reference_root = str(reference_root) if reference_root else ''
        self.retarget_config_file = str(retarget_config_file) if retarget_config_file else ''
        self.cancel_grace_s, self.shutdown_grace_s = float(cancel_grace_s), float(shutdown_grace_s)
        self.python = python or sys.executable
        self.say = log or (lambda _m: None)
        self._cv = threading.Condition(threading.RLock())
        self._jobs: dict[str, dict] = {}
        self._proc: subprocess.Popen | None = None
        self._running_id: str | None = None
        self._cancel: set[str] = set()
        self._stopping = False
        self._seq = 0
        self._run_t0 = 0.0
        self._recover()
        self._thread = threading.Thread(target=self._supervise, name='training-jobs', daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- journal
    def _path(self, job_id: str) -> pathlib.Path:
        return self.jobs_dir / f'{job_id}.json'

    def log_path(self, job_id: str) -> pathlib.Path:
        return self.jobs_dir / f'{job_id}.log'

    def _write(self, job: dict) -> None:
        job['updated_utc'] = _utc()
        write_json_atomic(self._path(job['job_id']), job)

    def _recover(self) -> None:
        for p in sorted(self.jobs_dir.glob('job_*.json')):
            try:
                job = json.loads(p.read_text())
            except (OSError, ValueError) as e:
                self.say(f'ignoring unreadable job journal {p}: {e}')
                continue
            if not isinstance(job, dict) or job.get('format_version') != FORMAT_VERSION or 'job_id' not in job:
                self.say(f'ignoring job journal {p}: not a format-{FORMAT_VERSION} job record')
                continue
            self._seq = max(self._seq, int(job.get('seq', 0)))
            self._jobs[job['job_id']] = job
            if job['state'] == RUNNING or (job['state'] == QUEUED and job.get('interrupted')):
                self._requeue_interrupted(job)
        for job in self._jobs.values():
            if job['state'] == QUEUED:
                self.say(f'job {job["job_id"]} queued from the journal' + (' (resumes)' if job.get('resume') else ''))

    def _requeue_interrupted(self, job: dict) -> None:
        from dexman_common.artefacts import skill as skm
        sid = job['skill_id']
        if (self.skills_root / sid / skm.META_NAME).is_file():
            job.update(state=SUCCEEDED, message=f'the skill {sid} had been written before the node stopped')
            job.setdefault('result', {})['skill_dir'] = str(self.skills_root / sid)
            self._write(job)
            return
        last = int((job.get('progress') or {}).get('epoch') or 0)
        ck = checkpoint_epoch(self.skills_root, sid)
        rec = {'at_utc': _utc(), 'last_epoch': last, 'checkpoint_epoch': ck,
               'epochs_lost': max(last - (ck or 0), 0)}
        job.setdefault('resumes', []).append(rec)
        job['resume'] = ck is not None
        prog = job.get('progress') or {}
        job['progress'] = {'epoch': ck or 0, 'total_epochs': prog.get('total_epochs')}   # where training restarts
        job['state'] = QUEUED
        job['interrupted'] = False
        job['priority'] = 0                      # ahead of the jobs queued after it
        job['message'] = (f'interrupted at epoch {last}; resumes from the checkpoint of epoch {ck} '
                          f'({rec["epochs_lost"]} epoch(s) lost)' if ck is not None
                          else f'interrupted at epoch {last} before its first checkpoint; starts again')
        self._write(job)
        self.say(f'job {job["job_id"]}: {job["message"]}')

    # -------------------------------------------------------------- API
    def submit(self, requested_id: str, v: Validated) -> dict:
        """Queue a validated request; returns the job snapshot."""
        job_id = new_job_id()
        with self._cv:
            self._seq += 1
            ref_id = v.source.id if v.source.kind == 'reference' else ''
            job = {'format_version': FORMAT_VERSION, 'job_id': job_id, 'seq': self._seq, 'priority': 1,
                   'created_utc': _utc(), 'state': QUEUED, 'requested_id': requested_id,
                   'source': {'kind': v.source.kind, 'id': v.source.id, 'path': str(v.source.path)},
                   'reference_id': ref_id, 'reference_dir': str(v.source.path) if ref_id else '',
                   'skill_id': f'skill_{v.source.id}_{job_id[4:]}', 'skills_root': str(self.skills_root),
                   'robot_model_dir': self.robot_model_dir, 'reference_root': self.reference_root,
                   'retarget_config_file': self.retarget_config_file,
                   'overrides': v.overrides, 'config': v.config, 'budget_s': v.budget_s,
                   'resume': False, 'attempts': 0, 'run_s': 0.0, 'progress': {}, 'result': {},
                   'message': 'queued', 'resumes': []}
            self._jobs[job_id] = job
            self._write(job)
            snap = json.loads(json.dumps(job))
            self._cv.notify_all()
        self.on_update(snap, 'state')
        return snap

    def get(self, job_id: str) -> dict | None:
        with self._cv:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            snap = json.loads(json.dumps(job))
            if job_id == self._running_id:
                snap['run_s'] = job['run_s'] + (time.monotonic() - self._run_t0)
            return snap

    def latest(self) -> dict | None:
        """The running job, else the most recently created one."""
        with self._cv:
            jid = self._running_id
            if jid is None and self._jobs:
                jid = max(self._jobs.values(), key=lambda j: j['seq'])['job_id']
        return self.get(jid) if jid else None

    def jobs(self) -> list[dict]:
        with self._cv:
            ids = sorted(self._jobs, key=lambda k: self._jobs[k]['seq'])
        return [self.get(i) for i in ids]

    def queue(self) -> list[str]:
        """Ids of the queued jobs in the order they will run."""
        with self._cv:
            q = [j for j in self._jobs.values() if j['state'] == QUEUED]
            return [j['job_id'] for j in sorted(q, key=lambda j: (j.get('priority', 1), j['seq']))]

    def cancel(self, job_id: str) -> tuple[bool, str]:
        with self._cv:
            job = self._jobs.get(job_id)
            if job is None:
                return False, f'unknown job {job_id!r}'
            if job['state'] in TERMINAL:
                return False, f'job {job_id} has already {job["state"]}'
            if job['state'] == QUEUED:
                job.update(state=CANCELLED, message='cancelled while queued')
                self._write(job)
                snap = json.loads(json.dumps(job))
                msg = f'job {job_id} cancelled (it was queued)'
            else:
                self._cancel.add(job_id)
                if self._proc is not None and self._running_id == job_id and self._proc.poll() is None:
                    self._signal(signal.SIGTERM)
                job['message'] = 'cancelling: stops at the end of the running epoch (checkpoint kept)'
                self._write(job)
                snap = json.loads(json.dumps(job))
                msg = (f'job {job_id} is cancelling: it stops at the end of its running epoch; the checkpoint is '
                       f'kept in {self.skills_root / ".work" / job["skill_id"]}')
            self._cv.notify_all()
        self.on_update(snap, 'state')
        return True, msg

    def wait(self, job_id: str, timeout: float | None = None) -> dict | None:
        """Block until the job is terminal (or timeout); its snapshot."""
        end = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                job = self._jobs.get(job_id)
                if job is None or job['state'] in TERMINAL:
                    break
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._cv.wait(timeout=left if left is not None else 1.0)
        return self.get(job_id)

    def child_pid(self) -> int | None:
        with self._cv:
            return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def shutdown(self) -> None:
        """Stop the running child (it checkpoints; the job stays resumable) and the supervisor."""
        with self._cv:
            self._stopping = True
            if self._proc is not None and self._proc.poll() is None:
                self._signal(signal.SIGTERM)
            self._cv.notify_all()
        self._thread.join(timeout=self.shutdown_grace_s + 5.0)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
        except OSError:
            pass

    # -------------------------------------------------------------- supervisor
    def _signal(self, sig) -> None:
        try:
            self._proc.send_signal(sig)
        except (ProcessLookupError, OSError):
            pass

    def _next(self) -> dict | None:
        q = self.queue()
        return self._jobs[q[0]] if q else None

    def _supervise(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and self._next() is None:
                    self._cv.wait(timeout=1.0)
                if self._stopping:
                    return
                job = self._next()
                job.update(state=RUNNING, attempts=job.get('attempts', 0) + 1,
                           message='starting' + (' (resuming from its checkpoint)' if job.get('resume') else ''))
                self._running_id = job['job_id']
                self._run_t0 = time.monotonic()
                self._write(job)
                snap = json.loads(json.dumps(job))
            self.on_update(snap, 'state')
            try:
                self._run(job)
            except Exception as e:  # noqa: BLE001 - the supervisor must outlive any job
                with self._cv:
                    job.update(state=FAILED, message=f'internal error running the job: {type(e).__name__}: {e}')
                    self._write(job)
            finally:
                with self._cv:
                    job['run_s'] = job.get('run_s', 0.0) + (time.monotonic() - self._run_t0)
                    self._running_id, self._proc = None, None
                    self._cancel.discard(job['job_id'])
                    self._write(job)
                    snap = json.loads(json.dumps(job))
                    self._cv.notify_all()
                self.on_update(snap, 'state')

    def _run(self, job: dict) -> None:
        jid = job['job_id']
        r, w = os.pipe()
        cmd = [self.python, '-m', 'dexman_rl.core.training_child', str(self._path(jid)),
               '--events-fd', str(w), '--parent-pid', str(os.getpid())]
        with open(self.log_path(jid), 'ab') as logf:
            logf.write(f'\n==== attempt {job["attempts"]} {_utc()}: {" ".join(cmd)}\n'.encode())
            logf.flush()
            with self._cv:
                self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                              pass_fds=(w,), start_new_session=True)
                proc = self._proc
                if jid in self._cancel or self._stopping:
                    self._signal(signal.SIGTERM)
        os.close(w)
        done: dict = {}
        reader = threading.Thread(target=self._read_events, args=(r, job, done), name='training-events', daemon=True)
        reader.start()
        sigterm_at = None
        while True:
            try:
                rc = proc.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                pass
            with self._cv:
                asked = jid in self._cancel or self._stopping
                grace = self.shutdown_grace_s if self._stopping else self.cancel_grace_s
            if asked:
                sigterm_at = sigterm_at or time.monotonic()
                if time.monotonic() - sigterm_at > grace:
                    self.say(f'job {jid}: the child did not stop within {grace:g} s; killing it')
                    proc.kill()
        reader.join(timeout=5.0)
        self._finish(job, rc, done)

    def _read_events(self, fd: int, job: dict, done: dict) -> None:
        with os.fdopen(fd, 'r', encoding='utf-8', errors='replace') as f:
            for line in f:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                kind = ev.get('event')
                with self._cv:
                    if kind == 'progress':
                        job['progress'] = ev.get('progress') or {}
                        if job['progress'].get('checkpoint'):
                            job['checkpoint'] = job['progress']['checkpoint']
                        if job['progress'].get('eval'):
                            job['last_eval'] = job['progress']['eval']
                        job['message'] = 'training'
                    elif kind == 'phase':
                        job['phase'] = ev.get('phase', '')
                        job['message'] = ev.get('text') or ev.get('phase', '')
                    elif kind == 'log':
                        job['message'] = ev.get('text', '')
                    elif kind == 'retargeted':
                        job['reference_id'] = ev.get('reference_id', '')
                        job['reference_dir'] = ev.get('reference_dir', '')
                    elif kind == 'done':
                        done.update(ev)
                        continue
                    else:
                        continue
                    self._write(job)
                    snap = json.loads(json.dumps(job))
                    if job['job_id'] == self._running_id:
                        snap['run_s'] = job['run_s'] + (time.monotonic() - self._run_t0)
                self.on_update(snap, 'progress' if kind == 'progress' else 'state')

    def _finish(self, job: dict, rc: int, done: dict) -> None:
        jid = job['job_id']
        with self._cv:
            cancelled = jid in self._cancel
            stopping = self._stopping
            msg = done.get('message') or ''
            if rc == EXIT_WRITTEN and done.get('status') == 'written':
                job.update(state=SUCCEEDED, result=done.get('result') or {},
                           message=msg or f'skill written to {done.get("result", {}).get("skill_dir")}')
            elif cancelled:
                job.update(state=CANCELLED, message='cancelled' + (f' ({msg})' if msg else '')
                           + ('' if rc == EXIT_STOPPED else f'; child exit status {rc}'))
            elif stopping and rc in (EXIT_STOPPED, -signal.SIGTERM, -signal.SIGKILL):
                ck = checkpoint_epoch(self.skills_root, job['skill_id'])
                job.update(state=QUEUED, interrupted=True, resume=ck is not None, priority=0,
                           message=f'interrupted by the node shutdown; resumes at restart'
                                   + (f' from epoch {ck}' if ck is not None else ''))
            elif rc == EXIT_STOPPED:          # stopped on its own (e.g. SIGTERM from outside): resumable
                job.update(state=FAILED, message=msg or 'the training process stopped before the end (resumable '
                           'with `ros2 run dexman_rl train --resume`)')
            elif rc < 0:
                job.update(state=FAILED, message=f'the training process was killed by signal {-rc}'
                           + (f' ({msg})' if msg else ''))
            else:
                kind = 'bad input' if rc == EXIT_BAD_INPUT else 'error'
                job.update(state=FAILED, message=msg or f'training failed ({kind}, exit status {rc}); see '
                                                        f'{self.log_path(jid)}')
            job['exit_status'] = rc
