"""The batch progress display: a redrawn bar on a terminal, one line per course otherwise."""

from __future__ import annotations

import io

import pytest

import rtqa.batch_progress as bp
from rtqa.batch_progress import Progress, _duration


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> _Clock:
    c = _Clock()
    monkeypatch.setattr(bp.time, "monotonic", c)
    return c


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (59.4, "59s"), (59.6, "1m00s"), (61, "1m01s"), (3599, "59m59s"), (3725, "1h02m")],
)
def test_durations_read_as_hours_minutes_seconds(seconds, text):
    assert _duration(seconds) == text


def test_mode_follows_the_stream():
    assert Progress(3, stream=_Terminal()).mode == "bar"
    assert Progress(3, stream=io.StringIO()).mode == "log"


def test_log_mode_writes_one_line_per_course_with_its_error(clock):
    out = io.StringIO()
    p = Progress(2, stream=out, mode="log")
    clock.now += 4.0
    p.update("case_a", "pass", 3.94)
    p.update("case_b", "error", 0.25, "RT Dose unreadable")
    p.close()
    assert out.getvalue().splitlines() == [
        "rtqa batch: [1/2] case_a: pass (3.9 s)",
        "rtqa batch: [2/2] case_b: error (0.2 s): RT Dose unreadable",
    ]
    assert (p.done, p.failed) == (2, 1)


def test_bar_redraws_with_counts_and_an_eta_from_the_mean_course_time(clock):
    out = _Terminal()
    p = Progress(4, stream=out)
    assert p.eta_s() is None
    clock.now += 30.0
    p.update("a", "pass", 30.0)
    # 30 s for one course, three to go: 90 s
    assert p.eta_s() == pytest.approx(90.0)
    clock.now += 30.0
    p.update("b", "error", 1.0, "boom")
    p.close()
    frames = out.getvalue().split("\r\033[K")[1:]
    assert frames[0] == "[#######---------------------] 1/4 done, 0 failed, ETA 1m30s"
    # two of four done after 60 s: 60 s to go; the bar is half full
    assert frames[1] == "[##############--------------] 2/4 done, 1 failed, ETA 1m00s\n"


def test_messages_stay_above_the_bar(clock):
    out = _Terminal()
    p = Progress(2, stream=out)
    clock.now += 10.0
    p.update("a", "pass", 10.0)
    p.message("worker restarted")
    text = out.getvalue()
    line = "\r\033[Krtqa batch: worker restarted\n"
    assert line in text
    # the bar is drawn again below the message
    assert text.endswith("\r\033[K[##############--------------] 1/2 done, 0 failed, ETA 10s")


def test_quiet_mode_writes_nothing(clock):
    out = _Terminal()
    p = Progress(2, stream=out, mode="quiet")
    p.update("a", "error", 1.0, "boom")
    p.message("hello")
    p.close()
    assert out.getvalue() == ""
    assert p.failed == 1
