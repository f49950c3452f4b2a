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

  # One build step: the builder's subcommand `cmd`, configured by `attrs`
  # (read by builder/contract.py, which must know this contractVersion).
  runBuilder = name: cmd: attrs: builtins.derivation ({
    inherit name system;
    builder = python;
    args = [ "-IB" "${src}/builder" cmd ];
    __structuredAttrs = true;
    contractVersion = 1;
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

  # Type checks: one line naming the function, the argument and what it got.
  describe = v: let t = builtins.typeOf v; in
    if t == "string" then "the string \"${v}\""
    else if t == "int" || t == "float" then "the number ${toString v}"
    else if t == "bool" then (if v then "true" else "false")
    else if t == "set" then (if v ? outPath then "a derivation" else "an attribute set")
    else if t == "lambda" then "a function" else "a ${t}";
  typeNames = { string = "a string"; int = "an integer"; bool = "true or false";
                set = "an attribute set"; list = "a list"; null = "null"; };
  checkType = fn: arg: kinds: v:
    if builtins.elem (builtins.typeOf v) kinds then v
    else throw "dockerTools.${fn}: ${arg} must be ${builtins.concatStringsSep " or " (map (k: typeNames.${k}) kinds)}, got ${describe v}";

  # A whole archive compressed with zstd: Pythons before 3.14 have no zstd
  # module, so the builder runs pkgs.zstd (single-threaded, deterministic).
  zstdFor = compressor: if compressor == "zstd" then { zstd = "${pkgs.zstd}/bin/zstd"; } else { };

  # An image written into the store as one archive, compressed as a whole.
  archiveOf = fn: name: compressor: description: extra:
    let suffix = { gz = ".tar.gz"; zstd = ".tar.zst"; none = ".tar"; }.${checkCompressor fn compressor};
    in runBuilder "${name}${suffix}" "archive"
      ({ inherit compressor description; } // zstdFor compressor // extra);

  withPassthru = drv: passthru: meta: drv // passthru // { inherit passthru meta; };

  # Like nix2container's: $out/bin/copy-to-registry [[docker://]HOST/NAME:TAG] [--insecure]
  # pushes the image (to its own name and tag without an argument).
  copyToRegistryOf = description: withPassthru
    (runBuilder "copy-to-registry" "push-script" { inherit python src description; })
    { } { mainProgram = "copy-to-registry"; };

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
    , layerCompression ? "none"  # also record the digests of the layers' gzip/zstd forms
    }:
    let chk = checkType "buildLayer"; in
    runBuilder "layer" "layer" ({
      uid = chk "uid" [ "int" ] uid;
      gid = chk "gid" [ "int" ] gid;
      uname = chk "uname" [ "string" ] uname;
      gname = chk "gname" [ "string" ] gname;
      mtime = chk "mtime" [ "string" "int" ] mtime;
      perms = map (p: chk "perms element" [ "set" ] p) (chk "perms" [ "list" ] perms);
      maxLayers = if builtins.isInt maxLayers && maxLayers >= 1 then maxLayers
        else throw "dockerTools.buildLayer: maxLayers must be an integer of at least 1, got ${toString maxLayers}";
      copyToRoot = checkPaths "buildLayer" "copyToRoot" (toList copyToRoot);
      ignore = toList ignore;
      parentLayers = chk "layers" [ "list" ] layers;
      exportReferencesGraph.closure = checkPaths "buildLayer" "deps" (chk "deps" [ "list" ] deps)
        ++ toList copyToRoot;
    } // ifCompressed "buildLayer" layerCompression);

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
    , layeringPipeline ? null    # nixpkgs' custom layering steps: not implemented, a warning says so
    , debug ? false              # nixpkgs prints its layering; accepted and ignored
    , layerCompression ? "none"  # "gzip"/"zstd": compressed-layer digests computed at build time
    }:
    let
      fn = "streamLayeredImage";
      chk = checkType fn;
      imageName = builtins.seq (if layeringPipeline == null then null else builtins.trace
        "warning: dockerTools.${fn}: layeringPipeline is not supported here and is ignored: the closure is split into layers by popularity (maxLayers)"
        null) (checkName fn name);
      baseName = baseNameOf imageName;
      contentsList = checkContents fn (toList contents);
      custom = customisationLayer {
        inherit baseName;
        extraCommands = chk "extraCommands" [ "string" ] extraCommands;
        fakeRootCommands = chk "fakeRootCommands" [ "string" ] fakeRootCommands;
        enableFakechroot = chk "enableFakechroot" [ "bool" ] enableFakechroot;
        mtime = chk "mtime" [ "string" "int" ] mtime;
        includeNixDB = chk "includeNixDB" [ "bool" ] includeNixDB;
        nixUid = chk "nixUid" [ "int" ] nixUid;
        nixGid = chk "nixGid" [ "int" ] nixGid;
        contents = contentsList;
        config = runConfig;
      };
      runConfig = if config == null then { } else checkConfig fn config;  # null: as buildImage takes it
      conf = runBuilder "${baseName}-conf" "layers" ({
        inherit imageName created mtime;
        config = runConfig;
        fromImageName = chk "fromImageName" [ "null" "string" ] fromImageName;
        fromImageTag = chk "fromImageTag" [ "null" "string" ] fromImageTag;
        architecture = chk "architecture" [ "string" ] architecture;
        variant = chk "variant" [ "null" "string" ] variant;
        uid = chk "uid" [ "int" ] uid;
        gid = chk "gid" [ "int" ] gid;
        uname = chk "uname" [ "string" ] uname;
        gname = chk "gname" [ "string" ] gname;
        includeStorePaths = chk "includeStorePaths" [ "bool" ] includeStorePaths;
        layers = chk "layers" [ "list" ] layers;
        tag = checkTag fn tag;
        fromImage = checkFromImage fn fromImage;
        maxLayers = checkMaxLayers fn maxLayers;
        os = "linux";
        customisationLayer = custom;
        excludePaths = [ custom ];
        exportReferencesGraph.closure = [ custom ]
          ++ (if chk "includeStorePaths" [ "bool" ] includeStorePaths then contentsList else [ ]);
      } // ifCompressed fn layerCompression);
      imageTag = if tag != null then tag else hashPart conf;
      stream = runBuilder "stream-${baseName}" "script" {
        inherit python src;
        description = conf;
      };
    in
    withPassthru stream ({
      inherit imageName imageTag conf;
      isExe = true;
      copyToRegistry = copyToRegistryOf conf;
    } // chk "passthru" [ "set" ] passthru) (chk "meta" [ "set" ] meta);

  buildLayeredImage = args@{ name
    , format ? "docker"            # "oci": an OCI archive (index.json, blobs/, manifest.json)
    , layerCompression ? "none"    # layers inside the archive: "none", "gzip" or "zstd"
      # the whole archive; compressed layers are not compressed again
    , compressor ? (if layerCompression == "none" then "gz" else "none")
    , ... }:
    let
      fn = "buildLayeredImage";
      stream = streamLayeredImage (builtins.removeAttrs args [ "compressor" "format" ]);
      archive = archiveOf fn (baseNameOf stream.imageName) compressor stream.conf
        ((if checkFormat fn format == "docker" then { } else { inherit format; })
          // ifCompressed fn layerCompression);
    in
    withPassthru archive ({ inherit (stream) imageName imageTag conf copyToRegistry; inherit stream; }
      // (args.passthru or { })) (args.meta or { });

  # One new layer on an optional base, as nixpkgs' buildImage. runAsRoot runs
  # as root in the merged root filesystem with no virtual machine (fakeroot
  # and proot); the layer is then the difference from the base, whiteouts
  # included.
  buildImage = args@{ name
    , tag ? null
    , fromImage ? null
    , fromImageName ? null
    , fromImageTag ? null
    , copyToRoot ? null
    , contents ? null              # older name of copyToRoot
    , keepContentsDirlinks ? false
    , config ? null
    , architecture ? hostPlatform.architecture
    , variant ? variantOf architecture
    , runAsRoot ? null
    , extraCommands ? ""
    , uid ? 0
    , gid ? 0
    , created ? "1970-01-01T00:00:01Z"
    , compressor ? "gz"
    , includeNixDB ? false
    , diskSize ? 1024              # accepted and ignored: no virtual machine here
    , buildVMMemorySize ? 512      # accepted and ignored
    , passthru ? { }
    , meta ? { }
    }:
    let
      fn = "buildImage";
      chk = checkType fn;
      imageName = checkName fn name;
      baseName = baseNameOf imageName;
      roots = if copyToRoot != null then checkPaths fn "copyToRoot" (toList copyToRoot)
              else checkContents fn (toList contents);
      runConfig = checkConfig fn (if config == null then { } else config);
      # Its output names the store paths the config mentions: their closure
      # goes into the layer (the file itself does not).
      configRefs = writeTree "${baseName}-config-refs" [
        { path = "config.json"; text = builtins.toJSON runConfig; }
      ];
      script = if runAsRoot == null then "" else chk "runAsRoot" [ "null" "string" ] runAsRoot;
      layer = runBuilder "${baseName}-layer" "image-layer" ({
        keepContentsDirlinks = chk "keepContentsDirlinks" [ "bool" ] keepContentsDirlinks;
        extraCommands = chk "extraCommands" [ "string" ] extraCommands;
        uid = chk "uid" [ "int" ] uid;
        gid = chk "gid" [ "int" ] gid;
        includeNixDB = chk "includeNixDB" [ "bool" ] includeNixDB;
        fromImageName = chk "fromImageName" [ "null" "string" ] fromImageName;
        fromImageTag = chk "fromImageTag" [ "null" "string" ] fromImageTag;
        architecture = chk "architecture" [ "string" ] architecture;
        copyToRoot = roots;
        fromImage = checkFromImage fn fromImage;
        runAsRoot = script;
        mtime = "1970-01-01T00:00:01Z";
        bash = "${pkgs.bash}/bin/bash";
        tools = [ pkgs.coreutils pkgs.bash ];
        excludePaths = [ configRefs ];
        exportReferencesGraph.closure = roots ++ [ configRefs ];
      } // (if script != "" then {
        fakeroot = "${pkgs.fakeroot}/bin/fakeroot";
        proot = "${pkgs.proot}/bin/proot";
        inherit python;
      } else { }));
      conf = runBuilder "${baseName}-conf" "layers" {
        inherit imageName fromImageName fromImageTag architecture;
        variant = chk "variant" [ "null" "string" ] variant;
        created = chk "created" [ "string" ] created;
        config = runConfig;
        tag = checkTag fn tag;
        fromImage = checkFromImage fn fromImage;
        os = "linux";
        maxLayers = 1000000;
        customisationLayer = layer;
        # The one layer holds the store paths: no store layers, so none of
        # their settings matter.
        includeStorePaths = false;
        closure = [ ]; excludePaths = [ ]; layers = [ ];
        uid = 0; gid = 0; uname = "root"; gname = "root"; mtime = 1;
      };
      imageTag = if tag != null then tag else hashPart conf;
      archive = archiveOf fn baseName compressor conf { };
    in
    withPassthru archive ({ inherit imageName imageTag conf layer; buildArgs = args;
                            copyToRegistry = copyToRegistryOf conf; }
      // chk "passthru" [ "set" ] passthru) (chk "meta" [ "set" ] meta);

  buildImageWithNixDb = args: buildImage (args // { includeNixDB = true; });

  # The merged root filesystem of an image, as one tarball.
  exportImage = { fromImage, fromImageName ? null, fromImageTag ? null, diskSize ? 1024
                , name ? "${baseNameOf (toString fromImage.name or "image")}-export.tar" }:
    let chk = checkType "exportImage"; in
    runBuilder name "export" {
      fromImageName = chk "fromImageName" [ "null" "string" ] fromImageName;
      fromImageTag = chk "fromImageTag" [ "null" "string" ] fromImageTag;
      fromImage = if fromImage == null then throw "dockerTools.exportImage: fromImage is null: give the image to export"
        else checkFromImage "exportImage" fromImage;
    };

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
    images = map (img: if builtins.isAttrs img && img.isExe or false then img.conf
                       else if img == null then throw "dockerTools.mergeImages: an element of the list is null"
                       else checkImageArg "mergeImages" "each element" img)
      (if builtins.isList images && images != [ ] then images
       else throw "dockerTools.mergeImages: takes a non-empty list of images, got ${
         if images == [ ] then "[ ]" else describe images}");
    zstd = "${pkgs.zstd}/bin/zstd";  # reads zstd-compressed inputs on any Python
  };

  # --- registries and platforms ----------------------------------------------
  # An image fetched by digest into a docker archive, as nixpkgs' pullImage:
  # a fixed-output derivation (flat sha256 of the archive). The builder
  # fetches it itself; `python3 -m builder prefetch REF` prints imageDigest
  # and hash. A digest naming a multi-platform index resolves to os/arch/variant.
  pullImage =
    { imageName                  # e.g. "nixos/nix", "registry.example.com:5000/team/app"
    , imageDigest                # "sha256:..." of the manifest or of the index
    , hash ? null                # SRI hash of the archive, "sha256-..."
    , sha256 ? null              # the older spelling
    , os ? "linux"
    , arch ? hostPlatform.architecture
    , variant ? null
    , finalImageName ? imageName # the name:tag the archive carries
    , finalImageTag ? "latest"
    , tlsVerify ? true           # false: plain http
    , name ? null                # default: docker-image-<finalImageName>-<finalImageTag>.tar
    , outputHash ? null          # as nixpkgs' withNormalizedHash: outputHash and outputHashAlgo
    , outputHashAlgo ? null      #   may be given instead of hash
    }:
    let
      fn = "pullImage";
      chk = checkType fn;
      sourceName =
        let n = chk "imageName" [ "string" ] imageName; in
        if builtins.match "(.*/)?[^/]*[:@][^/]*" n != null
        then throw "dockerTools.${fn}: imageName \"${n}\" carries a tag or digest: give the name alone (imageDigest picks the image, finalImageTag names the result)"
        else builtins.seq (checkNameArg fn "imageName" n) n;
      finalName = chk "finalImageName" [ "string" ] finalImageName;
      finalTag = chk "finalImageTag" [ "string" ] finalImageTag;
      drvName = builtins.seq sourceName (if name != null then name
        else builtins.replaceStrings [ "/" ":" ] [ "-" "-" ] "docker-image-${finalName}-${finalTag}.tar");
      given = builtins.filter (x: x != null) [ hash sha256 outputHash ];
      fetchHash =
        if builtins.length given > 1 then throw "dockerTools.${fn}: give one of hash, sha256 or outputHash, not several"
        else if given == [ ] then throw "dockerTools.${fn}: hash is missing (python3 -m builder prefetch ${sourceName} prints it; hash = \"\" makes Nix print it after fetching)"
        else chk "hash" [ "string" ] (builtins.head given);
      # An SRI hash names its algorithm; a bare sha256 (or "", to be told the hash) needs it said.
      hashAlgo = if outputHashAlgo != null then { outputHashAlgo = outputHashAlgo; }
        else if hash == null || hash == "" then { outputHashAlgo = "sha256"; } else { };
      digest =
        if builtins.isString imageDigest && builtins.match "sha256:[0-9a-f]{64}" imageDigest != null
        then imageDigest
        else throw "dockerTools.${fn}: imageDigest \"${toString imageDigest}\" is not a sha256 digest (sha256:<64 hex digits>)";
    in
    runBuilder drvName "pull-image" ({
      os = chk "os" [ "string" ] os;
      arch = chk "arch" [ "string" ] arch;
      variant = chk "variant" [ "null" "string" ] variant;
      tlsVerify = chk "tlsVerify" [ "bool" ] tlsVerify;
      outputHash = fetchHash;
      imageDigest = digest;
      imageName = finalName;
      imageTag = finalTag;
      outputHashMode = "flat";
      # As nixpkgs' fetchers: a proxy set where nix-build runs is used (CONNECT).
      impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy"
                        "HTTP_PROXY" "HTTPS_PROXY" "FTP_PROXY" "ALL_PROXY" "NO_PROXY" ];
      sourceURL = "docker://${sourceName}@${digest}";
      destNameTag = "${checkNameArg fn "finalImageName" finalName}:${checkTag fn finalTag}";
    } // hashAlgo
      // (if chk "tlsVerify" [ "bool" ] tlsVerify && pkgs ? cacert
          then { sslCertFile = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt"; } else { }));

  # One tag, one image per platform: an OCI image index. `images` are
  # images of this project (streamLayeredImage/buildLayeredImage results)
  # or docker archives (pullImage), each built for its architecture.
  checkImages = fn: images:
    if builtins.isList images && images != [ ] then map (img:
      if builtins.isAttrs img && img ? conf then img.conf
      else checkImageArg fn "each element of images" img) images
    else throw "dockerTools.${fn}: images must be a non-empty list of images, one per platform";

  streamMultiArchImage =
    { name
    , tag ? null                 # null: the hash part of the description's store path
    , images
    , layerCompression ? "none"  # "gzip"/"zstd": compressed-layer digests computed at build time
    , passthru ? { }
    , meta ? { }
    }:
    let
      fn = "streamMultiArchImage";
      imageName = checkName fn name;
      baseName = baseNameOf imageName;
      conf = runBuilder "${baseName}-multiarch-conf" "multiarch" ({
        inherit imageName;
        tag = checkTag fn tag;
        images = checkImages fn images;
      } // ifCompressed fn layerCompression);
      stream = runBuilder "stream-${baseName}" "script" {
        inherit python src;
        description = conf;
      };
    in
    withPassthru stream ({
      inherit imageName conf;
      imageTag = if tag != null then tag else hashPart conf;
      isExe = true;
      copyToRegistry = copyToRegistryOf conf;
    } // checkType fn "passthru" [ "set" ] passthru) (checkType fn "meta" [ "set" ] meta);

  buildMultiArchImage = args@{ name
    , layerCompression ? "none"
    , compressor ? "none"        # the whole archive: "none", "gz" or "zstd"
    , ... }:
    let
      fn = "buildMultiArchImage";
      stream = streamMultiArchImage (builtins.removeAttrs args [ "compressor" ]);
      archive = archiveOf fn "${baseNameOf stream.imageName}-oci" compressor stream.conf
        ({ format = "oci"; } // ifCompressed fn layerCompression);
    in
    withPassthru archive ({ inherit (stream) imageName imageTag conf copyToRegistry; stream = stream; }
      // (args.passthru or { })) (args.meta or { });

  buildLayeredImageWithNixDb = args: buildLayeredImage (args // { includeNixDB = true; });
  streamLayeredImageWithNixDb = args: streamLayeredImage (args // { includeNixDB = true; });

  # --- nix-shell images --------------------------------------------------------
  # As nixpkgs': the build environment of `drv` in an image, so that
  # `podman run -it IMAGE` is a nix-shell for it and `buildDerivation` inside
  # builds it. The environment is what Nix gives a builder: drv's attributes
  # as strings, /build as home and temporary directory, a build user.
  streamNixShellImage =
    { drv
    , name ? null                # default: drv.name + "-env"
    , tag ? null
    , uid ? 1000
    , gid ? 1000
    , homeDirectory ? "/build"
    , shell ? "${pkgs.bashInteractive or pkgs.bash}/bin/bash"
    , command ? null             # shell commands run instead of an interactive shell
    , run ? null                 # likewise, as nix-shell --run
    }:
    let
      fn = "streamNixShellImage";
      chk = checkType fn;
      drvAttrs =
        if !(builtins.isAttrs drv && drv ? drvAttrs)
        then throw "dockerTools.${fn}: drv must be a derivation, got ${describe drv}"
        else if drv.drvAttrs.__structuredAttrs or false
        then throw "dockerTools.${fn}: ${drv.name} uses __structuredAttrs, which this does not support"
        else if command != null && run != null
        then throw "dockerTools.${fn}: give command or run, not both"
        else drv.drvAttrs;
      esc = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
      # Nix's conversion of derivation attributes to environment variables.
      valueToString = v:
        if builtins.isPath v then "${v}"
        else if builtins.isList v then builtins.concatStringsSep " " (map valueToString v)
        else toString v;
      builderBin = writeTree "build-derivation" [{
        path = "bin/buildDerivation"; mode = 365; # 0555
        text = "#!${shell}\nexec ${esc (valueToString drvAttrs.builder)} ${
          builtins.concatStringsSep " " (map (a: esc (valueToString a)) (drvAttrs.args or [ ]))}\n";
      }];
      staticPath = "${dirOf shell}:${builderBin}/bin";
      rcfile = writeTree "nix-shell-rc" [{
        path = "rc";
        text = ''
          unset PATH
          dontAddDisableDepTrack=1
          [ -e "$stdenv/setup" ] && source "$stdenv/setup"
          PATH=${staticPath}:"$PATH"
          SHELL=${esc shell}
          BASH=${esc shell}
          set +e
          [ -n "$PS1" ] && [ -z "$NIX_SHELL_PRESERVE_PROMPT" ] && PS1='\n\[\033[1;32m\][nix-shell:\w]\$\[\033[0m\] '
          if [ "$(type -t runHook 2>/dev/null)" = function ]; then
            runHook shellHook
          fi
          unset NIX_ENFORCE_PURITY
          shopt -u nullglob 2>/dev/null
          shopt -s execfail 2>/dev/null
          ${if command != null || run != null then ''
            ${if command != null then chk "command" [ "string" ] command else ""}
            ${if run != null then chk "run" [ "string" ] run else ""}
            exit
          '' else ""}
        '';
      }];
      passAsFile = drvAttrs.passAsFile or [ ];
      drvEnv = builtins.listToAttrs (map (n:
        let str = valueToString drvAttrs.${n}; in
        if builtins.elem n passAsFile
        then { name = "${n}Path"; value = "${writeTree "shell-passAsFile-${n}" [ { path = "attr"; text = str; } ]}/attr"; }
        else { name = n; value = str; })
        (builtins.filter (n: n != "args") (builtins.attrNames drvAttrs)))
        # Outputs are where the build would put them; they need not exist.
        // builtins.listToAttrs (map (o: { name = o; value = builtins.unsafeDiscardStringContext drv.${o}.outPath; })
          (drv.outputs or drvAttrs.outputs or [ "out" ]));
      buildDir = "/build";
      envVars = {
        PATH = staticPath;
        HOME = homeDirectory;
        NIX_STORE = builtins.storeDir;
        NIX_BUILD_CORES = "1";
      } // (if pkgs ? cacert then {
        SSL_CERT_FILE = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt";
        NIX_SSL_CERT_FILE = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt";
      } else { }) // drvEnv // {
        NIX_BUILD_TOP = buildDir;
        TMPDIR = buildDir; TEMPDIR = buildDir; TMP = buildDir; TEMP = buildDir;
        PWD = buildDir;
        TERM = "xterm-256color";
      };
      ids = "${toString (chk "uid" [ "int" ] uid)}:${toString (chk "gid" [ "int" ] gid)}";
    in
    streamLayeredImage {
      inherit tag;
      name = if name != null then name else builtins.seq drvAttrs (drv.name + "-env");
      contents = [
        binSh
        usrBinEnv
        (makeFakeNss {
          extraPasswdLines = [ "nixbld:x:${ids}:Build user:${homeDirectory}:/noshell" ];
          extraGroupLines = [ "nixbld:!:${toString gid}:" ];
        })
      ];
      # A single-user Nix: the build user owns the store, and the build directory.
      fakeRootCommands = ''
        mkdir -p ./nix/store ./nix/var/nix ./etc/nix .${buildDir}
        chown -R ${ids} ./nix ./etc/nix .${buildDir}
      '';
      config = {
        User = ids;
        Cmd = if run == null then [ shell "--rcfile" "${rcfile}/rc" ] else [ shell "${rcfile}/rc" ];
        WorkingDir = buildDir;
        Env = map (n: "${n}=${envVars.${n}}") (builtins.attrNames (builtins.seq drvAttrs envVars));
      };
    };

  buildNixShellImage = args@{ drv, compressor ? "gz", ... }:
    let
      fn = "buildNixShellImage";
      stream = streamNixShellImage (builtins.removeAttrs args [ "compressor" ]);
      archive = archiveOf fn (baseNameOf stream.imageName) compressor stream.conf { };
    in
    withPassthru archive { inherit (stream) imageName imageTag conf copyToRegistry; inherit stream; } { };

  # As nixpkgs' lib.makeOverridable: image.override { tag = "v2"; } (or a
  # function of the old arguments) is the same call with changed arguments.
  overridable = f: args:
    let result = f args; in
    result // {
      override = changes: overridable f (args // (if builtins.isFunction changes then changes args else changes));
    };

in
{
  streamLayeredImage = overridable streamLayeredImage;
  buildLayeredImage = overridable buildLayeredImage;
  buildImage = overridable buildImage;
  buildLayeredImageWithNixDb = overridable buildLayeredImageWithNixDb;
  streamLayeredImageWithNixDb = overridable streamLayeredImageWithNixDb;
  buildImageWithNixDb = overridable buildImageWithNixDb;
  inherit buildLayer exportImage fakeNss binSh usrBinEnv caCertificates shadowSetup mergeImages;
  inherit pullImage streamMultiArchImage buildMultiArchImage;
  inherit streamNixShellImage buildNixShellImage;
}
