"""Truncated Taylor series ("jets") of the node maps of a tree kernel.

A jet of order T of φ at the points s is the (N, T+1) array c with φ(s + x) = Σ_k c[:, k] x^k
+ O(x^{T+1}). The node maps of ``docs/theory.md`` §2 are, for a layer with diagonal q (the value of
Σ at x = x', deterministic on the hypercube and the sphere product) and weight std w:

- relu: F(s) = (w²/2)·q·h(s/q), F'(s) = (w²/2)·h'(s/q), with h'(t) = 1/2 + arcsin(t)/π;
- erf:  F(s) = (2w²/π)·arcsin(s/a), a = (1 + 2q)/2 (the arcsine kernel);
- any other activation: F(s) = w²·Σ_k a_k s^k, the power series of its dual at variance q
  (exact for polynomials, numerical with a reported tail otherwise).

The maps and their jets come from the activation registry
(:class:`~infwidth.architectures.activations.ActivationSpec`: ``gaussian_dual`` for values,
``jet`` for jets, ``singular`` for the radius); relu and erf are singular only at t = ±1 or
s = ±a.

:class:`NodeMap` composes the maps of consecutive fan-in-1 layers into one node map
(G, A, B): a node with pre-activation Σ and children's NTK contributions Θ outputs
K = G(Σ) and T = A(Σ) + B(Σ)·Θ (``docs/theory.md`` §2 with T = F'(Σ)·Θ).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infwidth.architectures.activations import ActivationSpec, arcsin_jet, get_activation

__all__ = ["series_mul", "toeplitz", "series_compose", "series_powers", "arcsin_jet", "dual_values",
           "dual_jet", "NodeMap"]


def series_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Truncated product of two batches of series, shape (N, T+1)."""
    T1 = a.shape[-1]
    out = np.zeros(np.broadcast_shapes(a.shape, b.shape))
    for j in range(T1):
        out[..., j:] += a[..., j:j + 1] * b[..., :T1 - j]
    return out


def toeplitz(b: np.ndarray) -> np.ndarray:
    """Lower-triangular Toeplitz matrices of a batch of series, (..., T+1, T+1): the truncated
    product a·b equals toeplitz(b) @ a."""
    T1 = b.shape[-1]
    i, j = np.indices((T1, T1))
    d = i - j
    out = np.where(d >= 0, b[..., np.clip(d, 0, None)], 0.0)
    return out


def series_compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Σ_k outer[:, k]·δ^k with δ = inner − inner[:, 0] (Horner), truncated."""
    delta = inner.copy()
    delta[..., 0] = 0.0
    T1 = outer.shape[-1]
    res = np.zeros_like(delta)
    res[..., 0] = outer[..., T1 - 1]
    for k in range(T1 - 2, -1, -1):
        res = series_mul(res, delta)
        res[..., 0] += outer[..., k]
    return res


def series_powers(a: np.ndarray, R: int) -> list[np.ndarray]:
    """[a^0, a^1, …, a^R] as truncated series."""
    out = [np.zeros_like(a)]
    out[0][..., 0] = 1.0
    for _ in range(R):
        out.append(series_mul(out[-1], a))
    return out


def dual_values(activation: str | ActivationSpec, w2: float, q: float, s: np.ndarray):
    """(F(s), F'(s)) of one layer: F(s) = w²·E[φ(u)φ(v)], F'(s) = w²·E[φ'(u)φ'(v)] with
    Var u = Var v = q, Cov = s (s/q clipped to [−1, 1] where the dual needs |t| ≤ 1, e.g.
    relu); docs/theory.md §2."""
    spec = get_activation(activation)
    s = np.asarray(s, dtype=np.float64)
    if spec.clip:
        k, kd = spec.gaussian_dual(q, q, t=np.clip(s / q, -1.0, 1.0))
    else:
        k, kd = spec.gaussian_dual(q, q, s)
    return w2 * k, w2 * kd


def dual_jet(activation: str | ActivationSpec, w2: float, q: float, s: np.ndarray, T: int):
    """Jets (order T) of F and F' at s: the registry's closed form (relu and erf families)
    or the Taylor shift of the dual's power series (:meth:`ActivationSpec.jet`)."""
    return get_activation(activation).jet(w2, q, np.asarray(s, dtype=np.float64), T)


@dataclass(frozen=True)
class NodeMap:
    """Composition of the dual maps of consecutive layers joined by fan-in-1 edges.

    ``stages`` = ((activation, w², q), …) in order from the node's own pre-activation up; a
    bias b² is added between stages. The node outputs K = G(Σ) and T = A(Σ) + B(Σ)·Θ where Θ
    is its own NTK pre-activation (Σ + mean of the children's T). Composition rule for one more
    stage F on top: G' = F(b² + G), A' = F'(b² + G)·(b² + G + A), B' = F'(b² + G)·B.
    """

    stages: tuple[tuple[str, float, float], ...]
    b2: float

    def __post_init__(self) -> None:
        for act, _, _ in self.stages:
            get_activation(act)

    @property
    def q(self) -> float:
        """Diagonal of the node's own pre-activation."""
        return self.stages[0][2]

    def values(self, s: np.ndarray):
        """(G, A, B) at s."""
        s = np.asarray(s, dtype=np.float64)
        act, w2, q = self.stages[0]
        g, b = dual_values(act, w2, q, s)
        a = np.zeros_like(g)
        for act, w2, q in self.stages[1:]:
            sig = self.b2 + g
            f, fp = dual_values(act, w2, q, sig)
            a = fp * (sig + a)
            b = fp * b
            g = f
        return g, a, b

    def jets(self, s: np.ndarray, T: int):
        """Jets of (G, A, B) at s, each (N, T+1)."""
        s = np.asarray(s, dtype=np.float64)
        act, w2, q = self.stages[0]
        g, b = dual_jet(act, w2, q, s, T)
        a = np.zeros_like(g)
        for act, w2, q in self.stages[1:]:
            sig = g.copy()
            sig[..., 0] += self.b2
            f, fp = dual_jet(act, w2, q, sig[..., 0], T)
            fs, fps = series_compose(f, sig), series_compose(fp, sig)
            a = series_mul(fps, sig + a)
            b = series_mul(fps, b)
            g = fs
        return g, a, b

    def singular_points(self) -> np.ndarray:
        """Real points s where G, A or B stop being analytic (preimages of each stage's
        singularities ±σ(q) (``ActivationSpec.singular``: q for relu, q + 1/2 for erf, none
        for an entire dual) under the increasing inner maps)."""
        pts = []
        for i, (act, w2, q) in enumerate(self.stages):
            sq = _singular(act, q)
            for y in (() if sq is None else (sq, -sq)):
                if i == 0:
                    pts.append(y)
                    continue
                x = _invert(self, i, y)
                if x is not None:
                    pts.append(x)
        return np.array(sorted(set(pts)))

    def radius(self, s: np.ndarray) -> np.ndarray:
        """Distance from s to the nearest real singular point."""
        sp = self.singular_points()
        if sp.size == 0:
            return np.full(np.shape(s), np.inf)
        return np.min(np.abs(np.asarray(s)[..., None] - sp), axis=-1)


def _singular(act, q: float) -> float | None:
    f = get_activation(act).singular
    return None if f is None else f(q)


def _invert(nm: NodeMap, stage: int, y: float) -> float | None:
    """Real s with (input of stage ``stage``)(s) = y, by bisection on the first stage's
    analytic interval; None if y is outside the range."""
    act0, _, q0 = nm.stages[0]
    sq = _singular(act0, q0)
    # the first stage's analytic interval (|s| ≤ q0 holds for any covariance)
    lim = q0 if sq is None or sq == q0 else sq - 1e-12

    def inner(s):
        sub = NodeMap(nm.stages[:stage], nm.b2)
        return nm.b2 + sub.values(np.array([s]))[0][0]

    lo, hi = -lim, lim
    flo, fhi = inner(lo) - y, inner(hi) - y
    if flo * fhi > 0:
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        fm = inner(mid) - y
        if fm == 0:
            return mid
        if (fm > 0) == (fhi > 0):
            hi, fhi = mid, fm
        else:
            lo, flo = mid, fm
    return 0.5 * (lo + hi)
