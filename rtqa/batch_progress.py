"""Progress of a batch on standard error: a bar on a terminal, log lines otherwise, or nothing."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class Progress:
    """Counts finished and failed courses and shows them.

    ``mode``: ``"bar"`` (redrawn line with done, failed and ETA), ``"log"`` (one line per
    course) or ``"quiet"``; ``None`` picks ``bar`` when ``stream`` is a terminal, else ``log``.
    """

    WIDTH = 28

    def __init__(self, total: int, *, stream: TextIO | None = None, mode: str | None = None):
        self.stream = stream or sys.stderr
        if mode is None:
            mode = "bar" if getattr(self.stream, "isatty", lambda: False)() else "log"
        self.mode = mode
        self.total = total
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()

    def message(self, text: str) -> None:
        """A line of its own (kept above the bar)."""
        if self.mode == "quiet":
            return
        if self.mode == "bar":
            self.stream.write("\r\033[K")
        self.stream.write(f"rtqa batch: {text}\n")
        self.stream.flush()
        if self.mode == "bar" and self.done:
            self._draw()

    def eta_s(self) -> float | None:
        if not self.done:
            return None
        elapsed = time.monotonic() - self.start
        return elapsed / self.done * (self.total - self.done)

    def update(self, course: str, status: str, runtime_s: float, error: str | None = None) -> None:
        """One course finished with ``status`` (``error`` counts as failed)."""
        self.done += 1
        if status == "error":
            self.failed += 1
        if self.mode == "log":
            why = f": {error}" if error else ""
            self.stream.write(
                f"rtqa batch: [{self.done}/{self.total}] {course}: {status} "
                f"({runtime_s:.1f} s){why}\n"
            )
            self.stream.flush()
        elif self.mode == "bar":
            self._draw()

    def _draw(self) -> None:
        frac = self.done / self.total if self.total else 1.0
        filled = round(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        eta = self.eta_s()
        eta_text = _duration(eta) if eta is not None else "?"
        self.stream.write(
            f"\r\033[K[{bar}] {self.done}/{self.total} done, {self.failed} failed, ETA {eta_text}"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.mode == "bar" and self.total:
            self.stream.write("\n")
            self.stream.flush()
