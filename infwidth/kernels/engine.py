"""Kernels: NNGP/NTK Gram matrices under a memory budget, the one entry point.

:func:`kernel` runs the native engine (:mod:`infwidth.kernels.native`) for every architecture
it describes and neural-tangents' ``kernel_fn`` (blocked, one kind per call) otherwise or on
request. The numpy reference recursion :func:`~infwidth.kernels.tree.tree_kernel`, which
checks both, is in :mod:`infwidth.kernels.tree`.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache, partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import check_inputs
from infwidth.validation import (
    DEFAULT_MEMORY_BUDGET,
    check_architecture,
    check_choice,
    check_dtype,
    check_kinds,
    check_opt_pos_int,
    check_progress,
    parse_bytes,
    show_progress,
)

__all__ = ["kernel", "ENGINES", "estimate_block_memory", "plan_blocks", "parse_bytes",
           "DEFAULT_MEMORY_BUDGET"]

# Peak working memory of neural-tangents' kernel_fn per tracked kernel (NNGP, NTK), in units
# of one (n1, n2, S) array, S the largest per-pair spatial footprint. benchmarks/kernel_speed.py
# measured at most 5.3 (GAP ConvNet, n=64, P=64: 1428 MiB of peak RSS for NTK), rounded up.
_WORKSPACE_FACTOR = 6


def _spatial_footprint(arch: Architecture, dim: int) -> int:
    """Per-pair entries neural-tangents keeps for one layer's covariance, at its largest.

    Without pooling the kernel stays diagonal in space: one entry per position (the raw
    input has dim/channels positions). A GAP readout needs the full spatial covariance:
    P² entries per pair.
    """
    shape = arch.input_shape(dim)
    positions = math.prod(shape[:-1])
    if arch.full_spatial_covariance:
        return positions ** 2  # pooling: the full spatial covariance is tracked
    return max(positions, 1)


def estimate_block_memory(arch: Architecture, n1: int, n2: int, dim: int,
                          kind: str = "ntk", dtype: str = "float64") -> int:
    """Estimated peak bytes of one (n1, n2) kernel block (O(n1·n2·P²) for GAP)."""
    item = 8 if dtype == "float64" else 4
    arrays = 2 if kind == "ntk" else 1
    return int(_WORKSPACE_FACTOR * arrays * n1 * n2 * _spatial_footprint(arch, dim) * item)


def plan_blocks(arch: Architecture, n1: int, n2: int, dim: int, kind: str, dtype: str,
                tile: int | None, memory_budget: int) -> int:
    """Choose (or check) the block side ``tile`` so one block plus the output fits the
    budget."""
    out_bytes = n1 * n2 * (8 if dtype == "float64" else 4)
    room = memory_budget - out_bytes
    one = estimate_block_memory(arch, 1, 1, dim, kind, dtype)
    if room < one:
        raise ValueError(
            f"memory_budget={memory_budget / 2**20:.1f} MiB cannot be met: the ({n1}, {n2}) "
            f"output needs {out_bytes / 2**20:.1f} MiB and even a 1×1 block needs "
            f"{one / 2**20:.3f} MiB more. Raise memory_budget or use fewer inputs.")
    if tile is not None:
        need = estimate_block_memory(arch, min(tile, n1), min(tile, n2), dim, kind, dtype)
        if need > room:
            raise ValueError(
                f"tile={tile} needs about {need / 2**20:.1f} MiB per block, over "
                f"the {room / 2**20:.1f} MiB left in memory_budget after the output; use a "
                f"tile of at most {int(math.sqrt(room / one))} or raise memory_budget.")
        return tile
    b = int(math.sqrt(room / one))
    return max(1, min(b, max(n1, n2), 1024))


@lru_cache(maxsize=64)
def _jitted(arch: Architecture, kind: str):
    kernel_fn = arch.stax[2]
    return jax.jit(partial(kernel_fn, get=kind))


def _blocks(n: int, b: int) -> list[slice]:
    return [slice(i, min(i + b, n)) for i in range(0, n, b)]


def _pad(x: np.ndarray, b: int) -> np.ndarray:
    """Pad a block to ``b`` rows by repeating its last row, so every block has one shape
    and XLA compiles once."""
    if x.shape[0] == b:
        return x
    return np.concatenate([x, np.repeat(x[-1:], b - x.shape[0], axis=0)])


ENGINES = ("auto", "native", "neural-tangents")


def kernel(arch: Architecture, x1: Any, x2: Any = None, kind: str | tuple[str, ...] = "ntk",
           tile: int | None = None, dtype: str = "float64",
           memory_budget: int | str = DEFAULT_MEMORY_BUDGET,
           progress: bool | None = None, engine: str = "auto", backend: str | None = None,
           *, batch_size: int | None = None) -> Any:
    """Gram matrix K[i, j] = k(x1_i, x2_j) of ``arch``'s infinite-width NNGP or NTK.

    ``engine="auto"`` uses the native engine (:func:`infwidth.kernels.native.native_kernels`:
    both kinds in one pass) for every architecture it describes, and neural-tangents, with a
    one-line notice, for the others; "native" refuses what it cannot do; "neural-tangents"
    computes blocks with neural-tangents' ``kernel_fn``, one kind per call. Either way the
    Gram is computed in square tiles that fit ``memory_budget``, a budget that cannot be met
    is refused before any work, and with ``x2=None`` only tiles on and above the diagonal
    are computed.

    Args:
        arch: the architecture (``iw.MLP``, ``iw.SCNN``, ``iw.DCNN``, ``iw.ConvNet``, a
            ``Network`` of layers, …).
        x1: inputs, a flat (n1, dim) array, reshaped with ``arch.input_shape(dim)``.
        x2: second inputs, (n2, dim); ``None``: ``x1`` (the symmetric Gram).
        kind: "nngp" or "ntk" (an array is returned) or a tuple of distinct kinds (a dict
            {kind: array}, computed in one pass).
        tile: the side of a square tile of input pairs (None: the largest that fits
            ``memory_budget``, at most 1024 on the neural-tangents path).
        dtype: "float64" or "float32".
        memory_budget: the working memory allowed, bytes or a string such as "4GB"; a
            computation that cannot fit is refused before any work.
        progress: a progress bar over the tiles (None: when there are more than 4).
        engine: "auto", "native" or "neural-tangents".
        backend: the native engine's backend, "numba", "numpy" or "jax" (None: its
            :func:`~infwidth.kernels.native.default_backend`); refused with
            ``engine="neural-tangents"``.
        batch_size: deprecated name of ``tile``.

    Returns:
        The (n1, n2) Gram matrix for one ``kind`` (a numpy array), or a dict
        ``{kind: matrix}`` for a tuple of kinds.

    Example:
        >>> x = iw.sample_inputs("hypercube", n=4, dim=16, seed=0)
        >>> iw.kernel(iw.SCNN(patch_dim=4), x, kind="nngp").shape
        (4, 4)
        >>> both = iw.kernel(iw.SCNN(patch_dim=4), x, kind=("nngp", "ntk"), backend="numpy")
        >>> bool(np.allclose(both["nngp"], iw.kernel(iw.SCNN(patch_dim=4), x, kind="nngp",
        ...                                          engine="neural-tangents"), rtol=1e-10))
        True
    """
    from infwidth.kernels.native import NATIVE_BACKENDS

    if batch_size is not None:
        warnings.warn("kernel(batch_size=) is deprecated: the knob is named tile",
                      DeprecationWarning, stacklevel=2)
        if tile is not None:
            raise TypeError("pass tile or its deprecated name batch_size, not both")
        tile = check_opt_pos_int("batch_size", batch_size)
    check_architecture(arch)
    kinds = check_kinds(kind)
    check_choice("engine", engine, ENGINES)
    check_dtype(dtype)
    tile = check_opt_pos_int("tile", tile)
    progress = check_progress(progress)
    if backend is not None:
        check_choice("backend", backend, NATIVE_BACKENDS)
        if engine == "neural-tangents":
            raise ValueError(f"backend={backend!r} selects a native engine backend; it "
                             f"cannot be used with engine='neural-tangents'")
    budget = parse_bytes(memory_budget)
    x1 = check_inputs(x1, "x1")
    dim = x1.shape[1]
    shape = arch.input_shape(dim)
    if engine != "neural-tangents":
        from infwidth.kernels.native import native_kernels, supports

        if supports(arch, dim):
            res = native_kernels(arch, x1, x2, kinds=kinds, dtype=dtype, tile=tile,
                                 backend=backend, memory_budget=budget, progress=progress)
            return res[kind] if isinstance(kind, str) else res
        if engine == "native":
            raise ValueError(f"engine='native' does not cover {type(arch).__name__}; use "
                             f"engine='auto' or 'neural-tangents'")
        if backend is not None:
            raise ValueError(f"backend={backend!r}: the native engine does not cover "
                             f"{type(arch).__name__}; leave backend=None")
        warnings.warn(f"the native engine does not cover {type(arch).__name__}: "
                      f"neural-tangents computes its kernel", stacklevel=2)
    if not isinstance(kind, str):
        return {k: kernel(arch, x1, x2, k, tile, dtype, memory_budget, progress,
                          "neural-tangents") for k in kinds}
    symmetric = x2 is None
    x2 = x1 if symmetric else check_inputs(x2, "x2", dim)
    n1, n2 = x1.shape[0], x2.shape[0]
    b = plan_blocks(arch, n1, n2, dim, kind, dtype, tile, budget)

    jdt = jnp.dtype(dtype)
    fn = _jitted(arch, kind)
    out = np.empty((n1, n2), dtype=np.float64 if dtype == "float64" else np.float32)
    rows, cols = _blocks(n1, b), _blocks(n2, b)
    todo = [(r, c) for i, r in enumerate(rows) for j, c in enumerate(cols)
            if not symmetric or j >= i]
    show = show_progress(progress, len(todo))
    bb1, bb2 = min(b, n1), min(b, n2)
    for r, c in tqdm(todo, desc=f"{kind} blocks", disable=not show, leave=False):
        a = jnp.asarray(_pad(x1[r], bb1).reshape((bb1,) + shape), dtype=jdt)
        z = jnp.asarray(_pad(x2[c], bb2).reshape((bb2,) + shape), dtype=jdt)
        k = np.asarray(fn(a, z))[: r.stop - r.start, : c.stop - c.start]
        out[r, c] = k
        if symmetric and r != c:
            out[c, r] = k.T
    return out
