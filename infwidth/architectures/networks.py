"""Architectures: one base class that derives everything from a layer tuple.

An architecture is an immutable dataclass whose ``layers`` (specs of
:mod:`infwidth.architectures.layers`) are its one description; :class:`Architecture` derives
from them, once for all architectures:

- ``.stax``: the neural-tangents ``(init_fn, apply_fn, kernel_fn)`` triple of the finite
  network (NTK parameterisation);
- ``.kernel_layers(dim)``: what the native kernel engine runs;
- ``.dag`` / ``.dag_for(dim)``: the topology used by the learning index (``docs/theory.md`` §1);
- ``.input_shape(dim)``, ``.n_params(dim)``, ``.leaf_coordinates(dim)``, ``.tree_plan(dim)``,
  ``.readout``, ``.full_spatial_covariance``, ``.translation_symmetric``: what the engines
  dispatch on (never the Python class).

:class:`Network` is built from any layer tuple; ``MLP``, ``SCNN``, ``DCNN`` and ``ConvNet``
(here), ``Myrtle``, the width study's LeNet and the residual nets are constructors that only
say which stack they are. Every public constructor in :mod:`infwidth.architectures` is
registered in :data:`ARCHITECTURES` by its class name (adding one is one class in one file).

Scaling conventions (``docs/theory.md`` §2). The first layer, which reads raw inputs, has weight
std 1, so the leaf kernel is ⟨x_i, x'_i⟩/n0. Every later layer has weight std ``W_std``, whose
default is the activation's normaliser 1/√E[φ(z)²] (√2 for ReLU), so that unit-variance inputs
stay unit-variance and the dual activation satisfies h(1) = 1.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import jax
import numpy as np

from infwidth.architectures.activations import get_activation
from infwidth.architectures.layers import (
    _LAYER_TYPES,
    GAP,
    Activation,
    AvgPool,
    Conv,
    Dense,
    Flatten,
    Residual,
    _stax_of,
    _with_ndim,
)
from infwidth.validation import check_number, check_pos_int

__all__ = ["DAG", "MLP", "SCNN", "DCNN", "ConvNet", "Architecture", "Network", "ARCHITECTURES"]

#: The public architecture constructors by class name (filled as they are defined).
ARCHITECTURES: dict[str, type] = {}


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


# --------------------------------------------------------------------------------------
# Derivations from a layer tuple
# --------------------------------------------------------------------------------------
def _walk(layers: tuple, fn) -> None:
    """Call ``fn`` on every layer, entering residual branches and shortcuts."""
    for ly in layers:
        fn(ly)
        if isinstance(ly, Residual):
            _walk(ly.branch, fn)
            _walk(ly.shortcut, fn)


def _all(layers: tuple) -> list:
    out: list = []
    _walk(layers, out.append)
    return out


def _reach(layers: tuple, shape: tuple[int, ...], pending: list[frozenset]):
    """DAG layers of ``layers`` on a map of ``shape`` whose positions see ``pending`` (nodes
    of the last DAG layer): one DAG layer per Conv (children: the union of its taps'
    ``pending``), pooling composed into ``pending``, the readout as the root.
    Returns (new layers, shape, pending)."""
    new: list[tuple[frozenset, ...]] = []
    for ly in layers:
        if isinstance(ly, (Conv, AvgPool)):
            taps = ly.taps(shape)
            out = ly.out_shape(shape)
            rf = []
            for o in itertools.product(*(range(m) for m in out)):
                acc: set = set()
                for i in itertools.product(*(t[k] for t, k in zip(taps, o))):
                    if min(i) >= 0:
                        acc |= pending[int(np.ravel_multi_index(i, shape))]
                rf.append(frozenset(acc))
            shape = out
            if isinstance(ly, Conv):
                new.append(tuple(rf))
                pending = [frozenset((j,)) for j in range(len(rf))]
            else:
                pending = rf
        elif isinstance(ly, (Flatten, GAP)):
            new.append((frozenset().union(*pending),))
            shape, pending = (), [frozenset((0,))]
        elif isinstance(ly, Residual):
            a = _reach(ly.branch, shape, pending)
            b = _reach(ly.shortcut, shape, pending)
            merged, shape, pending = _merge(a, b)
            new += merged
    return new, shape, pending


def _merge(a, b):
    """One layered DAG for a residual block: the longer path's layers, with the shorter
    path's layers merged into them layer by layer (union of children), and the rest of the
    shorter path routed through positions j → j (identity edges) up to the block's output.
    An identity shortcut thus adds each position's own receptive field to the first layer of
    the branch (nothing new for SAME convs, whose windows hold their centre)."""
    (la, sa, pa), (lb, sb, pb) = a, b
    if len(la) < len(lb):
        (la, sa, pa), (lb, sb, pb) = (lb, sb, pb), (la, sa, pa)
    n = len(lb)
    bad = ValueError("dag_for: a Residual block whose branch and shortcut end on different "
                     "grids cannot be drawn as a layered DAG")
    out = []
    for x, y in zip(la, lb):
        if len(x) != len(y):
            raise bad
        out.append(tuple(u | v for u, v in zip(x, y)))
    if len(la) == n:
        if len(pa) != len(pb):
            raise bad
        return out, sa, [u | v for u, v in zip(pa, pb)]
    route = pb
    for x in la[n:]:
        if len(x) != len(route):
            raise bad
        out.append(tuple(u | v for u, v in zip(x, route)))
        route = [frozenset((j,)) for j in range(len(x))]
    if any(p != frozenset((j,)) for j, p in enumerate(pa)):
        raise bad
    return out, sa, pa


class Architecture:
    """Everything derived from the layer tuple ``self.layers`` (subclasses: dataclasses with
    ``width``, ``out_dim``, ``ndim``, ``channels`` fields and a ``layers`` property or field).

    Subclasses in :mod:`infwidth.architectures` are registered in :data:`ARCHITECTURES`.
    """

    width: int
    out_dim: int
    ndim: int
    channels: int

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("infwidth.architectures."):
            ARCHITECTURES[cls.__name__] = cls

    def check_fields(self) -> None:
        """Validate the fields every constructor has (activation, width, out_dim, W_std,
        b_std, ndim, channels); constructors call it from ``__post_init__``."""
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
        if self.W_std is None:
            return get_activation(self.activation).w_std
        return float(self.W_std)

    # ---------------------------------------------------------------- the layer tuple
    @cached_property
    def _net(self) -> tuple:
        """``self.layers`` with single-axis filters and windows repeated over ``ndim``."""
        return _with_ndim(tuple(self.layers), self.ndim)

    @property
    def _dense_input(self) -> bool:
        return isinstance(self._net[0], Dense)

    def kernel_layers(self, dim: int) -> tuple:
        """The layer tuple the native kernel engine runs (``dim`` checked first)."""
        self.input_shape(dim)
        return self._net

    @cached_property
    def stax(self):
        """``(init_fn, apply_fn, kernel_fn)`` of the finite network, NTK parameterisation."""
        return _stax_of(self._net, self.width, self.out_dim)

    # ---------------------------------------------------------------- what engines read
    @property
    def readout(self) -> str:
        """"gap" (global average pooling) or "flatten" (Flatten + Dense)."""
        return "gap" if any(isinstance(ly, GAP) for ly in self._net) else "flatten"

    @property
    def full_spatial_covariance(self) -> bool:
        """Pooling or a GAP readout needs the whole (P, P) covariance per pair of inputs."""
        return not self._dense_input and any(isinstance(ly, (AvgPool, GAP))
                                             for ly in _all(self._net))

    @property
    def pooling(self) -> bool:
        """Average pooling anywhere in the stack (residual blocks included)."""
        return any(isinstance(ly, AvgPool) for ly in _all(self._net))

    @property
    def translation_symmetric(self) -> bool:
        """The kernel is invariant under cyclic shifts of the leaves: 1-D, every conv circular
        with stride 1, no pooling."""
        every = _all(self._net)
        convs = [ly for ly in every if isinstance(ly, Conv)]
        return (self.ndim == 1 and bool(convs) and not self._dense_input
                and all(c.padding == "circular" and c.stride == (1,) for c in convs)
                and not any(isinstance(ly, AvgPool) for ly in every))

    def tree_plan(self, dim: int) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(leaf-grid shape, fan-in per axis of every nonlinear level above the leaves) when
        the topology is a tree with one fan-in per level and one activation, weight std and
        bias std throughout (first weight std 1), else None (a general DAG): Dense → φ →
        … → Dense, or non-overlapping square convs → φ → … → Flatten → Dense."""
        shape = self.input_shape(dim)
        net = self._net
        lin = [ly for ly in net if isinstance(ly, (Conv, Dense))]
        acts = [ly for ly in net if isinstance(ly, Activation)]
        if (not acts or len({a.spec for a in acts}) != 1 or lin[0].W_std != 1.0
                or len({ly.W_std for ly in lin[1:]}) > 1 or len({ly.b_std for ly in lin}) > 1
                or any(isinstance(ly, Conv) and ly.width is not None for ly in lin)):
            return None
        body = net[:-1]
        if self._dense_input:
            if list(body) != [x for pair in zip(lin[:-1], acts) for x in pair]:
                return None
            return (1,), (1,) * (len(acts) - 1)
        convs = lin[:-1]
        if (list(body) != [x for pair in zip(convs, acts) for x in pair] + [Flatten()]
                or not all(c.is_patch and len(set(c.filter)) == 1 for c in convs)):
            return None
        return convs[0].out_shape(shape[:-1]), tuple(c.filter[0] for c in convs[1:])

    # ---------------------------------------------------------------- shapes
    @property
    def _unit(self) -> int:
        """Each input side must be divisible by this: the product of the strides of the
        non-overlapping (tree) convs, which must tile their map exactly."""
        return math.prod(ly.stride[0] for ly in self._net
                         if isinstance(ly, Conv) and ly.is_patch)

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
        """Per-example array shape for a flat input of ``dim`` coordinates: (dim,) when the
        first layer is Dense, else (side,)·ndim + (channels,), checked against every layer."""
        if self._dense_input:
            return (check_pos_int("dim", dim),)
        side = self._side(dim, self._unit)
        shape = (side,) * self.ndim
        name = type(self).__name__
        for i, ly in enumerate(self._net):
            if isinstance(ly, (Flatten, GAP)):
                break
            if isinstance(ly, (Conv, AvgPool, Residual)):
                try:
                    shape = ly.out_shape(shape)
                except ValueError as e:
                    raise ValueError(f"dim={dim} does not fit {name}: a {side}-wide input is "
                                     f"too small for {name} (layer {i}: {e})") from None
        return (side,) * self.ndim + (self.channels,)

    @property
    def min_dim(self) -> int:
        """The smallest input dimension the topology accepts."""
        if self._dense_input:
            return 1
        side = self._unit
        for _ in range(4096):
            dim = side ** self.ndim * self.channels
            try:
                self.input_shape(dim)
                return dim
            except ValueError:
                side += self._unit
        raise ValueError(f"no input side up to {side} fits {type(self).__name__}")

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

    # ---------------------------------------------------------------- topology
    @property
    def dag(self) -> DAG:
        """The topology at the smallest input dimension that fits (see ``dag_for``)."""
        return self.dag_for(self.min_dim)

    def _leaf_grid(self, dim: int) -> tuple[tuple[int, ...], tuple[int, ...], int]:
        """(input shape, leaf grid, coordinates per leaf) and whether the first conv is
        absorbed into the leaves (a non-overlapping first conv: one leaf per patch)."""
        shape = self.input_shape(dim)
        first = self._net[0]
        if isinstance(first, Conv) and first.is_patch:
            return shape, first.out_shape(shape[:-1]), 1
        return shape, shape[:-1], 0

    def dag_for(self, dim: int) -> DAG:
        """The learning-index topology at input dimension ``dim``.

        Leaves: one per input position (``channels`` coordinates each), or one per patch when
        the first conv is non-overlapping (stride = filter, VALID), or a single leaf of all
        coordinates when the first layer is Dense. Then one DAG layer per Conv: node j sees
        the nodes of the layer below inside its taps, average pooling composed into those
        receptive fields (a pooled position stands for its window); the root (the readout)
        sees every position that reaches it. A Residual block contributes the layers of its
        longer path (branch or shortcut); the shorter path is merged in layer by layer and
        then routed through identity edges j → j, so an identity shortcut adds each
        position's own receptive field to the block's first layer (nothing new for SAME
        convs, whose windows hold their centre). This keeps the depth of a residual stack
        (the learning index counts the branch's layers), rather than drawing each block as
        one layer.
        """
        return _dag(self, check_pos_int("dim", dim))

    def _dag_for(self, dim: int) -> DAG:
        shape, grid, absorbed = self._leaf_grid(dim)
        if self._dense_input:
            return DAG(int(dim), int(dim), (1, 1), (((0,),),), readout=self.readout)
        n0 = (math.prod(self._net[0].filter) if absorbed else 1) * shape[-1]
        p = math.prod(grid)
        new, _, _ = _reach(self._net[absorbed:], grid, [frozenset((j,)) for j in range(p)])
        sizes = (p,) + tuple(len(x) for x in new)
        children = tuple(tuple(tuple(sorted(c)) for c in x) for x in new)
        return DAG(int(dim), n0, sizes, children, readout=self.readout)

    def leaf_coordinates(self, dim: int) -> np.ndarray:
        """(p, n0) int array: the flat input coordinates read by each leaf of
        ``self.dag_for(dim)``, in leaf order (patches in row-major order, each patch's
        coordinates row-major over its positions then channels)."""
        if self._dense_input:
            return np.arange(check_pos_int("dim", dim))[None, :]
        shape, grid, absorbed = self._leaf_grid(dim)
        idx = np.arange(dim).reshape(shape)
        if not absorbed:
            return idx.reshape(-1, shape[-1])
        f = self._net[0].filter
        nd = len(grid)
        idx = idx.reshape(tuple(x for g, k in zip(grid, f) for x in (g, k)) + (shape[-1],))
        order = tuple(range(0, 2 * nd, 2)) + tuple(range(1, 2 * nd, 2)) + (2 * nd,)
        return idx.transpose(order).reshape(math.prod(grid), -1)


@lru_cache(maxsize=256)
def _dag(arch: Architecture, dim: int) -> DAG:
    """``arch.dag_for(dim)``, built once per (architecture, dim): both are immutable."""
    return arch._dag_for(dim)


@dataclass(frozen=True)
class Network(Architecture):
    """A network given by its layer tuple (:mod:`infwidth.architectures.layers`).

    The first layer is a Conv (or a Dense, for flat inputs), the last a Dense readout (with
    ``out_dim`` units); a convolutional stack reads out through Flatten or GAP. ``width``:
    the channels/units of every Conv and Dense whose own ``width`` is None. Inputs are
    sequences (``ndim=1``) or square images (``ndim=2``) with ``channels`` channels.

    Example:
        >>> import infwidth as iw
        >>> from infwidth.architectures.layers import Activation, Conv, Dense, Flatten
        >>> net = iw.Network(layers=(Conv(2, 2, "valid"), Activation("relu"), Flatten(),
        ...                          Dense(W_std=2 ** 0.5)), width=4)
        >>> net.input_shape(8), net.dag_for(8).layer_sizes, net.n_params(8)
        ((8, 1), (4, 1), 24)
    """

    layers: tuple = ()
    ndim: int = 1
    channels: int = 1
    width: int = 512
    out_dim: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.layers, (tuple, list)) or not self.layers:
            raise TypeError(f"layers must be a non-empty tuple of layer specs, "
                            f"got {self.layers!r}")
        object.__setattr__(self, "layers", tuple(self.layers))
        for i, ly in enumerate(self.layers):
            if not isinstance(ly, _LAYER_TYPES):
                raise TypeError(f"layers[{i}] must be a layer spec (Conv, Dense, Activation, "
                                f"AvgPool, Flatten, GAP, Residual), got {ly!r}")
        if not isinstance(self.layers[0], (Conv, Dense)):
            raise ValueError("layers: the first layer must be a Conv or a Dense layer")
        if not isinstance(self.layers[-1], Dense):
            raise ValueError("layers: the last layer must be a Dense readout")
        check_pos_int("width", self.width)
        check_pos_int("out_dim", self.out_dim)
        if self.ndim not in (1, 2) or isinstance(self.ndim, bool):
            raise ValueError(f"ndim must be 1 (sequences) or 2 (square images), "
                             f"got {self.ndim!r}")
        check_pos_int("channels", self.channels)

    def _common(self, what: str):
        every = _all(self.layers)
        if what == "activation":
            vals = {ly.spec for ly in every if isinstance(ly, Activation)}
        else:
            lin = [ly for ly in every if isinstance(ly, (Conv, Dense))]
            vals = {getattr(ly, what) for ly in (lin[1:] if what == "W_std" else lin)}
        return next(iter(vals)) if len(vals) == 1 else None

    @property
    def activation(self):
        """The activation when every Activation layer has the same one (its registered name,
        else the spec), else None."""
        spec = self._common("activation")
        if spec is not None:
            try:
                if get_activation(spec.name) == spec:
                    return spec.name
            except (TypeError, ValueError):
                pass
        return spec

    @property
    def W_std(self) -> float | None:
        """The weight std of every linear layer after the first, when they share one."""
        return self._common("W_std")

    @property
    def w(self) -> float | None:  # type: ignore[override]
        return self.W_std

    @property
    def b_std(self) -> float | None:
        """The bias std of every linear layer, when they share one."""
        return self._common("b_std")


# --------------------------------------------------------------------------------------
# Constructors
# --------------------------------------------------------------------------------------
def _linear_stack(kind: str, filters: tuple, act: Any, w: float, b: float, ndim: int,
                  stride: bool, padding: str) -> list:
    """Conv/Dense → φ per entry of ``filters`` (first weight std 1, later ``w``)."""
    out: list = []
    for i, k in enumerate(filters):
        ws = 1.0 if i == 0 else w
        if kind == "dense":
            out.append(Dense(ws, b))
        else:
            out.append(Conv((k,) * ndim, (k if stride else 1,) * ndim, padding, ws, b))
        out.append(Activation(act))
    return out


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

    @property
    def layers(self) -> tuple:
        """Dense → φ, ``depth`` times, then Dense."""
        b = float(self.b_std)
        return tuple(_linear_stack("dense", (1,) * self.depth, self.activation, self.w, b, 1,
                                   False, "")) + (Dense(self.w, b),)


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
    def patch_coords(self) -> int:
        """n0: coordinates per patch."""
        return self.patch_dim ** self.ndim * self.channels

    @property
    def layers(self) -> tuple:
        """Conv(k, stride k, VALID) → φ for k in (patch_dim, *filter_sizes), Flatten, Dense."""
        b = float(self.b_std)
        ks = (self.patch_dim,) + self.filter_sizes
        return tuple(_linear_stack("conv", ks, self.activation, self.w, b, self.ndim, True,
                                   "valid")) + (Flatten(), Dense(self.w, b))


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


_PADDINGS = ("circular", "same")
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

    def __post_init__(self) -> None:
        check_pos_int("filter_size", self.filter_size)
        check_pos_int("depth", self.depth)
        if not isinstance(self.padding, str) or self.padding not in _PADDINGS:
            raise ValueError(f"padding must be one of {sorted(_PADDINGS)}, got {self.padding!r}")
        if not isinstance(self.readout, str) or self.readout not in _READOUTS:
            raise ValueError(f"readout must be one of {_READOUTS}, got {self.readout!r}")
        self.check_fields()

    @property
    def layers(self) -> tuple:
        """Conv(filter_size, stride 1, padding) → φ, ``depth`` times, Flatten or GAP, Dense."""
        b = float(self.b_std)
        body = _linear_stack("conv", (self.filter_size,) * self.depth, self.activation, self.w,
                             b, self.ndim, False, self.padding)
        return tuple(body) + ({"flatten": Flatten(), "gap": GAP()}[self.readout],
                              Dense(self.w, b))

    def input_shape(self, dim: int) -> tuple[int, ...]:
        shape = super().input_shape(dim)
        if shape[0] < self.filter_size:
            raise ValueError(f"dim={dim} gives {shape[0]} positions per axis, fewer than "
                             f"filter_size={self.filter_size}")
        return shape

    def spatial_size(self, dim: int) -> int:
        """P: number of spatial positions of every hidden layer."""
        return math.prod(self.input_shape(dim)[:-1])


@dataclass(frozen=True)
class ResNet(Architecture):
    """Residual CNN: a stem conv, ``blocks`` pre-activation residual blocks
    x + conv(φ(conv(φ(x)))) (``filter_size``, SAME, stride 1), then φ, GAP and Dense.

    Example:
        >>> ResNet(blocks=2, ndim=2).dag_for(16).layer_sizes
        (16, 16, 16, 16, 16, 16, 1)
    """

    blocks: int = 2
    filter_size: int = 3
    activation: str = "relu"
    W_std: float | None = None
    b_std: float = 0.0
    width: int = 512
    out_dim: int = 1
    ndim: int = 1
    channels: int = 1

    def __post_init__(self) -> None:
        check_pos_int("blocks", self.blocks)
        check_pos_int("filter_size", self.filter_size)
        self.check_fields()

    @property
    def layers(self) -> tuple:
        f, b, act = (self.filter_size,) * self.ndim, float(self.b_std), Activation(self.activation)
        block = Residual((act, Conv(f, 1, "same", self.w, b), act, Conv(f, 1, "same", self.w, b)))
        return ((Conv(f, 1, "same", 1.0, b),) + (block,) * self.blocks
                + (act, GAP(), Dense(self.w, b)))
