"""Figure 6: multiple descent of dot-product kernels on the sphere (``docs/theory.md`` §4).

Inputs x uniform on the sphere of radius √d in R^d; t = ⟨x, x'⟩/d. Three dot-product kernels:

- "synthetic": g(t) = Σ_{k≤8} ρ^k·P_k(t), i.e. total power ρ^k in degree k (fast decay, ρ = 0.03);
- the NTK of ``iw.MLP(depth=1, activation="erf")`` (odd degrees only);
- the NTK of ``iw.MLP(depth=2, activation="relu")`` (every degree, slow decay).

Target f* = f_1 + f_2 + f_3 (unit-variance zonal harmonics of degrees 1–3, power 1/3 each)
plus label noise ε². Measured: kernel regression (ridge δ), several seeds, test MSE against
noisy labels (computed as clean MSE + ε²). Predicted: eigenlearning (``iw.eigenlearning``) on
the Funk–Hecke eigenvalues λ_k with multiplicities N(d, k) (Gauss–Jacobi quadrature, k ≤ 12;
the power above degree 12 acts as extra ridge).
Vertical lines: m = N(d, r), the number of degree-r harmonics.

Right panel: eigenvalues of the degree-r harmonic Gram matrix W = ΦᵀΦ/m, built exactly by the
addition theorem ΦΦᵀ = N(d, r)·P_r(XXᵀ/d), against the Marchenko–Pastur law with aspect
ratio γ = N(d, r)/m.

Resumes from ``<out>/fig6_multiple_descent.runs.sqlite``: one unit per (kernel, seed) (that
seed's regressions at every m), per Marchenko–Pastur panel and per cross-check, each
committed whole; ``--fresh`` starts over.

    python paper_figures/fig6_multiple_descent.py [--quick | --tiny] [--out DIR] [--fresh]
"""

from __future__ import annotations

import importlib
import math

import numpy as np
import pandas as pd
from scipy import linalg, stats

import infwidth as iw
from infwidth.eigenspaces.harmonics import (
    funk_hecke,
    harmonic_count,
    legendre_all,
    reproducing_kernel,
)
from infwidth.io import scripts as C

# its sphere helpers: paper_figures._sphere when imported, _sphere (beside it) when run
S = importlib.import_module(f"{__package__}._sphere" if __package__ else "_sphere")

NAME = "fig6_multiple_descent"
SIZES = {  # d, largest m, points on the m grid, seeds, test points, MP degree r
    "tiny": dict(d=8, m_max=160, n_grid=14, seeds=2, n_test=200, r=2),
    "quick": dict(d=12, m_max=1000, n_grid=32, seeds=4, n_test=1000, r=2),
    "full": dict(d=20, m_max=3600, n_grid=44, seeds=5, n_test=2000, r=2),
}
RHO, NOISE, RIDGE, MAX_DEGREE = 0.03, 0.05, 1e-8, 12
TARGET_POWER = {1: 1 / 3, 2: 1 / 3, 3: 1 / 3}
GAMMAS = (0.25, 0.6, 1.6)


def kernels(d: int) -> dict:
    """name → (g(t), label)."""
    def synthetic(t):
        return sum(RHO ** k * p for k, p in enumerate(legendre_all(8, d, t)))
    erf, relu = iw.MLP(depth=1, activation="erf"), iw.MLP(depth=2, activation="relu")
    return {"synthetic": (synthetic, f"synthetic: power ρ^k in degree k (ρ={RHO})"),
            "erf-ntk": (S.mlp_profile(erf), "MLP NTK, erf, depth 1"),
            "relu-ntk": (S.mlp_profile(relu), "MLP NTK, ReLU, depth 2")}


def profile_check(d: int) -> float:
    """Max |g_closed-form − g_neural-tangents| over t ∈ [−1, 1] for the two MLP kernels."""
    t = np.linspace(-0.99, 0.99, 23)
    err = 0.0
    for arch in (iw.MLP(depth=1, activation="erf"), iw.MLP(depth=2, activation="relu")):
        g_nt = S.kernel_profile(lambda a, b, arch=arch: iw.kernel(
            arch, a, b, kind="ntk", engine="neural-tangents"), d)
        err = max(err, float(np.max(np.abs(S.mlp_profile(arch)(t) - g_nt(t)))))
    return err


def engine_check(d: int, lams: dict) -> dict:
    """Max relative gap between the Funk–Hecke λ_k and ``iw.spectrum(MLP, domain="sphere")``
    (one patch: the type-level engine's own route), over degrees with λ_k > 1e-12·λ_max."""
    out = {}
    for name, arch in (("erf-ntk", iw.MLP(depth=1, activation="erf")),
                       ("relu-ntk", iw.MLP(depth=2, activation="relu"))):
        tab = iw.spectrum(arch, d, "sphere", "ntk", max_degree=6).table()
        eng = tab.sort_values("frequency")["eigenvalue"].to_numpy()
        fh = lams[name][: len(eng)]
        big = np.abs(fh) > 1e-12 * np.abs(fh).max()
        out[name] = float(np.max(np.abs(eng[big] - fh[big]) / np.abs(fh[big])))
    return out


def predicted(g, d: int, ms: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    lam = funk_hecke(g, d, MAX_DEGREE, n_quad=400)
    lam = np.where(np.abs(lam) < 1e-15 * abs(g(np.array([1.0]))[0]), 0.0, lam)
    mult = np.array([harmonic_count(d, k) for k in range(MAX_DEGREE + 1)], dtype=float)
    tail = max(float(g(np.array([1.0]))[0] - np.sum(lam * mult)), 0.0)
    power = np.array([TARGET_POWER.get(k, 0.0) for k in range(MAX_DEGREE + 1)])
    pred = iw.eigenlearning(lam, mult, ms, power, ridge=RIDGE + tail, noise=math.sqrt(NOISE))
    return pd.DataFrame({"m": pred["sample_size"], "test_mse": pred["test_mse"]}), lam


def measured_seed(g, d: int, ms: np.ndarray, seed: int, n_test: int) -> list[dict]:
    """Kernel regression of one seed (its own inputs and label noise) at every m."""
    rows = []
    m_max = int(ms.max())
    targets = {k: S.zonal_target(k, d, n_centres=2 * d, seed=100 + k) for k in TARGET_POWER}

    def f_star(x):
        return sum(math.sqrt(p) * targets[k](x) for k, p in TARGET_POWER.items())

    x = iw.sample_inputs("sphere", m_max + n_test, d, seed=1000 + seed)
    xtr, xte = x[:m_max], x[m_max:]
    rng = np.random.default_rng(2000 + seed)
    y = f_star(xtr) + math.sqrt(NOISE) * rng.standard_normal(m_max)
    yte = f_star(xte)
    K = g(np.clip(xtr @ xtr.T / d, -1, 1))
    Kt = g(np.clip(xte @ xtr.T / d, -1, 1))
    for m in ms:
        m = int(m)
        a = linalg.solve(K[:m, :m] + RIDGE * np.eye(m), y[:m], assume_a="pos")
        rows.append(dict(seed=seed, m=m, test_mse=float(np.mean((Kt[:, :m] @ a - yte) ** 2)
                                                         + NOISE)))
    return rows


def measured(per_seed: list[list[dict]]) -> pd.DataFrame:
    """Mean, s.d. and count over seeds at each m, from the rows of every seed in order."""
    df = pd.DataFrame([r for rows in per_seed for r in rows])
    return df.groupby("m")["test_mse"].agg(["mean", "std", "count"]).reset_index()


def mp_panel(d: int, r: int, gamma: float, seed: int = 0) -> list[dict]:
    """Eigenvalues of the degree-r harmonic Gram W = ΦᵀΦ/m at aspect ratio ≈ ``gamma``, and
    the Kolmogorov–Smirnov distance of their distribution to the Marchenko–Pastur law (in
    every row, column ``ks``)."""
    n = harmonic_count(d, r)
    m = max(2, int(round(n / gamma)))
    x = iw.sample_inputs("sphere", m, d, seed=seed + m)
    gram = reproducing_kernel(r, d, np.clip(x @ x.T / d, -1, 1)) / m
    ev = np.sort(np.linalg.eigvalsh(gram))[::-1][: min(n, m)]
    g_eff = n / m
    lo, hi = S.mp_edges(g_eff)
    grid = np.linspace(lo, hi, 4001)[1:-1]
    cdf = np.concatenate([[0], np.cumsum(S.mp_density(grid, g_eff) * np.gradient(grid))])
    cdf = cdf[1:] / cdf[-1]
    ks = float(stats.kstest(ev, lambda v: np.interp(v, grid, cdf)).statistic)
    return [dict(gamma=g_eff, m=m, n_harmonics=n, eigenvalue=float(e), ks=ks) for e in ev]


def mp_spectra(store, d: int, r: int, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """Every Marchenko–Pastur panel (one unit each) and their KS distances by γ."""
    rows, ks = [], {}
    for gamma in GAMMAS:
        panel = store.compute({"mp": gamma, "r": r, "seed": seed},
                              lambda gamma=gamma: mp_panel(d, r, gamma, seed))
        ks[f"{gamma:g}"] = panel[0]["ks"]
        rows += [{k: v for k, v in e.items() if k != "ks"} for e in panel]
    return pd.DataFrame(rows), ks


SCRIPT = C.figure_script(NAME, __doc__)


@SCRIPT.main
def main(run) -> dict:
    args = run.args
    cfg = SIZES[args.size]
    d, r = cfg["d"], cfg["r"]
    timer = C.Timer()
    C.style()
    ms = np.unique(np.round(np.logspace(np.log10(3), np.log10(cfg["m_max"]),
                                        cfg["n_grid"])).astype(int))
    harm = {k: harmonic_count(d, k) for k in (1, 2, 3)}
    ms = np.unique(np.concatenate([ms, [v for v in harm.values() if v <= cfg["m_max"]]]))
    ks = kernels(d)
    store = run.store(size=args.size, **cfg, rho=RHO, noise=NOISE, ridge=RIDGE,
                         max_degree=MAX_DEGREE, gammas=GAMMAS)
    # units: one kernel's regressions for one seed (every m), one MP panel, one check
    todo = [(name, s) for name in ks for s in range(cfg["seeds"])]
    per_seed = {}
    for name, s in C.progress(todo, NAME):
        g = ks[name][0]
        per_seed[name, s] = store.compute(
            {"kernel": name, "seed": s},
            lambda g=g, s=s: measured_seed(g, d, ms, s, cfg["n_test"]))
    curves, notes, lams = [], {}, {}
    for name, (g, label) in ks.items():
        pred, lam = predicted(g, d, ms)
        meas = measured([per_seed[name, s] for s in range(cfg["seeds"])])
        lams[name] = lam
        df = meas.merge(pred.rename(columns={"test_mse": "predicted"}), on="m")
        df.insert(0, "kernel", name)
        curves.append(df)
        sem = df["std"].fillna(0) / np.sqrt(df["count"])
        notes[name] = {
            "measured_peaks_m": S.find_peaks(df["m"].values, df["mean"].values, sem.values,
                                             k=1.0),
            "predicted_peaks_m": S.find_peaks(df["m"].values, df["predicted"].values),
            "power_per_degree": {k: float(lam[k] * harmonic_count(d, k)) for k in range(6)},
            "max_rel_gap_measured_vs_predicted":
                float(np.max(np.abs(df["mean"] - df["predicted"]) / df["predicted"])),
        }
    curves = pd.concat(curves, ignore_index=True)
    mp, ks_stat = mp_spectra(store, d, r)
    prof_err = store.compute({"check": "profile"},
                             lambda: [{"max_abs": profile_check(d)}])[0]["max_abs"]
    engine = store.compute({"check": "engine"}, lambda: [engine_check(d, lams)])[0]

    fig, axes = C.plt.subplots(1, 4, figsize=(17, 4.0))
    for ax, (name, (g, label)) in zip(axes[:3], ks.items()):
        df = curves[curves.kernel == name]
        sem = df["std"].fillna(0) / np.sqrt(df["count"])
        ax.errorbar(df["m"], df["mean"], yerr=sem, fmt="o", ms=3, capsize=2,
                    label=f"kernel regression ({cfg['seeds']} seeds, ±1 s.e.)")
        ax.plot(df["m"], df["predicted"], "-", color="k", lw=1.2,
                label="eigenlearning prediction")
        for k, nk in harm.items():
            if nk <= cfg["m_max"]:
                ax.axvline(nk, color="tab:red", ls="--", lw=0.8, alpha=0.7)
                ax.text(nk, 0.98, f" N(d,{k})={nk}", transform=ax.get_xaxis_transform(),
                        fontsize=7, color="tab:red", va="top", rotation=90)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("training samples m")
        ax.set_ylabel("test MSE (incl. noise ε²)")
        ax.set_title(label, fontsize=9)
        ax.legend(loc="lower left")
    ax = axes[3]
    for gamma, c in zip(sorted(mp.gamma.unique()), ("tab:blue", "tab:orange", "tab:green")):
        ev = mp[mp.gamma == gamma].eigenvalue.values
        ax.hist(ev, bins=int(np.clip(len(ev) // 8, 8, 40)), density=True, histtype="step", color=c,
                label=f"γ=N/m={gamma:.2f} (m={mp[mp.gamma == gamma].m.iloc[0]})")
        lo, hi = S.mp_edges(gamma)
        xs = np.linspace(lo, hi, 400)
        ax.plot(xs, S.mp_density(xs, gamma), color=c, lw=1.2, ls=":")
    ax.set_xlabel("eigenvalue of ΦᵀΦ/m (non-zero part)")
    ax.set_ylabel("density")
    ax.set_ylim(0, None)
    ax.set_title(f"degree-{r} harmonic Gram, N(d,{r})={harmonic_count(d, r)}: "
                 "histogram vs MP (dotted)", fontsize=9)
    ax.legend()
    fig.suptitle(f"Figure 6 — multiple descent on the sphere S^{d - 1} (d={d}); target "
                 f"f₁+f₂+f₃ (power 1/3 each) + noise ε²={NOISE}, ridge {RIDGE:g}",
                 fontsize=11)
    C.stamp(fig, args.size)
    fig.tight_layout()
    C.savefig(fig, args.out / f"{NAME}.png")
    C.write_csv(curves, args.out / f"{NAME}.csv")
    C.write_csv(mp, args.out / f"{NAME}_mp.csv")
    summary = {"size": args.size, **cfg, "rho": RHO, "noise": NOISE, "ridge": RIDGE,
               "n_harmonics": harm, "kernels": notes, "mp_ks_statistic": ks_stat,
               "closed_form_vs_neural_tangents_max_abs": prof_err,
               "funk_hecke_vs_iw_spectrum_max_rel": engine,
               "seconds": timer()}
    C.write_json(summary, args.out / f"{NAME}.json")
    C.log(curves.to_string(index=False, max_rows=40))
    C.log({k: (v["measured_peaks_m"], v["predicted_peaks_m"]) for k, v in notes.items()},
          "MP KS:", ks_stat, f"({timer():.0f} s)")
    return summary


if __name__ == "__main__":
    main()
