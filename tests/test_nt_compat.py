"""The neural-tangents compatibility shim: every adapted part works on the installed JAX."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import infwidth  # noqa: F401  (enables x64)
from infwidth._nt_compat import empirical_ntk_fn, load

nt, stax = load()


def _net():
    return stax.serial(stax.Conv(16, (3,), padding="CIRCULAR"), stax.Relu(),
                       stax.Conv(16, (3,), padding="CIRCULAR"), stax.Erf(),
                       stax.GlobalAvgPool(), stax.Dense(2))


def _x(n=6, seed=0):
    return jax.random.normal(jax.random.PRNGKey(seed), (n, 8, 1))


def test_import_does_not_pull_tensorflow():
    code = "import sys, infwidth; assert 'tensorflow' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


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


def test_predict_infinite_time_is_kernel_regression():
    _, _, kfn = _net()
    x = _x(8)
    y = jnp.sin(jnp.arange(6.0))[:, None] * jnp.ones((6, 2))
    k = kfn(x, None, "ntk")
    pred = nt.predict.gradient_descent_mse_ensemble(kfn, x[:6], y, diag_reg=0.0)
    mean = pred(x_test=x[6:], get="ntk")
    want = k[6:, :6] @ jnp.linalg.solve(k[:6, :6], y)
    np.testing.assert_allclose(mean, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("impl", ["JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS"])
def test_empirical_ntk_matches_explicit_jacobians(impl):
    init, apply, _ = _net()
    x = _x(4)
    _, params = init(jax.random.PRNGKey(2), x.shape)
    ntk = empirical_ntk_fn(apply, impl)(x, None, params)
    jac = jax.jacobian(lambda p: apply(p, x))(params)
    leaves = jax.tree_util.tree_leaves(jac)
    flat = jnp.concatenate([j.reshape(x.shape[0], 2, -1) for j in leaves], axis=-1)
    want = jnp.einsum("iap,jap->ij", flat, flat) / 2  # trace over the 2 logits, averaged
    np.testing.assert_allclose(ntk, want, rtol=1e-10, atol=1e-12)


def test_structured_derivatives_is_refused():
    _, apply, _ = _net()
    with pytest.raises(ValueError, match="implementation must be one of"):
        empirical_ntk_fn(apply, "STRUCTURED_DERIVATIVES")
