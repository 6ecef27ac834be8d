"""dexman_sim: the MuJoCo scene builder shared by stable placement and the RL environment.

Effective pair friction read back from simulated contacts (both conventions), hand-computed mass
properties, a cup whose cavity survives the convex decomposition (a ball dropped into it ends
inside; with the convex hull it rests on top), the CoACD cache, input errors, the table kept clear
of the robot, and the full robot scene stepping for 1 s. Robot tests are skipped (with the reason)
when the robot asset packages are not installed."""
import time

import numpy as np
import pytest
import trimesh

mujoco = pytest.importorskip('mujoco')
pytest.importorskip('coacd')

from dexman_common.config import config_dir, load_section  # noqa: E402
from dexman_description import robot_model as rm  # noqa: E402
from dexman_retarget.core.stable_placement import PlacementConfig  # noqa: E402
from dexman_sim import (SceneInputError, SceneObjectSpec, SimConfig, build_scene,  # noqa: E402
                        collision as col, repair_mesh)

_OK, _WHY = rm.assets_available()

# a cup: outer radius 4 cm, height 10 cm, wall 5 mm, bottom 8 mm (revolved closed profile: watertight)
CUP_R, CUP_H, CUP_WALL, CUP_BOTTOM = 0.04, 0.10, 0.005, 0.008
CUP = trimesh.creation.revolve(np.array([(0, 0), (CUP_R, 0), (CUP_R, CUP_H), (CUP_R - CUP_WALL, CUP_H),
                                         (CUP_R - CUP_WALL, CUP_BOTTOM), (0, CUP_BOTTOM)]), sections=32)
BALL_R = 0.012
BALL = trimesh.creation.icosphere(subdivisions=2, radius=BALL_R)


def _pose(p, R=None):
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    T[:3, 3] = p
    return T


@pytest.fixture(scope='module')
def robot_dir(tmp_path_factory):
    if not _OK:
        pytest.skip(f'robot asset packages not installed: {_WHY}')
    return rm.build(tmp_path_factory.mktemp('robot') / 'g1_shadow').out_dir


@pytest.fixture(scope='module')
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp('coacd_cache')


@pytest.fixture(scope='module')
def cup_shape(cache_dir):
    """The cup decomposed once with the default CoACD parameters (a fresh cache)."""
    cfg = SimConfig(cache_dir=str(cache_dir))
    shape = col.collision_shape(repair_mesh(CUP).mesh, cfg)
    print(f'\nCoACD on the cup ({len(CUP.faces)} faces): {len(shape.parts)} parts in {shape.seconds:.2f} s')
    return shape


# ---------------------------------------------------------------- configuration

def test_sim_yaml_equals_defaults():
    assert load_section(SimConfig, config_dir() / 'sim.yaml') == SimConfig()
    assert SimConfig().timestep == pytest.approx(1.0 / 120.0)


def test_placement_yaml_equals_defaults():
    assert load_section(PlacementConfig, config_dir() / 'retarget.yaml') == PlacementConfig()


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match='friction_convention'):
        SimConfig(friction_convention='min')
    with pytest.raises(ValueError, match='object_density'):
        SimConfig(object_density=0.0)


# ---------------------------------------------------------------- mass properties

def test_cube_mass_is_density_times_volume(tmp_path):
    cube = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    cfg = SimConfig(cache_dir=str(tmp_path))
    s = build_scene([SceneObjectSpec('cube', cube, _pose([0, 0, 0.05]))], [0, 0, 0], [0, 0, 1], cfg=cfg)
    m = 200.0 * 0.1 ** 3                                     # 0.2 kg at 200 kg/m^3
    assert s.object_mass[0] == pytest.approx(m, rel=1e-9)
    assert s.model.body_mass[s.object_body_ids[0]] == pytest.approx(m, rel=1e-6)
    assert np.allclose(s.object_com[0], 0.0, atol=1e-12)
    I = m * (0.1 ** 2 + 0.1 ** 2) / 12.0                     # solid cube about its centre
    assert np.allclose(s.object_inertia[0], I * np.eye(3), rtol=1e-9, atol=1e-15)
    assert np.allclose(s.model.body_inertia[s.object_body_ids[0]], I, rtol=1e-5)
    # the cap: at 1000 kg/m^3 the cube would weigh 1 kg; capped at 0.5 kg, inertia scaled with it
    s2 = build_scene([SceneObjectSpec('cube', cube, _pose([0, 0, 0.05]))], [0, 0, 0], [0, 0, 1],
                     cfg=cfg.replace(object_density=1000.0))
    assert s2.object_mass[0] == pytest.approx(0.5)
    assert s2.object_inertia[0][0, 0] == pytest.approx(0.5 * 0.02 / 12.0)


def test_mesh_with_a_hole_is_filled_and_an_open_cup_uses_its_hull():
    cube = trimesh.creation.box(extents=(0.1, 0.1, 0.1))
    holed = trimesh.Trimesh(cube.vertices, cube.faces[2:])     # one face (two triangles) removed
    assert not holed.is_watertight
    r = repair_mesh(holed, 'holed cube')
    assert r.solid_kind == 'filled' and r.solid.volume == pytest.approx(1e-3)
    assert any('holes filled' in w for w in r.warnings)
    # a cylinder without its top cap: the round hole cannot be filled -> convex hull
    cyl = trimesh.creation.cylinder(radius=0.03, height=0.1, sections=32)
    top = cyl.triangles_center[:, 2] > 0.05 - 1e-9
    open_cyl = trimesh.Trimesh(cyl.vertices, cyl.faces[~top])
    r2 = repair_mesh(open_cyl, 'open can')
    assert r2.solid_kind == 'hull' and any('convex hull' in w for w in r2.warnings)
    assert r2.solid.volume == pytest.approx(cyl.volume, rel=1e-6)


# ---------------------------------------------------------------- convex decomposition

def test_cup_keeps_its_cavity(cup_shape, cache_dir):
    assert cup_shape.method == 'coacd' and len(cup_shape.parts) > 1
    assert len(cup_shape.parts) <= SimConfig().coacd_max_hulls
    ends = {}
    for method in ('coacd', 'hull'):
        cfg = SimConfig(collision=method, cache_dir=str(cache_dir))
        objs = [SceneObjectSpec('cup', CUP, _pose([0.0, 0.5, 0.0])),
                SceneObjectSpec('ball', BALL, _pose([0.0, 0.5, CUP_H + 0.03]))]
        s = build_scene(objs, [0, 0, 0], [0, 0, 1], cfg=cfg)
        d = s.make_data()
        mujoco.mj_step(s.model, d, nstep=240)                # 2 s
        ends[method] = s.object_pose(d, 1)[2, 3]
        assert s.object_pose(d, 0)[2, 3] == pytest.approx(0.0, abs=1e-3)    # the cup stays put
    assert ends['coacd'] == pytest.approx(CUP_BOTTOM + BALL_R, abs=3e-3)    # on the cup's floor
    assert ends['hull'] > CUP_H + BALL_R - 3e-3                              # on the hull's lid


def test_coacd_cache_hit_does_not_recompute(cup_shape, cache_dir, monkeypatch):
    def fail(*a, **k):
        raise AssertionError('CoACD ran again despite a cached result')
    monkeypatch.setattr(col, 'run_coacd', fail)
    cfg = SimConfig(cache_dir=str(cache_dir))
    again = col.collision_shape(repair_mesh(CUP).mesh, cfg)
    assert again.cache_hit and again.key == cup_shape.key and again.seconds == 0.0
    assert len(again.parts) == len(cup_shape.parts)
    for a, b in zip(again.parts, cup_shape.parts):
        assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.faces, b.faces)
    assert (cache_dir / f'{cup_shape.key}.npz').is_file()
    # other parameters, other key: this one would have to run CoACD
    with pytest.raises(AssertionError, match='ran again'):
        col.collision_shape(repair_mesh(CUP).mesh, cfg.replace(coacd_threshold=0.1))


# ---------------------------------------------------------------- bad input

def test_bad_input_raises_clear_errors(tmp_path):
    cfg = SimConfig(cache_dir=str(tmp_path), collision='hull')
    box = trimesh.creation.box(extents=(0.05, 0.05, 0.05))
    bad = _pose([0, 0, np.nan])
    with pytest.raises(SceneInputError, match="'b'.*not finite"):
        build_scene([SceneObjectSpec('b', box, bad)], [0, 0, 0], [0, 0, 1], cfg=cfg)
    with pytest.raises(SceneInputError, match='not a rigid transform'):
        build_scene([SceneObjectSpec('b', box, np.diag([2.0, 1, 1, 1]))], [0, 0, 0], [0, 0, 1], cfg=cfg)
    with pytest.raises(SceneInputError, match='empty mesh'):
        build_scene([SceneObjectSpec('e', trimesh.Trimesh(), _pose([0, 0, 0]))], [0, 0, 0], [0, 0, 1], cfg=cfg)
    nan_mesh = trimesh.Trimesh(np.where(np.arange(24).reshape(8, 3) == 0, np.nan, box.vertices),
                               box.faces, process=False)
    with pytest.raises(SceneInputError, match='not finite'):
        build_scene([SceneObjectSpec('n', nan_mesh, _pose([0, 0, 0]))], [0, 0, 0], [0, 0, 1], cfg=cfg)
    tilted = [0.0, np.sin(np.radians(10.0)), np.cos(np.radians(10.0))]
    with pytest.raises(SceneInputError, match=r'10\.0 deg from world \+z'):
        build_scene([SceneObjectSpec('b', box, _pose([0, 0, 0.025]))], [0, 0, 0], tilted, cfg=cfg)
    with pytest.raises(SceneInputError, match='unique'):
        build_scene([SceneObjectSpec('b', box, _pose([0, 0, 0.025]))] * 2, [0, 0, 0], [0, 0, 1], cfg=cfg)


def test_object_inside_the_table_is_lifted_and_reported(tmp_path):
    cfg = SimConfig(cache_dir=str(tmp_path), collision='hull')
    box = trimesh.creation.box(extents=(0.05, 0.05, 0.05))
    s = build_scene([SceneObjectSpec('sunk', box, _pose([0.1, 0.5, 0.70]))], [0, 0.5, 0.71], [0, 0, 1], cfg=cfg)
    assert s.table_top_z == pytest.approx(0.71)
    assert s.initial_poses[0][2, 3] == pytest.approx(0.71 + 0.025)
    assert any("'sunk' started 35.0 mm inside the table" in w for w in s.warnings)
    d = s.make_data()
    assert np.allclose(s.object_pose(d, 0), s.initial_poses[0], atol=1e-7)
    # pose helpers: write, read back, place on the table
    T = _pose([0.2, 0.6, 0.9], trimesh.transformations.rotation_matrix(0.3, [1, 0, 0])[:3, :3])
    s.set_object_pose(d, 0, T)
    assert np.allclose(s.object_pose(d, 0), T, atol=1e-9)
    P = s.place_on_table(0, T)
    assert s.lowest_point(0, P) == pytest.approx(0.71, abs=1e-12) and np.allclose(P[:3, :3], T[:3, :3])


# ---------------------------------------------------------------- with the robot

def _contacts(s, d):
    """(friction, kind) of every active contact: kinds hand-object, object-table, ..."""
    hand = set(np.concatenate([s.hand_geom_ids['left'], s.hand_geom_ids['right']]).tolist())
    obj = set(np.concatenate(s.object_geom_ids).tolist())
    out = []
    for k in range(d.ncon):
        c = d.contact[k]
        g = {int(c.geom1), int(c.geom2)}
        kind = ('hand-object' if g & hand and g & obj else
                'object-table' if g & obj and s.table_geom_id in g else
                'robot-table' if s.table_geom_id in g and g & set(s.robot_geom_ids.tolist()) else 'other')
        out.append((float(c.friction[0]), kind))
    return out


@pytest.mark.parametrize('convention, hand_object, object_table',
                         [('average', 2.5, 0.625), ('max', 4.0, 1.0)])
def test_pair_friction_read_from_contacts(robot_dir, tmp_path, convention, hand_object, object_table):
    cfg = SimConfig(friction_convention=convention, cache_dir=str(tmp_path))
    # a box on the table (top z = 0.80) reaching up into the right hand's fingers (z 0.83-0.98)
    box = trimesh.creation.box(extents=(0.06, 0.20, 0.06))
    s = build_scene([SceneObjectSpec('box', box, _pose([0.149, 0.38, 0.83]))], [0, 0.5, 0.80], [0, 0, 1],
                    robot_model_dir=robot_dir, cfg=cfg)
    assert s.friction.hand_object == hand_object and s.friction.object_table == object_table
    d = s.make_data()
    mujoco.mj_step(s.model, d, nstep=4)
    got = _contacts(s, d)
    kinds = {k for _, k in got}
    assert {'hand-object', 'object-table'} <= kinds, got
    for mu, kind in got:
        if kind == 'hand-object':
            assert mu == pytest.approx(hand_object)
        elif kind == 'object-table':
            assert mu == pytest.approx(object_table)
    assert 'robot-table' not in kinds


@pytest.mark.parametrize('table_z', [0.75, 0.50], ids=['below_hands', 'at_hip_height'])
def test_table_is_clear_of_the_robot(robot_dir, tmp_path, table_z):
    """At the default pose no robot geom touches the table: below the hands (z 0.75) not at all;
    at hip height (z 0.5) the trunk (legs, pelvis) stays behind the table's near edge."""
    cfg = SimConfig(collision='hull', cache_dir=str(tmp_path))
    box = trimesh.creation.box(extents=(0.05, 0.05, 0.05))
    objs = [SceneObjectSpec('a', box, _pose([-0.1, 0.35, table_z + 0.025])),
            SceneObjectSpec('b', box, _pose([0.2, 0.55, table_z + 0.025]))]
    s = build_scene(objs, [0, 0.4, table_z], [0, 0, 1], robot_model_dir=robot_dir, cfg=cfg)
    d = s.make_data()                                           # qpos0 = the default pose
    robot = set(s.robot_geom_ids.tolist())
    touching = [(s.model.geom(int(d.contact[k].geom1)).name, s.model.geom(int(d.contact[k].geom2)).name)
                for k in range(d.ncon)
                if s.table_geom_id in (d.contact[k].geom1, d.contact[k].geom2)
                and {int(d.contact[k].geom1), int(d.contact[k].geom2)} & robot]
    assert touching == []
    near_edge = s.table.center_xy[1] - s.table.half_extents[1]
    assert 0.1 < near_edge < 0.35 - 0.025                      # in front of the trunk, under the objects
    # an object standing where the robot is: a clear error
    with pytest.raises(SceneInputError, match='inside the robot'):
        build_scene([SceneObjectSpec('c', box, _pose([0.0, 0.0, table_z + 0.025]))], [0, 0.4, table_z],
                    [0, 0, 1], robot_model_dir=robot_dir, cfg=cfg)


def test_robot_scene_steps_one_second(robot_dir, cup_shape, cache_dir):
    cfg = SimConfig(cache_dir=str(cache_dir))
    box = trimesh.creation.box(extents=(0.06, 0.06, 0.10))
    objs = [SceneObjectSpec('box', box, _pose([0.15, 0.45, 0.65])),
            SceneObjectSpec('cup', CUP, _pose([-0.15, 0.45, 0.60]))]
    t0 = time.perf_counter()
    s = build_scene(objs, [0, 0.45, 0.60], [0, 0, 1], robot_model_dir=robot_dir, cfg=cfg)
    build_s = time.perf_counter() - t0
    assert s.has_robot and s.collision_method == ['coacd', 'coacd']
    assert s.model.opt.timestep == pytest.approx(1 / 120)
    assert len(s.object_geom_ids[1]) == len(cup_shape.parts)
    d = s.make_data()
    n = int(round(1.0 / s.model.opt.timestep))
    t0 = time.perf_counter()
    mujoco.mj_step(s.model, d, nstep=n)
    rate = n / (time.perf_counter() - t0)
    print(f'\nrobot + table + box + cup: build {build_s:.2f} s, {rate:.0f} mj_step/s (1 thread, {d.ncon} contacts)')
    assert np.all(np.isfinite(d.qpos)) and np.all(np.isfinite(d.qvel))
    for i, z in enumerate((0.65, 0.60)):                        # both rest on the table where they started
        T = s.object_pose(d, i)
        assert T[2, 3] == pytest.approx(z, abs=2e-3)
        assert np.linalg.norm(T[:2, 3] - objs[i].pose[:2, 3]) < 2e-3
