"""A standard-library-only builder of Docker and OCI images from Nix store paths.

Run as ``python3 -m builder <command>`` (or ``python3 path/to/builder``).
"""
