"""Layer specs: the one description of a network (``docs/theory.md`` §2).

A network is an immutable tuple of layer specs, read in order, in the spirit of
neural-tangents' ``stax``: :class:`Conv`, :class:`Dense`, :class:`Activation`,
:class:`AvgPool`, :class:`Residual` and the readouts :class:`Flatten` and :class:`GAP`.
:class:`Network` (an :class:`~infwidth.architectures.networks.Architecture`) is built from
such a tuple, and every architecture of the package (``MLP``, ``SCNN``, ``DCNN``,
``ConvNet``, ``Myrtle``, the width study's LeNet, the residual nets) is a constructor of one.
From the tuple alone are derived: the finite net (``.stax``), the native engine's plan
(``kernel_layers``), the DAG, ``n_params`` and ``input_shape``.

Each spec knows its neural-tangents layer given a width (:meth:`Conv.stax`), how it maps a
spatial shape (``out_shape``) and which input positions each output position reads
(``taps``, which the DAG composes into receptive fields). NTK parameterisation; the kernel
maps of each layer (Σ the NNGP covariance over positions, Θ the NTK):

- Conv (filter q per axis, stride s): Σ'(i, j) = W²·mean_a K(s·i + a, s·j + a) + b²,
  Θ'(i, j) = W²·mean_a (K̇ ⊙ Θ)(s·i + a, s·j + a) + Σ'(i, j), a over the q^ndim taps
  (zero padding counts as a tap of value 0; circular padding wraps).
- Dense: the same with no positions. The first linear layer reads raw inputs with
  K = ⟨x_i, x'_j⟩/C.
- Activation: K = E[φ(u)φ(v)], K̇ = E[φ'(u)φ'(v)] under N(0, [[Σ(x,x)(i,i), Σ(i,j)], [·,
  Σ(x',x')(j,j)]]).
- AvgPool (window p, stride s per axis, VALID): Σ'(I, J) = mean_{a,b} Σ(s·I + a, s·J + b),
  Θ likewise (overlapping windows, p > s, included).
- Residual(branch, shortcut): Σ = Σ_branch + Σ_shortcut, Θ = Θ_branch + Θ_shortcut (the two
  paths are independent: the branch ends with fresh zero-mean weights).
- Flatten: mean_i Σ(i, i); GAP: mean_{i,j} Σ(i, j) (both then feed a Dense readout).

Weight stds default to 1 (neural-tangents' default); the architectures' constructors pass
the activation's normaliser explicitly.

Example:
    >>> import infwidth as iw
    >>> net = iw.Network(layers=(Conv(3), Activation("relu"), AvgPool(2), GAP(), Dense()),
    ...                  ndim=2)
    >>> net.input_shape(64), net.dag_for(64).layer_sizes
    ((8, 8, 1), (64, 64, 1))
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Union

import numpy as np

from infwidth.architectures.activations import ActivationSpec, get_activation
from infwidth.validation import check_number, check_pos_ints

__all__ = ["Conv", "Dense", "Activation", "AvgPool", "Flatten", "GAP", "Residual", "Layer",
           "kernel_layers", "conv_taps", "PADDINGS"]

PADDINGS = ("circular", "same", "valid")
_NT_PADDING = {"circular": "CIRCULAR", "same": "SAME", "valid": "VALID"}


def _std(name: str, v: Any, positive: bool) -> float:
    return check_number(name, v, lo=0.0, lo_open=positive)


def _ints(name: str, v: Any) -> tuple[int, ...]:
    return check_pos_ints(name, v)


def _width(v: Any) -> int | None:
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
        raise ValueError(f"width must be a positive integer or None, got {v!r}")
    return None if v is None else int(v)


def _b(b_std: float) -> float | None:
    return None if b_std == 0 else b_std


def _nt():
    from infwidth._nt_compat import load

    return load()[1]


@lru_cache(maxsize=256)
def conv_taps(n: int, q: int, stride: int, padding: str) -> np.ndarray:
    """(m, q) input index of output position o's tap a on an axis of length n: o·stride + a
    for valid padding (m = ⌊(n − q)/stride⌋ + 1), o + a − ⌊(q − 1)/2⌋ for same/circular
    (stride 1; wrapped mod n when circular; −1 where it falls in the zero padding)."""
    if padding == "valid":
        m = (n - q) // stride + 1
        return (np.arange(m)[:, None] * stride + np.arange(q)[None, :]).astype(np.int64)
    lo = (q - 1) // 2
    src = np.arange(n)[:, None] + np.arange(q)[None, :] - lo
    if padding == "circular":
        return (src % n).astype(np.int64)
    return np.where((src >= 0) & (src < n), src, -1).astype(np.int64)


def _window_out(name: str, shape: tuple[int, ...], win: tuple[int, ...],
                stride: tuple[int, ...]) -> tuple[int, ...]:
    if len(win) != len(shape):
        raise ValueError(f"{name} is {len(win)}-D but the map has {len(shape)} spatial axes")
    out = tuple((n - q) // s + 1 if n >= q else 0 for n, q, s in zip(shape, win, stride))
    if min(out, default=1) < 1:
        raise ValueError(f"the map {shape} is too small for the {name} window {win}")
    return out


# --------------------------------------------------------------------------------------
# Layer specs
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conv:
    """Convolution: Σ'(i, j) = W²·mean_a K(s·i + a, s·j + a) + b² over the filter taps a.

    ``filter``/``stride``: an int or one per spatial axis (a single value is repeated over
    the network's axes); ``padding``: "same", "circular" or "valid"; a strided conv
    (stride > 1) has padding "valid". ``width``: output channels (None: the network's).
    """

    filter: tuple[int, ...]
    stride: tuple[int, ...] = (1,)
    padding: str = "same"
    W_std: float = 1.0
    b_std: float = 0.0
    width: int | None = None

    def __post_init__(self) -> None:
        f = _ints("filter", self.filter)
        s = _ints("stride", self.stride)
        if len(s) == 1 and len(f) > 1:
            s = s * len(f)
        if len(f) == 1 and len(s) > 1:
            f = f * len(s)
        if len(s) != len(f):
            raise ValueError(f"stride {s} and filter {f} must have the same length")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if any(k != 1 for k in s) and self.padding != "valid":
            raise ValueError(f"a strided Conv must have padding 'valid', got filter={f}, "
                             f"stride={s}, padding={self.padding!r}")
        object.__setattr__(self, "filter", f)
        object.__setattr__(self, "stride", s)
        object.__setattr__(self, "W_std", _std("W_std", self.W_std, False))
        object.__setattr__(self, "b_std", _std("b_std", self.b_std, False))
        object.__setattr__(self, "width", _width(self.width))

    @property
    def ndim(self) -> int:
        return len(self.filter)

    @property
    def is_patch(self) -> bool:
        """Non-overlapping: stride = filter, padding "valid" (a tree level)."""
        return self.stride == self.filter and self.padding == "valid"

    def with_ndim(self, ndim: int) -> Conv:
        if self.ndim == ndim or self.ndim != 1:
            return self
        return Conv(self.filter * ndim, self.stride * ndim, self.padding, self.W_std,
                    self.b_std, self.width)

    def stax(self, width: int):
        return _nt().Conv(width, self.filter, strides=self.stride,
                          padding=_NT_PADDING[self.padding], W_std=self.W_std,
                          b_std=_b(self.b_std))

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        if self.padding != "valid":
            if len(self.filter) != len(shape):
                raise ValueError(f"Conv is {self.ndim}-D but the map has {len(shape)} axes")
            return shape
        return _window_out("Conv", shape, self.filter, self.stride)

    def taps(self, shape: tuple[int, ...]) -> list[np.ndarray]:
        """Per axis, the (m, q) input positions of each output position (−1: padding)."""
        return [conv_taps(n, q, s, self.padding)
                for n, q, s in zip(shape, self.filter, self.stride)]


@dataclass(frozen=True)
class Dense:
    """Fully connected layer: Σ' = W²·K + b², Θ' = W²·K̇Θ + Σ'. ``width``: output units
    (None: the network's width, or ``out_dim`` for the last layer)."""

    W_std: float = 1.0
    b_std: float = 0.0
    width: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "W_std", _std("W_std", self.W_std, False))
        object.__setattr__(self, "b_std", _std("b_std", self.b_std, False))
        object.__setattr__(self, "width", _width(self.width))

    def stax(self, width: int):
        return _nt().Dense(width, W_std=self.W_std, b_std=_b(self.b_std))


@dataclass(frozen=True)
class Activation:
    """Pointwise nonlinearity φ, unscaled (the next layer's W carries the normaliser).
    ``fn``: a registered name ("relu", "erf", …) or an ``ActivationSpec``."""

    fn: str | ActivationSpec

    def __post_init__(self) -> None:
        try:
            get_activation(self.fn)
        except (TypeError, ValueError) as e:
            raise type(e)(f"Activation: {e}") from None

    @property
    def spec(self) -> ActivationSpec:
        return get_activation(self.fn)

    @property
    def name(self) -> str:
        return self.spec.name

    def stax(self):
        return self.spec.stax()


@dataclass(frozen=True)
class AvgPool:
    """Average pooling, VALID: Σ'(I, J) = mean_{a,b} Σ(s·I + a, s·J + b) over the window.
    ``window``, ``stride``: an int or one per axis; ``stride=None`` means ``window``."""

    window: tuple[int, ...] = (2,)
    stride: tuple[int, ...] | None = None
    padding: str = "valid"

    def __post_init__(self) -> None:
        w = _ints("window", self.window)
        s = w if self.stride is None else _ints("stride", self.stride)
        if len(s) == 1 and len(w) > 1:
            s = s * len(w)
        if len(w) == 1 and len(s) > 1:
            w = w * len(s)
        if len(s) != len(w):
            raise ValueError(f"stride {s} and window {w} must have the same length")
        if self.padding != "valid":
            raise ValueError(f"AvgPool padding must be 'valid', got {self.padding!r}")
        object.__setattr__(self, "window", w)
        object.__setattr__(self, "stride", s)

    def with_ndim(self, ndim: int) -> AvgPool:
        if len(self.window) == ndim or len(self.window) != 1:
            return self
        return AvgPool(self.window * ndim, self.stride * ndim)

    def stax(self):
        return _nt().AvgPool(self.window, self.stride, padding="VALID")

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _window_out("AvgPool", shape, self.window, self.stride)

    def taps(self, shape: tuple[int, ...]) -> list[np.ndarray]:
        return [conv_taps(n, q, s, "valid") for n, q, s in zip(shape, self.window, self.stride)]


@dataclass(frozen=True)
class Flatten:
    """Readout over positions by flattening: Σ = mean_i Σ(i, i) (the Dense after it has fan-in
    positions × channels)."""

    def stax(self):
        return _nt().Flatten()


@dataclass(frozen=True)
class GAP:
    """Global average pooling: Σ = mean_{i,j} Σ(i, j)."""

    def stax(self):
        return _nt().GlobalAvgPool()


@dataclass(frozen=True)
class Residual:
    """``branch`` and ``shortcut`` (layer tuples; an empty shortcut is the identity) applied to
    the same input and summed: neural-tangents ``serial(FanOut(2), parallel(branch,
    shortcut), FanInSum())``. Both must map the input shape to the same output shape."""

    branch: tuple = ()
    shortcut: tuple = ()

    def __post_init__(self) -> None:
        for name in ("branch", "shortcut"):
            v = getattr(self, name)
            if not isinstance(v, (tuple, list)):
                raise TypeError(f"Residual {name} must be a tuple of layers, got {v!r}")
            v = tuple(v)
            for ly in v:
                if not isinstance(ly, (Conv, Dense, Activation, AvgPool, Residual)):
                    raise TypeError(f"Residual {name}: {ly!r} is not a Conv, Dense, "
                                    f"Activation, AvgPool or Residual layer")
            object.__setattr__(self, name, v)
        if not self.branch:
            raise ValueError("Residual branch must hold at least one layer")

    def with_ndim(self, ndim: int) -> Residual:
        return Residual(_with_ndim(self.branch, ndim), _with_ndim(self.shortcut, ndim))

    def out_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        a, b = _propagate(self.branch, shape), _propagate(self.shortcut, shape)
        if a != b:
            raise ValueError(f"Residual: the branch maps {shape} to {a} but the shortcut to "
                             f"{b}; the two must agree")
        return a


Layer = Union[Conv, Dense, Activation, AvgPool, Flatten, GAP, Residual]
_LAYER_TYPES = (Conv, Dense, Activation, AvgPool, Flatten, GAP, Residual)


def _with_ndim(layers: tuple, ndim: int) -> tuple:
    return tuple(ly.with_ndim(ndim) if hasattr(ly, "with_ndim") else ly for ly in layers)


def _propagate(layers: tuple, shape: tuple[int, ...]) -> tuple[int, ...]:
    for ly in layers:
        if hasattr(ly, "out_shape") and shape:
            shape = ly.out_shape(shape)
    return shape


def _stax_of(layers: tuple, width: int, out_dim: int | None):
    """neural-tangents ``serial`` of the layers (the last Dense gets ``out_dim`` units when
    ``out_dim`` is given)."""
    stax = _nt()
    out, last = [], len(layers) - 1
    for i, ly in enumerate(layers):
        if isinstance(ly, (Conv, Dense)):
            w = out_dim if (i == last and out_dim is not None and isinstance(ly, Dense)) \
                else (ly.width or width)
            out.append(ly.stax(w))
        elif isinstance(ly, Residual):
            # neural-tangents warns that FanInSum assumes independent inputs. It holds: the
            # branch's last layer has fresh zero-mean weights.
            warnings.filterwarnings("ignore", message="`FanIn` layers assume independent")
            short = _stax_of(ly.shortcut, width, None) if ly.shortcut else stax.Identity()
            out.append(stax.serial(stax.FanOut(2),
                                   stax.parallel(_stax_of(ly.branch, width, None), short),
                                   stax.FanInSum()))
        else:
            out.append(ly.stax())
    return stax.serial(*out)


def kernel_layers(arch: Any, dim: int) -> tuple[Layer, ...]:
    """The layer tuple of ``arch`` for flat inputs of ``dim`` coordinates (``dim`` checked
    against the topology); ``TypeError`` for an object that has none."""
    own = getattr(arch, "kernel_layers", None)
    if not callable(own):
        raise TypeError(f"no kernel_layers(dim) for {type(arch).__name__}: build it as an "
                        f"infwidth Network (or an Architecture with a layers tuple)")
    return tuple(own(dim))

