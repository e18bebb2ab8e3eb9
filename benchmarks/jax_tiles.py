"""The native engine's JAX path, tile by tile: what XLA made of the tile program and how fast
it runs at a few tile sizes, on the device JAX uses (the GPU where there is one).

For each case and tile side t (t × t input pairs per tile; "auto" is the engine's own choice):
the cross-tile program of both kinds compiled for t × t pairs, and from XLA's compiled module
its temporary memory in tile arrays (one tile array = t² × the plan's largest per-pair array),
its kernels (fusions and library calls), how many of them write a tile-sized array (passes
over memory) and how many tile arrays they write, and the bytes XLA's cost analysis says the
program accesses, in tile arrays. The covariance conv is a sum of q slices per axis, so no
kernel should write more than about one tile array per input (a q-fold or q²-fold array would
be a materialised stack of shifted copies). Then the seconds of one symmetric Gram of N inputs
(``native_kernels(..., backend="jax", tile=t)``, both kinds, after a warm-up call that
compiles) and its pairs per second.

``--conv shifts`` measures the formulation the engine had before (per axis a sum of q rolled
copies for circular padding, q slices of one padded copy for zero padding), with everything
else the same, so that one run on a GPU can say which XLA fuses better there: on XLA:CPU the
gather wrote fewer tile arrays (GAP-28 24 → 13, Myrtle-5-28 11 → 6) and was faster at tiles
of 2-4 pairs, but slower at 1 pair per tile, where the arrays sit in cache.

    python benchmarks/jax_tiles.py [--quick | --tiny] [--n N] [--tiles auto 1 2 4 8]
                                   [--conv gather shifts] [--out DIR]
"""

from __future__ import annotations

import contextlib
import itertools
import math
import re
import time

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.architectures.myrtle import Myrtle
from infwidth.io.harness import Option, Script
from infwidth.kernels import native, native_ops

# A result type's arrays, e.g. "f64[2,2,28,28]{...}" or "(f64[...], f64[...])".
_ARRAY = re.compile(r"\b(?:f|bf|s|u|pred|c)\d*\[([\d,]*)\]")
_KERNEL = re.compile(r"^\s*(?:ROOT )?%?[\w.\-]+ = (.+?) (fusion|custom-call)\(", re.M)


def cases(size: str):
    """(name, architecture, input dim) at the run's size."""
    if size == "tiny":
        return [("convnet-gap-2d-8-d2-circ", iw.ConvNet(depth=2, readout="gap", ndim=2), 64),
                ("myrtle5-2d-8", Myrtle(depth=5, ndim=2), 64)]
    return [("convnet-gap-2d-28-d2-circ", iw.ConvNet(depth=2, readout="gap", ndim=2), 784),
            ("myrtle5-2d-28", Myrtle(depth=5, ndim=2), 784)]


def conv_shifts(self, x, layer, nd, full):
    """The JAX covariance conv before the gather (``--conv shifts``): per axis q rolled
    copies (circular) or q slices of one padded copy (same), summed."""
    jnp = self.xp
    for k in range(nd):
        axes = native_ops._spatial_axes(nd, full, k)
        q, s, n = layer.filter[k], layer.stride[k], x.shape[axes[0]]
        if s > 1 or layer.padding == "valid":
            m = (n - q) // s + 1
            x = sum(x[native_ops._ix(x.ndim, {ax: slice(a, a + s * (m - 1) + 1, s)
                                              for ax in axes})] for a in range(q))
            continue
        lo = (q - 1) // 2
        if layer.padding == "circular":
            x = sum(jnp.roll(x, (-d,) * len(axes), axes) for d in range(-lo, q - lo))
        else:
            pad = [(0, 0)] * x.ndim
            for ax in axes:
                pad[ax] = (lo, q - 1 - lo)
            xp_ = jnp.pad(x, pad)
            x = sum(xp_[native_ops._ix(x.ndim, {ax: slice(t, t + n) for ax in axes})]
                    for t in range(q))
    return x


@contextlib.contextmanager
def conv_formulation(name: str):
    """The engine's JAX conv ("gather") or the one before it ("shifts") while inside."""
    engine = native_ops.JaxOps.conv
    native_ops.JaxOps.conv = engine if name == "gather" else conv_shifts
    native._jax_fns.cache_clear()
    try:
        yield
    finally:
        native_ops.JaxOps.conv = engine
        native._jax_fns.cache_clear()


def hlo_passes(text: str, tile_elems: int) -> dict:
    """Kernels of a compiled HLO module, those writing ≥ half a tile array, and the tile
    arrays they write."""
    kernels = big = 0
    written = 0.0
    for result, _ in _KERNEL.findall(text):
        sizes = [math.prod(int(d) for d in m.split(",") if d) for m in _ARRAY.findall(result)]
        kernels += 1
        large = [s for s in sizes if s >= tile_elems / 2]
        big += bool(large)
        written += sum(large) / tile_elems
    return {"kernels": kernels, "tile_sized_kernels": big, "written_tile_arrays": written}


def compiled_tile(arch, dim: int, t: int, dtype=np.float64) -> dict:
    """XLA's view of the cross-tile program (both kinds) for t × t pairs."""
    plan = native.native_plan(arch, dim)
    a = native._prepare(plan, iw.sample_inputs("sphere", t, dim, seed=0), dtype)
    self_fn, cross_fn = native._jax_fns(plan, True)
    v = list(self_fn(a)[0])
    start = time.perf_counter()
    comp = cross_fn.lower(a, a, v, v).compile()
    seconds = time.perf_counter() - start
    elems = plan.elems() * t * t
    tile_bytes = elems * np.dtype(dtype).itemsize
    cost = comp.cost_analysis()
    cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
    mem = comp.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", float("nan")) if mem is not None else float("nan")
    return {"compile_seconds": seconds, "tile_mib": tile_bytes / 2**20,
            "temp_tile_arrays": temp / tile_bytes,
            "bytes_accessed_tile_arrays": cost.get("bytes accessed", float("nan")) / tile_bytes,
            **hlo_passes(comp.as_text(), elems)}


def gram_seconds(arch, dim: int, n: int, tile: int | None) -> float:
    """Seconds of one symmetric n-input Gram (both kinds) after a warm-up call."""
    x = iw.sample_inputs("sphere", n, dim, seed=1)
    native.native_kernels(arch, x, backend="jax", tile=tile, progress=False)
    start = time.perf_counter()
    native.native_kernels(arch, x, backend="jax", tile=tile, progress=False)
    return time.perf_counter() - start


SCRIPT = Script("jax_tiles", __doc__, out="results/jax_tiles",
                sizes={"quick": "N = 32", "tiny": "8×8 images, N = 6 (seconds)"},
                options=(Option("--n", type=int, default=None,
                                help="inputs per Gram (default 64; --quick 32; --tiny 6)"),
                         Option("--tiles", nargs="*", default=None,
                                help="tile sides, 'auto' for the engine's own (default: auto "
                                     "1 2 4 8; --tiny: auto 1 2)"),
                         Option("--conv", nargs="*", default=["gather"],
                                choices=["gather", "shifts"],
                                help="covariance conv formulations (default: the engine's, "
                                     "gather)")))


@SCRIPT.main
def main(run) -> pd.DataFrame:
    import jax

    size = run.size
    n = run.args.n or {"tiny": 6, "quick": 32}.get(size, 64)
    tiles = run.args.tiles or (["auto", "1", "2"] if size == "tiny" else
                               ["auto", "1", "2", "4", "8"])
    device = jax.devices()[0]
    kind = f"{device.platform}:{getattr(device, 'device_kind', '')}"
    store = run.store(size=size, n=n, device=kind)
    rows = []
    accel = native.default_backend() == "jax"
    for conv, (name, arch, dim), tile in itertools.product(run.args.conv, cases(size), tiles):
        t = native._auto_tile(native.native_plan(arch, dim), n, n, accel) if tile == "auto" \
            else int(tile)
        key = {"case": name, "conv": conv, "tile": str(tile)}
        with conv_formulation(conv):
            r = {**key, "device": kind, "n": n, "tile_side": t, **store.compute(key, lambda: [{
                **compiled_tile(arch, dim, t),
                "iw_seconds": gram_seconds(arch, dim, n, t)}])[0]}
        r["pairs_per_second"] = n * (n + 1) / 2 / r["iw_seconds"]
        rows.append(r)
        print(f"{name:26s} {conv:6s} tile {tile:>4s} (t={t:2d}, {r['tile_mib']:6.1f} MiB/array): "
              f"compile {r['compile_seconds']:5.1f}s, temp {r['temp_tile_arrays']:5.1f} arrays, "
              f"{r['kernels']:3d} kernels, {r['tile_sized_kernels']:3d} write a tile array "
              f"({r['written_tile_arrays']:5.1f} arrays), accessed "
              f"{r['bytes_accessed_tile_arrays']:6.1f} arrays; N={n}: {r['iw_seconds']:7.3f}s, "
              f"{r['pairs_per_second']:8.0f} pairs/s", flush=True)
    df = pd.DataFrame(rows)
    run.write_csv(df, "jax_tiles.csv")
    return df


if __name__ == "__main__":
    main()
