"""Assemble the Unitree G1 with two Shadow hands as one MuJoCo model (``mujoco.MjSpec``).

- G1 (Menagerie ``g1.xml``): free joint removed, pelvis fixed with the feet on z = 0 at the world
  origin, turned +90 deg about z so the robot faces +y (the G1's own forward is +x); the leg
  joints (and, by default, the waist joints) are deleted, so those bodies are welded; the G1
  rubber hands are removed.
- A right Shadow hand on ``right_wrist_yaw_link`` and a mirrored (true left) Shadow hand on
  ``left_wrist_yaw_link``: the Shadow forearm, wrist body and wrist joints WRJ1/WRJ0 are dropped
  with their tendons, actuators and sensors (the G1 wrist roll/pitch/yaw supply those DoF).
  Names lose the ``robot0:`` prefix and get ``rh_`` / ``lh_``. All hand geoms get friction 4.0
  (paper B.5).

Mount (see docs/robot_model.md): the palm frame origin (the Shadow wrist-joint centre, on the
hand's long axis) sits on the G1 wrist-yaw link's x axis (the forearm axis), ``MOUNT_OFFSET`` =
41.5 mm (the wrist-yaw link's flange, where the G1 hand is bolted) + 11 mm (how far the Shadow
palm shell reaches below its frame origin) so the palm base sits on the flange. Orientation as the
G1 hands are mounted: fingers along +x of the wrist-yaw link, thumb (radial) side up (+z), palm
facing the body's midline (+y for the right hand, -y for the left) in the zero pose, i.e. a
hand-shake posture.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import xml.etree.ElementTree as ET

import numpy as np
from dexman_common.config import ConfigBase

from . import assets as _assets
from .mirror import mat_to_quat, mirror_subtree

SIDES = ('left', 'right')
HAND_PREFIX = {'left': 'lh_', 'right': 'rh_'}
ARM_JOINT_STEMS = ('shoulder_pitch', 'shoulder_roll', 'shoulder_yaw', 'elbow',
                   'wrist_roll', 'wrist_pitch', 'wrist_yaw')
LEG_JOINT_STEMS = ('hip_pitch', 'hip_roll', 'hip_yaw', 'knee', 'ankle_pitch', 'ankle_roll')
WAIST_JOINTS = ('waist_yaw_joint', 'waist_roll_joint', 'waist_pitch_joint')
# Shadow hand joints (OpenAI naming: J0 is the distal joint, J3 the knuckle abduction; on the
# real hand's naming each index is one higher). Tree order, i.e. qpos order within a hand.
HAND_JOINTS = ('FFJ3', 'FFJ2', 'FFJ1', 'FFJ0', 'MFJ3', 'MFJ2', 'MFJ1', 'MFJ0',
               'RFJ3', 'RFJ2', 'RFJ1', 'RFJ0', 'LFJ4', 'LFJ3', 'LFJ2', 'LFJ1', 'LFJ0',
               'THJ4', 'THJ3', 'THJ2', 'THJ1', 'THJ0')
# J0 of the four fingers has no actuator: the fixed tendon T_xxJ1c couples it to J1.
HAND_COUPLED_JOINTS = ('FFJ0', 'MFJ0', 'RFJ0', 'LFJ0')
HAND_ACTUATED_JOINTS = tuple(j for j in HAND_JOINTS if j not in HAND_COUPLED_JOINTS)
FINGERTIP_SITES = ('S_thtip', 'S_fftip', 'S_mftip', 'S_rftip', 'S_lftip')
PALM_BODY = 'palm'
WRIST_BODY = {'left': 'left_wrist_yaw_link', 'right': 'right_wrist_yaw_link'}

HAND_FRICTION = 4.0
MOUNT_OFFSET = 0.0525  # = 0.0415 + 0.011 m along the wrist-yaw link's x axis (see module docstring)
# Columns: the palm frame's x (thumb side of the right hand), y (back of the hand), z (fingers)
# expressed in the wrist-yaw link frame.
MOUNT_ROT = {
    'right': np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]).T,
    # the mirrored hand's thumb lies on its palm frame's -x: diag(1,-1,1) R_right diag(-1,1,1)
    'left': np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]).T,
}
FACING_QUAT = np.array([np.cos(np.pi / 4), 0.0, 0.0, np.sin(np.pi / 4)])  # +90 deg about z


@dataclasses.dataclass(frozen=True)
class BuildOptions(ConfigBase):
    """Knobs of the assembly; values in config/retarget.yaml [robot_model]. The defaults are the
    project's model."""

    SECTION = 'robot_model'
    YAML_FILE = 'retarget.yaml'

    lock_waist: bool = True          # weld the torso to the pelvis (tabletop work)
    hand_friction: float = HAND_FRICTION
    model_name: str = 'g1_shadow'


def arm_joints(side: str) -> list[str]:
    return [f'{side}_{s}_joint' for s in ARM_JOINT_STEMS]


def hand_joints(side: str) -> list[str]:
    return [HAND_PREFIX[side] + j for j in HAND_JOINTS]


def hand_actuated_joints(side: str) -> list[str]:
    return [HAND_PREFIX[side] + j for j in HAND_ACTUATED_JOINTS]


def fingertip_sites(side: str) -> list[str]:
    return [HAND_PREFIX[side] + s for s in FINGERTIP_SITES]


def joint_groups(options: BuildOptions = BuildOptions()) -> dict[str, list[str]]:
    """Joint names per group, in qpos order (waist, left arm, left hand, right arm, right hand)."""
    g = {}
    if not options.lock_waist:
        g['waist'] = list(WAIST_JOINTS)
    g['left_arm'] = arm_joints('left')
    g['left_hand'] = hand_joints('left')
    g['right_arm'] = arm_joints('right')
    g['right_hand'] = hand_joints('right')
    return g


@dataclasses.dataclass
class Assembly:
    spec: object                      # mujoco.MjSpec, ready to compile / to_xml
    g1: _assets.AssetSource
    shadow: _assets.AssetSource
    source_files: dict                # {'g1': [abs paths], 'shadow': [abs paths]} actually used
    mirror_counts: dict
    pelvis_height: float
    options: BuildOptions


def _abs_meshes(spec, meshdir: pathlib.Path) -> None:
    for m in spec.meshes:
        if m.file and not os.path.isabs(m.file):
            m.file = str((meshdir / m.file).resolve())
    spec.meshdir = ''


def _shadow_xml(shadow_root: pathlib.Path) -> str:
    """One self-contained MJCF string of the Shadow hand from robot.xml + shared*.xml, with the
    'robot0:' name prefix removed (it is replaced by rh_/lh_ when attaching)."""
    hand = shadow_root / 'hand'
    root = ET.Element('mujoco', model='shadow_hand')
    ET.SubElement(root, 'compiler', angle='radian')
    for child in ET.parse(hand / 'shared.xml').getroot():
        root.append(child)
    asset = ET.SubElement(root, 'asset')
    for child in ET.parse(hand / 'shared_asset.xml').getroot():
        asset.append(child)
    world = ET.SubElement(root, 'worldbody')
    for child in ET.parse(hand / 'robot.xml').getroot():
        world.append(child)
    return ET.tostring(root, encoding='unicode').replace('robot0:', '')


def _hand_spec(shadow_root: pathlib.Path, side: str, friction: float):
    """A Shadow hand spec whose 'palm' body is ready to attach: no forearm/wrist DoF."""
    import mujoco
    spec = mujoco.MjSpec.from_string(_shadow_xml(shadow_root))
    _abs_meshes(spec, shadow_root / 'stls' / 'hand')
    wrist_joints = {'WRJ0', 'WRJ1'}
    for s in list(spec.sensors):
        if s.objname in wrist_joints:
            spec.delete(s)
    for a in list(spec.actuators):
        if a.target in wrist_joints:
            spec.delete(a)
    for t in list(spec.tendons):
        if any(getattr(t.path[i].target, 'name', None) in wrist_joints for i in range(len(t.path))):
            spec.delete(t)
    palm = spec.body(PALM_BODY)
    for j in list(palm.joints):      # WRJ0 lives on the palm body
        spec.delete(j)
    palm.pos = [0.0, 0.0, 0.0]
    palm.quat = [1.0, 0.0, 0.0, 0.0]
    # Sizes that would clash with the parent on attach; the parent's defaults are kept.
    spec.njmax = -1
    spec.nconmax = -1
    for g in palm.find_all(mujoco.mjtObj.mjOBJ_GEOM):
        fr = np.array(g.friction, dtype=float)
        fr[0] = friction
        g.friction = fr
    counts = mirror_subtree(spec, palm) if side == 'left' else {}
    return spec, counts


def _used_meshes(spec) -> set[str]:
    import mujoco
    return {g.meshname for g in spec.worldbody.find_all(mujoco.mjtObj.mjOBJ_GEOM)
            if g.type == mujoco.mjtGeom.mjGEOM_MESH}


def assemble(options: BuildOptions = BuildOptions()) -> Assembly:
    """Build the combined MjSpec from the installed asset packages."""
    import mujoco
    g1 = _assets.g1_source()
    shadow = _assets.shadow_source()

    spec = mujoco.MjSpec.from_file(str(g1.root / 'g1.xml'))
    spec.modelname = options.model_name
    _abs_meshes(spec, g1.root / 'assets')

    # Fixed pelvis, facing +y.
    pelvis = spec.body('pelvis')
    for j in list(pelvis.joints):
        spec.delete(j)
    pelvis.quat = FACING_QUAT
    locked = [f'{s}_{j}_joint' for s in SIDES for j in LEG_JOINT_STEMS]
    if options.lock_waist:
        locked += list(WAIST_JOINTS)
    for a in list(spec.actuators):
        if a.target in locked:
            spec.delete(a)
    for name in locked:
        spec.delete(spec.joint(name))
    for k in list(spec.keys):        # the 'stand' key no longer matches qpos
        spec.delete(k)

    # The G1 rubber hands make way for the Shadow hands.
    for side in SIDES:
        wrist = spec.body(WRIST_BODY[side])
        for g in list(wrist.geoms):
            if g.meshname == f'{side}_rubber_hand':
                spec.delete(g)
    used = _used_meshes(spec)
    for m in list(spec.meshes):
        if m.name not in used:
            spec.delete(m)
    g1_files = sorted({m.file for m in spec.meshes} | {str(g1.root / 'g1.xml'), str(g1.root / 'LICENSE')})

    # The G1 wrist roll and yaw links are one link apart (pitch between) and their collision
    # meshes (convex hulls) touch at large wrist pitch: exclude that pair, the joint ranges are
    # the wrist's real limits.
    for side in SIDES:
        spec.add_exclude(bodyname1=f'{side}_wrist_roll_link', bodyname2=WRIST_BODY[side])

    mirror_counts = {}
    shadow_files = set()
    for side in SIDES:
        hand, counts = _hand_spec(shadow.root, side, options.hand_friction)
        if side == 'left':
            mirror_counts = counts
        for attr in ('nuser_jnt', 'nuser_site', 'nuser_tendon', 'nuser_sensor', 'nuser_actuator',
                     'nuser_body', 'nuser_geom', 'nuser_cam'):
            setattr(spec, attr, max(getattr(spec, attr), getattr(hand, attr)))
        shadow_files |= _prune_hand_assets(hand)
        frame = spec.body(WRIST_BODY[side]).add_frame(
            pos=[MOUNT_OFFSET, 0.0, 0.0], quat=mat_to_quat(MOUNT_ROT[side]))
        frame.attach_body(hand.body(PALM_BODY), HAND_PREFIX[side], '')
    hand_dir = shadow.root / 'hand'
    shadow_files |= {str(hand_dir / f) for f in ('robot.xml', 'shared.xml', 'shared_asset.xml')}
    shadow_files.add(str(shadow.root / 'LICENSE.md'))

    # Feet on the ground plane: the G1's lowest contact point at the zero pose on z = 0.
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    foot = [data.geom_xpos[i][2] - model.geom_size[i][0] for i in range(model.ngeom)
            if model.geom_type[i] == mujoco.mjtGeom.mjGEOM_SPHERE
            and model.body(model.geom_bodyid[i]).name.endswith('ankle_roll_link')]
    height = round(float(pelvis.pos[2] - min(foot)), 6)   # the MJCF keeps 6 digits
    pelvis.pos = [0.0, 0.0, height]

    return Assembly(spec=spec, g1=g1, shadow=shadow,
                    source_files={'g1': g1_files, 'shadow': sorted(shadow_files)},
                    mirror_counts=mirror_counts, pelvis_height=height, options=options)


def _prune_hand_assets(hand) -> set[str]:
    """Drop the meshes, materials and textures (skybox, floor, object) that the palm subtree
    does not use, so they do not travel with the attached hand. Returns the mesh files kept."""
    import mujoco
    geoms = hand.body(PALM_BODY).find_all(mujoco.mjtObj.mjOBJ_GEOM)
    meshes = {g.meshname for g in geoms if g.type == mujoco.mjtGeom.mjGEOM_MESH}
    materials = {g.material for g in geoms if g.material}
    files = set()
    for m in list(hand.meshes):
        if m.name in meshes:
            files.add(m.file)
        else:
            hand.delete(m)
    textures = set()
    for mat in list(hand.materials):
        if mat.name in materials:
            textures |= {t for t in mat.textures if t}
        else:
            hand.delete(mat)
    for t in list(hand.textures):
        if t.name not in textures:
            hand.delete(t)
    return files


def build_model(options: BuildOptions = BuildOptions()):
    """Convenience: the compiled ``mujoco.MjModel`` of the combined robot (no files written)."""
    return assemble(options).spec.compile()
