"""retarget_node as a real process over DDS: the service retargets a prepared demonstration and
answers with the reference; the JointTrajectory (every joint, 30 Hz), ReferenceInfo,
/robot_description and /joint_states arrive; an unknown id gives success=false and the node keeps
answering; a demonstration announced on /dexman/demonstration is retargeted automatically.
The robot model is built by the node itself (robot_model_dir holds no build yet)."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

mujoco = pytest.importorskip('mujoco')
pytest.importorskip('torch')

from dexman_common.artefacts import demonstration as dm  # noqa: E402
from dexman_synthetic.core import demo_alignment as da  # noqa: E402
from dexman_common.artefacts import reference as refm  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402
from dexman_synthetic.core import ground_truth as gtm  # noqa: E402
from dexman_synthetic.core.generate import GenerateOptions, generate  # noqa: E402

_OK, _WHY = rm.assets_available()
if not _OK:
    pytest.skip(f'robot asset packages not installed: {_WHY}', allow_module_level=True)


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('retarget_node')
    case = root / 'case'
    generate(GenerateOptions('pick_place', 'cylinder', 0, width=160, height=120, fps=20.0, duration=1.5),
             case, progress=False)
    gt = gtm.load(case)
    demo, meshes, _ = da.demonstration_from_ground_truth(gt, 'demo_a')
    dm.save(demo, root / 'demos', meshes)
    demo_b, _, _ = da.demonstration_from_ground_truth(gt, 'demo_b')     # announced, outside the root
    dm.save(demo_b, root / 'elsewhere', meshes)
    return root


def _start(root):
    cmd = [sys.executable, '-m', 'dexman_retarget.nodes.retarget_node', '--ros-args',
           '-p', f'demonstration_root:={root / "demos"}', '-p', f'output_dir:={root / "refs"}',
           '-p', f'robot_model_dir:={root / "robot"}', '-p', 'auto:=true']
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.communicate()[0]


def test_service_topics_and_auto(setup):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from dexman_msgs.msg import DemonstrationInfo, ReferenceInfo
    from dexman_msgs.srv import RetargetDemonstration
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String
    from trajectory_msgs.msg import JointTrajectory

    root = setup
    proc = _start(root)
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node('retarget_node_test', context=ctx)
    from rclpy.executors import SingleThreadedExecutor
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    latched = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    got = {'traj': [], 'info': [], 'desc': [], 'js': []}
    node.create_subscription(JointTrajectory, '/dexman/reference/joint_trajectory', got['traj'].append, latched)
    node.create_subscription(ReferenceInfo, '/dexman/reference', got['info'].append, latched)
    node.create_subscription(String, '/robot_description', got['desc'].append, latched)
    node.create_subscription(JointState, '/joint_states', got['js'].append, 10)
    announce = node.create_publisher(DemonstrationInfo, '/dexman/demonstration', latched)
    client = node.create_client(RetargetDemonstration, '/dexman/retarget')

    def spin_until(cond, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and not cond():
            if proc.poll() is not None:
                pytest.fail(f'node exited with {proc.returncode}:\n{_stop(proc)}')
            ex.spin_once(timeout_sec=0.1)
        return cond()

    def call(demo_id, timeout=60):
        fut = client.call_async(RetargetDemonstration.Request(demonstration_id=demo_id))
        assert spin_until(fut.done, timeout), f'no answer for {demo_id!r}'
        return fut.result()

    try:
        end = time.monotonic() + 60
        while not client.wait_for_service(timeout_sec=0.5):
            if proc.poll() is not None or time.monotonic() > end:
                pytest.fail(f'service never appeared:\n{_stop(proc)}')
        # the URDF is latched as soon as the node is up
        assert spin_until(lambda: got['desc'], 10)
        assert got['desc'][0].data.startswith('<') and '<robot' in got['desc'][0].data
        assert 'rh_FFJ0' in got['desc'][0].data
        assert (root / 'robot' / rm.MANIFEST_NAME).is_file()          # built by the node

        r = call('no_such_demo')
        assert not r.success and 'unknown demonstration' in r.message and 'no_such_demo' in r.message
        r = call('../etc')
        assert not r.success and 'invalid demonstration id' in r.message

        t0 = time.monotonic()
        r = call('demo_a')
        elapsed = time.monotonic() - t0
        assert r.success, r.message
        assert r.reference_id == 'demo_a' and r.artefact_uri == (root / 'refs' / 'demo_a').as_uri() + '/'
        assert 'wrist IK' in r.message and 'unreachable frames' in r.message
        ref = refm.load(root / 'refs' / 'demo_a')
        # the settings it was made with: config_file's (the default config/retarget.yaml)
        from dexman_retarget.core import options as ro
        assert ref.provenance['config_file'] == str(ro.default_config_file().resolve())
        assert ref.provenance['config'] == ro.load_options(ro.default_config_file(), progress=False).to_dict()
        assert ref.provenance['workspace_fit']['method'] == 'whole_demo'

        assert spin_until(lambda: got['traj'] and got['info'], 10)
        info = got['info'][-1]
        assert (info.reference_id, info.demonstration_id) == ('demo_a', 'demo_a')
        assert info.frame_count == ref.n_frames == 44 and info.frame_rate == 30.0
        assert info.unreachable_frames == ref.unreachable_frames and info.artefact_uri == r.artefact_uri
        traj = got['traj'][-1]
        assert list(traj.joint_names) == ref.joint_names and len(traj.joint_names) == 58
        assert len(traj.points) == 44
        tfs = np.array([p.time_from_start.sec + 1e-9 * p.time_from_start.nanosec for p in traj.points])
        np.testing.assert_allclose(tfs, np.arange(44) / 30.0, atol=1e-9)
        np.testing.assert_allclose(np.array([p.positions for p in traj.points]), ref.joint_positions)

        # /joint_states plays the reference (names of every joint, positions from it)
        got['js'].clear()
        assert spin_until(lambda: len(got['js']) >= 10, 10)
        js = got['js'][-1]
        assert list(js.name) == ref.joint_names
        assert any(np.allclose(js.position, row) for row in ref.joint_positions)

        # still answering after the errors and the job
        r = call('no_such_demo')
        assert not r.success and 'unknown demonstration' in r.message

        # auto: an announced demonstration outside demonstration_root is retargeted
        msg = DemonstrationInfo(demonstration_id='demo_b', artefact_uri=(root / 'elsewhere' / 'demo_b').as_uri() + '/',
                                frame_count=30, frame_rate=20.0, object_ids=['object_0'])
        msg.header.frame_id = 'world'
        announce.publish(msg)
        assert spin_until(lambda: any(i.demonstration_id == 'demo_b' for i in got['info']), 60), _stop(proc)
        assert refm.load(root / 'refs' / 'demo_b').n_frames == 44
        # the announced id is now known to the service too
        assert call('demo_b').success
        print(f'service call for a 1.5 s demonstration: {elapsed:.1f} s')
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=ctx)
        log = _stop(proc)
    assert 'Traceback' not in log, log
    assert proc.returncode in (0, -15), log


def test_bad_parameter_exits_2(tmp_path):
    cmd = [sys.executable, '-m', 'dexman_retarget.nodes.retarget_node', '--ros-args',
           '-p', 'ik_backend:=magic', '-p', f'robot_model_dir:={tmp_path / "robot"}']
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "parameter 'ik_backend' must be one of mujoco, genesis" in p.stderr
    assert 'Traceback' not in p.stderr
