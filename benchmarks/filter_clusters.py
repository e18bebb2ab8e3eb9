"""Per-filter label clusters, SNR and AFCC along the layers of a small CNN (seeds/001).

Measures, on Fashion-MNIST (default) or digits (``--quick``), the claims of Meir et al.
(Sci. Rep. 2024) as reconstructed in docs/theory.md §5:

1. per conv layer, for the trained CNN and its random initialisation (control): accuracy of a
   bias-free linear readout on the layer's flattened features, mean cluster size, clusters per
   filter, noise per filter and SNR (mean signal / mean noise);
2. the maximal error (max over labels a of P(ŷ ≠ a | y = a), the CNN's own predictions on the
   test set) against the number of labels k = 3…10, training the same architecture from scratch
   on nested label subsets (a seeded permutation of the labels, first k), keeping every
   training example of those labels; plus last-layer cluster statistics per k;
3. AFCC: the readout retrained with only filter→cluster-label weights, beside a random mask
   of the same density.

Outputs in --out (default results/filter_clusters/): layers.csv, subsets.csv, history.csv,
setup.json, summary.json, filter_clusters.png. Every unit of work (the main training with its
parameters, one layer of one network, one label subset, the readout on pixels) is committed
whole to runs.sqlite; a rerun with the same arguments resumes with the same numbers (--fresh:
start over).

    python benchmarks/filter_clusters.py            # Fashion-MNIST, ~6-8 min on 2 cores
    python benchmarks/filter_clusters.py --quick    # digits, < 2 min
    python benchmarks/filter_clusters.py --tiny     # smoke-test size (seconds)
"""

from __future__ import annotations

import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

import infwidth as iw
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json, write_png
from infwidth.io.runstore import RunStore
from infwidth.studies.filter_clusters import filters as F

# --------------------------------------------------------------------------- io helpers
save_csv, save_json = write_csv, write_json


# --------------------------------------------------------------------------- setup
SCRIPT = Script("filter_clusters", __doc__, out="results/filter_clusters", sizes={
    "quick": "digits 8×8, 3 conv layers, < 2 min", "tiny": "smoke-test sizes (seconds)"},
    options=(Option("--n-train", type=int, default=None),
             Option("--n-test", type=int, default=None),
             Option("--epochs", type=int, default=None),
             Option("--threshold", type=float, default=0.3),
             Option("--seed", type=int, default=0),
             Option("--no-subsets", action="store_true", help="skip the label-subset sweep")))


def parse(run):
    args = run.args
    if not 0 < args.threshold < 1:
        run.error(f"--threshold must lie in (0, 1), got {args.threshold}")
    if args.seed < 0:
        run.error(f"--seed must be >= 0, got {args.seed}")
    if args.tiny:  # smoke-test size: the resume tests; two label subsets (3 and all)
        setup = dict(dataset="digits", n_train=args.n_train or 256, n_test=args.n_test or 128,
                     epochs=args.epochs or 2, batch_size=64, learning_rate=3e-3,
                     blocks=[[4], [4], [8]], image_shape=[8, 8, 1], label_counts=[3, 10])
    elif args.quick:
        setup = dict(dataset="digits", n_train=args.n_train or 1348, n_test=args.n_test or 449,
                     epochs=args.epochs or 20, batch_size=64, learning_rate=3e-3,
                     blocks=[[8], [16], [32]], image_shape=[8, 8, 1])
    else:
        setup = dict(dataset="fashion-mnist", n_train=args.n_train or 6000,
                     n_test=args.n_test or 2000, epochs=args.epochs or 10, batch_size=128,
                     learning_rate=3e-3, blocks=[[8, 8], [16, 16], [32, 32]],
                     image_shape=[28, 28, 1])
    for k in ("n_train", "n_test", "epochs"):
        if setup[k] <= 0:
            run.error(f"--{k.replace('_', '-')} must be positive, got {setup[k]}")
    setup.update(threshold=args.threshold, seed=args.seed, subsets=not args.no_subsets,
                 readout=dict(method="softmax", epochs=20, batch_size=256, learning_rate=1e-2,
                              l2=1e-4))
    return args, setup


def load_data(setup):
    loader = iw.load_digits if setup["dataset"] == "digits" else iw.load_fashion_mnist
    return loader(n_train=setup["n_train"], n_test=setup["n_test"], seed=setup["seed"])


def restrict(ds, labels):
    """Examples whose label is in ``labels`` (sorted), relabelled 0…k−1."""
    labels = np.sort(labels)
    remap = np.full(ds.n_classes, -1)
    remap[labels] = np.arange(len(labels))
    tr, te = np.isin(ds.y_train, labels), np.isin(ds.y_test, labels)
    return ds.x_train[tr], remap[ds.y_train[tr]], ds.x_test[te], remap[ds.y_test[te]]


def label_counts(setup: dict, n_classes: int) -> list[int]:
    """The numbers of labels k of the subset sweep: 3 … all (``label_counts`` if set)."""
    return list(setup.get("label_counts") or range(3, n_classes + 1))


# --------------------------------------------------------------------------- stages
def train_main(setup, ds, store: RunStore, cfg):
    """The main training (its history and parameters): one unit."""
    import jax
    import jax.numpy as jnp

    def compute() -> list[dict]:
        net = F.train_cnn(ds.x_train, ds.y_train, cfg, epochs=setup["epochs"],
                          batch_size=setup["batch_size"],
                          learning_rate=setup["learning_rate"], seed=setup["seed"])
        return [{"history": net.history.to_dict("records"),
                 "params": jax.tree.map(np.asarray, net.params)}]

    rec = store.compute({"part": "train"}, compute)[0]
    return F.TrainedCNN(cfg, jax.tree.map(jnp.asarray, rec["params"]),
                        pd.DataFrame(rec["history"]), True)


def layer_stage(setup, ds, store: RunStore, cfg, nets, bar):
    """One unit per network × conv layer."""
    rows = []
    n_te = len(ds.y_test)
    for name, net in nets.items():
        for layer in range(1, cfg.n_layers + 1):
            bar.set_postfix_str(f"{name} layer {layer}")

            def compute(net=net, layer=layer) -> list[dict]:
                t0 = time.perf_counter()
                df = F.layer_analysis(net, ds.x_train, ds.y_train, ds.x_test, ds.y_test,
                                      layers=[layer], threshold=setup["threshold"],
                                      seed=setup["seed"], readout=setup["readout"])
                row = df.iloc[0].to_dict()
                row["accuracy_se"] = float(np.sqrt(row["accuracy"] * (1 - row["accuracy"]) / n_te))
                row["seconds"] = time.perf_counter() - t0
                return [row]

            rows += store.compute({"part": "layer", "network": name, "layer": layer}, compute)
            bar.update()
    return pd.DataFrame(rows)


def subset_stage(setup, ds, store: RunStore, cfg, main_net, bar):
    """One unit per label subset (k labels, trained from scratch)."""
    rows = []
    perm = np.random.default_rng([setup["seed"], 7]).permutation(ds.n_classes)
    for k in label_counts(setup, ds.n_classes):
        bar.set_postfix_str(f"{k} labels")

        def compute(k=k) -> list[dict]:
            t0 = time.perf_counter()
            labels = np.sort(perm[:k])
            xtr, ytr, xte, yte = restrict(ds, labels)
            if k == ds.n_classes:   # identical data and training: reuse the main network
                net = main_net
            else:
                sub_cfg = F.VGGConfig(cfg.blocks, cfg.image_shape, k)
                net = F.train_cnn(xtr, ytr, sub_cfg, epochs=setup["epochs"],
                                  batch_size=setup["batch_size"],
                                  learning_rate=setup["learning_rate"], seed=setup["seed"])
            pred = net.predict(xte)
            last = F.layer_analysis(net, xtr, ytr, xte, yte, layers=[cfg.n_layers],
                                    threshold=setup["threshold"], run_afcc=False,
                                    seed=setup["seed"], readout=setup["readout"]).iloc[0]
            return [{"n_labels": k, "labels": " ".join(map(str, labels)),
                     "n_train": len(ytr), "n_test": len(yte),
                     "error": float(np.mean(pred != yte)),
                     "max_label_error": F.max_label_error(yte, pred),
                     "last_layer_accuracy": last["accuracy"],
                     "mean_cluster_size": last["mean_cluster_size"],
                     "clusters_per_filter": last["clusters_per_filter"],
                     "noise_per_filter": last["noise_per_filter"], "snr": last["snr"],
                     "seconds": time.perf_counter() - t0}]

        rows += store.compute({"part": "subset", "n_labels": k}, compute)
        bar.update()
    return pd.DataFrame(rows)


def pixel_readout(setup, ds, store: RunStore, cfg) -> float:
    """Accuracy of the same linear readout on the pixels: one unit."""
    def compute() -> list[dict]:
        shape = (-1,) + cfg.image_shape
        w = F.fit_readout(ds.x_train.reshape(shape), ds.y_train, ds.n_classes,
                          seed=setup["seed"], **setup["readout"])
        return [{"accuracy": float(np.mean(F.readout_logits(ds.x_test.reshape(shape), w)
                                           .argmax(1) == ds.y_test))}]

    return store.compute({"part": "pixel_readout"}, compute)[0]["accuracy"]


# --------------------------------------------------------------------------- summary
def _trend(x, y) -> dict:
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(y)
    if ok.sum() < 3:
        return {"spearman": float("nan"), "p": float("nan"), "first": float("nan"),
                "last": float("nan")}
    rho, p = stats.spearmanr(x[ok], y[ok])
    return {"spearman": float(rho), "p": float(p), "first": float(y[ok][0]),
            "last": float(y[ok][-1])}


def summarize(layers: pd.DataFrame, subsets: pd.DataFrame | None, pixel_acc: float) -> dict:
    s: dict = {"pixel_readout_accuracy": pixel_acc,
               "mean_accuracy_se": float(layers.accuracy_se.mean())}
    for net in ("trained", "random"):
        d = layers[layers.network == net].sort_values("layer")
        s[net] = {c: _trend(d.layer, d[c]) for c in
                  ("accuracy", "snr", "noise_per_filter", "mean_cluster_size",
                   "clusters_per_filter")}
        s[net]["afcc_minus_full_accuracy"] = float((d.afcc_accuracy - d.accuracy).mean())
        s[net]["random_mask_minus_full_accuracy"] = float(
            (d.random_mask_accuracy - d.accuracy).mean())
        s[net]["afcc_minus_random_mask_accuracy"] = float(
            (d.afcc_accuracy - d.random_mask_accuracy).mean())
        s[net]["mean_afcc_kept"] = float(d.afcc_kept.mean())
    if subsets is not None and len(subsets) >= 3:
        fit = stats.linregress(subsets.n_labels, subsets.max_label_error)
        s["max_error_vs_labels"] = {"slope": float(fit.slope), "intercept": float(fit.intercept),
                                    "r2": float(fit.rvalue ** 2), "p": float(fit.pvalue)}
        s["last_layer_vs_labels"] = {c: _trend(subsets.n_labels, subsets[c]) for c in
                                     ("mean_cluster_size", "clusters_per_filter",
                                      "noise_per_filter", "snr")}
    return s


def verdicts(s: dict) -> list[str]:
    t = s["trained"]
    out = []

    def say(claim, holds, detail):
        out.append(f"[{'holds' if holds else 'does NOT hold'}] {claim}: {detail}")

    a = t["accuracy"]
    out.append("Verdict rule for trends: Spearman ρ over layers beyond ±0.5 and last vs first "
               "in the same direction; for linearity: positive slope and R² > 0.7.")
    say("accuracy rises with layer", a["spearman"] > 0.5 and a["last"] > a["first"],
        f"Spearman {a['spearman']:+.2f}, layer 1 {a['first']:.3f} -> last {a['last']:.3f} "
        f"(pixel readout {s['pixel_readout_accuracy']:.3f})")
    n = t["noise_per_filter"]
    say("noise per filter falls with layer", n["spearman"] < -0.5 and n["last"] < n["first"],
        f"Spearman {n['spearman']:+.2f}, {n['first']:.2f} -> {n['last']:.2f}")
    r = t["snr"]
    say("SNR rises with layer", r["spearman"] > 0.5 and r["last"] > r["first"],
        f"Spearman {r['spearman']:+.2f}, {r['first']:.3f} -> {r['last']:.3f}")
    rr = s["random"]["snr"]
    out.append(f"  random-init control: SNR Spearman {rr['spearman']:+.2f} "
               f"({rr['first']:.3f} -> {rr['last']:.3f}), accuracy Spearman "
               f"{s['random']['accuracy']['spearman']:+.2f}")
    if "max_error_vs_labels" in s:
        m = s["max_error_vs_labels"]
        say("max error ~ linear in #labels", m["slope"] > 0 and m["r2"] > 0.7,
            f"slope {m['slope']:+.4f}/label, intercept {m['intercept']:.3f}, R² {m['r2']:.2f}")
        c = s["last_layer_vs_labels"]
        out.append("  last-layer cluster size / clusters per filter vs #labels: Spearman "
                   f"{c['mean_cluster_size']['spearman']:+.2f} / "
                   f"{c['clusters_per_filter']['spearman']:+.2f}")
    d = t["afcc_minus_full_accuracy"]
    say("AFCC keeps accuracy (mean over layers within 0.01 of the full readout)", d > -0.01,
        f"mean AFCC − full accuracy {d:+.4f} with {t['mean_afcc_kept']:.2f} of weights kept")
    se = s["mean_accuracy_se"]
    dr = t["afcc_minus_random_mask_accuracy"]
    say("AFCC beats a random mask of equal density (by > 2 SE of one accuracy)", dr > 2 * se,
        f"mean AFCC − random-mask accuracy {dr:+.4f} (SE of one accuracy ≈ {se:.4f})")
    return out


# --------------------------------------------------------------------------- plot
def plot(layers: pd.DataFrame, subsets: pd.DataFrame | None, pixel_acc, title, path: Path):
    fig, ax = plt.subplots(2, 4, figsize=(19, 8.5))
    layers = layers.sort_values(["network", "layer"], ascending=[False, True])
    style = {"trained": dict(color="C0", marker="o"), "random": dict(color="C3", marker="s",
                                                                    ls="--")}
    panels = [("accuracy", "readout accuracy"), ("noise_per_filter", "noise per filter"),
              ("snr", "SNR = mean signal / mean noise"),
              ("clusters_per_filter", "clusters per filter"),
              ("mean_cluster_size", "mean cluster size")]
    for a, (col, lab) in zip(ax.flat, panels):
        for net, d in layers.groupby("network", sort=False):
            a.plot(d.layer, d[col], label=f"{net} CNN", **style[net])
            if col == "accuracy":
                a.fill_between(d.layer, d[col] - 2 * d.accuracy_se, d[col] + 2 * d.accuracy_se,
                               color=style[net]["color"], alpha=0.15)
        if col == "accuracy":
            a.axhline(pixel_acc, color="gray", ls=":", label="readout on pixels")
        a.set_xlabel("conv layer L")
        a.set_xticks(sorted(layers.layer.unique()))
        a.set_ylabel(lab)
        a.set_title(f"{lab} vs layer")
        a.legend()
    a = ax.flat[5]
    for net, d in layers.groupby("network", sort=False):
        a.plot(d.layer, d.afcc_accuracy - d.accuracy, label=f"{net}: AFCC", **style[net])
        a.plot(d.layer, d.random_mask_accuracy - d.accuracy, label=f"{net}: random mask",
               color=style[net]["color"], marker="x", ls=":")
    a.axhline(0, color="gray", lw=0.8)
    a.set_xlabel("conv layer L")
    a.set_xticks(sorted(layers.layer.unique()))
    a.set_ylabel("accuracy − full readout accuracy")
    a.set_title("AFCC vs random mask of equal density")
    a.legend(fontsize=8)
    a = ax.flat[6]
    if subsets is not None and len(subsets):
        a.plot(subsets.n_labels, subsets.max_label_error, "o-", label="max label error")
        a.plot(subsets.n_labels, subsets.error, "s--", label="overall error")
        if len(subsets) >= 2:
            fit = stats.linregress(subsets.n_labels, subsets.max_label_error)
            k = np.array([subsets.n_labels.min(), subsets.n_labels.max()])
            a.plot(k, fit.intercept + fit.slope * k, "k:",
                   label=f"linear fit (R²={fit.rvalue ** 2:.2f})")
        a.legend()
    a.set_xlabel("number of labels k")
    a.set_ylabel("test error")
    a.set_title("max error vs number of labels")
    a = ax.flat[7]
    if subsets is not None and len(subsets):
        for col, m in (("mean_cluster_size", "o-"), ("clusters_per_filter", "s-"),
                       ("noise_per_filter", "^--"), ("snr", "d:")):
            a.plot(subsets.n_labels, subsets[col], m, label=col.replace("_", " "))
        a.set_yscale("log")
        a.legend(fontsize=8)
    a.set_xlabel("number of labels k")
    a.set_ylabel("value at the last conv layer (log scale)")
    a.set_title("last-layer cluster statistics vs number of labels")
    fig.suptitle(title)
    fig.tight_layout()

    write_png(fig, path, dpi=110, tight=False)


# --------------------------------------------------------------------------- main
@SCRIPT.main
def main(run) -> int:
    args, setup = parse(run)
    out = run.out
    save_json(setup, out / "setup.json")
    # every setting but the switch of the subset sweep changes the units' numbers
    store = run.store(**{k: v for k, v in setup.items() if k != "subsets"})
    t_start, cpu_start = time.perf_counter(), time.process_time()
    ds = load_data(setup)
    cfg = F.VGGConfig(tuple(map(tuple, setup["blocks"])), tuple(setup["image_shape"]),
                      ds.n_classes)
    n_sub = len(label_counts(setup, ds.n_classes)) if setup["subsets"] else 0
    with tqdm(total=1 + 2 * cfg.n_layers + n_sub, desc="filter clusters") as bar:
        bar.set_postfix_str("training")
        t0 = time.perf_counter()
        net = train_main(setup, ds, store, cfg)
        t_train = time.perf_counter() - t0
        bar.update()
        nets = {"trained": net, "random": F.random_cnn(cfg, setup["seed"])}
        layers = layer_stage(setup, ds, store, cfg, nets, bar)
        subsets = subset_stage(setup, ds, store, cfg, net, bar) if setup["subsets"] else None
    pixel_acc = pixel_readout(setup, ds, store, cfg)
    save_csv(net.history, out / "history.csv")
    save_csv(layers, out / "layers.csv")
    if subsets is not None:
        save_csv(subsets, out / "subsets.csv")
    net_acc = float(np.mean(net.predict(ds.x_test) == ds.y_test))
    summary = summarize(layers, subsets, pixel_acc)
    summary.update(cnn_test_accuracy=net_acc, setup=setup,
                   seconds_total_this_run=time.perf_counter() - t_start,
                   cpu_seconds_this_run=time.process_time() - cpu_start,
                   seconds_main_training_this_run=t_train)
    summary["verdicts"] = verdicts(summary)
    save_json(summary, out / "summary.json")
    title = (f"{setup['dataset']}: VGG-like CNN {setup['blocks']}, n_train={setup['n_train']}, "
             f"threshold={setup['threshold']}, CNN test acc {net_acc:.3f}")
    plot(layers, subsets, pixel_acc, title, out / "filter_clusters.png")

    pd.set_option("display.width", 200)
    cols = ["network", "layer", "n_filters", "n_features", "accuracy", "accuracy_se",
            "mean_cluster_size", "clusters_per_filter", "noise_per_filter", "snr",
            "afcc_accuracy", "afcc_kept", "random_mask_accuracy"]
    print(f"\n{title}\nCNN end-to-end test accuracy {net_acc:.4f}; linear readout on pixels "
          f"{pixel_acc:.4f}\n")
    print("Per layer (readout on flattened layer-L features, fields on the test set):")
    print(layers[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if subsets is not None:
        print("\nLabel subsets (nested, trained from scratch; last-layer cluster statistics):")
        print(subsets.drop(columns=["seconds"]).to_string(index=False,
                                                          float_format=lambda v: f"{v:.3f}"))
    print("\nClaims of the seed paper, measured here:")
    print("\n".join(summary["verdicts"]))
    print(f"\nwall time this run: {summary['seconds_total_this_run']:.0f} s (process CPU time "
          f"{summary['cpu_seconds_this_run']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
