"""Progress on stderr for steps that can take more than a moment; silent when not a terminal."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def counter(label: str) -> Iterator[Callable[[int], None]]:
    """A live row counter; yields `advance(n)`."""
    if not sys.stderr.isatty():
        yield lambda n: None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(label, total=None)
        yield lambda n: progress.advance(task, n)


@contextlib.contextmanager
def stages(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner naming the current stage; yields `step(name)`."""
    if not sys.stderr.isatty():
        yield lambda name: None
        return
    from rich.console import Console

    with Console(stderr=True).status(label) as status:
        yield lambda name: status.update(f"{label}: {name}")
