"""Generalization: predicted (eigenlearning) and measured (kernel regression) learning curves.

**Predictor** (``theory.md`` §4; equivalent to Canatar–Bordelon–Pehlevan). With eigenvalues
λ_i of multiplicity M_i (one row per eigenspace type), m samples, ridge δ and label noise ε²:

    m = Σ_i M_i·λ_i/(λ_i + κ) + (δ + τ)/κ          (solved for κ > 0, bisection in log κ)
    L_i = λ_i/(λ_i + κ),   E0 = m/(m − Σ_i M_i·L_i²)
    test MSE = E0·(Σ_c (1 − L_{i(c)})²·v_c² + ε²)

where the target component c of power v_c² lies in type i(c) (how its power is spread over
the M_i eigenfunctions of that type does not matter: they share λ_i). τ is the **tail**: the
trace mass of the modes beyond the spectrum's ``max_degree``, τ = E[K(x, x)] − Σ_i M_i·λ_i.
Those modes are treated as an effective ridge (each has λ ≪ κ, so M·λ/(λ+κ) ≈ M·λ/κ); their
contribution to Σ M·L² (≤ τ·λ_max,tail/κ²) is neglected. The test MSE is against noisy test
labels (the formula's ε² term); subtract ε² for the error on the clean target.

**Staircase** (high-dimensional limit): with m samples a component counts as learned iff its
learning index L(k) < log m / log d (d = dim).

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

from .architectures import Architecture
from .inputs import check_targets, sample_inputs
from .kernels import KINDS
from .targets import Target, TargetFunction, canonical_type
from .tree_gram import tree_gram

__all__ = ["solve_kappa", "eigenlearning", "component_table", "predict_learning_curve",
           "staircase", "tree_gram", "nested_regression", "regression_dataset",
           "kernel_regression_curve", "DEFAULT_JITTER"]

DEFAULT_JITTER = 1e-10


# --------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------
def check_sample_sizes(sample_sizes: Any, name: str = "sample_sizes") -> np.ndarray:
    """Sorted unique positive integers (ValueError naming ``name`` otherwise)."""
    if isinstance(sample_sizes, (int, np.integer)) and not isinstance(sample_sizes, bool):
        sample_sizes = [sample_sizes]
    try:
        arr = np.asarray(sample_sizes)
    except Exception as e:  # pragma: no cover
        raise TypeError(f"{name} must be a sequence of positive integers: {e}") from e
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of positive integers, "
                         f"got {sample_sizes!r}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
                and np.all(arr == np.round(arr))):
            raise ValueError(f"{name} must be positive integers, got {sample_sizes!r}")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be positive integers, got {sample_sizes!r}")
    return np.unique(arr.astype(np.int64))


def check_nonneg(name: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
            or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {v!r}")
    return float(v)


def _pos_int(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


# --------------------------------------------------------------------------------------
# Eigenlearning
# --------------------------------------------------------------------------------------
def solve_kappa(eigenvalues: Any, multiplicities: Any, m: Any, ridge: float = 0.0) -> np.ndarray:
    """κ > 0 solving m = Σ_i M_i·λ_i/(λ_i + κ) + ridge/κ, for each m (bisection in log κ).

    Zero eigenvalues drop out. With ridge = 0 and m ≥ N+ = Σ_{λ_i>0} M_i there is no positive
    root: κ = 0 (every mode learned)."""
    lam = np.asarray(eigenvalues, dtype=np.float64)
    mult = np.asarray(multiplicities, dtype=np.float64)
    if lam.shape != mult.shape or lam.ndim != 1:
        raise ValueError("eigenvalues and multiplicities must be 1-D arrays of one shape")
    if np.any(~np.isfinite(lam)) or np.any(lam < 0):
        raise ValueError("eigenvalues must be finite and non-negative")
    if np.any(~np.isfinite(mult)) or np.any(mult < 0):
        raise ValueError("multiplicities must be finite and non-negative")
    ridge = check_nonneg("ridge", ridge)
    keep = (lam > 0) & (mult > 0)
    lam, mult = lam[keep], mult[keep]
    ms = np.atleast_1d(np.asarray(m, dtype=np.float64))
    n_plus, trace = float(mult.sum()), float((mult * lam).sum())
    out = np.zeros_like(ms)
    for j, mj in enumerate(ms):
        if not mj > 0:
            raise ValueError(f"sample sizes must be positive, got {mj}")
        if ridge == 0.0 and mj >= n_plus:
            out[j] = 0.0
            continue

        def f(log_k: float) -> float:
            k = math.exp(log_k)
            return float((mult * lam / (lam + k)).sum()) + ridge / k - mj

        hi = math.log((trace + ridge) / mj) + 1.0   # f(hi) < 0: Σ M·λ/(λ+κ) ≤ tr/κ
        lo = hi - 2.0
        while f(lo) <= 0.0:
            lo -= 2.0 + (hi - lo)
            if lo < -745.0:  # below the float64 range: the root is κ ≈ 0
                lo = None
                break
        if lo is None:
            out[j] = 0.0
            continue
        for _ in range(200):  # bisection in log κ: f is decreasing
            mid = 0.5 * (lo + hi)
            if f(mid) > 0.0:
                lo = mid
            else:
                hi = mid
            if hi - lo < 1e-14:
                break
        out[j] = math.exp(0.5 * (lo + hi))
    return out


def _times(e0: float, x: float) -> float:
    """E0·x with inf·0 = 0 (at the interpolation threshold E0 = ∞ multiplies nothing)."""
    return 0.0 if x == 0.0 else e0 * x


def eigenlearning(eigenvalues: Any, multiplicities: Any, sample_sizes: Any,
                  powers: Any, ridge: float = 0.0, noise: float = 0.0) -> pd.DataFrame:
    """Eigenlearning on a type-level spectrum (module docstring).

    ``powers[i]`` is the target power v_i² in type i (spread over its M_i eigenfunctions).
    Returns sample_size, kappa, E0, bias = Σ_i v_i²·(1 − L_i)², test_mse, sum_learnability
    (Σ M·L + δ/κ, = m) and one column ``learnability:i`` per type.

    Example (one mode, λ = 1 of multiplicity 3, m = 1, δ = 0: 1 = 3/(1 + κ) ⇒ κ = 2, L = 1/3,
    E0 = 1/(1 − 3/9) = 3/2, test MSE = E0·(1 − L)² = 2/3):
        >>> df = eigenlearning([1.0], [3], [1], [1.0])
        >>> [round(float(df[c][0]), 12) for c in ("kappa", "learnability:0", "E0", "test_mse")]
        [2.0, 0.333333333333, 1.5, 0.666666666667]
    """
    ms = check_sample_sizes(sample_sizes)
    lam = np.asarray(eigenvalues, dtype=np.float64)
    mult = np.asarray(multiplicities, dtype=np.float64)
    pw = np.asarray(powers, dtype=np.float64)
    if pw.shape != lam.shape:
        raise ValueError(f"powers must have one entry per eigenvalue ({lam.shape}), "
                         f"got {pw.shape}")
    if np.any(~np.isfinite(pw)) or np.any(pw < 0):
        raise ValueError("powers must be finite and non-negative")
    ridge, noise = check_nonneg("ridge", ridge), check_nonneg("noise", noise)
    kappa = solve_kappa(lam, mult, ms, ridge)
    rows = []
    for mj, k in zip(ms, kappa):
        L = np.where(lam > 0, lam / (lam + k) if k > 0 else 1.0, 0.0)
        s2 = float((mult * L * L).sum())
        e0 = mj / (mj - s2) if mj > s2 else math.inf
        bias = float((pw * (1.0 - L) ** 2).sum())
        mse = _times(e0, bias + noise ** 2)
        row = {"sample_size": int(mj), "kappa": float(k), "E0": e0, "bias": bias,
               "test_mse": mse,
               "sum_learnability": float((mult * L).sum()) + (ridge / k if k > 0 else 0.0)}
        row.update({f"learnability:{i}": float(L[i]) for i in range(len(lam))})
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Spectrum adapter
# --------------------------------------------------------------------------------------
def _spec_info(spec: Any) -> tuple[Architecture, int, str, str, pd.DataFrame]:
    """(arch, dim, domain, kind, table) of a Spectrum (duck-typed: attributes arch, dim,
    domain, kind and a ``table()`` with columns degrees, eigenvalue, multiplicity)."""
    missing = [a for a in ("arch", "dim", "domain", "kind", "table") if not hasattr(spec, a)]
    if missing:
        raise TypeError(f"spec must be a Spectrum from iw.spectrum(...); "
                        f"{type(spec).__name__} lacks {missing}")
    table = spec.table() if callable(spec.table) else spec.table
    need = {"degrees", "eigenvalue", "multiplicity"}
    if not need <= set(table.columns):
        raise ValueError(f"spec.table() lacks columns {sorted(need - set(table.columns))}")
    return spec.arch, int(spec.dim), str(spec.domain), str(spec.kind), table


def kernel_trace(arch: Architecture, dim: int, domain: str, kind: str = "ntk",
                 patch_dim: int | None = None) -> float:
    """E[K(x, x)]: constant on both input laws, evaluated at one sampled point."""
    x = sample_inputs(domain, 2, dim, patch_dim, seed=0)
    return float(np.mean(np.diag(tree_gram(arch, x, kind=kind))))


def component_table(spec: Any, target: Target) -> pd.DataFrame:
    """One row per target component: its leaf degree profile on ``spec.arch``, the matching
    eigenspace type's eigenvalue, multiplicity and learning index, and its power.

    A component whose type is absent from the table gets eigenvalue 0 when its learning
    index is ∞ (e.g. S-CNN cross-patch terms); otherwise it is refused (raise max_degree)."""
    from .theory import learning_index

    arch, dim, domain, kind, table = _spec_info(spec)
    if not isinstance(target, Target):
        raise TypeError(f"target must be an iw.Target, got {type(target).__name__}")
    target.check_domain(domain, dim)
    leaf_degs = target.arch_degrees(arch)
    keys = [canonical_type(arch, dim, tuple(d)) for d in table["degrees"]]
    index = {k: i for i, k in enumerate(keys)}
    rows = []
    for c, deg in zip(target.components, leaf_degs):
        key = canonical_type(arch, dim, deg)
        li = learning_index(arch, deg, dim)
        if key in index:
            r = table.iloc[index[key]]
            lam, mult, row = float(r["eigenvalue"]), float(r["multiplicity"]), index[key]
            if "learning_index" in table.columns:
                li = float(r["learning_index"])
        elif math.isinf(li):
            lam, mult, row = 0.0, math.nan, -1
        else:
            top = int(table["degrees"].map(sum).max())
            raise ValueError(f"component {c.label!r} (leaf degrees {deg}, frequency "
                             f"{sum(deg)}) has no eigenspace type in the spectrum (computed "
                             f"up to frequency {top}); raise max_degree")
        rows.append({"component": c.label, "degrees": deg, "frequency": sum(deg),
                     "power": c.power, "eigenvalue": lam, "multiplicity": mult,
                     "learning_index": li, "row": row})
    return pd.DataFrame(rows)


def predict_learning_curve(spec: Any, target: Target, sample_sizes: Any, ridge: float = 0.0,
                           noise: float = 0.0, trace: float | None = None) -> pd.DataFrame:
    """Predicted test MSE of kernel regression with ``spec``'s kernel on ``target``.

    Eigenlearning over every type of ``spec.table()`` with its multiplicity, plus the tail
    τ = trace − Σ M·λ as an effective ridge (module docstring; ``trace`` defaults to
    E[K(x, x)] of the architecture). Columns: sample_size, test_mse, kappa, E0, tail_trace (τ),
    staircase_mse (error of the staircase limit: Σ of the powers not learned + ε²), and per
    component ``learnability:<label>`` and ``learned:<label>`` (staircase: L(k) < log m/log d).

    Example:
        >>> import infwidth as iw
        >>> arch = iw.DCNN(patch_dim=8, filter_sizes=(2, 4))
        >>> spec = iw.spectrum(arch, dim=64, domain="hypercube", kind="ntk", max_degree=3)
        >>> t = iw.Target.pair("hypercube", 64, 8)
        >>> iw.predict_learning_curve(spec, t, [64, 1024]).test_mse.is_monotonic_decreasing
        True
    """
    ms = check_sample_sizes(sample_sizes)
    ridge, noise = check_nonneg("ridge", ridge), check_nonneg("noise", noise)
    comp = component_table(spec, target)
    arch, dim, domain, kind, table = _spec_info(spec)
    lam = table["eigenvalue"].to_numpy(np.float64)
    mult = table["multiplicity"].to_numpy(np.float64)
    # Types whose eigenvalue is within round-off of 0 (|λ| ≤ 2·error_bound, e.g. the odd
    # degrees ≥ 3 of a one-layer ReLU NTK) are exactly-zero types: a stray 1e-19 would
    # otherwise count as a learnable mode once m exceeds the kernel's rank.
    err = table["error_bound"].to_numpy(np.float64) if "error_bound" in table.columns \
        else np.zeros(len(lam))
    zero = lam <= 2.0 * np.nan_to_num(err, nan=0.0)
    lam = np.where(zero, 0.0, lam)
    captured = float((lam * mult).sum())
    if trace is None:
        tr = getattr(spec, "trace", None)
        trace = float(tr() if callable(tr) else tr) if tr is not None else \
            kernel_trace(arch, dim, domain, kind, target.patch_dim)
    tail = float(trace) - captured
    tail = tail if tail > 1e-12 * float(trace) else 0.0  # below round-off: a finite-rank kernel
    powers = np.zeros(len(lam))
    for r, p in zip(comp["row"], comp["power"]):
        if r >= 0:
            powers[r] += p
    comp["eigenvalue"] = [lam[r] if r >= 0 else 0.0 for r in comp["row"]]
    zero_power = float(comp.loc[comp["row"] < 0, "power"].sum())
    df = eigenlearning(lam, mult, ms, powers, ridge + tail, 0.0)
    lcols = [f"learnability:{i}" for i in range(len(lam))]
    out = df[["sample_size", "kappa", "E0"]].copy()
    out["test_mse"] = [_times(e0, b + zero_power + noise ** 2)
                       for e0, b in zip(df["E0"], df["bias"])]
    out["tail_trace"] = tail
    log_d = math.log(dim)
    stair = np.full(len(ms), noise ** 2)
    for _, c in comp.iterrows():
        L = df[lcols[c["row"]]].to_numpy() if c["row"] >= 0 else np.zeros(len(ms))
        out[f"learnability:{c['component']}"] = L
        learned = c["learning_index"] < np.log(ms) / log_d
        out[f"learned:{c['component']}"] = learned
        stair += np.where(learned, 0.0, c["power"])
    out["staircase_mse"] = stair
    out.attrs.update(components=comp.to_dict("records"), trace=float(trace),
                     captured_trace=captured, ridge=ridge, noise=noise,
                     zeroed_types=int(zero.sum()))
    return out


def staircase(spec: Any, target: Target, sample_sizes: Any) -> pd.DataFrame:
    """The high-dimensional staircase: per (m, component), learned iff L(k) < log m / log d.
    Long table: sample_size, component, learning_index, threshold, learned."""
    ms = check_sample_sizes(sample_sizes)
    comp = component_table(spec, target)
    dim = int(spec.dim)
    rows = [{"sample_size": int(m), "component": c["component"],
             "learning_index": c["learning_index"], "threshold": math.log(m) / math.log(dim),
             "learned": bool(c["learning_index"] < math.log(m) / math.log(dim))}
            for m in ms for _, c in comp.iterrows()]
    return pd.DataFrame(rows)


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
    seeds, n_test = _pos_int("seeds", seeds), _pos_int("n_test", n_test)
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

    from ._nt_compat import load

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
