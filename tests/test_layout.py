"""The house rules, checked on the source: the core never imports a study, a study uses only
the core's public names, scripts load nothing by path, and ruff is clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "infwidth"


def _imports(path: Path, root: Path = ROOT) -> list[tuple[str, tuple[str, ...], int]]:
    """(module, imported names, line) for every import in ``path``, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = ".".join(path.relative_to(root).with_suffix("").parts)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, (), node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = here.split(".")[: -node.level]
                mod = ".".join(base + ([mod] if mod else []))
            out.append((mod, tuple(a.name for a in node.names), node.lineno))
    return out


def core_imports_of_studies(root: Path = ROOT) -> list[str]:
    """Every import of ``infwidth.studies`` from a module of the core under ``root``."""
    pkg = root / "infwidth"
    core = [p for p in pkg.rglob("*.py") if "studies" not in p.relative_to(pkg).parts]
    return [f"{p.relative_to(root)}:{line} imports {mod}"
            for p in core for mod, names, line in _imports(p, root)
            if mod.startswith("infwidth.studies")
            or (mod == "infwidth" and "studies" in names)]


def test_the_core_never_imports_a_study():
    bad = core_imports_of_studies()
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("line", ["from infwidth.studies.depth_cutoff import maps",
                                  "import infwidth.studies.width_power_law",
                                  "from ..studies import sequential_vs_parallel",
                                  "from infwidth import studies"])
def test_the_check_sees_a_core_module_that_imports_a_study(tmp_path, line):
    probe = tmp_path / "infwidth" / "kernels" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(line + "\n")
    assert [v.split(":")[0] for v in core_imports_of_studies(tmp_path)] == \
        ["infwidth/kernels/probe.py"]


def test_studies_use_only_public_core_names():
    studies = PKG / "studies"
    bad = []
    for p in studies.rglob("*.py"):
        study = p.relative_to(studies).parts[0].removesuffix(".py")
        for mod, names, line in _imports(p):
            if not mod.startswith("infwidth") or mod.startswith(f"infwidth.studies.{study}"):
                continue
            private = [n for n in names if n.startswith("_")]
            if private or mod.startswith("infwidth.studies."):
                bad.append(f"{p.relative_to(ROOT)}:{line} from {mod} import {private or names}")
    assert not bad, "\n".join(bad)


def test_every_study_is_importable_by_name():
    import importlib

    for p in sorted((PKG / "studies").iterdir()):
        if p.name.startswith("_"):
            continue
        name = p.name.removesuffix(".py")
        assert importlib.import_module(f"infwidth.studies.{name}").__doc__


def test_the_public_api_is_small():
    import infwidth as iw

    public = [n for n in dir(iw) if not n.startswith("_")]
    assert len(public) <= 35, public
    for name in iw.__all__:
        assert hasattr(iw, name), name


def test_no_script_loads_code_by_path_or_edits_sys_path():
    scripts = [*ROOT.glob("benchmarks/*.py"), *ROOT.glob("paper_figures/*.py"),
               *PKG.rglob("*.py")]
    bad = [f"{p.relative_to(ROOT)}" for p in scripts
           if any(s in p.read_text() for s in ("sys.path.insert", "spec_from_file_location"))]
    assert not bad, bad


@pytest.mark.skipif(shutil.which("ruff") is None and
                    subprocess.call([sys.executable, "-m", "ruff", "--version"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0,
                    reason="ruff is not installed (pip install -e '.[test]' installs it)")
def test_ruff_is_clean():
    """pyflakes, import order and line length 100 (the configuration in pyproject.toml)."""
    r = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]


# Stages, lowest first: a module may import from its own stage and the ones below it only.
STAGES = (("validation", "_nt_compat", "_json"), ("architectures",), ("data",), ("kernels",),
          ("eigenspaces",), ("learning",), ("io",))
_RANK = {name: i for i, names in enumerate(STAGES) for name in names}
# Imports run inside a function, from a lower stage to a higher one, allowed by name: a thin
# method that hands its work to the stage above (plotting lives above the numerics).
DEFERRED_UP = {("infwidth/eigenspaces/engine.py", "infwidth.io.plots")}


def _stage(module: str) -> int | None:
    """The stage of ``infwidth.<sub>...`` (None: the package itself, studies, non-infwidth)."""
    parts = module.split(".")
    return _RANK.get(parts[1]) if parts[0] == "infwidth" and len(parts) > 1 else None


def _imports_with_scope(path: Path, root: Path) -> list[tuple[str, int, bool]]:
    """(module, line, deferred) for every import of ``path``; ``from infwidth import x`` counts
    as an import of ``infwidth.x``; ``deferred``: the import is inside a function."""
    tree = ast.parse(path.read_text(), filename=str(path))
    deferred = {id(n) for f in ast.walk(tree)
                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    by_node = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            by_node.setdefault(node.lineno, id(node) in deferred)
    out = []
    for mod, names, line in _imports(path, root):
        mods = [f"infwidth.{n}" for n in names] if mod == "infwidth" and names else [mod]
        out += [(m, line, by_node[line]) for m in mods]
    return out


def upward_imports(root: Path = ROOT) -> list[str]:
    """Every import from a lower stage to a higher one under ``root / "infwidth"`` (the
    deferred ones named in :data:`DEFERRED_UP` excepted)."""
    bad = []
    for p in sorted((root / "infwidth").rglob("*.py")):
        rel = p.relative_to(root)
        here = _stage(".".join(rel.with_suffix("").parts))
        if here is None:
            continue
        for mod, line, deferred in _imports_with_scope(p, root):
            there = _stage(mod)
            if there is not None and there > here \
                    and not (deferred and (rel.as_posix(), mod) in DEFERRED_UP):
                bad.append(f"{rel}:{line} ({STAGES[here][0]}) imports {mod} "
                           f"({STAGES[there][0]}){' inside a function' if deferred else ''}")
    return bad


def test_data_flows_one_way():
    """validation/_nt_compat/_json → architectures → data → kernels → eigenspaces → learning →
    io: no module imports from a stage above its own."""
    bad = upward_imports()
    assert not bad, "\n".join(bad)


def test_every_stage_and_allowed_deferred_import_exists():
    for names in STAGES:
        for name in names:
            assert (PKG / name).is_dir() or (PKG / f"{name}.py").is_file(), name
    top = {p.name.removesuffix(".py") for p in PKG.iterdir()
           if not p.name.startswith("__") and p.name != "studies"
           and (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert top == set(_RANK), top ^ set(_RANK)  # a new subpackage needs a stage
    for path, mod in DEFERRED_UP:  # each exception is still needed, and still deferred
        found = [d for m, _, d in _imports_with_scope(ROOT / path, ROOT) if m == mod]
        assert found and all(found), (path, mod)


@pytest.mark.parametrize("where, line, flagged", [
    ("kernels", "from infwidth.io.runstore import canonical_json", True),
    ("kernels", "from ..eigenspaces import engine", True),
    ("data", "from infwidth import kernel", False),  # the package itself: no stage
    ("data", "from infwidth import learning", True),
    ("eigenspaces", "def f():\n    from infwidth.io.outputs import write_png", True),
    ("eigenspaces", "from infwidth.kernels.engine import kernel", False),
    ("io", "from infwidth.eigenspaces.engine import Spectrum", False),
    ("validation", "import infwidth.architectures", True),
])
def test_the_stage_check_sees_an_upward_import(tmp_path, where, line, flagged):
    probe = tmp_path / "infwidth" / (f"{where}.py" if where == "validation"
                                     else f"{where}/probe.py")
    probe.parent.mkdir(parents=True, exist_ok=True)
    probe.write_text(line + "\n")
    assert bool(upward_imports(tmp_path)) == flagged


def test_one_definition_of_each_shared_knob():
    """KINDS, DTYPES, the memory budget, canonical JSON and the kind/dtype checks are defined
    once (validation.py, _json.py) and imported everywhere else, private copies included."""
    homes = {"KINDS": "validation", "DTYPES": "validation", "DEFAULT_MEMORY_BUDGET": "validation",
             "check_kinds": "validation", "check_dtype": "validation",
             "check_architecture": "validation", "canonical_json": "_json"}
    found: dict[str, list[str]] = {}
    for p in sorted(PKG.rglob("*.py")):
        tree = ast.parse(p.read_text(), filename=str(p))
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names = [t.id for t in targets if isinstance(t, ast.Name)]
            else:
                continue
            for name in names:
                bare = name.lstrip("_").removeprefix("NATIVE_")
                if bare in homes:
                    found.setdefault(bare, []).append(
                        f"{p.relative_to(PKG).with_suffix('').as_posix()}:{name}")
    assert {k: v for k, v in found.items() if v != [f"{homes[k]}:{k}"]} == {}
