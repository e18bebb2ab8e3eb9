"""Dual activations: h(t) = W²·E[φ(u)φ(v)] for a unit-variance Gaussian pair of correlation t.

With W = ``default_w_std(activation)`` the dual is normalised, h(1) = 1 (``theory.md`` §2):

- relu (W² = 2): h(t) = (√(1−t²) + (π − arccos t)·t)/π,  h'(t) = (π − arccos t)/π.
- erf  (W² = 1/E[erf(z)²] = π / (2·arcsin(2/3))): h(t) = arcsin(2t/3) / arcsin(2/3),
  h'(t) = (2/3)/(arcsin(2/3)·√(1 − 4t²/9)).

``gaussian_dual`` gives the same expectations for a general 2×2 covariance (used by the
reference tree recursion in :mod:`infwidth.kernels`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

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


def dual(activation: str, t):
    """Normalised dual activation h(t), h(1) = 1, for correlations t ∈ [−1, 1]."""
    _check(activation)
    t = np.clip(np.asarray(t, dtype=np.float64), -1.0, 1.0)
    if activation == "relu":
        return (np.sqrt(1.0 - t * t) + (np.pi - np.arccos(t)) * t) / np.pi
    return np.arcsin(2.0 * t / 3.0) / math.asin(2.0 / 3.0)


def dual_derivative(activation: str, t):
    """h'(t) of the normalised dual (the NTK's derivative kernel)."""
    _check(activation)
    t = np.clip(np.asarray(t, dtype=np.float64), -1.0, 1.0)
    if activation == "relu":
        return (np.pi - np.arccos(t)) / np.pi
    return (2.0 / 3.0) / (math.asin(2.0 / 3.0) * np.sqrt(1.0 - 4.0 * t * t / 9.0))


def gaussian_dual(activation: str, s11, s12, s22, xp: Any = np):
    """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for (u, v) ~ N(0, [[s11, s12], [s12, s22]]), unscaled.

    relu: arc-cosine kernels of degree 1 and 0; erf: the arcsine kernel. ``xp`` is the array
    module: numpy (float64), or ``jax.numpy`` to use it inside jitted code. The diagonal
    E[φ(u)²] is ``gaussian_dual(a, q, q, q)[0]`` (q/2 for relu).
    """
    _check(activation)
    if xp is np:
        s11, s12, s22 = (np.asarray(a, dtype=np.float64) for a in (s11, s12, s22))
    if activation == "relu":
        norm = xp.sqrt(s11 * s22)
        c = xp.clip(s12 / xp.where(norm > 0, norm, 1.0), -1.0, 1.0)
        theta = xp.arccos(c)
        k = norm * (xp.sin(theta) + (math.pi - theta) * c) / (2.0 * math.pi)
        kd = (math.pi - theta) / (2.0 * math.pi)
        return k, kd
    a = xp.sqrt((1.0 + 2.0 * s11) * (1.0 + 2.0 * s22))
    k = 2.0 / math.pi * xp.arcsin(2.0 * s12 / a)
    kd = 4.0 / math.pi / xp.sqrt(a * a - 4.0 * s12 * s12)
    return k, kd
