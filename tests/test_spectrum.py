"""Exact type-level spectra of tree kernels against brute force (theory.md §3)."""

import dataclasses
import math
import time

import numpy as np
import pytest

import infwidth as iw
from infwidth.eigenspaces.eigentypes import type_system
from infwidth.eigenspaces.hypercube import cube_points, walsh_eigenvalues
from infwidth.eigenspaces.monte_carlo import subset_keys
from infwidth.eigenspaces.tree_recursion import RecursionOptions

EPS = np.finfo(float).eps


def _fwht_by_type(arch, dim, kind, kernel_fn):
    """{type label: array of λ_S over its Walsh monomials}, and the FWHT round-off bound."""
    lam, gabs = walsh_eigenvalues(arch, dim, kind, kernel_fn)
    ts = type_system(arch, dim)
    masks, keys = subset_keys(ts, dim, dim)
    out = {}
    for m, k in zip(masks, keys):
        out.setdefault(ts.label(k), []).append(lam[m])
    # each λ_S is 2^{-D}·Σ ±g over D butterfly stages: |error| ≤ D·eps·max|g| (×4 slack)
    return {k: np.array(v) for k, v in out.items()}, 4 * dim * EPS * gabs


CASES = [  # (arch, dim, kind, brute-force kernel)
    (iw.DCNN(patch_dim=2, filter_sizes=(2, 2), activation="erf"), 8, "ntk", iw.kernel),
    (iw.SCNN(patch_dim=3, activation="erf"), 12, "ntk", iw.kernel),
    (iw.MLP(depth=2, b_std=0.2), 10, "nngp", iw.kernel),
    (iw.DCNN(patch_dim=2, filter_sizes=(2, 2), b_std=0.5), 8, "nngp", iw.kernels.tree_kernel),
    (iw.DCNN(patch_dim=4, filter_sizes=(3,), activation="erf", b_std=0.3), 12, "nngp",
     iw.kernels.tree_kernel),
    (iw.DCNN(patch_dim=2, filter_sizes=(2, 3)), 12, "ntk", iw.kernels.tree_kernel),
    (iw.DCNN(patch_dim=4, filter_sizes=(2,), b_std=0.3), 16, "ntk", iw.kernels.tree_kernel),
    (iw.MLP(depth=3), 10, "ntk", iw.kernels.tree_kernel),
]


@pytest.mark.parametrize("arch,dim,kind,kfn", CASES)
def test_recursion_equals_fwht(arch, dim, kind, kfn):
    """(b) = (a): every eigenspace, relative 1e-9 plus the FWHT's own round-off bound.

    (a) uses neural-tangents (``iw.kernel``) or the package's independent numpy recursion
    (``iw.kernels.tree_kernel``, checked against neural-tangents in test_fwht_kernels_agree).
    neural-tangents' ReLU NTK is off by ~2e-8 at pairs of correlation exactly 1 (arccos of
    1 − ulp), which would shift every λ_S by that/2^D, so ReLU NTK cases use tree_kernel."""
    brute, roundoff = _fwht_by_type(arch, dim, kind, kfn)
    spec = iw.spectrum(arch, dim, kind=kind, max_degree=dim)
    assert {t.label for t in spec.types} == set(brute)
    for t in spec.types:
        v = brute[t.label]
        assert len(v) == t.multiplicity, t.label
        tol = 1e-9 * abs(t.eigenvalue) + roundoff + t.error_bound
        assert np.max(np.abs(v - t.eigenvalue)) <= tol, t.label
    # trace identity: Σ multiplicity·λ over all types = E[K(x, x)] = K(1, 1) on the cube
    total = sum(t.multiplicity * t.eigenvalue for t in spec.types)
    assert total == pytest.approx(spec.trace(), rel=1e-9, abs=0)
    diag = iw.kernels.tree_kernel(arch, np.ones((1, dim)), kind=kind)[0, 0]
    assert spec.trace() == pytest.approx(diag, rel=1e-12)


def test_fwht_kernels_agree():
    """neural-tangents and the numpy recursion agree to round-off except at the aligned pair."""
    arch = iw.DCNN(patch_dim=2, filter_sizes=(2, 2))
    z = cube_points(8)
    one = np.ones((1, 8))
    a = iw.kernel(arch, z, one, kind="ntk")[:, 0]
    b = iw.kernels.tree_kernel(arch, z, one, kind="ntk")[:, 0]
    aligned = np.all(z == 1, axis=1)
    assert np.max(np.abs(a - b)[~aligned]) < 1e-13
    assert abs(a - b)[aligned].max() < 1e-7


def test_mlp_eigenvalues_depend_on_frequency_only():
    arch, dim = iw.MLP(depth=2, activation="erf", b_std=0.4), 10
    lam, gabs = walsh_eigenvalues(arch, dim, "ntk", iw.kernels.tree_kernel)
    deg = np.array([bin(m).count("1") for m in range(2 ** dim)])
    for k in range(dim + 1):
        assert np.ptp(lam[deg == k]) <= 4 * dim * EPS * gabs
    spec = iw.spectrum(arch, dim, kind="ntk", max_degree=dim)
    assert [t.frequency for t in spec.types] == list(range(dim + 1))
    assert [t.multiplicity for t in spec.types] == [math.comb(dim, k) for k in range(dim + 1)]
    for t in spec.types:
        assert t.learning_index == t.frequency and t.space == 0


def test_scnn_cross_patch_eigenvalues_are_exactly_zero():
    arch, dim = iw.SCNN(patch_dim=4, activation="erf", b_std=0.5), 16
    spec = iw.spectrum(arch, dim, kind="ntk", max_degree=6)
    cross = [t for t in spec.types if len(t.support) > 1]
    assert cross and all(t.eigenvalue == 0.0 and t.learning_index == math.inf for t in cross)
    assert all(t.eigenvalue > 0 for t in spec.types if len(t.support) <= 1)
    brute, roundoff = _fwht_by_type(arch, dim, "ntk", iw.kernels.tree_kernel)
    for t in cross:
        assert np.max(np.abs(brute[t.label])) <= roundoff


@pytest.mark.parametrize("arch", [iw.SCNN(patch_dim=10), iw.MLP(depth=1)])
@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_one_layer_relu_zeros_at_odd_degrees(arch, kind):
    """ReLU's dual has no odd Taylor terms beyond t: one nonlinear layer without bias gives
    exact zeros at odd degrees ≥ 3 in one patch, NNGP *and* NTK (Θ = h(t) + t·h'(t) has odd
    part exactly t); a bias or a second layer fills them in."""
    dim = 20
    spec = iw.spectrum(arch, dim, kind=kind, max_degree=7)
    one = {t.frequency: t for t in spec.types if len(t.support) == 1}
    for k in (3, 5, 7):
        assert abs(one[k].eigenvalue) <= one[k].error_bound
    for k in (1, 2, 4, 6):
        assert one[k].eigenvalue > 1e3 * one[k].error_bound
    zeroed = {t.frequency: t for t in spec.roundoff_zeroed().types if len(t.support) == 1}
    assert all(zeroed[k].eigenvalue == 0.0 for k in (3, 5, 7))
    assert all(zeroed[k] == one[k] for k in (1, 2, 4, 6))
    filled = iw.spectrum(type(arch)(**{**_kw(arch), "b_std": 0.5}), dim, kind=kind, max_degree=3)
    t3 = [t for t in filled.types if t.frequency == 3 and len(t.support) == 1][0]
    assert t3.eigenvalue > 1e3 * t3.error_bound


def _kw(arch):
    return {"patch_dim": arch.patch_dim} if isinstance(arch, iw.SCNN) else {"depth": arch.depth}


def test_worked_example_ordering_at_large_d():
    """theory.md's table at d = 65536 (n0 = d^{1/2}, two levels of d^{1/4}): a type with a
    smaller learning index has a larger eigenvalue."""
    arch, dim, f = iw.DCNN(patch_dim=256, filter_sizes=(16, 16)), 65536, 16
    spec = iw.spectrum(arch, dim, kind="ntk", max_degree=3)
    ts = type_system(arch, dim)
    by_label = {t.label: t for t in spec.types}
    rows = []
    for prof in ({0: 1}, {0: 3}, {0: 1, 1: 1}, {0: 1, f: 1}, {0: 2, f: 1}):
        degs = [0] * spec.n_patches
        for p, k in prof.items():
            degs[p] = k
        rows.append(by_label[ts.label(ts.key(tuple(degs)))])
    assert [r.learning_index for r in rows] == [1, 2, 1.75, 2, 2.5]
    for a in rows:
        for b in rows:
            if a.learning_index < b.learning_index:
                assert a.eigenvalue - a.error_bound > b.eigenvalue + b.error_bound


@pytest.mark.parametrize("arch,dim", [(iw.DCNN(patch_dim=8, filter_sizes=(8,)), 64),
                                      (iw.DCNN(patch_dim=2, filter_sizes=(4, 4)), 32)])
@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_grids_and_moments_match_exact_atoms(arch, dim, kind):
    """The large-D representations (grid measures, Taylor moments), forced at every level,
    against exact atoms: they agree within the summed error estimates."""
    exact = iw.spectrum(arch, dim, kind=kind, options=RecursionOptions(exact_pairs=10 ** 7))
    approx = iw.spectrum(arch, dim, kind=kind, options=RecursionOptions(exact_atoms=1))
    forced = iw.spectrum(arch, dim, kind=kind, options=RecursionOptions(force_moment=True))
    assert {t.representation for t in exact.types} <= {"atoms", "zero"}
    assert "grid" in {t.representation for t in approx.types}
    assert "moments" in {t.representation for t in forced.types}
    by_a = {t.label: t for t in approx.types}
    by_m = {t.label: t for t in forced.types}
    assert set(by_a) == set(by_m) == {t.label for t in exact.types}
    for e in exact.types:
        a, m = by_a[e.label], by_m[e.label]
        assert abs(e.eigenvalue - a.eigenvalue) <= e.error_bound + a.error_bound
        assert a.error_bound <= 1e-8 * abs(a.eigenvalue) + 1e-15
        # pure moments can be poor where several children are active at a small fan-in:
        # their error estimate must then say so
        assert abs(e.eigenvalue - m.eigenvalue) <= e.error_bound + m.error_bound


def test_eigenfunctions_are_eigenvectors_on_the_cube():
    arch, dim = iw.DCNN(patch_dim=2, filter_sizes=(2,), activation="erf", b_std=0.5), 8
    spec = iw.spectrum(arch, dim, kind="ntk", max_degree=dim)
    z = cube_points(dim)
    gram = iw.kernels.tree_kernel(arch, z, kind="ntk") / len(z)
    rng = np.random.default_rng(0)
    for i, t in enumerate(spec.types):
        psi = spec.eigenfunction(i, rng)(z)
        assert np.mean(psi ** 2) == pytest.approx(1.0)
        assert np.allclose(gram @ psi, t.eigenvalue * psi, atol=1e-12)
    prof = iw.eigenfunction(arch, dim, {0: 2, 3: 1}, rng=1)
    assert prof.degrees == (2, 0, 0, 1) and len(prof.terms[0][1]) == 3


def test_table_columns_and_plot(tmp_path):
    spec = iw.spectrum(iw.DCNN(patch_dim=8, filter_sizes=(8, 8, 8)), 4096, max_degree=4)
    df = spec.table()
    for col in ("degrees", "frequency", "space", "learning_index", "eigenvalue",
                "multiplicity", "method", "error_bound", "support"):
        assert col in df.columns
    assert len(df) == 46 and (df["method"] == "exact").all()
    assert all(len(d) == spec.n_patches for d in df["degrees"])
    assert 0 < spec.captured_fraction() < 1
    assert spec.captured() == pytest.approx(float((df.multiplicity * df.eigenvalue).sum()))
    out = tmp_path / "diagram.png"
    spec.plot(out, levels=(1, 1.5, 2, 2.5), m_exponent=2.0)
    assert out.stat().st_size > 10_000


@pytest.mark.parametrize("kwargs,match", [
    (dict(max_degree=-1), "max_degree"),
    (dict(domain="torus"), "domain"),
    (dict(kind="ntk2"), "kind"),
    (dict(dim=60), "does not fit"),
    (dict(method="fwht", dim=64), "fwht"),
    (dict(method="bogus"), "method"),
])
def test_bad_input_is_refused(kwargs, match):
    args = dict(arch=iw.DCNN(patch_dim=4, filter_sizes=(4,)), dim=64)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        iw.spectrum(**args)


def test_bad_input_other_routes():
    with pytest.raises(ValueError, match="tree architecture"):
        iw.spectrum(iw.ConvNet(filter_size=3, depth=2), 12, method="exact")
    with pytest.raises(ValueError, match="not a function of"):
        iw.spectrum(iw.ConvNet(filter_size=3, depth=1, readout="gap"), 6, method="fwht")
    with pytest.raises(ValueError, match="at least 2 coordinates"):
        iw.spectrum(iw.ConvNet(filter_size=3, depth=1), 6, domain="sphere")
    with pytest.raises(TypeError, match="max_degree"):
        iw.spectrum(iw.MLP(), 8, max_degree=2.5)


def test_roundoff_rule():
    """|λ| ≤ 2·error_bound → 0 (a NaN bound counts as 0); λ < −2·error_bound is refused,
    reported or kept, never zeroed (docs/theory.md §3)."""
    from infwidth.eigenspaces import ROUNDOFF_FACTOR, roundoff_zeroed

    lam = [1e-19, -1e-19, 0.5, 0.0, 1e-19]
    err = [1e-19, 1e-19, 1e-3, 0.0, float("nan")]
    assert ROUNDOFF_FACTOR == 2.0
    np.testing.assert_array_equal(roundoff_zeroed(lam, err), [0.0, 0.0, 0.5, 0.0, 1e-19])
    np.testing.assert_array_equal(roundoff_zeroed(lam, err, factor=0.5, negative="keep"),
                                  [1e-19, -1e-19, 0.5, 0.0, 1e-19])
    with pytest.raises(ValueError, match="negative beyond 2·error_bound.*index \\[1\\]"):
        roundoff_zeroed([0.5, -0.3], [0.0, 0.1])
    with pytest.warns(RuntimeWarning, match="not round-off"):
        out = roundoff_zeroed([0.5, -0.3], [0.0, 0.1], negative="warn")
    np.testing.assert_array_equal(out, [0.5, -0.3])
    np.testing.assert_array_equal(roundoff_zeroed([-0.3], [0.1], negative="keep"), [-0.3])
    for kwargs in ({"factor": -1.0}, {"negative": "zero"}):
        with pytest.raises(ValueError):
            roundoff_zeroed([1.0], [0.0], **kwargs)
    # the Spectrum method applies the same function and keeps negatives in its table
    spec = iw.spectrum(iw.MLP(depth=1), 8, kind="ntk", max_degree=3)
    bad = dataclasses.replace(spec.types[1], eigenvalue=-1.0, error_bound=1e-3)
    spec = dataclasses.replace(spec, types=(spec.types[0], bad) + spec.types[2:])
    assert spec.roundoff_zeroed().types[1].eigenvalue == -1.0
    with pytest.raises(ValueError, match="not round-off"):
        spec.roundoff_zeroed(negative="raise")


# ----------------------------------------------------------------------------- cost first
@pytest.mark.parametrize("arch, dim", [
    (iw.MLP(depth=2), 16), (iw.SCNN(patch_dim=4), 64), (iw.SCNN(patch_dim=2), 16),
    (iw.DCNN(patch_dim=4, filter_sizes=(2, 8)), 128),
    (iw.DCNN(patch_dim=1, filter_sizes=(2, 2, 2, 2)), 16),
    (iw.DCNN(patch_dim=2, filter_sizes=(2, 2), ndim=2), 64),
    (iw.DCNN(patch_dim=1, filter_sizes=(3, 5)), 30),
])
def test_type_count_equals_the_enumeration(arch, dim):
    """count_types (degree counts, level by level) is exact: it is the number of rows."""
    from infwidth.eigenspaces.tree_types import count_types, enumerate_types, tree_spec

    spec = tree_spec(arch, dim)
    for domain in ("hypercube", "sphere"):
        for max_degree in range(7):
            for include_zero in (True, False):
                leaf = spec.n0 if domain == "hypercube" else max_degree
                n = len(enumerate_types(spec, max_degree, leaf, include_zero)[1])
                assert count_types(spec, max_degree, leaf, include_zero) == (n, True)


def test_spectrum_is_refused_before_work_past_max_types():
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"max_degree=1000000 gives at least \d+ eigenspace "
                                         r"types.*max_types=50000"):
        iw.spectrum(iw.DCNN(patch_dim=16, filter_sizes=(16, 16)), 4096, max_degree=10 ** 6)
    assert time.perf_counter() - start < 0.1
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 8))  # 70 types at max_degree 6
    with pytest.raises(ValueError, match="gives 70 eigenspace types.*max_types=70"):
        iw.spectrum(arch, 64, max_degree=6, max_types=69)
    assert len(iw.spectrum(arch, 64, max_degree=6, max_types=70).types) == 70


def test_convnet_candidates_are_counted_before_enumerating():
    """Circular ConvNet, depth 2, filter 3 (span 5) at d = 16 on the cube: supports anchored at
    0 with up to 3 of the 8 other positions within span − 1: 1 + Σ_s C(8, s−1) = 94."""
    ts = type_system(iw.ConvNet(filter_size=3, depth=2), 16)
    assert ts.count(4, "hypercube") == (94, True, "candidate types")
    assert len(ts.types(4, "hypercube")) <= 94
    with pytest.raises(ValueError, match="94 eigenspace candidate types.*max_types=93"):
        ts.types(4, "hypercube", max_types=93)
