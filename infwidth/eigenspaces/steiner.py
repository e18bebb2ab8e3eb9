"""Learning index L(k) = α0·|k| + S(k) from an architecture's topology (``docs/theory.md`` §3).

- α0 = log_d n0, with n0 the coordinates per leaf (patch) and d = dim.
- The *space* S(k) is the weighted length of the minimum Steiner tree of the DAG that joins
  the root to the support's leaves (the patches with k_i > 0); the edge u→v weighs
  log_d(fan-in of v) (:meth:`infwidth.DAG.edge_weight`).
- The root is the readout, which is **linear** (Flatten/GAP + Dense). A term that reaches the
  root through two different top-layer nodes is a sum of products of independent zero-mean
  factors, so its eigenvalue is exactly 0: such a Steiner tree gets S = ∞ (e.g. the S-CNN's
  cross-patch interactions). Otherwise S = w(root edge) + the Steiner length below one top node.

In a tree the Steiner tree is the union of the root-to-patch paths (closed form,
:func:`tree_space`). A general DAG (overlapping convolutions) is solved exactly by the
Dreyfus–Wagner dynamic programme over terminal subsets (:func:`steiner_space`), which costs
O(3^t · edges) for t terminals and refuses larger problems.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from infwidth.architectures.networks import DAG, Architecture
from infwidth.validation import check_architecture

__all__ = ["learning_index", "learning_index_from_space", "space", "tree_space",
           "steiner_space", "degree_profile", "MAX_STEINER_TERMINALS", "MAX_STEINER_WORK"]

MAX_STEINER_TERMINALS = 12
MAX_STEINER_WORK = 5e7  # 3^t · (edges + nodes) elementary updates


def degree_profile(degrees: Any, n_patches: int, name: str = "degrees",
                   unit: str = "patch") -> tuple[int, ...]:
    """Normalise ``degrees`` (a sequence with one entry per patch, or a dict {patch: degree})
    to a tuple of non-negative ints of length ``n_patches``."""
    if isinstance(degrees, Mapping):
        out = [0] * n_patches
        for p, k in degrees.items():
            if isinstance(p, bool) or not isinstance(p, (int, np.integer)) \
                    or not 0 <= p < n_patches:
                raise ValueError(f"{name}: patch index {p!r} is not in [0, {n_patches})")
            out[int(p)] = k
        degrees = out
    if isinstance(degrees, (str, bytes)) or not isinstance(degrees, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a tuple with one degree per patch or a dict "
                        f"{{patch: degree}}, got {type(degrees).__name__}")
    if len(degrees) != n_patches:
        raise ValueError(f"{name} has {len(degrees)} entries, expected one per {unit} "
                         f"({n_patches})")
    out = []
    for k in degrees:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
            raise ValueError(f"{name} must hold non-negative integers, got {k!r}")
        out.append(int(k))
    return tuple(out)


def _parents(dag: DAG) -> list[list[list[int]]]:
    """parents[ℓ][u] = nodes of layer ℓ+1 whose receptive field contains node u of layer ℓ."""
    par = [[[] for _ in range(n)] for n in dag.layer_sizes[:-1]]
    for ell, layer in enumerate(dag.children):
        for j, ch in enumerate(layer):
            for u in ch:
                par[ell][u].append(j)
    return par


def tree_space(dag: DAG, support: Sequence[int]) -> float:
    """Closed form on a tree: the summed weight of the distinct edges on the root-to-patch
    paths of ``support``; ∞ if the paths enter the (linear) root from two top nodes."""
    if not dag.is_tree:
        raise ValueError("tree_space needs a tree DAG; use steiner_space for general DAGs")
    support = sorted(set(int(s) for s in support))
    if not support:
        return 0.0
    par = _parents(dag)
    edges: set[tuple[int, int]] = set()  # (layer of the parent, parent index)
    tops = set()
    top_layer = len(dag.layer_sizes) - 2
    for p in support:
        node = p
        for ell in range(len(dag.layer_sizes) - 1):
            if ell == top_layer:
                tops.add(node)
            parent = par[ell][node][0]
            edges.add((ell, node))
            node = parent
    if len(tops) > 1:
        return math.inf
    # edge (ℓ, u) goes from node u of layer ℓ to its parent in layer ℓ+1
    total = 0.0
    for ell, u in edges:
        parent = par[ell][u][0]
        total += dag.edge_weight(ell + 1, parent)
    return total


def steiner_space(dag: DAG, support: Sequence[int],
                  max_terminals: int = MAX_STEINER_TERMINALS,
                  max_work: float = MAX_STEINER_WORK) -> float:
    """Exact minimum Steiner arborescence from the root to the leaves ``support``
    (Dreyfus–Wagner on the layered DAG), with a single branch at the linear root.

    ``cost[v][T] = min(w(v) + min_{u ∈ C(v)} cost[u][T], min_{∅≠T'⊊T} cost[v][T'] + cost[v][T∖T'])``
    bottom-up over the layers; ``S = min_{u ∈ C(root)} w(root) + cost[u][all terminals]``.

    Raises ValueError past ``max_terminals`` terminals or ``max_work`` elementary updates.
    """
    support = sorted(set(int(s) for s in support))
    t = len(support)
    if t == 0:
        return 0.0
    for s in support:
        if not 0 <= s < dag.n_patches:
            raise ValueError(f"support: patch {s} is not in [0, {dag.n_patches})")
    n_edges = sum(len(c) for layer in dag.children for c in layer)
    work = 3.0 ** t * (n_edges + dag.n_nodes)
    if t > max_terminals or work > max_work:
        raise ValueError(
            f"exact Steiner search supports at most {max_terminals} terminals and "
            f"{max_work:.0e} updates (3^t·(edges+nodes)); this support has t={t} patches "
            f"on a DAG with {dag.n_nodes} nodes and {n_edges} edges ({work:.1e} updates)")
    full = (1 << t) - 1
    masks = sorted(range(1, full + 1), key=lambda m: bin(m).count("1"))
    cost = np.full((dag.layer_sizes[0], full + 1), np.inf)
    for i, s in enumerate(support):
        cost[s, 1 << i] = 0.0
    cost[:, 0] = 0.0
    n_layers = len(dag.layer_sizes)
    for ell in range(1, n_layers - 1):
        layer = dag.children[ell - 1]
        w = np.array([dag.edge_weight(ell, j) for j in range(len(layer))])
        fan = max(len(c) for c in layer)
        idx = np.array([list(c) + [c[0]] * (fan - len(c)) for c in layer])  # pad by repeat
        ext = w[:, None] + cost[idx].min(axis=1)  # (nodes, masks)
        new = ext.copy()
        new[:, 0] = 0.0
        for m in masks:
            sub = (m - 1) & m
            best = new[:, m]
            while sub:
                if sub < (m ^ sub):  # each unordered split once
                    best = np.minimum(best, new[:, sub] + new[:, m ^ sub])
                sub = (sub - 1) & m
            new[:, m] = best
        cost = new
    root_children = list(dag.children[-1][0])
    w_root = dag.edge_weight(n_layers - 1, 0)
    return float(w_root + cost[root_children, full].min())


def space(dag: DAG, support: Sequence[int], **kwargs: Any) -> float:
    """S(k) for the patches in ``support``: closed form on trees, exact search otherwise."""
    return tree_space(dag, support) if dag.is_tree else steiner_space(dag, support, **kwargs)


def learning_index_from_space(alpha0: float, frequency: int, space: float) -> float:
    """L(k) = α0·|k| + S(k) from a precomputed space S(k) (``docs/theory.md`` §3), rounded
    to 12 decimals so that equal indices compare equal; ∞ when S(k) = ∞."""
    if not math.isfinite(space):
        return math.inf
    return float(round(alpha0 * frequency + space, 12))


def learning_index(arch: Architecture, degrees: Any, dim: int) -> float:
    """L(k) = α0·|k| + S(k), α0 = log_d n0 (``docs/theory.md`` §3); ∞ for interactions that
    reach the linear readout through two top-layer nodes (e.g. S-CNN cross-patch terms).

    ``degrees`` is a tuple with one degree per patch (leaf of ``arch.dag_for(dim)``) or a dict
    {patch: degree}.

    Args:
        arch: the architecture.
        degrees: one degree per patch (a tuple), or a dict {patch: degree}.
        dim: the input dimension d.

    Returns:
        L(k) as a float (``math.inf`` where the interaction never reaches the readout).

    Example:
        >>> import infwidth as iw
        >>> arch = iw.DCNN(patch_dim=64, filter_sizes=(8, 8))      # α0 = 1/2, two levels of 1/4
        >>> iw.learning_index(arch, {0: 1, 1: 1}, dim=4096)       # sibling patches
        1.75
    """
    check_architecture(arch)
    dag = arch.dag_for(dim)
    k = degree_profile(degrees, dag.n_patches)
    support = [i for i, d in enumerate(k) if d > 0]
    return learning_index_from_space(dag.alpha0, sum(k), space(dag, support))
