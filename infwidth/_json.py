"""Canonical JSON: the one text of a configuration or key (sorted keys, exact floats).

It sits at the bottom of the stages so that both the tile store
(:mod:`infwidth.kernels.gram_store`) and the run store (:mod:`infwidth.io.runstore`) name
their contents the same way without the lower one importing the higher one.

Example:
    >>> canonical_json({"b": (1, 2.5), "a": float("inf")})
    '{"a":{"__float__":"inf"},"b":{"__tuple__":[1,2.5]}}'
    >>> loads(canonical_json({"t": (1, 2)}))
    {'t': (1, 2)}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["canonical_json", "encode", "loads"]


def encode(v: Any) -> Any:
    """JSON-ready value that :func:`_decode` turns back into ``v`` exactly."""
    if isinstance(v, dict):
        return {str(k): encode(x) for k, x in v.items()}
    if isinstance(v, tuple):
        return {"__tuple__": [encode(x) for x in v]}
    if isinstance(v, list):
        return [encode(x) for x in v]
    if isinstance(v, np.ndarray):
        return {"__array__": encode(v.tolist()), "dtype": str(v.dtype)}
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else {"__float__": repr(f)}
    if isinstance(v, Path):
        return str(v)
    if v is None or isinstance(v, (int, str)):
        return v
    raise TypeError(f"cannot store a value of type {type(v).__name__}: {v!r}")


def _decode(d: dict) -> Any:
    if "__tuple__" in d:
        return tuple(d["__tuple__"])
    if "__array__" in d:
        return np.asarray(d["__array__"], dtype=d["dtype"])
    if "__float__" in d:
        return float(d["__float__"])
    return d


def canonical_json(obj: Any) -> str:
    """The one text of a configuration or key: sorted keys, exact floats."""
    return json.dumps(encode(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def loads(text: str) -> Any:
    """The value :func:`canonical_json` wrote (tuples, arrays and non-finite floats back)."""
    return json.loads(text, object_hook=_decode)
