"""A docker credential helper for tests: a real executable speaking the
protocol (``docker-credential-NAME get``, the server on stdin, JSON on
stdout), answering from a table and recording what it was asked."""

from __future__ import annotations

import json
import os
import sys


def install_helper(bindir, name, answers):
    """``bindir/docker-credential-NAME`` answering ``answers`` (server ->
    (Username, Secret)); other servers get the protocol's "not found". Each
    call appends its stdin to ``bindir/NAME.asked``. Returns that log path."""
    os.makedirs(bindir, exist_ok=True)
    table = os.path.join(bindir, f"{name}.json")
    asked = os.path.join(bindir, f"{name}.asked")
    with open(table, "w") as f:
        json.dump({server: {"Username": u, "Secret": s} for server, (u, s) in answers.items()}, f)
    path = os.path.join(bindir, f"docker-credential-{name}")
    with open(path, "w") as f:
        f.write(
            f"#!{sys.executable}\n"
            "import json, sys\n"
            "server = sys.stdin.read().strip()\n"
            f"open({asked!r}, 'a').write(' '.join(sys.argv[1:]) + ' ' + server + '\\n')\n"
            f"answer = json.load(open({table!r})).get(server)\n"
            "if answer is None:\n"
            "    print('credentials not found in native keychain')\n"
            "    sys.exit(1)\n"
            "answer['ServerURL'] = server\n"
            "print(json.dumps(answer))\n"
        )
    os.chmod(path, 0o755)
    return asked
