"""Banded plans of the native engine (Flatten readout after pooling, LeNet-like nets).

The band keeps Σ(i, i + δ) only for the offsets that reach the readout, so it computes the
same sums as the full (P, P) covariance in another order: the two agree to a few ulp
(1e-12 relative). Against neural-tangents (the oracle) the tolerances of
``tests/test_native_engine.py``: 1e-10 off the diagonal, depth·√ε on the ReLU diagonal.
"""

from __future__ import annotations

import numpy as np
import pytest
from nt_oracle import nt_kernels

import infwidth as iw
from infwidth.architectures.layers import Activation, AvgPool, Conv, Dense, Flatten
from infwidth.kernels.native import banding, native_kernels, native_memory_estimate, native_plan
from infwidth.kernels.native_band import Band
from infwidth.studies.width_power_law.lenet import LeNet

EPS = np.finfo(np.float64).eps
R2 = np.sqrt(2.0)


def _lenet(ndim, pad="same", pool=AvgPool(2), act="relu", q=3, b=0.0, channels=1,
           first=None, middle=()):
    """conv → φ → pool → conv → φ (→ middle) → pool → Flatten → Dense → φ → Dense."""
    a = Activation(act)
    first = first or Conv(q, 1, pad, 1.0, b)
    layers = (first, a, pool, Conv(q, 1, pad, R2, b), a, *middle, pool, Flatten(),
              Dense(R2, b), a, Dense(R2, b))
    return iw.Network(layers=layers, ndim=ndim, channels=channels, width=8)


CASES = [  # (name, arch, dim); every one banded
    ("2d-same-pool2", _lenet(2), 8 * 8),
    ("2d-valid-pool2-erf-bias", _lenet(2, "valid", act="erf", b=0.2), 14 * 14),
    ("1d-valid-pool3", _lenet(1, "valid", AvgPool(3)), 40),
    ("1d-same-pool3-erf", _lenet(1, act="erf", pool=AvgPool(3), b=0.1), 36),
    ("1d-circular-pool2", _lenet(1, "circular", b=0.1), 16),
    ("2d-circular-pool2", _lenet(2, "circular"), 8 * 8),
    ("2d-same-overlap-2-1", _lenet(2, pool=AvgPool(2, 1)), 8 * 8),
    ("1d-same-overlap-3-2-cos", _lenet(1, pool=AvgPool(3, 2), act="cos", b=0.3), 30),
    ("2d-same-channels3-q5", _lenet(2, q=5, channels=3), 3 * 12 * 12),
    ("2d-patch-first", _lenet(2, first=Conv(2, 2, "valid")), 16 * 16),
    ("1d-two-convs", _lenet(1, middle=(Conv(3, 1, "valid", R2), Activation("relu"))), 32),
]


def _depth(arch, dim):
    return sum(isinstance(ly, Activation) for ly in arch.kernel_layers(dim))


@pytest.mark.parametrize("name,arch,dim", CASES, ids=[c[0] for c in CASES])
def test_band_matches_full_and_oracle(name, arch, dim):
    assert native_plan(arch, dim).banded
    rng = np.random.default_rng(5)
    n1 = 4
    x1, x2 = rng.standard_normal((n1, dim)), rng.standard_normal((3, dim))
    band = {be: (native_kernels(arch, x1, backend=be), native_kernels(arch, x1, x2, backend=be))
            for be in ("numba", "numpy")}
    ref = nt_kernels(arch, np.concatenate([x1, x2]))
    ref_sym = {k: v[:n1, :n1] for k, v in ref.items()}
    ref_cross = {k: v[:n1, n1:] for k, v in ref.items()}
    off = ~np.eye(n1, dtype=bool)
    for be, (sym, cross) in band.items():
        for kind in ("nngp", "ntk"):
            scale = np.abs(ref_sym[kind]).max()
            np.testing.assert_allclose(sym[kind][off], ref_sym[kind][off], rtol=0,
                                       atol=1e-10 * scale)
            np.testing.assert_allclose(np.diag(sym[kind]), np.diag(ref_sym[kind]),
                                       rtol=_depth(arch, dim) * np.sqrt(EPS))
            np.testing.assert_allclose(cross[kind], ref_cross[kind], rtol=0,
                                       atol=1e-10 * np.abs(ref_cross[kind]).max())
    with banding(False):
        assert not native_plan(arch, dim).banded
        full = (native_kernels(arch, x1, backend="numpy"),
                native_kernels(arch, x1, x2, backend="numpy"))
    for sym, cross in band.values():
        for got, want in zip((sym, cross), full):
            for kind in ("nngp", "ntk"):
                np.testing.assert_allclose(got[kind], want[kind], rtol=0,
                                           atol=1e-12 * np.abs(want[kind]).max())


def test_lenet_28_band_matches_full():
    """The width study's LeNet on 28×28 inputs: band (offsets ≤ 3, then ≤ 1) = full."""
    arch, dim = LeNet(), 28 * 28
    rng = np.random.default_rng(9)
    x1, x2 = rng.standard_normal((2, dim)), rng.standard_normal((1, dim))
    band = native_kernels(arch, x1), native_kernels(arch, x1, x2)
    with banding(False):
        full = native_kernels(arch, x1), native_kernels(arch, x1, x2)
    for got, want in zip(band, full):
        for kind in ("nngp", "ntk"):
            np.testing.assert_allclose(got[kind], want[kind], rtol=0,
                                       atol=1e-12 * np.abs(want[kind]).max())


@pytest.mark.parametrize("name,arch,dim", [CASES[1], CASES[4], CASES[7]],
                         ids=[CASES[i][0] for i in (1, 4, 7)])
def test_band_jax_matches_numpy(name, arch, dim):
    x = np.random.default_rng(6).standard_normal((5, dim))
    a, b = native_kernels(arch, x, backend="numpy"), native_kernels(arch, x, backend="jax",
                                                                      tile=2)
    for kind in ("nngp", "ntk"):
        np.testing.assert_allclose(b[kind], a[kind], rtol=1e-13)


def test_band_widths_follow_the_pools():
    """h = 0 after the last pool, h_in = s·h + p − 1 through each pool: LeNet (pool 2)
    keeps offsets ≤ 1 after the first pool and ≤ 3 before it (the retired recursion's
    p − 1 and p² − 1); an overlapping AvgPool(3, 2) twice: 2 and 2·2 + 2 = 6."""
    steps = native_plan(LeNet(), 28 * 28).steps
    halves = [st[3].half for st in steps if st[0] in ("lin", "act", "pool")
              and isinstance(st[3], Band)]
    assert halves == [(3, 3)] * 3 + [(1, 1)] * 3
    plan = native_plan(_lenet(2, pool=AvgPool(3, 2)), 17 * 17)
    assert plan.full0.half == (6, 6)
    assert [st[5].half for st in plan.steps if st[0] == "pool"] == [(2, 2), (0, 0)]
    assert native_plan(_lenet(1, "circular"), 16).full0.wrap == (True,)


@pytest.mark.parametrize("arch,dim", [
    (_lenet(2, "circular"), 11 * 11),  # 11 = 2·5 + 1: the pooled map's wrap is not kept
    (_lenet(2, "valid", act="erf"), 10 * 10),  # the band (3×3) is not smaller than 2×2
    (iw.ConvNet(depth=2, readout="gap", ndim=2), 64),  # GAP needs every pair
])
def test_full_where_the_band_does_not_apply(arch, dim):
    """These plans keep the full covariance (the path tests/test_native_engine.py checks
    against the oracle)."""
    plan = native_plan(arch, dim)
    assert not plan.banded and not any(isinstance(st[3], Band) for st in plan.steps
                                       if len(st) > 3)


def test_band_memory_estimate_covers_peak_and_shrinks():
    import tracemalloc

    arch, dim, n = LeNet(), 16 * 16, 12
    x = np.random.default_rng(8).standard_normal((n, dim))
    native_kernels(arch, x[:2])
    for x2, t in ((None, None), (x[: n // 2], 3)):
        tracemalloc.start()
        native_kernels(arch, x, x2, tile=t)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        est = native_memory_estimate(arch, n, None if x2 is None else x2.shape[0], dim, tile=t)
        assert est >= peak, (est, peak)
    band = native_memory_estimate(arch, n, None, dim, tile=2)
    with banding(False):
        assert band < native_memory_estimate(arch, n, None, dim, tile=2)
