"""The activation registry: every closed form against neural-tangents and against quadrature,
a callable through the numerical dual, and exact tree spectra against brute force.

Oracles: neural-tangents' ``kernel_fn`` (native NNGP/NTK to 1e-10 relative off the
diagonal); Gauss–Hermite quadrature of φ for smooth φ, and for the positively homogeneous
ones (φ(λx) = λⁿφ(x), λ > 0: the ReLU family, sign, rectified monomials) the exact polar
reduction E[φ(u)φ(v)] = 2ⁿn!·(1/2π)∫φ(e(α))φ(f(α))dα with adaptive quadrature split at the
kinks (Gauss–Hermite converges only like deg^{-3/2} across a kink); the FWHT brute-force
spectrum for the exact tree recursion.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest
from nt_oracle import nt_kernels
from scipy import integrate

import infwidth as iw
from infwidth.architectures import activations as A
from infwidth.kernels.native import native_kernels

EPS = np.finfo(np.float64).eps

CLOSED = [A.get_activation(n) for n in A.ACTIVATIONS] + [
    A.leaky_relu(0.2), A.abrelu(-0.3, 2.0), A.erf(2.0, 0.7, 0.3), A.sin(1.5, 0.8, 0.4),
    A.cos(0.7, 1.2, 0.1), A.gaussian(1.2, -0.4), A.rbf(0.4), A.exp(0.5, 0.4),
    A.exp_normalized(0.8, -0.5), A.monomial(0), A.monomial(1), A.monomial(2), A.monomial(3),
    A.monomial(5), A.hermite(0), A.hermite(3), A.polynomial((0.5, -1.0, 0.3, 0.2)),
    A.rectified_monomial(0), A.rectified_monomial(2), A.rectified_monomial(3)]
IDS = [s.name for s in CLOSED]
# positively homogeneous of degree n: (spec, n)
HOMOGENEOUS = {"relu": 1, "leaky_relu(0.01)": 1, "leaky_relu(0.2)": 1, "abs": 1,
               "abrelu(-0.3, 2)": 1, "sign": 0, "rectified_monomial(0)": 0,
               "rectified_monomial(2)": 2, "rectified_monomial(3)": 3}

Q1 = np.array([0.7, 1.0, 1.3, 0.5, 0.9, 1.0])
Q2 = np.array([1.1, 1.0, 0.9, 0.5, 0.4, 1.0])
T = np.array([0.3, -0.6, 0.95, 1.0, -0.999, 0.0])


def _softplus(x):
    return jnp.logaddexp(x, 0.0)


def _polar(f, n, q1, q2, t):
    """E[f(u)f(v)] for f positively homogeneous of degree n, by the polar reduction."""
    a, b = math.sqrt(q1), math.sqrt(q2)
    r = math.sqrt(max((1 - t) * (1 + t), 0.0))

    def g(al):
        c, s = math.cos(al), math.sin(al)
        return f(a * c) * f(b * (t * c + r * s))
    # kinks where either argument crosses 0
    pts = sorted({(math.pi / 2) % (2 * math.pi), (3 * math.pi / 2) % (2 * math.pi),
                  math.atan2(-t, r) % (2 * math.pi), (math.atan2(-t, r) + math.pi) % (2 * math.pi)})
    edges = [0.0] + pts + [2 * math.pi]
    val = sum(integrate.quad(g, lo, hi, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
              for lo, hi in zip(edges[:-1], edges[1:]) if hi > lo)
    return 2 ** n * math.factorial(n) * val / (2 * math.pi)


@pytest.mark.parametrize("spec", CLOSED, ids=IDS)
def test_normalised_and_quadrature(spec):
    """h(1) = 1 with W = w_std, and the closed form against quadrature of φ and φ'."""
    assert A.dual(spec, 1.0) == pytest.approx(1.0, abs=4 * EPS)
    k, kd = spec.gaussian_dual(Q1, Q2, t=T)
    k_s, kd_s = spec.gaussian_dual(Q1, Q2, T * np.sqrt(Q1 * Q2))  # s and t forms agree
    np.testing.assert_allclose(k_s, k, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(kd_s, kd, rtol=1e-13, atol=1e-15)
    if spec.fn is None:  # exp_normalized: a kernel map, no φ
        return
    if spec.name in HOMOGENEOUS:
        n = HOMOGENEOUS[spec.name]
        f = lambda x: float(spec.phi(np.array(x)))  # noqa: E731
        ref = [_polar(f, n, *a) for a in zip(Q1, Q2, T)]
        np.testing.assert_allclose(k, ref, rtol=1e-10, atol=1e-12)
        if n >= 1:
            df = lambda x: float(spec.dphi(np.array(x)))  # noqa: E731
            ref_d = [_polar(df, n - 1, *a) for a in zip(Q1, Q2, T)]
            np.testing.assert_allclose(kd, ref_d, rtol=1e-10, atol=1e-12)
        else:
            assert np.all(kd == 0)  # φ' = 0 almost everywhere (neural-tangents' convention)
        return
    num = A.numerical_activation(lambda x: spec.phi(x, jnp), name="gh", deg=160,
                                 derivative=lambda x: spec.dphi(x, jnp))
    nk, nkd = num.gaussian_dual(Q1, Q2, t=T)
    scale = max(1.0, float(np.max(np.abs(k))))
    np.testing.assert_allclose(k, nk, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(kd, nkd, rtol=0, atol=1e-12 * max(1.0, float(np.max(np.abs(kd)))))


def _x(n, shape, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, math.prod(shape)))


def _compare(arch, dim, backends, rtol, seed=3, diagonal=True):
    x = _x(5, (dim,), seed) * 0.8
    ref = nt_kernels(arch, x)
    off = ~np.eye(5, dtype=bool)
    for backend in backends:
        got = native_kernels(arch, x, backend=backend)
        for kind in ("nngp", "ntk"):
            scale = np.abs(ref[kind][off]).max()
            np.testing.assert_allclose(got[kind][off], ref[kind][off], rtol=0,
                                       atol=rtol * scale, err_msg=f"{backend} {kind}")
            if diagonal:  # neural-tangents: ~√ε per layer at correlation 1 (arccos)
                np.testing.assert_allclose(np.diag(got[kind]), np.diag(ref[kind]), rtol=1e-7,
                                           err_msg=f"{backend} {kind} diagonal")


# neural-tangents' Hermite kernel assumes unit variances: our hermite's layer is the
# Polynomial with the same coefficients (same φ, exact kernel), so it is compared here too.
# (rectified_monomial(3) is left to the quadrature test: neural-tangents' kernel for it nests
# jax.grad three deep and costs ~5 s.)
NT_CASES = [s for s in CLOSED if s.name != "rectified_monomial(3)"]


@pytest.mark.parametrize("spec", NT_CASES, ids=[s.name for s in NT_CASES])
def test_native_equals_neural_tangents_mlp(spec):
    """MLP depth 2, with bias: native (numpy and numba) = neural-tangents to 1e-10.

    neural-tangents' RectifiedMonomial is NaN on the diagonal (jax.grad of arccos at
    correlation 1), which poisons every later layer: it is compared at depth 1, off the
    diagonal (the native engine's diagonal is checked by the closed form above)."""
    if spec.name.startswith("rectified_monomial"):
        _compare(iw.MLP(depth=1, activation=spec), 6, ("numpy", "numba"), 1e-10,
                 diagonal=False)
        return
    arch = iw.MLP(depth=2, activation=spec, b_std=0.3)
    _compare(arch, 6, ("numpy", "numba"), 1e-10)


# Every closed form but the rectified monomials (neural-tangents' NaN diagonal reaches every
# pair through GAP; their duals are checked by quadrature and on the MLP above).
CONV_CASES = [s for s in NT_CASES if not s.name.startswith("rectified_monomial")]


@pytest.mark.parametrize("backend", ["numpy", pytest.param("jax", marks=pytest.mark.jax)])
@pytest.mark.parametrize("spec", CONV_CASES, ids=[s.name for s in CONV_CASES])
def test_native_equals_neural_tangents_convnet(spec, backend):
    """2-D ConvNet-GAP (4×4 images, filter 3, depth 2): native = neural-tangents to 1e-10."""
    arch = iw.ConvNet(depth=2, filter_size=3, readout="gap", ndim=2, activation=spec)
    _compare(arch, 16, (backend,), 1e-10)


def test_callable_against_elementwise_numerical():
    """softplus as a callable: native = neural-tangents' ElementwiseNumerical (the same
    deg² rule) to the error the numerical dual states (the rule is not symmetric in
    (q1, q2): the engine's mirrored entries differ from neural-tangents' by ~1e-10, within
    that error), and within the stated error of a finer quadrature."""
    sp = A.numerical_activation(_softplus, name="softplus", deg=24)
    assert not sp.exact and 0 < sp.error < 1e-6
    arch = iw.MLP(depth=2, activation=sp, b_std=0.2)
    _compare(arch, 6, ("numpy", "numba"), 10 * sp.error)
    fine = A.numerical_activation(_softplus, name="softplus", deg=64)
    k, kd = sp.gaussian_dual(Q1, Q2, t=T)
    fk, fkd = fine.gaussian_dual(Q1, Q2, t=T)
    assert np.max(np.abs(k - fk)) * sp.w_std ** 2 <= 10 * sp.error
    assert np.max(np.abs(kd - fkd)) * sp.w_std ** 2 <= 10 * sp.error


def test_jax_backend_generic_path():
    """The JAX backend evaluates the registry dual (gelu) like numpy does."""
    arch = iw.MLP(depth=2, activation="gelu", b_std=0.3)
    x = _x(4, (6,), 5)
    a = native_kernels(arch, x, backend="numpy")
    b = native_kernels(arch, x, backend="jax")
    for kind in a:
        np.testing.assert_allclose(b[kind], a[kind], rtol=1e-13)


def _fwht_spectrum_check(arch, dim, kind):
    from infwidth.eigenspaces.eigentypes import type_system
    from infwidth.eigenspaces.hypercube import walsh_eigenvalues
    from infwidth.eigenspaces.monte_carlo import subset_keys

    lam, gabs = walsh_eigenvalues(arch, dim, kind, iw.kernels.tree_kernel)
    ts = type_system(arch, dim)
    masks, keys = subset_keys(ts, dim, dim)
    brute = {}
    for m, k in zip(masks, keys):
        brute.setdefault(ts.label(k), []).append(lam[m])
    roundoff = 4 * dim * EPS * gabs
    spec = iw.spectrum(arch, dim, kind=kind, max_degree=dim)
    assert {t.label for t in spec.types} == set(brute)
    for t in spec.types:
        v = np.array(brute[t.label])
        tol = 1e-9 * abs(t.eigenvalue) + roundoff + t.error_bound
        assert np.max(np.abs(v - t.eigenvalue)) <= tol, t.label


SPECTRUM_ACTS = ["relu", "erf", "gelu", "abs", A.monomial(3),
                 A.numerical_activation(_softplus, name="softplus", deg=24)]


@pytest.mark.parametrize("act", SPECTRUM_ACTS, ids=lambda a: A.get_activation(a).name)
def test_tree_spectrum_equals_fwht(act):
    """Exact type recursion = FWHT brute force at D ≤ 16 to 1e-9, NNGP and NTK."""
    _fwht_spectrum_check(iw.DCNN(patch_dim=2, filter_sizes=(2, 2), activation=act, b_std=0.2),
                         8, "ntk")
    _fwht_spectrum_check(iw.MLP(depth=2, activation=act), 10, "nngp")


@pytest.mark.parametrize("act", ["gelu", A.monomial(3), "sin", "relu", "erf"],
                         ids=lambda a: A.get_activation(a).name)
def test_jets_match_values(act):
    """Jets of the node maps: order 0 = the values, order 1 = the derivative map."""
    from infwidth.eigenspaces.jets import dual_jet, dual_values

    s = np.array([-0.5, 0.1, 0.6])
    F, Fp = dual_jet(act, 2.0, 1.3, s, 5)
    f, fp = dual_values(act, 2.0, 1.3, s)
    np.testing.assert_allclose(F[:, 0], f, rtol=1e-12)
    np.testing.assert_allclose(Fp[:, 0], fp, rtol=1e-12)
    np.testing.assert_allclose(F[:, 1], fp, rtol=1e-12)


def test_power_series():
    """Polynomials: exact coefficients (tail 0); a smooth φ: tail small; h(t) = Σ a_k t^k."""
    a, tail = A.monomial(2).power_series(1.0, 6)  # x² = He_2 + 1: K = 1 + 2s²
    np.testing.assert_allclose(a, [1, 0, 2, 0, 0, 0, 0], atol=1e-14)
    assert tail < 1e-13
    a, tail = A.get_activation("gelu").power_series(1.0, 60)
    assert tail < 1e-12
    t = np.linspace(-1, 1, 7)
    h = np.polynomial.polynomial.polyval(t, a) / A._diagonal("gelu")
    np.testing.assert_allclose(h, A.dual("gelu", t), atol=1e-12)


def test_registry_lookup_and_refusals():
    assert A.get_activation("relu") is A.get_activation(A.get_activation("relu"))
    assert A.leaky_relu(0.1) == A.leaky_relu(0.1) and hash(A.monomial(2)) == hash(A.monomial(2))
    assert A.default_w_std("relu") == math.sqrt(2.0)
    with pytest.raises(ValueError, match="activation"):
        A.get_activation("tanh")
    with pytest.raises(TypeError, match="activation"):
        A.get_activation(3)
    with pytest.raises(ValueError, match="activation must be one of"):
        iw.MLP(activation="nope")
    with pytest.raises(TypeError, match="fn"):
        A.numerical_activation(3)
    with pytest.raises(ValueError, match="degree"):
        A.monomial(-1)
    with pytest.raises(NotImplementedError):
        A.get_activation("exp_normalized").phi(1.0)


@pytest.mark.parametrize("act", ["gelu", A.monomial(3)], ids=lambda a: A.get_activation(a).name)
def test_moment_mode_from_power_series(act):
    """The large-fan-in Taylor moments, whose jets come from the registry's power series,
    against exact atoms, within the summed error estimates."""
    from infwidth.eigenspaces.tree_recursion import RecursionOptions

    arch = iw.DCNN(patch_dim=2, filter_sizes=(4, 4), activation=act)
    exact = iw.spectrum(arch, 32, kind="ntk", options=RecursionOptions(exact_pairs=10 ** 7))
    forced = iw.spectrum(arch, 32, kind="ntk", options=RecursionOptions(force_moment=True))
    assert "moments" in {t.representation for t in forced.types}
    by_m = {t.label: t for t in forced.types}
    for e in exact.types:
        m = by_m[e.label]
        assert abs(e.eigenvalue - m.eigenvalue) <= e.error_bound + m.error_bound


def test_specs_pickle_as_their_constructor_call():
    """Architectures carrying a spec travel to workers (distributed fills): a spec pickles as
    the constructor call that built it."""
    import pickle

    for spec in (A.get_activation("relu"), A.leaky_relu(0.2), A.hermite(2), A.erf(2.0, 1.0, 0.5),
                 A.numerical_activation(_softplus, name="softplus", deg=8)):
        back = pickle.loads(pickle.dumps(spec))
        assert back == spec and back.w_std == spec.w_std and back.fast == spec.fast
    arch = iw.MLP(depth=2, activation=A.monomial(3))
    assert pickle.loads(pickle.dumps(arch)) == arch
