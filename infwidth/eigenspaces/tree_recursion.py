"""Type-level eigenvalue recursion for tree kernels (``docs/theory.md`` §3, "Exact computation").

For an eigenfunction χ of a tree kernel (a Walsh monomial or a product of spherical harmonics)
the eigenvalue is λ = E[K_root·χ] (NNGP) or E[Θ_root·χ] (NTK). Children of a node depend on
disjoint coordinates, so they are independent and χ factorises over them. Each node u carries
the *tilted* laws of its output K_u = G(Σ_u) and NTK contribution T_u = A(Σ_u) + B(Σ_u)·Θ_u
(see :mod:`infwidth.eigenspaces.jets`), and a parent's pre-activations Σ_v = b² + mean_u K_u and
Θ_v = Σ_v + mean_u T_u follow by convolution. Three representations are used:

**exact atoms** (small subtrees): the tilted laws as signed atoms
(:class:`~infwidth.eigenspaces.measures.Atoms`), exact Krawtchouk weights (hypercube)
or Gauss–Jacobi quadrature (sphere) at the patches, exact convolutions above. Only round-off
limits them.
A level stays exact while its background law has ≤ ``exact_atoms`` atoms and each type's
convolution ≤ ``exact_pairs`` pairs.

**grid measures** (larger levels): the same signed measures, projected on a uniform grid by
moment-preserving Lagrange interpolation, convolved on the grid. Accurate for smooth
integrands, but a tilted measure's total variation exceeds its signal, by ≈ f per level and
active child, so the relative round-off grows with depth and fan-in.

**moments** (large fan-in, few active children): with c_u the untilted mean of K_u and the
tilted central moments m_r^u = E[(K_u − c_u)^r·χ_u], n_r^u = E[(K_u − c_u)^r·T_u·χ_u],
write Σ_v = s + Δ with s = b² + (Σ_{inactive} K_w + Σ_{active} c_u)/f (its law is the
*background*, shared by every type) and Δ = Σ_{active}(K_u − c_u)/f. Taylor's formula gives

    m_r^v = Σ_t D_t · E_s[ [x^t] (G(s+x) − c_v)^r ],   D_t = E[Δ^t χ] = t!·[x^t] Π_u M_u(x/f),

with M_u(x) = Σ_r m_r^u x^r / r!, and similarly for n_r^v (terms with A + B·Σ, with the
inactive children's T weights, and with each active child's n^u). The expectations E_s[·]
are tensors shared per (level, number of active children a). No cancellation happens between
large terms: the smallness of λ is carried by the D_t. The series converges geometrically
with ratio κ ≈ a·ρ_T/(f·radius), ρ_T = (E|K_u − c_u|^T)^{1/T}, radius = distance from the
mean pre-activation to the singularity of G; moments are computed where κ ≤ ``kappa``.

Every type gets grid (or exact) atoms; where κ is small it also gets moments, and each use
(by a parent, or at the readout) takes the representation with the smaller error estimate.

Error estimate per type (column ``error_bound``): round-off of the signed sums (measure mode),
the size of the last Taylor terms kept (t = T−1, T; the series converges geometrically with
ratio ≈ |Δ|/distance to the singularity of G), the mass of background atoms too close to a
singularity to expand (bounded by mass × sup|integrand| × total variations), propagated to the
root to first order; the caller adds the difference with a run on a grid half as fine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from infwidth.eigenspaces.jets import NodeMap, series_mul, toeplitz
from infwidth.eigenspaces.measures import Atoms, convolve, power, project
from infwidth.eigenspaces.tree_types import TreeSpec

__all__ = ["RecursionOptions", "tree_eigenvalues"]

_EPS = np.finfo(np.float64).eps
LeafFn = Callable[[int, int, "RecursionOptions"], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class RecursionOptions:
    """Numerical settings of the recursion.

    grid_points: nodes of the grids of background laws and grid measures.
    tensor_points: nodes of the background laws integrated in moment mode.
    order: Lagrange order of the moment-preserving projections.
    taylor: Taylor order T of the moment mode.
    exact_atoms: largest exact background law (atoms) kept in measure mode.
    exact_pairs: largest exact convolution (atom pairs) per type in measure mode.
    quad_points: Gauss–Jacobi nodes per sphere patch.
    kappa: above this Taylor ratio a·ρ_T/(f·radius), a type whose children are all
        measures stays a (grid) measure instead of switching to moments.
    force_moment / force_grid: skip the exact measure mode at levels ≥ 1 (testing).
    """

    grid_points: int = 257
    tensor_points: int = 129
    order: int = 9
    taylor: int = 28
    exact_atoms: int = 30000
    exact_pairs: int = 3_000_000
    quad_points: int = 96
    kappa: float = 0.3
    force_moment: bool = False
    force_grid: bool = False

    def coarse(self) -> "RecursionOptions":
        return replace(self, grid_points=self.grid_points // 2 + 1,
                       tensor_points=self.tensor_points // 2 + 1,
                       quad_points=max(self.quad_points // 2, 8))


@dataclass
class Moments:
    """Normalised tilted moments μ̂_r = m_r/r!, ν̂_r = n_r/r! with absolute error vectors."""

    mu: np.ndarray
    nu: np.ndarray | None
    emu: np.ndarray
    enu: np.ndarray | None
    tv: float


def _fact(n: int) -> np.ndarray:
    return np.array([math.factorial(k) for k in range(n)], dtype=np.float64)


def _to_moments(a: Atoms, c: float, R: int, depth_factor: float) -> Moments:
    y = a.x - c
    pw = y[None, :] ** np.arange(R + 1)[:, None]
    inv = 1.0 / _fact(R + 1)
    mu = (pw @ a.w) * inv
    emu = depth_factor * _EPS * (np.abs(pw) @ np.abs(a.w)) * inv
    nu = enu = None
    if a.wt is not None:
        nu = (pw @ a.wt) * inv
        enu = depth_factor * _EPS * (np.abs(pw) @ np.abs(a.wt)) * inv
    mu[0] = 0.0  # E[χ] = 0 for a non-constant eigenfunction
    return Moments(mu, nu, emu, enu, a.tv)


def _shift_series(v: np.ndarray, f: float, T: int) -> np.ndarray:
    """v(x/f) truncated at order T (v padded with zeros)."""
    out = np.zeros(T + 1)
    n = min(len(v), T + 1)
    out[:n] = v[:n] * float(f) ** (-np.arange(n, dtype=np.float64))
    return out


def _prod_series(series: list[np.ndarray], T: int) -> np.ndarray:
    out = np.zeros(T + 1)
    out[0] = 1.0
    for s in series:
        out = np.convolve(out, s)[:T + 1]
    return out


class _Tensors:
    """E_s[[x^t] φ_r(s + x)] over one background law (see module docstring), with
    φ_r = (G − c)^r (C1), (G − c)^r·(A + B·Σ) (C2), and (G − c)^r·B under the T-weighted (C3)
    and plain (C4) laws; ``*a`` are the same sums of absolute values."""

    def __init__(self, nm: NodeMap, law: Atoms, c: float, T: int, R: int, ntk: bool,
                 min_radius: float, n_nodes: int, order: int):
        if len(law) > n_nodes:
            law = project(law, n_nodes, order, float(law.x[0]), float(law.x[-1]))
        s, p = law.x, law.w
        pt = law.wt if law.wt is not None else np.zeros_like(p)
        keep = (nm.radius(s) >= min_radius) & ((p != 0) | (pt != 0))
        self.drop_p = float(np.abs(p[~keep]).sum())
        self.drop_pt = float(np.abs(pt[~keep]).sum())
        g, a, b = nm.values(s)
        self.sup_dev = float(np.max(np.abs(g - c))) if len(g) else 0.0
        self.sup_ab = float(np.max(np.abs(a + b * s))) if len(g) else 0.0
        self.sup_b = float(np.max(np.abs(b))) if len(g) else 0.0
        s, p, pt = s[keep], p[keep], pt[keep]
        G, A, B = nm.jets(s, T)
        G[:, 0] -= c
        tg = toeplitz(G)                                  # (N, T+1, T+1)
        P = np.empty((len(s), T + 1, R + 1))              # P[i, t, r] = [x^t](G − c)^r
        P[:, :, 0] = 0.0
        P[:, 0, 0] = 1.0
        for r in range(1, R + 1):
            P[:, :, r] = np.einsum("itu,iu->it", tg, P[:, :, r - 1])
        self.C1, self.C1a = self._reduce(P, p)
        if ntk:
            sx = np.zeros_like(G)
            sx[:, 0], sx[:, 1] = s, 1.0
            ab = A + series_mul(B, sx)
            PAB, PB = toeplitz(ab) @ P, toeplitz(B) @ P
            self.C2, self.C2a = self._reduce(PAB, p)
            self.C3, self.C3a = self._reduce(PB, pt)
            self.C4, self.C4a = self._reduce(PB, p)

    @staticmethod
    def _reduce(P: np.ndarray, p: np.ndarray):
        return np.einsum("i,itr->tr", p, P), np.einsum("i,itr->tr", np.abs(p), np.abs(P))


def _combine(ten: _Tensors, mus: list, nus: list, emus: list, tvs: list, f: int, T: int,
             R: int, ntk: bool, tmax_child: float, nus_err: list | None) -> Moments:
    """Moments of a node from its active children's moments (moment mode)."""
    fact = _fact(T + 1)
    Dh = _prod_series(mus, T)
    D = Dh * fact
    absmus = [np.abs(m) for m in mus]
    eD = np.zeros(T + 1)
    for i, e in enumerate(emus):
        eD += _prod_series([e] + [absmus[k] for k in range(len(mus)) if k != i], T)
    eD *= fact
    tv = float(np.prod(tvs))
    invr = 1.0 / _fact(R + 1)
    tail = [T - 1, T]

    def trunc(Dv, Ca):
        return 2.0 * (np.abs(Dv[tail]) @ Ca[tail])

    m = D @ ten.C1
    em = eD @ ten.C1a + trunc(D, ten.C1a) + ten.drop_p * ten.sup_dev ** np.arange(R + 1) * tv
    mu, emu = m * invr, em * invr
    mu[0] = 0.0
    nu = enu = None
    if ntk:
        n = D @ (ten.C2 + ten.C3 / f)
        en = (eD @ (ten.C2a + ten.C3a / f) + trunc(D, ten.C2a + ten.C3a / f)
              + (ten.drop_p * ten.sup_ab + ten.drop_pt * ten.sup_b / f)
              * ten.sup_dev ** np.arange(R + 1) * tv)
        for i, nv in enumerate(nus):
            if nv is None:
                continue
            others = [mus[k] for k in range(len(mus)) if k != i]
            Du = _prod_series([nv] + others, T) * fact
            eDu = _prod_series([nus_err[i]] + [absmus[k] for k in range(len(mus)) if k != i],
                               T) * fact
            for k in range(len(mus)):
                if k != i:
                    rest = [absmus[r] for r in range(len(mus)) if r not in (i, k)]
                    eDu += _prod_series([np.abs(nv), emus[k]] + rest, T) * fact
            n = n + (Du @ ten.C4) / f
            en = en + (eDu @ ten.C4a + trunc(Du, ten.C4a)) / f \
                + ten.drop_p * ten.sup_b * tmax_child * ten.sup_dev ** np.arange(R + 1) * tv / f
        nu, enu = n * invr, en * invr
    return Moments(mu, nu, emu, enu, tv)




# --------------------------------------------------------------------------------------
# Levels: background laws
# --------------------------------------------------------------------------------------
@dataclass
class Level:
    """Background (untilted) law of one level and what its types need.

    bg: law of K with T weights; c = E[K]; dev = max|K − c| on the support; tmax = T(x, x).
    exact: bg and the types' atoms are exact. Otherwise ``bgc`` is the child's law on a grid
    (``x0``…``x1``), ``rho_t`` = (E|K_child − c_child|^T)^{1/T} and ``r_typ`` the distance
    of the mean pre-activation to the nearest singularity of the node map.
    """

    f: int
    nm: NodeMap
    bg: Atoms
    c: float
    dev: float
    tmax: float
    exact: bool
    bgc: Atoms | None = None
    x0: float = 0.0
    x1: float = 0.0
    rho_t: float = 0.0
    r_typ: float = 1.0
    cache: dict = field(default_factory=dict)
    tensors: dict = field(default_factory=dict)

    def kappa(self, a: int) -> float:
        """Ratio of the Taylor series of the moment mode with a active children."""
        return a * self.rho_t / (self.f * self.r_typ)


def _push(nm: NodeMap, sat: Atoms, f: int, ntk: bool) -> Atoms:
    """(K, T) laws of a node from the law of its pre-activation s and the summed T weights of
    its children: K = G(s), T weight = A·w + B·(s·w + wt/f)."""
    g, a, b = nm.values(sat.x)
    wt = a * sat.w + b * (sat.x * sat.w + sat.wt / f) if ntk else None
    return Atoms(g, sat.w, wt)


def _leaf_background(spec: TreeSpec, leaf: LeafFn, opts: RecursionOptions, ntk: bool,
                     tmax: float) -> Level:
    nm, b2 = spec.maps[0], spec.b2
    t, p = leaf(spec.n0, 0, opts)
    s = b2 + t
    bg = _push(nm, Atoms(s, p, np.zeros_like(p) if ntk else None), 1, ntk)
    c = float(bg.x @ bg.w)
    return Level(spec.n0, nm, bg, c, float(np.max(np.abs(bg.x[bg.w != 0] - c))), tmax, True)


def _exact_feasible(child: Level, f: int, pats: list, states: dict,
                    opts: RecursionOptions) -> bool:
    """Exact measures at this level stay within ``exact_atoms`` (background) and
    ``exact_pairs`` (each type's convolution)."""
    if opts.force_moment or opts.force_grid or not child.exact:
        return False
    n = len(child.bg)
    if math.comb(n + f - 1, f) > opts.exact_atoms:
        return False
    for p in pats:
        a = len(p)
        size = math.comb(n + f - a - 1, f - a) if f > a else 1
        for cp in p:
            size *= len(states[cp]["atoms"])
        if size > opts.exact_pairs:
            return False
    return True


def _level_background(spec: TreeSpec, ell: int, child: Level, exact: bool, ntk: bool,
                      opts: RecursionOptions, tmax: float) -> Level:
    f, b2, nm, T = spec.fan_in[ell], spec.b2, spec.maps[ell], opts.taylor
    if exact:
        cache: dict = {}
        acc = power(child.bg, f, cache)
        bg = _push(nm, Atoms(b2 + acc.x / f, acc.w, acc.wt), f, ntk)
        c = float(bg.x @ bg.w)
        return Level(f, nm, bg, c, float(np.max(np.abs(bg.x - c))), tmax, True, child.bg,
                     cache=cache)
    N, q = opts.grid_points, opts.order
    x0, x1 = float(child.bg.x[0]), float(child.bg.x[-1])
    bgc = child.bg if child.bg.grid or len(child.bg) <= 2 else project(child.bg, N, q, x0, x1)
    rho_t = float(np.abs(child.bg.w) @ np.abs(child.bg.x - child.c) ** T) ** (1.0 / T)
    lev = Level(f, nm, child.bg, 0.0, 0.0, tmax, False, bgc, x0, x1, rho_t,
                float(nm.radius(np.array([b2 + child.c]))[0]))
    s0 = _law(lev, child, 0, opts)
    bg = _push(nm, s0, f, ntk)
    lev.c = float(bg.x @ bg.w)
    lo, hi = (float(v) for v in nm.values(np.array([b2 + x0, b2 + x1]))[0])
    lev.bg = project(bg, N, q, lo, hi) if len(bg) > N else bg
    lev.dev = float(np.max(np.abs(lev.bg.x - lev.c)))
    return lev


def _law(lev: Level, child: Level, a: int, opts: RecursionOptions) -> Atoms:
    """Background law of s = b² + (Σ_{f−a inactive} K_w + a·c_child)/f, with the inactive
    children's summed T weights; on a grid over its support when it has > grid_points atoms."""
    f, b2 = lev.f, lev.nm.b2
    s = power(lev.bgc, f - a, lev.cache)
    s = Atoms(b2 + (s.x + a * child.c) / f, s.w, s.wt, s.grid)
    if len(s) <= opts.grid_points:
        return s
    lo = b2 + ((f - a) * lev.x0 + a * child.c) / f
    hi = b2 + ((f - a) * lev.x1 + a * child.c) / f
    return project(s, opts.grid_points, opts.order, lo, hi)


# --------------------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------------------
def _child_moments(st: dict, child: Level, T: int, depth_factor: float) -> Moments:
    """The child's tilted moments: native ones or those of its measure, whichever has the
    smaller error on m_1."""
    if st.get("converted") is None:
        st["converted"] = _to_moments(st["atoms"], child.c, T, depth_factor)
    nat, conv = st.get("native"), st["converted"]
    if nat is not None and len(nat.mu) >= T + 1 and nat.emu[1] <= conv.emu[1]:
        return nat
    return conv


def _atoms_state(spec: TreeSpec, lev: Level, child: Level, p: tuple, cstates: dict, ntk: bool,
                 opts: RecursionOptions) -> Atoms:
    f, b2 = lev.f, spec.b2
    acc = power(lev.bgc, f - len(p), lev.cache)
    for cp in p:
        ca = cstates[cp]["atoms"]
        same = ca.grid and len(ca) == len(lev.bgc) and ca.x[0] == lev.x0 and ca.x[-1] == lev.x1
        if not lev.exact and not same:
            ca = project(ca, len(lev.bgc), opts.order, lev.x0, lev.x1)
        acc = convolve(acc, ca)
    out = _push(lev.nm, Atoms(b2 + acc.x / f, acc.w, acc.wt), f, ntk)
    if lev.exact:
        return out
    return project(out, len(lev.bg), opts.order, float(lev.bg.x[0]), float(lev.bg.x[-1]))


def _moment_state(spec: TreeSpec, lev: Level, child: Level, p: tuple, cstates: dict,
                  ntk: bool, opts: RecursionOptions, R: int, depth_factor: float) -> Moments:
    f, T, a = lev.f, opts.taylor, len(p)
    if a not in lev.tensors:
        lev.tensors[a] = _Tensors(lev.nm, _law(lev, child, a, opts), lev.c, T, R, ntk,
                                  2.0 * a * lev.rho_t / f, opts.tensor_points, opts.order)
    ten = lev.tensors[a]
    ms = [_child_moments(cstates[cp], child, T, depth_factor) for cp in p]
    return _combine(ten, [_shift_series(m.mu, f, T) for m in ms],
                    [_shift_series(m.nu, f, T) if ntk else None for m in ms],
                    [_shift_series(m.emu, f, T) for m in ms], [m.tv for m in ms], f, T, R, ntk,
                    child.tmax, [_shift_series(m.enu, f, T) if ntk else None for m in ms])


def _leaf_moments(spec: TreeSpec, lev: Level, j: int, ntk: bool, opts: RecursionOptions,
                  R: int) -> Moments:
    """Patch moments with the n0 coordinates as children (law ±1, E[z^r·z] = [r odd])."""
    from scipy.stats import binom  # here: scipy.stats takes 0.9 s to import

    n0, b2, T = spec.n0, spec.b2, opts.taylor
    m = np.arange(n0 - j + 1)
    law = Atoms(b2 + (n0 - j - 2.0 * m) / n0, binom.pmf(m, n0 - j, 0.5),
                np.zeros(n0 - j + 1) if ntk else None).trimmed()
    if len(law) > opts.grid_points:
        law = project(law, opts.grid_points, opts.order, float(law.x.min()), float(law.x.max()))
    ten = _Tensors(lev.nm, law, lev.c, T, R, ntk, 2.0 * j / n0, opts.tensor_points, opts.order)
    z = np.zeros(T + 1)
    z[1::2] = 1.0 / _fact(T + 1)[1::2]
    zs = _shift_series(z, n0, T)
    return _combine(ten, [zs] * j, [None] * j, [np.zeros(T + 1)] * j, [1.0] * j, n0, T, R,
                    ntk, 0.0, [None] * j)


def _leaf_native(spec: TreeSpec, domain: str, j: int) -> bool:
    """Expand the patch in its coordinates when the exact Krawtchouk sum would cancel
    badly (relative loss ≈ n0^{j/2}·eps) and the expansion converges fast (j/n0 small)."""
    return domain == "hypercube" and spec.n0 >= 64 and spec.n0 ** (j / 2) > 1e6


def _best(st: dict, child_c: float | None, ntk: bool, T: int, depth_factor: float) -> str:
    """The representation of a type state with the smaller error estimate on λ-like sums."""
    if st.get("native") is None:
        return "atoms"
    at, m = st["atoms"], st["native"]
    e_at = depth_factor * _EPS * (float(np.abs(at.x - (child_c or 0.0)) @ np.abs(at.w))
                                  + (float(np.abs(at.wt).sum()) if ntk else 0.0))
    e_m = float(m.emu[1]) + (float(m.enu[0]) if ntk else 0.0)
    return "native" if e_m < e_at else "atoms"


def tree_eigenvalues(spec: TreeSpec, kind: str, domain: str, pats: list[list], roots: list,
                     opts: RecursionOptions, leaf: LeafFn) -> dict[Any, tuple[float, float, str]]:
    """{root pattern: (eigenvalue, error estimate, representation)}, representation "atoms"
    (exact measures), "grid" (grid measures), "moments" or "zero" (linear readout)."""
    ntk = kind == "ntk"
    H, T = spec.n_levels, opts.taylor
    tmaxs, sig, theta = [], 1.0 + spec.b2, 1.0 + spec.b2
    for nm in spec.maps:
        g, a, b = nm.values(np.array([sig]))
        tmaxs.append(float(abs(a[0] + b[0] * theta)))
        sig = spec.b2 + float(g[0])
        theta = sig + tmaxs[-1]
    depth_factor = 32.0 * (H + 2)
    R_of = [T] * (H - 1) + [1]
    states: list[dict] = [dict() for _ in range(H)]
    lev = _leaf_background(spec, leaf, opts, ntk, tmaxs[0])
    for j in pats[0]:
        tj, wj = leaf(spec.n0, j, opts)
        sj = spec.b2 + tj
        st = {"atoms": _push(spec.maps[0], Atoms(sj, wj, np.zeros_like(wj) if ntk else None),
                             1, ntk)}
        if _leaf_native(spec, domain, j):
            st["native"] = _leaf_moments(spec, lev, j, ntk, opts, R_of[0])
        states[0][j] = st
    for ell in range(1, H):
        child = lev
        exact = _exact_feasible(child, spec.fan_in[ell], pats[ell], states[ell - 1], opts)
        lev = _level_background(spec, ell, child, exact, ntk, opts, tmaxs[ell])
        for p in pats[ell]:
            st = {"atoms": _atoms_state(spec, lev, child, p, states[ell - 1], ntk, opts)}
            if not exact and not opts.force_grid and \
                    (opts.force_moment or lev.kappa(len(p)) <= opts.kappa):
                cst = {cp: states[ell - 1][cp] for cp in p}
                st["native"] = _moment_state(spec, lev, child, p, cst, ntk, opts, R_of[ell],
                                             depth_factor)
            states[ell][p] = st
    # readout (linear): λ = E[(b² + mean_u K_u)·χ] (+ E[mean_u T_u·χ] for the NTK)
    fR, b2 = spec.readout_fan_in, spec.b2
    out: dict[Any, tuple[float, float, str]] = {}
    for r in roots:
        if len(r) == 0:
            bg = lev.bg
            lam = b2 + float(bg.x @ bg.w) + (float(bg.wt.sum()) if ntk else 0.0)
            err = depth_factor * _EPS * (abs(b2) + float(np.abs(bg.x) @ np.abs(bg.w))
                                         + (float(np.abs(bg.wt).sum()) if ntk else 0.0))
            rep = "atoms" if lev.exact else "grid"
        elif len(r) > 1:
            lam, err, rep = 0.0, 0.0, "zero"
        else:
            st = states[H - 1][r[0]]
            use = "native" if opts.force_moment and "native" in st else \
                _best(st, None, ntk, T, depth_factor)
            if use == "native":
                m = st["native"]
                lam = float(m.mu[1]) + (float(m.nu[0]) if ntk else 0.0)
                err = float(m.emu[1]) + (float(m.enu[0]) if ntk else 0.0)
                rep = "moments"
            else:
                at = st["atoms"]
                lam = float(at.x @ at.w) + (float(at.wt.sum()) if ntk else 0.0)
                err = depth_factor * _EPS * (float(np.abs(at.x) @ np.abs(at.w))
                                             + (float(np.abs(at.wt).sum()) if ntk else 0.0))
                rep = "atoms" if lev.exact else "grid"
            lam, err = lam / fR, err / fR
        out[r] = (lam, err, rep)
    return out
