"""Compiled band steps of the native engine (numba): :class:`BandNumbaOps`.

:class:`~infwidth.kernels.native_numba.NumbaOps` runs a band's convs and duals as it runs the
diagonal layout's (:mod:`infwidth.kernels.native_band`); what is the band's own is here: the
first Gram g[i, δ] = ⟨x_a(i), x_b(i + δ)⟩/coords of a cross tile, one position at a time,
with the partners' coordinates of every offset gathered into a buffer so that the innermost
loop runs over a whole (δ, t2) row of the layout; and pooling, one pass per axis.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numba as nb
import numpy as np

from infwidth.kernels.native_band import Band, gram
from infwidth.kernels.native_numba import NumbaOps

__all__ = ["BandNumbaOps"]

_JIT = dict(nogil=True, cache=True, error_model="numpy")


@nb.njit(**_JIT)
def _band_gram(a, bp, src, out):
    """a (P, t1, c); bp (Pp, c, t2): the partner inputs on the padded map; src (P, W): the
    padded row of partner i + δ; out (P, t1, W·t2): out[i, x, (w, y)] = a[i, x] · bp[src[i,
    w], :, y]."""
    n_p, n_w = src.shape
    t1, c = a.shape[1], a.shape[2]
    t2 = bp.shape[2]
    buf = np.empty((c, n_w * t2), out.dtype)
    for i in range(n_p):
        for k in range(c):
            for w in range(n_w):
                s = src[i, w]
                for y in range(t2):
                    buf[k, w * t2 + y] = bp[s, k, y]
        for x in range(t1):
            row = out[i, x]
            row[:] = 0.0
            for k in range(c):
                av = a[i, x, k]
                bk = buf[k]
                for j in range(row.size):
                    row[j] += av * bk[j]


@nb.njit(**_JIT)
def _band_pool_axis(x, out, p, s, start):
    """One axis of a band pool: x (A, n, B, W, C) → out (A, m, B, W', C),
    out[., I, ., Δ] = Σ_{a,b<p} x[., s·I + a, ., start + s·Δ + b − a] (unscaled)."""
    n_a, m, n_b, n_w, n_c = out.shape
    for i in range(n_a):
        for big_i in range(m):
            for j in range(n_b):
                for d in range(n_w):
                    acc = out[i, big_i, j, d]
                    acc[:] = 0.0
                    for a in range(p):
                        for b in range(p):
                            src = x[i, s * big_i + a, j, start + s * d + b - a]
                            for c in range(n_c):
                                acc[c] += src[c]


@lru_cache(maxsize=64)
def _partner_rows(pos: tuple[int, ...], half: tuple[int, ...]) -> np.ndarray:
    """(P, W): the row of partner i + δ in the map padded by ``half`` per axis."""
    nd = len(pos)
    grids = np.meshgrid(*(np.arange(n) for n in pos),
                        *(np.arange(-h, h + 1) for h in half), indexing="ij")
    padded = tuple(n + 2 * h for n, h in zip(pos, half))
    src = np.ravel_multi_index(tuple(grids[k] + grids[nd + k] + half[k] for k in range(nd)),
                               padded)
    return np.ascontiguousarray(src.reshape(math.prod(pos), -1), dtype=np.int64)


class BandNumbaOps(NumbaOps):
    """:class:`NumbaOps` with a band's first Gram and pooling compiled (the engine's numba
    ops)."""

    @staticmethod
    def band_pool(x, window, stride, b_in: Band, b_out: Band, nd: int):
        """As :func:`infwidth.kernels.native_band.pool`, one compiled pass per axis."""
        for k in range(nd):
            p, st, h, big_h = window[k], stride[k], b_in.half[k], b_out.half[k]
            sh = x.shape
            n, wk = sh[k], sh[nd + 1 + k]
            m = (n - p) // st + 1
            a, b, c = math.prod(sh[:k]), math.prod(sh[k + 1:nd + 1 + k]), math.prod(
                sh[nd + 2 + k:])
            out = np.empty((a, m, b, 2 * big_h + 1, c), x.dtype)
            _band_pool_axis(x.reshape(a, n, b, wk, c), out, p, st, h - st * big_h)
            x = out.reshape(sh[:k] + (m,) + sh[k + 1:nd + 1 + k] + (2 * big_h + 1,)
                            + sh[nd + 2 + k:])
        return x

    @staticmethod
    def gram(a: np.ndarray, b: np.ndarray | None, full: bool | Band, pos: tuple[int, ...]):
        """As :meth:`NumpyOps.gram`; a band's cross tile by one compiled pass."""
        if not isinstance(full, Band):
            return NumbaOps.gram(a, b, full, pos)
        if b is None:
            return gram(NumbaOps.gram, np, a, b, full, pos)
        t1, p, c = a.shape
        t2 = b.shape[0]
        pads = [(0, 0)] + [(h, h) for h in full.half] + [(0, 0)]
        bp = np.pad(b.reshape((t2,) + tuple(pos) + (c,)), pads, mode="wrap")
        bp = np.ascontiguousarray(bp.reshape(t2, -1, c).transpose(1, 2, 0))
        src = _partner_rows(tuple(pos), full.half)
        out = np.empty((p, t1, src.shape[1] * t2), a.dtype)
        _band_gram(np.ascontiguousarray(a.transpose(1, 0, 2)), bp, src, out)
        out *= 1.0 / c
        return out.reshape(tuple(pos) + (t1,) + full.widths + (t2,))
