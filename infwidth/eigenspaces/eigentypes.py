"""Eigenspace types of any architecture: one interface over trees and circular ConvNets.

A :class:`TypeSystem` enumerates the types (orbits of degree profiles under the topology's
symmetries) up to a total degree, maps a type to a canonical or random degree profile and
back, and gives exact multiplicities and the space S(k) of ``docs/theory.md`` §3.

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
from typing import Any, Iterator

import numpy as np

from infwidth.architectures.networks import Architecture
from infwidth.eigenspaces.eigenfunctions import Eigenfunction, sample_eigenfunction
from infwidth.eigenspaces.harmonics import harmonic_count
from infwidth.eigenspaces.steiner import learning_index_from_space
from infwidth.eigenspaces.steiner import space as dag_space
from infwidth.eigenspaces.tree_types import (
    TreeSpec,
    canonical_degrees,
    count_types,
    enumerate_types,
    pattern_degree,
    pattern_of_degrees,
    pattern_str,
    tree_spec,
    type_multiplicity,
)

__all__ = ["TypeSystem", "type_system", "MAX_TYPES"]

# Default cap on the number of eigenspace types one call may enumerate (``max_types=``).
# Measured on 2 shared CPU cores, exact recursion (ntk, hypercube): D-CNN(16, (16, 16)) at
# d = 4096 has 444 / 1,685 / 6,082 types at max_degree 8 / 10 / 12 and takes 4.7 / 16 / 31 s;
# D-CNN(4, (2, 8)) at d = 64 has 203 types at max_degree 8 (1.5 s): about 5-10 ms a type, so
# the cap stands for minutes of work. A ConvNet visits ``candidates`` (support, degrees)
# tuples, each canonicalised over every shift: 1,586 of them at depth 3, d = 64 took 3.8 s.
MAX_TYPES = 50000


def _leaf_mult(n0: int, k: int, domain: str) -> int:
    return math.comb(n0, k) if domain == "hypercube" else harmonic_count(n0, k)


def _compositions(size: int, max_total: int, max_part: int) -> Iterator[tuple[int, ...]]:
    """Tuples of ``size`` parts in [1, max_part] with sum ≤ max_total, in product order."""
    if size == 0:
        yield ()
        return
    for d in range(1, min(max_part, max_total - (size - 1)) + 1):
        for rest in _compositions(size - 1, max_total - d, max_part):
            yield (d,) + rest


def _composition_counts(max_size: int, max_total: int, max_part: int) -> list[float]:
    """out[s] = the number of :func:`_compositions` (s, max_total, max_part), s ≤ max_size."""
    ways = np.zeros(max_total + 1)
    ways[0] = 1.0
    t = np.arange(max_total + 1)
    out = [1.0]
    for _ in range(max_size):
        csum = np.concatenate([[0.0], np.cumsum(ways)])
        ways = np.minimum(csum[t] - csum[np.maximum(t - max_part, 0)], 1e100)  # Σ_k ways[t−k]
        out.append(float(ways.sum()))
    return out


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

    @cached_property
    def is_tree(self) -> bool:
        return self.arch.tree_plan(self.dim) is not None

    @cached_property
    def spec(self) -> TreeSpec:
        return tree_spec(self.arch, self.dim)

    @property
    def symmetrised(self) -> bool:
        """True for GAP readouts: eigenfunctions are shift-symmetrised monomials."""
        return not self.is_tree and self.arch.readout == "gap" and not self.arch.pooling

    # ---------------------------------------------------------------- enumeration
    def types(self, max_degree: int, domain: str, include_zero: bool = True,
              max_types: int = MAX_TYPES) -> list:
        """Type keys with total degree ≤ max_degree (the constant first); refused before
        enumerating when :meth:`check_count` finds more than ``max_types``."""
        self.check_count(max_degree, domain, include_zero, max_types)
        max_leaf = self.n0 if domain == "hypercube" else max_degree
        if self.is_tree:
            return enumerate_types(self.spec, max_degree, max_leaf, include_zero)[1]
        return self._conv_types(max_degree, max_leaf, max_types)

    def count(self, max_degree: int, domain: str, include_zero: bool = True,
              limit: int | None = None) -> tuple[int, bool, str]:
        """(n, exact, what) without enumerating. Trees: the number of types. ConvNets: the
        number of (support, degrees) candidates the enumeration visits. With ``limit``,
        counting may stop once past it (``exact`` False: n is a lower bound)."""
        max_leaf = self.n0 if domain == "hypercube" else max_degree
        if self.is_tree:
            n, exact = count_types(self.spec, max_degree, max_leaf, include_zero, limit)
            return n, exact, "types"
        n, exact = self._conv_candidates(max_degree, max_leaf, limit)
        return n, exact, "candidate types"

    def check_count(self, max_degree: int, domain: str, include_zero: bool = True,
                    max_types: int = MAX_TYPES) -> int:
        """The count of :meth:`count`, or a ValueError naming max_degree, the estimate and
        ``max_types`` when it exceeds ``max_types``."""
        n, exact, what = self.count(max_degree, domain, include_zero, max_types)
        if n > max_types:
            raise ValueError(
                f"max_degree={max_degree} gives {'' if exact else 'at least '}{n} eigenspace "
                f"{what} for {type(self.arch).__name__} at dim={self.dim} on the {domain}, "
                f"over max_types={max_types} (milliseconds to seconds of work each): lower "
                f"max_degree, or raise the limit with max_types={n}"
                f"{'' if exact else ' or more'}")
        return n

    def _conv_others(self) -> np.ndarray:
        """Per anchor, how many positions :meth:`_conv_types` pairs with it: those within
        span − 1 along every axis (circular padding: one anchor), only the later ones
        ("same" padding)."""
        arch, p = self.arch, self.dag.n_patches
        span = 1 + arch.depth * (arch.filter_size - 1)
        side = p if arch.ndim == 1 else math.isqrt(p)
        if arch.padding == "circular":
            return np.array([min(side, 2 * span - 1) ** arch.ndim - 1])
        pos = np.arange(side)
        after = np.minimum(span - 1, side - 1 - pos)  # later positions along one axis
        if arch.ndim == 1:
            return after
        cols = np.minimum(pos + span - 1, side - 1) - np.maximum(pos - span + 1, 0) + 1
        # row-major order: the window's columns in later rows, later columns in this row
        return (after[:, None] * cols[None, :] + after[None, :]).reshape(-1)

    def _conv_candidates(self, max_degree: int, max_leaf: int, limit: int | None
                         ) -> tuple[int, bool]:
        """(1 + the (anchor, support, degrees) tuples :meth:`_conv_types` visits, exact)."""
        others = self._conv_others()
        wide = int(others.max()) + 1
        top = min(int(max_degree), max_leaf * wide)
        if limit is not None and top + 1 > limit:  # one candidate at least per degree
            return top + 1, top == 0
        comp = _composition_counts(min(top, wide), top, max_leaf)
        vals, reps = np.unique(others, return_counts=True)
        total = 1.0
        for v, r in zip(vals.tolist(), reps.tolist()):
            total += r * sum(math.comb(v, s - 1) * comp[s]
                             for s in range(1, min(top, v + 1) + 1))
        total = min(total, 1e100)
        return (int(round(total)) if total < 2 ** 53 else int(total)), True

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

    def _conv_types(self, max_degree: int, max_leaf: int, max_types: int = MAX_TYPES) -> list:
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
            # each support once: anchored at 0 (circular) or at its smallest position
            others = offsets(a) if circular else [b for b in offsets(a) if b > a]
            for size in range(1, min(max_degree, len(others) + 1) + 1):
                for rest in itertools.combinations(others, size - 1):
                    support = (a,) + rest
                    for degs in _compositions(size, max_degree, max_leaf):
                        keys.add(self._canon(tuple(zip(support, degs))))
                        if len(keys) > max_types:
                            raise ValueError(f"more than max_types={max_types} types: lower "
                                             f"max_degree or raise max_types")
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
    if ts.symmetrised and arch.channels != 1:
        raise ValueError("GAP readouts are supported with channels=1 (the symmetrised "
                         "eigenfunctions of several channels are not implemented)")
    return ts

