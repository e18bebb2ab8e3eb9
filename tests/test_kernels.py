"""Kernels: neural-tangents against closed forms and an independent recursion, and input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infwidth as iw
from infwidth.architectures.activations import dual, dual_derivative, gaussian_dual
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
                                   iw.kernels.tree_kernel(arch, x1, x2, kind=kind),
                                   rtol=0, atol=1e-10)
        kd, ko = _split_diag(iw.kernel(arch, x1, kind=kind))
        td, to = _split_diag(iw.kernels.tree_kernel(arch, x1, kind=kind))
        np.testing.assert_allclose(ko, to, rtol=0, atol=1e-10)
        layers = len(arch.dag_for(64).layer_sizes)
        np.testing.assert_allclose(kd, td, rtol=0, atol=layers * np.sqrt(EPS) * np.abs(td).max())


# ----------------------------------------------------------------- the one Gaussian dual
def test_normalised_duals_closed_forms():
    """h(1) = 1, h(0) = 1/π, h(−1) = 0, h'(t) = (π − arccos t)/π (relu); arcsin(2t/3)/arcsin(2/3)
    and its derivative (erf). |t| ≤ 0.9 keeps the arccos/arcsin forms well conditioned
    (|d/dt| ≤ 1/√(1 − 0.81) < 2.3), so both sides are a few ulps from the truth: 16ε."""
    t = np.linspace(-0.9, 0.9, 181)
    assert (dual("relu", 1.0), dual("relu", -1.0), dual("erf", 1.0)) == (1.0, 0.0, 1.0)
    assert (dual_derivative("relu", 1.0), dual_derivative("relu", 0.0)) == (1.0, 0.5)
    assert dual("relu", 0.0) == pytest.approx(1 / np.pi, rel=4 * EPS)
    relu = (np.sqrt(1 - t * t) + (np.pi - np.arccos(t)) * t) / np.pi
    np.testing.assert_allclose(dual("relu", t), relu, rtol=0, atol=16 * EPS)
    np.testing.assert_allclose(dual_derivative("relu", t), 1 - np.arccos(t) / np.pi,
                               rtol=0, atol=16 * EPS)
    a = np.arcsin(2 / 3)
    np.testing.assert_allclose(dual("erf", t), np.arcsin(2 * t / 3) / a, rtol=0, atol=16 * EPS)
    np.testing.assert_allclose(dual_derivative("erf", t), 2 / 3 / (a * np.sqrt(1 - 4 * t * t / 9)),
                               rtol=16 * EPS)


@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_gaussian_dual_closed_forms_and_derivative(activation):
    """General covariance: the textbook arc-cosine / arcsine forms (|t| ≤ 0.9, 64ε: relu's K
    loses ~15× to cancellation at t = −0.9), the correlation form, numpy = jitted jax.numpy,
    and K̇ = ∂K/∂s (Price's theorem) by central differences of step η = 1e-5·r: truncation
    η²·max|∂³K/∂s³|/6 ≤ η²·12/r²/6 and rounding 4ε·|K|/η, both under 1e-9."""
    rng = np.random.default_rng(0)
    q1, q2 = rng.uniform(0.2, 3.0, 200), rng.uniform(0.2, 3.0, 200)
    r, t = np.sqrt(q1 * q2), rng.uniform(-0.9, 0.9, 200)
    s = r * t
    k, kd = gaussian_dual(activation, q1, q2, s)
    if activation == "relu":
        th = np.arccos(s / r)
        want = r * (np.sin(th) + (np.pi - th) * t) / (2 * np.pi), (np.pi - th) / (2 * np.pi)
    else:
        a2 = (1 + 2 * q1) * (1 + 2 * q2)
        want = 2 / np.pi * np.arcsin(2 * s / np.sqrt(a2)), 4 / np.pi / np.sqrt(a2 - 4 * s * s)
    for got, w in zip((k, kd), want):
        np.testing.assert_allclose(got, w, rtol=0, atol=64 * EPS * np.abs(w).max())
    for got, w in zip(gaussian_dual(activation, q1, q2, t=t), (k, kd)):
        np.testing.assert_allclose(got, w, rtol=0, atol=8 * EPS * np.abs(w).max())
    jitted = jax.jit(lambda a, b, c: gaussian_dual(activation, a, b, c, xp=jnp))(q1, q2, s)
    for got, w in zip(jitted, (k, kd)):
        np.testing.assert_allclose(np.asarray(got), w, rtol=0, atol=8 * EPS * np.abs(w).max())
    eta = 1e-5 * r
    fd = (gaussian_dual(activation, q1, q2, s + eta)[0]
          - gaussian_dual(activation, q1, q2, s - eta)[0]) / (2 * eta)
    np.testing.assert_allclose(fd, kd, rtol=0, atol=1e-9)
    with pytest.raises(TypeError, match="exactly one of s"):
        gaussian_dual(activation, 1.0, 1.0)


@pytest.mark.parametrize("xp", [np, jnp], ids=["numpy", "jax"])
def test_relu_dual_is_stable_at_correlation_one(xp):
    """At correlation 1 − 2^−k (k = 1…52) the atan2 form keeps full precision: K and K̇ within
    8ε of an independent extended-precision value (θ = 2·arcsin√((r − s)/(2r)) in long double,
    r − s exact), where arccos of a rounded correlation, or √(1 − t²), is ~√ε ≈ 1.5e-8 off;
    and exact on the diagonal. Equal and unequal variances, numpy and jitted jax.numpy."""
    ld = np.longdouble
    assert np.finfo(ld).eps < 1e-18  # x86 80-bit extended or quad
    fn = (lambda a, b, c: gaussian_dual("relu", a, b, c)) if xp is np else jax.jit(
        lambda a, b, c: gaussian_dual("relu", a, b, c, xp=jnp))
    for q1, q2 in ((1.0, 1.0), (3.0, 3.0), (2.0, 0.5), (0.1, 0.1)):
        r = float(np.sqrt(q1 * q2))  # exactly √(q1·q2) for these pairs
        s = r * (1.0 - 2.0 ** -np.arange(1, 53))  # rounded, but s ≤ r: used as they are
        k, kd = (np.asarray(v) for v in fn(np.full_like(s, q1), np.full_like(s, q2), s))
        rl, sl = ld(r), s.astype(ld)
        theta = 2 * np.arcsin(np.sqrt((rl - sl) / (2 * rl)))
        kd_ref = (ld(np.pi) - theta) / (2 * ld(np.pi))
        k_ref = (np.sqrt((rl - sl) * (rl + sl)) + (ld(np.pi) - theta) * sl) / (2 * ld(np.pi))
        np.testing.assert_allclose(kd, kd_ref.astype(float), rtol=8 * EPS)
        np.testing.assert_allclose(k, k_ref.astype(float), rtol=8 * EPS)
        k1, kd1 = (float(v) for v in fn(np.array(q1), np.array(q2), np.array(r)))
        assert (k1, kd1) == (r / 2, 0.5)


# ------------------------------------------------------- both kinds of one call (kernel_pair)
# (the engine against neural-tangents, every architecture: tests/test_native_engine.py)
def test_kernel_pair_diagonal_is_exact():
    """relu MLP, b = 0: Σ(x, x) = ‖x‖²/d at every layer and Θ(x, x) = (depth + 1)·‖x‖²/d,
    whatever the tile."""
    x = np.random.default_rng(2).standard_normal((20, 37)) * np.linspace(0.5, 2, 20)[:, None]
    q = (x * x).sum(1) / 37
    for tile in (None, 8):
        both = iw.kernel(iw.MLP(depth=4), x, kind=("nngp", "ntk"), tile=tile)
        np.testing.assert_allclose(np.diag(both["nngp"]), q, rtol=16 * EPS)
        np.testing.assert_allclose(np.diag(both["ntk"]), 5 * q, rtol=16 * EPS)


def test_tiling_does_not_change_the_bits():
    arch = iw.DCNN(patch_dim=2, filter_sizes=(2,))
    x = np.random.default_rng(1).standard_normal((21, 8))
    full = iw.kernels.kernel_pair(arch, x)
    small = iw.kernel(arch, x, kind=("nngp", "ntk"), tile=4)
    for a, kind in zip(full, ("nngp", "ntk")):
        np.testing.assert_array_equal(a, small[kind])


def test_kernel_pair_and_refusals():
    x = iw.sample_inputs("sphere", 4, 8, seed=3)
    gap = iw.ConvNet(filter_size=3, depth=1, readout="gap")
    for arch in (gap, iw.DCNN(patch_dim=2, filter_sizes=(2, 2))):
        k, t = iw.kernels.kernel_pair(arch, x)
        np.testing.assert_array_equal(k, iw.kernel(arch, x, kind="nngp"))
        np.testing.assert_array_equal(t, iw.kernel(arch, x, kind="ntk"))
    with pytest.raises(ValueError, match="Flatten readouts only"):
        iw.kernels.tree_kernel(gap, x)


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
    nt = "neural-tangents"  # the blocked neural-tangents path (the native one has its own test)
    full = iw.kernel(arch, x, kind="ntk", engine=nt)
    calls = []
    real = kmod._jitted(arch, "ntk")
    monkeypatch.setattr(kmod, "_jitted", lambda a, k: lambda u, v: calls.append(1) or real(u, v))
    blocked = iw.kernel(arch, x, kind="ntk", tile=3, engine=nt)
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
    est = iw.kernels.estimate_block_memory
    r = est(gap, 4, 4, 64) / est(gap, 4, 4, 32)
    assert r == 4.0
    r = est(flat, 4, 4, 64) / est(flat, 4, 4, 32)
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
    (lambda: iw.kernel(iw.ConvNet(readout="gap"), X, memory_budget="1KB",
                       engine="neural-tangents"), ValueError, "memory_budget=.* cannot be met"),
    (lambda: iw.kernel(iw.ConvNet(readout="gap"), X, tile=4, memory_budget="300KiB",
                       engine="neural-tangents"), ValueError, "tile=4 needs about"),
    (lambda: iw.kernel(iw.ConvNet(readout="gap"), X, memory_budget="1KB"), ValueError,
     "memory_budget"),
    (lambda: iw.kernel(iw.SCNN(patch_dim=4), X, engine="jax"), ValueError, "engine must be"),
    (lambda: iw.kernel(iw.SCNN(patch_dim=4), X, memory_budget=-1), ValueError,
     "memory_budget must be positive"),
    (lambda: iw.kernel("mlp", X), TypeError, "arch must be an infwidth architecture"),
    (lambda: iw.kernel(iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2), X), ValueError,
     "not a square"),
])
def test_bad_kernel_input_is_refused_before_work(no_heavy_work, call, err, msg):
    with pytest.raises(err, match=msg):
        call()


def test_tile_is_the_one_name_of_the_tile_side_and_batch_size_a_deprecated_alias():
    arch, x = iw.MLP(depth=2), iw.sample_inputs("hypercube", n=9, dim=8, seed=3)
    want = iw.kernel(arch, x, kind=("nngp", "ntk"), tile=4)
    with pytest.warns(DeprecationWarning, match="tile"):
        old = iw.kernel(arch, x, kind=("nngp", "ntk"), batch_size=4)
    for k in want:
        np.testing.assert_array_equal(old[k], want[k])
    with pytest.raises(TypeError, match="batch_size"), pytest.warns(DeprecationWarning):
        iw.kernel(arch, x, tile=4, batch_size=4)


def test_backend_reaches_the_native_engine(monkeypatch):
    from infwidth.kernels import native

    arch, x = iw.SCNN(patch_dim=4), iw.sample_inputs("hypercube", n=5, dim=16, seed=1)
    got = iw.kernel(arch, x, kind=("nngp", "ntk"), backend="numpy")
    want = native.native_kernels(arch, x, backend="numpy")
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    seen = []
    real = native.native_kernels
    monkeypatch.setattr(native, "native_kernels",
                        lambda *a, **kw: seen.append(kw["backend"]) or real(*a, **kw))
    iw.kernel(arch, x, backend="numpy")
    assert seen == ["numpy"]
    with pytest.raises(ValueError, match="backend"):
        iw.kernel(arch, x, backend="torch")
    with pytest.raises(ValueError, match="backend"):
        iw.kernel(arch, x, backend="numpy", engine="neural-tangents")


@pytest.mark.parametrize("backend", ["numpy", "numba", pytest.param("jax", marks=pytest.mark.jax)])
def test_progress_is_honoured_on_the_native_path(capsys, backend):
    arch, x = iw.MLP(depth=1), iw.sample_inputs("hypercube", n=8, dim=4, seed=0)
    iw.kernel(arch, x, tile=2, progress=True, backend=backend)  # 10 tiles
    assert "kernel tiles" in capsys.readouterr().err
    iw.kernel(arch, x, tile=2, progress=False, backend=backend)
    assert "kernel tiles" not in capsys.readouterr().err


@pytest.mark.parametrize("make, err, msg", [
    (lambda: iw.MLP(activation="tanh"), ValueError, "activation must be one of"),
    (lambda: iw.ConvNet(readout="max"), ValueError, "readout must be one of"),
    (lambda: iw.ConvNet(padding="valid"), ValueError, "padding must be one of"),
    (lambda: iw.MLP(width=0), ValueError, "width must be a positive integer"),
    (lambda: iw.SCNN(patch_dim=-3), ValueError, "patch_dim must be a positive integer"),
    (lambda: iw.DCNN(filter_sizes=(2, 0)), ValueError, "filter_sizes must be a positive"),
    (lambda: iw.ConvNet(filter_size=0), ValueError, "filter_size must be a positive"),
    (lambda: iw.MLP(depth=2.5), TypeError, "depth must be a positive integer"),
    (lambda: iw.MLP(W_std=-1.0), ValueError, r"W_std must be a finite number in \(0"),
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
