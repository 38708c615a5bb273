"""Running out of file descriptors: recognised as such, and reported once with the fix.

A process holding many PBX streams needs one socket per stream (two while a REST call of that
client is open), and a soft limit of 1,024 descriptors is a common default. When it runs out,
every new connection fails with ``EMFILE`` ("Too many open files"); reported as a generic
connection failure, each stream would log a warning per retry, and nothing would say what to
change. Here the condition gets its own error, and the process logs it once, at ERROR, naming
the limit and how to raise it; later failures of the same kind go to DEBUG.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import logging
import os
import sys
import threading
from collections.abc import Iterator
from types import ModuleType

from .errors import TransportError

_resource: ModuleType | None
try:
    # Imported now, not when the report is made: by then the process has no descriptor left to
    # load the extension module with, and the report could not say the limit.
    import resource as _resource
except ImportError:  # pragma: no cover - not on this platform (Windows)
    _resource = None

__all__ = ["OutOfFileDescriptorsError", "advice", "imported", "importing", "out_of_fds", "report"]

#: Per-process (EMFILE) and system-wide (ENFILE) exhaustion.
_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE})
#: The dynamic loader's words for them: an extension module that cannot be opened is an
#: ImportError without an errno, its message ending with the C library's text.
_TEXTS = tuple(os.strerror(code) for code in sorted(_ERRNOS))

_lock = threading.Lock()
_reported = False


class OutOfFileDescriptorsError(TransportError):
    """A connection could not be opened, or what it needs (a module loaded on first use, the
    system trust store) could not be read: the process (or the system) has no file descriptor
    left. Nothing was sent. Raise the limit (``ulimit -n``) or hold fewer streams per process."""


def out_of_fds(exc: BaseException | None) -> bool:
    """Whether ``exc`` (an ``OSError``, or an error wrapping one) is descriptor exhaustion."""
    seen = 0
    while exc is not None and seen < 8:  # bounded: a cycle of causes must not loop
        if isinstance(exc, OSError) and exc.errno in _ERRNOS:
            return True
        if isinstance(exc, ImportError) and str(exc).endswith(_TEXTS):
            return True
        # aiohttp's ClientConnectorError keeps the OSError as `os_error`.
        inner = getattr(exc, "os_error", None)
        if isinstance(inner, OSError) and inner.errno in _ERRNOS:
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _soft_limit() -> str:
    if _resource is None:
        return "unknown"
    soft, _hard = _resource.getrlimit(_resource.RLIMIT_NOFILE)
    return "unlimited" if soft == _resource.RLIM_INFINITY else str(soft)


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


@contextlib.contextmanager
def importing(name: str) -> Iterator[None]:
    """Run the block that imports module ``name`` on first use; running out of descriptors
    there raises :class:`OutOfFileDescriptorsError`, and the retry imports the package whole.

    Python drops the module that failed, but keeps the modules of its package that loaded
    before it, some of them with a fallback picked because their own extension module could
    not be opened: those are dropped too. A module already loaded costs one lookup.
    """
    if name in sys.modules:
        yield
        return
    before = set(sys.modules)
    try:
        yield
    except Exception as exc:
        if not out_of_fds(exc):
            raise
        root = name.partition(".")[0]
        for loaded in set(sys.modules) - before:
            if loaded == root or loaded.startswith(root + "."):
                sys.modules.pop(loaded, None)
        raise OutOfFileDescriptorsError(f"cannot load {name}: {advice()}", sent=False) from None


def imported(name: str) -> ModuleType:
    """``importlib.import_module(name)``, as :func:`importing` says."""
    with importing(name):
        return importlib.import_module(name)
