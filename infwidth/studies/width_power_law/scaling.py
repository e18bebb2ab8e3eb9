"""Power law in width toward the infinite-width limit (seeds/000, ``docs/theory.md`` §5).

- :func:`width_sweep`: a tidy table of test errors over widths and seeds (finite LeNets or any
  architecture family, trained by :func:`infwidth.studies.width_power_law.gd.train_gd`).
- :func:`fit_power_law` / :func:`compare_power_laws`: A·w^{−ρ} and ε∞ + A·w^{−ρ} with seeded
  bootstrap intervals and a nested-model F-test.

The architecture and its kernels live in :mod:`infwidth.studies.width_power_law.lenet`, the
trainer in :mod:`infwidth.studies.width_power_law.gd`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import scipy.optimize
import scipy.stats
from tqdm.auto import tqdm

from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import check_inputs
from infwidth.studies.width_power_law.gd import train_gd
from infwidth.validation import check_int, check_pos_int

__all__ = ["width_sweep", "PowerLawFit", "fit_power_law", "compare_power_laws"]

# --------------------------------------------------------------------------------------
# Width sweep
# --------------------------------------------------------------------------------------
SWEEP_COLUMNS = ["family", "width", "seed", "test_error", "test_mse", "train_loss",
                 "converged", "diverged", "params", "flops", "steps", "seconds", "loss_ratio",
                 "learning_rate", "protocol"]
#: the training of every sweep row: kernel-regime GD (NTK parameterisation, centred,
#: full-batch heavy-ball) for a fixed number of steps, not to a loss tolerance
SWEEP_PROTOCOL = "kernel-fixed-steps"


def width_sweep(family: Architecture, x_train: Any, labels_train: Any, x_test: Any,
                labels_test: Any, widths: Sequence[int], seeds: Sequence[int] = (0, 1, 2), *,
                steps: int, learning_rate: float, momentum: float = 0.9,
                dtype: str = "float32", name: str | None = None,
                existing: pd.DataFrame | None = None,
                on_row: Callable[[dict], None] | None = None,
                progress: bool | None = None) -> pd.DataFrame:
    """Train ``family`` at every width × seed with :func:`train_gd` on centred one-hot
    targets; one tidy row each (columns ``SWEEP_COLUMNS``).

    ``test_error`` is the classification error (arg-max of the outputs), ``test_mse`` the
    mean squared error per output; ``diverged`` runs (loss above its initial value) should
    be left out of fits. Rows already in ``existing`` (same family, width, seed)
    are skipped; ``on_row`` sees every new row (to save partial results).
    ``flops`` is ``arch.flops(dim)`` when the architecture has it, else NaN.
    """
    if not isinstance(family, Architecture):
        raise TypeError(f"family must be an infwidth architecture, got {type(family).__name__}")
    widths = [check_pos_int("widths", w) for w in widths]
    seeds = [int(s) for s in seeds]
    if not widths or not seeds:
        raise ValueError("widths and seeds must be non-empty")
    name = name or type(family).__name__
    x_train, x_test = check_inputs(x_train, "x_train"), check_inputs(x_test, "x_test")
    c = family.out_dim
    ytr, yte = (_one_hot(lab, c, nm, x.shape[0]) for lab, nm, x in
                ((labels_train, "labels_train", x_train), (labels_test, "labels_test", x_test)))
    done = set()
    if existing is not None and len(existing):
        sub = existing[existing.family == name]
        done = set(zip(sub.width.astype(int), sub.seed.astype(int)))
    rows = [] if existing is None else existing.to_dict("records")
    todo = [(w, s) for w in widths for s in seeds if (w, s) not in done]
    dim = x_train.shape[1]
    for w, s in tqdm(todo, desc=f"{name} widths", disable=not (progress or
                                                               (progress is None and todo))):
        arch = dataclasses.replace(family, width=w)
        res = train_gd(arch, x_train, ytr, x_test, yte, steps=steps,
                       learning_rate=learning_rate, momentum=momentum, seed=s, dtype=dtype)
        err = (float(np.mean(np.argmax(res.test_pred, 1) != np.asarray(labels_test)))
               if np.all(np.isfinite(res.test_pred)) else np.nan)
        row = {"family": name, "width": w, "seed": s, "test_error": err,
               "test_mse": res.test_mse, "train_loss": res.train_loss,
               "converged": res.converged, "diverged": res.diverged,
               "params": arch.n_params(dim),
               "flops": arch.flops(dim) if hasattr(arch, "flops") else np.nan,
               "steps": res.steps, "seconds": res.seconds,
               "loss_ratio": res.train_loss / max(float(res.history.train_loss.iloc[0]),
                                                  1e-300),
               "learning_rate": res.learning_rate, "protocol": SWEEP_PROTOCOL}
        rows.append(row)
        if on_row is not None:
            on_row(row)
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)


def _one_hot(labels: Any, c: int, name: str, n: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"{name} must be {n} integer labels, got shape {lab.shape}, "
                         f"dtype {lab.dtype}")
    if lab.min() < 0 or lab.max() >= c:
        raise ValueError(f"{name} must lie in [0, {c}) (arch.out_dim), got "
                         f"[{lab.min()}, {lab.max()}]")
    out = np.full((n, c), -1.0 / c)
    out[np.arange(n), lab] += 1.0
    return out


# --------------------------------------------------------------------------------------
# Power-law fits
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PowerLawFit:
    """A fitted ε(w) = ε∞ + A·w^{−ρ} (``model="offset"``) or A·w^{−ρ} (``"power"``).

    Residuals are relative, (model − ε)/ε, in both models (so their RSS are comparable and
    the models nested). ``ci`` maps each parameter to its percentile bootstrap interval.
    """

    model: str
    A: float
    rho: float
    eps_inf: float
    ci: dict
    rss: float
    n_obs: int
    n_params: int
    ci_level: float
    n_boot: int
    bootstrap: str

    def predict(self, w: Any) -> np.ndarray:
        return self.eps_inf + self.A * np.asarray(w, dtype=np.float64) ** (-self.rho)

    @property
    def aicc(self) -> float:
        n, k = self.n_obs, self.n_params
        return n * math.log(max(self.rss, 1e-300) / n) + 2 * k + 2 * k * (k + 1) / max(
            n - k - 1, 1)

    @property
    def bic(self) -> float:
        return self.n_obs * math.log(max(self.rss, 1e-300) / self.n_obs) + \
            self.n_params * math.log(self.n_obs)

    def table(self) -> pd.DataFrame:
        names = ["A", "rho"] + (["eps_inf"] if self.model == "offset" else [])
        return pd.DataFrame({"model": self.model, "param": names,
                             "estimate": [getattr(self, p) for p in names],
                             "ci_low": [self.ci[p][0] for p in names],
                             "ci_high": [self.ci[p][1] for p in names]})


def _profile(w, e, rho, offset):
    """Best (ε∞, A) for fixed ρ by weighted linear least squares (weights 1/ε), ε∞ ≥ 0."""
    z = w ** (-rho) / e
    if offset:
        design = np.stack([1.0 / e, z], axis=1)
        coef, *_ = np.linalg.lstsq(design, np.ones_like(e), rcond=None)
        if coef[0] >= 0:
            r = design @ coef - 1.0
            return coef[0], coef[1], float(r @ r)
    a = float(z @ np.ones_like(e) / (z @ z))
    r = a * z - 1.0
    return 0.0, a, float(r @ r)


def _profile_grid(w, e, rhos, offset):
    """RSS of :func:`_profile` for every ρ in ``rhos`` at once (2×2 normal equations)."""
    z = w[None, :] ** (-rhos[:, None]) / e[None, :]
    zz, z1 = np.sum(z * z, 1), np.sum(z, 1)
    a0 = z1 / zz  # ε∞ = 0
    rss_a = np.sum((a0[:, None] * z - 1.0) ** 2, 1)
    if not offset:
        return rss_a
    u = 1.0 / e
    uu, u1, uz = u @ u, u.sum(), z @ u
    det = uu * zz - uz ** 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        eps = (zz * u1 - uz * z1) / det
        a = (uu * z1 - uz * u1) / det
        rss_b = np.sum((eps[:, None] * u + a[:, None] * z - 1.0) ** 2, 1)
    return np.where((eps >= 0) & np.isfinite(rss_b), rss_b, rss_a)


def _fit_once(w, e, offset, rho_bounds):
    grid = np.linspace(rho_bounds[0], rho_bounds[1], 121)
    rss = _profile_grid(w, e, grid, offset)
    i = int(np.argmin(rss))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    res = scipy.optimize.minimize_scalar(lambda r: _profile(w, e, r, offset)[2],
                                         bounds=(lo, hi), method="bounded",
                                         options={"xatol": 1e-10})
    rho = float(res.x) if res.fun <= rss[i] else float(grid[i])
    eps, a, rss_best = _profile(w, e, rho, offset)
    return float(eps), float(a), rho, rss_best


def _validate_curve(widths: Any, errors: Any):
    w = np.asarray(widths, dtype=np.float64).ravel()
    e = np.asarray(errors, dtype=np.float64).ravel()
    if w.shape != e.shape:
        raise ValueError(f"widths and errors must have the same length, got {w.size} and "
                         f"{e.size}")
    if not np.all(np.isfinite(w)) or np.any(w <= 0):
        raise ValueError("widths must be positive and finite")
    if not np.all(np.isfinite(e)):
        raise ValueError("errors contain NaN or inf; drop diverged runs before fitting")
    if np.any(e <= 0):
        raise ValueError("errors must be positive (relative residuals divide by them)")
    if np.unique(w).size < 3:
        raise ValueError(f"a power-law fit needs at least 3 distinct widths, got "
                         f"{np.unique(w).size}")
    return w, e


def fit_power_law(widths: Any, errors: Any, *, model: str = "offset", n_boot: int = 1000,
                  ci: float = 0.95, seed: int = 0, rho_bounds: tuple[float, float] = (0.0, 5.0),
                  bootstrap: str = "auto") -> PowerLawFit:
    """Fit ε(w) = ε∞ + A·w^{−ρ} (``model="offset"``, ε∞ ≥ 0) or A·w^{−ρ} (``"power"``).

    Least squares on relative residuals Σ((model − ε)/ε)², by variable projection: for each
    ρ the linear parameters (ε∞, A) are solved exactly, and ρ is found by a grid on
    ``rho_bounds`` refined with a bounded scalar minimiser. One observation per
    (width, seed) pair is the usual input.

    Intervals: percentile bootstrap with ``n_boot`` seeded resamples. ``"residuals"`` (the
    default, ``"auto"``) multiplies the fit by resampled log-ratios ε/model (centred,
    inflated by √(n/(n − k))); ``"cases"`` resamples the observations within each width
    (needs ≥ 2 per width). On synthetic curves (8 widths × 3 seeds, 3% noise) the residual
    bootstrap's 95% intervals covered ρ, ε∞ and A in 99%, 95% and 93% of 100 replicates;
    the case bootstrap in 93%, 85% and 90% of 60 (too narrow with 3 cases per width).

    Example:
        >>> import numpy as np, infwidth as iw
        >>> w = np.repeat([2, 4, 8, 16, 32, 64], 3)
        >>> e = (0.05 + 0.8 * w ** -0.7) * np.random.default_rng(0).lognormal(0, .02, w.size)
        >>> fit = fit_power_law(w, e, n_boot=200)
        >>> fit.ci["rho"][0] < 0.7 < fit.ci["rho"][1]
        True
    """
    if model not in ("offset", "power"):
        raise ValueError(f"model must be 'offset' or 'power', got {model!r}")
    w, e = _validate_curve(widths, errors)
    check_int("n_boot", n_boot, 0)
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must lie in (0, 1), got {ci!r}")
    if not (len(rho_bounds) == 2 and 0 <= rho_bounds[0] < rho_bounds[1]):
        raise ValueError(f"rho_bounds must be (low, high) with 0 ≤ low < high, "
                         f"got {rho_bounds!r}")
    offset = model == "offset"
    if offset and w.size < 4:
        raise ValueError("the offset model has 3 parameters and needs at least 4 observations")
    eps, a, rho, rss = _fit_once(w, e, offset, rho_bounds)
    groups = [np.flatnonzero(w == u) for u in np.unique(w)]
    if bootstrap == "auto":
        bootstrap = "residuals"
    if bootstrap not in ("cases", "residuals"):
        raise ValueError(f"bootstrap must be 'auto', 'cases' or 'residuals', "
                         f"got {bootstrap!r}")
    if bootstrap == "cases" and min(len(g) for g in groups) < 2:
        raise ValueError("bootstrap='cases' needs at least 2 observations per width")
    rng = np.random.default_rng(seed)
    fitted = eps + a * w ** (-rho)
    # Residual bootstrap on log(ε/model), centred and inflated by √(n/(n − k)) for the
    # fitted parameters (Davison & Hinkley 1997, §6.2.3).
    k = 3 if offset else 2
    logr = np.log(e / fitted) if np.all(fitted > 0) else np.zeros_like(e)
    logr = (logr - logr.mean()) * math.sqrt(w.size / max(w.size - k, 1))
    draws = []
    for _ in range(n_boot):
        if bootstrap == "cases":
            idx = np.concatenate([rng.choice(g, size=len(g)) for g in groups])
            wb, eb = w[idx], e[idx]
        else:
            wb, eb = w, fitted * np.exp(rng.choice(logr, size=w.size))
        if np.any(eb <= 0):
            continue
        draws.append(_fit_once(wb, eb, offset, rho_bounds)[:3])
    q = ((1 - ci) / 2, (1 + ci) / 2)
    d = np.asarray(draws).reshape(-1, 3)
    interval = (lambda col: tuple(float(v) for v in np.quantile(col, q))) if len(d) else \
        (lambda col: (math.nan, math.nan))
    cis = {"eps_inf": interval(d[:, 0]), "A": interval(d[:, 1]), "rho": interval(d[:, 2])}
    return PowerLawFit(model, a, rho, eps, cis, rss, int(w.size), 3 if offset else 2, ci,
                       len(d), bootstrap)


def compare_power_laws(widths: Any, errors: Any, *, level: float = 0.05,
                       **kwargs) -> tuple[PowerLawFit, PowerLawFit, dict]:
    """Fit both models and compare them by the nested-model F-test on the relative RSS:
    F = (RSS_power − RSS_offset)/(RSS_offset/(n − 3)) on (1, n − 3) degrees of freedom.

    The offset model is preferred when p < ``level``. ε∞ ≥ 0 puts the null on the boundary,
    where the F-test is conservative. ΔAICc and ΔBIC (power − offset; positive favours the
    offset) are reported beside it but do not decide.
    """
    power = fit_power_law(widths, errors, model="power", **kwargs)
    offset = fit_power_law(widths, errors, model="offset", **kwargs)
    n = offset.n_obs
    dof = n - 3
    f_stat = max(power.rss - offset.rss, 0.0) / max(offset.rss / dof, 1e-300)
    p = float(scipy.stats.f.sf(f_stat, 1, dof))
    return power, offset, {"test": "F (nested, relative residuals)", "F": f_stat,
                           "p_value": p, "delta_aicc": power.aicc - offset.aicc,
                           "delta_bic": power.bic - offset.bic,
                           "preferred": "offset" if p < level else "power"}
