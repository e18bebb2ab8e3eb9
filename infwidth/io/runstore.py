"""One run store for every long run: units of work committed whole, in one SQLite file.

A *run* is named by its full configuration (a JSON-like mapping: sizes, seeds, options); a
*unit* of work (one solve, one training run, one spectrum, one figure panel) by a key
mapping inside the run. :meth:`RunStore.put` writes all the rows of a unit in one SQLite
transaction, so a process killed at any point leaves each unit either complete or absent,
and a rerun with the same configuration computes only the missing units.

Values round-trip exactly: floats through their shortest repr (so a resumed run ends with
the same bits as an uninterrupted one), NaN and ±inf included; tuples, numpy scalars and
small arrays keep their type. A file that cannot be read as a store raises
:class:`RunStoreError` naming the file and how to start fresh; it is never half-read.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "runs.sqlite"
    >>> store = RunStore(path, {"experiment": "demo", "seeds": 2})
    >>> store.get({"seed": 0}) is None
    True
    >>> store.put({"seed": 0}, [{"m": 4, "mse": 0.25}, {"m": 8, "mse": 0.125}])
    >>> store.get({"seed": 0})
    [{'m': 4, 'mse': 0.25}, {'m': 8, 'mse': 0.125}]
    >>> RunStore(path, {"experiment": "demo", "seeds": 2}).frame()
       seed  m    mse
    0     0  4  0.250
    1     0  8  0.125
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import pandas as pd

from infwidth._json import canonical_json, encode
from infwidth._json import loads as _loads

__all__ = ["RunStore", "RunStoreError", "canonical_json"]

_FORMAT = "infwidth-runstore-1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (run TEXT PRIMARY KEY, config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run TEXT NOT NULL,
    unit TEXT NOT NULL,
    rows TEXT NOT NULL,
    UNIQUE (run, unit)
);
"""


_COMMITS = 0


def _fault_injection() -> None:
    """Tests of resumption set ``INFWIDTH_KILL_AFTER_UNITS=k``: the process then kills
    itself with SIGKILL right after its k-th committed unit, as a crash would."""
    global _COMMITS
    _COMMITS += 1
    k = os.environ.get("INFWIDTH_KILL_AFTER_UNITS")
    if k and _COMMITS >= int(k):
        os.kill(os.getpid(), signal.SIGKILL)


class RunStoreError(RuntimeError):
    """A run-store file that cannot be read or does not belong to this run."""


class RunStore:
    """Units of work of one run, stored in the SQLite file ``path``.

    ``config`` names the run: units saved under another configuration are never returned
    (they stay in the file for their own run). ``fresh=True`` forgets this run's units (and
    replaces a file that cannot be read).
    """

    def __init__(self, path: str | os.PathLike, config: Mapping[str, Any], *,
                 fresh: bool = False):
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a file path, got {path!r}")
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a mapping, got {type(config).__name__}")
        self.path = Path(path)
        self.config = dict(config)
        self.config_json = canonical_json(self.config)
        self.run = hashlib.sha256(self.config_json.encode()).hexdigest()[:16]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and self.path.exists() and not self._readable():
            self.path.unlink()
        self._con = self._open()
        if fresh:
            with self._tx() as con:
                con.execute("DELETE FROM units WHERE run = ?", (self.run,))

    # ------------------------------------------------------------------ file handling
    def _error(self, e: Exception) -> RunStoreError:
        return RunStoreError(f"{self.path} is not a readable infwidth run store ({e}). "
                             f"Delete it, or rerun with --fresh to start over.")

    def _readable(self) -> bool:
        try:
            con = sqlite3.connect(self.path)
            try:
                ok = con.execute("PRAGMA quick_check").fetchone()[0] == "ok"
                fmt = con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
                return ok and fmt is not None and fmt[0] == _FORMAT
            finally:
                con.close()
        except sqlite3.Error:
            return False

    def _open(self) -> sqlite3.Connection:
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            con = sqlite3.connect(self.path, isolation_level=None)
            if existed:
                check = con.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise sqlite3.DatabaseError(f"integrity check: {check}")
                fmt = con.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
                if fmt is None or fmt[0] != _FORMAT:
                    raise sqlite3.DatabaseError(f"format {fmt and fmt[0]!r}, "
                                                f"expected {_FORMAT!r}")
            con.executescript(_SCHEMA)
            con.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (_FORMAT,))
            con.execute("INSERT OR IGNORE INTO runs VALUES (?, ?)",
                        (self.run, self.config_json))
        except sqlite3.Error as e:
            raise self._error(e) from None
        return con

    class _Tx:
        def __init__(self, con: sqlite3.Connection, store: "RunStore"):
            self.con, self.store = con, store

        def __enter__(self) -> sqlite3.Connection:
            self.con.execute("BEGIN IMMEDIATE")
            return self.con

        def __exit__(self, typ, exc, tb) -> None:
            self.con.execute("COMMIT" if typ is None else "ROLLBACK")

    def _tx(self) -> "RunStore._Tx":
        return RunStore._Tx(self._con, self)

    def _query(self, sql: str, args: tuple = ()) -> list[tuple]:
        try:
            return self._con.execute(sql, args).fetchall()
        except sqlite3.Error as e:
            raise self._error(e) from None

    # ------------------------------------------------------------------ units
    def get(self, unit: Mapping[str, Any]) -> list[dict] | None:
        """The rows stored for ``unit``, or None when the unit has not been committed."""
        r = self._query("SELECT rows FROM units WHERE run = ? AND unit = ?",
                        (self.run, canonical_json(dict(unit))))
        return _loads(r[0][0]) if r else None

    def __contains__(self, unit: Mapping[str, Any]) -> bool:
        return self.get(unit) is not None

    def put(self, unit: Mapping[str, Any], rows: Iterable[Mapping[str, Any]] | pd.DataFrame
            ) -> None:
        """Commit all of ``rows`` as the unit ``unit``, in one transaction (replacing it)."""
        if isinstance(rows, pd.DataFrame):
            rows = rows.to_dict("records")
        # rows keep their column order (keys and configurations are sorted, rows are not)
        text = json.dumps(encode([dict(r) for r in rows]), separators=(",", ":"),
                          allow_nan=False)
        try:
            with self._tx() as con:
                con.execute("INSERT OR REPLACE INTO units (run, unit, rows) VALUES (?, ?, ?)",
                            (self.run, canonical_json(dict(unit)), text))
        except sqlite3.Error as e:
            raise self._error(e) from None
        _fault_injection()

    def compute(self, unit: Mapping[str, Any],
                fn: Callable[[], Iterable[Mapping[str, Any]] | pd.DataFrame]) -> list[dict]:
        """The unit's rows: from the store if committed, else ``fn()``, committed first."""
        rows = self.get(unit)
        if rows is None:
            self.put(unit, fn())
            rows = self.get(unit)
        return rows

    def units(self) -> list[dict]:
        """The keys of this run's committed units, in commit order."""
        return [_loads(u) for (u,) in self._query(
            "SELECT unit FROM units WHERE run = ? ORDER BY seq", (self.run,))]

    def frame(self, units: Iterable[Mapping[str, Any]] | None = None, *,
              key_columns: bool = True) -> pd.DataFrame:
        """The rows of ``units`` in that order (default: every unit of this run, in commit
        order), with each unit's key columns first (``key_columns=False`` leaves them out).
        A unit in ``units`` that has not been committed raises KeyError."""
        if units is None:
            pairs = [(_loads(u), _loads(r)) for u, r in self._query(
                "SELECT unit, rows FROM units WHERE run = ? ORDER BY seq", (self.run,))]
        else:
            pairs = []
            for u in units:
                rows = self.get(u)
                if rows is None:
                    raise KeyError(f"unit {dict(u)} has not been committed to {self.path}")
                pairs.append((dict(u), rows))
        out = [{**(key if key_columns else {}), **r} for key, rows in pairs for r in rows]
        return pd.DataFrame(out)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
