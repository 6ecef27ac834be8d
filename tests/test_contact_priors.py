"""Contact priors (paper 3.4) on a hand-made scene: two 0.1 m cubes at known poses, keypoints placed at
hand-computed distances from known cube corners."""
import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from dexman_retarget.core.contact_priors import (
    CONTACT_KEYPOINTS, LEFT, RIGHT, compute_contact_priors, evaluate_contacts, keypoint_thresholds)

FAR = np.array([5.0, 5.0, 5.0])   # keypoints not under test, metres away from every object


def _pose(rotvec, p):
    T = np.eye(4)
    T[:3, :3] = Rotation.from_rotvec(rotvec).as_matrix()
    T[:3, 3] = p
    return T


CUBE = trimesh.creation.box(extents=(0.1, 0.1, 0.1))       # corners at (+-0.05, +-0.05, +-0.05)
POSES = [_pose([0.0, 0.0, np.deg2rad(30.0)], [0.30, 0.20, 0.10]),
         _pose([0.3, -0.2, 0.5], [-0.40, 0.25, 0.15])]


def _corner(sign):
    """Index of the cube vertex at sign * 0.05 (object frame)."""
    target = 0.05 * np.asarray(sign, float)
    idx = int(np.argmin(np.linalg.norm(CUBE.vertices - target, axis=1)))
    assert np.allclose(CUBE.vertices[idx], target)
    return idx


def _near_corner(o, sign, d):
    """World point at distance d (m) from corner `sign` of object o, outward along the diagonal: the
    nearest vertex is that corner (the others are > 0.1 m away)."""
    s = np.asarray(sign, float)
    local = 0.05 * s + d * s / np.linalg.norm(s)
    return POSES[o][:3, :3] @ local + POSES[o][:3, 3]


def _scene():
    T = 2
    kp = np.tile(FAR, (2, T, 21, 1))
    present = np.array([[False, False], [True, True]])        # left absent, right present
    # frame 0, right hand: the four threshold cases on object 0, one tip on object 1
    kp[RIGHT, 0, 4] = _near_corner(0, (1, 1, 1), 0.029)       # tip, 0.029 <= 0.03  -> contact
    kp[RIGHT, 0, 8] = _near_corner(0, (-1, 1, 1), 0.031)      # tip, 0.031 >  0.03  -> none
    kp[RIGHT, 0, 5] = _near_corner(0, (1, -1, 1), 0.049)      # MCP, 0.049 <= 0.05  -> contact
    kp[RIGHT, 0, 9] = _near_corner(0, (-1, -1, 1), 0.051)     # MCP, 0.051 >  0.05  -> none
    kp[RIGHT, 0, 12] = _near_corner(1, (1, 1, -1), 0.020)     # tip on object 1      -> contact
    kp[RIGHT, 0, 0] = _near_corner(0, (1, 1, -1), 0.001)      # wrist: not in J      -> ignored
    # frame 1: the left hand sits on a corner but is absent; the right hand's keypoints are NaN
    kp[LEFT, 1, :] = _near_corner(0, (1, 1, 1), 0.0)
    kp[RIGHT, 1, :] = np.nan
    poses = np.stack([np.stack([P, P]) for P in POSES])         # (O=2, T=2, 4, 4), static objects
    return kp, present, poses


def test_thresholds_and_keypoint_order():
    assert CONTACT_KEYPOINTS == (4, 8, 12, 16, 20, 5, 9, 13, 17)
    assert np.allclose(keypoint_thresholds(), [0.03] * 5 + [0.05] * 4)


def test_hand_made_contacts():
    kp, present, poses = _scene()
    cp = compute_contact_priors(kp, present, [CUBE, CUBE], poses, object_ids=['a', 'b'])
    assert cp.in_contact.shape == (2, 2, 9, 2)
    k = {j: CONTACT_KEYPOINTS.index(j) for j in CONTACT_KEYPOINTS}

    assert cp.contact_set() == {(RIGHT, 0, 4, 0), (RIGHT, 0, 5, 0), (RIGHT, 0, 12, 1)}
    for j, o, sign, d in [(4, 0, (1, 1, 1), 0.029), (8, 0, (-1, 1, 1), 0.031), (5, 0, (1, -1, 1), 0.049),
                          (9, 0, (-1, -1, 1), 0.051), (12, 1, (1, 1, -1), 0.020)]:
        assert cp.vertex_index[RIGHT, 0, k[j], o] == _corner(sign)
        assert np.allclose(cp.vertex_object[RIGHT, 0, k[j], o], 0.05 * np.asarray(sign))
        assert cp.distance[RIGHT, 0, k[j], o] == pytest.approx(d, abs=1e-9)
    # the tip on object 1 is far from object 0
    assert not cp.in_contact[RIGHT, 0, k[12], 0]

    pairs = cp.pairs(0)
    assert [(p.hand, p.keypoint, p.obj) for p in pairs] == [(RIGHT, 4, 0), (RIGHT, 12, 1), (RIGHT, 5, 0)]
    assert pairs[0].distance == pytest.approx(0.029, abs=1e-9)
    assert cp.pairs(0, hand=LEFT) == []
    assert [len(p) for p in cp.pairs_per_frame()] == [3, 0]

    # nearest vertices back in world through the object poses
    vw = cp.vertex_world(poses)
    expect = POSES[0][:3, :3] @ (0.05 * np.ones(3)) + POSES[0][:3, 3]
    assert np.allclose(vw[RIGHT, 0, k[4], 0], expect)


def test_absent_or_invalid_hand_gives_no_contact():
    kp, present, poses = _scene()
    cp = compute_contact_priors(kp, present, [CUBE, CUBE], poses)
    assert not cp.in_contact[LEFT].any()          # absent although its keypoints touch a corner
    assert not cp.in_contact[:, 1].any()          # frame 1: absent left, NaN right
    assert np.all(cp.vertex_index[LEFT] == -1) and np.all(np.isinf(cp.distance[LEFT]))
    # the same left hand marked present is in contact with object 0 (distance 0 for every J keypoint)
    present2 = present.copy()
    present2[LEFT, 1] = True
    cp2 = compute_contact_priors(kp, present2, [CUBE, CUBE], poses)
    assert cp2.in_contact[LEFT, 1, :, 0].all() and not cp2.in_contact[LEFT, 1, :, 1].any()
    # an invalid object pose gives no contact either
    poses3 = poses.copy()
    poses3[0, 0] = np.nan
    cp3 = compute_contact_priors(kp, present, [CUBE, CUBE], poses3)
    assert cp3.contact_set() == {(RIGHT, 0, 12, 1)}


def test_precision_recall():
    kp, present, poses = _scene()
    cp = compute_contact_priors(kp, present, [CUBE, CUBE], poses)
    ref = {(RIGHT, 0, 4, 0), (RIGHT, 0, 12, 1), (RIGHT, 0, 16, 0)}    # 2 hits, 1 miss; (R,0,5,0) is a FP
    m = cp.evaluate(ref)
    assert (m.tp, m.fp, m.fn) == (2, 1, 1)
    assert m.precision == pytest.approx(2 / 3) and m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 / 3)
    # the same with a boolean reference array
    ref_arr = np.zeros_like(cp.in_contact)
    for h, t, j, o in ref:
        ref_arr[h, t, CONTACT_KEYPOINTS.index(j), o] = True
    m2 = cp.evaluate(ref_arr)
    assert (m2.tp, m2.fp, m2.fn) == (2, 1, 1)
    assert evaluate_contacts(cp.contact_set(), cp.contact_set()).precision == 1.0
    empty = evaluate_contacts([], [])
    assert empty.precision == 1.0 and empty.recall == 1.0


def test_densify_option():
    """A tip 0.02 m above the middle of the cube's top face: the raw corners are ~0.099 m away (the
    paper's literal rule sees no contact); densified vertices (edges <= 1 cm) see one at ~0.02 m."""
    kp = np.tile(FAR, (2, 1, 21, 1))
    kp[RIGHT, 0, 8] = POSES[0][:3, :3] @ np.array([0.0, 0.0, 0.07]) + POSES[0][:3, 3]
    present = np.array([[False], [True]])
    poses = np.stack([P[None] for P in POSES])
    raw = compute_contact_priors(kp, present, [CUBE, CUBE], poses)
    k8 = CONTACT_KEYPOINTS.index(8)
    assert raw.distance[RIGHT, 0, k8, 0] == pytest.approx(np.sqrt(0.05**2 + 0.05**2 + 0.02**2), abs=1e-9)
    assert not raw.in_contact.any()
    dense = compute_contact_priors(kp, present, [CUBE, CUBE], poses, densify_max_edge=0.01)
    assert dense.in_contact[RIGHT, 0, k8, 0]
    assert dense.distance[RIGHT, 0, k8, 0] == pytest.approx(0.02, abs=1e-6)
    assert len(dense.object_vertices[0]) > 8
    assert np.allclose(dense.object_vertices[0][dense.vertex_index[RIGHT, 0, k8, 0]], [0.0, 0.0, 0.05])


def test_shape_errors():
    kp, present, poses = _scene()
    with pytest.raises(ValueError):
        compute_contact_priors(kp[:, :, :20], present, [CUBE, CUBE], poses)
    with pytest.raises(ValueError):
        compute_contact_priors(kp, present, [CUBE], poses)
