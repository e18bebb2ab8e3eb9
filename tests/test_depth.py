"""Tests for infwidth.studies.depth_cutoff: mean-field maps, edge of chaos, NT kernels, cut-off,
deep limit."""

import math

import jax
import numpy as np
import pytest

import infwidth
from infwidth.studies.depth_cutoff import deep_limit as DL
from infwidth.studies.depth_cutoff import maps as D
from infwidth.studies.depth_cutoff import profiles as DP


@pytest.fixture(scope="module")
def digits16():
    return infwidth.load_digits(n_train=16, seed=1).x_train


# ------------------------------------------------------------------ mean-field maps
def test_relu_critical_correlation_decay():
    """At (2, 0): 1 − c_ℓ ≈ 9π²/(2ℓ²); the O(log ℓ/ℓ) correction is < 5% at ℓ = 1000."""
    c = 0.0
    for _ in range(1000):
        c = float(D.correlation_map(c, "relu", 2.0, 0.0))
    assert (1 - c) / (9 * math.pi ** 2 / (2 * 1000 ** 2)) == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("activation", ["erf", "tanh"])
def test_edge_of_chaos_chi1_is_one(activation):
    sb = [0.0, 0.05, 0.3, 1.0]
    sw = D.edge_of_chaos(activation, sb)
    assert np.all(np.diff(sw) > 0)  # the curve rises with σ_b²
    for w, b in zip(sw, sb):
        assert abs(D.chi1(activation, float(w), b) - 1) < 1e-6
    # σ_b² = 0: q* = 0 up to the edge and χ1 = σ_w²·φ'(0)², so the edge is 1/φ'(0)², exactly.
    # (Above it χ1 − 1 grows like δ², so a root-finder alone resolves the edge only to ~√ε.)
    assert sw[0] == pytest.approx(math.pi / 4 if activation == "erf" else 1.0, rel=1e-15)
    assert D.chi1(activation, float(sw[0]) * (1 - 1e-6), 0.0) < 1


def test_edge_of_chaos_relu():
    np.testing.assert_allclose(D.edge_of_chaos("relu", [0.0, 0.5]), 2.0, rtol=1e-12)


@pytest.mark.parametrize("activation,sw,sb", [("relu", 1.5, 0.1), ("erf", 1.2, 0.05),
                                              ("erf", 3.0, 0.2), ("tanh", 0.9, 0.05),
                                              ("tanh", 2.5, 0.1), ("tanh", 2.0, 0.0)])
def test_fixed_points_and_slopes(activation, sw, sb):
    mf = D.mean_field(activation, sw, sb)
    q = mf.q_star
    assert 0 < q < np.inf
    assert float(D.length_map(q, activation, sw, sb)) == pytest.approx(q, rel=1e-13)
    c = mf.c_star
    assert float(D.correlation_map(c, activation, sw, sb)) == pytest.approx(c, abs=1e-12)
    assert mf.phase == ("ordered" if mf.chi1 < 1 else "chaotic")
    assert (c == 1.0) == (mf.chi1 < 1)
    # χ_q and χ_c are the slopes of the maps at the fixed point (central differences, h = 1e-5).
    h = 1e-5
    dq = (D.length_map(q + h, activation, sw, sb) - D.length_map(q - h, activation, sw, sb))
    assert mf.chi_q == pytest.approx(float(dq) / (2 * h), rel=1e-7)
    # one-sided at c* = 1, step 1e-8: relu's map has a (1 − c)^{3/2} term (error ~ 3e-5).
    lo, hi = (c - 1e-8, c) if c == 1.0 else (c - h, c + h)
    dc = (D.correlation_map(hi, activation, sw, sb) - D.correlation_map(lo, activation, sw, sb))
    assert mf.chi_c == pytest.approx(float(dc) / (hi - lo), rel=1e-4 if c == 1.0 else 1e-7)
    assert mf.xi_c == pytest.approx(-1 / math.log(mf.chi_c))


def test_mean_field_edge_cases():
    assert D.mean_field("relu", 2.0, 0.0).xi_c == math.inf
    assert D.mean_field("relu", 3.0, 0.1).q_star == math.inf
    mf = D.mean_field("relu", 1.0, 0.0)  # q* = 0 yet c → 1 only polynomially (χ_c = 1)
    assert (mf.q_star, mf.chi1, mf.xi_c) == (0.0, 0.5, math.inf)
    mf = D.mean_field("tanh", 0.5, 0.0)
    assert mf.q_star == 0.0 and math.isnan(mf.c_star) and mf.xi_c == math.inf
    mf = D.mean_field("relu", 1.5, 0.1)
    assert mf.xi_c == pytest.approx(-1 / math.log(0.75))


def test_erf_closed_form_matches_quadrature():
    for q in (0.05, 0.5, 1.0):
        assert D._e_phi2("erf", q) == pytest.approx(D._e_phi2("erf", q, "quadrature"), abs=1e-14)
        assert D._e_dphi2("erf", q) == pytest.approx(D._e_dphi2("erf", q, "quadrature"), abs=1e-13)
        for c in (-0.7, 0.0, 0.5, 0.999, 1.0):
            assert D._e_phiphi("erf", q, 0.8, c) == pytest.approx(
                D._e_phiphi("erf", q, 0.8, c, "quadrature"), abs=1e-13)
            assert D._e_dphidphi("erf", q, 0.8, c) == pytest.approx(
                D._e_dphidphi("erf", q, 0.8, c, "quadrature"), abs=1e-12)


def test_tanh_mehler_series_matches_quadrature():
    """Mehler series (auto) against 2-D Gauss–Hermite with 200² nodes, converged at q <= 1."""
    for q in (0.2, 0.7, 1.0):
        for c in (-0.6, 0.0, 0.8, 0.9999, 1.0):
            assert D._e_phiphi("tanh", q, 0.5, c) == pytest.approx(
                D._e_phiphi("tanh", q, 0.5, c, "quadrature", deg=200), abs=1e-12)
            assert D._e_dphidphi("tanh", q, 0.5, c) == pytest.approx(
                D._e_dphidphi("tanh", q, 0.5, c, "quadrature", deg=200), abs=1e-12)
    # c = 1, equal q: the series sums to the 1-D expectation E[tanh(√q z)²].
    assert D._e_phiphi("tanh", 1.2, 1.2, 1.0) == pytest.approx(D._e_phi2("tanh", 1.2), abs=1e-12)


# ------------------------------------------------------------------- NT kernels
@pytest.mark.parametrize("activation,sw,sb,tol,ktol", [("relu", 2.0, 0.0, 1e-13, 1e-11),
                                                       ("relu", 1.7, 0.1, 1e-13, 1e-11),
                                                       ("erf", 1.4, 0.05, 1e-13, 1e-11),
                                                       ("tanh", 1.5, 0.05, 1e-10, 1e-7)])
def test_nt_kernels_match_mean_field(digits16, activation, sw, sb, tol, ktol):
    """NT's normalised NNGP correlations = the correlation/length maps. tanh: NT's 2-D
    Gauss–Hermite (160² nodes) against the Mehler series: correlations agree to ~4e-12, the
    kernel values to ~2e-8 (NT's quadrature of the diagonal converges more slowly)."""
    Kn = D.nt_kernels(digits16, 6, activation, sw, sb, deg=160)
    Km = D.mean_field_kernels(digits16, 6, activation, sw, sb)
    Cn = np.asarray(DP._corr(Kn))
    np.testing.assert_allclose(Cn, np.asarray(DP._corr(Km)), rtol=0, atol=tol)
    np.testing.assert_allclose(Kn, Km, rtol=ktol)
    # All rows have ‖x‖² = dim, so the scalar (q_ℓ, c_ℓ) recursion applies pairwise.
    q = sw + sb
    c = (sw * digits16 @ digits16.T / digits16.shape[1] + sb) / q
    for layer in range(1, 6):
        c, q = (D.correlation_map(np.clip(c, -1, 1), activation, sw, sb, q=q),
                D.length_map(q, activation, sw, sb))
        np.testing.assert_allclose(c, Cn[layer], rtol=0, atol=10 * tol)


# ------------------------------------------------------------------- cut-off detector
def test_cutoff_detector_on_sigmoid():
    l0, w = 73.3, 6.0
    t = np.arange(0.0, 201.0)
    y = 1 / (1 + np.exp(-(t - l0) / w))
    c = D.cutoff_depth(t, y)
    # Linear interpolation of y on a unit grid moves the crossing of a level p by at most
    # h²·max|y''|/(8·|y'|) = (1 + 2|1 − 2p|)/(8w) near it (|y''/y'| <= |1 − 2p|/w + O(h/w²)).
    assert c.depth == pytest.approx(l0, abs=1 / (8 * w))
    half = w * math.log(9)  # the sigmoid crosses p at l0 + w·log(p/(1 − p))
    assert c.window_lo == pytest.approx(l0 - half, abs=(1 + 2 * 0.8) / (8 * w))
    assert c.window_hi == pytest.approx(l0 + half, abs=(1 + 2 * 0.8) / (8 * w))
    assert c.width == pytest.approx(2 * half, abs=(1 + 2 * 0.8) / (4 * w))
    # bounds taken from the curve's ends (y[0] ≈ 5e-6, y[-1] ≈ 1): the window barely moves.
    e = D.cutoff_depth(t, y, bounds=(None, None))
    assert e.window_lo == pytest.approx(c.window_lo, abs=1e-3)
    assert e.depth == c.depth  # level is absolute
    # A decaying curve with bounds (1, 0), and a curve that never gets there.
    d = D.cutoff_depth(t, 1 - y, bounds=(1.0, 0.0))
    assert d.depth == pytest.approx(l0, abs=1 / (8 * w))
    assert d.window_lo == pytest.approx(c.window_lo, abs=1e-9)
    assert math.isnan(D.cutoff_depth(t, 0.4 * y).depth)


# ----------------------------------------------------------------- finite networks
@pytest.mark.parametrize("activation,sw,sb", [("tanh", 1.5, 0.05), ("relu", 3.0, 0.1)])
def test_network_profile_matches_mean_field(digits16, activation, sw, sb):
    """Width-512 nets, 16 seeds, depths 1..3: cosine, distance and log-norm rate within
    4 standard errors (over seeds) plus the O(1/width) finite-width bias of the mean-field
    value. relu at σ_w² = 3 grows like 1.5^{ℓ/2}, so this also checks the exact rescaling."""
    width, seeds = 512, 16
    net = DP.network_profile(digits16, 3, width, activation, sw, sb, jax.random.key(3),
                            n_seeds=seeds, dtype="float64")
    mf = DP.mean_field_profile(digits16, 3, activation, sw, sb)
    g = net.groupby("depth")
    for col in ("cosine", "distance", "log_norm_rate"):
        se = g[col].std().to_numpy() / math.sqrt(seeds)
        assert np.all(se < 0.02)
        np.testing.assert_array_less(np.abs(g[col].mean().to_numpy() - mf[col].to_numpy()),
                                     4 * se + 1 / width)
    assert net.top_class_fraction.between(0.1, 1.0).all()
    again = DP.network_profile(digits16, 3, width, activation, sw, sb, jax.random.key(3),
                              n_seeds=seeds, dtype="float64")
    np.testing.assert_array_equal(again.to_numpy(), net.to_numpy())  # same key, same numbers


# ----------------------------------------------------------------- deep limit
def test_gradient_layers_deep_limit():
    x0 = np.random.default_rng(0).normal(size=(4, 6)) * 5
    o = DL.gradient_layer_orbits(x0, 2000, jax.random.key(1), n_seeds=8, drift=2.0,
                                n_points=12)
    # 1-Lipschitz layers: ‖u_n(x) − u_n(y)‖/n <= ‖x − y‖/n for every n and seed.
    assert np.all(o.spread <= o.bound * (1 + 1e-12))
    v_hat = o.u_over_n[:, 0, -1]  # one estimate per seed (i.i.d.)
    se = v_hat.std(0, ddof=1) / math.sqrt(len(v_hat))
    # Saturation bias: Σ_k O(1/‖u_k‖)/n = O(log n/(n‖v‖)).
    bias = math.log(2000) / (2000 * np.linalg.norm(o.limit))
    np.testing.assert_array_less(np.abs(v_hat.mean(0) - o.limit), 4 * se + bias)
    assert np.linalg.norm(o.limit) > 1.0
    trapped = DL.gradient_layer_limit(6, 8, 0.3, 1.0)  # |μ̄| < κ: the orbit does not escape
    assert np.all(trapped == 0.0)


# ----------------------------------------------------------------- validation
@pytest.mark.parametrize("call,name", [
    (lambda x: D.cutoff_depth([0, 1, 2], [0, 0.5, 1], level=1.5), "level"),
    (lambda x: D.cutoff_depth([0, 1, 2], [0, 0.5, 1], level=0.0), "level"),
    (lambda x: D.cutoff_depth([0, 1, 2], [0, 0.5, 1], window=(0.9, 0.1)), "window"),
    (lambda x: DP.network_profile(x, 0, 8, "relu", 2.0, 0.0, jax.random.key(0)), "depth"),
    (lambda x: DP.network_profile(x, 3, 0, "relu", 2.0, 0.0, jax.random.key(0)), "width"),
    (lambda x: DP.network_profile(x, 3, 8, "relu", 0.0, 0.0, jax.random.key(0)), "sigma_w2"),
    (lambda x: DP.network_profile(x, 3, 8, "relu", 2.0, -0.1, jax.random.key(0)), "sigma_b2"),
    (lambda x: DP.network_profile(x, 3, 8, "gelu", 2.0, 0.0, jax.random.key(0)), "activation"),
    (lambda x: D.mean_field("tanh", -1.0, 0.0), "sigma_w2"),
    (lambda x: D.mean_field_kernels(np.full((3, 4), np.nan), 2, "relu", 2.0, 0.0), "x"),
    (lambda x: D.nt_kernels(x, 0, "relu", 2.0, 0.0), "depth"),
    (lambda x: DL.gradient_layer_orbits(np.zeros((2, 3)), 10, jax.random.key(0), step=9.0),
     "step"),
])
def test_bad_input(digits16, call, name):
    with pytest.raises(ValueError, match=name):
        call(digits16)
