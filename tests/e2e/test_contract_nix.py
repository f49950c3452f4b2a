"""The contract seen from the Nix side: every builder derivation default.nix
makes (evaluated, not built) is accepted by its step's record, and a key
with a default in the builder is never sent with that same value, so each
default lives in one place."""

import dataclasses

import pytest
from nixhelpers import nix_eval

from builder import cli, contract
from builder.contract import nix_key, parse

STEP_SPECS = {name: getattr(contract, spec) for name, _, spec, _ in cli._BUILD_STEPS}

# Calls that between them send every key, optional ones included.
CALLS = """
  let
    stream = dockerTools.streamLayeredImage { name = "plain"; contents = [ fixtures.chainA ]; };
    full = dockerTools.streamLayeredImage {
      name = "full"; tag = "t"; contents = [ fixtures.chainA ]; fakeRootCommands = "true";
      enableFakechroot = true; includeNixDB = true; nixUid = 1; layerCompression = "gzip";
      layers = [ (dockerTools.buildLayer { deps = [ fixtures.chainA ]; layerCompression = "zstd";
        metadata = { created_by = "me"; }; reproducible = false; }) ];
    };
    image = dockerTools.buildImage { name = "image"; copyToRoot = [ fixtures.chainA ]; };
    rooted = dockerTools.buildImage { name = "rooted"; fromImage = image; runAsRoot = "true"; includeNixDB = true; };
    multi = dockerTools.buildMultiArchImage { name = "multi"; images = [ stream ]; layerCompression = "gzip"; compressor = "zstd"; };
    pulled = dockerTools.pullImage { imageName = "nixos/nix"; imageDigest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}"; hash = ""; };
    drvs = [
      stream stream.conf stream.conf.customisationLayer stream.copyToRegistry
      stream.copyTo stream.copyToDockerDaemon stream.copyToPodman
      full.conf full.conf.customisationLayer (builtins.head full.conf.layers)
      (dockerTools.buildLayeredImage { name = "gz"; })
      (dockerTools.buildLayeredImage { name = "oci"; format = "oci"; compressor = "zstd"; layerCompression = "zstd"; })
      image image.conf image.layer rooted.layer
      (dockerTools.exportImage { fromImage = image; })
      (dockerTools.mergeImages [ image stream ])
      multi multi.conf multi.stream stream.sbom (dockerTools.buildImage { name = "c"; sbomFormat = "cyclonedx"; }).sbom
      dockerTools.fakeNss pulled dockerTools.prefetchImage
      (pulled.override { authFile = "/etc/nix/registry-auth.json"; })
    ];
  in map (d: d.drvAttrs) drvs
"""


@pytest.fixture(scope="module")
def derivations(session_tmp):
    return nix_eval(CALLS, session_tmp)


def _as_attrs_json(drv: dict) -> dict:
    """What Nix writes to .attrs.json for these attributes (built, not evaluated)."""
    data = {k: v for k, v in drv.items() if k not in ("args", "__structuredAttrs")}
    for key in drv.get("exportReferencesGraph", {}):
        data[key] = []
    data["outputs"] = {"out": "/nix/store/00000000000000000000000000000000-out"}
    return data


def test_every_derivation_fits_its_record(derivations):
    steps = set()
    for drv in derivations:
        step = drv["args"][-1]
        steps.add(step)
        spec_type = STEP_SPECS[step]
        attrs = _as_attrs_json(drv)
        parse(spec_type, attrs, f"{drv['name']} ({step})")
        for f in dataclasses.fields(spec_type):
            key = nix_key(f.name)
            if f.default is not dataclasses.MISSING and key in attrs:
                assert attrs[key] != f.default, f"{drv['name']}: {key} = {f.default!r} is the builder's default"
    assert steps == {name for name in STEP_SPECS if not name.endswith("-fakeroot")}
