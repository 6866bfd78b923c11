"""Terminal output for the command line: bar charts, tables and progress bars.

Progress bars use rich (the ``cli`` extra) on a terminal when it is installed; otherwise
long runs print a percentage line at every tenth.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

__all__ = ["Progress", "bar_chart", "progress", "table"]

_EIGHTHS = " ▏▎▍▌▋▊▉"


def _bar(fraction: float, width: int) -> str:
    eighths = round(max(0.0, min(1.0, fraction)) * width * 8)
    full, rest = divmod(eighths, 8)
    return "█" * full + (_EIGHTHS[rest] if rest else "")


def bar_chart(rows: Sequence[tuple[str, int]], total: int, width: int = 40) -> str:
    """One line per (label, count): the label, a bar scaled to the largest count, the count
    and its share of ``total``."""
    if not rows:
        return ""
    label_width = max(len(label) for label, _ in rows)
    count_width = max(len(str(count)) for _, count in rows)
    top = max(count for _, count in rows) or 1
    lines = []
    for label, count in rows:
        share = count / total if total else 0.0
        bar = _bar(count / top, width)
        lines.append(
            f"{label:<{label_width}}  {bar:<{width}}  {count:>{count_width}}  {share:6.1%}"
        )
    return "\n".join(lines)


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table with left-aligned columns."""
    cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


class Progress(Protocol):
    """Something that counts finished work."""

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done."""


class _Silent:
    def advance(self, n: int = 1) -> None:
        pass


class _Lines:
    """Without rich: a line on stderr at every tenth of the work."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done, self.next_tenth = total, label, 0, 1

    def advance(self, n: int = 1) -> None:
        self.done += n
        while self.total and self.done * 10 >= self.next_tenth * self.total:
            print(f"{self.label}: {self.next_tenth * 10}%", file=sys.stderr, flush=True)
            self.next_tenth += 1


class _Rich:
    def __init__(self, bar: object, task: object) -> None:
        self.bar, self.task = bar, task

    def advance(self, n: int = 1) -> None:
        self.bar.advance(self.task, n)  # type: ignore[attr-defined]


@contextmanager
def progress(total: int, label: str, enabled: bool) -> Iterator[Progress]:
    """A progress bar on stderr for ``total`` units of work (nothing when not ``enabled``):
    rich's bar on a terminal, else a line at every tenth (a log file stays readable)."""
    if not enabled:
        yield _Silent()
        return
    if not sys.stderr.isatty():
        yield _Lines(total, label)
        return
    try:
        from rich.console import Console
        from rich.progress import Progress as RichProgress
    except ImportError:
        yield _Lines(total, label)
        return
    with RichProgress(console=Console(stderr=True), transient=True) as bar:
        yield _Rich(bar, bar.add_task(label, total=total))
