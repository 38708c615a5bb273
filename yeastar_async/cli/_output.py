"""Talking to the user: lines on stdout and stderr, library logs to stderr, usage errors."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from typing import Any, Final, TextIO

PROG: Final = "yeastar-async"


class UsageError(Exception):
    """Bad or missing arguments: printed like argparse's own errors, exit status 2."""


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


def _write(line: str, stream: TextIO) -> None:
    print(line if _can_print(line, stream) else _ascii(line), file=stream, flush=True)


def out(line: str = "") -> None:
    """Print ``line`` on stdout (ASCII stand-ins for symbols a legacy console cannot show)."""
    # sys.stdout is looked up on every call: tests and pipes may swap it.
    _write(line, sys.stdout)


def err(line: str) -> None:
    """Print ``line`` on stderr, like :func:`out`."""
    _write(line, sys.stderr)


class _StderrHandler(logging.Handler):
    """Log records to whatever ``sys.stderr`` is at the time (not the one at start-up)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err(f"{PROG}: {self.format(record)}")
        except Exception:  # pragma: no cover - logging must never break the command
            self.handleError(record)


@contextlib.contextmanager
def logging_to_stderr(verbose: int) -> Iterator[None]:
    """Route the library's warnings (or more with ``-v``) to stderr while a command runs."""
    target = logging.getLogger("yeastar_async")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level, old_propagate = target.level, target.propagate
    target.addHandler(handler)
    target.setLevel((logging.WARNING, logging.INFO)[verbose] if verbose < 2 else logging.DEBUG)
    target.propagate = False
    try:
        yield
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)
        target.propagate = old_propagate
