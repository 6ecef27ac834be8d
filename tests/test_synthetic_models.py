"""Unit tests of the synthetic generator's models (no rendering): hand, objects, camera, timeline."""
import numpy as np
import pytest

from dexman_synthetic.core import hand_model as hm
from dexman_synthetic.core.camera import backproject, intrinsics, look_at, project
from dexman_synthetic.core.degradations import DegradationConfig, Degrader
from dexman_synthetic.core.mesh_query import MeshQuery
from dexman_synthetic.core.objects import SHAPES, SIZE_CLASSES, make_object
from dexman_synthetic.core.timeline import Script
from dexman_synthetic.core.transforms import inv_T, make_rng, make_T, rot_z, stable_seed


def test_stable_seed_is_fixed():
    # a SHA-256 of the parts, never Python's salted hash(): the value is the same in every process
    assert stable_seed('dexman', 1) == 12485436162561092010
    assert make_rng('a', 1).random() == make_rng('a', 1).random()
    assert make_rng('a', 1).random() != make_rng('a', 2).random()


def _random_pose(rng):
    p = hm.make_pose(tuple(rng.uniform(0, 1.2, 3)), rng.uniform(-0.05, 0.1),
                     rng.normal(size=3), rng.normal(size=3), tuple(rng.uniform(0, 0.5, 3)))
    p.angles[:, 0] += rng.uniform(-0.1, 0.1, 5)
    return p


def test_hand_proportions_are_adult():
    h = hm.HandShape(1.0)
    kp = h.keypoints(hm.make_pose((0, 0, 0), 0.0), hm.RIGHT)
    assert 0.08 <= np.linalg.norm(kp[9] - kp[0]) <= 0.09            # palm: wrist -> middle MCP
    hand_length = np.linalg.norm(kp[12] - kp[0])
    assert 0.17 <= hand_length <= 0.20                               # wrist crease -> middle tip
    for f, (lo, hi) in zip(range(1, 5), [(0.030, 0.050)] * 4):
        seg = [np.linalg.norm(kp[4 * f + k + 1] - kp[4 * f + k]) for k in range(1, 4)]
        assert lo <= seg[0] <= hi and 0.018 <= seg[1] <= 0.032 and 0.017 <= seg[2] <= 0.026
        assert seg[0] > seg[1] > seg[2]


def test_left_hand_is_the_mirror_of_the_right():
    rng = np.random.default_rng(0)
    h = hm.HandShape(1.02)
    M = np.diag([-1.0, 1.0, 1.0])        # world mirror through the x = 0 plane
    S = np.diag([1.0, -1.0, 1.0])        # wrist-frame mirror
    for _ in range(5):
        pose = _random_pose(rng)
        R = rot_z(rng.uniform(-3, 3)) @ hm.thumb_base(rng.normal(size=3), rng.normal(size=3))
        T_r = make_T(R, rng.normal(size=3))
        T_l = make_T(M @ R @ S, M @ T_r[:3, 3])
        assert np.isclose(np.linalg.det(T_l[:3, :3]), 1.0)
        kr = hm.world_keypoints(h, pose, hm.RIGHT, T_r)
        kl = hm.world_keypoints(h, pose, hm.LEFT, T_l)
        np.testing.assert_allclose(kl, kr @ M.T, atol=1e-12)


@pytest.mark.parametrize('side', [hm.LEFT, hm.RIGHT])
def test_wrist_frame_matches_the_hand3d_definition(side):
    rng = np.random.default_rng(1)
    h = hm.HandShape(0.97)
    for _ in range(5):
        T = make_T(rot_z(rng.uniform(-3, 3)) @ hm.thumb_base(rng.normal(size=3), rng.normal(size=3)),
                   rng.normal(size=3))
        kp = hm.world_keypoints(h, _random_pose(rng), side, T)
        np.testing.assert_allclose(hm.wrist_frame_from_keypoints(kp, side), T, atol=1e-9)


@pytest.mark.parametrize('shape', SHAPES)
def test_objects_are_watertight_metric_and_rest_on_their_origin(shape):
    for size in SIZE_CLASSES:
        a = make_object(shape, size, np.random.default_rng(3))
        b = make_object(shape, size, np.random.default_rng(3))
        m = a.mesh
        assert m.is_watertight and m.volume > 0
        np.testing.assert_array_equal(m.vertices, b.mesh.vertices)
        assert abs(m.bounds[0][2]) < 1e-9                         # z up, resting on z = 0
        bottom = m.vertices[m.vertices[:, 2] < 1e-6]
        centre = 0.5 * (bottom.min(0) + bottom.max(0))
        assert np.all(np.abs(centre[:2]) < 2e-3), centre         # origin at the bottom-face centre
        assert 0.02 < max(m.extents) < 0.6                         # metres
    colours = {make_object(shape, 'hand', np.random.default_rng(s)).rgba for s in range(4)}
    assert len(colours) == 4


def test_mesh_query_is_exact_on_a_sphere():
    import trimesh
    m = trimesh.creation.icosphere(4, radius=0.05)
    q = MeshQuery.from_trimesh(m)
    p = np.random.default_rng(0).normal(size=(500, 3)) * 0.05
    ref = np.abs(np.linalg.norm(p, axis=1) - 0.05)
    assert np.abs(q.distance(p) - ref).max() < 2e-4               # tessellation error only
    true = ref[:50].min() - 0.002
    got = q.min_clearance(p[:50], 0.002, 0.01)
    assert (abs(got - true) < 2e-4) if true < 0.01 else got >= 0.01


def test_camera_model_round_trip_and_pixel_centre_convention():
    K = intrinsics(45.0, 160, 120)
    assert K[0, 2] == 79.5 and K[1, 2] == 59.5                      # pixel centres at integers
    assert np.isclose(K[1, 1], 60 / np.tan(np.deg2rad(22.5)))
    T = look_at((1.0, 2.0, 1.5), (0.0, 0.0, 0.8))
    R = T[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert abs(R[2, 0]) < 1e-12                                     # image x horizontal
    depth = np.full((120, 160), 1.7)
    P = backproject(K, depth)
    uv, z = project(K, np.eye(4), P)
    v, u = np.nonzero(depth > 0)
    np.testing.assert_allclose(uv, np.stack([u, v], 1), atol=1e-9)
    np.testing.assert_allclose(inv_T(inv_T(T)), T, atol=1e-12)


def test_script_rejects_objects_moving_unheld():
    s = Script()
    pose = hm.relaxed_pose()
    s.hand(0, 0, np.eye(4), pose)
    s.hand(1, 0, np.eye(4), pose)
    s.obj(0.0, np.eye(4))
    s.obj(1.0, make_T(None, (0, 0, 0.1)))
    with pytest.raises(ValueError, match='no hand holds it'):
        s.check()
    s.attach(1, 0.0, 1.0, np.eye(4), pose, np.ones(5, bool))
    s.check()


def test_relative_depth_chunks_cover_and_overlap():
    cfg = DegradationConfig(relative_chunk=16, relative_overlap=4)
    d = Degrader(cfg, 105, np.random.default_rng(0))
    chunks = d.record['relative_depth']['chunks']
    assert chunks[0]['start'] == 0 and chunks[-1]['end'] == 105
    for a, b in zip(chunks[:-1], chunks[1:]):
        assert a['end'] - b['start'] == 4                          # consecutive chunks share 4 frames
    for k, c in enumerate(d.chunk_of):
        assert chunks[c]['start'] <= k < chunks[c]['end']
        assert all(ch['start'] > k for ch in chunks[c + 1:])        # the last chunk starting at or before k
    with pytest.raises(ValueError):
        DegradationConfig(relative_chunk=4, relative_overlap=4).validate()
