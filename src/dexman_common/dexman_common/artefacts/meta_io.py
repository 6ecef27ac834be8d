"""JSON metadata of the artefact directories (demonstration, reference, skill): one reader with the
format-version check, one JSON encoder for numpy values and paths."""
from __future__ import annotations

import json
import pathlib
from typing import Any


def json_default(o: Any):
    """``json.dumps(default=...)`` for numpy scalars/arrays and paths."""
    import numpy as np
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, pathlib.Path):
        return str(o)
    raise TypeError(f'not JSON serialisable: {type(o).__name__}')


def read_meta(path: pathlib.Path, name: str, version: int, error: type[Exception]) -> dict[str, Any]:
    """The JSON object ``path/name``; ``error`` (with the reason) when it is missing, unreadable, not
    an object, or of another ``format_version`` than ``version``."""
    p = pathlib.Path(path) / name
    if not p.is_file():
        raise error(f'{path}: no {name}')
    try:
        meta = json.loads(p.read_text())
    except (ValueError, OSError) as e:
        raise error(f'{path}: unreadable {name} ({e})') from e
    if not isinstance(meta, dict) or meta.get('format_version') != version:
        got = meta.get('format_version') if isinstance(meta, dict) else None
        raise error(f'{path}: format_version {got}, expected {version}')
    return meta
