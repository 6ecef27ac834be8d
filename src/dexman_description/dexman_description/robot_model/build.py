"""Build the robot files into a folder, atomically: g1_shadow.xml, g1_shadow.urdf,
meshes/ (mirrored left-hand STLs for the URDF) and manifest.json.

The folder is a build output (never committed): it is written as a temporary sibling folder
and renamed into place, replacing a previous build. A folder that exists, is not empty and is
not a previous build (no manifest.json from this generator) is refused, so a mistyped --out
cannot wipe unrelated files.
"""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import tempfile

from . import assets as _assets
from .assemble import (MOUNT_OFFSET, MOUNT_ROT, FACING_QUAT, BuildOptions, assemble,
                       joint_groups)

XML_NAME = 'g1_shadow.xml'
URDF_NAME = 'g1_shadow.urdf'
MANIFEST_NAME = 'manifest.json'
MESH_DIR = 'meshes'
GENERATOR = 'dexman_description.robot_model'


@dataclasses.dataclass
class BuildResult:
    out_dir: pathlib.Path
    xml_path: pathlib.Path
    urdf_path: pathlib.Path
    manifest_path: pathlib.Path
    manifest: dict
    model: object  # the compiled mujoco.MjModel, as read back from g1_shadow.xml


def _is_previous_build(d: pathlib.Path) -> bool:
    try:
        return json.loads((d / MANIFEST_NAME).read_text()).get('generator') == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


def _rel_hashes(files, root: pathlib.Path) -> dict:
    out = {}
    for f in files:
        p = pathlib.Path(f)
        try:
            key = str(p.resolve().relative_to(root.resolve()))
        except ValueError:
            key = str(p)
        out[key] = _assets.sha256_file(p)
    return dict(sorted(out.items()))


def build(out_dir, options: BuildOptions = BuildOptions()) -> BuildResult:
    """Assemble the model from the installed packages and write it to ``out_dir``."""
    import mujoco
    from .urdf import write_urdf

    out_dir = pathlib.Path(out_dir).expanduser().resolve()
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir())
                                                      and not _is_previous_build(out_dir))):
        raise FileExistsError(f'{out_dir} exists and is not a previous robot-model build: '
                              'refusing to replace it (choose an empty or new folder)')
    asm = assemble(options)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{out_dir.name}.tmp-', dir=out_dir.parent))
    try:
        (tmp / XML_NAME).write_text(asm.spec.to_xml())
        # The MJCF writer keeps 6 significant digits: everything downstream (URDF, the returned
        # model) uses the model as read back from the file, so the outputs agree exactly.
        model = mujoco.MjModel.from_xml_path(str(tmp / XML_NAME))
        mesh_files = {m.name: (m.file, list(m.scale)) for m in asm.spec.meshes}
        mirrored = write_urdf(model, mesh_files, tmp / URDF_NAME, tmp / MESH_DIR, out_dir / MESH_DIR)
        groups = joint_groups(options)
        manifest = {
            'generator': GENERATOR,
            'format': 1,
            'mujoco_version': mujoco.__version__,
            'options': dataclasses.asdict(options),
            'sources': {
                'g1': dict(asm.g1.as_dict(), files=_rel_hashes(asm.source_files['g1'], asm.g1.root)),
                'shadow_hand': dict(asm.shadow.as_dict(),
                                    files=_rel_hashes(asm.source_files['shadow'], asm.shadow.root)),
            },
            'placement': {'pelvis_pos': [0.0, 0.0, asm.pelvis_height],
                          'pelvis_quat_wxyz': [float(x) for x in FACING_QUAT],
                          'facing': '+y'},
            'hand_mount': {side: {'parent': f'{side}_wrist_yaw_link',
                                  'pos': [MOUNT_OFFSET, 0.0, 0.0],
                                  'rot_palm_in_wrist': MOUNT_ROT[side].tolist()}
                           for side in ('left', 'right')},
            'hand_friction': options.hand_friction,
            'left_hand_mirror': dict(asm.mirror_counts,
                                     reflection='diag(-1,1,1) in the palm frame',
                                     hinge_axes='pseudo-vector: (ax,-ay,-az); ranges unchanged'),
            'counts': {'nq': int(model.nq), 'njnt': int(model.njnt), 'nu': int(model.nu),
                       'nbody': int(model.nbody), 'ngeom': int(model.ngeom),
                       'ntendon': int(model.ntendon), 'nmesh': int(model.nmesh)},
            'joint_groups': groups,
            'outputs': {},
        }
        outputs = [XML_NAME, URDF_NAME] + [f'{MESH_DIR}/{m}' for m in mirrored]
        manifest['outputs'] = {f: _assets.sha256_file(tmp / f) for f in outputs}
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + '\n')
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = out_dir.with_name(f'.{out_dir.name}.old-{os.getpid()}')
            os.rename(out_dir, old)
            os.rename(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildResult(out_dir, out_dir / XML_NAME, out_dir / URDF_NAME, out_dir / MANIFEST_NAME,
                       manifest, model)


def load_model(out_dir):
    """The compiled ``mujoco.MjModel`` of a build folder."""
    import mujoco
    return mujoco.MjModel.from_xml_path(str(pathlib.Path(out_dir) / XML_NAME))


def manifest_sha256(out_dir) -> str:
    """sha256 of a build folder's manifest.json: the robot-model identity recorded in references and
    skills (a skill plays only on the build it was trained on). FileNotFoundError if there is none."""
    from dexman_common.hashing import sha256_file
    return sha256_file(pathlib.Path(out_dir) / MANIFEST_NAME)
