"""A user-defined network, built from layer specs without touching infwidth/, gets kernels,
a finite net, a parameter count, a learning index and a learning curve; and every existing
architecture's derived description agrees with what it was before the layers became the
source of truth (DAGs against hard-coded values, kernels against neural-tangents)."""

import math
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from nt_oracle import nt_kernels

import infwidth as iw
from infwidth._nt_compat import empirical_ntk_fn
from infwidth.architectures import (
    GAP,
    Activation,
    AvgPool,
    Conv,
    Dense,
    Flatten,
    Myrtle,
    Network,
    Residual,
)
from infwidth.architectures.activations import get_activation, numerical_activation
from infwidth.kernels.native import native_kernels
from infwidth.studies.sequential_vs_parallel import ResidualNet
from infwidth.studies.width_power_law.lenet import LeNet

R2 = math.sqrt(2.0)
DIM = 64  # 8×8×1 images


def _softplus(x):
    return jnp.logaddexp(x, 0.0)


#: A user's activation from a Python callable (no registry entry, nothing in infwidth/):
#: its dual by Gauss–Hermite quadrature, with the error the quadrature states.
SOFTPLUS = numerical_activation(_softplus, name="softplus", deg=24)


def user_net(width: int = 64, pool: AvgPool = AvgPool(2), b_std: float = 0.0,
             act="relu") -> Network:
    """conv – φ – avgpool – conv – [residual: φ – conv – φ – conv] – φ – GAP – dense (a
    pre-activation residual block: neural-tangents sums Gaussian summands only, so the
    identity shortcut carries a conv's output); W_std = φ's normaliser after the first conv."""
    w = R2 if act == "relu" else get_activation(act).w_std
    return Network(layers=(
        Conv(3, W_std=1.0, b_std=b_std), Activation(act), pool,
        Conv(3, W_std=w, b_std=b_std),
        Residual((Activation(act), Conv(3, W_std=w, b_std=b_std), Activation(act),
                  Conv(3, W_std=w, b_std=b_std))),
        Activation(act), GAP(), Dense(W_std=w, b_std=b_std)), ndim=2, width=width)


def assert_rel(a, b, tol):
    err = np.max(np.abs(a - b)) / np.max(np.abs(b))
    assert err <= tol, f"relative error {err:.2e} > {tol:.0e}"


X = iw.sample_inputs("sphere", 5, DIM, seed=0)
X2 = iw.sample_inputs("sphere", 3, DIM, seed=1)


# --------------------------------------------------------------------------------------
# The user's network
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numba", "numpy", pytest.param("jax", marks=pytest.mark.jax)])
@pytest.mark.parametrize("pool", [AvgPool(2), AvgPool(3, stride=1)],
                         ids=["pool2", "pool3-stride1"])
def test_native_kernels_equal_neural_tangents(pool, backend):
    """Both kinds, symmetric and cross, to 1e-10 relative (overlapping pooling included);
    one neural-tangents call on all inputs gives both references."""
    net = user_net(pool=pool, b_std=0.1)
    ref = _user_net_oracle(pool)
    n = len(X)
    sym = native_kernels(net, X, backend=backend)
    cross = native_kernels(net, X, X2, backend=backend)
    for kind in ("nngp", "ntk"):
        assert_rel(sym[kind], ref[kind][:n, :n], 1e-10)
        assert_rel(cross[kind], ref[kind][:n, n:], 1e-10)


@lru_cache(maxsize=None)
def _user_net_oracle(pool: AvgPool) -> dict:
    """neural-tangents' kernels of the user's net on X ‖ X2, shared by the backends."""
    return nt_kernels(user_net(pool=pool, b_std=0.1), np.concatenate([X, X2]))


@pytest.mark.parametrize("tail", [(Flatten(),), (AvgPool(3, 2), GAP())],
                         ids=["diagonal", "full"])
def test_strided_overlapping_conv_and_mixed_activations(tail):
    """A stride-2 conv of filter 3 (overlapping), erf after relu, 1-D: native = NT."""
    net = Network(layers=(Conv(3), Activation("relu"), Conv(3, 2, "valid", W_std=R2, b_std=0.1),
                          Activation("erf")) + tail + (Dense(W_std=R2),), width=8)
    x = iw.sample_inputs("sphere", 4, 11, seed=0)
    ref = nt_kernels(net, x)
    got = native_kernels(net, x)
    for kind in ("nngp", "ntk"):
        assert_rel(got[kind], ref[kind], 1e-10)
    assert net.dag_for(11).layer_sizes == (11, 11, 5, 1)


def test_n_params_counts_the_initialised_parameters():
    net = user_net(width=8, b_std=0.1)
    _, params = net.stax[0](jax.random.PRNGKey(0), (-1,) + net.input_shape(DIM))
    count = sum(a.size for a in jax.tree_util.tree_leaves(params))
    # four 3×3 convs (1→8, then 8→8 three times) with biases, dense 8→1 with bias
    assert net.n_params(DIM) == count == (9 * 8 + 8) + 3 * (9 * 64 + 8) + (8 + 1)


def test_callable_activation_kernels_and_parameters():
    """The user's softplus (a callable) in the user's network: native NNGP and NTK equal
    neural-tangents' ElementwiseNumerical (the same deg² rule) to 10× the error the numerical
    dual states (the rule is not symmetric in (q1, q2), so mirrored entries differ from
    neural-tangents' by less than that error; per layer the errors add, hence the factor),
    and the finite net's parameter count."""
    assert not SOFTPLUS.exact and 0 < SOFTPLUS.error < 1e-6
    net = user_net(b_std=0.1, act=SOFTPLUS)
    # eager: jaxlib 0.10.2's XLA:CPU crashes (SIGSEGV) running this jitted program on an
    # AVX-512 Zen 5 (eager, or XLA_FLAGS=--xla_cpu_max_isa=AVX2, runs it)
    ref = nt_kernels(net, X)
    got = native_kernels(net, X, backend="numpy")
    for kind in ("nngp", "ntk"):
        assert_rel(got[kind], ref[kind], 10 * SOFTPLUS.error)
    small = user_net(width=8, b_std=0.1, act=SOFTPLUS)
    _, params = small.stax[0](jax.random.PRNGKey(0), (-1,) + small.input_shape(DIM))
    assert small.n_params(DIM) == sum(a.size for a in jax.tree_util.tree_leaves(params))


def _ntk_error(width: int, seed: int, x: np.ndarray, theta: np.ndarray, act="relu") -> float:
    """Relative Frobenius error of the empirical NTK of one random net of ``width``."""
    net = user_net(width=width, act=act)
    init_fn, apply_fn, _ = net.stax
    shape = (-1,) + net.input_shape(DIM)
    _, params = init_fn(jax.random.PRNGKey(seed), shape)
    fn = empirical_ntk_fn(apply_fn, trace_axes=(-1,), implementation="NTK_VECTOR_PRODUCTS")
    emp = np.asarray(fn(jnp.asarray(x.reshape(shape)), None, params))
    return float(np.linalg.norm(emp - theta) / np.linalg.norm(theta))


@pytest.mark.parametrize("act", ["relu", SOFTPLUS], ids=["relu", "softplus"])
def test_empirical_ntk_approaches_the_kernel_at_width_512(act):
    """Monte-Carlo tolerance from the width: the relative error of an empirical NTK shrinks as
    c/√width. c is measured here: the largest error over 4 seeds at width 32 is e32, so
    c ≤ e32·√32, and at width 512 the error must stay below 2·e32·√(32/512) = e32/2 (the
    factor 2 allows for a seed beyond the 4 measured). The error must also have shrunk from
    width 32. (Width 512 rather than 1024: the conv layers' empirical NTK costs ∝ width², and
    1024 took 43 s of the suite.)"""
    x = X[:3]
    theta = native_kernels(user_net(act=act), x, kinds=("ntk",))["ntk"]
    e32 = max(_ntk_error(32, s, x, theta, act) for s in range(4))
    e512 = _ntk_error(512, 0, x, theta, act)
    assert e512 <= 2.0 * e32 * math.sqrt(32 / 512), (e512, e32)
    assert e512 < e32


def test_learning_index_and_learning_curve():
    net = user_net()
    dag = net.dag_for(DIM)
    # leaves: 64 pixels; conv1 (8×8); conv2 on the 4×4 pooled map; the residual block's two
    # convs; root: GAP over the 16 positions
    assert dag.layer_sizes == (64, 64, 16, 16, 16, 1)
    # conv2's corner sees 2×2 pooled positions, i.e. the 4×4 corner of conv1's map
    assert dag.children[1][0] == tuple(r * 8 + c for r in range(4) for c in range(4))
    one = iw.learning_index(net, {0: 1}, DIM)
    two = iw.learning_index(net, {0: 1, 63: 1}, DIM)
    assert math.isfinite(one) and math.isfinite(two) and two > one
    target = iw.Target.local("hypercube", DIM, 1, degree=1)
    curve = iw.kernel_regression_curve(net, target, [4, 16, 32], seeds=2, n_test=64)
    mse = curve.sort_values("sample_size").test_mse.to_numpy()
    assert np.all(np.isfinite(mse)) and mse[-1] < mse[0]


def test_callable_activation_learning_index_and_curve():
    """The callable's learning curve on a small dense Network (its quadrature dual costs
    2·deg² evaluations per covariance entry, ~10³× a closed form: a GAP conv net's full
    covariance would take minutes here), and its learning index in the user's network."""
    w = SOFTPLUS.w_std
    net = Network(layers=(Dense(), Activation(SOFTPLUS), Dense(W_std=w), Activation(SOFTPLUS),
                          Dense(W_std=w)))
    assert net.n_params(16) == 16 * 512 + 512 * 512 + 512
    assert iw.learning_index(net, {0: 2}, 16) == 2.0  # one leaf: L = |k|
    conv = user_net(act=SOFTPLUS)
    assert iw.learning_index(conv, {0: 1, 63: 1}, DIM) > iw.learning_index(conv, {0: 1}, DIM)
    target = iw.Target.local("hypercube", 16, 4, degree=1)
    curve = iw.kernel_regression_curve(net, target, [4, 16, 64], seeds=2, n_test=64)
    mse = curve.sort_values("sample_size").test_mse.to_numpy()
    assert np.all(np.isfinite(mse)) and mse[-1] < mse[0]


# --------------------------------------------------------------------------------------
# Every existing architecture is derived from its layers, with the numbers of before
# --------------------------------------------------------------------------------------
CASES = {
    "mlp": (iw.MLP(depth=3, activation="erf", b_std=0.3), 7),
    "scnn-2d": (iw.SCNN(patch_dim=2, ndim=2, channels=2), 32),
    "dcnn": (iw.DCNN(patch_dim=2, filter_sizes=(2, 2), b_std=0.2), 16),
    "dcnn-2d": (iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2, activation="erf"), 64),
    "convnet-circ": (iw.ConvNet(filter_size=3, depth=2), 8),
    "convnet-gap": (iw.ConvNet(filter_size=3, depth=2, readout="gap", b_std=0.1), 8),
    "convnet-same-2d": (iw.ConvNet(filter_size=3, depth=2, padding="same", ndim=2), 25),
    "myrtle5-1d": (Myrtle(depth=5, ndim=1), 16),
    "lenet-pool3": (LeNet(width=2, ratio=1.5, dense_factors=(2, 1), pool=3), 81),
    "residual-dense-par": (ResidualNet(layout="parallel", depth=3, alpha=0.3, width=16,
                                       b_std=0.1), 8),
    "residual-conv-seq": (ResidualNet(branch="conv", depth=2, width=4), 16),
    "residual-conv-par": (ResidualNet(branch="conv", layout="parallel", depth=2, width=4,
                                      activation="erf"), 16),
}

# Recorded from the previous commit (each architecture with its own _stax/kernel_layers/
# dag_for): layer sizes, leaf size n0, the children of node 0 of every layer, n_params, and
# (NNGP, NTK)[0, 1] on iw.sample_inputs("sphere", 5, dim, seed=1).
_ALL = None
KNOWN = {
    "mlp": ((1, 1), 7, ((0,),), 529921, (0.5078909962425968, 1.603168896701667)),
    "scnn-2d": ((4, 1), 8, ((0, 1, 2, 3),), 6144, (0.20735075804229647, 0.12883073967354064)),
    "dcnn": ((8, 4, 2, 1), 2, ((0, 1), (0, 1), (0, 1)), 1052161,
             (0.5762973695948659, 0.8642359500255805)),
    "dcnn-2d": ((16, 4, 1), 4, ((0, 1, 4, 5), (0, 1, 2, 3)), 1052672,
                (-0.037217609002327595, -0.10543936327052465)),
    "convnet-circ": ((8, 8, 8, 1), 1, ((0, 1, 7), (0, 1, 7), _ALL), 792064,
                     (0.5143288973380351, 0.9091130310803683)),
    "convnet-gap": ((8, 8, 8, 1), 1, ((0, 1, 7), (0, 1, 7), _ALL), 789505,
                    (0.5557145386679048, 0.928935901512203)),
    "convnet-same-2d": ((25, 25, 25, 1), 1, ((0, 1, 5, 6), (0, 1, 5, 6), _ALL), 2376704,
                        (0.26640469188485955, 0.4202599989737221)),
    "myrtle5-1d": ((16, 16, 16, 8, 4, 1), 1,
                   ((0, 1), (0, 1), (0, 1, 2, 3), (0, 1, 2, 3), (0, 1, 2, 3)), 590848,
                   (0.33377877167556214, 0.7823051542062012)),
    "lenet-pool3": ((81, 81, 9, 1), 1,
                    ((0, 1, 9, 10), tuple(r * 9 + c for r in range(6) for c in range(6)),
                     tuple(range(9))), 112, (0.13764391178781243, 0.48601936752502106)),
    "residual-dense-par": ((1, 1), 8, ((0,),), 1793,
                           (-0.08483807571709126, -0.21873657711583042)),
    "residual-conv-seq": ((16,) * 6 + (1,), 1, ((0, 1, 4, 5),) * 5 + (_ALL,), 676,
                          (-0.24745728043776113, -0.5524292074980588)),
    "residual-conv-par": ((16,) * 4 + (1,), 1, ((0, 1, 4, 5),) * 3 + (_ALL,), 676,
                          (-0.38003156474931105, -0.9716766541359523)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_existing_architectures_are_unchanged(name):
    """DAG, n_params and native kernels as recorded before the layers became the source
    of truth (kernels to 1e-14 relative: the native recursion is unchanged, so the bits
    are; the margin only allows for a different BLAS)."""
    arch, dim = CASES[name]
    sizes, n0, first_children, n_params, k01 = KNOWN[name]
    dag = arch.dag_for(dim)
    assert (dag.layer_sizes, dag.patch_dim) == (sizes, n0)
    for ell, want in enumerate(first_children):
        want = tuple(range(sizes[ell])) if want is _ALL else want
        assert dag.children[ell][0] == want
    assert arch.n_params(dim) == n_params
    x = iw.sample_inputs("sphere", 5, dim, seed=1)
    got = iw.kernel(arch, x, kind=("nngp", "ntk"))
    for kind, want in zip(("nngp", "ntk"), k01):
        assert abs(got[kind][0, 1] - want) <= 1e-14 * abs(want)


@pytest.mark.parametrize("name", ["mlp", "dcnn-2d", "convnet-gap", "residual-dense-par",
                                  "residual-conv-par"])
def test_derived_stax_has_the_recorded_kernel(name):
    """The neural-tangents net derived from the layers has the recorded kernels (1e-13:
    neural-tangents and the native engine agreed to 2e-15 on these before)."""
    arch, dim = CASES[name]
    x = iw.sample_inputs("sphere", 2, dim, seed=1)
    ref = nt_kernels(arch, x)
    for kind, want in zip(("nngp", "ntk"), KNOWN[name][4]):
        assert abs(ref[kind][0, 1] - want) <= 1e-13 * abs(want)


def test_tree_plans_and_dispatch_properties():
    assert iw.MLP(depth=3).tree_plan(5) == ((1,), (1, 1))
    assert iw.DCNN(patch_dim=2, filter_sizes=(2, 4), ndim=2).tree_plan(256) == ((8, 8), (2, 4))
    for arch, dim in [(iw.ConvNet(), 8), (Myrtle(depth=5, ndim=1), 16),
                      (user_net(), DIM), (LeNet(), 64)]:
        assert arch.tree_plan(dim) is None
    assert user_net().readout == "gap" and user_net().full_spatial_covariance
    assert iw.ConvNet(padding="circular").translation_symmetric
    assert not iw.ConvNet(padding="same").translation_symmetric
    flat = Network(layers=(Conv(2, 2, "valid"), Activation("relu"), Flatten(), Dense()))
    assert flat.tree_plan(8) == ((4,), ()) and not flat.full_spatial_covariance


def test_registry_holds_the_constructors():
    from infwidth.architectures import ARCHITECTURES
    from infwidth.learning.config import ARCHITECTURE_TYPES

    assert {"MLP", "SCNN", "DCNN", "ConvNet", "Myrtle", "Network"} <= set(ARCHITECTURES)
    assert ARCHITECTURE_TYPES["Myrtle"] is Myrtle and "Network" not in ARCHITECTURE_TYPES


@pytest.mark.parametrize("layers, err, msg", [
    ((), TypeError, "layers must be a non-empty tuple"),
    ((Activation("relu"), Dense()), ValueError, "first layer"),
    ((Conv(3), Activation("relu")), ValueError, "last layer"),
    ((Conv(3), "relu", Dense()), TypeError, r"layers\[1\]"),
])
def test_bad_networks_are_refused(layers, err, msg):
    with pytest.raises(err, match=msg):
        Network(layers=layers)


def test_residual_shapes_must_agree():
    with pytest.raises(ValueError, match="shortcut"):
        Network(layers=(Conv(3), Residual((Conv(2, 2, "valid"),)), Flatten(), Dense()),
                ndim=2).input_shape(16)
    with pytest.raises(ValueError, match="branch"):
        Residual(())


def test_a_tree_network_gets_the_exact_spectrum_of_its_dcnn():
    """Non-overlapping convs only: a tree plan, and the exact spectrum of the D-CNN."""
    net = Network(layers=(Conv(2, 2, "valid"), Activation("relu"),
                          Conv(2, 2, "valid", W_std=R2), Activation("relu"), Flatten(),
                          Dense(W_std=R2)), width=4)
    dcnn = iw.DCNN(patch_dim=2, filter_sizes=(2,))
    assert net.tree_plan(16) == dcnn.tree_plan(16) == ((8,), (2,))
    assert net.dag_for(16) == dcnn.dag_for(16)
    a = iw.spectrum(net, 16, max_degree=2).table()
    b = iw.spectrum(dcnn, 16, max_degree=2).table()
    cols = [c for c in a.columns if c != "architecture"]
    assert a[cols].equals(b[cols])
