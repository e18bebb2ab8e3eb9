"""Fused CPU kernels of the native engine, compiled by numba.

:class:`NumbaOps` replaces the two operations that dominate :class:`NumpyOps`' time by
one-pass compiled loops that release the GIL (so the engine's tile threads run in parallel):

- ``dual``: the whole ReLU/erf dual of Σ and Θ in one pass per element, instead of ~13
  in-place numpy passes. XLA:CPU and libm evaluate ``acos`` one scalar at a time; here
  ``acos``/``asin`` use the rational approximation of fdlibm (Sun Microsystems, 1993:
  asin(x) = x + x·z·P(z)/Q(z), z = x², and asin(x) = π/2 − 2·asin(√((1 − x)/2)) above
  0.5), branch-free, so LLVM vectorises the loop (within 4ε of numpy's ``arccos``/``arcsin``,
  ``tests/test_native_engine.py``; the rates of the options: ``benchmarks/cpu_dual_options.py``).
- ``conv``: the q diagonal taps per axis of a stride-1 convolution of the covariance, one
  pair's (P, P) block at a time (in cache), separable over the axes, the innermost loop a
  contiguous run of the last axis (no padded copies: each tap's valid run is precomputed,
  two runs for circular padding). The diagonal layout's conv adds whole (t1, t2) blocks per
  tap, all taps of an output position in one pass.

Everything else (first Gram, pooling, readouts) stays numpy; formulas in
:mod:`infwidth.kernels.native_ops`.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba as nb
import numpy as np

from infwidth.architectures.activations import get_activation
from infwidth.architectures.layers import Conv
from infwidth.kernels.native_ops import NumpyOps, _view4, conv_taps, gram_layout

__all__ = ["NumbaOps"]

_JIT = dict(nogil=True, cache=True, error_model="numpy")

# fdlibm e_asin.c coefficients: asin(x) = x + x·z·P(z)/Q(z), z = x², on |x| ≤ 0.5.
_P0, _P1, _P2 = 1.66666666666666657415e-01, -3.25565818622400915405e-01, \
    2.01212532134862925881e-01
_P3, _P4, _P5 = -4.00555345006794114027e-02, 7.91534994289814532176e-04, \
    3.47933107596021167570e-05
_Q1, _Q2, _Q3, _Q4 = -2.40339491173441421878e+00, 2.02094576023350569471e+00, \
    -6.88283971605453293030e-01, 7.70381505559019352791e-02
_HALF_PI = 0.5 * math.pi


@nb.njit(inline="always", **_JIT)
def _asin_acos(c):
    """(asin c, acos c) for c in [−1, 1], branch-free (selects only)."""
    a = abs(c)
    big = a > 0.5
    z = (1.0 - a) * 0.5 if big else c * c
    r = z * (_P0 + z * (_P1 + z * (_P2 + z * (_P3 + z * (_P4 + z * _P5))))) / (
        1.0 + z * (_Q1 + z * (_Q2 + z * (_Q3 + z * _Q4))))
    sq = math.sqrt(z)
    two = 2.0 * (sq + sq * r)  # acos|c| = 2·asin√z when |c| > 0.5
    small = c + c * r  # asin c when |c| ≤ 0.5
    asin_big = _HALF_PI - two if c > 0 else two - _HALF_PI
    acos_big = two if c > 0 else math.pi - two
    return (asin_big if big else small), (acos_big if big else _HALF_PI - small)


@nb.njit(**_JIT)
def _asin_acos_array(c):
    """Elementwise (asin c, acos c) of a 1-D array (for tests)."""
    s, a = np.empty_like(c), np.empty_like(c)
    for i in range(c.size):
        s[i], a[i] = _asin_acos(c[i])
    return s, a


@nb.njit(inline="always", **_JIT)
def _relu_run(s, t, has_t, r1, q1, r2, q2):
    """One contiguous run, relu: c = s·r1·r2 clipped to [−1, 1], θ = acos c,
    K = √(1 − c²)·q1·q2 + (π − θ)·s, K̇Θ = (π − θ)·Θ (unscaled; the caller applies 1/2π)."""
    if has_t:
        for b in range(s.size):
            c = min(max(s[b] * r1 * r2[b], -1.0), 1.0)
            w = math.pi - _asin_acos(c)[1]
            s[b] = math.sqrt(1.0 - c * c) * q1 * q2[b] + w * s[b]
            t[b] = w * t[b]
    else:
        for b in range(s.size):
            c = min(max(s[b] * r1 * r2[b], -1.0), 1.0)
            w = math.pi - _asin_acos(c)[1]
            s[b] = math.sqrt(1.0 - c * c) * q1 * q2[b] + w * s[b]


@nb.njit(inline="always", **_JIT)
def _erf_run(s, t, has_t, r1, r2):
    """One contiguous run, erf: c = s·r1·r2, K = asin c, K̇Θ = Θ·r1·r2/√(1 − c²)
    (unscaled; the caller applies 2/π)."""
    if has_t:
        for b in range(s.size):
            c = s[b] * r1 * r2[b]
            s[b] = _asin_acos(c)[0]
            t[b] = t[b] * r1 * r2[b] / math.sqrt(1.0 - c * c)
    else:
        for b in range(s.size):
            s[b] = _asin_acos(s[b] * r1 * r2[b])[0]


@nb.njit(**_JIT)
def _dual_rows(act, s, t, has_t, r1, q1, r2, q2):
    """Diagonal layout: s, t (R, A, B); r1, q1 (R, A); r2, q2 (R, A or 1, B)."""
    n_r, n_a, _ = s.shape
    for i in range(n_r):
        for a in range(n_a):
            a2 = a if r2.shape[1] > 1 else 0
            if act == 0:
                _relu_run(s[i, a], t[i, a], has_t, r1[i, a], q1[i, a], r2[i, a2], q2[i, a2])
            else:
                _erf_run(s[i, a], t[i, a], has_t, r1[i, a], r2[i, a2])


@nb.njit(**_JIT)
def _dual_pairs(act, s, t, has_t, r1, q1, r2, q2):
    """Full layout: s, t (A, B, R, Q); r1, q1 (A, R); r2, q2 (A or 1, B, Q)."""
    n_a, n_b, n_r, _ = s.shape
    for a in range(n_a):
        a2 = a if r2.shape[0] > 1 else 0
        for b in range(n_b):
            for i in range(n_r):
                if act == 0:
                    _relu_run(s[a, b, i], t[a, b, i], has_t, r1[a, i], q1[a, i], r2[a2, b],
                              q2[a2, b])
                else:
                    _erf_run(s[a, b, i], t[a, b, i], has_t, r1[a, i], r2[a2, b])


@nb.njit(**_JIT)
def _conv_rows(x, out, idx0, idx1):
    """Diagonal layout (n0, n1, B) → (m0, m1, B): out[o0, o1] = Σ_taps x[idx0[o0, a],
    idx1[o1, b]] (index −1: zero padding)."""
    m0, q0 = idx0.shape
    m1, q1 = idx1.shape
    nb_ = x.shape[2]
    for o0 in range(m0):
        for o1 in range(m1):
            acc = out[o0, o1]
            acc[:] = 0.0
            for a in range(q0):
                i0 = idx0[o0, a]
                if i0 < 0:
                    continue
                for b in range(q1):
                    i1 = idx1[o1, b]
                    if i1 < 0:
                        continue
                    src = x[i0, i1]
                    for k in range(nb_):
                        acc[k] += src[k]


@nb.njit(**_JIT)
def _conv_pairs(x, out, z, idx0, idx1, runs, n_runs, zero):
    """Full layout (T, n0, n1, n0, n1) → (T, m0, m1, m0, m1), stride 1, separable, one pair
    at a time in cache: z[i0, ., j0, .] = Σ_a x[., idx0[i0, a], ., idx0[j0, a], .], then
    out[., i0, i1, j0, j1] = Σ_b z[i0, idx1[i1, b], j0, idx1[j1, b]]; the last axis in
    contiguous runs (runs[b, r] = (start, stop, source start), n_runs[b] of them). Filters
    of 3 taps or fewer sum their taps in one loop (``zero``: a zero row for padded taps)."""
    n1 = x.shape[2]
    m0, q0 = idx0.shape
    m1, q1 = idx1.shape
    for p in range(x.shape[0]):
        if q0 == 1 and m0 == x.shape[1]:  # no taps on axis 0 (a 1-D map): z is x
            zp = x[p]
        else:
            zp = z
        for i0 in range(m0 if zp is z else 0):
            for j0 in range(m0):
                zz = z[i0, :, j0, :]
                if q0 <= 3:
                    for i1 in range(n1):
                        a0 = x[p, idx0[i0, 0], i1, idx0[j0, 0]] \
                            if idx0[i0, 0] >= 0 and idx0[j0, 0] >= 0 else zero
                        a1 = x[p, idx0[i0, 1], i1, idx0[j0, 1]] \
                            if q0 > 1 and idx0[i0, 1] >= 0 and idx0[j0, 1] >= 0 else zero
                        a2 = x[p, idx0[i0, 2], i1, idx0[j0, 2]] \
                            if q0 > 2 and idx0[i0, 2] >= 0 and idx0[j0, 2] >= 0 else zero
                        row = zz[i1]
                        for j1 in range(n1):
                            row[j1] = a0[j1] + a1[j1] + a2[j1]
                    continue
                zz[:] = 0.0
                for a in range(q0):
                    s0, t0 = idx0[i0, a], idx0[j0, a]
                    if s0 < 0 or t0 < 0:
                        continue
                    src = x[p, s0, :, t0, :]
                    for i1 in range(n1):
                        for j1 in range(n1):
                            zz[i1, j1] += src[i1, j1]
        for i0 in range(m0):
            for i1 in range(m1):
                for j0 in range(m0):
                    acc = out[p, i0, i1, j0]
                    if q1 == 3 and m1 > 2:  # interior: all three taps valid (or wrapped)
                        s0, s1, s2 = idx1[i1, 0], idx1[i1, 1], idx1[i1, 2]
                        b0 = zp[i0, s0, j0] if s0 >= 0 else zero
                        b1 = zp[i0, s1, j0] if s1 >= 0 else zero
                        b2 = zp[i0, s2, j0] if s2 >= 0 else zero
                        d0, d1, d2 = idx1[1, 0] - 1, idx1[1, 1] - 1, idx1[1, 2] - 1
                        for j in range(1, m1 - 1):
                            acc[j] = b0[j + d0] + b1[j + d1] + b2[j + d2]
                        for j in (0, m1 - 1):
                            v = 0.0
                            for b in range(3):
                                s1, t1 = idx1[i1, b], idx1[j, b]
                                if s1 >= 0 and t1 >= 0:
                                    v += zp[i0, s1, j0, t1]
                            acc[j] = v
                        continue
                    acc[:] = 0.0
                    for b in range(q1):
                        s1 = idx1[i1, b]
                        if s1 < 0:
                            continue
                        src = zp[i0, s1, j0]
                        for r in range(n_runs[b]):
                            lo, hi, off = runs[b, r, 0], runs[b, r, 1], runs[b, r, 2]
                            for j in range(lo, hi):
                                acc[j] += src[off + j - lo]


@nb.njit(**_JIT)
def _pool_pairs(x, out, w):
    """Full layout (T, n0, n1, n0, n1) → (T, m0, m1, m0, m1): the sum over w×w windows of
    both positions (unscaled), in one pass."""
    _, m0, m1, _, _ = out.shape
    for p in range(x.shape[0]):
        for i0 in range(m0):
            for i1 in range(m1):
                for j0 in range(m0):
                    acc = out[p, i0, i1, j0]
                    acc[:] = 0.0
                    for a0 in range(w):
                        for a1 in range(w):
                            for b0 in range(w):
                                src = x[p, w * i0 + a0, w * i1 + a1, w * j0 + b0]
                                for j1 in range(m1):
                                    for b1 in range(w):
                                        acc[j1] += src[w * j1 + b1]


@nb.njit(**_JIT)
def _bmm(a, b, out, ia, ib):
    """Small batched matmul out[g] = a[ia[g]] @ b[ib[g]] (inner dimension of the first Gram's
    few coordinates; the rows of b contiguous, so the inner loop vectorises)."""
    for g in range(out.shape[0]):
        o, x, y = out[g], a[ia[g]], b[ib[g]]
        o[:] = 0.0
        for p in range(x.shape[0]):
            row = o[p]
            for k in range(x.shape[1]):
                w = x[p, k]
                src = y[k]
                for q in range(src.size):
                    row[q] += w * src[q]


@lru_cache(maxsize=256)
def _axis_runs(n: int, q: int, stride: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    return _runs(conv_taps(n, q, stride, padding))


def _runs(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous runs of each tap column of ``idx``: (q, 2, 3) (start, stop, source
    start) and (q,) counts (a circular tap wraps once: two runs; zero padding: one)."""
    m, q = idx.shape
    runs = np.zeros((q, 2, 3), np.int64)
    count = np.zeros(q, np.int64)
    for b in range(q):
        col, start = idx[:, b], 0
        for o in range(1, m + 1):
            if o == m or col[o] != col[o - 1] + 1 or col[o] < 0 or col[o - 1] < 0:
                if col[start] >= 0:
                    runs[b, count[b]] = (start, o, col[start])
                    count[b] += 1
                start = o
    return runs, count


class NumbaOps(NumpyOps):
    """:class:`NumpyOps` with the dual, stride-1 convs and the first Gram (of few
    coordinates) as compiled loops (BLAS called from several tile threads oversubscribes
    its own threads: measured 7× slower on 2 cores)."""

    @staticmethod
    def gram(a: np.ndarray, b: np.ndarray | None, full: bool, pos: tuple[int, ...]):
        """⟨x_a(i), x_b(j)⟩/coords, as :meth:`NumpyOps.gram`."""
        t1, p, c = a.shape
        if b is None or c > 64 or p == 1:
            return NumpyOps.gram(a, b, full, pos)
        t2 = b.shape[0]
        if full:  # pairs (i, j): (P, c) @ (c, P)
            g = np.empty((t1 * t2, p, p), a.dtype)
            ia, ib = np.divmod(np.arange(t1 * t2), t2)
            _bmm(a, np.ascontiguousarray(b.transpose(0, 2, 1)), g, ia, ib)
        else:  # positions p: (t1, c) @ (c, t2)
            g = np.empty((p, t1, t2), a.dtype)
            ia = np.arange(p)
            _bmm(np.ascontiguousarray(a.transpose(1, 0, 2)),
                 np.ascontiguousarray(b.transpose(1, 2, 0)), g, ia, ia)
        return gram_layout(g.reshape((t1, t2, p, p) if full else g.shape), c, full, pos)

    @staticmethod
    def conv(x, layer: Conv, nd: int, full: bool):
        """Σ over the taps of a conv (unscaled), all taps per output element in one pass."""
        if nd == 0 or (full and max(layer.stride) > 1):
            return NumpyOps.conv(x, layer, nd, full)
        sp = x.shape[2:2 + nd] if full else x.shape[:nd]
        axes = list(zip(sp, layer.filter, layer.stride))
        idx = [conv_taps(n, q, s, layer.padding) for n, q, s in axes]
        if nd == 1:
            idx = [np.zeros((1, 1), np.int64)] + idx
            sp = (1,) + tuple(sp)
        m = tuple(i.shape[0] for i in idx)
        if full:
            t1, t2 = x.shape[:2]
            xv = x.reshape(t1 * t2, sp[0], sp[1], sp[0], sp[1])
            out = np.empty((t1 * t2, m[0], m[1], m[0], m[1]), x.dtype)
            z = np.empty((m[0], sp[1], m[0], sp[1]), x.dtype)
            zero = np.zeros(sp[1], x.dtype)
            _conv_pairs(xv, out, z, idx[0], idx[1], *_axis_runs(*axes[-1], layer.padding), zero)
            return out.reshape((t1, t2) + m[2 - nd:] * 2)
        tail = x.shape[nd:]
        out = np.empty(m + (math.prod(tail),), x.dtype)
        _conv_rows(x.reshape(sp + (-1,)), out, idx[0], idx[1])
        return out.reshape(m[2 - nd:] + tail)

    @staticmethod
    def pool(x, window: tuple[int, ...], stride: tuple[int, ...], nd: int):
        """Σ over a p×p window of both positions (unscaled), one pass (2-D maps, window =
        stride; a 1-D map, or overlapping windows, are pooled by :meth:`NumpyOps.pool`)."""
        if nd != 2 or window != stride or len(set(window)) != 1:
            return NumpyOps.pool(x, window, stride, nd)
        p = window[0]
        t1, t2, h, w = x.shape[:4]
        m = (h // p, w // p)
        out = np.empty((t1 * t2, m[0], m[1], m[0], m[1]), x.dtype)
        _pool_pairs(x.reshape(t1 * t2, h, w, h, w), out, p)  # reads the first p·m per axis
        return out.reshape((t1, t2) + m * 2)

    @staticmethod
    def dual(act, s, t, v1, v2, nd: int, full: bool, self_pass: bool):
        """As :meth:`NumpyOps.dual`, one fused pass (``v1``, ``v2`` in the same shapes) for
        the registry's fast paths ("arccos1": relu, "arcsin": erf); any other activation
        takes the numpy evaluation of its registry dual."""
        fast = get_activation(act).fast
        if fast is None:
            return NumpyOps.dual(act, s, t, v1, v2, nd, full, self_pass)
        name = "relu" if fast == "arccos1" else "erf"
        shp = s.shape
        v4 = _view4(shp, nd, full)
        pairs = bool(full and nd)
        if name == "relu" and self_pass and not pairs:
            return NumpyOps.dual(name, s, t, v1, v2, nd, full, self_pass)
        s4 = s.reshape(v4)
        t4 = None if t is None else t.reshape(v4)
        keep, idx = None, np.arange(v4[2])
        if name == "relu" and self_pass:  # θ = 0 exactly on the self diagonal
            keep = (s4[:, :, idx, idx].copy(), None if t4 is None else t4[:, :, idx, idx].copy())
        v1 = np.asarray(v1, np.float64)
        v2 = np.asarray(v2, np.float64)
        if name == "relu":
            with np.errstate(divide="ignore"):
                r1, r2 = (np.where(v > 0, 1.0 / np.sqrt(v), 0.0) for v in (v1, v2))
            q1, q2, act = np.sqrt(v1), np.sqrt(v2), 0
        else:
            r1, r2 = 2.0 / np.sqrt(1.0 + 2.0 * v1), 1.0 / np.sqrt(1.0 + 2.0 * v2)
            q1, q2, act = r1, r2, 1
        if pairs:  # v1 (A, 1, R, 1); v2 (1, B, 1, Q) cross or (A, 1, 1, Q) self
            lead = v4[0] if self_pass else 1
            sh1, sh2 = (v4[0], v4[2]), (lead, v4[1], v4[3])
            kern, arr, tarr = _dual_pairs, s4, t4
        else:  # v1 (R, 1, A, 1); v2 (R, 1, 1, B) cross or (R, 1, A, 1) self
            sh1 = (v4[0], v4[2])
            sh2 = (v4[0], v4[2], 1) if self_pass else (v4[0], 1, v4[3])
            kern, arr = _dual_rows, s4.reshape(v4[0], v4[2], v4[3])
            tarr = None if t4 is None else t4.reshape(arr.shape)
        dt = s.dtype
        c1 = [np.ascontiguousarray(np.broadcast_to(a, _bshape(a, sh1, pairs, 1)), dt)
              .reshape(sh1) for a in (r1, q1)]
        c2 = [np.ascontiguousarray(np.broadcast_to(a, _bshape(a, sh2, pairs, 2)), dt)
              .reshape(sh2) for a in (r2, q2)]
        kern(act, arr, arr if tarr is None else tarr, tarr is not None, c1[0], c1[1], c2[0],
             c2[1])
        if keep is not None:
            s4[:, :, idx, idx] = math.pi * keep[0]
            if t4 is not None:
                t4[:, :, idx, idx] = math.pi * keep[1]
        scale = 1 / (2 * math.pi) if name == "relu" else 2 / math.pi
        return s, t, scale, scale


def _bshape(a: np.ndarray, sh: tuple, pairs: bool, which: int) -> tuple:
    """The 4-D shape whose reshape is ``sh``, for broadcasting a variance array ``a``."""
    if a.ndim != 4:
        raise ValueError(f"variance array of shape {a.shape}: expected 4-D")
    if pairs:
        return (sh[0], 1, sh[1], 1) if which == 1 else (sh[0], sh[1], 1, sh[2])
    return (sh[0], 1, sh[1], 1) if which == 1 else (sh[0], 1, sh[1], sh[2])
