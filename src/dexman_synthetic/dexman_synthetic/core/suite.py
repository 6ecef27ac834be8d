"""The standard benchmark suite: a fixed list of (task, object, seed) cases and its variants.

Every task and every object shape appears at least once; one case also comes as an RGB-D variant
(clean metric depth) and as a relative-depth variant (per-chunk affine depth with noise and holes)
and one with frame drops. `--quick` renders the same scenes at 320x240 and 15 fps.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import time

from .degradations import DegradationConfig
from .generate import GenerateOptions, generate


@dataclasses.dataclass(frozen=True)
class SuiteCase:
    task: str
    shape: str
    seed: int
    variant: str = ''              # '', 'rgbd', 'reldepth', 'drops'

    @property
    def name(self) -> str:
        return f'{self.task}_{self.shape}_s{self.seed}' + (f'_{self.variant}' if self.variant else '')


SUITE: tuple[SuiteCase, ...] = (
    SuiteCase('pick_place', 'box', 0),
    SuiteCase('pick_place', 'cylinder', 1),
    SuiteCase('pick_place', 'tool', 8),
    SuiteCase('pick_pour', 'cylinder', 2),
    SuiteCase('pick_pour', 'mug', 3),
    SuiteCase('bimanual_lift', 'slab', 4),
    SuiteCase('bimanual_lift', 'bowl', 5),
    SuiteCase('handover', 'tool', 6),
    SuiteCase('handover', 'box', 7),
    SuiteCase('pick_place', 'cylinder', 1, 'rgbd'),
    SuiteCase('pick_place', 'cylinder', 1, 'reldepth'),
    SuiteCase('pick_pour', 'mug', 3, 'drops'),
)


def options_for(case: SuiteCase, quick: bool = False) -> GenerateOptions:
    o = GenerateOptions(case.task, case.shape, case.seed, case_id=case.name)
    if quick:
        o.width, o.height, o.fps = 320, 240, 15.0
    if case.variant == 'rgbd':
        o.depth = True
    elif case.variant == 'reldepth':
        o.depth = True
        o.degrade = DegradationConfig(depth_noise=0.01, depth_holes=3, hole_value='nan', relative_chunk=16,
                                      relative_overlap=4)
    elif case.variant == 'drops':
        o.degrade = DegradationConfig(drop_rate=0.1)
    elif case.variant:
        raise ValueError(f'unknown variant {case.variant!r}')
    return o


def _run_one(args):
    case, out, quick, progress = args
    return generate(options_for(case, quick), pathlib.Path(out) / case.name, progress=progress)


def run_suite(out_dir: str | pathlib.Path, quick: bool = False, jobs: int = 1, only: list[str] | None = None,
              progress: bool = True) -> dict:
    from tqdm import tqdm
    out = pathlib.Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cases = [c for c in SUITE if not only or c.name in only]
    if only:
        unknown = sorted(set(only) - {c.name for c in SUITE})
        if unknown:
            raise ValueError(f'unknown suite case(s): {", ".join(unknown)}')
    t0 = time.perf_counter()
    results = []
    bar = tqdm(total=len(cases), desc='suite', file=sys.stderr, disable=not progress)
    if jobs <= 1:
        for c in cases:
            results.append(_run_one((c, out, quick, progress)))
            bar.update()
    else:
        import multiprocessing as mp
        with mp.get_context('spawn').Pool(jobs) as pool:
            for r in pool.imap(_run_one, [(c, out, quick, False) for c in cases]):
                results.append(r)
                bar.update()
    bar.close()
    manifest = dict(suite_version=1, quick=quick, seconds=round(time.perf_counter() - t0, 1),
                    cases=[dict(name=c.name, task=c.task, object=c.shape, seed=c.seed, variant=c.variant,
                                **{k: v for k, v in r.items() if k not in ('info', 'case_id')})
                           for c, r in zip(cases, results)])
    (out / 'suite.json').write_text(json.dumps(manifest, indent=2))
    return manifest
