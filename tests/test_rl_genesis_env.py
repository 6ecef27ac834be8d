"""The Genesis backend of the residual env (dexman_rl.core.genesis_env).

Always run: the clear error without Genesis, the per-geom friction under Genesis's max rule, the
robot MJCF given to Genesis (J0 couplings as joint equalities, hand friction) and the object MJCF,
both compiled by MuJoCo (Genesis reads MJCF through MuJoCo's compiler).

Opt-in (``@pytest.mark.genesis``; skipped with the reason unless ``import genesis`` works, i.e. the
optional install of requirements/genesis.txt): on the shared small pick-and-place reference, a
Genesis env resets robot and object to the reference (as the MuJoCo test checks, to float32
rounding), its observation layout and reset observations equal the MuJoCo env's, the friction is
as built, and a zero-residual replay keeps the object at the reference for the first steps. The
first Genesis scene build compiles kernels (minutes on CPU, cached on disk afterwards)."""
import importlib.util
import sys

import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')

from dexman_description import robot_model as rm  # noqa: E402
from dexman_rl.core import genesis_env as ge  # noqa: E402
from dexman_rl.core.env_config import EnvConfig  # noqa: E402
from dexman_sim.config import SimConfig  # noqa: E402
from dexman_sim.friction import pair_friction  # noqa: E402

_OK, _WHY = rm.assets_available()
needs_assets = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')
_HAS_GENESIS = importlib.util.find_spec('genesis') is not None
needs_genesis = [pytest.mark.genesis, pytest.mark.slow, needs_assets, pytest.mark.skipif(
    not _HAS_GENESIS, reason=f'Genesis is not installed (optional backend): {ge.INSTALL_HINT}')]
R_COUPLING = 0.00805 / 0.00705          # the T_xxJ1c tendon: 0.00705 J0 - 0.00805 J1 kept near 0


def genesis_test(f):
    for mark in needs_genesis:
        f = mark(f)
    return f


def test_missing_genesis_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, 'genesis', None)          # `import genesis` fails, installed or not
    with pytest.raises(ge.GenesisUnavailable, match=r'genesis-world==1\.4\.5.*requirements/genesis\.txt'):
        ge.import_genesis()
    # raised before the reference is even read
    with pytest.raises(ge.GenesisUnavailable):
        ge.GenesisResidualEnv(tmp_path / 'no_reference', 2)


def test_geom_friction_reproduces_the_pairs_under_the_max_rule():
    pair = pair_friction(SimConfig())                       # 'average': hand-object 2.5, object-table 0.625
    f = ge.genesis_geom_friction(pair)
    assert (f.hand, f.table, f.object) == pytest.approx((2.5, 0.625, 0.625))
    assert max(f.hand, f.object) == pytest.approx(pair.hand_object)
    assert max(f.object, f.table) == pytest.approx(pair.object_table)
    assert f.object == pytest.approx(0.625)                  # object-object: 0.625, not 1.0 (documented)
    f = ge.genesis_geom_friction(pair_friction(SimConfig(friction_convention='max')))
    assert (f.hand, f.table, f.object) == pytest.approx((4.0, 1.0, 1.0))    # every pair exact


@pytest.fixture(scope='module')
def robot_dir():
    if not _OK:
        pytest.skip(f'robot asset packages not installed: {_WHY}')
    from rl_reference import robot_model_dir
    return robot_model_dir()


def test_robot_mjcf_couples_j0_and_sets_the_hand_friction(robot_dir):
    model = rm.load_model(robot_dir)
    ratios = ge.coupling_ratios(model)
    assert sorted(ratios) == sorted(f'{p}{j}' for p in ('lh_', 'rh_') for j in rm.HAND_COUPLED_JOINTS)
    for j0, (j1, r) in ratios.items():
        assert j1 == j0[:-1] + '1' and r == pytest.approx(R_COUPLING, rel=1e-12)
    gm = mujoco.MjModel.from_xml_string(ge.robot_mjcf(robot_dir, model, 2.5))
    assert (gm.nq, gm.nu, gm.nbody) == (model.nq, model.nu, model.nbody)
    assert gm.neq == 8 and np.all(gm.eq_type == mujoco.mjtEq.mjEQ_JOINT)
    for e in range(gm.neq):
        j0, j1 = gm.joint(int(gm.eq_obj1id[e])).name, gm.joint(int(gm.eq_obj2id[e])).name
        assert ratios[j0][0] == j1
        np.testing.assert_allclose(gm.eq_data[e, :5], [0.0, R_COUPLING, 0.0, 0.0, 0.0], rtol=1e-12)
    palms = [gm.body(rm.HAND_PREFIX[s] + rm.PALM_BODY).id for s in ('left', 'right')]
    hand = np.zeros(gm.ngeom, bool)
    for g in range(gm.ngeom):
        b = int(gm.geom_bodyid[g])
        while b not in palms and b != 0:
            b = int(gm.body_parentid[b])
        hand[g] = b != 0
    assert hand.sum() > 40
    assert np.all(gm.geom_friction[hand, 0] == 2.5)
    np.testing.assert_array_equal(gm.geom_friction[~hand], model.geom_friction[~hand])


def test_object_mjcf_has_the_parts_pose_and_mass_properties():
    import trimesh
    from dexman_common.geometry import matrix_from_quat
    parts = [trimesh.creation.box((0.04, 0.04, 0.02)), trimesh.creation.box((0.02, 0.02, 0.06))]
    parts[1].apply_translation([0.0, 0.0, 0.04])
    I = np.array([[2e-4, 1e-5, 0.0], [1e-5, 2e-4, 0.0], [0.0, 0.0, 3e-4]])
    T = np.eye(4)
    T[:3, :3] = matrix_from_quat(np.array([np.cos(0.3), 0.0, 0.0, np.sin(0.3)]), scalar_first=True)
    T[:3, 3] = [0.1, 0.4, 0.9]
    m = mujoco.MjModel.from_xml_string(ge.object_mjcf('object_0', parts, 0.2, [0.0, 0.0, 0.02], I, 0.625,
                                                      0.005, 0.0001, T))
    b = m.body('object_0').id
    assert m.ngeom == 2 and np.all(m.geom_friction == [0.625, 0.005, 0.0001])
    assert m.body_mass[b] == pytest.approx(0.2)
    np.testing.assert_allclose(m.body_ipos[b], [0.0, 0.0, 0.02], atol=1e-12)
    Ri = matrix_from_quat(m.body_iquat[b], scalar_first=True)
    np.testing.assert_allclose(Ri @ np.diag(m.body_inertia[b]) @ Ri.T, I, atol=1e-10)
    np.testing.assert_allclose(m.qpos0[:3], T[:3, 3], atol=1e-12)
    np.testing.assert_allclose(matrix_from_quat(m.qpos0[3:], scalar_first=True), T[:3, :3], atol=1e-12)


# ---------------------------------------------------------------- opt-in: a real Genesis scene
@pytest.fixture(scope='module')
def envs():
    try:
        ge.import_genesis()
    except ge.GenesisUnavailable as e:
        pytest.skip(str(e))
    from dexman_rl.core.mujoco_env import MujocoResidualEnv
    from rl_reference import reference_dir, robot_model_dir, sim_config
    cfg = EnvConfig(backend='genesis', eval_object_noise_pos=0.0, eval_object_noise_yaw=0.0)
    g = ge.GenesisResidualEnv(reference_dir(), 3, cfg, sim_cfg=sim_config(), robot_model_dir=robot_model_dir(),
                              train=False)
    m = MujocoResidualEnv(reference_dir(), 3, cfg.replace(backend='mujoco'), sim_cfg=sim_config(),
                          robot_model_dir=robot_model_dir(), train=False)
    yield g, m
    g.close()
    m.close()


@genesis_test
@pytest.mark.parametrize('frame', [0, 'random'])
def test_reset_puts_robot_and_objects_at_the_reference(envs, frame):
    env, _ = envs
    frames = np.zeros(3, int) if frame == 0 else np.random.default_rng(1).integers(1, env.T - 1, 3)
    env.reset_to(frames)
    for i, t in enumerate(frames):
        np.testing.assert_allclose(env.qpos[i, env.robot_qadr], env.qpos_ref[t][env.robot_qadr], atol=1e-6)
        np.testing.assert_allclose(env.scene.object_pose(env.datas[i], 0), env.ref.object_pose[t, 0], atol=1e-6)
        assert np.all(env.qvel[i] == 0)
        assert env.frame[i] == t and np.all(env.residual.sum_x[i] == 0)
    # the palms (Genesis links) are at the reference forward kinematics of those frames
    ppos, prot = env.palm_state()
    np.testing.assert_allclose(ppos, env.ik.palm_pos[frames], atol=2e-6)
    np.testing.assert_allclose(prot, env.ik.palm_rot[frames], atol=2e-6)


@genesis_test
def test_obs_layout_and_reset_observations_equal_the_mujoco_envs(envs):
    g, m = envs
    assert g.obs_layout() == m.obs_layout() and (g.obs_dim, g.act_dim) == (m.obs_dim, m.act_dim) == (215, 48)
    frames = np.array([0, 7, 20])
    np.testing.assert_allclose(g.reset_to(frames), m.reset_to(frames), atol=1e-5)
    np.testing.assert_allclose(g.site_xpos, m.site_xpos, atol=2e-6)          # fingertip sites from Genesis links


@genesis_test
def test_friction_as_built(envs):
    env, _ = envs
    f = env.geom_friction
    s = env.solver
    hand = [gm.idx for gm in env.robot.geoms if gm.link.name.startswith(('lh_', 'rh_'))]
    obj = [gm.idx for o in env.objects for gm in o.geoms]
    table = [gm.idx for e in env.gs_scene.entities if e not in (env.robot, *env.objects) for gm in e.geoms]
    assert len(hand) > 20 and len(obj) >= 1 and len(table) == 1
    np.testing.assert_allclose(s.get_geoms_friction(hand).cpu().numpy(), f.hand, rtol=1e-6)
    np.testing.assert_allclose(s.get_geoms_friction(obj).cpu().numpy(), f.object, rtol=1e-6)
    np.testing.assert_allclose(s.get_geoms_friction(table).cpu().numpy(), f.table, rtol=1e-6)


@genesis_test
def test_zero_residual_replay_keeps_the_object_at_the_reference(envs):
    env, _ = envs
    env.reset_to(0)
    zero = np.zeros((3, env.act_dim), np.float32)
    for _ in range(10):
        _, r, done, info = env.step(zero)
        pos_err, rot_err = env.object_errors()
        assert not done.any() and not info['unstable'].any() and np.all(np.isfinite(r))
        assert np.all(pos_err < 0.03) and np.all(rot_err < 0.5)
        assert np.all(info['reward_terms']['object'] > 0.5)
    ppos, _ = env.palm_state()
    assert np.linalg.norm(ppos - env.ik.palm_pos[env.frame], axis=-1).max() < 0.12



@genesis_test
def test_skill_rollout_export_runs_on_genesis(envs):
    """``skill_training.record_rollout`` (the exported JointTrajectory-shaped rollout) through the
    backend factory: a second Genesis scene in the same process, objects read via ``env.datas``."""
    from dexman_rl.core import skill_training as st
    from dexman_rl.core.reference_data import load
    from rl_reference import reference_dir, robot_model_dir, sim_config
    env, _ = envs
    cfgs = st.load_configs({'env': {'backend': 'genesis'}, 'sim': {'cache_dir': sim_config().cache_dir}})
    ref = load(reference_dir())
    rollout, qpos, model, _ = st.record_rollout(ref, cfgs, robot_model_dir())
    T = len(rollout.time_from_start)
    assert T >= 10 and qpos.shape == (T, model.nq) and len(rollout.joint_names) == 50
    np.testing.assert_allclose(rollout.object_poses[0, 0], ref.object_pose[0, 0], atol=1e-6)
    assert np.abs(rollout.object_poses[0, :10, :3, 3] - ref.object_pos[:10, 0]).max() < 0.03
