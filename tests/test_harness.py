"""The scripts' harness (infwidth.io.harness): one way to declare a script's command line,
open its run store, write its outputs and close it; every script uses it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from infwidth.io.harness import Option, Script

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*(ROOT / "benchmarks").glob("*.py"), *(ROOT / "paper_figures").glob("*.py")])
SCRIPTS = [p for p in SCRIPTS if not p.name.startswith("_")]


def test_flags_sizes_and_out(tmp_path):
    s = Script("demo", "A demo.\n\nMore.", out=tmp_path / "default", sizes=("quick", "tiny"),
               options=(Option("--seed", type=int, default=0),))
    a = s.parse(["--tiny", "--seed", "3", "--fresh"])
    assert (a.size, a.seed, a.fresh, a.out) == ("tiny", 3, True, tmp_path / "default")
    assert s.parse([]).size == "full"
    with pytest.raises(SystemExit):  # the size flags exclude each other
        s.parse(["--tiny", "--quick"])
    bare = Script("bare", "No store.", sizes=(), store=None)
    with pytest.raises(SystemExit):  # no store: no --fresh, and no size flags
        bare.parse(["--fresh"])
    assert bare.parse([]).fresh is False


def test_an_option_can_join_the_size_group():
    s = Script("job", "A job.", sizes={"quick": "small"}, options=(
        Option("--config", group="size"),))
    assert s.parse(["--config", "x.toml"]).config == "x.toml"
    with pytest.raises(SystemExit):
        s.parse(["--quick", "--config", "x.toml"])


def test_bad_declarations_are_refused():
    with pytest.raises(ValueError, match="sizes"):
        Script("x", "X.", sizes=("huge",))
    with pytest.raises(ValueError, match="flags"):
        Option("seed")
    with pytest.raises(ValueError, match="name"):
        Script("", "X.")


def test_main_resumes_from_its_store_and_writes_atomically(tmp_path, capsys):
    calls = []
    s = Script("squares", "Squares.", options=(Option("--n", type=int, default=3),))

    @s.main
    def main(run):
        store = run.store(n=run.args.n)
        rows = [store.compute({"i": i}, lambda i=i: calls.append(i) or [{"sq": i * i}])[0]
                for i in range(run.args.n)]
        run.write_csv(pd.DataFrame(rows), "squares.csv")
        return rows

    out = ["--out", str(tmp_path)]
    assert main(out) == [{"sq": 0}, {"sq": 1}, {"sq": 4}]
    assert "3 units computed now, 0 resumed" in capsys.readouterr().out
    main(out)
    assert calls == [0, 1, 2]  # the rerun computed nothing
    assert "0 units computed now, 3 resumed from runs.sqlite" in capsys.readouterr().out
    main([*out, "--fresh"])
    assert calls == [0, 1, 2, 0, 1, 2]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_damaged_store_names_the_file_and_the_way_out(tmp_path):
    (tmp_path / "runs.sqlite").write_bytes(b"\x00garbage" * 500)
    s = Script("x", "X.")
    main = s.main(lambda run: run.store())
    with pytest.raises(SystemExit, match=r"runs\.sqlite.*--fresh"):
        main(["--out", str(tmp_path)])
    main(["--out", str(tmp_path), "--fresh"])


def test_the_scripts_module_sets_no_backend_on_import():
    code = ("import sys, matplotlib; b = matplotlib.rcParams._get_backend_or_none(); "
            "import infwidth.io.scripts as C; "
            "assert 'matplotlib.pyplot' not in sys.modules; "
            "assert matplotlib.rcParams._get_backend_or_none() == b; "
            "assert C.plt.__name__ == 'matplotlib.pyplot'")
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT)


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_every_script_uses_the_harness(path):
    src = path.read_text()
    assert "@SCRIPT.main" in src, "declare the script with infwidth.io.harness.Script"
    for plumbing in ("ArgumentParser", "RunStore(", "open_run_store(", "parse_args(argv"):
        assert plumbing not in src, plumbing
