"""Sequential vs parallel residual networks (seeds/002): finite nets and their kernels.

Residual stack y_l = y_{l−1} + α·F_l(y_{l−1}) against its first-order truncation
y = y_0 + α·Σ_l F_l(y_0), with the same dense branches F = Dense → ReLU → Dense and the same
parameter count, on digits (8×8, flat) and a Fashion-MNIST subset (28×28, flat).

1. Kernel gap: relative ‖K_seq − K_par‖_F/‖K_par‖_F (NNGP and NTK) over α × L, its log-log
   slopes in α and L, and the ratio to the leading term α⁴·L(L−1)/2·‖DT[T]‖ (NNGP).
   Computed with the numpy recursion of ``infwidth.studies.sequential_vs_parallel`` (equal
   to neural-tangents to round-off; a neural-tangents spot check is printed).
2. Finite nets: a grid over depth L, width and α, both layouts, trained by the same
   full-batch heavy-ball GD (centred outputs, NTK parameterisation, η = 0.5·2n/λ_max of each
   net's own NTK, fixed number of steps). Train and validation loss (1/2n)·Σ‖f − y‖²,
   binned like the paper's table by q = (training samples × outputs)/parameters, beside
   the infinite-width limit of the same protocol (linearised GD on the analytic NTK) and the
   kernel gap of the same (L, α).

Usage:
    python benchmarks/sequential_vs_parallel.py [--quick | --tiny] [--out DIR] [--fresh]

Writes runs.csv, gaps.csv, binned.csv, config.json, summary.json, kernel_gap.png and
seq_vs_par_losses.png to DIR (default results/sequential_vs_parallel/). Every unit of work
(one data set's kernel gaps, one infinite-width counterpart (L, α, layout), one training run)
is committed whole to DIR/runs.sqlite under the run's settings; a rerun with the same
settings resumes with the same numbers (--fresh: start over).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

import infwidth as iw
from infwidth.io.harness import Script
from infwidth.io.outputs import write_csv, write_json, write_png
from infwidth.io.runstore import RunStore
from infwidth.io.scripts import progress, unit
from infwidth.studies.sequential_vs_parallel import (
    ResidualNet,
    gap_table,
    loglog_slope,
    residual_recursion,
)
from infwidth.studies.width_power_law.gd import kernel_gd_predict, train_gd

Q_EDGES = (0.0, 0.03, 0.1, 0.3, 1.0, np.inf)
KEY = ["dataset", "depth", "width", "alpha", "layout", "seed"]


def save_png(fig, path: Path) -> None:
    write_png(fig, path, dpi=110, tight=False)


def settings(quick: bool, tiny: bool = False) -> dict:
    if tiny:  # smoke-test size (seconds): the resume tests
        return {"data": {"digits": iw.load_digits(n_train=40, n_test=40, seed=0)},
                "depths": [2, 3], "widths": [8], "alphas": [0.5], "seeds": [0],
                "steps": 20, "gap_alphas": [0.01, 0.05, 1.0], "gap_depths": [1, 2, 4],
                "gap_points": 30}
    if quick:
        return {"data": {"digits": iw.load_digits(n_train=200, n_test=200, seed=0)},
                "depths": [2, 4], "widths": [32], "alphas": [0.5], "seeds": [0],
                "steps": 100, "gap_alphas": [0.01, 0.02, 0.05, 0.25, 1.0],
                "gap_depths": [1, 2, 4, 8], "gap_points": 100}
    return {"data": {"digits": iw.load_digits(n_train=500, n_test=400, seed=0),
                     "fashion": iw.load_fashion_mnist(n_train=500, n_test=500, seed=0)},
            "depths": [2, 4, 8], "widths": [32, 128], "alphas": [0.25, 1.0], "seeds": [0],
            "steps": 200, "gap_alphas": [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0],
            "gap_depths": [1, 2, 4, 8, 16, 32], "gap_points": 300}


def half_sq(pred: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * float(np.mean(np.sum((pred - y) ** 2, axis=1)))


def kernel_columns(store: RunStore, name: str, arch: ResidualNet, ds: iw.data.Dataset,
                   steps: int, momentum: float) -> dict:
    """Infinite-width counterpart of one run (width-independent: one unit per data set, L, α,
    layout)."""
    def compute() -> list[dict]:
        n = len(ds.y_train)
        k = residual_recursion(arch, np.concatenate([ds.x_train, ds.x_test]), ds.x_train)
        ntk_tr, ntk_te = k["ntk"][:n], k["ntk"][n:]
        y, yt = ds.one_hot(ds.y_train), ds.one_hot(ds.y_test)
        lr = 0.5 * 2 * n / np.linalg.eigvalsh(ntk_tr)[-1]
        te, tr = kernel_gd_predict(ntk_tr, ntk_te, y, steps=steps, learning_rate=lr,
                                   momentum=momentum)
        return [{"learning_rate": float(lr), "kernel_train_loss": half_sq(tr, y),
                 "kernel_val_loss": half_sq(te, yt),
                 "kernel_val_error": float(np.mean(te.argmax(1) != ds.y_test))}]

    return store.compute({"part": "kernel", "dataset": name, "depth": arch.depth,
                          "alpha": arch.alpha, "layout": arch.layout}, compute)[0]


def run_grid(cfg: dict, store: RunStore, momentum: float) -> pd.DataFrame:
    """One unit per training run (data set, L, width, α, layout, seed), in a fixed order."""
    todo = [(name, L, w, a, lay, s) for name in cfg["data"] for L in cfg["depths"]
            for w in cfg["widths"] for a in cfg["alphas"]
            for lay in ("sequential", "parallel") for s in cfg["seeds"]]

    def train(name: str, L: int, w: int, a: float, lay: str, s: int) -> list[dict]:
        ds = cfg["data"][name]
        arch = ResidualNet(layout=lay, depth=L, width=w, alpha=a, out_dim=ds.n_classes)
        kern = kernel_columns(store, name, arch, ds, cfg["steps"], momentum)
        y, yt = ds.one_hot(ds.y_train), ds.one_hot(ds.y_test)
        res = train_gd(arch, ds.x_train, y, ds.x_test, yt, steps=cfg["steps"],
                       learning_rate=kern["learning_rate"], momentum=momentum, seed=s)
        params = arch.n_params(ds.dim)
        return [{"dataset": name, "depth": L, "width": w, "alpha": a, "layout": lay,
                 "seed": s, "params": params, "q": len(y) * ds.n_classes / params,
                 "train_loss": res.train_loss, "val_loss": half_sq(res.test_pred, yt),
                 "val_error": float(np.mean(res.test_pred.argmax(1) != ds.y_test)),
                 "diverged": res.diverged, "seconds": res.seconds, **kern}]

    return pd.concat([unit(store, {"part": "run", **dict(zip(KEY, t))},
                           lambda t=t: train(*t))
                      for t in progress(todo, desc="train seq/par")], ignore_index=True)


def gaps(cfg: dict, store: RunStore) -> tuple[pd.DataFrame, list]:
    """Kernel gaps over α × L and the neural-tangents spot check: one unit per data set."""
    tables, checks = [], []
    for name, ds in cfg["data"].items():
        def compute(ds=ds, name=name) -> list[dict]:
            x = ds.x_train[: cfg["gap_points"]]
            base = ResidualNet(out_dim=ds.n_classes)
            g = gap_table(base, x, cfg["gap_alphas"], cfg["gap_depths"], method="recursion")
            nt = gap_table(base, x[:64], [0.25], [4])  # neural-tangents spot check
            rec = gap_table(base, x[:64], [0.25], [4], method="recursion")
            check = {"dataset": name, "max_rel_diff_gap": float(
                np.max(np.abs(nt.gap.values - rec.gap.values) / rec.gap.values))}
            return [{"table": g.assign(dataset=name).to_dict("records"), "check": check}]

        rec = store.compute({"part": "gaps", "dataset": name}, compute)[0]
        tables.append(pd.DataFrame(rec["table"]))
        checks.append(rec["check"])
    return pd.concat(tables, ignore_index=True), checks


def slopes(g: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (name, kind), h in g.groupby(["dataset", "kind"], sort=False):
        small = h[h.alpha <= 0.05]
        for L, d in small.groupby("depth"):
            if L > 1 and d.alpha.nunique() >= 2:
                rows.append({"dataset": name, "kind": kind, "vs": "alpha", "at": f"L={L}",
                             "slope": loglog_slope(d.alpha, d.gap), "theory": 4.0})
        for a in (0.01, 0.1, 1.0):
            d = h[(h.alpha == a) & (h.depth >= 4)]
            if len(d) >= 2:
                rows.append({"dataset": name, "kind": kind, "vs": "depth",
                             "at": f"alpha={a:g}, L≥4", "slope": loglog_slope(d.depth, d.gap),
                             "theory": 2.0})
    return pd.DataFrame(rows)


def binned(runs: pd.DataFrame, g: pd.DataFrame) -> pd.DataFrame:
    ok = runs[~runs.diverged.astype(bool)]
    wide = ok.pivot_table(index=["dataset", "depth", "width", "alpha", "seed"],
                          columns="layout",
                          values=["train_loss", "val_loss", "val_error", "q",
                                  "kernel_val_loss"]).dropna()
    wide.columns = [f"{a}_{b[:3]}" for a, b in wide.columns]
    wide = wide.reset_index()
    gap = g[g.kind == "ntk"].set_index(["dataset", "depth", "alpha"]).gap
    wide["ntk_gap"] = [gap.get((d, L, a), np.nan) for d, L, a in
                       zip(wide.dataset, wide.depth, wide.alpha)]
    wide["q"] = wide.q_seq
    wide["bin"] = pd.cut(wide.q, Q_EDGES, right=False)
    agg = wide.groupby(["dataset", "bin"], observed=True, sort=False).agg(
        pairs=("q", "size"), train_seq=("train_loss_seq", "mean"),
        train_par=("train_loss_par", "mean"), val_seq=("val_loss_seq", "mean"),
        val_par=("val_loss_par", "mean"),
        par_val_better=("val_loss_par", lambda v: float(np.mean(
            v.values < wide.loc[v.index, "val_loss_seq"].values))),
        err_seq=("val_error_seq", "mean"), err_par=("val_error_par", "mean"),
        kernel_val_seq=("kernel_val_loss_seq", "mean"),
        kernel_val_par=("kernel_val_loss_par", "mean"),
        ntk_gap=("ntk_gap", "median")).reset_index()
    agg["bin"] = agg["bin"].astype(str)
    return agg.sort_values(["dataset", "bin"], kind="stable", ignore_index=True)


def plot_gaps(g: pd.DataFrame, path: Path) -> None:
    names = list(g.dataset.unique())
    fig, axes = plt.subplots(2, len(names), figsize=(5.4 * len(names), 8), squeeze=False)
    for j, name in enumerate(names):
        h = g[g.dataset == name]
        ax = axes[0, j]
        for L, d in h[h.kind == "nngp"].groupby("depth"):
            if L == 1:
                continue
            line, = ax.plot(d.alpha, d.gap, "o-", label=f"NNGP, L={L}")
            ax.plot(d.alpha, d.predicted, ":", color=line.get_color())
            n = h[(h.kind == "ntk") & (h.depth == L)]
            ax.plot(n.alpha, n.gap, "x--", color=line.get_color(), alpha=0.6)
        ax.set(xscale="log", yscale="log", xlabel="branch scale α",
               ylabel="‖K_seq − K_par‖_F / ‖K_par‖_F",
               title=f"{name}: gap vs α (o NNGP, x NTK, ⋯ α⁴L(L−1)/2 term)")
        ax.legend(fontsize=7)
        ax = axes[1, j]
        for a, d in h[h.kind == "nngp"].groupby("alpha"):
            d = d[d.depth > 1]
            line, = ax.plot(d.depth, d.gap, "o-", label=f"NNGP, α={a:g}")
            ax.plot(d.depth, d.predicted, ":", color=line.get_color())
        ax.set(xscale="log", yscale="log", xlabel="depth L (branches)",
               ylabel="relative NNGP gap", title=f"{name}: gap vs L (⋯ leading term)")
        ticks = sorted(d for d in h.depth.unique() if d > 1)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def plot_losses(runs: pd.DataFrame, path: Path) -> None:
    ok = runs[~runs.diverged.astype(bool)]
    w = ok.pivot_table(index=["dataset", "depth", "width", "alpha", "seed"], columns="layout",
                       values=["train_loss", "val_loss", "kernel_val_loss", "q"]).dropna()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), constrained_layout=True)
    for ax, col, title in zip(axes, ["train_loss", "val_loss", "kernel_val_loss"],
                              ["finite nets: train loss", "finite nets: validation loss",
                               "∞ width, same GD: validation loss"]):
        sc = ax.scatter(w[(col, "sequential")], w[(col, "parallel")],
                        c=np.log10(w[("q", "sequential")]), cmap="viridis", s=28)
        lo = min(w[(col, "sequential")].min(), w[(col, "parallel")].min()) / 1.3
        hi = max(w[(col, "sequential")].max(), w[(col, "parallel")].max()) * 1.3
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="equal")
        ax.set(xscale="log", yscale="log", xlabel="sequential", ylabel="parallel",
               title=title, xlim=(lo, hi), ylim=(lo, hi), aspect="equal")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
            axis.set_minor_formatter(FormatStrFormatter("%.2g"))
            axis.set_major_formatter(FormatStrFormatter("%.2g"))
        ax.legend(fontsize=8)
    fig.colorbar(sc, ax=axes, label="log10 q = log10(n·outputs/params)")
    fig.suptitle("Sequential vs parallel residual nets (same branches, same parameter count)")
    save_png(fig, path)


SCRIPT = Script("sequential_vs_parallel", __doc__, out="results/sequential_vs_parallel",
                sizes={"quick": "digits only, small grid (≤ 2 min)",
                       "tiny": "smoke-test sizes (seconds)"})


@SCRIPT.main
def main(run) -> int:
    args, out = run.args, run.out
    cfg = settings(args.quick, args.tiny)
    # the gap grid also holds every trained (L, α), for the table's ntk_gap column
    cfg["gap_alphas"] = sorted(set(cfg["gap_alphas"]) | set(cfg["alphas"]))
    cfg["gap_depths"] = sorted(set(cfg["gap_depths"]) | set(cfg["depths"]))
    momentum = 0.9
    config = {k: v for k, v in cfg.items() if k != "data"} | {
        "quick": args.quick, "momentum": momentum,
        "data": {k: [len(d.y_train), len(d.y_test)] for k, d in cfg["data"].items()}}
    if args.tiny:
        config["tiny"] = True
    write_json(config, out / "config.json")
    store = run.store(**config)
    t0 = time.perf_counter()

    g, checks = gaps(cfg, store)
    write_csv(g, out / "gaps.csv")
    sl = slopes(g)
    runs = run_grid(cfg, store, momentum)
    write_csv(runs, out / "runs.csv")
    table = binned(runs, g)
    write_csv(table, out / "binned.csv")
    plot_gaps(g, out / "kernel_gap.png")
    plot_losses(runs, out / "seq_vs_par_losses.png")

    pd.set_option("display.width", 220)
    f = lambda v: f"{v:.4g}"  # noqa: E731
    print("== relative kernel gap ‖K_seq − K_par‖/‖K_par‖ (NNGP; ratio = gap / leading "
          "term α⁴L(L−1)/2·‖DT[T]‖)")
    show = g[(g.kind == "nngp") & (g.depth > 1)].pivot_table(
        index=["dataset", "depth"], columns="alpha", values="gap")
    print(show.to_string(float_format=f))
    print("\n== NTK gap")
    print(g[(g.kind == "ntk") & (g.depth > 1)].pivot_table(
        index=["dataset", "depth"], columns="alpha", values="gap").to_string(float_format=f))
    print("\n== gap / leading term (NNGP)")
    print(g[(g.kind == "nngp") & (g.depth > 1)].pivot_table(
        index=["dataset", "depth"], columns="alpha", values="ratio").to_string(float_format=f))
    print("\n== log-log slopes of the gap (theory: 4 in α, 2 in L; L(L−1) gives > 2 at "
          "small L)")
    print(sl.to_string(index=False, float_format=f))
    print(f"\nneural-tangents vs recursion, relative gap difference: {checks}")
    print("\n== finite nets, binned by q = n·outputs/params (means over seq/par pairs; "
          "par_val_better = fraction of pairs where parallel has the lower validation loss; "
          "kernel_val = the same GD at infinite width; ntk_gap = median relative NTK gap of "
          "the bin's (L, α))")
    print(table.to_string(index=False, float_format=f))
    div = int(runs.diverged.astype(bool).sum())
    print(f"\nruns: {len(runs)} ({div} diverged, left out of the table)")
    wall = time.perf_counter() - t0
    write_json({"config": config, "wall_seconds_this_run": wall, "slopes": sl.to_dict(
        "records"), "nt_check": checks, "binned": table.to_dict("records"),
        "n_runs": len(runs), "n_diverged": div}, out / "summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
