"""``umoci unpack`` of layer tars: the smallest OCI layout around them, so
umoci can say what the layers unpack to (compared with tests/support/picture)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from typing import Optional, Sequence

UMOCI = shutil.which("umoci")


def _blob(layout: str, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as out:
        out.write(data)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def oci_layout(layout: str, layer_files: Sequence[str], tag: str = "t") -> str:
    """The smallest OCI layout umoci accepts: oci-layout, index.json, blobs."""
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    with open(os.path.join(layout, "oci-layout"), "w") as out:
        out.write('{"imageLayoutVersion":"1.0.0"}')
    layers = []
    for path in layer_files:
        with open(path, "rb") as src:
            layers.append(_blob(layout, src.read(), "application/vnd.oci.image.layer.v1.tar"))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
    }
    config_d = _blob(layout, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_d,
        "layers": layers,
    }
    manifest_d = _blob(layout, json.dumps(manifest).encode(), manifest["mediaType"])
    manifest_d["annotations"] = {"org.opencontainers.image.ref.name": tag}
    with open(os.path.join(layout, "index.json"), "w") as out:
        json.dump({"schemaVersion": 2, "manifests": [manifest_d]}, out)
    return f"{layout}:{tag}"


def umoci_unpack(workdir: str, layer_files: Sequence[str]) -> Optional[str]:
    """umoci's rootfs for these layers, or None when umoci refuses them.
    As root, owners are honoured (no --rootless), so they can be compared."""
    image = oci_layout(os.path.join(workdir, "oci"), layer_files)
    bundle = os.path.join(workdir, "bundle")
    argv = [UMOCI, "unpack"] + ([] if os.geteuid() == 0 else ["--rootless"])
    result = subprocess.run(argv + ["--image", image, bundle], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return os.path.join(bundle, "rootfs")
