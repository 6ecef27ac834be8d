"""Command lines of real nodes in the integration tests: the `ros2` executable and `-p` arguments."""
from __future__ import annotations

import shutil

import pytest


def ros2() -> str:
    """Path of `ros2` (the real CLI, or scripts/ros2cli in pip mode); skips the test without it."""
    exe = shutil.which('ros2')
    if exe is None:
        pytest.skip('ros2 (scripts/ros2cli) is not on PATH: source env.sh first')
    return exe


def param_args(params: dict) -> list[str]:
    """{'rate': 0.0, 'loop': False, 'topics': ['/a']} -> ['-p', 'rate:=0.0', '-p', 'loop:=false',
    '-p', "topics:=['/a']"] (YAML values as `ros2 run ... --ros-args` takes them)."""
    out = []
    for k, v in params.items():
        if isinstance(v, bool):
            v = 'true' if v else 'false'
        elif isinstance(v, (list, tuple)):
            v = '[' + ','.join(repr(x) for x in v) + ']'
        out += ['-p', f'{k}:={v}']
    return out
