"""In-memory state behind the FakePBX's REST endpoints (``FakePBX(stores=True)``, the default).

Stateful groups: extensions, company contacts, phonebooks, inbound routes, queues with their
agents (login / pause / agent status), wake-up calls (plus ``hotel/checkout``) and call detail
records (``cdr/list``, ``cdr/search``: every call the fake's flows finish adds one). Everything
else answers the manual's examples. The stores start with a small seeded PBX, taken from the
manual's examples, so that lists are not empty:

* extensions 2000 (id 39, Leo Ball), 2001 (id 223, Phillip Huff), 2002 (id 227, Madison Cooper)
  and 2005 (id 228, Kevin Connor);
* queue 6402 (id 3) with 2000 and 2001 as dynamic agents and 2002 as a static agent;
* the manual's company contacts, phonebooks, inbound routes and wake-up calls;
* the manual's CDRs 2710-2714 (the ``cdr/list`` and ``cdr/search`` examples).

Errors follow the PBX: an unknown id answers 60001 DATA NOT FOUND (70516 for a wake-up call,
70093 / 70128 for phonebooks / contacts), a duplicate unique value 40003 DUPLICATE KEY VALUE with
``duplicate_field_list``. Changes to extensions emit 30022 (and 30009 when the presence changes).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from ._catalog import Catalog
from ._log import RequestRecord
from ._webhook_settings import WebhookSettings

__all__ = ["CDR_TIME_FORMAT", "CdrLog", "Stores"]

Body = dict[str, Any]
Emit = Callable[[int, Mapping[str, Any]], Awaitable[int]]

_ROLE_NAMES = {
    0: "None",
    1: "Administrator",
    2: "Supervisor",
    3: "Operator",
    4: "Employee",
    5: "Human Resource",
    6: "Accounting",
}
_OFFLINE = {
    "sip_phone": {"status": 0, "ext_dev_type": "sip"},
    "linkus_desktop": {"status": 0},
    "linkus_mobile": {"status": 0},
    "linkus_web": {"status": 0},
}
# company contact number types -> the flat keys of the list view
_NUMBER_KEYS = {
    "business_number": "business",
    "business_number2": "business2",
    "mobile_number": "mobile",
    "mobile_number2": "mobile2",
    "home_number": "home",
    "home_number2": "home2",
    "business_fax": "business_fax",
    "home_fax": "home_fax",
    "other_number": "other",
}
_SEED_EXTENSIONS = [
    (39, "2000", "Leo", "Ball", "leo@sample.com"),
    (223, "2001", "Phillip", "Huff", "phillip@sample.com"),
    (227, "2002", "Madison", "Cooper", "madison@sample.com"),
    (228, "2005", "Kevin", "Connor", "kevin@sample.com"),
]


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _ids(value: Any) -> list[int]:
    """``"1,2"``, ``[1, 2]`` or ``1`` -> ``[1, 2]`` (the PBX takes comma-separated ids)."""
    items: Iterable[Any] = value if isinstance(value, list) else str(value or "").split(",")
    return [i for i in (_int(v) for v in items) if i is not None]


class Table:
    """One group's items by id, with the list / search / get / query / create / update / delete
    behaviour every CRUD group of the API shares."""

    def __init__(
        self,
        stores: Stores,
        group: str,
        *,
        template: Body,
        summary: Callable[[Body], Body],
        search_fields: tuple[str, ...],
        unique: tuple[str, ...] = (),
        list_key: str = "data",
        detail: Callable[[Body], Body] | None = None,
        missing: int = 60001,
    ) -> None:
        self.stores = stores
        self.group = group
        self.template = template
        self.summary = summary
        self.detail = detail or (lambda item: dict(item))
        self.search_fields = search_fields
        self.unique = unique
        self.list_key = list_key
        self.missing = missing
        self.items: dict[int, Body] = {}
        self.next_id = 1

    def add(self, fields: Mapping[str, Any], item_id: int | None = None) -> Body:
        """Insert an item built from the template and ``fields``; returns it."""
        item = copy.deepcopy(self.template)
        item.update({k: copy.deepcopy(v) for k, v in fields.items() if k != "id"})
        item["id"] = item_id if item_id is not None else self.next_id
        self.items[item["id"]] = item
        self.next_id = max(self.next_id, item["id"] + 1)
        return item

    def find(self, value: Any) -> Body | None:
        """The item with id ``value`` (int or numeric string)."""
        item_id = _int(value)
        return self.items.get(item_id) if item_id is not None else None

    def duplicates(self, fields: Mapping[str, Any], exclude: int | None = None) -> list[Body]:
        """``duplicate_field_list`` entries for unique values already used by another item."""
        found = []
        for name in self.unique:
            value = fields.get(name)
            if value in (None, ""):
                continue
            for item in self.items.values():
                if item["id"] != exclude and str(item.get(name)) == str(value):
                    found.append(
                        {
                            "field": name,
                            "value": value,
                            "external_source": self.group,
                            "external_source_name": str(item.get("number") or item.get("name")),
                        }
                    )
        return found

    # -- endpoint handlers --------------------------------------------------------------------
    def page(self, record: RequestRecord, matches: Callable[[Body], bool] | None = None) -> Body:
        """``list`` and ``search``: sorted, filtered, paginated summaries with total_number."""
        params = record.params
        items = [i for i in self.items.values() if matches is None or matches(i)]
        rows = [self.summary(i) for i in items]
        key = str(params.get("sort_by") or "id")
        rows.sort(key=lambda r: _sort_key(r.get(key)), reverse=params.get("order_by") == "desc")
        page = max(_int(params.get("page")) or 1, 1)
        size = max(_int(params.get("page_size")) or 10000, 1)
        body: Body = {"errcode": 0, "errmsg": "SUCCESS", "total_number": len(rows)}
        body[self.list_key] = rows[(page - 1) * size : page * size]
        return body

    def search(self, record: RequestRecord) -> Body:
        """``search``: ``search_value`` matched (case-insensitively) against a few fields."""
        needle = str(record.params.get("search_value") or "").lower()

        def matches(item: Body) -> bool:
            summary = self.summary(item)
            values = [summary.get(f, item.get(f)) for f in self.search_fields]
            return any(needle in str(v).lower() for v in values if v is not None)

        return self.page(record, matches)

    def get(self, record: RequestRecord) -> Body:
        """``get``: one item by ``id`` (the detailed view)."""
        item = self.find(record.params.get("id"))
        if item is None:
            return self.stores.error(self.missing)
        return {"errcode": 0, "errmsg": "SUCCESS", "data": self.detail(item)}

    def query(self, record: RequestRecord) -> Body:
        """``query``: the items named by the comma-separated ``ids``."""
        found = [self.items[i] for i in _ids(record.params.get("ids")) if i in self.items]
        return {"errcode": 0, "errmsg": "SUCCESS", "data": [self.detail(i) for i in found]}

    def create(self, record: RequestRecord) -> Body:
        """``create``: a new item (40003 on a duplicate unique value); answers its id."""
        fields = record.params
        dupes = self.duplicates(fields)
        if dupes:
            return self.stores.error(40003, duplicate_field_list=dupes)
        item = self.add(fields)
        return {"errcode": 0, "errmsg": "SUCCESS", "id": item["id"]}

    def update(self, record: RequestRecord) -> Body:
        """``update``: change only the fields given."""
        fields = record.params
        item = self.find(fields.get("id"))
        if item is None:
            return self.stores.error(self.missing)
        dupes = self.duplicates(fields, exclude=item["id"])
        if dupes:
            return self.stores.error(40003, duplicate_field_list=dupes)
        item.update({k: copy.deepcopy(v) for k, v in fields.items() if k != "id"})
        return self.stores.ok()

    def delete(self, record: RequestRecord) -> Body:
        """``delete``: remove the item ``id``."""
        item = self.find(record.params.get("id"))
        if item is None:
            return self.stores.error(self.missing)
        del self.items[item["id"]]
        return self.stores.ok()


def _sort_key(value: Any) -> tuple[int, Any]:
    number = _int(value) if not isinstance(value, (dict, list)) else None
    return (0, number) if number is not None else (1, str(value))


#: The time format of CDR ``time`` values and of ``cdr/search``'s ``start_time`` / ``end_time``:
#: the PBX's default display format (month/day/year, 24-hour clock; manual line 13814).
CDR_TIME_FORMAT = "%m/%d/%Y %H:%M:%S"
# The 30012 event's ``time_start`` format (manual line 17501).
_EVENT_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# "Kristin Hale<2005>" -> "2005": CDRs show an extension as "name<number>" (manual line 13704).
_NAMED_NUMBER = re.compile(r"<([^<>]*)>\s*$")

# The records of the manual's cdr/list example (line 13704), as printed. The packaged catalog
# keeps only a placeholder for that example because its printed JSON is broken; cdr/search's
# example (line 13874, record 2710 and two of these) is read from the catalog.
_SEED_CDRS: tuple[Body, ...] = (
    {
        "id": 2711,
        "time": "05/30/2022 14:55:00",
        "call_from": "Kristin Hale<2005>",
        "call_to": "21000",
        "timestamp": 1653893700,
        "uid": "2022053014550020730",
        "src_addr": "192.168.28.25",
        "dst_trunk": "peer-to-34",
        "disposition": "NO ANSWER",
        "call_type": "Outbound",
        "dod_number": "2005",
        "reason": "dst extension_busy_no_forward  ",
    },
    {
        "id": 2712,
        "time": "05/30/2022 14:55:49",
        "call_from": "Kristin Hale<2005>",
        "call_to": "21000",
        "timestamp": 1653893749,
        "uid": "202205301455494E686",
        "src_addr": "192.168.28.25",
        "dst_trunk": "peer-to-41",
        "duration": 54,
        "ring_duration": 2,
        "talk_duration": 52,
        "disposition": "ANSWERED",
        "call_type": "Outbound",
        "dod_number": "2005",
        "record_file": "20220530145555-1653893749.6-2005-21000-Outbound.wav",
        "reason": "dst hangup      ",
    },
    {
        "id": 2713,
        "time": "05/30/2022 14:57:00",
        "call_from": "PlayFile",
        "call_to": "Kristin Hale<2005>",
        "timestamp": 1653893820,
        "uid": "20220530145700EEC37",
        "src_addr": "192.168.28.25",
        "duration": 49,
        "ring_duration": 1,
        "talk_duration": 48,
        "disposition": "ANSWERED",
        "call_type": "Internal",
        "reason": "src hangup      ",
    },
    {
        "id": 2714,
        "time": "06/14/2022 11:19:28",
        "call_from": "Kristin Hale<2005>",
        "call_to": "Anna Simmons<2008>",
        "timestamp": 1655176768,
        "uid": "20220614111928CC54A",
        "src_addr": "192.168.28.25",
        "duration": 48,
        "ring_duration": 2,
        "talk_duration": 46,
        "disposition": "ANSWERED",
        "call_type": "Internal",
        "record_file": "20220614111933-1655176768.0-2005-2008-Internal.wav",
        "reason": "src hangup",
    },
)


def _blank(value: Any) -> bool:
    # The PBX sends empty 30012 values as one space.
    return value is None or not str(value).strip()


def _cdr_time(value: Any, fmt: str = CDR_TIME_FORMAT) -> datetime | None:
    try:
        return datetime.strptime(str(value).strip(), fmt)
    except ValueError:
        return None


def _party_number(party: Any) -> str:
    """The number of a CDR party: ``"Kristin Hale<2005>"`` -> ``"2005"``, ``"21000"`` as is."""
    text = str(party or "")
    found = _NAMED_NUMBER.search(text)
    return (found.group(1) if found else text).strip()


class CdrLog:
    """The call detail records behind ``cdr/list`` and ``cdr/search``, oldest id first.

    Attributes:
        records: every record in the ``CDR_Details`` shape of the manual (line 13679), ``time``
            in :data:`CDR_TIME_FORMAT`.
        display_format: the PBX's date/time display format (``strftime``): ``start_time`` /
            ``end_time`` are read in it and answers show ``time`` in it.
        upgrade: when the firmware moved CDRs to ``openapi/v2.0`` (None: never); ``cdr/list``
            and ``cdr/search`` at v1.0 then keep only the records older than this, and
            ``testing._cdr_v2`` serves the others at v2.0.
    """

    def __init__(self, seed: Iterable[Mapping[str, Any]] = ()) -> None:
        self.records: list[Body] = []
        self.display_format = CDR_TIME_FORMAT
        self.upgrade: datetime | None = None
        self.next_id = 1
        for row in seed:
            if _int(row.get("id")) not in {r["id"] for r in self.records}:
                self.add(row, _int(row.get("id")))
        self.records.sort(key=lambda r: r["id"])

    def add(self, row: Mapping[str, Any], record_id: int | None = None) -> Body:
        """Store a copy of ``row`` under ``record_id`` (default: the next id); returns it."""
        stored = {"id": record_id if record_id is not None else self.next_id}
        stored.update({k: copy.deepcopy(v) for k, v in row.items() if k != "id"})
        self.records.append(stored)
        self.next_id = max(self.next_id, stored["id"] + 1)
        return stored

    def history(self) -> list[Body]:
        """The records ``openapi/v1.0`` serves: all, or those older than :attr:`upgrade`."""
        if self.upgrade is None:
            return self.records
        upgrade = self.upgrade
        return [r for r in self.records if _older(r, upgrade)]

    def current(self) -> list[Body]:
        """The records ``openapi/v2.0`` serves: none, or those from :attr:`upgrade` on."""
        if self.upgrade is None:
            return []
        upgrade = self.upgrade
        return [r for r in self.records if not _older(r, upgrade)]

    def shown(self, row: Body) -> Body:
        """A copy of ``row`` with ``time`` in :attr:`display_format`."""
        out = copy.deepcopy(row)
        moment = _cdr_time(row.get("time"))
        if moment is not None and self.display_format != CDR_TIME_FORMAT:
            out["time"] = moment.strftime(self.display_format)
        return out

    def bounds(self, params: Mapping[str, Any], start: str, end: str) -> Callable[[Body], bool]:
        """A check of ``time`` against the ``start`` / ``end`` parameters (display format);
        None of both given -> every row; one that does not parse -> no row, as on the PBX."""
        given = {f: params[f] for f in (start, end) if params.get(f)}
        parsed = {f: _cdr_time(v, self.display_format) for f, v in given.items()}
        if None in parsed.values():
            # As the PBX does (manual line 13882): a time not in its display format finds
            # nothing, which is how a wrong datetime_format shows.
            return lambda r: False
        low, high = parsed.get(start), parsed.get(end)
        return lambda r: _within(_cdr_time(r.get("time")), low, high)

    def handle_list(self, record: RequestRecord) -> Body:
        """``cdr/list``: every record, sorted (``sort_by`` / ``order_by``) and paged."""
        return self._page(record, self.history())

    def handle_search(self, record: RequestRecord) -> Body:
        """``cdr/search``: the records matching the simple filters of the manual (line 13814).

        ``call_from`` / ``call_to`` match the party's number (``"Leo Ball<2000>"`` matches
        ``2000``), or any part of it with ``enable_fuzzy_search=1``; ``status`` matches the
        disposition; ``start_time`` / ``end_time`` bound ``time`` (inclusive); one not in
        :data:`CDR_TIME_FORMAT` finds nothing, as on the PBX. ``extension_group`` is ignored (the
        fake keeps no extension groups).
        """
        params = record.params
        fuzzy = str(params.get("enable_fuzzy_search") or "0").strip() == "1"
        checks: list[Callable[[Body], bool]] = []
        for field in ("call_from", "call_to"):
            wanted = str(params.get(field) or "").strip()
            if wanted:
                checks.append(_party_matches(field, wanted, fuzzy))
        status = str(params.get("status") or "").strip().upper()
        if status:
            checks.append(lambda r: str(r.get("disposition", "")).strip().upper() == status)
        checks.append(self.bounds(params, "start_time", "end_time"))
        rows = [r for r in self.history() if all(check(r) for check in checks)]
        return self._page(record, rows)

    def _page(self, record: RequestRecord, rows: list[Body]) -> Body:
        params = record.params
        key = str(params.get("sort_by") or "id")
        if key == "time":
            key = "timestamp"  # "MM/DD/YYYY" strings do not sort by date
        ordered = sorted(
            rows, key=lambda r: _cdr_sort_key(r.get(key)), reverse=params.get("order_by") == "desc"
        )
        page = max(_int(params.get("page")) or 1, 1)
        size = max(_int(params.get("page_size")) or 10000, 1)  # the manual's default page size
        chosen = ordered[(page - 1) * size : page * size]
        return {
            "errcode": 0,
            "errmsg": "SUCCESS",
            "total_number": len(rows),
            "data": [self.shown(r) for r in chosen],
        }


def _older(row: Body, moment: datetime) -> bool:
    when = _cdr_time(row.get("time"))
    return when is not None and when < moment


def _party_matches(field: str, wanted: str, fuzzy: bool) -> Callable[[Body], bool]:
    def matches(row: Body) -> bool:
        party = str(row.get(field) or "")
        if fuzzy:
            return wanted.lower() in party.lower()
        return wanted in (_party_number(party), party.strip())

    return matches


def _within(moment: datetime | None, start: datetime | None, end: datetime | None) -> bool:
    if moment is None:
        return False
    return (start is None or moment >= start) and (end is None or moment <= end)


def _cdr_sort_key(value: Any) -> tuple[int, Any]:
    # Records lack fields the PBX left empty (no duration on a NO ANSWER): those sort first.
    return (-1, 0) if value is None else _sort_key(value)


class Stores:
    """Every table, the agents of each queue and the wake-up calls, with their handlers."""

    def __init__(self, catalog: Catalog, emit: Emit) -> None:
        self.catalog = catalog
        self._emit = emit
        ex = catalog.endpoints
        self.extensions = Table(
            self,
            "extension",
            template=self._template("extension/get"),
            summary=self._extension_summary,
            detail=lambda i: {k: v for k, v in i.items() if k != "user_password"},
            search_fields=("number", "caller_id_name", "email_addr", "mobile_number"),
            unique=("number", "email_addr"),
        )
        self.contacts = Table(
            self,
            "company_contact",
            template=self._template("company_contact/get"),
            summary=self._contact_summary,
            detail=self._contact_detail,
            search_fields=("contact_name", "company", "email", "business", "mobile"),
            missing=70128,
        )
        self.phonebooks = Table(
            self,
            "phonebook",
            template={"name": "", "member_select": "sel_specific", "contact_ids": []},
            summary=self._phonebook_summary,
            detail=self._phonebook_detail,
            search_fields=("name",),
            unique=("name",),
            missing=70093,
        )
        self.inbound_routes = Table(
            self,
            "inbound_route",
            template=self._template("inbound_route/get"),
            summary=self._route_summary,
            search_fields=("name",),
            unique=("name",),
        )
        self.queues = Table(
            self,
            "queue",
            template=self._template("queue/get"),
            summary=self._queue_summary,
            search_fields=("number", "name"),
            unique=("number",),
            list_key="queue_list",
        )
        # (queue id, extension id) -> {"is_login", "is_pause", "pause_reason", "agent_type"}
        self.agents: dict[tuple[int, int], Body] = {}
        # extension id -> its wake-up calls
        self.wakeups: dict[int, list[Body]] = {}
        self._next_wakeup = 1
        #: extension number -> agent call_status (0 unknown, 1 idle, 2 talking, 3 ringing)
        self.call_status: dict[str, int] = {}
        #: call detail records: the manual's examples, then every call the flows finished
        self.cdrs = CdrLog([*_SEED_CDRS, *ex["cdr/search"].example().get("data", [])])
        #: Webhook event push settings (``webhook/query`` / ``webhook/update``): the topics the
        #: fake knows are the ones it can push
        self.webhooks = WebhookSettings(supported=sorted(catalog.events))
        self._seed(ex)

    # -- helpers --------------------------------------------------------------------------------
    def _template(self, endpoint: str) -> Body:
        data = self.catalog.endpoints[endpoint].example().get("data")
        template = copy.deepcopy(data) if isinstance(data, dict) else {}
        template.pop("id", None)
        return template

    def ok(self, **extra: Any) -> Body:
        """A success body."""
        return {"errcode": 0, "errmsg": "SUCCESS", **extra}

    def error(self, errcode: int, **extra: Any) -> Body:
        """An error body with the manual's message."""
        return {"errcode": errcode, "errmsg": self.catalog.errmsg(errcode), **extra}

    def extension_by_number(self, number: str) -> Body | None:
        """The extension whose number is ``number``."""
        for item in self.extensions.items.values():
            if str(item.get("number")) == str(number):
                return item
        return None

    def _seed(self, ex: Mapping[str, Any]) -> None:
        for ext_id, number, first, last, email in _SEED_EXTENSIONS:
            self.extensions.add(
                {
                    "number": number,
                    "caller_id": number,
                    "reg_name": number,
                    "first_name": first,
                    "last_name": last,
                    "email_addr": email,
                    "presence_status": "available",
                },
                ext_id,
            )
        for contact in ex["company_contact/query"].example().get("data", []):
            self.contacts.add(contact, contact.get("id"))
        for book in ex["phonebook/list"].example().get("data", []):
            ids = [c["id"] for c in self.contacts.items.values() if book["id"] in _pb_ids(c)]
            self.phonebooks.add(
                {"name": book["name"], "member_select": book["member_select"], "contact_ids": ids},
                book["id"],
            )
        for route in ex["inbound_route/query"].example().get("data", []):
            self.inbound_routes.add(route, route.get("id"))
        queue = ex["queue/get"].example().get("data", {})
        self.queues.add({**queue, "number": "6402", "name": "Support"}, 3)
        for number, kind in (("2000", "dynamic"), ("2001", "dynamic"), ("2002", "static")):
            ext = self.extension_by_number(number)
            assert ext is not None
            self.agents[(3, ext["id"])] = _agent(kind, logged_in=kind == "static")
        for entry in ex["wakeupcall/list"].example().get("data", []):
            for alarm in entry.get("wakeup_call", []):
                self.wakeups.setdefault(entry["ext_id"], []).append(dict(alarm))
                self._next_wakeup = max(self._next_wakeup, alarm["id"] + 1)

    # -- views ------------------------------------------------------------------------------------
    @staticmethod
    def _extension_summary(item: Body) -> Body:
        name = f"{item.get('first_name', '')} {item.get('last_name', '')}".strip()
        return {
            "id": item["id"],
            "online_status": copy.deepcopy(_OFFLINE),
            "presence_status": item.get("presence_status", "available"),
            "number": item.get("number", ""),
            "caller_id_name": name,
            "role_name": _ROLE_NAMES.get(_int(item.get("role_id")) or 0, "None"),
            "email_addr": item.get("email_addr", ""),
            "mobile_number": item.get("mobile_number", ""),
        }

    def _phonebook_list(self, contact: Body) -> list[Body]:
        books = []
        for book in self.phonebooks.items.values():
            if contact["id"] in self._members(book):
                books.append({"id": book["id"], "name": book["name"]})
        return books

    def _contact_summary(self, item: Body) -> Body:
        name = f"{item.get('first_name', '')} {item.get('last_name', '')}".strip()
        row: Body = {
            "id": item["id"],
            "contact_name": name,
            "company": item.get("company", ""),
            "email": item.get("email", ""),
            "phonebook_list": self._phonebook_list(item),
            "remark": item.get("remark", ""),
        }
        for entry in item.get("number_list") or []:
            key = _NUMBER_KEYS.get(str(entry.get("num_type")))
            if key:
                row[key] = entry.get("number", "")
        return row

    def _contact_detail(self, item: Body) -> Body:
        detail = {k: v for k, v in item.items() if k != "phonebook_id_list"}
        detail["phonebook_list"] = self._phonebook_list(item)
        return detail

    def _members(self, book: Body) -> list[int]:
        if book.get("member_select") == "sel_all":
            return sorted(self.contacts.items)
        return [i for i in book.get("contact_ids", []) if i in self.contacts.items]

    def _phonebook_summary(self, book: Body) -> Body:
        return {
            "id": book["id"],
            "name": book["name"],
            "total": len(self._members(book)),
            "member_select": book.get("member_select", "sel_specific"),
        }

    def _phonebook_detail(self, book: Body) -> Body:
        contacts = [self.contacts.items[i] for i in self._members(book)]
        return {
            "id": book["id"],
            "name": book["name"],
            "member_select": book.get("member_select", "sel_specific"),
            "contacts_list": [
                {k: v for k, v in self._contact_summary(c).items() if k != "phonebook_list"}
                for c in contacts
            ],
        }

    @staticmethod
    def _route_summary(item: Body) -> Body:
        return {
            "id": item["id"],
            "pos": item.get("pos", item["id"]),
            "name": item.get("name", ""),
            "default_destination": item.get("def_dest", ""),
            "default_destination_value": item.get("def_dest_value", ""),
            "current_destination": item.get("def_dest", ""),
            "current_destination_value": item.get("def_dest_value", ""),
            "time_condition": "global",
        }

    def _queue_summary(self, item: Body) -> Body:
        lists: dict[str, list[Body]] = {"dynamic": [], "static": []}
        for (queue_id, ext_id), agent in self.agents.items():
            ext = self.extensions.items.get(ext_id)
            if queue_id == item["id"] and ext is not None:
                name = self._extension_summary(ext)["caller_id_name"]
                entry = {"text": ext["number"], "text2": name, "value": str(ext_id)}
                lists[agent["agent_type"]].append({**entry, "type": "extension"})
        return {
            "id": item["id"],
            "number": item.get("number", ""),
            "name": item.get("name", ""),
            "ring_strategy": item.get("ring_strategy", ""),
            "dynamic_agent_list": lists["dynamic"],
            "static_agent_list": lists["static"],
            "manager_list": item.get("manager_list", []),
        }

    # -- extension handlers ---------------------------------------------------------------------
    async def extension_create(self, record: RequestRecord) -> Body:
        """``extension/create``, then 30022 CREATE."""
        body = self.extensions.create(record)
        if body["errcode"] == 0:
            await self._emit(
                30022, {"ext_number": str(record.params["number"]), "option": "CREATE"}
            )
        return body

    async def extension_update(self, record: RequestRecord) -> Body:
        """``extension/update``, then 30022 UPDATE (and 30009 on a presence change)."""
        item = self.extensions.find(record.params.get("id"))
        before = item.get("presence_status") if item else None
        body = self.extensions.update(record)
        if body["errcode"] == 0 and item is not None:
            await self._emit(30022, {"ext_number": str(item["number"]), "option": "UPDATE"})
            if item.get("presence_status") != before:
                await self.presence_changed(item)
        return body

    async def extension_delete(self, record: RequestRecord) -> Body:
        """``extension/delete`` (its agents and wake-up calls too), then 30022 DELETE."""
        item = self.extensions.find(record.params.get("id"))
        body = self.extensions.delete(record)
        if body["errcode"] == 0 and item is not None:
            for key in [k for k in self.agents if k[1] == item["id"]]:
                del self.agents[key]
            self.wakeups.pop(item["id"], None)
            await self._emit(30022, {"ext_number": str(item["number"]), "option": "DELETE"})
        return body

    async def presence_changed(self, item: Body) -> None:
        """Emit 30009 for an extension whose presence changed."""
        status = item.get("presence_status", "available")
        await self._emit(30009, {"extension": str(item["number"]), "status": status})

    # -- phonebooks and contacts ------------------------------------------------------------------
    def phonebook_create(self, record: RequestRecord) -> Body:
        """``phonebook/create`` with its initial contacts."""
        params = record.params
        dupes = self.phonebooks.duplicates(params)
        if dupes:
            return self.error(40003, duplicate_field_list=dupes)
        ids = [i for i in _ids(params.get("add_contacts_id_list")) if i in self.contacts.items]
        fields = {
            "name": params["name"],
            "member_select": params.get("member_select", "sel_specific"),
            "contact_ids": ids,
        }
        return self.ok(id=self.phonebooks.add(fields)["id"])

    def phonebook_update(self, record: RequestRecord) -> Body:
        """``phonebook/update``: rename, reselect, add or remove contacts."""
        params = record.params
        book = self.phonebooks.find(params.get("id"))
        if book is None:
            return self.error(70093)
        dupes = self.phonebooks.duplicates(params, exclude=book["id"])
        if dupes:
            return self.error(40003, duplicate_field_list=dupes)
        for key in ("name", "member_select"):
            if key in params:
                book[key] = params[key]
        members = set(book["contact_ids"]) | set(_ids(params.get("add_contacts_id_list")))
        members -= set(_ids(params.get("del_contacts_id_list")))
        book["contact_ids"] = sorted(i for i in members if i in self.contacts.items)
        return self.ok()

    def contact_create(self, record: RequestRecord) -> Body:
        """``company_contact/create``, joining the phonebooks named."""
        body = self.contacts.create(record)
        if body["errcode"] == 0:
            self._link_contact(body["id"], record.params.get("phonebook_id_list"))
        return body

    def contact_update(self, record: RequestRecord) -> Body:
        """``company_contact/update``; ``phonebook_id_list`` replaces memberships."""
        body = self.contacts.update(record)
        if body["errcode"] == 0 and "phonebook_id_list" in record.params:
            item = self.contacts.find(record.params["id"])
            assert item is not None
            for book in self.phonebooks.items.values():
                if item["id"] in book["contact_ids"]:
                    book["contact_ids"].remove(item["id"])
            self._link_contact(item["id"], record.params["phonebook_id_list"])
        return body

    def _link_contact(self, contact_id: int, phonebooks: Any) -> None:
        for book_id in _ids(phonebooks):
            book = self.phonebooks.items.get(book_id)
            if book is not None and contact_id not in book["contact_ids"]:
                book["contact_ids"].append(contact_id)

    # -- queues and agents ------------------------------------------------------------------------
    def queue_create(self, record: RequestRecord) -> Body:
        """``queue/create`` with its dynamic and static agents."""
        body = self.queues.create(record)
        if body["errcode"] == 0:
            self._set_agents(body["id"], record.params)
        return body

    def queue_update(self, record: RequestRecord) -> Body:
        """``queue/update``; agent lists given replace the old ones."""
        body = self.queues.update(record)
        if body["errcode"] == 0:
            queue_id = _int(record.params["id"])
            assert queue_id is not None
            self._set_agents(queue_id, record.params)
        return body

    def queue_delete(self, record: RequestRecord) -> Body:
        """``queue/delete`` and its agents."""
        body = self.queues.delete(record)
        if body["errcode"] == 0:
            queue_id = _int(record.params["id"])
            for key in [k for k in self.agents if k[0] == queue_id]:
                del self.agents[key]
        return body

    def _set_agents(self, queue_id: int, params: Mapping[str, Any]) -> None:
        for kind in ("dynamic", "static"):
            entries = params.get(f"{kind}_agent_list")
            if entries is None:
                continue
            for key in [k for k, a in self.agents.items() if k[0] == queue_id]:
                if self.agents[key]["agent_type"] == kind:
                    del self.agents[key]
            for entry in entries if isinstance(entries, list) else []:
                ext_id = _int(entry.get("value") if isinstance(entry, dict) else entry)
                if ext_id in self.extensions.items:
                    assert ext_id is not None
                    self.agents[(queue_id, ext_id)] = _agent(kind, logged_in=kind == "static")

    def agent_status(self, record: RequestRecord) -> Body:
        """``queue/agent_status``: every agent of the queue with its state."""
        queue = self.queues.find(record.params.get("id"))
        if queue is None:
            return self.error(60001)
        rows = []
        for (queue_id, ext_id), agent in sorted(self.agents.items()):
            ext = self.extensions.items.get(ext_id)
            if queue_id != queue["id"] or ext is None:
                continue
            rows.append(
                {
                    "name": self._extension_summary(ext)["caller_id_name"],
                    "number": ext["number"],
                    "is_login": agent["is_login"],
                    "is_pause": agent["is_pause"],
                    "call_status": self.call_status.get(str(ext["number"]), 1),
                    "pause_reason": agent["pause_reason"],
                    "agent_type": agent["agent_type"],
                }
            )
        return self.ok(total_number=len(rows), data=rows)

    def _agent_change(
        self, queue_ids: list[int], ext_ids: list[int], operation: str, params: Mapping[str, Any]
    ) -> Body:
        if operation not in ("login", "logout", "pause", "unpause"):
            invalid = [{"field": "operation", "value": operation}]
            return self.error(40002, invalid_param_list=invalid)
        for queue_id in queue_ids:
            if queue_id not in self.queues.items:
                return self.error(60001)
        for ext_id in ext_ids:
            if ext_id not in self.extensions.items:
                return self.error(60001)
        reason = str(params.get("reason") or "")
        for queue_id in queue_ids:
            for ext_id in ext_ids:
                agent = self.agents.get((queue_id, ext_id))
                if agent is None:
                    if operation != "login":
                        continue
                    # A login to a queue the extension is not in makes it a dynamic agent.
                    agent = self.agents[(queue_id, ext_id)] = _agent("dynamic", logged_in=False)
                if operation in ("login", "logout"):
                    agent["is_login"] = 1 if operation == "login" else 0
                    paused = operation == "login" and str(params.get("is_paused")) == "1"
                    agent["is_pause"] = 1 if paused else 0
                    agent["pause_reason"] = reason if paused else ""
                else:
                    agent["is_pause"] = 1 if operation == "pause" else 0
                    agent["pause_reason"] = reason if operation == "pause" else ""
        return self.ok()

    def queue_agent_op(self, record: RequestRecord) -> Body:
        """``queue/agent_login`` and ``queue/agent_pause``: several extensions, one queue."""
        params = record.params
        queue_id = _int(params.get("queue_id"))
        queues = [queue_id] if queue_id is not None else []
        if not queues:
            return self.error(60001)
        return self._agent_change(
            queues, _ids(params.get("ext_ids")), str(params.get("operation")), params
        )

    def agent_op(self, record: RequestRecord) -> Body:
        """``agent/login`` and ``agent/pause``: one extension, its queues (or the named ones)."""
        params = record.params
        ext_id = _int(params.get("ext_id"))
        if ext_id is None:
            return self.error(60001)
        queues = _ids(params.get("queue_ids"))
        if not queues:
            queues = sorted({q for (q, e) in self.agents if e == ext_id})
        return self._agent_change(queues, [ext_id], str(params.get("operation")), params)

    # -- wake-up calls and checkout -----------------------------------------------------------
    def _wakeup_entry(self, ext_id: int) -> Body:
        return {"ext_id": ext_id, "wakeup_call": copy.deepcopy(self.wakeups.get(ext_id, []))}

    def wakeup_list(self, record: RequestRecord) -> Body:
        """``wakeupcall/list``: the alarms of every extension that has some."""
        rows = [self._wakeup_entry(e) for e in sorted(self.wakeups) if self.wakeups[e]]
        page = max(_int(record.params.get("page")) or 1, 1)
        size = max(_int(record.params.get("page_size")) or 10000, 1)
        return self.ok(data=rows[(page - 1) * size : page * size])

    def wakeup_get(self, record: RequestRecord) -> Body:
        """``wakeupcall/get``: one extension's alarms."""
        ext_id = _int(record.params.get("ext_id"))
        if ext_id not in self.extensions.items:
            return self.error(60001)
        assert ext_id is not None
        return self.ok(data=self._wakeup_entry(ext_id))

    def wakeup_query(self, record: RequestRecord) -> Body:
        """``wakeupcall/query``: the alarms of the comma-separated ``ext_id`` list."""
        ids = [i for i in _ids(record.params.get("ext_id")) if i in self.extensions.items]
        return self.ok(data=[self._wakeup_entry(i) for i in ids])

    def wakeup_create(self, record: RequestRecord) -> Body:
        """``wakeupcall/create``: one alarm (at most 23 per extension)."""
        params = record.params
        ext_id = _int(params.get("ext_id"))
        if ext_id not in self.extensions.items:
            return self.error(60001)
        assert ext_id is not None
        alarms = self.wakeups.setdefault(ext_id, [])
        if len(alarms) >= 23:  # the manual's per-extension limit
            return self.error(60002)
        alarm = {
            "id": self._next_wakeup,
            "alarm_time": params["alarm_time"],
            "repeat_type": params.get("repeat_type", "never"),
            "number_of_snoozes": _int(params.get("number_of_snoozes")) or 0,
            "snooze_duration": _int(params.get("snooze_duration")) or 0,
            "alarm_prompt": params.get("alarm_prompt", ""),
        }
        self._next_wakeup += 1
        alarms.append(alarm)
        return self.ok(id=alarm["id"])

    def wakeup_update(self, record: RequestRecord) -> Body:
        """``wakeupcall/update``: change an alarm (70516 if it does not exist)."""
        params = record.params
        alarm_id = _int(params.get("id"))
        for alarms in self.wakeups.values():
            for alarm in alarms:
                if alarm["id"] == alarm_id:
                    for key in alarm:
                        if key in params and key != "id":
                            alarm[key] = params[key]
                    return self.ok()
        return self.error(70516)

    def wakeup_delete(self, record: RequestRecord) -> Body:
        """``wakeupcall/delete``: the alarms named, or all of the extension."""
        params = record.params
        ext_id = _int(params.get("ext_id"))
        if ext_id not in self.extensions.items:
            return self.error(60001)
        assert ext_id is not None
        alarms = self.wakeups.get(ext_id, [])
        if params.get("wakeup_call_id") in (None, ""):
            alarms.clear()  # no id: every alarm of the extension
            return self.ok()
        wanted = set(_ids(params["wakeup_call_id"]))
        if not wanted <= {a["id"] for a in alarms}:
            return self.error(70516)
        alarms[:] = [a for a in alarms if a["id"] not in wanted]
        return self.ok()

    async def checkout(self, record: RequestRecord) -> Body:
        """``hotel/checkout``: clear the guest's data, wake-up calls and presence."""
        item = self.extensions.find(record.params.get("ext_id"))
        if item is None:
            return self.error(60001)
        self.wakeups.pop(item["id"], None)
        for key in ("first_name", "last_name", "email_addr", "mobile_number", "user_password"):
            item[key] = ""
        changed = item.get("presence_status") != "available"
        item["presence_status"] = "available"
        if changed:
            await self.presence_changed(item)
        return self.ok()

    # -- call detail records ----------------------------------------------------------------------
    def _party(self, number: str) -> str:
        # CDRs name extensions as "First Last<number>" (manual line 13704); others stay numbers.
        item = self.extension_by_number(number)
        name = f"{item.get('first_name', '')} {item.get('last_name', '')}".strip() if item else ""
        return f"{name}<{number}>" if name else number

    def record_call(self, event: Mapping[str, Any]) -> Body:
        """Add the CDR of a finished call, given its 30012 payload; returns the new record.

        The 30012 fields (manual line 17479) become ``CDR_Details`` fields (line 13679):
        ``call_id`` -> ``uid`` (so a record can be matched with its event), ``time_start`` ->
        ``time`` (in :data:`CDR_TIME_FORMAT`) and ``timestamp``, ``call_from`` / ``call_to``
        (``"name<number>"`` for an extension), ``call_duration`` -> ``duration``,
        ``talk_duration``, their difference -> ``ring_duration``, ``status`` ->
        ``disposition``, ``type`` -> ``call_type``, ``src_trunk_name`` / ``dst_trunk_name`` ->
        ``src_trunk`` / ``dst_trunk``, ``recording`` -> ``record_file``, ``did_number``; an
        outbound call shows its caller as ``dod_number``. Fields the event leaves empty are
        left out, as in the manual's examples.
        """
        try:
            started = datetime.strptime(str(event.get("time_start")), _EVENT_TIME_FORMAT)
        except ValueError:
            started = datetime.now().replace(microsecond=0)
        duration = _int(event.get("call_duration")) or 0
        talk = _int(event.get("talk_duration")) or 0
        caller = str(event.get("call_from") or "").strip()
        call_type = str(event.get("type") or "").strip().capitalize()
        row: Body = {
            "time": started.strftime(CDR_TIME_FORMAT),
            "call_from": self._party(caller),
            "call_to": self._party(str(event.get("call_to") or "").strip()),
            "timestamp": int(started.timestamp()),
            "uid": str(event.get("call_id") or ""),
            "src_addr": "127.0.0.1",  # every phone and trunk of the fake is on loopback
            "duration": duration,
            "ring_duration": max(duration - talk, 0),
            "talk_duration": talk,
            "disposition": str(event.get("status") or "").strip(),
            "call_type": call_type,
        }
        optional = {
            "src_trunk": event.get("src_trunk_name"),
            "dst_trunk": event.get("dst_trunk_name"),
            "did_number": event.get("did_number"),
            "dod_number": caller if call_type == "Outbound" else None,
            "record_file": event.get("recording"),
        }
        row.update({k: str(v).strip() for k, v in optional.items() if not _blank(v)})
        return self.cdrs.add(row)

    # -- wiring -----------------------------------------------------------------------------------
    def _with_last_pos(self, handler: Callable[[RequestRecord], Body]) -> Callable[..., Body]:
        # Route lists also report the highest position in use (the PBX orders routes by pos).
        def wrapped(record: RequestRecord) -> Body:
            body = handler(record)
            positions = [
                _int(r.get("pos", r["id"])) or 0 for r in self.inbound_routes.items.values()
            ]
            body["last_pos"] = max(positions, default=0)
            return body

        return wrapped

    def handlers(self) -> dict[str, Callable[[RequestRecord], Body | Awaitable[Body]]]:
        """Endpoint -> handler, for ``FakePBX.add_handler``."""
        table: dict[str, Callable[[RequestRecord], Body | Awaitable[Body]]] = {}
        for group, store in (
            ("extension", self.extensions),
            ("company_contact", self.contacts),
            ("phonebook", self.phonebooks),
            ("inbound_route", self.inbound_routes),
            ("queue", self.queues),
        ):
            table[f"{group}/list"] = store.page
            table[f"{group}/search"] = store.search
            table[f"{group}/get"] = store.get
            table[f"{group}/query"] = store.query
            table[f"{group}/create"] = store.create
            table[f"{group}/update"] = store.update
            table[f"{group}/delete"] = store.delete
        table.update(
            {
                "inbound_route/list": self._with_last_pos(self.inbound_routes.page),
                "inbound_route/search": self._with_last_pos(self.inbound_routes.search),
                "extension/create": self.extension_create,
                "extension/update": self.extension_update,
                "extension/delete": self.extension_delete,
                "company_contact/create": self.contact_create,
                "company_contact/update": self.contact_update,
                "phonebook/create": self.phonebook_create,
                "phonebook/update": self.phonebook_update,
                "queue/create": self.queue_create,
                "queue/update": self.queue_update,
                "queue/delete": self.queue_delete,
                "queue/agent_status": self.agent_status,
                "queue/agent_login": self.queue_agent_op,
                "queue/agent_pause": self.queue_agent_op,
                "agent/login": self.agent_op,
                "agent/pause": self.agent_op,
                "wakeupcall/list": self.wakeup_list,
                "wakeupcall/get": self.wakeup_get,
                "wakeupcall/query": self.wakeup_query,
                "wakeupcall/create": self.wakeup_create,
                "wakeupcall/update": self.wakeup_update,
                "wakeupcall/delete": self.wakeup_delete,
                "hotel/checkout": self.checkout,
                "cdr/list": self.cdrs.handle_list,
                "cdr/search": self.cdrs.handle_search,
                **self.webhooks.handlers(),
            }
        )
        return table


def _agent(kind: str, *, logged_in: bool) -> Body:
    return {
        "agent_type": kind,
        "is_login": 1 if logged_in else 0,
        "is_pause": 0,
        "pause_reason": "",
    }


def _pb_ids(contact: Body) -> list[int]:
    return [b["id"] for b in contact.get("phonebook_list") or [] if isinstance(b, dict)]
