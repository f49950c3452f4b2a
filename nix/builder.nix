# The Python builder and the derivations that run it: the builder's source
# (builder/ alone in its own store path), one build step (runBuilder), small
# file trees, whole archives, the stream script and the copy-to-registry script.
{ pkgs, platform, checks, result }:

let
  inherit (checks) checkCompressor;
  inherit (result) mkResult;
in
rec {
  # The builder package, alone in its own store path: editing anything else
  # in this repository does not rebuild images. ../. is the repository root
  # (the same store path as ./. from the root: the filter keeps builder/ only).
  sources = builtins.path {
    name = "dockertools-builder-sources";
    path = ../.;
    filter = path: type:
      let rel = builtins.substring (builtins.stringLength (toString ../.)) (-1) path;
      in (rel == "/builder" || builtins.substring 0 9 rel == "/builder/")
         && builtins.match ".*(__pycache__|\\.pyc)$" rel == null;
  };

  python = "${pkgs.python3}/bin/python3";

  # The same, with its bytecode: every step runs `python3 -IB` (scripts -IBS)
  # (no bytecode written), which would otherwise compile each module it
  # imports on every run (about 60 ms of every push). Hash-based pycs that
  # are never checked against their source (the store does not change);
  # PYTHONHASHSEED=0 so that sets of constants are written in one order.
  src = builtins.derivation {
    name = "dockertools-builder";
    system = platform.buildSystem;
    builder = python;
    args = [ "-B" "-c" compileBuilder ];
    inherit sources;
    PYTHONHASHSEED = "0";
  };
  compileBuilder = ''
    import os, sys
    sys.path.insert(0, os.environ["sources"])
    from builder.selfcompile import copy_compiled
    copy_compiled(os.environ["sources"], os.environ["out"])
  '';

  # zstd: the standard library has no zstd (before Python 3.14), so steps that
  # may read or write zstd layers or archives get pkgs.zstd's program; the
  # descriptions they write record it, so the stream uses the very same one
  # (its bytes, hence the recorded digests, depend on zstd's version).
  zstdSteps = [ "layers" "layer" "image-layer" "image-layer-fakeroot" "export" "multiarch"
                "archive" "merge" "pull-image" ];
  zstdOf = cmd: if builtins.elem cmd zstdSteps && pkgs ? zstd
    then { zstd = "${pkgs.zstd}/bin/zstd"; } else { };

  # One build step: the builder's subcommand `cmd`, configured by `attrs`.
  runBuilder = name: cmd: attrs: builtins.derivation ({
    inherit name;
    system = platform.buildSystem;  # the machine the build runs on
    builder = python;
    args = [ "-IB" "${src}/builder" cmd ];
    __structuredAttrs = true;
    contractVersion = 1;  # what builder/contract.py reads; change both together
  } // zstdOf cmd // attrs);

  # A small tree of files, symlinks and directories, written by the builder.
  writeTree = name: files: runBuilder name "files" { inherit files; };

  # An image written into the store as one archive, compressed as a whole.
  archiveOf = fn: name: compressor: description: extra:
    let suffix = { gz = ".tar.gz"; zstd = ".tar.zst"; none = ".tar"; }.${checkCompressor fn compressor};
    in runBuilder "${name}${suffix}" "archive"
      ({ inherit compressor description; } // extra);

  # Like nix2container's: $out/bin/copy-to-registry [[docker://]HOST/NAME:TAG] [--insecure]
  # pushes the image (to its own name and tag without an argument).
  copyToRegistryOf = description: mkResult {
    drv = runBuilder "copy-to-registry" "push-script" { inherit python src description; };
    meta = { mainProgram = "copy-to-registry"; };
  };

  # A user command as its own executable: prefetch-image (nix-prefetch-docker's
  # options and output), as a flake package and app.
  commandScript = program: command: mkResult {
    drv = runBuilder program "command-script" ({
      inherit python src program command;
    } // (if pkgs ? cacert then { sslCertFile = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt"; } else { }));
    meta = { mainProgram = program; description = "dockerTools: ${command}"; };
  };

  # nix2container's copyTo, copyToDockerDaemon and copyToPodman:
  #   $out/bin/copy-to DEST (docker://, docker-daemon:, containers-storage:,
  #     docker-archive:FILE, oci-archive:FILE, oci:DIR, as skopeo spells them)
  #   $out/bin/copy-to-docker-daemon [NAME:TAG] (Engine API at $DOCKER_HOST)
  #   $out/bin/copy-to-podman [NAME:TAG] (the host's podman load)
  # Each is a derivation with meta.mainProgram: nix run .#IMAGE.copyTo -- DEST.
  copyScriptOf = program: description: mkResult {
    drv = runBuilder program "copy-script" { inherit python src description program; };
    meta = { mainProgram = program; };
  };

  # Every copy executable of an image, for its passthru.
  copyToolsOf = description: {
    copyToRegistry = copyToRegistryOf description;
    copyTo = copyScriptOf "copy-to" description;
    copyToDockerDaemon = copyScriptOf "copy-to-docker-daemon" description;
    copyToPodman = copyScriptOf "copy-to-podman" description;
  };

  # The executable that streams an image from its description (`conf`).
  streamScript = baseName: conf: runBuilder "stream-${baseName}" "script" {
    inherit python src;
    description = conf;
  };
}
