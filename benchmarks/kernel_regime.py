"""Kernel regime: how far a trained finite net's predictions are from its kernel's, by width.

Per data set (mnist1d, digits: the first N training points of a seeded order, centred one-hot
targets of the 10 classes), architecture (MLP depth 2; ConvNet-GAP as in figure 7) and width,
the net is trained by the ``"kernel"`` protocol (:class:`infwidth.learning.train.KernelRegime`:
NTK parameterisation, centred model f − f₀, full-batch heavy-ball GD, momentum 0.9, step
0.5·2N/λ_max of the analytic NTK Gram (ConvNet-GAP: 0.9·2N/λ_max of the empirical one), to
a train loss ≤ ``tol`` × initial), and compared on the test points with

- ``prediction_gap``: RMS of (f − f₀)(x_test) − Θ(x_test, X)·Θ⁻¹·Y, the ridgeless NTK
  regression on the same data (theory: ∝ width^−1/2, plus a floor from the loss tolerance);
- ``dynamics_gap``: RMS distance to the infinite-width net after the *same* steps (heavy-ball
  GD run in function space with the NTK Gram: b ← Θ·r/N + μ·b, f ← f − η·b), which has no
  tolerance floor.

The ConvNet-GAP NTK Gram of mnist1d at N = 128 has condition number 4.8e4: the infinite-width
net reaches the 1e-3 tolerance in 5875 steps at (0.5, momentum 0.9), 1125 at (0.5, 0.98).
Momentum 0.98 was tried and dropped: the MLP's gap then fell only as width^-0.3 (0.49, 0.35,
0.26, 0.15 at widths 32-2048 on mnist1d, against 0.41, 0.17, 0.09, 0.05 at 0.9): strongly
underdamped heavy-ball paths move the parameters further, and the finite net further from its
kernel.

The slope of log gap against log width is fitted over converged runs only, with its 95 %
t-interval, and printed; unconverged runs are listed and drawn hollow. Every unit (one net)
is committed to ``<out>/runs.sqlite``; a rerun resumes (``--fresh`` starts over).

    python benchmarks/kernel_regime.py [--quick | --tiny] [--out DIR] [--fresh] [--stored-only]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import linalg, stats

import infwidth as iw
from infwidth.io.harness import Option, Script
from infwidth.io.outputs import write_csv, write_json
from infwidth.io.scripts import log, plt, savefig

SIZES = {  # N, test points, seeds, widths per architecture, protocol options
    "full": dict(n=256, n_test=256, seeds=2,
                 widths={"MLP": (32, 64, 128, 256, 512, 1024, 2048),
                         "ConvNet-GAP": (32, 64, 128, 256)},
                 options=dict(tol=1e-3, max_steps=5000, eval_every=25)),
    "quick": dict(n=128, n_test=128, seeds=2,
                  widths={"MLP": (32, 128, 512, 2048), "ConvNet-GAP": (16, 32, 64, 128)},
                  options=dict(tol=1e-3, max_steps=4000, eval_every=25)),
    "tiny": dict(n=24, n_test=16, seeds=1,
                 widths={"MLP": (16, 64, 256), "ConvNet-GAP": (4, 8, 16)},
                 options=dict(tol=1e-2, max_steps=400, eval_every=20)),
}
DATASETS = ("mnist1d", "digits")
# ConvNet-GAP: a larger step, 0.9·2N/λ_max of the *empirical* NTK at θ₀ (with the analytic
# one, widths 16-32 oscillated: loss ratio 8.1 and 0.24 after 4000 steps), same momentum;
# its options are part of each GAP unit's key
GAP_OPTIONS = dict(lr_fraction=0.9, ntk="empirical")


def architectures(dataset: str) -> dict[str, iw.Architecture]:
    nd = 1 if dataset == "mnist1d" else 2
    return {"MLP": iw.MLP(depth=2),
            "ConvNet-GAP": iw.ConvNet(filter_size=3, depth=3, readout="gap", ndim=nd)}


def data(dataset: str, n: int, n_test: int):
    ds = iw.load_mnist1d(num_samples=5000) if dataset == "mnist1d" else iw.load_digits()
    tr = np.random.default_rng(0).permutation(len(ds.y_train))[:n]
    te = np.random.default_rng(1).permutation(len(ds.y_test))[:n_test]
    return ds.x_train[tr], ds.y_train[tr], ds.x_test[te], ds.y_test[te]


class KernelSide:
    """The NTK Gram blocks of one (data set, architecture), ridgeless regression on them and
    the function-space heavy-ball dynamics; computed on first use."""

    def __init__(self, arch, x, y, xt):
        self.arch, self.x, self.y, self.xt, self._k = arch, x, y, xt, None

    def get(self):
        if self._k is None:
            th = iw.kernel(self.arch, self.x, kind="ntk")
            tht = iw.kernel(self.arch, self.xt, self.x, kind="ntk")
            Y = np.full((len(self.y), 10), -0.1)
            Y[np.arange(len(self.y)), self.y] += 1
            try:
                alpha = linalg.solve(th, Y, assume_a="pos")
            except (linalg.LinAlgError, ValueError):
                alpha = linalg.lstsq(th, Y)[0]
            self._k = th, tht, Y, tht @ alpha
        return self._k

    def dynamics(self, lr: float, momentum: float, steps: int) -> np.ndarray:
        """Test outputs of the infinite-width centred net after ``steps`` heavy-ball steps
        (optax.sgd: b ← g + μ·b, update −η·b, with g = Θ·r/N in function space)."""
        th, tht, Y, _ = self.get()
        n = len(Y)
        f, ft = np.zeros_like(Y), np.zeros((tht.shape[0], Y.shape[1]))
        b, bt = np.zeros_like(f), np.zeros_like(ft)
        for _ in range(steps):
            r = (f - Y) / n
            b = th @ r + momentum * b
            bt = tht @ r + momentum * bt
            f, ft = f - lr * b, ft - lr * bt
        return ft


def run_unit(dataset: str, label: str, arch, width: int, seed: int, side: KernelSide,
             c: dict, lam_max: float) -> list[dict]:
    x, y, xt, yt = side.x, side.y, side.xt, side.yt
    opts = {**c["options"], **(GAP_OPTIONS if label == "ConvNet-GAP" else {})}
    r = iw.learning.train_network(arch, x, y, xt, yt, n_classes=10, width=width,
                                  protocol="kernel", seed=seed, dtype="float32",
                                  lam_max=None if opts.get("ntk") == "empirical" else lam_max,
                                  progress=False, **opts)
    th, tht, Y, kpred = side.get()
    momentum = iw.learning.protocol("kernel", **opts).momentum
    dyn = side.dynamics(r.record["learning_rate"], momentum, int(r.record["steps"]))
    rms = lambda a: float(np.sqrt(np.mean(a ** 2)))  # noqa: E731
    row = dict(dataset=dataset, arch=label, width=width, seed=seed, n_train=len(y),
               n_test=len(yt), **{k: v for k, v in r.record.items() if k != "width"},
               prediction_gap=rms(r.test_pred - kpred), dynamics_gap=rms(r.test_pred - dyn),
               kernel_rms=rms(kpred), kernel_accuracy=float(np.mean(kpred.argmax(1) == yt)))
    log(f"  {dataset} {label} w={width} seed {seed}: gap {row['prediction_gap']:.4f} "
        f"(dynamics {row['dynamics_gap']:.4f}), {row['steps']} steps, loss ratio "
        f"{row['loss_ratio']:.2g}, converged {row['converged']}")
    return [row]


def slope(df: pd.DataFrame, col: str) -> dict:
    """OLS slope of log(col) on log(width) with its 95 % t-interval (converged runs)."""
    if df.width.nunique() < 3:
        return {"slope": None, "lo": None, "hi": None, "n": len(df)}
    fit = stats.linregress(np.log(df.width), np.log(df[col]))
    t = stats.t.ppf(0.975, len(df) - 2)
    return {"slope": float(fit.slope), "lo": float(fit.slope - t * fit.stderr),
            "hi": float(fit.slope + t * fit.stderr), "n": len(df)}


def plot(df: pd.DataFrame, fits: list[dict], size: str, path: Path) -> None:
    fig, axes = plt.subplots(1, len(DATASETS), figsize=(11, 4.2), squeeze=False)
    colors = {"MLP": "tab:blue", "ConvNet-GAP": "tab:red"}
    for ax, dsn in zip(axes[0], DATASETS):
        sub = df[df.dataset == dsn]
        for label, color in colors.items():
            a = sub[sub.arch == label]
            if not len(a):
                continue
            for conv, mfc in ((True, color), (False, "none")):
                b = a[a.converged == conv]
                ax.plot(b.width, b.prediction_gap, "o", color=color, mfc=mfc, ms=5, ls="none")
                ax.plot(b.width, b.dynamics_gap, "s", color=color, mfc=mfc, ms=4, ls="none",
                        alpha=0.6)
            f = next((f for f in fits if f["dataset"] == dsn and f["arch"] == label), None)
            m = a.groupby("width").prediction_gap.mean()
            ax.plot(m.index, m.values, "-", color=color, lw=1,
                    label=f"{label}: slope {f['prediction_gap']['slope']:.2f} "
                          f"[{f['prediction_gap']['lo']:.2f}, {f['prediction_gap']['hi']:.2f}]"
                    if f and f["prediction_gap"]["slope"] is not None else label)
            m = a.groupby("width").dynamics_gap.mean()
            ax.plot(m.index, m.values, "--", color=color, lw=1, alpha=0.6)
        if len(sub):
            w = np.array(sorted(sub.width.unique()), float)
            ax.plot(w, sub.prediction_gap.max() * np.sqrt(w[0] / w), ":", color="0.4",
                    label="∝ width^-1/2")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_ylabel("RMS test-prediction gap")
        ax.set_title(f"{dsn}: o solid: to NTK regression; □ dashed: to the infinite net "
                     f"after the same steps", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(f"Kernel regime ({size}): filled = converged to the loss tolerance, "
                 f"hollow = not converged", fontsize=9)
    fig.tight_layout()
    savefig(fig, path)


SCRIPT = Script("kernel_regime", __doc__, out="results/kernel_regime",
                sizes={"quick": "smaller N and widths", "tiny": "smoke test (seconds)"},
                options=(Option("--stored-only", action="store_true",
                                help="report the committed units only (compute nothing)"),))


@SCRIPT.main
def main(run) -> pd.DataFrame:
    args, size = run.args, run.size
    c = SIZES[size]
    store = run.store(size=size, **c)
    rows, sides = [], {}
    for label in ("MLP", "ConvNet-GAP"):  # the cheap nets of both data sets first
        for dsn in DATASETS:
            if dsn not in sides:
                sides[dsn] = data(dsn, c["n"], c["n_test"])
            x, y, xt, yt = sides[dsn]
            arch = architectures(dsn)[label]
            side = KernelSide(arch, x, y, xt)
            side.yt = yt
            lam = {}
            for w in c["widths"][label]:
                for s in range(c["seeds"]):
                    key = {"dataset": dsn, "arch": label, "width": w, "seed": s,
                           **({"options": GAP_OPTIONS} if label == "ConvNet-GAP" else {})}
                    if args.stored_only and key not in store:
                        continue

                    def compute(w=w, s=s, arch=arch, side=side, label=label, lam=lam):
                        if "v" not in lam:
                            lam["v"] = float(np.linalg.eigvalsh(side.get()[0])[-1])
                        return run_unit(dsn, label, arch, w, s, side, c, lam["v"])
                    rows += store.compute(key, compute)
    df = pd.DataFrame(rows)
    write_csv(df, args.out / "kernel_regime.csv")
    fits, bad = [], df[~df.converged.astype(bool)]
    for (dsn, label), g in df.groupby(["dataset", "arch"], sort=False):
        ok = g[g.converged.astype(bool)]
        fit = {"dataset": dsn, "arch": label, "widths": sorted(int(w) for w in ok.width),
               "prediction_gap": slope(ok, "prediction_gap"),
               "dynamics_gap": slope(ok, "dynamics_gap"),
               "not_converged": g.loc[~g.converged.astype(bool), ["width", "seed"]]
               .to_dict("records")}
        fits.append(fit)
        p, d = fit["prediction_gap"], fit["dynamics_gap"]
        log(f"{dsn} {label}: slope of the prediction gap vs width "
            + (f"{p['slope']:.3f} [95% {p['lo']:.3f}, {p['hi']:.3f}]" if p["slope"] is not None
               else "n/a (< 3 converged widths)")
            + "; vs same-step infinite net "
            + (f"{d['slope']:.3f} [{d['lo']:.3f}, {d['hi']:.3f}]" if d["slope"] is not None
               else "n/a") + f" (theory -0.5; {p['n']} converged runs)")
    if len(bad):
        log("NOT CONVERGED (excluded from the fits, hollow in the plot): "
            + "; ".join(f"{r.dataset} {r.arch} w={r.width} seed {r.seed} "
                        f"(loss ratio {r.loss_ratio:.2g} after {r.steps} steps)"
                        for r in bad.itertuples()))
    write_json({"size": size, "config": c, "fits": fits,
                "all_converged": bool(len(bad) == 0)}, args.out / "kernel_regime.json")
    plot(df, fits, size, args.out / "kernel_regime.png")
    return df


if __name__ == "__main__":
    main()
