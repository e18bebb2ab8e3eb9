"""Drawing a network topology (:class:`~infwidth.architectures.DAG`) as a layered graph."""

from __future__ import annotations

import math

import numpy as np

from infwidth.architectures.networks import DAG


def draw_dag(ax, dag: DAG, title: str = "", max_nodes: int = 64) -> None:
    """Leaves (input patches, n0 coordinates each) at the bottom as squares, one row per
    hidden layer (one circle per spatial position), the linear readout at the top as a star.
    Edges join each node to its receptive field; the right margin gives every layer's
    fan-in f and its edge weight log_d f. Layers wider than ``max_nodes`` are drawn with
    their first ``max_nodes`` nodes only (said in the margin)."""
    sizes = dag.layer_sizes
    n_layers = len(sizes)
    shown = [min(s, max_nodes) for s in sizes]

    def xy(layer: int, j: int) -> tuple[float, float]:
        n = shown[layer]
        return ((j + 0.5) / n, layer / (n_layers - 1))

    for ell, layer in enumerate(dag.children, start=1):
        for j, kids in enumerate(layer[: shown[ell]]):
            x1, y1 = xy(ell, j)
            for u in kids:
                if u < shown[ell - 1]:
                    x0, y0 = xy(ell - 1, u)
                    ax.plot([x0, x1], [y0, y1], color="0.55", lw=0.6, zorder=1)
    for ell in range(n_layers):
        pts = np.array([xy(ell, j) for j in range(shown[ell])])
        if ell == 0:
            ax.scatter(pts[:, 0], pts[:, 1], marker="s", s=60 if shown[0] <= 16 else 20,
                       color="tab:orange", edgecolors="k", lw=0.5, zorder=3)
        elif ell == n_layers - 1:
            ax.scatter(pts[:, 0], pts[:, 1], marker="*", s=220, color="gold",
                       edgecolors="k", lw=0.6, zorder=3)
        else:
            ax.scatter(pts[:, 0], pts[:, 1], marker="o", s=50 if shown[ell] <= 16 else 20,
                       color="tab:blue", edgecolors="k", lw=0.5, zorder=3)
    for ell in range(n_layers):
        y = ell / (n_layers - 1)
        if ell == 0:
            txt = f"{sizes[0]} patch(es) × n0={dag.patch_dim}\n(α0 = log_d n0 = {dag.alpha0:.2f})"
        else:
            f = dag.fan_in[ell - 1][0]
            w = math.log(f) / math.log(dag.dim) if f > 1 else 0.0
            kind = "readout (linear)" if ell == n_layers - 1 else f"layer {ell}"
            txt = f"{kind}: {sizes[ell]} node(s)\nfan-in {f}, edge weight {w:.2f}"
        if shown[ell] < sizes[ell]:
            txt += f" [first {shown[ell]} drawn]"
        ax.text(1.03, y, txt, fontsize=7, va="center", transform=ax.transData)
    ax.set_xlim(-0.02, 1.75)
    ax.set_ylim(-0.12, 1.12)
    ax.axis("off")
    ax.set_title(title, fontsize=10)
