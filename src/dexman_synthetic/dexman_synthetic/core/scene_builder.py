"""MJCF model of the scene: room, table, static body, mocap hands/arms/objects, camera, lights.

Everything that moves is a mocap body whose pose the generator sets each frame (kinematic
animation, no physics); collisions are disabled. `Scene.set_frame` poses the model from the
generator's exact ground truth, so the rendering and the ground truth cannot disagree.
"""
from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from .body_model import Body
from .camera import CameraSpec
from .hand_model import LEFT, RIGHT, HandPose, HandShape
from .objects import ObjectModel
from .transforms import apply_T, frame_from_xz, quat_wxyz

LABEL_BACKGROUND, LABEL_BODY, LABEL_LEFT, LABEL_RIGHT = 0, 253, 254, 255


def _f(v) -> str:
    return ' '.join(f'{float(x):.9g}' for x in np.ravel(v))


def _mesh_xml(name: str, vertices: np.ndarray, faces: np.ndarray) -> str:
    return f'<mesh name="{name}" vertex="{_f(vertices)}" face="{" ".join(str(int(i)) for i in np.ravel(faces))}"/>'


@dataclasses.dataclass
class TableSpec:
    extents: tuple[float, float]       # x (left-right), y (depth)
    height: float
    thickness: float
    rgba: tuple


def capsule_pose(p0: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mocap pos and quat (wxyz) of a capsule whose local z runs from p0 to p1."""
    d = p1 - p0
    z = d / np.linalg.norm(d)
    helper = np.array([1.0, 0, 0]) if abs(z[0]) < 0.9 else np.array([0, 1.0, 0])
    R = frame_from_xz(np.cross(helper, z), z)
    return (p0 + p1) / 2, quat_wxyz(R)


class Scene:
    def __init__(self, table: TableSpec, body: Body, hand: HandShape, objects: list[ObjectModel],
                 camera: CameraSpec, rng: np.random.Generator):
        self.table, self.body, self.hand, self.objects, self.camera = table, body, hand, objects, camera
        self.xml = self._build_xml(rng)
        self.model = mujoco.MjModel.from_xml_string(self.xml)
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._mocap = {}
        for b in range(m.nbody):
            if m.body_mocapid[b] >= 0:
                self._mocap[mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, b)] = int(m.body_mocapid[b])
        self.geom_labels = np.zeros(m.ngeom, np.uint8)
        for g in range(m.ngeom):
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or ''
            if name.startswith('obj'):
                self.geom_labels[g] = 1 + int(name[3:].split('_')[0])
            elif name.startswith('hand0_'):
                self.geom_labels[g] = LABEL_LEFT
            elif name.startswith('hand1_'):
                self.geom_labels[g] = LABEL_RIGHT
            elif name.startswith(('body_', 'table', 'arm')):
                self.geom_labels[g] = LABEL_BODY
            else:
                self.geom_labels[g] = LABEL_BACKGROUND

    # ------------------------------------------------------------------ MJCF
    def _build_xml(self, rng) -> str:
        t, cam = self.table, self.camera
        W, H = cam.width, cam.height
        assets, world = [], []
        # room
        assets.append('<texture name="floor" type="2d" builtin="checker" width="256" height="256" '
                      f'rgb1="{_f(rng.uniform(0.4, 0.55) + rng.uniform(-0.04, 0.04, 3))}" '
                      f'rgb2="{_f(rng.uniform(0.25, 0.38) + rng.uniform(-0.04, 0.04, 3))}"/>')
        assets.append('<material name="floor" texture="floor" texrepeat="8 8" specular="0.05"/>')
        assets.append('<texture name="sky" type="skybox" builtin="gradient" rgb1="0.8 0.85 0.9" '
                      'rgb2="0.5 0.55 0.6" width="64" height="64"/>')
        world.append('<geom name="floor" type="plane" size="6 6 0.1" material="floor"/>')
        wall_y = self.body.T_world_pelvis[1, 3] - rng.uniform(1.2, 1.8)
        wall_rgb = rng.uniform(0.6, 0.9, 3)
        world.append(f'<geom name="wall" type="box" size="4 0.05 1.6" pos="0 {wall_y - 0.05:.4f} 1.6" '
                     f'rgba="{_f(wall_rgb)} 1"/>')
        # table
        tx, ty = t.extents
        world.append(f'<geom name="table_top" type="box" size="{tx / 2:.4f} {ty / 2:.4f} {t.thickness / 2:.4f}" '
                     f'pos="0 0 {t.height - t.thickness / 2:.5f}" rgba="{_f(t.rgba)}" material="table"/>')
        assets.append('<material name="table" specular="0.2" shininess="0.3"/>')
        for sx in (-1, 1):
            for sy in (-1, 1):
                world.append(f'<geom name="table_leg{sx}{sy}" type="box" size="0.025 0.025 {(t.height - t.thickness) / 2:.4f}" '
                             f'pos="{sx * (tx / 2 - 0.05):.4f} {sy * (ty / 2 - 0.05):.4f} '
                             f'{(t.height - t.thickness) / 2:.4f}" rgba="{_f(np.array(t.rgba[:3]) * 0.7)} 1"/>')
        # static body
        for i, g in enumerate(self.body.geoms):
            world.append(f'<geom name="body_{i}_{g.name}" type="{g.type}" size="{_f(g.size)}" pos="{_f(g.pos)}" '
                         f'quat="{_f(quat_wxyz(g.R))}" rgba="{_f(g.rgba)}" material="cloth"/>')
        assets.append('<material name="cloth" specular="0.1" shininess="0.1"/>')
        assets.append('<material name="skin" specular="0.15" shininess="0.3"/>')
        assets.append('<material name="obj" specular="0.35" shininess="0.5"/>')
        skin = _f(self.body.skin) + ' 1'
        shirt = _f(self.body.shirt) + ' 1'
        # arms: upper arm and forearm capsules (mocap), label body
        ru, rf = self.body.arm_radius
        for h in (LEFT, RIGHT):
            world.append(f'<body name="arm{h}_upper" mocap="true"><geom name="arm{h}_upper" type="capsule" '
                         f'size="{ru:.4f} {self.body.upper_arm / 2:.5f}" rgba="{shirt}" material="cloth"/></body>')
            world.append(f'<body name="arm{h}_fore" mocap="true"><geom name="arm{h}_fore" type="capsule" '
                         f'size="{rf:.4f} {self.body.forearm / 2:.5f}" rgba="{skin}" material="skin"/></body>')
        # hands
        from .hand_model import relaxed_pose
        p0, p1, rad = self.hand.segments(relaxed_pose())
        for h in (LEFT, RIGHT):
            palm = self.hand.palm(h)
            assets.append(_mesh_xml(f'palm{h}', palm.vertices, palm.faces))
            world.append(f'<body name="hand{h}_palm" mocap="true"><geom name="hand{h}_palm" type="mesh" '
                         f'mesh="palm{h}" rgba="{skin}" material="skin"/></body>')
            for i in range(15):
                half = np.linalg.norm(p1[i] - p0[i]) / 2
                world.append(f'<body name="hand{h}_seg{i}" mocap="true"><geom name="hand{h}_seg{i}" type="capsule" '
                             f'size="{rad[i]:.5f} {half:.6f}" rgba="{skin}" material="skin"/></body>')
        # objects
        for i, o in enumerate(self.objects):
            assets.append(_mesh_xml(f'obj{i}', o.mesh.vertices, o.mesh.faces))
            world.append(f'<body name="obj{i}" mocap="true"><geom name="obj{i}" type="mesh" mesh="obj{i}" '
                         f'rgba="{_f(o.rgba)}" material="obj"/></body>')
        # camera and lights
        xa, ya = cam.mujoco_xyaxes()
        world.append(f'<camera name="cam" pos="{_f(cam.T_world_optical[:3, 3])}" xyaxes="{_f(xa)} {_f(ya)}" '
                     f'fovy="{cam.fovy:.6f}"/>')
        ldir = np.array([rng.uniform(-0.5, 0.5), rng.uniform(0.1, 0.6), -1.0])
        world.append(f'<light name="key" directional="true" castshadow="false" pos="0 0 3" dir="{_f(ldir)}" '
                     f'diffuse="0.6 0.6 0.6" specular="0.2 0.2 0.2"/>')
        world.append('<light name="fill" directional="true" castshadow="false" pos="0 0 3" dir="0.3 -0.4 -1" '
                     'diffuse="0.3 0.3 0.3" specular="0 0 0"/>')
        return f'''<mujoco model="dexman_synthetic">
  <compiler angle="radian" inertiafromgeom="false"/>
  <option gravity="0 0 0"/>
  <statistic extent="2" center="0 0 0.8"/>
  <visual>
    <global offwidth="{max(W, 64)}" offheight="{max(H, 64)}"/>
    <quality shadowsize="2048" offsamples="4"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.25 0.25 0.25" specular="0 0 0"/>
    <map znear="0.02" zfar="6"/>
  </visual>
  <default><geom contype="0" conaffinity="0" group="0"/></default>
  <asset>
    {chr(10).join('    ' + a for a in assets)}
  </asset>
  <worldbody>
    {chr(10).join('    ' + w for w in world)}
  </worldbody>
</mujoco>'''

    # ------------------------------------------------------------------ posing
    def set_frame(self, wrist_T: np.ndarray, hand_poses: list[HandPose], elbows: np.ndarray,
                  object_T: np.ndarray) -> None:
        """Pose hands (wrist_T (2, 4, 4) world), arms (elbows (2, 3)) and objects (O, 4, 4)."""
        d = self.data
        for h in (LEFT, RIGHT):
            T = wrist_T[h]
            mid = self._mocap[f'hand{h}_palm']
            d.mocap_pos[mid] = T[:3, 3]
            d.mocap_quat[mid] = quat_wxyz(T[:3, :3])
            p0, p1, _ = self.hand.segments(hand_poses[h], h)
            p0, p1 = apply_T(T, p0), apply_T(T, p1)
            for i in range(15):
                mid = self._mocap[f'hand{h}_seg{i}']
                d.mocap_pos[mid], d.mocap_quat[mid] = capsule_pose(p0[i], p1[i])
            sh, el, wr = self.body.shoulders[h], elbows[h], T[:3, 3]
            d.mocap_pos[self._mocap[f'arm{h}_upper']], d.mocap_quat[self._mocap[f'arm{h}_upper']] = capsule_pose(sh, el)
            d.mocap_pos[self._mocap[f'arm{h}_fore']], d.mocap_quat[self._mocap[f'arm{h}_fore']] = capsule_pose(el, wr)
        for i, T in enumerate(object_T):
            mid = self._mocap[f'obj{i}']
            d.mocap_pos[mid] = T[:3, 3]
            d.mocap_quat[mid] = quat_wxyz(T[:3, :3])
        mujoco.mj_forward(self.model, d)
