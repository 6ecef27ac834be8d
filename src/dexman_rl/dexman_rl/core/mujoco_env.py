"""The vectorised MuJoCo residual-control environment (paper 3.4, B.5; Tables 5-7). ROS-free.

:class:`MujocoResidualEnv` is the default backend of :class:`dexman_rl.core.residual_env.ResidualEnvBase`
(residual, arm IK, observations, rewards, termination, success, resets: see that module): N
``MjData`` of the one ``MjModel`` built by ``dexman_sim.scene.build_scene`` (G1 + two Shadow
hands, table, the reference's objects). Physics of the N envs runs in a small thread pool
(``mj_step`` releases the GIL; ``threads`` workers, N/threads envs each, each env's state is
independent, so results do not depend on the thread count).

Physics of a step: ``d.ctrl[:] = ctrl; mj_step(m, d, nstep=SimConfig.substeps)`` (4 x 1/120 s),
then the env's ``qpos``, ``qvel``, ``xpos``, ``xmat``, ``site_xpos`` are copied into the gathered
arrays. Reset: ``mj_resetData``, qpos = the reset configuration, qvel = 0, ctrl = the reference
targets, ``mj_forward``. Instability flag: a MuJoCo bad qpos/qvel/qacc/ctrl warning raised during
the step (MuJoCo then resets the data to the model's qpos0 by itself; the base class resets the
env properly and flags it).

``EnvConfig``, ``load_configs`` and ``pose6d`` are re-exported here for the callers that import them
from this module.
"""
from __future__ import annotations

import concurrent.futures

import numpy as np

from .env_config import EnvConfig, load_configs  # noqa: F401 - re-exported
from .residual_env import EVAL_SEED_OFFSET, ROLLOUT_MEMORY, SIDES, ResidualEnvBase, pose6d  # noqa: F401


class MujocoResidualEnv(ResidualEnvBase):
    """N MuJoCo envs tracking one reference with residual actions (module docstring).

    ``reference``: a reference directory, a loaded ``Reference`` or a prepared ``ReferenceData``.
    """

    backend_name = 'mujoco'

    def _init_physics(self) -> None:
        import mujoco
        m, N = self.model, self.num_envs
        self.datas = [mujoco.MjData(m) for _ in range(N)]
        self._pool = (concurrent.futures.ThreadPoolExecutor(self.cfg.threads, thread_name_prefix='mjstep')
                      if self.cfg.threads > 1 and N > 1 else None)
        self._chunks = [c for c in np.array_split(np.arange(N), min(self.cfg.threads, N)) if len(c)]
        self._mujoco = mujoco
        # MuJoCo resets the data itself (to qpos0) after these; we must notice and reset properly
        self._bad_warnings = [int(getattr(mujoco.mjtWarning, f'mjWARN_BAD{k}'))
                              for k in ('QPOS', 'QVEL', 'QACC', 'CTRL')]

    def _gather(self, i: int) -> None:
        d = self.datas[i]
        self.qpos[i] = d.qpos
        self.qvel[i] = d.qvel
        self.xpos[i] = d.xpos
        self.xmat[i] = d.xmat
        self.site_xpos[i] = d.site_xpos

    def _step_chunk(self, idx: np.ndarray, ctrl: np.ndarray) -> None:
        mj = self._mujoco
        m, nstep = self.model, self.sim_cfg.substeps
        bad = self._bad_warnings
        for i in idx:
            d = self.datas[i]
            before = [d.warning[w].number for w in bad]
            d.ctrl[:] = ctrl[i]
            mj.mj_step(m, d, nstep=nstep)
            self.bad_acc[i] = [d.warning[w].number for w in bad] != before
            self._gather(i)

    def _physics(self, ctrl: np.ndarray) -> None:
        if self._pool is None:
            for c in self._chunks:
                self._step_chunk(c, ctrl)
        else:
            for f in [self._pool.submit(self._step_chunk, c, ctrl) for c in self._chunks]:
                f.result()

    def _write_state(self, idx: np.ndarray, qpos: np.ndarray, ctrl: np.ndarray) -> None:
        mj, m = self._mujoco, self.model
        for k, i in enumerate(idx):
            d = self.datas[i]
            mj.mj_resetData(m, d)
            d.qpos[:] = qpos[k]
            d.qvel[:] = 0.0
            d.ctrl[:] = ctrl[k]
            mj.mj_forward(m, d)
            self._gather(i)

    def _close_physics(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
