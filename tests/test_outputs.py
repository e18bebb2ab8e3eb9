"""Atomic result files (infwidth.io.outputs)."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infwidth.io import outputs as O


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_csv_round_trip_with_the_usual_file_mode(tmp_path):
    df = pd.DataFrame({"a": [1, 2], "b": [0.5, np.nan]})
    p = O.write_csv(df, tmp_path / "sub" / "t.csv")  # missing folder is created
    pd.testing.assert_frame_equal(pd.read_csv(p), df)
    umask = os.umask(0)
    os.umask(umask)
    assert (p.stat().st_mode & 0o777) == (0o666 & ~umask)
    assert _listing(p.parent) == ["t.csv"]


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "r.json"
    O.write_json({"v": 1}, p)

    def broken(tmp):
        tmp.write_text("half")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        O.atomic_write(p, broken)
    assert json.loads(p.read_text()) == {"v": 1}
    assert _listing(tmp_path) == ["r.json"]


def test_json_converts_numpy_and_paths_and_refuses_the_rest(tmp_path):
    obj = {"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True),
           "a": np.arange(3), "p": Path("x/y")}
    back = json.loads(O.write_json(obj, tmp_path / "o.json").read_text())
    assert back == {"i": 3, "f": 0.5, "b": True, "a": [0, 1, 2], "p": "x/y"}
    with pytest.raises(TypeError, match="object is not JSON serialisable"):
        O.write_json({"x": object()}, tmp_path / "bad.json")
    assert _listing(tmp_path) == ["o.json"]


def test_npz_and_png(tmp_path):
    p = O.write_npz(tmp_path / "k.npz", k=np.eye(2))
    assert np.array_equal(np.load(p)["k"], np.eye(2))
    with pytest.raises(ValueError, match="must end in .npz"):
        O.write_npz(tmp_path / "k.bin", k=np.eye(2))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = O.write_png(fig, tmp_path / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)
    assert _listing(tmp_path) == ["f.png", "k.npz"]
