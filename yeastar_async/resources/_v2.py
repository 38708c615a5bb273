"""Rows of the ``openapi/v2.0`` CDR endpoints (their shape differs from v1.0's ``CDR_Details``).

Firmware 83/37/84.23.0.123 (Software / Appliance / Cloud) serves new CDRs at ``openapi/v2.0``
(``cdr/list``, ``cdr/search``, ``cdr/detail``); ``openapi/v1.0`` keeps the older ones until
the PBX's CDR clean-up removes them. The fields are those of ``catalog/p_series_current.json``
(typed from a peer project's fixtures: the vendor's v2 pages were out of reach, so every field
is optional and the list-or-object ones are typed ``Any``). Hand-written: the generated
``cdr`` module answers with these at v2.0; a test keeps them equal to the catalog.

Every answer here has ``api_version == "2.0"``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from yeastar_async._models import ApiResponse, Int64
from yeastar_async.resources import _base as api

__all__ = [
    "CdrDetailResponse",
    "CdrDetailV2",
    "CdrHistory",
    "CdrLegEventV2",
    "CdrLegV2",
    "CdrPageV2",
    "CdrV2",
]


class CdrV2(msgspec.Struct, kw_only=True):
    """One CDR at ``openapi/v2.0`` (``cdr/list``, ``cdr/search``, ``cdr/detail``'s ``basic``)."""

    id: str | Int64 | None = None
    """ID of the record (a string in the samples)."""
    uid: str | None = None
    """Unique ID of the CDR (the same as v1.0's ``uid`` for the same call)."""
    time: str | None = None
    """Time of the call, in the PBX's display format."""
    call_type: str | None = None
    """Inbound, Outbound or Internal."""
    call_from: str | None = None
    """Caller, ``Name<number>``."""
    call_from_name: str | None = None
    """Caller name."""
    call_from_number: str | None = None
    """Caller number."""
    call_to: str | None = None
    """Callee, ``Name<number>``."""
    call_to_name: str | None = None
    """Callee name."""
    call_to_number: str | None = None
    """Callee number."""
    last_status: str | None = None
    """Final status, e.g. ANSWERED, NO ANSWER, BUSY, ABANDONED."""
    call_duration: Int64 | None = None
    """Seconds from start to end."""
    routing_duration: Int64 | None = None
    """Seconds before the call was handled."""
    handling_duration: Int64 | None = None
    """Seconds the call was handled."""
    queues: Any = None
    """Queues passed (an object in one table, an array in the samples)."""
    ivrs: Any = None
    """IVRs passed."""
    ring_groups: Any = None
    """Ring groups passed."""
    call_flows: Any = None
    """Call flows passed."""
    dids: Any = None
    """DIDs."""
    outbound_caller_ids: Any = None
    """Outbound caller IDs."""
    second_participant: str | None = None
    """Second participant."""
    last_participant: str | None = None
    """Last participant."""
    segments: Any = None
    """Call segments."""
    disconnected_by: str | None = None
    """Party that ended the call."""


class CdrPageV2(api.PageResponse[CdrV2], kw_only=True):
    """A page of :class:`CdrV2` (``data``, ``total_number``): ``cdr/list`` / ``cdr/search``
    answered at ``openapi/v2.0``."""

    api_version: ClassVar[str] = "2.0"


class CdrLegEventV2(msgspec.Struct, kw_only=True):
    """One event of a leg in ``cdr/detail``'s timeline."""

    event_id: str | Int64 | None = None
    """Event ID."""
    event_name: str | None = None
    """Event name."""
    event_type: str | None = None
    """Event type."""
    event_time: str | None = None
    """Event time."""
    event_ts: Int64 | None = None
    """Event timestamp."""


class CdrLegV2(msgspec.Struct, kw_only=True):
    """One leg of ``cdr/detail``'s timeline."""

    leg: Int64 | str | None = None
    """Leg number."""
    time: str | None = None
    """Start of the leg."""
    status: str | None = None
    """Status of the leg."""
    call_from: str | None = None
    """Caller, ``Name<number>``."""
    call_to: str | None = None
    """Callee, ``Name<number>``."""
    call_duration: Int64 | None = None
    """Seconds of the leg."""
    ring_duration: Int64 | None = None
    """Seconds ringing."""
    talk_duration: Int64 | None = None
    """Seconds talking."""
    hold_duration: Int64 | None = None
    """Seconds on hold."""
    event_list: list[CdrLegEventV2] = msgspec.field(default_factory=list)
    """Events of the leg."""


class CdrDetailV2(msgspec.Struct, kw_only=True):
    """``data`` of ``cdr/detail``: the record, its call notes and its timeline."""

    basic: CdrV2 | None = None
    """The record."""
    call_notes: Any = None
    """Call notes."""
    timeline: list[CdrLegV2] = msgspec.field(default_factory=list)
    """The legs of the call."""


class CdrDetailResponse(ApiResponse, kw_only=True):
    """Answer of ``cdr/detail`` (``openapi/v2.0`` only)."""

    api_version: ClassVar[str] = "2.0"
    data: CdrDetailV2 | None = None
    """The record's details."""


class CdrHistory(ApiResponse, kw_only=True):
    """``cdr.search(..., merge_history=True)``: the records of both API versions.

    ``data`` holds the ``openapi/v1.0`` records (history from before the upgrade, as
    ``CDRDetails``) first, then the ``openapi/v2.0`` ones (:class:`CdrV2`); a v1.0 record whose
    ``uid`` is also among the v2.0 ones is left out. ``total_number`` counts ``data``.
    """

    api_version: ClassVar[str] = "1.0+2.0"
    total_number: Int64 = 0
    """Number of records in ``data``."""
    data: list[Any] = msgspec.field(default_factory=list)
    """``CDRDetails`` (v1.0) then :class:`CdrV2` (v2.0) records."""
