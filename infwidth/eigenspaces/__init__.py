"""Eigenspaces: the kernel's spectrum by frequency and space (docs/theory.md §3).

``engine``: :func:`spectrum` and the :class:`Spectrum` table; ``steiner``: the learning
index L(k) from the topology; ``tree_types``, ``jets``, ``measures`` and
``tree_recursion``: the exact type-level engine; ``hypercube`` and ``sphere``: the
leaves; ``monte_carlo``: the Gram and Monte-Carlo routes for general DAGs.
"""

from infwidth.eigenspaces.steiner import (learning_index, space, tree_space, steiner_space,
                                          degree_profile, MAX_STEINER_TERMINALS, MAX_STEINER_WORK)
from infwidth.eigenspaces.tree_recursion import RecursionOptions, tree_eigenvalues
from infwidth.eigenspaces.eigenfunctions import Eigenfunction, sample_eigenfunction, sample_domain
from infwidth.eigenspaces.eigentypes import TypeSystem, type_system, MAX_TYPES
from infwidth.eigenspaces.monte_carlo import (fwht_types, gram_types, monte_carlo_types,
                                              subset_keys, MAX_GRAM_DIM)
from infwidth.eigenspaces.engine import spectrum, Spectrum, EigenType, METHODS, eigenfunction

__all__ = [
    "learning_index", "space", "tree_space", "steiner_space", "degree_profile",
    "MAX_STEINER_TERMINALS", "MAX_STEINER_WORK", "RecursionOptions", "tree_eigenvalues",
    "Eigenfunction", "sample_eigenfunction", "sample_domain", "TypeSystem", "type_system",
    "MAX_TYPES", "fwht_types", "gram_types", "monte_carlo_types", "subset_keys", "MAX_GRAM_DIM",
    "spectrum", "Spectrum", "EigenType", "METHODS", "eigenfunction"
]
