"""The tutorial (docs/tutorial.ipynb) runs top to bottom: every code cell, in order, in one
namespace, as a reader's kernel would, with its outputs written to a temporary folder."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "tutorial.ipynb"


def test_the_tutorial_runs_top_to_bottom(tmp_path, monkeypatch):
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = [("".join(c["source"]), i) for i, c in enumerate(cells) if c["cell_type"] == "code"]
    assert len(code) >= 6
    monkeypatch.setenv("INFWIDTH_TUTORIAL_OUT", str(tmp_path))
    namespace: dict = {"__name__": "__tutorial__"}
    start = time.perf_counter()
    for src, i in code:
        exec(compile(src, f"{NOTEBOOK.name}[cell {i}]", "exec"), namespace)
    assert time.perf_counter() - start < 300
    for png in ("space_frequency_dcnn.png", "learning_curves.png"):
        assert (tmp_path / png).stat().st_size > 10_000
    both = namespace["both"]
    assert len(both) == 4 and both.test_mse_measured.notna().all()
    assert os.environ["INFWIDTH_TUTORIAL_OUT"] == str(tmp_path)
