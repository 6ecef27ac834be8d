"""The child process of one training job (spawned by :class:`.training_jobs.JobManager`). ROS-free.

    python -m dexman_rl.core.training_child JOURNAL --events-fd FD --parent-pid PID

Reads the job record (``<skills_root>/.jobs/<job_id>.json``), dies with its parent (Linux
``PR_SET_PDEATHSIG`` = SIGKILL, plus a watchdog that exits when the parent pid changes), then:

1. when the source is a demonstration: reuses ``<reference_root>/<id>/`` when a reference of that
   id is there (the retarget node's naming), else retargets it with
   ``dexman_retarget.core.retarget_pipeline`` (settings: the job's ``retarget_config_file``, default
   config/retarget.yaml) and writes the reference there;
2. ``skill_training.train_skill`` with the job's recorded configuration (``resume`` when the
   manager says so).

Events, one JSON object per line on FD: ``{"event": "phase", "phase": ..., "text": ...}``,
``{"event": "log", "text": ...}``, ``{"event": "retargeted", "reference_id", "reference_dir"}``,
``{"event": "progress", "progress":
{...}}`` (ppo_trainer's progress dict, JSON-safe) and finally ``{"event": "done", "status":
"written" | "stopped" | "failed", "message", "result"}``.

SIGTERM: inside PPO the trainer's own handler checkpoints at the end of the epoch; elsewhere
(retargeting, environment set-up, evaluation) the job stops at once. Exit status as
``train_cli``: 0 written, 3 stopped, 2 bad input, 1 diverged or unexpected error.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import math
import os
import pathlib
import signal
import sys
import threading
import time
import traceback

PR_SET_PDEATHSIG = 1


class _Stopped(BaseException):
    """SIGTERM outside PPO's own handler."""


def die_with_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies (Linux), and a watchdog for other systems."""
    if sys.platform.startswith('linux'):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:          # the parent died before prctl took effect
        os._exit(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)
    threading.Thread(target=watch, name='parent-watchdog', daemon=True).start()


def _json_safe(x):
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return x
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if isinstance(x, int) or (hasattr(x, 'dtype') and 'int' in str(getattr(x, 'dtype', ''))):
        return int(x)
    return f if math.isfinite(f) else None


class _Events:
    def __init__(self, fd: int):
        self.f = os.fdopen(fd, 'w', buffering=1, encoding='utf-8')
        self.lock = threading.Lock()

    def __call__(self, event: str, **kw) -> None:
        line = json.dumps(_json_safe({'event': event, **kw}))
        with self.lock:
            try:
                self.f.write(line + '\n')
            except (BrokenPipeError, OSError):
                pass


def _retarget(job: dict, emit) -> tuple[str, pathlib.Path]:
    from dexman_common.artefacts import reference as refm
    from dexman_retarget.core import retarget_pipeline as rp
    demo_id = job['source']['id']
    root = pathlib.Path(job.get('reference_root') or rp.default_reference_dir())
    existing = root / demo_id
    if (existing / refm.META_NAME).is_file():
        emit('phase', phase='retargeting', text=f'reusing the reference {existing}')
        return demo_id, existing
    emit('phase', phase='retargeting', text=f'retargeting demonstration {demo_id}')
    cfg_file = job.get('retarget_config_file') or None
    options = rp.load_options(cfg_file or rp.default_config_file())
    model_dir, _ = rp.ensure_robot_model(job.get('robot_model_dir') or rp.default_robot_model_dir(), cfg_file)
    demo, meshes = rp.load_input(job['source']['path'])
    import dataclasses
    res = rp.Retargeter(model_dir, dataclasses.replace(options, progress=False), cfg_file).run(
        demo, meshes, reference_id=demo_id)
    out = refm.save(res.reference, root, res.meshes)
    return res.reference.reference_id, out


def run(job_path: pathlib.Path, emit) -> int:
    from dexman_common.artefacts.reference import ReferenceArtefactError
    from dexman_common.config import ConfigError

    from . import skill_training as st
    from .ppo_trainer import TrainingDivergedError
    from .reference_data import ReferenceDataError
    job = json.loads(job_path.read_text())

    def done(status, message='', result=None, code=0):
        emit('done', status=status, message=message, result=result or {})
        return code

    try:
        from dexman_retarget.core.options import RetargetError
    except ImportError:           # pragma: no cover - retarget is a declared dependency
        RetargetError = RuntimeError  # noqa: N806
    from dexman_sim.errors import SceneInputError
    try:
        if job['source']['kind'] == 'demonstration':
            ref_id, ref_dir = _retarget(job, emit)
            emit('retargeted', reference_id=ref_id, reference_dir=str(ref_dir))
        else:
            ref_dir = pathlib.Path(job['reference_dir'] or job['source']['path'])
        cfgs = st.load_configs(job['config'])
        emit('phase', phase='training', text='training' + (' (resumed)' if job.get('resume') else ''))
        out = st.train_skill(ref_dir, job['skills_root'], skill_id=job['skill_id'], configs=cfgs,
                             resume=bool(job.get('resume')), progress=lambda p: emit('progress', progress=p),
                             robot_model_dir=job.get('robot_model_dir') or None,
                             log=lambda m: (print(m, flush=True), emit('log', text=m)))
    except _Stopped:
        return done('stopped', 'stopped before the end of training', code=3)
    except (ConfigError, st.SkillTrainingError, ReferenceDataError, ReferenceArtefactError, SceneInputError,
            RetargetError, FileNotFoundError) as e:
        return done('failed', str(e), code=2)
    except TrainingDivergedError as e:
        return done('failed', f'{e} (the last good checkpoint is kept)', code=1)
    except Exception as e:  # noqa: BLE001 - reported to the node; the traceback goes to the log
        traceback.print_exc()
        return done('failed', f'unexpected error: {type(e).__name__}: {e}', code=1)
    if out.skill is None:
        return done('stopped', f'stopped ({out.stop_reason}) with a checkpoint', code=3)
    s = out.skill
    ev = s.evaluation
    result = {'skill_id': s.skill_id, 'skill_dir': str(out.path), 'reference_id': s.reference_id,
              'demonstration_id': s.demonstration_id, 'robot_model_hash': s.robot_model_hash,
              'epochs': s.training.get('epochs'), 'env_steps': s.training.get('env_steps'),
              'stop_reason': s.training.get('stop_reason'), 'policy': ev.get('policy'), 'replay': ev.get('replay')}
    pol = ev.get('policy') or {}
    return done('written', f'skill {s.skill_id} written to {out.path} (success rate {pol.get("success_rate")})',
                result, code=0)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('journal', type=pathlib.Path)
    p.add_argument('--events-fd', type=int, required=True)
    p.add_argument('--parent-pid', type=int, required=True)
    args = p.parse_args(argv)
    die_with_parent(args.parent_pid)

    def on_sigterm(signum, frame):
        raise _Stopped()
    signal.signal(signal.SIGTERM, on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)          # the node decides; Ctrl-C goes to it
    emit = _Events(args.events_fd)
    import torch
    torch.set_num_threads(1)
    return run(args.journal, emit)


if __name__ == '__main__':
    sys.exit(main())
