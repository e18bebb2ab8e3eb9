"""Tree topologies as level structures, and their eigenspace types (``docs/theory.md`` §3).

A tree architecture (MLP, S-CNN, D-CNN) at input dimension ``dim`` becomes a
:class:`TreeSpec`: nonlinear *levels* ℓ = 0 … H−1 (level 0 = the patches, whose children are
the n0 input coordinates; level ℓ ≥ 1 = one conv layer with fan-in f_ℓ > 1), each with a
:class:`~infwidth.eigenspaces.jets.NodeMap` that also absorbs the layers of fan-in 1 above it,
then the linear readout, which averages the f_R top nodes.

An eigenspace **type** is an orbit of degree profiles under the tree's automorphisms (the
permutations of siblings). It is encoded by a canonical nested *pattern*:

- at level 0 a pattern is an int j ≥ 1: the degree inside one patch;
- at level ℓ ≥ 1 it is the sorted tuple of the patterns of the node's *active* children;
- a type is the root pattern: the sorted tuple of active top-node patterns (``()`` is the
  constant). Types with ≥ 2 active top nodes have eigenvalue exactly 0 (linear readout).

Multiplicities are exact integers: Π over nodes of f!/((f−a)!·Π_c m_c!) (placements of the a
active children, m_c the repeats of each distinct child pattern) times, per active patch,
C(n0, j) (hypercube) or N(n0, j) (sphere). The canonical representative ``degrees`` puts the
sorted active children in the first child slots of every node (the leftmost patches for 1-D
trees); :func:`random_placement` applies a uniformly random automorphism instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator

import numpy as np

from infwidth.architectures.networks import DAG, Architecture
from infwidth.eigenspaces.harmonics import harmonic_count
from infwidth.eigenspaces.jets import NodeMap

__all__ = ["TreeSpec", "tree_spec", "pattern_degree", "enumerate_types", "count_types",
           "type_multiplicity", "canonical_degrees", "pattern_of_degrees", "random_placement",
           "pattern_str"]


@dataclass(frozen=True)
class TreeSpec:
    """Level structure of a tree kernel (see module docstring).

    fan_in[0] = n0 (coordinates per patch); fan_in[ℓ] (ℓ ≥ 1) the fan-in of level ℓ;
    maps[ℓ] its node map; layers[ℓ] the DAG layer of level ℓ; readout_fan_in = f_R.
    """

    dag: DAG
    n0: int
    fan_in: tuple[int, ...]
    maps: tuple[NodeMap, ...]
    layers: tuple[int, ...]
    readout_fan_in: int
    b2: float

    @property
    def n_levels(self) -> int:
        return len(self.fan_in)

    def diagonal(self, kind: str) -> float:
        """K(x, x): the kernel at x = x' (deterministic on both domains)."""
        sig, theta = 1.0 + self.b2, 1.0 + self.b2
        for ell, nm in enumerate(self.maps):
            g, a, b = nm.values(np.array([sig]))
            k, t = float(g[0]), float(a[0] + b[0] * theta)
            sig = self.b2 + k
            theta = sig + t
        return sig if kind == "nngp" else theta


def tree_spec(arch: Architecture, dim: int) -> TreeSpec:
    """The :class:`TreeSpec` of an MLP, S-CNN or D-CNN at input dimension ``dim``."""
    plan = arch.tree_plan(dim)
    if plan is None:
        raise ValueError(f"the exact type recursion needs a tree architecture (MLP, SCNN, DCNN); "
                         f"{type(arch).__name__} is a general DAG: use method='monte-carlo' "
                         f"or 'gram' (or 'fwht' for dim ≤ 20)")
    grid, levels = plan
    dag = arch.dag_for(dim)
    b2, w2 = float(arch.b_std) ** 2, arch.w ** 2
    act = arch.activation
    q = 1.0 + b2

    def stage(q_in: float) -> tuple[str, float, float]:
        return (act, w2, q_in)

    fan, maps, layers = [dag.patch_dim], [], [0]
    cur = [stage(q)]
    qs = b2 + float(NodeMap(tuple(cur), b2).values(np.array([q]))[0][0])
    for ell, f in enumerate(levels, start=1):
        f_nodes = f ** len(grid)
        if f_nodes == 1:
            cur.append(stage(qs))
        else:
            maps.append(NodeMap(tuple(cur), b2))
            fan.append(f_nodes)
            layers.append(ell)
            cur = [stage(qs)]
        qs = b2 + float(NodeMap((cur[-1],), b2).values(np.array([qs]))[0][0])
    maps.append(NodeMap(tuple(cur), b2))
    return TreeSpec(dag, dag.patch_dim, tuple(fan), tuple(maps), tuple(layers),
                    dag.layer_sizes[-2], b2)


# --------------------------------------------------------------------------------------
# Patterns
# --------------------------------------------------------------------------------------
def pattern_degree(p: Any) -> int:
    """Total degree of a pattern."""
    return p if isinstance(p, int) else sum(pattern_degree(c) for c in p)


def pattern_str(p: Any) -> str:
    """Compact text form: ints for patches, [..] for nodes."""
    if isinstance(p, int):
        return str(p)
    return "[" + ",".join(pattern_str(c) for c in p) + "]"


def _multisets(items: list, max_len: int, budget: int, start: int = 0) -> Iterator[tuple]:
    """Non-empty sorted tuples of ``items`` (with repeats), length ≤ max_len, total degree
    ≤ budget; items are (pattern, degree) in sorted pattern order."""
    for i in range(start, len(items)):
        p, d = items[i]
        if d > budget:
            continue
        yield (p,)
        if max_len > 1:
            for rest in _multisets(items, max_len - 1, budget - d, i):
                yield (p,) + rest


def _level_patterns(fan_in: tuple[int, ...], max_leaf: int, max_degree: int) -> list[list]:
    """pats[ℓ] = sorted list of the patterns of level ℓ with degree ≤ max_degree."""
    pats = [list(range(1, min(max_leaf, max_degree) + 1))]
    for f in fan_in[1:]:
        items = [(p, pattern_degree(p)) for p in pats[-1]]
        pats.append(sorted(set(_multisets(items, f, max_degree))))
    return pats


def enumerate_types(spec: TreeSpec, max_degree: int, max_leaf: int,
                    include_zero: bool = True) -> tuple[list[list], list[tuple]]:
    """(patterns per level, root types). Root types are () (constant), (p,) for one active
    top node and, with ``include_zero``, the cross-top tuples (eigenvalue exactly 0)."""
    pats = _level_patterns(spec.fan_in, max_leaf, max_degree)
    items = [(p, pattern_degree(p)) for p in pats[-1]]
    roots = [()]
    for r in _multisets(items, spec.readout_fan_in if include_zero else 1, max_degree):
        roots.append(r)
    return pats, roots


_COUNT_CAP = 1e100  # counts saturate here (float64): only "more than the limit" matters


def _multiset_counts(c: np.ndarray, f: int) -> np.ndarray:
    """out[t] = number of non-empty multisets of at most ``f`` items of total degree t ≤ T,
    drawn from c[d] distinct items of degree d ≥ 1 (T = len(c) − 1; saturating floats).

    Each degree class multiplies the generating function by (1 − y·x^d)^(−c[d]), y counting
    the items; the size y is tracked only while f < T (no multiset of total ≤ T is larger)."""
    size = len(c)
    t_max = size - 1
    f = min(int(f), t_max)
    if f <= 0:
        return np.zeros(size)
    if f == 1:
        out = c.astype(np.float64).copy()
        out[0] = 0.0
        return out
    tracked = f < t_max
    a = np.zeros((f + 1, size) if tracked else size)
    a[(0, 0) if tracked else 0] = 1.0
    for d in np.flatnonzero(c[1:]) + 1:
        cd = float(c[d])
        if not tracked and cd <= 8 and cd == int(cd):
            # (1 − x^d)^(−1) is a running sum with stride d: apply it c[d] times
            rows = -(-size // d)
            for _ in range(int(cd)):
                pad = np.zeros(rows * d)
                pad[:size] = a
                with np.errstate(over="ignore", invalid="ignore"):
                    a = np.cumsum(pad.reshape(rows, d), axis=0).reshape(-1)[:size]
                np.minimum(a, _COUNT_CAP, out=a)
            continue
        old, b = a.copy(), 1.0
        for j in range(1, (min(f, t_max // d) if tracked else t_max // d) + 1):
            b = min(b * (cd + j - 1) / j, _COUNT_CAP)  # C(c[d] + j − 1, j)
            if tracked:
                a[j:, d * j:] += b * old[:f + 1 - j, :size - d * j]
            else:
                a[d * j:] += b * old[:size - d * j]
        np.minimum(a, _COUNT_CAP, out=a)
    out = a.sum(axis=0) if tracked else a
    out[0] = 0.0
    return np.minimum(out, _COUNT_CAP)


def _count_roots(spec: TreeSpec, t_max: int, max_leaf: int, include_zero: bool) -> float:
    """len(enumerate_types(spec, t_max, max_leaf, include_zero)[1]), by degree counts."""
    c = np.zeros(t_max + 1)
    c[1:min(max_leaf, t_max) + 1] = 1.0
    for f in spec.fan_in[1:]:
        c = _multiset_counts(c, f)
    return 1.0 + float(_multiset_counts(c, spec.readout_fan_in if include_zero else 1).sum())


def count_types(spec: TreeSpec, max_degree: int, max_leaf: int, include_zero: bool = True,
                limit: int | None = None) -> tuple[int, bool]:
    """(n, exact): the number of root types :func:`enumerate_types` returns, counted without
    enumerating them (counts of patterns by degree, level by level; milliseconds).

    With ``limit``, counting may stop as soon as more than ``limit`` types are found: then
    ``exact`` is False and n is a lower bound. Counts above 1e100 saturate.

    Example:
        >>> import infwidth as iw
        >>> spec = tree_spec(iw.DCNN(patch_dim=4, filter_sizes=(2, 8)), 64)
        >>> count_types(spec, 6, 4), len(enumerate_types(spec, 6, 4)[1])
        ((70, True), 70)
    """
    reach = max_leaf * math.prod(spec.fan_in[1:]) * (spec.readout_fan_in if include_zero
                                                     else 1)
    top = min(int(max_degree), reach)
    # one type at least per total degree 0 … top (fill the patches in order)
    if limit is not None and top + 1 > limit:
        return top + 1, top == 0
    t = top if limit is None else min(top, 8)
    while True:
        n = _count_roots(spec, t, max_leaf, include_zero)
        if t == top or (limit is not None and n > limit):
            return (int(round(n)) if n < 2 ** 53 else int(n)), t == top
        t = min(2 * t, top)


def _placements(f: int, children: tuple) -> int:
    counts: dict = {}
    for c in children:
        counts[c] = counts.get(c, 0) + 1
    out = math.perm(f, len(children))
    for m in counts.values():
        out //= math.factorial(m)
    return out


def type_multiplicity(spec: TreeSpec, root: tuple, domain: str) -> int:
    """Exact number of eigenfunctions of the type ``root``."""
    n0 = spec.n0

    @lru_cache(maxsize=None)
    def mult(level: int, p: Any) -> int:
        if level == 0:
            return math.comb(n0, p) if domain == "hypercube" else harmonic_count(n0, p)
        out = _placements(spec.fan_in[level], p)
        for c in p:
            out *= mult(level - 1, c)
        return out

    out = _placements(spec.readout_fan_in, root)
    for c in root:
        out *= mult(spec.n_levels - 1, c)
    return out


def _level_children(spec: TreeSpec, level: int, node: int) -> list[int]:
    """Children of a level-``level`` node among the level-(level−1) nodes (through the
    fan-in-1 DAG layers in between)."""
    dag = spec.dag
    top = spec.layers[level] if level < spec.n_levels else len(dag.layer_sizes) - 1
    bottom = spec.layers[level - 1]
    nodes = list(dag.children[top - 1][node])
    for layer in range(top - 1, bottom, -1):
        nodes = [dag.children[layer - 1][u][0] for u in nodes]
    return nodes


def canonical_degrees(spec: TreeSpec, root: tuple, rng: np.random.Generator | None = None
                      ) -> tuple[int, ...]:
    """Degree profile (one entry per patch) of the type ``root``: the canonical
    representative, or a uniformly random member of the orbit when ``rng`` is given."""
    out = [0] * spec.dag.n_patches

    def place(level: int, node: int, p: Any) -> None:
        if level == 0:
            out[node] = p
            return
        kids = _level_children(spec, level, node)
        slots = list(range(len(kids)))
        if rng is not None:
            slots = list(rng.permutation(len(kids)))
        for slot, c in zip(slots, p):
            place(level - 1, kids[slot], c)

    place(spec.n_levels, 0, root)
    return tuple(out)


def random_placement(spec: TreeSpec, root: tuple, rng: np.random.Generator) -> tuple[int, ...]:
    """A uniformly random degree profile of the type ``root`` (random sibling permutations)."""
    return canonical_degrees(spec, root, rng)


def pattern_of_degrees(spec: TreeSpec, degrees: tuple[int, ...]) -> tuple:
    """Canonical root pattern of a degree profile (inverse of :func:`canonical_degrees`)."""

    def pat(level: int, node: int) -> Any:
        if level == 0:
            return degrees[node] or None
        kids = [pat(level - 1, u) for u in _level_children(spec, level, node)]
        act = tuple(sorted(k for k in kids if k is not None))
        return act or None

    r = pat(spec.n_levels, 0)
    return () if r is None else r
