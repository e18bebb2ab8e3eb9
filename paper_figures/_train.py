"""Minibatch training of finite networks for the real-data figure (figure 7).

``iw.train_mse`` is full-batch GD with a step set from the training NTK: right for the
kernel-regime checks, too slow for 10⁴ Fashion-MNIST images. :func:`train_classifier` trains
the *same* neural-tangents network (``arch.stax``, NTK parameterisation, the width given) by
minibatch Adam on the MSE to centred one-hot targets, (1/2)·mean_i ‖f(x_i) − f₀(x_i) − y_i‖²
(f₀ the network at initialisation), and reports test accuracy (argmax). Same seed, same
numbers. Precision: float32. Under x64, neural-tangents' layers promote float32 activations
(``lax.conv`` then refuses mixed dtypes), as ``infwidth.learning.finite`` notes, so training runs
inside ``jax.enable_x64(False)``, where every array and scalar is float32: measured 7× faster
per gradient step than float64 for a width-128 D-CNN on 2 CPU cores (XLA's float64
convolutions are slow on CPU).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

import infwidth as iw


@dataclass(frozen=True)
class TrainSummary:
    test_accuracy: float
    test_mse: float
    train_loss: float
    steps: int
    seconds: float


def train_classifier(arch: iw.Architecture, x_train: np.ndarray, y_train: np.ndarray,
                     x_test: np.ndarray, y_test: np.ndarray, n_classes: int, *,
                     width: int, epochs: int = 20, min_steps: int = 400, batch_size: int = 128,
                     learning_rate: float = 1e-3, seed: int = 0) -> TrainSummary:
    """Train ``arch`` at ``width`` by minibatch Adam (cosine-decayed step) on one-hot MSE.

    Steps = max(``min_steps``, ``epochs``·⌊n/batch⌋); each step draws a fresh batch (without
    replacement within an epoch) from a seeded permutation.
    """
    if x_train.shape[0] != y_train.shape[0] or x_test.shape[0] != y_test.shape[0]:
        raise ValueError("x and y must have the same number of rows")
    with jax.enable_x64(False):
        return _train(arch, x_train, y_train, x_test, y_test, n_classes, width, epochs,
                      min_steps, batch_size, learning_rate, seed)


def _train(arch, x_train, y_train, x_test, y_test, n_classes, width, epochs, min_steps,
           batch_size, learning_rate, seed) -> TrainSummary:
    t0 = time.perf_counter()
    net = iw.learning.with_width(dataclasses.replace(arch, out_dim=n_classes), width)
    init_fn, apply_fn, _ = net.stax
    dim = x_train.shape[1]
    shape = net.input_shape(dim)
    n = x_train.shape[0]
    centred = np.full((n, n_classes), -1.0 / n_classes, np.float32)
    centred[np.arange(n), y_train] += 1.0
    xs = jnp.asarray(x_train.reshape((n,) + shape), jnp.float32)
    ys = jnp.asarray(centred)
    k_init = jax.random.split(jax.random.PRNGKey(seed))[1]
    _, params = init_fn(k_init, (-1,) + shape)
    b = min(batch_size, n)
    per_epoch = max(1, n // b)
    steps = max(min_steps, epochs * per_epoch)
    sched = optax.cosine_decay_schedule(learning_rate, steps)
    opt = optax.adam(sched)
    state = opt.init(params)

    pred_fn = jax.jit(apply_fn)
    xt = x_test.reshape((x_test.shape[0],) + shape)

    def predict(p, x):
        return np.concatenate([np.asarray(pred_fn(p, jnp.asarray(x[i:i + 1024])))
                               for i in range(0, x.shape[0], 1024)])

    # Centred model f_θ − f_θ₀ (as in iw.train_mse): the initial function is a random
    # draw of the NNGP, as large as the targets; subtracting it leaves the kernel's mean
    # predictor in the wide limit.
    f0_train, f0_test = jnp.asarray(predict(params, np.asarray(xs))), predict(params, xt)

    def loss_fn(p, xb, yb, f0b):
        return 0.5 * jnp.mean(jnp.sum((apply_fn(p, xb) - f0b - yb) ** 2, -1))

    # Data go in as arguments, not closure constants (XLA would constant-fold them), and the
    # steps run in a Python loop: on XLA:CPU a lax.scan over the same step measured 25×
    # slower per step (the conv runtime of a while-loop body is much slower).
    @jax.jit
    def step(p, s, idx, xs, ys, f0_train):
        loss, g = jax.value_and_grad(loss_fn)(p, xs[idx], ys[idx], f0_train[idx])
        u, s = opt.update(g, s, p)
        return optax.apply_updates(p, u), s, loss

    done, loss = 0, math.nan
    rng = np.random.default_rng(seed)
    while done < steps:
        perm = rng.permutation(n)[: per_epoch * b].reshape(per_epoch, b)
        for idx in perm[: steps - done]:
            params, state, loss = step(params, state, jnp.asarray(idx), xs, ys, f0_train)
        done += min(per_epoch, steps - done)
    pred = predict(params, xt) - f0_test
    yt = np.full((x_test.shape[0], n_classes), -1.0 / n_classes)
    yt[np.arange(x_test.shape[0]), y_test] += 1.0
    return TrainSummary(float(np.mean(pred.argmax(1) == y_test)),
                        float(np.mean((pred - yt) ** 2)), float(loss), int(done),
                        time.perf_counter() - t0)
