# Multi-platform images: one tag, one image per platform, as an OCI image
# index. streamMultiArchImage streams it; buildMultiArchImage writes it into
# the store as an OCI archive.
{ lib, checks, builder, result }:

let
  inherit (lib) hashPart checkType;
  inherit (checks) checkName checkTag checkImages ifCompressed;
  inherit (builder) runBuilder archiveOf copyToolsOf streamScript;
  inherit (result) mkResult;

  # `images` are images of this project (streamLayeredImage/buildLayeredImage
  # results) or docker archives (pullImage), each built for its architecture.
  streamMultiArchImage = args@
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
    in
    mkResult {
      function = streamMultiArchImage;
      inherit args;
      drv = streamScript baseName conf;
      passthru = {
        inherit imageName conf;
        imageTag = if tag != null then tag else hashPart conf;
        isExe = true;
        inherit (copyToolsOf conf) copyToRegistry copyTo copyToDockerDaemon copyToPodman;
      } // checkType fn "passthru" [ "set" ] passthru;
      meta = checkType fn "meta" [ "set" ] meta;
    };

  buildMultiArchImage = args@{ name
    , layerCompression ? "none"
    , compressor ? "none"        # the whole archive: "none", "gz" or "zstd"
    , ... }:
    let
      fn = "buildMultiArchImage";
      stream = streamMultiArchImage (builtins.removeAttrs args [ "compressor" ]);
    in
    mkResult {
      function = buildMultiArchImage;
      inherit args;
      drv = archiveOf fn "${baseNameOf stream.imageName}-oci" compressor stream.conf
        ({ format = "oci"; } // ifCompressed fn layerCompression);
      passthru = { inherit (stream) imageName imageTag conf copyToRegistry copyTo copyToDockerDaemon copyToPodman;
        inherit stream; }
        // (args.passthru or { });
      meta = args.meta or { };
    };
in
{
  inherit streamMultiArchImage buildMultiArchImage;
}
