"""Keyframed timelines: hand wrist/posture tracks, the object track and grasp attachments.

While a hand is attached to the object its wrist is exactly T_world_object(t) @ T_object_wrist
(closed posture), so held objects move rigidly with the grasp. Between attachments the object
keeps its last pose; `Script.check()` rejects a script that moves an object nobody holds.
Times are nominal seconds; `sample()` maps frames onto them with a uniform time scale.
"""
from __future__ import annotations

import bisect
import dataclasses

import numpy as np

from .hand_model import HandPose, interp_pose
from .transforms import interp_T, min_jerk


@dataclasses.dataclass
class Attachment:
    hand: int
    t0: float
    t1: float
    T_obj_wrist: np.ndarray
    pose: HandPose
    contacts: np.ndarray        # (5,) bool


@dataclasses.dataclass
class Sampled:
    times: np.ndarray           # (N,) nominal seconds
    wrist_T: np.ndarray         # (2, N, 4, 4)
    poses: list                 # [2][N] HandPose
    object_T: np.ndarray        # (1, N, 4, 4)
    grasped: np.ndarray         # (2, N) int
    contacts: np.ndarray        # (2, N, 5) bool


class Script:
    def __init__(self):
        self.hand_keys: dict[int, list] = {0: [], 1: []}
        self.obj_keys: list = []
        self.attachments: list[Attachment] = []

    # ------------------------------------------------------------------ building
    def hand(self, h: int, t: float, T: np.ndarray, pose: HandPose) -> None:
        keys = self.hand_keys[h]
        if keys and t < keys[-1][0] - 1e-9:
            raise ValueError('hand keys must be added in time order')
        keys.append((float(t), np.array(T, float), pose.copy()))

    def obj(self, t: float, T: np.ndarray) -> None:
        if self.obj_keys and t < self.obj_keys[-1][0] - 1e-9:
            raise ValueError('object keys must be added in time order')
        self.obj_keys.append((float(t), np.array(T, float)))

    def attach(self, h: int, t0: float, t1: float, T_obj_wrist, pose: HandPose, contacts) -> None:
        self.attachments.append(Attachment(h, float(t0), float(t1), np.array(T_obj_wrist, float),
                                           pose.copy(), np.asarray(contacts, bool)))

    @property
    def duration(self) -> float:
        ends = [k[-1][0] for k in self.hand_keys.values() if k] + [self.obj_keys[-1][0]]
        return max(ends)

    # ------------------------------------------------------------------ evaluation
    def object_at(self, t: float) -> np.ndarray:
        return _interp(self.obj_keys, t, lambda a, b, s: interp_T(a, b, s))

    def attached(self, h: int, t: float) -> Attachment | None:
        for a in self.attachments:
            if a.hand == h and a.t0 <= t < a.t1:
                return a
        return None

    def hand_at(self, h: int, t: float) -> tuple[np.ndarray, HandPose]:
        a = self.attached(h, t)
        if a is not None:
            return self.object_at(t) @ a.T_obj_wrist, a.pose
        keys = self.hand_keys[h]
        T = _interp([(k[0], k[1]) for k in keys], t, lambda a, b, s: interp_T(a, b, s))
        P = _interp([(k[0], k[2]) for k in keys], t, lambda a, b, s: interp_pose(a, b, s))
        return T, P

    def check(self) -> None:
        """Every object motion happens while at least one hand holds the object."""
        for (t0, T0), (t1, T1) in zip(self.obj_keys[:-1], self.obj_keys[1:]):
            if np.allclose(T0, T1, atol=1e-12):
                continue
            for t in np.linspace(t0, t1, 9)[:-1] + 1e-6:
                if not any(a.t0 <= t < a.t1 for a in self.attachments):
                    raise ValueError(f'object moves at t={t:.3f}s while no hand holds it')

    def sample(self, n: int, fps: float, duration: float) -> Sampled:
        scale = self.duration / duration
        times = np.arange(n) / fps * scale
        wT = np.zeros((2, n, 4, 4))
        poses = [[None] * n, [None] * n]
        oT = np.zeros((1, n, 4, 4))
        grasped = np.full((2, n), -1, np.int64)
        contacts = np.zeros((2, n, 5), bool)
        for k, t in enumerate(times):
            oT[0, k] = self.object_at(t)
            for h in (0, 1):
                wT[h, k], poses[h][k] = self.hand_at(h, t)
                a = self.attached(h, t)
                if a is not None:
                    grasped[h, k] = 0
                    contacts[h, k] = a.contacts
        return Sampled(times, wT, poses, oT, grasped, contacts)


def _interp(keys, t, fn):
    times = [k[0] for k in keys]
    i = bisect.bisect_right(times, t)
    if i == 0:
        return keys[0][1]
    if i >= len(keys):
        return keys[-1][1]
    (t0, a), (t1, b) = keys[i - 1], keys[i]
    if t1 - t0 < 1e-12:
        return b
    return fn(a, b, float(min_jerk((t - t0) / (t1 - t0))))
