"""Architectures: the topologies infwidth analyses and their activations.

``layers``: the layer specs (Conv, Dense, Activation, AvgPool, Flatten, GAP, Residual), the
one description of a network. ``networks``: :class:`Architecture`, which derives the finite
net, kernel plan, DAG, parameter count and input shape from the layers; :class:`Network`
(any layer tuple) and the constructors MLP, SCNN, DCNN, ConvNet (``myrtle``: Myrtle).
``activations``: the normalised activations and their Gaussian duals (docs/theory.md §2).
:data:`ARCHITECTURES`: every public constructor by class name.
"""

from infwidth.architectures.activations import (
    ACTIVATIONS,
    ActivationSpec,
    default_w_std,
    dual,
    dual_derivative,
    gaussian_dual,
    get_activation,
    numerical_activation,
)
from infwidth.architectures.layers import (
    GAP,
    Activation,
    AvgPool,
    Conv,
    Dense,
    Flatten,
    Residual,
    kernel_layers,
)
from infwidth.architectures.myrtle import Myrtle
from infwidth.architectures.networks import (
    ARCHITECTURES,
    DAG,
    DCNN,
    MLP,
    SCNN,
    Architecture,
    ConvNet,
    Network,
)

__all__ = [
    "ACTIVATIONS",
    "ActivationSpec",
    "get_activation",
    "numerical_activation",
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
    "Network",
    "Myrtle",
    "ARCHITECTURES",
    "Conv",
    "Dense",
    "Activation",
    "AvgPool",
    "Flatten",
    "GAP",
    "Residual",
    "kernel_layers",
]
