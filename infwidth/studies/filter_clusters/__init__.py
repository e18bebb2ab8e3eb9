"""Seed study 001: per-filter label clusters, SNR and AFCC of a small VGG-like CNN.
"""

from infwidth.studies.filter_clusters.cnn import (
                                                  TrainedCNN,
                                                  VGGConfig,
                                                  cnn_layer_features,
                                                  cnn_logits,
                                                  init_cnn_params,
                                                  random_cnn,
                                                  train_cnn,
)
from infwidth.studies.filter_clusters.filters import (
                                                  SNR_DEFINITIONS,
                                                  FilterClusters,
                                                  afcc,
                                                  afcc_mask,
                                                  analyze_filters,
                                                  cluster_noise,
                                                  filter_fields,
                                                  find_clusters,
                                                  fit_readout,
                                                  label_field_matrices,
                                                  layer_analysis,
                                                  max_label_error,
                                                  random_mask,
                                                  readout_logits,
                                                  snr,
                                                  threshold_field,
)

__all__ = [
    "VGGConfig", "TrainedCNN", "init_cnn_params", "cnn_layer_features", "cnn_logits", "train_cnn",
    "random_cnn", "fit_readout", "readout_logits", "filter_fields", "label_field_matrices",
    "threshold_field", "find_clusters", "cluster_noise", "FilterClusters", "analyze_filters",
    "snr", "SNR_DEFINITIONS", "afcc_mask", "random_mask", "afcc", "max_label_error",
    "layer_analysis"
]
