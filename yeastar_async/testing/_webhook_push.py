"""The FakePBX's webhook event push: signed HTTP deliveries to the registered receivers.

Every event the fake emits is also delivered to each entry of its Webhook settings
(``webhook/update``, :class:`~._webhook_settings.WebhookSettings`) that wants the topic, the way
the vendor's page "Monitor Events via Webhook" describes the PBX doing it: the WebSocket's
frame as the body, sent with the entry's method (GET or POST), ``X-Signature`` =
Base64(HMAC-SHA256(secret, body)); the answer must be a 2xx within the settings' timeout, else
the delivery is tried again, ``retry_count`` more times. Deliveries leave one at a time, in
emit order, from one task: a receiver sees the events in the order they happened.

The signature is computed here on its own (not with :mod:`yeastar_async.webhooks`), so the
end-to-end tests check the receiver against an independent signer.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from ._webhook_settings import WebhookSettings

__all__ = ["Delivery", "WebhookPush"]


@dataclass
class Delivery:
    """One event delivered (or not) to one receiver.

    Attributes:
        url: the receiver.
        method: ``"GET"`` or ``"POST"``.
        topic: the event's topic.
        body: the request body (the event frame).
        statuses: the HTTP status of every attempt (``None``: no answer in time / no
            connection), oldest first.
    """

    url: str
    method: str
    topic: int
    body: str = field(repr=False)
    statuses: list[int | None] = field(default_factory=list)

    @property
    def delivered(self) -> bool:
        """Whether an attempt got a 2xx answer."""
        return any(s is not None and 200 <= s < 300 for s in self.statuses)


def signature(secret: str, body: bytes) -> str:
    """``X-Signature`` of ``body``, as the PBX computes it."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


class WebhookPush:
    """Delivers emitted events to the receivers of ``settings`` (the fake's ``webhooks``).

    Attributes:
        deliveries: every delivery, oldest first (with the status of each attempt).
    """

    def __init__(self, settings: WebhookSettings | None) -> None:
        self.settings = settings
        self.deliveries: list[Delivery] = []
        self._queue: asyncio.Queue[tuple[Delivery, str, float, int]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    def submit(self, topic: int, frame: str) -> int:
        """Queue ``frame`` for every enabled receiver that wants ``topic``; how many."""
        settings = self.settings
        if settings is None or not settings.enabled:
            return 0
        queued = 0
        for entry in settings.entries:
            if not entry.wants(topic):
                continue
            delivery = Delivery(entry.url, entry.request_method, topic, frame)
            self.deliveries.append(delivery)
            self._queue.put_nowait((delivery, entry.secret, settings.timeout, settings.retry_count))
            queued += 1
        if queued and (self._worker is None or self._worker.done()):
            self._worker = asyncio.create_task(self._run(), name="fake-pbx-webhook-push")
        return queued

    async def join(self) -> None:
        """Return once every queued delivery finished (delivered or out of retries)."""
        await self._queue.join()

    async def aclose(self) -> None:
        """Stop delivering (what is queued is dropped) and close the HTTP session."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            delivery, secret, timeout, retries = await self._queue.get()
            try:
                await self._deliver(delivery, secret, timeout, retries)
            finally:
                self._queue.task_done()

    async def _deliver(self, delivery: Delivery, secret: str, timeout: float, retries: int) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "Yeastar-PBX",
            "X-Signature": signature(secret, body),
        }
        for _ in range(1 + retries):
            status: int | None = None
            try:
                async with self._session.request(
                    delivery.method,
                    delivery.url,
                    data=body,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                ) as response:
                    status = response.status
            except (aiohttp.ClientError, TimeoutError):
                status = None
            delivery.statuses.append(status)
            if status is not None and 200 <= status < 300:
                return
