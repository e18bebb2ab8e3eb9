"""Do eigenvalues scale as d^{−L}? Exact type-level spectra across d, fitted slopes vs −L.

Architectures at fixed exponents (sizes d^α, so every d = m^4 gives integer sizes):

- MLP (depth 2): α0 = 1, L = |k|;
- SCNN: n0 = d^{1/2} (α0 = 1/2), one conv layer, readout over d^{1/2} patches;
- DCNN-2: n0 = d^{1/2}, two conv levels of fan-in d^{1/4} (docs/theory.md's worked example);
- DCNN-3: n0 = d^{1/4}, three conv levels of fan-in d^{1/4}.

For each type (canonical pattern) the eigenvalue λ(d) is computed by ``iw.spectrum`` (method
"exact") at d = m^4, m = 2 … --max-m. The log-log slope is fitted over all d where the type
exists and is non-zero, and the local slope is taken between the two largest d. Both are
printed against the predicted −L; a local slope more than 0.1 away from −L at the largest d is
flagged "DISAGREES". Nothing is tuned. Types with λ = 0 exactly (linear readout, or odd
degrees of one ReLU layer) are listed as such.

    python benchmarks/spectrum_scaling.py [--quick] [--out DIR] [--max-m 8] [--kind ntk]

Writes eigenvalues.csv (one row per config, d, type), slopes.csv, summary.json and
scaling.png to --out (default results/spectrum_scaling/, or results/spectrum_scaling_quick/
with --quick). A rerun resumes from the run store ``runs.sqlite`` there.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.eigenspaces.scaling import (
    SCALING_CONFIGS,
    SLOPE_TOL,
    fit_slopes,
    scaling_architecture,
)
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json, write_png
from infwidth.io.scripts import progress, unit

CONFIGS, TOL = SCALING_CONFIGS, SLOPE_TOL


def compute(run) -> pd.DataFrame:
    """One unit per (configuration, m): the exact type table at d = m⁴, committed whole to
    out/runs.sqlite under the run's settings, so a rerun resumes with the same numbers."""
    args, out = run.args, run.out
    settings = {k: getattr(args, k) for k in ("kind", "activation", "b_std", "max_degree")}
    store = run.store(**settings)

    def table(cfg: str, m: int) -> pd.DataFrame:
        d = m ** 4
        arch = scaling_architecture(cfg, m, args.activation, args.b_std)
        t0 = time.perf_counter()
        spec = iw.spectrum(arch, d, kind=args.kind, max_degree=args.max_degree)
        dt = time.perf_counter() - t0
        df = spec.table()[["label", "frequency", "space", "learning_index", "eigenvalue",
                           "error_bound", "multiplicity", "representation"]]
        df.insert(0, "config", cfg)
        df.insert(1, "m", m)
        df.insert(2, "d", d)
        df["seconds"] = dt
        df["multiplicity"] = df["multiplicity"].astype(float)
        return df.assign(**settings)

    todo = [(c, m) for c in args.configs for m in range(2, args.max_m + 1)]
    ev = pd.concat([unit(store, {"config": c, "m": m}, lambda c=c, m=m: table(c, m))
                    for c, m in progress(todo, desc="spectra")], ignore_index=True)
    write_csv(ev, out / "eigenvalues.csv")
    return ev


def plot(ev: pd.DataFrame, sl: pd.DataFrame, path: Path, kind: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    cfgs = list(dict.fromkeys(ev["config"]))
    fig, axes = plt.subplots(2, len(cfgs), figsize=(4.2 * len(cfgs), 8), squeeze=False)
    for j, cfg in enumerate(cfgs):
        ax = axes[0, j]
        s = sl[(sl.config == cfg) & sl.fit_slope.notna()].sort_values("predicted",
                                                                       ascending=False)
        show = s.drop_duplicates("predicted").head(7)
        colors = plt.cm.viridis(np.linspace(0, 0.9, len(show)))
        for c, (_, r) in zip(colors, show.iterrows()):
            g = ev[(ev.config == cfg) & (ev.label == r.label)].sort_values("d")
            g = g[g.eigenvalue > 0]
            ax.loglog(g.d, g.eigenvalue, "o-", color=c, ms=3, lw=1,
                      label=f"{r.label}  L={abs(r.predicted):g}")
            d1 = g.d.iloc[-1]
            ref = g.eigenvalue.iloc[-1] * (g.d / d1) ** r.predicted
            ax.loglog(g.d, ref, ":", color=c, lw=0.8)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{cfg}: λ(d) per type (dotted: slope −L)", fontsize=9)
        ax.set_xlabel("d")
        ax.set_ylabel(f"{kind.upper()} eigenvalue")
        ax.legend(fontsize=6, loc="lower left")
        ax = axes[1, j]
        s = sl[(sl.config == cfg) & sl.local_slope.notna()]
        bad = s.verdict == "DISAGREES"
        ax.scatter(s.predicted[~bad], s.local_slope[~bad], s=18, label="|gap| ≤ 0.1")
        ax.scatter(s.predicted[bad], s.local_slope[bad], s=18, color="tab:red",
                   label="|gap| > 0.1")
        lim = [min(s.predicted.min(), s.local_slope.min()) - 0.2, 0.1] if len(s) else [-4, 0]
        ax.plot(lim, lim, "k--", lw=0.8, label="measured = −L")
        ax.set_xlabel("predicted slope −L")
        ax.set_ylabel("local slope at the largest d")
        ax.set_title(f"{cfg}: local log-log slope vs −L", fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle("Exact eigenvalues by type vs d (sizes d^α); theory: λ ∝ d^{−L}")
    fig.tight_layout()
    write_png(fig, path, dpi=120, tight=False, close=False)


SCRIPT = Script("spectrum_scaling", __doc__, sizes={"quick": "d = 16 … 625, degree ≤ 3"},
                options=(
    Option("--max-m", type=int, default=8, help="largest d = m^4 (default 8: 4096)"),
    Option("--max-degree", type=int, default=4),
    Option("--kind", default="ntk", choices=("ntk", "nngp")),
    Option("--activation", default="relu", choices=("relu", "erf")),
    Option("--b-std", type=float, default=0.0),
    Option("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)))


@SCRIPT.main
def main(run):
    args = run.args
    if args.quick:
        args.max_m, args.max_degree = min(args.max_m, 5), min(args.max_degree, 3)
    if args.max_m < 3:
        run.error("--max-m must be ≥ 3 (two values of d)")
    run.out = args.out or ("results/spectrum_scaling_quick" if args.quick
                           else "results/spectrum_scaling")
    out = run.out
    t0 = time.perf_counter()
    ev = compute(run)
    ev = ev[ev.config.isin(args.configs) & ev.m.le(args.max_m)]
    sl = fit_slopes(ev)
    write_csv(sl, out / "slopes.csv")
    plot(ev, sl, out / "scaling.png", args.kind)
    n_bad = int((sl.verdict == "DISAGREES").sum())
    settings = {k: v for k, v in vars(args).items() if k != "size"}
    summary = dict(settings=settings, d=sorted(ev.d.unique().tolist()),
                   types=int(len(sl)), agrees=int((sl.verdict == "agrees").sum()),
                   disagrees=n_bad, seconds=time.perf_counter() - t0,
                   disagreements=sl[sl.verdict == "DISAGREES"][
                       ["config", "label", "predicted", "local_slope", "gap"]].to_dict("records"))
    write_json(summary, out / "summary.json")
    pd.set_option("display.width", 160)
    pd.set_option("display.max_rows", 400)
    cols = ["config", "label", "frequency", "space", "predicted", "fit_slope", "local_slope",
            "gap", "verdict"]
    print(f"{args.kind.upper()} {args.activation} b_std={args.b_std}: predicted −L vs measured "
          f"log-log slopes, d = {summary['d']}")
    print(sl[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\n{summary['agrees']} types agree within {TOL} at d = {ev.d.max()}, "
          f"{n_bad} DISAGREE (local slope more than {TOL} away from −L); "
          f"{summary['seconds']:.1f} s.")
    return sl


if __name__ == "__main__":
    main()
