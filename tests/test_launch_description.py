"""The XML launch interpreter (dexman_bringup.core.launch_description) and the launch CLI.

Launch files are written into tmp_path; package lookups go through a fake resolver whose
packages live under tmp_path, so nothing depends on the installed workspace.
"""
import os
import stat
import textwrap
from pathlib import Path

import pytest

from dexman_bringup import launch_cli
from dexman_bringup.core.launch_description import (
    LaunchError, PackageResolver, Substitution, describe_launch_arguments, evaluate_parameter_value,
    load_launch_plan, parse_template, yaml_value)


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

@pytest.fixture
def prefixes(tmp_path):
    """Two fake installed packages: demo (with executables talker, listener) and other."""
    root = tmp_path / 'install'
    out = {}
    for pkg, exes in (('demo', ('talker', 'listener')), ('other', ())):
        prefix = root / pkg
        (prefix / 'share' / pkg / 'launch').mkdir(parents=True)
        (prefix / 'lib' / pkg).mkdir(parents=True)
        for exe in exes:
            path = prefix / 'lib' / pkg / exe
            path.write_text('#!/bin/sh\n')
            path.chmod(path.stat().st_mode | stat.S_IXUSR)
        out[pkg] = str(prefix)
    return out


@pytest.fixture
def resolver(prefixes):
    return PackageResolver(get_prefix=lambda pkg: prefixes[pkg])


def write(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).strip() + '\n')
    return path


def plan_of(tmp_path, body, args=(), resolver=None, environ=None, name='main.launch.xml'):
    f = write(tmp_path / name, body)
    resolver = resolver or PackageResolver(get_prefix={}.__getitem__)
    return load_launch_plan(f, args, resolver=resolver,
                            environ={} if environ is None else environ)


def argv_of(tmp_path, body, **kw):
    return [list(p.argv) for p in plan_of(tmp_path, body, **kw).processes]


def error_of(tmp_path, body, **kw) -> str:
    with pytest.raises(LaunchError) as info:
        plan_of(tmp_path, body, **kw)
    return str(info.value)


# ------------------------------------------------------------------------------------------
# substitution syntax
# ------------------------------------------------------------------------------------------

def test_parse_template_text_escapes_and_nesting():
    assert parse_template('plain text') == ('plain text',)
    assert parse_template(r'a\$b \(c\)') == ('a$b (c)',)
    assert parse_template('x $(var a) y') == ('x ', Substitution('var', (('a',),)), ' y')
    assert parse_template('$(var $(var a)_x)') == (
        Substitution('var', ((Substitution('var', (('a',),)), '_x'),)),)
    # a quoted argument keeps its spaces and may hold substitutions
    assert parse_template("$(env HOME 'a b $(var c)')") == (
        Substitution('env', (('HOME',), ('a b ', Substitution('var', (('c',),))))),)
    assert parse_template('$(dirname)') == (Substitution('dirname', ()),)
    assert parse_template('') == ('',)
    # quotes at top level are literal text
    assert parse_template('say "hi" it\'s') == ('say "hi" it\'s',)


@pytest.mark.parametrize('text, fragment', [
    ('cost $5', "'$' that does not start a substitution"),
    ('$(var  x)', 'empty substitution argument'),
    ('$(var x', 'unterminated substitution'),
    ('$(var x) $(', "expected a substitution name"),
    ("$(env X 'unclosed)", 'missing closing'),
    ('$(eval 1+1)', "unsupported substitution '$(eval ...)'"),
    ('$(var)', 'expects 1 or 2 argument(s), got 0'),
    ('$(dirname x)', 'expects 0 argument(s), got 1'),
])
def test_parse_template_errors(text, fragment):
    with pytest.raises(LaunchError, match=None) as info:
        parse_template(text)
    assert fragment in str(info.value)


# ------------------------------------------------------------------------------------------
# substitution evaluation, args, let
# ------------------------------------------------------------------------------------------

def test_substitutions_evaluate(tmp_path, resolver, prefixes):
    (tmp_path / 'bin').mkdir()
    tool = tmp_path / 'bin' / 'mytool'
    tool.write_text('#!/bin/sh\n')
    tool.chmod(0o755)
    plan = plan_of(tmp_path, """
        <launch>
          <arg name="a" default="1"/>
          <let name="v" value="$(var a)-$(var missing fallback)"/>
          <let name="e"
               value="$(env HOME_X)|$(env NOPE 'no pe')|$(optenv NOPE)|$(optenv NOPE dflt)"/>
          <let name="d" value="$(dirname)"/>
          <let name="f" value="$(filename)"/>
          <let name="share" value="$(find-pkg-share demo)"/>
          <let name="prefix" value="$(find-pkg-prefix demo)"/>
          <let name="exe" value="$(find-exec mytool)"/>
          <let name="anon1" value="$(anon node)"/>
          <let name="anon2" value="$(anon node)"/>
          <let name="nested" value="$(var $(var a)x default)"/>
        </launch>
    """, resolver=resolver, environ={'HOME_X': '/home/x', 'PATH': str(tmp_path / 'bin')})
    c = plan.configurations
    assert c['v'] == '1-fallback'
    assert c['e'] == '/home/x|no pe||dflt'
    assert c['d'] == str(tmp_path)
    assert c['f'] == str(tmp_path / 'main.launch.xml')
    assert c['share'] == os.path.join(prefixes['demo'], 'share', 'demo')
    assert c['prefix'] == prefixes['demo']
    assert c['exe'] == str(tool)
    assert c['anon1'] == c['anon2'] and c['anon1'].startswith('node_')
    assert '.' not in c['anon1'] and '-' not in c['anon1']
    assert c['nested'] == 'default'


def test_substitution_failures(tmp_path, resolver):
    msg = error_of(tmp_path, '<launch><let name="x" value="$(var nope)"/></launch>')
    assert "launch configuration 'nope' does not exist" in msg and 'main.launch.xml:1: <let>' in msg
    msg = error_of(tmp_path, '<launch><let name="x" value="$(env NOPE_VAR)"/></launch>')
    assert "environment variable 'NOPE_VAR' does not exist" in msg
    msg = error_of(tmp_path, '<launch><let name="x" value="$(find-pkg-share nopkg)"/></launch>',
                   resolver=resolver)
    assert "package 'nopkg' not found" in msg


def test_arg_defaults_overrides_and_order(tmp_path):
    body = """
        <launch>
          <arg name="rate" default="10" description="Hz"/>
          <arg name="topic" default="/cam/$(var rate)"/>
          <let name="rate" value="$(var rate)0"/>
        </launch>
    """
    assert plan_of(tmp_path, body).configurations == {'rate': '100', 'topic': '/cam/10'}
    over = plan_of(tmp_path, body, args={'rate': '5', 'extra': 'x'}).configurations
    assert over == {'rate': '50', 'topic': '/cam/5', 'extra': 'x'}
    # given as a list of pairs too (the CLI's form)
    assert plan_of(tmp_path, body, args=[('rate', '7')]).configurations['topic'] == '/cam/7'


def test_missing_required_arg_lists_the_arguments(tmp_path):
    msg = error_of(tmp_path, """
        <launch>
          <arg name="robot" description="robot model"/>
          <arg name="rate" default="10"/>
          <group if="false"><arg name="hidden"/></group>
        </launch>
    """)
    assert "main.launch.xml:2: missing required launch argument 'robot' (robot model)" in msg
    assert "pass it as 'robot:=<value>'" in msg
    assert "robot (required), rate (default '10'), hidden (required)" in msg
    assert '\n' not in msg


def test_arg_choices(tmp_path):
    body = """
        <launch>
          <arg name="mode" default="sim"><choice value="sim"/><choice value="real"/></arg>
        </launch>
    """
    assert plan_of(tmp_path, body, args={'mode': 'real'}).configurations['mode'] == 'real'
    msg = error_of(tmp_path, body, args={'mode': 'dream'})
    assert "argument 'mode' has value 'dream'" in msg and "['sim', 'real']" in msg


# ------------------------------------------------------------------------------------------
# conditions
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('value, runs', [('true', True), ('TRUE', True), (' 1 ', True),
                                         ('false', False), ('False', False), ('0', False)])
def test_if_unless_truthiness(tmp_path, value, runs):
    plan = plan_of(tmp_path, f"""
        <launch>
          <arg name="on" default="{value}"/>
          <executable cmd="a" if="$(var on)"/>
          <executable cmd="b" unless="$(var on)"/>
        </launch>
    """)
    assert [p.argv[0] for p in plan.processes] == (['a'] if runs else ['b'])


def test_conditions_on_arg_let_group_include(tmp_path):
    write(tmp_path / 'inc.launch.xml', '<launch><executable cmd="included"/></launch>')
    plan = plan_of(tmp_path, """
        <launch>
          <arg name="x" default="1" if="false"/>
          <let name="y" value="2" unless="true"/>
          <let name="z" value="3" if="1"/>
          <group if="false"><executable cmd="never"/></group>
          <include file="$(dirname)/inc.launch.xml" unless="false"/>
          <include file="$(dirname)/absent.launch.xml" if="false"/>
        </launch>
    """)
    assert plan.configurations == {'z': '3'}
    assert [p.argv[0] for p in plan.processes] == ['included']


@pytest.mark.parametrize('body, fragment', [
    ('<launch><executable cmd="a" if="yes"/></launch>',
     "<executable>: 'if': invalid condition value 'yes': expected true/false/1/0"),
    ('<launch><executable cmd="a" if="" /></launch>', "invalid condition value ''"),
    ('<launch><executable cmd="a" if="true" unless="false"/></launch>',
     "'if' and 'unless' can't be used simultaneously"),
    # parse errors are reported even where a condition is false, as upstream
    ('<launch><group if="false"><node exec="a" bogus="1"/></group></launch>',
     "main.launch.xml:1: <node>: unknown attribute 'bogus'"),
    ('<launch><node exec="a"><param name="p" value="1" if="true"/></node></launch>',
     "<param>: unknown attribute 'if'"),
])
def test_condition_errors(tmp_path, body, fragment):
    assert fragment in error_of(tmp_path, body)


# ------------------------------------------------------------------------------------------
# groups and namespaces
# ------------------------------------------------------------------------------------------

def test_group_scoping(tmp_path):
    plan = plan_of(tmp_path, """
        <launch>
          <let name="a" value="outer"/>
          <group>
            <let name="a" value="inner"/>
            <let name="b" value="$(var a)"/>
            <executable cmd="echo $(var a)"/>
          </group>
          <group scoped="false"><let name="c" value="leaks"/></group>
          <group forwarding="false">
            <keep name="k" value="$(var a)"/>
            <executable cmd="echo $(var k) $(var a default_a)"/>
          </group>
        </launch>
    """)
    assert plan.configurations == {'a': 'outer', 'c': 'leaks'}
    assert [list(p.argv) for p in plan.processes] == [['echo', 'inner'],
                                                       ['echo', 'outer', 'default_a']]


def test_namespaces(tmp_path):
    argv = argv_of(tmp_path, """
        <launch>
          <node exec="n0" name="plain"/>
          <node exec="n1" namespace="rel"/>
          <group>
            <push_ros_namespace namespace="robot"/>
            <node exec="n2" name="a"/>
            <node exec="n3" name="b" namespace="arm"/>
            <node exec="n4" name="c" namespace="/abs"/>
            <group>
              <push-ros-namespace namespace="left/"/>
              <node exec="n5" name="d"/>
            </group>
            <node exec="n6" name="e"/>
          </group>
          <node exec="n7" name="f" namespace=""/>
        </launch>
    """)
    assert argv == [
        ['n0', '--ros-args', '-r', '__node:=plain'],
        ['n1', '--ros-args', '-r', '__ns:=/rel'],
        ['n2', '--ros-args', '-r', '__node:=a', '-r', '__ns:=/robot'],
        ['n3', '--ros-args', '-r', '__node:=b', '-r', '__ns:=/robot/arm'],
        ['n4', '--ros-args', '-r', '__node:=c', '-r', '__ns:=/abs'],
        ['n5', '--ros-args', '-r', '__node:=d', '-r', '__ns:=/robot/left'],
        ['n6', '--ros-args', '-r', '__node:=e', '-r', '__ns:=/robot'],
        ['n7', '--ros-args', '-r', '__node:=f', '-r', '__ns:=/'],
    ]


def test_invalid_names(tmp_path):
    assert "invalid node name '1bad'" in error_of(
        tmp_path, '<launch><node exec="a" name="1bad"/></launch>')
    assert 'resulting namespace is invalid' in error_of(
        tmp_path, '<launch><push_ros_namespace namespace="a b"/></launch>')
    assert "invalid namespace '/x//y'" in error_of(
        tmp_path, '<launch><node exec="a" namespace="/x//y"/></launch>')


# ------------------------------------------------------------------------------------------
# include
# ------------------------------------------------------------------------------------------

def test_include_with_args(tmp_path):
    write(tmp_path / 'sub' / 'camera.launch.xml', """
        <launch>
          <arg name="cam"/>
          <arg name="fps" default="30"/>
          <let name="from_child" value="$(dirname)"/>
          <executable cmd="cam $(var cam) $(var fps) $(dirname)"/>
        </launch>
    """)
    plan = plan_of(tmp_path, """
        <launch>
          <arg name="fps_default" default="15"/>
          <include file="$(dirname)/sub/camera.launch.xml">
            <arg name="cam" value="left"/>
            <arg name="fps" value="$(var fps_default)"/>
          </include>
          <group>
            <include file="$(dirname)/sub/camera.launch.xml">
              <arg name="cam" value="right"/>
              <arg name="fps" value="60"/>
            </include>
          </group>
          <executable cmd="after $(var cam) $(dirname)"/>
        </launch>
    """)
    sub = str(tmp_path / 'sub')
    assert [list(p.argv) for p in plan.processes] == [
        ['cam', 'left', '15', sub], ['cam', 'right', '60', sub], ['after', 'left', str(tmp_path)]]
    # an include is not a scope (upstream): its arguments and lets stay set; a group scopes
    assert plan.configurations['cam'] == 'left' and plan.configurations['fps'] == '15'
    assert plan.configurations['from_child'] == sub


def test_include_errors(tmp_path):
    write(tmp_path / 'child.launch.xml', '<launch><arg name="needed"/></launch>')
    msg = error_of(tmp_path, '<launch>\n<include file="$(dirname)/child.launch.xml"/>\n</launch>')
    assert "main.launch.xml:2: <include>:" in msg
    assert "missing required launch argument 'needed'" in msg
    assert 'add <arg name="needed" value="..."/> to the <include> at' in msg
    msg = error_of(tmp_path, '<launch><include file="nowhere.launch.xml"/></launch>')
    assert "included file 'nowhere.launch.xml' not found" in msg
    write(tmp_path / 'x.launch.py', '')
    assert 'XML launch files only' in error_of(
        tmp_path, '<launch><include file="$(dirname)/x.launch.py"/></launch>')
    write(tmp_path / 'loop.launch.xml', '<launch><include file="$(filename)"/></launch>')
    with pytest.raises(LaunchError, match='recursive include'):
        load_launch_plan(tmp_path / 'loop.launch.xml', environ={})


# ------------------------------------------------------------------------------------------
# nodes: the exact command line
# ------------------------------------------------------------------------------------------

def test_node_command_line(tmp_path, resolver, prefixes):
    params = write(tmp_path / 'params.yaml', """
        /**:
          ros__parameters:
            rate: 5
    """)
    plan = plan_of(tmp_path, f"""
        <launch>
          <arg name="rate" default="30"/>
          <group>
            <push_ros_namespace namespace="dexman"/>
            <node pkg="demo" exec="talker" name="talk" namespace="io"
                  args="--verbose 'two words' $(var rate)" ros_args="--log-level debug"
                  output="screen" respawn="true" respawn_delay="2.5">
              <param from="{params}"/>
              <param name="rate" value="$(var rate)"/>
              <param name="frame_id" value="base_link"/>
              <param name="label" value="two words"/>
              <param name="enabled" value="True"/>
              <param name="gain" value="0.5"/>
              <param name="ids" value="[1, 2, 3]"/>
              <param name="serial" value="0123" type="str"/>
              <param name="yes_word" value="yes" type="str"/>
              <param name="camera">
                <param name="width" value="640"/>
                <param name="model" value="d435"/>
              </param>
              <remap from="image" to="/camera/$(var rate)/image"/>
              <env name="RCUTILS_LOGGING_BUFFERED_STREAM" value="1"/>
            </node>
          </group>
        </launch>
    """, resolver=resolver)
    [spec] = plan.processes
    exe = os.path.join(prefixes['demo'], 'lib', 'demo', 'talker')
    assert list(spec.argv) == [
        exe, '--verbose', 'two words', '30',
        '--ros-args', '--log-level', 'debug',
        '--ros-args', '-r', '__node:=talk', '-r', '__ns:=/dexman/io',
        '--params-file', str(params),
        '-p', 'rate:=30', '-p', 'frame_id:=base_link', '-p', 'label:="two words"',
        '-p', 'enabled:=true', '-p', 'gain:=0.5', '-p', 'ids:=[1, 2, 3]',
        '-p', 'serial:="0123"', '-p', 'yes_word:="yes"',
        '-p', 'camera.width:=640', '-p', 'camera.model:=d435',
        '-r', 'image:=/camera/30/image',
    ]
    assert spec.env == (('RCUTILS_LOGGING_BUFFERED_STREAM', '1'),)
    assert spec.name == 'talker-1'
    assert (spec.output, spec.respawn, spec.respawn_delay) == ('screen', True, 2.5)
    assert (spec.package, spec.node_name, spec.node_namespace) == ('demo', 'talk', '/dexman/io')
    assert spec.on_exit is None and not spec.ends_launch


def test_node_errors(tmp_path, resolver):
    assert "executable 'nope' not found in package 'demo'" in error_of(
        tmp_path, '<launch><node pkg="demo" exec="nope"/></launch>', resolver=resolver)
    assert "package 'ghost' not found" in error_of(
        tmp_path, '<launch><node pkg="ghost" exec="x"/></launch>', resolver=resolver)
    assert "parameter file '/no/such.yaml' not found" in error_of(
        tmp_path, '<launch><node exec="x"><param from="/no/such.yaml"/></node></launch>')
    assert "parameter 'd': value 'a: 1'" in error_of(
        tmp_path, '<launch><node exec="x"><param name="d" value="a: 1"/></node></launch>')
    assert "value 'x' is not of type int" in error_of(
        tmp_path, '<launch><node exec="x"><param name="i" value="x" type="int"/></node></launch>')
    assert "unsupported parameter type 'list_of_int'" in error_of(
        tmp_path, '<launch><node exec="x"><param name="i" value="[1]" type="list_of_int"/>'
                  '</node></launch>')
    assert "missing required attribute 'exec'" in error_of(tmp_path, '<launch><node/></launch>')


def test_process_labels_and_options(tmp_path, resolver):
    plan = plan_of(tmp_path, """
        <launch>
          <arg name="sigterm_timeout" default="2"/>
          <node pkg="demo" exec="talker" exec_name="speaker"/>
          <node pkg="demo" exec="listener" on_exit="shutdown" sigkill_timeout="1.5"/>
          <executable cmd="$(find-pkg-prefix demo)/lib/demo/talker --x" name="tool" cwd="/tmp"
                      launch-prefix="nice -n 5" respawn="true" respawn_max_retries="3">
            <env name="A" value="1"/><env name="B" value="$(var sigterm_timeout)"/>
          </executable>
        </launch>
    """, resolver=resolver)
    a, b, c = plan.processes
    assert [a.name, b.name, c.name] == ['speaker-1', 'listener-2', 'tool-3']
    assert b.ends_launch and (b.sigterm_timeout, b.sigkill_timeout) == (2.0, 1.5)
    assert a.sigkill_timeout == 5.0 and a.output == 'log'
    assert list(c.argv)[:3] == ['nice', '-n', '5'] and c.argv[3].endswith('/lib/demo/talker')
    assert c.argv[4:] == ('--x',)
    assert (c.cwd, c.respawn, c.respawn_max_retries, c.env) == (
        '/tmp', True, 3, (('A', '1'), ('B', '2')))


def test_output_override_env(tmp_path):
    plan = plan_of(tmp_path, '<launch><executable cmd="a" output="log"/></launch>',
                   environ={'OVERRIDE_LAUNCH_PROCESS_OUTPUT': 'screen'})
    assert plan.processes[0].output == 'screen'
    assert "output 'loud' is not one of" in error_of(
        tmp_path, '<launch><executable cmd="a" output="loud"/></launch>')


def test_cmdline_splitting(tmp_path):
    argv = argv_of(tmp_path, """
        <launch>
          <let name="sp" value="has space"/>
          <executable cmd="prog $(var sp) pre-$(var sp)-post 'quoted arg' a  b"/>
        </launch>
    """)
    assert argv == [['prog', 'has space', 'pre-has space-post', 'quoted arg', 'a', 'b']]


# ------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('body, fragment', [
    ('<launch><foo/></launch>', 'main.launch.xml:1: unknown element <foo>'),
    ('<launch><set_env name="A" value="1"/></launch>',
     '<set_env> is valid in ROS 2 launch but not supported'),
    ('<launch><executable cmd="a" shell="true"/></launch>',
     "attribute 'shell' is valid in ROS 2 launch but not supported"),
    ('<launch><arg name="a" defualt="1"/></launch>',
     "<arg>: unknown attribute 'defualt' (supported: default, description, if, name, unless)"),
    ('<launch>\n  <node exec="a">\n    <remap from="a"/>\n  </node>\n</launch>',
     "main.launch.xml:3: <remap>: missing required attribute 'to'"),
    ('<launch><node exec="a"><topic/></node></launch>',
     '<topic> is not allowed inside <node> (allowed: <param>, <remap>, <env>)'),
    ('<launch>\n<arg name="a"\n</launch>', 'main.launch.xml:3: malformed XML'),
    ('<robot/>', 'expected <launch> as the root element, got <robot>'),
    ('<launch><executable cmd="a" on_exit="restart"/></launch>',
     "attribute 'on_exit' must be 'shutdown'"),
    ('<launch><executable cmd="a" respawn_delay="$(var d)"/></launch>',
     "attribute 'respawn_delay' must be a literal float"),
    ('<launch><let name="a" value="1">text</let></launch>', "unexpected text 'text'"),
    ('<launch><group scoped="maybe"/></launch>', "attribute 'scoped': expected a boolean"),
    ('<launch><let name="a" value="cost $5"/></launch>',
     "<let>: attribute 'value': invalid substitution syntax"),
])
def test_bad_input_errors(tmp_path, body, fragment):
    msg = error_of(tmp_path, body)
    assert fragment in msg
    assert '\n' not in msg


def test_non_xml_launch_files_rejected(tmp_path):
    write(tmp_path / 'x.launch.py', 'print(1)')
    with pytest.raises(LaunchError, match='Python launch files are not supported'):
        load_launch_plan(tmp_path / 'x.launch.py', environ={})
    with pytest.raises(LaunchError, match='not found'):
        load_launch_plan(tmp_path / 'absent.launch.xml', environ={})


# ------------------------------------------------------------------------------------------
# parameter typing and rendering
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize('text, type_name, typed, rendered', [
    ('5', None, 5, '5'),
    ('0.5', None, 0.5, '0.5'),
    ('1e5', None, '1e5', '"1e5"'),          # YAML 1.1: no dot, so a string (as upstream)
    ('true', None, True, 'true'),
    ('on', None, True, 'true'),
    ('hello', None, 'hello', 'hello'),
    ('/a/b_c', None, '/a/b_c', '/a/b_c'),
    ('', None, '', '""'),
    ("'quoted'", None, 'quoted', 'quoted'),
    ('[a, b]', None, ('a', 'b'), '[a, b]'),
    ('[1.5, 2.0]', None, (1.5, 2.0), '[1.5, 2.0]'),
    ('42', 'str', '42', '"42"'),
    ('y', 'str', 'y', '"y"'),
    ('7', 'float', 7.0, '7.0'),
    ('True', 'bool', True, 'true'),
    ('say "hi"', None, 'say "hi"', '"say \\"hi\\""'),
])
def test_parameter_value_typing(text, type_name, typed, rendered):
    value = evaluate_parameter_value(text, type_name, 'p')
    assert value == typed and type(value) is type(typed)
    assert yaml_value(value) == rendered


def test_parameter_value_errors():
    with pytest.raises(LaunchError, match='items of one type'):
        evaluate_parameter_value('[1, a]', None, 'p')
    with pytest.raises(LaunchError, match='non-empty'):
        evaluate_parameter_value('[]', None, 'p')
    with pytest.raises(LaunchError, match='expected a boolean'):
        evaluate_parameter_value('maybe', 'bool', 'p')


# ------------------------------------------------------------------------------------------
# --show-args and the CLI
# ------------------------------------------------------------------------------------------

def test_describe_arguments_includes_nested(tmp_path):
    write(tmp_path / 'child.launch.xml', """
        <launch><arg name="given"/><arg name="depth" default="3" description="levels"/></launch>
    """)
    main = write(tmp_path / 'main.launch.xml', """
        <launch>
          <arg name="robot" description="model"/>
          <group if="$(var robot)"><arg name="opt" default="x"/></group>
          <include file="$(dirname)/child.launch.xml"><arg name="given" value="1"/></include>
          <include file="$(var robot)/other.launch.xml"/>
        </launch>
    """)
    declared, notes = describe_launch_arguments(main, environ={})
    assert [(d.name, d.default, d.conditional) for d in declared] == [
        ('robot', None, False), ('opt', 'x', True), ('depth', '3', False)]
    assert len(notes) == 1 and 'not listed' in notes[0]


def test_cli_print_and_errors(tmp_path, capsys):
    f = write(tmp_path / 'demo.launch.xml', """
        <launch>
          <arg name="who" description="greeting target"/>
          <executable cmd="echo hello $(var who)" on_exit="shutdown">
            <env name="A" value="b c"/>
          </executable>
        </launch>
    """)
    assert launch_cli.main([str(f), 'who:=world', '--print']) == 0
    out = capsys.readouterr().out
    assert 'echo-1:' in out and "cmd: echo hello world" in out
    assert 'env: A=b c' in out and 'on_exit=shutdown' in out

    assert launch_cli.main([str(f), '--show-args']) == 0
    out = capsys.readouterr().out
    assert "'who':" in out and 'greeting target' in out and '(required)' in out

    for argv, fragment in (
            ([str(f)], "missing required launch argument 'who'"),
            ([str(f), 'who'], "malformed launch argument 'who'"),
            ([str(tmp_path / 'nope.launch.xml')], 'not found'),
            (['no_such_pkg_xyz', 'x.launch.xml'], "package 'no_such_pkg_xyz' not found"),
            ([], 'required'),
            ([str(f), '--bogus'], 'unrecognized arguments')):
        assert launch_cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith('dexman_launch: error: ') and fragment in err
        assert err.count('\n') == 1 and 'Traceback' not in err


def test_cli_package_form(tmp_path, resolver, prefixes):
    share_launch = Path(prefixes['demo']) / 'share' / 'demo' / 'launch'
    write(share_launch / 'talk.launch.xml', '<launch/>')
    path, args = launch_cli.split_targets(['demo', 'talk.launch.xml', 'a:=1', 'b:=x:=y'],
                                          resolver)
    assert path == str(share_launch / 'talk.launch.xml')
    assert args == [('a', '1'), ('b', 'x:=y')]
    local = write(tmp_path / 'local.launch.xml', '<launch/>')
    assert launch_cli.split_targets([str(local), 'a:=1'], resolver) == (str(local), [('a', '1')])
    with pytest.raises(LaunchError, match="file 'none.launch.xml' was not found"):
        launch_cli.split_targets(['demo', 'none.launch.xml'], resolver)
