"""trainer_node: train skills by service call (paper 3.4), a thin shell over
``dexman_rl.core.training_jobs`` (queue, journal, child process).

    ros2 run dexman_rl trainer_node --ros-args -r __ns:=/dexman -p skills_dir:=/data/skills

Every name is relative, so a namespace separates two graphs (``/dexman/...`` in the launch):

- service ``train_skill`` (dexman_msgs/srv/TrainSkill): ``demonstration_id`` names a reference or a
  demonstration (retargeted first, in the job's process); ``overrides`` are
  ``rcl_interfaces/Parameter`` named ``section.key`` of config/rl.yaml / config/sim.yaml (e.g.
  ``ppo.max_epochs`` integer 50, ``ppo.max_wall_s`` double 600). Returns at once: accepted with
  the job id, or rejected with the reason (unknown id, malformed / unknown / ill-typed override,
  budget outside [min_budget_min, max_budget_min]); nothing is started on a rejection;
- service ``training_status`` (GetTrainingStatus): a job's TrainingProgress (empty id: the
  running job, else the latest one); ``found`` false for an unknown id;
- service ``cancel_training`` (CancelTraining): a queued job is dropped, a running one stops at
  the end of its epoch with its checkpoint kept; an unknown or finished job: cancelled = false
  and why;
- action ``run_training`` (RunTraining): the same request; feedback = TrainingProgress at every
  epoch and state change; result = the skill, its success rate, E_r, E_t; cancelling the goal
  cancels the job. A request that fails validation is accepted and then aborted with the reason
  in ``result.message`` (an action goal rejection carries no reason);
- topic ``training/progress`` (TrainingProgress, reliable): every epoch and every state change;
- topic ``skill`` (dexman_msgs/SkillInfo, transient local, last 100): each skill written; at
  start-up the skills of the finished jobs still in the journal are announced again;
- subscriptions ``demonstration`` (DemonstrationInfo) and ``reference`` (ReferenceInfo), transient
  local: ids announced there are found through their artefact_uri.

One job runs at a time, the others queue. A node killed (even with SIGKILL) and started again on
the same ``skills_dir`` resumes the interrupted job from its last checkpoint (training_jobs).

Exit status: 0 on shutdown; 2 for bad parameters or a skills_dir used by another trainer node.
"""
from __future__ import annotations

import math
import pathlib
import threading
import time
import urllib.parse

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from dexman_common.ros.node_util import (ParamError, declare, default_executor_threads, latched_qos, reliable_qos,
                                          run_node)

from ..core import training_jobs as tj

PROGRESS_TOPIC = 'training/progress'
SKILL_TOPIC = 'skill'
SKILL_HISTORY = 100
_STATE_CODE = {tj.QUEUED: 0, tj.RUNNING: 1, tj.SUCCEEDED: 2, tj.FAILED: 3, tj.CANCELLED: 4}


def _uri_to_path(uri: str) -> pathlib.Path | None:
    u = urllib.parse.urlparse(uri or '')
    if not uri or u.scheme not in ('', 'file'):
        return None
    return pathlib.Path(urllib.parse.unquote(u.path))


def _uri(path) -> str:
    return pathlib.Path(path).resolve().as_uri() + ('/' if pathlib.Path(path).is_dir() else '')


def _nan(x) -> float:
    try:
        return float(x) if x is not None else math.nan
    except (TypeError, ValueError):
        return math.nan


def parameter_pairs(params) -> list[tuple[str, object]]:
    """rcl_interfaces/Parameter[] -> [(name, python value)] (NOT_SET -> None, as YAML null)."""
    from rclpy.parameter import parameter_value_to_python
    out = []
    for p in params:
        v = parameter_value_to_python(p.value)
        if isinstance(v, (bytes, bytearray)) or (isinstance(v, list) and v and isinstance(v[0], bytes)):
            raise tj.JobRejected(f'override {p.name!r}: byte values are not supported')
        out.append((p.name, list(v) if isinstance(v, (list, tuple)) else v))
    return out


def progress_message(job: dict, msg_cls, stamp):
    """A job record -> dexman_msgs/TrainingProgress."""
    m = msg_cls()
    m.header.stamp = stamp
    m.job_id = job['job_id']
    m.demonstration_id = job.get('requested_id', '')
    m.state = _STATE_CODE[job['state']]
    p = job.get('progress') or {}
    total = int(p.get('total_epochs') or (job.get('config') or {}).get('ppo', {}).get('max_epochs') or 0)
    m.epoch, m.total_epochs = int(p.get('epoch') or 0), total
    m.env_steps = int(p.get('env_steps') or 0)
    frac = m.epoch / total if total else 0.0
    budget = job.get('budget_s')
    if budget and p.get('elapsed_s') is not None:
        frac = max(frac, float(p['elapsed_s']) / float(budget))
    m.fraction_done = 1.0 if job['state'] == tj.SUCCEEDED else float(min(max(frac, 0.0), 1.0))
    m.mean_reward = _nan(p.get('mean_reward'))
    ev = job.get('last_eval') or {}
    m.success_rate = _nan(ev.get('success_rate'))
    m.elapsed_s = float(job.get('run_s') or 0.0)
    m.eta_s = 0.0 if job['state'] in tj.TERMINAL else _nan(p.get('eta_s'))
    ck = job.get('checkpoint')
    m.checkpoint_uri = pathlib.Path(ck).as_uri() if ck else ''
    terms = p.get('reward_terms') or {}
    m.reward_term_names = [str(k) for k in terms]
    m.reward_term_values = [_nan(v) for v in terms.values()]
    res = job.get('result') or {}
    m.skill_uri = _uri(res['skill_dir']) if job['state'] == tj.SUCCEEDED and res.get('skill_dir') else ''
    text = job.get('message', '')
    if p and job['state'] == tj.RUNNING:
        parts = [f'epoch {m.epoch}/{total}']
        if p.get('mean_reward') is not None:
            parts.append(f'reward {p["mean_reward"]:.4g}/step'
                         + (' (' + ', '.join(f'{k} {v:.4g}' for k, v in terms.items() if v is not None) + ')'
                            if terms else ''))
        if p.get('success_rate') is not None:
            parts.append(f'training-episode success {p["success_rate"]:.2f}')
        if ev.get('success_rate') is not None:
            parts.append(f'evaluation success {ev["success_rate"]:.2f}')
        if p.get('eta_s') is not None:
            parts.append(f'ETA {p["eta_s"]:.0f} s')
        text = '; '.join(parts) + (f' [{text}]' if text and text != 'training' else '')
    m.message = text
    return m


class TrainerNode(Node):

    def __init__(self) -> None:
        super().__init__('trainer_node')
        from dexman_msgs.action import RunTraining
        from dexman_msgs.msg import DemonstrationInfo, ReferenceInfo, SkillInfo, TrainingProgress
        from dexman_msgs.srv import CancelTraining, GetTrainingStatus, TrainSkill
        self._TrainingProgress, self._SkillInfo, self._RunTraining = TrainingProgress, SkillInfo, RunTraining
        self._declare()
        self.progress_pub = self.create_publisher(TrainingProgress, PROGRESS_TOPIC, reliable_qos(100))
        self.skill_pub = self.create_publisher(SkillInfo, SKILL_TOPIC, latched_qos(SKILL_HISTORY))
        self._announced: set[str] = set()
        self._announce_lock = threading.Lock()
        log = self.get_logger()
        try:
            self.manager = tj.JobManager(
                self.skills_dir, on_update=self._on_update, robot_model_dir=self.robot_model_dir,
                reference_root=self.reference_dir, retarget_config_file=self.retarget_config_file,
                cancel_grace_s=self.cancel_grace_s, shutdown_grace_s=self.shutdown_grace_s,
                log=lambda m: log.info(m))
        except (tj.JobsLocked, OSError) as e:
            raise ParamError(f"parameter 'skills_dir': {e}") from None
        for job in self.manager.jobs():
            if job['state'] == tj.SUCCEEDED:
                self._announce(job)

        group = ReentrantCallbackGroup()
        self.create_service(TrainSkill, 'train_skill', self._on_train, callback_group=group)
        self.create_service(GetTrainingStatus, 'training_status', self._on_status, callback_group=group)
        self.create_service(CancelTraining, 'cancel_training', self._on_cancel, callback_group=group)
        self._action = ActionServer(self, RunTraining, 'run_training', execute_callback=self._execute,
                                    goal_callback=lambda _g: GoalResponse.ACCEPT,
                                    cancel_callback=lambda _h: CancelResponse.ACCEPT, callback_group=group)
        self.create_subscription(DemonstrationInfo, 'demonstration', self._on_demonstration, latched_qos(10),
                                 callback_group=group)
        self.create_subscription(ReferenceInfo, 'reference', self._on_reference, latched_qos(10),
                                 callback_group=group)
        self._closing = False
        queued = self.manager.queue()
        log.info(f'ready: skills in {self.manager.skills_root}, references from {self.reference_dir}, '
                 f'demonstrations from {self.demonstration_dir}; budget {self.budget.min_s:g}..'
                 f'{self.budget.max_s:g} s (default {self.budget.default_s:g} s)'
                 + (f'; {len(queued)} job(s) queued from the journal' if queued else ''))

    def _declare(self) -> None:
        from dexman_retarget.core import retarget_pipeline as rp
        root = rp.dexman_root()

        def path(name, default, desc):
            """An empty value means the default (None for the optional paths)."""
            v = declare(self, name, str(default), desc, str, read_only=True) or str(default)
            return pathlib.Path(v).expanduser().resolve() if v else None
        self.skills_dir = path('skills_dir', root / 'artifacts' / 'skills',
                               'root of the skill artefacts (<skills_dir>/<skill_id>/), the PPO work directories '
                               '(.work/) and the job journal (.jobs/); empty: <DEXMAN_ROOT>/artifacts/skills')
        self.reference_dir = path('reference_dir', rp.default_reference_dir(),
                                  'root of the references: an id is looked up as <reference_dir>/<id>/; a '
                                  "demonstration's reference is written there when the job retargets it")
        self.demonstration_dir = path('demonstration_dir', rp.default_demonstration_dir(),
                                      'root of the demonstrations: an id is looked up as <demonstration_dir>/<id>/')
        self.robot_model_dir = path('robot_model_dir', '',
                                    'robot-model build the skills are trained on (empty: config/sim.yaml '
                                    'sim.robot_model_dir)')
        self.retarget_config_file = path('retarget_config_file', '',
                                         'retargeting settings used when a job retargets a demonstration (empty: '
                                         'config/retarget.yaml)')
        default_min = declare(self, 'default_budget_min', 10.0,
                              'wall-clock training budget, minutes, of a request that sets no ppo.max_wall_s '
                              "(0: config/rl.yaml's ppo.max_wall_s)", float, read_only=True)
        lo = declare(self, 'min_budget_min', 0.1, 'smallest budget (ppo.max_wall_s) a request may ask for, minutes',
                     float, read_only=True)
        hi = declare(self, 'max_budget_min', 1440.0,
                     'largest budget a request may ask for, minutes (0: no bound, and no budget allowed)',
                     float, read_only=True)
        self.cancel_grace_s = declare(self, 'cancel_grace_s', 120.0,
                                      'seconds a cancelled running job has to checkpoint and exit before it is killed',
                                      float, read_only=True)
        self.shutdown_grace_s = declare(self, 'shutdown_grace_s', 20.0,
                                        'seconds the running job has to checkpoint when the node shuts down',
                                        float, read_only=True)
        try:
            self.budget = tj.Budget(min_s=60.0 * lo, max_s=60.0 * hi, default_s=60.0 * default_min)
        except ValueError as e:
            raise ParamError(f'budget parameters: {e}') from None
        if self.cancel_grace_s <= 0 or self.shutdown_grace_s <= 0:
            raise ParamError("parameters 'cancel_grace_s' and 'shutdown_grace_s' must be > 0")
        self.resolver = tj.SourceResolver(self.reference_dir, self.demonstration_dir)

    # ------------------------------------------------------------------ publishing
    def _progress(self, job: dict):
        return progress_message(job, self._TrainingProgress, self.get_clock().now().to_msg())

    def _on_update(self, job: dict, what: str) -> None:
        if self._closing_safe():
            return
        try:
            self.progress_pub.publish(self._progress(job))
            if job['state'] == tj.SUCCEEDED and what == 'state':
                self._announce(job)
        except Exception as e:  # noqa: BLE001 - publishing must never break the job manager
            self.get_logger().warning(f'cannot publish the progress of {job.get("job_id")}: {e}')

    def _closing_safe(self) -> bool:
        return getattr(self, '_closing', False)

    def _announce(self, job: dict) -> None:
        res = job.get('result') or {}
        d = res.get('skill_dir')
        if not d or not pathlib.Path(d).is_dir():
            return
        with self._announce_lock:
            if job['job_id'] in self._announced:
                return
            self._announced.add(job['job_id'])
        pol, rep = res.get('policy') or {}, res.get('replay') or {}
        m = self._SkillInfo()
        m.header.stamp, m.header.frame_id = self.get_clock().now().to_msg(), 'world'
        m.skill_id, m.skill_uri, m.job_id = res.get('skill_id', ''), _uri(d), job['job_id']
        m.reference_id, m.demonstration_id = res.get('reference_id', ''), res.get('demonstration_id', '')
        m.success_rate, m.e_r, m.e_t = _nan(pol.get('success_rate')), _nan(pol.get('e_r')), _nan(pol.get('e_t'))
        m.replay_success_rate = _nan(rep.get('success_rate'))
        m.rollouts = int(pol.get('count') or 0)
        m.epochs, m.env_steps = int(res.get('epochs') or 0), int(res.get('env_steps') or 0)
        m.robot_model_hash = res.get('robot_model_hash', '')
        self.skill_pub.publish(m)
        self.get_logger().info(f'skill {m.skill_id} written ({m.skill_uri}); success rate {m.success_rate:.2f}')

    # ------------------------------------------------------------------ requests
    def _submit(self, ident: str, params) -> dict:
        """Validate and queue; JobRejected with the reason."""
        pairs = parameter_pairs(params)
        v = tj.validate_request(ident, pairs, self.resolver, self.budget)
        job = self.manager.submit(ident.strip(), v)
        self.get_logger().info(f'job {job["job_id"]} queued: {v.source.kind} {v.source.id} -> skill {job["skill_id"]}')
        return job

    def _on_train(self, request, response):
        try:
            job = self._submit(request.demonstration_id, request.overrides)
        except tj.JobRejected as e:
            response.accepted, response.job_id, response.message = False, '', str(e)
            self.get_logger().warning(f'train_skill rejected: {e}')
            return response
        response.accepted, response.job_id = True, job['job_id']
        response.message = (f'queued as {job["job_id"]}: skill {job["skill_id"]} will be written to '
                            f'{self.manager.skills_root / job["skill_id"]}')
        return response

    def _on_status(self, request, response):
        jid = request.job_id.strip()
        job = self.manager.get(jid) if jid else self.manager.latest()
        response.found = job is not None
        if job is not None:
            response.progress = self._progress(job)
        return response

    def _on_cancel(self, request, response):
        response.cancelled, response.message = self.manager.cancel(request.job_id.strip())
        if response.cancelled:
            self.get_logger().info(f'cancel_training: {response.message}')
        else:
            self.get_logger().warning(f'cancel_training refused: {response.message}')
        return response

    def _on_demonstration(self, msg) -> None:
        p = _uri_to_path(msg.artefact_uri)
        if msg.demonstration_id and p is not None:
            self.resolver.announce('demonstration', msg.demonstration_id, p)

    def _on_reference(self, msg) -> None:
        p = _uri_to_path(msg.artefact_uri)
        if msg.reference_id and p is not None:
            self.resolver.announce('reference', msg.reference_id, p)

    # ------------------------------------------------------------------ action
    def _execute(self, goal_handle):
        Result = self._RunTraining.Result
        try:
            job = self._submit(goal_handle.request.demonstration_id, goal_handle.request.overrides)
        except tj.JobRejected as e:
            goal_handle.abort()
            return Result(success=False, message=f'rejected: {e}')
        jid = job['job_id']
        last_key = None
        cancel_sent = False
        while True:
            job = self.manager.get(jid)
            key = (job['state'], (job.get('progress') or {}).get('epoch'), job.get('message'))
            if key != last_key:
                last_key = key
                goal_handle.publish_feedback(self._RunTraining.Feedback(progress=self._progress(job)))
            if job['state'] in tj.TERMINAL:
                break
            if goal_handle.is_cancel_requested and not cancel_sent:
                self.manager.cancel(jid)
                cancel_sent = True
            if self._closing_safe():
                goal_handle.abort()
                return Result(success=False, job_id=jid, message='the trainer node is shutting down; the job '
                              'resumes when it starts again')
            time.sleep(0.1)
        res = job.get('result') or {}
        pol = res.get('policy') or {}
        out = Result(success=job['state'] == tj.SUCCEEDED, job_id=jid, message=job.get('message', ''))
        if out.success:
            out.skill_uri = _uri(res['skill_dir'])
            out.success_rate = _nan(pol.get('success_rate'))
            out.mean_rotation_error, out.mean_position_error = _nan(pol.get('e_r')), _nan(pol.get('e_t'))
            goal_handle.succeed()
        elif job['state'] == tj.CANCELLED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return out

    def shutdown(self) -> None:
        self._closing = True
        self.manager.shutdown()


def main(args: list[str] | None = None) -> None:
    run_node(TrainerNode, args, threads=default_executor_threads())


if __name__ == '__main__':
    main()
