"""The Genesis wrist-IK backend (the paper's choice).

Always run: the clear error when Genesis is missing, and the kinematics-only MJCF given to Genesis
(same forward kinematics as the build). Opt-in (``pytest -m genesis``; skipped with the reason
unless ``import genesis`` works, i.e. ``pip install genesis-world==1.4.5`` after torch): Genesis
solves reachable targets of both arms like the default backend. The first Genesis scene build
compiles kernels (~90 s on CPU), so the opt-in test is slow."""
import importlib.util
import sys

import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')

from dexman_description import robot_model as rm  # noqa: E402
from dexman_retarget.core import wrist_ik as wik  # noqa: E402
from dexman_retarget.core import wrist_ik_genesis as wg  # noqa: E402

_OK, _WHY = rm.assets_available()
needs_assets = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')
_HAS_GENESIS = importlib.util.find_spec('genesis') is not None
needs_genesis = pytest.mark.skipif(
    not _HAS_GENESIS, reason=f'Genesis is not installed (optional backend, opt-in): {wg.INSTALL_HINT}')


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    if not _OK:
        pytest.skip(f'robot asset packages not installed: {_WHY}')
    return rm.build(tmp_path_factory.mktemp('robot') / 'g1_shadow')


def test_missing_genesis_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, 'genesis', None)     # makes `import genesis` fail
    with pytest.raises(wg.BackendUnavailable, match=r'pip install genesis-world==1\.4\.5'):
        wg.import_genesis()
    ok, why = wg.genesis_available()
    assert not ok and 'genesis-world==1.4.5' in why
    with pytest.raises(wg.BackendUnavailable):
        wg.GenesisWristIK('/nonexistent')                 # fails before touching the folder


@needs_assets
def test_kinematics_only_mjcf(built, tmp_path):
    path = wg.write_ik_mjcf(built.out_dir, tmp_path / wg.IK_XML_NAME)
    m2 = mujoco.MjModel.from_xml_path(str(path))
    m = built.model
    assert m2.ngeom == m2.nmesh == m2.ntendon == m2.nu == m2.nsensor == 0
    assert (m2.nq, m2.nbody) == (m.nq, m.nbody)
    assert [m2.joint(i).name for i in range(m2.njnt)] == [m.joint(i).name for i in range(m.njnt)]
    assert [m2.body(i).name for i in range(m2.nbody)] == [m.body(i).name for i in range(m.nbody)]
    assert np.array_equal(m2.jnt_range, m.jnt_range) and np.array_equal(m2.jnt_axis, m.jnt_axis)
    assert np.allclose(m2.body_mass, m.body_mass)
    d, d2 = mujoco.MjData(m), mujoco.MjData(m2)
    rng = np.random.default_rng(0)
    for _ in range(10):
        d.qpos[:] = d2.qpos[:] = rng.uniform(m.jnt_range[:, 0], m.jnt_range[:, 1])
        mujoco.mj_kinematics(m, d)
        mujoco.mj_kinematics(m2, d2)
        assert np.abs(d.xpos - d2.xpos).max() < 1e-12 and np.abs(d.xmat - d2.xmat).max() < 1e-12


@pytest.mark.genesis
@pytest.mark.slow
@needs_assets
@needs_genesis
def test_genesis_recovers_reachable_targets(built):
    try:
        solver = wg.GenesisWristIK(built.out_dir)
    except wg.BackendUnavailable as e:
        pytest.skip(str(e))
    ik = wik.WristIK(built.model)
    rng = np.random.default_rng(10)
    q = rng.uniform(ik.lo, ik.hi, size=(40, 14))
    P = ik.forward(q)
    res = solver.solve_trajectory(P[:, 0], P[:, 1])
    print(res.report)
    assert ((res.pos_err < 1e-3) & (res.rot_err < 0.01)).mean(axis=0).min() >= 0.95, res.report
    assert np.all(res.q >= ik.lo) and np.all(res.q <= ik.hi)
    # a smooth trajectory, warm-started: smooth joints, both backends agree on the palm poses
    t = np.linspace(0, 1, 60)[:, None]
    qs = np.clip(q[0] * 0.3 + 0.2 * np.sin(2 * np.pi * t + np.arange(14)), ik.lo, ik.hi)
    Ps = ik.forward(qs)
    rg = solver.solve_trajectory(Ps[:, 0], Ps[:, 1], q0=qs[0])
    rm_ = wik.solve_trajectory(built.model, Ps[:, 0], Ps[:, 1], q0=qs[0])
    print(rg.report)
    print(rm_.report)
    assert (rg.pos_err < 1e-3).mean() >= 0.95 and (rm_.pos_err < 1e-3).all()
    # a target 2 m away: reported unreachable
    far = Ps[0].copy()
    far[1, :3, 3] = ik.shoulder['right'] + [0.0, 2.0, 0.0]
    rf = solver.solve_trajectory(far[None, 0], far[None, 1])
    assert not rf.reachable[0, 1] and 'beyond the arm' in rf.messages[0]
