"""LeNet kernels on banded covariances against the full covariance, in one process.

The width study's LeNet (conv → relu → pool 2 → conv → relu → pool 2 → Flatten → 3 dense
layers, SAME) on 28×28 inputs, N = 32 (a symmetric Gram: 528 pairs), both kinds, float64, the
numba backend: the engine's plan with bands (offsets ≤ 3 before the first pooling, ≤ 1 before
the second) and the same plan keeping the full (P, P) covariance
(:func:`infwidth.kernels.native.banding`), each after a warm-up call. Reported: wall and CPU
seconds with one thread and with every core (best of ``reps`` each), the ratios full/band,
the largest relative difference of the two results, and the memory estimates (the automatic
tile, and one pair per tile). ``--tiny``: 12×12 inputs, N = 6. Writes ``band_speed.json``.

    python benchmarks/band_speed.py [--tiny] [--out results/band_speed]
"""

from __future__ import annotations

import os
import time

import numpy as np

from infwidth.io.harness import Script
from infwidth.kernels.native import (
    banding,
    native_kernels,
    native_memory_estimate,
    native_plan,
)
from infwidth.studies.width_power_law.lenet import LeNet

SCRIPT = Script("band_speed", __doc__, out="results/band_speed", sizes=("tiny",), store=None)


def timed(arch, x, threads: int | None, reps: int) -> tuple[dict, float, float]:
    """(kernels, best wall seconds, best CPU seconds) of ``reps`` calls after a warm-up."""
    native_kernels(arch, x[:2], progress=False)
    wall = cpu = np.inf
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        k = native_kernels(arch, x, threads=threads, progress=False)
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    return k, wall, cpu


@SCRIPT.main
def main(run) -> dict:
    side, n, reps = (12, 6, 1) if run.args.size == "tiny" else (28, 32, 2)
    arch, dim = LeNet(), side * side
    x = np.random.default_rng(0).standard_normal((n, dim))
    out: dict = {"image_side": side, "n": n, "cores": os.cpu_count(),
                 "load_avg": os.getloadavg()[0]}
    kernels = {}
    for mode in ("full", "band"):
        with banding(mode == "band"):
            assert native_plan(arch, dim).banded == (mode == "band")
            for threads in (1, None):
                k, wall, cpu = timed(arch, x, threads, reps)
                key = f"{mode}_{'1thread' if threads == 1 else 'all_cores'}"
                out[f"{key}_wall_seconds"], out[f"{key}_cpu_seconds"] = wall, cpu
            kernels[mode] = k
            out[f"{mode}_memory_estimate_bytes"] = native_memory_estimate(arch, n, None, dim)
            out[f"{mode}_memory_estimate_tile1_bytes"] = native_memory_estimate(
                arch, n, None, dim, tile=1)
    for key in ("1thread", "all_cores"):
        for clock in ("wall", "cpu"):
            out[f"ratio_{key}_{clock}"] = (out[f"full_{key}_{clock}_seconds"]
                                           / out[f"band_{key}_{clock}_seconds"])
    out["max_rel_diff"] = max(float(np.abs(kernels["band"][k] - kernels["full"][k]).max()
                                    / np.abs(kernels["full"][k]).max()) for k in ("nngp", "ntk"))
    run.write_json(out, "band_speed.json")
    for key in ("1thread", "all_cores"):
        print(f"{key:9s}: full {out[f'full_{key}_wall_seconds']:.2f} s, band "
              f"{out[f'band_{key}_wall_seconds']:.2f} s wall ({out[f'ratio_{key}_wall']:.1f}×); "
              f"CPU {out[f'ratio_{key}_cpu']:.1f}×")
    mib = 2.0**20
    print(f"memory estimate: full {out['full_memory_estimate_bytes'] / mib:.1f} MiB, band "
          f"{out['band_memory_estimate_bytes'] / mib:.1f} MiB (auto tile); one pair per tile "
          f"{out['full_memory_estimate_tile1_bytes'] / mib:.1f} vs "
          f"{out['band_memory_estimate_tile1_bytes'] / mib:.1f} MiB; "
          f"max relative difference {out['max_rel_diff']:.1e}")
    return out


if __name__ == "__main__":
    main()
