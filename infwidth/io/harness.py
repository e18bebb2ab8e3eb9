"""One harness for every command-line script (paper figures, benchmarks, the main job).

A script declares *what* it accepts in a :class:`Script` (its name, its docstring, the run
sizes it offers, its own options, where it writes and where it keeps its run store) and
writes its science as a function of one :class:`Run`. The harness does the rest, the same
way for every script:

- the command line: ``--out DIR``, the size flags (``--quick``, ``--tiny``: mutually
  exclusive; neither is the full run), ``--fresh`` (forget stored units), plus the options the
  script declares with :class:`Option`;
- the run store: :meth:`Run.store` opens ``<out>/<store>``, keyed by the script's name and the
  configuration it is given (every option that changes the numbers), and ends the script with
  a one-line error naming the file and ``--fresh`` when the file is unreadable;
- progress bars on stderr (:meth:`Run.progress`; ``TQDM_DISABLE=1`` silences them);
- atomic outputs (:meth:`Run.write_csv`, :meth:`Run.write_json`, :meth:`Run.write_png`, …:
  a killed run leaves the previous file or the new one, never half of one);
- the closing summary line: files written, units computed now and resumed, wall time.

Kill-and-resume comes from the store: a unit of work is committed whole
(:meth:`infwidth.io.runstore.RunStore.compute`), so a rerun with the same configuration
computes only the units a killed run had not committed, and ends with the same bits.

Example:
    A complete script is its science plus a few lines of harness:

    >>> import tempfile
    >>> import pandas as pd
    >>> from infwidth.io.harness import Option, Script
    >>> SCRIPT = Script("squares", "Squares of 0..n-1.", out="results/squares",
    ...                 options=(Option("--n", type=int, default=4, help="how many"),))
    >>> @SCRIPT.main
    ... def main(run):
    ...     store = run.store(n=run.args.n)
    ...     rows = [store.compute({"i": i}, lambda i=i: [{"i": i, "square": i * i}])[0]
    ...             for i in run.progress(range(run.args.n), desc="squares")]
    ...     run.write_csv(pd.DataFrame(rows), "squares.csv")
    ...     return {"size": run.size, "total": sum(r["square"] for r in rows)}
    >>> out = tempfile.mkdtemp()
    >>> main(["--n", "3", "--out", out])  # doctest: +ELLIPSIS
    squares [full]: 1 file written to ... (3 units computed now, 0 resumed from runs.sqlite; ... s)
    {'size': 'full', 'total': 5}
    >>> main(["--n", "3", "--out", out])["total"]  # doctest: +ELLIPSIS
    squares [full]: 1 file written to ... (0 units computed now, 3 resumed from runs.sqlite; ... s)
    5
"""

from __future__ import annotations

import argparse
import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from infwidth.io import outputs
from infwidth.io.runstore import RunStore, RunStoreError

__all__ = ["Option", "Script", "Run", "open_run_store", "SIZE_HELP"]

SIZE_HELP = {"quick": "smaller sizes (minutes)", "tiny": "smoke-test sizes (seconds)"}
"""The default help of the size flags a :class:`Script` offers."""


@dataclass(frozen=True)
class Option:
    """One command-line option of a script: the arguments of
    :meth:`argparse.ArgumentParser.add_argument`.

    Args:
        *flags: the option's flags, e.g. ``"--seed"``.
        group: ``"size"`` puts the option in the mutually exclusive group of the size flags
            (e.g. the main job's ``--config``, which is an alternative to ``--quick``).
        **kwargs: passed to ``add_argument`` (``type``, ``default``, ``help``, …).

    Example:
        >>> Option("--seed", type=int, default=0, help="PRNG seed").flags
        ('--seed',)
    """

    flags: tuple[str, ...]
    kwargs: Mapping[str, Any]
    group: str | None

    def __init__(self, *flags: str, group: str | None = None, **kwargs: Any):
        if not flags or not all(isinstance(f, str) and f.startswith("-") for f in flags):
            raise ValueError(f"flags must be option strings such as '--seed', got {flags!r}")
        if group not in (None, "size"):
            raise ValueError(f"group must be None or 'size', got {group!r}")
        object.__setattr__(self, "flags", tuple(flags))
        object.__setattr__(self, "kwargs", dict(kwargs))
        object.__setattr__(self, "group", group)


def open_run_store(path: str | os.PathLike, name: str, config: Mapping[str, Any],
                   fresh: bool) -> RunStore:
    """The run store at ``path`` for script ``name``, keyed by ``config``.

    Args:
        path: the SQLite file.
        name: the script's name (part of the run's key: two scripts never share units).
        config: every option that changes the numbers.
        fresh: forget this run's stored units.

    Returns:
        The open :class:`~infwidth.io.runstore.RunStore`, keyed by
        ``{"script": name, **config}``. An unreadable file ends the process with a one-line
        message (exit status 1) that names the file and ``--fresh``.
    """
    try:
        return RunStore(path, {"script": name, **config}, fresh=fresh)
    except RunStoreError as e:
        raise SystemExit(f"error: {e}") from None


@dataclass(frozen=True)
class Script:
    """The declaration of a command-line script.

    Args:
        name: the script's name (the run store's key, the summary line, the progress bars).
        doc: the script's docstring: its first line is the ``--help`` description, the rest
            its epilog.
        out: the default output folder (relative paths: to the working directory); ``None``:
            the script chooses it (:attr:`Run.out` is then set by the script).
        sizes: the size flags offered, each with its help (``("quick", "tiny")`` takes the
            default help); neither flag given is the full run.
        options: the script's own :class:`Option` s.
        store: the run store's file name inside the output folder (``"{name}"`` is replaced
            by the script's name); ``None``: no run store.
        fresh: offer ``--fresh`` (default: when there is a run store).

    Example:
        >>> s = Script("demo", "A demo.", sizes=("tiny",), store=None)
        >>> a = s.parse(["--tiny", "--out", "/tmp/demo"])
        >>> a.size, a.out
        ('tiny', PosixPath('/tmp/demo'))
    """

    name: str
    doc: str
    out: str | os.PathLike | None = None
    sizes: Mapping[str, str] | Sequence[str] = ("quick", "tiny")
    options: Sequence[Option] = ()
    store: str | None = "runs.sqlite"
    fresh: bool | None = None
    _sizes: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        sizes = (dict(self.sizes) if isinstance(self.sizes, Mapping)
                 else {s: SIZE_HELP.get(s, "") for s in self.sizes})
        bad = set(sizes) - set(SIZE_HELP)
        if bad:
            raise ValueError(f"sizes must be among {tuple(SIZE_HELP)}, got {sorted(bad)}")
        object.__setattr__(self, "_sizes", sizes)
        if self.fresh is None:
            object.__setattr__(self, "fresh", self.store is not None)

    # ---------------------------------------------------------------- the command line
    def parser(self) -> argparse.ArgumentParser:
        """The script's argument parser."""
        doc = (self.doc or self.name).strip()
        p = argparse.ArgumentParser(description=doc.splitlines()[0],
                                    formatter_class=argparse.RawDescriptionHelpFormatter,
                                    epilog=doc)
        grouped = [o for o in self.options if o.group == "size"]
        if self._sizes or grouped:  # an empty group breaks argparse's usage line
            group = p.add_mutually_exclusive_group()
            for size, help_ in self._sizes.items():
                group.add_argument(f"--{size}", action="store_true", help=help_)
            for o in grouped:
                group.add_argument(*o.flags, **o.kwargs)
        if self.out is None:
            p.add_argument("--out", type=Path, default=None, help="output folder")
        else:
            p.add_argument("--out", type=Path, default=Path(self.out),
                           help=f"output folder (default {self.out})")
        if self.fresh:
            p.add_argument("--fresh", action="store_true",
                           help="forget the stored units of this run and start over")
        for o in self.options:
            if o.group is None:
                p.add_argument(*o.flags, **o.kwargs)
        return p

    def parse(self, argv: Sequence[str] | None = None) -> argparse.Namespace:
        """Parse ``argv`` (default: ``sys.argv[1:]``).

        Returns:
            The namespace, with ``size`` (``"tiny"``, ``"quick"`` or ``"full"``), ``out``
            (a :class:`~pathlib.Path`, or ``None`` where the script chooses it) and, when the
            script offers no ``--fresh``, ``fresh=False``.
        """
        args = self.parser().parse_args(list(argv) if argv is not None else None)
        args.size = next((s for s in ("tiny", "quick") if getattr(args, s, False)), "full")
        if not self.fresh:
            args.fresh = False
        return args

    def error(self, message: str):
        """End the script as a bad command line does: usage, ``message``, exit status 2."""
        self.parser().error(message)

    # ---------------------------------------------------------------- running
    def main(self, science: Callable[["Run"], Any]) -> Callable[..., Any]:
        """Decorate the script's science ``science(run)`` into ``main(argv=None)``.

        ``main`` parses ``argv``, creates the output folder, calls ``science`` with a
        :class:`Run`, closes the run store, prints the closing summary line and returns what
        ``science`` returned.
        """

        @functools.wraps(science)
        def main(argv: Sequence[str] | None = None):
            run = Run(self, self.parse(argv))
            try:
                result = science(run)
            finally:
                run.close()
            print(run.summary_line(), flush=True)
            return result

        main.script = self
        return main


class Run:
    """One run of a :class:`Script`: its parsed arguments, output folder and run store.

    Attributes:
        script: the :class:`Script`.
        args: the parsed command line (``args.size``, ``args.out``, ``args.fresh`` and the
            script's own options).
        size: ``"tiny"``, ``"quick"`` or ``"full"``.
    """

    def __init__(self, script: Script, args: argparse.Namespace):
        self.script, self.args, self.size = script, args, args.size
        self._t0 = time.perf_counter()
        self._wall0 = time.time()
        self._stores: list[tuple[RunStore, int]] = []
        self._written: set[Path] = set()
        self._out: Path | None = None
        if args.out is not None:
            self.out = args.out

    @property
    def out(self) -> Path:
        """The output folder (created when set)."""
        if self._out is None:
            raise RuntimeError(f"{self.script.name}: the output folder is not chosen yet")
        return self._out

    @out.setter
    def out(self, path: str | os.PathLike) -> None:
        self._out = Path(path)
        self._out.mkdir(parents=True, exist_ok=True)
        self.args.out = self._out

    @property
    def seconds(self) -> float:
        """Wall seconds since the run started."""
        return time.perf_counter() - self._t0

    def error(self, message: str):
        """End the script as a bad command line does (exit status 2)."""
        self.script.error(message)

    # ---------------------------------------------------------------- the run store
    def store(self, **config: Any) -> RunStore:
        """The script's run store, ``<out>/<Script.store>``, keyed by the script's name and
        ``config`` (every option that changes the numbers); ``--fresh`` forgets its units.

        Returns:
            The open :class:`~infwidth.io.runstore.RunStore` (closed when the run ends).
        """
        if self.script.store is None:
            raise RuntimeError(f"{self.script.name} declares no run store (Script.store)")
        path = self.out / self.script.store.format(name=self.script.name)
        s = open_run_store(path, self.script.name, config, self.args.fresh)
        self._stores.append((s, len(s.units())))
        return s

    def close(self) -> None:
        """Close the run stores (after counting the units committed now)."""
        self._counts = []
        for s, before in self._stores:
            try:
                self._counts.append((s.path.name, before, len(s.units())))
                s.close()
            except Exception:  # a closed or broken store does not hide the script's result
                pass

    # ---------------------------------------------------------------- progress, outputs
    def progress(self, items: Iterable | None = None, desc: str | None = None,
                 total: int | None = None):
        """``items`` with a progress bar on stderr (``TQDM_DISABLE=1`` silences it); without
        ``items``, a bar of ``total`` steps to ``update`` by hand (a context manager)."""
        from tqdm.auto import tqdm

        return tqdm(items, desc=desc or self.script.name, total=total)

    def path(self, name: str | os.PathLike) -> Path:
        """``<out>/name``, remembered as written by this run."""
        p = self.out / name
        self._written.add(p)
        return p

    def write_csv(self, df, name: str | os.PathLike) -> Path:
        """A DataFrame as ``<out>/name`` (CSV, no index), atomically."""
        return outputs.write_csv(df, self.path(name))

    def write_json(self, obj: Any, name: str | os.PathLike) -> Path:
        """``obj`` as ``<out>/name`` (JSON, numpy values converted), atomically."""
        return outputs.write_json(obj, self.path(name))

    def write_text(self, text: str, name: str | os.PathLike) -> Path:
        """``text`` as ``<out>/name``, atomically."""
        return outputs.write_text(text, self.path(name))

    def write_npz(self, name: str | os.PathLike, **arrays) -> Path:
        """Arrays as ``<out>/name`` (``.npz``), atomically."""
        return outputs.write_npz(self.path(name), **arrays)

    def write_png(self, fig, name: str | os.PathLike, dpi: int = 130, tight: bool = True,
                  close: bool = True) -> Path:
        """A matplotlib figure as ``<out>/name`` (PNG), atomically; closed afterwards unless
        ``close=False``."""
        return outputs.write_png(fig, self.path(name), dpi=dpi, tight=tight, close=close)

    def summary_line(self) -> str:
        """``name [size]: k files written to OUT (u units computed now, r resumed from
        STORE; t s)``: the files of the output folder written during this run."""
        files = 0
        if self._out is not None and self._out.is_dir():
            stores = {s.path.name for s, _ in self._stores}
            for p in self._out.iterdir():  # the outputs sit at the top of the folder
                try:
                    if (p.is_file() and not p.name.startswith(".") and p.name not in stores
                            and (p in self._written or p.stat().st_mtime >= self._wall0 - 1)):
                        files += 1
                except OSError:
                    pass
        where = self._out if self._out is not None else "nowhere"
        line = f"{self.script.name} [{self.size}]: {files} file{'s' * (files != 1)} written " \
               f"to {where}"
        counts = getattr(self, "_counts", [])
        if counts:
            now = sum(after - before for _, before, after in counts)
            resumed = sum(before for _, before, _ in counts)
            line += (f" ({now} units computed now, {resumed} resumed from "
                     f"{', '.join(sorted({n for n, _, _ in counts}))}; {self.seconds:.1f} s)")
        else:
            line += f" ({self.seconds:.1f} s)"
        return line
