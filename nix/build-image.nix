# buildImage (one new layer on an optional base, runAsRoot without a virtual
# machine), buildImageWithNixDb, and exportImage (an image's merged root
# filesystem as one tarball).
{ pkgs, lib, platform, checks, builder, result }:

let
  inherit (lib) toList hashPart checkType;
  inherit (platform) hostPlatform variantOf;
  inherit (checks) checkName checkTag checkConfig checkPaths checkContents checkFromImage;
  inherit (builder) python runBuilder writeTree archiveOf copyToRegistryOf;
  inherit (result) mkResult;
  sbom = import ./sbom.nix { inherit runBuilder; };

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
    , sbomFormat ? "spdx"          # passthru.sbom: "spdx" or "cyclonedx"
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
        uid = checks.checkId fn "uid" uid;
        gid = checks.checkId fn "gid" gid;
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
        closure = [ ]; layers = [ ];
        uid = 0; gid = 0; uname = "root"; gname = "root"; mtime = 1;
        # For the SBOM: the closure the layer holds, and its roots.
        sbomContents = sbom.contentsMeta roots;
        excludePaths = [ configRefs ];
        exportReferencesGraph.sbomClosure = roots ++ [ configRefs ];
      };
    in
    mkResult {
      function = buildImage;
      inherit args;
      # nixpkgs names it docker-image-NAME.tar.gz (buildLayeredImage: NAME.tar.gz).
      drv = builtins.seq (sbom.checkSbomFormat fn sbomFormat) (archiveOf fn "docker-image-${baseName}" compressor conf { });
      passthru = {
        inherit imageName conf layer;
        imageTag = if tag != null then tag else hashPart conf;
        buildArgs = args;
        copyToRegistry = copyToRegistryOf conf;
        sbom = sbom.sbomOf baseName sbomFormat conf;
      } // chk "passthru" [ "set" ] passthru;
      meta = chk "meta" [ "set" ] meta;
    };

  # The same image with includeNixDB = true; .override keeps it so.
  buildImageWithNixDb = args:
    let image = buildImage (args // { includeNixDB = true; }); in
    mkResult { drv = image; inherit (image) passthru meta; function = buildImageWithNixDb; inherit args; };

  # The merged root filesystem of an image, as one tarball.
  # Named as nixpkgs names it: like the image it comes from.
  exportImage = args@{ fromImage, fromImageName ? null, fromImageTag ? null, diskSize ? 1024
                , name ? fromImage.name or (let base = baseNameOf (toString fromImage);
                                                 m = builtins.match "[^-]*-(.*)" base;
                                             in if m == null then base else builtins.head m) }:
    let chk = checkType "exportImage"; in
    mkResult {
      function = exportImage;
      inherit args;
      drv = runBuilder name "export" {
        fromImageName = chk "fromImageName" [ "null" "string" ] fromImageName;
        fromImageTag = chk "fromImageTag" [ "null" "string" ] fromImageTag;
        fromImage = if fromImage == null then throw "dockerTools.exportImage: fromImage is null: give the image to export"
          else checkFromImage "exportImage" fromImage;
        # Device nodes, owners and mode 0000 files of the base, as runAsRoot keeps them.
        fakeroot = "${pkgs.fakeroot}/bin/fakeroot";
        inherit python;
      };
    };
in
{
  inherit buildImage buildImageWithNixDb exportImage;
}
