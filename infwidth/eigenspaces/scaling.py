"""Eigenvalue scaling λ(d) ∝ d^{−L(k)}: the architectures of the scaling check and slope fits.

Each configuration fixes the exponents of its sizes, so every d = m⁴ gives integer sizes
(docs/theory.md §3):

- MLP (depth 2): α0 = 1, L = |k|;
- SCNN: n0 = d^{1/2} (α0 = 1/2), one conv layer, readout over d^{1/2} patches;
- DCNN-2: n0 = d^{1/2}, two conv levels of fan-in d^{1/4} (the worked example);
- DCNN-3: n0 = d^{1/4}, three conv levels of fan-in d^{1/4}.

:func:`fit_slopes` fits log λ against log d per type (all d where the type is non-zero beyond
10× its error estimate) and takes the local slope between the two largest d; a local slope
more than ``tol`` from −L is flagged "DISAGREES".
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from infwidth.architectures import DCNN, MLP, SCNN, Architecture

__all__ = ["SCALING_CONFIGS", "SLOPE_TOL", "scaling_architecture", "fit_slopes"]

SCALING_CONFIGS = ("MLP", "SCNN", "DCNN-2", "DCNN-3")
SLOPE_TOL = 0.1


def scaling_architecture(name: str, m: int, activation: str = "relu",
                         b_std: float = 0.0) -> Architecture:
    """Configuration ``name`` (one of :data:`SCALING_CONFIGS`) at d = m⁴.

    Example:
        >>> scaling_architecture("DCNN-2", 3).dag_for(81).n_patches
        9
    """
    kw = dict(activation=activation, b_std=b_std)
    if name == "MLP":
        return MLP(depth=2, **kw)
    if name == "SCNN":
        return SCNN(patch_dim=m * m, **kw)
    if name == "DCNN-2":
        return DCNN(patch_dim=m * m, filter_sizes=(m, m), **kw)
    if name == "DCNN-3":
        return DCNN(patch_dim=m, filter_sizes=(m, m, m), **kw)
    raise ValueError(f"name must be one of {list(SCALING_CONFIGS)}, got {name!r}")


def fit_slopes(ev: pd.DataFrame, tol: float = SLOPE_TOL) -> pd.DataFrame:
    """One row per (config, label): fitted and local log-log slopes of λ(d) against −L.

    ``ev`` has one row per (config, d, type) with the columns config, label, d, frequency,
    space, learning_index, eigenvalue and error_bound (as ``Spectrum.table()`` gives them).
    """
    out = []
    for (cfg, label), g in ev.groupby(["config", "label"], sort=False):
        g = g.sort_values("d")
        L = float(g["learning_index"].iloc[-1])
        ok = (g["eigenvalue"] > 10 * g["error_bound"]) & (g["eigenvalue"] > 0)
        row = dict(config=cfg, label=label, frequency=int(g["frequency"].iloc[0]),
                   space=float(g["space"].iloc[-1]), predicted=-L + 0.0, n_d=int(ok.sum()),
                   d_max=int(g["d"].max()), eigenvalue_at_d_max=float(g["eigenvalue"].iloc[-1]))
        if not math.isfinite(L) or (g["eigenvalue"].abs() <= 10 * g["error_bound"]).all():
            row.update(fit_slope=np.nan, local_slope=np.nan, gap=np.nan,
                       verdict="exactly 0" if (g["eigenvalue"] == 0).all() or not math.isfinite(L)
                       else "zero within error")
        elif ok.sum() < 2 or not ok.iloc[-2:].all():
            row.update(fit_slope=np.nan, local_slope=np.nan, gap=np.nan, verdict="too few d")
        else:
            x, y = np.log(g["d"][ok]), np.log(g["eigenvalue"][ok])
            fit = float(np.polyfit(x, y, 1)[0])
            loc = float((y.iloc[-1] - y.iloc[-2]) / (x.iloc[-1] - x.iloc[-2]))
            gap = loc + L
            row.update(fit_slope=fit, local_slope=loc, gap=gap,
                       verdict="agrees" if abs(gap) <= tol else "DISAGREES")
        out.append(row)
    df = pd.DataFrame(out)
    order = {c: i for i, c in enumerate(SCALING_CONFIGS)}
    df["_o"] = df["config"].map(order)
    df = df.sort_values(["_o", "frequency", "predicted", "label"],
                        ascending=[True, True, False, True])
    return df.drop(columns="_o").reset_index(drop=True)
