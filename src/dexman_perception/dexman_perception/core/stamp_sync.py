"""Exact-stamp synchronisation of a node's per-frame inputs (ROS-free).

Every perception stage publishes its per-frame output with the stamp of the source image, so a
node that needs several inputs (image + depth + hands, ...) waits for all of them with the same
stamp. Each input topic arrives in stamp order (reliable, in-order delivery from one bag player),
which makes the rule for a missing message exact: once an input has delivered a stamp later than
a pending frame, that frame will never get it.

    sync = StampSync(required=['image', 'depth'], optional=['hands'])
    for stamp, inputs, missing in sync.put('image', stamp_ns, rgb): ...

A frame is released, in stamp order, when
  * every required and optional input has delivered it, or
  * each input that has not delivered it is past it (delivered a later stamp), is marked absent
    (`set_absent`: its producing stage stopped), or the pending queue exceeds `max_pending`
    (memory bound; the oldest frame goes out with what it has).
Frames come out with `missing` = the inputs they lack; a frame missing its `primary` input (the
image that defines frames) is dropped, since there is no frame to report.
"""
from __future__ import annotations

from collections.abc import Hashable
from typing import Any, Iterable


class StampSync:
    def __init__(self, required: Iterable[str], optional: Iterable[str] = (), *,
                 primary: str | None = None, max_pending: int = 600) -> None:
        self.required = list(required)
        self.optional = list(optional)
        if not self.required:
            raise ValueError('StampSync needs at least one required input')
        self.names = self.required + self.optional
        if len(set(self.names)) != len(self.names):
            raise ValueError(f'duplicate input names in {self.names}')
        self.primary = primary or self.required[0]
        if self.primary not in self.names:
            raise ValueError(f'primary input {self.primary!r} is not an input')
        self.max_pending = int(max_pending)
        self._pending: dict[Hashable, dict[str, Any]] = {}
        self._last: dict[str, int | None] = {n: None for n in self.names}
        self._absent: set[str] = set()
        self.released_last: int | None = None
        self.dropped = 0            # frames that never got their primary input
        self.late = 0               # messages older than an already released frame (ignored)

    # ---------------------------------------------------------------------------------------
    def put(self, name: str, stamp_ns: int, value: Any) -> list[tuple[int, dict[str, Any], list[str]]]:
        """Add one message; returns the frames it completes, in stamp order:
        (stamp_ns, {input: value}, [missing inputs])."""
        if name not in self._last:
            raise KeyError(f'unknown input {name!r}; inputs: {self.names}')
        stamp_ns = int(stamp_ns)
        if self.released_last is not None and stamp_ns <= self.released_last:
            self.late += 1
            return []
        self._pending.setdefault(stamp_ns, {})[name] = value
        if self._last[name] is None or stamp_ns > self._last[name]:
            self._last[name] = stamp_ns
        return self._release()

    def set_absent(self, name: str) -> list[tuple[int, dict[str, Any], list[str]]]:
        """The producer of input `name` stopped: stop waiting for it (frames go out without it)."""
        if name not in self._last:
            raise KeyError(f'unknown input {name!r}; inputs: {self.names}')
        self._absent.add(name)
        return self._release()

    def flush(self) -> list[tuple[int, dict[str, Any], list[str]]]:
        """Release everything pending (end of input), in stamp order."""
        out = []
        while self._pending:
            out.extend(self._pop_oldest())
        return out

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def absent(self) -> frozenset[str]:
        return frozenset(self._absent)

    # ---------------------------------------------------------------------------------------
    def _complete(self, stamp: int, got: dict[str, Any]) -> bool:
        for n in self.names:
            if n in got or n in self._absent:
                continue
            last = self._last[n]
            if last is None or last <= stamp:
                return False        # may still come
        return True

    def _pop_oldest(self) -> list[tuple[int, dict[str, Any], list[str]]]:
        stamp = min(self._pending)
        got = self._pending.pop(stamp)
        self.released_last = stamp
        if self.primary not in got:
            self.dropped += 1
            return []
        return [(stamp, got, [n for n in self.names if n not in got])]

    def _release(self) -> list[tuple[int, dict[str, Any], list[str]]]:
        out = []
        while self._pending:
            stamp = min(self._pending)
            if not (self._complete(stamp, self._pending[stamp]) or len(self._pending) > self.max_pending):
                break
            out.extend(self._pop_oldest())
        return out
