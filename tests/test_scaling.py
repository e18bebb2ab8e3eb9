"""Power law in width: LeNet kernel, conservation law, GD and its kernel limit, fits."""

import numpy as np
import pandas as pd
import pytest
from nt_oracle import nt_kernels

import infwidth as iw
from infwidth.studies.width_power_law.gd import kernel_gd_predict, kernel_regression, train_gd
from infwidth.studies.width_power_law.lenet import (
    LeNet,
    conservation_law,
    conservation_ratio,
    lenet_kernel,
)
from infwidth.studies.width_power_law.scaling import compare_power_laws, fit_power_law, width_sweep


# ------------------------------------------------------------------------------ LeNet
@pytest.mark.parametrize("kw, side", [
    (dict(), 8),                                                    # the digits benchmark
    (dict(activation="erf", b_std=0.3, padding="valid", filter_size=2, channels=2), 7),
])
def test_lenet_kernel_matches_neural_tangents(kw, side):
    """The LeNet kernel (native engine) equals neural-tangents' full-covariance kernel: NNGP
    and erf to round-off (1e-12); relu NTK to (4 relu layers)·√ε: where two positions'
    patches coincide (the diagonal, and ±1 pixels shared by two images) neural-tangents'
    √(q1q2 − s²) is pure round-off, which costs up to √ε in K̇ per relu layer (measured: 0.13√ε)."""
    arch = LeNet(width=2, **kw)
    dim = side * side * arch.channels
    x = iw.sample_inputs("sphere", 8, dim, patch_dim=arch.channels, seed=0)
    ref = nt_kernels(arch, x, jit=True)
    for kind, k_ref in ref.items():
        relu_ntk = kind == "ntk" and arch.activation == "relu"
        tol = 4 * np.sqrt(np.finfo(float).eps) if relu_ntk else 1e-12
        got = lenet_kernel(arch, x, kind=kind, tile=3)  # 3 blocks, the last padded
        np.testing.assert_allclose(got, k_ref, rtol=tol)
        np.testing.assert_array_equal(got, got.T)
        np.testing.assert_allclose(lenet_kernel(arch, x[:3], x[3:6], kind=kind),
                                   k_ref[:3, 3:6], rtol=tol)


def test_conservation_law_of_lenet5():
    lenet5 = LeNet(width=6, ratio=16 / 6, filter_size=5, padding="valid")
    df = conservation_law(lenet5, 32 * 32)
    assert df.side.tolist() == [28, 10] and df["product"].tolist() == [168, 160]
    assert conservation_ratio(32) == pytest.approx(2.8)
    assert conservation_ratio(8, filter_size=3, padding="same") == 2.0    # digits
    assert conservation_ratio(14, filter_size=3, padding="valid") == 3.0  # 14×14 F-MNIST


def test_params_flops_and_dag_by_hand():
    arch = LeNet(width=2, ratio=1.5, dense_factors=(2, 1))  # d2 = 3, dense 4, 2
    assert (arch.d2, arch.dense_widths) == (3, (4, 2))
    # conv 3·3·1·2 + 3·3·2·3, flatten 2·2·3 = 12 → 4 → 2 → 10; no biases when b_std = 0
    assert arch.n_params(64) == 18 + 54 + 48 + 8 + 20
    assert LeNet(width=2, ratio=1.5, dense_factors=(2, 1), b_std=0.1).n_params(
                        64) == 148 + 2 + 3 + 4 + 2 + 10
    assert arch.flops(64) == 2 * (64 * 9 * 2 + 16 * 9 * 2 * 3 + 48 + 8 + 20)
    dag = arch.dag_for(64)
    assert dag.layer_sizes == (64, 64, 16, 1)
    # interior conv2 node: 3×3 pooled positions × 2×2 pool window = 36 conv1 nodes
    assert max(len(c) for c in dag.children[1]) == 36
    assert len(dag.children[0][9]) == 9 and len(dag.children[2][0]) == 16


# ------------------------------------------------------------------------------ GD
def _psd(n, seed):
    a = np.random.default_rng(seed).standard_normal((n + 3, n))
    return a.T @ a / n


def test_kernel_gd_predict_is_the_linearised_heavy_ball_recursion():
    """Brute force in function space: u ← Θr/n + μu, r ← r − ηu, r₀ = −y; test predictions
    Θ(x*, X)Θ⁻¹(f_X − 0)."""
    n, rng = 7, np.random.default_rng(0)
    full = _psd(n + 3, 1)
    k, kt = full[:n, :n], full[n:, :n]
    y = rng.standard_normal((n, 2))
    eta, mu, steps = 0.7 * 2 * n / np.linalg.eigvalsh(k)[-1], 0.8, 25
    r, u = -y.copy(), np.zeros_like(y)
    for _ in range(steps):
        u = k @ r / n + mu * u
        r = r - eta * u
    test, train = kernel_gd_predict(k, kt, y, steps=steps, learning_rate=eta, momentum=mu)
    np.testing.assert_allclose(train, y + r, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(test, kt @ np.linalg.solve(k, y + r), rtol=1e-8, atol=1e-10)
    # long training reaches the ridgeless interpolant
    test_inf, _ = kernel_gd_predict(k, kt, y, steps=5000, learning_rate=eta, momentum=mu)
    np.testing.assert_allclose(test_inf, kernel_regression(k, kt, y), rtol=1e-8)


def test_train_gd_approaches_its_kernel_limit_with_width():
    """Centred nets trained by the same heavy-ball GD: the distance to the infinite-width
    prediction falls with width (O(1/√width) expected: 1/4 from 64 to 1024 wide)."""
    x = iw.sample_inputs("sphere", 24, 8, seed=0)
    xt = iw.sample_inputs("sphere", 16, 8, seed=1)
    y, yt = np.sin(x[:, :1] + x[:, 1:2]), np.sin(xt[:, :1] + xt[:, 1:2])
    arch = iw.MLP(depth=1, width=64)
    k, kt = iw.kernel(arch, x), iw.kernel(arch, xt, x)
    eta = 0.5 * 2 * 24 / np.linalg.eigvalsh(k)[-1]
    limit, _ = kernel_gd_predict(k, kt, y, steps=40, learning_rate=eta, momentum=0.9)
    gaps = []
    for width in (64, 1024):
        g = [np.linalg.norm(train_gd(iw.learning.with_width(arch, width), x, y, xt, yt, steps=40,
                                     learning_rate=eta, seed=s, dtype="float64").test_pred
                            - limit) for s in range(3)]
        gaps.append(np.mean(g) / np.linalg.norm(limit))
    assert gaps[1] < 0.5 * gaps[0] and gaps[1] < 0.1, gaps
    r32 = train_gd(arch, x, y, xt, yt, steps=5, learning_rate=eta, seed=0, dtype="float32")
    r64 = train_gd(arch, x, y, xt, yt, steps=5, learning_rate=eta, seed=0, dtype="float64")
    np.testing.assert_allclose(r32.test_pred, r64.test_pred, rtol=1e-4, atol=1e-5)
    assert not r64.diverged and r64.train_loss < r64.history.train_loss.iloc[0]


def test_width_sweep_is_tidy_and_resumes():
    ds = iw.load_digits(n_train=40, n_test=20)
    fam = iw.MLP(depth=1, out_dim=10)
    kw = dict(steps=3, learning_rate=1.0, name="mlp")
    df = width_sweep(fam, ds.x_train, ds.y_train, ds.x_test, ds.y_test, [4, 8], [0], **kw)
    assert list(df.columns[:6]) == ["family", "width", "seed", "test_error", "test_mse",
                                    "train_loss"]
    assert df.params.tolist() == [64 * 4 + 4 * 10, 64 * 8 + 8 * 10]
    assert df.test_error.between(0, 1).all() and df.flops.isna().all()
    seen = []
    df2 = width_sweep(fam, ds.x_train, ds.y_train, ds.x_test, ds.y_test, [4, 8, 16], [0],
                      existing=df, on_row=seen.append, **kw)
    assert [r["width"] for r in seen] == [16] and len(df2) == 3
    pd.testing.assert_frame_equal(df2.iloc[:2], df)


# ------------------------------------------------------------------------------ fits
def _curve(rng, eps, a=0.6, rho=0.8, noise=0.03, seeds=3):
    w = np.repeat([2, 3, 4, 6, 8, 12, 16, 24], seeds).astype(float)
    return w, (eps + a * w ** -rho) * rng.lognormal(0, noise, w.size)


def test_power_law_intervals_cover_the_truth():
    """Known ρ = 0.8, ε∞ = 0.03, A = 0.6, 3% noise. Each 95% interval must cover the truth in
    ≥ 15 of 20 independent replicates: if the true coverage were 0.95, failing has
    probability P(Bin(20, 0.95) ≤ 14) ≈ 3e-4."""
    hits = np.zeros(3)
    for rep in range(20):
        w, e = _curve(np.random.default_rng(100 + rep), 0.03)
        fit = fit_power_law(w, e, n_boot=100, seed=rep)
        hits += [fit.ci[p][0] <= t <= fit.ci[p][1]
                 for p, t in (("rho", 0.8), ("eps_inf", 0.03), ("A", 0.6))]
        assert fit.ci["rho"][0] <= fit.rho <= fit.ci["rho"][1]
    assert np.all(hits >= 15), hits
    # without noise the estimates are exact
    w = np.array([2, 4, 8, 16, 32.0])
    fit = fit_power_law(w, 0.05 + 0.5 * w ** -1.3, n_boot=0)
    assert (fit.eps_inf, fit.A, fit.rho) == pytest.approx((0.05, 0.5, 1.3), rel=1e-6)
    fit = fit_power_law(w, 0.5 * w ** -0.4, model="power", n_boot=0)
    assert (fit.A, fit.rho) == pytest.approx((0.5, 0.4), rel=1e-9)


def test_model_comparison_picks_the_right_model():
    """Under a pure power law the F-test prefers the offset model at its 5% level by chance:
    at most 5 of 20 replicates may do so (P(Bin(20, 0.05) ≥ 6) ≈ 3e-4)."""
    rng = np.random.default_rng(0)
    wrong = sum(compare_power_laws(*_curve(rng, 0.0), n_boot=0)[2]["preferred"] != "power"
                for _ in range(20))
    assert wrong <= 5, wrong
    w, e = _curve(rng, 0.05, noise=0.005)
    power, offset, cmp = compare_power_laws(w, e, n_boot=0)
    assert cmp["preferred"] == "offset" and cmp["p_value"] < 1e-6 and cmp["delta_aicc"] > 0
    assert offset.rss < power.rss and set(offset.table().param) == {"A", "rho", "eps_inf"}


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("w, e, msg", [
    ([2, 4, 2, 4], [0.3, 0.2, 0.3, 0.2], "at least 3 distinct widths"),
    ([0, 2, 4, 8], [0.5, 0.3, 0.2, 0.1], "widths must be positive"),
    ([1, 2, 4, 8], [0.5, np.nan, 0.2, 0.1], "errors contain NaN"),
    ([1, 2, 4, 8], [0.5, 0.0, 0.2, 0.1], "errors must be positive"),
    ([1, 2, 4], [0.5, 0.3, 0.2, 0.1], "same length"),
])
def test_bad_fit_input(w, e, msg):
    with pytest.raises(ValueError, match=msg):
        fit_power_law(w, e)


def test_bad_fit_options():
    w, e = np.array([1, 2, 4, 8.0]), np.array([0.5, 0.3, 0.2, 0.1])
    with pytest.raises(ValueError, match="model must be"):
        fit_power_law(w, e, model="exp")
    with pytest.raises(ValueError, match="ci must lie"):
        fit_power_law(w, e, ci=1.5)
    with pytest.raises(ValueError, match="needs at least 2 observations per width"):
        fit_power_law(w, e, bootstrap="cases")
    with pytest.raises(ValueError, match="at least 4 observations"):
        fit_power_law(w[:3], e[:3])


@pytest.mark.parametrize("kw, msg", [
    (dict(ratio=0), "ratio must be a positive number"),
    (dict(width=0), "width must be a positive integer"),
    (dict(padding="full"), "padding must be one of"),
    (dict(dense_factors=(1.0, -2.0)), "dense_factors must be"),
])
def test_bad_lenet(kw, msg):
    with pytest.raises(ValueError, match=msg):
        LeNet(**kw)


def test_bad_lenet_inputs_and_training():
    with pytest.raises(ValueError, match="too small for LeNet"):
        LeNet(filter_size=5, padding="valid").input_shape(64)
    with pytest.raises(ValueError, match="square image"):
        LeNet().input_shape(60)
    with pytest.raises(TypeError, match="arch must be a LeNet"):
        lenet_kernel(iw.MLP(), np.ones((2, 64)))
    x = iw.sample_inputs("sphere", 4, 8, seed=0)
    for kw, msg in [(dict(learning_rate=0.0), "learning_rate must be a positive"),
                    (dict(momentum=1.0), "momentum must lie in"),
                    (dict(dtype="float16"), "dtype must be"),
                    (dict(steps=0), "steps must be a positive integer")]:
        args = dict(steps=2, learning_rate=0.1) | kw
        with pytest.raises(ValueError, match=msg):
            train_gd(iw.MLP(depth=1, width=4), x, x[:, 0], **args)
    with pytest.raises(ValueError, match="k_test_train must have shape"):
        kernel_gd_predict(np.eye(3), np.ones((2, 4)), np.ones(3), steps=1, learning_rate=1.0)
