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
from infwidth.kernels.native_numba import _arc_array, fused_steps

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


U32 = 2.0 ** -24  # the float32 unit round-off


@pytest.mark.parametrize("name", ["gap-2d-same-erf", "gap-2d-circ-5x5", "myrtle5",
                                  "pool3-gap-2d"])
def test_fused_float32_error(name):
    # float32 end to end (taps, affine map, dual; GAP sums in float64). Per fused layer: the
    # tap sum, the affine map, c = s·r1·r2 and the dual's evaluation (_arc: ≤ 2 ulp) each
    # cost an ulp or two, and the duals do not amplify them (relu: J1'(c) = (π − θ)/π ≤ 1;
    # erf: asin'(c) ≤ 1/√(1 − c²) ≤ 1.4 for |c| ≤ 2v/(1 + 2v) at v ≤ 1), so the error of the
    # Gram relative to its largest entry stays within 4 ulp per fused layer (measured: ≤ 2.5
    # ulp in all).
    arch, dim = NETS[name]
    x = iw.sample_inputs("sphere", 5, dim, seed=3)
    k32 = native_kernels(arch, x, dtype="float32", progress=False)
    k64 = native_kernels(arch, x, progress=False)
    tol = 4 * U32 * _fused_groups(arch, dim)
    for k in k64:
        assert k32[k].dtype == np.float32
        assert np.max(np.abs(k32[k] - k64[k])) / np.max(np.abs(k64[k])) < tol


def test_float32_arc_near_one():
    """The float32 asin, acos and √(1 − c²) of the fused dual against float64 numpy at the
    same float32 c, on [−1, 1] and at c = ±(1 − k·2⁻²⁴): √((1 − c)(1 + c)) keeps 2 ulp of
    relative accuracy where 1 − c·c, rounded near 1, loses it (700 ulp measured at
    1 − c ≈ 2e-4, an absolute error of ~10 ulp in K)."""
    k = np.unique(np.geomspace(1, 2**22, 400).astype(np.int64))
    c = np.concatenate([np.linspace(-1, 1, 200_001), 1 - k * U32, -1 + k * U32,
                        [-0.5, 0.5, -0.0, 0.0]]).astype(np.float32)
    s, a, r = _arc_array(c)
    c64 = c.astype(np.float64)
    assert s.dtype == a.dtype == r.dtype == np.float32
    np.testing.assert_allclose(a, np.arccos(c64), rtol=0, atol=2 * np.pi * U32)
    np.testing.assert_allclose(s, np.arcsin(c64), rtol=0, atol=2 * np.pi / 2 * U32)
    np.testing.assert_allclose(r, np.sqrt(1 - c64 ** 2), rtol=2 * U32, atol=0)
    assert np.all(a[c == 1] == 0) and np.all(r[np.abs(c) == 1] == 0)


@pytest.mark.parametrize("act", ["relu", "erf"])
def test_fused_float32_near_duplicates(act):
    """Inputs whose patches are near-duplicates of another input's, 1 − c = k·2⁻²⁴ at the
    first layer (k = 1 … 10⁵). The NNGP keeps its few-ulp error (J1' ≤ 1, and √(1 − c²)
    from (1 − c)(1 + c)). The relu NTK's K̇ = (π − θ)/2π is √-singular at c = 1 (dK̇/dc =
    1/(2π sin θ)): float32 storage of Σ rounds s and √(v1·v2) apart, so 1 − c carries an
    absolute error δc of a few ulp at every layer (δc ≤ 8 ulp with the product s·r1·r2),
    and |δK̇| ≤ √(2δc)/2π per layer, 3.1e-4 of K̇(1) = 1/2 (measured here: 5.4e-5 at
    1 − c = u, 5e-6 at 10u, < 1e-6 beyond 100u). erf's c ≤ 2v/(1 + 2v) stays away from 1:
    both kinds keep the few-ulp error."""
    arch = Network((Conv(1), Activation(act), Conv(1), Activation(act), GAP(), Dense()),
                   ndim=1, channels=8)
    n_pos, ch = 2, 8
    x1 = iw.sample_inputs("sphere", 8, n_pos * ch, patch_dim=ch, seed=4)
    rng = np.random.default_rng(0)
    x2 = np.empty_like(x1)
    for row, k in enumerate(np.geomspace(1, 1e5, 8)):
        for p in range(n_pos):  # rotate each patch by the angle of 1 − cos = k·u
            v = x1[row, p * ch:(p + 1) * ch]
            w = rng.standard_normal(ch)
            w -= (w @ v) / (v @ v) * v
            w *= np.linalg.norm(v) / np.linalg.norm(w)
            ang = np.arccos(1 - k * U32)
            x2[row, p * ch:(p + 1) * ch] = np.cos(ang) * v + np.sin(ang) * w
    assert _fused_groups(arch, n_pos * ch) == 2
    k64 = native_kernels(arch, x1, x2, progress=False)
    k32 = native_kernels(arch, x1, x2, dtype="float32", progress=False)
    err = {k: np.max(np.abs(k32[k] - k64[k])) / np.max(np.abs(k64[k])) for k in k64}
    assert err["nngp"] < 4 * U32 * 2
    assert err["ntk"] < (2 * np.sqrt(2 * 8 * U32) / np.pi if act == "relu" else 4 * U32 * 2)
