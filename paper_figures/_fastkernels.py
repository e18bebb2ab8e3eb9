"""Fast NNGP + NTK Gram matrices for the real-data figure (figure 7).

neural-tangents (``iw.kernel``) is the reference engine, but one kind per call and, for
trees, at ~10⁴ pairs/s on a Fashion-MNIST D-CNN. :func:`tree_kernels` (MLP, S-CNN, D-CNN,
1-D or 2-D) computes *both* kernels in one jitted float64 pass, 1.5–5× faster per CPU second:
per-patch Gram matrices, then the recursion of ``theory.md`` §2 on the (n1, n2, positions)
diagonal, Σ ← W²·pool(K) + b², Θ ← Σ + W²·pool(Θ·K̇), with (K, K̇) the Gaussian duals.
It is checked against ``iw.kernel`` to round-off in ``tests/test_paper_figures.py``.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

import infwidth as iw
from infwidth.architectures.activations import gaussian_dual
from infwidth.data.inputs import check_inputs

__all__ = ["tree_kernels", "kernels"]


def _tree_plan(arch: iw.Architecture, dim: int) -> tuple[tuple[int, ...], list[int]]:
    """(patch-grid shape, pooling factor of every tree level above the patches)."""
    if isinstance(arch, iw.MLP):
        return (1,), [1] * (arch.depth - 1)
    if not isinstance(arch, iw.DCNN):
        raise TypeError(f"tree_kernels needs an MLP, SCNN or DCNN, got {type(arch).__name__}")
    side = arch.input_shape(dim)[0] // arch.patch_dim
    return (side,) * arch.ndim, list(arch.filter_sizes)


def _patches(arch, x: np.ndarray, dim: int) -> np.ndarray:
    """(positions, n, n0), positions in the DAG's row-major order (leading, so that the
    per-patch Gram matrices are one batched matmul)."""
    if isinstance(arch, iw.MLP):
        return x[None]
    shape = arch.input_shape(dim)
    p, n = arch.patch_dim, x.shape[0]
    r = x.reshape((n,) + shape)
    if arch.ndim == 1:
        return r.reshape(n, shape[0] // p, p * shape[-1]).transpose(1, 0, 2)
    s = shape[0] // p
    r = r.reshape(n, s, p, s, p, shape[-1]).transpose(1, 3, 0, 2, 4, 5)
    return r.reshape(s * s, n, p * p * shape[-1])


def _pool(a, grid: tuple[int, ...], k: int):
    """Mean over non-overlapping k (or k×k) blocks of the leading position axis."""
    rest = a.shape[1:]
    if len(grid) == 1:
        return a.reshape((grid[0] // k, k) + rest).mean(1), (grid[0] // k,)
    s = grid[0] // k
    a = a.reshape((s, k, s, k) + rest).mean((1, 3))
    return a.reshape((s * s,) + rest), (s, s)


@partial(jax.jit, static_argnames=("act", "grid", "pools", "w2", "b2"))
def _tree_block(p1, p2, *, act, grid, pools, w2, b2):
    """p1 (P, a, n0), p2 (P, c, n0) → (NNGP, NTK) blocks (a, c)."""
    n0 = p1.shape[-1]
    s12 = jnp.einsum("pak,pck->pac", p1, p2) / n0 + b2
    s11 = jnp.sum(p1 * p1, -1) / n0 + b2  # (P, a)
    s22 = jnp.sum(p2 * p2, -1) / n0 + b2
    theta = s12
    for k in pools + (None,):
        kk, kd = gaussian_dual(act, s11[:, :, None], s12, s22[:, None, :], xp=jnp)
        d1 = gaussian_dual(act, s11, s11, s11, xp=jnp)[0]
        d2 = gaussian_dual(act, s22, s22, s22, xp=jnp)[0]
        td = theta * kd
        if k is None:  # Flatten + Dense readout: mean over the top positions
            s12 = w2 * kk.mean(0) + b2
            return s12, s12 + w2 * td.mean(0)
        kk, g = _pool(kk, grid, k)
        td, _ = _pool(td, grid, k)
        d1, _ = _pool(d1, grid, k)
        d2, _ = _pool(d2, grid, k)
        grid = g
        s12, s11, s22 = w2 * kk + b2, w2 * d1 + b2, w2 * d2 + b2
        theta = s12 + w2 * td


def _blocked(fn, x1, x2, block: int, symmetric: bool):
    """Blocks of rows of x1 (P, n1, n0) against x2 (P, n2, n0); with ``symmetric`` only the
    blocks on and above the diagonal, mirrored."""
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
            k, t = fn(pad(x1[:, r]), pad(x2[:, c]))
            nngp[r, c] = np.asarray(k)[: r.stop - r.start, : c.stop - c.start]
            ntk[r, c] = np.asarray(t)[: r.stop - r.start, : c.stop - c.start]
    if symmetric:
        iu = np.triu_indices(n1, 1)
        nngp[(iu[1], iu[0])] = nngp[iu]
        ntk[(iu[1], iu[0])] = ntk[iu]
    return nngp, ntk


def _check_pair(x1, x2):
    x1 = check_inputs(x1, "x1")
    symmetric = x2 is None
    x2 = x1 if symmetric else check_inputs(x2, "x2", x1.shape[1])
    return x1, x2, symmetric


def tree_kernels(arch: iw.Architecture, x1, x2=None, block: int = 256
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(NNGP, NTK) Gram matrices of an MLP, S-CNN or D-CNN, float64 (see module doc)."""
    x1, x2, sym = _check_pair(x1, x2)
    dim = x1.shape[1]
    grid, pools = _tree_plan(arch, dim)
    fn = partial(_tree_block, act=arch.activation, grid=grid, pools=tuple(pools),
                 w2=float(arch.w ** 2), b2=float(arch.b_std ** 2))
    positions = math.prod(grid)
    block = max(8, min(block, int(math.sqrt(2e8 / positions))))
    return _blocked(lambda a, b: fn(jnp.asarray(a), jnp.asarray(b)),
                    _patches(arch, x1, dim), _patches(arch, x2, dim), block, sym)


def kernels(arch: iw.Architecture, x1, x2=None, memory_budget: str | int | None = None
            ) -> tuple[np.ndarray, np.ndarray]:
    """(NNGP, NTK): :func:`tree_kernels` for trees, ``iw.kernel`` (neural-tangents) otherwise.

    For GAP ConvNets neural-tangents' own convolution of the (P, P) covariance is as fast as
    anything simple on CPU (a jitted circular-roll version measured 0.4–1.2× its speed), so
    it is used directly (``memory_budget`` goes to ``iw.kernel``).
    """
    if isinstance(arch, (iw.MLP, iw.DCNN)):
        return tree_kernels(arch, x1, x2)
    kw = {} if memory_budget is None else {"memory_budget": memory_budget}
    return (iw.kernel(arch, x1, x2, kind="nngp", **kw),
            iw.kernel(arch, x1, x2, kind="ntk", **kw))
