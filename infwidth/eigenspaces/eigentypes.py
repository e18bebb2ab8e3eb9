"""Eigenspace types of any architecture: one interface over trees and circular ConvNets.

A :class:`TypeSystem` enumerates the types (orbits of degree profiles under the topology's
symmetries) up to a total degree, maps a type to a canonical or random degree profile and
back, and gives exact multiplicities and the space S(k) of ``theory.md`` §3.

- Trees (MLP, S-CNN, D-CNN): sibling permutations, nested patterns of
  :mod:`infwidth.eigenspaces.tree_types`.
- ConvNet: leaves are input positions (n0 = channels coordinates each). With circular padding
  the cyclic shifts (in each axis for 2-D) are symmetries; the type key is the smallest shifted
  tuple of (position, degree). With "same" padding the group is trivial. Types whose support
  does not fit the receptive field of one top-layer node have eigenvalue exactly 0 (the readout
  is linear) and are not enumerated.

With a GAP readout the kernel is invariant under shifting x alone, so only the symmetrised
function of each shift orbit of monomials survives: a type then counts one eigenfunction per
orbit (implemented for one channel).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from infwidth.architectures.networks import Architecture, ConvNet
from infwidth.eigenspaces.eigenfunctions import Eigenfunction, sample_eigenfunction
from infwidth.eigenspaces.harmonics import harmonic_count
from infwidth.eigenspaces.steiner import learning_index_from_space
from infwidth.eigenspaces.steiner import space as dag_space
from infwidth.eigenspaces.tree_types import (
    TreeSpec,
    canonical_degrees,
    enumerate_types,
    pattern_degree,
    pattern_of_degrees,
    pattern_str,
    tree_spec,
    type_multiplicity,
)

__all__ = ["TypeSystem", "type_system", "MAX_TYPES"]

MAX_TYPES = 50000


def _leaf_mult(n0: int, k: int, domain: str) -> int:
    return math.comb(n0, k) if domain == "hypercube" else harmonic_count(n0, k)


@dataclass(frozen=True)
class TypeSystem:
    """Types of ``arch`` at ``dim`` (see module docstring)."""

    arch: Architecture
    dim: int

    @cached_property
    def dag(self):
        return self.arch.dag_for(self.dim)

    @cached_property
    def patch_index(self) -> np.ndarray:
        return self.arch.leaf_coordinates(self.dim)

    @property
    def n0(self) -> int:
        return int(self.patch_index.shape[1])

    @property
    def is_tree(self) -> bool:
        return not isinstance(self.arch, ConvNet)

    @cached_property
    def spec(self) -> TreeSpec:
        return tree_spec(self.arch, self.dim)

    @property
    def symmetrised(self) -> bool:
        """True for GAP readouts: eigenfunctions are shift-symmetrised monomials."""
        return isinstance(self.arch, ConvNet) and self.arch.readout == "gap"

    # ---------------------------------------------------------------- enumeration
    def types(self, max_degree: int, domain: str, include_zero: bool = True) -> list:
        """Type keys with total degree ≤ max_degree (the constant first)."""
        max_leaf = self.n0 if domain == "hypercube" else max_degree
        if self.is_tree:
            return enumerate_types(self.spec, max_degree, max_leaf, include_zero)[1]
        return self._conv_types(max_degree, max_leaf)

    def _shifts(self) -> list[np.ndarray]:
        """Position permutations of the symmetry group."""
        p = self.dag.n_patches
        if self.arch.padding != "circular":
            return [np.arange(p)]
        if self.arch.ndim == 1:
            return [(np.arange(p) + s) % p for s in range(p)]
        side = math.isqrt(p)
        a, b = np.divmod(np.arange(p), side)
        return [((a + s) % side) * side + (b + t) % side for s in range(side)
                for t in range(side)]

    @cached_property
    def _shift_list(self) -> list[np.ndarray]:
        return self._shifts()

    def _canon(self, items: tuple) -> tuple:
        best = None
        for sh in self._shift_list:
            cand = tuple(sorted((int(sh[pos]), d) for pos, d in items))
            if best is None or cand < best:
                best = cand
        return best

    def _conv_types(self, max_degree: int, max_leaf: int) -> list:
        arch, p = self.arch, self.dag.n_patches
        span = 1 + arch.depth * (arch.filter_size - 1)
        circular = arch.padding == "circular"
        side = p if arch.ndim == 1 else math.isqrt(p)

        def coords(a: int) -> tuple[int, ...]:
            return (a,) if arch.ndim == 1 else divmod(a, side)

        def offsets(a: int) -> list[int]:
            """Positions within span−1 of a along every axis."""
            out = set()
            for delta in itertools.product(range(-span + 1, span), repeat=arch.ndim):
                c = [x + d for x, d in zip(coords(a), delta)]
                if circular:
                    c = [x % side for x in c]
                elif not all(0 <= x < side for x in c):
                    continue
                b = c[0] if arch.ndim == 1 else c[0] * side + c[1]
                if b != a:
                    out.add(b)
            return sorted(out)

        keys = {()}
        for a in ([0] if circular else range(p)):
            others = offsets(a)
            for size in range(1, max_degree + 1):
                for rest in itertools.combinations(others, size - 1):
                    if not circular and any(r < a for r in rest):
                        continue  # each support once: anchored at its smallest position
                    support = (a,) + rest
                    for degs in itertools.product(range(1, max_leaf + 1), repeat=size):
                        if sum(degs) > max_degree:
                            continue
                        keys.add(self._canon(tuple(zip(support, degs))))
                        if len(keys) > MAX_TYPES:
                            raise ValueError(f"more than {MAX_TYPES} types: lower max_degree")
        out = [k for k in keys if k == () or math.isfinite(self.space(k))]
        return sorted(out, key=lambda k: (sum(d for _, d in k), k))

    # ---------------------------------------------------------------- per type
    def degrees(self, key: Any, rng: np.random.Generator | None = None) -> tuple[int, ...]:
        """Canonical degree profile of a type, or a uniformly random member with ``rng``."""
        if self.is_tree:
            return canonical_degrees(self.spec, key, rng)
        out = [0] * self.dag.n_patches
        sh = self._shift_list[int(rng.integers(len(self._shift_list)))] if rng is not None \
            else np.arange(self.dag.n_patches)
        for pos, d in key:
            out[int(sh[pos])] = d
        return tuple(out)

    def key(self, degrees: tuple[int, ...]) -> Any:
        """Type key of a degree profile."""
        if self.is_tree:
            return pattern_of_degrees(self.spec, tuple(degrees))
        return self._canon(tuple((i, d) for i, d in enumerate(degrees) if d))

    def frequency(self, key: Any) -> int:
        return pattern_degree(key) if self.is_tree else sum(d for _, d in key)

    def support(self, key: Any) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.degrees(key)) if d)

    def space(self, key: Any) -> float:
        return dag_space(self.dag, self.support(key))

    def learning_index(self, key: Any) -> float:
        """L(k) = α0·|k| + S(k) of a type (``docs/theory.md`` §3)."""
        return learning_index_from_space(self.dag.alpha0, self.frequency(key), self.space(key))

    def orbit_size(self, key: Any) -> int:
        if self.is_tree or key == ():
            return 1
        return len({self._canon_raw(sh, key) for sh in self._shift_list})

    @staticmethod
    def _canon_raw(sh: np.ndarray, key: tuple) -> tuple:
        return tuple(sorted((int(sh[pos]), d) for pos, d in key))

    def multiplicity(self, key: Any, domain: str) -> int:
        if self.is_tree:
            return type_multiplicity(self.spec, key, domain)
        if self.symmetrised:
            return 1
        out = self.orbit_size(key)
        for _, d in key:
            out *= _leaf_mult(self.n0, d, domain)
        return out

    def label(self, key: Any) -> str:
        if self.is_tree:
            return pattern_str(key)
        return "{" + ",".join(f"{p}:{d}" for p, d in key) + "}"

    def eigenfunction(self, key: Any, domain: str, rng: np.random.Generator,
                      placement: str = "random") -> Eigenfunction:
        """A random normalised eigenfunction of the type (``placement`` "random": a uniform
        member of the orbit; "canonical": the representative profile)."""
        if self.symmetrised:
            if domain != "hypercube" or self.n0 != 1:
                raise ValueError("GAP eigenfunctions are implemented on the hypercube with one "
                                 "channel")
            members = sorted({self._canon_raw(sh, key) for sh in self._shift_list})
            c = 1.0 / math.sqrt(len(members))
            terms = tuple((c, tuple(int(self.patch_index[pos, 0]) for pos, _ in m))
                          for m in members)
            return Eigenfunction(domain, self.dim, self.degrees(key), terms=terms)
        degs = self.degrees(key, rng if placement == "random" else None)
        return sample_eigenfunction(self.patch_index, degs, domain, rng)


def type_system(arch: Architecture, dim: int) -> TypeSystem:
    """The :class:`TypeSystem` of ``arch`` at input dimension ``dim``."""
    arch.input_shape(dim)
    ts = TypeSystem(arch, int(dim))
    if isinstance(arch, ConvNet) and ts.symmetrised and arch.channels != 1:
        raise ValueError("GAP readouts are supported with channels=1 (the symmetrised "
                         "eigenfunctions of several channels are not implemented)")
    return ts

