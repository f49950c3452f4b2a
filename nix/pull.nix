# pullImage: an image fetched by digest from a registry into a docker
# archive, as nixpkgs' pullImage (a fixed-output derivation).
{ pkgs, lib, platform, checks, builder, result }:

let
  inherit (lib) checkType;
  inherit (platform) hostPlatform;
  inherit (checks) checkNameArg checkTag;
  inherit (builder) runBuilder;
  inherit (result) mkResult;

  # A fixed-output derivation (flat sha256 of the archive). The builder
  # fetches it itself; `python3 -m builder prefetch REF` prints imageDigest
  # and hash. A digest naming a multi-platform index resolves to os/arch/variant.
  pullImage = args@
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
    , authFile ? null            # "/etc/nix/registry-auth.json": credentials read at build time,
                                 #   a string naming a file outside the store (never copied into it)
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
      # The file's *name* goes into the derivation; its contents never reach
      # the store. A path value would be copied into the (world-readable)
      # store, and a store path already is there: both refused.
      authFileAttr =
        if authFile == null then { }
        else if builtins.isPath authFile then throw "dockerTools.${fn}: authFile is a path value, which Nix would copy into the world-readable store with the credentials in it: give the file's name as a string, authFile = \"/etc/nix/registry-auth.json\""
        else if !builtins.isString authFile then chk "authFile" [ "null" "string" ] authFile
        else if builtins.hasContext authFile || builtins.substring 0 (builtins.stringLength builtins.storeDir + 1) authFile == "${builtins.storeDir}/"
        then throw "dockerTools.${fn}: authFile \"${builtins.unsafeDiscardStringContext authFile}\" is in the Nix store, which every user can read: keep credentials outside it (e.g. /etc/nix/registry-auth.json, readable by the nixbld group)"
        else if builtins.substring 0 1 authFile != "/" then throw "dockerTools.${fn}: authFile \"${authFile}\" must be an absolute path"
        else { inherit authFile; };
      digest =
        if builtins.isString imageDigest && builtins.match "sha256:[0-9a-f]{64}" imageDigest != null
        then imageDigest
        else throw "dockerTools.${fn}: imageDigest \"${toString imageDigest}\" is not a sha256 digest (sha256:<64 hex digits>)";
    in
    mkResult {
      function = pullImage;
      inherit args;
      drv = runBuilder drvName "pull-image" ({
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
        # REGISTRY_AUTH_FILE too: the name of an auth file, when authFile is not given.
        impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy"
                          "HTTP_PROXY" "HTTPS_PROXY" "FTP_PROXY" "ALL_PROXY" "NO_PROXY"
                          "REGISTRY_AUTH_FILE" ];
        sourceURL = "docker://${sourceName}@${digest}";
        destNameTag = "${checkNameArg fn "finalImageName" finalName}:${checkTag fn finalTag}";
      } // hashAlgo // authFileAttr
        // (if chk "tlsVerify" [ "bool" ] tlsVerify && pkgs ? cacert
            then { sslCertFile = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt"; } else { }));
    };
in
{
  inherit pullImage;
}
