"""Per-frame training tensors of a reference artefact (dexman_rl.core.reference_data) on a small
retargeted pick-and-place, and its handling of bad input (NaN, unreachable frames, missing mesh,
an object sunk into the table, a tilted table)."""
import shutil

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

mujoco = pytest.importorskip('mujoco')
pytest.importorskip('torch')

from dexman_common.artefacts import reference as refm  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402
from dexman_retarget.core.hand_keypoints import CONTACT_IDS  # noqa: E402
from dexman_rl.core import reference_data as rd  # noqa: E402

_OK, _WHY = rm.assets_available()
pytestmark = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')


@pytest.fixture(scope='module')
def ref_dir():
    from rl_reference import reference_dir
    return reference_dir()


@pytest.fixture()
def ref(ref_dir):
    return refm.load(ref_dir)


def test_tensors_follow_the_artefact(ref):
    d = rd.prepare(ref)
    T, O = ref.n_frames, len(ref.objects)
    assert d.arm_q.shape == (T, 2, 7) and d.hand_q.shape == (T, 2, 22) and d.finger_q.shape == (T, 2, 18)
    np.testing.assert_array_equal(d.arm_q[:, 1], ref.positions_of(rm.arm_joints('right')))
    np.testing.assert_array_equal(d.finger_q[:, 0], ref.positions_of(rm.hand_actuated_joints('left')))
    np.testing.assert_array_equal(d.hand_active, ref.ik_has_target.T)
    # object targets: no repair needed on this reference
    np.testing.assert_array_equal(d.object_pose, np.transpose(ref.object_poses, (1, 0, 2, 3)))
    R = Rotation.from_quat(d.object_quat.reshape(-1, 4), scalar_first=True).as_matrix().reshape(T, O, 3, 3)
    np.testing.assert_allclose(R, d.object_pose[..., :3, :3], atol=1e-12)
    # the dense prior holds every (frame, hand, keypoint, object) row of the sparse one
    rows = {(int(f), int(h), CONTACT_IDS.index(int(k)), int(o))
            for f, h, k, o in zip(ref.contact_frame, ref.contact_hand, ref.contact_keypoint, ref.contact_object)}
    assert len(rows) > 20 and int(d.prior_mask.sum()) == len(rows)
    assert {tuple(int(i) for i in x) for x in np.argwhere(d.prior_mask)} == rows
    c = 0
    f, h, k, o = int(ref.contact_frame[c]), int(ref.contact_hand[c]), CONTACT_IDS.index(int(ref.contact_keypoint[c])), 0
    np.testing.assert_allclose(d.prior_vertex[f, h, k, o], ref.contact_vertex_object[c])
    assert np.all(d.prior_vertex[~d.prior_mask] == 0)
    # resting height: the settled placement (the object origin on its bottom face, on the table)
    np.testing.assert_allclose(d.rest_z, ref.object_settled_poses[:, 2, 3])
    assert abs(d.table_z - ref.table_point[2]) < 1e-12


def test_unreachable_frames_warn_or_refuse(ref):
    ref.ik_reachable[1, :] = True
    ref.ik_reachable[1, 3:6] = False
    d = rd.prepare(ref)
    assert d.unreachable[3:6, 1].all() and d.unreachable.sum() == 3
    assert any('right wrist unreachable on 3/' in w for w in d.warnings)
    ref.ik_reachable[1, :] = False
    with pytest.raises(rd.ReferenceDataError, match='right wrist target is unreachable'):
        rd.prepare(ref, max_unreachable_fraction=0.5)


def test_nan_in_the_reference_is_an_error(ref):
    ref.joint_positions[4, 10] = np.nan
    with pytest.raises(rd.ReferenceDataError, match='joint_positions has non-finite'):
        rd.prepare(ref)


def test_missing_mesh_is_an_error(ref_dir, tmp_path):
    bad = tmp_path / 'ref'
    shutil.copytree(ref_dir, bad)
    for p in (bad / 'meshes').iterdir():
        p.unlink()
    with pytest.raises(rd.ReferenceDataError, match='mesh .* is missing'):
        rd.load(bad)


def test_object_sunk_into_the_table_is_lifted(ref):
    ref.object_poses[0, 10:13, 2, 3] -= 0.05
    d = rd.prepare(ref)
    assert any('3/' in w and 'into the table' in w for w in d.warnings)
    mesh = d.meshes[ref.objects[0].id]
    for t in (10, 11, 12, 20):
        low = (mesh.vertices @ d.object_pose[t, 0, :3, :3].T + d.object_pose[t, 0, :3, 3])[:, 2].min()
        assert low > d.table_z - 1e-3


def test_tilted_table_is_an_error(ref):
    ref.table_normal[:] = [0.0, np.sin(0.2), np.cos(0.2)]
    with pytest.raises(rd.ReferenceDataError, match='deg from \\+z'):
        rd.prepare(ref)
