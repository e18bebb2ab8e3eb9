"""Plots of the numerics' results; plotting lives above the numerics.

:func:`plot_spectrum` draws a :class:`~infwidth.eigenspaces.engine.Spectrum`'s
space–frequency diagram (what :meth:`Spectrum.plot` returns; that method imports this module
when called, so that the eigenspaces stage never imports the io stage at load).
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np

from infwidth.eigenspaces.engine import Spectrum
from infwidth.io.outputs import write_png
from infwidth.validation import check_bool, check_number

__all__ = ["plot_spectrum"]


def plot_spectrum(spec: Any, path: str | os.PathLike | None = None,
                  levels: Sequence[float] | None = None, m_exponent: float | None = None,
                  ax: Any = None, title: str | None = None, roundoff_as_zero: bool = True):
    """Space–frequency diagram of ``spec`` (a :class:`~infwidth.Spectrum`): each type at
    (space, frequency), coloured by log10 λ; dashed level lines α0·|k| + space = r for r in
    ``levels``; with ``m_exponent`` = r the region L < r (learned with m = d^r samples) is
    shaded and its types drawn filled. Types with λ = 0 are crosses (grey at the right edge
    for L = ∞, red at their place for exact zeros at finite L, e.g. odd degrees of one ReLU
    layer); with ``roundoff_as_zero`` (default) eigenvalues within round-off of 0 count as
    zeros (:meth:`~infwidth.Spectrum.roundoff_zeroed`).

    Args:
        spec: the spectrum to draw.
        path: where to write a PNG (atomically); None writes nothing.
        levels: the level lines L = r drawn (default: the first 8 learning indices).
        m_exponent: shade the region L < ``m_exponent``.
        ax: a matplotlib Axes to draw into (default: a new figure).
        title: the axes title (default: architecture, kind, domain, d and α0).
        roundoff_as_zero: count eigenvalues within round-off of 0 as zeros.

    Returns:
        The matplotlib Figure.
    """
    if not isinstance(spec, Spectrum):
        raise TypeError(f"spec must be an infwidth Spectrum, got {type(spec).__name__}")
    _check_plot_args(path, levels, m_exponent, ax, title, roundoff_as_zero)
    import matplotlib
    if path is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    df = (spec.roundoff_zeroed(negative="warn") if roundoff_as_zero else spec).table()
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 5.4))
    else:
        fig = ax.figure
    a0 = spec.alpha0
    ok = np.isfinite(df["learning_index"]) & (df["eigenvalue"] > 0)
    finite, zero = df[ok], df[~ok]
    fmax = int(df["frequency"].max()) if len(df) else 1
    smax = float(finite["space"].max()) if len(finite) else 1.0
    xlim = (-0.1, smax + 0.45)
    ylim = (-0.5, fmax + 0.6)
    xs = np.linspace(xlim[0], xlim[1], 200)
    if levels is None:
        levels = sorted({round(v, 2) for v in finite["learning_index"]})[:8]
    for r in levels:
        ax.plot(xs, (r - xs) / a0, ls="--", lw=0.8, color="0.55", zorder=1)
        # label where the line leaves the plotting box (top edge or right edge)
        x_top = r - a0 * (ylim[1] - 0.15)
        if xlim[0] + 0.1 <= x_top <= xlim[1]:
            xy = (x_top, ylim[1] - 0.15)
        else:
            xy = (xlim[0] + 0.12, (r - xlim[0] - 0.12) / a0)
        if ylim[0] < xy[1] < ylim[1]:
            ax.annotate(f"L={r:g}", xy, fontsize=7, color="0.35", ha="right",
                        va="top", zorder=5)
    if m_exponent is not None:
        ax.fill_between(xs, ylim[0], (m_exponent - xs) / a0, color="tab:green",
                        alpha=0.13, zorder=0,
                        label=f"learned with m = d^{m_exponent:g} samples (L < {m_exponent:g})")
    if len(finite):
        logl = np.log10(finite["eigenvalue"].to_numpy())
        norm = Normalize(vmin=logl.min(), vmax=logl.max())
        # spread types sharing a cell horizontally so each stays visible
        cell = finite.groupby(["space", "frequency"])
        off = cell.cumcount().to_numpy()
        cnt = cell["frequency"].transform("size").to_numpy()
        x = finite["space"].to_numpy() + 0.03 * (off - (cnt - 1) / 2)
        y = finite["frequency"].to_numpy()
        learned = (finite["learning_index"] < m_exponent).to_numpy() \
            if m_exponent is not None else np.ones(len(finite), bool)
        ax.scatter(x[learned], y[learned], c=logl[learned], cmap="viridis",
                   norm=norm, s=70, edgecolors="k", linewidths=1.2, zorder=3,
                   label="type (learned)" if m_exponent is not None else "type")
        if (~learned).any():
            ax.scatter(x[~learned], y[~learned], c=logl[~learned], cmap="viridis",
                       norm=norm, s=45, edgecolors="0.6", linewidths=0.5, marker="s",
                       zorder=3, label="type (not learned: L ≥ r)")
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap="viridis"), ax=ax,
                     label="log10 eigenvalue (per eigenfunction)")
    inf = zero[~np.isfinite(zero["learning_index"])]
    exact0 = zero[np.isfinite(zero["learning_index"])]
    if len(inf):
        ax.scatter(np.full(len(inf), xlim[1] - 0.12), inf["frequency"], marker="x",
                   color="0.5", zorder=2,
                   label="L = ∞, λ = 0: patches joined only by the linear readout")
    if len(exact0):
        ax.scatter(exact0["space"], exact0["frequency"], marker="x", color="tab:red",
                   zorder=2, label="λ = 0 exactly at finite L (e.g. odd degrees, one ReLU)")
    ax.set_xlabel("space S(k)  [Steiner-tree length, units of log_d]")
    ax.set_ylabel("frequency |k|  [total degree]")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    arch = type(spec.arch).__name__
    ax.set_title(title or f"{arch} {spec.kind.upper()} eigenspaces on the {spec.domain}, "
                 f"d = {spec.dim}, α0 = {a0:.3g}\n(dashed: level lines α0·|k| + S = L)",
                 fontsize=10)
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
                  frameon=False)
    fig.tight_layout()
    if path is not None:
        write_png(fig, path, tight=False, close=False)
    return fig




def _check_plot_args(path: Any, levels: Any, m_exponent: Any, ax: Any, title: Any,
                     roundoff_as_zero: Any) -> None:
    """:meth:`Spectrum.plot`'s arguments, checked before anything is drawn."""
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path (str or os.PathLike) or None, "
                        f"got {type(path).__name__}")
    if isinstance(path, (str, os.PathLike)):
        p = os.fspath(path)
        if not isinstance(p, str) or not p or p.endswith(("/", os.sep)) or os.path.isdir(p):
            raise ValueError(f"path must name a PNG file, got {path!r}")
    if ax is not None:
        axes = sys.modules.get("matplotlib.axes")  # no Axes exists before it is imported
        if axes is None or not isinstance(ax, axes.Axes):
            raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    if levels is not None:
        if isinstance(levels, (str, bytes)) or not isinstance(levels, (Sequence, np.ndarray)):
            raise TypeError(f"levels must be a sequence of finite numbers or None, "
                            f"got {type(levels).__name__}")
        for v in levels:
            check_number("levels", v)
    if m_exponent is not None:
        check_number("m_exponent", m_exponent)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a string or None, got {type(title).__name__}")
    check_bool(roundoff_as_zero, "roundoff_as_zero")
