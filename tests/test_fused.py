"""The fused CPU pass (NumbaOps.fuse: conv → affine → dual → pooling/GAP in one pass) against
the unfused numpy backend, which computes the same formulas step by step: equal to rounding
(a few ulp of the summation order, 1e-12 relative), on every pattern the fuser accepts."""

from __future__ import annotations

import numpy as np
import pytest

import infwidth as iw
from infwidth.architectures.layers import GAP, Activation, AvgPool, Conv, Dense
from infwidth.architectures.networks import Network
from infwidth.kernels.native import native_kernels, native_plan
from infwidth.kernels.native_numba import fused_steps

NETS = {
    "gap-1d-circ-relu": (iw.ConvNet(depth=3, readout="gap"), 16),
    "gap-2d-same-erf": (iw.ConvNet(depth=2, readout="gap", ndim=2, padding="same",
                                   activation="erf"), 36),
    "gap-2d-circ-5x5": (iw.ConvNet(filter_size=5, depth=2, readout="gap", ndim=2), 49),
    "myrtle5": (__import__("infwidth.architectures.myrtle", fromlist=["Myrtle"])
                .Myrtle(depth=5, ndim=2), 64),
    "pool3-gap-2d": (Network((Conv(3), Activation("relu"), Conv(3, padding="same"),
                              Activation("relu"), AvgPool(3), Activation("erf"), GAP(),
                              Dense()), ndim=2), 36),
    "valid-pool-1d-erf": (Network((Conv(3, 1, "valid"), Activation("erf"), AvgPool(2),
                                   Conv(1), Activation("relu"), AvgPool(2), GAP(), Dense()),
                                  ndim=1), 18),
}


def _fused_groups(arch, dim: int) -> int:
    plan = native_plan(arch, dim)
    return sum(fused_steps(plan.steps, k, plan.nd) > 0 for k in range(len(plan.steps)))


@pytest.mark.parametrize("name", sorted(NETS))
@pytest.mark.parametrize("kinds", [("nngp", "ntk"), ("nngp",)])
def test_fused_equals_unfused(name, kinds):
    arch, dim = NETS[name]
    assert _fused_groups(arch, dim) >= 1  # the case exercises the fused pass
    x1 = iw.sample_inputs("sphere", 4, dim, seed=1)
    x2 = iw.sample_inputs("sphere", 3, dim, seed=2)
    for a, b in ((x1, x2), (x1, None)):
        got = native_kernels(arch, a, b, kinds=kinds, backend="numba", progress=False)
        ref = native_kernels(arch, a, b, kinds=kinds, backend="numpy", progress=False)
        for k in kinds:
            np.testing.assert_allclose(got[k], ref[k], rtol=1e-12,
                                       atol=1e-12 * np.max(np.abs(ref[k])))


@pytest.mark.parametrize("name", ["gap-2d-same-erf", "myrtle5"])
def test_fused_float32_error(name):
    # float32 storage and taps, float64 GAP sums: the relative error stays at a few float32
    # ulp (2^-24 ≈ 6e-8) per layer, far inside the 1e-5 the engine promises.
    arch, dim = NETS[name]
    x = iw.sample_inputs("sphere", 5, dim, seed=3)
    k32 = native_kernels(arch, x, dtype="float32", progress=False)
    k64 = native_kernels(arch, x, progress=False)
    for k in k64:
        assert k32[k].dtype == np.float32
        assert np.max(np.abs(k32[k] - k64[k])) / np.max(np.abs(k64[k])) < 1e-6
