"""infwidth: infinite-width analysis of neural architectures.

The package is a pipeline, one folder a stage::

    architectures  →  kernels  →  eigenspaces  →  learning
    (topologies)      (NNGP/NTK)   (spectrum by      (predicted and measured
                                   frequency/space)   learning curves, finite nets)

with ``data`` (inputs and data sets) and ``io`` (result files) beside it, and the seed
studies apart in :mod:`infwidth.studies` (``import infwidth.studies.<name>``); the core never
imports a study. ``import infwidth`` exports the core's user-facing names only and turns on
``jax_enable_x64``: spectra and regression run in float64. neural-tangents is reached only
through :mod:`infwidth._nt_compat`, which never imports TensorFlow.

Example:
    >>> import infwidth as iw
    >>> x = iw.sample_inputs("hypercube", n=4, dim=8, patch_dim=2, seed=0)
    >>> iw.kernel(iw.DCNN(patch_dim=2, filter_sizes=(2, 2)), x).shape
    (4, 4)
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from infwidth.architectures import DCNN, MLP, SCNN, Architecture, ConvNet, Network  # noqa: E402
from infwidth.data import load_cifar10, load_digits, load_fashion_mnist, load_mnist1d, sample_inputs  # noqa: E402
from infwidth.eigenspaces import (  # noqa: E402
    ConvKernel,
    Spectrum,
    conv_spectrum,
    eigenfunction,
    learning_index,
    spectrum,
)
from infwidth.kernels import kernel, kernel_cost  # noqa: E402
from infwidth.learning import (  # noqa: E402
                           Component,
                           Target,
                           eigenlearning,
                           finite_width_curve,
                           kernel_regression_curve,
                           predict_learning_curve,
                           staircase,
                           train_mse,
)

__version__ = "0.2.0"

__all__ = [
    "Architecture", "MLP", "SCNN", "DCNN", "ConvNet", "Network",
    "sample_inputs", "load_digits", "load_mnist1d", "load_fashion_mnist", "load_cifar10",
    "kernel", "kernel_cost",
    "spectrum", "Spectrum", "learning_index", "eigenfunction", "ConvKernel", "conv_spectrum",
    "Target", "Component", "eigenlearning", "predict_learning_curve", "staircase",
    "kernel_regression_curve", "finite_width_curve", "train_mse",
]
