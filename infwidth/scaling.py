"""Power law in width for a generalized LeNet (seeds/000, ``theory.md`` §5).

- :class:`LeNet`: conv(d1) → avg-pool → conv(d2 = r·d1) → avg-pool → 3 dense layers, NTK
  parameterisation, average pooling (neural-tangents has no max-pool kernel).
- :func:`lenet_kernels`: its infinite-width NNGP/NTK by the spatial covariance recursion,
  banded to the offsets that reach the readout (2–6× faster than neural-tangents on CPU;
  tested against it).
- :func:`conservation_law`: √(feature-map area) × filters per conv layer, and
  :func:`conservation_ratio`, the r that keeps it constant.
- :func:`train_gd`: fixed-budget full-batch (heavy-ball) GD on the MSE of the centred model,
  and :func:`kernel_gd_predict`, the exact infinite-width (linearised) limit of the same
  protocol.
- :func:`width_sweep`: a tidy table of test errors over widths and seeds.
- :func:`fit_power_law` / :func:`compare_power_laws`: A·w^{−ρ} and ε∞ + A·w^{−ρ} with seeded
  bootstrap intervals and a nested-model F-test.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import scipy.optimize
import scipy.stats
from tqdm.auto import tqdm

from ._nt_compat import load
from .architectures import DAG, Architecture, _check_common, _check_pos_int
from .inputs import check_inputs
from .kernels import parse_bytes

__all__ = ["LeNet", "lenet_kernel", "lenet_kernels", "conservation_law", "conservation_ratio",
           "count_params", "GDResult", "init_params", "train_gd", "kernel_gd_predict",
           "kernel_regression", "width_sweep", "PowerLawFit", "fit_power_law",
           "compare_power_laws"]

_PAD = {"same": "SAME", "valid": "VALID"}


# --------------------------------------------------------------------------------------
# Generalized LeNet
# --------------------------------------------------------------------------------------
def _conv_side(side: int, k: int, padding: str) -> int:
    return side if padding == "same" else side - k + 1


@dataclass(frozen=True)
class LeNet(Architecture):
    """Generalized LeNet: conv(d1) → φ → avg-pool → conv(d2) → φ → avg-pool → Flatten →
    Dense(h1) → φ → Dense(h2) → φ → Dense(out_dim).

    ``width`` is d1, d2 = round(``ratio``·d1), and the hidden dense widths are
    round(f·d1) for f in ``dense_factors`` (they grow with d1, so that the infinite-width
    limit exists; the default (20, 14) keeps LeNet-5's 6 → 120, 84 proportions). Convs
    are ``filter_size``² with stride 1 and ``padding`` "same" or "valid"; pools are
    ``pool``² windows with stride ``pool``. Inputs are square images with ``channels``
    channels. First layer W_std = 1, later ones ``W_std`` (default √2 for relu).

    Example:
        >>> import infwidth as iw
        >>> net = iw.LeNet(width=6, ratio=2, filter_size=3)
        >>> net.input_shape(64), net.conv_sides(64), net.d2
        ((8, 8, 1), (8, 4), 12)
    """

    width: int = 6
    ratio: float = 2.0
    filter_size: int = 3
    padding: str = "same"
    pool: int = 2
    dense_factors: tuple[float, ...] = (20.0, 14.0)
    activation: str = "relu"
    W_std: float | None = None
    b_std: float = 0.0
    out_dim: int = 10
    channels: int = 1
    ndim: int = field(default=2, init=False)

    def __post_init__(self) -> None:
        _check_pos_int("filter_size", self.filter_size)
        _check_pos_int("pool", self.pool)
        if self.padding not in _PAD:
            raise ValueError(f"padding must be one of {sorted(_PAD)}, got {self.padding!r}")
        if not (isinstance(self.ratio, (int, float)) and math.isfinite(self.ratio)
                and self.ratio > 0):
            raise ValueError(f"ratio must be a positive number, got {self.ratio!r}")
        if not isinstance(self.dense_factors, (tuple, list)) or not all(
                isinstance(f, (int, float)) and math.isfinite(f) and f > 0
                for f in self.dense_factors):
            raise ValueError(f"dense_factors must be a tuple of positive numbers, "
                             f"got {self.dense_factors!r}")
        object.__setattr__(self, "dense_factors", tuple(float(f) for f in self.dense_factors))
        _check_common(self)

    @property
    def d2(self) -> int:
        return max(1, int(round(self.ratio * self.width)))

    @property
    def dense_widths(self) -> tuple[int, ...]:
        return tuple(max(1, int(round(f * self.width))) for f in self.dense_factors)

    # kernels.kernel() sizes its blocks for O(P) per pair unless told otherwise; pooling
    # nets keep the full spatial covariance, O(P²) per pair (see the module report).
    full_spatial_covariance = True

    def _sides(self, side: int) -> tuple[int, int, int, int]:
        k, p = self.filter_size, self.pool
        s1 = _conv_side(side, k, self.padding)
        q1 = s1 // p if s1 > 0 else 0
        s2 = _conv_side(q1, k, self.padding) if q1 > 0 else 0
        q2 = s2 // p if s2 > 0 else 0
        return s1, q1, s2, q2

    def _image_side(self, dim: int) -> int:
        dim = _check_pos_int("dim", dim)
        if dim % self.channels:
            raise ValueError(f"dim={dim} is not divisible by channels={self.channels}")
        side = math.isqrt(dim // self.channels)
        if side * side * self.channels != dim:
            raise ValueError(f"dim={dim} does not fit a square image with {self.channels} "
                             f"channel(s)")
        if self._sides(side)[3] < 1:
            raise ValueError(f"a {side}×{side} image is too small for LeNet with "
                             f"filter_size={self.filter_size}, padding={self.padding!r}, "
                             f"pool={self.pool}: the second pooled map would be empty")
        return side

    def input_shape(self, dim: int) -> tuple[int, ...]:
        side = self._image_side(dim)
        return (side, side, self.channels)

    def conv_sides(self, dim: int) -> tuple[int, int]:
        """Output side of each conv layer (before pooling)."""
        s1, _, s2, _ = self._sides(self._image_side(dim))
        return s1, s2

    @property
    def min_dim(self) -> int:
        side = 1
        while self._sides(side)[3] < 1:
            side += 1
        return side * side * self.channels

    @cached_property
    def _stax(self):
        _, stax = load()
        k, p, pad = (self.filter_size,) * 2, (self.pool,) * 2, _PAD[self.padding]
        layers = [stax.Conv(self.width, k, padding=pad, W_std=1.0, b_std=self.b), self._act(),
                  stax.AvgPool(p, p),
                  stax.Conv(self.d2, k, padding=pad, W_std=self.w, b_std=self.b), self._act(),
                  stax.AvgPool(p, p), stax.Flatten()]
        for h in self.dense_widths:
            layers += [stax.Dense(h, W_std=self.w, b_std=self.b), self._act()]
        layers.append(stax.Dense(self.out_dim, W_std=self.w, b_std=self.b))
        return stax.serial(*layers)

    def dag_for(self, dim: int) -> DAG:
        """Leaves: input pixels; layer 1: conv1 positions (k×k windows); layer 2: conv2
        positions, each seeing the conv1 positions inside the pool windows of its k×k
        window; root: every conv2 position inside the last pooled map (Flatten)."""
        side = self._image_side(dim)
        s1, q1, s2, q2 = self._sides(side)
        k, p = self.filter_size, self.pool
        lo = (k - 1) // 2 if self.padding == "same" else 0

        def window(i: int, n: int) -> list[int]:
            return [i - lo + t for t in range(k) if 0 <= i - lo + t < n]

        l1 = tuple(tuple(a * side + b for a in window(i, side) for b in window(j, side))
                   for i in range(s1) for j in range(s1))
        l2 = tuple(tuple(sorted((u * p + du) * s1 + (v * p + dv)
                                for u in window(i, q1) for v in window(j, q1)
                                for du in range(p) for dv in range(p)))
                   for i in range(s2) for j in range(s2))
        top = tuple(i * s2 + j for i in range(q2 * p) for j in range(q2 * p))
        return DAG(int(dim), self.channels, (side * side, s1 * s1, s2 * s2, 1),
                   (l1, l2, (top,)))

    def flops(self, dim: int) -> int:
        """Multiply-adds × 2 of the conv and dense layers in one forward pass of one input
        (pooling, activations and biases are not counted)."""
        s1, _, s2, q2 = self._sides(self._image_side(dim))
        k2 = self.filter_size ** 2
        macs = s1 * s1 * k2 * self.channels * self.width + s2 * s2 * k2 * self.width * self.d2
        fan = q2 * q2 * self.d2
        for h in self.dense_widths + (self.out_dim,):
            macs += fan * h
            fan = h
        return 2 * macs


def count_params(arch: Architecture, dim: int) -> int:
    """Number of trainable scalars of ``arch.stax`` for a flat input of ``dim`` coordinates."""
    init_fn = arch.stax[0]
    shape = arch.input_shape(dim)
    params = jax.eval_shape(lambda k: init_fn(k, (-1,) + shape)[1], jax.random.PRNGKey(0))
    return int(sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(params)))


def conservation_law(arch: LeNet, dim: int) -> pd.DataFrame:
    """One row per conv layer: output side s, filters d and the product s·d (= √area × d).

    The conservation law of seeds/000 keeps s·d constant along the conv layers.

    Example:
        >>> import infwidth as iw
        >>> lenet5 = iw.LeNet(width=6, ratio=16 / 6, filter_size=5, padding="valid")
        >>> iw.conservation_law(lenet5, 32 * 32)["product"].tolist()
        [168, 160]
    """
    if not isinstance(arch, LeNet):
        raise TypeError(f"arch must be a LeNet, got {type(arch).__name__}")
    s1, s2 = arch.conv_sides(dim)
    return pd.DataFrame({"layer": [1, 2], "side": [s1, s2], "filters": [arch.width, arch.d2],
                         "product": [s1 * arch.width, s2 * arch.d2]})


def conservation_ratio(image_side: int, filter_size: int = 5, padding: str = "valid",
                       pool: int = 2) -> float:
    """r = d2/d1 = s1/s2 that keeps √(area) × filters constant (LeNet-5, 32 px: 28/10)."""
    arch = LeNet(width=1, filter_size=filter_size, padding=padding, pool=pool)
    s1, s2 = arch.conv_sides(_check_pos_int("image_side", image_side) ** 2)
    return s1 / s2


# --------------------------------------------------------------------------------------
# Infinite-width kernel of the LeNet (full spatial covariance)
# --------------------------------------------------------------------------------------
def _dual(activation: str, s11, s12, s22):
    """(E[φ(u)φ(v)], E[φ'(u)φ'(v)]) under N(0, [[s11, s12], [s12, s22]]) (jnp)."""
    if activation == "relu":
        # θ = atan2(√(s11·s22 − s12²), s12): exact 0 on the diagonal, where arccos of the
        # normalised correlation loses half the digits.
        sin_norm = jnp.sqrt(jnp.maximum(s11 * s22 - s12 * s12, 0.0))
        theta = jnp.arctan2(sin_norm, s12)
        return ((sin_norm + (jnp.pi - theta) * s12) / (2 * jnp.pi),
                (jnp.pi - theta) / (2 * jnp.pi))
    a = jnp.sqrt((1.0 + 2.0 * s11) * (1.0 + 2.0 * s22))
    return (2.0 / jnp.pi * jnp.arcsin(2.0 * s12 / a),
            4.0 / jnp.pi / jnp.sqrt(a * a - 4.0 * s12 * s12))


# Banded covariances. A spatial covariance is stored as C[..., i, j, u, v] =
# Σ((i, j), (i + u − R, j + v − R)) for offsets |u − R|, |v − R| ≤ R: convolutions keep the
# offset p − q, a pool of window p maps coarse offset O to fine offsets p·O + b − a, and the
# Flatten readout needs offset 0 only, so offsets beyond R = p − 1 (after conv2) and
# R = p² − 1 (after conv1) never reach the output. Entries whose partner lies outside the
# map are kept at 0.
def _band_mask(s: int, r: int) -> np.ndarray:
    ok = (np.arange(s)[:, None] + np.arange(2 * r + 1)[None, :] - r)
    ok = (ok >= 0) & (ok < s)
    return (ok[:, None, :, None] & ok[None, :, None, :]).astype(np.float64)


def _partner(v: jax.Array, r: int, fill: float = 1.0) -> jax.Array:
    """(..., S, S) values at each position's partners: (..., S, S, 2r+1, 2r+1)."""
    s = v.shape[-1]
    vp = jnp.pad(v, [(0, 0)] * (v.ndim - 2) + [(r, r)] * 2, constant_values=fill)
    w = 2 * r + 1
    rows = [jnp.stack([vp[..., u:u + s, t:t + s] for t in range(w)], axis=-1)
            for u in range(w)]
    return jnp.stack(rows, axis=-2)


def _conv_band(c: jax.Array, f: int, padding: str) -> jax.Array:
    """Σ'(p, p + o) = mean over filter offsets δ of Σ(p + δ, p + δ + o) (zero padding)."""
    s, r = c.shape[-3], (c.shape[-1] - 1) // 2
    lead = c.ndim - 4
    if padding == "same":
        lo = (f - 1) // 2
        c, out = jnp.pad(c, [(0, 0)] * lead + [(lo, f - 1 - lo)] * 2 + [(0, 0)] * 2), s
    else:
        out = s - f + 1
    acc = sum(c[..., a:a + out, b:b + out, :, :] for a in range(f) for b in range(f))
    return acc / (f * f) * _band_mask(out, r)


def _pool_band(c: jax.Array, p: int, r_out: int) -> jax.Array:
    """Average pooling (window = stride = p) of both positions, to offsets ≤ r_out."""
    s, r = c.shape[-3] // p, (c.shape[-1] - 1) // 2
    span = p * 2 * r_out + 1
    acc = 0.0
    for a in range(p):
        for b in range(p):
            for a2 in range(p):
                for b2 in range(p):
                    u0, v0 = r - p * r_out + a2 - a, r - p * r_out + b2 - b
                    acc = acc + c[..., a:a + p * s:p, b:b + p * s:p,
                                  u0:u0 + span:p, v0:v0 + span:p]
    return acc / p ** 4 * _band_mask(s, r_out)


def _first_band(xa: jax.Array, xb: jax.Array, f: int, padding: str, r: int,
                pairwise: bool) -> jax.Array:
    """Σ_δ ⟨x(p + δ), x'(p + o + δ)⟩ over the f×f filter offsets δ (channels summed): the
    band products of the (zero-padded) images, then an f×f box sum."""
    lo, hi = ((f - 1) // 2, f - 1 - (f - 1) // 2) if padding == "same" else (0, 0)
    xa = jnp.pad(xa, ((0, 0), (lo, hi), (lo, hi), (0, 0)))
    xb = jnp.pad(xb, ((0, 0), (lo + r, hi + r), (lo + r, hi + r), (0, 0)))
    sp, w = xa.shape[1], 2 * r + 1
    out = sp - f + 1
    win = jnp.stack([jnp.stack([xb[:, u:u + sp, t:t + sp, :] for t in range(w)], -1)
                     for u in range(w)], -2)  # (n, sp, sp, C, W, W)
    eq = "aijc,aijcuv->aijuv" if pairwise else "aijc,bijcuv->abijuv"
    z = jnp.einsum(eq, xa, win)
    acc = sum(z[..., a:a + out, b:b + out, :, :] for a in range(f) for b in range(f))
    return acc * _band_mask(out, r)


def _lenet_forward(arch: LeNet, sig, var_fn):
    """NNGP and NTK through the layers, banded. ``var_fn(i, sig, r)`` returns the variances
    of nonlinearity i at each position and at its partners (broadcastable to ``sig``)."""
    w2, b2, f, pad, p = arch.w ** 2, arch.b_std ** 2, arch.filter_size, arch.padding, arch.pool
    theta, variances = sig, []
    for i, r_next in enumerate((p - 1, 0)):
        r = (sig.shape[-1] - 1) // 2
        va, vb = var_fn(i, sig, r)
        variances.append(va)
        kk, kd = _dual(arch.activation, va, sig, vb)
        kk = kk * _band_mask(sig.shape[-3], r)
        kk, theta = _pool_band(kk, p, r_next), _pool_band(kd * theta, p, r_next)
        if i == 0:
            sig = w2 * _conv_band(kk, f, pad) + b2 * _band_mask(kk.shape[-3] - (
                0 if pad == "same" else f - 1), r_next)
            theta = w2 * _conv_band(theta, f, pad) + sig
    sig = w2 * kk[..., 0, 0].mean(axis=(-2, -1)) + b2
    theta = w2 * theta[..., 0, 0].mean(axis=(-2, -1)) + sig
    for i in range(2, 2 + len(arch.dense_widths)):
        va, vb = var_fn(i, sig, None)
        variances.append(va)
        kk, kd = _dual(arch.activation, va, sig, vb)
        sig = w2 * kk + b2
        theta = w2 * kd * theta + sig
    return sig, theta, variances


@lru_cache(maxsize=16)
def _lenet_fns(arch: LeNet):
    f, pad, c, p = arch.filter_size, arch.padding, arch.channels, arch.pool
    r1, b2 = p * p - 1, arch.b_std ** 2

    def first(xa, xb, pairwise):
        band = _first_band(xa, xb, f, pad, r1, pairwise) / (f * f * c)
        return band + b2 * _band_mask(band.shape[-3], r1)

    @jax.jit
    def self_vars(x):

        def var_fn(_, s, r):
            if r is None:
                return s, s
            d = s[..., r, r]
            return d[..., None, None], _partner(d, r)

        _, _, variances = _lenet_forward(arch, first(x, x, True), var_fn)
        return [v[..., 0, 0] if v.ndim == 5 else v for v in variances]

    @jax.jit
    def cross(xa, xb, va, vb):
        def var_fn(i, _, r):
            a, b = va[i], vb[i]
            if r is None:
                return a[:, None], b[None, :]
            return a[:, None, :, :, None, None], _partner(b, r)[None]

        sig0 = first(xa, xb, False)
        sig, theta, _ = _lenet_forward(arch, sig0, var_fn)
        return sig, theta

    return self_vars, cross


def lenet_kernel(arch: LeNet, x1: Any, x2: Any = None, kind: str = "ntk",
                 block_size: int | None = None, memory_budget: int | str = "1GB",
                 progress: bool | None = None) -> np.ndarray:
    """Infinite-width NNGP or NTK Gram matrix of a :class:`LeNet` (see
    :func:`lenet_kernels`, which returns both from one pass).

    Example:
        >>> import infwidth as iw
        >>> x = iw.load_digits(n_train=5, n_test=5).x_train
        >>> iw.lenet_kernel(iw.LeNet(), x, kind="nngp").shape
        (5, 5)
    """
    if kind not in ("ntk", "nngp"):
        raise ValueError(f"kind must be 'ntk' or 'nngp', got {kind!r}")
    return lenet_kernels(arch, x1, x2, block_size=block_size, memory_budget=memory_budget,
                         progress=progress)[kind]


def lenet_kernels(arch: LeNet, x1: Any, x2: Any = None, block_size: int | None = None,
                  memory_budget: int | str = "1GB",
                  progress: bool | None = None) -> dict[str, np.ndarray]:
    """Infinite-width NNGP and NTK Gram matrices of a :class:`LeNet`, float64, in one pass.

    The recursion keeps the full spatial covariance Σ(p, q) (average pooling mixes
    positions): first conv Σ₁(p, q) = ⟨patch_p(x), patch_q(x')⟩/(k²C) + b²; each nonlinearity
    K = E[φφ](Σ), K̇ = E[φ'φ'](Σ) with the variances Σ(x, x)(p, p), Σ(x', x')(q, q);
    Θ ← K̇ ⊙ Θ; average pooling averages both position indices; conv
    Σ'(p, q) = W²·mean_δ K(p + δ, q + δ) + b², Θ' = W²·mean_δ Θ(p + δ, q + δ) + Σ';
    Flatten takes the mean of the diagonal; dense layers Σ' = W²K + b², Θ' = W²K̇Θ + Σ'.
    It equals ``infwidth.kernel(arch, ...)`` (neural-tangents) to round-off and is 2× (8×8
    inputs) to 6× (14×14) faster per pair on CPU: only the offsets |p − q| that reach the
    readout are kept (see the banded-covariance note above). Returns {"nngp", "ntk"}.
    """
    if not isinstance(arch, LeNet):
        raise TypeError(f"arch must be a LeNet, got {type(arch).__name__}")
    x1 = check_inputs(x1, "x1")
    dim = x1.shape[1]
    shape = arch.input_shape(dim)
    symmetric = x2 is None
    x2 = x1 if symmetric else check_inputs(x2, "x2", dim)
    s1 = arch.conv_sides(dim)[0]
    per_pair = 12 * 8 * (s1 * (2 * arch.pool ** 2 - 1)) ** 2  # a dozen live banded arrays
    if block_size is None:
        block_size = max(1, min(256, int(math.sqrt(parse_bytes(memory_budget) / per_pair))))
    else:
        _check_pos_int("block_size", block_size)
    # The infinite-width kernel does not depend on the widths: one compiled function.
    canonical = dataclasses.replace(arch, width=1, ratio=1.0,
                                    dense_factors=(1.0,) * len(arch.dense_factors))
    self_vars, cross = _lenet_fns(canonical)
    a = jnp.asarray(x1.reshape((-1,) + shape), jnp.float64)
    b = a if symmetric else jnp.asarray(x2.reshape((-1,) + shape), jnp.float64)
    va = [np.asarray(v) for v in self_vars(a)]
    vb = va if symmetric else [np.asarray(v) for v in self_vars(b)]
    n1, n2 = a.shape[0], b.shape[0]
    bs1, bs2 = min(block_size, n1), min(block_size, n2)
    rows = [slice(i, min(i + bs1, n1)) for i in range(0, n1, bs1)]
    cols = [slice(j, min(j + bs2, n2)) for j in range(0, n2, bs2)]
    todo = [(r, c) for i, r in enumerate(rows) for j, c in enumerate(cols)
            if not symmetric or j >= i]
    out = {"nngp": np.empty((n1, n2)), "ntk": np.empty((n1, n2))}

    def pad(arr, idx, m):
        arr = arr[idx]
        return arr if arr.shape[0] == m else np.concatenate(
            [arr, np.repeat(arr[-1:], m - arr.shape[0], axis=0)])

    a_np, b_np = np.asarray(a), np.asarray(b)
    show = len(todo) > 8 if progress is None else progress
    for r, c in tqdm(todo, desc="LeNet kernel", disable=not show, leave=False):
        sig, theta = cross(pad(a_np, r, bs1), pad(b_np, c, bs2),
                           [pad(v, r, bs1) for v in va], [pad(v, c, bs2) for v in vb])
        for name, val in (("nngp", sig), ("ntk", theta)):
            k = np.asarray(val)[: r.stop - r.start, : c.stop - c.start]
            out[name][r, c] = k
            if symmetric and r != c:
                out[name][c, r] = k.T
    if symmetric:  # diagonal blocks: exact symmetry
        out = {k: 0.5 * (v + v.T) for k, v in out.items()}
    return out


# --------------------------------------------------------------------------------------
# Fixed-budget gradient descent and its infinite-width limit
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GDResult:
    """Outcome of :func:`train_gd`. ``history`` has columns step, train_loss, test_mse."""

    train_loss: float
    test_mse: float
    test_pred: np.ndarray | None
    steps: int
    converged: bool
    diverged: bool
    learning_rate: float
    history: pd.DataFrame
    seconds: float


@lru_cache(maxsize=32)
def _gd_fns(arch: Architecture, learning_rate: float, momentum: float, x64: bool):
    _, apply_fn, _ = arch.stax
    opt = optax.sgd(learning_rate, momentum=momentum or None)

    def loss(params, x, y, f0):
        return 0.5 * jnp.mean(jnp.sum((apply_fn(params, x) - f0 - y) ** 2, axis=-1))

    # A Python loop over a jitted step: XLA:CPU runs convolutions ~10× slower inside a
    # rolled lax.scan / while loop than as straight-line code (measured, jax 0.10).
    @partial(jax.jit, donate_argnums=(0, 1))
    def step(params, state, x, y, f0):
        g = jax.grad(loss)(params, x, y, f0)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state

    return step, jax.jit(apply_fn), opt


def init_params(arch: Architecture, shape: tuple[int, ...], seed: int,
                dtype: str = "float64") -> Any:
    """NTK-parameterised initial parameters: every weight and bias i.i.d. N(0, 1), drawn
    with ``numpy.random.default_rng(seed)`` in the order of the parameter tree.

    Same law as ``arch.stax[0]`` (neural-tangents' NTK init), without its cost: it compiles
    one threefry kernel per tensor shape, ~1.5 s each on a loaded CPU.
    """
    init_fn = arch.stax[0]
    spec = jax.eval_shape(lambda k: init_fn(k, (-1,) + tuple(shape))[1], jax.random.PRNGKey(0))
    rng = np.random.default_rng(seed)
    return jax.tree_util.tree_map(lambda s: rng.standard_normal(s.shape).astype(dtype), spec)


def train_gd(arch: Architecture, x_train: Any, y_train: Any, x_test: Any = None,
             y_test: Any = None, *, steps: int, learning_rate: float, momentum: float = 0.9,
             seed: int = 0, dtype: str = "float32", center: bool = True,
             eval_every: int | None = None, tol: float = 1e-3) -> GDResult:
    """``steps`` steps of full-batch heavy-ball GD (optax.sgd) on (1/2n)·‖f − f₀ − y‖².

    ``center=True`` trains f_θ − f_θ₀ (zero function at initialisation), whose
    infinite-width limit is :func:`kernel_gd_predict` with the same ``steps``,
    ``learning_rate`` and ``momentum``. Parameters start from :func:`init_params`.
    ``dtype="float32"`` runs the whole step in float32 (x64 switched off inside), about 2×
    faster than float64 for conv nets on CPU. ``converged``: final loss ≤ ``tol`` × initial
    loss; ``diverged``: final loss NaN or above the initial loss (training stops early once
    the loss exceeds 100 × its initial value).

    Example:
        >>> import infwidth as iw
        >>> x = iw.sample_inputs("hypercube", 32, 16, seed=0)
        >>> r = iw.train_gd(iw.MLP(depth=1, width=64), x, x[:, :1], steps=50,
        ...                 learning_rate=0.5)
        >>> bool(r.train_loss < r.history.train_loss.iloc[0])
        True
    """
    if not isinstance(arch, Architecture):
        raise TypeError(f"arch must be an infwidth architecture, got {type(arch).__name__}")
    x_train = check_inputs(x_train, "x_train")
    n, dim = x_train.shape
    y_train = _targets(y_train, n, "y_train")
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test must be given together")
    x_all = x_train
    if x_test is not None:
        x_test = check_inputs(x_test, "x_test", dim)
        y_test = _targets(y_test, x_test.shape[0], "y_test")
        x_all = np.concatenate([x_train, x_test])
    if y_train.shape[1] != arch.out_dim:
        raise ValueError(f"y_train has {y_train.shape[1]} output(s), arch.out_dim is "
                         f"{arch.out_dim}")
    _check_pos_int("steps", steps)
    if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate)
            and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    eval_every = max(1, steps // 10) if eval_every is None else _check_pos_int(
        "eval_every", eval_every)
    shape = arch.input_shape(dim)
    t0 = time.perf_counter()
    params = init_params(arch, shape, seed, dtype)
    with jax.enable_x64(dtype == "float64"):
        dt = jnp.float64 if dtype == "float64" else jnp.float32
        step, predict, opt = _gd_fns(arch, float(learning_rate), float(momentum),
                                     dtype == "float64")
        params = jax.tree_util.tree_map(lambda p: jnp.asarray(p, dt), params)
        xs_all = jnp.asarray(x_all.reshape((-1,) + shape), dt)
        xs, ys = xs_all[:n], jnp.asarray(y_train, dt)
        f0_all = (np.asarray(predict(params, xs_all), np.float64) if center
                  else np.zeros((x_all.shape[0], y_train.shape[1])))
        f0 = jnp.asarray(f0_all[:n], dt)

        def evaluate(p, t):
            out = np.asarray(predict(p, xs_all), np.float64) - f0_all
            row = {"step": t, "train_loss": 0.5 * float(np.mean(np.sum(
                (out[:n] - y_train) ** 2, axis=1))), "test_mse": np.nan}
            if x_test is not None:
                row["test_mse"] = float(np.mean((out[n:] - y_test) ** 2))
            return row, out[n:]

        row, pred = evaluate(params, 0)
        history = [row]
        state = opt.init(params)
        t = 0
        while t < steps:
            params, state = step(params, state, xs, ys, f0)
            t += 1
            if t % eval_every == 0 or t == steps:
                row, pred = evaluate(params, t)
                history.append(row)
                if not row["train_loss"] <= 100 * history[0]["train_loss"]:
                    break  # NaN or blowing up
    hist = pd.DataFrame(history)
    final, first = float(hist.train_loss.iloc[-1]), float(hist.train_loss.iloc[0])
    diverged = not final <= first
    return GDResult(final, float(hist.test_mse.iloc[-1]),
                    pred if x_test is not None else None, t,
                    bool(final <= tol * first), diverged,
                    float(learning_rate), hist, time.perf_counter() - t0)


def _targets(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},) or ({n}, k), got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or inf")
    return y


def _check_kernels(k_train: Any, k_test_train: Any, y_train: Any):
    k = np.asarray(k_train, dtype=np.float64)
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"k_train must be a square matrix, got shape {k.shape}")
    kt = np.asarray(k_test_train, dtype=np.float64)
    if kt.ndim != 2 or kt.shape[1] != k.shape[0]:
        raise ValueError(f"k_test_train must have shape (m, {k.shape[0]}), got {kt.shape}")
    if not (np.all(np.isfinite(k)) and np.all(np.isfinite(kt))):
        raise ValueError("kernel matrices contain NaN or inf")
    y = _targets(y_train, k.shape[0], "y_train")
    lam, v = np.linalg.eigh(0.5 * (k + k.T))
    return lam, v, kt, y


def kernel_gd_predict(k_train: Any, k_test_train: Any, y_train: Any, *, steps: int,
                      learning_rate: float, momentum: float = 0.9):
    """Infinite-width limit of :func:`train_gd`: (test, train) predictions of the
    linearised centred model after ``steps`` heavy-ball GD steps with NTK Θ.

    Per eigenpair (λ, v) of Θ, with f_t = Θ·V·diag(a_t)·Vᵀ·y on the training set and
    f_t(x*) = Θ(x*, X)·V·diag(a_t)·Vᵀ·y on the test set, the optax.sgd recursion is
    b_{t+1} = (1 − λ·a_t)/n + μ·b_t,  a_{t+1} = a_t + η·b_{t+1},  a_0 = b_0 = 0
    (for μ = 0: a_t = (1 − (1 − ηλ/n)^t)/λ); no division by small λ.
    """
    _check_pos_int("steps", steps)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    lam, v, kt, y = _check_kernels(k_train, k_test_train, y_train)
    n = lam.shape[0]
    a, b = np.zeros(n), np.zeros(n)
    for _ in range(steps):
        b = (1.0 - lam * a) / n + momentum * b
        a = a + learning_rate * b
    coef = v @ (a[:, None] * (v.T @ y))
    return kt @ coef, k_train @ coef


def kernel_regression(k_train: Any, k_test_train: Any, y_train: Any,
                      ridge: float = 0.0, rcond: float = 1e-12) -> np.ndarray:
    """Kernel ridge regression k(x*, X)·(K + ridge·I)⁻¹·y (eigenvalues ≤ rcond·λ_max are
    dropped when ridge = 0: the minimum-norm interpolant)."""
    if not (ridge >= 0 and math.isfinite(ridge)):
        raise ValueError(f"ridge must be a non-negative number, got {ridge!r}")
    lam, v, kt, y = _check_kernels(k_train, k_test_train, y_train)
    keep = lam > rcond * lam[-1] if ridge == 0 else np.ones_like(lam, bool)
    inv = np.where(keep, 1.0 / np.where(keep, lam + ridge, 1.0), 0.0)
    return kt @ (v @ (inv[:, None] * (v.T @ y)))


# --------------------------------------------------------------------------------------
# Width sweep
# --------------------------------------------------------------------------------------
SWEEP_COLUMNS = ["family", "width", "seed", "test_error", "test_mse", "train_loss",
                 "converged", "diverged", "params", "flops", "steps", "seconds"]


def width_sweep(family: Architecture, x_train: Any, labels_train: Any, x_test: Any,
                labels_test: Any, widths: Sequence[int], seeds: Sequence[int] = (0, 1, 2), *,
                steps: int, learning_rate: float, momentum: float = 0.9,
                dtype: str = "float32", name: str | None = None,
                existing: pd.DataFrame | None = None,
                on_row: Callable[[dict], None] | None = None,
                progress: bool | None = None) -> pd.DataFrame:
    """Train ``family`` at every width × seed with :func:`train_gd` on centred one-hot
    targets; one tidy row each (columns ``SWEEP_COLUMNS``).

    ``test_error`` is the classification error (arg-max of the outputs), ``test_mse`` the
    mean squared error per output; ``diverged`` runs (loss above its initial value) should
    be left out of fits. Rows already in ``existing`` (same family, width, seed)
    are skipped; ``on_row`` sees every new row (to save partial results).
    ``flops`` is ``arch.flops(dim)`` when the architecture has it, else NaN.
    """
    if not isinstance(family, Architecture):
        raise TypeError(f"family must be an infwidth architecture, got {type(family).__name__}")
    widths = [_check_pos_int("widths", w) for w in widths]
    seeds = [int(s) for s in seeds]
    if not widths or not seeds:
        raise ValueError("widths and seeds must be non-empty")
    name = name or type(family).__name__
    x_train, x_test = check_inputs(x_train, "x_train"), check_inputs(x_test, "x_test")
    c = family.out_dim
    ytr, yte = (_one_hot(lab, c, nm, x.shape[0]) for lab, nm, x in
                ((labels_train, "labels_train", x_train), (labels_test, "labels_test", x_test)))
    done = set()
    if existing is not None and len(existing):
        sub = existing[existing.family == name]
        done = set(zip(sub.width.astype(int), sub.seed.astype(int)))
    rows = [] if existing is None else existing.to_dict("records")
    todo = [(w, s) for w in widths for s in seeds if (w, s) not in done]
    dim = x_train.shape[1]
    for w, s in tqdm(todo, desc=f"{name} widths", disable=not (progress or
                                                               (progress is None and todo))):
        arch = dataclasses.replace(family, width=w)
        res = train_gd(arch, x_train, ytr, x_test, yte, steps=steps,
                       learning_rate=learning_rate, momentum=momentum, seed=s, dtype=dtype)
        err = (float(np.mean(np.argmax(res.test_pred, 1) != np.asarray(labels_test)))
               if np.all(np.isfinite(res.test_pred)) else np.nan)
        row = {"family": name, "width": w, "seed": s, "test_error": err,
               "test_mse": res.test_mse, "train_loss": res.train_loss,
               "converged": res.converged, "diverged": res.diverged,
               "params": count_params(arch, dim),
               "flops": arch.flops(dim) if hasattr(arch, "flops") else np.nan,
               "steps": res.steps, "seconds": res.seconds}
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def _one_hot(labels: Any, c: int, name: str, n: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"{name} must be {n} integer labels, got shape {lab.shape}, "
                         f"dtype {lab.dtype}")
    if lab.min() < 0 or lab.max() >= c:
        raise ValueError(f"{name} must lie in [0, {c}) (arch.out_dim), got "
                         f"[{lab.min()}, {lab.max()}]")
    out = np.full((n, c), -1.0 / c)
    out[np.arange(n), lab] += 1.0
    return out


# --------------------------------------------------------------------------------------
# Power-law fits
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerLawFit:
    """A fitted ε(w) = ε∞ + A·w^{−ρ} (``model="offset"``) or A·w^{−ρ} (``"power"``).

    Residuals are relative, (model − ε)/ε, in both models (so their RSS are comparable and
    the models nested). ``ci`` maps each parameter to its percentile bootstrap interval.
    """

    model: str
    A: float
    rho: float
    eps_inf: float
    ci: dict
    rss: float
    n_obs: int
    n_params: int
    ci_level: float
    n_boot: int
    bootstrap: str

    def predict(self, w: Any) -> np.ndarray:
        return self.eps_inf + self.A * np.asarray(w, dtype=np.float64) ** (-self.rho)

    @property
    def aicc(self) -> float:
        n, k = self.n_obs, self.n_params
        return n * math.log(max(self.rss, 1e-300) / n) + 2 * k + 2 * k * (k + 1) / max(
            n - k - 1, 1)

    @property
    def bic(self) -> float:
        return self.n_obs * math.log(max(self.rss, 1e-300) / self.n_obs) + \
            self.n_params * math.log(self.n_obs)

    def table(self) -> pd.DataFrame:
        names = ["A", "rho"] + (["eps_inf"] if self.model == "offset" else [])
        return pd.DataFrame({"model": self.model, "param": names,
                             "estimate": [getattr(self, p) for p in names],
                             "ci_low": [self.ci[p][0] for p in names],
                             "ci_high": [self.ci[p][1] for p in names]})


def _profile(w, e, rho, offset):
    """Best (ε∞, A) for fixed ρ by weighted linear least squares (weights 1/ε), ε∞ ≥ 0."""
    z = w ** (-rho) / e
    if offset:
        design = np.stack([1.0 / e, z], axis=1)
        coef, *_ = np.linalg.lstsq(design, np.ones_like(e), rcond=None)
        if coef[0] >= 0:
            r = design @ coef - 1.0
            return coef[0], coef[1], float(r @ r)
    a = float(z @ np.ones_like(e) / (z @ z))
    r = a * z - 1.0
    return 0.0, a, float(r @ r)


def _profile_grid(w, e, rhos, offset):
    """RSS of :func:`_profile` for every ρ in ``rhos`` at once (2×2 normal equations)."""
    z = w[None, :] ** (-rhos[:, None]) / e[None, :]
    zz, z1 = np.sum(z * z, 1), np.sum(z, 1)
    a0 = z1 / zz  # ε∞ = 0
    rss_a = np.sum((a0[:, None] * z - 1.0) ** 2, 1)
    if not offset:
        return rss_a
    u = 1.0 / e
    uu, u1, uz = u @ u, u.sum(), z @ u
    det = uu * zz - uz ** 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        eps = (zz * u1 - uz * z1) / det
        a = (uu * z1 - uz * u1) / det
        rss_b = np.sum((eps[:, None] * u + a[:, None] * z - 1.0) ** 2, 1)
    return np.where((eps >= 0) & np.isfinite(rss_b), rss_b, rss_a)


def _fit_once(w, e, offset, rho_bounds):
    grid = np.linspace(rho_bounds[0], rho_bounds[1], 121)
    rss = _profile_grid(w, e, grid, offset)
    i = int(np.argmin(rss))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = scipy.optimize.minimize_scalar(lambda r: _profile(w, e, r, offset)[2],
                                         bounds=(lo, hi), method="bounded",
                                         options={"xatol": 1e-10})
    rho = float(res.x) if res.fun <= rss[i] else float(grid[i])
    eps, a, rss_best = _profile(w, e, rho, offset)
    return float(eps), float(a), rho, rss_best


def _validate_curve(widths: Any, errors: Any):
    w = np.asarray(widths, dtype=np.float64).ravel()
    e = np.asarray(errors, dtype=np.float64).ravel()
    if w.shape != e.shape:
        raise ValueError(f"widths and errors must have the same length, got {w.size} and "
                         f"{e.size}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("widths must be positive and finite")
    if not np.all(np.isfinite(e)):
        raise ValueError("errors contain NaN or inf; drop diverged runs before fitting")
    if np.any(e <= 0):
        raise ValueError("errors must be positive (relative residuals divide by them)")
    if np.unique(w).size < 3:
        raise ValueError(f"a power-law fit needs at least 3 distinct widths, got "
                         f"{np.unique(w).size}")
    return w, e


def fit_power_law(widths: Any, errors: Any, *, model: str = "offset", n_boot: int = 1000,
                  ci: float = 0.95, seed: int = 0, rho_bounds: tuple[float, float] = (0.0, 5.0),
                  bootstrap: str = "auto") -> PowerLawFit:
    """Fit ε(w) = ε∞ + A·w^{−ρ} (``model="offset"``, ε∞ ≥ 0) or A·w^{−ρ} (``"power"``).

    Least squares on relative residuals Σ((model − ε)/ε)², by variable projection: for each
    ρ the linear parameters (ε∞, A) are solved exactly, and ρ is found by a grid on
    ``rho_bounds`` refined with a bounded scalar minimiser. One observation per
    (width, seed) pair is the usual input.

    Intervals: percentile bootstrap with ``n_boot`` seeded resamples. ``"residuals"`` (the
    default, ``"auto"``) multiplies the fit by resampled log-ratios ε/model (centred,
    inflated by √(n/(n − k))); ``"cases"`` resamples the observations within each width
    (needs ≥ 2 per width). On synthetic curves (8 widths × 3 seeds, 3% noise) the residual
    bootstrap's 95% intervals covered ρ, ε∞ and A in 99%, 95% and 93% of 100 replicates;
    the case bootstrap in 93%, 85% and 90% of 60 (too narrow with 3 cases per width).

    Example:
        >>> import numpy as np, infwidth as iw
        >>> w = np.repeat([2, 4, 8, 16, 32, 64], 3)
        >>> e = (0.05 + 0.8 * w ** -0.7) * np.random.default_rng(0).lognormal(0, .02, w.size)
        >>> fit = iw.fit_power_law(w, e, n_boot=200)
        >>> fit.ci["rho"][0] < 0.7 < fit.ci["rho"][1]
        True
    """
    if model not in ("offset", "power"):
        raise ValueError(f"model must be 'offset' or 'power', got {model!r}")
    w, e = _validate_curve(widths, errors)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ValueError(f"n_boot must be a non-negative integer, got {n_boot!r}")
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci!r}")
    if not (len(rho_bounds) == 2 and 0 <= rho_bounds[0] < rho_bounds[1]):
        raise ValueError(f"rho_bounds must be (low, high) with 0 ≤ low < high, "
                         f"got {rho_bounds!r}")
    offset = model == "offset"
    if offset and w.size < 4:
        raise ValueError("the offset model has 3 parameters and needs at least 4 observations")
    eps, a, rho, rss = _fit_once(w, e, offset, rho_bounds)
    groups = [np.flatnonzero(w == u) for u in np.unique(w)]
    if bootstrap == "auto":
        bootstrap = "residuals"
    if bootstrap not in ("cases", "residuals"):
        raise ValueError(f"bootstrap must be 'auto', 'cases' or 'residuals', "
                         f"got {bootstrap!r}")
    if bootstrap == "cases" and min(len(g) for g in groups) < 2:
        raise ValueError("bootstrap='cases' needs at least 2 observations per width")
    rng = np.random.default_rng(seed)
    fitted = eps + a * w ** (-rho)
    # Residual bootstrap on log(ε/model), centred and inflated by √(n/(n − k)) for the
    # fitted parameters (Davison & Hinkley 1997, §6.2.3).
    k = 3 if offset else 2
    logr = np.log(e / fitted) if np.all(fitted > 0) else np.zeros_like(e)
    logr = (logr - logr.mean()) * math.sqrt(w.size / max(w.size - k, 1))
    draws = []
    for _ in range(n_boot):
        if bootstrap == "cases":
            idx = np.concatenate([rng.choice(g, size=len(g)) for g in groups])
            wb, eb = w[idx], e[idx]
        else:
            wb, eb = w, fitted * np.exp(rng.choice(logr, size=w.size))
        if np.any(eb <= 0):
            continue
        draws.append(_fit_once(wb, eb, offset, rho_bounds)[:3])
    q = ((1 - ci) / 2, (1 + ci) / 2)
    d = np.asarray(draws).reshape(-1, 3)
    interval = (lambda col: tuple(float(v) for v in np.quantile(col, q))) if len(d) else \
        (lambda col: (math.nan, math.nan))
    cis = {"eps_inf": interval(d[:, 0]), "A": interval(d[:, 1]), "rho": interval(d[:, 2])}
    return PowerLawFit(model, a, rho, eps, cis, rss, int(w.size), 3 if offset else 2, ci,
                       len(d), bootstrap)


def compare_power_laws(widths: Any, errors: Any, *, level: float = 0.05,
                       **kwargs) -> tuple[PowerLawFit, PowerLawFit, dict]:
    """Fit both models and compare them by the nested-model F-test on the relative RSS:
    F = (RSS_power − RSS_offset)/(RSS_offset/(n − 3)) on (1, n − 3) degrees of freedom.

    The offset model is preferred when p < ``level``. ε∞ ≥ 0 puts the null on the boundary,
    where the F-test is conservative. ΔAICc and ΔBIC (power − offset; positive favours the
    offset) are reported beside it but do not decide.
    """
    power = fit_power_law(widths, errors, model="power", **kwargs)
    offset = fit_power_law(widths, errors, model="offset", **kwargs)
    n = offset.n_obs
    dof = n - 3
    f_stat = max(power.rss - offset.rss, 0.0) / max(offset.rss / dof, 1e-300)
    p = float(scipy.stats.f.sf(f_stat, 1, dof))
    return power, offset, {"test": "F (nested, relative residuals)", "F": f_stat,
                           "p_value": p, "delta_aicc": power.aicc - offset.aicc,
                           "delta_bic": power.bic - offset.bic,
                           "preferred": "offset" if p < level else "power"}
