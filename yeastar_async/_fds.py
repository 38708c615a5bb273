"""Running out of file descriptors: recognised as such, and reported once with the fix.

A process holding many PBX streams needs one socket per stream (two while a REST call of that
client is open), and a soft limit of 1,024 descriptors is a common default. When it runs out,
every new connection fails with ``EMFILE`` ("Too many open files"); reported as a generic
connection failure, each stream would log a warning per retry, and nothing would say what to
change. Here the condition gets its own error, and the process logs it once, at ERROR, naming
the limit and how to raise it; later failures of the same kind go to DEBUG.
"""

from __future__ import annotations

import errno
import logging
import threading

from .errors import TransportError

__all__ = ["OutOfFileDescriptorsError", "advice", "out_of_fds", "report"]

#: Per-process (EMFILE) and system-wide (ENFILE) exhaustion.
_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE})

_lock = threading.Lock()
_reported = False


class OutOfFileDescriptorsError(TransportError):
    """A connection could not be opened: the process (or the system) has no file descriptor
    left. Nothing was sent. Raise the limit (``ulimit -n``) or hold fewer streams per process."""


def out_of_fds(exc: BaseException | None) -> bool:
    """Whether ``exc`` (an ``OSError``, or an error wrapping one) is descriptor exhaustion."""
    seen = 0
    while exc is not None and seen < 8:  # bounded: a cycle of causes must not loop
        if isinstance(exc, OSError) and exc.errno in _ERRNOS:
            return True
        # aiohttp's ClientConnectorError keeps the OSError as `os_error`.
        inner = getattr(exc, "os_error", None)
        if isinstance(inner, OSError) and inner.errno in _ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _soft_limit() -> str:
    try:
        import resource
    except ImportError:  # not on this platform (Windows)
        return "unknown"
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


def advice() -> str:
    """What happened and the fix, with this process's current soft limit."""
    return (
        f"out of file descriptors (Too many open files; soft limit {_soft_limit()}): each "
        "PBX event stream holds one socket, two while a REST call of its client is open. "
        "Raise the limit (`ulimit -n 65536` in the shell that starts the process, LimitNOFILE= "
        "in a systemd unit, or resource.setrlimit within the hard limit), or hold fewer "
        "streams per process"
    )


def report(logger: logging.Logger, where: str) -> None:
    """Log the exhaustion: at ERROR the first time in this process, at DEBUG after that."""
    global _reported
    with _lock:
        first, _reported = not _reported, True
    level = logging.ERROR if first else logging.DEBUG
    logger.log(level, "%s: %s", where, advice())
