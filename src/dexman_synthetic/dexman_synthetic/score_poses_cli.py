"""score_poses: score a predicted object-pose trajectory against a synthetic ground-truth case.

    score_poses --ground-truth CASE_DIR --prediction pred.npz [--objects id,...]
                [--no-render-metrics] [--per-frame] [--include-dropped-frames]
                [--add-s-points surface|vertices]

Prints one JSON object: per-object figures (the paper's B.6 metrics, see
dexman_synthetic.core.pose_metrics) and their mean over objects. Bad input: one line on stderr,
exit status 2.

Frames: by default only the frames that are in the bag (ground truth `frame_in_bag`) are scored,
since a tracker cannot see dropped frames. Prediction frames are matched to them by exact
`stamps_ns`; a ground-truth frame the prediction lacks is an invalid (failed) frame; prediction
frames matching no scored ground-truth frame (unknown stamps, or frames dropped from the bag) are
ignored and counted (`n_unmatched_prediction_frames`).

Points: ADD-S uses even surface samples of the mesh (`--add-s-points surface`, default: lattice
spacing 1/100 of the mesh's largest extent, at most 20000, then the core's deterministic subsample
to 5000) rather than the mesh vertices the paper names, because generated meshes put their
vertices on edges and corners only (a box has 8); `--add-s-points vertices` follows the paper's
wording literally. VSD and the silhouette project surface samples whose spacing is 0.7 of the
pixel footprint at the nearest depth the object reaches (capped at 300k points), with back-face
culling when the mesh is watertight and consistently wound.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np


class ScoreInputError(RuntimeError):
    pass


def _parse(argv):
    p = argparse.ArgumentParser(prog='score_poses', description=__doc__.split('\n\n')[0])
    p.add_argument('--ground-truth', required=True, metavar='CASE_DIR',
                   help='case directory holding ground_truth/ (or the ground_truth dir itself)')
    p.add_argument('--prediction', required=True, metavar='PRED_NPZ', help='predicted trajectory .npz')
    p.add_argument('--objects', default=None,
                   help='comma-separated object ids to score (default: every object in the prediction)')
    p.add_argument('--no-render-metrics', action='store_true',
                   help='skip VSD and failure rate (no scene images are read)')
    p.add_argument('--per-frame', action='store_true', help='include per-frame arrays')
    p.add_argument('--include-dropped-frames', action='store_true',
                   help='also score frames a degradation removed from the bag')
    p.add_argument('--add-s-points', choices=('surface', 'vertices'), default='surface',
                   help='model points for ADD-S (default: surface samples)')
    return p.parse_args(argv)


def _mesh_points(gt, object_id: str):
    try:
        mesh = gt.load_mesh(object_id)
        V = np.asarray(mesh.vertices, np.float64)
        F = np.asarray(mesh.faces, np.int64)
        if len(V) == 0 or len(F) == 0:
            raise ScoreInputError(f'mesh of {object_id} is empty')
        closed = bool(mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0)
    except ScoreInputError:
        raise
    except Exception as e:  # trimesh raises many kinds on a bad file
        raise ScoreInputError(f'cannot load mesh of {object_id} ({gt.mesh_path(object_id)}): {e}') from None
    return V, F, closed


def score(args) -> dict[str, Any]:
    from dexman_synthetic.core import ground_truth as gtio
    from dexman_synthetic.core import pose_metrics as pm
    from dexman_perception.core import pose_trajectory as ptio

    gt = gtio.load(args.ground_truth)
    pred = ptio.load(args.prediction)
    gt_ids = [o.id for o in gt.objects]
    if args.objects:
        ids = [s.strip() for s in args.objects.split(',') if s.strip()]
        if not ids:
            raise ScoreInputError('--objects is empty')
    else:
        ids = list(pred.object_ids)
    for oid in ids:
        if oid not in gt_ids:
            raise ScoreInputError(f'unknown object {oid!r}: ground truth {gt.case_id} has {gt_ids}')
        if oid not in pred.object_ids:
            raise ScoreInputError(f'prediction {args.prediction} has no object {oid!r} '
                                  f'(it has {pred.object_ids})')
    pred_frame = pred.frame
    pred = pred.to_world(gt.T_world_camera)

    frames = np.arange(gt.n_frames) if args.include_dropped_frames else np.flatnonzero(gt.frame_in_bag)
    if frames.size == 0:
        raise ScoreInputError(f'ground truth {gt.case_id} has no frame to score')
    stamps = np.asarray(gt.stamps_ns, np.int64)[frames]
    pos = {int(s): k for k, s in enumerate(pred.stamps_ns)}
    match = np.array([pos.get(int(s), -1) for s in stamps])
    matched = match >= 0
    n_unmatched_pred = int(len(pred.stamps_ns) - len(set(match[matched].tolist())))

    depth = labels = None
    render_note = None
    if args.no_render_metrics:
        render_note = 'disabled by --no-render-metrics'
    else:
        try:
            depth, labels = gt.load_scene()
        except gtio.GroundTruthError as e:
            render_note = f'no scene images: {e}'
        else:
            if depth.shape != (gt.n_frames, gt.height, gt.width) or labels.shape != depth.shape:
                raise ScoreInputError(f'scene images have shape {depth.shape}/{labels.shape}, expected '
                                      f'({gt.n_frames}, {gt.height}, {gt.width})')
            depth, labels = depth[frames], labels[frames]

    per_object: dict[str, Any] = {}
    for oid in ids:
        gi, pi = gt.object_index(oid), pred.object_index(oid)
        gt_poses = gt.object_poses[gi, frames]
        pred_poses = np.full((len(frames), 4, 4), np.nan)
        pred_poses[matched] = pred.poses[pi, match[matched]]
        pred_valid = np.zeros(len(frames), bool)
        pred_valid[matched] = pred.valid[pi, match[matched]]

        V, F, closed = _mesh_points(gt, oid)
        spacing = pm.choose_render_spacing(gt.K, gt_poses, gt.T_world_camera, V)
        sp, sn, spacing = pm.sample_surface(V, F, spacing, max_points=pm.RENDER_MAX_POINTS)
        if args.add_s_points == 'vertices':
            model = V
        else:
            extent = float(np.max(np.ptp(V, axis=0)))
            msp, _, _ = pm.sample_surface(V, F, max(extent / 100.0, 1e-4), max_points=4 * pm.ADD_S_MAX_POINTS)
            model = msp
        masks = None if labels is None else (labels == gi + 1)
        r = pm.evaluate_trajectory(gt_poses, pred_poses, pred_valid, model, gt.K, gt.T_world_camera,
                                   depth=depth, masks=masks, surface_points=sp,
                                   surface_normals=sn if closed else None, per_frame=args.per_frame)
        if render_note:
            for k in ('vsd_auc', 'vsd_success_0p3', 'vsd_mean', 'failure_rate', 'iou_mean'):
                r['unavailable'][k] = render_note
        r['n_missing_frames'] = int((~matched).sum())
        r['settings'] = {'add_s_points': args.add_s_points,
                         'add_s_model_points': int(min(len(model), pm.ADD_S_MAX_POINTS)),
                         'render_spacing_m': spacing, 'render_points': int(len(sp)),
                         'backface_culling': closed}
        per_object[oid] = r

    keys = ('add_s_auc', 'add_s_mean_m', 'vsd_auc', 'vsd_success_0p3', 'failure_rate',
            'stability_mean', 'stability_std')
    mean = {}
    for k in keys:
        vals = [r[k] for r in per_object.values() if r.get(k) is not None]
        mean[k] = float(np.mean(vals)) if vals else None
    return {
        'case_id': gt.case_id, 'prediction': str(args.prediction), 'method': pred.method,
        'prediction_frame': pred_frame,
        'n_frames_scored': int(len(frames)), 'n_frames_ground_truth': gt.n_frames,
        'n_unmatched_prediction_frames': n_unmatched_pred,
        'objects': per_object, 'mean': mean,
        'metrics': {'add_s_max_threshold_m': pm.ADD_S_MAX_THRESHOLD, 'vsd_delta_m': pm.VSD_DELTA,
                    'vsd_tau_range': [pm.VSD_TAU_MIN, pm.VSD_TAU_MAX],
                    'iou_failure_threshold': pm.IOU_FAILURE_THRESHOLD,
                    'stability_scales': [pm.STAB_TRANS_SCALE, pm.STAB_ROT_SCALE]},
    }


def _clean(x):
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def main(argv=None) -> int:
    args = _parse(argv)
    from dexman_synthetic.core.ground_truth import GroundTruthError
    from dexman_perception.core.pose_trajectory import PoseTrajectoryError
    try:
        out = score(args)
    except (ScoreInputError, GroundTruthError, PoseTrajectoryError, OSError) as e:
        msg = ' '.join(str(e).split())
        print(f'score_poses: error: {msg}', file=sys.stderr)
        return 2
    print(json.dumps(_clean(out), allow_nan=False))
    return 0


if __name__ == '__main__':
    sys.exit(main())
