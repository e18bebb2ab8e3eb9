"""The deep limit of a residual "gradient layer" network (Avelin & Karlsson, JMLR 2022).

Each layer is x ↦ x − h·∇g(x) with a random convex g; the layers are drawn i.i.d. and
(1/n)·u_n(x), with u_n the n-layer map, converges to a limit that does not depend on x.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from infwidth.validation import check_int

__all__ = ["GradientLayerOrbits", "gradient_layer_limit", "gradient_layer_orbits"]


@dataclass(frozen=True)
class GradientLayerOrbits:
    """(1/n)·u_n(x) of i.i.d. gradient layers, recorded at n = ``n``.

    u_over_n: (n_seeds, n_starts, len(n), dim); limit: the predicted deep limit v;
    spread: max over start pairs of ‖u_n(x) − u_n(y)‖/n, (n_seeds, len(n)); bound:
    max ‖x − y‖/n (the layers are 1-Lipschitz, so spread <= bound).
    """
    n: np.ndarray
    u_over_n: np.ndarray
    limit: np.ndarray
    spread: np.ndarray
    bound: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """Tidy: one row per (seed, n) with the error to the limit (mean over starts)."""
        err = np.linalg.norm(self.u_over_n - self.limit, axis=-1).mean(1)
        seed_mean = self.u_over_n.mean(axis=(0, 1))  # (len(n), dim)
        S, N = err.shape
        return pd.DataFrame({
            "seed": np.repeat(np.arange(S), N), "n": np.tile(self.n, S),
            "error_to_limit": err.ravel(), "spread_x": self.spread.ravel(),
            "bound": np.tile(self.bound, S),
            "seed_spread": np.tile(np.linalg.norm(self.u_over_n.mean(1) - seed_mean,
                                                  axis=-1).std(0), S)})


def gradient_layer_limit(dim: int, n_terms: int, drift: float, step: float) -> np.ndarray:
    """Deep limit v = lim (1/n)·u_n(x) for :func:`gradient_layer_orbits`' layers.

    With ‖x‖ → ∞ along v each sigmoid σ(a_j·x + b_j) saturates to 1{a_j·v > 0}, so
    v = −h·(μ̄ + Σ_j E[1{a_j·v̂ > 0} a_j]) = −h·(μ̄ + κ v̂), κ = √m·E|u_1|/2 with u uniform on
    the unit sphere, E|u_1| = Γ(d/2)/(√π·Γ((d+1)/2)). Its solution: v = −h·(|μ̄| − κ)·μ̂ if
    |μ̄| > κ, else v = 0 (the softplus barrier holds the orbit). μ̄ = drift·e_1.
    """
    dim = check_int("dim", dim, 1)
    n_terms = check_int("n_terms", n_terms, 1)
    e_abs = math.exp(math.lgamma(dim / 2) - math.lgamma((dim + 1) / 2)) / math.sqrt(math.pi)
    kappa = math.sqrt(n_terms) * e_abs / 2
    v = np.zeros(dim)
    v[0] = -step * max(0.0, abs(drift) - kappa) * np.sign(drift)
    return v


def gradient_layer_orbits(x0, n_layers: int, key: jax.Array, *, n_seeds: int = 8,
                          n_terms: int = 8, drift: float = 1.0, noise: float = 0.5,
                          step: float = 1.0, n_points: int = 40) -> GradientLayerOrbits:
    """Orbits of u_n = T_n ∘ … ∘ T_1, T_k(x) = x − h·∇g_k(x), g_k i.i.d. random convex:

        g_k(x) = Σ_{j≤m} softplus(a_j·x + b_j) + μ_k·x,

    a_j uniform on the sphere of radius 1/√m, b_j ~ N(0, 1), μ_k = drift·e_1 + noise·N(0, I/d).
    ∇²g_k ⪯ Σ_j‖a_j‖²/4·I = I/4, so T_k is 1-Lipschitz for 0 < h ≤ 8 (gradient step with
    h ≤ 2/L). By the (non-commutative) ergodic theorem (1/n)·u_n(x) converges a.s., and the
    limit is independent of x since ‖u_n(x) − u_n(y)‖ ≤ ‖x − y‖. Layer k of seed s draws from
    ``fold_in(fold_in(key, s), k)``; every start x of a seed sees the same layers.
    Recorded at n_points roughly log-spaced n in [1, n_layers].

    Example:
        >>> o = gradient_layer_orbits(np.zeros((2, 4)), 100, jax.random.key(0), n_seeds=2)
        >>> o.u_over_n.shape[:2], bool(np.all(o.spread <= o.bound + 1e-12))
        ((2, 2), True)
    """
    x0 = np.asarray(x0, dtype=np.float64)
    if x0.ndim != 2 or x0.shape[0] < 1 or x0.shape[1] < 1 or not np.all(np.isfinite(x0)):
        raise ValueError(f"x0 must be a finite array of shape (n_starts, dim), got {x0.shape}")
    n_layers = check_int("n_layers", n_layers, 1)
    n_seeds = check_int("n_seeds", n_seeds, 1)
    n_terms = check_int("n_terms", n_terms, 1)
    n_points = check_int("n_points", n_points, 2)
    if not (np.isfinite(step) and 0 < step <= 8):
        raise ValueError(f"step must lie in (0, 8] (1-Lipschitz layers), got {step!r}")
    if not (np.isfinite(drift) and np.isfinite(noise) and noise >= 0):
        raise ValueError(f"drift must be finite and noise finite and >= 0, got {drift}, {noise}")
    d = x0.shape[1]
    grid = np.unique(np.round(np.geomspace(1, n_layers, n_points)).astype(int))
    mu_bar = jnp.zeros(d).at[0].set(drift)

    def layer(x, k, key):  # x (n_starts, d); the same layer for every start
        z = jax.random.normal(jax.random.fold_in(key, k), ((n_terms + 1) * (d + 1),))
        a = z[:n_terms * d].reshape(n_terms, d)
        a = a / jnp.linalg.norm(a, axis=1, keepdims=True) / math.sqrt(n_terms)
        b = z[n_terms * d:n_terms * (d + 1)]
        mu = mu_bar + noise / math.sqrt(d) * z[n_terms * (d + 1):n_terms * (d + 1) + d]
        return x - step * (jax.nn.sigmoid(x @ a.T + b) @ a + mu)

    @jax.jit
    def advance(x, start, stop, key):
        return jax.lax.fori_loop(start, stop, lambda k, x: layer(x, k, key), x)

    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(n_seeds))
    adv = jax.jit(jax.vmap(advance, in_axes=(0, None, None, 0)))
    x = jnp.broadcast_to(jnp.asarray(x0), (n_seeds,) + x0.shape)
    out, prev = [], 0
    for n in grid:
        x = adv(x, prev + 1, int(n) + 1, keys)
        out.append(np.asarray(x) / n)
        prev = int(n)
    U = np.stack(out, axis=2)  # (S, P, N, d)
    diff = U[:, :, None] - U[:, None, :]
    spread = np.linalg.norm(diff, axis=-1).max(axis=(1, 2))
    diam = np.linalg.norm(x0[:, None] - x0[None, :], axis=-1).max()
    return GradientLayerOrbits(grid, U, gradient_layer_limit(d, n_terms, drift, step), spread,
                               diam / grid)
