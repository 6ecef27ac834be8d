"""Trackable wrist IK: the arms kept out of the robot's own body and the table (``self_collision``,
``ik_scene``) and joint speeds capped between consecutive frames (``wrist_ik`` with a frame rate),
so that the MuJoCo PD controllers of the RL environment can follow the reference. Real numbers on
the real model: analytic distance gradients against finite differences, a configuration 8 cm
inside the torso, a target path on which plain damped least squares switches branch, a target
jump, the RL scene's table. Skipped (with the reason) when the robot asset packages are missing."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

mujoco = pytest.importorskip('mujoco')

from dexman_common.config import ConfigError  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402
from dexman_retarget.core import ik_scene  # noqa: E402
from dexman_retarget.core import wrist_ik as wik  # noqa: E402
from dexman_retarget.core.self_collision import ArmCollisionModel  # noqa: E402

_OK, _WHY = rm.assets_available()
pytestmark = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')
RATE = 30.0


@pytest.fixture(scope='module')
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('robot') / 'g1_shadow'
    rm.build(d)
    return d


@pytest.fixture(scope='module')
def model(model_dir):
    return ik_scene.robot_with_table(model_dir)


@pytest.fixture(scope='module')
def robot_only(model_dir):
    """The plain robot build (no IK table)."""
    return rm.load_model(model_dir)


@pytest.fixture(scope='module')
def plain(model):
    return wik.WristIK(model)


@pytest.fixture(scope='module')
def safe(model):
    return wik.WristIK(model, avoid_collisions=True)


def _max_step(q):
    return float(np.abs(np.diff(q, axis=0)).max())


def test_pairs_follow_mujoco_collision_rules(model):
    c = ArmCollisionModel(model)
    name = {i: model.body(i).name for i in range(model.nbody)}
    pairs = {(name[int(a)], name[int(b)]) for a, b in zip(c.body1, c.body2)}
    # the upper arm against the torso, the hand against the torso and the table, the arms each other
    assert ('right_shoulder_yaw_link', 'torso_link') in pairs and ('rh_palm', 'torso_link') in pairs
    assert ('rh_ffdistal', ik_scene.TABLE_NAME) in pairs and ('left_elbow_link', 'right_elbow_link') in pairs
    # parent and child never (MuJoCo filters them), nor the feet (out of reach)
    assert ('right_shoulder_pitch_link', 'torso_link') not in pairs
    assert not any('ankle' in b for _, b in pairs)
    # only geoms whose contype / conaffinity bits meet (e.g. two finger geoms, conaffinity 0: never)
    ct, ca = model.geom_contype, model.geom_conaffinity
    assert np.all((ct[c.g1] & ca[c.g2]) | (ct[c.g2] & ca[c.g1]))
    fingers = [model.geom(f'{p}C_ffdistal').id for p in ('lh_', 'rh_')]
    assert ca[fingers].max() == 0 and not any(a in fingers and b in fingers for a, b in zip(c.g1, c.g2))
    # each arm-arm pair once, the left geom first
    assert np.all(c.side1[c.side2 >= 0] == 0) and np.all(c.side2[c.side2 >= 0] == 1)
    assert np.all(c.hand1 == np.array([name[int(b)][:3] in ('lh_', 'rh_') for b in c.body1]))


def test_distance_gradient_matches_finite_differences(safe, model):
    """d(dist)/dq of every pair within 3 cm, at random arm poses, against central differences
    (pairs within 2 mm of touching excluded: the nearest points jump there; on the meshes' convex
    hulls they may also jump between features, hence the 95 %)."""
    c = safe.collisions
    d = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    ft = np.zeros(6)
    errs = []
    for _ in range(40):
        q = rng.uniform(safe.lo, safe.hi)
        d.qpos[:] = safe.qpos_hold
        d.qpos[safe.qadr] = q
        mujoco.mj_kinematics(model, d)
        mujoco.mj_comPos(model, d)
        prox = c.proximity(d, 0.03)
        keep = np.abs(prox.dist) > 2e-3
        if not keep.any():
            continue
        G = c.gradient(d, prox, safe.dadr)[keep]
        num = np.zeros_like(G)
        for j in range(14):
            for sgn in (1.0, -1.0):
                d.qpos[safe.qadr] = q
                d.qpos[safe.qadr[j]] += sgn * 1e-6
                mujoco.mj_kinematics(model, d)
                for r, i in enumerate(prox.pair[keep]):
                    num[r, j] += sgn * mujoco.mj_geomDistance(model, d, int(c.g1[i]), int(c.g2[i]), 1.0, ft) / 2e-6
        errs.append(np.abs(G - num).max(axis=1) / np.maximum(np.abs(num).max(axis=1), 1e-3))
    err = np.concatenate(errs)
    assert len(err) >= 100
    assert np.median(err) < 1e-4 and np.mean(err < 1e-2) >= 0.95, np.sort(err)[-10:]


def test_target_reached_through_the_torso_is_reached_clear_of_it(model, plain, safe):
    """A right-arm pose with the arm 8 cm inside the torso: its palm pose, solved from that pose,
    stays there with the plain IK and is reached out of the body with collision avoidance."""
    q = safe.nominal.copy()
    q[7:] = [-2.91, 0.46, -0.66, -0.76, 0.63, 1.39, -0.95]
    assert safe.clearance(q)[1] < -0.07
    P = plain.forward(q)[0, 1][None]
    old = plain.solve_trajectory(None, P, q0=q)
    assert old.pos_err[0, 1] < 1e-4 and safe.clearance(old.q[0])[1] < -0.07      # still in the torso
    assert old.clearance is None                                                 # no collision model
    new = safe.solve_trajectory(None, P, q0=q)
    assert new.pos_err[0, 1] < 1e-3 and new.rot_err[0, 1] < 0.01
    assert new.clearance[0, 1] >= safe.opt.collision_margin - 1e-3               # the margin is kept
    assert 'no collision' in new.report


def test_branch_flip_of_plain_ik_becomes_a_continuous_path(model, plain):
    """The palm turning 1.53 rad about a fixed axis while drifting 7 cm (60 frames, 30 Hz), all
    reachable: plain warm-started DLS (frames independent) jumps more than 1 rad within one frame
    when it switches branch; with the frame rate and collision avoidance (the pipeline's setting)
    every joint moves at most max_joint_speed / 30 per frame and no step comes near that."""
    q0 = plain.nominal.copy()
    q0[7:] = [-0.584, -0.095, 0.301, 0.615, 0.547, -0.396, -0.198]
    axis = np.array([0.423, 0.022, 0.906])
    axis /= np.linalg.norm(axis)
    T = 60
    P0 = plain.forward(q0)[0, 1]
    P = np.repeat(P0[None], T, axis=0)
    P[:, :3, :3] = P0[:3, :3] @ Rotation.from_rotvec(np.linspace(0.0, 1.529, T)[:, None] * axis).as_matrix()
    P[:, :3, 3] += np.linspace(0.0, 1.0, T)[:, None] * np.array([-0.032, -0.019, -0.055])
    old = wik.solve_trajectory(model, None, P, q0=q0)
    assert old.reachable[:, 1].all()
    assert _max_step(old.q[:, 7:]) > 1.0                                     # the branch switch
    new = wik.solve_trajectory(model, None, P, q0=q0, frame_rate=RATE, avoid_collisions=True)
    cap = new.options.max_joint_speed / RATE
    assert _max_step(new.q) <= cap + 1e-9
    assert _max_step(new.q[:, 7:]) < 0.2                                     # no switch at all
    assert new.reachable[:, 1].sum() >= T - 2 and np.nanmax(new.pos_err[:, 1]) < 0.01
    assert np.all(new.q >= plain.lo) and np.all(new.q <= plain.hi)


def test_target_jump_is_followed_at_the_speed_cap(model, plain):
    """A target that jumps 16 cm: the arm follows at the joint speed cap, those frames are flagged
    (and named as the cause), then the target is reached again."""
    q0 = plain.nominal.copy()
    P = plain.forward(q0)[0, 1]
    tg = np.repeat(P[None], 40, axis=0)
    tg[10:, :3, 3] += [0.0, 0.05, 0.15]
    ik = wik.WristIK(model, frame_rate=RATE, avoid_collisions=True)
    res = ik.solve_trajectory(None, tg, q0=q0)
    cap = ik.opt.max_joint_speed / RATE
    steps = np.abs(np.diff(res.q, axis=0)).max(axis=1)
    assert steps.max() <= cap + 1e-9 and steps[9] == pytest.approx(cap)      # frame 10 moves at the cap
    lag = np.flatnonzero(res.speed_limited[:, 1])
    assert lag[0] == 10 and len(lag) <= 4
    assert not res.reachable[10, 1] and 'faster than the joint speed cap (8 rad/s)' in res.messages[10]
    assert res.reachable[lag[-1] + 2:, 1].all() and res.reachable[:10, 1].all()
    assert 'at the joint speed cap (8 rad/s)' in res.report
    # without a frame rate the frames are independent: the jump is taken at once
    free = wik.WristIK(model).solve_trajectory(None, tg, q0=q0)
    assert free.reachable[:, 1].all() and _max_step(free.q) > cap


def test_branch_choice_nearest_the_given_pose(model, safe):
    """WristIK.branch: of the clear solutions of a target (a redundant arm has many), the one
    nearest the nominal pose (a trajectory's start) or nearest a given pose (a stuck arm's switch)."""
    c = safe.side_cols['right']
    qa = safe.nominal.copy()
    qa[7:] = [-0.6, -0.3, 0.2, 0.9, 0.3, 0.2, 0.1]
    P = safe.forward(qa)[0, 1]
    rng = np.random.default_rng(0)
    sols = []                                   # distinct clear exact solutions from random seeds
    for _ in range(40):
        qs = qa.copy()
        qs[c] = rng.uniform(safe.lo[c], safe.hi[c])
        qk, ek, _, _ = safe._lm(qs, {'right': P}, ['right'], c, qs, 0.0, 100)
        if ek["right"][0] < 1e-4 and ek["right"][1] < 1e-3 and safe.clearance(qk)[1] > 0.0:
            if all(np.abs(qk[c] - s).max() > 0.5 for s in sols):
                sols.append(qk[c].copy())
    assert len(sols) >= 5
    start, ok = safe.branch('right', P, qa)
    err = safe.forward(start)[0, 1]
    assert ok and np.linalg.norm(err[:3, 3] - P[:3, 3]) < safe.opt.reach_tol_pos
    d0 = np.linalg.norm(start[c] - safe.nominal[c])
    assert all(d0 <= np.linalg.norm(s - safe.nominal[c]) + 0.05 for s in sols)
    far = max(sols, key=lambda s: np.linalg.norm(s - start[c]))          # another branch
    g, ok = safe.branch('right', P, qa, near=far)
    assert ok and np.linalg.norm(g[c] - far) < np.linalg.norm(g[c] - start[c])


def test_frames_before_the_first_target_take_its_solution(model, plain):
    q0 = plain.nominal.copy()
    P = plain.forward(q0)[0, 1]
    tg = np.repeat(P[None], 12, axis=0)
    tg[:4] = np.nan                                   # the right hand appears at frame 4
    tg[4:, :3, 3] += [0.0, 0.10, 0.10]
    res = wik.WristIK(model, frame_rate=RATE, avoid_collisions=True).solve_trajectory(None, tg, q0=q0)
    assert np.all(res.q[:4] == res.q[4]) and res.reachable[4:, 1].all()
    assert np.all(res.q[:, :7] == q0[:7])            # the left arm: no target, held


def test_arms_kept_out_of_the_table(model, plain, safe, robot_only):
    """The rest pose's forearms lie 3 cm inside a table whose top is at 0.95 m: reaching that
    palm pose, the arms stay out of the table box (the palm misses the target instead)."""
    from dexman_sim import TableBox
    box = TableBox(top_z=0.95, center_xy=np.array([0.0, 0.5]), half_extents=np.array([0.5, 0.38]),
                   thickness=0.05, tilt_deg=0.0)
    q0 = safe.nominal.copy()
    P = plain.forward(q0)[0]
    try:
        safe.set_table(box)
        assert safe.clearance(q0).max() < -0.02
        res = safe.solve_trajectory(P[0][None], P[1][None], q0=q0)
        assert res.clearance.min() >= -wik.COLLISION_DEPTH
        assert res.pos_err.min() > 0.02 and not res.reachable.any()
        z = safe.forward(res.q)[0, :, 2, 3]
        assert np.all((z > box.top_z) | (z < box.top_z - box.thickness))
    finally:
        safe.set_table(None)
    with pytest.raises(ValueError, match='no table geom'):
        wik.WristIK(robot_only, avoid_collisions=True).set_table(box)


def test_table_box_is_the_rl_scene_table(model_dir):
    """ik_scene.table_box builds the box dexman_sim.build_scene puts into the RL scene."""
    import trimesh

    from dexman_sim import SceneObjectSpec, SimConfig, build_scene
    cfg = SimConfig(collision='hull')
    mesh = trimesh.creation.box([0.06, 0.05, 0.08])
    pose = np.eye(4)
    pose[:3, 3] = [0.05, 0.35, 0.94]
    point, normal = np.array([0.0, 0.4, 0.90]), np.array([0.0, 0.0, 1.0])
    scene = build_scene([SceneObjectSpec('box', mesh, pose)], point, normal, robot_model_dir=model_dir, cfg=cfg)
    xy = (mesh.vertices @ pose[:3, :3].T + pose[:3, 3])[:, :2]
    box = ik_scene.table_box(point, normal, xy, model_dir, cfg)
    assert box.top_z == pytest.approx(scene.table.top_z, abs=1e-9)
    np.testing.assert_allclose(box.center_xy, scene.table.center_xy, atol=1e-6)
    np.testing.assert_allclose(box.half_extents, scene.table.half_extents, atol=1e-6)


def test_options_reject_bad_values(robot_only):
    with pytest.raises(ValueError, match='max_joint_speed'):
        wik.IKOptions(max_joint_speed=-1.0)
    with pytest.raises(ValueError, match='hand_table_margin'):
        wik.IKOptions(hand_table_margin=0.2)
    with pytest.raises(ConfigError, match=r'\[ik\].*collision_margin'):
        wik.IKOptions.from_dict({'collision_margin': -0.01})
    with pytest.raises(ValueError, match='frame_rate'):
        wik.WristIK(robot_only, frame_rate=0.0)
