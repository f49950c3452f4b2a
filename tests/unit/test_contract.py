"""The contract between Nix and the builder (builder/contract.py), without
Nix: each step's .attrs.json read into a typed record, with one clear line
for an unknown key, a value of the wrong type, a missing key or another
contract version; and the version check of the builder's own documents."""

import dataclasses
import json
import os
from typing import get_args, get_origin, get_type_hints

import pytest
from hypothesis import given
from hypothesis import strategies as st

from builder import cli, contract
from builder.contract import (
    CONTRACT_VERSION,
    ArchiveSpec,
    CustomiseSpec,
    LayersSpec,
    check_version,
    load,
    nix_key,
    parse,
)
from builder.errors import SpecError

OUT = "/nix/store/00000000000000000000000000000000-out"


def nix_attrs(**attrs):
    """What Nix writes for a builder derivation: its own attributes and the step's."""
    return {
        "name": "x",
        "system": "x86_64-linux",
        "builder": "/nix/store/00000000000000000000000000000000-python3/bin/python3",
        "outputs": {"out": OUT},
        "contractVersion": CONTRACT_VERSION,
        **attrs,
    }


ARCHIVE = {"description": "/nix/store/00000000000000000000000000000000-conf", "compressor": "gz"}

LAYERS = {
    "imageName": "app",
    "tag": None,
    "created": "1970-01-01T00:00:01Z",
    "config": {"Cmd": ["/bin/sh"]},
    "architecture": "amd64",
    "variant": None,
    "os": "linux",
    "fromImage": None,
    "fromImageName": None,
    "fromImageTag": None,
    "maxLayers": 100,
    "customisationLayer": "/nix/store/00000000000000000000000000000000-custom",
    "includeStorePaths": True,
    "closure": [{"path": "/nix/store/00000000000000000000000000000000-a", "references": []}],
    "excludePaths": [],
    "layers": [],
    "uid": 0,
    "gid": 0,
    "uname": "root",
    "gname": "root",
    "mtime": "1970-01-01T00:00:01Z",
    "sbomContents": [],
}


def message(spec_type, data, origin=".attrs.json") -> str:
    with pytest.raises(SpecError) as err:
        parse(spec_type, data, origin)
    text = str(err.value)
    assert "\n" not in text
    return text


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, key",
    [
        ("from_image", "fromImage"),
        ("max_layers", "maxLayers"),
        ("include_nix_db", "includeNixDB"),
        ("config_json", "configJSON"),
        ("source_url", "sourceURL"),
        ("nixdb_closure", "nixdbClosure"),
        ("ssl_cert_file", "sslCertFile"),
        ("os", "os"),
    ],
)
def test_one_rule_names_every_attribute(field, key):
    assert nix_key(field) == key


# --- a good file ---------------------------------------------------------------------------


def test_read_into_a_typed_record():
    spec = parse(LayersSpec, nix_attrs(**LAYERS))
    assert spec.out == OUT
    assert spec.image_name == "app" and spec.max_layers == 100 and spec.tag is None
    assert spec.config == {"Cmd": ["/bin/sh"]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.max_layers = 3  # type: ignore[misc]


def test_defaults_filled_when_nix_leaves_a_key_out():
    spec = parse(ArchiveSpec, nix_attrs(**ARCHIVE))
    assert (spec.format, spec.layer_compression, spec.zstd) == ("docker", "none", None)
    spec = parse(ArchiveSpec, nix_attrs(**ARCHIVE, format="oci", layerCompression="zstd", zstd="/bin/zstd"))
    assert (spec.format, spec.layer_compression, spec.zstd) == ("oci", "zstd", "/bin/zstd")


def test_nix_own_attributes_are_not_the_step_business():
    data = nix_attrs(
        **ARCHIVE,
        exportReferencesGraph={"closure": ["/nix/store/x"]},
        preferLocalBuild=True,
        allowSubstitutes=False,
        outputHashMode="flat",
        impureEnvVars=["http_proxy"],
    )
    assert parse(ArchiveSpec, data).description == ARCHIVE["description"]


def test_load_reads_nix_attrs_json_file(tmp_path, monkeypatch):
    path = tmp_path / "attrs.json"
    path.write_text(json.dumps(nix_attrs(**ARCHIVE)))
    monkeypatch.setenv("NIX_ATTRS_JSON_FILE", str(path))
    assert load(ArchiveSpec).compressor == "gz"
    monkeypatch.delenv("NIX_ATTRS_JSON_FILE")
    monkeypatch.chdir(tmp_path)
    os.rename(path, tmp_path / ".attrs.json")
    assert load(ArchiveSpec).out == OUT


def test_load_in_a_sandbox_where_nix_attrs_json_file_names_the_outside_path(tmp_path, monkeypatch):
    # Nix 2.8 (NixOS/nix#6736): the variable names the build directory as
    # seen from outside the sandbox; the file is in $NIX_BUILD_TOP.
    top = tmp_path / "build"
    top.mkdir()
    (top / ".attrs.json").write_text(json.dumps(nix_attrs(**ARCHIVE)))
    monkeypatch.setenv("NIX_ATTRS_JSON_FILE", str(tmp_path / "nix-build-x.drv-0" / ".attrs.json"))
    monkeypatch.setenv("NIX_BUILD_TOP", str(top))
    monkeypatch.chdir(tmp_path)
    assert load(ArchiveSpec).out == OUT


# --- one line for each mistake -------------------------------------------------------------


def test_unknown_key_is_one_line():
    assert message(ArchiveSpec, nix_attrs(**ARCHIVE, compresor="gz"), "/build/.attrs.json") == (
        '/build/.attrs.json: unknown key "compresor" for step archive'
    )


def test_unknown_keys_are_named_together():
    assert message(ArchiveSpec, nix_attrs(**ARCHIVE, b=1, a=2)) == '.attrs.json: unknown keys "a", "b" for step archive'


def test_missing_required_key():
    data = nix_attrs(**ARCHIVE)
    del data["description"]
    assert message(ArchiveSpec, data) == '.attrs.json: missing key "description" for step archive'


def test_missing_output():
    data = nix_attrs(**ARCHIVE)
    del data["outputs"]
    assert message(ArchiveSpec, data) == ".attrs.json: no outputs.out (is __structuredAttrs set?)"


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("uid", "0", "uid: expected an integer, got str '0'"),
        ("uid", True, "uid: expected an integer, got bool True"),
        ("includeStorePaths", 1, "includeStorePaths: expected a boolean, got int 1"),
        ("imageName", None, "imageName: expected a string, got null"),
        ("tag", 5, "tag: expected a string or null, got int 5"),
        ("mtime", [], "mtime: expected a string or an integer, got list []"),
        ("config", [], "config: expected an attribute set, got list []"),
        ("layers", "/nix/store/x", "layers: expected a list, got str '/nix/store/x'"),
        ("excludePaths", ["/nix/store/a", 3], "excludePaths element 1: expected a string, got int 3"),
        ("closure", ["/nix/store/a"], "closure element 0: expected an attribute set, got str '/nix/store/a'"),
    ],
)
def test_wrong_type_names_the_argument(key, value, expected):
    assert message(LayersSpec, nix_attrs(**{**LAYERS, key: value})) == expected


@pytest.mark.parametrize(
    "spec_type, data, expected",
    [
        (
            ArchiveSpec,
            {**ARCHIVE, "compressor": "bz2"},
            'compressor: unknown value \'bz2\': expected "gz", "zstd" or "none"',
        ),
        (
            ArchiveSpec,
            {**ARCHIVE, "format": "oci-dir"},
            'format: unknown value \'oci-dir\': expected "docker" or "oci"',
        ),
        (
            LayersSpec,
            {**LAYERS, "layerCompression": "xz"},
            'layerCompression: unknown value \'xz\': expected "none", "gzip" or "zstd"',
        ),
        (ArchiveSpec, {**ARCHIVE, "compressor": 1}, 'compressor: unknown value 1: expected "gz", "zstd" or "none"'),
    ],
)
def test_closed_sets(spec_type, data, expected):
    assert message(spec_type, nix_attrs(**data)) == expected


@pytest.mark.parametrize(
    "version, said",
    [
        (CONTRACT_VERSION + 1, f"contractVersion {CONTRACT_VERSION + 1}"),
        (None, "no contractVersion"),
        ("1", "contractVersion '1'"),
        (True, "contractVersion True"),
        (1.0, "contractVersion 1.0"),
    ],
)
def test_other_contract_version(version, said):
    data = nix_attrs(**ARCHIVE, contractVersion=version)
    if version is None:
        del data["contractVersion"]
    assert message(ArchiveSpec, data).startswith(f".attrs.json: {said}, this builder reads {CONTRACT_VERSION} (")


def test_version_checked_before_keys():
    # A file of another version is reported as such, not as its unknown keys.
    text = message(ArchiveSpec, nix_attrs(**ARCHIVE, contractVersion=99, newKey=1))
    assert "contractVersion 99" in text and "newKey" not in text


@pytest.mark.parametrize(
    "content, expected",
    [(None, "not found (build commands run inside a Nix build"), ("{", "not JSON ("), ("[1]", "not a JSON object")],
)
def test_unreadable_file(tmp_path, content, expected):
    path = tmp_path / ".attrs.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SpecError, match=f"^{path}: {expected}".replace("(", r"\(")):
        load(ArchiveSpec, str(path))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6,
)


@given(key=st.sampled_from(sorted(LAYERS) + ["layerCompression"]), value=json_values)
def test_any_json_value_is_accepted_or_one_spec_error(key, value):
    try:
        spec = parse(LayersSpec, nix_attrs(**{**LAYERS, key: value}))
    except SpecError as e:
        assert str(e).startswith(key) and "\n" not in str(e)
    else:
        assert getattr(spec, next(f.name for f in dataclasses.fields(spec) if nix_key(f.name) == key)) == value


# --- the records themselves ----------------------------------------------------------------

SPECS = [cls for cls in vars(contract).values() if isinstance(cls, type) and issubclass(cls, contract.Spec)]
SPECS.remove(contract.Spec)


def _leaf_types(hint):
    args = get_args(hint)
    if get_origin(hint) is contract.Literal:
        return {str}
    if args:
        return set().union(*(_leaf_types(a) for a in args))
    return {get_origin(hint) or hint}


@pytest.mark.parametrize("spec_type", SPECS, ids=lambda t: t.__name__)
def test_records_use_only_json_types(spec_type):
    hints = get_type_hints(spec_type)
    for f in dataclasses.fields(spec_type):
        assert _leaf_types(hints[f.name]) <= {str, int, bool, list, dict, type(None), contract.Any}, f.name
        # Defaults are immutable: none is shared between records.
        assert f.default_factory is dataclasses.MISSING, f.name
        assert not isinstance(f.default, (list, dict)), f.name


def test_every_build_step_has_its_record_and_function():
    import importlib

    # Named, not imported: the CLI loads builder.contract only for a build step.
    assert {getattr(contract, spec) for _, _, spec, _ in cli._BUILD_STEPS} == set(SPECS)
    for name, target, spec_name, _ in cli._BUILD_STEPS:
        assert name.startswith(getattr(contract, spec_name).STEP)
        module, function = target.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(f"builder.{module}"), function))


def test_customise_record_from_nix():
    spec = parse(
        CustomiseSpec,
        nix_attrs(
            contents=[],
            configJSON="{}",
            extraCommands="",
            fakeRootCommands="",
            enableFakechroot=False,
            mtime=1,
            includeNixDB=False,
            nixUid=0,
            nixGid=0,
            bash="/bin/bash",
            tools=[],
        ),
    )
    assert (spec.fakeroot, spec.proot, spec.python, spec.nixdb_closure) == (None, None, None, None)


# --- the command line: one error line, exit 1 ----------------------------------------------


def test_cli_prints_one_error_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / ".attrs.json"
    path.write_text(json.dumps(nix_attrs(**{**ARCHIVE, "compressor": "bz2"})))
    monkeypatch.setenv("NIX_ATTRS_JSON_FILE", str(path))
    assert cli.main(["archive"]) == 1
    assert capsys.readouterr().err == 'error: compressor: unknown value \'bz2\': expected "gz", "zstd" or "none"\n'


# --- the builder's own documents -----------------------------------------------------------


def test_check_version():
    check_version({"version": 1}, 1, "description", "/x")
    for doc, got in (({"version": 2}, "2"), ({"version": True}, "True"), ({}, "None"), ([], "None")):
        with pytest.raises(SpecError) as err:
            check_version(doc, 1, "description", "/x")
        assert str(err.value) == f"/x: description version {got}, this builder reads 1 (rebuild it)"


def test_stored_documents_of_another_version(tmp_path):
    from builder.formats.description import read_description
    from builder.formats.load import MULTI_FILE, load_target
    from builder.steps.assemble import LAYERS_FILE, _read_layer_set

    (tmp_path / "image.json").write_text('{"version": 2, "layers": [], "repoTag": "a:b"}')
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SpecError, match=r"description version 2, this builder reads 1"):
        read_description(str(tmp_path))
    (tmp_path / LAYERS_FILE).write_text('{"version": 2, "layers": []}')
    with pytest.raises(SpecError, match=r"layers.json: buildLayer result version 2, this builder reads 1"):
        _read_layer_set(str(tmp_path))
    (tmp_path / MULTI_FILE).write_text('{"version": 3, "images": [], "repoTag": "a:b"}')
    with pytest.raises(SpecError, match=r"multi-platform description version 3, this builder reads 1"):
        load_target(str(tmp_path))
