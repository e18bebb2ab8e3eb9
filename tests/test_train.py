"""The one trainer (infwidth.learning.train): seed convention, loop, losses, validation."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import infwidth as iw
from infwidth.learning import train as T


def _linear_init(key, input_shape):
    return (-1, 1), {"w": jax.random.normal(key, (input_shape[-1], 1))}


def _linear_apply(params, x):
    return x @ params["w"]


LINEAR_MSE = T.mse(_linear_apply)


def _problem(n=24, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    return x, x @ rng.standard_normal((d, 1)) + 0.1 * rng.standard_normal((n, 1))


def _mlp(width=32, dim=8):
    init_fn, apply_fn, _ = iw.MLP(depth=1, width=width).stax
    x = iw.sample_inputs("hypercube", 16, dim, seed=0)
    return init_fn, apply_fn, x, x[:, :1] * x[:, 1:2]


def test_seed_convention():
    """init_key is PRNGKey(seed) itself, data_key its fold_in(·, 1); init draws in float64
    and rounds for float32."""
    k0, kd = T.seed_keys(7)
    np.testing.assert_array_equal(k0, jax.random.PRNGKey(7))
    np.testing.assert_array_equal(kd, jax.random.fold_in(jax.random.PRNGKey(7), 1))
    p64 = T.init(_linear_init, (5,), seed=7)
    np.testing.assert_array_equal(p64["w"], _linear_init(jax.random.PRNGKey(7), (-1, 5))[1]["w"])
    p32 = T.init(_linear_init, (5,), seed=7, dtype="float32")
    assert p64["w"].dtype == jnp.float64 and p32["w"].dtype == jnp.float32
    np.testing.assert_array_equal(p32["w"], np.asarray(p64["w"]).astype(np.float32))


@pytest.mark.parametrize("batch_size", [None, 8])
def test_same_seed_same_bits(batch_size):
    init_fn, apply_fn, x, y = _mlp()
    loss, opt = T.mse(apply_fn), optax.adam(1e-2)
    runs = [T.fit(loss, T.init(init_fn, (8,), s), (x, y), opt, steps=12,
                  batch_size=batch_size, seed=s) for s in (3, 3, 4)]
    for a, b in zip(jax.tree_util.tree_leaves(runs[0].params),
                    jax.tree_util.tree_leaves(runs[1].params)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(runs[0].history.loss, runs[1].history.loss)
    assert runs[0].loss != runs[2].loss


def test_loss_decreases_and_history_is_recorded():
    init_fn, apply_fn, x, y = _mlp()
    seen = []
    r = T.fit(T.mse(apply_fn), T.init(init_fn, (8,)), (x, y), optax.sgd(0.5), steps=40,
              eval_every=10, on_record=lambda t, p: seen.append(t) or {"t2": 2 * t})
    assert list(r.history.step) == [0, 10, 20, 30, 40] == seen
    assert list(r.history.t2) == [0, 20, 40, 60, 80]
    assert r.steps == 40 and not r.converged and not r.diverged
    assert np.all(np.diff(r.history.loss) < 0) and r.loss < 0.5 * r.initial_loss


def test_full_batch_gd_on_a_linear_model_is_the_closed_form_iterate():
    """w_t = w_0 + V·diag((1 − (1 − ηλ)^t)/λ)·Vᵀ·(b − A·w_0), A = XᵀX/n, b = Xᵀy/n."""
    x, y = _problem()
    n, eta, t = len(x), 0.3, 25
    w0 = T.init(_linear_init, (5,), seed=1)
    r = T.fit(LINEAR_MSE, w0, (x, y), optax.sgd(eta), steps=t)
    a, b = x.T @ x / n, x.T @ y / n
    lam, v = np.linalg.eigh(a)
    w0 = np.asarray(w0["w"])
    want = w0 + v @ (((1 - (1 - eta * lam) ** t) / lam)[:, None] * (v.T @ (b - a @ w0)))
    np.testing.assert_allclose(r.params["w"], want, rtol=1e-12, atol=1e-14)
    # the centred loss with offset f0 = X·w0 and targets y − f0 is the same loss
    c = T.fit(T.centred_mse(_linear_apply), {"w": w0}, (x, y - x @ w0, x @ w0),
              optax.sgd(eta), steps=t)
    np.testing.assert_allclose(c.params["w"], want, rtol=1e-12, atol=1e-14)


def test_minibatch_order_follows_the_seed_convention():
    """Plain SGD on a linear model, replayed in numpy with the documented permutations."""
    x, y = _problem(n=20)
    eta, b, steps, seed = 0.1, 6, 8, 5  # 3 batches an epoch (2 rows dropped), 2⅔ epochs
    w0 = T.init(_linear_init, (5,), seed)
    r = T.fit(LINEAR_MSE, w0, (x, y), optax.sgd(eta), steps=steps, batch_size=b, seed=seed)
    w, data_key = np.asarray(w0["w"]), T.seed_keys(seed)[1]
    for t in range(steps):
        e, i = divmod(t, 3)
        idx = np.asarray(jax.random.permutation(jax.random.fold_in(data_key, e), 20))
        xb, yb = x[idx[i * b:(i + 1) * b]], y[idx[i * b:(i + 1) * b]]
        w = w - eta * xb.T @ (xb @ w - yb) / b
    np.testing.assert_allclose(r.params["w"], w, rtol=1e-12)
    assert list(r.history.step) == [0, 3, 6, 8]


def test_float32_and_float64_agree_to_float32_precision():
    init_fn, apply_fn, x, y = _mlp(width=64)
    loss, opt = T.mse(apply_fn), optax.sgd(0.5, momentum=0.9)
    r = {dt: T.fit(loss, T.init(init_fn, (8,), 2, dt), (x, y), opt, steps=20, dtype=dt)
         for dt in T.DTYPES}
    for a, b in zip(jax.tree_util.tree_leaves(r["float32"].params),
                    jax.tree_util.tree_leaves(r["float64"].params)):
        assert a.dtype == jnp.float32 and b.dtype == jnp.float64
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(r["float32"].history.loss, r["float64"].history.loss, rtol=1e-4)
    p = {dt: T.predict(apply_fn, r[dt].params, x, dtype=dt, batch_size=5) for dt in T.DTYPES}
    assert p["float32"].dtype == np.float64
    np.testing.assert_allclose(p["float32"], p["float64"], rtol=1e-4, atol=1e-5)


def test_stopping_rules():
    x, y = _problem()
    w0 = T.init(_linear_init, (5,), seed=0)
    conv = T.fit(LINEAR_MSE, w0, (x, y), optax.sgd(0.5), steps=500, eval_every=5, tol=0.05)
    assert conv.converged and conv.steps < 500 and conv.steps % 5 == 0
    assert conv.loss <= 0.05 * conv.initial_loss
    div = T.fit(LINEAR_MSE, w0, (x, y), optax.sgd(10.0), steps=500, eval_every=1, blowup=100)
    assert div.diverged and not div.converged and div.steps < 500


def test_cross_entropy_classifier_learns():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5))
    labels = np.argmax(x @ rng.standard_normal((5, 3)), axis=1)  # linearly separable

    def init_fn(key, shape):
        return (-1, 3), {"w": 0.1 * jax.random.normal(key, (shape[-1], 3))}

    loss, p0 = T.cross_entropy(_linear_apply), T.init(init_fn, (5,))
    r = T.fit(loss, p0, (x, labels), optax.adam(0.1), steps=60, batch_size=20,
              dtype="float32")
    assert r.loss < 0.3 * r.initial_loss
    z = x @ np.asarray(p0["w"])
    want = np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(60), labels])
    np.testing.assert_allclose(r.initial_loss, want, rtol=1e-6)


@pytest.mark.parametrize("kw, err, msg", [
    (dict(loss="mse"), TypeError, "loss must be callable"),
    (dict(optimizer=0.1), TypeError, "optimizer must be an optax"),
    (dict(steps=0), ValueError, "steps must be a positive integer"),
    (dict(steps=2.5), TypeError, "steps must be a positive integer"),  # a float: its type
    (dict(batch_size=25), ValueError, "batch_size=25 exceeds"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive integer"),
    (dict(eval_every=0), ValueError, "eval_every must be a positive integer"),
    (dict(tol=-1.0), ValueError, "tol must be a finite number"),
    (dict(blowup=0.5), ValueError, r"blowup must be a finite number in \(1, "),
    (dict(dtype="float16"), ValueError, "dtype must be 'float64' or 'float32'"),
    (dict(seed=-1), ValueError, "seed must be an integer >= 0"),
    (dict(seed=1.5), TypeError, "seed must be an integer"),
    (dict(on_record=3), TypeError, "on_record must be callable"),
    (dict(progress="yes"), TypeError, "progress must be"),
    (dict(data=np.zeros((24, 5))), TypeError, "data must be a non-empty tuple"),
    (dict(data=(np.zeros((24, 5)), np.zeros((23, 1)))), ValueError, "first .*dimension"),
    (dict(data=(np.zeros((24, 5)), np.full((24, 1), np.nan))), ValueError,
     r"data\[1\] contains NaN"),
    (dict(data=(np.zeros((24, 5)), np.zeros((24, 1), bool))), TypeError, r"data\[1\] must hold"),
])
def test_bad_fit_arguments(kw, err, msg):
    x, y = _problem()
    args = dict(loss=LINEAR_MSE, params=T.init(_linear_init, (5,)), data=(x, y),
                optimizer=optax.sgd(0.1), steps=3) | kw
    with pytest.raises(err, match=msg):
        T.fit(**args)


def test_bad_init_and_predict_arguments():
    with pytest.raises(TypeError, match="init_fn must be callable"):
        T.init(None, (5,))
    for shape in ((), (0,), 5, (2.5,)):
        with pytest.raises(ValueError, match="input_shape must be"):
            T.init(_linear_init, shape)
    with pytest.raises(ValueError, match="dtype must be"):
        T.init(_linear_init, (5,), dtype="int32")
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        T.predict(_linear_apply, T.init(_linear_init, (5,)), np.ones((3, 5)), batch_size=0)
