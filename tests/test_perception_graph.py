"""The whole perception graph (launch/perception.launch.xml) as separate processes over real DDS:
a synthetic RGB-D bag in, a demonstration artefact out, checked against the ground truth; an
RGB-only bag: the stages that need depth stop and say why, the hands go on, and the assembler
reports why no demonstration was written."""
import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from dexman_common.artefacts import demonstration as demo_io
from dexman_synthetic.core.demo_scoring import object_centre_errors

pytestmark = pytest.mark.ros
ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = dict(width=320, height=240, fps=10.0, duration=2.0)


def ros2():
    exe = shutil.which('ros2')
    if exe is None:
        pytest.skip('no ros2 on PATH: source env.sh first')
    return exe


def make_case(root, depth, task='pick_place', shape='cylinder', seed=0):
    from dexman_synthetic.core.generate import GenerateOptions, generate
    out = root / f'{task}_{shape}_{seed}_{"rgbd" if depth else "rgb"}'
    generate(GenerateOptions(task, shape, seed, depth=depth, case_id=out.name, **SMALL), out, progress=False)
    return out


def run_graph(bag, out, timeout=300, **args):
    cmd = [ros2(), 'launch', str(ROOT / 'launch' / 'perception.launch.xml'), f'bag:={bag}',
           f'output_dir:={out}', f'report:={out / "report.json"}'] + [f'{k}:={v}' for k, v in args.items()]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT='0'))
    report = out / 'report.json'
    return p.returncode, p.stdout + p.stderr, json.loads(report.read_text()) if report.is_file() else None


@pytest.fixture                   # function scope: a rerun (flaky mark below) runs the graph again
def rgbd_run(tmp_path_factory):
    from dexman_synthetic.core import ground_truth as gtio
    root = tmp_path_factory.mktemp('graph_rgbd')
    case = make_case(root, depth=True)
    gt = gtio.load(case)
    out = root / 'out'
    rc, log, report = run_graph(case / 'bag', out, demonstration_id='rgbd_case',
                                prompt_boxes=json.dumps(gt.prompt_boxes()), object_labels="['can']")
    return gt, out, rc, log, report


@pytest.mark.flaky(reruns=1)   # timing under CPU load: 1 failure in 3 clean-clone runs (see the stop note)
def test_rgbd_bag_gives_a_demonstration_close_to_the_ground_truth(rgbd_run):
    gt, out, rc, log, report = rgbd_run
    assert rc == 0, log[-4000:]
    demo = demo_io.load(out / 'demonstrations' / 'rgbd_case')
    assert demo.n_frames == int(gt.frame_in_bag.sum()) == gt.n_frames      # every image is a frame
    assert [o.id for o in demo.objects] == ['object_0'] and demo.objects[0].label == 'can'
    assert demo.object_valid.mean() >= 0.9
    # object motion in the camera frame (world-frame independent), first-frame aligned
    err = object_centre_errors(demo, gt)
    err = err[np.isfinite(err)]
    assert np.median(err) < 0.015 and err.max() < 0.05, err
    # the scene is aligned: the table normal is world +z
    assert demo.table_normal @ [0, 0, 1] > 0.99
    n = np.asarray(gt.table_normal) @ gt.T_camera_world[:3, :3].T     # GT normal in camera
    assert (demo.T_world_camera[:3, :3] @ n) @ [0, 0, 1] > 0.99
    stages = report['stages']
    for st in ('depth', 'hands', 'body', 'segmentation', 'mesh', 'tracking', 'scene'):
        assert stages[st]['state'] == 'DONE', (st, stages[st])
    assert stages['tracking']['frames_out'] == demo.n_frames
    # provenance: each stage's algorithm settings as it ran (config/perception.yaml; the launch
    # sets the tracker's mode)
    from dexman_perception.core import perception_config as pc
    cfg = demo.provenance['config']
    assert sorted(cfg['stages']) == ['body', 'depth', 'hands', 'mesh', 'scene', 'segmentation', 'tracking']
    sections = {st: sorted(rec['sections']) for st, rec in cfg['stages'].items()}
    assert sections == {'body': ['mediapipe_body'], 'depth': [], 'hands': ['mediapipe_hands'],
                        'mesh': ['fused_cloud_mesh'], 'scene': ['scene_alignment'],
                        'segmentation': ['depth_color_segmenter'],
                        'tracking': ['icp_refiner', 'lucas_kanade', 'tracker']}
    for rec in cfg['stages'].values():
        for name, values in rec['sections'].items():
            cls = pc.config_class(name)
            assert cls.from_dict(values) == pc.load(cls, ROOT / 'config' / 'perception.yaml'), name
    assert cfg['demo_assembly'] == {'accept_predicted': True, 'require_hands': True}
    assert report['stage_configs_received'] == sorted(cfg['stages'])


def test_rgb_only_bag_stops_the_depth_stages_with_reasons_and_keeps_the_hands(tmp_path):
    from dexman_synthetic.core import ground_truth as gtio
    case = make_case(tmp_path, depth=False)
    gt = gtio.load(case)
    rc, log, report = run_graph(case / 'bag', tmp_path / 'out', demonstration_id='rgb_case',
                                prompt_boxes=json.dumps(gt.prompt_boxes()))
    assert rc == 3, log[-4000:]
    assert 'Traceback' not in log
    assert not (tmp_path / 'out' / 'demonstrations' / 'rgb_case').exists()
    stages = report['stages']
    assert stages['depth']['state'] == 'STOPPED' and 'vggt' in stages['depth']['message']
    for st in ('segmentation', 'mesh', 'tracking', 'scene'):
        assert stages[st]['state'] == 'STOPPED', (st, stages[st])
    assert stages['hands']['state'] == 'DONE' and stages['hands']['frames_out'] == gt.n_frames


def test_degraded_bag_keeps_every_frame_and_marks_the_bad_ones(tmp_path):
    """Depth noise, NaN holes and dropped frames: the graph keeps running, the demonstration has
    one frame per image in the bag, nothing crashes."""
    from dexman_synthetic.core import ground_truth as gtio
    from dexman_synthetic.core.degradations import DegradationConfig
    from dexman_synthetic.core.generate import GenerateOptions, generate
    case = tmp_path / 'degraded'
    generate(GenerateOptions('pick_place', 'cylinder', 0, depth=True, case_id=case.name, **SMALL,
                             degrade=DegradationConfig(depth_noise=0.003, depth_holes=3, hole_value='nan',
                                                       drop_rate=0.2)), case, progress=False)
    gt = gtio.load(case)
    assert 0 < gt.frame_in_bag.sum() < gt.n_frames
    rc, log, report = run_graph(case / 'bag', tmp_path / 'out', demonstration_id='degraded',
                                prompt_boxes=json.dumps(gt.prompt_boxes()))
    assert rc == 0, log[-4000:]
    assert 'Traceback' not in log
    demo = demo_io.load(tmp_path / 'out' / 'demonstrations' / 'degraded')
    assert demo.n_frames == int(gt.frame_in_bag.sum())
    assert np.array_equal(demo.stamps_ns, np.asarray(gt.stamps_ns)[gt.frame_in_bag])
    assert demo.object_valid.mean() >= 0.8
    err = object_centre_errors(demo, gt)
    assert np.nanmedian(err) < 0.02, err
