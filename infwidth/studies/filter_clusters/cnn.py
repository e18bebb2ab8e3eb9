"""A small VGG-like CNN trained with optax: the network studied by
:mod:`infwidth.studies.filter_clusters.filters`.

3×3 SAME convolutions with ReLU, a 2×2 average pool closing each block, then a dense
readout. Conv layers are numbered from 1; a layer's features are its ReLU output (pooled if
it closes a block). :func:`random_cnn` is the untrained control, exactly the starting point of
:func:`train_cnn` with the same seed. Training and initialisation follow
:mod:`infwidth.learning.train` (its loop and its seed convention).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from infwidth.learning import train as T
from infwidth.validation import check_finite, check_int, check_pos_int

__all__ = ["VGGConfig", "TrainedCNN", "cnn_init_fn", "init_cnn_params", "cnn_layer_features",
           "cnn_logits", "train_cnn", "random_cnn"]


# --------------------------------------------------------------------------- validation

def _check_labels(name: str, y, n: int, n_classes: int) -> np.ndarray:
    y = np.asarray(y)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer labels, got dtype {y.dtype}")
    if n and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError(f"{name} must lie in [0, {n_classes}), got range "
                         f"[{y.min()}, {y.max()}]")
    return y.astype(np.int64)



# --------------------------------------------------------------------------- network
@dataclass(frozen=True)
class VGGConfig:
    """VGG-like CNN: blocks of 3×3 SAME convs + ReLU, a 2×2 average pool closing each block,
    then a dense layer (with bias) on the flattened last feature map.

    Conv layers are numbered 1…n_layers across blocks. The *features of layer l* are its ReLU
    output, average-pooled when l closes its block (i.e. exactly what layer l+1 receives).
    """

    blocks: tuple[tuple[int, ...], ...] = ((8, 8), (16, 16), (32, 32))
    image_shape: tuple[int, int, int] = (28, 28, 1)
    n_classes: int = 10

    def __post_init__(self):
        blocks = tuple(tuple(int(c) for c in b) for b in self.blocks)
        if not blocks or any(not b or min(b) <= 0 for b in blocks):
            raise ValueError(f"blocks must be non-empty tuples of positive widths, got "
                             f"{self.blocks!r}")
        shape = tuple(int(s) for s in self.image_shape)
        if len(shape) != 3 or min(shape) <= 0:
            raise ValueError(f"image_shape must be (H, W, C) with positive sizes, got "
                             f"{self.image_shape!r}")
        if min(shape[:2]) < 2 ** len(blocks):
            raise ValueError(f"image_shape {shape} is too small for {len(blocks)} 2×2 pools")
        check_pos_int("n_classes", self.n_classes)
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "image_shape", shape)

    @property
    def n_layers(self) -> int:
        return sum(len(b) for b in self.blocks)

    def layer_shapes(self) -> list[tuple[int, int, int]]:
        """(H, W, F) of each conv layer's features."""
        h, w, _ = self.image_shape
        out = []
        for blk in self.blocks:
            for j, c in enumerate(blk):
                if j == len(blk) - 1:
                    h, w = h // 2, w // 2
                out.append((h, w, c))
        return out

    def check_layer(self, layer) -> int:
        return check_int("layer (1-based conv layer of this network)", layer, 1, self.n_layers)


def cnn_init_fn(config: VGGConfig):
    """Stax-style ``init_fn(key, input_shape) -> (output_shape, params)`` for flat inputs
    (n, H·W·C): He-normal conv kernels W ~ N(0, 2/(9·C_in)), zero biases, dense
    W ~ N(0, 1/D). All weights are the first entries of one ``jax.random.normal`` draw of
    2^k ≥ their total size, cut in layer order: one compiled sampler per size class, not one
    per tensor shape (with JAX's partitionable threefry, the default, a prefix of a longer
    draw equals the shorter draw)."""
    dim = int(np.prod(config.image_shape))

    def init_fn(key, input_shape):
        if tuple(input_shape)[1:] != (dim,):
            raise ValueError(f"input_shape must be (-1, {dim}), got {tuple(input_shape)}")
        shapes, cin = [], config.image_shape[2]
        for _, _, c in config.layer_shapes():
            shapes.append(((3, 3, cin, c), np.sqrt(2.0 / (9 * cin))))
            cin = c
        d = int(np.prod(config.layer_shapes()[-1]))
        shapes.append(((d, config.n_classes), 1.0 / np.sqrt(d)))
        total = sum(int(np.prod(sh)) for sh, _ in shapes)
        z = np.asarray(jax.random.normal(key, (1 << (total - 1).bit_length(),)))[:total]
        ws, i = [], 0
        for sh, scale in shapes:
            size = int(np.prod(sh))
            ws.append(jnp.asarray(z[i:i + size].reshape(sh) * scale))
            i += size
        convs = [(w, jnp.zeros((w.shape[-1],), w.dtype)) for w in ws[:-1]]
        dense = (ws[-1], jnp.zeros((config.n_classes,), ws[-1].dtype))
        return (-1, config.n_classes), {"conv": convs, "dense": dense}

    return init_fn


def init_cnn_params(config: VGGConfig, seed: int = 0, dtype=np.float32) -> dict:
    """Initial parameters of :func:`cnn_init_fn` by :func:`infwidth.learning.init`
    (``PRNGKey(seed)``, drawn in float64, cast to ``dtype``)."""
    return T.init(cnn_init_fn(config), (int(np.prod(config.image_shape)),), seed,
                  np.dtype(dtype).name)


def cnn_layer_features(config: VGGConfig, params: dict, x: jax.Array) -> list[jax.Array]:
    """Features (n, H, W, F) of every conv layer for flat inputs x (n, H·W·C)."""
    h = x.reshape((-1,) + config.image_shape)
    feats, i = [], 0
    for blk in config.blocks:
        for j in range(len(blk)):
            w, b = params["conv"][i]
            h = jax.lax.conv_general_dilated(h, w, (1, 1), "SAME",
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = jax.nn.relu(h + b)
            if j == len(blk) - 1:
                n, hh, ww, c = h.shape  # 2×2 average pool, VALID (odd edges dropped)
                h = h[:, : hh // 2 * 2, : ww // 2 * 2].reshape(n, hh // 2, 2, ww // 2, 2, c)
                h = h.mean((2, 4))
            feats.append(h)
            i += 1
    return feats


def cnn_logits(config: VGGConfig, params: dict, x: jax.Array) -> jax.Array:
    h = cnn_layer_features(config, params, x)[-1]
    w, b = params["dense"]
    return h.reshape(h.shape[0], -1) @ w + b


def _check_xy(config: VGGConfig, x, y, xname="x", yname="y"):
    x = np.asarray(x)
    dim = int(np.prod(config.image_shape))
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{xname} must have shape (n, {dim}) for image_shape "
                         f"{config.image_shape}, got {x.shape}")
    check_finite(xname, x)
    if y is not None:
        y = _check_labels(yname, y, x.shape[0], config.n_classes)
    return x, y


@dataclass(frozen=True)
class TrainedCNN:
    """A VGG-like CNN and its parameters. ``history`` has one row per epoch (mean loss)."""

    config: VGGConfig
    params: dict
    history: pd.DataFrame
    trained: bool

    def features(self, x: np.ndarray, layer: int, batch_size: int = 1000) -> np.ndarray:
        """Features (n, H, W, F) of conv layer ``layer`` (1-based), float32."""
        layer = self.config.check_layer(layer)
        x, _ = _check_xy(self.config, x, None)
        fn = _features_fn(self.config, layer)
        return np.concatenate([np.asarray(fn(self.params, jnp.asarray(x[i:i + batch_size],
                                                                          jnp.float32)))
                               for i in range(0, max(len(x), 1), batch_size)])

    def predict(self, x: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        x, _ = _check_xy(self.config, x, None)
        fn = _features_fn(self.config, 0)
        return np.concatenate([np.asarray(fn(self.params, jnp.asarray(x[i:i + batch_size],
                                                                          jnp.float32)))
                               for i in range(0, max(len(x), 1), batch_size)])


_FEATURE_FNS: dict = {}


def _features_fn(config: VGGConfig, layer: int):
    """Jitted features of ``layer`` (1-based); layer 0 means the predicted labels."""
    if (config, layer) not in _FEATURE_FNS:
        _FEATURE_FNS[config, layer] = jax.jit(
            (lambda p, xb: jnp.argmax(cnn_logits(config, p, xb), -1)) if layer == 0 else
            (lambda p, xb: cnn_layer_features(config, p, xb)[layer - 1]))
    return _FEATURE_FNS[config, layer]


def random_cnn(config: VGGConfig, seed: int = 0) -> TrainedCNN:
    """The untrained control: exactly the initialisation ``train_cnn(..., seed=seed)``
    starts from."""
    params = init_cnn_params(config, seed)
    return TrainedCNN(config, params, pd.DataFrame(columns=["epoch", "loss"]), False)


@lru_cache(maxsize=32)
def _pieces(config: VGGConfig, optimizer: str, learning_rate: float, momentum: float):
    """(loss, optax optimizer), the same objects per setting so that ``fit`` reuses its
    compiled step."""
    opt = (optax.adam(learning_rate) if optimizer == "adam"
           else optax.sgd(learning_rate, momentum=momentum))
    return T.cross_entropy(lambda p, x: cnn_logits(config, p, x)), opt


def train_cnn(x: np.ndarray, y: np.ndarray, config: VGGConfig, *, epochs: int = 10,
              batch_size: int = 128, learning_rate: float = 1e-3, optimizer: str = "adam",
              momentum: float = 0.9, seed: int = 0) -> TrainedCNN:
    """Minimise the mean softmax cross-entropy with optax (Adam or SGD+momentum), float32,
    by :func:`infwidth.learning.fit` from :func:`init_cnn_params`.

    Each epoch runs ⌊n / batch_size⌋ jitted steps over minibatches of the epoch's seeded
    permutation (remainder dropped). ``history`` holds each epoch's mean minibatch loss.
    Same seed, same parameters.
    """
    x, y = _check_xy(config, x, y)
    epochs, batch_size = check_pos_int("epochs", epochs), check_pos_int("batch_size", batch_size)
    if batch_size > len(x):
        raise ValueError(f"batch_size={batch_size} exceeds the {len(x)} training examples")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    if optimizer not in ("adam", "sgd"):
        raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
    loss, opt = _pieces(config, optimizer, float(learning_rate), float(momentum))
    nb = len(x) // batch_size
    res = T.fit(loss, init_cnn_params(config, seed), (x.astype(np.float32), y), opt,
                steps=epochs * nb, batch_size=batch_size, seed=seed, eval_every=nb,
                dtype="float32")
    hist = res.history.iloc[1:]
    history = pd.DataFrame({"epoch": (hist.step // nb).astype(int).to_numpy(),
                            "loss": hist.loss.to_numpy()})
    return TrainedCNN(config, res.params, history, True)
