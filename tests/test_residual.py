"""Sequential vs parallel residual nets: kernels, the α⁴L² gap, parameter counts."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

import infwidth as iw
from infwidth._nt_compat import load
from infwidth.studies.sequential_vs_parallel import (
    ResidualNet,
    gap_table,
    loglog_slope,
    residual_kernels,
    residual_nngp,
    residual_recursion,
    residual_stax,
)
from infwidth.studies.width_power_law.gd import train_gd

X = iw.sample_inputs("sphere", 8, 16, seed=0)


@pytest.mark.parametrize("kw", [dict(), dict(activation="erf", b_std=0.3)])
@pytest.mark.parametrize("layout", ["sequential", "parallel"])
def test_recursion_matches_neural_tangents(layout, kw):
    """K_l = K_{l−1} + α²T(K_{l−1}) and K = K_0 + Lα²T(K_0) (and the NTK recursion), in
    numpy, equal the neural-tangents kernels to round-off."""
    arch = ResidualNet(layout=layout, depth=3, alpha=0.7, **kw)
    z = iw.sample_inputs("sphere", 5, 16, seed=1)
    ref = residual_kernels(arch, X, z)
    got = residual_recursion(arch, X, z)
    for kind in ("nngp", "ntk"):
        np.testing.assert_allclose(got[kind], ref[kind], rtol=1e-12)
    np.testing.assert_array_equal(residual_nngp(arch, X, z), got["nngp"])


def test_gap_has_order_alpha4_L2():
    """Small α: log-log slopes of the relative gap are 4 in α and 2 in L (within 0.2), for
    the NNGP and the NTK. The NNGP gap equals its leading term α⁴·L(L−1)/2·‖DT[T]‖ up to a
    relative O(α²L) correction (≤ 5α²L here); L(L−1) makes the L-slope ≈ 2.16 on 4…16.
    Kernels by the recursion, which equals neural-tangents to 1e-12 (above): the smallest gap
    here, ~1e-8, carries at most 1e-4 of relative error from it (neural-tangents' eager shape
    propagation took 33 of this test's 37 s)."""
    by_alpha = gap_table(ResidualNet(), X, [0.01, 0.02, 0.04], [4], method="recursion")
    by_depth = pd.concat([by_alpha[by_alpha.alpha == 0.01],
                          gap_table(ResidualNet(), X, [0.01], [8, 16], method="recursion")])
    for kind in ("nngp", "ntk"):
        d = by_alpha[by_alpha.kind == kind]
        assert abs(loglog_slope(d.alpha, d.gap) - 4) < 0.2
        d = by_depth[by_depth.kind == kind]
        assert abs(loglog_slope(d.depth, d.gap) - 2) < 0.2
    for df in (by_alpha, by_depth):
        d = df[df.kind == "nngp"]
        assert np.all(np.abs(d.ratio - 1) <= 5 * d.alpha ** 2 * d.depth), d
    assert by_alpha.gap.min() > 1e-10  # far above float64 round-off of K ~ 1


@pytest.mark.parametrize("kw, dim", [(dict(), 16), (dict(branch="conv", channels=2), 32)])
def test_layouts_have_equal_parameter_counts(kw, dim):
    seq = ResidualNet(depth=3, width=8, out_dim=3, b_std=0.1, **kw)
    par = dataclasses.replace(seq, layout="parallel")
    n = seq.n_params(dim)
    assert n == par.n_params(dim)
    if not kw:  # stem 16·8+8, 3 branches of 2·(8·8+8), readout 8·3+3
        assert n == 136 + 3 * 144 + 27


def test_parallel_dag_is_shallow():
    seq = ResidualNet(branch="conv", depth=3)
    assert seq.dag_for(16).depth == 1 + 2 * 3 + 1
    assert dataclasses.replace(seq, layout="parallel").dag_for(16).depth == 3 + 1


def test_both_layouts_train_and_alpha_zero_is_the_stem():
    y = X[:, :1] * X[:, 1:2]
    for layout in ("sequential", "parallel"):
        arch = ResidualNet(layout=layout, depth=2, width=32, alpha=0.5)
        res = train_gd(arch, X, y, steps=20, learning_rate=0.5, seed=0)
        assert res.train_loss < 0.5 * res.history.train_loss.iloc[0]
    k0 = residual_nngp(ResidualNet(alpha=0.0), X)
    np.testing.assert_allclose(k0, X @ X.T / 16, rtol=1e-12)


@pytest.mark.parametrize("kw, err, msg", [
    (dict(depth=0), ValueError, "depth must be a positive integer"),
    (dict(width=-3), ValueError, "width must be a positive integer"),
    (dict(alpha=-0.1), ValueError, "alpha must be a finite number ≥ 0"),
    (dict(alpha=float("nan")), ValueError, "alpha must be a finite number ≥ 0"),
    (dict(layout="tree"), ValueError, "layout must be one of"),
    (dict(branch="attention"), ValueError, "branch must be one of"),
])
def test_bad_residual_net(kw, err, msg):
    with pytest.raises(err, match=msg):
        ResidualNet(**kw)


def test_mismatched_branch_shapes_are_refused():
    _, stax = load()
    stem = stax.Dense(8)
    good = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(8))
    bad = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(9))
    residual_stax("parallel", stem, [good, good], stax.Dense(1), input_shape=(4,))
    with pytest.raises(ValueError, match="branch 2 maps shape .*8.* to .*9"):
        residual_stax("sequential", stem, [good, bad], stax.Dense(1), input_shape=(4,))
    with pytest.raises(ValueError, match="at least one branch"):
        residual_stax("sequential", stem, [], stax.Dense(1))
    with pytest.raises(ValueError, match="kinds must be one of"):
        gap_table(ResidualNet(), X, [0.1], [2], kinds=("cka",))
    with pytest.raises(ValueError, match="positive finite"):
        loglog_slope([1, 2], [0.0, 1.0])
