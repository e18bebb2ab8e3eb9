"""The reference site builds offline with warnings as errors (broken links, missing
cross-references, docstrings griffe cannot parse), and the rendered page of ``iw.kernel`` shows
its arguments, returns and example."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed "
                    "(pip install -e '.[docs]')")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                        str(out), "--config-file", str(ROOT / "mkdocs.yml")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    return out


def test_docs_build_strict(site):
    for page in ("index.html", "theory/index.html", "api/index.html", "changelog/index.html"):
        assert (site / page).exists(), page


def test_kernel_page_shows_arguments_returns_and_example(site):
    html = (site / "api" / "index.html").read_text()
    start = html.index('id="infwidth.kernel"')
    end = html.find('class="doc doc-object ', start)
    block = html[start:end if end > 0 else None]
    for what in ("Parameters:", "Returns:", "Examples:", "memory_budget", "&gt;&gt;&gt;"):
        assert what in block, what


def test_no_network_assets(site):
    html = (site / "index.html").read_text()
    for tag in ("<script src=\"http", "<link href=\"http", "<script src=\"//"):
        assert tag not in html, tag
