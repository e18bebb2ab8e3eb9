"""Small problems: ``iw.kernel``'s time per call against neural-tangents at N = 1 … 64.

At small N a call's cost is mostly fixed (validation, the plan, tile planning, the self pass,
Python per tile and per layer, the thread pool), not arithmetic. For each case and N, in one
process: neural-tangents' ``kernel_fn(x, None, ("nngp", "ntk"))`` jitted and called after a
warm-up call (compilation excluded), against ``iw.kernel(arch, x, kind=("nngp", "ntk"))``
(the native engine) after its own warm-up, each the fastest of repeated calls (at least 5
and 0.3 s of calls, fewer past 10 s); the ratio NT/iw (> 1: iw is faster); and the fixed
share, iw's time at N = 1 over its time at N (1 at N = 1; small when the arithmetic
dominates).

Cases: MLP depth 3 on 784 coordinates; ConvNet Flatten 1-D, d = 32, depth 3 (circular);
ConvNet GAP 1-D, d = 16, depth 2; ConvNet GAP 2-D 8×8, depth 2; Myrtle-5 and Myrtle-7 on
12×12×3 images; an erf ConvNet Flatten 2-D on 16×16×3, depth 3 (SAME). N = 1, 4, 16, 64
(``--quick``: 1, 4, 16; ``--tiny``: two small cases at N = 1, 4).

Each (case, N) is a unit committed to <out>/runs.sqlite: a rerun reuses the stored
measurements (--fresh measures all again). Measured columns carry "seconds"/"time" in their
names.

    python benchmarks/small_n.py [--quick | --tiny] [--only NAME ...] [--out DIR] [--fresh]
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.architectures.myrtle import Myrtle
from infwidth.io.harness import Option, Script

KINDS = ("nngp", "ntk")


def fastest(fn, budget: float = 0.3, least: int = 5, cap: float = 10.0,
            most: int = 200) -> float:
    """Seconds of the fastest call of ``fn``: calls go on until ``budget`` seconds are spent
    and ``least`` calls are made (the latter only while under ``cap`` seconds), at most
    ``most``."""
    times: list[float] = []
    while len(times) < most and (sum(times) < budget or
                                 (len(times) < least and sum(times) < cap)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def cases(size: str):
    """(name, architecture, dim, Ns) at the run's size."""
    if size == "tiny":
        return [("mlp-d2-16", iw.MLP(depth=2), 16, (1, 4)),
                ("convnet-gap-1d-8-d2", iw.ConvNet(depth=2, readout="gap"), 8, (1, 4))]
    ns = (1, 4, 16) if size == "quick" else (1, 4, 16, 64)
    return [(name, arch, dim, ns) for name, arch, dim in [
        ("mlp-d3-784", iw.MLP(depth=3), 784),
        ("convnet-flatten-1d-32-d3", iw.ConvNet(depth=3), 32),
        ("convnet-gap-1d-16-d2", iw.ConvNet(depth=2, readout="gap"), 16),
        ("convnet-gap-2d-8-d2", iw.ConvNet(depth=2, readout="gap", ndim=2), 64),
        ("myrtle5-12x12x3", Myrtle(depth=5, ndim=2, channels=3), 432),
        ("myrtle7-12x12x3", Myrtle(depth=7, ndim=2, channels=3), 432),
        ("erf-flatten-2d-16x16x3-d3", iw.ConvNet(depth=3, ndim=2, channels=3,
                                                 activation="erf", padding="same"), 768),
    ]]


def measure(arch, n: int, dim: int) -> dict:
    """One (case, N): neural-tangents (one jitted call, both kinds) against ``iw.kernel``."""
    import jax

    x = iw.sample_inputs("sphere", n, dim, seed=0)
    xs = jax.numpy.asarray(x.reshape((n,) + arch.input_shape(dim)))
    kfn = arch.stax[2]
    direct = jax.jit(lambda a, kfn=kfn: kfn(a, None, KINDS))
    ref = [np.asarray(k) for k in direct(xs)]  # warm-up: compile
    t_nt = fastest(lambda: [np.asarray(k) for k in direct(xs)])
    res = iw.kernel(arch, x, kind=KINDS)  # warm-up (imports, compiled loops, plan)
    t_iw = fastest(lambda: iw.kernel(arch, x, kind=KINDS))
    diff = max(float(np.max(np.abs(res[k] - r)) / np.max(np.abs(r)))
               for k, r in zip(KINDS, ref))
    return dict(nt_seconds=t_nt, iw_seconds=t_iw, time_ratio_nt_over_iw=t_nt / t_iw,
                max_rel_diff_runtime=diff)


SCRIPT = Script("small_n", __doc__, out="results/small_n",
                sizes={"quick": "N up to 16", "tiny": "smoke test (seconds)"},
                options=(Option("--only", nargs="*", default=None,
                                help="case names (prefixes) to run"),))


@SCRIPT.main
def main(run) -> pd.DataFrame:
    args, size = run.args, run.size
    store = run.store(size=size)
    rows, reused = [], 0
    for name, arch, dim, ns in cases(size):
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        for n in ns:
            key = {"case": name, "n": n, "dim": dim}
            stored = key in store
            reused += stored
            r = {**key, **store.compute(key, lambda arch=arch, n=n, dim=dim: [
                measure(arch, n, dim)])[0]}
            one = next(q["iw_seconds"] for q in rows + [r] if q["case"] == name)
            r["iw_n1_time_share"] = one / r["iw_seconds"]  # N = 1 runs first in each case
            rows.append(r)
            print(f"{name:27s} N={n:3d}: NT {r['nt_seconds'] * 1e3:9.3f} ms  iw "
                  f"{r['iw_seconds'] * 1e3:9.3f} ms  ×{r['time_ratio_nt_over_iw']:6.2f}  "
                  f"fixed share {r['iw_n1_time_share']:4.2f}  "
                  f"diff {r['max_rel_diff_runtime']:.1e}" + ("  [stored]" if stored else ""),
                  flush=True)
    df = pd.DataFrame(rows)
    run.write_csv(df, "small_n.csv")
    big = df[df.n >= 16] if len(df) else df
    summary = {"size": size, "cases": int(df.case.nunique()) if len(df) else 0,
               "cpus": os.cpu_count(), "timings_reused_from_store": reused,
               "min_time_ratio_nt_over_iw_n16_64": float(big.time_ratio_nt_over_iw.min())
               if len(big) else None,
               "slower_than_nt_time_n16_64": [f"{c} N={n}" for c, n, q in zip(
                   big.case, big.n, big.time_ratio_nt_over_iw) if q < 1] if len(big) else []}
    run.write_json({"summary": summary, "cases": rows}, "small_n.json")
    print(json.dumps(summary, indent=2))
    return df


if __name__ == "__main__":
    main()
