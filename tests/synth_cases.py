"""Tiny synthetic cases shared by the tests/test_synthetic_*.py modules (generated once per session).

Cases are rendered at 160x120, 10 fps, 1.2 s (12 frames) into a temporary directory that is
removed when the interpreter exits.
"""
from __future__ import annotations

import atexit
import functools
import pathlib
import shutil
import tempfile

from dexman_synthetic.core.degradations import DegradationConfig
from dexman_synthetic.core.generate import GenerateOptions, generate

_ROOT = pathlib.Path(tempfile.mkdtemp(prefix='dexman_synth_tests_'))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)

SMALL = dict(width=160, height=120, fps=10.0, duration=1.2)

# name -> options
SPECS = {
    'pick_cyl': dict(task='pick_place', shape='cylinder', seed=0, depth=True),
    'pick_cyl_again': dict(task='pick_place', shape='cylinder', seed=0, depth=True),
    'pick_cyl_seed1': dict(task='pick_place', shape='cylinder', seed=1, depth=True),
    'lift_slab': dict(task='bimanual_lift', shape='slab', seed=4, depth=False),
    'handover_tool': dict(task='handover', shape='tool', seed=6, depth=False),
    'degraded': dict(task='pick_pour', shape='box', seed=2, depth=True,
                     degrade=DegradationConfig(depth_noise=0.01, depth_holes=2, hole_value='nan',
                                               relative_chunk=4, relative_overlap=1, drop_rate=0.3)),
}


@functools.lru_cache(maxsize=None)
def case(name: str) -> pathlib.Path:
    spec = dict(SPECS[name])
    degrade = spec.pop('degrade', DegradationConfig())
    opts = GenerateOptions(**spec, **SMALL, degrade=degrade, case_id=name)
    out = _ROOT / name
    generate(opts, out, progress=False)
    return out
