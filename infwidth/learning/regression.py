"""Measured learning curves: float64 kernel regression on sampled data.

**Measured curves** (:func:`kernel_regression_curve`): float64 kernel regression on sampled
data, one Gram matrix per seed for max(m) + n_test points, nested sample sizes solved on its
leading principal submatrices by Cholesky, with the diagonal shift δ + jitter·tr(K_mm)/m
(jitter = 1e-10 by default: "ridgeless").

**Cost before work** (:func:`gram_memory`, :func:`check_gram_memory`): the peak memory of one
seed is estimated from the largest m before anything is drawn, and a run that does not fit
``memory_budget`` (the same default and parsing as :func:`infwidth.kernel`) is refused with
the bytes it needs and the largest m that fits.

**Routes beyond memory** (:func:`regression_routes`, :func:`stored_regression`): a Gram that
does not fit goes through a Zarr tile store (:func:`infwidth.kernels.distributed.gram`), and
each m is solved from it: "store-cholesky" while the m×m training Gram fits
(:func:`~infwidth.kernels.gram_store.cholesky_limit`), "store-cg" (conjugate gradients
streaming row blocks) beyond; :func:`store_memory` is the least that route needs.
"""


from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.linalg
from scipy.linalg import lapack
from tqdm.auto import tqdm

from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import check_targets, sample_inputs
from infwidth.kernels.engine import DEFAULT_MEMORY_BUDGET, kernel, parse_bytes
from infwidth.kernels.gram_store import cholesky_threads
from infwidth.learning.curves import curve_frame
from infwidth.learning.targets import Target, TargetFunction
from infwidth.validation import (
    check_architecture,
    check_bool,
    check_finite,
    check_kind,
    check_label,
    check_nonneg,
    check_pos_int,
    check_progress,
    check_sample_sizes,
    check_seed,
    format_bytes,
    show_progress,
)

__all__ = ["nested_regression", "regression_dataset", "label_noise", "kernel_regression_curve",
           "aggregate_seeds", "gram_memory", "check_gram_memory", "store_memory",
           "regression_routes", "stored_regression", "ROUTES", "DEFAULT_JITTER"]

DEFAULT_JITTER = 1e-10
ROUTES = ("in-memory", "store-cholesky", "store-cg")


# --------------------------------------------------------------------------------------
# Cost before work
# --------------------------------------------------------------------------------------
def _engine_bytes(arch: Architecture | None, n: int, dim: int, kind: str) -> int:
    """The kernel engine's least working set beyond the (n, n) output: its own estimate
    (:func:`infwidth.kernels.native.native_memory_estimate`) at 1×1 tiles, less the output
    (given a budget, :func:`infwidth.kernel` shrinks its tiles to fit); 0 without an
    architecture or for architectures the native engine does not describe
    (:func:`infwidth.kernel` plans neural-tangents' blocks within the same budget)."""
    from infwidth.kernels.native import native_memory_estimate, supports

    if arch is None or not dim or not supports(arch, dim):
        return 0
    est = native_memory_estimate(arch, n, None, dim, kinds=(kind,), tile=1)
    return max(0, est - 8 * n * n)


def gram_memory(n_train: int, n_test: int, dim: int = 0, *, arch: Architecture | None = None,
                kind: str = "ntk", posterior_variance: bool = False, extra: int = 0) -> int:
    """Estimated peak bytes of one seed of :func:`kernel_regression_curve` with largest
    sample size ``n_train`` (n = n_train + n_test points):

    - the float64 Gram matrix, 8·n²;
    - the Cholesky working copies of :func:`nested_regression` (K_mm + shift, and its
      factor), 2·8·n_train²;
    - the inputs and their prepared copy, 2·8·n·dim, and the labels;
    - the kernel engine's working set beyond its output (:func:`_engine_bytes`, with ``arch``);
    - with ``posterior_variance``, neural-tangents' copies (≈ 4·m² + 2·m·n_test + 2·n_test²);
    - ``extra`` bytes (e.g. a finite network's training).

    Example (10⁶ training points: 7.3 TiB for the Gram alone):
        >>> round(gram_memory(10**6, 10) / 2**40, 1)
        21.8
    """
    n_train, n_test = check_pos_int("n_train", n_train), check_pos_int("n_test", n_test)
    n = n_train + n_test
    b = 8 * n * n + 2 * 8 * n_train * n_train + 2 * 8 * n * int(dim) + 8 * 4 * n
    b += _engine_bytes(arch, n, int(dim), kind)
    if posterior_variance:
        b += 8 * (4 * n_train ** 2 + 2 * n_train * n_test + 2 * n_test ** 2)
    return int(b + extra)


def check_gram_memory(arch: Architecture, target: Target, n_train: int, n_test: int,
                      memory_budget: int | str | None = DEFAULT_MEMORY_BUDGET, *,
                      kind: str = "ntk", posterior_variance: bool = False,
                      extra: int = 0) -> int:
    """Refuse, before any work, a run whose :func:`gram_memory` does not fit
    ``memory_budget`` (bytes or a string like "4GiB"; None: the default of
    :func:`infwidth.kernel`, 4 GiB). The ValueError names memory_budget, the bytes needed
    and the largest m that fits. Returns the bytes needed.

    Example:
        >>> import infwidth as iw
        >>> t = iw.Target.local("hypercube", 16, 4, degree=1)
        >>> check_gram_memory(iw.MLP(depth=1), t, 1000, 100) < 2**30
        True
        >>> check_gram_memory(iw.MLP(depth=1), t, 10**6, 10)
        Traceback (most recent call last):
        ...
        ValueError: memory_budget=4 GiB does not fit ...
    """
    budget = parse_bytes(DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget)
    dim = target.dim

    def need(m: int) -> int:
        return gram_memory(m, n_test, dim, arch=arch, kind=kind,
                           posterior_variance=posterior_variance, extra=extra)

    if need(n_train) <= budget:
        return need(n_train)
    lo = _largest_fit(need, n_train, budget)
    n = n_train + n_test
    gram = 8 * n * n
    chol = 2 * 8 * n_train * n_train
    fit = (f"the largest sample size that fits is m={lo}" if lo >= 1 else
           f"not even m=1 fits with n_test={n_test}: lower n_test")
    raise ValueError(
        f"memory_budget={format_bytes(budget)} does not fit the largest sample size "
        f"m={n_train} with n_test={n_test}: about {format_bytes(need(n_train))} "
        f"({need(n_train)} bytes) per seed (float64 Gram of {n}×{n} "
        f"{format_bytes(gram)}, Cholesky working copies {format_bytes(chol)}, plus inputs and "
        f"the kernel engine's working set); {fit}. Raise memory_budget or use smaller "
        f"sample sizes.")


def _largest_fit(need: Any, n_train: int, budget: int) -> int:
    """The largest m ≤ n_train with need(m) ≤ budget (0 if none): bisection, need grows."""
    lo, hi = 0, n_train
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if need(mid) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def store_memory(n_train: int, n_test: int, dim: int = 0, *,
                 arch: Architecture | None = None, kind: str = "ntk") -> int:
    """Least peak bytes of the store route at largest sample size ``n_train`` (n = n_train +
    n_test points): the inputs, their stored copy and the labels (as :func:`gram_memory`),
    the engine's 1×1 tile (:func:`~infwidth.kernels.tiles.tile_memory`, with ``arch``), one
    full-width Gram row in the eighth of the budget that row blocks get (8·8·n), and the
    conjugate-gradient vectors (5·8·n).

    Example:
        >>> store_memory(10**6, 10) < 2**30   # what a 10⁶-point Gram needs beyond its store
        True
    """
    n_train, n_test = check_pos_int("n_train", n_train), check_pos_int("n_test", n_test)
    n = n_train + n_test
    b = 2 * 8 * n * int(dim) + 8 * 4 * n + 8 * 8 * n + 5 * 8 * n
    if arch is not None and dim:
        from infwidth.kernels.tiles import tile_memory

        b += tile_memory(arch, 1, int(dim), (kind,), "float64")
    return int(b)


def regression_routes(arch: Architecture, target: Target, sample_sizes: Any, n_test: int,
                      memory_budget: int | str | None = DEFAULT_MEMORY_BUDGET, *,
                      kind: str = "ntk", store: bool = True) -> dict[int, str]:
    """The route of each m of a nested curve whose one Gram holds max(m) + n_test points:
    "in-memory" for all when :func:`gram_memory` fits ``memory_budget``; else, with a
    ``store``, "store-cholesky" for m ≤ :func:`~infwidth.kernels.gram_store.cholesky_limit`
    and "store-cg" above. Refuses (ValueError, one sentence naming the largest m that fits)
    when the store route cannot run either (:func:`store_memory`), or without a store (or
    zarr) when the Gram does not fit (:func:`check_gram_memory`'s message).

    Example:
        >>> import infwidth as iw
        >>> t = iw.Target.local("hypercube", 16, 4, degree=1)
        >>> regression_routes(iw.MLP(depth=1), t, [100, 30000], 1000, "4GiB")
        {100: 'store-cholesky', 30000: 'store-cg'}
    """
    from infwidth.kernels.gram_store import cholesky_limit, zarr

    ms = [int(m) for m in check_sample_sizes(sample_sizes)]
    n_test = check_pos_int("n_test", n_test)
    budget = parse_bytes(DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget)
    dim, n_train = target.dim, ms[-1]
    if gram_memory(n_train, n_test, dim, arch=arch, kind=kind) <= budget:
        return dict.fromkeys(ms, "in-memory")
    if not store or zarr is None:
        try:
            check_gram_memory(arch, target, n_train, n_test, budget, kind=kind)
        except ValueError as e:
            why = ("pip install 'infwidth[distributed]' for the Gram store route"
                   if store else "give a Gram store for the store route")
            raise ValueError(f"{e} Or {why}.") from None

    def need(m: int) -> int:
        return store_memory(m, n_test, dim, arch=arch, kind=kind)

    if need(n_train) > budget:
        lo = _largest_fit(need, n_train, budget)
        raise ValueError(
            f"memory_budget={format_bytes(budget)} cannot run m={n_train} with n_test={n_test} "
            f"even through the Gram store: its least working set is {format_bytes(need(n_train))}"
            f" (inputs, one tile, one Gram row, solver vectors); the largest m that fits is "
            f"m={lo}")
    limit = cholesky_limit(budget)
    return {m: "store-cholesky" if m <= limit else "store-cg" for m in ms}


# --------------------------------------------------------------------------------------
# Measured kernel regression
# --------------------------------------------------------------------------------------
def _derived_seed(seed: int, tag: int) -> int:
    return int(np.random.SeedSequence([check_seed("seed", seed), tag]).generate_state(1)[0])


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


def _aligned_fortran_copy(a: np.ndarray, align: int = 64) -> np.ndarray:
    """A Fortran-ordered float64 copy of ``a`` starting on an ``align``-byte boundary.

    OpenBLAS's vector kernels (behind LAPACK's Cholesky and its condition estimate) round
    differently when an array starts at another offset within a cache line, so a heap copy
    made in a process with another allocation history could change the last bits; a fixed
    alignment keeps "same seed, same bits" across processes."""
    n_bytes = a.size * 8
    buf = np.empty(n_bytes + align, dtype=np.uint8)
    start = (-buf.ctypes.data) % align
    out = buf[start:start + n_bytes].view(np.float64).reshape(a.shape, order="F")
    out[...] = a
    return out


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
    gram = np.asarray(gram)
    if gram.dtype.kind not in "biuf":
        raise TypeError(f"gram must be a real array, got dtype {gram.dtype}")
    gram = gram.astype(np.float64, copy=False)
    yt = check_targets(y_train, None, "y_train")
    ys = check_targets(y_test, None, "y_test")
    n_train, n_test = yt.shape[0], ys.shape[0]
    if gram.shape != (n_train + n_test,) * 2:
        raise ValueError(f"gram must be ({n_train + n_test}, {n_train + n_test}) for "
                         f"{n_train} training and {n_test} test points, got {gram.shape}")
    check_finite("gram", gram)
    if ys.shape[1] != yt.shape[1]:
        raise ValueError(f"y_test has {ys.shape[1]} columns, y_train {yt.shape[1]}")
    if ms[-1] > n_train:
        raise ValueError(f"sample_sizes go up to {ms[-1]} but only {n_train} training points "
                         f"were given")
    k_test = gram[n_train:, :n_train]
    out = []
    for m in ms:
        a = _aligned_fortran_copy(gram[:m, :m])
        shift = ridge + jitter * float(np.trace(a)) / m
        a[np.diag_indices(m)] += shift
        anorm = float(np.abs(a).sum(axis=0).max())
        try:
            with cholesky_threads(m):
                c, low = scipy.linalg.cho_factor(a, lower=True, overwrite_a=True,
                                                 check_finite=False)
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
    given = list(target.values()) if isinstance(target, Mapping) else list(target)
    if not given:
        raise ValueError("target must hold at least one Target")
    for i, t in enumerate(given):
        if not isinstance(t, Target):
            raise TypeError(f"target[{i}] must be an iw.Target, got {type(t).__name__}")
    first = given[0]
    for i, t in enumerate(given):
        if (t.domain, t.dim, t.patch_dim) != (first.domain, first.dim, first.patch_dim):
            raise ValueError(
                f"target: all targets must share domain, dim and patch_dim (one set of "
                f"inputs serves them all), but target[0] ({first.name!r}) has domain="
                f"{first.domain!r}, dim={first.dim}, patch_dim={first.patch_dim} and "
                f"target[{i}] ({t.name!r}) has domain={t.domain!r}, dim={t.dim}, "
                f"patch_dim={t.patch_dim}")
    if len(items) != len(given):
        names = [t.name for t in given]
        raise ValueError(f"target names must be distinct (they name the rows), got {names}")
    return items


def _check_arch_fits(arch: Architecture, target: Target) -> None:
    """The targets' dim must fit the architecture's input (``arch.input_shape``)."""
    try:
        arch.input_shape(target.dim)
    except (TypeError, ValueError) as e:
        raise ValueError(f"target: its dim={target.dim} does not fit the architecture "
                         f"{type(arch).__name__}: {e}") from None


def kernel_regression_curve(arch: Architecture, target: Any, sample_sizes: Any,
                            kind: str = "ntk", ridge: float = 0.0, seeds: int = 5,
                            n_test: int = 1000, domain: str | None = None,
                            dim: int | None = None, noise: float = 0.0, seed: int = 0,
                            jitter: float = DEFAULT_JITTER, posterior_variance: bool = False,
                            per_seed: bool = False, progress: bool | None = None,
                            memory_budget: int | str = DEFAULT_MEMORY_BUDGET,
                            architecture: str | None = None,
                            store: str | os.PathLike | None = None,
                            client: Any = None) -> pd.DataFrame:
    """Measured test MSE of kernel regression with ``arch``'s NNGP/NTK on ``target``.

    For each seed s (data seed ``seed + s``): draw max(m) + n_test inputs and a concrete
    target (:func:`regression_dataset`), compute one float64 Gram matrix (:func:`infwidth.kernel`),
    and solve every m on its leading principal submatrix (:func:`nested_regression`; ridge
    δ plus the jitter 1e-10·tr(K_mm)/m). Training labels get N(0, noise²) noise; the test MSE
    is against the clean target plus noise² (the expectation of the noisy-label test MSE, the
    quantity :func:`predict_learning_curve` predicts).

    ``target`` may be one Target or a list/dict of Targets on the same inputs (one Gram per
    seed serves all). Returns the tidy long curve of :mod:`infwidth.learning.curves` (source
    "measured", component "total", ``architecture`` its label, default the class name):
    test_mse is the mean over seeds, spread = test_mse_std the standard deviation, then
    n_seeds, condition_number (largest over seeds), and with ``posterior_variance`` the mean
    GP posterior variance on the test points (``nt.predict.gp_inference`` on the same Gram).
    ``per_seed=True`` returns one row per seed (spread NaN).

    Every argument is checked, and the memory of one seed estimated from the largest m
    (:func:`gram_memory`), before any work: a run over ``memory_budget`` (bytes or "4GiB",
    the default of :func:`infwidth.kernel`) is refused with the largest m that fits.

    ``store`` (a folder): each seed's Gram is filled into the Zarr store
    ``<store>/seed<s>.zarr`` by :func:`infwidth.kernels.gram` (tile by tile, resumable after
    a kill, on a Dask ``client`` if given; needs the ``[distributed]`` extra) and read back
    from it. Where the whole (max m + n_test)² Gram fits in a quarter of ``memory_budget``
    it is loaded and solved as above; above that, each m is solved from the store in row
    blocks (:func:`infwidth.kernels.kernel_regression_from_store`: in-memory Cholesky of the
    m×m training Gram up to :func:`~infwidth.kernels.gram_store.cholesky_limit` (21,674 at
    4 GiB), conjugate gradients streaming the rows above it, where condition_number is NaN).

    Args:
        arch: the architecture.
        target: a :class:`~infwidth.Target`, or a list/dict of them.
        sample_sizes: the m values (nested: every m solves on the first m points).
        kind: "ntk" or "nngp".
        ridge: the ridge δ ≥ 0.
        seeds: data seeds averaged.
        n_test: test points per seed.
        domain: the input domain (``None``: the target's).
        dim: the input dimension (``None``: the target's).
        noise: training-label noise std ε.
        seed: the first data seed.
        jitter: relative diagonal jitter of each solve.
        posterior_variance: add the mean GP posterior variance.
        per_seed: one row per seed instead of the mean.
        progress: a progress bar (``None``: for long runs).
        memory_budget: bytes or a string such as "4GiB"; refused beyond it before any work.
        architecture: the curve's label (default: the class name).
        store: a folder for each seed's Gram as a Zarr store (``None``: in memory).
        client: a Dask client or scheduler address filling the stores.

    Returns:
        The tidy long curve (source "measured", component "total"): test_mse (mean over seeds),
        spread, n_seeds, condition_number.

    Example:
        >>> import infwidth as iw
        >>> t = iw.Target.pair("hypercube", 16, 4)
        >>> df = iw.kernel_regression_curve(iw.DCNN(patch_dim=4, filter_sizes=(2, 2)), t,
        ...                                 [16, 64], seeds=2, n_test=100)
        >>> list(df.columns[:7])
        ['architecture', 'target', 'component', 'sample_size', 'test_mse', 'spread', 'source']
    """
    check_architecture(arch)
    check_label(architecture)
    targets = _as_targets(target)
    ms = check_sample_sizes(sample_sizes)
    check_kind(kind)
    ridge, noise = check_nonneg("ridge", ridge), check_nonneg("noise", noise)
    jitter = check_nonneg("jitter", jitter)
    seeds, n_test = check_pos_int("seeds", seeds), check_pos_int("n_test", n_test)
    seed = check_seed("seed", seed)
    for name, flag in (("posterior_variance", posterior_variance), ("per_seed", per_seed)):
        check_bool(flag, name)
    check_progress(progress)
    if store is not None and not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a folder path or None, got {type(store).__name__}")
    if client is not None and store is None:
        raise ValueError("client needs a store: the tiles a Dask cluster computes are "
                         "written to it")
    if store is not None and posterior_variance:
        raise ValueError("posterior_variance is computed from an in-memory Gram; pass "
                         "store=None")
    first = next(iter(targets.values()))
    _check_arch_fits(arch, first)
    for t in targets.values():
        t.check_domain(domain, dim)
        t.arch_degrees(arch)  # refuses components that are not eigenfunctions on arch
    n_train = int(ms[-1])
    if store is None:
        check_gram_memory(arch, first, n_train, n_test, memory_budget, kind=kind,
                          posterior_variance=bool(posterior_variance))
    rows = []
    show = show_progress(progress, seeds * len(ms) * n_train, 2e5)
    for s in tqdm(range(seeds), desc="kernel regression seeds", disable=not show,
                  leave=False):
        sd = seed + s
        x, _ = regression_dataset(first, n_train + n_test, sd)
        fs = [regression_dataset(t, 1, sd)[1] for t in targets.values()]
        clean = np.stack([f(x) for f in fs], axis=1)
        y_train = clean[:n_train] + np.stack(
            [label_noise(n_train, noise, sd)] * len(fs), axis=1)
        if store is None:
            gram = kernel(arch, x, kind=kind, progress=False,
                          memory_budget=memory_budget or DEFAULT_MEMORY_BUDGET)
        else:
            gram = _stored_gram(arch, x, kind, Path(store) / f"seed{sd}.zarr", client,
                                memory_budget, show)
        if isinstance(gram, np.ndarray):
            res = nested_regression(gram, y_train, clean[n_train:], ms, ridge, jitter)
        else:
            res = [stored_regression(gram, int(m), y_train, clean[n_train:], n_train,
                                     ridge=ridge, jitter=jitter, memory_budget=memory_budget)
                   for m in ms]
        pvar = _posterior_variance(gram, n_train, ms, ridge, jitter) \
            if posterior_variance else None
        del gram, x  # one seed's Gram at a time (the estimate counts one)
        for j, r in enumerate(res):
            for i, name in enumerate(targets):
                row = {"target": name, "seed": sd, "sample_size": r["sample_size"],
                       "test_mse": float(r["test_mse"][i]) + noise ** 2,
                       "condition_number": r["condition_number"]}
                if pvar is not None:
                    row["posterior_variance"] = pvar[j]
                rows.append(row)
    long = pd.DataFrame(rows)
    label = architecture or type(arch).__name__
    if per_seed:
        return curve_frame(long, architecture=label, source="measured")
    agg = aggregate_seeds(long)
    return curve_frame(agg, architecture=label, source="measured", spread=agg["test_mse_std"])


def _stored_gram(arch: Architecture, x: np.ndarray, kind: str, path: Path, client: Any,
                 memory_budget: int | str, show: bool) -> Any:
    """The Gram of ``x`` through a Zarr tile store (filled where missing): in memory when
    it fits a quarter of ``memory_budget``, else the lazy StoredGram."""
    from infwidth.kernels.distributed import gram

    g = gram(arch, x, kinds=(kind,), store=path, client=client, memory_budget=memory_budget,
             progress=show)
    n = x.shape[0]
    if 8 * n * n <= parse_bytes(memory_budget) // 4:
        return g.to_numpy().astype(np.float64)
    return g


def stored_regression(gram: Any, m: int, y_train: np.ndarray, y_test: np.ndarray,
                      n_train: int, *, ridge: float = 0.0, jitter: float = DEFAULT_JITTER,
                      memory_budget: int | str = DEFAULT_MEMORY_BUDGET) -> dict:
    """One m of a nested curve solved from a Gram store (:class:`~infwidth.kernels.gram_store.
    StoredGram` of [n_train training; test] points: rows 0..m train, rows n_train.. test) by
    :func:`~infwidth.kernels.gram_store.kernel_regression_from_store`, with the shift of
    :func:`nested_regression`. Returns {"sample_size", "test_mse" (array), "route"
    ("store-cholesky" or "store-cg"), "condition_number" (dpocon estimate; NaN for CG),
    "cg_residual" and "cg_iterations" (NaN and 0 for Cholesky)}."""
    from infwidth.kernels.gram_store import kernel_regression_from_store

    r = kernel_regression_from_store(gram, m, y_train[:m], y_test, ridge=ridge, jitter=jitter,
                                     memory_budget=memory_budget, test_start=n_train)
    cg = r["solver"] == "cg"
    return {"sample_size": m, "test_mse": np.atleast_1d(r["test_mse"]),
            "route": f"store-{r['solver']}",
            "condition_number": math.nan if cg else r["condition_number"],
            "cg_residual": r["residual"] if cg else math.nan,
            "cg_iterations": r["iterations"]}


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
