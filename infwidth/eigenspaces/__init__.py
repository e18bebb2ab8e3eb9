"""Eigenspaces: the kernel's spectrum by frequency and space (docs/theory.md §3).

``engine``: :func:`spectrum`, the :class:`Spectrum` table and the round-off rule
:func:`roundoff_zeroed`; ``steiner``: the learning index L(k) from the topology;
``harmonics``: spherical harmonics (Legendre P_k, N(d, k), Gauss–Jacobi, Funk–Hecke);
``tree_types``, ``jets``, ``measures`` and ``tree_recursion``: the exact type-level engine;
``hypercube`` and ``sphere``: the leaves; ``conv_spectrum``: exact spectra of one-layer
circular conv kernels with or without average pooling; ``monte_carlo``: the Gram and
Monte-Carlo routes for general DAGs.
"""

from infwidth.eigenspaces.conv_spectrum import (
    ConvKernel,
    ConvSpectrum,
    conv_kernel,
    conv_spectrum,
    patch_spectrum,
)
from infwidth.eigenspaces.eigenfunctions import Eigenfunction, sample_domain, sample_eigenfunction
from infwidth.eigenspaces.eigentypes import MAX_TYPES, TypeSystem, type_system
from infwidth.eigenspaces.engine import (
    METHODS,
    ROUNDOFF_FACTOR,
    EigenType,
    Spectrum,
    eigenfunction,
    roundoff_zeroed,
    spectrum,
)
from infwidth.eigenspaces.harmonics import (
    funk_hecke,
    gauss_jacobi,
    harmonic_count,
    legendre,
    legendre_all,
    reproducing_kernel,
    zonal_harmonic,
)
from infwidth.eigenspaces.monte_carlo import (
    MAX_GRAM_DIM,
    fwht_types,
    gram_types,
    monte_carlo_types,
    subset_keys,
)
from infwidth.eigenspaces.steiner import (
    MAX_STEINER_TERMINALS,
    MAX_STEINER_WORK,
    degree_profile,
    learning_index,
    learning_index_from_space,
    space,
    steiner_space,
    tree_space,
)
from infwidth.eigenspaces.tree_recursion import RecursionOptions, tree_eigenvalues

__all__ = [
    "legendre",
    "legendre_all",
    "harmonic_count",
    "reproducing_kernel",
    "gauss_jacobi",
    "funk_hecke",
    "zonal_harmonic",
    "learning_index",
    "learning_index_from_space",
    "space",
    "tree_space",
    "steiner_space",
    "degree_profile",
    "MAX_STEINER_TERMINALS",
    "MAX_STEINER_WORK",
    "RecursionOptions",
    "tree_eigenvalues",
    "Eigenfunction",
    "sample_eigenfunction",
    "sample_domain",
    "TypeSystem",
    "type_system",
    "MAX_TYPES",
    "fwht_types",
    "gram_types",
    "monte_carlo_types",
    "subset_keys",
    "MAX_GRAM_DIM",
    "spectrum",
    "Spectrum",
    "EigenType",
    "METHODS",
    "eigenfunction",
    "roundoff_zeroed",
    "ROUNDOFF_FACTOR",
    "ConvKernel",
    "ConvSpectrum",
    "conv_kernel",
    "conv_spectrum",
    "patch_spectrum",
]
