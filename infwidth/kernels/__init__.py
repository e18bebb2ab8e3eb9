"""Kernels: the NNGP and NTK of an architecture on given inputs (docs/theory.md §2).

``engine``: :func:`kernel` and its memory plan, and the numpy tree recursion used as an
independent check; ``hypercube_gram``: exact fast Gram matrices of trees on ±1 inputs.
"""

from infwidth.kernels.engine import (kernel, estimate_block_memory, plan_blocks, tree_kernel,
                                     parse_bytes, DEFAULT_MEMORY_BUDGET)
from infwidth.kernels.hypercube_gram import tree_gram

__all__ = [
    "kernel", "estimate_block_memory", "plan_blocks", "tree_kernel", "parse_bytes",
    "DEFAULT_MEMORY_BUDGET", "tree_gram"
]
