"""Tiles: the unit of work of a Gram matrix computed in pieces (one engine call per tile).

A Gram K[i, j] = k(x1_i, x2_j) is cut into square tiles of ``tile`` rows and columns (the
last row/column of tiles may be smaller). :func:`compute_tile` is a pure function
(architecture, inputs, row slice, column slice) → one block per kind; it is what a Dask
task, or the in-process loop, runs. For a symmetric Gram (``x2=None``) only tiles on and
above the diagonal are planned (:func:`tile_grid`); a diagonal tile is made exactly
symmetric (its upper triangle mirrored), and the lower tiles are the transposes of the upper
ones, mirrored when the Gram is read.

:func:`plan_tile` picks the tile size from a memory budget with the estimate of the engine
that computes the tile (:func:`tile_memory`): the native engine's where it applies, else
neural-tangents' :func:`infwidth.kernels.engine.estimate_block_memory` (one tile is then one
engine block).

Example:
    >>> import numpy as np, infwidth as iw
    >>> x = np.random.default_rng(0).standard_normal((6, 8))
    >>> arch = iw.ConvNet(filter_size=3, depth=1)  # the native engine computes its tiles
    >>> tile_grid(6, 6, 4, symmetric=True)
    [(0, 0), (0, 1), (1, 1)]
    >>> b = compute_tile(arch, x, None, slice(0, 4), slice(4, 6), ("ntk",), "float64")
    >>> b["ntk"].shape
    (4, 2)
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from infwidth.architectures.networks import Architecture
from infwidth.kernels import native
from infwidth.kernels.engine import estimate_block_memory, kernel, parse_bytes
from infwidth.validation import check_dtype, check_kinds

__all__ = ["compute_tile", "plan_tile", "tile_memory", "tile_grid", "tile_slices",
           "tile_threads", "MAX_TILE"]

MAX_TILE = 1024  # the engine's own largest block (engine.plan_blocks)


def tile_threads() -> int | None:
    """Threads the native engine may use for one tile: ``INFWIDTH_TILE_THREADS`` (set to 1
    in each worker by :func:`infwidth.kernels.distributed.local_cluster`), else None (every
    CPU)."""
    v = os.environ.get("INFWIDTH_TILE_THREADS")
    return int(v) if v else None


def _engine(arch: Architecture, xa: np.ndarray, xb: np.ndarray | None,
            kinds: Sequence[str], dtype: str) -> dict[str, np.ndarray]:
    """One block per kind of ``arch``'s Gram between ``xa`` and ``xb`` (``xb=None``: ``xa``
    with itself). The one place a tile meets an engine: the native engine (every kind in
    one pass, :func:`infwidth.kernels.native.native_kernels`, :func:`tile_threads` threads)
    for the architectures it describes, else neural-tangents through
    :func:`infwidth.kernel`, one call per kind, the whole block as one engine block."""
    if native.supports(arch, xa.shape[1]):
        return native.native_kernels(arch, xa, xb, kinds=tuple(kinds), dtype=dtype,
                                     threads=tile_threads(), progress=False)
    b = max(xa.shape[0], xa.shape[0] if xb is None else xb.shape[0])
    return {k: kernel(arch, xa, xb, kind=k, tile=b, dtype=dtype, memory_budget=2**62,
                      progress=False, engine="neural-tangents") for k in kinds}


def compute_tile(arch: Architecture, x1: np.ndarray, x2: np.ndarray | None, rows: slice,
                 cols: slice, kinds: Sequence[str], dtype: str) -> dict[str, np.ndarray]:
    """The (rows, cols) block of each kind of the Gram of ``x1`` against ``x2`` (``x2=None``:
    the symmetric Gram of ``x1``), as ``{kind: array}`` in ``dtype``.

    Pure: the same arguments give the same bits. A diagonal tile of a symmetric Gram
    (rows == cols) is computed once and made exactly symmetric (upper triangle mirrored)."""
    symmetric = x2 is None
    xa = x1[rows]
    if symmetric and rows == cols:
        out = _engine(arch, xa, None, kinds, dtype)
        for k, v in out.items():
            v = np.array(v, copy=True)
            low = np.tril_indices(v.shape[0], -1)
            v[low] = v.T[low]
            out[k] = v
        return out
    xb = (x1 if symmetric else x2)[cols]
    return {k: np.asarray(v) for k, v in _engine(arch, xa, xb, kinds, dtype).items()}


def tile_slices(n: int, tile: int) -> list[slice]:
    """The row (or column) ranges of the tiles along an axis of length ``n``."""
    return [slice(i, min(i + tile, n)) for i in range(0, n, tile)]


def tile_grid(n1: int, n2: int, tile: int, symmetric: bool) -> list[tuple[int, int]]:
    """Tile indices (i, j) to compute, row-major; for a symmetric Gram only j ≥ i."""
    r, c = math.ceil(n1 / tile), math.ceil(n2 / tile)
    return [(i, j) for i in range(r) for j in range(c) if not symmetric or j >= i]


def tile_memory(arch: Architecture, t: int, dim: int, kinds: Sequence[str],
                dtype: str) -> int:
    """Estimated peak bytes of one t×t tile: the native engine's own estimate
    (:func:`~infwidth.kernels.native.native_memory_estimate`, :func:`tile_threads` threads)
    where it applies, else neural-tangents' (the larger kind's
    :func:`~infwidth.kernels.engine.estimate_block_memory`, kinds one after another, plus one
    output block per kind)."""
    if native.supports(arch, dim):
        return native.native_memory_estimate(arch, t, t, dim, kinds=tuple(kinds), dtype=dtype,
                                             threads=tile_threads())
    item = 8 if dtype == "float64" else 4
    kind = "ntk" if "ntk" in kinds else "nngp"
    return estimate_block_memory(arch, t, t, dim, kind, dtype) + len(kinds) * t * t * item


def plan_tile(arch: Architecture, n1: int, n2: int, dim: int, kinds: Sequence[str],
              dtype: str, memory_budget: int | str) -> int:
    """Largest square tile (≤ :data:`MAX_TILE`, ≤ max(n1, n2)) whose :func:`tile_memory`
    fits ``memory_budget`` — the budget of ONE tile, i.e. of each worker. A budget too small
    for a 1×1 tile is refused."""
    budget = parse_bytes(memory_budget)
    kinds = check_kinds(kinds, "kinds")
    check_dtype(dtype)
    one = tile_memory(arch, 1, dim, kinds, dtype)
    if one > budget:
        raise ValueError(f"memory_budget={budget / 2**20:.1f} MiB cannot hold even a 1×1 tile "
                         f"({one / 2**20:.3f} MiB); raise memory_budget")
    lo, hi = 1, min(MAX_TILE, max(n1, n2))
    while lo < hi:  # the estimates grow with t: the largest t that fits
        mid = (lo + hi + 1) // 2
        if tile_memory(arch, mid, dim, kinds, dtype) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo
