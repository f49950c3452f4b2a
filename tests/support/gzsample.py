"""Sample data and our gzip of it, for the compression tests of both suites."""

from __future__ import annotations

import random

from builder.sinks.compress import GZIP_BLOCK_SIZE, compressor
from builder.sinks.sink import MemorySink

B = GZIP_BLOCK_SIZE


def gz(data: bytes, threads=None, chunk=None) -> bytes:
    out = MemorySink()
    with compressor("gzip", out, threads=threads) as s:
        if chunk is None:
            s.write(data)
        else:
            for i in range(0, len(data), chunk):
                s.write(data[i : i + chunk])
    return bytes(out.data)


def sample(size: int, seed: int = 0) -> bytes:
    """Half compressible text, half noise, so blocks differ in how they pack."""
    rng = random.Random(seed)
    words = [bytes(rng.choice(b"abcdefghijklmnop") for _ in range(rng.randint(2, 9))) for _ in range(300)]
    out = bytearray()
    while len(out) < size:
        if rng.random() < 0.5:
            out += b" ".join(rng.choice(words) for _ in range(200)) + b"\n"
        else:
            out += rng.randbytes(3000)
    return bytes(out[:size])
