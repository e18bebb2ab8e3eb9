"""Sphere-product leaves of the spectrum engine (``docs/theory.md`` §3, "Exact computation,
sphere").

For x_i, x'_i uniform on the sphere of radius √n0, the leaf correlation t = ⟨x_i, x'_i⟩/n0 has
density ∝ (1 − t²)^{(n0−3)/2} on [−1, 1]. By Funk–Hecke a zonal kernel g(t) acts on the
degree-k spherical harmonics as the scalar E_t[g(t)·P_k(t)], P_k the Legendre polynomial of
dimension n0 with P_k(1) = 1 (:mod:`infwidth.eigenspaces.harmonics`). For a product of
harmonics the tilt factorises over patches, so the tree recursion only needs each patch's
tilted law E[1{t}·P_k(t)]: :func:`sphere_leaf` gives it by the Gauss–Jacobi rule
:func:`~infwidth.eigenspaces.harmonics.gauss_jacobi` (exact for polynomials of degree < 2m).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from infwidth.eigenspaces.harmonics import gauss_jacobi, legendre

__all__ = ["sphere_leaf"]


def sphere_leaf(n0: int, j: int, opts: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(t, w): the m Gauss–Jacobi nodes of the patch correlation and the weights of the tilted
    law E[1{t}·P_j(t)] (j = 0: the law itself); m = ``opts.quad_points`` (default 96)."""
    if n0 < 2:
        raise ValueError(f"the sphere domain needs patches of at least 2 coordinates, got {n0}")
    m = getattr(opts, "quad_points", 96)
    t, w = gauss_jacobi(int(m), int(n0))
    return t, w * legendre(j, n0, t) if j else w
