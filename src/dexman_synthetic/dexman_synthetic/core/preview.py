"""Preview picture of a case: one frame of the bag with the ground truth drawn over it.

Both hands' 21 keypoints with skeleton lines (one colour per finger, left hand drawn darker), the
wrist frames, each object's pose axes (x red, y green, z blue), projected with the recorded K and
T_world_camera. A dropped frame is shown from the ground-truth scene labels instead.
"""
from __future__ import annotations

import pathlib

import cv2
import numpy as np

from . import ground_truth as gtm
from .bag_reader import image_at
from .camera import project
from .hand_model import EDGES

FINGER_BGR = [(0, 0, 255), (0, 200, 255), (0, 220, 0), (255, 160, 0), (255, 0, 200)]


def _finger(a: int, b: int) -> int:
    m = max(a, b)
    return 0 if m == 0 else min(4, (m - 1) // 4)


def render_preview(case_dir: str | pathlib.Path, frame: int | None = None) -> np.ndarray:
    """BGR image of frame `frame` (default: the middle frame) with the overlay."""
    gt = gtm.load(case_dir)
    n = gt.n_frames
    k = n // 2 if frame is None else frame
    if not -n <= k < n:
        raise ValueError(f'frame {frame} out of range (case has {n} frames)')
    k %= n
    img = None
    if gt.frame_in_bag[k]:
        rgb = image_at(gt.root / 'bag', int(gt.stamps_ns[k]))
        if rgb is not None:
            img = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if img is None:
        _, labels = gt.load_scene()
        img = cv2.applyColorMap((labels[k].astype(np.uint16) * 37 % 256).astype(np.uint8), cv2.COLORMAP_JET)
        cv2.putText(img, 'frame dropped: labels shown', (8, gt.height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
    T_cw = gt.T_camera_world
    scale = max(1, round(gt.width / 640))
    fs = 0.5 * gt.width / 640
    for h in (0, 1):
        if not gt.hand_present[h, k]:
            continue
        uv, z = project(gt.K, T_cw, gt.hand_keypoints[h, k])
        dim = 0.6 if h == 0 else 1.0
        for a, b in EDGES:
            col = tuple(int(c * dim) for c in FINGER_BGR[_finger(a, b)])
            cv2.line(img, _pt(uv[a]), _pt(uv[b]), col, scale, cv2.LINE_AA)
        for i, p in enumerate(uv):
            cv2.circle(img, _pt(p), 2 * scale, (255, 255, 255) if i else (0, 0, 0), -1, cv2.LINE_AA)
        _axes(img, gt.K, T_cw, gt.wrist_poses[h, k], 0.04, scale)
    for i, o in enumerate(gt.objects):
        L = 0.6 * max(o.extents) if max(o.extents) > 0 else 0.05
        _axes(img, gt.K, T_cw, gt.object_poses[i, k], L, scale + 1)
    hips, _ = project(gt.K, T_cw, gt.hips[k])
    for p in hips:
        cv2.drawMarker(img, _pt(p), (255, 255, 0), cv2.MARKER_CROSS, 10 * scale, scale)
    grasp = ','.join(f'{"LR"[h]}:{int(gt.grasped[h, k])}' for h in (0, 1))
    cv2.putText(img, f'{gt.case_id} f{k}/{n} grasped {grasp}', (6, int(36 * fs)), cv2.FONT_HERSHEY_SIMPLEX,
                fs, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _pt(p) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _axes(img, K, T_cw, T_wo, length, thick):
    pts = np.array([[0, 0, 0], [length, 0, 0], [0, length, 0], [0, 0, length]], float)
    pw = pts @ T_wo[:3, :3].T + T_wo[:3, 3]
    uv, _ = project(K, T_cw, pw)
    for j, col in ((1, (0, 0, 255)), (2, (0, 255, 0)), (3, (255, 0, 0))):
        cv2.line(img, _pt(uv[0]), _pt(uv[j]), col, thick, cv2.LINE_AA)


def write_preview(case_dir, out_png, frame: int | None = None) -> pathlib.Path:
    img = render_preview(case_dir, frame)
    out = pathlib.Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), img):
        raise OSError(f'could not write {out}')
    return out
