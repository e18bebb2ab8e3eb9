"""The one place where neural-tangents 0.6.5 is adapted to the installed JAX.

neural-tangents 0.6.5 (the last release; its repository is archived) imports names that
newer JAX releases removed from ``jax.core``, ``jax.interpreters.ad`` and ``jax.util``, and
its ``__init__`` eagerly imports TensorFlow through ``neural_tangents.experimental``.

:func:`load` restores the removed names (each from its new home in ``jax._src``), replaces
``neural_tangents.experimental`` by a lazy module that imports TensorFlow only if one of its
attributes is actually used, and returns ``(nt, stax)``. Nothing else in infwidth imports
neural-tangents directly.

What is covered (and tested in ``tests/test_nt_compat.py``): analytic kernels (``stax``),
``nt.batch``, ``nt.predict`` and the empirical NTK in its JACOBIAN_CONTRACTION and
NTK_VECTOR_PRODUCTS modes. The STRUCTURED_DERIVATIVES mode walks JAX internals that changed
shape and is not supported on JAX > 0.5.3; :func:`empirical_ntk_fn` refuses it.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

import jax

__all__ = ["load", "empirical_ntk_fn", "SUPPORTED_NTK_IMPLEMENTATIONS"]

_LOADED: tuple[Any, Any] | None = None


def _restore(module: types.ModuleType, name: str, value: Any) -> None:
    if not hasattr(module, name):
        setattr(module, name, value)


def _patch_jax() -> None:
    """Put back the names neural-tangents 0.6.5 imports at module level."""
    from jax._src import core as src_core
    from jax._src import util as src_util
    from jax._src.interpreters import ad as src_ad
    import jax.core
    import jax.interpreters.ad

    for name in ("Jaxpr", "JaxprEqn", "Literal", "Var", "Primitive"):
        _restore(jax.core, name, getattr(src_core, name))

    ad = jax.interpreters.ad
    for name in ("backward_pass", "config", "reducing_transposes", "source_info_util"):
        if hasattr(src_ad, name):
            _restore(ad, name, getattr(src_ad, name))
    # `zeros_like_p` was removed from JAX; neural-tangents only uses it as a key of its
    # structure-rule tables, so a fresh primitive that never appears in a jaxpr is inert.
    _restore(ad, "zeros_like_p", src_core.Primitive("zeros_like"))

    if "jax.util" not in sys.modules:
        try:
            importlib.import_module("jax.util")
        except ImportError:
            util = types.ModuleType("jax.util")
            util.safe_map = src_util.safe_map
            util.safe_zip = src_util.safe_zip
            sys.modules["jax.util"] = util
            jax.util = util  # type: ignore[attr-defined]


class _LazyExperimental(types.ModuleType):
    """Stands in for ``neural_tangents.experimental`` until an attribute is requested."""

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        del sys.modules[self.__name__]
        real = importlib.import_module(self.__name__)  # imports TensorFlow, on purpose
        return getattr(real, attr)


def load() -> tuple[Any, Any]:
    """Return ``(neural_tangents, neural_tangents.stax)``, importable without TensorFlow.

    Example:
        >>> nt, stax = load()
        >>> _, _, kernel_fn = stax.serial(stax.Dense(1), stax.Relu(), stax.Dense(1))
    """
    global _LOADED
    if _LOADED is None:
        _patch_jax()
        name = "neural_tangents.experimental"
        if name not in sys.modules:
            sys.modules[name] = _LazyExperimental(name)
        nt = importlib.import_module("neural_tangents")
        stax = importlib.import_module("neural_tangents.stax")
        _LOADED = (nt, stax)
    return _LOADED


SUPPORTED_NTK_IMPLEMENTATIONS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS")


def empirical_ntk_fn(apply_fn, implementation: str = "JACOBIAN_CONTRACTION", **kwargs):
    """``nt.empirical_ntk_fn`` restricted to the implementations that work on this JAX.

    Θ̂(x, x') = Σ_p ∂f(x)/∂θ_p · ∂f(x')/∂θ_p, averaged over output logits by default.
    """
    if implementation not in SUPPORTED_NTK_IMPLEMENTATIONS:
        raise ValueError(
            f"implementation must be one of {SUPPORTED_NTK_IMPLEMENTATIONS}, got "
            f"{implementation!r} (STRUCTURED_DERIVATIVES relies on JAX internals removed "
            f"after 0.5.3)"
        )
    nt, _ = load()
    impl = getattr(nt.NtkImplementation, implementation)
    kwargs.setdefault("trace_axes", (-1,))
    return nt.empirical_ntk_fn(apply_fn, implementation=impl, **kwargs)
