"""Learning curves in one tidy long format, so predicted and measured curves join in one merge.

Every curve the package returns — :func:`~infwidth.predict_learning_curve` (source
"predicted"), :func:`~infwidth.kernel_regression_curve` ("measured") and
:func:`~infwidth.finite_width_curve` ("finite") — starts with the columns

    architecture, target, component, sample_size, test_mse, spread, source

one row per (architecture, target, component, sample size), where ``component`` is "total"
for the whole target's test MSE and a component's label for its share of it (the predictor
splits the error by component; a measured curve has the total only), and ``spread`` is the
standard deviation over seeds (NaN for a prediction). Extra columns follow (κ, E0,
learnabilities, condition numbers, widths …). Join a prediction and a measurement with

    both = pred.merge(meas, on=["architecture", "target", "component", "sample_size"],
                      suffixes=("_predicted", "_measured"))

``df.curve.wide()`` gives the predictor's wide view back: one row per sample size with
``test_mse``, ``kappa``, ``E0``, ``tail_trace``, ``staircase_mse`` and, per component,
``learnability:<label>``, ``learned:<label>`` and ``err:<label>``.

Example:
    >>> arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    >>> spec = iw.spectrum(arch, 16, "hypercube", "ntk", max_degree=2)
    >>> t = iw.Target.pair("hypercube", 16, 4, name="pair")
    >>> pred = iw.predict_learning_curve(spec, t, [8, 64], architecture="D-CNN")
    >>> list(pred.columns[:7])
    ['architecture', 'target', 'component', 'sample_size', 'test_mse', 'spread', 'source']
    >>> meas = iw.kernel_regression_curve(arch, t, [8, 64], seeds=2, n_test=50,
    ...                                   architecture="D-CNN")
    >>> keys = ["architecture", "target", "component", "sample_size"]
    >>> both = pred.merge(meas, on=keys, suffixes=("_predicted", "_measured"))
    >>> both[["sample_size", "test_mse_predicted", "test_mse_measured"]].shape
    (2, 3)
    >>> list(pred.curve.wide().columns[:4])
    ['sample_size', 'kappa', 'E0', 'test_mse']
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["CURVE_COLUMNS", "TOTAL", "SOURCES", "curve_frame", "threshold_crossing"]

CURVE_COLUMNS = ("architecture", "target", "component", "sample_size", "test_mse", "spread",
                 "source")
TOTAL = "total"
SOURCES = ("predicted", "measured", "finite")


def curve_frame(rows: pd.DataFrame, *, architecture: str, source: str,
                target: str | None = None, component: str | pd.Series | None = TOTAL,
                spread: pd.Series | float = np.nan) -> pd.DataFrame:
    """``rows`` (with ``sample_size`` and ``test_mse``, and ``target``/``component`` columns
    unless given here) with the key columns of :data:`CURVE_COLUMNS` put first."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    out = rows.copy()
    out["architecture"] = architecture
    if target is not None:
        out["target"] = target
    if component is not None:
        out["component"] = component
    out["spread"] = spread
    out["source"] = source
    rest = [c for c in out.columns if c not in CURVE_COLUMNS]
    out = out[list(CURVE_COLUMNS) + rest]
    out.attrs = dict(rows.attrs)
    return out


@pd.api.extensions.register_dataframe_accessor("curve")
class CurveAccessor:
    """``df.curve.wide()``: the predictor's one-row-per-sample-size view of a long curve."""

    def __init__(self, df: pd.DataFrame):
        missing = [c for c in CURVE_COLUMNS if c not in df.columns]
        if missing:
            raise AttributeError(f"not a learning curve: missing columns {missing}")
        self._df = df

    def wide(self) -> pd.DataFrame:
        """One row per sample size of one predicted (architecture, target) curve."""
        df = self._df
        if set(df["source"]) != {"predicted"}:
            raise ValueError("wide() is the predictor's view: the frame holds sources "
                             f"{sorted(set(df['source']))}")
        if df.groupby(["architecture", "target"]).ngroups != 1:
            raise ValueError("wide() needs one (architecture, target) curve; select one first")
        total = df[df["component"] == TOTAL].set_index("sample_size")
        out = pd.DataFrame(index=total.index)
        for col in ("kappa", "E0", "test_mse", "tail_trace"):
            out[col] = total[col]
        comps = [c for c in dict.fromkeys(df["component"]) if c != TOTAL]
        parts = {c: df[df["component"] == c].set_index("sample_size") for c in comps}
        for c, part in parts.items():
            out[f"learnability:{c}"] = part["learnability"]
            out[f"learned:{c}"] = part["learned"].astype(bool)
        out["staircase_mse"] = total["staircase_mse"]
        for c, part in parts.items():
            out[f"err:{c}"] = part["test_mse"]
        out = out.reset_index()
        out.attrs = dict(df.attrs)
        return out


def threshold_crossing(m: np.ndarray, mse: np.ndarray, level: float = 0.5) -> float:
    """The first sample size where a learning curve drops below ``level``: linear in log m
    between the grid points around the crossing, ``m[0]`` if it starts below, nan if never.

    Args:
        m: increasing sample sizes.
        mse: test MSE at each of them (in units of the target's power).
        level: the threshold.

    Returns:
        The interpolated m*.

    Example:
        >>> round(threshold_crossing(np.array([1, 4, 16]), np.array([1.0, 0.75, 0.25])), 9)
        8.0
    """
    below = np.flatnonzero(np.asarray(mse) < level)
    if not len(below):
        return math.nan
    i = below[0]
    if i == 0:
        return float(m[0])
    x0, x1, y0, y1 = math.log(m[i - 1]), math.log(m[i]), mse[i - 1], mse[i]
    return float(math.exp(x0 + (y0 - level) * (x1 - x0) / (y0 - y1)))
