"""The FakePBX's ``openapi/v2.0`` CDR endpoints, over the same records as v1.0.

A fake at firmware 83/37/84.23.0.123 or later has an upgrade moment
(:attr:`~yeastar_async.testing._stores.CdrLog.upgrade`): records from then on are served here,
in the v2.0 row shape, and ``openapi/v1.0`` keeps only the older ones, as the vendor describes
it (new data at v2.0, history at v1.0 until clean-up). The v2.0 shape is the one of
``catalog/p_series_current.json``: ``call_from`` / ``call_to`` as ``Name<number>`` plus their
parts, ``last_status`` (the v1.0 disposition), ``call_duration`` / ``routing_duration`` /
``handling_duration`` (v1.0 duration / ring / talk), ``queues`` a list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ._log import RequestRecord
from ._stores import CdrLog, _int

__all__ = ["CdrV2Endpoints", "v2_row"]

Body = dict[str, Any]

_NAMED = re.compile(r"^(.*?)<([^<>]*)>\s*$")


def _parts(party: Any) -> tuple[str, str]:
    text = str(party or "").strip()
    found = _NAMED.match(text)
    return (found.group(1).strip(), found.group(2).strip()) if found else ("", text)


def v2_row(row: Body) -> Body:
    """A v1.0 ``CDR_Details`` record in the v2.0 shape."""
    from_name, from_number = _parts(row.get("call_from"))
    to_name, to_number = _parts(row.get("call_to"))
    return {
        "id": f"{int(row['id']):016X}",  # the samples show hexadecimal string ids
        "uid": row.get("uid"),
        "time": row.get("time"),
        "call_type": row.get("call_type"),
        "call_from": row.get("call_from"),
        "call_from_name": from_name,
        "call_from_number": from_number,
        "call_to": row.get("call_to"),
        "call_to_name": to_name,
        "call_to_number": to_number,
        "last_status": row.get("disposition"),
        "call_duration": row.get("duration", 0),
        "routing_duration": row.get("ring_duration", 0),
        "handling_duration": row.get("talk_duration", 0),
        "queues": [],
    }


class CdrV2Endpoints:
    """``cdr/list``, ``cdr/search`` and ``cdr/detail`` at ``openapi/v2.0``."""

    def __init__(self, log: CdrLog) -> None:
        self.log = log

    def _page(self, record: RequestRecord, rows: list[Body]) -> Body:
        params = record.params
        ordered = sorted(rows, key=lambda r: int(r.get("timestamp") or 0))
        if params.get("order_by") == "desc":
            ordered.reverse()
        page = max(_int(params.get("page")) or 1, 1)
        size = max(_int(params.get("page_size")) or 10000, 1)
        chosen = ordered[(page - 1) * size : page * size]
        return {
            "errcode": 0,
            "errmsg": "SUCCESS",
            "total_number": len(rows),
            "data": [v2_row(self.log.shown(r)) for r in chosen],
        }

    def handle_list(self, record: RequestRecord) -> Body:
        """``cdr/list`` v2.0: the records since the upgrade, oldest first, paged."""
        return self._page(record, self.log.current())

    def handle_search(self, record: RequestRecord) -> Body:
        """``cdr/search`` v2.0: ``time_begin`` / ``time_end`` (display format, inclusive),
        ``call_from`` / ``call_to`` (the party's number), ``last_status``."""
        params = record.params
        checks: list[Callable[[Body], bool]] = [self.log.bounds(params, "time_begin", "time_end")]
        for name in ("call_from", "call_to"):
            wanted = str(params.get(name) or "").strip()
            if wanted:
                checks.append(_party_is(name, wanted))
        status = str(params.get("last_status") or "").strip().upper()
        if status:
            checks.append(lambda r: str(r.get("disposition", "")).strip().upper() == status)
        rows = [r for r in self.log.current() if all(check(r) for check in checks)]
        return self._page(record, rows)

    def handle_detail(self, record: RequestRecord) -> Body:
        """``cdr/detail`` v2.0 (``uid``): the record and a one-leg timeline; 60001 if unknown."""
        uid = str(record.params.get("uid") or "")
        for row in self.log.current():
            if str(row.get("uid")) == uid:
                shown = v2_row(self.log.shown(row))
                leg = {
                    "leg": 1,
                    "time": shown["time"],
                    "status": shown["last_status"],
                    "call_from": shown["call_from"],
                    "call_to": shown["call_to"],
                    "call_duration": shown["call_duration"],
                    "ring_duration": row.get("ring_duration", 0),
                    "talk_duration": row.get("talk_duration", 0),
                    "hold_duration": 0,
                    "event_list": [],
                }
                data = {"basic": shown, "call_notes": {}, "timeline": [leg]}
                return {"errcode": 0, "errmsg": "SUCCESS", "data": data}
        return {"errcode": 60001, "errmsg": "DATA NOT FOUND"}

    def handlers(self) -> dict[str, Callable[[RequestRecord], Body]]:
        """Endpoint -> handler of the v2.0 CDR endpoints."""
        return {
            "cdr/list": self.handle_list,
            "cdr/search": self.handle_search,
            "cdr/detail": self.handle_detail,
        }


def _party_is(field: str, wanted: str) -> Callable[[Body], bool]:
    return lambda row: wanted in (_parts(row.get(field))[1], str(row.get(field) or "").strip())
