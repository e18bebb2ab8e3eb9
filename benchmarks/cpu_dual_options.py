"""The measurement behind the native engine's CPU path: ways to evaluate the ReLU dual.

On one engine-sized block (784 positions × 26 × 26 pairs, diagonal layout, Σ and Θ, float64,
one thread), elements per second of:

- numpy's float64 ``arccos`` alone, in place (the ceiling of any numpy formulation);
- the numpy backend's dual (:meth:`NumpyOps.dual`: ~13 in-place ufunc passes on chunks);
- one fused numba loop calling libm's scalar ``acos`` (defined here, for the comparison);
- the numba backend's dual (:meth:`NumbaOps.dual`: fused, fdlibm's rational ``acos``
  written branch-free so that LLVM vectorises it).

Then numba's compile cost: a fresh process with an empty cache runs the engine on three
architectures (compiling), a second process with the same cache runs them again.
Writes ``cpu_dual_options.json``.

    python benchmarks/cpu_dual_options.py [--out results/cpu_dual_options]
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time

import numba as nb
import numpy as np

from infwidth.io.harness import Script
from infwidth.kernels.native_numba import NumbaOps
from infwidth.kernels.native_ops import NumpyOps


@nb.njit(nogil=True, error_model="numpy")
def _libm_dual(s, t, r1, q1, r2, q2):
    """The fused ReLU dual with libm's scalar acos (s, t (R, A, B); r1, q1 (R, A); r2, q2
    (R, 1, B))."""
    for i in range(s.shape[0]):
        for a in range(s.shape[1]):
            for b in range(s.shape[2]):
                c = min(max(s[i, a, b] * r1[i, a] * r2[i, 0, b], -1.0), 1.0)
                w = math.pi - math.acos(c)
                s[i, a, b] = math.sqrt(1.0 - c * c) * q1[i, a] * q2[i, 0, b] + w * s[i, a, b]
                t[i, a, b] = w * t[i, a, b]


def best_rate(fn, n: int, reps: int = 5) -> float:
    """Elements per second of ``fn()`` on n elements: the fastest of ``reps`` calls."""
    fn()
    best = math.inf
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def block(r: int = 784, a: int = 26, seed: int = 0):
    """A diagonal-layout tile: Σ with correlations in (−1, 1), Θ, and the variances."""
    rng = np.random.default_rng(seed)
    v1, v2 = rng.uniform(0.5, 2, (r, 1, a, 1)), rng.uniform(0.5, 2, (r, 1, 1, a))
    s = rng.uniform(-0.99, 0.99, (r, a, a)) * np.sqrt(v1 * v2).reshape(r, a, a)
    return s, rng.uniform(0.5, 2, (r, a, a)), v1, v2


def dual_rates() -> dict:
    s0, t0, v1, v2 = block()
    n = s0.size
    x = np.random.default_rng(1).uniform(-1, 1, n)
    out = np.empty_like(x)
    rates = {"numpy_arccos": best_rate(lambda: np.arccos(x, out=out), n)}

    # the ops work on the (*S, t1, t2) layout: 784 positions as a 28×28 map
    def op_run(ops):
        def run():
            s, t = s0.reshape(28, 28, 26, 26).copy(), t0.reshape(28, 28, 26, 26).copy()
            ops.dual("relu", s, t, v1, v2, 2, False, False)
        return run

    rates["numpy_ufunc_dual"] = best_rate(op_run(NumpyOps), n)
    r1 = (1 / np.sqrt(v1)).reshape(784, 26)
    r2 = (1 / np.sqrt(v2)).reshape(784, 1, 26)
    q1, q2 = np.sqrt(v1).reshape(784, 26), np.sqrt(v2).reshape(784, 1, 26)
    rates["numba_libm_acos_dual"] = best_rate(
        lambda: _libm_dual(s0.copy(), t0.copy(), r1, q1, r2, q2), n)
    rates["numba_engine_dual"] = best_rate(op_run(NumbaOps), n)
    return {k: v / 1e6 for k, v in rates.items()}


_WARM = """
import time, infwidth as iw
from infwidth.architectures.myrtle import Myrtle
t = time.perf_counter()
for a, d in [(Myrtle(depth=5, ndim=2), 256), (iw.DCNN(patch_dim=4, filter_sizes=(2, 8)), 64),
             (iw.MLP(depth=3), 64)]:
    x = iw.sample_inputs("sphere", 4, d, seed=0)
    iw.kernel(a, x, kind=("nngp", "ntk")); iw.kernel(a, x[:2], x[2:], kind=("nngp", "ntk"))
print(time.perf_counter() - t)
"""


def compile_seconds() -> dict:
    """Seconds of the same first engine calls with an empty numba cache, then cached."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        times = [float(subprocess.run([sys.executable, "-c", _WARM], env=env, check=True,
                                      capture_output=True, text=True).stdout.split()[-1])
                 for _ in range(2)]
    return {"first_calls_empty_cache_s": times[0], "first_calls_cached_s": times[1]}


SCRIPT = Script("cpu_dual_options", __doc__, out="results/cpu_dual_options", sizes=(),
                store=None)


@SCRIPT.main
def main(run) -> dict:
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
    rates = dual_rates()
    out = {"melem_per_second_one_thread_runtime": rates,
           "share_of_numpy_arccos_runtime": {k: v / rates["numpy_arccos"]
                                             for k, v in rates.items()},
           "compile_runtime": compile_seconds(), "load_avg": os.getloadavg()[0]}
    run.write_json(out, "cpu_dual_options.json")
    for k, v in rates.items():
        print(f"{k:22s} {v:7.0f} M elements/s  ({v / rates['numpy_arccos']:.2f}× arccos)")
    c = out["compile_runtime"]
    print(f"numba: first engine calls {c['first_calls_empty_cache_s']:.1f} s with an empty "
          f"cache, {c['first_calls_cached_s']:.1f} s cached")
    return out


if __name__ == "__main__":
    main()
