"""The progress display of `switchboard contacts import`: a Rich bar on standard error."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from .importer import Counts, Totals


class ImportProgress:
    """Bytes of the file read (the bar), rows sent, rows/s confirmed, and the outcome counts.

    Rows/s counts the rows the server has confirmed (a part's summary arrived), so it is the
    import's real rate, not how fast the file is read.
    """

    def __init__(self, total_bytes: int, counts: Counts, *, show: bool) -> None:
        self._counts = counts
        self._started = time.monotonic()
        self._progress = Progress(
            TextColumn("importing"),
            BarColumn(bar_width=20),
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[sent]} rows sent"),
            TextColumn("{task.fields[rate]} rows/s"),
            TextColumn("{task.fields[outcome]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=not show,
            transient=False,
        )
        self._task: TaskID = self._progress.add_task(
            "import", total=total_bytes or None, sent=0, rate=0, outcome=""
        )

    def read(self, size: int) -> None:
        """Counts `size` more bytes of the file read (called from the reading thread)."""
        self._counts.bytes_read += size
        self._progress.update(self._task, completed=self._counts.bytes_read, sent=self._counts.sent)

    def confirmed(self, totals: Totals) -> None:
        """Shows the totals after a part's summary arrived."""
        elapsed = max(time.monotonic() - self._started, 1e-6)
        done = totals.received
        self._progress.update(
            self._task,
            sent=self._counts.sent,
            rate=f"{done / elapsed:,.0f}",
            outcome=(
                f"{totals.created} created, {totals.updated} updated, "
                f"{totals.unchanged} unchanged, {totals.failed} rejected"
            ),
        )

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._progress.stop()
