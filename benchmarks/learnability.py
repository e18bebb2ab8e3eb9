"""Learnability: predicted vs measured learning curves of MLP, S-CNN and D-CNN.

    python benchmarks/learnability.py [--quick] [--out DIR]     (default results/learnability/)

Setting (``theory.md`` §3–§4): hypercube inputs, d = D = 64 coordinates cut into 16 patches
of n0 = 4 (α0 = 1/3). Architectures (ReLU, NTK): a 2-layer MLP; an S-CNN over the patches;
a D-CNN whose tree has two conv levels, fan-in 2 (siblings) then 8 (the top node). Targets
(power 1): a degree-3 Walsh monomial inside one patch (short-range high-frequency), a product
of linear functions on two sibling patches, and the same on the two farthest patches
(long-range low-frequency, joined only at the top node). Learning indices L = α0·|k| + S(k):

    target           MLP   S-CNN   D-CNN
    degree 3, local   3     5/3     5/3
    sibling pair      2     ∞       3/2
    far pair          2     ∞       2

For every (architecture, target, m) it compares the eigenlearning prediction on the exact
type-level spectrum (:func:`infwidth.predict_learning_curve`) with ridgeless kernel regression
on sampled data (mean ± std over seeds, :func:`infwidth.kernel_regression_curve`'s method),
prints the table and the median relative gap |pred − meas|/meas, and checks:

- "learns with fewer samples": m*(arch, target) = the smallest m of the grid at which the
  measured mean test MSE is below 0.5 × the target's power (∞ if none). The D-CNN must have a
  smaller m* than the MLP on the sibling pair and on the local degree-3 target, and the S-CNN
  an infinite m* on both cross-patch targets.
- the median relative gap ≤ 0.2 (default settings); rows beyond 0.2 are listed with a reason.
- finite width (MLP, sibling pair): the RMS distance between the trained network's test
  predictions and the NTK regression predictor on the same data shrinks as the width grows.

Every chunk of work — one (architecture, seed, m) solve for all targets, one (width, m, seed)
training run — is saved atomically to DIR/partial/ as it finishes; a rerun with the same
settings resumes from there. The exit status is 1 if a check fails (after writing all files).
"""

from __future__ import annotations

import time

T_START = time.perf_counter()  # wall time includes the imports (JAX, neural-tangents)

import argparse
import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field, replace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import infwidth as iw
from infwidth.io.outputs import write_csv, write_json, write_png, write_text
from infwidth.kernels.hypercube_gram import tree_gram
from infwidth.learning import nested_regression, regression_dataset
from infwidth.learning.finite import aggregate_widths

DIM, N0, FILTERS = 64, 4, (2, 8)
THRESHOLD = 0.5  # "learned": measured test MSE < THRESHOLD × target power
MAX_REL_GAP = 0.2
COLORS = {"MLP": "tab:blue", "S-CNN": "tab:orange", "D-CNN": "tab:green"}


@dataclass(frozen=True)
class Settings:
    sample_sizes: tuple[int, ...]
    seeds: int
    n_test: int
    finite_arch: str
    finite_target: str
    finite_sizes: tuple[int, ...]
    widths: tuple[int, ...]
    finite_seeds: int
    max_degree: dict = field(default_factory=dict)
    dim: int = DIM
    patch_dim: int = N0
    filters: tuple[int, ...] = FILTERS


DEFAULT = Settings((16, 32, 64, 128, 256, 512, 1024, 2048, 4096), 4, 1000, "MLP",
                   "sibling pair", (64,), (64, 256, 1024, 2048), 2,
                   {"MLP": 8, "S-CNN": N0, "D-CNN": 6})
QUICK = Settings((16, 64, 256, 1024), 2, 500, "MLP", "sibling pair", (64,), (64, 512), 1,
                 {"MLP": 6, "S-CNN": N0, "D-CNN": 4})


def architectures() -> dict[str, iw.Architecture]:
    return {"MLP": iw.MLP(depth=2), "S-CNN": iw.SCNN(patch_dim=N0),
            "D-CNN": iw.DCNN(patch_dim=N0, filter_sizes=FILTERS)}


def targets() -> dict[str, iw.Target]:
    t = [iw.Target.local("hypercube", DIM, N0, degree=3, name="local degree 3"),
         iw.Target.pair("hypercube", DIM, N0, (0, 1), name="sibling pair"),
         iw.Target.far_pair("hypercube", DIM, N0, name="far pair")]
    return {x.name: x for x in t}


# ------------------------------------------------------------------------------ files
class Store:
    """Per-chunk results under DIR/partial/, rewritten atomically after every chunk."""

    def __init__(self, out: str, settings: Settings):
        self.dir = os.path.join(out, "partial")
        os.makedirs(self.dir, exist_ok=True)
        cfg = json.dumps(asdict(settings), sort_keys=True)
        cfg_path = os.path.join(self.dir, "settings.json")
        if os.path.exists(cfg_path) and open(cfg_path).read() != cfg:
            stale = f"{self.dir}.stale-{int(time.time())}"
            os.replace(self.dir, stale)
            os.makedirs(self.dir)
            print(f"settings changed: previous partial results moved to {stale}")
        write_text(cfg, cfg_path)
        self.kernel_path = os.path.join(self.dir, "kernel_runs.csv")
        self.finite_path = os.path.join(self.dir, "finite_runs.csv")
        self.kernel = pd.read_csv(self.kernel_path) if os.path.exists(self.kernel_path) \
            else pd.DataFrame()
        self.finite = pd.read_csv(self.finite_path) if os.path.exists(self.finite_path) \
            else pd.DataFrame()

    def kernel_done(self) -> set:
        if self.kernel.empty:
            return set()
        return set(zip(self.kernel.arch, self.kernel.seed, self.kernel.sample_size))

    def finite_done(self) -> set:
        if self.finite.empty:
            return set()
        return set(zip(self.finite.width, self.finite.sample_size, self.finite.seed))

    def add_kernel(self, rows: list[dict]) -> None:
        self.kernel = pd.concat([self.kernel, pd.DataFrame(rows)], ignore_index=True)
        write_csv(self.kernel, self.kernel_path)

    def add_finite(self, rows: list[dict]) -> None:
        self.finite = pd.concat([self.finite, pd.DataFrame(rows)], ignore_index=True)
        write_csv(self.finite, self.finite_path)


# ------------------------------------------------------------------------------ work
def run_kernel_chunks(store: Store, s: Settings, archs: dict, tgts: dict, bar) -> None:
    """One Gram matrix per (architecture, seed) for max(m) + n_test points; every missing m
    is solved on its leading principal submatrix and saved as its own chunk (all targets
    share the solve)."""
    n_train = max(s.sample_sizes)
    first = next(iter(tgts.values()))
    done = store.kernel_done()
    for name, arch in archs.items():
        for sd in range(s.seeds):
            todo = [m for m in s.sample_sizes if (name, sd, m) not in done]
            if not todo:
                continue
            x, _ = regression_dataset(first, n_train + s.n_test, sd)
            clean = np.stack([regression_dataset(t, 1, sd)[1](x) for t in tgts.values()],
                             axis=1)
            gram = tree_gram(arch, x, kind="ntk")
            for m in todo:
                r = nested_regression(gram, clean[:n_train], clean[n_train:], [m])[0]
                store.add_kernel([{"arch": name, "target": t, "seed": sd,
                                   "sample_size": m, "test_mse": float(r["test_mse"][i]),
                                   "condition_number": r["condition_number"]}
                                  for i, t in enumerate(tgts)])
                bar.update(1)


def run_finite_chunks(store: Store, s: Settings, archs: dict, tgts: dict, bar) -> None:
    """One training run per (width, m, seed); finite_width_curve pairs it with NTK
    regression on the same m + n_test points."""
    arch, target = archs[s.finite_arch], tgts[s.finite_target]
    done = store.finite_done()
    for sd in range(s.finite_seeds):
        for m in s.finite_sizes:
            for w in s.widths:
                if (w, m, sd) in done:
                    continue
                per = iw.finite_width_curve(arch, target, [m], widths=[w], seeds=1, seed=sd,
                                            n_test=s.n_test, per_seed=True, progress=False)
                rec = per.iloc[0].to_dict()
                rec["arch"] = s.finite_arch
                store.add_finite([rec])
                bar.update(1)


# ------------------------------------------------------------------------------ analysis
def predictions(specs: dict, tgts: dict, sizes) -> pd.DataFrame:
    rows = []
    for a, spec in specs.items():
        for t, tgt in tgts.items():
            p = iw.predict_learning_curve(spec, tgt, sizes)
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


def m_star(df: pd.DataFrame, col: str, power: float = 1.0) -> float:
    ok = df.sort_values("sample_size")
    hit = ok[ok[col] < THRESHOLD * power]
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


# ------------------------------------------------------------------------------ figures
def plot_curves(comp: pd.DataFrame, dense: pd.DataFrame, tgts: dict, s: Settings,
                path: str, rank: int | None = None) -> None:
    fig, axes = plt.subplots(1, len(tgts), figsize=(5.2 * len(tgts), 4.4), sharey=True)
    for ax, t in zip(axes, tgts):
        for a, col in COLORS.items():
            d = dense[(dense.arch == a) & (dense.target == t)]
            ax.plot(d.sample_size, d.predicted_mse, color=col, lw=1.6,
                    label=f"{a} predicted")
            m = comp[(comp.arch == a) & (comp.target == t)]
            ax.errorbar(m.sample_size, m.test_mse, yerr=m.test_mse_std, fmt="o", ms=4,
                        color=col, capsize=2, label=f"{a} measured (mean ± std, "
                                                   f"{s.seeds} seeds)")
        ax.axhline(THRESHOLD, color="0.4", ls=":", lw=1, label="learned threshold")
        if rank is not None:
            ax.axvline(rank, color=COLORS["S-CNN"], ls=":", lw=0.8,
                       label=f"S-CNN rank ({rank} modes with λ > 0)")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("training samples m")
        ax.set_title(f"{t}", fontsize=11)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("test MSE (target power 1)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=4, frameon=False,
               bbox_to_anchor=(0.5, -0.12))
    fig.suptitle(f"NTK regression on the hypercube, d = {DIM}, patches of {N0}, D-CNN filters "
                 f"{FILTERS}: eigenlearning (lines) vs measured (points)", fontsize=11)
    fig.tight_layout()
    write_png(fig, path)


def plot_finite(fin: pd.DataFrame, s: Settings, path: str) -> None:
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
    a1.set_title(f"{s.finite_arch}, {s.finite_target}: trained nets vs the kernel", fontsize=10)
    a2.set_title("distance to the infinite-width predictor", fontsize=10)
    fig.tight_layout()
    write_png(fig, path)


# ------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small grid (≤ 2 minutes)")
    ap.add_argument("--out", default=os.path.join("results", "learnability"),
                    help="output directory (default results/learnability/)")
    ap.add_argument("--widths", type=int, nargs="+", default=None,
                    help="finite-width widths (default 64 256 1024 2048)")
    args = ap.parse_args(argv)
    s = QUICK if args.quick else DEFAULT
    if args.widths:
        if any(w <= 0 for w in args.widths):
            ap.error("--widths must be positive integers")
        s = replace(s, widths=tuple(sorted(set(args.widths))))
    os.makedirs(args.out, exist_ok=True)
    t0 = time.perf_counter()
    t_import = t0 - T_START
    archs, tgts = architectures(), targets()
    store = Store(args.out, s)

    specs = {a: iw.spectrum(arch, DIM, "hypercube", "ntk", max_degree=s.max_degree[a],
                            include_zero=True) for a, arch in archs.items()}
    t_spec = time.perf_counter() - t0
    n_kernel = len(archs) * s.seeds * len(s.sample_sizes) - len(store.kernel_done())
    n_finite = s.finite_seeds * len(s.finite_sizes) * len(s.widths) - len(store.finite_done())
    with tqdm(total=n_kernel + n_finite, desc="learnability chunks left") as bar:
        run_kernel_chunks(store, s, archs, tgts, bar)
        t_kernel = time.perf_counter() - t0 - t_spec
        run_finite_chunks(store, s, archs, tgts, bar)
    t_finite = time.perf_counter() - t0 - t_spec - t_kernel

    # ---- tables
    runs = store.kernel
    runs = runs[runs.sample_size.isin(s.sample_sizes) & (runs.seed < s.seeds)]
    meas = _aggregate(runs)
    pred = predictions(specs, tgts, s.sample_sizes)
    comp = pred.merge(meas, on=["arch", "target", "sample_size"])
    comp["rel_gap"] = (comp.predicted_mse - comp.test_mse).abs() / comp.test_mse
    comp["z"] = (comp.predicted_mse - comp.test_mse) / (comp.test_mse_std
                                                        / np.sqrt(comp.n_seeds))
    dense_sizes = np.unique(np.round(np.logspace(np.log2(min(s.sample_sizes)) - 0.5,
                                                 np.log2(max(s.sample_sizes)) + 0.5, 60,
                                                 base=2)).astype(int))
    dense = predictions(specs, tgts, dense_sizes)
    fin = aggregate_widths(store.finite) if not store.finite.empty else pd.DataFrame()

    write_csv(runs, os.path.join(args.out, "measured_runs.csv"))
    write_csv(comp, os.path.join(args.out, "comparison.csv"))
    write_csv(dense, os.path.join(args.out, "predicted_dense.csv"))
    if not fin.empty:
        write_csv(store.finite, os.path.join(args.out, "finite_width_runs.csv"))
        write_csv(fin, os.path.join(args.out, "finite_width.csv"))
    for a, spec in specs.items():
        tab = spec.table()
        tab["degrees"] = tab["degrees"].map(lambda d: " ".join(map(str, d)))
        tab["support"] = tab["support"].map(lambda d: " ".join(map(str, d)))
        write_csv(tab, os.path.join(args.out, f"spectrum_{a}.csv"))

    # ---- printed table
    pd.set_option("display.width", 160)
    print(f"\nPredicted (eigenlearning on the exact spectrum) vs measured NTK regression "
          f"test MSE, d = {DIM}, n0 = {N0}, D-CNN filters {FILTERS}, {s.seeds} seeds, "
          f"{s.n_test} test points")
    show = comp[["arch", "target", "sample_size", "predicted_mse", "test_mse",
                 "test_mse_std", "rel_gap"]].rename(columns={
                     "sample_size": "m", "predicted_mse": "predicted", "test_mse": "measured",
                     "test_mse_std": "std"})
    print(show.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    med = float(comp.rel_gap.median())
    print(f"\nmedian relative gap |pred − meas|/meas over {len(comp)} points: {med:.3f} "
          f"(acceptance ≤ {MAX_REL_GAP})")
    worst = comp[comp.rel_gap > MAX_REL_GAP]
    if len(worst):
        print(f"{len(worst)} point(s) beyond {MAX_REL_GAP}:")
        for _, r in worst.iterrows():
            print(f"  {r.arch:5s} {r.target:15s} m={r.sample_size:5d}: predicted "
                  f"{r.predicted_mse:.3f}, measured {r.test_mse:.3f} ± {r.test_mse_std:.3f} "
                  f"— {reason(r)}")

    # ---- learnability: m*
    print(f"\nm* = smallest m with measured test MSE < {THRESHOLD} × power "
          f"(predicted m* and the staircase's d^L in brackets)")
    stars, rows = {}, []
    for t in tgts:
        for a in archs:
            c = comp[(comp.arch == a) & (comp.target == t)]
            d = dense[(dense.arch == a) & (dense.target == t)]
            li = float(c.learning_index.iloc[0])
            stars[(a, t)] = m_star(c, "test_mse")
            rows.append({"target": t, "arch": a, "learning_index": li,
                         "eigenvalue": float(c.eigenvalue.iloc[0]),
                         "m_star_measured": stars[(a, t)],
                         "m_star_predicted": m_star(d, "predicted_mse"),
                         "staircase_m": DIM ** li if math.isfinite(li) else math.inf})
    stars_df = pd.DataFrame(rows)
    for _, r in stars_df.iterrows():
        print(f"  {r.target:15s} {r.arch:5s}  L = {r.learning_index:.3g}  λ = "
              f"{r.eigenvalue:.3g}  m* = {fmt_m(r.m_star_measured):>5s}  (predicted "
              f"{fmt_m(r.m_star_predicted)}, d^L = {fmt_m(r.staircase_m)})")
    write_csv(stars_df, os.path.join(args.out, "m_star.csv"))

    checks = {}
    for t in ("sibling pair", "local degree 3"):
        checks[f"D-CNN learns the {t} with fewer samples than the MLP"] = \
            stars[("D-CNN", t)] < stars[("MLP", t)]
    for t in ("sibling pair", "far pair"):
        checks[f"S-CNN never learns the {t}"] = not math.isfinite(stars[("S-CNN", t)])
    checks[f"median relative gap ≤ {MAX_REL_GAP}"] = med <= MAX_REL_GAP

    # ---- findings against the reconstructed theory
    findings = []
    for _, r in stars_df.iterrows():
        if math.isfinite(r.learning_index) and r.eigenvalue == 0.0:
            findings.append(
                f"{r.arch}, {r.target}: theory.md gives L = {r.learning_index:.3g} (learned "
                f"at m ≈ d^L = {fmt_m(r.staircase_m)}), but the eigenvalue is exactly 0 "
                f"(one ReLU layer: the NTK h(t) + t·h'(t) has no odd Taylor terms of degree "
                f"≥ 3), so it is never learned (measured m* = {fmt_m(r.m_star_measured)}).")
    for t in tgts:
        lm = stars_df[(stars_df.arch == "MLP") & (stars_df.target == t)].iloc[0]
        ld = stars_df[(stars_df.arch == "D-CNN") & (stars_df.target == t)].iloc[0]
        if math.isclose(ld.learning_index, lm.learning_index) and \
                ld.m_star_measured > lm.m_star_measured:
            findings.append(
                f"{t}: equal learning index L = {lm.learning_index:.3g} for MLP and D-CNN, but "
                f"at d = {DIM} the D-CNN eigenvalue ({ld.eigenvalue:.3g}) is below the MLP's "
                f"({lm.eigenvalue:.3g}) and the D-CNN needs more samples (m* "
                f"{fmt_m(ld.m_star_measured)} vs {fmt_m(lm.m_star_measured)}): the staircase "
                f"is an exponent statement, constants decide at this d.")
    for _, r in comp.iterrows():
        meas_learned = r.test_mse < THRESHOLD
        r_exp = math.log(r.sample_size) / math.log(DIM)
        # the staircase is a statement for log m/log d away from L: compare at a margin
        if r.staircase_learned != meas_learned and r.eigenvalue > 0 and \
                abs(r_exp - r.learning_index) >= 0.25:
            findings.append(
                f"staircase vs measurement at m = {r.sample_size}: {r.arch}, {r.target} "
                f"(L = {r.learning_index:.3g}, log m/log d = "
                f"{math.log(r.sample_size) / math.log(DIM):.2f}) is "
                f"{'learned' if r.staircase_learned else 'not learned'} by the staircase but "
                f"measured MSE is {r.test_mse:.3f}.")

    # ---- finite width
    if not fin.empty:
        print(f"\nFinite width ({s.finite_arch}, {s.finite_target}, {s.finite_seeds} seed(s), "
              f"GD to convergence, centred NTK-parameterised nets) vs NTK regression on the "
              f"same data:")
        print(fin[["width", "sample_size", "test_mse", "kernel_test_mse", "abs_mse_gap",
                   "prediction_gap", "converged", "steps"]].to_string(
            index=False, float_format=lambda v: f"{v:.4f}"))
        for m, d in fin.groupby("sample_size"):
            g = d.sort_values("width").prediction_gap.to_numpy()
            if len(g) >= 2:
                key = (f"finite width, m = {m}: prediction gap shrinks with width "
                       f"({len(g)} widths)")
                checks[key] = bool(np.all(np.diff(g) < 0))
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
    sc = specs["S-CNN"].table()
    rank = int(sc.loc[sc.eigenvalue > 2 * sc.error_bound, "multiplicity"].sum())
    plot_curves(comp, dense, tgts, s, os.path.join(args.out, "learning_curves.png"), rank)
    if not fin.empty:
        plot_finite(fin, s, os.path.join(args.out, "finite_width.png"))
    r_exp = math.log(max(s.sample_sizes)) / math.log(DIM)
    for a, spec in specs.items():
        fig = spec.plot(m_exponent=round(r_exp, 3))  # round-off zeros drawn as zeros
        write_png(fig, os.path.join(args.out, f"space_frequency_{a}.png"))

    wall = time.perf_counter() - T_START
    summary = {"settings": asdict(s), "quick": args.quick, "dim": DIM, "patch_dim": N0,
               "filters": list(FILTERS), "median_relative_gap": med,
               "n_points": int(len(comp)), "checks": checks, "findings": findings,
               "m_star": {f"{a}|{t}": (v if math.isfinite(v) else None)
                          for (a, t), v in stars.items()},
               "beyond_gap": worst[["arch", "target", "sample_size", "predicted_mse",
                                    "test_mse", "rel_gap"]].to_dict("records"),
               "wall_time_s": {"total": wall, "imports": t_import, "spectra": t_spec, "kernel_regression": t_kernel,
                               "finite_width": t_finite}}
    write_json(summary, os.path.join(args.out, "summary.json"))
    print(f"\nwall time {wall:.0f} s (imports {t_import:.0f} s, spectra {t_spec:.0f} s, "
          f"kernel regression "
          f"{t_kernel:.0f} s, finite width {t_finite:.0f} s; chunks resumed from "
          f"{args.out}/partial/ are not re-timed); results in {args.out}/")
    return 0 if all(checks.values()) else 1


def _aggregate(runs: pd.DataFrame) -> pd.DataFrame:
    g = runs.groupby(["arch", "target", "sample_size"], sort=False)
    out = g["test_mse"].agg(test_mse="mean", test_mse_std="std", n_seeds="count")
    out["test_mse_std"] = out["test_mse_std"].fillna(0.0)
    out["condition_number"] = g["condition_number"].max()
    return out.reset_index()


if __name__ == "__main__":
    sys.exit(main())
