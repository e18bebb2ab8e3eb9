"""Eigenlearning predictor, fast tree Gram matrices, measured kernel-regression curves."""

import dataclasses
import math
import time

import numpy as np
import pandas as pd
import pytest

import infwidth as iw
from infwidth.learning import nested_regression, solve_kappa

GOLDEN = (1 + math.sqrt(5)) / 2


# ----------------------------------------------------------------------------- predictor
def test_one_mode_by_hand():
    """λ = 1, M = 3, m = 1, δ = 0: 1 = 3/(1+κ) ⇒ κ = 2, L = 1/3, E0 = 1/(1 − 3/9) = 3/2,
    test MSE = E0·(1 − L)²·v² = 2/3 for v² = 1."""
    df = iw.eigenlearning([1.0], [3], [1], [1.0])
    assert df.kappa[0] == pytest.approx(2.0, rel=1e-12)
    assert df["learnability:0"][0] == pytest.approx(1 / 3, rel=1e-12)
    assert df.E0[0] == pytest.approx(1.5, rel=1e-12)
    assert df.test_mse[0] == pytest.approx(2 / 3, rel=1e-12)
    # with ridge δ = 1, M = 1: 1 = 1/(1+κ) + 1/κ ⇒ κ² = κ + 1 ⇒ κ = golden ratio;
    # noise ε² = 0.25 adds E0·ε²
    df = iw.eigenlearning([1.0], [1], [1], [2.0], ridge=1.0, noise=0.5)
    L = 1 / (1 + GOLDEN)
    assert df.kappa[0] == pytest.approx(GOLDEN, rel=1e-12)
    e0 = 1 / (1 - L ** 2)
    assert df.test_mse[0] == pytest.approx(e0 * ((1 - L) ** 2 * 2.0 + 0.25), rel=1e-12)


def test_finite_rank_interpolation_limit():
    """Ridgeless with m ≥ N+ modes: κ = 0, everything learned, E0 = m/(m − N+)."""
    df = iw.eigenlearning([1.0, 0.5, 0.0], [2, 3, 10], [10], [1.0, 1.0, 1.0], noise=1.0)
    assert df.kappa[0] == 0.0
    assert df.E0[0] == pytest.approx(10 / 5)
    assert df.test_mse[0] == pytest.approx(2.0 * (1.0 + 1.0))  # zero-λ power + noise


@pytest.mark.parametrize("ridge", [0.0, 1e-3, 10.0])
def test_conservation_law(ridge):
    """Σ_i M_i·L_i + δ/κ = m at every m (learnability is conserved)."""
    rng = np.random.default_rng(0)
    lam = 10.0 ** rng.uniform(-12, 0, 40)
    mult = rng.integers(1, 10 ** 6, 40).astype(float)
    ms = [1, 7, 100, 10 ** 4, 3 * 10 ** 6]
    df = iw.eigenlearning(lam, mult, ms, np.ones(40), ridge=ridge)
    L = df[[f"learnability:{i}" for i in range(40)]].to_numpy()
    total = L @ mult + (ridge / df.kappa.to_numpy() if ridge else 0.0)
    assert np.allclose(total, ms, rtol=1e-10)
    assert np.allclose(df.sum_learnability, ms, rtol=1e-10)


def test_conservation_with_a_real_spectrum_and_its_tail():
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 8))
    spec = iw.spectrum(arch, 64, "hypercube", "ntk", max_degree=3, include_zero=False)
    t = iw.Target.pair("hypercube", 64, 4)
    pred = iw.predict_learning_curve(spec, t, [10, 300, 3000]).curve.wide()
    tab = spec.table()
    assert pred.tail_trace.iloc[0] == pytest.approx(spec.trace() - spec.captured(), rel=1e-9)
    lam, mult = tab.eigenvalue.to_numpy(), tab.multiplicity.to_numpy(float)
    for _, r in pred.iterrows():
        total = float((mult * lam / (lam + r.kappa)).sum()) + r.tail_trace / r.kappa
        assert total == pytest.approx(r.sample_size, rel=1e-9)
    assert pred.test_mse.is_monotonic_decreasing


def test_solve_kappa_is_robust_at_large_dimension():
    """Huge multiplicities and tiny eigenvalues (D = 4096-like) still bracket and converge."""
    lam = np.array([1.0, 1e-4, 1e-8, 1e-12])
    mult = np.array([1.0, 4096.0, 8.4e6, 1.1e10])
    k = solve_kappa(lam, mult, [1, 1e3, 1e6, 1e9], ridge=1e-3)
    res = (mult * lam / (lam + k[:, None])).sum(1) + 1e-3 / k
    assert np.allclose(res, [1, 1e3, 1e6, 1e9], rtol=1e-10)


def test_staircase_flags():
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 8))
    spec = iw.spectrum(arch, 64, "hypercube", "ntk", max_degree=3, include_zero=False)
    t = iw.Target.pair("hypercube", 64, 4)  # L = 2/3 + 2/6 + 1/2 = 1.5
    st = iw.staircase(spec, t, [int(64 ** 1.4), int(64 ** 1.6)])
    assert st.learning_index.iloc[0] == pytest.approx(1.5)
    assert list(st.learned) == [False, True]
    pred = iw.predict_learning_curve(spec, t, [int(64 ** 1.4), int(64 ** 1.6)]).curve.wide()
    assert list(pred[f"learned:{t.components[0].label}"]) == [False, True]
    assert list(pred.staircase_mse) == [1.0, 0.0]


def test_scnn_cross_patch_types_are_never_learned():
    spec = iw.spectrum(iw.SCNN(patch_dim=4), 64, "hypercube", "ntk", max_degree=4,
                       include_zero=False)
    far = iw.Target.far_pair("hypercube", 64, 4)
    pred = iw.predict_learning_curve(spec, far, [10, 1000, 10 ** 5]).curve.wide()
    col = f"learnability:{far.components[0].label}"
    assert (pred[col] == 0).all() and (pred.test_mse >= 1.0).all()


# ------------------------------------------------------------------------------ Gram
@pytest.mark.parametrize("arch", [
    iw.MLP(depth=2), iw.MLP(depth=1, activation="erf", b_std=0.3), iw.SCNN(patch_dim=4),
    iw.DCNN(patch_dim=4, filter_sizes=(2, 2)),
    iw.DCNN(patch_dim=2, filter_sizes=(2, 2), activation="erf", b_std=0.5),
    iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2),            # 2-D tree
])
@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_the_gram_on_the_hypercube_matches_the_reference_recursion(arch, kind):
    """The regression Gram (iw.kernel, native engine) against the numpy reference, both in
    float64: a few ulp per layer."""
    x = iw.sample_inputs("hypercube", 30, 16, seed=0)
    y = iw.sample_inputs("hypercube", 20, 16, seed=1)
    ref = iw.kernels.tree_kernel(arch, x, y, kind=kind)
    assert np.allclose(iw.kernel(arch, x, y, kind=kind), ref, rtol=1e-13, atol=1e-15)
    assert np.allclose(iw.kernel(arch, x, kind=kind),
                       iw.kernels.tree_kernel(arch, x, kind=kind), rtol=1e-13, atol=1e-15)


def test_the_gram_matches_neural_tangents_and_handles_the_sphere():
    """neural-tangents' arccos loses ~1e-8 near correlation 1 (theory: same kernel)."""
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    for domain in ("hypercube", "sphere"):
        x = iw.sample_inputs(domain, 12, 16, patch_dim=4, seed=2)
        k = iw.kernel(arch, x)
        assert np.allclose(k, iw.kernel(arch, x, engine="neural-tangents"), rtol=1e-7,
                           atol=0)
        assert np.allclose(k, iw.kernels.tree_kernel(arch, x), rtol=1e-13, atol=0)


# --------------------------------------------------------------------- regression curves
def test_nested_solves_equal_direct_solves():
    arch = iw.SCNN(patch_dim=4)
    t = iw.Target.local("hypercube", 16, 4, degree=2)
    x, f = iw.learning.regression_dataset(t, 60, seed=0)
    y = f(x)
    k = iw.kernel(arch, x)
    res = nested_regression(k, y[:40], y[40:], [10, 40], ridge=0.1, jitter=0.0,
                            return_predictions=True)
    for r in res:
        m = r["sample_size"]
        pred = k[40:, :m] @ np.linalg.solve(k[:m, :m] + 0.1 * np.eye(m), y[:m])
        assert np.allclose(r["prediction"][:, 0], pred, rtol=1e-9)
        assert r["test_mse"][0] == pytest.approx(np.mean((pred - y[40:]) ** 2))
        assert np.isfinite(r["condition_number"]) and r["condition_number"] >= 1


def test_predicted_equals_measured_on_a_tiny_problem():
    """|pred − mean| ≤ 3·SE + 2·pred/m: SE = std/√seeds over seeds (each seed has its own
    inputs, target draw and test set), and 2·pred/m bounds the O(1/m) finite-sample bias
    of the eigenlearning estimate (its self-consistent κ is exact only as m → ∞)."""
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    spec = iw.spectrum(arch, 16, "hypercube", "ntk", max_degree=16, include_zero=False)
    assert spec.captured_fraction() == pytest.approx(1.0)
    targets = [iw.Target.pair("hypercube", 16, 4, name="sibling"),
               iw.Target.far_pair("hypercube", 16, 4, name="far"),
               iw.Target.local("hypercube", 16, 4, degree=3, name="local")]
    ms, seeds = [32, 128, 512], 12
    meas = iw.kernel_regression_curve(arch, targets, ms, seeds=seeds, n_test=400)
    for t in targets:
        pred = iw.predict_learning_curve(spec, t, ms).curve.wide().test_mse.to_numpy()
        m = meas[meas.target == t.name]
        se = m.test_mse_std.to_numpy() / math.sqrt(seeds)
        gap = np.abs(pred - m.test_mse.to_numpy())
        assert np.all(gap <= 3 * se + 2 * pred / np.array(ms)), (t.name, pred, m.test_mse)


def test_measured_curve_columns_and_posterior_variance():
    arch = iw.MLP(depth=1)
    t = iw.Target.pair("hypercube", 16, 4)
    df = iw.kernel_regression_curve(arch, t, [8, 32], seeds=2, n_test=50, noise=0.1,
                                    posterior_variance=True)
    assert list(df.columns) == ["architecture", "target", "component", "sample_size", "test_mse",
                                "spread", "source", "test_mse_std",
                                "n_seeds", "condition_number", "posterior_variance"]
    assert (df.n_seeds == 2).all() and (df.test_mse > 0.01).all()
    # nt.predict's posterior variance equals k(x,x) − k(x,X)(K + shift)⁻¹k(X,x)
    x, _ = iw.learning.regression_dataset(t, 32 + 50, seed=0)
    k = iw.kernel(arch, x)
    m = 8
    shift = 1e-10 * np.trace(k[:m, :m]) / m
    kx = k[32:, :m]
    var = np.diag(k[32:, 32:]) - np.einsum("ij,ji->i", kx,
                                           np.linalg.solve(k[:m, :m] + shift * np.eye(m),
                                                           kx.T))
    per = iw.kernel_regression_curve(arch, t, [8, 32], seeds=1, n_test=50,
                                     posterior_variance=True, per_seed=True)
    assert per.posterior_variance.iloc[0] == pytest.approx(var.mean(), rel=1e-6)
    # same seed, same numbers
    again = iw.kernel_regression_curve(arch, t, [8, 32], seeds=2, n_test=50, noise=0.1)
    assert np.array_equal(again.test_mse, df.test_mse)


def test_cholesky_failure_names_the_condition_number():
    k = np.ones((4, 4))  # rank one
    with pytest.raises(ValueError, match="condition number"):
        nested_regression(k, np.zeros(3), np.zeros(1), [3], jitter=0.0)


@pytest.mark.parametrize("call, msg", [
    (lambda a, t, s: iw.kernel_regression_curve(a, t, [0, 10]), "sample_sizes must be"),
    (lambda a, t, s: iw.kernel_regression_curve(a, t, [-5]), "sample_sizes must be"),
    (lambda a, t, s: iw.kernel_regression_curve(a, t, [2.5]), "sample_sizes must be"),
    (lambda a, t, s: iw.kernel_regression_curve(a, t, [10], ridge=-1), "ridge must be"),
    (lambda a, t, s: iw.kernel_regression_curve(a, t, [10], noise=-0.1), "noise must be"),
    (lambda a, t, s: iw.kernel_regression_curve(a, t, [10], domain="sphere"),
     "target lives on 'hypercube'"),
    (lambda a, t, s: iw.kernel_regression_curve(
        a, iw.Target.pair("hypercube", 16, 2, (0, 2)), [10]), None),
    (lambda a, t, s: iw.kernel_regression_curve(
        iw.SCNN(patch_dim=2), iw.Target.pair("hypercube", 16, 4), [10]), "spans 2 leaves"),
    (lambda a, t, s: iw.predict_learning_curve(s, t, [10], ridge=float("nan")).curve.wide(),
     "ridge must be"),
    (lambda a, t, s: iw.predict_learning_curve(s, t, []), "sample_sizes must be"),
    (lambda a, t, s: iw.predict_learning_curve(s, iw.Target.pair("sphere", 16, 4), [10]),
     "domain='hypercube'"),
    (lambda a, t, s: iw.predict_learning_curve(
        s, iw.Target.local("hypercube", 16, 4, degree=4), [10]).curve.wide(), "raise max_degree"),
    (lambda a, t, s: nested_regression(np.eye(4), [np.nan, 1.0], [0.0, 0.0], [2]),
     "y_train contains NaN"),
])
def test_bad_input_is_refused_before_heavy_work(call, msg):
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    spec = iw.spectrum(arch, 16, "hypercube", "ntk", max_degree=3, include_zero=False)
    t = iw.Target.pair("hypercube", 16, 4)
    if msg is None:  # a compatible finer target is accepted (nests in the patches)
        assert len(call(arch, t, spec)) == 1
        return
    start = time.perf_counter()
    with pytest.raises((ValueError, TypeError), match=msg):
        call(arch, t, spec)
    assert time.perf_counter() - start < 2.0


def test_predicted_equals_measured_on_the_sphere_product():
    """Same tolerance on the sphere product (zonal-harmonic targets, dense Gram path, the
    untabulated high degrees of the spectrum entering as the tail τ)."""
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    spec = iw.spectrum(arch, 16, "sphere", "ntk", max_degree=6, include_zero=False)
    targets = [iw.Target.pair("sphere", 16, 4, name="sibling"),
               iw.Target.local("sphere", 16, 4, degree=2, name="local")]
    ms, seeds = [64, 256], 8
    meas = iw.kernel_regression_curve(arch, targets, ms, seeds=seeds, n_test=400)
    for t in targets:
        pred = iw.predict_learning_curve(spec, t, ms).curve.wide().test_mse.to_numpy()
        m = meas[meas.target == t.name]
        se = m.test_mse_std.to_numpy() / math.sqrt(seeds)
        gap = np.abs(pred - m.test_mse.to_numpy())
        assert np.all(gap <= 3 * se + 2 * pred / np.array(ms)), (t.name, pred, m.test_mse)


def test_predictor_applies_the_roundoff_rule():
    """predict_learning_curve zeroes |λ| ≤ 2·error_bound and refuses (or, with
    negative="warn", reports and zeroes) λ < −2·error_bound instead of silently zeroing it."""
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    spec = iw.spectrum(arch, 16, "hypercube", "ntk", max_degree=3, include_zero=False)
    t, ms = iw.Target.pair("hypercube", 16, 4), [16, 64, 256]
    i = len(spec.types) - 1  # a frequency-3 type, not the target's

    def with_row(lam, err):
        row = dataclasses.replace(spec.types[i], eigenvalue=lam, error_bound=err)
        return dataclasses.replace(spec, types=spec.types[:i] + (row,))

    ref = iw.predict_learning_curve(with_row(0.0, 0.0), t, ms).curve.wide()
    small = iw.predict_learning_curve(with_row(-1e-17, 1e-17), t, ms).curve.wide()
    np.testing.assert_array_equal(small.test_mse, ref.test_mse)
    with pytest.raises(ValueError, match="not round-off"):
        iw.predict_learning_curve(with_row(-1e-3, 1e-6), t, ms).curve.wide()
    with pytest.warns(RuntimeWarning, match="not round-off"):
        warned = iw.predict_learning_curve(with_row(-1e-3, 1e-6), t, ms,
                                           negative="warn").curve.wide()
    assert warned.attrs["negative_types"] == [i]
    np.testing.assert_array_equal(warned.test_mse, ref.test_mse)
    with pytest.raises(ValueError, match="negative must be"):
        iw.predict_learning_curve(spec, t, ms, negative="keep").curve.wide()


# ----------------------------------------------------------------------------- issue 14
def test_spectrum_without_a_positive_eigenvalue_needs_a_ridge():
    """κ is undefined for λ ≡ 0 and δ = 0 (it used to come back 0 with Σ L = 0 ≠ m)."""
    with pytest.raises(ValueError, match="no positive eigenvalue.*ridge"):
        iw.eigenlearning([0, 0], [1, 1], [4], [1, 0])
    with pytest.raises(ValueError, match="no positive eigenvalue"):
        solve_kappa([1.0], [0.0], [4])
    df = iw.eigenlearning([0, 0], [1, 1], [4], [1, 0], ridge=0.5)  # δ/κ = m: κ = δ/m
    assert df.kappa[0] == pytest.approx(0.125, rel=1e-12)
    assert df.sum_learnability[0] == pytest.approx(4.0, rel=1e-12)


@pytest.mark.parametrize("ridge", [0.0, 1e-6, 1.0])
def test_identity_holds_on_both_sides_of_the_interpolation_threshold(ridge):
    """Σ M·L + δ/κ = m for m below and above N+ = 5, with zero eigenvalues in the table;
    ridgeless at m ≥ N+ (κ = 0) δ/κ is its limit m − N+ as δ → 0."""
    lam, mult = [1.0, 0.5, 0.0], [2, 3, 10]
    ms = [1, 3, 4, 5, 6, 50]
    df = iw.eigenlearning(lam, mult, ms, [1.0, 1.0, 1.0], ridge=ridge)
    np.testing.assert_allclose(df.sum_learnability, ms, rtol=1e-10)
    L = df[[f"learnability:{i}" for i in range(3)]].to_numpy()
    rest = np.asarray(ms) - L @ np.asarray(mult, float)
    if ridge:
        np.testing.assert_allclose(rest, ridge / df.kappa.to_numpy(), rtol=1e-8)
    else:
        assert np.all(df.kappa[np.asarray(ms) >= 5] == 0.0)


def test_predictor_refuses_a_bad_trace():
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    spec = iw.spectrum(arch, 16, "hypercube", "ntk", max_degree=3, include_zero=False)
    t = iw.Target.pair("hypercube", 16, 4)
    for bad in (-1.0, 0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="trace must be a positive finite number"):
            iw.predict_learning_curve(spec, t, [16], trace=bad).curve.wide()
    for bad in ("1", True):
        with pytest.raises(TypeError, match="trace"):
            iw.predict_learning_curve(spec, t, [16], trace=bad).curve.wide()
    with pytest.raises(ValueError, match="below the spectrum's captured mass"):
        iw.predict_learning_curve(spec, t, [16], trace=0.5 * spec.captured()).curve.wide()
    same = iw.predict_learning_curve(spec, t, [16, 64], trace=spec.trace()).curve.wide()
    ref = iw.predict_learning_curve(spec, t, [16, 64]).curve.wide()
    np.testing.assert_array_equal(same.test_mse, ref.test_mse)


def test_gram_memory_is_checked_before_any_work():
    from infwidth.learning.regression import check_gram_memory, gram_memory

    # the Gram (8·n²) and the two Cholesky copies (2·8·m²), plus inputs and labels
    assert gram_memory(1000, 24) == 8 * 1024 ** 2 + 16 * 1000 ** 2 + 8 * 4 * 1024
    assert gram_memory(1000, 24, 16) == gram_memory(1000, 24) + 2 * 8 * 1024 * 16
    t = iw.Target.pair("hypercube", 16, 4)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"memory_budget=4 GiB.*m=1000000.*7.28 TiB") as info:
        iw.kernel_regression_curve(iw.MLP(depth=1), t, [10 ** 6], seeds=1, n_test=10)
    assert time.perf_counter() - start < 0.5
    fit = int(str(info.value).split("the largest sample size that fits is m=")[1].split(".")[0])
    arch = iw.MLP(depth=1)
    check_gram_memory(arch, t, fit, 10)  # fits
    with pytest.raises(ValueError, match="memory_budget"):
        check_gram_memory(arch, t, fit + 1, 10)
    with pytest.raises(ValueError, match="not even m=1 fits with n_test=100000"):
        check_gram_memory(arch, t, 10, 10 ** 5, memory_budget="1GB")


def test_a_small_memory_budget_shrinks_the_gram_tiles_not_the_numbers():
    """Under a budget just above its least need the engine works in smaller tiles: the same
    bits (each pair's recursion does not depend on the tile)."""
    from infwidth.kernels.native import native_memory_estimate
    from infwidth.learning.regression import check_gram_memory, gram_memory

    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    t = iw.Target.pair("hypercube", 16, 4)
    ms, n_test = [64, 300], 100
    budget = gram_memory(300, n_test, 16, arch=arch) + 200_000
    assert check_gram_memory(arch, t, 300, n_test, budget) <= budget
    # the engine's automatic tile needs more than the whole budget: it must shrink its tiles
    assert native_memory_estimate(arch, 300 + n_test, None, 16, kinds=("ntk",)) > budget
    ref = iw.kernel_regression_curve(arch, t, ms, seeds=2, n_test=n_test)
    small = iw.kernel_regression_curve(arch, t, ms, seeds=2, n_test=n_test,
                                       memory_budget=budget)
    np.testing.assert_array_equal(small.test_mse, ref.test_mse)


def test_targets_must_share_the_inputs_and_fit_the_architecture():
    t16, t32 = iw.Target.pair("hypercube", 16, 4), iw.Target.pair("hypercube", 32, 4)
    with pytest.raises(ValueError, match=r"target\[0\].*dim=16.*target\[1\].*dim=32"):
        iw.kernel_regression_curve(iw.MLP(depth=1), [t16, t32], [8])
    with pytest.raises(ValueError, match="dim=24 does not fit the architecture DCNN"):
        iw.kernel_regression_curve(iw.DCNN(patch_dim=4, filter_sizes=(2, 2)),
                                   iw.Target.pair("hypercube", 24, 4), [8])
    with pytest.raises(ValueError, match="names must be distinct"):
        iw.kernel_regression_curve(iw.MLP(depth=1), [t16, t16], [8])


def test_predicted_measured_and_finite_curves_join_in_one_merge():
    """The tidy long format: one pandas.merge on the key columns pairs every measured point
    with its prediction; the wide view is a method; finite-network curves share the keys."""
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    t = iw.Target.pair("hypercube", 16, 4, name="pair")
    ms = [8, 32, 64]
    spec = iw.spectrum(arch, 16, "hypercube", "ntk", max_degree=4)
    pred = iw.predict_learning_curve(spec, t, ms, architecture="D-CNN")
    meas = iw.kernel_regression_curve(arch, t, ms, seeds=3, n_test=200, architecture="D-CNN")
    fin = iw.finite_width_curve(arch, t, [8], widths=(32,), seeds=1, n_test=50,
                                architecture="D-CNN")
    keys = ["architecture", "target", "component", "sample_size"]
    both = pd.merge(pred, meas, on=keys, suffixes=("_predicted", "_measured"))
    assert len(both) == len(ms) and list(both.sample_size) == ms
    assert (both.source_predicted == "predicted").all() and (both.source_measured ==
                                                             "measured").all()
    gap = np.abs(both.test_mse_predicted - both.test_mse_measured) / both.test_mse_measured
    assert np.median(gap) < 0.2
    assert np.array_equal(both.spread_measured, both.test_mse_std)
    # the components of a prediction add up to its total (noise-free target)
    per_m = pred[pred.component != "total"].groupby("sample_size").test_mse.sum()
    total = pred[pred.component == "total"].set_index("sample_size").test_mse
    np.testing.assert_allclose(per_m, total, rtol=1e-12)
    wide = pred.curve.wide()
    assert list(wide.sample_size) == ms and np.array_equal(wide.test_mse, total.to_numpy())
    assert set(fin.columns) >= set(keys) and (fin.source == "finite").all()
    with pytest.raises(ValueError, match="predictor's view"):
        meas.curve.wide()
