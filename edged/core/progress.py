"""Progress of long offline work: a tqdm bar on a terminal, a plain line now and then elsewhere, or nothing.

::

    with Progress("street.mp4", total=900, unit="frame", prefix="edged deid") as bar:
        for frame in frames:
            ...
            bar.update()

On a terminal (``stream.isatty()``) the bar shows done/total, rate and time left and is redrawn in
place; when the stream is a pipe or a log file a line such as ``edged deid: street.mp4: 120/900
frames (13%), 24.1 frames/s, about 32 s left`` is written at most every :data:`PLAIN_EVERY_S`
seconds and once at the end; ``quiet`` shows nothing. Bars may nest (``position=1`` under a batch bar).
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

PLAIN_EVERY_S = 10.0
"""Seconds between plain progress lines (not on a terminal)."""


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def terminal_size(stream: TextIO) -> tuple[int, int] | None:
    """Columns and lines of the terminal ``stream`` shows on; ``None`` when it reports none (a fresh
    pseudo-terminal)."""
    import os

    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return None
    return (size.columns, size.lines) if size.columns > 0 and size.lines > 0 else None


class Progress:
    """Count done units of one piece of work and show it as the stream allows (see the module doc)."""

    def __init__(self, name: str, total: int | None, unit: str = "frame", prefix: str = "", quiet: bool = False,
                 stream: TextIO | None = None, position: int = 0, leave: bool = True) -> None:
        self.name, self.total, self.unit, self.prefix = name, total or None, unit, prefix
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self._bar = None
        self._plain = not quiet and not is_terminal(self.stream)
        self._t0 = self._last = time.monotonic()
        self._shown: int | None = None  # ``done`` at the last plain line
        if not quiet and not self._plain:
            from tqdm import tqdm

            known = terminal_size(self.stream) is not None  # else tqdm would draw a zero-width bar, or none
            self._bar = tqdm(total=self.total, desc=name, unit=unit, file=self.stream, position=position,
                             leave=leave, dynamic_ncols=known, ncols=None if known else 80,
                             nrows=None if known else 24)

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units done."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._plain and time.monotonic() - self._last >= PLAIN_EVERY_S:
            self._line()

    def set_total(self, total: int) -> None:
        """Correct the expected total (an estimate turned out wrong)."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def write(self, line: str, file: TextIO | None = None) -> None:
        """Write a message line to ``file`` (default: the progress stream) without breaking the bar."""
        file = file if file is not None else self.stream
        if self._bar is not None:
            self._bar.write(line, file=file)
        else:
            print(line, file=file, flush=True)

    def _line(self) -> None:
        self._last = now = time.monotonic()
        self._shown = self.done
        rate = self.done / max(now - self._t0, 1e-9)
        units = f"{self.unit}s"
        if self.total:
            ahead = rate > 0 and self.done < self.total
            left = f", about {max(self.total - self.done, 0) / rate:.0f} s left" if ahead else ""
            done = f"{self.done}/{self.total} {units} ({self.done / self.total:.0%}), {rate:.1f} {units}/s{left}"
        else:
            done = f"{self.done} {units}, {rate:.1f} {units}/s"
        lead = f"{self.prefix}: " if self.prefix else ""
        print(f"{lead}{self.name}: {done}", file=self.stream, flush=True)

    def close(self) -> None:
        """End the display (the plain mode writes its last line if it wrote any or took a while)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._plain and self._shown != self.done and (
                self._shown is not None or time.monotonic() - self._t0 >= PLAIN_EVERY_S):
            self._line()
        self._plain = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
