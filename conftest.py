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
