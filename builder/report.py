"""What the builder tells a person on stderr while it works: progress
lines, notes, sizes and digests in a readable form. Errors are printed by
``cli`` alone, and nothing here ever writes to stdout (it carries images).

Progress of a long task (streaming, compressing, uploading, downloading) is
a ``Progress``: bytes done of a total, shown only once the task has run for
``DELAY`` seconds (a fast stream prints nothing). On a terminal it is one
bar redrawn in place; otherwise (a pipe, a log, a Nix build) one line every
``INTERVAL`` seconds. Per-item lines (``layer 3/12 ...``) go through the same
object, so they interleave cleanly with the bar. ``set_quiet()`` (``--quiet``)
silences everything here.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, List, Optional, TextIO

from builder.sinks.sink import Sink, output_fd_counted

__all__ = [
    "DELAY",
    "INTERVAL",
    "Progress",
    "ProgressSink",
    "human_size",
    "progress_line",
    "set_quiet",
    "short_digest",
]

DELAY = 1.0  # seconds a task runs before it shows any progress
INTERVAL = 5.0  # seconds between progress lines when stderr is not a terminal
_BAR_REFRESH = 0.2  # seconds between redraws of a terminal bar
_BAR_WIDTH = 24
_PIECE = 8 << 20  # ProgressSink copies big files in pieces of this size

_quiet = False


def set_quiet(quiet: bool = True) -> None:
    """No progress lines or notes on stderr from now on (``--quiet``)."""
    global _quiet
    _quiet = quiet


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def short_digest(digest: str) -> str:
    return digest[:19] + "…"


def progress_line(line: str) -> None:
    if not _quiet:
        print(line, file=sys.stderr, flush=True)


class Progress:
    """Bytes done of ``total`` (None: unknown) for the task ``what``."""

    def __init__(
        self,
        what: str,
        total: Optional[int] = None,
        *,
        stream: Optional[TextIO] = None,
        clock: Callable[[], float] = time.monotonic,
        tty: Optional[bool] = None,
    ):
        self.what = what
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.start = clock()
        self.tty = self._isatty() if tty is None else tty
        self.visible = False  # shown anything yet
        self.last = self.start  # last line or redraw
        self.pending: Optional[str] = None  # the latest item line, until visible
        self.bar_drawn = False
        self.lock = threading.Lock()

    def _isatty(self) -> bool:
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            self._tick()

    def item(self, line: str) -> None:
        """A line of its own (a layer starting): printed when the task is
        visible, else kept (the latest one) until it is."""
        with self.lock:
            if self.visible:
                self._print(line)
            else:
                self.pending = line
            self._tick()

    def close(self, summary: Optional[str] = None) -> None:
        """The task ended: a last line when progress was shown (``""``:
        none, the bar is only cleared, for a caller that prints its own)."""
        with self.lock:
            if _quiet or not self.visible:
                return
            if summary == "":
                if self.bar_drawn:
                    self.stream.write("\r\x1b[K")
                    self.stream.flush()
                    self.bar_drawn = False
                return
            elapsed = self.clock() - self.start
            self._print(summary or f"{self.what}: {human_size(self.done)} in {elapsed:.1f} s")

    # -- drawing, under the lock ---------------------------------------------

    def _tick(self) -> None:
        if _quiet:
            return
        now = self.clock()
        if not self.visible:
            if now - self.start < DELAY:
                return
            self.visible = True
            if self.pending is not None:
                self._print(self.pending)
                self.pending = None
            self._status(now)
            return
        if now - self.last >= (_BAR_REFRESH if self.tty else INTERVAL):
            self._status(now)

    def _amount(self) -> str:
        if self.total:
            pct = min(100, self.done * 100 // self.total)
            return f"{human_size(self.done)} / {human_size(self.total)} ({pct}%)"
        return human_size(self.done)

    def _status(self, now: float) -> None:
        self.last = now
        if self.tty:
            bar = ""
            if self.total:
                filled = min(_BAR_WIDTH, self.done * _BAR_WIDTH // self.total)
                bar = "[" + "#" * filled + "." * (_BAR_WIDTH - filled) + "] "
            self.stream.write(f"\r\x1b[K{bar}{self.what}: {self._amount()}")
            self.stream.flush()
            self.bar_drawn = True
        else:
            self._print(f"{self.what}: {self._amount()}")

    def _print(self, line: str) -> None:
        if _quiet:
            return
        if self.bar_drawn:
            self.stream.write("\r\x1b[K")
            self.bar_drawn = False
        self.stream.write(line + "\n")
        self.stream.flush()
        if self.tty and self.visible:
            self._status(self.clock())


class ProgressSink(Sink):
    """Passes bytes to ``inner`` and counts them into ``progress``."""

    def __init__(self, inner: Sink, progress: Progress):
        self.inner = inner
        self.progress = progress

    def write(self, data) -> None:
        self.inner.write(data)
        self.progress.add(len(data))

    def copy_file(self, fd: int, size: int) -> None:
        # A big file in pieces (each read from where the last one ended),
        # so its progress moves while it is copied.
        while size > _PIECE:
            self.inner.copy_file(fd, _PIECE)
            self.progress.add(_PIECE)
            size -= _PIECE
        self.inner.copy_file(fd, size)
        self.progress.add(size)

    def write_parts(self, parts: List[bytes]) -> None:
        self.inner.write_parts(parts)
        self.progress.add(sum(map(len, parts)))

    def write_framed(self, head: bytes, fd: int, size: int, tail: bytes) -> None:
        if size <= _PIECE:
            self.inner.write_framed(head, fd, size, tail)
            self.progress.add(len(head) + size + len(tail))
            return
        self.write(head)
        self.copy_file(fd, size)
        self.write(tail)

    def output_fd(self):
        return output_fd_counted(self.inner, self.progress.add)

    def flush(self) -> None:
        self.inner.flush()
