"""Helpers of the command-line scripts (paper figures, benchmarks) beside the harness.

The plumbing (arguments, run store, progress, atomic outputs, the closing line) is
:mod:`infwidth.io.harness`; this module holds what several scripts compute or draw with:
units of work (:func:`unit`, :func:`stored_spectrum`), nested sample sizes
(:func:`doubling_grid`), memory probes (:func:`rss_kib`), optional data
(:func:`optional_data`, :func:`missing_panel`) and the figures' style (:func:`style`,
:func:`stamp`, :func:`savefig`). Importing it sets no matplotlib backend and does not import
pyplot: ``scripts.plt`` is :mod:`matplotlib.pyplot`, imported on first use (headless, pyplot
picks a non-interactive backend by itself; ``MPLBACKEND`` chooses another).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import pandas as pd

from infwidth.io.harness import Option, Script, open_run_store  # noqa: F401 (re-exported)
from infwidth.io.outputs import write_csv, write_json, write_png  # noqa: F401 (re-exported)
from infwidth.io.runstore import RunStore

__all__ = ["Option", "Script", "DEFAULT_OUT", "SIZES", "FIGURE_STORE", "ARCH_COLORS",
           "figure_script",
           "open_run_store", "unit", "stored_spectrum", "doubling_grid", "progress", "rss_kib",
           "reset_peak_rss", "savefig", "MissingData", "OPTIONAL_MODULES", "optional_data",
           "missing_panel", "style", "stamp", "Timer", "log", "parse_args", "open_store",
           "write_csv", "write_json", "write_png"]

DEFAULT_OUT = Path("results") / "paper_figures"  # relative to the working directory
"""The paper figures' output folder (relative to the working directory)."""
SIZES = ("tiny", "quick", "full")
"""The run sizes, smallest first."""
FIGURE_STORE = "{name}.runs.sqlite"
"""A paper figure's run store, inside the shared output folder."""
T = TypeVar("T")


def __getattr__(name: str) -> Any:
    if name == "plt":  # pyplot on first use, not on import
        import matplotlib.pyplot as plt

        return plt
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def figure_script(name: str, doc: str, **kwargs: Any) -> Script:
    """The :class:`~infwidth.io.harness.Script` of a paper figure: ``--quick`` / ``--tiny`` /
    ``--out`` (default :data:`DEFAULT_OUT`, shared by the figures) / ``--fresh``, the run
    store ``<out>/<name>.runs.sqlite``.

    Args:
        name: the figure's name (``fig1_topologies``): its files are ``<out>/<name>.*``.
        doc: the script's docstring.
        **kwargs: further :class:`~infwidth.io.harness.Script` fields (``options``).

    Returns:
        The script's declaration.
    """
    sizes = {"quick": "smaller sizes (make_all --quick)", "tiny": "smoke-test sizes (seconds)"}
    return Script(name, doc, out=DEFAULT_OUT, sizes=sizes, store=FIGURE_STORE, **kwargs)


def parse_args(argv: Sequence[str] | None, doc: str,
               extra: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> argparse.Namespace:
    """Compatibility: the arguments of a figure script written before the harness
    (``--quick`` / ``--tiny`` / ``--out DIR`` / ``--fresh``, plus what ``extra`` adds).
    New scripts declare a :func:`figure_script` instead."""
    s = figure_script("figure", doc)
    p = s.parser()
    if extra is not None:
        extra(p)
    args = p.parse_args(list(argv) if argv is not None else None)
    args.size = "tiny" if args.tiny else "quick" if args.quick else "full"
    args.out.mkdir(parents=True, exist_ok=True)
    return args


def open_store(args: argparse.Namespace, name: str, **config) -> RunStore:
    """Compatibility: a figure's run store ``<out>/<name>.runs.sqlite``, keyed by the run
    size and ``config`` (what :meth:`infwidth.io.harness.Run.store` gives a
    :func:`figure_script` called with ``size=run.size``)."""
    return open_run_store(Path(args.out) / FIGURE_STORE.format(name=name), name,
                          {"size": args.size, **config}, args.fresh)


def unit(store: RunStore, key: dict, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """One unit of work: its rows from ``store`` when committed, else ``compute()``
    committed whole first. Both paths read the rows back from the store, so a resumed run
    and an uninterrupted one end with the same bits.

    Args:
        store: the run store.
        key: the unit's key inside the run (e.g. ``{"arch": "MLP", "seed": 0}``).
        compute: makes the unit's rows (a DataFrame or a list of dicts).

    Returns:
        The unit's rows, as stored.
    """
    return pd.DataFrame(store.compute(key, compute))


def stored_spectrum(store: RunStore, key: dict, arch: Any, dim: int, domain: str, kind: str,
                    **options: Any) -> Any:
    """``iw.spectrum(arch, dim, domain, kind, **options)`` as one unit of work: the type
    table is committed whole, and a rerun rebuilds the same :class:`Spectrum` from it.

    Args:
        store: the run store.
        key: the unit's key (stored under ``{"spectrum": key}``).
        arch: the architecture.
        dim: the input dimension.
        domain: "hypercube" or "sphere".
        kind: "ntk" or "nngp".
        **options: further arguments of ``iw.spectrum`` (``max_degree``, …).

    Returns:
        The :class:`~infwidth.eigenspaces.Spectrum`.
    """
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


def doubling_grid(n_max: int, start: int = 25) -> list[int]:
    """Nested sample sizes start, 2·start, 4·start, … below n_max, then n_max itself.

    Args:
        n_max: the largest size (included).
        start: the smallest size.

    Returns:
        The sizes, increasing (empty when ``n_max`` ≤ 0).

    Example:
        >>> doubling_grid(120)
        [25, 50, 100, 120]
    """
    out, n = [], start
    while n < n_max:
        out.append(n)
        n *= 2
    return out + [n_max] if n_max > 0 else []


def progress(items: Sequence, desc: str) -> Iterable:
    """``items`` with a tqdm progress bar on stderr (silenced by TQDM_DISABLE=1).

    Args:
        items: what to iterate over.
        desc: the bar's label.

    Returns:
        An iterator over ``items``.
    """
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc)


def rss_kib(field: str = "VmHWM") -> int:
    """This process's memory from /proc/self/status in KiB (VmHWM: the peak since the last
    :func:`reset_peak_rss`; VmRSS: now), or -1 where /proc is not there.

    Args:
        field: "VmHWM" (peak) or "VmRSS" (now).

    Returns:
        KiB, or -1.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def reset_peak_rss() -> None:
    """Reset VmHWM to the current RSS (Linux; a no-op elsewhere)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def savefig(fig, path: Path, dpi: int = 130, tight: bool = True) -> None:
    """Write a PNG atomically (``tight``: crop to the drawn extent) and close the figure."""
    write_png(fig, path, dpi=dpi, tight=tight)


class MissingData(RuntimeError):
    """An optional data set (or the package that makes it) is not installed: ``str(e)`` says
    what is missing and how to install it, ``e.detail`` the loader's own message."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


# the optional modules that load or make a data set, and how to install them
OPTIONAL_MODULES = {"sklearn": 'pip install -e ".[data]" (scikit-learn)',
                    "mnist1d": 'pip install -e ".[data]" (mnist1d)'}


def optional_data(what: str, load: Callable[[], T], install: str | None = None) -> T:
    """``load()``, or :class:`MissingData` naming ``what`` and how to install it when the
    data set's files are missing (FileNotFoundError; ``install`` says how to get them, e.g.
    ``apt-get install dataset-fashion-mnist``) or its optional package is (scikit-learn,
    mnist1d: the ``[data]`` extra). Any other error propagates: only missing optional data
    is a reason to draw the rest.

    Args:
        what: the data set's name, for the message.
        load: loads it.
        install: how to install its files (for a FileNotFoundError).

    Returns:
        What ``load()`` returns.

    Raises:
        MissingData: the data set or its optional package is not installed.
    """
    try:
        return load()
    except ModuleNotFoundError as e:
        root = (e.name or "").split(".")[0]
        if root not in OPTIONAL_MODULES:
            raise
        raise MissingData(f"{what} needs the Python package {root!r}, which is not "
                          f"installed; install it with {OPTIONAL_MODULES[root]}",
                          str(e)) from None
    except FileNotFoundError as e:
        how = f"; install it with {install}" if install else f" ({e})"
        raise MissingData(f"{what} is not installed{how}", str(e)) from None


def missing_panel(ax, title: str, message: str) -> None:
    """Draw, in place of a panel, what is missing and how to install it."""
    import textwrap

    ax.set_axis_off()
    ax.set_title(title, fontsize=9)
    ax.text(0.5, 0.5, "\n".join(textwrap.wrap(message, 48)), ha="center", va="center",
            transform=ax.transAxes, fontsize=8, color="tab:red",
            bbox=dict(boxstyle="round", fc="w", ec="tab:red"))


def style() -> None:
    """The figures' matplotlib style (grid, font sizes)."""
    plt = __getattr__("plt")
    plt.rcParams.update({"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3,
                         "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 7.5,
                         "xtick.labelsize": 8, "ytick.labelsize": 8})


def stamp(fig, size: str) -> None:
    """Mark non-full runs in the corner, so a quick figure is never mistaken for a full one."""
    if size != "full":
        fig.text(0.995, 0.005, f"[{size} run]", ha="right", va="bottom", fontsize=7,
                 color="0.4")


class Timer:
    """Wall seconds since construction: ``t = Timer(); ...; t()``."""

    def __init__(self):
        self.t0 = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


def log(*a) -> None:
    """Print to stdout at once (flushed: the line is there when the run is killed)."""
    print(*a, flush=True, file=sys.stdout)


ARCH_COLORS = {  # the figures' colour of each architecture
    "MLP": "tab:blue", "S-CNN": "tab:orange", "D-CNN": "tab:green", "ConvNet-GAP": "tab:red"}
