"""Seed study 004: deep limits and the depth cut-off (mean-field maps, finite-network
depth profiles, the residual gradient-layer limit).
"""

from infwidth.studies.depth_cutoff.deep_limit import (
    GradientLayerOrbits,
    gradient_layer_limit,
    gradient_layer_orbits,
)
from infwidth.studies.depth_cutoff.maps import (
    ACTIVATIONS,
    Cutoff,
    MeanField,
    chi1,
    correlation_map,
    cutoff_depth,
    edge_of_chaos,
    kernel_map,
    length_map,
    mean_field,
    mean_field_kernels,
    nt_kernels,
    phase_diagram,
    q_fixed_point,
)
from infwidth.studies.depth_cutoff.profiles import mean_field_profile, network_profile

__all__ = [
    "ACTIVATIONS",
    "MeanField",
    "Cutoff",
    "length_map",
    "correlation_map",
    "q_fixed_point",
    "chi1",
    "mean_field",
    "edge_of_chaos",
    "phase_diagram",
    "kernel_map",
    "mean_field_kernels",
    "nt_kernels",
    "cutoff_depth",
    "mean_field_profile",
    "network_profile",
    "GradientLayerOrbits",
    "gradient_layer_limit",
    "gradient_layer_orbits",
]
