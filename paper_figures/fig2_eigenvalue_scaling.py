"""Figure 2: eigenvalue scaling λ(d) ∝ d^{−L(k)} (``docs/theory.md`` §3).

Exact type-level NTK eigenvalues (ReLU, hypercube; ``iw.spectrum``, method "exact") at
d = q^4 for q = 2 … q_max, for the four configurations of ``benchmarks/spectrum_scaling.py``
(both take ``scaling_architecture`` and ``fit_slopes`` from ``infwidth.eigenspaces.scaling``):
MLP (α0 = 1), S-CNN (n0 = d^{1/2}), DCNN-2
(n0 = d^{1/2}, two levels of fan-in d^{1/4}) and DCNN-3 (n0 = d^{1/4}, three levels of fan-in
d^{1/4}). Per configuration, log λ against log d for representative types (one per distinct
L, lowest frequency first), each with the predicted slope −L drawn through its value at the
largest d. Last panel: the local slope between the two largest d against −L for every type.

    python paper_figures/fig2_eigenvalue_scaling.py [--quick | --tiny] [--out DIR] [--fresh]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.eigenspaces.scaling import (
    SCALING_CONFIGS,
    SLOPE_TOL,
    fit_slopes,
    scaling_architecture,
)
from infwidth.io import scripts as C

NAME = "fig2_eigenvalue_scaling"
SIZES = {"tiny": dict(q_max=3, max_degree=2), "quick": dict(q_max=6, max_degree=3),
         "full": dict(q_max=8, max_degree=4)}
KIND, ACTIVATION = "ntk", "relu"
N_SHOW = 6


SCRIPT = C.figure_script(NAME, __doc__)


@SCRIPT.main
def main(run) -> dict:
    args = run.args
    cfg = SIZES[args.size]
    C.style()
    timer = C.Timer()
    store = run.store(size=args.size, **cfg, kind=KIND, activation=ACTIVATION)
    todo = [(c, q) for c in SCALING_CONFIGS for q in range(2, cfg["q_max"] + 1)]

    def table(c: str, q: int) -> pd.DataFrame:
        d = q ** 4
        t = C.Timer()
        spec = iw.spectrum(scaling_architecture(c, q, ACTIVATION, 0.0), d, "hypercube", KIND,
                           max_degree=cfg["max_degree"])
        df = spec.table()
        return pd.DataFrame(dict(config=c, q=q, d=d, label=df.label, frequency=df.frequency,
                                 space=df.space, learning_index=df.learning_index,
                                 eigenvalue=df.eigenvalue, error_bound=df.error_bound,
                                 multiplicity=df.multiplicity.astype(float), seconds=t()))

    ev = pd.concat([C.unit(store, {"config": c, "q": q}, lambda c=c, q=q: table(c, q))
                    for c, q in C.progress(todo, desc=NAME)], ignore_index=True)
    sl = fit_slopes(ev)

    configs = list(SCALING_CONFIGS)
    fig, axes = C.plt.subplots(1, len(configs) + 1, figsize=(4.3 * (len(configs) + 1), 4.6))
    shown = []
    for ax, c in zip(axes, configs):
        s = sl[(sl.config == c) & sl.local_slope.notna()]
        s = s.sort_values(["predicted", "frequency"], ascending=[False, True])
        show = s.drop_duplicates("predicted").head(N_SHOW)
        colors = C.plt.cm.viridis(np.linspace(0, 0.9, max(len(show), 1)))
        for col, r in zip(colors, show.itertuples()):
            g = ev[(ev.config == c) & (ev.label == r.label) & (ev.eigenvalue > 0)].sort_values("d")
            ax.loglog(g.d, g.eigenvalue, "o-", color=col, ms=3.5, lw=1.2,
                      label=f"{r.label}: L={abs(r.predicted):g}, slope {r.local_slope:.2f}")
            ref = g.eigenvalue.iloc[-1] * (g.d / g.d.iloc[-1]) ** r.predicted
            ax.loglog(g.d, ref, ":", color=col, lw=1.2)
            shown.append(dict(config=c, label=r.label))
        ax.set_xlabel("d (input dimension)")
        ax.set_ylabel(f"{KIND.upper()} eigenvalue per eigenfunction")
        ax.set_title(f"{c}: λ(d) (dotted: slope −L)")
        ax.legend(loc="lower left", fontsize=6.5)
    ax = axes[-1]
    s = sl[sl.local_slope.notna()]
    for c, mk in zip(configs, "osD^"):
        t = s[s.config == c]
        bad = t.verdict == "DISAGREES"
        ax.scatter(t.predicted[~bad], t.local_slope[~bad], marker=mk, s=22, label=f"{c}",
                   color=C.plt.cm.tab10(configs.index(c)))
        ax.scatter(t.predicted[bad], t.local_slope[bad], marker=mk, s=40, facecolors="none",
                   edgecolors="tab:red", lw=1.2)
    lim = [min(s.predicted.min(), s.local_slope.min()) - 0.2, 0.1] if len(s) else [-4, 0]
    ax.plot(lim, lim, "k--", lw=0.8, label="measured = −L")
    ax.scatter([], [], marker="o", facecolors="none", edgecolors="tab:red",
               label=f"|gap| > {SLOPE_TOL} (red ring)")
    ax.set_xlabel("predicted slope −L")
    ax.set_ylabel(f"local slope between d = {int(ev.d.max()) if len(ev) else 0} and the "
                  "previous d")
    ax.set_title("all types: measured slope vs −L")
    ax.legend(fontsize=7)
    d_max = int(ev.d.max())
    fig.suptitle(f"Figure 2 — eigenvalue scaling: exact {KIND.upper()} ({ACTIVATION}) "
                 f"eigenvalues on the hypercube, d = q⁴ for q = 2…{cfg['q_max']} "
                 f"(d ≤ {d_max}), degree ≤ {cfg['max_degree']}", fontsize=11)
    C.stamp(fig, args.size)
    fig.tight_layout()
    C.savefig(fig, args.out / f"{NAME}.png")
    sl["shown_in_figure"] = [any(x["config"] == a and x["label"] == b for x in shown)
                             for a, b in zip(sl.config, sl.label)]
    C.write_csv(sl, args.out / f"{NAME}.csv")
    C.write_csv(ev, args.out / f"{NAME}_eigenvalues.csv")
    counts = sl.verdict.value_counts().to_dict()
    summary = {"size": args.size, **cfg, "kind": KIND, "activation": ACTIVATION,
               "tolerance": SLOPE_TOL, "verdicts": counts,
               "disagreements": sl[sl.verdict == "DISAGREES"][
                   ["config", "label", "predicted", "local_slope", "gap"]].to_dict("records"),
               "note": ("local slope more than the tolerance away from −L is reported as "
                        "DISAGREES; at small d part of the gap is finite-d convergence, and "
                        "ReLU's odd degrees ≥ 3 inside one patch decay faster than −L "
                        "(see README, spectrum section)"),
               "seconds": timer()}
    C.write_json(summary, args.out / f"{NAME}.json")
    C.log(sl[["config", "label", "frequency", "space", "predicted", "fit_slope",
              "local_slope", "gap", "verdict"]].to_string(index=False, float_format="%.3f"))
    C.log(counts, f"({timer():.0f} s)")
    return summary


if __name__ == "__main__":
    main()
