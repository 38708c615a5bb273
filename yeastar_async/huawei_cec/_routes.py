"""``cec.called_route``: create, query, modify and delete the bindings of access codes.

Each method checks its arguments before any I/O and raises :class:`ValueError` (a value out of
range) or :class:`TypeError` (a value of the wrong kind, such as a dnid where a route id
belongs) naming the offending value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar, get_args

from .._models import INT64_MAX
from ..resources._base import OFFSETS, Paginator
from ._errors import CecPartialDeleteError
from ._models import (
    CalledRoute,
    CalledRouteId,
    CalledRoutePage,
    CecResult,
    DeleteResult,
    DeviceType,
    Dnid,
    MediaTypeId,
)

__all__ = ["MAX_DNIDS", "MAX_LIMIT", "CalledRouteResource"]

T = TypeVar("T", bound=CecResult)

#: The largest ``limit`` of ``queryCalledRoute``, and its default.
MAX_LIMIT = 100
#: The most dnids one ``deleteCalledRoute`` takes.
MAX_DNIDS = 1000
_MEDIA_TYPES = frozenset(get_args(MediaTypeId))
_OPERATION = "calledRoute/{}CalledRoute"


class _Caller(Protocol):
    """What the resource needs from the client: one authorised call, and its secret mask."""

    def secrets(self, text: str) -> str:
        """``text`` with the client's app secret and tokens masked."""
        ...

    async def call(
        self,
        operation: str,
        body: Mapping[str, Any],
        response_type: type[T],
        *,
        timeout: float | None = None,
    ) -> T: ...


def _text(name: str, value: object, longest: int, *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if len(value) > longest:
        raise ValueError(f"{name} must be at most {longest} characters, got {value!r}")
    return value


def _whole(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < low or (high is not None and value > high):
        span = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {span}, got {value!r}")
    return value


def _device_type(value: object) -> DeviceType:
    try:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError
        return DeviceType(value)
    except ValueError:
        raise ValueError(
            f"device_type must be DeviceType.SKILL_QUEUE (1) or DeviceType.IVR (3), got {value!r}"
        ) from None


def _media_type(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in _MEDIA_TYPES:
        raise ValueError(f"media_type_id must be one of {sorted(_MEDIA_TYPES)}, got {value!r}")
    return value


def _route_id(value: object) -> CalledRouteId:
    if isinstance(value, CalledRoute):
        raise TypeError(
            "route_id takes the route's id, not the route: pass route.id (a string); "
            "route.dnid is what delete(dnids=...) takes"
        )
    if not isinstance(value, str):
        raise TypeError(
            f"route_id must be the route's id, a string such as '1125397061153369092' from "
            f"query(), got {type(value).__name__} {value!r}; a number is a dnid, which only "
            "delete(dnids=...) takes"
        )
    if not value.strip() or value != value.strip():
        raise ValueError(f"route_id must be a non-empty id without spaces, got {value!r}")
    return CalledRouteId(value)


def _dnids(value: object) -> list[Dnid]:
    items = [value] if isinstance(value, int | str | CalledRoute) else value
    if not isinstance(items, Iterable):
        raise TypeError(f"dnids must be a dnid or an iterable of dnids, got {value!r}")
    found: list[Dnid] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            hint = (
                "pass route.dnid"
                if isinstance(item, CalledRoute)
                else "a string is a route id, which only modify(route_id=...) takes"
            )
            raise TypeError(
                f"dnids must hold the routes' dnids (ints from query()), got "
                f"{type(item).__name__} {item!r}: {hint}"
            )
        if not 0 <= item <= INT64_MAX:
            # The CEC's dnids are int64 (the models refuse any other); a huge int's repr is
            # slow, or refused past 4,300 digits: say how long it is instead.
            bits = item.bit_length()
            shown = repr(item) if bits <= 128 else f"an int of {bits} bits"
            raise ValueError(f"a dnid must be between 0 and {INT64_MAX}, got {shown}")
        found.append(Dnid(item))
    if not found:
        raise ValueError("dnids must name at least one route")
    if len(found) > MAX_DNIDS:
        raise ValueError(f"at most {MAX_DNIDS} dnids per delete, got {len(found)}")
    return found


def _body(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


class CalledRouteResource:
    """The called-route operations of ``POST /apiaccess/rest/cc-management/v1/calledRoute/``.

    A route binds an access code (the number called, with an optional extension code) to a
    skill queue or an IVR. Routes have two identifiers: :meth:`modify` takes the route's
    ``id`` (:data:`CalledRouteId`, a string), :meth:`delete` its ``dnid`` (:data:`Dnid`, an
    int); both come from :meth:`query`.
    """

    def __init__(self, client: _Caller) -> None:
        self._client = client

    def __repr__(self) -> str:
        return "<CalledRouteResource>"

    async def create(
        self,
        *,
        access_code: str,
        device_type: DeviceType,
        device_id: int,
        ext_code: str | None = None,
        media_type_id: MediaTypeId | None = None,
        timeout: float | None = None,
    ) -> CecResult:
        """Bind ``access_code`` (plus ``ext_code``) to a skill queue or IVR
        (``createCalledRoute``).

        Args:
            access_code: the access code, at most 32 characters.
            device_type: :attr:`DeviceType.SKILL_QUEUE` or :attr:`DeviceType.IVR`.
            device_id: the skill queue's or IVR's id.
            ext_code: the extension code, at most 12 characters.
            media_type_id: the media type (the CEC's default is 5).
            timeout: seconds for this call (default: the client's).
        """
        body = _body(
            accessCode=_text("access_code", access_code, 32, required=True),
            extCode=_text("ext_code", ext_code, 12, required=False),
            mediaTypeId=None if media_type_id is None else _media_type(media_type_id),
            devicetype=int(_device_type(device_type)),
            deviceId=_whole("device_id", device_id, 0),
        )
        return await self._client.call(
            _OPERATION.format("create"), body, CecResult, timeout=timeout
        )

    def query(
        self,
        *,
        access_code: str | None = None,
        ext_code: str | None = None,
        device_type: DeviceType | None = None,
        device_desc: str | None = None,
        media_type_id: MediaTypeId | None = None,
        limit: int | None = None,
        offset: int | None = None,
        timeout: float | None = None,
    ) -> Paginator[CalledRoutePage, CalledRoute]:
        """Find routes (``queryCalledRoute``); every filter is optional.

        ``await`` it for one page (:class:`CalledRoutePage`: ``.routes``, ``.total``), or
        ``async for route in ...`` to walk every match, ``limit`` (default 100, the most the
        CEC allows) routes per request from ``offset`` (default 0) on.

        Args:
            access_code: routes of this access code.
            ext_code: routes of this extension code.
            device_type: routes to skill queues or to IVRs.
            device_desc: the device description contains this text.
            media_type_id: routes of this media type.
            limit: routes per page, 0..100.
            offset: routes to skip.
            timeout: seconds for each request (default: the client's).
        """
        arguments = _body(
            access_code=_text("access_code", access_code, 32, required=False),
            ext_code=_text("ext_code", ext_code, 12, required=False),
            device_type=None if device_type is None else int(_device_type(device_type)),
            device_desc=_text("device_desc", device_desc, 256, required=False),
            media_type_id=None if media_type_id is None else _media_type(media_type_id),
            limit=None if limit is None else _whole("limit", limit, 0, MAX_LIMIT),
            offset=None if offset is None else _whole("offset", offset, 0),
        )

        async def fetch(page: dict[str, Any]) -> CalledRoutePage:
            body = _body(
                accessCode=page.get("access_code"),
                extCode=page.get("ext_code"),
                devicetype=page.get("device_type"),
                deviceDesc=page.get("device_desc"),
                mediaTypeId=page.get("media_type_id"),
                limit=page.get("limit"),
                offset=page.get("offset"),
            )
            return await self._client.call(
                _OPERATION.format("query"), body, CalledRoutePage, timeout=timeout
            )

        return Paginator(fetch, arguments, items="routes", style=OFFSETS)

    async def modify(
        self,
        *,
        route_id: CalledRouteId,
        device_type: DeviceType,
        device_id: int,
        timeout: float | None = None,
    ) -> CecResult:
        """Point the route ``route_id`` at another skill queue or IVR (``modifyCalledRoute``).

        Args:
            route_id: the route's ``id`` (:attr:`CalledRoute.id`, a string), not its dnid.
            device_type: :attr:`DeviceType.SKILL_QUEUE` or :attr:`DeviceType.IVR`.
            device_id: the skill queue's or IVR's id.
            timeout: seconds for this call (default: the client's).
        """
        body = {
            "id": _route_id(route_id),
            "devicetype": int(_device_type(device_type)),
            "deviceId": _whole("device_id", device_id, 0),
        }
        return await self._client.call(
            _OPERATION.format("modify"), body, CecResult, timeout=timeout
        )

    async def delete(
        self, *, dnids: Dnid | Iterable[Dnid], timeout: float | None = None
    ) -> DeleteResult:
        """Delete routes by their dnids (``deleteCalledRoute``), at most 1000 at once.

        Args:
            dnids: one dnid or several (:attr:`CalledRoute.dnid`, ints), not route ids.
            timeout: seconds for this call (default: the client's).

        Raises:
            CecPartialDeleteError: the CEC deleted only some (its ``deleted`` and ``failed``
                name which).
        """
        numbers = _dnids(dnids)
        operation = _OPERATION.format("delete")
        body = {"dnids": ",".join(map(str, numbers))}
        result = await self._client.call(operation, body, DeleteResult, timeout=timeout)
        failed = result.failed
        if failed:
            raise CecPartialDeleteError(
                f"{operation}: {len(failed)} of {len(numbers)} route(s) not deleted: dnids "
                f"{', '.join(map(str, failed[:20]))}{' ...' if len(failed) > 20 else ''}",
                endpoint=operation,
                deleted=list(result.deleted),
                failed=list(failed),
                description=self._client.secrets(result.description or ""),
            )
        return result
