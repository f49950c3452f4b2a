"""SBOMs and explain end to end: real nix-builds through the stand-in
nixpkgs, passthru.sbom and the stream's --sbom checked by the formats' own
validators (spdx-tools, CycloneDX's 1.5 JSON schema through
cyclonedx-python-lib) and against the image the stream writes; explain from
the command line and the stream; an SBOM attached to a pushed image in a
real registry (distribution 2.8: the referrers tag scheme), read back with
skopeo."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import urllib.request

import pytest
from nixhelpers import REPO, nix_build, nix_eval, read_archive, read_oci_archive, run_stream
from registry_fixture import open_registry  # noqa: F401 (fixture)
from test_sbom import PARSE_DRV_NAME, cyclonedx_errors, spdx_validation_messages

# chain-c -> chain-b -> chain-a in contents (chain-c with meta), a bare
# file, and a path only the config mentions.
IMAGE = """
let
  chainC = fixtures.chainC // {
    meta = { license = [ { spdxId = "MIT"; } { spdxId = "Apache-2.0"; } ]; homepage = "https://example.org/chain"; };
  };
  args = {
    name = "sbom-e2e"; tag = "1";
    contents = [ chainC fixtures.bareFile ];
    config.Cmd = [ "${fixtures.withSymlinks}/bin/data-link" ];
    maxLayers = 3;
  };
  stream = dockerTools.streamLayeredImage args;
  layered = dockerTools.buildLayeredImage args;
  cdx = dockerTools.streamLayeredImage (args // { sbomFormat = "cyclonedx"; });
  image = dockerTools.buildImage {
    name = "sbom-e2e-buildimage"; tag = "1";
    copyToRoot = [ chainC ];
    config.Cmd = [ "${fixtures.withSymlinks}/bin/data-link" ];
  };
in {
  inherit stream layered;
  spdx = stream.sbom;
  cyclonedx = cdx.sbom;
  layeredSbom = layered.sbom;
  buildImageSbom = image.sbom;
  buildImageConf = image.conf;
}
"""

NAMES = {"chain-a", "chain-b", "chain-c", "bare-file.txt", "with-symlinks"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sbom")
    return {
        attr: nix_build(IMAGE, tmp, attr) for attr in ("stream", "spdx", "cyclonedx", "layeredSbom", "buildImageSbom")
    }


def read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def store_packages(spdx: dict) -> dict:
    return {p["name"]: p for p in spdx["packages"] if p["SPDXID"] != "SPDXRef-Image"}


def test_passthru_sbom_spdx_is_valid_and_names_the_image(built, tmp_path):
    data = read(built["spdx"])
    assert built["spdx"].endswith("-sbom-e2e.spdx.json")
    assert spdx_validation_messages(data, tmp_path) == []
    doc = json.loads(data)
    packages = store_packages(doc)
    assert set(packages) == NAMES
    assert packages["chain-c"]["licenseDeclared"] == "Apache-2.0 AND MIT"
    assert packages["chain-c"]["homepage"] == "https://example.org/chain"
    assert packages["chain-a"]["licenseDeclared"] == "NOASSERTION" and "homepage" not in packages["chain-a"]
    # The checksum is the NAR hash Nix reports for the path.
    path = packages["chain-a"]["packageFileName"]
    nar = subprocess.run(["nix-store", "--dump", path], capture_output=True, check=True).stdout
    assert packages["chain-a"]["checksums"][0]["checksumValue"] == hashlib.sha256(nar).hexdigest()

    # The subject: the image ID is the config digest of what the stream
    # writes; the manifest digest that of the OCI archive's manifest.
    archive = read_archive(run_stream(built["stream"]))
    config_name = archive.manifest[0]["Config"]
    image_id = "sha256:" + config_name.split("/")[-1].replace(".json", "")
    image = next(p for p in doc["packages"] if p["SPDXID"] == "SPDXRef-Image")
    assert image_id in image["comment"]
    oci = read_oci_archive(run_stream(built["stream"], "--format", "oci"))
    assert image["checksums"][0]["checksumValue"] == oci.image.manifest_digest.split(":")[1]
    assert doc["creationInfo"]["created"] == archive.config["created"]


def test_passthru_sbom_cyclonedx_is_valid(built):
    data = read(built["cyclonedx"])
    assert built["cyclonedx"].endswith("-sbom-e2e.cdx.json")
    assert cyclonedx_errors(data) is None
    doc = json.loads(data)
    assert {c["name"] for c in doc["components"]} == NAMES
    chain_c = next(c for c in doc["components"] if c["name"] == "chain-c")
    assert chain_c["licenses"] == [{"expression": "Apache-2.0 AND MIT"}]
    deps = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    image_deps = {c.rsplit("-", 1)[-1] for c in deps[doc["metadata"]["component"]["bom-ref"]]}
    assert image_deps == {"c", "symlinks", "file.txt"}  # chain-c, with-symlinks, bare-file.txt


def test_stream_sbom_matches_passthru_and_is_reproducible(built, tmp_path):
    out = tmp_path / "sbom.json"
    subprocess.run([built["stream"], "--sbom", str(out)], check=True)
    assert read(out) == read(built["spdx"])
    r = subprocess.run([built["stream"], "--sbom", "-", "--sbom-format", "cyclonedx"], capture_output=True, check=True)
    assert r.stdout == read(built["cyclonedx"])
    # Layers and config are not touched by an SBOM's format.
    assert read(built["layeredSbom"]) == read(built["spdx"])


def test_build_image_sbom_lists_the_copied_closure(built, tmp_path):
    data = read(built["buildImageSbom"])
    assert spdx_validation_messages(data, tmp_path) == []
    assert set(store_packages(json.loads(data))) == {"chain-a", "chain-b", "chain-c", "with-symlinks"}


def test_explain_command_and_stream_option(built):
    cmd = [sys.executable, "-m", "builder", "explain", built["stream"], "--path", "chain-a"]
    text = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "sbom-e2e:1" in text and "Layers, bottom first:" in text and "Largest store paths" in text
    assert "is in the image:\n  contents: /nix/store/" in text and "-chain-c\n    -> " in text
    r = subprocess.run([built["stream"], "--explain", "--json", "--path", "chain-a"], capture_output=True, check=True)
    doc = json.loads(r.stdout)
    chain = doc["why"]["chains"][0]
    assert chain["origin"] == "contents"
    assert [p.split("-", 1)[1] for p in chain["chain"]] == ["chain-c", "chain-b", "chain-a"]
    assert len(doc["layers"]) == 3 and doc["layers"][-1]["label"] == "customisation layer"
    held = {p.split("-", 1)[1] for layer in doc["layers"] for p in layer["paths"]}
    assert held == NAMES
    r = subprocess.run([built["stream"], "--explain", "--path", "with-symlinks"], capture_output=True, text=True)
    assert r.returncode == 0 and "config: /nix/store/" in r.stdout


def test_explain_and_sbom_refuse_other_stream_options(built):
    r = subprocess.run([built["stream"], "--explain", "--output", "/tmp/x"], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("error: --explain and --sbom")
    r = subprocess.run([built["stream"], "--path", "chain-a"], capture_output=True, text=True)
    assert r.returncode == 1 and "go with --explain" in r.stderr
    r = subprocess.run([built["stream"], "--explain", "--path", "openssl"], capture_output=True, text=True)
    assert r.returncode == 1 and "no store path in the image matches 'openssl'" in r.stderr


def test_bad_sbom_format_is_an_evaluation_error(tmp_path):
    from nixhelpers import NixError

    with pytest.raises(NixError, match='sbomFormat "xml" is unknown'):
        nix_build('(dockerTools.streamLayeredImage { name = "x"; sbomFormat = "xml"; }).sbom', tmp_path)


def test_split_matches_builtins_parse_drv_name(tmp_path):
    names = [name for name, _, _ in PARSE_DRV_NAME]
    got = nix_eval(f"map builtins.parseDrvName (builtins.fromJSON ''{json.dumps(names)}'')", tmp_path)
    assert [(g["name"], g["version"]) for g in got] == [(n, v) for _, n, v in PARSE_DRV_NAME]


def skopeo_raw(ref: str) -> bytes:
    return subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"], capture_output=True, check=True
    ).stdout


def test_push_attaches_the_sbom_as_a_referrer(built, open_registry):  # noqa: F811
    ref = open_registry.ref("sbom/app:1")
    for fmt in ("spdx", "cyclonedx"):
        r = subprocess.run(
            [built["stream"], "--push", ref, "--insecure", "--attach-sbom", "--sbom-format", fmt],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
        digest = r.stdout.strip()
        assert f"SBOM ({fmt}) attached to {digest}" in r.stderr
    manifest = skopeo_raw(ref)
    assert "sha256:" + hashlib.sha256(manifest).hexdigest() == digest
    # distribution 2.8 has no referrers API: the tag scheme holds the index.
    index = json.loads(skopeo_raw(open_registry.ref("sbom/app:sha256-" + digest.split(":")[1])))
    assert [m["artifactType"] for m in index["manifests"]] == [
        "application/spdx+json",
        "application/vnd.cyclonedx+json",
    ]
    for entry, expected in zip(index["manifests"], [built["spdx"], built["cyclonedx"]]):
        artifact = json.loads(skopeo_raw(open_registry.ref(f"sbom/app@{entry['digest']}")))
        assert artifact["subject"] == {
            "mediaType": json.loads(manifest)["mediaType"],
            "digest": digest,
            "size": len(manifest),
        }
        assert artifact["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
        (layer,) = artifact["layers"]
        assert layer["mediaType"] == entry["artifactType"]
        url = f"http://{open_registry.host}/v2/sbom/app/blobs/{layer['digest']}"
        with urllib.request.urlopen(url) as resp:
            assert resp.read() == read(expected)  # pushed with the default form: the same SBOM
