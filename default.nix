# dockerTools, drop-in: the same functions, arguments, defaults and passthru
# as nixpkgs' pkgs.dockerTools. Each function checks its arguments, turns
# them into one JSON configuration (__structuredAttrs) and runs the Python
# builder in ./builder; no stdenv, no shell glue.
#
# From pkgs this uses only what runs in a build: python3, and bash,
# coreutils, fakeroot and proot where user commands run.
{ pkgs ? import <nixpkgs> { } }:

let
  system = pkgs.stdenv.hostPlatform.system or pkgs.system or builtins.currentSystem;

  # The builder package, alone in its own store path: editing anything else
  # in this repository does not rebuild images.
  src = builtins.path {
    name = "dockertools-builder";
    path = ./.;
    filter = path: type:
      let rel = builtins.substring (builtins.stringLength (toString ./.)) (-1) path;
      in (rel == "/builder" || builtins.substring 0 9 rel == "/builder/")
         && builtins.match ".*(__pycache__|\\.pyc)$" rel == null;
  };

  python = "${pkgs.python3}/bin/python3";

  # One build step: the builder's subcommand `cmd`, configured by `attrs`.
  runBuilder = name: cmd: attrs: builtins.derivation ({
    inherit name system;
    builder = python;
    args = [ "-IB" "${src}/builder" cmd ];
    __structuredAttrs = true;
  } // attrs);

  # --- small helpers (builtins only: the stand-in pkgs has no lib) ---------
  upper = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];
  lower = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  toLower = builtins.replaceStrings upper lower;
  toList = x: if x == null then [ ] else if builtins.isList x then x else [ x ];
  hashPart = drv: builtins.head (builtins.match "([^-]*)-.*"
    (baseNameOf (builtins.unsafeDiscardStringContext (toString drv))));

  # Go's names for the platform, as docker and registries spell them.
  goArch = {
    x86_64 = { architecture = "amd64"; }; i686 = { architecture = "386"; };
    aarch64 = { architecture = "arm64"; variant = "v8"; };
    armv7l = { architecture = "arm"; variant = "v7"; }; armv6l = { architecture = "arm"; variant = "v6"; };
    powerpc64le = { architecture = "ppc64le"; }; s390x = { architecture = "s390x"; };
    riscv64 = { architecture = "riscv64"; };
  };
  hostCpu = builtins.head (builtins.match "([^-]*)-.*" system);
  hostPlatform = goArch.${hostCpu} or { architecture = hostCpu; };
  variantOf = architecture:
    if architecture == hostPlatform.architecture then hostPlatform.variant or null
    else { arm = "v7"; arm64 = "v8"; }.${architecture} or null;

  # --- argument checks: at evaluation time, one clear message each ---------
  namePattern = "(([a-zA-Z0-9.-]+(:[0-9]+)?)/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*";
  checkName = fn: name:
    let lowered = toLower name; in
    if !builtins.isString name then throw "dockerTools.${fn}: name must be a string"
    else if builtins.match namePattern lowered == null
    then throw "dockerTools.${fn}: name \"${name}\" is not a valid image name (letters, digits, . _ - separators, / between components, an optional registry host first)"
    else lowered;
  checkTag = fn: tag:
    if tag == null || (builtins.isString tag && builtins.match "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}" tag != null) then tag
    else throw "dockerTools.${fn}: tag \"${toString tag}\" is not a valid tag (letters, digits, _ . -, at most 128 characters)";
  checkConfig = fn: config:
    if builtins.isAttrs config then config
    else throw "dockerTools.${fn}: config must be an attribute set (like { Cmd = [ ... ]; }), got a ${builtins.typeOf config}";
  checkMaxLayers = fn: n:
    if !builtins.isInt n || n < 2
    then throw "dockerTools.${fn}: maxLayers must be an integer of at least 2 (one layer for the customisation layer, one for store paths), got ${toString n}"
    else n;
  checkCompressor = fn: c:
    if builtins.elem c [ "gz" "zstd" "none" ] then c
    else throw "dockerTools.${fn}: compressor \"${toString c}\" is unknown: use \"gz\", \"zstd\" or \"none\"";
  isStorePath = x: builtins.match "${builtins.storeDir}/[^/]+.*" (toString x) != null;
  checkContents = fn: contents: builtins.genList (i:
    let x = builtins.elemAt contents i; in
    if builtins.isPath x then x
    else if (builtins.isAttrs x && x ? outPath) || (builtins.isString x && isStorePath x) then x
    else throw "dockerTools.${fn}: contents element ${toString i} (${if builtins.isString x then x else builtins.typeOf x}) is not a store path or derivation")
    (builtins.length contents);
  checkFromImage = fn: img:
    if img == null || builtins.isPath img || (builtins.isAttrs img && img ? outPath)
       || (builtins.isString img && isStorePath img) then img
    else throw "dockerTools.${fn}: fromImage must be an image archive (a derivation or store path), got ${builtins.typeOf img}";

  withPassthru = drv: passthru: meta: drv // passthru // { inherit passthru meta; };

  # --- the customisation layer and the image description ------------------
  customisationLayer = { baseName, contents, config, extraCommands, fakeRootCommands
                       , enableFakechroot, mtime, includeNixDB ? false, nixUid ? 0, nixGid ? 0 }:
    let needsFakeroot = fakeRootCommands != "" || enableFakechroot
          || (includeNixDB && (nixUid != 0 || nixGid != 0));
    in
    runBuilder "${baseName}-customisation-layer" "customise" ({
      inherit contents extraCommands fakeRootCommands enableFakechroot mtime includeNixDB nixUid nixGid;
      configJSON = builtins.toJSON config;
      bash = "${pkgs.bash}/bin/bash";
      tools = [ pkgs.coreutils pkgs.bash ];
    } // (if includeNixDB then {
      exportReferencesGraph.nixdbClosure = contents;
    } else { }) // (if needsFakeroot then {
      fakeroot = "${pkgs.fakeroot}/bin/fakeroot";
      inherit python;
    } else { }) // (if enableFakechroot then {
      proot = "${pkgs.proot}/bin/proot";
    } else { }));

  # A small tree of files, symlinks and directories, written by the builder.
  writeTree = name: files: runBuilder name "files" { inherit files; };

  # Explicit layers, as nix2container's buildLayer: each its own derivation,
  # so an unchanged group of dependencies is never rebuilt nor re-hashed.
  buildLayer =
    { deps ? [ ]             # store paths whose closures go in
    , copyToRoot ? null      # derivations whose contents go at /
    , ignore ? null          # a store path to leave out
    , layers ? [ ]           # buildLayer results whose paths are not repeated
    , maxLayers ? 1          # split by popularity into at most this many layers
    , perms ? [ ]            # [ { path; regex; mode; uid; gid; uname; gname; } ]
    , reproducible ? true    # accepted for nix2container compatibility
    , uid ? 0, gid ? 0, uname ? "root", gname ? "root", mtime ? "1970-01-01T00:00:01Z"
    , metadata ? { }
    }:
    runBuilder "layer" "layer" {
      inherit uid gid uname gname mtime perms;
      maxLayers = if builtins.isInt maxLayers && maxLayers >= 1 then maxLayers
        else throw "dockerTools.buildLayer: maxLayers must be an integer of at least 1, got ${toString maxLayers}";
      copyToRoot = toList copyToRoot;
      ignore = toList ignore;
      parentLayers = layers;
      exportReferencesGraph.closure = deps ++ toList copyToRoot;
    };

  streamLayeredImage =
    { name
    , tag ? null
    , fromImage ? null
    , fromImageName ? null
    , fromImageTag ? null
    , contents ? [ ]
    , config ? { }
    , architecture ? hostPlatform.architecture
    , variant ? variantOf architecture
    , created ? "1970-01-01T00:00:01Z"
    , mtime ? "1970-01-01T00:00:01Z"
    , uid ? 0
    , gid ? 0
    , uname ? "root"
    , gname ? "root"
    , maxLayers ? 100
    , extraCommands ? ""
    , fakeRootCommands ? ""
    , enableFakechroot ? false
    , includeStorePaths ? true
    , includeNixDB ? false
    , nixUid ? 0
    , nixGid ? 0
    , passthru ? { }
    , meta ? { }
    , layers ? [ ]
    , layeringPipeline ? null
    , debug ? false
    }:
    let
      fn = "streamLayeredImage";
      imageName = checkName fn name;
      baseName = baseNameOf imageName;
      contentsList = checkContents fn (toList contents);
      custom = customisationLayer {
        inherit baseName extraCommands fakeRootCommands enableFakechroot mtime includeNixDB nixUid nixGid;
        contents = contentsList;
        config = checkConfig fn config;
      };
      conf = runBuilder "${baseName}-conf" "layers" {
        inherit imageName fromImageName fromImageTag config architecture variant created mtime
          uid gid uname gname includeStorePaths layers;
        tag = checkTag fn tag;
        fromImage = checkFromImage fn fromImage;
        maxLayers = checkMaxLayers fn maxLayers;
        os = "linux";
        customisationLayer = custom;
        excludePaths = [ custom ];
        exportReferencesGraph.closure = [ custom ] ++ (if includeStorePaths then contentsList else [ ]);
      };
      imageTag = if tag != null then tag else hashPart conf;
      stream = runBuilder "stream-${baseName}" "script" {
        inherit python src;
        description = conf;
      };
    in
    withPassthru stream ({ inherit imageName imageTag conf; isExe = true; } // passthru) meta;

  buildLayeredImage = args@{ name, compressor ? "gz", ... }:
    let
      fn = "buildLayeredImage";
      stream = streamLayeredImage (builtins.removeAttrs args [ "compressor" ]);
      suffix = { gz = ".tar.gz"; zstd = ".tar.zst"; none = ".tar"; }.${checkCompressor fn compressor};
      archive = runBuilder "${baseNameOf (toLower name)}${suffix}" "archive" {
        inherit compressor;
        description = stream.conf;
      };
    in
    withPassthru archive ({ inherit (stream) imageName imageTag conf; } // (args.passthru or { }))
      (args.meta or { });

  # --- helpers for contents -------------------------------------------------
  # /etc/passwd and /etc/group with root and nobody; fakeNss.override { extraPasswdLines = [ ... ]; }
  makeFakeNss = { extraPasswdLines ? [ ], extraGroupLines ? [ ] }: writeTree "fake-nss" [
    { path = "etc/passwd"; text = builtins.concatStringsSep "\n" ([
        "root:x:0:0:root user:/var/empty:/bin/sh"
        "nobody:x:65534:65534:nobody:/var/empty:/bin/sh"
      ] ++ extraPasswdLines) + "\n"; }
    { path = "etc/group"; text = builtins.concatStringsSep "\n" ([
        "root:x:0:"
        "nobody:x:65534:"
      ] ++ extraGroupLines) + "\n"; }
    { path = "etc/nsswitch.conf"; text = "hosts: files dns\n"; }
    { path = "var/empty"; directory = true; }
  ];
  fakeNss = makeFakeNss { } // { override = makeFakeNss; };

  binSh = writeTree "bin-sh" [
    { path = "bin/sh"; symlink = "${pkgs.bashInteractive or pkgs.bash}/bin/bash"; }
  ];

  usrBinEnv = writeTree "usr-bin-env" [
    { path = "usr/bin/env"; symlink = "${pkgs.coreutils}/bin/env"; }
  ];

  # The CA bundle where OpenSSL, Debian- and Red Hat-style programs look.
  caCertificates = let bundle = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt"; in
    writeTree "ca-certificates" [
      { path = "etc/ssl/certs/ca-bundle.crt"; symlink = bundle; }
      { path = "etc/ssl/certs/ca-certificates.crt"; symlink = bundle; }
      { path = "etc/pki/tls/certs/ca-bundle.crt"; symlink = bundle; }
    ];

  # Shell for runAsRoot/fakeRootCommands: the files useradd and friends need.
  shadowSetup = ''
    export PATH=${pkgs.shadow or pkgs.coreutils}/bin:$PATH
    mkdir -p /etc/pam.d
    if [ ! -f /etc/passwd ]; then
      echo "root:x:0:0::/root:/bin/sh" > /etc/passwd
      echo "root:!x:::::::" > /etc/shadow
    fi
    if [ ! -f /etc/group ]; then
      echo "root:x:0:" > /etc/group
      echo "root:x::" > /etc/gshadow
    fi
    if [ ! -f /etc/pam.d/other ]; then
      printf '%s\n' "account sufficient pam_unix.so" "auth sufficient pam_rootok.so" \
        "password requisite pam_unix.so nullok yescrypt" "session required pam_unix.so" \
        > /etc/pam.d/other
    fi
    if [ ! -f /etc/login.defs ]; then
      touch /etc/login.defs
    fi
  '';

  # Several images in one docker archive: podman/docker load gets them all.
  mergeImages = images: runBuilder "merge-docker-images" "merge" {
    images = map (img: if builtins.isAttrs img && img.isExe or false then img.conf else img) images;
  };

  buildLayeredImageWithNixDb = args: buildLayeredImage (args // { includeNixDB = true; });
  streamLayeredImageWithNixDb = args: streamLayeredImage (args // { includeNixDB = true; });

in
{
  inherit streamLayeredImage buildLayeredImage buildLayer buildLayeredImageWithNixDb
    streamLayeredImageWithNixDb fakeNss binSh usrBinEnv caCertificates shadowSetup mergeImages;
}
