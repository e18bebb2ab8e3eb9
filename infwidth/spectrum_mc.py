"""Sampling and brute-force routes to eigenvalues by type (any architecture).

- :func:`fwht_types`: all Walsh eigenvalues by one FWHT (dim ≤ 20, kernels of x ⊙ x'),
  averaged within each type; the spread within a type and the FWHT round-off
  (4·D·eps·max|g|) form the error.
- :func:`gram_types`: eigendecomposition of the Gram matrix K/N on all N = 2^D points of the
  cube (the empirical measure is then the input law, so this is the operator itself). Each
  eigenvector's energy is attributed to types through its Walsh coefficients (one FWHT per
  eigenvector); a type's eigenvalue is Σ_i λ_i·E_i(type)/multiplicity, its error the
  energy-weighted spread of the λ_i it collects plus round-off. Works for kernels that are not
  functions of x ⊙ x' (GAP readouts), where eigenvectors mix Walsh monomials within an orbit.
- :func:`monte_carlo_types`: λ̂ = Σ_{i≠j} ψ(x_i)K(x_i, x_j)ψ(x_j)/(n(n−1)) on n sampled
  points, averaged over several random eigenfunctions of the type; the diagonal is left out so
  that the estimate is unbiased (ψᵀKψ/n² is biased by E[ψ²K(x,x)]/n). The kernel minus its
  mean off-diagonal entry is used for non-constant types (variance reduction, unbiased since
  E[ψ] = 0). Mean and standard error over independent batches.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from .eigenfunctions import sample_domain
from .eigentypes import TypeSystem
from .hypercube import cube_points, fwht, walsh_eigenvalues

__all__ = ["fwht_types", "gram_types", "monte_carlo_types", "subset_keys", "MAX_GRAM_DIM"]

MAX_GRAM_DIM = 13
_EPS = np.finfo(np.float64).eps


def subset_keys(ts: TypeSystem, dim: int, max_degree: int) -> tuple[np.ndarray, list]:
    """Bitmask subsets S with |S| ≤ max_degree and the type key of each."""
    masks = np.arange(2 ** dim)
    pop = np.zeros(2 ** dim, dtype=np.int64)
    for c in range(dim):
        pop += (masks >> c) & 1
    masks = masks[pop <= max_degree]
    owner = np.empty(dim, dtype=np.int64)
    for i, coords in enumerate(ts.patch_index):
        owner[coords] = i
    keys = []
    p = ts.patch_index.shape[0]
    for m in masks:
        deg = [0] * p
        c, mm = 0, int(m)
        while mm:
            if mm & 1:
                deg[owner[c]] += 1
            mm >>= 1
            c += 1
        keys.append(ts.key(tuple(deg)))
    return masks, keys


def fwht_types(ts: TypeSystem, kind: str, max_degree: int, kernel_fn: Callable | None = None
               ) -> dict[Any, tuple[float, float, int]]:
    """{type: (eigenvalue, error, count of Walsh monomials)} by brute force."""
    dim = ts.dim
    lam, gabs = walsh_eigenvalues(ts.arch, dim, kind, kernel_fn)
    masks, keys = subset_keys(ts, dim, max_degree)
    groups: dict[Any, list[float]] = {}
    for m, k in zip(masks, keys):
        groups.setdefault(k, []).append(lam[m])
    out = {}
    roundoff = 4.0 * dim * _EPS * gabs
    for k, v in groups.items():
        v = np.asarray(v)
        out[k] = (float(v.mean()), float(np.max(np.abs(v - v.mean()))) + roundoff, len(v))
    return out


def gram_types(ts: TypeSystem, kind: str, max_degree: int, kernel_fn: Callable | None = None
               ) -> dict[Any, tuple[float, float, int]]:
    """{type: (eigenvalue, error, count of Walsh monomials)} from the full-cube Gram matrix."""
    dim = ts.dim
    if dim > MAX_GRAM_DIM:
        raise ValueError(f"the Gram route uses all 2^dim points of the cube and supports dim ≤ "
                         f"{MAX_GRAM_DIM}, got dim={dim}; use method='monte-carlo'")
    if kernel_fn is None:
        from .kernels import kernel as kernel_fn
    z = cube_points(dim)
    n = z.shape[0]
    gram = np.asarray(kernel_fn(ts.arch, z, kind=kind)) / n
    lam, vec = np.linalg.eigh(0.5 * (gram + gram.T))
    coef = fwht(vec) / np.sqrt(n)          # coef[S, i] = ⟨χ_S, v_i⟩ / √N, unit vectors
    energy = coef ** 2
    masks, keys = subset_keys(ts, dim, max_degree)
    groups: dict[Any, list[int]] = {}
    for m, k in zip(masks, keys):
        groups.setdefault(k, []).append(int(m))
    roundoff = 10.0 * n * _EPS * float(np.max(np.abs(lam)))
    out = {}
    for k, rows in groups.items():
        e = energy[rows].sum(axis=0)        # energy of each eigenvector in the type
        tot = float(e.sum())
        trace = float(e @ lam)
        mult = ts.multiplicity(k, "hypercube")
        mean = trace / tot if tot > 0 else 0.0
        spread = float(np.sqrt(max(e @ (lam - mean) ** 2, 0.0) / tot)) if tot > 0 else 0.0
        if ts.symmetrised:
            spread = 0.0  # the non-invariant combinations of an orbit are exact zeros
        out[k] = (trace / mult, spread + roundoff, len(rows))
    return out


def monte_carlo_types(ts: TypeSystem, keys: list, kind: str, domain: str,
                      kernel_fn: Callable | None = None, n_samples: int = 1000,
                      n_batches: int = 4, n_functions: int = 16, seed: int = 0,
                      progress: bool | None = None) -> dict[Any, tuple[float, float]]:
    """{type: (mean λ̂, standard error)} over ``n_batches`` independent batches of
    ``n_samples`` points, each with ``n_functions`` random eigenfunctions per type."""
    if kernel_fn is None:
        from .kernels import kernel as kernel_fn
    rng = np.random.default_rng(seed)
    est = {k: [] for k in keys}
    for _ in tqdm(range(n_batches), desc="monte-carlo batches", disable=progress is False,
                  leave=False):
        x = sample_domain(domain, n_samples, ts.patch_index, rng)
        kmat = np.asarray(kernel_fn(ts.arch, x, kind=kind), dtype=np.float64)
        np.fill_diagonal(kmat, 0.0)
        n = n_samples
        shift = kmat.sum() / (n * (n - 1))
        kc = kmat - shift
        np.fill_diagonal(kc, 0.0)
        for k in keys:
            if k == ():
                est[k].append(shift)
                continue
            nf = 1 if ts.symmetrised else n_functions
            psi = np.stack([ts.eigenfunction(k, domain, rng)(x) for _ in range(nf)], axis=1)
            est[k].append(float(np.einsum("ia,ij,ja->", psi, kc, psi)) / (nf * n * (n - 1)))
    out = {}
    for k, v in est.items():
        v = np.asarray(v)
        se = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("inf")
        out[k] = (float(v.mean()), se)
    return out
