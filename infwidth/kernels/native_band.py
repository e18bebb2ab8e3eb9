"""Banded covariances of the native engine: Flatten networks with pooling (LeNet).

A Flatten readout reads the diagonal Σ(i, i) of the last pooled map. Before the last pooling
only the offsets δ = j − i that reach that diagonal are kept, per axis |δ_k| ≤ h_k:

- a stride-1 conv keeps the offset, Σ'(i, i + δ) = Σ_a Σ(i + a, i + a + δ), so the band is
  convolved over positions only, as the diagonal is;
- a pool (window p, stride s) maps output offset Δ to input offsets s·Δ + b − a
  (a, b < p): h_in = s·h_out + p − 1, from h = 0 at the last pooling backwards;
- the dual is pointwise, with the partner's variance v(i + δ).

Layout: (*S, *W, t1, t2), W_k = 2·h_k + 1 (the offset axes sit between the positions and the
pair block, so a conv is the diagonal layout's conv and the dual its row-wise dual).

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


def _at(ndim: int, where: dict[int, slice | int]) -> tuple:
    return tuple(where.get(a, slice(None)) for a in range(ndim))


def _offsets(band: Band):
    """Every offset tuple δ, in the C order of the W axes."""
    return itertools.product(*(range(-h, h + 1) for h in band.half))


def partner(v, shape: tuple[int, ...], band: Band, zero_off: bool, xp):
    """v(i + δ) of per-position values v (*S, A, B): (*S, *W, A, B), with zero off the map
    on every axis (``zero_off``) or on the axes without ``wrap``."""
    nd = len(shape)
    pads = [(h, h) for h in band.half] + [(0, 0), (0, 0)]
    wrap = tuple(w and not zero_off for w in band.wrap)
    if all(wrap):
        vp = xp.pad(v, pads, mode="wrap")
    elif not any(wrap):
        vp = xp.pad(v, pads)
    else:  # axis by axis
        vp = v
        for k in range(nd):
            one = [(0, 0)] * v.ndim
            one[k] = pads[k]
            vp = xp.pad(vp, one, mode="wrap") if wrap[k] else xp.pad(vp, one)
    views = [vp[tuple(slice(h + d, h + d + n) for h, d, n in zip(band.half, dl, shape))]
             for dl in _offsets(band)]
    out = xp.stack(views, axis=nd)
    return out.reshape(tuple(shape) + band.widths + tuple(v.shape[nd:]))


def gram(pos_gram: Callable, xp, a, b, band: Band, pos: tuple[int, ...]):
    """First Gram in the band layout: g[i, δ] = ⟨x_a(i), x_b(i + δ)⟩/coords (the partner
    wrapped mod n), (*S, *W, t1, t2); ``pos_gram(a, b, False, pos)`` is the backend's
    per-position Gram ((*S, t1, t2)); ``b`` None: pairwise (t2 = 1)."""
    t1, p, c = a.shape
    nd = len(pos)
    mine = a if b is None else b
    pads = [(0, 0)] + [(h, h) for h in band.half] + [(0, 0)]
    bp = xp.pad(mine.reshape((mine.shape[0],) + tuple(pos) + (c,)), pads, mode="wrap")
    parts = []
    for dl in _offsets(band):
        bs = bp[(slice(None),) + tuple(slice(h + d, h + d + n)
                                       for h, d, n in zip(band.half, dl, pos))]
        bs = bs.reshape(mine.shape[0], p, c)
        if b is None:
            g = xp.einsum("xpc,xpc->px", a, bs)[..., None] * (1.0 / c)
            parts.append(g.reshape(tuple(pos) + (t1, 1)))
        else:
            parts.append(pos_gram(a, xp.asarray(bs) if xp is not np
                                  else np.ascontiguousarray(bs), False, pos))
    out = xp.stack(parts, axis=nd)
    return out.reshape(tuple(pos) + band.widths + out.shape[-2:])


@lru_cache(maxsize=64)
def _gram_rows(pos: tuple[int, ...], half: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For each (i, δ) in C order: the row i of the inputs and the row of the partner i + δ in
    the map padded by ``half`` per axis."""
    nd = len(pos)
    grids = np.meshgrid(*(np.arange(n) for n in pos),
                        *(np.arange(-h, h + 1) for h in half), indexing="ij")
    padded = tuple(n + 2 * h for n, h in zip(pos, half))
    src = np.ravel_multi_index(tuple(grids[k] + grids[nd + k] + half[k] for k in range(nd)),
                               padded)
    rows = np.broadcast_to(np.arange(math.prod(pos)).reshape(
        tuple(pos) + (1,) * nd), src.shape)
    return np.ascontiguousarray(rows.ravel()), np.ascontiguousarray(src.ravel())


def gram_batched(bmm: Callable, a: np.ndarray, b: np.ndarray, band: Band,
                 pos: tuple[int, ...]) -> np.ndarray:
    """:func:`gram` of a cross tile as one batched matmul over every (i, δ):
    ``bmm(A, B, out, ia, ib)`` sets out[g] = A[ia[g]] @ B[ib[g]]."""
    t1, p, c = a.shape
    t2 = b.shape[0]
    pads = [(0, 0)] + [(h, h) for h in band.half] + [(0, 0)]
    bp = np.pad(b.reshape((t2,) + tuple(pos) + (c,)), pads, mode="wrap")
    bt = np.ascontiguousarray(bp.reshape(t2, -1, c).transpose(1, 2, 0))
    rows, src = _gram_rows(tuple(pos), band.half)
    out = np.empty((rows.size, t1, t2), a.dtype)
    bmm(np.ascontiguousarray(a.transpose(1, 0, 2)), bt, out, rows, src)
    out *= 1.0 / c
    return out.reshape(tuple(pos) + band.widths + (t1, t2))


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
                    x[_at(x.ndim, {k: off, nd + k: w})] = 0
        return x
    keep = _valid(shape, band.half, tuple(axes))
    return xp.where(keep.reshape(keep.shape + (1, 1)), x, 0)


@lru_cache(maxsize=64)
def _valid(shape: tuple[int, ...], half: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """(*S, *W) bool: the partner i + δ lies on the map along every axis in ``axes``."""
    nd = len(shape)
    out = np.ones(tuple(shape) + tuple(2 * h + 1 for h in half), bool)
    for k in axes:
        i = np.arange(shape[k])[:, None] + np.arange(-half[k], half[k] + 1)[None, :]
        ok = (i >= 0) & (i < shape[k])
        sh = [1] * (2 * nd)
        sh[k], sh[nd + k] = ok.shape
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
                               nd + k: slice(start, start + 2 * s * big_h + 1, s)})]
            if out is None:
                out = v.copy() if xp is np else v
            elif xp is np:
                out += v
            else:
                out = out + v
        x = out
    return x


def diag(x, band: Band, nd: int, xp):
    """(*S, *W, t1, t2) → (*S, t1, t2): the offset δ = 0."""
    v = x[_at(x.ndim, {nd + k: h for k, h in enumerate(band.half)})]
    return np.ascontiguousarray(v) if xp is np else v


def dual(dual_fn: Callable, act, s, t, v1, v2, shape: tuple[int, ...], band: Band,
         self_pass: bool, xp):
    """K' and K̇'·Θ of the band in place of Σ and Θ, with their scale factors (cK, cD).
    ``v1``, ``v2``: the variances at i, (P, 1, t1, 1) and (P, 1, 1, t2) (self: both
    (P, 1, n, 1)); the partner's is v2(i + δ) (zero off the map unless wrapped).
    ``dual_fn``: the backend's dual on rows, called as a cross tile (every (t1, t2) block its
    own v1, v2 rows); the self pass keeps relu's exact θ = 0 at δ = 0 itself."""
    nd = len(shape)
    off = tuple(k for k in range(nd) if not band.wrap[k])
    if off:  # don't-care entries become zeros: a zero covariance, a zero partner variance
        s = mask(s, band, shape, off, xp)
        t = None if t is None else mask(t, band, shape, off, xp)
    p, w = math.prod(shape), band.size
    a1 = xp.broadcast_to(v1[:, None], (p, w) + v1.shape[1:]).reshape((p * w,) + v1.shape[1:])
    a2 = partner(v2.reshape(tuple(shape) + v2.shape[2:]), shape, band, False, xp)
    a2 = a2.reshape((p * w, 1) + v2.shape[2:])
    keep = None
    if self_pass and get_activation(act).fast == "arccos1":  # copies of the δ = 0 entries
        keep = tuple(None if x is None else xp.array(diag(x, band, nd, xp)) for x in (s, t))
    s, t, ck, cd = dual_fn(act, s, t, a1, a2, 2 * nd, False, False)
    if keep is not None:
        at = _at(s.ndim, {nd + k: h for k, h in enumerate(band.half)})
        for x, kp in ((s, keep[0]), (t, keep[1])):
            if x is None:
                continue
            if xp is np:
                x[at] = math.pi * kp
            elif x is s:
                s = s.at[at].set(math.pi * kp)
            else:
                t = t.at[at].set(math.pi * kp)
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
