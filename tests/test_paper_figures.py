"""Tests of the paper-figure helpers (checked against closed forms and neural-tangents) and
smoke tests of every figure script at its --tiny size."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

import infwidth as iw
from paper_figures import _sphere as S

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ sphere helpers
# P_k, N(d, k) and Funk–Hecke live in infwidth.eigenspaces.harmonics: tests/test_harmonics.py


def test_mlp_profile_matches_neural_tangents():
    d = 9
    t = np.linspace(-0.95, 0.95, 9)
    for arch in (iw.MLP(depth=2), iw.MLP(depth=1, activation="erf")):
        for kind in ("nngp", "ntk"):
            nt = S.kernel_profile(lambda a, b: iw.kernel(arch, a, b, kind=kind), d)
            np.testing.assert_allclose(S.mlp_profile(arch, kind)(t), nt(t), rtol=1e-12)


def test_zonal_target_has_unit_power():
    d, n = 6, 40_000
    x = iw.sample_inputs("sphere", n, d, seed=3)
    for k in (1, 2, 3):
        f2 = S.zonal_target(k, d, n_centres=5, seed=k)(x) ** 2
        # Monte-Carlo mean of f² within 4 standard errors of the exact power 1
        assert abs(f2.mean() - 1) < 4 * f2.std() / math.sqrt(n)


def test_mp_density_normalised_and_mean_one():
    for gamma in (0.25, 0.7, 1.6):
        lo, hi = S.mp_edges(gamma)
        mass = integrate.quad(lambda v: S.mp_density(np.array([v]), gamma)[0], lo, hi,
                              limit=200)[0]
        mean = integrate.quad(lambda v: v * S.mp_density(np.array([v]), gamma)[0], lo, hi,
                              limit=200)[0]
        assert mass == pytest.approx(1.0, abs=1e-6)
        # E[λ] over the non-zero part: tr(W)/rank = N/min(N, m) = max(1, γ)
        assert mean == pytest.approx(max(1.0, gamma), rel=1e-5)


def test_find_peaks():
    m = np.arange(7)
    y = np.array([1.0, 2.0, 1.0, 0.5, 0.9, 0.3, 0.2])
    assert S.find_peaks(m, y) == [1, 4]
    assert S.find_peaks(m, y, err=np.full(7, 0.3), k=2.0) == [1]


# ------------------------------------------------------------------ figure smoke tests
def check_figure_outputs(out: Path, name: str, size: str = "tiny") -> None:
    """A figure script's outputs in ``out`` are whole: a readable PNG, a non-empty CSV with no
    all-NaN numeric column and only finite numbers (±∞ only where it means L = ∞), a JSON
    of the run's ``size``. tests/test_resume.py runs every figure's ``--tiny`` size through
    it (its clean run), so the smoke test and the resume test share one run."""
    png = out / f"{name}.png"
    assert png.stat().st_size > 20_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    df = pd.read_csv(out / f"{name}.csv")
    assert len(df) > 0
    meta = json.loads((out / f"{name}.json").read_text())
    assert meta["size"] == size
    num = df.select_dtypes("number")
    assert not num.isna().all().any(), "a numeric column is entirely NaN"
    # ±∞ is meaningful only for learning indices and spaces (L = ∞: λ = 0 exactly)
    for col in num.columns:
        if col not in ("learning_index", "space", "predicted"):
            v = num[col].dropna().to_numpy(dtype=float)
            assert np.isfinite(v).all(), col


def test_figure_main_returns_its_summary(tmp_path):
    """In process, as a notebook would call it: ``main`` returns the summary it writes."""
    from paper_figures import fig1_topologies as F1

    summary = F1.main(["--tiny", "--out", str(tmp_path)])
    assert summary["size"] == "tiny"
    check_figure_outputs(tmp_path, "fig1_topologies")


def test_make_all_runs_a_subset_and_records_timings(tmp_path):
    import subprocess

    rc = subprocess.call([sys.executable, str(ROOT / "paper_figures" / "make_all.py"), "--tiny",
                          "--only", "1", "--out", str(tmp_path)], cwd=ROOT,
                         stdout=subprocess.DEVNULL)
    assert rc == 0
    t = pd.read_csv(tmp_path / "make_all_timings.csv")
    assert list(t.figure) == ["fig1_topologies", "total (tiny)"]
    assert (t.exit_status == 0).all() and (t.seconds > 0).all()
    assert (tmp_path / "fig1_topologies.png").exists()


def test_fig7_larger_gap_run_supersedes_and_is_resumed(tmp_path):
    """A --gap-only run with a larger N (as on an accelerator) replaces the GAP kernel rows,
    keeps every other row, and a later plain run resumes instead of recomputing them."""
    from paper_figures import fig7_real_data as F7

    out = ["--tiny", "--out", str(tmp_path), "--datasets", "digits"]
    F7.main(out)
    first = pd.read_csv(tmp_path / "fig7_real_data.csv")
    F7.main(out + ["--gap-only", "--gap-max", "16", "--gap-test", "10"])
    second = pd.read_csv(tmp_path / "fig7_real_data.csv")
    key = ["dataset", "arch", "kind", "n_train"]
    assert not second.duplicated(key).any()
    gap = second[(second.arch == "ConvNet-GAP") & second.kind.isin(["nngp", "ntk"])]
    assert sorted(gap.n_train.unique()) == [8, 16] and (gap.n_test == 10).all()
    assert (gap.device == "cpu").all()
    def others(df):
        return df[~((df.arch == "ConvNet-GAP") & df.kind.isin(["nngp", "ntk"]))]

    pd.testing.assert_frame_equal(others(first)[key + ["accuracy"]].reset_index(drop=True),
                                  others(second)[key + ["accuracy"]].reset_index(drop=True))
    F7.main(out)
    third = pd.read_csv(tmp_path / "fig7_real_data.csv")
    pd.testing.assert_frame_equal(second, third)
    for bad in (["--gap-max", "-1"], ["--memory-budget", "40XB"]):
        with pytest.raises(SystemExit):
            F7.main(out + bad)


# Runs a script as if Debian's dataset-fashion-mnist and scikit-learn were not installed:
# the Fashion-MNIST loader looks in an empty folder, and `import sklearn` fails.
HIDE_DATA = """
import os, sys
from pathlib import Path
sys.modules["sklearn"] = None  # ModuleNotFoundError on import, as when not installed
import infwidth.data.datasets as _datasets
_datasets.FASHION_MNIST_DIR = Path(os.environ["INFWIDTH_FASHION_MNIST_DIR"])
"""


def test_fig7_draws_the_rest_when_data_are_missing(tmp_path):
    """Without Fashion-MNIST and scikit-learn (digits), figure 7 --tiny exits 0, draws
    mnist1d, and names what is missing and how to install it in its log, summary JSON and
    panel; make_all counts it as a success."""
    import subprocess

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HIDE_DATA)
    out = tmp_path / "out"
    env = {**os.environ, "TQDM_DISABLE": "1", "MPLBACKEND": "Agg",
           "PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")]),
           "INFWIDTH_FASHION_MNIST_DIR": str(tmp_path / "no-fashion-mnist")}
    r = subprocess.run([sys.executable, str(ROOT / "paper_figures" / "fig7_real_data.py"),
                        "--tiny", "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    for needle in ("Fashion-MNIST", "apt-get install dataset-fashion-mnist", "sklearn",
                   'pip install -e ".[data]"'):
        assert needle in r.stdout, needle
    png = out / "fig7_real_data.png"
    assert png.stat().st_size > 20_000
    meta = json.loads((out / "fig7_real_data.json").read_text())
    assert sorted(meta["missing_data"]) == ["digits", "fashion"]
    assert "apt-get install dataset-fashion-mnist" in meta["missing_data"]["fashion"]
    assert '.[data]' in meta["missing_data"]["digits"]
    df = pd.read_csv(out / "fig7_real_data.csv")
    assert set(df.dataset) == {"mnist1d"} and len(df) > 0
    # make_all: exit status 0, the missing data listed (figure 7 resumes: nothing recomputed)
    r = subprocess.run([sys.executable, str(ROOT / "paper_figures" / "make_all.py"), "--tiny",
                        "--only", "7", "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "MISSING DATA (not a failure) fig7_real_data: fashion" in r.stdout
    t = pd.read_csv(out / "make_all_timings.csv")
    assert (t.exit_status == 0).all()
    assert "dataset-fashion-mnist" in t.missing_data[0]


def test_fig7_imports_gap_rows_from_another_machine(tmp_path):
    """The committed H100 rows (paper_figures/data/fig7_gap_fashion_h100.csv) go into the full
    run's store bit for bit and supersede its smaller Fashion GAP kernel (N = 32): nothing is
    computed, the data are not even loaded, and a later run resumes from them."""
    from paper_figures import fig7_real_data as F7

    docs = ROOT / "paper_figures" / "data" / "fig7_gap_fashion_h100.csv"
    args = ["--out", str(tmp_path), "--datasets", "fashion", "--gap-only"]
    with pytest.raises(SystemExit, match="full"):  # rows of another run size are refused
        F7.main(["--tiny", *args, "--import-gap-rows", str(docs)])
    summary = F7.main([*args, "--import-gap-rows", str(docs)])
    assert summary["gap_largest_n"] == {"fashion": 1024}
    want = pd.read_csv(docs)
    got = pd.read_csv(tmp_path / "fig7_real_data.csv")
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    F7.main(args)  # resumes: the imported unit reaches N = 32, so it is drawn again
    again = pd.read_csv(tmp_path / "fig7_real_data.csv")
    pd.testing.assert_frame_equal(again, want, check_exact=True)
