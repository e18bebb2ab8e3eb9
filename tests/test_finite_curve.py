"""Finite-width learning curves, paired with the kernel curve."""

import numpy as np
import pytest

import infwidth as iw


def test_gap_to_the_kernel_shrinks_with_width():
    """The network's test predictions approach the NTK regression predictor on the same
    data as the width grows (3 widths, 2 seeds), and the kernel column is the kernel
    curve's number on the same data (paired)."""
    arch = iw.MLP(depth=1)
    t = iw.Target.pair("hypercube", 16, 4)
    df = iw.finite_width_curve(arch, t, [32], widths=(32, 128, 512), seeds=2, n_test=100,
                               max_steps=4000)
    assert list(df.width) == [32, 128, 512]
    assert (df.converged == 1.0).all()
    gaps = df.prediction_gap.to_numpy()
    assert gaps[0] > gaps[1] > gaps[2], gaps
    kern = iw.kernel_regression_curve(arch, t, [32], seeds=2, n_test=100)
    assert df.kernel_test_mse.iloc[0] == pytest.approx(kern.test_mse.iloc[0], rel=1e-9)
    assert np.allclose(df.mse_gap, df.test_mse - df.kernel_test_mse)


def test_float32_training_follows_the_same_protocol():
    """dtype="float32" (the fast path for convolutions on CPU) trains on the same data against
    the same float64 kernel regression, converges, approaches the kernel predictor as the
    width grows, and repeats itself exactly under the same seed."""
    arch = iw.DCNN(patch_dim=4, filter_sizes=(4,))
    t = iw.Target.pair("hypercube", 16, 4)
    kw = dict(widths=(16, 512), seeds=1, n_test=64, per_seed=True, progress=False,
              max_steps=3000, dtype="float32")
    df = iw.finite_width_curve(arch, t, [16], **kw)
    ref = iw.finite_width_curve(arch, t, [16], widths=(16,), seeds=1, n_test=64,
                                per_seed=True, progress=False, max_steps=3000)
    assert df.kernel_test_mse.iloc[0] == pytest.approx(ref.kernel_test_mse.iloc[0], rel=1e-12)
    assert df.converged.all()
    gaps = df.prediction_gap.to_numpy()
    assert gaps[1] < 0.5 * gaps[0], gaps  # lazy regime: ∝ width^(-1/2), i.e. ≈ 0.18×
    again = iw.finite_width_curve(arch, t, [16], **kw)
    assert again.test_mse.tolist() == df.test_mse.tolist()


def test_non_convergence_is_reported_not_hidden():
    arch = iw.MLP(depth=1)
    t = iw.Target.local("hypercube", 16, 4, degree=2)
    per = iw.finite_width_curve(arch, t, [16], widths=(32,), seeds=1, n_test=20,
                                max_steps=5, chunk=5, per_seed=True)
    assert len(per) == 1 and not per.converged.iloc[0] and per.steps.iloc[0] == 5
    assert np.isfinite(per.test_mse.iloc[0])


@pytest.mark.parametrize("kwargs, msg", [
    (dict(widths=(0, 64)), "widths must be positive"),
    (dict(sample_sizes=[-1]), "sample_sizes must be"),
    (dict(noise=-1.0), "noise must be"),
    (dict(lr_fraction=1.5), "lr_fraction must lie"),
    (dict(seeds=0), "seeds must be a positive integer"),
    (dict(dtype="float16"), "dtype must be"),
])
def test_bad_input(kwargs, msg):
    args = dict(arch=iw.MLP(depth=1), target=iw.Target.pair("hypercube", 16, 4),
                sample_sizes=[8])
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        iw.finite_width_curve(**args)
