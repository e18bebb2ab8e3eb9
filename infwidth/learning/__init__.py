"""Learning curves (docs/theory.md §4): targets, the eigenlearning predictor, measured
kernel regression and finite networks trained by gradient descent.
"""

from infwidth.learning.finite import (
    ClassifierResult,
    TrainResult,
    aggregate_widths,
    finite_width_curve,
    stable_learning_rate,
    train_classifier,
    train_mse,
    with_width,
)
from infwidth.learning.predictor import (
    component_table,
    eigenlearning,
    kernel_trace,
    predict_learning_curve,
    solve_kappa,
    staircase,
)
from infwidth.learning.regression import (
    DEFAULT_JITTER,
    aggregate_seeds,
    kernel_regression_curve,
    label_noise,
    nested_regression,
    regression_dataset,
)
from infwidth.learning.targets import (
    Component,
    Target,
    TargetFunction,
    canonical_type,
    harmonic_count,
)
from infwidth.learning.train import (
    FitResult,
    centred_mse,
    cross_entropy,
    fit,
    init,
    mse,
    precision,
    predict,
    seed_keys,
)

__all__ = [
    "Component",
    "Target",
    "TargetFunction",
    "canonical_type",
    "harmonic_count",
    "solve_kappa",
    "eigenlearning",
    "component_table",
    "predict_learning_curve",
    "staircase",
    "kernel_trace",
    "nested_regression",
    "regression_dataset",
    "label_noise",
    "kernel_regression_curve",
    "aggregate_seeds",
    "DEFAULT_JITTER",
    "TrainResult",
    "stable_learning_rate",
    "train_mse",
    "with_width",
    "finite_width_curve",
    "aggregate_widths",
    "ClassifierResult",
    "train_classifier",
    "FitResult",
    "seed_keys",
    "init",
    "centred_mse",
    "mse",
    "cross_entropy",
    "fit",
    "predict",
    "precision",
]
