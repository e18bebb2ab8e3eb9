"""Native NNGP + NTK engine: both kinds in one pass through a layer description.

:func:`native_kernels` walks the layers of :func:`infwidth.architectures.layers.kernel_layers`
(formulas in that module) on tiles of input pairs and keeps only the work the readout needs:

- Positions. A stride-1 conv preserves the offset j − i of Σ(i, j), so with a Flatten
  readout (and no pooling) only the diagonal Σ(i, i) is tracked: O(P) per pair. Pooling and
  GAP need the full (P, P) covariance; there a conv is a sum of the q DIAGONAL shifts per axis
  Σ'(i, j) = (1/q)·Σ_a K(i + a, j + a) (separable over axes), never a q×q dense filter. After
  the last pooling of a Flatten network the diagonal is taken at once.
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

import math
import os
from concurrent.futures import ThreadPoolExecutor
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
    is (P, P)."""

    nd: int
    in_shape: tuple[int, ...]
    patch: int
    pos0: tuple[int, ...]
    coords: int
    full0: bool
    steps: tuple[tuple, ...]
    act_shapes: tuple[tuple[int, ...], ...]
    window: tuple[int, ...] = ()
    window_padding: str = "same"

    @property
    def n_act(self) -> int:
        return len(self.act_shapes)

    def elems(self) -> int:
        """Largest per-pair element count of any array a tile holds."""
        return max(math.prod(self.pos0) ** (2 if self.full0 else 1), _elems(self.steps))

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


def _size(shape: tuple[int, ...], full: bool) -> int:
    return math.prod(shape) ** (2 if full else 1)


def _has_pool(ly: Layer) -> bool:
    if isinstance(ly, Residual):
        return any(_has_pool(x) for x in ly.branch + ly.shortcut)
    return isinstance(ly, (AvgPool, GAP))


def _compile(layers: Sequence[Layer], in_shape: tuple[int, ...]) -> _Plan:
    """Check the layer sequence and derive shapes and modes. Step tuples:
    ("lin", layer, shape_in, full, shape_out, first), ("act", name, shape, full, index),
    ("pool", (window, stride), shape_in, full, shape_out), ("todiag", None, shape, True),
    ("read", "flatten"|"gap", shape, full), ("res", branch steps, shortcut steps, shape,
    full, shape_out)."""
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
    return _Plan(nd, tuple(in_shape), patch, pos, coords, full0, tuple(steps),
                 tuple(act_shapes), window, window_padding)


@lru_cache(maxsize=256)
def _plan_cached(layers: tuple, in_shape: tuple) -> _Plan:
    return _compile(layers, in_shape)


def native_plan(arch: Any, dim: int) -> _Plan:
    """The compiled plan of ``arch`` at input dimension ``dim`` (``TypeError``/``ValueError``
    when the native engine cannot compute it)."""
    layers = _kernel_layers(arch, dim)
    return _plan_cached(tuple(layers), tuple(arch.input_shape(dim)))


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
        idx = [conv_taps(s, q, 1, plan.window_padding)
               for s, q in zip(plan.in_shape[:-1], plan.window)]
        pad = np.pad(r, [(0, 0)] + [(0, 1)] * plan.nd + [(0, 0)])  # index −1: the zero row
        if plan.nd == 1:
            r = pad[:, idx[0]]
        else:
            r = pad[:, idx[0][:, None, :, None], idx[1][None, :, None, :]]
    return np.ascontiguousarray(r.reshape(n, math.prod(plan.pos0), -1), dtype=dtype)


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
    for st in steps:
        op = st[0]
        if op == "lin":
            _, ly, shape, full, _, first = st
            w2, b2 = ly.W_std ** 2, ly.b_std ** 2
            taps = 1.0
            if isinstance(ly, Conv) and not first:  # a first conv is the first Gram itself
                taps = float(math.prod(ly.filter))
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
            v1, v2 = var_fn(i, s, n_sp, full)
            if self_pass:
                variances.append(v1)
                v1, v2 = _self_broadcast(v1, n_sp, full)
            s, t, ck, cd = ops.dual(name, s, t, v1, v2, n_sp, full, self_pass)
        elif op == "pool":
            (window, stride) = st[1]
            s = ops.pool(s, window, stride, nd)
            t = None if t is None else ops.pool(t, window, stride, nd)
            f = 1.0 / math.prod(window) ** 2
            ck, cd = ck * f, cd * f
        elif op == "todiag":
            s = ops.todiag(s, nd)
            t = None if t is None else ops.todiag(t, nd)
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
    g0 = 2 * math.prod(plan.pos0) ** (2 if plan.full0 else 1)
    arrays = max(live * e, g0 + e) * t1 * t2
    inputs = (t1 + t2) * math.prod(plan.pos0) * plan.coords
    small = 8 * sum(math.prod(s) for s in plan.act_shapes) * (t1 + t2)
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


def _workers(threads: int | None, n_tiles: int) -> int:
    cpus = os.cpu_count() or 1
    return max(1, min(threads or cpus, n_tiles))


def _auto_tile(plan: _Plan, n1: int, n2: int, accelerator: bool = False) -> int:
    target = (_TILE_ELEMS_ACCEL if accelerator
              else _TILE_ELEMS_FULL if plan.full0 else _TILE_ELEMS)
    t = int(math.sqrt(target / max(1, plan.elems())))
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
    t1, t2 = min(t, n1), min(t, n2)
    n_tiles = _count_tiles(n1, n2, t1, t2, symmetric)
    per_tile = _tile_bytes(plan, t1, t2, item, "ntk" in kinds)
    # With a thread pool, tracemalloc measured up to ~2.6 tiles live for 2 workers (a
    # finishing tile's arrays overlap the next one's): one more tile is allowed for.
    w = _workers(threads, n_tiles)
    return _fixed_bytes(plan, n1, n2, len(kinds), item, symmetric) + (w + (w > 1)) * per_tile


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
        while True:
            need = native_memory_estimate(arch, n1, None if symmetric else n2, dim, kinds,
                                          dtype, t, threads)
            if need <= budget or t == 1:
                break
            t = max(1, int(t / 1.25))
        if need > budget:
            fixed = _fixed_bytes(plan, n1, n2, len(kinds), np.dtype(np_dtype).itemsize,
                                 symmetric)
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
        ops = _numba_ops() if backend == "numba" else NumpyOps()
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
    from tqdm.auto import tqdm

    show = show_progress(progress, total)
    return tqdm(items, total=total, desc="kernel tiles", disable=not show, leave=False)


def _finish(out: list, self_out: tuple, symmetric: bool) -> None:
    """Exact symmetry: mirror is done per tile; set the diagonal from the self pass."""
    if symmetric:
        for o, d in zip(out, self_out):
            if o is not None:
                np.fill_diagonal(o, d)


def _numba_ops():
    try:
        from infwidth.kernels.native_numba import NumbaOps
    except ImportError as e:
        raise ValueError("backend='numba' needs numba (pip install numba), or pass "
                         "backend='numpy'") from e
    return NumbaOps()


def default_backend() -> str:
    """"jax" on an accelerator, "numba" (fused compiled loops) on a CPU."""
    import jax

    return "numba" if jax.default_backend() == "cpu" else "jax"


def _run_numpy(plan, ops, a, b, symmetric, t1, t2, need_ntk, threads, dtype, progress):

    def self_pass(x):
        m = max(1, t1 * t2)
        vs, so, to = None, [], []
        for i in range(0, x.shape[0], m):
            s, t, v = _forward(plan, ops, ops.gram(x[i:i + m], None, plan.full0, plan.pos0),
                               _self_vars(ops), need_ntk, True)
            vs = v if vs is None else [np.concatenate([p, q], axis=-1) for p, q in zip(vs, v)]
            so.append(s[:, 0])
            to.append(None if t is None else t[:, 0])
        vs = [np.ascontiguousarray(v) for v in vs]
        return vs, np.concatenate(so), (np.concatenate(to) if need_ntk else None)

    va, sa, ta = self_pass(a)
    vb = va if symmetric else self_pass(b)[0]
    n1, n2 = a.shape[0], b.shape[0]
    nngp = np.empty((n1, n2), dtype)
    ntk = np.empty((n1, n2), dtype) if need_ntk else None
    todo = _tiles(n1, n2, t1, t2, symmetric)

    # Without positions (MLP) the first Gram of all pairs is one multithreaded BLAS call.
    g_all = (a[:, 0] @ b[:, 0].T) * (1.0 / a.shape[-1]) if plan.nd == 0 else None

    def first(r, c):
        if g_all is not None:
            return g_all[r, c].copy()
        return ops.gram(a[r], b[c], plan.full0, plan.pos0)

    def work(rc):
        r, c = rc
        fn = _cross_vars([v[..., r] for v in va], [v[..., c] for v in vb])
        s, t, _ = _forward(plan, ops, first(r, c), fn, need_ntk, False)
        for o, k in ((nngp, s), (ntk, t)):
            if o is None:
                continue
            if symmetric and r == c:  # the upper triangle mirrored: the bits of an entry
                k = np.triu(k) + np.triu(k, 1).T  # do not depend on the tiling
            o[r, c] = k
            if symmetric and r != c:
                o[c, r] = k.T

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
            if o is None:
                continue
            k = np.asarray(k)[:nr, :nc]
            if symmetric and r == c:  # the upper triangle mirrored: the bits of an entry
                k = np.triu(k) + np.triu(k, 1).T  # do not depend on the tiling
            o[r, c] = k
            if symmetric and r != c:
                o[c, r] = k.T
    _finish([nngp, ntk], (sa, ta), symmetric)
    return nngp, ntk
