"""The user commands' command lines: --help texts with examples and where
credentials come from, under the executable's own name; nix-prefetch-docker's
ways of naming an image."""

import argparse
import os
import signal
import subprocess
import sys

import pytest

from builder import cli, report
from builder.errors import BuildError


@pytest.fixture(autouse=True)
def loud():
    yield
    report.set_quiet(False)


def help_of(capsys, argv, prog=None):
    with pytest.raises(SystemExit) as e:
        cli.main(argv, prog=prog)
    assert e.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_stream_executable_help_names_itself(capsys):
    text = help_of(capsys, ["stream", "/nix/store/x-app-conf", "--help"], prog="stream-app")
    assert text.startswith("usage: stream-app [-h]")
    assert "builder" not in text and "description" not in text.split("options:")[0]
    assert "stream-app | podman load" in text
    assert "stream-app --push registry.example.com/team/app:1.0" in text
    assert "REGISTRY_USERNAME" in text and "~/.docker/config.json" in text and "podman login" in text


def test_copy_to_registry_help(capsys):
    text = help_of(capsys, ["push", "/nix/store/x-app-conf", "--help"], prog="copy-to-registry")
    assert text.startswith("usage: copy-to-registry [-h]")
    assert "copy-to-registry registry.example.com/team/app:1.0" in text
    assert "credentials" in text and "$REGISTRY_AUTH_FILE" in text
    assert "SOURCE" not in text and "source" not in text.split("options:")[0]


def test_prefetch_help_has_nix_prefetch_docker_options(capsys):
    text = help_of(capsys, ["prefetch", "--help"], prog="prefetch-image")
    for option in (
        "--image-name",
        "--image-tag",
        "--image-digest",
        "--os",
        "--arch",
        "--final-image-name",
        "--final-image-tag",
        "--json",
        "--quiet",
    ):
        assert option in text
    assert "prefetch-image nixos/nix 2.3" in text and "credentials" in text


def test_explain_help_has_examples(capsys):
    text = help_of(capsys, ["explain", "--help"])
    assert "python3 -m builder explain ./result --path busybox" in text


def test_usage_mistake_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["stream", "/nix/store/x-conf", "--compress", "xz"], prog="stream-app")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: argument --compress")


def ns(**kw):
    base = dict(image=None, tag_or_digest=None, image_name=None, image_tag=None, image_digest=None)
    return argparse.Namespace(**{**base, **kw})


D = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    "kw, ref",
    [
        ({"image": "nixos/nix:2.3"}, "nixos/nix:2.3"),
        ({"image": "nixos/nix", "tag_or_digest": "2.3"}, "nixos/nix:2.3"),
        ({"image": "nixos/nix", "tag_or_digest": D}, f"nixos/nix@{D}"),
        ({"image_name": "nixos/nix", "image_tag": "2.3"}, "nixos/nix:2.3"),
        ({"image_name": "nixos/nix", "image_digest": D}, f"nixos/nix@{D}"),
        ({"image_name": "nixos/nix", "image_tag": "2.3", "image_digest": D}, f"nixos/nix:2.3@{D}"),
        ({"image": "docker://localhost:5000/app"}, "localhost:5000/app"),
    ],
)
def test_prefetch_names_the_image_like_nix_prefetch_docker(kw, ref):
    assert cli._prefetch_ref(ns(**kw)) == ref


@pytest.mark.parametrize(
    "kw, message",
    [
        ({}, "give the image once"),
        ({"image": "a", "image_name": "b"}, "give the image once"),
        ({"image": "a:1", "image_tag": "2"}, "given twice"),
        ({"image": "a", "tag_or_digest": "1", "image_tag": "2"}, "given twice"),
        ({"image_name": "a", "tag_or_digest": "1"}, "with --image-name"),
    ],
)
def test_prefetch_refuses_ambiguous_names(kw, message):
    with pytest.raises(BuildError, match=message):
        cli._prefetch_ref(ns(**kw))


@pytest.mark.parametrize(
    "argv",
    [
        ["push", "desc", "reg.test/app:1", "--insecure", "--compress", "gzip"],
        ["stream", "desc", "--format", "oci", "-q"],
        ["copy", "desc", "oci:dir:1"],
        ["sbom", "desc", "--format", "cyclonedx"],
        ["explain", "desc", "--top", "3"],
        ["layers"],
    ],
)
def test_the_command_given_is_parsed_alone_as_the_whole_parser_parses_it(argv):
    """main() builds only the parser of the command given (argparse costs
    milliseconds per subcommand, on every push): the same arguments come out."""

    def parsed(parser):
        args = vars(parser.parse_args(argv))
        fn = args.pop("fn")
        return args, fn.__qualname__

    assert parsed(cli._parser(argv[0])) == parsed(cli._parser())
    assert argv[0] in cli._command_names()


def test_a_mistake_in_a_command_reads_the_same_with_its_parser_alone(capsys):
    for parser in (cli._parser("push"), cli._parser()):
        with pytest.raises(SystemExit):
            parser.parse_args(["push", "desc", "--bogus"])
    first, second = capsys.readouterr().err.split("error: ")[1:]
    assert first == second and "--bogus" in first


_TERMINATED = """
import argparse, sys, time
sys.path.insert(0, sys.argv[1])
from builder import cli
from builder.sinks.output import open_output

def slow(args):
    with open_output(sys.argv[2]) as sink:
        sink.write(b"half")
        sink.flush()
        print("writing", file=sys.stderr, flush=True)
        time.sleep(60)

class Parser:
    def parse_args(self, argv):
        return argparse.Namespace(fn=slow)

cli._parser = lambda only=None: Parser()
sys.exit(cli.main([]))
"""


def test_sigterm_removes_what_was_half_written(tmp_path):
    # As Ctrl-C does: the output is not left half-written, its temporary
    # file is gone, and the exit status says SIGTERM.
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = tmp_path / "image.tar"
    out.write_bytes(b"the last image")
    proc = subprocess.Popen([sys.executable, "-c", _TERMINATED, repo, str(out)], stderr=subprocess.PIPE)
    assert proc.stderr is not None
    assert proc.stderr.readline() == b"writing\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert proc.stderr.read() == b""
    assert out.read_bytes() == b"the last image"
    assert os.listdir(tmp_path) == ["image.tar"]


@pytest.mark.parametrize("prog", [None, "stream-app"])
def test_ctrl_c_while_the_command_line_is_read_is_quiet(capsys, monkeypatch, prog):
    def interrupted(self, args=None, namespace=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", interrupted)
    assert cli.main(["stream", "/nix/store/x-conf"], prog=prog) == 130
    assert capsys.readouterr() == ("", "")


def test_a_full_disk_or_a_file_size_limit_is_one_line(capsys, monkeypatch):
    def stream(*args, **kwargs):
        raise OSError(27, "File too large", "/out/blobs/sha256/.tmp-x")  # EFBIG

    monkeypatch.setattr("builder.steps.stream.stream", stream)
    assert cli.main(["stream", "/nix/store/x-conf"], prog="stream-app") == 1
    assert capsys.readouterr().err == "error: /out/blobs/sha256/.tmp-x: File too large (while writing the output)\n"
