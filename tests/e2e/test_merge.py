"""mergeImages: several archives, any compression, one archive podman loads whole."""

from nixhelpers import nix_build, podman_load, podman_run, read_archive


def test_merge_images_loads_all_and_keeps_owners(tmp_path):
    out = nix_build(
        """dockerTools.mergeImages [
      (dockerTools.buildLayeredImage { name = "merge-a"; tag = "t"; contents = [ pkgs.hello ]; compressor = "zstd";
         config.Cmd = [ "/bin/hello" ]; })
      (dockerTools.buildLayeredImage { name = "merge-b"; tag = "t"; compressor = "none";
         contents = [ pkgs.busybox ];
         fakeRootCommands = "mkdir -p home/alice; chown 1000:1000 home/alice"; })
      (dockerTools.streamLayeredImage { name = "merge-c"; tag = "t"; contents = [ pkgs.figlet ];
         config.Cmd = [ "/bin/figlet" "c" ]; })
    ]""",
        tmp_path,
    )
    archive = read_archive(open(out, "rb").read())
    tags = sorted(t for e in archive.manifest for t in e["RepoTags"])
    assert tags == ["merge-a:t", "merge-b:t", "merge-c:t"]
    podman_load(archive.raw)
    assert podman_run("merge-a:t") == "Hello, world!\n"
    assert podman_run("merge-c:t") == "== c ==\n"
    assert podman_run("merge-b:t", "/bin/stat", "-c", "%u", "/home/alice") == "1000\n"
    # busybox is in two images: its layer is stored once
    names = [n for e in archive.manifest for n in e["Layers"]]
    assert len(set(names)) < len(names)
