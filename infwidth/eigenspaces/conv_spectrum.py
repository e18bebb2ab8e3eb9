"""Exact spectra of one-layer convolutional kernels with overlapping patches, with and without
average pooling, on the hypercube (Misiakiewicz & Mei 2021, "Learning with convolution and
pooling operations in kernel methods").

**Kernels.** Inputs x ∈ {±1}^d with cyclic coordinates; patch k is x_(k) = (x_k, …, x_{k+q−1})
(indices mod d: stride 1, circular, d overlapping patches). A network conv(q, circular) →
activation → [AvgPool] → Flatten/GAP → Dense has, at infinite width, the kernel

    K(x, y) = Σ_{a,b ∈ Z_d} W_ab · h(⟨x_(a), y_(b)⟩/q)

where h is the patch dual (NNGP: h = dual(φ); NTK: h(t) = dual(t) + t·dual'(t), both
normalised so that h(1) = 1; any callable h may be given) and W is the pooling weight:

- no pooling (Flatten readout): W = I/d, so K = (1/d)·Σ_k h(⟨x_(k), y_(k)⟩/q);
- AvgPool(window ω, stride s) then Flatten: windows J_j = {j·s + i : i < ω} (circular: j < d/s,
  indices mod d; "valid": j ≤ (d − ω)/s, no wrap), W = (1/P)·Σ_j (1/ω²)·1_{J_j}·1_{J_j}ᵀ over
  the P windows, i.e. K = (1/P)·Σ_j (1/ω²)·Σ_{a,b ∈ J_j} h(⟨x_(a), y_(b)⟩/q);
- global average pooling (GAP readout, = circular AvgPool with ω = d): W = 11ᵀ/d².

(ConvNet's filter is centred: its node j reads x_(j − ⌊(q−1)/2⌋); a relabelling of the sum.)

**Patch spectrum.** On {±1}^q, h(⟨u, v⟩/q) = Σ_{S ⊆ [q]} κ_{|S|}·χ_S(u)·χ_S(v), with
κ_j = E_z[h(mean z)·χ_S(z)] for |S| = j (the exact tilted law of
:func:`~infwidth.eigenspaces.hypercube.hypercube_leaf`: a (q+1)-point sum).

**Conv spectrum.** Substituting, K(x, y) = Σ_{A,B ⊆ Z_d} M_AB·χ_A(x)·χ_B(y) with
M_AB = κ_{|A|}·Σ_{a ∈ P(A)} Σ_{b: A − a = B − b} W_ab, where P(A) = {a : A ⊆ patch a} (the
patches covering A; c(A) = |P(A)| is the *coverage*, q − diam(A) for a set whose cyclic
diameter diam(A) = span − 1 is < q and d ≥ 2q). M is block diagonal over translation orbits
O = {A + t}; with n_O = |O| (d unless A is periodic) the block is, for t, t' < n_O,

    M_{A+t, A+t'} = κ_{|A|}·Σ_{a ∈ P(A)} Σ_{u < d/n_O} W_{a+t, a+t'+u·n_O}.

- **No pooling** (W = I/d): the block is diagonal: every Walsh monomial χ_A is an
  eigenfunction with λ_A = κ_{|A|}·c(A)/d, and λ_A = 0 when no patch covers A.
- **Circular pooling, stride 1** (W circulant, W_ab = w(b − a)): the block is circulant, so
  the eigenfunctions are the orbit's Fourier modes
  ψ_{A,f}(x) = n_O^{−1/2}·Σ_{t<n_O} e^{2πi·f·t/d}·χ_{A+t}(x), f ∈ (d/n_O)·{0, …, n_O − 1},
  with λ_{A,f} = κ_{|A|}·c(A)·ŵ(f), ŵ(f) = Σ_t w(t)·e^{−2πi·f·t/d}. For AvgPool(ω):
  d·ŵ(f) = F_ω(f) = sin²(πfω/d)/(ω²·sin²(πf/d)) (Fejér; F_ω(0) = 1), so
  λ_{A,f} = (κ_{|A|}·c(A)/d)·F_ω(f). Global pooling: F_d(f) = 1[f = 0]: only the normalised
  cyclic orbit sum ψ_{A,0} = n_O^{−1/2}·Σ_t χ_{A+t} survives, with λ = κ_{|A|}·c(A)/d.
  The invariant mode has the same eigenvalue κ_{|A|}·c(A)/d for all three kernels: pooling
  does not raise the target's eigenvalue, it removes the d − 1 competing non-invariant modes
  per orbit (the sample complexity d·q^(ℓ−1) → q^(ℓ−1) of the paper).
- **Other pooling** (stride > 1, or "valid" windows): the n_O × n_O block above is
  diagonalised numerically (``method="block"``); exact up to eigvalsh round-off.
- **Fully connected** (q = d): every patch is the whole input, c(A) = d, λ_A = κ_{|A|}
  (the dot-product kernel h(⟨x, y⟩/d)); handled without enumerating subsets.

The table (:meth:`ConvSpectrum.table`) has one row per (degree, coverage, orbit size,
frequency or mode): degree |A|, coverage c(A), diameter, orbit_size n_O, frequency f
(min(f, d − f); −1 without pooling, where the monomials themselves are eigenfunctions, and
for block modes), eigenvalue, multiplicity (number of eigenfunctions),
a representative A and its indicator profile ``degrees`` over the d coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from infwidth.architectures.activations import dual, dual_derivative
from infwidth.eigenspaces.hypercube import hypercube_leaf
from infwidth.validation import check_choice, check_kind, check_pos_int

__all__ = ["ConvKernel", "ConvSpectrum", "patch_dual", "patch_spectrum", "conv_kernel",
           "conv_spectrum", "MAX_PATCH_ENUM"]

#: the orbit enumeration visits 2^(q−1) subsets of a patch
MAX_PATCH_ENUM = 16
_PADDINGS = ("circular", "valid")


def patch_dual(activation: str | Callable = "relu", kind: str = "ntk") -> Callable:
    """The patch kernel h(t) of a one-layer net, normalised to h(1) = 1.

    Args:
        activation: a registered activation name (``dual`` of
            :mod:`infwidth.architectures.activations`) or a callable h itself (returned as
            is; ``kind`` is then ignored).
        kind: "ntk" (h(t) = dual(t) + t·dual'(t)) or "nngp" (h = dual).

    With the package's conventions (first layer W_std = 1, readout the default normaliser,
    no bias) the NNGP patch kernel is dual(t) (h(1) = 1) and the NTK one is
    dual(t) + t·dual'(t) (h(1) = 1 + dual'(1): 2 for relu), so that the kernels here equal
    the engine's ``iw.kernel``.

    Returns:
        A vectorised callable t ↦ h(t).

    Example:
        >>> float(patch_dual("relu", "nngp")(1.0)), float(patch_dual("relu", "ntk")(1.0))
        (1.0, 2.0)
    """
    if callable(activation):
        return activation
    check_kind(kind)
    if kind == "nngp":
        return lambda t: dual(activation, t)
    return lambda t: dual(activation, t) + np.asarray(t, dtype=np.float64) * \
        dual_derivative(activation, t)


def patch_spectrum(q: int, h: Callable) -> np.ndarray:
    """κ_j, j = 0..q: the Walsh eigenvalue of h(⟨u, v⟩/q) on {±1}^q at any |S| = j.

    κ_j = Σ_t h(t)·w_j(t) over the q + 1 atoms t = (q − 2m)/q of the exact tilted law
    w_j(t) = E[1{mean z = t}·χ_S(z)] (:func:`~infwidth.eigenspaces.hypercube.hypercube_leaf`).

    Example:
        >>> k = patch_spectrum(3, lambda t: t)      # ⟨u, v⟩/3: κ_1 = 1/3, the rest 0
        >>> [round(float(v), 15) for v in k]
        [0.0, 0.333333333333333, 0.0, 0.0]
    """
    q = check_pos_int("q", q)
    out = np.empty(q + 1)
    for j in range(q + 1):
        t, w = hypercube_leaf(q, j)
        out[j] = float(np.dot(np.asarray(h(t), dtype=np.float64), w))
    return out


@dataclass(frozen=True)
class ConvKernel:
    """A one-layer circular convolutional kernel on {±1}^dim (module docstring).

    Args:
        dim: d, the number of (cyclic) input coordinates.
        filter_size: q, the patch length (1 ≤ q ≤ d; q = d is the fully connected kernel).
        activation: registered activation name, or a callable patch kernel h.
        kind: "ntk" or "nngp" (ignored when ``activation`` is a callable h).
        pool: None (Flatten readout), a window ω (AvgPool then Flatten) or "global" (GAP).
        stride: the pooling stride s (must divide d for circular pooling).
        padding: pooling windows "circular" (wrap) or "valid" (no wrap).

    Example:
        >>> k = ConvKernel(dim=8, filter_size=3, pool="global")
        >>> float(k.weights().sum())        # W = 11ᵀ/d²
        1.0
    """

    dim: int
    filter_size: int
    activation: Any = "relu"
    kind: str = "ntk"
    pool: int | str | None = None
    stride: int = 1
    padding: str = "circular"

    def __post_init__(self) -> None:
        d, q = check_pos_int("dim", self.dim), check_pos_int("filter_size", self.filter_size)
        if q > d:
            raise ValueError(f"filter_size={q} exceeds dim={d}")
        if not callable(self.activation):
            check_kind(self.kind)
        check_choice("padding", self.padding, _PADDINGS)
        s = check_pos_int("stride", self.stride)
        if self.pool is not None and self.pool != "global":
            w = check_pos_int("pool", self.pool)
            if w > d:
                raise ValueError(f"pool window {w} exceeds dim={d}")
            if self.padding == "circular" and d % s:
                raise ValueError(f"stride={s} must divide dim={d} for circular pooling")

    @property
    def h(self) -> Callable:
        return patch_dual(self.activation, self.kind)

    @property
    def circulant(self) -> bool:
        """W is circulant (translation invariant): no pooling, GAP, or circular stride 1."""
        return self.pool in (None, "global") or (self.stride == 1 and self.padding == "circular")

    def weights(self) -> np.ndarray:
        """The (d, d) pooling weight W of K = Σ_ab W_ab·h(⟨x_(a), y_(b)⟩/q)."""
        d = self.dim
        if self.pool is None:
            return np.eye(d) / d
        if self.pool == "global":
            return np.full((d, d), 1.0 / d ** 2)
        w, s = int(self.pool), self.stride
        starts = range(0, d, s) if self.padding == "circular" else range(0, d - w + 1, s)
        out = np.zeros((d, d))
        for j in starts:
            idx = (j + np.arange(w)) % d
            out[np.ix_(idx, idx)] += 1.0
        return out / (len(starts) * w * w)

    def __call__(self, x1: Any, x2: Any = None, method: str = "direct") -> np.ndarray:
        return conv_kernel(self, x1, x2, method=method)


def _patch_index(d: int, q: int) -> np.ndarray:
    return (np.arange(d)[:, None] + np.arange(q)[None, :]) % d


def conv_kernel(spec: ConvKernel, x1: Any, x2: Any = None, method: str = "direct",
                block: int = 512) -> np.ndarray:
    """K(x1_i, x2_j) of ``spec`` (module docstring), without any Gram-level shortcut.

    Args:
        spec: the :class:`ConvKernel`.
        x1: (n, d) inputs. "direct" works for any real inputs.
        x2: (n2, d) inputs (``None``: x1).
        method: "direct" evaluates h(⟨x_(a), y_(b)⟩/q) at every (a, b) with W_ab ≠ 0, grouped
            by shift b − a; "walsh" (hypercube inputs only) uses the patch expansion
            K = Σ_{S ⊆ [q]} κ_{|S|}·F_S(x1)·W·F_S(x2)ᵀ, F_S(x)[a] = χ_{S+a}(x) — 2^q matrix
            products, much faster for pooled kernels at large n.
        block: rows of x1 per chunk ("direct").

    Returns:
        (n1, n2) float64 array.
    """
    if not isinstance(spec, ConvKernel):
        raise TypeError(f"spec must be a ConvKernel, got {type(spec).__name__}")
    check_choice("method", method, ("direct", "walsh"))
    d, q = spec.dim, spec.filter_size
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = x1 if x2 is None else np.asarray(x2, dtype=np.float64)
    for name, x in (("x1", x1), ("x2", x2)):
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"{name} must have shape (n, {d}), got {x.shape}")
    if q == d and spec.pool is None:   # every patch is a rotation of x: h(⟨x, y⟩/d)
        return np.asarray(spec.h(x1 @ x2.T / d), dtype=np.float64)
    W = spec.weights()
    if method == "walsh":
        if not (np.all(np.abs(x1) == 1) and np.all(np.abs(x2) == 1)):
            raise ValueError("method='walsh' needs hypercube inputs (entries ±1)")
        kappa = patch_spectrum(q, spec.h)
        idx = _patch_index(d, q)
        out = np.zeros((x1.shape[0], x2.shape[0]))
        gap = spec.pool == "global"
        for mask in range(2 ** q):
            S = [i for i in range(q) if mask >> i & 1]
            k = kappa[len(S)]
            if k == 0.0:
                continue
            f1 = np.prod(x1[:, idx[:, S]], axis=-1) if S else np.ones((x1.shape[0], d))
            f2 = np.prod(x2[:, idx[:, S]], axis=-1) if S else np.ones((x2.shape[0], d))
            if gap:
                out += (k / d ** 2) * np.outer(f1.sum(1), f2.sum(1))
            else:
                out += k * (f1 @ W) @ f2.T
        return out
    h = spec.h
    shifts = sorted({int((b - a) % d) for a, b in zip(*np.nonzero(W))})
    out = np.zeros((x1.shape[0], x2.shape[0]))
    block = max(1, min(block, (1 << 22) // max(1, x2.shape[0] * d)))
    for lo in range(0, x1.shape[0], block):
        xa = x1[lo:lo + block]
        acc = np.zeros((xa.shape[0], x2.shape[0]))
        for delta in shifts:
            yb = np.roll(x2, -delta, axis=1)      # yb[:, a] = y_{a+δ}
            prod = xa[:, None, :] * yb[None, :, :]  # z_a = x_a·y_{a+δ}
            # circular window sum over q: ⟨x_(a), y_(a+δ)⟩
            ext = np.concatenate([prod, prod[..., :q - 1]], axis=-1)
            c = _window_sum(ext, q)
            wa = W[np.arange(d), (np.arange(d) + delta) % d]
            acc += h(c / q) @ wa
        out[lo:lo + block] = acc
    return out


def _window_sum(ext: np.ndarray, q: int) -> np.ndarray:
    cs = np.cumsum(ext, axis=-1)
    cs = np.concatenate([np.zeros(cs.shape[:-1] + (1,)), cs], axis=-1)
    return cs[..., q:] - cs[..., :-q]


# --------------------------------------------------------------------------------------
# Spectrum
# --------------------------------------------------------------------------------------
def _rot(mask: int, t: int, d: int, full: int) -> int:
    t %= d
    return ((mask << t) | (mask >> (d - t))) & full


def _orbits(d: int, q: int) -> list[int]:
    """Canonical (least rotation) bitmasks of the nonempty subsets of Z_d inside a patch."""
    full = (1 << d) - 1
    seen = set()
    for t in range(1 << (q - 1)):
        mask = 1 | (t << 1)
        seen.add(min(_rot(mask, r, d, full) for r in range(d)))
    return sorted(seen)


def _orbit_info(mask: int, d: int, q: int) -> tuple[list[int], int, list[int], int]:
    """(elements, orbit size n_O, covering patches P(A), cyclic diameter) of a subset A."""
    full = (1 << d) - 1
    elems = [i for i in range(d) if mask >> i & 1]
    n_o = next(t for t in range(1, d + 1) if d % t == 0 and _rot(mask, t, d, full) == mask)
    cover = [a for a in range(d) if all((e - a) % d < q for e in elems)]
    gaps = [(elems[(i + 1) % len(elems)] - elems[i] - 1) % d for i in range(len(elems))]
    diam = d - 1 - max(gaps) if len(elems) > 1 else 0
    return elems, n_o, cover, diam


@dataclass(frozen=True)
class ConvSpectrum:
    """The exact spectrum of a :class:`ConvKernel` (module docstring).

    ``table()`` is tidy (one row per eigenvalue class); ``trace`` = E[K(x, x)] = Σ M·λ over
    the complete spectrum; ``dim``, ``domain``, ``kind`` and :meth:`component_rows` let
    :func:`infwidth.predict_learning_curve` consume it (``arch`` is None: there is no
    architecture object behind a pooled kernel)."""

    kernel: ConvKernel
    rows: pd.DataFrame
    trace: float
    max_degree: int | None = None
    arch: Any = None
    domain: str = "hypercube"

    @property
    def dim(self) -> int:
        return self.kernel.dim

    @property
    def kind(self) -> str:
        return self.kernel.kind

    @property
    def label(self) -> str:
        k = self.kernel
        if k.filter_size == k.dim and k.pool is None:
            return "fully connected"
        pool = {None: "", "global": " + GAP"}.get(k.pool, f" + pool {k.pool}")  # type: ignore
        return f"conv q={k.filter_size}{pool}"

    def table(self) -> pd.DataFrame:
        """One row per (degree, coverage, orbit_size, frequency) class, by eigenvalue."""
        t = self.rows
        if self.max_degree is not None:
            t = t[t["degree"] <= self.max_degree]
        return t.reset_index(drop=True)

    def eigenvalues(self) -> np.ndarray:
        """Every eigenvalue with its multiplicity (nonzero classes only), sorted."""
        t = self.rows
        return np.sort(np.repeat(t["eigenvalue"].to_numpy(), t["multiplicity"].to_numpy()))

    def invariant_eigenvalue(self, support: Sequence[int]) -> tuple[float, int]:
        """(λ, table row) of the normalised cyclic orbit sum of χ_A, A = ``support``."""
        return self._lookup(support, 0)

    def _lookup(self, support: Sequence[int], freq: int) -> tuple[float, int]:
        k, d, t = self.kernel, self.dim, self.rows
        if k.filter_size == d and k.pool is None:
            hit = np.flatnonzero((t["degree"] == len(set(support))).to_numpy())
        else:
            if not k.circulant:
                raise ValueError("the pooling is not translation invariant (stride > 1 or "
                                 "valid windows): orbit Fourier modes are not eigenfunctions")
            mask = 0
            for c in support:
                mask |= 1 << (int(c) % d)
            full = (1 << d) - 1
            key = min(_rot(mask, r, d, full) for r in range(d)) if mask else 0
            elems, n_o, cover, diam = _orbit_info(key, d, k.filter_size) if key else \
                ([], 1, list(range(d)), 0)
            freq = -1 if k.pool is None else freq
            hit = np.flatnonzero(((t["degree"] == len(elems)) & (t["coverage"] == len(cover))
                                  & (t["orbit_size"] == n_o) & (t["diameter"] == diam)
                                  & (t["frequency"] == freq)).to_numpy())
        if len(hit):
            return float(t["eigenvalue"].iloc[hit[0]]), int(hit[0])
        return 0.0, -1

    def component_rows(self, target: Any) -> pd.DataFrame:
        """The predictor's component table (see :func:`infwidth.learning.predictor.
        component_table`) for a target on coordinates (``patch_dim`` = 1 profiles).

        A ``cyclic`` component (a normalised orbit sum) is the frequency-0 Fourier mode of its
        orbit: an eigenfunction of every kernel here. A plain monomial χ_A is an eigenfunction
        only without pooling; with pooling it spreads over its orbit's Fourier modes and is
        refused (ValueError)."""
        if getattr(target, "domain", None) != "hypercube" or target.dim != self.dim:
            raise ValueError(f"target must live on the hypercube with dim={self.dim}")
        if self.max_degree is not None:
            raise ValueError("component_rows needs the complete spectrum (max_degree=None)")
        rows = []
        for c in target.components:
            coords = _coordinates(target, c)
            cyclic = bool(getattr(c, "cyclic", False))
            if not cyclic and self.kernel.pool is not None:
                raise ValueError(
                    f"component {c.label!r} is a single Walsh monomial, not an eigenfunction "
                    f"of a pooled kernel (it mixes its orbit's Fourier modes); use a cyclic "
                    f"(translation-invariant) component")
            lam, row = self._lookup(coords, 0)
            mult = float(self.rows["multiplicity"].iloc[row]) if row >= 0 else math.nan
            deg = tuple(1 if i in set(coords) else 0 for i in range(self.dim))
            rows.append({"component": c.label, "degrees": deg, "frequency": len(coords),
                         "power": c.power, "eigenvalue": lam, "multiplicity": mult,
                         "learning_index": math.nan, "row": row})
        return pd.DataFrame(rows)


def _coordinates(target: Any, comp: Any) -> list[int]:
    n0 = target.patch_dim
    if n0 != 1 and not getattr(comp, "cyclic", False):
        if any(k not in (0, n0) for k in comp.degrees):
            raise ValueError(f"component {comp.label!r}: its coordinates are drawn at random "
                             f"inside patches of {n0}; give the target with patch_dim=1 so "
                             f"the support (and so the coverage) is fixed")
    out = []
    for i, k in enumerate(comp.degrees):
        if k:
            if n0 == 1:
                out.append(i)
            elif k == n0:
                out.extend(range(i * n0, (i + 1) * n0))
            else:
                raise ValueError(f"component {comp.label!r}: cyclic components need "
                                 f"patch_dim=1")
    return out


def conv_spectrum(spec: ConvKernel, max_degree: int | None = None) -> ConvSpectrum:
    """The exact spectrum of a one-layer conv kernel (module docstring).

    Args:
        spec: the :class:`ConvKernel` (hypercube).
        max_degree: keep table rows of degree ≤ this (the trace still counts every mode).

    Returns:
        A :class:`ConvSpectrum`.

    Example:
        >>> s = conv_spectrum(ConvKernel(dim=8, filter_size=3, pool="global"))
        >>> s.table()[["degree", "coverage", "multiplicity"]].values.tolist()
        [[0, 8, 1], [1, 3, 1], [2, 2, 1], [2, 1, 1]]

    (the invariant orbit sums of ∅, {0}, {0, 1} and {0, 2}; {0, 1, 2} has κ_3 = 0 for the
    one-layer relu NTK).
        >>> round(s.trace, 12) == round(float((s.table().eigenvalue
        ...                                     * s.table().multiplicity).sum()), 12)
        True
    """
    if not isinstance(spec, ConvKernel):
        raise TypeError(f"spec must be a ConvKernel, got {type(spec).__name__}")
    if max_degree is not None:
        max_degree = int(check_pos_int("max_degree", max_degree))
    d, q = spec.dim, spec.filter_size
    kappa = patch_spectrum(q, spec.h)
    scale = float(np.max(np.abs(kappa))) or 1.0
    eps = np.finfo(np.float64).eps
    rows: list[dict] = []
    if q == d and spec.pool is None:   # fully connected: c(A) = d
        for j in range(d + 1):
            rows.append(dict(degree=j, coverage=d, diameter=-1, orbit_size=-1, frequency=-1,
                             eigenvalue=kappa[j], multiplicity=math.comb(d, j),
                             representative=tuple(range(j)), orbit=-1))
        return _finish(spec, rows, scale * eps * (q + 1), max_degree)
    if q > MAX_PATCH_ENUM:
        raise ValueError(f"filter_size={q}: the orbit enumeration visits 2^(q−1) subsets and "
                         f"supports q ≤ {MAX_PATCH_ENUM} (or q = dim without pooling)")
    W = spec.weights()
    what = np.fft.fft(W[0]).real if spec.circulant else None
    groups: dict[tuple, dict] = {}

    def add(key: tuple, lam: float, mult: int, **info: Any) -> None:
        g = groups.get(key)
        if g is None:
            groups[key] = dict(eigenvalue=lam, multiplicity=mult, **info)
        else:
            g["multiplicity"] += mult
    # the empty set: χ_∅ = 1, covered by every patch, orbit size 1
    masks = [0] + _orbits(d, q)
    for mask in masks:
        elems, n_o, cover, diam = _orbit_info(mask, d, q) if mask else ([], 1, list(range(d)),
                                                                        0)
        j, c = len(elems), len(cover)
        info = dict(degree=j, coverage=c, diameter=diam, orbit_size=n_o,
                    representative=tuple(elems), orbit=mask)
        if spec.pool is None:   # diagonal: monomials, one class per (degree, coverage)
            add((j, c, n_o, -1, diam), kappa[j] * c / d, n_o, frequency=-1, **info)
            continue
        if what is not None:
            step = d // n_o
            for g in range(n_o):
                f = g * step
                fr = min(f, d - f)
                add((j, c, n_o, fr, diam), kappa[j] * c * what[f], 1, frequency=fr, **info)
            continue
        fold = W.reshape(d, d // n_o, n_o).sum(axis=1)   # fold[a, t'] = Σ_u W[a, t' + u·n_O]
        blk = np.zeros((n_o, n_o))
        t = np.arange(n_o)
        for a in cover:
            blk += fold[np.ix_((a + t) % d, (a + t) % n_o)]
        ev = np.sort(np.linalg.eigvalsh(kappa[j] * 0.5 * (blk + blk.T)))[::-1]
        for k, lam in enumerate(ev):
            add((j, c, n_o, -1 - k, diam), float(lam), 1, frequency=-1, **info)
    rows = list(groups.values())
    return _finish(spec, rows, scale * eps * (q + 1) * d, max_degree)


def _finish(spec: ConvKernel, rows: list[dict], err: float, max_degree: int | None
            ) -> ConvSpectrum:
    df = pd.DataFrame(rows)
    df["eigenvalue"] = df["eigenvalue"].astype(np.float64)
    df["multiplicity"] = df["multiplicity"].astype(np.int64)
    trace = float((df["eigenvalue"] * df["multiplicity"]).sum())
    df["error_bound"] = err
    df = df[np.abs(df["eigenvalue"]) > 2 * err].copy()
    d = spec.dim
    df["degrees"] = [tuple(1 if i in set(r) else 0 for i in range(d))
                     for r in df["representative"]]
    df["method"] = "exact"
    cols = ["degree", "coverage", "diameter", "orbit_size", "frequency", "eigenvalue",
            "multiplicity", "representative", "degrees", "orbit", "error_bound", "method"]
    df = df[cols].sort_values(["eigenvalue", "degree"], ascending=[False, True],
                              kind="stable").reset_index(drop=True)
    return ConvSpectrum(spec, df, trace, max_degree)
