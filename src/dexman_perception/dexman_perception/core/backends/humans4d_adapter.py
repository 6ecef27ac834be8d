"""4D-Humans (HMR 2.0) body adapter (paper B.4: hips and pelvis for the facing direction and the
translation onto the robot).

Follows shubham-goel/4D-Humans (main branch, demo.py as of 2023-2024): `hmr2.models.load_hmr2`,
`hmr2.datasets.vitdet_dataset.ViTDetDataset`, detectron2 ViTDet-H person boxes as in the demo:

    model, model_cfg = load_hmr2(checkpoint)        # MODEL.IMAGE_SIZE 256, EXTRA.FOCAL_LENGTH 5000
    dataset = ViTDetDataset(model_cfg, img_bgr, boxes (N, 4))       # rescale_factor 2.5
    out = model(batch)
    out['pred_cam']          (B, 3)      weak-perspective crop camera (s, tx, ty)
    out['pred_keypoints_3d'] (B, 44, 3)  SMPL joints: 25 OpenPose BODY_25 joints (hmr2's
                                         smpl_wrapper maps smpl_to_openpose = [24, 12, 17, 19, 21,
                                         16, 18, 20, 0, 2, 5, 8, 1, 4, 7, ...]) + 19 extra joints,
                                         metres, camera-aligned axes (OpenCV)

BODY_25 indices used: 8 MidHip (= SMPL pelvis, joint 0), 9 RHip (SMPL 2), 12 LHip (SMPL 1).
The crop camera becomes a translation in the real camera with `cam_crop_to_camera` (the demo's
`cam_crop_to_full` with the real K instead of a 5000/256 * max(W, H) focal length), so hips and
pelvis are metric points in camera_optical.

One person is returned: the largest detected box (selection='largest') or the highest-scoring
one ('score'); confidence is its detection score. The depth argument is not used (HMR 2.0 is
monocular; the pipeline's depth is only up to the hand-derived scale).

Install: from a checkout of shubham-goel/4D-Humans, `pip install --no-deps -e .` plus its runtime
deps (pytorch-lightning, smplx==0.1.28, yacs, timm, einops, chumpy, detectron2); data: the hmr2
checkpoint (with model_config.yaml two folders up) and SMPL_NEUTRAL.pkl under
CACHE_DIR_4DHUMANS/data/smpl (SMPL licence), and detectron2's ViTDet-H `model_final_f05665.pkl`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..stages import BackendUnavailable, BodyEstimate
from ._adapter_util import (cam_crop_to_camera, check_K, check_rgb, require_module, require_path,
                            resolve_device, to_numpy, vitdet_person_detector)

BACKEND = '4dhumans'
INSTALL_HINT = ("Install 4D-Humans from a checkout of shubham-goel/4D-Humans ('pip install --no-deps "
                "-e .' plus pytorch-lightning, smplx==0.1.28, yacs, timm, einops, chumpy).")
CKPT_HINT = ("Fetch hmr2_data.tar.gz (logs/train/multiruns/hmr2/0/checkpoints/epoch=35-step=1000000.ckpt "
             "+ model_config.yaml) and SMPL_NEUTRAL.pkl into CACHE_DIR_4DHUMANS, and pass "
             "checkpoint=<.ckpt>.")
DET_HINT = ("The default person detector is detectron2 ViTDet-H (pass detector_checkpoint=<path to "
            "model_final_f05665.pkl>), or pass person_detector=<callable rgb -> [(box, score)]>.")
MIDHIP, RHIP, LHIP = 8, 9, 12            # OpenPose BODY_25 indices in pred_keypoints_3d


# ------------------------------------------------------------------------------ pure helpers
def select_person(boxes: np.ndarray, scores: np.ndarray, selection: str = 'largest') -> int:
    """Index of the demonstrator among detected person boxes (N, 4) [x0, y0, x1, y1]."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(b) == 0:
        raise ValueError('no person boxes')
    if selection == 'largest':
        return int(np.argmax((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
    if selection == 'score':
        return int(np.argmax(np.asarray(scores, dtype=np.float64)))
    raise ValueError(f"selection must be 'largest' or 'score', got {selection!r}")


def hmr2_to_body(pred_cam: np.ndarray, keypoints_3d: np.ndarray, box_center: np.ndarray,
                 box_size: float, K: np.ndarray, score: float) -> BodyEstimate:
    """One person's HMR 2.0 outputs (pred_cam (3,), pred_keypoints_3d (44, 3) or at least 25
    BODY_25 rows) -> BodyEstimate (left hip, right hip, pelvis) in camera_optical metres."""
    K = check_K(K)
    kp = np.asarray(keypoints_3d, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[0] < 25 or kp.shape[1] != 3:
        raise ValueError(f'expected pred_keypoints_3d (44, 3), got {kp.shape}')
    t = cam_crop_to_camera(pred_cam, box_center, np.asarray([box_size]), K)[0]
    return BodyEstimate(left_hip=kp[LHIP] + t, right_hip=kp[RHIP] + t, pelvis=kp[MIDHIP] + t,
                        confidence=float(score))


# ------------------------------------------------------------------------------ adapter
class FourDHumansBody:
    """BodyEstimator backend '4dhumans'.

    Options: checkpoint (hmr2 .ckpt; default hmr2.models.DEFAULT_CHECKPOINT in CACHE_DIR_4DHUMANS),
    device, detector_checkpoint (ViTDet-H .pkl), person_threshold (0.5), rescale_factor (2.5, the
    ViTDetDataset default), selection ('largest' | 'score'), person_detector (callable
    rgb -> [(box, score)], replaces detectron2).
    """

    def __init__(self, checkpoint: str | None = None, device: str = 'auto',
                 detector_checkpoint: str | None = None, person_threshold: float = 0.5,
                 rescale_factor: float = 2.5, selection: str = 'largest',
                 person_detector: Callable[[np.ndarray], Sequence] | None = None):
        hmr2_models = require_module('hmr2.models', BACKEND, INSTALL_HINT)
        self._ds = require_module('hmr2.datasets.vitdet_dataset', BACKEND, INSTALL_HINT)
        ckpt = require_path(checkpoint or getattr(hmr2_models, 'DEFAULT_CHECKPOINT', None),
                            BACKEND, 'checkpoint', CKPT_HINT)
        require_path(ckpt.parent.parent / 'model_config.yaml', BACKEND, 'model_config.yaml',
                     CKPT_HINT)
        select_person(np.zeros((1, 4)), np.zeros(1), selection)          # validates selection
        self.device = resolve_device(device, BACKEND)
        try:
            model, self.cfg = hmr2_models.load_hmr2(str(ckpt))
        except FileNotFoundError as e:                                  # SMPL model missing
            raise BackendUnavailable(f'{BACKEND}: {e}. {CKPT_HINT}') from e
        self.model = model.to(self.device).eval()
        self.person_threshold = float(person_threshold)
        self.rescale_factor = float(rescale_factor)
        self.selection = selection
        self.person_detector = person_detector
        if person_detector is None:
            det_ckpt = require_path(detector_checkpoint, BACKEND, 'detector_checkpoint', DET_HINT)
            hmr2 = require_module('hmr2', BACKEND, INSTALL_HINT)
            self._detector = vitdet_person_detector(hmr2, 'hmr2.utils.utils_detectron2', det_ckpt,
                                                    BACKEND, DET_HINT)

    def detect_people(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes (N, 4) and scores (N,) above person_threshold."""
        if self.person_detector is not None:
            dets = list(self.person_detector(rgb))
            boxes = np.array([d[0] for d in dets], dtype=np.float64).reshape(-1, 4)
            scores = np.array([d[1] for d in dets], dtype=np.float64)
        else:
            inst = self._detector(np.ascontiguousarray(rgb[:, :, ::-1]))['instances']
            valid = inst.pred_classes == 0
            boxes = to_numpy(inst.pred_boxes.tensor[valid]).astype(np.float64)
            scores = to_numpy(inst.scores[valid]).astype(np.float64)
        keep = scores > self.person_threshold
        return boxes[keep], scores[keep]

    def estimate(self, rgb: np.ndarray, K: np.ndarray,
                 depth: np.ndarray | None = None) -> BodyEstimate | None:
        """Hips and pelvis of the demonstrator, or None when no person is detected."""
        import torch
        rgb = check_rgb(rgb)
        K = check_K(K)
        boxes, scores = self.detect_people(rgb)
        if len(boxes) == 0:
            return None
        i = select_person(boxes, scores, self.selection)
        ds = self._ds.ViTDetDataset(self.cfg, np.ascontiguousarray(rgb[:, :, ::-1]),
                                    boxes[i:i + 1].astype(np.float32),
                                    rescale_factor=self.rescale_factor)
        batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=1, shuffle=False,
                                                      num_workers=0)))
        batch = {k: v.to(self.device) if hasattr(v, 'to') else v for k, v in batch.items()}
        with torch.no_grad():
            out = self.model(batch)
        return hmr2_to_body(to_numpy(out['pred_cam'])[0], to_numpy(out['pred_keypoints_3d'])[0],
                            to_numpy(batch['box_center'])[0], float(to_numpy(batch['box_size'])[0]),
                            K, float(scores[i]))
