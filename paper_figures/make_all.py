"""Rebuild every paper figure: ``python paper_figures/make_all.py [--quick | --tiny] [--out DIR]``.

Runs ``fig1_*.py`` … ``fig7_*.py`` one after another, each in its own process (so one
figure's JAX caches and memory do not weigh on the next), with the same size flag and output
folder, and writes ``make_all_timings.csv`` (wall seconds per figure and in total, and the
optional data a figure was drawn without) there. Figures whose script fails are reported and
the exit status is 1; the others still run. Missing optional data (Debian's
``dataset-fashion-mnist``, the ``[data]`` extra) is not a failure: the figure is drawn
without it and says so, and the data are listed at the end. ``--only 3 6`` rebuilds a subset.
Every figure resumes from its run store (``<out>/figN_*.runs.sqlite``); ``--fresh`` starts
each over.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from infwidth.io.scripts import DEFAULT_OUT, Option, Script

HERE = Path(__file__).resolve().parent

SCRIPTS = sorted(HERE.glob("fig[0-9]_*.py"))


def missing_data(summary: Path) -> dict[str, str]:
    """The optional data a figure was drawn without (its summary JSON's ``missing_data``)."""
    try:
        return dict(json.loads(summary.read_text()).get("missing_data") or {})
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


SCRIPT = Script("make_all", __doc__, out=DEFAULT_OUT, store=None, fresh=True, options=(
    Option("--only", nargs="+", type=int, default=None, help="figure numbers"),))


@SCRIPT.main
def main(run) -> int:
    args = run.args
    flags = ["--quick"] if args.quick else ["--tiny"] if args.tiny else []
    flags += ["--out", str(args.out.resolve())] + (["--fresh"] if args.fresh else [])
    rows, t_all, failed, missing = [], time.perf_counter(), [], {}
    for script in SCRIPTS:
        num = int(script.name[3])
        if args.only and num not in args.only:
            continue
        print(f"=== {script.name} {' '.join(flags)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)] + flags, cwd=HERE.parent)
        dt = time.perf_counter() - t0
        lacking = {} if rc else missing_data(args.out / f"{script.stem}.json")
        rows.append(dict(figure=script.stem, seconds=round(dt, 1), exit_status=rc,
                         missing_data="; ".join(f"{k}: {v}" for k, v in lacking.items())))
        print(f"=== {script.name}: {dt:.0f} s, exit status {rc}"
              + (f", drawn without {', '.join(lacking)}" if lacking else ""), flush=True)
        if rc:
            failed.append(script.name)
        missing.update({f"{script.stem}: {k}": v for k, v in lacking.items()})
    rows.append(dict(figure=f"total ({run.size})", seconds=round(time.perf_counter() - t_all, 1),
                     exit_status=int(bool(failed)), missing_data=""))
    df = pd.DataFrame(rows)
    run.write_csv(df, "make_all_timings.csv")
    print(df.drop(columns="missing_data").to_string(index=False))
    for what, why in missing.items():
        print(f"MISSING DATA (not a failure) {what}: {why}")
    if failed:
        print("FAILED:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
