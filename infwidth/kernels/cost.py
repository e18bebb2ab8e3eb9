"""Analytic cost of a native-engine Gram: flops and memory traffic per step, before the work.

:func:`kernel_cost` walks the plan of :func:`infwidth.kernels.native.native_plan` (the steps
the engine runs for one pair of inputs) and counts, per step and per pair:

- **elements**: the per-pair size of Σ after the step (P² positions for a full covariance,
  P on the diagonal, 1 after the readout);
- **flops**: one per floating-point add, subtract, multiply, divide, square root, min or max
  (compares, selects and sign masks are not counted; a divide or a square root is one flop
  although it costs several multiplies). Sums are counted by the separable algorithm: a
  conv of q taps per axis adds (q − 1) per output entry per axis, per array (Σ, and Θ with
  the NTK), whatever loop the engine uses; a pool window of w per axis adds (w² − 1) (both
  positions), a readout summing m entries m − 1;
- **bytes**: the least memory traffic of the step as the engine runs it today on the CPU
  (the numba backend): every pass reads each of its arrays once and writes its output once,
  itemsize from ``dtype``; the per-input variance vectors and the prepared inputs of a tile
  are not counted per pair (the inputs are counted once, in ``fixed_bytes``). A linear layer
  and fast activation (and a following GAP or square pooling) that the engine fuses
  (:func:`~infwidth.kernels.native_numba.fused_steps`) move their input once and their
  output once, on the group's first row (a first layer reads its patches, never the Gram;
  GAP writes nothing). Flops stay the separable count although the fused pass adds the
  q0·q1 taps of a 2-D conv directly.

The constants, per covariance entry (counted from ``infwidth/kernels/native_numba.py``):

- first Gram: 2·coords (one multiply-add per coordinate) + 1 (the 1/coords scale);
- affine Σ' = a·Σ + b: 1, 2 with a bias; Θ' = a·Θ + Σ': 2;
- relu dual of Σ: 42 = 4 (c = s·r1·r2 clipped) + 31 (fdlibm ``acos``: z = (1 − |c|)/2 and
  c², the degree-5 and degree-4 Horner polynomials 11 + 8, a divide, √z, 2(√z + √z·r), c + c·r
  and the two branch-free ends 2) + 1 (π − θ) + 6 (√(1 − c²)·q1·q2 + (π − θ)·s, c² shared);
  Θ: 1 ((π − θ)·Θ);
- erf dual of Σ: 33 = 2 (c = s·r1·r2) + 31 (fdlibm ``asin``, both branch-free ends); Θ: 5
  (Θ·r1·r2/√(1 − c²));
- any other activation (the registry's ``gaussian_dual`` in numpy): an estimate of
  :data:`GENERIC_DUAL_FLOPS` per Σ entry and 1 per Θ entry, in :data:`GENERIC_DUAL_PASSES`
  passes of two reads and one write;
- pending scale factors (after an activation, a pool or a readout) are folded into the next
  linear layer, or cost one multiply pass before an activation or a residual block.

``pairs`` is n1(n1 + 1)/2 for a symmetric Gram (``n2=None``), n1·n2 otherwise: the pairs the
output needs (the engine's self pass, and the lower half of its diagonal tiles, are not
counted).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from infwidth.architectures.activations import get_activation
from infwidth.architectures.layers import Conv, conv_taps
from infwidth.kernels.native_numba import fused_steps
from infwidth.validation import (
    KINDS,
    check_architecture,
    check_dtype,
    check_kinds,
    check_opt_pos_int,
    check_pos_int,
)

__all__ = ["kernel_cost", "KernelCost", "DUAL_FLOPS", "GENERIC_DUAL_FLOPS",
           "GENERIC_DUAL_PASSES"]

# (flops per Σ entry, flops per Θ entry) of the fused duals (module docstring).
DUAL_FLOPS = {"arccos1": (42, 1), "arcsin": (33, 5)}
# Estimate for an activation without a fused path: ~15 numpy ufunc passes over full-size
# temporaries (roots, the angle's atan2, products), a transcendental counted as ~20 flops.
GENERIC_DUAL_FLOPS = 50
GENERIC_DUAL_PASSES = 16
# numba's first Gram is a compiled matmul up to this many coordinates (NumbaOps.gram).
_BMM_COORDS = 64


@dataclass(frozen=True)
class KernelCost:
    """Flops and bytes of one native-engine Gram (:func:`kernel_cost`).

    Attributes:
        flops: total floating-point operations, ``pairs · flops_per_pair``.
        bytes: total memory traffic, ``pairs · bytes_per_pair + fixed_bytes``.
        pairs: input pairs the output needs (n1(n1 + 1)/2 symmetric, n1·n2 otherwise).
        flops_per_pair: the sum of the rows' flops.
        bytes_per_pair: the sum of the rows' bytes.
        fixed_bytes: the prepared inputs read once and the outputs written once.
        rows: per step, in the order the engine runs them: ``step`` (its index in the
            plan, "i.branch.j"/"i.shortcut.j" inside a residual block), ``op`` ("gram",
            "lin", "act", "pool", "todiag", "read", "res"), ``layer``, ``shape`` (spatial,
            after the step), ``full`` (a (P, P) covariance, else its diagonal),
            ``elements_per_pair``, ``flops_per_pair``, ``bytes_per_pair``.
        dtype: the working dtype the bytes count.
        kinds: the kinds computed (Θ is carried when "ntk" is among them).
    """

    flops: int
    bytes: int
    pairs: int
    flops_per_pair: int
    bytes_per_pair: int
    fixed_bytes: int
    rows: tuple[dict, ...]
    dtype: str
    kinds: tuple[str, ...]

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, flops per byte."""
        return self.flops / self.bytes

    def to_frame(self) -> Any:
        """The rows as a tidy pandas DataFrame (one row per step, per-pair columns)."""
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=list(_COLUMNS))


_COLUMNS = ("step", "op", "layer", "shape", "full", "elements_per_pair", "flops_per_pair",
            "bytes_per_pair")


def kernel_cost(arch: Any, n1: int, n2: int | None = None, *, dim: int,
                kinds: str | Sequence[str] = KINDS, dtype: str = "float64") -> KernelCost:
    """Flops and bytes of the native engine's Gram of ``arch`` on (n1, n2) inputs of ``dim``
    coordinates, counted from its plan before any work (conventions in
    :mod:`infwidth.kernels.cost`): per pair, the first Gram's 2·coords flops per covariance
    entry, each conv's (q − 1) adds per axis per array, the fused relu dual's 42 flops per Σ
    entry and 1 per Θ entry, pooling's and the readout's sums; bytes as the CPU engine moves
    them (each pass reads and writes its arrays once).

    Args:
        arch: an architecture the native engine computes (``iw.MLP``, ``iw.ConvNet``,
            Myrtle, a ``Network`` of layers, …).
        n1: the number of first inputs.
        n2: the number of second inputs; None: the symmetric Gram of the first
            (n1(n1 + 1)/2 pairs).
        dim: coordinates per input (flat), as ``arch.input_shape(dim)`` reads them.
        kinds: "nngp", "ntk" or both; the NNGP alone carries no Θ.
        dtype: "float64" or "float32" (the bytes per element).

    Returns:
        A :class:`KernelCost`: totals, per-pair totals and one row per step
        (``.to_frame()``).

    Example:
        >>> c = iw.kernel_cost(iw.MLP(depth=2), 100, dim=8)
        >>> c.pairs, c.flops_per_pair  # 2·8 + 94: Gram, two relu duals, three affines
        (5050, 110)
        >>> c.to_frame()[["op", "flops_per_pair"]].values.tolist()[:2]
        [['gram', 18], ['act', 43]]
    """
    from infwidth.kernels.native import native_plan

    check_architecture(arch)
    n1 = check_pos_int("n1", n1)
    n2 = check_opt_pos_int("n2", n2)
    dim = check_pos_int("dim", dim)
    kinds = check_kinds(kinds, "kinds")
    item = np.dtype(check_dtype(dtype)).itemsize
    plan = native_plan(arch, dim)
    walk = _Walk(plan.nd, "ntk" in kinds)
    walk.first(plan)
    walk.steps(plan.steps, prefix="", start=0 if fused_steps(plan.steps, 0, plan.nd) else 1)
    walk.rows[0].pop("_patch_elems", None)
    rows = tuple({**r, "bytes_per_pair": r["bytes_per_pair"] * item} for r in walk.rows)
    symmetric = n2 is None
    pairs = n1 * (n1 + 1) // 2 if symmetric else n1 * n2
    n_in = n1 + (0 if symmetric else n2)
    outputs = (1 + walk.ntk) * n1 * (n1 if symmetric else n2)
    fixed = (n_in * math.prod(plan.pos0) * plan.coords + outputs) * item
    fpp = sum(r["flops_per_pair"] for r in rows)
    bpp = sum(r["bytes_per_pair"] for r in rows)
    return KernelCost(flops=pairs * fpp, bytes=pairs * bpp + fixed, pairs=pairs,
                      flops_per_pair=fpp, bytes_per_pair=bpp, fixed_bytes=fixed, rows=rows,
                      dtype=dtype, kinds=kinds)


def _size(shape: tuple[int, ...], full: bool) -> int:
    return math.prod(shape) ** (2 if full else 1)


def _describe(ly: Any) -> str:
    if isinstance(ly, Conv):
        s = f"Conv {'×'.join(map(str, ly.filter))} {ly.padding}"
        return s + (f" stride {'×'.join(map(str, ly.stride))}" if max(ly.stride) > 1 else "")
    return type(ly).__name__


class _Walk:
    """Accumulates rows while following the engine's ``_walk``: Θ's presence and the pending
    scale factors decide which passes run. Bytes are kept in elements until the end."""

    def __init__(self, nd: int, ntk: bool) -> None:
        self.nd, self.ntk, self.rows = nd, ntk, []
        self.has_t = False
        self.ck = self.cd = 1.0

    def _row(self, step, op, layer, shape, full, flops, elems_moved) -> None:
        self.rows.append(dict(step=step, op=op, layer=layer, shape=tuple(shape), full=full,
                              elements_per_pair=_size(shape, full), flops_per_pair=int(flops),
                              bytes_per_pair=int(elems_moved)))

    def _arrays(self) -> int:
        return 1 + self.has_t

    def _flush(self, e: int) -> tuple[int, int]:
        """(flops, elements moved) of applying the pending scale factors."""
        n = (self.ck != 1.0) + (self.has_t and self.cd != 1.0)
        self.ck = self.cd = 1.0
        return n * e, 2 * n * e

    def _affine(self, ly: Any, e: int) -> tuple[int, int]:
        """Σ' = a·Σ (+ b), then Θ' = a·Θ + Σ' (or Θ = Σ' at the first layer)."""
        passes = 1 + (ly.b_std != 0.0)
        f, m = passes * e, 2 * passes * e
        if self.ntk:
            if self.has_t:
                f, m = f + 2 * e, m + 5 * e  # scale (read, write), add (two reads, write)
            else:
                m += 2 * e  # Θ = copy of Σ'
            self.has_t = True
        self.ck = self.cd = 1.0
        return f, m

    def first(self, plan: Any) -> None:
        """The first Gram ⟨x(i), x'(j)⟩/coords and the first layer's affine."""
        st = plan.steps[0]
        e, c, p = _size(plan.pos0, plan.full0), plan.coords, math.prod(plan.pos0)
        if plan.nd == 0:  # one BLAS call for all pairs, scaled into a new array, then copied
            moved = 5 * e
        elif plan.full0 and c > _BMM_COORDS and p > 1:  # BLAS, then its transposed copy
            moved = 3 * e + 2 * e
        else:  # written once, then scaled in place
            moved = 3 * e
        f, m = self._affine(st[1], e)
        name = _describe(st[1]) + f" (first Gram, {c} coords)"
        self._row("0", "gram", name, plan.pos0, plan.full0, (2 * c + 1) * e + f, moved + m)
        self.rows[0]["_patch_elems"] = p * c

    def steps(self, steps: Sequence[tuple], prefix: str, start: int = 0) -> None:
        """Rows of ``steps[start:]``; a group the engine fuses into one pass
        (:func:`~infwidth.kernels.native_numba.fused_steps`) moves its input once and its
        output once (nothing for GAP), on the group's first row."""
        k = start
        while k < len(steps):
            n = fused_steps(steps, k, self.nd)
            row, arrays_in = len(self.rows), self._arrays()
            if k == 0:  # the first layer's row is already there (the first Gram)
                row, arrays_in = 0, 0
            for j in range(k + (k == 0), k + max(n, 1)):
                self.step(steps[j], prefix + str(j))
            if n:
                e_in = 0 if k == 0 else _size(steps[k][2], True) * arrays_in
                self._fused(row, n, e_in)
            k += max(n, 1)

    def _fused(self, row: int, n: int, e_in: int) -> None:
        """Set the bytes of the fused rows ``row``… (n steps) to one read of the input
        (``e_in`` elements; the first layer reads its patches) and one write of the output."""
        last = self.rows[row + n - 1]
        e_out = 0 if last["op"] == "read" else last["elements_per_pair"] * self._arrays()
        if row == 0:  # the first layer: its patches are read per plane, the Gram never stored
            e_in = 2 * self.rows[0].pop("_patch_elems")
        for r in self.rows[row:row + n]:
            r["bytes_per_pair"] = 0
        self.rows[row]["bytes_per_pair"] = e_in + e_out

    def step(self, st: tuple, name: str) -> None:
        op = st[0]
        if op == "lin":
            _, ly, shape, full, out, _ = st
            f = m = 0
            if isinstance(ly, Conv):
                f, m = self._conv(ly, shape, full)
                f, m = f * self._arrays(), m * self._arrays()
            fa, ma = self._affine(ly, _size(out, full))
            self._row(name, "lin", _describe(ly), out, full, f + fa, m + ma)
        elif op == "act":
            _, act, shape, full, _ = st
            e = _size(shape, full)
            f, m = self._flush(e)
            spec = get_activation(act)
            if spec.fast in DUAL_FLOPS:
                fs, ft = DUAL_FLOPS[spec.fast]
                f += fs * e + (ft * e if self.has_t else 0)
                m += 2 * e * self._arrays()  # one fused pass: read, write Σ (and Θ)
                self.ck = self.cd = 1 / (2 * math.pi) if spec.fast == "arccos1" else 2 / math.pi
            else:
                f += GENERIC_DUAL_FLOPS * e + (e if self.has_t else 0)
                m += 3 * GENERIC_DUAL_PASSES * e + (3 * e if self.has_t else 0)
            self._row(name, "act", spec.name, shape, full, f, m)
        elif op == "pool":
            (window, stride), shape, full, out = st[1], st[2], st[3], st[4]
            f, m = self._pool(window, stride, shape)
            scale = 1.0 / math.prod(window) ** 2
            self.ck, self.cd = self.ck * scale, self.cd * scale
            self._row(name, "pool", f"AvgPool {'×'.join(map(str, window))} stride "
                      f"{'×'.join(map(str, stride))}", out, True, f * self._arrays(),
                      m * self._arrays())
        elif op == "todiag":  # a strided read of the diagonal into a new array
            e = math.prod(st[2])
            self._row(name, "todiag", "diagonal", st[2], False, 0, 2 * e * self._arrays())
        elif op == "read":
            _, how, shape, full = st
            summed = _size(shape, full) if how == "gap" or not full else math.prod(shape)
            scale = 1.0 / math.prod(shape) ** (2 if how == "gap" else 1)
            self.ck, self.cd = self.ck * scale, self.cd * scale
            self._row(name, "read", "GAP" if how == "gap" else "Flatten", (), False,
                      (summed - 1) * self._arrays(), (summed + 1) * self._arrays())
        elif op == "res":
            _, branch, shortcut, shape, full, out = st
            e_in, e_out = _size(shape, full), _size(out, full)
            f, m = self._flush(e_in)
            m += 2 * e_in * self._arrays()  # the shortcut's copies of Σ (and Θ)
            has_t = self.has_t
            for label, sub in (("branch", branch), ("shortcut", shortcut)):
                self.has_t, self.ck, self.cd = has_t, 1.0, 1.0
                self.steps(sub, f"{name}.{label}.")
                fb, mb = self._flush(e_out)
                f, m = f + fb, m + mb
            f += e_out * self._arrays()
            m += 3 * e_out * self._arrays()
            self._row(name, "res", "Residual sum", out, full, f, m)
        else:  # pragma: no cover - the plan's step kinds are closed
            raise ValueError(f"unknown plan step {op!r}")

    def _conv(self, ly: Conv, shape: tuple[int, ...], full: bool) -> tuple[int, int]:
        """(flops, elements moved) of one array's conv: per axis (q − 1) adds per entry of
        that axis' output; numba's passes (one on the diagonal and for 1-D maps, two for a
        2-D covariance, numpy's per-tap passes for a strided one)."""
        sizes, cur, flops = [], list(shape), 0
        for k, (q, s) in enumerate(zip(ly.filter, ly.stride)):
            cur[k] = conv_taps(shape[k], q, s, ly.padding).shape[0]
            sizes.append(_size(tuple(cur), full))
            flops += (q - 1) * sizes[-1]
        e_in, e_out = _size(shape, full), sizes[-1]
        if not full:
            moved = e_in + e_out
        elif max(ly.stride) > 1:  # NumpyOps.conv: per axis a copy, then one add per tap
            moved = sum((2 + 3 * (q - 1)) * e for q, e in zip(ly.filter, sizes))
        elif len(shape) == 2 and not (ly.filter[0] == 1 and sizes[0] == e_in):
            moved = e_in + 2 * sizes[0] + e_out
        else:
            moved = e_in + e_out
        return flops, moved

    def _pool(self, window, stride, shape) -> tuple[int, int]:
        """(flops, elements moved) of one array's pooling of both positions."""
        sizes, cur, flops = [], list(shape), 0
        for k, (w, s) in enumerate(zip(window, stride)):
            cur[k] = (shape[k] - w) // s + 1
            sizes.append(_size(tuple(cur), True))
            flops += (w * w - 1) * sizes[-1]
        if len(shape) == 2 and tuple(window) == tuple(stride) and len(set(window)) == 1:
            read = _size(tuple(c * w for c, w in zip(cur, window)), True)
            return flops, read + sizes[-1]  # NumbaOps.pool: one pass
        return flops, sum((2 + 3 * (w * w - 1)) * e for w, e in zip(window, sizes))
