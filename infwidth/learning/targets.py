"""Targets: functions to learn, described as eigenspace components with their power.

A :class:`Target` lives on an input law (``domain`` "hypercube" or "sphere", ``dim``
coordinates cut into reference patches of ``patch_dim`` contiguous coordinates). Each
:class:`Component` is a degree profile k = (k_1, …, k_p) over the reference patches and a
power v² = E[f_c(x)²]. Sampling (:meth:`Target.sample`) draws a concrete function

    f(x) = Σ_c Σ_{t ≤ terms_c} a_{c,t} · Ψ_{c,t}(x),      Σ_t a_{c,t}·a_{c,s}·⟨Ψ_t, Ψ_s⟩ = v_c²

with Ψ a unit-power eigenfunction of degree profile k_c:

- hypercube: a Walsh monomial χ_S(x) = Π_{j∈S} x_j with |S ∩ patch_i| = k_i (coordinates
  drawn at random inside each patch); distinct monomials are orthonormal.
- sphere: a product over patches of zonal harmonics √N(n0, k_i)·P_{k_i}(⟨x_i, u_i⟩/√n0),
  u_i a random unit pole and P_k the Legendre polynomial of dimension n0 normalised to
  P_k(1) = 1 (:mod:`infwidth.eigenspaces.harmonics`), so that E[Ψ²] = 1 (addition theorem:
  E[P_k(x̂·u)·P_k(x̂·w)] = P_k(u·w)/N(n0, k), ``docs/theory.md`` §3). Several terms are
  normalised exactly with their Gram matrix Π_i P_{k_i}(u_{t,i}·u_{s,i}).

Components of different degree profiles are orthogonal, so E[f²] = Σ_c v_c² exactly.

A **cyclic** component (:meth:`Target.cyclic`; hypercube, ``patch_dim`` = 1 so the profile is
the indicator of a set S of coordinates) is the translation-invariant orbit sum

    f_c(x) = v_c·n_O^{−1/2}·Σ_{t < n_O} χ_{S+t}(x)     (indices mod dim)

over the n_O distinct translates of S (n_O = dim unless S is periodic): unit power up to v_c²
(distinct monomials are orthonormal), deterministic, and an eigenfunction (the frequency-0
Fourier mode) of every translation-invariant kernel, pooled or not
(:mod:`infwidth.eigenspaces.conv_spectrum`, whose spectra the predictor reads through
``ConvSpectrum.component_rows``). On a dot-product kernel (MLP) it lies in the degree-|S|
eigenspace like any monomial.

On an architecture the reference patches are mapped to the architecture's leaves
(:meth:`Target.arch_degrees`): every reference patch carrying degree must lie inside one leaf
(hypercube), or be exactly one leaf (sphere, whose eigenfunctions are harmonics of the leaves'
spheres). The architecture's eigenspace *type* of a component is the orbit of that leaf
profile under the tree's symmetries (:func:`canonical_type`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import DOMAINS, check_inputs
from infwidth.eigenspaces.harmonics import harmonic_count, legendre
from infwidth.eigenspaces.steiner import degree_profile
from infwidth.validation import check_architecture, check_pos_int, check_seed

__all__ = ["Component", "Target", "TargetFunction", "canonical_type",
           "harmonic_count"]


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------

def _seed(seed: Any) -> int:
    return check_seed("seed", seed)


def canonical_type(arch: Architecture, dim: int, degrees: Sequence[int]) -> Any:
    """A hashable key of the eigenspace type of a leaf degree profile: the orbit under the
    topology's symmetries (sibling permutations in a tree, translations of a circular
    ConvNet). Two profiles have the same key iff they are in the same orbit."""
    dag = arch.dag_for(dim)
    degrees = tuple(int(d) for d in degrees)
    if len(degrees) != dag.n_patches:
        raise ValueError(f"degrees has {len(degrees)} entries, expected {dag.n_patches}")
    if dag.is_tree:
        forms: list[Any] = [d if d > 0 else None for d in degrees]
        for layer in dag.children:
            nxt = []
            for ch in layer:
                act = sorted((forms[u] for u in ch if forms[u] is not None), key=repr)
                nxt.append(tuple(act) if act else None)
            forms = nxt
        return ("tree", forms[0])
    if arch.translation_symmetric:
        p = len(degrees)
        return ("circ", min(degrees[s:] + degrees[:s] for s in range(p)))
    return ("profile", degrees)


# --------------------------------------------------------------------------------------
# Components and targets
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Component:
    """One eigenspace component: degree ``degrees[i]`` inside reference patch i, power
    E[f_c²] = ``power``, spread over ``terms`` eigenfunctions of that profile (random
    coefficients). ``label`` names it in tables."""

    degrees: tuple[int, ...]
    power: float = 1.0
    terms: int = 1
    label: str = ""
    cyclic: bool = False

    @property
    def frequency(self) -> int:
        """|k|: the order of the interaction."""
        return int(sum(self.degrees))

    @property
    def support(self) -> tuple[int, ...]:
        """Reference patches with k_i > 0."""
        return tuple(i for i, k in enumerate(self.degrees) if k > 0)


def _profile(degrees: Any, p: int, name: str) -> tuple[int, ...]:
    return degree_profile(degrees, p, name, unit="reference patch")


@dataclass(frozen=True)
class Target:
    """A target function as eigenspace components with their power.

    Args:
        domain: "hypercube" or "sphere" (the input law, as in :func:`infwidth.sample_inputs`).
        dim: number of input coordinates D.
        patch_dim: coordinates per reference patch n0 (patches are contiguous blocks).
        components: :class:`Component` s, or (degrees, power) pairs, or dicts
            {patch: degree} (power 1).
        name: used in tables and plots.

    Example:
        >>> import infwidth as iw
        >>> t = iw.Target.local("hypercube", dim=64, patch_dim=8, degree=3)
        >>> f = t.sample(seed=0)
        >>> x = iw.sample_inputs("hypercube", 20000, 64, seed=1)
        >>> abs(float((f(x) ** 2).mean()) - 1.0) < 1e-12     # one Walsh monomial: f² = 1
        True
    """

    domain: str
    dim: int
    patch_dim: int
    components: tuple[Component, ...]
    name: str = "target"

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"domain must be one of {DOMAINS}, got {self.domain!r}")
        dim, n0 = check_pos_int("dim", self.dim), check_pos_int("patch_dim", self.patch_dim)
        if dim % n0:
            raise ValueError(f"dim={dim} is not divisible by patch_dim={n0}")
        p = dim // n0
        comps = self.components
        if isinstance(comps, (Component, Mapping)):
            comps = (comps,)
        if not isinstance(comps, (Sequence, np.ndarray)) or len(comps) == 0:
            raise ValueError("components must be a non-empty sequence of Component, "
                             "(degrees, power) pairs or {patch: degree} dicts")
        out = []
        for i, c in enumerate(comps):
            if not isinstance(c, Component):
                if isinstance(c, Mapping):
                    c = Component(c)
                elif isinstance(c, (tuple, list)) and len(c) == 2 and isinstance(
                        c[0], (Sequence, Mapping, np.ndarray)):
                    c = Component(c[0], c[1])
                else:
                    c = Component(c)
            deg = _profile(c.degrees, p, f"components[{i}].degrees")
            if sum(deg) == 0:
                raise ValueError(f"components[{i}] is the constant (all degrees 0); targets "
                                 f"hold zero-mean components only")
            if self.domain == "hypercube" and max(deg) > n0:
                raise ValueError(
                    f"components[{i}] has degree {max(deg)} in one patch, but a hypercube "
                    f"patch of {n0} coordinates carries Walsh monomials of degree ≤ {n0}")
            if self.domain == "sphere" and n0 == 1 and max(deg) > 1:
                raise ValueError(f"components[{i}]: the sphere S^0 (patch_dim=1) has "
                                 f"harmonics of degree ≤ 1 only, got {max(deg)}")
            pw = c.power
            if isinstance(pw, bool) or not isinstance(pw, (int, float, np.floating,
                                                           np.integer)) \
                    or not math.isfinite(pw) or pw <= 0:
                raise ValueError(f"components[{i}].power must be a positive finite number, "
                                 f"got {pw!r}")
            terms = check_pos_int(f"components[{i}].terms", c.terms)
            if not isinstance(c.cyclic, (bool, np.bool_)):
                raise TypeError(f"components[{i}].cyclic must be a bool, got {c.cyclic!r}")
            if c.cyclic and (self.domain != "hypercube" or n0 != 1 or terms != 1):
                raise ValueError(
                    f"components[{i}] is cyclic: an orbit sum of one Walsh monomial over the "
                    f"coordinate translations needs domain='hypercube', patch_dim=1 and "
                    f"terms=1, got {self.domain!r}, {n0}, {terms}")
            avail = self._available(deg)
            if terms > avail:
                raise ValueError(f"components[{i}] asks for {terms} eigenfunctions but the "
                                 f"profile {deg} has only {avail}")
            label = c.label or (("cyclic " if c.cyclic else "") + _default_label(deg))
            out.append(Component(deg, float(pw), terms, str(label), bool(c.cyclic)))
        labels = [c.label for c in out]
        if len(set(labels)) != len(labels):
            raise ValueError(f"component labels must be distinct, got {labels}")
        object.__setattr__(self, "components", tuple(out))
        object.__setattr__(self, "dim", dim)
        object.__setattr__(self, "patch_dim", n0)

    # ---- constructors ---------------------------------------------------------------
    @classmethod
    def from_degrees(cls, domain: str, dim: int, patch_dim: int, degrees: Any,
                     power: float = 1.0, terms: int = 1, name: str | None = None) -> "Target":
        """A one-component target of degree profile ``degrees`` (tuple or {patch: degree})."""
        t = cls(domain, dim, patch_dim, (Component(degrees, power, terms),))
        return cls(domain, dim, patch_dim, t.components, name or t.components[0].label)

    @classmethod
    def local(cls, domain: str, dim: int, patch_dim: int, degree: int = 3, patch: int = 0,
              power: float = 1.0, terms: int = 1, name: str | None = None) -> "Target":
        """Short-range high-frequency: degree ``degree`` inside one patch."""
        return cls.from_degrees(domain, dim, patch_dim, {patch: degree}, power, terms,
                                name or f"degree {degree} in one patch")

    @classmethod
    def pair(cls, domain: str, dim: int, patch_dim: int, patches: tuple[int, int] = (0, 1),
             degrees: tuple[int, int] = (1, 1), power: float = 1.0, terms: int = 1,
             name: str | None = None) -> "Target":
        """A product of degree-``degrees`` functions on two patches (siblings by default:
        patches 0 and 1 share their first parent in a 1-D tree)."""
        a, b = patches
        if a == b:
            raise ValueError(f"patches must be two different patches, got {patches}")
        return cls.from_degrees(domain, dim, patch_dim, {a: degrees[0], b: degrees[1]},
                                power, terms, name or f"pair {a}-{b}")

    @classmethod
    def far_pair(cls, domain: str, dim: int, patch_dim: int, degrees: tuple[int, int] = (1, 1),
                 power: float = 1.0, terms: int = 1, name: str | None = None) -> "Target":
        """Long-range low-frequency: the first and last patches (in a 1-D tree they are
        joined only at the top node)."""
        p = check_pos_int("dim", dim) // check_pos_int("patch_dim", patch_dim)
        if p < 2:
            raise ValueError(f"far_pair needs at least two patches, dim/patch_dim = {p}")
        return cls.pair(domain, dim, patch_dim, (0, p - 1), degrees, power, terms,
                        name or "far pair")

    @classmethod
    def cyclic(cls, domain: str, dim: int, support: Sequence[int] | None = None,
               degree: int | None = None, span: int | None = None, power: float = 1.0,
               name: str | None = None) -> "Target":
        """A translation-invariant target: the normalised cyclic orbit sum
        v·n_O^{−1/2}·Σ_t χ_{S+t}(x) of one local Walsh monomial (module docstring).

        Args:
            domain: "hypercube" (the only domain with Walsh monomials).
            dim: number of cyclic coordinates d.
            support: the coordinates of S (any representative of the orbit), or
            degree: ℓ = |S| with
            span: the window S spans, S = {0, 1, …, ℓ − 2, span − 1} (default span = ℓ:
                ℓ consecutive coordinates).
            power: E[f²] = v².
            name: used in tables.

        Returns:
            A one-component :class:`Target` on ``patch_dim=1`` with ``cyclic=True``.

        Example:
            >>> import infwidth as iw
            >>> t = iw.Target.cyclic("hypercube", dim=8, degree=2, span=3)
            >>> t.components[0].degrees
            (1, 0, 1, 0, 0, 0, 0, 0)
            >>> x = iw.sample_inputs("hypercube", 4000, 8, seed=0)
            >>> f = t.sample()
            >>> bool(abs(float((f(x) ** 2).mean()) - 1.0) < 0.1)
            True
            >>> bool(np.allclose(f(x), f(np.roll(x, 3, axis=1))))   # translation invariant
            True
        """
        dim = check_pos_int("dim", dim)
        if (support is None) == (degree is None):
            raise ValueError("give exactly one of support (coordinates) or degree (with span)")
        if support is None:
            degree = check_pos_int("degree", degree)
            span = degree if span is None else check_pos_int("span", span)
            if span < degree or span > dim:
                raise ValueError(f"span must be in [degree, dim] = [{degree}, {dim}], "
                                 f"got {span}")
            support = tuple(range(degree - 1)) + (span - 1,)
        elif span is not None:
            raise ValueError("span goes with degree, not with support")
        if isinstance(support, (str, bytes)) or not isinstance(support, (Sequence, np.ndarray)):
            raise TypeError(f"support must be a sequence of coordinates, got {support!r}")
        coords = sorted({int(c) % dim for c in support})
        if not coords or len(coords) != len(support):
            raise ValueError(f"support must be distinct coordinates (mod dim={dim}), non-empty, "
                             f"got {tuple(support)}")
        deg = tuple(1 if i in coords else 0 for i in range(dim))
        comp = Component(deg, power, 1, "", True)
        t = cls(domain, dim, 1, (comp,))
        return cls(domain, dim, 1, t.components,
                   name or f"cyclic degree {len(coords)} span {coords[-1] - coords[0] + 1}")

    def __add__(self, other: "Target") -> "Target":
        if not isinstance(other, Target):
            return NotImplemented
        if (self.domain, self.dim, self.patch_dim) != (other.domain, other.dim,
                                                       other.patch_dim):
            raise ValueError("can only add targets on the same domain, dim and patch_dim")
        return Target(self.domain, self.dim, self.patch_dim,
                      self.components + other.components, f"{self.name} + {other.name}")

    # ---- properties -----------------------------------------------------------------
    @property
    def n_patches(self) -> int:
        return self.dim // self.patch_dim

    @property
    def power(self) -> float:
        """E[f²] = Σ_c v_c²."""
        return float(sum(c.power for c in self.components))

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.components)

    def _available(self, deg: tuple[int, ...]) -> float:
        """Number of eigenfunctions with this degree profile."""
        n0 = self.patch_dim
        count = 1.0
        for k in deg:
            count *= (math.comb(n0, k) if self.domain == "hypercube"
                      else harmonic_count(n0, k))
        return count if self.domain == "hypercube" else math.inf

    # ---- architecture ---------------------------------------------------------------
    def check_domain(self, domain: str | None = None, dim: int | None = None) -> None:
        if domain is not None and domain != self.domain:
            raise ValueError(f"domain={domain!r} but the target lives on {self.domain!r}")
        if dim is not None and dim != self.dim:
            raise ValueError(f"dim={dim} but the target has dim={self.dim}")

    def arch_degrees(self, arch: Architecture) -> list[tuple[int, ...]]:
        """Each component's degree profile over the leaves of ``arch.dag_for(dim)``.

        Raises ValueError when a patch carrying degree is not inside one leaf (hypercube) or
        is not exactly one leaf (sphere), i.e. when the component is not an eigenfunction of
        the architecture's kernel on this domain."""
        check_architecture(arch)
        leaves = arch.leaf_coordinates(self.dim)
        owner = np.empty(self.dim, dtype=np.int64)
        for j, coords in enumerate(leaves):
            owner[coords] = j
        n0 = self.patch_dim
        out = []
        for c in self.components:
            prof = [0] * len(leaves)
            for i in c.support:
                coords = np.arange(i * n0, (i + 1) * n0)
                leaf = np.unique(owner[coords])
                if len(leaf) != 1:
                    raise ValueError(
                        f"component {c.label!r}: reference patch {i} (coordinates "
                        f"{i * n0}…{(i + 1) * n0 - 1}) spans {len(leaf)} leaves of "
                        f"{type(arch).__name__}; define the target with a patch_dim that "
                        f"nests in the architecture's patches")
                if self.domain == "sphere" and len(leaves[leaf[0]]) != n0:
                    raise ValueError(
                        f"component {c.label!r}: on the sphere product the eigenfunctions of "
                        f"{type(arch).__name__} are harmonics of its leaves ({len(leaves[0])} "
                        f"coordinates), not of the target's {n0}-coordinate patches; use "
                        f"patch_dim={len(leaves[0])}")
                prof[int(leaf[0])] += c.degrees[i]
            out.append(tuple(prof))
        return out

    def arch_types(self, arch: Architecture) -> list[Any]:
        """Eigenspace-type keys (:func:`canonical_type`) of the components on ``arch``."""
        return [canonical_type(arch, self.dim, d) for d in self.arch_degrees(arch)]

    # ---- sampling -------------------------------------------------------------------
    def sample(self, seed: int = 0) -> "TargetFunction":
        """Draw a concrete function (random coordinates/poles and coefficients)."""
        rng = np.random.default_rng(_seed(seed))
        n0 = self.patch_dim
        parts = []
        for c in self.components:
            if c.cyclic:
                parts.append(_cyclic_part(c))
            elif self.domain == "hypercube":
                parts.append(_walsh_part(c, n0, rng))
            else:
                parts.append(_sphere_part(c, n0, rng))
        return TargetFunction(self, tuple(parts))


def _default_label(deg: tuple[int, ...]) -> str:
    return "k=" + ",".join(f"{i}:{k}" for i, k in enumerate(deg) if k > 0)


def _normalised(rng: np.random.Generator, gram: np.ndarray, power: float) -> np.ndarray:
    a = rng.standard_normal(gram.shape[0])
    if gram.shape[0] == 1:
        a = np.sign(a) + (a == 0)
    return a * math.sqrt(power / float(a @ gram @ a))


def _walsh_part(c: Component, n0: int, rng: np.random.Generator) -> dict:
    sets: list[tuple[int, ...]] = []
    seen = set()
    while len(sets) < c.terms:
        s = []
        for i in c.support:
            s.extend(i * n0 + rng.choice(n0, size=c.degrees[i], replace=False))
        key = tuple(sorted(int(v) for v in s))
        if key not in seen:
            seen.add(key)
            sets.append(key)
    coef = _normalised(rng, np.eye(c.terms), c.power)
    return {"subsets": np.array(sets, dtype=np.int64), "coef": coef}


def _cyclic_part(c: Component) -> dict:
    d = len(c.degrees)
    base = np.flatnonzero(np.asarray(c.degrees))
    sets, seen = [], set()
    for t in range(d):
        key = tuple(sorted(int(v) for v in (base + t) % d))
        if key in seen:
            break          # back to S: the orbit is closed
        seen.add(key)
        sets.append(key)
    coef = np.full(len(sets), math.sqrt(c.power / len(sets)))
    return {"subsets": np.array(sets, dtype=np.int64), "coef": coef}


def _sphere_part(c: Component, n0: int, rng: np.random.Generator) -> dict:
    poles = []
    for i in c.support:
        u = rng.standard_normal((c.terms, n0))
        poles.append(u / np.linalg.norm(u, axis=1, keepdims=True))
    gram = np.ones((c.terms, c.terms))
    for i, u in zip(c.support, poles):
        gram *= legendre(c.degrees[i], n0, np.clip(u @ u.T, -1.0, 1.0))
    return {"poles": poles, "coef": _normalised(rng, gram, c.power)}


@dataclass(frozen=True)
class TargetFunction:
    """A concrete draw of a :class:`Target`: ``f(x)`` evaluates it on inputs (n, dim)."""

    target: Target
    parts: tuple[dict, ...] = field(repr=False)

    def components(self, x: Any) -> np.ndarray:
        """(n, n_components) array: each component f_c evaluated at the rows of ``x``."""
        t = self.target
        x = check_inputs(x, "x", t.dim)
        n0, out = t.patch_dim, np.empty((x.shape[0], len(t.components)))
        for j, (c, part) in enumerate(zip(t.components, self.parts)):
            if t.domain == "hypercube":
                basis = np.prod(x[:, part["subsets"]], axis=-1)  # (n, terms)
            else:
                basis = np.ones((x.shape[0], c.terms))
                for i, u in zip(c.support, part["poles"]):
                    k = c.degrees[i]
                    cos = x[:, i * n0:(i + 1) * n0] @ u.T / math.sqrt(n0)
                    basis *= math.sqrt(harmonic_count(n0, k)) * legendre(
                        k, n0, np.clip(cos, -1.0, 1.0))
            out[:, j] = basis @ part["coef"]
        return out

    def __call__(self, x: Any) -> np.ndarray:
        """f(x) = Σ_c f_c(x), shape (n,)."""
        return self.components(x).sum(axis=1)
