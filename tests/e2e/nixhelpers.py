"""Helpers the end-to-end tests share: real nix-build runs through the
stand-in nixpkgs, image archives read and checked byte for byte, podman.

Every archive a test reads goes through ``read_archive``, which checks that
each layer hashes to its diff_id and the config to its name: the digests
computed at build time must match the bytes written at stream time.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import uuid
from dataclasses import dataclass
from typing import Dict, List, Optional

E2E = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(E2E))

PREAMBLE = f"""
let
  pkgs = import {REPO}/tests/hostpkgs.nix {{ }};
  dockerTools = import {REPO}/default.nix {{ inherit pkgs; }};
  fixtures = import {E2E}/fixtures.nix {{ inherit pkgs; }};
in
"""


class NixError(Exception):
    def __init__(self, stderr: str):
        super().__init__(stderr)
        self.stderr = stderr


def nix_build(expr: str, tmp_path, attr: Optional[str] = None, args=()) -> str:
    """Build ``expr`` (a Nix expression using pkgs, dockerTools, fixtures)."""
    f = tmp_path / f"expr-{uuid.uuid4().hex[:8]}.nix"
    f.write_text(PREAMBLE + expr)
    cmd = ["nix-build", str(f), "--no-out-link", *args]
    if attr:
        cmd += ["-A", attr]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise NixError(r.stderr)
    return r.stdout.strip().splitlines()[-1]


def nix_eval(expr: str, tmp_path) -> object:
    f = tmp_path / f"eval-{uuid.uuid4().hex[:8]}.nix"
    f.write_text(PREAMBLE + expr)
    r = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", str(f)], capture_output=True, text=True)
    if r.returncode != 0:
        raise NixError(r.stderr)
    return json.loads(r.stdout)


def run_stream(script: str, *args) -> bytes:
    r = subprocess.run([script, *args], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def decompress(data: bytes) -> bytes:
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        r = subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True)
        return r.stdout
    return data


@dataclass
class Archive:
    manifest: List[dict]
    configs: Dict[str, dict]  # config file name -> parsed config
    layers: Dict[str, bytes]  # layer file name -> uncompressed tar bytes
    raw: bytes

    @property
    def config(self) -> dict:
        return self.configs[self.manifest[0]["Config"]]

    def image_layers(self, i: int = 0) -> List[bytes]:
        return [self.layers[name] for name in self.manifest[i]["Layers"]]

    def layer_members(self, i: int = 0) -> List[List[tarfile.TarInfo]]:
        return [tarfile.open(fileobj=io.BytesIO(b)).getmembers() for b in self.image_layers(i)]

    def file_tree(self, i: int = 0) -> Dict[str, tarfile.TarInfo]:
        """Every entry of every layer, later layers winning (no whiteouts)."""
        tree = {}
        for members in self.layer_members(i):
            for m in members:
                tree[m.name.rstrip("/")] = m
        return tree


def read_archive(data: bytes) -> Archive:
    """Parse a docker archive and check every digest it claims."""
    data = decompress(data)
    tar = tarfile.open(fileobj=io.BytesIO(data))
    files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    manifest = json.loads(files["manifest.json"])
    configs, layers = {}, {}
    for entry in manifest:
        raw_config = files[entry["Config"]]
        assert entry["Config"].split("/")[-1].replace(".json", "") == _sha(raw_config).split(":")[1]
        config = json.loads(raw_config)
        configs[entry["Config"]] = config
        diff_ids = config["rootfs"]["diff_ids"]
        assert len(diff_ids) == len(entry["Layers"])
        for name, diff_id in zip(entry["Layers"], diff_ids):
            plain = decompress(files[name])
            assert _sha(plain) == diff_id, f"{name}: bytes do not hash to the diff_id"
            layers[name] = plain
        non_empty = [h for h in config.get("history", []) if not h.get("empty_layer")]
        assert len(non_empty) <= len(diff_ids)
    return Archive(manifest, configs, layers, data)


@dataclass
class OciImage:
    manifest_digest: str
    manifest: dict
    platform: Optional[dict]  # from the index entry that led here
    config: dict
    layers: List[bytes]  # uncompressed tar bytes, in order


@dataclass
class OciArchive:
    index: dict  # index.json
    blobs: Dict[str, bytes]  # digest -> bytes, every one checked
    images: List[OciImage]  # every image manifest reached from index.json
    raw: bytes

    def ref_names(self) -> List[str]:
        return [(d.get("annotations") or {}).get("org.opencontainers.image.ref.name") for d in self.index["manifests"]]

    @property
    def image(self) -> OciImage:
        assert len(self.images) == 1, f"{len(self.images)} images"
        return self.images[0]


_LAYER_ENCODING = {
    "application/vnd.oci.image.layer.v1.tar": b"",
    "application/vnd.oci.image.layer.v1.tar+gzip": b"\x1f\x8b",
    "application/vnd.oci.image.layer.v1.tar+zstd": b"\x28\xb5\x2f\xfd",
}


def check_oci_blobs(files: Dict[str, bytes], raw: bytes = b"") -> OciArchive:
    """Check an OCI layout given as {path: bytes}: every blob hashes to its
    name, every descriptor's digest and size match, every layer decompresses
    to its diff_id, and manifest.json (when present) names existing blobs."""
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    blobs = {}
    for name, content in files.items():
        if name.startswith("blobs/"):
            _, algorithm, hexpart = name.split("/")
            assert algorithm == "sha256" and _sha(content) == "sha256:" + hexpart, (
                f"{name}: bytes do not hash to their name"
            )
            blobs["sha256:" + hexpart] = content

    def blob(desc: dict) -> bytes:
        assert desc["digest"] in blobs, f"{desc['digest']} missing"
        data = blobs[desc["digest"]]
        assert len(data) == desc["size"], f"{desc['digest']}: size {len(data)} != {desc['size']}"
        return data

    images = []

    def walk(entries: List[dict]) -> None:
        for desc in entries:
            doc = json.loads(blob(desc))
            media_type = doc.get("mediaType") or desc["mediaType"]
            assert media_type == desc["mediaType"]
            if "manifests" in doc:
                walk(doc["manifests"])
                continue
            config = json.loads(blob(doc["config"]))
            diff_ids = config["rootfs"]["diff_ids"]
            assert len(diff_ids) == len(doc["layers"])
            layers = []
            for d, diff_id in zip(doc["layers"], diff_ids):
                stored = blob(d)
                magic = _LAYER_ENCODING.get(d["mediaType"])
                assert magic is not None, d["mediaType"]
                assert stored.startswith(magic) and (magic or stored[:2] != b"\x1f\x8b")
                plain = decompress(stored)
                assert _sha(plain) == diff_id, f"{d['digest']}: bytes do not hash to the diff_id"
                layers.append(plain)
            if desc.get("platform"):
                for key in ("architecture", "os", "variant"):
                    assert desc["platform"].get(key) == config.get(key), key
            images.append(OciImage(desc["digest"], doc, desc.get("platform"), config, layers))

    index = json.loads(files["index.json"])
    walk(index["manifests"])
    for entry in json.loads(files.get("manifest.json", b"[]")):
        for name in [entry["Config"], *entry["Layers"]]:
            assert name in files, f"manifest.json names {name}, not in the archive"
    return OciArchive(index, blobs, images, raw)


def read_oci_archive(data: bytes) -> OciArchive:
    """Parse an OCI archive and check every digest it claims."""
    data = decompress(data)
    tar = tarfile.open(fileobj=io.BytesIO(data))
    files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    return check_oci_blobs(files, data)


def read_oci_dir(path: str) -> OciArchive:
    """An OCI layout directory, checked like an archive."""
    files = {}
    for root, _, names in os.walk(path):
        for name in names:
            full = os.path.join(root, name)
            with open(full, "rb") as f:
                files[os.path.relpath(full, path)] = f.read()
    return check_oci_blobs(files)


def podman(*args, input: bytes = None, check=True) -> subprocess.CompletedProcess:
    r = subprocess.run(["podman", *args], input=input, capture_output=True)
    if check and r.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed: {r.stderr.decode()}")
    return r


LOADED = set()  # images this test session loaded, removed at its end


def podman_load(data: bytes) -> None:
    # podman 4.3 does not unpack a gzip-compressed docker archive itself.
    r = podman("load", "-q", input=decompress(data))
    for line in r.stdout.decode().splitlines():
        if line.startswith("Loaded image"):
            LOADED.update(name.strip() for name in line.split(":", 1)[1].split(","))


def podman_run(image: str, *cmd: str, user: Optional[str] = None) -> str:
    args = ["run", "--rm", "--network=none"]
    if user:
        args += ["--user", user]
    r = podman(*args, image, *cmd)
    return r.stdout.decode()
