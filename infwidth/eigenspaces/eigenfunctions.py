"""Concrete eigenfunctions of an eigenspace type, and inputs drawn from the matching domain.

A degree profile k = (k_1, …, k_p) (one entry per patch/leaf of ``arch.dag_for(dim)``, in the
order of :func:`~infwidth.architectures.networks.Architecture.leaf_coordinates`) maps to an
eigenfunction as follows:

- hypercube: a Walsh monomial χ_S(x) = Π_{c∈S} x_c, with S drawn uniformly among the sets that
  hold k_i coordinates of patch i (so |S| = |k|);
- sphere product: Π_i √N(n0, k_i)·P_{k_i}(⟨x_i, v_i⟩/√n0), a product of zonal harmonics around
  uniform random unit vectors v_i (x_i the patch's coordinates, on the sphere of radius √n0;
  :func:`~infwidth.eigenspaces.harmonics.zonal_harmonic`, ``docs/theory.md`` §3).

Both are normalised, E[ψ(x)²] = 1 under the input law, and orthogonal to every other type.
For architectures whose kernel is translation invariant in x alone (a GAP readout), the
eigenfunction of a Walsh orbit O is the symmetrised (1/√|O|)·Σ_{S∈O} χ_S; ``terms`` holds its
monomials.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infwidth.eigenspaces.harmonics import zonal_harmonic

__all__ = ["Eigenfunction", "sample_eigenfunction", "sample_domain"]


@dataclass(frozen=True)
class Eigenfunction:
    """A normalised eigenfunction; call it on a flat (n, dim) input batch.

    hypercube: ``terms`` = ((coefficient, coordinates), …), ψ = Σ coefficient·Π x[:, coordinates].
    sphere: ``factors`` = ((patch coordinates, unit vector v, degree), …), ψ = Π zonal harmonics.
    """

    domain: str
    dim: int
    degrees: tuple[int, ...]
    terms: tuple[tuple[float, tuple[int, ...]], ...] = ()
    factors: tuple[tuple[tuple[int, ...], tuple[float, ...], int], ...] = ()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (n, {self.dim}), got {x.shape}")
        if self.domain == "hypercube":
            out = np.zeros(x.shape[0])
            for coef, coords in self.terms:
                out += coef * (np.prod(x[:, list(coords)], axis=1) if coords else 1.0)
            return out
        out = np.ones(x.shape[0])
        for coords, v, k in self.factors:
            out *= zonal_harmonic(x[:, list(coords)], np.asarray(v), k)
        return out


def sample_eigenfunction(patch_index: np.ndarray, degrees: tuple[int, ...], domain: str,
                         rng: np.random.Generator | int | None = None) -> Eigenfunction:
    """A random normalised eigenfunction with the degree profile ``degrees`` (one entry per
    row of ``patch_index``, the (p, n0) array of coordinates per patch)."""
    rng = np.random.default_rng(rng)
    dim = int(patch_index.size)
    degrees = tuple(int(k) for k in degrees)
    if len(degrees) != patch_index.shape[0]:
        raise ValueError(f"degrees has {len(degrees)} entries, expected one per patch "
                         f"({patch_index.shape[0]})")
    if domain == "hypercube":
        coords: list[int] = []
        for i, k in enumerate(degrees):
            if k > patch_index.shape[1]:
                raise ValueError(f"degree {k} at patch {i} exceeds the patch's "
                                 f"{patch_index.shape[1]} coordinates (hypercube)")
            if k:
                coords.extend(int(c) for c in rng.choice(patch_index[i], size=k, replace=False))
        return Eigenfunction(domain, dim, degrees, terms=((1.0, tuple(sorted(coords))),))
    if domain != "sphere":
        raise ValueError(f"domain must be 'hypercube' or 'sphere', got {domain!r}")
    factors = []
    for i, k in enumerate(degrees):
        if k:
            v = rng.standard_normal(patch_index.shape[1])
            v /= np.linalg.norm(v)
            factors.append((tuple(int(c) for c in patch_index[i]), tuple(float(a) for a in v),
                            k))
    return Eigenfunction(domain, dim, degrees, factors=tuple(factors))


def sample_domain(domain: str, n: int, patch_index: np.ndarray,
                  rng: np.random.Generator | int | None = None) -> np.ndarray:
    """n inputs, float64 (n, dim): uniform on {±1}^dim, or each patch (row of
    ``patch_index``) uniform on the sphere of radius √n0."""
    rng = np.random.default_rng(rng)
    dim = int(patch_index.size)
    if domain == "hypercube":
        return rng.choice(np.array([-1.0, 1.0]), size=(n, dim))
    n0 = patch_index.shape[1]
    g = rng.standard_normal((n, patch_index.shape[0], n0))
    g *= np.sqrt(n0) / np.linalg.norm(g, axis=-1, keepdims=True)
    x = np.empty((n, dim))
    x[:, patch_index.ravel()] = g.reshape(n, -1)
    return x
