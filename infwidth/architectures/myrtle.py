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

from infwidth.architectures.layers import GAP, Activation, AvgPool, Conv, Dense
from infwidth.architectures.networks import Architecture

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

    _unit = _POOL * _POOL  # each side divisible by 4 (two poolings)

    @property
    def stages(self) -> tuple[int, int, int]:
        """Convs per stage."""
        return MYRTLE_STAGES[self.depth]

    @property
    def layers(self) -> tuple:
        """Three stages of 3-wide SAME convs → φ, AvgPool(2) between stages, GAP, Dense."""
        f, one, b = (_FILTER,) * self.ndim, (1,) * self.ndim, float(self.b_std)
        layers: list = []
        for s, n_conv in enumerate(self.stages):
            if s:
                layers.append(AvgPool(_POOL))
            for c in range(n_conv):
                w = 1.0 if (s, c) == (0, 0) else self.w
                layers += [Conv(f, one, "same", w, b), Activation(self.activation)]
        return tuple(layers) + (GAP(), Dense(self.w, b))
