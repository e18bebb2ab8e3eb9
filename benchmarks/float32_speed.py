"""float32 against float64 on the CPU engine's fused cases, in one process.

The 28×28 GAP ConvNet (depth 2, circular 3×3 convs), Myrtle-5 on 28×28 and the GAP ConvNet
with erf, both kinds, the numba backend, N = 24 (a symmetric Gram: 300 pairs): each dtype after
a warm-up call, the two dtypes interleaved ``reps`` times (the machine is shared: each keeps its
fastest call), with one thread and with every core. Reported per case: wall and CPU seconds of
each dtype, their ratios float64/float32, the largest error of the float32 Gram relative to
the largest float64 entry and the largest elementwise relative error (large where an erf Gram
entry is near zero), and the load average. ``--tiny``: 8×8 images, N = 6. Writes
``float32_speed.json``. (``kernel_speed.py`` reports the same ratio beside neural-tangents.)

    python benchmarks/float32_speed.py [--tiny] [--out results/float32_speed]
"""

from __future__ import annotations

import os
import time

import numpy as np

import infwidth as iw
from infwidth.architectures.myrtle import Myrtle
from infwidth.io.harness import Script
from infwidth.kernels.native import native_kernels

SCRIPT = Script("float32_speed", __doc__, out="results/float32_speed", sizes=("tiny",),
                store=None)
KINDS = ("nngp", "ntk")
DTYPES = ("float64", "float32")


def cases() -> dict:
    """Name → architecture."""
    return {"convnet-gap-2d-d2-circ": iw.ConvNet(filter_size=3, depth=2, ndim=2, readout="gap"),
            "myrtle5-2d": Myrtle(depth=5, ndim=2),
            "convnet-gap-2d-d2-circ-erf": iw.ConvNet(filter_size=3, depth=2, ndim=2,
                                                     readout="gap", activation="erf")}


def timed(arch, x, threads: int | None, reps: int) -> tuple[dict, dict, dict]:
    """Per dtype: (kernels, best wall seconds, best CPU seconds), the dtypes interleaved."""
    for dt in DTYPES:
        native_kernels(arch, x[:3], kinds=KINDS, dtype=dt, backend="numba", progress=False)
    wall, cpu, out = dict.fromkeys(DTYPES, np.inf), dict.fromkeys(DTYPES, np.inf), {}
    for _ in range(reps):
        for dt in DTYPES:
            t, c = time.perf_counter(), time.process_time()
            out[dt] = native_kernels(arch, x, kinds=KINDS, dtype=dt, backend="numba",
                                     threads=threads, progress=False)
            wall[dt] = min(wall[dt], time.perf_counter() - t)
            cpu[dt] = min(cpu[dt], time.process_time() - c)
    return out, wall, cpu


@SCRIPT.main
def main(run) -> dict:
    side, n, reps = (8, 6, 1) if run.args.size == "tiny" else (28, 24, 4)
    x = iw.sample_inputs("sphere", n, side * side, seed=0)
    out: dict = {"image_side": side, "n": n, "reps": reps, "cores": os.cpu_count(), "cases": {}}
    for name, arch in cases().items():
        row: dict = {}
        for threads in (1, None):
            key = "1thread" if threads == 1 else "all_cores"
            k, wall, cpu = timed(arch, x, threads, reps)
            for dt in DTYPES:
                row[f"{key}_{dt}_wall_seconds"] = wall[dt]
                row[f"{key}_{dt}_cpu_seconds"] = cpu[dt]
            row[f"{key}_speedup_wall"] = wall["float64"] / wall["float32"]
            row[f"{key}_speedup_cpu"] = cpu["float64"] / cpu["float32"]
            row[f"{key}_load_avg"] = os.getloadavg()[0]
        k32, k64 = k["float32"], k["float64"]
        row["max_rel_err"] = max(float(np.max(np.abs(k32[c] - k64[c])) / np.max(np.abs(k64[c])))
                                 for c in KINDS)
        row["max_elementwise_rel_err"] = max(float(np.max(np.abs(k32[c] - k64[c]) / np.maximum(
            np.abs(k64[c]), 1e-300))) for c in KINDS)
        out["cases"][name] = row
        print(f"{name}: float32 ×{row['1thread_speedup_wall']:.2f} wall "
              f"(×{row['1thread_speedup_cpu']:.2f} CPU) on 1 thread, "
              f"×{row['all_cores_speedup_wall']:.2f} wall (×{row['all_cores_speedup_cpu']:.2f} "
              f"CPU) on all cores; error {row['max_rel_err']:.1e} of max|K| "
              f"({row['max_elementwise_rel_err']:.1e} elementwise); load "
              f"{row['1thread_load_avg']:.2f}/{row['all_cores_load_avg']:.2f}", flush=True)
    run.write_json(out, "float32_speed.json")
    return out


if __name__ == "__main__":
    main()
