"""Simulation settings shared by stable placement and the RL environment (values: config/sim.yaml).

Paper sources (DexMan B.5, Table 5, simulator Isaac Gym): dt 1/30 with 4 substeps, friction
ShadowHand 4.0, object 1.0, table 0.25. Everything else is our call, explained field by field.

Friction convention (paper silent on how two coefficients combine). Isaac Gym runs PhysX, whose
default combine mode (``PxCombineMode::eAVERAGE``) is the mean of the two shapes' coefficients:
hand-object (4.0 + 1.0) / 2 = 2.5, object-table (1.0 + 0.25) / 2 = 0.625. MuJoCo's own rule for
two geoms of equal priority is the per-axis maximum: 4.0 and 1.0. ``friction_convention``
'average' (default) reproduces the paper's simulator; 'max' gives MuJoCo's native values. Either
way the EFFECTIVE pair values are set explicitly (see ``dexman_sim.friction``).

Object density (paper silent). DexMan takes its hand friction from ManipTrans (Li et al. 2025)
and its PPO table equals ManipTrans's configuration key for key; ManipTrans uses 200 kg/m^3
("low-fill 3D prints") with the mass capped at 0.5 kg. We follow it (DexTrack uses 500 kg/m^3; the
first placement code used 500). Mass only scales the dynamics of a free object falling on a table
(toppling depends on the centre of mass and the contact geometry), so placement results do not
depend on it; grasping does, which is why the peer closest to the paper is followed.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import ClassVar

from dexman_common.config import ConfigBase

FRICTION_CONVENTIONS = ('average', 'max')
COLLISION_METHODS = ('coacd', 'hull')
INTEGRATORS = ('Euler', 'RK4', 'implicit', 'implicitfast')
SOLVERS = ('PGS', 'CG', 'Newton')
CONES = ('pyramidal', 'elliptic')
COACD_PREPROCESS = ('auto', 'on', 'off')


@dataclasses.dataclass(frozen=True)
class SimConfig(ConfigBase):
    """MuJoCo scene settings: physics, friction, object mass, table, collision decomposition."""

    SECTION: ClassVar[str] = 'sim'
    YAML_FILE: ClassVar[str] = 'sim.yaml'

    # --- physics (paper Table 5: control dt 1/30 s, 4 substeps -> MuJoCo timestep 1/120 s)
    control_dt: float = 1.0 / 30.0           # s, one policy step
    substeps: int = 4                        # physics steps per control step
    integrator: str = 'implicitfast'         # MuJoCo integrator (stable with stiff position actuators)
    solver: str = 'Newton'                   # MuJoCo constraint solver
    iterations: int = 100                    # solver iterations (MuJoCo default)
    ls_iterations: int = 50                  # line-search iterations (MuJoCo default)
    cone: str = 'pyramidal'                  # friction cone (MuJoCo default)
    gravity: tuple[float, float, float] = (0.0, 0.0, -9.81)   # m/s^2, world z up

    # --- friction (paper Table 5) and how pairs combine (module docstring)
    hand_friction: float = 4.0
    object_friction: float = 1.0
    table_friction: float = 0.25
    friction_convention: str = 'average'     # 'average' (PhysX / Isaac Gym) | 'max' (MuJoCo)
    torsional_friction: float = 0.005        # MuJoCo default
    rolling_friction: float = 0.0001         # MuJoCo default

    # --- object mass (module docstring): density times the mesh volume, optionally capped
    object_density: float = 200.0            # kg/m^3
    object_mass_cap: float | None = 0.5      # kg; heavier objects are scaled down to it (None: no cap)

    # --- table: a box whose top is the demonstration's table plane
    table_margin: float = 0.5                # m, the box covers the objects' footprint plus this
    table_thickness: float = 0.05            # m
    table_max_tilt_deg: float = 5.0          # a table normal further from +z is an error
    robot_clearance: float = 0.02            # m, gap between the table and the robot's trunk (y)
    penetration_tolerance: float = 1e-3      # m, deeper starts in the table are lifted (reported)

    # --- collision shapes of the objects
    collision: str = 'coacd'                 # 'coacd' (convex decomposition) | 'hull' (one convex hull)
    coacd_threshold: float = 0.05            # CoACD concavity threshold (its default)
    coacd_max_hulls: int = 16                # upper bound on parts (-1: unbounded); fewer = faster steps
    coacd_preprocess: str = 'auto'           # CoACD manifold pre-processing: 'auto' | 'on' | 'off'
    coacd_preprocess_resolution: int = 50    # CoACD default
    coacd_resolution: int = 2000             # CoACD sampling resolution (its default)
    coacd_seed: int = 0
    cache_dir: str = ''                      # '' -> $DEXMAN_ROOT/.cache/coacd (else ~/.cache/dexman/coacd)
    visual_meshes: bool = True               # add the full mesh as a non-colliding visual geom

    # --- robot
    robot_model_dir: str = 'artifacts/robot_model'   # relative paths are under $DEXMAN_ROOT

    def __post_init__(self) -> None:
        _choice('friction_convention', self.friction_convention, FRICTION_CONVENTIONS)
        _choice('collision', self.collision, COLLISION_METHODS)
        _choice('integrator', self.integrator, INTEGRATORS)
        _choice('solver', self.solver, SOLVERS)
        _choice('cone', self.cone, CONES)
        _choice('coacd_preprocess', self.coacd_preprocess, COACD_PREPROCESS)
        positive = ('control_dt', 'object_density', 'table_thickness', 'coacd_threshold',
                    'table_max_tilt_deg')
        for name in positive:
            if not getattr(self, name) > 0.0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        for name in ('substeps', 'iterations', 'ls_iterations'):
            if getattr(self, name) < 1:
                raise ValueError(f'{name} must be >= 1, got {getattr(self, name)}')
        for name in ('hand_friction', 'object_friction', 'table_friction', 'torsional_friction',
                     'rolling_friction', 'table_margin', 'robot_clearance', 'penetration_tolerance'):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f'{name} must be >= 0, got {getattr(self, name)}')
        if self.object_mass_cap is not None and not self.object_mass_cap > 0.0:
            raise ValueError(f'object_mass_cap must be > 0 or null, got {self.object_mass_cap}')
        if self.coacd_max_hulls == 0 or self.coacd_max_hulls < -1:
            raise ValueError(f'coacd_max_hulls must be -1 (unbounded) or >= 1, got {self.coacd_max_hulls}')

    @property
    def timestep(self) -> float:
        """MuJoCo timestep, s: control_dt / substeps (1/120 s with the paper's values)."""
        return self.control_dt / self.substeps

    def coacd_params(self) -> dict:
        """The keyword arguments of ``coacd.run_coacd`` (also part of the cache key)."""
        return {'threshold': float(self.coacd_threshold), 'max_convex_hull': int(self.coacd_max_hulls),
                'preprocess_mode': self.coacd_preprocess,
                'preprocess_resolution': int(self.coacd_preprocess_resolution),
                'resolution': int(self.coacd_resolution), 'seed': int(self.coacd_seed)}

    def cache_path(self) -> pathlib.Path:
        """Folder of the convex-decomposition cache."""
        if self.cache_dir:
            return _under_root(self.cache_dir)
        root = os.environ.get('DEXMAN_ROOT')
        if root:
            return pathlib.Path(root) / '.cache' / 'coacd'
        return pathlib.Path.home() / '.cache' / 'dexman' / 'coacd'

    def robot_model_path(self) -> pathlib.Path:
        """The robot model build folder (holds g1_shadow.xml)."""
        return _under_root(self.robot_model_dir)


def _under_root(p: str) -> pathlib.Path:
    path = pathlib.Path(os.path.expanduser(p))
    if path.is_absolute():
        return path
    return pathlib.Path(os.environ.get('DEXMAN_ROOT', '.')) / path


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f'{name} must be one of {", ".join(allowed)}; got {value!r}')
