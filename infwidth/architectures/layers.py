"""Layer descriptions of a network's infinite-width kernel computation (``docs/theory.md`` §2).

A network is an immutable tuple of layer specs, read in order, in the spirit of
neural-tangents' ``stax``: :class:`Conv`, :class:`Dense`, :class:`Activation`,
:class:`AvgPool` and the readouts :class:`Flatten` and :class:`GAP`. NTK parameterisation;
the kernel maps of each layer (Σ the NNGP covariance over positions, Θ the NTK):

- Conv (filter q per axis, stride s): Σ'(i, j) = W²·mean_a K(s·i + a, s·j + a) + b²,
  Θ'(i, j) = W²·mean_a (K̇ ⊙ Θ)(s·i + a, s·j + a) + Σ'(i, j), a over the q^ndim taps
  (zero padding counts as a tap of value 0; circular padding wraps).
- Dense: the same with no positions. The first linear layer reads raw inputs with
  K = ⟨x_i, x'_j⟩/C and, by the package's convention, W = 1.
- Activation: K = E[φ(u)φ(v)], K̇ = E[φ'(u)φ'(v)] under N(0, [[Σ(x,x)(i,i), Σ(i,j)], [·,
  Σ(x',x')(j,j)]]).
- AvgPool (window = stride = p): Σ'(I, J) = mean_{a,b} Σ(p·I + a, p·J + b), Θ likewise.
- Flatten: mean_i Σ(i, i); GAP: mean_{i,j} Σ(i, j) (both then feed a Dense readout).

:func:`kernel_layers` derives the description of an architecture object: its own
``kernel_layers(dim)`` method if it has one (study architectures, Myrtle), otherwise from
its public attributes (``filter_sizes``/``patch_dim`` for trees, ``filter_size``/
``padding``/``readout`` for ConvNets, ``depth`` for MLPs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from infwidth.architectures.activations import ActivationSpec, get_activation
from infwidth.validation import check_number, check_pos_ints

__all__ = ["Conv", "Dense", "Activation", "AvgPool", "Flatten", "GAP", "Layer",
           "kernel_layers", "PADDINGS"]

PADDINGS = ("circular", "same", "valid")


def _std(name: str, v: Any, positive: bool) -> float:
    return check_number(name, v, lo=0.0, lo_open=positive)


def _ints(name: str, v: Any) -> tuple[int, ...]:
    return check_pos_ints(name, v)


@dataclass(frozen=True)
class Conv:
    """Convolution: Σ'(i, j) = W²·mean_a K(s·i + a, s·j + a) + b² over the filter taps a."""

    filter: tuple[int, ...]
    stride: tuple[int, ...] = (1,)
    padding: str = "same"
    W_std: float = 1.0
    b_std: float = 0.0

    def __post_init__(self) -> None:
        f = _ints("filter", self.filter)
        s = _ints("stride", self.stride)
        if len(s) == 1 and len(f) > 1:
            s = s * len(f)
        if len(s) != len(f):
            raise ValueError(f"stride {s} and filter {f} must have the same length")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if any(k != 1 for k in s) and (self.padding != "valid" or s != f):
            raise ValueError(f"a strided Conv must have stride == filter and padding 'valid' "
                             f"(non-overlapping), got filter={f}, stride={s}, "
                             f"padding={self.padding!r}")
        object.__setattr__(self, "filter", f)
        object.__setattr__(self, "stride", s)
        object.__setattr__(self, "W_std", _std("W_std", self.W_std, True))
        object.__setattr__(self, "b_std", _std("b_std", self.b_std, False))

    @property
    def ndim(self) -> int:
        return len(self.filter)


@dataclass(frozen=True)
class Dense:
    """Fully connected layer: Σ' = W²·K + b², Θ' = W²·K̇Θ + Σ'."""

    W_std: float = 1.0
    b_std: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "W_std", _std("W_std", self.W_std, True))
        object.__setattr__(self, "b_std", _std("b_std", self.b_std, False))


@dataclass(frozen=True)
class Activation:
    """Pointwise nonlinearity (a registered name or an ActivationSpec), unscaled (the next
    layer's W carries it)."""

    name: str | ActivationSpec

    def __post_init__(self) -> None:
        get_activation(self.name)


@dataclass(frozen=True)
class AvgPool:
    """Average pooling, window = stride = ``window`` on every spatial axis."""

    window: int = 2

    def __post_init__(self) -> None:
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ValueError(f"window must be a positive integer, got {self.window!r}")


@dataclass(frozen=True)
class Flatten:
    """Readout over positions by flattening: Σ = mean_i Σ(i, i) (the Dense after it has fan-in
    positions × channels)."""


@dataclass(frozen=True)
class GAP:
    """Global average pooling: Σ = mean_{i,j} Σ(i, j)."""


Layer = Union[Conv, Dense, Activation, AvgPool, Flatten, GAP]


def _act(arch: Any) -> Activation:
    return Activation(arch.activation)


def kernel_layers(arch: Any, dim: int) -> tuple[Layer, ...]:
    """The layer description of ``arch`` for flat inputs of ``dim`` coordinates.

    Conventions match ``arch.stax``: the first linear layer has W_std = 1, later ones
    ``arch.w``; every linear layer has bias std ``arch.b_std``. Raises ``TypeError`` for an
    object this function cannot describe (callers fall back to neural-tangents).
    """
    own = getattr(arch, "kernel_layers", None)
    if callable(own):
        return tuple(own(dim))
    if not callable(getattr(arch, "input_shape", None)):
        raise TypeError(f"no kernel layer description for {type(arch).__name__}: give it a "
                        f"kernel_layers(dim) method")
    arch.input_shape(dim)  # validates dim against the topology
    w, b = float(arch.w), float(arch.b_std)
    nd = getattr(arch, "ndim", 1)
    if hasattr(arch, "filter_sizes") and hasattr(arch, "patch_dim"):  # trees: S-CNN, D-CNN
        ks = (arch.patch_dim,) + tuple(arch.filter_sizes)
        layers: list[Layer] = []
        for i, k in enumerate(ks):
            layers += [Conv((k,) * nd, (k,) * nd, "valid", 1.0 if i == 0 else w, b), _act(arch)]
        return tuple(layers) + (Flatten(), Dense(w, b))
    if hasattr(arch, "filter_size") and hasattr(arch, "padding") and hasattr(arch, "readout"):
        q = arch.filter_size
        layers = []
        for i in range(arch.depth):
            layers += [Conv((q,) * nd, (1,) * nd, arch.padding, 1.0 if i == 0 else w, b),
                       _act(arch)]
        return tuple(layers) + ({"flatten": Flatten(), "gap": GAP()}[arch.readout], Dense(w, b))
    if hasattr(arch, "depth") and not hasattr(arch, "filter_size"):  # fully connected
        layers = []
        for i in range(arch.depth):
            layers += [Dense(1.0 if i == 0 else w, b), _act(arch)]
        return tuple(layers) + (Dense(w, b),)
    raise TypeError(f"no kernel layer description for {type(arch).__name__}: give it a "
                    f"kernel_layers(dim) method")
