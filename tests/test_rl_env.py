"""The vectorised MuJoCo residual environment (dexman_rl.core.mujoco_env) on a small retargeted
pick-and-place: exact resets, observation layout, the zero-residual replay, NaN handling,
auto-reset, early termination, RSI, thread-count determinism, evaluation and throughput."""
import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')
pytest.importorskip('torch')

from dexman_common.config import config_dir, load_section  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402
from dexman_rl.core import throughput  # noqa: E402
from dexman_rl.core.evaluate import collect_rollouts, evaluate  # noqa: E402
from dexman_rl.core.mujoco_env import EnvConfig, MujocoResidualEnv, pose6d  # noqa: E402
from dexman_rl.core.residual import ResidualConfig  # noqa: E402
from dexman_rl.core.vec_env import VecEnv  # noqa: E402

_OK, _WHY = rm.assets_available()
pytestmark = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')


def _make(num_envs=3, train=False, **cfg):
    from rl_reference import reference_dir, robot_model_dir, sim_config
    cfg = {'eval_object_noise_pos': 0.0, 'eval_object_noise_yaw': 0.0, **cfg}   # exact starts unless a test asks
    return MujocoResidualEnv(reference_dir(), num_envs, EnvConfig(**cfg), sim_cfg=sim_config(),
                             robot_model_dir=robot_model_dir(), train=train)


@pytest.fixture(scope='module')
def env():
    e = _make(3, threads=2)
    yield e
    e.close()


def _robot_qpos(env, t):
    return env.qpos_ref[t][env.robot_qadr]


def test_protocol_and_config_file_defaults(env):
    assert isinstance(env, VecEnv)
    assert env.act_dim == 48
    assert load_section(EnvConfig, config_dir() / 'rl.yaml') == EnvConfig()


def test_obs_layout(env):
    lay = env.obs_layout()
    sizes = {k: s.stop - s.start for k, s in lay.items()}
    assert sizes == {'joint_pos': 58, 'joint_vel': 58, 'ref_finger_pos': 44, 'wrist_pose': 18,
                     'ref_wrist_pose': 18, 'object_pose': 9, 'target_object_pose': 9, 'phase': 1}
    assert env.obs_dim == 215 == lay['phase'].stop
    obs = env.reset_to(np.array([0, 7, 20]))
    assert obs.dtype == np.float32 and obs.shape == (3, 215)
    t, nxt = np.array([0, 7, 20]), np.array([1, 8, 21])
    np.testing.assert_allclose(obs[:, lay['joint_pos']], env.qpos_ref[t][:, env.robot_qadr], atol=1e-6)
    assert np.all(obs[:, lay['joint_vel']] == 0)
    np.testing.assert_allclose(obs[:, lay['ref_finger_pos']], env.ref.hand_q[nxt].reshape(3, -1), atol=1e-6)
    # at a reset the palms are exactly at the reference FK of that frame
    np.testing.assert_allclose(obs[:, lay['wrist_pose']], pose6d(env.ik.palm_pos[t], env.ik.palm_rot[t]).reshape(3, -1),
                               atol=1e-6)
    np.testing.assert_allclose(obs[:, lay['ref_wrist_pose']],
                               pose6d(env.ik.palm_pos[nxt], env.ik.palm_rot[nxt]).reshape(3, -1), atol=1e-6)
    T0 = env.ref.object_pose[t, 0]
    np.testing.assert_allclose(obs[:, lay['object_pose']],
                               np.concatenate([T0[:, :3, 3], T0[:, :3, 0], T0[:, :3, 1]], axis=1), atol=1e-6)
    np.testing.assert_allclose(obs[:, lay['target_object_pose']], env.ref_obj_6d[nxt, 0], atol=1e-6)
    np.testing.assert_allclose(obs[:, -1], t / (env.T - 1), atol=1e-7)


@pytest.mark.parametrize('frame', [0, 'random'])
def test_reset_puts_robot_and_objects_exactly_at_the_reference(env, frame):
    frames = np.zeros(3, int) if frame == 0 else np.random.default_rng(1).integers(1, env.T - 1, 3)
    env.reset_to(frames)
    for i, t in enumerate(frames):
        d = env.datas[i]
        np.testing.assert_array_equal(d.qpos[env.robot_qadr], _robot_qpos(env, t))
        np.testing.assert_allclose(env.scene.object_pose(d, 0), env.ref.object_pose[t, 0], atol=1e-12)
        assert np.all(d.qvel == 0)
        assert env.frame[i] == t and np.all(env.residual.sum_x[i] == 0)


def test_zero_residual_replay_tracks_the_object_over_the_first_frames(env):
    env.reset_to(0)
    zero = np.zeros((3, env.act_dim), np.float32)
    ok_steps = 0
    for _ in range(10):
        _, r, done, info = env.step(zero)
        pos_err, rot_err = env.object_errors()
        assert not done.any() and np.all(np.isfinite(r))
        if np.all(pos_err < 0.03) and np.all(rot_err < 0.5):
            ok_steps += 1
        # before any contact the object rests: the object term is near its maximum without lift (0.6)
        assert np.all(info['reward_terms']['object'] > 0.5)
    assert ok_steps == 10
    # palms follow the reference within a few centimetres (PD tracking of the IK joints)
    ppos, _ = env.palm_state()
    assert np.linalg.norm(ppos - env.ik.palm_pos[env.frame], axis=-1).max() < 0.12


def test_nan_state_is_reset_and_flagged(env):
    env.reset_to(0)
    env.datas[1].qvel[0] = np.nan
    obs, r, done, info = env.step(np.zeros((3, env.act_dim)))
    assert info['unstable'].tolist() == [False, True, False]
    assert done.tolist() == [False, True, False] and not info['time_outs'][1]
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(r)) and r[1] == 0.0
    assert info['episode']['success'].tolist() == [False] and info['episode']['unstable'].tolist() == [True]
    assert env.frame[1] == 0 and np.all(np.isfinite(env.datas[1].qvel))
    # NaN actions are zero actions
    obs, r, done, info = env.step(np.full((3, env.act_dim), np.nan))
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(r))


def test_time_limit_auto_resets():
    e = _make(2, threads=1, term_pos_error=10.0, term_rot_error=10.0)
    try:
        e.reset()
        for k in range(e.horizon):
            obs, r, done, info = e.step(np.zeros((2, e.act_dim)))
            if k < e.horizon - 1:
                assert not done.any()
        assert done.all() and info['time_outs'].all()
        assert info['episode']['length'].tolist() == [e.horizon] * 2
        np.testing.assert_allclose(info['episode']['return'], info['episode']['return'][0])
        assert np.all(obs[:, -1] == 0) and np.all(e.frame == 0)        # evaluation mode: frame 0 again
        assert len(e.rollouts) == 2 and all(r.completed for r in e.rollouts)
    finally:
        e.close()


def test_early_termination_after_the_grace_period():
    e = _make(2, threads=1, term_pos_error=1e-9, term_grace_steps=3)
    try:
        e.reset()
        for k in range(3):
            _, _, done, info = e.step(np.zeros((2, e.act_dim)))
        assert done.all() and not info['time_outs'].any()
        assert info['episode']['length'].tolist() == [3, 3] and not info['episode']['success'].any()
    finally:
        e.close()


def test_rsi_in_training_and_frame_zero_in_evaluation():
    e = _make(16, threads=1, rsi_probability=1.0, train=True)
    try:
        e.reset()
        assert e.frame.max() > 0 and e.frame.max() <= e.T - 2
        state = e.get_state()
        e.reset()
        again = e.frame.copy()
        e.set_state(state)
        e.reset()
        np.testing.assert_array_equal(again, e.frame)                 # RNG state round trip
        e.set_mode(False)
        e.reset()
        assert np.all(e.frame == 0)
    finally:
        e.close()


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(5)
    acts = rng.uniform(-0.3, 0.3, (12, 4, 48)).astype(np.float32)
    out = []
    for threads in (1, 2):
        e = _make(4, threads=threads, train=True, rsi_probability=0.5, seed=7)
        try:
            o = [e.reset()]
            rs = []
            for a in acts:
                obs, r, _, _ = e.step(a)
                o.append(obs)
                rs.append(r)
            out.append((np.array(o), np.array(rs)))
        finally:
            e.close()
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_residual_moves_the_wrist_target(env):
    env.reset_to(0)
    a = np.zeros((3, env.act_dim))
    a[0, 24 + 2] = 1.0                                        # right hand, +z
    env.step(a)
    np.testing.assert_allclose(env.residual.sum_x[0, 1], [0, 0, ResidualConfig().pos_scale])
    assert np.all(env.residual.sum_x[1:] == 0)


def test_evaluate_replay_baseline(env):
    res = collect_rollouts(env, None, 5)
    assert len(res) == 5 and [r.env_id for r in res] == [0, 1, 2, 0, 1]
    s = evaluate(env, None, rollouts=4)
    assert s.count == 4 and 0.0 <= s.success_rate <= 1.0
    assert env.train is False


def test_throughput_reports_both_rates(env):
    m = throughput.measure(env, steps=5, warmup=1)
    assert m['env_steps_per_s'] > 0 and m['raw_steps_per_s'] > 0
    assert 0.0 < m['ratio'] < 2.0
    assert m['mj_steps_per_s'] == pytest.approx(4 * m['raw_steps_per_s'])


def test_evaluation_starts_are_perturbed_reproducibly_and_training_starts_are_not():
    e = _make(4, threads=1, eval_object_noise_pos=0.005, eval_object_noise_yaw=0.05)
    try:
        a = e.obj_qadr[0]
        ref = e.qpos_ref[0, a:a + 7]
        e.set_mode(False)
        e.reset()
        q1 = e.qpos[:, a:a + 7].copy()
        e.set_mode(False)                                   # re-entering evaluation: the same starts
        e.reset()
        np.testing.assert_array_equal(e.qpos[:, a:a + 7], q1)
        d_xy = np.linalg.norm(q1[:, :2] - ref[:2], axis=1)
        assert np.all(d_xy > 0) and np.all(d_xy < 0.03)                 # 5 mm std, every env different
        assert len(np.unique(np.round(d_xy, 9))) == 4
        np.testing.assert_allclose(q1[:, 2], ref[2])                    # height kept
        # the perturbation is a turn about world z: the object's z axis is unchanged
        from dexman_common.geometry import matrix_from_quat
        z_ref = matrix_from_quat(ref[3:], scalar_first=True)[:, 2]
        for q in q1:
            np.testing.assert_allclose(matrix_from_quat(q[3:], scalar_first=True)[:, 2], z_ref, atol=1e-9)
        e.set_mode(True)
        e.reset_to(0)
        np.testing.assert_allclose(e.qpos[:, a:a + 7], np.tile(ref, (4, 1)))   # training: exact reference
    finally:
        e.close()
