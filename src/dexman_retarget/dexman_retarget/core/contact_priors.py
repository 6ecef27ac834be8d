"""Contact priors from a human demonstration (DexMan paper, section 3.4 and appendix B.5).

For every contact keypoint j in J, frame t and object o the paper takes the nearest mesh vertex

    v_{j,t}^o = argmin_{v in V_o} || p_{j,t}^hum - v ||_2

and keeps the keypoint-object pair when it is close enough:

    P(t) = { (j, o) | j in J, o in O, || p_{j,t}^hum - v_{j,t}^o ||_2 <= tau_j }

with tau_j = 0.03 m for the five fingertips and tau_j = 0.05 m for the four palm (MCP) keypoints of
the index, middle, ring and little fingers. The contact reward (paper eq. R_contact) later pulls the
robot's keypoint j toward v_{j,t}^o, so the vertex is stored in the OBJECT frame (it moves with the
object) together with its index.

Keypoints: 21 per hand in MANO/OpenPose order (0 wrist; 1-4 thumb CMC, MCP, IP, tip; 5-8 index
MCP, PIP, DIP, tip; 9-12 middle; 13-16 ring; 17-20 little). J = tips (4, 8, 12, 16, 20) followed by
MCPs (5, 9, 13, 17); every per-keypoint array below is indexed by the position k in `CONTACT_KEYPOINTS`
(k = 0..8), never by the MANO index, unless a name says otherwise.

Frames and units: metres; `world` is z up (REP 103). Object poses are T_world_object, 4x4
homogeneous matrices mapping points in the object frame to `world`. Hands: index 0 = LEFT,
1 = RIGHT (dexman_msgs/Hand3D constants).

Where the paper is silent (our calls, all documented on the functions):
- "Nearest mesh vertex" is taken literally (raw vertices, the paper's default). On coarse meshes (a
  box with 8 corners) that is far from the nearest surface point, so `densify_max_edge` optionally
  subdivides faces until no edge is longer than the given length before building the vertex set.
  The vertex indices then refer to the densified vertex set, which the result carries.
- A hand that is absent (presence mask False) or whose keypoints are not finite, and an object
  whose pose at t is not finite, give no contact; their distances are +inf and indices -1.
- Ties between equally near vertices are broken by scipy's cKDTree (deterministic).

ROS-free: never imports rclpy.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from dexman_common.config import ConfigBase

LEFT, RIGHT = 0, 1
TIP_KEYPOINTS: tuple[int, ...] = (4, 8, 12, 16, 20)     # thumb, index, middle, ring, little tips
MCP_KEYPOINTS: tuple[int, ...] = (5, 9, 13, 17)         # index, middle, ring, little MCP (palm)
CONTACT_KEYPOINTS: tuple[int, ...] = TIP_KEYPOINTS + MCP_KEYPOINTS   # J, in this order
TAU_TIP = 0.03    # m, paper B.5
TAU_PALM = 0.05   # m, paper B.5
N_HAND_KEYPOINTS = 21


@dataclasses.dataclass(frozen=True)
class ContactConfig(ConfigBase):
    """Tunables of the contact priors; values in config/retarget.yaml [contact_priors]."""

    SECTION = 'contact_priors'
    YAML_FILE = 'retarget.yaml'

    tau_tip: float = TAU_TIP                  # m, fingertip threshold (paper B.5)
    tau_palm: float = TAU_PALM                # m, MCP (palm) threshold (paper B.5)
    densify_max_edge: float | None = None     # m; None: raw mesh vertices (the paper)

    def __post_init__(self):
        if not (self.tau_tip > 0 and self.tau_palm > 0):
            raise ValueError(f'tau_tip and tau_palm must be > 0, got {self.tau_tip}, {self.tau_palm}')
        if self.densify_max_edge is not None and not self.densify_max_edge > 0:
            raise ValueError(f'densify_max_edge must be > 0 or null, got {self.densify_max_edge}')


def keypoint_thresholds(tau_tip: float = TAU_TIP, tau_palm: float = TAU_PALM) -> np.ndarray:
    """tau_j (m) for j in CONTACT_KEYPOINTS: (9,) = 5 x tau_tip then 4 x tau_palm."""
    return np.array([tau_tip] * len(TIP_KEYPOINTS) + [tau_palm] * len(MCP_KEYPOINTS), dtype=float)


@dataclasses.dataclass(frozen=True)
class ContactPair:
    """One element of P(t): keypoint `keypoint` (MANO index) of hand `hand` near object `obj`."""
    hand: int                 # 0 = LEFT, 1 = RIGHT
    t: int                    # frame index
    keypoint: int             # MANO/OpenPose index (4, 8, ..., 5, 9, ...)
    obj: int                  # object index o
    vertex_index: int         # into ContactPriors.object_vertices[obj]
    vertex_object: np.ndarray  # (3,) v in the object frame, m
    distance: float           # || p_hum - v ||, m


@dataclasses.dataclass(frozen=True)
class ContactMetrics:
    """Precision / recall of predicted contact tuples (hand, t, keypoint, obj) against a reference."""
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 1.0 when nothing was predicted (no false positive is possible)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / (tp + fn); 1.0 when the reference is empty."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclasses.dataclass
class ContactPriors:
    """Contact priors of one demonstration. Shapes: H = 2 hands, T frames, K = 9 keypoints (J),
    O objects. Index [h, t, k, o]; k indexes `keypoints` (MANO indices)."""
    keypoints: tuple[int, ...]      # (K,) MANO indices of J
    thresholds: np.ndarray          # (K,) tau_j, m
    in_contact: np.ndarray          # (H, T, K, O) bool: (j, o) in P(t) for hand h
    vertex_index: np.ndarray        # (H, T, K, O) int64, nearest vertex of object o; -1 if undefined
    vertex_object: np.ndarray       # (H, T, K, O, 3) nearest vertex, object frame, m; NaN if undefined
    distance: np.ndarray            # (H, T, K, O) || p_hum - v ||, m; +inf if undefined
    hand_present: np.ndarray        # (H, T) bool, as given
    object_vertices: list[np.ndarray]   # per object (V_o, 3), object frame: the vertex set searched
    object_ids: list[str] | None = None

    @property
    def n_frames(self) -> int:
        return self.in_contact.shape[1]

    @property
    def n_objects(self) -> int:
        return self.in_contact.shape[3]

    def pairs(self, t: int, hand: int | None = None) -> list[ContactPair]:
        """P(t) as a list (both hands unless `hand` is given), ordered by hand, keypoint, object."""
        hands = range(self.in_contact.shape[0]) if hand is None else (hand,)
        out = []
        for h in hands:
            for k, o in zip(*np.nonzero(self.in_contact[h, t])):
                out.append(ContactPair(
                    hand=int(h), t=int(t), keypoint=int(self.keypoints[k]), obj=int(o),
                    vertex_index=int(self.vertex_index[h, t, k, o]),
                    vertex_object=self.vertex_object[h, t, k, o].copy(),
                    distance=float(self.distance[h, t, k, o])))
        return out

    def pairs_per_frame(self, hand: int | None = None) -> list[list[ContactPair]]:
        """[P(0), P(1), ...]."""
        return [self.pairs(t, hand) for t in range(self.n_frames)]

    def contact_set(self) -> set[tuple[int, int, int, int]]:
        """All contacts as tuples (hand, t, keypoint MANO index, obj)."""
        h, t, k, o = np.nonzero(self.in_contact)
        return {(int(a), int(b), int(self.keypoints[c]), int(d)) for a, b, c, d in zip(h, t, k, o)}

    def vertex_world(self, object_poses: np.ndarray) -> np.ndarray:
        """Nearest vertices in `world` for the given object poses (O, T, 4, 4) T_world_object
        (e.g. the reference trajectory): (H, T, K, O, 3), NaN where undefined."""
        P = np.asarray(object_poses, dtype=float)
        R = P[:, :, :3, :3]            # (O, T, 3, 3)
        p = P[:, :, :3, 3]             # (O, T, 3)
        # v_w[h,t,k,o] = R[o,t] @ v[h,t,k,o] + p[o,t]
        return np.einsum('otij,htkoj->htkoi', R, self.vertex_object) + p.transpose(1, 0, 2)[None, :, None]

    def evaluate(self, reference: Any) -> ContactMetrics:
        """Precision/recall of `in_contact` against a reference contact set.

        `reference` is either a bool array shaped like `in_contact` (H, T, K, O), or an iterable of
        tuples (hand, t, keypoint, obj) with keypoint a MANO index (tuples whose keypoint is not in
        J count as false negatives: the priors can never predict them)."""
        if isinstance(reference, np.ndarray):
            ref = np.asarray(reference, dtype=bool)
            if ref.shape != self.in_contact.shape:
                raise ValueError(f'reference shape {ref.shape} != {self.in_contact.shape}')
            tp = int(np.sum(ref & self.in_contact))
            return ContactMetrics(tp=tp, fp=int(np.sum(self.in_contact)) - tp, fn=int(np.sum(ref)) - tp)
        ref_set = {tuple(int(x) for x in r) for r in reference}
        pred = self.contact_set()
        tp = len(pred & ref_set)
        return ContactMetrics(tp=tp, fp=len(pred) - tp, fn=len(ref_set) - tp)


def evaluate_contacts(predicted: Iterable[Sequence[int]],
                      reference: Iterable[Sequence[int]]) -> ContactMetrics:
    """Precision/recall between two sets of contact tuples (any hashable layout, e.g. (h, t, j, o))."""
    p = {tuple(int(x) for x in a) for a in predicted}
    r = {tuple(int(x) for x in a) for a in reference}
    tp = len(p & r)
    return ContactMetrics(tp=tp, fp=len(p) - tp, fn=len(r) - tp)


def mesh_vertex_set(mesh: Any, densify_max_edge: float | None = None) -> np.ndarray:
    """The vertex set V_o (object frame, m) searched for nearest vertices.

    `mesh`: a trimesh.Trimesh, a (vertices, faces) pair, or a (V, 3) vertex array (no faces).
    `densify_max_edge` (m): None (default, the paper: raw vertices) or subdivide every face until no
    edge is longer than this (trimesh.remesh.subdivide_to_size, at most 10 rounds of midpoint
    subdivision; needs faces). New vertices lie on the original surface (flat faces), so the
    nearest vertex approaches the nearest surface point as the edge length shrinks."""
    if hasattr(mesh, 'vertices') and hasattr(mesh, 'faces'):
        verts, faces = np.asarray(mesh.vertices, float), np.asarray(mesh.faces)
    elif isinstance(mesh, (tuple, list)) and len(mesh) == 2:
        verts, faces = np.asarray(mesh[0], float), np.asarray(mesh[1])
    else:
        verts, faces = np.asarray(mesh, float), None
    if verts.ndim != 2 or verts.shape[1] != 3 or len(verts) == 0:
        raise ValueError(f'mesh vertices must be a non-empty (V, 3) array, got {verts.shape}')
    if densify_max_edge is None:
        return verts
    if densify_max_edge <= 0:
        raise ValueError('densify_max_edge must be > 0 (m)')
    if faces is None or len(faces) == 0:
        raise ValueError('densify_max_edge needs a mesh with faces')
    import trimesh   # local: only the densify option needs it
    v, _ = trimesh.remesh.subdivide_to_size(verts, faces, max_edge=float(densify_max_edge), max_iter=10)
    return np.asarray(v, float)


def compute_contact_priors(
    hand_keypoints: np.ndarray,
    hand_present: np.ndarray | None,
    object_meshes: Sequence[Any],
    object_poses: np.ndarray,
    *,
    tau_tip: float = TAU_TIP,
    tau_palm: float = TAU_PALM,
    densify_max_edge: float | None = None,
    object_ids: Sequence[str] | None = None,
) -> ContactPriors:
    """Paper 3.4: nearest object vertex per contact keypoint, frame and object, thresholded by tau_j.

    hand_keypoints: (2, T, 21, 3) world, m, MANO/OpenPose order (index 0 LEFT, 1 RIGHT).
    hand_present:   (2, T) bool, or None (= present wherever all 21 keypoints are finite).
    object_meshes:  O meshes in their object frame, m (see `mesh_vertex_set`).
    object_poses:   (O, T, 4, 4) T_world_object.
    tau_tip, tau_palm: thresholds tau_j, m (paper: 0.03, 0.05). A pair is kept if distance <= tau_j.
    densify_max_edge: see `mesh_vertex_set` (default None = raw vertices, as the paper).

    Method: for each object a cKDTree over V_o (object frame); the keypoints of frame t are mapped
    into the object frame with T_world_object(t)^-1 (a rigid map preserves distances), queried for
    the nearest vertex (k = 1, Euclidean)."""
    kp = np.asarray(hand_keypoints, dtype=float)
    if kp.ndim != 4 or kp.shape[2] != N_HAND_KEYPOINTS or kp.shape[3] != 3:
        raise ValueError(f'hand_keypoints must be (H, T, 21, 3), got {kp.shape}')
    H, T = kp.shape[:2]
    poses = np.asarray(object_poses, dtype=float)
    O = len(object_meshes)
    if poses.shape != (O, T, 4, 4):
        raise ValueError(f'object_poses must be ({O}, {T}, 4, 4), got {poses.shape}')
    if hand_present is None:
        present = np.ones((H, T), dtype=bool)
    else:
        present = np.asarray(hand_present, dtype=bool)
        if present.shape != (H, T):
            raise ValueError(f'hand_present must be ({H}, {T}), got {present.shape}')
    J = CONTACT_KEYPOINTS
    K = len(J)
    tau = keypoint_thresholds(tau_tip, tau_palm)

    pj = kp[:, :, J, :]                                             # (H, T, K, 3) world
    hand_ok = present & np.all(np.isfinite(kp), axis=(2, 3))        # (H, T)

    vertex_index = np.full((H, T, K, O), -1, dtype=np.int64)
    vertex_object = np.full((H, T, K, O, 3), np.nan)
    distance = np.full((H, T, K, O), np.inf)
    verts_all = []
    for o, mesh in enumerate(object_meshes):
        V = mesh_vertex_set(mesh, densify_max_edge)
        verts_all.append(V)
        tree = cKDTree(V)
        pose_ok = np.all(np.isfinite(poses[o]), axis=(1, 2))          # (T,)
        R = poses[o, :, :3, :3]                                        # (T, 3, 3)
        p = poses[o, :, :3, 3]                                         # (T, 3)
        ok = hand_ok & pose_ok[None, :]                                # (H, T)
        if not np.any(ok):
            continue
        # object-frame keypoints: R^T (x - p)
        local = np.einsum('tji,htkj->htki', np.where(pose_ok[:, None, None], R, 0.0),
                          pj - np.where(pose_ok[:, None], p, 0.0)[None, :, None, :])
        q = local[ok]                                                  # (N, K, 3)
        d, idx = tree.query(q.reshape(-1, 3), k=1)
        d = d.reshape(q.shape[:2])
        idx = idx.reshape(q.shape[:2])
        distance[..., o][ok] = d
        vertex_index[..., o][ok] = idx
        vertex_object[..., o, :][ok] = V[idx]
    in_contact = distance <= tau[None, None, :, None]
    return ContactPriors(
        keypoints=J, thresholds=tau, in_contact=in_contact, vertex_index=vertex_index,
        vertex_object=vertex_object, distance=distance, hand_present=present,
        object_vertices=verts_all, object_ids=list(object_ids) if object_ids is not None else None)
