# Helpers for image contents: fakeNss (/etc/passwd, /etc/group), binSh,
# usrBinEnv, caCertificates, and shadowSetup (a shell snippet for runAsRoot).
# pkgs: what goes into images (the host platform's); tools: what runs in
# builds (buildPackages).
{ pkgs, tools ? pkgs, builder, result }:

let
  inherit (builder) writeTree;
  inherit (result) mkResult;
in
rec {
  # /etc/passwd and /etc/group with root and nobody; fakeNss.override { extraPasswdLines = [ ... ]; }
  makeFakeNss = args@{ extraPasswdLines ? [ ], extraGroupLines ? [ ] }: mkResult {
    function = makeFakeNss;
    inherit args;
    drv = writeTree "fake-nss" [
      { path = "etc/passwd"; text = builtins.concatStringsSep "\n" ([
          "root:x:0:0:root user:/var/empty:/bin/sh"
          "nobody:x:65534:65534:nobody:/var/empty:/bin/sh"
        ] ++ extraPasswdLines) + "\n"; }
      { path = "etc/group"; text = builtins.concatStringsSep "\n" ([
          "root:x:0:"
          "nobody:x:65534:"
        ] ++ extraGroupLines) + "\n"; }
      { path = "etc/nsswitch.conf"; text = "hosts: files dns\n"; }
      { path = "var/empty"; directory = true; }
    ];
  };
  fakeNss = makeFakeNss { };

  binSh = mkResult {
    drv = writeTree "bin-sh" [
      { path = "bin/sh"; symlink = "${pkgs.bashInteractive or pkgs.bash}/bin/bash"; }
    ];
  };

  usrBinEnv = mkResult {
    drv = writeTree "usr-bin-env" [
      { path = "usr/bin/env"; symlink = "${pkgs.coreutils}/bin/env"; }
    ];
  };

  # The CA bundle where OpenSSL, Debian- and Red Hat-style programs look.
  caCertificates = let bundle = "${pkgs.cacert}/etc/ssl/certs/ca-bundle.crt"; in mkResult {
    drv = writeTree "ca-certificates" [
      { path = "etc/ssl/certs/ca-bundle.crt"; symlink = bundle; }
      { path = "etc/ssl/certs/ca-certificates.crt"; symlink = bundle; }
      { path = "etc/pki/tls/certs/ca-bundle.crt"; symlink = bundle; }
    ];
  };

  # Shell for runAsRoot/fakeRootCommands: the files useradd and friends need.
  shadowSetup = ''
    export PATH=${tools.shadow or tools.coreutils}/bin:$PATH
    mkdir -p /etc/pam.d
    if [ ! -f /etc/passwd ]; then
      echo "root:x:0:0::/root:/bin/sh" > /etc/passwd
      echo "root:!x:::::::" > /etc/shadow
    fi
    if [ ! -f /etc/group ]; then
      echo "root:x:0:" > /etc/group
      echo "root:x::" > /etc/gshadow
    fi
    if [ ! -f /etc/pam.d/other ]; then
      printf '%s\n' "account sufficient pam_unix.so" "auth sufficient pam_rootok.so" \
        "password requisite pam_unix.so nullok yescrypt" "session required pam_unix.so" \
        > /etc/pam.d/other
    fi
    if [ ! -f /etc/login.defs ]; then
      touch /etc/login.defs
    fi
  '';
}
