"""Offscreen MP4 of a rollout (dexman_rl.core.rollout_video)."""
import pathlib

import numpy as np
import pytest

cv2 = pytest.importorskip('cv2')
mujoco = pytest.importorskip('mujoco')

from dexman_rl.core import rollout_video as rv  # noqa: E402

XML = """<mujoco><worldbody><light pos="0 0 2"/><geom type="plane" size="1 1 .1"/>
<body name="b" pos="0 0 .1"><freejoint/><geom type="box" size=".05 .05 .05" rgba="1 0 0 1"/></body></worldbody></mujoco>"""


def test_renders_every_frame(tmp_path):
    model = mujoco.MjModel.from_xml_string(XML)
    T = 4
    qpos = np.tile(model.qpos0, (T, 1))
    qpos[:, 0] = np.linspace(-0.2, 0.2, T)                       # the box slides along x
    cfg = rv.VideoConfig(width=160, height=120, distance=0.8)
    try:
        out = rv.render_rollout(model, qpos, tmp_path / 'v.mp4', lookat=np.zeros(3), cfg=cfg)
    except rv.RolloutVideoError as e:
        pytest.skip(f'no offscreen GL here: {e}')
    cap = cv2.VideoCapture(str(out))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(f)
    assert len(frames) == T and frames[0].shape == (120, 160, 3)
    masks = [(f[..., 2].astype(int) > 60) & (f[..., 2].astype(int) > 2 * f[..., 1]) for f in frames]   # red box (BGR)
    assert all(m.sum() > 20 for m in masks)
    cols = [np.argwhere(m)[:, 1].mean() for m in masks]
    assert abs(cols[0] - cols[-1]) > 10                            # the box moved in the picture
    assert not any(p.name.endswith('.tmp.mp4') for p in pathlib.Path(tmp_path).iterdir())


def test_bad_shape(tmp_path):
    model = mujoco.MjModel.from_xml_string(XML)
    with pytest.raises(rv.RolloutVideoError, match=r'qpos must be \(T, 7\)'):
        rv.render_rollout(model, np.zeros((3, 5)), tmp_path / 'v.mp4', lookat=np.zeros(3))


def test_yaml_equals_defaults():
    from dexman_common.config import ConfigError, load_section
    assert load_section(rv.VideoConfig) == rv.VideoConfig()
    with pytest.raises(ConfigError, match="unknown key.*'fov'"):
        rv.VideoConfig.from_dict({'fov': 45})
