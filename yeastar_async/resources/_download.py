"""Fetching the files of the ``*/download`` endpoints (``client.files``).

Downloads take two steps: ``recording/download``, ``cdr/download``, ``call_report/download`` or
``call_schedule_report/download`` answer a :class:`~yeastar_async.resources.DownloadResponse`
(``file`` and ``download_resource_url``, a path such as ``/api/download/x.wav`` valid for 30
minutes); the file itself is then fetched from that path on the PBX with the current token.
:class:`Downloader` does the second step: the transport refuses a URL that leaves the PBX's host
and any redirect (the token goes with the request), percent-encodes the path (file names contain
``+``) and raises the typed error when the PBX answers HTTP 200 with a JSON errcode body instead
of the file (expired token, missing file). A transfer ends within the client's
``download_timeout`` (600 s by default) or the call's ``timeout=``.

Where the file goes (:meth:`Downloader.save`): a path ending in a separator (``"recordings/"``)
names a folder, created if missing (its parents too), and so does an existing folder; the file is
written inside under the PBX's file name. Any other path is the file itself, its missing parent
folders created.

Recordings are often not ready yet when their call's 30012 (new CDR) event arrives. Pass a
function that asks for the link and a number of ``retries`` to :meth:`Downloader.save`::

    path = await pbx.files.save(
        lambda: pbx.recording.download(file=cdr.recording), "recordings/", retries=4
    )

Each retry calls the function again (a new link) after ``retry_delay`` seconds, doubling the wait
each time (5, 10, 20, 40 s by default), but only for errors :func:`file_not_ready` accepts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import anyio

from yeastar_async.errors import (
    NotFoundError,
    ProcessingError,
    RequestFailedError,
    TransportError,
)
from yeastar_async.resources._base import DownloadResponse, Transport

__all__ = ["DownloadSource", "Downloader", "file_not_ready"]

#: What :meth:`Downloader.save` accepts: an answer of a ``*/download`` endpoint, its
#: ``download_resource_url``, or a function returning a fresh answer (called on every attempt).
DownloadSource = DownloadResponse | str | Callable[[], Awaitable[DownloadResponse]]


def file_not_ready(exc: BaseException) -> bool:
    """Whether ``exc`` may mean "the file is not there yet" (worth a later retry).

    True for a missing item (:class:`~yeastar_async.errors.NotFoundError`), the PBX's generic
    failure (-1, :class:`~yeastar_async.errors.RequestFailedError`), "still processing" (2) and
    an HTTP 404 from the download path. Credential, parameter and network errors are not retried
    here (the transport already retries network faults).
    """
    if isinstance(exc, TransportError):
        return exc.status == 404
    return isinstance(exc, NotFoundError | RequestFailedError | ProcessingError)


def _url_of(answer: DownloadResponse | str) -> str:
    if isinstance(answer, str):
        return answer
    if not answer.download_resource_url:
        raise ValueError("the download answer carries no download_resource_url")
    return answer.download_resource_url


def _names_a_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` ends in a separator (``"recordings/"``): it then names a folder."""
    text = os.fspath(path)
    separators = tuple({"/", os.sep, os.altsep or os.sep})
    return text.endswith(separators)


def _with_user_path(exc: OSError, part: Path, final: Path) -> OSError:
    """``exc`` naming ``final`` where it names the hidden temporary file ``part``.

    The temporary file is an internal detail; an error about it (permission, disk full)
    concerns the file the caller asked for.
    """
    if exc.errno is None or str(part) not in (exc.filename, exc.filename2):
        return exc
    # Same class (PermissionError ...) and errno, the caller's path as the only file name.
    renamed = type(exc)(exc.errno, exc.strerror, str(final))
    renamed.__traceback__ = exc.__traceback__
    return renamed


def _file_name(answer: DownloadResponse | str) -> str:
    """A safe local file name: the answer's ``file``, else the last segment of its URL."""
    candidates = []
    if isinstance(answer, DownloadResponse) and answer.file:
        candidates.append(answer.file)
    candidates.append(unquote(urlsplit(_url_of(answer)).path))
    for candidate in candidates:
        # Only the last component: a name from the PBX must not pick the directory.
        name = PurePosixPath(candidate.replace("\\", "/")).name.strip()
        if name not in ("", ".", ".."):
            return name
    raise ValueError("cannot derive a file name from the download answer; give a file path")


#: Bytes gathered before one write (at most about two batches are held: one filling, one being
#: written). A worker-thread round trip per 64 KiB chunk, about 100 µs each, halved the speed
#: of a download.
_BATCH = 1024 * 1024
#: A write to a regular file on the loop's thread slower than this moves the download's other
#: writes to a worker thread: the loop is never held longer than about one such write.
_SLOW_WRITE = 0.010


def _open_part(path: Path) -> BinaryIO:
    # Unbuffered: each write is one batch already, and Python's buffer would copy it again.
    return open(path, "wb", buffering=0)  # closed by the caller


def _write_all(out: BinaryIO, batch: list[bytes]) -> None:
    """Write ``batch`` in full, in one system call where it can (``writev``: no copy)."""
    if _WRITEV is not None and len(batch) <= _IOV_MAX:
        total = sum(map(len, batch))
        done = _WRITEV(out.fileno(), batch)
        if done == total:
            return
        rest = memoryview(b"".join(batch))[done:]  # a short write: the rest the plain way
    else:
        rest = memoryview(b"".join(batch))
    while rest:
        done = out.write(rest) or 0
        rest = rest[done:]


#: ``os.writev`` where the platform has it, and how many buffers one call takes.
_WRITEV = getattr(os, "writev", None)
_IOV_MAX = 1024


async def _copy(
    chunks: AsyncIterator[bytes], out: BinaryIO, progress: Callable[[int], object] | None
) -> None:
    """Write ``chunks`` to ``out`` in batches of about :data:`_BATCH` bytes.

    A regular file takes its batches on the event loop's thread: into the page cache, a MiB
    is a fraction of a millisecond, and a worker-thread round trip per batch would cost more
    than the write. Should one write take longer than :data:`_SLOW_WRITE` (a disk under
    writeback pressure, a network file system), the rest go through a worker thread, each
    written while the next batch is read.
    """
    loop = asyncio.get_running_loop()
    on_loop = stat.S_ISREG(os.fstat(out.fileno()).st_mode)
    received = size = 0
    batch: list[bytes] = []
    # The batch being written in a thread. Waited for with asyncio.wait, never awaited
    # directly: a cancellation must not abandon a thread still writing to the file.
    writing: asyncio.Future[None] | None = None
    try:
        async for chunk in chunks:
            batch.append(chunk)
            size += len(chunk)
            received += len(chunk)
            if progress is not None:
                progress(received)
            if size < _BATCH:
                continue
            if on_loop:
                started = time.monotonic()
                _write_all(out, batch)
                on_loop = time.monotonic() - started < _SLOW_WRITE
            else:
                if writing is not None:
                    await asyncio.wait({writing})
                    writing.result()  # the previous batch's OSError, if any
                writing = loop.run_in_executor(None, _write_all, out, batch)
            batch, size = [], 0
        if writing is not None:
            await asyncio.wait({writing})
            writing.result()
        if batch:
            if on_loop:
                _write_all(out, batch)
            else:
                writing = loop.run_in_executor(None, _write_all, out, batch)
                await asyncio.wait({writing})
                writing.result()
    finally:
        if writing is not None:
            if not writing.done():
                await asyncio.wait({writing})  # the file is closed after this; not under it
            if not writing.cancelled():
                writing.exception()  # retrieved: a failure here is not the one raised


class Downloader:
    """Fetches the files behind ``download_resource_url`` (``client.files``).

    Args:
        transport: the HTTP layer; its ``download`` does the token, host check and URL encoding.
    """

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def __repr__(self) -> str:
        return "<Downloader>"

    def iter_bytes(
        self,
        answer: DownloadResponse | str,
        *,
        timeout: float | None = None,
        chunk_size: int = 65536,
    ) -> AsyncIterator[bytes]:
        """Stream a file's bytes.

        Args:
            answer: the answer of a ``*/download`` endpoint, or its ``download_resource_url``.
            timeout: seconds allowed for the whole transfer (default: the client's
                ``download_timeout``, 600 s); a stall longer than the client's ``timeout``
                ends it sooner.
            chunk_size: bytes per chunk read from the socket.

        Raises:
            ValueError: the answer has no URL, or the URL leaves the PBX's host.
            YeastarError: the PBX answered a JSON error body instead of the file.
            TransportError: a redirect, a non-200 answer, a network fault, or the time bound.
        """
        return self._transport.download(_url_of(answer), timeout=timeout, chunk_size=chunk_size)

    async def save(
        self,
        source: DownloadSource,
        path: str | os.PathLike[str],
        *,
        retries: int = 0,
        retry_delay: float = 5.0,
        retry_on: Callable[[BaseException], bool] = file_not_ready,
        progress: Callable[[int], object] | None = None,
        timeout: float | None = None,
        chunk_size: int = 65536,
    ) -> Path:
        """Download a file to ``path`` and return where it was written.

        Where it goes:

        * ``path`` ends in a separator (``"recordings/"``, or ``os.sep``): a folder, created if
          missing (parents too); the file goes inside under the PBX's file name (the answer's
          ``file``, else the last segment of its URL; never a path of the PBX's choosing).
        * ``path`` is an existing folder: the same, inside it.
        * Otherwise ``path`` is the file to write (replaced if it exists); its missing parent
          folders are created.

        The bytes go to a hidden temporary file next to the target, renamed over it only once the
        transfer is complete, so a failed or cancelled download never leaves a partial file.
        Errors about that temporary file name the target instead.

        Args:
            source: an answer of a ``*/download`` endpoint, its ``download_resource_url``, or a
                function returning a fresh answer (called again before every retry, e.g.
                ``lambda: pbx.recording.download(file=name)``).
            path: the target file, or a folder (ending in a separator, or existing) to put the
                file in under the PBX's file name; missing folders are created.
            retries: further attempts after a failure ``retry_on`` accepts (0: none). A call's
                recording is often not ready when its 30012 event fires; a few retries cover it.
            retry_delay: seconds before the first retry; doubled before each next one.
            retry_on: which errors are worth a retry (default :func:`file_not_ready`).
            progress: called with the number of bytes received so far after every chunk
                (they are all on disk once ``save`` returns).
            timeout: seconds allowed for each whole transfer (default: the client's
                ``download_timeout``, 600 s).
            chunk_size: bytes per chunk.

        Raises:
            ValueError: bad arguments, no URL, or a URL that leaves the PBX's host.
            YeastarError: the last attempt's error (typed from the PBX's errcode body).
            OSError: the file or a folder cannot be written (the error names that path).
        """
        if retries < 0:
            raise ValueError("retries must be 0 or more")
        target = Path(path)
        into_folder = _names_a_folder(path)
        delay = retry_delay
        attempt = 0
        while True:
            try:
                answer = source if isinstance(source, DownloadResponse | str) else await source()
                if into_folder or await anyio.Path(target).is_dir():
                    final = target / _file_name(answer)
                else:
                    final = target
                # Only once the answer is in (a refused link creates nothing); they stay if the
                # transfer then fails, as another download may be using them already.
                await anyio.Path(final.parent).mkdir(parents=True, exist_ok=True)
                await self._write(answer, final, progress, timeout, chunk_size)
                return final
            except Exception as exc:
                if attempt >= retries or not retry_on(exc):
                    raise
            attempt += 1
            await anyio.sleep(delay)
            delay *= 2

    async def _write(
        self,
        answer: DownloadResponse | str,
        final: Path,
        progress: Callable[[int], object] | None,
        timeout: float | None,
        chunk_size: int,
    ) -> None:
        url = _url_of(answer)
        # Hidden, unique, and within the 255-byte name limit even for a name close to it.
        stem = os.fsencode(final.name)[:200].decode(errors="ignore")
        part = final.with_name(f".{stem}.{secrets.token_hex(4)}.part")
        try:
            chunks = self._transport.download(url, timeout=timeout, chunk_size=chunk_size)
            try:
                out = await anyio.to_thread.run_sync(_open_part, part)
                try:
                    await _copy(chunks, out, progress)
                finally:
                    await anyio.to_thread.run_sync(out.close)
            finally:
                # Close the HTTP response now, also when writing failed half-way.
                closer = getattr(chunks, "aclose", None)
                if closer is not None:
                    await closer()
            await anyio.Path(part).replace(final)
        except BaseException as exc:
            # Shielded: a cancelled download must still remove its partial file.
            with anyio.CancelScope(shield=True):
                await anyio.Path(part).unlink(missing_ok=True)
            if isinstance(exc, OSError):
                renamed = _with_user_path(exc, part, final)
                if renamed is not exc:
                    raise renamed from None
            raise
