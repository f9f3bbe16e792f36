"""The progress of `crabglamp demo` on stderr."""

from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """One line on stderr: a bar on a terminal, a line per tenth elsewhere (CI logs)."""

    WIDTH = 32

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.done = 0
        self.tty = bool(stream is not None and stream.isatty())
        self._shown_tenth = -1
        self._last = 0.0

    def advance(self, count: int) -> None:
        self.done += count
        self._show(min(self.done / self.total, 0.99))

    def finish(self) -> None:
        self._show(1.0, force=True)
        if self.stream is not None and self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def _show(self, fraction: float, force: bool = False) -> None:
        if self.stream is None:
            return
        filled = int(fraction * self.WIDTH)
        line = (
            f"seeding demo data [{'#' * filled}{'.' * (self.WIDTH - filled)}] "
            f"{int(fraction * 100):3d}%  {self.done:,} events"
        )
        if self.tty:
            moment = time.monotonic()
            if force or moment - self._last >= 0.1:
                self._last = moment
                self.stream.write("\r" + line)
                self.stream.flush()
            return
        tenth = int(fraction * 10)
        if force or tenth > self._shown_tenth:
            self._shown_tenth = tenth
            self.stream.write(line + "\n")
            self.stream.flush()
