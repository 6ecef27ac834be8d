"""The dependency rule of the workspace, checked on every import statement (module level and lazy).

Runtime packages import only what lies upstream of them in the data flow:
    dexman_common        <- nothing of ours (rclpy only inside dexman_common.ros)
    dexman_description   <- dexman_common                       (robot model shared by several stages)
    dexman_sim           <- dexman_common, dexman_description   (scene builder shared by retargeting and RL)
    dexman_perception    <- dexman_common, dexman_msgs
    dexman_retarget      <- dexman_common, dexman_description, dexman_sim, dexman_msgs
    dexman_rl            <- the above + dexman_retarget (its public API)
    dexman_bringup       <- dexman_common
Perception and retargeting exchange data through artefacts, never imports. The benchmark side
(dexman_synthetic: generator, ground truth, pose metrics, scoring) may import everything; no
runtime package imports it. ``core`` modules never import rclpy.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SRC = ROOT / 'src'
OURS = ('dexman_common', 'dexman_description', 'dexman_sim', 'dexman_perception', 'dexman_retarget', 'dexman_rl',
        'dexman_bringup', 'dexman_synthetic', 'dexman_msgs')
ALLOWED = {
    'dexman_common': set(),
    'dexman_description': {'dexman_common'},
    'dexman_sim': {'dexman_common', 'dexman_description'},
    'dexman_perception': {'dexman_common', 'dexman_msgs'},
    'dexman_retarget': {'dexman_common', 'dexman_description', 'dexman_sim', 'dexman_msgs'},
    'dexman_rl': {'dexman_common', 'dexman_description', 'dexman_sim', 'dexman_retarget', 'dexman_msgs'},
    'dexman_bringup': {'dexman_common'},
    'dexman_synthetic': set(OURS),
}


def _imports(path: pathlib.Path):
    """(line, absolute top-level module name) of every import in ``path``; relative imports resolve
    inside the file's own package and are skipped."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _package_files():
    for pkg_dir in sorted(SRC.iterdir()):
        inner = pkg_dir / pkg_dir.name
        if inner.is_dir():
            for f in sorted(inner.rglob('*.py')):
                yield pkg_dir.name, f


def violations() -> list[str]:
    out = []
    for pkg, f in _package_files():
        rel = f.relative_to(SRC)
        sub = f.relative_to(SRC / pkg / pkg).parts
        for line, mod in _imports(f):
            top = mod.split('.')[0]
            if top in OURS and top != pkg and top not in ALLOWED.get(pkg, set()):
                out.append(f'{rel}:{line}: {pkg} must not import {mod}')
            if top == 'rclpy' and (sub[0] == 'core' or (pkg == 'dexman_common' and sub[0] != 'ros')):
                out.append(f'{rel}:{line}: rclpy imported outside a node/ros module')
    return out


def test_every_package_is_classified():
    pkgs = {p.name for p in SRC.iterdir() if (p / p.name).is_dir()}
    assert pkgs <= set(ALLOWED), f'new package(s) {sorted(pkgs - set(ALLOWED))}: add them to the rule'
    assert {'dexman_common', 'dexman_description', 'dexman_perception', 'dexman_retarget', 'dexman_rl'} <= pkgs


def test_dependency_rule_holds():
    bad = violations()
    assert not bad, 'import rule broken:\n' + '\n'.join(bad)


def test_rule_detects_a_violation(tmp_path, monkeypatch):
    """The checker itself: a retarget module importing perception is reported, a relative import is not."""
    pkg = tmp_path / 'dexman_retarget' / 'dexman_retarget' / 'core'
    pkg.mkdir(parents=True)
    (pkg / 'x.py').write_text('from . import y\nimport numpy\n\ndef f():\n    from dexman_perception.core import stages\n'
                              '    import rclpy\n')
    monkeypatch.setattr(__import__(__name__), 'SRC', tmp_path)
    bad = violations()
    assert len(bad) == 2 and 'must not import dexman_perception.core' in bad[0] and 'rclpy' in bad[1]


@pytest.mark.parametrize('pkg', sorted(ALLOWED))
def test_package_xml_declares_what_it_imports(pkg):
    """Every dexman_* package a runtime package imports is an exec_depend of its package.xml."""
    xml_path = SRC / pkg / 'package.xml'
    if not xml_path.exists():
        pytest.skip(f'{pkg} does not exist yet')
    xml = xml_path.read_text()
    used = {mod.split('.')[0] for p, f in _package_files() if p == pkg for _, mod in _imports(f)}
    missing = sorted(m for m in used & set(OURS) if m != pkg and f'<exec_depend>{m}</exec_depend>' not in xml)
    assert not missing, f'{pkg}/package.xml lacks exec_depend {missing}'
