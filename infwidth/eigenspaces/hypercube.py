"""Hypercube pieces of the spectrum engine (``docs/theory.md`` §3, "Exact computation, hypercube").

- :func:`hypercube_leaf`: the exact tilted law of one patch. With Σ = mean of the n0 signs
  z_c = x_c·x'_c and χ = Π_{c∈S} z_c, |S ∩ patch| = j, the atom Σ = (n0 − 2m)/n0 (m minus
  signs) carries the weight E[1{m minus}·χ] = 2^{−n0}·Σ_a (−1)^a C(j, a)·C(n0−j, m−a)
  (a Krawtchouk polynomial), computed in exact integer arithmetic.
- :func:`fwht`: the fast Walsh–Hadamard transform; :func:`walsh_eigenvalues` uses it for the
  brute force λ_S = E_z[g(z)·χ_S(z)], g(z) = K(z, 1), at D ≤ 20, after checking on random pairs
  that the kernel depends on x ⊙ x' only (:func:`check_product_kernel`).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from infwidth.architectures.networks import Architecture

__all__ = ["hypercube_leaf", "fwht", "cube_points", "check_product_kernel",
           "walsh_eigenvalues", "walsh_basis", "MAX_FWHT_DIM"]

MAX_FWHT_DIM = 20
_EXACT_INT_LIMIT = 16384


@lru_cache(maxsize=16)
def _binomial_row(n: int) -> tuple[int, ...]:
    """C(n, k) for k = 0..n, exact integers (multiplicative recurrence)."""
    row = [1]
    for k in range(n):
        row.append(row[-1] * (n - k) // (k + 1))
    return tuple(row)


@lru_cache(maxsize=64)
def _leaf(n0: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.stats import binom, hypergeom  # here: scipy.stats takes 0.9 s to import

    m = np.arange(n0 + 1)[::-1]  # ascending t
    t = (n0 - 2.0 * m) / n0
    if j == 0:
        return t, binom.pmf(m, n0, 0.5)
    if n0 <= _EXACT_INT_LIMIT:
        row = _binomial_row(n0 - j)
        cj = [(-1) ** a * math.comb(j, a) for a in range(j + 1)]
        den = 1 << n0
        w = np.array([sum(cj[a] * row[mm - a] for a in range(j + 1) if 0 <= mm - a <= n0 - j)
                      / den for mm in m.tolist()])
        return t, w
    cond = sum((-1) ** a * hypergeom.pmf(a, n0, j, m) for a in range(j + 1))
    return t, binom.pmf(m, n0, 0.5) * cond


def hypercube_leaf(n0: int, j: int, opts: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(t, w): atoms t = ⟨x_i, x'_i⟩/n0 (ascending) and weights E[1{t}·χ] for a patch of n0
    coordinates of which j are in S (j = 0: the binomial law)."""
    t, w = _leaf(int(n0), int(j))
    return t.copy(), w.copy()


def fwht(a: np.ndarray) -> np.ndarray:
    """Unnormalised Walsh–Hadamard transform along axis 0 (length 2^D): out[S] =
    Σ_b a[b]·(−1)^{popcount(b & S)}."""
    a = np.array(a, dtype=np.float64, copy=True)
    n = a.shape[0]
    if n & (n - 1):
        raise ValueError(f"fwht needs a length that is a power of 2, got {n}")
    rest = a.shape[1:]
    h = 1
    while h < n:
        v = a.reshape((n // (2 * h), 2, h) + rest)
        x, y = v[:, 0].copy(), v[:, 1]
        v[:, 0] += y
        v[:, 1] = x - y
        h *= 2
    return a


def cube_points(dim: int) -> np.ndarray:
    """All 2^dim points of {±1}^dim; row b has coordinate c = 1 − 2·(bit c of b)."""
    b = np.arange(2 ** dim)[:, None]
    return 1.0 - 2.0 * ((b >> np.arange(dim)) & 1)


def walsh_basis(points: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """χ_S(x) = Π_{c∈S} x_c for bitmask subsets S: (n, len(subsets)) array."""
    dim = points.shape[1]
    bits = ((np.asarray(subsets)[:, None] >> np.arange(dim)) & 1).astype(bool)
    neg = (points < 0).astype(np.int64) @ bits.T.astype(np.int64)
    return 1.0 - 2.0 * (neg & 1)


def _default_kernel() -> Callable:
    from infwidth.kernels.engine import kernel
    return kernel


def check_product_kernel(arch: Architecture, dim: int, kind: str,
                         kernel_fn: Callable | None = None, n_pairs: int = 8, seed: int = 0,
                         rtol: float = 1e-6) -> float:
    """Check K(x, x') = K(x ⊙ x', 1) on random hypercube pairs; returns the max relative
    gap, raises ValueError when the kernel is not a function of x ⊙ x' (e.g. GAP readouts).

    The tolerance 1e-6 is far above float64 round-off but far below the O(1) gaps of kernels
    that see x and x' separately (neural-tangents' ReLU NTK is off by ~1e-8 at pairs whose
    correlation is exactly 1, from arccos near 1)."""
    kernel_fn = kernel_fn or _default_kernel()
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], size=(n_pairs, dim))
    y = rng.choice([-1.0, 1.0], size=(n_pairs, dim))
    kxy = np.diag(np.asarray(kernel_fn(arch, x, y, kind=kind)))
    kz = np.asarray(kernel_fn(arch, x * y, np.ones((1, dim)), kind=kind))[:, 0]
    scale = float(np.max(np.abs(kxy))) or 1.0
    gap = float(np.max(np.abs(kxy - kz))) / scale
    if gap > rtol:
        raise ValueError(f"the {kind} kernel of {type(arch).__name__} is not a function of "
                         f"x ⊙ x' (relative gap {gap:.2e} on random pairs), so Walsh monomials "
                         f"are not its eigenfunctions and the FWHT route does not apply; use "
                         f"method='gram' or 'monte-carlo'")
    return gap


def walsh_eigenvalues(arch: Architecture, dim: int, kind: str = "ntk",
                      kernel_fn: Callable | None = None, check: bool = True
                      ) -> tuple[np.ndarray, float]:
    """(λ, g_abs): λ[S] = 2^{−D}·Σ_z K(z, 1)·χ_S(z) for every bitmask S (one FWHT), and
    max|g| (the FWHT's round-off scale: |error| ≲ D·eps·max|g| per eigenvalue)."""
    if dim > MAX_FWHT_DIM:
        raise ValueError(f"the FWHT route enumerates 2^dim points and supports dim ≤ "
                         f"{MAX_FWHT_DIM}, got dim={dim}")
    kernel_fn = kernel_fn or _default_kernel()
    arch.input_shape(dim)
    if check:
        check_product_kernel(arch, dim, kind, kernel_fn)
    z = cube_points(dim)
    g = np.asarray(kernel_fn(arch, z, np.ones((1, dim)), kind=kind))[:, 0]
    return fwht(g) / 2 ** dim, float(np.max(np.abs(g)))
