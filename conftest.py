"""pytest setup shared by the tests and the package's doctests (run with --doctest-modules)."""

import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    """Every doctest sees ``iw`` (the public API) and ``np``, as a user's session would."""
    import numpy as np

    import infwidth as iw

    doctest_namespace.update(iw=iw, np=np)


# The longest tests (whole-script runs in subprocesses, 10-60 s each) go first, so that
# xdist's workers finish together instead of one running a minute-long test at the end.
_LONG_FIRST = ("tests/test_resume.py", "tests/test_paper_figures.py",
               "tests/test_learnability_store.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: not item.nodeid.startswith(_LONG_FIRST))
