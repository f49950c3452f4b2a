# mergeImages: several images in one docker archive; podman/docker load
# gets them all.
{ pkgs, lib, checks, builder, result }:

let
  inherit (lib) describe;
  inherit (checks) checkImageArg;
  inherit (builder) runBuilder;
  inherit (result) mkResult;

  mergeImages = images: mkResult {
    function = mergeImages;
    args = images;
    drv = runBuilder "merge-docker-images" "merge" {
      images = map (img: if builtins.isAttrs img && img.isExe or false then img.conf
                         else if img == null then throw "dockerTools.mergeImages: an element of the list is null"
                         else checkImageArg "mergeImages" "each element" img)
        (if builtins.isList images && images != [ ] then images
         else throw "dockerTools.mergeImages: takes a non-empty list of images, got ${
           if images == [ ] then "[ ]" else describe images}");
      zstd = "${pkgs.zstd}/bin/zstd";  # reads zstd-compressed inputs on any Python
    };
  };
in
{
  inherit mergeImages;
}
