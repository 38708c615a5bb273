"""CDRs across the v2.0 upgrade: one answer with the records of both API versions.

From firmware 83/37/84.23.0.123 the PBX writes new CDRs to ``openapi/v2.0`` and keeps the
older ones at ``openapi/v1.0`` until its CDR clean-up removes them, so a time range that spans
the upgrade needs both. :func:`merged_search` (behind ``cdr.search(..., merge_history=True)``)
queries v1.0 and, where the PBX serves it, v2.0, walks every page of each, and returns one
:class:`~yeastar_async.resources._v2.CdrHistory`. :func:`cdrs_between` is the entry point for
code that wants "the CDRs between t0 and t1, whatever the version".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from yeastar_async.resources._v2 import CdrHistory

if TYPE_CHECKING:
    from yeastar_async.resources._base import EndpointSpec, Resource
    from yeastar_async.resources._profile import ApiVersion
    from yeastar_async.resources.cdr import CdrResource

__all__ = ["HISTORY_PAGE_SIZE", "cdrs_between", "merged_search"]

#: Records per request while walking the pages of a merged search (the PBX allows 10000).
HISTORY_PAGE_SIZE = 1000


async def _every_row(
    resource: Resource,
    spec: EndpointSpec,
    arguments: Mapping[str, Any],
    timeout: float | None,
    version: ApiVersion,
) -> list[Any]:
    size = int(arguments.get("page_size") or HISTORY_PAGE_SIZE)
    rows: list[Any] = []
    number = 1
    while True:
        page = await resource._dispatch(
            spec,
            {**arguments, "page": number, "page_size": size},
            timeout,
            version,
            *resource.formats(),
        )
        found = list(getattr(page, "data", None) or [])
        rows += found
        total = getattr(page, "total_number", None)
        # A firmware that does not page cdr/search answers everything at once: the total
        # is then reached after the first page too.
        if not found or (isinstance(total, int) and len(rows) >= total) or len(found) < size:
            return rows
        number += 1


async def merged_search(
    resource: Resource,
    spec: EndpointSpec,
    arguments: Mapping[str, Any],
    timeout: float | None = None,
) -> CdrHistory:
    """``cdr/search`` at v1.0 and, where the PBX serves CDRs there, at v2.0: every record.

    Raises ValueError for ``page`` (every page is fetched) and for a filter only one of the
    two versions takes (it would filter one half and not the other).
    """
    if "page" in arguments:
        raise ValueError(
            "cdr.search(merge_history=True) fetches every page: leave out page= (page_size= "
            "sets the records per request)"
        )
    if resource.version_of(spec.path) == "1.0":
        rows = await _every_row(resource, spec, arguments, timeout, "1.0")
        return CdrHistory(total_number=len(rows), data=rows)
    # Check both forms before any I/O: a filter one version lacks is refused up front.
    from yeastar_async.resources._base import _check_version

    _check_version(spec, arguments, "1.0")
    _check_version(spec, arguments, "2.0")
    new = await _every_row(resource, spec, arguments, timeout, "2.0")
    old = await _every_row(resource, spec, arguments, timeout, "1.0")
    seen = {getattr(row, "uid", None) for row in new} - {None}
    old = [row for row in old if getattr(row, "uid", None) not in seen]
    return CdrHistory(total_number=len(old) + len(new), data=[*old, *new])


async def cdrs_between(
    cdr: CdrResource, start: datetime | str, end: datetime | str, **filters: Any
) -> CdrHistory:
    """Every CDR from ``start`` to ``end`` (inclusive), whatever API version holds it.

    ``await cdrs_between(pbx.cdr, t0, t1)`` is ``pbx.cdr.search(start_time=t0, end_time=t1,
    merge_history=True, **filters)``; ``filters`` must be ones both versions take
    (``call_from``, ``call_to``, ``page_size``).
    """
    answer = await cdr.search(start_time=start, end_time=end, merge_history=True, **filters)
    assert isinstance(answer, CdrHistory)
    return answer
