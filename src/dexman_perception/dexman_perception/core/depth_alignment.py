"""Object-centric affine alignment of chunked relative depth (DexMan paper, Sec. 3.2 and B.1).

VGGT runs on overlapping chunks of the video; each chunk's depth has its own (relative) scale and
offset, and the discrepancy between chunks differs from region to region. B.1 therefore aligns
each entity o (the hands and the target objects, segmented by SAM2) separately: on the frame(s)
that chunk k shares with chunk k-1,

    (a_k^o, b_k^o) = argmin_{a, b} || a · D_k^o + b − D_{k-1}^o ||_2

where D_k^o are chunk k's raw depths at o's pixels and D_{k-1}^o the already aligned depths of
chunk k-1 at the same pixels of the same frame(s). Then every pixel of o in every frame of chunk k
becomes a_k^o · D + b_k^o. Chunk 0 is the reference, and the alignment propagates chunk by chunk,
so every chunk ends up in chunk 0's depth scale. The least-squares solution in closed form
(x = D_k^o, y = D_{k-1}^o over the n usable pixels):

    a = Σ (x − x̄)(y − ȳ) / Σ (x − x̄)²,     b = ȳ − a · x̄

Our calls where the paper is silent
    * Several overlapping frames: the pixels of o in all overlapping frames are pooled into one fit.
    * Pixels of no entity (table, background): the paper restricts the alignment to hands and
      target objects. By default (``background='background'``) they get their own affine fit on
      the overlap pixels that belong to no entity, which keeps the scene roughly consistent with
      the entities. ``'global'`` uses the global fit (all valid overlap pixels, entities included),
      ``'raw'`` leaves them unaligned.
    * Fallback: an entity absent from the overlap, or with fewer than ``min_pixels`` usable pixels
      there, or whose depths there have no spread (a and b not identifiable), or whose fit has
      a <= 0 (it would invert the depth order), gets the global fit; the background falls back
      the same way. Each fallback is reported with its reason. If even
      the global fit is impossible (no usable overlap pixel) the alignment raises.
    * Overlapping masks: a pixel is owned by one entity, the first in ``entities`` order (default:
      order of first appearance in ``masks``); the same ownership is used for fitting and applying.
    * Invalid depth (NaN, ±inf, <= 0) is never used in a fit and stays NaN in the output.
    * A frame present in several chunks is output from the first chunk holding it (the one the
      later chunk was aligned to); ``overlap_policy`` can pick 'last' or 'mean' (mean of the
      valid values) instead. Every chunk's aligned depth is also returned.

Units: relative depth (VGGT's units, unitless until B.2 rescales it), along the camera_optical z
axis (OpenCV: z forward, x right, y down). a is unitless, b in depth units.

Nothing here imports rclpy.
"""
from __future__ import annotations

import dataclasses
from typing import Hashable, Mapping, Sequence

import numpy as np

from dexman_common.config import ConfigBase

from .perception_config import YAML_FILE, configured

BACKGROUND = None          # entity key of the "no entity" pixels in the report
BACKGROUND_MODES = ('background', 'global', 'raw')
OVERLAP_POLICIES = ('first', 'last', 'mean')


@dataclasses.dataclass(frozen=True)
class DepthAlignmentConfig(ConfigBase):
    """Tunables of B.1 (module docstring); values in config/perception.yaml [depth_alignment].
    chunk_size / chunk_overlap: how the depth stage cuts the video into chunks for VGGT."""

    SECTION = 'depth_alignment'
    YAML_FILE = YAML_FILE

    min_pixels: int = 20               # fewest usable overlap pixels for an entity's own fit
    background: str = 'background'     # 'background' | 'global' | 'raw'
    overlap_policy: str = 'first'      # 'first' | 'last' | 'mean'
    chunk_size: int = 32               # frames per chunk
    chunk_overlap: int = 8             # frames shared by consecutive chunks


class DepthAlignmentError(ValueError):
    """The chunks cannot be aligned (no overlap, inconsistent shapes, no usable pixel)."""


@dataclasses.dataclass
class DepthChunk:
    """One chunk of relative depth: ``depths[i]`` (H, W) is video frame ``frames[i]``."""
    frames: Sequence[int]
    depths: np.ndarray


@dataclasses.dataclass(frozen=True)
class AffineFit:
    """(a, b) applied to the raw depth of chunk ``chunk`` at the pixels of ``entity``.

    entity: an entity id, or None for the pixels of no entity. source: 'reference' (chunk 0),
    'entity' (its own fit), 'background' (fit on no-entity pixels), 'global' (all overlap pixels;
    either chosen or a fallback, see ``reason``), 'raw' (left unaligned). n_pixels and
    rms_residual (depth units) describe the fit that produced (a, b), on the overlap pixels.
    """
    chunk: int
    entity: Hashable | None
    a: float
    b: float
    n_pixels: int
    rms_residual: float
    source: str
    reason: str = ''

    @property
    def is_fallback(self) -> bool:
        return bool(self.reason) and self.source == 'global'


@dataclasses.dataclass
class DepthAlignmentResult:
    frames: list[int]                  # sorted union of all chunks' frames
    depths: np.ndarray                 # (N, H, W) aligned depth per frame, NaN where invalid
    chunk_depths: list[np.ndarray]     # per chunk, (F_k, H, W) aligned
    overlaps: list[list[int]]          # overlaps[k] = frames shared by chunks k-1 and k ([] for k=0)
    fits: list[AffineFit]              # every (chunk, entity) mapping applied
    entities: list[Hashable]           # entity ids in priority order

    def fit(self, chunk: int, entity: Hashable | None) -> AffineFit:
        for f in self.fits:
            if f.chunk == chunk and f.entity == entity:
                return f
        raise KeyError((chunk, entity))

    def depth(self, frame: int) -> np.ndarray:
        return self.depths[self.frames.index(frame)]

    @property
    def fallbacks(self) -> list[AffineFit]:
        return [f for f in self.fits if f.is_fallback]


def valid_depth(d: np.ndarray) -> np.ndarray:
    """Usable depth: finite and strictly positive."""
    return np.isfinite(d) & (d > 0)


def fit_affine(x: np.ndarray, y: np.ndarray, min_pixels: int = 1,
               spread_rtol: float = 1e-9) -> tuple[tuple[float, float, float] | None, str]:
    """Least squares y ≈ a·x + b. Returns ((a, b, rms_residual), '') or (None, reason).

    None when fewer than max(2, min_pixels) samples, or when x has no spread
    (std(x) <= spread_rtol·|mean(x)|): then a and b are not identifiable.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    n = x.size
    if n < max(2, int(min_pixels)):
        return None, f'{n} usable overlap pixel(s) < {max(2, int(min_pixels))}'
    xm, ym = x.mean(), y.mean()
    dx = x - xm
    var = float(dx @ dx)
    if var <= n * (spread_rtol * abs(xm)) ** 2 or var == 0.0:
        return None, f'its {n} overlap depths have no spread (all ~{xm:.6g}): a, b not identifiable'
    a = float(dx @ (y - ym)) / var
    b = float(ym - a * xm)
    r = a * x + b - y
    return (a, b, float(np.sqrt(np.mean(r * r)))), ''


def _fit_positive(x, y, min_pixels):
    """fit_affine, refusing a <= 0 (it would invert the depth order inside the region)."""
    p, why = fit_affine(x, y, min_pixels)
    if p is not None and not p[0] > 0:
        return None, f'its fit has a = {p[0]:.4g} <= 0 (would invert the depth order)'
    return p, why


def _label_map(frame_masks: Mapping[Hashable, np.ndarray] | None, order: list[Hashable],
               shape: tuple[int, int]) -> np.ndarray:
    """int16 (H, W): index into ``order`` of the pixel's owner, -1 for no entity."""
    lab = np.full(shape, -1, dtype=np.int16)
    if not frame_masks:
        return lab
    for i in range(len(order) - 1, -1, -1):           # first in order is written last: it wins
        m = frame_masks.get(order[i])
        if m is None:
            continue
        m = np.asarray(m, dtype=bool)
        if m.shape != shape:
            raise DepthAlignmentError(f'mask of {order[i]!r} has shape {m.shape}, depth {shape}')
        lab[m] = i
    return lab


def align_depth_chunks(chunks: Sequence[DepthChunk | tuple[Sequence[int], np.ndarray]],
                       masks: Mapping[int, Mapping[Hashable, np.ndarray]],
                       *, entities: Sequence[Hashable] | None = None,
                       config: DepthAlignmentConfig | None = None, dtype=np.float32,
                       **overrides) -> DepthAlignmentResult:
    """Align chunked relative depth chunk by chunk with per-entity affine maps (B.1).

    chunks: in video order; chunk k is (frames, depths (F_k, H, W)) with frames global frame
        indices; consecutive chunks must share >= 1 frame.
    masks: frame index -> {entity id: (H, W) bool mask} (hands and target objects; a frame without
        an entry has no entity pixels).
    entities: the entity ids to align, in ownership priority order (default: every id in
        ``masks`` in order of first appearance); pixels of other ids count as background.
    config: a DepthAlignmentConfig (default: its defaults = config/perception.yaml
        [depth_alignment]); keyword overrides replace its values:
        min_pixels: fewest usable overlap pixels for an entity's own fit (else the global fit);
        background: 'background' | 'global' | 'raw', see the module docstring;
        overlap_policy: 'first' | 'last' | 'mean', which chunk's aligned depth a shared frame gets.
    dtype: dtype of the returned depth (fits are computed in float64).
    """
    cfg = configured(DepthAlignmentConfig, config, overrides)
    min_pixels, background, overlap_policy = cfg.min_pixels, cfg.background, cfg.overlap_policy
    if background not in BACKGROUND_MODES:
        raise ValueError(f'background must be one of {BACKGROUND_MODES}')
    if overlap_policy not in OVERLAP_POLICIES:
        raise ValueError(f'overlap_policy must be one of {OVERLAP_POLICIES}')
    chunk_list: list[tuple[list[int], np.ndarray]] = []
    for k, c in enumerate(chunks):
        frames, depths = (c.frames, c.depths) if isinstance(c, DepthChunk) else c
        frames = [int(f) for f in frames]
        depths = np.asarray(depths, dtype=np.float64)
        if depths.ndim != 3 or depths.shape[0] != len(frames):
            raise DepthAlignmentError(f'chunk {k}: depths {depths.shape} for {len(frames)} frames')
        if len(set(frames)) != len(frames):
            raise DepthAlignmentError(f'chunk {k}: repeated frame index')
        if chunk_list and depths.shape[1:] != chunk_list[0][1].shape[1:]:
            raise DepthAlignmentError(f'chunk {k}: image size {depths.shape[1:]} differs from chunk 0')
        chunk_list.append((frames, depths))
    if not chunk_list:
        raise DepthAlignmentError('no chunks')
    shape = chunk_list[0][1].shape[1:]

    if entities is None:
        order: list[Hashable] = []
        for f in sorted(masks):
            for e in masks[f]:
                if e not in order:
                    order.append(e)
    else:
        order = list(entities)
    labels: dict[int, np.ndarray] = {}

    def label(f: int) -> np.ndarray:
        if f not in labels:
            labels[f] = _label_map(masks.get(f), order, shape)
        return labels[f]

    frames0, raw0 = chunk_list[0]
    aligned0 = np.where(valid_depth(raw0), raw0, np.nan)
    chunk_aligned = [aligned0]
    overlaps: list[list[int]] = [[]]
    fits = [AffineFit(0, BACKGROUND, 1.0, 0.0, 0, 0.0, 'reference', '')]
    fits += [AffineFit(0, e, 1.0, 0.0, 0, 0.0, 'reference', '') for i, e in enumerate(order)
             if any(np.any(label(f) == i) for f in frames0)]

    for k in range(1, len(chunk_list)):
        frames_k, raw_k = chunk_list[k]
        frames_p = chunk_list[k - 1][0]
        aligned_p = chunk_aligned[k - 1]
        shared = [f for f in frames_k if f in set(frames_p)]
        if not shared:
            raise DepthAlignmentError(f'chunks {k - 1} and {k} share no frame')
        overlaps.append(shared)
        xs, ys, ls = [], [], []
        for f in shared:
            x = raw_k[frames_k.index(f)]
            y = aligned_p[frames_p.index(f)]
            ok = valid_depth(x) & valid_depth(y)
            xs.append(x[ok])
            ys.append(y[ok])
            ls.append(label(f)[ok])
        x, y, lab = np.concatenate(xs), np.concatenate(ys), np.concatenate(ls)
        glob, why = fit_affine(x, y, min_pixels=2)
        if glob is None:
            raise DepthAlignmentError(f'chunk {k}: no global fit on the overlap {shared}: {why}')
        n_glob = int(x.size)

        def global_fit(entity, reason: str) -> AffineFit:
            return AffineFit(k, entity, glob[0], glob[1], n_glob, glob[2], 'global', reason)

        present = [i for i in range(len(order)) if any(np.any(label(f) == i) for f in frames_k)]
        params: dict[int, tuple[float, float] | None] = {}
        for i in present:
            e = order[i]
            sel = lab == i
            if not np.any(sel):
                fit = global_fit(e, f'entity {e!r} is absent from the overlap {shared}')
            else:
                p, why = _fit_positive(x[sel], y[sel], min_pixels)
                fit = (AffineFit(k, e, p[0], p[1], int(sel.sum()), p[2], 'entity') if p is not None
                       else global_fit(e, f'entity {e!r}: {why}'))
            fits.append(fit)
            params[i] = (fit.a, fit.b)
        if background == 'raw':
            fits.append(AffineFit(k, BACKGROUND, 1.0, 0.0, 0, float('nan'), 'raw'))
            params[-1] = (1.0, 0.0)
        elif background == 'global':
            fits.append(global_fit(BACKGROUND, ''))
            params[-1] = (glob[0], glob[1])
        else:
            sel = lab == -1
            p, why = _fit_positive(x[sel], y[sel], min_pixels)
            fit = (AffineFit(k, BACKGROUND, p[0], p[1], int(sel.sum()), p[2], 'background')
                   if p is not None else global_fit(BACKGROUND, f'background: {why}'))
            fits.append(fit)
            params[-1] = (fit.a, fit.b)

        out = np.full(raw_k.shape, np.nan)
        for j, f in enumerate(frames_k):
            d = raw_k[j]
            ok = valid_depth(d)
            lab_f = label(f)
            o = out[j]
            for i, (a, b) in params.items():       # every label in chunk k has params
                sel = ok & (lab_f == i)
                o[sel] = a * d[sel] + b
        chunk_aligned.append(out)

    all_frames = sorted({f for fr, _ in chunk_list for f in fr})
    pos = {f: n for n, f in enumerate(all_frames)}
    depths = np.full((len(all_frames),) + shape, np.nan)
    if overlap_policy == 'mean':
        total = np.zeros_like(depths)
        count = np.zeros(depths.shape, dtype=np.int32)
    taken = np.zeros(len(all_frames), dtype=bool)
    for k, (frames_k, _) in enumerate(chunk_list):
        for j, f in enumerate(frames_k):
            n = pos[f]
            d = chunk_aligned[k][j]
            if overlap_policy == 'mean':
                ok = np.isfinite(d)
                total[n][ok] += d[ok]
                count[n][ok] += 1
            elif overlap_policy == 'last' or not taken[n]:
                depths[n] = d
            taken[n] = True
    if overlap_policy == 'mean':
        np.divide(total, count, out=depths, where=count > 0)
    return DepthAlignmentResult(frames=all_frames, depths=depths.astype(dtype, copy=False),
                                chunk_depths=[c.astype(dtype, copy=False) for c in chunk_aligned],
                                overlaps=overlaps, fits=fits, entities=order)
