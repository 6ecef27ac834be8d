"""FoundationPose adapter (backends/foundationpose_adapter.py): depth/mask inputs, the centred-mesh
pose convention of estimater.FoundationPose (returned pose = pose_last @ get_tf_to_centered_mesh()),
pose checks and Any6D-style scale selection. The adapter's control flow runs against a stand-in
object with FoundationPose's attribute/method names and its convention (torch tensors for
pose_last, scores and tf), since the real library needs CUDA; the stand-in is test-only."""
import math

import numpy as np
import pytest
import torch
import trimesh

from dexman_perception.core.backends import foundationpose_adapter as fpa
from dexman_perception.core.stages import PoseEstimate, PoseRefiner, StageFailure

K = np.array([[500.0, 0, 32.0], [0, 500.0, 24.0], [0, 0, 1]])


def translation(t):
    T = np.eye(4)
    T[:3, 3] = t
    return T


def rot_z(a):
    T = np.eye(4)
    T[:2, :2] = [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]]
    return T


def test_sanitize_depth_and_count_valid():
    d = np.array([[np.nan, np.inf, -1.0], [0.05, 0.5, 2.0]])
    out = fpa.sanitize_depth(d, (2, 3))
    np.testing.assert_array_equal(out, np.array([[0, 0, 0], [0.05, 0.5, 2.0]], np.float32))
    assert out.dtype == np.float32
    m = np.ones((2, 3), bool)
    assert fpa.count_valid(out, m) == 2                            # >= 0.1 m
    with pytest.raises(ValueError):
        fpa.sanitize_depth(d, (3, 2))


def test_to_centered_hand_computed():
    center = np.array([0.1, 0.2, 0.3])
    tf = translation(-center)                                      # get_tf_to_centered_mesh()
    T = translation([1.0, 2.0, 3.0])
    np.testing.assert_allclose(fpa.to_centered(T, tf), translation([1.1, 2.2, 3.3]))
    T = rot_z(0.3) @ translation([0.0, 0.0, 1.0])
    np.testing.assert_allclose(fpa.to_centered(T, tf) @ tf, T, atol=1e-12)


def test_check_pose_and_best_scale():
    assert fpa.check_pose(translation([0, 0, 1.0])) == (True, '')
    ok, why = fpa.check_pose(translation([0, 0, -1.0]))
    assert not ok and 'behind' in why
    bad = translation([0, 0, 1.0])
    bad[:3, :3] *= 1.1
    assert not fpa.check_pose(bad)[0]
    assert not fpa.check_pose(np.full((4, 4), np.nan))[0]
    res = [(0.5, PoseEstimate(np.eye(4), 0.9, valid=False)), (1.0, PoseEstimate(np.eye(4), 0.4)),
           (2.0, PoseEstimate(np.eye(4), 0.7)), (3.0, PoseEstimate(np.eye(4), float('nan')))]
    s, p = fpa.best_scale(res)
    assert s == 2.0 and p.score == 0.7
    with pytest.raises(StageFailure):
        fpa.best_scale([(1.0, PoseEstimate(np.eye(4), 1.0, valid=False))])


class StandInFoundationPose:
    """Test stand-in with FoundationPose's interface and pose convention (no network)."""

    def __init__(self, model_pts, model_normals, mesh=None, **_):
        self.reset_object(model_pts, model_normals, mesh=mesh)
        self.pose_last = None
        self.scorer = self
        self.registered_scales = []

    def reset_object(self, model_pts, model_normals, symmetry_tfs=None, mesh=None):
        self.model_center = (model_pts.max(0) + model_pts.min(0)) / 2
        self.mesh, self.mesh_tensors, self.glctx = mesh, None, None
        self.diameter = float(np.linalg.norm(model_pts.max(0) - model_pts.min(0)))

    def get_tf_to_centered_mesh(self):
        tf = torch.eye(4)
        tf[:3, 3] = -torch.as_tensor(self.model_center, dtype=torch.float32)
        return tf

    def register(self, K, rgb, depth, ob_mask, iteration):
        self.registered_scales.append(self.diameter)
        self.pose_last = torch.as_tensor(translation([0, 0, 0.5]), dtype=torch.float32)
        self.scores = torch.tensor([self.diameter, 0.0])          # bigger mesh scores higher
        return (self.pose_last @ self.get_tf_to_centered_mesh()).numpy()

    def track_one(self, rgb, depth, K, iteration):
        return (self.pose_last @ self.get_tf_to_centered_mesh()).numpy()   # no motion

    def predict(self, ob_in_cams, **_):
        return torch.tensor([0.42]), None


def stand_in_refiner():
    r = object.__new__(fpa.FoundationPoseRefiner)
    r._fp = type('FP', (), {'FoundationPose': StandInFoundationPose})
    r._scorer = r._refiner = r._glctx = None
    r.register_iterations, r.track_iterations, r.score_refined = 5, 2, True
    r.debug_dir, r._est, r._mesh_key, r.device = None, None, None, 'cpu'
    return r


def test_refine_starts_from_T_init_in_the_original_mesh_frame():
    r = stand_in_refiner()
    assert isinstance(r, PoseRefiner)
    mesh = trimesh.creation.box(extents=[0.1, 0.2, 0.3])
    mesh.apply_translation([0.05, -0.02, 0.1])                     # off-centre mesh frame
    rgb = np.zeros((48, 64, 3), np.uint8)
    depth = np.full((48, 64), 0.5, np.float32)
    T_init = rot_z(0.4) @ translation([0.02, 0.01, 0.6])
    est = r.refine(rgb, depth, None, mesh, K, T_init)
    np.testing.assert_allclose(est.T_camera_object, T_init, atol=1e-6)
    assert est.valid and est.score == pytest.approx(0.42)
    with pytest.raises(StageFailure):
        r.refine(rgb, None, None, mesh, K, T_init)


def test_register_and_scale_search():
    r = stand_in_refiner()
    mesh = trimesh.creation.box(extents=[0.1, 0.1, 0.1])
    rgb = np.zeros((48, 64, 3), np.uint8)
    depth = np.full((48, 64), np.nan, np.float32)
    mask = np.zeros((48, 64), bool)
    mask[10:20, 10:20] = True
    est = r.register(rgb, depth, mask, mesh, K)                    # no valid depth in the mask
    assert not est.valid and 'depth' in est.reason
    depth[:] = 0.5
    est = r.register(rgb, depth, mask, mesh, K)
    assert est.valid and est.T_camera_object[2, 3] == pytest.approx(0.5)
    s, best = r.register_scales(rgb, depth, mask, mesh, K, [0.5, 2.0, 1.0])
    assert s == 2.0 and best.score == pytest.approx(math.sqrt(3) * 0.2, rel=1e-6)
    np.testing.assert_allclose(mesh.extents, [0.1, 0.1, 0.1])      # caller's mesh untouched
