# Small packages the end-to-end tests build images from, each made to
# exercise one rule (symlinks, hardlinks, bare files, references).
{ pkgs }:

let
  sh = name: cmd: pkgs.runCommand name { } cmd;
in
rec {
  # A symlink inside a store path, and a store path that is a symlink.
  withSymlinks = sh "with-symlinks" ''
    mkdir -p $out/bin $out/share
    echo data > $out/share/data
    ln -s ../share/data $out/bin/data-link
  '';
  symlinkPath = sh "symlink-path" ''
    ln -s ${withSymlinks} $out
  '';

  # Two names for one file: the layer must not depend on that.
  withHardlinks = sh "with-hardlinks" ''
    mkdir -p $out
    echo same > $out/a
    ln $out/a $out/b
  '';

  # A store path that is a single file.
  bareFile = sh "bare-file.txt" ''
    echo "just a file" > $out
  '';

  # Big enough that streaming it takes seconds: progress shows.
  bigRandom = sh "big-random" "mkdir -p $out; head -c 120000000 /dev/urandom > $out/blob";

  # Enough entries that a stream shares them between processes
  # (builder/tar/parallel.py): small files in nested directories, long
  # names, symlinks, and files big enough to wait for a worker's turn.
  manyFiles = sh "many-files" ''
    for d in $(seq 1 60); do
      dir=$out/share/${"$"}{d}-${builtins.concatStringsSep "" (builtins.genList (_: "d") 80)}
      mkdir -p $dir
      for f in $(seq 1 80); do echo "$d $f" > $dir/file-$f; done
      ln -s file-1 $dir/link
    done
    head -c 3000000 /dev/urandom > $out/share/big-1
    head -c 300000 /dev/urandom > $out/share/big-2
    mkdir -p $out/bin
    printf '#!/bin/sh\necho hi\n' > $out/bin/hi
    chmod +x $out/bin/hi
  '';

  # A chain of references, for layer ordering: c -> b -> a.
  chainA = sh "chain-a" "mkdir -p $out; echo a > $out/a";
  chainB = sh "chain-b" "mkdir -p $out; echo ${chainA} > $out/b";
  chainC = sh "chain-c" "mkdir -p $out; echo ${chainB} > $out/c";

  # n small packages, for more paths than layers.
  many = n: builtins.genList (i: sh "many-${toString i}" "mkdir -p $out; echo ${toString i} > $out/n") n;

  # A file that fakeRootCommands may copy into the image, by path.
  referenced = sh "referenced-by-commands" "mkdir -p $out; echo ref > $out/ref";

  # Links to directories: one inside the tree, one to another store path
  # (buildImage's keepContentsDirlinks).
  dirLinks = sh "dirlinks" ''
    mkdir -p $out/real
    echo x > $out/real/f
    ln -s real $out/linked
    ln -s ${pkgs.hello}/bin $out/hellobin
  '';

  # A real file named like a whiteout: no layer may hold it.
  whiteoutNamed = sh "has-wh" ''
    mkdir -p $out/etc
    echo root > $out/etc/passwd
    echo x > $out/etc/.wh.passwd
  '';
}
