"""Learning curves (docs/theory.md §4): targets, the eigenlearning predictor, measured
kernel regression and finite networks trained by gradient descent.
"""

from infwidth.learning.targets import (Component, Target, TargetFunction, canonical_type,
                                       harmonic_count, gegenbauer)
from infwidth.learning.predictor import (solve_kappa, eigenlearning, component_table,
                                         predict_learning_curve, staircase, kernel_trace)
from infwidth.learning.regression import (nested_regression, regression_dataset, label_noise,
                                          kernel_regression_curve, aggregate_seeds, DEFAULT_JITTER)
from infwidth.learning.finite import (TrainResult, stable_learning_rate, train_mse, with_width,
                                      finite_width_curve, aggregate_widths)

__all__ = [
    "Component", "Target", "TargetFunction", "canonical_type", "harmonic_count", "gegenbauer",
    "solve_kappa", "eigenlearning", "component_table", "predict_learning_curve", "staircase",
    "kernel_trace", "nested_regression", "regression_dataset", "label_noise",
    "kernel_regression_curve", "aggregate_seeds", "DEFAULT_JITTER", "TrainResult",
    "stable_learning_rate", "train_mse", "with_width", "finite_width_curve", "aggregate_widths"
]
