"""Offscreen MuJoCo rendering of RGB, metric depth and label images (CPU: MUJOCO_GL=egl or osmesa).

Depth is the z coordinate in camera_optical (metres), 0 where nothing was hit. Labels follow
ground_truth.load_scene(): 0 background (floor, wall), 1 + i object i, 253 body/table/chair,
254 left hand, 255 right hand. Close the renderer explicitly (or use it as a context manager).
"""
from __future__ import annotations

import os

os.environ.setdefault('MUJOCO_GL', 'egl')

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from .scene_builder import Scene  # noqa: E402


class SceneRenderer:
    def __init__(self, scene: Scene):
        self.scene = scene
        cam = scene.camera
        self._r = mujoco.Renderer(scene.model, cam.height, cam.width)
        self._cam = 'cam'
        self._lut = np.concatenate([scene.geom_labels, [0]]).astype(np.uint8)   # index -1 -> 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if self._r is not None:
            self._r.close()
            self._r = None

    def render(self, depth: bool = True, labels: bool = True):
        """RGB (H, W, 3) uint8, depth (H, W) float32 or None, labels (H, W) uint8 or None."""
        r, d = self._r, self.scene.data
        r.update_scene(d, self._cam)
        rgb = r.render().copy()
        dep = lab = None
        if depth:
            r.enable_depth_rendering()
            r.update_scene(d, self._cam)
            dep = r.render().astype(np.float32, copy=True)
            r.disable_depth_rendering()
        if labels or depth:
            r.enable_segmentation_rendering()
            r.update_scene(d, self._cam)
            seg = r.render()
            r.disable_segmentation_rendering()
            geom = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
            if dep is not None:
                dep[geom < 0] = 0.0
            lab = self._lut[geom] if labels else None
        return rgb, dep, lab
