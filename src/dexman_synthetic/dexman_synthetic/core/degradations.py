"""Optional degradations of the published depth stream and of the frame sequence.

Applied to the bag only (the ground-truth scene depth stays clean), in this order:
  1. noise:    D + N(0, (sigma_rel * D)^2) on valid pixels (depth-proportional Gaussian);
  2. relative: per chunk of K frames an unknown affine map D' = a * D + b; chunks start every
               K - overlap frames (overlapping like VGGT windows); a frame's published depth
               comes from the last chunk that starts at or before it;
  3. holes:    random elliptical blobs set to NaN or 0;
  4. drops:    frames removed from the camera topics (never frame 0).
Every sampled parameter is recorded in the ground-truth `degradations` dict.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np


@dataclasses.dataclass
class DegradationConfig:
    depth_noise: float = 0.0             # sigma relative to depth (0.01 = 1 %)
    depth_holes: int = 0                 # blobs per frame
    hole_value: str = 'nan'              # nan | zero
    relative_chunk: int = 0              # K frames per chunk, 0 = metric depth
    relative_overlap: int | None = None  # default K // 4
    drop_rate: float = 0.0

    def validate(self) -> None:
        if not 0.0 <= self.depth_noise <= 0.5:
            raise ValueError(f'--depth-noise must be in [0, 0.5] (relative sigma), got {self.depth_noise}')
        if self.depth_holes < 0:
            raise ValueError(f'--depth-holes must be >= 0, got {self.depth_holes}')
        if self.hole_value not in ('nan', 'zero'):
            raise ValueError(f'--hole-value must be nan or zero, got {self.hole_value!r}')
        if self.relative_chunk < 0 or self.relative_chunk == 1:
            raise ValueError(f'--relative-depth-chunk must be 0 (off) or >= 2, got {self.relative_chunk}')
        if self.relative_chunk and self.overlap >= self.relative_chunk:
            raise ValueError('--relative-depth-overlap must be smaller than --relative-depth-chunk')
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f'--drop-rate must be in [0, 1), got {self.drop_rate}')

    @property
    def overlap(self) -> int:
        if self.relative_overlap is None:
            return self.relative_chunk // 4
        return int(self.relative_overlap)


class Degrader:
    def __init__(self, cfg: DegradationConfig, n_frames: int, rng: np.random.Generator):
        self.cfg, self.n, self.rng = cfg, n_frames, rng
        self.record: dict = {}
        self.chunk_of = None
        if cfg.relative_chunk:
            K, O = cfg.relative_chunk, cfg.overlap
            stride = K - O
            starts = list(range(0, max(n_frames - O, 1), stride))
            chunks = []
            for s in starts:
                a = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
                b = float(rng.uniform(-0.2, 0.3))
                chunks.append({'start': s, 'end': min(s + K, n_frames), 'a': a, 'b': b})
            self.chunks = chunks
            self.chunk_of = np.array([max(i for i, c in enumerate(chunks) if c['start'] <= k)
                                      for k in range(n_frames)])
            self.record['relative_depth'] = {
                'model': "D' = a * D + b per chunk (D metric, m)", 'chunk': K, 'overlap': O, 'stride': stride,
                'chunks': chunks, 'frame_chunk': self.chunk_of.tolist(),
                'rule': 'a frame uses the last chunk whose start <= frame'}
        if cfg.depth_noise:
            self.record['depth_noise'] = {'model': 'D + N(0, (sigma_rel * D)^2)', 'sigma_rel': cfg.depth_noise}
        if cfg.depth_holes:
            self.record['depth_holes'] = {'blobs_per_frame': cfg.depth_holes, 'value': cfg.hole_value,
                                          'radius_px': [0.005, 0.04], 'radius_unit': 'fraction of image width'}
        dropped = np.zeros(n_frames, bool)
        if cfg.drop_rate > 0 and n_frames > 1:
            dropped[1:] = rng.random(n_frames - 1) < cfg.drop_rate
        self.frame_in_bag = ~dropped
        if cfg.drop_rate > 0:
            self.record['frame_drops'] = {'rate': cfg.drop_rate, 'dropped': np.nonzero(dropped)[0].tolist()}

    def depth(self, k: int, depth: np.ndarray) -> np.ndarray:
        """Published depth for frame k from the clean metric depth (0 = no surface)."""
        cfg = self.cfg
        d = depth.astype(np.float32, copy=True)
        valid = d > 0
        if cfg.depth_noise:
            d[valid] += (self.rng.standard_normal(int(valid.sum())) * cfg.depth_noise * d[valid]).astype(np.float32)
        if self.chunk_of is not None:
            c = self.chunks[self.chunk_of[k]]
            d[valid] = c['a'] * d[valid] + c['b']
        if cfg.depth_holes:
            h, w = d.shape
            mask = np.zeros((h, w), np.uint8)
            for _ in range(cfg.depth_holes):
                cx, cy = int(self.rng.integers(w)), int(self.rng.integers(h))
                ax = int(max(1, self.rng.uniform(0.005, 0.04) * w))
                ay = int(max(1, self.rng.uniform(0.005, 0.04) * w))
                cv2.ellipse(mask, (cx, cy), (ax, ay), float(self.rng.uniform(0, 180)), 0, 360, 1, -1)
            d[mask > 0] = np.nan if cfg.hole_value == 'nan' else 0.0
        return d
