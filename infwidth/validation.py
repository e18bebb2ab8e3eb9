"""Argument checks shared by every public entry point.

Each check names the argument and the expected value in its message: ``TypeError`` for a
value of the wrong type (bools are not integers here), ``ValueError`` for a value of the
right type outside its range.

Example:
    >>> check_pos_int("width", 64)
    64
    >>> check_pos_int("width", 0)
    Traceback (most recent call last):
    ...
    ValueError: width must be a positive integer, got 0
"""

from __future__ import annotations

import math
import re
import sys
from typing import Any, Sequence

import numpy as np

__all__ = ["check_int", "check_pos_int", "check_opt_pos_int", "check_pos_ints", "check_nonneg",
           "check_number", "check_finite", "check_seed", "check_choice", "check_sample_sizes",
           "parse_bytes", "check_kinds", "check_kind", "check_dtype", "check_architecture",
           "check_progress", "check_memory", "format_bytes", "check_label", "check_bool",
           "show_progress", "KINDS", "DTYPES", "DEFAULT_MEMORY_BUDGET"]

KINDS = ("nngp", "ntk")
"""The infinite-width kernels: NNGP Σ and NTK Θ (the order in which they are computed)."""
DTYPES = ("float64", "float32")
"""The floating-point precisions a computation may run in."""
DEFAULT_MEMORY_BUDGET = 4 * 2**30
"""Bytes a call may allocate unless its ``memory_budget`` says otherwise (4 GiB)."""


def check_int(name: str, v: Any, lo: int, hi: int | None = None) -> int:
    """An integer ≥ ``lo`` (and ≤ ``hi`` when given; numpy integers accepted, bools refused).

    Example:
        >>> check_int("n_train", 3, 1, 10)
        3
        >>> check_int("n_train", 11, 1, 10)
        Traceback (most recent call last):
        ...
        ValueError: n_train must be an integer in [1, 10], got 11
    """
    want = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer {want}, got {v!r}")
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be an integer {want}, got {v!r}")
    return int(v)


def check_pos_int(name: str, v: Any) -> int:
    """An integer ≥ 1."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer, got {v!r}")
    if v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {v!r}")
    return int(v)


def check_opt_pos_int(name: str, v: Any) -> int | None:
    """None or an integer ≥ 1 (None: chosen by the callee).

    Example:
        >>> check_opt_pos_int("tile", None) is None
        True
    """
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer or None, got {v!r}")
    if v <= 0:
        raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
    return int(v)


def check_pos_ints(name: str, v: Any) -> tuple[int, ...]:
    """A positive integer, or a non-empty tuple or list of them; returned as a tuple.

    Example:
        >>> check_pos_ints("filter", 3), check_pos_ints("filter", [3, 2])
        ((3,), (3, 2))
    """
    items = (v,) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v
    if not isinstance(items, (tuple, list)) or not items or any(
            isinstance(k, bool) or not isinstance(k, (int, np.integer)) for k in items):
        raise TypeError(f"{name} must be a positive integer or a tuple of them, got {v!r}")
    if any(k <= 0 for k in items):
        raise ValueError(f"{name} must be a positive integer or a tuple of them, got {v!r}")
    return tuple(int(k) for k in items)


def check_seed(name: str, v: Any) -> int:
    """A seed: an integer ≥ 0 (what numpy's and JAX's generators accept)."""
    return check_int(name, v, 0)


def check_nonneg(name: str, v: Any) -> float:
    """A finite real number ≥ 0."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a non-negative finite number, got {v!r}")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a non-negative finite number, got {v!r}")
    return float(v)


def check_number(name: str, v: Any, *, lo: float = -math.inf, hi: float = math.inf,
                 lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number in the interval from ``lo`` to ``hi`` (ends open if asked).

    Example:
        >>> check_number("momentum", 0.9, lo=0.0, hi=1.0, hi_open=True)
        0.9
    """
    interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number in {interval}, got {v!r}")
    f = float(v)
    if not (math.isfinite(f) and (lo < f if lo_open else lo <= f)
            and (f < hi if hi_open else f <= hi)):
        raise ValueError(f"{name} must be a finite number in {interval}, got {v!r}")
    return f


def check_finite(name: str, a: Any) -> None:
    """Every entry of the array is finite."""
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_choice(name: str, v: Any, choices: Sequence[Any]) -> Any:
    """One of ``choices``."""
    if v not in tuple(choices):
        raise ValueError(f"{name} must be one of {list(choices)}, got {v!r}")
    return v


def check_kind(kind: Any, name: str = "kind") -> str:
    """One name from :data:`KINDS`."""
    return check_choice(name, kind, KINDS)


def check_kinds(kind: Any, name: str = "kind") -> tuple[str, ...]:
    """One name from :data:`KINDS`, or a non-empty tuple or list of distinct ones (a repeat
    is refused, not dropped); returned as a tuple.

    Example:
        >>> check_kinds("ntk"), check_kinds(["nngp", "ntk"])
        (('ntk',), ('nngp', 'ntk'))
        >>> check_kinds(("ntk", "ntk"), "kinds")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: kinds must be one of ('nngp', 'ntk') or a tuple of distinct ones, got (...)
    """
    kinds = (kind,) if isinstance(kind, str) else kind
    if not isinstance(kinds, (tuple, list)):
        raise TypeError(f"{name} must be one of {KINDS} or a tuple of distinct ones, "
                        f"got {kind!r}")
    if not kinds or len(set(map(repr, kinds))) != len(kinds) \
            or any(not isinstance(k, str) or k not in KINDS for k in kinds):
        raise ValueError(f"{name} must be one of {KINDS} or a tuple of distinct ones, "
                         f"got {kind!r}")
    return tuple(kinds)


def check_dtype(dtype: Any, name: str = "dtype") -> str:
    """One name from :data:`DTYPES` ("float64" or "float32")."""
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise ValueError(f"{name} must be {' or '.join(map(repr, DTYPES))}, got {dtype!r}")
    return dtype


def check_bool(flag: Any, name: str) -> bool:
    """True or False (numpy's bool accepted)."""
    if not isinstance(flag, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {flag!r}")
    return bool(flag)


def check_progress(progress: Any, name: str = "progress") -> bool | None:
    """True, False or None (None: the callee decides, e.g. a bar for long runs only)."""
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"{name} must be True, False or None, got {progress!r}")
    return None if progress is None else bool(progress)


def check_label(v: Any, name: str = "architecture") -> str | None:
    """None or a string naming something in a table (e.g. a learning curve's architecture)."""
    if v is not None and not isinstance(v, str):
        raise TypeError(f"{name} must be a label (str) or None, got {v!r}")
    return v


def show_progress(progress: bool | None, work: float, threshold: float = 4) -> bool:
    """Whether to draw a progress bar: ``progress`` when given, else whether ``work`` (tiles,
    runs, ...) exceeds ``threshold``: the one rule for ``progress=None``."""
    return work > threshold if progress is None else bool(progress)


def check_architecture(arch: Any, name: str = "arch") -> Any:
    """An infwidth architecture (an instance of
    :class:`infwidth.architectures.networks.Architecture`).

    The class is looked up among the loaded modules, never imported: this module sits below
    the architectures, and an instance of the class means its module is loaded.
    """
    module = sys.modules.get("infwidth.architectures.networks")
    if module is None or not isinstance(arch, module.Architecture):
        raise TypeError(f"{name} must be an infwidth architecture (an Architecture such "
                        f"as MLP, SCNN, DCNN, ConvNet or Myrtle), got {type(arch).__name__}")
    return arch


def check_sample_sizes(sample_sizes: Any, name: str = "sample_sizes") -> np.ndarray:
    """Sorted unique positive integers (one integer is taken as a list of one)."""
    if isinstance(sample_sizes, (int, np.integer)) and not isinstance(sample_sizes, bool):
        sample_sizes = [sample_sizes]
    try:
        arr = np.asarray(sample_sizes)
    except Exception as e:  # pragma: no cover
        raise TypeError(f"{name} must be a sequence of positive integers: {e}") from e
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of positive integers, "
                         f"got {sample_sizes!r}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
                and np.all(arr == np.round(arr))):
            raise ValueError(f"{name} must be positive integers, got {sample_sizes!r}")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be positive integers, got {sample_sizes!r}")
    return np.unique(arr.astype(np.int64))


def parse_bytes(value: Any, name: str = "memory_budget") -> int:
    """Bytes from an int or a string such as "512MB", "4GiB", "2.5GB"."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of bytes or a string like '4GB', got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        b = float(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?)[bB]?\s*", value)
        if not m:
            raise ValueError(f"{name} must look like '512MB' or '4GB', got {value!r}")
        power = " KMGT".index(m.group(2).upper() or " ")
        b = float(m.group(1)) * (1024 if m.group(3) else 1000) ** power
    else:
        raise TypeError(f"{name} must be a number of bytes or a string like '4GB', got {value!r}")
    if not math.isfinite(b) or b <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return int(b)


def format_bytes(b: float) -> str:
    """A byte count for a message, to 3 significant digits: "512 MiB", "72.8 TiB".

    Example:
        >>> format_bytes(8 * 10**13), format_bytes(4 * 2**30), format_bytes(100)
        ('72.8 TiB', '4 GiB', '100 B')
    """
    for unit, k in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if b >= 2 ** k:
            return f"{b / 2 ** k:.3g} {unit}"
    return f"{int(b)} B"


def check_memory(need: float, memory_budget: Any, what: str) -> int:
    """Refuse, before allocating, work whose estimated peak ``need`` (bytes) exceeds
    ``memory_budget`` (bytes or a string such as "4GB"; see :func:`parse_bytes`); ``what``
    names the arguments that set the size. Returns the budget in bytes.

    Example:
        >>> check_memory(8 * 10**13, "4GiB", "n=1000000, dim=10000000")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: n=1000000, dim=10000000 needs about 72.8 TiB, over memory_budget=4 GiB; ...
    """
    budget = parse_bytes(memory_budget)
    if need > budget:
        raise ValueError(f"{what} needs about {format_bytes(need)}, over memory_budget="
                         f"{format_bytes(budget)}; use smaller values or raise memory_budget")
    return budget
