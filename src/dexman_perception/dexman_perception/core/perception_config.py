"""The perception algorithms' configurations: one ``ConfigBase`` section each in config/perception.yaml.

Every tunable of a perception algorithm lives in a frozen dataclass next to the algorithm
(``TrackerConfig`` in object_tracker.py, ``IcpConfig`` in backends/cpu_pose.py, ...), with
``SECTION`` its top-level key in config/perception.yaml and the dataclass defaults equal to the
YAML values (tests/test_perception_config.py checks every class). ``CONFIG_CLASSES`` lists them.

Who reads the file: the stage nodes (``config_file`` parameter, default
``config_dir()/perception.yaml``) load the sections of the algorithms they run and pass the
config objects in; the ROS-free modules default to the dataclass defaults (``config=None``).
Keyword overrides (a backend's ``backend_options``, a test's ``IcpRefiner(iterations=5)``) are
applied with ``configured`` and are type-checked like the file: an unknown key or a value of the
wrong type raises ``ConfigError`` naming the key.

Nothing here imports rclpy.
"""
from __future__ import annotations

import importlib
import pathlib
from collections.abc import Mapping
from typing import Any, TypeVar

from dexman_common.config import ConfigBase, ConfigError, config_dir, load_section

YAML_FILE = 'perception.yaml'

C = TypeVar('C', bound=ConfigBase)

# section -> "module:Class" (relative to dexman_perception.core), imported on demand
CONFIG_CLASSES: dict[str, str] = {
    'tracker': 'object_tracker:TrackerConfig',
    'icp_refiner': 'backends.cpu_pose:IcpConfig',
    'depth_color_segmenter': 'backends.cpu_segmentation:SegmenterConfig',
    'fused_cloud_mesh': 'backends.cpu_mesh:FusedMeshConfig',
    'lucas_kanade': 'backends.lk_tracks:LkConfig',
    'object_scale': 'object_scale:ScaleSearchConfig',
    'depth_alignment': 'depth_alignment:DepthAlignmentConfig',
    'hand_metric_scale': 'hand_metric_scale:HandScaleConfig',
    'hand_lifting': 'backends.hand_lifting:LiftingConfig',
    'mediapipe_hands': 'backends.mediapipe_hands:MediaPipeHandsConfig',
    'mediapipe_body': 'backends.mediapipe_body:MediaPipeBodyConfig',
    'scene_alignment': 'scene_alignment:SceneAlignmentConfig',
    'demo_assembly': 'demo_assembly:DemoAssemblyConfig',
}


def config_class(section: str) -> type[ConfigBase]:
    """The config dataclass of a section of config/perception.yaml."""
    if section not in CONFIG_CLASSES:
        raise ConfigError(f'{YAML_FILE}: unknown section {section!r}; sections: {sorted(CONFIG_CLASSES)}')
    module, name = CONFIG_CLASSES[section].split(':')
    return getattr(importlib.import_module(f'{__package__}.{module}'), name)


def default_config_file() -> pathlib.Path:
    """config_dir()/perception.yaml (ConfigError when the config/ folder cannot be found)."""
    return config_dir() / YAML_FILE


def load(cls: type[C], path: str | pathlib.Path | None = None) -> C:
    """``cls`` from its section of ``path`` (default: ``default_config_file()``). A ConfigError
    always names the file and section (also for a bad key inside a nested config)."""
    p = default_config_file() if path is None or str(path) == '' else pathlib.Path(path)
    try:
        return load_section(cls, p)
    except ConfigError as e:
        if str(p) in str(e):
            raise
        raise ConfigError(f'{p} [{cls.SECTION}]: {e}') from None


def configured(cls: type[C], config: C | None, overrides: Mapping[str, Any] | None = None,
               *, what: str = '') -> C:
    """``config`` (None: the defaults ``cls()``) with keyword ``overrides`` applied. A nested
    config takes a mapping that changes only the keys it names. Unknown keys and ill-typed values
    raise ConfigError naming the key (and ``what`` the overrides came from)."""
    if config is None:
        config = cls()
    elif not isinstance(config, cls):
        raise TypeError(f'config must be a {cls.__name__}, got {type(config).__name__}')
    if not overrides:
        return config
    where = what or f'{cls.__name__} overrides'
    try:
        return cls.from_dict(_merge(config.to_dict(), dict(overrides)), where=where)
    except ConfigError as e:
        if where in str(e):
            raise
        raise ConfigError(f'{where}: {e}') from None


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in changes.items():
        if isinstance(v, ConfigBase):
            v = v.to_dict()
        if isinstance(out.get(k), dict) and isinstance(v, Mapping):
            out[k] = _merge(out[k], dict(v))
        else:
            out[k] = v
    return out
