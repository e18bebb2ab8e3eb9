"""Kernels: neural-tangents against closed forms and an independent recursion, and input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infwidth as iw
from infwidth.kernels import engine as kmod

EPS = np.finfo(np.float64).eps


def _closed_form_mlp(x, depth, activation, kind):
    """Arc-cosine (relu) / arcsine (erf) recursion for an MLP with normalised weights."""
    d = x.shape[1]
    s = x @ x.T / d
    theta = s.copy()
    for _ in range(depth):
        q = np.sqrt(np.outer(np.diag(s), np.diag(s)))
        if activation == "relu":
            c = np.clip(s / q, -1, 1)
            k = q * (np.sqrt(1 - c ** 2) + (np.pi - np.arccos(c)) * c) / np.pi
            kd = (np.pi - np.arccos(c)) / np.pi
        else:
            w2 = np.pi / (2 * np.arcsin(2 / 3))
            a = np.sqrt(np.outer(1 + 2 * np.diag(s), 1 + 2 * np.diag(s)))
            k = w2 * 2 / np.pi * np.arcsin(2 * s / a)
            kd = w2 * 4 / np.pi / np.sqrt(a ** 2 - 4 * s ** 2)
        s, theta = k, k + kd * theta
    return s if kind == "nngp" else theta


def _split_diag(a):
    off = a.copy()
    np.fill_diagonal(off, 0.0)
    return np.diag(a), off


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("kind", ["nngp", "ntk"])
def test_mlp_matches_closed_form(activation, kind):
    depth = 3
    x = iw.sample_inputs("sphere", 12, 20, seed=1)
    k = iw.kernel(iw.MLP(depth=depth, activation=activation), x, kind=kind)
    want = _closed_form_mlp(x, depth, activation, kind)
    kd, ko = _split_diag(k)
    wd, wo = _split_diag(want)
    np.testing.assert_allclose(ko, wo, rtol=0, atol=1e-10)
    # neural-tangents evaluates relu's angle as arctan2(√(q² − s²), s): on the diagonal
    # q² − s² is pure round-off, so θ ~ √ε and h' is off by ~θ/π per layer: relative
    # error ≤ depth·√ε of the diagonal's size.
    exact = activation == "erf" or kind == "nngp"
    tol = 1e-10 if exact else depth * np.sqrt(EPS) * np.abs(wd).max()
    np.testing.assert_allclose(kd, wd, rtol=0, atol=tol)


TREES = [
    iw.DCNN(patch_dim=4, filter_sizes=(2, 2)),
    iw.DCNN(patch_dim=2, filter_sizes=(4,), activation="erf", b_std=0.2),
    iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2),
    iw.SCNN(patch_dim=8),
    iw.ConvNet(filter_size=3, depth=2, readout="flatten"),
    iw.ConvNet(filter_size=3, depth=2, padding="same", readout="flatten", activation="erf"),
]


@pytest.mark.parametrize("arch", TREES, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("domain", ["hypercube", "sphere"])
def test_neural_tangents_matches_tree_recursion(arch, domain):
    x1 = iw.sample_inputs(domain, 9, 64, patch_dim=4, seed=2)
    x2 = iw.sample_inputs(domain, 5, 64, patch_dim=4, seed=3)
    for kind in ("nngp", "ntk"):
        np.testing.assert_allclose(iw.kernel(arch, x1, x2, kind=kind),
                                   iw.kernels.tree_kernel(arch, x1, x2, kind=kind), rtol=0, atol=1e-10)
        kd, ko = _split_diag(iw.kernel(arch, x1, kind=kind))
        td, to = _split_diag(iw.kernels.tree_kernel(arch, x1, kind=kind))
        np.testing.assert_allclose(ko, to, rtol=0, atol=1e-10)
        layers = len(arch.dag_for(64).layer_sizes)
        np.testing.assert_allclose(kd, td, rtol=0, atol=layers * np.sqrt(EPS) * np.abs(td).max())


def test_scnn_is_mean_of_patch_dot_product_kernels():
    n0, x = 8, iw.sample_inputs("sphere", 7, 32, patch_dim=8, seed=4)
    k = iw.kernel(iw.SCNN(patch_dim=n0), x, kind="nngp")
    mlp = iw.MLP(depth=1)
    want = np.mean([iw.kernel(mlp, x[:, i:i + n0], kind="nngp") for i in range(0, 32, n0)], 0)
    np.testing.assert_allclose(k, want, rtol=0, atol=1e-12)


def test_gap_convnet_matches_monte_carlo():
    """Empirical NNGP over random finite nets vs the analytic GAP kernel, within 4 SE."""
    arch = iw.ConvNet(filter_size=3, depth=2, readout="gap", width=256, out_dim=8)
    x = iw.sample_inputs("sphere", 3, 8, seed=5)
    init, apply, _ = arch.stax
    xs = jnp.asarray(x.reshape(3, 8, 1))

    def sample(key):
        _, p = init(key, xs.shape)
        f = apply(p, xs)  # (3, out_dim): out_dim independent draws of the GP
        return jnp.einsum("ia,ja->aij", f, f)

    draws = jax.vmap(sample)(jax.random.split(jax.random.PRNGKey(0), 64)).reshape(-1, 3, 3)
    mean = np.asarray(draws.mean(0))
    se = np.asarray(draws.std(0)) / np.sqrt(draws.shape[0])
    exact = iw.kernel(arch, x, kind="nngp")
    assert np.all(np.abs(mean - exact) <= 4 * se), (mean, exact, se)


def test_symmetric_call_computes_each_block_once(monkeypatch):
    arch = iw.SCNN(patch_dim=4)
    x = iw.sample_inputs("hypercube", 10, 16, seed=6)
    full = iw.kernel(arch, x, kind="ntk")
    calls = []
    real = kmod._jitted(arch, "ntk")
    monkeypatch.setattr(kmod, "_jitted", lambda a, k: lambda u, v: calls.append(1) or real(u, v))
    blocked = iw.kernel(arch, x, kind="ntk", batch_size=3)
    assert len(calls) == 4 * 5 // 2  # 4 row blocks: upper triangle only
    np.testing.assert_allclose(blocked, full, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(blocked, blocked.T)


def test_float32_is_close_to_float64():
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2,))
    x = iw.sample_inputs("sphere", 6, 32, patch_dim=4, seed=7)
    k64 = iw.kernel(arch, x)
    k32 = iw.kernel(arch, x, dtype="float32")
    assert k32.dtype == np.float32
    np.testing.assert_allclose(k32, k64, rtol=0, atol=1e-3)  # √ε32-level on the diagonal


def test_memory_estimate_scales_quadratically_in_space_for_gap():
    gap = iw.ConvNet(readout="gap")
    flat = iw.ConvNet(readout="flatten")
    r = iw.kernels.estimate_block_memory(gap, 4, 4, 64) / iw.kernels.estimate_block_memory(gap, 4, 4, 32)
    assert r == 4.0
    r = iw.kernels.estimate_block_memory(flat, 4, 4, 64) / iw.kernels.estimate_block_memory(flat, 4, 4, 32)
    assert r == 2.0


# ----------------------------------------------------------------------------- bad input
@pytest.fixture
def no_heavy_work(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("heavy work started before validation")
    monkeypatch.setattr(kmod, "_jitted", boom)


X = iw.sample_inputs("hypercube", 4, 32, seed=0)


@pytest.mark.parametrize("call, err, msg", [
    (lambda: iw.kernel(iw.DCNN(patch_dim=4, filter_sizes=(3,)), X), ValueError,
     "dim=32 does not fit the topology"),
    (lambda: iw.kernel(iw.SCNN(patch_dim=4), np.where(X > 0, np.nan, X)), ValueError,
     "x1 contains NaN or inf"),
    (lambda: iw.kernel(iw.SCNN(patch_dim=4), X, np.full((2, 32), np.inf)), ValueError,
     "x2 contains NaN or inf"),
    (lambda: iw.kernel(iw.SCNN(patch_dim=4), X[0]), ValueError, "x1 must have 2 dimensions"),
    (lambda: iw.kernel(iw.SCNN(patch_dim=4), X, X[:, :16]), ValueError,
     "x2 has 16 coordinates per example, expected 32"),
    (lambda: iw.kernel(iw.SCNN(patch_dim=4), X, kind="gp"), ValueError, "kind must be one of"),
    (lambda: iw.kernel(iw.ConvNet(readout="gap"), X, memory_budget="1KB"), ValueError,
     "memory_budget=.* cannot be met"),
    (lambda: iw.kernel(iw.ConvNet(readout="gap"), X, batch_size=4, memory_budget="300KiB"),
     ValueError, "batch_size=4 needs about"),
    (lambda: iw.kernel(iw.SCNN(patch_dim=4), X, memory_budget=-1), ValueError,
     "memory_budget must be positive"),
    (lambda: iw.kernel("mlp", X), TypeError, "arch must be an infwidth architecture"),
    (lambda: iw.kernel(iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2), X), ValueError,
     "not a square"),
])
def test_bad_kernel_input_is_refused_before_work(no_heavy_work, call, err, msg):
    with pytest.raises(err, match=msg):
        call()


@pytest.mark.parametrize("make, err, msg", [
    (lambda: iw.MLP(activation="tanh"), ValueError, "activation must be one of"),
    (lambda: iw.ConvNet(readout="max"), ValueError, "readout must be one of"),
    (lambda: iw.ConvNet(padding="valid"), ValueError, "padding must be one of"),
    (lambda: iw.MLP(width=0), ValueError, "width must be a positive integer"),
    (lambda: iw.SCNN(patch_dim=-3), ValueError, "patch_dim must be a positive integer"),
    (lambda: iw.DCNN(filter_sizes=(2, 0)), ValueError, "filter_sizes must be a positive"),
    (lambda: iw.ConvNet(filter_size=0), ValueError, "filter_size must be a positive"),
    (lambda: iw.MLP(depth=2.5), TypeError, "depth must be a positive integer"),
    (lambda: iw.MLP(W_std=-1.0), ValueError, "W_std must be a positive"),
    (lambda: iw.DCNN(ndim=3), ValueError, "ndim must be 1"),
])
def test_bad_architecture_is_refused(make, err, msg):
    with pytest.raises(err, match=msg):
        make()


def test_input_shape_and_dag():
    a = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    assert a.input_shape(64) == (64, 1)
    dag = a.dag_for(64)
    assert dag.layer_sizes == (16, 8, 4, 1) and dag.is_tree and dag.patch_dim == 4
    assert dag.fan_in[0] == (2,) * 8 and dag.fan_in[-1] == (4,)
    img = iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2, channels=3)
    assert img.input_shape(8 * 8 * 3) == (8, 8, 3)
    assert img.dag_for(8 * 8 * 3).layer_sizes == (16, 4, 1)
    conv = iw.ConvNet(filter_size=3, depth=2).dag_for(8)
    assert not conv.is_tree and conv.children[0][0] == (0, 1, 7)
    assert iw.MLP().dag_for(10).layer_sizes == (1, 1)
