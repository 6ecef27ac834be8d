"""Robot contact keypoints and outward normals (dexman_rl.core.keypoints): the same points as
dexman_retarget's Shadow keypoints, unit normals with the documented definition, vectorised."""
import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')

from dexman_description import robot_model as rm  # noqa: E402
from dexman_retarget.core.hand_keypoints import shadow_contact_keypoints  # noqa: E402
from dexman_rl.core.keypoints import ContactKeypoints  # noqa: E402

_OK, _WHY = rm.assets_available()
SIDES = ('left', 'right')


@pytest.fixture(scope='module')
def model():
    if not _OK:
        pytest.skip(f'robot asset packages not installed: {_WHY}')
    from rl_reference import robot_model_dir
    return rm.load_model(robot_model_dir())


def _random_data(model, seed):
    d = mujoco.MjData(model)
    rng = np.random.default_rng(seed)
    d.qpos[:] = rng.uniform(model.jnt_range[:, 0], model.jnt_range[:, 1])
    mujoco.mj_kinematics(model, d)
    mujoco.mj_comPos(model, d)
    return d


def test_positions_match_the_retargeting_keypoints(model):
    kp = ContactKeypoints(model)
    for seed in range(3):
        d = _random_data(model, seed)
        pos, _ = kp.compute_data(d)
        for h, s in enumerate(SIDES):
            np.testing.assert_array_equal(pos[h], shadow_contact_keypoints(model, d, s))


def test_zero_pose_normals_point_to_the_palm_side(model):
    kp = ContactKeypoints(model)
    d = mujoco.MjData(model)
    mujoco.mj_kinematics(model, d)
    _, n = kp.compute_data(d)
    for h, s in enumerate(SIDES):
        palm_R = d.xmat[model.body(rm.HAND_PREFIX[s] + 'palm').id].reshape(3, 3)
        local = n[h] @ palm_R                                # normals in the palm frame
        np.testing.assert_allclose(local[1:], np.tile([0, -1, 0], (8, 1)), atol=1e-9)   # fingers, MCPs
        # thumb pad: in the palm plane, towards the fingers (+z) and across the palm (away from the
        # thumb side, which is +x for the right hand and -x for the mirrored left hand)
        side = 1.0 if s == 'right' else -1.0
        np.testing.assert_allclose(local[0], [-side * np.sqrt(0.5), 0, np.sqrt(0.5)], atol=1e-3)


def test_tip_normal_follows_the_distal_flexion_direction(model):
    kp = ContactKeypoints(model)
    jacp = np.zeros((3, model.nv))
    for seed in range(3):
        d = _random_data(model, 10 + seed)
        _, n = kp.compute_data(d)
        np.testing.assert_allclose(np.linalg.norm(n, axis=-1), 1.0, atol=1e-12)
        for h, s in enumerate(SIDES):
            for k, (site, joint, sign) in enumerate([('S_thtip', 'THJ0', -1), ('S_fftip', 'FFJ0', 1),
                                                     ('S_mftip', 'MFJ0', 1), ('S_rftip', 'RFJ0', 1),
                                                     ('S_lftip', 'LFJ0', 1)]):
                pre = rm.HAND_PREFIX[s]
                mujoco.mj_jacSite(model, d, jacp, None, model.site(pre + site).id)
                v = sign * jacp[:, model.joint(pre + joint).dofadr[0]]
                np.testing.assert_allclose(n[h, k], v / np.linalg.norm(v), atol=1e-9)


def test_vectorised_over_envs(model):
    kp = ContactKeypoints(model)
    ds = [_random_data(model, s) for s in range(4)]
    pos, nrm = kp.compute(np.stack([d.xpos for d in ds]), np.stack([d.xmat for d in ds]),
                          np.stack([d.site_xpos for d in ds]))
    assert pos.shape == nrm.shape == (4, 2, 9, 3)
    for i, d in enumerate(ds):
        p, n = kp.compute_data(d)
        np.testing.assert_array_equal(pos[i], p)
        np.testing.assert_allclose(nrm[i], n, atol=1e-15)
