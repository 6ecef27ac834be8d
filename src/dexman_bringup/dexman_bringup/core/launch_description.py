"""Interpret a ROS 2 XML launch file into a launch plan: the list of processes to start.

This is DexMan-ROS's own interpreter of the subset of the ROS 2 XML launch frontend
(``launch_xml`` + ``launch_ros``) that our launch files use, so the same files run under the real
``ros2 launch`` on a full ROS 2 install and under ``dexman_launch`` where only the PyPI wheels
exist. It is ROS-free: it never imports rclpy; package lookups go through an injectable
:class:`PackageResolver` whose default imports ``ament_index_python`` lazily.

The file is handled in two phases, as upstream does:

1. parse: the XML is read into actions; unknown elements, attributes or substitutions and
   substitution syntax errors are reported for the whole file, whatever the conditions;
2. execute: actions are visited in document order (depth first) against the launch
   configurations (``<arg>``, ``<let>``, ``name:=value`` from the command line), evaluating
   substitutions and ``if``/``unless`` exactly when upstream would, and each ``<node>`` and
   ``<executable>`` becomes a :class:`ProcessSpec`.

Supported subset (everything else is an error naming the file, line and element):

* ``<launch [deprecated]>``
* ``<arg name [default] [description]>`` with ``<choice value/>`` children
* ``<let name value>``
* ``<group [scoped] [forwarding]>`` with ``<keep name value/>`` children and any action
* ``<push_ros_namespace namespace>`` (also spelled ``<push-ros-namespace>``)
* ``<include file>`` with ``<arg name value/>`` children (arguments and ``<let>`` of the included
  file stay set afterwards, as upstream: wrap the include in a ``<group>`` to scope them)
* ``<node pkg exec [name] [namespace] [args] [ros_args] [exec_name] ...>`` with ``<param>``,
  ``<remap from to/>`` and ``<env name value/>`` children
* ``<executable cmd [name] ...>`` with ``<env name value/>`` children
* process attributes of both: ``cwd``, ``launch-prefix``, ``output``, ``respawn``,
  ``respawn_delay``, ``respawn_max_retries``, ``sigterm_timeout``, ``sigkill_timeout``,
  ``on_exit="shutdown"``
* ``if``/``unless`` on every action element (not on ``<param>``/``<remap>``/``<env>``/include
  ``<arg>``, which upstream rejects too)
* substitutions ``$(var name [default])``, ``$(env NAME [default])``,
  ``$(optenv NAME [default])``, ``$(dirname)``, ``$(filename)``, ``$(find-pkg-share pkg)``,
  ``$(find-pkg-prefix pkg)``, ``$(find-exec name)``, ``$(anon name)``, with upstream's quoting
  and ``\\`` escaping rules.

Where this differs from upstream it is stricter, never laxer: a ``<param from=...>`` file that
does not exist is an error (upstream warns and skips it), and a lone ``$`` must be escaped (as
upstream's grammar requires).

Inline ``<param name value>`` become ``-p name:=value`` rules (upstream writes each into a
temporary ``/**`` parameter file; rcl applies both kinds in command-line order, so the result is
the same) except for one corner: upstream keys the temporary file by the node's full name when
both its name and namespace are known, which then outranks ``/**`` entries of any
``--params-file``; a ``-p`` rule is a ``/**`` entry, so a parameter file keyed by that node's
full name wins over an inline ``<param>`` of the same parameter here whatever their order.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
import shlex
import shutil
import socket
import sys
import xml.parsers.expat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import yaml


class LaunchError(Exception):
    """A bad launch file, launch argument or package lookup; the message is one line."""


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------

OUTPUT_MODES = ('screen', 'log', 'both', 'own_log', 'full')


@dataclass(frozen=True)
class ProcessSpec:
    """One process to start, fully resolved.

    ``name`` is the label its output lines are prefixed with (``[name] line``), upstream style:
    the executable's basename (or ``exec_name``/``name`` of ``<executable>``) and a counter.
    ``env`` holds additions to the inherited environment. ``on_exit == 'shutdown'`` means the
    process's exit ends the launch (see :attr:`ends_launch`).
    """

    name: str
    argv: Tuple[str, ...]
    env: Tuple[Tuple[str, str], ...] = ()
    cwd: Optional[str] = None
    output: str = 'log'
    on_exit: Optional[str] = None
    respawn: bool = False
    respawn_delay: float = 0.0
    respawn_max_retries: int = -1
    sigterm_timeout: float = 5.0
    sigkill_timeout: float = 5.0
    package: Optional[str] = None
    node_name: Optional[str] = None
    node_namespace: Optional[str] = None
    source: str = ''

    @property
    def ends_launch(self) -> bool:
        """Whether this process exiting stops every other process and ends the launch."""
        return self.on_exit == 'shutdown'

    @property
    def env_dict(self) -> Dict[str, str]:
        """The environment additions as a dict."""
        return dict(self.env)


@dataclass(frozen=True)
class DeclaredArgument:
    """An ``<arg>`` declaration, for ``--show-args`` and error messages."""

    name: str
    default: Optional[str]
    description: Optional[str]
    choices: Optional[Tuple[str, ...]]
    file: str
    line: int
    conditional: bool = False

    def summary(self) -> str:
        """A short ``name (default 'x')`` / ``name (required)`` description."""
        if self.default is None:
            return f'{self.name} (required)'
        return f'{self.name} (default {self.default!r})'


@dataclass
class LaunchPlan:
    """The result of interpreting a launch file."""

    file: str
    processes: List[ProcessSpec] = field(default_factory=list)
    arguments: List[DeclaredArgument] = field(default_factory=list)
    configurations: Dict[str, str] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Package lookups (injectable)
# --------------------------------------------------------------------------------------------

def _ament_package_prefix(package: str) -> str:
    """``ament_index_python.get_package_prefix``, imported lazily; raises LaunchError."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_prefix
    except ImportError as exc:  # pragma: no cover - the venv always has it
        raise LaunchError(f"cannot look up package '{package}': ament_index_python is not "
                          f"importable ({exc}); run 'source env.sh'") from None
    try:
        return get_package_prefix(package)
    except (PackageNotFoundError, KeyError, LookupError, ValueError):
        raise LaunchError(f"package '{package}' not found in the ament index "
                          f"(AMENT_PREFIX_PATH); is the workspace built and 'env.sh' "
                          f"sourced?") from None


class PackageResolver:
    """Finds package prefixes, share directories and node executables as ``ros2 run`` does.

    ``get_prefix(package) -> prefix`` defaults to ament_index_python; tests pass a fake (a
    ``KeyError``/``LookupError`` from it means "package not found").
    """

    def __init__(self, get_prefix: Optional[Callable[[str], str]] = None) -> None:
        self._get_prefix = get_prefix or _ament_package_prefix

    def package_prefix(self, package: str) -> str:
        """The install prefix of ``package``."""
        try:
            return str(self._get_prefix(package))
        except LaunchError:
            raise
        except (KeyError, LookupError):
            raise LaunchError(f"package '{package}' not found") from None

    def package_share(self, package: str) -> str:
        """``<prefix>/share/<package>``, as ``get_package_share_directory``."""
        return os.path.join(self.package_prefix(package), 'share', package)

    def node_executable(self, package: str, executable: str) -> str:
        """``<prefix>/lib/<package>/<executable>``, which must be an executable file."""
        path = os.path.join(self.package_prefix(package), 'lib', package, executable)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise LaunchError(f"executable '{executable}' not found in package '{package}' "
                              f"(no executable file {path})")
        return path

    def find_file_in_share(self, package: str, file_name: str) -> str:
        """The one file called ``file_name`` below the package's share directory."""
        share = self.package_share(package)
        matches = []
        for dirpath, _dirs, files in os.walk(share):
            if file_name in files:
                matches.append(os.path.join(dirpath, file_name))
        if not matches:
            raise LaunchError(f"file '{file_name}' was not found in the share directory of "
                              f"package '{package}' ({share})")
        if len(matches) > 1:
            raise LaunchError(f"several files named '{file_name}' in the share directory of "
                              f"package '{package}': {', '.join(sorted(matches))}")
        return matches[0]


# --------------------------------------------------------------------------------------------
# Substitutions: syntax (upstream launch/frontend/grammar.lark) and evaluation
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Substitution:
    """A parsed ``$(name arg ...)``; each argument is itself a template."""

    name: str
    args: Tuple['Template', ...] = ()

    def __str__(self) -> str:
        return '$(' + ' '.join([self.name] + [template_source(a) for a in self.args]) + ')'


Part = Union[str, Substitution]
Template = Tuple[Part, ...]

# name -> (min args, max args)
SUPPORTED_SUBSTITUTIONS: Dict[str, Tuple[int, int]] = {
    'var': (1, 2), 'env': (1, 2), 'optenv': (1, 2), 'dirname': (0, 0), 'filename': (0, 0),
    'find-pkg-share': (1, 1), 'find-pkg-prefix': (1, 1), 'find-exec': (1, 1), 'anon': (1, 1),
}
_IDENT_RE = re.compile(r'[A-Za-z][A-Za-z0-9_-]*')


def template_source(template: Template) -> str:
    """Render a template back to (equivalent) source text, for messages."""
    return ''.join(p if isinstance(p, str) else str(p) for p in template)


class _TemplateParser:
    r"""Recursive-descent parser for upstream's substitution grammar.

    Top level: text with ``\X`` escapes (giving ``X``) and ``$(...)``; quotes are literal. Inside
    ``$(name a b)`` arguments are separated by exactly one space; an argument is either unquoted
    text (no space, quote or parenthesis unless escaped) mixed with substitutions, or a whole
    ``'...'``/``"..."`` template that may contain spaces and nested substitutions.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _error(self, msg: str) -> LaunchError:
        return LaunchError(f'invalid substitution syntax in {self.text!r} at character '
                           f'{self.pos + 1}: {msg}')

    def _peek(self, k: int = 0) -> str:
        i = self.pos + k
        return self.text[i] if i < len(self.text) else ''

    def parse(self) -> Template:
        return tuple(self._fragments(None))

    def _fragments(self, quote: Optional[str]) -> List[Part]:
        """Text and substitutions up to the end (top level) or the closing ``quote``."""
        parts: List[Part] = []
        buf: List[str] = []

        def flush() -> None:
            if buf:
                parts.append(''.join(buf))
                buf.clear()
        while True:
            c = self._peek()
            if c == '':
                if quote is not None:
                    raise self._error(f'missing closing {quote}')
                break
            if quote is not None and c == quote:
                self.pos += 1
                break
            if c == '\\':
                nxt = self._peek(1)
                buf.append(nxt or '\\')
                self.pos += 2 if nxt else 1
                continue
            if c == '$':
                if self._peek(1) != '(':
                    raise self._error("a '$' that does not start a substitution '$(...)' must "
                                      "be escaped as '\\$'")
                flush()
                parts.append(self._substitution(quote))
                continue
            buf.append(c)
            self.pos += 1
        flush()
        return parts

    def _substitution(self, quote: Optional[str]) -> Substitution:
        self.pos += 2
        m = _IDENT_RE.match(self.text, self.pos)
        if not m:
            raise self._error("expected a substitution name after '$('")
        name = m.group()
        self.pos = m.end()
        if self._peek() == ')':
            self.pos += 1
            return Substitution(name, ())
        if self._peek() != ' ':
            raise self._error(f"expected ' ' or ')' after '$({name}'")
        args: List[Template] = []
        while True:
            self.pos += 1  # the separating space
            args.append(self._argument(quote))
            c = self._peek()
            if c == ')':
                self.pos += 1
                return Substitution(name, tuple(args))
            if c == '':
                raise self._error(f"unterminated substitution '$({name} ...'")
            if c != ' ':
                raise self._error(f"unexpected {c!r} in the arguments of '$({name} ...)'")

    def _argument(self, quote: Optional[str]) -> Template:
        c = self._peek()
        if quote is None and c in ('"', "'"):
            self.pos += 1
            return tuple(self._fragments(c))
        stop = {' ', '(', ')'} | ({'"', "'"} if quote is None else {quote})
        parts: List[Part] = []
        buf: List[str] = []
        while True:
            c = self._peek()
            if c == '' or c in stop:
                break
            if c == '\\' and self._peek(1):
                buf.append(self._peek(1))
                self.pos += 2
                continue
            if c == '$':
                if self._peek(1) != '(':
                    raise self._error("a '$' that does not start a substitution must be "
                                      "escaped as '\\$'")
                if buf:
                    parts.append(''.join(buf))
                    buf.clear()
                parts.append(self._substitution(quote))
                continue
            buf.append(c)
            self.pos += 1
        if buf:
            parts.append(''.join(buf))
        if not parts:
            raise self._error('empty substitution argument (arguments are separated by '
                              'exactly one space; quote an argument that contains spaces)')
        return tuple(parts)


def _check_substitutions(template: Template) -> None:
    """Reject unknown substitutions and wrong argument counts (upstream does so at parse)."""
    for part in template:
        if isinstance(part, Substitution):
            if part.name not in SUPPORTED_SUBSTITUTIONS:
                raise LaunchError(f"unsupported substitution '$({part.name} ...)' (dexman_launch "
                                  f"supports: {', '.join(sorted(SUPPORTED_SUBSTITUTIONS))})")
            lo, hi = SUPPORTED_SUBSTITUTIONS[part.name]
            if not lo <= len(part.args) <= hi:
                want = str(lo) if lo == hi else f'{lo} or {hi}'
                raise LaunchError(f"substitution '{part}' expects {want} argument(s), got "
                                  f"{len(part.args)}")
            for arg in part.args:
                _check_substitutions(arg)


def parse_template(text: str) -> Template:
    """Parse attribute text into a template of literal strings and :class:`Substitution`."""
    if text == '':
        return ('',)
    template = _TemplateParser(text).parse()
    _check_substitutions(template)
    return template


def _escape_only(text: str) -> str:
    r"""Upstream's ``escape_characters``: ``\X`` -> ``X``, no substitutions (arg names)."""
    return re.sub(r'\\(.)', r'\1', text)


@dataclass
class _Shared:
    """State shared by the whole launch (all files, all scopes)."""

    resolver: PackageResolver
    environ: Mapping[str, str]
    plan: LaunchPlan
    anon: Dict[str, str] = field(default_factory=dict)
    process_counter: int = 0
    include_stack: List[Tuple[str, int]] = field(default_factory=list)
    parsed_files: Dict[str, '_ParsedFile'] = field(default_factory=dict)


@dataclass
class _Context:
    """Launch configurations in scope, the file being executed, and the shared state."""

    configs: Dict[str, str]
    file: Path
    shared: _Shared

    def perform(self, template: Template) -> str:
        """Evaluate a template to a string."""
        return ''.join(p if isinstance(p, str) else self._substitute(p) for p in template)

    def _substitute(self, sub: Substitution) -> str:
        args = sub.args
        name = sub.name
        if name == 'var':
            key = self.perform(args[0])
            if key in self.configs:
                return self.configs[key]
            if len(args) == 2:
                return self.perform(args[1])
            known = ', '.join(sorted(self.configs)) or 'none'
            raise LaunchError(f"launch configuration '{key}' does not exist (in '{sub}'; set "
                              f"so far: {known})")
        if name in ('env', 'optenv'):
            key = self.perform(args[0])
            if key in self.shared.environ:
                return self.shared.environ[key]
            if len(args) == 2:
                return self.perform(args[1])
            if name == 'optenv':
                return ''
            raise LaunchError(f"environment variable '{key}' does not exist (in '{sub}'; use "
                              f"$(env {key} DEFAULT) or $(optenv {key}))")
        if name == 'dirname':
            return str(self.file.parent)
        if name == 'filename':
            return str(self.file)
        if name == 'find-pkg-share':
            return self.shared.resolver.package_share(self.perform(args[0]))
        if name == 'find-pkg-prefix':
            return self.shared.resolver.package_prefix(self.perform(args[0]))
        if name == 'find-exec':
            exe = self.perform(args[0])
            path = shutil.which(exe, path=self.shared.environ.get('PATH'))
            if path is None:
                raise LaunchError(f"executable '{exe}' not found on PATH (in '{sub}')")
            return path
        if name == 'anon':
            base = self.perform(args[0])
            if base not in self.shared.anon:
                raw = (f'{base}_{socket.gethostname()}_{os.getpid()}_'
                       f'{random.randint(0, sys.maxsize)}')
                self.shared.anon[base] = re.sub(r'[.\-:]', '_', raw)
            return self.shared.anon[base]
        raise LaunchError(f"unsupported substitution '{sub}'")  # pragma: no cover - checked

    def child(self, *, scoped: bool) -> '_Context':
        """A context for a group: own copy of the configurations when scoped."""
        return _Context(dict(self.configs) if scoped else self.configs, self.file, self.shared)


# --------------------------------------------------------------------------------------------
# Typed values (upstream launch.utilities.type_utils / launch_ros evaluate_parameters)
# --------------------------------------------------------------------------------------------

def condition_value(text: str) -> bool:
    """Upstream ``evaluate_condition_expression``: true/1 or false/0, stripped, any case."""
    value = text.strip().lower()
    if value in ('true', '1'):
        return True
    if value in ('false', '0'):
        return False
    raise LaunchError(f"invalid condition value {text!r}: expected true/false/1/0 "
                      f"(case-insensitive)")


def _yaml_bool(text: str, what: str) -> bool:
    """A bool by YAML rules (upstream ``coerce_to_type(value, bool)``)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, bool):
        raise LaunchError(f'{what}: expected a boolean (true/false), got {text!r}')
    return value


_PARAM_TYPES = ('str', 'int', 'float', 'bool')
_QUOTE_WORDS = {'y', 'n', 'yes', 'no', 'true', 'false', 'on', 'off', 'null', 'inf', 'nan',
                'infinity', '~'}
_PLAIN_STR_RE = re.compile(r'[A-Za-z_/][A-Za-z0-9_./-]*')

ParamValue = Union[bool, int, float, str, Tuple[Union[bool, int, float, str], ...]]


def evaluate_parameter_value(text: str, type_name: Optional[str], param: str) -> ParamValue:
    """Type a ``<param value>`` as launch_ros does: by YAML rules, or by ``type``."""
    if type_name == 'str':
        return text
    if type_name in ('int', 'float'):
        try:
            return int(text) if type_name == 'int' else float(text)
        except ValueError:
            raise LaunchError(f"parameter '{param}': value {text!r} is not of type "
                              f"{type_name}") from None
    if type_name == 'bool':
        return _yaml_bool(text, f"parameter '{param}'")
    try:
        value = yaml.safe_load(text if text != '' else "''")
    except yaml.YAMLError:
        return text  # not YAML: kept as a string
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        if not value or not isinstance(value[0], (bool, int, float, str)) or \
                not all(isinstance(x, type(value[0])) for x in value):
            raise LaunchError(f"parameter '{param}': a list value must be non-empty with items "
                              f"of one type (bool, int, float or str), got {text!r}")
        return tuple(value)
    raise LaunchError(f"parameter '{param}': value {text!r} is not a bool, int, float, str or "
                      f"uniform list (add type=\"str\" to keep it as a string)")


def yaml_value(value: ParamValue) -> str:
    """Render a typed parameter value as a YAML flow value that rcl reads back identically."""
    if isinstance(value, tuple):
        return '[' + ', '.join(yaml_value(v) for v in value) + ']'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return '.nan'
        if math.isinf(value):
            return '.inf' if value > 0 else '-.inf'
        return repr(value)
    if _PLAIN_STR_RE.fullmatch(value) and value.lower() not in _QUOTE_WORDS \
            and yaml.safe_load(value) == value:
        return value
    return json.dumps(value)


# --------------------------------------------------------------------------------------------
# XML reading with line numbers
# --------------------------------------------------------------------------------------------

@dataclass
class _XmlElement:
    tag: str
    attrs: Dict[str, str]
    line: int
    children: List['_XmlElement'] = field(default_factory=list)
    text: str = ''


def _read_xml(path: Path) -> _XmlElement:
    parser = xml.parsers.expat.ParserCreate()
    stack: List[_XmlElement] = []
    roots: List[_XmlElement] = []

    def start(tag: str, attrs: Dict[str, str]) -> None:
        el = _XmlElement(tag, dict(attrs), parser.CurrentLineNumber)
        (stack[-1].children if stack else roots).append(el)
        stack.append(el)

    def end(_tag: str) -> None:
        stack.pop()

    def chars(data: str) -> None:
        if stack:
            stack[-1].text += data

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    try:
        with open(path, 'rb') as f:
            parser.ParseFile(f)
    except OSError as exc:
        raise LaunchError(f'cannot read launch file {path}: {exc.strerror or exc}') from None
    except xml.parsers.expat.ExpatError as exc:
        raise LaunchError(f'{path}:{exc.lineno}: malformed XML: '
                          f'{xml.parsers.expat.ErrorString(exc.code)}') from None
    return roots[0]


class _Reader:
    """Reads one element's attributes and children, reporting anything left unread."""

    # attributes valid upstream that dexman_launch does not implement
    KNOWN_UNSUPPORTED = {'shell', 'emulate_tty', 'node-name', 'allow_substs', 'value-sep',
                         'output_format', 'cached_output', 'log_cmd'}

    def __init__(self, el: _XmlElement, file: Path) -> None:
        self.el = el
        self.file = file
        self.used: set = set()

    @property
    def where(self) -> str:
        return f'{self.file}:{self.el.line}: <{self.el.tag}>'

    def error(self, msg: str) -> LaunchError:
        return LaunchError(f'{self.where}: {msg}')

    def raw(self, name: str, required: bool = False) -> Optional[str]:
        self.used.add(name)
        value = self.el.attrs.get(name)
        if value is None and required:
            raise self.error(f"missing required attribute '{name}'")
        return value

    def template(self, name: str, required: bool = False) -> Optional[Template]:
        value = self.raw(name, required)
        if value is None:
            return None
        try:
            return parse_template(value)
        except LaunchError as exc:
            raise self.error(f"attribute '{name}': {exc}") from None

    def literal_bool(self, name: str) -> Optional[bool]:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return _yaml_bool(value, f"attribute '{name}'")
        except LaunchError as exc:
            raise self.error(str(exc)) from None

    def literal_number(self, name: str, kind: type) -> Optional[float]:
        value = self.raw(name)
        if value is None:
            return None
        try:
            number = kind(value)
        except ValueError:
            raise self.error(f"attribute '{name}' must be a literal {kind.__name__}, got "
                             f"{value!r}") from None
        if kind is float and number < 0:
            raise self.error(f"attribute '{name}' must be non-negative, got {value!r}")
        return number

    def condition(self) -> Optional[Tuple[bool, Template]]:
        if_t, unless_t = self.template('if'), self.template('unless')
        if if_t is not None and unless_t is not None:
            raise self.error("'if' and 'unless' can't be used simultaneously")
        if if_t is not None:
            return (True, if_t)
        if unless_t is not None:
            return (False, unless_t)
        return None

    def children(self, allowed: Optional[Iterable[str]]) -> List[_XmlElement]:
        """The child elements; each must be one of ``allowed`` (``None``: actions, checked
        by the caller)."""
        if allowed is None:
            return list(self.el.children)
        allowed = tuple(allowed)
        for child in self.el.children:
            if child.tag not in allowed:
                if allowed:
                    raise LaunchError(f'{self.file}:{child.line}: <{child.tag}> is not allowed '
                                      f'inside <{self.el.tag}> (allowed: '
                                      f'{", ".join(f"<{a}>" for a in allowed)})')
                raise LaunchError(f'{self.file}:{child.line}: <{child.tag}> is not allowed '
                                  f'inside <{self.el.tag}> (it takes no children)')
        return list(self.el.children)

    def finish(self) -> None:
        if self.el.text.strip():
            raise self.error(f'unexpected text {self.el.text.strip()!r}')
        unknown = [a for a in self.el.attrs if a not in self.used]
        if unknown:
            name = unknown[0]
            if name in self.KNOWN_UNSUPPORTED:
                raise self.error(f"attribute '{name}' is valid in ROS 2 launch but not "
                                 f"supported by dexman_launch")
            raise self.error(f"unknown attribute '{name}' (supported: "
                             f"{', '.join(sorted(self.used))})")


# --------------------------------------------------------------------------------------------
# Parsed actions
# --------------------------------------------------------------------------------------------

Condition = Optional[Tuple[bool, Template]]


@dataclass
class _Action:
    line: int
    condition: Condition


@dataclass
class _Arg(_Action):
    name: str
    default: Optional[Template]
    default_source: Optional[str]
    description: Optional[str]
    choices: Optional[Tuple[str, ...]]


@dataclass
class _Let(_Action):
    name: Template
    value: Template


@dataclass
class _Group(_Action):
    scoped: bool
    forwarding: bool
    keeps: List[Tuple[Template, Template]]
    actions: List[_Action]


@dataclass
class _PushNamespace(_Action):
    namespace: Template


@dataclass
class _Include(_Action):
    file: Template
    args: List[Tuple[Template, Template]]


@dataclass
class _ProcessOptions:
    cwd: Optional[Template] = None
    launch_prefix: Optional[Template] = None
    output: Optional[Template] = None
    respawn: Optional[Template] = None
    respawn_delay: Optional[float] = None
    respawn_max_retries: Optional[int] = None
    sigterm_timeout: Optional[float] = None
    sigkill_timeout: Optional[float] = None
    on_exit: Optional[str] = None
    env: List[Tuple[Template, Template]] = field(default_factory=list)


@dataclass
class _ParamFile:
    path: Template
    line: int


@dataclass
class _InlineParam:
    name: Template
    value: Optional[Template]
    type_name: Optional[str]
    nested: List['_InlineParam']
    line: int


@dataclass
class _Node(_Action):
    package: Optional[Template]
    executable: Template
    name: Optional[Template]
    namespace: Optional[Template]
    exec_name: Optional[Template]
    arguments: List[Template]
    ros_arguments: Optional[List[Template]]
    params: List[Union[_ParamFile, _InlineParam]]
    remaps: List[Tuple[Template, Template]]
    options: _ProcessOptions


@dataclass
class _Executable(_Action):
    cmd: List[Template]
    name: Optional[Template]
    options: _ProcessOptions


@dataclass
class _ParsedFile:
    path: Path
    actions: List[_Action]
    deprecated: Optional[str]


def _split_cmdline(template: Template) -> List[Template]:
    """Split a command line into arguments as upstream ``ExecuteProcess._parse_cmdline``.

    Literal text is split with shlex; a substitution is never split and sticks to the text
    touching it (``$(find-pkg-prefix x)/bin/y --flag`` gives two arguments).
    """
    result: List[Template] = []
    arg: List[Part] = []

    def append_arg() -> None:
        nonlocal arg
        result.append(tuple(arg))
        arg = []
    for part in template:
        if isinstance(part, Substitution):
            arg.append(part)
            continue
        if part == '':
            continue
        tokens = shlex.split(part)
        if not tokens:
            append_arg()
            continue
        if part[0].isspace() and arg:
            append_arg()
        arg.append(tokens[0])
        if len(tokens) > 1:
            append_arg()
            arg.append(tokens[-1])
        if len(tokens) > 2:
            result.extend((t,) for t in tokens[1:-1])
        if part[-1].isspace():
            append_arg()
    if arg:
        result.append(tuple(arg))
    return [a for a in result if a]


class _FileParser:
    """Phase 1: XML elements -> actions, validating everything."""

    ACTION_TAGS = ('arg', 'let', 'group', 'push_ros_namespace', 'push-ros-namespace', 'include',
                   'node', 'executable')

    def __init__(self, path: Path) -> None:
        self.path = path

    def parse(self) -> _ParsedFile:
        root = _read_xml(self.path)
        if root.tag != 'launch':
            raise LaunchError(f"{self.path}:{root.line}: expected <launch> as the root element, "
                              f"got <{root.tag}>")
        r = _Reader(root, self.path)
        deprecated = r.raw('deprecated')
        children = r.children(None)
        r.finish()
        return _ParsedFile(self.path, [self.action(c) for c in children], deprecated)

    def action(self, el: _XmlElement) -> _Action:
        if el.tag in _UNSUPPORTED_ELEMENTS:
            raise LaunchError(f'{self.path}:{el.line}: <{el.tag}> is valid in ROS 2 launch but '
                              f'not supported by dexman_launch (supported: '
                              f'{", ".join(f"<{t}>" for t in self.ACTION_TAGS)})')
        handler = {
            'arg': self._arg, 'let': self._let, 'group': self._group,
            'push_ros_namespace': self._push_ns, 'push-ros-namespace': self._push_ns,
            'include': self._include, 'node': self._node, 'executable': self._executable,
        }.get(el.tag)
        if handler is None:
            raise LaunchError(f'{self.path}:{el.line}: unknown element <{el.tag}> (supported: '
                              f'{", ".join(f"<{t}>" for t in self.ACTION_TAGS)})')
        r = _Reader(el, self.path)
        action = handler(r)
        r.finish()
        return action

    def _arg(self, r: _Reader) -> _Arg:
        cond = r.condition()
        name = _escape_only(r.raw('name', required=True))
        default_source = r.raw('default')
        default = r.template('default')
        description = r.raw('description')
        choices = None
        choice_els = r.children(('choice',))
        if choice_els:
            choices = []
            for c in choice_els:
                cr = _Reader(c, self.path)
                choices.append(_escape_only(cr.raw('value', required=True)))
                cr.children(())
                cr.finish()
            choices = tuple(choices)
        return _Arg(r.el.line, cond, name, default, default_source,
                    None if description is None else _escape_only(description), choices)

    def _let(self, r: _Reader) -> _Let:
        cond = r.condition()
        r.children(())
        return _Let(r.el.line, cond, r.template('name', required=True),
                    r.template('value', required=True))

    def _name_values(self, els: List[_XmlElement], value_attr: str = 'value'
                     ) -> List[Tuple[Template, Template]]:
        out = []
        for el in els:
            r = _Reader(el, self.path)
            out.append((r.template('name', required=True), r.template(value_attr, required=True)))
            r.children(())
            r.finish()
        return out

    def _group(self, r: _Reader) -> _Group:
        cond = r.condition()
        scoped = r.literal_bool('scoped')
        forwarding = r.literal_bool('forwarding')
        children = r.children(None)
        keeps = self._name_values([c for c in children if c.tag == 'keep'])
        actions = [self.action(c) for c in children if c.tag != 'keep']
        return _Group(r.el.line, cond, True if scoped is None else scoped,
                      True if forwarding is None else forwarding, keeps, actions)

    def _push_ns(self, r: _Reader) -> _PushNamespace:
        cond = r.condition()
        ns = r.template('namespace', required=True)
        r.children(())
        return _PushNamespace(r.el.line, cond, ns)

    def _include(self, r: _Reader) -> _Include:
        cond = r.condition()
        file = r.template('file', required=True)
        args = self._name_values(r.children(('arg',)))
        return _Include(r.el.line, cond, file, args)

    def _process_options(self, r: _Reader, env_els: List[_XmlElement]) -> _ProcessOptions:
        on_exit = r.raw('on_exit')
        if on_exit is not None and on_exit != 'shutdown':
            raise r.error(f"attribute 'on_exit' must be 'shutdown' (the only value the XML "
                          f"frontend supports), got {on_exit!r}")
        max_retries = r.raw('respawn_max_retries')
        if max_retries is not None:
            try:
                max_retries_int = int(max_retries)
            except ValueError:
                raise r.error(f"attribute 'respawn_max_retries' must be a literal int, got "
                              f"{max_retries!r}") from None
        return _ProcessOptions(
            cwd=r.template('cwd'), launch_prefix=r.template('launch-prefix'),
            output=r.template('output'), respawn=r.template('respawn'),
            respawn_delay=r.literal_number('respawn_delay', float),
            respawn_max_retries=None if max_retries is None else max_retries_int,
            sigterm_timeout=r.literal_number('sigterm_timeout', float),
            sigkill_timeout=r.literal_number('sigkill_timeout', float),
            on_exit=on_exit, env=self._name_values(env_els))

    def _cmdline(self, r: _Reader, name: str, required: bool = False) -> Optional[List[Template]]:
        template = r.template(name, required)
        if template is None:
            return None
        try:
            return _split_cmdline(template)
        except ValueError as exc:
            raise r.error(f"attribute '{name}': cannot split into arguments: {exc}") from None

    def _node(self, r: _Reader) -> _Node:
        cond = r.condition()
        children = r.children(('param', 'remap', 'env'))
        params = [self._param(c) for c in children if c.tag == 'param']
        remaps = []
        for c in children:
            if c.tag == 'remap':
                cr = _Reader(c, self.path)
                remaps.append((cr.template('from', required=True),
                               cr.template('to', required=True)))
                cr.children(())
                cr.finish()
        options = self._process_options(r, [c for c in children if c.tag == 'env'])
        return _Node(r.el.line, cond, package=r.template('pkg'),
                     executable=r.template('exec', required=True), name=r.template('name'),
                     namespace=r.template('namespace'), exec_name=r.template('exec_name'),
                     arguments=self._cmdline(r, 'args') or [],
                     ros_arguments=self._cmdline(r, 'ros_args'),
                     params=params, remaps=remaps, options=options)

    def _param(self, el: _XmlElement) -> Union[_ParamFile, _InlineParam]:
        r = _Reader(el, self.path)
        from_attr = r.template('from')
        if from_attr is not None:
            if 'name' in el.attrs:
                raise r.error("'name' and 'from' are mutually exclusive")
            r.children(())
            r.finish()
            return _ParamFile(from_attr, el.line)
        if 'name' not in el.attrs:
            raise r.error("a <param> needs a 'name' (with 'value' or nested <param>) or a 'from' "
                          "parameter file")
        return self._inline_param(el)

    def _inline_param(self, el: _XmlElement) -> _InlineParam:
        r = _Reader(el, self.path)
        name = r.template('name', required=True)
        type_name = r.raw('type')
        if type_name is not None and type_name not in _PARAM_TYPES:
            raise r.error(f"unsupported parameter type {type_name!r} (dexman_launch supports: "
                          f"{', '.join(_PARAM_TYPES)})")
        value = r.template('value')
        nested_els = r.children(('param',))
        if value is not None and nested_els:
            raise r.error('nested parameters and a value attribute are mutually exclusive')
        if type_name is not None and nested_els:
            raise r.error('nested parameters and a type attribute are mutually exclusive')
        if value is None and not nested_els:
            raise r.error("either a 'value' attribute or nested <param> elements are needed")
        nested = [self._inline_param(c) for c in nested_els]
        r.finish()
        return _InlineParam(name, value, type_name, nested, el.line)

    def _executable(self, r: _Reader) -> _Executable:
        cond = r.condition()
        children = r.children(('env',))
        cmd = self._cmdline(r, 'cmd', required=True)
        if not cmd:
            raise r.error("attribute 'cmd' is empty")
        options = self._process_options(r, children)
        return _Executable(r.el.line, cond, cmd, r.template('name'), options)


# upstream elements we do not implement: named so the error says "not supported" not "unknown"
_UNSUPPORTED_ELEMENTS = (
    'set_env', 'unset_env', 'append_env', 'set_parameter', 'set_parameters_from_file',
    'set_remap', 'set_use_sim_time', 'set_ros_log_dir', 'timer', 'ros_timer', 'log', 'for',
    'composable_node_container', 'node_container', 'load_composable_node', 'lifecycle_node',
    'include_scoped', 'shutdown', 'set-env', 'unset-env', 'set-parameter', 'set-remap')


# --------------------------------------------------------------------------------------------
# Names (rmw rules, as rclpy.validate_namespace / validate_node_name)
# --------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')


def prefix_namespace(base_ns: Optional[str], ns: Optional[str]) -> Optional[str]:
    """launch_ros ``prefix_namespace``: ``ns`` under ``base_ns`` unless absolute."""
    if base_ns is None and ns is None:
        return None
    if ns is None:
        combined = base_ns
    elif not base_ns or ns.startswith('/'):
        combined = ns
    else:
        combined = ('' if base_ns == '/' else base_ns) + '/' + ns
    assert combined is not None
    return combined if combined == '/' else combined.rstrip('/')


def make_namespace_absolute(ns: Optional[str]) -> Optional[str]:
    """launch_ros ``make_namespace_absolute``."""
    if ns is None:
        return None
    return ns if ns.startswith('/') else '/' + ns


def validate_namespace(ns: str) -> None:
    """Raise LaunchError unless ``ns`` is a valid absolute ROS namespace."""
    if ns == '/':
        return
    if not ns.startswith('/') or ns.endswith('/') or \
            not all(_TOKEN_RE.fullmatch(t) for t in ns[1:].split('/')):
        raise LaunchError(f"invalid namespace {ns!r}: it must be '/' or '/'-separated tokens of "
                          f"letters, digits and underscores, not starting with a digit")


def validate_node_name(name: str) -> None:
    """Raise LaunchError unless ``name`` is a valid ROS node name."""
    if not _TOKEN_RE.fullmatch(name):
        raise LaunchError(f"invalid node name {name!r}: use letters, digits and underscores, "
                          f"not starting with a digit")


# --------------------------------------------------------------------------------------------
# Phase 2: execution
# --------------------------------------------------------------------------------------------

class _Executor:
    def __init__(self, shared: _Shared) -> None:
        self.shared = shared

    # files -------------------------------------------------------------------------------
    def parsed(self, path: Path) -> _ParsedFile:
        key = str(path)
        if key not in self.shared.parsed_files:
            self.shared.parsed_files[key] = parse_launch_file(path)
        return self.shared.parsed_files[key]

    def run_file(self, path: Path, configs: Dict[str, str]) -> None:
        parsed = self.parsed(path)
        if parsed.deprecated is not None:
            self.shared.plan.warnings.append(f'{path} is deprecated: {parsed.deprecated}')
        ctx = _Context(configs, path, self.shared)
        self.run_actions(parsed.actions, ctx)

    def run_actions(self, actions: Sequence[_Action], ctx: _Context) -> None:
        for action in actions:
            if action.condition is not None:
                is_if, expr = action.condition
                try:
                    value = condition_value(ctx.perform(expr))
                except LaunchError as exc:
                    raise self._error(ctx, action, f"'{'if' if is_if else 'unless'}': {exc}")
                if value != is_if:
                    continue
            try:
                getattr(self, '_do_' + type(action).__name__.lstrip('_').lower())(action, ctx)
            except LaunchError as exc:
                msg = str(exc)
                if msg.startswith(f'{ctx.file}:'):
                    raise
                raise self._error(ctx, action, msg) from None

    def _error(self, ctx: _Context, action: _Action, msg: str) -> LaunchError:
        tag = {'_Arg': 'arg', '_Let': 'let', '_Group': 'group', '_PushNamespace':
               'push_ros_namespace', '_Include': 'include', '_Node': 'node',
               '_Executable': 'executable'}[type(action).__name__]
        return LaunchError(f'{ctx.file}:{action.line}: <{tag}>: {msg}')

    # actions ------------------------------------------------------------------------------
    def _do_arg(self, a: _Arg, ctx: _Context) -> None:
        self.shared.plan.arguments.append(DeclaredArgument(
            a.name, a.default_source, a.description, a.choices, str(ctx.file), a.line,
            a.condition is not None))
        if a.name not in ctx.configs:
            if a.default is None:
                raise LaunchError(self._missing_arg_message(a, ctx))
            ctx.configs[a.name] = ctx.perform(a.default)
        if a.choices is not None and ctx.configs[a.name] not in a.choices:
            raise LaunchError(f"argument '{a.name}' has value {ctx.configs[a.name]!r}, which is "
                              f"not one of the valid choices {list(a.choices)}")

    def _missing_arg_message(self, a: _Arg, ctx: _Context) -> str:
        declared = describe_file_arguments(self.parsed(ctx.file))
        listing = ', '.join(d.summary() for d in declared)
        desc = f' ({a.description})' if a.description else ''
        if self.shared.include_stack:
            parent, line = self.shared.include_stack[-1]
            how = (f"add <arg name=\"{a.name}\" value=\"...\"/> to the <include> at "
                   f"{parent}:{line}")
        else:
            how = f"pass it as '{a.name}:=<value>'"
        return (f"{ctx.file}:{a.line}: missing required launch argument '{a.name}'{desc}: "
                f"{how}. Arguments of {ctx.file.name}: {listing}")

    def _do_let(self, a: _Let, ctx: _Context) -> None:
        ctx.configs[ctx.perform(a.name)] = ctx.perform(a.value)

    def _do_group(self, a: _Group, ctx: _Context) -> None:
        if not a.scoped:
            for k, v in a.keeps:
                ctx.configs[ctx.perform(k)] = ctx.perform(v)
            self.run_actions(a.actions, ctx)
            return
        inner = ctx.child(scoped=True)
        if a.forwarding:
            for k, v in a.keeps:
                inner.configs[inner.perform(k)] = inner.perform(v)
        else:
            kept = {ctx.perform(k): ctx.perform(v) for k, v in a.keeps}
            inner.configs.clear()
            inner.configs.update(kept)
        self.run_actions(a.actions, inner)

    def _do_pushnamespace(self, a: _PushNamespace, ctx: _Context) -> None:
        pushed = ctx.perform(a.namespace)
        previous = ctx.configs.get('ros_namespace')
        ns = make_namespace_absolute(prefix_namespace(previous, pushed))
        assert ns is not None
        try:
            validate_namespace(ns)
        except LaunchError as exc:
            raise LaunchError(f'the resulting namespace is invalid (previous {previous!r}, '
                              f'pushed {pushed!r}): {exc}') from None
        ctx.configs['ros_namespace'] = ns

    def _do_include(self, a: _Include, ctx: _Context) -> None:
        target = ctx.perform(a.file)
        path = Path(os.path.abspath(target))
        if path.suffix == '.py' or path.name.endswith(('.yaml', '.yml')):
            raise LaunchError(f"cannot include {target!r}: dexman_launch runs XML launch files "
                              f"only")
        if not path.is_file():
            raise LaunchError(f"included file {target!r} not found (relative paths resolve "
                              f"against the current directory, as in ros2 launch; use "
                              f"$(dirname)/... or $(find-pkg-share pkg)/...)")
        if len(self.shared.include_stack) > 40 or \
                any(f == str(path) for f, _ in self.shared.include_stack):
            raise LaunchError(f'recursive include of {path}')
        for name, value in a.args:  # set in the current scope, in order, as upstream
            ctx.configs[ctx.perform(name)] = ctx.perform(value)
        self.shared.include_stack.append((str(ctx.file), a.line))
        try:
            self.run_file(path, ctx.configs)
        finally:
            self.shared.include_stack.pop()

    def _process_common(self, o: _ProcessOptions, ctx: _Context) -> Dict[str, object]:
        output = ctx.perform(o.output) if o.output is not None else 'log'
        output = self.shared.environ.get('OVERRIDE_LAUNCH_PROCESS_OUTPUT', output)
        if output not in OUTPUT_MODES:
            raise LaunchError(f"output {output!r} is not one of {', '.join(OUTPUT_MODES)}")
        respawn = False
        if o.respawn is not None:
            respawn = _yaml_bool(ctx.perform(o.respawn), "attribute 'respawn'")
        timeouts = {}
        for key, value in (('sigterm_timeout', o.sigterm_timeout),
                           ('sigkill_timeout', o.sigkill_timeout)):
            if value is None:
                text = ctx.configs.get(key, '5')
                try:
                    value = float(text)
                except ValueError:
                    raise LaunchError(f"launch configuration '{key}' must be a number of "
                                      f"seconds, got {text!r}") from None
            timeouts[key] = value
        if 'launch-prefix-filter' in ctx.configs:
            raise LaunchError("the 'launch-prefix-filter' launch configuration is not supported "
                              "by dexman_launch")
        prefix_text = ctx.perform(o.launch_prefix) if o.launch_prefix is not None else \
            ctx.configs.get('launch-prefix', '')
        try:
            prefix = shlex.split(prefix_text)
        except ValueError as exc:
            raise LaunchError(f'launch prefix {prefix_text!r}: {exc}') from None
        env = tuple((ctx.perform(k), ctx.perform(v)) for k, v in o.env)
        return dict(
            prefix=prefix, env=env, cwd=ctx.perform(o.cwd) if o.cwd is not None else None,
            output=output, on_exit=o.on_exit, respawn=respawn,
            respawn_delay=o.respawn_delay or 0.0,
            respawn_max_retries=-1 if o.respawn_max_retries is None else o.respawn_max_retries,
            **timeouts)

    def _label(self, base: str) -> str:
        self.shared.process_counter += 1
        return f'{base}-{self.shared.process_counter}'

    def _add_process(self, argv: List[str], label_base: str, common: Dict[str, object],
                     ctx: _Context, line: int, **extra: object) -> None:
        prefix = common.pop('prefix')
        spec = ProcessSpec(name=self._label(label_base), argv=tuple(list(prefix) + argv),
                           source=f'{ctx.file}:{line}', **common, **extra)  # type: ignore[arg-type]
        self.shared.plan.processes.append(spec)

    def _do_executable(self, a: _Executable, ctx: _Context) -> None:
        argv = [ctx.perform(t) for t in a.cmd]
        common = self._process_common(a.options, ctx)
        label = ctx.perform(a.name) if a.name is not None else os.path.basename(argv[0])
        self._add_process(argv, label, common, ctx, a.line)

    def _do_node(self, a: _Node, ctx: _Context) -> None:
        exe = ctx.perform(a.executable)
        package = ctx.perform(a.package) if a.package is not None else None
        exe_path = self.shared.resolver.node_executable(package, exe) if package else exe
        argv = [exe_path] + [ctx.perform(t) for t in a.arguments]
        if a.ros_arguments is not None:
            argv += ['--ros-args'] + [ctx.perform(t) for t in a.ros_arguments]
        argv.append('--ros-args')
        node_name = None
        if a.name is not None:
            node_name = ctx.perform(a.name)
            validate_node_name(node_name)
            argv += ['-r', f'__node:={node_name}']
        ns_attr = ctx.perform(a.namespace) if a.namespace is not None else None
        namespace = make_namespace_absolute(
            prefix_namespace(ctx.configs.get('ros_namespace'), ns_attr))
        if namespace is not None:
            validate_namespace(namespace)
            argv += ['-r', f'__ns:={namespace}']
        for param in a.params:
            if isinstance(param, _ParamFile):
                path = ctx.perform(param.path)
                if not os.path.isfile(path):
                    raise LaunchError(f"parameter file {path!r} not found (<param from> at "
                                      f"line {param.line})")
                argv += ['--params-file', path]
            else:
                for name, value in self._inline_params(param, ctx, ''):
                    argv += ['-p', f'{name}:={value}']
        for src, dst in a.remaps:
            argv += ['-r', f'{ctx.perform(src)}:={ctx.perform(dst)}']
        common = self._process_common(a.options, ctx)
        label = ctx.perform(a.exec_name) if a.exec_name is not None else os.path.basename(exe)
        self._add_process(argv, label, common, ctx, a.line, package=package,
                          node_name=node_name, node_namespace=namespace)

    def _inline_params(self, p: _InlineParam, ctx: _Context, prefix: str
                       ) -> List[Tuple[str, str]]:
        name = prefix + ctx.perform(p.name)
        if p.value is None:
            out: List[Tuple[str, str]] = []
            for child in p.nested:
                out += self._inline_params(child, ctx, name + '.')
            return out
        value = evaluate_parameter_value(ctx.perform(p.value), p.type_name, name)
        return [(name, yaml_value(value))]


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------

def parse_launch_file(path: Union[str, Path]) -> _ParsedFile:
    """Phase 1 only: read and validate a launch file (no substitution is evaluated)."""
    path = Path(os.path.abspath(path))
    if path.suffix == '.py':
        raise LaunchError(f'{path}: Python launch files are not supported by dexman_launch; '
                          f'use an XML launch file')
    if path.name.endswith(('.yaml', '.yml')):
        raise LaunchError(f'{path}: YAML launch files are not supported by dexman_launch; use '
                          f'an XML launch file')
    if not path.is_file():
        raise LaunchError(f'launch file {path} not found')
    return _FileParser(path).parse()


LaunchArguments = Union[Mapping[str, str], Sequence[Tuple[str, str]]]


def _argument_items(arguments: LaunchArguments) -> List[Tuple[str, str]]:
    return list(arguments.items()) if isinstance(arguments, Mapping) else list(arguments)


def load_launch_plan(path: Union[str, Path], arguments: LaunchArguments = (), *,
                     resolver: Optional[PackageResolver] = None,
                     environ: Optional[Mapping[str, str]] = None) -> LaunchPlan:
    """Interpret launch file ``path`` with ``name:=value`` launch ``arguments`` into a plan.

    ``environ`` (default ``os.environ``) serves ``$(env)``/``$(optenv)``/``$(find-exec)``;
    ``resolver`` serves ``pkg=``, ``$(find-pkg-share)`` and ``$(find-pkg-prefix)``.
    Raises :class:`LaunchError` with a one-line message on any problem.
    """
    path = Path(os.path.abspath(path))
    plan = LaunchPlan(file=str(path))
    shared = _Shared(resolver or PackageResolver(),
                     dict(os.environ if environ is None else environ), plan)
    configs: Dict[str, str] = {}
    for name, value in _argument_items(arguments):
        configs[name] = value
    executor = _Executor(shared)
    executor.run_file(path, configs)
    plan.configurations = dict(configs)
    return plan


def describe_file_arguments(parsed: _ParsedFile) -> List[DeclaredArgument]:
    """The ``<arg>`` declarations of one parsed file (inside groups too), without evaluating."""
    out: List[DeclaredArgument] = []
    seen: set = set()

    def walk(actions: Sequence[_Action], conditional: bool) -> None:
        for a in actions:
            if isinstance(a, _Arg) and a.name not in seen:
                seen.add(a.name)
                out.append(DeclaredArgument(a.name, a.default_source, a.description, a.choices,
                                            str(parsed.path), a.line,
                                            conditional or a.condition is not None))
            elif isinstance(a, _Group):
                walk(a.actions, conditional or a.condition is not None)
    walk(parsed.actions, False)
    return out


def describe_launch_arguments(path: Union[str, Path], arguments: LaunchArguments = (), *,
                              resolver: Optional[PackageResolver] = None,
                              environ: Optional[Mapping[str, str]] = None
                              ) -> Tuple[List[DeclaredArgument], List[str]]:
    """The arguments a launch file accepts, for ``--show-args`` (best effort, like upstream).

    Lists the file's own ``<arg>``s, then, for each ``<include>`` whose path can be evaluated
    from the given arguments and the environment alone, the included file's arguments that the
    include does not set. Returns ``(arguments, notes)``; notes name includes that were skipped.
    """
    resolver = resolver or PackageResolver()
    shared = _Shared(resolver, dict(os.environ if environ is None else environ),
                     LaunchPlan(file=str(path)))
    configs = dict(_argument_items(arguments))
    result: List[DeclaredArgument] = []
    notes: List[str] = []
    seen: set = set()

    def visit(p: Path, provided: set, conditional: bool, depth: int) -> None:
        parsed = parse_launch_file(p)
        for d in describe_file_arguments(parsed):
            if d.name not in seen and d.name not in provided:
                seen.add(d.name)
                result.append(d if not conditional else DeclaredArgument(
                    d.name, d.default, d.description, d.choices, d.file, d.line, True))
        if depth > 8:
            return

        def walk(actions: Sequence[_Action], cond: bool) -> None:
            for a in actions:
                if isinstance(a, _Group):
                    walk(a.actions, cond or a.condition is not None)
                elif isinstance(a, _Include):
                    ctx = _Context(dict(configs), p, shared)
                    try:
                        target = Path(os.path.abspath(ctx.perform(a.file)))
                        names = {ctx.perform(n) for n, _ in a.args}
                        if target.is_file() and target.suffix == '.xml':
                            visit(target, names, cond or a.condition is not None, depth + 1)
                        else:
                            notes.append(f'{p}:{a.line}: included file {str(target)!r} not '
                                         f'found')
                    except LaunchError:
                        notes.append(f'{p}:{a.line}: arguments of the included file '
                                     f'{template_source(a.file)!r} not listed (its path needs '
                                     f'launch configurations)')
        walk(parsed.actions, conditional)

    visit(Path(os.path.abspath(path)), set(), False, 0)
    return result, notes


def format_command(argv: Sequence[str]) -> str:
    """A shell-quoted command line."""
    return ' '.join(shlex.quote(a) for a in argv)
