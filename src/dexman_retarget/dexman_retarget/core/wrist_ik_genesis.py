"""Wrist IK with Genesis (the paper's choice, 3.3): both palms solved together by
``RigidEntity.inverse_kinematics_multilink`` on the G1 + Shadow model.

Optional backend: Genesis is not a project dependency (``pip install genesis-world==1.4.5``, after
torch: about 3 GB of dependencies). It is imported lazily, inside the functions; a missing package
raises :class:`BackendUnavailable` with the install command. Written against the Genesis 1.4.x API
(``genesis-world`` 1.4.5):

- ``gs.init(backend=gs.cpu | gs.gpu, precision='32' | '64', logging_level=...)``, once per process
  (``gs._initialized``);
- ``gs.Scene(show_viewer=False, rigid_options=gs.options.RigidOptions(enable_collision=False, ...))``,
  ``scene.add_entity(gs.morphs.MJCF(file=..., requires_jac_and_IK=True))``, ``scene.build()``;
- ``entity.get_link(name)``, ``entity.get_joint(name).dofs_idx_local / .qs_idx_local``;
- ``entity.inverse_kinematics_multilink(links, poss, quats, init_qpos, respect_joint_limit,
  max_samples, max_solver_iters, damping, pos_tol, rot_tol, max_step_size, dofs_idx_local,
  return_error=True)`` -> ``(qpos (n_qs,), error (n_links, 6))``; quaternions are (w, x, y, z).

Genesis loads a kinematics-only copy of the build's ``g1_shadow.xml`` (:func:`write_ik_mjcf`: same
bodies, joints, frames, limits and inertials; no geoms, meshes, tendons, actuators, sensors or
contacts), so nothing of the hand's mirrored meshes, tendons or contact pairs has to go through
Genesis's MJCF importer, and the build is quick (``kinematics_only=False`` loads the full XML).

Only the arm joints are solved (``dofs_idx_local``); every other joint stays at ``qpos_hold``.
Warm start: each frame starts from the previous frame's solution (``init_qpos``); when Genesis
cannot reach its tolerance from there it resamples random configurations (up to ``max_samples``),
so a hard frame can jump to another arm configuration. Errors, flags and messages are computed
with the MuJoCo model's forward kinematics (``WristIK.evaluate``), exactly as for the default
backend, so the two backends are compared on one measure.

Status: Genesis is not installed in the project environment; this module was written from the
Genesis source (``RigidEntity`` kinematics: ``inverse_kinematics_multilink``, ``get_joint``,
``qs_idx_local``) and has not been run against a real install yet. ``tests/test_wrist_ik_genesis.py``
runs it (opt-in) wherever ``import genesis`` works. Note ``pip install genesis-world`` may change
the installed mujoco version (Genesis declares ``mujoco>=3.2.5``; check ``pip check`` afterwards).
"""
from __future__ import annotations

import dataclasses
import pathlib
import tempfile
import time

import numpy as np

from dexman_common.geometry import quat_from_matrix
from dexman_common.config import ConfigBase
from dexman_description import robot_model as rm
from .wrist_ik import IKOptions, IKResult, WristIK
from .wrist_targets import SIDES, palm_targets_from_human

GENESIS_DIST = 'genesis-world'
GENESIS_VERSION = '1.4.5'
INSTALL_HINT = (f'pip install {GENESIS_DIST}=={GENESIS_VERSION} (install it after torch: Genesis '
                'does not declare torch; ~3 GB with its dependencies)')
IK_XML_NAME = 'g1_shadow_ik.xml'


class BackendUnavailable(RuntimeError):
    """The optional IK backend (Genesis) is not installed or cannot be imported."""


def import_genesis():
    """``import genesis``, or :class:`BackendUnavailable` naming the install command."""
    try:
        import genesis as gs
    except ImportError as e:   # ModuleNotFoundError, or a broken install (missing torch, ...)
        raise BackendUnavailable(f'the Genesis IK backend needs the package {GENESIS_DIST!r}: '
                                 f'{INSTALL_HINT}. Import failed: {e}') from e
    return gs


def genesis_available() -> tuple[bool, str]:
    """(True, version) when ``import genesis`` works, else (False, reason)."""
    try:
        gs = import_genesis()
    except BackendUnavailable as e:
        return False, str(e)
    return True, str(getattr(gs, '__version__', 'unknown'))


@dataclasses.dataclass(frozen=True)
class GenesisIKOptions(ConfigBase):
    """Tunables of the Genesis backend; values in config/retarget.yaml [genesis_ik]."""

    SECTION = 'genesis_ik'
    YAML_FILE = 'retarget.yaml'

    backend: str = 'cpu'           # 'cpu' or 'gpu' (gs.init backend, when this module initialises Genesis)
    precision: str = '32'          # gs.init precision ('32' or '64')
    max_samples: int = 50          # Genesis resamples (random restarts) per frame
    max_solver_iters: int = 20     # iterations per sample
    damping: float = 0.01          # damped least squares
    max_step_size: float = 0.5     # rad per iteration
    tol_pos: float = 1e-4          # Genesis stop tolerance and our `converged` threshold (m)
    tol_rot: float = 1e-3          # (rad)
    reach_tol_pos: float = 5e-3    # `reachable` thresholds, as in IKOptions
    reach_tol_rot: float = 0.05
    logging_level: str = 'warning'
    kinematics_only: bool = True   # load write_ik_mjcf's copy; False: the build's full g1_shadow.xml


def write_ik_mjcf(model_dir, out_path) -> pathlib.Path:
    """A kinematics-only MJCF of a robot-model build (``rm.build`` folder or its XML file).

    Same body tree, frames, joints (axes, ranges, names) and inertials (written explicitly from the
    compiled model); geoms, assets (meshes, materials, textures), tendons, actuators, sensors,
    contact pairs/excludes, equalities and keyframes removed. Sites are kept (without materials).
    Plain XML editing (``MjSpec.delete`` is slow on this model).
    """
    import xml.etree.ElementTree as ET

    import mujoco
    src = pathlib.Path(model_dir)
    xml = src / rm.XML_NAME if src.is_dir() else src
    compiled = mujoco.MjModel.from_xml_path(str(xml))
    root = ET.parse(xml).getroot()
    for tag in ('asset', 'tendon', 'actuator', 'sensor', 'contact', 'equality', 'keyframe', 'deformable'):
        for el in root.findall(tag):
            root.remove(el)
    compiler = root.find('compiler')
    if compiler is None:
        compiler = ET.Element('compiler')
        root.insert(0, compiler)
    compiler.set('inertiafromgeom', 'false')
    for parent in root.iter():
        for child in list(parent):
            if child.tag == 'geom' and parent.tag in ('body', 'worldbody'):   # not <default> geoms
                parent.remove(child)
            elif child.tag == 'site':
                child.attrib.pop('material', None)

    def fmt(v):
        return ' '.join(f'{float(x):.17g}' for x in v)

    for body in root.find('worldbody').iter('body'):
        b = compiled.body(body.get('name'))
        for el in body.findall('inertial'):
            body.remove(el)
        inertial = ET.Element('inertial', pos=fmt(b.ipos), quat=fmt(b.iquat), mass=f'{float(b.mass[0]):.17g}',
                              diaginertia=fmt(np.maximum(b.inertia, 1e-12)))
        body.insert(0, inertial)
    root.set('model', f'{root.get("model", "robot")}_ik')
    text = ET.tostring(root, encoding='unicode')
    mujoco.MjModel.from_xml_string(text)      # fail here, not inside Genesis
    out = pathlib.Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return out


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, 'detach') else np.asarray(x)


class GenesisWristIK:
    """Genesis scene with the kinematics-only robot; :meth:`solve_trajectory` as ``WristIK``'s.

    One Genesis scene per instance (building it compiles kernels, slow the first time on CPU and
    cached afterwards). ``gs.init`` is called here unless Genesis is already initialised.
    """

    def __init__(self, model_dir, options: GenesisIKOptions = GenesisIKOptions(), qpos_hold=None,
                 workdir=None):
        gs = import_genesis()
        self.gs = gs
        self.opt = options
        self.model = rm.load_model(model_dir)
        self.evaluator = WristIK(self.model, IKOptions(
            tol_pos=options.tol_pos, tol_rot=options.tol_rot, reach_tol_pos=options.reach_tol_pos,
            reach_tol_rot=options.reach_tol_rot), qpos_hold)
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix='dexman_genesis_ik_')
            workdir = self._tmp.name
        if options.kinematics_only:
            self.xml_path = write_ik_mjcf(model_dir, pathlib.Path(workdir) / IK_XML_NAME)
        else:
            src = pathlib.Path(model_dir)
            self.xml_path = src / rm.XML_NAME if src.is_dir() else src

        if not getattr(gs, '_initialized', False):
            backend = {'cpu': gs.cpu, 'gpu': gs.gpu}[options.backend]
            gs.init(backend=backend, precision=options.precision, logging_level=options.logging_level)
        self.scene = gs.Scene(show_viewer=False, rigid_options=gs.options.RigidOptions(
            enable_collision=False, enable_self_collision=False, enable_joint_limit=True))
        self.robot = self.scene.add_entity(gs.morphs.MJCF(file=str(self.xml_path), requires_jac_and_IK=True))
        self.scene.build()

        self.joint_names = list(self.evaluator.joint_names)
        self.links = {s: self.robot.get_link(rm.HAND_PREFIX[s] + rm.PALM_BODY) for s in SIDES}
        self.dofs = {s: [int(self.robot.get_joint(j).dofs_idx_local[0]) for j in rm.arm_joints(s)] for s in SIDES}
        # Genesis qpos index of every MuJoCo hinge joint (by name), to carry qpos_hold across.
        m = self.model
        self._mj_qadr, self._gs_qidx = [], []
        for j in range(m.njnt):
            name = m.joint(j).name
            self._mj_qadr.append(int(m.jnt_qposadr[j]))
            self._gs_qidx.append(int(self.robot.get_joint(name).qs_idx_local[0]))
        self._arm_gs_q = [int(self.robot.get_joint(j).qs_idx_local[0]) for j in self.joint_names]
        self.n_qs = int(self.robot.n_qs)

    def _gs_qpos(self, q_arm) -> np.ndarray:
        out = np.zeros(self.n_qs)
        out[self._gs_qidx] = self.evaluator.qpos_hold[self._mj_qadr]
        out[self._arm_gs_q] = q_arm
        return out

    def solve_frame(self, targets: dict, q_arm) -> np.ndarray:
        """One frame: {side: 4x4} -> arm joints (n,), warm-started at q_arm."""
        o = self.opt
        sides = [s for s in SIDES if s in targets]
        dofs = [d for s in sides for d in self.dofs[s]]
        qpos = self.robot.inverse_kinematics_multilink(
            links=[self.links[s] for s in sides],
            poss=[np.asarray(targets[s][:3, 3], dtype=float) for s in sides],
            quats=[quat_from_matrix(targets[s][:3, :3], scalar_first=True) for s in sides],
            init_qpos=self._gs_qpos(q_arm), respect_joint_limit=True, max_samples=o.max_samples,
            max_solver_iters=o.max_solver_iters, damping=o.damping, pos_tol=o.tol_pos,
            rot_tol=o.tol_rot, max_step_size=o.max_step_size, dofs_idx_local=dofs, return_error=False)
        q = np.array(q_arm, dtype=float)
        qpos = _np(qpos).reshape(-1)
        for s in sides:
            cols = self.evaluator.side_cols[s]
            q[cols] = qpos[[self._arm_gs_q[c] for c in cols]]
        return q

    def solve_trajectory(self, targets_left=None, targets_right=None, q0=None) -> IKResult:
        """As ``WristIK.solve_trajectory``: palm targets (T, 4, 4) per side -> IKResult."""
        ev = self.evaluator
        tl, tr, T, q = ev.prepare(targets_left, targets_right, q0)
        res_q = np.empty((T, len(self.joint_names)))
        t0 = time.perf_counter()
        for t in range(T):
            targets = ev.frame_targets(tl, tr, t)
            if targets:
                q = np.clip(self.solve_frame(targets, q), ev.lo, ev.hi)
            res_q[t] = q
        return ev.evaluate(res_q, tl, tr, None, time.perf_counter() - t0)

    def solve_from_human(self, human_left=None, human_right=None, q0=None) -> IKResult:
        tl = None if human_left is None else palm_targets_from_human(self.model, human_left, 'left')
        tr = None if human_right is None else palm_targets_from_human(self.model, human_right, 'right')
        return self.solve_trajectory(tl, tr, q0)
