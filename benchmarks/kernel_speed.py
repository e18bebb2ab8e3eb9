"""Time ``iw.kernel`` (both kinds, one pass) against neural-tangents' own ``kernel_fn``, and
against the machine: GFLOP/s from the engine's cost model and the share of the matmul rate.

For each case, in one process: ``iw.kernel(arch, x, kind=("nngp", "ntk"))`` (the native
engine) after a warm-up call, against neural-tangents' ``kernel_fn(x, None, ("nngp", "ntk"))``
jitted and called after a warm-up call (so compilation is excluded), each the fastest of 3
calls when one takes under 5 s (else one call), both at N inputs (column ``n``). The engine's
timings of a case all come before neural-tangents' (which frees GBs and leaves XLA's threads
behind: the engine ran up to 1.3× slower right after it), 3 s after the previous case's.
Reported: the ratio; each one's activation elements per second against numpy's float64
``arccos`` rate measured in the same run; and the engine's memory estimate against the peak it
measured (tracemalloc of the numpy path; RSS growth beside it), with neural-tangents' RSS
growth. The largest relative difference of the two results is printed too (neural-tangents'
relu diagonal carries a √ε error).

Against the machine, at ``n_throughput`` inputs (the 28×28 cases time iw alone at a larger N
than neural-tangents can hold; elsewhere ``n_throughput = n``): pairs/s (n(n + 1)/2 pairs of
the symmetric Gram), GFLOP/s and GB/s of the cost model (``iw.kernel_cost``: flops as counted
there, bytes as the CPU engine moves them), and ``fraction_of_matmul`` = GFLOP/s ÷ the
matrix-multiply rate in ``--dtype`` (float64 by default) measured in the same run: numpy
3000×3000 (1000 with --tiny), best of 5, 2 BLAS threads, in a subprocess whose environment
drops ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` (OpenBLAS's own kernel for the CPU); the
rate with the environment as set is measured beside it for reference, and the summary names
both BLAS kernels. With ``--backend jax`` on an accelerator the rate is that of a jax matmul on
the device (8192², in ``--dtype``) instead. On every GAP and Myrtle case, at ``n_throughput``:
one thread against two (``native_kernels(threads=)``, CPU backends) and float32 against
float64 (speed ratio and the largest elementwise relative difference of the two Grams).

Cases (the native-engine issue's table and issue 23's): ConvNet Flatten 2-D 28×28 depth 3
SAME; ConvNet GAP 1-D d = 64 depth 3 circular; ConvNet GAP 2-D 14×14 depth 2 circular;
ConvNet GAP 2-D 28×28 depth 2 circular (neural-tangents at N = 11: ~45 MiB of its working set
per pair, measured, so about 5 GiB; iw alone at N = 64); 2-D D-CNNs on 28×28 and 32×32; an
MLP at N = 2000; Myrtle-5 on 16×16 images; Myrtle-5 on 28×28 (N = 14 for neural-tangents,
~28 MiB per pair; N = 64 for iw). ``--quick`` uses smaller N, ``--tiny`` two cases at
smoke-test size. ``--backend`` picks the native engine's backend (default: numba on a CPU,
jax on an accelerator) and ``--dtype`` the working dtype of both engines.

Each case is a unit committed to <out>/runs.sqlite: a rerun reuses the stored measurements
(and says so; --fresh measures all again). Measured columns carry "seconds"/"time"/"runtime"
in their names.

    python benchmarks/kernel_speed.py [--quick | --tiny] [--only NAME ...]
        [--backend numba|numpy|jax] [--dtype float64|float32] [--out DIR] [--fresh]
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.architectures.myrtle import Myrtle
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json
from infwidth.io.scripts import reset_peak_rss, rss_kib
from infwidth.kernels.native import (
    NATIVE_BACKENDS,
    default_backend,
    native_kernels,
    native_memory_estimate,
    native_plan,
)
from infwidth.validation import DTYPES

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


_MATMUL = """
import json, sys, time
import numpy as np
n, reps, dtype = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = np.random.default_rng(0)
a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
a @ b
best = float("inf")
for _ in range(reps):
    t = time.perf_counter()
    a @ b
    best = min(best, time.perf_counter() - t)
try:
    import threadpoolctl
    kernel = ",".join(sorted({str(i.get("architecture")) for i in threadpoolctl.threadpool_info()
                              if i.get("user_api") == "blas"})) or "unknown"
except ImportError:
    kernel = "unknown"
print(json.dumps({"gflops": 2 * n ** 3 / best / 1e9, "kernel": kernel}))
"""


def matmul_rate(n: int = 3000, reps: int = 5, threads: int = 2, own_kernel: bool = True,
                dtype: str = "float64") -> tuple[float, str]:
    """(GFLOP/s, BLAS kernel) of numpy's ``n``×``n`` matmul in ``dtype``, best of ``reps``, on
    ``threads`` BLAS threads, in a fresh interpreter; ``own_kernel`` drops
    ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` from its environment (OpenBLAS then picks
    its own kernel for the CPU), else the environment stays as set."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    if own_kernel:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    r = subprocess.run([sys.executable, "-c", _MATMUL, str(n), str(reps), dtype], env=env,
                       capture_output=True, text=True, timeout=600, check=True)
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return out["gflops"], out["kernel"]


def device_matmul_rate(dtype: str, n: int = 8192, reps: int = 5) -> tuple[float, str]:
    """(GFLOP/s, device) of a jitted jax ``n``×``n`` matmul in ``dtype`` on the default
    device, best of ``reps``."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype=dtype)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        jax.block_until_ready(f(a))
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9, f"{jax.devices()[0].device_kind} (jax, {jnp.dtype(dtype)})"


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


@dataclass(frozen=True)
class Case:
    """One benchmark case: neural-tangents and iw at ``n`` inputs, iw alone at ``n_thr``
    (the throughput columns); ``extras``: threads and float32 too (GAP and Myrtle)."""

    name: str
    arch: Any
    n: int
    dim: int
    n_thr: int
    extras: bool


def cases(size: str) -> list[Case]:
    """The run's cases at its size."""
    gap = dict(readout="gap")
    # name, architecture, dim, (N, N quick), (iw-alone N, quick) or None: the same N, extras
    full = [
        ("convnet-flatten-2d-28-d3-same", iw.ConvNet(depth=3, padding="same", ndim=2), 784,
         (256, 64), None, False),
        ("convnet-gap-1d-64-d3-circ", iw.ConvNet(depth=3, **gap), 64, (128, 32), None, True),
        ("convnet-gap-2d-14-d2-circ", iw.ConvNet(depth=2, ndim=2, **gap), 196, (64, 16), None,
         True),
        ("convnet-gap-2d-28-d2-circ", iw.ConvNet(filter_size=3, depth=2, ndim=2, **gap), 784,
         (11, 6), (64, 16), True),
        ("dcnn-2d-28-p4-f7", iw.DCNN(patch_dim=4, filter_sizes=(7,), ndim=2), 784, (512, 128),
         None, False),
        ("dcnn-2d-32-p2-f222", iw.DCNN(patch_dim=2, filter_sizes=(2, 2, 2), ndim=2), 1024,
         (512, 128), None, False),
        ("mlp-d3-784", iw.MLP(depth=3), 784, (2000, 500), None, False),
        ("myrtle5-2d-16", Myrtle(depth=5, ndim=2), 256, (32, 8), None, True),
        ("myrtle5-2d-28", Myrtle(depth=5, ndim=2), 784, (14, 8), (64, 16), True),
    ]
    if size == "tiny":
        return [Case("convnet-gap-1d-16-d2-circ", iw.ConvNet(depth=2, **gap), 12, 16, 12, True),
                Case("dcnn-1d-16-p2-f22", iw.DCNN(patch_dim=2, filter_sizes=(2, 2)), 24, 16, 24,
                     False)]
    k = 1 if size == "quick" else 0
    return [Case(name, arch, ns[k], dim, (thr or ns)[k], extras)
            for name, arch, dim, ns, thr, extras in full]


# Seconds between a neural-tangents run and the engine's next timing: right after the 28×28
# GAP kernel of neural-tangents (N = 11, ~5 GB freed) the engine's best of 3 took 1.62 s in
# the same process, 1.22 s three seconds later (2026-12-07, 2 cores).
_SETTLE = 3.0


def measure(case: Case, backend: str, dtype: str, rate: float, matmul: float,
            settle: float = 0.0) -> dict:
    """One case: ``iw.kernel`` against neural-tangents (one jitted call, both kinds) at
    ``case.n`` (``rate``: numpy's ``arccos`` elements/s); iw against the cost model and
    ``matmul`` (GFLOP/s) at ``case.n_thr``. ``settle``: seconds to wait first (a
    neural-tangents run of this process came before)."""
    import jax

    arch, n, dim, n_thr = case.arch, case.n, case.dim, case.n_thr
    x_all = iw.sample_inputs("sphere", max(n, n_thr), dim, seed=0)
    x, xt = x_all[:n], x_all[:n_thr]

    def ours(xx, dt=dtype, **kw):
        if kw:  # threads: the engine's own argument
            return native_kernels(arch, xx, kinds=KINDS, dtype=dt, backend=backend,
                                  progress=False, **kw)
        return iw.kernel(arch, xx, kind=KINDS, dtype=dt, backend=backend, progress=False)

    time.sleep(settle)
    ours(x if backend == "jax" else x[: min(n, 4)])  # warm-up (imports, compiled loops)
    reset_peak_rss()
    base = rss_kib("VmRSS:")
    t_iw, res = best_of(lambda: ours(x))
    rss = max(rss_kib("VmHWM:") - base, 0) / 1024
    tracemalloc.start()
    ours(x)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    est = native_memory_estimate(arch, n, None, dim, KINDS, dtype) / 2**20
    el = act_elements(arch, n, dim)
    out = dict(n_throughput=n_thr, iw_seconds=t_iw, iw_melem_per_second=el / t_iw / 1e6,
               arccos_melem_per_second_runtime=rate / 1e6,
               iw_time_share_of_arccos=el / t_iw / rate,
               estimate_mib=est, tracemalloc_runtime_peak_mib=peak, rss_runtime_peak_mib=rss)
    out.update(_throughput(case, ours, xt, t_iw, res, backend, dtype, matmul))
    xs = jax.numpy.asarray(x.reshape((n,) + arch.input_shape(dim)).astype(dtype))
    kfn = arch.stax[2]
    direct = jax.jit(lambda a, kfn=kfn: kfn(a, None, KINDS))
    base = rss_kib("VmRSS:")
    reset_peak_rss()
    jax.block_until_ready(direct(xs))  # warm-up: compile
    t_nt, ref = best_of(lambda: [np.asarray(k) for k in direct(xs)])
    nt_rss = max(rss_kib("VmHWM:") - base, 0) / 1024
    diff = max(float(np.max(np.abs(res[k] - r)) / np.max(np.abs(r))) for k, r in zip(KINDS, ref))
    out.update(nt_seconds=t_nt, time_ratio_nt_over_iw=t_nt / t_iw,
               nt_melem_per_second=el / t_nt / 1e6, nt_rss_runtime_peak_mib=nt_rss,
               max_rel_diff_runtime=diff)
    return out


def _throughput(case: Case, ours, xt, t_iw: float, res, backend: str, dtype: str,
                matmul: float) -> dict:
    """iw at ``case.n_thr`` against the cost model and ``matmul``; on the extras cases one
    thread against two and float32 against float64 (``res``: the kernels at ``case.n``)."""
    arch, n, dim, n_thr = case.arch, case.n, case.dim, case.n_thr
    out: dict = {}
    if backend == "jax" and n_thr != n:
        ours(xt)  # jax compiles per tile shape
    t_thr, k_thr = (t_iw, res) if n_thr == n else best_of(lambda: ours(xt))
    cost = iw.kernel_cost(arch, n_thr, dim=dim, kinds=KINDS, dtype=dtype)
    gflops = cost.flops / t_thr / 1e9
    out.update(cost_mflop_per_pair=cost.flops_per_pair / 1e6,
               cost_mbyte_per_pair=cost.bytes_per_pair / 1e6,
               iw_throughput_seconds=t_thr, pairs_per_second_runtime=cost.pairs / t_thr,
               gflop_per_second_runtime=gflops, gbyte_per_second_runtime=cost.bytes / t_thr / 1e9,
               matmul_gflop_per_second_runtime=matmul, fraction_of_matmul_runtime=gflops / matmul)
    if not case.extras:
        return out
    if backend != "jax":  # one tile thread against two
        t1, _ = best_of(lambda: ours(xt, threads=1))
        t2, _ = best_of(lambda: ours(xt, threads=2))
        out.update(iw_threads1_seconds=t1, iw_threads2_seconds=t2,
                   thread_scaling_runtime=t1 / t2)
    ours(xt if backend == "jax" else xt[:4], "float32")  # warm-up: float32 loops / traces
    if dtype == "float64":
        t64, k64 = t_thr, k_thr
    else:
        if backend == "jax":
            ours(xt, "float64")
        t64, k64 = best_of(lambda: ours(xt, "float64"))
    t32, k32 = best_of(lambda: ours(xt, "float32"))
    err = max(float(np.max(np.abs(k32[k] - k64[k]) / np.maximum(np.abs(k64[k]), 1e-300)))
              for k in KINDS)
    out.update(iw_float64_seconds=t64, iw_float32_seconds=t32,
               float32_speedup_runtime=t64 / t32, float32_max_rel_err_runtime=err)
    return out


SCRIPT = Script("kernel_speed", __doc__, out="results/kernel_speed",
                sizes={"quick": "smaller N", "tiny": "smoke test (seconds)"},
                options=(Option("--only", nargs="*", default=None,
                                help="case names (prefixes) to run"),
                         Option("--backend", choices=NATIVE_BACKENDS, default=None,
                                help="the native engine's backend (default: numba on a CPU, "
                                     "jax on an accelerator)"),
                         Option("--dtype", choices=DTYPES, default="float64",
                                help="working dtype of both engines")))


def machine_rates(size: str, backend: str, dtype: str) -> dict:
    """The matmul rate in ``dtype`` that ``fraction_of_matmul`` divides by (and on a CPU the
    rate with the environment's BLAS settings, for reference)."""
    import jax

    if backend == "jax" and jax.default_backend() != "cpu":
        rate, what = device_matmul_rate(dtype)
        return {"matmul_gflop_per_second_runtime": rate, "matmul_device": what}
    n = 1000 if size == "tiny" else 3000
    rate, kernel = matmul_rate(n, dtype=dtype)
    env_rate, env_kernel = matmul_rate(n, own_kernel=False, dtype=dtype)
    return {"matmul_gflop_per_second_runtime": rate,
            "matmul_env_gflop_per_second_runtime": env_rate,
            "matmul_device": f"CPU numpy {dtype} {n}² on 2 threads, OpenBLAS kernel {kernel} "
                             f"(environment as set: {env_kernel})"}


@SCRIPT.main
def main(run) -> pd.DataFrame:
    args, size, out = run.args, run.size, run.out
    backend = args.backend or default_backend()
    store = run.store(size=size, backend=backend, dtype=args.dtype)
    rate = arccos_rate()
    print(f"numpy float64 arccos: {rate / 1e6:.0f} M elements/s", flush=True)
    machine = machine_rates(size, backend, args.dtype)
    matmul = machine["matmul_gflop_per_second_runtime"]
    print(f"matmul: {matmul:.1f} GFLOP/s ({machine['matmul_device']})"
          + (f"; {machine['matmul_env_gflop_per_second_runtime']:.1f} with the environment as "
             f"set" if "matmul_env_gflop_per_second_runtime" in machine else ""), flush=True)
    rows, reused, nt_ran = [], 0, False
    for case in cases(size):
        if args.only and not any(case.name.startswith(o) for o in args.only):
            continue
        key = {"case": case.name, "n": case.n, "dim": case.dim}
        stored = key in store
        reused += stored
        settle = _SETTLE if nt_ran and size != "tiny" else 0.0
        r = {**key, **store.compute(key, lambda case=case, settle=settle: [
            measure(case, backend, args.dtype, rate, matmul, settle)])[0]}
        nt_ran = nt_ran or not stored
        rows.append(r)
        extra = ""
        if "thread_scaling_runtime" in r:
            extra += f"  2 threads ×{r['thread_scaling_runtime']:.2f}"
        if "float32_speedup_runtime" in r:
            extra += (f"  float32 ×{r['float32_speedup_runtime']:.2f} "
                      f"(err {r['float32_max_rel_err_runtime']:.1e})")
        print(f"{case.name:30s} N={case.n:5d}: NT {r['nt_seconds']:8.3f}s  iw "
              f"{r['iw_seconds']:7.3f}s  ×{r['time_ratio_nt_over_iw']:6.1f}  "
              f"{r['iw_melem_per_second']:6.0f} M el/s ({r['iw_time_share_of_arccos']:4.2f}× "
              f"arccos)  mem est {r['estimate_mib']:7.1f} MiB ≥ peak "
              f"{r['tracemalloc_runtime_peak_mib']:7.1f} MiB  diff "
              f"{r['max_rel_diff_runtime']:.1e}" + ("  [stored]" if stored else ""), flush=True)
        print(f"{'':30s} N={r['n_throughput']:5d}: {r['pairs_per_second_runtime']:8.1f} pairs/s"
              f"  {r['gflop_per_second_runtime']:6.2f} GFLOP/s "
              f"({100 * r['fraction_of_matmul_runtime']:.1f} % of matmul)  "
              f"{r['gbyte_per_second_runtime']:6.1f} GB/s{extra}", flush=True)
    df = pd.DataFrame(rows)
    write_csv(df, out / "kernel_speed.csv")
    summary = {"size": size, "backend": backend, "dtype": args.dtype, "cases": len(df),
               "timings_reused_from_store": reused, **machine,
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
