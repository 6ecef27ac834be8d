"""policy_node as a real process over DDS, beside robot_state_publisher_py in its namespace: a tiny
skill (trained once in a module fixture) executed in simulation at 30 Hz (JointState of every URDF
joint, one-point JointTrajectory commands of the actuated joints that reproduce the exported
rollout, object and target TF, link TF from the state publisher, markers, the URDF) and open
loop (exactly the rollout.npz points); a skill trained on another robot model, or none at all, is
refused with the reason and the node keeps serving."""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import yaml

pytestmark = pytest.mark.ros

from dexman_description import robot_model as rm  # noqa: E402

_OK, _WHY = rm.assets_available()
if not _OK:
    pytest.skip(f'robot asset packages not installed: {_WHY}', allow_module_level=True)

ROOT = pathlib.Path(__file__).resolve().parents[1]
NS = '/policy_test'
TINY = {'ppo': {'num_envs': 4, 'minibatch_size': 128, 'max_epochs': 6, 'save_every_epochs': 1},
        'job': {'render_video': False, 'eval_envs': 2}, 'success': {'rollouts_per_sequence': 2},
        'env': {'threads': 1, 'max_unreachable_fraction': 1.0}}   # about the node, not the fixture's reach


def _urdf_joints(path):
    out = {}
    for j in ET.parse(str(path)).getroot().iter('joint'):
        if j.get('type') != 'fixed':
            lim = j.find('limit')
            out[j.get('name')] = (float(lim.get('lower')), float(lim.get('upper')))
    return out


def _sec(d) -> float:
    return d.sec + 1e-9 * d.nanosec


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    from rl_reference import reference_dir, robot_model_dir, sim_config
    from dexman_common.artefacts import skill as skm
    from dexman_rl.core import skill_training as st
    root = tmp_path_factory.mktemp('policy_node')
    c = st.load_configs(TINY)
    cfgs = st.RLConfigs(**{**{f: getattr(c, f) for f in ('env', 'reward', 'success', 'ppo', 'video', 'job')},
                           'sim': sim_config()})
    st.train_skill(reference_dir(), root / 'skills', skill_id='tiny', configs=cfgs, robot_model_dir=robot_model_dir())
    # the same skill, as if trained on another build of the robot model
    other = root / 'skills' / 'tiny_other_model'
    shutil.copytree(root / 'skills' / 'tiny', other)
    meta = json.loads((other / skm.META_NAME).read_text())
    meta['robot_model_hash'] = 'f' * 64
    (other / skm.META_NAME).write_text(json.dumps(meta))
    return root, skm.load(root / 'skills' / 'tiny'), robot_model_dir()


class Graph:
    def __init__(self, root, model):
        import rclpy
        from rclpy.action import ActionClient
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        from std_msgs.msg import String
        from tf2_msgs.msg import TFMessage
        from trajectory_msgs.msg import JointTrajectory
        from visualization_msgs.msg import MarkerArray

        from dexman_msgs.action import ExecuteSkill
        self.root, self.model, self.ExecuteSkill = root, model, ExecuteSkill
        self.logf = open(root / 'nodes.log', 'w+')
        env = dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0')
        self.procs = [
            subprocess.Popen([sys.executable, '-m', 'dexman_rl.nodes.policy_node', '--ros-args', '-r', f'__ns:={NS}',
                              '--params-file', str(ROOT / 'config' / 'policy_node.yaml'),
                              '-p', f'skills_dir:={root / "skills"}', '-p', f'robot_model_dir:={model}'],
                             stdout=self.logf, stderr=subprocess.STDOUT, env=env),
            subprocess.Popen([sys.executable, '-m', 'dexman_description.nodes.robot_state_publisher', '--ros-args',
                              '-r', f'__ns:={NS}', '-p', 'use_robot_description_topic:=true'],
                             stdout=self.logf, stderr=subprocess.STDOUT, env=env)]
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx)
        self.node = rclpy.create_node('policy_node_test', context=self.ctx)
        self.ex = SingleThreadedExecutor(context=self.ctx)
        self.ex.add_node(self.node)
        rel = QoSProfile(depth=500, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.got = {k: [] for k in ('js', 'traj', 'tf', 'markers', 'desc')}
        self.node.create_subscription(JointState, f'{NS}/joint_states', self.got['js'].append, rel)
        self.node.create_subscription(JointTrajectory, f'{NS}/joint_trajectory', self.got['traj'].append, rel)
        self.node.create_subscription(TFMessage, '/tf', self.got['tf'].append, rel)
        self.node.create_subscription(MarkerArray, f'{NS}/markers', self.got['markers'].append, latched)
        self.node.create_subscription(String, f'{NS}/robot_description', self.got['desc'].append, latched)
        self.action = ActionClient(self.node, ExecuteSkill, f'{NS}/execute_skill')
        end = time.monotonic() + 60
        while not self.action.wait_for_server(timeout_sec=0.2):
            self.check_alive()
            assert time.monotonic() < end, 'execute_skill never appeared\n' + self.output()

    def output(self):
        self.logf.flush()
        self.logf.seek(0)
        return self.logf.read()

    def check_alive(self):
        for p in self.procs:
            if p.poll() is not None:
                pytest.fail(f'{p.args[2]} exited with {p.returncode}:\n{self.output()[-4000:]}')

    def spin_until(self, cond, timeout, what=''):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            self.check_alive()
            self.ex.spin_once(timeout_sec=0.02)
        assert cond(), f'timed out waiting for {what}\n{self.output()[-4000:]}'

    def execute(self, uri, simulate, timeout=120):
        """(status, result, feedback list, wall seconds from acceptance to the result)."""
        for k, v in self.got.items():
            if k != 'desc':                  # latched once at the node's start
                v.clear()
        feedback = []
        fut = self.action.send_goal_async(self.ExecuteSkill.Goal(skill_uri=uri, simulate=simulate),
                                          feedback_callback=lambda m: feedback.append(m.feedback))
        self.spin_until(fut.done, 20, 'the goal response')
        handle = fut.result()
        assert handle.accepted
        t0 = time.monotonic()
        res = handle.get_result_async()
        self.spin_until(res.done, timeout, 'the result')
        wall = time.monotonic() - t0
        end = time.monotonic() + 0.5                # the last messages of the run
        while time.monotonic() < end:
            self.ex.spin_once(timeout_sec=0.02)
        return res.result().status, res.result().result, feedback, wall

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.ex.shutdown()
        self.node.destroy_node()
        import rclpy
        rclpy.shutdown(context=self.ctx)
        return self.output()


@pytest.fixture(scope='module')
def graph(setup):
    root, _, model = setup
    g = Graph(root, model)
    yield g
    log = g.close()
    assert 'Traceback' not in log and 'never retrieved' not in log, log[-4000:]
    assert [p.returncode for p in g.procs] == [0, 0], log[-4000:]


def test_config_file_keys_are_declared(graph):
    from rcl_interfaces.srv import ListParameters
    cli = graph.node.create_client(ListParameters, f'{NS}/policy_node/list_parameters')
    assert cli.wait_for_service(timeout_sec=10)
    fut = cli.call_async(ListParameters.Request())
    graph.spin_until(fut.done, 10, 'list_parameters')
    keys = yaml.safe_load((ROOT / 'config' / 'policy_node.yaml').read_text())['/**/policy_node']['ros__parameters']
    assert set(keys) <= set(fut.result().result.names)


def test_simulated_execution(setup, graph):
    from builtin_interfaces.msg import Time
    from visualization_msgs.msg import Marker
    from action_msgs.msg import GoalStatus
    root, skill, model = setup
    g = graph
    status, res, fb, wall = g.execute('tiny', True)
    assert status == GoalStatus.STATUS_SUCCEEDED, res.message
    rollout = skill.load_rollout()
    T = len(rollout.time_from_start)
    total = skill.num_frames - 1
    steps = res.steps
    assert 1 <= steps <= total and ('success' in res.message or 'ended early' in res.message or 'failed' in res.message)
    # feedback per step
    assert [f.step for f in fb] == list(range(1, len(fb) + 1)) and all(f.total_steps == total for f in fb)
    assert len(fb) in (steps, steps - 1)             # an early end is not a streamed state
    assert all(np.isfinite(f.position_error) and f.position_error >= 0 for f in fb)
    # paced at 30 Hz of wall clock
    assert wall >= 0.9 * (steps - 1) / 30.0, (wall, steps)

    # joint states: every movable URDF joint (coupled J0 included), the start state + one per step
    urdf = _urdf_joints(model / rm.URDF_NAME)
    js = g.got['js']
    assert len(js) == len(fb) + 1
    assert all(list(m.name) == list(urdf) for m in js) and 'rh_FFJ0' in js[0].name and len(js[0].name) == 58
    stamps = [_sec(m.header.stamp) for m in js]
    assert np.all(np.diff(stamps) > 0)
    assert abs(np.median(np.diff(stamps)) - 1 / 30.0) < 0.2 / 30.0       # the 30 Hz rate parameter
    # commands: one-point trajectories of the actuated joints, within the URDF limits, reproducing
    # the exported rollout (the same deterministic, noise-free run)
    traj = g.got['traj']
    assert len(traj) == steps
    assert all(list(m.joint_names) == rollout.joint_names for m in traj) and len(rollout.joint_names) == 50
    assert not any(n.endswith('J0') and n[3:5] in ('FF', 'MF', 'RF', 'LF') for n in rollout.joint_names)
    assert all(len(m.points) == 1 and np.isclose(_sec(m.points[0].time_from_start), 1 / 30.0, atol=1e-8)
               and m.header.stamp == Time() for m in traj)
    q = np.array([m.points[0].positions for m in traj])
    lo = np.array([urdf[n][0] for n in rollout.joint_names])
    hi = np.array([urdf[n][1] for n in rollout.joint_names])
    assert np.all(q >= lo) and np.all(q <= hi)
    n = min(len(q), T - 1)
    np.testing.assert_allclose(q[:n], rollout.positions[1:n + 1], atol=1e-6)

    # TF: the objects and their targets in world, and the robot's links from robot_state_publisher_py
    tfs = [t for m in g.got['tf'] for t in m.transforms]
    obj = [t for t in tfs if t.child_frame_id == 'object_0']
    tgt = [t for t in tfs if t.child_frame_id == 'object_0_target']
    assert len(obj) == len(tgt) == len(js) and all(t.header.frame_id == 'world' for t in obj + tgt)
    p0 = obj[0].transform.translation
    np.testing.assert_allclose([p0.x, p0.y, p0.z], rollout.object_poses[0, 0, :3, 3], atol=1e-6)
    assert any(t.child_frame_id == 'right_wrist_yaw_link' for t in tfs), 'no link TF from robot_state_publisher_py'
    # markers: the object mesh in its frame and, translucent, in its target frame
    mk = g.got['markers'][-1].markers
    assert mk[0].action == Marker.DELETEALL
    by_ns = {(m.ns, m.id): m for m in mk[1:]}
    mesh = by_ns[('objects', 0)]
    assert mesh.type == Marker.TRIANGLE_LIST and mesh.header.frame_id == 'object_0' and mesh.frame_locked
    assert len(mesh.points) > 0 and len(mesh.points) % 3 == 0
    assert by_ns[('targets', 0)].header.frame_id == 'object_0_target' and by_ns[('targets', 0)].color.a < 1.0
    # the URDF, latched
    assert g.got['desc'] and '<robot' in g.got['desc'][-1].data
    print(f'\nsimulated: {steps} steps in {wall:.2f} s at rate 30 Hz; {res.message}')


def test_open_loop_streams_the_exported_rollout(setup, graph):
    from action_msgs.msg import GoalStatus
    root, skill, model = setup
    g = graph
    status, res, fb, wall = g.execute((root / 'skills' / 'tiny').as_uri(), False)
    assert status == GoalStatus.STATUS_SUCCEEDED, res.message
    r = skill.load_rollout()
    T = len(r.time_from_start)
    # exactly one trajectory: every rollout point, same names, times and positions
    assert len(g.got['traj']) == 1
    traj = g.got['traj'][0]
    assert list(traj.joint_names) == r.joint_names and len(traj.points) == T
    np.testing.assert_array_equal(np.array([p.positions for p in traj.points]), r.positions)
    np.testing.assert_allclose([_sec(p.time_from_start) for p in traj.points], r.time_from_start, atol=1e-9)
    # the recorded states, one per point, and the recorded object poses on TF
    assert len(g.got['js']) == T and len(fb) == T - 1
    obj = [t for m in g.got['tf'] for t in m.transforms if t.child_frame_id == 'object_0']
    got = np.array([[t.transform.translation.x, t.transform.translation.y, t.transform.translation.z] for t in obj])
    np.testing.assert_allclose(got, r.object_poses[0, :, :3, 3], atol=1e-9)
    js = np.array([m.position for m in g.got['js']])
    names = list(g.got['js'][0].name)
    cols = [names.index(n) for n in r.joint_names]
    np.testing.assert_allclose(js[:, cols], r.measured_positions, atol=1e-9)
    # a coupled J0 follows its J1 through the coupling tendon (0.00805 / 0.00705), within its limits
    j1, j0 = r.measured_positions[:, r.joint_names.index('rh_FFJ1')], js[:, names.index('rh_FFJ0')]
    np.testing.assert_allclose(j0, np.clip(j1 * 0.00805 / 0.00705, 0.0, 1.571), atol=1e-9)
    assert res.steps == len(fb) and wall >= 0.9 * (T - 2) / 30.0


def test_bad_goals_are_refused_and_the_node_keeps_serving(setup, graph):
    from action_msgs.msg import GoalStatus
    root, skill, model = setup
    g = graph
    for simulate in (True, False):
        status, res, _, _ = g.execute('tiny_other_model', simulate)
        assert status == GoalStatus.STATUS_ABORTED and not res.success
        assert f'was trained on robot model {"f" * 12}, the installed one ({model}) is ' in res.message, res.message
    status, res, _, _ = g.execute('no_such_skill', True)
    assert status == GoalStatus.STATUS_ABORTED and res.message.startswith('no skill at')
    status, res, _, _ = g.execute('http://example.com/skill', False)
    assert status == GoalStatus.STATUS_ABORTED and 'only file:// URIs' in res.message
    assert not g.got['traj'] and not g.got['js']                # nothing was streamed for them
    status, res, _, _ = g.execute('tiny', False)
    assert status == GoalStatus.STATUS_SUCCEEDED and res.steps > 0
