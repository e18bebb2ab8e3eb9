"""The neural-tangents compatibility layer: every adapted path works on the installed JAX/SciPy.

Imports only :mod:`infwidth._nt_compat` from infwidth. Each repair in the layer has a test
here that fails without it (see docs/nt_compat_notes.md).
"""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from infwidth._nt_compat import empirical_ntk_fn, load

jax.config.update("jax_enable_x64", True)

nt, stax = load()


def _net():
    return stax.serial(stax.Conv(16, (3,), padding="CIRCULAR"), stax.Relu(),
                       stax.Conv(16, (3,), padding="CIRCULAR"), stax.Erf(),
                       stax.GlobalAvgPool(), stax.Dense(2))


def _x(n=6, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, 8, 1))


def _dropout_net(width=1):
    return stax.serial(stax.Dense(width), stax.Erf(), stax.Dropout(0.5, mode="train"),
                       stax.Dense(1))


def _coincident_inputs():
    """Distinct arrays x1 (8 rows), x2 (2 rows) whose values coincide: x2 == x1[:2]."""
    key = jax.random.PRNGKey(3)
    x1, x2 = jax.random.normal(key, (8, 4)), jax.random.normal(key, (2, 4))
    assert x2 is not x1 and bool(jnp.array_equal(x2, x1[:2]))
    return x1, x2


# --- acceptance: a fresh interpreter, no TensorFlow ---------------------------------------

_ACCEPTANCE = textwrap.dedent("""
    import sys
    import jax, jax.numpy as jnp
    from infwidth._nt_compat import empirical_ntk_fn, load
    jax.config.update("jax_enable_x64", True)
    nt, stax = load()
    init, apply, kfn = stax.serial(stax.Dense(8), stax.Relu(), stax.Dense(1))
    x = jax.random.normal(jax.random.PRNGKey(0), (8, 3))
    k = kfn(x, None, ("nngp", "ntk"))
    kb = nt.batch(kfn, batch_size=4)(x, None, ("nngp", "ntk"))
    assert jnp.allclose(k.ntk, kb.ntk, atol=1e-7)
    y = jnp.sin(x[:6, :1])
    def mean(k):
        return nt.predict.gradient_descent_mse(k[:6, :6], y)(None, 0., 0., k[6:, :6])[1]
    assert jnp.allclose(jax.jit(mean)(k.ntk), mean(k.ntk))
    assert float(nt.predict.max_learning_rate(k.ntk[:6, :6])) > 0
    _, params = init(jax.random.PRNGKey(1), x.shape)
    ntks = [empirical_ntk_fn(apply, impl)(x, None, params)
            for impl in ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS")]
    assert jnp.allclose(ntks[0], ntks[1])
    assert "tensorflow" not in sys.modules, "TensorFlow was imported"
    print("ok")
""")


def test_acceptance_in_fresh_interpreter_without_tensorflow():
    out = subprocess.run([sys.executable, "-c", _ACCEPTANCE], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ok"


# --- analytic kernels and nt.batch --------------------------------------------------------

def test_analytic_kernel_matches_dense_closed_form():
    _, _, kfn = stax.serial(stax.Dense(1, W_std=1.0), stax.Relu(), stax.Dense(1, W_std=2 ** 0.5))
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (5, 7)))
    k = np.asarray(kfn(x, None, "nngp"))
    s = x @ x.T / 7
    n = np.sqrt(np.outer(np.diag(s), np.diag(s)))
    c = np.clip(s / n, -1, 1)
    want = n * (np.sqrt(1 - c ** 2) + (np.pi - np.arccos(c)) * c) / np.pi
    np.testing.assert_allclose(k, want, rtol=0, atol=1e-12)


def test_batch_matches_unbatched():
    _, _, kfn = _net()
    x = _x(6)
    full = kfn(x, None, ("nngp", "ntk"))
    batched = nt.batch(kfn, batch_size=2)(x, None, ("nngp", "ntk"))
    # Off the diagonal, blocks change XLA's summation order only: a few ulps. On the
    # diagonal relu's angle is arctan2(√(round-off), s), so θ and h' carry √ε-sized noise.
    eps, scale = np.finfo(np.float64).eps, float(jnp.max(jnp.abs(full.ntk)))
    off = ~np.eye(6, dtype=bool)
    for a, b in ((batched.ntk, full.ntk), (batched.nngp, full.nngp)):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(a[off], b[off], rtol=0, atol=64 * eps * scale)
        np.testing.assert_allclose(np.diag(a), np.diag(b), rtol=0, atol=2 * np.sqrt(eps) * scale)


def test_batch_x1_is_x2_follows_the_caller_not_coinciding_values():
    x1, x2 = _coincident_inputs()
    _, _, kfn = _dropout_net()
    batched = nt.batch(kfn, batch_size=2)
    full, out = kfn(x1, x2), batched(x1, x2)
    assert not bool(full.x1_is_x2) and not bool(out.x1_is_x2)
    # Dropout multiplies the diagonal by 1/rate exactly when x1 is x2; block (0, 0) has
    # x1[:2] == x2 by value and must still be treated as distinct inputs.
    np.testing.assert_allclose(out.nngp, full.nngp, rtol=0, atol=1e-14)
    np.testing.assert_allclose(out.ntk, full.ntk, rtol=0, atol=1e-14)
    assert bool(batched(x1, None).x1_is_x2) and bool(batched(x1, x1).x1_is_x2)


_TWO_DEVICES = textwrap.dedent("""
    import os
    os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    import jax, jax.numpy as jnp
    from infwidth._nt_compat import load
    jax.config.update("jax_enable_x64", True)
    nt, stax = load()
    assert jax.local_device_count() == 2
    key = jax.random.PRNGKey(3)
    x1, x2 = jax.random.normal(key, (8, 4)), jax.random.normal(key, (2, 4))
    _, _, plain = stax.serial(stax.Dense(1), stax.Erf(), stax.Dense(1))
    _, _, dropout = stax.serial(stax.Dense(1), stax.Erf(), stax.Dropout(0.5, mode="train"),
                                stax.Dense(1))
    # With batch_size=0, nt.batch splits x1's rows over the devices: each shard differs from
    # x2 = x1 in shape, yet the caller passed x2 = None.
    assert bool(nt.batch(plain, batch_size=0)(x1, None).x1_is_x2)
    out, full = nt.batch(dropout, batch_size=2)(x1, x2), dropout(x1, x2)
    assert not bool(out.x1_is_x2)
    assert float(jnp.max(jnp.abs(out.nngp - full.nngp))) < 1e-14
    print("ok")
""")


def test_batch_on_two_devices_flag_follows_the_caller():
    out = subprocess.run([sys.executable, "-c", _TWO_DEVICES], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "ok"


@pytest.mark.parametrize("x2_arg", ["none", "same_object"])
def test_batch_repeated_blocks_are_not_the_diagonal(x2_arg):
    a = jax.random.normal(jax.random.PRNGKey(5), (4, 4))
    x = jnp.concatenate([a, a])  # off-diagonal blocks equal diagonal ones by value
    _, _, kfn = _dropout_net()
    full = kfn(x, None)
    out = nt.batch(kfn, batch_size=4)(x, None if x2_arg == "none" else x)
    assert bool(out.x1_is_x2)
    np.testing.assert_allclose(out.nngp, full.nngp, rtol=0, atol=1e-14)
    np.testing.assert_allclose(out.ntk, full.ntk, rtol=0, atol=1e-14)


def test_batch_kernel_input_slices_keep_the_diagonal_only():
    a = jax.random.normal(jax.random.PRNGKey(5), (4, 4))
    _, _, k_in_fn = stax.serial(stax.Dense(1), stax.Erf())
    _, _, k_fn = stax.serial(stax.Dropout(0.5, mode="train"), stax.Dense(1))
    k_in = k_in_fn(jnp.concatenate([a, a]), None)
    want, got = k_fn(k_in), nt.batch(k_fn, batch_size=2)(k_in)
    np.testing.assert_allclose(got.nngp, want.nngp, rtol=0, atol=1e-14)
    np.testing.assert_allclose(got.ntk, want.ntk, rtol=0, atol=1e-14)


@pytest.mark.filterwarnings("ignore:The value of `key")
def test_batch_dropout_keys_do_not_depend_on_coinciding_values():
    # Empirical kernels draw the dropout key of x2 as that of x1 only when x1 is x2. Moving
    # x2 by 1e-9 (far above neural-tangents' 1e-12 equality threshold) changes no decision,
    # so the kernels agree to O(1e-9), with or without the exact coincidence.
    x1, x2 = _coincident_inputs()
    init, apply, _ = _dropout_net(width=64)
    _, params = init(jax.random.PRNGKey(1), x1.shape)
    rng = jax.random.PRNGKey(7)
    emp = nt.batch(nt.empirical_kernel_fn(apply), batch_size=2)
    np.testing.assert_allclose(emp(x1, x2, "nngp", params, rng=rng),
                               emp(x1, x2 + 1e-9, "nngp", params, rng=rng), rtol=0, atol=1e-7)
    mc = nt.monte_carlo_kernel_fn(init, apply, jax.random.PRNGKey(2), 2, batch_size=2)
    np.testing.assert_allclose(mc(x1, x2, "nngp"), mc(x1, x2 + 1e-9, "nngp"), rtol=0, atol=1e-7)


# --- nt.predict ---------------------------------------------------------------------------

def _regression_problem():
    """An 8-point NTK (6 train, 2 test), targets y (6, 2) and initial outputs."""
    _, _, kfn = stax.serial(stax.Dense(1), stax.Erf(), stax.Dense(1))
    x = jax.random.normal(jax.random.PRNGKey(4), (8, 3))
    k = kfn(x, None, "ntk")
    y = jnp.stack([jnp.sin(x[:6, 0]), jnp.cos(x[:6, 1])], axis=1)
    f0 = 0.1 * jax.random.normal(jax.random.PRNGKey(6), (8, 2))
    return k, y, f0[:6], f0[6:]


def _gd_closed_form(k, y, f0_train, f0_test, t):
    """Function-space gradient flow on ½‖f − y‖²/N, N = y.size (neural-tangents' scaling)."""
    k, y, f0_train, f0_test = map(np.asarray, (k, y, f0_train, f0_test))
    k_dd, k_td = k[:6, :6], k[6:, :6]
    if t is None:
        return y, f0_test + k_td @ np.linalg.solve(k_dd, y - f0_train)
    decay = scipy.linalg.expm(-k_dd * t / y.size)
    train = y + decay @ (f0_train - y)
    return train, f0_test + k_td @ np.linalg.solve(k_dd, (decay - np.eye(6)) @ (f0_train - y))


def _gd_predict(k, y, f0_train, f0_test, t, diag_reg=0.0):
    predict = nt.predict.gradient_descent_mse(k[:6, :6], y, diag_reg=diag_reg,
                                              diag_reg_absolute_scale=True)
    return predict(t, f0_train, f0_test, k[6:, :6])


@pytest.mark.parametrize("t", [None, 30.0], ids=["t_inf", "t_finite"])
def test_gradient_descent_mse_under_jit_matches_eager_and_closed_form(t):
    k, y, f0_train, f0_test = _regression_problem()
    eager = _gd_predict(k, y, f0_train, f0_test, t)
    jitted = jax.jit(lambda k: _gd_predict(k, y, f0_train, f0_test, t))(k)
    want = _gd_closed_form(k, y, f0_train, f0_test, t)
    for e, j, w in zip(eager, jitted, want):
        np.testing.assert_allclose(j, e, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(j, w, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("traced", ["kernel", "diag_reg"])
@pytest.mark.parametrize("t", [None, 30.0], ids=["t_inf", "t_finite"])
def test_gradient_descent_mse_under_grad_matches_closed_form(t, traced):
    # d/da of the prediction for the train kernel K + a·I, at a = 0.1:
    #   t = ∞, test outputs:        −K_td (K + aI)⁻² (y − f0)
    #   t finite, train outputs:    −(t/N) exp(−(K + aI) t/N) (f0 − y),   N = y.size
    k, y, f0_train, f0_test = _regression_problem()
    a = 0.1

    def output(a):
        if traced == "kernel":
            out = _gd_predict(k + a * jnp.eye(8), y, f0_train, f0_test, t)
        else:
            out = _gd_predict(k, y, f0_train, f0_test, t, diag_reg=a)
        return out[1] if t is None else out[0]

    got = jax.jit(jax.jacfwd(output))(a)
    k_dd, k_td = np.asarray(k[:6, :6]) + a * np.eye(6), np.asarray(k[6:, :6])
    r = np.asarray(y - f0_train)
    if t is None:
        want = -k_td @ np.linalg.solve(k_dd, np.linalg.solve(k_dd, r))
    else:
        want = (t / y.size) * scipy.linalg.expm(-k_dd * t / y.size) @ r
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    grad = jax.grad(lambda a: jnp.sum(output(a)))(a)
    np.testing.assert_allclose(grad, want.sum(), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("t", [None, 30.0], ids=["t_inf", "t_finite"])
def test_gradient_descent_mse_concrete_kernel_cache_outlives_jit(t):
    # With a concrete kernel the cached factorisation must stay concrete even when the
    # predictor is first called under jit; a traced cache would leak into later calls.
    k, y, f0_train, f0_test = _regression_problem()
    predict = nt.predict.gradient_descent_mse(k[:6, :6], y)
    first = jax.jit(lambda f0: predict(t, f0, f0_test, k[6:, :6]))(f0_train)
    again = predict(t, f0_train, f0_test, k[6:, :6])
    want = _gd_closed_form(k, y, f0_train, f0_test, t)
    for a, b, w in zip(first, again, want):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(b, w, rtol=1e-8, atol=1e-10)


def test_predict_infinite_time_is_kernel_regression():
    _, _, kfn = _net()
    x = _x(8)
    y = jnp.sin(jnp.arange(6.0))[:, None] * jnp.ones((6, 2))
    k = kfn(x, None, "ntk")
    pred = nt.predict.gradient_descent_mse_ensemble(kfn, x[:6], y, diag_reg=0.0)
    mean = pred(x_test=x[6:], get="ntk")
    want = k[6:, :6] @ jnp.linalg.solve(k[:6, :6], y)
    np.testing.assert_allclose(mean, want, rtol=1e-8, atol=1e-10)


def test_max_learning_rate_is_closed_form_on_current_scipy():
    # lr = 2 (1 + momentum) · size / (λ_max(K) + eps), size = y_train_size or K's row count.
    k, *_ = _regression_problem()
    k = np.asarray(k[:6, :6])  # a NumPy array takes neural-tangents' SciPy (CPU) path
    lam = np.linalg.eigvalsh(k)[-1]
    np.testing.assert_allclose(nt.predict.max_learning_rate(k), 2 * 6 / (lam + 1e-12),
                               rtol=1e-12)
    np.testing.assert_allclose(nt.predict.max_learning_rate(k, y_train_size=12, momentum=0.5),
                               2 * 1.5 * 12 / (lam + 1e-12), rtol=1e-12)


# --- empirical NTK ------------------------------------------------------------------------

def _explicit_ntk(apply, params, x):
    jac = jax.jacobian(lambda p: apply(p, x))(params)
    leaves = jax.tree_util.tree_leaves(jac)
    flat = jnp.concatenate([j.reshape(x.shape[0], 2, -1) for j in leaves], axis=-1)
    return jnp.einsum("iap,jap->ij", flat, flat) / 2  # trace over the 2 logits, averaged


@pytest.mark.parametrize("impl", ["AUTO", "JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS"])
def test_empirical_ntk_matches_explicit_jacobians(impl):
    init, apply, _ = _net()
    x = _x(4)
    _, params = init(jax.random.PRNGKey(2), x.shape)
    ntk = empirical_ntk_fn(apply, impl)(x, None, params)
    np.testing.assert_allclose(ntk, _explicit_ntk(apply, params, x), rtol=1e-10, atol=1e-12)


def test_empirical_ntk_auto_equals_jacobian_contraction():
    init, apply, _ = _net()
    x1, x2 = _x(4), _x(3, seed=1)
    _, params = init(jax.random.PRNGKey(2), x1.shape)
    auto = nt.empirical_ntk_fn(apply, implementation=nt.NtkImplementation.AUTO)
    jc = nt.empirical_ntk_fn(apply, implementation=nt.NtkImplementation.JACOBIAN_CONTRACTION)
    np.testing.assert_allclose(auto(x1, x2, params), jc(x1, x2, params), rtol=1e-12,
                               atol=1e-14)


def test_structured_derivatives_is_refused_everywhere():
    init, apply, _ = _net()
    structured = nt.NtkImplementation.STRUCTURED_DERIVATIVES
    match = r"implementation must be one of \('AUTO', 'JACOBIAN_CONTRACTION', " \
            r"'NTK_VECTOR_PRODUCTS'\), got STRUCTURED_DERIVATIVES"
    with pytest.raises(ValueError, match=match):
        empirical_ntk_fn(apply, "STRUCTURED_DERIVATIVES")
    with pytest.raises(ValueError, match=match):
        nt.empirical_ntk_fn(apply, implementation=structured)
    with pytest.raises(ValueError, match=match):
        nt.empirical_ntk_fn(apply, (-1,), (), None, 3)  # positional, as an int
    with pytest.raises(ValueError, match=match):
        nt.empirical_kernel_fn(apply, implementation=structured)
    with pytest.raises(ValueError, match=match):
        nt.monte_carlo_kernel_fn(init, apply, jax.random.PRNGKey(0), 1, implementation=3)
    with pytest.raises(ValueError, match="implementation must be one of"):
        empirical_ntk_fn(apply, "FASTEST")
