"""The engine's cost model (infwidth.kernels.cost): closed forms counted by hand on small plans,
and the per-pair element counts against the arrays the engine actually holds."""

from __future__ import annotations

import math

import numpy as np
import pytest

import infwidth as iw
from infwidth.architectures.layers import GAP, Activation, AvgPool, Conv, Dense
from infwidth.architectures.myrtle import Myrtle
from infwidth.architectures.networks import Network, ResNet
from infwidth.kernels import native
from infwidth.kernels.cost import DUAL_FLOPS, kernel_cost
from infwidth.kernels.native_ops import NumpyOps

RELU_S, RELU_T = DUAL_FLOPS["arccos1"]
ERF_S, ERF_T = DUAL_FLOPS["arcsin"]


def test_mlp_closed_form():
    # depth 2, dim d, no biases. Gram 2d + 1 (scale) + 1 (W² scale); per relu 42 (Σ) + 1 (Θ);
    # per later Dense Σ·a 1, Θ·a + Σ 2.
    d, n = 8, 10
    c = kernel_cost(iw.MLP(depth=2), n, dim=d)
    assert c.flops_per_pair == (2 * d + 2) + 2 * (RELU_S + RELU_T) + 2 * 3 == 2 * d + 94
    assert c.pairs == n * (n + 1) // 2 and c.flops == c.pairs * c.flops_per_pair
    # elements moved per pair: Gram 5 (BLAS write, scaled copy, tile copy) + affine 2 + Θ
    # copy 2; per relu 4 (Σ, Θ read and written); per Dense 2 + 2 + 3.
    assert c.bytes_per_pair == 8 * (9 + 2 * 4 + 2 * 7)
    assert c.fixed_bytes == 8 * (n * d + 2 * n * n)  # inputs once, two outputs
    assert c.bytes == c.pairs * c.bytes_per_pair + c.fixed_bytes


def test_mlp_nngp_only_and_bias():
    # No Θ: relu 42, Dense 1 (+1 with a bias); the first layer's bias adds one pass.
    d = 5
    c = kernel_cost(iw.MLP(depth=1, b_std=0.1), 3, 4, dim=d, kinds="nngp")
    assert c.pairs == 12
    assert c.flops_per_pair == (2 * d + 1 + 2) + RELU_S + 2
    assert c.fixed_bytes == 8 * ((3 + 4) * d + 12)


def test_convnet_gap_1d_closed_form():
    # P = 16 positions, E = P² = 256 entries; im2col: 3 coordinates. Gram 2·3 + 1 + 1 = 8 E;
    # relu 43 E; conv (3 − 1) E per array, affines 1 E + 2 E = 7 E; relu 43 E; GAP sums
    # E − 1 per array; Dense 3.
    e = 16 ** 2
    c = kernel_cost(iw.ConvNet(depth=2, readout="gap"), 4, dim=16)
    assert c.flops_per_pair == 8 * e + 43 * e + 7 * e + 43 * e + 2 * (e - 1) + 3 == 103 * e + 1
    # elements moved: both conv + relu layers are fused passes (NumbaOps.fuse): the first
    # reads its patches (2·P·3) and writes Σ, Θ (2E); the second reads Σ, Θ (2E) and sums
    # them into the GAP readout (no write); Dense 7.
    assert c.bytes_per_pair == 8 * (2 * 16 * 3 + 2 * e + 2 * e + 7)


def test_convnet_gap_2d_counts_the_separable_conv():
    # 28×28 circular: each 3×3 conv of the covariance is 2 + 2 adds per entry per array; the
    # fused conv → relu → GAP pass reads Σ and Θ once and writes nothing.
    e = 784 ** 2
    rows = kernel_cost(iw.ConvNet(filter_size=3, depth=2, readout="gap", ndim=2), 2,
                       dim=784).to_frame().set_index("step")
    assert rows.loc["0", "flops_per_pair"] == (2 * 9 + 1 + 1) * e
    assert rows.loc["2", "flops_per_pair"] == 2 * 4 * e + 3 * e
    assert rows.loc["2", "bytes_per_pair"] == 8 * 2 * e
    assert rows.loc["3", "bytes_per_pair"] == rows.loc["4", "bytes_per_pair"] == 0
    assert rows.loc["1", "flops_per_pair"] == (RELU_S + RELU_T) * e


def test_pool_erf_and_flatten_rows():
    layers = (Conv(3, 1, "valid"), Activation("erf"), AvgPool(2), Conv(1), Activation("relu"),
              AvgPool(2), GAP(), Dense())
    net = Network(layers, ndim=1)
    rows = kernel_cost(net, 3, dim=18, kinds="ntk").to_frame().set_index("step")
    # valid 3-tap first conv: 16 positions; pool 2 of (16, 16) → (8, 8): (4 − 1)·64 per array
    assert rows.loc["0", "shape"] == (16,) and rows.loc["0", "elements_per_pair"] == 256
    assert rows.loc["1", "flops_per_pair"] == (ERF_S + ERF_T) * 256
    assert rows.loc["2", "flops_per_pair"] == 2 * 3 * 64
    # conv → erf → pool is one fused pass: the patches read (2·16·3), the pooled Σ, Θ written
    assert rows.loc["0", "bytes_per_pair"] == 8 * (2 * 16 * 3 + 2 * 64)
    assert rows.loc["1", "bytes_per_pair"] == rows.loc["2", "bytes_per_pair"] == 0
    # 1×1 conv → relu → pool: reads Σ, Θ (2·64), writes the pooled (4, 4) covariances
    assert rows.loc["3", "bytes_per_pair"] == 8 * (2 * 64 + 2 * 16)
    # a 1×1 conv: no adds, only the affines (1 + 2 per entry), which take the pool's and the
    # erf's pending scale factors, so the relu after it runs no scale pass
    assert rows.loc["3", "flops_per_pair"] == 3 * 64
    assert rows.loc["4", "flops_per_pair"] == (RELU_S + RELU_T) * 64


def test_flush_before_an_activation_after_a_pool():
    net = Network((Conv(1), Activation("relu"), AvgPool(2), Activation("relu"), GAP(), Dense()),
                  ndim=1)
    rows = kernel_cost(net, 2, dim=8).to_frame().set_index("step")
    e = 16  # (4 positions)²
    assert rows.loc["3", "flops_per_pair"] == 2 * e + (RELU_S + RELU_T) * e


def test_generic_activation_is_an_estimate_and_float32_halves_bytes():
    from infwidth.kernels.cost import GENERIC_DUAL_FLOPS

    c64 = kernel_cost(iw.MLP(depth=1, activation="gelu"), 6, dim=4)
    c32 = kernel_cost(iw.MLP(depth=1, activation="gelu"), 6, dim=4, dtype="float32")
    assert c64.to_frame().flops_per_pair[1] == GENERIC_DUAL_FLOPS + 1
    assert c64.flops == c32.flops and c64.bytes == 2 * c32.bytes


ARCHS = [
    (iw.MLP(depth=2), 8),
    (iw.ConvNet(depth=2, readout="gap"), 16),
    (iw.ConvNet(depth=2, padding="same", ndim=2), 36),
    (iw.ConvNet(depth=2, readout="gap", ndim=2), 36),
    (Myrtle(depth=5, ndim=2), 64),
    (Myrtle(depth=5, ndim=1), 16),
    (iw.DCNN(patch_dim=2, filter_sizes=(2, 2)), 16),
    (ResNet(blocks=1), 8),
    (Network((Conv(3, 1, "valid"), Activation("erf"), Conv(2, 2, "valid"), Activation("relu"),
              AvgPool(2), Conv(3), Activation("relu"), GAP(), Dense()), ndim=1), 18),
]


@pytest.mark.parametrize("arch,dim", ARCHS, ids=lambda a: type(a).__name__)
def test_elements_per_pair_are_the_engines_array_sizes(arch, dim):
    """Brute force: the engine's recursion run up to each top-level step on a 2×3 cross tile;
    Σ's size per pair is the row's count."""
    plan = native.native_plan(arch, dim)
    x = native._prepare(plan, iw.sample_inputs("sphere", 5, dim, seed=0), np.float64)
    ops = NumpyOps()
    _, _, va = native._forward(plan, ops, ops.gram(x, None, plan.full0, plan.pos0),
                               native._self_vars(ops), True, True)
    var_fn = native._cross_vars([v[..., :2] for v in va], [v[..., 2:] for v in va])
    rows = {r["step"]: r for r in kernel_cost(arch, 5, dim=dim).rows}
    for k in range(len(plan.steps)):
        g = ops.gram(x[:2], x[2:], plan.full0, plan.pos0)
        s, t, _, _ = native._walk(plan.steps[:k + 1], plan.nd, ops, g, None, var_fn, True,
                                  False, [])
        assert s.size == 6 * rows[str(k)]["elements_per_pair"], (k, plan.steps[k][0])
        assert t.shape == s.shape
    assert math.prod(s.shape) == 6


@pytest.mark.parametrize("bad,match", [
    (dict(n1=0), "n1"), (dict(n2=-1), "n2"), (dict(dim=0), "dim"),
    (dict(kinds=("ntk", "ntk")), "kinds"), (dict(dtype="float16"), "dtype"),
])
def test_bad_arguments_are_named(bad, match):
    args = dict(arch=iw.MLP(), n1=4, dim=8) | bad
    with pytest.raises(ValueError, match=match):
        kernel_cost(**args)
    with pytest.raises(TypeError, match="arch"):
        kernel_cost("mlp", 4, dim=8)
    with pytest.raises(TypeError, match="n1"):
        kernel_cost(iw.MLP(), 4.5, dim=8)
