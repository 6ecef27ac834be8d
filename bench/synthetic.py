"""Benchmark of the synthetic demonstrations (run after `source env.sh`).

    python bench/synthetic.py [--quick] [--keep DIR]

Generates cases with the generator, measures generation time per second of video and the bag size
with and without the depth topic, then scores a perfect and a deliberately perturbed prediction of
each case with the paper's pose metrics (appendix B.6) through the `score_poses` command.
--quick: one case at 320x240, 15 fps, 2 s (< 1 minute). Default: one case per task at 640x480,
30 fps, the tasks' full duration, each with and without depth.
Progress goes to stderr; the last line of stdout is one JSON object with the figures.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from dexman_synthetic.core import pose_metrics as pm
from dexman_perception.core import pose_trajectory as ptio
from dexman_synthetic.core import ground_truth as gtio
from dexman_synthetic.core.generate import GenerateOptions, generate

CASES_FULL = [('pick_place', 'box', 0), ('pick_pour', 'mug', 3), ('bimanual_lift', 'slab', 4),
              ('handover', 'tool', 6)]
CASES_QUICK = [('pick_place', 'box', 0)]
# the perturbed prediction: 5 mm / 0.03 rad per-frame noise plus a 1 mm/frame, 2 mrad/frame drift
PERTURB = dict(trans_sigma_m=0.005, rot_sigma_rad=0.03, drift=(0.001, 0.002), seed=7)


def dir_size(path: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in path.rglob('*') if f.is_file())


def score(case_dir: pathlib.Path, poses: np.ndarray, method: str, work: pathlib.Path) -> dict:
    gt = gtio.load(case_dir)
    pred = ptio.PoseTrajectory(object_ids=[o.id for o in gt.objects], stamps_ns=gt.stamps_ns,
                               poses=poses, valid=np.ones(poses.shape[:2], bool), frame='world',
                               method=method)
    path = ptio.save(pred, work / f'{case_dir.name}_{method}.npz')
    out = subprocess.run([sys.executable, '-m', 'dexman_synthetic.score_poses_cli', '--ground-truth',
                          str(case_dir), '--prediction', str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f'score_poses failed on {case_dir.name}: {out.stderr.strip()}')
    return json.loads(out.stdout)['mean']


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--quick', action='store_true', help='one small case, under a minute')
    ap.add_argument('--keep', type=pathlib.Path, default=None, help='keep the cases in this folder')
    args = ap.parse_args()
    size = dict(width=320, height=240, fps=15.0, duration=2.0) if args.quick else {}
    cases = CASES_QUICK if args.quick else CASES_FULL
    work = args.keep or pathlib.Path(tempfile.mkdtemp(prefix='dexman_bench_synth_'))
    work.mkdir(parents=True, exist_ok=True)
    rows, video_s, gen_s = [], 0.0, 0.0
    try:
        for task, shape, seed in cases:
            sizes = {}
            for depth in (False, True):
                case = work / f'{task}_{shape}_s{seed}{"_rgbd" if depth else ""}'
                opts = GenerateOptions(task, shape, seed, depth=depth, **size)
                t0 = time.perf_counter()
                generate(opts, case, progress=False)
                dt = time.perf_counter() - t0
                gt = gtio.load(case)
                duration = gt.n_frames / gt.fps
                video_s += duration
                gen_s += dt
                sizes[depth] = dir_size(case / 'bag')
                print(f'[bench] {case.name}: {gt.n_frames} frames, {dt:.1f} s, bag {sizes[depth] / 1e6:.1f} MB',
                      file=sys.stderr)
            perfect = score(case, gt.object_poses, 'perfect', work)
            perturbed = score(case, pm.perturb_trajectory(gt.object_poses, **PERTURB), 'perturbed', work)
            rows.append({'case': f'{task}_{shape}_s{seed}', 'frames': gt.n_frames,
                         'resolution': f'{gt.width}x{gt.height}', 'fps': gt.fps,
                         'bag_mb_rgb': round(sizes[False] / 1e6, 2), 'bag_mb_rgbd': round(sizes[True] / 1e6, 2),
                         'perfect': perfect, 'perturbed': perturbed})
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    def avg(key, kind):
        vals = [r[kind][key] for r in rows if r[kind].get(key) is not None]
        return round(float(np.mean(vals)), 4) if vals else None
    keys = ('add_s_auc', 'vsd_auc', 'failure_rate', 'stability_mean')
    result = {
        'benchmark': 'synthetic', 'quick': args.quick, 'cases': len(rows),
        'generation_s_per_video_s': round(gen_s / video_s, 2),
        'bag_mb_per_video_s_rgb': round(sum(r['bag_mb_rgb'] for r in rows) / (video_s / 2), 2),
        'bag_mb_per_video_s_rgbd': round(sum(r['bag_mb_rgbd'] for r in rows) / (video_s / 2), 2),
        'perfect': {k: avg(k, 'perfect') for k in keys},
        'perturbed': {k: avg(k, 'perturbed') for k in keys},
        'perturbation': PERTURB,
        'per_case': rows,
    }
    print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
