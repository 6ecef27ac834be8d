"""trainer_node as a real process over DDS (a namespace of its own, relative names): rejections
with their exact reasons (and the node keeps serving), service latencies, queueing, cancel of a
queued and of a running job, progress on training/progress, the skill announcement, a SIGKILL of
the node in the middle of a job (the child goes with it) and the resume from the checkpoint after
a restart, and the RunTraining action (feedback per epoch, result, a rejected request).

The jobs train the tiny configuration below on the shared reference of tests/rl_reference.py."""
import json
import os
import pathlib
import signal
import statistics
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.ros

from dexman_description import robot_model as rm  # noqa: E402

_OK, _WHY = rm.assets_available()
if not _OK:
    pytest.skip(f'robot asset packages not installed: {_WHY}', allow_module_level=True)

ROOT = pathlib.Path(__file__).resolve().parents[1]
NS = '/trainer_test'
TINY = {'ppo.num_envs': 4, 'ppo.minibatch_size': 128, 'ppo.max_epochs': 6, 'ppo.save_every_epochs': 1,
        'job.render_video': False, 'job.eval_envs': 2, 'success.rollouts_per_sequence': 2, 'env.threads': 1,
        'env.max_unreachable_fraction': 1.0}      # these tests are about the node, not the fixture's reach


def _param(name, value):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    v = ParameterValue()
    if isinstance(value, bool):
        v.type, v.bool_value = ParameterType.PARAMETER_BOOL, value
    elif isinstance(value, int):
        v.type, v.integer_value = ParameterType.PARAMETER_INTEGER, value
    elif isinstance(value, float):
        v.type, v.double_value = ParameterType.PARAMETER_DOUBLE, value
    else:
        v.type, v.string_value = ParameterType.PARAMETER_STRING, str(value)
    return Parameter(name=name, value=v)


def _overrides(**changes):
    from rl_reference import sim_config
    d = dict(TINY, **{'sim.cache_dir': sim_config().cache_dir})
    d.update({k.replace('__', '.'): v for k, v in changes.items()})
    return [_param(k, v) for k, v in d.items()]


def _alive(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for d in pathlib.Path('/proc').iterdir():
        if d.name.isdigit():
            try:
                if int((d / 'stat').read_text().rsplit(')', 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


class Graph:
    """The node process and a client node (services, action, subscriptions) in this process."""

    def __init__(self, root: pathlib.Path):
        import rclpy
        from rclpy.action import ActionClient
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        from dexman_msgs.action import RunTraining
        from dexman_msgs.msg import SkillInfo, TrainingProgress
        from dexman_msgs.srv import CancelTraining, GetTrainingStatus, TrainSkill
        from rl_reference import reference_dir, robot_model_dir
        self.root, self.ref = root, reference_dir()
        self.model = robot_model_dir()
        self.proc = None
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node('trainer_node_test', context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        self.progress, self.skills = [], []
        self.node.create_subscription(TrainingProgress, f'{NS}/training/progress', self.progress.append,
                                      QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
        self.node.create_subscription(SkillInfo, f'{NS}/skill', self.skills.append,
                                      QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                                 durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.train = self.node.create_client(TrainSkill, f'{NS}/train_skill')
        self.status = self.node.create_client(GetTrainingStatus, f'{NS}/training_status')
        self.cancel = self.node.create_client(CancelTraining, f'{NS}/cancel_training')
        self.action = ActionClient(self.node, RunTraining, f'{NS}/run_training')
        self.TrainSkill, self.GetTrainingStatus, self.CancelTraining = TrainSkill, GetTrainingStatus, CancelTraining
        self.RunTraining = RunTraining
        self.latency: dict[str, list[float]] = {}

    def start(self):
        cmd = [sys.executable, '-m', 'dexman_rl.nodes.trainer_node', '--ros-args', '-r', f'__ns:={NS}',
               '--params-file', str(ROOT / 'config' / 'trainer_node.yaml'),
               '-p', f'skills_dir:={self.root / "skills"}', '-p', f'reference_dir:={self.ref.parent}',
               '-p', f'demonstration_dir:={self.root / "demos"}', '-p', f'robot_model_dir:={self.model}',
               '-p', 'cancel_grace_s:=60.0']
        self.log = open(self.root / f'node_{time.monotonic_ns()}.log', 'w+')
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                     env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))
        end = time.monotonic() + 60
        while not (self.train.wait_for_service(timeout_sec=0.2) and self.status.service_is_ready()
                   and self.cancel.service_is_ready()):
            self.check_alive()
            assert time.monotonic() < end, 'trainer_node services never appeared:\n' + self.output()
        assert self.action.wait_for_server(timeout_sec=20)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def check_alive(self):
        if self.proc.poll() is not None:
            pytest.fail(f'trainer_node exited with {self.proc.returncode}:\n{self.output()}')

    def spin_until(self, cond, timeout, what=''):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            self.check_alive()
            self.ex.spin_once(timeout_sec=0.05)
        assert cond(), f'timed out ({timeout} s) waiting for {what}\n{self.output()[-4000:]}'

    def call(self, client, request, kind):
        t0 = time.perf_counter()
        fut = client.call_async(request)
        self.spin_until(fut.done, 30, f'an answer from {kind}')
        self.latency.setdefault(kind, []).append(time.perf_counter() - t0)
        return fut.result()

    def submit(self, ident, overrides, kind='train_skill accept'):
        return self.call(self.train, self.TrainSkill.Request(demonstration_id=ident, overrides=overrides), kind)

    def state(self, job_id):
        r = self.call(self.status, self.GetTrainingStatus.Request(job_id=job_id), 'training_status')
        return r.progress if r.found else None

    def epoch_of(self, job_id) -> int:
        return max([p.epoch for p in self.progress if p.job_id == job_id and p.state == 1], default=0)

    def stop(self, sig=signal.SIGINT):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.output()

    def close(self):
        self.stop()
        self.ex.shutdown()
        self.node.destroy_node()
        import rclpy
        rclpy.shutdown(context=self.ctx)


@pytest.fixture(scope='module')
def graph(tmp_path_factory):
    g = Graph(tmp_path_factory.mktemp('trainer_node'))
    g.start()
    yield g
    log = g.stop()
    g.close()
    assert 'Traceback' not in log and 'never retrieved' not in log, log[-4000:]
    assert g.proc.returncode == 0, log[-4000:]
    lat = {k: {'n': len(v), 'median_ms': round(1e3 * statistics.median(v), 1), 'max_ms': round(1e3 * max(v), 1)}
           for k, v in g.latency.items()}
    print('\nservice latencies (client side, DDS loopback):', json.dumps(lat, indent=1))


def test_config_file_keys_are_declared(graph):
    from rcl_interfaces.srv import ListParameters
    cli = graph.node.create_client(ListParameters, f'{NS}/trainer_node/list_parameters')
    assert cli.wait_for_service(timeout_sec=10)
    names = set(graph.call(cli, ListParameters.Request(), 'list_parameters').result.names)
    keys = yaml.safe_load((ROOT / 'config' / 'trainer_node.yaml').read_text())['/**/trainer_node']['ros__parameters']
    assert set(keys) <= names
    assert {'skills_dir', 'reference_dir', 'demonstration_dir', 'robot_model_dir', 'default_budget_min'} <= names


def test_rejections_with_reasons(graph):
    g = graph
    cases = [
        ('no_such_demo', _overrides(), "unknown demonstration or reference 'no_such_demo'"),
        ('../etc', _overrides(), 'invalid id'),
        ('', _overrides(), 'no id given'),
        (g.ref.name, _overrides() + [_param('max_epochs', 3)], "malformed override name 'max_epochs'"),
        (g.ref.name, _overrides() + [_param('ppo.nope', 3)], "unknown key(s) ['nope'] for PPOConfig"),
        (g.ref.name, [p for p in _overrides() if p.name != 'ppo.max_epochs'] + [_param('ppo.max_epochs', 'six')],
         "key 'max_epochs' of PPOConfig must be int, got 'six'"),
        (g.ref.name, _overrides(ppo__max_wall_s=1.0),
         'budget ppo.max_wall_s=1 s is outside the allowed range [6, 86400] s'),
        (g.ref.name, _overrides(ppo__max_wall_s=1e6), 'outside the allowed range'),
    ]
    for ident, over, why in cases:
        r = g.submit(ident, over, 'train_skill reject')
        assert not r.accepted and r.job_id == '' and why in r.message, (ident, r.message)
    r = g.call(g.cancel, g.CancelTraining.Request(job_id='job_unknown'), 'cancel_training unknown')
    assert not r.cancelled and r.message == "unknown job 'job_unknown'"
    r = g.call(g.status, g.GetTrainingStatus.Request(job_id='job_unknown'), 'training_status')
    assert not r.found
    # nothing was started: no journal, no work directory
    assert not list((g.root / 'skills' / '.jobs').glob('job_*.json'))
    assert not (g.root / 'skills' / '.work').exists()
    # a bad action request: accepted, then aborted with the reason in the result
    fut = g.action.send_goal_async(g.RunTraining.Goal(demonstration_id='no_such_demo', overrides=_overrides()))
    g.spin_until(fut.done, 20, 'the goal response')
    res_fut = fut.result().get_result_async()
    g.spin_until(res_fut.done, 20, 'the action result')
    res = res_fut.result().result
    assert not res.success and "rejected: unknown demonstration or reference 'no_such_demo'" in res.message


def test_queue_cancel_sigkill_and_resume(graph):
    """Job A runs, B and C queue; B is cancelled while queued; the node is SIGKILLed while A trains
    (its child dies with it); after a restart A resumes from its checkpoint and writes its skill
    (announced), then C runs and is cancelled while running."""
    from dexman_common.artefacts import skill as skm
    from dexman_msgs.msg import TrainingProgress as TP
    g = graph
    a = g.submit(g.ref.name, _overrides())
    assert a.accepted and a.job_id and 'will be written to' in a.message
    b = g.submit(g.ref.name, _overrides())
    c = g.submit(g.ref.name, _overrides(ppo__max_epochs=200))
    assert b.accepted and c.accepted and len({a.job_id, b.job_id, c.job_id}) == 3
    assert g.state(b.job_id).state == TP.STATE_QUEUED and g.state(c.job_id).state == TP.STATE_QUEUED
    r = g.call(g.cancel, g.CancelTraining.Request(job_id=b.job_id), 'cancel_training queued')
    assert r.cancelled and r.message == f'job {b.job_id} cancelled (it was queued)'
    assert g.state(b.job_id).state == TP.STATE_CANCELLED

    g.spin_until(lambda: g.epoch_of(a.job_id) >= 2, 120, 'epoch 2 of job A')
    st = g.state(a.job_id)
    assert st.state == TP.STATE_RUNNING and st.total_epochs == 6 and st.env_steps >= 2 * 4 * 32
    assert list(st.reward_term_names) == ['contact', 'object', 'imitation'] and len(st.reward_term_values) == 3
    assert st.checkpoint_uri.startswith('file://') and st.checkpoint_uri.endswith('checkpoints/last.pth')
    assert 'epoch' in st.message and 'ETA' in st.message and st.elapsed_s > 0
    children = [p for p in _children(g.proc.pid) if 'training_child' in pathlib.Path(f'/proc/{p}/cmdline').read_text()]
    assert len(children) == 1, children
    last_seen = g.epoch_of(a.job_id)
    g.proc.send_signal(signal.SIGKILL)
    g.proc.wait(10)
    t_kill = time.monotonic()
    while _alive(children[0]) and time.monotonic() - t_kill < 5:
        time.sleep(0.05)
    assert not _alive(children[0]), 'the training child outlived the SIGKILLed node'
    journal = json.loads((g.root / 'skills' / '.jobs' / f'{a.job_id}.json').read_text())
    assert journal['state'] == 'running'
    killed_at = max(last_seen, journal['progress']['epoch'])

    g.progress.clear()
    g.start()
    g.spin_until(lambda: any(s.job_id == a.job_id for s in g.skills), 180, 'the skill of job A')
    done = json.loads((g.root / 'skills' / '.jobs' / f'{a.job_id}.json').read_text())
    resume = done['resumes'][-1]
    assert resume['checkpoint_epoch'] >= 2 and resume['last_epoch'] == killed_at
    assert resume['epochs_lost'] == killed_at - resume['checkpoint_epoch']
    # after the restart the job reports its checkpoint's epoch, then trains the epochs after it
    resumed = sorted({p.epoch for p in g.progress if p.job_id == a.job_id and p.state == TP.STATE_RUNNING})
    assert resumed == list(range(resume['checkpoint_epoch'], 7))
    print(f'\nSIGKILL at epoch {killed_at}: resumed from the checkpoint of epoch {resume["checkpoint_epoch"]} '
          f'({resume["epochs_lost"]} epoch(s) lost)')
    info = next(s for s in g.skills if s.job_id == a.job_id)
    skill = skm.load(pathlib.Path(info.skill_uri[len('file://'):]))
    assert skill.training['epochs'] == 6 and info.epochs == 6 and info.rollouts == 2
    assert info.reference_id == skill.reference_id == g.ref.name and info.skill_id == skill.skill_id
    assert info.robot_model_hash == skill.robot_model_hash and info.header.frame_id == 'world'
    assert np.isclose(info.success_rate, skill.evaluation['policy']['success_rate'])
    final = g.state(a.job_id)
    assert final.state == TP.STATE_SUCCEEDED and final.skill_uri == info.skill_uri and final.fraction_done == 1.0
    assert g.state(b.job_id).state == TP.STATE_CANCELLED            # the journal kept B's end too

    # C runs next; cancel it while it trains: it stops at the end of the epoch, checkpoint kept
    g.spin_until(lambda: g.epoch_of(c.job_id) >= 1, 120, 'epoch 1 of job C')
    r = g.call(g.cancel, g.CancelTraining.Request(job_id=c.job_id), 'cancel_training running')
    assert r.cancelled and 'stops at the end of its running epoch' in r.message
    g.spin_until(lambda: any(p.job_id == c.job_id and p.state == TP.STATE_CANCELLED for p in g.progress), 60,
                 'job C cancelled')
    assert g.state(c.job_id).epoch < 200
    r = g.call(g.cancel, g.CancelTraining.Request(job_id=c.job_id), 'cancel_training finished')
    assert not r.cancelled and r.message == f'job {c.job_id} has already cancelled'


def test_run_training_action(graph):
    """A RunTraining goal: feedback at each epoch, the result carries the skill and its figures."""
    from dexman_common.artefacts import skill as skm
    g = graph
    feedback = []
    goal = g.RunTraining.Goal(demonstration_id=g.ref.name, overrides=_overrides(ppo__max_epochs=2))
    fut = g.action.send_goal_async(goal, feedback_callback=lambda m: feedback.append(m.feedback.progress))
    g.spin_until(fut.done, 20, 'the goal response')
    handle = fut.result()
    assert handle.accepted
    res_fut = handle.get_result_async()
    g.spin_until(res_fut.done, 180, 'the training result')
    res = res_fut.result().result
    assert res.success, res.message
    skill = skm.load(pathlib.Path(res.skill_uri[len('file://'):]))
    pol = skill.evaluation['policy']
    assert np.isclose(res.success_rate, pol['success_rate'])
    if pol['e_r'] is None:
        assert np.isnan(res.mean_rotation_error) and np.isnan(res.mean_position_error)
    else:
        assert np.isclose(res.mean_rotation_error, pol['e_r']) and np.isclose(res.mean_position_error, pol['e_t'])
    epochs = sorted({f.epoch for f in feedback if f.job_id == res.job_id and f.state == 1 and f.epoch})
    assert epochs == [1, 2]
    assert feedback[-1].state == 2 and feedback[-1].skill_uri == res.skill_uri
    g.spin_until(lambda: any(s.job_id == res.job_id for s in g.skills), 10, 'the announcement')
