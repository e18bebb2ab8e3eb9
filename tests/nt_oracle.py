"""neural-tangents as the oracle: an architecture's analytic NNGP and NTK from its own stax
``kernel_fn``, run eagerly (operation by operation), as the 1e-10 oracle tables were derived.

``jit=True`` compiles the whole kernel function as one XLA program instead (softplus user
network: 17 s eager, 6 s jitted, on an AVX2 machine; on an AVX-512 Zen 5 jaxlib 0.10.2 crashes
running that jitted program, so its test runs eagerly, 11 s). XLA then fuses and reorders
the arithmetic: the results move by up to 4.5e-10 relative on relu/erf networks and by 6e-5
on the sign activation's diagonal (its arcsin at c = 1), so it is for comparisons derived
against the jitted program (the LeNet tables of test_scaling.py) or whose tolerance is far
above that."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np


def nt_kernels(arch, x1: np.ndarray, x2: np.ndarray | None = None, *,
               jit: bool = False) -> dict[str, np.ndarray]:
    """{"nngp", "ntk"} of ``arch`` between the rows of ``x1`` (and ``x2``), float64."""
    shape = (-1,) + tuple(arch.input_shape(x1.shape[1]))
    fn = jax.jit(arch.stax[2], static_argnames="get") if jit else arch.stax[2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = fn(jnp.asarray(x1.reshape(shape)),
               None if x2 is None else jnp.asarray(x2.reshape(shape)), ("nngp", "ntk"))
    return {"nngp": np.asarray(r[0]), "ntk": np.asarray(r[1])}
