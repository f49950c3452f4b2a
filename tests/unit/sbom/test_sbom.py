"""SBOMs and explain, pure Python: a small fake closure graph written as a
description, the documents made from it checked field by field and by the
formats' own validators (spdx-tools; CycloneDX's 1.5 JSON schema as
cyclonedx-python-lib ships it), the chains explain prints, and the OCI
artifact that attaches an SBOM, against a scripted registry."""

from __future__ import annotations

import io
import json

import pytest
from httpanswer import Answer
from sbomcheck import PARSE_DRV_NAME, cyclonedx_errors, spdx_validation_messages

from builder.errors import SpecError
from builder.formats.description import read_description, store_source, write_description
from builder.model.image import OCI_INDEX, OCI_MANIFEST, Blob, canonical_json
from builder.model.reference import parse_reference
from builder.registry.client import RegistryClient
from builder.registry.referrers import EMPTY_CONFIG, attach, referrers_tag
from builder.sbom import render_sbom
from builder.sbom.contents import contents_from_graph, read_contents, split_store_name, store_name, write_contents
from builder.sbom.inventory import _timestamp, inventory_of, load_inventory
from builder.sinks.sink import MemorySink
from builder.steps.explain import explain, explanation, find_path, why_chains
from builder.steps.nixdb import nar_hash_to_base16
from builder.tar.tarstream import Stamp

S = "/nix/store/"
HELLO = S + "a" * 32 + "-hello-2.12"
GLIBC = S + "b" * 32 + "-glibc-2.37-8"
LIBIDN = S + "c" * 32 + "-libidn2-2.3.4"
TZDATA = S + "d" * 32 + "-tzdata-2024a"
CUSTOM = S + "e" * 32 + "-app-customisation-layer"
EXTRA = S + "f" * 32 + "-from-commands"
BASE = S + "g" * 32 + "-given-whole-1.0"


# --- names as Nix splits them -------------------------------------------------------------

# The same table is checked against builtins.parseDrvName in test_sbom_e2e.py.


@pytest.mark.parametrize("name, want_name, want_version", PARSE_DRV_NAME)
def test_split_store_name_is_parse_drv_name(name, want_name, want_version):
    assert split_store_name(name) == (want_name, want_version)


def test_store_name_drops_the_hash():
    assert store_name(HELLO) == "hello-2.12"
    assert store_name(HELLO + "/") == "hello-2.12"
    assert store_name("/not/a/store/path") == "path"


@pytest.mark.parametrize(
    "created, want",
    [
        ("1970-01-01T00:00:01Z", "1970-01-01T00:00:01Z"),
        ("2024-05-01T12:30:00.123456789Z", "2024-05-01T12:30:00Z"),
        ("2024-05-01T12:30:00+02:00", "2024-05-01T10:30:00Z"),
        ("2024-05-01T23:30:00-01:30", "2024-05-02T01:00:00Z"),
    ],
)
def test_timestamps_are_utc_to_the_second(created, want):
    assert _timestamp(created) == want


# --- a fake image ---------------------------------------------------------------------------


def nar(n: int) -> str:
    return "sha256:" + f"{n:02x}" * 32


def graph():
    """hello -> glibc, hello -> libidn2 -> glibc; the config mentions tzdata;
    the customisation layer refers to all of them and to a commands' output."""
    return [
        {"path": HELLO, "narHash": nar(1), "narSize": 300, "references": [HELLO, GLIBC, LIBIDN]},
        {"path": GLIBC, "narHash": nar(2), "narSize": 30_000, "references": [GLIBC]},
        {"path": LIBIDN, "narHash": nar(3), "narSize": 500, "references": [GLIBC]},
        {"path": TZDATA, "narHash": nar(4), "narSize": 2_000, "references": []},
        {"path": EXTRA, "narHash": nar(5), "narSize": 10, "references": []},
        {"path": CUSTOM, "narHash": nar(6), "narSize": 99, "references": [HELLO, TZDATA, EXTRA]},
    ]


CONFIG = {"Env": [f"TZDIR={TZDATA}/share/zoneinfo"], "Cmd": [f"{HELLO}/bin/hello"]}
CONTENTS = [{"path": HELLO, "licenses": ["GPL-3.0-or-later"], "homepage": "https://www.gnu.org/software/hello/"}]


def make_description(tmp_path, nodes=None, contents=CONTENTS, created="1970-01-01T00:00:01Z", record=True):
    """A description of four layers: a base layer given whole (BASE, not in
    the graph), glibc, the rest of the closure, the customisation layer."""
    out = tmp_path / "conf"
    stamp = Stamp(0, 0, "root", "root", 1)
    layers = [
        ([BASE], "sha256:" + "01" * 32),
        ([GLIBC], "sha256:" + "02" * 32),
        ([EXTRA, HELLO, LIBIDN, TZDATA], "sha256:" + "03" * 32),
    ]
    entries = [
        {"diffId": d, "size": 1024 * (i + 1), "source": store_source(p, stamp)} for i, (p, d) in enumerate(layers)
    ]
    entries.append(
        {
            "diffId": "sha256:" + "04" * 32,
            "size": 10240,
            "source": {
                "kind": "file",
                "path": CUSTOM + "/layer.tar",
                "offset": 0,
                "size": 10240,
                "encoding": "none",
                "storedDigest": "sha256:" + "04" * 32,
                "storedSize": 10240,
            },
        }
    )
    history = [{"created": created, "comment": "store paths"}] * 3 + [
        {"created": created, "comment": "customisation layer"}
    ]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": CONFIG,
        "rootfs": {"type": "layers", "diff_ids": [e["diffId"] for e in entries]},
        "history": history,
    }
    write_description(
        str(out), config_bytes=canonical_json(config), entries=entries, repo_tag="reg.example/team/app:1.0"
    )
    if record:
        rec = contents_from_graph(
            nodes if nodes is not None else graph(),
            contents=contents,
            helpers=[CUSTOM],
            config=CONFIG,
            nar_hash=nar_hash_to_base16,
        )
        write_contents(str(out), rec)
    return str(out)


def test_the_record_knows_roots_and_their_origins(tmp_path):
    conf = make_description(tmp_path)
    rec = read_contents(conf)
    assert sorted(rec.paths) == sorted([HELLO, GLIBC, LIBIDN, TZDATA, EXTRA])  # not the customisation layer
    assert rec.paths[HELLO].references == (GLIBC, LIBIDN)  # no self-reference
    assert {(r.path, r.origin) for r in rec.roots} == {(HELLO, "contents"), (TZDATA, "config"), (EXTRA, "commands")}
    hello = rec.root_of(HELLO)[0]
    assert hello.licenses == ("GPL-3.0-or-later",) and hello.homepage.startswith("https://")


def test_nix32_nar_hashes_become_hex(tmp_path):
    nodes = graph()
    nodes[1]["narHash"] = "sha256:" + "0" * 52
    conf = make_description(tmp_path, nodes)
    assert read_contents(conf).paths[GLIBC].nar_hash == "sha256:" + "00" * 32


def test_meta_that_is_not_an_identifier_or_url_is_dropped(tmp_path):
    conf = make_description(
        tmp_path, contents=[{"path": HELLO, "licenses": ["MIT", "not an id", 3], "homepage": "ftp:/x"}]
    )
    hello = read_contents(conf).root_of(HELLO)[0]
    assert hello.licenses == ("MIT",) and hello.homepage is None


# --- SPDX ------------------------------------------------------------------------------------


def spdx_of(conf, **kw) -> dict:
    return json.loads(render_sbom(load_inventory(conf, **kw), "spdx"))


def packages_by_name(doc):
    return {p["name"]: p for p in doc["packages"]}


def test_spdx_has_one_package_per_store_path(tmp_path):
    doc = spdx_of(make_description(tmp_path))
    by_name = packages_by_name(doc)
    assert set(by_name) == {
        "reg.example/team/app",
        "hello",
        "glibc",
        "libidn2",
        "tzdata",
        "from-commands",
        "given-whole",
    }
    hello = by_name["hello"]
    assert hello["versionInfo"] == "2.12" and hello["packageFileName"] == HELLO
    assert hello["checksums"] == [{"algorithm": "SHA256", "checksumValue": "01" * 32}]
    assert hello["licenseDeclared"] == "GPL-3.0-or-later" and hello["homepage"] == "https://www.gnu.org/software/hello/"
    assert hello["externalRefs"][0]["referenceLocator"] == "pkg:nix/hello@2.12"
    assert by_name["glibc"]["versionInfo"] == "2.37-8" and by_name["glibc"]["licenseDeclared"] == "NOASSERTION"
    assert by_name["tzdata"]["externalRefs"][0]["referenceLocator"] == "pkg:nix/tzdata@2024a"
    # A path no graph entry describes: named from its path, no checksum.
    assert "checksums" not in by_name["given-whole"] and by_name["given-whole"]["versionInfo"] == "1.0"


def test_spdx_describes_the_image_by_its_digests(tmp_path):
    conf = make_description(tmp_path)
    desc = read_description(conf)
    doc = spdx_of(conf)
    image = packages_by_name(doc)["reg.example/team/app"]
    inv = load_inventory(conf)
    assert inv.subject.image_id == desc.image.config_digest
    assert image["SPDXID"] == "SPDXRef-Image" and doc["documentDescribes"] == ["SPDXRef-Image"]
    assert image["checksums"][0]["checksumValue"] == inv.subject.manifest.digest.split(":")[1]
    assert image["primaryPackagePurpose"] == "CONTAINER" and image["versionInfo"] == "1.0"
    purl = image["externalRefs"][0]["referenceLocator"]
    assert purl == (
        f"pkg:oci/app@sha256%3A{inv.subject.manifest.digest.split(':')[1]}"
        "?arch=amd64&repository_url=reg.example/team/app&tag=1.0"
    )
    assert desc.image.config_digest in image["comment"]
    assert doc["creationInfo"]["created"] == "1970-01-01T00:00:01Z"


def test_spdx_relationships_are_the_reference_graph(tmp_path):
    doc = spdx_of(make_description(tmp_path))
    ids = {p["name"]: p["SPDXID"] for p in doc["packages"]}
    rels = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image") in rels
    assert (ids["hello"], "DEPENDS_ON", ids["glibc"]) in rels
    assert (ids["hello"], "DEPENDS_ON", ids["libidn2"]) in rels
    assert (ids["libidn2"], "DEPENDS_ON", ids["glibc"]) in rels
    for root in ("hello", "tzdata", "from-commands"):
        assert ("SPDXRef-Image", "DEPENDS_ON", ids[root]) in rels
    assert ("SPDXRef-Image", "DEPENDS_ON", ids["glibc"]) not in rels
    contained = {b for a, kind, b in rels if a == "SPDXRef-Image" and kind == "CONTAINS"}
    assert contained == {v for k, v in ids.items() if k != "reg.example/team/app"}
    assert doc["relationships"][1:] == sorted(
        doc["relationships"][1:], key=lambda r: (r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"])
    )


def test_sboms_are_reproducible_and_identified_by_content(tmp_path):
    a = render_sbom(load_inventory(make_description(tmp_path / "a")), "spdx")
    b = render_sbom(load_inventory(make_description(tmp_path / "b")), "spdx")
    assert a == b
    c = render_sbom(load_inventory(make_description(tmp_path / "c", contents=[])), "spdx")
    assert json.loads(a)["documentNamespace"] != json.loads(c)["documentNamespace"]
    x = render_sbom(load_inventory(make_description(tmp_path / "a")), "cyclonedx")
    y = render_sbom(load_inventory(make_description(tmp_path / "b")), "cyclonedx")
    assert x == y and json.loads(x)["serialNumber"].startswith("urn:uuid:")


def test_the_manifest_named_follows_the_compression_asked(tmp_path):
    conf = make_description(tmp_path)
    plain = load_inventory(conf).subject.manifest
    docker = load_inventory(conf, flavour="docker").subject.manifest
    assert plain.media_type == OCI_MANIFEST and docker.digest != plain.digest


def test_spdx_passes_spdx_tools_validation(tmp_path):
    data = render_sbom(load_inventory(make_description(tmp_path)), "spdx")
    assert spdx_validation_messages(data, tmp_path) == []


def test_validators_do_catch_a_broken_document(tmp_path):
    # The checks above mean something: a damaged document is reported.
    spdx = json.loads(render_sbom(load_inventory(make_description(tmp_path)), "spdx"))
    spdx["relationships"].append(
        {"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS", "relatedSpdxElement": "SPDXRef-Nowhere"}
    )
    assert spdx_validation_messages(json.dumps(spdx).encode(), tmp_path)
    cdx = json.loads(render_sbom(load_inventory(make_description(tmp_path)), "cyclonedx"))
    cdx["components"][0]["hashes"][0]["alg"] = "SHA-257"
    assert cyclonedx_errors(json.dumps(cdx).encode()) is not None


# --- CycloneDX ----------------------------------------------------------------------------------


def test_cyclonedx_components_and_dependencies(tmp_path):
    data = render_sbom(load_inventory(make_description(tmp_path)), "cyclonedx")
    assert cyclonedx_errors(data) is None
    doc = json.loads(data)
    assert doc["specVersion"] == "1.5" and doc["metadata"]["timestamp"] == "1970-01-01T00:00:01Z"
    image = doc["metadata"]["component"]
    assert image["type"] == "container" and image["version"] == "1.0"
    components = {c["bom-ref"]: c for c in doc["components"]}
    hello = components[HELLO]
    assert (hello["name"], hello["version"], hello["purl"]) == ("hello", "2.12", "pkg:nix/hello@2.12")
    assert hello["hashes"] == [{"alg": "SHA-256", "content": "01" * 32}]
    assert hello["licenses"] == [{"expression": "GPL-3.0-or-later"}]
    assert hello["externalReferences"] == [{"type": "website", "url": "https://www.gnu.org/software/hello/"}]
    assert "licenses" not in components[GLIBC]
    deps = {d["ref"]: d["dependsOn"] for d in doc["dependencies"]}
    assert deps[image["bom-ref"]] == sorted([HELLO, TZDATA, EXTRA])
    assert deps[HELLO] == [GLIBC, LIBIDN] and deps[GLIBC] == []
    assert set(deps) == set(components) | {image["bom-ref"]}


# --- explain ---------------------------------------------------------------------------------------


def test_why_chains_are_shortest_from_each_root(tmp_path):
    inv = load_inventory(make_description(tmp_path))
    assert why_chains(inv, GLIBC) == [{"root": HELLO, "origin": "contents", "chain": [HELLO, GLIBC]}]
    assert why_chains(inv, LIBIDN) == [{"root": HELLO, "origin": "contents", "chain": [HELLO, LIBIDN]}]
    assert why_chains(inv, TZDATA) == [{"root": TZDATA, "origin": "config", "chain": [TZDATA]}]
    assert why_chains(inv, BASE) == []


def test_why_chains_through_a_diamond_are_deterministic(tmp_path):
    # top -> left -> bottom, top -> right -> bottom, and a longer way round.
    top, left, right, bottom, deep = (
        S + c * 32 + "-" + n for c, n in zip("hijkl", ["top", "left", "right", "bottom", "deep"])
    )
    nodes = [
        {"path": top, "narHash": nar(1), "narSize": 1, "references": [right, left, deep]},
        {"path": left, "narHash": nar(2), "narSize": 1, "references": [bottom]},
        {"path": right, "narHash": nar(3), "narSize": 1, "references": [bottom]},
        {"path": deep, "narHash": nar(4), "narSize": 1, "references": [left]},
        {"path": bottom, "narHash": nar(5), "narSize": 1, "references": []},
        {"path": CUSTOM, "narHash": nar(6), "narSize": 1, "references": [top]},
    ]
    rec = contents_from_graph(nodes, contents=[{"path": top}], helpers=[CUSTOM], config={}, nar_hash=str)
    conf = make_description(tmp_path, record=False)
    write_contents(conf, rec)
    inv = inventory_of(read_description(conf), read_contents(conf))
    # Two shortest ways; the one through the smaller path name ("i..." < "j...").
    assert why_chains(inv, bottom) == [{"root": top, "origin": "contents", "chain": [top, left, bottom]}]


def test_find_path_takes_names_hashes_and_files(tmp_path):
    inv = load_inventory(make_description(tmp_path))
    assert find_path(inv, "glibc") == GLIBC
    assert find_path(inv, "glibc-2.37-8") == GLIBC
    assert find_path(inv, "c" * 32) == LIBIDN
    assert find_path(inv, HELLO + "/bin/hello") == HELLO
    assert find_path(inv, "libid") == LIBIDN  # a unique prefix
    with pytest.raises(SpecError, match="no store path"):
        find_path(inv, "openssl")
    with pytest.raises(SpecError, match="not in the image"):
        find_path(inv, S + "z" * 32 + "-other")


def test_find_path_lists_candidates_when_ambiguous(tmp_path):
    inv = load_inventory(make_description(tmp_path))
    with pytest.raises(SpecError) as e:
        find_path(inv, "g")  # glibc, given-whole
    assert GLIBC in str(e.value) and BASE in str(e.value)


def test_explanation_layers_sizes_and_largest(tmp_path):
    doc = explanation(load_inventory(make_description(tmp_path)), GLIBC, top=2)
    assert [layer["paths"] for layer in doc["layers"]][:3] == [[BASE], [GLIBC], sorted([EXTRA, HELLO, LIBIDN, TZDATA])]
    assert doc["layers"][3]["label"] == "customisation layer" and doc["layers"][3]["paths"] == []
    assert [layer["size"] for layer in doc["layers"]] == [1024, 2048, 3072, 10240]
    assert doc["largest"] == [
        {"path": GLIBC, "narSize": 30_000, "layer": 2},
        {"path": TZDATA, "narSize": 2_000, "layer": 3},
    ]
    assert doc["why"]["layer"] == 2 and doc["why"]["chains"][0]["chain"] == [HELLO, GLIBC]
    assert doc["image"]["storePaths"] == 6 and doc["image"]["closureKnown"]


def test_explain_text_reads_on_a_terminal(tmp_path):
    out = io.StringIO()
    explain(make_description(tmp_path), path="glibc", out=out)
    text = out.getvalue()
    assert "reg.example/team/app:1.0  (linux/amd64)" in text
    assert f"2/4     2.0 kB  {'sha256:' + '02' * 32}\n      {GLIBC}\n" in text
    assert "customisation layer" in text
    assert f"30.0 kB  {GLIBC}  (layer 2)" in text
    assert f"Why {GLIBC} (layer 2) is in the image:\n  contents: {HELLO}\n    -> {GLIBC}\n" in text


def test_explain_json_is_the_same_data(tmp_path):
    out = io.StringIO()
    conf = make_description(tmp_path)
    explain(conf, path="libidn2", as_json=True, out=out)
    assert json.loads(out.getvalue()) == json.loads(json.dumps(explanation(load_inventory(conf), "libidn2")))


def test_a_description_without_a_record_still_explains(tmp_path):
    inv = load_inventory(make_description(tmp_path, record=False))
    assert not inv.has_graph and set(inv.packages) == {BASE, GLIBC, EXTRA, HELLO, LIBIDN, TZDATA}
    assert all(p.nar_hash is None for p in inv.packages.values())
    out = io.StringIO()
    explain(make_description(tmp_path / "again", record=False), out=out)
    assert "no closure graph" in out.getvalue()


def test_not_an_image_is_one_clear_error(tmp_path):
    with pytest.raises(SpecError, match="not an image of this project"):
        load_inventory(str(tmp_path))


# --- attaching an SBOM to a pushed image ------------------------------------------------------------


class FakeRegistry:
    """Just enough of a registry: blobs, manifests by tag or digest, and
    the referrers API when ``referrers`` is set."""

    def __init__(self, referrers: bool):
        self.referrers = referrers
        self.blobs = {}
        self.manifests = {}  # reference -> (media type, bytes)
        self.calls = []

    def __call__(self, method, url, headers, body=None):
        path = url.split("/v2/", 1)[1] if "/v2/" in url else ""
        self.calls.append((method, path))
        data = _bytes(body)
        if path == "":
            return Answer(200)
        repo_path = path.split("/", 1)[1]  # after "app/"
        if repo_path.startswith("blobs/uploads/") and method == "POST":
            return Answer(202, {"Location": "/v2/app/blobs/uploads/u1"})
        if repo_path.startswith("blobs/uploads/") and method == "PUT":
            digest = url.split("digest=", 1)[1]
            self.blobs[digest.replace("%3A", ":")] = data
            return Answer(201)
        if repo_path.startswith("blobs/"):
            return Answer(200 if repo_path[6:] in self.blobs else 404)
        if repo_path.startswith("referrers/"):
            if not self.referrers:
                return Answer(404, body=b'{"errors":[{"code":"NOT_FOUND"}]}')
            return Answer(200, {"Content-Type": OCI_INDEX}, b'{"schemaVersion":2,"manifests":[]}')
        if repo_path.startswith("manifests/"):
            ref = repo_path[len("manifests/") :]
            if method == "PUT":
                self.manifests[ref] = (headers["Content-Type"], data)
                return Answer(201, {"Docker-Content-Digest": Blob.from_bytes("x", data).digest})
            if ref not in self.manifests:
                return Answer(404, body=b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            media_type, stored = self.manifests[ref]
            return Answer(200, {"Content-Type": media_type}, stored)
        raise AssertionError(f"unexpected {method} {url}")


def _bytes(body):
    if body is None or isinstance(body, bytes):
        return body
    sink = MemorySink()
    body.write_to(sink)
    return bytes(sink.data)


def fake_client(registry):
    return RegistryClient(
        parse_reference("reg.test/app:1"), opener=registry, environ={}, home="/nonexistent", progress=None
    )


SUBJECT = Blob.from_bytes(OCI_MANIFEST, b'{"schemaVersion":2}')


def test_attach_without_referrers_api_uses_the_tag_scheme():
    registry = FakeRegistry(referrers=False)
    sbom = Blob.from_bytes("application/spdx+json", b'{"spdxVersion":"SPDX-2.3"}')
    attached = attach(
        fake_client(registry),
        SUBJECT,
        sbom,
        "application/spdx+json",
        annotations={"org.opencontainers.image.created": "1970-01-01T00:00:01Z"},
        title="app.spdx.json",
    )
    assert registry.blobs[sbom.digest] == b'{"spdxVersion":"SPDX-2.3"}' and registry.blobs[EMPTY_CONFIG.digest] == b"{}"
    media_type, data = registry.manifests[attached.digest]
    artifact = json.loads(data)
    assert media_type == OCI_MANIFEST and artifact["artifactType"] == "application/spdx+json"
    assert artifact["config"] == {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": EMPTY_CONFIG.digest,
        "size": 2,
    }
    assert artifact["subject"] == {"mediaType": OCI_MANIFEST, "digest": SUBJECT.digest, "size": SUBJECT.size}
    assert artifact["layers"][0]["digest"] == sbom.digest
    assert artifact["layers"][0]["annotations"] == {"org.opencontainers.image.title": "app.spdx.json"}
    tag = referrers_tag(SUBJECT.digest)
    assert tag == "sha256-" + SUBJECT.digest.split(":")[1] and attached.scheme == f"tag {tag}"
    index = json.loads(registry.manifests[tag][1])
    assert index["mediaType"] == OCI_INDEX
    assert index["manifests"] == [
        {
            "mediaType": OCI_MANIFEST,
            "digest": attached.digest,
            "size": len(data),
            "artifactType": "application/spdx+json",
            "annotations": {"org.opencontainers.image.created": "1970-01-01T00:00:01Z"},
        }
    ]

    # A second artifact joins the index; the same one again is not repeated.
    cdx = Blob.from_bytes("application/vnd.cyclonedx+json", b'{"bomFormat":"CycloneDX"}')
    second = attach(fake_client(registry), SUBJECT, cdx, "application/vnd.cyclonedx+json")
    attach(fake_client(registry), SUBJECT, cdx, "application/vnd.cyclonedx+json")
    index = json.loads(registry.manifests[tag][1])
    assert [m["digest"] for m in index["manifests"]] == [attached.digest, second.digest]


def test_attach_with_the_referrers_api_pushes_only_the_manifest():
    registry = FakeRegistry(referrers=True)
    sbom = Blob.from_bytes("application/spdx+json", b"{}x")
    attached = attach(fake_client(registry), SUBJECT, sbom, "application/spdx+json")
    assert attached.scheme == "referrers API"
    assert set(registry.manifests) == {attached.digest}
    assert ("GET", f"app/referrers/{SUBJECT.digest}") in registry.calls
