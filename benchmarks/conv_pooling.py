"""Convolution and pooling sample-complexity table (Misiakiewicz & Mei 2021): fully connected
≫ one-layer conv ≫ conv + pooling on translation-invariant degree-ℓ targets.

Target: the normalised cyclic orbit sum of ℓ consecutive coordinates,
f(x) = d^{−1/2}·Σ_t x_t·x_{t+1}⋯x_{t+ℓ−1} (``iw.Target.cyclic``, unit power), on x uniform in
{±1}^d. Kernels (``iw.ConvKernel``, NTK; relu for ℓ = 2, erf for ℓ = 3 because the one-layer
relu patch spectrum has κ_3 = 0 and erf's has κ_2 = 0): fully connected (q = d), one-layer
circular conv with patches of q, the same + AvgPool(ω = q, stride 1, circular) + Flatten, and
the same + GAP. For each (d, q, ℓ, kernel):

- measured: kernel ridge regression (ridge 1e-6, no jitter) on nested training sets drawn
  from {±1}^d, test MSE on 1000 fresh points, mean over seeds (more seeds for the cheap
  curves whose m_max is small);
- predicted: eigenlearning (``iw.predict_learning_curve``) on the exact spectrum
  (``iw.conv_spectrum``; complete, so no tail), same ridge;
- threshold m*: the first m (log-interpolated) where test MSE < 0.5 × power, measured and
  predicted; the ratios m*_FC/m*_conv and m*_conv/m*_pool next to the predicted ones;
- collapse: test MSE against m/N with N = d^ℓ (FC), d·q^(ℓ−1) (conv), (d/ω)·q^(ℓ−1) (local
  pooling over ω: the Fejér factor F_ω(f) of the spectrum keeps about d/ω of each orbit's d
  Fourier modes; the issue's q^(ℓ−1) is the case ω ≍ d) and q^(ℓ−1) (GAP);
- median relative gap |pred − meas|/meas over the points with meas ≥ 0.01 × power (below it
  the error is at the ridge/round-off floor and a relative gap means nothing). The GAP
  kernel has rank r = 2 … 10 here and its curve lives at m ≲ r, where eigenlearning is off
  for reasons of its own (finite r; discrete hypercube features, singular for some m ≥ r
  draws): ``gap_diagnosis.py`` measures both.

Each (d, q, ℓ, kernel, seed) curve is a unit of ``<out>/runs.sqlite``: a rerun reuses it.

    python benchmarks/conv_pooling.py [--quick] [--out DIR] [--fresh]
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.io.harness import Script
from infwidth.io.outputs import write_csv, write_json, write_png
from infwidth.learning.curves import threshold_crossing
from infwidth.learning.regression import nested_regression

RIDGE = 1e-6
N_TEST = 1000
ACT = {2: "relu", 3: "erf"}
KERNELS = ("fully connected", "conv", "conv + local pool", "conv + GAP")


def kernel_spec(name: str, d: int, q: int, ell: int) -> iw.ConvKernel:
    pool = {"fully connected": None, "conv": None, "conv + local pool": q,
            "conv + GAP": "global"}[name]
    return iw.ConvKernel(d, d if name == "fully connected" else q, ACT[ell], "ntk", pool=pool)


def scale(name: str, d: int, q: int, ell: int) -> float:
    """The sample complexity: d^ℓ (FC), d·q^(ℓ−1) (conv), (d/ω)·q^(ℓ−1) (local pooling over
    ω = q: the Fejér factor keeps ≈ d/ω of an orbit's d Fourier modes), q^(ℓ−1) (GAP)."""
    return {"fully connected": d ** ell, "conv": d * q ** (ell - 1),
            "conv + local pool": d // q * q ** (ell - 1)}.get(name, q ** (ell - 1))


def threshold(m: np.ndarray, mse: np.ndarray) -> float:
    """m* at the level 0.5 (:func:`infwidth.learning.curves.threshold_crossing`)."""
    return threshold_crossing(m, mse, 0.5)


def grid(m_max: int) -> np.ndarray:
    """Every m up to 8, then steps of √2 (rounded), up to m_max."""
    ms = set(range(1, 9)) | {int(round(2 ** (k / 2))) for k in range(6, 2 * 17)}
    return np.array(sorted(m for m in ms if m <= m_max))


def predicted(spec, target, ms) -> np.ndarray:
    p = iw.predict_learning_curve(spec, target, ms, ridge=RIDGE)
    return p[p.component == "total"].test_mse.to_numpy()


def measure(k: iw.ConvKernel, target, ms: np.ndarray, seed: int) -> list[dict]:
    d, n = k.dim, int(ms[-1])
    x = iw.sample_inputs("hypercube", n + N_TEST, d, seed=seed)
    y = target.sample(seed=0)(x)
    t0 = time.perf_counter()
    gram = k(x, method="direct" if k.filter_size == d else "walsh")
    t1 = time.perf_counter()
    res = nested_regression(gram, y[:n], y[n:], ms, ridge=RIDGE, jitter=0.0)
    t2 = time.perf_counter()
    return [{"sample_size": int(r["sample_size"]), "test_mse": float(r["test_mse"][0]),
             "gram_seconds": t1 - t0, "solve_seconds": t2 - t1} for r in res]


SCRIPT = Script("conv_pooling", __doc__, out="results/conv_pooling",
                sizes={"quick": "smaller d, m and fewer seeds"})


@SCRIPT.main
def main(run) -> pd.DataFrame:
    size, out = run.size, run.out
    shapes = [(12, 3), (16, 4)] if size == "quick" else [(16, 4), (20, 5)]
    seeds = 3 if size == "quick" else 6
    m_cap = 2048 if size == "quick" else 4096
    store = run.store(size=size, ridge=RIDGE, n_test=N_TEST)
    curves, table, reused = [], [], 0
    for d, q in shapes:
        for ell in (2, 3):
            target = iw.Target.cyclic("hypercube", d, degree=ell)
            for name in KERNELS:
                k = kernel_spec(name, d, q, ell)
                spec = iw.conv_spectrum(k)
                fine = grid(1 << 16)
                pf = predicted(spec, target, fine)
                m_pred = threshold(fine, pf)
                # measure up to 16 × the predicted threshold (the curve is flat after)
                ms = grid(min(m_cap, max(64, int(16 * m_pred))))
                pred = predicted(spec, target, ms)
                # cheap curves (small m_max) get more seeds: the small-m points are noisy
                n_seeds = int(min(8 * seeds, max(seeds, 32 * seeds * 64 // int(ms[-1]))))
                meas = []
                for seed in range(n_seeds):
                    key = {"d": d, "q": q, "ell": ell, "kernel": name, "seed": seed,
                           "m_max": int(ms[-1])}
                    reused += key in store
                    meas.append(pd.DataFrame(store.compute(
                        key, lambda k=k, t=target, ms=ms, s=seed: measure(k, t, ms, s))))
                mm = np.mean([r.test_mse.to_numpy() for r in meas], axis=0)
                sd = np.std([r.test_mse.to_numpy() for r in meas], axis=0, ddof=1)
                ok = mm >= 0.01 * target.power
                gap = float(np.median(np.abs(pred[ok] - mm[ok]) / mm[ok])) if ok.any() \
                    else math.nan
                m_meas = threshold(ms, mm)
                n_scale = scale(name, d, q, ell)
                for j, m in enumerate(ms):
                    curves.append({"d": d, "q": q, "ell": ell, "kernel": name,
                                   "sample_size": int(m), "scaled_m": m / n_scale,
                                   "test_mse_measured": mm[j], "test_mse_sd": sd[j],
                                   "test_mse_predicted": pred[j], "seeds": n_seeds})
                table.append({"d": d, "q": q, "ell": ell, "kernel": name,
                              "activation": ACT[ell], "scale_N": n_scale,
                              "m_star_measured": m_meas, "m_star_predicted": m_pred,
                              "m_star_measured_over_N": m_meas / n_scale,
                              "median_rel_gap": gap, "points_in_gap": int(ok.sum()),
                              "seeds": n_seeds,
                              "m_max": int(ms[-1]),
                              "target_eigenvalue": spec.invariant_eigenvalue(
                                  range(ell))[0]})
                print(f"d={d:3d} q={q} ℓ={ell} {name:18s} m*: measured {m_meas:8.1f} "
                      f"predicted {m_pred:8.1f}  m*/N {m_meas / n_scale:6.3f}  "
                      f"median gap {gap:.3f} ({int(ok.sum())} pts)", flush=True)
    cdf, tdf = pd.DataFrame(curves), pd.DataFrame(table)
    ratios = []
    for (d, q, ell), g in tdf.groupby(["d", "q", "ell"], sort=False):
        s = g.set_index("kernel")
        for a, b in (("fully connected", "conv"), ("conv", "conv + local pool"),
                     ("conv", "conv + GAP")):
            ratios.append({"d": d, "q": q, "ell": ell, "ratio": f"{a} / {b}",
                           "measured": s.m_star_measured[a] / s.m_star_measured[b],
                           "predicted": s.m_star_predicted[a] / s.m_star_predicted[b]})
    rdf = pd.DataFrame(ratios)
    order = all(
        s.m_star_measured["fully connected"] > s.m_star_measured["conv"]
        > max(s.m_star_measured["conv + local pool"], s.m_star_measured["conv + GAP"])
        for _, s in (( k, g.set_index("kernel")) for k, g in tdf.groupby(["d", "q", "ell"])))
    print("\nthresholds m* (test MSE < 0.5 × power):")
    print(tdf[["d", "q", "ell", "kernel", "m_star_measured", "m_star_predicted",
               "m_star_measured_over_N", "median_rel_gap", "points_in_gap",
               "seeds"]].to_string(index=False,
                                                                     float_format="%.3f"))
    print("\nratios of thresholds:")
    print(rdf.to_string(index=False, float_format="%.2f"))
    write_csv(cdf, out / "conv_pooling_curves.csv")
    write_csv(tdf, out / "conv_pooling_table.csv")
    write_csv(rdf, out / "conv_pooling_ratios.csv")
    summary = {"size": size, "shapes": shapes, "seeds": seeds, "ridge": RIDGE,
               "n_test": N_TEST, "ordering_fc_gt_conv_gt_pool_everywhere": bool(order),
               "max_median_rel_gap": float(tdf.median_rel_gap.max()),
               "experiments_with_median_gap_over_0.1": [
                   f"d={r.d} q={r.q} ell={r.ell} {r.kernel}: {r.median_rel_gap:.3f}"
                   for r in tdf.itertuples() if r.median_rel_gap > 0.1],
               "curves_reused_from_store": int(reused)}
    write_json({"summary": summary, "table": tdf.to_dict("records"),
                "ratios": rdf.to_dict("records")}, out / "conv_pooling.json")
    plot(cdf, out / "conv_pooling.png")
    print(json.dumps(summary, indent=2))
    return tdf


def plot(cdf: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ells = sorted(cdf.ell.unique())
    fig, axes = plt.subplots(len(ells), len(KERNELS), figsize=(4.2 * len(KERNELS),
                                                               3.4 * len(ells)),
                             sharey=True, squeeze=False, constrained_layout=True)
    xlabel = {"fully connected": "m / d^ℓ", "conv": "m / (d·q^(ℓ−1))",
              "conv + local pool": "m / ((d/ω)·q^(ℓ−1)), ω = q", "conv + GAP": "m / q^(ℓ−1)"}
    for i, ell in enumerate(ells):
        for j, name in enumerate(KERNELS):
            ax = axes[i, j]
            g = cdf[(cdf.ell == ell) & (cdf.kernel == name)]
            for c, ((d, q), h) in zip(("C0", "C3", "C2"), g.groupby(["d", "q"])):
                sem = h.test_mse_sd / np.sqrt(h.seeds)
                ax.errorbar(h.scaled_m, h.test_mse_measured, yerr=sem, fmt="o",
                            ms=3.5, color=c, label=f"measured d={d}, q={q} (mean ± s.e.)")
                ax.plot(h.scaled_m, h.test_mse_predicted, "-", color=c, lw=1.2,
                        label=f"predicted d={d}, q={q}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.axhline(0.5, color="gray", lw=0.6, ls=":")
            ax.set_title(f"{name}, degree ℓ={ell} ({ACT[ell]} NTK)", fontsize=10)
            if i == len(ells) - 1:
                ax.set_xlabel(xlabel[name])
            if j == 0:
                ax.set_ylabel("test MSE (target power 1)")
            ax.set_ylim(1e-4, 3)
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.suptitle("Invariant degree-ℓ target: curves collapse on the Misiakiewicz–Mei sample "
                 "complexity (dotted: the threshold level 0.5)", fontsize=11)
    write_png(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
