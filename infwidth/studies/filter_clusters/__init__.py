"""Seed study 001: per-filter label clusters, SNR and AFCC of a small VGG-like CNN.
"""

from infwidth.studies.filter_clusters.cnn import (VGGConfig, TrainedCNN, init_cnn_params,
                                                  cnn_layer_features, cnn_logits, train_cnn,
                                                  random_cnn)
from infwidth.studies.filter_clusters.filters import (fit_readout, readout_logits, filter_fields,
                                                      label_field_matrices, threshold_field,
                                                      find_clusters, cluster_noise, FilterClusters,
                                                      analyze_filters, snr, SNR_DEFINITIONS,
                                                      afcc_mask, random_mask, afcc, max_label_error,
                                                      layer_analysis)

__all__ = [
    "VGGConfig", "TrainedCNN", "init_cnn_params", "cnn_layer_features", "cnn_logits", "train_cnn",
    "random_cnn", "fit_readout", "readout_logits", "filter_fields", "label_field_matrices",
    "threshold_field", "find_clusters", "cluster_noise", "FilterClusters", "analyze_filters",
    "snr", "SNR_DEFINITIONS", "afcc_mask", "random_mask", "afcc", "max_label_error",
    "layer_analysis"
]
