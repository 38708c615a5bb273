"""Stand-ins for ``yeastar_async._wire`` (branch ``transport``), with its interface.

Delete this module and import from ``.._wire`` once that branch is merged: the signatures match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import aiohttp

from ..errors import TransportError

__all__ = ["read_capped", "refuse_redirect"]


def refuse_redirect(
    status: int, headers: Mapping[str, str], *, what: str, mask: Callable[[str], str]
) -> None:
    """Raise :class:`TransportError` for a 3xx answer: a redirect is never followed (it would
    carry the request, token and all, wherever the peer says)."""
    if 300 <= status < 400:
        location = mask(headers.get("Location", ""))
        raise TransportError(
            f"{what}: HTTP {status} redirect to {location!r} refused (redirects are not followed)",
            endpoint=what,
            status=status,
        )


async def read_capped(
    resp: aiohttp.ClientResponse, *, limit: int, what: str, mask: Callable[[str], str]
) -> bytes:
    """The body of ``resp``, or :class:`TransportError` once it passes ``limit`` bytes."""
    declared = resp.content_length
    if declared is not None and declared > limit:
        raise TransportError(
            f"{what}: the answer declares {declared} bytes, more than the {limit}-byte cap",
            endpoint=what,
            status=resp.status,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise TransportError(
                f"{what}: the answer is longer than the {limit}-byte cap",
                endpoint=what,
                status=resp.status,
                body_excerpt=mask(b"".join(chunks)[:200].decode("utf-8", "replace")),
            )
        chunks.append(chunk)
    return b"".join(chunks)
