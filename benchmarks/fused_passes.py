"""Where the CPU engine's time goes: each fused pass of a Gram, per pair, on one thread.

For the GAP ConvNets and Myrtle-5 of ``kernel_speed.py`` (both kinds, numba backend, a
symmetric Gram of N inputs on one thread, after a warm-up call): the wall time of every fused
pass (``NumbaOps.fuse``: conv → affine → dual (→ pooling or GAP) over one tile) summed over the
tiles, labelled by the plan steps it runs, in ms per pair of the Gram; "rest" is what lies
outside the fused passes (the self pass, which runs the unfused steps on the N inputs, the
tiles' Python, the output writes). Each case in float64 and float32, best of ``reps`` calls.
``--tiny``: 8×8 images, N = 4. Writes ``fused_passes.csv``.

    python benchmarks/fused_passes.py [--tiny] [--out results/fused_passes]
"""

from __future__ import annotations

import time
from collections import defaultdict

import pandas as pd

import infwidth as iw
from infwidth.architectures.myrtle import Myrtle
from infwidth.io.harness import Script
from infwidth.kernels.native import native_kernels
from infwidth.kernels.native_numba import NumbaOps

SCRIPT = Script("fused_passes", __doc__, out="results/fused_passes", sizes=("tiny",),
                store=None)
KINDS = ("nngp", "ntk")


def cases(tiny: bool) -> list[tuple[str, object, int, int]]:
    """(name, architecture, dim, N)."""
    gap = dict(readout="gap")
    if tiny:
        return [("convnet-gap-2d-8-d2-circ", iw.ConvNet(depth=2, ndim=2, **gap), 64, 4)]
    return [("convnet-gap-1d-64-d3-circ", iw.ConvNet(depth=3, **gap), 64, 64),
            ("convnet-gap-2d-28-d2-circ", iw.ConvNet(depth=2, ndim=2, **gap), 784, 16),
            ("myrtle5-2d-16", Myrtle(depth=5, ndim=2), 256, 32),
            ("myrtle5-2d-28", Myrtle(depth=5, ndim=2), 784, 16)]


def _label(steps: tuple, k: int, used: int) -> str:
    ops = {"lin": "conv", "act": "dual", "pool": "pool", "read": "gap"}
    return f"steps {k}-{k + used - 1}: " + "+".join(ops.get(s[0], s[0])
                                                   for s in steps[k:k + used])


def timed_passes(arch, x, dtype: str, reps: int) -> tuple[float, dict[str, float]]:
    """(best total seconds, seconds per fused pass label in that call), on one thread."""
    spent: dict[str, float] = defaultdict(float)
    inner = NumbaOps.fuse

    def fuse(self, steps, k, *args):
        t = time.perf_counter()
        out = inner(self, steps, k, *args)
        if out is not None:
            spent[_label(steps, k, out[0])] += time.perf_counter() - t
        return out

    native_kernels(arch, x[:3], kinds=KINDS, dtype=dtype, threads=1, progress=False)
    best, best_spent = float("inf"), {}
    NumbaOps.fuse = fuse
    try:
        for _ in range(reps):
            spent.clear()
            t = time.perf_counter()
            native_kernels(arch, x, kinds=KINDS, dtype=dtype, threads=1, progress=False)
            wall = time.perf_counter() - t
            if wall < best:
                best, best_spent = wall, dict(spent)
    finally:
        NumbaOps.fuse = inner
    return best, best_spent


@SCRIPT.main
def main(run) -> pd.DataFrame:
    tiny = run.args.size == "tiny"
    reps = 1 if tiny else 3
    rows = []
    for name, arch, dim, n in cases(tiny):
        x = iw.sample_inputs("sphere", n, dim, seed=0)
        pairs = n * (n + 1) // 2
        for dtype in ("float64", "float32"):
            total, spent = timed_passes(arch, x, dtype, reps)
            parts = {**spent, "rest": total - sum(spent.values())}
            for what, sec in parts.items():
                rows.append(dict(case=name, n=n, dtype=dtype, part=what,
                                 ms_per_pair_runtime=1e3 * sec / pairs,
                                 share_runtime=sec / total))
            print(f"{name} {dtype}: {1e3 * total / pairs:.3f} ms/pair = "
                  + ", ".join(f"{w} {1e3 * s / pairs:.3f}" for w, s in parts.items()),
                  flush=True)
    df = pd.DataFrame(rows)
    run.write_csv(df, "fused_passes.csv")
    return df


if __name__ == "__main__":
    main()
