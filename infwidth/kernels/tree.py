"""Tree kernels: the layer recursion of docs/theory.md §2 for MLP, S-CNN and D-CNN (1-D, 2-D).

- :func:`tree_kernels`: the fast path. NNGP *and* NTK in one jitted float64 pass (3–6× faster
  than the two :func:`~infwidth.kernels.kernel` calls on 2-D D-CNNs, 2 CPU cores): per-leaf
  Gram matrices, then the recursion on the (positions, n1, n2) diagonal, pooling by reshapes.
- :func:`tree_kernel`: the reference. The same recursion in plain numpy, one kind at a time,
  pooling by the DAG's receptive fields; it also covers Flatten ConvNets. It is the
  independent oracle that neural-tangents and :func:`tree_kernels` are tested against.
- :func:`kernel_pair`: (NNGP, NTK) of any architecture: :func:`tree_kernels` for trees,
  :func:`~infwidth.kernels.kernel` (neural-tangents) otherwise.

Both read the leaves from ``arch.leaf_coordinates(dim)`` and evaluate (K, K̇) with
:func:`infwidth.architectures.activations.gaussian_dual`.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from infwidth.architectures.activations import gaussian_dual
from infwidth.architectures.networks import DCNN, MLP, Architecture, ConvNet
from infwidth.data.inputs import check_inputs
from infwidth.kernels.engine import KINDS, kernel

__all__ = ["tree_kernels", "tree_kernel", "kernel_pair"]


def _check_pair(x1: Any, x2: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    x1 = check_inputs(x1, "x1")
    symmetric = x2 is None
    x2 = x1 if symmetric else check_inputs(x2, "x2", x1.shape[1])
    return x1, x2, symmetric


# --------------------------------------------------------------------------------------
# Fast path: both kernels in one jitted pass
# --------------------------------------------------------------------------------------
def _tree_plan(arch: Architecture, dim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(leaf-grid shape, pooling factor of every tree level above the leaves)."""
    plan = arch.tree_plan(dim)
    if plan is None:
        raise TypeError(f"tree_kernels needs a tree architecture (MLP, SCNN, DCNN), got "
                        f"{type(arch).__name__}, a general DAG")
    return plan


def _pool(a: jax.Array, grid: tuple[int, ...], k: int) -> tuple[jax.Array, tuple[int, ...]]:
    """Mean over the non-overlapping k (or k×k) blocks of the leading, row-major position
    axis: the receptive fields of the next tree level."""
    rest = a.shape[1:]
    if len(grid) == 1:
        return a.reshape((grid[0] // k, k) + rest).mean(1), (grid[0] // k,)
    s = grid[0] // k
    a = a.reshape((s, k, s, k) + rest).mean((1, 3))
    return a.reshape((s * s,) + rest), (s, s)


@partial(jax.jit, static_argnames=("act", "grid", "pools", "w2", "b2", "same"))
def _tree_block(p1: jax.Array, p2: jax.Array, *, act: str, grid: tuple[int, ...],
                pools: tuple[int, ...], w2: float, b2: float, same: bool
                ) -> tuple[jax.Array, jax.Array]:
    """Leaves p1 (P, a, n0), p2 (P, c, n0) → (NNGP, NTK) blocks (a, c): Σ ← W²·pool(K) + b²,
    Θ ← Σ + W²·pool(K̇·Θ), leaves Σ = Θ = ⟨x_i, x'_i⟩/n0 + b² (docs/theory.md §2).

    ``same``: p1 is p2. Σ(x_i, x_i) is then set to the variance itself at every level, so a
    point's correlation with itself is exactly 1 and relu's K̇ exact there (the two sums
    differ by an ulp, which would cost √ε in K̇)."""
    n0 = p1.shape[-1]
    s12 = jnp.einsum("pak,pck->pac", p1, p2) / n0 + b2
    s11 = jnp.sum(p1 * p1, -1) / n0 + b2  # (P, a)
    s22 = s11 if same else jnp.sum(p2 * p2, -1) / n0 + b2
    diag = jnp.arange(p1.shape[1])
    theta = s12
    for k in pools + (None,):
        if same:
            s12 = s12.at[:, diag, diag].set(s11)
        kk, kd = gaussian_dual(act, s11[:, :, None], s22[:, None, :], s12, xp=jnp)
        td = theta * kd
        if k is None:  # Flatten + Dense readout: mean over the top positions
            s12 = w2 * kk.mean(0) + b2
            return s12, s12 + w2 * td.mean(0)
        d1 = gaussian_dual(act, s11, s11, s11, xp=jnp)[0]
        s11 = w2 * _pool(d1, grid, k)[0] + b2
        if same:
            s22 = s11
        else:
            d2 = gaussian_dual(act, s22, s22, s22, xp=jnp)[0]
            s22 = w2 * _pool(d2, grid, k)[0] + b2
        kk, g = _pool(kk, grid, k)
        td, _ = _pool(td, grid, k)
        grid = g
        s12 = w2 * kk + b2
        theta = s12 + w2 * td


def _blocked(fn, x1: np.ndarray, x2: np.ndarray, block: int, symmetric: bool
             ) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of rows of x1 (P, n1, n0) against x2 (P, n2, n0), ``fn(a, b, same)``; with
    ``symmetric`` only the blocks on and above the diagonal (``same`` on it), mirrored."""
    n1, n2 = x1.shape[1], x2.shape[1]
    nngp, ntk = np.empty((n1, n2)), np.empty((n1, n2))
    b = min(block, max(n1, n2))  # one block shape for every call: one compilation

    def pad(a):
        return a if a.shape[1] == b else np.concatenate(
            [a, np.repeat(a[:, -1:], b - a.shape[1], 1)], 1)

    for i in range(0, n1, b):
        for j in range(0, n2, b):
            if symmetric and j + b <= i:
                continue
            r, c = slice(i, min(i + b, n1)), slice(j, min(j + b, n2))
            k, t = fn(pad(x1[:, r]), pad(x2[:, c]), symmetric and i == j)
            nngp[r, c] = np.asarray(k)[: r.stop - r.start, : c.stop - c.start]
            ntk[r, c] = np.asarray(t)[: r.stop - r.start, : c.stop - c.start]
    if symmetric:
        iu = np.triu_indices(n1, 1)
        nngp[(iu[1], iu[0])] = nngp[iu]
        ntk[(iu[1], iu[0])] = ntk[iu]
    return nngp, ntk


def tree_kernels(arch: Architecture, x1: Any, x2: Any = None, block: int = 256
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(NNGP, NTK) Gram matrices of an MLP, S-CNN or D-CNN (1-D or 2-D), float64, in one
    jitted pass over blocks of ``block`` rows (see the module doc). With ``x2=None`` only
    blocks on and above the diagonal are computed and the matrices are symmetrised.

    Example:
        >>> import infwidth as iw
        >>> x = iw.sample_inputs("hypercube", n=4, dim=16, patch_dim=2, seed=0)
        >>> nngp, ntk = tree_kernels(iw.DCNN(patch_dim=2, filter_sizes=(2, 2)), x)
        >>> nngp.shape, ntk.shape
        ((4, 4), (4, 4))
    """
    x1, x2, sym = _check_pair(x1, x2)
    dim = x1.shape[1]
    grid, pools = _tree_plan(arch, dim)
    leaves = arch.leaf_coordinates(dim)  # (P, n0), row-major leaf order
    if leaves.shape[0] != math.prod(grid):
        raise ValueError(f"{type(arch).__name__}: {leaves.shape[0]} leaves do not fill the "
                         f"grid {grid}")
    fn = partial(_tree_block, act=arch.activation, grid=grid, pools=pools,
                 w2=float(arch.w ** 2), b2=float(arch.b_std ** 2))
    block = max(8, min(block, int(math.sqrt(2e8 / leaves.shape[0]))))

    def by_leaf(x):  # (P, n, n0): leaves leading, so per-leaf Grams are one batched matmul
        return np.ascontiguousarray(np.moveaxis(x[:, leaves], 1, 0))

    p1 = by_leaf(x1)
    return _blocked(lambda a, b, same: fn(jnp.asarray(a), jnp.asarray(b), same=same), p1,
                    p1 if sym else by_leaf(x2), block, sym)


def kernel_pair(arch: Architecture, x1: Any, x2: Any = None,
                memory_budget: str | int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(NNGP, NTK): :func:`tree_kernels` for trees (MLP, S-CNN, D-CNN), two
    :func:`~infwidth.kernels.kernel` calls (neural-tangents) otherwise.

    ``memory_budget`` goes to ``kernel`` (trees ignore it). For GAP ConvNets neural-tangents'
    own convolution of the (P, P) covariance is as fast as anything simple on CPU (a jitted
    circular-roll version measured 0.4–1.2× its speed), so it is used directly.
    """
    if arch.tree_plan(np.shape(x1)[-1]) is not None:
        return tree_kernels(arch, x1, x2)
    kw = {} if memory_budget is None else {"memory_budget": memory_budget}
    return (kernel(arch, x1, x2, kind="nngp", **kw), kernel(arch, x1, x2, kind="ntk", **kw))


# --------------------------------------------------------------------------------------
# Reference recursion (independent of neural-tangents and of the fast path)
# --------------------------------------------------------------------------------------
def _pool_matrix(children: tuple[tuple[int, ...], ...], n_below: int,
                 divisor: int | None = None) -> np.ndarray:
    a = np.zeros((len(children), n_below))
    for j, c in enumerate(children):
        a[j, list(c)] = 1.0 / (divisor or len(c))
    return a


def tree_kernel(arch: Architecture, x1: Any, x2: Any = None, kind: str = "ntk") -> np.ndarray:
    """The reference: the layer recursion of docs/theory.md §2 in numpy, for MLP, SCNN, DCNN
    and Flatten ConvNets (no pooling, so only the spatial diagonal is needed):

        Σ_v = W²·mean_{u ∈ C(v)} K_u + b²,   K_v = E[φ(u)φ(v)] under Σ_v,
        Θ_v = Σ_v + W²·mean_{u ∈ C(v)} E[φ'φ'](Σ_u)·Θ_u,

    leaves Σ = ⟨x_i, x'_i⟩/n0 (first-layer W = 1), readout = mean over the top positions,
    receptive fields C(v) from ``arch.dag_for(dim)``. Slow, and kept simple on purpose: it is
    the oracle for neural-tangents and :func:`tree_kernels`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(arch, (MLP, DCNN, ConvNet)):
        raise TypeError(f"tree_kernel needs an MLP, SCNN, DCNN or Flatten ConvNet, "
                        f"got {type(arch).__name__}")
    if isinstance(arch, ConvNet) and arch.readout != "flatten":
        raise ValueError("tree_kernel handles Flatten readouts only (GAP needs the full "
                         "spatial covariance); use kernel()")
    x1 = check_inputs(x1, "x1")
    dim = x1.shape[1]
    x2 = x1 if x2 is None else check_inputs(x2, "x2", dim)
    w2, b2 = arch.w ** 2, arch.b_std ** 2
    dag = arch.dag_for(dim)
    leaves = arch.leaf_coordinates(dim)  # (positions, coordinates)

    p1, p2 = x1[:, leaves], x2[:, leaves]
    n0 = p1.shape[-1]
    s12 = np.einsum("apk,cpk->acp", p1, p2) / n0
    s11 = np.einsum("apk,apk->ap", p1, p1) / n0
    s22 = np.einsum("apk,apk->ap", p2, p2) / n0

    pools = [_pool_matrix(ch, dag.layer_sizes[i]) for i, ch in enumerate(dag.children)]
    first_pool = None
    if isinstance(arch, ConvNet):
        div = arch.filter_size ** arch.ndim if arch.padding == "same" else None
        conv = _pool_matrix(dag.children[0], dag.layer_sizes[0], div)
        pools = [conv] * arch.depth + [pools[-1]]
        first_pool = pools.pop(0)
    elif isinstance(arch, MLP):
        pools = [np.ones((1, 1))] * arch.depth

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
