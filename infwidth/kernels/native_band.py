"""Banded covariances of the native engine: Flatten networks with pooling (LeNet).

A Flatten readout reads the diagonal Σ(i, i) of the last pooled map. Before the last pooling
only the offsets δ = j − i that reach that diagonal are kept, per axis |δ_k| ≤ h_k:

- a stride-1 conv keeps the offset, Σ'(i, i + δ) = Σ_a Σ(i + a, i + a + δ), so the band is
  convolved over positions only, as the diagonal is;
- a pool (window p, stride s) maps output offset Δ to input offsets s·Δ + b − a
  (a, b < p): h_in = s·h_out + p − 1, from h = 0 at the last pooling backwards;
- the dual is pointwise, with the partner's variance v(i + δ).

Layout: (*S, t1, *W, t2), W_k = 2·h_k + 1. The positions lead, so a conv is the diagonal
layout's conv; each (i, x) holds one run over (δ, t2) whose first variance v1(i, x) is
fixed, so the dual is the diagonal layout's row-wise dual with v2 read at the partners.

Entries whose partner i + δ lies off the map: with ``wrap`` on an axis they hold
Σ(i, (i + δ) mod n) (the first Gram, circular convs, and pools whose map is s·m long keep
that), otherwise they are don't-care values, zeroed before a zero-padded conv reads them and
before a dual (where a zero covariance with a zero partner variance gives zero).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np

from infwidth.architectures.activations import get_activation

__all__ = ["Band", "BandOps"]


@dataclass(frozen=True)
class Band:
    """Offsets |δ_k| ≤ ``half[k]`` per axis; ``wrap[k]``: entries whose partner is off the
    map hold the covariance of the wrapped partner (else don't-care)."""

    half: tuple[int, ...]
    wrap: tuple[bool, ...]

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(2 * h + 1 for h in self.half)

    @property
    def size(self) -> int:
        """Offsets per position."""
        return math.prod(self.widths)

    def elems(self, shape: tuple[int, ...]) -> int:
        """Elements per pair on a map of ``shape``."""
        return math.prod(shape) * self.size

    def center(self, nd: int) -> dict[int, int]:
        """{axis: index} of the offset δ = 0 in the (*S, t1, *W, t2) layout."""
        return {nd + 1 + k: h for k, h in enumerate(self.half)}


def _at(ndim: int, where: dict[int, slice | int]) -> tuple:
    return tuple(where.get(a, slice(None)) for a in range(ndim))


def _offsets(band: Band):
    """Every offset tuple δ, in the C order of the W axes."""
    return itertools.product(*(range(-h, h + 1) for h in band.half))


def _shifted(v, half: tuple[int, ...], shape: tuple[int, ...], wrap: tuple[bool, ...], xp,
             lead: int = 0) -> list:
    """v[i + δ] for every offset δ (axes ``lead``.. of v are the positions): wrapped mod n on
    the ``wrap`` axes, zero off the map elsewhere."""
    nd = len(shape)
    pads = [(0, 0)] * v.ndim
    for k in range(nd):
        pads[lead + k] = (half[k], half[k])
    if all(wrap) or not any(wrap):
        vp = xp.pad(v, pads, mode="wrap") if all(wrap) else xp.pad(v, pads)
    else:  # axis by axis
        vp = v
        for k in range(nd):
            one = [(0, 0)] * v.ndim
            one[lead + k] = pads[lead + k]
            vp = xp.pad(vp, one, mode="wrap") if wrap[k] else xp.pad(vp, one)
    return [vp[_at(v.ndim, {lead + k: slice(h + d, h + d + n)
                            for k, (h, d, n) in enumerate(zip(half, dl, shape))})]
            for dl in itertools.product(*(range(-h, h + 1) for h in half))]


def partner(v, shape: tuple[int, ...], band: Band, xp):
    """v(i + δ) of per-position values v (*S, B): (*S, W, B) with W = Π W_k in C order (zero
    off the map on the axes without ``wrap``)."""
    return xp.stack(_shifted(v, band.half, shape, band.wrap, xp), axis=len(shape))


def gram(pos_gram: Callable, xp, a, b, band: Band, pos: tuple[int, ...]):
    """First Gram in the band layout: g[i, δ] = ⟨x_a(i), x_b(i + δ)⟩/coords (the partner
    wrapped mod n), (*S, t1, *W, t2); ``pos_gram(a, b, False, pos)`` is the backend's
    per-position Gram ((*S, t1, t2)); ``b`` None: pairwise (t2 = 1)."""
    t1, p, c = a.shape
    nd = len(pos)
    mine = a if b is None else b
    parts = _shifted(mine.reshape((mine.shape[0],) + tuple(pos) + (c,)), band.half, pos,
                     (True,) * nd, xp, lead=1)
    out = []
    for bs in parts:
        bs = bs.reshape(mine.shape[0], p, c)
        if b is None:
            g = xp.einsum("xpc,xpc->px", a, bs)[..., None] * (1.0 / c)
            out.append(g.reshape(tuple(pos) + (t1, 1)))
        else:
            out.append(pos_gram(a, np.ascontiguousarray(bs) if xp is np else bs, False, pos))
    g = xp.stack(out, axis=nd + 1)
    return g.reshape(tuple(pos) + (t1,) + band.widths + (g.shape[-1],))


def mask(x, band: Band, shape: tuple[int, ...], axes: tuple[int, ...], xp):
    """Zero the entries whose partner i + δ is off the map on any axis in ``axes``
    (in place for numpy)."""
    nd = len(shape)
    if xp is np:
        for k in axes:
            n, h = shape[k], band.half[k]
            for w in range(2 * h + 1):
                d = w - h
                if d:
                    off = slice(0, min(-d, n)) if d < 0 else slice(max(n - d, 0), n)
                    x[_at(x.ndim, {k: off, nd + 1 + k: w})] = 0
        return x
    keep = _valid(shape, band.half, tuple(axes))
    return xp.where(keep, x, 0)


@lru_cache(maxsize=64)
def _valid(shape: tuple[int, ...], half: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """(*S, 1, *W, 1) bool: the partner i + δ lies on the map along every axis in ``axes``."""
    nd = len(shape)
    out = np.ones(tuple(shape) + (1,) + tuple(2 * h + 1 for h in half) + (1,), bool)
    for k in axes:
        i = np.arange(shape[k])[:, None] + np.arange(-half[k], half[k] + 1)[None, :]
        ok = (i >= 0) & (i < shape[k])
        sh = [1] * out.ndim
        sh[k], sh[nd + 1 + k] = ok.shape
        out &= ok.reshape(sh)
    return out


def pool(x, window: tuple[int, ...], stride: tuple[int, ...], b_in: Band, b_out: Band,
         nd: int, xp):
    """Σ'(I, I + Δ) = Σ_{a,b} Σ(s·I + a, s·I + a + (s·Δ + b − a)) over the window, per axis
    (unscaled; the partners of on-map outputs are on the input map)."""
    for k in range(nd):
        p, s, h, big_h = window[k], stride[k], b_in.half[k], b_out.half[k]
        m = (x.shape[k] - p) // s + 1
        out = None
        for a, b in itertools.product(range(p), repeat=2):
            start = h - s * big_h + b - a
            if start < 0 or start + 2 * s * big_h > 2 * h:
                raise ValueError(f"band {b_in.half} is too narrow for the pool {window}")
            v = x[_at(x.ndim, {k: slice(a, a + s * (m - 1) + 1, s),
                               nd + 1 + k: slice(start, start + 2 * s * big_h + 1, s)})]
            if out is None:
                out = v.copy() if xp is np else v
            elif xp is np:
                out += v
            else:
                out = out + v
        x = out
    return x


def diag(x, band: Band, nd: int, xp):
    """(*S, t1, *W, t2) → (*S, t1, t2): the offset δ = 0."""
    v = x[_at(x.ndim, band.center(nd))]
    return np.ascontiguousarray(v) if xp is np else v


def dual(dual_fn: Callable, act, s, t, v1, v2, shape: tuple[int, ...], band: Band,
         self_pass: bool, xp):
    """K' and K̇'·Θ of the band in place of Σ and Θ, with their scale factors (cK, cD).
    ``v1``, ``v2``: the variances at i, (P, 1, t1, 1) and (P, 1, 1, t2) (self: both
    (P, 1, n, 1)); the partner's is v2(i + δ) (zero off the map unless wrapped).
    ``dual_fn``: the backend's row-wise dual, called on the (P, 1, t1, W·t2) view with
    v2 (P, 1, 1, W·t2) (self: (P, 1, n, W)) as a cross tile; the self pass keeps relu's
    exact θ = 0 at δ = 0 itself."""
    nd = len(shape)
    off = tuple(k for k in range(nd) if not band.wrap[k])
    if off:  # don't-care entries become zeros: a zero covariance, a zero partner variance
        s = mask(s, band, shape, off, xp)
        t = None if t is None else mask(t, band, shape, off, xp)
    p, w = math.prod(shape), band.size
    t1, t2 = s.shape[nd], s.shape[-1]
    v2 = partner(v2.reshape(tuple(shape) + v2.shape[2:]), shape, band, xp)
    if self_pass:  # (*S, W, n, 1) → (P, 1, n, W)
        v2 = xp.moveaxis(v2.reshape(p, w, t1), 1, 2).reshape(p, 1, t1, w)
    else:  # (*S, W, 1, t2) → (P, 1, 1, W·t2)
        v2 = v2.reshape(p, 1, 1, w * t2)
    keep = None
    if self_pass and get_activation(act).fast == "arccos1":  # copies of the δ = 0 entries
        keep = tuple(None if x is None else xp.array(diag(x, band, nd, xp)) for x in (s, t))
    rows = tuple(shape) + (t1, w * t2)
    sr, tr, ck, cd = dual_fn(act, s.reshape(rows), None if t is None else t.reshape(rows), v1,
                             v2, nd, False, False)
    s, t = sr.reshape(s.shape), None if tr is None else tr.reshape(s.shape)
    if keep is not None:
        at = _at(s.ndim, band.center(nd))
        if xp is np:
            s[at] = math.pi * keep[0]
            if t is not None:
                t[at] = math.pi * keep[1]
        else:
            s = s.at[at].set(math.pi * keep[0])
            t = None if t is None else t.at[at].set(math.pi * keep[1])
    return s, t, ck, cd


class BandOps:
    """The band steps of an ops class (:mod:`infwidth.kernels.native_ops`), through its
    ``xp``, its row-wise ``dual`` (cross tiles) and ``band_self_dual`` (the self pass, whose
    v2 varies along t1)."""

    def band_mask(self, x, band: Band, shape: tuple[int, ...], axes: tuple[int, ...]):
        return mask(x, band, shape, axes, self.xp)

    def band_pool(self, x, window, stride, b_in: Band, b_out: Band, nd: int):
        return pool(x, window, stride, b_in, b_out, nd, self.xp)

    def band_diag(self, x, band: Band, nd: int):
        return diag(x, band, nd, self.xp)

    def band_dual(self, act, s, t, v1, v2, shape, band: Band, self_pass: bool):
        fn = self.band_self_dual if self_pass else self.dual
        return dual(fn, act, s, t, v1, v2, shape, band, self_pass, self.xp)
