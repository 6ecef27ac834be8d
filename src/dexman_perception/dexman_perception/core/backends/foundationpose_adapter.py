"""FoundationPose adapter (paper Sec. 3.2, B.3: register the mesh at candidate scales, keep the
best-scoring one (Any6D style), then refine from the SpatialTracker-propagated initial pose).

Follows NVlabs/FoundationPose (main branch, `estimater.py`, 2024):

    from estimater import *        # run from the repo root: Utils, datareader, learning/, mycpp
    scorer, refiner = ScorePredictor(), PoseRefinePredictor()    # weights/ of the release
    est = FoundationPose(model_pts=mesh.vertices, model_normals=mesh.vertex_normals, mesh=mesh,
                         scorer=scorer, refiner=refiner, glctx=dr.RasterizeCudaContext(),
                         debug=0, debug_dir=...)
    est.reset_object(model_pts, model_normals, mesh=mesh)        # switch mesh (or scale)
    T = est.register(K=K, rgb=rgb, depth=depth, ob_mask=mask, iteration=5)   # (4, 4) numpy
    est.scores[0]                  # score of the returned (best) hypothesis, higher is better
    T = est.track_one(rgb=rgb, depth=depth, K=K, iteration=2)    # refine from est.pose_last

Internally FoundationPose works on the mesh re-centred on its bounding-box centre:
`est.pose_last` is the pose of the centred mesh and the returned pose is
`pose_last @ est.get_tf_to_centered_mesh()`. To refine from our own initial guess T_init
(ΔT · T_{k-1}, B.3), `pose_last` is set to `T_init @ inv(tf_to_centered_mesh)` (`to_centered`).

Inputs: rgb uint8 (H, W, 3), depth float32 metres with 0 = invalid (our NaN/inf/<=0 become 0;
FoundationPose ignores depth < 0.1 m in register, erodes and bilateral-filters it), ob_mask bool,
K (3, 3). register() falls back to an identity rotation at the mask's centre when fewer than
4 mask pixels have valid depth; the adapter reports that case as invalid instead. track_one gives
no score: refine() scores the refined pose with the ScorePredictor (score_refined=True) or
returns score NaN.

Install: NVlabs/FoundationPose is a CUDA-only source tree (nvdiffrast, pytorch3d, kaolin, its
mycpp/ and bundlesdf CUDA extensions built with build_all.sh); pass repo_dir=<checkout> with the
released weights in <repo_dir>/weights/ (2023-10-28-18-33-37 refiner, 2024-01-11-20-02-45 scorer).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from ..stages import BackendUnavailable, PoseEstimate, StageFailure
from ._adapter_util import (check_K, check_rgb, repo_context, require_module, require_path,
                            resolve_device, to_numpy)

BACKEND = 'foundationpose'
INSTALL_HINT = ("Clone NVlabs/FoundationPose, build its CUDA extensions (build_all.sh: mycpp, "
                "bundlesdf; plus nvdiffrast, pytorch3d, kaolin) and pass repo_dir=<checkout>.")
CKPT_HINT = ("Download the FoundationPose weights (refiner 2023-10-28-18-33-37 and scorer "
             "2024-01-11-20-02-45) into <repo_dir>/weights/.")


# ------------------------------------------------------------------------------ pure helpers
def sanitize_depth(depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Our depth (metres, NaN/inf/<=0 = unknown) -> FoundationPose's (float32, 0 = invalid)."""
    d = np.asarray(depth, dtype=np.float32)
    if d.shape != tuple(shape):
        raise ValueError(f'depth {d.shape} does not match image {tuple(shape)}')
    return np.where(np.isfinite(d) & (d > 0), d, 0.0).astype(np.float32)


def count_valid(depth: np.ndarray, mask: np.ndarray, min_depth: float = 0.1) -> int:
    """Mask pixels with depth >= min_depth: FoundationPose's register needs >= 4."""
    return int(np.count_nonzero(np.asarray(mask, dtype=bool) & (depth >= min_depth)))


def to_centered(T_camera_object: np.ndarray, tf_to_center: np.ndarray) -> np.ndarray:
    """Our pose (original mesh frame) -> FoundationPose's pose_last (centred mesh):
    T @ inv(tf_to_center), since FoundationPose returns pose_last @ tf_to_center."""
    return np.asarray(T_camera_object, dtype=np.float64) @ np.linalg.inv(
        np.asarray(tf_to_center, dtype=np.float64))


def check_pose(T: np.ndarray, tol: float = 1e-3) -> tuple[bool, str]:
    """A usable T_camera_object: finite, rotation orthonormal with det +1, object in front of the
    camera (z > 0). Returns (valid, reason)."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False, 'pose is not a finite 4x4 matrix'
    R = T[:3, :3]
    if not (np.allclose(R @ R.T, np.eye(3), atol=tol) and abs(np.linalg.det(R) - 1) < tol):
        return False, 'rotation is not orthonormal'
    if T[2, 3] <= 0:
        return False, f'object behind the camera (z = {T[2, 3]:.3f} m)'
    return True, ''


def best_scale(results: Sequence[tuple[float, PoseEstimate]]) -> tuple[float, PoseEstimate]:
    """Any6D-style scale selection: the (scale, pose) whose valid pose scores highest."""
    valid = [(s, p) for s, p in results if p.valid and math.isfinite(p.score)]
    if not valid:
        raise StageFailure('no candidate scale gave a valid FoundationPose registration')
    return max(valid, key=lambda sp: sp[1].score)


# ------------------------------------------------------------------------------ adapter
class FoundationPoseRefiner:
    """PoseRefiner backend 'foundationpose'.

    Options: repo_dir (FoundationPose checkout, built, with weights/), device (CUDA only),
    register_iterations (5, as run_demo.py), track_iterations (2), score_refined (score refine()
    results with the ScorePredictor), debug_dir (FoundationPose's debug output folder).
    """

    def __init__(self, repo_dir: str | None = None, device: str = 'cuda',
                 register_iterations: int = 5, track_iterations: int = 2,
                 score_refined: bool = True, debug_dir: str = '/tmp/dexman_foundationpose'):
        root = require_path(repo_dir, BACKEND, 'repo_dir', INSTALL_HINT)
        require_path(root / 'weights', BACKEND, 'weights folder', CKPT_HINT)
        self.device = resolve_device(device, BACKEND, cuda_only=True)
        with repo_context(root, chdir=True):
            self._fp = require_module('estimater', BACKEND, INSTALL_HINT)
            self._dr = require_module('nvdiffrast.torch', BACKEND, INSTALL_HINT)
            try:
                self._scorer = self._fp.ScorePredictor()
                self._refiner = self._fp.PoseRefinePredictor()
            except (FileNotFoundError, OSError) as e:
                raise BackendUnavailable(f'{BACKEND}: {e}. {CKPT_HINT}') from e
        self._glctx = self._dr.RasterizeCudaContext()
        self.register_iterations = int(register_iterations)
        self.track_iterations = int(track_iterations)
        self.score_refined = bool(score_refined)
        self.debug_dir = debug_dir
        self._est = None
        self._mesh_key = None

    def _estimator(self, mesh):
        """The FoundationPose estimator set to `mesh` (re-used while the mesh is unchanged)."""
        key = (id(mesh), mesh.vertices.shape, float(np.asarray(mesh.vertices).sum()))
        if self._est is None:
            self._est = self._fp.FoundationPose(
                model_pts=mesh.vertices, model_normals=mesh.vertex_normals, mesh=mesh,
                scorer=self._scorer, refiner=self._refiner, glctx=self._glctx, debug=0,
                debug_dir=self.debug_dir)
        elif key != self._mesh_key:
            self._est.reset_object(model_pts=mesh.vertices, model_normals=mesh.vertex_normals,
                                   mesh=mesh)
        self._mesh_key = key
        return self._est

    @staticmethod
    def _inputs(rgb, depth, K):
        rgb = check_rgb(rgb)
        K = check_K(K)
        if depth is None:
            raise StageFailure('FoundationPose needs a (metric) depth map')
        return rgb, sanitize_depth(depth, rgb.shape[:2]), K

    def register(self, rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray, mesh,
                 K: np.ndarray) -> PoseEstimate:
        """Global registration of `mesh` in the image (FoundationPose.register)."""
        rgb, d, K = self._inputs(rgb, depth, K)
        m = np.asarray(mask, dtype=bool)
        if m.shape != d.shape:
            raise ValueError(f'mask {m.shape} does not match image {d.shape}')
        est = self._estimator(mesh)
        n = count_valid(d, m)
        if n < 4:
            return PoseEstimate(np.eye(4), float('nan'), valid=False,
                                reason=f'only {n} mask pixels with depth >= 0.1 m')
        T = to_numpy(est.register(K=K, rgb=rgb, depth=d, ob_mask=m,
                                  iteration=self.register_iterations)).reshape(4, 4)
        score = float(to_numpy(est.scores[0]).reshape(-1)[0])
        ok, reason = check_pose(T)
        return PoseEstimate(T.astype(np.float64), score, valid=ok, reason=reason)

    def register_scales(self, rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray, mesh,
                        K: np.ndarray, scales: Sequence[float]) -> tuple[float, PoseEstimate]:
        """Any6D-style: register mesh scaled by each candidate, return (best scale, its pose)."""
        results = []
        for s in scales:
            scaled = mesh.copy()
            scaled.apply_scale(float(s))
            results.append((float(s), self.register(rgb, depth, mask, scaled, K)))
        return best_scale(results)

    def refine(self, rgb: np.ndarray, depth: np.ndarray | None, mask: np.ndarray | None, mesh,
               K: np.ndarray, T_init: np.ndarray) -> PoseEstimate:
        """Refine from T_init (FoundationPose.track_one with pose_last set to T_init). The mask
        is not used by FoundationPose's tracking."""
        import torch
        rgb, d, K = self._inputs(rgb, depth, K)
        est = self._estimator(mesh)
        tf = to_numpy(est.get_tf_to_centered_mesh()).astype(np.float64)
        est.pose_last = torch.as_tensor(to_centered(T_init, tf), dtype=torch.float32,
                                        device=self.device)
        T = to_numpy(est.track_one(rgb=rgb, depth=d, K=K,
                                   iteration=self.track_iterations)).reshape(4, 4)
        score = float('nan')
        if self.score_refined:
            scores, _ = est.scorer.predict(
                mesh=est.mesh, rgb=rgb, depth=d, K=K,
                ob_in_cams=to_numpy(est.pose_last).reshape(1, 4, 4), normal_map=None,
                mesh_tensors=est.mesh_tensors, glctx=est.glctx, mesh_diameter=est.diameter,
                get_vis=False)
            score = float(to_numpy(scores).reshape(-1)[0])
        ok, reason = check_pose(T)
        return PoseEstimate(T.astype(np.float64), score, valid=ok, reason=reason)
