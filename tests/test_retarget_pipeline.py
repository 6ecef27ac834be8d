"""Retargeting pipeline (paper 3.3-3.4) on a tiny synthetic pick-and-place (160x120, 20 fps,
1.5 s): 30 Hz reference, joint limits, wrist IK accuracy checked by independent forward
kinematics, contact priors against the ground-truth grasp, stable initial placement, the
reference artefact's save/load round trip and its errors, resampling, the CLI. Skipped (with the
reason) when the robot asset packages are missing."""
import dataclasses
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')
torch = pytest.importorskip('torch')

from dexman_common.artefacts import demonstration as dm  # noqa: E402
from dexman_perception.core import scene_alignment as sa  # noqa: E402
from dexman_synthetic.core import demo_alignment as da  # noqa: E402
from dexman_common.artefacts import reference as refm  # noqa: E402
from dexman_retarget.core import retarget_pipeline as rp  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402
from dexman_synthetic.core import ground_truth as gtm  # noqa: E402
from dexman_synthetic.core.generate import GenerateOptions, generate  # noqa: E402

_OK, _WHY = rm.assets_available()
pytestmark = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')

FPS, DURATION = 20.0, 1.5


@pytest.fixture(scope='module')
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp('retarget_case') / 'pick'
    generate(GenerateOptions('pick_place', 'cylinder', 0, width=160, height=120, fps=FPS, duration=DURATION),
             d, progress=False)
    return d


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    torch.set_num_threads(1)
    d, built = rp.ensure_robot_model(tmp_path_factory.mktemp('robot') / 'g1_shadow')
    assert built
    return d


@pytest.fixture(scope='module')
def retargeter(model_dir):
    return rp.Retargeter(model_dir, rp.RetargetOptions(progress=False))


@pytest.fixture(scope='module')
def gt(case):
    return gtm.load(case)


@pytest.fixture(scope='module')
def result(gt, retargeter):
    demo, meshes, _ = da.demonstration_from_ground_truth(gt)
    return retargeter.run(demo, meshes)


def test_alignment_puts_the_human_in_the_robot_world(gt):
    demo, _, ga = da.demonstration_from_ground_truth(gt)
    al = ga.alignment
    np.testing.assert_allclose(demo.table_normal, [0, 0, 1], atol=1e-9)
    # the human pelvis lands on the robot pelvis (plus the y shift into reach), hips along +x
    pelvis = (ga.T_robot_gt @ np.append(gt.pelvis_poses[0, :3, 3], 1.0))[:3]
    np.testing.assert_allclose(pelvis, np.array(sa.ROBOT_PELVIS_DEFAULT) + [0, al.y_shift, 0], atol=1e-9)
    hips = gt.hips[0] @ ga.T_robot_gt[:3, :3].T
    h = hips[1] - hips[0]
    assert h[0] > 0 and abs(h[1]) < 1e-9
    # the object stands in front of the robot, on the table
    p = demo.object_poses[0, 0, :3, 3]
    assert 0.15 < p[1] < 0.6 and abs(p[2] - demo.table_point[2]) < 1e-6
    # rigid: keypoint distances unchanged
    a, b = gt.hand_keypoints[1, 5], demo.hand_keypoints[1, 5]
    assert np.allclose(np.linalg.norm(a[4] - a[0]), np.linalg.norm(b[4] - b[0]), atol=1e-12)


def test_reference_is_30hz_and_within_joint_limits(result, retargeter):
    ref = result.reference
    n = int(np.floor((DURATION * FPS - 1) / FPS * 30 + 1e-6)) + 1
    assert ref.n_frames == n == 44
    np.testing.assert_allclose(np.diff(ref.stamps_ns) * 1e-9, 1 / 30, atol=1e-9)
    m = retargeter.model
    assert ref.joint_names == [m.joint(j).name for j in range(m.njnt)] and len(ref.joint_names) == 58
    q = ref.joint_positions
    lo, hi = m.jnt_range[:, 0], m.jnt_range[:, 1]
    assert np.all(q >= lo - 1e-9) and np.all(q <= hi + 1e-9)
    # the fingers move (the network is not stuck) and the coupled J0 follow J1
    fj = ref.joint_index(rm.hand_joints('right'))
    assert np.ptp(q[:, fj], axis=0).max() > 0.2
    j1, j0 = ref.joint_index(['rh_FFJ1', 'rh_FFJ0'])
    assert np.all(np.abs(q[:, j0] - np.clip(1.1418 * q[:, j1], 0, 1.571)) < 0.01)


def test_wrist_ik_by_independent_forward_kinematics(result, retargeter):
    """Palm poses from the reference's joint positions (MuJoCo FK) against the stored targets."""
    ref = result.reference
    m = retargeter.model
    d = mujoco.MjData(m)
    for h, side in enumerate(('left', 'right')):
        b = m.body(rm.HAND_PREFIX[side] + rm.PALM_BODY).id
        ok = ref.ik_has_target[h] & ref.ik_reachable[h]
        assert ok.sum() >= 0.6 * ref.n_frames, (side, ref.report)
        pe = []
        for t in np.flatnonzero(ok):
            d.qpos[:] = ref.joint_positions[t]
            mujoco.mj_kinematics(m, d)
            tgt = ref.wrist_targets[h, t]
            pe.append(np.linalg.norm(d.xpos[b] - tgt[:3, 3]))
            R = d.xmat[b].reshape(3, 3).T @ tgt[:3, :3]
            assert np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1)) < 0.05
        assert max(pe) < 5e-3 and np.median(pe) < 5e-4
        np.testing.assert_allclose(pe, ref.ik_pos_err[h, ok], atol=1e-9)
    # the wrist targets are the human wrist frames mapped onto the palm
    T_hw_palm = rp.wt.palm_from_human_wrist(m, 'right')
    np.testing.assert_allclose(ref.wrist_targets[1], ref.human_wrist_poses[1] @ T_hw_palm, atol=1e-12)
    assert 'wrist IK' in ref.report and 'unreachable frames' in ref.report


def test_contacts_follow_the_grasp(result, gt):
    ref = result.reference
    t_ref = ref.time_from_start
    t_gt = (gt.stamps_ns - gt.stamps_ns[0]) * 1e-9
    # reference frames inside a ground-truth grasp of the right hand (both neighbours grasping)
    k = np.clip(np.searchsorted(t_gt, t_ref, side='right') - 1, 0, len(t_gt) - 2)
    grasp = (gt.grasped[1, k] == 0) & (gt.grasped[1, k + 1] == 0)
    assert grasp.sum() >= 10
    tips = np.isin(ref.contact_keypoint, [4, 8, 12, 16, 20])
    for t in np.flatnonzero(grasp):
        rows = (ref.contact_frame == t) & (ref.contact_hand == 1) & (ref.contact_object == 0)
        assert (rows & tips).sum() >= 2, t        # at least two fingertips on the object
    # the left hand never comes near the object: no contact
    V = result.contacts.object_vertices[0]
    far = []
    for t in range(ref.n_frames):
        T = result.resampled.object_poses[0, t]
        Vw = V @ T[:3, :3].T + T[:3, 3]
        dmin = np.min(np.linalg.norm(ref.hand_keypoints[0, t][:, None] - Vw[None], axis=-1))
        far.append(dmin > 0.06)
    assert all(far)
    assert not np.any(ref.contact_hand == 0)
    tau = dict(zip(ref.contact_keypoints.tolist(), ref.contact_thresholds.tolist()))
    assert all(d <= tau[int(k)] for d, k in zip(ref.contact_distance, ref.contact_keypoint))
    # the stored vertex (object frame) is at the stored distance from the human keypoint
    i = np.flatnonzero(tips)[0]
    t, kp = ref.contact_frame[i], ref.contact_keypoint[i]
    T = result.resampled.object_poses[0, t]
    vw = T[:3, :3] @ ref.contact_vertex_object[i] + T[:3, 3]
    assert np.linalg.norm(vw - ref.hand_keypoints[1, t, kp]) == pytest.approx(ref.contact_distance[i], abs=1e-9)


def test_initial_placement_is_stable_and_trajectories_rebased(result):
    ref = result.reference
    assert ref.object_initial_stable.all() and ref.object_original_stable.all()
    est, placed = ref.object_estimated_initial[0], ref.object_initial_poses[0]
    assert abs(placed[2, 3] - est[2, 3]) < 2e-3                      # the GT object stands on the table
    np.testing.assert_allclose(placed[:3, :3], est[:3, :3], atol=1e-9)
    np.testing.assert_allclose(ref.object_poses[0, 0], placed, atol=1e-12)
    offset = np.linalg.inv(est) @ placed
    np.testing.assert_allclose(ref.object_poses[0], result.resampled.object_poses[0] @ offset, atol=1e-12)
    settled = ref.object_settled_poses[0]
    assert np.linalg.norm(settled[:3, 3] - placed[:3, 3]) < 5e-3
    assert 'placement object_0' in ref.report


def test_reference_is_trackable_in_the_rl_scene(result, retargeter, model_dir):
    """The arm joints move at most max_joint_speed / frame_rate per frame, and in the RL scene
    (dexman_sim.build_scene: robot, table, object at the reference poses) no arm touches the
    robot's own body and no arm link the table; a hand may rest on the table no deeper than the
    tolerated hand_table_margin (independent check: MuJoCo's own contacts after mj_forward)."""
    from dexman_sim import SceneObjectSpec, SimConfig, build_scene
    ref = result.reference
    o = retargeter.options.ik
    arm = ref.joint_index(rm.arm_joints('left') + rm.arm_joints('right'))
    step = np.abs(np.diff(ref.joint_positions[:, arm], axis=0)).max()
    assert step <= o.max_joint_speed / ref.frame_rate + 1e-9
    scene = build_scene([SceneObjectSpec('object_0', result.meshes['object_0'], ref.object_poses[0, 0])],
                        ref.table_point, ref.table_normal, robot_model_dir=model_dir, cfg=SimConfig(collision='hull'))
    m = scene.model
    d = mujoco.MjData(m)
    side = np.full(m.nbody, -1)
    for k, s in enumerate(('left', 'right')):
        root = m.body(f'{s}_shoulder_pitch_link').id
        for b in range(m.nbody):
            a = b
            while a > 0 and a != root:
                a = m.body_parentid[a]
            side[b] = k if a == root else side[b]
    hand = np.array([m.body(b).name[:3] in ('lh_', 'rh_') for b in range(m.nbody)])
    robot = set(scene.robot_geom_ids.tolist())
    qadr = [m.jnt_qposadr[m.joint(n).id] for n in ref.joint_names]
    self_hits, table_depth = 0, 0.0
    for t in range(ref.n_frames):
        d.qpos[qadr] = ref.joint_positions[t]
        mujoco.mj_forward(m, d)
        for c in d.contact[:d.ncon]:
            for a, b in ((c.geom1, c.geom2), (c.geom2, c.geom1)):
                ba, bb = m.geom_bodyid[a], m.geom_bodyid[b]
                if a not in robot or side[ba] < 0:
                    continue
                if b == scene.table_geom_id:
                    assert hand[ba], (t, m.body(ba).name)              # arm links stay off the table
                    table_depth = max(table_depth, -c.dist)
                elif b in robot and side[bb] != side[ba]:
                    self_hits += 1
    assert self_hits == 0
    assert table_depth <= -o.hand_table_margin + 1e-3


def test_workspace_fit_moves_everything_and_beats_the_paper_rule(result, gt, retargeter, model_dir):
    """The default workspace fit (whole_demo) translates hands, wrists, objects and the table by
    the recorded delta; the paper's rule (no re-fit) on the same demonstration leaves more frames
    out of reach."""
    ref = result.reference
    fit = ref.provenance['workspace_fit']
    d = np.array(fit['delta_m'])
    assert fit['method'] == 'whole_demo' and np.any(d != 0)
    demo, meshes, _ = da.demonstration_from_ground_truth(gt)
    rs = rp.resample(demo)
    np.testing.assert_allclose(ref.table_point, demo.table_point + d, atol=1e-12)
    np.testing.assert_allclose(ref.object_estimated_initial[0, :3, 3], demo.object_poses[0, 0, :3, 3] + d, atol=1e-12)
    ok = rs.hand_valid
    np.testing.assert_allclose(ref.hand_keypoints[ok], rs.hand_keypoints[ok] + d, atol=1e-12)
    np.testing.assert_allclose(ref.human_wrist_poses[ok][:, :3, 3], rs.wrist_poses[ok][:, :3, 3] + d, atol=1e-12)
    np.testing.assert_allclose(ref.human_wrist_poses[ok][:, :3, :3], rs.wrist_poses[ok][:, :3, :3], atol=1e-12)
    lo, hi = retargeter.options.workspace_fit.table_height_range
    assert lo - 1e-9 <= fit['table_height_m']['after'] <= hi + 1e-9
    assert fit['table_height_m']['after'] == pytest.approx(fit['table_height_m']['before'] + d[2], abs=2e-4)
    assert ref.placement[0]['table_top_z'] == pytest.approx(ref.table_point[2], abs=1e-9)
    assert 'workspace fit (whole_demo)' in ref.report
    assert fit['ik_unreachable_after']['frames'] == pytest.approx(ref.unreachable_frames / ref.n_frames, abs=1e-4)
    # the full settings are in the provenance
    assert ref.provenance['config'] == retargeter.options.to_dict()
    assert ref.provenance['config']['workspace_fit']['method'] == 'whole_demo'
    o = retargeter.options
    paper = rp.Retargeter(model_dir, dataclasses.replace(o, workspace_fit=o.workspace_fit.replace(method='paper')))
    pref = paper.run(demo, meshes).reference
    assert pref.provenance['workspace_fit']['delta_m'] == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(pref.table_point, demo.table_point, atol=1e-12)
    assert pref.unreachable_frames > ref.unreachable_frames, (pref.report, ref.report)


def test_save_load_round_trip(result, tmp_path):
    ref = result.reference
    path = refm.save(ref, tmp_path / 'refs', result.meshes)
    assert path == tmp_path / 'refs' / ref.reference_id and not list((tmp_path / 'refs').glob('.*'))
    back = refm.load(path)
    for k in refm.Reference._ARRAYS:
        a, b = np.asarray(getattr(ref, k)), np.asarray(getattr(back, k))
        assert a.dtype == b.dtype and a.shape == b.shape, k
        np.testing.assert_array_equal(a, b, err_msg=k)
    assert back.joint_names == ref.joint_names and back.report == ref.report
    assert back.ik_messages == ref.ik_messages and back.placement[0]['object_id'] == 'object_0'
    prov = back.provenance
    assert prov['demonstration_id'] == ref.demonstration_id
    assert len(prov['robot_model']['manifest_sha256']) == 64
    assert prov['finger_checkpoint']['file'] == 'finger_mlp_v1.pt' and prov['finger_checkpoint']['format_version'] == 1
    assert back.load_mesh('object_0').vertices.shape[0] > 0
    assert back.contacts_at(int(ref.contact_frame[0]))[0]['object'] == 'object_0'
    # a second save replaces the first atomically
    refm.save(back, tmp_path / 'refs', {'object_0': back.mesh_path('object_0')})
    assert refm.load(path).n_frames == ref.n_frames


def test_bad_artefacts_give_clear_errors(result, tmp_path):
    ref = result.reference
    path = refm.save(ref, tmp_path, result.meshes)
    with pytest.raises(refm.ReferenceArtefactError, match='is not a reference'):
        refm.load(tmp_path / 'nothing')
    npz = path / refm.ARRAYS_NAME
    good = npz.read_bytes()
    npz.write_bytes(good[:len(good) // 2])
    with pytest.raises(refm.ReferenceArtefactError, match='unreadable trajectories.npz'):
        refm.load(path)
    with np.load(_write(npz, good)) as z:
        arrays = {k: z[k] for k in z.files}
    arrays['joint_positions'] = arrays['joint_positions'][:, :10]
    np.savez(npz, **arrays)
    with pytest.raises(refm.ReferenceArtefactError, match=r'joint_positions has shape \(44, 10\), expected \(44, 58\)'):
        refm.load(path)
    npz.write_bytes(good)
    meta = json.loads((path / refm.META_NAME).read_text())
    (path / refm.META_NAME).write_text(json.dumps({**meta, 'format_version': 99}))
    with pytest.raises(refm.ReferenceArtefactError, match='format_version 99'):
        refm.load(path)
    del meta['joint_names']
    (path / refm.META_NAME).write_text(json.dumps(meta))
    with pytest.raises(refm.ReferenceArtefactError, match='incomplete'):
        refm.load(path)
    bad = dataclasses.replace(ref, joint_positions=ref.joint_positions.copy())
    bad.joint_positions[3, 0] = np.nan
    with pytest.raises(refm.ReferenceArtefactError, match='non-finite'):
        refm.save(bad, tmp_path / 'other', result.meshes)
    assert not (tmp_path / 'other' / ref.reference_id).exists()
    with pytest.raises(refm.ReferenceArtefactError, match='no mesh given'):
        refm.save(ref, tmp_path / 'other', {})
    assert not (tmp_path / 'other' / ref.reference_id).exists()


def _write(p, data):
    p.write_bytes(data)
    return p


def _toy_demo(n=5, fps=10.0):
    """A demonstration whose right wrist turns about z at 1 rad/s and moves along x at 0.1 m/s."""
    from scipy.spatial.transform import Rotation
    t = np.arange(n) / fps
    W = np.repeat(np.eye(4)[None], n, axis=0)
    W[:, :3, :3] = Rotation.from_rotvec(np.outer(t, [0, 0, 1.0])).as_matrix()
    W[:, 0, 3] = 0.1 * t
    kp = np.zeros((2, n, 21, 3))
    kp[1] = W[:, None, :3, 3] + np.arange(21)[None, :, None] * 0.001
    hv = np.ones((2, n), bool)
    hv[0] = False
    hv[1, 2] = False
    O = np.repeat(W[None], 1, axis=0)
    ov = np.ones((1, n), bool)
    ov[0, 1] = False
    return dm.Demonstration(
        demonstration_id='toy', fps=fps, stamps_ns=(np.arange(n) * 10**9 // int(fps)).astype(np.int64),
        objects=[dm.DemoObject('object_0', 'box', 'meshes/object_0.obj')], object_poses=O, object_valid=ov,
        hand_keypoints=kp, hand_valid=hv, wrist_poses=np.stack([np.full_like(W, np.nan), W]),
        T_world_camera=np.eye(4), K=np.eye(3), table_point=np.zeros(3), table_normal=np.array([0, 0, 1.0]))


def test_resampling_slerp_and_validity():
    demo = _toy_demo()
    rs = rp.resample(demo, 30.0)
    assert len(rs.stamps_ns) == 13                      # 0.4 s at 30 Hz
    t = (rs.stamps_ns - rs.stamps_ns[0]) * 1e-9
    # the right hand is invalid at source frame 2 (t = 0.2): output frames in (0.1, 0.3) are too
    expect = ~((t > 0.1 + 1e-9) & (t < 0.3 - 1e-9))
    np.testing.assert_array_equal(rs.hand_valid[1], expect)
    assert not rs.hand_valid[0].any() and np.isnan(rs.wrist_poses[0]).all()
    ok = rs.hand_valid[1]
    ang = np.arctan2(rs.wrist_poses[1, ok, 1, 0], rs.wrist_poses[1, ok, 0, 0])
    np.testing.assert_allclose(ang, t[ok], atol=1e-12)        # slerp: constant angular speed
    np.testing.assert_allclose(rs.wrist_poses[1, ok, 0, 3], 0.1 * t[ok], atol=1e-12)
    # the object's missing frame 1 is interpolated from frames 0 and 2; object_valid says so
    np.testing.assert_allclose(np.arctan2(rs.object_poses[0, :, 1, 0], rs.object_poses[0, :, 0, 0]), t, atol=1e-12)
    np.testing.assert_array_equal(rs.object_valid[0], ~((t > 1e-9) & (t < 0.2 - 1e-9)))
    # inputs that cannot be retargeted
    bad = dataclasses.replace(demo, stamps_ns=demo.stamps_ns[::-1].copy())
    with pytest.raises(rp.RetargetError, match='not strictly increasing'):
        rp.resample(bad)
    none = dataclasses.replace(demo, object_valid=np.zeros((1, 5), bool))
    with pytest.raises(rp.RetargetError, match='no valid pose'):
        rp.resample(none)


def test_input_errors(tmp_path, model_dir):
    with pytest.raises(rp.RetargetError, match='does not exist'):
        rp.load_input(tmp_path / 'none')
    with pytest.raises(rp.RetargetError, match='neither a demonstration'):
        rp.load_input(tmp_path)
    with pytest.raises(rp.RetargetError, match='not a robot-model build'):
        rp.Retargeter(tmp_path)
    with pytest.raises(rp.RetargetError, match='unknown ik_backend'):
        rp.Retargeter(model_dir, rp.RetargetOptions(ik_backend='magic'))
    (tmp_path / 'notabuild').mkdir()
    (tmp_path / 'notabuild' / 'x.txt').write_text('mine')
    with pytest.raises(rp.RetargetError, match='not a previous robot-model build'):
        rp.ensure_robot_model(tmp_path / 'notabuild')


def test_cli_on_a_case_dir(case, model_dir, tmp_path):
    # a case is benchmark data: converted to a demonstration on the benchmark side, then retargeted
    p = subprocess.run([sys.executable, '-m', 'dexman_synthetic.cli', 'demo', str(case), '--out', str(tmp_path / 'demos')],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    demo_dir = tmp_path / 'demos' / 'gt_pick'
    assert pathlib.Path(p.stdout.strip()) == demo_dir
    refused = subprocess.run([sys.executable, '-m', 'dexman_retarget.retarget_cli', str(case), '--out', str(tmp_path / 'x'),
                              '--robot-model', str(model_dir), '--no-progress'], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and 'dexman_synth demo' in refused.stderr
    out = tmp_path / 'refs'
    cmd = [sys.executable, '-m', 'dexman_retarget.retarget_cli', str(demo_dir), '--out', str(out),
           '--robot-model', str(model_dir), '--json', '--no-progress', '--reference-id', 'cli_ref']
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary['reference_id'] == 'cli_ref' and summary['frame_count'] == 44
    assert refm.load(out / 'cli_ref').demonstration_id == 'gt_pick'
    p = subprocess.run(cmd[:3] + [str(tmp_path / 'missing')] + cmd[4:], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and 'does not exist' in p.stderr and 'Traceback' not in p.stderr
