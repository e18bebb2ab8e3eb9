"""Myrtle networks (Shankar et al. 2020, "Neural Kernels Without Tangents"), 1-D and 2-D.

Myrtle-``depth`` is a stack of 3×3 (or length-3) SAME convolutions with ReLU, in three
stages separated by 2×2 (or length-2) average pooling, then global average pooling and a
dense readout. Stage conv counts follow neural-tangents' Myrtle example:
depth 5 → (2, 1, 1), depth 7 → (2, 2, 2), depth 10 → (3, 3, 3) (convs + the readout =
depth). neural-tangents' example ends with three more 2×2 pools and Flatten, which on its
32×32 inputs is exactly global average pooling; here the readout is GAP for every size.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from infwidth._nt_compat import load
from infwidth.architectures.networks import DAG, Architecture

__all__ = ["Myrtle", "MYRTLE_STAGES"]

MYRTLE_STAGES = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}
_FILTER, _POOL = 3, 2


@dataclass(frozen=True)
class Myrtle(Architecture):
    """Myrtle-5/7/10: conv stages with average pooling between them, then GAP and Dense.

    Inputs are sequences (``ndim=1``) or square images (``ndim=2``) with ``channels``
    channels; each spatial side must be divisible by 4 (two poolings). First conv W_std = 1,
    later layers ``W_std`` (default the activation's normaliser, √2 for relu).

    Example:
        >>> m = Myrtle(depth=5, ndim=2)
        >>> m.input_shape(64), m.stages
        ((8, 8, 1), (2, 1, 1))
    """

    depth: int = 5
    ndim: int = 2
    channels: int = 1
    activation: str = "relu"
    W_std: float | None = None
    b_std: float = 0.0
    width: int = 256
    out_dim: int = 1

    def __post_init__(self) -> None:
        if self.depth not in MYRTLE_STAGES:
            raise ValueError(f"depth must be one of {sorted(MYRTLE_STAGES)}, got {self.depth!r}")
        self.check_fields()

    _unit = _POOL * _POOL
    readout = "gap"
    full_spatial_covariance = True  # GAP: kernels.kernel() sizes blocks for O(P²) per pair

    @property
    def stages(self) -> tuple[int, int, int]:
        """Convs per stage."""
        return MYRTLE_STAGES[self.depth]

    @property
    def min_dim(self) -> int:
        return self._unit ** self.ndim * self.channels

    def kernel_layers(self, dim: int) -> tuple:
        """The layer description for :mod:`infwidth.kernels.native`."""
        from infwidth.architectures.layers import GAP, Activation, AvgPool, Conv, Dense

        self.input_shape(dim)
        f, one = (_FILTER,) * self.ndim, (1,) * self.ndim
        layers: list = []
        for s, n_conv in enumerate(self.stages):
            if s:
                layers.append(AvgPool(_POOL))
            for c in range(n_conv):
                w = 1.0 if (s, c) == (0, 0) else self.w
                layers += [Conv(f, one, "same", w, float(self.b_std)),
                           Activation(self.activation)]
        return tuple(layers) + (GAP(), Dense(self.w, float(self.b_std)))

    @cached_property
    def _stax(self):
        _, stax = load()
        f, one = (_FILTER,) * self.ndim, (1,) * self.ndim
        pool = (_POOL,) * self.ndim
        layers = []
        for s, n_conv in enumerate(self.stages):
            if s:
                layers.append(stax.AvgPool(pool, pool))
            for c in range(n_conv):
                w = 1.0 if (s, c) == (0, 0) else self.w
                layers += [stax.Conv(self.width, f, one, padding="SAME", W_std=w, b_std=self.b),
                           self._act()]
        layers += [stax.GlobalAvgPool(), stax.Dense(self.out_dim, W_std=self.w, b_std=self.b)]
        return stax.serial(*layers)

    def dag_for(self, dim: int) -> DAG:
        """Leaves: input positions; one layer per conv, node i seeing the positions of the
        layer below inside its 3-wide SAME window (after a pooling: the pool windows of those
        positions); root: every position of the last conv (GAP)."""
        side = self.input_shape(dim)[0]
        sizes, children = [side ** self.ndim], []
        below, pooled = side, 1
        for s, n_conv in enumerate(self.stages):
            if s:
                pooled, below = _POOL, below // _POOL
            for _ in range(n_conv):
                children.append(_window_children(below, self.ndim, pooled))
                sizes.append(below ** self.ndim)
                pooled = 1
        children.append((tuple(range(sizes[-1])),))
        sizes.append(1)
        return DAG(int(dim), self.channels, tuple(sizes), tuple(children), readout="gap")


def _window_children(side: int, ndim: int, pooled: int) -> tuple[tuple[int, ...], ...]:
    """Receptive fields of a SAME 3-window conv on a ``side``-wide map whose input is the
    ``pooled``-times finer map below (pool windows expanded)."""
    lo = (_FILTER - 1) // 2
    fine = side * pooled

    def win(i: int) -> list[int]:
        return [(j * pooled + d) for j in range(i - lo, i - lo + _FILTER) if 0 <= j < side
                for d in range(pooled)]

    if ndim == 1:
        return tuple(tuple(win(i)) for i in range(side))
    return tuple(tuple(a * fine + b for a in win(i) for b in win(j))
                 for i in range(side) for j in range(side))

