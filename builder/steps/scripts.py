"""The executables that come with an image (the stream, copy-to-registry,
copyTo and friends, prefetch): each a Python script bound to its arguments
that calls the command line of this project with the user's after them.

Every one runs ``python3 -IBS``: isolated (no PYTHON* variables, no user
site), no bytecode written (the builder in the store has its own,
selfcompile.py), and no ``site``: the builder needs only the standard
library, and site's ``.pth`` files would cost milliseconds of every run.
"""

from __future__ import annotations

import os
from typing import Sequence

__all__ = ["script_text", "write_bin", "write_executable"]


def script_text(python: str, src: str, comments: Sequence[str], bound: str, prog: str, setup: str = "") -> str:
    """A script that runs ``main([BOUND, *sys.argv[1:]], prog=PROG)``;
    ``bound`` is the Python source of the bound arguments, ``setup`` lines
    run first. Ctrl-C while Python still loads the builder ends it as
    Ctrl-C does later: exit 130, no traceback. (Not in Python's own start,
    before the script runs: a Ctrl-C there is CPython's to handle.)"""
    return "".join(
        (
            f"#!{python} -IBS\n",
            *(f"# {line}\n" for line in comments),
            "try:\n",
            "    import os, sys\n",
            *(f"    {line}\n" for line in setup.splitlines()),
            f"    sys.path.insert(0, {src!r})\n",
            "    from builder.cli import main\n",
            "except KeyboardInterrupt:\n",
            "    raise SystemExit(130)\n",
            f"sys.exit(main([{bound}, *sys.argv[1:]], prog={prog!r}))\n",
        )
    )


def write_executable(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o555)


def write_bin(out: str, program: str, text: str) -> None:
    """``out/bin/program``, the only file of ``out``."""
    os.makedirs(os.path.join(out, "bin"))
    write_executable(os.path.join(out, "bin", program), text)
