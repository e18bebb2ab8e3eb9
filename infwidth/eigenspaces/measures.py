"""Signed discrete measures with an NTK weight, for the tilted-moment recursion.

An :class:`Atoms` object (x, w, wt) represents the pair of signed measures

    μ(dy)  = E[δ(K_u − y)·χ],         μ_T(dy) = E[δ(K_u − y)·T_u·χ]

of one node u (χ the eigenfunction restricted to u's subtree; χ = 1 for the untilted law).
Sums of independent nodes convolve by the Leibniz rule

    (μ1, μ1_T) ⊛ (μ2, μ2_T) = (μ1 ⊛ μ2, μ1_T ⊛ μ2 + μ1 ⊛ μ2_T),

since the T-weight of a sum of independent nodes is the sum of their T's.

Exact atoms are merged only when they coincide to a few ulps. When the number of atoms
outgrows a budget, a measure is projected on a uniform grid by moment-preserving Lagrange
interpolation of order q: an atom at y is spread over the q+1 nearest nodes with weights
ℓ_k(y), so ∫P dμ is unchanged for every polynomial P of degree ≤ q and the error on a smooth
integrand φ is O(Δ^{q+1}·sup|φ^{(q+1)}|) per unit of total variation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Atoms", "convolve", "power", "project", "MERGE_ULPS"]

MERGE_ULPS = 16
_EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class Atoms:
    """Atoms at sorted positions x with weights w and NTK weights wt (None for NNGP).

    ``grid`` is True when x is a uniform grid (then x[0] + Δ·i, Δ = x[1] − x[0]).
    """

    x: np.ndarray
    w: np.ndarray
    wt: np.ndarray | None = None
    grid: bool = False

    def __len__(self) -> int:
        return len(self.x)

    @property
    def tv(self) -> float:
        return float(np.abs(self.w).sum())

    def scaled(self, shift: float, scale: float, t_scale: float = 1.0) -> "Atoms":
        """Positions shift + scale·x, NTK weights times t_scale."""
        wt = None if self.wt is None else self.wt * t_scale
        return Atoms(shift + scale * self.x, self.w, wt, self.grid)

    def trimmed(self, floor: float = 1e-300) -> "Atoms":
        """Drop atoms whose weights are all below ``floor`` in magnitude."""
        keep = np.abs(self.w) > floor
        if self.wt is not None:
            keep |= np.abs(self.wt) > floor
        if keep.all():
            return self
        if self.grid:
            i = np.flatnonzero(keep)
            if len(i) == 0:
                return Atoms(self.x[:1], self.w[:1] * 0, None if self.wt is None
                             else self.wt[:1] * 0, True)
            sl = slice(i[0], i[-1] + 1)
            return Atoms(self.x[sl], self.w[sl], None if self.wt is None else self.wt[sl], True)
        return Atoms(self.x[keep], self.w[keep], None if self.wt is None else self.wt[keep])


def _merge(x: np.ndarray, w: np.ndarray, wt: np.ndarray | None) -> Atoms:
    order = np.argsort(x, kind="stable")
    x, w = x[order], w[order]
    wt = None if wt is None else wt[order]
    if len(x) <= 1:
        return Atoms(x, w, wt)
    tol = MERGE_ULPS * _EPS * max(1.0, float(np.abs(x).max()))
    new = np.empty(len(x), dtype=bool)
    new[0] = True
    new[1:] = np.diff(x) > tol
    start = np.flatnonzero(new)
    return Atoms(x[start], np.add.reduceat(w, start),
                 None if wt is None else np.add.reduceat(wt, start))


def convolve(a: Atoms, b: Atoms) -> Atoms:
    """Law of the sum of two independent nodes (Leibniz rule for the NTK weights)."""
    if a.grid and b.grid and len(a) > 1 and len(b) > 1:
        da, db = a.x[1] - a.x[0], b.x[1] - b.x[0]
        if abs(da - db) <= 1e-12 * abs(da):
            n = len(a) + len(b) - 1
            x = a.x[0] + b.x[0] + da * np.arange(n)
            w = np.convolve(a.w, b.w)
            wt = None
            if a.wt is not None:
                wt = np.convolve(a.wt, b.w) + np.convolve(a.w, b.wt)
            return Atoms(x, w, wt, True)
    x = np.add.outer(a.x, b.x).ravel()
    w = np.outer(a.w, b.w).ravel()
    wt = None
    if a.wt is not None:
        wt = (np.outer(a.wt, b.w) + np.outer(a.w, b.wt)).ravel()
    return _merge(x, w, wt)


def power(a: Atoms, k: int, cache: dict | None = None) -> Atoms:
    """k-fold self-convolution (binary powering, with an optional {k: Atoms} cache)."""
    if k == 0:
        return Atoms(np.zeros(1), np.ones(1), None if a.wt is None else np.zeros(1), a.grid)
    if cache is not None and k in cache:
        return cache[k]
    if k == 1:
        out = a
    elif k % 2 == 0:
        h = power(a, k // 2, cache)
        out = convolve(h, h)
    else:
        out = convolve(power(a, k - 1, cache), a)
    if cache is not None:
        cache[k] = out
    return out


def _lagrange(u: np.ndarray, q: int) -> np.ndarray:
    """Lagrange basis ℓ_k(u) = Π_{m≠k}(u − m)/(k − m) on the nodes 0..q, (len(u), q+1),
    as Π_m (u − m) / ((u − k)·Π_{m≠k}(k − m)); exact indicator rows at the nodes."""
    k = np.arange(q + 1, dtype=np.float64)
    denom = np.array([np.prod([kk - m for m in range(q + 1) if m != kk]) for kk in range(q + 1)])
    diff = u[:, None] - k[None, :]
    at_node = diff == 0.0
    safe = np.where(at_node, 1.0, diff)
    full = np.prod(safe, axis=1, keepdims=True)
    out = full / (safe * denom)
    hit = at_node.any(axis=1)
    if hit.any():
        out[hit] = at_node[hit].astype(np.float64)
    return out


def project(a: Atoms, n: int, q: int, lo: float | None = None, hi: float | None = None
            ) -> Atoms:
    """Moment-preserving projection (Lagrange order q) of ``a`` on n uniform nodes spanning
    [lo, hi] (default: the support of ``a``). Returned unchanged if it already has ≤ n
    atoms."""
    if len(a) <= n and lo is None:
        return a
    lo = float(a.x[0]) if lo is None else lo
    hi = float(a.x[-1]) if hi is None else hi
    q = min(q, n - 1)
    if hi <= lo:
        return Atoms(np.array([lo]), np.array([a.w.sum()]),
                     None if a.wt is None else np.array([a.wt.sum()]), True)
    delta = (hi - lo) / (n - 1)
    u = (a.x - lo) / delta
    i0 = np.clip(np.floor(u).astype(np.int64) - (q - 1) // 2, 0, n - 1 - q)
    basis = _lagrange(u - i0, q)
    idx = (i0[:, None] + np.arange(q + 1)).ravel()
    w = np.bincount(idx, weights=(a.w[:, None] * basis).ravel(), minlength=n)
    wt = None
    if a.wt is not None:
        wt = np.bincount(idx, weights=(a.wt[:, None] * basis).ravel(), minlength=n)
    return Atoms(lo + delta * np.arange(n), w, wt, True)
