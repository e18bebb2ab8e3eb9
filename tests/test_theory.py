"""Learning index and Steiner trees (theory.md §3)."""

import itertools
import math

import numpy as np
import pytest

import infwidth as iw
from infwidth.eigenspaces.steiner import MAX_STEINER_TERMINALS, steiner_space, tree_space

D = 4096  # α0 = 1/2 with two tree levels of fan-in d^{1/4}: n0 = 64, f = 8
WORKED = {  # row of theory.md's table: (degree profile, L_MLP, L_SCNN, L_DCNN)
    "linear, one patch": ({0: 1}, 1, 1, 1),
    "degree 3 inside one patch": ({0: 3}, 3, 2, 2),
    "x_a x_b, sibling patches": ({0: 1, 1: 1}, 2, math.inf, 1.75),
    "x_a x_b, joined only at the root": ({0: 1, 8: 1}, 2, math.inf, 2),
    "degree 2 in a, 1 in a far patch b": ({0: 2, 8: 1}, 3, math.inf, 2.5),
}


@pytest.mark.parametrize("row", list(WORKED))
def test_worked_example_table(row):
    prof, l_mlp, l_scnn, l_dcnn = WORKED[row]
    dcnn = iw.DCNN(patch_dim=64, filter_sizes=(8, 8))
    scnn = iw.SCNN(patch_dim=64)
    assert iw.learning_index(dcnn, prof, D) == pytest.approx(l_dcnn, abs=1e-12)
    assert iw.learning_index(scnn, prof, D) == pytest.approx(l_scnn, abs=1e-12)
    # the MLP has one patch (all D coordinates): L = |k|
    assert iw.learning_index(iw.MLP(), (sum(prof.values()),), D) == l_mlp


def test_closed_forms_scnn_and_dcnn_levels():
    # S-CNN, one patch of degree k: L = α0·k + (1 − α0); D-CNN: L ≤ L_MLP and finite
    for n0, p in [(8, 8), (16, 4), (4, 64)]:
        d = n0 * p
        a0 = math.log(n0) / math.log(d)
        for k in range(1, 5):
            got = iw.learning_index(iw.SCNN(patch_dim=n0), {1: k}, d)
            assert got == pytest.approx(a0 * k + 1 - a0, abs=1e-12)
    dcnn = iw.DCNN(patch_dim=4, filter_sizes=(4, 4, 4))
    d = 256
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = np.zeros(64, int)
        k[rng.choice(64, size=3, replace=False)] = rng.integers(1, 4, size=3)
        li = iw.learning_index(dcnn, tuple(k), d)
        assert math.isfinite(li) and li <= k.sum() + 1e-12


def test_tree_closed_form_equals_exact_steiner_search():
    dag = iw.DCNN(patch_dim=2, filter_sizes=(2, 3, 2)).dag_for(48)
    rng = np.random.default_rng(1)
    for _ in range(30):
        sup = rng.choice(dag.n_patches, size=rng.integers(1, 5), replace=False)
        assert tree_space(dag, sup) == pytest.approx(steiner_space(dag, sup), abs=1e-12)


def _paths(dag, leaf):
    """All root-to-leaf paths as lists of edges ((layer, child), (layer+1, parent))."""
    par = [[[] for _ in range(n)] for n in dag.layer_sizes[:-1]]
    for ell, layer in enumerate(dag.children):
        for j, ch in enumerate(layer):
            for u in ch:
                par[ell][u].append(j)

    def walk(ell, u):
        if ell == len(dag.layer_sizes) - 1:
            yield []
            return
        for v in par[ell][u]:
            for rest in walk(ell + 1, v):
                yield [((ell, u), (ell + 1, v))] + rest
    return list(walk(0, leaf))


def test_steiner_search_matches_brute_force_on_a_convnet():
    """Any arborescence is a union of root-to-terminal paths: brute force over path choices."""
    arch = iw.ConvNet(filter_size=3, depth=2, padding="circular")
    dag = arch.dag_for(7)
    for sup in [(0,), (0, 1), (0, 2), (0, 3), (0, 1, 2), (0, 2, 4), (1, 5, 6)]:
        best = math.inf
        for choice in itertools.product(*[_paths(dag, s) for s in sup]):
            edges = {e for path in choice for e in path}
            tops = {c for c, p in edges if p[0] == len(dag.layer_sizes) - 1}
            if len(tops) > 1:
                continue  # the linear readout would multiply independent zero-mean factors
            best = min(best, sum(dag.edge_weight(p[0], p[1]) for _, p in edges))
        assert steiner_space(dag, sup) == pytest.approx(best, abs=1e-12), sup


def test_convnet_learning_index_and_limits():
    arch = iw.ConvNet(filter_size=3, depth=2)
    w = math.log(3) / math.log(16)
    assert iw.learning_index(arch, {0: 1}, 16) == pytest.approx(1 + 2 * w)
    assert iw.learning_index(arch, {0: 1, 8: 1}, 16) == math.inf  # wider than a receptive field
    big = iw.ConvNet(filter_size=16, depth=1)
    support = {i: 1 for i in range(MAX_STEINER_TERMINALS + 1)}
    with pytest.raises(ValueError, match="Steiner search supports at most"):
        iw.learning_index(big, support, 32)


def test_learning_index_rejects_bad_input():
    arch = iw.DCNN(patch_dim=4, filter_sizes=(4,))
    with pytest.raises(ValueError, match="one per patch"):
        iw.learning_index(arch, (1, 0), 64)
    with pytest.raises(ValueError, match="non-negative"):
        iw.learning_index(arch, {0: -1}, 64)
    with pytest.raises(ValueError, match="patch index"):
        iw.learning_index(arch, {99: 1}, 64)
    with pytest.raises(ValueError, match="does not fit"):
        iw.learning_index(arch, {0: 1}, 60)
    with pytest.raises(TypeError):
        iw.learning_index("mlp", {0: 1}, 64)


@pytest.mark.parametrize("arch, dim", [(iw.DCNN(patch_dim=4, filter_sizes=(2, 2)), 16),
                                       (iw.SCNN(patch_dim=4), 16),
                                       (iw.ConvNet(filter_size=3, depth=2), 8)])
def test_one_learning_index_formula(arch, dim):
    """Spectrum rows, TypeSystem and iw.learning_index all give α0·|k| + S(k) by
    steiner.learning_index_from_space."""
    from infwidth.eigenspaces.eigentypes import type_system
    from infwidth.eigenspaces.steiner import learning_index_from_space

    spec = iw.spectrum(arch, dim, max_degree=3, method=None if arch.dag_for(dim).is_tree
                       else "gram")
    ts = type_system(arch, dim)
    for t in spec.types:
        li = iw.learning_index(arch, t.degrees, dim)
        assert t.learning_index == li == ts.learning_index(t.key)
        assert li == learning_index_from_space(spec.alpha0, t.frequency, t.space)
    assert learning_index_from_space(0.5, 3, math.inf) == math.inf
