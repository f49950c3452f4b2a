"""Bad input: one clear line naming the problem, a non-zero exit, no
traceback, and nothing in the store that looks like a finished image."""

import json
import os
import shutil
import stat
import subprocess
import sys
import threading

import pytest
from nixhelpers import REPO, NixError, nix_build, read_archive, run_stream


def fails(expr, tmp_path) -> str:
    with pytest.raises(NixError) as err:
        nix_build(expr, tmp_path)
    stderr = err.value.stderr
    assert "Traceback" not in stderr
    return stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ('contents = [ "/tmp/not-in-store" ];', "contents element 0 (/tmp/not-in-store) is not a store path"),
        ("maxLayers = 1;", "maxLayers must be an integer of at least 2"),
        ('config = [ "Cmd" ];', "config must be an attribute set"),
        ('tag = "bad tag";', 'tag "bad tag" is not a valid tag'),
    ],
)
def test_evaluation_errors(args, message, tmp_path):
    stderr = fails(f'dockerTools.streamLayeredImage {{ name = "bad"; {args} }}', tmp_path)
    assert message in stderr


@pytest.mark.parametrize("function", ["streamLayeredImage", "buildLayeredImage", "buildImage"])
def test_sbom_format_is_checked_with_the_image(function, tmp_path):
    # Not only when .sbom is asked for: building the image itself stops.
    stderr = fails(f'dockerTools.{function} {{ name = "s"; sbomFormat = "CycloneDX"; }}', tmp_path)
    assert 'sbomFormat "CycloneDX" is unknown' in stderr


def test_invalid_name(tmp_path):
    stderr = fails('dockerTools.streamLayeredImage { name = "no spaces allowed"; }', tmp_path)
    assert 'name "no spaces allowed" is not a valid image name' in stderr


def test_unknown_compressor(tmp_path):
    stderr = fails('dockerTools.buildLayeredImage { name = "c"; compressor = "bz2"; }', tmp_path)
    assert 'compressor "bz2" is unknown' in stderr


def test_missing_store_path_in_contents(tmp_path):
    stderr = fails(
        """dockerTools.streamLayeredImage { name = "missing";
      contents = [ "/nix/store/00000000000000000000000000000000-missing" ]; }""",
        tmp_path,
    )
    assert "contents: /nix/store/00000000000000000000000000000000-missing does not exist" in stderr


@pytest.mark.parametrize(
    "base, message",
    [
        ("pkgs.hello", "a directory, but neither an OCI layout nor an image of this project"),
        ("fixtures.bareFile", "not an image archive"),
    ],
)
def test_from_image_not_an_archive(base, message, tmp_path):
    stderr = fails(f'dockerTools.streamLayeredImage {{ name = "b"; fromImage = {base}; }}', tmp_path)
    assert message in stderr


def test_from_image_not_a_derivation(tmp_path):
    stderr = fails('dockerTools.streamLayeredImage { name = "b"; fromImage = 3; }', tmp_path)
    assert "fromImage must be an image archive" in stderr


def test_no_layer_left_for_store_paths(tmp_path):
    stderr = fails(
        """let base = dockerTools.streamLayeredImage { name = "b"; contents = fixtures.many 3; maxLayers = 3; };
      in dockerTools.streamLayeredImage { name = "c"; fromImage = base; contents = [ pkgs.hello ]; maxLayers = 3; }""",
        tmp_path,
    )
    assert "maxLayers = 3: the base image has 3 layers" in stderr


# --- argument types: caught at evaluation time, naming function and argument ---------------


@pytest.mark.parametrize(
    "fn, args, message",
    [
        ("streamLayeredImage", 'uid = "0";', 'uid must be an integer, got the string "0"'),
        (
            "streamLayeredImage",
            'enableFakechroot = "yes";',
            'enableFakechroot must be true or false, got the string "yes"',
        ),
        ("streamLayeredImage", 'includeStorePaths = "no";', "includeStorePaths must be true or false"),
        ("streamLayeredImage", "includeNixDB = 1;", "includeNixDB must be true or false, got the number 1"),
        ("streamLayeredImage", "architecture = 5;", "architecture must be a string, got the number 5"),
        ("streamLayeredImage", "passthru = 5;", "passthru must be an attribute set, got the number 5"),
        ("streamLayeredImage", "fromImageName = 5;", "fromImageName must be null or a string"),
        ("streamLayeredImage", "layers = pkgs.hello;", "layers must be a list, got a derivation"),
        ("streamLayeredImage", "mtime = [ ];", "mtime must be a string or an integer, got a list"),
        ("streamLayeredImage", "extraCommands = 5;", "extraCommands must be a string"),
        ("buildImage", 'uid = "0";', 'uid must be an integer, got the string "0"'),
        ("buildImage", "uid = -1;", "uid = -1 is out of range (0 to 4294967294)"),
        ("streamLayeredImage", "gid = 99999999999;", "gid = 99999999999 is out of range (0 to 4294967294)"),
        ("streamLayeredImage", "nixUid = -5;", "nixUid = -5 is out of range"),
        ("streamNixShellImage", "drv = pkgs.hello; uid = 4294967295;", "uid = 4294967295 is out of range"),
        ("buildImage", 'runAsRoot = [ "true" ];', "runAsRoot must be null or a string, got a list"),
        ("buildImage", 'keepContentsDirlinks = "yes";', "keepContentsDirlinks must be true or false"),
        (
            "buildImage",
            'copyToRoot = "/nonexistent";',
            "copyToRoot element 0 (/nonexistent) is not a store path or derivation",
        ),
        ("buildImage", "passthru = 5;", "passthru must be an attribute set"),
    ],
)
def test_argument_types(fn, args, message, tmp_path):
    stderr = fails(f'dockerTools.{fn} {{ name = "t"; {args} }}', tmp_path)
    assert f"dockerTools.{fn}: {message}" in stderr


def test_name_not_a_string(tmp_path):
    stderr = fails("dockerTools.buildLayeredImage { name = 5; }", tmp_path)
    assert "name must be a string, got the number 5" in stderr


@pytest.mark.parametrize("function", ["streamLayeredImage", "buildLayeredImage"])
def test_errors_name_the_function_called(function, tmp_path):
    stderr = fails(f'dockerTools.{function} {{ name = "n"; maxLayers = 1; }}', tmp_path)
    assert f"dockerTools.{function}: maxLayers must be an integer of at least 2" in stderr


# --- config: keys docker and podman read with a fixed type --------------------------------


@pytest.mark.parametrize(
    "config, message",
    [
        ("User = 1000;", 'config.User must be a string, like "1000:1000", got 1000'),
        ('ExposedPorts = [ "80/tcp" ];', 'config.ExposedPorts must be an attribute set, like { "80/tcp" = { }; }'),
        ("Labels.a = 5;", "config.Labels must be an attribute set of strings"),
        ("Entrypoint = [ 1 ];", "config.Entrypoint must be a list of strings"),
        ('Env = "A=B";', 'config.Env must be a list of "NAME=value" strings'),
    ],
)
def test_config_types(config, message, tmp_path):
    stderr = fails(f'dockerTools.streamLayeredImage {{ name = "c"; config = {{ {config} }}; }}', tmp_path)
    assert f"error: {message}" in stderr


def test_config_cmd_string_is_one_argument_as_docker_reads_it(tmp_path):
    # docker reads a string Cmd as a one-element list; podman would refuse the image.
    script = nix_build('dockerTools.streamLayeredImage { name = "c"; config.Cmd = "/bin/hello"; }', tmp_path)
    assert read_archive(run_stream(script)).config["config"]["Cmd"] == ["/bin/hello"]


# --- explicit layers ------------------------------------------------------------------------


def test_layers_element_not_a_build_layer(tmp_path):
    stderr = fails('dockerTools.streamLayeredImage { name = "l"; layers = [ pkgs.hello ]; }', tmp_path)
    assert "-hello-2.12 is not a buildLayer result (it has no layers.json)" in stderr


@pytest.mark.parametrize(
    "perm, message",
    [
        ('regex = "(("; mode = "0755";', "perms: entry 0: regex '((' is not a valid regular expression"),
        # checked at evaluation: one line from Nix
        ('mode = "abc";', 'buildLayer: perms element 0: mode "abc" is not an octal mode like "0644" or "644"'),
        ("mode = 999999;", 'buildLayer: perms element 0: mode must be a string like "0644", got the number 999999'),
        ("uid = -1;", "perms: entry 0: uid must be a non-negative integer, got -1"),
        ('uid = "0";', 'buildLayer: perms element 0: uid must be an integer, got the string "0"'),
        ('mod = "0755";', "buildLayer: perms element 0: unknown attribute mod"),
    ],
)
def test_build_layer_bad_perms(perm, message, tmp_path):
    stderr = fails(
        f"""dockerTools.buildLayer {{ deps = [ fixtures.chainA ];
      perms = [ {{ path = fixtures.chainA; {perm} }} ]; }}""",
        tmp_path,
    )
    assert message in stderr


@pytest.mark.parametrize(
    "args, message",
    [
        ("deps = pkgs.hello;", "dockerTools.buildLayer: deps must be a list, got a derivation"),
        ('deps = [ "/nonexistent" ];', "dockerTools.buildLayer: deps element 0 (/nonexistent) is not a store path"),
        (
            'perms = [ "x" ];',
            'dockerTools.buildLayer: perms element 0 must be an attribute set { path; regex; mode; ... }, got the string "x"',
        ),
        (
            'perms = [ { regex = ".*"; } ];',
            "perms element 0: path (the store path whose files it applies to) is missing",
        ),
    ],
)
def test_build_layer_bad_arguments(args, message, tmp_path):
    assert message in fails(f"dockerTools.buildLayer {{ {args} }}", tmp_path)


# --- base images that are not images --------------------------------------------------------

BAD_BASES = """
  sh = name: cmd: pkgs.runCommand name { } cmd;
  good = dockerTools.buildLayeredImage { name = "good"; contents = [ fixtures.chainA ]; compressor = "none"; };
  bases = {
    truncated = sh "truncated.tar" "head -c 5000 ${good} > $out";
    dangling = sh "dangling" "ln -s /nonexistent $out";
    entry = sh "entry.tar" "cd $TMPDIR; echo '[1]' > manifest.json; tar cf $out manifest.json";
    config = sh "config.tar" "cd $TMPDIR; echo '[{\\"Config\\":\\"c.json\\",\\"Layers\\":[]}]' > manifest.json; echo '[1]' > c.json; tar cf $out manifest.json c.json";
    zstd = sh "garbage.zst" "printf '\\\\050\\\\265\\\\057\\\\375garbage' > $out";
  };
"""


@pytest.mark.parametrize(
    "base, message",
    [
        ("truncated", "-truncated.tar: not a complete image archive (unexpected end of data)"),
        ("dangling", "-dangling: a symlink to /nonexistent, which does not exist"),
        ("entry", '-entry.tar: manifest.json entry 0 is not {"Config": FILE, "Layers": [FILE, ...]'),
        ("config", "-config.tar: c.json is not an image config (no rootfs.diff_ids list)"),
        # pkgs.zstd reads it, and says what is wrong
        ("zstd", "-garbage.zst: broken zstd data"),
    ],
)
def test_from_image_damaged(base, message, tmp_path):
    stderr = fails(
        f"""let {BAD_BASES} in
      dockerTools.streamLayeredImage {{ name = "b"; fromImage = bases.{base}; }}""",
        tmp_path,
    )
    assert message in stderr


def test_base_config_fields_of_the_wrong_type(tmp_path):
    from builder.errors import ImageFormatError
    from builder.model.config import image_config

    for base in ({"config": []}, {"history": {}}, []):
        with pytest.raises(ImageFormatError):
            image_config(
                base=base,
                run_config={},
                diff_ids=[],
                history=[],
                created="1970-01-01T00:00:01Z",
                architecture="amd64",
                os="linux",
                variant=None,
            )


def test_oci_index_entries_not_descriptors(tmp_path):
    from builder.errors import ImageFormatError
    from builder.formats.load import load_image

    (tmp_path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for manifests in ("[1]", '[{"digest": ["x"]}]', '[{"digest": "sha256:00", "platform": 3}]'):
        (tmp_path / "index.json").write_text(f'{{"manifests": {manifests}}}')
        with pytest.raises(ImageFormatError, match="manifests is not a list of descriptors"):
            load_image(str(tmp_path))


# --- other functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, message",
    [
        ("dockerTools.exportImage { fromImage = null; }", "dockerTools.exportImage: fromImage is null"),
        ("dockerTools.mergeImages [ ]", "dockerTools.mergeImages: takes a non-empty list of images, got [ ]"),
        (
            "dockerTools.mergeImages pkgs.hello",
            "dockerTools.mergeImages: takes a non-empty list of images, got a derivation",
        ),
        ('dockerTools.mergeImages [ "/tmp/x" ]', "dockerTools.mergeImages: each element must be an image archive"),
        (
            'dockerTools.streamMultiArchImage { name = "m"; images = [ pkgs.hello ]; passthru = 5; }',
            "dockerTools.streamMultiArchImage: passthru must be an attribute set",
        ),
    ],
)
def test_other_functions(expr, message, tmp_path):
    assert message in fails(expr, tmp_path)


PULL = 'imageDigest = "sha256:' + "0" * 64 + '"; hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";'


@pytest.mark.parametrize(
    "args, message",
    [
        ('imageName = "nixos/nix:2.3";', 'imageName "nixos/nix:2.3" carries a tag or digest'),
        ("imageName = 5;", "imageName must be a string, got the number 5"),
        ('imageName = "nixos/nix"; tlsVerify = "no";', 'tlsVerify must be true or false, got the string "no"'),
        ('imageName = "nixos/nix"; sha256 = "x";', "give one of hash, sha256 or outputHash, not several"),
        ('imageName = "nixos/nix"; arch = 5;', "arch must be a string, got the number 5"),
    ],
)
def test_pull_image_arguments(args, message, tmp_path):
    assert f"dockerTools.pullImage: {message}" in fails(f"dockerTools.pullImage {{ {PULL} {args} }}", tmp_path)


# --- user commands that fail ----------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, what",
    [
        (
            'dockerTools.streamLayeredImage { name = "f"; fakeRootCommands = "echo oops-from-script >&2; exit 3"; }',
            "fakeRootCommands",
        ),
        (
            'dockerTools.streamLayeredImage { name = "f"; extraCommands = "echo oops-from-script >&2; exit 3"; }',
            "extraCommands",
        ),
        ('dockerTools.buildImage { name = "f"; runAsRoot = "echo oops-from-script >&2; exit 3"; }', "runAsRoot"),
    ],
)
def test_failing_script(expr, what, tmp_path):
    stderr = fails(expr, tmp_path)
    assert "oops-from-script" in stderr  # the command's own error
    assert f"error: {what} failed with exit code 3" in stderr


# --- the stream executable ------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_stream(session_tmp):
    return nix_build(
        'dockerTools.streamLayeredImage { name = "small"; tag = "t"; contents = [ fixtures.chainA ]; }', session_tmp
    )


def one_error(r: subprocess.CompletedProcess) -> str:
    """A clean failure: non-zero exit, no traceback, the last line an error."""
    stderr = r.stderr.decode() if isinstance(r.stderr, bytes) else r.stderr
    assert r.returncode != 0
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], stderr
    return lines[-1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "bogus"], "error: argument --format: invalid choice: 'bogus'"),
        (["--output", "/nonexistent/dir/file"], "error: cannot write /nonexistent/dir/file: No such file or directory"),
        (["--format", "oci-dir"], "error: --format oci-dir writes a directory: give --output DIR"),
        (["--insecure"], "error: --insecure goes with --push"),
    ],
)
def test_stream_flags(small_stream, args, message):
    assert one_error(subprocess.run([small_stream, *args], capture_output=True)).startswith(message)


def test_stream_oci_dir_onto_a_file(small_stream, tmp_path):
    target = tmp_path / "file"
    target.write_text("keep")
    r = subprocess.run([small_stream, "--format", "oci-dir", "--output", str(target)], capture_output=True)
    assert one_error(r) == f"error: {target}: not a directory; an OCI layout is one"
    assert target.read_text() == "keep"


def test_stream_oci_dir_into_a_directory_of_other_files(small_stream, tmp_path):
    (tmp_path / "notes.txt").write_text("keep")
    r = subprocess.run([small_stream, "--format", "oci-dir", "--output", str(tmp_path)], capture_output=True)
    assert one_error(r) == (
        f"error: {tmp_path}: a directory with other files and no oci-layout file: "
        "give a new or empty directory, or an OCI layout"
    )
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_stream_to_a_full_stdout(small_stream):
    with open("/dev/full", "wb") as full:
        r = subprocess.run([small_stream], stdout=full, stderr=subprocess.PIPE)
    assert one_error(r) == "error: cannot write to stdout: No space left on device"


def test_stream_to_a_closed_stdout(small_stream):
    r = subprocess.run(f"{small_stream} >&-", shell=True, capture_output=False, stderr=subprocess.PIPE)
    assert one_error(r) == "error: stdout is closed: pipe the image (| podman load) or give --output FILE"


def test_stream_output_to_a_device_writes_to_it(small_stream, tmp_path):
    # --output /dev/null must write to the device, never replace it with a file.
    full = tmp_path / "full"
    try:
        os.mknod(full, 0o600 | stat.S_IFCHR, os.makedev(1, 7))  # what /dev/full is
    except PermissionError:
        pytest.skip("cannot make a device node here")
    r = subprocess.run([small_stream, "--output", str(full)], capture_output=True)
    assert one_error(r) == f"error: cannot write {full}: No space left on device"
    assert stat.S_ISCHR(os.lstat(full).st_mode)
    assert os.listdir(tmp_path) == ["full"]


def test_stream_output_to_a_fifo(small_stream, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo, "rb").read()))
    reader.start()
    r = subprocess.run([small_stream, "--output", str(fifo)], capture_output=True)
    reader.join(timeout=60)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert received[0] == run_stream(small_stream)


def test_stream_into_a_closed_pipe(tmp_path):
    # Bigger than a pipe's buffer, so the reader is gone before the end.
    script = nix_build('dockerTools.streamLayeredImage { name = "big"; contents = [ pkgs.hello ]; }', tmp_path)
    r = subprocess.run(
        f"{script} | head -c 10 > /dev/null; exit ${{PIPESTATUS[0]}}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
    )
    assert one_error(r) == "error: output pipe closed before the image was written"


def test_stream_damaged_description(small_stream, tmp_path):
    description = tmp_path / "desc"
    description.mkdir()
    (description / "config.json").write_text("{}")
    (description / "image.json").write_text('{"version": 1, "layers": [{}], "repoTag": "a:b"}')
    r = subprocess.run([sys.executable, "-m", "builder", "stream", str(description)], capture_output=True, cwd=REPO)
    assert one_error(r) == f"error: {description}: a damaged image description (no 'source' in it)"


def test_stream_store_path_missing(small_stream, tmp_path):
    # A description naming a store path that is gone (deleted by hand):
    # one line naming it, and no output file.
    source = open(small_stream).read().split("['stream', '")[1].split("'")[0]
    description = tmp_path / "desc"
    shutil.copytree(source, description)
    doc = json.loads((description / "image.json").read_text())
    store = next(e for e in doc["layers"] if e["source"]["kind"] == "store")
    gone = "/nix/store/00000000000000000000000000000000-gone"
    store["source"]["paths"] = [gone]
    (description / "image.json").chmod(0o644)
    (description / "image.json").write_text(json.dumps(doc))
    out = tmp_path / "out.tar"
    r = subprocess.run(
        [sys.executable, "-m", "builder", "stream", str(description), "--output", str(out)],
        capture_output=True,
        cwd=REPO,
    )
    assert one_error(r).startswith(f"error: {gone} is missing")
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["desc"]


@pytest.mark.parametrize("fn", ["streamLayeredImage", "buildImage"])
def test_unreadable_file_left_by_extra_commands(fn, tmp_path):
    stderr = fails(f'dockerTools.{fn} {{ name = "u"; extraCommands = "mkdir d; chmod 000 d"; }}', tmp_path)
    assert "error: cannot read /d to pack the layer (Permission denied)" in stderr
