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
    else throw "dockerTools.${fn}: layerCompression \"${toString c}\" is unknown: use \"none\", \"gzip\" or \"zstd\"";
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
  # nix2container's perms: [ { path; regex ? ".*"; mode; uid; gid; uname; gname; } ],
  # regex searched anywhere in the path, mode a string of octal digits.
  checkPerms = fn: perms:
    let
      known = [ "path" "regex" "mode" "uid" "gid" "uname" "gname" ];
      one = i: p:
        let
          where = "dockerTools.${fn}: perms element ${toString i}";
          bad = builtins.filter (k: !builtins.elem k known) (builtins.attrNames p);
          typed = k: kinds: kindText:
            if !(p ? ${k}) || builtins.elem (builtins.typeOf p.${k}) kinds then true
            else throw "${where}: ${k} must be ${kindText}, got ${describe p.${k}}";
        in
        if !builtins.isAttrs p then throw "${where} must be an attribute set { path; regex; mode; ... }, got ${describe p}"
        else if bad != [ ] then throw "${where}: unknown attribute ${builtins.head bad} (known: ${builtins.concatStringsSep ", " known})"
        else if !(p ? path) then throw "${where}: path (the store path whose files it applies to) is missing"
        else if !(builtins.isPath p.path || (builtins.isAttrs p.path && p.path ? outPath)
                  || (builtins.isString p.path && isStorePath p.path))
        then throw "${where}: path must be a store path or derivation, got ${describe p.path}"
        else if p ? mode && builtins.isInt p.mode
        then throw "${where}: mode must be a string like \"0644\", got the number ${toString p.mode} (a Nix integer is decimal: write \"${toString p.mode}\" for octal)"
        else if p ? mode && builtins.isString p.mode && builtins.match "[0-7]{3,4}" p.mode == null
        then throw "${where}: mode \"${p.mode}\" is not an octal mode like \"0644\" or \"644\""
        else builtins.seq (typed "mode" [ "string" ] "a string like \"0644\"")
          (builtins.seq (typed "regex" [ "string" ] "a string (a regular expression)")
          (builtins.seq (typed "uid" [ "int" ] "an integer") (builtins.seq (typed "gid" [ "int" ] "an integer")
          (builtins.seq (typed "uname" [ "string" ] "a string") (builtins.seq (typed "gname" [ "string" ] "a string")
          p)))));
    in
    if !builtins.isList perms then throw "dockerTools.${fn}: perms must be a list of { path; regex; mode; ... }, got ${describe perms}"
    else builtins.genList (i: one i (builtins.elemAt perms i)) (builtins.length perms);
  # nix2container's buildLayer metadata: the layer's history entry.
  checkMetadata = fn: m:
    let known = [ "created_by" "comment" "author" ]; in
    if !builtins.isAttrs m then throw "dockerTools.${fn}: metadata must be an attribute set { created_by; comment; author; }, got ${describe m}"
    else builtins.foldl' (acc: k:
      if !builtins.elem k known
      then throw "dockerTools.${fn}: metadata.${k} is unknown (known: created_by, comment, author)"
      else if !builtins.isString m.${k}
      then throw "dockerTools.${fn}: metadata.${k} must be a string, got ${describe m.${k}}"
      else acc) m (builtins.attrNames m);
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
