import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Every Nix build of the tests runs in Nix's sandbox, as builds do on Linux
# by default: it sees the store and its build directory, nothing else. This
# applies to each nix-build, nix-instantiate and nix the tests start,
# whatever /etc/nix/nix.conf says, and without a silent fallback to an
# unsandboxed build. DOCKERTOOLS_TEST_SANDBOX=false runs them without it.
SANDBOX = os.environ.get("DOCKERTOOLS_TEST_SANDBOX", "true")
if SANDBOX not in ("true", "false"):
    raise pytest.UsageError(f"DOCKERTOOLS_TEST_SANDBOX must be true or false, got {SANDBOX!r}")
os.environ["NIX_CONFIG"] = os.environ.get("NIX_CONFIG", "") + f"\nsandbox = {SANDBOX}\nsandbox-fallback = false\n"


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
