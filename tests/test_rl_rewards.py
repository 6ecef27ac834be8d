"""DexMan rewards (paper 3.4, Table 7): each term against hand-computed values, batching, ablations."""
import math
import pathlib

import numpy as np
import pytest

from dexman_common.config import ConfigError, load_section
from dexman_rl.core.rewards import (RewardConfig, _quat_angle, contact_reward, imitation_reward,
                                    lifted, object_reward, reward_terms)

ROOT = pathlib.Path(__file__).resolve().parents[1]
CFG = RewardConfig()
ID = np.array([1.0, 0.0, 0.0, 0.0])   # identity quaternion (w, x, y, z)
N_FINGER = 22                          # Shadow-hand finger joints


def quat_about(axis, angle):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    return np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis])


# ---------------------------------------------------------------- config

def test_yaml_matches_dataclass_defaults():
    assert load_section(RewardConfig, ROOT / 'config' / 'rl.yaml') == RewardConfig()


def test_defaults_are_table7():
    c = CFG
    assert (c.contact_gamma, c.contact_weight_tip, c.contact_weight_palm, c.contact_lambda,
            c.contact_w1, c.contact_w2) == (1.0, 0.5, 2.0, 400.0, 1.0, 1.0)
    assert (c.object_w_pos, c.object_w_rot, c.object_lambda_pos, c.object_lambda_rot,
            c.object_w1, c.object_w2) == (5.0, 1.0, 80.0, 3.0, 0.1, 4.0)
    assert (c.imit_w_pos, c.imit_w_rot, c.imit_w_jnt, c.imit_lambda_pos, c.imit_lambda_rot,
            c.imit_lambda_jnt) == (0.5, 0.5, 0.5, 2.0, 20.0, 20.0)
    assert c.lift_threshold == 0.02 and c.use_contact and c.use_object and c.use_imitation
    np.testing.assert_array_equal(c.keypoint_weights(), [0.5] * 5 + [2.0] * 4)


def test_unknown_key_rejected_with_its_name(tmp_path):
    with pytest.raises(ConfigError, match='contact_lamda'):
        RewardConfig.from_dict({'contact_lamda': 400.0})
    p = tmp_path / 'rl.yaml'
    p.write_text('reward:\n  contact_lambda: 400.0\n  bogus_weight: 1.0\n')
    with pytest.raises(ConfigError, match='bogus_weight'):
        load_section(RewardConfig, p)


def test_bad_values_rejected():
    with pytest.raises(ConfigError, match='contact_lambda'):
        RewardConfig.from_dict({'contact_lambda': 'big'})
    with pytest.raises(ConfigError, match='object_w2'):
        RewardConfig.from_dict({'object_w2': -1.0})
    assert RewardConfig.from_dict({'contact_lambda': 100}).contact_lambda == 100.0   # int -> float


# ---------------------------------------------------------------- lifted

def test_lifted_threshold_is_strict_and_broadcasts():
    z = np.array([[0.0, 0.02, 0.0201, 0.0199, -0.05]])
    np.testing.assert_array_equal(lifted(z, np.zeros(5), CFG), [[False, False, True, False, False]])
    rest = np.array([[0.10, 0.20], [0.30, 0.40]])                 # (N, O) resting heights
    z = np.array([[0.13, 0.21], [0.30, 0.45]])
    np.testing.assert_array_equal(lifted(z, rest, CFG), [[True, False], [False, True]])
    np.testing.assert_array_equal(lifted(z, np.array([0.1, 0.1]), CFG), [[True, True], [True, True]])
    assert lifted(np.array([[0.05]]), np.array([0.0]), CFG.replace(lift_threshold=0.1)).tolist() == [[False]]


# ---------------------------------------------------------------- quaternion angle

def test_quat_angle_values_and_sign_invariance():
    q = quat_about([0, 0, 1], math.pi / 2)
    assert _quat_angle(ID, q) == pytest.approx(math.pi / 2)
    assert _quat_angle(ID, -q) == pytest.approx(math.pi / 2)                 # q ~ -q
    assert _quat_angle(-ID, q) == pytest.approx(math.pi / 2)
    assert _quat_angle(ID, 3.0 * q) == pytest.approx(math.pi / 2)            # unnormalised input
    assert _quat_angle(ID, quat_about([1, 0, 0], 1.5 * math.pi)) == pytest.approx(math.pi / 2)  # in [0, pi]
    assert _quat_angle(ID, np.array([0.0, 1.0, 0.0, 0.0])) == pytest.approx(math.pi)
    a, b = quat_about([1, 2, 3], 0.3), quat_about([1, 2, 3], 1.0)
    assert _quat_angle(a, b) == pytest.approx(0.7)
    assert _quat_angle(a, a) == pytest.approx(0.0, abs=1e-7)
    batch = _quat_angle(np.stack([ID, ID, a]), np.stack([q, -q, b]))
    np.testing.assert_allclose(batch, [math.pi / 2, math.pi / 2, 0.7])
    assert _quat_angle(np.zeros((2, 0, 4)), np.zeros((2, 0, 4))).shape == (2, 0)


# ---------------------------------------------------------------- contact

def contact_case(N=1, O=1):
    """Empty inputs: keypoints at the origin with +z normals, no priors."""
    kp = np.zeros((N, 2, 9, 3))
    nrm = np.zeros((N, 2, 9, 3))
    nrm[..., 2] = 1.0
    mask = np.zeros((N, 2, 9, O), dtype=bool)
    vert = np.full((N, 2, 9, O, 3), np.nan)          # unused entries may be NaN
    lift = np.zeros((N, O), dtype=bool)
    return kp, nrm, mask, vert, lift


def test_contact_tip_1cm_normal_aligned():
    kp, nrm, mask, vert, lift = contact_case()
    mask[0, 1, 1, 0] = True                          # right index fingertip, object 0
    vert[0, 1, 1, 0] = [0.0, 0.0, 0.01]              # 1 cm along its normal
    expected = 0.5 * (1 + 1.0 * 1.0) * math.exp(-400 * 0.01 ** 2) * (1.0 + 1.0 * 0) / 1
    assert contact_reward(kp, nrm, mask, vert, lift, CFG) == pytest.approx([expected])
    assert expected == pytest.approx(math.exp(-0.04))


def test_contact_direction_factor():
    kp, nrm, mask, vert, lift = contact_case()
    mask[0, 0, 0, 0] = True
    vert[0, 0, 0, 0] = [0.0, 0.0, -0.01]             # vertex behind the pad: <n, d> = -1
    assert contact_reward(kp, nrm, mask, vert, lift, CFG) == pytest.approx([0.0])
    vert[0, 0, 0, 0] = [0.01, 0.0, 0.0]              # sideways: <n, d> = 0
    assert contact_reward(kp, nrm, mask, vert, lift, CFG) == pytest.approx([0.5 * 1 * math.exp(-0.04) * 1])
    vert[0, 0, 0, 0] = [0.0, 0.0, 0.0]               # on the vertex: d = 0, factor 1, exp(0) = 1
    assert contact_reward(kp, nrm, mask, vert, lift, CFG) == pytest.approx([0.5 * 1 * 1 * 1])
    vert[0, 0, 0, 0] = [0.0, 0.03, 0.04]             # 5 cm at cos = 0.8
    assert contact_reward(kp, nrm, mask, vert, lift, CFG) == pytest.approx(
        [0.5 * (1 + 0.8) * math.exp(-400 * 0.05 ** 2)])


def test_contact_palm_lifted_two_objects_both_hands():
    kp, nrm, mask, vert, lift = contact_case(O=2)
    kp[0, 0, 6] = [0.1, 0.2, 0.3]                    # left middle MCP (palm keypoint)
    mask[0, 0, 6, 1] = True                          # ... paired with object 1, which is lifted
    vert[0, 0, 6, 1] = [0.1, 0.2, 0.32]              # 2 cm along +z
    lift[0, 1] = True
    mask[0, 1, 0, 0] = True                          # right thumb tip on object 0 (not lifted)
    vert[0, 1, 0, 0] = [0.0, 0.0, 0.0]
    palm = 2.0 * (1 + 1) * math.exp(-400 * 0.02 ** 2) * (1 + 1)
    tip = 0.5 * 1 * 1 * (1 + 0)
    assert contact_reward(kp, nrm, mask, vert, lift, CFG) == pytest.approx([(palm + tip) / 2])
    assert (palm + tip) / 2 == pytest.approx((8 * math.exp(-0.16) + 0.5) / 2)


def test_contact_no_priors_is_zero_and_rejects_wrong_k():
    kp, nrm, mask, vert, lift = contact_case(N=3, O=2)
    np.testing.assert_array_equal(contact_reward(kp, nrm, mask, vert, lift, CFG), [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match='9'):
        contact_reward(kp[:, :, :5], nrm[:, :, :5], mask[:, :, :5], vert[:, :, :5], lift, CFG)


def random_contact(rng, N=5, O=2):
    kp = rng.normal(scale=0.05, size=(N, 2, 9, 3))
    nrm = rng.normal(size=(N, 2, 9, 3))
    nrm /= np.linalg.norm(nrm, axis=-1, keepdims=True)
    mask = rng.random((N, 2, 9, O)) < 0.4
    vert = kp[:, :, :, None, :] + rng.normal(scale=0.03, size=(N, 2, 9, O, 3))
    lift = rng.random((N, O)) < 0.5
    return kp, nrm, mask, vert, lift


def test_contact_batch_equals_per_env_and_loop():
    rng = np.random.default_rng(0)
    kp, nrm, mask, vert, lift = random_contact(rng)
    batch = contact_reward(kp, nrm, mask, vert, lift, CFG)
    w = [0.5] * 5 + [2.0] * 4
    for n in range(kp.shape[0]):
        single = contact_reward(kp[n:n + 1], nrm[n:n + 1], mask[n:n + 1], vert[n:n + 1], lift[n:n + 1], CFG)
        assert single[0] == pytest.approx(batch[n])
        total = 0.0                                   # the formula written out, pair by pair
        for h in range(2):
            for k in range(9):
                for o in range(2):
                    if mask[n, h, k, o]:
                        d = vert[n, h, k, o] - kp[n, h, k]
                        dist = np.linalg.norm(d)
                        total += (w[k] * (1 + np.dot(nrm[n, h, k], d / dist)) * math.exp(-400 * dist ** 2)
                                  * (1 + 1 * lift[n, o]))
        assert batch[n] == pytest.approx(total / 2)


# ---------------------------------------------------------------- object

def test_object_reward_values():
    pos, tgt = np.zeros((1, 1, 3)), np.array([[[0.0, 0.01, 0.0]]])
    q = ID[None, None]
    not_lifted, is_lifted = np.array([[False]]), np.array([[True]])
    assert object_reward(pos, q, tgt, q, not_lifted, CFG) == pytest.approx([(5 * math.exp(-80 * 0.01) + 1) * 0.1])
    assert object_reward(pos, q, tgt, q, is_lifted, CFG) == pytest.approx([(5 * math.exp(-0.8) + 1) * (0.1 + 4)])
    q90 = quat_about([0, 0, 1], math.pi / 2)[None, None]
    assert object_reward(pos, q, pos, q90, not_lifted, CFG) == pytest.approx(
        [(5 + math.exp(-3 * math.pi / 2)) * 0.1])
    assert object_reward(pos, q, pos, -q90, not_lifted, CFG) == pytest.approx(
        [(5 + math.exp(-3 * math.pi / 2)) * 0.1])                   # sign-invariant
    assert object_reward(pos, q, pos, q, is_lifted, CFG) == pytest.approx([24.6])   # maximum


def test_object_reward_mean_over_objects_and_batch():
    pos = np.zeros((2, 2, 3))
    tgt = np.array([[[0.0, 0.0, 0.0], [0.0, 0.0, 0.05]],
                    [[0.02, 0.0, 0.0], [0.0, 0.0, 0.0]]])
    q = np.broadcast_to(ID, (2, 2, 4))
    lift = np.array([[True, False], [False, False]])
    got = object_reward(pos, q, tgt, q, lift, CFG)
    env0 = ((5 + 1) * 4.1 + (5 * math.exp(-4.0) + 1) * 0.1) / 2
    env1 = ((5 * math.exp(-1.6) + 1) * 0.1 + 6 * 0.1) / 2
    np.testing.assert_allclose(got, [env0, env1])
    for n in range(2):
        assert object_reward(pos[n:n + 1], q[n:n + 1], tgt[n:n + 1], q[n:n + 1], lift[n:n + 1], CFG)[0] \
            == pytest.approx(got[n])


# ---------------------------------------------------------------- imitation

def imitation_case(N=1):
    wp = np.zeros((N, 2, 3))
    wq = np.broadcast_to(ID, (N, 2, 4)).copy()
    fq = np.zeros((N, 2, N_FINGER))
    return wp, wq, wp.copy(), wq.copy(), fq, fq.copy()


def test_imitation_perfect_tracking_maximum():
    wp, wq, rp, rq, fq, rf = imitation_case()
    # per hand 0.5 + 0.5 + 0.5 * 22 = 12 (sum over joints), two hands sum to 24
    assert imitation_reward(wp, wq, rp, rq, fq, rf, None, CFG) == pytest.approx([24.0])
    assert imitation_reward(wp, wq, rp, rq, fq, rf, np.array([[True, False]]), CFG) == pytest.approx([12.0])
    assert imitation_reward(wp, wq, rp, rq, fq, rf, np.array([[False, False]]), CFG) == pytest.approx([0.0])


def test_imitation_values():
    wp, wq, rp, rq, fq, rf = imitation_case()
    rp[0, 1] = [0.0, 0.1, 0.0]                                  # right wrist 10 cm off
    rq[0, 1] = quat_about([1, 0, 0], 0.1)                       # and rotated 0.1 rad
    rf[0, 1, 3] = 0.05                                          # one joint 0.05 rad off
    fq[0, 1, 7] = -0.05                                         # another, other sign
    right = 0.5 * math.exp(-2 * 0.1) + 0.5 * math.exp(-20 * 0.1) + 0.5 * (20 + 2 * math.exp(-20 * 0.05))
    left = 12.0
    assert imitation_reward(wp, wq, rp, rq, fq, rf, None, CFG) == pytest.approx([left + right])
    assert imitation_reward(wp, wq, rp, rq, fq, rf, np.array([[False, True]]), CFG) == pytest.approx([right])
    rq[0, 1] = -rq[0, 1]                                        # sign-invariant
    assert imitation_reward(wp, wq, rp, rq, fq, rf, None, CFG) == pytest.approx([left + right])


def test_imitation_inactive_hand_ignores_nan_reference():
    wp, wq, rp, rq, fq, rf = imitation_case(N=2)
    rp[:, 0], rq[:, 0], rf[:, 0] = np.nan, np.nan, np.nan       # no left-hand reference this frame
    got = imitation_reward(wp, wq, rp, rq, fq, rf, np.array([[False, True], [False, True]]), CFG)
    np.testing.assert_allclose(got, [12.0, 12.0])


def test_imitation_batch_equals_per_env():
    rng = np.random.default_rng(1)
    N = 4
    wp, rp = rng.normal(scale=0.1, size=(2, N, 2, 3))
    wq, rq = rng.normal(size=(2, N, 2, 4))
    fq, rf = rng.normal(scale=0.2, size=(2, N, 2, N_FINGER))
    act = rng.random((N, 2)) < 0.7
    got = imitation_reward(wp, wq, rp, rq, fq, rf, act, CFG)
    for n in range(N):
        s = slice(n, n + 1)
        assert imitation_reward(wp[s], wq[s], rp[s], rq[s], fq[s], rf[s], act[s], CFG)[0] == pytest.approx(got[n])


# ---------------------------------------------------------------- total and ablations

def full_inputs(rng, N=3, O=2):
    kp, nrm, mask, vert, _ = random_contact(rng, N, O)
    obj_pos = rng.normal(scale=0.05, size=(N, O, 3))
    obj_pos[..., 2] = rng.choice([0.0, 0.1], size=(N, O))
    wp, wq, rp, rq, fq, rf = imitation_case(N)
    rp += 0.01
    return dict(obj_pos=obj_pos, rest_z=np.zeros(O), obj_quat=np.broadcast_to(ID, (N, O, 4)),
                target_pos=obj_pos + 0.01, target_quat=np.broadcast_to(quat_about([0, 1, 0], 0.2), (N, O, 4)),
                kp_pos=kp, kp_normal=nrm, prior_mask=mask, target_vertex=vert,
                wrist_pos=wp, wrist_quat=wq, ref_wrist_pos=rp, ref_wrist_quat=rq, finger_q=fq, ref_finger_q=rf,
                hand_active=np.ones((N, 2), bool))


def test_reward_terms_total_is_sum_and_uses_lifted():
    inp = full_inputs(np.random.default_rng(2))
    out = reward_terms(CFG, **inp)
    assert set(out) == {'contact', 'object', 'imitation', 'total'}
    lift = inp['obj_pos'][..., 2] > 0.02
    np.testing.assert_allclose(out['contact'], contact_reward(
        inp['kp_pos'], inp['kp_normal'], inp['prior_mask'], inp['target_vertex'], lift, CFG))
    np.testing.assert_allclose(out['object'], object_reward(
        inp['obj_pos'], inp['obj_quat'], inp['target_pos'], inp['target_quat'], lift, CFG))
    np.testing.assert_allclose(out['total'], out['contact'] + out['object'] + out['imitation'])
    assert all(v.shape == (3,) for v in out.values()) and (out['contact'] > 0).any()


@pytest.mark.parametrize('flag,term', [('use_contact', 'contact'), ('use_object', 'object'),
                                       ('use_imitation', 'imitation')])
def test_ablation_flags_zero_their_term(flag, term):
    inp = full_inputs(np.random.default_rng(3))
    full = reward_terms(CFG, **inp)
    abl = reward_terms(CFG.replace(**{flag: False}), **inp)
    np.testing.assert_array_equal(abl[term], 0.0)
    assert (full[term] > 0).all()
    for other in {'contact', 'object', 'imitation'} - {term}:
        np.testing.assert_allclose(abl[other], full[other])
    np.testing.assert_allclose(abl['total'], full['total'] - full[term])


def test_disabled_terms_need_no_inputs():
    obj_pos = np.zeros((2, 1, 3))
    cfg = CFG.replace(use_contact=False, use_imitation=False)
    out = reward_terms(cfg, obj_pos=obj_pos, rest_z=np.zeros(1), obj_quat=np.broadcast_to(ID, (2, 1, 4)),
                       target_pos=obj_pos, target_quat=np.broadcast_to(ID, (2, 1, 4)))
    np.testing.assert_allclose(out['total'], [0.6, 0.6])       # (5 + 1) * 0.1, not lifted
    out = reward_terms(CFG.replace(use_contact=False, use_object=False, use_imitation=False),
                       obj_pos=obj_pos, rest_z=np.zeros(1))
    np.testing.assert_array_equal(out['total'], [0.0, 0.0])
