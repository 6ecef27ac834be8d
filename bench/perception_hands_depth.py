"""Benchmark of the hands stage, the relative-depth chain (B.1 + B.2) and the object scale search.

    source env.sh
    python bench/perception_hands_depth.py [--quick] [--suite DIR] [--no-object-scale]

Imported by bench/perception.py; every public function returns a JSON-able dict. Per synthetic
case (640x480, 10 fps, relative depth published: chunks of --chunk frames overlapping by
--overlap, each with its own affine map D' = a·D + b whose true (a, b) the ground truth records):

  hands            ``hand_keypoint_errors``: the CPU default hands stage (MediaPipeHands, IMAGE
                   mode) on every frame, (i) RGB-D: with the case's clean metric depth (the
                   ground-truth scene depth, float16 ~1 mm steps: the bag's depth is relative in
                   these cases) and (ii) RGB only (no depth: the PnP placement of MediaPipe's
                   metric world landmarks, metric only through its hand-size prior). Ground
                   truth: gt.hand_keypoints (world) mapped by gt.T_camera_world; matched by
                   handedness. Errors (mm) over all keypoints of matched hands: mean / median /
                   p95, per hand and overall; detection rate per hand over the frames where that
                   hand covers >= 30 labelled pixels; handedness swaps (a hand labelled h that
                   lies nearer, in 2D, the other true hand); 2D error (px); depth bias (median
                   z_est − z_true) and, RGB only, the median depth ratio z_est / z_true.
  relative depth   ``relative_depth_scale``: B.1 ``align_depth_chunks`` on the relative chunks
                   (each chunk = a·D_true + b over its frames, from the ground-truth scene depth
                   and the recorded (a, b)), with masks from the ground-truth LABEL images of the
                   chunk frames standing in for SAM2 (object_0, left_hand, right_hand), then B.2
                   ``hand_metric_scale`` (paper extents: min / max) on the aligned depth with the
                   right-hand LABEL mask, with metric hand points from
                     mediapipe_rgb_only         the hands stage's RGB-only keypoints, first frame
                                                with a right hand (the paper: HaMeR, first frame);
                     mediapipe_rgb_only_median  median of that scale over all frames with one;
                     gt_keypoints               ground-truth keypoints, frame 0 (upper bound of a
                                                keypoint-based B.2);
                     oracle_visible_surface     the right hand's true visible surface (metric depth
                                                unprojected in its mask), frame 0: B.2 with a
                                                perfect hand surface; what is left is the offset b.
                   After B.1 every frame is in chunk 0's units, D_al = a0·D + b0, so the true
                   scale is 1/a0 (exact only when b0 = 0: B.2 fits a scale, not an offset).
                   Reported: B.1 error (median / p95 |D_al − (a0·D + b0)| / (a0·D + b0) on object
                   pixels of all frames); per variant the scale error 100·(s·a0 − 1) % and the
                   metric depth error 100·(s·D_al / D − 1) % on object pixels (median, p95 |.|).
  object scale     ``object_scale_errors`` (Task B.3 scale search, core/object_scale.py): frame 0,
                   clean metric depth, the object's label mask, hand label masks as occluders,
                   the true mesh scaled by a known wrong factor (0.6, 1.5), IcpRefiner; error
                   100·(scale·factor − 1) %, the symmetric mean surface distance to the
                   true posed mesh (chamfer, mm), seconds, and the refiner-score baseline (IcpRefiner's
                   own inlier ratio used to pick the scale); plus ``end_to_end``: the same search
                   on the B.1 + B.2 (MediaPipe RGB only) depth instead of the clean one.

--quick: one pick_place case, 12 frames, chunks of 4 overlapping by 1, object scale at 1.5 only
(< 1 min). The LAST line of stdout is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import tempfile
import time

import numpy as np

DEFAULT_CASES = [('pick_place', 'cylinder', 0), ('pick_pour', 'box', 1),
                 ('bimanual_lift', 'slab', 2), ('handover', 'tool', 3)]
QUICK_CASES = DEFAULT_CASES[:1]
LABEL_OBJECT0, LABEL_LEFT, LABEL_RIGHT = 1, 254, 255
HAND_LABELS = (LABEL_LEFT, LABEL_RIGHT)          # index = handedness (0 LEFT, 1 RIGHT)
MIN_HAND_PIXELS = 30
SIDE = {0: 'left', 1: 'right'}


# ------------------------------------------------------------------------------ cases
def ensure_case(root: pathlib.Path, task: str, shape: str, seed: int, *, width: int = 640,
                height: int = 480, fps: float = 10.0, duration: float | None = None,
                chunk: int = 8, overlap: int = 2) -> pathlib.Path:
    """Generate (once) a case with relative depth in ``root``; returns its directory."""
    from dexman_synthetic.core.degradations import DegradationConfig
    from dexman_synthetic.core.generate import GenerateOptions, generate
    cid = (f'{task}_{shape}_{seed}_{width}x{height}_{fps:g}_rel{chunk}o{overlap}'
           + (f'_{duration:g}s' if duration else ''))
    cdir = pathlib.Path(root) / cid
    if not (cdir / 'ground_truth' / 'meta.json').is_file():
        generate(GenerateOptions(task, shape, seed, width=width, height=height, fps=fps, depth=True,
                                 duration=duration, case_id=cid,
                                 degrade=DegradationConfig(relative_chunk=chunk,
                                                           relative_overlap=overlap)),
                 cdir, progress=False)
    return cdir


class Case:
    """A loaded case: ground truth, colour frames, clean metric depth and labels (all frames of
    the bag; the relative-depth cases drop none)."""

    def __init__(self, case_dir: str | pathlib.Path):
        from dexman_synthetic.core import ground_truth as gtio
        from dexman_synthetic.core.bag_reader import image_array, read_topics
        self.dir = pathlib.Path(case_dir)
        self.gt = gt = gtio.load(self.dir)
        self.rgb = [image_array(m).copy() for _, _, m in read_topics(self.dir / 'bag', ['/camera/image_raw'])]
        self.frames = np.flatnonzero(gt.frame_in_bag)
        if len(self.frames) != len(self.rgb):
            raise RuntimeError(f'{self.dir}: {len(self.rgb)} images for {len(self.frames)} frames')
        depth, labels = gt.load_scene()
        self.depth, self.labels = depth[self.frames], labels[self.frames]
        self.K = np.asarray(gt.K, np.float64)
        Tcw = gt.T_camera_world
        kp = gt.hand_keypoints[:, self.frames]                       # (2, N, 21, 3) world
        self.kp_cam = kp @ Tcw[:3, :3].T + Tcw[:3, 3]                # (2, N, 21, 3) camera

    def __len__(self):
        return len(self.rgb)

    def project(self, P: np.ndarray) -> np.ndarray:
        uvw = P @ self.K.T
        return uvw[..., :2] / uvw[..., 2:]


def estimate_hands(case: Case, hands, with_depth: bool) -> tuple[list[list], float]:
    """Per frame the hands stage's HandEstimates, and the mean ms per frame."""
    out, t = [], time.perf_counter()
    for k in range(len(case)):
        out.append(hands.estimate(case.rgb[k], case.K, depth=case.depth[k] if with_depth else None))
    return out, 1000 * (time.perf_counter() - t) / max(1, len(case))


def _stats(v) -> dict:
    v = np.asarray(v, np.float64)
    if v.size == 0:
        return {'mean': None, 'median': None, 'p95': None, 'n': 0}
    return {'mean': float(v.mean()), 'median': float(np.median(v)),
            'p95': float(np.percentile(v, 95)), 'n': int(v.size)}


def _r(x, nd=4):
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


# ------------------------------------------------------------------------------ (a) hands
def hand_keypoint_errors(case: Case, estimates: list[list], ms_per_frame: float | None = None,
                         rgb_only: bool = False) -> dict:
    """Keypoint errors (mm) of per-frame HandEstimates vs the ground truth (see the module doc)."""
    per_hand, all_err = {}, []
    for h in (0, 1):
        err, err2d, dz, ratio, visible, detected, swaps = [], [], [], [], 0, 0, 0
        for k in range(len(case)):
            vis = int(np.count_nonzero(case.labels[k] == HAND_LABELS[h])) >= MIN_HAND_PIXELS
            visible += vis
            est = next((e for e in estimates[k] if e.handedness == h), None)
            if est is None:
                continue
            detected += vis
            P = case.kp_cam[h, k]
            e3 = np.linalg.norm(est.keypoints - P, axis=1) * 1000
            err.extend(e3.tolist())
            uv_true = case.project(P)
            err2d.extend(np.linalg.norm(est.keypoints_2d - uv_true, axis=1).tolist())
            other = case.project(case.kp_cam[1 - h, k])
            if (np.linalg.norm(est.keypoints_2d - other, axis=1).mean()
                    < np.linalg.norm(est.keypoints_2d - uv_true, axis=1).mean()):
                swaps += 1
            dz.extend(((est.keypoints[:, 2] - P[:, 2]) * 1000).tolist())
            ratio.append(float(np.median(est.keypoints[:, 2] / P[:, 2])))
        all_err.extend(err)
        d = {'keypoint_error_mm': _stats(err), 'detection_rate': (detected / visible) if visible else None,
             'frames_visible': visible, 'frames_detected_while_visible': detected,
             'handedness_swaps': swaps, 'error_2d_px_median': _r(np.median(err2d), 2) if err2d else None,
             'depth_bias_mm_median': _r(np.median(dz), 1) if dz else None}
        if rgb_only:
            d['depth_ratio_median'] = _r(np.median(ratio)) if ratio else None
        per_hand[SIDE[h]] = d
    return {'keypoint_error_mm': _stats(all_err), 'per_hand': per_hand,
            'ms_per_frame': _r(ms_per_frame, 1) if ms_per_frame is not None else None}


# ------------------------------------------------------------------------------ (b) B.1 + B.2
def relative_chunks(case: Case) -> tuple[list, list[tuple[float, float]]]:
    """The relative-depth chunks (DepthChunk) rebuilt from the clean depth and the recorded
    per-chunk (a, b); the overlap frames thus carry both chunks' depths, as VGGT windows do."""
    from dexman_perception.core.depth_alignment import DepthChunk
    rel = case.gt.degradations.get('relative_depth')
    if not rel:
        raise ValueError(f'{case.dir}: not a relative-depth case (no degradations.relative_depth)')
    if len(case.frames) != case.gt.n_frames:
        raise ValueError(f'{case.dir}: frames were dropped; chunk frame indices would not match')
    chunks, ab = [], []
    for c in rel['chunks']:
        frames = list(range(int(c['start']), int(c['end'])))
        D = case.depth[frames]
        chunks.append(DepthChunk(frames, np.where(D > 0, c['a'] * D + c['b'], np.nan)))
        ab.append((float(c['a']), float(c['b'])))
    return chunks, ab


def _depth_error(s: float, D_al: np.ndarray, D: np.ndarray, sel: np.ndarray) -> dict:
    ok = sel & np.isfinite(D_al) & (D > 0)
    rel = 100 * (s * D_al[ok] / D[ok] - 1)
    return {'median_pct': _r(np.median(rel), 3), 'p95_abs_pct': _r(np.percentile(np.abs(rel), 95), 3)}


def relative_depth_scale(case: Case, rgb_only_estimates: list[list] | None = None) -> dict:
    """B.1 then B.2 on a relative-depth case (see the module doc)."""
    from dexman_perception.core import hand_metric_scale as hms
    from dexman_perception.core.depth_alignment import align_depth_chunks
    chunks, ab = relative_chunks(case)
    masks = {k: {'object_0': case.labels[k] == LABEL_OBJECT0, 'left_hand': case.labels[k] == LABEL_LEFT,
                 'right_hand': case.labels[k] == LABEL_RIGHT} for k in range(len(case))}
    t = time.perf_counter()
    res = align_depth_chunks(chunks, masks)
    t_b1 = time.perf_counter() - t
    a0, b0 = ab[0]
    D_al = np.stack([res.depth(k) for k in range(len(case))]).astype(np.float64)
    D = case.depth.astype(np.float64)
    obj = case.labels == LABEL_OBJECT0
    target = a0 * D + b0
    ok = obj & np.isfinite(D_al) & (D > 0)
    b1_err = np.abs(D_al[ok] - target[ok]) / target[ok] * 100
    out = {'chunks': len(chunks), 'chunk_ab': [[round(a, 4), round(b, 4)] for a, b in ab],
           'true_scale': 1 / a0, 'offset_b0': b0,
           'b1': {'object_rel_error_pct_median': _r(np.median(b1_err), 5),
                  'object_rel_error_pct_p95': _r(np.percentile(b1_err, 95), 5),
                  'fallbacks': len(res.fallbacks), 'ms': _r(1000 * t_b1, 1)},
           'b2': {}}

    def b2(name, points, k, extra=None):
        try:
            r = hms.hand_metric_scale(points, D_al[k], case.labels[k] == LABEL_RIGHT, case.K)
        except hms.HandScaleError as e:
            out['b2'][name] = {'error': str(e), 'frame': int(k)}
            return None
        d = {'frame': int(k), 'scale': r.scale, 'scale_error_pct': _r(100 * (r.scale * a0 - 1), 3),
             'metric_depth_error_object': _depth_error(r.scale, D_al, D, obj),
             'metric_extent_m': _r(r.metric_extent, 4)}
        d.update(extra or {})
        out['b2'][name] = d
        return r.scale

    if rgb_only_estimates is not None:
        per_frame = []
        for k, ests in enumerate(rgb_only_estimates):
            right = next((e for e in ests if e.handedness == 1), None)
            if right is None or not np.any(case.labels[k] == LABEL_RIGHT):
                continue
            try:
                per_frame.append((k, hms.hand_metric_scale(right.keypoints, D_al[k], case.labels[k] == LABEL_RIGHT,
                                                           case.K).scale, right))
            except hms.HandScaleError:
                continue
        if per_frame:
            k0, _, right = per_frame[0]
            b2('mediapipe_rgb_only', right.keypoints, k0)
            s_med = float(np.median([s for _, s, _ in per_frame]))
            out['b2']['mediapipe_rgb_only_median'] = {
                'frames': len(per_frame), 'scale': s_med, 'scale_error_pct': _r(100 * (s_med * a0 - 1), 3),
                'metric_depth_error_object': _depth_error(s_med, D_al, D, obj)}
        else:
            out['b2']['mediapipe_rgb_only'] = {'error': 'no right hand found by the hands stage'}
    b2('gt_keypoints', case.kp_cam[1, 0], 0)
    surf = hms.unproject(D[0], case.K, case.labels[0] == LABEL_RIGHT)
    b2('oracle_visible_surface', surf, 0)
    out['_aligned_depth'] = D_al              # not JSON: stripped by run(); used by end_to_end
    return out


# ------------------------------------------------------------------------------ object scale
def object_scale_errors(case: Case, factors=(0.6, 1.5), refiner_baseline: bool = True,
                        depth: np.ndarray | None = None, frame: int = 0) -> dict:
    """Any6D-style scale search with IcpRefiner on frame ``frame`` (see the module doc).
    depth: the depth to search on (default: the clean metric depth of that frame)."""
    from dexman_perception.core.backends.cpu_pose import IcpRefiner
    from dexman_perception.core.object_scale import ObjectScaleError, estimate_object_scale, scale_mesh
    gt = case.gt
    mesh = gt.load_mesh(gt.objects[0].id)
    d = case.depth[frame] if depth is None else depth
    mask = case.labels[frame] == LABEL_OBJECT0
    occ = np.isin(case.labels[frame], HAND_LABELS)
    T_true = gt.object_poses_in_camera()[0, case.frames[frame]]
    out = {'mask_pixels': int(mask.sum()), 'runs': {}}
    runs = [(f, 'bidirectional') for f in factors]
    if refiner_baseline and factors:
        runs.append((factors[-1], 'refiner'))
    for f, kind in runs:
        name = f'x{f:g}' + ('' if kind == 'bidirectional' else '_refiner_score')
        try:
            r = estimate_object_scale(IcpRefiner(), case.rgb[frame], d, mask, scale_mesh(mesh, f), case.K,
                                      occluder_mask=occ, score=kind)
        except ObjectScaleError as e:
            out['runs'][name] = {'error': str(e)}
            continue
        out['runs'][name] = {'scale_error_pct': _r(100 * (r.scale * f - 1), 3), 'score': _r(r.score),
                             'initial_guess_error_pct': _r(100 * (r.initial_scale * f - 1), 2),
                             'chamfer_mm': _r(_chamfer_mm(mesh, f * r.scale, r.T_camera_object, T_true), 2),
                             'candidates': len(r.candidates), 'seconds': _r(r.seconds, 2)}
    return out


def _chamfer_mm(mesh, scale: float, T_pred: np.ndarray, T_true: np.ndarray, n: int = 3000) -> float:
    """Symmetric mean surface distance (mm) between the mesh scaled by ``scale`` at T_pred and
    the true mesh at T_true: pose and size error together, blind to the object's symmetries
    (a closed cylinder found upside down has its origin 1 height away, yet the same surface)."""
    from scipy.spatial import cKDTree

    from dexman_perception.core.object_scale import _mesh_arrays, _surface
    V, F = _mesh_arrays(mesh)
    area = 0.5 * float(np.linalg.norm(np.cross(V[F][:, 1] - V[F][:, 0], V[F][:, 2] - V[F][:, 0]), axis=1).sum())
    pts, _, _ = _surface(V, F, math.sqrt(area / n), n)
    A = (pts * scale) @ T_pred[:3, :3].T + T_pred[:3, 3]
    B = pts @ T_true[:3, :3].T + T_true[:3, 3]
    return 500.0 * (cKDTree(B).query(A)[0].mean() + cKDTree(A).query(B)[0].mean())


# ------------------------------------------------------------------------------ driver
def run_case(case_dir: pathlib.Path, hands, *, object_scale: bool = True, quick: bool = False) -> dict:
    case = Case(case_dir)
    rgbd, ms_d = estimate_hands(case, hands, with_depth=True)
    rgb, ms_r = estimate_hands(case, hands, with_depth=False)
    out = {'case': case.dir.name, 'task': case.gt.task, 'n_frames': len(case),
           'hands': {'rgbd': hand_keypoint_errors(case, rgbd, ms_d),
                     'rgb_only': hand_keypoint_errors(case, rgb, ms_r, rgb_only=True)}}
    rel = relative_depth_scale(case, rgb)
    D_al = rel.pop('_aligned_depth')
    out['relative_depth'] = rel
    if object_scale:
        factors = (1.5,) if quick else (0.6, 1.5)
        os_ = object_scale_errors(case, factors, refiner_baseline=not quick)
        s = rel['b2'].get('mediapipe_rgb_only', {}).get('scale')
        if s is not None:
            e2e = object_scale_errors(case, (1.5,), refiner_baseline=False, depth=s * D_al[0])
            os_['end_to_end_b1_b2_mediapipe'] = e2e['runs']['x1.5']
            os_['end_to_end_b1_b2_mediapipe']['note'] = ('search on the B.1 + B.2 (RGB-only hands) depth: '
                                                         'its error adds the B.2 scale error')
        out['object_scale'] = os_
    return out


def summarise(cases: list[dict]) -> dict:
    def mean(vals):
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        return _r(float(np.mean(vals)), 3) if vals else None

    def absmean(vals):
        return mean([abs(v) for v in vals if v is not None])

    s = {'hands': {}, 'b2_abs_scale_error_pct': {}, 'b2_abs_object_depth_error_pct': {}}
    for mode in ('rgbd', 'rgb_only'):
        s['hands'][mode] = {
            'keypoint_error_mm_median': mean([c['hands'][mode]['keypoint_error_mm']['median'] for c in cases]),
            'keypoint_error_mm_p95': mean([c['hands'][mode]['keypoint_error_mm']['p95'] for c in cases]),
            'detection_rate': {side: mean([c['hands'][mode]['per_hand'][side]['detection_rate'] for c in cases])
                               for side in SIDE.values()}}
    names = sorted({n for c in cases for n in c['relative_depth']['b2']})
    for n in names:
        rows = [c['relative_depth']['b2'].get(n, {}) for c in cases]
        s['b2_abs_scale_error_pct'][n] = absmean([r.get('scale_error_pct') for r in rows])
        s['b2_abs_object_depth_error_pct'][n] = absmean(
            [r.get('metric_depth_error_object', {}).get('median_pct') for r in rows])
    s['b1_object_rel_error_pct_median'] = mean([c['relative_depth']['b1']['object_rel_error_pct_median'] for c in cases])
    if all('object_scale' in c for c in cases):
        runs = sorted({n for c in cases for n in c['object_scale']['runs']})
        s['object_scale_abs_error_pct'] = {n: absmean([c['object_scale']['runs'].get(n, {}).get('scale_error_pct')
                                                       for c in cases]) for n in runs}
        s['object_scale_seconds_mean'] = mean([r.get('seconds') for c in cases
                                               for r in c['object_scale']['runs'].values()])
        s['object_scale_abs_error_pct']['end_to_end_b1_b2_mediapipe'] = absmean(
            [c['object_scale'].get('end_to_end_b1_b2_mediapipe', {}).get('scale_error_pct') for c in cases])
    return s


def run(quick: bool = False, suite: str | None = None, object_scale: bool = True,
        width: int = 640, height: int = 480, fps: float = 10.0) -> dict:
    """The whole bench (see the module doc). Returns a JSON-able dict."""
    from dexman_perception.core.backends import registry
    tmp = tempfile.TemporaryDirectory(prefix='dexman_bench_hands_depth_')
    root = pathlib.Path(suite) if suite else pathlib.Path(tmp.name)
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    cases = []
    hands = registry.create('hands', 'mediapipe')
    try:
        for task, shape, seed in (QUICK_CASES if quick else DEFAULT_CASES):
            cdir = ensure_case(root, task, shape, seed, width=width, height=height, fps=fps,
                               duration=1.2 if quick else None, chunk=4 if quick else 8,
                               overlap=1 if quick else 2)
            r = run_case(cdir, hands, object_scale=object_scale, quick=quick)
            cases.append(r)
            h = r['hands']
            print(f"{cdir.name}: hands RGB-D median {h['rgbd']['keypoint_error_mm']['median']} mm, "
                  f"RGB-only median {h['rgb_only']['keypoint_error_mm']['median']} mm; B.2 scale error "
                  + ', '.join(f"{n} {v.get('scale_error_pct')} %" for n, v in r['relative_depth']['b2'].items()),
                  file=sys.stderr)
    finally:
        hands.close()
        tmp.cleanup()
    return {'bench': 'perception_hands_depth', 'quick': quick, 'resolution': [width, height], 'fps': fps,
            'seconds': _r(time.perf_counter() - t0, 1), 'summary': summarise(cases), 'cases': cases}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--quick', action='store_true', help='one small case (< 1 min)')
    p.add_argument('--suite', default=None, help='keep / reuse the generated cases under DIR')
    p.add_argument('--no-object-scale', action='store_true', help='skip the object scale search')
    p.add_argument('--width', type=int, default=640)
    p.add_argument('--height', type=int, default=480)
    p.add_argument('--fps', type=float, default=10.0)
    a = p.parse_args(argv)
    out = run(a.quick, a.suite, not a.no_object_scale, a.width, a.height, a.fps)
    print(json.dumps(out, default=float))
    return 0


if __name__ == '__main__':
    sys.exit(main())
