"""Atomic file writes: a temp file in the target's folder, fsync, then os.replace, so a reader
never sees a half-written artefact and an interrupted write leaves the previous file intact."""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = 'wb', perms: int | None = 0o644) -> Iterator[IO]:
    """Open a temp file beside `path` for writing; on a clean exit it replaces `path`."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if perms is not None:
            os.chmod(tmp, perms)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> pathlib.Path:
    with atomic_open(path, 'wb') as f:
        f.write(data)
    return pathlib.Path(path)


def write_json_atomic(path: str | os.PathLike, data: object, indent: int = 1) -> pathlib.Path:
    with atomic_open(path, 'w') as f:
        json.dump(data, f, indent=indent)
        f.write('\n')
    return pathlib.Path(path)


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike) -> Iterator[pathlib.Path]:
    """Yield a temp directory beside `final`; on a clean exit it replaces `final` as a whole (the
    previous version is moved aside first and removed after the rename), else it is deleted."""
    import shutil
    final = pathlib.Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'.{final.name}.', dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        old = final.parent / f'.{final.name}.old-{os.getpid()}'
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
