"""dexman_common.stamps (ROS time <-> ns) and dexman_common.report (index ranges, summary stats)."""
import types

import numpy as np
import pytest

from dexman_common.report import format_index_ranges, summary_stats
from dexman_common.stamps import ns_to_sec_nanosec, seconds_to_ns, stamp_ns, time_to_ns


def test_stamp_conversions_by_hand():
    t = types.SimpleNamespace(sec=1_700_000_000, nanosec=5)
    assert time_to_ns(t) == 1_700_000_000_000_000_005
    assert stamp_ns(types.SimpleNamespace(stamp=t)) == 1_700_000_000_000_000_005
    assert ns_to_sec_nanosec(1_700_000_000_000_000_005) == (1_700_000_000, 5)
    assert ns_to_sec_nanosec(np.int64(2_500_000_000)) == (2, 500_000_000)
    assert ns_to_sec_nanosec(-1) == (-1, 999_999_999)                 # nanosec stays in [0, 1e9)
    assert seconds_to_ns(0.1) == 100_000_000 and seconds_to_ns(1.5e-9) == 2


def test_index_ranges():
    assert format_index_ranges([3, 4, 5, 6, 7, 12]) == '3-7, 12'
    assert format_index_ranges(np.array([0, 2, 3])) == '0, 2-3'
    assert format_index_ranges([]) == '' and format_index_ranges([], 'none') == 'none'


def test_summary_stats():
    s = summary_stats([[1.0, 2.0], [3.0, 4.0]], suffix='_m')
    # p95 of 1..4 (linear interpolation): 1 + 0.95 * 3 = 3.85
    assert s == {'n': 4, 'mean_m': 2.5, 'median_m': 2.5, 'p95_m': pytest.approx(3.85), 'max_m': 4.0}
    assert summary_stats([], suffix='_m') == {'n': 0, 'mean_m': None, 'median_m': None, 'p95_m': None,
                                              'max_m': None}
    assert summary_stats([2.0], prefix='tip_', n_key=None) == {'tip_mean': 2.0, 'tip_median': 2.0,
                                                               'tip_p95': 2.0, 'tip_max': 2.0}
