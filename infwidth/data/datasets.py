"""Real data sets that install offline: digits, mnist1d, Fashion-MNIST and CIFAR-10.

Every loader returns a :class:`Dataset` whose inputs are flat float64 arrays of shape
(n, dim), the layout :func:`infwidth.kernel` expects, with ``image_shape`` saying how to fold
them back (H, W, C) or (L, C). Nothing is ever downloaded.

- digits: scikit-learn's ``load_digits`` (1,797 images of 8×8, shipped in the wheel).
- mnist1d: generated procedurally by ``mnist1d.data.make_dataset`` (never its download).
- Fashion-MNIST: the IDX files of Debian's ``dataset-fashion-mnist`` package.
- CIFAR-10: the standard python-format archive (``cifar-10-python.tar.gz``) at a local path.

Every argument is checked before a byte is read or generated; a truncated or corrupt file is
named in a ValueError that says what is wrong with it.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infwidth.validation import check_int, check_number, check_opt_pos_int, check_seed

__all__ = [
    "Dataset",
    "load_digits",
    "load_mnist1d",
    "load_fashion_mnist",
    "load_cifar10",
    "read_idx",
    "FASHION_MNIST_DIR",
]

# Debian's dataset-fashion-mnist; INFWIDTH_FASHION_MNIST_DIR points elsewhere (or nowhere)
FASHION_MNIST_DIR = Path(os.environ.get("INFWIDTH_FASHION_MNIST_DIR",
                                        "/usr/share/datasets/fashion-mnist"))


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
        rng = np.random.default_rng(check_seed("seed", seed))
        tr = _take(self.x_train.shape[0], n_train, "n_train", rng)
        te = _take(self.x_test.shape[0], n_test, "n_test", rng)
        return Dataset(self.x_train[tr], self.y_train[tr], self.x_test[te], self.y_test[te],
                       self.image_shape, self.n_classes, self.name)


def _take(n: int, k: int | None, name: str, rng: np.random.Generator) -> np.ndarray:
    if k is None:
        return np.arange(n)
    k = _check_count(name, k)
    if k > n:
        raise ValueError(f"{name}={k} exceeds the {n} examples available")
    return np.sort(rng.permutation(n)[:k])


# --------------------------------------------------------------------------------------
# Arguments, checked before a byte is read or generated
# --------------------------------------------------------------------------------------
NORMALIZE = ("sphere", None)
DIGITS_SIZE = 1797  # scikit-learn's digits: always these 1,797 images
CIFAR_ROWS = 10000  # rows of each CIFAR-10 batch (tests shrink it)
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"


def _check_count(name: str, v: Any) -> int | None:
    """None, or a positive integer (bools refused)."""
    return check_opt_pos_int(name, v)


def _check_split(n_train: Any, n_test: Any, seed: Any, normalize: Any) -> tuple:
    """(n_train, n_test, seed, normalize) of every loader, checked."""
    n_train, n_test = _check_count("n_train", n_train), _check_count("n_test", n_test)
    seed = check_seed("seed", seed)
    if not (normalize is None or isinstance(normalize, str)):
        raise TypeError(f"normalize must be 'sphere' or None, got {normalize!r}")
    if normalize not in NORMALIZE:
        raise ValueError(f"normalize must be 'sphere' or None, got {normalize!r}")
    return n_train, n_test, seed, normalize


def _check_available(n_train: int | None, n_test: int | None, train: int, test: int,
                     what: str) -> None:
    for name, k, n in (("n_train", n_train, train), ("n_test", n_test, test)):
        if k is not None and k > n:
            split = "training" if name == "n_train" else "test"
            raise ValueError(f"{name}={k} exceeds the {n} {split} examples of {what}")


def _check_path(name: str, v: Any) -> Path:
    if isinstance(v, bool) or not isinstance(v, (str, os.PathLike)):
        raise TypeError(f"{name} must be a file or folder path (str or os.PathLike), "
                        f"got {type(v).__name__}")
    p = os.fspath(v)
    if not isinstance(p, str) or not p:
        raise ValueError(f"{name} must be a non-empty path, got {v!r}")
    return Path(p)


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

    Args:
        n_train: training examples (``None``: all of the split).
        n_test: test examples (``None``: all of the split).
        seed: the seed of the split's permutation.
        normalize: "sphere" (default: each example centred by the training mean and scaled
            to ‖x‖² = dim), or None (the values as loaded).
        test_fraction: the share of the 1797 images held out for testing.

    Returns:
        A :class:`~infwidth.data.Dataset` (``x_train``, ``y_train``, ``x_test``, ``y_test``,
        ``image_shape``, ``n_classes``).

    Example:
        >>> ds = load_digits(n_train=200, n_test=100)
        >>> ds.x_train.shape, ds.image_shape
        ((200, 64), (8, 8, 1))
    """
    n_train, n_test, seed, normalize = _check_split(n_train, n_test, seed, normalize)
    check_number("test_fraction", test_fraction, lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    n_te = int(round(test_fraction * DIGITS_SIZE))
    if not 0 < n_te < DIGITS_SIZE:
        raise ValueError(f"test_fraction={test_fraction!r} leaves an empty split of the "
                         f"{DIGITS_SIZE} digits")
    _check_available(n_train, n_test, DIGITS_SIZE - n_te, n_te, "digits")
    from sklearn.datasets import load_digits as _sk_digits

    data = _sk_digits()
    perm = np.random.default_rng(12345).permutation(len(data.target))
    n_te = int(round(test_fraction * len(perm)))
    te, tr = perm[:n_te], perm[n_te:]
    return _finish("digits", data.data[tr], data.target[tr], data.data[te], data.target[te],
                   (8, 8, 1), 10, normalize, n_train, n_test, seed)


def load_mnist1d(n_train: int | None = None, n_test: int | None = None, seed: int = 0,
                 num_samples: int = 5000, normalize: str | None = "sphere") -> Dataset:
    """mnist1d, generated locally by ``mnist1d.data.make_dataset`` (40-long 1-D signals;
    80 % of the ``num_samples`` for training, as mnist1d splits them).

    The generator reseeds NumPy's global state; it is saved and restored around the call.
    Every argument is checked before anything is generated.

    Args:
        n_train: training examples (``None``: all of the split).
        n_test: test examples (``None``: all of the split).
        seed: the seed of the split's permutation.
        num_samples: signals generated (≥ 20), 80 % of them for training.
        normalize: "sphere" (default: each example centred by the training mean and scaled
            to ‖x‖² = dim), or None (the values as loaded).

    Returns:
        A :class:`~infwidth.data.Dataset` (``x_train``, ``y_train``, ``x_test``, ``y_test``,
        ``image_shape``, ``n_classes``).
    """
    n_train, n_test, seed, normalize = _check_split(n_train, n_test, seed, normalize)
    check_int("num_samples", num_samples, 20)
    total = int(num_samples) // 10 * 10  # mnist1d draws num_samples // 10 per class
    train = int(total * 0.8)
    _check_available(n_train, n_test, train, total - train,
                     f"mnist1d with num_samples={num_samples} (raise num_samples)")
    from mnist1d.data import get_dataset_args, make_dataset

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


# --------------------------------------------------------------------------------------
# Fashion-MNIST
# --------------------------------------------------------------------------------------
def _open_idx(path: Path) -> Any:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _corrupt(path: Any, e: BaseException) -> ValueError:
    return ValueError(f"{path} is truncated or corrupt ({type(e).__name__}: {e}); replace "
                      f"the file (reinstall it or download it again)")


def _idx_header(path: Path) -> tuple[int, ...]:
    """The shape an IDX file declares (reads its first bytes only)."""
    try:
        with _open_idx(path) as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
                raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
            dims = f.read(4 * head[3])
    except (OSError, EOFError, zlib.error) as e:
        raise _corrupt(path, e) from None
    if len(dims) < 4 * head[3]:
        raise ValueError(f"{path} is truncated: its IDX header is incomplete")
    return tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(head[3]))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one (optionally gzipped) IDX file into a uint8 array with its declared shape.

    A truncated or corrupt file raises a ValueError naming it."""
    path = _check_path("path", path)
    try:
        with _open_idx(path) as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise _corrupt(path, e) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path} is truncated: its IDX header is incomplete")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} bytes "
                         f"(truncated or corrupt)")
    return data.reshape(shape)


def load_fashion_mnist(n_train: int | None = None, n_test: int | None = None, seed: int = 0,
                       path: str | os.PathLike | None = None,
                       normalize: str | None = "sphere") -> Dataset:
    """Fashion-MNIST (60,000 + 10,000 images of 28×28) from local IDX files.

    ``path`` defaults to where Debian's ``dataset-fashion-mnist`` package puts them
    (``/usr/share/datasets/fashion-mnist``); install it with
    ``apt-get install dataset-fashion-mnist``. Arguments are checked, and the files' headers
    read, before the images are decompressed; a damaged file is named in a ValueError.

    Args:
        n_train: training examples (``None``: all of the split).
        n_test: test examples (``None``: all of the split).
        seed: the seed of the split's permutation.
        path: the folder of the IDX files (``None``: Debian's location).
        normalize: "sphere" (default: each example centred by the training mean and scaled
            to ‖x‖² = dim), or None (the values as loaded).

    Returns:
        A :class:`~infwidth.data.Dataset` (``x_train``, ``y_train``, ``x_test``, ``y_test``,
        ``image_shape``, ``n_classes``).
    """
    n_train, n_test, seed, normalize = _check_split(n_train, n_test, seed, normalize)
    root = FASHION_MNIST_DIR if path is None else _check_path("path", path)
    if root.exists() and not root.is_dir():
        raise ValueError(f"path must be the folder holding the Fashion-MNIST IDX files, got "
                         f"the file {root}")
    names = {k: f"{k}-idx{3 if 'images' in k else 1}-ubyte.gz"
             for k in ("train-images", "train-labels", "t10k-images", "t10k-labels")}
    missing = [n for n in names.values() if not (root / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST IDX files {missing} not found in {root}. Install Debian's package "
            f"'dataset-fashion-mnist' (apt-get install dataset-fashion-mnist) or pass path=.")
    heads = {k: _idx_header(root / n) for k, n in names.items()}
    for split, what in (("train", "train"), ("t10k", "test")):
        x, y = heads[f"{split}-images"], heads[f"{split}-labels"]
        if len(x) != 3 or x[1:] != (28, 28) or y != (x[0],):
            raise ValueError(f"Fashion-MNIST {what} files have unexpected shapes {x} and {y}; "
                             f"expected (n, 28, 28) and (n,)")
    _check_available(n_train, n_test, heads["train-images"][0], heads["t10k-images"][0],
                     f"Fashion-MNIST in {root}")
    xtr, ytr = read_idx(root / names["train-images"]), read_idx(root / names["train-labels"])
    xte, yte = read_idx(root / names["t10k-images"]), read_idx(root / names["t10k-labels"])
    for y, key in ((ytr, "train-labels"), (yte, "t10k-labels")):
        if y.size and int(y.max()) > 9:
            raise ValueError(f"{root / names[key]} holds label {int(y.max())}; Fashion-MNIST "
                             f"labels are 0…9 (corrupt file)")
    return _finish("fashion-mnist", xtr, ytr, xte, yte, (28, 28, 1), 10, normalize, n_train,
                   n_test, seed)


# --------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------
class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch (a dict of bytes, ints, lists and numpy arrays) and
    nothing else: the only globals it resolves rebuild numpy arrays and scalars, and bytes
    (``_codecs.encode``, how protocol 2 writes bytes from Python 3)."""

    ALLOWED = {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray")
               for n in ("_reconstruct", "scalar")} | {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a "
                                         f"CIFAR-10 batch")
        return super().find_class(module, name)


def _max_batch_bytes() -> int:
    """Largest plausible pickled batch: the pixels plus labels, file names and framing."""
    return CIFAR_ROWS * (3072 + 256) + (1 << 20)


def _read_batch(f: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(data (rows, 3072) uint8, labels (rows,)) of one pickled batch, checked."""
    try:
        d = _BatchUnpickler(f, encoding="bytes").load()
    except Exception as e:  # any unpickling failure means a damaged or foreign file
        raise ValueError(f"{where} is not a CIFAR-10 batch (truncated, corrupt or not the "
                         f"python-format pickle: {type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{where} is not a CIFAR-10 batch: it holds a {type(d).__name__}, "
                         f"not a dict")
    missing = [k for k in (b"data", b"labels") if k not in d]
    if missing:
        raise ValueError(f"{where} is not a CIFAR-10 batch: no {missing} key(s) "
                         f"(found {sorted(map(repr, d))[:6]})")
    x, y = d[b"data"], d[b"labels"]
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.shape != (CIFAR_ROWS, 3072):
        got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
        raise ValueError(f"{where}: b'data' must be a uint8 array of shape ({CIFAR_ROWS}, "
                         f"3072), got {got}")
    try:
        labels = np.asarray(y)
    except (TypeError, ValueError):
        labels = np.zeros(0)
    if labels.shape != (CIFAR_ROWS,) or not np.issubdtype(labels.dtype, np.integer) \
            or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{where}: b'labels' must be {CIFAR_ROWS} integers in 0…9, got "
                         f"{type(y).__name__} of shape {labels.shape}")
    return x, labels.astype(np.int64)


def _cifar_batches(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The six batches of the standard layout, from the folder or the tar.gz at ``path``."""
    names = CIFAR_TRAIN + (CIFAR_TEST,)
    limit = _max_batch_bytes()
    out = {}
    if path.is_dir():
        folder = path / CIFAR_DIR if (path / CIFAR_DIR).is_dir() else path
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise ValueError(f"{folder} is not the CIFAR-10 folder {CIFAR_DIR!r}: {missing} "
                             f"missing (expected data_batch_1…5 and test_batch)")
        for n in names:
            size = (folder / n).stat().st_size
            if not CIFAR_ROWS * 3072 < size <= limit:
                raise ValueError(f"{folder / n} has {size} bytes, not a CIFAR-10 batch of "
                                 f"{CIFAR_ROWS} images (truncated or foreign)")
            with open(folder / n, "rb") as f:
                out[n] = _read_batch(f, str(folder / n))
        return out
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        first = str(e).splitlines()[0].rstrip(":") if str(e) else ""
        raise ValueError(f"{path} is not a readable cifar-10-python.tar.gz (gzip-compressed "
                         f"tar): {type(e).__name__}: {first}") from None
    with tar:
        try:
            members = {m.name: m for m in tar.getmembers()}
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise _corrupt(path, e) from None
        missing = [f"{CIFAR_DIR}/{n}" for n in names if f"{CIFAR_DIR}/{n}" not in members]
        if missing:
            raise ValueError(f"{path} is not the standard CIFAR-10 archive: members {missing} "
                             f"missing (expected {CIFAR_DIR}/data_batch_1…5 and test_batch)")
        for n in names:
            m = members[f"{CIFAR_DIR}/{n}"]
            where = f"{path}:{m.name}"
            if not m.isfile():
                raise ValueError(f"{where} is not a regular file")
            if not CIFAR_ROWS * 3072 < m.size <= limit:
                raise ValueError(f"{where} has {m.size} bytes, not a CIFAR-10 batch of "
                                 f"{CIFAR_ROWS} images")
            try:
                f = tar.extractfile(m)
                blob = f.read() if f is not None else b""
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise _corrupt(where, e) from None
            if len(blob) != m.size:
                raise ValueError(f"{where} is truncated: {len(blob)} of {m.size} bytes")
            out[n] = _read_batch(io.BytesIO(blob), where)
    return out


def load_cifar10(path: str | os.PathLike, n_train: int | None = None,
                 n_test: int | None = None, seed: int = 0,
                 normalize: str | None = "sphere") -> Dataset:
    """CIFAR-10 from the standard python-format archive or its extracted folder.

    ``path`` is ``cifar-10-python.tar.gz`` or the ``cifar-10-batches-py`` folder (or the
    folder holding it). Only the standard layout is read: the members
    ``cifar-10-batches-py/data_batch_1``…``5`` and ``test_batch``, each a pickled dict with
    ``b'data'`` (10000, 3072) uint8 in CHW order and ``b'labels'`` (10000 labels 0…9),
    unpickled by a restricted unpickler that rebuilds only numpy arrays (nothing else at the
    path is ever executed). A damaged or foreign file is named in a ValueError.

    Args:
        path: ``cifar-10-python.tar.gz`` or the ``cifar-10-batches-py`` folder.
        n_train: training examples (``None``: all of the split).
        n_test: test examples (``None``: all of the split).
        seed: the seed of the split's permutation.
        normalize: "sphere" (default: each example centred by the training mean and scaled
            to ‖x‖² = dim), or None (the values as loaded).

    Returns:
        A :class:`~infwidth.data.Dataset` (``x_train``, ``y_train``, ``x_test``, ``y_test``,
        ``image_shape``, ``n_classes``).
    """
    n_train, n_test, seed, normalize = _check_split(n_train, n_test, seed, normalize)
    path = _check_path("path", path)
    if not path.exists():
        raise FileNotFoundError(f"CIFAR-10 archive or folder not found at {path}")
    _check_available(n_train, n_test, len(CIFAR_TRAIN) * CIFAR_ROWS, CIFAR_ROWS, "CIFAR-10")
    batches = _cifar_batches(path)

    def unpack(bs: list) -> tuple[np.ndarray, np.ndarray]:
        x = np.concatenate([b[0] for b in bs]).reshape(-1, 3, 32, 32)
        y = np.concatenate([b[1] for b in bs])
        return x.transpose(0, 2, 3, 1), y  # NHWC

    xtr, ytr = unpack([batches[n] for n in CIFAR_TRAIN])
    xte, yte = unpack([batches[CIFAR_TEST]])
    return _finish("cifar10", xtr, ytr, xte, yte, (32, 32, 3), 10, normalize, n_train, n_test,
                   seed)
