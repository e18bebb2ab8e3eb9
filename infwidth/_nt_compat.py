"""The one place where neural-tangents 0.6.5 is adapted to the installed JAX and SciPy.

neural-tangents 0.6.5 (the last release; its repository is archived) imports names that
newer JAX releases removed from ``jax.core``, ``jax.interpreters.ad`` and ``jax.util``, and
its ``__init__`` eagerly imports TensorFlow through ``neural_tangents.experimental``.

:func:`load` restores the removed names (each from its new home in ``jax._src``), replaces
``neural_tangents.experimental`` by a lazy module that imports TensorFlow only if one of its
attributes is actually used, repairs the paths below at load time (by rebinding names inside
neural-tangents' modules; no neural-tangents source is copied) and returns ``(nt, stax)``.
Nothing else in infwidth imports neural-tangents directly.

Repairs:

- ``nt.predict.gradient_descent_mse`` wraps its cached factorisation in
  ``jax.core.eval_context()``, which raises ``UnexpectedTracerError`` as soon as the kernel
  or ``diag_reg`` is traced (``jax.jit``, ``jax.grad``). The factorisation now runs in the
  eval context only when all its inputs are concrete, and in the caller's trace otherwise.
- ``nt.predict.max_learning_rate`` calls ``scipy.linalg.eigvalsh(..., eigvals=(lo, hi))``,
  removed in SciPy 1.14; the keyword is translated to ``subset_by_index=[lo, hi]``.
- ``nt.batch`` (and the Monte Carlo kernel, which batches with it) decided ``x1_is_x2`` per
  block by comparing values, so a block of ``x2`` that happens to equal a block of ``x1``
  was treated as the same inputs (Dropout's diagonal factor, shared dropout keys) and the
  returned flag was that of block (0, 0). The flag now follows what the caller passed:
  ``x2 is None`` or ``x2 is x1``, restricted per block to the diagonal blocks.
- The empirical NTK's AUTO mode read ``compile().cost_analysis()[0]``, which is now a dict;
  it works again and chooses among the supported modes. STRUCTURED_DERIVATIVES walks JAX
  internals (``ad.linearize``, ``ad.config``, ``Primitive.map_primitive``, transpose-rule
  signatures) that changed after neural-tangents 0.6.5 and fails on jax 0.5.3 and 0.10.2
  alike; it is refused with a ``ValueError`` by every public entry point.

Tested in ``tests/test_nt_compat.py``; see ``docs/nt_compat_notes.md``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import inspect
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["load", "empirical_ntk_fn", "SUPPORTED_NTK_IMPLEMENTATIONS"]

_LOADED: tuple[Any, Any] | None = None

SUPPORTED_NTK_IMPLEMENTATIONS = ("AUTO", "JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS")

_STRUCTURED_REFUSAL = (
    f"implementation must be one of {SUPPORTED_NTK_IMPLEMENTATIONS}, got "
    "STRUCTURED_DERIVATIVES, which walks JAX internals (ad.linearize, ad.config, "
    "Primitive.map_primitive, transpose rules) that changed after neural-tangents 0.6.5; "
    "it fails on every JAX this layer is tested with (0.5.3, 0.10.2)"
)


def _restore(module: types.ModuleType, name: str, value: Any) -> None:
    if not hasattr(module, name):
        setattr(module, name, value)


def _patch_jax() -> None:
    """Put back the names neural-tangents 0.6.5 imports at module level."""
    import jax.core
    import jax.interpreters.ad
    from jax._src import core as src_core
    from jax._src import util as src_util
    from jax._src.interpreters import ad as src_ad

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


class _ModuleView(types.ModuleType):
    """A module seen through a few overridden attributes; everything else is the original.

    Bound as a global of one neural-tangents module, it changes what that module sees
    (e.g. ``jax.core.eval_context``) without touching the real module for anyone else.
    """

    def __init__(self, module: types.ModuleType, **overrides: Any) -> None:
        super().__init__(module.__name__, module.__doc__)
        self._nt_compat_wrapped = module
        self.__dict__.update(overrides)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._nt_compat_wrapped, attr)


# --- nt.predict -------------------------------------------------------------------------

_IN_NT_EVAL_CONTEXT: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "nt_compat_in_eval_context", default=False)


@contextlib.contextmanager
def _deferred_eval_context() -> Iterator[None]:
    """Stands in for ``jax.core.eval_context()`` inside ``nt.predict``.

    Marks the block; the factorisations called in it decide for themselves (see
    :func:`_eval_if_concrete`) whether they can leave the current trace.
    """
    token = _IN_NT_EVAL_CONTEXT.set(True)
    try:
        yield
    finally:
        _IN_NT_EVAL_CONTEXT.reset(token)


def _eval_if_concrete(fn: Callable[..., Any], eval_context: Callable[[], Any]) -> Callable:
    """Run ``fn`` in JAX's eval context when called in a marked block on concrete inputs.

    neural-tangents evaluates ``k_train_train``'s Cholesky / eigendecomposition in the eval
    context so that the ``lru_cache``-d result is a concrete array even if ``predict_fn`` is
    first called under ``jit``. With a traced kernel or ``diag_reg`` that is impossible (and
    needless: the cache then lives inside the same trace), so ``fn`` runs in the caller's
    trace.
    """
    import jax

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        traced = any(isinstance(leaf, jax.core.Tracer)
                     for leaf in jax.tree_util.tree_leaves((args, kwargs)))
        if _IN_NT_EVAL_CONTEXT.get() and not traced:
            with eval_context():
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    return wrapped


def _eigvalsh(a: Any, b: Any = None, *, eigvals: tuple[int, int] | None = None,
              **kwargs: Any) -> Any:
    """``scipy.linalg.eigvalsh`` accepting the ``eigvals=(lo, hi)`` removed in SciPy 1.14."""
    import scipy.linalg

    if eigvals is not None:
        kwargs["subset_by_index"] = [int(eigvals[0]), int(eigvals[1])]
    return scipy.linalg.eigvalsh(a, b, **kwargs)


def _patch_predict() -> None:
    import jax
    import scipy
    import scipy.linalg
    from neural_tangents._src import predict

    eval_context = jax.core.eval_context
    predict.jax = _ModuleView(
        jax, core=_ModuleView(jax.core, eval_context=_deferred_eval_context))
    for name in ("_get_cho_solve", "_get_fns_in_eigenbasis"):
        setattr(predict, name, _eval_if_concrete(getattr(predict, name), eval_context))
    predict.sp = _ModuleView(scipy, linalg=_ModuleView(scipy.linalg, eigvalsh=_eigvalsh))


# --- nt.batch ---------------------------------------------------------------------------

_BLOCK_IS_SAME: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "nt_compat_block_is_same", default=None)
_INDEX_KWARG = "_nt_compat_block_index"


def _is_kernel(x: Any) -> bool:
    from neural_tangents._src.utils.kernel import Kernel

    return isinstance(x, Kernel)


def _kernels(tree: Any) -> list[Any]:
    import jax

    return [k for k in jax.tree_util.tree_leaves(tree, is_leaf=_is_kernel) if _is_kernel(k)]


def _with_flag(tree: Any, flag: Callable[[Any], Any]) -> Any:
    """Replace ``x1_is_x2`` of every ``Kernel`` in ``tree`` by ``flag(kernel)``."""
    import jax

    return jax.tree_util.tree_map(
        lambda k: k.replace(x1_is_x2=flag(k)) if _is_kernel(k) else k, tree, is_leaf=_is_kernel)


def _flagged(kernel_fn: Callable[..., Any]) -> Callable[..., Any]:
    """The per-block kernel function handed to the original ``nt.batch``.

    Its extra keyword ``_nt_compat_block_index = (rows, cols)`` carries the global indices of
    the block (``nt.batch`` slices such array pairs like the inputs); the block is "x1 is x2"
    exactly when both index vectors are equal, which the caller's wrapper arranges only when
    ``x2`` was ``None`` or ``x1`` itself.
    """
    import jax.numpy as jnp

    @functools.wraps(kernel_fn)
    def block_kernel_fn(x1_or_kernel: Any, *args: Any, **kwargs: Any) -> Any:
        rows, cols = kwargs.pop(_INDEX_KWARG)
        same = jnp.all(rows == cols) if rows.shape == cols.shape else jnp.asarray(False)
        if _kernels(x1_or_kernel):
            k_in = _with_flag(x1_or_kernel, lambda k: jnp.logical_and(k.x1_is_x2, same))
            return kernel_fn(k_in, *args, **kwargs)
        token = _BLOCK_IS_SAME.set(same)
        try:
            return kernel_fn(x1_or_kernel, *args, **kwargs)
        finally:
            _BLOCK_IS_SAME.reset(token)

    return block_kernel_fn


def _make_batch(nt_batch: Callable[..., Any]) -> Callable[..., Any]:
    import jax
    import jax.numpy as jnp
    from neural_tangents._src.utils import utils

    @functools.wraps(nt_batch)
    def batch(kernel_fn: Callable[..., Any], batch_size: int = 0, device_count: int = -1,
              store_on_device: bool = True) -> Callable[..., Any]:
        batched = nt_batch(_flagged(kernel_fn), batch_size, device_count, store_on_device)

        @functools.wraps(kernel_fn)
        def batched_kernel_fn(x1_or_kernel: Any, x2: Any = None, *args: Any,
                              **kwargs: Any) -> Any:
            kernels = _kernels(x1_or_kernel)
            if kernels:
                n1, n2 = kernels[0].nngp.shape[:2]
                index = (jnp.arange(n1), jnp.arange(n2))
                flag = kernels[0].x1_is_x2
            else:
                same = utils.all_none(x2) or x2 is x1_or_kernel
                n1 = jax.tree_util.tree_leaves(x1_or_kernel)[0].shape[0]
                n2 = n1 if same else jax.tree_util.tree_leaves(x2)[0].shape[0]
                index = (jnp.arange(n1), jnp.arange(n1) if same else jnp.arange(n1, n1 + n2))
                flag = jnp.asarray(same)
            out = batched(x1_or_kernel, x2, *args, **kwargs, **{_INDEX_KWARG: index})
            return _with_flag(out, lambda k: flag)

        return batched_kernel_fn

    return batch


def _patch_batching(nt: Any) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from neural_tangents._src import monte_carlo
    from neural_tangents._src.stax import requirements
    from neural_tangents._src.utils import utils

    inputs_to_kernel = requirements._inputs_to_kernel
    read_keys = utils._read_keys

    @functools.wraps(inputs_to_kernel)
    def _inputs_to_kernel(x1: Any, x2: Any, **kwargs: Any) -> Any:
        k = inputs_to_kernel(x1, x2, **kwargs)
        same = _BLOCK_IS_SAME.get()
        return k if same is None else k.replace(x1_is_x2=same)

    @functools.wraps(read_keys)
    def _read_keys(key: Any, x1: Any, x2: Any) -> tuple[Any, Any]:
        same = _BLOCK_IS_SAME.get()
        if same is None or key is None or utils.all_none(x2):
            return read_keys(key, x1, x2)
        # neural-tangents' own two outcomes: x2 identical to x1, and x2 of another shape.
        key1, key2_same = read_keys(key, x1, x1)
        unlike = jax.tree_util.tree_map(lambda a: np.zeros((0,) * (a.ndim + 1)), x1)
        _, key2_other = read_keys(key, x1, unlike)
        return key1, jnp.where(same, key2_same, key2_other)

    requirements._inputs_to_kernel = _inputs_to_kernel
    utils._read_keys = _read_keys
    batch = _make_batch(nt.batch)
    nt.batch = batch
    monte_carlo.batch = batch


# --- empirical NTK ----------------------------------------------------------------------

def _get_flops(f: Callable[..., Any], optimize: bool, *args: Any, **kwargs: Any) -> float:
    """FLOPs of ``jit(f)``: neural-tangents' AUTO cost model, for dict-valued cost analyses."""
    import jax

    if getattr(f, "_nt_compat_refused", False):
        return float("inf")
    lowered = jax.jit(f).lower(*args, **kwargs)
    analysis = lowered.compile().cost_analysis() if optimize else lowered.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # jax < 0.4.3x: one dict per device program
        analysis = analysis[0]
    return float(analysis["flops"])


def _refused_structured_ntk_fn(**kwargs: Any) -> Callable[..., Any]:
    """Table entry for STRUCTURED_DERIVATIVES: an NTK function that refuses to run.

    AUTO builds every mode and asks :func:`_get_flops` for its cost, which is infinite here.
    """
    def ntk_fn(*args: Any, **kwargs: Any) -> Any:
        raise ValueError(_STRUCTURED_REFUSAL)

    ntk_fn._nt_compat_refused = True  # type: ignore[attr-defined]
    return ntk_fn


def _refusing_structured(fn: Callable[..., Any], structured: Any) -> Callable[..., Any]:
    """``fn`` raising :class:`ValueError` up front when asked for STRUCTURED_DERIVATIVES."""
    signature = inspect.signature(fn)
    default = signature.parameters["implementation"].default

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        implementation = signature.bind(*args, **kwargs).arguments.get("implementation",
                                                                       default)
        if implementation == structured:
            raise ValueError(_STRUCTURED_REFUSAL)
        return fn(*args, **kwargs)

    return wrapped


def _patch_empirical(nt: Any) -> None:
    from neural_tangents._src import empirical

    structured = empirical.NtkImplementation.STRUCTURED_DERIVATIVES
    empirical._get_flops = _get_flops
    empirical._implementation_to_ntk_fn[structured] = _refused_structured_ntk_fn
    for name in ("empirical_ntk_fn", "empirical_kernel_fn", "monte_carlo_kernel_fn"):
        setattr(nt, name, _refusing_structured(getattr(nt, name), structured))


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
        _patch_predict()
        _patch_batching(nt)
        _patch_empirical(nt)
        _LOADED = (nt, stax)
    return _LOADED


def empirical_ntk_fn(apply_fn: Callable[..., Any], implementation: str = "JACOBIAN_CONTRACTION",
                     **kwargs: Any) -> Callable[..., Any]:
    """``nt.empirical_ntk_fn`` restricted to the implementations that work on this JAX.

    Θ̂(x, x') = Σ_p ∂f(x)/∂θ_p · ∂f(x')/∂θ_p, averaged over output logits by default.
    """
    if implementation not in SUPPORTED_NTK_IMPLEMENTATIONS:
        if implementation == "STRUCTURED_DERIVATIVES":
            raise ValueError(_STRUCTURED_REFUSAL)
        raise ValueError(f"implementation must be one of {SUPPORTED_NTK_IMPLEMENTATIONS}, "
                         f"got {implementation!r}")
    nt, _ = load()
    impl = getattr(nt.NtkImplementation, implementation)
    kwargs.setdefault("trace_axes", (-1,))
    return nt.empirical_ntk_fn(apply_fn, implementation=impl, **kwargs)
