"""Registry credentials as docker and podman keep them: an auth file."""

from __future__ import annotations

import base64
import json


def auth_file(path, entries):
    """``{"auths": entries}`` written at ``path`` (a pathlib.Path)."""
    path.write_text(json.dumps({"auths": entries}))
    return str(path)


def b64(text):
    """user:password as an auth entry spells it."""
    return base64.b64encode(text.encode()).decode()
