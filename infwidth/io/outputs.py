"""Result files written atomically: a temporary file in the target folder, then ``os.replace``.

A long run that is interrupted leaves either the previous file or the new one, never half of
one, so a rerun can resume from what it finds. Used by the benchmarks, the paper figures and
:meth:`infwidth.Spectrum.plot`.

Example:
    >>> import pandas as pd, tempfile, pathlib
    >>> from infwidth.io.outputs import write_csv
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> _ = write_csv(pd.DataFrame({"a": [1, 2]}), p)
    >>> p.read_text().splitlines()
    ['a', '1', '2']
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["atomic_write", "write_text", "write_csv", "write_json", "write_npz", "write_png"]

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a fresh temporary file beside ``path`` (same suffix), then move
    it onto ``path``. If ``write`` raises, the temporary file is removed and ``path`` is left
    as it was. Missing parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600 files; give the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_text(text: str, path: str | os.PathLike) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_csv(df, path: str | os.PathLike) -> Path:
    """A pandas DataFrame as CSV without the index."""
    return atomic_write(path, lambda p: df.to_csv(p, index=False))


def _jsonable(o: Any):
    if isinstance(o, np.bool_):
        return bool(o)
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    try:
        return float(o)
    except (TypeError, ValueError):
        raise TypeError(f"{type(o).__name__} is not JSON serialisable") from None


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """JSON with indent 2; numpy scalars and arrays and paths are converted."""
    return write_text(json.dumps(obj, indent=2, default=_jsonable), path)


def write_npz(path: str | os.PathLike, **arrays) -> Path:
    if Path(path).suffix != ".npz":
        raise ValueError(f"an npz path must end in .npz, got {str(path)!r}")
    return atomic_write(path, lambda p: np.savez(p, **arrays))


def write_png(fig, path: str | os.PathLike, dpi: int = 130, tight: bool = True,
              close: bool = True) -> Path:
    """A matplotlib figure as PNG (``tight``: cropped to what is drawn); closed afterwards
    unless ``close=False``."""
    out = atomic_write(path, lambda p: fig.savefig(
        p, dpi=dpi, bbox_inches="tight" if tight else None, format="png"))
    if close:
        import matplotlib.pyplot as plt
        plt.close(fig)
    return out
