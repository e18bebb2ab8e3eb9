"""Time ``iw.kernel`` against neural-tangents' own ``kernel_fn`` in the same process.

Cases: Flatten and GAP ConvNets and a DCNN, at several N and spatial sizes, float32 and
float64. For each case: wall time of both (after one warm-up call each, so compilation is
excluded), their ratio, the peak resident memory each added (Linux VmHWM, reset between
calls through /proc/self/clear_refs), and infwidth's memory estimate beside it.

    python benchmarks/kernel_speed.py [--quick] [--out DIR]
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
from infwidth.kernels.engine import DTYPES, estimate_block_memory


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _measure(fn) -> tuple[float, float]:
    """(seconds, MiB of peak RSS above the RSS at the start)."""
    _reset_peak()
    base = _rss_kib("VmRSS:")
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    return dt, max(_rss_kib("VmHWM:") - base, 0) / 1024


def cases(quick: bool):
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
    ap.add_argument("--quick", action="store_true", help="fewer, smaller cases")
    ap.add_argument("--out", default="results/kernel_speed", help="output folder")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    rows = []
    for name, arch, n, size in cases(args.quick):
        for dtype in ("float64", "float32"):
            x = iw.sample_inputs("sphere", n, size, seed=0)
            xs = x.reshape((n,) + arch.input_shape(size)).astype(dtype)
            kfn = arch.stax[2]
            import jax

            direct = jax.jit(lambda a: kfn(a, None, "ntk"))
            direct(xs).block_until_ready()  # compile
            iw.kernel(arch, x, kind="ntk", dtype=dtype, progress=False)  # compile
            t_nt, m_nt = _measure(lambda: np.asarray(direct(xs)))
            t_iw, m_iw = _measure(lambda: iw.kernel(arch, x, kind="ntk", dtype=dtype,
                                                    progress=False))
            est = estimate_block_memory(arch, n, n, size, "ntk", dtype) / 2**20
            rows.append(dict(case=name, n=n, positions=size, dtype=dtype,
                             nt_seconds=t_nt, iw_seconds=t_iw, ratio_iw_over_nt=t_iw / t_nt,
                             nt_peak_mib=m_nt, iw_peak_mib=m_iw, iw_estimate_mib=est))
            print(f"{name:16s} n={n:4d} P={size:5d} {dtype}: nt {t_nt:7.3f}s  iw {t_iw:7.3f}s"
                  f"  ratio {t_iw / t_nt:5.2f}  peak nt {m_nt:7.1f} MiB  iw {m_iw:7.1f} MiB"
                  f"  (estimate {est:7.1f} MiB)", flush=True)
    df = pd.DataFrame(rows)
    write_csv(df, out / "kernel_speed.csv")
    summary = {"median_ratio_iw_over_nt": float(df.ratio_iw_over_nt.median()),
               "f32_over_f64_time": float(
                   df[df.dtype == "float32"].iw_seconds.sum()
                   / df[df.dtype == "float64"].iw_seconds.sum()),
               "dtypes": list(DTYPES)}
    write_json(summary, out / "kernel_speed.json")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(json.dumps(summary, indent=2))
    return df


if __name__ == "__main__":
    main()
