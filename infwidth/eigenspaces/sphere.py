"""Sphere-product pieces of the spectrum engine (``theory.md`` §3, "Exact computation, sphere").

For x_i, x'_i uniform on the sphere of radius √n0, the leaf correlation t = ⟨x_i, x'_i⟩/n0 has
density ∝ (1 − t²)^{(n0−3)/2} on [−1, 1]. By the Funk–Hecke formula a zonal kernel g(t) acts
on the degree-k spherical harmonics as the scalar E_t[g(t)·P_k(t)], with P_k the Gegenbauer
polynomial C_k^{(λ)}, λ = (n0 − 2)/2, normalised by P_k(1) = 1. For a product of harmonics the
tilt factorises over patches, so the tree recursion only needs each patch's tilted law
E[1{t}·P_k(t)]: :func:`sphere_leaf` gives it by Gauss–Jacobi quadrature (exact for
polynomials of degree < 2m; Golub–Welsch on the Jacobi matrix, stable for any n0).

A normalised harmonic of degree k is the zonal one Z(x) = √N(n0, k)·P_k(⟨x, v⟩/√n0) around a
unit vector v: E[Z²] = N(n0, k)·E[P_k(t)²] = 1 (:func:`zonal_harmonic`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from scipy.linalg import eigh_tridiagonal

from infwidth.eigenspaces.tree_types import sphere_harmonics_count

__all__ = ["gegenbauer", "gauss_jacobi", "sphere_leaf", "zonal_harmonic",
           "sphere_harmonics_count"]


def gegenbauer(k: int, n0: int, t: np.ndarray) -> np.ndarray:
    """P_k(t) = C_k^{(λ)}(t)/C_k^{(λ)}(1), λ = (n0−2)/2 (Legendre polynomial of S^{n0−1}),
    by the normalised recurrence P_{k+1} = (2(k+λ)·t·P_k − k·P_{k−1})/(k + 2λ)."""
    t = np.asarray(t, dtype=np.float64)
    lam = (n0 - 2) / 2.0
    p_prev, p = np.ones_like(t), t.copy()
    if k == 0:
        return p_prev
    for m in range(1, k):
        p_prev, p = p, (2.0 * (m + lam) * t * p - m * p_prev) / (m + 2.0 * lam)
    return p


@lru_cache(maxsize=32)
def gauss_jacobi(m: int, n0: int) -> tuple[np.ndarray, np.ndarray]:
    """m-node Gauss rule for the law of t on S^{n0−1} (weight ∝ (1−t²)^{(n0−3)/2}), weights
    summing to 1, nodes ascending. Jacobi matrix of the monic Gegenbauer polynomials:
    off-diagonal² β_k = k(k + 2λ − 1)/(4(k+λ)(k+λ−1))."""
    lam = (n0 - 2) / 2.0
    k = np.arange(1, m, dtype=np.float64)
    if lam == 0:
        beta = np.where(k == 1, 0.5, 0.25)
    else:
        beta = k * (k + 2 * lam - 1) / (4 * (k + lam) * (k + lam - 1))
    x, v = eigh_tridiagonal(np.zeros(m), np.sqrt(beta))
    w = v[0] ** 2
    return x, w / w.sum()


def sphere_leaf(n0: int, j: int, opts: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(t, w): quadrature nodes of the patch correlation and weights E[1{t}·P_j(t)]
    (j = 0: the law)."""
    if n0 < 2:
        raise ValueError(f"the sphere domain needs patches of at least 2 coordinates, got {n0}")
    m = getattr(opts, "quad_points", 96)
    t, w = gauss_jacobi(int(m), int(n0))
    return t, w * gegenbauer(j, n0, t) if j else w


def zonal_harmonic(x: np.ndarray, v: np.ndarray, k: int) -> np.ndarray:
    """√N(n0, k)·P_k(⟨x̂, v⟩) for rows x on the sphere of radius √n0 and a unit vector v."""
    n0 = x.shape[-1]
    t = (x @ v) / np.sqrt(n0)
    return np.sqrt(float(sphere_harmonics_count(n0, k))) * gegenbauer(k, n0, t)
