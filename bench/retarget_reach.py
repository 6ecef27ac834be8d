"""Reach benchmark of the workspace fit: unreachable wrist targets with the paper's translation
(scene alignment B.4 only) and with the whole-demonstration fit (``workspace_fit``), per wrist.

    source env.sh
    python bench/retarget_reach.py PATH [PATH ...] [--robot-model DIR] [--config FILE]

Each PATH is a demonstration artefact (demonstration.json; e.g. ``dexman_synth demo CASE --out
DIR`` of a synthetic case, or perception's output) or a folder of them. Every demonstration is
retargeted twice with the same settings (config/retarget.yaml), ``workspace_fit.method: paper``
then ``whole_demo``; the figures are those of the pipeline's own IK on every frame (the
reference's ``ik_reachable``): per wrist the share of its targeted frames out of reach, and the
share of frames with a wrist out of reach. Also: the chosen translation, the table height, the
fit's time and IK passes, the IK time, and for frames still out of reach the IK's reason.

Human-readable lines first; the LAST line is one JSON object.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
import time

import numpy as np


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def demonstrations(paths) -> list[pathlib.Path]:
    out = []
    for p in map(pathlib.Path, paths):
        if (p / 'demonstration.json').is_file():
            out.append(p)
        else:
            found = sorted(d.parent for d in p.glob('*/demonstration.json'))
            if not found:
                raise SystemExit(f'bench/retarget_reach.py: no demonstration (demonstration.json) in {p}')
            out.extend(found)
    return out


def unreachable(ref) -> dict:
    """Shares of the pipeline IK's out-of-reach targets: per wrist, and of the frames."""
    un = np.asarray(ref.ik_has_target, bool) & ~np.asarray(ref.ik_reachable, bool)        # (2, T)
    n = np.asarray(ref.ik_has_target, bool).sum(axis=1)
    return {'left': round(float(un[0].sum()) / max(int(n[0]), 1), 4),
            'right': round(float(un[1].sum()) / max(int(n[1]), 1), 4),
            'frames': round(float(un.any(axis=0).sum()) / ref.n_frames, 4),
            'left_n': int(un[0].sum()), 'right_n': int(un[1].sum()), 'frames_n': int(un.any(axis=0).sum())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('paths', nargs='+', metavar='PATH', help='demonstration directories or folders of them')
    p.add_argument('--robot-model', default=None, help='robot-model build (default artifacts/robot_model)')
    p.add_argument('--config', default=None, help='settings (default config/retarget.yaml)')
    args = p.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from dexman_common.artefacts import demonstration as dm
    from dexman_retarget.core import retarget_pipeline as rp

    t_start = time.perf_counter()
    demos = demonstrations(args.paths)
    model_dir, _ = rp.ensure_robot_model(args.robot_model or rp.default_robot_model_dir())
    base = rp.load_options(args.config, progress=False)
    runners = {m: rp.Retargeter(model_dir, dataclasses.replace(
        base, workspace_fit=base.workspace_fit.replace(method=m))) for m in ('paper', 'whole_demo')}
    rows = []
    tot = {m: np.zeros(3, int) for m in runners}         # left, right, frames out of reach
    n_t = np.zeros(2, int)
    n_frames = 0
    for d in demos:
        demo = dm.load(d)
        row = {'demonstration': demo.demonstration_id, 'path': str(d)}
        for m, R in runners.items():
            t0 = time.perf_counter()
            res = R.run(demo)
            ref = res.reference
            fit = ref.provenance['workspace_fit']
            u = unreachable(ref)
            tot[m] += [u['left_n'], u['right_n'], u['frames_n']]
            row[m] = {'unreachable': u, 'delta_m': fit['delta_m'], 'table_height_m': fit['table_height_m'],
                      'fit_s': round(res.timings['workspace_fit_s'], 2), 'ik_s': round(res.timings['ik_s'], 2),
                      'total_s': round(time.perf_counter() - t0, 2), 'evaluations': fit['evaluations'],
                      'search_ik_unreachable_before': fit.get('search_ik_unreachable_before'),
                      'search_ik_unreachable_after': fit.get('search_ik_unreachable_after'),
                      'still_out_of_reach': [msg for msg in ref.ik_messages if 'unreachable' in msg][:5]}
        n_t += np.asarray(ref.ik_has_target, bool).sum(axis=1)
        n_frames += ref.n_frames
        rows.append(row)
        a, b = row['paper']['unreachable'], row['whole_demo']['unreachable']
        w = row['whole_demo']
        log(f'{demo.demonstration_id}: frames out of reach {a["frames_n"]} -> {b["frames_n"]} of {ref.n_frames} '
            f'(left {a["left_n"]} -> {b["left_n"]}, right {a["right_n"]} -> {b["right_n"]}); shift '
            f'{np.round(1e3 * np.asarray(w["delta_m"])).astype(int).tolist()} mm, table '
            f'{w["table_height_m"]["before"]:.3f} -> {w["table_height_m"]["after"]:.3f} m; fit {w["fit_s"]} s '
            f'({w["evaluations"]} passes), IK {row["paper"]["ik_s"]} -> {w["ik_s"]} s')
        for msg in w['still_out_of_reach']:
            log(f'    {msg}')

    def shares(v):
        return {'left': round(float(v[0]) / max(int(n_t[0]), 1), 4),
                'right': round(float(v[1]) / max(int(n_t[1]), 1), 4),
                'frames': round(float(v[2]) / max(n_frames, 1), 4),
                'left_n': int(v[0]), 'right_n': int(v[1]), 'frames_n': int(v[2])}

    out = {'bench': 'retarget_reach', 'demonstrations': len(demos), 'frames': n_frames,
           'targeted_frames': {'left': int(n_t[0]), 'right': int(n_t[1])},
           'paper': shares(tot['paper']), 'whole_demo': shares(tot['whole_demo']),
           'fit_s_mean': round(float(np.mean([r['whole_demo']['fit_s'] for r in rows])), 2),
           'fit_s_max': round(float(np.max([r['whole_demo']['fit_s'] for r in rows])), 2),
           'workspace_fit_config': base.workspace_fit.to_dict(), 'per_demonstration': rows,
           'seconds': round(time.perf_counter() - t_start, 1)}
    log(f'all: frames out of reach {out["paper"]["frames_n"]} -> {out["whole_demo"]["frames_n"]} of {n_frames}; '
        f'left {out["paper"]["left"]:.4f} -> {out["whole_demo"]["left"]:.4f}, right {out["paper"]["right"]:.4f} -> '
        f'{out["whole_demo"]["right"]:.4f} of targeted frames; fit {out["fit_s_mean"]} s mean, '
        f'{out["fit_s_max"]} s max')
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
