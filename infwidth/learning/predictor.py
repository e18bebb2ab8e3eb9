"""The eigenlearning predictor: learning curves from a spectrum table.

**Predictor** (``docs/theory.md`` §4; equivalent to Canatar–Bordelon–Pehlevan). With eigenvalues
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
"""


from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import sample_inputs
from infwidth.eigenspaces.engine import ROUNDOFF_FACTOR, roundoff_zeroed
from infwidth.kernels.engine import kernel
from infwidth.learning.curves import TOTAL, curve_frame
from infwidth.learning.targets import Target, canonical_type
from infwidth.validation import check_label, check_nonneg, check_sample_sizes

__all__ = ["solve_kappa", "eigenlearning", "component_table", "predict_learning_curve",
           "staircase", "kernel_trace"]


# --------------------------------------------------------------------------------------
# Eigenlearning
# --------------------------------------------------------------------------------------
def solve_kappa(eigenvalues: Any, multiplicities: Any, m: Any, ridge: float = 0.0) -> np.ndarray:
    """κ > 0 solving m = Σ_i M_i·λ_i/(λ_i + κ) + ridge/κ, for each m (bisection in log κ).

    Zero eigenvalues drop out. With ridge = 0 and m ≥ N+ = Σ_{λ_i>0} M_i there is no positive
    root: κ = 0 (every mode learned). A spectrum without a positive eigenvalue needs
    ridge > 0 (with ridge = 0 nothing determines κ): it is refused."""
    lam = _real_array("eigenvalues", eigenvalues)
    mult = _real_array("multiplicities", multiplicities)
    if lam.shape != mult.shape or lam.ndim != 1:
        raise ValueError(f"eigenvalues and multiplicities must be 1-D arrays of one shape, "
                         f"got {lam.shape} and {mult.shape}")
    if np.any(~np.isfinite(lam)) or np.any(lam < 0):
        raise ValueError("eigenvalues must be finite and non-negative")
    if np.any(~np.isfinite(mult)) or np.any(mult < 0):
        raise ValueError("multiplicities must be finite and non-negative")
    ridge = check_nonneg("ridge", ridge)
    keep = (lam > 0) & (mult > 0)
    lam, mult = lam[keep], mult[keep]
    ms = np.atleast_1d(_real_array("m", m))
    if ms.ndim != 1 or not np.all(np.isfinite(ms)) or not np.all(ms > 0):
        raise ValueError(f"m must be positive sample sizes, got {m!r}")
    if not len(lam) and ridge == 0.0:
        raise ValueError(
            "eigenvalues: the kernel has no positive eigenvalue (with a positive "
            "multiplicity), so with ridge=0 nothing fixes κ and no mode can be learned: "
            "give a spectrum with a positive eigenvalue or a ridge > 0")
    n_plus, trace = float(mult.sum()), float((mult * lam).sum())
    out = np.zeros_like(ms)
    for j, mj in enumerate(ms):
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


def _real_array(name: str, v: Any) -> np.ndarray:
    """float64 array of ``v``; TypeError naming ``name`` when it is not real numbers."""
    try:
        arr = np.asarray(v)
    except (TypeError, ValueError) as e:  # ragged sequences
        raise ValueError(f"{name} must be an array of real numbers: {e}") from None
    if arr.dtype == bool or arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _times(e0: float, x: float) -> float:
    """E0·x with inf·0 = 0 (at the interpolation threshold E0 = ∞ multiplies nothing)."""
    return 0.0 if x == 0.0 else e0 * x


def eigenlearning(eigenvalues: Any, multiplicities: Any, sample_sizes: Any,
                  powers: Any, ridge: float = 0.0, noise: float = 0.0) -> pd.DataFrame:
    """Eigenlearning on a type-level spectrum (module docstring).

    ``powers[i]`` is the target power v_i² in type i (spread over its M_i eigenfunctions).
    Returns sample_size, kappa, E0, bias = Σ_i v_i²·(1 − L_i)², test_mse, sum_learnability
    (Σ M·L + δ/κ, = m; at κ = 0, ridgeless with m ≥ N+, δ/κ is its limit m − N+ as δ → 0)
    and one column ``learnability:i`` per type. A spectrum with no positive eigenvalue and
    ridge = 0 is refused (ValueError).

    One mode, λ = 1 of multiplicity 3, m = 1, δ = 0: 1 = 3/(1 + κ) ⇒ κ = 2, L = 1/3,
    E0 = 1/(1 − 3/9) = 3/2, test MSE = E0·(1 − L)² = 2/3.

    Args:
        eigenvalues: λ_i, one per type.
        multiplicities: M_i, one per type.
        sample_sizes: the m values.
        powers: the target's power v_i² in each type.
        ridge: the ridge δ ≥ 0.
        noise: the label-noise variance ε² ≥ 0.

    Returns:
        A DataFrame, one row per m: kappa, E0, bias, test_mse, sum_learnability, learnability:i.

    Example:
        >>> df = eigenlearning([1.0], [3], [1], [1.0])
        >>> [round(float(df[c][0]), 12) for c in ("kappa", "learnability:0", "E0", "test_mse")]
        [2.0, 0.333333333333, 1.5, 0.666666666667]
    """
    ms = check_sample_sizes(sample_sizes)
    lam = _real_array("eigenvalues", eigenvalues)
    mult = _real_array("multiplicities", multiplicities)
    pw = _real_array("powers", powers)
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
        learned = float((mult * L).sum())
        # κ = 0: m ≥ N+ without ridge; δ/κ → m − N+ as δ → 0 (the identity's limit)
        rest = ridge / k if k > 0 else max(float(mj) - learned, 0.0)
        row = {"sample_size": int(mj), "kappa": float(k), "E0": e0, "bias": bias,
               "test_mse": mse, "sum_learnability": learned + rest}
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
    return float(np.mean(np.diag(kernel(arch, x, kind=kind))))


def component_table(spec: Any, target: Target) -> pd.DataFrame:
    """One row per target component: its leaf degree profile on ``spec.arch``, the matching
    eigenspace type's eigenvalue, multiplicity and learning index, and its power.

    A component whose type is absent from the table gets eigenvalue 0 when its learning
    index is ∞ (e.g. S-CNN cross-patch terms); otherwise it is refused (raise max_degree)."""
    from infwidth.eigenspaces.steiner import learning_index

    arch, dim, domain, kind, table = _spec_info(spec)
    if not isinstance(target, Target):
        raise TypeError(f"target must be an iw.Target, got {type(target).__name__}")
    target.check_domain(domain, dim)
    own = getattr(spec, "component_rows", None)
    if callable(own):   # a spectrum that maps components itself (iw.ConvSpectrum)
        return own(target)
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
                           noise: float = 0.0, trace: float | None = None,
                           negative: str = "raise", architecture: str | None = None
                           ) -> pd.DataFrame:
    """Predicted test MSE of kernel regression with ``spec``'s kernel on ``target``.

    Eigenlearning over every type of ``spec.table()`` with its multiplicity, plus the tail
    τ = trace − Σ M·λ as an effective ridge (module docstring; ``trace`` defaults to
    E[K(x, x)] of the architecture). The round-off rule of ``docs/theory.md`` §3
    (:func:`~infwidth.eigenspaces.engine.roundoff_zeroed`: |λ| ≤ 2·error_bound → 0) is
    applied to the table's ``eigenvalue`` and ``error_bound`` columns first; an eigenvalue
    negative beyond 2·error_bound raises (``negative="raise"``) or, with ``negative="warn"``,
    is reported by a RuntimeWarning and ``attrs["negative_types"]`` and set to 0.
    Returns the tidy long curve of :mod:`infwidth.learning.curves` (source "predicted";
    ``architecture`` labels it, default the class name): per sample size a "total" row
    (test_mse, kappa, E0, tail_trace τ, staircase_mse: the staircase limit's error, Σ of the
    powers not learned + ε²) and one row per target component (its share of the error,
    E0·(1 − L)²·power, its learnability L, learned: L(k) < log m/log d, learning_index,
    eigenvalue, power). ``.curve.wide()`` gives one row per sample size.

    Args:
        spec: a :class:`~infwidth.Spectrum` (or its ``table()``).
        target: the :class:`~infwidth.Target`.
        sample_sizes: the m values.
        ridge: the ridge δ ≥ 0.
        noise: the label-noise variance ε² ≥ 0.
        trace: E[K(x, x)] (``None``: the architecture's).
        negative: "raise" or "warn" for eigenvalues negative beyond round-off.
        architecture: the curve's label (default: the class name).

    Returns:
        The tidy long curve (source "predicted"): a "total" row and one row per component for every
        m.

    Example:
        >>> arch = iw.DCNN(patch_dim=8, filter_sizes=(2, 4))
        >>> spec = iw.spectrum(arch, dim=64, domain="hypercube", kind="ntk", max_degree=3)
        >>> t = iw.Target.pair("hypercube", 64, 8)
        >>> pred = iw.predict_learning_curve(spec, t, [64, 1024])
        >>> pred[pred.component == "total"].test_mse.is_monotonic_decreasing
        True
        >>> pred.curve.wide().test_mse.is_monotonic_decreasing
        True
    """
    ms = check_sample_sizes(sample_sizes)
    ridge, noise = check_nonneg("ridge", ridge), check_nonneg("noise", noise)
    if negative not in ("raise", "warn"):
        raise ValueError(f"negative must be 'raise' or 'warn', got {negative!r}")
    check_label(architecture)
    if trace is not None:
        if isinstance(trace, bool) or not isinstance(trace, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"trace must be a positive finite number (E[K(x, x)]) or None, "
                            f"got {trace!r}")
        if not (math.isfinite(trace) and trace > 0):
            raise ValueError(f"trace must be a positive finite number (E[K(x, x)]) or None, "
                             f"got {trace!r}")
    comp = component_table(spec, target)
    arch, dim, domain, kind, table = _spec_info(spec)
    lam = table["eigenvalue"].to_numpy(np.float64)
    mult = table["multiplicity"].to_numpy(np.float64)
    # A stray 1e-19 (odd degrees ≥ 3 of a one-layer ReLU NTK) would otherwise count as a
    # learnable mode once m exceeds the kernel's rank.
    err = table["error_bound"].to_numpy(np.float64) if "error_bound" in table.columns \
        else np.zeros(len(lam))
    lam = roundoff_zeroed(lam, err, ROUNDOFF_FACTOR, negative)
    zero = lam == 0.0
    # eigenlearning needs λ ≥ 0: negatives left by negative="warn" (reported) count as zeros
    negatives = np.flatnonzero(lam < 0)
    lam = np.where(lam < 0, 0.0, lam)
    captured = float((lam * mult).sum())
    if trace is None:
        tr = getattr(spec, "trace", None)
        trace = float(tr() if callable(tr) else tr) if tr is not None else \
            kernel_trace(arch, dim, domain, kind, target.patch_dim)
    tail = float(trace) - captured
    if tail < -1e-9 * max(float(trace), captured):
        raise ValueError(f"trace={float(trace)!r} is below the spectrum's captured mass "
                         f"Σ M·λ = {captured!r}: trace is E[K(x, x)], at least that mass")
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
    total = out[["sample_size", "test_mse", "kappa", "E0", "tail_trace", "staircase_mse"]]
    parts = [total.assign(component=TOTAL)]
    for _, c in comp.iterrows():
        L = out[f"learnability:{c['component']}"].to_numpy()
        parts.append(pd.DataFrame({
            "component": c["component"], "sample_size": out["sample_size"],
            "test_mse": [_times(e0, (1.0 - li) ** 2 * c["power"])
                         for e0, li in zip(out["E0"], L)],
            "learnability": L, "learned": out[f"learned:{c['component']}"],
            "learning_index": c["learning_index"], "eigenvalue": c["eigenvalue"],
            "power": c["power"]}))
    long = pd.concat(parts, ignore_index=True).sort_values("sample_size", kind="stable")
    long = curve_frame(long.reset_index(drop=True), source="predicted", component=None,
                       architecture=architecture or getattr(spec, "label", None)
                       or type(arch).__name__,
                       target=target.name or "target")
    long.attrs.update(components=comp.to_dict("records"), trace=float(trace),
                      captured_trace=captured, ridge=ridge, noise=noise,
                      zeroed_types=int(zero.sum()), negative_types=negatives.tolist())
    return long


def staircase(spec: Any, target: Target, sample_sizes: Any) -> pd.DataFrame:
    """The high-dimensional staircase: per (m, component), learned iff L(k) < log m / log d.
    Long table: sample_size, component, learning_index, threshold, learned.

    Args:
        spec: a :class:`~infwidth.Spectrum`.
        target: the :class:`~infwidth.Target`.
        sample_sizes: the m values.

    Returns:
        A long DataFrame: sample_size, component, learning_index, threshold, learned.
    """
    ms = check_sample_sizes(sample_sizes)
    comp = component_table(spec, target)
    dim = int(spec.dim)
    rows = [{"sample_size": int(m), "component": c["component"],
             "learning_index": c["learning_index"], "threshold": math.log(m) / math.log(dim),
             "learned": bool(c["learning_index"] < math.log(m) / math.log(dim))}
            for m in ms for _, c in comp.iterrows()]
    return pd.DataFrame(rows)
