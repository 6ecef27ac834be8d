"""Small helpers for human- and machine-readable reports: index ranges and summary statistics."""
from __future__ import annotations

from typing import Iterable

import numpy as np


def format_index_ranges(indices: Iterable[int], empty: str = '') -> str:
    """'3-7, 12' from sorted integer indices (e.g. frame numbers); ``empty`` when there are none."""
    parts: list[str] = []
    start = prev = None
    for i in list(indices) + [None]:
        if start is None:
            start = prev = i
        elif i is not None and i == prev + 1:
            prev = i
        else:
            parts.append(f'{start}' if start == prev else f'{start}-{prev}')
            start = prev = i
    return ', '.join(parts) if parts else empty


STAT_NAMES = ('mean', 'median', 'p95', 'max')


def summary_stats(values, *, prefix: str = '', suffix: str = '', n_key: str | None = 'n') -> dict:
    """{n, mean, median, p95, max} of ``values`` (flattened, as floats) for a JSON report.

    The statistic keys are ``prefix + name + suffix`` (e.g. prefix='tip_', suffix='_m' gives
    'tip_mean_m'); the count is under ``n_key`` (left out when None). No values: n = 0 and every
    statistic None. Filter non-finite values first where they mean "missing"."""
    v = np.asarray(values, dtype=float).reshape(-1)
    out: dict = {} if n_key is None else {n_key: int(v.size)}
    if v.size == 0:
        out.update({f'{prefix}{k}{suffix}': None for k in STAT_NAMES})
        return out
    stats = (v.mean(), np.median(v), np.percentile(v, 95), v.max())
    out.update({f'{prefix}{k}{suffix}': float(x) for k, x in zip(STAT_NAMES, stats)})
    return out


__all__ = ['format_index_ranges', 'summary_stats', 'STAT_NAMES']
