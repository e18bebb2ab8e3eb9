"""Kernels: the NNGP and NTK of an architecture on given inputs (docs/theory.md §2).

``engine``: :func:`kernel` (neural-tangents) and its memory plan; ``tree``: the tree kernels,
:func:`tree_kernels` (NNGP and NTK in one fast jitted pass), :func:`kernel_pair` (both kinds
of any architecture) and :func:`tree_kernel`, the numpy reference recursion used as an
independent check; ``hypercube_gram``: exact fast Gram matrices of trees on ±1 inputs.
"""

from infwidth.kernels.engine import (
    DEFAULT_MEMORY_BUDGET,
    estimate_block_memory,
    kernel,
    parse_bytes,
    plan_blocks,
)
from infwidth.kernels.hypercube_gram import tree_gram
from infwidth.kernels.tree import kernel_pair, tree_kernel, tree_kernels

__all__ = [
    "kernel",
    "estimate_block_memory",
    "plan_blocks",
    "parse_bytes",
    "DEFAULT_MEMORY_BUDGET",
    "tree_kernels",
    "kernel_pair",
    "tree_kernel",
    "tree_gram",
]
