"""Finger retargeting (paper 3.3): FK dataset of the Shadow hand, the differentiable FK, the 5-layer
MLP trained briefly, left = mirrored right, the checkpoint format and loader, the shipped
checkpoint's held-out fingertip error and the training CLI. Skipped, with the reason, when the
robot asset packages are not installed."""
import time

import numpy as np
import pytest

torch = pytest.importorskip('torch')
mujoco = pytest.importorskip('mujoco')

from dexman_retarget import train_finger_mlp_cli  # noqa: E402
from dexman_retarget.core import finger_dataset as fd  # noqa: E402
from dexman_retarget.core import finger_mlp as fm  # noqa: E402
from dexman_retarget.core import hand_keypoints as hk  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402

_OK, _WHY = rm.assets_available()
pytestmark = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')

# Measured on the dev machine (2 shared cores, 1 torch thread):
QUICK_SAMPLES, QUICK_EPOCHS = 20_000, 8       # ~8 s of training
QUICK_BOUND_M = 0.008                          # quick run: held-out mean 5.3 mm
SHIPPED_BOUND_M = 0.0015                       # shipped checkpoint: held-out mean 0.86 mm


@pytest.fixture(scope='module', autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope='module')
def model():
    return rm.build_model()


@pytest.fixture(scope='module')
def kin(model):
    return {s: fd.ShadowHandKinematics(model, s) for s in ('right', 'left')}


@pytest.fixture(scope='module')
def heldout(kin):
    return {s: fd.make_dataset(kin[s], 3000, seed=777 + (s == 'left')) for s in kin}


@pytest.fixture(scope='module')
def quick(kin, heldout):
    ds = fd.make_dataset(kin['right'], QUICK_SAMPLES, seed=0)
    t = time.monotonic()
    net, hist = fm.train(kin['right'], ds, fm.TrainConfig(epochs=QUICK_EPOCHS, lr=3e-3))
    return net, hist, time.monotonic() - t


# ------------------------------------------------------------------------------- dataset
def test_coupling_and_limits_from_the_model(kin):
    k = kin['right']
    assert k.actuated_names == rm.hand_actuated_joints('right')
    for c in k.couplings:
        assert c.ratio == pytest.approx(0.00805 / 0.00705)
        assert c.slack == pytest.approx(0.001 / 0.00705) and c.offset == pytest.approx(0)
    j1 = [k.actuated_names.index(f'rh_{f}J1') for f in ('FF', 'MF', 'RF', 'LF')]
    assert np.allclose(k.hi[j1], (1.571 + 0.001 / 0.00705) / (0.00805 / 0.00705), atol=1e-6)
    assert np.allclose(k.hi[j1], 1.5001, atol=1e-4)
    q = k.full_q(np.where(np.arange(18) == j1[0], 1.45, 0.3))
    assert q[k.joint_names.index('rh_FFJ0')] == pytest.approx(1.571)       # clipped at its limit
    assert q[k.joint_names.index('rh_MFJ0')] == pytest.approx(0.3 * c.ratio)


def test_dataset_deterministic_and_within_limits(kin):
    k = kin['right']
    a, b = fd.make_dataset(k, 3000, seed=5), fd.make_dataset(k, 3000, seed=5)
    c = fd.make_dataset(k, 3000, seed=6)
    assert np.array_equal(a.q, b.q) and np.array_equal(a.x, b.x) and np.array_equal(a.tips, b.tips)
    assert not np.allclose(a.q, c.q)
    assert np.all(a.q >= k.lo) and np.all(a.q <= k.hi)
    assert a.x.shape == (3000, 15) and np.allclose(a.x, a.tips.reshape(3000, 15) / k.scale)
    # both halves present: uniform samples fill the box, grasp samples crowd the anchors
    frac_closed = np.mean(a.q[:, 1] > 0.6)                    # FFJ2 flexed
    assert 0.3 < frac_closed < 0.8
    # FK agrees with a direct MuJoCo evaluation (J0 coupled), sample by sample
    m, d = k.model, mujoco.MjData(k.model)
    for i in (0, 17, 2999):
        qf = k.full_q(a.q[i])
        for j, v in zip(k.joint_names, qf):
            d.qpos[m.joint(j).qposadr[0]] = v
        mujoco.mj_kinematics(m, d)
        T = hk.shadow_wrist_frame(m, d, 'right', k.frame)
        tips = hk.to_frame(np.array([d.site_xpos[m.site(s).id] for s in rm.fingertip_sites('right')]), T)
        assert np.allclose(tips, a.tips[i], atol=1e-12)


def test_left_dataset_is_mirror_of_right(kin):
    r = fd.make_dataset(kin['right'], 500, seed=3)
    left = fd.make_dataset(kin['left'], 500, seed=3)
    assert np.array_equal(r.q, left.q)
    assert np.allclose(left.x, r.x, atol=1e-12)               # left data come mirrored
    assert kin['left'].hand_hash() == kin['right'].hand_hash()
    assert np.allclose(kin['left'].probe(), kin['right'].probe(), atol=1e-12)


def test_torch_fk_equals_mujoco(kin):
    ds = fd.make_dataset(kin['right'], 400, seed=9)
    fk64 = fm.TorchHandFK(kin['right'], dtype=torch.float64)
    assert np.abs(fk64(torch.tensor(ds.q)).numpy() - ds.tips).max() < 1e-12
    fk32 = fm.TorchHandFK(kin['right'])
    q = torch.tensor(ds.q, dtype=torch.float32, requires_grad=True)
    out = fk32(q)
    assert np.abs(out.detach().numpy() - ds.tips).max() < 1e-6
    out.sum().backward()
    assert torch.isfinite(q.grad).all() and q.grad.abs().sum() > 0


# ------------------------------------------------------------------------------- network
def test_network_shape_and_limits(kin):
    k = kin['right']
    net = fm.FingerMLP(k.lo, k.hi)
    lin = [m for m in net.net if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lin] == [
        (15, 256), (256, 256), (256, 256), (256, 256), (256, 18)]
    assert sum(p.numel() for p in net.parameters()) < 250_000
    with torch.no_grad():
        q = net(100 * torch.randn(1000, 15))                  # any input: inside the limits
    assert torch.all(q >= net.lo) and torch.all(q <= net.hi)


def test_quick_training_reaches_bound(quick, kin, heldout):
    net, hist, seconds = quick
    ev = fm.evaluate(net, kin['right'], heldout['right'])
    print(f"quick training {seconds:.1f} s: held-out tip mean {ev['tip_mean_m'] * 1e3:.2f} mm, "
          f"p95 {ev['tip_p95_m'] * 1e3:.2f} mm")
    assert ev['tip_mean_m'] < QUICK_BOUND_M
    assert hist['epochs'][-1]['tip_rms_m'] < hist['epochs'][0]['tip_rms_m'] / 3


def test_left_hand_served_by_the_right_network(quick, kin, heldout):
    net = quick[0]
    rt = fm.FingerRetargeter(net, kin['right'])
    ev_r = fm.evaluate(net, kin['right'], heldout['right'])
    ev_l = fm.evaluate(net, kin['left'], heldout['left'])     # MuJoCo FK on the lh_ joints
    assert ev_l['tip_mean_m'] < QUICK_BOUND_M
    assert ev_l['tip_mean_m'] == pytest.approx(ev_r['tip_mean_m'], rel=0.15)
    # the same hand pose, seen as a left hand in its own frame, gives the same joint angles
    tips_r = heldout['right'].x[:50].reshape(50, 5, 3)
    q_r = rt.predict(tips_r, 'right')
    q_l = rt.predict(hk.mirror_wrist_coords(tips_r), 'left')
    assert np.array_equal(q_r, q_l)
    assert rt.joint_names('left') == rm.hand_actuated_joints('left')


def test_checkpoint_roundtrip_and_rejections(quick, kin, model, tmp_path):
    net = quick[0]
    p = fm.save_checkpoint(tmp_path / 'f.pt', net, kin['right'], {'note': 'quick'}, {'samples': 1})
    assert p.is_file() and not list(tmp_path.glob('.f.pt.*'))    # no temp file left behind
    rt = fm.FingerRetargeter.load(model, p)
    x = fd.make_dataset(kin['right'], 20, seed=1).x
    assert np.allclose(rt.predict(x.reshape(20, 5, 3), 'right'), fm.predict(net, x), atol=1e-7)
    ck = fm.read_checkpoint(p)
    assert ck['format_version'] == fm.FORMAT_VERSION and ck['hand_hash'] == kin['right'].hand_hash()
    assert ck['joint_names'] == list(rm.HAND_ACTUATED_JOINTS)

    bad = dict(ck, format_version=fm.FORMAT_VERSION + 1)
    torch.save(bad, tmp_path / 'v.pt')
    with pytest.raises(fm.CheckpointError, match='format version'):
        fm.FingerRetargeter.load(model, tmp_path / 'v.pt')
    bad = dict(ck, probe_tips_m=(np.asarray(ck['probe_tips_m']) + 1e-3).tolist())
    torch.save(bad, tmp_path / 'h.pt')
    with pytest.raises(fm.CheckpointError, match='another Shadow hand'):
        fm.FingerRetargeter.load(model, tmp_path / 'h.pt')
    bad = dict(ck, joint_names=list(reversed(ck['joint_names'])))
    torch.save(bad, tmp_path / 'j.pt')
    with pytest.raises(fm.CheckpointError, match='joint names'):
        fm.FingerRetargeter.load(model, tmp_path / 'j.pt')
    (tmp_path / 'x.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(fm.CheckpointError):
        fm.FingerRetargeter.load(model, tmp_path / 'x.pt')
    with pytest.raises(fm.CheckpointError, match='train_finger_mlp_cli'):
        fm.FingerRetargeter.load(model, tmp_path / 'missing.pt')


# ------------------------------------------------------------------------ shipped checkpoint
@pytest.fixture(scope='module')
def shipped(model):
    if not fm.DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f'no shipped checkpoint at {fm.DEFAULT_CHECKPOINT}')
    return fm.FingerRetargeter.load(model)                     # verifies version/joints/FK


def test_shipped_checkpoint_heldout_error(shipped, kin):
    assert fm.DEFAULT_CHECKPOINT.stat().st_size < 2_000_000
    ck = shipped.checkpoint
    reported = ck['metrics']['heldout_right']['tip_mean_m']
    assert reported < SHIPPED_BOUND_M
    for s, seed in (('right', 4242), ('left', 4343)):          # fresh held-out samples
        ds = fd.make_dataset(kin[s], 3000, seed=seed)
        ev = fm.evaluate(shipped.net, kin[s], ds)
        print(f"shipped, {s}: held-out tip mean {ev['tip_mean_m'] * 1e3:.2f} mm, "
              f"p95 {ev['tip_p95_m'] * 1e3:.2f} mm, max {ev['tip_max_m'] * 1e3:.1f} mm "
              f"(reported {reported * 1e3:.2f} mm)")
        assert ev['tip_mean_m'] < SHIPPED_BOUND_M
        assert ev['tip_mean_m'] < 1.2 * reported


def _human_hand(curl: float) -> np.ndarray:
    """A right human hand (21, 3) in its wrist frame; every finger bends by ``curl`` per joint."""
    bases = np.array([[0.026, 0.024, -0.014], [0.081, 0.025, -0.002], [0.086, 0.0, 0.0],
                      [0.080, -0.019, -0.002], [0.071, -0.037, -0.002]])
    lengths = np.array([[0.042, 0.032, 0.027], [0.040, 0.024, 0.021], [0.045, 0.028, 0.023],
                        [0.042, 0.027, 0.022], [0.033, 0.020, 0.019]])
    kp = np.zeros((21, 3))
    for f in range(5):
        a0 = 0.6 if f == 0 else 0.0
        p, a = bases[f].copy(), 0.0
        kp[1 + 4 * f] = p
        for k in range(3):
            a += curl * (0.5 if f == 0 else 1.0)
            d = np.array([np.cos(a0) * np.cos(a), np.sin(a0) * np.cos(a), -np.sin(a)])
            p = p + lengths[f, k] * d
            kp[2 + 4 * f + k] = p
    return kp


def test_shipped_checkpoint_on_human_keypoints(shipped):
    rng = np.random.default_rng(0)
    flex = [rm.HAND_ACTUATED_JOINTS.index(j) for j in ('FFJ2', 'FFJ1', 'MFJ2', 'MFJ1', 'RFJ2', 'RFJ1')]
    q = {}
    for curl in (0.0, 0.6):
        R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        R *= np.linalg.det(R)                                   # a rotation
        right = _human_hand(curl) @ R.T + rng.normal(size=3)
        left = right * np.array([-1.0, 1.0, 1.0])               # its mirror image: a left hand
        q[curl] = shipped.from_keypoints(right, 'right')
        assert q[curl].shape == (18,)
        assert np.all(q[curl] >= shipped.kin.lo - 1e-6) and np.all(q[curl] <= shipped.kin.hi + 1e-6)
        assert np.allclose(shipped.from_keypoints(left, hk.LEFT), q[curl], atol=1e-5)
        assert shipped.full_q(q[curl]).shape == (22,)
    assert q[0.6][flex].mean() > q[0.0][flex].mean() + 0.3     # a curled hand curls the robot's


def test_shipped_checkpoint_accepts_a_built_robot_folder(shipped, tmp_path):
    """Nodes load the model from a build folder (MJCF written with 6 significant digits)."""
    res = rm.build(tmp_path / 'robot')
    rt = fm.FingerRetargeter.load(rm.load_model(res.out_dir))
    assert rt.kin.hand_hash() == shipped.checkpoint['hand_hash']


def test_inference_time(shipped):
    t = fm.time_inference(shipped.net, repeats=200)
    print(f"inference: {t['single_frame_us']:.0f} us per frame, "
          f"{t['batch1000_us'] / 1000:.1f} us per frame in a batch of 1000")
    assert t['single_frame_us'] < 2000


# ------------------------------------------------------------------------------------ CLI
def test_cli_writes_loadable_checkpoint(tmp_path, model, capsys):
    out = tmp_path / 'cli' / 'finger.pt'
    rc = train_finger_mlp_cli.main(['--out', str(out), '--samples', '2000', '--epochs', '1',
                                    '--val-samples', '200', '--quiet', '--threads', '1'])
    assert rc == 0 and out.is_file()
    assert 'held-out fingertip error' in capsys.readouterr().out
    ck = fm.read_checkpoint(out)
    assert ck['train']['samples'] == 2000 and 'heldout_left' in ck['metrics']
    fm.FingerRetargeter.load(model, out)


def test_cli_missing_assets_exit_2(tmp_path, monkeypatch, capsys):
    def missing(*a, **k):
        raise rm.AssetsNotFoundError("package 'gymnasium-robotics' is not installed")
    monkeypatch.setattr(rm, 'build_model', missing)
    rc = train_finger_mlp_cli.main(['--out', str(tmp_path / 'f.pt'), '--quiet'])
    assert rc == 2 and 'gymnasium-robotics' in capsys.readouterr().err
    assert not (tmp_path / 'f.pt').exists()
