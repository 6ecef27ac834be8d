"""The perception nodes' algorithm configuration: the `config_file` parameter, ROS parameters that
override a tunable of it, and the record of what a stage ran with.

Precedence, lowest first: the config dataclass defaults (= config/perception.yaml as shipped), the
section of `config_file`, a ROS parameter of the node naming the same tunable (declared with the
file's value as its default, so it wins only when it is set: launch file, parameter file,
``-p``), a backend's `backend_options` (for the backend's own section).

What a stage ran with goes to CONFIG_TOPIC (std_msgs/String, JSON, transient local, one message
per node, re-published when it changes): ``{"stage", "node", "backend", "backend_options",
"config_file", "sections": {section: values}}``. The demonstration assembler records every stage's
message in the demonstration's provenance.
"""
from __future__ import annotations

import json
from typing import Any

from dexman_common.config import ConfigBase, ConfigError
from dexman_common.ros.node_util import FloatList, ParamError, declare

from ..core import perception_config as pc

CONFIG_TOPIC = '/dexman/perception/config'


def declare_config_file(node) -> str:
    """Declare the read-only `config_file` parameter (default config_dir()/perception.yaml) and
    return its value."""
    try:
        default = str(pc.default_config_file())
    except ConfigError:
        default = ''
    return declare(node, 'config_file', default,
                   'algorithm settings: YAML with one section per algorithm (config/perception.yaml); '
                   'a ROS parameter of this node naming the same tunable overrides the file when set',
                   str, read_only=True)


def load_config(cls: type[ConfigBase], path: str) -> ConfigBase:
    """``cls`` from its section of ``path`` ('' = config_dir()/perception.yaml); ParamError with the
    loader's message (file, section, key) when the file, section or a value is bad."""
    try:
        return pc.load(cls, path or None)
    except ConfigError as e:
        raise ParamError(f'config_file: {e}') from None


def override(node, config: ConfigBase, param: str, description: str, field: str | None = None,
             kind: type | None = None) -> ConfigBase:
    """Declare ROS parameter ``param`` with the config's value of ``field`` (default: ``param``;
    'a.b' for a nested config) as its default; returns the config with the parameter's value
    (ParamError when it does not fit the config)."""
    path = (field or param).split('.')
    value: Any = config
    for name in path:
        value = getattr(value, name)
    if isinstance(value, tuple):
        value, kind = list(value), kind or FloatList
    got = declare(node, param, value, description, kind, read_only=True)
    change: Any = got
    for name in reversed(path[1:]):
        change = {name: change}
    try:
        return pc.configured(type(config), config, {path[0]: change}, what=f'parameter {param!r}')
    except ConfigError as e:
        raise ParamError(str(e)) from None


def config_message(*, stage: str, node: str, backend: str, backend_options: dict, config_file: str,
                   sections: dict[str, dict]) -> str:
    """The JSON published on CONFIG_TOPIC."""
    return json.dumps({'stage': stage, 'node': node, 'backend': backend,
                       'backend_options': {k: _plain(v) for k, v in backend_options.items()},
                       'config_file': config_file, 'sections': sections}, sort_keys=True)


def _plain(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return str(v)
