"""Sequential vs parallel residual networks (seeds/002, ``docs/theory.md`` §5).

A residual stack y_l = y_{l−1} + α·F_l(y_{l−1}) (``layout="sequential"``) expands like a
Taylor series in α; its first-order truncation is the parallel net y = y_0 + α·Σ_l F_l(y_0)
(``layout="parallel"``). Both start with a stem y_0 = Dense/Conv(x) (neural-tangents needs a
layer before the first identity branch) and end with a linear readout; they have the same
branches and the same number of parameters.

Infinite width (NNGP, branches F = Dense(W=1) → φ → Dense(W=w)):

- T(K) = w²·E[φ(u)φ(v)]_{(u,v)~N(0, K+b²)} + b² is the branch's kernel map;
- sequential: K_l = K_{l−1} + α²·T(K_{l−1});  parallel: K = K_0 + L·α²·T(K_0);
- K_seq − K_par = α⁴·L(L−1)/2 · DT_{K_0}[T(K_0)] + O(α⁶L³): the gap is of order α⁴L².

:func:`residual_recursion` is that recursion (and the NTK's) in numpy, checked against
neural-tangents;
:func:`gap_table` measures the relative gap ‖K_seq − K_par‖_F/‖K_par‖_F on data and
compares it with the leading term.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Sequence

import jax
import numpy as np
import pandas as pd

from infwidth._nt_compat import load
from infwidth.architectures.activations import gaussian_dual
from infwidth.architectures.layers import Activation, Conv, Dense, Flatten, Residual
from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import check_inputs
from infwidth.kernels.engine import kernel
from infwidth.validation import check_kinds, check_pos_int

__all__ = ["ResidualNet", "residual_stax", "residual_recursion", "residual_nngp",
           "predicted_gap", "residual_kernels", "kernel_gap", "gap_table", "loglog_slope",
           "LAYOUTS", "BRANCHES"]

LAYOUTS = ("sequential", "parallel")
BRANCHES = ("dense", "conv")


def _check_alpha(alpha: Any) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating)) or not (
            math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha!r}")
    return float(alpha)


def _out_shape(layer, in_shape: tuple[int, ...]) -> tuple[int, ...]:
    box = {}

    def f(key):
        shape, params = layer[0](key, in_shape)
        box["shape"] = tuple(shape)
        return params

    jax.eval_shape(f, jax.random.PRNGKey(0))
    return box["shape"]


def residual_stax(layout: str, stem, branches: Sequence, readout,
                  input_shape: tuple[int, ...] | None = None):
    """stem → residual part → readout, as one neural-tangents ``serial`` triple.

    - sequential: [FanOut(2) → parallel(Identity, F_l) → FanInSum] for l = 1…L;
    - parallel: FanOut(L+1) → parallel(Identity, F_1, …, F_L) → FanInSum.

    With ``input_shape`` (per example), every branch is checked to map the stem's output
    shape to itself (an identity branch cannot be added otherwise).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    branches = list(branches)
    if not branches:
        raise ValueError("branches must hold at least one branch")
    if input_shape is not None:
        h = _out_shape(stem, (-1,) + tuple(input_shape))
        for i, b in enumerate(branches, start=1):
            o = _out_shape(b, h)
            if o != h:
                raise ValueError(f"branch {i} maps shape {h[1:]} to {o[1:]}; a residual "
                                 f"branch must keep the stem's output shape {h[1:]}")
    _, stax = load()
    # neural-tangents warns that FanInSum assumes independent inputs. It holds here: the
    # branch's last layer has fresh zero-mean weights, so y and F(y) are uncorrelated.
    warnings.filterwarnings("ignore", message="`FanIn` layers assume independent inputs")
    if layout == "sequential":
        body = [stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), b), stax.FanInSum())
                for b in branches]
    else:
        body = [stax.FanOut(len(branches) + 1), stax.parallel(stax.Identity(), *branches),
                stax.FanInSum()]
    return stax.serial(stem, *body, readout)


@dataclass(frozen=True)
class ResidualNet(Architecture):
    """Residual net with ``depth`` = L branches α·F_l, F_l = Lin(W=1) → φ → Lin(W=w).

    ``branch="dense"`` uses Dense layers on flat inputs; ``branch="conv"`` uses k×k SAME
    convolutions on square images and a Flatten readout. Stem: Lin(width, W=1), no
    activation; readout: Dense(out_dim, W=1). ``layout`` is "sequential" or "parallel";
    the two layouts have identical parameter counts.

    Example:
        >>> import infwidth as iw
        >>> seq = ResidualNet(layout="sequential", depth=3, alpha=0.3, width=16)
        >>> par = dataclasses.replace(seq, layout="parallel")
        >>> seq.n_params(8) == par.n_params(8)
        True
    """

    layout: str = "sequential"
    depth: int = 4
    alpha: float = 0.5
    branch: str = "dense"
    filter_size: int = 3
    activation: str = "relu"
    W_std: float | None = None
    b_std: float = 0.0
    width: int = 128
    out_dim: int = 1
    channels: int = 1
    ndim: int = field(default=1, init=False)

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.branch not in BRANCHES:
            raise ValueError(f"branch must be one of {BRANCHES}, got {self.branch!r}")
        check_pos_int("depth", self.depth)
        check_pos_int("filter_size", self.filter_size)
        object.__setattr__(self, "alpha", _check_alpha(self.alpha))
        object.__setattr__(self, "ndim", 1 if self.branch == "dense" else 2)
        self.check_fields()

    def _lin(self, w_std: float, scale: float = 1.0):
        b = scale * float(self.b_std)
        if self.branch == "dense":
            return Dense(scale * w_std, b)
        return Conv((self.filter_size,) * 2, (1, 1), "same", scale * w_std, b)

    def branch_layers(self) -> tuple:
        """α·F with F = Lin(W=1) → φ → Lin(W=w). α multiplies the last layer's weight and
        bias stds (a separate scaling layer would make neural-tangents treat the branch
        output as non-Gaussian, which FanInSum refuses); in NTK parameterisation this equals
        multiplying the branch output by α, for the NNGP and the NTK alike."""
        return (self._lin(1.0), Activation(self.activation), self._lin(self.w, self.alpha))

    @property
    def layers(self) -> tuple:
        """Stem, L residual blocks (sequential: one after the other; parallel: nested, so
        that the stem's output y0 gets y0 + F_1(y0) + … + F_L(y0)), readout.

        Both layouts have the DAG of their longest path (``Network.dag_for``): 1 + 2L
        stacked SAME convs sequential, 3 parallel (identity edges join a position to
        itself, already inside every k×k window)."""
        f = self.branch_layers()
        if self.layout == "sequential":
            body = (Residual(f),) * self.depth
        else:
            block = Residual(f)
            for _ in range(self.depth - 1):
                block = Residual(f, (block,))
            body = (block,)
        readout = (Dense(1.0, float(self.b_std)),)
        if self.branch == "conv":
            readout = (Flatten(),) + readout
        return (self._lin(1.0),) + body + readout


# --------------------------------------------------------------------------------------
# Theory: the NNGP recursions and the leading gap
# --------------------------------------------------------------------------------------
def _dense_arch(arch: ResidualNet) -> ResidualNet:
    if not isinstance(arch, ResidualNet):
        raise TypeError(f"arch must be a ResidualNet, got {type(arch).__name__}")
    if arch.branch != "dense":
        raise ValueError("the numpy recursion covers dense branches only (branch='dense')")
    return arch


def _branch_map(arch: ResidualNet, k12, k11, k22, alpha2: float = 1.0):
    """T on (cross, diag₁, diag₂): w²·E[φφ] under N(0, K + b²) + b², times ``alpha2``;
    also E[φ'φ'] on the cross entries (for the NTK)."""
    b2, w2 = arch.b_std ** 2, arch.w ** 2
    t12, d12 = gaussian_dual(arch.activation, k11[:, None] + b2, k22[None, :] + b2, k12 + b2)
    t11, _ = gaussian_dual(arch.activation, k11 + b2, k11 + b2, k11 + b2)
    t22, _ = gaussian_dual(arch.activation, k22 + b2, k22 + b2, k22 + b2)
    return (alpha2 * (w2 * t12 + b2), alpha2 * (w2 * t11 + b2), alpha2 * (w2 * t22 + b2),
            alpha2 * w2 * d12)


def _stem(arch, x1, x2):
    b2 = arch.b_std ** 2
    d = x1.shape[1]
    return (x1 @ x2.T / d + b2, np.sum(x1 * x1, 1) / d + b2, np.sum(x2 * x2, 1) / d + b2)


def residual_recursion(arch: ResidualNet, x1: Any, x2: Any = None) -> dict[str, np.ndarray]:
    """NNGP and NTK of a dense :class:`ResidualNet` in numpy, independent of
    neural-tangents. One branch α·F applied to a stream with kernels (K, Θ) adds

        Σ_F = α²·(w²·E[φφ](K + b²) + b²),   Θ_F = α²·w²·E[φ'φ'](K + b²)·(Θ + K + b²) + Σ_F,

    to (K, Θ): sequentially to the running stream, or all L to the stem's (K_0, Θ_0 = K_0)
    in the parallel layout. Readout: K + b², Θ + K + b². Returns {"nngp", "ntk"}.
    """
    arch = _dense_arch(arch)
    x1 = check_inputs(x1, "x1")
    x2 = x1 if x2 is None else check_inputs(x2, "x2", x1.shape[1])
    b2, a2 = arch.b_std ** 2, arch.alpha ** 2
    k12, k11, k22 = _stem(arch, x1, x2)
    theta = k12.copy()
    if arch.layout == "sequential":
        for _ in range(arch.depth):
            t12, t11, t22, d12 = _branch_map(arch, k12, k11, k22, a2)
            theta = theta + d12 * (theta + k12 + b2) + t12
            k12, k11, k22 = k12 + t12, k11 + t11, k22 + t22
    else:
        t12, _, _, d12 = _branch_map(arch, k12, k11, k22, a2)
        theta = theta + arch.depth * (d12 * (theta + k12 + b2) + t12)
        k12 = k12 + arch.depth * t12
    return {"nngp": k12 + b2, "ntk": theta + k12 + b2}


def residual_nngp(arch: ResidualNet, x1: Any, x2: Any = None) -> np.ndarray:
    """The NNGP of :func:`residual_recursion`."""
    return residual_recursion(arch, x1, x2)["nngp"]


def predicted_gap(arch: ResidualNet, x: Any, eps: float = 1e-5) -> float:
    """Leading-order relative NNGP gap α⁴·L(L−1)/2·‖DT_{K_0}[T(K_0)]‖_F / ‖K_par‖_F on x.

    The directional derivative moves the cross and the diagonal entries together (central
    difference with step ``eps``).
    """
    arch = _dense_arch(arch)
    x = check_inputs(x, "x")
    k12, k11, k22 = _stem(arch, x, x)
    t12, t11, t22, _ = _branch_map(arch, k12, k11, k22)
    plus = _branch_map(arch, k12 + eps * t12, k11 + eps * t11, k22 + eps * t22)[0]
    minus = _branch_map(arch, k12 - eps * t12, k11 - eps * t11, k22 - eps * t22)[0]
    dt = (plus - minus) / (2 * eps)
    par = residual_nngp(dataclasses.replace(arch, layout="parallel"), x)
    lead = arch.alpha ** 4 * arch.depth * (arch.depth - 1) / 2
    return float(lead * np.linalg.norm(dt) / np.linalg.norm(par))


_EAGER_MAX = 256


def residual_kernels(arch: ResidualNet, x1: Any, x2: Any = None,
                     kinds: Sequence[str] = ("nngp", "ntk")) -> dict:
    """{kind: Gram matrix} from neural-tangents. Up to 256 inputs per side, the kernel
    function runs un-jitted on the whole batch (its primitives compile once and are shared
    across depths and α, where a jitted kernel compiles per architecture, ~10 s at L = 32);
    larger inputs go through :func:`infwidth.kernel` (blocked, jitted)."""
    if not isinstance(arch, ResidualNet):
        raise TypeError(f"arch must be a ResidualNet, got {type(arch).__name__}")
    kinds = check_kinds(kinds, "kinds")
    x1 = check_inputs(x1, "x1")
    dim = x1.shape[1]
    x2c = None if x2 is None else check_inputs(x2, "x2", dim)
    n2 = x1.shape[0] if x2c is None else x2c.shape[0]
    if max(x1.shape[0], n2) > _EAGER_MAX:
        return {k: kernel(arch, x1, x2c, kind=k) for k in kinds}
    shape = (-1,) + arch.input_shape(dim)
    a = x1.reshape(shape)
    b = None if x2c is None else x2c.reshape(shape)
    out = arch.stax[2](a, b, tuple(kinds))
    return {k: np.asarray(v, dtype=np.float64) for k, v in zip(kinds, out)}


_METHODS = ("neural-tangents", "recursion")


def kernel_gap(arch: ResidualNet, x: Any, kinds: Sequence[str] = ("nngp", "ntk"),
               method: str = "neural-tangents") -> dict:
    """Relative gap ‖K_seq − K_par‖_F/‖K_par‖_F of ``arch``'s two layouts on x, per kind,
    from neural-tangents or from :func:`residual_recursion` (dense branches)."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    fn = (partial(residual_kernels, kinds=kinds) if method == "neural-tangents"
          else residual_recursion)
    seq = fn(dataclasses.replace(arch, layout="sequential"), x)
    par = fn(dataclasses.replace(arch, layout="parallel"), x)
    return {k: float(np.linalg.norm(seq[k] - par[k]) / np.linalg.norm(par[k])) for k in kinds}


def gap_table(arch: ResidualNet, x: Any, alphas: Sequence[float], depths: Sequence[int],
              kinds: Sequence[str] = ("nngp", "ntk"),
              method: str = "neural-tangents") -> pd.DataFrame:
    """Relative kernel gap over α × L × kind. Columns: alpha, depth, kind, gap, order
    (= α⁴L²), predicted (the NNGP leading term of :func:`predicted_gap`; NaN for the NTK
    or conv branches) and ratio = gap/predicted. ``method``: see :func:`kernel_gap`.

    Example:
        >>> import infwidth as iw
        >>> x = iw.sample_inputs("sphere", 6, 8, seed=0)
        >>> df = gap_table(ResidualNet(), x, [0.05, 0.1], [2], kinds=("nngp",))
        >>> bool((df.ratio - 1).abs().max() < 0.05)
        True
    """
    if not isinstance(arch, ResidualNet):
        raise TypeError(f"arch must be a ResidualNet, got {type(arch).__name__}")
    alphas = [_check_alpha(a) for a in alphas]
    depths = [check_pos_int("depths", d) for d in depths]
    kinds = check_kinds(kinds, "kinds")
    x = check_inputs(x, "x")
    kinds = tuple(kinds)
    rows = []
    for depth in depths:
        for a in alphas:
            net = dataclasses.replace(arch, depth=depth, alpha=a)
            gaps = kernel_gap(net, x, kinds, method)
            for kind in kinds:
                gap = gaps[kind]
                pred = (predicted_gap(net, x) if kind == "nngp" and arch.branch == "dense"
                        else np.nan)
                rows.append({"alpha": a, "depth": depth, "kind": kind, "gap": gap,
                             "order": a ** 4 * depth ** 2, "predicted": pred,
                             "ratio": gap / pred if pred and np.isfinite(pred) else np.nan})
    return pd.DataFrame(rows)


def loglog_slope(x: Any, y: Any) -> float:
    """Least-squares slope of log y against log x."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"x and y must have the same length ≥ 2, got {x.shape}, {y.shape}")
    if np.any(x <= 0) or np.any(y <= 0) or not (np.all(np.isfinite(x))
                                                 and np.all(np.isfinite(y))):
        raise ValueError("loglog_slope needs positive finite values")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])
