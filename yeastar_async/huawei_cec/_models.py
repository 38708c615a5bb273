"""Typed shapes of the CEC's called-route API (msgspec), and the two identifiers it mixes up.

A called route has two identifiers, and the API wants each in one place only:
``modifyCalledRoute`` finds the route by its ``id`` (a string of digits such as
``"1125397061153369092"``), ``deleteCalledRoute`` by its ``dnid`` (a number). They are two
distinct types here, :data:`CalledRouteId` (a ``str``) and :data:`Dnid` (an ``int``), and each
method's keyword says which one it takes, so mypy rejects the wrong one and so does the method
at run time.
"""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Annotated, Literal, NewType

import msgspec

from .._models import INT64_MAX, INT64_RANGE, Int64

__all__ = [
    "CalledRoute",
    "CalledRouteId",
    "CalledRouteList",
    "CalledRoutePage",
    "CecResult",
    "DeleteOutcome",
    "DeleteResult",
    "DeviceType",
    "Dnid",
    "MediaTypeId",
]

#: The ``id`` of a called route: a string (of digits) from ``query``; what ``modify`` takes.
CalledRouteId = NewType("CalledRouteId", str)
#: The ``dnid`` of a called route: a number from ``query``; what ``delete`` takes.
Dnid = NewType("Dnid", int)
#: ``mediaTypeId`` values the vendor documents (5, the default, is voice; the vendor does not
#: spell out the others).
MediaTypeId = Literal[2, 5, 18, 19, 53]


class DeviceType(IntEnum):
    """What a called route leads to (``devicetype``)."""

    SKILL_QUEUE = 1
    IVR = 3


class CecResult(msgspec.Struct, kw_only=True):
    """The part every answer has: ``returnCode`` (``"0"`` is success) and ``description``."""

    return_code: str | None = msgspec.field(name="returnCode", default=None)
    description: str | None = None


class CalledRoute(msgspec.Struct, kw_only=True):
    """One called route (an access code bound to a skill queue or an IVR), as ``query`` gives it.

    Attributes:
        id: the route's id, for :meth:`CalledRouteResource.modify`.
        dnid: the route's dnid, for :meth:`CalledRouteResource.delete`.
        access_code: the access code (the called number).
        ext_code: the extension code after the access code, if any.
        device_type: ``1`` skill queue, ``3`` IVR (kept as an int, not the enum: an undocumented
            value still decodes; compare with :class:`DeviceType`).
        device_id: the skill queue's or IVR's id.
        device_desc: the device's description.
        media_type_id: the media type (``mediatypeId`` on the wire).
        editable: ``0`` or ``None`` editable and deletable, ``1`` not editable, ``2`` not
            deletable, ``3`` neither.
    """

    id: CalledRouteId
    dnid: Annotated[Dnid, INT64_RANGE]
    access_code: str = msgspec.field(name="accessCode", default="")
    ext_code: str | None = msgspec.field(name="extCode", default=None)
    device_type: Int64 | None = msgspec.field(name="devicetype", default=None)
    device_id: Int64 | None = msgspec.field(name="deviceId", default=None)
    device_desc: str | None = msgspec.field(name="deviceDesc", default=None)
    media_type_id: Int64 | None = msgspec.field(name="mediatypeId", default=None)
    editable: Int64 | None = None

    @property
    def can_modify(self) -> bool:
        """Whether the CEC lets ``modify`` change this route (``editable`` not 1 or 3)."""
        return self.editable not in (1, 3)

    @property
    def can_delete(self) -> bool:
        """Whether the CEC lets ``delete`` remove this route (``editable`` not 2 or 3)."""
        return self.editable not in (2, 3)


class CalledRouteList(msgspec.Struct, kw_only=True):
    """``data`` of a ``queryCalledRoute`` answer."""

    total: Int64 | None = None
    called_route_list: list[CalledRoute] = msgspec.field(
        name="calledRouteList", default_factory=list
    )


class CalledRoutePage(CecResult, kw_only=True):
    """One page of ``queryCalledRoute``: :attr:`routes` and the :attr:`total` matching."""

    data: CalledRouteList | None = None

    @property
    def routes(self) -> list[CalledRoute]:
        """The routes of this page (empty when the CEC sent none)."""
        return self.data.called_route_list if self.data is not None else []

    @property
    def total(self) -> int | None:
        """How many routes match the query in all, when the CEC says."""
        return self.data.total if self.data is not None else None


class DeleteOutcome(msgspec.Struct, kw_only=True):
    """``data`` of a ``deleteCalledRoute`` answer; ``content`` reads
    ``"Success:<dnids>,Failed:<dnids>"`` when only some were deleted."""

    id: str | None = None
    name: str | None = None
    content: str | None = None

    def __post_init__(self) -> None:
        # The dnids listed here become ints (DeleteResult.deleted / failed): one beyond int64
        # is refused while decoding, as an out-of-range int field is (msgspec turns the
        # ValueError into a ValidationError, and the client into a TransportError).
        for digits in _listed_dnids(self.content):
            if len(digits) > _INT64_DIGITS or int(digits) > INT64_MAX:
                shown = digits if len(digits) <= 40 else f"{digits[:40]}... ({len(digits)} digits)"
                raise ValueError(f"a dnid out of the int64 range in `content`: {shown}")


_OUTCOME = re.compile(r"(Success|Failed)\s*:\s*([\d,\s]*)", re.IGNORECASE)
_INT64_DIGITS = 19


def _listed_dnids(content: str | None, word: str | None = None) -> list[str]:
    """The dnids ``content`` lists (after ``word``, ``"success"`` or ``"failed"``, or after
    either), as digits without leading zeros (``"0"`` for zero)."""
    found: list[str] = []
    for label, numbers in _OUTCOME.findall(content or ""):
        if word is None or label.lower() == word:
            found.extend(n.lstrip("0") or "0" for n in re.findall(r"\d+", numbers))
    return found


class DeleteResult(CecResult, kw_only=True):
    """The answer of ``deleteCalledRoute``."""

    data: DeleteOutcome | None = None

    def _listed(self, word: str) -> list[Dnid]:
        content = self.data.content if self.data is not None else None
        return [Dnid(int(digits)) for digits in _listed_dnids(content, word)]

    @property
    def deleted(self) -> list[Dnid]:
        """The dnids ``content`` lists as deleted (empty when it lists none)."""
        return self._listed("success")

    @property
    def failed(self) -> list[Dnid]:
        """The dnids ``content`` lists as not deleted."""
        return self._listed("failed")


class _Token(msgspec.Struct, kw_only=True):
    """The answer of ``tokenByAkSk`` (never shown: its repr hides the token)."""

    access_token: str = msgspec.field(name="AccessToken")
    create_time: float | None = msgspec.field(name="CreateTime", default=None)
    expires: float | None = msgspec.field(name="Expires", default=None)

    def __repr__(self) -> str:
        return f"_Token(AccessToken=***, CreateTime={self.create_time}, Expires={self.expires})"
