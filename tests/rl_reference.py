"""A small retargeted reference shared by the tests/test_rl_*.py modules (built once per session).

A synthetic pick-and-place of a box (seed 1, 30 fps, 2 s, 96x72 render) -> its exact
demonstration in the robot world -> the retargeting pipeline on a freshly built robot model ->
a reference artefact, in a temporary directory removed when the interpreter exits. The CoACD
cache of the scenes built from it lives there too.
"""
from __future__ import annotations

import atexit
import functools
import pathlib
import shutil
import tempfile

_ROOT = pathlib.Path(tempfile.mkdtemp(prefix='dexman_rl_tests_'))
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)

FPS, DURATION = 30.0, 2.0


@functools.lru_cache(maxsize=None)
def robot_model_dir() -> pathlib.Path:
    from dexman_description import robot_model as rm
    return rm.build(_ROOT / 'robot' / 'g1_shadow').out_dir


@functools.lru_cache(maxsize=None)
def reference_dir() -> pathlib.Path:
    from dexman_common.artefacts import reference as refm
    from dexman_retarget.core import retarget_pipeline as rp
    from dexman_synthetic.core import demo_alignment as da
    from dexman_synthetic.core import ground_truth as gtm
    from dexman_synthetic.core.generate import GenerateOptions, generate
    case = _ROOT / 'case' / 'pick_box'
    generate(GenerateOptions('pick_place', 'box', 1, width=96, height=72, fps=FPS, duration=DURATION),
             case, progress=False)
    demo, meshes, _ = da.demonstration_from_ground_truth(gtm.load(case))
    res = rp.Retargeter(robot_model_dir(), rp.RetargetOptions(progress=False)).run(demo, meshes)
    return refm.save(res.reference, _ROOT / 'refs', res.meshes)


def sim_config(**kw):
    """SimConfig defaults with the CoACD cache inside the temporary directory."""
    from dexman_sim.config import SimConfig
    return SimConfig(cache_dir=str(_ROOT / 'coacd'), **kw)
