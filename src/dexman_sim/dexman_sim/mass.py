"""Mass, centre of mass and inertia of an object from its mesh at a uniform density.

    volume V of the solid (the mesh when watertight, else its convex hull: ``mesh_repair``)
    mass m = density * V, capped: m = min(m, mass_cap) (the inertia scales with m)
    COM and inertia tensor (about the COM, object-frame axes) from trimesh's mass properties
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .mesh_repair import RepairedMesh


@dataclasses.dataclass(frozen=True)
class MassProperties:
    mass: float              # kg
    com: np.ndarray          # (3,) object frame, m
    inertia: np.ndarray      # (3, 3) about the COM, object-frame axes, kg m^2
    volume: float            # m^3 of the solid used
    capped: bool             # the mass cap applied

    def fullinertia(self) -> np.ndarray:
        """MuJoCo's ``fullinertia`` order: ixx iyy izz ixy ixz iyz."""
        I = self.inertia
        return np.array([I[0, 0], I[1, 1], I[2, 2], I[0, 1], I[0, 2], I[1, 2]])


def mass_properties(repaired: RepairedMesh, density: float, mass_cap: float | None = None) -> MassProperties:
    solid = repaired.solid
    vol = float(solid.volume)
    m_density = float(density) * vol
    mass = m_density if mass_cap is None else min(m_density, float(mass_cap))
    # trimesh: moment_inertia is about the centre of mass for solid.density (default 1): scale to mass
    inertia = np.asarray(solid.moment_inertia, float) * (mass / float(solid.mass))
    return MassProperties(mass=mass, com=np.asarray(solid.center_mass, float).copy(), inertia=inertia,
                          volume=vol, capped=mass < m_density)
