"""The demonstration artefact (perception -> retargeting contract): atomic save/load, validation,
and the exact demonstration of a synthetic ground-truth case."""
import json
import pathlib

import numpy as np
import pytest
import trimesh

from dexman_common.artefacts import demonstration as dm
from dexman_synthetic.core import ground_truth as gtio
from dexman_synthetic.core.demo_alignment import from_ground_truth

from synth_cases import case


def small_demo(n=4, demo_id='demo_a'):
    poses = np.tile(np.eye(4), (1, n, 1, 1))
    poses[0, :, 0, 3] = np.linspace(0.0, 0.3, n)          # the object slides 0.3 m along x
    kp = np.zeros((2, n, 21, 3))
    kp[1, :, 8] = [0.1, 0.2, 0.9]
    return dm.Demonstration(
        demonstration_id=demo_id, fps=30.0, stamps_ns=np.arange(n, dtype=np.int64) * 33_333_333,
        objects=[dm.DemoObject('object_0', 'box', 'meshes/object_0.obj')], object_poses=poses,
        object_valid=np.array([[True, True, False, True]])[:, :n], hand_keypoints=kp,
        hand_valid=np.array([[False] * n, [True] * n]), wrist_poses=np.tile(np.eye(4), (2, n, 1, 1)),
        T_world_camera=np.eye(4), K=np.array([[500.0, 0, 319.5], [0, 500, 239.5], [0, 0, 1]]),
        table_point=np.array([0, 0, 0.75]), table_normal=np.array([0, 0, 1.0]), source_uri='file:///bag')


def test_round_trip_and_atomic_replace(tmp_path):
    box = trimesh.creation.box(extents=(0.1, 0.06, 0.2))
    path = dm.save(small_demo(), tmp_path, {'object_0': box})
    assert path == tmp_path / 'demo_a'
    back = dm.load(path)
    assert back.n_frames == 4 and back.object_valid.tolist() == [[True, True, False, True]]
    assert back.object_poses[0, 3, 0, 3] == pytest.approx(0.3)
    assert back.hand_keypoints[1, 2, 8].tolist() == [0.1, 0.2, 0.9]
    assert back.load_mesh('object_0').extents == pytest.approx([0.1, 0.06, 0.2])
    # saving again replaces the whole directory and leaves no temp or old folder behind
    demo2 = small_demo()
    demo2.fps = 15.0
    dm.save(demo2, tmp_path, {'object_0': box})
    assert dm.load(path).fps == 15.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ['demo_a']


def test_a_failed_save_keeps_the_previous_artefact(tmp_path):
    box = trimesh.creation.box()
    dm.save(small_demo(), tmp_path, {'object_0': box})
    with pytest.raises(dm.DemonstrationError, match='no mesh given for object object_0'):
        dm.save(small_demo(), tmp_path, {})
    assert dm.load(tmp_path / 'demo_a').n_frames == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ['demo_a']


def test_invalid_content_is_rejected(tmp_path):
    bad = small_demo()
    bad.hand_keypoints[1, 0, 0, 0] = np.nan                 # NaN on a frame marked valid
    with pytest.raises(dm.DemonstrationError, match='hand_keypoints is not finite'):
        dm.save(bad, tmp_path, {'object_0': trimesh.creation.box()})
    ok = small_demo()
    ok.hand_keypoints[0, 0, 0, 0] = np.nan                  # NaN on an invalid (absent) hand: fine
    dm.save(ok, tmp_path, {'object_0': trimesh.creation.box()})
    with pytest.raises(dm.DemonstrationError, match='is not a demonstration'):
        dm.load(tmp_path / 'missing')
    meta = tmp_path / 'demo_a' / 'demonstration.json'
    meta.write_text(json.dumps({**json.loads(meta.read_text()), 'format_version': 99}))
    with pytest.raises(dm.DemonstrationError, match='format_version 99'):
        dm.load(tmp_path / 'demo_a')


def test_from_ground_truth_is_exact(tmp_path):
    gt = gtio.load(case('pick_cyl'))
    demo, meshes = from_ground_truth(gt)
    np.testing.assert_array_equal(demo.object_poses, gt.object_poses)
    np.testing.assert_array_equal(demo.hand_keypoints, gt.hand_keypoints)
    assert demo.object_valid.all() and demo.n_frames == gt.n_frames == 12
    path = dm.save(demo, tmp_path, meshes)
    back = dm.load(path)
    assert back.provenance['case_id'] == 'pick_cyl'
    v_gt = np.asarray(gt.load_mesh('object_0').vertices)
    np.testing.assert_allclose(np.asarray(back.load_mesh('object_0').vertices), v_gt, atol=1e-6)
