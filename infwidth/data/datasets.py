"""Real data sets that install offline: digits, mnist1d, Fashion-MNIST and CIFAR-10.

Every loader returns a :class:`Dataset` whose inputs are flat float64 arrays of shape
(n, dim), the layout :func:`infwidth.kernel` expects, with ``image_shape`` saying how to fold
them back (H, W, C) or (L, C). Nothing is ever downloaded.

- digits: scikit-learn's ``load_digits`` (1,797 images of 8×8, shipped in the wheel).
- mnist1d: generated procedurally by ``mnist1d.data.make_dataset`` (never its download).
- Fashion-MNIST: the IDX files of Debian's ``dataset-fashion-mnist`` package.
- CIFAR-10: the standard python-format archive (``cifar-10-python.tar.gz``) at a local path.
"""

from __future__ import annotations

import gzip
import os
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "Dataset",
    "load_digits",
    "load_mnist1d",
    "load_fashion_mnist",
    "load_cifar10",
    "read_idx",
    "FASHION_MNIST_DIR",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Dataset:
    """A train/test split with flat float64 inputs and integer labels.

    Attributes:
        x_train, x_test: float64 arrays of shape (n, dim).
        y_train, y_test: int64 label arrays of shape (n,).
        image_shape: per-example shape before flattening, e.g. (8, 8, 1) or (40, 1).
        n_classes: number of labels.
        name: data-set name.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, ...]
    n_classes: int
    name: str

    @property
    def dim(self) -> int:
        return int(self.x_train.shape[1])

    def one_hot(self, labels: np.ndarray) -> np.ndarray:
        """Centred one-hot regression targets: 1 − 1/C at the label, −1/C elsewhere."""
        labels = np.asarray(labels)
        out = np.full((labels.shape[0], self.n_classes), -1.0 / self.n_classes)
        out[np.arange(labels.shape[0]), labels] += 1.0
        return out

    def subset(self, n_train: int | None = None, n_test: int | None = None,
               seed: int = 0) -> "Dataset":
        """A class-stratified-at-random subset (seeded permutation, same seed same subset)."""
        rng = np.random.default_rng(seed)
        tr = _take(self.x_train.shape[0], n_train, "n_train", rng)
        te = _take(self.x_test.shape[0], n_test, "n_test", rng)
        return Dataset(self.x_train[tr], self.y_train[tr], self.x_test[te], self.y_test[te],
                       self.image_shape, self.n_classes, self.name)


def _take(n: int, k: int | None, name: str, rng: np.random.Generator) -> np.ndarray:
    if k is None:
        return np.arange(n)
    if not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {k!r}")
    if k > n:
        raise ValueError(f"{name}={k} exceeds the {n} examples available")
    return np.sort(rng.permutation(n)[:k])


def _normalise(x: np.ndarray, how: str | None) -> np.ndarray:
    """'sphere': each example rescaled to ‖x‖² = dim after centring by the training mean."""
    x = np.asarray(x, dtype=np.float64).reshape(x.shape[0], -1)
    if how is None:
        return x
    if how != "sphere":
        raise ValueError(f"normalize must be 'sphere' or None, got {how!r}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms * np.sqrt(x.shape[1])


def _finish(name, xtr, ytr, xte, yte, image_shape, n_classes, normalize, n_train, n_test,
            seed) -> Dataset:
    mean = np.asarray(xtr, dtype=np.float64).reshape(len(xtr), -1).mean(0)
    xtr = np.asarray(xtr, dtype=np.float64).reshape(len(xtr), -1)
    xte = np.asarray(xte, dtype=np.float64).reshape(len(xte), -1)
    if normalize is not None:
        xtr, xte = xtr - mean, xte - mean
    ds = Dataset(_normalise(xtr, normalize), np.asarray(ytr, np.int64),
                 _normalise(xte, normalize), np.asarray(yte, np.int64),
                 tuple(image_shape), int(n_classes), name)
    return ds.subset(n_train, n_test, seed)


def load_digits(n_train: int | None = None, n_test: int | None = None, seed: int = 0,
                normalize: str | None = "sphere", test_fraction: float = 0.25) -> Dataset:
    """scikit-learn's 8×8 digits, split with a seeded permutation.

    Example:
        >>> ds = load_digits(n_train=200, n_test=100)
        >>> ds.x_train.shape, ds.image_shape
        ((200, 64), (8, 8, 1))
    """
    from sklearn.datasets import load_digits as _sk_digits

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction!r}")
    data = _sk_digits()
    perm = np.random.default_rng(12345).permutation(len(data.target))
    n_te = int(round(test_fraction * len(perm)))
    te, tr = perm[:n_te], perm[n_te:]
    return _finish("digits", data.data[tr], data.target[tr], data.data[te], data.target[te],
                   (8, 8, 1), 10, normalize, n_train, n_test, seed)


def load_mnist1d(n_train: int | None = None, n_test: int | None = None, seed: int = 0,
                 num_samples: int = 5000, normalize: str | None = "sphere") -> Dataset:
    """mnist1d, generated locally by ``mnist1d.data.make_dataset`` (40-long 1-D signals).

    The generator reseeds NumPy's global state; it is saved and restored around the call.
    """
    from mnist1d.data import get_dataset_args, make_dataset

    if not isinstance(num_samples, (int, np.integer)) or num_samples < 20:
        raise ValueError(f"num_samples must be an integer >= 20, got {num_samples!r}")
    args = get_dataset_args()
    args.num_samples = int(num_samples)
    args.seed = 42
    state = np.random.get_state()
    try:
        d = make_dataset(args)
    finally:
        np.random.set_state(state)
    length = d["x"].shape[1]
    return _finish("mnist1d", d["x"], d["y"], d["x_test"], d["y_test"], (length, 1), 10,
                   normalize, n_train, n_test, seed)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one (optionally gzipped) IDX file into a uint8 array with its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} bytes")
    return data.reshape(shape)


def load_fashion_mnist(n_train: int | None = None, n_test: int | None = None, seed: int = 0,
                       path: str | os.PathLike | None = None,
                       normalize: str | None = "sphere") -> Dataset:
    """Fashion-MNIST (60,000 + 10,000 images of 28×28) from local IDX files.

    ``path`` defaults to where Debian's ``dataset-fashion-mnist`` package puts them
    (``/usr/share/datasets/fashion-mnist``); install it with
    ``apt-get install dataset-fashion-mnist``.
    """
    root = Path(path) if path is not None else FASHION_MNIST_DIR
    names = {k: f"{k}-idx{3 if 'images' in k else 1}-ubyte.gz"
             for k in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    missing = [n for n in names.values() if not (root / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST IDX files {missing} not found in {root}. Install Debian's package "
            f"'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist) or pass path=.")
    xtr, ytr = read_idx(root / names["train-images"]), read_idx(root / names["train-labels"])
    xte, yte = read_idx(root / names["t10k-images"]), read_idx(root / names["t10k-labels"])
    for x, y, what in ((xtr, ytr, "train"), (xte, yte, "test")):
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (x.shape[0],):
            raise ValueError(f"Fashion-MNIST {what} files have unexpected shapes "
                             f"{x.shape} and {y.shape}; expected (n, 28, 28) and (n,)")
    return _finish("fashion-mnist", xtr, ytr, xte, yte, (28, 28, 1), 10, normalize, n_train,
                   n_test, seed)


def load_cifar10(path: str | os.PathLike, n_train: int | None = None,
                 n_test: int | None = None, seed: int = 0,
                 normalize: str | None = "sphere") -> Dataset:
    """CIFAR-10 from the standard python-format archive or its extracted folder.

    ``path`` is ``cifar-10-python.tar.gz`` or the ``cifar-10-batches-py`` folder. Batches are
    pickled dicts with ``b'data'`` (n, 3072) uint8 in CHW order and ``b'labels'``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 archive or folder not found at {path}")
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    batches: dict[str, dict] = {}
    if path.is_dir():
        for name in train_names + ["test_batch"]:
            p = path / name
            if p.exists():
                with open(p, "rb") as f:
                    batches[name] = pickle.load(f, encoding="bytes")
    else:
        with tarfile.open(path, "r:*") as tar:
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if member.isfile() and base in train_names + ["test_batch"]:
                    batches[base] = pickle.load(tar.extractfile(member), encoding="bytes")
    if "test_batch" not in batches or not any(n in batches for n in train_names):
        raise ValueError(f"{path} holds no CIFAR-10 'data_batch_*' and 'test_batch' files")

    def unpack(bs):
        x = np.concatenate([b[b"data"] for b in bs]).reshape(-1, 3, 32, 32)
        y = np.concatenate([np.asarray(b[b"labels"]) for b in bs])
        return x.transpose(0, 2, 3, 1), y  # NHWC

    xtr, ytr = unpack([batches[n] for n in train_names if n in batches])
    xte, yte = unpack([batches["test_batch"]])
    return _finish("cifar10", xtr, ytr, xte, yte, (32, 32, 3), 10, normalize, n_train, n_test,
                   seed)
