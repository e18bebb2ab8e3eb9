"""Is float32 safe for the expensive real-data kernels? The same Fashion-MNIST Gram in both.

For figure 7's ConvNet-GAP and Myrtle-5 (``real_data_kernels.py``'s kernels) on the first N
training and N/2 test images: the native engine's Gram of [train; test] in float64 and in
float32 (the engine's working dtype; GAP sums accumulate in float64), then, from each, kernel
regression in float64 (centred one-hot targets, ridge 1e-6·mean diag K as in figure 7).
Per kernel and kind: seconds and pairs/s of each dtype, the float32 speed-up, the largest
relative error of the float32 Gram (|K32 − K64| / max|K64|), the condition number of
K_train + ridge from each, the test accuracy from each and their difference, and the largest
difference of the predictions. ``--tiny``: N = 16.

``--stores F64 F32`` instead compares two finished ``real_data_kernels.py`` stores of one
kernel (float64 and float32, e.g. both ``--minutes 30`` runs): on the float64 run's N train and
N/2 test images, which the float32 run's larger Gram contains (its first N training rows; its
test rows start at its own N), the same columns from the stored Grams.

    python benchmarks/float32_accuracy.py [--n 256] [--only gap|myrtle] [--tiny] [--out DIR]
    python benchmarks/float32_accuracy.py --stores F64.zarr F32.zarr [--out DIR]
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.linalg

import infwidth as iw
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json

RIDGE_REL = 1e-6
KINDS = ("nngp", "ntk")


def kernels() -> dict:
    """Name → architecture (shared with ``real_data_kernels.py``)."""
    from infwidth.architectures.myrtle import Myrtle

    return {"gap": iw.ConvNet(filter_size=3, depth=2, readout="gap", ndim=2),
            "myrtle": Myrtle(depth=5, ndim=2)}


def regression(k: np.ndarray, n: int, y: np.ndarray) -> tuple[np.ndarray, float]:
    """(test predictions, cond(K_train + ridge)) of float64 kernel regression on the first
    ``n`` rows of the [train; test] Gram ``k``."""
    k = np.asarray(k, np.float64)
    a = k[:n, :n] + RIDGE_REL * float(np.mean(np.diag(k)[:n])) * np.eye(n)
    w = np.linalg.eigvalsh(a)
    alpha = scipy.linalg.cho_solve(scipy.linalg.cho_factor(a), y)
    return k[n:, :n] @ alpha, float(w[-1] / w[0])


SCRIPT = Script("float32_accuracy", __doc__, out="results/float32_accuracy",
                sizes={"tiny": "N = 16"}, store=None, fresh=False, options=(
                    Option("--n", type=int, default=256, help="training images (test: N/2)"),
                    Option("--only", choices=("gap", "myrtle"), nargs="*", default=None),
                    Option("--stores", nargs=2, default=None,
                           help="float64 and float32 real_data_kernels stores to compare")))


def compare_stores(f64: str, f32: str, data) -> list[dict]:
    """Rows of the float32-vs-float64 comparison on the float64 store's images."""
    from infwidth.kernels.gram_store import StoredGram

    rows = []
    for kind in KINDS:
        g64, g32 = StoredGram(f64, kind=kind), StoredGram(f32, kind=kind)
        n64, n32 = (json.loads((Path(p).with_suffix(".plan.json")).read_text())["n_train"]
                    for p in (f64, f32))
        nt = g64.shape[0] - n64
        idx32 = np.r_[0:n64, n32:n32 + nt]  # the float64 run's images inside the float32 Gram
        k64 = np.asarray(g64.row_block(0, n64 + nt), np.float64)
        k32 = np.concatenate([g32.row_block(0, n64), g32.row_block(n32, n32 + nt)])
        k32 = np.asarray(k32[:, idx32], np.float64)
        y = data.one_hot(data.y_train[:n64])
        yt = data.y_test[:nt]
        p64, c64 = regression(k64, n64, y)
        p32, c32 = regression(k32, n64, y)
        acc64 = float(np.mean(p64.argmax(1) == yt))
        acc32 = float(np.mean(p32.argmax(1) == yt))
        rows.append({"kernel": Path(f64).stem, "kind": kind, "n_train": n64, "n_test": nt,
                     "max_rel_err": float(np.max(np.abs(k32 - k64)) / np.max(np.abs(k64))),
                     "cond_float64": c64, "cond_float32": c32, "accuracy_float64": acc64,
                     "accuracy_float32": acc32, "accuracy_diff": acc32 - acc64,
                     "max_prediction_diff": float(np.max(np.abs(p32 - p64)))})
        print(f"{kind}: N={n64}+{nt}: err {rows[-1]['max_rel_err']:.1e}, cond {c64:.2e}/"
              f"{c32:.2e}, accuracy {acc64:.4f}/{acc32:.4f}", flush=True)
    return rows


@SCRIPT.main
def main(run) -> dict:
    args = run.args
    n = 16 if args.tiny else args.n
    if n < 2:
        raise SystemExit(f"--n must be >= 2, got {n}")
    data = iw.load_fashion_mnist()
    if args.stores:
        rows = compare_stores(*args.stores, data)
        df = pd.DataFrame(rows)
        write_csv(df, run.out / "float32_stores.csv")
        summary = {"stores": args.stores, "ridge_rel": RIDGE_REL,
                   "max_abs_accuracy_diff": float(df.accuracy_diff.abs().max()),
                   "max_rel_err": float(df.max_rel_err.max())}
        write_json({"summary": summary, "rows": rows}, run.out / "float32_stores.json")
        return summary
    x = np.concatenate([data.x_train[:n], data.x_test[:n // 2]])
    y = data.one_hot(data.y_train[:n])
    yt = data.y_test[:n // 2]
    rows = []
    for key, arch in kernels().items():
        if args.only and key not in args.only:
            continue
        grams, secs = {}, {}
        for dt in ("float64", "float32"):
            iw.kernel(arch, x[:2], kind=KINDS, dtype=dt, progress=False)  # warm-up
            t = time.perf_counter()
            grams[dt] = iw.kernel(arch, x, kind=KINDS, dtype=dt, progress=False)
            secs[dt] = time.perf_counter() - t
        pairs = len(x) * (len(x) + 1) / 2
        for kind in KINDS:
            k64, k32 = grams["float64"][kind], grams["float32"][kind]
            p64, c64 = regression(k64, n, y)
            p32, c32 = regression(k32, n, y)
            acc64 = float(np.mean(p64.argmax(1) == yt))
            acc32 = float(np.mean(p32.argmax(1) == yt))
            rows.append({
                "kernel": key, "kind": kind, "n_train": n, "n_test": n // 2,
                "float64_seconds": secs["float64"], "float32_seconds": secs["float32"],
                "float64_pairs_per_second_runtime": pairs / secs["float64"],
                "float32_speedup_runtime": secs["float64"] / secs["float32"],
                "max_rel_err": float(np.max(np.abs(k32 - k64)) / np.max(np.abs(k64))),
                "cond_float64": c64, "cond_float32": c32,
                "accuracy_float64": acc64, "accuracy_float32": acc32,
                "accuracy_diff": acc32 - acc64,
                "max_prediction_diff": float(np.max(np.abs(p32 - p64)))})
            r = rows[-1]
            print(f"{key:6s} {kind:4s} N={n}: f64 {r['float64_seconds']:.1f}s, f32 ×"
                  f"{r['float32_speedup_runtime']:.2f}, err {r['max_rel_err']:.1e}, cond "
                  f"{c64:.2e}/{c32:.2e}, acc {acc64:.4f}/{acc32:.4f}", flush=True)
    df = pd.DataFrame(rows)
    write_csv(df, run.out / "float32_accuracy.csv")
    summary = {"n_train": n, "ridge_rel": RIDGE_REL,
               "max_abs_accuracy_diff": float(df.accuracy_diff.abs().max()),
               "max_rel_err": float(df.max_rel_err.max())}
    write_json({"summary": summary, "rows": rows}, run.out / "float32_accuracy.json")
    return summary


if __name__ == "__main__":
    main()
