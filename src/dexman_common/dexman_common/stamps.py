"""ROS time stamps <-> integer nanoseconds (ROS-free: any object with ``sec`` / ``nanosec``).

builtin_interfaces/Time and Duration are (sec: int32, nanosec: uint32 in [0, 1e9)); a stamp is
handled as one integer of nanoseconds everywhere in the project (exact, orderable, a dict key).
"""
from __future__ import annotations

NS_PER_SEC = 1_000_000_000


def time_to_ns(t) -> int:
    """Nanoseconds of a builtin_interfaces Time / Duration (anything with ``sec``, ``nanosec``)."""
    return int(t.sec) * NS_PER_SEC + int(t.nanosec)


def stamp_ns(header) -> int:
    """Nanoseconds of a std_msgs/Header's ``stamp``."""
    return time_to_ns(header.stamp)


def ns_to_sec_nanosec(ns: int) -> tuple[int, int]:
    """(sec, nanosec) of integer nanoseconds, nanosec in [0, 1e9) (floor division, also for
    negative values), for ``Time(sec=..., nanosec=...)``."""
    sec, nanosec = divmod(int(ns), NS_PER_SEC)
    return sec, nanosec


def seconds_to_ns(seconds: float) -> int:
    """Seconds rounded to the nearest integer nanosecond."""
    return int(round(float(seconds) * NS_PER_SEC))


__all__ = ['NS_PER_SEC', 'time_to_ns', 'stamp_ns', 'ns_to_sec_nanosec', 'seconds_to_ns']
