"""Finite-width networks trained by full-batch gradient descent on the MSE (optax).

The loss is ℓ(θ) = (1/2n)·‖f_θ(X) − Y‖². In the linearised (NTK) regime one GD step maps the
training residual r ↦ (I − η·Θ/n)·r, which is stable iff η < 2n/λ_max(Θ). The default step
is ``lr_fraction``·2n/λ_max with the analytic NTK of the architecture on the training set.

With ``center=True`` (default) the trained model is f_θ(x) − f_θ₀(x): the network's output at
initialisation is subtracted, so that as width → ∞ the trained predictor tends to the
ridgeless NTK regression predictor k(x, X)·Θ⁻¹·Y, the quantity the kernel curves measure.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import check_inputs, check_targets
from infwidth.kernels.engine import kernel
from infwidth.kernels.hypercube_gram import tree_gram
from infwidth.validation import check_nonneg, check_pos_int, check_sample_sizes

__all__ = ["TrainResult", "stable_learning_rate", "train_mse", "with_width", "finite_width_curve",
           "aggregate_widths"]


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train_mse`.

    Attributes:
        params: trained parameters.
        train_loss: final (1/2n)‖f − y‖² on the training set.
        test_mse: mean over test points and outputs of (f − y)², or NaN without a test set.
        test_pred: predictions on the test set (None without one).
        steps: GD steps taken.
        converged: whether train_loss fell below ``tol`` × its initial value.
        learning_rate: the step size used.
        loss_history: train loss at the end of every chunk of steps.
    """

    params: Any
    train_loss: float
    test_mse: float
    test_pred: np.ndarray | None
    steps: int
    converged: bool
    learning_rate: float
    loss_history: np.ndarray


def with_width(arch: Architecture, width: int) -> Architecture:
    """The same architecture with another hidden width."""
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width <= 0:
        raise ValueError(f"width must be a positive integer, got {width!r}")
    return dataclasses.replace(arch, width=int(width))


def stable_learning_rate(ntk_train: np.ndarray, fraction: float = 0.5) -> float:
    """η = fraction · 2n / λ_max(Θ): below the GD stability limit of the linearised model."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"lr_fraction must lie in (0, 1), got {fraction!r}")
    ntk_train = np.asarray(ntk_train, dtype=np.float64)
    lam_max = float(np.linalg.eigvalsh(ntk_train)[-1])
    if not lam_max > 0:
        raise ValueError("the training NTK has no positive eigenvalue; cannot set a step size")
    return fraction * 2.0 * ntk_train.shape[0] / lam_max


def train_mse(arch: Architecture, x_train: Any, y_train: Any, x_test: Any = None,
              y_test: Any = None, *, seed: int = 0, learning_rate: float | None = None,
              lr_fraction: float = 0.5, momentum: float = 0.0, max_steps: int = 20_000,
              tol: float = 1e-4, chunk: int = 250, center: bool = True,
              dtype: str = "float64") -> TrainResult:
    """Train ``arch.stax`` (NTK parameterisation) by full-batch GD on (1/2n)‖f − y‖².

    Stops when the train loss falls below ``tol`` × the initial loss (converged) or after
    ``max_steps`` (reported as not converged); the loss is checked every ``chunk`` steps.
    ``momentum`` > 0 uses heavy-ball GD, which converges to the same interpolant in the
    linearised regime, in fewer steps. ``dtype="float32"`` trains in single precision (the
    step size still comes from the float64 NTK): on 2 CPU cores a step measured 5.4x faster
    than float64 for a width-128 D-CNN and 1.8x for a width-1024 MLP (m = 64, d = 64).

    Example:
        >>> import infwidth as iw, numpy as np
        >>> x = iw.sample_inputs("hypercube", 32, 16, seed=0)
        >>> res = iw.train_mse(iw.MLP(depth=1, width=64), x, x[:, 0], max_steps=2000)
        >>> res.converged
        True
    """
    if not isinstance(arch, Architecture):
        raise TypeError(f"arch must be an infwidth architecture, got {type(arch).__name__}")
    x_train = check_inputs(x_train, "x_train")
    n, dim = x_train.shape
    y_train = check_targets(y_train, n, "y_train")
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test must be given together")
    if x_test is not None:
        x_test = check_inputs(x_test, "x_test", dim)
        y_test = check_targets(y_test, x_test.shape[0], "y_test")
        if y_test.shape[1] != y_train.shape[1]:
            raise ValueError(f"y_test has {y_test.shape[1]} outputs, y_train {y_train.shape[1]}")
    if y_train.shape[1] != arch.out_dim:
        raise ValueError(f"y_train has {y_train.shape[1]} output(s) but arch.out_dim is "
                         f"{arch.out_dim}")
    for name, v in (("max_steps", max_steps), ("chunk", chunk)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must lie in [0, 1), got {momentum!r}")
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if learning_rate is None:
        learning_rate = stable_learning_rate(kernel(arch, x_train, kind="ntk"), lr_fraction)
    elif not (isinstance(learning_rate, (int, float)) and learning_rate > 0
              and math.isfinite(learning_rate)):
        raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")

    if dtype == "float64":
        return _train(arch, x_train, y_train, x_test, y_test, seed, float(learning_rate),
                      momentum, max_steps, tol, chunk, center, jnp.float64)
    # neural-tangents' layers multiply by Python-float scale factors, which under x64 promote
    # float32 activations (and lax.conv refuses mixed dtypes): float32 runs with x64 off.
    with jax.enable_x64(False):
        return _train(arch, x_train, y_train, x_test, y_test, seed, float(learning_rate),
                      momentum, max_steps, tol, chunk, center, jnp.float32)


def _train(arch, x_train, y_train, x_test, y_test, seed, learning_rate, momentum, max_steps,
           tol, chunk, center, jdt) -> TrainResult:
    n, dim = x_train.shape
    init_fn, apply_fn, _ = arch.stax
    shape = arch.input_shape(dim)
    xs = jnp.asarray(x_train.reshape((n,) + shape), jdt)
    ys = jnp.asarray(y_train, jdt)
    _, params0 = init_fn(jax.random.PRNGKey(seed), (-1,) + shape)

    # The data, the initial parameters and the centring offset f_θ₀(X) enter the jitted
    # functions as arguments: captured as closure constants, XLA constant-folds the forward
    # pass at θ₀ during compilation (minutes at width ≥ 1024). The offset on the training
    # set is computed once instead of at every step.
    apply_jit = jax.jit(apply_fn)
    offset = apply_jit(params0, xs) if center else jnp.zeros_like(ys)

    def loss_fn(params, xs, ys, offset):
        return 0.5 * jnp.mean(jnp.sum((apply_fn(params, xs) - offset - ys) ** 2, axis=-1))

    opt = optax.sgd(learning_rate, momentum=momentum or None)

    # One jitted step per Python iteration rather than a lax.scan over ``chunk`` steps:
    # measured 1.3x faster per step for a width-128 D-CNN in float64 on 2 CPU cores, and
    # within 20% of the scan for a width-1024 MLP.
    @jax.jit
    def step(params, state, xs, ys, offset):
        g = jax.grad(loss_fn)(params, xs, ys, offset)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state

    loss_jit = jax.jit(loss_fn)
    params, state = params0, opt.init(params0)
    loss0 = float(loss_jit(params, xs, ys, offset))
    history, steps, converged, loss = [], 0, False, loss0
    while steps < max_steps:
        for _ in range(min(chunk, max_steps - steps)):
            params, state = step(params, state, xs, ys, offset)
        steps += min(chunk, max_steps - steps)
        loss = float(loss_jit(params, xs, ys, offset))
        history.append(loss)
        if not math.isfinite(loss):
            break
        if loss <= tol * max(loss0, 1e-300):
            converged = True
            break

    pred, test_mse = None, float("nan")
    if x_test is not None:
        xt = jnp.asarray(x_test.reshape((x_test.shape[0],) + shape), jdt)
        out = apply_jit(params, xt)
        pred = np.asarray(out - apply_jit(params0, xt) if center else out, dtype=np.float64)
        test_mse = float(np.mean((pred - y_test) ** 2))
    return TrainResult(params, loss, test_mse, pred, steps, converged, float(learning_rate),
                       np.asarray(history))


# --------------------------------------------------------------------------------------
# Finite-width learning curves, paired with the kernel curve
# --------------------------------------------------------------------------------------
def finite_width_curve(arch: Architecture, target: Any, sample_sizes: Any,
                       widths: Any = (64, 256, 1024), seeds: int = 3, n_test: int = 500,
                       noise: float = 0.0, seed: int = 0, lr_fraction: float = 0.5,
                       momentum: float = 0.9, max_steps: int = 20_000, tol: float = 1e-5,
                       chunk: int = 100, per_seed: bool = False,
                       progress: bool | None = None, dtype: str = "float64") -> pd.DataFrame:
    """Test MSE of finite networks trained by full-batch GD, and their gap to the kernel.

    For each seed s (data seed ``seed + s``, the same data as
    :func:`infwidth.kernel_regression_curve` with the same max(m) and ``n_test``), each m and
    each width: :func:`train_mse` on the first m points (NTK parameterisation, centred model,
    step ``lr_fraction``·2m/λ_max of the analytic NTK Gram, heavy-ball ``momentum``, until the
    train loss is below ``tol`` × its initial value or ``max_steps``), and ridgeless NTK
    regression on the same points. Columns: target, width, sample_size, test_mse,
    test_mse_std, kernel_test_mse, mse_gap (mean of test_mse − kernel_test_mse, paired by
    seed), abs_mse_gap, prediction_gap (mean over seeds of the RMS difference between the
    network's and the kernel predictor's test predictions: the distance that → 0 as
    width → ∞), n_seeds, converged (fraction of runs that reached ``tol``; non-converged runs
    are kept, never dropped), steps (mean). ``per_seed=True`` returns one row per run (with
    its wall seconds). ``dtype`` is passed to :func:`train_mse`.

    Example:
        >>> import infwidth as iw
        >>> t = iw.Target.pair("hypercube", 16, 4)
        >>> df = iw.finite_width_curve(iw.MLP(depth=1), t, [16], widths=(32, 256), seeds=1,
        ...                            n_test=64)
        >>> bool(df.prediction_gap.iloc[1] < df.prediction_gap.iloc[0])
        True
    """
    from tqdm.auto import tqdm

    from infwidth.learning.regression import (
        _as_targets,
        label_noise,
        nested_regression,
        regression_dataset,
    )

    if not isinstance(arch, Architecture):
        raise TypeError(f"arch must be an infwidth architecture, got {type(arch).__name__}")
    targets = _as_targets(target)
    ms = check_sample_sizes(sample_sizes)
    ws = check_sample_sizes(widths, "widths")
    seeds, n_test = check_pos_int("seeds", seeds), check_pos_int("n_test", n_test)
    noise = check_nonneg("noise", noise)
    if not 0.0 < lr_fraction < 1.0:
        raise ValueError(f"lr_fraction must lie in (0, 1), got {lr_fraction!r}")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    for t in targets.values():
        t.arch_degrees(arch)
    first = next(iter(targets.values()))
    n_train = int(ms[-1])
    rows = []
    total = seeds * len(targets) * len(ms) * len(ws)
    bar = tqdm(total=total, desc="finite-width runs", leave=False,
               disable=not (total > 4 if progress is None else progress))
    for s in range(seeds):
        sd = seed + s
        x, _ = regression_dataset(first, n_train + n_test, sd)
        gram = tree_gram(arch, x, kind="ntk")
        x_test = x[n_train:]
        for name, t in targets.items():
            f = regression_dataset(t, 1, sd)[1]
            clean = f(x)
            y = clean[:n_train] + label_noise(n_train, noise, sd)
            kern = {r["sample_size"]: r for r in nested_regression(
                gram, y, clean[n_train:], ms, return_predictions=True)}
            for m in ms:
                lr = stable_learning_rate(gram[:m, :m], lr_fraction)
                kr = kern[int(m)]
                for w in ws:
                    t0 = time.perf_counter()
                    res = train_mse(with_width(arch, int(w)), x[:m], y[:m], x_test,
                                    clean[n_train:], seed=sd, learning_rate=lr,
                                    momentum=momentum, max_steps=max_steps, tol=tol,
                                    chunk=chunk, dtype=dtype)
                    diff = res.test_pred[:, 0] - kr["prediction"][:, 0]
                    rows.append({"target": name, "seed": sd, "width": int(w),
                                 "sample_size": int(m),
                                 "test_mse": res.test_mse + noise ** 2,
                                 "kernel_test_mse": float(kr["test_mse"][0]) + noise ** 2,
                                 "prediction_gap": float(np.sqrt(np.mean(diff ** 2))),
                                 "converged": bool(res.converged), "steps": res.steps,
                                 "train_loss": res.train_loss, "learning_rate": lr,
                                 "seconds": time.perf_counter() - t0})
                    bar.update()
    bar.close()
    long = pd.DataFrame(rows)
    long["mse_gap"] = long["test_mse"] - long["kernel_test_mse"]
    return long if per_seed else aggregate_widths(long)


def aggregate_widths(long: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of a per-run finite-width table."""
    g = long.groupby(["target", "width", "sample_size"], sort=True)
    out = g["test_mse"].agg(test_mse="mean", test_mse_std="std", n_seeds="count")
    out["test_mse_std"] = out["test_mse_std"].fillna(0.0)
    out["kernel_test_mse"] = g["kernel_test_mse"].mean()
    out["mse_gap"] = g["mse_gap"].mean()
    out["abs_mse_gap"] = g["mse_gap"].apply(lambda v: float(np.mean(np.abs(v))))
    out["prediction_gap"] = g["prediction_gap"].mean()
    out["converged"] = g["converged"].mean()
    out["steps"] = g["steps"].mean()
    return out.reset_index()
