"""Exact spectra of one-layer conv kernels (infwidth.eigenspaces.conv_spectrum) against brute
force on the whole hypercube, the kernels against the native engine, and the cyclic targets.

Brute force. Unpooled kernels depend on x ⊙ y only: one FWHT of g(z) = K(z, 1) over all 2^D
points gives λ_S for every subset S (error ≲ D·eps·max|g|). Pooled kernels see x and y
separately: the Walsh-basis matrix M = H·G·H/4^D of the full 2^D × 2^D Gram G has the
operator's eigenvalues (H/2^{D/2} is orthogonal); eigvalsh(M) costs ≲ 2^D·eps·‖M‖. Both are
far below the 1e-12 used here (and the acceptance bound 1e-9).
"""

import math

import numpy as np
import pytest

import infwidth as iw
from infwidth.eigenspaces.conv_spectrum import (
    ConvKernel,
    conv_kernel,
    conv_spectrum,
    patch_dual,
    patch_spectrum,
)
from infwidth.eigenspaces.hypercube import cube_points, fwht

TOL = 1e-12


def _full(spec, n):
    ev = spec.eigenvalues()
    assert len(ev) <= n
    return np.sort(np.concatenate([ev, np.zeros(n - len(ev))]))


@pytest.mark.parametrize("d,q,act,kind", [(16, 4, "relu", "ntk"), (16, 5, "erf", "nngp"),
                                          (14, 7, "relu", "nngp"), (12, 12, "erf", "ntk")])
def test_unpooled_equals_fwht_per_subset(d, q, act, kind):
    k = ConvKernel(d, q, act, kind)
    z = cube_points(d)
    g = conv_kernel(k, z, np.ones((1, d)))[:, 0]
    lam = fwht(g) / 2 ** d
    # every subset S (bitmask): λ_S = κ_|S|·c(S)/d, c = number of patches covering S
    kappa = np.zeros(d + 1)
    kappa[:q + 1] = patch_spectrum(q, patch_dual(act, kind))
    masks = np.arange(2 ** d)
    bits = (masks[:, None] >> np.arange(d)) & 1
    cover = np.zeros(2 ** d)
    for a in range(d):
        patch = np.zeros(d, dtype=np.int64)
        patch[(a + np.arange(q)) % d] = 1
        cover += np.all(bits <= patch, axis=1)
    expect = kappa[bits.sum(1)] * cover / d
    assert np.max(np.abs(lam - expect)) < TOL
    spec = conv_spectrum(k)
    assert np.max(np.abs(np.sort(lam) - _full(spec, 2 ** d))) < TOL
    assert spec.trace == pytest.approx(g[0], abs=TOL)   # E[K(x, x)] = K(1, 1)


POOLED = [(8, 3, dict(pool="global")), (10, 4, dict(pool="global")),
          (10, 3, dict(pool=3)), (8, 3, dict(pool=4)), (10, 4, dict(pool=2, stride=2)),
          (9, 3, dict(pool=3, stride=3, padding="valid")),
          (10, 3, dict(pool=4, stride=2, padding="valid")), (10, 5, dict(pool=5))]


@pytest.mark.parametrize("d,q,kw", POOLED)
@pytest.mark.parametrize("act,kind", [("relu", "ntk"), ("erf", "nngp")])
def test_pooled_equals_walsh_matrix_spectrum(d, q, kw, act, kind):
    k = ConvKernel(d, q, act, kind, **kw)
    z = cube_points(d)
    G = conv_kernel(k, z, method="walsh")
    M = fwht(fwht(G).T).T / 4 ** d
    spec = conv_spectrum(k)
    ev = np.linalg.eigvalsh(M)
    assert np.max(np.abs(ev - _full(spec, 2 ** d))) < TOL
    assert spec.trace == pytest.approx(np.trace(G) / 2 ** d, abs=TOL)
    if k.circulant:   # the invariant orbit sums are eigenvectors of M with the table's λ
        for support in ([0], [0, 1], [0, 2], [0, 1, 2]):
            psi = np.zeros(2 ** d)
            for t in range(d):
                psi[sum(1 << ((c + t) % d) for c in support)] = 1.0
            lam, row = spec.invariant_eigenvalue(support)
            assert np.max(np.abs(M @ psi - lam * psi)) < TOL
            assert row >= 0 or lam == 0.0


def test_direct_and_walsh_routes_agree_on_the_definition():
    x = iw.sample_inputs("hypercube", 40, 12, seed=3)
    y = iw.sample_inputs("hypercube", 30, 12, seed=4)
    for kw in (dict(), dict(pool=3), dict(pool="global"), dict(pool=4, stride=2)):
        k = ConvKernel(12, 4, "relu", "ntk", **kw)
        a, b = conv_kernel(k, x, y), conv_kernel(k, x, y, method="walsh")
        assert np.max(np.abs(a - b)) < TOL
    # the direct route is the definition: one pair by hand
    k = ConvKernel(12, 4, "erf", "nngp", pool=3)
    W, h = k.weights(), k.h
    by_hand = sum(W[a_, b_] * h(sum(x[0, (a_ + i) % 12] * y[0, (b_ + i) % 12]
                                    for i in range(4)) / 4)
                  for a_ in range(12) for b_ in range(12))
    assert conv_kernel(k, x[:1], y[:1])[0, 0] == pytest.approx(float(by_hand), abs=TOL)


@pytest.mark.parametrize("readout", ["flatten", "gap"])
@pytest.mark.parametrize("act", ["relu", "erf"])
@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_kernel_equals_native_engine(readout, act, kind):
    d, q = 10, 3
    arch = iw.ConvNet(filter_size=q, depth=1, padding="circular", readout=readout,
                      activation=act)
    x = iw.sample_inputs("hypercube", 7, d, seed=0)
    k = ConvKernel(d, q, act, kind, pool=None if readout == "flatten" else "global")
    # the engine's relu arccos is off by ~1e-8 at correlation exactly 1 (hypercube.py)
    assert np.max(np.abs(iw.kernel(arch, x, kind=kind) - k(x))) < 1e-7
    mlp = ConvKernel(d, d, act, kind)   # q = d: the dot-product kernel
    assert np.max(np.abs(iw.kernel(iw.MLP(depth=1, activation=act), x, kind=kind)
                         - mlp(x))) < 1e-7


@pytest.mark.parametrize("window,stride", [(2, 2), (3, 1), (4, 2)])
@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_local_pooling_network_if_available(window, stride, kind):
    Network = getattr(iw, "Network", None)
    if Network is None:
        pytest.skip("no iw.Network in this tree (helper `layers` adds it)")
    from infwidth.architectures import layers as L
    try:
        pool = L.AvgPool(window, stride)
    except TypeError:
        pytest.skip("AvgPool has no stride in this tree")
    d, q = 8, 3
    net = Network(layers=(L.Conv(q, 1, "circular"), L.Activation("relu"), pool, L.Flatten(),
                          L.Dense(W_std=math.sqrt(2.0))))
    x = iw.sample_inputs("hypercube", 5, d, seed=0)
    # VALID pooling windows over the conv's positions; the engine's filter is centred (node j
    # reads x_(j − ⌊(q−1)/2⌋)), so its node j is patch j of the input rolled by ⌊(q−1)/2⌋
    k = ConvKernel(d, q, "relu", kind, pool=window, stride=stride, padding="valid")
    xs = np.roll(x, (q - 1) // 2, axis=1)
    assert np.max(np.abs(iw.kernel(net, x, kind=kind) - k(xs))) < 1e-7


def test_fully_connected_table_and_invariant_eigenvalues():
    d = 12
    fc = conv_spectrum(ConvKernel(d, d, "erf", "ntk"))
    t = fc.table()
    assert int(t.multiplicity.sum()) == sum(math.comb(d, j) for j in t.degree)
    conv = conv_spectrum(ConvKernel(d, 4, "erf", "ntk"))
    gap = conv_spectrum(ConvKernel(d, 4, "erf", "ntk", pool="global"))
    loc = conv_spectrum(ConvKernel(d, 4, "erf", "ntk", pool=3))
    # the invariant mode has λ = κ_|A|·c(A)/d with and without pooling
    kappa = patch_spectrum(4, patch_dual("erf", "ntk"))
    for support, c in (([0], 4), ([0, 1, 2], 2), ([0, 3], 1)):
        lam = kappa[len(support)] * c / d
        for s in (conv, gap, loc):
            assert s.invariant_eigenvalue(support)[0] == pytest.approx(lam, rel=1e-13)
    # pooling removes modes: GAP keeps one per orbit
    assert int(gap.table().multiplicity.sum()) < int(loc.table().multiplicity.sum()) \
        < int(conv.table().multiplicity.sum())


def test_cyclic_target_and_prediction():
    d, q = 12, 4
    t = iw.Target.cyclic("hypercube", d, support=(0, 2))
    f = t.sample(seed=0)
    z = cube_points(d)
    vals = f(z)
    assert np.mean(vals ** 2) == pytest.approx(1.0, abs=1e-12)            # unit power
    assert np.max(np.abs(vals - f(np.roll(z, 5, axis=1)))) < 1e-12        # invariant
    # a periodic support: {0, 6} has 6 distinct translates at d = 12
    tp = iw.Target.cyclic("hypercube", d, support=(0, 6))
    assert np.mean(tp.sample()(z) ** 2) == pytest.approx(1.0, abs=1e-12)
    assert iw.Target.cyclic("hypercube", d, degree=3, span=4).components[0].degrees[:4] == \
        (1, 1, 0, 1)
    ms = [2, 8, 32, 128]
    curves = {}
    for pool in (None, 3, "global"):
        spec = conv_spectrum(ConvKernel(d, q, "relu", "ntk", pool=pool))
        p = iw.predict_learning_curve(spec, t, ms, ridge=1e-8)
        tot = p[p.component == "total"]
        assert abs(float(tot.tail_trace.iloc[0])) < 1e-9     # the spectrum is complete
        curves[pool] = tot.test_mse.to_numpy()
    # (at m = 2 the few-mode GAP kernel overfits: E0 is large; the ordering holds from m = 8)
    assert np.all(curves["global"][1:] <= curves[3][1:] + 1e-12)
    assert np.all(curves[3][1:] <= curves[None][1:] + 1e-12)
    spec = conv_spectrum(ConvKernel(d, q, pool=3))
    with pytest.raises(ValueError, match="not an eigenfunction"):
        iw.predict_learning_curve(spec, iw.Target.from_degrees("hypercube", d, 1, {0: 1}), ms)


def test_bad_arguments():
    with pytest.raises(ValueError, match="filter_size"):
        ConvKernel(4, 5)
    with pytest.raises(ValueError, match="stride"):
        ConvKernel(10, 3, pool=2, stride=3)
    with pytest.raises(ValueError, match="padding"):
        ConvKernel(10, 3, pool=2, padding="same")
    with pytest.raises(ValueError, match="kind"):
        ConvKernel(10, 3, kind="gp")
    with pytest.raises(ValueError, match="method"):
        conv_kernel(ConvKernel(8, 3), np.ones((1, 8)), method="fft")
    with pytest.raises(ValueError, match="x1"):
        conv_kernel(ConvKernel(8, 3), np.ones((1, 7)))
    with pytest.raises(ValueError, match="support"):
        iw.Target.cyclic("hypercube", 8, support=(0, 8))
    with pytest.raises(ValueError, match="cyclic"):
        iw.Target("sphere", 8, 1, [iw.Component({0: 1}, cyclic=True)])
