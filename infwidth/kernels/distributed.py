"""Gram matrices as tiles in a Zarr store, filled in-process or on a Dask cluster.

:func:`gram` plans the tiles (:mod:`infwidth.kernels.tiles`), opens or creates the store
(:mod:`infwidth.kernels.gram_store`) and computes only the tiles not yet done:

- ``client=None``: in this process, tile by tile, with a progress bar. No Dask needed.
- ``client=<dask.distributed.Client>`` (or a scheduler address such as
  ``"tcp://host:8786"``): one task per missing tile. **Each task writes its tile into the
  store itself and then marks it done**, returning only a few numbers (indices, timings): no
  tile travels through the scheduler or the client, the client's memory and network stay
  O(tasks) instead of O(N²), and a tile is safe on disk as soon as its worker has finished
  it, whether or not the client survives. The price: the store must be on a file system every
  worker sees at the same path (a shared/NFS/Lustre path on a real cluster). Workers read
  their input rows from the store too, so a task's arguments are just (store, i, j, arch).
- ``client="local"``: a :func:`local_cluster` (one single-threaded worker process per core,
  or one per GPU pinned with ``CUDA_VISIBLE_DEVICES``), started and closed here.

Faults. A worker killed mid-tile loses only that tile: Dask reruns the task elsewhere (up to
``distributed.scheduler.allowed-failures`` times). A client killed mid-run leaves a valid
store; rerunning the same call resumes. A tile that fails (NaN/inf in its result, MemoryError,
any exception, or a task Dask gives up on) is not written; the other tiles are finished, and
then :class:`TileError` lists the failed tiles with their rows and columns.

Example (needs the ``[distributed]`` extra; tests/test_distributed.py runs the same)::

    g = gram(iw.ConvNet(filter_size=3, depth=1), x, store="K.zarr", tile=4)
    g.report["computed"], g.report["tiles"]      # (6, 6) for 10 inputs
    gram(iw.ConvNet(filter_size=3, depth=1), x, store="K.zarr").report["computed"]  # 0
    k = g.to_numpy()                              # or g.row_block(i0, i1)
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import check_inputs
from infwidth.kernels.engine import DEFAULT_MEMORY_BUDGET, parse_bytes
from infwidth.kernels.gram_store import GramStore, StoredGram
from infwidth.kernels.tiles import compute_tile, plan_tile
from infwidth.validation import (
    check_architecture,
    check_dtype,
    check_kinds,
    check_opt_pos_int,
    check_progress,
    show_progress,
)

__all__ = ["gram", "local_cluster", "TileError", "run_tile"]

# One thread per worker process: BLAS/OpenMP, XLA's CPU pools, the native engine's tile pool.
_XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                  "XLA_FLAGS": _XLA_ONE_THREAD, "INFWIDTH_TILE_THREADS": "1"}


class TileError(RuntimeError):
    """Some tiles failed; ``failures`` lists them (tile, rows, cols, error), ``report`` the
    run, ``gram`` the (valid, incomplete) :class:`StoredGram`."""

    def __init__(self, message: str, failures: list[dict], report: dict, gram: StoredGram):
        super().__init__(message)
        self.failures, self.report, self.gram = failures, report, gram


# --------------------------------------------------------------------------------------
# One tile (the task)
# --------------------------------------------------------------------------------------
_STORES: dict[tuple[str, str], GramStore] = {}


def _store(path: str, store_id: str) -> GramStore:
    """The store, opened once per process (keyed by path and the store's creation id)."""
    key = (path, store_id)
    if key not in _STORES:
        _STORES.clear()
        _STORES[key] = GramStore.open(path)
    return _STORES[key]


def _check_finite(blocks: dict[str, np.ndarray]) -> str | None:
    for k, b in blocks.items():
        bad = ~np.isfinite(b)
        if bad.any():
            what = "NaN" if np.isnan(b).any() else "inf"
            return f"{what} in {k} ({int(bad.sum())} of {b.size} entries)"
    return None


def _tile_work(store: GramStore, i: int, j: int, arch: Architecture,
               delay: float = 0.0) -> dict:
    """Compute tile (i, j) from the stored inputs, write it whole, mark it done; never raises
    for a failing tile (the failure is returned)."""
    rows, cols = store.slices(i, j)
    info: dict[str, Any] = {"tile": (i, j), "rows": (rows.start, rows.stop),
                            "cols": (cols.start, cols.stop), "ok": False, "error": None,
                            "compute_s": 0.0, "cpu_s": 0.0, "io_s": 0.0, "pid": os.getpid()}
    try:
        t0 = time.perf_counter()
        xa = store.read_x("x1", rows)
        if store.symmetric and i == j:
            xb = None
        else:
            xb = store.read_x("x1" if store.symmetric else "x2", cols)
        t1, c1 = time.perf_counter(), time.process_time()
        if delay:
            time.sleep(delay)
        whole = slice(0, xa.shape[0])
        blocks = compute_tile(arch, xa, xb, whole, whole if xb is None else slice(None),
                              store.kinds, store.dtype)
        t2, c2 = time.perf_counter(), time.process_time()
        info["compute_s"], info["cpu_s"] = t2 - t1, c2 - c1
        bad = _check_finite(blocks)
        if bad:
            info["error"] = bad
            info["io_s"] = t1 - t0
            return info
        store.write_tile(i, j, blocks, seconds=t2 - t1)
        info["io_s"] = (t1 - t0) + (time.perf_counter() - t2)
        info["ok"] = True
    except Exception as e:  # noqa: BLE001 - MemoryError included: reported, not raised
        info["error"] = f"{type(e).__name__}: {e}"
    return info


def run_tile(path: str, store_id: str, i: int, j: int, arch_spec: tuple,
             delay: float = 0.0) -> dict:
    """The Dask task: tile (i, j) of the store at ``path``; ``arch_spec`` is
    (class, fields) (architectures hold unpicklable neural-tangents closures)."""
    cls, fields = arch_spec
    return _tile_work(_store(path, store_id), i, j, cls(**fields), delay)


def _arch_spec(arch: Architecture) -> tuple:
    import dataclasses
    return type(arch), {f.name: getattr(arch, f.name) for f in dataclasses.fields(arch)
                        if f.init}  # e.g. MLP's ndim is fixed, not an argument


# --------------------------------------------------------------------------------------
# Clusters
# --------------------------------------------------------------------------------------
def _count_gpus() -> int:
    """NVIDIA GPUs usable by JAX workers (nvidia-smi lists them and a CUDA jaxlib plugin is
    installed), else 0."""
    if shutil.which("nvidia-smi") is None or not any(
            importlib.util.find_spec(m) for m in ("jax_cuda12_plugin", "jax_cuda13_plugin")):
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines())


@contextmanager
def local_cluster(n_workers: int | None = None, gpus: int | None = None,
                  memory_limit: str | int = "auto") -> Iterator[Any]:
    """A local Dask cluster for tiles, closed on exit: one single-threaded worker process per
    GPU (each pinned with ``CUDA_VISIBLE_DEVICES=i``) when GPUs are found (``gpus=None``:
    detect), else ``n_workers`` (default ``os.cpu_count()``) single-threaded worker processes
    with one BLAS/XLA thread each."""
    import dask

    gpus = _count_gpus() if gpus is None else int(gpus)
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536, which makes glibc return freed memory
    # to the OS at once: the native engine's large temporaries then page-fault afresh on
    # every allocation (measured: 1.7× the CPU time per tile). Workers keep glibc's default.
    no_trim = dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_":
                               None})
    with no_trim:
        cluster = _start_cluster(n_workers, gpus, memory_limit)
    try:
        yield cluster
    finally:
        cluster.close()


def _start_cluster(n_workers: int | None, gpus: int, memory_limit: str | int) -> Any:
    from distributed import LocalCluster, Nanny, Scheduler, SpecCluster

    if gpus > 0:
        workers = {f"gpu{i}": {"cls": Nanny, "options": {
            "nthreads": 1, "memory_limit": memory_limit,
            "env": {**ONE_THREAD_ENV, "CUDA_VISIBLE_DEVICES": str(i)}}} for i in range(gpus)}
        return SpecCluster(scheduler={"cls": Scheduler, "options": {
            "host": "127.0.0.1", "dashboard": False, "dashboard_address": None}},
            workers=workers)
    return LocalCluster(n_workers=n_workers or os.cpu_count() or 1, threads_per_worker=1,
                        processes=True, host="127.0.0.1", dashboard_address=None,
                        memory_limit=memory_limit, env=dict(ONE_THREAD_ENV))


# --------------------------------------------------------------------------------------
# gram()
# --------------------------------------------------------------------------------------
def _fill_local(store: GramStore, todo: list, arch: Architecture, show: bool,
                delay: float) -> tuple[list[dict], int]:
    infos = []
    for i, j in tqdm(todo, desc=f"tiles of {store.path.name}", disable=not show, leave=False):
        infos.append(_tile_work(store, i, j, arch, delay))
    return infos, 1


def _fill_dask(client: Any, store: GramStore, todo: list, arch: Architecture, show: bool,
               delay: float) -> tuple[list[dict], int]:
    from distributed import as_completed

    path, sid = str(store.path.resolve()), store.meta["id"]
    spec = _arch_spec(arch)
    prefix = f"infwidth-tile-{uuid.uuid4().hex[:8]}"
    futures = {client.submit(run_tile, path, sid, i, j, spec, delay, key=f"{prefix}-{i}-{j}",
                             pure=False): (i, j) for i, j in todo}
    infos = []
    bar = tqdm(total=len(todo), desc=f"tiles of {store.path.name}", disable=not show,
               leave=False)
    try:
        for fut in as_completed(list(futures)):
            i, j = futures[fut]
            try:
                info = fut.result()
            except Exception as e:  # noqa: BLE001 - e.g. KilledWorker after retries
                r, c = store.slices(i, j)
                info = {"tile": (i, j), "rows": (r.start, r.stop), "cols": (c.start, c.stop),
                        "ok": False, "error": f"{type(e).__name__}: {e}", "compute_s": 0.0,
                        "cpu_s": 0.0, "io_s": 0.0, "pid": None}
            fut.release()
            infos.append(info)
            bar.update()
    finally:
        bar.close()
        for fut in futures:
            fut.cancel()
    return infos, len(client.scheduler_info().get("workers", {})) or 1


def gram(arch: Architecture, x1: Any, x2: Any = None, kinds: Sequence[str] | str = ("ntk",),
         store: str | os.PathLike = "K.zarr", client: Any = None, dtype: str = "float64",
         tile: int | None = None, memory_budget: int | str = DEFAULT_MEMORY_BUDGET,
         progress: bool | None = None, _tile_delay: float = 0.0) -> StoredGram:
    """Fill the Zarr Gram store ``store`` with ``arch``'s kernels of ``x1`` against ``x2``
    (``x2=None``: the symmetric Gram of ``x1``, only tiles on and above the diagonal), and
    return lazy access to it (:class:`StoredGram`, first kind by default; ``.report`` holds
    the counts: ``tiles``, ``done_before``, ``computed``, and timings).

    Only missing tiles are computed (a rerun resumes); a store made for other arguments is
    refused with a ValueError naming the difference. ``tile`` (default: the largest that fits
    ``memory_budget`` per tile, i.e. per worker, :func:`~infwidth.kernels.tiles.plan_tile`)
    is fixed when the store is created. ``client``: None (in-process), a
    ``dask.distributed.Client``, a scheduler address, or "local" (see the module docstring).
    Raises :class:`TileError` listing failed tiles after finishing all the others.
    ``_tile_delay`` (seconds slept per tile) is for tests only."""
    check_architecture(arch)
    kinds = check_kinds(kinds, "kinds")
    check_dtype(dtype)
    tile = check_opt_pos_int("tile", tile)
    progress = check_progress(progress)
    budget = parse_bytes(memory_budget)
    x1 = check_inputs(x1, "x1")
    dim = x1.shape[1]
    arch.input_shape(dim)
    x2 = None if x2 is None else check_inputs(x2, "x2", dim)
    n1, n2 = x1.shape[0], (x1 if x2 is None else x2).shape[0]
    t = tile if tile is not None else plan_tile(arch, n1, n2, dim, kinds, dtype, budget)
    gs = GramStore.open_for(store, arch, x1, x2, kinds, dtype, t, tile_explicit=tile is not None)
    total, todo = len(gs.tiles()), gs.missing()
    show = show_progress(progress, len(todo))
    start = time.perf_counter()
    if not todo:
        infos, workers = [], 0
    elif client is None:
        infos, workers = _fill_local(gs, todo, arch, show, _tile_delay)
    else:
        from distributed import Client
        if isinstance(client, str) and client == "local":
            with local_cluster() as cluster, Client(cluster) as c:
                infos, workers = _fill_dask(c, gs, todo, arch, show, _tile_delay)
        elif isinstance(client, str):
            with Client(client) as c:
                infos, workers = _fill_dask(c, gs, todo, arch, show, _tile_delay)
        else:
            infos, workers = _fill_dask(client, gs, todo, arch, show, _tile_delay)
    wall = time.perf_counter() - start
    ok = [f for f in infos if f["ok"]]
    failures = [f for f in infos if not f["ok"]]
    report = {"store": str(gs.path), "tiles": total, "done_before": total - len(todo),
              "computed": len(ok), "failed": failures, "workers": workers, "wall_s": wall,
              "compute_s": sum(f["compute_s"] for f in ok),
              "cpu_s": sum(f["cpu_s"] for f in ok), "io_s": sum(f["io_s"] for f in ok),
              "tile": gs.tile}
    result = StoredGram(gs, kind=kinds[0], report=report)
    if failures:
        lines = "; ".join(f"tile {f['tile']} rows {f['rows'][0]}:{f['rows'][1]}, cols "
                          f"{f['cols'][0]}:{f['cols'][1]}: {f['error']}" for f in failures[:10])
        more = f" (and {len(failures) - 10} more)" if len(failures) > 10 else ""
        raise TileError(f"{len(failures)} of {total} tiles failed in store {gs.path}: {lines}"
                        f"{more}. The store is valid ({total - len(gs.missing())} tiles done); "
                        f"rerun gram() to retry the missing tiles.", failures, report, result)
    return result
