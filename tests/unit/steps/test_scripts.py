"""The executables that come with an image: each runs the command line with
its bound arguments first, and a Ctrl-C while Python loads the builder ends
it as one later does."""

from __future__ import annotations

import subprocess
import sys

import pytest

from builder.contract import CommandScriptSpec, CopyScriptSpec, PushScriptSpec, ScriptSpec
from builder.steps.copy import write_copy_script
from builder.steps.publish import write_command_script, write_push_script
from builder.steps.stream import write_stream_script

# A builder whose command line prints what it was given, and one whose import
# is interrupted (Ctrl-C arriving while Python loads the real one).
FAKE_CLI = "import sys\ndef main(argv, prog):\n    print(prog, argv)\n    return 3\n"
INTERRUPTED_CLI = "raise KeyboardInterrupt\n"


def _scripts(tmp_path, src: str):
    common = dict(python=sys.executable, src=src)
    stream = tmp_path / "0000hash-stream-app"  # a store path: the program is named without the hash
    write_stream_script(ScriptSpec(out=str(stream), description="/nix/store/x-conf", **common))
    yield stream, "stream-app ['stream', '/nix/store/x-conf', 'A', 'B']"
    write_push_script(PushScriptSpec(out=str(tmp_path / "push"), description="/nix/store/x-conf", **common))
    yield tmp_path / "push" / "bin" / "copy-to-registry", "copy-to-registry ['push', '/nix/store/x-conf', 'A', 'B']"
    spec = CopyScriptSpec(out=str(tmp_path / "podman"), description="/d", program="copy-to-podman", **common)
    write_copy_script(spec)
    expected = "copy-to-podman ['copy', '/d', '--transport', 'containers-storage', 'A', 'B']"
    yield tmp_path / "podman" / "bin" / "copy-to-podman", expected
    spec2 = CommandScriptSpec(out=str(tmp_path / "pf"), command="prefetch", program="prefetch-image", **common)
    write_command_script(spec2)
    yield tmp_path / "pf" / "bin" / "prefetch-image", "prefetch-image ['prefetch', 'A', 'B']"


@pytest.mark.parametrize("cli, code", [(FAKE_CLI, 3), (INTERRUPTED_CLI, 130)], ids=["runs", "interrupted"])
def test_every_script_runs_the_command_line_and_a_ctrl_c_while_loading_is_quiet(tmp_path, cli, code):
    fake = tmp_path / "src" / "builder"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "cli.py").write_text(cli)
    for script, expected in _scripts(tmp_path, str(tmp_path / "src")):
        r = subprocess.run([str(script), "A", "B"], capture_output=True, text=True)
        assert r.returncode == code, (script, r.stderr)
        assert r.stderr == ""
        assert r.stdout == (expected + "\n" if code == 3 else "")
