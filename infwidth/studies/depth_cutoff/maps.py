"""Deep limits and the depth cut-off of random networks (Avelin & Karlsson, JMLR 2022).

Mean field (infinite width) of the MLP ``h_1 = σ_w/√d·W_1 x + σ_b b_1``,
``h_{ℓ+1} = σ_w/√n·W_{ℓ+1} φ(h_ℓ) + σ_b b_{ℓ+1}`` (W, b standard normal; neural-tangents'
"ntk" parameterisation of ``Dense(W_std=σ_w, b_std=σ_b)``), with u = √q·z, z ~ N(0, 1):

- length map       q_{ℓ+1} = σ_w²·E[φ(√q_ℓ z)²] + σ_b², fixed point q*;
- correlation map  c_{ℓ+1} = (σ_w²·E[φ(u_1)φ(u_2)] + σ_b²) / q_{ℓ+1},  Cov(u) = q·[[1, c], [c, 1]];
- χ1  = σ_w²·E[φ'(√q* z)²]  (slope of the correlation map at c = 1),
  χ_c = σ_w²·E[φ'(u_1)φ'(u_2)] at (q*, c*) (= χ1 when c* = 1),
  χ_q = σ_w²·d/dq E[φ(√q z)²] at q* = σ_w²·E[φ'² + φφ''];
- depth scales ξ_c = −1/log χ_c, ξ_q = −1/log χ_q (∞ when the slope is 1).

Every φ, φ' and closed-form dual comes from the activation registry
(:mod:`infwidth.architectures.activations`): closed forms for "relu" (arc-cosine) and "erf"
(arcsine); tanh is a registry ``numerical_activation`` (its φ, φ'), and its one-input
expectations use 1-D Gauss–Hermite (256 nodes) and its two-input ones Mehler's formula
E[φ(u_1)φ(u_2)] = Σ_k c^k α_k(q_1) α_k(q_2) with the Hermite coefficients α_k(q) =
E[φ(√q z) He_k(z)]/√k! from 1-D Gauss–Hermite, 128 terms: error < 1e-12 for q <= 1.5 and
~2e-9 at q = 3, c = 1. (2-D Gauss–Hermite, ``method="quadrature"``, converges much more
slowly for tanh at large q, where tanh(√q z) tends to a step: with 64 nodes per axis its error
is ~3e-9 at q = 1 and ~2e-5 at q = 3.)

Edge cases (all documented in :func:`mean_field`):

- relu, σ_w² < 2: q* = σ_b²/(1 − σ_w²/2), c* = 1, χ_c = χ1 = σ_w²/2 when σ_b² > 0. With
  σ_b² = 0 the normalised map does not depend on q (positive homogeneity): it is the
  arc-cosine map with slope 1 at c = 1, so c_ℓ → 1 only polynomially, χ_c = 1 and ξ_c = ∞
  for every σ_w². At (2, 0): 1 − c_ℓ ≈ 9π²/(2ℓ²).
- relu, σ_w² > 2 (or σ_w² = 2 with σ_b² > 0): q_ℓ grows without bound, q* = ∞; the bias
  becomes negligible and the correlation map tends to the σ_b² = 0 one: χ_c = 1, ξ_c = ∞.
- relu at (2, 0): every q is fixed; q* is reported as nan.
- tanh/erf, σ_b² = 0 and σ_w²·φ'(0)² ≤ 1: q* = 0; as q → 0 the net is linear and the
  normalised correlation map tends to the identity: c* = nan, χ_c = 1, ξ_c = ∞.
- χ1 = 1 (edge of chaos): ξ_c = ∞ (correlations converge polynomially).

The cut-off detector (:func:`cutoff_depth`) completes this module. Finite random networks
and their depth profiles live in :mod:`infwidth.studies.depth_cutoff.profiles`, and the residual
gradient-layer deep limit in :mod:`infwidth.studies.depth_cutoff.deep_limit`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy import optimize

from infwidth.architectures.activations import (
    ActivationSpec,
    gauss_hermite,
    get_activation,
    hermite_functions,
    numerical_activation,
)
from infwidth.validation import check_int

__all__ = [
    "ACTIVATIONS", "MeanField", "Cutoff",
    "length_map", "correlation_map", "q_fixed_point", "chi1", "mean_field", "edge_of_chaos",
    "phase_diagram", "kernel_map", "mean_field_kernels", "nt_kernels", "cutoff_depth",
]

ACTIVATIONS = ("relu", "erf", "tanh")  # the activations whose edge cases this study treats


def _tanh_derivative(u):
    return 1.0 - jnp.tanh(u) ** 2


def _tanh(deg: int = 32) -> ActivationSpec:
    return numerical_activation(jnp.tanh, name="tanh", deg=deg, derivative=_tanh_derivative)


_TANH = _tanh()


def _spec(activation: str) -> ActivationSpec:
    return _TANH if activation == "tanh" else get_activation(activation)
_QUAD_DEG = 256  # Gauss–Hermite nodes: 1-D expectations, and per axis for method="quadrature"
_HERMITE_TERMS = 128  # terms of the Mehler series for tanh


# ----------------------------------------------------------------------------- validation
def _check_act(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


def _check_sigmas(sigma_w2: float, sigma_b2: float) -> tuple[float, float]:
    for name, v in (("sigma_w2", sigma_w2), ("sigma_b2", sigma_b2)):
        if not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}")
    if sigma_w2 <= 0:
        raise ValueError(f"sigma_w2 (the weight variance σ_w²) must be > 0, got {sigma_w2!r}")
    if sigma_b2 < 0:
        raise ValueError(f"sigma_b2 (the bias variance σ_b²) must be >= 0, got {sigma_b2!r}")
    return float(sigma_w2), float(sigma_b2)



def _check_x(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (n >= 2, dim), got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("x must be finite (found NaN or inf)")
    return x


# ------------------------------------------------------------- Gaussian expectations
_gh = gauss_hermite  # nodes and weights (Σ w = 1) for E[f(z)], z ~ N(0, 1)


def _phis(activation: str, xp) -> tuple[Callable, Callable]:
    """(φ, φ') for numpy (xp=np) or jax (xp=jnp), from the registry."""
    spec = _spec(activation)
    return (lambda u: spec.phi(u, xp)), (lambda u: spec.dphi(u, xp))


def _quad_pair(f: Callable, q1, q2, c, deg: int, xp):
    """E[f(u_1) f(u_2)], u_1 = √q1 z1, u_2 = √q2 (c z1 + √(1−c²) z2), on a deg² grid."""
    z, w = _gh(deg)
    q1, q2, c = (xp.asarray(a)[..., None, None] for a in (q1, q2, c))
    s = xp.sqrt(xp.clip(1.0 - c * c, 0.0, None))
    z1, z2 = z[:, None], z[None, :]
    vals = f(xp.sqrt(q1) * z1) * f(xp.sqrt(q2) * (c * z1 + s * z2))
    return xp.sum(vals * (w[:, None] * w[None, :]), axis=(-2, -1))


def _quad_one(f: Callable, q, deg: int, xp):
    z, w = _gh(deg)
    return xp.sum(f(xp.sqrt(xp.asarray(q)[..., None]) * z) * w, axis=-1)


@functools.lru_cache(maxsize=4)
def _hermite_basis(n_terms: int, deg: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z_i and w_i·ψ_k(z_i), ψ_k = He_k/√k! (orthonormal under N(0, 1)), (n_terms, deg)."""
    z, w = _gh(deg)
    return z, hermite_functions(z, n_terms - 1) * w


def _mehler(f: Callable, q1, q2, c, xp, n_terms: int = _HERMITE_TERMS):
    """E[f(u_1) f(u_2)] = Σ_k c^k α_k(q1) α_k(q2), α_k(q) = E[f(√q z) ψ_k(z)] (Mehler's formula;
    α_k by 1-D Gauss–Hermite with 2·n_terms nodes)."""
    z, pw = _hermite_basis(n_terms, 2 * n_terms)
    q1, q2, c = (xp.asarray(a, dtype=float) for a in (q1, q2, c))
    a1 = f(xp.sqrt(q1)[..., None] * z) @ pw.T
    a2 = f(xp.sqrt(q2)[..., None] * z) @ pw.T
    out = a1[..., -1] * a2[..., -1] + 0.0 * c
    if xp is np:
        for k in range(n_terms - 2, -1, -1):  # Horner in c
            out = out * c + a1[..., k] * a2[..., k]
        return out
    return jax.lax.fori_loop(1, n_terms, lambda i, o: o * c + a1[..., -1 - i] * a2[..., -1 - i],
                             out)


def _e_pair(which: int, activation, q1, q2, c, method="auto", deg=_QUAD_DEG, xp=np):
    """E[φ(u_1)φ(u_2)] (``which`` = 0) or E[φ'(u_1)φ'(u_2)] (1) for Var u_i = q_i, Corr = c:
    the Gaussian dual in closed form (relu, erf), else Mehler's series or quadrature."""
    c = xp.clip(c, -1.0, 1.0)
    if method == "auto" and _spec(activation).exact:
        return _spec(activation).gaussian_dual(q1, q2, t=c, xp=xp)[which]
    phi = _phis(activation, xp)[which]
    if method == "auto":
        return _mehler(phi, q1, q2, c, xp)
    return _quad_pair(phi, q1, q2, c, deg, xp)


def _e_phiphi(activation, q1, q2, c, method="auto", deg=_QUAD_DEG, xp=np):
    """E[φ(u_1)φ(u_2)] for Var u_i = q_i, Corr = c."""
    return _e_pair(0, activation, q1, q2, c, method, deg, xp)


def _e_dphidphi(activation, q1, q2, c, method="auto", deg=_QUAD_DEG, xp=np):
    """E[φ'(u_1)φ'(u_2)]."""
    return _e_pair(1, activation, q1, q2, c, method, deg, xp)


def _e_phi2(activation, q, method="auto", deg=_QUAD_DEG):
    """E[φ(√q z)²]."""
    q = np.asarray(q, dtype=np.float64)
    if method == "auto" and _spec(activation).exact:
        return _spec(activation).gaussian_dual(q, q, t=1.0)[0]
    phi = _phis(activation, np)[0]
    return _quad_one(lambda u: phi(u) ** 2, q, deg, np)


def _e_dphi2(activation, q, method="auto", deg=_QUAD_DEG):
    """E[φ'(√q z)²]."""
    q = np.asarray(q, dtype=np.float64)
    if method == "auto" and _spec(activation).exact:
        return _spec(activation).gaussian_dual(q, q, t=1.0)[1]
    dphi = _phis(activation, np)[1]
    return _quad_one(lambda u: dphi(u) ** 2, q, deg, np)


def _d_length(activation, q, deg=_QUAD_DEG):
    """d/dq E[φ(√q z)²] = E[φ'² + φφ''] (Gaussian integration by parts)."""
    q = np.asarray(q, dtype=np.float64)
    if activation == "relu":
        return 0.5 + 0.0 * q
    if activation == "erf":
        return 4 / np.pi / ((1 + 2 * q) * np.sqrt(1 + 4 * q))
    # = E[z·φ(√q z)·φ'(√q z)]/√q (differentiating under the integral), q > 0.
    phi, dphi = _phis(activation, np)
    z, w = _gh(deg)
    u = np.sqrt(q)[..., None] * z
    return np.sum(z * phi(u) * dphi(u) * w, axis=-1) / np.sqrt(q)


# ----------------------------------------------------------------------- scalar maps
def length_map(q, activation: str, sigma_w2: float, sigma_b2: float, *, method: str = "auto",
               deg: int = _QUAD_DEG) -> np.ndarray:
    """q_{ℓ+1} = σ_w²·E[φ(√q_ℓ z)²] + σ_b² (``method="quadrature"`` forces Gauss–Hermite).

    Example:
        >>> float(length_map(1.0, "relu", 2.0, 0.0))
        1.0
    """
    _check_act(activation)
    sigma_w2, sigma_b2 = _check_sigmas(sigma_w2, sigma_b2)
    if method not in ("auto", "quadrature"):
        raise ValueError(f"method must be 'auto' or 'quadrature', got {method!r}")
    return sigma_w2 * _e_phi2(activation, q, method, deg) + sigma_b2


def correlation_map(c, activation: str, sigma_w2: float, sigma_b2: float, q=None, *,
                    method: str = "auto", deg: int = _QUAD_DEG) -> np.ndarray:
    """c_{ℓ+1} = (σ_w²·E[φ(u_1)φ(u_2)] + σ_b²) / (σ_w²·E[φ(√q z)²] + σ_b²), Var u_i = q.

    ``q`` defaults to the fixed point q*. Where q* is 0, ∞ or undefined (see :func:`mean_field`)
    the limit of the normalised map is used: relu with σ_b² = 0 does not depend on q; relu
    with unbounded q uses the σ_b² = 0 map; tanh/erf with q* = 0 is the identity.

    Example:
        >>> round(float(correlation_map(0.0, "relu", 2.0, 0.0)), 6)   # 1/π
        0.31831
    """
    _check_act(activation)
    sigma_w2, sigma_b2 = _check_sigmas(sigma_w2, sigma_b2)
    c = np.asarray(c, dtype=np.float64)
    if np.any(np.abs(c) > 1 + 1e-12) or not np.all(np.isfinite(c)):
        raise ValueError("c must be a finite correlation in [-1, 1]")
    if q is None:
        q = q_fixed_point(activation, sigma_w2, sigma_b2)
        if activation == "relu" and (sigma_b2 == 0 or not np.isfinite(q)):
            q, sigma_b2 = 1.0, 0.0
        elif q == 0.0:
            return c.copy()
    q = np.asarray(q, dtype=np.float64)
    num = sigma_w2 * _e_phiphi(activation, q, q, c, method, deg) + sigma_b2
    return num / length_map(q, activation, sigma_w2, sigma_b2, method=method, deg=deg)


def _dphi0_sq(activation: str) -> float:
    """φ'(0)² (relu: E[φ'(z)²] = 1/2, φ' jumps at 0)."""
    if activation == "relu":
        return 0.5
    return float(_phis(activation, np)[1](np.zeros(1))[0]) ** 2


def q_fixed_point(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """The stable fixed point q* of the length map (∞ when q_ℓ diverges; see module doc)."""
    _check_act(activation)
    sigma_w2, sigma_b2 = _check_sigmas(sigma_w2, sigma_b2)
    if activation == "relu":
        if sigma_w2 < 2:
            return sigma_b2 / (1 - sigma_w2 / 2)
        return math.nan if (sigma_w2 == 2 and sigma_b2 == 0) else math.inf
    f = lambda q: length_map(q, activation, sigma_w2, sigma_b2) - q  # noqa: E731
    slope0 = sigma_w2 * _dphi0_sq(activation)
    if sigma_b2 == 0:
        if slope0 <= 1:
            return 0.0
        # E[φ²] <= min(1, φ'(0)² q): bracket q* in (0, σ_w²].
        lo = next((v for v in 10.0 ** np.arange(-300, 1, 10) * sigma_w2 if f(v) > 0), None)
        if lo is None:  # slope at 0 is 1 to round-off: no positive fixed point resolvable
            return 0.0
        return float(optimize.brentq(f, lo, sigma_w2, xtol=1e-300, rtol=1e-15, maxiter=500))
    return float(optimize.brentq(f, sigma_b2, sigma_w2 + sigma_b2, xtol=1e-300, rtol=1e-15,
                                 maxiter=500))


def chi1(activation: str, sigma_w2: float, sigma_b2: float) -> float:
    """χ1 = σ_w²·E[φ'(√q* z)²] (σ_w²·φ'(0)² when q* = 0, σ_w²/2 for relu)."""
    q = q_fixed_point(activation, sigma_w2, sigma_b2)
    if activation == "relu":
        return sigma_w2 / 2
    return float(sigma_w2 * _e_dphi2(activation, q))


@dataclass(frozen=True)
class MeanField:
    """Mean-field summary at (σ_w², σ_b²); see :func:`mean_field` for the edge cases."""
    activation: str
    sigma_w2: float
    sigma_b2: float
    q_star: float
    c_star: float
    chi1: float
    chi_c: float
    chi_q: float
    xi_q: float
    xi_c: float
    phase: str


def _xi(chi: float) -> float:
    return -1.0 / math.log(chi) if 0 < chi < 1 else math.inf


def mean_field(activation: str, sigma_w2: float, sigma_b2: float) -> MeanField:
    """q*, c*, χ1, χ_c, χ_q, ξ_q = −1/log χ_q, ξ_c = −1/log χ_c and the phase.

    phase: "ordered" (χ1 < 1, c* = 1), "chaotic" (χ1 > 1, c* < 1), "critical" (χ1 = 1),
    "unbounded" (relu, q* = ∞) or "vanishing" (q* = 0). Edge cases in the module docstring.

    Example:
        >>> mf = mean_field("tanh", 0.8, 0.05)
        >>> mf.phase, round(mf.xi_c, 3) == round(-1 / math.log(mf.chi1), 3)
        ('ordered', True)
    """
    _check_act(activation)
    sigma_w2, sigma_b2 = _check_sigmas(sigma_w2, sigma_b2)
    q = q_fixed_point(activation, sigma_w2, sigma_b2)
    ch1 = chi1(activation, sigma_w2, sigma_b2)
    if activation == "relu":
        ordered_relu = sigma_w2 < 2 and sigma_b2 > 0
        chi_c = ch1 if ordered_relu else 1.0
        phase = ("ordered" if ordered_relu else "vanishing" if sigma_w2 < 2
                 else "critical" if sigma_b2 == 0 and sigma_w2 == 2 else "unbounded")
        chi_q = ch1  # the length map is linear: q' = σ_w²q/2 + σ_b²
        return MeanField(activation, sigma_w2, sigma_b2, q, 1.0, ch1, chi_c, chi_q,
                         _xi(chi_q), _xi(chi_c), phase)
    if q == 0.0:
        return MeanField(activation, sigma_w2, sigma_b2, 0.0, math.nan, ch1, 1.0, ch1,
                         _xi(ch1), math.inf, "vanishing")
    chi_q = float(sigma_w2 * _d_length(activation, q))
    if abs(ch1 - 1) < 1e-13:
        return MeanField(activation, sigma_w2, sigma_b2, q, 1.0, ch1, 1.0, chi_q, _xi(chi_q),
                         math.inf, "critical")
    c_star = 1.0
    if ch1 > 1:
        f = lambda c: correlation_map(c, activation, sigma_w2, sigma_b2, q) - c  # noqa: E731
        hi = next((1 - d for d in 10.0 ** -np.arange(2, 13) if f(1 - d) < 0), None)
        lo = 0.0 if f(0.0) >= 0 else -1.0
        # no sign change above 1 − 1e-12: c* is within round-off of 1.
        c_star = 1.0 if hi is None else float(optimize.brentq(f, lo, hi, xtol=1e-15))
    chi_c = float(sigma_w2 * _e_dphidphi(activation, q, q, c_star))
    return MeanField(activation, sigma_w2, sigma_b2, q, c_star, ch1, chi_c, chi_q, _xi(chi_q),
                     _xi(chi_c), "ordered" if ch1 < 1 else "chaotic")


def edge_of_chaos(activation: str, sigma_b2) -> np.ndarray:
    """σ_w² with χ1(σ_w², σ_b²) = 1 for each σ_b² (Brent's method on χ1 − 1).

    relu: χ1 = σ_w²/2, so the curve is σ_w² = 2 for every σ_b² (with q unbounded for σ_b² > 0).

    Example:
        >>> edge_of_chaos("tanh", [0.0]).round(6).tolist()
        [1.0]
    """
    _check_act(activation)
    sb = np.atleast_1d(np.asarray(sigma_b2, dtype=np.float64))
    if np.any(~np.isfinite(sb)) or np.any(sb < 0):
        raise ValueError("sigma_b2 must be finite and >= 0")
    out = np.empty_like(sb)
    for i, b in enumerate(sb):
        if b == 0:
            # q* = 0 up to the edge and χ1 = σ_w²·φ'(0)² there; above it χ1 − 1 grows only
            # quadratically, so a root-finder resolves the edge to ~√ε. Use the closed form.
            out[i] = 1.0 / _dphi0_sq(activation)
            continue
        g = lambda w: chi1(activation, w, float(b)) - 1.0  # noqa: E731
        lo, hi = 1e-3, 1.0
        while g(hi) <= 0:
            lo, hi = hi, 2 * hi
        out[i] = optimize.brentq(g, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=200)
    return out


def phase_diagram(activation: str, sigma_w2_grid, sigma_b2_grid) -> pd.DataFrame:
    """Tidy frame of :func:`mean_field` over the (σ_w², σ_b²) grid."""
    rows = [mean_field(activation, float(w), float(b)).__dict__
            for b in np.asarray(sigma_b2_grid) for w in np.asarray(sigma_w2_grid)]
    return pd.DataFrame(rows)


# ------------------------------------------------------------ kernels against depth
def kernel_map(K, activation: str, sigma_w2: float, sigma_b2: float, *, method: str = "auto",
               deg: int = 64) -> jnp.ndarray:
    """K' = σ_w²·E[φ(u)φ(u)ᵀ] + σ_b², u ~ N(0, K): one layer of the NNGP kernel (jax).

    method "auto": closed forms (relu, erf) or the Mehler series (tanh); "quadrature": 2-D
    Gauss–Hermite with ``deg`` nodes per axis (what neural-tangents' ElementwiseNumerical does).
    """
    K = jnp.asarray(K)
    d = jnp.diagonal(K)
    q1, q2 = d[:, None], d[None, :]
    c = K / jnp.sqrt(q1 * q2)
    return sigma_w2 * _e_phiphi(activation, q1, q2, c, method, deg, jnp) + sigma_b2


def mean_field_kernels(x, depth: int, activation: str, sigma_w2: float,
                       sigma_b2: float) -> np.ndarray:
    """NNGP kernels K_1..K_depth of the pre-activations, shape (depth, n, n).

    K_1 = σ_w²·x xᵀ/dim + σ_b², K_{ℓ+1} = :func:`kernel_map` (K_ℓ); iterated by lax.scan.
    """
    x = _check_x(x)
    _check_act(activation)
    sigma_w2, sigma_b2 = _check_sigmas(sigma_w2, sigma_b2)
    depth = check_int("depth", depth, 1)
    K1 = sigma_w2 * x @ x.T / x.shape[1] + sigma_b2
    Ks = _mf_scan(jnp.asarray(K1), sigma_w2, sigma_b2, activation, depth)
    return np.concatenate([K1[None], np.asarray(Ks)], axis=0)


@functools.partial(jax.jit, static_argnames=("activation", "depth"))
def _mf_scan(K1, sigma_w2, sigma_b2, activation, depth):
    def body(K, _):
        K = kernel_map(K, activation, sigma_w2, sigma_b2)
        return K, K

    return jax.lax.scan(body, K1, None, length=depth - 1)[1]


def nt_kernels(x, depth: int, activation: str, sigma_w2: float, sigma_b2: float, *,
               deg: int = 128) -> np.ndarray:
    """The same kernels from neural-tangents: Dense, then (activation, Dense) blocks applied
    to the previous :class:`Kernel`; tanh uses ``stax.ElementwiseNumerical(jnp.tanh, deg)``
    (2-D Gauss–Hermite, deg² nodes per entry)."""
    from infwidth._nt_compat import load
    x = _check_x(x)
    _check_act(activation)
    sigma_w2, sigma_b2 = _check_sigmas(sigma_w2, sigma_b2)
    depth = check_int("depth", depth, 1)
    _, stax = load()
    dense = stax.Dense(1, W_std=math.sqrt(sigma_w2), b_std=math.sqrt(sigma_b2))
    act = (_tanh(deg) if activation == "tanh" else _spec(activation)).stax()
    block = jax.jit(stax.serial(act, dense)[2])
    k = dense[2](x, None)
    out = [np.asarray(k.nngp)]
    for _ in range(depth - 1):
        k = block(k)
        out.append(np.asarray(k.nngp))
    return np.stack(out)


@dataclass(frozen=True)
class Cutoff:
    """Cut-off depth (crossing of ``level``) and the window between the crossings of the
    window levels; nan where the curve does not cross inside the sampled depths."""
    depth: float
    window_lo: float
    window_hi: float

    @property
    def width(self) -> float:
        return self.window_hi - self.window_lo


def _first_crossing(t: np.ndarray, p: np.ndarray, level: float) -> float:
    """First ℓ where the progress p rises through level, linearly interpolated."""
    above = p >= level
    if above[0] or not above.any():
        return math.nan
    i = int(np.argmax(above))
    return float(t[i - 1] + (level - p[i - 1]) * (t[i] - t[i - 1]) / (p[i] - p[i - 1]))


def cutoff_depth(depths, values, *, level: float = 0.5, window: tuple[float, float] = (0.1, 0.9),
                 bounds: tuple[float | None, float | None] | None = (0.0, 1.0)) -> Cutoff:
    """Where a depth curve crosses ``level`` (an absolute value, default 1/2) and the window
    between its crossings of start + w·(end − start) for w in ``window``, with
    (start, end) = ``bounds`` (default (0, 1); a None entry, or bounds=None, takes the
    curve's first / last value).

    The direction is taken from the bounds (end < start: a decaying curve). The first
    crossing counts; a curve already past a threshold at its first depth gives nan for it.

    Example:
        >>> t = np.arange(100.0); y = 1 / (1 + np.exp(-(t - 40) / 5))
        >>> c = cutoff_depth(t, y); round(c.depth, 3), round(c.width / (10 * math.log(9)), 2)
        (40.0, 1.0)
    """
    t = np.asarray(depths, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    if t.ndim != 1 or y.shape != t.shape or t.size < 2:
        raise ValueError(f"depths and values must be 1-D of the same length >= 2, got "
                         f"{t.shape} and {y.shape}")
    if np.any(np.diff(t) <= 0) or not np.all(np.isfinite(t)):
        raise ValueError("depths must be finite and strictly increasing")
    if np.any(np.isnan(y)):
        raise ValueError("values contain NaN")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    if len(window) != 2 or not 0.0 < window[0] < window[1] < 1.0:
        raise ValueError(f"window must be (lo, hi) with 0 < lo < hi < 1, got {window!r}")
    start, end = (None, None) if bounds is None else bounds
    start = float(y[0] if start is None else start)
    end = float(y[-1] if end is None else end)
    if not end != start:
        raise ValueError(f"bounds must have end != start, got {(start, end)}")
    p = (y - start) / (end - start)
    return Cutoff(_first_crossing(t, p, (level - start) / (end - start)),
                  _first_crossing(t, p, window[0]), _first_crossing(t, p, window[1]))
