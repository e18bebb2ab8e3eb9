"""Kernels: the NNGP and NTK of an architecture on given inputs (docs/theory.md §2).

``engine``: :func:`kernel`, which runs the native one-pass engine (``native``, ``native_ops``)
or neural-tangents, and their memory plans; ``tree``: :func:`tree_kernels` (both kinds of a
tree in one jitted pass), :func:`kernel_pair` and :func:`tree_kernel`, the numpy reference
recursion used as an independent check; ``hypercube_gram``: exact fast Gram matrices of trees
on ±1 inputs; ``tiles``, ``gram_store`` and ``distributed``: Gram matrices as tiles in a Zarr
store, filled in-process or on a Dask cluster, resumable (the ``[distributed]`` extra).
"""

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
from infwidth.kernels.hypercube_gram import tree_gram
from infwidth.kernels.native import native_kernels, native_memory_estimate
from infwidth.kernels.tree import kernel_pair, tree_kernel, tree_kernels

__all__ = [
    "kernel",
    "ENGINES",
    "estimate_block_memory",
    "plan_blocks",
    "parse_bytes",
    "DEFAULT_MEMORY_BUDGET",
    "native_kernels",
    "native_memory_estimate",
    "tree_kernels",
    "kernel_pair",
    "tree_kernel",
    "tree_gram",
    "gram",
    "StoredGram",
    "kernel_regression_from_store",
    "local_cluster",
    "TileError",
]
