"""Retargeting benchmark (paper 3.3-3.4, Table 4) on synthetic cases with exact ground truth.

    source env.sh
    python bench/retarget.py [--quick] [--suite DIR] [--cache DIR] [--robot-model DIR] [--perturb N]

Cases: by default one per task (pick_place, pick_pour, bimanual_lift, handover) at 160x120,
30 fps, the full task duration, generated once into ``--cache`` (default
<DEXMAN_ROOT>/.cache/bench_retarget) and reused; ``--quick`` uses only the first; ``--suite DIR``
takes every case directory (``ground_truth/``) under DIR instead. Each case goes through
from_ground_truth + demo_alignment (scene_alignment with the default reach box) and the pipeline
with config/retarget.yaml (so the workspace fit of its ``workspace_fit`` section; the fit on its
own, paper rule vs whole demonstration: bench/retarget_reach.py).

Figures (human-readable lines first; the LAST line is one JSON object):

- ``ik``: wrist IK on the frames with a target: position / orientation error (mean, median, p95,
  max) on the reachable ones, solve time per frame (both arms), the share of (hand, frame) targets
  that are unreachable and of frames with an unreachable hand.
- ``fingers_fk``: fingertip position error of the finger MLP on held-out forward-kinematics
  samples of both hands (seed 2000003; the checkpoint trained on seed 0 and validated on 1000003).
- ``fingers_human``: the synthetic human fingertips (wrist frame, divided by the human hand length,
  times the Shadow hand length) against the robot fingertips after retargeting (Shadow FK of the
  reference's finger joints, the Shadow wrist frame), per tip, on the frames where the hand is
  tracked.
- ``contacts``: precision / recall of (hand, frame, object) contacts against the ground-truth
  grasps: a ground-truth contact when gt.grasped[hand, frame] == object (nearest ground-truth frame
  to the 30 Hz reference frame); predicted when any of that hand's 9 contact keypoints is in the
  contact prior with the object. Raw mesh vertices (the paper) and, for comparison, vertices
  densified to 1 cm edges.
- ``placement``: percentage of stable initial configurations with and without sampling (paper
  Table 4: 98 % vs 86 %), over the suite's objects: (a) at the exact initial poses, (b) at
  ``--perturb`` perturbed estimates per object (rotation about a random axis by
  U(0, ``--perturb-max-deg`` = 45) deg, as a reconstruction error; seeded).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

CASES = (('pick_place', 'cylinder', 1), ('pick_pour', 'mug', 3), ('bimanual_lift', 'slab', 4),
         ('handover', 'tool', 6))
WIDTH, HEIGHT, FPS = 160, 120, 30.0
FK_SEED, FK_SAMPLES = 2_000_003, 5000


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _stats(x, scale=1.0, nd=4) -> dict:
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return {'n': 0}
    return {'n': int(len(x)), 'mean': round(float(x.mean()) * scale, nd),
            'median': round(float(np.median(x)) * scale, nd),
            'p95': round(float(np.percentile(x, 95)) * scale, nd), 'max': round(float(x.max()) * scale, nd)}


def _prf(tp, fp, fn) -> dict:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {'tp': int(tp), 'fp': int(fp), 'fn': int(fn), 'precision': round(float(p), 4),
            'recall': round(float(r), 4)}


def cases(args) -> list[pathlib.Path]:
    if args.suite:
        root = pathlib.Path(args.suite)
        found = sorted(p.parent.parent for p in root.glob('*/ground_truth/meta.json'))
        if (root / 'ground_truth' / 'meta.json').is_file():
            found = [root]
        if not found:
            raise SystemExit(f'bench/retarget.py: no case (ground_truth/meta.json) under {root}')
        return found[:1] if args.quick else found
    from dexman_synthetic.core.generate import GenerateOptions, generate
    cache = pathlib.Path(args.cache)
    out = []
    for task, shape, seed in (CASES[:1] if args.quick else CASES):
        d = cache / f'{task}_{shape}_s{seed}_{WIDTH}x{HEIGHT}_{FPS:g}fps'
        if not (d / 'ground_truth' / 'meta.json').is_file():
            t0 = time.perf_counter()
            generate(GenerateOptions(task, shape, seed, width=WIDTH, height=HEIGHT, fps=FPS), d, progress=False)
            log(f'generated {d.name} ({time.perf_counter() - t0:.1f} s)')
        out.append(d)
    return out


def contact_counts(in_contact, gt, ref_times) -> tuple[int, int, int]:
    """(tp, fp, fn) of (hand, frame, object) against gt.grasped (nearest ground-truth frame)."""
    t_gt = (np.asarray(gt.stamps_ns) - gt.stamps_ns[0]) * 1e-9
    k = np.clip(np.searchsorted(t_gt, ref_times), 0, len(t_gt) - 1)
    km = np.clip(k - 1, 0, len(t_gt) - 1)
    k = np.where(np.abs(t_gt[km] - ref_times) < np.abs(t_gt[k] - ref_times), km, k)
    pred = np.asarray(in_contact).any(axis=2)                     # (H, T, O)
    O = pred.shape[2]
    ref = np.stack([np.asarray(gt.grasped)[:, k] == o for o in range(O)], axis=-1)
    return int(np.sum(pred & ref)), int(np.sum(pred & ~ref)), int(np.sum(~pred & ref))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='one case (< 1 minute)')
    p.add_argument('--suite', default=None, help='use the cases under DIR instead of generating')
    p.add_argument('--cache', default=None, help='where generated cases are kept (default .cache/bench_retarget)')
    p.add_argument('--robot-model', default=None, help='robot-model build (default artifacts/robot_model)')
    p.add_argument('--perturb', type=int, default=5, help='perturbed initial estimates per object (default 5)')
    p.add_argument('--perturb-max-deg', type=float, default=45.0,
                   help='largest perturbation angle of the estimates, deg (default 45)')
    args = p.parse_args(argv)

    import torch
    torch.set_num_threads(1)
    from dexman_retarget.core import contact_priors as cp
    from dexman_retarget.core import finger_dataset as fd
    from dexman_retarget.core import finger_mlp as fm
    from dexman_retarget.core import hand_keypoints as hk
    from dexman_retarget.core import retarget_pipeline as rp
    from dexman_description import robot_model as rm
    from dexman_retarget.core import stable_placement as sp
    from dexman_synthetic.core.demo_alignment import demonstration_from_ground_truth
    from dexman_synthetic.core import ground_truth as gtm

    if args.cache is None:
        args.cache = str(rp.dexman_root() / '.cache' / 'bench_retarget')
    t_start = time.perf_counter()
    model_dir, built = rp.ensure_robot_model(args.robot_model or rp.default_robot_model_dir())
    if built:
        log(f'built the robot model into {model_dir}')
    case_dirs = cases(args)
    t0 = time.perf_counter()
    R = rp.Retargeter(model_dir, rp.load_options(progress=False), rp.default_config_file())
    t_load = time.perf_counter() - t0
    kin = {s: fd.ShadowHandKinematics(R.model, s) for s in hk.SIDES}
    shadow_scale = kin['right'].scale

    ik_pos, ik_rot, ik_time_frames, n_frames_total = [], [], 0.0, 0
    ik_t_reach, ik_t_unreach = [], []
    n_targets = n_unreach = n_frames_unreach = 0
    human_tip_err, human_tip_err5 = [], []
    c_raw = np.zeros(3, int)
    c_dense = np.zeros(3, int)
    place_exact = []          # (original_stable, found_stable)
    place_objects = []        # (mesh, T_est, table_z)
    per_case = []
    for d in case_dirs:
        gt = gtm.load(d)
        demo, meshes, ga = demonstration_from_ground_truth(gt)
        t0 = time.perf_counter()
        res = R.run(demo, meshes)
        dt = time.perf_counter() - t0
        ref, ik = res.reference, res.ik
        T = ref.n_frames
        ok = ik.has_target & ik.reachable                     # (T, 2)
        ik_pos.append(ik.pos_err[ok])
        ik_rot.append(ik.rot_err[ok])
        ik_time_frames += ik.time_s
        frame_ok = ik.has_target.any(axis=1) & ~(ik.has_target & ~ik.reachable).any(axis=1)
        ik_t_reach.append(res.ik_frame_s[frame_ok])
        ik_t_unreach.append(res.ik_frame_s[~frame_ok & ik.has_target.any(axis=1)])
        n_frames_total += T
        n_targets += int(ik.has_target.sum())
        un = ik.has_target & ~ik.reachable
        n_unreach += int(un.sum())
        n_frames_unreach += int(un.any(axis=1).sum())
        # fingers on the human hands
        errs = []
        for h, side in enumerate(hk.SIDES):
            v = ref.hand_valid[h]
            if not v.any():
                continue
            kp = ref.hand_keypoints[h, v]
            scale = float(np.median(hk.hand_scale(kp)))
            human = hk.normalized_fingertips(kp, side, scale, mirror_to_right=False) * shadow_scale
            robot = kin[side].fingertips(ref.positions_of(rm.hand_actuated_joints(side))[v])
            errs.append(np.linalg.norm(human - robot, axis=-1))
        e5 = np.concatenate(errs) if errs else np.zeros((0, 5))
        human_tip_err5.append(e5)
        e = e5.ravel()
        human_tip_err.append(e)
        # contacts
        times = ref.time_from_start
        cr = contact_counts(res.contacts.in_contact, gt, times)
        dense = cp.compute_contact_priors(res.resampled.hand_keypoints, res.resampled.hand_valid,
                                          [res.meshes[o.id] for o in demo.objects], res.resampled.object_poses,
                                          densify_max_edge=0.01)
        cd = contact_counts(dense.in_contact, gt, times)
        c_raw += cr
        c_dense += cd
        # placement
        for k, ob in enumerate(demo.objects):
            rep = res.placements[k]
            place_exact.append((rep.original_stable, rep.found_stable))
            place_objects.append((res.meshes[ob.id], ref.object_estimated_initial[k],
                                  ref.placement[k]['table_top_z']))
        case = {'case': d.name, 'task': gt.task, 'frames': T, 'seconds': round(dt, 2),
                'unreachable_frames': ref.unreachable_frames,
                'ik_ms_per_frame': round(1e3 * ik.time_s / T, 2),
                'reach_fits_alignment': bool(ga.alignment.reach_fits),
                'workspace_fit_delta_m': ref.provenance['workspace_fit']['delta_m'],
                'finger_human_tip_mean_mm': round(1e3 * float(e.mean()), 2) if len(e) else None,
                'contacts_raw': _prf(*cr), 'contacts_dense_1cm': _prf(*cd),
                'placement_original_stable': [bool(r.original_stable) for r in res.placements]}
        per_case.append(case)
        log(f'{d.name}: {T} frames in {dt:.1f} s; unreachable frames {ref.unreachable_frames}/{T}; '
            f'IK {case["ik_ms_per_frame"]} ms/frame; human fingertips {case["finger_human_tip_mean_mm"]} mm; '
            f'contacts P/R {case["contacts_raw"]["precision"]}/{case["contacts_raw"]["recall"]} '
            f'(dense {case["contacts_dense_1cm"]["precision"]}/{case["contacts_dense_1cm"]["recall"]})')

    # fingers on held-out FK samples
    t0 = time.perf_counter()
    fk = {}
    for side in hk.SIDES:
        ds = fd.make_dataset(kin[side], FK_SAMPLES, seed=FK_SEED)
        ev = fm.evaluate(R.fingers.net, kin[side], ds)
        fk[side] = {k: round(ev[k] * 1e3, 3) for k in ('tip_mean_m', 'tip_median_m', 'tip_p95_m', 'tip_max_m')}
    fk = {side: {k[:-2] + '_mm': v for k, v in d.items()} for side, d in fk.items()}
    t_fk = time.perf_counter() - t0

    # placement with perturbed estimates
    t0 = time.perf_counter()
    rng = np.random.default_rng(7)
    perturbed = []
    from scipy.spatial.transform import Rotation
    for mesh, T_est, z in place_objects:
        for _ in range(args.perturb):
            axis = rng.normal(size=3)
            axis /= np.linalg.norm(axis)
            ang = np.deg2rad(rng.uniform(0.0, args.perturb_max_deg))
            Tp = T_est.copy()
            Tp[:3, :3] = Rotation.from_rotvec(axis * ang).as_matrix() @ T_est[:3, :3]
            cfg = sp.PlacementConfig(table_top_z=z)
            rep = sp.find_stable_placement(mesh, Tp, seed=len(perturbed), config=cfg)
            perturbed.append((rep.original_stable, rep.found_stable))
    t_place = time.perf_counter() - t0

    def pct(pairs, i):
        return round(100.0 * sum(p[i] for p in pairs) / len(pairs), 1) if pairs else None

    pos, rot = np.concatenate(ik_pos), np.concatenate(ik_rot)
    he = np.concatenate(human_tip_err)
    out = {
        'bench': 'retarget', 'quick': bool(args.quick), 'cases': len(case_dirs), 'frames': n_frames_total,
        'robot_model': str(model_dir), 'load_s': round(t_load, 2),
        'ik': {'reachable_pos_err_mm': _stats(pos, 1e3), 'reachable_rot_err_rad': _stats(rot, 1.0, 5),
               'ms_per_frame': round(1e3 * ik_time_frames / max(n_frames_total, 1), 2),
               'ms_per_reachable_frame': _stats(np.concatenate(ik_t_reach), 1e3, 2),
               'ms_per_unreachable_frame': _stats(np.concatenate(ik_t_unreach), 1e3, 2),
               'unreachable_target_share': round(n_unreach / max(n_targets, 1), 4),
               'unreachable_frame_share': round(n_frames_unreach / max(n_frames_total, 1), 4)},
        'fingers_fk': {**fk, 'samples_per_hand': FK_SAMPLES, 'seconds': round(t_fk, 1)},
        'fingers_human': {'tip_err_mm': _stats(he, 1e3, 2), 'shadow_hand_length_m': round(shadow_scale, 4),
                          'tip_mean_per_finger_mm': dict(zip(hk.FINGERS, np.round(
                              1e3 * np.concatenate(human_tip_err5).mean(axis=0), 2).tolist()))},
        'contacts': {'raw_vertices': _prf(*c_raw), 'densified_1cm': _prf(*c_dense)},
        'placement': {'objects': len(place_exact),
                      'exact_initial': {'stable_without_sampling_pct': pct(place_exact, 0),
                                        'stable_with_sampling_pct': pct(place_exact, 1)},
                      'perturbed_estimates': {'n': len(perturbed), 'max_deg': args.perturb_max_deg,
                                              'stable_without_sampling_pct': pct(perturbed, 0),
                                              'stable_with_sampling_pct': pct(perturbed, 1),
                                              'seconds': round(t_place, 1)},
                      'paper_table4': {'without_sampling_pct': 86, 'with_sampling_pct': 98}},
        'per_case': per_case,
        'seconds': round(time.perf_counter() - t_start, 1),
    }
    log(f'IK on reachable frames: position {out["ik"]["reachable_pos_err_mm"]} mm, '
        f'orientation {out["ik"]["reachable_rot_err_rad"]} rad, {out["ik"]["ms_per_reachable_frame"]} ms/frame '
        f'(unreachable frames {out["ik"]["ms_per_unreachable_frame"]} ms); '
        f'unreachable targets {100 * out["ik"]["unreachable_target_share"]:.1f} %')
    log(f'fingers (held-out FK) {fk}; on human tips {out["fingers_human"]["tip_err_mm"]} mm, per finger '
        f'{out["fingers_human"]["tip_mean_per_finger_mm"]}')
    log(f'contacts {out["contacts"]}')
    log(f'placement {out["placement"]}')
    print(json.dumps(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
