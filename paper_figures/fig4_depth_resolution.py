"""Figure 4: depth gives resolution (``docs/theory.md`` §3: "deeper trees give a finer grid").

Three trees at the same input dimension d = q⁴ and patch size n0 = q (α0 = 1/4), each ending
in one top node (so all are universal), differing in how the q³ patches are merged:

    depth 1: filters (q³,)     depth 2: filters (q, q²)     depth 3: filters (q, q, q)

Mixed target on the hypercube, five components of power 1/5: linear in one patch (L = 1 for
all), degree 2 in one patch, a sibling pair (patches 0, 1), a "cousin" pair (patches 0 and q:
different level-1 nodes, same level-2 node in depth 3) and a far pair (first and last patch).
Their learning indices (ReLU NTK, from ``iw.spectrum``): pairs at 2 / 2 / 2 for depth 1,
1.5 / 2 / 2 for depth 2 and 1.5 / 1.75 / 2 for depth 3.

(a) the distinct learning indices of each tree (types of degree ≤ 3 with λ > 0);
(b) predicted test MSE of the mixed target against r = log m / log d at large d;
(c) predicted error per component at m = d^{r*};
(d) measured kernel regression at small d and m = d^{r*} (mean ± s.d. over seeds) beside the
prediction.

    python paper_figures/fig4_depth_resolution.py [--quick | --tiny] [--out DIR]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.io import scripts as C

NAME = "fig4_depth_resolution"
SIZES = {"tiny": dict(q_large=3, q_small=2, seeds=1, n_test=200),
         "quick": dict(q_large=8, q_small=2, seeds=4, n_test=1000),
         "full": dict(q_large=12, q_small=3, seeds=4, n_test=1500)}
R_STAR = 1.875
KIND, DOMAIN, MAX_DEGREE = "ntk", "hypercube", 3
DEPTH_COLORS = {1: "tab:gray", 2: "tab:blue", 3: "tab:green"}


def trees(q: int) -> dict[int, iw.DCNN]:
    return {1: iw.DCNN(patch_dim=q, filter_sizes=(q ** 3,)),
            2: iw.DCNN(patch_dim=q, filter_sizes=(q, q * q)),
            3: iw.DCNN(patch_dim=q, filter_sizes=(q, q, q))}


def components(q: int) -> list[tuple[str, dict]]:
    p = q ** 3
    return [("linear", {0: 1}), ("degree 2, one patch", {0: 2}),
            ("sibling pair", {0: 1, 1: 1}), ("cousin pair", {0: 1, q: 1}),
            ("far pair", {0: 1, p - 1: 1})]


def mixed_target(q: int) -> iw.Target:
    comps = [iw.Component(deg, 1.0 / 5, 1, name) for name, deg in components(q)]
    return iw.Target(DOMAIN, q ** 4, q, comps, name="mixed")


def predict(spec, q: int, ms) -> pd.DataFrame:
    t = mixed_target(q)
    pr = iw.predict_learning_curve(spec, t, ms).curve.wide()
    out = pr[["sample_size", "test_mse", "E0"]].copy()
    for name, _ in components(q):
        out[f"err:{name}"] = pr["E0"] * (1 - pr[f"learnability:{name}"]) ** 2 / 5
    out.attrs["L"] = {c["component"]: c["learning_index"] for c in pr.attrs["components"]}
    return out


SCRIPT = C.figure_script(NAME, __doc__)


@SCRIPT.main
def main(run) -> dict:
    args = run.args
    cfg = SIZES[args.size]
    C.style()
    timer = C.Timer()
    q = cfg["q_large"]
    d = q ** 4
    rs = np.linspace(0.5, 2.75, 91)
    ms = np.unique(np.round(d ** rs).astype(np.int64))
    m_star = int(round(d ** R_STAR))
    store = run.store(size=args.size, **cfg, kind=KIND, max_degree=MAX_DEGREE)
    specs, curves, at_star, levels, Ls = {}, [], [], [], {}
    for depth, arch in trees(q).items():
        spec = C.stored_spectrum(store, {"depth": depth, "q": q}, arch, d, DOMAIN, KIND,
                                 max_degree=MAX_DEGREE)
        specs[depth] = spec
        tab = spec.table()
        ok = tab[np.isfinite(tab.learning_index) & (tab.eigenvalue > 0)]
        for L in sorted({round(v, 6) for v in ok.learning_index}):
            levels.append(dict(depth=depth, learning_index=L,
                               types=int((ok.learning_index.round(6) == L).sum())))
        pr = predict(spec, q, ms)
        Ls[depth] = pr.attrs["L"]
        pr.insert(0, "depth", depth)
        pr["r"] = np.log(pr.sample_size) / math.log(d)
        curves.append(pr)
        one = predict(spec, q, [m_star])
        at_star.append(dict(depth=depth, sample_size=m_star, total=float(one.test_mse[0]),
                            **{n: float(one[f"err:{n}"][0]) for n, _ in components(q)}))
    curves = pd.concat(curves, ignore_index=True)
    levels = pd.DataFrame(levels)
    at_star = pd.DataFrame(at_star)

    qs = cfg["q_small"]
    ds = qs ** 4
    m_small = int(round(ds ** R_STAR))
    singles = [iw.Target.from_degrees(DOMAIN, ds, qs, deg, power=1.0 / 5, name=name)
               for name, deg in components(qs)]
    meas_rows = []
    for depth, arch in trees(qs).items():
        meas = C.unit(store, {"measured": depth, "q": qs},
                      lambda arch=arch: iw.kernel_regression_curve(
                          arch, singles + [mixed_target(qs)], [m_small], kind=KIND,
                          seeds=cfg["seeds"], n_test=cfg["n_test"]))
        spec = C.stored_spectrum(store, {"depth": depth, "q": qs}, arch, ds, DOMAIN, KIND,
                                 max_degree=MAX_DEGREE)
        pr = predict(spec, qs, [m_small])
        for r in meas.itertuples():
            pred = float(pr.test_mse[0]) if r.target == "mixed" else float(pr[f"err:{r.target}"][0])
            meas_rows.append(dict(depth=depth, d=ds, sample_size=m_small, target=r.target,
                                  measured=r.test_mse, measured_std=r.test_mse_std,
                                  predicted=pred, n_seeds=r.n_seeds))
    meas = pd.DataFrame(meas_rows)

    fig, axes = C.plt.subplots(1, 4, figsize=(21, 4.9),
                               gridspec_kw=dict(width_ratios=[1.0, 1.2, 1.2, 1.2]))
    ax = axes[0]
    for depth in (1, 2, 3):
        lv = levels[levels.depth == depth]
        ax.scatter(lv.learning_index, np.full(len(lv), depth), s=20 + 6 * lv.types,
                   color=DEPTH_COLORS[depth], zorder=3)
        ax.text(lv.learning_index.max() + 0.08, depth, f"{len(lv)} levels", va="center",
                fontsize=8)
    ax.set_yticks([1, 2, 3])
    ax.set_yticklabels(["depth 1\n(q³,)", "depth 2\n(q, q²)", "depth 3\n(q, q, q)"])
    ax.set_ylim(0.5, 3.5)
    ax.set_xlabel("learning index L (types of degree ≤ 3; size ∝ number of types)")
    ax.set_title(f"(a) distinct learning indices, d = {d}")
    ax = axes[1]
    for depth in (1, 2, 3):
        g = curves[curves.depth == depth]
        ax.plot(g.r, g.test_mse, color=DEPTH_COLORS[depth], lw=1.6,
                label=f"depth {depth}: pairs at L = "
                      f"{Ls[depth]['sibling pair']:g} / {Ls[depth]['cousin pair']:g} / "
                      f"{Ls[depth]['far pair']:g}")
    ax.axvline(R_STAR, color="k", ls=":", lw=1)
    ax.set_xlabel("r = log m / log d")
    ax.set_ylabel("predicted test MSE (mixed target, power 1)")
    ax.set_title(f"(b) predicted learning curves, d = {d}")
    ax.legend(fontsize=7, loc="lower left")
    ax = axes[2]
    names = [n for n, _ in components(q)] + ["total"]
    w = 0.26
    x = np.arange(len(names))
    for i, depth in enumerate((1, 2, 3)):
        row = at_star[at_star.depth == depth].iloc[0]
        ax.bar(x + (i - 1) * w, [row[n] for n in names], w, color=DEPTH_COLORS[depth],
               label=f"depth {depth}")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("predicted test MSE (component power 0.2)")
    ax.set_title(f"(c) predicted at m = d^{R_STAR:g} = {m_star:,}, d = {d}")
    ax.legend(fontsize=7)
    ax = axes[3]
    names_m = [n for n, _ in components(qs)] + ["mixed"]
    for i, depth in enumerate((1, 2, 3)):
        g = meas[meas.depth == depth].set_index("target").loc[names_m]
        ax.bar(x + (i - 1) * w, g.measured, w, yerr=g.measured_std, capsize=2,
               color=DEPTH_COLORS[depth], alpha=0.8, label=f"depth {depth} measured")
        ax.scatter(x + (i - 1) * w, g.predicted, marker="_", s=120, color="k", zorder=4,
                   label="predicted" if depth == 1 else None)
    ax.set_xticks(x)
    ax.set_xticklabels(names_m, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("test MSE")
    ax.set_title(f"(d) measured at m = d^{R_STAR:g} = {m_small}, d = {ds} "
                 f"({cfg['seeds']} seeds ± s.d.)")
    ax.legend(fontsize=7)
    fig.suptitle("Figure 4 — depth gives resolution: trees of depth 1, 2, 3 at the same d and "
                 "n0 = d^(1/4), ReLU NTK, hypercube, ridgeless", fontsize=11)
    C.stamp(fig, args.size)
    fig.tight_layout()
    C.savefig(fig, args.out / f"{NAME}.png")
    C.write_csv(curves, args.out / f"{NAME}.csv")
    C.write_csv(levels, args.out / f"{NAME}_levels.csv")
    C.write_csv(at_star, args.out / f"{NAME}_at_m_star.csv")
    C.write_csv(meas, args.out / f"{NAME}_measured.csv")
    summary = {"size": args.size, "d_large": d, "d_small": ds, "r_star": R_STAR,
               "learning_indices": Ls,
               "distinct_levels": levels.groupby("depth").size().to_dict(),
               "predicted_total_at_m_star": at_star.set_index("depth")["total"].to_dict(),
               "measured_mixed_at_m_star": meas[meas.target == "mixed"].set_index("depth")[
                   "measured"].to_dict(),
               "seconds": timer()}
    C.write_json(summary, args.out / f"{NAME}.json")
    C.log(at_star.to_string(index=False, float_format="%.4f"))
    C.log(meas.to_string(index=False, float_format="%.4f"))
    C.log(f"({timer():.0f} s)")
    return summary


if __name__ == "__main__":
    main()
