"""The main job beyond memory (benchmarks/learnability.py): a Gram over ``memory_budget``
goes through the Zarr tile store and the store-backed solvers, with the same curve; a budget
that cannot run even that is refused in one line naming the largest m that fits."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("zarr", reason="the [distributed] extra (zarr) is not installed")

import infwidth as iw  # noqa: E402
from infwidth.kernels.gram_store import cholesky_limit  # noqa: E402
from infwidth.learning.regression import _largest_fit, store_memory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
JOB = """
name = "tiny-store"
dim = 16
sample_sizes = [16, 64, 512]
seeds = 1
n_test = 64

[[architectures]]
name = "MLP"
type = "MLP"
depth = 1
max_degree = 4

[[architectures]]
name = "D-CNN"
type = "DCNN"
patch_dim = 2
filter_sizes = [2, 4]
max_degree = 4

[[targets]]
name = "pair"
type = "pair"
patch_dim = 2
"""
BUDGET = 2_000_000  # bytes: the 576² Gram needs ≥ 8.7 MB in memory, the store route 0.75 MB


@pytest.fixture(scope="module")
def job():
    spec = importlib.util.spec_from_file_location("learnability",
                                                  ROOT / "benchmarks" / "learnability.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_a_small_budget_takes_the_store_route_to_the_same_curve(job, tmp_path, monkeypatch):
    """In memory vs a 2 MB budget: m = 16, 64 go through store-cholesky (row blocks read from
    the store, another Cholesky of the same bits: round-off × condition number < 1e3, 1e-12
    allowed), m = 512 (above cholesky_limit = 467) through store-cg (stopped at relative
    residual 1e-10, which the test error carries through K_te·K⁻¹: 1e-8 allowed, 1e-10 seen)."""
    monkeypatch.setenv("TQDM_DISABLE", "1")
    cfg = tmp_path / "job.toml"
    cfg.write_text(JOB)
    assert job.main(["--config", str(cfg), "--out", str(tmp_path / "mem")]) == 0
    assert job.main(["--config", str(cfg), "--out", str(tmp_path / "store"),
                     "--memory-budget", str(BUDGET), "--store", "g"]) == 0
    assert cholesky_limit(BUDGET) == 467
    mem = pd.read_csv(tmp_path / "mem" / "comparison.csv")
    sto = pd.read_csv(tmp_path / "store" / "comparison.csv")
    assert (mem.route == "in-memory").all()
    assert list(sto.route) == ["store-cholesky", "store-cholesky", "store-cg"] * 2
    chol, cg = (sto.route == "store-cholesky").to_numpy(), (sto.route == "store-cg").to_numpy()
    np.testing.assert_allclose(sto.test_mse[chol], mem.test_mse[chol], rtol=1e-12, atol=0)
    np.testing.assert_allclose(sto.test_mse[cg], mem.test_mse[cg], rtol=1e-8, atol=0)
    np.testing.assert_allclose(sto.condition_number[chol], mem.condition_number[chol],
                               rtol=1e-9)
    assert sto.condition_number[cg].isna().all() and (sto.cg_residual[cg] <= 1e-10).all()
    assert mem.cg_residual.isna().all()
    assert len(list((tmp_path / "store" / "g").glob("*.zarr"))) == 2  # one per (arch, seed)


def test_a_budget_beyond_even_the_store_is_refused_in_one_line(job, tmp_path, capsys):
    cfg = tmp_path / "job.toml"
    cfg.write_text(JOB)
    mlp = iw.MLP(depth=1)
    budget = store_memory(100, 64, 16, arch=mlp)  # the first architecture fits m = 100

    def need(m):
        return store_memory(m, 64, 16, arch=mlp)

    assert _largest_fit(need, 512, budget) == 100
    rc = job.main(["--config", str(cfg), "--out", str(tmp_path / "o"),
                   "--memory-budget", str(budget)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "memory_budget" in err and "the largest m that fits is m=100" in err, err
    assert not (tmp_path / "o" / "runs.sqlite").exists()  # refused before any work


def test_resource_flags_override_the_file_and_are_checked_by_name(job, tmp_path):
    from infwidth.io.harness import Run

    def parse(*argv):
        argv = ("--out", str(tmp_path / "out")) + argv
        return job.parse_args(Run(job.SCRIPT, job.SCRIPT.parse(argv)))

    cfg = tmp_path / "job.toml"
    cfg.write_text('memory_budget = "1GiB"\nclient = "local"\nstore = "s"\n' + JOB)
    _, c = parse("--config", str(cfg))
    assert (c.memory_budget, c.client, c.store) == (2**30, "local", "s")
    _, c = parse("--config", str(cfg), "--memory-budget", "2GB", "--client", "none",
                 "--store", "/x")
    assert (c.memory_budget, c.client, c.store) == (2 * 10**9, None, "/x")
    assert c.as_dict() == parse("--config", str(cfg))[1].as_dict()  # not the key
    with pytest.raises(SystemExit):
        parse("--config", str(cfg), "--memory-budget", "lots")


@pytest.mark.parametrize("arch", [iw.MLP(depth=1), iw.DCNN(patch_dim=2, filter_sizes=(2, 4)),
                                  iw.SCNN(patch_dim=4), iw.ConvNet(filter_size=3, depth=1)],
                         ids=lambda a: type(a).__name__)
def test_a_dask_task_rebuilds_every_architecture(arch):
    """client="local" ships (class, fields) to the workers: the MLP's fixed ndim (init=False)
    once made every MLP tile fail with "unexpected keyword argument 'ndim'"."""
    from infwidth.kernels.distributed import _arch_spec

    cls, fields = _arch_spec(arch)
    assert cls(**fields) == arch


def test_large_choleskys_run_on_one_blas_thread():
    """scipy's OpenBLAS 0.3.30 dpotrf segfaulted at n = 32768 on 2 threads (OpenBLAS #2562)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from infwidth.kernels.gram_store import SAFE_THREADED_CHOLESKY, cholesky_threads

    with cholesky_threads(SAFE_THREADED_CHOLESKY + 1):
        assert all(i["num_threads"] == 1 for i in threadpoolctl.threadpool_info()
                   if i["user_api"] == "blas")
    before = [i["num_threads"] for i in threadpoolctl.threadpool_info()]
    with cholesky_threads(SAFE_THREADED_CHOLESKY):
        assert [i["num_threads"] for i in threadpoolctl.threadpool_info()] == before
