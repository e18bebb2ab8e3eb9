"""Seed study 000: the power law in width toward the infinite-width limit
(generalized LeNet, its exact kernels, width sweeps and power-law fits).
"""

from infwidth.studies.width_power_law.gd import (
    GDResult,
    init_params,
    kernel_gd_predict,
    kernel_regression,
    train_gd,
)
from infwidth.studies.width_power_law.lenet import (
    LeNet,
    conservation_law,
    conservation_ratio,
    lenet_kernel,
    lenet_kernels,
)
from infwidth.studies.width_power_law.scaling import (
    PowerLawFit,
    compare_power_laws,
    fit_power_law,
    width_sweep,
)

__all__ = [
    "LeNet",
    "lenet_kernel",
    "lenet_kernels",
    "conservation_law",
    "conservation_ratio",
    "GDResult",
    "init_params",
    "train_gd",
    "kernel_gd_predict",
    "kernel_regression",
    "width_sweep",
    "PowerLawFit",
    "fit_power_law",
    "compare_power_laws",
]
