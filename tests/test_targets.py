"""Targets: power normalisation, eigenspace placement on architectures, bad input."""

import math

import numpy as np
import pytest

import infwidth as iw
from infwidth.eigenspaces.harmonics import harmonic_count, legendre
from infwidth.learning.targets import canonical_type


def _cube(dim):
    b = np.arange(2 ** dim)[:, None]
    return 1.0 - 2.0 * ((b >> np.arange(dim)) & 1)


def test_walsh_power_is_exact_on_the_whole_cube():
    """Distinct Walsh monomials are orthonormal: E[f²] = Σ powers exactly, E[f] = 0."""
    t = iw.Target("hypercube", 12, 4, [iw.Component({0: 2}, 0.7, terms=4),
                                       iw.Component({1: 1, 2: 3}, 1.3, terms=3)])
    x = _cube(12)
    c = t.sample(seed=5).components(x)
    assert np.allclose((c ** 2).mean(0), [0.7, 1.3], rtol=1e-12)
    assert abs((c[:, 0] * c[:, 1]).mean()) < 1e-12
    assert np.allclose(c.mean(0), 0.0, atol=1e-12)


@pytest.mark.parametrize("n0, degrees, terms", [(8, {0: 3}, 1), (8, {1: 2, 7: 1}, 3),
                                                (2, {0: 4}, 2), (3, {0: 2, 1: 1}, 1)])
def test_sphere_power_by_monte_carlo(n0, degrees, terms):
    """Zonal-harmonic products: E[f²] = power within 4 Monte-Carlo standard errors."""
    dim = 8 * n0
    t = iw.Target.from_degrees("sphere", dim, n0, degrees, power=2.5, terms=terms)
    x = iw.sample_inputs("sphere", 40_000, dim, patch_dim=n0, seed=1)
    f = t.sample(seed=2)(x)
    se = (f ** 2).std() / math.sqrt(len(f))
    assert abs((f ** 2).mean() - 2.5) < 4 * se
    assert abs(f.mean()) < 4 * f.std() / math.sqrt(len(f))


def test_sphere_components_are_orthogonal():
    t = iw.Target("sphere", 16, 8, [({0: 2}, 1.0), ({0: 1, 1: 1}, 1.0)])
    x = iw.sample_inputs("sphere", 40_000, 16, patch_dim=8, seed=3)
    c = t.sample(seed=0).components(x)
    prod = c[:, 0] * c[:, 1]
    assert abs(prod.mean()) < 4 * prod.std() / math.sqrt(len(prod))


def test_legendre_normalisation_matches_the_addition_theorem():
    """E[P_k(x̂·u)²] = 1/N(n, k) for x̂ uniform on S^{n−1}."""
    rng = np.random.default_rng(0)
    for n, k in [(2, 3), (3, 2), (8, 3)]:
        g = rng.standard_normal((200_000, n))
        cos = g[:, 0] / np.linalg.norm(g, axis=1)
        v = legendre(k, n, cos) ** 2
        assert abs(v.mean() - 1 / harmonic_count(n, k)) < 4 * v.std() / math.sqrt(len(v))
    assert harmonic_count(3, 2) == 5 and harmonic_count(8, 1) == 8


def test_same_seed_same_function():
    t = iw.Target.pair("hypercube", 64, 8)
    x = iw.sample_inputs("hypercube", 50, 64, seed=0)
    assert np.array_equal(t.sample(3)(x), t.sample(3)(x))
    assert not np.array_equal(t.sample(3)(x), t.sample(4)(x))


def test_arch_degrees_and_types():
    sib = iw.Target.pair("hypercube", 64, 4, (2, 3))
    far = iw.Target.far_pair("hypercube", 64, 4)
    loc = iw.Target.local("hypercube", 64, 4, degree=3, patch=5)
    mlp, scnn = iw.MLP(), iw.SCNN(patch_dim=4)
    dcnn = iw.DCNN(patch_dim=4, filter_sizes=(2, 8))
    assert sib.arch_degrees(mlp) == [(2,)] and loc.arch_degrees(mlp) == [(3,)]
    assert far.arch_degrees(scnn)[0] == (1,) + (0,) * 14 + (1,)
    # siblings (2, 3) and (0, 1) are one type; far patches are another
    ref = iw.Target.pair("hypercube", 64, 4, (0, 1))
    assert sib.arch_types(dcnn) == ref.arch_types(dcnn) != far.arch_types(dcnn)
    assert sib.arch_types(mlp) == far.arch_types(mlp)
    # reference patches of 2 coordinates nest inside S-CNN patches of 4
    fine = iw.Target.pair("hypercube", 64, 2, (0, 1))
    assert fine.arch_degrees(scnn)[0][:2] == (2, 0)


def test_types_match_the_spectrum_table():
    """Our canonical types agree with the spectrum engine's rows (same leaf convention)."""
    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 8))
    spec = iw.spectrum(arch, 64, "hypercube", "ntk", max_degree=2, include_zero=False)
    keys = [canonical_type(arch, 64, d) for d in spec.table()["degrees"]]
    assert len(set(keys)) == len(keys)
    assert np.array_equal(arch.leaf_coordinates(64), np.arange(64).reshape(16, 4))


def test_leaf_coordinates_are_square_patches_in_2d():
    a2 = iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2)  # a 4×4 image: four 2×2 patches
    assert a2.leaf_coordinates(16).tolist() == [[0, 1, 4, 5], [2, 3, 6, 7],
                                                [8, 9, 12, 13], [10, 11, 14, 15]]
    assert iw.MLP().leaf_coordinates(5).tolist() == [[0, 1, 2, 3, 4]]
    assert iw.ConvNet(filter_size=3, depth=1).leaf_coordinates(6).tolist() == \
        [[i] for i in range(6)]


@pytest.mark.parametrize("kwargs, msg", [
    (dict(domain="cube", dim=16, patch_dim=4, components=[{0: 1}]), "domain must be one of"),
    (dict(domain="hypercube", dim=16, patch_dim=5, components=[{0: 1}]), "not divisible"),
    (dict(domain="hypercube", dim=16, patch_dim=4, components=[{0: 5}]),
     "carries Walsh monomials of degree ≤ 4"),
    (dict(domain="hypercube", dim=16, patch_dim=4, components=[((0, 0, 0, 0), 1.0)]),
     "constant"),
    (dict(domain="hypercube", dim=16, patch_dim=4, components=[((1, 0, 0), 1.0)]),
     "expected one per reference patch"),
    (dict(domain="hypercube", dim=16, patch_dim=4, components=[({0: 1}, -1.0)]),
     "power must be a positive"),
    (dict(domain="hypercube", dim=16, patch_dim=4, components=[({0: 1}, float("nan"))]),
     "power must be a positive"),
    (dict(domain="hypercube", dim=16, patch_dim=4,
          components=[iw.Component({0: 1}, 1.0, terms=5)]), "has only 4"),
    (dict(domain="hypercube", dim=16, patch_dim=4, components=[{7: 1}]), "patch index 7"),
])
def test_bad_targets(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        iw.Target(**kwargs)


def test_components_the_architecture_lacks_are_refused():
    with pytest.raises(ValueError, match="spans 2 leaves"):
        iw.Target.pair("hypercube", 64, 8).arch_degrees(iw.SCNN(patch_dim=4))
    with pytest.raises(ValueError, match="harmonics of its leaves"):
        iw.Target.pair("sphere", 64, 8).arch_degrees(iw.MLP())
    with pytest.raises(ValueError, match="patch_dim=1"):
        iw.Target.local("sphere", 8, 1, degree=2)
