"""Render a simulated rollout offscreen to an MP4 (MuJoCo renderer, CPU: MUJOCO_GL=egl or osmesa).

The camera is a free camera looking at the robot's workspace from the front-right, above the
table, so both hands and the objects are in view: ``lookat`` = the mean object position of the
first frame (or the palms' midpoint), ``distance``, ``azimuth`` and ``elevation`` from the config.
Shadows, reflections and multisampling are off (several times faster on CPU). Frames are written
with OpenCV's ``mp4v`` codec to a temporary file renamed into place (never a half-written MP4).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from dexman_common.config import ConfigBase

os.environ.setdefault('MUJOCO_GL', 'egl')


@dataclasses.dataclass(frozen=True)
class VideoConfig(ConfigBase):
    SECTION = 'video'
    YAML_FILE = 'rl.yaml'

    width: int = 640
    height: int = 480
    distance: float = 1.4         # m from the look-at point
    azimuth: float = 120.0        # deg, MuJoCo free-camera convention (0 = looking along +x)
    elevation: float = -30.0      # deg (negative: looking down)
    fps: float = 30.0
    headlight_ambient: float = 0.3   # at least this much headlight (the robot model's own lights are dim)
    headlight_diffuse: float = 0.6

    def __post_init__(self):
        if self.width < 16 or self.height < 16 or self.fps <= 0 or self.distance <= 0:
            raise ValueError('width/height >= 16, fps > 0 and distance > 0 required')


class RolloutVideoError(RuntimeError):
    """The rollout cannot be rendered (no GL backend, bad qpos shape, unwritable output)."""


def render_rollout(model, qpos: np.ndarray, out_path: str | os.PathLike, *, lookat: np.ndarray,
                   cfg: VideoConfig | None = None) -> pathlib.Path:
    """Render ``qpos`` (T, model.nq) frame by frame into ``out_path`` (MP4); returns the path."""
    import cv2
    import mujoco
    cfg = cfg or VideoConfig()
    qpos = np.asarray(qpos, float)
    if qpos.ndim != 2 or qpos.shape[1] != model.nq or len(qpos) == 0:
        raise RolloutVideoError(f'qpos must be (T, {model.nq}), got {qpos.shape}')
    out = pathlib.Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f'.{out.stem}.{os.getpid()}.tmp.mp4')
    try:
        renderer = mujoco.Renderer(model, cfg.height, cfg.width)
    except Exception as e:  # noqa: BLE001 - no EGL/OSMesa, or a framebuffer too small
        raise RolloutVideoError(f'cannot create an offscreen renderer ({e}); set MUJOCO_GL=egl or osmesa') from e
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*'mp4v'), cfg.fps, (cfg.width, cfg.height))
    if not writer.isOpened():
        renderer.close()
        raise RolloutVideoError(f'cannot open {tmp} for writing (OpenCV mp4v)')
    light = (model.vis.headlight.ambient.copy(), model.vis.headlight.diffuse.copy())
    model.vis.headlight.ambient[:] = np.maximum(light[0], cfg.headlight_ambient)   # visual only, restored below
    model.vis.headlight.diffuse[:] = np.maximum(light[1], cfg.headlight_diffuse)
    try:
        data = mujoco.MjData(model)
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam.lookat[:] = np.asarray(lookat, float)
        cam.distance, cam.azimuth, cam.elevation = cfg.distance, cfg.azimuth, cfg.elevation
        opt = mujoco.MjvOption()
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        for q in qpos:
            data.qpos[:] = q
            mujoco.mj_kinematics(model, data)
            renderer.update_scene(data, cam, opt)
            writer.write(cv2.cvtColor(renderer.render(), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
        renderer.close()
        model.vis.headlight.ambient[:], model.vis.headlight.diffuse[:] = light
    os.replace(tmp, out)
    return out
