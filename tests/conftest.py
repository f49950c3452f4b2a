"""Both suites: the builder and tests/support importable, nothing else.

tests/unit needs only python3 (with pytest and hypothesis); the tool check
for the end-to-end tests is in tests/e2e/conftest.py.
"""

import os
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(TESTS))
sys.path.insert(0, os.path.join(TESTS, "support"))


import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _private_blob_cache(tmp_path_factory):
    """Pushes and streams remember compressed digests in $XDG_CACHE_HOME:
    the tests' own, never the user's."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old
