"""Synthetic inputs: the hypercube and the sphere product (``docs/theory.md`` §1)."""

from __future__ import annotations

from typing import Any

import numpy as np

from infwidth.validation import (
    DEFAULT_MEMORY_BUDGET,
    check_architecture,
    check_choice,
    check_memory,
    check_pos_int,
    check_seed,
)

__all__ = ["sample_inputs", "check_inputs", "check_targets", "check_training_data", "DOMAINS"]

DOMAINS = ("hypercube", "sphere")


def sample_inputs(domain: str, n: int, dim: int, patch_dim: int | None = None,
                  seed: int = 0, arch: Any = None,
                  memory_budget: int | str = DEFAULT_MEMORY_BUDGET) -> np.ndarray:
    """Draw ``n`` inputs of ``dim`` coordinates, float64, shape (n, dim).

    - "hypercube": x uniform on {±1}^dim.
    - "sphere": each patch uniform on the sphere of radius √n0, independently. The patches
      are ``arch``'s leaves when an architecture is given (``arch.leaf_coordinates(dim)``:
      the 2×2 squares of a 2-D D-CNN, say), else consecutive blocks of ``patch_dim``
      coordinates (``patch_dim=None``: one sphere of radius √dim). Where the leaves are
      consecutive blocks both give the same draw.

    The draw holds two float64 (n, dim) arrays at its peak (16·n·dim bytes); more than
    ``memory_budget`` (bytes or a string such as "4GB"; default 4 GiB) is refused before
    anything is allocated.

    Args:
        domain: "hypercube" or "sphere".
        n: the number of inputs.
        dim: coordinates per input.
        patch_dim: the sphere's patch size (``None``: one sphere over all coordinates).
        seed: the PRNG seed (same seed, same bits).
        memory_budget: the largest draw allowed, in bytes or a string such as "4GB".
        arch: an architecture whose leaves are the sphere's patches (``None``: consecutive blocks).

    Returns:
        A float64 array of shape (n, dim).

    Example:
        >>> x = sample_inputs("sphere", n=3, dim=8, patch_dim=4, seed=0)
        >>> x.shape, bool(np.allclose((x[:, :4] ** 2).sum(1), 4.0))
        ((3, 8), True)
        >>> img = sample_inputs("sphere", 2, 16, seed=0,
        ...                     arch=iw.DCNN(patch_dim=2, filter_sizes=(2,), ndim=2))
        >>> round(float((img[0, [0, 1, 4, 5]] ** 2).sum()), 12)  # a 2×2 patch of the 4×4 image
        4.0
    """
    check_choice("domain", domain, DOMAINS)
    n, dim = check_pos_int("n", n), check_pos_int("dim", dim)
    check_memory(16 * n * dim, memory_budget, f"sample_inputs(n={n}, dim={dim})")
    if arch is not None:
        check_architecture(arch)
        leaves = np.asarray(arch.leaf_coordinates(dim))
        if patch_dim is not None and check_pos_int("patch_dim", patch_dim) != leaves.shape[1]:
            raise ValueError(f"patch_dim={patch_dim} but the architecture's leaves read "
                             f"{leaves.shape[1]} coordinates each")
        patch_dim = leaves.shape[1]
    else:
        patch_dim = dim if patch_dim is None else check_pos_int("patch_dim", patch_dim)
        if dim % patch_dim:
            raise ValueError(f"dim={dim} is not divisible by patch_dim={patch_dim}")
        leaves = np.arange(dim).reshape(dim // patch_dim, patch_dim)
    rng = np.random.default_rng(check_seed("seed", seed))
    if domain == "hypercube":
        return rng.choice(np.array([-1.0, 1.0]), size=(n, dim))
    g = rng.standard_normal((n, dim // patch_dim, patch_dim))
    g *= np.sqrt(patch_dim) / np.linalg.norm(g, axis=-1, keepdims=True)
    x = np.empty((n, dim))
    x[:, leaves.ravel()] = g.reshape(n, dim)
    return x


def check_inputs(x: Any, name: str = "x1", dim: int | None = None) -> np.ndarray:
    """Validate a flat input batch: a finite real array of shape (n, dim) with n ≥ 1."""
    if not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array of shape (n, dim), got {type(x).__name__}")
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must have 2 dimensions (n, dim), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"{name} must be a real numeric array, got dtype {x.dtype}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} has {x.shape[1]} coordinates per example, expected {dim}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or inf")
    return x


def check_targets(y: Any, n: int | None, name: str = "y") -> np.ndarray:
    """Validate regression targets: finite, shape (n,) or (n, k) (any n when ``n`` is None);
    returned as a float64 (n, k) array. Labels that are not real numbers (strings, complex,
    objects) are refused with a TypeError naming ``name``."""
    try:
        a = np.asarray(y)
    except ValueError as e:  # ragged nesting
        raise ValueError(f"{name} must be an array of shape (n,) or (n, k): {e}") from None
    if a.dtype.kind == "O":
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must hold real numbers, got {type(y).__name__} of "
                            f"dtype object") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    y = a.astype(np.float64)
    y = y[:, None] if y.ndim == 1 else y
    if y.ndim != 2 or (n is not None and y.shape[0] != n):
        want = f"({n},) or ({n}, k)" if n is not None else "(n,) or (n, k)"
        raise ValueError(f"{name} must have shape {want}, got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{name} contains NaN or inf")
    return y


def check_training_data(x_train: Any, y_train: Any, x_test: Any = None, y_test: Any = None,
                        out_dim: int | None = None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """A training set (and optionally a test set) for a network with ``out_dim`` outputs:
    float64 (n, dim) inputs and (n, out_dim) labels, the test set given whole or not at all."""
    x_train = check_inputs(x_train, "x_train")
    n, dim = x_train.shape
    y_train = check_targets(y_train, n, "y_train")
    if (x_test is None) != (y_test is None):
        raise ValueError("x_test and y_test must be given together")
    if x_test is not None:
        x_test = check_inputs(x_test, "x_test", dim)
        y_test = check_targets(y_test, x_test.shape[0], "y_test")
        if y_test.shape[1] != y_train.shape[1]:
            raise ValueError(f"y_test has {y_test.shape[1]} outputs, y_train {y_train.shape[1]}")
    if out_dim is not None and y_train.shape[1] != out_dim:
        raise ValueError(f"y_train has {y_train.shape[1]} output(s) but the architecture's "
                         f"out_dim is {out_dim}")
    return x_train, y_train, x_test, y_test
