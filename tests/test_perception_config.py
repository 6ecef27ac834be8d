"""Perception algorithm settings (config/perception.yaml): the file equals every config dataclass's
defaults; bad keys and values are rejected naming the key and the file; the values reach the
algorithms; a node's ROS parameter overrides the file only when set; the demonstration's
provenance records the configuration."""
import pathlib

import numpy as np
import pytest
import trimesh
import yaml

from dexman_common.artefacts import demonstration as dm
from dexman_common.config import ConfigError, load_section
from dexman_perception.core import perception_config as pc
from dexman_perception.core.backends.cpu_pose import IcpConfig, IcpRefiner
from dexman_perception.core.backends.cpu_segmentation import DepthColorSegmenter, SegmenterConfig
from dexman_perception.core.backends.lk_tracks import LucasKanadeTracker
from dexman_perception.core.backends.mediapipe_hands import MediaPipeHandsConfig
from dexman_perception.core.demo_assembly import DemoAssembly, DemoAssemblyConfig, ObjectObservation
from dexman_perception.core.depth_alignment import DepthAlignmentConfig, align_depth_chunks
from dexman_perception.core.hand_metric_scale import HandScaleConfig, hand_metric_scale
from dexman_perception.core.object_tracker import ObjectPoseStream, TrackerConfig
from dexman_perception.core.scene_alignment import ReachBox, SceneAlignmentConfig

ROOT = pathlib.Path(__file__).resolve().parents[1]
YAML = ROOT / 'config' / 'perception.yaml'
K = np.array([[100.0, 0, 4.5], [0, 100, 4.5], [0, 0, 1]])


# ------------------------------------------------------------------------------ the file
@pytest.mark.parametrize('section', sorted(pc.CONFIG_CLASSES))
def test_yaml_equals_the_dataclass_defaults(section):
    cls = pc.config_class(section)
    assert cls.SECTION == section and cls.YAML_FILE == 'perception.yaml'
    assert load_section(cls, YAML) == cls()
    assert pc.load(cls, YAML) == cls()


def test_the_file_has_exactly_the_registered_sections():
    assert sorted(yaml.safe_load(YAML.read_text())) == sorted(pc.CONFIG_CLASSES)


def test_the_default_file_is_the_repository_one(monkeypatch):
    monkeypatch.setenv('DEXMAN_CONFIG_DIR', str(ROOT / 'config'))
    assert pc.default_config_file() == YAML
    assert pc.load(TrackerConfig) == TrackerConfig()


def _with(tmp_path, section, key_path, value):
    """A copy of perception.yaml with one value changed (key_path 'a.b' for a nested key)."""
    data = yaml.safe_load(YAML.read_text())
    d = data[section]
    *outer, last = key_path.split('.')
    for k in outer:
        d = d[k]
    d[last] = value
    p = tmp_path / 'perception.yaml'
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize('section, key', [('tracker', 'max_sped'), ('icp_refiner', 'iteration'),
                                          ('scene_alignment', 'reach_box.yy'),
                                          ('mediapipe_body', 'lifting.windw')])
def test_an_unknown_key_is_rejected_naming_the_key_and_the_file(tmp_path, section, key):
    p = _with(tmp_path, section, key, 1.0)
    with pytest.raises(ConfigError) as e:
        pc.load(pc.config_class(section), p)
    msg = str(e.value)
    assert key.split('.')[-1] in msg and str(p) in msg and section in msg


@pytest.mark.parametrize('section, key, value', [('tracker', 'gate_chi2', 'large'),
                                                 ('icp_refiner', 'iterations', 2.5),
                                                 ('lucas_kanade', 'win', True),
                                                 ('depth_color_segmenter', 'skin_cr', [133]),
                                                 ('scene_alignment', 'reach_box.y', 'front'),
                                                 ('demo_assembly', 'require_hands', 'yes')])
def test_an_ill_typed_value_is_rejected_naming_the_key_and_the_file(tmp_path, section, key, value):
    p = _with(tmp_path, section, key, value)
    with pytest.raises(ConfigError) as e:
        pc.load(pc.config_class(section), p)
    msg = str(e.value)
    assert repr(key.split('.')[-1]) in msg and str(p) in msg


def test_a_bad_value_is_rejected_naming_the_file(tmp_path):
    p = _with(tmp_path, 'tracker', 'mode', 'kalman')
    with pytest.raises(ConfigError, match=r"mode must be one of .*'kalman'") as e:
        pc.load(TrackerConfig, p)
    assert str(p) in str(e.value)
    with pytest.raises(ConfigError, match='min <= max'):
        pc.load(SceneAlignmentConfig, _with(tmp_path, 'scene_alignment', 'reach_box.y', [0.5, 0.1]))


def test_a_missing_section_or_file_is_named(tmp_path):
    p = tmp_path / 'perception.yaml'
    p.write_text('tracker: {}\n')
    with pytest.raises(ConfigError, match="no section 'icp_refiner'"):
        pc.load(IcpConfig, p)
    assert pc.load(TrackerConfig, p) == TrackerConfig()          # an empty section: the defaults
    with pytest.raises(ConfigError, match='not found'):
        pc.load(IcpConfig, tmp_path / 'nope.yaml')


# ------------------------------------------------------------------------------ overrides
def test_keyword_overrides_are_checked_like_the_file():
    assert IcpRefiner(iterations=5).config == IcpConfig(iterations=5)
    assert IcpRefiner(config=IcpConfig(min_score=0.5), iterations=7).config == IcpConfig(min_score=0.5, iterations=7)
    with pytest.raises(ConfigError, match="'bogus'.*IcpConfig overrides|IcpConfig overrides.*'bogus'"):
        IcpRefiner(bogus=1)
    with pytest.raises(ConfigError, match="'win'"):
        LucasKanadeTracker(win='big')
    with pytest.raises(TypeError, match='IcpConfig'):
        IcpRefiner(config=SegmenterConfig())


def test_a_nested_override_changes_only_the_keys_it_names():
    cfg = pc.configured(MediaPipeHandsConfig, None, {'lifting': {'window': 4}, 'num_hands': 1})
    assert cfg.lifting.window == 4 and cfg.num_hands == 1
    assert cfg.lifting.tol == MediaPipeHandsConfig().lifting.tol == 0.025
    sc = pc.configured(SceneAlignmentConfig, None, {'reach_box': {'y': [0.2, 0.5]}})
    assert sc.reach_box == ReachBox(x=(-0.5, 0.5), y=(0.2, 0.5))


def test_the_values_reach_the_algorithms():
    depth = np.full((10, 10), 0.5)
    mask = np.ones((10, 10), bool)
    box = trimesh.creation.box(extents=(0.05, 0.05, 0.05))
    est = IcpRefiner(config=IcpConfig(min_points=1000)).refine(None, depth, mask, box, K, np.eye(4))
    # the eroded mask (8 x 8) has fewer than min_points pixels, so the whole mask counts: 10 x 10
    assert not est.valid and est.reason == '100 object points with depth (need 1000)'
    seg = DepthColorSegmenter(config=SegmenterConfig(search_radius_fraction=0.5, min_search_radius_px=2))
    seg.start(np.zeros((10, 10, 3), np.uint8), _table_depth(), {'o': np.eye(10, dtype=bool)}, K=K)
    assert seg._radius == 5                                                  # 0.5 x max(10, 10)
    stream = ObjectPoseStream(mode='refiner', config=TrackerConfig(mode='tracks', max_speed=0.5))
    assert stream.mode == 'refiner' and stream.max_speed == 0.5           # the argument wins
    with pytest.raises(ValueError, match='mode must be one of'):
        ObjectPoseStream(mode='kalman')


def _table_depth():
    """A plane z = 1 m seen head-on, with a 0.05 m high block in the middle (10 x 10 px)."""
    d = np.ones((10, 10))
    d[3:7, 3:7] = 0.95
    return d


def test_function_configs_equal_their_keyword_form():
    """hand_metric_scale / align_depth_chunks: config= and keyword overrides give the same result,
    and the defaults are the paper's (min/max extents; each entity its own fit)."""
    K3 = np.array([[100.0, 0, 2.0], [0, 100.0, 2.0], [0, 0, 1]])
    depth = np.full((5, 5), 2.0)
    mask = np.zeros((5, 5), bool)
    mask[2, :] = True                                   # x = (u - 2) * 2 / 100: -0.04 .. 0.04
    metric = np.array([[-0.06, 0, 0.5], [0.06, 0, 0.5], [0.0, 0.01, 0.5]])
    r = hand_metric_scale(metric, depth, mask, K3)
    assert r.scale == pytest.approx(0.12 / 0.08)
    a = hand_metric_scale(metric, depth, mask, K3, config=HandScaleConfig(depth_percentiles=(25.0, 75.0)))
    b = hand_metric_scale(metric, depth, mask, K3, depth_percentiles=(25, 75))
    assert a.scale == b.scale == pytest.approx(0.12 / 0.04)           # x extent 25..75 %: -0.02 .. 0.02
    c0 = ([0, 1], np.full((2, 4, 4), 1.0))
    c1 = ([1, 2], np.full((2, 4, 4), 2.0))
    c1[1][:, 0, 0] = 4.0                                 # spread, so that a fit is identifiable
    c0[1][1, 0, 0] = 2.0
    masks = {1: {'o': np.ones((4, 4), bool)}}
    own = align_depth_chunks([c0, c1], masks, dtype=float)                          # 16 px < 20: global fit
    small = align_depth_chunks([c0, c1], masks, config=DepthAlignmentConfig(min_pixels=16), dtype=float)
    assert own.fit(1, 'o').source == 'global' and small.fit(1, 'o').source == 'entity'


# ------------------------------------------------------------------------------ provenance
def test_the_demonstration_provenance_records_the_config(tmp_path):
    a = DemoAssembly(accept_predicted=False)
    stamps = [1_000_000_000, 1_100_000_000]
    for s in stamps:
        a.add_frame(s)
    a.set_intrinsics(K)
    a.set_scene(np.eye(4), [0.0, 0.5, 0.75], [0.0, 0.0, 1.0])
    a.set_mesh('object_0', trimesh.creation.box(extents=(0.05, 0.05, 0.1)))
    kp = np.zeros((2, 21, 3))
    a.add_hands(stamps[0], kp, [False, True], np.tile(np.eye(4), (2, 1, 1)))
    a.add_objects(stamps[0], [ObjectObservation('object_0', np.eye(4), True)])
    scene = SceneAlignmentConfig(body_frames=3)
    tracking = {'stage': 'tracking', 'backend': 'icp',
                'sections': {'tracker': TrackerConfig().to_dict(), 'icp_refiner': IcpConfig().to_dict()}}
    a.set_stage_config('scene', {'stage': 'scene', 'sections': {'scene_alignment': scene.to_dict()}})
    a.set_stage_config('tracking', tracking)
    demo, meshes = a.build('cfg_demo')
    path = dm.save(demo, tmp_path, meshes)
    cfg = dm.load(path).provenance['config']
    assert cfg['demo_assembly'] == {'accept_predicted': False, 'require_hands': True}
    assert DemoAssemblyConfig.from_dict(cfg['demo_assembly']) == DemoAssemblyConfig(accept_predicted=False)
    assert cfg['stages']['tracking'] == tracking
    got = SceneAlignmentConfig.from_dict(cfg['stages']['scene']['sections']['scene_alignment'])
    assert got == scene and got.reach_box.z == (-np.inf, np.inf)       # JSON round trip, infinities too


# ------------------------------------------------------------------------------ nodes
@pytest.fixture
def ros_node():
    rclpy = pytest.importorskip('rclpy')
    from rclpy.parameter import Parameter
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    made = []

    def make(**params):
        n = rclpy.create_node(f'cfg_test_{len(made)}', context=ctx,
                              parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        made.append(n)
        return n
    yield make
    for n in made:
        n.destroy_node()
    rclpy.shutdown(context=ctx)


def test_a_ros_parameter_overrides_the_file_only_when_set(ros_node, tmp_path):
    from dexman_common.ros.node_util import ParamError
    from dexman_perception.nodes import config_params as cp
    p = _with(tmp_path, 'scene_alignment', 'body_frames', 7)
    base = cp.load_config(SceneAlignmentConfig, str(p))
    assert base.body_frames == 7
    unset = ros_node()
    cfg = cp.override(unset, base, 'body_frames', 'd')
    cfg = cp.override(unset, cfg, 'reach_y', 'd', 'reach_box.y')
    assert cfg == base and unset.get_parameter('reach_y').value == [0.10, 0.45]
    node = ros_node(body_frames=3, reach_y=[0.2, 0.5], robot_pelvis=[0.0, 0.1, 0.8])
    cfg = cp.override(node, base, 'body_frames', 'd')
    cfg = cp.override(node, cfg, 'reach_y', 'd', 'reach_box.y')
    cfg = cp.override(node, cfg, 'robot_pelvis', 'd')
    assert cfg == base.replace(body_frames=3, robot_pelvis=[0.0, 0.1, 0.8],
                               reach_box={'x': [-0.5, 0.5], 'y': [0.2, 0.5], 'z': [-np.inf, np.inf]})
    with pytest.raises(ParamError, match="parameter 'reach_y'.*min <= max"):
        cp.override(ros_node(reach_y=[0.5, 0.2]), base, 'reach_y', 'd', 'reach_box.y')
    with pytest.raises(ParamError, match=f'config_file: {p}.*iteration'):
        cp.load_config(IcpConfig, str(_with(tmp_path, 'icp_refiner', 'iteration', 3)))


def test_the_config_message_is_json_with_every_section():
    import json
    from dexman_perception.nodes.config_params import config_message
    msg = json.loads(config_message(stage='tracking', node='/dexman/tracker_node', backend='icp',
                                    backend_options={'iterations': 5}, config_file=str(YAML),
                                    sections={'tracker': TrackerConfig().to_dict()}))
    assert msg['stage'] == 'tracking' and msg['backend_options'] == {'iterations': 5}
    assert TrackerConfig.from_dict(msg['sections']['tracker']) == TrackerConfig()
