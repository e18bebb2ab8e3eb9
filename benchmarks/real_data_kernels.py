"""How far the native engine takes the expensive real-data kernels in a fixed time.

Two kernels on Fashion-MNIST (28×28, Debian's ``dataset-fashion-mnist``): figure 7's
ConvNet-GAP (2 circular 3×3 convs, P = 784 positions: O(N²·P²)) and Myrtle-5 (same-padded
3×3 convs, two 2×2 average pools, GAP). For each: the engine's rate (pairs of images per
second, NNGP and NTK in one pass) is measured on a warm-up block; N is then the largest
training set (with N/2 test images) whose symmetric Gram of [train; test] fits ``--minutes``;
the Gram is filled tile by tile into a Zarr store (``iw.kernels.gram``: a kill loses at most
the running tile, a rerun computes only the missing ones; the chosen N is kept in
``plan.json``), and kernel regression (centred one-hot targets, ridge 1e-6·mean diag K as in
figure 7) is solved from the store at nested N (``kernel_regression_from_store``).

Writes ``real_data_kernels.csv`` (kernel, kind, n_train, n_test, accuracy, test_mse),
``summary.json`` (N, test size, Gram seconds, pairs/s, device) and
``real_data_kernels.png``.

    python benchmarks/real_data_kernels.py [--minutes 30] [--only gap|myrtle] [--tiny]
        [--client local] [--tile 64] [--dtype float32] [--out results/real_data_kernels]
        [--fresh]
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.architectures.myrtle import Myrtle
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json, write_png
from infwidth.io.scripts import doubling_grid

RIDGE_REL = 1e-6
KINDS = ("nngp", "ntk")
KERNELS = {"gap": ("ConvNet-GAP", iw.ConvNet(filter_size=3, depth=2, readout="gap", ndim=2)),
           "myrtle": ("Myrtle-5", Myrtle(depth=5, ndim=2))}


def pairs_per_second(arch, x: np.ndarray, threads: int | None, n: int = 24,
                     dtype: str = "float64") -> float:
    """Pairs/s of a symmetric n×n Gram (both kinds, ``threads`` engine threads, ``dtype``),
    after a warm-up call."""
    from infwidth.kernels.native import native_kernels

    native_kernels(arch, x[:2], kinds=KINDS, threads=threads, dtype=dtype, progress=False)
    t = time.perf_counter()
    native_kernels(arch, x[:n], kinds=KINDS, threads=threads, dtype=dtype, progress=False)
    return n * (n + 1) / 2 / (time.perf_counter() - t)


def largest_n(rate: float, seconds: float, cap: int) -> int:
    """Largest even N with the symmetric Gram of 1.5·N points inside ``seconds`` at
    ``rate`` pairs/s (90 %, for the tiles' overhead), at most ``cap``."""
    m = int((math.sqrt(1 + 8 * 0.9 * rate * seconds) - 1) / 2)  # m(m+1)/2 pairs
    return max(2, min(cap, int(m / 1.5) // 2 * 2))


def run_kernel(key: str, data, minutes: float, cap: int, out: Path, fresh: bool,
               client: str | None, tile: int, dtype: str = "float64") -> tuple:
    """One kernel: plan N, fill its store, solve nested regressions. (rows, summary).
    With ``client="local"`` (one single-threaded worker process per core) the rate is one
    thread's times the cores."""
    label, arch = KERNELS[key]
    plan_path, store = out / f"{key}.plan.json", out / f"{key}.zarr"
    if fresh:
        plan_path.unlink(missing_ok=True)
        shutil.rmtree(store, ignore_errors=True)
    if plan_path.exists():
        plan = json.loads(plan_path.read_text())
        if plan.get("dtype", "float64") != dtype:
            raise SystemExit(f"{plan_path} is a {plan.get('dtype', 'float64')} run; --dtype "
                             f"{dtype} needs another --out (or --fresh)")
        print(f"{label}: resuming the plan in {plan_path} (N = {plan['n_train']})", flush=True)
    else:
        cores = os.cpu_count() or 1
        rate = (pairs_per_second(arch, data.x_train, 1, dtype=dtype) * cores
                if client == "local" else pairs_per_second(arch, data.x_train, None,
                                                           dtype=dtype))
        n = largest_n(rate, 60 * minutes, cap)
        plan = {"n_train": n, "n_test": n // 2, "rate_pairs_per_second_runtime": rate,
                "minutes": minutes, "dtype": dtype}
        write_json(plan, plan_path)
        print(f"{label}: {rate:.1f} pairs/s (both kinds) → N = {n} train + {n // 2} test in "
              f"~{minutes:g} min", flush=True)
    n, nt = plan["n_train"], plan["n_test"]
    x = np.concatenate([data.x_train[:n], data.x_test[:nt]])
    t = time.perf_counter()
    g = iw.kernels.gram(arch, x, kinds=KINDS, store=store, progress=True, client=client,
                        tile=min(tile, n + nt), dtype=plan.get("dtype", "float64"))
    secs = time.perf_counter() - t
    report = g.report
    if report["done_before"] == 0:  # a fill in one go: its wall time is the measurement
        plan["gram_seconds_runtime"], plan["fill_client"] = secs, client
        write_json(plan, plan_path)
    y, yt = data.one_hot(data.y_train[:n]), data.y_test[:nt]
    rows = []
    for kind in KINDS:
        mean_diag = float(np.mean(g.diagonal(kind)[:n]))
        for m in doubling_grid(n):
            r = iw.kernels.kernel_regression_from_store(
                g, m, y[:m], data.one_hot(yt), kind=kind,
                ridge=RIDGE_REL * mean_diag, jitter=0.0, test_start=n)
            rows.append({"kernel": label, "kind": kind, "n_train": m, "n_test": nt,
                         "accuracy": float(np.mean(r["prediction"].argmax(1) == yt)),
                         "test_mse": float(np.mean(r["test_mse"]))})
    done_before = report["done_before"]
    summary = {"gram_seconds_runtime": None, "kernel": label, "arch": repr(arch), **plan,
               "gram_compute_seconds_runtime": float(np.nansum(g.store.tile_seconds())),
               "tiles": report["tiles"], "tiles_done_before": done_before,
               "pairs": (n + nt) * (n + nt + 1) // 2,
               "tile": g.report["tile"],
               "device": __import__("jax").default_backend()}
    print(f"{label}: N = {n} + {nt} test, Gram in {secs:.0f} s ({report['computed']} of "
          f"{report['tiles']} tiles computed now)", flush=True)
    return rows, summary


def plot(df: pd.DataFrame, summaries: list[dict], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for (kern, kind), g in df.groupby(["kernel", "kind"]):
        ax.plot(g.n_train, g.accuracy, marker="o", ls="-" if kind == "ntk" else "--",
                label=f"{kern} {kind.upper()}")
    ax.set_xscale("log")
    ns = sorted(int(n) for n in df.n_train.unique())
    if len(ns) > 1 and ns[-1] < 1.25 * ns[-2]:  # the full N next to the last doubling
        ns.pop(-2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("training images N (nested subsets)")
    ax.set_ylabel("test accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    note = "; ".join(f"{s['kernel']}: N={s['n_train']}+{s['n_test']} test, " + (
        f"Gram {s['gram_seconds_runtime'] / 60:.0f} min" if s["gram_seconds_runtime"]
        else "resumed") for s in summaries)
    ax.set_title(f"Fashion-MNIST kernels in a time budget (native engine, "
                 f"{summaries[0]['device'].upper()})\n{note}", fontsize=8.5)
    fig.tight_layout()
    write_png(fig, path, dpi=130, tight=False)


SCRIPT = Script("real_data_kernels", __doc__, out="results/real_data_kernels",
                sizes={"tiny": "smoke test: N ≤ 8, seconds"}, store=None, fresh=True, options=(
                    Option("--minutes", type=float, default=30.0, help="time budget per kernel"),
                    Option("--only", choices=tuple(KERNELS), nargs="*", default=None),
                    Option("--client", default=None, help='"local": a LocalCluster of one '
                           'worker per core (the [distributed] extra); a scheduler address; '
                           'default: this process, every core'),
                    Option("--tile", type=int, default=64, help="Gram tile (rows and columns)"),
                    Option("--dtype", choices=("float64", "float32"), default="float64",
                           help="the engine's working dtype (regression is float64)")))


@SCRIPT.main
def main(run) -> dict:
    args = run.args
    if not args.minutes > 0:
        raise SystemExit(f"--minutes must be > 0, got {args.minutes}")
    if args.tile < 1:
        raise SystemExit(f"--tile must be >= 1, got {args.tile}")
    try:
        data = iw.load_fashion_mnist()
    except (FileNotFoundError, ImportError, ValueError) as e:
        raise SystemExit(f"Fashion-MNIST is not available ({e}); install Debian's "
                         f"dataset-fashion-mnist or set INFWIDTH_FASHION_MNIST_DIR") from None
    rows, summaries = [], []
    for key in args.only or KERNELS:
        r, s = run_kernel(key, data, args.minutes, 8 if args.tiny else 10**6, args.out,
                          args.fresh, args.client, 4 if args.tiny else args.tile, args.dtype)
        rows += r
        summaries.append(s)
    df = pd.DataFrame(rows)
    write_csv(df, args.out / "real_data_kernels.csv")
    summary = {"ridge_rel": RIDGE_REL, "kernels": summaries,
               "best": df.sort_values("n_train").groupby(["kernel", "kind"]).tail(1)
               [["kernel", "kind", "n_train", "accuracy"]].to_dict("records")}
    write_json(summary, args.out / "summary.json")
    plot(df, summaries, args.out / "real_data_kernels.png")
    print(df.to_string(index=False))
    return summary


if __name__ == "__main__":
    main()
