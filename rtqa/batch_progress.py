"""Progress of a batch on standard error: a bar on a terminal, log lines otherwise, or nothing.

Progress is written defensively: a closed, broken or missing stream (``2>&-``, ``2>&1 | head``,
a vanished terminal) silences it for the rest of the run and never stops the batch or changes
its exit code; the counts go on.
"""

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
        self.stream = stream if stream is not None else sys.stderr  # None: stderr closed
        if self.stream is None:
            mode = "quiet"
        elif mode is None:
            try:
                mode = "bar" if self.stream.isatty() else "log"
            except (AttributeError, OSError, ValueError):  # no isatty, or a closed stream
                mode = "log"
        self.mode = mode
        self.total = total
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()

    def _write(self, text: str) -> None:
        """Write and flush ``text``; on a closed or broken stream go quiet for good."""
        if self.mode == "quiet":
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # BrokenPipeError, EIO, "I/O operation on closed file"
            self.mode = "quiet"

    def message(self, text: str) -> None:
        """A line of its own (kept above the bar)."""
        if self.mode == "quiet":
            return
        clear = "\r\033[K" if self.mode == "bar" else ""
        self._write(f"{clear}rtqa batch: {text}\n")
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
            self._write(
                f"rtqa batch: [{self.done}/{self.total}] {course}: {status} "
                f"({runtime_s:.1f} s){why}\n"
            )
        elif self.mode == "bar":
            self._draw()

    def _draw(self) -> None:
        frac = self.done / self.total if self.total else 1.0
        filled = round(frac * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        eta = self.eta_s()
        eta_text = _duration(eta) if eta is not None else "?"
        self._write(
            f"\r\033[K[{bar}] {self.done}/{self.total} done, {self.failed} failed, ETA {eta_text}"
        )

    def close(self) -> None:
        if self.mode == "bar" and self.total:
            self._write("\n")
