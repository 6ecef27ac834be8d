"""HaMeR 3D hand adapter (paper Sec. 3.2, B.2: metric MANO hands; keypoints for retargeting).

Follows geopavlakos/hamer (main branch, demo.py as of 2024): `hamer.models.load_hamer`,
`hamer.datasets.vitdet_dataset.ViTDetDataset`, and the demo's hand detection (detectron2 ViTDet
person boxes -> ViTPose+ whole-body keypoints -> one box per hand from its 21 keypoints):

    model, model_cfg = load_hamer(checkpoint)          # MODEL.IMAGE_SIZE 256, EXTRA.FOCAL_LENGTH 5000
    dataset = ViTDetDataset(model_cfg, img_bgr, boxes (N, 4), right (N,), rescale_factor=2.0)
    out = model(batch)
    out['pred_cam']          (B, 3)       weak-perspective crop camera (s, tx, ty)
    out['pred_keypoints_3d'] (B, 21, 3)   MANO joints + fingertips, already in OpenPose order
                                          (hamer/models/mano_wrapper.py maps them with
                                          mano_to_openpose = [0, 13, 14, 15, 16, 1, 2, 3, 17, 4, ...])
    out['pred_vertices']     (B, 778, 3)  MANO vertices, metres, camera-aligned axes (OpenCV)
    batch['box_center'] (B, 2), batch['box_size'] (B,), batch['right'] (B,)

HaMeR is a right-hand network: left hands are cropped mirrored, so for `right == 0` the demo
negates pred_cam[:, 1] and the x of the vertices; we negate the x of the keypoints too (the
demo's --save_keypoints forgets that). The camera translation is `cam_crop_to_full` generalised to
the real intrinsics (_adapter_util.cam_crop_to_camera): keypoints + translation are metric points
in camera_optical, and they project through K onto the hand (metric=True).

Handedness comes from the detector's is_right flag (ViTPose's left/right hand keypoint groups are
the person's own hands). keypoint_confidence is ViTPose's score of each of the 21 hand keypoints
(COCO-WholeBody hand order = OpenPose order); confidence is the mean of the scores that passed the
threshold. With a custom `hand_detector` (rgb -> [(box, is_right, score)]) the box score is used.

Install: from a checkout of geopavlakos/hamer, `pip install --no-deps -e .[all]` plus its runtime
deps (pytorch-lightning, smplx==0.1.28, yacs, timm, einops, chumpy, detectron2, mmcv==1.3.9 and
third-party/ViTPose for the detector); data: `_DATA/hamer_ckpts/checkpoints/hamer.ckpt` with its
model_config.yaml, `_DATA/data/mano/MANO_RIGHT.pkl` (MANO licence), `_DATA/vitpose_ckpts/
vitpose+_huge/wholebody.pth`, and detectron2's ViTDet-H `model_final_f05665.pkl`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..stages import BackendUnavailable, HandEstimate
from ._adapter_util import (cam_crop_to_camera, check_K, check_rgb, project, repo_context,
                            require_module, require_path, resolve_device, to_numpy,
                            vitdet_person_detector)

BACKEND = 'hamer'
INSTALL_HINT = ("Install HaMeR from a checkout of geopavlakos/hamer ('pip install --no-deps -e .' plus "
                "pytorch-lightning, smplx==0.1.28, yacs, timm, einops, chumpy) and pass "
                "hamer_root=<checkout>.")
CKPT_HINT = ("Fetch the HaMeR demo data (hamer_demo_data.tar.gz: _DATA/hamer_ckpts/checkpoints/"
             "hamer.ckpt + model_config.yaml) and MANO_RIGHT.pkl into <hamer_root>/_DATA/data/mano.")
DET_HINT = ("The default hand detector is the HaMeR demo's: detectron2 (ViTDet-H checkpoint "
            "model_final_f05665.pkl, pass detector_checkpoint=<path>) + ViTPose+ (third-party/ViTPose "
            "and _DATA/vitpose_ckpts/vitpose+_huge/wholebody.pth in hamer_root, mmcv==1.3.9); or pass "
            "hand_detector=<callable rgb -> [(box, is_right, score)]>.")
N_WHOLEBODY = 133                      # COCO-WholeBody: 17 body, 6 feet, 68 face, 21 + 21 hands
LEFT_HAND = slice(91, 112)             # demo: keypoints[-42:-21]
RIGHT_HAND = slice(112, 133)           # demo: keypoints[-21:]


# ------------------------------------------------------------------------------ pure helpers
def hand_boxes_from_wholebody(keypoints: np.ndarray, threshold: float = 0.5, min_valid: int = 4
                              ) -> list[dict]:
    """One person's ViTPose whole-body keypoints (133, 3) [x, y, score] -> the hands to run HaMeR
    on, as the demo does: a hand with at least `min_valid` keypoints above `threshold` gives the
    box [x_min, y_min, x_max, y_max] of those keypoints. Returns [{'box', 'is_right', 'score',
    'keypoint_confidence'}], left hand first."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.shape != (N_WHOLEBODY, 3):
        raise ValueError(f'expected whole-body keypoints ({N_WHOLEBODY}, 3), got {kp.shape}')
    out = []
    for is_right, sl in ((0, LEFT_HAND), (1, RIGHT_HAND)):
        hand = kp[sl]
        valid = hand[:, 2] > threshold
        if valid.sum() >= min_valid:
            pts = hand[valid, :2]
            out.append({'box': np.array([*pts.min(0), *pts.max(0)]), 'is_right': is_right,
                        'score': float(hand[valid, 2].mean()),
                        'keypoint_confidence': np.clip(hand[:, 2], 0.0, 1.0)})
    return out


def hamer_to_hand_estimates(pred_cam: np.ndarray, keypoints_3d: np.ndarray,
                            vertices: np.ndarray | None, box_center: np.ndarray,
                            box_size: np.ndarray, is_right: np.ndarray, K: np.ndarray,
                            scores: Sequence[float],
                            keypoint_confidence: Sequence[np.ndarray] | None = None
                            ) -> list[HandEstimate]:
    """HaMeR's batch outputs (numpy, shapes as in the module docstring) -> HandEstimates in
    camera_optical metres: un-mirror left hands (x of keypoints/vertices and tx negated), add the
    camera translation for the real K, project the keypoints through K."""
    K = check_K(K)
    cam = np.array(pred_cam, dtype=np.float64).reshape(-1, 3)
    kp = np.array(keypoints_3d, dtype=np.float64).reshape(cam.shape[0], 21, 3)
    verts = None if vertices is None else np.array(vertices, dtype=np.float64).reshape(
        cam.shape[0], -1, 3)
    right = np.asarray(is_right).reshape(-1).astype(int)
    sign = 2 * right - 1                                   # +1 right hand, -1 left hand
    cam[:, 1] *= sign
    kp[:, :, 0] *= sign[:, None]
    if verts is not None:
        verts[:, :, 0] *= sign[:, None]
    t = cam_crop_to_camera(cam, box_center, box_size, K)   # (N, 3)
    hands = []
    for i in range(cam.shape[0]):
        k3 = kp[i] + t[i]
        conf = (np.full(21, float(scores[i])) if keypoint_confidence is None
                else np.asarray(keypoint_confidence[i], dtype=np.float64).reshape(21))
        hands.append(HandEstimate(
            handedness=int(right[i]), keypoints=k3, keypoints_2d=project(k3, K),
            keypoint_confidence=conf, confidence=float(scores[i]), metric=True,
            vertices=None if verts is None else verts[i] + t[i]))
    return hands


# ------------------------------------------------------------------------------ adapter
class HamerHands:
    """HandEstimator backend 'hamer'.

    Options: hamer_root (HaMeR checkout: vitpose_model.py, third-party/ViTPose, _DATA), checkpoint
    (default <hamer_root>/_DATA/hamer_ckpts/checkpoints/hamer.ckpt), device, rescale_factor (crop
    padding, demo 2.0), detector_checkpoint (detectron2 ViTDet-H .pkl), person_threshold (0.5),
    keypoint_threshold (0.5), hand_detector (callable rgb -> [(box, is_right, score)], replaces
    the detectron2 + ViTPose detector), batch_size.
    """

    def __init__(self, hamer_root: str | None = None, checkpoint: str | None = None,
                 device: str = 'auto', rescale_factor: float = 2.0,
                 detector_checkpoint: str | None = None, person_threshold: float = 0.5,
                 keypoint_threshold: float = 0.5,
                 hand_detector: Callable[[np.ndarray], Sequence] | None = None,
                 batch_size: int = 8):
        root = None if hamer_root is None else require_path(hamer_root, BACKEND, 'hamer_root',
                                                            INSTALL_HINT)
        with repo_context(root):
            hamer_models = require_module('hamer.models', BACKEND, INSTALL_HINT)
            self._ds = require_module('hamer.datasets.vitdet_dataset', BACKEND, INSTALL_HINT)
        if checkpoint is None and root is not None:
            checkpoint = str(root / '_DATA' / 'hamer_ckpts' / 'checkpoints' / 'hamer.ckpt')
        ckpt = require_path(checkpoint, BACKEND, 'checkpoint', CKPT_HINT)
        require_path(ckpt.parent.parent / 'model_config.yaml', BACKEND, 'model_config.yaml',
                     CKPT_HINT)
        self.device = resolve_device(device, BACKEND)
        with repo_context(root, chdir=root is not None):     # config paths are './_DATA/...'
            try:
                model, self.cfg = hamer_models.load_hamer(str(ckpt))
            except FileNotFoundError as e:
                raise BackendUnavailable(f'{BACKEND}: {e}. {CKPT_HINT}') from e
        self.model = model.to(self.device).eval()
        self.rescale_factor = float(rescale_factor)
        self.person_threshold = float(person_threshold)
        self.keypoint_threshold = float(keypoint_threshold)
        self.batch_size = int(batch_size)
        self.hand_detector = hand_detector
        if hand_detector is None:
            self._init_default_detector(root, detector_checkpoint)

    def _init_default_detector(self, root: Path | None, detector_checkpoint: str | None) -> None:
        det_ckpt = require_path(detector_checkpoint, BACKEND, 'detector_checkpoint', DET_HINT)
        if root is None:
            raise BackendUnavailable(f'{BACKEND}: the default detector needs hamer_root. {DET_HINT}')
        with repo_context(root, chdir=True):
            hamer = require_module('hamer', BACKEND, INSTALL_HINT)
            vitpose = require_module('vitpose_model', BACKEND, DET_HINT)
            self._person_detector = vitdet_person_detector(hamer, 'hamer.utils.utils_detectron2',
                                                           det_ckpt, BACKEND, DET_HINT)
            self._vitpose = vitpose.ViTPoseModel(self.device)

    def detect_hands(self, rgb: np.ndarray) -> list[dict]:
        """[{'box', 'is_right', 'score', 'keypoint_confidence' (or None)}] for one RGB image."""
        if self.hand_detector is not None:
            return [{'box': np.asarray(b, dtype=np.float64), 'is_right': int(r),
                     'score': float(s), 'keypoint_confidence': None}
                    for b, r, s in self.hand_detector(rgb)]
        inst = self._person_detector(np.ascontiguousarray(rgb[:, :, ::-1]))['instances']
        valid = (inst.pred_classes == 0) & (inst.scores > self.person_threshold)
        boxes = to_numpy(inst.pred_boxes.tensor[valid])
        scores = to_numpy(inst.scores[valid])
        if len(boxes) == 0:
            return []
        poses = self._vitpose.predict_pose(rgb, [np.concatenate([boxes, scores[:, None]], axis=1)])
        return [h for p in poses for h in hand_boxes_from_wholebody(p['keypoints'],
                                                                   self.keypoint_threshold)]

    def estimate(self, rgb: np.ndarray, K: np.ndarray) -> list[HandEstimate]:
        rgb = check_rgb(rgb)
        return self.estimate_boxes(rgb, K, self.detect_hands(rgb))

    def estimate_boxes(self, rgb: np.ndarray, K: np.ndarray, hands: Sequence[dict]
                       ) -> list[HandEstimate]:
        """Run HaMeR on given hand boxes ([{'box', 'is_right', 'score', 'keypoint_confidence'}])."""
        import torch
        rgb = check_rgb(rgb)
        K = check_K(K)
        if not hands:
            return []
        boxes = np.stack([np.asarray(h['box'], dtype=np.float32) for h in hands])
        right = np.array([h['is_right'] for h in hands], dtype=np.float32)
        ds = self._ds.ViTDetDataset(self.cfg, np.ascontiguousarray(rgb[:, :, ::-1]), boxes, right,
                                    rescale_factor=self.rescale_factor)
        loader = torch.utils.data.DataLoader(ds, batch_size=self.batch_size, shuffle=False,
                                             num_workers=0)
        keys = ('pred_cam', 'pred_keypoints_3d', 'pred_vertices')
        acc: dict[str, list] = {k: [] for k in keys + ('box_center', 'box_size', 'right')}
        for batch in loader:
            batch = {k: v.to(self.device) if hasattr(v, 'to') else v for k, v in batch.items()}
            with torch.no_grad():
                out = self.model(batch)
            for k in keys:
                acc[k].append(to_numpy(out[k]))
            for k in ('box_center', 'box_size', 'right'):
                acc[k].append(to_numpy(batch[k]))
        cat = {k: np.concatenate(v) for k, v in acc.items()}
        kc = [h.get('keypoint_confidence') for h in hands]
        return hamer_to_hand_estimates(
            cat['pred_cam'], cat['pred_keypoints_3d'], cat['pred_vertices'], cat['box_center'],
            cat['box_size'], cat['right'], K, [h['score'] for h in hands],
            None if any(c is None for c in kc) else kc)
