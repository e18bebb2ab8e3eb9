"""Figure 7: real data: kernel regression with the MLP, S-CNN, D-CNN and ConvNet-GAP kernels
(NNGP and NTK) beside finite networks of the same topologies, against training-set size.

Data: scikit-learn digits (8×8), mnist1d (40-long, 1-D architectures) and Fashion-MNIST
(28×28), inputs centred and scaled to ‖x‖² = dim (``iw.load_*``). Images use the 2-D
architectures (``ndim=2``).

- Kernel regression: one seeded random order of the training set; the first N points for every
  N on the grid (nested subsets), centred one-hot targets, ridge δ = 1e-6·mean(diag K), test
  accuracy by argmax on a fixed test subset. Every kernel comes from ``iw.kernel`` (the native
  engine, NNGP and NTK in one pass, ``iw.kernels.kernel_pair``); the GAP kernel's cost is
  O(N²·P²) with P the number of pixels, so its N grid stops earlier (the largest N reached is
  in the CSV and the title; ``benchmarks/real_data_kernels.py`` takes it as far as a time
  budget allows).
- Finite networks: ``arch.stax`` at a fixed width, trained by minibatch Adam on one-hot MSE
  (``iw.learning.train_classifier``), centred at initialisation, one seed.

    python paper_figures/fig7_real_data.py [--quick | --tiny] [--out DIR] [--fresh]

Resumes from ``<out>/fig7_real_data.runs.sqlite``: one unit per kernel (data set,
architecture, largest N, test size: both kernels, every N's solve) and one per finite network
(data set, architecture, N), each committed whole; ``--fresh`` starts over. A data set whose
units are all committed is not even loaded.

The GAP kernel is the expensive part (Fashion-MNIST, P = 784: ~180 pairs/s for both kernels
on 2 CPU cores with the native engine; ~6 with neural-tangents). On a machine with an
accelerator, compute it further first and import the rows it wrote here: a kernel is
skipped once a committed unit of it reaches its N, and the unit with the largest N is the
one drawn (a larger GAP run supersedes a smaller one):

    python paper_figures/fig7_real_data.py --gap-only --datasets fashion --gap-max 2048 \
        --gap-test 2000 --memory-budget 40GB --out GPU_DIR      # on the GPU machine
    python paper_figures/fig7_real_data.py --import-gap-rows GPU_DIR/fig7_real_data.csv

(the import takes the kernel rows of any CSV this script wrote, e.g. the committed
``paper_figures/data/fig7_gap_fashion_h100.csv``, into the run of the same size, then runs as
usual).

Every kernel row records the JAX backend that computed it (column ``device``).

Missing optional data never stops the figure: a data set that is not installed (Debian's
``dataset-fashion-mnist``; scikit-learn or mnist1d, the ``[data]`` extra) is drawn as a
panel saying what is missing and how to install it, named in the log and in the summary
JSON (``missing_data``), and the other data sets are drawn as usual.
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
DATASETS = ("digits", "mnist1d", "fashion")
DATA_NAMES = {"digits": "scikit-learn's digits", "mnist1d": "mnist1d",
              "fashion": "Fashion-MNIST"}
INSTALL = {"fashion": "apt-get install dataset-fashion-mnist (Debian's package)"}
KERNEL_KINDS = ("nngp", "ntk")
# the columns of a kernel row (``size`` first in the CSV), as the import rebuilds them
KERNEL_COLUMNS = ("dataset", "arch", "kind", "n_test", "kernel_seconds", "width", "steps",
                  "device", "n_train", "accuracy", "test_mse")

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


def kernel_key(dataset: str, arch: str, n_max: int, n_test: int) -> dict:
    """The unit of one kernel: both kinds on N ≤ n_max training and n_test test points."""
    return {"kernel": dataset, "arch": arch, "n_max": int(n_max), "n_test": int(n_test)}


def finite_key(dataset: str, arch: str, n: int, n_test: int) -> dict:
    """The unit of one finite network trained on N = n points."""
    return {"finite": dataset, "arch": arch, "n_train": int(n), "n_test": int(n_test)}


def best_kernel(units: list[dict], dataset: str, arch: str) -> dict | None:
    """The committed kernel unit of (dataset, arch) with the largest N (then test size; then
    the latest), or None: a larger run supersedes a smaller one."""
    found = [(u["n_max"], u["n_test"], i, u) for i, u in enumerate(units)
             if u.get("kernel") == dataset and u["arch"] == arch]
    return max(found, key=lambda t: t[:3])[3] if found else None


class Data:
    """A data set and its seeded train/test orders, loaded on first use (a run whose units
    are all committed never loads it); a missing one raises :class:`C.MissingData`."""

    def __init__(self, dataset: str, cfg: dict):
        self.dataset, self.cfg, self._loaded = dataset, cfg, None

    def get(self) -> tuple[iw.data.Dataset, np.ndarray, np.ndarray]:
        if self._loaded is None:
            ds = C.optional_data(DATA_NAMES[self.dataset], lambda: load(self.dataset, self.cfg),
                                 INSTALL.get(self.dataset))
            order = np.random.default_rng(0).permutation(len(ds.y_train))
            test_order = np.random.default_rng(1).permutation(len(ds.y_test))
            self._loaded = ds, order, test_order
        return self._loaded


def kernel_rows(dataset: str, label: str, arch: iw.Architecture, data: Data, n_max: int,
                n_test: int, ns: list[int], memory_budget: str | None) -> list[dict]:
    """One kernel unit: NNGP and NTK on the first n_max training and n_test test points,
    kernel regression on the first N for every N in ns."""
    import jax

    ds, order, test_order = data.get()
    tr, te = order[:n_max], test_order[:n_test]
    timer = C.Timer()
    kw = {} if memory_budget is None else {"memory_budget": memory_budget}
    K, Th = iw.kernels.kernel_pair(arch, ds.x_train[tr], **kw)
    Kt, Tht = iw.kernels.kernel_pair(arch, ds.x_test[te], ds.x_train[tr], **kw)
    secs = timer()
    C.log(f"  {dataset} {label}: kernels {n_max}+{n_test} in {secs:.0f} s")
    rows = []
    for kind, A, B in (("nngp", K, Kt), ("ntk", Th, Tht)):
        for row in regression_rows(A, B, ds.y_train[tr], ds.y_test[te], ds.n_classes, ns):
            rows.append(dict(dataset=dataset, arch=label, kind=kind, n_test=n_test,
                             kernel_seconds=secs, width=np.nan, steps=np.nan,
                             device=jax.default_backend(), **row))
    return rows


def finite_rows(dataset: str, label: str, arch: iw.Architecture, data: Data, n: int,
                cfg: dict) -> list[dict]:
    """One finite-network unit: ``arch`` at its width trained by Adam on the first n points."""
    ds, order, test_order = data.get()
    tr, te = order[:n], test_order[:cfg["n_test"]]
    r = iw.learning.train_classifier(
        arch, ds.x_train[tr], ds.y_train[tr], ds.x_test[te], ds.y_test[te],
        ds.n_classes, width=WIDTHS[label], epochs=cfg["epochs"],
        min_steps=cfg["min_steps"], learning_rate=LR, seed=0)
    C.log(f"  {dataset} {label}: finite width {WIDTHS[label]}, N={n}: "
          f"acc {r.test_accuracy:.3f} ({r.seconds:.0f} s)")
    return [dict(dataset=dataset, arch=label, kind="finite", n_test=cfg["n_test"],
                 kernel_seconds=np.nan, width=WIDTHS[label], steps=r.steps,
                 n_train=n, accuracy=r.test_accuracy, test_mse=r.test_mse,
                 train_seconds=r.seconds, final_train_loss=r.final_train_loss,
                 initial_train_loss=r.initial_train_loss, loss_ratio=r.loss_ratio,
                 train_accuracy=r.train_accuracy, converged=r.converged,
                 learning_rate=r.learning_rate, protocol=r.protocol)]


def run_dataset(dataset: str, cfg: dict, store, gap_only: bool = False,
                memory_budget: str | None = None) -> None:
    """Compute and commit the units of ``dataset`` that are not committed yet (the data are
    loaded only if one is missing; :class:`C.MissingData` if they are not installed)."""
    data = Data(dataset, cfg)
    archs = {k: v for k, v in architectures(dataset).items() if k in cfg.get("archs", ARCHS)}
    units = store.units()
    for label, arch in archs.items():
        gap = isinstance(arch, iw.ConvNet)
        if gap_only and not gap:
            continue
        n_max, n_test = (cfg["gap_max"], cfg["gap_test"]) if gap else (cfg["n_max"],
                                                                       cfg["n_test"])
        ns = C.doubling_grid(n_max, start=8 if gap and n_max < 50 else 25)
        best = best_kernel(units, dataset, label)
        if not ns or (best is not None and best["n_max"] >= n_max):
            continue
        store.put(kernel_key(dataset, label, n_max, n_test),
                  kernel_rows(dataset, label, arch, data, n_max, n_test, ns,
                              memory_budget if gap else None))
    for label, arch in archs.items():
        if gap_only:
            break
        if label not in cfg.get("fin_archs", ARCHS):
            continue
        for n in cfg["fin"]:
            if isinstance(arch, iw.ConvNet) and n > cfg.get("fin_gap_max", n):
                continue
            store.compute(finite_key(dataset, label, n, cfg["n_test"]),
                          lambda label=label, arch=arch, n=n: finite_rows(
                              dataset, label, arch, data, n, cfg))


def collect(store, size: str) -> pd.DataFrame:
    """The figure's rows from the store, in a fixed order whatever the order of commits:
    per data set, each architecture's best kernel unit, then its finite networks by N."""
    units = store.units()
    rows = []
    for dsn in DATASETS:
        for label in ARCHS:
            best = best_kernel(units, dsn, label)
            if best is not None:
                rows += store.get(best)
        for label in ARCHS:
            fin = sorted((u for u in units if u.get("finite") == dsn and u["arch"] == label),
                         key=lambda u: (u["n_train"], u["n_test"]))
            for u in fin:
                rows += store.get(u)
    return pd.DataFrame([{"size": size, **r} for r in rows])


def import_rows(store, path: Path, size: str) -> int:
    """Commit the kernel rows (kinds nngp and ntk) of a CSV this script wrote, e.g. the GAP
    rows of a ``--gap-only`` run on an accelerator, one unit per (data set, architecture,
    test size); returns the number of units. Refuses rows of another run size."""
    # floats bit for bit: pandas >= 3 parses exactly by default, older ones need round_trip
    exact = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
    try:
        df = pd.read_csv(path, **exact)
    except (OSError, ValueError) as e:
        raise SystemExit(f"--import-gap-rows: cannot read {path}: {e}") from None
    need = {"size", "dataset", "arch", "kind", "n_test", "n_train", "accuracy", "test_mse"}
    if not need <= set(df.columns):
        raise SystemExit(f"--import-gap-rows: {path} lacks the columns "
                         f"{sorted(need - set(df.columns))} of a {NAME} CSV")
    sizes = sorted(set(df["size"].astype(str)))
    if sizes != [size]:
        flag = {"tiny": "--tiny", "quick": "--quick", "full": "no size flag"}
        raise SystemExit(f"--import-gap-rows: {path} holds rows of the run size(s) {sizes}, "
                         f"not {size!r}; import them into that run ("
                         + ", ".join(f"{s}: {flag.get(s, '?')}" for s in sizes) + ")")
    kern = df[df["kind"].isin(KERNEL_KINDS)]
    bad = sorted(set(kern["dataset"]) - set(DATASETS)) + sorted(set(kern["arch"]) - set(ARCHS))
    if bad:
        raise SystemExit(f"--import-gap-rows: {path} names unknown data sets or "
                         f"architectures {bad}")
    n = 0
    for (dsn, label, n_test), g in kern.groupby(["dataset", "arch", "n_test"], sort=False):
        per_kind = [sorted(g.loc[g["kind"] == k, "n_train"]) for k in KERNEL_KINDS]
        if per_kind[0] != per_kind[1] or g.duplicated(["kind", "n_train"]).any():
            raise SystemExit(f"--import-gap-rows: {path}: the {dsn} {label} rows with "
                             f"n_test={n_test} do not hold one NNGP and one NTK row per N")
        rows = [{c: _native(r.get(c, np.nan)) for c in KERNEL_COLUMNS}
                for r in g.to_dict("records")]
        store.put(kernel_key(dsn, label, g["n_train"].max(), n_test), rows)
        n += 1
    others = len(df) - len(kern)
    C.log(f"{NAME}: imported {n} kernel unit(s) ({len(kern)} rows) from {path}"
          + (f"; {others} row(s) of other kinds left out" if others else ""))
    return n


def _native(v):
    """A CSV cell as the Python value the script itself stores (ints, floats, strings)."""
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


def plot(df: pd.DataFrame, cfg: dict, size: str, path: Path,
         missing: dict[str, str] | None = None) -> None:
    """The figure: one panel per data set with rows, and in place of (or on) the panel of a
    data set that is not installed, what is missing and how to install it."""
    missing = missing or {}
    have = set(df.dataset) if len(df) else set()
    datasets = [d for d in DATASETS if d in have or d in missing]
    fig, axes = C.plt.subplots(1, max(len(datasets), 1),
                               figsize=(6.2 * max(len(datasets), 1), 4.8), squeeze=False)
    if not datasets:
        C.missing_panel(axes[0][0], "no results", f"nothing was computed at the {size} size "
                        f"for the data sets asked for")
    for ax, dsn in zip(axes[0], datasets):
        if dsn not in have:
            C.missing_panel(ax, f"{dsn}: data not installed", missing[dsn])
            continue
        if dsn in missing:
            ax.text(0.5, 0.98, f"incomplete: {missing[dsn]}", transform=ax.transAxes,
                    ha="center", va="top", fontsize=6.5, color="tab:red", wrap=True)
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
                ax.plot(f.n_train, f.accuracy, ls=":", color=color)
                conv = (f.converged.fillna(False).astype(bool) if "converged" in f
                        else pd.Series(False, index=f.index))
                for sel, mfc in ((conv, color), (~conv, "none")):  # hollow: not converged
                    ax.plot(f.n_train[sel], f.accuracy[sel], ls="none", marker="D", ms=7,
                            mfc=mfc, mew=1.5, color=color)
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
                Line2D([], [], color="k", ls=":", marker="D", ms=7,
                       label="finite net (Adam, width: MLP 512, CNN 64, GAP 32 ch.); "
                             "hollow: not converged (train loss > 1e-3 x initial)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               bbox_to_anchor=(0.5, -0.04))
    fig.suptitle("Figure 7 — real data: infinite-width kernels vs finite networks of the same "
                 f"topology (ridge {RIDGE_REL:g}·mean diag K)", fontsize=11)
    C.stamp(fig, size)
    fig.tight_layout()
    C.savefig(fig, path)


SCRIPT = C.figure_script(NAME, __doc__, options=(
    C.Option("--datasets", nargs="+", choices=("digits", "mnist1d", "fashion"),
             help="a subset of the data sets"),
    C.Option("--gap-only", action="store_true",
             help="only the GAP kernel regressions (no tree kernels, no training)"),
    C.Option("--gap-max", type=int, help="largest N of the GAP kernel (every data set)"),
    C.Option("--gap-test", type=int, help="test points of the GAP kernel"),
    C.Option("--memory-budget", help="iw.kernel's memory budget for the GAP kernel, "
             "e.g. 40GB on a GPU"),
    C.Option("--import-gap-rows", type=Path, metavar="CSV",
             help="first commit the kernel rows of a CSV this script wrote (e.g. a "
             "--gap-only run on a GPU, or paper_figures/data/fig7_gap_fashion_h100.csv) to "
             "the store"),
))


@SCRIPT.main
def main(run) -> dict:
    args = run.args
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
    # every option that changes numbers: the size's table, ridge, widths, learning rate; the
    # kernel units add their own N and test size (--gap-max, --gap-test)
    store = run.store(size=args.size, sizes=SIZES[args.size], ridge_rel=RIDGE_REL, lr=LR,
                         widths=WIDTHS)
    if args.import_gap_rows is not None:
        import_rows(store, args.import_gap_rows, args.size)
    missing: dict[str, str] = {}
    for dsn, c in cfg.items():
        C.log(f"{NAME}: {dsn}")
        try:
            run_dataset(dsn, c, store, args.gap_only, args.memory_budget)
        except C.MissingData as e:
            missing[dsn] = str(e)
            C.log(f"{NAME}: {dsn} left out of the figure: {e} [{e.detail}]")
    df = collect(store, args.size)
    plot(df, cfg, args.size, args.out / f"{NAME}.png", missing)
    C.write_csv(df, args.out / f"{NAME}.csv")
    if len(df):
        best = (df.sort_values("n_train").groupby(["dataset", "arch", "kind"]).tail(1)
                [["dataset", "arch", "kind", "n_train", "accuracy"]])
    else:
        best = pd.DataFrame(columns=["dataset", "arch", "kind", "n_train", "accuracy"])

    def gap_ntk(d: str) -> pd.DataFrame:
        return df[(df.dataset == d) & (df.arch == "ConvNet-GAP") & (df.kind == "ntk")] \
            if len(df) else df

    gap_reached = {d: int(gap_ntk(d).n_train.max()) if len(gap_ntk(d)) else 0 for d in cfg}
    gap_mem = {d: iw.kernels.estimate_block_memory(architectures(d)["ConvNet-GAP"], 1, 1,
                                           {"digits": 64, "mnist1d": 40, "fashion": 784}[d])
               for d in cfg}
    fin = df[df.kind == "finite"] if len(df) else df
    bad = (fin[~fin.converged.fillna(False).astype(bool)] if "converged" in fin else fin)
    not_converged = [dict(dataset=r["dataset"], arch=r["arch"], n_train=int(r["n_train"]),
                          loss_ratio=float(r.get("loss_ratio", np.nan)),
                          train_accuracy=float(r.get("train_accuracy", np.nan)))
                     for r in bad.to_dict("records")]
    summary = {"size": args.size, "config": cfg, "ridge_rel": RIDGE_REL,
               "finite_protocol": "adam (fixed schedule); converged = full train loss <= "
                                  "1e-3 x initial",
               "finite_not_converged": not_converged,
               "finite_widths": WIDTHS, "adam_lr": LR,
               "gap_largest_n": gap_reached,
               "gap_bytes_per_pair_estimate": gap_mem,
               "largest_n_results": best.to_dict("records"), "seconds": timer()}
    if missing:  # what is not installed, and how to install it
        summary["missing_data"] = missing
    C.write_json(summary, args.out / f"{NAME}.json")
    C.log(best.to_string(index=False))
    C.log(f"GAP kernel largest N: {gap_reached} ({timer():.0f} s)")
    if not_converged:
        C.log("NOT CONVERGED finite nets (no finding is drawn from them; hollow in the plot): "
              + "; ".join(f"{r['dataset']} {r['arch']} N={r['n_train']} (loss ratio "
                          f"{r['loss_ratio']:.2g}, train acc {r['train_accuracy']:.3f})"
                          for r in not_converged))
    for dsn, why in missing.items():
        C.log(f"MISSING DATA, {dsn} not drawn: {why}")
    return summary


if __name__ == "__main__":
    main()
