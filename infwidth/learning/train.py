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
from typing import Any, ClassVar

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
           "predict", "precision", "PROTOCOLS", "KernelRegime", "BestFinite", "protocol",
           "ntk_lambda_max", "standard_parameterization", "fit_kernel", "fit_best", "refit_chosen",
           "KernelFit", "BestFit"]

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
        stopped_early: stopped because ``on_record`` returned ``early_stop=True``.
    """

    params: Any
    history: pd.DataFrame
    steps: int
    converged: bool
    diverged: bool
    stopped_early: bool = False

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
    in the training precision; a true ``early_stop`` column ends training: early stopping).
    Training stops at a row whose loss is NaN/inf or above
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
            if rows[-1].get("early_stop"):
                break
        bar.close()
    return FitResult(params, pd.DataFrame(rows), t, converged, diverged,
                     bool(rows[-1].get("early_stop", False)))


# --------------------------------------------------------------------------- protocols
PROTOCOLS = ("kernel", "best")
PARAMETERIZATIONS = ("ntk", "standard")
PROTOCOL_LOSSES = ("mse", "cross_entropy")
OPTIMIZERS = ("sgd", "adam")
RECIPE_FIELDS = ("parameterization", "loss", "optimizer", "learning_rates", "weight_decays")


def _v():
    """validation's checkers, imported late (validation imports nothing of learning)."""
    from infwidth import validation
    return validation


@dataclass(frozen=True)
class KernelRegime:
    """The kernel-regime protocol: the finite net whose infinite-width limit is kernel
    regression with its NTK.

    NTK parameterisation (the architectures' ``.stax``), centred model f_θ − f_θ₀, full-batch
    GD on (1/2n)·Σ_i‖f(x_i) − f₀(x_i) − y_i‖² with heavy-ball ``momentum``, step
    η = ``lr_fraction``·2n/λ_max(Θ) (Θ: the analytic NTK Gram of the training set, or the
    empirical one at θ₀ by power iteration, ``ntk``), until the train loss is ≤ ``tol`` × its
    initial value (``converged``) or ``max_steps``; the loss is checked every ``eval_every``.

    Example:
        >>> KernelRegime(tol=1e-4).name
        'kernel'
    """

    lr_fraction: float = 0.5
    momentum: float = 0.9
    tol: float = 1e-3
    max_steps: int = 20_000
    eval_every: int = 100
    ntk: str = "analytic"
    name: ClassVar[str] = "kernel"

    def __post_init__(self):
        v = _v()
        v.check_number("lr_fraction", self.lr_fraction, lo=0.0, hi=1.0, lo_open=True,
                       hi_open=True)
        v.check_number("momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True)
        v.check_number("tol", self.tol, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        v.check_pos_int("max_steps", self.max_steps)
        v.check_pos_int("eval_every", self.eval_every)
        v.check_choice("ntk", self.ntk, ("analytic", "empirical"))


@dataclass(frozen=True)
class BestFinite:
    """The best-finite-net protocol: the best test-free choice of training for a finite net.

    ``parameterization`` "standard" (weights ~ N(0, σ²/fan_in), :func:`standard_parameterization`)
    or "ntk"; ``loss`` "cross_entropy" or "mse" (one-hot targets); ``optimizer`` "sgd"
    (momentum 0.9) or "adam", with decoupled ``weight_decays``; every (learning rate, weight
    decay) of ``learning_rates`` (≥ 5 increasing points on a log grid: log-ratios equal
    within 15 %, so 1-3-10 grids count) × ``weight_decays`` trained with
    seed 0 on a split of the training set (the last ``val_fraction`` of a seeded permutation
    held out), each run early-stopped (parameters kept at the best validation score, checked
    every ``eval_every`` steps; stop after ``patience`` checks without improvement, or at
    ``max_steps``); the pair with the best validation score (accuracy for labels, else MSE) is
    chosen and trained with ``seeds`` − 1 further seeds. ``converged``: the run stopped by
    its own rule (early stopping, or train loss ≤ ``tol`` × initial), not by the step budget.
    The test set is never seen. ``ensemble``: the caller also reports the seeds' mean output.
    ``refit``: each chosen seed is then retrained from its initialisation on all the training
    points (validation split included) for the number of steps at which its validation score
    peaked (no early stopping), and those nets are the models; the convergence columns are
    the selection runs', the final losses and train accuracy the refit nets' on all points.
    ``alternatives``: further recipes (BestFinite objects or dicts of their fields, of which
    only ``parameterization``, ``loss``, ``optimizer``, ``learning_rates`` and
    ``weight_decays`` are used) swept with seed 0 on the same split; the recipe, step size and
    decay of the best validation score over all of them is chosen.

    Example:
        >>> BestFinite(seeds=3).learning_rates[:2]
        (0.001, 0.00316...)
    """

    parameterization: str = "standard"
    loss: str = "cross_entropy"
    optimizer: str = "sgd"
    learning_rates: tuple = tuple(float(f"{10 ** e:.6g}") for e in np.linspace(-3, -0.5, 6))
    weight_decays: tuple = (0.0, 1e-4)
    seeds: int = 3
    val_fraction: float = 0.2
    batch_size: int | None = 128
    max_steps: int = 5000
    eval_every: int = 100
    patience: int = 5
    tol: float = 1e-4
    ensemble: bool = False
    refit: bool = False
    alternatives: tuple = ()
    name: ClassVar[str] = "best"

    def __post_init__(self):
        v = _v()
        v.check_choice("parameterization", self.parameterization, PARAMETERIZATIONS)
        v.check_choice("loss", self.loss, PROTOCOL_LOSSES)
        v.check_choice("optimizer", self.optimizer, OPTIMIZERS)
        lrs = tuple(self.learning_rates) if isinstance(self.learning_rates, (tuple, list)) \
            else None
        if lrs is None or len(lrs) < 5:
            raise ValueError(f"learning_rates must be a sequence of >= 5 step sizes on a log "
                             f"grid, got {self.learning_rates!r}")
        for lr in lrs:
            v.check_number("learning_rates", lr, lo=0.0, lo_open=True)
        ratios = np.diff(np.log(np.asarray(lrs, float)))
        # a log grid: increasing, ratios equal within 15 % in log (1-3-10 grids count)
        if not (np.all(ratios > 0) and np.all(np.abs(ratios / ratios.mean() - 1) <= 0.15)):
            raise ValueError(f"learning_rates must increase on a log grid (equal ratios), got "
                             f"{self.learning_rates!r}")
        wds = tuple(self.weight_decays) if isinstance(self.weight_decays, (tuple, list)) \
            else None
        if not wds:
            raise ValueError(f"weight_decays must be a non-empty sequence of numbers >= 0, "
                             f"got {self.weight_decays!r}")
        for wd in wds:
            v.check_nonneg("weight_decays", wd)
        object.__setattr__(self, "learning_rates", tuple(float(x) for x in lrs))
        object.__setattr__(self, "weight_decays", tuple(float(x) for x in wds))
        v.check_pos_int("seeds", self.seeds)
        v.check_number("val_fraction", self.val_fraction, lo=0.0, hi=0.5, lo_open=True)
        if self.batch_size is not None:
            v.check_pos_int("batch_size", self.batch_size)
        for name in ("max_steps", "eval_every", "patience"):
            v.check_pos_int(name, getattr(self, name))
        v.check_number("tol", self.tol, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
        for name in ("ensemble", "refit"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.alternatives, (tuple, list)):
            raise TypeError(f"alternatives must be a sequence of BestFinite recipes or dicts, "
                            f"got {type(self.alternatives).__name__}")
        alts = []
        for a in self.alternatives:
            if isinstance(a, dict):
                extra = set(a) - set(RECIPE_FIELDS)
                if extra:
                    raise ValueError(f"alternatives: a recipe sets only {RECIPE_FIELDS}, got "
                                     f"{sorted(extra)}")
                a = BestFinite(**a)
            elif not isinstance(a, BestFinite):
                raise TypeError(f"alternatives must hold BestFinite recipes or dicts, got "
                                f"{type(a).__name__}")
            alts.append(a)
        object.__setattr__(self, "alternatives", tuple(alts))

    @property
    def recipes(self) -> tuple["BestFinite", ...]:
        """This spec's own recipe, then its alternatives'."""
        return (self,) + self.alternatives


def protocol(spec: str | KernelRegime | BestFinite = "kernel", **options) -> Any:
    """The protocol named ``spec`` ("kernel" or "best") with ``options`` (its fields), or a
    spec passed through (with ``options`` replacing fields).

    Example:
        >>> protocol("kernel", tol=1e-4)
        KernelRegime(lr_fraction=0.5, momentum=0.9, tol=0.0001, max_steps=20000, eval_every=100, ntk='analytic')
    """  # noqa: E501
    import dataclasses

    if isinstance(spec, (KernelRegime, BestFinite)):
        return dataclasses.replace(spec, **options) if options else spec
    if not isinstance(spec, str):
        raise TypeError(f"protocol must be 'kernel', 'best' or a KernelRegime/BestFinite, "
                        f"got {type(spec).__name__}")
    _v().check_choice("protocol", spec, PROTOCOLS)
    cls = KernelRegime if spec == "kernel" else BestFinite
    fields = {f.name for f in dataclasses.fields(cls)}
    bad = sorted(set(options) - fields)
    if bad:
        raise TypeError(f"protocol {spec!r} has no option(s) {bad}; its options are "
                        f"{sorted(fields)}")
    return cls(**options)


def ntk_lambda_max(apply_fn: Callable, params: Any, x: Any, *, iters: int = 60,
                   seed: int = 0) -> float:
    """λ_max of the empirical NTK Gram Θ̂ = J·Jᵀ at ``params`` on ``x`` (J: Jacobian of all
    n·k outputs in the parameters), by power iteration with one VJP and one JVP per step
    (the Rayleigh quotient of the last iterate: a lower bound that converges to λ_max)."""
    x = jnp.asarray(x)
    out = jax.eval_shape(lambda p: apply_fn(p, x), params)
    v = jax.random.normal(jax.random.PRNGKey(seed), out.shape, out.dtype)

    # params and x enter as arguments: as closure constants XLA would constant-fold the
    # convolutions at compile time (seconds each, see _step_fns)
    @jax.jit
    def mul(v, params, x):
        f = lambda p: apply_fn(p, x)  # noqa: E731
        (u,) = jax.vjp(f, params)[1](v)
        return jax.jvp(f, (params,), (u,))[1]

    lam = 0.0
    for _ in range(iters):
        v = v / jnp.linalg.norm(v)
        w = mul(v, params, x)
        lam = float(jnp.vdot(v, w))
        v = w
    return lam


def _fan_in_scale(params: Any) -> Any:
    """Per leaf, 1/√fan_in for weights (ndim ≥ 2: fan_in = prod(shape[:-1]), Dense (in, out)
    and Conv (…, in, out) alike), 1 for biases."""
    return jax.tree_util.tree_map(
        lambda a: 1.0 / math.sqrt(math.prod(a.shape[:-1])) if a.ndim >= 2 else 1.0, params)


def standard_parameterization(apply_fn: Callable, params: Any) -> tuple[Callable, Any]:
    """(apply, params) of the same network in the standard parameterisation.

    An NTK-parameterised layer computes σ/√fan_in · x·W with W ~ N(0, 1); writing w = W/√fan_in
    gives σ·x·w with w ~ N(0, 1/fan_in): the same function, but gradient steps now act on w,
    so a step size η in w is η·fan_in in W, as in the standard parameterisation. Biases are
    unchanged.
    """
    c = _fan_in_scale(params)
    p_std = jax.tree_util.tree_map(lambda a, s: a * s, params, c)

    def apply(p, x, **kw):
        return apply_fn(jax.tree_util.tree_map(lambda a, s: a / s, p, c), x, **kw)
    return apply, p_std


@dataclass(frozen=True)
class KernelFit:
    """Outcome of :func:`fit_kernel`: the :class:`FitResult`, the step size, λ_max used and
    the outputs at θ₀ on the training set (the centring offset)."""

    fit: FitResult
    learning_rate: float
    lam_max: float
    offset: np.ndarray

    def record(self) -> dict:
        """The convergence columns of the run."""
        return {"protocol": "kernel", "converged": bool(self.fit.converged),
                "diverged": bool(self.fit.diverged), "steps": int(self.fit.steps),
                "learning_rate": float(self.learning_rate), "weight_decay": 0.0,
                "initial_train_loss": self.fit.initial_loss, "final_train_loss": self.fit.loss,
                "loss_ratio": self.fit.loss / max(self.fit.initial_loss, 1e-300)}


def fit_kernel(apply_fn: Callable, params0: Any, x: Any, y: Any,
               spec: KernelRegime | None = None, *, lam_max: float | None = None,
               dtype: str = "float64", progress: bool | None = None) -> KernelFit:
    """Train by the kernel-regime protocol (:class:`KernelRegime`) from ``params0``.

    ``x`` shaped for ``apply_fn``; ``y`` of shape (n, k). ``lam_max``: λ_max of the analytic
    NTK Gram of ``x`` (required when ``spec.ntk == "analytic"``; :mod:`infwidth.learning.finite`
    computes it), else the empirical one is measured (:func:`ntk_lambda_max`).
    """
    spec = KernelRegime() if spec is None else spec
    if not isinstance(spec, KernelRegime):
        raise TypeError(f"spec must be a KernelRegime, got {type(spec).__name__}")
    y = np.asarray(y, np.float64)
    y = y[:, None] if y.ndim == 1 else y
    n = y.shape[0]
    if lam_max is None:
        if spec.ntk == "analytic":
            raise ValueError("lam_max (of the analytic NTK) is required with ntk='analytic'")
        with jax.enable_x64(True):
            lam_max = ntk_lambda_max(apply_fn, _cast(params0, jnp.float64),
                                     jnp.asarray(x, jnp.float64))
    _v().check_number("lam_max", lam_max, lo=0.0, lo_open=True)
    lr = spec.lr_fraction * 2.0 * n / lam_max
    offset = predict(apply_fn, params0, x, dtype=dtype)
    res = fit(centred_mse(apply_fn), params0, (x, y, offset),
              optax.sgd(lr, momentum=spec.momentum or None), steps=spec.max_steps,
              eval_every=spec.eval_every, tol=spec.tol, blowup=1e6, dtype=dtype,
              progress=progress)
    return KernelFit(res, float(lr), float(lam_max), offset)


@dataclass(frozen=True)
class BestFit:
    """Outcome of :func:`fit_best`.

    Attributes:
        sweep: one row per (learning_rate, weight_decay) of the seed-0 sweep and per further
            seed: ``seed``, ``learning_rate``, ``weight_decay``, ``val_score`` (accuracy, or
            −MSE), ``best_step``, the convergence columns, ``chosen``.
        learning_rate, weight_decay: the chosen pair.
        models: per seed (apply, params at the best validation check) of the chosen pair.
        n_classes: classes (labels) or None (regression).
    """

    sweep: pd.DataFrame
    learning_rate: float
    weight_decay: float
    models: tuple
    n_classes: int | None
    dtype: str

    def predict(self, x: Any) -> np.ndarray:
        """Outputs of every seed's model on ``x``: shape (seeds, n, k)."""
        return np.stack([predict(a, p, x, dtype=self.dtype, batch_size=1024)
                         for a, p in self.models])

    def record(self) -> dict:
        """The convergence columns of the chosen runs (means over seeds; ``converged``: all)."""
        ch = self.sweep[self.sweep.chosen]
        out = {"protocol": "best", **ch.iloc[0][["parameterization", "loss", "optimizer"]],
               "converged": bool(ch.converged.all()),
               "diverged": bool(ch.diverged.any()), "steps": float(ch.steps.mean()),
               "learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
               "initial_train_loss": float(ch.initial_train_loss.mean()),
               "final_train_loss": float(ch.final_train_loss.mean()),
               "loss_ratio": float(ch.loss_ratio.mean()), "n_seeds": int(len(ch)),
               "val_score": float(ch.val_score.mean())}
        if "train_accuracy" in ch:
            out["train_accuracy"] = float(ch.train_accuracy.mean())
        return out


def _score(out: np.ndarray, y: np.ndarray, labels: bool) -> float:
    """Validation score, higher is better: accuracy for labels, −MSE for targets."""
    if labels:
        return float(np.mean(out.argmax(1) == y))
    return -float(np.mean((out - y) ** 2))


def _recipe(r: BestFinite, apply_fn: Callable, p0: Any, y: np.ndarray, labels: bool,
            k: int) -> dict:
    """Apply function, loss, targets, initial scale and optimizer of one recipe of ``r``."""
    apply, scale = apply_fn, None
    if r.parameterization == "standard":
        apply, _ = standard_parameterization(apply_fn, p0)
        scale = _fan_in_scale(p0)
    if labels:
        targets = np.eye(k)[y] if r.loss == "mse" else y
    else:
        targets = y.astype(np.float64)
    # One optimizer object per recipe, its step size and decay in its state: fit's jitted
    # step is compiled once per recipe, not once per (learning rate, weight decay).
    base = optax.inject_hyperparams(
        (lambda learning_rate, weight_decay: optax.adamw(learning_rate,
                                                         weight_decay=weight_decay))
        if r.optimizer == "adam" else
        (lambda learning_rate, weight_decay: optax.chain(
            optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate, momentum=0.9)))
    )(learning_rate=1.0, weight_decay=0.0)
    hyper: dict = {}

    def opt_init(params):
        state = base.init(params)
        for name, value in hyper.items():
            state.hyperparams[name] = jnp.asarray(value, state.hyperparams[name].dtype)
        return state

    return dict(apply=apply, scale=scale, targets=targets, hyper=hyper, fwd=_jit(apply),
                loss={"mse": mse, "cross_entropy": cross_entropy}[r.loss](apply),
                opt=optax.GradientTransformation(opt_init, base.update),
                columns={"parameterization": r.parameterization, "loss": r.loss,
                         "optimizer": r.optimizer})


def _start(ctx: dict, init_fn: Callable, input_shape: Sequence[int], seed: int, lr: float,
           wd: float, dtype: str) -> Any:
    """Seed ``seed``'s initial parameters in the recipe's parameterisation; sets lr, wd."""
    params = init(init_fn, input_shape, seed, dtype)
    if ctx["scale"] is not None:
        params = jax.tree_util.tree_map(lambda a, s: a * s, params, ctx["scale"])
    ctx["hyper"].update(learning_rate=lr, weight_decay=wd)
    return params


def _out_dim(apply_fn: Callable, p0: Any, x: np.ndarray, dtype: str) -> int:
    """The network's output dimension (its number of classes), from shapes only."""
    with precision(dtype):
        dt = jnp.float64 if dtype == "float64" else jnp.float32
        return int(jax.eval_shape(lambda p: apply_fn(p, jnp.asarray(x[:1], dt)), p0).shape[-1])


def _refit(ctx: dict, row: dict, init_fn: Callable, input_shape: Sequence[int], x: np.ndarray,
           y: np.ndarray, labels: bool, batch_size: int | None, dtype: str,
           progress: bool | None) -> tuple[tuple, dict]:
    """Retrain a sweep row's seed from its initialisation on all of (x, y) for the row's
    ``best_step`` (no early stopping): the model (apply, params) and ``steps``,
    ``final_train_loss``, ``loss_ratio``, ``diverged`` and, for labels, ``train_accuracy``."""
    n = x.shape[0]
    seed, steps = int(row["seed"]), max(int(row["best_step"]), 1)
    params = _start(ctx, init_fn, input_shape, seed, row["learning_rate"], row["weight_decay"],
                    dtype)
    targets = ctx["targets"]
    r = fit(ctx["loss"], params, (x, targets), ctx["opt"], steps=steps,
            batch_size=batch_size if batch_size is not None and batch_size < n else None,
            seed=seed, eval_every=steps, blowup=1e3, dtype=dtype, progress=progress)
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    with precision(dtype):
        final = float(_jit(ctx["loss"])(r.params, _cast((x, targets), dt)))
    out = {"steps": steps, "final_train_loss": final,
           "loss_ratio": final / max(r.initial_loss, 1e-300), "diverged": bool(r.diverged)}
    if labels:
        pred = predict(ctx["apply"], r.params, x, dtype=dtype, batch_size=1024)
        out["train_accuracy"] = float(np.mean(pred.argmax(1) == y))
    return (ctx["apply"], r.params), out


def refit_chosen(init_fn: Callable, apply_fn: Callable, input_shape: Sequence[int], x: Any,
                 y: Any, sweep: Sequence[dict], spec: BestFinite | None = None, *,
                 dtype: str = "float32", progress: bool | None = None
                 ) -> tuple[list[tuple], list[dict]]:
    """``BestFinite(refit=True)`` from a stored sweep (:attr:`BestFit.sweep` rows): each
    chosen seed retrained from its initialisation, in its recipe, on all of (x, y) for the
    ``best_step`` at which its validation score peaked. Returns the models (apply, params)
    and one row per seed (``seed``, ``steps``, ``final_train_loss``, ``diverged``,
    ``train_accuracy`` for labels)."""
    spec = BestFinite() if spec is None else spec
    if not isinstance(spec, BestFinite):
        raise TypeError(f"spec must be a BestFinite, got {type(spec).__name__}")
    x, y = np.asarray(x), np.asarray(y)
    labels = np.issubdtype(y.dtype, np.integer)
    if not labels and y.ndim == 1:
        y = y[:, None]
    chosen = [r for r in sweep if isinstance(r, dict) and r.get("chosen") is True]
    if not chosen:
        raise ValueError("sweep has no chosen run to refit")
    p0 = init(init_fn, input_shape, 0, dtype)
    c = chosen[0]
    rec = BestFinite(**{f: c.get(f, getattr(spec, f)) for f in
                        ("parameterization", "loss", "optimizer")})
    ctx = _recipe(rec, apply_fn, p0, y, labels, _out_dim(apply_fn, p0, x, dtype))
    models, rows = [], []
    for row in chosen:
        model, out = _refit(ctx, row, init_fn, input_shape, x, y, labels, spec.batch_size,
                            dtype, progress)
        models.append(model)
        rows.append({"seed": int(row["seed"]), **out})
    return models, rows


def fit_best(init_fn: Callable, apply_fn: Callable, input_shape: Sequence[int], x: Any, y: Any,
             spec: BestFinite | None = None, *, dtype: str = "float32",
             progress: bool | None = None,
             on_run: Callable[[dict], None] | None = None) -> BestFit:
    """Train by the best-finite-net protocol (:class:`BestFinite`).

    ``x`` of shape (n,) + ``input_shape``; ``y``: integer labels (n,) (classification; the
    output dimension of ``apply_fn`` is the number of classes) or float targets (n, k)
    (regression; ``spec.loss`` must be "mse"). Only (x, y) are used: validation is a split
    of them (seeded by 0), so the test set cannot influence any choice. ``on_run(row)`` is
    called after each run (e.g. to log the sweep as it goes).
    """
    spec = BestFinite() if spec is None else spec
    if not isinstance(spec, BestFinite):
        raise TypeError(f"spec must be a BestFinite, got {type(spec).__name__}")
    x = np.asarray(x)
    y = np.asarray(y)
    labels = np.issubdtype(y.dtype, np.integer)
    if not labels and any(r.loss == "cross_entropy" for r in spec.recipes):
        raise ValueError("loss='cross_entropy' needs integer labels y; use loss='mse' for "
                         "real-valued targets")
    if not labels and y.ndim == 1:
        y = y[:, None]
    n = x.shape[0]
    n_val = max(1, int(round(spec.val_fraction * n)))
    if n - n_val < 2:
        raise ValueError(f"{n} examples leave too few for training after a "
                         f"val_fraction={spec.val_fraction} split")
    perm = np.random.default_rng(0).permutation(n)
    tr, va = perm[: n - n_val], perm[n - n_val:]
    p0 = init(init_fn, input_shape, 0, dtype)
    dt = jnp.float64 if dtype == "float64" else jnp.float32
    k = _out_dim(apply_fn, p0, x, dtype)
    contexts: dict = {}

    def recipe(r: BestFinite) -> dict:
        key = (r.parameterization, r.loss, r.optimizer)
        if key not in contexts:
            contexts[key] = _recipe(r, apply_fn, p0, y, labels, k)
        return contexts[key]

    b = None if spec.batch_size is None or spec.batch_size >= len(tr) else spec.batch_size

    def run(ctx: dict, seed: int, lr: float, wd: float) -> tuple[dict, tuple]:
        params = _start(ctx, init_fn, input_shape, seed, lr, wd, dtype)
        targets, loss = ctx["targets"], ctx["loss"]
        xv = x[va]
        best = {"score": -math.inf, "step": 0, "params": params, "bad": 0}

        def on_record(t, p):
            s = _score(np.asarray(ctx["fwd"](p, jnp.asarray(xv, dt)), np.float64), y[va]
                       if labels else targets[va], labels)
            if s > best["score"]:
                best.update(score=s, step=t, params=p, bad=0)
            else:
                best["bad"] += 1
            return {"val_score": s, "early_stop": best["bad"] >= spec.patience}

        r = fit(loss, params, (x[tr], targets[tr]), ctx["opt"], steps=spec.max_steps,
                batch_size=b, seed=seed, eval_every=spec.eval_every, blowup=1e3, dtype=dtype,
                on_record=on_record, progress=progress)
        with precision(dtype):
            kept = best["params"]
            final = float(_jit(loss)(kept, _cast((x[tr], targets[tr]), dt)))
        row = {"seed": seed, **ctx["columns"], "learning_rate": lr, "weight_decay": wd,
               "val_score": best["score"], "best_step": best["step"], "steps": r.steps,
               "converged": bool((r.stopped_early or r.converged) and not r.diverged),
               "diverged": bool(r.diverged), "initial_train_loss": r.initial_loss,
               "final_train_loss": final, "loss_ratio": final / max(r.initial_loss, 1e-300)}
        if labels:
            out = predict(ctx["apply"], kept, x[tr], dtype=dtype, batch_size=1024)
            row["train_accuracy"] = float(np.mean(out.argmax(1) == y[tr]))
        return row, (ctx["apply"], kept)

    rows, models = [], {}
    for rec in spec.recipes:
        ctx = recipe(rec)
        for lr in rec.learning_rates:
            for wd in rec.weight_decays:
                row, model = run(ctx, 0, lr, wd)
                rows.append(row)
                if on_run:
                    on_run(row)
                models[id(row)] = model
    ok = [r for r in rows if not r["diverged"] and math.isfinite(r["val_score"])]
    if not ok:
        raise RuntimeError("every run of the learning-rate sweep diverged")
    pick = max(ok, key=lambda r: r["val_score"])  # first of ties: the first recipe, smallest step
    lr, wd = pick["learning_rate"], pick["weight_decay"]
    ctx = contexts[(pick["parameterization"], pick["loss"], pick["optimizer"])]
    for r in rows:
        r["chosen"] = r is pick
    chosen = [models[id(pick)]]
    for seed in range(1, spec.seeds):
        row, model = run(ctx, seed, lr, wd)
        rows.append({**row, "chosen": True})
        chosen.append(model)
        if on_run:
            on_run(rows[-1])
    if spec.refit:
        chosen = []
        for row in [r for r in rows if r["chosen"]]:
            model, out = _refit(ctx, row, init_fn, input_shape, x, y, labels, spec.batch_size,
                                dtype, progress)
            steps, diverged = out.pop("steps"), out.pop("diverged")
            row.update(out, refit_steps=steps, diverged=bool(row["diverged"] or diverged))
            chosen.append(model)
            if on_run:
                on_run({**row, "refit": True})
    return BestFit(pd.DataFrame(rows), lr, wd, tuple(chosen), k if labels else None, dtype)
