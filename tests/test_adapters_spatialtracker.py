"""SpatialTracker adapter (backends/spatialtracker_adapter.py): inputs in SpaTrackerPredictor's
format (video (1, T, 3, H, W) 0..255, video_depth (T, 1, H, W), queries (1, N, 3) (t, x, y)) and
its outputs (tracks (1, T, N, 3) [x, y, depth], visibility (1, T, N) bool) lifted to 3D."""
import numpy as np
import pytest
import torch

from dexman_perception.core.backends import spatialtracker_adapter as st

K = np.array([[500.0, 0, 320.0], [0, 400.0, 240.0], [0, 0, 1]])


def test_inputs():
    frames = [np.full((4, 6, 3), i, np.uint8) for i in range(3)]
    v = st.frames_to_video(frames)
    assert v.shape == (1, 3, 3, 4, 6) and v.dtype == np.float32 and v[0, 2, 1, 0, 0] == 2.0
    d = st.depths_to_video_depth([np.array([[np.nan, -1, 2]] * 4, np.float32)] * 3, 3, (4, 3))
    assert d.shape == (3, 1, 4, 3)
    np.testing.assert_array_equal(d[0, 0, 0], [0, 0, 2])
    with pytest.raises(ValueError):
        st.depths_to_video_depth([np.ones((4, 3))] * 2, 3, (4, 3))
    q = st.queries_to_spatracker(np.array([[0, 1.5, 2.0], [2, 5, 3]]), 3, (4, 6))
    assert q.shape == (1, 2, 3) and q.dtype == np.float32
    for bad in ([[3, 1, 1]], [[0.5, 1, 1]], [[0, 6, 1]], [[0, 1, -1]]):
        with pytest.raises(ValueError):
            st.queries_to_spatracker(np.array(bad, float), 3, (4, 6))


def test_tracks_lifted_to_camera_optical():
    tracks = torch.zeros(1, 2, 2, 3)
    tracks[0, 0, 0] = torch.tensor([420.0, 140.0, 2.0])
    tracks[0, 1, 0] = torch.tensor([320.0, 240.0, 1.0])
    tracks[0, :, 1] = torch.tensor([10.0, 20.0, 0.0])              # no depth there
    vis = torch.tensor([[[True, False], [True, True]]])
    pt = st.spatracker_to_point_tracks(tracks, vis, K)
    assert pt.positions_2d.shape == (2, 2, 2) and pt.visible.shape == (2, 2)
    assert pt.visible.dtype == bool and pt.visible.tolist() == [[True, False], [True, True]]
    # X = (420 - 320) * 2 / 500, Y = (140 - 240) * 2 / 400, Z = 2
    np.testing.assert_allclose(pt.positions_3d[0, 0], [0.4, -0.5, 2.0])
    np.testing.assert_allclose(pt.positions_3d[1, 0], [0.0, 0.0, 1.0])
    assert np.all(np.isnan(pt.positions_3d[:, 1]))
    np.testing.assert_allclose(pt.positions_2d[0, 0], [420, 140])
    with pytest.raises(ValueError):
        st.spatracker_to_point_tracks(tracks[0], vis, K)
