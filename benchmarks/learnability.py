"""Learnability: predicted vs measured learning curves of architectures on your question.

    python benchmarks/learnability.py [--quick | --config FILE] [--out DIR] [--fresh]
        [--memory-budget BYTES] [--store DIR] [--client {none,local}]

With no arguments it runs ``benchmarks/configs/default.toml`` (``--quick``:
``benchmarks/configs/quick.toml``), writing to ``results/learnability/``; ``--config FILE``
runs your own comparison (architectures, domain and dimension, targets, sample sizes,
seeds, the finite-width part and the checks to assert: see :mod:`infwidth.learning.config`)
and writes to ``results/learnability-<name>/``. The default question (``docs/theory.md``
§3–§4): hypercube inputs, d = 64 coordinates in 16 patches of n0 = 4 (α0 = 1/3); a 2-layer
MLP, an S-CNN over the patches and a D-CNN whose tree has two conv levels, fan-in 2
(siblings) then 8 (the top node); targets of power 1: degree 3 inside one patch, a product
of linear functions on two sibling patches, and the same on the two farthest patches.

For every (architecture, target, m) it compares the eigenlearning prediction on the exact
type-level spectrum (:func:`infwidth.predict_learning_curve`) with ridgeless kernel
regression on sampled data (mean ± std over seeds), prints the table and the median relative
gap |pred − meas|/meas, trains finite networks against their kernel if asked, and asserts the
configuration's checks. m*(arch, target) is the smallest m of the grid at which the measured
mean test MSE is below ``threshold`` × the target's power (∞ if none).

Every unit of work — one (architecture, seed, m) solve for all targets, one (width, m, seed)
training run — is committed whole to DIR/runs.sqlite as it finishes, keyed by the whole
configuration; a rerun resumes from there and ends with the same numbers (``--fresh``
starts over). The exit status is 1 if a check fails (after writing all files).

Beyond memory: a seed's Gram of max(m) + n_test points is computed in memory when it fits
``memory_budget`` (configuration key or ``--memory-budget``; default 4 GiB), else filled tile
by tile into a resumable Zarr store (``store``, default DIR/grams; ``client = "local"``: on a
local Dask cluster) and each m solved from it — Cholesky while the m×m Gram fits, conjugate
gradients streaming row blocks beyond (``infwidth.learning.regression.regression_routes``);
the store-route units run smallest m first. The route of each m, the condition number (Cholesky)
and the CG residual are in the outputs. A run that cannot fit even the store route is refused
in one line naming the largest m that fits (exit status 2).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # wall time includes the imports (JAX, neural-tangents)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import infwidth as iw  # noqa: E402
from infwidth.io.harness import Option, Script  # noqa: E402
from infwidth.io.outputs import write_csv, write_json, write_png  # noqa: E402
from infwidth.io.runstore import RunStore, canonical_json  # noqa: E402
from infwidth.kernels.engine import DEFAULT_MEMORY_BUDGET  # noqa: E402
from infwidth.learning import nested_regression, regression_dataset  # noqa: E402
from infwidth.learning.config import (  # noqa: E402
    ConfigError,
    JobConfig,
    check_resources,
    load_config,
)
from infwidth.learning.finite import aggregate_widths  # noqa: E402
from infwidth.learning.regression import regression_routes, stored_regression  # noqa: E402

CONFIGS = Path(__file__).resolve().parent / "configs"
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


# ------------------------------------------------------------------------------ work
def kernel_units(cfg: JobConfig) -> list[dict]:
    return [{"part": "kernel", "arch": a["name"], "seed": sd, "sample_size": m}
            for a in cfg.architectures for sd in range(cfg.seeds) for m in cfg.sample_sizes]


def finite_units(cfg: JobConfig) -> list[dict]:
    f = cfg.finite
    if not f:
        return []
    return [{"part": "finite", "seed": sd, "sample_size": m, "width": w}
            for sd in range(f["seeds"]) for m in f["sample_sizes"] for w in f["widths"]]


def plan_routes(cfg: JobConfig, archs: dict, tgts: dict) -> dict[str, dict[int, str]]:
    """{arch: {m: route}} (in-memory, store-cholesky, store-cg) under the memory budget;
    ValueError (one sentence naming the largest m that fits) when a Gram cannot run at all."""
    first = next(iter(tgts.values()))
    return {a: regression_routes(arch, first, cfg.sample_sizes, cfg.n_test, cfg.memory_budget,
                                 kind=cfg.kind) for a, arch in archs.items()}


def gram_store_path(root: Path, name: str, arch, x: np.ndarray, kind: str) -> Path:
    """One Zarr store per (architecture, inputs, kind), named by what it holds, so another
    configuration's Gram is never mistaken for this one's."""
    from infwidth.kernels.gram_store import arch_record, fingerprint

    key = canonical_json([arch_record(arch), fingerprint(x), kind])
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return root / f"{safe}-{hashlib.sha256(key.encode()).hexdigest()[:12]}.zarr"


def run_kernel_units(store: RunStore, cfg: JobConfig, archs: dict, tgts: dict, bar,
                     routes: dict, grams: Path) -> None:
    """One Gram matrix per (architecture, seed) for max(m) + n_test points; every missing m
    is solved on its leading principal submatrix and committed as its own unit (all targets
    share the solve), in memory or from the Gram store (``routes``; the store-route Grams
    are filled first, then solved smallest m first)."""
    n_train = max(cfg.sample_sizes)
    first = next(iter(tgts.values()))
    budget = cfg.memory_budget or DEFAULT_MEMORY_BUDGET
    stored = []

    def put(u: dict, r: dict, route: str) -> None:
        store.put(u, [{"arch": u["arch"], "target": t, "seed": u["seed"],
                       "sample_size": u["sample_size"], "test_mse": float(r["test_mse"][i]),
                       "condition_number": r["condition_number"], "route": route,
                       "cg_residual": r.get("cg_residual", math.nan)}
                      for i, t in enumerate(tgts)])
        bar.update(1)

    for name, arch in archs.items():
        for sd in range(cfg.seeds):
            todo = [u for u in kernel_units(cfg) if u["arch"] == name and u["seed"] == sd
                    and u not in store]
            if not todo:
                continue
            x, _ = regression_dataset(first, n_train + cfg.n_test, sd)
            clean = np.stack([regression_dataset(t, 1, sd)[1](x) for t in tgts.values()],
                             axis=1)
            if routes[name][n_train] == "in-memory":
                gram = iw.kernel(arch, x, kind=cfg.kind, memory_budget=budget, progress=False)
                for u in todo:
                    put(u, nested_regression(gram, clean[:n_train], clean[n_train:],
                                             [u["sample_size"]])[0], "in-memory")
                del gram
                continue
            from infwidth.kernels.distributed import gram as fill_store

            g = fill_store(arch, x, kinds=(cfg.kind,), client=cfg.client,
                           store=gram_store_path(grams, name, arch, x, cfg.kind),
                           memory_budget=budget, progress=True)
            stored += [(u, g, clean) for u in todo]
    for u, g, clean in sorted(stored, key=lambda z: z[0]["sample_size"]):
        r = stored_regression(g, u["sample_size"], clean[:n_train], clean[n_train:], n_train,
                              memory_budget=budget)
        put(u, r, r["route"])


def run_finite_units(store: RunStore, cfg: JobConfig, archs: dict, tgts: dict, bar) -> None:
    """One training run per (width, m, seed); finite_width_curve pairs it with NTK
    regression on the same m + n_test points."""
    f = cfg.finite
    for u in finite_units(cfg):
        if u in store:
            continue
        per = iw.finite_width_curve(archs[f["arch"]], tgts[f["target"]], [u["sample_size"]],
                                    widths=[u["width"]], seeds=1, seed=u["seed"],
                                    n_test=cfg.n_test, per_seed=True, progress=False)
        rec = per.iloc[0].to_dict()
        rec["arch"] = f["arch"]
        store.put(u, [rec])
        bar.update(1)


# ------------------------------------------------------------------------------ analysis
def predictions(specs: dict, tgts: dict, sizes) -> pd.DataFrame:
    rows = []
    for a, spec in specs.items():
        for t, tgt in tgts.items():
            p = iw.predict_learning_curve(spec, tgt, sizes).curve.wide()
            comp = p.attrs["components"][0]
            lab = tgt.components[0].label
            for _, r in p.iterrows():
                rows.append({"arch": a, "target": t, "sample_size": int(r.sample_size),
                             "predicted_mse": r.test_mse, "kappa": r.kappa, "E0": r.E0,
                             "tail_trace": r.tail_trace,
                             "learnability": r[f"learnability:{lab}"],
                             "staircase_learned": bool(r[f"learned:{lab}"]),
                             "learning_index": comp["learning_index"],
                             "eigenvalue": comp["eigenvalue"],
                             "multiplicity": comp["multiplicity"]})
    return pd.DataFrame(rows)


def m_star(df: pd.DataFrame, col: str, threshold: float, power: float = 1.0) -> float:
    """The smallest m whose ``col`` is below ``threshold`` × ``power`` (∞ if none)."""
    ok = df.sort_values("sample_size")
    hit = ok[ok[col] < threshold * power]
    return float(hit.sample_size.iloc[0]) if len(hit) else math.inf


def reason(row: pd.Series) -> str:
    if row.E0 >= 2.0:
        return (f"interpolation peak (E0 = {row.E0:.1f}): m is near the number of modes the "
                f"kernel resolves, where ridgeless regression is dominated by the smallest "
                f"Gram eigenvalues; eigenlearning gives their mean effect only")
    if row.sample_size <= 32:
        return "small m: eigenlearning's O(1/m) finite-sample corrections"
    return (f"not explained by the known caveats (tail mass τ = {row.tail_trace:.3g} treated "
            f"as a ridge; λ = {row.eigenvalue:.3g})")


def fmt_m(v: float) -> str:
    return "never" if not math.isfinite(v) else str(int(round(v)))



def _aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.groupby(["arch", "target", "sample_size"], sort=False)
    out = g["test_mse"].agg(test_mse="mean", test_mse_std="std", n_seeds="count")
    out["test_mse_std"] = out["test_mse_std"].fillna(0.0)
    out["condition_number"] = g["condition_number"].max()
    if "route" in runs.columns:  # units stored before routes were recorded lack them
        out["route"] = g["route"].first()
        out["cg_residual"] = g["cg_residual"].max()
    return out.reset_index()


def rank_if_complete(spec) -> int | None:
    """Number of modes with λ > 0 when the spectrum holds the kernel's whole trace (so the
    interpolation peak sits at that m), else None."""
    tab = spec.table()
    mass = float((tab.multiplicity.astype(float) * tab.eigenvalue).sum())
    if abs(mass - spec.diagonal) > 1e-9 * spec.diagonal:
        return None
    return int(tab.loc[tab.eigenvalue > 2 * tab.error_bound, "multiplicity"].sum())


def evaluate_checks(cfg: JobConfig, stars: dict, med: float, fin: pd.DataFrame) -> dict:
    out = {}
    for c in cfg.checks:
        t = c["type"]
        if t == "fewer_samples":
            out[f"{c['better']} learns the {c['target']} with fewer samples than the "
                f"{c['worse']}"] = stars[(c["better"], c["target"])] < stars[(c["worse"],
                                                                             c["target"])]
        elif t == "never_learns":
            out[f"{c['arch']} never learns the {c['target']}"] = \
                not math.isfinite(stars[(c["arch"], c["target"])])
        elif t == "learns":
            out[f"{c['arch']} learns the {c['target']}"] = \
                math.isfinite(stars[(c["arch"], c["target"])])
        elif t == "median_gap":
            out[f"median relative gap ≤ {c['max']}"] = med <= c["max"]
        elif t == "finite_gap_shrinks":
            for m, d in fin.groupby("sample_size"):
                g = d.sort_values("width").prediction_gap.to_numpy()
                out[f"finite width, m = {m}: prediction gap shrinks with width "
                    f"({len(g)} widths)"] = bool(len(g) >= 2 and np.all(np.diff(g) < 0))
    return out


def findings_of(cfg: JobConfig, comp: pd.DataFrame, stars_df: pd.DataFrame) -> list[str]:
    """Where the (reconstructed) theory and the measurement disagree."""
    out = []
    for _, r in stars_df.iterrows():
        if math.isfinite(r.learning_index) and r.eigenvalue == 0.0:
            out.append(
                f"{r.arch}, {r.target}: docs/theory.md gives L = {r.learning_index:.3g} (learned "
                f"at m ≈ d^L = {fmt_m(r.staircase_m)}), but the eigenvalue is exactly 0, so it "
                f"is never learned (measured m* = {fmt_m(r.m_star_measured)}); e.g. one ReLU "
                f"layer's NTK h(t) + t·h'(t) has no odd Taylor terms of degree ≥ 3.")
    for t, g in stars_df.groupby("target", sort=False):
        rows = list(g.itertuples())
        for a in rows:
            for b in rows:
                if a.arch < b.arch and math.isclose(a.learning_index, b.learning_index) and \
                        math.isfinite(a.learning_index) and a.eigenvalue > 0 < b.eigenvalue:
                    slow, fast = (a, b) if a.m_star_measured > b.m_star_measured else (b, a)
                    if slow.m_star_measured > fast.m_star_measured:
                        out.append(
                            f"{t}: equal learning index L = {a.learning_index:.3g} for "
                            f"{a.arch} and {b.arch}, but at d = {cfg.dim} {slow.arch}'s "
                            f"eigenvalue ({slow.eigenvalue:.3g}) against {fast.arch}'s "
                            f"({fast.eigenvalue:.3g}) makes it need more samples (m* "
                            f"{fmt_m(slow.m_star_measured)} vs {fmt_m(fast.m_star_measured)}): "
                            f"the staircase is an exponent statement, constants decide at "
                            f"this d.")
    for _, r in comp.iterrows():
        meas_learned = r.test_mse < cfg.threshold
        r_exp = math.log(r.sample_size) / math.log(cfg.dim)
        # the staircase is a statement for log m/log d away from L: compare at a margin
        if r.staircase_learned != meas_learned and r.eigenvalue > 0 and \
                abs(r_exp - r.learning_index) >= 0.25:
            out.append(
                f"staircase vs measurement at m = {r.sample_size}: {r.arch}, {r.target} "
                f"(L = {r.learning_index:.3g}, log m/log d = {r_exp:.2f}) is "
                f"{'learned' if r.staircase_learned else 'not learned'} by the staircase but "
                f"measured MSE is {r.test_mse:.3f}.")
    return out


# ------------------------------------------------------------------------------ figures
def plot_curves(cfg: JobConfig, comp: pd.DataFrame, dense: pd.DataFrame, ranks: dict,
                path: str) -> None:
    tgts = [t["name"] for t in cfg.targets]
    colors = {a["name"]: COLORS[i % len(COLORS)] for i, a in enumerate(cfg.architectures)}
    fig, axes = plt.subplots(1, len(tgts), figsize=(5.2 * len(tgts), 4.4), sharey=True,
                             squeeze=False)
    axes = axes[0]
    for ax, t in zip(axes, tgts):
        for a, col in colors.items():
            d = dense[(dense.arch == a) & (dense.target == t)]
            ax.plot(d.sample_size, d.predicted_mse, color=col, lw=1.6,
                    label=f"{a} predicted")
            m = comp[(comp.arch == a) & (comp.target == t)]
            ax.errorbar(m.sample_size, m.test_mse, yerr=m.test_mse_std, fmt="o", ms=4,
                        color=col, capsize=2, label=f"{a} measured (mean ± std, "
                                                   f"{cfg.seeds} seeds)")
        ax.axhline(cfg.threshold, color="0.4", ls=":", lw=1, label="learned threshold")
        for a, rank in ranks.items():
            if rank is not None and rank <= 2 * max(cfg.sample_sizes):
                ax.axvline(rank, color=colors[a], ls=":", lw=0.8,
                           label=f"{a} rank ({rank} modes with λ > 0)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("training samples m")
        ax.set_title(f"{t}", fontsize=11)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test MSE (target power 1)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=4, frameon=False,
               bbox_to_anchor=(0.5, -0.12))
    fig.suptitle(f"{cfg.kind.upper()} regression on the {cfg.domain}, d = {cfg.dim} "
                 f"({cfg.name}): eigenlearning (lines) vs measured (points)", fontsize=11)
    fig.tight_layout()
    write_png(fig, path)


def plot_finite(fin: pd.DataFrame, cfg: JobConfig, path: str) -> None:
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 4.2))
    for i, (m, d) in enumerate(fin.groupby("sample_size")):
        c = f"C{i}"
        a1.errorbar(d.width, d.test_mse, yerr=d.test_mse_std, fmt="o-", color=c, capsize=2,
                    label=f"network, m = {m}")
        a1.axhline(d.kernel_test_mse.iloc[0], color=c, ls="--", lw=1,
                   label=f"NTK regression, m = {m}")
        a2.plot(d.width, d.prediction_gap, "o-", color=c, label=f"m = {m}")
    w = np.array(sorted(fin.width.unique()), dtype=float)
    ref = fin.prediction_gap.max() * np.sqrt(w[0] / w)
    a2.plot(w, ref, color="0.5", ls=":", label="∝ width^(-1/2)")
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("hidden width")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    a2.set_yscale("log")
    a1.set_ylabel("test MSE")
    a2.set_ylabel("RMS(network − kernel predictor) on test points")
    a1.set_title(f"{cfg.finite['arch']}, {cfg.finite['target']}: trained nets vs the kernel",
                 fontsize=10)
    a2.set_title("distance to the infinite-width predictor", fontsize=10)
    fig.tight_layout()
    write_png(fig, path)


# ------------------------------------------------------------------------------ main
SCRIPT = Script("learnability", __doc__, out=None, sizes={
    "quick": "configs/quick.toml (≤ 2 minutes)"}, options=(
    Option("--config", type=Path, group="size", help="a TOML configuration (see configs/)"),
    Option("--widths", type=int, nargs="+", default=None,
           help="finite-width widths (overrides the configuration's)"),
    Option("--memory-budget", default=None, help="bytes or e.g. '16GiB' (overrides the "
           "configuration's memory_budget; default 4 GiB)"),
    Option("--store", default=None, help="Gram store folder for Grams beyond the budget "
           "(overrides the configuration's; default OUT/grams; relative: under OUT)"),
    Option("--client", default=None, choices=("none", "local"),
           help="fill store tiles in this process (none) or on a local Dask cluster")))


def parse_args(run) -> tuple[argparse.Namespace, JobConfig]:
    """The job's configuration; the output folder (default results/learnability/, or
    results/learnability-<name>/ for --config)."""
    args, ap = run.args, run
    path = args.config or CONFIGS / ("quick.toml" if args.quick else "default.toml")
    try:
        cfg = load_config(path)
        client = None if args.client == "none" else args.client or cfg.client
        budget, store, client = check_resources(args.memory_budget or cfg.memory_budget,
                                                args.store or cfg.store, client, "flags")
        cfg = replace(cfg, memory_budget=budget, store=store, client=client)
    except ConfigError as e:
        ap.error(str(e))
    if args.widths:
        if any(w <= 0 for w in args.widths):
            ap.error("--widths must be positive integers")
        if not cfg.finite:
            ap.error("--widths needs a configuration with a [finite] table")
        cfg = replace(cfg, finite={**cfg.finite, "widths": sorted(set(args.widths))})
    run.out = args.out or os.path.join("results", "learnability" if args.config is None
                                       else f"learnability-{cfg.name}")
    return args, cfg


@SCRIPT.main
def main(run) -> int:
    args, cfg = parse_args(run)
    t0 = time.perf_counter()
    t_import = t0 - T_START
    archs, tgts = cfg.build_architectures(), cfg.build_targets()
    try:
        routes = plan_routes(cfg, archs, tgts)
    except ValueError as e:  # a refusal: one line, no traceback
        print(f"error: {e}", file=sys.stderr)
        return 2
    grams = Path(args.out) / (cfg.store or "grams")
    store = run.store(**cfg.as_dict())


    specs = {a: iw.spectrum(arch, cfg.dim, cfg.domain, cfg.kind,
                            max_degree=cfg.max_degree(a), include_zero=True)
             for a, arch in archs.items()}
    t_spec = time.perf_counter() - t0
    todo = [u for u in kernel_units(cfg) + finite_units(cfg) if u not in store]
    with tqdm(total=len(todo), desc="learnability units left") as bar:
        run_kernel_units(store, cfg, archs, tgts, bar, routes, grams)
        t_kernel = time.perf_counter() - t0 - t_spec
        run_finite_units(store, cfg, archs, tgts, bar)
    t_finite = time.perf_counter() - t0 - t_spec - t_kernel

    # ---- tables (from the store, in the configuration's order)
    runs = store.frame(kernel_units(cfg), key_columns=False)
    meas = _aggregate(runs)
    pred = predictions(specs, tgts, cfg.sample_sizes)
    comp = pred.merge(meas, on=["arch", "target", "sample_size"])
    comp["rel_gap"] = (comp.predicted_mse - comp.test_mse).abs() / comp.test_mse
    comp["z"] = (comp.predicted_mse - comp.test_mse) / (comp.test_mse_std
                                                        / np.sqrt(comp.n_seeds))
    dense_sizes = np.unique(np.round(np.logspace(np.log2(min(cfg.sample_sizes)) - 0.5,
                                                 np.log2(max(cfg.sample_sizes)) + 0.5, 60,
                                                 base=2)).astype(int))
    dense = predictions(specs, tgts, dense_sizes)
    fin_runs = store.frame(finite_units(cfg), key_columns=False) if cfg.finite \
        else pd.DataFrame()
    fin = aggregate_widths(fin_runs) if not fin_runs.empty else pd.DataFrame()

    write_csv(runs, os.path.join(args.out, "measured_runs.csv"))
    write_csv(comp, os.path.join(args.out, "comparison.csv"))
    write_csv(dense, os.path.join(args.out, "predicted_dense.csv"))
    if not fin.empty:
        write_csv(fin_runs, os.path.join(args.out, "finite_width_runs.csv"))
        write_csv(fin, os.path.join(args.out, "finite_width.csv"))
    for a, spec in specs.items():
        tab = spec.table()
        tab["degrees"] = tab["degrees"].map(lambda d: " ".join(map(str, d)))
        tab["support"] = tab["support"].map(lambda d: " ".join(map(str, d)))
        write_csv(tab, os.path.join(args.out, f"spectrum_{a}.csv"))

    # ---- printed table
    pd.set_option("display.width", 160)
    print(f"\nPredicted (eigenlearning on the exact spectrum) vs measured "
          f"{cfg.kind.upper()} regression test MSE, {cfg.domain}, d = {cfg.dim}, "
          f"{cfg.seeds} seeds, {cfg.n_test} test points ({cfg.name})")
    show = comp[["arch", "target", "sample_size", "predicted_mse", "test_mse",
                 "test_mse_std", "rel_gap"]].rename(columns={
                     "sample_size": "m", "predicted_mse": "predicted", "test_mse": "measured",
                     "test_mse_std": "std"})
    print(show.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    med = float(comp.rel_gap.median())
    print(f"\nmedian relative gap |pred − meas|/meas over {len(comp)} points: {med:.3f}")
    if any(r != "in-memory" for rs in routes.values() for r in rs.values()):
        print(f"routes (memory_budget {cfg.memory_budget or DEFAULT_MEMORY_BUDGET} bytes, "
              f"Gram stores in {grams}/):")
        for a, rs in routes.items():
            by = {r: [m for m, q in rs.items() if q == r] for r in dict.fromkeys(rs.values())}
            print(f"  {a}: " + "; ".join(
                f"{r} m = {min(ms)}" + (f"..{max(ms)}" if len(ms) > 1 else "")
                for r, ms in by.items()))
    gap_max = next((c["max"] for c in cfg.checks if c["type"] == "median_gap"), 0.2)
    worst = comp[comp.rel_gap > gap_max]
    if len(worst):
        print(f"{len(worst)} point(s) beyond {gap_max}:")
        for _, r in worst.iterrows():
            print(f"  {r.arch:5s} {r.target:15s} m={r.sample_size:5d}: predicted "
                  f"{r.predicted_mse:.3f}, measured {r.test_mse:.3f} ± {r.test_mse_std:.3f} "
                  f"— {reason(r)}")

    # ---- learnability: m*
    print(f"\nm* = smallest m with measured test MSE < {cfg.threshold} × power "
          f"(predicted m* and the staircase's d^L in brackets)")
    stars, rows = {}, []
    for t in tgts:
        for a in archs:
            c = comp[(comp.arch == a) & (comp.target == t)]
            d = dense[(dense.arch == a) & (dense.target == t)]
            li = float(c.learning_index.iloc[0])
            stars[(a, t)] = m_star(c, "test_mse", cfg.threshold)
            rows.append({"target": t, "arch": a, "learning_index": li,
                         "eigenvalue": float(c.eigenvalue.iloc[0]),
                         "m_star_measured": stars[(a, t)],
                         "m_star_predicted": m_star(d, "predicted_mse", cfg.threshold),
                         "staircase_m": cfg.dim ** li if math.isfinite(li) else math.inf})
    stars_df = pd.DataFrame(rows)
    for _, r in stars_df.iterrows():
        print(f"  {r.target:15s} {r.arch:5s}  L = {r.learning_index:.3g}  λ = "
              f"{r.eigenvalue:.3g}  m* = {fmt_m(r.m_star_measured):>5s}  (predicted "
              f"{fmt_m(r.m_star_predicted)}, d^L = {fmt_m(r.staircase_m)})")
    write_csv(stars_df, os.path.join(args.out, "m_star.csv"))

    checks = evaluate_checks(cfg, stars, med, fin)
    findings = findings_of(cfg, comp, stars_df)
    if not fin.empty:
        f = cfg.finite
        print(f"\nFinite width ({f['arch']}, {f['target']}, {f['seeds']} seed(s), GD to "
              f"convergence, centred NTK-parameterised nets) vs NTK regression on the same "
              f"data:")
        print(fin[["width", "sample_size", "test_mse", "kernel_test_mse", "abs_mse_gap",
                   "prediction_gap", "converged", "steps"]].to_string(
            index=False, float_format=lambda v: f"{v:.4f}"))
        if (fin.converged < 1).any():
            findings.append("some finite-width runs did not converge (column 'converged').")

    print("\nChecks:")
    for k, v in checks.items():
        print(f"  [{'PASS' if v else 'FAIL'}] {k}")
    if findings:
        print("\nWhere the (reconstructed) theory and the measurement disagree:")
        for f in findings:
            print(f"  - {f}")

    # ---- figures
    ranks = {a: rank_if_complete(spec) for a, spec in specs.items()}
    plot_curves(cfg, comp, dense, ranks, os.path.join(args.out, "learning_curves.png"))
    if not fin.empty:
        plot_finite(fin, cfg, os.path.join(args.out, "finite_width.png"))
    r_exp = math.log(max(cfg.sample_sizes)) / math.log(cfg.dim)
    for a, spec in specs.items():
        fig = spec.plot(m_exponent=round(r_exp, 3))  # round-off zeros drawn as zeros
        write_png(fig, os.path.join(args.out, f"space_frequency_{a}.png"))

    wall = time.perf_counter() - T_START
    summary = {"config": cfg.as_dict(), "median_relative_gap": med,
               "n_points": int(len(comp)), "checks": checks, "findings": findings,
               "resources": {"memory_budget": cfg.memory_budget or DEFAULT_MEMORY_BUDGET,
                             "store": cfg.store or "grams", "client": cfg.client},
               "routes": {a: {str(m): r for m, r in rs.items()} for a, rs in routes.items()},
               "m_star": {f"{a}|{t}": (v if math.isfinite(v) else None)
                          for (a, t), v in stars.items()},
               "beyond_gap": worst[["arch", "target", "sample_size", "predicted_mse",
                                    "test_mse", "rel_gap"]].to_dict("records"),
               "wall_time_s": {"total": wall, "imports": t_import, "spectra": t_spec,
                               "kernel_regression": t_kernel, "finite_width": t_finite}}
    write_json(summary, os.path.join(args.out, "summary.json"))
    n_pass = sum(checks.values())
    print(f"\n{cfg.name}: {len(specs)} spectra, {len(runs)} measured rows, {len(fin_runs)} "
          f"finite-width runs ({len(todo)} units computed now, the rest resumed from "
          f"{args.out}/runs.sqlite); checks {n_pass}/{len(checks)} PASS; wall time {wall:.0f} s "
          f"(imports {t_import:.0f} s, spectra {t_spec:.0f} s, kernel regression "
          f"{t_kernel:.0f} s, finite width {t_finite:.0f} s); results in {args.out}/")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
