"""The run store: exact round trips, units committed whole, runs kept apart, clear errors."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from infwidth.io.runstore import RunStore, RunStoreError


def test_values_round_trip_exactly(tmp_path):
    rng = np.random.default_rng(0)
    floats = [float(v) for v in rng.standard_normal(50) * 10.0 ** rng.integers(-300, 300, 50)]
    row = {"f": floats, "nan": math.nan, "inf": -math.inf, "np": np.float64(1 / 3),
           "i": np.int64(7), "t": (1, (2, 3)), "a": np.arange(4, dtype=np.int32),
           "b": True, "s": "x", "none": None}
    RunStore(tmp_path / "s.sqlite", {"c": 1}).put({"k": (0, 1)}, [row])
    back = RunStore(tmp_path / "s.sqlite", {"c": 1}).get({"k": (0, 1)})[0]
    assert [float(v).hex() for v in back["f"]] == [v.hex() for v in floats]
    assert math.isnan(back["nan"]) and back["inf"] == -math.inf
    assert back["np"] == 1 / 3 and back["i"] == 7 and back["t"] == (1, (2, 3))
    assert back["a"].dtype == np.int32 and back["a"].tolist() == [0, 1, 2, 3]
    assert back["b"] is True and back["s"] == "x" and back["none"] is None


def test_runs_are_kept_apart_and_fresh_forgets_only_its_own(tmp_path):
    path = tmp_path / "s.sqlite"
    a, b = RunStore(path, {"size": "quick"}), RunStore(path, {"size": "full"})
    a.put({"u": 1}, [{"x": 1.0}])
    assert b.get({"u": 1}) is None and {"u": 1} in a
    b.put({"u": 1}, [{"x": 2.0}])
    RunStore(path, {"size": "full"}, fresh=True)
    assert RunStore(path, {"size": "full"}).units() == []
    assert RunStore(path, {"size": "quick"}).get({"u": 1}) == [{"x": 1.0}]


def test_frame_follows_the_requested_order(tmp_path):
    s = RunStore(tmp_path / "s.sqlite", {})
    for u in (2, 0, 1):
        s.put({"u": u}, pd.DataFrame({"v": [u, u + 0.5]}))
    assert s.frame().u.tolist() == [2, 2, 0, 0, 1, 1]
    s.put({"u": 3}, [{"z": 1, "a": 2}])
    assert list(s.get({"u": 3})[0]) == ["z", "a"]  # rows keep their column order
    assert s.frame([{"u": 0}, {"u": 1}]).v.tolist() == [0, 0.5, 1, 1.5]
    with pytest.raises(KeyError, match="has not been committed"):
        s.frame([{"u": 5}])
    assert s.compute({"u": 0}, lambda: pytest.fail("recomputed")) == [{"v": 0}, {"v": 0.5}]
    assert s.compute({"u": 9}, lambda: [{"v": 9.0}]) == [{"v": 9.0}]


_WRITER = """
import sys
from infwidth.io.runstore import RunStore
s = RunStore(sys.argv[1], {"demo": 1})
i = 0
while True:
    s.put({"unit": i}, [{"row": j, "value": i * 1000 + j} for j in range(2000)])
    print(i, flush=True)
    i += 1
"""


def test_a_killed_writer_leaves_only_whole_units(tmp_path):
    path = tmp_path / "s.sqlite"
    for attempt in range(3):
        p = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)],
                             stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(3 + attempt):  # let a few units land, then kill mid-stream
                p.stdout.readline()
            time.sleep(0.01 * attempt)
            p.send_signal(signal.SIGKILL)
        finally:
            p.wait(timeout=30)
        store = RunStore(path, {"demo": 1})
        units = store.units()
        assert len(units) >= 3
        for u in units:
            rows = store.get(u)
            assert [r["row"] for r in rows] == list(range(2000))
            assert rows[-1]["value"] == u["unit"] * 1000 + 1999
        store.close()


@pytest.mark.parametrize("damage", ["garbage", "truncate", "empty-tables"])
def test_an_unreadable_store_is_refused_clearly(tmp_path, damage):
    path = tmp_path / "s.sqlite"
    s = RunStore(path, {"c": 1})
    for u in range(200):
        s.put({"u": u}, [{"x": float(u)}] * 20)
    s.close()
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\xff\xfe not sqlite " * 100)
    elif damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:
        import sqlite3
        con = sqlite3.connect(path)
        con.execute("DROP TABLE meta")
        con.commit()
        con.close()
    with pytest.raises(RunStoreError, match=r"s\.sqlite.*--fresh"):
        RunStore(path, {"c": 1}).frame()
    fresh = RunStore(path, {"c": 1}, fresh=True)
    assert fresh.units() == []


def test_bad_arguments():
    with pytest.raises(TypeError, match="config"):
        RunStore("unused.sqlite", [("a", 1)])
    with pytest.raises(TypeError, match="cannot store"):
        from infwidth.io.runstore import canonical_json
        canonical_json({"x": object()})
