"""Measure the scene's cost: ``python -m dexman_sim.speed [--robot DIR] [--seconds S]``.

Prints (1) CoACD time and part count for a cup (revolved profile: r 4 cm, h 10 cm, wall 5 mm, in a
fresh temporary cache), (2) mj_step/s on one thread of robot + table + one box, with the box
resting on the table in front of the robot and with the box pressed into the right hand (fingers
in contact), at the default pose with zero controls. Numbers belong in docs/simulation.md.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np


def cup_mesh():
    import trimesh
    r, h, t, b = 0.04, 0.10, 0.005, 0.008
    return trimesh.creation.revolve(np.array([(0, 0), (r, 0), (r, h), (r - t, h), (r - t, b), (0, b)]),
                                    sections=32)


def _pose(p):
    T = np.eye(4)
    T[:3, 3] = p
    return T


def main(argv=None) -> int:
    import mujoco
    import trimesh

    from .collision import collision_shape
    from .config import SimConfig
    from .mesh_repair import repair_mesh
    from .scene import SceneObjectSpec, build_scene

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--robot', default=None, help='robot model build folder (default: SimConfig.robot_model_dir)')
    ap.add_argument('--seconds', type=float, default=5.0, help='simulated seconds per measurement')
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SimConfig(cache_dir=tmp)
        shape = collision_shape(repair_mesh(cup_mesh()).mesh, cfg)
        print(f'CoACD cup: {len(shape.parts)} parts in {shape.seconds:.2f} s '
              f'(threshold {cfg.coacd_threshold}, max {cfg.coacd_max_hulls} hulls)')
        robot = a.robot or cfg.robot_model_path()
        box = trimesh.creation.box(extents=(0.06, 0.20, 0.06))
        cases = {'box on the table': _pose([0.0, 0.45, 0.83]),
                 'box in the right hand': _pose([0.149, 0.38, 0.83])}
        for name, T in cases.items():
            s = build_scene([SceneObjectSpec('box', box, T)], [0, 0.5, 0.80], [0, 0, 1],
                            robot_model_dir=robot, cfg=cfg)
            d = s.make_data()
            n = int(round(a.seconds / s.model.opt.timestep))
            mujoco.mj_step(s.model, d, nstep=10)
            ncon = []
            t0 = time.perf_counter()
            for _ in range(n // 10):
                mujoco.mj_step(s.model, d, nstep=10)
                ncon.append(d.ncon)
            dt = time.perf_counter() - t0
            print(f'{name}: {10 * (n // 10) / dt:.0f} mj_step/s on one thread '
                  f'({s.model.ngeom} geoms, mean {np.mean(ncon):.1f} contacts, finite: '
                  f'{bool(np.all(np.isfinite(d.qpos)))})')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
