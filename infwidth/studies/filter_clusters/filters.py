"""Per-filter label clusters, SNR and AFCC of a small CNN (seeds/001, docs/theory.md §5).

Pipeline (Meir et al., Sci. Rep. 2024, as reconstructed in docs/theory.md §5):

1. Train a VGG-like CNN (:func:`train_cnn`), or keep its random initialisation as a control
   (:func:`random_cnn`).
2. Freeze it up to conv layer L (1-based) and fit a *bias-free* linear readout
   w ∈ R^{P×F×C} on the **flattened** features φ(x) ∈ R^{P×F} of that layer (P = spatial
   positions, F = filters). Flattening keeps one weight per (position, filter, label), as in the
   original method and lets a filter's weights differ by position; a global-average-pooled
   readout is the special case w[p, f, b] = w[f, b] / P. The default readout is softmax
   cross-entropy (ridge on centred one-hot targets is the closed-form alternative), returned
   in the minimum-norm gauge Σ_b w[p, f, b] = 0 that fixes the fields (see :func:`fit_readout`).
3. Field of filter f: z_f(x)_b = Σ_p w[p, f, b]·φ(x)[p, f]; Σ_f z_f(x) is the readout logit.
   M_f[a, b] = Σ_{x: y(x)=a} z_f(x)_b over the test set (:func:`label_field_matrices`).
4. M̂_f = M_f / max(M_f); the label pair (a, b) is *above threshold* when M̂_f[a, b] > t.
   A filter whose largest entry is ≤ 0 has no entry above threshold.
5. Clusters (:func:`find_clusters`), signal Σ_C |C|², noise = above-threshold entries outside
   every C×C block, and an SNR whose definition is pluggable (:func:`snr`).
6. AFCC (:func:`afcc`): keep w[:, f, b] only for labels b in f's clusters, retrain, compare
   with a random mask of the same density.

Example:
    >>> import infwidth as iw
    >>> ds = iw.load_digits(n_train=600, n_test=300)
    >>> cfg = VGGConfig(blocks=((8,), (16,)), image_shape=(8, 8, 1))
    >>> net = train_cnn(ds.x_train, ds.y_train, cfg, epochs=3, seed=0)
    >>> df = layer_analysis(net, ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    >>> df.layer.tolist()
    [1, 2]
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from infwidth.studies.filter_clusters.cnn import (
    TrainedCNN,
    VGGConfig,
    _check_labels,
    _check_xy,
    cnn_layer_features,
    cnn_logits,
    init_cnn_params,
    random_cnn,
    train_cnn,
)
from infwidth.validation import check_finite, check_pos_int

__all__ = [
    "VGGConfig", "TrainedCNN", "init_cnn_params", "cnn_layer_features", "cnn_logits",
    "train_cnn", "random_cnn", "fit_readout", "readout_logits", "filter_fields",
    "label_field_matrices", "threshold_field", "find_clusters", "cluster_noise",
    "FilterClusters", "analyze_filters", "snr", "SNR_DEFINITIONS", "afcc_mask", "random_mask",
    "afcc", "max_label_error", "layer_analysis",
]

Clusters = tuple[tuple[int, ...], ...]


# --------------------------------------------------------------------------- validation
def _check_threshold(threshold: float) -> float:
    if not isinstance(threshold, (int, float, np.floating)) or not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie in the open interval (0, 1), got {threshold!r}")
    return float(threshold)



# --------------------------------------------------------------------------- readout
def _flat_features(name: str, f) -> np.ndarray:
    """(n, ..., F) -> (n, P, F)."""
    f = np.asarray(f)
    if f.ndim < 2:
        raise ValueError(f"{name} must have shape (n, ..., F) with a trailing filter axis, "
                         f"got {f.shape}")
    check_finite(name, f)
    return f.reshape(f.shape[0], -1, f.shape[-1])


def _check_weights(weights, phi: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, np.float64)
    if w.ndim != 3 or w.shape[:2] != phi.shape[1:]:
        raise ValueError(f"weights must have shape {phi.shape[1:] + ('C',)}, got {w.shape}")
    check_finite("weights", w)
    return w


def _check_mask(mask, p: int, f: int, c: int) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask, dtype=bool)
    if m.shape == (f, c):
        m = np.broadcast_to(m, (p, f, c))
    if m.shape != (p, f, c):
        raise ValueError(f"mask must have shape ({f}, {c}) or ({p}, {f}, {c}), got "
                         f"{np.shape(mask)}")
    return m


def fit_readout(features: np.ndarray, labels: np.ndarray, n_classes: int, *,
                mask: np.ndarray | None = None, method: str = "softmax", l2: float = 1e-4,
                epochs: int = 20, batch_size: int = 256, learning_rate: float = 1e-2,
                seed: int = 0) -> np.ndarray:
    """Bias-free linear readout w (P, F, C) on features (n, ..., F); logits = Σ_{p,f} w·φ.

    - ``"softmax"``: minimise mean cross-entropy + (l2/2)·‖w̃‖² with minibatch Adam (float32,
      zero init, one jitted scan), where w̃ are the weights on features divided by their global
      RMS s (returned weights are w̃ / s, so they act on the raw features).
    - ``"ridge"``: closed form, float64: w_b = argmin ‖Φ w_b − Y_b‖² + l2·‖w_b‖² per label b
      with centred one-hot targets Y (1 − 1/C at the label, −1/C elsewhere).

    ``mask`` (F, C) or (P, F, C), boolean: weights where it is False are held at exactly 0.

    Softmax predictions and cross-entropy are unchanged by adding one vector to every label's
    weights, but the per-filter fields are not. Without a mask the softmax readout is returned
    in its minimum-norm gauge, Σ_b w[p, f, b] = 0 (the gauge of the L2-regularised optimum; the
    ridge solution is in it automatically since its targets sum to 0 over labels). With a mask
    no shift is applied (it would break the mask).
    """
    phi = _flat_features("features", features)
    n, p, f = phi.shape
    n_classes = check_pos_int("n_classes", n_classes)
    y = _check_labels("labels", labels, n, n_classes)
    m = _check_mask(mask, p, f, n_classes)
    if not l2 >= 0:
        raise ValueError(f"l2 must be non-negative, got {l2!r}")
    if method == "ridge":
        return _fit_ridge(phi.reshape(n, -1).astype(np.float64), y, n_classes, l2,
                          None if m is None else m.reshape(p * f, n_classes)).reshape(p, f, -1)
    if method != "softmax":
        raise ValueError(f"method must be 'softmax' or 'ridge', got {method!r}")
    epochs = check_pos_int("epochs", epochs)
    batch_size = min(check_pos_int("batch_size", batch_size), n)
    x = phi.reshape(n, -1).astype(np.float32)
    scale = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) or 1.0
    w = _fit_softmax(jnp.asarray(x / scale), jnp.asarray(y),
                     jnp.ones((p * f, n_classes), jnp.float32) if m is None
                     else jnp.asarray(m.reshape(p * f, n_classes), jnp.float32),
                     jnp.float32(l2), jnp.float32(learning_rate), jax.random.key(seed),
                     epochs=epochs, batch_size=batch_size)
    w = np.asarray(w, np.float64) / scale
    if m is None:
        w -= w.mean(1, keepdims=True)
    return w.reshape(p, f, n_classes)


@partial(jax.jit, static_argnames=("epochs", "batch_size"))
def _fit_softmax(x, y, mask, l2, lr, key, *, epochs: int, batch_size: int):
    """Minibatch Adam on mean CE + (l2/2)‖w⊙mask‖², zero init; one jitted scan of scans."""
    opt = optax.adam(lr)
    nb = x.shape[0] // batch_size

    def loss_fn(w, xb, yb):
        ce = optax.softmax_cross_entropy_with_integer_labels(xb @ (w * mask), yb).mean()
        return ce + 0.5 * l2 * jnp.sum((w * mask) ** 2)

    def epoch(carry, k):
        idx = jax.random.permutation(k, x.shape[0])[: nb * batch_size]

        def step(carry, i):
            w, s = carry
            upd, s = opt.update(jax.grad(loss_fn)(w, x[i], y[i]), s, w)
            return (optax.apply_updates(w, upd), s), None

        return jax.lax.scan(step, carry, idx.reshape(nb, batch_size))[0], None

    w = jnp.zeros(mask.shape, jnp.float32)
    (w, _), _ = jax.lax.scan(epoch, (w, opt.init(w)), jax.random.split(key, epochs))
    return w * mask


def _fit_ridge(x: np.ndarray, y: np.ndarray, c: int, l2: float, mask) -> np.ndarray:
    n, d = x.shape
    targets = np.full((n, c), -1.0 / c)
    targets[np.arange(n), y] += 1.0
    w = np.zeros((d, c))
    for b in range(c):
        sel = np.arange(d) if mask is None else np.flatnonzero(mask[:, b])
        if sel.size == 0:
            continue
        xb = x[:, sel]
        if sel.size <= n:  # primal: (XᵀX + λI) w = Xᵀy
            a = xb.T @ xb + l2 * np.eye(sel.size)
            w[sel, b] = np.linalg.lstsq(a, xb.T @ targets[:, b], rcond=None)[0]
        else:  # dual: w = Xᵀ (XXᵀ + λI)⁻¹ y
            a = xb @ xb.T + l2 * np.eye(n)
            w[sel, b] = xb.T @ np.linalg.lstsq(a, targets[:, b], rcond=None)[0]
    return w


def readout_logits(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """logits[n, b] = Σ_{p,f} w[p, f, b]·φ[n, p, f] (float64)."""
    phi = _flat_features("features", features)
    w = _check_weights(weights, phi)
    return np.einsum("npf,pfb->nb", phi.astype(np.float64), w)


# --------------------------------------------------------------------------- fields
def filter_fields(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """z[n, f, b] = Σ_p w[p, f, b]·φ[n, p, f]; Σ_f z[n, f] equals the readout logits."""
    phi = _flat_features("features", features)
    w = _check_weights(weights, phi)
    return np.einsum("npf,pfb->nfb", phi.astype(np.float64), w)


def label_field_matrices(features: np.ndarray, labels: np.ndarray,
                         weights: np.ndarray) -> np.ndarray:
    """M[f, a, b] = Σ_{n: y_n = a} z_f(x_n)_b, shape (F, C, C), C = weights.shape[-1].

    Computed as Σ_p w[p, f, b]·S[a, p, f] with the class sums S[a] = Σ_{n: y_n=a} φ(x_n).
    """
    phi = _flat_features("features", features)
    w = _check_weights(weights, phi)
    y = _check_labels("labels", labels, phi.shape[0], w.shape[2])
    onehot = np.eye(w.shape[2])[y]
    sums = np.einsum("na,npf->apf", onehot, phi.astype(np.float64))
    return np.einsum("pfb,apf->fab", w, sums)


def threshold_field(matrix: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """Boolean A = M / max(M) > t; all False when max(M) ≤ 0. Boolean input is returned as is."""
    m = np.asarray(matrix)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square (C, C), got shape {m.shape}")
    t = _check_threshold(threshold)
    if m.dtype == bool:
        return m
    check_finite("matrix", m)
    top = m.max() if m.size else 0.0
    if top <= 0:
        return np.zeros(m.shape, bool)
    return m / top > t


def find_clusters(matrix: np.ndarray, threshold: float = 0.3) -> Clusters:
    """Greedy label clusters of one filter's (C, C) field matrix (boolean, or float to be
    normalised by its maximum and thresholded, see :func:`threshold_field`).

    Procedure, on the above-threshold matrix A: for a = 0, 1, …, C−1 in order, skip a if it
    already belongs to a cluster or A[a, a] is False; else start K = {a} and, for b = a+1, …,
    C−1 in order, skipping labels already in a cluster, add b to K when A[i, j] is True for
    every i, j in K ∪ {b} (both orders and the diagonal); then K is a cluster. Singletons {a}
    with A[a, a] True count as clusters. Clusters are disjoint; returned as sorted tuples.

    Example:
        >>> find_clusters(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1]], bool))
        ((0, 1), (2,))
    """
    a = threshold_field(matrix, threshold)
    c = a.shape[0]
    used = np.zeros(c, bool)
    clusters = []
    for i in range(c):
        if used[i] or not a[i, i]:
            continue
        k = [i]
        for j in range(i + 1, c):
            if used[j]:
                continue
            cand = k + [j]
            if a[np.ix_(cand, cand)].all():
                k = cand
        used[k] = True
        clusters.append(tuple(k))
    return tuple(clusters)


def cluster_noise(matrix: np.ndarray, clusters: Clusters, threshold: float = 0.3) -> int:
    """Number of above-threshold entries (a, b) outside every cluster block C×C."""
    a = threshold_field(matrix, threshold).copy()
    for k in clusters:
        a[np.ix_(k, k)] = False
    return int(a.sum())


def _ratio_of_means(signal: np.ndarray, noise: np.ndarray) -> float:
    s, n = float(np.mean(signal)), float(np.mean(noise))
    if n == 0:
        return float("inf") if s > 0 else float("nan")
    return s / n


def _mean_of_ratios(signal: np.ndarray, noise: np.ndarray) -> float:
    return float(np.mean(signal / (noise + 1.0)))


SNR_DEFINITIONS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "ratio_of_means": _ratio_of_means,   # mean_f S_f / mean_f N_f; inf if N = 0 < S, nan if both 0
    "mean_of_ratios": _mean_of_ratios,   # mean_f S_f / (N_f + 1)
}


def snr(signal: np.ndarray, noise: np.ndarray,
        definition: str | Callable[[np.ndarray, np.ndarray], float] = "ratio_of_means") -> float:
    """Layer SNR from per-filter signal and noise; ``definition`` is a name in
    :data:`SNR_DEFINITIONS` or a callable (signal, noise) -> float. The default is
    mean signal / mean noise, +inf when the mean noise is 0 and the mean signal positive,
    NaN when both are 0."""
    s, n = np.asarray(signal, np.float64), np.asarray(noise, np.float64)
    if s.shape != n.shape or s.ndim != 1 or s.size == 0:
        raise ValueError(f"signal and noise must be equal-length non-empty 1-D arrays, got "
                         f"{s.shape} and {n.shape}")
    if callable(definition):
        return float(definition(s, n))
    if definition not in SNR_DEFINITIONS:
        raise ValueError(f"definition must be a callable or one of {sorted(SNR_DEFINITIONS)}, "
                         f"got {definition!r}")
    return SNR_DEFINITIONS[definition](s, n)


@dataclass(frozen=True)
class FilterClusters:
    """Clusters, signal Σ_C |C|² and noise of each filter of one layer."""

    clusters: tuple[Clusters, ...]
    signal: np.ndarray
    noise: np.ndarray
    n_classes: int
    threshold: float

    @property
    def n_filters(self) -> int:
        return len(self.clusters)

    @property
    def clusters_per_filter(self) -> float:
        return float(np.mean([len(c) for c in self.clusters]))

    @property
    def mean_cluster_size(self) -> float:
        """Mean |C| over all clusters of the layer (NaN if there are none)."""
        sizes = [len(k) for cs in self.clusters for k in cs]
        return float(np.mean(sizes)) if sizes else float("nan")

    @property
    def noise_per_filter(self) -> float:
        return float(np.mean(self.noise))

    def snr(self, definition="ratio_of_means") -> float:
        return snr(self.signal, self.noise, definition)

    def mask(self) -> np.ndarray:
        """(F, C) boolean: label b kept for filter f when b is in one of f's clusters."""
        m = np.zeros((self.n_filters, self.n_classes), bool)
        for f, cs in enumerate(self.clusters):
            for k in cs:
                m[f, list(k)] = True
        return m


def analyze_filters(matrices: np.ndarray, threshold: float = 0.3) -> FilterClusters:
    """Clusters, signal and noise for each (C, C) matrix in ``matrices`` (F, C, C)."""
    t = _check_threshold(threshold)
    m = np.asarray(matrices, np.float64)
    if m.ndim != 3 or m.shape[1] != m.shape[2]:
        raise ValueError(f"matrices must have shape (F, C, C), got {m.shape}")
    check_finite("matrices", m)
    cl = tuple(find_clusters(mf, t) for mf in m)
    signal = np.array([sum(len(k) ** 2 for k in cs) for cs in cl], float)
    noise = np.array([cluster_noise(mf, cs, t) for mf, cs in zip(m, cl)], float)
    return FilterClusters(cl, signal, noise, m.shape[1], t)


# --------------------------------------------------------------------------- AFCC
def afcc_mask(clusters: FilterClusters) -> np.ndarray:
    """(F, C) AFCC mask: keep filter f → label b iff b lies in one of f's clusters."""
    return clusters.mask()


def random_mask(mask: np.ndarray, seed: int = 0) -> np.ndarray:
    """A uniformly random (F, C) boolean mask with exactly as many True entries as ``mask``."""
    m = np.asarray(mask, bool)
    out = np.zeros(m.size, bool)
    out[np.random.default_rng(seed).permutation(m.size)[: int(m.sum())]] = True
    return out.reshape(m.shape)


def afcc(features_train, y_train, features_test, y_test, clusters: FilterClusters, *,
         seed: int = 0, **readout_kwargs) -> dict:
    """Retrain the readout under the AFCC mask and under a random mask of the same density.

    Returns, for 'afcc' and 'random_mask': test accuracy, ``kept`` = the fraction of the
    P·F·C readout weights left free (= mask.mean(), since the mask broadcasts over positions)
    and ``nonzero`` = the measured fraction of fitted weights that are non-zero (lower than
    ``kept`` only where a feature is identically zero on the training set, e.g. a dead ReLU).
    """
    m = afcc_mask(clusters)
    rm = random_mask(m, seed)
    c = clusters.n_classes
    out = {}
    for name, mk in (("afcc", m), ("random_mask", rm)):
        w = fit_readout(features_train, y_train, c, mask=mk, seed=seed, **readout_kwargs)
        acc = float(np.mean(readout_logits(features_test, w).argmax(1) == np.asarray(y_test)))
        out[f"{name}_accuracy"] = acc
        out[f"{name}_kept"] = float(mk.mean())
        out[f"{name}_nonzero"] = float(np.mean(w != 0))
    return out


def max_label_error(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """max over labels a present in y_true of the error rate P(ŷ ≠ a | y = a)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise ValueError(f"y_true and y_pred must be equal-length non-empty 1-D arrays, got "
                         f"{y_true.shape} and {y_pred.shape}")
    return float(max(np.mean(y_pred[y_true == a] != a) for a in np.unique(y_true)))


# --------------------------------------------------------------------------- layers
def layer_analysis(model: TrainedCNN, x_train, y_train, x_test, y_test, *,
                   layers: Sequence[int] | None = None, threshold: float = 0.3,
                   snr_definition: str | Callable = "ratio_of_means", run_afcc: bool = True,
                   seed: int = 0, readout: dict | None = None) -> pd.DataFrame:
    """One row per conv layer: readout accuracy, cluster statistics, SNR and (optionally) AFCC.

    The readout is fit on the training features; fields, clusters and accuracies use the test
    set. Columns: network ('trained'/'random'), layer, n_filters, n_features, accuracy,
    mean_cluster_size, clusters_per_filter, signal_per_filter, noise_per_filter, snr,
    active_filters (filters with at least one cluster), and afcc_* / random_mask_* columns.
    """
    cfg = model.config
    t = _check_threshold(threshold)
    layers = list(range(1, cfg.n_layers + 1)) if layers is None else \
        [cfg.check_layer(layer) for layer in layers]
    x_train, y_train = _check_xy(cfg, x_train, y_train, "x_train", "y_train")
    x_test, y_test = _check_xy(cfg, x_test, y_test, "x_test", "y_test")
    if not callable(snr_definition) and snr_definition not in SNR_DEFINITIONS:
        raise ValueError(f"snr_definition must be a callable or one of "
                         f"{sorted(SNR_DEFINITIONS)}, got {snr_definition!r}")
    readout = dict(readout or {})
    rows = []
    for layer in layers:
        ftr, fte = model.features(x_train, layer), model.features(x_test, layer)
        w = fit_readout(ftr, y_train, cfg.n_classes, seed=seed, **readout)
        acc = float(np.mean(readout_logits(fte, w).argmax(1) == y_test))
        fc = analyze_filters(label_field_matrices(fte, y_test, w), t)
        row = {"network": "trained" if model.trained else "random", "layer": layer,
               "n_filters": fc.n_filters, "n_features": int(np.prod(fte.shape[1:])),
               "accuracy": acc, "mean_cluster_size": fc.mean_cluster_size,
               "clusters_per_filter": fc.clusters_per_filter,
               "signal_per_filter": float(fc.signal.mean()),
               "noise_per_filter": fc.noise_per_filter,
               "snr": fc.snr(snr_definition),
               "active_filters": float(np.mean([len(c) > 0 for c in fc.clusters]))}
        if run_afcc:
            row.update(afcc(ftr, y_train, fte, y_test, fc, seed=seed, **readout))
        rows.append(row)
    return pd.DataFrame(rows)
