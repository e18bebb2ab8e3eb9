"""The one optax trainer of the package: small pure pieces and one loop.

- :func:`seed_keys`, :func:`init`: the seed convention and the initial parameters;
- :func:`centred_mse`, :func:`mse`, :func:`cross_entropy`: losses ``loss(params, batch)``;
- :func:`fit`: full-batch or minibatch training with any optax optimizer, a step budget, a
  stopping rule and a loss history (:class:`FitResult`);
- :func:`predict`, :func:`precision`: outputs as float64 arrays, and the x64 mode of a dtype.

Seed convention (every trainer in infwidth follows it)::

    key = jax.random.PRNGKey(seed)
    init_key = key                         # params = init_fn(init_key, (-1,) + input_shape)
    data_key = jax.random.fold_in(key, 1)  # minibatch order of epoch e (0-based):
                                           # jax.random.permutation(fold_in(data_key, e), n)

Parameters are always drawn in float64 and then cast to the training dtype, so float32 and
float64 runs with the same seed start from the same point (up to float32 rounding).

Precision: ``dtype="float32"`` runs with x64 switched off (:func:`precision`):
neural-tangents' layers multiply by Python-float scale factors, which under x64 promote
float32 activations (and ``lax.conv`` refuses mixed dtypes).

Example:
    >>> import infwidth as iw, optax
    >>> from infwidth.learning import train as T
    >>> x = iw.sample_inputs("hypercube", 16, 8, seed=0)
    >>> init_fn, apply_fn, _ = iw.MLP(depth=1, width=32).stax
    >>> p0 = T.init(init_fn, (8,), seed=0)
    >>> r = T.fit(T.mse(apply_fn), p0, (x, x[:, :1]), optax.sgd(0.5), steps=50)
    >>> bool(r.loss < r.initial_loss)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from infwidth.validation import DTYPES as DTYPES  # the one definition, re-exported
from infwidth.validation import (
    check_dtype,
    check_number,
    check_pos_int,
    check_progress,
    check_seed,
)

__all__ = ["FitResult", "seed_keys", "init", "centred_mse", "mse", "cross_entropy", "fit",
           "predict", "precision"]

Loss = Callable[[Any, tuple], jax.Array]


# --------------------------------------------------------------------------- pieces
def precision(dtype: str):
    """Context in which ``dtype`` computations run: x64 on for float64, off for float32."""
    return jax.enable_x64(check_dtype(dtype) == "float64")


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """(init_key, data_key) of ``seed``: ``PRNGKey(seed)`` itself and its ``fold_in(·, 1)``."""
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(check_seed("seed", seed))
        return key, jax.random.fold_in(key, 1)


def _cast(tree: Any, dt) -> Any:
    """Floating leaves to ``dt``; other leaves as they are."""
    return jax.tree_util.tree_map(
        lambda a: jnp.asarray(a, dt) if jnp.issubdtype(jnp.result_type(a), jnp.floating)
        else jnp.asarray(a), tree)


def init(init_fn: Callable, input_shape: Sequence[int], seed: int = 0,
         dtype: str = "float64") -> Any:
    """Initial parameters ``init_fn(PRNGKey(seed), (-1,) + input_shape)[1]`` (stax-style
    ``init_fn``), drawn in float64 and cast to ``dtype``."""
    if not callable(init_fn):
        raise TypeError(f"init_fn must be callable, got {type(init_fn).__name__}")
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if not shape or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s <= 0
                        for s in shape):
        raise ValueError(f"input_shape must be a non-empty tuple of positive integers, got "
                         f"{input_shape!r}")
    dt = jnp.float64 if check_dtype(dtype) == "float64" else jnp.float32
    with jax.enable_x64(True):
        _, params = init_fn(seed_keys(seed)[0], (-1,) + tuple(int(s) for s in shape))
        return _cast(params, dt)


def centred_mse(apply_fn: Callable) -> Loss:
    """loss(params, (x, y, f0)) = (1/2)·mean_i ‖f(x_i) − f0_i − y_i‖² (f0: outputs at θ₀)."""
    def loss(params, batch):
        x, y, f0 = batch
        return 0.5 * jnp.mean(jnp.sum((apply_fn(params, x) - f0 - y) ** 2, axis=-1))
    return loss


def mse(apply_fn: Callable) -> Loss:
    """loss(params, (x, y)) = (1/2)·mean_i ‖f(x_i) − y_i‖²."""
    def loss(params, batch):
        x, y = batch
        return 0.5 * jnp.mean(jnp.sum((apply_fn(params, x) - y) ** 2, axis=-1))
    return loss


def cross_entropy(apply_fn: Callable) -> Loss:
    """loss(params, (x, labels)) = mean softmax cross-entropy of the logits f(x)."""
    def loss(params, batch):
        x, labels = batch
        return optax.softmax_cross_entropy_with_integer_labels(apply_fn(params, x),
                                                               labels).mean()
    return loss


@lru_cache(maxsize=32)
def _jit(fn: Callable) -> Callable:
    return jax.jit(fn)


def predict(apply_fn: Callable, params: Any, x: Any, *, dtype: str = "float64",
            batch_size: int | None = None) -> np.ndarray:
    """``apply_fn(params, x)`` as a float64 numpy array, computed in ``dtype`` (x reshaped by
    the caller), in chunks of ``batch_size`` rows (None: one call)."""
    dt = jnp.float64 if check_dtype(dtype) == "float64" else jnp.float32
    x = np.asarray(x)
    b = x.shape[0] if batch_size is None else check_pos_int("batch_size", batch_size)
    with precision(dtype):
        f, params = _jit(apply_fn), _cast(params, dt)
        return np.concatenate([np.asarray(f(params, jnp.asarray(x[i:i + b], dt)), np.float64)
                               for i in range(0, max(x.shape[0], 1), max(b, 1))])


# --------------------------------------------------------------------------- the loop
@dataclass(frozen=True)
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
        params: final parameters (in the training dtype).
        history: one row per record: ``step``, ``loss`` and the columns ``on_record`` returned;
            row 0 is the initialisation (full-data loss).
        steps: optimizer steps taken.
        converged: stopped because the loss fell to ``tol`` × its initial value.
        diverged: stopped because the loss was NaN/inf or above ``blowup`` × its initial value.
    """

    params: Any
    history: pd.DataFrame
    steps: int
    converged: bool
    diverged: bool

    @property
    def loss(self) -> float:
        """The last recorded loss."""
        return float(self.history["loss"].iloc[-1])

    @property
    def initial_loss(self) -> float:
        """The full-data loss at initialisation."""
        return float(self.history["loss"].iloc[0])


_STEPS: dict = {}  # (loss, optimizer, minibatch) -> jitted (step, loss); at most 32


def _step_fns(loss: Loss, optimizer: optax.GradientTransformation, minibatch: bool):
    """Jitted (step, loss), cached per (loss, optimizer): reuse both objects to skip
    recompiling. Data enter as arguments: as closure constants XLA would constant-fold the
    forward pass at θ₀ during compilation (minutes at width ≥ 1024)."""
    key = (loss, optimizer, minibatch)
    if key not in _STEPS:
        if len(_STEPS) >= 32:
            _STEPS.pop(next(iter(_STEPS)))
        if minibatch:
            def step(params, state, idx, data):
                batch = jax.tree_util.tree_map(lambda a: a[idx], data)
                value, g = jax.value_and_grad(loss)(params, batch)
                upd, state = optimizer.update(g, state, params)
                return optax.apply_updates(params, upd), state, value
        else:
            def step(params, state, data):
                g = jax.grad(loss)(params, data)
                upd, state = optimizer.update(g, state, params)
                return optax.apply_updates(params, upd), state
        _STEPS[key] = (jax.jit(step), jax.jit(loss))
    return _STEPS[key]


def _check_data(data: Any) -> tuple[tuple, int]:
    if not isinstance(data, (tuple, list)) or not data:
        raise TypeError(f"data must be a non-empty tuple of arrays, got {type(data).__name__}")
    ns = set()
    for i, a in enumerate(data):
        if not hasattr(a, "shape") or not hasattr(a, "dtype"):
            a = np.asarray(a)
        if a.ndim == 0:
            raise ValueError(f"data[{i}] must have a leading example axis, got a scalar")
        if not (jnp.issubdtype(a.dtype, jnp.floating) or jnp.issubdtype(a.dtype, jnp.integer)):
            raise TypeError(f"data[{i}] must hold floats or integers, got dtype {a.dtype}")
        if jnp.issubdtype(a.dtype, jnp.floating) and not np.all(np.isfinite(np.asarray(a))):
            raise ValueError(f"data[{i}] contains NaN or inf")
        ns.add(a.shape[0])
    if len(ns) != 1:
        raise ValueError(f"data arrays must share their first (example) dimension, got "
                         f"{sorted(ns)}")
    n = ns.pop()
    if n == 0:
        raise ValueError("data has no examples")
    return tuple(data), int(n)


def _check_fit(loss, optimizer, steps, batch_size, n, eval_every, tol, blowup, on_record,
               progress):
    if not callable(loss):
        raise TypeError(f"loss must be callable, got {type(loss).__name__}")
    if not (callable(getattr(optimizer, "init", None))
            and callable(getattr(optimizer, "update", None))):
        raise TypeError(f"optimizer must be an optax GradientTransformation, got "
                        f"{type(optimizer).__name__}")
    check_pos_int("steps", steps)
    if batch_size is not None and check_pos_int("batch_size", batch_size) > n:
        raise ValueError(f"batch_size={batch_size} exceeds the {n} training examples")
    if eval_every is not None:
        check_pos_int("eval_every", eval_every)
    for name, v, lo in (("tol", tol, 0.0), ("blowup", blowup, 1.0)):
        if v is not None:
            check_number(name, v, lo=lo, lo_open=True)
    if on_record is not None and not callable(on_record):
        raise TypeError(f"on_record must be callable, got {type(on_record).__name__}")
    check_progress(progress)


def _data_loss(loss_jit, params, data, n: int, chunk: int | None) -> float:
    """Mean loss over all n examples (chunks weighted by size: every loss here is a mean)."""
    if chunk is None or chunk >= n:
        return float(loss_jit(params, data))
    total = 0.0
    for i in range(0, n, chunk):
        part = jax.tree_util.tree_map(lambda a: a[i:i + chunk], data)
        total += float(loss_jit(params, part)) * min(chunk, n - i)
    return total / n


def fit(loss: Loss, params: Any, data: Sequence[Any], optimizer: optax.GradientTransformation,
        *, steps: int, batch_size: int | None = None, seed: int = 0,
        eval_every: int | None = None, tol: float | None = None, blowup: float | None = None,
        dtype: str = "float64", on_record: Callable[[int, Any], dict] | None = None,
        progress: bool | None = None) -> FitResult:
    """Minimise ``loss(params, batch)`` with ``optimizer`` for at most ``steps`` steps.

    ``data`` is a tuple of arrays sharing the example axis 0 (floats are cast to ``dtype``);
    ``batch`` is ``data`` itself (``batch_size=None``: full batch) or its rows of one
    minibatch: epoch e visits ⌊n/batch_size⌋ minibatches of the permutation drawn from
    ``fold_in(data_key, e)`` (:func:`seed_keys`; the remainder is dropped), for as many
    epochs as ``steps`` needs. One jitted step per Python iteration: on XLA:CPU a
    ``lax.scan`` over the same step ran 1.3× (width-128 D-CNN) to 25× (conv nets, minibatch)
    slower per step.

    Every ``eval_every`` steps (default: full batch ``max(1, steps // 10)``, minibatch one
    epoch) and at the last step a row is recorded: full batch, the loss after the step;
    minibatch, the mean of the minibatch losses since the previous row. Row 0 is the
    full-data loss at initialisation. ``on_record(step, params)`` may add columns (it runs
    in the training precision). Training stops at a row whose loss is NaN/inf or above
    ``blowup`` × the initial loss (diverged), or at most ``tol`` × the initial loss
    (converged); ``None`` disables either rule. ``progress``: a tqdm bar (None: only once a
    run has lasted 10 s). ``dtype``: float64, or float32 with x64 off (:func:`precision`).
    """
    from tqdm.auto import tqdm

    check_dtype(dtype)
    data, n = _check_data(data)
    _check_fit(loss, optimizer, steps, batch_size, n, eval_every, tol, blowup, on_record,
               progress)
    data_key = seed_keys(seed)[1]
    minibatch = batch_size is not None
    per_epoch = n // batch_size if minibatch else 1
    if eval_every is None:
        eval_every = per_epoch if minibatch else max(1, steps // 10)
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    step, loss_jit = _step_fns(loss, optimizer, minibatch)

    def record(t: int, params, value: float) -> dict:
        return {"step": t, "loss": value, **(on_record(t, params) if on_record else {})}

    with precision(dtype):
        params, data = _cast(params, dt), _cast(data, dt)
        state = optimizer.init(params)
        loss0 = _data_loss(loss_jit, params, data, n, batch_size)
        rows = [record(0, params, loss0)]
        bar = tqdm(total=steps, desc="training", leave=False, disable=progress is False,
                   delay=0 if progress else 10)
        t, converged, diverged, running, order = 0, False, False, [], None
        while t < steps:
            if minibatch:
                if t % per_epoch == 0:
                    key = jax.random.fold_in(data_key, t // per_epoch)
                    order = np.asarray(jax.random.permutation(key, n), np.int32)
                    order = order[: per_epoch * batch_size].reshape(per_epoch, batch_size)
                params, state, value = step(params, state, order[t % per_epoch], data)
                running.append(value)
            else:
                params, state = step(params, state, data)
            t += 1
            bar.update()
            if t % eval_every and t < steps:
                continue
            if minibatch:
                value, running = float(np.mean(jax.device_get(running))), []
            else:
                value = float(loss_jit(params, data))
            rows.append(record(t, params, value))
            if not math.isfinite(value) or (blowup is not None and value > blowup * loss0):
                diverged = True
                break
            if tol is not None and value <= tol * max(loss0, 1e-300):
                converged = True
                break
        bar.close()
    return FitResult(params, pd.DataFrame(rows), t, converged, diverged)
