"""Time ``iw.kernel`` against neural-tangents' own ``kernel_fn`` in the same process.

Cases: Flatten and GAP ConvNets and a DCNN, at several N and spatial sizes, float32 and
float64. For each case: wall time of both (after one warm-up call each, so compilation is
excluded), their ratio, the peak resident memory each added (Linux VmHWM, reset between
calls through /proc/self/clear_refs), and infwidth's memory estimate beside it.

Each case × dtype is a unit committed to <out>/runs.sqlite: a rerun reuses the stored
measurements (and says so; --fresh measures all again). Measured columns (seconds, their
ratio, peak runtime memory) carry "seconds"/"time"/"runtime" in their names.

    python benchmarks/kernel_speed.py [--quick | --tiny] [--out DIR] [--fresh]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.io.outputs import write_csv, write_json
from infwidth.io.scripts import open_run_store, reset_peak_rss, rss_kib
from infwidth.kernels.engine import DTYPES, estimate_block_memory


def _measure(fn) -> tuple[float, float]:
    """(seconds, MiB of peak RSS above the RSS at the start)."""
    reset_peak_rss()
    base = rss_kib("VmRSS:")
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    return dt, max(rss_kib("VmHWM:") - base, 0) / 1024


def cases(quick: bool, tiny: bool = False):
    if tiny:  # smoke test (seconds): the resume tests
        yield "convnet-flatten", iw.ConvNet(filter_size=3, depth=3, readout="flatten"), 16, 16
        yield "dcnn", iw.DCNN(patch_dim=4, filter_sizes=(4, 4)), 16, 256
        return
    ns = (64,) if quick else (64, 256)
    for n in ns:
        for p in ((16,) if quick else (16, 64)):
            yield "convnet-flatten", iw.ConvNet(filter_size=3, depth=3, readout="flatten"), n, p
            if n * p <= 64 * 64:  # GAP is O(N²P²): the direct, unblocked call must fit in RAM
                yield "convnet-gap", iw.ConvNet(filter_size=3, depth=3, readout="gap"), n, p
        for dim in ((256,) if quick else (256, 1024)):
            yield "dcnn", iw.DCNN(patch_dim=4, filter_sizes=(4, 4)), n, dim


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    size_group = ap.add_mutually_exclusive_group()
    size_group.add_argument("--quick", action="store_true", help="fewer, smaller cases")
    size_group.add_argument("--tiny", action="store_true", help="smoke test (seconds)")
    ap.add_argument("--out", default="results/kernel_speed", help="output folder")
    ap.add_argument("--fresh", action="store_true", help="forget stored measurements")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = open_run_store(out / "runs.sqlite", "kernel_speed",
                           {"size": "tiny" if args.tiny else "quick" if args.quick else "full",
                            "kind": "ntk", "inputs": "sphere", "seed": 0}, args.fresh)

    rows, reused = [], 0
    for name, arch, n, size in cases(args.quick, args.tiny):
        for dtype in ("float64", "float32"):
            def measure(arch=arch, n=n, size=size, dtype=dtype) -> list[dict]:
                """One timed case (a unit)."""
                import jax

                x = iw.sample_inputs("sphere", n, size, seed=0)
                xs = x.reshape((n,) + arch.input_shape(size)).astype(dtype)
                kfn = arch.stax[2]
                direct = jax.jit(lambda a: kfn(a, None, "ntk"))
                direct(xs).block_until_ready()  # compile
                iw.kernel(arch, x, kind="ntk", dtype=dtype, progress=False)  # compile
                t_nt, m_nt = _measure(lambda: np.asarray(direct(xs)))
                t_iw, m_iw = _measure(lambda: iw.kernel(arch, x, kind="ntk", dtype=dtype,
                                                        progress=False))
                est = estimate_block_memory(arch, n, n, size, "ntk", dtype) / 2**20
                return [dict(nt_seconds=t_nt, iw_seconds=t_iw, time_ratio_iw_over_nt=t_iw / t_nt,
                             nt_runtime_peak_mib=m_nt, iw_runtime_peak_mib=m_iw,
                             iw_estimate_mib=est)]

            key = dict(case=name, n=n, positions=size, dtype=dtype)
            stored = key in store
            reused += stored
            r = {**key, **store.compute(key, measure)[0]}
            rows.append(r)
            print(f"{name:16s} n={n:4d} P={size:5d} {dtype}: nt {r['nt_seconds']:7.3f}s  iw "
                  f"{r['iw_seconds']:7.3f}s  ratio {r['time_ratio_iw_over_nt']:5.2f}  peak nt "
                  f"{r['nt_runtime_peak_mib']:7.1f} MiB  iw {r['iw_runtime_peak_mib']:7.1f} MiB"
                  f"  (estimate {r['iw_estimate_mib']:7.1f} MiB)"
                  + ("  [stored]" if stored else ""), flush=True)
    df = pd.DataFrame(rows)
    write_csv(df, out / "kernel_speed.csv")
    summary = {"median_time_ratio_iw_over_nt": float(df.time_ratio_iw_over_nt.median()),
               "f32_over_f64_time": float(
                   df[df.dtype == "float32"].iw_seconds.sum()
                   / df[df.dtype == "float64"].iw_seconds.sum()),
               "dtypes": list(DTYPES), "timings_reused_from_store": reused}
    write_json(summary, out / "kernel_speed.json")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(json.dumps(summary, indent=2))
    if reused:
        print(f"{reused} of {len(rows)} cases: measurements reused from {out}/runs.sqlite "
              f"([stored] above; --fresh measures all again)")
    return df


if __name__ == "__main__":
    main()
