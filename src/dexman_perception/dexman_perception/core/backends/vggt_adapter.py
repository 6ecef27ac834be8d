"""VGGT depth adapter (paper Sec. 3.2, B.1: relative depth of chunks of frames).

Follows facebookresearch/vggt (main branch, 2025; the `VGGT-1B` release): `vggt.models.vggt.VGGT`,
`vggt.utils.load_fn.load_and_preprocess_images`, `vggt.utils.pose_enc.pose_encoding_to_extri_intri`:

    model = VGGT(); model.load_state_dict(torch.load('model.pt'))     # or VGGT.from_pretrained(dir)
    images = load_and_preprocess_images(paths)        # (S, 3, h, w) in [0, 1], mode='crop'
    with torch.no_grad(), torch.cuda.amp.autocast(dtype=torch.bfloat16):
        pred = model(images)
    pred['depth']      (1, S, h, w, 1)   depth in the first camera's normalised (unknown) scale
    pred['depth_conf'] (1, S, h, w)      confidence, >= 1 (activation 'expp1')
    pred['pose_enc']   (1, S, 9)         -> extrinsic (1, S, 3, 4) camera-from-world (OpenCV,
                                            world = first camera), intrinsic (1, S, 3, 3) in the
                                            preprocessed image's pixels

Pre-processing (`vggt_preprocess`) reproduces `load_and_preprocess_images` on in-memory frames
(no temporary files): mode 'crop' sets the width to 518 px and the height to
round(H * 518 / W / 14) * 14 (PIL bicubic), then centre-crops the height to 518 if larger; mode
'pad' makes the larger side 518 and pads the other to 518 with white (1.0). Post-processing
(`vggt_map_to_original`) maps depth and confidence back onto the original pixel grid (bilinear;
pixels that the crop cut away are NaN = unknown depth), and `vggt_intrinsics_to_original` maps
VGGT's intrinsics back to the original image.

One `predict` call is one chunk: all its frames share one unknown affine depth map (metric=False);
the pipeline splits the video into overlapping chunks (`chunk_ranges`) and aligns them
(core.depth_alignment, B.1), then rescales with the hand (core.hand_metric_scale, B.2).

Install: VGGT is not on PyPI; from a checkout of facebookresearch/vggt: `pip install --no-deps -e .`
(it needs torch, torchvision, numpy, Pillow, huggingface_hub, einops, safetensors); weights:
`model.pt` of facebook/VGGT-1B (about 5 GB), passed as checkpoint=<file or directory>.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Sequence

import numpy as np

from ._adapter_util import check_frames, require_module, require_path, resolve_device, to_numpy

BACKEND = 'vggt'
INSTALL_HINT = ("VGGT is not on PyPI: clone facebookresearch/vggt and run 'pip install --no-deps -e .' "
                "in it (plus einops, huggingface_hub, safetensors, torchvision matching torch).")
CKPT_HINT = ("Download model.pt of the VGGT-1B release (facebook/VGGT-1B) and pass "
             "checkpoint=<path to model.pt or to a from_pretrained directory>.")
TARGET = 518
PATCH = 14


# ------------------------------------------------------------------------------ geometry
@dataclasses.dataclass(frozen=True)
class VggtGeometry:
    """How an (orig_h, orig_w) frame maps onto VGGT's (out_h, out_w) input: resize to
    (resized_h, resized_w), then remove `crop_top` rows (mode 'crop') or add `pad_top`/`pad_left`
    (mode 'pad'). Processed pixel (x, y) <- resized pixel (x - pad_left, y + crop_top - pad_top)."""
    orig_h: int
    orig_w: int
    resized_h: int
    resized_w: int
    out_h: int
    out_w: int
    crop_top: int = 0
    pad_top: int = 0
    pad_left: int = 0

    @property
    def scale_x(self) -> float:
        return self.resized_w / self.orig_w

    @property
    def scale_y(self) -> float:
        return self.resized_h / self.orig_h


def vggt_geometry(h: int, w: int, mode: str = 'crop') -> VggtGeometry:
    """The resize/crop/pad of `load_and_preprocess_images` for one (h, w) image (Python's round, as
    the library uses)."""
    if mode == 'crop':
        nw = TARGET
        nh = round(h * (nw / w) / PATCH) * PATCH
        if nh > TARGET:
            return VggtGeometry(h, w, nh, nw, TARGET, nw, crop_top=(nh - TARGET) // 2)
        return VggtGeometry(h, w, nh, nw, nh, nw)
    if mode == 'pad':
        if w >= h:
            nw, nh = TARGET, round(h * (TARGET / w) / PATCH) * PATCH
        else:
            nh, nw = TARGET, round(w * (TARGET / h) / PATCH) * PATCH
        return VggtGeometry(h, w, nh, nw, TARGET, TARGET, pad_top=(TARGET - nh) // 2,
                            pad_left=(TARGET - nw) // 2)
    raise ValueError(f"mode must be 'crop' or 'pad', got {mode!r}")


def vggt_preprocess(frames: Sequence[np.ndarray], mode: str = 'crop'
                    ) -> tuple[np.ndarray, VggtGeometry]:
    """RGB uint8 frames (one size) -> (S, 3, out_h, out_w) float32 in [0, 1] and the geometry,
    as `load_and_preprocess_images(..., mode)` computes from image files."""
    from PIL import Image
    frames = check_frames(frames)
    g = vggt_geometry(*frames[0].shape[:2], mode=mode)
    out = np.ones((len(frames), 3, g.out_h, g.out_w), dtype=np.float32)     # pad value: white
    for i, f in enumerate(frames):
        r = Image.fromarray(f, 'RGB').resize((g.resized_w, g.resized_h), Image.Resampling.BICUBIC)
        a = np.asarray(r, dtype=np.float32).transpose(2, 0, 1) / 255.0
        a = a[:, g.crop_top:g.crop_top + g.out_h]                      # centre crop ('crop')
        out[i, :, g.pad_top:g.pad_top + a.shape[1], g.pad_left:g.pad_left + a.shape[2]] = a
    return out, g


def _axis_weights(coords: np.ndarray, lo: int, hi: int, linear: bool
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices i0, i1 and weight w of i1 for sampling positions `coords` between the rows/columns
    lo..hi (clamped there = edge replication of the image proper, never the padding)."""
    c = np.clip(coords, lo, hi)
    if not linear:
        i = np.rint(c).astype(np.int64)
        return i, i, np.zeros_like(c)
    i0 = np.floor(c).astype(np.int64)
    i1 = np.minimum(i0 + 1, hi)
    return i0, i1, c - i0


def vggt_map_to_original(maps: np.ndarray, g: VggtGeometry, linear: bool = True) -> np.ndarray:
    """(S, out_h, out_w) maps on VGGT's grid -> (S, orig_h, orig_w) float32 on the original grid.
    Original pixel (u, v) (centres at integers) samples the processed map at
        x = (u + 0.5) * resized_w / orig_w - 0.5 + pad_left,
        y = (v + 0.5) * resized_h / orig_h - 0.5 - crop_top + pad_top
    (exact separable bilinear, edge-replicated within half a pixel of the image's border, never
    mixing in padding; a NaN neighbour gives NaN); pixels whose sample falls outside the image
    proper (rows cut by the 'crop' mode) are NaN."""
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim != 3 or m.shape[1:] != (g.out_h, g.out_w):
        raise ValueError(f'maps must be (S, {g.out_h}, {g.out_w}), got {m.shape}')
    x = (np.arange(g.orig_w) + 0.5) * g.scale_x - 0.5 + g.pad_left
    y = (np.arange(g.orig_h) + 0.5) * g.scale_y - 0.5 - g.crop_top + g.pad_top
    y_lo, y_hi = g.pad_top, g.pad_top + min(g.out_h, g.resized_h) - 1
    x_lo, x_hi = g.pad_left, g.pad_left + min(g.out_w, g.resized_w) - 1
    y0, y1, wy = _axis_weights(y, y_lo, y_hi, linear)
    x0, x1, wx = _axis_weights(x, x_lo, x_hi, linear)
    rows = m[:, y0] * (1 - wy)[None, :, None] + m[:, y1] * wy[None, :, None]
    out = rows[:, :, x0] * (1 - wx) + rows[:, :, x1] * wx
    out[:, (y < y_lo - 0.5) | (y > y_hi + 0.5)] = np.nan          # cut away by the crop
    out[:, :, (x < x_lo - 0.5) | (x > x_hi + 0.5)] = np.nan
    return out.astype(np.float32)


def vggt_intrinsics_to_original(K_proc: np.ndarray, g: VggtGeometry) -> np.ndarray:
    """VGGT intrinsics (..., 3, 3) in processed-image pixels -> the original image's pixels,
    through the same map as `vggt_map_to_original`: f_o = f / scale, c_o = (c + offset + 0.5) /
    scale - 0.5 with offset -pad_left for x and crop_top - pad_top for y."""
    K = np.array(K_proc, dtype=np.float64)
    out = K.copy()
    out[..., 0, 0] = K[..., 0, 0] / g.scale_x
    out[..., 1, 1] = K[..., 1, 1] / g.scale_y
    out[..., 0, 1] = K[..., 0, 1] / g.scale_x
    out[..., 0, 2] = (K[..., 0, 2] - g.pad_left + 0.5) / g.scale_x - 0.5
    out[..., 1, 2] = (K[..., 1, 2] + g.crop_top - g.pad_top + 0.5) / g.scale_y - 0.5
    return out


def chunk_ranges(n_frames: int, chunk_size: int, overlap: int) -> list[list[int]]:
    """Overlapping chunks covering 0..n_frames-1 (B.1): each chunk starts `chunk_size - overlap`
    after the previous one; the last chunk is shifted back to end at the last frame (so every
    chunk has `chunk_size` frames when n_frames >= chunk_size, and shares >= overlap frames with
    its predecessor)."""
    if chunk_size < 1 or not 0 <= overlap < chunk_size:
        raise ValueError(f'need chunk_size >= 1 and 0 <= overlap < chunk_size, got '
                         f'{chunk_size}, {overlap}')
    if n_frames <= chunk_size:
        return [list(range(n_frames))] if n_frames > 0 else []
    step = chunk_size - overlap
    starts = list(range(0, n_frames - chunk_size + 1, step))
    if starts[-1] + chunk_size < n_frames:
        starts.append(n_frames - chunk_size)
    return [list(range(s, s + chunk_size)) for s in starts]


def vggt_outputs_to_depths(depth: np.ndarray, depth_conf: np.ndarray, g: VggtGeometry,
                           min_confidence: float | None = None
                           ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """VGGT's depth (1, S, h, w, 1) and depth_conf (1, S, h, w) -> per frame float32 (H, W) depth
    and confidence on the original grid. Depth below `min_confidence` (if given), non-finite or
    <= 0 becomes NaN (unknown)."""
    d = np.asarray(depth, dtype=np.float32)
    c = np.asarray(depth_conf, dtype=np.float32)
    if d.ndim != 5 or d.shape[0] != 1 or d.shape[-1] != 1:
        raise ValueError(f'depth must be (1, S, h, w, 1), got {d.shape}')
    if c.shape != d.shape[:-1]:
        raise ValueError(f'depth_conf must be {d.shape[:-1]}, got {c.shape}')
    dm = vggt_map_to_original(d[0, ..., 0], g)
    cm = vggt_map_to_original(c[0], g)
    bad = ~(np.isfinite(dm) & (dm > 0))
    if min_confidence is not None:
        bad |= ~(cm >= min_confidence)
    dm[bad] = np.nan
    return list(dm), list(cm)


# ------------------------------------------------------------------------------ adapter
class VggtDepth:
    """DepthEstimator backend 'vggt' (relative depth, metric=False).

    Options: checkpoint (model.pt file, or a directory for VGGT.from_pretrained), device,
    preprocess_mode ('crop' as the VGGT demo, or 'pad' to keep every pixel of portrait frames),
    min_confidence (depth_conf threshold; None keeps all), max_frames (refuse larger chunks),
    dtype ('auto': bfloat16 on Ampere+ GPUs, float16 on older ones, float32 on CPU).
    After `predict`: `last_confidence` (per-frame (H, W)), `last_intrinsics` ((S, 3, 3) in the
    original pixels) and `last_extrinsics` ((S, 3, 4), camera-from-first-camera, VGGT's scale).
    """
    metric = False

    def __init__(self, checkpoint: str | None = None, device: str = 'auto',
                 preprocess_mode: str = 'crop', min_confidence: float | None = None,
                 max_frames: int | None = None, dtype: str = 'auto'):
        vggt_mod = require_module('vggt.models.vggt', BACKEND, INSTALL_HINT)
        self._pose_enc = require_module('vggt.utils.pose_enc', BACKEND, INSTALL_HINT)
        ckpt = require_path(checkpoint, BACKEND, 'checkpoint', CKPT_HINT)
        vggt_geometry(518, 518, preprocess_mode)                 # validates the mode
        import torch
        self.device = resolve_device(device, BACKEND)
        if ckpt.is_dir():
            model = vggt_mod.VGGT.from_pretrained(str(ckpt))
        else:
            model = vggt_mod.VGGT()
            model.load_state_dict(torch.load(str(ckpt), map_location='cpu'))
        self.model = model.to(self.device).eval()
        self.preprocess_mode = preprocess_mode
        self.min_confidence = min_confidence
        self.max_frames = max_frames
        if dtype == 'auto':
            if self.device.startswith('cuda'):
                major = torch.cuda.get_device_capability(torch.device(self.device))[0]
                self.dtype = torch.bfloat16 if major >= 8 else torch.float16
            else:
                self.dtype = torch.float32
        else:
            self.dtype = getattr(torch, dtype)
        self.last_confidence: list[np.ndarray] = []
        self.last_intrinsics: np.ndarray | None = None
        self.last_extrinsics: np.ndarray | None = None

    def predict(self, frames: Sequence[np.ndarray], K: np.ndarray | None = None) -> list[np.ndarray]:
        """Depth per frame (float32 (H, W), VGGT's relative units, NaN = unknown) for one chunk.
        K is not used: VGGT estimates its own cameras (see last_intrinsics)."""
        import torch
        if self.max_frames is not None and len(frames) > self.max_frames:
            raise ValueError(f'{BACKEND}: chunk of {len(frames)} frames exceeds max_frames='
                             f'{self.max_frames}; split the video with chunk_ranges()')
        images, g = vggt_preprocess(frames, self.preprocess_mode)
        x = torch.from_numpy(images).to(self.device)
        amp = (torch.autocast('cuda', dtype=self.dtype) if self.device.startswith('cuda')
               and self.dtype != torch.float32 else contextlib.nullcontext())
        with torch.no_grad(), amp:
            pred = self.model(x)
        depths, conf = vggt_outputs_to_depths(to_numpy(pred['depth']), to_numpy(pred['depth_conf']),
                                              g, self.min_confidence)
        self.last_confidence = conf
        if 'pose_enc' in pred:
            extr, intr = self._pose_enc.pose_encoding_to_extri_intri(pred['pose_enc'],
                                                                     tuple(x.shape[-2:]))
            self.last_extrinsics = to_numpy(extr)[0].astype(np.float64)
            self.last_intrinsics = vggt_intrinsics_to_original(to_numpy(intr)[0], g)
        return depths

    def predict_chunks(self, frames: Sequence[np.ndarray], chunk_size: int = 32,
                       overlap: int = 8) -> list[tuple[list[int], np.ndarray]]:
        """Run `predict` on overlapping chunks; returns [(frame indices, depths (F, H, W))], the
        input of core.depth_alignment.align_depth_chunks."""
        return [(idx, np.stack(self.predict([frames[i] for i in idx])))
                for idx in chunk_ranges(len(frames), chunk_size, overlap)]


__all__ = ['VggtDepth', 'VggtGeometry', 'vggt_geometry', 'vggt_preprocess', 'vggt_map_to_original',
           'vggt_intrinsics_to_original', 'vggt_outputs_to_depths', 'chunk_ranges']
