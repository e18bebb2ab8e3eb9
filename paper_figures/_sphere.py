"""Figure-6 helpers for dot-product kernels on the sphere: kernel profiles g(t), zonal
targets, peak finding and the Marchenko–Pastur law (not part of the infwidth library).

Conventions: x uniform on the sphere of radius √d in R^d, t = ⟨x, x'⟩/d, and a dot-product
kernel K(x, x') = g(t). The harmonics themselves — P_k (``legendre``, P_k(1) = 1), N(d, k)
(``harmonic_count``), the addition theorem and Funk–Hecke (``funk_hecke``) — live in
:mod:`infwidth.eigenspaces.harmonics` (``docs/theory.md`` §3).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from infwidth.eigenspaces.harmonics import harmonic_count, legendre

__all__ = ["zonal_target", "mp_density", "mp_edges", "kernel_profile", "mlp_profile",
           "find_peaks"]


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
    gram = legendre(degree, d, np.clip(u @ u.T / d, -1, 1))
    c = math.sqrt(harmonic_count(d, degree) / gram.sum())
    return lambda x: c * legendre(degree, d, np.clip(x @ u.T / d, -1, 1)).sum(1)


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
