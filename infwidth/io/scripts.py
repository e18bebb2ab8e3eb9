"""Shared plumbing of the command-line scripts (paper figures, benchmarks): arguments,
atomic output, resume, progress, figure style."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from infwidth.io.outputs import write_csv, write_json, write_png  # noqa: E402,F401 (re-exported)
from infwidth.io.runstore import RunStore, RunStoreError  # noqa: E402

DEFAULT_OUT = Path("results") / "paper_figures"  # relative to the working directory
SIZES = ("tiny", "quick", "full")


def parse_args(argv: Sequence[str] | None, doc: str,
               extra: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> argparse.Namespace:
    """``--quick`` / ``--tiny`` (smoke-test size) / ``--out DIR`` / ``--fresh``, plus the
    options that ``extra`` adds to the parser."""
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=doc)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true", help="smaller sizes (make_all --quick)")
    g.add_argument("--tiny", action="store_true", help="smoke-test sizes (seconds)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    p.add_argument("--fresh", action="store_true",
                   help="ignore saved partial results instead of resuming from them")
    if extra is not None:
        extra(p)
    args = p.parse_args(list(argv) if argv is not None else None)
    args.size = "tiny" if args.tiny else "quick" if args.quick else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def open_run_store(path: Path | str, name: str, config: dict, fresh: bool) -> RunStore:
    """The run store at ``path`` for script ``name``, keyed by ``config`` (every option that
    changes the numbers); ``fresh`` forgets its units. An unreadable store ends the script
    with a one-line message that names the file and ``--fresh``."""
    try:
        return RunStore(path, {"script": name, **config}, fresh=fresh)
    except RunStoreError as e:
        raise SystemExit(f"error: {e}") from None


def open_store(args: argparse.Namespace, name: str, **config) -> RunStore:
    """A figure's run store: ``<out>/<name>.runs.sqlite``, keyed by the run size and
    ``config``; ``--fresh`` forgets its units."""
    return open_run_store(Path(args.out) / f"{name}.runs.sqlite", name,
                          {"size": args.size, **config}, args.fresh)


def unit(store: RunStore, key: dict, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """One unit of work: its rows from ``store`` when committed, else ``compute()``
    committed whole first. Both paths read the rows back from the store, so a resumed run
    and an uninterrupted one end with the same bits."""
    return pd.DataFrame(store.compute(key, compute))


def stored_spectrum(store: RunStore, key: dict, arch, dim: int, domain: str, kind: str,
                    **options):
    """``iw.spectrum(arch, dim, domain, kind, **options)`` as one unit of work: the type
    table is committed whole, and a rerun rebuilds the same :class:`Spectrum` from it."""
    from dataclasses import fields

    from infwidth.eigenspaces import EigenType, Spectrum, spectrum

    def compute() -> list[dict]:
        s = spectrum(arch, dim, domain, kind, **options)
        head = {f.name: getattr(s, f.name) for f in fields(s)
                if f.name not in ("arch", "types", "options")}
        return [{"spectrum": head,
                 "types": [{f.name: getattr(t, f.name) for f in fields(t)} for t in s.types]}]

    rec = store.compute({"spectrum": key}, compute)[0]
    return Spectrum(arch=arch, types=tuple(EigenType(**t) for t in rec["types"]),
                    **rec["spectrum"])


def progress(items: Sequence, desc: str) -> Iterable:
    """``items`` with a tqdm progress bar on stderr (silenced by TQDM_DISABLE=1)."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


def savefig(fig: plt.Figure, path: Path, dpi: int = 130, tight: bool = True) -> None:
    """Write a PNG atomically (``tight``: crop to the drawn extent) and close the figure."""
    write_png(fig, path, dpi=dpi, tight=tight)


class Partial:
    """Rows saved as they are produced (``<name>.partial.csv``), so a rerun resumes.

    ``done(key)`` says whether a row with these key columns exists; ``add(row)`` appends
    and rewrites the file atomically.
    """

    def __init__(self, path: Path, keys: Sequence[str], size: str, fresh: bool = False):
        self.path, self.keys, self.size = Path(path), tuple(keys), size
        self.rows: list[dict] = []
        if self.path.exists() and not fresh:
            old = pd.read_csv(self.path)
            if "size" in old and (old["size"] == size).all() and set(self.keys) <= set(old):
                self.rows = old.to_dict("records")

    def _key(self, row: dict) -> tuple:
        return tuple(str(row[k]) for k in self.keys)

    def done(self, **key) -> dict | None:
        k = self._key(key)
        for r in self.rows:
            if self._key(r) == k:
                return r
        return None

    def add(self, row: dict) -> None:
        row = {"size": self.size, **row}
        self.rows.append(row)
        write_csv(pd.DataFrame(self.rows), self.path)

    def drop(self, **match) -> None:
        """Remove the rows whose columns equal ``match`` (superseded results)."""
        keep = [r for r in self.rows if any(str(r.get(k)) != str(v) for k, v in match.items())]
        if len(keep) != len(self.rows):
            self.rows = keep
            write_csv(pd.DataFrame(self.rows), self.path)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def style() -> None:
    plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 7.5,
                         "xtick.labelsize": 8, "ytick.labelsize": 8})


def stamp(fig: plt.Figure, size: str) -> None:
    """Mark non-full runs in the corner, so a quick figure is never mistaken for a full one."""
    if size != "full":
        fig.text(0.995, 0.005, f"[{size} run]", ha="right", va="bottom", fontsize=7,
                 color="0.4")


class Timer:
    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


def log(*a) -> None:
    print(*a, flush=True, file=sys.stdout)


ARCH_COLORS = {"MLP": "tab:blue", "S-CNN": "tab:orange", "D-CNN": "tab:green",
               "ConvNet-GAP": "tab:red"}
