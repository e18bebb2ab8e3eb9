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
