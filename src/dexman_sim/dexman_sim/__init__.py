"""MuJoCo simulation scenes for DexMan-ROS: [G1 + two Shadow hands +] table + objects.

Shared by stable placement (``dexman_retarget.core.stable_placement``, no robot) and the RL
environment (with the robot). Entry point: :func:`build_scene`; settings: :class:`SimConfig`
(config/sim.yaml). See docs/simulation.md.
"""
from .collision import CollisionShape, collision_shape, convex_hull_parts, given_parts
from .config import SimConfig
from .errors import SceneInputError
from .friction import PairFriction, combine, pair_friction
from .mass import MassProperties, mass_properties
from .mesh_repair import RepairedMesh, repair_mesh, validate_mesh
from .scene import Scene, SceneObjectSpec, build_scene, check_pose
from .table import TableBox, make_table, table_tilt_deg

__all__ = [
    'CollisionShape', 'collision_shape', 'convex_hull_parts', 'given_parts', 'SimConfig',
    'SceneInputError', 'PairFriction', 'combine', 'pair_friction', 'MassProperties',
    'mass_properties', 'RepairedMesh', 'repair_mesh', 'validate_mesh', 'Scene', 'SceneObjectSpec',
    'build_scene', 'check_pose', 'TableBox', 'make_table', 'table_tilt_deg',
]
