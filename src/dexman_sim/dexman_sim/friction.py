"""Effective contact friction of each geom pair kind, and how it is imposed in MuJoCo.

Two coefficients combine by ``friction_convention`` (see ``dexman_sim.config``): 'average' (PhysX,
the paper's Isaac Gym) or 'max' (MuJoCo's rule at equal priority). MuJoCo lets a geom of higher
``priority`` impose its own friction on a contact, so the pair values are set without explicit
``<pair>`` elements (the hands have dozens of geoms: per-pair elements would bypass the broad
phase and multiply with the object parts):

    object geoms   priority p0       friction = object_friction           (object-object: exact)
    table geom     priority p0 + 1   friction = combine(object, table)    (object-table: exact)
    hand geoms     priority p0 + 2   friction = combine(hand, object)     (hand-object: exact)

p0 = the highest priority among the robot's own geoms. Pairs that are not exact under 'average':
hand-table gets combine(hand, object) (2.5 instead of 2.125 with the paper's values), hand-hand
gets combine(hand, object) instead of the hand's own value; the robot's other links keep their own
friction against objects (MuJoCo max rule). Under 'max' every pair is exact.
"""
from __future__ import annotations

import dataclasses

from .config import SimConfig


def combine(a: float, b: float, convention: str) -> float:
    """The friction coefficient of a contact between materials a and b."""
    if convention == 'average':
        return 0.5 * (float(a) + float(b))
    if convention == 'max':
        return max(float(a), float(b))
    raise ValueError(f'friction convention must be average or max, got {convention!r}')


@dataclasses.dataclass(frozen=True)
class PairFriction:
    """Sliding friction of each contact kind as simulated, and the geom values that produce it."""
    hand_object: float
    object_table: float
    object_object: float
    hand_table: float
    hand_geom: float       # friction given to every hand geom
    table_geom: float      # friction given to the table geom
    object_geom: float     # friction given to every object collision geom


def pair_friction(cfg: SimConfig) -> PairFriction:
    ho = combine(cfg.hand_friction, cfg.object_friction, cfg.friction_convention)
    ot = combine(cfg.object_friction, cfg.table_friction, cfg.friction_convention)
    return PairFriction(hand_object=ho, object_table=ot, object_object=float(cfg.object_friction),
                        hand_table=ho, hand_geom=ho, table_geom=ot, object_geom=float(cfg.object_friction))
