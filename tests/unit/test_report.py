"""report.Progress: silent for short tasks, a bar on a terminal, a line
every few seconds otherwise, nothing at all when quiet; never stdout."""

import io

import pytest

from builder import report
from builder.report import Progress, ProgressSink
from builder.sinks.sink import MemorySink


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def loud():
    report.set_quiet(False)
    yield
    report.set_quiet(False)


def make(tty=False, total=1000):
    clock, out = Clock(), io.StringIO()
    return Progress("writing app:1", total, stream=out, clock=clock, tty=tty), clock, out


def test_short_task_prints_nothing():
    p, clock, out = make()
    p.item("layer 1/2: 500 B")
    p.add(500)
    clock.now += 0.5
    p.item("layer 2/2: 500 B")
    p.add(500)
    p.close()
    assert out.getvalue() == ""


def test_lines_every_interval_when_not_a_terminal():
    p, clock, out = make(total=10_000_000)
    p.item("layer 1/3: 4.0 MB")
    p.add(1_000_000)
    clock.now += report.DELAY  # now visible: the pending layer line, then the amount
    p.add(1_000_000)
    assert out.getvalue().splitlines() == ["layer 1/3: 4.0 MB", "writing app:1: 2.0 MB / 10.0 MB (20%)"]
    clock.now += 1
    p.add(1_000_000)  # within INTERVAL: no line
    assert len(out.getvalue().splitlines()) == 2
    p.item("layer 2/3: 6.0 MB")  # items always show once visible
    clock.now += report.INTERVAL
    p.add(7_000_000)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines[2:] == [
        "layer 2/3: 6.0 MB",
        "writing app:1: 10.0 MB / 10.0 MB (100%)",
        "writing app:1: 10.0 MB in 7.0 s",
    ]
    assert "\r" not in out.getvalue()


def test_bar_on_a_terminal_redraws_in_place():
    p, clock, out = make(tty=True, total=100)
    clock.now += 2
    p.add(50)
    assert out.getvalue().endswith("\r\x1b[K[############............] writing app:1: 50 B / 100 B (50%)")
    p.item("layer 2/2: 50 B")  # the bar is cleared, the line printed, the bar drawn again
    assert "\r\x1b[Klayer 2/2: 50 B\n" in out.getvalue()
    p.close("")
    assert out.getvalue().endswith("\r\x1b[K")


def test_unknown_total_shows_bytes_only():
    p, clock, out = make(total=None)
    clock.now += 2
    p.add(2_500_000)
    assert out.getvalue() == "writing app:1: 2.5 MB\n"


def test_quiet_silences_everything(capsys):
    report.set_quiet()
    p, clock, out = make()
    clock.now += 10
    p.item("layer 1/1")
    p.add(10)
    p.close()
    report.progress_line("pushed")
    assert out.getvalue() == "" and capsys.readouterr() == ("", "")


def test_progress_line_goes_to_stderr_only(capsys):
    report.progress_line("layer 1/2 uploaded")
    assert capsys.readouterr() == ("", "layer 1/2 uploaded\n")


def test_progress_sink_counts_every_way_bytes_arrive(tmp_path):
    p, clock, out = make(total=None)
    inner = MemorySink()
    sink = ProgressSink(inner, p)
    f = tmp_path / "f"
    f.write_bytes(b"x" * 300)
    sink.write(b"abc")
    with open(f, "rb") as fh:
        sink.copy_file(fh.fileno(), 100)
        sink.write_framed(b"H", fh.fileno(), 200, b"T")
    assert p.done == 3 + 100 + 202 and bytes(inner.data) == b"abc" + b"x" * 100 + b"H" + b"x" * 200 + b"T"
