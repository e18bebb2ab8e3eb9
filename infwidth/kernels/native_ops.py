"""Array operations of the native engine, one class per backend, the same formulas.

:class:`NumpyOps` (CPU: in-place numpy ufuncs on cache-sized chunks, since XLA:CPU's float64
transcendentals are scalar) and :class:`JaxOps` (GPU: the same recursion in ``jax.numpy``,
jitted per tile shape) implement the layer maps of :mod:`infwidth.architectures.layers` on tiles of
input pairs; :mod:`infwidth.kernels.native` drives them.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator

import numpy as np

from infwidth.architectures.activations import get_activation
from infwidth.architectures.layers import Conv, conv_taps
from infwidth.kernels.native_band import Band, BandOps
from infwidth.kernels.native_band import gram as band_gram

try:  # the clip ufunc itself: np.clip's Python wrapper costs ~20 µs a call
    from numpy._core.umath import clip as _clip
except ImportError:  # numpy < 2
    from numpy.core.umath import clip as _clip

__all__ = ["NumpyOps", "JaxOps", "CHUNK", "conv_taps", "gram_layout"]

# The nonlinearity runs on chunks of CHUNK elements (in L2; measured best on this CPU).
CHUNK = 2**15

# --------------------------------------------------------------------------------------
# numpy operations. Layouts: (t1, t2, *Sa, *Sb) for a full covariance (pair axes first, so a
# shift of both positions slices long runs of the (Sa, Sb) block; measured 2-4× faster than
# pair axes last), (*S, t1, t2) for the diagonal (every spatial slice a run of (t1, t2)
# blocks). A pairwise (self) array has t1 = n, t2 = 1.
# --------------------------------------------------------------------------------------
def gram_layout(g: np.ndarray, c: int, full: bool, pos: tuple[int, ...]) -> np.ndarray:
    """A first Gram's inner products /c (in place), reshaped to the tile layout:
    (t1, t2, *S, *S) from (t1, t2, P, P), or (*S, t1, t2) from (P, t1, t2)."""
    g *= 1.0 / c
    if full:
        return g.reshape(g.shape[:2] + pos * 2)
    return g.reshape(pos + g.shape[-2:])


def _ix(ndim: int, where: dict[int, slice]) -> tuple[slice, ...]:
    return tuple(where.get(a, slice(None)) for a in range(ndim))


def _pieces(n: int, d: int, circular: bool) -> list[tuple[slice, slice]]:
    """(dst, src) slices with dst[i] ← src[i + d] on an axis of length n (zero or wrap)."""
    if circular:
        d %= n
        out = [(slice(0, n - d), slice(d, n))]
        return out + ([(slice(n - d, n), slice(0, d))] if d else [])
    if abs(d) >= n:
        return []
    return [(slice(0, n - d), slice(d, n))] if d >= 0 else [(slice(-d, n), slice(0, n + d))]


def _spatial_axes(nd: int, full: bool, k: int) -> tuple[int, ...]:
    return (2 + k, 2 + nd + k) if full else (k,)


def _view4(shape: tuple[int, ...], nd: int, full: bool) -> tuple[int, int, int, int]:
    """4-D view of a tile array: (t1, t2, R, Q) full, (R, 1, t1, t2) diagonal."""
    if full and nd:
        return (shape[0], shape[1], math.prod(shape[2:2 + nd]), math.prod(shape[2 + nd:]))
    return (math.prod(shape[:nd]), 1, shape[-2], shape[-1])


class NumpyOps(BandOps):
    """In-place numpy kernels of the recursion (inputs may be overwritten)."""

    xp = np

    @staticmethod
    def gram(a: np.ndarray, b: np.ndarray | None, full: bool | Band, pos: tuple[int, ...]):
        """⟨x_a(i), x_b(j)⟩/coords: (*S, t1, t2), (t1, t2, *S, *S), or (*S, t1, *W, t2) for
        a Band; b None: pairwise."""
        if isinstance(full, Band):
            return band_gram(NumpyOps.gram, np, a, b, full, pos)
        t1, p, c = a.shape
        if b is None:
            if full:
                g = np.matmul(a, a.transpose(0, 2, 1))[:, None]
            else:
                g = np.einsum("api,api->pa", a, a)[..., None]
        elif full and c <= 4:  # outer products straight into the (t1, t2, P, P) layout
            g = np.multiply(a[:, None, :, None, 0], b[None, :, None, :, 0])
            for i in range(1, c):
                g += a[:, None, :, None, i] * b[None, :, None, :, i]
        elif full:
            g = (a.reshape(t1 * p, c) @ b.reshape(-1, c).T).reshape(t1, p, b.shape[0], p)
            g = np.ascontiguousarray(g.transpose(0, 2, 1, 3))
        elif p == 1:
            g = (a[:, 0] @ b[:, 0].T)[None]
        else:
            g = np.matmul(a.transpose(1, 0, 2), b.transpose(1, 2, 0))
        return gram_layout(g, c, full, pos)

    @staticmethod
    def conv(x, layer: Conv, nd: int, full: bool):
        """Σ over the taps of a conv (unscaled), one separable pass per axis."""
        for k in range(nd):
            axes = _spatial_axes(nd, full, k)
            q, s, n = layer.filter[k], layer.stride[k], x.shape[axes[0]]
            if s > 1:
                m = (n - q) // s + 1
                out = None
                for a in range(q):
                    v = x[_ix(x.ndim, {ax: slice(a, a + s * (m - 1) + 1, s) for ax in axes})]
                    out = v.copy() if out is None else np.add(out, v, out=out)
            elif layer.padding == "valid":
                m = n - q + 1
                out = x[_ix(x.ndim, {ax: slice(0, m) for ax in axes})].copy()
                for t in range(1, q):
                    out += x[_ix(x.ndim, {ax: slice(t, t + m) for ax in axes})]
            else:
                lo, circ = (q - 1) // 2, layer.padding == "circular"
                out = x.copy()
                for d in range(-lo, q - lo):
                    if d == 0:
                        continue
                    for parts in itertools.product(_pieces(n, d, circ), repeat=len(axes)):
                        dst = _ix(x.ndim, {ax: p[0] for ax, p in zip(axes, parts)})
                        src = _ix(x.ndim, {ax: p[1] for ax, p in zip(axes, parts)})
                        out[dst] += x[src]
            x = out
        return x

    @staticmethod
    def pool(x, window: tuple[int, ...], stride: tuple[int, ...], nd: int):
        """Σ over a window of both positions per axis, Σ'(I, J) = Σ_{a,b} Σ(s·I + a, s·J + b)
        (unscaled, VALID, windows may overlap); full layout only."""
        for k in range(nd):
            p, st = window[k], stride[k]
            m = (x.shape[2 + k] - p) // st + 1
            out = None
            for a, b in itertools.product(range(p), repeat=2):
                v = x[_ix(x.ndim, {2 + k: slice(a, a + st * (m - 1) + 1, st),
                                   2 + nd + k: slice(b, b + st * (m - 1) + 1, st)})]
                out = v.copy() if out is None else np.add(out, v, out=out)
            x = out
        return x

    @staticmethod
    def todiag(x, nd: int):
        """(t1, t2, *S, *S) → (*S, t1, t2): the diagonal positions."""
        s = "ijkl"[:nd]
        return np.ascontiguousarray(np.einsum(f"xy{s}{s}->{s}xy", x))

    @staticmethod
    def read(x, how: str, nd: int, full: bool):
        """Σ over the diagonal (flatten) or over all position pairs (gap), unscaled."""
        if full and how == "flatten":
            s = "ijkl"[:nd]
            return np.einsum(f"xy{s}{s}->xy", x)
        return x.sum(axis=tuple(range(2, 2 + 2 * nd)) if full else tuple(range(nd)))

    @staticmethod
    def affine(x, a: float, b: float):
        x *= a
        if b:
            x += b
        return x

    @staticmethod
    def add(x, y):
        x += y
        return x

    @staticmethod
    def copy(x):
        return x.copy()

    @staticmethod
    def variance(s, nd: int, full: bool):
        """Self variances Σ(x, x)(i, i): (*S, n) from a pairwise (…, n, 1) array (a copy:
        the dual then overwrites ``s``)."""
        if not nd:
            return s[..., 0].reshape(1, -1).copy()
        return (NumpyOps.todiag(s, nd)[..., 0] if full else s[..., 0]).copy()

    @staticmethod
    def dual(act, s, t, v1, v2, nd: int, full: bool, self_pass: bool):
        """K' and K̇'·Θ in place of Σ and Θ, with their scale factors (cK, cD), for the
        activation ``act`` (a registered name or an ActivationSpec). The registry's fused
        fast paths (``spec.fast``) run here in chunks:
        "arccos1" (relu): K = (√(v1v2 − s²) + (π − θ)s)/(2π), K̇ = (π − θ)/(2π),
        θ = arccos(s/√(v1v2)); "arcsin" (erf): u = 2s/√((1+2v1)(1+2v2)),
        K = (2/π)·arcsin u, K̇ = (4/π)/√((1+2v1)(1+2v2) − 4s²). Any other activation:
        ``spec.gaussian_dual`` in numpy. ``v1``, ``v2`` broadcast to the (R, Q, t1, t2)
        view of ``s``."""
        spec = get_activation(act)
        shp = s.shape
        v4 = _view4(shp, nd, full)
        s4 = s.reshape(v4)
        t4 = None if t is None else t.reshape(v4)
        if spec.fast is None:
            return _generic_dual(spec, s4, t4, v1, v2, np, shp)
        name = "relu" if spec.fast == "arccos1" else "erf"
        if name == "relu" and self_pass and not (full and nd):
            s4 *= math.pi  # θ = 0 on the self diagonal
            if t4 is not None:
                t4 *= math.pi
            return s, t, 1 / (2 * math.pi), 1 / (2 * math.pi)
        keep, idx = None, np.arange(v4[2])
        if name == "relu" and self_pass:
            keep = (s4[:, :, idx, idx].copy(), None if t4 is None else t4[:, :, idx, idx].copy())
        if name == "relu":
            with np.errstate(divide="ignore"):
                r1 = np.where(v1 > 0, 1.0 / np.sqrt(v1), 0.0).astype(s.dtype)
                r2 = np.where(v2 > 0, 1.0 / np.sqrt(v2), 0.0).astype(s.dtype)
            n1, n2 = np.sqrt(v1).astype(s.dtype), np.sqrt(v2).astype(s.dtype)
            scales = (1 / (2 * math.pi), 1 / (2 * math.pi))
        else:
            r1 = (2.0 / np.sqrt(1.0 + 2.0 * v1)).astype(s.dtype)
            r2 = (1.0 / np.sqrt(1.0 + 2.0 * v2)).astype(s.dtype)
            n1 = n2 = None
            scales = (2 / math.pi, 2 / math.pi)
        # Chunks of ~CHUNK elements along view axes 0 and 2 (axes 1 and 3 stay whole).
        r, t1n = v4[0], v4[2]
        step_r = max(1, CHUNK // (v4[1] * v4[2] * v4[3]))
        step_a = t1n if step_r > 1 else max(1, CHUNK // (v4[1] * v4[3]))
        nbuf = min(r, step_r) * v4[1] * min(t1n, step_a) * v4[3]
        buf1, buf2 = np.empty(nbuf, s.dtype), np.empty(nbuf, s.dtype)
        for r0, a0 in itertools.product(range(0, r, step_r), range(0, t1n, step_a)):
            rs, as_ = slice(r0, min(r, r0 + step_r)), slice(a0, min(t1n, a0 + step_a))

            def sub(x):
                return x[rs if x.shape[0] > 1 else slice(None), :,
                         as_ if x.shape[2] > 1 else slice(None)]

            sc = s4[rs, :, as_]
            tc = None if t4 is None else t4[rs, :, as_]
            c = buf1[:sc.size].reshape(sc.shape)
            np.multiply(sc, sub(r1), out=c)
            c *= sub(r2)
            w = buf2[:sc.size].reshape(sc.shape)
            if name == "relu":
                _clip(c, -1.0, 1.0, out=c)
                np.arccos(c, out=w)
                np.subtract(math.pi, w, out=w)
                if tc is not None:
                    tc *= w
                np.multiply(c, c, out=c)
                np.subtract(1.0, c, out=c)
                np.sqrt(c, out=c)
                c *= sub(n1)
                c *= sub(n2)
                sc *= w
                sc += c
            else:
                np.arcsin(c, out=sc)
                if tc is not None:
                    np.multiply(c, c, out=w)
                    np.subtract(1.0, w, out=w)
                    np.sqrt(w, out=w)
                    tc /= w
                    tc *= sub(r1)
                    tc *= sub(r2)
        if keep is not None:
            s4[:, :, idx, idx] = math.pi * keep[0]
            if t4 is not None:
                t4[:, :, idx, idx] = math.pi * keep[1]
        return s, t, scales[0], scales[1]

    band_self_dual = dual


# --------------------------------------------------------------------------------------
# jax operations (functional; the same formulas)
# --------------------------------------------------------------------------------------
class JaxOps(BandOps):
    """Functional ``jax.numpy`` versions of :class:`NumpyOps`, traced inside ``jax.jit``."""

    def __init__(self) -> None:
        import jax.numpy as jnp

        self.xp = jnp

    def gram(self, a, b, full, pos):
        jnp = self.xp
        if isinstance(full, Band):
            return band_gram(self.gram, jnp, a, b, full, pos)
        c = a.shape[-1]
        if b is None:
            g = (jnp.einsum("api,aqi->apq", a, a)[:, None] if full
                 else jnp.einsum("api,api->pa", a, a)[..., None])
        elif full:
            g = jnp.einsum("api,bqi->abpq", a, b)
        else:
            g = jnp.einsum("api,bpi->pab", a, b)
        g = g / c
        if full:
            return g.reshape(g.shape[:2] + pos * 2)
        return g.reshape(pos + g.shape[-2:])

    def conv(self, x, layer, nd, full):
        """Σ over the taps (unscaled), one separable pass per axis: Σ'(i, j) = Σ_t Σ(i + t,
        j + t) on both position axes at once, as a sum of q slices of one array (for same and
        circular padding, x extended once by its zero padding or wrapped ends: a gather, which
        XLA:CPU fuses into its consumer where it materialised a pad or concatenation). No
        shifted copies: one loop per axis that XLA can fuse with the affine map and dual after
        it (benchmarks/jax_tiles.py reports what XLA made of a tile)."""
        jnp = self.xp
        for k in range(nd):
            axes = _spatial_axes(nd, full, k)
            q, s, n = layer.filter[k], layer.stride[k], x.shape[axes[0]]
            ext, m = x, (n - q) // s + 1
            if s == 1 and layer.padding != "valid":
                taps = conv_taps(n, q, 1, layer.padding)  # o + a − lo: wrapped, or −1 (zero)
                idx = np.concatenate([taps[0], taps[1:, -1]])  # the extended axis, i − lo
                idx[idx < 0] = n  # out of bounds: filled with 0
                for ax in axes:
                    ext = jnp.take(ext, idx, axis=ax, mode="fill", fill_value=0)
                m = n
            x = functools.reduce(operator.add, (
                ext[_ix(x.ndim, {ax: slice(a, a + s * (m - 1) + 1, s) for ax in axes})]
                for a in range(q)))
        return x

    def pool(self, x, window, stride, nd):
        """Σ over a window of both positions per axis, Σ'(I, J) = Σ_{a,b} Σ(s·I + a, s·J + b)
        (unscaled, VALID): per axis a sum of p² strided slices, which XLA fuses into one loop
        (a reshape-sum and ``lax.reduce_window`` were no faster on XLA:CPU); full layout
        only."""
        for k in range(nd):
            p, st = window[k], stride[k]
            m = (x.shape[2 + k] - p) // st + 1
            x = functools.reduce(operator.add, (
                x[_ix(x.ndim, {2 + k: slice(a, a + st * (m - 1) + 1, st),
                               2 + nd + k: slice(b, b + st * (m - 1) + 1, st)})]
                for a, b in itertools.product(range(p), repeat=2)))
        return x

    def todiag(self, x, nd):
        s = "ijkl"[:nd]
        return self.xp.einsum(f"xy{s}{s}->{s}xy", x)

    def read(self, x, how, nd, full):
        if full and how == "flatten":
            s = "ijkl"[:nd]
            return self.xp.einsum(f"xy{s}{s}->xy", x)
        return x.sum(axis=tuple(range(2, 2 + 2 * nd)) if full else tuple(range(nd)))

    def affine(self, x, a, b):
        return x * a + b

    def add(self, x, y):
        return x + y

    def copy(self, x):
        return x

    def variance(self, s, nd, full):
        if not nd:
            return s[..., 0].reshape(1, -1)
        return self.todiag(s, nd)[..., 0] if full else s[..., 0]

    def dual(self, act, s, t, v1, v2, nd, full, self_pass):
        jnp = self.xp
        spec = get_activation(act)
        shp = s.shape
        v4 = _view4(shp, nd, full)
        s4 = s.reshape(v4)
        t4 = None if t is None else t.reshape(v4)
        if spec.fast is None:
            return _generic_dual(spec, s4, t4, v1, v2, jnp, shp)
        if spec.fast == "arccos1":
            r1 = jnp.where(v1 > 0, 1.0 / jnp.sqrt(jnp.where(v1 > 0, v1, 1.0)), 0.0)
            r2 = jnp.where(v2 > 0, 1.0 / jnp.sqrt(jnp.where(v2 > 0, v2, 1.0)), 0.0)
            c = jnp.clip(s4 * r1 * r2, -1.0, 1.0)
            w = math.pi - jnp.arccos(c)
            k = jnp.sqrt(1.0 - c * c) * jnp.sqrt(v1) * jnp.sqrt(v2) + w * s4
            if self_pass:
                eye = (np.arange(v4[2])[:, None] == np.arange(v4[3])[None, :]) if full and nd \
                    else np.ones((v4[2], v4[3]), bool)
                eye = eye[None, None]
                k = jnp.where(eye, math.pi * s4, k)
                w = jnp.where(eye, math.pi, w)
            d = None if t4 is None else w * t4
            cs = (1 / (2 * math.pi), 1 / (2 * math.pi))
        else:
            r1, r2 = 2.0 / jnp.sqrt(1.0 + 2.0 * v1), 1.0 / jnp.sqrt(1.0 + 2.0 * v2)
            u = s4 * r1 * r2
            k = jnp.arcsin(u)
            d = None if t4 is None else t4 * r1 * r2 / jnp.sqrt(1.0 - u * u)
            cs = (2 / math.pi, 2 / math.pi)
        return (k.reshape(shp), None if d is None else d.reshape(shp), cs[0], cs[1])

    band_self_dual = dual


def _generic_dual(spec, s4, t4, v1, v2, xp, shp):
    """(K, K̇·Θ, 1, 1) from the registry's ``gaussian_dual`` (θ = atan2(√D, s) keeps the
    self diagonal exact where the dual has an angle)."""
    k, kd = spec.gaussian_dual(v1, v2, s4, xp=xp)
    if xp is np:
        k = np.array(np.broadcast_to(k, s4.shape), dtype=s4.dtype)
        d = None if t4 is None else np.multiply(t4, kd, dtype=s4.dtype)
    else:
        k = xp.broadcast_to(k, s4.shape)
        d = None if t4 is None else t4 * kd
    return k.reshape(shp), None if d is None else d.reshape(shp), 1.0, 1.0
