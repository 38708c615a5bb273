"""Talking to the user: lines on stdout and stderr, library logs to stderr, usage errors."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Final, TextIO, TypeVar

T = TypeVar("T")

PROG: Final = "yeastar-async"


class UsageError(Exception):
    """Bad or missing arguments: printed like argparse's own errors, exit status 2."""


class OutputClosed(Exception):
    """Whoever read stdout stopped (``yeastar-async events | head -1``): the command ends
    quietly with exit status 0, as a finished command would."""


_ASCII_FALLBACK: Final = str.maketrans({"→": "->", "✓": "OK", "✗": "XX", "▶": ">", "×": "x"})


def _can_print(text: str, stream: Any) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _ascii(line: str) -> str:
    # A console that cannot show the symbols (cp1252) still gets a readable line.
    return line.translate(_ASCII_FALLBACK).encode("ascii", "replace").decode("ascii")


def _to_devnull(stream: TextIO) -> None:
    # The interpreter flushes stdout / stderr once more at exit: with the reader gone that
    # flush would fail too and print "Exception ignored ... BrokenPipeError".
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):  # not a real file (a capture): no fd
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _write(line: str, stream: TextIO) -> bool:
    """Write ``line``; False when the stream's reader has gone (the stream is then muted)."""
    try:
        print(line if _can_print(line, stream) else _ascii(line), file=stream, flush=True)
    except BrokenPipeError:
        _to_devnull(stream)
        return False
    return True


def out(line: str = "") -> None:
    """Print ``line`` on stdout (ASCII stand-ins for symbols a legacy console cannot show).

    Raises:
        OutputClosed: stdout's reader has gone (a closed pipe).
    """
    # sys.stdout is looked up on every call: tests and pipes may swap it.
    if not _write(line, sys.stdout):
        raise OutputClosed("stdout was closed")


def err(line: str) -> None:
    """Print ``line`` on stderr, like :func:`out`; a closed stderr is ignored (status lines
    are not the command's result)."""
    _write(line, sys.stderr)


class OutputGuard:
    """Wraps the callbacks a command hands to the library (event handlers, the bot's
    ``on_decision``) so that a closed stdout ends the command instead of logging a traceback
    per event: see :func:`ends_when_output_closes`."""

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        self._task = task
        self.closed = False

    def _stop(self) -> None:
        if not self.closed and self._task is not None:
            self.closed = True
            self._task.cancel()

    def handler(self, fn: Callable[[T], Awaitable[Any]]) -> Callable[[T], Awaitable[None]]:
        """``fn`` (an async event handler), ending the command when it finds stdout closed."""

        @functools.wraps(fn)
        async def guarded(event: T) -> None:
            try:
                await fn(event)
            except OutputClosed:
                self._stop()

        return guarded

    def call(self, fn: Callable[[T], Any]) -> Callable[[T], None]:
        """``fn`` (a plain callback), likewise."""

        @functools.wraps(fn)
        def guarded(arg: T) -> None:
            try:
                fn(arg)
            except OutputClosed:
                self._stop()

        return guarded


@contextlib.asynccontextmanager
async def ends_when_output_closes() -> AsyncIterator[OutputGuard]:
    """Within the block, a guarded callback that finds stdout closed cancels the command's
    task; the block then raises :class:`OutputClosed` (a quiet end) instead of the cancel."""
    task = asyncio.current_task()
    guard = OutputGuard(task)
    try:
        yield guard
    except asyncio.CancelledError:
        if guard.closed and task is not None and task.uncancel() == 0:
            raise OutputClosed("stdout was closed") from None
        raise


class LibraryLog(logging.Handler):
    """Log records to whatever ``sys.stderr`` is at the time (not the one at start-up); it
    remembers what it printed, so an error the library already logged is not printed twice."""

    def __init__(self) -> None:
        super().__init__()
        self._shown: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            if record.levelno >= logging.ERROR:
                self._shown.append(line)
            err(f"{PROG}: {line}")
        except Exception:  # pragma: no cover - logging must never break the command
            self.handleError(record)

    def showed(self, text: str) -> bool:
        """Whether an error line already printed contains ``text``."""
        return bool(text) and any(text in line for line in self._shown)


@contextlib.contextmanager
def logging_to_stderr(verbose: int) -> Iterator[LibraryLog]:
    """Route the library's warnings (or more with ``-v``) to stderr while a command runs."""
    target = logging.getLogger("yeastar_async")
    handler = LibraryLog()
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level, old_propagate = target.level, target.propagate
    target.addHandler(handler)
    target.setLevel((logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG)
    target.propagate = False
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)
        target.propagate = old_propagate
