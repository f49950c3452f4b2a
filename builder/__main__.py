import sys

if not __package__:
    # Run as ``python3 /nix/store/...-src/builder``: import the package by
    # name from its parent directory, not its modules as top-level ones.
    import os

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.path.dirname(here))

from builder.cli import main

sys.exit(main(sys.argv[1:]))
