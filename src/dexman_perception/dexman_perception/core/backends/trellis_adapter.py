"""TRELLIS image-to-3D mesh adapter (paper Sec. 3.1: a rigid mesh from the SAM2 crop of the first
frame; no metric scale, no pose).

Follows microsoft/TRELLIS (main branch, 2024-12/2025; `TRELLIS-image-large`):

    from trellis.pipelines import TrellisImageTo3DPipeline
    pipeline = TrellisImageTo3DPipeline.from_pretrained(path); pipeline.cuda()
    outputs = pipeline.run(PIL image, seed=1, formats=['mesh'],
                           sparse_structure_sampler_params={'steps': 12, 'cfg_strength': 7.5},
                           slat_sampler_params={'steps': 12, 'cfg_strength': 3})
    outputs['mesh'][0]   MeshExtractResult: .vertices (V, 3) float, .faces (F, 3) long (torch, CUDA)

`pipeline.preprocess_image` uses an RGBA image's alpha as the foreground (no rembg when the alpha
is not all 255), crops its bounding box enlarged 1.2x and resizes it to 518 px. So the adapter
hands it the SAM2 crop as RGBA: alpha = the object mask, cut out around the mask with a margin
(`mask_crop_rgba`), so TRELLIS never segments the object itself.

Output frame: TRELLIS's own normalised cube (about [-0.5, 0.5]^3, z up). `to_glb` rotates it
z-up -> y-up for GLB files; the adapter returns the raw mesh (up_axis='z'), or rotated to y-up
with up_axis='y'. The size is arbitrary: the pipeline finds the object's scale with
FoundationPose over candidate scales (Any6D style, foundationpose_adapter.register_scales).

Install: TRELLIS is not on PyPI and needs CUDA (spconv, xformers/flash-attn, kaolin, nvdiffrast,
utils3d): follow its setup.sh in a checkout and pass trellis_root=<checkout>; weights: a local copy
of TRELLIS-image-large (pipeline.json + ckpts/) as model_path, and DINOv2 (`facebookresearch/
dinov2`, dinov2_vitl14_reg) in the torch hub cache (TRELLIS loads it with torch.hub.load).
"""
from __future__ import annotations

import numpy as np

from ..stages import BackendUnavailable, StageFailure
from ._adapter_util import check_rgb, repo_context, require_module, require_path, resolve_device, to_numpy

BACKEND = 'trellis'
INSTALL_HINT = ("TRELLIS is not on PyPI: clone microsoft/TRELLIS, run its setup.sh (CUDA: spconv, "
                "xformers, kaolin, nvdiffrast, utils3d) and pass trellis_root=<checkout>.")
CKPT_HINT = ("Download TRELLIS-image-large (pipeline.json + ckpts/) and pass model_path=<dir>; "
             "DINOv2 (dinov2_vitl14_reg) must be in the torch hub cache (TORCH_HOME).")
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])   # as to_glb


# ------------------------------------------------------------------------------ pure helpers
def mask_crop_rgba(rgb: np.ndarray, mask: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """The object cut out for TRELLIS: an RGBA uint8 crop whose alpha is 255 on the mask and 0
    elsewhere, the square around the mask's bounding box enlarged by `margin` of its side on every
    side (clipped to the image). Raises ValueError for an empty mask or size mismatch."""
    rgb = check_rgb(rgb)
    m = np.asarray(mask, dtype=bool)
    if m.shape != rgb.shape[:2]:
        raise ValueError(f'mask {m.shape} does not match image {rgb.shape[:2]}')
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        raise ValueError('empty object mask')
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = max(x1 - x0, y1 - y0)
    half = side * (0.5 + margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    h, w = m.shape
    a0, a1 = max(0, int(np.floor(cx - half))), min(w, int(np.ceil(cx + half)))
    b0, b1 = max(0, int(np.floor(cy - half))), min(h, int(np.ceil(cy + half)))
    rgba = np.zeros((b1 - b0, a1 - a0, 4), dtype=np.uint8)
    rgba[..., :3] = rgb[b0:b1, a0:a1]
    rgba[..., 3] = np.where(m[b0:b1, a0:a1], 255, 0)
    return rgba


def trellis_mesh_to_trimesh(vertices, faces, up_axis: str = 'z'):
    """TRELLIS MeshExtractResult arrays -> trimesh.Trimesh (float64 vertices, int64 faces), in
    TRELLIS's frame (up_axis='z') or rotated like `to_glb` (up_axis='y': v @ Z_UP_TO_Y_UP)."""
    import trimesh
    v = np.asarray(to_numpy(vertices), dtype=np.float64)
    f = np.asarray(to_numpy(faces), dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f'expected vertices (V, 3) and faces (F, 3), got {v.shape}, {f.shape}')
    if len(f) == 0:
        raise StageFailure('TRELLIS produced an empty mesh')
    if up_axis == 'y':
        v = v @ Z_UP_TO_Y_UP
    elif up_axis != 'z':
        raise ValueError(f"up_axis must be 'z' or 'y', got {up_axis!r}")
    return trimesh.Trimesh(vertices=v, faces=f, process=True)


# ------------------------------------------------------------------------------ adapter
class TrellisMesh:
    """MeshReconstructor backend 'trellis'.

    Options: model_path (local TRELLIS-image-large directory), trellis_root (checkout to import
    from, if not installed), device (CUDA only), seed (1), sparse_steps / sparse_cfg (12, 7.5),
    slat_steps / slat_cfg (12, 3.0), margin (crop margin, 0.1), up_axis ('z' | 'y').
    """

    def __init__(self, model_path: str | None = None, trellis_root: str | None = None,
                 device: str = 'cuda', seed: int = 1, sparse_steps: int = 12,
                 sparse_cfg: float = 7.5, slat_steps: int = 12, slat_cfg: float = 3.0,
                 margin: float = 0.1, up_axis: str = 'z'):
        root = None if trellis_root is None else require_path(trellis_root, BACKEND,
                                                              'trellis_root', INSTALL_HINT)
        with repo_context(root):
            pipes = require_module('trellis.pipelines', BACKEND, INSTALL_HINT)
        path = require_path(model_path, BACKEND, 'model_path', CKPT_HINT)
        require_path(path / 'pipeline.json', BACKEND, 'pipeline.json', CKPT_HINT)
        self.device = resolve_device(device, BACKEND, cuda_only=True)
        try:
            self.pipeline = pipes.TrellisImageTo3DPipeline.from_pretrained(str(path))
        except (OSError, RuntimeError) as e:   # e.g. DINOv2 not in the hub cache, offline
            raise BackendUnavailable(f'{BACKEND}: loading the pipeline failed ({e}). {CKPT_HINT}') from e
        self.pipeline.to(self.device)
        self.seed = int(seed)
        self.sparse_params = {'steps': int(sparse_steps), 'cfg_strength': float(sparse_cfg)}
        self.slat_params = {'steps': int(slat_steps), 'cfg_strength': float(slat_cfg)}
        self.margin = float(margin)
        trellis_mesh_to_trimesh(np.zeros((3, 3)), np.array([[0, 1, 2]]), up_axis)  # validates
        self.up_axis = up_axis

    def reconstruct(self, rgb: np.ndarray, mask: np.ndarray, depth: np.ndarray | None,
                    K: np.ndarray):
        """A trimesh.Trimesh of the masked object in TRELLIS's frame (not metric; depth and K are
        not used: the scale is found later with FoundationPose)."""
        from PIL import Image
        crop = mask_crop_rgba(rgb, mask, self.margin)
        out = self.pipeline.run(Image.fromarray(crop, 'RGBA'), seed=self.seed, formats=['mesh'],
                                sparse_structure_sampler_params=self.sparse_params,
                                slat_sampler_params=self.slat_params)
        mesh = out['mesh'][0]
        return trellis_mesh_to_trimesh(mesh.vertices, mesh.faces, self.up_axis)
