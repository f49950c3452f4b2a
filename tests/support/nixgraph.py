"""A small closure graph (the shape exportReferencesGraph gives) with every
narHash spelling Nix uses, for the Nix database tests of both suites."""

from __future__ import annotations

import base64

S = "/nix/store/"
A = S + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a"
B = S + "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b"
C = S + "cccccccccccccccccccccccccccccccc-c"
HEX = "1c37d01af40be2e80691de3cc3df44377a699afbb17c68f080964b2fd071fc13"
NIX32 = "04zwf782yjwnh3q6hz5izfd6jyip8kgw6g6yj43fiqhbyhdd0dqw"  # the same digest
B64 = base64.b64encode(bytes.fromhex(HEX)).decode()


def sample_graph():
    return [
        {
            "path": C,
            "narHash": "sha256:" + NIX32,
            "narSize": 120,
            "closureSize": 120,
            "references": [],
            "ca": "text:sha256:1r3v22qkypccqifzbww5lrn6hf1chi23m6zzkyvb8bvg457nxslq",
        },
        {"path": A, "narHash": "sha256-" + B64, "narSize": 576, "closureSize": 1, "references": [A, B]},
        {"path": B, "narHash": "sha256:" + HEX, "narSize": 168, "closureSize": 1, "references": [C]},
    ]
