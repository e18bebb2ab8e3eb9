"""Tree kernels: the layer recursion of docs/theory.md §2 for MLP, S-CNN and D-CNN (1-D, 2-D).

- :func:`tree_kernel`: the reference. The recursion in plain numpy, one kind at a time,
  pooling by the DAG's receptive fields; it also covers Flatten ConvNets. It is the
  independent oracle that the native engine and neural-tangents are tested against.
- :func:`kernel_pair`: (NNGP, NTK) of any architecture from one
  :func:`~infwidth.kernels.kernel` call (the native engine computes both in one pass; the
  jitted tree kernel and the hypercube tables it replaced were 2–10× slower, measured on
  2 CPU cores at n = 2000–3000).

It reads the leaves from ``arch.leaf_coordinates(dim)`` and evaluate (K, K̇) with
:func:`infwidth.architectures.activations.gaussian_dual`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from infwidth.architectures.activations import gaussian_dual
from infwidth.architectures.layers import Activation, Conv, Dense, Flatten
from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import check_inputs
from infwidth.kernels.engine import kernel
from infwidth.validation import check_architecture, check_kind

__all__ = ["tree_kernel", "kernel_pair"]


def kernel_pair(arch: Architecture, x1: Any, x2: Any = None,
                memory_budget: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(NNGP, NTK) of ``arch`` from one :func:`~infwidth.kernels.kernel` call with both kinds
    (one pass of the native engine; ``memory_budget`` goes to it).

    Example:
        >>> import infwidth as iw
        >>> x = iw.sample_inputs("sphere", 4, 16, seed=0)
        >>> nngp, ntk = kernel_pair(iw.DCNN(patch_dim=2, filter_sizes=(2, 2)), x)
        >>> nngp.shape, bool((ntk >= nngp).all())
        ((4, 4), True)
    """
    kw = {} if memory_budget is None else {"memory_budget": memory_budget}
    both = kernel(arch, x1, x2, kind=("nngp", "ntk"), **kw)
    return both["nngp"], both["ntk"]


# --------------------------------------------------------------------------------------
# Reference recursion (independent of neural-tangents and of the fast path)
# --------------------------------------------------------------------------------------
def _pool_matrix(children: tuple[tuple[int, ...], ...], n_below: int,
                 divisor: int | None = None) -> np.ndarray:
    a = np.zeros((len(children), n_below))
    for j, c in enumerate(children):
        a[j, list(c)] = 1.0 / (divisor or len(c))
    return a


def _pools(arch: Architecture, dim: int, dag) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The averaging matrix of every linear layer after the first (and of the first, when it
    is a DAG layer): a conv's receptive fields (divided by its taps for SAME padding, whose
    zero taps count), the readout's positions, 1×1 for the hidden layers of an MLP. Refuses
    stacks outside the recursion: pooling, GAP, residual blocks, mixed activations or
    weight/bias stds, Dense layers between Flatten and the readout."""
    layers = arch.kernel_layers(dim)
    lin = [ly for ly in layers if isinstance(ly, (Conv, Dense))]
    acts = [ly for ly in layers if isinstance(ly, Activation)]
    alternate = [x for pair in zip(lin[:-1], acts) for x in pair]
    body = list(layers[:-1])
    if body and isinstance(body[-1], Flatten):
        body.pop()
    if (body != alternate or len(lin) != len(acts) + 1 or len({a.spec for a in acts}) != 1
            or lin[0].W_std != 1.0 or len({ly.W_std for ly in lin[1:]}) > 1
            or len({ly.b_std for ly in lin}) > 1):
        raise ValueError("tree_kernel handles Flatten readouts only, after Conv/Dense → φ "
                         "layers with one activation, weight std and bias std (pooling, GAP "
                         "and residual blocks need the full spatial covariance); use kernel()")
    n_dag = dag.depth - 1  # DAG layers below the root
    dag_convs = [ly for ly in lin[:-1] if isinstance(ly, Conv)]
    absorbed = len(dag_convs) - n_dag  # 1 when the first conv forms the leaves
    mats = []
    for ell, ch in enumerate(dag.children):
        ly = dag_convs[ell + absorbed] if ell < n_dag else None
        div = math.prod(ly.filter) if ly is not None and ly.padding == "same" else None
        mats.append(_pool_matrix(ch, dag.layer_sizes[ell], div))
    first_pool = mats.pop(0) if isinstance(lin[0], Conv) and not absorbed else None
    pools = mats + [np.ones((1, 1))] * (len(acts) - len(mats))
    return pools, first_pool


def tree_kernel(arch: Architecture, x1: Any, x2: Any = None, kind: str = "ntk") -> np.ndarray:
    """The reference: the layer recursion of docs/theory.md §2 in numpy, for MLP, SCNN, DCNN
    and Flatten ConvNets (no pooling, so only the spatial diagonal is needed):

        Σ_v = W²·mean_{u ∈ C(v)} K_u + b²,   K_v = E[φ(u)φ(v)] under Σ_v,
        Θ_v = Σ_v + W²·mean_{u ∈ C(v)} E[φ'φ'](Σ_u)·Θ_u,

    leaves Σ = ⟨x_i, x'_i⟩/n0 (first-layer W = 1), readout = mean over the top positions,
    receptive fields C(v) from ``arch.dag_for(dim)``. Slow, and kept simple on purpose: it is
    the oracle for neural-tangents and the native engine.
    """
    check_kind(kind)
    check_architecture(arch)
    x1 = check_inputs(x1, "x1")
    dim = x1.shape[1]
    x2 = x1 if x2 is None else check_inputs(x2, "x2", dim)
    dag = arch.dag_for(dim)
    pools, first_pool = _pools(arch, dim, dag)
    w2, b2 = arch.w ** 2, arch.b_std ** 2
    leaves = arch.leaf_coordinates(dim)  # (positions, coordinates)

    p1, p2 = x1[:, leaves], x2[:, leaves]
    n0 = p1.shape[-1]
    s12 = np.einsum("apk,cpk->acp", p1, p2) / n0
    s11 = np.einsum("apk,apk->ap", p1, p1) / n0
    s22 = np.einsum("apk,apk->ap", p2, p2) / n0

    if first_pool is not None:
        s12, s11, s22 = s12 @ first_pool.T, s11 @ first_pool.T, s22 @ first_pool.T
    s12, s11, s22 = s12 + b2, s11 + b2, s22 + b2
    theta = s12.copy()
    for pool in pools:
        k12, kd12 = gaussian_dual(arch.activation, s11[:, None, :], s22[None, :, :], s12)
        k11, _ = gaussian_dual(arch.activation, s11, s11, s11)
        k22, _ = gaussian_dual(arch.activation, s22, s22, s22)
        s12 = w2 * (k12 @ pool.T) + b2
        s11 = w2 * (k11 @ pool.T) + b2
        s22 = w2 * (k22 @ pool.T) + b2
        theta = s12 + w2 * ((kd12 * theta) @ pool.T)
    out = s12 if kind == "nngp" else theta
    return out[..., 0]
