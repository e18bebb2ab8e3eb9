"""The staircase across dimensions: is a component of learning index L learned at m ≍ d^L?

Same targets, same architectures, several input dimensions d on the hypercube {±1}^d, patches
of n0 = 4 (α0 = log_d 4), NTK, ridgeless (the main job's choice, jitter as in
``iw.kernel_regression_curve``):

- architectures: MLP (depth 2), S-CNN, D-CNN with filter sizes (2, d/8) (siblings share a
  fan-in-2 parent; the top node joins the d/8 parents: the main job's (2, 8) at d = 64);
- targets (power 1): "local degree 2" (a degree-2 Walsh monomial inside patch 0,
  ``iw.Target.local``) and "sibling pair" (a product of linear functions on patches 0 and 1,
  ``iw.Target.pair``). L(d) is the predictor's learning index of the target's component:
  MLP 2; S-CNN local 2α0 + (1 − α0), pair ∞ (never learned); D-CNN from the fan-ins.
- measured: kernel regression (``iw.kernel_regression_curve``) on a doubling grid of m up to
  4× the largest predicted threshold (rounded up to a power of 2, capped), mean over seeds;
- predicted: eigenlearning on the exact type spectrum (``iw.predict_learning_curve``);
- threshold m*: the first m (log-interpolated) with test MSE < 0.5 × power, measured and
  predicted;
- exponent: per (architecture, target), least squares log m* = a + γ·log d over the dims
  with a finite measured m*, with a 95 % t-interval. The theory's exponent is the slope of
  log d^L(d) = L(d)·log d on log d over the same dims (= L when L does not depend on d, as
  for the MLP; 1 for the conv nets, whose d^L = n0^|k|·d/c). Agreement: the theory's
  exponent lies in the interval. A second fit, log m* = b + β·L(d)·log d (β = 1 is m* ∝ d^L),
  is reported the same way, and the first fit again over the largest four dims with a
  measured threshold (the lower-order terms of m*, e.g. the MLP's d(d − 1)/2 degree-2 modes,
  bend the slope at small d). ``predicted_in_interval``: the predictor's own γ (the same fit
  on the predicted m*) lies in the measured interval.
- collapse: the figure plots measured test MSE against m/d^L(d), one colour per d, predicted
  curves overlaid.
- median relative gap |pred − meas|/meas over the points with meas ≥ 0.01 × power.

Each (architecture, d, seed) Gram is a unit of ``<out>/runs.sqlite`` (both targets share
it): a rerun reuses it.

Full run: d = 8 … 512, m ≤ 8192, 2 seeds (the MLP's d^2 threshold is past m = 8192 from
d = 256 on: its fit has d = 8 … 128; the D-CNN sibling pair's reaches ≈ 6800 at d = 512).

    python benchmarks/staircase_dims.py [--quick | --tiny] [--out DIR] [--fresh]
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import stats

import infwidth as iw
from infwidth.io.harness import Script
from infwidth.learning.curves import threshold_crossing

DOMAIN, PATCH, LEVEL = "hypercube", 4, 0.5
SIZES = {"tiny": {"dims": (8, 16), "m_cap": 128, "seeds": 1, "n_test": 100},
         "quick": {"dims": (8, 16, 32, 64), "m_cap": 4096, "seeds": 2, "n_test": 500},
         "full": {"dims": (8, 16, 32, 64, 128, 256, 512), "m_cap": 8192, "seeds": 2,
                  "n_test": 1000}}
ARCHS = ("MLP", "S-CNN", "D-CNN")
TARGETS = ("local degree 2", "sibling pair")


def architecture(name: str, d: int):
    if name == "MLP":
        return iw.MLP(depth=2), 8
    if name == "S-CNN":
        return iw.SCNN(patch_dim=PATCH), 4
    p = d // PATCH
    return iw.DCNN(patch_dim=PATCH, filter_sizes=(2, p // 2) if p > 2 else (2,)), 4


def targets(d: int) -> dict:
    return {"local degree 2": iw.Target.local(DOMAIN, d, PATCH, degree=2),
            "sibling pair": iw.Target.pair(DOMAIN, d, PATCH, (0, 1))}


def threshold(m: np.ndarray, mse: np.ndarray) -> float:
    """m* at the level LEVEL (:func:`infwidth.learning.curves.threshold_crossing`)."""
    return threshold_crossing(m, mse, LEVEL)


def fit(x: np.ndarray, y: np.ndarray) -> dict:
    """Least squares y = a + s·x; the slope with its 95 % t-interval (nan below 3 points)."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2:
        return {"slope": math.nan, "lo": math.nan, "hi": math.nan, "points": int(len(x))}
    r = stats.linregress(x, y)
    half = (stats.t.ppf(0.975, len(x) - 2) * r.stderr) if len(x) > 2 else math.nan
    return {"slope": float(r.slope), "lo": float(r.slope - half), "hi": float(r.slope + half),
            "points": int(len(x))}


def predicted(spec, target, ms) -> tuple[np.ndarray, float]:
    p = iw.predict_learning_curve(spec, target, ms)
    comp = p[p.component != "total"]
    li = float(comp.learning_index.iloc[0]) if len(comp) else math.nan
    if comp.eigenvalue.iloc[0] == 0.0:
        li = math.inf
    return p[p.component == "total"].test_mse.to_numpy(), li


SCRIPT = Script("staircase_dims", __doc__, out="results/staircase_dims",
                sizes={"quick": "d = 8 … 64, m ≤ 4096 (a minute)",
                       "tiny": "d = 8, 16, m ≤ 128, one seed (seconds)"})


@SCRIPT.main
def main(run) -> dict:
    cfg = SIZES[run.size]
    store = run.store(size=run.size, **cfg)
    fine = np.unique(np.round(2 ** np.arange(1, 21, 0.125)).astype(int))
    curves, table = [], []
    for a in ARCHS:
        for d in cfg["dims"]:
            arch, max_degree = architecture(a, d)
            spec = iw.spectrum(arch, d, DOMAIN, "ntk", max_degree=max_degree)
            tg = targets(d)
            plan = {}
            for t, target in tg.items():
                pf, li = predicted(spec, target, fine)
                plan[t] = (pf, li, threshold(fine, pf))
            finite = [m for _, _, m in plan.values() if math.isfinite(m)]
            m_top = max(finite) if finite else 64.0
            m_max = int(min(cfg["m_cap"], 2 ** math.ceil(math.log2(4 * max(m_top, 16)))))
            ms = 2 ** np.arange(2, int(math.log2(m_max)) + 1)
            runs = []
            for s in range(cfg["seeds"]):
                key = {"arch": a, "d": d, "seed": s, "m_max": m_max}
                runs += store.compute(key, lambda arch=arch, tg=tg, ms=ms, d=d, s=s: [
                    {"target": r.target, "sample_size": int(r.sample_size),
                     "test_mse": float(r.test_mse)}
                    for r in iw.kernel_regression_curve(
                        arch, tg, ms, seeds=1, seed=1000 * s, n_test=cfg["n_test"],
                        domain=DOMAIN, dim=d, per_seed=True, progress=False,
                        ridge=0.0).itertuples()])
            meas = pd.DataFrame(runs).groupby(["target", "sample_size"]).test_mse.agg(
                ["mean", "std"]).reset_index()
            for t, target in tg.items():
                pf, li, m_pred = plan[t]
                g = meas[meas.target == t].sort_values("sample_size")
                mm, sd = g["mean"].to_numpy(), g["std"].to_numpy()
                pred, _ = predicted(spec, target, ms)
                ok = mm >= 0.01 * target.power
                gap = float(np.median(np.abs(pred[ok] - mm[ok]) / mm[ok])) if ok.any() \
                    else math.nan
                m_meas = threshold(ms.astype(float), mm)
                scale = d ** li if math.isfinite(li) else math.nan
                for j, m in enumerate(ms):
                    curves.append({"arch": a, "target": t, "d": d, "sample_size": int(m),
                                   "learning_index": li, "scaled_m": m / scale,
                                   "test_mse_measured": mm[j], "test_mse_sd": sd[j],
                                   "test_mse_predicted": pred[j], "seeds": cfg["seeds"],
                                   "kind": "measured grid"})
                for m, v in zip(fine, pf):
                    if m <= 2 * ms[-1]:
                        curves.append({"arch": a, "target": t, "d": d, "sample_size": int(m),
                                       "learning_index": li, "scaled_m": m / scale,
                                       "test_mse_predicted": v, "kind": "predicted dense"})
                table.append({"arch": a, "target": t, "d": d, "learning_index": li,
                              "d_pow_L": scale, "m_star_measured": m_meas,
                              "m_star_predicted": m_pred, "m_max": int(ms[-1]),
                              "median_rel_gap": gap, "points_in_gap": int(ok.sum())})
                print(f"{a:5s} {t:14s} d={d:4d} L={li:.3f}  m*: measured {m_meas:8.1f} "
                      f"predicted {m_pred:8.1f} (m ≤ {ms[-1]})  median gap {gap:.3f}",
                      flush=True)
    cdf, tdf = pd.DataFrame(curves), pd.DataFrame(table)
    fits = []
    for (a, t), g in tdf.groupby(["arch", "target"], sort=False):
        logd = np.log(g.d.to_numpy(float))
        li = g.learning_index.to_numpy()
        lm, lp = np.log(g.m_star_measured.to_numpy()), np.log(g.m_star_predicted.to_numpy())
        if not np.isfinite(li).all():
            fits.append({"arch": a, "target": t, "L_at_largest_d": float(li[-1]),
                         "verdict": "never learned (L = ∞)",
                         "agrees": bool(np.isnan(lm).all())})
            continue
        theory = fit(logd, li * logd)["slope"]
        fm, fp, fb = fit(logd, lm), fit(logd, lp), fit(li * logd, lm)
        agrees = fm["lo"] <= theory <= fm["hi"] if math.isfinite(fm["lo"]) else None
        # the largest four dims with a measured threshold: closer to the asymptotic regime
        last = np.flatnonzero(np.isfinite(lm))[-4:]
        fl = fit(logd[last], lm[last])
        theory_l = fit(logd[last], (li * logd)[last])["slope"]
        fits.append({"arch": a, "target": t, "L_at_largest_d": float(li[-1]),
                     "L_range": [float(li.min()), float(li.max())],
                     "gamma_theory": theory,
                     "gamma_measured": fm["slope"], "gamma_lo": fm["lo"], "gamma_hi": fm["hi"],
                     "dims_fitted": fm["points"], "gamma_predicted": fp["slope"],
                     "beta_vs_L_logd": fb["slope"], "beta_lo": fb["lo"], "beta_hi": fb["hi"],
                     "predicted_in_interval": bool(fm["lo"] <= fp["slope"] <= fm["hi"]),
                     "gamma_last4": fl["slope"], "gamma_last4_lo": fl["lo"],
                     "gamma_last4_hi": fl["hi"], "gamma_theory_last4": theory_l,
                     "agrees_last4": bool(fl["lo"] <= theory_l <= fl["hi"]),
                     "agrees": agrees,
                     "verdict": ("agrees" if agrees else "disagrees" if agrees is False
                                 else "too few dims")})
    fdf = pd.DataFrame(fits)
    pd.set_option("display.width", 200)
    print("\nthreshold exponents (95 % t-intervals):")
    print(fdf.to_string(index=False, float_format="%.3f"))
    gap = float(tdf.median_rel_gap.median())
    print(f"\nmedian relative gap (median over rows of per-row medians): {gap:.3f}")
    run.write_csv(cdf, "staircase_dims_curves.csv")
    run.write_csv(tdf, "staircase_dims_thresholds.csv")
    summary = {"size": run.size, **{k: v for k, v in cfg.items()}, "patch_dim": PATCH,
               "ridge": 0.0, "level": LEVEL, "median_rel_gap": gap,
               "max_median_rel_gap": float(tdf.median_rel_gap.max())}
    run.write_json({"summary": summary, "fits": fdf.to_dict("records"),
                    "thresholds": tdf.to_dict("records")}, "staircase_dims.json")
    plot(run, cdf)
    print(json.dumps(summary))
    return {"summary": summary, "fits": fits}


def plot(run, cdf: pd.DataFrame) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(TARGETS), len(ARCHS), figsize=(4.4 * len(ARCHS), 7.2),
                             sharey=True, squeeze=False, constrained_layout=True)
    dims = sorted(cdf.d.unique())
    colours = dict(zip(dims, plt.cm.viridis(np.linspace(0, 0.9, len(dims)))))
    for i, t in enumerate(TARGETS):
        for j, a in enumerate(ARCHS):
            ax = axes[i, j]
            g = cdf[(cdf.arch == a) & (cdf.target == t)]
            finite = np.isfinite(g.learning_index).all()
            x = "scaled_m" if finite else "sample_size"
            for d, h in g.groupby("d"):
                c, li = colours[d], h.learning_index.iloc[0]
                mh = h[h.kind == "measured grid"]
                ph = h[h.kind == "predicted dense"]
                ax.errorbar(mh[x], mh.test_mse_measured,
                            yerr=mh.test_mse_sd.fillna(0) / np.sqrt(mh.seeds), fmt="o", ms=4,
                            color=c, label=f"d={d} (L={li:.2f})")
                ax.plot(ph[x], ph.test_mse_predicted, "-", color=c, lw=1.2)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.axhline(LEVEL, color="gray", lw=0.6, ls=":")
            ax.set_ylim(1e-3, 5)
            ax.set_title(f"{a}, {t}" + ("" if finite else " (L = ∞: never learned)"),
                         fontsize=10)
            ax.set_xlabel("m / d^L" if finite else "m")
            if j == 0:
                ax.set_ylabel("test MSE (target power 1)")
            ax.legend(fontsize=7, title="dots: measured; lines: predicted", title_fontsize=7)
    fig.suptitle("Staircase across dimensions: test MSE against m/d^L collapses "
                 "(dotted: the threshold level 0.5)", fontsize=11)
    run.write_png(fig, "staircase_dims.png")
    plt.close(fig)


if __name__ == "__main__":
    main()
