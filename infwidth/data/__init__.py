"""Inputs: synthetic domains (hypercube, sphere product) and the offline data sets
(docs/theory.md §1, §6).
"""

from infwidth.data.datasets import (
    FASHION_MNIST_DIR,
    Dataset,
    load_cifar10,
    load_digits,
    load_fashion_mnist,
    load_mnist1d,
    read_idx,
)
from infwidth.data.inputs import DOMAINS, check_inputs, check_targets, sample_inputs

__all__ = [
    "sample_inputs",
    "check_inputs",
    "check_targets",
    "DOMAINS",
    "Dataset",
    "load_digits",
    "load_mnist1d",
    "load_fashion_mnist",
    "load_cifar10",
    "read_idx",
    "FASHION_MNIST_DIR",
]
