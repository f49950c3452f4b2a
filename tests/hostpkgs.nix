# A stand-in for nixpkgs made of this machine's tools (Debian 12), for
# building and testing without a nixpkgs checkout. It has every attribute
# default.nix and examples.nix use. Nix's sandbox must be off
# (tests/setup.sh sets that up) so builds can reach host programs.
{ system ? builtins.currentSystem }:

let
  sh = cmd: name: builtins.derivation {
    inherit name system;
    builder = "/bin/sh";
    args = [ "-ec" ("PATH=/usr/bin:/bin\n" + cmd) ];
  };

  # Host programs linked into $out/bin. They run in builds, not in images.
  linked = name: programs: sh ''
    mkdir -p $out/bin
    for p in ${programs}; do ln -s "$(command -v "$p")" "$out/bin/$p"; done
  '' name;

  # Copied, not linked: used where the build sees the image root as / (proot).
  copied = name: programs: sh ''
    mkdir -p $out/bin
    for p in ${programs}; do cp "$(command -v "$p")" "$out/bin/$p"; done
  '' name;

  # Static, so it runs inside images too.
  busyboxWith = name: applets: sh ''
    mkdir -p $out/bin
    cp /bin/busybox $out/bin/busybox
    for applet in ${applets}; do
      ln -s busybox $out/bin/$applet
    done
  '' name;
  busybox = busyboxWith "busybox-static" "sh ls cat echo id whoami env mkdir true false sleep uname stat";
in
rec {
  inherit system;
  stdenv.hostPlatform.system = system;

  # Debian's 3.11; build users cannot read root's pyenv Pythons.
  python3 = sh ''
    mkdir -p $out/bin
    ln -s /usr/bin/python3 $out/bin/python3
  '' "python3-host";

  bash = copied "bash-host" "bash";
  # Host programs for builds (dynamic, so fakeroot's LD_PRELOAD reaches
  # them); env is busybox, static, so usrBinEnv also runs inside images.
  coreutils = sh ''
    mkdir -p $out/bin
    for p in cat chmod chown cp date dirname basename echo false head id ln ls mkdir \
             mktemp mv readlink rm rmdir sed grep sort stat tail touch tr true uname wc; do
      ln -s "$(command -v "$p")" "$out/bin/$p"
    done
    cp /bin/busybox $out/bin/env
  '' "coreutils-host";
  # A shell that runs in images: busybox run under the name sh.
  bashInteractive = sh ''
    mkdir -p $out/bin
    cp /bin/busybox $out/bin/bash
  '' "bash-interactive-busybox";
  cacert = sh ''
    mkdir -p $out/etc/ssl/certs
    cp /etc/ssl/certs/ca-certificates.crt $out/etc/ssl/certs/ca-bundle.crt
  '' "nss-cacert-host";
  shadow = sh ''
    mkdir -p $out/bin
    for p in useradd groupadd usermod chpasswd; do ln -s /usr/sbin/$p $out/bin/$p; done
  '' "shadow-host";
  # Debian's fakeroot script needs getopt and friends from the host PATH.
  fakeroot = sh ''
    mkdir -p $out/bin
    printf '#!/bin/sh\nPATH="$PATH:/usr/bin:/bin" exec /usr/bin/fakeroot "$@"\n' > $out/bin/fakeroot
    chmod 555 $out/bin/fakeroot
  '' "fakeroot-host";
  proot = linked "proot-host" "proot";
  zstd = linked "zstd-host" "zstd";

  inherit busybox;

  # A hello whose closure has two paths: the script refers to busybox.
  hello = sh ''
    mkdir -p $out/bin
    printf '#!${busybox}/bin/sh\necho "Hello, world!"\n' > $out/bin/hello
    chmod 555 $out/bin/hello
  '' "hello-2.12";

  # A second small package, for images of several packages.
  figlet = sh ''
    mkdir -p $out/bin $out/share/figlet
    printf '#!${busybox}/bin/sh\necho "== $* =="\n' > $out/bin/figlet
    chmod 555 $out/bin/figlet
    echo "standard font" > $out/share/figlet/standard.flf
  '' "figlet-2.2.5";
}
