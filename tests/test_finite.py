"""Finite-width training by full-batch gradient descent."""

import numpy as np
import pytest

import infwidth as iw


def _problem(n=48, dim=16):
    x = iw.sample_inputs("hypercube", n, dim, seed=0)
    xt = iw.sample_inputs("hypercube", 64, dim, seed=1)
    f = lambda z: z[:, 0] * z[:, 1] + 0.5 * z[:, 2]  # noqa: E731
    return x, f(x), xt, f(xt)


def test_stable_learning_rate_is_below_the_gd_limit():
    k = np.diag([4.0, 1.0, 0.25])
    assert iw.learning.stable_learning_rate(k, 0.5) == pytest.approx(0.5 * 2 * 3 / 4.0)
    with pytest.raises(ValueError, match="lr_fraction must lie in"):
        iw.learning.stable_learning_rate(k, 1.5)


def test_training_converges_and_approaches_the_kernel_predictor():
    """Centred nets: the gap to NTK regression shrinks as the width grows."""
    arch = iw.SCNN(patch_dim=4)
    x, y, xt, yt = _problem()
    k = iw.kernel(arch, x)
    kernel_pred = iw.kernel(arch, xt, x) @ np.linalg.solve(k, y)
    gaps = []
    for width in (32, 512):
        res = iw.train_mse(iw.learning.with_width(arch, width), x, y, xt, yt, momentum=0.9,
                           max_steps=6000, tol=1e-6, seed=3)
        assert res.converged, res.loss_history[-3:]
        gaps.append(np.mean((res.test_pred[:, 0] - kernel_pred) ** 2))
    assert gaps[1] < gaps[0]


def test_non_convergence_is_reported():
    x, y, xt, yt = _problem()
    res = iw.train_mse(iw.MLP(depth=1, width=32), x, y, max_steps=10, chunk=10)
    assert not res.converged and res.steps == 10 and np.isnan(res.test_mse)


@pytest.mark.parametrize("kwargs, err, msg", [
    (dict(y_train=np.full(48, np.nan)), ValueError, "y_train contains NaN"),
    (dict(y_train=np.zeros(47)), ValueError, "y_train must have shape"),
    (dict(momentum=1.0), ValueError, r"momentum must be a finite number in \[0, 1\)"),
    (dict(max_steps=0), ValueError, "max_steps must be a positive integer"),
    (dict(learning_rate=-0.1), ValueError, r"learning_rate must be a finite number in \(0"),
    (dict(x_test=np.zeros((3, 16))), ValueError, "x_test and y_test must be given together"),
    (dict(dtype="bfloat16"), ValueError, "dtype must be 'float64' or 'float32'"),
])
def test_bad_training_input(kwargs, err, msg):
    x, y, _, _ = _problem()
    args = dict(arch=iw.MLP(depth=1, width=8), x_train=x, y_train=y)
    args.update(kwargs)
    with pytest.raises(err, match=msg):
        iw.train_mse(**args)


def test_with_width_rejects_non_positive():
    with pytest.raises(ValueError, match="width must be a positive integer"):
        iw.learning.with_width(iw.MLP(), 0)


def test_train_classifier_is_seeded_and_beats_chance():
    ds = iw.load_digits(n_train=120, n_test=60, seed=0)
    kw = dict(width=64, epochs=4, min_steps=30, batch_size=32, learning_rate=1e-2)
    args = (iw.MLP(depth=1), ds.x_train, ds.y_train, ds.x_test, ds.y_test, 10)
    r = iw.learning.train_classifier(*args, seed=1, **kw)
    again = iw.learning.train_classifier(*args, seed=1, **kw)
    assert r.steps == 30 and r.test_accuracy > 0.3  # chance is 0.1
    assert (again.test_accuracy, again.test_mse, again.train_loss) == \
        (r.test_accuracy, r.test_mse, r.train_loss)
    with pytest.raises(ValueError, match="y_train must lie in"):
        iw.learning.train_classifier(*args[:2], ds.y_train + 10, *args[3:], **kw)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        iw.learning.train_classifier(*args, **(kw | dict(width=0)))


# ------------------------------------------------------------------ the two named protocols
def _classes(n=60, n_test=40):
    ds = iw.load_digits(n_train=n, n_test=n_test, seed=0)
    return ds.x_train, ds.y_train, ds.x_test, ds.y_test


def test_kernel_protocol_converges_and_approaches_kernel_regression():
    """The kernel regime reaches its loss tolerance at every width, and the RMS distance of
    its test predictions to ridgeless NTK regression on the same data falls with width."""
    arch = iw.MLP(depth=1)
    x, y, xt, yt = _problem(n=24, dim=8)
    xt = xt[:, :8]
    kern = iw.kernel(arch, xt, x) @ np.linalg.solve(iw.kernel(arch, x), y)
    gaps = []
    for width in (32, 256, 2048):
        r = iw.learning.train_network(arch, x, y, xt, f_eval(xt), width=width,
                                      protocol="kernel", tol=1e-6, seed=1, progress=False)
        assert r.record["protocol"] == "kernel" and r.record["converged"], r.record
        assert r.record["loss_ratio"] <= 1e-6
        gaps.append(np.sqrt(np.mean((r.test_pred[:, 0] - kern) ** 2)))
    assert gaps[0] > gaps[1] > gaps[2], gaps


def f_eval(z):
    return z[:, 0] * z[:, 1] + 0.5 * z[:, 2]


def test_empirical_ntk_lambda_max_is_the_top_eigenvalue_of_j_jt():
    """Power iteration on J·Jᵀ against the explicit Jacobian (brute force)."""
    import jax
    import jax.numpy as jnp

    from infwidth.learning import train as T

    init_fn, apply_fn, _ = iw.MLP(depth=1, width=16, out_dim=2).stax
    with jax.enable_x64(True):
        p = T.init(init_fn, (5,), seed=0)
        x = jnp.asarray(iw.sample_inputs("sphere", 7, 5, seed=0))
        jac = jax.jacobian(lambda q: apply_fn(q, x).ravel())(p)
        J = np.concatenate([np.asarray(a).reshape(14, -1)
                            for a in jax.tree_util.tree_leaves(jac)], axis=1)
        lam = T.ntk_lambda_max(apply_fn, p, x, iters=200)
    assert lam == pytest.approx(np.linalg.eigvalsh(J @ J.T)[-1], rel=1e-8)


def test_standard_parameterization_is_the_same_function():
    from infwidth.learning import train as T

    init_fn, apply_fn, _ = iw.ConvNet(depth=2, width=8, readout="gap").stax
    p = T.init(init_fn, (16, 1), seed=0)
    x = iw.sample_inputs("sphere", 4, 16, seed=0).reshape(4, 16, 1)
    apply, q = T.standard_parameterization(apply_fn, p)
    np.testing.assert_allclose(apply(q, x), apply_fn(p, x), rtol=1e-12)
    w = [a for a in __import__("jax").tree_util.tree_leaves(q) if a.ndim >= 2]
    assert np.std(np.asarray(w[1])) < 0.5  # 1/√(3·8) scale, not N(0, 1)


def test_best_protocol_chooses_on_validation_not_test():
    """The sweep's choice is the best validation score of the seed-0 runs, and the test set
    cannot change it (shuffled test labels: the same sweep, bit for bit)."""
    x, y, xt, yt = _classes()
    kw = dict(n_classes=10, width=32, protocol="best", dtype="float32", max_steps=60,
              eval_every=10, patience=2, batch_size=16, weight_decays=(0.0, 1e-3),
              learning_rates=(0.003, 0.01, 0.03, 0.1, 0.3), progress=False)
    a = iw.learning.train_network(iw.MLP(depth=1), x, y, xt, yt, **kw)
    b = iw.learning.train_network(iw.MLP(depth=1), x, y, xt, np.roll(yt, 7), **kw)
    pd_ = __import__("pandas")
    pd_.testing.assert_frame_equal(a.fit.sweep, b.fit.sweep)
    sweep = a.fit.sweep
    first = sweep[sweep.seed == 0]
    assert len(first) == 10 and sweep.chosen.sum() == 3  # chosen pair × 3 seeds
    pick = first.loc[first.val_score.idxmax()]
    assert (pick.learning_rate, pick.weight_decay) == (a.record["learning_rate"],
                                                      a.record["weight_decay"])
    assert a.record["n_seeds"] == 3 and a.record["protocol"] == "best"
    assert set(iw.learning.CONVERGENCE_COLUMNS) <= set(a.record)
    assert 0.0 <= a.record["train_accuracy"] <= 1.0


def test_outputs_carry_the_convergence_columns():
    x, y, xt, yt = _classes(40, 20)
    r = iw.learning.train_network(iw.MLP(depth=1), x, y, xt, yt, n_classes=10, width=64,
                                  protocol="kernel", max_steps=20, eval_every=10)
    assert set(iw.learning.CONVERGENCE_COLUMNS) <= set(r.record)
    assert r.record["converged"] is False and r.record["steps"] == 20  # budget, said so
    t = iw.Target.pair("hypercube", 16, 4)
    df = iw.finite_width_curve(iw.MLP(depth=1), t, [16], widths=(32,), seeds=1, n_test=16,
                               max_steps=50, progress=False)
    assert {"protocol", "converged", "loss_ratio", "steps", "learning_rate"} <= set(df)


@pytest.mark.parametrize("args, kw, err, msg", [
    (("nope",), {}, ValueError, "protocol must be one of"),
    ((3,), {}, TypeError, "protocol must be 'kernel', 'best'"),
    (("kernel",), dict(tol=0.0), ValueError, "tol must be"),
    (("kernel",), dict(lr_fraction=1.0), ValueError, "lr_fraction must be"),
    (("kernel",), dict(ntk="exact"), ValueError, "ntk must be one of"),
    (("kernel",), dict(steps=3), TypeError, r"no option\(s\) \['steps'\]"),
    (("best",), dict(learning_rates=(1e-3, 1e-2)), ValueError, "learning_rates must be"),
    (("best",), dict(learning_rates=(1e-3, 2e-3, 1e-2, 3e-2, 1e-1)), ValueError,
     "log grid"),
    (("best",), dict(parameterization="mup"), ValueError, "parameterization must be"),
    (("best",), dict(loss="hinge"), ValueError, "loss must be one of"),
    (("best",), dict(weight_decays=(-1.0,)), ValueError, "weight_decays must be"),
    (("best",), dict(val_fraction=0.9), ValueError, "val_fraction must be"),
    (("best",), dict(seeds=0), ValueError, "seeds must be a positive integer"),
    (("best",), dict(ensemble=1), TypeError, "ensemble must be True or False"),
])
def test_bad_protocol_arguments_are_named(args, kw, err, msg):
    with pytest.raises(err, match=msg):
        iw.learning.protocol(*args, **kw)


def test_train_network_refuses_bad_arguments_by_name():
    x, y, xt, yt = _classes(40, 20)
    arch = iw.MLP(depth=1)
    with pytest.raises(ValueError, match="width must be a positive integer"):
        iw.learning.train_network(arch, x, y, n_classes=10, width=0)
    with pytest.raises(ValueError, match="y_train must lie in"):
        iw.learning.train_network(arch, x, y + 10, n_classes=10)
    with pytest.raises(ValueError, match="needs integer labels"):
        iw.learning.train_network(arch, x, y.astype(float), protocol="best", width=8)
    with pytest.raises(ValueError, match="protocol must be one of"):
        iw.learning.train_network(arch, x, y, n_classes=10, protocol="adam")


def test_best_protocol_sweeps_alternatives_and_refits_on_every_point_for_the_chosen_steps():
    """``alternatives`` add a recipe's seed-0 runs to the sweep and the best validation score
    over all recipes is chosen (its recipe recorded); the chosen seeds are refitted on every
    point for their best step, and ``refit_chosen`` on the stored sweep gives the same
    refitted nets, bit for bit."""
    from infwidth.learning import train as T

    x, y, xt, yt = _classes(50, 20)
    adam = dict(parameterization="ntk", loss="mse", optimizer="adam",
                learning_rates=(0.003, 0.01, 0.03, 0.1, 0.3), weight_decays=(0.0,))
    kw = dict(n_classes=10, width=16, protocol="best", dtype="float32", max_steps=30,
              eval_every=10, patience=1, batch_size=16, weight_decays=(0.0,), seeds=2,
              learning_rates=(0.01, 0.03, 0.1, 0.3, 1.0), alternatives=(adam,),
              progress=False)
    r = iw.learning.train_network(iw.MLP(depth=1), x, y, xt, yt, refit=True, **kw)
    sw = r.fit.sweep
    first = sw[sw.seed == 0]
    assert len(first) == 10
    assert set(map(tuple, first[["parameterization", "loss", "optimizer"]].values)) == {
        ("standard", "cross_entropy", "sgd"), ("ntk", "mse", "adam")}
    pick = first.loc[first.val_score.idxmax()]
    assert (r.record["parameterization"], r.record["learning_rate"]) == (
        pick.parameterization, pick.learning_rate)
    ch = sw[sw.chosen]
    assert len(ch) == 2 and len(r.fit.models) == 2
    assert (ch.refit_steps == ch.best_step.clip(lower=1)).all()
    assert r.record["converged"] == bool(ch.converged.all())

    arch = __import__("dataclasses").replace(iw.MLP(depth=1), out_dim=10)
    init_fn, apply_fn, _ = iw.learning.with_width(arch, 16).stax
    spec = T.protocol("best", **{k: v for k, v in kw.items()
                                 if k not in ("n_classes", "width", "protocol", "dtype",
                                              "progress")})
    models, rows = T.refit_chosen(init_fn, apply_fn, (x.shape[1],), x, y,
                                  sw.to_dict("records"), spec, dtype="float32")
    assert [row["steps"] for row in rows] == list(ch.refit_steps)
    for (a, p), (a2, p2) in zip(models, r.fit.models):
        np.testing.assert_array_equal(T.predict(a, p, xt, dtype="float32"),
                                      T.predict(a2, p2, xt, dtype="float32"))


@pytest.mark.parametrize("alts, err, msg", [
    (({"momentum": 0.5},), ValueError, "alternatives: a recipe sets only"),
    (({"optimizer": "lbfgs"},), ValueError, "optimizer must be one of"),
    ((3,), TypeError, "alternatives must hold"),
    ("adam", TypeError, "alternatives must be a sequence"),
])
def test_bad_alternative_recipes_are_named(alts, err, msg):
    with pytest.raises(err, match=msg):
        iw.learning.protocol("best", alternatives=alts)
