"""Fused CPU kernels of the native engine, compiled by numba.

:class:`NumbaOps` replaces the two operations that dominate :class:`NumpyOps`' time by
one-pass compiled loops that release the GIL (so the engine's tile threads run in parallel):

- ``dual``: the whole ReLU/erf dual of Σ and Θ in one pass per element, instead of ~13
  in-place numpy passes. XLA:CPU and libm evaluate ``acos`` one scalar at a time; here
  ``acos``/``asin`` use the rational approximation of fdlibm (Sun Microsystems, 1993:
  asin(x) = x + x·z·P(z)/Q(z), z = x², and asin(x) = π/2 − 2·asin(√((1 − x)/2)) above
  0.5), branch-free, so LLVM vectorises the loop (within 4ε of numpy's ``arccos``/``arcsin``,
  ``tests/test_native_engine.py``; the rates of the options: ``benchmarks/cpu_dual_options.py``).
- ``conv``: the q diagonal taps per axis of a stride-1 convolution of the covariance, one
  pair's (P, P) block at a time (in cache), separable over the axes, the innermost loop a
  contiguous run of the last axis (no padded copies: each tap's valid run is precomputed,
  two runs for circular padding). The diagonal layout's conv adds whole (t1, t2) blocks per
  tap, all taps of an output position in one pass.

Everything else (first Gram, pooling, readouts) stays numpy; formulas in
:mod:`infwidth.kernels.native_ops`.

**float32.** On float32 arrays the dual and the fused pass compute in float32 end to end (every
constant in the array's dtype, fdlibm's float ``asinf`` rational; :func:`_arc`), twice the
AVX2 lanes of float64 and faster division and square roots; the GAP lane sums stay float64.
Why that is safe (u = 2⁻²⁴): each fused layer rounds a few times (taps, affine map,
c = s·r1·r2, the dual's evaluation within 2 ulp), and the NNGP duals do not amplify errors
of c: relu's J1'(c) = (π − θ)/π ≤ 1 (√(1 − c²) formed as √((1 − c)(1 + c)), 1 − c exact
near 1), erf's asin'(c) = 1/√(1 − c²) with |c| ≤ 2v/(1 + 2v) away from 1. So the Gram's
error relative to its largest entry stays within a few ulp per layer (≤ 2.5 ulp measured
on the GAP, pooling and Myrtle tests). The one ill-conditioned quantity is relu's
K̇ = (π − θ)/2π at c → 1 (dK̇/dc = 1/(2π sin θ)): where two inputs' patches are
near-duplicates (1 − c ≲ 100u), the few-ulp error of a float32 c costs K̇ up to √(2δc)/2π
(measured 5.4e-5 relative at 1 − c = u, ``tests/test_fused.py``); exact self-pairs are
unaffected.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import lru_cache

import numba as nb
import numpy as np
from numba import types
from numba.extending import overload

from infwidth.architectures.activations import get_activation
from infwidth.architectures.layers import Conv
from infwidth.kernels.native_ops import NumpyOps, _view4, conv_taps, gram_layout

__all__ = ["NumbaOps", "fused_steps"]

_JIT = dict(nogil=True, cache=True, error_model="numpy")

# fdlibm e_asin.c coefficients: asin(x) = x + x·z·P(z)/Q(z), z = x², on |x| ≤ 0.5.
_P0, _P1, _P2 = 1.66666666666666657415e-01, -3.25565818622400915405e-01, \
    2.01212532134862925881e-01
_P3, _P4, _P5 = -4.00555345006794114027e-02, 7.91534994289814532176e-04, \
    3.47933107596021167570e-05
_Q1, _Q2, _Q3, _Q4 = -2.40339491173441421878e+00, 2.02094576023350569471e+00, \
    -6.88283971605453293030e-01, 7.70381505559019352791e-02
_HALF_PI = 0.5 * math.pi
# fdlibm e_asinf.c (float): asin(x) = x + x·z·P(z)/Q(z), P of degree 2, Q of degree 1
# (Remez error 0.13 float32 ulp on |x| ≤ 0.5, measured on a 2·10⁶ grid).
_PF0, _PF1, _PF2, _QF1 = 1.6666586697e-01, -4.2743422091e-02, -8.6563630030e-03, \
    -7.0662963390e-01


@nb.njit(inline="always", **_JIT)
def _asin_acos(c):
    """(asin c, acos c) for c in [−1, 1], branch-free (selects only)."""
    a = abs(c)
    big = a > 0.5
    z = (1.0 - a) * 0.5 if big else c * c
    r = z * (_P0 + z * (_P1 + z * (_P2 + z * (_P3 + z * (_P4 + z * _P5))))) / (
        1.0 + z * (_Q1 + z * (_Q2 + z * (_Q3 + z * _Q4))))
    sq = math.sqrt(z)
    two = 2.0 * (sq + sq * r)  # acos|c| = 2·asin√z when |c| > 0.5
    small = c + c * r  # asin c when |c| ≤ 0.5
    asin_big = _HALF_PI - two if c > 0 else two - _HALF_PI
    acos_big = two if c > 0 else math.pi - two
    return (asin_big if big else small), (acos_big if big else _HALF_PI - small)


@nb.njit(inline="always", **_JIT)
def _asin_acos32(c):
    """:func:`_asin_acos` in float32 arithmetic, with e_asinf.c's shorter rational."""
    f = np.float32
    half, one, two, hpi = f(0.5), f(1.0), f(2.0), f(_HALF_PI)
    a = abs(c)
    big = a > half
    z = (one - a) * half if big else c * c  # 1 − a exact (Sterbenz) when a > 0.5
    r = z * (f(_PF0) + z * (f(_PF1) + z * f(_PF2))) / (one + z * f(_QF1))
    sq = math.sqrt(z)
    tw = two * (sq + sq * r)
    small = c + c * r
    asin_big = hpi - tw if c > 0 else tw - hpi
    acos_big = tw if c > 0 else f(math.pi) - tw
    return (asin_big if big else small), (acos_big if big else hpi - small)


def _arc(c):
    """(asin c, acos c, √(1 − c²)) for c in [−1, 1], in the precision of c (numba only)."""
    raise NotImplementedError("compiled only")


@overload(_arc, jit_options=dict(nogil=True, error_model="numpy"))
def _arc_impl(c):
    """float64: fdlibm's asin and √(1 − c·c), as the float64 engine has always computed.
    float32: e_asinf.c's rational in float32, and √((1 − c)(1 + c)): near c = 1 the rounding
    of c·c (up to u/2, u = 2⁻²⁴, once k²u > 1/2 for c = 1 − ku) costs √(1 − c²) a relative
    u/(4(1 − c²)), 700 ulp at 1 − c ≈ 2e-4 (an absolute 13 ulp), while 1 − c is exact
    there (Sterbenz) and the product keeps 2 ulp (``tests/test_fused.py``)."""
    if c == types.float32:
        def impl32(c):
            s, a = _asin_acos32(c)
            one = np.float32(1.0)
            return s, a, math.sqrt((one - c) * (one + c))
        return impl32

    def impl(c):
        s, a = _asin_acos(c)
        return s, a, math.sqrt(1.0 - c * c)
    return impl


@nb.njit(**_JIT)
def _arc_array(c):
    """Elementwise (asin c, acos c, √(1 − c²)) of a 1-D array, in its dtype (for tests)."""
    s, a, r = np.empty_like(c), np.empty_like(c), np.empty_like(c)
    for i in range(c.size):
        s[i], a[i], r[i] = _arc(c[i])
    return s, a, r


def _asin_acos_array(c):
    """Elementwise (asin c, acos c) of a 1-D array (for tests)."""
    return _arc_array(c)[:2]


@nb.njit(inline="always", **_JIT)
def _relu_run(s, t, has_t, r1, q1, r2, q2):
    """One contiguous run, relu: c = s·r1·r2 clipped to [−1, 1], θ = acos c,
    K = √(1 − c²)·q1·q2 + (π − θ)·s, K̇Θ = (π − θ)·Θ (unscaled; the caller applies 1/2π),
    in the dtype of ``s`` (:func:`_arc`)."""
    dt = s.dtype.type
    lo, hi, pi = dt(-1.0), dt(1.0), dt(math.pi)
    if has_t:
        for b in range(s.size):
            c = min(max(s[b] * r1 * r2[b], lo), hi)
            _, th, sn = _arc(c)
            w = pi - th
            s[b] = sn * q1 * q2[b] + w * s[b]
            t[b] = w * t[b]
    else:
        for b in range(s.size):
            c = min(max(s[b] * r1 * r2[b], lo), hi)
            _, th, sn = _arc(c)
            w = pi - th
            s[b] = sn * q1 * q2[b] + w * s[b]


@nb.njit(inline="always", **_JIT)
def _erf_run(s, t, has_t, r1, r2):
    """One contiguous run, erf: c = s·r1·r2, K = asin c, K̇Θ = Θ·r1·r2/√(1 − c²)
    (unscaled; the caller applies 2/π), in the dtype of ``s`` (:func:`_arc`)."""
    if has_t:
        for b in range(s.size):
            c = s[b] * r1 * r2[b]
            sa, _, sn = _arc(c)
            s[b] = sa
            t[b] = t[b] * r1 * r2[b] / sn
    else:
        for b in range(s.size):
            s[b] = _arc(s[b] * r1 * r2[b])[0]


@nb.njit(**_JIT)
def _dual_rows(act, s, t, has_t, r1, q1, r2, q2):
    """Diagonal layout: s, t (R, A, B); r1, q1 (R, A); r2, q2 (R, A or 1, B)."""
    n_r, n_a, _ = s.shape
    for i in range(n_r):
        for a in range(n_a):
            a2 = a if r2.shape[1] > 1 else 0
            if act == 0:
                _relu_run(s[i, a], t[i, a], has_t, r1[i, a], q1[i, a], r2[i, a2], q2[i, a2])
            else:
                _erf_run(s[i, a], t[i, a], has_t, r1[i, a], r2[i, a2])


@nb.njit(**_JIT)
def _dual_pairs(act, s, t, has_t, r1, q1, r2, q2):
    """Full layout: s, t (A, B, R, Q); r1, q1 (A, R); r2, q2 (A or 1, B, Q)."""
    n_a, n_b, n_r, _ = s.shape
    for a in range(n_a):
        a2 = a if r2.shape[0] > 1 else 0
        for b in range(n_b):
            for i in range(n_r):
                if act == 0:
                    _relu_run(s[a, b, i], t[a, b, i], has_t, r1[a, i], q1[a, i], r2[a2, b],
                              q2[a2, b])
                else:
                    _erf_run(s[a, b, i], t[a, b, i], has_t, r1[a, i], r2[a2, b])


@nb.njit(inline="always", **_JIT)
def _add_shifted(acc, src, lo, hi, d):
    """acc[lo:hi] += src[lo + d:hi + d], through views (an index j + d that numba cannot
    prove non-negative costs a wraparound select per element and blocks vectorisation:
    measured 4× slower)."""
    dst, sv = acc[lo:hi], src[lo + d:hi + d]
    for j in range(dst.size):
        dst[j] += sv[j]


@nb.njit(inline="always", **_JIT)
def _axpy(acc, x, w, assign):
    """acc = w·x (``assign``) or acc += w·x."""
    if assign:
        for j in range(acc.size):
            acc[j] = w * x[j]
    else:
        for j in range(acc.size):
            acc[j] += w * x[j]


@nb.njit(inline="always", **_JIT)
def _affine_run(s, t, has_t, has_tin, al_s, al_t, beta):
    """S = al_s·s + beta, then T = al_t·t + S (T = S without an input Θ), in one pass."""
    if not has_t:
        for j in range(s.size):
            s[j] = al_s * s[j] + beta
    elif has_tin:
        for j in range(s.size):
            s[j] = al_s * s[j] + beta
            t[j] = al_t * t[j] + s[j]
    else:
        for j in range(s.size):
            s[j] = al_s * s[j] + beta
            t[j] = s[j]


@nb.njit(inline="always", **_JIT)
def _add_tap(acc, src, lo, hi, d, r0, r1, runs):
    """One tap of the j side: the flat shift over [lo, hi), then the border entries corrected
    from the true source in place of the shifted one, in runs r0…r1 of ``runs`` (rows
    (j, stride, count, true − j, shifted − j, has true, has shifted); no true source: zero
    padding, no shifted one: outside [lo, hi)). A contiguous run is one vectorised pass
    (a VALID map's rows, a wrapped row); a strided one (a row end's wrap) needs no index
    loads."""
    _add_shifted(acc, src, lo, hi, d)
    zero = src.dtype.type(0.0)
    for r in range(r0, r1):
        j, st, cnt, so, wo = runs[r, 0], runs[r, 1], runs[r, 2], runs[r, 3], runs[r, 4]
        hs, hw = runs[r, 5] != 0, runs[r, 6] != 0
        if st == 1:
            dst = acc[j:j + cnt]
            vs = src[j + so:j + so + cnt] if hs else src[:0]
            vw = src[j + wo:j + wo + cnt] if hw else src[:0]
            if hs and hw:
                for k in range(cnt):
                    dst[k] += vs[k] - vw[k]
            elif hs:
                for k in range(cnt):
                    dst[k] += vs[k]
            else:
                for k in range(cnt):
                    dst[k] += zero - vw[k]
        else:
            for k in range(cnt):
                jj = j + st * k
                acc[jj] += (src[jj + so] if hs else zero) - (src[jj + wo] if hw else zero)


@nb.njit(**_JIT)
def _lin_act_pairs(xs, xt, has_tin, pa, pbt, idx0, idx1, shift, lo, hi, rstart, runs,
                   center, al_s, al_t, beta, act, r1, q1, r2, q2, has_t, mode, w0, w1,
                   os_, ot_, gs, gt):
    """Fused conv → affine → dual (→ pooling or GAP) of full covariances, one pair at a time
    and one output plane (i, ·) at a time (in L1):

        S(i, j) = al_s·Σ_a x_Σ(idx(i, a), idx(j, a)) + beta,
        T(i, j) = al_t·Σ_a x_Θ(idx(i, a), idx(j, a)) + S(i, j)   (T = S without an input Θ),

    then the dual of :func:`_relu_run`/:func:`_erf_run` (unscaled), written out (``mode`` 0:
    ``os_``, ``ot_`` (t1, t2, P_out, P_out)), summed over all position pairs in float64 (1:
    GAP, ``gs``, ``gt`` (t1, t2)), or summed over w0×w1 windows of both positions (2: (t1, t2,
    M, M), M = (m0 // w0)·(m1 // w1), VALID pooling's cropped rows and columns skipped): the
    planes of one pooled row i add into one buffer per pooled column (vectorised), each
    buffer then pooled over j once, instead of a scatter-add per plane. ``xs``, ``xt``:
    (t1, t2, n0, n1, N) with N = n0·n1. The j side
    of tap a is the flat shift j + shift[a] over [lo[a], hi[a]) (one long vectorised run),
    corrected at the border entries where the true source differs from the shifted one, in
    runs rstart[a]…rstart[a + 1] of ``runs`` (:func:`_tap_table`). ``r1``, ``q1`` (t1, P),
    ``r2``, ``q2`` (t2, P): the dual's per-position factors. A first layer (``pa``
    (t1, P, c), ``pbt`` (t2, c, P) non-empty) takes its plane from the inputs instead:
    x_Σ(i, ·) = pa[i]·pbt, the first Gram never stored."""
    t1, t2 = r1.shape[0], r2.shape[0]
    m0, q0 = idx0.shape
    m1, nq1 = idx1.shape
    p = m0 * m1
    one = xs.dtype.type(1.0)
    acs = np.empty(p, xs.dtype)
    act_ = np.empty(p, xs.dtype)
    vs_ = np.empty(p)  # float64 lane sums of the GAP readout, whatever the working dtype
    vt_ = np.empty(p)
    mp0, mp1 = (m0 // w0, m1 // w1) if mode == 2 else (0, 0)
    bs_ = np.empty((mp1, p), xs.dtype)  # pooling: one row band's planes per pooled column
    bt_ = np.empty((mp1, p) if has_t else (0, p), xs.dtype)
    for a in range(t1):
        for b in range(t2):
            vs_[:] = 0.0
            vt_[:] = 0.0
            for i0 in range(mp0 * w0 if mode == 2 else m0):
                for i1 in range(mp1 * w1 if mode == 2 else m1):
                    tin = has_t and has_tin
                    if pa.shape[2] > 0:  # the first layer: acs = Σ_k pa[i, k]·pbt[k]
                        _axpy(acs, pbt[b, 0], pa[a, i0 * m1 + i1, 0], True)
                        for k in range(1, pa.shape[2]):
                            _axpy(acs, pbt[b, k], pa[a, i0 * m1 + i1, k], False)
                    elif center >= 0:  # the centre tap is a plain copy: no zeroing pass
                        uc, vc = center // nq1, center % nq1
                        _axpy(acs, xs[a, b, idx0[i0, uc], idx1[i1, vc]], one, True)
                        if tin:
                            _axpy(act_, xt[a, b, idx0[i0, uc], idx1[i1, vc]], one, True)
                    else:
                        acs[:] = 0.0
                        if tin:
                            act_[:] = 0.0
                    for u in range(q0 if pa.shape[2] == 0 else 0):
                        s0 = idx0[i0, u]
                        if s0 < 0:
                            continue
                        for v in range(nq1):
                            s1 = idx1[i1, v]
                            if s1 < 0 or u * nq1 + v == center:
                                continue
                            tap = u * nq1 + v
                            d = shift[tap]
                            f0, f1 = rstart[tap], rstart[tap + 1]
                            _add_tap(acs, xs[a, b, s0, s1], lo[tap], hi[tap], d, f0, f1, runs)
                            if tin:
                                _add_tap(act_, xt[a, b, s0, s1], lo[tap], hi[tap], d, f0, f1,
                                         runs)
                    _affine_run(acs, act_, has_t, has_tin, al_s, al_t, beta)
                    i = i0 * m1 + i1
                    if act == 0:
                        _relu_run(acs, act_, has_t, r1[a, i], q1[a, i], r2[b], q2[b])
                    else:
                        _erf_run(acs, act_, has_t, r1[a, i], r2[b])
                    if mode == 0:
                        os_[a, b, i] = acs
                        if has_t:
                            ot_[a, b, i] = act_
                    elif mode == 1:  # lane-wise sums (a scalar sum is one serial add chain)
                        _add_shifted(vs_, acs, 0, p, 0)
                        if has_t:
                            _add_shifted(vt_, act_, 0, p, 0)
                    else:
                        first = i0 % w0 == 0 and i1 % w1 == 0
                        _axpy(bs_[i1 // w1], acs, one, first)
                        if has_t:
                            _axpy(bt_[i1 // w1], act_, one, first)
                if mode == 2 and i0 % w0 == w0 - 1:  # the band's pooled planes are complete
                    for u in range(mp1):
                        o = (i0 // w0) * mp1 + u
                        _pool_plane(os_[a, b, o], bs_[u], m1, w0, w1, mp0, mp1)
                        if has_t:
                            _pool_plane(ot_[a, b, o], bt_[u], m1, w0, w1, mp0, mp1)
            if mode == 1:
                gs[a, b] = vs_.sum()
                if has_t:
                    gt[a, b] = vt_.sum()


@lru_cache(maxsize=64)
def _tap_table(n: tuple[int, int], q: tuple[int, int], padding: str):
    """Taps of a stride-1 conv of a flat (n0·n1, n0·n1) covariance, for :func:`_lin_act_pairs`:
    per-axis tap indices (q = 1: the identity), and per tap (u, v) of the j side the flat
    shift d with its valid range [lo, hi) and the border entries (j, true source or −1,
    shifted source or −1) where the shift is wrong (a wrap, a row change, or zero padding;
    every entry when the output map differs from the input map: valid padding), as runs
    (:func:`_fix_runs`; 28×28 circular: 332 entries per plane in 20 runs), and the tap
    that copies every entry (the centre; −1 when none), which the pass assigns first."""
    idx = [np.arange(k, dtype=np.int64)[:, None] if f == 1 else conv_taps(k, f, 1, padding)
           for k, f in zip(n, q)]
    m = (idx[0].shape[0], idx[1].shape[0])
    p, nn_ = m[0] * m[1], n[0] * n[1]
    jj = np.arange(p)
    j0, j1 = np.divmod(jj, m[1])
    shift, lo, hi, fstart, fj, fsrc, fwrong = [], [], [], [0], [], [], []
    for u in range(idx[0].shape[1]):
        for v in range(idx[1].shape[1]):
            a, b = idx[0][j0, u], idx[1][j1, v]
            true = np.where((a >= 0) & (b >= 0), a * n[1] + b, -1)
            if m == tuple(n):
                d = (u - (q[0] - 1) // 2) * n[1] + (v - (q[1] - 1) // 2)
                lo_, hi_ = max(0, -d), min(p, nn_ - d)
            else:
                d, lo_, hi_ = 0, 0, 0
            wrong = np.where((jj >= lo_) & (jj < hi_), jj + d, -1)
            bad = np.flatnonzero(true != wrong)
            shift.append(d), lo.append(lo_), hi.append(hi_)
            fj.append(bad), fsrc.append(true[bad]), fwrong.append(wrong[bad])
            fstart.append(fstart[-1] + bad.size)
    runs = [_fix_runs(*f) for f in zip(fj, fsrc, fwrong)]
    rstart = np.cumsum([0] + [len(r) for r in runs])
    ints = [np.asarray(a, np.int64) for a in (shift, lo, hi, rstart)]
    table = np.array([r for rr in runs for r in rr], np.int64).reshape(-1, 7)
    full = [k for k in range(len(shift)) if shift[k] == 0 and lo[k] == 0 and hi[k] == p
            and fstart[k + 1] == fstart[k]]  # a tap that is a plain copy of every entry
    return (idx[0], idx[1], *ints, table, full[0] if full else -1, m)


def _fix_runs(fj: np.ndarray, fsrc: np.ndarray, fwrong: np.ndarray) -> list[tuple]:
    """Border entries j (ascending) with true source fsrc and shifted source fwrong (−1:
    none) as runs (j, stride, count, fsrc − j, fwrong − j, has fsrc, has fwrong): maximal
    arithmetic progressions of j along which both offsets (or their absence) stay fixed."""
    key = [(int(g - j) if g >= 0 else None, int(w - j) if w >= 0 else None)
           for j, g, w in zip(fj, fsrc, fwrong)]
    out, f = [], 0
    while f < len(fj):
        n = f + 1
        st = int(fj[n] - fj[f]) if n < len(fj) and key[n] == key[f] else 1
        while n < len(fj) and key[n] == key[f] and fj[n] - fj[n - 1] == st:
            n += 1
        so, wo = key[f]
        out.append((int(fj[f]), st, n - f, so or 0, wo or 0, so is not None, wo is not None))
        f = n
    return out


@nb.njit(inline="always", **_JIT)
def _pool_plane(out, buf, m1, w0, w1, mp0, mp1):
    """out[J0·mp1 + J1] = Σ of buf (a flat (·, m1) map) over the w0×w1 window (J0, J1)."""
    for k0 in range(mp0):
        row = out[k0 * mp1:(k0 + 1) * mp1]
        for d0 in range(w0):
            src = buf[(k0 * w0 + d0) * m1:(k0 * w0 + d0 + 1) * m1]
            for k1 in range(mp1):
                v = src[k1 * w1]
                for d1 in range(1, w1):
                    v += src[k1 * w1 + d1]
                row[k1] = v if d0 == 0 else row[k1] + v


@nb.njit(**_JIT)
def _conv_rows(x, out, idx0, idx1):
    """Diagonal layout (n0, n1, B) → (m0, m1, B): out[o0, o1] = Σ_taps x[idx0[o0, a],
    idx1[o1, b]] (index −1: zero padding)."""
    m0, q0 = idx0.shape
    m1, q1 = idx1.shape
    nb_ = x.shape[2]
    for o0 in range(m0):
        for o1 in range(m1):
            acc = out[o0, o1]
            acc[:] = 0.0
            for a in range(q0):
                i0 = idx0[o0, a]
                if i0 < 0:
                    continue
                for b in range(q1):
                    i1 = idx1[o1, b]
                    if i1 < 0:
                        continue
                    src = x[i0, i1]
                    for k in range(nb_):
                        acc[k] += src[k]


@nb.njit(inline="always", **_JIT)
def _sum3(out, a, b, c):
    """out = a + b + c (views of equal length)."""
    for j in range(out.size):
        out[j] = a[j] + b[j] + c[j]


@nb.njit(**_JIT)
def _conv_pairs(x, out, z, idx0, idx1, runs, n_runs, zero):
    """Full layout (T, n0, n1, n0, n1) → (T, m0, m1, m0, m1), stride 1, separable, one pair
    at a time in cache: z[i0, ., j0, .] = Σ_a x[., idx0[i0, a], ., idx0[j0, a], .], then
    out[., i0, i1, j0, j1] = Σ_b z[i0, idx1[i1, b], j0, idx1[j1, b]]; the last axis in
    contiguous runs (runs[b, r] = (start, stop, source start), n_runs[b] of them). Filters
    of 3 taps or fewer sum their taps in one loop (``zero``: a zero row for padded taps)."""
    n1 = x.shape[2]
    m0, q0 = idx0.shape
    m1, q1 = idx1.shape
    for p in range(x.shape[0]):
        if q0 == 1 and m0 == x.shape[1]:  # no taps on axis 0 (a 1-D map): z is x
            zp = x[p]
        else:
            zp = z
        for i0 in range(m0 if zp is z else 0):
            for j0 in range(m0):
                zz = z[i0, :, j0, :]
                if q0 <= 3:
                    for i1 in range(n1):
                        a0 = x[p, idx0[i0, 0], i1, idx0[j0, 0]] \
                            if idx0[i0, 0] >= 0 and idx0[j0, 0] >= 0 else zero
                        a1 = x[p, idx0[i0, 1], i1, idx0[j0, 1]] \
                            if q0 > 1 and idx0[i0, 1] >= 0 and idx0[j0, 1] >= 0 else zero
                        a2 = x[p, idx0[i0, 2], i1, idx0[j0, 2]] \
                            if q0 > 2 and idx0[i0, 2] >= 0 and idx0[j0, 2] >= 0 else zero
                        row = zz[i1]
                        for j1 in range(n1):
                            row[j1] = a0[j1] + a1[j1] + a2[j1]
                    continue
                zz[:] = 0.0
                for a in range(q0):
                    s0, t0 = idx0[i0, a], idx0[j0, a]
                    if s0 < 0 or t0 < 0:
                        continue
                    src = x[p, s0, :, t0, :]
                    for i1 in range(n1):
                        for j1 in range(n1):
                            zz[i1, j1] += src[i1, j1]
        for i0 in range(m0):
            for i1 in range(m1):
                for j0 in range(m0):
                    acc = out[p, i0, i1, j0]
                    if q1 == 3 and m1 > 2:  # interior: all three taps valid (or wrapped)
                        s0, s1, s2 = idx1[i1, 0], idx1[i1, 1], idx1[i1, 2]
                        b0 = zp[i0, s0, j0] if s0 >= 0 else zero
                        b1 = zp[i0, s1, j0] if s1 >= 0 else zero
                        b2 = zp[i0, s2, j0] if s2 >= 0 else zero
                        d0, d1, d2 = idx1[1, 0] - 1, idx1[1, 1] - 1, idx1[1, 2] - 1
                        _sum3(acc[1:m1 - 1], b0[1 + d0:m1 - 1 + d0], b1[1 + d1:m1 - 1 + d1],
                              b2[1 + d2:m1 - 1 + d2])
                        for j in (0, m1 - 1):
                            v = 0.0
                            for b in range(3):
                                s1, t1 = idx1[i1, b], idx1[j, b]
                                if s1 >= 0 and t1 >= 0:
                                    v += zp[i0, s1, j0, t1]
                            acc[j] = v
                        continue
                    acc[:] = 0.0
                    for b in range(q1):
                        s1 = idx1[i1, b]
                        if s1 < 0:
                            continue
                        src = zp[i0, s1, j0]
                        for r in range(n_runs[b]):
                            lo, hi, off = runs[b, r, 0], runs[b, r, 1], runs[b, r, 2]
                            _add_shifted(acc, src, lo, hi, off - lo)


@nb.njit(**_JIT)
def _pool_pairs(x, out, w):
    """Full layout (T, n0, n1, n0, n1) → (T, m0, m1, m0, m1): the sum over w×w windows of
    both positions (unscaled), in one pass."""
    _, m0, m1, _, _ = out.shape
    for p in range(x.shape[0]):
        for i0 in range(m0):
            for i1 in range(m1):
                for j0 in range(m0):
                    acc = out[p, i0, i1, j0]
                    acc[:] = 0.0
                    for a0 in range(w):
                        for a1 in range(w):
                            for b0 in range(w):
                                src = x[p, w * i0 + a0, w * i1 + a1, w * j0 + b0]
                                for j1 in range(m1):
                                    for b1 in range(w):
                                        acc[j1] += src[w * j1 + b1]


@nb.njit(**_JIT)
def _bmm(a, b, out, ia, ib):
    """Small batched matmul out[g] = a[ia[g]] @ b[ib[g]] (inner dimension of the first Gram's
    few coordinates; the rows of b contiguous, so the inner loop vectorises)."""
    for g in range(out.shape[0]):
        o, x, y = out[g], a[ia[g]], b[ib[g]]
        o[:] = 0.0
        for p in range(x.shape[0]):
            row = o[p]
            for k in range(x.shape[1]):
                w = x[p, k]
                src = y[k]
                for q in range(src.size):
                    row[q] += w * src[q]


@lru_cache(maxsize=256)
def _axis_runs(n: int, q: int, stride: int, padding: str) -> tuple[np.ndarray, np.ndarray]:
    return _runs(conv_taps(n, q, stride, padding))


def _runs(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Contiguous runs of each tap column of ``idx``: (q, 2, 3) (start, stop, source
    start) and (q,) counts (a circular tap wraps once: two runs; zero padding: one)."""
    m, q = idx.shape
    runs = np.zeros((q, 2, 3), np.int64)
    count = np.zeros(q, np.int64)
    for b in range(q):
        col, start = idx[:, b], 0
        for o in range(1, m + 1):
            if o == m or col[o] != col[o - 1] + 1 or col[o] < 0 or col[o - 1] < 0:
                if col[start] >= 0:
                    runs[b, count[b]] = (start, o, col[start])
                    count[b] += 1
                start = o
    return runs, count


class NumbaOps(NumpyOps):
    """:class:`NumpyOps` with the dual, stride-1 convs and the first Gram (of few
    coordinates) as compiled loops (BLAS called from several tile threads oversubscribes
    its own threads: measured 7× slower on 2 cores)."""

    @staticmethod
    def gram(a: np.ndarray, b: np.ndarray | None, full: bool, pos: tuple[int, ...]):
        """⟨x_a(i), x_b(j)⟩/coords, as :meth:`NumpyOps.gram`."""
        t1, p, c = a.shape
        if b is None or c > 64 or p == 1:
            return NumpyOps.gram(a, b, full, pos)
        t2 = b.shape[0]
        if full:  # pairs (i, j): (P, c) @ (c, P)
            g = np.empty((t1 * t2, p, p), a.dtype)
            ia, ib = np.divmod(np.arange(t1 * t2), t2)
            _bmm(a, np.ascontiguousarray(b.transpose(0, 2, 1)), g, ia, ib)
        else:  # positions p: (t1, c) @ (c, t2)
            g = np.empty((p, t1, t2), a.dtype)
            ia = np.arange(p)
            _bmm(np.ascontiguousarray(a.transpose(1, 0, 2)),
                 np.ascontiguousarray(b.transpose(1, 2, 0)), g, ia, ia)
        return gram_layout(g.reshape((t1, t2, p, p) if full else g.shape), c, full, pos)

    def first_gram(self, a: np.ndarray, b: np.ndarray, full, pos: tuple[int, ...], steps):
        """The first Gram of a tile, or (when :meth:`fuse` computes it inside the first
        layer's pass) the inputs it is made of."""
        if full is True and 0 < a.shape[2] <= 64 and fused_steps(steps, 0, len(pos)):
            bt = np.ascontiguousarray(b.transpose(0, 2, 1)) * (1.0 / a.shape[2])
            return _Patches(a, bt.astype(a.dtype, copy=False), (a.shape[0], b.shape[0]) + pos * 2)
        return self.gram(a, b, full, pos)

    @staticmethod
    def conv(x, layer: Conv, nd: int, full: bool):
        """Σ over the taps of a conv (unscaled), all taps per output element in one pass."""
        if nd == 0 or (full and max(layer.stride) > 1):
            return NumpyOps.conv(x, layer, nd, full)
        sp = x.shape[2:2 + nd] if full else x.shape[:nd]
        axes = list(zip(sp, layer.filter, layer.stride))
        idx = [conv_taps(n, q, s, layer.padding) for n, q, s in axes]
        if nd == 1:
            idx = [np.zeros((1, 1), np.int64)] + idx
            sp = (1,) + tuple(sp)
        m = tuple(i.shape[0] for i in idx)
        if full:
            t1, t2 = x.shape[:2]
            xv = x.reshape(t1 * t2, sp[0], sp[1], sp[0], sp[1])
            out = np.empty((t1 * t2, m[0], m[1], m[0], m[1]), x.dtype)
            z = np.empty((m[0], sp[1], m[0], sp[1]), x.dtype)
            zero = np.zeros(sp[1], x.dtype)
            _conv_pairs(xv, out, z, idx[0], idx[1], *_axis_runs(*axes[-1], layer.padding), zero)
            return out.reshape((t1, t2) + m[2 - nd:] * 2)
        tail = x.shape[nd:]
        out = np.empty(m + (math.prod(tail),), x.dtype)
        _conv_rows(x.reshape(sp + (-1,)), out, idx[0], idx[1])
        return out.reshape(m[2 - nd:] + tail)

    @staticmethod
    def pool(x, window: tuple[int, ...], stride: tuple[int, ...], nd: int):
        """Σ over a p×p window of both positions (unscaled), one pass (2-D maps, window =
        stride; a 1-D map, or overlapping windows, are pooled by :meth:`NumpyOps.pool`)."""
        if nd != 2 or window != stride or len(set(window)) != 1:
            return NumpyOps.pool(x, window, stride, nd)
        p = window[0]
        t1, t2, h, w = x.shape[:4]
        m = (h // p, w // p)
        out = np.empty((t1 * t2, m[0], m[1], m[0], m[1]), x.dtype)
        _pool_pairs(x.reshape(t1 * t2, h, w, h, w), out, p)  # reads the first p·m per axis
        return out.reshape((t1, t2) + m * 2)

    @staticmethod
    def dual(act, s, t, v1, v2, nd: int, full: bool, self_pass: bool):
        """As :meth:`NumpyOps.dual`, one fused pass (``v1``, ``v2`` in the same shapes) for
        the registry's fast paths ("arccos1": relu, "arcsin": erf); any other activation
        takes the numpy evaluation of its registry dual."""
        fast = get_activation(act).fast
        if fast is None:
            return NumpyOps.dual(act, s, t, v1, v2, nd, full, self_pass)
        name = "relu" if fast == "arccos1" else "erf"
        shp = s.shape
        v4 = _view4(shp, nd, full)
        pairs = bool(full and nd)
        if name == "relu" and self_pass and not pairs:
            return NumpyOps.dual(name, s, t, v1, v2, nd, full, self_pass)
        s4 = s.reshape(v4)
        t4 = None if t is None else t.reshape(v4)
        keep, idx = None, np.arange(v4[2])
        if name == "relu" and self_pass:  # θ = 0 exactly on the self diagonal
            keep = (s4[:, :, idx, idx].copy(), None if t4 is None else t4[:, :, idx, idx].copy())
        r1, q1, r2, q2, act = _rq(name, v1, v2)
        if pairs:  # v1 (A, 1, R, 1); v2 (1, B, 1, Q) cross or (A, 1, 1, Q) self
            lead = v4[0] if self_pass else 1
            sh1, sh2 = (v4[0], v4[2]), (lead, v4[1], v4[3])
            kern, arr, tarr = _dual_pairs, s4, t4
        else:  # v1 (R, 1, A, 1); v2 (R, 1, 1, B) cross or (R, 1, A, 1) self
            sh1 = (v4[0], v4[2])
            sh2 = (v4[0], v4[2], 1) if self_pass else (v4[0], 1, v4[3])
            kern, arr = _dual_rows, s4.reshape(v4[0], v4[2], v4[3])
            tarr = None if t4 is None else t4.reshape(arr.shape)
        dt = s.dtype
        c1 = [np.ascontiguousarray(np.broadcast_to(a, _bshape(a, sh1, pairs, 1)), dt)
              .reshape(sh1) for a in (r1, q1)]
        c2 = [np.ascontiguousarray(np.broadcast_to(a, _bshape(a, sh2, pairs, 2)), dt)
              .reshape(sh2) for a in (r2, q2)]
        kern(act, arr, arr if tarr is None else tarr, tarr is not None, c1[0], c1[1], c2[0],
             c2[1])
        if keep is not None:
            s4[:, :, idx, idx] = math.pi * keep[0]
            if t4 is not None:
                t4[:, :, idx, idx] = math.pi * keep[1]
        scale = _SCALE[name]
        return s, t, scale, scale

    def __init__(self, reuse: bool = False) -> None:
        self._reuse = reuse
        self._local = threading.local()

    def _outputs(self, shape: tuple[int, ...], dtype, n: int, avoid: tuple) -> list:
        """``n`` arrays of ``shape`` for a fused pass's output. With ``reuse`` (a plan
        without residual blocks, whose tiles end in a readout that copies) each worker
        thread keeps its own arrays and hands out ones that do not overlap the pass's inputs
        ``avoid``: a fresh 4.9 MB array costs its page faults on first touch (measured 2.1 ms
        per pair for Σ and Θ at 28×28, a third of the pass)."""
        if not self._reuse:
            return [np.empty(shape, dtype) for _ in range(n)]
        pool = self._local.__dict__.setdefault("pool", {})
        kept = pool.setdefault((shape, np.dtype(dtype).str), [])
        free = [b for b in kept if not any(a is not None and np.may_share_memory(a, b)
                                           for a in avoid)]
        while len(free) < n:
            kept.append(np.empty(shape, dtype))
            free.append(kept[-1])
        return free[:n]

    def fuse(self, steps: tuple, k: int, nd: int, s, t, ck: float, cd: float, var_fn,
             need_ntk: bool, self_pass: bool):
        """Steps k, k+1 (and k+2) in one pass when they are a stride-1 (or first) linear layer
        of full covariances followed by a fast (relu/erf) activation, then optionally a
        non-overlapping pooling or the GAP readout (:func:`_lin_act_pairs`): one read of
        Σ, Θ and one write of the result (none for GAP) instead of ~6 passes over memory.
        Returns (steps consumed, Σ, Θ, cK, cD), or None when the pattern does not apply."""
        used = 0 if self_pass else fused_steps(steps, k, nd)
        if not used:
            return None
        st, nx = steps[k], steps[k + 1]
        _, ly, shape, _, out_shape, first = st
        fast = get_activation(nx[1]).fast
        mode, pw = 0, 1
        if used == 3 and steps[k + 2][0] == "read":
            mode = 1
        elif used == 3:
            mode, pw = 2, steps[k + 2][1][0][0]
        t1, t2 = s.shape[:2]
        sp_in = tuple(s.shape[2:2 + nd])
        dt = s.dtype
        q = (1,) * nd if first else tuple(ly.filter)
        if nd == 1:
            sp_in, q = (1,) + sp_in, (1,) + q
        *table, m = _tap_table(sp_in, q, "same" if first else ly.padding)
        taps = float(math.prod(q))
        name = "relu" if fast == "arccos1" else "erf"
        v1, v2 = var_fn(nx[4], None, nd, True)
        r1, q1, r2, q2, act = _rq(name, v1, v2)
        p = m[0] * m[1]
        rows = [np.ascontiguousarray(np.broadcast_to(v, (t1, 1, p, 1)), dt).reshape(t1, p)
                for v in (r1, q1)]
        cols = [np.ascontiguousarray(np.broadcast_to(v, (1, t2, 1, p)), dt).reshape(t2, p)
                for v in (r2, q2)]
        n_in = sp_in[0] * sp_in[1]
        if isinstance(s, _Patches):  # the first Gram, from the inputs
            pa, pbt = s.a, s.bt
            xs = np.empty((1, 1, 1, 1, 1), dt)
        else:
            pa = pbt = np.empty((1, 1, 0), dt)
            xs = s.reshape(t1, t2, sp_in[0], sp_in[1], n_in)
        has_tin = t is not None
        xt = t.reshape(xs.shape) if has_tin else xs
        w2, b2 = ly.W_std ** 2, ly.b_std ** 2
        scale = _SCALE[name]
        ws = (pw, pw) if nd == 2 else (1, pw)  # the pooling window per axis of the 2-D map
        pooled = (m[0] // ws[0], m[1] // ws[1]) if mode == 2 else m
        pp = pooled[0] * pooled[1]
        osh = (t1, t2, pp, pp) if mode != 1 else (1, 1, 1, 1)
        outs = self._outputs(osh, dt, 1 + need_ntk,
                             () if isinstance(s, _Patches) else (s, t))
        out_s, out_t = outs[0], outs[-1]
        gs = np.zeros((t1, t2) if mode == 1 else (1, 1))
        gt = np.zeros((t1, t2)) if mode == 1 and need_ntk else gs
        al_s, al_t, beta = (dt.type(v) for v in (w2 * ck / taps, w2 * cd / taps, b2))
        _lin_act_pairs(xs, xt, has_tin, pa, pbt, *table, al_s, al_t, beta, act, rows[0], rows[1],
                       cols[0], cols[1], need_ntk, mode, *ws, out_s, out_t, gs, gt)
        if mode == 1:
            f = scale / float(p) ** 2
            return used, gs.astype(dt), (gt.astype(dt) if need_ntk else None), f, f
        shape = (t1, t2) + pooled[2 - nd:] * 2
        f = scale / float(pw ** nd) ** 2 if mode == 2 else scale
        return used, out_s.reshape(shape), out_t.reshape(shape) if need_ntk else None, f, f

def fused_steps(steps: tuple, k: int, nd: int) -> int:
    """How many plan steps from k :meth:`NumbaOps.fuse` runs as one pass over memory: 2 for
    a stride-1 (or first) linear layer of full covariances and a fast (relu/erf) activation,
    3 with a following GAP readout or non-overlapping square pooling; 0 when not fused."""
    if nd == 0 or k + 1 >= len(steps):
        return 0
    st, nx = steps[k], steps[k + 1]
    if st[0] != "lin" or nx[0] != "act" or st[3] is not True or nx[3] is not True:
        return 0  # full covariances only (not the diagonal, nor a banded plan's Band)
    ly, first = st[1], st[5]
    if get_activation(nx[1]).fast is None or not (first or isinstance(ly, Conv)):
        return 0
    if not first and (max(ly.stride) > 1 or len(st[2]) != nd):
        return 0
    nxt = steps[k + 2] if k + 2 < len(steps) else ("end",)
    if nxt[0] == "read" and nxt[1] == "gap":
        return 3
    if nxt[0] == "pool" and nxt[1][0] == nxt[1][1] and len(set(nxt[1][0])) == 1:
        return 3
    return 2


@dataclass(frozen=True)
class _Patches:
    """A tile's first Gram, not yet formed: x_a(i)·x_b(j)/c = a[i]·bt[:, j] (``shape``: the
    Gram's)."""

    a: np.ndarray
    bt: np.ndarray
    shape: tuple[int, ...]

    @property
    def dtype(self):
        return self.a.dtype


_SCALE = {"relu": 1 / (2 * math.pi), "erf": 2 / math.pi}


def _rq(name: str, v1, v2):
    """Per-position factors of the fused duals: relu r = 1/√v (0 where v = 0), q = √v;
    erf r1 = 2/√(1 + 2v1), r2 = 1/√(1 + 2v2), q = r."""
    v1 = np.asarray(v1, np.float64)
    v2 = np.asarray(v2, np.float64)
    if name == "relu":
        with np.errstate(divide="ignore"):
            r1, r2 = (np.where(v > 0, 1.0 / np.sqrt(v), 0.0) for v in (v1, v2))
        return r1, np.sqrt(v1), r2, np.sqrt(v2), 0
    r1, r2 = 2.0 / np.sqrt(1.0 + 2.0 * v1), 1.0 / np.sqrt(1.0 + 2.0 * v2)
    return r1, r1, r2, r2, 1


def _bshape(a: np.ndarray, sh: tuple, pairs: bool, which: int) -> tuple:
    """The 4-D shape whose reshape is ``sh``, for broadcasting a variance array ``a``."""
    if a.ndim != 4:
        raise ValueError(f"variance array of shape {a.shape}: expected 4-D")
    if pairs:
        return (sh[0], 1, sh[1], 1) if which == 1 else (sh[0], sh[1], 1, sh[2])
    return (sh[0], 1, sh[1], 1) if which == 1 else (sh[0], 1, sh[1], sh[2])
