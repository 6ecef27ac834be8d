"""Forward kinematics of a URDF, the way ``robot_state_publisher`` turns joint states into TF
(ROS-free; ``yourdfpy`` parses the URDF, ``dexman_common.geometry`` does the SE(3) algebra).

    kin = UrdfKinematics.from_file('artifacts/robot_model/g1_shadow.urdf')
    kin.fixed_transforms()                       # [JointTransform], once, for /tf_static
    kin.moving_transforms({'right_elbow_joint': 0.5, ...})   # the joints given (+ their mimics), for /tf
    kin.link_poses({'right_elbow_joint': 0.5})   # every link in the root frame (others at 0)

Semantics follow upstream robot_state_publisher (KDL tree from the URDF):

- one transform per joint, parent link -> child link: ``origin @ motion(q)``, where motion is a
  rotation of ``q`` about the (normalised) axis for revolute and continuous joints and a
  translation of ``q`` along it for prismatic joints;
- ``fixed`` joints are static; ``planar`` joints are treated as fixed (KDL has no planar joint:
  kdl_parser converts it to a fixed one); ``floating`` joints are skipped (no transform at all);
- a joint with ``<mimic joint=J multiplier=m offset=o>`` gets ``m * q_J + o`` whenever ``J`` is
  among the given positions (a mimic joint given explicitly keeps the value given, as upstream);
- names that are not moving joints of the URDF are ignored.
"""
from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from dexman_common.geometry import make_transform, quat_from_matrix, rotation_from_axis_angle

MOVING_TYPES = ('revolute', 'continuous', 'prismatic')
STATIC_TYPES = ('fixed', 'planar')
SKIPPED_TYPES = ('floating',)


class UrdfError(ValueError):
    """The URDF cannot be read or is not a tree this module can handle; one-line message."""


@dataclass(frozen=True)
class Mimic:
    joint: str
    multiplier: float
    offset: float


@dataclass(frozen=True)
class JointFrame:
    """One joint of the tree: ``parent -> child`` at ``origin`` (4x4), moving along ``axis``."""

    name: str
    type: str
    parent: str
    child: str
    origin: np.ndarray
    axis: np.ndarray
    mimic: Mimic | None = None

    def transform(self, q: float = 0.0) -> np.ndarray:
        """The child link's frame in the parent link's frame at joint value ``q``."""
        if self.type in ('revolute', 'continuous'):
            return self.origin @ make_transform(rotation_from_axis_angle(self.axis * q))
        if self.type == 'prismatic':
            return self.origin @ make_transform(t=self.axis * q)
        return self.origin.copy()


@dataclass(frozen=True)
class JointTransform:
    """A transform to publish: ``child`` in ``parent`` (translation (3,), quaternion x, y, z, w)."""

    joint: str
    parent: str
    child: str
    matrix: np.ndarray

    @property
    def translation(self) -> np.ndarray:
        return self.matrix[:3, 3]

    @property
    def quaternion_xyzw(self) -> np.ndarray:
        return quat_from_matrix(self.matrix[:3, :3])


def _unit_axis(joint) -> np.ndarray:
    axis = np.asarray(joint.axis if joint.axis is not None else (1.0, 0.0, 0.0), dtype=float)
    if axis.shape != (3,) or not np.all(np.isfinite(axis)):
        raise UrdfError(f'joint {joint.name!r}: axis must be 3 finite numbers, got {joint.axis!r}')
    n = float(np.linalg.norm(axis))
    if joint.type in MOVING_TYPES and n == 0.0:
        raise UrdfError(f'joint {joint.name!r} ({joint.type}) has a zero axis')
    return axis / n if n > 0 else axis


class UrdfKinematics:
    """The kinematic tree of a URDF (see the module docstring for the semantics)."""

    def __init__(self, robot, source: str = 'URDF') -> None:
        self.name: str = robot.name
        joints: dict[str, JointFrame] = {}
        children: dict[str, str] = {}
        for j in robot.joints:
            if j.type not in MOVING_TYPES + STATIC_TYPES + SKIPPED_TYPES:
                raise UrdfError(f'{source}: joint {j.name!r} has unknown type {j.type!r}')
            if j.child in children:
                raise UrdfError(f'{source}: link {j.child!r} is the child of two joints '
                                f'({children[j.child]!r}, {j.name!r}): not a tree')
            children[j.child] = j.name
            origin = np.eye(4) if j.origin is None else np.asarray(j.origin, dtype=float)
            mimic = None
            if j.mimic is not None:
                mimic = Mimic(j.mimic.joint, float(j.mimic.multiplier), float(j.mimic.offset))
            joints[j.name] = JointFrame(j.name, j.type, j.parent, j.child, origin, _unit_axis(j), mimic)
        links = [link.name for link in robot.links]
        unknown = sorted(({f.parent for f in joints.values()} | set(children)) - set(links))
        if unknown:
            raise UrdfError(f'{source}: joints refer to undeclared links {unknown}')
        roots = [name for name in links if name not in children]
        if len(roots) != 1:
            raise UrdfError(f'{source}: expected one root link, found {len(roots)}: {roots[:5]}')
        for f in joints.values():
            if f.mimic is not None and f.mimic.joint not in joints:
                raise UrdfError(f'{source}: joint {f.name!r} mimics unknown joint {f.mimic.joint!r}')
        self.root: str = roots[0]
        self.links: list[str] = links
        self.joints: dict[str, JointFrame] = joints
        self.moving: dict[str, JointFrame] = {n: f for n, f in joints.items() if f.type in MOVING_TYPES}
        self.static: dict[str, JointFrame] = {n: f for n, f in joints.items() if f.type in STATIC_TYPES}
        self.skipped: list[str] = [n for n, f in joints.items() if f.type in SKIPPED_TYPES]
        self.mimics: dict[str, Mimic] = {n: f.mimic for n, f in self.moving.items() if f.mimic is not None}
        self._order = self._topological_order(children)

    # -------------------------------------------------------------------------- construction
    @classmethod
    def from_xml(cls, xml: str, source: str = 'robot_description') -> 'UrdfKinematics':
        """Parse URDF text (meshes are not loaded)."""
        if not isinstance(xml, str) or not xml.strip():
            raise UrdfError(f'{source} is empty: expected URDF XML')
        import yourdfpy
        try:
            urdf = yourdfpy.URDF.load(io.BytesIO(xml.encode()), build_scene_graph=False,
                                      load_meshes=False, load_collision_meshes=False)
        except Exception as err:  # noqa: BLE001 - lxml/yourdfpy raise many kinds on bad input
            raise UrdfError(f'{source} is not a valid URDF: {type(err).__name__}: {err}') from None
        if urdf.robot is None or not urdf.robot.links:
            raise UrdfError(f'{source} is not a valid URDF: no <robot> with links')
        return cls(urdf.robot, source)

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> 'UrdfKinematics':
        try:
            text = open(path, encoding='utf-8').read()
        except OSError as err:
            raise UrdfError(f'cannot read URDF {path}: {err.strerror or err}') from None
        return cls.from_xml(text, str(path))

    def _topological_order(self, children: Mapping[str, str]) -> list[JointFrame]:
        by_parent: dict[str, list[JointFrame]] = {}
        for f in self.joints.values():
            by_parent.setdefault(f.parent, []).append(f)
        order, stack = [], [self.root]
        while stack:
            link = stack.pop()
            for f in by_parent.get(link, []):
                order.append(f)
                stack.append(f.child)
        return order

    # ------------------------------------------------------------------------------- queries
    def with_mimics(self, positions: Mapping[str, float]) -> dict[str, float]:
        """``positions`` plus every mimic joint whose leader is in it (upstream: a mimic joint
        given explicitly keeps its given value)."""
        out = dict(positions)
        for name, m in self.mimics.items():
            if m.joint in positions and name not in positions:
                out[name] = m.multiplier * float(positions[m.joint]) + m.offset
        return out

    def moving_transforms(self, positions: Mapping[str, float]) -> list[JointTransform]:
        """Transforms of the moving joints named in ``positions`` (and their mimic joints), in
        the order of the URDF tree; other names are ignored."""
        values = self.with_mimics(positions)
        frames = [f for f in self._order if f.name in self.moving and f.name in values]
        mats = _joint_matrices(frames, np.array([values[f.name] for f in frames], dtype=float))
        return [JointTransform(f.name, f.parent, f.child, T) for f, T in zip(frames, mats)]

    def fixed_transforms(self) -> list[JointTransform]:
        """Transforms of the fixed (and planar) joints; floating joints are left out."""
        return [JointTransform(f.name, f.parent, f.child, f.transform())
                for f in self._order if f.name in self.static]

    def link_poses(self, positions: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
        """Every link's pose (4x4) in the root link's frame; moving joints not in ``positions``
        (after mimics) are at 0. Links below a floating joint are left out."""
        values = self.with_mimics(positions or {})
        poses = {self.root: np.eye(4)}
        for f in self._order:
            if f.type in SKIPPED_TYPES or f.parent not in poses:
                continue
            poses[f.child] = poses[f.parent] @ f.transform(float(values.get(f.name, 0.0)))
        return poses


def _joint_matrices(frames: list[JointFrame], q: np.ndarray) -> np.ndarray:
    """``frames[i].transform(q[i])`` for all i at once (one batched rotation conversion)."""
    n = len(frames)
    motion = np.tile(np.eye(4), (n, 1, 1))
    if n:
        axes = np.array([f.axis for f in frames])
        rot = np.array([f.type in ('revolute', 'continuous') for f in frames])
        slide = np.array([f.type == 'prismatic' for f in frames])
        if rot.any():
            motion[rot, :3, :3] = rotation_from_axis_angle(axes[rot] * q[rot, None])
        motion[slide, :3, 3] = axes[slide] * q[slide, None]
    origins = np.array([f.origin for f in frames]).reshape(n, 4, 4)
    return origins @ motion


def finite_positions(names: Iterable[str], positions: Iterable[float]) -> dict[str, float]:
    """{name: position} of a JointState's parallel arrays; ValueError with the reason when their
    lengths differ or a value is not finite (upstream ignores such a message)."""
    names, positions = list(names), list(positions)
    if len(names) != len(positions):
        raise ValueError(f'{len(names)} joint names but {len(positions)} positions')
    bad = [n for n, q in zip(names, positions) if not math.isfinite(q)]
    if bad:
        raise ValueError(f'non-finite position for joint(s) {bad[:5]}')
    return dict(zip(names, (float(q) for q in positions)))


class PublishGate:
    """Upstream robot_state_publisher's rate limit on /tf from ``joint_states``.

    A message is published when ``ignore_timestamp`` is set or when its stamp is at least one
    publish interval (``int(1000 / publish_frequency)`` ms) after the last published stamp of
    the least recently published of its joints (a joint seen for the first time: always). When
    the node's clock goes backwards (a bag restarted), the record is cleared.
    """

    def __init__(self, publish_frequency: float, ignore_timestamp: bool = False) -> None:
        if not (0.0 < publish_frequency <= 1000.0):
            raise ValueError(f'publish_frequency must be in (0, 1000] Hz, got {publish_frequency}')
        self.interval_ns = int(1000.0 / publish_frequency) * 1_000_000
        self.ignore_timestamp = ignore_timestamp
        self._last: dict[str, int] = {}
        self._last_callback_ns = 0

    def check(self, names: Iterable[str], stamp_ns: int, now_ns: int) -> bool:
        """Whether to publish a message of ``names`` stamped ``stamp_ns`` received at ``now_ns``;
        records the stamp for those joints when it says yes."""
        names = list(names)
        if self._last_callback_ns > now_ns:
            self._last.clear()
        self._last_callback_ns = now_ns
        last = min([self._last.get(n, 0) for n in names], default=now_ns)
        last = min(last, now_ns)
        if not (self.ignore_timestamp or stamp_ns >= last + self.interval_ns):
            return False
        for n in names:
            self._last[n] = stamp_ns
        return True


__all__ = ['UrdfError', 'Mimic', 'JointFrame', 'JointTransform', 'UrdfKinematics', 'finite_positions',
           'PublishGate', 'MOVING_TYPES', 'STATIC_TYPES', 'SKIPPED_TYPES']
