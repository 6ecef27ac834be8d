"""core.demo_assembly: per-frame perception records -> world-frame Demonstration, against
hand-computed transforms; every frame kept, gaps marked invalid; clear reasons when none can be made."""
import json

import numpy as np
import pytest
import trimesh

from dexman_common.artefacts import demonstration as dm
from dexman_perception.core.demo_assembly import (STATUS_LOST, STATUS_PREDICTED, STATUS_TRACKING,
                                                  DemoAssembly, ObjectObservation, fps_from_stamps,
                                                  stage_entry, tracked_pose_valid)

# camera z (forward) -> world +y, camera y (down) -> world -z, camera x -> world x; then t
R_WC = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
T_WC = np.eye(4)
T_WC[:3, :3], T_WC[:3, 3] = R_WC, [0.1, -0.2, 1.0]
K = np.array([[100.0, 0, 79.5], [0, 100, 59.5], [0, 0, 1]])
MS = 1_000_000
STAMPS = [1_000 * MS, 1_100 * MS, 1_200 * MS, 1_400 * MS]      # 10 Hz, one frame dropped in the bag


def T_trans(x, y, z):
    T = np.eye(4)
    T[:3, 3] = [x, y, z]
    return T


def hands(right_point=None):
    kp = np.zeros((2, 21, 3))
    valid = np.array([False, right_point is not None])
    if right_point is not None:
        kp[1] = right_point
    wr = np.tile(np.eye(4), (2, 1, 1))
    wr[1] = T_trans(*(right_point if right_point is not None else (0, 0, 0)))
    return kp, valid, wr


def filled(with_scene=True, with_mesh=True, obj_status=STATUS_TRACKING):
    a = DemoAssembly()
    for s in STAMPS:
        a.add_frame(s)
    a.set_intrinsics(K)
    if with_scene:
        a.set_scene(T_WC, [0.0, 0.5, 0.75], [0.0, 0.0, 2.0])
    if with_mesh:
        a.set_mesh('object_0', trimesh.creation.box(extents=(0.05, 0.05, 0.1)), label='box')
    # frame 0: right hand at camera (0.2, 0.3, 0.5); object 0.5 m ahead of the camera
    a.add_hands(STAMPS[0], *hands((0.2, 0.3, 0.5)))
    a.add_objects(STAMPS[0], [ObjectObservation('object_0', T_trans(0, 0, 0.5),
                                                tracked_pose_valid(obj_status, 0.9), status=obj_status)])
    # frame 1: no hand found (message present, invalid); object lost
    a.add_hands(STAMPS[1], *hands(None))
    a.add_objects(STAMPS[1], [ObjectObservation('object_0', T_trans(0, 0, 0.5), False, status=STATUS_LOST)])
    # frame 2: nothing arrived from either stage; frame 3: object only
    a.add_objects(STAMPS[3], [ObjectObservation('object_0', T_trans(0.1, 0, 0.6),
                                                tracked_pose_valid(obj_status, 0.9), status=obj_status)])
    return a


def test_world_transform_matches_hand_computation():
    demo, meshes = filled().build('d1', source_uri='/bags/b1')
    assert demo.n_frames == 4 and demo.stamps_ns.tolist() == STAMPS
    assert demo.fps == pytest.approx(10.0)                 # median dt, not the mean
    # right hand keypoint (0.2, 0.3, 0.5) camera -> (0.2 + 0.1, 0.5 - 0.2, -0.3 + 1.0) world
    assert demo.hand_keypoints[1, 0, 7] == pytest.approx([0.3, 0.3, 0.7])
    assert demo.wrist_poses[1, 0][:3, 3] == pytest.approx([0.3, 0.3, 0.7])
    assert demo.wrist_poses[1, 0][:3, :3] == pytest.approx(R_WC)
    # object at camera (0, 0, 0.5) -> world (0.1, 0.3, 1.0), orientation R_WC
    assert demo.object_poses[0, 0][:3, 3] == pytest.approx([0.1, 0.3, 1.0])
    assert demo.object_poses[0, 0][:3, :3] == pytest.approx(R_WC)
    assert demo.object_poses[0, 3][:3, 3] == pytest.approx([0.2, 0.4, 1.0])
    # every frame is kept; gaps are invalid and NaN
    assert demo.hand_valid.tolist() == [[False] * 4, [True, False, False, False]]
    assert demo.object_valid.tolist() == [[True, False, False, True]]
    assert np.isnan(demo.hand_keypoints[1, 1:]).all() and np.isnan(demo.object_poses[0, 1]).all()
    assert demo.table_normal == pytest.approx([0, 0, 1]) and demo.K == pytest.approx(K)
    assert demo.T_world_camera == pytest.approx(T_WC)
    assert [o.id for o in demo.objects] == ['object_0'] and demo.objects[0].label == 'box'
    assert demo.provenance['invalid_frames'] == {'hands': {'left': 4, 'right': 3},
                                                 'objects': {'object_0': 2}}
    assert set(meshes) == {'object_0'}


def test_saved_artefact_round_trip(tmp_path):
    demo, meshes = filled().build('d2')
    back = dm.load(dm.save(demo, tmp_path, meshes))
    assert back.n_frames == 4 and back.object_valid.tolist() == [[True, False, False, True]]
    assert back.hand_keypoints[1, 0, 0] == pytest.approx([0.3, 0.3, 0.7])
    assert back.load_mesh('object_0').extents == pytest.approx([0.05, 0.05, 0.1])


def test_world_frame_inputs_are_not_transformed_again():
    a = filled()
    a.add_objects(STAMPS[2], [ObjectObservation('object_0', T_trans(1, 2, 3), True)], in_world=True)
    demo, _ = a.build('d3')
    assert demo.object_valid[0, 2] and demo.object_poses[0, 2][:3, 3] == pytest.approx([1, 2, 3])


def test_tracked_status_rule():
    assert tracked_pose_valid(STATUS_TRACKING, 0.0)
    assert tracked_pose_valid(STATUS_PREDICTED, 0.3)
    assert not tracked_pose_valid(STATUS_PREDICTED, 0.0)
    assert not tracked_pose_valid(STATUS_PREDICTED, 0.3, accept_predicted=False)
    assert not tracked_pose_valid(STATUS_LOST, 1.0)
    bad = np.eye(4)
    bad[0, 3] = np.nan
    assert not tracked_pose_valid(STATUS_TRACKING, 1.0, bad)


def test_fps_and_summary():
    assert fps_from_stamps([0, 33_333_333, 66_666_667, 100_000_000]) == pytest.approx(30.0, rel=1e-6)
    s = filled().summary()
    json.dumps(s)
    assert s['frames'] == 4 and s['frames_without_hands_message'] == 2
    assert s['frames_without_objects_message'] == 1
    assert s['hand_frames_valid'] == {'left': 0, 'right': 1}
    assert s['objects']['object_0']['frames_valid'] == 2
    assert s['objects']['object_0']['status_counts'] == {'tracking': 2, 'predicted': 0, 'lost': 1}
    e = stage_entry(stage='tracking', state='DONE', frames_out=4, frames_invalid=1)
    assert e['invalid_rate'] == 0.25


@pytest.mark.parametrize('make, reason', [
    (lambda: filled(with_scene=False), 'no scene alignment'),
    (lambda: filled(obj_status=STATUS_LOST), 'never tracked'),
    (lambda: filled(with_mesh=False), 'no mesh was received'),
    (lambda: DemoAssembly(), 'no frames'),
])
def test_reasons_when_no_demonstration_can_be_made(make, reason):
    with pytest.raises(dm.DemonstrationError, match=reason):
        make().build('x')


def test_no_hands_is_an_error_unless_allowed():
    a = filled()
    a.add_hands(STAMPS[0], *hands(None))                   # replaces the only valid hand
    with pytest.raises(dm.DemonstrationError, match='no valid hand'):
        a.build('x')
    demo, _ = a.build('x', require_hands=False)
    assert not demo.hand_valid.any()


def test_objects_without_mesh_or_pose_are_dropped_with_reason():
    a = filled()
    a.add_objects(STAMPS[3], [ObjectObservation('object_0', T_trans(0.1, 0, 0.6), True),
                              ObjectObservation('object_1', T_trans(0, 0, 1), True)])
    a.set_mesh('object_2', trimesh.creation.box(), label='cup')
    demo, meshes = a.build('d4')
    assert [o.id for o in demo.objects] == ['object_0'] and set(meshes) == {'object_0'}
    dropped = demo.provenance['dropped_objects']
    assert 'no mesh' in dropped['object_1'] and 'no pose was received' in dropped['object_2']


def test_bad_inputs_raise_value_error():
    a = DemoAssembly()
    with pytest.raises(ValueError, match='keypoints'):
        a.add_hands(0, np.zeros((21, 3)), [True], np.eye(4))
    with pytest.raises(ValueError, match='rigid'):
        a.set_scene(np.diag([2.0, 1, 1, 1]), [0, 0, 0], [0, 0, 1])
    with pytest.raises(ValueError, match='intrinsics'):
        a.set_intrinsics(np.zeros((3, 3)))
    with pytest.raises(ValueError, match='bad demonstration id'):
        filled().build('a/b')


def test_mesh_gets_the_trackers_scale():
    a = filled()
    a.set_mesh('object_0', trimesh.creation.box(extents=(1.0, 1.0, 2.0)), label='box', metric=False)
    a.add_objects(STAMPS[3], [ObjectObservation('object_0', T_trans(0.1, 0, 0.6), True, scale=0.05)])
    demo, meshes = a.build('d5')
    assert meshes['object_0'].extents == pytest.approx([0.05, 0.05, 0.1])
    assert demo.provenance['mesh_scales'] == {'object_0': 0.05}
    assert 'non_metric_meshes' not in demo.provenance
