"""``dexman_launch``: run a ROS 2 XML launch file where ``ros2 launch`` is not available.

Usage (the same forms as ``ros2 launch``; ``scripts/ros2cli/ros2 launch ...`` execs this)::

    python -m dexman_bringup.launch_cli <file.launch.xml> [name:=value ...] [--print] [--show-args]
    python -m dexman_bringup.launch_cli <package> <file.launch.xml> [name:=value ...] [...]

``--print`` prints the resolved processes (command lines, environment additions, options)
without running anything; ``--show-args`` lists the launch arguments. A bad file, a missing or
malformed argument, an unknown package or executable: one line on stderr, exit code 2.
Otherwise the exit code is the supervisor's (see ``dexman_bringup.core.process_supervisor``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import socket
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from dexman_bringup.core.launch_description import (
    LaunchError, LaunchPlan, PackageResolver, describe_launch_arguments,
    format_command, load_launch_plan)
from dexman_bringup.core.process_supervisor import ProcessSupervisor

PROG = 'dexman_launch'
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) instead of usage + error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise LaunchError(message)


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description='Run a ROS 2 XML launch file (the subset DexMan-ROS uses) '
        'without ros2 launch.')
    parser.add_argument('targets', nargs='+', metavar='ARG',
                        help="'<file>' or '<package> <file>', then '<name>:=<value>' launch "
                             "arguments")
    parser.add_argument('-p', '--print', '--print-description', dest='print_plan',
                        action='store_true', help='print the resolved processes, run nothing')
    parser.add_argument('-s', '--show-args', '--show-arguments', dest='show_args',
                        action='store_true', help='show the launch arguments and exit')
    return parser


def split_targets(targets: Sequence[str], resolver: PackageResolver
                  ) -> Tuple[str, List[Tuple[str, str]]]:
    """Resolve ``file`` / ``package file`` plus ``name:=value`` items, as ``ros2 launch``."""
    first, rest = targets[0], list(targets[1:])
    if ':=' in first:
        raise LaunchError(f"expected a launch file or a package name before launch arguments, "
                          f"got {first!r}")
    if os.path.isfile(first) or not rest or ':=' in rest[0]:
        path = first
    else:
        path = resolver.find_file_in_share(first, rest.pop(0))
    arguments = []
    for item in rest:
        name, sep, value = item.partition(':=')
        if not sep or not name:
            raise LaunchError(f"malformed launch argument {item!r}: expected '<name>:=<value>'")
        arguments.append((name, value))
    return path, arguments


def default_log_dir() -> Path:
    """A fresh per-run directory below ROS_LOG_DIR (or $ROS_HOME/log, or ~/.ros/log)."""
    base = os.environ.get('ROS_LOG_DIR') or os.path.join(
        os.environ.get('ROS_HOME') or os.path.join(os.path.expanduser('~'), '.ros'), 'log')
    stamp = datetime.datetime.now().strftime('%Y-%m-%d-%H-%M-%S-%f')
    return Path(base) / f'{stamp}-{socket.gethostname()}-{os.getpid()}'


def format_plan(plan: LaunchPlan) -> str:
    """The ``--print`` text: one block per process."""
    lines = [f'# {plan.file}: {len(plan.processes)} process(es)']
    for spec in plan.processes:
        lines.append(f'{spec.name}:')
        lines.append(f'  cmd: {format_command(spec.argv)}')
        if spec.env:
            lines.append('  env: ' + ' '.join(f'{k}={v}' for k, v in spec.env))
        if spec.cwd:
            lines.append(f'  cwd: {spec.cwd}')
        options = [f'output={spec.output}']
        if spec.on_exit:
            options.append(f'on_exit={spec.on_exit}')
        if spec.respawn:
            options.append(f'respawn=true respawn_delay={spec.respawn_delay:g} '
                           f'respawn_max_retries={spec.respawn_max_retries}')
        lines.append('  ' + ' '.join(options) + f'  # {spec.source}')
    return '\n'.join(lines)


def format_arguments(path: str, arguments: List[Tuple[str, str]],
                     resolver: PackageResolver) -> str:
    """The ``--show-args`` text, in ``ros2 launch --show-args`` style."""
    declared, notes = describe_launch_arguments(path, arguments, resolver=resolver)
    if not declared:
        lines = ['No arguments.']
    else:
        lines = ["Arguments (pass arguments as '<name>:=<value>'):"]
        for d in declared:
            lines += ['', f"    '{d.name}':", f'        {d.description or "no description given"}']
            if d.choices:
                lines.append(f'        Valid choices are: {list(d.choices)}')
            if d.default is not None:
                lines.append(f"        (default: {d.default!r})")
            elif d.conditional:
                lines.append('        (required when its condition holds)')
            else:
                lines.append('        (required)')
    lines += [f'# note: {n}' for n in notes]
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``dexman_launch`` and ``python -m dexman_bringup.launch_cli``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    resolver = PackageResolver()
    try:
        args = _build_parser().parse_intermixed_args(argv)
        path, arguments = split_targets(args.targets, resolver)
        if args.show_args:
            print(format_arguments(path, arguments, resolver))
            return 0
        plan = load_launch_plan(path, arguments, resolver=resolver)
    except LaunchError as exc:
        print(f"{PROG}: error: {str(exc).replace(chr(10), ' ')}", file=sys.stderr)
        return EXIT_USAGE
    for warning in plan.warnings:
        print(f'{PROG}: warning: {warning}', file=sys.stderr)
    if args.print_plan:
        print(format_plan(plan))
        return 0
    if not plan.processes:
        print(f'[INFO] [launch]: {plan.file} starts no process', flush=True)
        return 0
    log_dir: Optional[Path] = default_log_dir()
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        print(f'[INFO] [launch]: All log files can be found below {log_dir}', flush=True)
    except OSError as exc:
        print(f'{PROG}: warning: no log directory ({exc}); output routed to log files is '
              f'dropped', file=sys.stderr)
        log_dir = None
    return ProcessSupervisor(plan.processes, log_dir=log_dir).run()


if __name__ == '__main__':
    sys.exit(main())
