# Layered images: explicit layers (buildLayer), the customisation layer,
# streamLayeredImage (an executable that streams the image), buildLayeredImage
# (the same image as an archive in the store), and their WithNixDb variants.
{ pkgs, lib, platform, checks, builder, result }:

let
  inherit (lib) toList hashPart checkType;
  inherit (platform) hostPlatform variantOf;
  inherit (checks) checkName checkTag checkConfig checkMaxLayers checkFormat ifCompressed
    checkPaths checkContents checkFromImage checkPerms checkMetadata;
  inherit (builder) python runBuilder archiveOf copyToolsOf streamScript;
  inherit (result) mkResult;
  sbom = import ./sbom.nix { inherit runBuilder; };

  # The customisation layer: contents linked at /, extraCommands,
  # fakeRootCommands under fakeroot, the Nix database.
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

  # Explicit layers, as nix2container's buildLayer: each its own derivation,
  # so an unchanged group of dependencies is never rebuilt nor re-hashed.
  buildLayer = args@
    { deps ? [ ]             # store paths whose closures go in
    , copyToRoot ? null      # derivations whose contents go at /
    , ignore ? null          # a store path to leave out
    , layers ? [ ]           # buildLayer results whose paths are not repeated
    , maxLayers ? 1          # split by popularity into at most this many layers
    , perms ? [ ]            # [ { path; regex; mode; uid; gid; uname; gname; } ]: regex found anywhere in the path, mode "0644"
    , reproducible ? true    # false: the layer's tar is kept in this output, streams copy it (nix2container's)
    , uid ? 0, gid ? 0, uname ? "root", gname ? "root", mtime ? "1970-01-01T00:00:01Z"
    , metadata ? { }         # the layer's history entry: { created_by; comment; author; }
    , layerCompression ? "none"  # also record the digests of the layers' gzip/zstd forms
    }:
    let chk = checkType "buildLayer"; in
    mkResult {
      function = buildLayer;
      inherit args;
      drv = runBuilder "layer" "layer" ({
        uid = checks.checkId "buildLayer" "uid" uid;
        gid = checks.checkId "buildLayer" "gid" gid;
        uname = chk "uname" [ "string" ] uname;
        gname = chk "gname" [ "string" ] gname;
        mtime = chk "mtime" [ "string" "int" ] mtime;
        perms = checkPerms "buildLayer" perms;
        maxLayers = if builtins.isInt maxLayers && maxLayers >= 1 then maxLayers
          else throw "dockerTools.buildLayer: maxLayers must be an integer of at least 1, got ${toString maxLayers}";
        copyToRoot = checkPaths "buildLayer" "copyToRoot" (toList copyToRoot);
        ignore = toList ignore;
        parentLayers = chk "layers" [ "list" ] layers;
        exportReferencesGraph.closure = checkPaths "buildLayer" "deps" (chk "deps" [ "list" ] deps)
          ++ toList copyToRoot;
      } // ifCompressed "buildLayer" layerCompression
        # Only non-default values become attributes: existing layers keep their derivations.
        // (if checkMetadata "buildLayer" metadata == { } then { } else { inherit metadata; })
        // (if chk "reproducible" [ "bool" ] reproducible then { } else { reproducible = false; }));
    };

  # `fn` is the function the user called: the one error messages name.
  streamLayeredImageAs = fn: args@
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
    , layeringPipeline ? null    # nixpkgs' custom layering steps (builder/steps/pipeline.py)
    , debug ? false              # nixpkgs prints its layering; accepted and ignored
    , layerCompression ? "none"  # "gzip"/"zstd": compressed-layer digests computed at build time
    , sbomFormat ? "spdx"        # passthru.sbom: "spdx" (2.3) or "cyclonedx" (1.5), JSON
    }:
    let
      chk = checkType fn;
      imageName = checkName fn name;
      # nixpkgs' custom layering: a list of steps, or a JSON file (a
      # derivation or path) holding one. Only set when given, so images
      # without it keep their derivations.
      pipeline = if layeringPipeline == null then { }
        else if builtins.isList layeringPipeline then { inherit layeringPipeline; }
        else if builtins.isPath layeringPipeline || builtins.isString layeringPipeline
          || (builtins.isAttrs layeringPipeline && layeringPipeline ? outPath)
        then { layeringPipeline = "${layeringPipeline}"; }
        else throw "dockerTools.${fn}: layeringPipeline must be a list of steps (like [ [ \"popularity_contest\" ] [ \"limit_layers\" 10 ] ]) or a JSON file holding one, got ${lib.describe layeringPipeline}";
      baseName = baseNameOf imageName;
      contentsList = checkContents fn (toList contents);
      custom = customisationLayer {
        inherit baseName;
        extraCommands = chk "extraCommands" [ "string" ] extraCommands;
        fakeRootCommands = chk "fakeRootCommands" [ "string" ] fakeRootCommands;
        enableFakechroot = chk "enableFakechroot" [ "bool" ] enableFakechroot;
        mtime = chk "mtime" [ "string" "int" ] mtime;
        includeNixDB = chk "includeNixDB" [ "bool" ] includeNixDB;
        nixUid = checks.checkId fn "nixUid" nixUid;
        nixGid = checks.checkId fn "nixGid" nixGid;
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
        uid = checks.checkId fn "uid" uid;
        gid = checks.checkId fn "gid" gid;
        uname = chk "uname" [ "string" ] uname;
        gname = chk "gname" [ "string" ] gname;
        includeStorePaths = chk "includeStorePaths" [ "bool" ] includeStorePaths;
        layers = chk "layers" [ "list" ] layers;
        tag = checkTag fn tag;
        fromImage = checkFromImage fn fromImage;
        maxLayers = checkMaxLayers fn maxLayers;
        os = "linux";
        customisationLayer = custom;
        sbomContents = sbom.contentsMeta contentsList;
        excludePaths = [ custom ];
        exportReferencesGraph.closure = [ custom ]
          ++ (if chk "includeStorePaths" [ "bool" ] includeStorePaths then contentsList else [ ]);
      } // ifCompressed fn layerCompression // pipeline);
    in
    mkResult {
      function = streamLayeredImage;
      inherit args;
      # sbomFormat is checked with the image, not only when .sbom is asked for.
      drv = builtins.seq (sbom.checkSbomFormat fn sbomFormat) (streamScript baseName conf);
      passthru = {
        inherit imageName conf;
        imageTag = if tag != null then tag else hashPart conf;
        isExe = true;
        inherit (copyToolsOf conf) copyToRegistry copyTo copyToDockerDaemon copyToPodman;
        sbom = sbom.sbomOf baseName sbomFormat conf;
      } // chk "passthru" [ "set" ] passthru;
      meta = chk "meta" [ "set" ] meta;
    };

  streamLayeredImage = streamLayeredImageAs "streamLayeredImage";

  buildLayeredImage = args@{ name
    , format ? "docker"            # "oci": an OCI archive (index.json, blobs/, manifest.json)
    , layerCompression ? "none"    # layers inside the archive: "none", "gzip" or "zstd"
      # the whole archive; compressed layers are not compressed again
    , compressor ? (if layerCompression == "none" then "gz" else "none")
    , ... }:
    let
      fn = "buildLayeredImage";
      stream = streamLayeredImageAs fn (builtins.removeAttrs args [ "compressor" "format" ]);
    in
    mkResult {
      function = buildLayeredImage;
      inherit args;
      drv = archiveOf fn (baseNameOf stream.imageName) compressor stream.conf
        ((if checkFormat fn format == "docker" then { } else { inherit format; })
          // ifCompressed fn layerCompression);
      passthru = { inherit (stream) imageName imageTag conf copyToRegistry copyTo copyToDockerDaemon copyToPodman sbom;
        inherit stream; }
        // (args.passthru or { });
      meta = args.meta or { };
    };

  # The same image with includeNixDB = true; .override keeps it so.
  buildLayeredImageWithNixDb = args:
    let image = buildLayeredImage (args // { includeNixDB = true; }); in
    mkResult { drv = image; inherit (image) passthru meta; function = buildLayeredImageWithNixDb; inherit args; };
  streamLayeredImageWithNixDb = args:
    let image = streamLayeredImage (args // { includeNixDB = true; }); in
    mkResult { drv = image; inherit (image) passthru meta; function = streamLayeredImageWithNixDb; inherit args; };
in
{
  inherit buildLayer streamLayeredImage buildLayeredImage
    buildLayeredImageWithNixDb streamLayeredImageWithNixDb;
}
