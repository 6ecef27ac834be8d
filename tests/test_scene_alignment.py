"""Camera -> simulator alignment from the table and the hips (B.4): dexman_perception.core.scene_alignment."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from dexman_perception.core import scene_alignment as sa

PITCH = np.deg2rad(30.0)
CAM_POS = np.array([0.0, 0.0, 1.4])          # "true" world (z up), camera 1.4 m above the floor
TABLE_Z = 0.75
HUMAN_PELVIS = np.array([0.0, 1.2, 0.95])    # across the table, facing the camera (world -y)
HIPS = (np.array([0.1, 1.2, 0.95]), np.array([-0.1, 1.2, 0.95]))   # left, right: right hip at -x


def R_x(a):
    return Rotation.from_rotvec([a, 0, 0]).as_matrix()


def camera_rotation(pitch=PITCH, yaw=0.0):
    """R_world_camera for an optical camera looking along world +y, pitched down, then yawed."""
    s, c = np.sin(pitch), np.cos(pitch)
    R = np.array([[1, 0, 0], [0, -s, c], [0, -c, -s]], float)     # columns: camera x, y, z in world
    return Rotation.from_rotvec([0, 0, yaw]).as_matrix() @ R


def to_camera(Pw, R_wc):
    return (np.atleast_2d(Pw) - CAM_POS) @ R_wc           # = R_wcᵀ (p − c)


def table_world(n=400, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    P = np.c_[rng.uniform(-0.5, 0.5, n), rng.uniform(0.4, 1.1, n), np.full(n, TABLE_Z)]
    return P + rng.normal(0, noise, P.shape) if noise else P


def test_tilted_table_gives_the_exact_gravity_rotation():
    R_wc = camera_rotation()
    table = to_camera(table_world(), R_wc)
    R_g, plane = sa.gravity_rotation(table)
    # table normal in the camera: up = (0, -cos p, -sin p); the minimal rotation onto +z is about
    # camera x by -(90 deg + pitch)
    np.testing.assert_allclose(plane.normal, [0, -np.cos(PITCH), -np.sin(PITCH)], atol=1e-12)
    np.testing.assert_allclose(R_g, R_x(-(np.pi / 2 + PITCH)), atol=1e-12)
    assert plane.rms_distance < 1e-12
    # SVD's sign is arbitrary: the normal is oriented towards the viewpoint (default the camera)
    below = sa.fit_plane_svd(table, viewpoint=plane.centroid - plane.normal)
    np.testing.assert_allclose(below.normal, -plane.normal, atol=1e-12)
    assert plane.normal @ -plane.centroid > 0


def test_noisy_yawed_table_maps_world_up_to_z():
    R_wc = camera_rotation(pitch=np.deg2rad(50), yaw=np.deg2rad(40))
    R_g, plane = sa.gravity_rotation(to_camera(table_world(noise=0.003, seed=1), R_wc))
    up_after = R_g @ R_wc.T @ [0, 0, 1]          # true world up, through camera, through R_g
    assert np.degrees(np.arccos(np.clip(up_after[2], -1, 1))) < 0.5
    assert plane.rms_distance == pytest.approx(0.003, rel=0.15)


def test_hips_give_the_facing_rotation():
    R_wc = camera_rotation(yaw=np.deg2rad(25))
    R_g, _ = sa.gravity_rotation(to_camera(table_world(), R_wc))
    l, r = (to_camera(h, R_wc)[0] for h in HIPS)
    R_f, theta = sa.facing_rotation(l, r, R_g)
    # the yaw does not change the table normal in the camera, so R_g is the pitch alone and
    # R_g R_wcᵀ = R_z(-25 deg): right - left = (-0.2, 0, 0) in the world has heading 180 - 25 deg
    np.testing.assert_allclose(R_g, R_x(-(np.pi / 2 + PITCH)), atol=1e-12)
    assert theta == pytest.approx(np.pi - np.deg2rad(25), abs=1e-12)
    np.testing.assert_allclose(R_f, sa.rot_z(np.deg2rad(25) - np.pi), atol=1e-12)
    h = R_f @ R_g @ (r - l)
    np.testing.assert_allclose(h / np.linalg.norm(h), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(R_f[2], [0, 0, 1], atol=1e-12)        # a rotation about z only


def test_full_alignment_places_human_on_robot_pelvis():
    R_wc = camera_rotation(yaw=np.deg2rad(-15))
    l, r = (to_camera(h, R_wc)[0] for h in HIPS)
    obj_w = np.array([0.0, 0.9, TABLE_Z])                             # 0.3 m in front of the human
    res = sa.align_scene(to_camera(table_world(), R_wc), l, r, to_camera(HUMAN_PELVIS, R_wc)[0],
                         entity_points_camera=to_camera(obj_w, R_wc))
    robot = np.array(sa.ROBOT_PELVIS_DEFAULT)
    np.testing.assert_allclose(res.pelvis_world, robot, atol=1e-12)
    # the human faced -y; in the simulator the object is 0.3 m in front (+y), 0.2 m below the pelvis
    np.testing.assert_allclose(sa.transform_points(res.T_world_camera, to_camera(obj_w, R_wc))[0],
                               robot + [0, 0.3, TABLE_Z - 0.95], atol=1e-12)
    assert res.y_shift == 0.0 and res.reach_fits and res.n_out_of_reach_before == 0
    assert res.table_height == pytest.approx(robot[2] + TABLE_Z - 0.95, abs=1e-12)
    # the same transform moves the table cloud onto a horizontal plane and object poses consistently
    tw = sa.transform_points(res.T_world_camera, to_camera(table_world(seed=3), R_wc))
    np.testing.assert_allclose(tw[:, 2], res.table_height, atol=1e-12)
    T_co = np.eye(4)
    T_co[:3, :3] = R_wc.T                                            # object axes = true world axes
    T_co[:3, 3] = to_camera(obj_w, R_wc)[0]
    T_wo = sa.transform_poses(res.T_world_camera, T_co)
    np.testing.assert_allclose(T_wo[:3, 2], [0, 0, 1], atol=1e-12)   # object z stays up
    np.testing.assert_allclose(T_wo[:3, 0], [-1, 0, 0], atol=1e-12)  # turned 180 deg with the human


@pytest.mark.parametrize('ahead, expected_shift', [(0.9, -0.3), (0.05, 0.10), (0.4, 0.0)])
def test_out_of_reach_entities_shift_along_y(ahead, expected_shift):
    R_wc = camera_rotation()
    l, r = (to_camera(h, R_wc)[0] for h in HIPS)
    obj_w = np.array([[0.1, 1.2 - ahead, TABLE_Z], [-0.1, 1.2 - ahead, TABLE_Z + 0.1]])
    res = sa.align_scene(to_camera(table_world(), R_wc), l, r, to_camera(HUMAN_PELVIS, R_wc)[0],
                         entity_points_camera=to_camera(obj_w, R_wc),
                         reach=sa.ReachBox(y=(0.15, 0.6)))
    assert res.y_shift == pytest.approx(expected_shift, abs=1e-12)
    assert res.reach_fits and res.n_out_of_reach_after == 0
    assert res.n_out_of_reach_before == (0 if expected_shift == 0 else 2)
    np.testing.assert_allclose(res.T_world_camera[:3, 3], res.translation + [0, expected_shift, 0])
    ys = sa.transform_points(res.T_world_camera, to_camera(obj_w, R_wc))[:, 1]
    np.testing.assert_allclose(ys, ahead + expected_shift, atol=1e-12)


def test_y_shift_edge_cases():
    box = sa.ReachBox(x=(-0.5, 0.5), y=(0.15, 0.6))
    # spread 0.9 m along y > the 0.45 m box: allowed dy in [0.15, -0.3] is empty -> the midpoint
    dy, fits, note = sa.y_shift_into_reach(np.array([[0, 0.0, 1], [0, 0.9, 1]]), box)
    assert dy == pytest.approx(-0.075) and not fits and 'centred' in note
    dy, fits, note = sa.y_shift_into_reach(np.array([[0.9, 0.3, 1], [0, 0.8, 1]]), box)
    assert dy == pytest.approx(-0.2) and not fits and 'x/z' in note
    # a ball of radius 0.6 around (0, 0.2, 1): the point (0, 1.0, 1) needs dy in [-1.4, -0.2]
    ball = sa.ReachSphere(center=(0, 0.2, 1.0), radius=0.6)
    dy, fits, _ = sa.y_shift_into_reach(np.array([[0, 1.0, 1.0]]), ball)
    assert dy == pytest.approx(-0.2) and fits
    # off-axis: rho = 0.36 -> half chord sqrt(0.36 - 0.1296) = 0.48 -> dy in [-1.18, -0.22]
    dy, fits, _ = sa.y_shift_into_reach(np.array([[0.36, 0.9, 1.0]]), ball)
    assert dy == pytest.approx(-0.22) and fits
    dy, fits, note = sa.y_shift_into_reach(np.array([[0.7, 0.9, 1.0]]), ball)    # rho > radius
    assert dy == 0.0 and not fits and 'x/z' in note


def test_rotation_between_opposite_vectors_and_errors():
    for a in ([0, 0, -1], [1, 0, 0], [-1, 0, 0], [0.3, -0.2, 0.9]):
        for b in ([0, 0, 1], -np.asarray(a, float)):
            R = sa.rotation_between_vectors(np.asarray(a, float), np.asarray(b, float))
            assert np.linalg.det(R) == pytest.approx(1.0)
            np.testing.assert_allclose(R @ a / np.linalg.norm(a), np.asarray(b) / np.linalg.norm(b),
                                       atol=1e-12)
    with pytest.raises(sa.SceneAlignmentError, match='collinear'):
        sa.gravity_rotation(np.c_[np.linspace(0, 1, 10), np.zeros(10), np.ones(10)])
    with pytest.raises(sa.SceneAlignmentError, match='horizontal'):
        sa.facing_rotation([0, 0, 1], [0, 0, 2], np.eye(3))
