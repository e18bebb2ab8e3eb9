"""An on-disk Gram store in Zarr (v3): tiles written whole, a record of what is done, lazy reads.

Layout of a store ``K.zarr`` (a Zarr v3 group on a local or shared file system)::

    zarr.json      attributes "infwidth_gram": format, architecture (class, repr, fields),
                   kinds, dtype, shape, tile, symmetric, the inputs' fingerprints
    <kind>/        one (n1, n2) array per kind, chunk = tile, uncompressed, fill NaN;
                   a symmetric Gram stores only the tiles on and above the diagonal
    done/          (tile rows, tile cols) uint8, one chunk (file) per tile: 1 = tile done
    seconds/       (tile rows, tile cols) float64, one chunk per tile: its compute seconds
    x1/, x2/       the inputs (float64), chunked by tile rows, so a worker reads its own rows

Whole or absent. Zarr's local store writes every chunk to a temporary file and renames it
into place, so a chunk is never half written. :meth:`GramStore.write_tile` writes the tile's
chunk of every kind first and its ``done`` chunk last: a process killed in between leaves the
tile "not done", and a rerun rewrites the same bits (tiles are pure), so recomputing is
idempotent. Each tile has its own ``done`` chunk, so workers marking different tiles never
touch the same file (no read-modify-write of shared attributes). The store directory itself
is created under a temporary name and renamed into place once its metadata is complete.
(A SIGKILL loses nothing written; a power cut can lose what the OS had not flushed.)

Identity. A store remembers what it was made for; :meth:`GramStore.open_for` refuses, with
a ``ValueError`` naming the difference, to reuse it for another architecture, kinds, dtype,
inputs (sha256 of their float64 bytes and shapes) or an explicitly requested tile size.

Reading. :class:`StoredGram` reads row blocks, mirroring the lower triangle of a symmetric
Gram from the stored upper tiles; :func:`kernel_regression_from_store` solves kernel
regression from a store under a memory budget (Cholesky in memory up to
:func:`cholesky_limit`, conjugate gradients with row-block matvecs above it).

Written for zarr 3.x (tested with zarr 3.1.6).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import scipy.linalg

from infwidth._json import canonical_json
from infwidth.architectures.networks import Architecture
from infwidth.data.inputs import check_targets
from infwidth.kernels.engine import DEFAULT_MEMORY_BUDGET, parse_bytes
from infwidth.kernels.tiles import tile_grid, tile_slices
from infwidth.validation import check_int

try:
    import zarr
except ImportError:  # the [distributed] extra
    zarr = None

__all__ = ["GramStore", "StoredGram", "kernel_regression_from_store", "cholesky_limit",
           "fingerprint", "arch_record", "FORMAT"]

FORMAT = "infwidth-gram-1"
_ATTR = "infwidth_gram"


def _need_zarr() -> None:
    if zarr is None:
        raise ImportError("Gram stores need zarr: pip install 'infwidth[distributed]' "
                          "(zarr>=3.1, dask[distributed])")


# --------------------------------------------------------------------------------------
# Fault injection (tests of resumption only)
# --------------------------------------------------------------------------------------
_WRITTEN = 0


def _fault_injection(point: str) -> None:
    """Tests set ``INFWIDTH_KILL_AFTER_TILES=k``: the process SIGKILLs itself at its k-th
    tile, after the tile is marked done, or — with ``INFWIDTH_KILL_BEFORE_MARK=1`` — after
    its chunks are written but before it is marked done (the window a crash can hit)."""
    k = os.environ.get("INFWIDTH_KILL_AFTER_TILES")
    if not k:
        return
    before = os.environ.get("INFWIDTH_KILL_BEFORE_MARK") == "1"
    if (point == "before_mark") == before and _WRITTEN >= int(k):
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------------------------------
# Identity of a store
# --------------------------------------------------------------------------------------
def fingerprint(x: np.ndarray | None) -> dict | None:
    """Shape and sha256 of the float64 C-order bytes of an input batch (None stays None)."""
    if x is None:
        return None
    a = np.ascontiguousarray(x, dtype=np.float64)
    return {"shape": list(a.shape), "sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def arch_record(arch: Architecture) -> dict:
    """What a store records of an architecture: class path, repr, exact fields (JSON)."""
    fields = {f.name: getattr(arch, f.name) for f in dataclasses.fields(arch)}
    cls = type(arch)
    return {"class": f"{cls.__module__}.{cls.__qualname__}", "repr": repr(arch),
            "fields": canonical_json(fields)}


def _describe_x(name: str, fp: dict | None) -> str:
    if fp is None:
        return f"the symmetric Gram of x1 ({name}=None)"
    return f"{name} of shape {tuple(fp['shape'])} with sha256 {fp['sha256'][:12]}…"


def _untuple(d: dict) -> Any:
    return tuple(d["__tuple__"]) if "__tuple__" in d else d


def _arch_difference(path: Any, old: dict, arch: Architecture) -> str:
    new = arch_record(arch)
    msg = f"store {path} was made for architecture {old['repr']}, not {new['repr']}"
    if old["class"] == new["class"]:
        a, b = (json.loads(f, object_hook=_untuple) for f in (old["fields"], new["fields"]))
        diff = [f"{k}={a.get(k)!r} → {b.get(k)!r}" for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)]
        if diff:
            msg += f" (differs in {', '.join(diff)})"
    return msg + "; use another store path or delete this one"


# --------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------
class GramStore:
    """A Gram store on disk (see the module docstring). Open with :meth:`open` (as it is)
    or :meth:`open_for` (create, or check that it was made for these arguments)."""

    def __init__(self, path: str | os.PathLike, group: Any):
        self.path = Path(path)
        self.group = group
        meta = dict(group.attrs).get(_ATTR)
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not an infwidth Gram store (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r}, "
                             f"expected {FORMAT!r}); delete it or use another store path")
        self.meta = meta
        self.kinds: tuple[str, ...] = tuple(meta["kinds"])
        self.dtype: str = meta["dtype"]
        self.shape: tuple[int, int] = tuple(meta["shape"])
        self.tile: int = int(meta["tile"])
        self.symmetric: bool = bool(meta["symmetric"])
        self.row_tiles = tile_slices(self.shape[0], self.tile)
        self.col_tiles = tile_slices(self.shape[1], self.tile)
        self._arrays = {k: group[k] for k in self.kinds}
        self._done = group["done"]
        self._seconds = group["seconds"]

    # ---------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | os.PathLike) -> "GramStore":
        """An existing store, as it is (workers and readers)."""
        _need_zarr()
        path = Path(path)
        if not (path / "zarr.json").exists():
            if path.exists():
                raise ValueError(f"{path} exists but is not a Zarr store; delete it or use "
                                 f"another store path")
            raise FileNotFoundError(f"no Gram store at {path}")
        try:
            group = zarr.open_group(str(path), mode="r+")
        except Exception as e:  # noqa: BLE001 - any unreadable store
            raise ValueError(f"{path} is not a readable Zarr store ({type(e).__name__}: {e}); "
                             f"delete it or use another store path") from None
        return cls(path, group)

    @classmethod
    def open_for(cls, path: str | os.PathLike, arch: Architecture, x1: np.ndarray,
                 x2: np.ndarray | None, kinds: Sequence[str], dtype: str, tile: int,
                 tile_explicit: bool = False) -> "GramStore":
        """The store at ``path`` for these arguments: created if absent; if present, checked
        against them (ValueError naming the first difference). An existing store keeps its
        own tile size unless ``tile_explicit`` asks for another (then refused)."""
        _need_zarr()
        path = Path(path)
        if not path.exists():
            cls._create(path, arch, x1, x2, tuple(kinds), dtype, tile)
        store = cls.open(path)
        store.check(arch, x1, x2, kinds, dtype, tile if tile_explicit else None)
        return store

    @classmethod
    def _create(cls, path: Path, arch: Architecture, x1: np.ndarray, x2: np.ndarray | None,
                kinds: tuple[str, ...], dtype: str, tile: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            g = zarr.open_group(str(tmp), mode="w")
            n1 = x1.shape[0]
            n2 = n1 if x2 is None else x2.shape[0]
            grid = (math.ceil(n1 / tile), math.ceil(n2 / tile))
            for k in kinds:
                g.create_array(k, shape=(n1, n2), chunks=(tile, tile), dtype=dtype,
                               fill_value=np.nan, compressors=None)
            g.create_array("done", shape=grid, chunks=(1, 1), dtype="uint8", fill_value=0,
                           compressors=None)
            g.create_array("seconds", shape=grid, chunks=(1, 1), dtype="float64",
                           fill_value=np.nan, compressors=None)
            for name, x in (("x1", x1), ("x2", x2)):
                if x is not None:
                    a = g.create_array(name, shape=x.shape, chunks=(tile, x.shape[1]),
                                       dtype="float64", compressors=None)
                    a[...] = np.asarray(x, dtype=np.float64)
            g.attrs[_ATTR] = {
                "format": FORMAT, "id": uuid.uuid4().hex, "architecture": arch_record(arch),
                "kinds": list(kinds), "dtype": dtype, "shape": [n1, n2], "tile": tile,
                "symmetric": x2 is None, "x1": fingerprint(x1), "x2": fingerprint(x2)}
            try:
                os.rename(tmp, path)
            except OSError:  # another process created it first: use theirs
                if not (path / "zarr.json").exists():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def check(self, arch: Architecture, x1: np.ndarray, x2: np.ndarray | None,
              kinds: Sequence[str], dtype: str, tile: int | None = None) -> None:
        """Raise ValueError naming the first way the store differs from these arguments."""
        m, p = self.meta, self.path
        old = m["architecture"]
        new = arch_record(arch)
        if (old["class"], old["fields"]) != (new["class"], new["fields"]):
            raise ValueError(_arch_difference(p, old, arch))
        if sorted(m["kinds"]) != sorted(kinds):
            raise ValueError(f"store {p} was made for kinds {tuple(m['kinds'])}, not "
                             f"{tuple(kinds)}; use another store path or delete this one")
        if m["dtype"] != dtype:
            raise ValueError(f"store {p} was made for dtype {m['dtype']!r}, not {dtype!r}; "
                             f"use another store path or delete this one")
        for name, x in (("x1", x1), ("x2", x2)):
            fp = fingerprint(x)
            if fp != m[name]:
                raise ValueError(f"store {p} was made for {_describe_x(name, m[name])}, not "
                                 f"{_describe_x(name, fp)}; use another store path or "
                                 f"delete this one")
        if tile is not None and tile != self.tile:
            raise ValueError(f"store {p} was made with tiles of {self.tile}, not the "
                             f"tile={tile} asked for; leave tile=None to reuse it")

    # ---------------------------------------------------------------- tiles
    def tiles(self) -> list[tuple[int, int]]:
        """Every tile the Gram needs (upper triangle only when symmetric)."""
        return tile_grid(self.shape[0], self.shape[1], self.tile, self.symmetric)

    def done_mask(self) -> np.ndarray:
        """(tile rows, tile cols) bool: which tiles are done."""
        return np.asarray(self._done[...]) == 1

    def missing(self) -> list[tuple[int, int]]:
        """The tiles still to compute, in row-major order."""
        done = self.done_mask()
        return [t for t in self.tiles() if not done[t]]

    def slices(self, i: int, j: int) -> tuple[slice, slice]:
        return self.row_tiles[i], self.col_tiles[j]

    def read_x(self, name: str, rows: slice) -> np.ndarray:
        """Rows of the stored input ``name`` ("x1" or "x2")."""
        return np.asarray(self.group[name][rows])

    def tile_seconds(self) -> np.ndarray:
        """(tile rows, tile cols) compute seconds of the done tiles (NaN elsewhere)."""
        return np.asarray(self._seconds[...])

    def write_tile(self, i: int, j: int, blocks: dict[str, np.ndarray],
                   seconds: float = math.nan) -> None:
        """Write tile (i, j) whole: each kind's chunk, its seconds, then its done marker."""
        global _WRITTEN
        r, c = self.slices(i, j)
        shape = (r.stop - r.start, c.stop - c.start)
        for k in self.kinds:
            b = np.asarray(blocks[k], dtype=self.dtype)
            if b.shape != shape:
                raise ValueError(f"tile ({i}, {j}) of {k} has shape {b.shape}, "
                                 f"expected {shape}")
            self._arrays[k][r, c] = b
        self._seconds[i, j] = seconds
        _WRITTEN += 1
        _fault_injection("before_mark")
        self._done[i, j] = 1
        _fault_injection("after_mark")

    def array(self, kind: str) -> Any:
        """The Zarr array of one kind (raw: unwritten tiles read as NaN)."""
        return self._arrays[kind]


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
class StoredGram:
    """Lazy access to a Gram in a store: ``.shape``, :meth:`row_block`, :meth:`to_numpy`.

    ``kind`` is the default kind read (the store's first). ``report`` holds the last
    :func:`~infwidth.kernels.distributed.gram` run's counts and timings, when there was one.
    """

    def __init__(self, store: str | os.PathLike | GramStore, kind: str | None = None,
                 report: dict | None = None):
        self.store = store if isinstance(store, GramStore) else GramStore.open(store)
        if kind is not None and kind not in self.store.kinds:
            raise ValueError(f"store {self.store.path} has kinds {self.store.kinds}, "
                             f"not {kind!r}")
        self.kind = kind or self.store.kinds[0]
        self.report = report or {}
        self._all_done = False  # tiles only ever become done, so once all are it stays so

    @property
    def shape(self) -> tuple[int, int]:
        return self.store.shape

    @property
    def kinds(self) -> tuple[str, ...]:
        return self.store.kinds

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.store.dtype)

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def complete(self) -> bool:
        return not self.store.missing()

    def __repr__(self) -> str:
        done = self.store.done_mask().sum()
        return (f"StoredGram({str(self.path)!r}, shape={self.shape}, kinds={self.kinds}, "
                f"tile={self.store.tile}, tiles done {done}/{len(self.store.tiles())})")

    def _check_done(self, i0: int, i1: int) -> None:
        # reading the done mask costs a Zarr read (~30 ms): once per Gram, not per row block
        # (conjugate gradients read every row block on every iteration)
        if self._all_done:
            return
        t, done = self.store.tile, self.store.done_mask()
        if all(done[ij] for ij in self.store.tiles()):
            self._all_done = True
            return
        rows = range(i0 // t, (i1 - 1) // t + 1)
        if self.store.symmetric:
            need = [(min(a, b), max(a, b)) for a in rows for b in range(done.shape[1])]
        else:
            need = [(a, b) for a in rows for b in range(done.shape[1])]
        missing = [ij for ij in need if not done[ij]]
        if missing:
            raise ValueError(f"store {self.path} lacks {len(missing)} tile(s) needed for rows "
                             f"{i0}:{i1}, e.g. tile {missing[0]}; run gram() to finish it")

    def row_block(self, i0: int, i1: int, kind: str | None = None) -> np.ndarray:
        """Rows i0:i1 of the Gram, all columns, as a numpy array (lower tiles mirrored)."""
        kind = kind or self.kind
        n1, n2 = self.shape
        if not (0 <= i0 < i1 <= n1):
            raise ValueError(f"row range {i0}:{i1} is outside 0:{n1}")
        self._check_done(i0, i1)
        arr = self.store.array(kind)
        if not self.store.symmetric:
            return np.asarray(arr[i0:i1, :])
        out = np.empty((i1 - i0, n2), dtype=self.dtype)
        t = self.store.tile
        for ti in range(i0 // t, (i1 - 1) // t + 1):
            a, b = max(i0, ti * t), min(i1, (ti + 1) * t)
            start = ti * t  # first column of the diagonal tile
            out[a - i0:b - i0, start:] = arr[a:b, start:]
            if start:
                out[a - i0:b - i0, :start] = np.asarray(arr[:start, a:b]).T
        return out

    def rows_per_block(self, memory_budget: int | str = DEFAULT_MEMORY_BUDGET) -> int:
        """Rows of a full-width row block that fit ``memory_budget`` (at least 1)."""
        budget = parse_bytes(memory_budget)
        return max(1, min(self.shape[0], budget // (self.shape[1] * self.dtype.itemsize)))

    def to_numpy(self, kind: str | None = None) -> np.ndarray:
        """The whole Gram in memory."""
        return self.row_block(0, self.shape[0], kind)

    def diagonal(self, kind: str | None = None) -> np.ndarray:
        """The diagonal (read from the diagonal tiles only; square stores)."""
        n = min(self.shape)
        arr, t = self.store.array(kind or self.kind), self.store.tile
        self._check_done(0, n)
        return np.concatenate([np.diag(np.asarray(arr[s:min(s + t, n), s:min(s + t, n)]))
                               for s in range(0, n, t)])


# --------------------------------------------------------------------------------------
# Kernel regression from a store
# --------------------------------------------------------------------------------------
# OpenBLAS's threaded dpotrf writes past its buffers at large n (OpenBLAS issue #2562: n ≥
# 22,659 with 2 threads); measured here with scipy's bundled OpenBLAS 0.3.30 (Haswell kernels,
# 2 threads): SIGSEGV at n = 32,768, fine at 16,384. Larger factorizations run on one thread.
SAFE_THREADED_CHOLESKY = 16384


def cholesky_threads(n: int) -> Any:
    """A context in which a Cholesky of order ``n`` runs: BLAS limited to one thread above
    :data:`SAFE_THREADED_CHOLESKY` (needs threadpoolctl; without it, unchanged)."""
    import contextlib

    if n <= SAFE_THREADED_CHOLESKY:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with the [distributed] extra
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def cholesky_limit(memory_budget: int | str = DEFAULT_MEMORY_BUDGET) -> int:
    """Largest n_train solved by in-memory Cholesky: the float64 (n, n) training Gram, factored
    in place, takes at most 7/8 of ``memory_budget`` (the rest for row blocks): n =
    ⌊√(budget·7/64)⌋, 21,674 for the default 4 GiB."""
    return math.isqrt(parse_bytes(memory_budget) * 7 // 64)


def kernel_regression_from_store(gram: StoredGram | str | os.PathLike, n_train: int,
                                 y_train: Any, y_test: Any = None, *, kind: str | None = None,
                                 ridge: float = 0.0, jitter: float = 1e-10,
                                 memory_budget: int | str = DEFAULT_MEMORY_BUDGET,
                                 tol: float = 1e-10, max_iter: int | None = None,
                                 test_start: int | None = None) -> dict:
    """Kernel regression with the Gram of a symmetric store of [train; test] points.

    Solves (K_tr + s·I)·α = y, s = ridge + jitter·tr(K_tr)/n_train (as
    :func:`infwidth.learning.regression.nested_regression`), then predicts K_te,tr·α for the
    rows from ``test_start`` (default ``n_train``: the rows after the training rows; a
    larger value skips rows, so nested training sets can share one store). The Gram is read
    in row blocks of at most 1/8 of ``memory_budget``. Solver: n_train ≤
    :func:`cholesky_limit` → Cholesky on the training Gram assembled in memory (factored in
    place); above → conjugate gradients whose matvecs
    stream the training rows from the store (one pass over n_train² entries per iteration;
    needs a well-conditioned system: give a ridge), raising RuntimeError if the relative
    residual has not reached ``tol`` after ``max_iter`` (default min(max(100, n_train), 2000))
    iterations. Returns {"solver", "alpha", "prediction", "test_mse" (with ``y_test``),
    "shift", "iterations", "residual", "condition_number" (Cholesky: LAPACK's dpocon
    estimate, as :func:`~infwidth.learning.regression.nested_regression`; CG: NaN)}."""
    g = gram if isinstance(gram, StoredGram) else StoredGram(gram)
    kind = kind or g.kind
    n = g.shape[0]
    if not g.store.symmetric:
        raise ValueError("kernel_regression_from_store needs a symmetric store (x2=None) of "
                         "the training points followed by the test points")
    n_train = check_int("n_train", n_train, 1, n)
    test_start = check_int("test_start", n_train if test_start is None else test_start,
                           n_train, n)
    y_ndim = np.ndim(y_train)
    y2 = check_targets(y_train, n_train, "y_train")
    budget = parse_bytes(memory_budget)
    rows = g.rows_per_block(max(1, budget // 8))
    diag = g.diagonal(kind)[:n_train].astype(np.float64)
    shift = float(ridge) + float(jitter) * float(diag.sum()) / n_train
    limit = cholesky_limit(budget)
    it, res, cond = 0, 0.0, math.nan
    if n_train <= limit:
        solver = "cholesky"
        a = np.empty((n_train, n_train), dtype=np.float64, order="F")
        anorm = 0.0  # the 1-norm of K_tr + s·I (symmetric: the largest row sum), for dpocon
        for i0 in range(0, n_train, rows):
            i1 = min(n_train, i0 + rows)
            blk = g.row_block(i0, i1, kind)[:, :n_train]
            blk[np.arange(i1 - i0), np.arange(i0, i1)] += shift
            a[i0:i1] = blk
            anorm = max(anorm, float(np.abs(blk, out=blk).sum(axis=1).max()))
            del blk
        try:
            with cholesky_threads(n_train):
                c = scipy.linalg.cho_factor(a, lower=True, overwrite_a=True,
                                            check_finite=False)
        except np.linalg.LinAlgError:
            raise ValueError(f"Cholesky failed: the training Gram is not numerically positive "
                             f"definite with the diagonal shift {shift:.3e}; raise ridge or "
                             f"jitter") from None
        rcond, _ = scipy.linalg.lapack.dpocon(c[0], anorm, uplo="L")
        cond = 1.0 / rcond if rcond > 0 else math.inf
        alpha = scipy.linalg.cho_solve(c, y2, check_finite=False)
        del a, c
    else:
        solver = "cg"
        max_iter = min(max(100, n_train), 2000) if max_iter is None else int(max_iter)

        def matvec(v: np.ndarray) -> np.ndarray:
            out = shift * v
            for i0 in range(0, n_train, rows):
                i1 = min(n_train, i0 + rows)
                out[i0:i1] += g.row_block(i0, i1, kind)[:, :n_train] @ v
            return out

        alpha = np.zeros_like(y2)
        r = y2.copy()
        p = r.copy()
        rs = (r * r).sum(axis=0)
        bnorm = np.sqrt(rs)
        bnorm[bnorm == 0] = 1.0
        res = float(np.max(np.sqrt(rs) / bnorm))
        while res > tol and it < max_iter:
            ap = matvec(p)
            step = rs / np.maximum((p * ap).sum(axis=0), np.finfo(float).tiny)
            alpha += step * p
            r -= step * ap
            new = (r * r).sum(axis=0)
            p = r + (new / np.maximum(rs, np.finfo(float).tiny)) * p
            rs, it = new, it + 1
            res = float(np.max(np.sqrt(rs) / bnorm))
        if res > tol:
            raise RuntimeError(
                f"n_train={n_train} is above the in-memory Cholesky limit {limit} for "
                f"memory_budget={budget / 2**20:.1f} MiB, and conjugate gradients reached only "
                f"a relative residual {res:.2e} > tol={tol:.0e} after {it} iterations; give a "
                f"ridge (better conditioning), raise max_iter, or raise memory_budget")
    pred = np.empty((n - test_start, y2.shape[1]))
    for i0 in range(test_start, n, rows):
        i1 = min(n, i0 + rows)
        pred[i0 - test_start:i1 - test_start] = g.row_block(i0, i1, kind)[:, :n_train] @ alpha
    out = {"solver": solver, "alpha": alpha if y_ndim == 2 else alpha[:, 0],
           "prediction": pred if y_ndim == 2 else pred[:, 0], "shift": shift,
           "iterations": it, "residual": res, "cholesky_limit": limit,
           "condition_number": cond}
    if y_test is not None:
        yt = check_targets(y_test, n - test_start, "y_test").reshape(pred.shape)
        out["test_mse"] = np.mean((pred - yt) ** 2, axis=0)
    return out
