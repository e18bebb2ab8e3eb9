"""Dual activations: h(t) = W²·E[φ(u)φ(v)] for a unit-variance Gaussian pair of correlation t.

With W = ``default_w_std(activation)`` the dual is normalised, h(1) = 1 (docs/theory.md §2):

- relu (W² = 2): h(t) = (√(1−t²) + (π − θ)·t)/π,  h'(t) = (π − θ)/π,  θ = arccos t.
- erf  (W² = 1/E[erf(z)²] = π / (2·arcsin(2/3))): h(t) = arcsin(2t/3) / arcsin(2/3),
  h'(t) = (2/3)/(arcsin(2/3)·√(1 − 4t²/9)).

:func:`gaussian_dual` is the one implementation of these formulas, for a general 2×2
covariance, in numpy or ``jax.numpy``; every kernel engine of infwidth calls it, and
:func:`dual` / :func:`dual_derivative` are its normalised unit-variance case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["ACTIVATIONS", "default_w_std", "dual", "dual_derivative", "gaussian_dual"]

ACTIVATIONS = ("relu", "erf")

_ERF_SQ = 2.0 / math.pi * math.asin(2.0 / 3.0)  # E[erf(z)²], z ~ N(0, 1)


def _check(activation: str) -> None:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")


def default_w_std(activation: str) -> float:
    """1/√E[φ(z)²]: the weight std that keeps unit variance, so that h(1) = 1."""
    _check(activation)
    return math.sqrt(2.0) if activation == "relu" else 1.0 / math.sqrt(_ERF_SQ)


def dual(activation: str, t: ArrayLike) -> np.ndarray:
    """Normalised dual h(t) = E[φ(u)φ(v)]/E[φ(u)²] at unit variances (h(1) = 1), for
    correlations t, clipped to [−1, 1] (docs/theory.md §2)."""
    t = np.clip(np.asarray(t, dtype=np.float64), -1.0, 1.0)
    return gaussian_dual(activation, 1.0, 1.0, t=t)[0] / _diagonal(activation)


def dual_derivative(activation: str, t: ArrayLike) -> np.ndarray:
    """h'(t) = E[φ'(u)φ'(v)]/E[φ(u)²] of the normalised dual (the NTK's derivative kernel),
    t clipped to [−1, 1] (docs/theory.md §2)."""
    t = np.clip(np.asarray(t, dtype=np.float64), -1.0, 1.0)
    return gaussian_dual(activation, 1.0, 1.0, t=t)[1] / _diagonal(activation)


def _diagonal(activation: str) -> float:
    """E[φ(z)²], z ~ N(0, 1): the dual at t = 1 (1/2 for relu, exactly)."""
    return float(gaussian_dual(activation, 1.0, 1.0, t=1.0)[0])


def gaussian_dual(activation: str, q1: ArrayLike, q2: ArrayLike, s: ArrayLike | None = None,
                  *, t: ArrayLike | None = None, xp: Any = np) -> tuple[Any, Any]:
    """(K, K̇) = (E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for (u, v) ~ N(0, [[q1, s], [s, q2]]), unscaled
    (no W²), docs/theory.md §2. Give the covariance ``s`` or the correlation ``t`` = s/√(q1q2).

    With r = √(q1q2) and D = q1q2 − s² (computed as (r − s)(r + s), or r²(1 − t)(1 + t): no
    cancellation near correlation ±1):

    - relu (arc-cosine kernels of degree 1 and 0): θ = atan2(√D, s),
      K̇ = 1/2 − θ/(2π),  K = √D/(2π) + K̇·s;
    - erf (arcsine kernel): Δ = (1 + 2q1)(1 + 2q2) − 4s² = 1 + 2(q1 + q2) + 4D,
      K = (2/π)·atan2(2s, √Δ) = (2/π)·arcsin(2s/√((1 + 2q1)(1 + 2q2))),  K̇ = (4/π)/√Δ.

    The angle is θ = atan2(√D, s), not arccos(s/r): exact 0 on the diagonal (q1 = q2 = s) and
    accurate to a few ulps near it, where arccos of a rounded correlation costs ~√ε. relu
    clamps D at 0 (round-off) and takes θ = π/2 at a zero variance (neural-tangents'
    convention); erf uses D as it is; ``t`` is not clipped. ``xp`` is the array module: numpy
    (float64), or ``jax.numpy`` inside jitted code. The diagonal E[φ(u)²] is
    ``gaussian_dual(a, q, q, q)[0]`` (q/2 for relu).
    """
    _check(activation)
    if (s is None) == (t is None):
        raise TypeError("give exactly one of s (the covariance) and t (the correlation)")
    c = s if t is None else t
    if xp is np:
        q1, q2, c = (np.asarray(a, dtype=np.float64) for a in (q1, q2, c))
    r = xp.sqrt(q1 * q2)
    # (c, unit, scale) = (s, r, 1) or (t, 1, r): s = scale·c and D = scale²·(unit² − c²).
    unit, scale = (r, 1.0) if t is None else (1.0, r)
    d = (unit - c) * (unit + c)
    if activation == "relu":
        root = xp.sqrt(xp.maximum(d, 0.0))
        theta = xp.where((root == 0) & (c == 0), 0.5 * math.pi, xp.arctan2(root, c))
        kd = 0.5 - theta / (2.0 * math.pi)
        k = scale * (root / (2.0 * math.pi) + kd * c)
        if t is not None:
            kd = xp.broadcast_to(kd, k.shape)
        return k, kd
    dd = d if t is None else xp.where(d == 0, 0.0, (scale * scale) * d)  # ∞·0 at t = ±1
    delta = 1.0 + 2.0 * (q1 + q2) + 4.0 * dd
    root = xp.sqrt(delta)
    return 2.0 / math.pi * xp.arctan2(2.0 * (scale * c), root), 4.0 / math.pi / root


# --------------------------------------------------------------------------------------
# Minimal registry shim (relu, erf) for the layer specs; helper `act`'s registry replaces it.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActivationSpec:
    """A registered activation: its name, normaliser and neural-tangents layer."""

    name: str

    @property
    def w_std(self) -> float:
        return default_w_std(self.name)

    def gaussian_dual(self, q1: ArrayLike, q2: ArrayLike, s: ArrayLike, xp: Any = np):
        return gaussian_dual(self.name, q1, q2, s, xp=xp)

    def stax(self):
        from infwidth._nt_compat import load

        _, stax = load()
        return stax.Relu() if self.name == "relu" else stax.Erf()


def get_activation(activation: Any) -> ActivationSpec:
    """Resolve a registered name or pass an :class:`ActivationSpec` through."""
    if isinstance(activation, ActivationSpec):
        return activation
    if not isinstance(activation, str):
        raise TypeError(f"activation must be one of {sorted(ACTIVATIONS)} or an "
                        f"ActivationSpec, got {activation!r}")
    _check(activation)
    return ActivationSpec(activation)
