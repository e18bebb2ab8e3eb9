"""Time ``iw.kernel`` (both kinds, one pass) against neural-tangents' own ``kernel_fn``.

For each case, in one process: neural-tangents' ``kernel_fn(x, None, ("nngp", "ntk"))``
jitted and called after a warm-up call (so compilation is excluded), against
``iw.kernel(arch, x, kind=("nngp", "ntk"))`` (the native engine) after its own warm-up, each
the fastest of 3 calls when one takes under 5 s (else one call); the
ratio; each one's activation elements per second against numpy's float64 ``arccos`` rate
measured in the same run; and the engine's memory estimate against the peak it measured
(tracemalloc of the numpy path; RSS growth beside it). The largest relative difference of
the two results is printed too (neural-tangents' relu diagonal carries a √ε error).

Cases (the native-engine issue's table): ConvNet Flatten 2-D 28×28 depth 3 SAME; ConvNet GAP
1-D d = 64 depth 3 circular; ConvNet GAP 2-D 14×14 depth 2 circular; 2-D D-CNNs on 28×28 and
32×32; an MLP at N = 2000; Myrtle-5 on 16×16 images. ``--quick`` uses smaller N, ``--tiny``
two cases at smoke-test size.

Each case is a unit committed to <out>/runs.sqlite: a rerun reuses the stored measurements
(and says so; --fresh measures all again). Measured columns carry "seconds"/"time"/"runtime"
in their names.

    python benchmarks/kernel_speed.py [--quick | --tiny] [--only NAME ...] [--out DIR] [--fresh]
"""

from __future__ import annotations

import json
import math
import time
import tracemalloc

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.architectures.myrtle import Myrtle
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json
from infwidth.io.scripts import reset_peak_rss, rss_kib
from infwidth.kernels.native import native_memory_estimate, native_plan

KINDS = ("nngp", "ntk")


def arccos_rate(n: int = 2**22, reps: int = 5) -> float:
    """numpy's float64 ``arccos`` throughput (elements/s), best of ``reps``, in place."""
    x = np.random.default_rng(0).uniform(-1, 1, n)
    out = np.empty_like(x)
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        np.arccos(x, out=out)
        best = min(best, time.perf_counter() - t)
    return n / best


def best_of(fn, short: float = 5.0, reps: int = 3):
    """(seconds, result) of ``fn``: the fastest of ``reps`` calls when a call takes under
    ``short`` seconds (one call otherwise); the same rule for both engines."""
    t = time.perf_counter()
    out = fn()
    best = time.perf_counter() - t
    for _ in range(reps - 1 if best < short else 0):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def act_elements(arch, n: int, dim: int) -> int:
    """Activation (dual) evaluations of one symmetric Gram: Σ_act per-pair size × n(n+1)/2."""
    per_pair = sum(math.prod(st[2]) ** (2 if st[3] else 1)
                   for st in native_plan(arch, dim).steps if st[0] == "act")
    return per_pair * n * (n + 1) // 2


def cases(size: str):
    """(name, architecture, N, dim) at the run's size."""
    full = [
        ("convnet-flatten-2d-28-d3-same", iw.ConvNet(depth=3, padding="same", ndim=2), 256, 784,
         64),
        ("convnet-gap-1d-64-d3-circ", iw.ConvNet(depth=3, readout="gap"), 128, 64, 32),
        ("convnet-gap-2d-14-d2-circ", iw.ConvNet(depth=2, readout="gap", ndim=2), 64, 196, 16),
        ("dcnn-2d-28-p4-f7", iw.DCNN(patch_dim=4, filter_sizes=(7,), ndim=2), 512, 784, 128),
        ("dcnn-2d-32-p2-f222", iw.DCNN(patch_dim=2, filter_sizes=(2, 2, 2), ndim=2), 512, 1024,
         128),
        ("mlp-d3-784", iw.MLP(depth=3), 2000, 784, 500),
        ("myrtle5-2d-16", Myrtle(depth=5, ndim=2), 32, 256, 8),
    ]
    if size == "tiny":
        return [("convnet-gap-1d-16-d2-circ", iw.ConvNet(depth=2, readout="gap"), 12, 16),
                ("dcnn-1d-16-p2-f22", iw.DCNN(patch_dim=2, filter_sizes=(2, 2)), 24, 16)]
    return [(name, arch, nq if size == "quick" else n, dim)
            for name, arch, n, dim, nq in full]


def measure(arch, n: int, dim: int, rate: float) -> dict:
    """One case: neural-tangents (one jitted call, both kinds) against ``iw.kernel``."""
    import jax

    x = iw.sample_inputs("sphere", n, dim, seed=0)
    xs = jax.numpy.asarray(x.reshape((n,) + arch.input_shape(dim)))
    kfn = arch.stax[2]
    direct = jax.jit(lambda a, kfn=kfn: kfn(a, None, KINDS))
    jax.block_until_ready(direct(xs))  # warm-up: compile
    t_nt, ref = best_of(lambda: [np.asarray(k) for k in direct(xs)])
    iw.kernel(arch, x[: min(n, 4)], kind=KINDS)  # warm-up (imports, compiled loops)
    reset_peak_rss()
    base = rss_kib("VmRSS:")
    t_iw, res = best_of(lambda: iw.kernel(arch, x, kind=KINDS))
    rss = max(rss_kib("VmHWM:") - base, 0) / 1024
    tracemalloc.start()
    iw.kernel(arch, x, kind=KINDS)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    est = native_memory_estimate(arch, n, None, dim) / 2**20
    diff = max(float(np.max(np.abs(res[k] - r)) / np.max(np.abs(r))) for k, r in zip(KINDS, ref))
    el = act_elements(arch, n, dim)
    return dict(nt_seconds=t_nt, iw_seconds=t_iw, time_ratio_nt_over_iw=t_nt / t_iw,
                iw_melem_per_second=el / t_iw / 1e6, nt_melem_per_second=el / t_nt / 1e6,
                arccos_melem_per_second_runtime=rate / 1e6,
                iw_time_share_of_arccos=el / t_iw / rate, estimate_mib=est,
                tracemalloc_runtime_peak_mib=peak, rss_runtime_peak_mib=rss,
                max_rel_diff_runtime=diff)


SCRIPT = Script("kernel_speed", __doc__, out="results/kernel_speed",
                sizes={"quick": "smaller N", "tiny": "smoke test (seconds)"},
                options=(Option("--only", nargs="*", default=None,
                                help="case names (prefixes) to run"),))


@SCRIPT.main
def main(run) -> pd.DataFrame:
    args, size, out = run.args, run.size, run.out
    store = run.store(size=size)
    rate = arccos_rate()
    print(f"numpy float64 arccos: {rate / 1e6:.0f} M elements/s", flush=True)
    rows, reused = [], 0
    for name, arch, n, dim in cases(size):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        key = {"case": name, "n": n, "dim": dim}
        stored = key in store
        reused += stored
        r = {**key, **store.compute(key, lambda arch=arch, n=n, dim=dim: [
            measure(arch, n, dim, rate)])[0]}
        rows.append(r)
        print(f"{name:30s} N={n:5d}: NT {r['nt_seconds']:8.3f}s  iw {r['iw_seconds']:7.3f}s  "
              f"×{r['time_ratio_nt_over_iw']:6.1f}  {r['iw_melem_per_second']:6.0f} M el/s "
              f"({r['iw_time_share_of_arccos']:4.2f}× arccos)  mem est {r['estimate_mib']:7.1f}"
              f" MiB ≥ peak {r['tracemalloc_runtime_peak_mib']:7.1f} MiB  "
              f"diff {r['max_rel_diff_runtime']:.1e}" + ("  [stored]" if stored else ""),
              flush=True)
    df = pd.DataFrame(rows)
    write_csv(df, out / "kernel_speed.csv")
    summary = {"size": size, "cases": len(df), "timings_reused_from_store": reused,
               "min_time_ratio_nt_over_iw": float(df.time_ratio_nt_over_iw.min())
               if len(df) else None,
               "estimate_covers_runtime_peak": bool(
                   (df.estimate_mib >= df.tracemalloc_runtime_peak_mib).all()) if len(df)
               else None}
    write_json({"summary": summary, "cases": rows}, out / "kernel_speed.json")
    print(json.dumps(summary, indent=2))
    if reused:
        print(f"({reused} of {len(df)} cases were reused from {out / 'runs.sqlite'}; "
              f"[stored] above; --fresh measures all again)")
    return df


if __name__ == "__main__":
    main()
