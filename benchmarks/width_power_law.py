"""Power law in width for a generalized LeNet (seeds/000), against its infinite-width kernel.

For each data set (sklearn digits 8×8; a Fashion-MNIST subset downsampled to 14×14) and each
LeNet family (ratio r = d2/d1: r* from the conservation law, and r*/2), train the centred
network at widths d1 from 2 to 32 (digits) or 16 (Fashion-MNIST) with two seeds, all with
the same fixed-budget full-batch heavy-ball GD on centred one-hot targets (NTK
parameterisation, one learning rate η = 0.5·2n/λ_max(Θ) for all widths), then

- fit A·d1^{−ρ} and ε∞ + A·d1^{−ρ} to the test error (classification and MSE), with 95%
  bootstrap intervals, and compare the models (nested F-test);
- compare ε∞ with the infinite-width limit of the *same* training protocol (linearised GD
  on the analytic NTK, same η and steps) and with ridgeless NTK / NNGP regression;
- compare the error reached per forward-pass FLOP by the two families.

Usage:
    python benchmarks/width_power_law.py [--quick | --tiny] [--out DIR] [--fresh]

Writes sweep.csv (one row per width × seed), kernel.csv, fits.csv, flops.csv, config.json,
summary.json, width_power_law.png and error_vs_flops.png to DIR (default
results/width_power_law/). Every unit of work (one data set's kernel side, one training run
of a family × width × seed) is committed whole to DIR/runs.sqlite under the run's settings;
a rerun with the same settings resumes with the same numbers (--fresh: start over).
"""

from __future__ import annotations

import sys
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

import infwidth as iw
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json, write_png
from infwidth.io.runstore import RunStore
from infwidth.io.scripts import progress, unit
from infwidth.studies.width_power_law.gd import kernel_gd_predict, kernel_regression
from infwidth.studies.width_power_law.lenet import (
    LeNet,
    conservation_law,
    conservation_ratio,
    lenet_kernels,
)
from infwidth.studies.width_power_law.scaling import compare_power_laws, width_sweep

METRICS = ("test_error", "test_mse")


# ------------------------------------------------------------------------------ settings
def settings(size: str) -> dict:
    """Data sizes, widths d1, seeds, families (ratios r = d2/d1 as multiples of the
    conservation-law r*) and the GD budget of a run size (tiny / quick / full)."""
    if size == "tiny":  # smoke-test size (seconds): the resume tests; one family
        return {"data": {"digits": {"n_train": 48, "n_test": 48, "widths": [2, 3, 4, 6]}},
                "ratios": [1.0], "seeds": [0], "steps": 20, "momentum": 0.9, "n_boot": 50}
    if size == "quick":
        return {"data": {"digits": {"n_train": 200, "n_test": 200,
                                    "widths": [2, 3, 4, 6, 8, 12]}},
                "ratios": [1.0, 0.5], "seeds": [0], "steps": 150, "momentum": 0.9,
                "n_boot": 200}
    return {"data": {"digits": {"n_train": 400, "n_test": 400,
                                "widths": [2, 3, 4, 6, 8, 12, 16, 24, 32]},
                     "fashion14": {"n_train": 300, "n_test": 300,
                                   "widths": [2, 3, 4, 6, 8, 12, 16]}},
            # 600 steps: the infinite-width GD of this η reaches a train loss of 1e-3 × its
            # initial value in 490 (digits) and 470 (fashion14) steps; 200 left it at 0.013
            "ratios": [1.0, 0.5], "seeds": [0, 1], "steps": 600, "momentum": 0.9,
            "n_boot": 1000}


# ------------------------------------------------------------------------------ data
def downsample(ds: iw.data.Dataset, factor: int) -> iw.data.Dataset:
    """Average-pool square images by ``factor`` and put each row back on the sphere
    ‖x‖² = dim (the loaders' normalisation)."""
    h, w, c = ds.image_shape
    hs, ws = h // factor, w // factor

    def pool(x):
        x = x.reshape(-1, hs, factor, ws, factor, c).mean(axis=(2, 4)).reshape(len(x), -1)
        return x / np.linalg.norm(x, axis=1, keepdims=True) * np.sqrt(x.shape[1])

    return iw.data.Dataset(pool(ds.x_train), ds.y_train, pool(ds.x_test), ds.y_test,
                      (hs, ws, c), ds.n_classes, ds.name + f"-{hs}x{ws}")


def datasets(s: dict) -> dict:
    """name -> (dataset, LeNet template, widths d1). The ratio is set per family."""
    out = {}
    for name, d in s["data"].items():
        if name == "digits":
            out[name] = (iw.load_digits(n_train=d["n_train"], n_test=d["n_test"], seed=0),
                         LeNet(filter_size=3, padding="same"), d["widths"])
        else:
            fm = iw.load_fashion_mnist(n_train=d["n_train"], n_test=d["n_test"], seed=0)
            out[name] = (downsample(fm, 2), LeNet(filter_size=3, padding="valid"),
                         d["widths"])
    return out


# ------------------------------------------------------------------------------ kernel side
def kernel_side(store: RunStore, name: str, ds: iw.data.Dataset, template: LeNet, steps: int,
                momentum: float) -> dict:
    """The infinite-width side of one data set (NTK/NNGP of the LeNet template, the GD
    learning rate, the kernel predictors' scores): one unit."""
    def compute() -> list[dict]:
        t0 = time.perf_counter()
        tr = lenet_kernels(template, ds.x_train, progress=True)
        te = lenet_kernels(template, ds.x_test, ds.x_train, progress=True)
        seconds = time.perf_counter() - t0
        y = ds.one_hot(ds.y_train)
        yt = ds.one_hot(ds.y_test)
        n = len(y)
        lr = 0.5 * 2 * n / np.linalg.eigvalsh(tr["ntk"])[-1]

        def scores(pred):
            return (float(np.mean(pred.argmax(1) != ds.y_test)),
                    float(np.mean((pred - yt) ** 2)))

        gd, gd_train = kernel_gd_predict(tr["ntk"], te["ntk"], y, steps=steps,
                                         learning_rate=lr, momentum=momentum)
        # the infinite-width net's own convergence: final / initial train loss (f_0 = 0)
        gd_ratio = float(np.sum((gd_train - y) ** 2) / np.sum(y ** 2))
        rows = {"ntk_gd": scores(gd),
                "ntk_ridgeless": scores(kernel_regression(tr["ntk"], te["ntk"], y)),
                "nngp_ridgeless": scores(kernel_regression(tr["nngp"], te["nngp"], y))}
        return [{"learning_rate": float(lr), "seconds": seconds, "gd_loss_ratio": gd_ratio,
                 "table": [{"dataset": name, "predictor": p, "test_error": v[0],
                            "test_mse": v[1]} for p, v in rows.items()]}]

    rec = store.compute({"part": "kernels", "dataset": name}, compute)[0]
    return {"learning_rate": rec["learning_rate"], "seconds": rec["seconds"],
            "gd_loss_ratio": rec.get("gd_loss_ratio", float("nan")),
            "table": pd.DataFrame(rec["table"])}


# ------------------------------------------------------------------------------ fits
def fit_table(sweep: pd.DataFrame, kernels: pd.DataFrame, n_boot: int) -> pd.DataFrame:
    rows = []
    for (data, fam), g in sweep.groupby(["dataset", "family"], sort=False):
        g = g[~g.diverged.astype(bool)]
        for metric in METRICS:
            ok = g[g[metric] > 0]
            if ok.width.nunique() < 4:
                continue
            power, offset, cmp = compare_power_laws(ok.width, ok[metric], n_boot=n_boot,
                                                    seed=0)
            kern = kernels[kernels.dataset == data].set_index("predictor")[metric]
            lo, hi = offset.ci["eps_inf"]
            rows.append({
                "dataset": data, "family": fam, "metric": metric, "n_obs": offset.n_obs,
                "dropped_zero": int(len(g) - len(ok)),
                "rho_power": power.rho, "rho_power_lo": power.ci["rho"][0],
                "rho_power_hi": power.ci["rho"][1], "A_power": power.A,
                "rho_offset": offset.rho, "rho_offset_lo": offset.ci["rho"][0],
                "rho_offset_hi": offset.ci["rho"][1], "A_offset": offset.A,
                "eps_inf": offset.eps_inf, "eps_inf_lo": lo, "eps_inf_hi": hi,
                "F": cmp["F"], "p_value": cmp["p_value"], "delta_aicc": cmp["delta_aicc"],
                "preferred": cmp["preferred"],
                "kernel_gd": kern["ntk_gd"], "ntk_ridgeless": kern["ntk_ridgeless"],
                "nngp_ridgeless": kern["nngp_ridgeless"],
                "kernel_gd_in_ci": bool(lo <= kern["ntk_gd"] <= hi)})
    return pd.DataFrame(rows)


def flops_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """On a common FLOPs grid inside both families' ranges, the log-log interpolated mean
    test error of each family (one row per dataset × FLOPs × family)."""
    rows = []
    for data, g in sweep.groupby("dataset", sort=False):
        means = g.groupby(["family", "width"], as_index=False).agg(
            flops=("flops", "first"), params=("params", "first"),
            test_error=("test_error", "mean"), test_mse=("test_mse", "mean"))
        fams = list(means.family.unique())
        lo = max(means[means.family == f].flops.min() for f in fams)
        hi = min(means[means.family == f].flops.max() for f in fams)
        if lo >= hi:
            continue
        for fl in np.geomspace(lo, hi, 5):
            for f in fams:
                m = means[means.family == f].sort_values("flops")
                row = {"dataset": data, "flops": int(round(fl)), "family": f}
                for metric in METRICS:
                    row[metric] = float(np.exp(np.interp(
                        np.log(fl), np.log(m.flops), np.log(m[metric].clip(lower=1e-12)))))
                rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ plots
def plot_width(sweep, fits, kernels, path):
    data = list(sweep.dataset.unique())
    fig, axes = plt.subplots(len(METRICS), len(data), figsize=(5.2 * len(data), 7.5),
                             squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, d in enumerate(data):
        for i, metric in enumerate(METRICS):
            ax = axes[i, j]
            g = sweep[(sweep.dataset == d) & ~sweep.diverged.astype(bool)]
            for c, fam in zip(colors, g.family.unique()):
                h = g[g.family == fam]
                conv = h.converged.astype(bool)  # hollow: train loss above 1e-3 × initial
                ax.scatter(h.width[conv], h[metric][conv], s=12, color=c, alpha=0.5)
                ax.scatter(h.width[~conv], h[metric][~conv], s=16, facecolors="none",
                           edgecolors=c)
                m = h.groupby("width")[metric].mean()
                all_conv = h.groupby("width").converged.all().reindex(m.index).astype(bool)
                if all_conv.any():
                    ax.plot(m.index[all_conv], m.values[all_conv], "o", color=c, label=fam)
                if not all_conv.all():
                    ax.plot(m.index[~all_conv], m.values[~all_conv], "o", mfc="none", mew=1.5,
                            color=c, label=f"{fam} (not converged)")
                f = fits[(fits.dataset == d) & (fits.family == fam) & (fits.metric == metric)]
                if len(f):
                    f = f.iloc[0]
                    w = np.geomspace(h.width.min(), h.width.max() * 4, 100)
                    ax.plot(w, f.eps_inf + f.A_offset * w ** -f.rho_offset, "-", color=c,
                            lw=1.2, label=f"ε∞+A·d1^-ρ, ρ={f.rho_offset:.2f}")
                    ax.plot(w, f.A_power * w ** -f.rho_power, ":", color=c, lw=1.2,
                            label=f"A·d1^-ρ, ρ={f.rho_power:.2f}")
            k = kernels[kernels.dataset == d].set_index("predictor")[metric]
            ax.axhline(k["ntk_gd"], color="k", ls="--", lw=1, label="NTK, same GD (∞ width)")
            ax.axhline(k["ntk_ridgeless"], color="gray", ls="-.", lw=1,
                       label="NTK ridgeless")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ticks = [w for w in (2, 4, 8, 16, 32, 64, 128) if w <= 4 * h.width.max()]
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("d1 (filters in conv 1)")
            ax.set_ylabel("test classification error" if metric == "test_error"
                          else "test MSE per output")
            ax.set_title(f"{d}: {metric}")
            ax.legend(fontsize=6.5, loc="upper right")
    fig.suptitle("Generalized LeNet (avg-pool, NTK param.): test error vs width\n"
                 "seed means (large), seeds (small); hollow: train loss not below 1e-3 × "
                 "initial (not converged)")
    fig.tight_layout()
    write_png(fig, path, dpi=110, tight=False)


def plot_flops(sweep, kernels, path):
    data = list(sweep.dataset.unique())
    fig, axes = plt.subplots(1, len(data), figsize=(5.2 * len(data), 4), squeeze=False)
    for j, d in enumerate(data):
        ax = axes[0, j]
        g = sweep[(sweep.dataset == d) & ~sweep.diverged.astype(bool)]
        for c, fam in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], g.family.unique()):
            m = g[g.family == fam].groupby("width").agg(
                flops=("flops", "first"), err=("test_error", "mean"),
                conv=("converged", lambda v: bool(v.astype(bool).all())))
            ax.plot(m.flops, m.err, "-", color=c)
            if m.conv.any():
                ax.plot(m.flops[m.conv], m.err[m.conv], "o", color=c, label=fam)
            if not m.conv.all():
                ax.plot(m.flops[~m.conv], m.err[~m.conv], "o", mfc="none", mew=1.5, color=c,
                        label=f"{fam} (not converged)")
        k = kernels[kernels.dataset == d].set_index("predictor")["test_error"]
        ax.axhline(k["ntk_gd"], color="k", ls="--", lw=1, label="NTK, same GD (∞ width)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("FLOPs per forward pass (2 × multiply-adds)")
        ax.set_ylabel("test classification error (mean over seeds)")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{d}: error vs compute")
        ax.legend(fontsize=8)
    fig.suptitle("hollow: train loss not below 1e-3 × initial in the step budget (not "
                 "converged)", fontsize=9)
    fig.tight_layout()
    write_png(fig, path, dpi=110, tight=False)


# ------------------------------------------------------------------------------ main
SCRIPT = Script("width_power_law", __doc__, out="results/width_power_law", sizes={
    "quick": "digits only, small sizes (≤ 2 min)", "tiny": "smoke-test sizes (seconds)"},
    options=(Option("--n-boot", type=int, default=None, help="bootstrap resamples"),))


@SCRIPT.main
def main(run) -> int:
    args, out = run.args, run.out
    if args.n_boot is not None and args.n_boot < 1:
        run.error(f"--n-boot must be positive, got {args.n_boot}")
    quick = args.quick
    s = settings("tiny" if args.tiny else "quick" if quick else "full")
    seeds, steps, momentum = s["seeds"], s["steps"], s["momentum"]
    n_boot = args.n_boot or s["n_boot"]
    t_start = time.perf_counter()

    config = {"quick": quick, "seeds": seeds, "steps": steps,
              "momentum": momentum, "n_boot": n_boot}
    if args.tiny:
        config["tiny"] = True
    write_json(config, out / "config.json")
    # the units depend on everything but the bootstrap (fits are redone on every run)
    store = run.store(**{k: v for k, v in s.items() if k != "n_boot"})

    sweep_parts, kernel_tables, n_new, n_units = [], [], 0, 0
    summary = {"config": config, "datasets": {}}
    for name, (ds, template, widths) in datasets(s).items():
        side = ds.image_shape[0]
        r_star = conservation_ratio(side, template.filter_size, template.padding)
        n_new += {"part": "kernels", "dataset": name} not in store
        n_units += 1
        ks = kernel_side(store, name, ds, template, steps, momentum)
        kernel_tables.append(ks["table"])
        summary["datasets"][name] = {"n_train": len(ds.y_train), "n_test": len(ds.y_test),
                                     "widths": widths,
                                     "image": list(ds.image_shape), "r_star": r_star,
                                     "learning_rate": ks["learning_rate"],
                                     "kernel_gd_loss_ratio": ks["gd_loss_ratio"],
                                     "kernel_seconds": ks["seconds"]}
        print(f"\n== {name}: {len(ds.y_train)} train / {len(ds.y_test)} test, "
              f"{side}×{side} images, conservation r* = {r_star:g}, η = "
              f"{ks['learning_rate']:.3g}, {steps} GD steps (momentum {momentum}); the "
              f"infinite-width net ends at {ks['gd_loss_ratio']:.2g} × its initial train loss")
        print(conservation_law(LeNet(width=6, ratio=r_star, filter_size=template.filter_size,
                                     padding=template.padding), side * side)
              .to_string(index=False))
        for r in (r_star * f for f in s["ratios"]):
            fam = LeNet(width=1, ratio=r, filter_size=template.filter_size,
                        padding=template.padding)
            label = f"r={r:g}" + (" (r*)" if r == r_star else "")

            def train(w: int, seed: int, fam=fam, label=label, ds=ds, name=name,
                      lr=ks["learning_rate"]) -> pd.DataFrame:
                """One training run (one family, width and seed): one unit."""
                row = width_sweep(fam, ds.x_train, ds.y_train, ds.x_test, ds.y_test, [w],
                                  [seed], steps=steps, learning_rate=lr, momentum=momentum,
                                  name=label, progress=False)
                return row.assign(dataset=name)[["dataset", *row.columns]]

            todo = [(w, seed) for w in widths for seed in seeds]
            keys = [{"part": "train", "dataset": name, "family": label, "width": w,
                     "seed": seed} for w, seed in todo]
            n_new += sum(k not in store for k in keys)
            n_units += len(keys)
            sweep_parts += [unit(store, k, lambda w=w, seed=seed: train(w, seed))
                            for k, (w, seed) in zip(keys, progress(todo, f"{label} widths"))]
    sweep = pd.concat(sweep_parts, ignore_index=True)
    write_csv(sweep, out / "sweep.csv")

    kernels = pd.concat(kernel_tables, ignore_index=True)
    write_csv(kernels, out / "kernel.csv")
    fits = fit_table(sweep, kernels, n_boot)
    write_csv(fits, out / "fits.csv")
    flops = flops_table(sweep)
    write_csv(flops, out / "flops.csv")
    plot_width(sweep, fits, kernels, out / "width_power_law.png")
    plot_flops(sweep, kernels, out / "error_vs_flops.png")

    pd.set_option("display.width", 200)
    print("\n== infinite-width predictors (same data)")
    print(kernels.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\n== power-law fits (95% bootstrap intervals; F-test: offset vs pure power law)")
    show = fits.assign(
        rho_power=[f"{a:.3f} [{b:.3f}, {c:.3f}]" for a, b, c in
                   zip(fits.rho_power, fits.rho_power_lo, fits.rho_power_hi)],
        rho_offset=[f"{a:.3f} [{b:.3f}, {c:.3f}]" for a, b, c in
                    zip(fits.rho_offset, fits.rho_offset_lo, fits.rho_offset_hi)],
        eps_inf=[f"{a:.4f} [{b:.4f}, {c:.4f}]" for a, b, c in
                 zip(fits.eps_inf, fits.eps_inf_lo, fits.eps_inf_hi)])
    print(show[["dataset", "family", "metric", "rho_power", "rho_offset", "eps_inf",
                "kernel_gd", "ntk_ridgeless", "kernel_gd_in_ci", "p_value", "preferred"]]
          .to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\n== mean test error at matched FLOPs per forward pass (log-log interpolation "
          "between widths)")
    for data, g in flops.groupby("dataset", sort=False):
        print(g.pivot_table(index="flops", columns="family", values=["test_error", "test_mse"])
              .rename_axis(data).to_string(float_format=lambda v: f"{v:.4g}"))
    conv = sweep.converged.astype(bool).mean()
    div = int(sweep.diverged.astype(bool).sum())
    print(f"\nruns: {len(sweep)}, train loss ≤ 1e-3 × initial in {conv:.0%}, diverged {div}")
    bad = sweep[~sweep.converged.astype(bool)]
    not_converged = bad[["dataset", "family", "width", "seed", "loss_ratio"]].to_dict("records")
    if len(bad):
        print("NOT CONVERGED (fixed step budget; hollow in the plot): "
              + "; ".join(f"{r['dataset']} {r['family']} d1={r['width']} seed {r['seed']} "
                          f"(loss ratio {r['loss_ratio']:.2g})" for r in not_converged)
              + ". Their errors are compared with ntk_gd (the infinite net after the same "
                "steps) only; no statement against ridgeless regression is drawn from them.")
    print(f"units: {n_new} computed now, {n_units - n_new} resumed from {out}/runs.sqlite")
    wall = time.perf_counter() - t_start
    summary.update({"wall_seconds_this_run": wall, "n_runs": len(sweep),
                    "fraction_converged": float(conv), "n_diverged": div,
                    "protocol": "kernel-fixed-steps", "not_converged": not_converged,
                    "fits": fits.to_dict("records"), "kernels": kernels.to_dict("records")})
    write_json(summary, out / "summary.json")
    print(f"wall time of this run: {wall:.0f} s; files in {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
