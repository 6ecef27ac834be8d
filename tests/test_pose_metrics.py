"""Pose metrics of the paper's appendix B.6 (dexman_synthetic.core.pose_metrics), hand-computed cases."""
import math

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from dexman_synthetic.core import pose_metrics as pm


def _T(R=None, t=(0.0, 0.0, 0.0)):
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    T[:3, 3] = t
    return T


def _Rz(a):
    return Rotation.from_rotvec([0.0, 0.0, a]).as_matrix()


def look_at(eye, target, up=(0.0, 0.0, 1.0)):
    """T_world_camera of an OpenCV optical frame at eye looking at target."""
    eye, target, up = (np.asarray(a, float) for a in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return _T(np.stack([x, y, z], axis=1), eye)


# ------------------------------------------------------------------ alignment
def test_alignment_formula_by_hand():
    # frame 1: prediction [Rz(90°) | (1,0,0)], ground truth [I | (0,0,1)]
    gt = np.stack([_T(t=(0, 0, 1)), _T(t=(0, 0, 1))])
    pred = np.stack([_T(_Rz(math.pi / 2), (1, 0, 0)), _T(_Rz(math.pi / 2), (1, 1, 0))])
    A = pm.alignment_transform(gt[0], pred[0])
    np.testing.assert_allclose(A[:3, :3], _Rz(-math.pi / 2), atol=1e-12)      # ΔR = R1* R1ᵀ
    np.testing.assert_allclose(A[:3, 3], [0, 1, 1], atol=1e-12)               # Δt = t1* − ΔR t1
    aligned, anchor = pm.align_to_first_frame(gt, pred)
    assert anchor == 0
    np.testing.assert_allclose(aligned[0], gt[0], atol=1e-12)
    # T̃_2 = [ΔR R_2 | ΔR t_2 + Δt] = [I | Rz(−90°)(1,1,0) + (0,1,1)] = [I | (1,0,1)]
    np.testing.assert_allclose(aligned[1], _T(t=(1, 0, 1)), atol=1e-12)


def test_alignment_anchors_at_first_valid_frame():
    gt = np.stack([_T(t=(0, 0, 0)), _T(t=(0, 0, 1)), _T(t=(0, 0, 2))])
    pred = np.stack([_T(t=(9, 9, 9)), _T(t=(5, 0, 1)), _T(t=(5, 0, 2.5))])
    aligned, anchor = pm.align_to_first_frame(gt, pred, np.array([False, True, True]))
    assert anchor == 1
    np.testing.assert_allclose(aligned[1, :3, 3], [0, 0, 1])
    np.testing.assert_allclose(aligned[2, :3, 3], [0, 0, 2.5])


def test_constant_world_offset_is_aligned_away():
    gt = np.stack([_T(_Rz(0.1 * i), (0.01 * i, 0, 0.2)) for i in range(6)])
    C = _T(Rotation.from_rotvec([0.2, -0.1, 0.4]).as_matrix(), (0.3, -0.2, 0.1))
    pred = np.einsum('ij,njk->nik', C, gt)
    aligned, _ = pm.align_to_first_frame(gt, pred)
    np.testing.assert_allclose(aligned, gt, atol=1e-12)


# ------------------------------------------------------------------ ADD-S
def test_add_s_single_point_offset_and_auc():
    d = pm.add_s_distances(_T()[None], _T(t=(0.05, 0, 0))[None], np.zeros((1, 3)))
    assert d[0] == pytest.approx(0.05)
    # AUC of a constant d = 0.05 over [0, 0.1] is 0.5, closed form and sampled
    assert pm.auc_add_s(np.full(7, 0.05)) == pytest.approx(0.5)
    assert pm.auc_add_s(np.full(7, 0.05), n_samples=1000) == pytest.approx(0.5)
    assert pm.auc_add_s([0.0, 0.2, np.nan, np.inf]) == pytest.approx(0.25)   # 1, 0, 0, 0


def test_add_s_auc_sampled_agrees_with_closed_form():
    rng = np.random.default_rng(3)
    d = np.concatenate([rng.uniform(0, 0.15, 500), [np.inf, np.nan]])
    for n in (50, 1000):
        assert abs(pm.auc_add_s(d, n_samples=n) - pm.auc_add_s(d)) <= 0.5 / n + 1e-12
    s = rng.uniform(0, 1, 500)
    for n in (40, 1000):
        assert abs(pm.auc_vsd(s, n_samples=n) - pm.auc_vsd(s)) <= 0.5 / n + 1e-12


def test_add_s_symmetric_cylinder_vs_add():
    ang = np.deg2rad(np.arange(0, 360, 1.0))
    ring = np.stack([0.05 * np.cos(ang), 0.05 * np.sin(ang), np.zeros_like(ang)], 1)
    pts = np.concatenate([ring + [0, 0, h] for h in (-0.05, 0.0, 0.05)])
    gt, pred = _T(t=(0.2, 0.1, 0.3))[None], _T(_Rz(np.deg2rad(10.0)), (0.2, 0.1, 0.3))[None]
    assert pm.add_s_distances(gt, pred, pts)[0] == pytest.approx(0.0, abs=1e-12)
    assert pm.add_distances(gt, pred, pts)[0] == pytest.approx(2 * 0.05 * math.sin(np.deg2rad(5.0)))


def test_add_s_subsample_is_deterministic():
    pts = np.random.default_rng(0).normal(size=(20000, 3))
    a, b = pm.subsample_points(pts, 5000), pm.subsample_points(pts, 5000)
    assert a.shape == (5000, 3) and np.array_equal(a, b)


# ------------------------------------------------------------------ plate scene (hand geometry)
# A 0.2 m square plate of 41x41 points (5 mm apart), 1 m in front of a camera with f = 100 px:
# it covers pixel columns and rows 22..42 (21 x 21 = 441 pixels).
PK = np.array([[100.0, 0, 32], [0, 100.0, 32], [0, 0, 1]])
PW = PH = 65
_g = np.linspace(-0.1, 0.1, 41)
PLATE = np.stack([*np.meshgrid(_g, _g, indexing='ij'), np.zeros((41, 41))], -1).reshape(-1, 3)


def _plate_obs():
    z = pm.render_point_depth(PLATE, _T(t=(0, 0, 1)), PK, np.eye(4), PH, PW)
    return z, z > 0


def test_plate_render_by_hand():
    z, m = _plate_obs()
    assert m.sum() == 441
    assert m[22:43, 22:43].all()
    np.testing.assert_allclose(z[m], 1.0)
    assert pm.cross_dilate(m).sum() == 441 + 4 * 21
    assert pm.silhouette_iou(m, m) == pytest.approx(441 / 525)


def test_plate_lateral_5cm_shift_by_hand():
    D, M = _plate_obs()
    z = pm.render_point_depth(PLATE, _T(t=(0.05, 0, 1)), PK, np.eye(4), PH, PW)   # 5 px to the right
    assert (z > 0).sum() == 441 and (z > 0)[22:43, 27:48].all()
    # dilated prediction: cols 26..48 (rows 22..42) + rows 21, 43 (cols 27..47) = 525 px;
    # intersection with the observed cols 22..42: cols 26..42 x 21 rows = 357; union 441 + 525 − 357
    assert pm.silhouette_iou(z > 0, M) == pytest.approx(357 / 609)
    # VSD only looks at the overlap, which is at the right depth: s = 1 (336 px)
    assert pm.vsd_score(z, D, M) == (1.0, 16 * 21)
    # through evaluate_trajectory: frame 1 exact, frame 2 shifted
    gt = np.stack([_T(t=(0, 0, 1))] * 2)
    pred = np.stack([_T(t=(0, 0, 1)), _T(t=(0.05, 0, 1))])
    r = pm.evaluate_trajectory(gt, pred, None, PLATE, PK, np.eye(4), np.stack([D, D]), np.stack([M, M]),
                               per_frame=True)
    # ADD-S: 31 of 41 columns land on plate points (0), the other 10 are 5..50 mm beyond the edge
    d2 = 0.005 * sum(range(1, 11)) / 41
    assert r['per_frame']['add_s_m'][1] == pytest.approx(d2)
    assert r['add_s_auc'] == pytest.approx((1 + (1 - d2 / 0.1)) / 2)
    assert r['per_frame']['iou'] == pytest.approx([441 / 525, 357 / 609])
    assert r['vsd_auc'] == 1.0 and r['failure_rate'] == 0.0
    assert r['stability_mean'] == pytest.approx(0.5 * math.exp(-5.0) + 0.5)


def test_plate_depth_5cm_shift_by_hand():
    D, M = _plate_obs()
    gt = np.stack([_T(t=(0, 0, 1))] * 2)
    pred = np.stack([_T(t=(0, 0, 1)), _T(t=(0, 0, 1.05))])
    r = pm.evaluate_trajectory(gt, pred, None, PLATE, PK, np.eye(4), np.stack([D, D]), np.stack([M, M]),
                               per_frame=True)
    # at 1.05 m the plate spans u = 32 ± 9.52 → still columns 22..42; every depth is off by 5 cm > δ
    assert r['per_frame']['vsd'] == [1.0, 0.0]
    assert r['vsd_auc'] == pytest.approx(0.5) and r['vsd_success_0p3'] == pytest.approx(0.5)
    assert r['per_frame']['iou'] == pytest.approx([441 / 525, 441 / 525])
    assert r['per_frame']['add_s_m'][1] == pytest.approx(0.05)
    assert r['add_s_auc'] == pytest.approx(0.75)
    # within δ: a 1.5 cm depth error still agrees everywhere
    z = pm.render_point_depth(PLATE, _T(t=(0, 0, 1.015)), PK, np.eye(4), PH, PW)
    assert pm.vsd_score(z, D, M)[0] == 1.0


def test_vsd_no_overlap_and_filtered_frames():
    D, M = _plate_obs()
    gt = np.stack([_T(t=(0, 0, 1))] * 3)
    pred = np.stack([_T(t=(0, 0, 1)), _T(t=(0.5, 0, 1)), _T(t=(0, 0, 1))])   # frame 2 misses the image
    masks = np.stack([M, M, np.zeros_like(M)])                             # frame 3: object not visible
    r = pm.evaluate_trajectory(gt, pred, None, PLATE, PK, np.eye(4), np.stack([D, D, D]), masks,
                               per_frame=True)
    assert r['n_filtered'] == 1 and r['n_vsd_no_overlap'] == 1
    assert r['per_frame']['vsd'][:2] == [1.0, 0.0]
    assert r['vsd_auc'] == pytest.approx(0.5)
    assert r['failure_rate'] == pytest.approx(0.5)          # IoU 0 on frame 2, frame 3 excluded


def test_render_metrics_are_none_without_images():
    gt = np.stack([_T(t=(0, 0, 1))] * 3)
    r = pm.evaluate_trajectory(gt, gt, None, PLATE, PK, np.eye(4))
    for k in ('vsd_auc', 'vsd_success_0p3', 'failure_rate'):
        assert r[k] is None and k in r['unavailable']
    assert r['add_s_auc'] == 1.0 and r['stability_mean'] == pytest.approx(1.0)


def test_cross_dilation_of_one_pixel():
    m = np.zeros((5, 5), bool)
    m[2, 2] = True
    d = pm.cross_dilate(m)
    assert d.sum() == 5
    assert d[1, 2] and d[3, 2] and d[2, 1] and d[2, 3] and not d[1, 1]
    c = np.zeros((3, 3), bool)
    c[0, 0] = True
    assert pm.cross_dilate(c).sum() == 3                     # clipped at the border


# ------------------------------------------------------------------ box scene: perfect prediction
K = np.array([[150.0, 0, 79.5], [0, 150.0, 59.5], [0, 0, 1]])
W, H = 160, 120
T_WC = look_at([0.45, -0.3, 0.4], [0.0, 0.0, 0.05])


def _box_scene(n=8):
    mesh = trimesh.creation.box(extents=(0.10, 0.07, 0.05))
    t = np.linspace(0, 1, n)
    gt = np.tile(np.eye(4), (n, 1, 1))
    gt[:, :3, :3] = Rotation.from_rotvec(np.stack([0.2 * t, 0.1 * t, 1.2 * t], 1)).as_matrix()
    gt[:, :3, 3] = np.stack([0.05 * np.sin(2 * t), 0.06 * t, 0.05 + 0.08 * t], 1)
    spacing = pm.choose_render_spacing(K, gt, T_WC, mesh.vertices)
    sp, sn, _ = pm.sample_surface(mesh.vertices, mesh.faces, spacing)
    depth = np.stack([pm.render_point_depth(sp, T, K, T_WC, H, W, sn) for T in gt])
    return mesh, gt, sp, sn, depth, depth > 0


def test_sample_surface_is_even_and_deterministic():
    mesh = trimesh.creation.box(extents=(0.10, 0.07, 0.05))
    p1, n1, s = pm.sample_surface(mesh.vertices, mesh.faces, 0.002)
    p2, _, _ = pm.sample_surface(mesh.vertices, mesh.faces, 0.002)
    assert np.array_equal(p1, p2) and s == 0.002
    # every point of the surface is within the spacing of a sample
    probe, _ = trimesh.sample.sample_surface(mesh, 2000, seed=1)
    from scipy.spatial import cKDTree
    assert cKDTree(p1).query(probe)[0].max() < 0.002
    # normals point outwards (box centred at the origin)
    assert np.all(np.einsum('ij,ij->i', p1, n1) > 0)
    # the cap on the number of points widens the spacing
    p3, _, s3 = pm.sample_surface(mesh.vertices, mesh.faces, 0.0005, max_points=5000)
    assert len(p3) <= 5000 and s3 > 0.0005


def test_perfect_prediction_scores_perfectly():
    mesh, gt, sp, sn, depth, masks = _box_scene()
    assert masks.sum(axis=(1, 2)).min() > 200
    r = pm.evaluate_trajectory(gt, gt, None, sp, K, T_WC, depth, masks, surface_points=sp, surface_normals=sn)
    assert r['add_s_auc'] == pytest.approx(1.0)
    assert r['vsd_auc'] == 1.0 and r['vsd_success_0p3'] == 1.0
    assert r['failure_rate'] == 0.0 and r['n_invalid'] == 0
    assert r['stability_mean'] == pytest.approx(1.0, abs=1e-6)
    # a constant world offset of the prediction is removed by the alignment
    C = _T(_Rz(0.7), (0.3, -0.2, 0.1))
    r2 = pm.evaluate_trajectory(gt, np.einsum('ij,njk->nik', C, gt), None, sp, K, T_WC, depth, masks,
                                surface_points=sp, surface_normals=sn)
    assert r2['add_s_auc'] == pytest.approx(1.0) and r2['vsd_auc'] == 1.0 and r2['failure_rate'] == 0.0


def test_invalid_frames_count_as_failures():
    mesh, gt, sp, sn, depth, masks = _box_scene()
    pred = gt.copy()
    flags = np.ones(len(gt), bool)
    flags[2] = False                         # flagged invalid by the tracker
    pred[4, 0, 3] = np.nan                   # NaN
    pred[6, :3, :3] *= 1.1                   # not a rotation
    r = pm.evaluate_trajectory(gt, pred, flags, sp, K, T_WC, depth, masks, surface_points=sp,
                               surface_normals=sn, per_frame=True)
    n = len(gt)
    assert r['n_invalid'] == 3
    assert r['failure_rate'] == pytest.approx(3 / n)
    assert r['add_s_auc'] == pytest.approx((n - 3) / n)
    assert r['vsd_auc'] == pytest.approx((n - 3) / n)
    assert r['add_s_mean_m'] == pytest.approx(0.0, abs=1e-12)
    # pairs (0,1) and (7,...) only: (2,3),(3,4),(4,5),(5,6),(6,7),(1,2) drop out
    assert r['n_stability_pairs'] == n - 1 - 6
    assert r['per_frame']['valid'] == [i not in (2, 4, 6) for i in range(n)]
    none = pm.evaluate_trajectory(gt, gt, np.zeros(n, bool), sp, K, T_WC, depth, masks, surface_points=sp)
    assert none['add_s_auc'] == 0.0 and none['failure_rate'] == 1.0 and none['vsd_auc'] == 0.0
    assert none['stability_mean'] is None and none['align_frame'] is None


def test_is_valid_pose():
    T = np.stack([np.eye(4)] * 4)
    T[1, 0, 0] = np.inf
    T[2, :3, :3] = np.diag([1, 1, -1])       # reflection
    T[3, 3, 0] = 0.5
    assert pm.is_valid_pose(T).tolist() == [True, False, False, False]


# ------------------------------------------------------------------ stability
def test_stability_constant_1cm_jitter():
    n = 7
    gt = np.stack([_T(t=(0.1, 0.2, 0.3))] * n)
    pred = gt.copy()
    pred[1::2, 0, 3] += 0.01                 # 0, +1 cm, 0, +1 cm, ...
    s, idx = pm.temporal_stability(gt, pred)
    assert idx.tolist() == list(range(n - 1))
    expected = 0.5 * math.exp(-1.0) + 0.5    # e_trans = 1 cm, e_rot = 0
    np.testing.assert_allclose(s, expected)
    r = pm.evaluate_trajectory(gt, pred, None, np.zeros((1, 3)), PK, np.eye(4))
    assert r['stability_mean'] == pytest.approx(expected) and r['stability_std'] == pytest.approx(0, abs=1e-12)


def test_stability_pure_rotation_step():
    gt = np.stack([_T()] * 4)
    pred = np.stack([_T(_Rz(a)) for a in (0.0, 0.0, 0.05, 0.05)])
    s, _ = pm.temporal_stability(gt, pred)
    step = 0.5 + 0.5 * math.exp(-0.5)        # e_rot = 0.05 rad, e_trans = 0
    np.testing.assert_allclose(s, [1.0, step, 1.0], atol=1e-7)
    r = pm.evaluate_trajectory(gt, pred, None, np.zeros((1, 3)), PK, np.eye(4))
    assert r['stability_mean'] == pytest.approx((2 + step) / 3, abs=1e-7)
    assert r['stability_std'] == pytest.approx(np.std([1.0, step, 1.0]), abs=1e-7)


def test_stability_rotation_about_world_origin():
    # the object at (0.5, 0, 0) turns 0.02 rad about the world z axis: it also moves by
    # 2 · 0.5 · sin(0.01) in translation
    th = 0.02
    gt = np.stack([_T(t=(0.5, 0, 0))] * 2)
    pred = np.stack([_T(t=(0.5, 0, 0)), _T(_Rz(th), (0.5 * math.cos(th), 0.5 * math.sin(th), 0))])
    s, _ = pm.temporal_stability(gt, pred)
    e_t = 2 * 0.5 * math.sin(th / 2)
    assert s[0] == pytest.approx(0.5 * math.exp(-e_t / 0.01) + 0.5 * math.exp(-th / 0.1), abs=1e-9)


def test_perturb_trajectory():
    gt = np.stack([_T(_Rz(0.1 * i), (0.01 * i, 0, 0)) for i in range(50)])
    a = pm.perturb_trajectory(gt, 0.01, 0.05, seed=4)
    b = pm.perturb_trajectory(gt, 0.01, 0.05, seed=4)
    assert np.array_equal(a, b) and pm.is_valid_pose(a).all()
    dt = np.linalg.norm(a[:, :3, 3] - gt[:, :3, 3], axis=1)
    assert 0.005 < np.sqrt(np.mean(dt ** 2) / 3) < 0.02
    d = pm.perturb_trajectory(gt, 0.0, 0.0, seed=1, drift=(0.001, 0.0))
    np.testing.assert_allclose(np.linalg.norm(d[:, :3, 3] - gt[:, :3, 3], axis=1), 0.001 * np.arange(50))
    assert pm.perturb_trajectory(np.stack([gt, gt]), 0.01, 0.0, seed=0).shape == (2, 50, 4, 4)


def test_sample_surface_caps_points_on_meshes_with_many_faces():
    """More faces than max_points allows at one lattice cell per face: an even, deterministic
    subset of exactly max_points (this used to loop forever)."""
    import trimesh
    mesh = trimesh.creation.cylinder(radius=0.03, height=0.15, sections=512)   # 2044 faces
    pts, nrm, spacing = pm.sample_surface(mesh.vertices, mesh.faces, 1e-4, max_points=4000)
    assert pts.shape == (4000, 3) and nrm.shape == (4000, 3)
    again, _, _ = pm.sample_surface(mesh.vertices, mesh.faces, 1e-4, max_points=4000)
    np.testing.assert_array_equal(pts, again)
    # every sample lies on the cylinder surface
    r = np.linalg.norm(pts[:, :2], axis=1)
    on_side = np.abs(r - 0.03) < 1e-3
    on_cap = np.abs(np.abs(pts[:, 2]) - 0.075) < 1e-9
    assert np.all(on_side | on_cap)
