# Argument checks, at evaluation time, one clear message each: image names
# and tags, config, maxLayers, compression and format names, store paths,
# base images.
{ lib }:

let
  inherit (lib) toLower describe;
in
rec {
  namePattern = "(([a-zA-Z0-9.-]+(:[0-9]+)?)/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*";
  checkNameArg = fn: arg: name:
    let lowered = toLower name; in
    if !builtins.isString name then throw "dockerTools.${fn}: ${arg} must be a string, got ${describe name}"
    else if builtins.match namePattern lowered == null
    then throw "dockerTools.${fn}: ${arg} \"${name}\" is not a valid image name (letters, digits, . _ - separators, / between components, an optional registry host first)"
    else lowered;
  checkName = fn: checkNameArg fn "name";
  checkTag = fn: tag:
    if tag == null || (builtins.isString tag && builtins.match "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}" tag != null) then tag
    else throw "dockerTools.${fn}: tag \"${toString tag}\" is not a valid tag (letters, digits, _ . -, at most 128 characters)";
  # A user or group id: an integer a tar header and chown(2) can hold
  # ((uid_t)-1, 4294967295, means "unchanged" to chown).
  checkId = fn: arg: v:
    if !builtins.isInt v then throw "dockerTools.${fn}: ${arg} must be an integer, got ${describe v}"
    else if v < 0 || v > 4294967294
    then throw "dockerTools.${fn}: ${arg} = ${toString v} is out of range (0 to 4294967294)"
    else v;
  checkConfig = fn: config:
    if builtins.isAttrs config then config
    else throw "dockerTools.${fn}: config must be an attribute set (like { Cmd = [ ... ]; }), got ${describe config}";
  checkMaxLayers = fn: n:
    if !builtins.isInt n || n < 2
    then throw "dockerTools.${fn}: maxLayers must be an integer of at least 2 (one layer for the customisation layer, one for store paths), got ${toString n}"
    else n;
  checkCompressor = fn: c:
    if builtins.elem c [ "gz" "zstd" "none" ] then c
    else throw "dockerTools.${fn}: compressor \"${toString c}\" is unknown: use \"gz\", \"zstd\" or \"none\"";
  checkFormat = fn: f:
    if builtins.elem f [ "docker" "oci" ] then f
    else throw "dockerTools.${fn}: format \"${toString f}\" is unknown: use \"docker\" or \"oci\"";
  checkLayerCompression = fn: c:
    if builtins.elem c [ "none" "gzip" "zstd" ] then c
    else throw "dockerTools.${fn}: layerCompression \"${toString c}\" is unknown: use \"none\", \"gzip\" or \"zstd\" (zstd needs Python 3.14)";
  # Only a non-default value becomes an attribute: existing images keep their
  # derivations, hence their tags.
  ifCompressed = fn: c: if checkLayerCompression fn c == "none" then { } else { layerCompression = c; };
  isStorePath = x: builtins.match "${builtins.storeDir}/[^/]+.*" (toString x) != null;
  checkPaths = fn: arg: contents: builtins.genList (i:
    let x = builtins.elemAt contents i; in
    if builtins.isPath x then x
    else if (builtins.isAttrs x && x ? outPath) || (builtins.isString x && isStorePath x) then x
    else throw "dockerTools.${fn}: ${arg} element ${toString i} (${if builtins.isString x then x else builtins.typeOf x}) is not a store path or derivation")
    (builtins.length contents);
  checkContents = fn: checkPaths fn "contents";
  checkImageArg = fn: arg: img:
    if img == null || builtins.isPath img || (builtins.isAttrs img && img ? outPath)
       || (builtins.isString img && isStorePath img) then img
    else throw "dockerTools.${fn}: ${arg} must be an image archive (a derivation or store path), got ${
      if builtins.isString img then "\"${img}\"" else builtins.typeOf img}";
  checkFromImage = fn: checkImageArg fn "fromImage";
  # A multi-platform image's images: ours (their descriptions) or archives.
  checkImages = fn: images:
    if builtins.isList images && images != [ ] then map (img:
      if builtins.isAttrs img && img ? conf then img.conf
      else checkImageArg fn "each element of images" img) images
    else throw "dockerTools.${fn}: images must be a non-empty list of images, one per platform";
}
