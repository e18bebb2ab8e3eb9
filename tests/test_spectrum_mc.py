"""Sampling routes: Monte-Carlo projections (D = 1024, sphere), Gram and FWHT for ConvNets."""

import numpy as np
import pytest
from scipy.stats import t as student_t

import infwidth as iw
from infwidth.eigenspaces.harmonics import harmonic_count

N_BATCHES = 8
# two-sided 99.9% quantile of Student's t with B−1 dof: the batch standard error is itself
# estimated from B batches, so the z-scores are t-distributed
Z_MAX = float(student_t.ppf(1 - 0.0005, N_BATCHES - 1))


def blocked_tree_kernel(arch, x1, x2=None, kind="ntk"):
    """The numpy reference recursion, in row blocks (its (n, n, positions) arrays are big)."""
    x2 = x1 if x2 is None else x2
    out = np.empty((x1.shape[0], x2.shape[0]))
    for i in range(0, x1.shape[0], 100):
        out[i:i + 100] = iw.kernels.tree_kernel(arch, x1[i:i + 100], x2, kind=kind)
    return out


def _compare(exact, mc):
    """z-scores of the Monte-Carlo estimates against the exact eigenvalues, per type."""
    by = {t.label: t for t in mc.types}
    out = []
    for t in exact.types:
        m = by[t.label]
        err = np.hypot(m.error_bound, t.error_bound)
        out.append((t.label, t.eigenvalue, m.eigenvalue, m.error_bound,
                    (m.eigenvalue - t.eigenvalue) / err))
    return out


@pytest.mark.parametrize("kind", ["ntk"])
def test_monte_carlo_projection_at_d1024(kind):
    """Projections on sampled points (the type's reproducing kernel, leave-diagonal-out) agree
    with the exact recursion within their error bars, on every type up to degree 3."""
    arch, dim = iw.DCNN(patch_dim=64, filter_sizes=(4, 4)), 1024
    exact = iw.spectrum(arch, dim, kind=kind, max_degree=3)
    mc = iw.spectrum(arch, dim, kind=kind, max_degree=3, method="monte-carlo",
                     kernel_fn=blocked_tree_kernel, n_samples=400, n_batches=N_BATCHES,
                     seed=1)
    rows = _compare(exact, mc)
    assert len(rows) >= 10
    for label, lam, est, se, z in rows:
        assert abs(z) <= Z_MAX, (label, lam, est, se)
    resolved = [r for r in rows if r[1] > 5 * r[3]]
    assert len(resolved) >= 4  # the test has teeth: several types measured to < 20%


def test_monte_carlo_with_sampled_eigenfunctions():
    arch, dim = iw.DCNN(patch_dim=8, filter_sizes=(4,), activation="erf", b_std=0.5), 32
    exact = iw.spectrum(arch, dim, kind="nngp", max_degree=2)
    mc = iw.spectrum(arch, dim, kind="nngp", max_degree=2, method="monte-carlo",
                     estimator="functions", kernel_fn=blocked_tree_kernel, n_samples=300,
                     n_batches=N_BATCHES, n_functions=16, seed=2)
    for label, lam, est, se, z in _compare(exact, mc):
        assert abs(z) <= Z_MAX, (label, lam, est, se)


@pytest.mark.parametrize("arch,dim", [(iw.DCNN(patch_dim=4, filter_sizes=(4,)), 64),
                                      (iw.MLP(depth=2, activation="erf", b_std=0.5), 10)])
def test_sphere_exact_against_monte_carlo(arch, dim):
    exact = iw.spectrum(arch, dim, domain="sphere", kind="ntk", max_degree=3)
    mc = iw.spectrum(arch, dim, domain="sphere", kind="ntk", max_degree=3,
                     method="monte-carlo", kernel_fn=blocked_tree_kernel, n_samples=300,
                     n_batches=N_BATCHES, seed=3)
    rows = _compare(exact, mc)
    for label, lam, est, se, z in rows:
        assert abs(z) <= Z_MAX, (label, lam, est, se)
    assert sum(r[1] > 5 * r[3] for r in rows) >= 3
    # multiplicity per patch: N(n0, k) = C(k+n0−3, k−1)(2k+n0−2)/k
    n0 = exact.patch_dim
    single = [t for t in exact.types if len(t.support) == 1]
    for t in single:
        k = t.frequency
        per_patch = t.multiplicity // exact.n_patches
        assert per_patch == harmonic_count(n0, k)


def test_gram_equals_fwht_for_a_flatten_convnet():
    arch, dim = iw.ConvNet(filter_size=3, depth=2, activation="erf"), 8
    fw = iw.spectrum(arch, dim, kind="ntk", max_degree=8, method="fwht",
                     kernel_fn=iw.kernels.tree_kernel)
    gr = iw.spectrum(arch, dim, kind="ntk", max_degree=8, method="gram",
                     kernel_fn=iw.kernels.tree_kernel)
    by = {t.label: t for t in gr.types}
    assert len(fw.types) == len(gr.types)
    for t in fw.types:
        g = by[t.label]
        assert g.multiplicity == t.multiplicity
        assert abs(g.eigenvalue - t.eigenvalue) <= 1e-9 * abs(t.eigenvalue) + g.error_bound \
            + t.error_bound
    # translations are symmetries: a type's monomials share one eigenvalue (spread ~ round-off)
    assert max(t.error_bound for t in fw.types) < 1e-12
    assert sum(t.multiplicity * t.eigenvalue for t in fw.types) == pytest.approx(fw.trace())


def test_gap_readout_spectrum():
    """GAP kernel = flatten kernel averaged over shifts of x': on the shift-invariant
    eigenfunction of each orbit it has the flatten kernel's per-monomial eigenvalue, and
    Monte-Carlo projection on that eigenfunction agrees."""
    flat = iw.ConvNet(filter_size=3, depth=1, activation="erf")
    gap = iw.ConvNet(filter_size=3, depth=1, activation="erf", readout="gap")
    dim = 7
    fw = iw.spectrum(flat, dim, kind="nngp", max_degree=3, method="fwht",
                     kernel_fn=iw.kernels.tree_kernel)
    gr = iw.spectrum(gap, dim, kind="nngp", max_degree=3)
    assert gr.method == "gram"
    by = {t.label: t for t in fw.types}
    for t in gr.types:
        assert t.multiplicity == 1
        assert t.eigenvalue == pytest.approx(by[t.label].eigenvalue, rel=1e-9, abs=1e-13)
    mc = iw.spectrum(gap, dim, kind="nngp", max_degree=1, method="monte-carlo",
                     n_samples=160, n_batches=N_BATCHES, seed=4)
    for label, lam, est, se, z in _compare(
            iw.spectrum(gap, dim, kind="nngp", max_degree=1), mc):
        assert abs(z) <= Z_MAX, (label, lam, est, se)
