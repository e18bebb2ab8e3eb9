"""infwidth: infinite-width analysis of neural architectures.

Importing infwidth turns on ``jax_enable_x64``: spectra and regression run in float64.
neural-tangents is reached only through :mod:`infwidth._nt_compat`, which never imports
TensorFlow.
"""

import jax as _jax

_jax.config.update("jax_enable_x64", True)

from .datasets import (Dataset, load_cifar10, load_digits, load_fashion_mnist,  # noqa: E402
                       load_mnist1d)

__version__ = "0.1.0"
from .architectures import DAG, MLP, SCNN, DCNN, ConvNet, Architecture  # noqa: E402
from .inputs import sample_inputs  # noqa: E402
from .kernels import kernel, tree_kernel, estimate_block_memory  # noqa: E402
from .finite import TrainResult, train_mse, stable_learning_rate, with_width  # noqa: E402
from .filters import (FilterClusters, TrainedCNN, VGGConfig, afcc, analyze_filters,  # noqa: E402
                      find_clusters, fit_readout, label_field_matrices, layer_analysis,
                      max_label_error, random_cnn, snr, train_cnn)
from .spectrum import (EigenType, Eigenfunction, RecursionOptions, Spectrum, eigenfunction,  # noqa: E402
                       learning_index, spectrum)
from .depth import (Cutoff, MeanField, chi1, correlation_map, cutoff_depth,  # noqa: E402
                    edge_of_chaos, kernel_map, length_map, mean_field, mean_field_kernels,
                    nt_kernels, phase_diagram, q_fixed_point)
from .depth_profiles import mean_field_profile, network_profile  # noqa: E402
from .deep_limit import GradientLayerOrbits, gradient_layer_limit, gradient_layer_orbits  # noqa: E402
from .targets import Component, Target, TargetFunction  # noqa: E402
from .generalization import (aggregate_seeds, component_table, eigenlearning,  # noqa: E402
                             kernel_regression_curve, nested_regression,
                             predict_learning_curve, regression_dataset, solve_kappa,
                             staircase, tree_gram)
from .finite import aggregate_widths, finite_width_curve  # noqa: E402
from .lenet import (LeNet, lenet_kernel, lenet_kernels, conservation_law,  # noqa: E402
                    conservation_ratio, count_params)
from .gd import GDResult, init_params, train_gd, kernel_gd_predict, kernel_regression  # noqa: E402
from .scaling import width_sweep, PowerLawFit, fit_power_law, compare_power_laws  # noqa: E402
from .residual import (ResidualNet, residual_stax, residual_recursion, residual_nngp,  # noqa: E402
                       predicted_gap, residual_kernels, kernel_gap, gap_table, loglog_slope)
