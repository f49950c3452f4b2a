{
  description = "dockerTools, drop-in: Docker and OCI images from Nix store paths, built by a standard-library Python builder";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: builtins.listToAttrs (map (system: { name = system; value = f system; }) systems);
      pkgsFor = system: nixpkgs.legacyPackages.${system};
    in
    {
      # dockerTools for each system: self.lib.x86_64-linux.buildLayeredImage { ... }
      lib = forAll (system: import ./default.nix { pkgs = pkgsFor system; });

      # Replaces pkgs.dockerTools: existing expressions use ours unchanged.
      # A package set without dockerTools (a minimal or custom one) gets ours.
      overlays.default = final: prev: {
        dockerTools = (prev.dockerTools or { }) // import ./default.nix { pkgs = final; };
      };

      # nix build .#hello; $(nix build .#hello --print-out-paths) | podman load
      # nix run .#prefetch-image -- nixos/nix 2.3   (like nix-prefetch-docker)
      packages = forAll (system:
        let examples = import ./examples.nix { pkgs = pkgsFor system; };
        in builtins.removeAttrs examples [ "override" "overrideDerivation" ]
          // { default = examples.hello; prefetch-image = self.lib.${system}.prefetchImage; });

      apps = forAll (system: {
        prefetch-image = {
          type = "app";
          program = "${self.packages.${system}.prefetch-image}/bin/prefetch-image";
        };
      });
    };
}
