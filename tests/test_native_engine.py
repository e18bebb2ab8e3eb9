"""The native NNGP/NTK engine against neural-tangents (the oracle), and its own contracts.

neural-tangents carries a ~√ε error per layer on the ReLU diagonal (arccos of a correlation
that rounds to 1); the native self pass is exact there (θ = 0), so the diagonal is compared
with tolerance depth·√ε·|diag|, and off the diagonal to 1e-10 relative.
"""

from __future__ import annotations

import tracemalloc
from functools import lru_cache

import numpy as np
import pytest
from nt_oracle import nt_kernels

import infwidth as iw
from infwidth.architectures.layers import (
    GAP,
    Activation,
    Conv,
    Dense,
    kernel_layers,
)
from infwidth.architectures.myrtle import Myrtle
from infwidth.kernels.native import native_kernels, native_memory_estimate, supports
from infwidth.studies.width_power_law.lenet import LeNet

EPS = np.finfo(np.float64).eps


def _cases():
    for act in ("relu", "erf"):
        yield f"mlp-{act}", iw.MLP(depth=3, activation=act, b_std=0.2), 12
        yield f"scnn-{act}", iw.SCNN(patch_dim=4, activation=act), 16
        yield f"dcnn1d-{act}", iw.DCNN(patch_dim=2, filter_sizes=(2, 2), activation=act,
                                       b_std=0.3), 16
        yield f"dcnn2d-{act}", iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2, activation=act,
                                       channels=2), 32
        for pad in ("circular", "same"):
            for ro in ("flatten", "gap"):
                yield (f"convnet1d-{pad}-{ro}-{act}",
                       iw.ConvNet(depth=2, padding=pad, readout=ro, activation=act, b_std=0.1),
                       8)
                yield (f"convnet2d-{pad}-{ro}-{act}",
                       iw.ConvNet(depth=2, padding=pad, readout=ro, ndim=2, activation=act), 16)
        yield f"myrtle5-1d-{act}", Myrtle(depth=5, ndim=1, activation=act), 16
        yield f"myrtle5-2d-{act}", Myrtle(depth=5, ndim=2, activation=act, b_std=0.1), 64
    yield "lenet-same", LeNet(), 64
    yield "lenet-valid-erf", LeNet(padding="valid", activation="erf", b_std=0.2), 100


CASES = list(_cases())
_ARCH = {name: (arch, dim) for name, arch, dim in CASES}
# "-m jax" selects the JAX backend's tests (benchmarks/device_check.sh runs them on a GPU)
BACKENDS = ["numba", "numpy", pytest.param("jax", marks=pytest.mark.jax)]


def _inputs(dim: int):
    rng = np.random.default_rng(1)
    return rng.standard_normal((4, dim)), rng.standard_normal((3, dim))


@lru_cache(maxsize=None)
def _oracle(name: str):
    """neural-tangents on x1 ‖ x2 of a case (one call gives both blocks), shared by the
    backends."""
    arch, dim = _ARCH[name]
    return nt_kernels(arch, np.concatenate(_inputs(dim)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,arch,dim", CASES, ids=[c[0] for c in CASES])
def test_matches_neural_tangents(name, arch, dim, backend):
    x1, x2 = _inputs(dim)
    depth = sum(isinstance(ly, Activation) for ly in kernel_layers(arch, dim))
    sym = native_kernels(arch, x1, backend=backend)
    cross = native_kernels(arch, x1, x2, backend=backend)
    ref = _oracle(name)
    ref_sym = {k: v[:4, :4] for k, v in ref.items()}
    ref_cross = {k: v[:4, 4:] for k, v in ref.items()}
    off = ~np.eye(4, dtype=bool)
    for kind in ("nngp", "ntk"):
        scale = np.abs(ref_sym[kind]).max()
        np.testing.assert_allclose(sym[kind][off], ref_sym[kind][off], rtol=0,
                                   atol=1e-10 * scale)
        np.testing.assert_allclose(np.diag(sym[kind]), np.diag(ref_sym[kind]),
                                   rtol=depth * np.sqrt(EPS))
        np.testing.assert_allclose(cross[kind], ref_cross[kind], rtol=0,
                                   atol=1e-10 * np.abs(ref_cross[kind]).max())


def test_compiled_asin_acos_to_round_off():
    """The numba kernels' branch-free fdlibm asin/acos against numpy on [−1, 1], the
    branch points ±0.5 and the ends included: a few ulp of π."""
    from infwidth.kernels.native_numba import _asin_acos_array

    c = np.concatenate([np.linspace(-1, 1, 200_001), [-1, -0.5, -0.0, 0.0, 0.5, 1],
                        np.nextafter(0.5, [0, 1]), np.nextafter(-0.5, [0, -1])])
    s, a = _asin_acos_array(c)
    np.testing.assert_allclose(a, np.arccos(c), rtol=0, atol=4 * EPS)
    np.testing.assert_allclose(s, np.arcsin(c), rtol=0, atol=4 * EPS)
    assert a[c == 1].max() == 0.0 and np.all(a[c == -1] == np.pi)


def test_relu_diagonal_exact_closed_form():
    """MLP relu, unit-variance inputs, W² = 2, no bias: k(x, x) = 1 at every layer (NNGP) and
    Θ(x, x) = depth + 1 (NTK), with no √ε error."""
    x = iw.sample_inputs("sphere", 5, 20, seed=0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(20)
    k = native_kernels(iw.MLP(depth=4), x)
    np.testing.assert_allclose(np.diag(k["nngp"]), 1.0, rtol=16 * EPS)
    np.testing.assert_allclose(np.diag(k["ntk"]), 5.0, rtol=16 * EPS)


@pytest.mark.parametrize("arch,dim", [(iw.ConvNet(depth=2, readout="gap", ndim=2), 36),
                                      (iw.DCNN(patch_dim=2, filter_sizes=(2,)), 8),
                                      (Myrtle(depth=5, ndim=1), 16)])
def test_contracts(arch, dim):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, dim))
    both = native_kernels(arch, x)
    for kind in ("nngp", "ntk"):  # one kind alone = the same numbers
        np.testing.assert_array_equal(native_kernels(arch, x, kinds=(kind,))[kind], both[kind])
    same = native_kernels(arch, x, x.copy())
    for kind in ("nngp", "ntk"):
        np.testing.assert_array_equal(both[kind], both[kind].T)  # exactly symmetric
        np.testing.assert_array_equal(same[kind], both[kind])  # x2 == x1 is the Gram
        for t in (1, 3, 7):  # tiles of other sizes
            np.testing.assert_allclose(native_kernels(arch, x, tile=t)[kind], both[kind],
                                       rtol=1e-14, atol=0)
        f32 = native_kernels(arch, x, dtype="float32")[kind]
        assert f32.dtype == np.float32
        np.testing.assert_allclose(f32, both[kind], rtol=2e-5, atol=2e-5 * both[kind].max())
    cross = native_kernels(arch, x[:3], x[3:], threads=2, tile=2)
    for kind in ("nngp", "ntk"):
        np.testing.assert_allclose(cross[kind], both[kind][:3, 3:], rtol=1e-14, atol=0)


@pytest.mark.parametrize("nd", [1, 2])
@pytest.mark.parametrize("padding", ["same", "circular", "valid"])
@pytest.mark.parametrize("q", [2, 3, 4])
def test_first_conv_patches_are_the_taps(nd, padding, q):
    """An overlapping first conv's patches (im2col): position o, tap a holds x[o + a − lo]
    (wrapped when circular, 0 in SAME padding), gathered here one entry at a time."""
    from infwidth.architectures.layers import Flatten, conv_taps
    from infwidth.kernels.native import _prepare, native_plan

    side, ch = (7, 3) if nd == 2 else (9, 2)
    net = iw.Network(layers=(Conv((q,) * nd, 1, padding), Activation("relu"), Flatten(),
                             Dense()), ndim=nd, channels=ch)
    dim = side ** nd * ch
    x = np.random.default_rng(5).standard_normal((3, dim))
    plan = native_plan(net, dim)
    idx = conv_taps(side, q, 1, padding)
    m = idx.shape[0]
    want = np.zeros((3,) + (m,) * nd + (q,) * nd + (ch,))
    img = x.reshape((3,) + (side,) * nd + (ch,))
    for o in np.ndindex(*(m,) * nd):
        for a in np.ndindex(*(q,) * nd):
            src = tuple(idx[oi, ai] for oi, ai in zip(o, a))
            if min(src) >= 0:
                want[(slice(None),) + o + a] = img[(slice(None),) + src]
    for dtype in (np.float64, np.float32):
        got = _prepare(plan, x, dtype)
        assert got.dtype == dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want.reshape(3, m ** nd, -1).astype(dtype))


def test_small_blas_products_run_on_one_thread_and_the_count_comes_back():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from infwidth.kernels.native import _blas_alone

    def blas_threads():
        return [d["num_threads"] for d in threadpoolctl.threadpool_info()
                if d["user_api"] == "blas"]

    before = blas_threads()
    with _blas_alone(2**20):
        with _blas_alone(2**20):  # overlapping calls share one limit
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}  # until the last one leaves
    assert blas_threads() == before
    for work in (0, 2**30):  # no BLAS, or a product worth every thread
        with _blas_alone(work):
            assert blas_threads() == before


def test_jax_backend_matches_numpy():
    arch = Myrtle(depth=5, ndim=1, b_std=0.1)
    x = np.random.default_rng(3).standard_normal((5, 16))
    a, b = native_kernels(arch, x), native_kernels(arch, x, backend="jax", tile=2)
    for kind in ("nngp", "ntk"):
        np.testing.assert_allclose(b[kind], a[kind], rtol=1e-13)


@pytest.mark.parametrize("arch,n,dim", [(iw.ConvNet(depth=2, readout="gap"), 24, 32),
                                        (iw.ConvNet(depth=2, ndim=2, padding="same"), 40, 64),
                                        (iw.MLP(depth=2), 60, 16),
                                        (Myrtle(depth=5, ndim=2), 6, 64)])
def test_memory_estimate_covers_peak(arch, n, dim):
    x = np.random.default_rng(4).standard_normal((n, dim))
    native_kernels(arch, x[:2])
    for x2, t in ((None, None), (x[: n // 2], 3)):
        tracemalloc.start()
        native_kernels(arch, x, x2, tile=t)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        est = native_memory_estimate(arch, n, None if x2 is None else x2.shape[0], dim, tile=t)
        assert est >= peak, (est, peak)


def test_memory_budget_refused_before_work():
    arch = iw.ConvNet(depth=2, readout="gap", ndim=2)
    x = np.zeros((8, 64))
    with pytest.raises(ValueError, match="memory_budget"):
        native_kernels(arch, x, memory_budget=1000)
    k = native_kernels(arch, np.random.default_rng(0).standard_normal((8, 64)),
                       memory_budget="64MB")
    assert k["ntk"].shape == (8, 8)


def test_bad_arguments():
    arch, x = iw.MLP(depth=1), np.ones((3, 4))
    with pytest.raises(ValueError, match="kinds"):
        native_kernels(arch, x, kinds=("nngp", "cntk"))
    with pytest.raises(ValueError, match="kinds"):
        native_kernels(arch, x, kinds=())
    with pytest.raises(ValueError, match="kinds"):  # a repeat is refused, not dropped
        native_kernels(arch, x, kinds=("ntk", "ntk"))
    with pytest.raises(TypeError, match="kinds"):
        native_kernels(arch, x, kinds=None)
    with pytest.raises(ValueError, match="dtype"):
        native_kernels(arch, x, dtype="float16")
    with pytest.raises(ValueError, match="tile"):
        native_kernels(arch, x, tile=0)
    with pytest.raises(TypeError, match="threads"):  # a bool is not an integer
        native_kernels(arch, x, threads=True)
    with pytest.raises(ValueError, match="backend"):
        native_kernels(arch, x, backend="torch")
    with pytest.raises(ValueError, match="x2"):
        native_kernels(arch, x, np.ones((3, 5)))
    with pytest.raises(TypeError, match="kernel_layers"):
        native_kernels(object(), x)
    assert not supports(object(), 4) and supports(arch, 4)


def test_layer_descriptions():
    assert kernel_layers(iw.MLP(depth=1), 4) == (Dense(1.0), Activation("relu"),
                                                 Dense(np.sqrt(2.0)))
    ly = kernel_layers(iw.ConvNet(depth=1, readout="gap", ndim=2, padding="same"), 16)
    assert ly[0] == Conv((3, 3), (1, 1), "same", 1.0, 0.0) and isinstance(ly[2], GAP)
    assert kernel_layers(iw.SCNN(patch_dim=4), 16)[0] == Conv((4,), (4,), "valid")
    with pytest.raises(ValueError, match="stride"):
        Conv((3,), (2,), "same")
    with pytest.raises(ValueError, match="padding"):
        Conv((3,), padding="reflect")
    m = Myrtle(depth=7, ndim=2)
    assert sum(isinstance(v, Conv) for v in m.kernel_layers(256)) == 6
    assert m.dag_for(256).layer_sizes == (256, 256, 256, 64, 64, 16, 16, 1)
    with pytest.raises(ValueError, match="depth"):
        Myrtle(depth=6)
