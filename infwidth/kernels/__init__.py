"""Kernels: the NNGP and NTK of an architecture on given inputs (docs/theory.md §2).

``engine``: :func:`kernel`, which runs the native one-pass engine (``native``, with the
numba / numpy / JAX backends of ``native_numba`` and ``native_ops``) or neural-tangents, and
their memory plans; ``cost``: :func:`kernel_cost`, the engine's flops and bytes counted
from its plan before the work; ``tree``: :func:`kernel_pair` (both kinds from one call) and
:func:`tree_kernel`, the numpy reference recursion used as an independent check; ``tiles``,
``gram_store`` and ``distributed``: Gram matrices as tiles in a Zarr store, filled in-process
or on a Dask cluster, resumable (the ``[distributed]`` extra).
"""

from infwidth.kernels.cost import KernelCost, kernel_cost
from infwidth.kernels.distributed import TileError, gram, local_cluster
from infwidth.kernels.engine import (
    DEFAULT_MEMORY_BUDGET,
    ENGINES,
    estimate_block_memory,
    kernel,
    parse_bytes,
    plan_blocks,
)
from infwidth.kernels.gram_store import StoredGram, kernel_regression_from_store
from infwidth.kernels.native import native_kernels, native_memory_estimate
from infwidth.kernels.tree import kernel_pair, tree_kernel

__all__ = [
    "kernel",
    "kernel_cost",
    "KernelCost",
    "ENGINES",
    "estimate_block_memory",
    "plan_blocks",
    "parse_bytes",
    "DEFAULT_MEMORY_BUDGET",
    "native_kernels",
    "native_memory_estimate",
    "kernel_pair",
    "tree_kernel",
    "gram",
    "StoredGram",
    "kernel_regression_from_store",
    "local_cluster",
    "TileError",
]
