"""The retargeting pipeline's configuration: its own settings and one config per stage, read from
config/retarget.yaml (one top-level section per config class, ``dexman_common.config``).

==================  ======================================================  ====================
section             class                                                   used by
==================  ======================================================  ====================
``pipeline``        :class:`RetargetOptions` (its scalar fields)            retarget_pipeline
``ik``              ``wrist_ik.IKOptions``                                  wrist IK (MuJoCo)
``genesis_ik``      ``wrist_ik_genesis.GenesisIKOptions``                   wrist IK (Genesis)
``contact_priors``  ``contact_priors.ContactConfig``                        contact priors
``workspace_fit``   ``workspace_fit.WorkspaceFitConfig``                    workspace fit
``placement``       ``stable_placement.PlacementConfig``                    stable placement
``finger_mlp``      ``finger_mlp.TrainConfig`` (training only)              train_finger_mlp_cli
``robot_model``     ``dexman_description.robot_model.BuildOptions``         robot-model build
==================  ======================================================  ====================

:func:`load_options` builds a :class:`RetargetOptions` with every stage's section; a missing
section gives that class's defaults, an unknown section or key a ``ConfigError`` naming it and the
file. The reference records ``RetargetOptions.to_dict()`` in its provenance.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np

from dexman_common.config import ConfigBase, ConfigError, config_dir, read_yaml

from .contact_priors import ContactConfig
from .stable_placement import PlacementConfig
from .workspace_fit import WorkspaceFitConfig
from .wrist_ik import IKOptions
from .wrist_ik_genesis import GenesisIKOptions

FRAME_RATE = 30.0
IK_BACKENDS = ('mujoco', 'genesis')
CONFIG_NAME = 'retarget.yaml'
# sections of config/retarget.yaml read by other entry points (not RetargetOptions fields)
OTHER_SECTIONS = ('finger_mlp', 'robot_model')


class RetargetError(RuntimeError):
    """The demonstration cannot be retargeted (bad input, missing robot model or checkpoint)."""


class RetargetOptionsError(RetargetError, ValueError):
    """A retargeting option has a bad value (also a ValueError, so ``from_dict`` names the file)."""


@dataclasses.dataclass(frozen=True)
class RetargetOptions(ConfigBase):
    """Settings of ``retarget_pipeline.Retargeter``: the scalars (section ``pipeline``) and the
    stages' configs (their own sections, see the module doc)."""

    SECTION = 'pipeline'
    YAML_FILE = CONFIG_NAME

    frame_rate: float = FRAME_RATE                   # Hz, reference rate (paper: 30)
    ik_backend: str = 'mujoco'                       # 'mujoco' (wrist_ik) | 'genesis'
    finger_checkpoint: str | None = None             # None: the packaged finger_mlp_v1.pt
    placement_seed: int = 0                          # object k's placement samples use seed + k
    progress: bool = True                            # tqdm bar over the IK frames (stderr)
    ik: IKOptions = dataclasses.field(default_factory=IKOptions)
    genesis_ik: GenesisIKOptions = dataclasses.field(default_factory=GenesisIKOptions)
    contact_priors: ContactConfig = dataclasses.field(default_factory=ContactConfig)
    workspace_fit: WorkspaceFitConfig = dataclasses.field(default_factory=WorkspaceFitConfig)
    placement: PlacementConfig = dataclasses.field(default_factory=PlacementConfig)

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        if not (np.isfinite(self.frame_rate) and 1.0 <= self.frame_rate <= 1000.0):
            raise RetargetOptionsError(f'frame_rate must be in [1, 1000] Hz, got {self.frame_rate}')
        if self.ik_backend not in IK_BACKENDS:
            raise RetargetOptionsError(f'unknown ik_backend {self.ik_backend!r} '
                                       f'(choose from {", ".join(IK_BACKENDS)})')


def stage_sections() -> dict[str, type]:
    """Field name -> config class of RetargetOptions' stage configs (field name = YAML section)."""
    out = {}
    for f in dataclasses.fields(RetargetOptions):
        tp = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if isinstance(tp, type) and issubclass(tp, ConfigBase):
            if tp.SECTION != f.name:
                raise AssertionError(f'{tp.__name__}.SECTION {tp.SECTION!r} != field {f.name!r}')
            out[f.name] = tp
    return out


def default_config_file() -> pathlib.Path:
    """config/retarget.yaml (``dexman_common.config.config_dir``)."""
    return config_dir() / CONFIG_NAME


def load_options(path: str | os.PathLike | None = None, **overrides) -> RetargetOptions:
    """RetargetOptions from ``path`` (default :func:`default_config_file`), every stage from its
    section; ``overrides`` replace pipeline scalars (or whole stage configs) afterwards."""
    p = pathlib.Path(path) if path is not None else default_config_file()
    data = read_yaml(p)
    stages = stage_sections()
    known = {RetargetOptions.SECTION, *stages, *OTHER_SECTIONS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f'{p}: unknown section(s) {unknown}; known sections: {sorted(known)}')
    pipe = data.get(RetargetOptions.SECTION) or {}
    if not isinstance(pipe, dict):
        raise ConfigError(f'{p} [{RetargetOptions.SECTION}]: expected a mapping, got {type(pipe).__name__}')
    nested = sorted(set(pipe) & set(stages))
    if nested:
        raise ConfigError(f'{p} [{RetargetOptions.SECTION}]: {nested} are sections of their own, not '
                          f'keys of {RetargetOptions.SECTION}')
    kwargs = {}
    for name, cls in stages.items():
        sec = data.get(name)
        if sec is not None and not isinstance(sec, dict):
            raise ConfigError(f'{p} [{name}]: expected a mapping, got {type(sec).__name__}')
        kwargs[name] = cls.from_dict(sec or {}, where=f'{p} [{name}]')
    opts = RetargetOptions.from_dict(pipe, where=f'{p} [{RetargetOptions.SECTION}]')
    return dataclasses.replace(opts, **kwargs, **overrides)
