"""Build time: an image's merged root filesystem as one tar (``exportImage``)."""

from __future__ import annotations

import os
import tempfile

from builder.contract import ExportSpec
from builder.formats.load import load_image
from builder.sinks.output import open_output
from builder.sinks.sink import FdSink
from builder.steps.commands import rerun_under_fakeroot
from builder.tar import whiteout

__all__ = ["export_image", "export_image_fakeroot"]


def export_image(spec: ExportSpec) -> None:
    if spec.fakeroot and os.geteuid() != 0:
        # As runAsRoot: in one fakeroot session, device nodes can be made,
        # owners set, and a mode 0000 file (a RHEL-like /etc/shadow) read back.
        rerun_under_fakeroot(spec.fakeroot, spec.python, "export-fakeroot")
        return
    export_image_fakeroot(spec)


def export_image_fakeroot(spec: ExportSpec) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as work:
        image = load_image(spec.from_image, workdir=work, name=spec.from_image_name, tag=spec.from_image_tag)
        files = []
        for i, layer in enumerate(image.layers):
            path = os.path.join(work, f"layer-{i}.tar")
            with open(path, "wb") as f:
                layer_sink = FdSink(f.fileno())
                layer.write_tar(layer_sink)
                layer_sink.flush()
            files.append(path)
        with open_output(spec.out) as sink:
            # Named as nixpkgs' `tar -C root -c .` names them: ./bin/sh.
            whiteout.write_flattened(sink, files, workdir=work, dot=True)
