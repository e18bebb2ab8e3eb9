"""Figure 1: topologies and eigenspaces (``docs/theory.md`` §1, §3).

The DAGs of an MLP, an S-CNN and a D-CNN at input dimension d (``arch.dag_for(d)``), each
beside its space–frequency diagram (``iw.spectrum(...).plot``): every eigenspace type at
(space S(k), frequency |k|), coloured by its exact NTK eigenvalue on the hypercube, with the
region learned at m = d^r samples (L(k) = α0·|k| + S(k) < r) shaded for two values of r.

Sizes follow docs/theory.md's worked example: α0 = 1/2 and, for the D-CNN, two tree levels of
fan-in d^{1/4} (d = q^4: n0 = q², filters (q, q)).

    python paper_figures/fig1_topologies.py [--quick | --tiny] [--out DIR]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

import infwidth as iw
from infwidth.architectures.plot import draw_dag
from infwidth.io import scripts as C

NAME = "fig1_topologies"
SIZES = {"tiny": dict(q=2, max_degree=3), "quick": dict(q=4, max_degree=4),
         "full": dict(q=4, max_degree=5)}
R_VALUES = (1.6, 2.3)
KIND, DOMAIN = "ntk", "hypercube"


def architectures(q: int) -> dict[str, iw.Architecture]:
    return {"MLP": iw.MLP(depth=2), "S-CNN": iw.SCNN(patch_dim=q * q),
            "D-CNN": iw.DCNN(patch_dim=q * q, filter_sizes=(q, q))}


SCRIPT = C.figure_script(NAME, __doc__)


@SCRIPT.main
def main(run) -> dict:
    args = run.args
    cfg = SIZES[args.size]
    q = cfg["q"]
    d = q ** 4
    C.style()
    timer = C.Timer()
    archs = architectures(q)
    store = run.store(size=args.size, q=q, max_degree=cfg["max_degree"], kind=KIND,
                         domain=DOMAIN)
    fig, axes = C.plt.subplots(3, 3, figsize=(18, 15),
                               gridspec_kw=dict(width_ratios=[1.0, 1.25, 1.25]))
    tables, notes = [], {}
    for row, (name, arch) in zip(axes, archs.items()):
        dag = arch.dag_for(d)
        draw_dag(row[0], dag, f"{name} topology at d = {d}")
        spec = C.stored_spectrum(store, {"arch": name}, arch, d, DOMAIN, KIND,
                                 max_degree=cfg["max_degree"])
        df = spec.table()
        for ax, r in zip(row[1:], R_VALUES):
            spec.plot(ax=ax, m_exponent=r,
                      title=f"{name}: shaded = learned at m = d^{r:g} ≈ {d ** r:,.0f} "
                            f"(L < {r:g})")
        df.insert(0, "arch", name)
        for r in R_VALUES:
            df[f"learned_at_r={r:g}"] = df["learning_index"] < r
        tables.append(df.drop(columns=["representation"], errors="ignore"))
        finite = df[np.isfinite(df.learning_index) & (df.eigenvalue > 0)]
        notes[name] = {
            "distinct_learning_indices": sorted({round(v, 4) for v in finite.learning_index}),
            "types": int(len(df)), "types_with_L_infinite": int((~np.isfinite(
                df.learning_index)).sum()),
            **{f"types_learned_at_r={r:g}": int((finite.learning_index < r).sum())
               for r in R_VALUES},
        }
    fig.suptitle(f"Figure 1 — topologies and their space–frequency diagrams: exact "
                 f"{KIND.upper()} (ReLU) eigenspace types on the {DOMAIN}, d = {d}, α0 = 1/2; "
                 f"dashed: level lines α0·|k| + S = L", fontsize=13)
    C.stamp(fig, args.size)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    C.savefig(fig, args.out / f"{NAME}.png", tight=False)
    table = pd.concat(tables, ignore_index=True)
    table["degrees"] = table["degrees"].map(lambda t: " ".join(map(str, t)))
    table["support"] = table["support"].map(lambda t: " ".join(map(str, t)))
    C.write_csv(table, args.out / f"{NAME}.csv")
    summary = {"size": args.size, "d": d, "kind": KIND, "domain": DOMAIN,
               "r_values": R_VALUES, "architectures": notes, "seconds": timer()}
    C.write_json(summary, args.out / f"{NAME}.json")
    C.log(table[["arch", "label", "frequency", "space", "learning_index", "eigenvalue",
                 "multiplicity"]].to_string(index=False, max_rows=60))
    C.log(f"({timer():.1f} s)")
    return summary


if __name__ == "__main__":
    main()
