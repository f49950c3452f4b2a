# Example images: nix-build examples.nix -A hello
# Uses <nixpkgs> when the Nix search path has one, else the stand-in made of
# this machine's tools (tests/hostpkgs.nix).
let
  nixpkgsOnPath = builtins.filter (e: e.prefix == "nixpkgs" && builtins.pathExists e.path)
    builtins.nixPath;
in
{ pkgs ? if nixpkgsOnPath != [ ] then import <nixpkgs> { } else import ./tests/hostpkgs.nix { }
, dockerTools ? import ./default.nix { inherit pkgs; }
}:

rec {
  # $(nix-build examples.nix -A hello) | podman load; podman run hello:latest
  hello = dockerTools.streamLayeredImage {
    name = "hello";
    tag = "latest";
    contents = [ pkgs.hello ];
    config.Cmd = [ "/bin/hello" ];
  };

  # Several packages, each popular store path on a layer of its own.
  layered = dockerTools.buildLayeredImage {
    name = "layered";
    contents = [ pkgs.hello pkgs.busybox pkgs.figlet ];
    config = {
      Cmd = [ "/bin/figlet" "layered" ];
      Env = [ "GREETING=hi" ];
      WorkingDir = "/";
    };
  };

  # On top of another image: its layers first, its config inherited.
  onBase = dockerTools.streamLayeredImage {
    name = "on-base";
    tag = "latest";
    fromImage = layered;
    contents = [ pkgs.figlet ];
    config.Env = [ "GREETING=hello" "EXTRA=1" ];
  };

  # Commands run as root under fakeroot: the owners they set stay.
  fakeRoot = dockerTools.streamLayeredImage {
    name = "fake-root";
    tag = "latest";
    contents = [ pkgs.busybox ];
    extraCommands = ''
      mkdir -p tmp
      chmod 1777 tmp
    '';
    fakeRootCommands = ''
      mkdir -p home/alice
      chown 1000:1000 home/alice
    '';
    config.Cmd = [ "/bin/sh" "-c" "ls -nd /home/alice /tmp" ];
  };
}
