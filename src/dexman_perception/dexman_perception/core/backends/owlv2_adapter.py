"""OWLv2 open-vocabulary box detector (paper B.4: the table's box, then SAM2 segments it; also
usable for target objects named by the user).

Follows Hugging Face transformers (checked against 5.24.0; same API since 4.35:
`Owlv2Processor`, `Owlv2ForObjectDetection`, checkpoint google/owlv2-base-patch16-ensemble):

    processor = Owlv2Processor.from_pretrained(path)
    model = Owlv2ForObjectDetection.from_pretrained(path)
    inputs = processor(text=[texts], images=image, return_tensors='pt')   # texts padded to 16
    outputs = model(**inputs)
    outputs.logits      (1, num_patches, num_texts)   class logits per predicted box
    outputs.pred_boxes  (1, num_patches, 4)           (cx, cy, w, h) normalised to the padded image

Owlv2ImageProcessor pads the image at the bottom/right to a square of side max(H, W) (grey 0.5)
before resizing to 960x960, so pred_boxes are relative to that square, not to (H, W). Recent
releases' `post_process_object_detection(outputs, threshold, target_sizes=[(H, W)])` scale by
max(H, W) for that reason (`_scale_boxes`); some older ones scaled by (W, H) and squashed the boxes
of non-square images (huggingface/transformers issue 30131). `owlv2_postprocess` does the same
computation on the raw outputs in every version (score = sigmoid(max logit), label = argmax,
centre -> corners, times max(H, W)), clips to the image, and applies per-label NMS (OWLv2 emits
many overlapping boxes per object; the library's post-processing does no NMS).

Install: `pip install transformers==5.24.0` (pulls no torch; without torchvision the processor
falls back to Owlv2ImageProcessorPil with a warning); weights: a local copy of
google/owlv2-base-patch16-ensemble passed as model=<dir> (loaded with local_files_only=True).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..stages import BackendUnavailable
from ._adapter_util import check_rgb, require_module, require_path, resolve_device, to_numpy

BACKEND = 'owlv2'
INSTALL_HINT = "Install Hugging Face transformers: 'pip install transformers'."
CKPT_HINT = ("Download google/owlv2-base-patch16-ensemble (config, weights, tokenizer and "
             "preprocessor files) and pass model=<local dir>.")


# ------------------------------------------------------------------------------ pure helpers
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def owlv2_postprocess(logits: np.ndarray, pred_boxes: np.ndarray, image_hw: tuple[int, int],
                      threshold: float = 0.1) -> list[tuple[np.ndarray, float, int]]:
    """One image's OWLv2 outputs -> [(box [x0, y0, x1, y1] px, score, text index)], score-sorted.
    logits (Q, C) or (1, Q, C); pred_boxes (Q, 4) or (1, Q, 4), (cx, cy, w, h) relative to the
    padded square of side max(H, W). Boxes are clipped to the (H, W) image."""
    lg = np.asarray(to_numpy(logits), dtype=np.float64)
    bx = np.asarray(to_numpy(pred_boxes), dtype=np.float64)
    if lg.ndim == 3:
        lg = lg[0]
    if bx.ndim == 3:
        bx = bx[0]
    if lg.ndim != 2 or bx.shape != (lg.shape[0], 4):
        raise ValueError(f'expected logits (Q, C) and pred_boxes (Q, 4), got {lg.shape}, {bx.shape}')
    h, w = image_hw
    side = float(max(h, w))
    scores = _sigmoid(lg.max(axis=1))
    labels = lg.argmax(axis=1)
    cx, cy, bw, bh = bx.T
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1) * side
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
    keep = np.nonzero(scores > threshold)[0]
    keep = keep[np.argsort(-scores[keep], kind='stable')]
    return [(boxes[i], float(scores[i]), int(labels[i])) for i in keep]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of boxes a (N, 4) and b (M, 4), [x0, y0, x1, y1]."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])       # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms_per_label(detections: Sequence[tuple[np.ndarray, float, int]], iou_threshold: float
                  ) -> list[tuple[np.ndarray, float, int]]:
    """Greedy non-maximum suppression within each label; input and output sorted by score."""
    dets = sorted(detections, key=lambda d: -d[1])
    kept: list[tuple[np.ndarray, float, int]] = []
    for d in dets:
        same = [k[0] for k in kept if k[2] == d[2]]
        if not same or box_iou(d[0][None], np.stack(same)).max() <= iou_threshold:
            kept.append(d)
    return kept


# ------------------------------------------------------------------------------ adapter
class Owlv2Detector:
    """Open-vocabulary detector backend 'owlv2' (stage 'detection').

    Options: model (local directory of an OWLv2 checkpoint), device, threshold (score, 0.1),
    nms_threshold (IoU, 0.3; None disables NMS).
    """

    def __init__(self, model: str | None = None, device: str = 'auto', threshold: float = 0.1,
                 nms_threshold: float | None = 0.3):
        tf = require_module('transformers', BACKEND, INSTALL_HINT)
        path = require_path(model, BACKEND, 'model', CKPT_HINT)
        self.device = resolve_device(device, BACKEND)
        try:
            self.processor = tf.Owlv2Processor.from_pretrained(str(path), local_files_only=True)
            self.model = tf.Owlv2ForObjectDetection.from_pretrained(str(path),
                                                                    local_files_only=True)
        except (OSError, ValueError) as e:
            raise BackendUnavailable(f'{BACKEND}: cannot load {str(path)!r} ({e}). {CKPT_HINT}') from e
        self.model = self.model.to(self.device).eval()
        self.threshold = float(threshold)
        self.nms_threshold = nms_threshold

    def detect(self, rgb: np.ndarray, texts: Sequence[str]) -> list[tuple[np.ndarray, float, str]]:
        """Boxes [x0, y0, x1, y1] px, scores and the matching text, best first."""
        import torch
        rgb = check_rgb(rgb)
        texts = [str(t) for t in texts]
        if not texts:
            raise ValueError('no text queries')
        inputs = self.processor(text=[texts], images=rgb, return_tensors='pt')
        inputs = {k: v.to(self.device) if hasattr(v, 'to') else v for k, v in inputs.items()}
        with torch.no_grad():
            out = self.model(**inputs)
        dets = owlv2_postprocess(out.logits[0], out.pred_boxes[0], rgb.shape[:2], self.threshold)
        if self.nms_threshold is not None:
            dets = nms_per_label(dets, float(self.nms_threshold))
        return [(b, s, texts[label]) for b, s, label in dets]
