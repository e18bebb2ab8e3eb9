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
- :func:`monte_carlo_types`: projection on sampled points, mean and standard error over
  independent batches of n points. With ``estimator="functions"``:
  λ̂ = Σ_{i≠j} ψ(x_i)K(x_i, x_j)ψ(x_j)/(n(n−1)), averaged over random eigenfunctions ψ of the
  type. With ``estimator="projector"`` (default where available) all eigenfunctions of the
  type at once: λ̂ = Σ_{i≠j} K(x_i, x_j)·Q(x_i, x_j)/(mult·n(n−1)), with
  Q(x, x') = Σ_{ψ in type} ψ(x)ψ(x') the type's reproducing kernel (error ∝ 1/√mult).
  On the hypercube a patch contributes the elementary symmetric polynomial e_j(x_i ⊙ x'_i), a
  Krawtchouk polynomial of the number of mismatches; on the sphere N(n0, j)·P_j(t) (addition
  theorem); placements are summed by a generating-function recursion over the tree, or over
  the shifts of a ConvNet orbit. The diagonal i = j is left out so that the estimate is
  unbiased (ψᵀKψ/n² is biased by E[ψ²K(x,x)]/n), and the kernel minus its mean off-diagonal
  entry is used for non-constant types (variance reduction; unbiased up to O(λ/n²)).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from infwidth.eigenspaces.eigenfunctions import sample_domain
from infwidth.eigenspaces.eigentypes import TypeSystem
from infwidth.eigenspaces.harmonics import reproducing_kernel
from infwidth.eigenspaces.hypercube import cube_points, fwht, walsh_eigenvalues
from infwidth.eigenspaces.tree_types import _level_children

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
        from infwidth.kernels.engine import kernel as kernel_fn
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


def _leaf_tables(ts: TypeSystem, domain: str, x: np.ndarray, jmax: int) -> np.ndarray:
    """e[j, patch, i, k] = Q of one patch at degree j for the pair (x_i, x_k)."""
    pi = ts.patch_index
    n0 = pi.shape[1]
    xp = x[:, pi]                                           # (n, p, n0)
    dots = np.einsum("ipk,jpk->pij", xp, xp)                # (p, n, n)
    out = np.empty((jmax + 1,) + dots.shape)
    if domain == "hypercube":
        m = np.rint((n0 - dots) / 2).astype(np.int64)       # mismatches
        for j in range(jmax + 1):
            kraw = np.array([sum((-1) ** a * math.comb(mm, a) * math.comb(n0 - mm, j - a)
                                 for a in range(j + 1)) for mm in range(n0 + 1)], float)
            out[j] = kraw[m]
    else:
        t = np.clip(dots / n0, -1.0, 1.0)
        for j in range(jmax + 1):
            out[j] = reproducing_kernel(j, n0, t)
    return out


def _tree_projectors(ts: TypeSystem, keys: list, leaf: np.ndarray) -> dict:
    """Q arrays (n, n) of the tree types ``keys`` by the placement recursion."""
    spec = ts.spec
    H = spec.n_levels
    memo: dict = {}

    def q(level: int, node: int, pat: Any) -> np.ndarray:
        k = (level, node, pat)
        if k in memo:
            return memo[k]
        if level == 0:
            out = leaf[pat, node]
        else:
            out = _place(level, node, pat)
        memo[k] = out
        return out

    def _place(level: int, node: int, pat: tuple) -> np.ndarray:
        kids = _level_children(spec, level, node)
        distinct = sorted(set(pat))
        need = tuple(pat.count(c) for c in distinct)
        poly = {tuple(0 for _ in distinct): None}             # None stands for 1
        for u in kids:
            new = dict(poly)
            for state, val in poly.items():
                for ci, c in enumerate(distinct):
                    if state[ci] < need[ci]:
                        st = state[:ci] + (state[ci] + 1,) + state[ci + 1:]
                        term = q(level - 1, u, c) if val is None else val * q(level - 1, u, c)
                        new[st] = term if new.get(st) is None else new[st] + term
            poly = new
        return poly[need]

    out = {}
    for key in keys:
        if key == ():
            continue
        out[key] = _place(H, 0, key)
    return out


def _conv_projectors(ts: TypeSystem, keys: list, leaf: np.ndarray) -> dict:
    """Q arrays of ConvNet types: a sum over the distinct shifts of the orbit."""
    out = {}
    for key in keys:
        if key == ():
            continue
        members = {ts._canon_raw(sh, key) for sh in ts._shift_list}
        tot = 0.0
        for m in members:
            term = 1.0
            for pos, d in m:
                term = term * leaf[d, pos]
            tot = tot + term
        out[key] = tot
    return out


def monte_carlo_types(ts: TypeSystem, keys: list, kind: str, domain: str,
                      kernel_fn: Callable | None = None, n_samples: int = 1000,
                      n_batches: int = 4, n_functions: int = 16, seed: int = 0,
                      progress: bool | None = None, estimator: str | None = None
                      ) -> dict[Any, tuple[float, float]]:
    """{type: (mean λ̂, standard error)} over ``n_batches`` independent batches of
    ``n_samples`` points; ``estimator`` "projector" (default, not for GAP readouts) or
    "functions" (``n_functions`` random eigenfunctions per type)."""
    if estimator is None:
        estimator = "functions" if ts.symmetrised else "projector"
    if estimator not in ("projector", "functions"):
        raise ValueError(f"estimator must be 'projector' or 'functions', got {estimator!r}")
    if estimator == "projector" and ts.symmetrised:
        raise ValueError("the projector estimator needs a kernel of x ⊙ x' (or of the patch "
                         "correlations); GAP readouts use estimator='functions'")
    if kernel_fn is None:
        from infwidth.kernels.engine import kernel as kernel_fn
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
        if estimator == "projector":
            jmax = max([ts.frequency(k) for k in keys] + [0])
            leaf = _leaf_tables(ts, domain, x, jmax)
            proj = _tree_projectors(ts, keys, leaf) if ts.is_tree else \
                _conv_projectors(ts, keys, leaf)
            for k in keys:
                if k == ():
                    est[k].append(shift)
                    continue
                qk = np.asarray(proj[k], dtype=np.float64)
                est[k].append(float(np.sum(kc * qk)) / (ts.multiplicity(k, domain)
                                                         * n * (n - 1)))
            continue
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
