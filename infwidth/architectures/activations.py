"""Activations: one :class:`ActivationSpec` per activation, the single source of its dual.

For a centred Gaussian pair (u, v) with covariance [[q1, s], [s, q2]], an activation φ has the
Gaussian dual (K, K̇) = (E[φ(u)φ(v)], E[φ'(u)φ'(v)]) (docs/theory.md §2); K̇ = ∂K/∂s (Price's
theorem). Its normaliser is W = 1/√E[φ(z)²], z ~ N(0, 1), so that the normalised dual
h(t) = W²·K(1, 1, t) satisfies h(1) = 1:

- relu (W² = 2): h(t) = (√(1−t²) + (π − θ)·t)/π,  h'(t) = (π − θ)/π,  θ = arccos t.
- erf  (W² = π / (2·arcsin(2/3))): h(t) = arcsin(2t/3) / arcsin(2/3).

Each spec carries φ, its closed-form (or numerical) dual for a general covariance in numpy or
``jax.numpy``, its normaliser, its neural-tangents layer, its power series h(t) = Σ a_k t^k
(for the exact tree spectrum) and, for relu and erf, the tag of the native engine's fused
fast path. Every consumer (native engine, tree kernels, spectrum jets, depth study, finite
nets) reads it from here: adding an activation is one entry in this file.

Shipped (neural-tangents 0.6.5's closed forms): relu, leaky_relu(α), abrelu(a, b), abs, sign,
erf(a, b, c), sigmoid_like, gelu, sin(a, b, c), cos(a, b, c), gaussian(a, b), rbf(γ),
exp(a, b), exp_normalized(γ, shift), monomial(k), rectified_monomial(k), polynomial(coef),
hermite(k), gabor; and any callable through :func:`numerical_activation`.

Example:
    >>> get_activation("gelu").name
    'gelu'
    >>> round(float(dual(leaky_relu(0.2), 1.0)), 12)
    1.0
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike

from infwidth.validation import check_int, check_number

__all__ = ["ACTIVATIONS", "ActivationSpec", "get_activation", "default_w_std", "dual",
           "dual_derivative", "gaussian_dual", "numerical_activation", "relu", "leaky_relu",
           "abrelu", "abs_", "sign", "erf", "sigmoid_like", "gelu", "sin", "cos", "gaussian",
           "rbf", "exp", "exp_normalized", "monomial", "rectified_monomial", "polynomial",
           "hermite", "gabor", "arcsin_jet", "gauss_hermite", "hermite_functions"]

_TWO_PI = 2.0 * math.pi


# --------------------------------------------------------------------------------------
# The covariance handed to every dual formula
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Cov:
    """(q1, q2) and the covariance given either as s (``s_mode``) or as t = s/√(q1q2):
    ``c`` is s or t, ``scale`` is 1 or r = √(q1q2) (so s = scale·c), and
    ``d`` = (unit − c)(unit + c) with unit = r or 1 (so D = q1q2 − s² = scale²·d, with no
    cancellation near correlation ±1)."""

    q1: Any
    q2: Any
    c: Any
    scale: Any
    d: Any
    s_mode: bool
    xp: Any

    @property
    def s(self):
        return self.c if self.s_mode else self.scale * self.c

    @property
    def D(self):
        """q1q2 − s² (0 where d is 0 even if scale is ∞)."""
        if self.s_mode:
            return self.d
        return self.xp.where(self.d == 0, 0.0, (self.scale * self.scale) * self.d)

    def angle(self):
        """(√max(d, 0), θ = atan2(√d, c)); θ = π/2 at a zero variance (neural-tangents)."""
        xp = self.xp
        root = xp.sqrt(xp.maximum(self.d, 0.0))
        return root, xp.where((root == 0) & (self.c == 0), 0.5 * math.pi,
                              xp.arctan2(root, self.c))


# --------------------------------------------------------------------------------------
# The spec
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ActivationSpec:
    """One activation: φ, its Gaussian dual, normaliser, neural-tangents layer and series.

    Build one with a constructor of this module (:func:`leaky_relu`, :func:`monomial`, …,
    :func:`numerical_activation`) or look one up with :func:`get_activation`. Two specs are
    equal when their ``key`` (name and parameters; the callable for a numerical one) is.

    Attributes:
        name: the display name, e.g. "relu" or "leaky_relu(0.1)".
        key: what equality and hashing use.
        exact: True for a closed-form dual, False for a numerical one.
        w_std: the normaliser 1/√E[φ(z)²], z ~ N(0, 1) (h(1) = 1 with W = w_std).
        fast: tag of a fused native-engine path for this exact dual ("arccos1": relu,
            "arcsin": erf), or None (the engine then evaluates :meth:`gaussian_dual`).
    """

    name: str
    key: tuple
    kernel: Callable = field(compare=False, repr=False)
    fn: Callable | None = field(compare=False, repr=False)
    layer: Callable = field(compare=False, repr=False)
    exact: bool = True
    w_std: float | None = field(default=None, compare=False)
    fast: str | None = field(default=None, compare=False)
    dfn: Callable | None = field(default=None, compare=False, repr=False)
    series: Callable | None = field(default=None, compare=False, repr=False)
    jet_fn: Callable | None = field(default=None, compare=False, repr=False)
    singular: Callable | None = field(default=lambda q: q, compare=False, repr=False)
    clip: bool = field(default=True, compare=False, repr=False)
    deg: int = field(default=0, compare=False, repr=False)
    recipe: tuple | None = field(default=None, compare=False, repr=False)

    def __reduce__(self):
        """Pickled as its constructor call (the dual formulas are closures)."""
        if self.recipe is None:
            raise TypeError(f"activation {self.name} was not built by a constructor of "
                            "infwidth.architectures.activations: it cannot be pickled")
        return _rebuild, self.recipe

    def __post_init__(self) -> None:
        if self.w_std is None:
            diag = float(self.gaussian_dual(1.0, 1.0, t=1.0)[0])
            if not diag > 0 or not math.isfinite(diag):
                raise ValueError(f"activation {self.name}: E[φ(z)²] = {diag} at unit variance "
                                 "is not a positive number; it cannot be normalised")
            object.__setattr__(self, "w_std", 1.0 / math.sqrt(diag))

    # ------------------------------------------------------------------ evaluation
    def gaussian_dual(self, q1: ArrayLike, q2: ArrayLike, s: ArrayLike | None = None, *,
                      t: ArrayLike | None = None, xp: Any = np) -> tuple[Any, Any]:
        """(K, K̇) = (E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for (u, v) ~ N(0, [[q1, s], [s, q2]]),
        unscaled (no W²). Give the covariance ``s`` or the correlation ``t`` = s/√(q1q2)
        (not clipped). ``xp``: numpy (float64) or ``jax.numpy`` (traceable). K and K̇ come
        broadcast to one shape."""
        if (s is None) == (t is None):
            raise TypeError("give exactly one of s (the covariance) and t (the correlation)")
        c = s if t is None else t
        if xp is np:
            q1, q2, c = (np.asarray(a, dtype=np.float64) for a in (q1, q2, c))
        r = xp.sqrt(q1 * q2)
        unit, scale = (r, 1.0) if t is None else (1.0, r)
        d = (unit - c) * (unit + c)
        k, kd = self.kernel(_Cov(q1, q2, c, scale, d, t is None, xp))
        k, kd = xp.asarray(k), xp.asarray(kd)
        shape = np.broadcast_shapes(np.shape(k), np.shape(kd))
        if np.shape(k) != shape:
            k = xp.broadcast_to(k, shape)
        if np.shape(kd) != shape:
            kd = xp.broadcast_to(kd, shape)
        return k, kd

    def phi(self, x: ArrayLike, xp: Any = np) -> Any:
        """φ(x), pointwise (numpy or ``jax.numpy``)."""
        if self.fn is None:
            raise NotImplementedError(f"activation {self.name} has a kernel map but no "
                                      "pointwise function (neural-tangents has none either)")
        return self.fn(x, xp)

    def dphi(self, x: ArrayLike, xp: Any = np) -> Any:
        """φ'(x) (0 where φ is a step: the finite net's gradient)."""
        if self.dfn is not None:
            return self.dfn(x, xp)
        if self.fn is None:
            raise NotImplementedError(f"activation {self.name} has no pointwise function")
        import jax
        import jax.numpy as jnp

        out = jnp.vectorize(jax.grad(lambda z: self.fn(z, jnp)))(jnp.asarray(x, jnp.float64))
        return np.asarray(out) if xp is np else out

    def stax(self) -> Any:
        """The neural-tangents layer ``(init_fn, apply_fn, kernel_fn)``."""
        from infwidth._nt_compat import load

        return self.layer(load()[1])

    @functools.cached_property
    def error(self) -> float:
        """Estimated error of the normalised dual (W²K, W²K̇): 0 for a closed form; for a
        numerical one the largest |difference| between ``deg`` and 2·``deg`` quadrature nodes
        at probe covariances (q1, q2 ∈ {0.5, 1, 2}, t ∈ {−0.99, −0.5, 0, 0.5, 0.9, 0.99, 1})."""
        if self.exact:
            return 0.0
        fine = _with_deg(self, 2 * self.deg)
        q = np.array([0.5, 1.0, 2.0])
        tt = np.array([-0.99, -0.5, 0.0, 0.5, 0.9, 0.99, 1.0])
        q1, q2, t = (a.ravel() for a in np.meshgrid(q, q, tt, indexing="ij"))
        err = 0.0
        for a, b in zip(self.gaussian_dual(q1, q2, t=t), fine.gaussian_dual(q1, q2, t=t)):
            err = max(err, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
        return err * self.w_std ** 2

    # ------------------------------------------------------------------ series / jets
    def power_series(self, q: float, n: int) -> tuple[np.ndarray, float]:
        """(a, tail): K(q, q, s) = Σ_{k ≤ n} a_k s^k + R(s) at equal variances q > 0, with
        a_k = γ_k(q)² ≥ 0 (γ_k the normalised Hermite coefficient of φ(√q·z), divided by
        q^{k/2}) and tail = K(q, q, q) − Σ a_k q^k ≥ |R(s)| for |s| ≤ q.

        Closed forms where the spec has them (polynomials: exact, tail 0; exp, sin, rbf,
        gaussian, exp_normalized); otherwise Gauss–Hermite projection of φ on
        min(2n + 64, 350) nodes (cost O(n²) flops; the tail then also carries the projection
        error)."""
        q = float(q)
        if not q > 0:
            raise ValueError(f"q must be > 0, got {q!r}")
        if self.series is not None:
            a = np.asarray(self.series(q, n), dtype=np.float64)
        else:
            z, w = _gh(min(2 * n + 64, 350))
            psi = hermite_functions(z, n)
            beta = psi @ (w * np.asarray(self.phi(math.sqrt(q) * z), dtype=np.float64))
            a = beta ** 2 / q ** np.arange(n + 1)
        diag = float(self.gaussian_dual(q, q, q)[0])
        tail = max(diag - float(np.sum(a * q ** np.arange(n + 1))), 0.0)
        return a, tail

    def jet(self, w2: float, q: float, s: ArrayLike, T: int, n_series: int = 96):
        """Jets of order T of F(s) = w²K(q, q, s) and F'(s) = w²K̇(q, q, s) at the points s:
        (N, T+1) arrays with F(s + x) = Σ_k F[:, k] x^k + O(x^{T+1}). Closed-form hooks
        (relu family, erf family); otherwise the Taylor shift of :meth:`power_series`
        (``n_series`` terms), accurate where |s| is well inside the radius of convergence."""
        s = np.asarray(s, dtype=np.float64)
        if self.jet_fn is not None:
            return self.jet_fn(w2, q, s, T)
        a, _ = self.power_series(q, max(n_series, T + 2))
        k = np.arange(a.size)
        jets = np.zeros(s.shape + (T + 2,))
        for j in range(T + 2):  # F^{(j)}(s)/j! = Σ_k a_k C(k, j) s^{k−j}
            coef = a[j:] * np.array([math.comb(int(kk), j) for kk in k[j:]], dtype=np.float64)
            jets[..., j] = np.polynomial.polynomial.polyval(s, coef)
        f = w2 * jets
        return f[..., :T + 1], f[..., 1:] * np.arange(1, T + 2)


def _with_deg(spec: ActivationSpec, deg: int) -> ActivationSpec:
    """The same numerical activation with ``deg`` quadrature nodes per axis."""
    return numerical_activation(spec.fn, name=spec.name, deg=deg, derivative=spec.dfn,
                                _wrapped=True)


# --------------------------------------------------------------------------------------
# Gauss–Hermite helpers (probabilists' nodes, weights summing to 1)
# --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def gauss_hermite(deg: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z_i and weights w_i (Σ w_i = 1) of the deg-point rule for E[f(z)], z ~ N(0, 1)."""
    z, w = np.polynomial.hermite_e.hermegauss(deg)
    return z, w / math.sqrt(2.0 * math.pi)


_gh = gauss_hermite


def hermite_functions(z: np.ndarray, n: int) -> np.ndarray:
    """ψ_k(z) = He_k(z)/√k!, k = 0..n (orthonormal under N(0, 1)), shape (n+1, len(z))."""
    psi = np.empty((n + 1, z.size))
    psi[0] = 1.0
    if n >= 1:
        psi[1] = z
    for k in range(1, n):
        psi[k + 1] = (z * psi[k] - math.sqrt(k) * psi[k - 1]) / math.sqrt(k + 1)
    return psi


# --------------------------------------------------------------------------------------
# Closed-form duals (each a function of the covariance; docs/theory.md §2)
# --------------------------------------------------------------------------------------
def _abrelu_kernel(a: float, b: float) -> Callable:
    """φ = a·min(x, 0) + b·max(x, 0) = (b − a)·relu(x) + a·x: arc-cosine kernels,
    K̇ = (a² + b²)/2 − (a − b)²θ/(2π),  K = (a − b)²√D/(2π) + K̇·s."""
    f, half = (a - b) ** 2, 0.5 * (a * a + b * b)

    def kernel(cv: _Cov):
        root, theta = cv.angle()
        kd = half - f * theta / _TWO_PI
        return cv.scale * (f * root / _TWO_PI + kd * cv.c), kd
    return kernel


def _sign_kernel(cv: _Cov):
    """K = 1 − 2θ/π; K̇ = 0 (φ' = 0 almost everywhere, as neural-tangents and a finite net's
    gradient have it; the distributional 2δ(u)·2δ(v) is not used)."""
    _, theta = cv.angle()
    return 1.0 - 2.0 / math.pi * theta, 0.0 * theta


def _erf_kernel(a: float, b: float, c0: float) -> Callable:
    """φ = a·erf(b·x) + c0 (arcsine kernel, on b²-scaled covariances):
    Δ = (1 + 2q1)(1 + 2q2) − 4s² = 1 + 2(q1 + q2) + 4D,
    K = a²(2/π)·atan2(2s, √Δ) + c0²,  K̇ = a²b²(4/π)/√Δ."""
    bb = b * b

    def kernel(cv: _Cov):
        xp, q1, q2, dd, sc = cv.xp, cv.q1, cv.q2, cv.D, cv.scale
        if bb != 1.0:
            q1, q2, dd, sc = bb * q1, bb * q2, (bb * bb) * dd, bb * sc
        root = xp.sqrt(1.0 + 2.0 * (q1 + q2) + 4.0 * dd)
        k = 2.0 / math.pi * xp.arctan2(2.0 * (sc * cv.c), root)
        kd = 4.0 / math.pi / root
        if a * a != 1.0:
            k, kd = (a * a) * k, (a * a) * kd
        if bb != 1.0:
            kd = bb * kd
        return (k + c0 * c0 if c0 else k), kd
    return kernel


def _gelu_kernel(cv: _Cov):
    """φ = x·Φ(x) (Tsuchida et al. 2020): with P = q1q2, P1 = (1+q1)(1+q2),
    δ² = P1 − s² = 1 + q1 + q2 + D and α = atan2(s, δ):
    K = s/4 + ((s² + Pδ²)/(P1δ) + sα)/(2π),
    K̇ = 1/4 + α/(2π) + s/(2πδ)·(1/δ² + (1 − P)/P1 + 1)."""
    xp, s, p = cv.xp, cv.s, cv.q1 * cv.q2
    p1 = (1.0 + cv.q1) * (1.0 + cv.q2)
    delta2 = 1.0 + cv.q1 + cv.q2 + cv.D
    delta = xp.sqrt(delta2)
    alpha = xp.arctan2(s, delta)
    k = 0.25 * s + ((s * s + p * delta2) / (p1 * delta) + s * alpha) / _TWO_PI
    kd = 0.25 + alpha / _TWO_PI + s / (_TWO_PI * delta) * (1.0 / delta2 + (1.0 - p) / p1 + 1.0)
    return k, kd


def _sin_kernel(a: float, b: float, c0: float) -> Callable:
    """φ = a·sin(b·x + c0): with e± = exp(b²(±s − (q1 + q2)/2)),
    K = (a²/2)(e₊ − cos(2c0)e₋),  K̇ = (a²b²/2)(e₊ + cos(2c0)e₋)."""
    cos2c, bb = math.cos(2.0 * c0), b * b

    def kernel(cv: _Cov):
        xp, s, m = cv.xp, cv.s, 0.5 * (cv.q1 + cv.q2)
        ep, em = xp.exp(bb * (s - m)), xp.exp(-bb * (s + m))
        return 0.5 * a * a * (ep - cos2c * em), 0.5 * a * a * bb * (ep + cos2c * em)
    return kernel


def _rbf_kernel(gamma: float) -> Callable:
    """φ = √2·sin(√(2γ)x + π/4): K = exp(−γ(q1 + q2 − 2s)), K̇ = 2γK."""
    def kernel(cv: _Cov):
        k = cv.xp.exp(gamma * (2.0 * cv.s - cv.q1 - cv.q2))
        return k, 2.0 * gamma * k
    return kernel


def _exp_kernel(a: float, b: float) -> Callable:
    """φ = a·exp(b·x): K = a²exp(b²((q1 + q2)/2 + s)), K̇ = b²K."""
    def kernel(cv: _Cov):
        k = a * a * cv.xp.exp(b * b * (0.5 * (cv.q1 + cv.q2) + cv.s))
        return k, b * b * k
    return kernel


def _gaussian_kernel(a: float, b: float) -> Callable:
    """φ = a·exp(b·x²) (b < 1/4): det = √((1 − 2bq1)(1 − 2bq2) − 4b²s²),
    K = a²/det, K̇ = 4a²b²s/det³."""
    def kernel(cv: _Cov):
        s = cv.s
        det = cv.xp.sqrt((1.0 - 2.0 * b * cv.q1) * (1.0 - 2.0 * b * cv.q2) - 4.0 * b * b * s * s)
        return a * a / det, 4.0 * a * a * b * b * s / det ** 3
    return kernel


def _exp_normalized_kernel(gamma: float, shift: float) -> Callable:
    """neural-tangents' ExpNormalized (a kernel map, no φ): with r = √(q1q2), t = s/r,
    K = r·exp(γ(t + shift)), K̇ = ∂K/∂s = γ·exp(γ(t + shift))."""
    def kernel(cv: _Cov):
        xp = cv.xp
        r = xp.sqrt(cv.q1 * cv.q2)
        t = xp.where(r > 0, cv.c / xp.where(r > 0, r, 1.0), 0.0) if cv.s_mode else cv.c
        e = xp.exp(gamma * (t + shift))
        return r * e, gamma * e
    return kernel


def _gabor_kernel(cv: _Cov):
    """φ = exp(−x²)·sin(x): with Σ = q1 + q2, P = q1q2, d4 = 4D, den = 2Σ + d4 + 1,
    e = exp(−(Σ + d4 + 2s)/(2·den)), e' = exp(2s/den):
    K = e(e' − 1)/(2√den),  K̇ = e((m − n) + e'(m + n))/(2·den^{5/2}),
    m = 1 + 2Σ + 4(s² + P), n = 4s(d4 + 3Σ + 2)."""
    xp, s = cv.xp, cv.s
    sm, d4 = cv.q1 + cv.q2, 4.0 * cv.D
    den = 2.0 * sm + d4 + 1.0
    e, e2 = xp.exp(-(sm + d4 + 2.0 * s) / (2.0 * den)), xp.exp(2.0 * s / den)
    m = 1.0 + 2.0 * sm + 4.0 * (s * s + cv.q1 * cv.q2)
    n = 4.0 * s * (d4 + 3.0 * sm + 2.0)
    return e * (e2 - 1.0) / (2.0 * xp.sqrt(den)), e * ((m - n) + e2 * (m + n)) / (2.0 * den ** 2.5)


def _arccos_polys(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (in c = cos θ) of A_n, B_n with the arc-cosine kernel of degree n
    J_n(θ) = A_n(c)(π − θ) + B_n(c) sin θ: A_0 = 1, B_0 = 0,
    A_{n+1} = (1 − c²)A_n' + (2n + 1)cA_n,  B_{n+1} = (1 − c²)B_n' + 2ncB_n + A_n
    (from J_n = sin^{2n+1}θ · dⁿ/dcⁿ[(π − arccos c)/√(1 − c²)])."""
    P = np.polynomial.polynomial
    A, B = np.array([1.0]), np.array([0.0])
    one_m_c2, cc = np.array([1.0, 0.0, -1.0]), np.array([0.0, 1.0])
    for k in range(n):
        A, B = (P.polyadd(P.polymul(one_m_c2, P.polyder(A)), (2 * k + 1) * P.polymul(cc, A)),
                P.polyadd(P.polyadd(P.polymul(one_m_c2, P.polyder(B)),
                                    2 * k * P.polymul(cc, B)), A))
    return A, B


def _homog(coef: np.ndarray, n: int, s, p):
    """r^n·Σ_j coef_j (s/r)^j as Σ_j coef_j s^j p^{(n−j)/2} (p = r², only n − j even)."""
    out = 0.0
    for j, cj in enumerate(coef):
        if cj != 0.0:
            out = out + cj * s ** j * p ** ((n - j) // 2)
    return out


def _rectified_monomial_kernel(n: int) -> Callable:
    """φ = max(x, 0)^n (Cho & Saul): K = (q1q2)^{n/2}J_n(θ)/(2π), K̇ = n²K_{n−1}
    (K̇ = 0 for n = 0, the step, as neural-tangents)."""
    polys = [_arccos_polys(m) for m in (n, n - 1) if m >= 0]

    def arccos(cv, m, A, B):
        root, theta = cv.angle()
        s, p = cv.s, cv.q1 * cv.q2
        val = _homog(A, m, s, p) * (math.pi - theta)
        if m >= 1:
            val = val + _homog(B, m - 1, s, p) * (cv.scale * root)
        return val / _TWO_PI

    def kernel(cv: _Cov):
        k = arccos(cv, n, *polys[0])
        kd = n * n * arccos(cv, n - 1, *polys[1]) if n >= 1 else 0.0 * k
        return k, kd
    return kernel


def _poly_gammas(coef: tuple[float, ...]) -> list[list[float]]:
    """G[l][m] with γ_l(q) = Σ_m G[l][m] q^m: φ(√q z) = Σ_l γ_l(q) q^{l/2} ψ_l(z) for
    φ(x) = Σ_j coef_j x^j (z^j = Σ_m j!/(2^m m!(j−2m)!) He_{j−2m}(z))."""
    deg = len(coef) - 1
    return [[coef[k + 2 * m] * math.factorial(k + 2 * m)
             / (2 ** m * math.factorial(m) * math.sqrt(math.factorial(k)))
             for m in range((deg - k) // 2 + 1)] for k in range(deg + 1)]


def _poly_eval(g: list[float], q):
    out = 0.0
    for m, gm in enumerate(g):
        if gm != 0.0:
            out = out + gm * q ** m
    return out


def _polynomial_kernel(coef: tuple[float, ...]) -> Callable:
    """φ = Σ_j coef_j x^j (Mehler): K = Σ_l γ_l(q1)γ_l(q2)s^l, a polynomial in (q1, q2, s);
    K̇ the same for φ'."""
    g = _poly_gammas(coef)
    dcoef = tuple(float(v) for v in np.polynomial.polynomial.polyder(np.array(coef))) \
        if len(coef) > 1 else (0.0,)
    gd = _poly_gammas(dcoef)

    def mehler(gam, cv):
        s, out = cv.s, 0.0 * cv.s
        for k, gk in enumerate(gam):
            out = out + _poly_eval(gk, cv.q1) * _poly_eval(gk, cv.q2) * s ** k
        return out

    def kernel(cv: _Cov):
        return mehler(g, cv), mehler(gd, cv)
    return kernel


def _numerical_kernel(fn: Callable, dfn: Callable, deg: int) -> Callable:
    """2-D Gauss–Hermite on deg² nodes: u = √q1·z1, v = ρz1 + σz2 with ρ = s/√q1,
    σ = √(D/q1) (or ρ = t√q2, σ = √q2·√(1 − t²)): K ≈ Σ_ij w_i w_j φ(u_i)φ(v_ij)."""
    z, w = _gh(deg)

    def kernel(cv: _Cov):
        xp = cv.xp
        q1, q2 = cv.q1, cv.q2
        if cv.s_mode:
            pos = q1 > 0
            safe = xp.where(pos, q1, 1.0)
            rho = xp.where(pos, cv.c / xp.sqrt(safe), 0.0)
            sig = xp.where(pos, xp.sqrt(xp.maximum(cv.d, 0.0) / safe), xp.sqrt(q2))
        else:
            rho = cv.c * xp.sqrt(q2)
            sig = xp.sqrt(q2) * xp.sqrt(xp.maximum(cv.d, 0.0))
        a1 = xp.sqrt(q1)
        if xp is np:
            return _numerical_np(fn, dfn, z, w, a1, rho, sig)
        k = kd = 0.0
        rho, sig, a1 = (xp.asarray(v)[..., None] for v in (rho, sig, a1))
        for i in range(deg):
            v = rho * z[i] + sig * z
            u = a1 * z[i]
            k = k + w[i] * (fn(u, xp)[..., 0] * (fn(v, xp) @ w))
            kd = kd + w[i] * (dfn(u, xp)[..., 0] * (dfn(v, xp) @ w))
        return k, kd
    return kernel


def _numerical_np(fn, dfn, z, w, a1, rho, sig):
    """The same rule in numpy, in blocks of covariances (φ evaluated once per block on all
    deg² nodes)."""
    a1, rho, sig = np.broadcast_arrays(a1, rho, sig)
    shape, n, deg = a1.shape, a1.size, z.size
    a1, rho, sig = (v.reshape(-1) for v in (a1, rho, sig))
    k, kd = np.empty(n), np.empty(n)
    step = max(1, 2 ** 20 // (deg * deg))
    for b0 in range(0, n, step):
        sl = slice(b0, min(n, b0 + step))
        u = a1[sl, None] * z
        v = rho[sl, None, None] * z[:, None] + sig[sl, None, None] * z[None, :]
        for out, f in ((k, fn), (kd, dfn)):
            fu = np.asarray(f(u, np), dtype=np.float64)
            fv = np.asarray(f(v, np), dtype=np.float64)
            out[sl] = np.einsum("ni,nij,i,j->n", fu, fv, w, w, optimize=True)
    return k.reshape(shape), kd.reshape(shape)


def _jit_np(f: Callable) -> Callable:
    """A JAX function evaluated on numpy arrays through one jitted call per chunk of a
    power-of-two size (few compilations, whatever the shapes)."""
    import jax

    jf = jax.jit(f)

    def run(x):
        x = np.asarray(x, dtype=np.float64)
        flat, n = x.reshape(-1), x.size
        size = min(1 << 16, 1 << max(n - 1, 1).bit_length())
        out = np.empty(n)
        for b0 in range(0, n, size):
            blk = flat[b0:b0 + size]
            if blk.size < size:
                blk = np.concatenate([blk, np.zeros(size - blk.size)])
            out[b0:b0 + size] = np.asarray(jf(blk))[:min(size, n - b0)]
        return out.reshape(x.shape)
    return run


# --------------------------------------------------------------------------------------
# Closed-form jets (the exact tree spectrum's moment mode)
# --------------------------------------------------------------------------------------
def arcsin_jet(t: np.ndarray, T: int) -> np.ndarray:
    """Jet of arcsin at t (|t| < 1), order T: the series of u = (1 − (t+x)²)^{−1/2} by the
    J.C.P. Miller recurrence for powers of a series, integrated."""
    t = np.asarray(t, dtype=np.float64)
    p0, p1 = 1.0 - t * t, -2.0 * t  # 1 − (t+x)² = p0 + p1 x − x²
    u = np.zeros(t.shape + (max(T, 1),))
    u[..., 0] = 1.0 / np.sqrt(p0)
    for k in range(1, T):
        acc = (0.5 - k) * p1 * u[..., k - 1]
        if k >= 2:
            acc = acc - (1.0 - k) * u[..., k - 2]
        u[..., k] = acc / (k * p0)
    out = np.zeros(t.shape + (T + 1,))
    out[..., 0] = np.arcsin(t)
    out[..., 1:] = u[..., :T] / np.arange(1, T + 1)
    return out


_RELU = _abrelu_kernel(0.0, 1.0)


def _abrelu_jet(a: float, b: float) -> Callable:
    """Jets of w²K(q, q, s) = w²((b − a)²K_relu + ab·s): K_relu = (q/2)h(s/q) with
    h'(t) = 1/2 + arcsin(t)/π (relu's normalised dual)."""
    f, lin = (b - a) ** 2, a * b

    def jet(w2, q, s, T):
        k = np.arange(T + 2)
        t = s / q
        hp = arcsin_jet(t, T) / np.pi
        hp[..., 0] += 0.5
        h = np.zeros(t.shape + (T + 1,))
        tc = np.clip(t, -1.0, 1.0)
        h[..., 0] = _RELU(_Cov(1.0, 1.0, tc, 1.0, (1.0 - tc) * (1.0 + tc), False, np))[0] / 0.5
        h[..., 1:] = hp[..., :T] / np.arange(1, T + 1)
        scale = q ** (-k[:T + 1].astype(float))
        F, Fp = 0.5 * f * w2 * q * h * scale, 0.5 * f * w2 * hp * scale
        if lin:
            F[..., 0] += w2 * lin * s
            if T >= 1:
                F[..., 1] += w2 * lin
            Fp[..., 0] += w2 * lin
        return F, Fp
    return jet


def _erf_jet(a: float, b: float, c0: float) -> Callable:
    """Jets of w²K(q, q, s) = w²(a²(2/π)arcsin(s/α) + c0²), α = (1 + 2b²q)/(2b²)."""
    def jet(w2, q, s, T):
        k = np.arange(T + 2)
        alpha = (1.0 + 2.0 * b * b * q) / (2.0 * b * b)
        f = 2.0 * a * a * w2 / np.pi * arcsin_jet(s / alpha, T + 1) * alpha ** (-k.astype(float))
        f[..., 0] += w2 * c0 * c0
        return f[..., :T + 1], f[..., 1:] * np.arange(1, T + 2)
    return jet


# --------------------------------------------------------------------------------------
# Constructors
# --------------------------------------------------------------------------------------
def _constructor(f: Callable) -> Callable:
    """Record the call that built a spec (its pickle)."""
    @functools.wraps(f)
    def make(*args: Any, **kwargs: Any) -> ActivationSpec:
        spec = f(*args, **kwargs)
        object.__setattr__(spec, "recipe", (f.__name__, args, kwargs))
        return spec
    return make


def _rebuild(name: str, args: tuple, kwargs: dict) -> ActivationSpec:
    return globals()[name](*args, **kwargs)


def _num(name: str, v: Any, **kw) -> float:
    return float(check_number(name, v, **kw))


def _fmt(*vals: float) -> str:
    return ", ".join(f"{v:g}" for v in vals)


@_constructor
def abrelu(a: float, b: float) -> ActivationSpec:
    """a·min(x, 0) + b·max(x, 0) (neural-tangents ``ABRelu``)."""
    a, b = _num("a", a), _num("b", b)
    if a == 0.0 and b == 0.0:
        raise ValueError("abrelu(a, b) needs a or b nonzero")
    return ActivationSpec(
        f"abrelu({_fmt(a, b)})", ("abrelu", a, b), _abrelu_kernel(a, b),
        lambda x, xp: a * xp.minimum(x, 0.0) + b * xp.maximum(x, 0.0),
        lambda st: st.ABRelu(a, b),
        dfn=lambda x, xp: xp.where(x > 0, b, a) + 0.0 * x, jet_fn=_abrelu_jet(a, b))


@_constructor
def leaky_relu(alpha: float) -> ActivationSpec:
    """max(x, 0) + α·min(x, 0) (neural-tangents ``LeakyRelu``)."""
    alpha = _num("alpha", alpha)
    return _renamed(abrelu(alpha, 1.0), f"leaky_relu({alpha:g})", lambda st: st.LeakyRelu(alpha))


def _renamed(spec: ActivationSpec, name: str, layer: Callable | None = None,
             **kw: Any) -> ActivationSpec:
    from dataclasses import replace

    return replace(spec, name=name, key=(name,) + spec.key[1:],
                   layer=spec.layer if layer is None else layer, **kw)


@_constructor
def relu() -> ActivationSpec:
    """max(x, 0) (W² = 2; fused native path "arccos1")."""
    return _renamed(abrelu(0.0, 1.0), "relu", lambda st: st.Relu(), w_std=math.sqrt(2.0),
                    fast="arccos1")


@_constructor
def abs_() -> ActivationSpec:
    """|x| (neural-tangents ``Abs``; W = 1)."""
    return _renamed(abrelu(-1.0, 1.0), "abs", lambda st: st.Abs())


@_constructor
def sign() -> ActivationSpec:
    """sign(x): K = 1 − 2θ/π; its K̇ is taken as 0 (φ' = 0 almost everywhere), as in
    neural-tangents: the layer then passes no NTK from below."""
    return ActivationSpec("sign", ("sign",), _sign_kernel, lambda x, xp: xp.sign(x),
                          lambda st: st.Sign(), dfn=lambda x, xp: 0.0 * x)


_ERF_SQ = 2.0 / math.pi * math.asin(2.0 / 3.0)  # E[erf(z)²], z ~ N(0, 1)


@_constructor
def erf(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> ActivationSpec:
    """a·erf(b·x) + c (neural-tangents ``Erf``); the default is "erf" (fused native path
    "arcsin")."""
    a, b, c = _num("a", a), _num("b", b), _num("c", c)
    default = (a, b, c) == (1.0, 1.0, 0.0)

    def fn(x, xp):
        if xp is np:
            from scipy.special import erf as e
        else:
            from jax.scipy.special import erf as e
        return a * e(b * x) + c

    return ActivationSpec(
        "erf" if default else f"erf({_fmt(a, b, c)})", ("erf", a, b, c), _erf_kernel(a, b, c),
        fn, lambda st: st.Erf(a, b, c),
        w_std=1.0 / math.sqrt(_ERF_SQ) if default else None, fast="arcsin" if default else None,
        dfn=lambda x, xp: a * b * 2.0 / math.sqrt(math.pi) * xp.exp(-(b * x) ** 2),
        jet_fn=_erf_jet(a, b, c), singular=lambda q: (1.0 + 2.0 * b * b * q) / (2.0 * b * b),
        clip=False)


@_constructor
def sigmoid_like() -> ActivationSpec:
    """0.5·erf(x/2.4020563531719796) + 0.5 (neural-tangents ``Sigmoid_like``)."""
    return _renamed(erf(0.5, 1 / 2.4020563531719796, 0.5), "sigmoid_like",
                    lambda st: st.Sigmoid_like())


@_constructor
def gelu() -> ActivationSpec:
    """x·Φ(x) (neural-tangents ``Gelu``, exact erf form)."""
    def fn(x, xp):
        if xp is np:
            from scipy.special import ndtr
            return x * ndtr(x)
        import jax
        return jax.nn.gelu(x, approximate=False)
    return ActivationSpec("gelu", ("gelu",), _gelu_kernel, fn, lambda st: st.Gelu(),
                          singular=lambda q: 1.0 + q)


@_constructor
def sin(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> ActivationSpec:
    """a·sin(b·x + c) (neural-tangents ``Sin``)."""
    a, b, c = _num("a", a), _num("b", b), _num("c", c)
    cos2c = math.cos(2.0 * c)

    def series(q, n):
        k = np.arange(n + 1)
        fact = np.array([math.factorial(int(i)) for i in k], dtype=np.float64)
        return 0.5 * a * a * math.exp(-b * b * q) * (b * b) ** k / fact * (1 - cos2c * (-1.0) ** k)
    name = "sin" if (a, b, c) == (1.0, 1.0, 0.0) else f"sin({_fmt(a, b, c)})"
    return ActivationSpec(name, ("sin", a, b, c), _sin_kernel(a, b, c),
                          lambda x, xp: a * xp.sin(b * x + c), lambda st: st.Sin(a, b, c),
                          dfn=lambda x, xp: a * b * xp.cos(b * x + c), series=series,
                          singular=None)


@_constructor
def cos(a: float = 1.0, b: float = 1.0, c: float = 0.0) -> ActivationSpec:
    """a·cos(b·x + c) = a·sin(b·x + c + π/2) (neural-tangents ``Cos``)."""
    a, b, c = _num("a", a), _num("b", b), _num("c", c)
    name = "cos" if (a, b, c) == (1.0, 1.0, 0.0) else f"cos({_fmt(a, b, c)})"
    return _renamed(sin(a, b, c + math.pi / 2), name, lambda st: st.Cos(a, b, c))


@_constructor
def rbf(gamma: float = 1.0) -> ActivationSpec:
    """√2·sin(√(2γ)x + π/4), whose dual is the RBF kernel exp(−γ|u − v|²)
    (neural-tangents ``Rbf``)."""
    gamma = _num("gamma", gamma, lo=0.0, lo_open=True)
    om = math.sqrt(2.0 * gamma)

    def series(q, n):
        k = np.arange(n + 1)
        fact = np.array([math.factorial(int(i)) for i in k], dtype=np.float64)
        return math.exp(-2.0 * gamma * q) * (2.0 * gamma) ** k / fact
    return ActivationSpec("rbf" if gamma == 1.0 else f"rbf({gamma:g})", ("rbf", gamma),
                          _rbf_kernel(gamma),
                          lambda x, xp: math.sqrt(2.0) * xp.sin(om * x + math.pi / 4),
                          lambda st: st.Rbf(gamma),
                          dfn=lambda x, xp: math.sqrt(2.0) * om * xp.cos(om * x + math.pi / 4),
                          series=series, singular=None)


@_constructor
def exp(a: float = 1.0, b: float = 1.0) -> ActivationSpec:
    """a·exp(b·x) (neural-tangents ``Exp``)."""
    a, b = _num("a", a), _num("b", b)

    def series(q, n):
        k = np.arange(n + 1)
        fact = np.array([math.factorial(int(i)) for i in k], dtype=np.float64)
        return a * a * math.exp(b * b * q) * (b * b) ** k / fact
    return ActivationSpec("exp" if (a, b) == (1.0, 1.0) else f"exp({_fmt(a, b)})",
                          ("exp", a, b), _exp_kernel(a, b), lambda x, xp: a * xp.exp(b * x),
                          lambda st: st.Exp(a, b), dfn=lambda x, xp: a * b * xp.exp(b * x),
                          series=series, singular=None)


@_constructor
def gaussian(a: float = 1.0, b: float = -1.0) -> ActivationSpec:
    """a·exp(b·x²), b < 1/4 (neural-tangents ``Gaussian``)."""
    a, b = _num("a", a), _num("b", b, hi=0.25, hi_open=True)

    def series(q, n):  # a²/(1 − 2bq)·(1 − x²)^{−1/2}, x = 2bs/(1 − 2bq)
        out = np.zeros(n + 1)
        g = 2.0 * b / (1.0 - 2.0 * b * q)
        for m in range(n // 2 + 1):
            out[2 * m] = a * a / (1.0 - 2.0 * b * q) * math.comb(2 * m, m) / 4.0 ** m * g ** (2 * m)
        return out
    return ActivationSpec("gaussian" if (a, b) == (1.0, -1.0) else f"gaussian({_fmt(a, b)})",
                          ("gaussian", a, b), _gaussian_kernel(a, b),
                          lambda x, xp: a * xp.exp(b * x * x), lambda st: st.Gaussian(a, b),
                          dfn=lambda x, xp: 2.0 * a * b * x * xp.exp(b * x * x), series=series,
                          singular=lambda q: (1.0 - 2.0 * b * q) / (2.0 * abs(b)) if b else None)


@_constructor
def exp_normalized(gamma: float = 1.0, shift: float = -1.0) -> ActivationSpec:
    """neural-tangents' ``ExpNormalized`` kernel map K = √(q1q2)·exp(γ(t + shift)) (no
    pointwise φ: no finite net, no Gauss–Hermite check)."""
    gamma, shift = _num("gamma", gamma), _num("shift", shift)

    def series(q, n):
        k = np.arange(n + 1)
        fact = np.array([math.factorial(int(i)) for i in k], dtype=np.float64)
        return q * math.exp(gamma * shift) * gamma ** k / fact / q ** k
    name = "exp_normalized" if (gamma, shift) == (1.0, -1.0) else \
        f"exp_normalized({_fmt(gamma, shift)})"
    return ActivationSpec(name, ("exp_normalized", gamma, shift),
                          _exp_normalized_kernel(gamma, shift), None,
                          lambda st: st.ExpNormalized(gamma, shift), series=series,
                          singular=None)


@_constructor
def polynomial(coef) -> ActivationSpec:
    """Σ_j coef[j]·x^j (neural-tangents ``Polynomial``); dual exact for every (q1, q2, s)."""
    coef = tuple(_num("coef", v) for v in coef)
    if not coef or all(v == 0.0 for v in coef):
        raise ValueError("coef must hold at least one nonzero coefficient")
    g = _poly_gammas(coef)

    def series(q, n):
        out = np.zeros(n + 1)
        for k, gk in enumerate(g[:n + 1]):
            out[k] = _poly_eval(gk, q) ** 2
        return out
    dc = tuple(j * coef[j] for j in range(1, len(coef))) or (0.0,)
    return ActivationSpec(f"polynomial({_fmt(*coef)})", ("polynomial",) + coef,
                          _polynomial_kernel(coef), lambda x, xp: _horner(coef, x),
                          lambda st: st.Polynomial(coef), dfn=lambda x, xp: _horner(dc, x),
                          series=series, singular=None)


def _horner(coef: tuple[float, ...], x):
    out = coef[-1] + 0.0 * x
    for cj in coef[-2::-1]:
        out = out * x + cj
    return out


@_constructor
def monomial(degree: int) -> ActivationSpec:
    """x^degree (neural-tangents ``Monomial``, degrees 0–5 there; any degree here)."""
    degree = check_int("degree", degree, 0)
    return _renamed(polynomial((0.0,) * degree + (1.0,)), f"monomial({degree})",
                    lambda st: st.Monomial(degree) if degree <= 5
                    else st.Polynomial((0.0,) * degree + (1.0,)))


@_constructor
def hermite(degree: int) -> ActivationSpec:
    """He_k(x)/√k! (orthonormal under N(0, 1)). neural-tangents' ``Hermite`` kernel assumes
    unit variances (K = s^k); the dual here holds for every covariance, and :meth:`stax`
    gives ``Polynomial`` with the same coefficients (same φ, exact kernel)."""
    degree = check_int("degree", degree, 0)
    coef = np.polynomial.hermite_e.herme2poly([0.0] * degree + [1.0]) / math.sqrt(
        math.factorial(degree))
    c = tuple(float(v) for v in coef)
    return _renamed(polynomial(c), f"hermite({degree})", lambda st: st.Polynomial(c))


@_constructor
def rectified_monomial(degree: int) -> ActivationSpec:
    """max(x, 0)^degree (neural-tangents ``RectifiedMonomial``): arc-cosine kernel of that
    degree; K̇ = 0 for degree 0 (the step), as neural-tangents."""
    n = check_int("degree", degree, 0)
    return ActivationSpec(
        f"rectified_monomial({n})", ("rectified_monomial", n), _rectified_monomial_kernel(n),
        lambda x, xp: xp.where(x >= 0, x ** n, 0.0), lambda st: st.RectifiedMonomial(n),
        dfn=lambda x, xp: n * xp.where(x >= 0, x ** (n - 1), 0.0) if n >= 1 else 0.0 * x)


@_constructor
def gabor() -> ActivationSpec:
    """exp(−x²)·sin(x) (neural-tangents ``Gabor``)."""
    return ActivationSpec("gabor", ("gabor",), _gabor_kernel,
                          lambda x, xp: xp.exp(-x * x) * xp.sin(x), lambda st: st.Gabor(),
                          singular=lambda q: q + 0.5)


@_constructor
def numerical_activation(fn: Callable, *, name: str | None = None, deg: int = 32,
                         derivative: Callable | None = None,
                         _wrapped: bool = False) -> ActivationSpec:
    """Any φ by 2-D Gauss–Hermite quadrature (neural-tangents' ``ElementwiseNumerical``).

    K ≈ Σ_ij w_i w_j φ(u_i)φ(v_ij) over deg² nodes, and K̇ the same with φ' (``derivative``,
    or ``jax.grad`` of ``fn``). Cost: 2·deg² evaluations of φ and φ' per covariance entry
    (deg = 32: ~2000 per entry, ~10³× a closed form). ``spec.error`` estimates the error of
    the normalised dual (deg against 2·deg nodes on probe covariances, q up to 2): at
    deg = 32 it is 3e-9 for softplus, 4e-3 for tanh (poles at ±iπ/2 close to the real axis;
    6e-5 at deg = 64), and large for kinks or steps (use a closed form there). The power
    series of the spectrum engine come from a 1-D Hermite projection whose tail is reported.

    Args:
        fn: φ, traceable by JAX (``jax.numpy`` operations), applied elementwise.
        name: display name (default ``fn.__name__``).
        deg: quadrature nodes per axis (≥ 2).
        derivative: φ' (optional; default ``jax.grad(fn)``, vectorised).

    Returns:
        The :class:`ActivationSpec` (``exact`` False; its layer is
        ``stax.ElementwiseNumerical(fn, deg, derivative)``).

    Example:
        >>> import jax.numpy as jnp
        >>> softplus = numerical_activation(lambda x: jnp.logaddexp(x, 0.0), name="softplus")
        >>> softplus.error < 1e-8, round(float(dual(softplus, 1.0)), 12)
        (True, 1.0)
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {fn!r}")
    deg = check_int("deg", deg, 2)
    if derivative is not None and not callable(derivative):
        raise TypeError(f"derivative must be callable or None, got {derivative!r}")
    name = name if name is not None else getattr(fn, "__name__", "numerical")
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {name!r}")
    if _wrapped:
        f2, d2 = fn, derivative
    else:
        import jax
        import jax.numpy as jnp

        g = derivative if derivative is not None else jnp.vectorize(jax.grad(fn))
        f_np, g_np = _jit_np(fn), _jit_np(g)

        def f2(x, xp):
            return f_np(x) if xp is np else fn(x)

        def d2(x, xp):
            return g_np(x) if xp is np else g(x)
    raw = getattr(f2, "__wrapped_fn__", fn)
    raw_d = getattr(d2, "__wrapped_fn__", derivative)
    f2.__wrapped_fn__, d2.__wrapped_fn__ = raw, raw_d

    def layer(st):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return st.ElementwiseNumerical(raw, deg, raw_d)
    return ActivationSpec(name, ("numerical", name, raw, deg), _numerical_kernel(f2, d2, deg),
                          f2, layer, exact=False, dfn=d2, deg=deg)


# --------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------
_REGISTRY: dict[str, ActivationSpec] = {}


def _register(spec: ActivationSpec) -> None:
    _REGISTRY[spec.name] = spec


for _spec in (relu(), erf(), leaky_relu(0.01), abs_(), sign(), sigmoid_like(), gelu(), sin(),
              cos(), gaussian(), rbf(), exp(), exp_normalized(), gabor()):
    _register(_spec)

ACTIVATIONS = tuple(_REGISTRY)
"""The registered names (parameterised activations: use their constructors)."""


def get_activation(activation: str | ActivationSpec) -> ActivationSpec:
    """The :class:`ActivationSpec` of a registered name, or ``activation`` itself.

    Args:
        activation: a name of :data:`ACTIVATIONS` or an :class:`ActivationSpec`.

    Returns:
        The spec.

    Example:
        >>> get_activation("relu").w_std == math.sqrt(2)
        True
    """
    if isinstance(activation, ActivationSpec):
        return activation
    if not isinstance(activation, str):
        raise TypeError(f"activation must be one of {sorted(ACTIVATIONS)} or an "
                        f"ActivationSpec, got {activation!r}")
    try:
        return _REGISTRY[activation]
    except KeyError:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)} or an "
                         f"ActivationSpec, got {activation!r}") from None


def default_w_std(activation: str | ActivationSpec) -> float:
    """1/√E[φ(z)²]: the weight std that keeps unit variance, so that h(1) = 1."""
    return get_activation(activation).w_std


def dual(activation: str | ActivationSpec, t: ArrayLike) -> np.ndarray:
    """Normalised dual h(t) = E[φ(u)φ(v)]/E[φ(u)²] at unit variances (h(1) = 1), for
    correlations t, clipped to [−1, 1] (docs/theory.md §2)."""
    t = np.clip(np.asarray(t, dtype=np.float64), -1.0, 1.0)
    return gaussian_dual(activation, 1.0, 1.0, t=t)[0] / _diagonal(activation)


def dual_derivative(activation: str | ActivationSpec, t: ArrayLike) -> np.ndarray:
    """h'(t) = E[φ'(u)φ'(v)]/E[φ(u)²] of the normalised dual (the NTK's derivative kernel),
    t clipped to [−1, 1] (docs/theory.md §2)."""
    t = np.clip(np.asarray(t, dtype=np.float64), -1.0, 1.0)
    return gaussian_dual(activation, 1.0, 1.0, t=t)[1] / _diagonal(activation)


def _diagonal(activation: str | ActivationSpec) -> float:
    """E[φ(z)²], z ~ N(0, 1): the dual at t = 1 (1/2 for relu, exactly)."""
    return float(gaussian_dual(activation, 1.0, 1.0, t=1.0)[0])


def gaussian_dual(activation: str | ActivationSpec, q1: ArrayLike, q2: ArrayLike,
                  s: ArrayLike | None = None, *, t: ArrayLike | None = None,
                  xp: Any = np) -> tuple[Any, Any]:
    """(K, K̇) = (E[φ(u)φ(v)], E[φ'(u)φ'(v)]) for (u, v) ~ N(0, [[q1, s], [s, q2]]), unscaled
    (no W²), docs/theory.md §2: :meth:`ActivationSpec.gaussian_dual` of
    ``get_activation(activation)``. Give the covariance ``s`` or the correlation ``t``.

    With r = √(q1q2) and D = q1q2 − s² (computed as (r − s)(r + s), or r²(1 − t)(1 + t): no
    cancellation near correlation ±1):

    - relu (arc-cosine kernels of degree 1 and 0): θ = atan2(√D, s),
      K̇ = 1/2 − θ/(2π),  K = √D/(2π) + K̇·s;
    - erf (arcsine kernel): Δ = (1 + 2q1)(1 + 2q2) − 4s² = 1 + 2(q1 + q2) + 4D,
      K = (2/π)·atan2(2s, √Δ) = (2/π)·arcsin(2s/√((1 + 2q1)(1 + 2q2))),  K̇ = (4/π)/√Δ;
    - the others: see each constructor.

    The angle is θ = atan2(√D, s), not arccos(s/r): exact 0 on the diagonal (q1 = q2 = s) and
    accurate to a few ulps near it, where arccos of a rounded correlation costs ~√ε. The
    arc-cosine family clamps D at 0 (round-off) and takes θ = π/2 at a zero variance
    (neural-tangents' convention); ``t`` is not clipped. ``xp`` is the array module: numpy
    (float64), or ``jax.numpy`` inside jitted code. The diagonal E[φ(u)²] is
    ``gaussian_dual(a, q, q, q)[0]`` (q/2 for relu).
    """
    return get_activation(activation).gaussian_dual(q1, q2, s, t=t, xp=xp)
