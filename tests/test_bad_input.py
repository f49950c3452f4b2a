"""Bad input: one clear line naming the problem, a non-zero exit, no
traceback, and nothing in the store that looks like a finished image."""

import pytest

from nixhelpers import NixError, nix_build


def fails(expr, tmp_path) -> str:
    with pytest.raises(NixError) as err:
        nix_build(expr, tmp_path)
    stderr = err.value.stderr
    assert "Traceback" not in stderr
    return stderr


@pytest.mark.parametrize("args, message", [
    ('contents = [ "/tmp/not-in-store" ];',
     "contents element 0 (/tmp/not-in-store) is not a store path"),
    ('maxLayers = 1;', "maxLayers must be an integer of at least 2"),
    ('config = [ "Cmd" ];', "config must be an attribute set"),
    ('tag = "bad tag";', 'tag "bad tag" is not a valid tag'),
])
def test_evaluation_errors(args, message, tmp_path):
    stderr = fails(f'dockerTools.streamLayeredImage {{ name = "bad"; {args} }}', tmp_path)
    assert message in stderr


def test_invalid_name(tmp_path):
    stderr = fails('dockerTools.streamLayeredImage { name = "no spaces allowed"; }', tmp_path)
    assert 'name "no spaces allowed" is not a valid image name' in stderr


def test_unknown_compressor(tmp_path):
    stderr = fails('dockerTools.buildLayeredImage { name = "c"; compressor = "bz2"; }', tmp_path)
    assert 'compressor "bz2" is unknown' in stderr


def test_missing_store_path_in_contents(tmp_path):
    stderr = fails('''dockerTools.streamLayeredImage { name = "missing";
      contents = [ "/nix/store/00000000000000000000000000000000-missing" ]; }''', tmp_path)
    assert "contents: /nix/store/00000000000000000000000000000000-missing does not exist" in stderr


@pytest.mark.parametrize("base, message", [
    ("pkgs.hello", "a directory, but neither an OCI layout nor an image of this project"),
    ("fixtures.bareFile", "not an image archive"),
])
def test_from_image_not_an_archive(base, message, tmp_path):
    stderr = fails(f'dockerTools.streamLayeredImage {{ name = "b"; fromImage = {base}; }}', tmp_path)
    assert message in stderr


def test_from_image_not_a_derivation(tmp_path):
    stderr = fails('dockerTools.streamLayeredImage { name = "b"; fromImage = 3; }', tmp_path)
    assert "fromImage must be an image archive" in stderr


def test_no_layer_left_for_store_paths(tmp_path):
    stderr = fails('''let base = dockerTools.streamLayeredImage { name = "b"; contents = fixtures.many 3; maxLayers = 3; };
      in dockerTools.streamLayeredImage { name = "c"; fromImage = base; contents = [ pkgs.hello ]; maxLayers = 3; }''',
                   tmp_path)
    assert "maxLayers = 3: the base image has 3 layers" in stderr
