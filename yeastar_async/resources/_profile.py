"""What a client learns from ``system/information``: API versions, date format, time zone.

Read once per client, on the first request that needs it, then cached (concurrent callers wait
for the one read). It decides:

* which API version answers each versioned endpoint (:data:`VERSIONED`): ``openapi/v2.0`` on
  a firmware that serves the new CDR data there (see :mod:`yeastar_async._firmware`), else
  ``openapi/v1.0``; ``cdr_api_version="1.0"`` / ``"2.0"`` forces one and skips the read;
* the ``strftime`` format of datetime parameters, from ``system_date_format`` /
  ``system_time_format`` (current firmware; the April 2024 manual does not list them), unless
  the client was given ``datetime_format=``;
* the PBX's UTC offset, from ``system_time`` (its wall clock) and ``timestamp`` (UTC seconds),
  both reported with the date formats, unless the client was given ``timezone=``. It is the
  offset at the time of the read: a daylight-saving change later in the client's life is not
  followed (give ``timezone=ZoneInfo(...)`` for that).

A PBX that reports none of them (older firmware) keeps the defaults: ``openapi/v1.0``,
:data:`~yeastar_async.resources._base.DEFAULT_DATETIME_FORMAT`, datetimes sent as their own
wall-clock time. An unknown firmware format is logged at DEBUG and read as the old firmware.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any, Literal, get_args

import msgspec

from yeastar_async._firmware import Feature, Firmware, parse_firmware
from yeastar_async._models import ApiResponse, Int64
from yeastar_async.errors import YeastarError

__all__ = [
    "V2_NAMES",
    "V2_ONLY_ENDPOINTS",
    "VERSIONED",
    "VERSION_ONLY",
    "ApiVersion",
    "CdrApiVersion",
    "PbxFacts",
    "PbxProfile",
    "check_cdr_api_version",
    "strftime_of",
]

logger = logging.getLogger("yeastar_async")

#: What ``cdr_api_version=`` accepts.
CdrApiVersion = Literal["auto", "1.0", "2.0"]
#: An API version an endpoint is sent to.
ApiVersion = Literal["1.0", "2.0"]

#: Endpoints served at ``openapi/v2.0`` by current firmware -> the feature that moves them.
VERSIONED: dict[str, Feature] = {
    "cdr/list": "v2_cdr",
    "cdr/search": "v2_cdr",
    "cdr/detail": "v2_cdr",
    "call_report/list": "v2_reports",
    "call_report/detail": "v2_reports",
}

#: Endpoints that exist only at openapi/v2.0.
V2_ONLY_ENDPOINTS = frozenset({"cdr/detail"})

#: openapi/v2.0 names of v1.0 parameters, so one call fits both: endpoint -> {v1.0: v2.0}.
V2_NAMES: dict[str, dict[str, str]] = {
    "cdr/search": {"start_time": "time_begin", "end_time": "time_end"},
}

#: Parameters only one version takes: endpoint -> (v1.0 only, v2.0 only). Sending one to the
#: other version is refused before any I/O (a filter silently dropped returns wrong records).
#: From catalog/p_series_current.json (a test keeps them equal).
VERSION_ONLY: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "cdr/search": (
        frozenset(
            {
                "enable_fuzzy_search",
                "extension_group",
                "status",
                "pin_code",
                "disposition_code_list",
                "call_note_remark",
                "did",
            }
        ),
        frozenset(
            {
                "sort_by",
                "order_by",
                "queue_list",
                "last_status",
                "routing_duration",
                "segments",
                "disconnected_by",
            }
        ),
    ),
    "cdr/list": (frozenset({"disposition_code_list", "call_note_remark"}), frozenset()),
}

# The PBX's date/time display tokens -> strftime (system_date_format "YYYY/MM/DD",
# system_time_format "hh:mm:ss"; the vendor's example reports "hh:mm:ss" with a 24-hour
# system_time, so only an AM/PM marker means a 12-hour clock).
_DATE_TOKENS = {"YYYY": "%Y", "MM": "%m", "DD": "%d"}
_DATE_FORMAT = re.compile(r"(YYYY|MM|DD)([/\-.])(YYYY|MM|DD)\2(YYYY|MM|DD)")
_TWELVE_HOUR = re.compile(r"\b(?:A|a|AM|PM|am|pm)\s*$")


def check_cdr_api_version(value: object) -> CdrApiVersion:
    """``value`` if it is a valid ``cdr_api_version``, else a ValueError naming it."""
    if value not in get_args(CdrApiVersion):
        raise ValueError(f"cdr_api_version must be 'auto', '1.0' or '2.0', got {value!r}")
    return value  # type: ignore[return-value]


def strftime_of(date_format: str | None, time_format: str | None, sample: str = "") -> str | None:
    """The ``strftime`` format of the PBX's display format, or None when it is not readable.

    ``("YYYY/MM/DD", "hh:mm:ss")`` -> ``"%Y/%m/%d %H:%M:%S"``; a time format with an AM/PM
    marker (or a ``sample`` system time ending in AM/PM) -> ``"... %I:%M:%S %p"``.
    """
    found = _DATE_FORMAT.fullmatch((date_format or "").strip().upper())
    if found is None:
        return None
    first, sep, second, third = found.groups()
    if len({first, second, third}) != 3:
        return None
    day = sep.join(_DATE_TOKENS[t] for t in (first, second, third))
    clock = (time_format or "").strip()
    twelve = bool(_TWELVE_HOUR.search(clock)) or bool(_TWELVE_HOUR.search(sample.strip()))
    return f"{day} {'%I:%M:%S %p' if twelve else '%H:%M:%S'}"


class _DeviceFacts(msgspec.Struct, kw_only=True):
    firmware_version: str | None = None
    system_time: str | None = None
    system_date_format: str | None = None
    system_time_format: str | None = None
    timestamp: Int64 | None = None


class _Information(ApiResponse, kw_only=True):
    data: _DeviceFacts | None = None


@dataclass(frozen=True)
class PbxFacts:
    """What ``system/information`` told the client.

    Attributes:
        firmware: the parsed firmware (None when absent or in an unknown format).
        firmware_text: the firmware version as reported.
        datetime_format: the display format as a ``strftime`` format, when reported.
        utc_offset: the PBX's UTC offset, when ``system_time`` and ``timestamp`` were reported.
    """

    firmware: Firmware | None = None
    firmware_text: str | None = None
    datetime_format: str | None = None
    utc_offset: tzinfo | None = None


def _offset(system_time: str | None, fmt: str | None, timestamp: int | None) -> tzinfo | None:
    if not system_time or fmt is None or timestamp is None:
        return None
    try:
        wall = datetime.strptime(system_time.strip(), fmt)
    except ValueError:
        return None
    utc = datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)
    # Whole quarter hours: the two values are read a moment apart.
    minutes = round((wall - utc).total_seconds() / 900) * 15
    if abs(minutes) > 14 * 60:
        return None
    return timezone(timedelta(minutes=minutes))


def facts_of(answer: _Information) -> PbxFacts:
    """Read the facts out of a ``system/information`` answer."""
    data = answer.data or _DeviceFacts()
    firmware = parse_firmware(data.firmware_version)
    if firmware is None or firmware.edition is None:
        logger.debug(
            "firmware %r is not a known P-Series version: using the API of April 2024 "
            "(openapi/v1.0)",
            data.firmware_version,
        )
    fmt = strftime_of(data.system_date_format, data.system_time_format, data.system_time or "")
    return PbxFacts(
        firmware=firmware,
        firmware_text=data.firmware_version,
        datetime_format=fmt,
        utc_offset=_offset(data.system_time, fmt, data.timestamp),
    )


class PbxProfile:
    """Per client: the facts of ``system/information`` and the choices made from them.

    Args:
        transport: the client's transport.
        cdr_api_version: ``"auto"`` (from the firmware), ``"1.0"`` or ``"2.0"``.
        datetime_format: the format the user set, or None to follow the PBX.
        timezone: the time zone the user set, or None to follow the PBX.
    """

    def __init__(
        self,
        transport: Any,
        *,
        cdr_api_version: CdrApiVersion = "auto",
        datetime_format: str | None = None,
        timezone: tzinfo | None = None,
    ) -> None:
        self._transport = transport
        self.cdr_api_version = check_cdr_api_version(cdr_api_version)
        self.user_datetime_format = datetime_format
        self.user_timezone = timezone
        self._facts: PbxFacts | None = None
        self._reading: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"<PbxProfile cdr_api_version={self.cdr_api_version!r} facts={self._facts!r}>"

    @property
    def facts(self) -> PbxFacts | None:
        """What was read, or None before the first read."""
        return self._facts

    def needs_facts(self, path: str | None, arguments: Mapping[str, Any]) -> bool:
        """Whether sending ``arguments`` to ``path`` depends on ``system/information``."""
        if self._facts is not None:
            return False
        if path in VERSIONED and self.cdr_api_version == "auto":
            return True
        if self.user_datetime_format is not None and self.user_timezone is not None:
            return False
        return any(isinstance(v, date) for v in arguments.values())

    async def read(self) -> PbxFacts:
        """The facts, read on the first call (one request however many callers wait)."""
        if self._facts is not None:
            return self._facts
        if self._reading is None:
            self._reading = asyncio.Lock()
        async with self._reading:
            if self._facts is None:
                try:
                    answer = await self._transport.request(
                        "GET", "system/information", response_type=_Information
                    )
                except YeastarError as exc:
                    if exc.errcode is None:
                        raise  # the PBX did not answer: try again on the next request
                    # The PBX answered but will not say (e.g. no permission): old defaults.
                    logger.debug("system/information refused (%s): using the defaults", exc)
                    answer = _Information()
                self._facts = facts_of(answer)
        return self._facts

    def version_for(self, path: str) -> ApiVersion:
        """The API version of ``path`` (after :meth:`read` in auto mode)."""
        feature = VERSIONED.get(path)
        if feature is None:
            return "1.0"
        if self.cdr_api_version != "auto":
            return self.cdr_api_version
        firmware = self._facts.firmware if self._facts else None
        return "2.0" if firmware is not None and firmware.has(feature) else "1.0"

    def datetime_format(self, default: str) -> str:
        """The user's format, else the PBX's (once read), else ``default``."""
        if self.user_datetime_format is not None:
            return self.user_datetime_format
        found = self._facts.datetime_format if self._facts else None
        return found or default

    def timezone(self) -> tzinfo | None:
        """The user's time zone, else the PBX's UTC offset (once read), else None."""
        if self.user_timezone is not None:
            return self.user_timezone
        return self._facts.utc_offset if self._facts else None
