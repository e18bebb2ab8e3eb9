"""Synthetic inputs and the offline data loaders."""

import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest

import infwidth as iw
from infwidth.data import datasets
from infwidth.data.datasets import FASHION_MNIST_DIR, read_idx


def test_hypercube_and_sphere_laws():
    h = iw.sample_inputs("hypercube", 500, 24, seed=0)
    assert h.dtype == np.float64 and h.shape == (500, 24)
    assert set(np.unique(h)) == {-1.0, 1.0}
    # mean of ±1 coordinates: |mean| < 4 standard errors (σ = 1/√(500·24))
    assert abs(h.mean()) < 4 / np.sqrt(h.size)
    s = iw.sample_inputs("sphere", 500, 24, patch_dim=6, seed=0)
    np.testing.assert_allclose((s.reshape(500, 4, 6) ** 2).sum(-1), 6.0, rtol=1e-12)
    # uniform on the sphere: E[x_j²] = 1, estimated within 4 SE
    sq = s ** 2
    assert abs(sq.mean() - 1) < 4 * sq.std() / np.sqrt(sq.size)


def test_same_seed_same_inputs():
    a = iw.sample_inputs("sphere", 5, 8, patch_dim=4, seed=3)
    np.testing.assert_array_equal(a, iw.sample_inputs("sphere", 5, 8, patch_dim=4, seed=3))
    assert not np.array_equal(a, iw.sample_inputs("sphere", 5, 8, patch_dim=4, seed=4))


@pytest.mark.parametrize("kwargs, err, msg", [
    (dict(domain="torus", n=3, dim=4), ValueError, "domain must be one of"),
    (dict(domain="sphere", n=0, dim=4), ValueError, "n must be a positive integer"),
    (dict(domain="sphere", n=3, dim=10, patch_dim=4), ValueError, "not divisible by patch_dim"),
    (dict(domain="sphere", n=3, dim=4.0), TypeError, "dim must be a positive integer"),
])
def test_bad_sampling_arguments(kwargs, err, msg):
    with pytest.raises(err, match=msg):
        iw.sample_inputs(**kwargs)


def test_digits_and_mnist1d_shapes():
    d = iw.load_digits(n_train=100, n_test=50, seed=1)
    assert d.x_train.shape == (100, 64) and d.image_shape == (8, 8, 1) and d.n_classes == 10
    np.testing.assert_allclose((d.x_train ** 2).sum(1), 64.0)
    oh = d.one_hot(d.y_train)
    np.testing.assert_allclose(oh.sum(1), 0.0, atol=1e-12)
    assert np.all(oh.argmax(1) == d.y_train)
    m = iw.load_mnist1d(num_samples=200)
    assert m.x_train.shape == (160, 40) and m.image_shape == (40, 1)
    state = np.random.get_state()[1].copy()
    iw.load_mnist1d(num_samples=100)
    np.testing.assert_array_equal(state, np.random.get_state()[1])  # global RNG untouched


def _write_idx(path, arr):
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big")
                                                   for s in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 12)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz",
                   rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    ds = iw.load_fashion_mnist(path=tmp_path, n_train=20)
    assert ds.x_train.shape == (20, 784) and ds.x_test.shape == (12, 784)
    assert ds.image_shape == (28, 28, 1)
    raw = read_idx(tmp_path / "t10k-labels-idx1-ubyte.gz")
    assert raw.shape == (12,)


def test_fashion_mnist_bad_shapes_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        iw.load_fashion_mnist(path=tmp_path)
    for split in ("train", "t10k"):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", np.zeros((4, 27, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", np.zeros(4))
    with pytest.raises(ValueError, match="unexpected shapes"):
        iw.load_fashion_mnist(path=tmp_path)


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(),
                    reason="Debian's dataset-fashion-mnist is not installed (CI installs it)")
def test_real_fashion_mnist():
    ds = iw.load_fashion_mnist(n_train=1000, n_test=100)
    assert ds.x_train.shape == (1000, 784) and set(np.unique(ds.y_train)) <= set(range(10))


def _cifar_batches(rng, rows):
    return {name: {b"batch_label": name.encode(),
                   b"data": rng.integers(0, 256, (rows, 3072), dtype=np.uint8),
                   b"labels": rng.integers(0, 10, rows).tolist(),
                   b"filenames": [f"{name}_{i}.png".encode() for i in range(rows)]}
            for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}


def _write_cifar_tar(path, batches, protocol=2):
    with tarfile.open(path, "w:gz") as tar:
        for name, batch in batches.items():
            blob = pickle.dumps(batch, protocol=protocol)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar10_loader_on_a_tiny_archive(tmp_path, monkeypatch):
    """The standard layout (data_batch_1…5, test_batch under cifar-10-batches-py), with
    batches of 4 rows instead of 10,000: from the tar.gz and from the extracted folder."""
    monkeypatch.setattr(datasets, "CIFAR_ROWS", 4)
    rng = np.random.default_rng(1)
    batches = _cifar_batches(rng, 4)
    path = tmp_path / "cifar-10-python.tar.gz"
    _write_cifar_tar(path, batches)
    ds = iw.load_cifar10(path, normalize=None)
    assert ds.x_train.shape == (20, 3072) and ds.x_test.shape == (4, 3072)
    assert ds.image_shape == (32, 32, 3)
    # channel-last: pixel (0, 0) of image 0 holds R, G, B from the CHW rows
    first = batches["data_batch_1"][b"data"][0].reshape(3, 32, 32)
    np.testing.assert_array_equal(ds.x_train[0, :3], first[:, 0, 0])
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][b"labels"])
    folder = tmp_path / "extracted"
    with tarfile.open(path) as tar:
        tar.extractall(folder, filter="data")
    again = iw.load_cifar10(folder / "cifar-10-batches-py", normalize=None)
    np.testing.assert_array_equal(again.x_train, ds.x_train)
    np.testing.assert_array_equal(iw.load_cifar10(folder, normalize=None).y_test, ds.y_test)
    with pytest.raises(FileNotFoundError, match="CIFAR-10"):
        iw.load_cifar10(tmp_path / "nope.tar.gz")


def test_cifar10_refuses_foreign_pickles(tmp_path, monkeypatch):
    """Only numpy arrays are rebuilt: a pickle that would call os.system is refused, naming
    the member, and nothing runs."""
    monkeypatch.setattr(datasets, "CIFAR_ROWS", 4)
    batches = _cifar_batches(np.random.default_rng(2), 4)
    path = tmp_path / "cifar-10-python.tar.gz"
    evil = b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR."
    with tarfile.open(path, "w:gz") as tar:
        for name, batch in batches.items():
            blob = pickle.dumps(batch, protocol=4)
            if name == "data_batch_3":
                blob = evil + b"\0" * (len(blob) - len(evil))
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(ValueError, match="data_batch_3.*os.system is not allowed"):
        iw.load_cifar10(path)
    assert not (tmp_path / "pwned").exists()


def test_fashion_mnist_truncated_file_is_named(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 30), ("t10k", 12)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz",
                   rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-40])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz is truncated or corrupt"):
        iw.load_fashion_mnist(path=tmp_path)
    with pytest.raises(ValueError, match="n_train=31 exceeds the 30 training examples"):
        iw.load_fashion_mnist(path=tmp_path, n_train=31)  # from the headers, before reading


def test_check_targets():
    from infwidth.data.inputs import check_targets

    assert check_targets([1.0, 2.0], 2).shape == (2, 1)
    assert check_targets(np.zeros((3, 4)), None).shape == (3, 4)
    with pytest.raises(ValueError, match=r"y must have shape \(2,\) or \(2, k\)"):
        check_targets(np.zeros(3), 2)
    with pytest.raises(ValueError, match=r"\(n,\) or \(n, k\)"):
        check_targets(np.zeros((2, 2, 2)), None)
    with pytest.raises(ValueError, match="y_test contains NaN"):
        check_targets([0.0, np.nan], 2, "y_test")


def test_sphere_inputs_follow_the_architectures_leaves():
    """A 2-D D-CNN's leaves are 2×2 squares: each is a sphere of radius √4, while a row of 4
    consecutive pixels is not; 1-D leaves give exactly the block draw."""
    arch = iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2)  # 4×4 images, four 2×2 patches
    x = iw.sample_inputs("sphere", 50, 16, seed=1, arch=arch)
    for leaf in arch.leaf_coordinates(16):
        np.testing.assert_allclose((x[:, leaf] ** 2).sum(1), 4.0, rtol=1e-12)
    assert not np.allclose((x[:, :4] ** 2).sum(1), 4.0)
    tree = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    np.testing.assert_array_equal(iw.sample_inputs("sphere", 5, 16, patch_dim=4, seed=3),
                                  iw.sample_inputs("sphere", 5, 16, seed=3, arch=tree))
    with pytest.raises(ValueError, match="patch_dim=3"):
        iw.sample_inputs("sphere", 5, 16, patch_dim=3, arch=tree)
    with pytest.raises(TypeError, match="arch"):
        iw.sample_inputs("sphere", 5, 16, arch="dcnn")
