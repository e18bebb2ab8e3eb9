"""Architectures: MLP, S-CNN, D-CNN and overlapping ConvNets, with their topology DAGs.

Each architecture is an immutable dataclass with
- ``.stax``: the neural-tangents ``(init_fn, apply_fn, kernel_fn)`` triple of a finite network
  with the same topology (NTK parameterisation);
- ``.dag`` / ``.dag_for(dim)``: the topology used by the learning index (``docs/theory.md`` §1);
- ``.input_shape(dim)``: the per-example shape of a flat input of ``dim`` coordinates.

Scaling conventions (``docs/theory.md`` §2). The first layer, which reads raw inputs, has weight
std 1, so the leaf kernel is ⟨x_i, x'_i⟩/n0. Every later layer has weight std ``W_std``, whose
default is the activation's normaliser 1/√E[φ(z)²] (√2 for ReLU), so that unit-variance inputs
stay unit-variance and the dual activation satisfies h(1) = 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import jax
import numpy as np

from infwidth._nt_compat import load
from infwidth.architectures.activations import default_w_std, get_activation
from infwidth.validation import check_number, check_pos_int

__all__ = ["DAG", "MLP", "SCNN", "DCNN", "ConvNet", "Architecture"]


# --------------------------------------------------------------------------------------
# Topology
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DAG:
    """A layered network topology.

    Layer 0 holds the leaves: input patches of ``patch_dim`` coordinates each. Layer ℓ ≥ 1
    holds the spatial positions of one infinitely wide layer; the last layer is the single
    root (the readout). ``children[ℓ-1][j]`` lists the nodes of layer ℓ-1 in the receptive
    field of node j of layer ℓ. The weight of an edge u→v is log_d(fan-in of v) with d = dim.

    Attributes:
        dim: total input dimension d.
        patch_dim: coordinates per leaf, n0.
        layer_sizes: number of nodes per layer, leaves first, root (1) last.
        children: receptive fields, one tuple of tuples per layer ℓ ≥ 1.
        readout: "flatten" or "gap" (how the root reads the top layer).
    """

    dim: int
    patch_dim: int
    layer_sizes: tuple[int, ...]
    children: tuple[tuple[tuple[int, ...], ...], ...]
    readout: str = "flatten"

    @property
    def n_patches(self) -> int:
        return self.layer_sizes[0]

    @property
    def depth(self) -> int:
        """Number of layers above the leaves (the root included)."""
        return len(self.layer_sizes) - 1

    @property
    def alpha0(self) -> float:
        """α0 = log_d n0."""
        return math.log(self.patch_dim) / math.log(self.dim) if self.dim > 1 else 1.0

    @cached_property
    def fan_in(self) -> tuple[tuple[int, ...], ...]:
        """Fan-in (in nodes of the layer below) of every node of layer ℓ ≥ 1."""
        return tuple(tuple(len(c) for c in layer) for layer in self.children)

    def edge_weight(self, layer: int, node: int) -> float:
        """log_d(fan-in) of node ``node`` of layer ``layer`` ≥ 1: the cost of any edge into it."""
        f = self.fan_in[layer - 1][node]
        return math.log(f) / math.log(self.dim) if self.dim > 1 else 0.0

    @cached_property
    def is_tree(self) -> bool:
        """True when every node has exactly one parent (receptive fields do not overlap)."""
        for ell, layer in enumerate(self.children):
            seen = [0] * self.layer_sizes[ell]
            for c in layer:
                for u in c:
                    seen[u] += 1
            if any(s != 1 for s in seen):
                return False
        return True

    @property
    def n_nodes(self) -> int:
        return sum(self.layer_sizes)

    def edges(self) -> list[tuple[tuple[int, int], tuple[int, int], float]]:
        """All edges as ((layer, node) child, (layer, node) parent, weight)."""
        out = []
        for ell, layer in enumerate(self.children, start=1):
            for j, c in enumerate(layer):
                w = self.edge_weight(ell, j)
                out.extend(((ell - 1, u), (ell, j), w) for u in c)
        return out


def _tree_children(n_below: int, k: int) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(range(j * k, (j + 1) * k)) for j in range(n_below // k))


def _tree_children_2d(side_below: int, k: int) -> tuple[tuple[int, ...], ...]:
    side = side_below // k
    out = []
    for a in range(side):
        for b in range(side):
            out.append(tuple((a * k + i) * side_below + (b * k + j)
                             for i in range(k) for j in range(k)))
    return tuple(out)


class Architecture:
    """Shared behaviour of the architectures (not instantiated directly)."""

    activation: str
    W_std: float | None
    b_std: float
    width: int
    out_dim: int
    ndim: int
    channels: int

    # What the engines dispatch on (the topology, not the Python class): a new architecture
    # sets these and overrides tree_plan/leaf_coordinates, and every engine follows.
    readout: str = "flatten"  # "flatten": Flatten + Dense; "gap": global average pooling
    #: pooling or a GAP readout needs the whole (P, P) spatial covariance per pair of inputs
    full_spatial_covariance: bool = False
    #: the kernel is invariant under cyclic shifts of the leaves (circular 1-D convs)
    translation_symmetric: bool = False

    def tree_plan(self, dim: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(leaf-grid shape, fan-in per axis of every nonlinear level above the leaves) when
        the topology is a tree with one fan-in per level, else None (a general DAG)."""
        return None

    def check_fields(self) -> None:
        """Validate the fields every architecture has (activation, width, out_dim, W_std,
        b_std, ndim, channels); subclasses call it from ``__post_init__``."""
        get_activation(self.activation)
        check_pos_int("width", self.width)
        check_pos_int("out_dim", self.out_dim)
        if self.W_std is not None:
            check_number("W_std", self.W_std, lo=0.0, lo_open=True)
        check_number("b_std", self.b_std, lo=0.0)
        if self.ndim not in (1, 2) or isinstance(self.ndim, bool):
            raise ValueError(f"ndim must be 1 (sequences) or 2 (square images), "
                             f"got {self.ndim!r}")
        check_pos_int("channels", self.channels)

    @property
    def w(self) -> float:
        """The hidden-layer weight std actually used."""
        return default_w_std(self.activation) if self.W_std is None else float(self.W_std)

    @property
    def b(self) -> float | None:
        return None if self.b_std == 0 else float(self.b_std)

    def _act(self):
        _, stax = load()
        return get_activation(self.activation).stax()

    @property
    def stax(self):
        """``(init_fn, apply_fn, kernel_fn)`` of the finite network, NTK parameterisation."""
        return self._stax

    @property
    def dag(self) -> DAG:
        """The topology at the smallest input dimension that fits (see ``dag_for``)."""
        return self.dag_for(self.min_dim)

    def _side(self, dim: int, unit: int) -> int:
        """Positions per spatial axis for a flat input of ``dim`` coordinates."""
        dim = check_pos_int("dim", dim)
        if dim % self.channels:
            raise ValueError(f"dim={dim} is not divisible by channels={self.channels}")
        pos = dim // self.channels
        side = pos if self.ndim == 1 else math.isqrt(pos)
        if self.ndim == 2 and side * side != pos:
            raise ValueError(f"dim={dim} does not fit a square image with "
                             f"{self.channels} channel(s): dim/channels={pos} is not a square")
        if side % unit:
            axis = "length" if self.ndim == 1 else "side"
            raise ValueError(f"dim={dim} does not fit the topology of {type(self).__name__}: "
                             f"the input {axis} {side} must be divisible by {unit}")
        return side

    def input_shape(self, dim: int) -> tuple[int, ...]:
        """Per-example array shape for a flat input of ``dim`` coordinates."""
        side = self._side(dim, self._unit)
        return (side,) * self.ndim + (self.channels,)

    def n_params(self, dim: int) -> int:
        """Number of trainable scalars of ``self.stax``'s network for a flat input of ``dim``
        coordinates (shapes only: nothing is initialised).

        Example:
            >>> iw.MLP(depth=1, width=4).n_params(3)  # 3·4 + 4·1 (b_std = 0: no biases)
            16
            >>> iw.MLP(depth=1, width=4, b_std=0.1).n_params(3)  # (3·4 + 4) + (4·1 + 1)
            21
        """
        init_fn = self.stax[0]
        shape = self.input_shape(dim)
        params = jax.eval_shape(lambda k: init_fn(k, (-1,) + shape)[1], jax.random.PRNGKey(0))
        return int(sum(math.prod(a.shape) for a in jax.tree_util.tree_leaves(params)))

    def leaf_coordinates(self, dim: int) -> np.ndarray:
        """(p, n0) int array: the flat input coordinates read by each leaf of
        ``self.dag_for(dim)``, in leaf order (one leaf per input position by default)."""
        shape = self.input_shape(dim)
        return np.arange(dim).reshape(shape).reshape(-1, shape[-1])


# --------------------------------------------------------------------------------------
# Architectures
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MLP(Architecture):
    """Fully connected network: ``depth`` hidden layers, then a linear readout.

    Its kernel is a dot-product kernel of ⟨x, x'⟩/dim; its DAG is one leaf (all coordinates)
    under the root, so the learning index is L(k) = |k|.

    Example:
        >>> import infwidth as iw
        >>> iw.MLP(depth=2, activation="erf").input_shape(16)
        (16,)
    """

    depth: int = 2
    activation: str = "relu"
    W_std: float | None = None
    b_std: float = 0.0
    width: int = 512
    out_dim: int = 1
    ndim: int = field(default=1, init=False)
    channels: int = field(default=1, init=False)

    def __post_init__(self) -> None:
        check_pos_int("depth", self.depth)
        self.check_fields()

    _unit = 1
    min_dim = 1

    def input_shape(self, dim: int) -> tuple[int, ...]:
        return (check_pos_int("dim", dim),)

    def leaf_coordinates(self, dim: int) -> np.ndarray:
        """One leaf that reads every coordinate."""
        return np.arange(check_pos_int("dim", dim))[None, :]

    def tree_plan(self, dim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """One leaf, then ``depth`` − 1 layers of fan-in 1 above the first."""
        check_pos_int("dim", dim)
        return (1,), (1,) * (self.depth - 1)

    def dag_for(self, dim: int) -> DAG:
        dim = check_pos_int("dim", dim)
        return DAG(dim, dim, (1, 1), (((0,),),))

    @cached_property
    def _stax(self):
        _, stax = load()
        layers = []
        for i in range(self.depth):
            layers += [stax.Dense(self.width, W_std=1.0 if i == 0 else self.w, b_std=self.b),
                       self._act()]
        layers.append(stax.Dense(self.out_dim, W_std=self.w, b_std=self.b))
        return stax.serial(*layers)


@dataclass(frozen=True)
class DCNN(Architecture):
    """Deep CNN with non-overlapping filters: a tree (``docs/theory.md`` §1).

    Layer 0 is a conv with filter = stride = ``patch_dim`` (VALID) over the raw input, one
    node per patch; then one conv per entry of ``filter_sizes`` (filter = stride, VALID);
    then Flatten and Dense. With ``ndim=2`` the input is a square image with ``channels``
    channels, ``patch_dim`` and ``filter_sizes`` are side lengths (patches of
    patch_dim×patch_dim pixels), and all convs are 2-D.

    Example:
        >>> import infwidth as iw
        >>> arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
        >>> arch.input_shape(64), arch.dag_for(64).layer_sizes
        ((64, 1), (16, 8, 4, 1))
    """

    patch_dim: int = 8
    filter_sizes: tuple[int, ...] = (4, 4)
    activation: str = "relu"
    W_std: float | None = None
    b_std: float = 0.0
    width: int = 512
    out_dim: int = 1
    ndim: int = 1
    channels: int = 1

    def __post_init__(self) -> None:
        check_pos_int("patch_dim", self.patch_dim)
        if not isinstance(self.filter_sizes, (tuple, list)):
            raise TypeError(f"filter_sizes must be a tuple of positive integers, "
                            f"got {self.filter_sizes!r}")
        object.__setattr__(self, "filter_sizes", tuple(self.filter_sizes))
        for k in self.filter_sizes:
            check_pos_int("filter_sizes", k)
        self.check_fields()

    @property
    def _unit(self) -> int:
        return self.patch_dim * math.prod(self.filter_sizes)

    @property
    def min_dim(self) -> int:
        return self._unit ** self.ndim * self.channels

    @property
    def patch_coords(self) -> int:
        """n0: coordinates per patch."""
        return self.patch_dim ** self.ndim * self.channels

    def tree_plan(self, dim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """A grid of patches, pooled by ``filter_sizes`` (per axis) level by level."""
        side = self.input_shape(dim)[0] // self.patch_dim
        return (side,) * self.ndim, tuple(self.filter_sizes)

    def leaf_coordinates(self, dim: int) -> np.ndarray:
        """One leaf per patch: a contiguous run of ``patch_dim`` positions (1-D) or a
        ``patch_dim``×``patch_dim`` square (2-D), in row-major patch order."""
        shape = self.input_shape(dim)
        idx, p = np.arange(dim).reshape(shape), self.patch_dim
        side = shape[0] // p
        if self.ndim == 1:
            return idx.reshape(side, p * shape[-1])
        return idx.reshape(side, p, side, p, shape[-1]).transpose(0, 2, 1, 3, 4).reshape(
            side * side, -1)

    def dag_for(self, dim: int) -> DAG:
        side = self._side(dim, self._unit)
        below = side // self.patch_dim
        sizes, children = [below ** self.ndim], []
        make = _tree_children if self.ndim == 1 else _tree_children_2d
        for k in self.filter_sizes:
            children.append(make(below, k))
            below //= k
            sizes.append(below ** self.ndim)
        children.append((tuple(range(sizes[-1])),))
        sizes.append(1)
        return DAG(int(dim), self.patch_coords, tuple(sizes), tuple(children))

    def _conv(self, k: int, w_std: float):
        _, stax = load()
        return stax.Conv(self.width, (k,) * self.ndim, strides=(k,) * self.ndim,
                         padding="VALID", W_std=w_std, b_std=self.b)

    @cached_property
    def _stax(self):
        _, stax = load()
        layers = [self._conv(self.patch_dim, 1.0), self._act()]
        for k in self.filter_sizes:
            layers += [self._conv(k, self.w), self._act()]
        layers += [stax.Flatten(), stax.Dense(self.out_dim, W_std=self.w, b_std=self.b)]
        return stax.serial(*layers)


@dataclass(frozen=True)
class SCNN(DCNN):
    """Shallow CNN: one non-overlapping conv layer over patches, Flatten, Dense.

    Its kernel is (1/p)·Σ_i h(⟨x_i, x'_i⟩/n0). ``ndim=2`` selects square-image inputs.

    Example:
        >>> import infwidth as iw
        >>> iw.SCNN(patch_dim=8).dag_for(64).layer_sizes
        (8, 1)
    """

    patch_dim: int = 8
    filter_sizes: tuple[int, ...] = field(default=(), init=False)
    activation: str = "relu"
    W_std: float | None = None
    b_std: float = 0.0
    width: int = 512
    out_dim: int = 1
    ndim: int = 1
    channels: int = 1


_PADDINGS = {"circular": "CIRCULAR", "same": "SAME"}
_READOUTS = ("flatten", "gap")


@dataclass(frozen=True)
class ConvNet(Architecture):
    """Overlapping CNN: ``depth`` stride-1 convs of size ``filter_size``, then a readout.

    ``padding`` is "circular" or "same"; ``readout`` is "flatten" (Flatten + Dense) or "gap"
    (global average pooling + Dense). Its DAG is general: leaves are input positions (each
    with ``channels`` coordinates), and node j of layer ℓ sees positions j−⌊q/2⌋…j+⌈q/2⌉−1 of
    layer ℓ−1. ``ndim=2`` selects square images and 2-D convolutions.

    Example:
        >>> import infwidth as iw
        >>> iw.ConvNet(filter_size=3, depth=2, readout="gap").dag_for(8).layer_sizes
        (8, 8, 8, 1)
    """

    filter_size: int = 3
    depth: int = 3
    padding: str = "circular"
    readout: str = "flatten"
    activation: str = "relu"
    W_std: float | None = None
    b_std: float = 0.0
    width: int = 512
    out_dim: int = 1
    ndim: int = 1
    channels: int = 1

    @property
    def full_spatial_covariance(self) -> bool:  # type: ignore[override]
        return self.readout == "gap"

    @property
    def translation_symmetric(self) -> bool:  # type: ignore[override]
        return self.padding == "circular" and self.ndim == 1

    def __post_init__(self) -> None:
        check_pos_int("filter_size", self.filter_size)
        check_pos_int("depth", self.depth)
        if not isinstance(self.padding, str) or self.padding not in _PADDINGS:
            raise ValueError(f"padding must be one of {sorted(_PADDINGS)}, got {self.padding!r}")
        if not isinstance(self.readout, str) or self.readout not in _READOUTS:
            raise ValueError(f"readout must be one of {_READOUTS}, got {self.readout!r}")
        self.check_fields()

    _unit = 1

    @property
    def min_dim(self) -> int:
        return self.filter_size ** self.ndim * self.channels

    def input_shape(self, dim: int) -> tuple[int, ...]:
        shape = super().input_shape(dim)
        if shape[0] < self.filter_size:
            raise ValueError(f"dim={dim} gives {shape[0]} positions per axis, fewer than "
                             f"filter_size={self.filter_size}")
        return shape

    def spatial_size(self, dim: int) -> int:
        """P: number of spatial positions of every hidden layer."""
        return math.prod(self.input_shape(dim)[:-1])

    def dag_for(self, dim: int) -> DAG:
        side = self.input_shape(dim)[0]
        q, lo = self.filter_size, (self.filter_size - 1) // 2
        circ = self.padding == "circular"

        def window(i: int) -> list[int]:
            idx = [i - lo + t for t in range(q)]
            return sorted({j % side for j in idx} if circ else
                          {j for j in idx if 0 <= j < side})

        if self.ndim == 1:
            layer = tuple(tuple(window(i)) for i in range(side))
        else:
            layer = tuple(tuple(a * side + b for a in window(i) for b in window(j))
                          for i in range(side) for j in range(side))
        p = side ** self.ndim
        sizes = (p,) * (self.depth + 1) + (1,)
        children = (layer,) * self.depth + ((tuple(range(p)),),)
        return DAG(int(dim), self.channels, sizes, children, readout=self.readout)

    @cached_property
    def _stax(self):
        _, stax = load()
        layers = []
        for i in range(self.depth):
            layers += [stax.Conv(self.width, (self.filter_size,) * self.ndim,
                                 strides=(1,) * self.ndim, padding=_PADDINGS[self.padding],
                                 W_std=1.0 if i == 0 else self.w, b_std=self.b), self._act()]
        layers += [stax.Flatten() if self.readout == "flatten" else stax.GlobalAvgPool(),
                   stax.Dense(self.out_dim, W_std=self.w, b_std=self.b)]
        return stax.serial(*layers)
