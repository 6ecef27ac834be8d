"""StampSync: exact-stamp joins of per-frame inputs, in order, with missing-input rules."""
import pytest

from dexman_perception.core.stamp_sync import StampSync


def test_releases_in_order_when_all_inputs_arrived():
    s = StampSync(['image', 'depth'], ['hands'])
    assert s.put('image', 10, 'i10') == []
    assert s.put('depth', 10, 'd10') == []          # hands may still come
    assert s.put('image', 20, 'i20') == []
    out = s.put('hands', 10, 'h10')
    assert out == [(10, {'image': 'i10', 'depth': 'd10', 'hands': 'h10'}, [])]
    assert s.pending == 1


def test_input_past_a_frame_means_it_will_not_come():
    s = StampSync(['image', 'depth'])
    s.put('image', 10, 'i10')
    s.put('image', 20, 'i20')
    # depth for 10 was dropped: depth 20 arrives, frame 10 goes out without depth, 20 complete
    out = s.put('depth', 20, 'd20')
    assert [(st, miss) for st, _, miss in out] == [(10, ['depth']), (20, [])]


def test_absent_producer_releases_frames_without_it():
    s = StampSync(['image'], ['depth'])
    s.put('image', 1, 'a')
    s.put('image', 2, 'b')
    assert s.pending == 2
    out = s.set_absent('depth')
    assert [(st, miss) for st, _, miss in out] == [(1, ['depth']), (2, ['depth'])]
    assert s.put('image', 3, 'c') == [(3, {'image': 'c'}, ['depth'])]


def test_frame_without_primary_is_dropped_and_late_messages_ignored():
    s = StampSync(['image', 'depth'])
    s.put('depth', 5, 'd5')
    out = s.put('image', 6, 'i6')     # image past 5: frame 5 has no image -> dropped
    assert out == [] and s.dropped == 1
    out = s.put('depth', 6, 'd6')
    assert [st for st, _, _ in out] == [6]
    assert s.put('image', 6, 'again') == [] and s.late == 1


def test_max_pending_bounds_memory_and_flush_empties():
    s = StampSync(['image', 'depth'], max_pending=3)
    for t in range(4):
        out = s.put('image', t, t)
    assert [(st, miss) for st, _, miss in out] == [(0, ['depth'])]
    assert [st for st, _, _ in s.flush()] == [1, 2, 3]
    assert s.pending == 0


def test_bad_names():
    with pytest.raises(ValueError):
        StampSync([])
    with pytest.raises(ValueError):
        StampSync(['a', 'a'])
    with pytest.raises(KeyError):
        StampSync(['a']).put('b', 1, None)
