"""The wrist IK's model of the scene: the robot build plus the table the RL environment will put in
front of it, so that the IK keeps the arms and hands out of the table as well as out of the body
(``self_collision``).

- :func:`robot_with_table`: the robot model (``g1_shadow.xml`` of a build) with one extra body,
  ``ik_table``: a mocap body (no degree of freedom: the qpos layout is the robot's) carrying a
  box geom that collides like the simulated table (contype = conaffinity = 1). Until a table is
  set it is parked far below the robot.
- :func:`table_box`: the box ``dexman_sim.build_scene`` will build for a reference
  (``dexman_sim.make_table`` with the scene settings of config/sim.yaml: the table plane, the
  objects' footprint grown by ``table_margin``, its near edge ``robot_clearance`` in front of the
  robot's trunk). The footprint is taken from the object meshes at the demonstration's initial
  poses (the scene uses the collision parts at the placed poses: the same extent to within the
  placement's millimetres, inside a margin of tens of centimetres).
- :func:`set_table`: moves / resizes the box in a model and its data (``None``: parked).
"""
from __future__ import annotations

import numpy as np

TABLE_NAME = 'ik_table'
PARKED_Z = -100.0          # m, where the box waits when there is no table


def robot_with_table(model_dir):
    """The robot build of ``model_dir`` plus the parked ``ik_table`` box (module doc)."""
    import mujoco

    from dexman_sim.robot import load_robot_spec
    spec = load_robot_spec(model_dir)
    body = spec.worldbody.add_body(name=TABLE_NAME, mocap=True, pos=[0.0, 0.0, PARKED_Z])
    body.add_geom(name=TABLE_NAME, type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.5, 0.5, 0.025],
                  contype=1, conaffinity=1, rgba=[0.55, 0.45, 0.35, 0.3])
    return spec.compile()


def has_table(model) -> bool:
    try:
        model.geom(TABLE_NAME)
    except KeyError:
        return False
    return True


def table_box(table_point, table_normal, footprint_xy, model_dir, sim_config=None):
    """The ``dexman_sim.TableBox`` of the RL scene (module doc). footprint_xy: (N, 2) object
    points (world xy, m); sim_config: ``dexman_sim.SimConfig`` (default config/sim.yaml [sim])."""
    from dexman_sim import make_table
    from dexman_sim.robot import trunk_max_y
    cfg = sim_config if sim_config is not None else load_sim_config()
    return make_table(table_point, table_normal, np.asarray(footprint_xy, float).reshape(-1, 2),
                      margin=cfg.table_margin, thickness=cfg.table_thickness,
                      max_tilt_deg=cfg.table_max_tilt_deg, y_min=trunk_max_y(model_dir) + cfg.robot_clearance)


def load_sim_config():
    """``dexman_sim.SimConfig`` of config/sim.yaml (its defaults where the file has no section)."""
    from dexman_common.config import config_dir, load_section
    from dexman_sim import SimConfig
    path = config_dir() / SimConfig.YAML_FILE
    return load_section(SimConfig, path) if path.is_file() else SimConfig()


def set_table(model, data, box=None, shift=(0.0, 0.0, 0.0)) -> None:
    """Put the ``ik_table`` box of ``model`` at ``box`` (a ``dexman_sim.TableBox``) translated by
    ``shift`` (m), or park it (None). Updates the geom size, its bounding radius and the mocap
    pose in ``data`` (kinematics are the caller's next ``mj_kinematics``)."""
    g = model.geom(TABLE_NAME).id
    mocap = int(model.body_mocapid[model.geom_bodyid[g]])
    if box is None:
        data.mocap_pos[mocap] = [0.0, 0.0, PARKED_Z]
        return
    size = np.asarray(box.size, float)
    model.geom_size[g] = size
    model.geom_rbound[g] = float(np.linalg.norm(size))
    model.geom_aabb[g] = np.concatenate([np.zeros(3), size])
    data.mocap_pos[mocap] = np.asarray(box.center, float) + np.asarray(shift, float)
    data.mocap_quat[mocap] = [1.0, 0.0, 0.0, 0.0]
