"""config/dexman.rviz and the robot description RViz shows, tested without RViz (not on PyPI):
the layout is valid YAML with the displays and topics the graph publishes, fixed frame `world`;
the launch file starts rviz2 on it only with rviz:=true; the URDF parses and every mesh URI in it
resolves to a file (``file://`` or ``package://``; which one is reported)."""
import pathlib
import re
import urllib.parse
import warnings

import pytest
import yaml

from dexman_bringup.core.launch_description import PackageResolver, load_launch_plan
from dexman_description import robot_model as rm
from dexman_description.urdf_fk import UrdfKinematics

ROOT = pathlib.Path(__file__).resolve().parents[1]
RVIZ = ROOT / 'config' / 'dexman.rviz'
_OK, _WHY = rm.assets_available()


def _displays():
    cfg = yaml.safe_load(RVIZ.read_text())
    vm = cfg['Visualization Manager']
    return cfg, vm, {d['Name']: d for d in vm['Displays']}


def test_rviz_layout_has_the_displays_and_topics():
    cfg, vm, displays = _displays()
    assert vm['Global Options']['Fixed Frame'] == 'world'
    by_class = {}
    for d in displays.values():
        by_class.setdefault(d['Class'], []).append(d)
        assert d['Enabled'] is True, d['Name']
    robot, = by_class['rviz_default_plugins/RobotModel']
    assert robot['Description Source'] == 'Topic'
    assert robot['Description Topic']['Value'] == '/robot_description'
    assert robot['Description Topic']['Durability Policy'] == 'Transient Local'   # it is latched
    assert len(by_class['rviz_default_plugins/TF']) == 1
    image, = by_class['rviz_default_plugins/Image']
    assert image['Topic']['Value'] == '/camera/image_raw'
    assert image['Topic']['Reliability Policy'] == 'Best Effort'      # matches any publisher
    markers = {d['Topic']['Value']: d['Topic'] for d in by_class['rviz_default_plugins/MarkerArray']}
    assert set(markers) == {'/dexman/markers/hands', '/dexman/markers/meshes', '/dexman/markers/tracks'}
    assert markers['/dexman/markers/meshes']['Durability Policy'] == 'Transient Local'
    assert cfg['Visualization Manager']['Views']['Current']['Target Frame'] == '<Fixed Frame>'


def test_rviz_topics_are_the_ones_the_nodes_publish():
    """The marker topics named in the layout are the publishers' (their source names them)."""
    src = ROOT / 'src' / 'dexman_perception' / 'dexman_perception' / 'nodes'
    _, _, displays = _displays()
    named = {d['Topic']['Value'] for d in displays.values() if d['Class'].endswith('MarkerArray')}
    published = set()
    for f in src.glob('*.py'):
        published |= set(re.findall(r"'(/dexman/markers/[a-z_]+)'", f.read_text()))
    assert named <= published, f'no publisher of {sorted(named - published)}'


def test_launch_starts_rviz_foxglove_and_recorder_only_when_asked(tmp_path):
    """rviz:=true adds rviz2 -d <dexman_bringup share>/config/dexman.rviz (rviz2 faked: not
    installable here); foxglove:=true the bridge; record:=DIR gives the recorder its output."""
    from ament_index_python.packages import get_package_prefix
    fake = tmp_path / 'rviz2_prefix'
    exe = fake / 'lib' / 'rviz2' / 'rviz2'
    exe.parent.mkdir(parents=True)
    exe.write_text('#!/bin/sh\n')
    exe.chmod(0o755)
    resolver = PackageResolver(get_prefix=lambda pkg: str(fake) if pkg == 'rviz2' else get_prefix_or_skip(pkg))

    def get_prefix_or_skip(pkg):
        try:
            return get_package_prefix(pkg)
        except Exception:  # noqa: BLE001
            pytest.skip(f'package {pkg} not installed: run scripts/setup.sh')

    launch = ROOT / 'launch' / 'dexman.launch.xml'
    off = load_launch_plan(launch, {'bag': '/tmp/b'}, resolver=resolver)
    names = [p.node_name for p in off.processes]
    assert 'rviz2' not in names and 'foxglove_bridge' not in names
    recorder, = [p for p in off.processes if p.node_name == 'topic_recorder']
    assert 'output:=""' in recorder.argv and 'required:=false' in recorder.argv

    on = load_launch_plan(launch, {'bag': '/tmp/b', 'rviz': 'true', 'foxglove': 'true',
                                   'foxglove_port': '9001', 'record': '/tmp/run/bag'}, resolver=resolver)
    procs = {p.node_name: p for p in on.processes}
    rviz = procs['rviz2']
    share = pathlib.Path(get_prefix_or_skip('dexman_bringup')) / 'share' / 'dexman_bringup'
    assert rviz.argv[:3] == (str(exe), '-d', str(share / 'config' / 'dexman.rviz'))
    assert (share / 'config' / 'dexman.rviz').read_text() == RVIZ.read_text()   # installed copy
    assert 'port:=9001' in procs['foxglove_bridge'].argv
    assert 'output:=/tmp/run/bag' in procs['topic_recorder'].argv


def _mesh_uris(urdf_text):
    return re.findall(r'<mesh\s+filename="([^"]+)"', urdf_text)


def resolve_mesh_uri(uri):
    """(scheme, path or None): file:// -> the path; package://pkg/rel -> <share of pkg>/rel."""
    u = urllib.parse.urlparse(uri)
    if u.scheme == 'file':
        return 'file', pathlib.Path(urllib.parse.unquote(u.path))
    if u.scheme == 'package':
        from ament_index_python.packages import get_package_share_directory
        try:
            share = get_package_share_directory(u.netloc)
        except Exception:  # noqa: BLE001 - PackageNotFoundError and friends
            return 'package', None
        return 'package', pathlib.Path(share) / urllib.parse.unquote(u.path).lstrip('/')
    return u.scheme or 'relative', None


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    if not _OK:
        pytest.skip(f'robot asset packages not installed: {_WHY}')
    out = tmp_path_factory.mktemp('rviz') / 'robot'
    rm.build(out)
    return out


def test_urdf_parses_and_every_mesh_uri_resolves(built):
    import yourdfpy
    urdf_path = built / rm.URDF_NAME
    text = urdf_path.read_text()
    robot = yourdfpy.URDF.load(str(urdf_path), build_scene_graph=False, load_meshes=False)
    kin = UrdfKinematics.from_xml(text)
    assert len(robot.robot.links) == len(kin.links) == rm.load_model(built).nbody   # + world
    uris = _mesh_uris(text)
    assert len(uris) > 50
    schemes, missing = {}, []
    for uri in uris:
        scheme, path = resolve_mesh_uri(uri)
        schemes[scheme] = schemes.get(scheme, 0) + 1
        if path is None or not path.is_file():
            missing.append(uri)
    assert not missing, f'{len(missing)} mesh URIs do not resolve, e.g. {missing[:3]}'
    assert set(schemes) <= {'file', 'package'}, schemes
    if 'file' in schemes:
        warnings.warn(f'URDF mesh URIs: {schemes}; file:// URIs point into this machine\'s venv, '
                      f'RViz on a system install needs package:// (issue 11)', UserWarning)


def test_mesh_uri_resolution_accepts_file_and_package_uris(tmp_path):
    """What the URDF check accepts: file:// paths and package:// URIs through the ament index."""
    stl = tmp_path / 'a b.stl'
    stl.write_text('solid x\nendsolid x\n')
    assert resolve_mesh_uri(stl.as_uri()) == ('file', stl)
    pytest.importorskip('ament_index_python')
    scheme, path = resolve_mesh_uri('package://dexman_bringup/config/dexman.rviz')
    if path is None:
        pytest.skip('dexman_bringup is not installed: run scripts/setup.sh')
    assert scheme == 'package' and path.is_file() and path.read_text() == RVIZ.read_text()
    assert resolve_mesh_uri('package://no_such_package_xyz/meshes/a.stl') == ('package', None)
    assert resolve_mesh_uri('meshes/a.stl') == ('relative', None)
