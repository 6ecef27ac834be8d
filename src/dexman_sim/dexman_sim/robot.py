"""The robot part of a scene: the G1 + two Shadow hands build (``dexman_description.robot_model``).

``load_robot_spec(dir)`` reads ``g1_shadow.xml`` of a build folder as an ``mujoco.MjSpec`` (the
pelvis is fixed at the world origin, facing +y). ``hand_geoms(spec)`` lists each hand's geoms (the
subtree of its palm body), ``arm_root_bodies()`` the first body of each arm chain, and
``trunk_max_y(model)`` the largest world y reached by the colliding geoms outside the arms and
hands at the default pose (qpos0): the table stays in front of it (``dexman_sim.table``).
"""
from __future__ import annotations

import functools
import pathlib

import numpy as np

from dexman_description.robot_model import HAND_PREFIX, PALM_BODY, XML_NAME, arm_joints

from .errors import SceneInputError

SIDES = ('left', 'right')


def robot_xml(model_dir) -> pathlib.Path:
    p = pathlib.Path(model_dir) / XML_NAME
    if not p.is_file():
        raise FileNotFoundError(f'no robot model at {p}: build it with '
                                f'`python -m dexman_description.build_robot_cli --out {model_dir}`')
    return p


def load_robot_spec(model_dir):
    import mujoco
    return mujoco.MjSpec.from_file(str(robot_xml(model_dir)))


def palm_body_name(side: str) -> str:
    return HAND_PREFIX[side] + PALM_BODY


def hand_geoms(spec, side: str) -> list:
    """The MjsGeom objects of one hand (palm subtree)."""
    import mujoco
    body = spec.body(palm_body_name(side))
    if body is None:
        raise SceneInputError(f'robot model has no body {palm_body_name(side)!r}')
    return list(body.find_all(mujoco.mjtObj.mjOBJ_GEOM))


def subtree_bodies(model, root: int) -> np.ndarray:
    """Body ids of the subtree rooted at ``root`` (compiled model)."""
    ids = [root]
    for b in range(root + 1, model.nbody):
        p = int(model.body_parentid[b])
        if p in ids:
            ids.append(b)
    return np.array(ids, int)


def arm_root_bodies(model) -> list[int]:
    return [int(model.jnt_bodyid[model.joint(arm_joints(s)[0]).id]) for s in SIDES]


def geom_world_aabb(model, data, g: int) -> tuple[np.ndarray, np.ndarray]:
    """World axis-aligned box (lo, hi) of geom g (its local AABB, rotated)."""
    c, h = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]
    R = data.geom_xmat[g].reshape(3, 3)
    center = data.geom_xpos[g] + R @ c
    half = np.abs(R) @ h
    return center - half, center + half


def trunk_geoms(model) -> np.ndarray:
    """Colliding robot geoms outside the arm subtrees (arms and hands excluded)."""
    arm = np.concatenate([subtree_bodies(model, b) for b in arm_root_bodies(model)])
    colliding = (model.geom_contype != 0) | (model.geom_conaffinity != 0)
    return np.array([g for g in range(model.ngeom)
                     if colliding[g] and model.geom_bodyid[g] != 0 and model.geom_bodyid[g] not in arm], int)


@functools.lru_cache(maxsize=8)
def _trunk_max_y_cached(xml: str, mtime: float) -> float:
    import mujoco
    model = mujoco.MjModel.from_xml_path(xml)
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    return float(max(geom_world_aabb(model, data, g)[1][1] for g in trunk_geoms(model)))


def trunk_max_y(model_dir) -> float:
    """Largest world y of the trunk's colliding geoms at qpos0, m (cached per model file)."""
    xml = robot_xml(model_dir)
    return _trunk_max_y_cached(str(xml.resolve()), xml.stat().st_mtime)
