"""The main job's configuration: which architectures, targets and sample sizes to compare.

``python benchmarks/learnability.py --config FILE`` reads a TOML file with this layout
(``benchmarks/configs/default.toml`` reproduces the default run)::

    name = "default"            # names the output folder and the run
    domain = "hypercube"        # or "sphere"
    dim = 64
    kind = "ntk"                # or "nngp"
    sample_sizes = [16, 64, 256, 1024]
    seeds = 4                   # measured curves: mean ± std over seeds
    n_test = 1000
    threshold = 0.5             # "learned": measured test MSE < threshold × target power
    memory_budget = "16GiB"     # optional: bytes or "16GiB" (default 4 GiB, as iw.kernel)
    store = "grams"             # optional: the Gram store folder (relative: under the output)
    client = "local"            # optional: fill store tiles on a local Dask cluster

    [[architectures]]           # one table per architecture; every key but name, type and
    name = "D-CNN"              # max_degree goes to the constructor: iw.DCNN(patch_dim=4, ...)
    type = "DCNN"               # a constructor name: ARCHITECTURE_TYPES
    patch_dim = 4
    filter_sizes = [2, 8]
    max_degree = 6              # the spectrum's degree cap (the predictor's tail is a ridge)

    [[targets]]                 # Target constructors: local, pair, far_pair or degrees
    name = "sibling pair"
    type = "pair"               # iw.Target.pair(domain, dim, patch_dim, patches=(0, 1))
    patch_dim = 4
    patches = [0, 1]

    [finite]                    # optional: finite networks against their kernel
    arch = "MLP"
    target = "sibling pair"
    sample_sizes = [64]
    widths = [64, 256]
    seeds = 1

    [[checks]]                  # asserted at the end (exit status 1 when one fails)
    type = "fewer_samples"      # m*(better) < m*(worse) on target
    better = "D-CNN"
    worse = "MLP"
    target = "sibling pair"

Check types: ``fewer_samples`` (better, worse, target), ``never_learns`` and ``learns``
(arch, target), ``median_gap`` (max: the median relative gap between predicted and measured
test MSE), ``finite_gap_shrinks`` (the finite nets' distance to the kernel predictor falls
with width).

Resources (they change how the Gram is computed and solved, never the question, so they are
not part of the run's key and ``--memory-budget``, ``--store``, ``--client`` override them):
a seed's Gram of max(m) + n_test points is computed in memory when
:func:`~infwidth.learning.regression.gram_memory` fits ``memory_budget``; otherwise it is
filled tile by tile into the Zarr store ``store`` (default ``grams`` under the output folder;
resumable) and each m is solved from there
(:func:`~infwidth.learning.regression.regression_routes`: Cholesky while the m×m Gram fits,
conjugate gradients streaming row blocks beyond). ``client`` (absent or "local") fills the
tiles in this process or on a local Dask cluster.

Every key is checked before any work; a bad one raises :class:`ConfigError`
naming it, e.g. ``architectures[2].filter_sizes``.

Example:
    >>> cfg = parse_config({"dim": 16, "sample_sizes": [4, 8],
    ...     "architectures": [{"name": "MLP", "type": "MLP", "depth": 1}],
    ...     "targets": [{"name": "t", "type": "local", "patch_dim": 4, "degree": 1}]})
    >>> cfg.build_architectures()["MLP"].depth, cfg.seeds
    (1, 4)
    >>> parse_config({"dim": 16, "sample_sizes": [4], "architectures": [], "targets": [],
    ...               "colour": "red"})
    Traceback (most recent call last):
    ...
    infwidth.learning.config.ConfigError: config: unknown key 'colour' (expected one of ...)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from infwidth.architectures import ARCHITECTURES, Architecture
from infwidth.data.inputs import DOMAINS
from infwidth.learning.targets import Target
from infwidth.validation import KINDS, check_int, parse_bytes

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["ConfigError", "JobConfig", "load_config", "parse_config", "check_resources",
           "ARCHITECTURE_TYPES", "TARGET_TYPES", "CHECK_TYPES", "CLIENTS"]

#: Architecture "type" names: the public constructors (one registry,
#: :data:`infwidth.architectures.ARCHITECTURES`; a Network's layer tuple has no TOML form).
ARCHITECTURE_TYPES: dict[str, type] = {k: v for k, v in ARCHITECTURES.items() if k != "Network"}
TARGET_TYPES = {"local": Target.local, "pair": Target.pair, "far_pair": Target.far_pair,
                "degrees": Target.from_degrees}
CHECK_TYPES = {"fewer_samples": ("better", "worse", "target"), "never_learns": ("arch", "target"),
               "learns": ("arch", "target"), "median_gap": ("max",), "finite_gap_shrinks": ()}
_TOP = {"name": "run", "domain": "hypercube", "dim": None, "kind": "ntk", "sample_sizes": None,
        "seeds": 4, "n_test": 1000, "threshold": 0.5, "architectures": None, "targets": None,
        "finite": {}, "checks": [], "memory_budget": None, "store": None, "client": None}
CLIENTS = ("local",)
_FINITE = {"arch": None, "target": None, "sample_sizes": None, "widths": None, "seeds": 1}


class ConfigError(ValueError):
    """A configuration key with a bad value; the message names the key."""


def _need(cond: bool, where: str, msg: str) -> None:
    if not cond:
        raise ConfigError(f"{where}: {msg}")


def _int(v: Any, where: str, lo: int = 1) -> int:
    try:  # a bad key of a file is a ConfigError, whatever its type
        return check_int(where, v, lo)
    except (TypeError, ValueError) as e:
        raise ConfigError(str(e)) from None


def _ints(v: Any, where: str) -> tuple[int, ...]:
    _need(isinstance(v, (list, tuple)) and len(v) > 0, where,
          f"must be a non-empty list of positive integers, got {v!r}")
    out = tuple(_int(x, f"{where}[{i}]") for i, x in enumerate(v))
    _need(len(set(out)) == len(out), where, f"has repeated values: {list(v)}")
    return tuple(sorted(out))


def _str(v: Any, where: str, choices: Any = None) -> str:
    _need(isinstance(v, str) and v != "", where, f"must be a non-empty string, got {v!r}")
    if choices is not None:
        _need(v in choices, where, f"must be one of {list(choices)}, got {v!r}")
    return v


def _keys(d: Any, allowed: Any, where: str) -> None:
    _need(isinstance(d, Mapping), where, f"must be a table, got {type(d).__name__}")
    for k in d:
        _need(k in allowed, where, f"unknown key {k!r} (expected one of {sorted(allowed)})")


def _tuples(params: Mapping[str, Any]) -> dict[str, Any]:
    """TOML lists become tuples, as the constructors' signatures expect."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


@dataclass(frozen=True)
class JobConfig:
    """A validated configuration (see the module docstring for the keys)."""

    name: str
    domain: str
    dim: int
    kind: str
    sample_sizes: tuple[int, ...]
    seeds: int
    n_test: int
    threshold: float
    architectures: tuple[dict, ...]
    targets: tuple[dict, ...]
    finite: dict = field(default_factory=dict)
    checks: tuple[dict, ...] = ()
    memory_budget: int | None = None  # bytes; None: iw.kernel's default (4 GiB)
    store: str | None = None
    client: str | None = None

    def build_architectures(self) -> dict[str, Architecture]:
        """{name: architecture}, in the configuration's order."""
        return {a["name"]: ARCHITECTURE_TYPES[a["type"]](**_tuples(a["params"]))
                for a in self.architectures}

    def build_targets(self) -> dict[str, Target]:
        """{name: target}, in the configuration's order."""
        out = {}
        for t in self.targets:
            p = _tuples(t["params"])
            patch_dim = p.pop("patch_dim")
            out[t["name"]] = TARGET_TYPES[t["type"]](self.domain, self.dim, patch_dim,
                                                     name=t["name"], **p)
        return out

    def max_degree(self, arch: str) -> int:
        return next(a["max_degree"] for a in self.architectures if a["name"] == arch)

    def as_dict(self) -> dict[str, Any]:
        """Plain data that names the run (the run store's key, the summary's record)."""
        return {"name": self.name, "domain": self.domain, "dim": self.dim, "kind": self.kind,
                "sample_sizes": list(self.sample_sizes), "seeds": self.seeds,
                "n_test": self.n_test, "threshold": self.threshold,
                "architectures": [dict(a) for a in self.architectures],
                "targets": [dict(t) for t in self.targets], "finite": dict(self.finite),
                "checks": [dict(c) for c in self.checks]}


def parse_config(data: Mapping[str, Any], source: str = "config") -> JobConfig:
    """Validate ``data`` (the parsed TOML) key by key and build every architecture and target
    once, so that a bad configuration fails here, before any work."""
    _keys(data, _TOP, source)
    d = {**_TOP, **data}
    for k in ("dim", "sample_sizes", "architectures", "targets"):
        _need(d[k] is not None, f"{source}.{k}", "is required")
    name = _str(d["name"], f"{source}.name")
    _need(all(c.isalnum() or c in "-_." for c in name), f"{source}.name",
          f"must use letters, digits, '-', '_' or '.', got {name!r}")
    domain = _str(d["domain"], f"{source}.domain", DOMAINS)
    dim = _int(d["dim"], f"{source}.dim")
    kind = _str(d["kind"], f"{source}.kind", KINDS)
    sizes = _ints(d["sample_sizes"], f"{source}.sample_sizes")
    seeds = _int(d["seeds"], f"{source}.seeds")
    n_test = _int(d["n_test"], f"{source}.n_test")
    thr = d["threshold"]
    _need(isinstance(thr, (int, float)) and not isinstance(thr, bool) and 0 < thr < 1,
          f"{source}.threshold", f"must be a number in (0, 1), got {thr!r}")

    archs, objs = [], {}
    _need(isinstance(d["architectures"], list) and d["architectures"], f"{source}.architectures",
          "must be a non-empty list of tables ([[architectures]])")
    for i, a in enumerate(d["architectures"]):
        where = f"{source}.architectures[{i}]"
        _need(isinstance(a, Mapping), where, "must be a table")
        nm = _str(a.get("name"), f"{where}.name")
        _need(nm not in objs, f"{where}.name", f"repeats {nm!r}")
        typ = _str(a.get("type"), f"{where}.type", ARCHITECTURE_TYPES)
        maxdeg = _int(a.get("max_degree", 4), f"{where}.max_degree")
        params = {k: v for k, v in a.items() if k not in ("name", "type", "max_degree")}
        try:
            arch = ARCHITECTURE_TYPES[typ](**_tuples(params))
            arch.input_shape(dim)
        except TypeError as e:
            raise ConfigError(f"{where}: {e}") from None
        except ValueError as e:
            raise ConfigError(f"{where} ({nm}): {e}") from None
        objs[nm] = arch
        archs.append({"name": nm, "type": typ, "max_degree": maxdeg, "params": dict(params)})

    tgts, tnames = [], set()
    _need(isinstance(d["targets"], list) and d["targets"], f"{source}.targets",
          "must be a non-empty list of tables ([[targets]])")
    for i, t in enumerate(d["targets"]):
        where = f"{source}.targets[{i}]"
        _need(isinstance(t, Mapping), where, "must be a table")
        nm = _str(t.get("name"), f"{where}.name")
        _need(nm not in tnames, f"{where}.name", f"repeats {nm!r}")
        typ = _str(t.get("type"), f"{where}.type", TARGET_TYPES)
        _need("patch_dim" in t, f"{where}.patch_dim", "is required")
        params = {k: v for k, v in t.items() if k not in ("name", "type")}
        if typ == "degrees":
            _need(isinstance(params.get("degrees"), Mapping), f"{where}.degrees",
                  "must be a table {patch = degree, ...}")
            params["degrees"] = {int(k): v for k, v in params["degrees"].items()}
        try:
            p = _tuples(params)
            target = TARGET_TYPES[typ](domain, dim, p.pop("patch_dim"), name=nm, **p)
        except TypeError as e:
            raise ConfigError(f"{where}: {e}") from None
        except ValueError as e:
            raise ConfigError(f"{where} ({nm}): {e}") from None
        for an, arch in objs.items():
            try:
                target.arch_degrees(arch)
            except ValueError as e:
                raise ConfigError(f"{where} ({nm}) on architecture {an!r}: {e}") from None
        tnames.add(nm)
        tgts.append({"name": nm, "type": typ, "params": dict(params)})

    fin = d["finite"]
    if fin:
        where = f"{source}.finite"
        _keys(fin, _FINITE, where)
        fin = {**_FINITE, **fin}
        fin = {"arch": _str(fin["arch"], f"{where}.arch", objs),
               "target": _str(fin["target"], f"{where}.target", tnames),
               "sample_sizes": list(_ints(fin["sample_sizes"], f"{where}.sample_sizes")),
               "widths": list(_ints(fin["widths"], f"{where}.widths")),
               "seeds": _int(fin["seeds"], f"{where}.seeds")}

    checks = []
    _need(isinstance(d["checks"], list), f"{source}.checks", "must be a list of tables")
    for i, c in enumerate(d["checks"]):
        where = f"{source}.checks[{i}]"
        _need(isinstance(c, Mapping), where, "must be a table")
        typ = _str(c.get("type"), f"{where}.type", CHECK_TYPES)
        _keys(c, ("type", *CHECK_TYPES[typ]), where)
        for k in CHECK_TYPES[typ]:
            _need(k in c, f"{where}.{k}", "is required")
            if k in ("better", "worse", "arch"):
                _str(c[k], f"{where}.{k}", objs)
            elif k == "target":
                _str(c[k], f"{where}.{k}", tnames)
            elif k == "max":
                _need(isinstance(c[k], (int, float)) and c[k] > 0, f"{where}.max",
                      f"must be a positive number, got {c[k]!r}")
        if typ == "finite_gap_shrinks":
            _need(bool(fin), where, "needs a [finite] table")
        checks.append(dict(c))

    return JobConfig(name, domain, dim, kind, sizes, seeds, n_test, float(thr), tuple(archs),
                     tuple(tgts), dict(fin), tuple(checks),
                     *check_resources(d["memory_budget"], d["store"], d["client"], source))


def check_resources(memory_budget: Any, store: Any, client: Any, source: str = "config"
                    ) -> tuple[int | None, str | None, str | None]:
    """(memory_budget in bytes, store, client), each None when absent; a bad one raises
    :class:`ConfigError` naming it (the CLI flags go through here too)."""
    if memory_budget is not None:
        try:
            memory_budget = parse_bytes(memory_budget, f"{source}.memory_budget")
        except (TypeError, ValueError) as e:
            raise ConfigError(str(e)) from None
    if store is not None:
        _str(store, f"{source}.store")
    if client is not None:
        _str(client, f"{source}.client", CLIENTS)
    return memory_budget, store, client


def load_config(path: str | Path) -> JobConfig:
    """Read and validate a TOML configuration file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} is not valid TOML: {e}") from None
    return parse_config(data, source=path.name)
