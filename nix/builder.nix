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
  src = builtins.path {
    name = "dockertools-builder";
    path = ../.;
    filter = path: type:
      let rel = builtins.substring (builtins.stringLength (toString ../.)) (-1) path;
      in (rel == "/builder" || builtins.substring 0 9 rel == "/builder/")
         && builtins.match ".*(__pycache__|\\.pyc)$" rel == null;
  };

  python = "${pkgs.python3}/bin/python3";

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

  # The executable that streams an image from its description (`conf`).
  streamScript = baseName: conf: runBuilder "stream-${baseName}" "script" {
    inherit python src;
    description = conf;
  };
}
