"""Inputs: synthetic domains (hypercube, sphere product) and the offline data sets
(docs/theory.md §1, §6).
"""

from infwidth.data.inputs import sample_inputs, check_inputs, check_targets, DOMAINS
from infwidth.data.datasets import (Dataset, load_digits, load_mnist1d, load_fashion_mnist,
                                    load_cifar10, read_idx, FASHION_MNIST_DIR)

__all__ = [
    "sample_inputs", "check_inputs", "check_targets", "DOMAINS", "Dataset", "load_digits",
    "load_mnist1d", "load_fashion_mnist", "load_cifar10", "read_idx", "FASHION_MNIST_DIR"
]
