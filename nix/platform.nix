# The platform images are built for: the host system from pkgs, and Go's
# names for CPUs (architecture, variant) as docker and registries spell them.
# Builds run on the build platform (pkgsCross.X.dockerTools makes X images
# on this machine), with tools from pkgs.buildPackages.
{ pkgs }:

rec {
  system = pkgs.stdenv.hostPlatform.system or pkgs.system or builtins.currentSystem;
  buildSystem = pkgs.stdenv.buildPlatform.system or system;

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
}
