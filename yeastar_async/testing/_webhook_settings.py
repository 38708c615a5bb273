"""The FakePBX's Webhook event push settings, behind ``webhook/query`` and ``webhook/update``.

Shaped as the vendor's pages describe them (Query / Update Webhook Event Push Settings, firmware
83/37/84.20.0.21 on): up to 5 entries, each a URL, a 32-character secret, ``GET`` or ``POST`` and
a list of event IDs (``[0]`` = every supported event); a timeout of 3-10 s and a retry count of
1-5 for every delivery. An update replaces what it names and keeps the rest. The push itself
(signing and delivering events to the entries) reads :attr:`WebhookSettings.entries`,
:attr:`~WebhookSettings.timeout` and :attr:`~WebhookSettings.retry_count`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._log import RequestRecord

__all__ = ["MAX_WEBHOOKS", "WebhookEntry", "WebhookSettings"]

Body = dict[str, Any]

#: Webhook entries a PBX keeps at most.
MAX_WEBHOOKS = 5
_TIMEOUTS = range(3, 11)
_RETRIES = range(1, 6)
_METHODS = ("GET", "POST")


@dataclass
class WebhookEntry:
    """One registered receiver.

    Attributes:
        url: where events are delivered.
        secret: the HMAC-SHA256 key of the ``X-Signature`` header (never in the repr).
        request_method: ``"GET"`` or ``"POST"``.
        event_ids: the topics pushed; ``[0]`` pushes every supported one.
    """

    url: str
    secret: str = field(repr=False)
    request_method: str
    event_ids: list[int]

    def wants(self, topic: int) -> bool:
        """Whether events of ``topic`` are pushed to this entry."""
        return 0 in self.event_ids or topic in self.event_ids

    def as_wire(self) -> Body:
        """The entry as ``webhook/query`` answers it."""
        return {
            "url": self.url,
            "secret": self.secret,
            "request_method": self.request_method,
            "event_ids": list(self.event_ids),
        }


@dataclass
class WebhookSettings:
    """What ``webhook/update`` stored; ``webhook/query`` answers it.

    Attributes:
        enabled: ``enb_webhook_event_push`` (set when an update leaves at least one entry).
        entries: the receivers, at most :data:`MAX_WEBHOOKS`.
        timeout: seconds the PBX waits for a receiver's answer (3-10, default 5).
        retry_count: retries of a failed delivery (1-5, default 3).
        supported: the event IDs the fake can push (``webhook_event_ids``).
    """

    supported: list[int]
    enabled: bool = False
    entries: list[WebhookEntry] = field(default_factory=list)
    timeout: int = 5
    retry_count: int = 3

    def handle_query(self, record: RequestRecord) -> Body:
        """``webhook/query``."""
        return {
            "errcode": 0,
            "errmsg": "SUCCESS",
            "data": {
                "enb_webhook_event_push": 1 if self.enabled else 0,
                "webhook_event_push_list": [e.as_wire() for e in self.entries],
                "webhook_event_push_timeout": self.timeout,
                "webhook_event_push_retry_count": self.retry_count,
                "webhook_event_ids": list(self.supported),
            },
        }

    def handle_update(self, record: RequestRecord) -> Body:
        """``webhook/update``: checks every value first, then applies them all (or none)."""
        params = record.params
        invalid: list[Body] = []
        timeout = _bounded(params, "webhook_event_push_timeout", _TIMEOUTS, invalid)
        retries = _bounded(params, "webhook_event_push_retry_count", _RETRIES, invalid)
        entries = None
        if "webhook_event_push_list" in params:
            entries = self._entries(params["webhook_event_push_list"], invalid)
        if invalid:
            return {"errcode": 40002, "errmsg": "PARAMETER ERROR", "invalid_param_list": invalid}
        if timeout is not None:
            self.timeout = timeout
        if retries is not None:
            self.retry_count = retries
        if entries is not None:
            self.entries = entries
            self.enabled = bool(entries)
        return {"errcode": 0, "errmsg": "SUCCESS"}

    def _entries(self, value: Any, invalid: list[Body]) -> list[WebhookEntry] | None:
        field_name = "webhook_event_push_list"
        if not isinstance(value, list) or len(value) > MAX_WEBHOOKS:
            invalid.append({"field": field_name, "validation_type": "max_length"})
            return None
        entries: list[WebhookEntry] = []
        for item in value:
            entry = _entry(item, self.supported)
            if entry is None:
                invalid.append({"field": field_name, "validation_type": "invalid"})
                return None
            entries.append(entry)
        return entries

    def handlers(self) -> dict[str, Callable[[RequestRecord], Body]]:
        """Endpoint -> handler, for ``FakePBX.add_handler``."""
        return {"webhook/query": self.handle_query, "webhook/update": self.handle_update}


def _bounded(
    params: Mapping[str, Any], name: str, allowed: range, invalid: list[Body]
) -> int | None:
    if name not in params:
        return None
    value = params[name]
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        invalid.append({"field": name, "value": copy.deepcopy(value)})
        return None
    return value


def _entry(item: Any, supported: list[int]) -> WebhookEntry | None:
    if not isinstance(item, dict):
        return None
    url, secret = item.get("url"), item.get("secret")
    method = str(item.get("request_method") or "").upper()
    ids = item.get("event_ids")
    if not (isinstance(url, str) and url.strip() and isinstance(secret, str) and secret):
        return None
    if method not in _METHODS or not isinstance(ids, list) or not ids:
        return None
    if not all(isinstance(i, int) and (i == 0 or i in supported) for i in ids):
        return None
    return WebhookEntry(url=url.strip(), secret=secret, request_method=method, event_ids=ids)
