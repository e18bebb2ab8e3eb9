"""Figure 5: finite width meets the kernel (``docs/theory.md`` §4, "Measured curves").

Hypercube, d = 64, patches of n0 = 8 (α0 = 1/2), ReLU, NTK parameterisation. One target per
architecture, each learned within the sample range:

    MLP (depth 2): linear in one patch (L = 1)
    S-CNN: degree 2 inside one patch (L = 1.5)
    D-CNN, filters (2, 4): a sibling pair x_a·x_b (L = 5/3)

For each architecture and seed, ``iw.finite_width_curve`` (one row per run): the same data
(``iw.learning.regression_dataset``), ridgeless NTK regression on nested training sets, and
networks of growing width trained by full-batch heavy-ball GD on the centred MSE with step
0.5·2m/λ_max(NTK) until the train loss falls below 1e-5 × its initial value, in float32 (on
XLA:CPU float64 convolutions are several times slower per step). The eigenlearning
prediction on the exact spectrum (``iw.predict_learning_curve``) is drawn as well. Last
panel: the RMS distance between the trained network's test predictions and the kernel
predictor, against width (the infinite-width theory predicts it → 0, at rate width^{−1/2}
in the lazy regime).

Resumes from ``<out>/fig5_finite_width.runs.sqlite``: one unit per (architecture, seed,
width), i.e. that network's runs at every m with their kernel regressions, committed whole,
and one per architecture's spectrum; ``--fresh`` starts over.

    python paper_figures/fig5_finite_width.py [--quick | --tiny] [--out DIR] [--fresh]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.io import scripts as C

NAME = "fig5_finite_width"
D, N0, DOMAIN, KIND = 64, 8, "hypercube", "ntk"
LR_FRACTION, MOMENTUM, TOL = 0.5, 0.9, 1e-5
SIZES = {
    "tiny": dict(ms=(16,), widths=(16, 64), seeds=1, n_test=64, max_steps=200),
    "quick": dict(ms=(16, 64, 256), widths=(32, 128, 512), seeds=1, n_test=256,
                  max_steps=3000),
    "full": dict(ms=(16, 32, 64, 128, 256), widths=(32, 128, 512, 2048), seeds=2,
                 n_test=500, max_steps=10000),
}
WIDTH_COLORS = ("tab:olive", "tab:orange", "tab:red", "tab:purple")
# the columns of one run in fig5_finite_width_runs.csv (after size, arch, target), in order
RUN_COLUMNS = ("seed", "width", "sample_size", "test_mse", "kernel_test_mse", "prediction_gap",
               "converged", "steps", "train_loss", "learning_rate", "seconds", "protocol",
               "loss_ratio")


def setups() -> dict[str, tuple[iw.Architecture, iw.Target]]:
    return {
        "MLP": (iw.MLP(depth=2),
                iw.Target.from_degrees(DOMAIN, D, N0, {0: 1}, name="linear, one patch")),
        "S-CNN": (iw.SCNN(patch_dim=N0),
                  iw.Target.from_degrees(DOMAIN, D, N0, {0: 2}, name="degree 2, one patch")),
        "D-CNN": (iw.DCNN(patch_dim=N0, filter_sizes=(2, 4)),
                  iw.Target.pair(DOMAIN, D, N0, name="sibling pair")),
    }


def runs(arch: iw.Architecture, target: iw.Target, cfg: dict, seed: int, width: int
         ) -> list[dict]:
    """One seed and one width of ``iw.finite_width_curve`` (per-run rows): kernel regression
    and the network of that width at every m, on the same data, trained in float32. Each
    width's runs depend only on (data seed, m, width), so splitting the call by width gives
    the same numbers as one call over all widths."""
    df = iw.finite_width_curve(arch, target, cfg["ms"], widths=(width,), seeds=1,
                               n_test=cfg["n_test"], seed=seed, lr_fraction=LR_FRACTION,
                               momentum=MOMENTUM, max_steps=cfg["max_steps"], tol=TOL,
                               chunk=50, per_seed=True, progress=False, dtype="float32")
    return df[list(RUN_COLUMNS)].to_dict("records")


def aggregate(runs_df: pd.DataFrame) -> pd.DataFrame:
    g = runs_df.groupby(["arch", "target", "width", "sample_size"], sort=True)
    out = g["test_mse"].agg(test_mse="mean", test_mse_std="std", n_seeds="count")
    out["test_mse_std"] = out["test_mse_std"].fillna(0.0)
    for c in ("kernel_test_mse", "prediction_gap", "converged", "steps", "seconds"):
        out[c] = g[c].mean()
    out["loss_ratio"] = g["loss_ratio"].max()
    out["protocol"] = "kernel"
    return out.reset_index()


SCRIPT = C.figure_script(NAME, __doc__)


@SCRIPT.main
def main(run) -> dict:
    args = run.args
    cfg = SIZES[args.size]
    C.style()
    timer = C.Timer()
    store = run.store(size=args.size, **cfg, d=D, n0=N0, domain=DOMAIN, kind=KIND,
                         lr_fraction=LR_FRACTION, momentum=MOMENTUM, tol=TOL, chunk=50,
                         dtype="float32", spectrum_max_degree=3)
    preds, Ls, done = [], {}, {}
    # one unit per (architecture, seed, width): every m of that network, committed together
    todo = [(a, s, w) for a in setups() for s in range(cfg["seeds"]) for w in cfg["widths"]]
    for name, sd, w in C.progress(todo, NAME):
        arch, target = setups()[name]
        done[name, sd, w] = store.compute({"arch": name, "seed": sd, "width": w},
                                          lambda: runs(arch, target, cfg, sd, w))
    for name, (arch, target) in setups().items():
        spec = C.stored_spectrum(store, {"arch": name}, arch, D, DOMAIN, KIND, max_degree=3)
        ms = np.unique(np.round(np.logspace(np.log10(min(cfg["ms"])),
                                            np.log10(max(cfg["ms"])), 40)).astype(int))
        pr = iw.predict_learning_curve(spec, target, ms).curve.wide()
        Ls[name] = float(pr.attrs["components"][0]["learning_index"])
        preds.append(pd.DataFrame(dict(arch=name, sample_size=pr.sample_size,
                                       predicted=pr.test_mse)))
    # rows in the order of one finite_width_curve call per (arch, seed): m, then width
    rows = [dict(size=args.size, arch=name, target=setups()[name][1].name, **r)
            for name in setups() for sd in range(cfg["seeds"]) for m in cfg["ms"]
            for w in cfg["widths"] for r in done[name, sd, w] if r["sample_size"] == m]
    runs_df = pd.DataFrame(rows)
    fin = aggregate(runs_df)
    preds = pd.concat(preds, ignore_index=True)

    fig, axes = C.plt.subplots(1, 4, figsize=(20, 4.7))
    for ax, (name, (arch, target)) in zip(axes, setups().items()):
        f = fin[fin.arch == name]
        k = f.groupby("sample_size")["kernel_test_mse"].mean()
        ax.plot(k.index, k.values, "k-", lw=2, marker="o", ms=4,
                label="NTK regression (same data)")
        p = preds[preds.arch == name]
        ax.plot(p.sample_size, p.predicted, "k:", lw=1.2, label="eigenlearning prediction")
        for w, c in zip(cfg["widths"], WIDTH_COLORS):
            g = f[f.width == w].sort_values("sample_size")
            ax.errorbar(g.sample_size, g.test_mse, yerr=g.test_mse_std, fmt="s--", ms=4,
                        color=c, capsize=2, lw=1, label=f"width {w}")
            u = g[g.converged < 1]  # some seed did not reach the tolerance: hollow
            ax.plot(u.sample_size, u.test_mse, "s", ms=7, mfc="white", mec=c, mew=1.5,
                    label="not converged" if len(u) and w == cfg["widths"][0] else None)
        m_l = D ** Ls[name]
        if m_l <= max(cfg["ms"]):
            ax.axvline(m_l, color="tab:green", ls="-.", lw=1, label=f"m = d^L = {m_l:.0f}")
        else:
            ax.text(0.98, 0.02, f"m = d^L = {m_l:.0f} (off scale →)", ha="right",
                    transform=ax.transAxes, fontsize=7, color="tab:green")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(C.plt.NullFormatter())
        ax.set_xlabel("training samples m")
        ax.set_ylabel("test MSE (target power 1)")
        ax.set_title(f"{name}: {target.name} (L = {Ls[name]:.3g})")
        ax.legend(fontsize=7)
    ax = axes[-1]
    ok = runs_df[runs_df.converged.astype(bool)]  # findings from converged nets only
    for name, mk in zip(setups(), "os^"):
        g = ok[ok.arch == name].groupby("width")["prediction_gap"].mean()
        line = ax.loglog(g.index, g.values, marker=mk, label=name)
        bad = runs_df[(runs_df.arch == name) & ~runs_df.converged.astype(bool)]
        if len(bad):
            ax.loglog(bad.width, bad.prediction_gap, mk, mfc="white", ms=7,
                      mec=line[0].get_color(), ls="none")
    w = np.array(cfg["widths"], dtype=float)
    if len(ok):
        ref = ok.groupby("width")["prediction_gap"].mean()
        ax.loglog(w, ref.iloc[0] * (w / w[0]) ** -0.5, "k:", lw=1, label="∝ width^(−1/2)")
    ax.xaxis.set_minor_formatter(C.plt.NullFormatter())
    ax.set_xlabel("width (channels / hidden units)")
    ax.set_ylabel("RMS(net − kernel predictor) on test points")
    ax.set_title("distance to the kernel predictor (mean over converged runs; hollow: "
                 "not converged)", fontsize=9)
    ax.legend(fontsize=7)
    fig.suptitle(f"Figure 5 — finite width meets the kernel: networks trained by full-batch GD "
                 f"(NTK parameterisation, centred) vs ridgeless NTK regression on the same data, "
                 f"hypercube d = {D}, n0 = {N0}; {cfg['seeds']} seed(s)", fontsize=11)
    C.stamp(fig, args.size)
    fig.tight_layout()
    C.savefig(fig, args.out / f"{NAME}.png")
    C.write_csv(fin, args.out / f"{NAME}.csv")
    C.write_csv(runs_df, args.out / f"{NAME}_runs.csv")
    C.write_csv(preds, args.out / f"{NAME}_predicted.csv")
    slopes = {}
    for name in setups():
        g = ok[ok.arch == name].groupby("width")["prediction_gap"].mean()
        if len(g) >= 2:
            slopes[name] = float(np.polyfit(np.log(g.index), np.log(g.values), 1)[0])
    bad = runs_df[~runs_df.converged.astype(bool)]
    not_converged = bad[["arch", "seed", "width", "sample_size", "steps", "loss_ratio"]
                        ].to_dict("records")
    summary = {"size": args.size, **cfg, "d": D, "n0": N0, "learning_indices": Ls,
               "protocol": "kernel",
               "prediction_gap_loglog_slope_vs_width": slopes,
               "converged_fraction": float(runs_df.converged.mean()) if len(runs_df) else None,
               "not_converged": not_converged,
               "note": "slope −0.5 is the lazy-regime rate; the slopes use converged runs only "
                       "(the runs in not_converged are in the CSVs, drawn hollow)",
               "seconds": timer()}
    C.write_json(summary, args.out / f"{NAME}.json")
    C.log(fin[["arch", "width", "sample_size", "test_mse", "kernel_test_mse",
               "prediction_gap", "converged", "steps"]].to_string(index=False,
                                                                  float_format="%.4f"))
    if not_converged:
        C.log(f"NOT CONVERGED (loss above {TOL:g} x initial; excluded from the slopes): "
              + "; ".join(f"{r['arch']} seed {r['seed']} width {r['width']} m={r['sample_size']}"
                          f" (loss ratio {r['loss_ratio']:.2g})" for r in not_converged))
    C.log(slopes, f"({timer():.0f} s)")
    return summary


if __name__ == "__main__":
    main()
