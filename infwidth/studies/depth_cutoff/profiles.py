"""Depth profiles of random networks: finite width against mean field.

For a batch of inputs, track as a function of depth ℓ: the mean pairwise cosine, the
normalised pairwise distance, the share of inputs that a random linear readout sends to its
most common class, and (1/ℓ)·log(‖h_ℓ‖/√width). :func:`network_profile` runs random finite
networks (``lax.scan`` over layers, ``vmap`` over seeds); :func:`mean_field_profile` gives
the infinite-width counterpart from the kernels of :mod:`infwidth.studies.depth_cutoff.maps`.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from infwidth.studies.depth_cutoff.maps import (
    _check_act,
    _check_sigmas,
    _check_x,
    _phis,
    mean_field_kernels,
)
from infwidth.validation import check_dtype, check_int

__all__ = ["mean_field_profile", "network_profile"]


def _corr(K):
    d = jnp.sqrt(jnp.diagonal(K, axis1=-2, axis2=-1))
    return K / (d[..., :, None] * d[..., None, :])


def _gp_top_fractions(Ks: np.ndarray, key, n_classes: int, n_draws: int) -> np.ndarray:
    """E[max-class share] per layer when the logits of each class are independent GP(0, K_ℓ)
    draws (Monte Carlo over n_draws readouts). K_ℓ/max diag + 1e-10·I is Cholesky-factored:
    the jitter adds logit noise of sd 1e-5, far below the O(1) gaps that decide the class."""
    n = Ks.shape[1]
    C = Ks / np.max(np.diagonal(Ks, axis1=1, axis2=2), axis=1)[:, None, None]
    L = np.linalg.cholesky(C + 1e-10 * np.eye(n))
    # NumPy generator seeded by the key's bits: a jax.random draw of this shape compiles slowly.
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
    Z = rng.standard_normal((Ks.shape[0], n_draws, Ks.shape[1], n_classes))
    pred = np.argmax(np.matmul(L[:, None], Z), axis=-1)  # (depth, draws, n)
    counts = (pred[..., None] == np.arange(n_classes)).sum(axis=2)
    return counts.max(axis=-1).mean(axis=1) / Ks.shape[1]


def mean_field_profile(x, depth: int, activation: str, sigma_w2: float, sigma_b2: float, *,
                       key: jax.Array | None = None, n_classes: int = 10,
                       n_draws: int = 64) -> pd.DataFrame:
    """Infinite-width counterparts of :func:`network_profile`, ℓ = 1..depth.

    cosine = mean_{a<b} K_ab/√(K_aa K_bb); distance = mean_{a≠b}(K_aa + K_bb − 2K_ab) /
    (2·mean_a K_aa); log_norm_rate = mean_a ½·log K_aa / ℓ; top_class_fraction = Monte-Carlo
    (``n_draws`` draws, needs ``key``) of the readout on logits ~ GP(0, K_ℓ) per class.
    """
    Ks = mean_field_kernels(x, depth, activation, sigma_w2, sigma_b2)
    n = Ks.shape[1]
    C = np.asarray(_corr(jnp.asarray(Ks)))
    iu = np.triu_indices(n, 1)
    diag = np.diagonal(Ks, axis1=1, axis2=2)
    dist = (2 * n * diag.sum(1) - 2 * Ks.sum((1, 2))) / (n * (n - 1)) / (2 * diag.mean(1))
    ell = np.arange(1, depth + 1)
    frac = np.full(depth, np.nan)
    if key is not None:
        frac = _gp_top_fractions(Ks, key, n_classes, n_draws)
    return pd.DataFrame({"depth": ell, "cosine": C[:, iu[0], iu[1]].mean(1), "distance": dist,
                         "top_class_fraction": frac,
                         "log_norm_rate": 0.5 * np.log(diag).mean(1) / ell})


# ----------------------------------------------------------- finite random networks
def _layer_stats(h, log_s, V, ell):
    """cosine, distance, top-class fraction, log-norm rate of pre-activations h (n_in, width)
    whose true value is exp(log_s)·h."""
    nrm2 = jnp.sum(h * h, axis=1)
    G = h @ h.T
    C = G / jnp.sqrt(nrm2[:, None] * nrm2[None, :])
    n = h.shape[0]
    cos = (jnp.sum(C) - jnp.trace(C)) / (n * (n - 1))
    hc = h - h.mean(0)  # Σ_{a,b}‖h_a − h_b‖² = 2n Σ_a‖h_a − h̄‖², without cancellation
    dist = n * jnp.sum(hc * hc) / ((n - 1) * jnp.sum(nrm2))
    pred = jnp.argmax(h @ V, axis=1)
    frac = jnp.max(jnp.bincount(pred, length=V.shape[1])).astype(h.dtype) / n
    lognorm = (jnp.mean(0.5 * jnp.log(nrm2 / h.shape[1])) + log_s) / ell
    return jnp.stack([cos, dist, frac, lognorm])


def network_profile(x, depth: int, width: int, activation: str, sigma_w2: float,
                    sigma_b2: float, key: jax.Array, *, n_seeds: int = 4, n_classes: int = 10,
                    dtype: str = "float32") -> pd.DataFrame:
    """Depth profile of random finite MLPs on the inputs x (rows), one row per (seed, depth).

    h_1 = σ_w/√dim·W_1 x + σ_b b_1, h_{ℓ+1} = σ_w/√width·W_{ℓ+1} φ(h_ℓ) + σ_b b_{ℓ+1}, all
    entries i.i.d. N(0, 1); layer ℓ of seed s draws from ``fold_in(fold_in(key, s), ℓ)``
    (seed s gives the same numbers whatever n_seeds). Tracked for ℓ = 1..depth:

    - cosine: mean_{a<b} cos(h_a, h_b);
    - distance: mean_{a≠b}‖h_a − h_b‖² / (2·mean_a‖h_a‖²) (= 1 − cosine for equal norms);
    - top_class_fraction: share of inputs that the readout argmax_k (V h_a)_k, V a fixed
      Gaussian (n_classes × width) matrix per seed, puts in its most common class;
    - log_norm_rate: mean_a log(‖h_a‖/√width) / ℓ.

    Layers run in ``jax.lax.scan``, seeds in ``vmap``. relu is positively homogeneous, so its
    h is rescaled by a common scalar every layer (bias divided by the same scalar) and the
    log-scale kept aside: exact, and no overflow when q_ℓ grows like (σ_w²/2)^ℓ.
    float32 is ~4× faster than float64 here; cosines are then resolved to ~1e-6.

    Example:
        >>> from infwidth import load_digits
        >>> x = load_digits(n_train=32).x_train
        >>> df = network_profile(x, 5, 64, "relu", 2.0, 0.0, jax.random.key(0), n_seeds=2)
        >>> df.shape
        (10, 6)
    """
    x = _check_x(x)
    depth = check_int("depth", depth, 1)
    width = check_int("width", width, 1)
    n_seeds = check_int("n_seeds", n_seeds, 1)
    n_classes = check_int("n_classes", n_classes, 2)
    _check_act(activation)
    sigma_w2, sigma_b2 = _check_sigmas(sigma_w2, sigma_b2)
    check_dtype(dtype)
    keys = jax.vmap(lambda s: jax.random.fold_in(key, s))(jnp.arange(n_seeds))
    stats = _profile_impl(keys, jnp.asarray(x, dtype), sigma_w2, sigma_b2, depth=depth,
                          width=width, activation=activation, n_classes=n_classes, dtype=dtype)
    stats = np.asarray(stats)  # (n_seeds, depth, 4)
    seeds, ells = np.meshgrid(np.arange(n_seeds), np.arange(1, depth + 1), indexing="ij")
    cols = dict(zip(("cosine", "distance", "top_class_fraction", "log_norm_rate"),
                    stats.reshape(-1, 4).T))
    return pd.DataFrame({"seed": seeds.ravel(), "depth": ells.ravel(), **cols})


@functools.partial(jax.jit, static_argnames=("depth", "width", "activation", "n_classes",
                                             "dtype"))
def _profile_impl(keys, x, sigma_w2, sigma_b2, *, depth, width, activation, n_classes, dtype):
    dt = jnp.dtype(dtype)
    sw, sb = jnp.sqrt(sigma_w2).astype(dt), jnp.sqrt(sigma_b2).astype(dt)
    phi = _phis(activation, jnp)[0]
    homogeneous = activation == "relu"

    def rescale(h, log_s):
        if not homogeneous:
            return h, log_s
        r = jnp.sqrt(jnp.mean(h * h))
        return h / r, log_s + jnp.log(r)

    def one_seed(key, x):
        # One normal() per layer (each call site costs seconds of XLA compile on CPU).
        d_in = x.shape[1]
        z = jax.random.normal(jax.random.fold_in(key, 1),
                              ((d_in + 1) * width + width * n_classes,), dt)
        W1, b1 = z[:d_in * width].reshape(d_in, width), z[d_in * width:(d_in + 1) * width]
        V = z[(d_in + 1) * width:].reshape(width, n_classes)
        h = sw / math.sqrt(d_in) * x @ W1 + sb * b1
        h, log_s = rescale(h, jnp.zeros((), dt))
        s1 = _layer_stats(h, log_s, V, 1)

        def body(carry, ell):
            h, log_s = carry
            z = jax.random.normal(jax.random.fold_in(key, ell), ((width + 1) * width,), dt)
            W, b = z[:width * width].reshape(width, width), z[width * width:]
            h = sw / math.sqrt(width) * phi(h) @ W + sb * jnp.exp(-log_s) * b
            h, log_s = rescale(h, log_s)
            return (h, log_s), _layer_stats(h, log_s, V, ell)

        _, rest = jax.lax.scan(body, (h, log_s), jnp.arange(2, depth + 1))
        return jnp.concatenate([s1[None], rest], axis=0)

    return jax.vmap(one_seed, in_axes=(0, None))(keys, x)


# ------------------------------------------------------------------- cut-off detector