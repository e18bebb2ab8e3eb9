"""Measured learning curves: float64 kernel regression on sampled data.

**Measured curves** (:func:`kernel_regression_curve`): float64 kernel regression on sampled
data, one Gram matrix per seed for max(m) + n_test points, nested sample sizes solved on its
leading principal submatrices by Cholesky, with the diagonal shift δ + jitter·tr(K_mm)/m
(jitter = 1e-10 by default: "ridgeless").
"""


from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.linalg
from scipy.linalg import lapack
from tqdm.auto import tqdm

from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import check_targets, sample_inputs
from infwidth.kernels.engine import KINDS
from infwidth.kernels.hypercube_gram import tree_gram
from infwidth.learning.targets import Target, TargetFunction
from infwidth.validation import check_nonneg, check_pos_int, check_sample_sizes

__all__ = ["nested_regression", "regression_dataset", "label_noise", "kernel_regression_curve",
           "aggregate_seeds", "DEFAULT_JITTER"]

DEFAULT_JITTER = 1e-10


# --------------------------------------------------------------------------------------
# Measured kernel regression
# --------------------------------------------------------------------------------------
def _derived_seed(seed: int, tag: int) -> int:
    return int(np.random.SeedSequence([int(seed), tag]).generate_state(1)[0])


def regression_dataset(target: Target, n: int, seed: int = 0
                       ) -> tuple[np.ndarray, TargetFunction]:
    """(x, f): ``n`` inputs of ``target``'s law and a concrete draw of the target, from
    independent streams derived from ``seed`` (the same seed gives the same data in
    :func:`kernel_regression_curve` and :func:`infwidth.finite_width_curve`)."""
    x = sample_inputs(target.domain, n, target.dim, target.patch_dim, _derived_seed(seed, 0))
    return x, target.sample(_derived_seed(seed, 1))


def label_noise(n: int, noise: float, seed: int) -> np.ndarray:
    """ε·N(0, 1) training-label noise of the seed's dataset."""
    return noise * np.random.default_rng(_derived_seed(seed, 2)).standard_normal(n)


def nested_regression(gram: Any, y_train: Any, y_test: Any, sample_sizes: Any,
                      ridge: float = 0.0, jitter: float = DEFAULT_JITTER,
                      return_predictions: bool = False) -> list[dict]:
    """Kernel regression on nested training sets: the first m rows for each m.

    ``gram`` is the (n_train + n_test) square Gram matrix of the training points (first
    n_train rows) and test points (last n_test rows); ``y_train`` (n_train,) or
    (n_train, k) holds the labels, ``y_test`` (n_test,) or (n_test, k) the clean test values.
    For each m it solves (K_mm + (δ + jitter·tr(K_mm)/m)·I)·α = y_m by Cholesky and returns
    {"sample_size", "test_mse" (array of k), "condition_number" (LAPACK dpocon estimate),
    "shift"} (plus "prediction" when asked).

    Raises ValueError naming the condition number when K_mm is not numerically positive
    definite (raise ``ridge`` or ``jitter``)."""
    ms = check_sample_sizes(sample_sizes)
    ridge, jitter = check_nonneg("ridge", ridge), check_nonneg("jitter", jitter)
    gram = np.asarray(gram, dtype=np.float64)
    yt = check_targets(y_train, None, "y_train")
    ys = check_targets(y_test, None, "y_test")
    n_train, n_test = yt.shape[0], ys.shape[0]
    if gram.shape != (n_train + n_test,) * 2:
        raise ValueError(f"gram must be ({n_train + n_test}, {n_train + n_test}) for "
                         f"{n_train} training and {n_test} test points, got {gram.shape}")
    if ys.shape[1] != yt.shape[1]:
        raise ValueError(f"y_test has {ys.shape[1]} columns, y_train {yt.shape[1]}")
    if ms[-1] > n_train:
        raise ValueError(f"sample_sizes go up to {ms[-1]} but only {n_train} training points "
                         f"were given")
    k_test = gram[n_train:, :n_train]
    out = []
    for m in ms:
        a = gram[:m, :m].copy()
        shift = ridge + jitter * float(np.trace(a)) / m
        a[np.diag_indices(m)] += shift
        anorm = float(np.abs(a).sum(axis=0).max())
        try:
            c, low = scipy.linalg.cho_factor(a, lower=True, check_finite=False)
        except np.linalg.LinAlgError:
            ev = np.linalg.eigvalsh(gram[:m, :m])
            cond = float(ev[-1] / ev[0]) if ev[0] > 0 else math.inf
            raise ValueError(
                f"Cholesky failed at m={m}: the Gram matrix is not numerically positive "
                f"definite (eigenvalues in [{ev[0]:.3e}, {ev[-1]:.3e}], condition number "
                f"{cond:.3e}) even with the diagonal shift {shift:.3e}; raise ridge or "
                f"jitter") from None
        rcond, info = lapack.dpocon(c, anorm, uplo="L")
        alpha = scipy.linalg.cho_solve((c, low), yt[:m], check_finite=False)
        pred = k_test[:, :m] @ alpha
        row = {"sample_size": int(m), "test_mse": np.mean((pred - ys) ** 2, axis=0),
               "condition_number": 1.0 / rcond if rcond > 0 else math.inf, "shift": shift}
        if return_predictions:
            row["prediction"] = pred
        out.append(row)
    return out


def _as_targets(target: Any) -> dict[str, Target]:
    if isinstance(target, Target):
        return {target.name: target}
    if isinstance(target, Mapping):
        items = dict(target)
    elif isinstance(target, Sequence) and not isinstance(target, (str, bytes)):
        items = {t.name if isinstance(t, Target) else str(i): t for i, t in enumerate(target)}
    else:
        raise TypeError(f"target must be an iw.Target (or a list/dict of them), got "
                        f"{type(target).__name__}")
    if not items:
        raise ValueError("target must hold at least one Target")
    for k, t in items.items():
        if not isinstance(t, Target):
            raise TypeError(f"target {k!r} must be an iw.Target, got {type(t).__name__}")
    first = next(iter(items.values()))
    for k, t in items.items():
        if (t.domain, t.dim, t.patch_dim) != (first.domain, first.dim, first.patch_dim):
            raise ValueError(f"targets must share domain, dim and patch_dim; {k!r} differs")
    if len(items) != len(target if not isinstance(target, Target) else [0]):
        raise ValueError("target names must be distinct")
    return items


def kernel_regression_curve(arch: Architecture, target: Any, sample_sizes: Any,
                            kind: str = "ntk", ridge: float = 0.0, seeds: int = 5,
                            n_test: int = 1000, domain: str | None = None,
                            dim: int | None = None, noise: float = 0.0, seed: int = 0,
                            jitter: float = DEFAULT_JITTER, posterior_variance: bool = False,
                            per_seed: bool = False, progress: bool | None = None
                            ) -> pd.DataFrame:
    """Measured test MSE of kernel regression with ``arch``'s NNGP/NTK on ``target``.

    For each seed s (data seed ``seed + s``): draw max(m) + n_test inputs and a concrete
    target (:func:`regression_dataset`), compute one float64 Gram matrix (:func:`tree_gram`),
    and solve every m on its leading principal submatrix (:func:`nested_regression`; ridge
    δ plus the jitter 1e-10·tr(K_mm)/m). Training labels get N(0, noise²) noise; the test MSE
    is against the clean target plus noise² (the expectation of the noisy-label test MSE, the
    quantity :func:`predict_learning_curve` predicts).

    ``target`` may be one Target or a list/dict of Targets on the same inputs (one Gram per
    seed serves all). Returns columns target, sample_size, test_mse (mean over seeds),
    test_mse_std (standard deviation over seeds), n_seeds, condition_number (largest over
    seeds), and with ``posterior_variance`` the mean GP posterior variance on the test points
    (``nt.predict.gp_inference`` on the same Gram). ``per_seed=True`` returns one row per seed.

    Example:
        >>> import infwidth as iw
        >>> t = iw.Target.pair("hypercube", 16, 4)
        >>> df = iw.kernel_regression_curve(iw.DCNN(patch_dim=4, filter_sizes=(2, 2)), t,
        ...                                 [16, 64], seeds=2, n_test=100)
        >>> list(df.columns[:4])
        ['target', 'sample_size', 'test_mse', 'test_mse_std']
    """
    if not isinstance(arch, Architecture):
        raise TypeError(f"arch must be an infwidth architecture, got {type(arch).__name__}")
    targets = _as_targets(target)
    ms = check_sample_sizes(sample_sizes)
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    ridge, noise = check_nonneg("ridge", ridge), check_nonneg("noise", noise)
    jitter = check_nonneg("jitter", jitter)
    seeds, n_test = check_pos_int("seeds", seeds), check_pos_int("n_test", n_test)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    for t in targets.values():
        t.check_domain(domain, dim)
        t.arch_degrees(arch)  # refuses components that are not eigenfunctions on arch
    first = next(iter(targets.values()))
    n_train = int(ms[-1])
    rows = []
    show = (seeds * len(ms) * n_train > 2e5) if progress is None else progress
    for s in tqdm(range(seeds), desc="kernel regression seeds", disable=not show,
                  leave=False):
        sd = seed + s
        x, _ = regression_dataset(first, n_train + n_test, sd)
        fs = [regression_dataset(t, 1, sd)[1] for t in targets.values()]
        clean = np.stack([f(x) for f in fs], axis=1)
        y_train = clean[:n_train] + np.stack(
            [label_noise(n_train, noise, sd)] * len(fs), axis=1)
        gram = tree_gram(arch, x, kind=kind)
        res = nested_regression(gram, y_train, clean[n_train:], ms, ridge, jitter)
        pvar = _posterior_variance(gram, n_train, ms, ridge, jitter) \
            if posterior_variance else None
        for j, r in enumerate(res):
            for i, name in enumerate(targets):
                row = {"target": name, "seed": sd, "sample_size": r["sample_size"],
                       "test_mse": float(r["test_mse"][i]) + noise ** 2,
                       "condition_number": r["condition_number"]}
                if pvar is not None:
                    row["posterior_variance"] = pvar[j]
                rows.append(row)
    long = pd.DataFrame(rows)
    if per_seed:
        return long
    return aggregate_seeds(long)


def aggregate_seeds(long: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of a per-seed table (columns target, sample_size,
    test_mse, condition_number, ...)."""
    g = long.groupby(["target", "sample_size"], sort=False)
    out = g["test_mse"].agg(test_mse="mean", test_mse_std="std", n_seeds="count")
    out["test_mse_std"] = out["test_mse_std"].fillna(0.0)
    out["condition_number"] = g["condition_number"].max()
    if "posterior_variance" in long.columns:
        out["posterior_variance"] = g["posterior_variance"].mean()
    return out.reset_index()


def _posterior_variance(gram: np.ndarray, n_train: int, ms: np.ndarray, ridge: float,
                        jitter: float) -> list[float]:
    """Mean GP posterior variance k(x,x) − k(x,X)(K + shift·I)⁻¹k(X,x) over the test
    points, through neural-tangents' ``nt.predict.gp_inference``."""
    import jax.numpy as jnp

    from infwidth._nt_compat import load

    nt, _ = load()
    out = []
    k_tt = jnp.asarray(gram[n_train:, n_train:])
    for m in ms:
        k_mm = gram[:m, :m]
        shift = ridge + jitter * float(np.trace(k_mm)) / m
        # gp_inference adds diag_reg·I (absolute scale) to the training kernel
        predict = nt.predict.gp_inference(jnp.asarray(k_mm), jnp.zeros((m, 1)),
                                          diag_reg=shift, diag_reg_absolute_scale=True)
        g = predict("nngp", jnp.asarray(gram[n_train:, :m]), k_tt)
        out.append(float(np.mean(np.diag(np.asarray(g.covariance)))))
    return out
