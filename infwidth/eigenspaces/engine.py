"""Eigenspaces of NNGP/NTK kernels by type: :func:`spectrum` and :class:`Spectrum`.

``iw.spectrum(arch, dim, domain, kind, max_degree, method)`` returns one row per eigenspace
type (``docs/theory.md`` §3) with its per-eigenfunction eigenvalue, exact multiplicity, frequency,
space and learning index. Methods:

- "exact" (trees: MLP, S-CNN, D-CNN; both domains): the type-level recursion of
  :mod:`infwidth.eigenspaces.tree_recursion`, at any dim. Its ``error_bound`` column is an
  *estimate*: round-off of the signed sums, the last Taylor terms kept, the mass of atoms too
  close to a singularity to expand, and (when grids, moments or quadrature were used) the
  difference with a run at half the resolution.
- "fwht" (dim ≤ 20, kernels of x ⊙ x' only, hypercube): brute force by one fast
  Walsh–Hadamard transform of K(z, 1).
- "gram" (dim ≤ 13, hypercube): eigendecomposition of the Gram matrix on the whole cube.
- "monte-carlo" (any architecture and domain): projections on sampled eigenfunctions.

Mapping a type to a concrete eigenfunction: ``degrees`` is the canonical degree profile (one
entry per patch of ``arch.dag_for(dim)``, patches ordered as in
:func:`infwidth.architectures.networks.Architecture.leaf_coordinates`);
:meth:`Spectrum.eigenfunction` draws a normalised eigenfunction of a row's type (a Walsh
monomial or a product of zonal harmonics, see :mod:`infwidth.eigenspaces.eigenfunctions`), at
a random place of the orbit by default.

The round-off rule (``docs/theory.md`` §3): :func:`roundoff_zeroed` sets every |λ| ≤
2·error_bound to exactly 0 and refuses (or reports) λ < −2·error_bound; both
:meth:`Spectrum.roundoff_zeroed` and the learning-curve predictor use it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import DOMAINS
from infwidth.eigenspaces.eigenfunctions import Eigenfunction, sample_eigenfunction
from infwidth.eigenspaces.eigentypes import MAX_TYPES, TypeSystem, type_system
from infwidth.eigenspaces.hypercube import MAX_FWHT_DIM, hypercube_leaf
from infwidth.eigenspaces.monte_carlo import MAX_GRAM_DIM, fwht_types, gram_types, monte_carlo_types
from infwidth.eigenspaces.sphere import sphere_leaf
from infwidth.eigenspaces.steiner import degree_profile, learning_index, learning_index_from_space
from infwidth.eigenspaces.tree_recursion import RecursionOptions, tree_eigenvalues
from infwidth.eigenspaces.tree_types import enumerate_types
from infwidth.validation import (
    check_architecture,
    check_bool,
    check_choice,
    check_int,
    check_kind,
    check_pos_int,
    check_seed,
)

__all__ = ["spectrum", "Spectrum", "EigenType", "METHODS", "eigenfunction", "learning_index",
           "Eigenfunction", "RecursionOptions", "roundoff_zeroed", "ROUNDOFF_FACTOR"]

METHODS = ("exact", "fwht", "monte-carlo", "gram")
ROUNDOFF_FACTOR = 2.0
NEGATIVE_POLICIES = ("raise", "warn", "keep")


def roundoff_zeroed(eigenvalues: Any, error_bound: Any, factor: float = ROUNDOFF_FACTOR,
                    negative: str = "raise") -> np.ndarray:
    """The round-off rule (``docs/theory.md`` §3): λ with |λ| ≤ factor·error_bound set to
    exactly 0; a NaN error_bound counts as 0, so only exact zeros are zeroed there.

    An eigenvalue λ < −factor·error_bound is not round-off (a kernel is positive
    semi-definite): ``negative`` "raise" (ValueError), "warn" (RuntimeWarning, λ kept) or
    "keep" (λ kept silently, for callers that report it themselves)."""
    if negative not in NEGATIVE_POLICIES:
        raise ValueError(f"negative must be one of {NEGATIVE_POLICIES}, got {negative!r}")
    if not factor >= 0:
        raise ValueError(f"factor must be non-negative, got {factor!r}")
    lam = np.array(eigenvalues, dtype=np.float64)
    err = np.nan_to_num(np.broadcast_to(np.asarray(error_bound, dtype=np.float64), lam.shape),
                        nan=0.0)
    bound = factor * err
    lam[np.abs(lam) <= bound] = 0.0
    bad = np.flatnonzero(lam < -bound)
    if len(bad) and negative != "keep":
        msg = (f"{len(bad)} eigenvalue(s) negative beyond {factor:g}·error_bound (not "
               f"round-off), at index {bad.tolist()[:8]}: λ = {lam[bad].tolist()[:8]}, "
               f"error_bound = {err[bad].tolist()[:8]}; a Monte-Carlo estimate needs more "
               f"samples, an exact one a larger error estimate")
        if negative == "raise":
            raise ValueError(msg)
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return lam


@dataclass(frozen=True)
class EigenType:
    """One eigenspace type. ``key`` is the canonical type (nested tree pattern, or the
    smallest shifted tuple of (position, degree) for ConvNets); ``label`` its text form."""

    key: Any
    label: str
    degrees: tuple[int, ...]
    support: tuple[int, ...]
    frequency: int
    space: float
    learning_index: float
    eigenvalue: float
    multiplicity: int
    method: str
    error_bound: float
    representation: str = ""


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues of ``arch``'s ``kind`` kernel on ``domain`` at ``dim``, by type.

    Attributes: arch, dim, domain, kind, max_degree, method, types (tuple of
    :class:`EigenType`, the table's rows in order; ``key`` and ``support`` give each type's
    canonical pattern and patches), n_patches, patch_dim (n0), alpha0 = log_d n0,
    diagonal = E[K(x, x)], options (read-only: the Monte-Carlo settings).
    """

    arch: Architecture
    dim: int
    domain: str
    kind: str
    max_degree: int
    method: str
    types: tuple[EigenType, ...]
    n_patches: int
    patch_dim: int
    alpha0: float
    diagonal: float
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}),
                                       compare=False)

    # ------------------------------------------------------------------ tables
    def table(self) -> pd.DataFrame:
        """One row per type: degrees, frequency, space, learning_index, eigenvalue
        (per eigenfunction), multiplicity, method, error_bound, plus label, support,
        n_support, representation and mass = multiplicity·eigenvalue."""
        rows = [{"label": t.label, "degrees": t.degrees, "support": t.support,
                 "n_support": len(t.support), "frequency": t.frequency, "space": t.space,
                 "learning_index": t.learning_index, "eigenvalue": t.eigenvalue,
                 "multiplicity": t.multiplicity, "method": t.method,
                 "error_bound": t.error_bound, "representation": t.representation,
                 "mass": t.multiplicity * t.eigenvalue} for t in self.types]
        df = pd.DataFrame(rows)
        if len(df) and max(t.multiplicity for t in self.types) < 2 ** 63:
            df["multiplicity"] = df["multiplicity"].astype(np.int64)
        return df

    def trace(self) -> float:
        """E[K(x, x)] = Σ over all eigenfunctions of λ (Parseval, no degree cap)."""
        return self.diagonal

    def captured(self) -> float:
        """Σ multiplicity·λ over the types in the table (degree ≤ max_degree)."""
        return float(sum(t.multiplicity * t.eigenvalue for t in self.types))

    def captured_fraction(self) -> float:
        """captured() / trace()."""
        return self.captured() / self.diagonal

    def roundoff_zeroed(self, factor: float = ROUNDOFF_FACTOR,
                        negative: str = "keep") -> "Spectrum":
        """The same spectrum with every eigenvalue |λ| ≤ ``factor``·error_bound set to exactly
        0 (:func:`roundoff_zeroed`, ``docs/theory.md`` §3): types that are zero up to round-off
        (e.g. the odd degrees ≥ 3 of a one-layer ReLU NTK, λ ~ 1e-19) become the exact zeros
        they are. Eigenvalues negative beyond their bound stay in the table (``negative``:
        "keep", "warn" or "raise"). The learning-curve predictor uses the same rule;
        :meth:`plot` draws this version by default."""
        lam = roundoff_zeroed([t.eigenvalue for t in self.types],
                              [t.error_bound for t in self.types], factor, negative)
        types = tuple(dataclasses.replace(t, eigenvalue=0.0) if v == 0.0 and t.eigenvalue != 0.0
                      else t for t, v in zip(self.types, lam))
        return dataclasses.replace(self, types=types)

    # ------------------------------------------------------------------ eigenfunctions
    def _row(self, row: Any) -> EigenType:
        if isinstance(row, EigenType):
            return row
        if isinstance(row, pd.Series):
            row = row["label"]
        if isinstance(row, str):
            for t in self.types:
                if t.label == row:
                    return t
            raise ValueError(f"row: no type labelled {row!r}")
        if isinstance(row, (int, np.integer)) and not isinstance(row, bool):
            if not -len(self.types) <= row < len(self.types):
                raise ValueError(f"row must index the {len(self.types)} types, got {row}")
            return self.types[int(row)]
        raise TypeError(f"row must be an int, a label, a table row or an EigenType, "
                        f"got {type(row).__name__}")

    def eigenfunction(self, row: Any, rng: np.random.Generator | int | None = None,
                      placement: str = "random") -> Eigenfunction:
        """A random normalised eigenfunction of a type (``row``: table index, label, table
        row or :class:`EigenType`). ``placement="random"`` draws a uniform member of the
        type's orbit (random sibling permutations / shifts), "canonical" keeps ``degrees``."""
        if placement not in ("random", "canonical"):
            raise ValueError(f"placement must be 'random' or 'canonical', got {placement!r}")
        t = self._row(row)
        return type_system(self.arch, self.dim).eigenfunction(
            t.key, self.domain, _rng(rng), placement)

    # ------------------------------------------------------------------ plot
    def plot(self, path: str | os.PathLike | None = None,
             levels: Sequence[float] | None = None, m_exponent: float | None = None,
             ax: Any = None, title: str | None = None, roundoff_as_zero: bool = True):
        """Space–frequency diagram: each type at (space, frequency), coloured by log10 λ;
        dashed level lines α0·|k| + space = r for r in ``levels``; with ``m_exponent`` = r the
        region L < r (learned with m = d^r samples) is shaded and its types drawn filled.
        Types with λ = 0 are crosses (grey at the right edge for L = ∞, red at their place
        for exact zeros at finite L, e.g. odd degrees of one ReLU layer); with
        ``roundoff_as_zero`` (default) eigenvalues within round-off of 0 count as zeros
        (:meth:`roundoff_zeroed`). Writes a PNG to ``path`` (atomically) when given; returns
        the matplotlib Figure. Drawn by :func:`infwidth.io.plots.plot_spectrum`."""
        from infwidth.io.plots import plot_spectrum  # deferred: plotting is a higher stage

        return plot_spectrum(self, path, levels, m_exponent, ax, title, roundoff_as_zero)


def _rng(rng: Any) -> np.random.Generator:
    """A Generator from None, a Generator or a seed (an integer ≥ 0)."""
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    return np.random.default_rng(check_seed("rng", rng))


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------
def _validate(arch: Any, dim: Any, domain: Any, kind: Any, max_degree: Any, method: Any
              ) -> tuple[TypeSystem, str]:
    check_architecture(arch)
    check_pos_int("dim", dim)
    check_choice("domain", domain, DOMAINS)
    check_kind(kind)
    check_int("max_degree", max_degree, 0)
    if method is not None:
        check_choice("method", method, METHODS)
    ts = type_system(arch, int(dim))  # raises when dim does not fit the topology
    tree = arch.tree_plan(int(dim)) is not None
    if method is None:
        if tree:
            method = "exact"
        elif domain == "hypercube" and dim <= 10:
            method = "gram"
        else:
            method = "monte-carlo"
    if method == "exact" and not tree:
        raise ValueError(f"method='exact' needs a tree architecture (MLP, SCNN, DCNN); "
                         f"{type(arch).__name__} is a general DAG: use 'monte-carlo', 'gram' "
                         f"or 'fwht'")
    if method in ("fwht", "gram") and domain != "hypercube":
        raise ValueError(f"method={method!r} works on the hypercube only, got domain={domain!r}")
    if method == "fwht" and dim > MAX_FWHT_DIM:
        raise ValueError(f"method='fwht' supports dim ≤ {MAX_FWHT_DIM}, got dim={dim}")
    if method == "gram" and dim > MAX_GRAM_DIM:
        raise ValueError(f"method='gram' supports dim ≤ {MAX_GRAM_DIM}, got dim={dim}")
    if domain == "sphere" and ts.n0 < 2:
        raise ValueError(f"domain='sphere' needs patches of at least 2 coordinates; "
                         f"{type(arch).__name__} has n0={ts.n0}")
    if ts.symmetrised and domain != "hypercube":
        raise ValueError("GAP readouts are supported on the hypercube only")
    return ts, method


def spectrum(arch: Architecture, dim: int, domain: str = "hypercube", kind: str = "ntk",
             max_degree: int = 4, method: str | None = None, *,
             kernel_fn: Callable | None = None, n_samples: int = 1000, n_batches: int = 4,
             n_functions: int = 16, seed: int = 0, estimator: str | None = None,
             include_zero: bool = True,
             error_estimate: bool = True, options: RecursionOptions | None = None,
             max_types: int = MAX_TYPES) -> Spectrum:
    """Eigenvalues by eigenspace type, up to total degree ``max_degree``.

    method: None (trees: "exact"; ConvNets: "gram" for dim ≤ 10 on the hypercube, else
    "monte-carlo"), "exact", "fwht", "gram" or "monte-carlo". ``kernel_fn`` (default
    :func:`infwidth.kernel`) evaluates Gram matrices for the sampling routes; ``n_samples``,
    ``n_batches``, ``n_functions`` and ``seed`` set the Monte-Carlo estimate.
    ``include_zero`` keeps tree types that reach the linear readout through several top nodes
    (eigenvalue exactly 0). ``error_estimate`` adds the half-resolution comparison of the
    exact recursion. ``options`` tunes the recursion (:class:`RecursionOptions`).

    Cost before work: the number of types is counted from the topology, dim and max_degree
    first (exactly for trees, by the candidates visited for ConvNets), and a call with more
    than ``max_types`` is refused with a ValueError that says how many (raise ``max_types``
    to go on: the exact recursion takes a few milliseconds a type).

    Args:
        arch: the architecture.
        dim: the input dimension d.
        domain: "hypercube" or "sphere" (a product of spheres, one per patch).
        kind: "ntk" or "nngp".
        max_degree: the largest total degree |k|.
        method: ``None`` (chosen from the architecture), "exact", "fwht", "gram" or "monte-carlo".
        kernel_fn: the Gram evaluator of the sampling routes (default ``iw.kernel``).
        n_samples: Monte-Carlo inputs per batch.
        n_batches: Monte-Carlo batches.
        n_functions: Monte-Carlo eigenfunctions per type.
        seed: the Monte-Carlo seed.
        estimator: the Monte-Carlo estimator (``None``: the route's default).
        include_zero: keep the types whose eigenvalue is exactly 0.
        error_estimate: add the exact recursion's half-resolution error estimate.
        options: a ``RecursionOptions`` tuning the exact recursion.
        max_types: refuse (ValueError) a call that would compute more types.

    Returns:
        A :class:`Spectrum`: one row per eigenspace type in ``.table()`` (multiplicity, eigenvalue,
        frequency, space, learning index, error bound).

    Example:
        >>> import infwidth as iw
        >>> spec = iw.spectrum(iw.DCNN(patch_dim=4, filter_sizes=(4,)), dim=64, max_degree=2)
        >>> df = spec.table()
        >>> bool((df["eigenvalue"] >= 0).all()), round(spec.captured_fraction(), 3) < 1
        (True, True)
    """
    ts, method = _validate(arch, dim, domain, kind, max_degree, method)
    dim, max_degree = int(dim), int(max_degree)
    opts = RecursionOptions() if options is None else options
    if not isinstance(opts, RecursionOptions):
        raise TypeError(f"options must be a RecursionOptions, got {type(opts).__name__}")
    seed = check_seed("seed", seed)
    max_types = check_pos_int("max_types", max_types)
    if kernel_fn is not None and not callable(kernel_fn):
        raise TypeError(f"kernel_fn must be callable (like iw.kernel) or None, "
                        f"got {type(kernel_fn).__name__}")
    for name, flag in (("include_zero", include_zero), ("error_estimate", error_estimate)):
        check_bool(flag, name)
    if method == "monte-carlo":
        for name, v in (("n_samples", n_samples), ("n_batches", n_batches),
                        ("n_functions", n_functions)):
            check_pos_int(name, v)
        if n_samples < 2 or n_batches < 2:
            raise ValueError("monte-carlo needs n_samples ≥ 2 and n_batches ≥ 2 (error bars)")
    ts.check_count(max_degree, domain, include_zero, max_types)  # cost before work
    results: dict[Any, tuple[float, float, str]] = {}
    if method == "exact":
        spec = ts.spec
        max_leaf = ts.n0 if domain == "hypercube" else max_degree
        pats, roots = enumerate_types(spec, max_degree, max_leaf, include_zero)
        leaf = hypercube_leaf if domain == "hypercube" else sphere_leaf
        res = tree_eigenvalues(spec, kind, domain, pats, roots, opts, leaf)
        approx = domain == "sphere" or any(v[2] in ("grid", "moments") for v in res.values())
        if error_estimate and approx:
            coarse = tree_eigenvalues(spec, kind, domain, pats, roots, opts.coarse(), leaf)
            res = {k: (v[0], v[1] + abs(v[0] - coarse[k][0]), v[2]) for k, v in res.items()}
        results = res
        keys = roots
        diagonal = spec.diagonal(kind)
    else:
        keys = ts.types(max_degree, domain, include_zero, max_types)
        if method == "fwht":
            got = fwht_types(ts, kind, max_degree, kernel_fn)
            results = {k: (got[k][0], got[k][1], "fwht") if k in got else (0.0, 0.0, "fwht")
                       for k in keys}
        elif method == "gram":
            got = gram_types(ts, kind, max_degree, kernel_fn)
            results = {k: (got[k][0], got[k][1], "gram") if k in got else (0.0, 0.0, "gram")
                       for k in keys}
        else:
            got = monte_carlo_types(ts, keys, kind, domain, kernel_fn, n_samples, n_batches,
                                    n_functions, seed, estimator=estimator)
            results = {k: (got[k][0], got[k][1], "monte-carlo") for k in keys}
        diagonal = _diagonal(ts, kind, domain, kernel_fn, seed)
    types = []
    for k in keys:
        lam, err, rep = results[k]
        freq = ts.frequency(k)
        space = ts.space(k)
        li = learning_index_from_space(ts.dag.alpha0, freq, space)
        types.append(EigenType(k, ts.label(k), ts.degrees(k), ts.support(k), freq, space, li,
                               float(lam), ts.multiplicity(k, domain), method, float(err), rep))
    types.sort(key=lambda t: (t.frequency, t.learning_index, -t.eigenvalue, t.label))
    mc = {"n_samples": n_samples, "n_batches": n_batches, "n_functions": n_functions,
          "seed": seed, "estimator": estimator} if method == "monte-carlo" else {}
    return Spectrum(arch, dim, domain, kind, max_degree, method, tuple(types),
                    ts.patch_index.shape[0], ts.n0, ts.dag.alpha0, float(diagonal),
                    MappingProxyType(mc))


def _diagonal(ts: TypeSystem, kind: str, domain: str, kernel_fn: Callable | None,
              seed: int) -> float:
    """E[K(x, x)]: exact for trees; for ConvNets the mean diagonal of a few sampled points
    (constant in x for Flatten readouts on these domains)."""
    if ts.is_tree:
        return ts.spec.diagonal(kind)
    if kernel_fn is None:
        from infwidth.kernels.engine import kernel as kernel_fn
    from infwidth.eigenspaces.eigenfunctions import sample_domain
    x = sample_domain(domain, 64 if ts.symmetrised else 2, ts.patch_index, seed)
    return float(np.mean(np.diag(np.asarray(kernel_fn(ts.arch, x, kind=kind)))))


def eigenfunction(arch: Architecture, dim: int, degrees: Any, domain: str = "hypercube",
                  rng: np.random.Generator | int | None = None) -> Eigenfunction:
    """A random normalised eigenfunction with the degree profile ``degrees`` (a tuple with one
    degree per patch of ``arch.dag_for(dim)``, or a dict {patch: degree}): a Walsh monomial
    (hypercube) or a product of zonal harmonics (sphere), see
    :mod:`infwidth.eigenspaces.eigenfunctions`.
    For a GAP ConvNet use :meth:`Spectrum.eigenfunction` (symmetrised eigenfunctions).

    Args:
        arch: the architecture.
        dim: the input dimension.
        degrees: one degree per patch (a tuple), or a dict {patch: degree}.
        domain: "hypercube" or "sphere".
        rng: a numpy Generator or seed choosing the random eigenfunction.

    Returns:
        An :class:`~infwidth.eigenspaces.Eigenfunction`, callable on (n, dim) inputs, with unit
        second moment.

    Example:
        >>> import infwidth as iw
        >>> psi = iw.eigenfunction(iw.SCNN(patch_dim=4), 16, {0: 2, 3: 1}, rng=0)
        >>> x = iw.sample_inputs("hypercube", n=3, dim=16, seed=0)
        >>> psi(x).shape
        (3,)
    """
    check_architecture(arch)
    check_choice("domain", domain, DOMAINS)
    gen = _rng(rng)
    ts = type_system(arch, dim)
    degs = degree_profile(degrees, ts.patch_index.shape[0])
    if domain == "sphere" and ts.n0 < 2:
        raise ValueError("domain='sphere' needs patches of at least 2 coordinates")
    return sample_eigenfunction(ts.patch_index, degs, domain, gen)
