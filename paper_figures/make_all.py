"""Rebuild every paper figure: ``python paper_figures/make_all.py [--quick | --tiny] [--out DIR]``.

Runs ``fig1_*.py`` … ``fig7_*.py`` one after another, each in its own process (so one
figure's JAX caches and memory do not weigh on the next), with the same size flag and output
folder, and writes ``make_all_timings.csv`` (wall seconds per figure and in total) there.
Figures whose script fails are reported and the exit status is 1; the others still run.
``--only 3 6`` rebuilds a subset. ``--fresh`` ignores saved partial results (figures 2 and 7
resume from them by default).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from infwidth.io.scripts import DEFAULT_OUT, write_csv

HERE = Path(__file__).resolve().parent

SCRIPTS = sorted(HERE.glob("fig[0-9]_*.py"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true")
    g.add_argument("--tiny", action="store_true")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--only", nargs="+", type=int, default=None, help="figure numbers")
    p.add_argument("--fresh", action="store_true")
    args = p.parse_args(argv)
    flags = ["--quick"] if args.quick else ["--tiny"] if args.tiny else []
    flags += ["--out", str(args.out.resolve())] + (["--fresh"] if args.fresh else [])
    args.out.mkdir(parents=True, exist_ok=True)
    rows, t_all, failed = [], time.perf_counter(), []
    for script in SCRIPTS:
        num = int(script.name[3])
        if args.only and num not in args.only:
            continue
        print(f"=== {script.name} {' '.join(flags)}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(script)] + flags, cwd=HERE.parent)
        dt = time.perf_counter() - t0
        rows.append(dict(figure=script.stem, seconds=round(dt, 1), exit_status=rc))
        print(f"=== {script.name}: {dt:.0f} s, exit status {rc}", flush=True)
        if rc:
            failed.append(script.name)
    size = "quick" if args.quick else "tiny" if args.tiny else "full"
    rows.append(dict(figure=f"total ({size})", seconds=round(time.perf_counter() - t_all, 1),
                     exit_status=int(bool(failed))))
    df = pd.DataFrame(rows)
    write_csv(df, args.out / "make_all_timings.csv")
    print(df.to_string(index=False))
    if failed:
        print("FAILED:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
