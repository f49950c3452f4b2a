# dockerTools, drop-in: the same functions, arguments, defaults and passthru
# as nixpkgs' pkgs.dockerTools. Each function checks its arguments, turns
# them into one JSON configuration (__structuredAttrs) and runs the Python
# builder in ./builder; no stdenv, no shell glue.
#
# From pkgs this uses only what runs in a build: python3, and bash,
# coreutils, fakeroot and proot where user commands run.
#
# The functions live in nix/, one file per concern; this file puts them
# together. Every public result comes from nix/result.nix's mkResult.
{ pkgs ? import <nixpkgs> { } }:

let
  lib = import ./nix/lib.nix;
  result = import ./nix/result.nix;
  # The image is for pkgs' host platform; the build runs on its build
  # platform, with tools from buildPackages (the same set, natively).
  platform = import ./nix/platform.nix { inherit pkgs; };
  tools = pkgs.buildPackages or pkgs;
  checks = import ./nix/checks.nix { inherit lib; };
  builder = import ./nix/builder.nix { pkgs = tools; inherit platform checks result; };
  helpers = import ./nix/helpers.nix { inherit pkgs tools builder result; };
  layered = import ./nix/layered.nix { pkgs = tools; inherit lib platform checks builder result; };
  buildImage = import ./nix/build-image.nix { pkgs = tools; inherit lib platform checks builder result; };
  merge = import ./nix/merge.nix { pkgs = tools; inherit lib checks builder result; };
  pull = import ./nix/pull.nix { pkgs = tools; inherit lib platform checks builder result; };
  multiarch = import ./nix/multiarch.nix { inherit lib checks builder result; };
  nixShell = import ./nix/nix-shell.nix {
    inherit pkgs lib checks builder result helpers;
    inherit (layered) streamLayeredImage;
  };
in
{
  inherit (layered) streamLayeredImage buildLayeredImage buildLayer
    streamLayeredImageWithNixDb buildLayeredImageWithNixDb;
  inherit (buildImage) buildImage buildImageWithNixDb exportImage;
  inherit (helpers) fakeNss binSh usrBinEnv caCertificates shadowSetup;
  inherit (merge) mergeImages;
  inherit (pull) pullImage;
  inherit (multiarch) streamMultiArchImage buildMultiArchImage;
  inherit (nixShell) streamNixShellImage buildNixShellImage;
  # nix-prefetch-docker's counterpart: $out/bin/prefetch-image [IMAGE_NAME [TAG|DIGEST]] [options]
  prefetchImage = builder.commandScript "prefetch-image" "prefetch";
}
