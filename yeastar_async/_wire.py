"""Vendor-neutral guards for HTTP answers to requests that carry a secret or a token.

Two rules every HTTP client of this package follows, whatever the vendor:

- :func:`refuse_redirect`: a request carrying a credential never follows a redirect. The
  ``Location`` may name another host (the credential would go there, and its answer would pass
  for the PBX's) or plain ``http://`` (the credential would cross the network in clear text).
  Send such requests with ``allow_redirects=False`` and pass every answer through it.
- :func:`read_capped`: an answer is read whole only up to a size limit, checked against
  ``Content-Length`` before reading and against the bytes read (decompressed) while reading,
  so a huge or endless body costs at most ``limit`` bytes of memory.

Both raise :class:`~yeastar_async.errors.TransportError` with a message that starts with the
caller's ``what`` (``"GET extension/list"``) and passes any server-sent text through ``mask``;
:func:`transport_failure` words an aiohttp failure of such a request the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp

from .errors import TransportError

__all__ = ["EXCERPT", "excerpt", "read_capped", "refuse_redirect", "transport_failure"]

#: Bytes of a body kept in :attr:`TransportError.body_excerpt`.
EXCERPT = 200
#: Longest ``Location`` quoted in an error: enough to see where it pointed.
_LOCATION_SHOWN = 200


def excerpt(body: bytes, mask: Callable[[str], str]) -> str:
    """The first :data:`EXCERPT` bytes of ``body``, decoded leniently and masked."""
    return mask(body[:EXCERPT].decode("utf-8", "replace"))


def refuse_redirect(
    status: int,
    headers: Mapping[str, str],
    *,
    what: str,
    mask: Callable[[str], str],
    endpoint: str = "",
) -> None:
    """Raise TransportError for a 3xx answer: names the status and the masked Location; else None.

    Args:
        status: the answer's HTTP status.
        headers: its headers (``Location`` is looked up in them).
        what: the text the error message starts with, e.g. ``"GET extension/list"``.
        mask: masks secrets in server-sent text (the ``Location`` may echo the token).
        endpoint: set as the error's ``endpoint``.
    """
    if not 300 <= status < 400:
        return
    location = headers.get("Location")
    if location is None:
        where = "no Location"
    else:
        shown = mask(location)
        if len(shown) > _LOCATION_SHOWN:
            shown = shown[: _LOCATION_SHOWN - 3] + "..."
        where = f"Location {shown!r}"
    raise TransportError(
        f"{what}: HTTP {status} redirect ({where}) not followed: a request that carries a "
        "credential goes to the configured address only (point base_url at the final address)",
        endpoint=endpoint,
        status=status,
    )


async def read_capped(
    resp: aiohttp.ClientResponse,
    *,
    limit: int,
    what: str,
    mask: Callable[[str], str],
    endpoint: str = "",
) -> bytes:
    """The whole body, or TransportError if Content-Length or the bytes read exceed `limit`.

    The bytes counted are those after content decoding (a small gzip body may inflate past the
    limit). On refusal the connection is closed, so the rest of the body is never read.

    Args:
        resp: an answer whose body was not read yet.
        limit: the largest body accepted, in bytes.
        what: the text the error message starts with, e.g. ``"GET extension/list"``.
        mask: masks secrets in the body excerpt the error keeps.
        endpoint: set as the error's ``endpoint``.
    """
    declared = resp.content_length
    if declared is not None and declared > limit:
        resp.close()
        raise _too_large(resp, f"declares {declared} bytes", limit, b"", what, endpoint, mask)
    if declared is not None and "Content-Encoding" not in resp.headers:
        # The usual answer: its length is known and within the limit, and aiohttp reads no more
        # than Content-Length bytes of an undecoded body.
        return await resp.read()
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_any():
        total += len(chunk)
        chunks.append(chunk)
        if total > limit:
            resp.close()
            raise _too_large(
                resp, f"sent more than {limit} bytes", limit, chunks[0], what, endpoint, mask
            )
    return b"".join(chunks)


def _too_large(
    resp: aiohttp.ClientResponse,
    how: str,
    limit: int,
    head: bytes,
    what: str,
    endpoint: str,
    mask: Callable[[str], str],
) -> TransportError:
    return TransportError(
        f"{what}: the answer {how}, over the limit of {limit} bytes "
        "(max_response_size); not read further",
        endpoint=endpoint,
        status=resp.status,
        body_excerpt=excerpt(head, mask),
    )


def transport_failure(
    exc: BaseException,
    *,
    what: str,
    endpoint: str,
    address: str,
    timeout: float,
    mask: Callable[[str], str],
    peer: str = "PBX",
) -> TransportError:
    """The :class:`TransportError` for an aiohttp failure (or a timeout) of ``what``.

    ``address`` is ``host:port`` as messages name it, ``timeout`` the limit that ran out, and
    ``peer`` names the server in a pin mismatch (``"PBX"``, ``"CEC"``). Any text from the
    exception passes through ``mask``.
    """
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Refused or unresolvable: nothing reached the server, so the request may be retried.
        # A TLS failure is a connector error too, but the request went out and retrying
        # cannot fix it.
        tls = isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError)
        return TransportError(
            f"{what}: cannot connect to {address} "
            f"({type(exc).__name__}: {mask(str(exc.os_error))})",
            endpoint=endpoint,
            sent=tls,
            delivered=False,
        )
    if isinstance(exc, TimeoutError):
        return TransportError(f"{what}: no answer within {timeout:g} s", endpoint=endpoint)
    if isinstance(exc, aiohttp.ServerFingerprintMismatch):
        # Both fingerprints: a renewed certificate shows at once.
        return TransportError(
            f"{what}: the {peer} certificate's SHA-256 fingerprint {exc.got.hex(':')} does not "
            f"match the pin {exc.expected.hex(':')}",
            endpoint=endpoint,
            delivered=False,  # checked before the request is written
        )
    return TransportError(f"{what}: {type(exc).__name__}: {mask(str(exc))}", endpoint=endpoint)
