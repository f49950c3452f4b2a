# SBOMs (builtins only: the stand-in pkgs has no lib). The conf build is told
# each contents element's licence and homepage from its meta; passthru.sbom
# is a small derivation that writes the SBOM of a description.
{ runBuilder }:

let
  # meta.license: an attribute set with spdxId, a list of them, or a string.
  licenseIds = l:
    if builtins.isList l then builtins.concatMap licenseIds l
    else if builtins.isAttrs l then (if (l.spdxId or null) != null then [ l.spdxId ] else [ ])
    else if builtins.isString l then [ l ]
    else [ ];
  homepageOf = h:
    if builtins.isString h then h
    else if builtins.isList h && h != [ ] && builtins.isString (builtins.head h) then builtins.head h
    else null;
in
{
  # One entry per contents element: its store path and, from its meta, its
  # SPDX licence identifiers and homepage (NOASSERTION in the SBOM without).
  contentsMeta = contents: map (x: {
    path = x;
    licenses = if builtins.isAttrs x then licenseIds (x.meta.license or null) else [ ];
    homepage = if builtins.isAttrs x then homepageOf (x.meta.homepage or null) else null;
  }) contents;

  checkSbomFormat = fn: f:
    if builtins.elem f [ "spdx" "cyclonedx" ] then f
    else throw "dockerTools.${fn}: sbomFormat \"${toString f}\" is unknown: use \"spdx\" or \"cyclonedx\"";

  # passthru.sbom: <name>.spdx.json or <name>.cdx.json in the store.
  sbomOf = baseName: sbomFormat: conf:
    runBuilder "${baseName}${if sbomFormat == "spdx" then ".spdx.json" else ".cdx.json"}" "sbom-file" {
      inherit sbomFormat;
      description = conf;
    };
}
