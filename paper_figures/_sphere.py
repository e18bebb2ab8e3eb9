"""Dot-product kernels on the sphere: harmonics, Funk–Hecke eigenvalues, zonal targets and
the Marchenko–Pastur law (helpers for figure 6; not part of the infwidth library).

Conventions: x uniform on the sphere of radius √d in R^d, t = ⟨x, x'⟩/d, and a dot-product
kernel K(x, x') = g(t). With P_k the degree-k Legendre polynomial of dimension d (the
Gegenbauer polynomial C_k^{(d−2)/2} normalised so that P_k(1) = 1):

- N(d, k) = C(k+d−3, k−1)·(2k+d−2)/k harmonics of degree k (N(d, 0) = 1);
- addition theorem: Σ_j Y_kj(x)·Y_kj(x') = N(d, k)·P_k(t) for an orthonormal basis in L²;
- Funk–Hecke: g(t) = Σ_k λ_k·N(d, k)·P_k(t) with λ_k = E_t[g(t)·P_k(t)], t having the density
  ∝ (1 − t²)^{(d−3)/2} on [−1, 1] (Gauss–Jacobi quadrature).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import special

__all__ = ["n_harmonics", "legendre_d", "legendre_all", "funk_hecke", "zonal_target",
           "mp_density", "mp_edges", "kernel_profile", "mlp_profile", "find_peaks"]


def n_harmonics(d: int, k: int) -> int:
    """N(d, k) = C(k+d−3, k−1)·(2k+d−2)/k: the number of degree-k harmonics on S^{d−1}."""
    if d < 2 or k < 0:
        raise ValueError(f"need d >= 2 and k >= 0, got d={d}, k={k}")
    if k == 0:
        return 1
    return math.comb(k + d - 3, k - 1) * (2 * k + d - 2) // k


def legendre_all(max_degree: int, d: int, t) -> list[np.ndarray]:
    """[P_0(t), …, P_K(t)] of dimension d by the three-term recurrence
    (k+d−2)·P_{k+1} = (2k+d−2)·t·P_k − k·P_{k−1}, P_0 = 1, P_1 = t (so P_k(1) = 1)."""
    if d < 2:
        raise ValueError(f"d must be >= 2, got {d}")
    t = np.asarray(t, dtype=np.float64)
    out = [np.ones_like(t), t.copy()]
    for k in range(1, max_degree):
        out.append(((2 * k + d - 2) * t * out[k] - k * out[k - 1]) / (k + d - 2))
    return out[: max_degree + 1]


def legendre_d(k: int, d: int, t) -> np.ndarray:
    """P_k of dimension d, P_k(1) = 1 (Gegenbauer C_k^{(d−2)/2}/C_k^{(d−2)/2}(1))."""
    return legendre_all(k, d, t)[k]


def _t_quadrature(d: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and probability weights of t = ⟨x, x'⟩/d for x, x' uniform on S^{d−1}."""
    a = (d - 3) / 2
    t, w = special.roots_jacobi(n, a, a)
    return t, w / w.sum()


def funk_hecke(g: Callable[[np.ndarray], np.ndarray], d: int, max_degree: int,
               n_quad: int = 200) -> np.ndarray:
    """λ_k = E_t[g(t)·P_k(t)], k = 0 … max_degree: the per-harmonic eigenvalues of g."""
    t, w = _t_quadrature(d, n_quad)
    gt = np.asarray(g(t), dtype=np.float64)
    return np.array([np.sum(w * gt * legendre_d(k, d, t)) for k in range(max_degree + 1)])


def kernel_profile(kernel_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], d: int
                   ) -> Callable[[np.ndarray], np.ndarray]:
    """g(t) of a dot-product kernel given as a Gram function K(x1, x2) on R^d, read off on
    the pairs x = √d·e1, x' = √d·(t·e1 + √(1−t²)·e2)."""
    def g(t):
        t = np.asarray(t, dtype=np.float64)
        x0 = np.zeros((1, d))
        x0[0, 0] = math.sqrt(d)
        xt = np.zeros((t.size, d))
        xt[:, 0] = math.sqrt(d) * t
        xt[:, 1] = math.sqrt(d) * np.sqrt(np.clip(1 - t * t, 0, None))
        return np.asarray(kernel_fn(x0, xt))[0]
    return g


def mlp_profile(arch, kind: str = "ntk") -> Callable[[np.ndarray], np.ndarray]:
    """g(t) of a bias-free ``iw.MLP`` on the sphere of radius √d, from the normalised dual h
    (h(1) = 1 keeps every variance at 1): Σ ← h(Σ), Θ ← h(Σ) + h'(Σ)·Θ, from Σ = Θ = t."""
    from infwidth.architectures.activations import dual, dual_derivative

    if arch.b_std != 0 or arch.W_std is not None:
        raise ValueError("mlp_profile needs b_std=0 and the default W_std")

    def g(t):
        s = np.clip(np.asarray(t, dtype=np.float64), -1, 1)
        th = s
        for _ in range(arch.depth):
            s, th = dual(arch.activation, s), dual(arch.activation, s) \
                + dual_derivative(arch.activation, s) * th
        return s if kind == "nngp" else th
    return g


def find_peaks(m: np.ndarray, y: np.ndarray, err: np.ndarray | None = None,
               k: float = 2.0) -> list[int]:
    """Sample sizes of local maxima of a learning curve that rise above the lowest point on
    their left by more than ``k``·err (err = 0 if None)."""
    y = np.asarray(y, dtype=np.float64)
    err = np.zeros_like(y) if err is None else np.asarray(err, dtype=np.float64)
    out = []
    for i in range(1, len(y) - 1):
        if y[i] >= y[i - 1] and y[i] > y[i + 1] and y[i] - y[: i].min() > k * err[i] \
                and y[i] - y[i:].min() > k * err[i]:
            out.append(int(m[i]))
    return out


def zonal_target(degree: int, d: int, n_centres: int, seed: int
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """A unit-variance degree-``degree`` harmonic f(x) = c·Σ_j P_k(⟨x, u_j⟩/d), u_j random on
    the sphere; c normalises E[f²] = c²·Σ_{j,j'} P_k(⟨u_j, u_j'⟩/d)/N(d, k) to 1 exactly."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((n_centres, d))
    u *= math.sqrt(d) / np.linalg.norm(u, axis=1, keepdims=True)
    gram = legendre_d(degree, d, np.clip(u @ u.T / d, -1, 1))
    c = math.sqrt(n_harmonics(d, degree) / gram.sum())
    return lambda x: c * legendre_d(degree, d, np.clip(x @ u.T / d, -1, 1)).sum(1)


def mp_edges(gamma: float) -> tuple[float, float]:
    """(λ−, λ+) = (1 ∓ √γ)² of the Marchenko–Pastur law with aspect ratio γ, variance 1."""
    return (1 - math.sqrt(gamma)) ** 2, (1 + math.sqrt(gamma)) ** 2


def mp_density(x, gamma: float) -> np.ndarray:
    """Density of the non-zero eigenvalues of W = ΦᵀΦ/m (Φ: m × N, i.i.d. unit-variance
    entries, γ = N/m), normalised to integrate to 1 over its support [λ−, λ+]:
    ρ(x) = √((λ+ − x)(x − λ−)) / (2π·γ·x) / min(1, 1/γ)."""
    lo, hi = mp_edges(gamma)
    x = np.asarray(x, dtype=np.float64)
    inside = (x > lo) & (x < hi)
    out = np.zeros_like(x)
    xi = x[inside]
    out[inside] = np.sqrt((hi - xi) * (xi - lo)) / (2 * math.pi * gamma * xi)
    return out / min(1.0, 1.0 / gamma)
