"""Time one tiled Gram three ways: in-process (one thread), a LocalCluster of 1 and of 2 workers.

The same GAP ConvNet NTK Gram (the engine :func:`infwidth.kernels.tiles.compute_tile` uses:
the native engine, one thread; tiles big enough that they dominate the overhead) is filled
into a fresh Zarr store by :func:`infwidth.kernels.distributed.gram` (1) in this process,
one thread (native engine, XLA, OpenMP), (2) on a LocalCluster of one
single-threaded worker process, (3) on one of two. Each setting is warmed up first (XLA
compiles the tile shapes), so the timings are of the fill alone; cluster start-up is
reported apart. Printed: wall time, speed-ups (2 workers vs 1; in-process vs 1 worker) and
the fraction of worker time NOT spent computing tiles — 1 − Σ tile compute / (wall ×
workers): scheduling, IO (reading inputs, writing chunks and markers, also given alone),
idling at the end — from the tasks' own timings. Goals on 2 cores: 2 workers ≥ 1.6× one,
the 1-worker cluster within 15 % of in-process. The machine's load average is recorded:
other processes on the same cores slow every setting.

``--myrtle`` adds the per-pair cost of a Myrtle-5 tile on CIFAR-sized inputs (32×32×3,
NNGP + NTK, one thread, the native engine) and the projection of a 60,000-image Gram.

    python benchmarks/distributed_gram.py [--quick] [--myrtle] [--out results/distributed_gram]
"""

from __future__ import annotations

import os

# one thread per process, before JAX starts (the workers get the same through their env)
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                           " intra_op_parallelism_threads=1").strip()
for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "INFWIDTH_TILE_THREADS"):
    os.environ[_v] = "1"

import math  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import infwidth as iw  # noqa: E402
from infwidth.io.harness import Option, Script  # noqa: E402
from infwidth.kernels.distributed import _arch_spec, gram, local_cluster  # noqa: E402
from infwidth.kernels.native import supports  # noqa: E402
from infwidth.kernels.tiles import compute_tile, plan_tile  # noqa: E402


def _warm(spec: tuple, dim: int, tile: int, last: int) -> None:
    """Compile the tile shapes (full, edge) in this process (``spec``: (class, fields))."""
    arch = spec[0](**spec[1])
    x = np.random.default_rng(1).standard_normal((2 * tile, dim))
    for a, b in {(tile, tile), (tile, last), (last, last)}:
        compute_tile(arch, x, None, slice(0, a), slice(tile, tile + b), ("ntk",), "float64")
    compute_tile(arch, x, None, slice(0, last), slice(0, last), ("ntk",), "float64")


def _row(setting: str, workers: int, g, start_s: float) -> dict:
    r = g.report
    busy = r["wall_s"] * max(1, workers)
    return {"setting": setting, "workers": workers, "tiles": r["computed"],
            "wall_s": r["wall_s"], "tile_compute_s": r["compute_s"], "tile_cpu_s": r["cpu_s"],
            "io_s": r["io_s"], "overhead_frac": 1 - r["compute_s"] / busy,
            "io_frac": r["io_s"] / busy, "startup_s": start_s,
            "load_avg": os.getloadavg()[0]}


def run_settings(arch, x: np.ndarray, tile: int, work: Path, workers: tuple[int, ...]
                 ) -> list[dict]:
    from distributed import Client

    rows = []
    n, dim = x.shape
    last = n - (math.ceil(n / tile) - 1) * tile
    spec = _arch_spec(arch)
    _warm(spec, dim, tile, last)
    g = gram(arch, x, store=work / "inproc.zarr", tile=tile, progress=False)
    rows.append(_row("in-process, 1 thread", 1, g, 0.0))
    print(rows[-1], flush=True)
    ref = g.to_numpy()
    for w in workers:
        t0 = time.perf_counter()
        with local_cluster(n_workers=w, gpus=0) as cluster, Client(cluster) as client:
            client.wait_for_workers(w)
            client.run(_warm, spec, dim, tile, last)
            start = time.perf_counter() - t0
            g = gram(arch, x, store=work / f"cluster{w}.zarr", client=client, tile=tile,
                     progress=False)
        rows.append(_row(f"LocalCluster {w} worker(s)", w, g, start))
        k = g.to_numpy()
        rows[-1]["equal_to_in_process"] = bool(np.array_equal(k, ref))
        rows[-1]["max_abs_diff"] = float(np.abs(k - ref).max())
        rows[-1]["tiles_differing"] = sum(
            not np.array_equal(k[g.store.slices(*ij)], ref[g.store.slices(*ij)])
            for ij in g.store.tiles())
        print(rows[-1], flush=True)
    rows[0].update(equal_to_in_process=True, max_abs_diff=0.0, tiles_differing=0)
    return rows


def myrtle_cost(t: int = 8) -> dict:
    """Per-pair CPU seconds of a Myrtle-5 (32×32×3) NNGP+NTK tile, native engine, 1 thread."""
    from infwidth.architectures.myrtle import Myrtle
    from infwidth.kernels.native import native_kernels

    arch, dim = Myrtle(depth=5, ndim=2, channels=3), 3072
    x = np.random.default_rng(0).standard_normal((2 * t, dim))
    native_kernels(arch, x[:2], x[2:4], kinds=("nngp", "ntk"), threads=1)  # warm-up
    w0, c0 = time.perf_counter(), time.process_time()
    native_kernels(arch, x[:t], x[t:], kinds=("nngp", "ntk"), threads=1)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"tile": t, "wall_s": wall, "cpu_s": cpu, "cpu_s_per_pair": cpu / t**2,
            "load_avg": os.getloadavg()[0]}


def projection(per_pair_s: float, n: int = 60_000, tile: int = 500, kinds: int = 2) -> dict:
    """Tiles, store size and core-hours of an n×n symmetric Gram at ``per_pair_s``."""
    g = math.ceil(n / tile)
    tiles = g * (g + 1) // 2
    pairs = n * (n + 1) / 2
    stored = tiles * tile * tile * 8 * kinds  # upper tiles only, float64, uncompressed
    return {"n": n, "tile": tile, "tiles": tiles, "core_s_per_tile": per_pair_s * tile**2,
            "store_GB": stored / 1e9, "inputs_GB": n * 3072 * 8 / 1e9,
            "core_hours": pairs * per_pair_s / 3600, "nt_v100_hours": 316}


SCRIPT = Script("distributed_gram", __doc__, out="results/distributed_gram",
                sizes={"quick": "a small Gram (smoke test)"}, store=None, options=(
                    Option("--myrtle", action="store_true",
                           help="also time a Myrtle-5 CIFAR tile"),
                    Option("--n", type=int, default=None),
                    Option("--tile", type=int, default=None)))


@SCRIPT.main
def main(run) -> None:
    args = run.args
    n = args.n or (144 if args.quick else 512)
    tile = args.tile or (48 if args.quick else 64)
    dim, depth = (32, 2) if args.quick else (64, 3)
    arch = iw.ConvNet(filter_size=3, depth=depth, readout="gap")
    x = np.random.default_rng(0).standard_normal((n, dim))
    print(f"{arch!r}, N={n}, dim={dim}, tile={tile} (plan_tile at 4 GiB: "
          f"{plan_tile(arch, n, n, dim, ('ntk',), 'float64', '4GiB')}), "
          f"{math.ceil(n / tile) * (math.ceil(n / tile) + 1) // 2} tiles", flush=True)
    work = Path(tempfile.mkdtemp(prefix="infwidth-gram-bench-"))
    try:
        rows = run_settings(arch, x, tile, work, (1, 2))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    df = pd.DataFrame(rows)
    inproc, one, two = (df.wall_s[i] for i in range(3))
    summary = {"arch": repr(arch),
               "engine": "native" if supports(arch, dim) else "neural-tangents",
               "n": n, "dim": dim, "tile": tile, "tiles": int(df.tiles[0]),
               "speedup_2_vs_1_worker": one / two, "one_worker_vs_in_process": one / inproc,
               "goal_2_workers_ge_1.6x": one / two >= 1.6,
               "goal_1_worker_within_15pct": one / inproc <= 1.15,
               "tile_s_mean": float(df.tile_compute_s[0] / df.tiles[0]),
               "cpus": os.cpu_count()}
    if args.myrtle:
        m = myrtle_cost()
        summary["myrtle5_native_tile"] = m
        summary["projection_cifar10_cpu"] = projection(m["cpu_s_per_pair"])
        summary["projection_note"] = ("neural-tangents' Myrtle-5 kernel on 32×32×3 segfaults in "
                                      "XLA:CPU here (jax 0.10.2); the per-pair cost is the "
                                      "native engine's on one core")
    run.write_csv(df, "timings.csv")
    run.write_json(summary, "summary.json")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(df.round(3).to_string(index=False))
    for k, v in summary.items():
        print(f"{k}: {v}")


if __name__ == "__main__":
    main()
