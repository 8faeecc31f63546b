"""Progress display for the long host commands (export, check, quantize, bench: 20-60 s each).

One small helper so every command shows progress the same way: a rich bar on stderr when stderr is
a terminal, nothing at all otherwise (pipes, CI logs, tests, --json output stay clean). stdout is
never touched, so a command's report and JSON are unaffected.

    with progress("checking forms", total=len(forms)) as advance:
        for form in forms:
            ...
            advance()

    with progress("exporting to ONNX"):    # no total: a spinner with elapsed time
        build_onnx(...)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

_console = Console(stderr=True)


def enabled() -> bool:
    """True when progress is drawn: stderr is an interactive terminal."""
    return _console.is_terminal


@contextmanager
def progress(description: str, total: int | None = None, animate: bool = True) -> Iterator[Callable[[int], None]]:
    """A bar of `total` steps (a spinner when None); yields advance(n=1). Removed from the screen when done.

    animate=False redraws only on advance(), with no refresh thread: for timing loops (bench), where a
    thread redrawing the screen ten times a second would be measured too.
    """
    columns = [SpinnerColumn(), TextColumn("{task.description}")]
    if total is not None:
        columns += [BarColumn(), MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    with Progress(*columns, console=_console, transient=True, disable=not enabled(), auto_refresh=animate) as bar:
        task = bar.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            bar.advance(task, n)
            if not animate:
                bar.refresh()

        yield advance
