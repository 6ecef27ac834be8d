"""Helpers shared by the foundation-model adapters (sam2, vggt, hamer, humans4d, trellis,
foundationpose, spatialtracker, owlv2).

* Lazy imports and file checks that fail as `BackendUnavailable` with a message naming what to
  install or download, never a silent fallback.
* Device choice ('auto' = CUDA when torch sees one, else CPU).
* The little camera geometry the adapters share (pure numpy, unit-tested): projection,
  unprojection and the intrinsics check (re-exported from dexman_common.camera), and the
  conversion of an HMR-style crop camera (HaMeR, 4D-Humans) to a translation in the real
  camera's `camera_optical` frame.

Pixel convention of the project (stages.py): pixel centres at integer coordinates, K =
[[fx, 0, cx], [0, fy, cy], [0, 0, 1]], camera_optical = OpenCV (x right, y down, z forward).
"""
from __future__ import annotations

import contextlib
import importlib
import os
import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

# camera geometry: the project's one implementation, under the adapters' names
from dexman_common.camera import check_intrinsics as check_K  # noqa: F401
from dexman_common.camera import project_points as project  # noqa: F401
from dexman_common.camera import unproject_pixels as unproject  # noqa: F401

from ..stages import BackendUnavailable


# ------------------------------------------------------------------------------ availability
def require_module(name: str, backend: str, hint: str):
    """Import module `name` or raise BackendUnavailable('<backend>: ... <hint>')."""
    try:
        return importlib.import_module(name)
    except ImportError as e:   # ModuleNotFoundError, or a broken install (missing .so, ...)
        raise BackendUnavailable(f'{backend}: cannot import {name!r} ({e}). {hint}') from e


def require_path(path: str | os.PathLike | None, backend: str, what: str, hint: str) -> Path:
    """The existing path `path`, or BackendUnavailable naming `what` is missing and how to get it."""
    if path is None or str(path) == '':
        raise BackendUnavailable(f'{backend}: no {what} configured. {hint}')
    p = Path(path).expanduser()
    if not p.exists():
        raise BackendUnavailable(f'{backend}: {what} {str(p)!r} does not exist. {hint}')
    return p


def resolve_device(device: str | None, backend: str, cuda_only: bool = False) -> str:
    """'auto'/None -> 'cuda' when torch sees a GPU else 'cpu'. An explicit CUDA device without a
    GPU, or a CPU device for a CUDA-only library, is BackendUnavailable."""
    import torch
    dev = 'cuda' if device in (None, 'auto') and torch.cuda.is_available() else device
    if dev in (None, 'auto'):
        dev = 'cpu'
    dev = str(dev)
    if dev.startswith('cuda') and not torch.cuda.is_available():
        raise BackendUnavailable(f'{backend}: device {dev!r} requested but torch {torch.__version__} '
                                 'sees no CUDA GPU' + ('' if cuda_only else "; pass device='cpu'"))
    if cuda_only and not dev.startswith('cuda'):
        raise BackendUnavailable(f'{backend}: the library runs on CUDA only (its renderer/kernels '
                                 f'have no CPU path); device {dev!r} cannot be used')
    return dev


@contextlib.contextmanager
def repo_context(root: Path | None, chdir: bool = False) -> Iterator[None]:
    """Temporarily put a source checkout on sys.path (and optionally make it the working
    directory: HaMeR's and ViTPose's code resolve './_DATA' and './third-party' from the cwd)."""
    if root is None:
        yield
        return
    root_s = str(root)
    if root_s not in sys.path:      # stays on sys.path: the library imports submodules lazily
        sys.path.insert(0, root_s)
    old = os.getcwd()
    try:
        if chdir:
            os.chdir(root_s)
        yield
    finally:
        if chdir:
            os.chdir(old)


# ------------------------------------------------------------------------------ inputs
def vitdet_person_detector(package, utils_module: str, det_ckpt: Path, backend: str, hint: str):
    """The detectron2 ViTDet-H (cascade mask R-CNN) person detector the HaMeR and 4D-Humans demos
    build: the config shipped in `package` (hamer or hmr2), score threshold 0.25 on all 3 cascade
    stages, wrapped by the package's `utils_detectron2.DefaultPredictor_Lazy`."""
    lazy = require_module(utils_module, backend, hint)
    d2cfg = require_module('detectron2.config', backend, hint)
    cfg = d2cfg.LazyConfig.load(str(Path(package.__file__).parent / 'configs' /
                                    'cascade_mask_rcnn_vitdet_h_75ep.py'))
    cfg.train.init_checkpoint = str(det_ckpt)
    for i in range(3):
        cfg.model.roi_heads.box_predictors[i].test_score_thresh = 0.25
    return lazy.DefaultPredictor_Lazy(cfg)


def check_rgb(rgb: np.ndarray, what: str = 'rgb') -> np.ndarray:
    """An RGB uint8 (H, W, 3) image, else ValueError."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f'{what} must be RGB uint8 (H, W, 3), got {a.dtype} {a.shape}')
    return a


def check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A non-empty list of RGB uint8 frames of one size, else ValueError."""
    out = [check_rgb(f, f'frame {i}') for i, f in enumerate(frames)]
    if not out:
        raise ValueError('no frames')
    if any(f.shape != out[0].shape for f in out):
        raise ValueError(f'frames differ in size: {sorted({f.shape for f in out})}')
    return out


# ------------------------------------------------------------------------------ geometry
def cam_crop_to_camera(pred_cam: np.ndarray, box_center: np.ndarray, box_size: np.ndarray,
                       K: np.ndarray) -> np.ndarray:
    """Camera translation of an HMR-style crop prediction in the real camera (HaMeR, 4D-Humans).

    The networks predict a weak-perspective crop camera pred_cam = (s, tx, ty) for a square crop of
    side `box_size` px centred at `box_center` (full-image pixels). Their demos convert it with
    `cam_crop_to_full(pred_cam, box_center, box_size, img_size, focal)`, which assumes a focal
    length `FOCAL_LENGTH / IMAGE_SIZE * max(W, H)` and the principal point at the image centre.
    Here the same relation uses the real intrinsics, so that the model's (metric) MANO/SMPL
    points plus the returned translation project onto the same pixels through K:

        tz = 2 f / (b s),   tx' = 2 (cx_box - cx) / (b s) + tx,   ty' = 2 (cy_box - cy) / (b s) + ty

    with f = (fx + fy) / 2 (the crop camera is isotropic) and (cx, cy) from K. Returns (N, 3) m.
    """
    pc = np.asarray(pred_cam, dtype=np.float64).reshape(-1, 3)
    c = np.asarray(box_center, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(box_size, dtype=np.float64).reshape(-1)
    f = 0.5 * (K[0, 0] + K[1, 1])
    bs = b * pc[:, 0] + 1e-9
    tz = 2.0 * f / bs
    tx = 2.0 * (c[:, 0] - K[0, 2]) / bs + pc[:, 1]
    ty = 2.0 * (c[:, 1] - K[1, 2]) / bs + pc[:, 2]
    return np.stack([tx, ty, tz], axis=-1)


def to_numpy(x) -> np.ndarray:
    """A torch tensor (any device/dtype) or array-like -> numpy (float tensors as float32+)."""
    if hasattr(x, 'detach'):
        x = x.detach()
        if hasattr(x, 'float') and x.dtype.is_floating_point:
            x = x.float()
        x = x.cpu().numpy()
    return np.asarray(x)
