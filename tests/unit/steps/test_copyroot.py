"""buildImage's copyToRoot: trees merged over the root as nixpkgs' rsync
-a -k / -a -K merges them."""

from __future__ import annotations

import os
import stat

import pytest

from builder.errors import BuildError
from builder.steps.copyroot import copy_to_root, restore_modes


def tree(base, name, files):
    """A read-only tree like a store path: ``files`` maps a path to text,
    ``("link", target)`` or ``("dir",)``."""
    top = base / name
    top.mkdir()
    for rel, what in files.items():
        p = top / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(what, tuple) and what[0] == "link":
            os.symlink(what[1], p)
        elif isinstance(what, tuple):
            p.mkdir(exist_ok=True)
        else:
            p.write_text(what)
            p.chmod(0o555 if rel.startswith("bin/") else 0o444)
    for dirpath, dirnames, _ in os.walk(top):
        for d in dirnames:
            full = os.path.join(dirpath, d)
            if not os.path.islink(full):
                os.chmod(full, 0o555)
    os.chmod(top, 0o555)
    return str(top)


def unlock(path):
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o755)


@pytest.fixture
def store(tmp_path):
    s = tmp_path / "store"
    s.mkdir()
    yield s
    unlock(str(tmp_path))


def test_two_trees_sharing_bin_merge(store, tmp_path):
    # nixpkgs' manual: copyToRoot = [ pkgs.hello dockerTools.binSh ];
    hello = tree(store, "h-hello", {"bin/hello": "hi"})
    binsh = tree(store, "s-bin-sh", {"bin/sh": ("link", "/nix/store/x-bash/bin/bash")})
    root = str(tmp_path / "root")
    modes = copy_to_root([hello, binsh], root, keep_dirlinks=False)
    assert sorted(os.listdir(os.path.join(root, "bin"))) == ["hello", "sh"]
    assert os.readlink(os.path.join(root, "bin/sh")) == "/nix/store/x-bash/bin/bash"
    assert open(os.path.join(root, "bin/hello")).read() == "hi"
    assert stat.S_IMODE(os.lstat(os.path.join(root, "bin/hello")).st_mode) == 0o555
    # Writable while commands run, the store's mode afterwards.
    assert os.access(os.path.join(root, "bin"), os.W_OK)
    restore_modes(modes)
    assert stat.S_IMODE(os.lstat(os.path.join(root, "bin")).st_mode) == 0o555
    unlock(root)


def test_a_file_replaces_a_symlink_instead_of_writing_through_it(store, tmp_path):
    # A base whose /bin/busybox is a link to the very file copied over it.
    busybox = tree(store, "b-busybox", {"bin/busybox": "bb"})
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    os.symlink(os.path.join(busybox, "bin/busybox"), root / "bin/busybox")
    copy_to_root([busybox], str(root), keep_dirlinks=False)
    p = root / "bin/busybox"
    assert not p.is_symlink() and p.read_text() == "bb"
    unlock(str(root))


def test_dirlinks_become_directories_without_keep(store, tmp_path):
    lib = tree(store, "l-lib", {"lib/libx.so": "x"})
    env = tree(store, "e-env", {"lib": ("link", os.path.join(lib, "lib")), "etc/motd": "m"})
    root = tmp_path / "root"
    copy_to_root([env], str(root), keep_dirlinks=False)
    assert (root / "lib").is_dir() and not (root / "lib").is_symlink()
    assert (root / "lib/libx.so").read_text() == "x"
    unlock(str(root))


def test_dirlinks_stay_links_with_keep(store, tmp_path):
    lib = tree(store, "l-lib", {"lib/libx.so": "x"})
    env = tree(store, "e-env", {"lib": ("link", os.path.join(lib, "lib"))})
    root = tmp_path / "root"
    copy_to_root([env], str(root), keep_dirlinks=True)
    assert os.readlink(root / "lib") == os.path.join(lib, "lib")
    unlock(str(root))


def test_keep_follows_a_root_dirlink_inside_the_root(store, tmp_path):
    # The root has lib64 -> lib (relative) and usr/lib -> /lib (absolute, as the image sees it).
    first = tree(store, "a-first", {"lib/a": "a", "lib64": ("link", "lib"), "usr/lib": ("link", "/lib")})
    second = tree(store, "b-second", {"lib64/b": "b", "usr/lib/c": "c"})
    root = tmp_path / "root"
    copy_to_root([first, second], str(root), keep_dirlinks=True)
    assert os.path.islink(root / "lib64") and os.path.islink(root / "usr/lib")
    assert sorted(os.listdir(root / "lib")) == ["a", "b", "c"]
    unlock(str(root))


def test_without_keep_a_root_dirlink_is_replaced_by_the_directory(store, tmp_path):
    first = tree(store, "a-first", {"lib/a": "a", "lib64": ("link", "lib")})
    second = tree(store, "b-second", {"lib64/b": "b"})
    root = tmp_path / "root"
    copy_to_root([first, second], str(root), keep_dirlinks=False)
    # -k already made lib64 a directory (a copy of lib); the second tree adds to it.
    assert not os.path.islink(root / "lib64")
    assert sorted(os.listdir(root / "lib64")) == ["a", "b"]
    unlock(str(root))


def test_keep_refuses_to_write_into_a_store_path(store, tmp_path):
    hello = tree(store, "h-hello", {"bin/hello": "hi"})
    env = tree(store, "e-env", {"bin": ("link", os.path.join(hello, "bin"))})
    sh = tree(store, "s-sh", {"bin/sh": "sh"})
    root = tmp_path / "root"
    with pytest.raises(BuildError, match=r"copyToRoot: .*s-sh/bin .*symlink /bin -> .*keepContentsDirlinks"):
        copy_to_root([env, sh], str(root), keep_dirlinks=True)
    unlock(str(root))


def test_a_non_empty_directory_is_not_replaced_by_a_file(store, tmp_path):
    a = tree(store, "a-a", {"etc/x/y": "y"})
    b = tree(store, "b-b", {"etc/x": "file"})
    root = tmp_path / "root"
    with pytest.raises(BuildError, match=r"copyToRoot: .*b-b/etc/x would replace the directory /etc/x"):
        copy_to_root([a, b], str(root), keep_dirlinks=False)
    unlock(str(root))


def test_later_trees_win_and_a_bare_file_lands_at_its_name(store, tmp_path):
    a = tree(store, "a-a", {"etc/motd": "first"})
    b = tree(store, "b-b", {"etc/motd": "second"})
    f = store / "0123-config.txt"
    f.write_text("c")
    root = tmp_path / "root"
    copy_to_root([a, b, str(f)], str(root), keep_dirlinks=False)
    assert (root / "etc/motd").read_text() == "second"
    assert (root / "config.txt").read_text() == "c"
    unlock(str(root))


def test_missing_tree(tmp_path):
    with pytest.raises(BuildError, match="copyToRoot: .*/nope does not exist"):
        copy_to_root([str(tmp_path / "nope")], str(tmp_path / "root"), keep_dirlinks=False)


def test_merging_into_a_base_tree_with_read_only_directories(store, tmp_path):
    # runAsRoot: the root holds a base image's tree, read-only directories included
    # (as a build user: the tests may run as root, where modes do not stop writes).
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "old").write_text("o")
    os.chmod(root / "bin", 0o555)
    os.chmod(root, 0o555)
    hello = tree(store, "h-hello", {"bin/hello": "hi", "etc/motd": "m"})
    modes = copy_to_root([hello], str(root), keep_dirlinks=False)
    assert sorted(os.listdir(root / "bin")) == ["hello", "old"]
    assert (root / "etc" / "motd").read_text() == "m"
    restore_modes(modes)
    assert stat.S_IMODE(os.lstat(root / "bin").st_mode) == 0o555
    unlock(str(root))
