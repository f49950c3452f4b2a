"""The end-to-end tests: real nix-build, podman, skopeo, umoci, a registry."""

import os
import shutil
import subprocess
import sys

import pytest

E2E = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, E2E)

TOOLS = ("nix-build", "podman", "skopeo", "umoci")

# Every Nix build of the tests runs in Nix's sandbox, as builds do on Linux
# by default: it sees the store and its build directory, nothing else. This
# applies to each nix-build, nix-instantiate and nix the tests start,
# whatever /etc/nix/nix.conf says, and without a silent fallback to an
# unsandboxed build. DOCKERTOOLS_TEST_SANDBOX=false runs them without it.
SANDBOX = os.environ.get("DOCKERTOOLS_TEST_SANDBOX", "true")
if SANDBOX not in ("true", "false"):
    raise pytest.UsageError(f"DOCKERTOOLS_TEST_SANDBOX must be true or false, got {SANDBOX!r}")
os.environ["NIX_CONFIG"] = os.environ.get("NIX_CONFIG", "") + f"\nsandbox = {SANDBOX}\nsandbox-fallback = false\n"


def pytest_collection_modifyitems(config, items):
    # These tests need the tools tests/setup.sh installs; without them they
    # fail loudly rather than skip, so a broken setup is seen. (tests/unit
    # alone needs none of them.)
    if not any(str(item.path).startswith(E2E + os.sep) for item in items):
        return
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise pytest.UsageError(
            f"missing {', '.join(missing)}: run bash tests/setup.sh first (or python3 -m pytest tests/unit)"
        )


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
