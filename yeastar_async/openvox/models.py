"""Typed inbound and outbound routes of the OpenVox UC API v0.0.1, and their argument checks.

Both wire formats decode into these Structs the same way (through the project's lenient
converter): an ``id`` sent as ``"19"`` is ``19``, one sent as ``""`` is ``None``, a number where
the manual says String is its text, and an XML list of one ``<item>`` is still a list. An ``id``
beyond int64 (as a number or as text) is refused, as in every model of the project (``Int64``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, TypeAlias, get_args

import msgspec

from .._models import Int64

__all__ = [
    "DEST_TYPES",
    "DestType",
    "InboundRoute",
    "InboundRoutes",
    "Names",
    "OutboundRoute",
    "OutboundRoutes",
    "StatusAnswer",
    "check_dest_type",
    "join_names",
    "join_trunks",
]

#: Where an inbound route sends its calls.
DestType: TypeAlias = Literal[
    "hangup",
    "extension",
    "voicemail",
    "ivr",
    "ringgroup",
    "queue",
    "conference",
    "disa",
    "callback",
]
DEST_TYPES: Final[frozenset[str]] = frozenset(get_args(DestType))

#: Route names for query and delete: one name, several, or the string ``"all"``.
Names: TypeAlias = "str | Sequence[str]"


class InboundRoute(msgspec.Struct, kw_only=True, frozen=True):
    """One inbound route (``inroute/query``).

    Attributes:
        id: the PBX's id (``None`` when it sent ``""``); ``inroute/update`` finds a route by
            ``name``, not by id.
        name: the route's name, its key.
        did: the DID pattern (``""``: any).
        caller_id: the caller ID pattern (``""``: any).
        desttype: the kind of destination.
        dest: the destination itself (an extension number, a queue number ...).
    """

    id: Int64 | None = None
    name: str
    did: str = ""
    caller_id: str = ""
    desttype: DestType
    dest: str = ""


class OutboundRoute(msgspec.Struct, kw_only=True, frozen=True):
    """One outbound route (``outroute/query``).

    Attributes:
        id: the PBX's id (``None`` when it sent ``""``); ``outroute/update`` needs it.
        name: the route's name.
        prepend: digits put before a matched number before it goes to the trunk.
        prefix: digits stripped from a matched number before it goes to the trunk.
        matchpattern: the pattern dialled numbers are matched against (after ``prefix``).
        callerid: when set, the route matches only callers whose ID matches this pattern.
        trunks: the trunk names, comma-separated as the PBX writes them (see :attr:`trunk_names`).
    """

    id: Int64 | None = None
    name: str
    prepend: str = ""
    prefix: str = ""
    matchpattern: str = ""
    callerid: str = ""
    trunks: str = ""

    @property
    def trunk_names(self) -> tuple[str, ...]:
        """:attr:`trunks` split into names."""
        return tuple(part.strip() for part in self.trunks.split(",") if part.strip())


class StatusAnswer(msgspec.Struct, kw_only=True):
    """The part of every answer that says whether it worked (``token`` only for ``login``)."""

    status: str = ""
    errno: str = ""
    token: str = ""


class InboundRoutes(msgspec.Struct, kw_only=True):
    """``inroute/query``'s answer."""

    inroutes: list[InboundRoute] = msgspec.field(default_factory=list)


class OutboundRoutes(msgspec.Struct, kw_only=True):
    """``outroute/query``'s answer."""

    outroutes: list[OutboundRoute] = msgspec.field(default_factory=list)


def join_names(names: Names, *, what: str = "name") -> str:
    """``names`` as the API's one string: ``"a"``, ``"a,b"`` or ``"all"``.

    Raises :class:`ValueError` for no name, a blank name, or a name holding a comma (it would
    read as two), naming the offending value.
    """
    items = [names] if isinstance(names, str) else list(names)
    if not items:
        raise ValueError(f"{what}: give at least one route name, or 'all'")
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{what}: a route name is a str, not {type(item).__name__}: {item!r}")
        if not item.strip():
            raise ValueError(f"{what}: a route name must not be blank, got {item!r}")
        if "," in item:
            raise ValueError(
                f"{what}: the route name {item!r} holds a comma, which the PBX reads as a list"
            )
    if "all" in items and len(items) > 1:
        raise ValueError(f"{what}: 'all' stands alone, got {items!r}")
    return ",".join(items)


def check_dest_type(desttype: str) -> DestType:
    """``desttype`` if the PBX knows it, else :class:`ValueError` listing the known ones."""
    if desttype not in DEST_TYPES:
        raise ValueError(f"desttype {desttype!r} is not one of {', '.join(sorted(DEST_TYPES))}")
    return desttype  # type: ignore[return-value]


def join_trunks(trunks: str | Sequence[str]) -> str:
    """Trunk names as the PBX's comma-separated string (one name, several, or that string)."""
    if isinstance(trunks, str):
        return join_names([part for part in trunks.split(",")], what="trunks")
    return join_names(trunks, what="trunks")
