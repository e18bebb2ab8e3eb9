"""Native NNGP + NTK engine: both kinds in one pass through a layer description.

:func:`native_kernels` walks the layers of :func:`infwidth.architectures.layers.kernel_layers`
(formulas in that module) on tiles of input pairs and keeps only the work the readout needs:

- Positions. A stride-1 conv preserves the offset j − i of Σ(i, j), so with a Flatten
  readout (and no pooling) only the diagonal Σ(i, i) is tracked: O(P) per pair. Pooling and
  GAP need the full (P, P) covariance; there a conv is a sum of the q DIAGONAL shifts per axis
  Σ'(i, j) = (1/q)·Σ_a K(i + a, j + a) (separable over axes), never a q×q dense filter. After
  the last pooling of a Flatten network the diagonal is taken at once, and before it only the
  band of offsets that reach that diagonal is kept (:mod:`infwidth.kernels.native_band`:
  h = 0 after the last pooling, s·h + p − 1 before a pooling of window p and stride s).
- Self terms. Each input's own variances Σ(x, x)(i, i) at every activation are computed once
  per input (a pairwise pass, which also gives the Gram diagonal, exact on the ReLU diagonal
  where θ = 0), then reused by every tile.
- Symmetry. With ``x2=None`` only tiles on and above the diagonal are computed; the result
  is exactly symmetric.
- CPU path (numba; ``backend="numpy"`` selects the plain-numpy version). XLA:CPU's float64
  transcendentals are scalar (~20–25 M/s) and numpy's vectorised ``arccos`` (~340–700 M/s)
  still costs ~13 memory passes per ReLU dual. :mod:`infwidth.kernels.native_numba` fuses
  the dual (with a branch-free fdlibm ``acos`` that LLVM vectorises), the stride-1 conv of
  the covariance (separable, one pair's block at a time in cache), pooling and the first
  Gram into compiled loops that release the GIL; tiles run on a thread pool. The numpy
  backend (in-place ufuncs on cache-sized chunks) is kept as a second, simpler path.
  A first conv with an overlapping filter becomes a Gram of im2col patches, so its conv of
  the input Gram is never formed.
- GPU path (JAX). The same recursion in ``jax.numpy``, jitted per tile shape, tiles spread
  round-robin over ``jax.devices()``.

:func:`native_memory_estimate` counts the arrays the engine allocates (outputs, per-input
variances, and the live arrays of one tile per worker).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from infwidth.architectures.layers import (
    GAP,
    Activation,
    AvgPool,
    Conv,
    Dense,
    Flatten,
    Layer,
    Residual,
)
from infwidth.architectures.layers import kernel_layers as _kernel_layers
from infwidth.kernels.native_band import Band
from infwidth.kernels.native_ops import CHUNK, JaxOps, NumpyOps, conv_taps
from infwidth.validation import (
    KINDS,
    check_choice,
    check_dtype,
    check_kinds,
    check_opt_pos_int,
    check_progress,
    show_progress,
)

__all__ = ["native_kernels", "native_memory_estimate", "native_plan", "supports",
           "default_backend", "NATIVE_BACKENDS"]

NATIVE_BACKENDS = ("numba", "numpy", "jax")
# Elements per tile array (measured on this CPU with the numba kernels: diagonal tiles of
# ~2^19 elements, whose rows are long enough to vectorise, and full covariances of 1 pair
# per tile, are fastest).
_TILE_ELEMS = 2**19
_TILE_ELEMS_FULL = 2**16
# With the fused pass (native_numba.fused_steps) a tile's pairs are walked one at a time
# inside one compiled call, so larger tiles only amortise the per-tile Python work: 14×14
# GAP and 16×16 Myrtle-5 ran 15-20 % faster at 2-4 pairs a side than at 1 (28×28 stays 1).
_TILE_ELEMS_FUSED = 2**20
_TILE_ELEMS_BAND = 2**20
# The jax backend on an accelerator: ~2^24 elements (128 MiB in float64) per tile array, so
# that each fused XLA kernel is large against its launch (one 28×28 pair is 2^19.2 elements;
# XLA keeps ~10-16 tile arrays live). Not yet measured on a GPU (benchmarks/jax_tiles.py).
_TILE_ELEMS_ACCEL = 2**24
# Live tile-sized arrays at the peak of one linear layer (Σ, Θ, and a conv's two per-axis
# accumulators), used by the memory estimate.
_LIVE = 4


# --------------------------------------------------------------------------------------
# Plan: the layer description compiled to steps with spatial shapes and storage modes
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    """Steps of the recursion. ``nd``: spatial axes of the input (0: none); ``patch``: the
    first conv's filter when it is non-overlapping (inputs are cut into patches, and the
    first layer becomes a per-patch Gram); ``window``, ``window_padding``: an overlapping
    stride-1 first conv, whose taps are gathered into each position's coordinates (im2col),
    so that its conv of the first Gram is a Gram of patches; ``pos0``: positions per axis of
    the first Gram; ``coords``: coordinates per position; ``full0``: whether the first Gram
    is (P, P), or its :class:`Band` of offsets (a banded plan)."""

    nd: int
    in_shape: tuple[int, ...]
    patch: int
    pos0: tuple[int, ...]
    coords: int
    full0: bool | Band
    steps: tuple[tuple, ...]
    act_shapes: tuple[tuple[int, ...], ...]
    window: tuple[int, ...] = ()
    window_padding: str = "same"

    @property
    def n_act(self) -> int:
        return len(self.act_shapes)

    def elems(self) -> int:
        """Largest per-pair element count of any array a tile holds."""
        return max(_size(self.pos0, self.full0), _elems(self.steps))

    @property
    def banded(self) -> bool:
        return isinstance(self.full0, Band)

    @property
    def residual_depth(self) -> int:
        """Nesting depth of residual blocks (each level keeps Σ, Θ of the shortcut live)."""
        return _res_depth(self.steps)


def _elems(steps) -> int:
    best = 0
    for st in steps:
        if st[0] == "res":
            best = max(best, _elems(st[1]), _elems(st[2]), _size(st[3], st[4]))
        elif st[0] in ("lin", "pool", "todiag", "act", "read"):
            best = max(best, _size(st[2], st[3]))
    return best


def _res_depth(steps) -> int:
    return max((1 + max(_res_depth(st[1]), _res_depth(st[2])) for st in steps
                if st[0] == "res"), default=0)


def _size(shape: tuple[int, ...], full: bool | Band) -> int:
    if isinstance(full, Band):
        return full.elems(shape)
    return math.prod(shape) ** (2 if full else 1)


def _band_act_elems(steps) -> int:
    """Largest per-pair size of a band's duals (their partner variances v2(i + δ) are as
    large as the band in the self pass, whose v2 varies along its t1·t2 inputs)."""
    return max((st[3].elems(st[2]) for st in steps
                if st[0] == "act" and isinstance(st[3], Band)), default=0)


def _has_pool(ly: Layer) -> bool:
    if isinstance(ly, Residual):
        return any(_has_pool(x) for x in ly.branch + ly.shortcut)
    return isinstance(ly, (AvgPool, GAP))


def _compile(layers: Sequence[Layer], in_shape: tuple[int, ...], band: bool = True) -> _Plan:
    """Check the layer sequence and derive shapes and modes. Step tuples:
    ("lin", layer, shape_in, full, shape_out, first), ("act", name, shape, full, index),
    ("pool", (window, stride), shape_in, full, shape_out), ("todiag", None, shape, True),
    ("read", "flatten"|"gap", shape, full), ("res", branch steps, shortcut steps, shape,
    full, shape_out). In a banded plan (:func:`_banded`) ``full`` is the step's input
    :class:`Band`, a pool step carries its output band last, and todiag its band."""
    layers = tuple(layers)
    if not layers or not isinstance(layers[0], (Conv, Dense)):
        raise ValueError("the first layer must be a Conv or a Dense layer")
    if not isinstance(layers[-1], Dense):
        raise ValueError("the last layer must be a Dense readout")
    first = layers[0]
    window, window_padding = (), "same"
    if isinstance(first, Dense):
        nd, pos, coords, patch = 0, (), math.prod(in_shape), 1
    else:
        nd = len(in_shape) - 1
        if first.ndim != nd:
            raise ValueError(f"the first Conv is {first.ndim}-D but inputs have {nd} spatial "
                             f"axes")
        pos, coords, patch = tuple(in_shape[:-1]), in_shape[-1], 1
        if first.stride[0] > 1 or first.filter[0] == 1:
            if len(set(first.filter)) != 1 or first.stride != first.filter:
                raise ValueError("a strided first conv must be square with stride = filter")
            patch = first.filter[0]
            pos, coords = tuple(s // patch for s in pos), coords * patch ** nd
            if min(pos) < 1:
                raise ValueError(f"input {in_shape[:-1]} is smaller than the first filter")
        elif max(first.filter) > 1:
            window, window_padding = first.filter, first.padding
            if window_padding == "valid":
                pos = tuple(s - k + 1 for s, k in zip(pos, window))
            coords = coords * math.prod(window)
            if min(pos) < 1:
                raise ValueError(f"input {in_shape[:-1]} is smaller than the first filter")
    last_pool = max((i for i, ly in enumerate(layers) if _has_pool(ly)), default=-1)
    full0 = last_pool >= 0 and nd > 0
    act_shapes: list = []

    def walk(seq, shape, full, spatial, top):
        steps = []
        for i, ly in enumerate(seq):
            first_layer = top and i == 0
            if isinstance(ly, Conv):
                if not spatial:
                    raise ValueError(f"layer {i}: a Conv after the readout (or in an MLP)")
                if ly.ndim != nd:
                    raise ValueError(f"layer {i}: Conv is {ly.ndim}-D, inputs have {nd} axes")
                if first_layer:  # the first Gram is already of patches (or of positions)
                    out = shape
                elif ly.padding == "valid":
                    out = tuple((s - k) // st + 1 if s >= k else 0
                                for s, k, st in zip(shape, ly.filter, ly.stride))
                else:
                    out = shape
                if min(out) < 1:
                    raise ValueError(f"layer {i}: the map {shape} is smaller than the filter")
                steps.append(("lin", ly, shape, full, out, first_layer))
                shape = out
            elif isinstance(ly, Dense):
                if spatial and not first_layer:
                    raise ValueError(f"layer {i}: a Dense layer needs a Flatten or GAP readout "
                                     f"before it")
                steps.append(("lin", ly, (), False, (), first_layer))
            elif isinstance(ly, Activation):
                if first_layer:
                    raise ValueError("an Activation cannot be the first layer")
                steps.append(("act", ly.fn, shape, full, len(act_shapes)))
                act_shapes.append(shape)
            elif isinstance(ly, AvgPool):
                if not spatial:
                    raise ValueError(f"layer {i}: AvgPool needs spatial positions")
                out = tuple((s - k) // st + 1 if s >= k else 0
                            for s, k, st in zip(shape, ly.window, ly.stride))
                if len(out) != nd or min(out) < 1:
                    raise ValueError(f"layer {i}: the map {shape} is smaller than the pool "
                                     f"window")
                steps.append(("pool", (ly.window, ly.stride), shape, full, out))
                shape = out
            elif isinstance(ly, Residual):
                if first_layer:
                    raise ValueError("a Residual block cannot be the first layer")
                br, sb, _ = walk(ly.branch, shape, full, spatial, False)
                sc, sc_shape, _ = walk(ly.shortcut, shape, full, spatial, False)
                if sb != sc_shape:
                    raise ValueError(f"layer {i}: the Residual branch maps {shape} to {sb}, "
                                     f"its shortcut to {sc_shape}")
                steps.append(("res", tuple(br), tuple(sc), shape, full, sb))
                shape = sb
            elif isinstance(ly, (Flatten, GAP)):
                if not spatial or not top:
                    raise ValueError(f"layer {i}: a second readout, or a readout inside a "
                                     f"Residual block")
                steps.append(("read", "gap" if isinstance(ly, GAP) else "flatten", shape,
                              full))
                shape, spatial, full = (), False, False
            else:
                raise TypeError(f"layer {i}: unknown layer {ly!r}")
            if top and i == last_pool and not isinstance(ly, GAP) and spatial:
                steps.append(("todiag", None, shape, True))
                full = False
        return steps, shape, spatial

    steps, _, spatial = walk(layers, pos, full0, nd > 0, True)
    if spatial:
        raise ValueError("a convolutional network needs a Flatten or GAP readout")
    steps = tuple(steps)
    if band:
        steps, full0 = _banded(steps, full0)
    return _Plan(nd, tuple(in_shape), patch, pos, coords, full0, steps,
                 tuple(act_shapes), window, window_padding)


def _banded(steps: tuple, full0: bool) -> tuple[tuple, bool | Band]:
    """The steps before "todiag" (a Flatten readout after pooling) on bands of the offsets
    that reach the readout (:mod:`infwidth.kernels.native_band`): h = 0 after the last
    pooling, h_in = s·h + p − 1 through each earlier pooling, unchanged through stride-1
    convs and activations. Kept full when a step is not a stride-1 conv, an activation or a
    pooling, when a circular conv would read off-map partners that are not kept wrapped, or
    when a band would not be smaller than the full covariance."""
    cut = next((i for i, st in enumerate(steps) if st[0] == "todiag"), None)
    if not full0 or cut is None:
        return steps, full0
    head = steps[:cut]
    if any(st[0] not in ("lin", "act", "pool") or (st[0] == "lin" and not st[5]
                                                    and max(st[1].stride) > 1)
           for st in head):
        return steps, full0
    nd = len(steps[cut][2])
    half, out_half = (0,) * nd, []
    for st in reversed(head):
        out_half.append(half)
        if st[0] == "pool":
            (window, stride) = st[1]
            half = tuple(s * h + p - 1 for h, p, s in zip(half, window, stride))
    out_half.reverse()
    wrap = (True,) * nd  # the first Gram holds every wrapped partner
    band0 = band = Band(half, wrap)
    new = []
    for st, h_out in zip(head, out_half):
        if band.size >= math.prod(st[2]):
            return steps, full0
        if st[0] == "lin":
            ly, first = st[1], st[5]
            if not first and ly.padding == "circular" and not all(wrap):
                return steps, full0
            if not first and ly.padding != "circular":
                wrap = (False,) * nd
            new.append(("lin", ly, st[2], band, st[4], first))
        elif st[0] == "act":
            new.append(("act", st[1], st[2], band, st[4]))
        else:
            (window, stride), shape_in, shape_out = st[1], st[2], st[4]
            wrap = tuple(w and n == s * m
                         for w, n, s, m in zip(wrap, shape_in, stride, shape_out))
            out = Band(h_out, wrap)
            new.append(("pool", st[1], shape_in, band, shape_out, out))
            band = out
        band = Band(band.half, wrap)
    new.append(("todiag", None, steps[cut][2], band))
    return tuple(new) + steps[cut + 1:], band0


@lru_cache(maxsize=256)
def _plan_cached(layers: tuple, in_shape: tuple, band: bool) -> _Plan:
    return _compile(layers, in_shape, band)


_BAND = True


@contextmanager
def banding(on: bool):
    """Plans made inside the block use bands where they apply (``on``) or keep the full
    covariance before the last pooling (for comparing the two layouts)."""
    global _BAND
    old, _BAND = _BAND, bool(on)
    try:
        yield
    finally:
        _BAND = old


def native_plan(arch: Any, dim: int) -> _Plan:
    """The compiled plan of ``arch`` at input dimension ``dim`` (``TypeError``/``ValueError``
    when the native engine cannot compute it)."""
    params = getattr(type(arch), "__dataclass_params__", None)
    if params is not None and params.frozen and _hashable(arch):  # a value: cache by it
        return _plan_of(arch, dim, _BAND)
    return _plan_uncached(arch, dim, _BAND)


def _hashable(x: Any) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


def _plan_uncached(arch: Any, dim: int, band: bool) -> _Plan:
    return _plan_cached(tuple(_kernel_layers(arch, dim)), tuple(arch.input_shape(dim)), band)


@lru_cache(maxsize=256)
def _plan_of(arch: Any, dim: int, band: bool) -> _Plan:
    return _plan_uncached(arch, dim, band)


def supports(arch: Any, dim: int) -> bool:
    """Whether :func:`native_kernels` can compute ``arch``'s kernels at ``dim``."""
    try:
        native_plan(arch, dim)
    except (TypeError, ValueError):
        return False
    return True


def _prepare(plan: _Plan, x: np.ndarray, dtype) -> np.ndarray:
    """(n, P, coords) array: positions (patches for a non-overlapping first conv)."""
    n = x.shape[0]
    if plan.nd == 0:
        return np.ascontiguousarray(x.reshape(n, 1, -1), dtype=dtype)
    r = x.reshape((n,) + plan.in_shape)
    k = plan.patch
    if k > 1:
        cut = tuple(slice(0, s * k) for s in plan.pos0)
        r = r[(slice(None),) + cut]
        if plan.nd == 1:
            r = r.reshape(n, plan.pos0[0], -1)
        else:
            h, w = plan.pos0
            r = r.reshape(n, h, k, w, k, -1).transpose(0, 1, 3, 2, 4, 5)
    elif plan.window:  # im2col: position o gathers x[o + a − lo] over the taps a (0 outside)
        r = _im2col(r.astype(dtype, copy=False), plan.window, plan.window_padding)
    return np.ascontiguousarray(r.reshape(n, math.prod(plan.pos0), -1), dtype=dtype)


def _im2col(r: np.ndarray, window: tuple[int, ...], padding: str) -> np.ndarray:
    """(n, *m, q0, [q1·]C) view of a stride-1 conv's patches of the (n, *S, C) map ``r``: tap
    a of position o reads r[conv_taps[o, a]] (−1: zero). conv_taps[o, a] = g[o + a] on the
    padded line g, so one gather per axis builds the padded map and every window is a
    strided view whose last axis runs over q·C contiguous values (a fancy-indexed gather
    of C values per tap measured 2.4–12× slower)."""
    nd = r.ndim - 2
    idx = [conv_taps(n, q, 1, padding) for n, q in zip(r.shape[1:-1], window)]
    sp = r.shape[1:-1]
    p = np.zeros(r.shape[:1] + tuple(n + 1 for n in sp) + r.shape[-1:], r.dtype)
    p[(slice(None),) + tuple(slice(0, n) for n in sp)] = r  # index −1: the zero row
    for ax, i in enumerate(idx, start=1):
        p = np.take(p, np.concatenate([i[:, 0], i[-1, 1:]]), axis=ax)  # contiguous
    s, c, m = p.strides, r.shape[-1], tuple(i.shape[0] for i in idx)
    if nd == 1:
        shape, strides = (p.shape[0], m[0], window[0] * c), s
    else:
        shape = (p.shape[0], m[0], m[1], window[0], window[1] * c)
        strides = (s[0], s[1], s[2], s[1], s[3])
    return np.lib.stride_tricks.as_strided(p, shape, strides, writeable=False)


# --------------------------------------------------------------------------------------
# The recursion (shared by both backends)
# --------------------------------------------------------------------------------------
def _forward(plan: _Plan, ops, g, var_fn: Callable, need_ntk: bool, self_pass: bool):
    """Σ and Θ through the steps from the first Gram ``g``. ``var_fn(i, s, shape, full)``
    gives (v1, v2) for activation i, broadcastable to the (R, Q, t1, t2) view."""
    variances: list = []
    held = [g]
    del g  # the caller passes its only reference: Σ may be freed after the first layer
    s, t, _, _ = _walk(plan.steps, plan.nd, ops, held.pop(), None, var_fn, need_ntk,
                       self_pass, variances)
    return s, t, variances


def _walk(steps, nd: int, ops, s, t, var_fn: Callable, need_ntk: bool, self_pass: bool,
          variances: list):
    """Run ``steps`` on (Σ, Θ) (which the ops may overwrite); returns (Σ, Θ, cK, cD) with the
    pending scale factors cK, cD of Σ and Θ (activations, pooling, readout)."""
    ck = cd = 1.0
    fuse = getattr(ops, "fuse", None)
    k = 0
    while k < len(steps):
        fused = None if fuse is None else fuse(steps, k, nd, s, t, ck, cd, var_fn, need_ntk,
                                                self_pass)
        if fused is not None:
            used, s, t, ck, cd = fused
            k += used
            continue
        st = steps[k]
        k += 1
        op = st[0]
        if op == "lin":
            _, ly, shape, full, _, first = st
            w2, b2 = ly.W_std ** 2, ly.b_std ** 2
            taps = 1.0
            if isinstance(ly, Conv) and not first:  # a first conv is the first Gram itself
                taps = float(math.prod(ly.filter))
                if isinstance(full, Band):  # convolved over positions, as the diagonal is
                    if ly.padding == "same":  # off-map partners are the zero padding
                        s = ops.band_mask(s, full, shape, tuple(range(nd)))
                        t = None if t is None else ops.band_mask(t, full, shape,
                                                                 tuple(range(nd)))
                    full = False
                s = ops.conv(s, ly, nd, full)
                if t is not None:
                    t = ops.conv(t, ly, nd, full)
            s = ops.affine(s, w2 * ck / taps, b2)
            if need_ntk:
                t = ops.copy(s) if t is None else ops.add(ops.affine(t, w2 * cd / taps, 0.0), s)
            ck = cd = 1.0
        elif op == "act":
            _, name, shape, full, i = st
            s, t = _flush(ops, s, t, ck, cd)
            ck = cd = 1.0
            n_sp = nd if shape else 0
            band = full if isinstance(full, Band) else None
            if band is not None:  # the variances are those of the offset δ = 0
                full = False
            v1, v2 = var_fn(i, s if band is None else ops.band_diag(s, band, nd), n_sp, full)
            if self_pass:
                variances.append(v1)
                v1, v2 = _self_broadcast(v1, n_sp, full)
            if band is None:
                s, t, ck, cd = ops.dual(name, s, t, v1, v2, n_sp, full, self_pass)
            else:
                s, t, ck, cd = ops.band_dual(name, s, t, v1, v2, shape, band, self_pass)
        elif op == "pool":
            (window, stride) = st[1]
            if isinstance(st[3], Band):
                s = ops.band_pool(s, window, stride, st[3], st[5], nd)
                t = None if t is None else ops.band_pool(t, window, stride, st[3], st[5], nd)
            else:
                s = ops.pool(s, window, stride, nd)
                t = None if t is None else ops.pool(t, window, stride, nd)
            f = 1.0 / math.prod(window) ** 2
            ck, cd = ck * f, cd * f
        elif op == "todiag":
            band = st[3] if isinstance(st[3], Band) else None
            s = ops.todiag(s, nd) if band is None else ops.band_diag(s, band, nd)
            if t is not None:
                t = ops.todiag(t, nd) if band is None else ops.band_diag(t, band, nd)
        elif op == "read":
            _, how, shape, full = st
            s = ops.read(s, how, nd, full)
            t = None if t is None else ops.read(t, how, nd, full)
            f = 1.0 / math.prod(shape) ** (2 if how == "gap" else 1)
            ck, cd = ck * f, cd * f
        elif op == "res":  # Σ = Σ_branch + Σ_shortcut, Θ likewise, from the same input
            s, t = _flush(ops, s, t, ck, cd)
            ck = cd = 1.0
            s2, t2 = ops.copy(s), None if t is None else ops.copy(t)
            parts = []
            for sub, (a, b) in ((st[1], (s, t)), (st[2], (s2, t2))):
                a, b, ka, kb = _walk(sub, nd, ops, a, b, var_fn, need_ntk, self_pass,
                                     variances)
                parts.append(_flush(ops, a, b, ka, kb))
            (s, t), (s2, t2) = parts
            s = ops.add(s, s2)
            t = None if t is None else ops.add(t, t2)
    return s, t, ck, cd


def _flush(ops, s, t, ck: float, cd: float):
    """Apply pending scale factors."""
    if ck != 1.0:
        s = ops.affine(s, ck, 0.0)
    if t is not None and cd != 1.0:
        t = ops.affine(t, cd, 0.0)
    return s, t


def _self_broadcast(v, nd: int, full: bool):
    """(*S, n) self variances → (v1, v2) for the pairwise view: (n, 1, R, R) full,
    (R, 1, n, 1) diagonal."""
    r = v.reshape(-1, v.shape[-1]) if nd else v.reshape(1, -1)
    if full and nd:
        return r.T[:, None, :, None], r.T[:, None, None, :]
    a = r[:, None, :, None]
    return a, a


def _cross_vars(va: list, vb: list):
    """var_fn for a cross tile from stored self variances (lists of (*S, t) arrays)."""

    def fn(i, s, nd, full):
        a, b = va[i], vb[i]
        a = a.reshape(-1, a.shape[-1]) if nd else a.reshape(1, -1)
        b = b.reshape(-1, b.shape[-1]) if nd else b.reshape(1, -1)
        if full and nd:
            return a.T[:, None, :, None], b.T[None, :, None, :]
        return a[:, None, :, None], b[:, None, None, :]

    return fn


def _self_vars(ops):
    def fn(i, s, nd, full):
        return ops.variance(s, nd, full), None

    return fn


# --------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------
def _tile_bytes(plan: _Plan, t1: int, t2: int, item: int, need_ntk: bool) -> int:
    """Peak bytes of one tile: _LIVE arrays of the largest per-pair size (Σ, Θ, a conv's two
    per-axis accumulators), the first Gram's matmul + transpose, inputs, two chunk buffers."""
    e = plan.elems()
    live = (_LIVE if need_ntk else _LIVE - 1) + (2 if need_ntk else 1) * plan.residual_depth
    g0 = 2 * _size(plan.pos0, plan.full0)
    arrays = max(live * e, g0 + e) * t1 * t2
    inputs = (t1 + t2) * math.prod(plan.pos0) * plan.coords
    small = 8 * sum(math.prod(s) for s in plan.act_shapes) * (t1 + t2)
    if plan.banded:  # the partner variances v2(i + δ), the padded inputs of the first Gram
        small += 4 * _band_act_elems(plan.steps) * t2
        inputs += t2 * _size(tuple(p + 2 * h for p, h in zip(plan.pos0, plan.full0.half)),
                             False) * plan.coords
    return int((arrays + inputs + small + 2 * CHUNK) * item)


def _fixed_bytes(plan: _Plan, n1: int, n2: int, n_kinds: int, item: int,
                 symmetric: bool) -> int:
    """Outputs, prepared inputs and stored self variances (float64 outputs are kept in the
    working dtype)."""
    out = (n_kinds + (plan.nd == 0)) * n1 * n2 * item  # + the MLP's first Gram
    inputs = (n1 + (0 if symmetric else n2)) * math.prod(plan.pos0) * plan.coords * item
    inputs *= 2 if plan.window else 1  # im2col: the gathered patches and their typed copy
    var = sum(math.prod(s) for s in plan.act_shapes) * (n1 + (0 if symmetric else n2)) * item
    return int(out + inputs + var + 2 * n_kinds * (n1 + n2) * item)


@lru_cache(maxsize=256)
def _fused(plan: _Plan) -> bool:
    """Whether the CPU engine runs the plan's first layer as a fused pass."""
    from infwidth.kernels.native_numba import fused_steps

    return fused_steps(plan.steps, 0, plan.nd) > 0


_CPUS = os.cpu_count() or 1  # read once: os.cpu_count() costs ~9 µs a call here
# Multiply-adds of the largest main-thread BLAS product for which BLAS runs on one thread:
# waking OpenBLAS's other thread for a small product after a pause measured a median of
# 12 ms (0.17 ms at best) on 2 busy cores, one thread 0.4 ms; OpenBLAS itself uses one
# thread up to 2^18, and 2^24 takes ~0.6 ms on one core.
_BLAS_ALONE = (2**18, 2**24)
_BLAS_LOCK = threading.Lock()
_BLAS_HELD = {"calls": 0, "limiter": None}  # the calls now inside _blas_alone, their limit


def _workers(threads: int | None, n_tiles: int) -> int:
    return max(1, min(threads or _CPUS, n_tiles))


@contextlib.contextmanager
def _blas_alone(work: int):
    """BLAS on one thread inside the block when its largest product has ``work``
    multiply-adds within ``_BLAS_ALONE``, through threadpoolctl (the [test] and [distributed]
    extras; without it, nothing changes; the switch costs ~15 µs). Calls that overlap share
    one limit; the last one out restores the thread count."""
    lo, hi = _BLAS_ALONE
    ctl = _blas_controller() if lo < work <= hi else None
    if ctl is None:
        yield
        return
    with _BLAS_LOCK:
        if not _BLAS_HELD["calls"]:
            _BLAS_HELD["limiter"] = ctl.limit(limits=1, user_api="blas")
        _BLAS_HELD["calls"] += 1
    try:
        yield
    finally:
        with _BLAS_LOCK:
            _BLAS_HELD["calls"] -= 1
            if not _BLAS_HELD["calls"]:
                _BLAS_HELD["limiter"].restore_original_limits()


@lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _auto_tile(plan: _Plan, n1: int, n2: int, accelerator: bool = False) -> int:
    """Tile side: the largest whose arrays stay under ``_TILE_ELEMS`` on the diagonal layout
    (``_TILE_ELEMS_BAND`` banded, ``_TILE_ELEMS_ACCEL`` for the jax backend on an
    accelerator); on full covariances the side NEAREST ``_TILE_ELEMS_FULL``
    (``_TILE_ELEMS_FUSED`` when the first layer is a fused pass): a few pairs per tile, each
    tile carrying ~0.5 ms of Python (Myrtle-7 on 12×12, 2 pairs a side instead of 1 measured
    ~1.3× less CPU per pair)."""
    if accelerator:
        t = int(math.sqrt(_TILE_ELEMS_ACCEL / max(1, plan.elems())))
    elif plan.banded:
        t = int(math.sqrt(_TILE_ELEMS_BAND / max(1, plan.elems())))
    elif plan.full0:
        target = _TILE_ELEMS_FUSED if _fused(plan) else _TILE_ELEMS_FULL
        t = round(math.sqrt(target / max(1, plan.elems())))
    else:
        t = int(math.sqrt(_TILE_ELEMS / max(1, plan.elems())))
    return max(1, min(t, max(n1, n2)))


def native_memory_estimate(arch: Any, n1: int, n2: int | None, dim: int,
                           kinds: Sequence[str] = KINDS, dtype: str = "float64",
                           tile: int | None = None, threads: int | None = None) -> int:
    """Peak bytes of :func:`native_kernels` on (n1, n2) inputs of ``dim`` coordinates
    (``n2=None``: a symmetric Gram): outputs + prepared inputs + stored self variances +
    one tile's live arrays per worker thread (and the self pass's, which has the same size).
    ``tile`` None: the engine's automatic tile."""
    kinds = check_kinds(kinds, "kinds")
    item = np.dtype(check_dtype(dtype)).itemsize
    plan = native_plan(arch, dim)
    symmetric = n2 is None
    n2 = n1 if symmetric else n2
    t = _auto_tile(plan, n1, n2) if tile is None else tile
    return _estimate(plan, n1, n2, symmetric, kinds, item, t, threads)


def _estimate(plan: _Plan, n1: int, n2: int, symmetric: bool, kinds: Sequence[str], item: int,
              t: int, threads: int | None) -> int:
    """:func:`native_memory_estimate` of a plan, with checked arguments and a tile ``t``."""
    t1, t2 = min(t, n1), min(t, n2)
    n_tiles = _count_tiles(n1, n2, t1, t2, symmetric)
    per_tile = _tile_bytes(plan, t1, t2, item, "ntk" in kinds)
    # With a thread pool, tracemalloc measured up to ~2.6 tiles live for 2 workers (a
    # finishing tile's arrays overlap the next one's): one more tile is allowed for.
    w = _workers(threads, n_tiles)
    tiles = (w + (w > 1)) * per_tile
    if plan.banded:  # the self pass (alone, before the tiles) holds t1·t2 inputs, and its
        # numpy dual ~4 arrays of partner variances as large as the band
        m = t1 * t2
        tiles = max(tiles, _tile_bytes(plan, m, 1, item, "ntk" in kinds)
                    + 4 * _band_act_elems(plan.steps) * m * item)
    return _fixed_bytes(plan, n1, n2, len(kinds), item, symmetric) + tiles


def _count_tiles(n1: int, n2: int, t1: int, t2: int, symmetric: bool) -> int:
    a, b = -(-n1 // t1), -(-n2 // t2)
    return a * (a + 1) // 2 if symmetric else a * b


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------
def _inputs(x: Any, name: str, dim: int | None = None) -> np.ndarray:
    from infwidth.data.inputs import check_inputs

    return check_inputs(x, name, dim)


def native_kernels(arch: Any, x1: Any, x2: Any = None,
                   kinds: Sequence[str] = KINDS, dtype: str = "float64",
                   tile: int | None = None, backend: str | None = None,
                   memory_budget: int | str | None = None,
                   threads: int | None = None,
                   progress: bool | None = None) -> dict[str, np.ndarray]:
    """NNGP and/or NTK Gram matrices K[i, j] = k(x1_i, x2_j) of ``arch``, in one pass.

    ``x1``, ``x2``: flat (n, dim) arrays (``x2=None``: the symmetric Gram of ``x1``).
    ``kinds``: any of ("nngp", "ntk"); the NNGP alone skips Θ. ``tile``: pairs per tile side
    (default: about 2^19 elements per tile array on the diagonal, 2^16 for full
    covariances, 2^24 for the jax backend on an accelerator). ``backend``: "numba", "numpy"
    or "jax" (default: :func:`default_backend`). ``memory_budget`` (bytes or "4GB"): the
    tile is shrunk to fit and a budget that cannot hold one tile is refused before any work.
    ``threads``: numpy worker threads (default: every CPU). ``progress``: a progress bar
    over the tiles (None: when there are more than 4). Returns {kind: (n1, n2) array}.

    Example:
        >>> import infwidth as iw
        >>> x = iw.sample_inputs("hypercube", n=4, dim=16, seed=0)
        >>> k = native_kernels(iw.SCNN(patch_dim=4), x)
        >>> sorted(k), k["ntk"].shape
        (['nngp', 'ntk'], (4, 4))
    """
    kinds = check_kinds(kinds, "kinds")
    np_dtype = np.dtype(check_dtype(dtype)).type
    tile = check_opt_pos_int("tile", tile)
    threads = check_opt_pos_int("threads", threads)
    progress = check_progress(progress)
    if backend is None:
        backend = default_backend()
    check_choice("backend", backend, NATIVE_BACKENDS)
    x1 = _inputs(x1, "x1")
    dim = x1.shape[1]
    symmetric = x2 is None or x2 is x1
    if not symmetric:
        x2 = _inputs(x2, "x2", dim)
        symmetric = x2.shape == x1.shape and np.array_equal(x1, x2)
    plan = native_plan(arch, dim)
    n1 = x1.shape[0]
    n2 = n1 if symmetric else x2.shape[0]
    need_ntk = "ntk" in kinds
    accel = backend == "jax" and default_backend() == "jax"
    t = _auto_tile(plan, n1, n2, accel) if tile is None else tile
    if memory_budget is not None:
        from infwidth.validation import parse_bytes

        budget = parse_bytes(memory_budget)
        item = np.dtype(np_dtype).itemsize
        while True:
            need = _estimate(plan, n1, n2, symmetric, kinds, item, t, threads)
            if need <= budget or t == 1:
                break
            t = max(1, int(t / 1.25))
        if need > budget:
            fixed = _fixed_bytes(plan, n1, n2, len(kinds), item, symmetric)
            raise ValueError(f"memory_budget={budget} bytes cannot hold the ({n1}, {n2}) "
                             f"output: the engine needs {need} bytes even with 1×1 tiles, "
                             f"{fixed} of them for its whole-Gram arrays (outputs, the MLP's "
                             f"first Gram, inputs, self variances) and {need - fixed} for "
                             f"the tiles; raise memory_budget, pass fewer inputs, or fill a "
                             f"Gram store tile by tile (infwidth.kernels.distributed.gram)")
    a = _prepare(plan, x1, np_dtype)
    b = a if symmetric else _prepare(plan, x2, np_dtype)
    if backend == "jax":
        nngp, ntk = _run_jax(plan, a, b, symmetric, min(t, n1), min(t, n2), need_ntk,
                             np_dtype, progress)
    else:
        ops = _numba_ops(plan.residual_depth == 0) if backend == "numba" else NumpyOps()
        nngp, ntk = _run_numpy(plan, ops, a, b, symmetric, min(t, n1), min(t, n2), need_ntk,
                               threads, np_dtype, progress)
    out = {"nngp": nngp, "ntk": ntk}
    return {k: out[k] for k in kinds}


def _tiles(n1: int, n2: int, t1: int, t2: int, symmetric: bool):
    rows = [slice(i, min(i + t1, n1)) for i in range(0, n1, t1)]
    cols = [slice(j, min(j + t2, n2)) for j in range(0, n2, t2)]
    return [(r, c) for i, r in enumerate(rows) for j, c in enumerate(cols)
            if not symmetric or j >= i]


def _bar(items: Any, total: int, progress: bool | None):
    """``items`` under a tqdm bar over the tiles (``progress`` None: when more than 4)."""
    if not show_progress(progress, total):
        return items  # a disabled tqdm still costs ~20 µs to build
    from tqdm.auto import tqdm

    return tqdm(items, total=total, desc="kernel tiles", disable=False, leave=False)


def _put(o: np.ndarray, k: np.ndarray, r: slice, c: slice, symmetric: bool) -> None:
    """Write tile ``k`` at (r, c) of the Gram ``o``; in a symmetric Gram also its mirror at
    (c, r), and on a diagonal tile the upper triangle mirrored onto the lower one (so the bits
    of an entry do not depend on the tiling)."""
    o[r, c] = k
    if not symmetric:
        return
    if r != c:
        o[c, r] = k.T
        return
    blk = o[r, c]
    m = blk.shape[0]
    low = _lower(m) if m <= 256 else np.tril_indices(m, -1)  # cache the small ones only
    blk[low] = blk.T[low]


@lru_cache(maxsize=8)
def _lower(m: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the strict lower triangle of an m×m block."""
    return np.tril_indices(m, -1)


def _finish(out: list, self_out: tuple, symmetric: bool) -> None:
    """Exact symmetry: mirror is done per tile; set the diagonal from the self pass."""
    if symmetric:
        for o, d in zip(out, self_out):
            if o is not None:
                np.fill_diagonal(o, d)


def _numba_ops(reuse: bool = False):
    try:
        from infwidth.kernels.native_band_numba import BandNumbaOps
    except ImportError as e:
        raise ValueError("backend='numba' needs numba (pip install numba), or pass "
                         "backend='numpy'") from e
    return BandNumbaOps(reuse)


def default_backend() -> str:
    """"jax" on an accelerator, "numba" (fused compiled loops) on a CPU."""
    import jax

    return "numba" if jax.default_backend() == "cpu" else "jax"


def _run_numpy(plan, ops, a, b, symmetric, t1, t2, need_ntk, threads, dtype, progress):

    def self_pass(x):
        m = max(1, t1 * t2)

        def chunk(i):
            s, t, v = _forward(plan, ops, ops.gram(x[i:i + m], None, plan.full0, plan.pos0),
                               _self_vars(ops), need_ntk, True)
            return v, s[:, 0], None if t is None else t[:, 0]

        starts = range(0, x.shape[0], m)
        n_chunk = _workers(threads, len(starts))
        if n_chunk > 1:  # on the tiles' threads: serial, it was ~10 % of a 28×28 GAP Gram
            with ThreadPoolExecutor(n_chunk) as pool:
                parts = list(pool.map(chunk, starts))
        else:
            parts = [chunk(i) for i in starts]
        vs, so, to = (list(p) for p in zip(*parts))
        vs = [np.ascontiguousarray(p[0]) if len(p) == 1 else np.concatenate(p, axis=-1)
              for p in zip(*vs)]  # one copy per activation, not one per chunk
        return vs, np.concatenate(so), (np.concatenate(to) if need_ntk else None)

    n1, n2 = a.shape[0], b.shape[0]
    # BLAS in this thread: the MLP's first Gram of all pairs, a full self pass's per-input Grams
    blas = (n1 * n2 * a.shape[-1] if plan.nd == 0 else
            (plan.full0 is True) * a.shape[1] ** 2 * a.shape[-1])
    with _blas_alone(blas):
        va, sa, ta = self_pass(a)
        vb = va if symmetric else self_pass(b)[0]
        # Without positions (MLP) the first Gram of all pairs is one BLAS call.
        g_all = (a[:, 0] @ b[:, 0].T) * (1.0 / a.shape[-1]) if plan.nd == 0 else None
    nngp = np.empty((n1, n2), dtype)
    ntk = np.empty((n1, n2), dtype) if need_ntk else None
    todo = _tiles(n1, n2, t1, t2, symmetric)

    def first(r, c):
        if g_all is not None:
            return g_all[r, c].copy()
        fg = getattr(ops, "first_gram", None)
        if fg is not None:
            return fg(a[r], b[c], plan.full0, plan.pos0, plan.steps)
        return ops.gram(a[r], b[c], plan.full0, plan.pos0)

    def work(rc):
        r, c = rc
        fn = _cross_vars([v[..., r] for v in va], [v[..., c] for v in vb])
        s, t, _ = _forward(plan, ops, first(r, c), fn, need_ntk, False)
        for o, k in ((nngp, s), (ntk, t)):
            if o is not None:
                _put(o, k, r, c, symmetric)

    n_work = _workers(threads, len(todo))
    if n_work == 1:
        for rc in _bar(todo, len(todo), progress):
            work(rc)
    else:
        with ThreadPoolExecutor(n_work) as pool:
            list(_bar(pool.map(work, todo), len(todo), progress))
    _finish([nngp, ntk], (sa, ta), symmetric)
    return nngp, ntk


@lru_cache(maxsize=64)
def _jax_fns(plan: _Plan, need_ntk: bool):
    import jax

    ops = JaxOps()

    @jax.jit
    def self_fn(x):
        g = ops.gram(x, None, plan.full0, plan.pos0)
        s, t, v = _forward(plan, ops, g, _self_vars(ops), need_ntk, True)
        return v, s[:, 0], (s[:, 0] if t is None else t[:, 0])

    @jax.jit
    def cross_fn(x1, x2, va, vb):
        g = ops.gram(x1, x2, plan.full0, plan.pos0)
        s, t, _ = _forward(plan, ops, g, _cross_vars(va, vb), need_ntk, False)
        return s, (s if t is None else t)

    return self_fn, cross_fn


def _pad_rows(x: np.ndarray, m: int, axis: int = 0) -> np.ndarray:
    k = x.shape[axis]
    if k == m:
        return x
    idx = np.concatenate([np.arange(k), np.full(m - k, k - 1)])
    return np.take(x, idx, axis=axis)


def _run_jax(plan, a, b, symmetric, t1, t2, need_ntk, dtype, progress):
    import jax

    if dtype == np.float64 and not jax.config.jax_enable_x64:
        raise ValueError("dtype='float64' on the jax backend needs jax_enable_x64 "
                         "(import infwidth turns it on)")
    self_fn, cross_fn = _jax_fns(plan, need_ntk)
    devices = jax.devices()

    def self_pass(x):
        m = max(1, min(t1 * t2, x.shape[0]))
        parts = []
        for k, i in enumerate(range(0, x.shape[0], m)):
            xc = jax.device_put(_pad_rows(x[i:i + m], m), devices[k % len(devices)])
            parts.append((i, min(i + m, x.shape[0]) - i, self_fn(xc)))
        vs = [np.concatenate([np.asarray(p[2][0][j])[..., :p[1]] for p in parts], axis=-1)
              for j in range(plan.n_act)]
        so = np.concatenate([np.asarray(p[2][1])[:p[1]] for p in parts])
        to = np.concatenate([np.asarray(p[2][2])[:p[1]] for p in parts])
        return vs, so, to

    va, sa, ta = self_pass(a)
    vb = va if symmetric else self_pass(b)[0]
    n1, n2 = a.shape[0], b.shape[0]
    nngp = np.empty((n1, n2), dtype)
    ntk = np.empty((n1, n2), dtype) if need_ntk else None
    pending = []
    for k, (r, c) in enumerate(_tiles(n1, n2, t1, t2, symmetric)):
        dev = devices[k % len(devices)]
        args = (_pad_rows(a[r], t1), _pad_rows(b[c], t2),
                [_pad_rows(v[..., r], t1, -1) for v in va],
                [_pad_rows(v[..., c], t2, -1) for v in vb])
        pending.append((r, c, cross_fn(*jax.device_put(args, dev))))
    for r, c, (s, t) in _bar(pending, len(pending), progress):
        nr, nc = r.stop - r.start, c.stop - c.start
        for o, k in ((nngp, s), (ntk, t)):
            if o is not None:
                _put(o, np.asarray(k)[:nr, :nc], r, c, symmetric)
    _finish([nngp, ntk], (sa, ta), symmetric)
    return nngp, ntk
