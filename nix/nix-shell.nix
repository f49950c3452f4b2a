# nix-shell images, as nixpkgs': the build environment of a derivation in an
# image (streamNixShellImage streams it, buildNixShellImage writes an archive).
{ pkgs, lib, checks, builder, result, helpers, streamLayeredImage }:

let
  inherit (lib) describe checkType;
  inherit (builder) writeTree archiveOf;
  inherit (result) mkResult;
  inherit (helpers) binSh usrBinEnv makeFakeNss;

  # `podman run -it IMAGE` is a nix-shell for `drv` and `buildDerivation`
  # inside builds it. The environment is what Nix gives a builder: drv's
  # attributes as strings, /build as home and temporary directory, a build user.
  streamNixShellImage = args@
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
      ids = "${toString (checks.checkId fn "uid" uid)}:${toString (checks.checkId fn "gid" gid)}";
      image = streamLayeredImage {
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
    in
    # The streamLayeredImage result, its .override taking these arguments.
    mkResult { drv = image; inherit (image) passthru meta; function = streamNixShellImage; inherit args; };

  buildNixShellImage = args@{ drv, compressor ? "gz", ... }:
    let
      fn = "buildNixShellImage";
      stream = streamNixShellImage (builtins.removeAttrs args [ "compressor" ]);
    in
    mkResult {
      function = buildNixShellImage;
      inherit args;
      drv = archiveOf fn (baseNameOf stream.imageName) compressor stream.conf { };
      passthru = { inherit (stream) imageName imageTag conf copyToRegistry sbom; inherit stream; };
    };
in
{
  inherit streamNixShellImage buildNixShellImage;
}
