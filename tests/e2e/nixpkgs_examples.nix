# nixpkgs' pkgs/build-support/docker/examples.nix, example by example: the
# same names and the same dockerTools calls with the same arguments, so that
# users' expressions are seen to work unchanged (written anew for this
# project; nothing copied). Built through the stand-in nixpkgs
# (tests/hostpkgs.nix), whose programs are Debian's, copied into the store
# with their libraries so that they run in podman.
#
# Where an example cannot be the same here, the change is the smallest one
# and a comment starting "ADAPTED:" says why.
#
# pulled: for the pullImage examples, { registry; imageDigest; sha256; } of
# an image the test pushed to its local registry first (there is no network
# to Docker Hub here).
{ pkgs ? import ../hostpkgs.nix { }
, dockerTools ? import ../../default.nix { inherit pkgs; }
, pulled ? null
}:

let
  # nixpkgs' examples take some functions as arguments and reach others
  # through pkgs.dockerTools: both are this project's.
  inherit (dockerTools) buildImage buildLayeredImage fakeNss pullImage shadowSetup buildImageWithNixDb
    streamNixShellImage;
  pkgs' = pkgs // { inherit dockerTools; };
in
let
  pkgs = pkgs';
  nginxArguments =
    let
      nginxPort = "80";
      nginxConf = pkgs.writeText "nginx.conf" ''
        user nobody nobody;
        daemon off;
        error_log /dev/stdout info;
        pid /dev/null;
        events {}
        http {
          access_log /dev/stdout;
          server {
            listen ${nginxPort};
            index index.html;
            location / {
              root ${nginxWebRoot};
            }
          }
        }
      '';
      nginxWebRoot = pkgs.writeTextDir "index.html" ''
        <html><body><h1>Hello from NGINX</h1></body></html>
      '';
    in
    {
      name = "nginx-container";
      tag = "latest";
      contents = [ fakeNss pkgs.nginx ];
      # ADAPTED: Debian's nginx keeps its temporary files under
      # /var/lib/nginx (nixpkgs' under /var/cache/nginx) and creates only
      # the last directory of those paths at start: var/lib/nginx is made too.
      extraCommands = ''
        mkdir -p var/log/nginx
        mkdir -p var/cache/nginx
        mkdir -p var/lib/nginx
      '';
      config = {
        Cmd = [ "nginx" "-c" nginxConf ];
        ExposedPorts = { "${nginxPort}/tcp" = { }; };
      };
    };
in

rec {
  # 1. basic example
  bash = buildImage {
    name = "bash";
    tag = "latest";
    contents = pkgs.bashInteractive;
  };

  # 2. service example, layered on another image
  redis = buildImage {
    name = "redis";
    tag = "latest";
    fromImage = bash;
    contents = pkgs.redis;
    runAsRoot = ''
      mkdir -p /data
    '';
    config = {
      Cmd = [ "/bin/redis-server" ];
      WorkingDir = "/data";
      Volumes = { "/data" = { }; };
    };
  };

  # 3. another service example
  nginx = buildLayeredImage nginxArguments;
  # The same, streamed (later nixpkgs: NixOS' oci-containers imageStream)
  nginxStream = pkgs.dockerTools.streamLayeredImage nginxArguments;

  # 4. example of pulling an image.
  # ADAPTED: from the tests' local registry (plain http) instead of Docker
  # Hub, where the test pushed an image holding Nix first; imageDigest and
  # sha256 are that image's.
  nixFromDockerHub = pullImage {
    imageName = "${pulled.registry}/nixos/nix";
    inherit (pulled) imageDigest sha256;
    finalImageTag = "2.2.1";
    finalImageName = "nix";
    tlsVerify = false;
  };
  # Same example, re-fetched when the fetcher's derivation changes.
  testNixFromDockerHub = pkgs.testers.invalidateFetcherByDrvHash pullImage {
    imageName = "${pulled.registry}/nixos/nix";
    inherit (pulled) imageDigest sha256;
    finalImageTag = "2.2.1";
    finalImageName = "nix";
    tlsVerify = false;
  };

  # 5. example of multiple contents
  # ADAPTED: Debian's emacs, vim and nano are not in the stand-in; the
  # other editors' place is taken by busybox (vi) and figlet, still five
  # packages merged into one root.
  editors = buildImage {
    name = "editors";
    contents = [
      pkgs.coreutils
      pkgs.bash
      pkgs.busybox
      pkgs.hello
      pkgs.figlet
    ];
  };

  # 6. nix example to play with the container nix store
  nix = buildImageWithNixDb {
    name = "nix";
    tag = "latest";
    contents = [
      # nix-store shows results through NIX_PAGER.
      pkgs.coreutils
      pkgs.nix
      pkgs.bash
    ];
    config = {
      Env = [
        "NIX_PAGER=cat"
        # Nix needs a user name.
        "USER=nobody"
      ];
    };
  };

  # 7. adding something on top of a pulled image
  onTopOfPulledImage = buildImage {
    name = "onTopOfPulledImage";
    tag = "latest";
    fromImage = nixFromDockerHub;
    contents = [ pkgs.hello ];
  };

  # 8. eval and string expansion in runAsRoot and extraCommands (nixpkgs
  # issue 34779): the parentheses must reach the shell as they are.
  runAsRootExtraCommands = pkgs.dockerTools.buildImage {
    name = "runAsRootExtraCommands";
    tag = "latest";
    contents = [ pkgs.coreutils ];
    runAsRoot = ''echo "(runAsRoot)" > runAsRoot'';
    extraCommands = ''echo "(extraCommand)" > extraCommands'';
  };

  # 9. created = "now": not the epoch + 1
  unstableDate = pkgs.dockerTools.buildImage {
    name = "unstable-date";
    tag = "latest";
    contents = [ pkgs.coreutils ];
    created = "now";
  };

  # 10. a layered image
  layered-image = pkgs.dockerTools.buildLayeredImage {
    name = "layered-image";
    tag = "latest";
    extraCommands = ''echo "(extraCommand)" > extraCommands'';
    config.Cmd = [ "${pkgs.hello}/bin/hello" ];
    contents = [ pkgs.hello pkgs.bash pkgs.coreutils ];
  };

  # 11. an image on top of a layered image
  layered-on-top = pkgs.dockerTools.buildImage {
    name = "layered-on-top";
    tag = "latest";
    fromImage = layered-image;
    extraCommands = ''
      mkdir ./example-output
      chmod 777 ./example-output
    '';
    config = {
      Env = [ "PATH=${pkgs.coreutils}/bin/" ];
      WorkingDir = "/example-output";
      Cmd = [ "${pkgs.bash}/bin/bash" "-c" "echo hello > foo; cat foo" ];
    };
  };

  # 12. a layered image on top of a layered image
  layered-on-top-layered = pkgs.dockerTools.buildLayeredImage {
    name = "layered-on-top-layered";
    tag = "latest";
    fromImage = layered-image;
    extraCommands = ''
      mkdir ./example-output
      chmod 777 ./example-output
    '';
    config = {
      Env = [ "PATH=${pkgs.coreutils}/bin/" ];
      WorkingDir = "/example-output";
      Cmd = [ "${pkgs.bash}/bin/bash" "-c" "echo hello > foo; cat foo" ];
    };
  };

  # 13. runAsRoot on top of a parent image (nixpkgs PR 52109)
  runAsRootParentImage = buildImage {
    name = "runAsRootParentImage";
    tag = "latest";
    runAsRoot = "touch /example-file";
    fromImage = bash;
  };

  # 14. three images, each on the one before: the layers keep their order.
  layersOrder =
    let
      l1 = pkgs.dockerTools.buildImage {
        name = "l1";
        tag = "latest";
        extraCommands = ''
          mkdir -p tmp
          echo layer1 > tmp/layer1
          echo layer1 > tmp/layer2
          echo layer1 > tmp/layer3
        '';
      };
      l2 = pkgs.dockerTools.buildImage {
        name = "l2";
        fromImage = l1;
        tag = "latest";
        extraCommands = ''
          mkdir -p tmp
          echo layer2 > tmp/layer2
          echo layer2 > tmp/layer3
        '';
      };
    in
    pkgs.dockerTools.buildImage {
      name = "l3";
      fromImage = l2;
      tag = "latest";
      contents = [ pkgs.coreutils ];
      extraCommands = ''
        mkdir -p tmp
        echo layer3 > tmp/layer3
      '';
    };

  # 15. environment variables inherited from the parent, the child's winning
  environmentVariablesParent = pkgs.dockerTools.buildImage {
    name = "parent";
    tag = "latest";
    config.Env = [ "FROM_PARENT=true" "LAST_LAYER=parent" ];
  };

  environmentVariables = pkgs.dockerTools.buildImage {
    name = "child";
    fromImage = environmentVariablesParent;
    tag = "latest";
    contents = [ pkgs.coreutils ];
    config.Env = [ "FROM_CHILD=true" "LAST_LAYER=child" ];
  };

  environmentVariablesLayered = pkgs.dockerTools.buildLayeredImage {
    name = "child";
    fromImage = environmentVariablesParent;
    tag = "latest";
    contents = [ pkgs.coreutils ];
    config.Env = [ "FROM_CHILD=true" "LAST_LAYER=child" ];
  };

  # 16. another layered image, sharing layers with 10
  another-layered-image = pkgs.dockerTools.buildLayeredImage {
    name = "another-layered-image";
    tag = "latest";
    config.Cmd = [ "${pkgs.hello}/bin/hello" ];
  };

  # 17. only two layers
  two-layered-image = pkgs.dockerTools.buildLayeredImage {
    name = "two-layered-image";
    tag = "latest";
    config.Cmd = [ "${pkgs.hello}/bin/hello" ];
    contents = [ pkgs.bash pkgs.hello ];
    maxLayers = 2;
  };

  # 18. more packages than layers: coreutils and hello share one
  bulk-layer = pkgs.dockerTools.buildLayeredImage {
    name = "bulk-layer";
    tag = "latest";
    contents = with pkgs; [ coreutils hello ];
    maxLayers = 2;
  };

  # 19. the same on a base image
  layered-bulk-layer = pkgs.dockerTools.buildLayeredImage {
    name = "layered-bulk-layer";
    tag = "latest";
    fromImage = two-layered-image;
    contents = with pkgs; [ coreutils hello ];
    maxLayers = 4;
  };

  # 20. no store paths at all (busybox copied, not shared)
  no-store-paths = pkgs.dockerTools.buildLayeredImage {
    name = "no-store-paths";
    tag = "latest";
    extraCommands = ''
      cp -r ${pkgs.pkgsStatic.busybox}/* .
    '';
  };

  nixLayered = pkgs.dockerTools.buildLayeredImageWithNixDb {
    name = "nix-layered";
    tag = "latest";
    contents = [ pkgs.coreutils pkgs.nix pkgs.bash ];
    config.Env = [ "NIX_PAGER=cat" "USER=nobody" ];
  };

  # 21. files in the store (not directories) in a layered image
  filesInStore = pkgs.dockerTools.buildLayeredImageWithNixDb {
    name = "file-in-store";
    tag = "latest";
    contents = [
      pkgs.coreutils
      pkgs.nix
      (pkgs.writeScriptBin "myscript" ''
        #!${pkgs.runtimeShell}
        cat ${pkgs.writeText "somefile" "some data"}
      '')
    ];
    config = {
      Cmd = [ "myscript" ];
      Env = [ "USER=root" ];
    };
  };

  # 22. created = "now" for a layered image
  unstableDateLayered = pkgs.dockerTools.buildLayeredImage {
    name = "unstable-date-layered";
    tag = "latest";
    contents = [ pkgs.coreutils ];
    created = "now";
  };

  bashNoTag = pkgs.dockerTools.buildImage {
    name = "bash-no-tag";
    contents = pkgs.bashInteractive;
  };

  bashNoTagLayered = pkgs.dockerTools.buildLayeredImage {
    name = "bash-no-tag-layered";
    contents = pkgs.bashInteractive;
  };

  bashNoTagStreamLayered = pkgs.dockerTools.streamLayeredImage {
    name = "bash-no-tag-stream-layered";
    contents = pkgs.bashInteractive;
  };

  # a layered image for a user other than root
  bashLayeredWithUser =
    let
      nonRootShadowSetup = { user, uid, gid ? uid }: with pkgs; [
        (writeTextDir "etc/shadow" ''
          root:!x:::::::
          ${user}:!:::::::
        '')
        (writeTextDir "etc/passwd" ''
          root:x:0:0::/root:${runtimeShell}
          ${user}:x:${toString uid}:${toString gid}::/home/${user}:
        '')
        (writeTextDir "etc/group" ''
          root:x:0:
          ${user}:x:${toString gid}:
        '')
        (writeTextDir "etc/gshadow" ''
          root:x::
          ${user}:x::
        '')
      ];
    in
    pkgs.dockerTools.buildLayeredImage {
      name = "bash-layered-with-user";
      tag = "latest";
      contents = [ pkgs.bash pkgs.coreutils ] ++ nonRootShadowSetup { uid = 999; user = "somebody"; };
    };

  # basic example, cross-compiled
  # ADAPTED: the stand-in has no pkgsCross (no cross compiler here). The
  # image is for the other architecture as nixpkgs' is: hello is a script
  # (any architecture runs it, given a shell) built by this machine, and
  # the image says arm64 (amd64 on aarch64), which is what the check reads.
  cross =
    let
      crossArch = if pkgs.system == "aarch64-linux" then "amd64" else "arm64";
    in
    pkgs.dockerTools.buildImage {
      name = "hello-cross";
      tag = "latest";
      architecture = crossArch;
      contents = pkgs.hello;
    };

  # a layered image holding a store path that is itself a symlink
  layeredStoreSymlink =
    let
      target = pkgs.writeTextDir "dir/target" "Content doesn't matter.";
      symlink = pkgs.runCommand "symlink" { } "ln -s ${target} $out";
    in
    pkgs.dockerTools.buildLayeredImage {
      name = "layeredstoresymlink";
      tag = "latest";
      contents = [ pkgs.bash symlink ];
    } // { passthru = { inherit symlink; }; };

  # a registry/ prefix in the name
  prefixedImage = pkgs.dockerTools.buildImage {
    name = "registry-1.docker.io/image";
    tag = "latest";
    config.Cmd = [ "${pkgs.hello}/bin/hello" ];
  };

  prefixedLayeredImage = pkgs.dockerTools.buildLayeredImage {
    name = "registry-1.docker.io/layered-image";
    tag = "latest";
    config.Cmd = [ "${pkgs.hello}/bin/hello" ];
  };

  # files owned by a user other than root
  layeredImageWithFakeRootCommands = pkgs.dockerTools.buildLayeredImage {
    name = "layered-image-with-fake-root-commands";
    tag = "latest";
    contents = [ pkgs.pkgsStatic.busybox ];
    fakeRootCommands = ''
      mkdir -p ./home/jane
      chown 1000 ./home/jane
    '';
  };

  # one archive, several images
  mergedBashAndRedis = pkgs.dockerTools.mergeImages [ bash redis ];
  mergedBashNoTagAndRedis = pkgs.dockerTools.mergeImages [ bashNoTag redis ];
  mergedBashFakeRoot = pkgs.dockerTools.mergeImages [ bash layeredImageWithFakeRootCommands ];

  helloOnRoot = pkgs.dockerTools.streamLayeredImage {
    name = "hello";
    tag = "latest";
    contents = [ (pkgs.buildEnv { name = "hello-root"; paths = [ pkgs.hello ]; }) ];
    config.Cmd = [ "hello" ];
  };

  helloOnRootNoStore = pkgs.dockerTools.streamLayeredImage {
    name = "hello";
    tag = "latest";
    contents = [ (pkgs.buildEnv { name = "hello-root"; paths = [ pkgs.hello ]; }) ];
    config.Cmd = [ "hello" ];
    includeStorePaths = false;
  };

  # the bash image's file system as one tar
  exportBash = pkgs.dockerTools.exportImage { fromImage = bash; };

  # --- examples nixpkgs added later, with their checks ------------------------

  # The layers below are in place, in order, when runAsRoot runs.
  layersUnpackOrder =
    let
      layerOnTopOf = parent: layerName: pkgs.dockerTools.buildImage {
        copyToRoot = pkgs.buildEnv {
          name = "image-root";
          paths = [ pkgs.coreutils ];
          pathsToLink = [ "/bin" ];
        };
        fromImage = parent;
        name = "layers-unpack-order-${layerName}";
        runAsRoot = ''
          #!${pkgs.runtimeShell}
          echo -n "${layerName}" >> /layer-order
        '';
        tag = "latest";
      };
      layerA = layerOnTopOf null "a";
      layerB = layerOnTopOf layerA "b";
      layerC = layerOnTopOf layerB "c";
    in
    layerC;

  helloOnRootNoStoreFakechroot = pkgs.dockerTools.streamLayeredImage {
    config.Cmd = [ "hello" ];
    contents = [ (pkgs.buildEnv { name = "hello-root"; paths = [ pkgs.hello ]; }) ];
    enableFakechroot = true;
    includeStorePaths = false;
    name = "hello";
    tag = "latest";
  };

  # caCertificates in an image
  image-with-certs = buildImage {
    config = { };
    copyToRoot = pkgs.buildEnv {
      name = "image-with-certs-root";
      paths = [ pkgs.coreutils pkgs.dockerTools.caCertificates ];
    };
    name = "image-with-certs";
    tag = "latest";
  };

  # fakeRootCommands with / being the image's root
  imageViaFakeChroot = pkgs.dockerTools.streamLayeredImage {
    config.Cmd = [ "hello" ];
    enableFakechroot = true;
    fakeRootCommands = ''
      mkdir /bin
      ln -s ${pkgs.hello}/bin/hello /bin/hello
    '';
    name = "image-via-fake-chroot";
    tag = "latest";
  };

  # a bare path (a file of this directory) in contents / copyToRoot
  build-image-with-path = buildImage {
    copyToRoot = [ pkgs.bash ./test-dummy ];
    name = "build-image-with-path";
    tag = "latest";
  };

  layered-image-with-path = pkgs.dockerTools.streamLayeredImage {
    contents = [ pkgs.bash ./test-dummy ];
    name = "layered-image-with-path";
    tag = "latest";
  };

  build-image-with-architecture = buildImage {
    architecture = "arm64";
    copyToRoot = [ pkgs.bash ./test-dummy ];
    name = "build-image-with-architecture";
    tag = "latest";
  };

  layered-image-with-architecture = pkgs.dockerTools.streamLayeredImage {
    architecture = "arm64";
    contents = [ pkgs.bash ./test-dummy ];
    name = "layered-image-with-architecture";
    tag = "latest";
  };

  # archives compressed otherwise, and merged
  bashLayeredUncompressed = pkgs.dockerTools.buildLayeredImage {
    compressor = "none";
    contents = pkgs.bash;
    name = "bash-layered-uncompressed";
    tag = "latest";
  };

  bashLayeredZstdCompressed = pkgs.dockerTools.buildLayeredImage {
    compressor = "zstd";
    contents = pkgs.bash;
    name = "bash-layered-zstd";
    tag = "latest";
  };

  bashUncompressed = pkgs.dockerTools.buildImage {
    compressor = "none";
    copyToRoot = pkgs.bash;
    name = "bash-uncompressed";
    tag = "latest";
  };

  bashZstdCompressed = pkgs.dockerTools.buildImage {
    compressor = "zstd";
    copyToRoot = pkgs.bash;
    name = "bash-zstd";
    tag = "latest";
  };

  mergeVaryingCompressor = pkgs.dockerTools.mergeImages [ redis bashUncompressed bashZstdCompressed ];

  # the images nixos/tests/docker-tools.nix defines itself
  chownTestImage = pkgs.dockerTools.streamLayeredImage {
    name = "chown-test";
    tag = "latest";
    enableFakechroot = true;
    fakeRootCommands = ''
      touch /testfile
      chown 12345:12345 /testfile
    '';
    config.Cmd = [ "${pkgs.coreutils}/bin/stat" "-c" "%u:%g" "/testfile" ];
  };

  nonRootTestImage = pkgs.dockerTools.streamLayeredImage {
    name = "non-root-test";
    tag = "latest";
    uid = 1000;
    gid = 1000;
    uname = "user";
    gname = "user";
    config = {
      User = "user";
      Cmd = [ "${pkgs.coreutils}/bin/stat" "-c" "%u:%g" "${pkgs.coreutils}/bin/stat" ];
    };
  };

  # --- nix-shell images (nixos/tests/docker-tools-nix-shell.nix) ---------------

  nix-shell-basic = streamNixShellImage {
    drv = pkgs.hello;
    name = "nix-shell-basic";
    tag = "latest";
  };

  nix-shell-hook = streamNixShellImage {
    drv = pkgs.mkShell {
      shellHook = ''
        echo "This is the shell hook!"
        exit
      '';
    };
    name = "nix-shell-hook";
    tag = "latest";
  };

  nix-shell-inputs = streamNixShellImage {
    drv = pkgs.mkShell { nativeBuildInputs = [ pkgs.hello ]; };
    command = ''
      hello
    '';
    name = "nix-shell-inputs";
    tag = "latest";
  };

  nix-shell-pass-as-file = streamNixShellImage {
    drv = pkgs.mkShell {
      str = "this is a string";
      passAsFile = [ "str" ];
    };
    command = ''
      cat "$strPath"
    '';
    name = "nix-shell-pass-as-file";
    tag = "latest";
  };

  nix-shell-run = streamNixShellImage {
    drv = pkgs.mkShell { };
    run = ''
      case "$-" in
      *i*) echo This shell is interactive ;;
      *) echo This shell is not interactive ;;
      esac
    '';
    name = "nix-shell-run";
    tag = "latest";
  };

  nix-shell-command = streamNixShellImage {
    drv = pkgs.mkShell { };
    command = ''
      case "$-" in
      *i*) echo This shell is interactive ;;
      *) echo This shell is not interactive ;;
      esac
    '';
    name = "nix-shell-command";
    tag = "latest";
  };

  nix-shell-writable-home = streamNixShellImage {
    drv = pkgs.mkShell { };
    run = ''
      if [[ "$HOME" != "$(eval "echo ~$(whoami)")" ]]; then
        echo "\$HOME ($HOME) is not the same as ~\$(whoami) ($(eval "echo ~$(whoami)"))"
        exit 1
      fi

      if ! touch $HOME/test-file; then
        echo "home directory is not writable"
        exit 1
      fi
      echo "home directory is writable"
    '';
    name = "nix-shell-writable-home";
    tag = "latest";
  };

  nix-shell-nonexistent-home = streamNixShellImage {
    drv = pkgs.mkShell { };
    homeDirectory = "/homeless-shelter";
    run = ''
      if [[ "$HOME" != "$(eval "echo ~$(whoami)")" ]]; then
        echo "\$HOME ($HOME) is not the same as ~\$(whoami) ($(eval "echo ~$(whoami)"))"
        exit 1
      fi

      # nixpkgs writes `if -e $HOME` here (a command named -e, which always
      # fails); the test it means is this one.
      if [ -e $HOME ]; then
        echo "home directory exists"
        exit 1
      fi
      echo "home directory doesn't exist"
    '';
    name = "nix-shell-nonexistent-home";
    tag = "latest";
  };

  nix-shell-build-derivation = streamNixShellImage {
    drv = pkgs.hello;
    run = ''
      buildDerivation
      $out/bin/hello
    '';
    name = "nix-shell-build-derivation";
    tag = "latest";
  };

  # streamLayeredImage with a Nix database (the nix-shell test's nix-layered)
  nix-layered = pkgs.dockerTools.streamLayeredImage {
    config.Env = [ "NIX_PAGER=cat" ];
    contents = [ pkgs.nix pkgs.bash ];
    includeNixDB = true;
    name = "nix-layered";
    tag = "latest";
  };
}
