"""Depth cut-off of random MLPs against initialisation and width, and the deep limit (seeds/004).

Measures, on digits (rows on the sphere ‖x‖² = 64), the claims of Avelin & Karlsson
(JMLR 2022) as reconstructed in docs/theory.md §5:

1. phase diagram: ξ_c = −1/log χ_c over the (σ_w², σ_b²) plane for tanh and erf, with the
   edge-of-chaos curve χ1 = 1 (mean field: infwidth.studies.depth_cutoff.maps);
2. cut-off depth of random finite networks against (σ_w², σ_b²): the depth where the mean
   pairwise cosine of the pre-activations crosses 1/2, and where the share of inputs that a
   random 10-class readout puts in its most common class crosses 1/2, with the 10–90 %
   windows; beside the infinite-width (mean-field) values and ξ_c (ratio cut-off / ξ_c);
3. the same cut-offs against the width (32 … 1024);
4. the deep limit of residual gradient layers x ↦ x − h∇g(x): ‖(1/n)u_n(x) − v‖ against n,
   and the spread over starting points x against its bound ‖x − y‖/n.

Outputs in --out (default results/depth_cutoff/): phase_diagram.csv, edge_of_chaos.csv,
profiles.csv, cutoffs.csv, deep_limit.csv, summary.json and phase_diagram.png,
cutoff_vs_init.png, cutoff_vs_width.png, profiles.png, deep_limit.png. Every unit (the phase
diagram, one network configuration, one drift of the deep limit) is committed whole to
runs.sqlite; a rerun with the same arguments resumes with the same numbers (--fresh: start
over).

    python benchmarks/depth_cutoff.py            # ~5-8 min on 2 cores
    python benchmarks/depth_cutoff.py --quick    # < 2 min
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np
import pandas as pd
from tqdm import tqdm

import infwidth as iw
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json, write_png
from infwidth.io.runstore import RunStore
from infwidth.io.scripts import progress, unit
from infwidth.studies.depth_cutoff import deep_limit as DL
from infwidth.studies.depth_cutoff import maps as D
from infwidth.studies.depth_cutoff import profiles as DP

# Cut-off rules: level is an absolute value (1/2); the window is 10–90 % of the way from the
# first layer's value to 1 (both quantities tend to 1 when the inputs collapse).
RULES = {"cosine": dict(level=0.5, bounds=(None, 1.0)),
         "top_class_fraction": dict(level=0.5, bounds=(None, 1.0))}
KEY = ["activation", "sigma_w2", "sigma_b2", "width"]


# --------------------------------------------------------------------------- io helpers
save_csv, save_json = write_csv, write_json


def save_png(fig, path: Path) -> None:
    write_png(fig, path, dpi=110)


# --------------------------------------------------------------------------- settings
def settings(quick: bool, tiny: bool = False) -> dict:
    if tiny:  # smoke-test size (seconds): the resume tests
        return dict(n_inputs=16, depth=30, seeds=1, width=32, widths=[32, 64],
                    w_grid=np.linspace(0.5, 3.0, 4), b_grid=np.linspace(0.0, 0.4, 3),
                    tanh_w=[1.0, 2.0], tanh_b=[0.1], relu_w=[1.5],
                    width_configs=[("relu", 2.0, 0.0)], deep_layers=200)
    if quick:
        return dict(n_inputs=32, depth=100, seeds=2, width=128, widths=[32, 128, 512],
                    w_grid=np.linspace(0.3, 4.0, 16), b_grid=np.linspace(0.0, 0.5, 6),
                    tanh_w=[0.8, 1.4, 1.76, 2.2], tanh_b=[0.02, 0.2], relu_w=[1.5, 2.0],
                    width_configs=[("relu", 2.0, 0.0)], deep_layers=2000)
    return dict(n_inputs=64, depth=200, seeds=6, width=256, widths=[32, 64, 128, 256, 512, 1024],
                w_grid=np.linspace(0.3, 4.0, 38), b_grid=np.linspace(0.0, 0.5, 21),
                tanh_w=[0.6, 0.9, 1.2, 1.4, 1.6, 1.76, 2.0, 2.5],
                tanh_b=[0.01, 0.1, 0.2, 0.4], relu_w=[1.0, 1.5, 1.8, 2.0, 2.5],
                width_configs=[("relu", 2.0, 0.0), ("tanh", 1.4, 0.05), ("tanh", 1.76, 0.05)],
                deep_layers=20000)


def init_configs(s: dict) -> list[tuple[str, float, float]]:
    cfg = [("tanh", w, 0.05) for w in s["tanh_w"]]
    cfg += [("tanh", 1.4, b) for b in s["tanh_b"]]
    cfg += [("relu", w, 0.1) for w in s["relu_w"]] + [("relu", 2.0, 0.0)]
    return cfg


# --------------------------------------------------------------------------- part 1
def run_phase(store: RunStore, out: Path, s: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The mean-field phase diagram and edge-of-chaos curves: one unit."""
    def compute() -> list[dict]:
        frames, eoc = [], []
        for act in tqdm(["tanh", "erf"], desc="phase diagram"):
            frames.append(D.phase_diagram(act, s["w_grid"], s["b_grid"]))
            sb = np.unique(np.r_[0.0, np.geomspace(1e-5, s["b_grid"].max(), 60)])
            eoc.append(pd.DataFrame({"activation": act, "sigma_b2": sb,
                                     "sigma_w2": D.edge_of_chaos(act, sb)}))
        return [{"phase": pd.concat(frames, ignore_index=True).to_dict("records"),
                 "eoc": pd.concat(eoc, ignore_index=True).to_dict("records")}]

    rec = store.compute({"part": "phase"}, compute)[0]
    phase, eoc = pd.DataFrame(rec["phase"]), pd.DataFrame(rec["eoc"])
    save_csv(phase, out / "phase_diagram.csv")
    save_csv(eoc, out / "edge_of_chaos.csv")
    return phase, eoc


def plot_phase(phase: pd.DataFrame, eoc: pd.DataFrame, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for ax, act in zip(axes, ["tanh", "erf"]):
        p = phase[phase.activation == act].pivot(index="sigma_b2", columns="sigma_w2",
                                                   values="xi_c")
        z = np.log10(np.clip(p.to_numpy(), 0.1, 1e3))
        m = ax.pcolormesh(p.columns, p.index, z, shading="nearest", cmap="viridis",
                          vmin=-0.5, vmax=3)
        e = eoc[eoc.activation == act]
        ax.plot(e.sigma_w2, e.sigma_b2, "w-", lw=2, label="edge of chaos χ1 = 1")
        ax.set(xlabel="σ_w²", ylabel="σ_b²",
               title=f"{act}: log10 ξ_c (ordered left, chaotic right)",
               xlim=(p.columns.min(), p.columns.max()))
        ax.text(0.35, 0.01, "σ_b² = 0, ordered: q* = 0, net turns linear, ξ_c = ∞", fontsize=7,
                color="k", transform=ax.get_xaxis_transform())
        ax.legend(loc="upper left")
        fig.colorbar(m, ax=ax, label="log10 ξ_c (clipped at 1e3; ∞ on the edge)")
    save_png(fig, out / "phase_diagram.png")


# --------------------------------------------------------------------------- parts 2-3
def profile_rows(x, act, sw, sb, width, s, key) -> pd.DataFrame:
    """Mean-over-seed network profile and the mean-field profile for one configuration."""
    net = DP.network_profile(x, s["depth"], width, act, sw, sb, key, n_seeds=s["seeds"])
    net["source"] = "network"
    mf = DP.mean_field_profile(x, s["depth"], act, sw, sb, key=jax.random.fold_in(key, 99))
    mf["source"], mf["seed"] = "mean_field", -1
    df = pd.concat([net, mf], ignore_index=True)
    df["activation"], df["sigma_w2"], df["sigma_b2"], df["width"] = act, sw, sb, width
    return df


def run_profiles(store: RunStore, out: Path, x, configs, s, key) -> pd.DataFrame:
    """One unit per (activation, σ_w², σ_b², width): network and mean-field profiles."""
    prof = pd.concat([unit(store, {"part": "profile", "config": list(c)},
                           lambda c=c: profile_rows(x, *c, s, key))
                      for c in progress(configs, desc="random networks")], ignore_index=True)
    save_csv(prof, out / "profiles.csv")
    return prof


def cutoffs(prof: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (act, sw, sb, width), g in prof.groupby(KEY):
        mf = D.mean_field(act, float(sw), float(sb))
        for source, h in g.groupby("source"):
            for q, rule in RULES.items():
                mean = h.groupby("depth")[q].mean()
                c = D.cutoff_depth(mean.index.to_numpy(), mean.to_numpy(), **rule)
                per_seed = [D.cutoff_depth(k.depth.to_numpy(), k[q].to_numpy(), **rule).depth
                            for _, k in h.groupby("seed")] if source == "network" else []
                rows.append(dict(activation=act, sigma_w2=sw, sigma_b2=sb, width=width,
                                 source=source, quantity=q, cutoff=c.depth,
                                 cutoff_seed_sd=np.nanstd(per_seed) if len(per_seed) > 1
                                 and np.isfinite(per_seed).sum() > 1 else np.nan,
                                 window_lo=c.window_lo, window_hi=c.window_hi,
                                 window=c.width, phase=mf.phase, chi1=mf.chi1,
                                 c_star=mf.c_star, xi_c=mf.xi_c,
                                 ratio_to_xi_c=c.depth / mf.xi_c))
    return pd.DataFrame(rows)


def plot_init(cut: pd.DataFrame, s: dict, eoc: pd.DataFrame, out: Path) -> None:
    w = cut[cut.width == s["width"]]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4), constrained_layout=True)
    panels = [(axes[0], (w.activation == "tanh") & (w.sigma_b2 == 0.05), "sigma_w2",
               "tanh, σ_b² = 0.05: against σ_w²"),
              (axes[1], (w.activation == "tanh") & (w.sigma_w2 == 1.4), "sigma_b2",
               "tanh, σ_w² = 1.4: against σ_b²"),
              (axes[2], (w.activation == "relu") & (w.sigma_b2 == 0.1), "sigma_w2",
               "relu, σ_b² = 0.1: against σ_w²")]
    style = {("network", "cosine"): "o-", ("mean_field", "cosine"): "s--",
             ("network", "top_class_fraction"): "^-", ("mean_field", "top_class_fraction"): "v--"}
    for ax, mask, xcol, title in panels:
        sub = w[mask].sort_values(xcol)
        for (src, q), st in style.items():
            k = sub[(sub.source == src) & (sub.quantity == q)]
            ax.plot(k[xcol], k.cutoff, st, label=f"{src}: {q} = 1/2")
        k = sub[(sub.source == "mean_field") & (sub.quantity == "cosine")]
        ax.plot(k[xcol], np.log(2) * k.xi_c, "k:", lw=2, label="ln2·ξ_c")
        if xcol == "sigma_w2":
            act = "tanh" if "tanh" in title else None
            edge = (2.0 if act is None else
                    float(np.interp(0.05, eoc[eoc.activation == act].sigma_b2,
                                    eoc[eoc.activation == act].sigma_w2)))
            ax.axvline(edge, color="grey", lw=1, label="edge of chaos")
        ax.set(xlabel=xcol.replace("sigma_w2", "σ_w²").replace("sigma_b2", "σ_b²"),
               ylabel="cut-off depth (nan: no crossing)", yscale="log",
               title=f"{title} (width {s['width']})")
        ax.legend(fontsize=7)
    save_png(fig, out / "cutoff_vs_init.png")


def plot_width(cut: pd.DataFrame, s: dict, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    for ax, q in zip(axes, RULES):
        for i, (act, sw, sb) in enumerate(s["width_configs"]):
            k = cut[(cut.activation == act) & (cut.sigma_w2 == sw) & (cut.sigma_b2 == sb)
                    & (cut.quantity == q)]
            net = k[k.source == "network"].sort_values("width")
            line = ax.errorbar(net.width, net.cutoff, yerr=net.cutoff_seed_sd, fmt="o-",
                               capsize=3, label=f"{act} ({sw}, {sb}) network")
            mfv = k[k.source == "mean_field"].cutoff.mean()
            ax.axhline(mfv, ls="--", color=line[0].get_color(),
                       label=f"{act} ({sw}, {sb}) mean field")
        ax.set(xscale="log", yscale="log", xlabel="width", ylabel="cut-off depth",
               title=f"{q} crosses 1/2: against width (bars: sd over seeds)")
        ax.set_xticks(s["widths"], [str(v) for v in s["widths"]])
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=7)
    save_png(fig, out / "cutoff_vs_width.png")


def plot_profiles(prof: pd.DataFrame, s: dict, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    picks = [("tanh", 0.8, 0.05), ("tanh", 1.4, 0.05), ("tanh", 2.2 if 2.2 in s["tanh_w"]
             else 2.5, 0.05), ("relu", 2.0, 0.0)]
    for ax, q in zip(axes, RULES):
        for act, sw, sb in picks:
            k = prof[(prof.activation == act) & (prof.sigma_w2 == sw) & (prof.sigma_b2 == sb)
                     & (prof.width == s["width"])]
            if k.empty:
                continue
            net = k[k.source == "network"].groupby("depth")[q].mean()
            line, = ax.plot(net.index, net.values, label=f"{act} ({sw}, {sb}) network")
            mf = k[k.source == "mean_field"].set_index("depth")[q]
            ax.plot(mf.index, mf.values, "--", color=line.get_color(), label="mean field")
        ax.axhline(0.5, color="grey", lw=1)
        ax.set(xscale="log", xlabel="depth ℓ", ylabel=q,
               title=f"{q} against depth (width {s['width']})")
        ax.legend(fontsize=7)
    save_png(fig, out / "profiles.png")


# --------------------------------------------------------------------------- part 4
def run_deep(store: RunStore, out: Path, s: dict, key) -> pd.DataFrame:
    """The gradient-layer deep limit: one unit per drift."""
    x0 = np.random.default_rng(0).normal(size=(6, 8)) * 5

    def orbits(drift: float) -> pd.DataFrame:
        o = DL.gradient_layer_orbits(x0, s["deep_layers"], key, n_seeds=8, drift=drift,
                                    n_points=40)
        df = o.to_frame()
        df["drift"], df["limit_norm"] = drift, np.linalg.norm(o.limit)
        return df

    deep = pd.concat([unit(store, {"part": "deep", "drift": drift},
                           lambda drift=drift: orbits(drift))
                      for drift in progress([2.0, 0.3], desc="gradient layers")],
                     ignore_index=True)
    save_csv(deep, out / "deep_limit.csv")
    return deep


def plot_deep(deep: pd.DataFrame, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), constrained_layout=True)
    for drift, g in deep.groupby("drift"):
        m = g.groupby("n").mean(numeric_only=True)
        v = g.limit_norm.iloc[0]
        axes[0].loglog(m.index, m.error_to_limit, "o-", ms=3,
                       label=f"drift {drift}: ‖v‖ = {v:.3f}")
        axes[1].loglog(m.index, m.spread_x, "o-", ms=3, label=f"drift {drift}: spread over x")
    n = np.asarray(sorted(deep.n.unique()), dtype=float)
    axes[0].loglog(n, 1 / np.sqrt(n), "k:", label="n^(-1/2)")
    axes[1].loglog(n, deep.groupby("n").bound.first().to_numpy(), "k--",
                   label="bound max‖x − y‖/n")
    axes[0].set(xlabel="layers n", ylabel="mean ‖u_n(x)/n − v‖",
                title="gradient layers: (1/n)·u_n(x) → v (closed form)")
    axes[1].set(xlabel="layers n", ylabel="max ‖u_n(x) − u_n(y)‖/n",
                title="the limit does not depend on x (1-Lipschitz layers)")
    for ax in axes:
        ax.legend(fontsize=8)
    save_png(fig, out / "deep_limit.png")


# --------------------------------------------------------------------------- main
SCRIPT = Script("depth_cutoff", __doc__, out="results/depth_cutoff/",
                sizes={"quick": "small sizes, < 2 min", "tiny": "smoke-test sizes (seconds)"},
                options=(Option("--seed", type=int, default=0, help="PRNG seed"),))


@SCRIPT.main
def main(run) -> None:
    args, out = run.args, run.out
    if args.seed < 0:
        run.error(f"--seed must be >= 0, got {args.seed}")
    s = settings(args.quick, args.tiny)
    store = run.store(**s, seed=args.seed)
    # Reruns reuse compiled XLA programs (compiling dominates the short runs on CPU).
    jax.config.update("jax_compilation_cache_dir", str(out / ".jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    key = jax.random.key(args.seed)
    t0 = time.perf_counter()
    x = iw.load_digits(n_train=s["n_inputs"], seed=args.seed).x_train

    phase, eoc = run_phase(store, out, s)
    plot_phase(phase, eoc, out)
    configs = [(a, float(w), float(b), s["width"]) for a, w, b in init_configs(s)]
    configs += [(a, float(w), float(b), width) for a, w, b in s["width_configs"]
                for width in s["widths"]]
    configs = list(dict.fromkeys(configs))
    prof = run_profiles(store, out, x, configs, s, key)
    cut = cutoffs(prof)
    save_csv(cut, out / "cutoffs.csv")
    plot_init(cut, s, eoc, out)
    plot_width(cut, s, out)
    plot_profiles(prof, s, out)
    deep = run_deep(store, out, s, jax.random.fold_in(key, 7))
    plot_deep(deep, out)

    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 200)
    piv = cut[cut.width == s["width"]].pivot_table(
        index=["activation", "sigma_w2", "sigma_b2", "phase", "xi_c"],
        columns=["source", "quantity"], values="cutoff").round(1)
    piv.columns = [("mf_" if a == "mean_field" else "net_") + ("cos" if b == "cosine" else "frac")
                   for a, b in piv.columns]
    piv = piv.reset_index()
    piv["xi_c"] = piv.xi_c.round(2)
    net_cos = cut[(cut.source == "network") & (cut.quantity == "cosine")
                  & (cut.width == s["width"])].set_index(["activation", "sigma_w2", "sigma_b2"])
    piv["net_cos/xi_c"] = net_cos.loc[list(zip(piv.activation, piv.sigma_w2, piv.sigma_b2)),
                                      "ratio_to_xi_c"].round(2).to_numpy()
    print(f"\nCut-off depth (first crossing of 1/2; nan = none within {s['depth']} layers), "
          f"width {s['width']}, {s['seeds']} seeds, {s['n_inputs']} digits:")
    print(piv.to_string(index=False))
    wt = cut[cut.source == "network"][["activation", "sigma_w2", "sigma_b2", "width",
                                       "quantity", "cutoff", "cutoff_seed_sd", "window_lo",
                                       "window_hi", "window"]].copy()
    wt["window/cutoff"] = wt.window / wt.cutoff
    print("\nWindow widths (network; 10–90 % of the way from the depth-1 value to 1):")
    print(wt.round(2).sort_values(["quantity", "activation", "sigma_w2", "sigma_b2", "width"])
          .to_string(index=False))
    last = deep[deep.n == deep.n.max()].groupby("drift").mean(numeric_only=True)
    print("\nDeep limit of gradient layers at n =", int(deep.n.max()))
    print(last[["limit_norm", "error_to_limit", "spread_x", "bound", "seed_spread"]]
          .to_string(float_format=lambda v: f"{v:.2e}"))
    ordered = net_cos[(net_cos.phase == "ordered") & np.isfinite(net_cos.ratio_to_xi_c)]
    summary = dict(
        settings={k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in s.items()},
        wall_s=time.perf_counter() - t0,
        ordered_ratio_cutoff_to_xi_c=dict(
            min=float(ordered.ratio_to_xi_c.min()), max=float(ordered.ratio_to_xi_c.max()))
        if len(ordered) else None,
        edge_of_chaos_sigma_w2_at_sigma_b2_0p05={
            a: float(D.edge_of_chaos(a, [0.05])[0]) for a in ("tanh", "erf", "relu")},
        deep_limit_final=last.reset_index().to_dict(orient="records"))
    save_json(summary, out / "summary.json")
    ratio = summary["ordered_ratio_cutoff_to_xi_c"]
    print(f"\nordered phase, network cosine cut-off / ξ_c: {ratio}"
          f" (ln 2 = {math.log(2):.2f} if 1 − c̄_ℓ ≈ e^(−ℓ/ξ_c) from c̄ ≈ 0)")


if __name__ == "__main__":
    main()
