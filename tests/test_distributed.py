"""Gram tiles on Dask in a Zarr store: bitwise equal to in-process, survives killed workers and
a killed client, refuses a store made for other arguments, reports failing tiles.

Loopback only: a LocalCluster of 2 single-threaded worker processes (shared by the module and
closed at its end). Every test runs under a wall-clock alarm.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("zarr", reason="the [distributed] extra (zarr) is not installed")
pytest.importorskip("distributed", reason="the [distributed] extra (dask[distributed]) is not "
                                          "installed")

import infwidth as iw  # noqa: E402
from infwidth.kernels import tiles  # noqa: E402
from infwidth.kernels.distributed import TileError, gram, local_cluster  # noqa: E402
from infwidth.kernels.gram_store import (  # noqa: E402
    GramStore,
    StoredGram,
    kernel_regression_from_store,
)

ARCH = iw.ConvNet(filter_size=3, depth=2, readout="gap")
N, DIM, TILE = 44, 16, 12  # 4×4 tile grid, last row/column of tiles 8 wide: 10 upper tiles
N_TILES = 10


@contextmanager
def deadline(seconds: float):
    """Fail the test (TimeoutError) if the block runs longer than ``seconds``."""
    def alarm(signum, frame):
        raise TimeoutError(f"test exceeded its {seconds} s bound")
    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((N, DIM))


@pytest.fixture(scope="module")
def reference(x, tmp_path_factory) -> StoredGram:
    """The in-process Gram store (the reference every other run is compared with)."""
    with deadline(60):
        g = gram(ARCH, x, store=tmp_path_factory.mktemp("ref") / "K.zarr", tile=TILE,
                 progress=False)
    assert g.report["computed"] == N_TILES and g.complete
    return g


@pytest.fixture(scope="module")
def client():
    from distributed import Client
    with deadline(60):
        cluster = local_cluster(n_workers=2, gpus=0)
        cm = cluster.__enter__()
        c = Client(cm)
    try:
        yield c
    finally:
        with deadline(60):
            c.close()
            cluster.__exit__(None, None, None)


def test_in_process_store_matches_the_engine(reference, x):
    k = reference.to_numpy()
    np.testing.assert_allclose(k, iw.kernel(ARCH, x), rtol=1e-12, atol=1e-14)
    assert np.array_equal(k, k.T)  # exactly symmetric: lower tiles mirrored
    assert np.array_equal(reference.row_block(5, 30), k[5:30])


def test_distributed_equals_in_process_bitwise(client, reference, x, tmp_path):
    with deadline(60):
        g = gram(ARCH, x, store=tmp_path / "D.zarr", client=client, tile=TILE,
                 progress=False)
    assert g.report["computed"] == N_TILES and g.report["workers"] == 2
    assert np.array_equal(g.to_numpy(), reference.to_numpy())  # bitwise


def test_killed_worker_loses_only_its_tile(client, reference, x, tmp_path):
    pids = list(client.run(os.getpid).values())
    assert len(pids) == 2
    path = tmp_path / "K.zarr"
    seen: dict = {}

    def kill_one() -> None:  # from the client side, while tiles are running
        deadline_t = time.time() + 30
        while time.time() < deadline_t:
            if path.exists():
                try:
                    done = int(GramStore.open(path).done_mask().sum())
                except Exception:  # noqa: BLE001 - store being created
                    done = -1
                if done >= 1:
                    seen["done_at_kill"] = done
                    os.kill(pids[0], signal.SIGKILL)
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one, daemon=True)
    with deadline(75):
        killer.start()
        g = gram(ARCH, x, store=path, client=client, tile=TILE, progress=False,
                 _tile_delay=0.8)
        killer.join(5)
    assert 1 <= seen["done_at_kill"] < N_TILES  # the kill hit a running computation
    assert g.complete and g.report["computed"] == N_TILES
    assert np.array_equal(g.to_numpy(), reference.to_numpy())


_CHILD = """
import sys, numpy as np, infwidth as iw
from infwidth.kernels.distributed import gram
x = np.random.default_rng(0).standard_normal(({n}, {dim}))
gram(iw.ConvNet(filter_size=3, depth=2, readout="gap"), x, store=sys.argv[1], tile={tile},
     progress=False)
"""


def test_killed_client_resumes_with_only_the_missing_tiles(reference, x, tmp_path):
    path = tmp_path / "K.zarr"
    code = textwrap.dedent(_CHILD.format(n=N, dim=DIM, tile=TILE))
    # SIGKILL at the 4th tile after its chunk is written but before it is marked done
    env = {**os.environ, "INFWIDTH_KILL_AFTER_TILES": "4", "INFWIDTH_KILL_BEFORE_MARK": "1"}
    proc = subprocess.run([sys.executable, "-c", code, str(path)], env=env, timeout=90,
                          capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert GramStore.open(path).done_mask().sum() == 3
    with deadline(60):
        g = gram(ARCH, x, store=path, progress=False)
    assert g.report["done_before"] == 3 and g.report["computed"] == N_TILES - 3
    assert np.array_equal(g.to_numpy(), reference.to_numpy())


def test_store_for_other_arguments_is_refused(reference, x):
    path = reference.path
    other = iw.ConvNet(filter_size=3, depth=3, readout="gap")
    with pytest.raises(ValueError, match=rf"store {path} was made for architecture "
                                         r"ConvNet\(.*depth=2.*\), not ConvNet\(.*depth=3"
                                         r".*differs in depth=2 → 3"):
        gram(other, x, store=path)
    with pytest.raises(ValueError, match=r"made for architecture ConvNet.*not DCNN"):
        gram(iw.DCNN(patch_dim=4, filter_sizes=(2, 2)), x, store=path)
    with pytest.raises(ValueError, match=r"made for kinds \('ntk',\), not \('nngp',\)"):
        gram(ARCH, x, kinds="nngp", store=path)
    with pytest.raises(ValueError, match=r"made for x1 of shape \(44, 16\) with sha256"):
        gram(ARCH, x + 1.0, store=path)
    with pytest.raises(ValueError, match=r"made for the symmetric Gram of x1 \(x2=None\)"):
        gram(ARCH, x, x, store=path)
    with pytest.raises(ValueError, match=r"made with tiles of 12, not the tile=16"):
        gram(ARCH, x, store=path, tile=16)
    assert gram(ARCH, x, store=path).report["computed"] == 0  # same arguments: reused


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning",
                            "ignore:invalid value encountered:RuntimeWarning")
def test_failing_tiles_are_reported_and_the_store_stays_valid(x, tmp_path, monkeypatch):
    bad = x.copy()
    bad[3] = 1e200  # its squared norm overflows: NaN in every tile holding row 3
    with deadline(60), pytest.raises(TileError) as err:
        gram(ARCH, bad, store=tmp_path / "N.zarr", tile=TILE, progress=False)
    failed = sorted(f["tile"] for f in err.value.failures)
    assert failed and all(i == 0 for i, _ in failed)  # row tile 0 holds row 3
    assert "tile (0, 0) rows 0:12, cols 0:12: NaN in ntk" in str(err.value)
    g = StoredGram(tmp_path / "N.zarr")
    assert not g.complete and g.store.done_mask().sum() == N_TILES - len(failed)
    with pytest.raises(ValueError, match="lacks"):
        g.row_block(0, 12)

    real = tiles._engine

    def engine(arch, xa, xb, kinds, dtype):  # the tile at rows 12:24, cols 24:36 runs out
        if xa.shape[0] == TILE and xb is not None and np.array_equal(xb, x[24:36]) \
                and np.array_equal(xa, x[12:24]):
            raise MemoryError("simulated")
        return real(arch, xa, xb, kinds, dtype)

    monkeypatch.setattr(tiles, "_engine", engine)
    with deadline(60), pytest.raises(TileError, match=r"tile \(1, 2\) rows 12:24, cols "
                                                      r"24:36: MemoryError: simulated"):
        gram(ARCH, x, store=tmp_path / "M.zarr", tile=TILE, progress=False)
    assert GramStore.open(tmp_path / "M.zarr").missing() == [(1, 2)]
    monkeypatch.setattr(tiles, "_engine", real)
    g = gram(ARCH, x, store=tmp_path / "M.zarr", progress=False)
    assert g.report["computed"] == 1 and g.complete


def test_kernel_regression_from_store(reference, x):
    k = reference.to_numpy()
    y = np.sin(x[:, 0]) + x[:, 1]
    m, ridge = 32, 1e-3
    shift = ridge + 1e-10 * np.trace(k[:m, :m]) / m
    alpha = np.linalg.solve(k[:m, :m] + shift * np.eye(m), y[:m])
    want = k[m:, :m] @ alpha
    chol = kernel_regression_from_store(reference, m, y[:m], y[m:], ridge=ridge)
    assert chol["solver"] == "cholesky"
    np.testing.assert_allclose(chol["prediction"], want, rtol=1e-8, atol=1e-10)
    # a budget below the in-memory limit (m² float64 > 7/8 of it): CG with row-block matvecs
    cg = kernel_regression_from_store(reference, m, y[:m], y[m:], ridge=ridge,
                                      memory_budget=m * m * 8)
    assert cg["solver"] == "cg" and cg["cholesky_limit"] < m
    np.testing.assert_allclose(cg["prediction"], want, rtol=1e-6, atol=1e-8)


def test_learning_curve_from_store(tmp_path):
    """kernel_regression_curve(store=...) fills one Zarr store per seed and reads it back.
    In memory (the Gram fits a quarter of the budget) it is the in-memory curve bit for bit:
    an entry's bits do not depend on the tiling. From row blocks, m by m, it is a different
    Cholesky of the same matrix: round-off times the condition number (< 1e3 with this
    ridge), ~1e-13; 1e-12 allowed (and for its condition-number estimate, 1e-9)."""
    from infwidth.kernels.gram_store import GramStore

    arch = iw.DCNN(patch_dim=4, filter_sizes=(2, 2))
    t = iw.Target.pair("hypercube", 16, 4)
    kw = dict(seeds=2, n_test=300, ridge=1e-2, per_seed=True)
    ref = iw.kernel_regression_curve(arch, t, [16, 64], **kw)
    with deadline(120):
        mem = iw.kernel_regression_curve(arch, t, [16, 64], store=tmp_path / "a", **kw)
        rows = iw.kernel_regression_curve(arch, t, [16, 64], store=tmp_path / "b",
                                          memory_budget="2MiB", **kw)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["seed0.zarr", "seed1.zarr"]
    assert not GramStore.open(tmp_path / "b" / "seed1.zarr").missing()
    np.testing.assert_array_equal(mem.test_mse, ref.test_mse)
    np.testing.assert_allclose(rows.test_mse, ref.test_mse, rtol=1e-12, atol=0)
    # the row-block route's Cholesky gives LAPACK's dpocon estimate too, on its own factor
    np.testing.assert_allclose(rows.condition_number, ref.condition_number, rtol=1e-9)
    with pytest.raises(ValueError, match="client needs a store"):
        iw.kernel_regression_curve(arch, t, [16], client="local")
