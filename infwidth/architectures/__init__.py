"""Architectures: the topologies infwidth analyses and their activations.

``networks``: MLP, SCNN, DCNN and ConvNet, each with its neural-tangents ``stax``
triple, its DAG and its leaf geometry. ``activations``: the normalised activations
and their Gaussian duals (docs/theory.md §2).
"""

from infwidth.architectures.activations import (
    ACTIVATIONS,
    default_w_std,
    dual,
    dual_derivative,
    gaussian_dual,
)
from infwidth.architectures.layers import kernel_layers
from infwidth.architectures.myrtle import Myrtle
from infwidth.architectures.networks import DAG, DCNN, MLP, SCNN, Architecture, ConvNet

__all__ = [
    "ACTIVATIONS",
    "default_w_std",
    "dual",
    "dual_derivative",
    "gaussian_dual",
    "DAG",
    "MLP",
    "SCNN",
    "DCNN",
    "ConvNet",
    "Architecture",
    "Myrtle",
    "kernel_layers",
]
