"""How fast is the exact type table, and how far does a Gram eigendecomposition get in the
same time?

1. Exact route: ``iw.spectrum`` of a 3-level D-CNN (n0 = 8, three conv levels of fan-in 8)
   at D = 4096 up to total degree 4, NTK; wall time with and without the half-resolution
   error estimate (best and median of --repeats runs after one warm-up). Target ≤ 2 s.
2. Gram route (``method="gram"``): the whole cube {±1}^D, kernel by neural-tangents
   (``iw.kernel``), eigendecomposition and Walsh attribution, for a depth-3 circular ConvNet
   (a general DAG, the route's use case) at D = 4, 5, …, each timed after one warm-up call at
   the same D (XLA compilation excluded); it stops at the first D whose time exceeds the
   exact route's. Reported: the largest D within the exact route's wall time and
   the ratio of the two times.

    python benchmarks/spectrum_speed.py [--quick | --tiny] [--out DIR] [--repeats 3] [--fresh]

Writes timings.csv, summary.json and speed.png to --out (default results/spectrum_speed/).
Each timed case (one repeat of an exact route, one D of the Gram route) is a unit committed
to runs.sqlite; a rerun with the same settings reuses the stored timings and says so
(--fresh: time everything again). ``--tiny`` (smoke test: degree ≤ 2, one repeat, Gram
route at D = 4, 5 without the early stop) only checks that the script runs and resumes.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.eigenspaces.monte_carlo import MAX_GRAM_DIM
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json, write_png
from infwidth.io.scripts import progress

TARGET_S = 2.0

def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


SCRIPT = Script("spectrum_speed", __doc__, sizes={
    "quick": "one repeat, degree ≤ 3",
    "tiny": "smoke test: degree ≤ 2, one repeat, Gram D = 4, 5 (seconds)"}, options=(
    Option("--repeats", type=int, default=3),
    Option("--max-degree", type=int, default=4),
    Option("--kind", default="ntk", choices=("ntk", "nngp"))))


@SCRIPT.main
def main(harness):
    args = harness.args
    if args.repeats < 1:
        harness.error(f"--repeats must be positive, got {args.repeats}")
    gram_dims = range(4, MAX_GRAM_DIM + 1)
    for flag, repeats, degree in (("quick", 1, 3), ("tiny", 1, 2)):
        if getattr(args, flag):
            args.repeats, args.max_degree = repeats, min(args.max_degree, degree)
    if args.tiny:
        gram_dims = range(4, 6)
    harness.out = args.out or ("results/spectrum_speed" if harness.size == "full"
                               else f"results/spectrum_speed_{harness.size}")
    out = harness.out
    arch, dim = iw.DCNN(patch_dim=8, filter_sizes=(8, 8, 8)), 4096
    gram_arch = iw.ConvNet(filter_size=3, depth=3)
    store = harness.store(kind=args.kind, max_degree=args.max_degree,
                          exact=[repr(arch), dim], gram=repr(gram_arch))
    rows, reused = [], 0

    def timed_case(route: str, d: int, rep: int, measure) -> float:
        """One timed case: its row from the store when committed, else measured now."""
        nonlocal reused
        key = {"route": route, "dim": d, "repeat": rep}
        reused += key in store
        rows.extend(store.compute(key, lambda: [{**key, **measure()}]))
        return rows[-1]["seconds"]

    warm: list = []

    def exact(est: bool) -> dict:
        if not warm:  # warm-up (first call) before the first timed exact case
            spec = iw.spectrum(arch, dim, kind=args.kind, max_degree=args.max_degree)
            warm.append((len(spec.types), float(sum(t.multiplicity for t in spec.types))))
        s = _timed(lambda: iw.spectrum(arch, dim, kind=args.kind,
                                       max_degree=args.max_degree, error_estimate=est))
        return dict(seconds=s, types=warm[0][0], eigenfunctions=warm[0][1])

    for route, est in (("exact", True), ("exact-no-error-estimate", False)):
        for rep in progress(range(args.repeats), desc=route):
            timed_case(route, dim, rep, lambda est=est: exact(est))
    ex = [r["seconds"] for r in rows if r["route"] == "exact"]
    n_types, n_eig = rows[0]["types"], rows[0]["eigenfunctions"]
    t_exact = min(ex)

    for d in gram_dims:
        def gram(d=d) -> dict:
            def run():
                return iw.spectrum(gram_arch, d, kind=args.kind,
                                   max_degree=min(args.max_degree, d), method="gram")
            run()  # same shapes: XLA compiles here, not in the timed call
            return dict(seconds=_timed(run), types=np.nan, eigenfunctions=2.0 ** d)

        s = timed_case("gram", d, 0, gram)
        if s > t_exact and not args.tiny:  # --tiny: fixed dims, whatever the timings
            break
    df = pd.DataFrame(rows)
    write_csv(df, out / "timings.csv")
    gram = df[df.route == "gram"].sort_values("dim")
    within = gram[gram.seconds <= t_exact]
    d_max = int(within.dim.max()) if len(within) else None
    t_gram = float(within.seconds.iloc[-1]) if len(within) else float("nan")
    no_est = min(r["seconds"] for r in rows if r["route"] == "exact-no-error-estimate")
    summary = dict(
        exact=dict(arch="DCNN(patch_dim=8, filter_sizes=(8, 8, 8))", dim=dim,
                   max_degree=args.max_degree, kind=args.kind, types=n_types,
                   eigenfunctions=n_eig, best_seconds=t_exact,
                   median_seconds=statistics.median(ex),
                   best_seconds_without_error_estimate=no_est, target_seconds=TARGET_S,
                   target_over_best_time=TARGET_S / t_exact),
        gram=dict(arch="ConvNet(filter_size=3, depth=3)", largest_dim_within_exact_time=d_max,
                  seconds_at_that_dim=t_gram, exact_over_gram_time=t_exact / t_gram,
                  times=dict(zip(gram.dim.astype(int).tolist(), gram.seconds.tolist()))),
        cores=os.cpu_count(), timings_reused_from_store=reused)
    write_json(summary, out / "summary.json")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    ax.semilogy(gram.dim, gram.seconds, "o-", label="Gram route: all 2^D points (ConvNet)")
    ax.axhline(t_exact, color="tab:red", ls="--",
               label=f"exact type table, D = 4096, degree ≤ {args.max_degree}: {t_exact:.2f} s")
    ax.axhline(TARGET_S, color="0.5", ls=":", label=f"target {TARGET_S:g} s")
    ax.set_xlabel("input dimension D of the Gram route")
    ax.set_ylabel("wall time [s]")
    ax.set_title(f"Spectrum routes on {os.cpu_count()} cores ({args.kind.upper()})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_png(fig, out / "speed.png", dpi=120, tight=False)

    print(f"exact type table, 3-level DCNN, D = {dim}, degree ≤ {args.max_degree}, "
          f"{args.kind.upper()}: {n_types} types, {n_eig:.3g} eigenfunctions")
    print(f"  best {t_exact:.2f} s, median {statistics.median(ex):.2f} s over {len(ex)} runs "
          f"(without the error-estimate pass: {no_est:.2f} s); target {TARGET_S:g} s: "
          f"target/best = {TARGET_S / t_exact:.2f}"
          + ("" if t_exact <= TARGET_S else "  (MISSES the target)"))
    print("Gram route (full cube, neural-tangents kernel, ConvNet depth 3):")
    for _, r in gram.iterrows():
        print(f"  D = {int(r.dim):2d}: {r.seconds:7.2f} s  ({2 ** int(r.dim)} points)")
    if reused:
        print(f"({reused} of {len(rows)} timings were reused from {out}/runs.sqlite, "
              f"measured by an earlier run; --fresh measures all again)")
    print(f"largest D the Gram route reaches within the exact route's {t_exact:.2f} s: "
          f"D = {d_max} ({t_gram:.2f} s; exact/gram time ratio {t_exact / t_gram:.2f}), "
          f"against D = {dim} for the exact route.")
    return summary


if __name__ == "__main__":
    main()
