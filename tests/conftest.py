import os
import shutil
import subprocess
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
# The builder, and the helpers both suites share (tests/support).
sys.path.insert(0, os.path.dirname(TESTS))
sys.path.insert(0, os.path.join(TESTS, "support"))
sys.path.insert(0, TESTS)


def _have(tool: str) -> bool:
    return shutil.which(tool) is not None


def pytest_collection_modifyitems(config, items):
    # The end-to-end tests need the tools tests/setup.sh installs; without
    # them they fail loudly rather than skip, so a broken setup is seen.
    missing = [t for t in ("nix-build", "podman", "skopeo", "umoci") if not _have(t)]
    if missing:
        raise pytest.UsageError(f"missing {', '.join(missing)}: run bash tests/setup.sh first")


@pytest.fixture(scope="session")
def session_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("nix")


@pytest.fixture(scope="session", autouse=True)
def _podman_cleanup():
    yield
    # Images this session loaded are removed so repeated runs stay small;
    # other sessions' images are left alone.
    from nixhelpers import LOADED

    if LOADED:
        subprocess.run(["podman", "rmi", "-f", *sorted(LOADED)], capture_output=True)
