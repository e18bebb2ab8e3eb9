"""Spherical harmonics (infwidth.eigenspaces.harmonics) against closed forms and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from infwidth.eigenspaces.harmonics import (
    funk_hecke,
    gauss_jacobi,
    harmonic_count,
    legendre,
    legendre_all,
    reproducing_kernel,
    zonal_harmonic,
)

DIMS = (2, 3, 4, 7, 12, 20)


def test_harmonic_count_closed_forms():
    assert [harmonic_count(3, k) for k in range(6)] == [2 * k + 1 for k in range(6)]
    assert [harmonic_count(2, k) for k in range(5)] == [1, 2, 2, 2, 2]
    assert [harmonic_count(1, k) for k in range(4)] == [1, 1, 0, 0]
    for d in (3, 5, 12, 20):
        assert harmonic_count(d, 0) == 1
        assert harmonic_count(d, 1) == d
        assert harmonic_count(d, 2) == (d + 2) * (d - 1) // 2
    # homogeneous polynomials of degree K restrict to H_K ⊕ H_{K−2} ⊕ …
    for d, K in ((4, 3), (7, 4), (20, 5)):
        assert harmonic_count(d, K) == math.comb(K + d - 1, d - 1) - math.comb(K + d - 3, d - 1)
    with pytest.raises(ValueError):
        harmonic_count(0, 1)
    with pytest.raises(ValueError):
        harmonic_count(3, -1)


@pytest.mark.parametrize("d", DIMS)
def test_legendre_is_normalised_gegenbauer(d):
    t = np.linspace(-1.0, 1.0, 41)
    for k in range(9):
        p = legendre(k, d, t)
        assert p[-1] == pytest.approx(1.0, abs=1e-13)
        if d == 2:
            ref = special.eval_chebyt(k, t)
        else:
            a = (d - 2) / 2
            ref = special.eval_gegenbauer(k, a, t) / special.eval_gegenbauer(k, a, 1.0)
        np.testing.assert_allclose(p, ref, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.stack(legendre_all(8, d, t)),
                                  np.stack([legendre(k, d, t) for k in range(9)]))


def test_legendre_refuses_degrees_beyond_s0():
    np.testing.assert_array_equal(legendre(1, 1, [-1.0, 1.0]), [-1.0, 1.0])
    with pytest.raises(ValueError, match="S\\^0"):
        legendre(2, 1, 0.5)


@pytest.mark.parametrize("d", DIMS)
def test_gauss_jacobi_orthogonality(d):
    """E_t[P_j·P_k] = δ_jk/N(d, k) under the law of t, exact up to degree 2m − 1."""
    m = 24
    t, w = gauss_jacobi(m, d)
    assert np.all(np.diff(t) > 0) and w.sum() == pytest.approx(1.0, abs=1e-14)
    assert not t.flags.writeable and not w.flags.writeable
    p = np.stack(legendre_all(m - 1, d, t))
    gram = (p * w) @ p.T
    expect = np.diag([1.0 / harmonic_count(d, k) for k in range(m)])
    np.testing.assert_allclose(gram, expect, rtol=0, atol=1e-13)


def test_gauss_jacobi_matches_scipy_roots_jacobi():
    for d in (2, 3, 8, 20):
        a = (d - 3) / 2
        t_ref, w_ref = special.roots_jacobi(40, a, a)
        t, w = gauss_jacobi(40, d)
        np.testing.assert_allclose(t, t_ref, rtol=0, atol=1e-14)
        np.testing.assert_allclose(w, w_ref / w_ref.sum(), rtol=0, atol=1e-14)


def test_funk_hecke_recovers_a_known_spectrum():
    d = 7
    lam = np.array([0.5, 0.2, 0.05, 0.01, 0.003])

    def g(t):
        return sum(v * reproducing_kernel(k, d, t) for k, v in enumerate(lam))
    np.testing.assert_allclose(funk_hecke(g, d, 6), np.r_[lam, 0, 0], atol=1e-14)


def test_addition_theorem_exact_for_d3():
    """d = 3: Σ_m Y_km(x)·Y_km(x') = (2k+1)·P_k(x·x') with the real orthonormal basis of
    unit-power harmonics on S² (E[Y²] = 1), built from associated Legendre functions."""
    rng = np.random.default_rng(0)
    u = rng.standard_normal((2, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    theta, phi = np.arccos(u[:, 2]), np.arctan2(u[:, 1], u[:, 0])
    for k in range(6):
        total = 0.0
        for m in range(k + 1):
            norm = (2 * k + 1) * math.factorial(k - m) / math.factorial(k + m)
            plm = special.lpmv(m, k, np.cos(theta))
            if m == 0:
                total += norm * plm[0] * plm[1]
            else:  # cos and sin pairs: 2·cos(m(φ − φ'))
                total += 2 * norm * plm[0] * plm[1] * math.cos(m * (phi[0] - phi[1]))
        assert total == pytest.approx(float(reproducing_kernel(k, 3, u[0] @ u[1])), abs=1e-12)


@pytest.mark.parametrize("d, k", [(3, 2), (5, 3), (12, 2)])
def test_zonal_harmonics_are_orthonormal_by_monte_carlo(d, k):
    """E[Z_u·Z_v] = P_k(u·v) (addition theorem) for x uniform on the sphere of radius √d,
    within 4 Monte-Carlo standard errors; E[Z_u²] = 1."""
    rng = np.random.default_rng(d + k)
    n = 200_000
    x = rng.standard_normal((n, d))
    x *= math.sqrt(d) / np.linalg.norm(x, axis=1, keepdims=True)
    u, v = rng.standard_normal((2, d))
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    zu, zv = zonal_harmonic(x, u, k), zonal_harmonic(x, v, k)
    for prod, exact in ((zu * zu, 1.0), (zu * zv, float(legendre(k, d, u @ v)))):
        assert abs(prod.mean() - exact) < 4 * prod.std() / math.sqrt(n)
