"""SAM2 video segmentation adapter (paper Sec. 3.1, B.1, B.4: target objects, hands, table).

Follows facebookresearch/sam2 release 1.1.0 (PyPI `sam2==1.1.0`, the `sam2.1` configs):

    from sam2.build_sam import build_sam2_video_predictor
    predictor = build_sam2_video_predictor(config, ckpt_path, device=..., hydra_overrides_extra=[...])
    state = predictor.init_state(video_path=<folder of '<index>.jpg'>)
    predictor.add_new_mask(state, frame_idx=0, obj_id=k, mask=bool (H, W))          # mask prompt
    predictor.add_new_points_or_box(state, frame_idx=0, obj_id=k, box=[x0, y0, x1, y1])
    for frame_idx, obj_ids, video_res_masks in predictor.propagate_in_video(state):
        ...   # video_res_masks: float logits (num_objects, 1, H, W) at the video's resolution

`init_state` only reads a JPEG folder or an MP4 file, so the frames are written losslessly enough
(JPEG quality 95, no chroma subsampling) to a temporary folder named `00000.jpg, ...`; SAM2
resizes them itself to `image_size` (PIL, square) and normalises with ImageNet mean/std. A mask
is `logit > mask_threshold` (SAM2's own threshold is 0.0).

Install (optional extra, not needed by the CPU default pipeline; `pip install sam2` would pull a
CUDA torch, so dependencies are installed explicitly):
    pip install pillow hydra-core iopath           # (numpy, tqdm, torch already installed)
    SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation sam2==1.1.0
Weights: e.g. `sam2.1_hiera_tiny.pt` with config 'configs/sam2.1/sam2.1_hiera_t.yaml'. Without the
compiled `sam2._C` extension SAM2 warns once and skips only its small-hole filling.

Without a checkpoint the adapter refuses to run (BackendUnavailable), unless
`allow_random_weights=True` (tests only: the masks are then meaningless noise of the right shape).
`image_size` (a multiple of 32) lowers SAM2's internal resolution (default 1024) for CPU tests;
the memory-attention RoPE feature size is set to image_size/16 with it.
"""
from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Hashable, Mapping, Sequence

import numpy as np

from ..stages import BackendUnavailable
from ._adapter_util import check_frames, require_module, require_path, resolve_device, to_numpy

BACKEND = 'sam2'
INSTALL_HINT = ("Install the optional SAM2 extra: 'pip install pillow hydra-core iopath' then "
                "'SAM2_BUILD_CUDA=0 pip install --no-deps --no-build-isolation sam2==1.1.0'.")
CKPT_HINT = ("Download a SAM2.1 checkpoint (e.g. sam2.1_hiera_tiny.pt from the facebookresearch/sam2 "
             "release) and pass checkpoint=<path> with the matching config "
             "(e.g. 'configs/sam2.1/sam2.1_hiera_t.yaml').")
DEFAULT_CONFIG = 'configs/sam2.1/sam2.1_hiera_t.yaml'


# ------------------------------------------------------------------------------ pure helpers
def resolution_overrides(image_size: int | None) -> list[str]:
    """Hydra overrides that run SAM2 at `image_size` px instead of its config's 1024: the model's
    image size and the RoPE feature sizes of memory attention (image_size / 16, the stride of the
    top backbone level SAM2 keeps)."""
    if image_size is None:
        return []
    s = int(image_size)
    if s <= 0 or s % 32:
        raise ValueError(f'image_size must be a positive multiple of 32, got {image_size}')
    f = s // 16
    return [f'++model.image_size={s}',
            f'++model.memory_attention.layer.self_attention.feat_sizes=[{f},{f}]',
            f'++model.memory_attention.layer.cross_attention.feat_sizes=[{f},{f}]']


def normalize_prompts(prompts: Mapping[Hashable, np.ndarray], shape: tuple[int, int]
                      ) -> list[tuple[Hashable, str, np.ndarray]]:
    """Our prompts {object id: bool mask (H, W) | box [x0, y0, x1, y1]} -> [(id, 'mask'|'box',
    value)], validated against the frame size (H, W). Boxes are float32 pixels, clipped to the
    image; masks bool. Empty masks and degenerate boxes are ValueError (SAM2 would invent one)."""
    if not prompts:
        raise ValueError('no prompts: give at least one object id -> mask or box')
    h, w = shape
    out = []
    for oid, p in prompts.items():
        a = np.asarray(p)
        if a.ndim == 2:
            if a.shape != (h, w):
                raise ValueError(f'mask prompt of {oid!r} is {a.shape}, frames are {(h, w)}')
            m = a.astype(bool)
            if not m.any():
                raise ValueError(f'mask prompt of {oid!r} is empty')
            out.append((oid, 'mask', m))
        elif a.shape == (4,):
            b = a.astype(np.float64)
            b = np.array([np.clip(b[0], 0, w - 1), np.clip(b[1], 0, h - 1),
                          np.clip(b[2], 0, w - 1), np.clip(b[3], 0, h - 1)])
            if not (np.all(np.isfinite(b)) and b[2] > b[0] and b[3] > b[1]):
                raise ValueError(f'box prompt of {oid!r} is degenerate: {a.tolist()}')
            out.append((oid, 'box', b.astype(np.float32)))
        else:
            raise ValueError(f'prompt of {oid!r} must be a (H, W) mask or a [x0, y0, x1, y1] box, '
                             f'got shape {a.shape}')
    return out


def masks_from_logits(video_res_masks, obj_ids: Sequence[int], id_of: Mapping[int, Hashable],
                      threshold: float = 0.0) -> dict[Hashable, np.ndarray]:
    """One propagate_in_video step -> {our object id: bool (H, W)}. `video_res_masks` are SAM2's
    logits (num_objects, 1, H, W) in the order of `obj_ids` (SAM2's int ids), `id_of` maps them back
    to ours."""
    logits = to_numpy(video_res_masks)
    if logits.ndim != 4 or logits.shape[1] != 1 or logits.shape[0] != len(obj_ids):
        raise ValueError(f'expected logits (num_objects={len(obj_ids)}, 1, H, W), '
                         f'got {logits.shape}')
    return {id_of[int(o)]: logits[i, 0] > threshold for i, o in enumerate(obj_ids)}


def write_jpeg_frames(frames: Sequence[np.ndarray], folder: str | Path, quality: int = 95) -> None:
    """Frames as '<index:05d>.jpg' (the naming SAM2's JPEG-folder loader sorts by int)."""
    from PIL import Image
    for i, f in enumerate(frames):
        Image.fromarray(f, 'RGB').save(Path(folder) / f'{i:05d}.jpg', quality=int(quality),
                                       subsampling=0)


# ------------------------------------------------------------------------------ adapter
class Sam2Segmenter:
    """Segmenter backend 'sam2': SAM2 video predictor, prompted on the first frame.

    Options: checkpoint (path to a SAM2/SAM2.1 .pt), config (hydra config name inside the sam2
    package, default 'configs/sam2.1/sam2.1_hiera_t.yaml'), device ('auto' | 'cpu' | 'cuda[:n]'),
    image_size (override SAM2's 1024 px, multiple of 32), hydra_overrides (extra list),
    mask_threshold (logit threshold, 0.0), offload_video_to_cpu, autocast_bf16 (CUDA only),
    allow_random_weights (tests only; without it a missing checkpoint is BackendUnavailable).
    """

    def __init__(self, checkpoint: str | None = None, config: str = DEFAULT_CONFIG,
                 device: str = 'auto', image_size: int | None = None,
                 hydra_overrides: Sequence[str] = (), mask_threshold: float = 0.0,
                 offload_video_to_cpu: bool = False, autocast_bf16: bool = True,
                 jpeg_quality: int = 95, allow_random_weights: bool = False):
        build = require_module('sam2.build_sam', BACKEND, INSTALL_HINT)
        if checkpoint is None and not allow_random_weights:
            raise BackendUnavailable(f'{BACKEND}: no checkpoint configured. {CKPT_HINT}')
        ckpt = None if checkpoint is None else str(
            require_path(checkpoint, BACKEND, 'checkpoint', CKPT_HINT))
        self.device = resolve_device(device, BACKEND)
        overrides = resolution_overrides(image_size) + list(hydra_overrides)
        try:
            self.predictor = build.build_sam2_video_predictor(
                config, ckpt_path=ckpt, device=self.device, hydra_overrides_extra=overrides)
        except Exception as e:        # hydra MissingConfigException, bad checkpoint keys, ...
            if type(e).__name__ == 'MissingConfigException':
                raise BackendUnavailable(f'{BACKEND}: config {config!r} not found in the sam2 '
                                         f'package ({e})') from e
            raise
        self.random_weights = ckpt is None
        self.mask_threshold = float(mask_threshold)
        self.offload_video_to_cpu = bool(offload_video_to_cpu)
        self.autocast_bf16 = bool(autocast_bf16)
        self.jpeg_quality = int(jpeg_quality)

    def _autocast(self):
        import torch
        if self.device.startswith('cuda') and self.autocast_bf16:
            return torch.autocast('cuda', dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def segment_video(self, frames: Sequence[np.ndarray],
                      prompts: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """prompts: object id -> first-frame bool mask (H, W) or box [x0, y0, x1, y1].
        Returns per frame {object id: bool mask (H, W)}."""
        import torch
        frames = check_frames(frames)
        inputs = normalize_prompts(prompts, frames[0].shape[:2])
        id_of = {k + 1: oid for k, (oid, _, _) in enumerate(inputs)}      # SAM2 ids: 1..N
        out: list[dict | None] = [None] * len(frames)
        with tempfile.TemporaryDirectory(prefix='dexman_sam2_') as tmp:
            write_jpeg_frames(frames, tmp, self.jpeg_quality)
            with torch.inference_mode(), self._autocast():
                state = self.predictor.init_state(
                    video_path=tmp, offload_video_to_cpu=self.offload_video_to_cpu)
                for k, (_, kind, value) in enumerate(inputs):
                    if kind == 'mask':
                        self.predictor.add_new_mask(state, frame_idx=0, obj_id=k + 1, mask=value)
                    else:
                        self.predictor.add_new_points_or_box(state, frame_idx=0, obj_id=k + 1,
                                                             box=value)
                for f, obj_ids, logits in self.predictor.propagate_in_video(state):
                    out[f] = masks_from_logits(logits, obj_ids, id_of, self.mask_threshold)
                self.predictor.reset_state(state)
        missing = [i for i, o in enumerate(out) if o is None]
        if missing:
            raise RuntimeError(f'{BACKEND}: propagation returned no masks for frames {missing}')
        return out  # type: ignore[return-value]
