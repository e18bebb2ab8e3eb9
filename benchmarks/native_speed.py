"""Time the native engine against neural-tangents' own ``kernel_fn``, both kinds, one process.

For each case: raw neural-tangents (``jax.jit`` of ``kernel_fn(x, None, ("nngp", "ntk"))``,
one call, after a warm-up call that compiles it) against
``infwidth.kernels.native.native_kernels(arch, x)`` (both kinds), their ratio, each engine's
rate in activation elements per second (the dual evaluations the native engine performs:
Σ over activations of positions (Flatten) or position pairs (GAP/pooling), times the pairs of
inputs of one triangle) beside numpy's float64 ``arccos`` rate measured in the same run, and
the native engine's estimated vs measured peak memory (tracemalloc, numpy's own arrays; and
the peak RSS it added). ``--quick`` uses smaller N.

    python benchmarks/native_speed.py [--quick] [--only NAME ...] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.architectures.myrtle import Myrtle
from infwidth.io.outputs import write_csv, write_json
from infwidth.io.scripts import reset_peak_rss, rss_kib
from infwidth.kernels.native import native_kernels, native_memory_estimate, native_plan


def arccos_rate(n: int = 2**22, reps: int = 5) -> float:
    """numpy float64 arccos, elements per second (best of ``reps``)."""
    c = np.random.default_rng(0).uniform(-1, 1, n)
    out = np.empty_like(c)
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        np.arccos(c, out=out)
        best = min(best, time.perf_counter() - t)
    return n / best


def act_elements(arch, n: int, dim: int) -> int:
    """Activation (dual) evaluations of one symmetric Gram: Σ_act per-pair size × n(n+1)/2."""
    per_pair = sum(math.prod(st[2]) ** (2 if st[3] else 1)
                   for st in native_plan(arch, dim).steps if st[0] == "act")
    return per_pair * n * (n + 1) // 2


def cases(quick: bool):
    """(name, arch, n, dim, n_quick)."""
    yield ("convnet-flatten-2d-28-d3-same", iw.ConvNet(depth=3, padding="same", ndim=2),
           256, 784, 64)
    yield ("convnet-gap-1d-64-d3-circ", iw.ConvNet(depth=3, readout="gap"), 128, 64, 32)
    yield ("convnet-gap-2d-14-d2-circ", iw.ConvNet(depth=2, readout="gap", ndim=2), 64, 196, 16)
    yield ("dcnn-2d-28-p4-f7", iw.DCNN(patch_dim=4, filter_sizes=(7,), ndim=2), 512, 784, 128)
    yield ("dcnn-2d-32-p2-f222", iw.DCNN(patch_dim=2, filter_sizes=(2, 2, 2), ndim=2), 512,
           1024, 128)
    yield "mlp-d3-784", iw.MLP(depth=3), 2000, 784, 500
    yield "myrtle5-2d-16", Myrtle(depth=5, ndim=2), 32, 256, 8


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller N")
    ap.add_argument("--only", nargs="*", default=None, help="case names (prefixes) to run")
    ap.add_argument("--out", default="results/native_speed", help="output folder")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import jax

    rate = arccos_rate()
    print(f"numpy float64 arccos: {rate / 1e6:.0f} M elements/s", flush=True)
    rows = []
    for name, arch, n, dim, n_quick in cases(args.quick):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        n = n_quick if args.quick else n
        x = iw.sample_inputs("sphere", n, dim, seed=0)
        xs = jax.numpy.asarray(x.reshape((n,) + arch.input_shape(dim)))
        kfn = arch.stax[2]
        direct = jax.jit(lambda a, kfn=kfn: kfn(a, None, ("nngp", "ntk")))
        jax.block_until_ready(direct(xs))  # warm-up: compile
        t = time.perf_counter()
        ref = [np.asarray(k) for k in direct(xs)]
        t_nt = time.perf_counter() - t
        native_kernels(arch, x[: min(n, 4)])  # warm-up (imports, thread pool)
        reset_peak_rss()
        base = rss_kib("VmRSS:")
        t = time.perf_counter()
        res = native_kernels(arch, x)
        t_nv = time.perf_counter() - t
        rss = max(rss_kib("VmHWM:") - base, 0) / 1024
        tracemalloc.start()
        native_kernels(arch, x)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        est = native_memory_estimate(arch, n, None, dim) / 2**20
        err = max(float(np.max(np.abs(res[k] - r)) / np.max(np.abs(r)))
                  for k, r in zip(("nngp", "ntk"), ref))
        el = act_elements(arch, n, dim)
        row = dict(case=name, n=n, dim=dim, nt_seconds=t_nt, native_seconds=t_nv,
                   speedup=t_nt / t_nv, native_melem_s=el / t_nv / 1e6,
                   nt_melem_s=el / t_nt / 1e6, arccos_melem_s=rate / 1e6,
                   native_over_arccos=el / t_nv / rate, estimate_mib=est,
                   tracemalloc_peak_mib=peak, rss_peak_mib=rss, max_rel_diff=err)
        rows.append(row)
        print(f"{name:30s} N={n:5d}: NT {t_nt:8.3f}s  native {t_nv:7.3f}s  ×{t_nt / t_nv:6.1f}"
              f"  {el / t_nv / 1e6:6.0f} M el/s ({el / t_nv / rate:4.2f}× arccos)"
              f"  mem est {est:7.1f} MiB ≥ peak {peak:7.1f} MiB (RSS +{rss:6.1f})"
              f"  diff {err:.1e}", flush=True)
    df = pd.DataFrame(rows)
    write_csv(df, out / "native_speed.csv")
    summary = {"arccos_melem_s": rate / 1e6, "quick": args.quick,
               "min_speedup": float(df.speedup.min()) if len(df) else None,
               "estimate_covers_peak": bool((df.estimate_mib >= df.tracemalloc_peak_mib).all())
               if len(df) else None}
    write_json({"summary": summary, "cases": rows}, out / "native_speed.json")
    print(json.dumps(summary, indent=2))
    return df


if __name__ == "__main__":
    main()
