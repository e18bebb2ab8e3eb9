"""Spherical harmonics of S^{d−1}: the one home of the sphere's special functions
(``docs/theory.md`` §3).

Convention: x uniform on the sphere of radius √d in R^d, t = ⟨x, x'⟩/d ∈ [−1, 1], whose law
has density ∝ (1 − t²)^{(d−3)/2}. P_k = :func:`legendre` is the Legendre polynomial of
dimension d, i.e. the Gegenbauer polynomial C_k^{(λ)}, λ = (d − 2)/2, **normalised so that
P_k(1) = 1** (Legendre for d = 3, Chebyshev T_k for d = 2). With N(d, k) =
:func:`harmonic_count` harmonics of degree k:

- addition theorem: Σ_j Y_kj(x)·Y_kj(x') = N(d, k)·P_k(t) for an L²-orthonormal basis
  (:func:`reproducing_kernel`), hence E_t[P_j(t)·P_k(t)] = δ_jk/N(d, k);
- Funk–Hecke: a zonal kernel g(t) = Σ_k λ_k·N(d, k)·P_k(t) acts on degree-k harmonics as
  λ_k = E_t[g(t)·P_k(t)] (:func:`funk_hecke`, by the Gauss rule :func:`gauss_jacobi`);
- a unit-power harmonic: Z(x) = √N(d, k)·P_k(⟨x, v⟩/√d), v a unit vector
  (:func:`zonal_harmonic`), E[Z²] = N(d, k)·E[P_k(t)²] = 1.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, Iterator

import numpy as np
import numpy.typing as npt
from scipy.linalg import eigh_tridiagonal

__all__ = ["legendre", "legendre_all", "harmonic_count", "reproducing_kernel", "gauss_jacobi",
           "funk_hecke", "zonal_harmonic"]


def _check_degree(k: int, d: int) -> None:
    if d < 1 or k < 0:
        raise ValueError(f"need dimension d >= 1 and degree k >= 0, got d={d}, k={k}")
    if d == 1 and k > 1:
        raise ValueError(f"the sphere S^0 (d=1) has harmonics of degree <= 1 only, got k={k}")


def _legendre_iter(d: int, t: npt.ArrayLike) -> Iterator[np.ndarray]:
    """P_0(t), P_1(t), … of dimension d by the normalised three-term recurrence
    P_{k+1} = ((2k + d − 2)·t·P_k − k·P_{k−1})/(k + d − 2), P_0 = 1, P_1 = t."""
    t = np.asarray(t, dtype=np.float64)
    p_prev, p = np.ones_like(t), t.copy()
    yield p_prev
    yield p
    k = 1
    while True:
        p_prev, p = p, ((2 * k + d - 2) * t * p - k * p_prev) / (k + d - 2)
        yield p
        k += 1


def legendre(k: int, d: int, t: npt.ArrayLike) -> np.ndarray:
    """P_k(t) = C_k^{(λ)}(t)/C_k^{(λ)}(1), λ = (d − 2)/2: the degree-k Legendre polynomial of
    S^{d−1}, P_k(1) = 1 (``docs/theory.md`` §3). No clipping: callers clip t to [−1, 1]."""
    _check_degree(k, d)
    for j, p in enumerate(_legendre_iter(d, t)):
        if j == k:
            return p
    raise AssertionError("unreachable")


def legendre_all(max_degree: int, d: int, t: npt.ArrayLike) -> list[np.ndarray]:
    """[P_0(t), …, P_K(t)], K = ``max_degree``, by one pass of :func:`legendre`'s recurrence."""
    _check_degree(max_degree, d)
    it = _legendre_iter(d, t)
    return [next(it) for _ in range(max_degree + 1)]


def harmonic_count(d: int, k: int) -> int:
    """N(d, k) = C(k+d−3, k−1)·(2k+d−2)/k (N(d, 0) = 1): the number of degree-k spherical
    harmonics on S^{d−1} (``docs/theory.md`` §3). S^0 (d = 1) has N = 1, 1, 0, 0, …"""
    if d < 1 or k < 0:
        raise ValueError(f"need dimension d >= 1 and degree k >= 0, got d={d}, k={k}")
    if k == 0:
        return 1
    if d == 1:
        return 1 if k == 1 else 0
    return math.comb(k + d - 3, k - 1) * (2 * k + d - 2) // k


def reproducing_kernel(k: int, d: int, t: npt.ArrayLike) -> np.ndarray:
    """Σ_j Y_kj(x)·Y_kj(x') = N(d, k)·P_k(t) (addition theorem, ``docs/theory.md`` §3): the
    reproducing kernel of the degree-k harmonics at t = ⟨x, x'⟩/d."""
    return harmonic_count(d, k) * legendre(k, d, t)


@lru_cache(maxsize=32)
def gauss_jacobi(m: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """m-node Gauss rule for the law of t on S^{d−1} (weight ∝ (1 − t²)^{(d−3)/2}): nodes
    ascending, weights summing to 1, exact for polynomials of degree < 2m
    (``docs/theory.md`` §3). Golub–Welsch on the Jacobi matrix of the monic Gegenbauer
    polynomials, off-diagonal² β_k = k(k + 2λ − 1)/(4(k + λ)(k + λ − 1)), λ = (d − 2)/2.
    The arrays are cached and read-only."""
    if m < 1 or d < 2:
        raise ValueError(f"need m >= 1 nodes and dimension d >= 2, got m={m}, d={d}")
    lam = (d - 2) / 2.0
    k = np.arange(1, m, dtype=np.float64)
    if lam == 0:
        beta = np.where(k == 1, 0.5, 0.25)
    else:
        beta = k * (k + 2 * lam - 1) / (4 * (k + lam) * (k + lam - 1))
    x, v = eigh_tridiagonal(np.zeros(m), np.sqrt(beta))
    w = v[0] ** 2
    w = w / w.sum()
    x.flags.writeable = False
    w.flags.writeable = False
    return x, w


def funk_hecke(g: Callable[[np.ndarray], npt.ArrayLike], d: int, max_degree: int,
               n_quad: int = 200) -> np.ndarray:
    """λ_k = E_t[g(t)·P_k(t)], k = 0 … ``max_degree``: the eigenvalue of the zonal kernel g on
    each degree-k harmonic of S^{d−1} (Funk–Hecke, ``docs/theory.md`` §3), by the
    ``n_quad``-node rule :func:`gauss_jacobi` (exact for polynomial g of degree
    < 2·n_quad − max_degree)."""
    t, w = gauss_jacobi(int(n_quad), int(d))
    gt = np.asarray(g(t), dtype=np.float64)
    return np.array([np.sum(w * gt * p) for p in legendre_all(max_degree, d, t)])


def zonal_harmonic(x: np.ndarray, v: np.ndarray, k: int) -> np.ndarray:
    """Z(x) = √N(d, k)·P_k(⟨x, v⟩/√d) for rows x on the sphere of radius √d and a unit vector
    v: a degree-k harmonic with E[Z²] = 1 (``docs/theory.md`` §3)."""
    d = x.shape[-1]
    t = (x @ v) / np.sqrt(d)
    return np.sqrt(float(harmonic_count(d, k))) * legendre(k, d, t)
