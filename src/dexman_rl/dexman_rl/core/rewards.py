"""DexMan rewards (paper section 3.4, Table 7), vectorised numpy over N environments. ROS-free.

R(t) = R_contact(t) + R_obj(t) + R_imit(t), each term (N,) float64 (the env casts to float32).

Conventions (all positions in the simulator world frame, metres; angles in radians):

- N envs, O objects, H = 2 hands (index 0 LEFT, 1 RIGHT), K = 9 contact keypoints per hand in
  the order of ``dexman_retarget.core.contact_priors.CONTACT_KEYPOINTS``: 5 fingertips (thumb,
  index, middle, ring, little) then 4 MCP "palm" keypoints (index, middle, ring, little).
- Quaternions are (w, x, y, z), any norm > 0 (normalised here), sign-invariant (q ~ -q).
- ``lifted[n, o]`` = object o of env n is higher than its resting height by more than
  ``RewardConfig.lift_threshold`` (0.02 m; the paper leaves "lifted" undefined).

Contact (eq. 1): R_contact = 1/|O| Σ_{(j,o)∈P(t)} w_c^j (1 + γ_c <n_j, d̂_j^o>) exp(-λ_c ||p_j - v_j^o||²)
(w_c1 + w_c2 lifted_o), summed over both hands' keypoints; d̂ = (v - p)/||v - p|| (0 when
||v - p|| < 1e-9, so a keypoint exactly on its vertex gets the unit direction factor 1).
v_j^o is the prior's object-frame vertex mapped by the CURRENT simulated object pose (the
reward is object-centric, section 3.4). Max per (j,o) pair: w_c^j * 2 * (w_c1 + w_c2).

Object following (eq. 2): R_obj = 1/|O| Σ_o (w_pos e^{-λ_pos Δpos} + w_rot e^{-λ_rot Δrot}) (w_o1 + w_o2 lifted_o),
Δpos = ||p_o - p̄_o|| (unsquared, m), Δrot = rotation angle between q_o and q̄_o in [0, π].
Max: (w_pos + w_rot)(w_o1 + w_o2) = 6 * 4.1 = 24.6.

Imitation (section 3.4 text): per hand h,
R_imit^h = w_pos e^{-λ_pos Δpos^h} + w_rot e^{-λ_rot Δrot^h} + w_jnt Σ_f e^{-λ_jnt |θ_f - θ̄_f|},
with the paper's typo corrected (its rot term uses Δpos; we use the wrist rotation angle Δrot).
Decisions where the paper is silent or loose:
  * Σ over finger joints is a SUM (as written, "Σ_jnt"), not a mean: with the 22 Shadow-hand
    finger joints the maximum per hand is 0.5 + 0.5 + 0.5 * 22 = 12.0 (the joint term dominates).
  * Hands SUM: R_imit = Σ_h active_h R_imit^h; a hand without a reference target that frame
    (``hand_active`` False) contributes 0. Max with both hands active and F = 22: 24.0.
  * Δpos is the unsquared wrist distance (m), Δrot the wrist rotation angle (rad), Δjnt the
    absolute joint-angle difference (rad).

Quaternion angle: ``dexman_common.geometry.quat_angle`` (vectorised, any norm > 0,
sign-invariant, in [0, π]), imported here as ``_quat_angle`` (``success.py`` uses it as well).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from dexman_common.config import ConfigBase
from dexman_common.geometry import quat_angle as _quat_angle

N_TIP_KEYPOINTS = 5    # thumb, index, middle, ring, little fingertips come first
N_PALM_KEYPOINTS = 4   # then index, middle, ring, little MCP keypoints
N_CONTACT_KEYPOINTS = N_TIP_KEYPOINTS + N_PALM_KEYPOINTS
_EPS_DIR = 1e-9        # below this keypoint-vertex distance (m) the direction d̂ is 0


@dataclasses.dataclass(frozen=True)
class RewardConfig(ConfigBase):
    """Weights and rates of the three reward terms (paper Table 7) and the ablation switches."""

    SECTION = 'reward'
    YAML_FILE = 'rl.yaml'

    use_contact: bool = True            # False: R_contact = 0 (ablation "w/o contact")
    use_object: bool = True             # False: R_obj = 0 (ablation "w/o task")
    use_imitation: bool = True          # False: R_imit = 0
    lift_threshold: float = 0.02        # m above resting height for 1_lifted (our choice)
    # contact reward (eq. 1)
    contact_gamma: float = 1.0          # γ_c^j (all keypoints)
    contact_weight_tip: float = 0.5     # w_c^j, fingertips
    contact_weight_palm: float = 2.0    # w_c^j, MCP (palm) keypoints
    contact_lambda: float = 400.0       # λ_c, 1/m²
    contact_w1: float = 1.0             # w_c1
    contact_w2: float = 1.0             # w_c2 (lifted bonus)
    # object-following reward (eq. 2)
    object_w_pos: float = 5.0
    object_w_rot: float = 1.0
    object_lambda_pos: float = 80.0     # 1/m
    object_lambda_rot: float = 3.0      # 1/rad
    object_w1: float = 0.1              # w_o1
    object_w2: float = 4.0              # w_o2 (lifted bonus)
    # imitation reward
    imit_w_pos: float = 0.5
    imit_w_rot: float = 0.5
    imit_w_jnt: float = 0.5
    imit_lambda_pos: float = 2.0        # 1/m
    imit_lambda_rot: float = 20.0       # 1/rad
    imit_lambda_jnt: float = 20.0       # 1/rad

    def __post_init__(self):
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not (np.isfinite(v) and v >= 0.0):
                raise ValueError(f'{f.name} must be finite and >= 0, got {v}')

    def keypoint_weights(self) -> np.ndarray:
        """w_c^j for the K = 9 contact keypoints: (9,) = 5 x tip weight then 4 x palm weight."""
        return np.array([self.contact_weight_tip] * N_TIP_KEYPOINTS
                        + [self.contact_weight_palm] * N_PALM_KEYPOINTS, dtype=float)


def lifted(obj_z: np.ndarray, rest_z: np.ndarray, cfg: RewardConfig) -> np.ndarray:
    """(N, O) bool: object height obj_z (N, O) exceeds its resting height rest_z ((N, O) or (O,))
    by strictly more than ``cfg.lift_threshold`` (m)."""
    obj_z = np.asarray(obj_z, dtype=float)
    return (obj_z - np.broadcast_to(np.asarray(rest_z, dtype=float), obj_z.shape)) > cfg.lift_threshold


def contact_reward(kp_pos: np.ndarray, kp_normal: np.ndarray, prior_mask: np.ndarray,
                   target_vertex: np.ndarray, lifted: np.ndarray, cfg: RewardConfig) -> np.ndarray:
    """R_contact (N,) (eq. 1).

    kp_pos (N, H, K, 3): robot contact keypoints (world, m); kp_normal (N, H, K, 3): their unit
    outward surface normals; prior_mask (N, H, K, O) bool: (j, o) ∈ P(t); target_vertex
    (N, H, K, O, 3): the prior's object vertex in the world under the current object pose
    (entries where prior_mask is False are ignored, may be NaN); lifted (N, O) bool.
    """
    kp_pos = np.asarray(kp_pos, dtype=float)
    mask = np.asarray(prior_mask, dtype=bool)
    N, H, K, O = mask.shape
    if K != N_CONTACT_KEYPOINTS:
        raise ValueError(f'expected K = {N_CONTACT_KEYPOINTS} contact keypoints, got {K}')
    d = np.asarray(target_vertex, dtype=float) - kp_pos[:, :, :, None, :]          # (N,H,K,O,3)
    d = np.where(mask[..., None], d, 0.0)
    dist = np.linalg.norm(d, axis=-1)                                                # (N,H,K,O)
    dhat = d / np.maximum(dist, _EPS_DIR)[..., None] * (dist >= _EPS_DIR)[..., None]
    cos = np.einsum('nhkc,nhkoc->nhko', np.asarray(kp_normal, dtype=float), dhat)
    w_j = cfg.keypoint_weights()[None, None, :, None]
    lift_w = cfg.contact_w1 + cfg.contact_w2 * np.asarray(lifted, dtype=float)[:, None, None, :]
    term = w_j * (1.0 + cfg.contact_gamma * cos) * np.exp(-cfg.contact_lambda * dist ** 2) * lift_w
    return np.where(mask, term, 0.0).sum(axis=(1, 2, 3)) / O


def object_reward(obj_pos: np.ndarray, obj_quat: np.ndarray, target_pos: np.ndarray,
                  target_quat: np.ndarray, lifted: np.ndarray, cfg: RewardConfig) -> np.ndarray:
    """R_obj (N,) (eq. 2). obj_pos / target_pos (N, O, 3) world m; obj_quat / target_quat (N, O, 4)
    wxyz; lifted (N, O) bool. The target is the reference object pose at the current frame."""
    dpos = np.linalg.norm(np.asarray(obj_pos, dtype=float) - np.asarray(target_pos, dtype=float), axis=-1)
    drot = _quat_angle(obj_quat, target_quat)
    track = cfg.object_w_pos * np.exp(-cfg.object_lambda_pos * dpos) \
        + cfg.object_w_rot * np.exp(-cfg.object_lambda_rot * drot)
    lift_w = cfg.object_w1 + cfg.object_w2 * np.asarray(lifted, dtype=float)
    return (track * lift_w).mean(axis=-1)


def imitation_reward(wrist_pos: np.ndarray, wrist_quat: np.ndarray, ref_wrist_pos: np.ndarray,
                     ref_wrist_quat: np.ndarray, finger_q: np.ndarray, ref_finger_q: np.ndarray,
                     hand_active: np.ndarray | None, cfg: RewardConfig) -> np.ndarray:
    """R_imit (N,), summed over hands (see module docstring).

    wrist_pos / ref_wrist_pos (N, H, 3) world m; wrist_quat / ref_wrist_quat (N, H, 4) wxyz;
    finger_q / ref_finger_q (N, H, F) rad; hand_active (N, H) bool (None: all hands active).
    Inactive hands contribute 0 and their reference values are ignored (may be NaN).
    """
    wrist_pos = np.asarray(wrist_pos, dtype=float)
    active = (np.ones(wrist_pos.shape[:2], dtype=bool) if hand_active is None
              else np.asarray(hand_active, dtype=bool))
    ref_pos = np.where(active[..., None], ref_wrist_pos, wrist_pos)
    ref_quat = np.where(active[..., None], ref_wrist_quat, wrist_quat)
    ref_q = np.where(active[..., None], ref_finger_q, finger_q)
    dpos = np.linalg.norm(wrist_pos - ref_pos, axis=-1)                             # (N,H)
    drot = _quat_angle(wrist_quat, ref_quat)                                         # (N,H)
    djnt = np.abs(np.asarray(finger_q, dtype=float) - ref_q)                         # (N,H,F)
    per_hand = cfg.imit_w_pos * np.exp(-cfg.imit_lambda_pos * dpos) \
        + cfg.imit_w_rot * np.exp(-cfg.imit_lambda_rot * drot) \
        + cfg.imit_w_jnt * np.exp(-cfg.imit_lambda_jnt * djnt).sum(axis=-1)
    return np.where(active, per_hand, 0.0).sum(axis=-1)


def reward_terms(cfg: RewardConfig, *, obj_pos: np.ndarray, rest_z: np.ndarray,
                 obj_quat: np.ndarray | None = None, target_pos: np.ndarray | None = None,
                 target_quat: np.ndarray | None = None,
                 kp_pos: np.ndarray | None = None, kp_normal: np.ndarray | None = None,
                 prior_mask: np.ndarray | None = None, target_vertex: np.ndarray | None = None,
                 wrist_pos: np.ndarray | None = None, wrist_quat: np.ndarray | None = None,
                 ref_wrist_pos: np.ndarray | None = None, ref_wrist_quat: np.ndarray | None = None,
                 finger_q: np.ndarray | None = None, ref_finger_q: np.ndarray | None = None,
                 hand_active: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """{'contact', 'object', 'imitation', 'total'}: (N,) float64 each; total = sum of the enabled terms.

    ``lifted`` is computed from obj_pos[..., 2] (world z up) and rest_z. A term disabled by its
    ``use_*`` flag is 0 and its inputs may be left None; shapes as in the per-term functions.
    """
    obj_pos = np.asarray(obj_pos, dtype=float)
    n = obj_pos.shape[0]
    lift = lifted(obj_pos[..., 2], rest_z, cfg)
    zero = np.zeros(n)
    out = {
        'contact': contact_reward(kp_pos, kp_normal, prior_mask, target_vertex, lift, cfg)
        if cfg.use_contact else zero.copy(),
        'object': object_reward(obj_pos, obj_quat, target_pos, target_quat, lift, cfg)
        if cfg.use_object else zero.copy(),
        'imitation': imitation_reward(wrist_pos, wrist_quat, ref_wrist_pos, ref_wrist_quat,
                                      finger_q, ref_finger_q, hand_active, cfg)
        if cfg.use_imitation else zero.copy(),
    }
    out['total'] = out['contact'] + out['object'] + out['imitation']
    return out
