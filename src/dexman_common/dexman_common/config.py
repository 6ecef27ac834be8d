"""Configuration dataclasses: every tunable of an algorithm lives in one, its values in config/*.yaml.

An algorithm declares ``@dataclasses.dataclass(frozen=True) class FooConfig(ConfigBase)`` with
typed fields and defaults. ``FooConfig.from_dict(d)`` builds one from a mapping (a YAML section),
rejecting unknown keys and ill-typed values with a message naming the key, the class and the
YAML file; nested config dataclasses are built recursively. ``to_dict()`` gives the plain values
recorded in an artefact's provenance.

YAML layout: ``config/<area>.yaml`` holds one top-level section per config class (its
``SECTION``), e.g. ``config/rl.yaml``::

    reward:
      contact_weight_tip: 0.5
    ppo:
      learning_rate: 5.0e-4

``load_section(FooConfig, path)`` reads ``FooConfig.SECTION`` from that file (missing section:
defaults). ROS parameter files (``ros__parameters``) are a different thing: node parameters.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import types
import typing
from typing import Any, ClassVar, Mapping, TypeVar

import yaml

C = TypeVar('C', bound='ConfigBase')


class ConfigError(ValueError):
    """A configuration mapping does not fit its dataclass (unknown key, wrong type, bad value)."""


def _type_ok(value: Any, tp: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits annotation ``tp``; returns (ok, converted value)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return True, value
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(tp):
            ok, v = _type_ok(value, arm)
            if ok:
                return True, v
        return False, value
    if tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, bool), value
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False, value
        return True, float(value)
    if tp is str:
        return isinstance(value, str), value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            return False, value
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                return False, value
            pairs = list(zip(value, args))
        else:
            item = args[0] if args else Any
            pairs = [(v, item) for v in value]
        out = []
        for v, a in pairs:
            ok, cv = _type_ok(v, a)
            if not ok:
                return False, value
            out.append(cv)
        return True, (tuple(out) if origin is tuple else out)
    if origin is dict:
        return isinstance(value, Mapping), dict(value) if isinstance(value, Mapping) else value
    if isinstance(tp, type) and issubclass(tp, ConfigBase):
        if isinstance(value, tp):
            return True, value
        if isinstance(value, Mapping):
            return True, tp.from_dict(value)
        return False, value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value


@dataclasses.dataclass(frozen=True)
class ConfigBase:
    """Base of every algorithm configuration dataclass (frozen, typed, strict ``from_dict``)."""

    SECTION: ClassVar[str] = ''          # top-level key in its YAML file
    YAML_FILE: ClassVar[str] = ''        # file under config/ holding the values (for messages)

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any] | None, *, where: str = '') -> C:
        data = dict(data or {})
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        src = where or (f'config/{cls.YAML_FILE}' + (f' [{cls.SECTION}]' if cls.SECTION else '')
                        if cls.YAML_FILE else cls.__name__)
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ConfigError(f'{src}: unknown key(s) {unknown} for {cls.__name__}; '
                              f'known keys: {sorted(fields)}')
        kwargs = {}
        for name, value in data.items():
            ok, conv = _type_ok(value, hints[name])
            if not ok:
                raise ConfigError(f'{src}: key {name!r} of {cls.__name__} must be {_type_name(hints[name])}, '
                                  f'got {value!r} ({type(value).__name__})')
            kwargs[name] = conv
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ConfigError(f'{src}: {cls.__name__}: {e}') from e

    def to_dict(self) -> dict[str, Any]:
        def plain(v):
            if isinstance(v, ConfigBase):
                return v.to_dict()
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            if isinstance(v, list):
                return [plain(x) for x in v]
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            return v
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes`` applied, type-checked like ``from_dict``."""
        merged = self.to_dict()
        merged.update(changes)
        return type(self).from_dict(merged)


def _type_name(tp: Any) -> str:
    return getattr(tp, '__name__', None) or str(tp).replace('typing.', '')


def config_dir() -> pathlib.Path:
    """The project's config/ folder: $DEXMAN_CONFIG_DIR, else $DEXMAN_ROOT/config, else the installed
    dexman_bringup share's config/, else the source tree's."""
    env = os.environ.get('DEXMAN_CONFIG_DIR')
    if env:
        return pathlib.Path(env)
    root = os.environ.get('DEXMAN_ROOT')
    if root and (pathlib.Path(root) / 'config').is_dir():
        return pathlib.Path(root) / 'config'
    try:
        from ament_index_python.packages import get_package_share_directory
        share = pathlib.Path(get_package_share_directory('dexman_bringup')) / 'config'
        if share.is_dir():
            return share
    except Exception:  # noqa: BLE001 - ament index absent or package not installed
        pass
    here = pathlib.Path(__file__).resolve()
    for parent in here.parents:
        if (parent / 'config').is_dir() and (parent / 'src').is_dir():
            return parent / 'config'
    raise ConfigError('cannot find the config/ folder: set DEXMAN_CONFIG_DIR or DEXMAN_ROOT (source env.sh)')


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = pathlib.Path(path)
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except FileNotFoundError as e:
        raise ConfigError(f'config file not found: {p}') from e
    except yaml.YAMLError as e:
        raise ConfigError(f'{p}: not valid YAML: {e}') from e
    if not isinstance(data, dict):
        raise ConfigError(f'{p}: expected a mapping at the top level, got {type(data).__name__}')
    return data


def load_section(cls: type[C], path: str | os.PathLike | None = None, section: str | None = None) -> C:
    """``cls`` from ``section`` (default ``cls.SECTION``) of ``path`` (default config/<cls.YAML_FILE>)."""
    p = pathlib.Path(path) if path is not None else config_dir() / cls.YAML_FILE
    sec = cls.SECTION if section is None else section
    data = read_yaml(p)
    if sec:
        if sec not in data:
            raise ConfigError(f'{p}: no section {sec!r} (sections: {sorted(data)})')
        data = data[sec]
    return cls.from_dict(data, where=f'{p}' + (f' [{sec}]' if sec else ''))
