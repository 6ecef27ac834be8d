"""Finger retargeting network (paper 3.3): a 5-layer MLP per hand, fingertips -> joint angles.

Network (:class:`FingerMLP`): input 15 = the five fingertips (thumb, index, middle, ring, little)
x 3 in the hand's wrist frame divided by the hand length (``hand_keypoints``), standardised with
the training set's mean/std; five linear layers 15 -> 256 -> 256 -> 256 -> 256 -> 18 with SiLU
between them; output = the hand's 18 actuated Shadow joint angles
(``rm.HAND_ACTUATED_JOINTS``), squashed into the joint limits by lo + (hi - lo) * sigmoid(z)
(J1's upper limit is the coupling tendon's, 1.50 rad). 206k parameters, 0.8 MB.

One network serves both hands: the left Shadow hand is the exact mirror of the right with the
same joint angles, so a left hand's fingertips are mirrored into right-hand coordinates
(y -> -y in the wrist frame) and the predicted angles are used as they are, on the lh_ joints.

Loss: fingertip position error through a differentiable forward kinematics of the Shadow hand
(:class:`TorchHandFK`, the model's own kinematic tree in torch, equal to MuJoCo in float64:
tests/test_finger_mlp.py) plus a small joint-angle MSE. The fingertip term is what matters: the little finger
(4 DoF) and the thumb (5 DoF) are redundant for a 3D fingertip, so a pure joint MSE averages
distinct solutions and misses the fingertips; the joint term only picks, among the solutions,
the ones the data prefer. loss = mean |tip error / 1 cm|^2 + W_Q * mean (q error / 1 rad)^2.

Evaluation (:func:`evaluate`): MuJoCo forward kinematics of the predicted joints (J0 coupled as in
the data), fingertip position error in metres against the held-out FK samples.
"""
from __future__ import annotations

import dataclasses
import datetime
import io
import pathlib
import time

import numpy as np
import torch
from dexman_common.atomic_io import write_bytes_atomic
from dexman_common.config import ConfigBase
from dexman_common.report import summary_stats
from torch import nn

from . import finger_dataset as fd
from . import hand_keypoints as hk
from dexman_description import robot_model as rm

FORMAT = 'dexman_retarget.finger_mlp'
FORMAT_VERSION = 1
WIDTHS = (256, 256, 256, 256)
TIP_UNIT = 0.01         # m: the fingertip loss is in cm^2
W_Q = 0.1               # weight of the joint-angle MSE (rad^2)
DEFAULT_CHECKPOINT = pathlib.Path(__file__).resolve().parents[1] / 'models' / 'finger_mlp_v1.pt'
PROBE_TOL = 1e-5        # m: fingertip agreement required between checkpoint and model


class CheckpointError(RuntimeError):
    """A checkpoint that is unreadable, of another format/version, or made for another hand."""


# ------------------------------------------------------------------------------- torch FK
class TorchHandFK(nn.Module):
    """Differentiable fingertip FK of one Shadow hand, read from the MjModel's kinematic tree.

    forward(q_act (B, 18)) -> fingertips (B, 5, 3) in the hand's wrist frame, metres (right-hand
    coordinates when built for the right hand).
    """

    def __init__(self, kin: fd.ShadowHandKinematics, dtype=torch.float32):
        import mujoco
        super().__init__()
        m = kin.model
        pre = hk.hand_prefix(kin.side)
        palm = kin.palm_id
        bodies = [b for b in range(m.nbody) if b != palm and m.body(b).name.startswith(pre)]
        index = {palm: -1}
        parents, pos, rot, jidx, jaxis, jpos = [], [], [], [], [], []
        hand_joint = {m.joint(j).id: i for i, j in enumerate(kin.joint_names)}
        for k, b in enumerate(bodies):
            index[b] = k
            p = int(m.body_parentid[b])
            if p not in index:
                raise ValueError(f'body {m.body(b).name} precedes its parent')
            parents.append(index[p])
            pos.append(m.body_pos[b])
            R = np.empty(9)
            mujoco.mju_quat2Mat(R, m.body_quat[b])
            rot.append(R.reshape(3, 3))
            js = list(range(m.body_jntadr[b], m.body_jntadr[b] + m.body_jntnum[b]))
            if len(js) > 1:
                raise ValueError(f'body {m.body(b).name} has {len(js)} joints (one expected)')
            if js:
                jidx.append(hand_joint[js[0]])
                jaxis.append(m.jnt_axis[js[0]])
                jpos.append(m.jnt_pos[js[0]])
            else:
                jidx.append(-1)
                jaxis.append(np.zeros(3))
                jpos.append(np.zeros(3))
        self.parents = parents
        self.jidx = jidx
        self.site_body = [index[int(m.site_bodyid[s])] for s in kin.site_ids]
        t = lambda a: torch.tensor(np.asarray(a, dtype=float), dtype=dtype)  # noqa: E731
        self.register_buffer('pos', t(pos))
        self.register_buffer('rot', t(rot))
        self.register_buffer('jaxis', t(jaxis))
        self.register_buffer('jpos', t(jpos))
        self.jpos_nonzero = [bool(np.any(np.asarray(v) != 0)) for v in jpos]
        self.register_buffer('site_pos', t(m.site_pos[kin.site_ids]))
        Tpw = kin.frame.T_palm_wrist
        self.register_buffer('R_pw', t(Tpw[:3, :3]))
        self.register_buffer('o_pw', t(Tpw[:3, 3]))
        self.act_idx = [int(i) for i in kin.act_idx]
        self.n_joints = len(kin.joint_names)
        self.couplings = kin.couplings

    def full_q(self, q_act: torch.Tensor) -> torch.Tensor:
        cols = [None] * self.n_joints
        for k, i in enumerate(self.act_idx):
            cols[i] = q_act[..., k]
        for c in self.couplings:
            cols[c.j0] = torch.clamp(c.ratio * cols[c.j1] + c.offset, c.j0_lo, c.j0_hi)
        return torch.stack(cols, dim=-1)

    @staticmethod
    def _axis_rot(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
        """Rodrigues: (3,), (B,) -> (B, 3, 3)."""
        K = torch.zeros(3, 3, dtype=axis.dtype, device=axis.device)
        K[0, 1], K[0, 2], K[1, 0] = -axis[2], axis[1], axis[2]
        K[1, 2], K[2, 0], K[2, 1] = -axis[0], -axis[1], axis[0]
        s, c = torch.sin(angle)[:, None, None], torch.cos(angle)[:, None, None]
        eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
        return eye + s * K + (1 - c) * (K @ K)

    def forward(self, q_act: torch.Tensor) -> torch.Tensor:
        q = self.full_q(q_act)
        B = q.shape[0]
        eye = torch.eye(3, dtype=q.dtype, device=q.device).expand(B, 3, 3)
        zero = torch.zeros(B, 3, dtype=q.dtype, device=q.device)
        Rs, ps = [], []
        for k, par in enumerate(self.parents):
            Rp, pp = (eye, zero) if par < 0 else (Rs[par], ps[par])
            R = Rp @ self.rot[k]
            p = pp + Rp @ self.pos[k]
            if self.jidx[k] >= 0:
                J = self._axis_rot(self.jaxis[k], q[:, self.jidx[k]])
                if self.jpos_nonzero[k]:        # rotation about the joint's anchor
                    jp = self.jpos[k]
                    p = p + (R @ (jp - J @ jp).unsqueeze(-1)).squeeze(-1)
                R = R @ J
            Rs.append(R)
            ps.append(p)
        tips = torch.stack([ps[b] + Rs[b] @ self.site_pos[i]
                            for i, b in enumerate(self.site_body)], dim=1)   # palm frame
        return (tips - self.o_pw) @ self.R_pw                               # wrist frame


# ------------------------------------------------------------------------------- network
class FingerMLP(nn.Module):
    """15 -> 256 -> 256 -> 256 -> 256 -> 18, SiLU, sigmoid-squashed into [lo, hi]."""

    def __init__(self, lo, hi, x_mean=None, x_std=None, widths=WIDTHS, n_in=15):
        super().__init__()
        dims = (n_in, *widths, len(lo))
        layers = []
        for i in range(len(dims) - 1):
            layers.append(nn.Linear(dims[i], dims[i + 1]))
            if i < len(dims) - 2:
                layers.append(nn.SiLU())
        self.net = nn.Sequential(*layers)
        f = lambda a, d: torch.as_tensor(np.full(n_in, d) if a is None else a,  # noqa: E731
                                         dtype=torch.float32)
        self.register_buffer('x_mean', f(x_mean, 0.0))
        self.register_buffer('x_std', f(x_std, 1.0))
        self.register_buffer('lo', torch.as_tensor(np.asarray(lo), dtype=torch.float32))
        self.register_buffer('hi', torch.as_tensor(np.asarray(hi), dtype=torch.float32))
        self.widths = tuple(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.net((x - self.x_mean) / self.x_std)
        return self.lo + (self.hi - self.lo) * torch.sigmoid(z)


@dataclasses.dataclass(frozen=True)
class TrainConfig(ConfigBase):
    """Training of the finger network (``train_finger_mlp_cli``); values in config/retarget.yaml
    [finger_mlp]. The defaults made the shipped ``models/finger_mlp_v1.pt``."""

    SECTION = 'finger_mlp'
    YAML_FILE = 'retarget.yaml'

    epochs: int = 30
    batch: int = 512
    lr: float = 3e-3        # initial Adam learning rate (cosine decay to lr_min)
    lr_min: float = 2e-5
    w_q: float = W_Q
    w_tip: float = 1.0      # 0: joint MSE only (the baseline the fingertip loss is compared with)
    weight_decay: float = 0.0
    seed: int = 0           # data and initialisation
    samples: int = 100_000  # training FK samples (right hand)
    val_samples: int = 20_000   # held-out FK samples per hand
    grasp_share: float = 0.5    # share of samples near natural grasps, the rest uniform
    grasp_noise: float = fd.GRASP_NOISE   # rad, per-joint Gaussian noise around the grasp anchors

    def __post_init__(self):
        if self.epochs < 1 or self.batch < 1 or not self.lr > 0 or self.lr_min < 0:
            raise ValueError('need epochs >= 1, batch >= 1, lr > 0, lr_min >= 0')
        if self.samples < 1000 or self.val_samples < 100:
            raise ValueError(f'need samples >= 1000 and val_samples >= 100, got {self.samples}, {self.val_samples}')
        if not 0.0 <= self.grasp_share <= 1.0:
            raise ValueError(f'grasp_share must be in [0, 1], got {self.grasp_share}')
        if self.grasp_noise < 0:
            raise ValueError(f'grasp_noise must be >= 0, got {self.grasp_noise}')


def _batches(n, batch, gen):
    perm = torch.randperm(n, generator=gen)
    for i in range(0, n, batch):
        yield perm[i:i + batch]


def train(kin: fd.ShadowHandKinematics, train_ds: fd.FingerDataset, cfg: TrainConfig = TrainConfig(),
          progress=None, val_ds: fd.FingerDataset | None = None) -> tuple[FingerMLP, dict]:
    """Train a :class:`FingerMLP` on ``train_ds`` (right-hand coordinates). Adam, cosine learning
    rate, loss = tip MSE (cm^2, differentiable FK) + w_q * joint MSE (rad^2). ``progress``: a
    callable(epoch, n_epochs, stats) or None. Returns (network in eval mode, history)."""
    if kin.side != 'right':
        raise ValueError('train on the right hand (left data are its mirror image)')
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.as_tensor(train_ds.x, dtype=torch.float32)
    q = torch.as_tensor(train_ds.q, dtype=torch.float32)
    tips = torch.as_tensor(train_ds.tips, dtype=torch.float32)
    net = FingerMLP(kin.lo, kin.hi, x.mean(0).numpy(), x.std(0).clamp_min(1e-6).numpy())
    fk = TorchHandFK(kin)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * ((len(x) + cfg.batch - 1) // cfg.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=cfg.lr_min)
    hist = []
    t0 = time.monotonic()
    for ep in range(cfg.epochs):
        net.train()
        s_tip = s_q = 0.0
        for idx in _batches(len(x), cfg.batch, gen):
            qp = net(x[idx])
            l_q = ((qp - q[idx]) ** 2).mean()
            if cfg.w_tip > 0:
                l_tip = (((fk(qp) - tips[idx]) / TIP_UNIT) ** 2).sum(-1).mean()
                loss = cfg.w_tip * l_tip + cfg.w_q * l_q
            else:
                l_tip, loss = torch.zeros(()), l_q
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            s_tip += l_tip.item() * len(idx)
            s_q += l_q.item() * len(idx)
        st = {'epoch': ep + 1, 'tip_rms_m': (s_tip / len(x)) ** 0.5 * TIP_UNIT,
              'q_rms_rad': (s_q / len(x)) ** 0.5, 'seconds': time.monotonic() - t0}
        if val_ds is not None and (ep + 1 == cfg.epochs or (ep + 1) % 10 == 0):
            net.eval()
            st['val_tip_mean_m'] = evaluate(net, kin, val_ds)['tip_mean_m']
        hist.append(st)
        if progress is not None:
            progress(ep + 1, cfg.epochs, st)
    net.eval()
    return net, {'epochs': hist, 'train_seconds': time.monotonic() - t0}


def predict(net: FingerMLP, x) -> np.ndarray:
    """Network input (..., 15) or (..., 5, 3) in right-hand coordinates -> (..., 18) joints."""
    x = np.asarray(x, dtype=np.float32)
    shape = x.shape[:-2] if x.shape[-2:] == (5, 3) else x.shape[:-1]
    with torch.no_grad():
        out = net(torch.from_numpy(np.ascontiguousarray(x.reshape(-1, 15))))
    return out.numpy().astype(float).reshape(shape + (out.shape[-1],))


def time_inference(net: FingerMLP, repeats: int = 300) -> dict:
    """Wall time of one forward pass: a single frame (batch 1) and a batch of 1000 frames."""
    out = {'torch_threads': torch.get_num_threads()}
    for name, b in (('single_frame_us', 1), ('batch1000_us', 1000)):
        x = torch.zeros(b, 15)
        with torch.no_grad():
            for _ in range(10):
                net(x)
            n = repeats if b == 1 else max(repeats // 30, 5)
            t = time.perf_counter()
            for _ in range(n):
                net(x)
        out[name] = (time.perf_counter() - t) / n * 1e6
    return out


def evaluate(net: FingerMLP, kin: fd.ShadowHandKinematics, ds: fd.FingerDataset) -> dict:
    """Fingertip position error (metres) of the network on ``ds``, by MuJoCo FK of the predicted
    joints on ``kin``'s hand (a left ``kin`` is fed mirrored inputs: ``ds`` is in right-hand
    coordinates either way)."""
    qp = predict(net, ds.x)
    tips = kin.fingertips(qp)
    if kin.side == 'left':
        tips = hk.mirror_wrist_coords(tips)
    e = np.linalg.norm(tips - ds.tips, axis=-1)               # (N, 5)
    per_sample = e.mean(-1)
    return {
        'n': int(len(ds)), 'side': kin.side,
        **summary_stats(e, prefix='tip_', suffix='_m', n_key=None),
        'tip_mean_per_finger_m': {f: float(v) for f, v in zip(hk.FINGERS, e.mean(0))},
        'sample_mean_p95_m': float(np.percentile(per_sample, 95)),
        'joint_mae_rad': float(np.abs(qp - ds.q).mean()),
    }


# ------------------------------------------------------------------------------- checkpoint
def _versions() -> dict:
    import mujoco
    return {'torch': str(torch.__version__), 'mujoco': str(mujoco.__version__), 'numpy': str(np.__version__)}


def save_checkpoint(path, net: FingerMLP, kin: fd.ShadowHandKinematics, metrics: dict,
                    train_info: dict) -> pathlib.Path:
    """Write a versioned checkpoint atomically (temporary file in the same folder + os.replace)."""
    if kin.side != 'right':
        raise ValueError('checkpoints are made with the right hand kinematics')
    path = pathlib.Path(path).expanduser().resolve()
    ck = {
        'format': FORMAT, 'format_version': FORMAT_VERSION,
        'created_utc': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'arch': {'n_in': 15, 'widths': list(net.widths), 'n_out': int(net.lo.numel()),
                 'activation': 'silu', 'squash': 'lo + (hi - lo) * sigmoid'},
        'state_dict': {k: v.detach().clone() for k, v in net.state_dict().items()},
        'joint_names': list(rm.HAND_ACTUATED_JOINTS),
        'fingertip_sites': list(rm.FINGERTIP_SITES),
        'input': 'fingertips (thumb, index, middle, ring, little) in the Hand3D wrist frame / hand '
                 'length, right-hand coordinates (left: y -> -y)',
        'joint_lo': kin.lo.tolist(), 'joint_hi': kin.hi.tolist(),
        'hand_scale_m': float(kin.scale),
        'T_palm_wrist': kin.frame.T_palm_wrist.tolist(),
        'hand_hash': kin.hand_hash(),
        'probe_q': kin.probe_configs().tolist(), 'probe_tips_m': kin.probe().tolist(),
        'metrics': metrics, 'train': train_info, 'versions': _versions(),
    }
    buf = io.BytesIO()
    torch.save(ck, buf)
    write_bytes_atomic(path, buf.getvalue())
    return path


def read_checkpoint(path) -> dict:
    """The checkpoint dict (weights-only unpickling), with its format and version checked."""
    try:
        ck = torch.load(str(path), map_location='cpu', weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the same error to the caller
        raise CheckpointError(f'cannot read finger-MLP checkpoint {path}: {e}') from e
    if not isinstance(ck, dict) or ck.get('format') != FORMAT:
        raise CheckpointError(f'{path} is not a finger-MLP checkpoint')
    if ck.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f'{path}: format version {ck.get("format_version")}, this code reads '
                              f'{FORMAT_VERSION}: retrain with train_finger_mlp_cli')
    return ck


class FingerRetargeter:
    """A trained finger network bound to a robot model: human (or Shadow) fingertips -> joints.

    >>> rt = FingerRetargeter.load(model)                       # the shipped checkpoint
    >>> q = rt.from_keypoints(kp21, 'left')                     # (18,) for rm.hand_actuated_joints('left')
    """

    def __init__(self, net: FingerMLP, kin: fd.ShadowHandKinematics, checkpoint: dict | None = None):
        self.net = net.eval()
        self.kin = kin
        self.checkpoint = checkpoint or {}

    @classmethod
    def load(cls, model, path=None, verify: bool = True) -> 'FingerRetargeter':
        """Load ``path`` (default: the packaged ``models/finger_mlp_v1.pt``) and check it against
        ``model``'s right hand: joint names, limits and fingertip FK at the probe configurations
        (to PROBE_TOL). A mismatch raises :class:`CheckpointError`."""
        path = DEFAULT_CHECKPOINT if path is None else pathlib.Path(path)
        if not path.is_file():
            raise CheckpointError(f'no finger-MLP checkpoint at {path}: build one with '
                                  '`python -m dexman_retarget.train_finger_mlp_cli --out PATH`')
        ck = read_checkpoint(path)
        kin = fd.ShadowHandKinematics(model, 'right')
        if verify:
            if ck['joint_names'] != list(rm.HAND_ACTUATED_JOINTS):
                raise CheckpointError(f'{path}: joint names {ck["joint_names"]} differ from the model')
            if not (np.allclose(ck['joint_lo'], kin.lo, atol=1e-5)
                    and np.allclose(ck['joint_hi'], kin.hi, atol=1e-5)):
                raise CheckpointError(f'{path}: joint limits differ from the model')
            probe = kin.fingertips(np.asarray(ck['probe_q']))
            err = float(np.abs(probe - np.asarray(ck['probe_tips_m'])).max())
            if err > PROBE_TOL:
                raise CheckpointError(
                    f'{path}: made for another Shadow hand (fingertip FK differs by {err:.2e} m; '
                    f'hand hash {ck["hand_hash"][:12]} vs this model {kin.hand_hash()[:12]})')
        a = ck['arch']
        net = FingerMLP(ck['joint_lo'], ck['joint_hi'], widths=a['widths'], n_in=a['n_in'])
        net.load_state_dict(ck['state_dict'])
        return cls(net, kin, ck)

    def joint_names(self, side) -> list[str]:
        return rm.hand_actuated_joints(hk.side_name(side))

    def predict(self, tips_norm, side) -> np.ndarray:
        """Normalised fingertips (..., 5, 3) in the hand's OWN wrist frame (a left hand not yet
        mirrored) -> actuated joint angles (..., 18) of that side's hand."""
        t = np.asarray(tips_norm, dtype=float)
        if hk.side_name(side) == 'left':
            t = hk.mirror_wrist_coords(t)
        return predict(self.net, t)

    def from_keypoints(self, kp, side, scale=None) -> np.ndarray:
        """Human keypoints (..., 21, 3) -> actuated joint angles (..., 18), see
        ``hand_keypoints.normalized_fingertips`` for ``scale``."""
        return predict(self.net, hk.normalized_fingertips(kp, side, scale, mirror_to_right=True))

    def full_q(self, q_act) -> np.ndarray:
        """(..., 18) -> (..., 22) with the coupled J0 joints (rm.hand_joints order)."""
        return self.kin.full_q(q_act)
