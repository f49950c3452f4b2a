# A stand-in for nixpkgs made of this machine's tools (Debian 12), for
# building and testing without a nixpkgs checkout. It has every attribute
# default.nix, examples.nix and the tests use.
#
# It works in Nix's sandbox, where a build sees nothing but the store: every
# program is copied into the store with the libraries it needs. The host's
# files enter the store as sources when the expression is evaluated
# (builtins.path of chosen files of /usr/bin, /usr/lib/<triplet>,
# /usr/lib/python3.X), and builds whose builder is the static busybox set
# each copied binary's interpreter and rpath to copies in the store
# (patchelf, itself run through the copied loader), then check that every
# library it loads comes from the store. Evaluating reads the host's files,
# so a flake using this needs --impure.
#
# nameSuffix: appended to the name of every file copied from the host, so
# that a second instance shares no store path with the first (the tests
# push an image of one and pull it with the other's fetcher: a fixed-output
# download must not contain its own inputs' store paths).
{ system ? builtins.currentSystem, nameSuffix ? "" }:

let
  inherit (builtins) attrNames concatStringsSep elem filter head match pathExists stringLength substring;

  cpu = head (match "([^-]*)-.*" system);
  # Debian's multiarch directory and the dynamic loader's name, per CPU.
  platform = {
    x86_64 = { triplet = "x86_64-linux-gnu"; loader = "ld-linux-x86-64.so.2"; };
    aarch64 = { triplet = "aarch64-linux-gnu"; loader = "ld-linux-aarch64.so.1"; };
    i686 = { triplet = "i386-linux-gnu"; loader = "ld-linux.so.2"; };
    armv7l = { triplet = "arm-linux-gnueabihf"; loader = "ld-linux-armhf.so.3"; };
    powerpc64le = { triplet = "powerpc64le-linux-gnu"; loader = "ld64.so.2"; };
    s390x = { triplet = "s390x-linux-gnu"; loader = "ld64.so.1"; };
    riscv64 = { triplet = "riscv64-linux-gnu"; loader = "ld-linux-riscv64-lp64d.so.1"; };
  }.${cpu} or (throw "tests/hostpkgs.nix: no Debian multiarch name known for ${system}");
  libDir = /. + "/usr/lib/${platform.triplet}";

  need = what: path: if pathExists path then path
    else throw "tests/hostpkgs.nix: ${toString path} is missing (${what} it copies into the store; tests/setup.sh installs them for the machine's own system)";

  # Entries of one host directory copied into the store at evaluation time:
  # the top-level names `pick` accepts, and everything below a picked
  # directory that `keep` accepts (given the path relative to `dir`).
  hostFiles = name: dir: pick: keep: builtins.path {
    name = name + nameSuffix;
    path = dir;
    filter = path: type:
      let rel = substring (stringLength (toString dir) + 1) (-1) (toString path);
      in pick (head (builtins.split "/" rel)) && keep rel type;
  };
  always = _: _: true;

  # Programs of one host directory (/usr/bin, /usr/sbin), by name.
  hostPrograms = name: dir: names:
    builtins.deepSeq (map (n: need "a program" (dir + "/${n}")) names)
      (hostFiles name dir (n: elem n names) always);

  # Shared libraries by soname, with the files their soname links point to
  # (libz.so.1 -> libz.so.1.2.13).
  hostLibs = name: sonames:
    builtins.deepSeq (map (s: need "a library" (libDir + "/${s}")) sonames)
      (hostFiles name libDir
        (n: elem n sonames || builtins.any (s: substring 0 (stringLength s + 1) n == s + ".") sonames)
        always);

  # --- the tools the stand-in's own builds run -------------------------------
  # Static: it runs in the sandbox with nothing else. A directory holding
  # `busybox`, so that the builder's argv[0] names no applet.
  busyboxStatic = hostPrograms "busybox-static" /usr/bin [ "busybox" ];
  bb = "${busyboxStatic}/busybox";

  # Every applet, for the builds below (never for user commands: a static
  # program does not see fakeroot's LD_PRELOAD).
  buildTools = builtins.derivation {
    inherit system;
    name = "busybox-applets";
    builder = bb;
    args = [ "sh" "-ec" ''
      ${bb} mkdir -p $out/bin
      for applet in $(${bb} --list); do ${bb} ln -s ${bb} $out/bin/$applet; done
    '' ];
  };

  # As nixpkgs' runCommand: a shell script whose $out is the result; busybox
  # applets on PATH.
  runCommand = name: env: script: builtins.derivation ({
    inherit name system;
    builder = bb;
    args = [ "sh" "-ec" ("PATH=${buildTools}/bin\n" + script) ];
  } // env);

  glibc = hostLibs "glibc-host" [ platform.loader "libc.so.6" "libm.so.6" "libresolv.so.2" ];
  loader = "${glibc}/${platform.loader}";

  patchelfBin = hostPrograms "patchelf-host" /usr/bin [ "patchelf" ];
  patchelfLibs = hostLibs "patchelf-libs" [ "libstdc++.so.6" "libgcc_s.so.1" ];
  patchelf = "${loader} --library-path ${patchelfLibs}:${glibc} ${patchelfBin}/patchelf";

  # Host programs copied into $out/bin (`programs`: name in $out/bin -> file),
  # each made to load the store's loader and `libs` (store paths of
  # libraries) plus glibc, then `extra` runs. check_libs FILE... fails the
  # build when a library is missing or would come from outside the store.
  elfPackage = { name, programs, libs ? [ ], extra ? "" }:
    let rpath = concatStringsSep ":" (map toString (libs ++ [ glibc ])); in
    runCommand name { } ''
      check_libs() {
        for f in "$@"; do
          listed=$(${loader} --library-path ${rpath} --list "$f") || { echo "$f: $listed" >&2; exit 1; }
          outside=$(echo "$listed" | grep '=>' | grep -v '=> ${builtins.storeDir}/' || true)
          if [ -n "$outside" ]; then
            echo "$f needs libraries the stand-in lacks (add them in tests/hostpkgs.nix):" >&2
            echo "$outside" >&2
            exit 1
          fi
        done
      }
      mkdir -p $out/bin
      ${concatStringsSep "\n" (map (n: ''
        cp ${programs.${n}} $out/bin/${n}
        chmod 755 $out/bin/${n}
        ${patchelf} --set-interpreter ${loader} --force-rpath --set-rpath ${rpath} $out/bin/${n}
        chmod 555 $out/bin/${n}
        check_libs $out/bin/${n}
      '') (attrNames programs))}
      ${extra}
    '';

  # --- sources from the host ---------------------------------------------------
  pythonVersions = filter (v: pathExists (/usr/bin + "/python${v}") && pathExists (/usr/lib + "/python${v}/os.py"))
    (map (n: "3.${toString n}") [ 9 10 11 12 13 14 ]);
  pyVersion = if pythonVersions != [ ] then head pythonVersions
    else throw "tests/hostpkgs.nix: no /usr/bin/python3.X with its /usr/lib/python3.X (apt-get install python3)";
  pythonBin = hostPrograms "python${pyVersion}-host" /usr/bin [ "python${pyVersion}" ];
  # The standard library, less what no build needs: tests, IDLE and tk, the
  # static libpython (config-*), bytecode (compiled again below, for the
  # store), and links out of the directory (sitecustomize.py -> /etc).
  pythonStdlib = hostFiles "python${pyVersion}-stdlib" (/usr/lib + "/python${pyVersion}")
    (n: !(elem n [ "test" "idlelib" "tkinter" "turtledemo" "ensurepip" "lib2to3" "sitecustomize.py" ])
        && match "config-.*" n == null)
    (rel: type: baseNameOf rel != "__pycache__" && !(type == "symlink" && baseNameOf rel == "sitecustomize.py"));
  # What python and the extension modules in lib-dynload load.
  pythonLibs = hostLibs "python${pyVersion}-libs" [
    "libexpat.so.1" "libz.so.1" "libbz2.so.1.0" "liblzma.so.5" "libffi.so.8" "libssl.so.3" "libcrypto.so.3"
    "libsqlite3.so.0" "libuuid.so.1" "libcrypt.so.1" "libdb-5.3.so" "libreadline.so.8" "libncursesw.so.6"
    "libpanelw.so.6" "libtinfo.so.6" "libnsl.so.2" "libtirpc.so.3" "libgssapi_krb5.so.2" "libkrb5.so.3"
    "libk5crypto.so.3" "libkrb5support.so.0" "libcom_err.so.2" "libkeyutils.so.1"
  ];

  coreutilsNames = [
    "cat" "chmod" "chown" "cp" "date" "dirname" "basename" "echo" "false" "head" "id" "ln" "ls" "mkdir"
    "mktemp" "mv" "readlink" "rm" "rmdir" "sed" "grep" "sort" "stat" "tail" "test" "touch" "tr" "true" "uname" "wc" "whoami"
  ];
  coreutilsBin = hostPrograms "coreutils-host-bin" /usr/bin coreutilsNames;

  fakerootBin = hostPrograms "fakeroot-host-bin" /usr/bin [ "fakeroot-sysv" "faked-sysv" ];
  libfakeroot = hostFiles "libfakeroot-host" (need "fakeroot's library" (libDir + "/libfakeroot"))
    (n: n == "libfakeroot-sysv.so") always;

  shadowNames = [ "useradd" "groupadd" "usermod" ];
  shadowBin = hostPrograms "shadow-host-bin" /usr/sbin shadowNames;

  cacertFile = hostFiles "ca-certificates-host" /etc/ssl/certs (n: n == "ca-certificates.crt") always;

  # --- what images run: static busybox -----------------------------------------
  busyboxWith = name: applets: runCommand name { } ''
    mkdir -p $out/bin
    cp ${bb} $out/bin/busybox
    for applet in ${applets}; do
      ln -s busybox $out/bin/$applet
    done
  '';
  busybox = busyboxWith "busybox-static" "sh ls cat echo id whoami env mkdir true false sleep uname stat";
in
rec {
  inherit system runCommand busybox;
  stdenv.hostPlatform.system = system;

  # Debian's python3 with its standard library, laid out as
  # $out/bin/python3 and $out/lib/python3.X so that sys.prefix is $out.
  python3 = elfPackage {
    name = "python3-host-${pyVersion}";
    programs."python${pyVersion}" = "${pythonBin}/python${pyVersion}";
    libs = [ pythonLibs ];
    extra = ''
      # Nix runs a builder with argv[0] = "python3" and PATH unset, from which
      # Python cannot find itself and would fall back to Debian's compiled-in
      # prefix, /usr: python3 runs the binary by its full path instead.
      printf '#!${buildTools}/bin/sh\nexec %s "$@"\n' $out/bin/python${pyVersion} > $out/bin/python3
      chmod 555 $out/bin/python3
      mkdir -p $out/lib
      cp -R ${pythonStdlib} $out/lib/python${pyVersion}
      chmod -R u+w $out/lib/python${pyVersion}
      check_libs $out/lib/python${pyVersion}/lib-dynload/*.so
      # Bytecode that does not depend on file times (the store has none), for
      # every module: -B, or the modules compileall imports would get
      # timestamped bytecode first, which it keeps.
      PYTHONHASHSEED=0 $out/bin/python3 -I -B -m compileall -q -f --invalidation-mode unchecked-hash \
        $out/lib/python${pyVersion} >/dev/null
      $out/bin/python3 -I -c '
      import sys, ssl, zlib, hashlib, json, lzma, bz2, sqlite3, ctypes
      assert sys.prefix == "'$out'", sys.prefix
      '
    '';
  };

  bash = elfPackage {
    name = "bash-host";
    programs.bash = "${hostPrograms "bash-src" /usr/bin [ "bash" ]}/bash";
    libs = [ (hostLibs "bash-libs" [ "libtinfo.so.6" ]) ];
  };

  # GNU programs, dynamically linked so that fakeroot's LD_PRELOAD reaches
  # them; env is busybox, static, so usrBinEnv also runs inside images.
  coreutils = elfPackage {
    name = "coreutils-host";
    programs = builtins.listToAttrs (map (n: { name = n; value = "${coreutilsBin}/${n}"; }) coreutilsNames);
    libs = [ (hostLibs "coreutils-libs" [ "libacl.so.1" "libattr.so.1" "libpcre2-8.so.0" "libselinux.so.1" ]) ];
    extra = "cp ${bb} $out/bin/env";
  };

  # The real bash (copied with its libraries, it runs in images too): images
  # of nixpkgs' examples run `bash --version`.
  bashInteractive = bash;

  cacert = runCommand "nss-cacert-host" { } ''
    mkdir -p $out/etc/ssl/certs
    cp ${cacertFile}/ca-certificates.crt $out/etc/ssl/certs/ca-bundle.crt
  '';

  # useradd and friends. (chpasswd is left out: it loads PAM modules from
  # the host's /usr/lib/<triplet>/security.)
  shadow = elfPackage {
    name = "shadow-host";
    programs = builtins.listToAttrs (map (n: { name = n; value = "${shadowBin}/${n}"; }) shadowNames);
    libs = [ (hostLibs "shadow-libs" [ "libaudit.so.1" "libcap-ng.so.0" "libselinux.so.1" "libpcre2-8.so.0"
                                        "libsemanage.so.2" "libsepol.so.2" "libbz2.so.1.0" ]) ];
  };

  # Debian's fakeroot: the faked daemon, the LD_PRELOAD library, and its
  # script with the paths and helper programs it names moved into the store
  # (as functions: the command it runs keeps the caller's PATH).
  fakeroot = elfPackage {
    name = "fakeroot-host";
    programs.faked-sysv = "${fakerootBin}/faked-sysv";
    extra = ''
      mkdir -p $out/lib/libfakeroot
      cp ${libfakeroot}/libfakeroot-sysv.so $out/lib/libfakeroot/
      check_libs $out/lib/libfakeroot/libfakeroot-sysv.so
      {
        echo '#!${buildTools}/bin/sh'
        for tool in getopt sed cut sleep cat; do echo "$tool() { ${buildTools}/bin/$tool \"\$@\"; }"; done
        sed -e '1d' \
            -e "s|^FAKEROOT_PREFIX=.*|FAKEROOT_PREFIX=$out|" \
            -e "s|^FAKEROOT_BINDIR=.*|FAKEROOT_BINDIR=$out/bin|" \
            -e "s|^PATHS=.*|PATHS=$out/lib/libfakeroot|" \
            -e 's|/bin/ls |${buildTools}/bin/ls |' \
            -e 's|:-/bin/sh}|:-${buildTools}/bin/sh}|' \
            ${fakerootBin}/fakeroot-sysv
      } > $out/bin/fakeroot
      chmod 555 $out/bin/fakeroot
      if grep -v '^ *#' $out/bin/fakeroot | grep -n '/usr\|[ =]/bin/'; then
        echo "the fakeroot script still names host paths" >&2; exit 1
      fi
      # It works here: a dynamically linked program sees itself as root.
      [ "$(PATH=/path-not-set $out/bin/fakeroot -- ${python3}/bin/python3 -I -c 'import os; print(os.geteuid())')" = 0 ]
    '';
  };

  proot = elfPackage {
    name = "proot-host";
    programs.proot = "${hostPrograms "proot-src" /usr/bin [ "proot" ]}/proot";
    libs = [ (hostLibs "proot-libs" [ "libtalloc.so.2" ]) ];
  };

  zstd = elfPackage {
    name = "zstd-host";
    programs.zstd = "${hostPrograms "zstd-src" /usr/bin [ "zstd" ]}/zstd";
    libs = [ (hostLibs "zstd-libs" [ "liblz4.so.1" "liblzma.so.5" "libz.so.1" ]) ];
  };

  # A hello whose closure has two paths: the script refers to busybox.
  hello = runCommand "hello-2.12" { } ''
    mkdir -p $out/bin
    printf '#!${busybox}/bin/sh\necho "Hello, world!"\n' > $out/bin/hello
    chmod 555 $out/bin/hello
  '';

  # --- what nixpkgs' dockerTools examples use (tests/e2e/nixpkgs_examples.nix) --

  # Real programs from Debian (tests/setup.sh installs them), copied with
  # their libraries so that they run in a container and in the sandbox.
  nginx = elfPackage {
    name = "nginx-host";
    programs.nginx = "${hostPrograms "nginx-src" /usr/sbin [ "nginx" ]}/nginx";
    libs = [ (hostLibs "nginx-libs" [ "libcrypt.so.1" "libpcre2-8.so.0" "libssl.so.3" "libcrypto.so.3" "libz.so.1" ]) ];
  };

  redis = elfPackage {
    name = "redis-host";
    # Debian's redis-server is a link to redis-check-rdb: one program, run by name.
    programs = let src = hostPrograms "redis-src" /usr/bin [ "redis-check-rdb" "redis-cli" ]; in {
      redis-server = "${src}/redis-check-rdb";
      redis-cli = "${src}/redis-cli";
    };
    libs = [ (hostLibs "redis-libs" [
      "libatomic.so.1" "liblzf.so.1" "libjemalloc.so.2" "libsystemd.so.0" "libssl.so.3" "libcrypto.so.3"
      "libstdc++.so.6" "libgcc_s.so.1" "libcap.so.2" "libgcrypt.so.20" "liblzma.so.5" "libzstd.so.1"
      "liblz4.so.1" "libgpg-error.so.0" ]) ];
  };

  # Debian's Nix (nix-bin): the program, its links (nix-store -> nix, ...)
  # and its own libraries from /usr/lib/nix, whose RUNPATH is set to the
  # store too (a library's RUNPATH, not the program's, finds its needs).
  nix = let
    nixLibDeps = hostLibs "nix-deps" [
      "libhistory.so.8" "libreadline.so.8" "libgc.so.1" "libstdc++.so.6" "libgcc_s.so.1" "libtinfo.so.6"
      "libboost_context.so.1.74.0" "libsqlite3.so.0" "libcurl-gnutls.so.4" "libsodium.so.23" "libseccomp.so.2"
      "libcrypto.so.3" "libbrotlienc.so.1" "libbrotlidec.so.1" "libarchive.so.13" "libcpuid.so.16" "libbsd.so.0"
      "libnghttp2.so.14" "libidn2.so.0" "librtmp.so.1" "libssh2.so.1" "libpsl.so.5" "libnettle.so.8"
      "libgnutls.so.30" "libgssapi_krb5.so.2" "libldap-2.5.so.0" "liblber-2.5.so.0" "libzstd.so.1" "libz.so.1"
      "libbrotlicommon.so.1" "libacl.so.1" "liblzma.so.5" "liblz4.so.1" "libbz2.so.1.0" "libxml2.so.2"
      "libmd.so.0" "libunistring.so.2" "libhogweed.so.6" "libgmp.so.10" "libp11-kit.so.0" "libtasn1.so.6"
      "libkrb5.so.3" "libk5crypto.so.3" "libcom_err.so.2" "libkrb5support.so.0" "libsasl2.so.2"
      "libicuuc.so.72" "libffi.so.8" "libkeyutils.so.1" "libicudata.so.72" ];
    nixOwnLibs = hostFiles "nix-own-libs" (need "Nix's libraries" /usr/lib/nix) (n: match "libnix.*[.]so" n != null) always;
    nixLibs = runCommand "nix-libs-host" { } ''
      mkdir -p $out
      for f in ${nixOwnLibs}/*.so; do
        cp $f $out/
        chmod 755 $out/$(basename $f)
        ${patchelf} --set-rpath $out:${nixLibDeps}:${glibc} $out/$(basename $f)
        chmod 555 $out/$(basename $f)
      done
    '';
  in elfPackage {
    name = "nix-host-2.8";
    programs.nix = "${hostPrograms "nix-src" /usr/bin [ "nix" ]}/nix";
    libs = [ nixLibs nixLibDeps ];
    extra = ''
      for n in nix-build nix-channel nix-collect-garbage nix-copy-closure nix-daemon nix-env nix-hash \
               nix-instantiate nix-prefetch-url nix-shell nix-store; do
        ln -s nix $out/bin/$n
      done
    '';
  };

  # As nixpkgs' invalidateFetcherByDrvHash: the fetcher's result under a
  # name that carries the hash of its derivation, so that a change of the
  # fetcher's implementation fetches again.
  invalidateFetcherByDrvHash = f: args:
    let
      probe = f (args // { name = "probe"; });
      drvHash = substring 0 32 (baseNameOf (builtins.unsafeDiscardStringContext probe.drvPath));
    in f (args // { name = "${drvHash}-${(f args).name}"; });

  # What nix-shell images source: a `setup` with the inputs' bin/ and
  # coreutils on PATH and runHook (a hook is a function or a variable of
  # shell code), for bash.
  shellSetup = runCommand "stdenv-setup-host" { } ''
    mkdir -p $out
    cat > $out/setup <<'SETUP'
    PATH=${coreutils}/bin:${bash}/bin
    for input in $nativeBuildInputs $buildInputs $propagatedBuildInputs; do
      if [ -d "$input/bin" ]; then PATH=$input/bin:$PATH; fi
    done
    export PATH
    runHook() {
      local hook=$1
      shift
      if [ "$(type -t "$hook")" = function ]; then "$hook" "$@"
      elif [ -n "''${!hook:-}" ]; then eval "''${!hook}"
      fi
    }
    SETUP
  '';

  # As nixpkgs' mkShell: a derivation whose attributes nix-shell images
  # give as environment variables (shellHook, nativeBuildInputs,
  # passAsFile, ...), with the setup above as its stdenv.
  mkShell = { name ? "nix-shell", ... }@args: builtins.derivation ({
    inherit name system;
    builder = bb;
    args = [ "sh" "-c" "echo ${name} > $out" ];
    stdenv = shellSetup;
  } // removeAttrs args [ "name" ]);

  testers = { inherit invalidateFetcherByDrvHash; };

  # A shell that runs in images and in builds: the real bash.
  runtimeShell = "${bash}/bin/bash";
  stdenv.shell = runtimeShell;

  # The static busybox is what nixpkgs' pkgsStatic.busybox is.
  pkgsStatic = { inherit busybox; };

  # nixpkgs' trivial builders, written here on busybox.
  writeText = name: text: runCommand name { inherit text; } ''printf '%s' "$text" > $out'';
  writeTextDir = path: text: runCommand (baseNameOf path) { inherit text path; } ''
    mkdir -p "$out/$(dirname "$path")"
    printf '%s' "$text" > "$out/$path"
  '';
  writeScriptBin = name: text: runCommand name { inherit text; } ''
    mkdir -p $out/bin
    printf '%s' "$text" > $out/bin/${name}
    chmod 555 $out/bin/${name}
  '';
  # A tree of symlinks to the files of `paths` (the first one wins), only
  # those under `pathsToLink`.
  buildEnv = { name, paths, pathsToLink ? [ "/" ], ... }: runCommand name { inherit paths pathsToLink; } ''
    mkdir -p $out
    for p in $paths; do
      (cd $p && find . -mindepth 1 ! -type d) | while read -r f; do
        linked=
        for prefix in $pathsToLink; do
          case "''${f#.}/" in "''${prefix%/}"/*) linked=1 ;; esac
        done
        [ -n "$linked" ] || continue
        [ -e "$out/$f" ] || [ -L "$out/$f" ] && continue
        mkdir -p "$out/$(dirname "$f")"
        ln -s "$p/''${f#./}" "$out/$f"
      done
    done
  '';

  # A second small package, for images of several packages.
  figlet = runCommand "figlet-2.2.5" { } ''
    mkdir -p $out/bin $out/share/figlet
    printf '#!${busybox}/bin/sh\necho "== $* =="\n' > $out/bin/figlet
    chmod 555 $out/bin/figlet
    echo "standard font" > $out/share/figlet/standard.flf
  '';
}
