"""Figure 7: real data: kernel regression with the MLP, S-CNN, D-CNN and ConvNet-GAP kernels
(NNGP and NTK) beside finite networks of the same topologies, against training-set size.

Data: scikit-learn digits (8×8), mnist1d (40-long, 1-D architectures) and Fashion-MNIST
(28×28), inputs centred and scaled to ‖x‖² = dim (``iw.load_*``). Images use the 2-D
architectures (``ndim=2``).

- Kernel regression: one seeded random order of the training set; the first N points for every
  N on the grid (nested subsets), centred one-hot targets, ridge δ = 1e-6·mean(diag K), test
  accuracy by argmax on a fixed test subset. Tree kernels (MLP, S-CNN, D-CNN) come from
  ``iw.kernels.tree_kernels`` (checked against ``iw.kernel``), the GAP kernel
  from ``iw.kernel`` (neural-tangents), whose cost is O(N²·P²) with P the number of pixels:
  its N grid stops earlier (the largest N reached is in the CSV and the title).
- Finite networks: ``arch.stax`` at a fixed width, trained by minibatch Adam on one-hot MSE
  (``iw.learning.train_classifier``), centred at initialisation, one seed.

    python paper_figures/fig7_real_data.py [--quick | --tiny] [--out DIR] [--fresh]

The GAP kernel is the expensive part (Fashion-MNIST, P = 784: ~12 pairs/s per kernel on 2 CPU
cores). On a machine with an accelerator, compute it further first and let the CPU run resume
from the rows it saved (a dataset's GAP kernel is skipped once saved rows reach its N):

    python paper_figures/fig7_real_data.py --gap-only --datasets fashion --gap-max 2048 \
        --gap-test 2000 --memory-budget 40GB          # on the GPU machine
    python paper_figures/fig7_real_data.py            # here, same --out folder

Every kernel row records the JAX backend that computed it (column ``device``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import linalg

import infwidth as iw
from infwidth.io import scripts as C

NAME = "fig7_real_data"
RIDGE_REL = 1e-6
LR = 3e-3


def architectures(dataset: str) -> dict[str, iw.Architecture]:
    if dataset == "mnist1d":  # 40 = 4·2·5
        return {"MLP": iw.MLP(depth=2), "S-CNN": iw.SCNN(patch_dim=4),
                "D-CNN": iw.DCNN(patch_dim=4, filter_sizes=(2, 5)),
                "ConvNet-GAP": iw.ConvNet(filter_size=3, depth=3, readout="gap")}
    if dataset == "digits":  # 8 = 2·2·2
        return {"MLP": iw.MLP(depth=2), "S-CNN": iw.SCNN(patch_dim=2, ndim=2),
                "D-CNN": iw.DCNN(patch_dim=2, filter_sizes=(2, 2), ndim=2),
                "ConvNet-GAP": iw.ConvNet(filter_size=3, depth=3, readout="gap", ndim=2)}
    # fashion: 28 = 4·7; GAP depth 2 (P = 784: every layer costs N²·P² per kernel)
    return {"MLP": iw.MLP(depth=2), "S-CNN": iw.SCNN(patch_dim=4, ndim=2),
            "D-CNN": iw.DCNN(patch_dim=4, filter_sizes=(7,), ndim=2),
            "ConvNet-GAP": iw.ConvNet(filter_size=3, depth=2, readout="gap", ndim=2)}


ARCH_TEXT = {
    "digits": "S-CNN 2×2 patches; D-CNN 2×2 patches→2×2→2×2 (tree to one node); "
              "GAP: 3 circular 3×3 convs",
    "mnist1d": "S-CNN patches of 4; D-CNN 4→2→5 (tree); GAP: 3 circular convs of 3",
    "fashion": "S-CNN 4×4 patches; D-CNN 4×4 patches→7×7 (tree); GAP: 2 circular 3×3 convs",
}
WIDTHS = {"MLP": 512, "S-CNN": 64, "D-CNN": 64, "ConvNet-GAP": 32}
ARCHS = tuple(WIDTHS)

# Per data set: largest N and test size for the tree kernels and for the GAP kernel, the
# finite-network sizes, and training steps (max(min_steps, epochs·N/128)).
SIZES = {
    "tiny": {  # smoke test: every code path once, a few seconds of compute
        "digits": dict(n_max=60, n_test=40, gap_max=8, gap_test=8, fin=(60,), epochs=1,
                       min_steps=5, fin_archs=("D-CNN",)),
        "mnist1d": dict(n_max=50, n_test=30, gap_max=0, gap_test=0, fin=(), epochs=1,
                        min_steps=5, num_samples=200, archs=("MLP", "D-CNN")),
        "fashion": dict(n_max=40, n_test=20, gap_max=0, gap_test=0, fin=(), epochs=1,
                        min_steps=5, archs=("S-CNN",)),
    },
    "quick": {
        "digits": dict(n_max=1348, n_test=449, gap_max=64, gap_test=64, fin=(1348,),
                       epochs=8, min_steps=150),
        "mnist1d": dict(n_max=2000, n_test=1000, gap_max=100, gap_test=100, fin=(2000,),
                        epochs=8, min_steps=150),
        "fashion": dict(n_max=1000, n_test=500, gap_max=0, gap_test=0, fin=(1000,),
                        epochs=8, min_steps=150, fin_archs=("MLP", "S-CNN", "D-CNN")),
    },
    "full": {
        "digits": dict(n_max=1348, n_test=449, gap_max=400, gap_test=449,
                       fin=(100, 400, 1348), epochs=30, min_steps=500),
        "mnist1d": dict(n_max=4000, n_test=1000, gap_max=1000, gap_test=500,
                        fin=(250, 1000, 4000), epochs=30, min_steps=500),
        "fashion": dict(n_max=10000, n_test=2000, gap_max=32, gap_test=64,
                        fin=(100, 1000, 10000), epochs=15, min_steps=500,
                        fin_gap_max=2000),
    },
}


def load(dataset: str, cfg: dict) -> iw.data.Dataset:
    if dataset == "digits":
        return iw.load_digits()
    if dataset == "mnist1d":
        return iw.load_mnist1d(num_samples=cfg.get("num_samples", 5000))
    return iw.load_fashion_mnist()


def grid(n_max: int, start: int = 25) -> list[int]:
    """25, 50, 100, … (doubling) up to n_max, n_max included."""
    out, n = [], start
    while n < n_max:
        out.append(n)
        n *= 2
    return out + [n_max] if n_max > 0 else []


def regression_rows(K: np.ndarray, Kt: np.ndarray, y: np.ndarray, yt: np.ndarray,
                    n_classes: int, ns: list[int]) -> list[dict]:
    """Accuracy and one-hot MSE of kernel regression on the first N points, for N in ns."""
    rows = []
    yt1 = np.full((len(yt), n_classes), -1 / n_classes)
    yt1[np.arange(len(yt)), yt] += 1
    for n in ns:
        Y = np.full((n, n_classes), -1 / n_classes)
        Y[np.arange(n), y[:n]] += 1
        A = K[:n, :n] + RIDGE_REL * np.mean(np.diag(K[:n, :n])) * np.eye(n)
        try:
            a = linalg.solve(A, Y, assume_a="pos")
        except (linalg.LinAlgError, ValueError):
            a = linalg.lstsq(A, Y)[0]
        pred = Kt[:, :n] @ a
        rows.append(dict(n_train=n, accuracy=float(np.mean(pred.argmax(1) == yt)),
                         test_mse=float(np.mean((pred - yt1) ** 2))))
    return rows


def _reached(part: C.Partial, dataset: str, arch: str) -> int:
    """Largest N with a saved NTK row for (dataset, arch); 0 if none."""
    ns = [int(r["n_train"]) for r in part.rows
          if r["dataset"] == dataset and r["arch"] == arch and r["kind"] == "ntk"]
    return max(ns, default=0)


def run_dataset(dataset: str, cfg: dict, part: C.Partial, gap_only: bool = False,
                memory_budget: str | None = None) -> None:
    import jax

    ds = load(dataset, cfg)
    order = np.random.default_rng(0).permutation(len(ds.y_train))
    test_order = np.random.default_rng(1).permutation(len(ds.y_test))
    archs = {k: v for k, v in architectures(dataset).items() if k in cfg.get("archs", ARCHS)}
    for label, arch in archs.items():
        gap = isinstance(arch, iw.ConvNet)
        if gap_only and not gap:
            continue
        n_max, n_test = (cfg["gap_max"], cfg["gap_test"]) if gap else (cfg["n_max"],
                                                                       cfg["n_test"])
        ns = grid(n_max, start=8 if gap and n_max < 50 else 25)
        if not ns or _reached(part, dataset, label) >= n_max:
            continue
        tr, te = order[:n_max], test_order[:n_test]
        timer = C.Timer()
        kw = {} if memory_budget is None or not gap else {"memory_budget": memory_budget}
        K, Th = iw.kernels.kernel_pair(arch, ds.x_train[tr], **kw)
        Kt, Tht = iw.kernels.kernel_pair(arch, ds.x_test[te], ds.x_train[tr], **kw)
        secs = timer()
        C.log(f"  {dataset} {label}: kernels {n_max}+{n_test} in {secs:.0f} s")
        for kind in ("nngp", "ntk"):  # a smaller earlier run of this kernel is superseded
            part.drop(dataset=dataset, arch=label, kind=kind)
        for kind, A, B in (("nngp", K, Kt), ("ntk", Th, Tht)):
            for row in regression_rows(A, B, ds.y_train[tr], ds.y_test[te], ds.n_classes, ns):
                part.add(dict(dataset=dataset, arch=label, kind=kind, n_test=n_test,
                              kernel_seconds=secs, width=np.nan, steps=np.nan,
                              device=jax.default_backend(), **row))
    for label, arch in archs.items():
        if gap_only:
            break
        if label not in cfg.get("fin_archs", ARCHS):
            continue
        for n in cfg["fin"]:
            if isinstance(arch, iw.ConvNet) and n > cfg.get("fin_gap_max", n):
                continue
            kind = "finite"
            if part.done(dataset=dataset, arch=label, kind=kind, n_train=n):
                continue
            tr, te = order[:n], test_order[:cfg["n_test"]]
            r = iw.learning.train_classifier(
                arch, ds.x_train[tr], ds.y_train[tr], ds.x_test[te], ds.y_test[te],
                ds.n_classes, width=WIDTHS[label], epochs=cfg["epochs"],
                min_steps=cfg["min_steps"], learning_rate=LR, seed=0)
            C.log(f"  {dataset} {label}: finite width {WIDTHS[label]}, N={n}: "
                  f"acc {r.test_accuracy:.3f} ({r.seconds:.0f} s)")
            part.add(dict(dataset=dataset, arch=label, kind=kind, n_test=cfg["n_test"],
                          kernel_seconds=np.nan, width=WIDTHS[label], steps=r.steps,
                          n_train=n, accuracy=r.test_accuracy, test_mse=r.test_mse,
                          train_seconds=r.seconds, final_train_loss=r.train_loss))


def plot(df: pd.DataFrame, cfg: dict, size: str, path: Path) -> None:
    datasets = [d for d in ("digits", "mnist1d", "fashion") if d in set(df.dataset)]
    fig, axes = C.plt.subplots(1, len(datasets), figsize=(6.2 * len(datasets), 4.8),
                               squeeze=False)
    for ax, dsn in zip(axes[0], datasets):
        sub = df[df.dataset == dsn]
        for label, color in C.ARCH_COLORS.items():
            a = sub[sub.arch == label]
            for kind, ls, mk in (("ntk", "-", "o"), ("nngp", "--", "s")):
                k = a[a.kind == kind].sort_values("n_train")
                if len(k):
                    ax.plot(k.n_train, k.accuracy, ls=ls, marker=mk, ms=3, color=color,
                            lw=1.3 if kind == "ntk" else 1.0)
            f = a[a.kind == "finite"].sort_values("n_train")
            if len(f):
                ax.plot(f.n_train, f.accuracy, ls=":", marker="D", ms=7, mfc="none",
                        mew=1.5, color=color)
        gap = sub[(sub.arch == "ConvNet-GAP") & (sub.kind == "ntk")]
        gap_n = int(gap.n_train.max()) if len(gap) else 0
        gap_test = int(gap.n_test.max()) if len(gap) else 0
        on = sorted(set(gap.get("device", pd.Series(dtype=str)).dropna()) - {"cpu"})
        c = cfg.get(dsn, SIZES[size][dsn])
        ax.set_xscale("log")
        ax.set_xlabel("training-set size N")
        ax.set_ylabel("test accuracy")
        ax.set_title(f"{dsn}: {c['n_test']} test images (GAP kernel: N ≤ {gap_n}, "
                     f"{gap_test} test{', on ' + '/'.join(on).upper() if on else ''})"
                     if gap_n else
                     f"{dsn}: {c['n_test']} test images (GAP kernel not run at this size)",
                     fontsize=9)
        ax.text(0.01, 0.01, ARCH_TEXT[dsn], transform=ax.transAxes, fontsize=6.5,
                color="0.3", va="bottom")
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color=c, lw=2, label=a) for a, c in C.ARCH_COLORS.items()]
    handles += [Line2D([], [], color="k", ls="-", marker="o", ms=3, label="NTK regression"),
                Line2D([], [], color="k", ls="--", marker="s", ms=3, label="NNGP regression"),
                Line2D([], [], color="k", ls=":", marker="D", mfc="none", ms=7,
                       label="finite net (Adam, width: MLP 512, CNN 64, GAP 32 ch.)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, -0.04))
    fig.suptitle("Figure 7 — real data: infinite-width kernels vs finite networks of the same "
                 f"topology (ridge {RIDGE_REL:g}·mean diag K)", fontsize=11)
    C.stamp(fig, size)
    fig.tight_layout()
    C.savefig(fig, path)


def _options(p) -> None:
    p.add_argument("--datasets", nargs="+", choices=("digits", "mnist1d", "fashion"),
                   help="a subset of the data sets")
    p.add_argument("--gap-only", action="store_true",
                   help="only the GAP kernel regressions (no tree kernels, no training)")
    p.add_argument("--gap-max", type=int, help="largest N of the GAP kernel (every data set)")
    p.add_argument("--gap-test", type=int, help="test points of the GAP kernel")
    p.add_argument("--memory-budget", help="iw.kernel's memory budget for the GAP kernel, "
                   "e.g. 40GB on a GPU")


def main(argv=None) -> dict:
    args = C.parse_args(argv, __doc__, _options)
    cfg = {k: dict(v) for k, v in SIZES[args.size].items()
           if not args.datasets or k in args.datasets}
    for c in cfg.values():
        for key, val in (("gap_max", args.gap_max), ("gap_test", args.gap_test)):
            if val is not None:
                if val < 0:
                    raise SystemExit(f"--{key.replace('_', '-')} must be >= 0, got {val}")
                c[key] = val
    if args.memory_budget is not None:  # refuse a bad budget before hours of tree kernels
        from infwidth.kernels.engine import parse_bytes
        try:
            parse_bytes(args.memory_budget)
        except ValueError as e:
            raise SystemExit(f"--memory-budget: {e}") from None
    C.style()
    timer = C.Timer()
    part = C.Partial(args.out / f"{NAME}.partial.csv",
                     ("dataset", "arch", "kind", "n_train"), args.size, args.fresh)
    for dsn, c in cfg.items():
        C.log(f"{NAME}: {dsn}")
        run_dataset(dsn, c, part, args.gap_only, args.memory_budget)
    df = part.frame()
    plot(df, cfg, args.size, args.out / f"{NAME}.png")
    C.write_csv(df, args.out / f"{NAME}.csv")
    best = (df.sort_values("n_train").groupby(["dataset", "arch", "kind"]).tail(1)
            [["dataset", "arch", "kind", "n_train", "accuracy"]])
    gap_reached = {d: int(df[(df.dataset == d) & (df.arch == "ConvNet-GAP")
                             & (df.kind == "ntk")].n_train.max())
                   if len(df[(df.dataset == d) & (df.arch == "ConvNet-GAP")
                             & (df.kind == "ntk")]) else 0 for d in cfg}
    gap_mem = {d: iw.kernels.estimate_block_memory(architectures(d)["ConvNet-GAP"], 1, 1,
                                           {"digits": 64, "mnist1d": 40, "fashion": 784}[d])
               for d in cfg}
    summary = {"size": args.size, "config": cfg, "ridge_rel": RIDGE_REL,
               "finite_widths": WIDTHS, "adam_lr": LR,
               "gap_largest_n": gap_reached,
               "gap_bytes_per_pair_estimate": gap_mem,
               "largest_n_results": best.to_dict("records"), "seconds": timer()}
    C.write_json(summary, args.out / f"{NAME}.json")
    C.log(best.to_string(index=False))
    C.log(f"GAP kernel largest N: {gap_reached} ({timer():.0f} s)")
    return summary


if __name__ == "__main__":
    main()
