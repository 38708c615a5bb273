#!/usr/bin/env python3
"""Generate ``yeastar_async/resources/<group>.py`` from the endpoint catalog.

The catalog (``catalog/p_series_endpoints.json`` in this repository, extracted from the vendor
manual, plus the entries of ``catalog/p_series_current.json`` from the vendor's current pages) lists
every endpoint with its parameters, nested request tables, response fields, manual lines and the
quirks where the manual contradicts itself. This script turns it into thin declarations over
``resources/_base.py``; what the catalog cannot say by itself (conditional requirements written
in prose, field-name variants seen only in examples, types printed one way and sent another) is
in the ``OVERRIDES`` tables below, each with the reason.

Usage (from the repository root)::

    .venv/bin/python tools/gen_resources.py [--catalog DIR]

It then runs ``ruff format`` and ``ruff check --fix`` (imports) over what it wrote.

The generated modules are committed; edit this script and regenerate rather than editing them.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import keyword
import re
import shutil
import subprocess
import sys
import textwrap
import tokenize
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import catalog_files

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "yeastar_async" / "resources"

AUTH_ENDPOINTS = {"get_token", "refresh_token", "del_token"}

# ---------------------------------------------------------------------------------------------
# OVERRIDES: everything the generator cannot read from the catalog's structured fields.
# ---------------------------------------------------------------------------------------------

#: Endpoints taking page/page_size whose answer has no total_number (spec README section 7).
PAGINATED_WITHOUT_TOTAL = {
    "organization/list",
    "organization/search",
    "queue_pause_reason/list",
    "wakeupcall/list",
}

#: ``data`` typed one way and printed the other (spec README section 13.7): accept both.
DATA_OBJECT_OR_LIST = {"trunk/get", "wakeupcall/get", "ivr/query", "queue/query"}

#: Rules written in prose the generator cannot parse (rendered verbatim into the declaration).
EXTRA_RULES: dict[str, list[str]] = {
    # Optional in the table, but needed to list the agents of a queue (manual line 1404).
    "system/get_menuoptions": ['requires("id", when="menu", equals="queue_agent")'],
    # "Both optional; one of them must identify the recording" (manual line 13570).
    "recording/download": ['exactly_one("id", "file")'],
    # Three alternative parameter sets; send exactly one (manual line 15610 ff.).
    "call/query": ['exactly_one("call_id", "type", "number")'],
    # channel_id, or paging_number to end a paging-group call (manual line 16676).
    "call/hangup": ['exactly_one("channel_id", "paging_number")'],
    # number is required for a blind transfer and to start an attended one; the follow-up
    # call of an attended transfer carries attended_operate instead (manual line 16432 ff.).
    # dial_permission is described as required too, but the manual's own blind-transfer
    # example omits it, so it is left to the PBX.
    "call/transfer": [
        'requires("number", when="type", equals="blind")',
        'exactly_one("number", "attended_operate", when="type", equals="attended")',
    ],
    # ivr/create's table spells prompt_manager_*, every other IVR table and all examples
    # prompt_manger_*; both spellings are offered, each with its own rule.
    "ivr/create": [
        'requires("prompt_manager_password", when="prompt_manager_enb", equals=1)',
        'requires("prompt_manger_password", when="prompt_manger_enb", equals=1)',
    ],
    "ivr/update": ['requires("prompt_manager_password", when="prompt_manager_enb", equals=1)'],
}

#: Prose rules whose trigger name differs from the endpoint's parameter (skip the parsed one).
SKIP_PARSED_RULES = {
    ("ivr/create", "prompt_manager_password"),
    ("ivr/update", "prompt_manager_password"),
}

#: Extra parameters (endpoint -> [(name, copy_of, note)]).
EXTRA_PARAMS: dict[str, list[tuple[str, str, str]]] = {
    "ivr/create": [
        (
            "prompt_manger_enb",
            "prompt_manager_enb",
            "Spelled as by ivr/get, ivr/update and the examples (manual line 10873); "
            "ivr/create's table spells it prompt_manager_enb.",
        ),
        (
            "prompt_manger_password",
            "prompt_manager_password",
            "Spelled as by ivr/get, ivr/update and the examples (manual line 10873); "
            "ivr/create's table spells it prompt_manager_password.",
        ),
    ],
    "ivr/update": [
        (
            "prompt_manager_enb",
            "prompt_manger_enb",
            "Spelled as by ivr/create's table (manual line 10801); ivr/update's table and the "
            "examples spell it prompt_manger_enb.",
        ),
        (
            "prompt_manager_password",
            "prompt_manger_password",
            "Spelled as by ivr/create's table (manual line 10801); ivr/update's table and the "
            "examples spell it prompt_manger_password.",
        ),
    ],
}

#: Nested request fields left out: (group, table, field) -> reason.
DROP_REQUEST_FIELDS = {
    # extension/update's table says in_always_forward_destination, every other table and
    # example in_always_forward_dest (spec quirk): send the common spelling.
    ("extension", "Presence_Setting", "in_always_forward_destination"),
}

#: Nested request fields renamed on the wire: (group, table, field) -> new name. The tables say
#: K/P, every request and response example k/p (manual lines 12431, 11648).
RENAME_REQUEST_FIELDS = {
    ("queue", "Satisfaction_Survey_Point_List", "K"): "k",
    ("queue", "Satisfaction_Survey_Point_List", "P"): "p",
}

#: Extra response fields seen in the manual's examples but not in its tables.
EXTRA_RESPONSE_FIELDS: dict[tuple[str, str], list[tuple[str, str, str]]] = {
    ("extension", "Presence_Setting"): [
        ("in_always_forward_destination", "String", "Spelling variant of in_always_forward_dest."),
    ],
    ("queue", "Satisfaction_Survey_Point_List"): [
        ("k", "String", "Key (the spelling of the manual's examples)."),
        ("p", "Integer", "Points (the spelling of the manual's examples)."),
    ],
    ("queue", "Queue_DetailInfo"): [
        ("satisfy_survey_prompt", "String", "Spelling variant of satisfa_survey_prompt."),
    ],
    ("inbound_route", "Inroute_Info"): [
        ("default_desination_value", "String", "Spelling of default_destination_value."),
        ("current_desination_value", "String", "Spelling of current_destination_value."),
    ],
    ("ivr", "IVR_DetailInfo"): [
        ("prompt_manager_enb", "Integer", "Spelling variant of prompt_manger_enb."),
        ("prompt_manager_password", "String", "Spelling variant of prompt_manger_password."),
    ],
}

#: Types a response field also arrives as, besides the table's: (group, table, field) -> types.
RESPONSE_EXTRA_TYPES = {
    # Sub_Organization types these String, Organization_List Integer; examples send numbers
    # (spec quirk, manual lines 3993-3998).
    ("organization", "Sub_Organization", "parent_id"): ["Integer"],
    ("organization", "Sub_Organization", "order"): ["Integer"],
    ("organization", "Sub_Organization", "ext_number"): ["Integer"],
    ("organization", "Organization_List", "parent_id"): ["String"],
    ("organization", "Organization_List", "order"): ["String"],
    ("organization", "Organization_List", "ext_number"): ["String"],
    # Typed String, sent as arrays of strings by every example (manual lines 11691, 12019).
    ("queue", "Queue_DetailInfo", "empty_defined_for_leave_empty"): ["Array<String>"],
    ("queue", "Queue_DetailInfo", "empty_defined_for_disallow_to_join_when_empty"): [
        "Array<String>"
    ],
    # Typed Array<Integer>, printed as the string "[10,5]" (manual line 8080).
    ("inbound_route", "Inroute_Details", "cid_to_phonebook"): ["String"],
}

#: Response field types replaced: (group, table, field) -> type expression.
RESPONSE_FIELD_TYPES = {
    # An object keyed by endpoint kind, each value an Online_Status (manual line 1579).
    ("extension", "Ext_Basicinfo", "online_status"): "OnlineStatusByEndpoint | None = None",
}

#: Extra response classes: (group, name) -> (docstring, [(field, type expression, doc)]).
EXTRA_RESPONSE_CLASSES: dict[tuple[str, str], tuple[str, list[tuple[str, str, str]]]] = {
    ("extension", "OnlineStatusByEndpoint"): (
        "Online status of an extension per endpoint kind (manual line 1579).",
        [
            ("sip_phone", "OnlineStatus | None = None", "SIP phones."),
            ("linkus_desktop", "OnlineStatus | None = None", "Linkus desktop client."),
            ("linkus_mobile", "OnlineStatus | None = None", "Linkus mobile client."),
            ("linkus_web", "OnlineStatus | None = None", "Linkus web client."),
        ],
    ),
}

#: Nested response tables replaced by the event models (call/query reuses the member shapes).
EXTERNAL_TYPES = {
    ("call", "Members"): "CallMember",
    ("call", "Extension_Info"): "ExtensionLeg",
    ("call", "Inbound_Info"): "InboundLeg",
    ("call", "Outbound_Info"): "OutboundLeg",
}
EXTERNAL_MODULE = "yeastar_async.events.models"

#: Tables of one module with the same fields, declared once: (group, table) -> table kept.
MERGE_TABLES = {
    ("queue", "Static_Agent_List"): "Dynamic_Agent_List",
    ("queue", "Manager_List"): "Dynamic_Agent_List",
    ("organization", "Sub_Organization"): "Organization_List",
    ("ivr", "Restrict_Ext_List"): "Allow_Ext_List",
    ("call_report", "agent_call_detail"): "queue_call_detail",
}

#: Class names that read badly when derived from the table name (or name a merged table).
RENAME_TYPES = {
    "Ringin List": "RingingList",
    "Pause Reason List": "PauseReasonList",
    "Dynamic_Agent_List": "QueueMember",
    "Allow_Ext_List": "DialExtension",
    "queue_call_detail": "CallDetail",
}

#: Endpoints current firmware answers at ``openapi/v2.0`` (``resources/_profile.py`` routes
#: them): endpoint -> (v2.0 answer, v2.0 item type or None). ``v2.`` names are the hand-written
#: rows of another shape (``resources/_v2.py``); the others are declared here as a subclass of
#: the v1.0 answer (same shape, ``api_version`` "2.0").
V2_ANSWERS: dict[str, tuple[str, str | None]] = {
    "cdr/list": ("v2.CdrPageV2", "v2.CdrV2"),
    # merge_history=True answers both versions' rows at once (resources/_history.py).
    "cdr/search": ("v2.CdrPageV2 | v2.CdrHistory", "v2.CdrV2"),
    "call_report/list": ("CallReportListResponseV2", None),
    "call_report/detail": ("CallReportDetailResponseV2", None),
}
#: Endpoints only at ``openapi/v2.0`` -> their answer (from ``resources/_v2.py``).
V2_ONLY_ANSWERS = {"cdr/detail": "v2.CdrDetailResponse"}
#: Where each versioned endpoint moved (resources/_profile.py, _firmware.py FEATURES).
V2_FIRMWARE = {
    "cdr": "83.23.0.123 (Software), 37.23.0.123 (Appliance), 84.23.0.123 (Cloud)",
    "call_report": "83.21.0.117 (Software), 37.21.0.117 (Appliance), 84.21.0.117 (Cloud)",
}
#: Parameters the client handles itself (never sent): endpoint -> [(name, type, doc)].
LOCAL_PARAMS: dict[str, list[tuple[str, str, str]]] = {
    "cdr/search": [
        (
            "merge_history",
            "bool = False",
            "Where the PBX serves CDRs at openapi/v2.0, also query openapi/v1.0 (the history "
            "from before the upgrade) and return both in one CdrHistory (v1.0 rows first; "
            "every v2.0 page is fetched). Filters must be ones both versions take.",
        )
    ],
}

#: Structs holding a secret the PBX hands out (the webhook signing key, an extension's
#: password): their repr shows ``***`` instead. (group, class) -> fields.
SECRET_FIELDS = {
    ("webhook", "WebhookEntry"): ("secret",),
    ("webhook", "WebhookEntryParam"): ("secret",),
    ("extension", "ExtensionGetpasswordResponse"): ("password",),
}


def mask_secrets(group: str, text: str) -> str:
    """Give each :data:`SECRET_FIELDS` class of the module a ``__repr__`` that masks them."""
    lines = text.split("\n")
    for (owner, name), fields in SECRET_FIELDS.items():
        if owner != group:
            continue
        start = next(i for i, line in enumerate(lines) if line.startswith(f"class {name}("))
        # The class body ends before the next line at column 0 (blank lines excluded).
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i] and not lines[i][0].isspace()),
            len(lines),
        )
        while not lines[end - 1].strip():
            end -= 1
        method = [
            "",
            "    def __repr__(self) -> str:",
            f"        return api.masked_repr(self, {json.dumps(list(fields))})",
        ]
        lines[end:end] = method
    return "\n".join(lines)


#: Names of dedicated response classes where the default would mislead.
RESPONSE_CLASS_NAMES = {"call/dial": "CallIdResponse"}

#: String parameters the manual's request examples send as JSON arrays (queue/create example,
#: manual line 12497): a list is accepted and sent as an array.
PARAMS_ALSO_LIST = {
    ("queue", "empty_defined_for_leave_empty"),
    ("queue", "empty_defined_for_disallow_to_join_when_empty"),
}

#: Notes the manual writes in prose, added to a parameter's description.
#: Parameters sent under a second name too, where the manual spells one parameter two ways
#: and which one a firmware reads is unconfirmed: endpoint -> {parameter: other wire name}.
#: The tables spell is_paused, both request examples is_pause (manual lines 13263, 13365).
WIRE_COPIES = {
    "queue/agent_login": {"is_paused": "is_pause"},
    "agent/login": {"is_paused": "is_pause"},
}

PARAM_NOTES = {
    ("extension/create", "organization_list"): (
        "Required when department management is enabled on the PBX."
    ),
    ("call/transfer", "number"): (
        "Required for a blind transfer and to start an attended one (checked at call time)."
    ),
    ("call/transfer", "dial_permission"): (
        "The manual asks for it on a blind transfer or when starting an attended one."
    ),
    ("call/transfer", "channel_id"): (
        "Blind: the party being transferred; attended: the party performing the transfer."
    ),
    ("queue/agent_login", "is_paused"): (
        "Sent as is_paused and as is_pause, the manual's two spellings (lines 13236, 13263)."
    ),
    ("agent/login", "is_paused"): (
        "Sent as is_paused and as is_pause, the manual's two spellings (lines 13352, 13365)."
    ),
}

#: Parameters sent as one comma-separated string although their tables do not say so: the
#: trunk/create example sends "codec_sel": "ulaw,alaw,g729" (manual line 5850).
COMMA_PARAMS = {("trunk", "codec_sel")}

#: The queue callback report's type is spelled queuecallbackactivity by call_report/list and
#: queuecallbacksactivity by call_report/download (manual lines 14082, 14728): both endpoints
#: accept both spellings (one enumeration, one rule set); the caller picks.
REPORT_TYPE_SPELLINGS = ("queuecallbackactivity", "queuecallbacksactivity")

#: Enumerations the manual lists incompletely: (endpoint, parameter) -> extra values.
EXTRA_ENUM_VALUES = {
    ("call_report/list", "type"): ["queuecallbacksactivity"],
    ("call_report/download", "type"): ["queuecallbackactivity"],
    # inbound_route/create's did_option table omits the value its own did_pattern_to_ext_list
    # description and inbound_route/update list (manual lines 8330, 8471).
    ("inbound_route/create", "did_option"): ["pattern_to_ext_list"],
}

#: Report types grouped by the parameter they require, declared once: the enumeration of all
#: report types includes each group, and the rule names it (``equals=get_args(...)``) instead of
#: listing its values again. (group, required parameter) -> (alias, what it is).
RULE_VALUE_ALIASES = {
    ("call_report", "queue_id"): (
        "QueueReportType",
        "Report types about one queue (they require ``queue_id``).",
    ),
    ("call_report", "queue_id_list"): (
        "QueuesReportType",
        "Report types about several queues (they require ``queue_id_list``).",
    ),
}

#: The destination types most destination parameters accept (extension forwarding, IVR keys,
#: inbound routes, queue failover): ``_shared.Destination``; an enumeration of all of them (and
#: maybe more) is written as ``Destination`` (``| Literal[<the others>]``).
DESTINATIONS = (
    "extension",
    "ext_vm",
    "ivr",
    "ring_group",
    "queue",
    "group_vm",
    "external_num",
    "play_greeting",
    "end_call",
)

#: Names of enumeration aliases shared by several parameters: (group, parameter) -> name.
ALIAS_NAMES = {
    ("ivr", "press{x}_dest"): "IvrDestination",
    ("extension", "in_always_forward_dest"): "ExtensionForwardDestination",
    ("queue", "fail_dest"): "QueueDestination",
    ("inbound_route", "def_dest"): "InboundRouteDestination",
    ("queue", "press_key"): "QueueKey",
}

#: Parameter sets shared by several endpoints besides create/update pairs -> TypedDict name.
SHARED_SETS = {
    ("call_report/list", "call_report/download"): "CallReportFilters",
    ("cdr/search", "cdr/download"): "CdrFilters",
    ("uacsta_call/accept", "uacsta_call/refuse", "uacsta_call/hangup"): "UacstaCallTarget",
}

#: Parameter lists (Python name, type, required) declared in one line by a factory of _base.
ONE_LINE_SHAPES = {
    (): "no_params",
    (("id", "int", True),): "by_id",
    (("ids", "str | Sequence[int]", True),): "by_ids",
    (("channel_id", "str", True),): "by_channel",
}

#: The HTTP method each one-line factory declares (the others get a full declaration).
ONE_LINE_METHODS = {"no_params": "GET", "by_id": "GET", "by_ids": "GET", "by_channel": "POST"}

#: Parameters of one-line declarations the resource class documents (``id_doc``, ``ids_doc``).
CLASS_DOCUMENTED = ("id", "ids")

#: Time-valued parameters and the Python types accepted besides the string.
TIME_PARAMS = {
    "start_time": "datetime",
    "end_time": "datetime",
    "detail_time_begin": "datetime",
    "detail_time_end": "datetime",
    "alarm_time": "time",
}
#: call_report's ``time`` is a date (hourly report of one day; see its docstring).
DATE_PARAMS = {("call_report", "time")}

#: Added to the description of every ``datetime`` parameter.
DATETIME_NOTE = (
    "In the PBX's date/time display format: a datetime is formatted with the client's "
    "datetime_format. The PBX reads times in its own time zone: a timezone-aware datetime is "
    "converted to the client's timezone= when given, else sent as its own wall-clock time."
)
#: Added to the description of the date parameters (manual line 14095).
DATE_NOTE = (
    "In the PBX's date display format (manual line 14095). A date is sent as the date part of "
    "the client's datetime_format (default MM/DD/YYYY, e.g. 03/05/2024) and asks for the hourly "
    "report of that day; a datetime is sent as its date part only, without its time. For the "
    'daily report of a month or the monthly report of a year give a string: "YYYY/MM" or '
    '"YYYY" (e.g. "2024/03", "2024") on a PBX that displays dates as YYYY/MM/DD, the manual\'s '
    "example; the same order as the PBX's date display format otherwise."
)

MODULE_DOCS = {
    "cdr": (
        "Time filters: the PBX compares ``start_time``/``end_time`` in its display format "
        "(System > Date and Time > Display Format) and returns nothing for any other "
        "(manual line 13882); pass :class:`~datetime.datetime` objects to have them formatted "
        "with the client's ``datetime_format`` (default ``MM/DD/YYYY HH:mm:ss``). Times are "
        "the PBX's wall-clock times: a timezone-aware datetime is converted to the client's "
        "``timezone`` when given, else sent as its own wall-clock time."
    ),
    "call_report": (
        "Time filters: ``start_time``/``end_time`` follow the PBX's date/time display format "
        "(pass :class:`~datetime.datetime` objects to have them formatted with the client's "
        "``datetime_format``; a timezone-aware one is converted to the client's ``timezone`` "
        "when given, else sent as its own wall-clock time). ``time`` selects the period of "
        "hourly/daily/monthly reports: "
        "``YYYY/MM/DD`` (one day, hourly), ``YYYY/MM`` (one month, daily) or ``YYYY`` (one "
        "year, monthly) in the PBX's date order. A :class:`~datetime.date` is sent as the date "
        "part of ``datetime_format`` (hourly report of that day), a "
        ":class:`~datetime.datetime` as its date part only; give a string for a month or a "
        'year (``"2024/03"``, ``"2024"``). Which parameters are required depends on '
        "``type`` (checked at call time; one ``ValueError`` names every missing one)."
    ),
    "recording": (
        "A call's recording is often not ready yet when its 30012 (new CDR) event arrives: "
        "retry ``recording.download`` or use ``Downloader.save(..., retries=...)``."
    ),
    "call": (
        "Call control. ``call.query`` returns the member shapes of the events "
        "(:class:`~yeastar_async.events.CallMember`)."
    ),
}

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

ARRAY = re.compile(r"^Array<(.+)>$")
OBJECT = re.compile(r"^Object<(.+)>$")
#: "required when <param> is <value>" in a description ("此参数在 X 为 Y 时必填", "当 X 取值为 Y
#: 时，此参数必填"); the same sentence must say 必填 (required), or it is some other condition.
PROSE_RULE = re.compile(
    r"(?:在|当)\s*([a-z_]+)\s*(?:设置为|取值为|为)\s*([a-z_0-9]+)\s*时[^。]*必填"
)


def cite(line: int | None, url: str | None = None) -> str:
    """Where a declaration comes from: ``manual line N``, or the current vendor page's URL."""
    return f"manual line {line}" if line is not None else f"source: {url}"


def ref(item: dict[str, Any]) -> int | str:
    """The ``line`` argument of a one-line declaration: the manual line, else the page URL."""
    line = item.get("manual_line")
    return int(line) if line is not None else str(item["source_url"])


def _order(where: int | str) -> tuple[int, int | str]:
    # Manual tables first, by line; then tables of the current pages.
    return (0, where) if isinstance(where, int) else (1, where)


def cite_ref(where: int | str) -> str:
    """:func:`cite` of a :func:`ref` value."""
    return f"manual line {where}" if isinstance(where, int) else f"source: {where}"


def camel(name: str) -> str:
    """``Ext_Basicinfo`` -> ``ExtBasicinfo``; ``ext_call_list`` -> ``ExtCallList``."""
    if name in RENAME_TYPES:
        return RENAME_TYPES[name]
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[_\s]+", name) if part)


def canon(group: str, table: str) -> str:
    """The table that declares ``table`` (itself, or the one it is merged into)."""
    return MERGE_TABLES.get((group, table), table)


def key_doc(name: str, template: str | None, doc: str) -> str:
    """The doc of one field a per-key template stands for, its key named: ``press5_dest`` of
    ``press{x}_dest`` "Destination type of key x (x = 0-9)." -> "Destination type of key 5."."""
    if template and "~" in template:  # reason_partya~reason_partyf: one letter each
        m = re.match(r"Parts used to build (the [\w ]+? text)", doc)
        return f"Part {name[-1]} of {m.group(1)}." if m else doc
    pattern = re.escape(template or "").replace(r"\{x\}", "(.+)")
    m = re.fullmatch(pattern, name) if "(.+)" in pattern else None
    if m is None:
        return doc
    key = m.group(1)
    doc = re.sub(r"\bpressx_", f"press{key}_", doc.replace(" (x = 0-9)", ""))
    return re.sub(r"\bx\b", key, doc)


def attribute(declaration: str, doc: str | None) -> list[str]:
    """A field's declaration line and, when there is a ``doc``, its attribute docstring."""
    if not doc:
        return [declaration]
    indent = declaration[: len(declaration) - len(declaration.lstrip())]
    lines = wrap(doc, indent, '"""', hang=False)
    lines[-1] += '"""'
    return [declaration, *lines]


def close_docstring(lines: list[str], indent: str = "    ") -> list[str]:
    """``lines`` of a docstring, closed: on its line when it is one line, else below."""
    if len(lines) == 1:
        return [lines[0] + '"""']
    return [*lines, indent + '"""']


def doc_lines(entries: Iterable[tuple[str, str | None, str]], indent: str) -> list[str]:
    """``name: doc`` docstring lines; per-key templates (``press{x}_dest``) documented once."""
    out: list[str] = []
    seen: set[str] = set()
    for name, template, doc in entries:
        label = name
        if template:
            if template in seen:
                continue
            seen.add(template)
            label = f"{template} (x = 0-9)" if "{" in template else template.replace("~", " ... ")
        out += wrap(doc, indent, f"{label}: ")
    return out


RULE = re.compile(r'(requires|exactly_one)\((.*?)(?:, when="(\w+)", equals=(.+))?\)')


def rule_text(expr: str) -> str:
    """A rule expression of a declaration in words, for its docstring."""
    m = RULE.fullmatch(expr)
    assert m, expr
    kind, names, trigger, equals = m.groups()
    listed = ", ".join(f"``{n}``" for n in re.findall(r'"(\w+)"', names))
    text = f"exactly one of {listed}" if kind == "exactly_one" else f"{listed} required"
    if trigger:
        values = re.findall(r'"([^"]+)"|\b(\d+)\b', equals)
        shown = " or ".join(f"``{a or b}``" for a, b in values)
        text += f" when ``{trigger}`` is {shown}"
    return text


def py_name(name: str) -> str:
    """A Python identifier for a manual name (keywords get a trailing underscore)."""
    return f"{name}_" if keyword.iskeyword(name) else name


def expand(name: str, template: dict[str, Any] | None) -> list[str]:
    """Template names (``press{x}_dest``) spelled out; other names as they are."""
    if template:
        ph = "{" + template["placeholder"] + "}"
        return [name.replace(ph, v) for v in template["values"]]
    m = re.fullmatch(r"(\w+?)([a-z])~\1([a-z])", name)
    if m:  # "reason_partya~reason_partyf" stands for six fields
        return [m.group(1) + chr(c) for c in range(ord(m.group(2)), ord(m.group(3)) + 1)]
    return [name]


def doc_text(text: str) -> str:
    return " ".join(text.replace("\\", "\\\\").replace('"""', "'''").split())


def wrap(text: str, indent: str, first: str = "", width: int = 96, hang: bool = True) -> list[str]:
    """Docstring lines; ``hang`` indents continuation lines (for ``name: text`` entries)."""
    return textwrap.wrap(
        first + doc_text(text),
        width=width,
        initial_indent=indent,
        subsequent_indent=indent + ("    " if hang else ""),
        break_long_words=False,
        break_on_hyphens=False,
    )


def literal(values: Iterable[str], as_int: bool) -> str:
    items = [str(int(v)) if as_int else json.dumps(v) for v in values]
    return f"Literal[{', '.join(items)}]"


# ---------------------------------------------------------------------------------------------
# module model
# ---------------------------------------------------------------------------------------------


@dataclass
class NestedType:
    """One nested table (request or response) of a module, merged over its endpoints."""

    table: str
    name: str
    first_line: int | str  # the manual line, or the URL of the current page
    endpoints: list[str] = field(default_factory=list)
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)  # manual name -> info


@dataclass
class ParamPlan:
    """One parameter as declared: wire name, Python name, type, requiredness, doc."""

    name: str
    py: str
    typ: str
    required: bool
    joined: bool
    doc: str
    template: str | None = None


@dataclass
class SharedSet:
    """A parameter set several endpoints take as ``**kwargs: Unpack[<name>]``."""

    name: str
    base: str | None
    params: list[ParamPlan]
    external: bool = False
    endpoints: list[str] = field(default_factory=list)


@dataclass
class EndpointPlan:
    ep: dict[str, Any]
    rules: list[str]
    ret: str
    items_field: str | None
    item_type: str | None
    params: list[ParamPlan] = field(default_factory=list)
    shared: SharedSet | None = None
    var_keyword: str = "options"
    same_as: tuple[str, dict[str, str]] | None = None


@dataclass
class Base:
    """The struct a response struct extends: its name, fields and their descriptions."""

    name: str
    fields: list[str]
    docs: dict[str, str]


@dataclass
class Module:
    group: str
    endpoints: list[dict[str, Any]]
    imports_base: set[str] = field(default_factory=set)
    imports_typing: set[str] = field(default_factory=set)
    imports_abc: set[str] = field(default_factory=set)
    imports_datetime: set[str] = field(default_factory=set)
    imports_external: set[str] = field(default_factory=set)
    uses_msgspec: bool = False
    uses_api_response: bool = False
    uses_v2: bool = False
    aliases: dict[tuple[str, ...], tuple[str, str]] = field(default_factory=dict)
    alias_names: set[str] = field(default_factory=set)
    response_types: dict[str, NestedType] = field(default_factory=dict)
    request_types: dict[str, NestedType] = field(default_factory=dict)
    response_classes: list[tuple[str, str, list[str]]] = field(default_factory=list)
    response_class_keys: dict[str, str] = field(default_factory=dict)
    shared_sets: list[SharedSet] = field(default_factory=list)
    page_sets: dict[Any, SharedSet] = field(default_factory=dict)
    rule_constants: dict[str, str] = field(default_factory=dict)
    rule_first: dict[str, str] = field(default_factory=dict)
    #: Base structs of fields several response structs share: (class, docstring title).
    base_structs: list[tuple[NestedType, str]] = field(default_factory=list)
    #: Docstring paragraphs of one-line declarations -> module constant name.
    note_constants: dict[str, str] = field(default_factory=dict)
    #: Shared parameter sets some full declaration takes as ``**kwargs: Unpack[...]``.
    unpacked: set[str] = field(default_factory=set)
    #: Names imported from _shared.py besides the structs (``Destination``).
    imports_shared: set[str] = field(default_factory=set)
    #: Parameter docs the resource class gives its one-line declarations (``id_doc`` ...).
    class_docs: dict[str, str] = field(default_factory=dict)
    #: Page types (``[R, I, S](options)``) several list/search declarations share -> the
    #: name of their :class:`Pages` in the resource class.
    pages: dict[str, str] = field(default_factory=dict)
    #: Rule constants as written when they name a :data:`RULE_VALUE_ALIASES` group.
    rule_text_out: dict[str, str] = field(default_factory=dict)


class Generator:
    def __init__(self, catalog: list[dict[str, Any]], v2: Iterable[dict[str, Any]] = ()) -> None:
        self.catalog = [e for e in catalog if e["id"] not in AUTH_ENDPOINTS]
        #: The openapi/v2.0 entries of endpoints the manual has, by id (their extra parameters).
        self.v2 = {e["id"]: e for e in v2}
        groups: dict[str, list[dict[str, Any]]] = {}
        for ep in self.catalog:
            groups.setdefault(ep["id"].split("/", 1)[0], []).append(ep)
        self.modules = [Module(g, eps) for g, eps in groups.items()]
        #: Field lines of each nested response struct: (group, class name) -> lines.
        self.struct_keys: dict[tuple[str, str], tuple[str, ...]] = {}
        #: (field name, declaration line, description) of each struct, in order.
        self.struct_fields: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
        #: Structs declared once in _shared.py: field lines -> (class name, rendered class).
        self.shared_structs: dict[tuple[str, ...], tuple[str, str]] = {}
        #: Request structs: (group, class name) -> field lines.
        self.request_keys: dict[tuple[str, str], tuple[str, ...]] = {}
        #: Request structs declared once in _shared.py: class name -> rendered class.
        self.shared_requests: dict[str, str] = {}
        #: (field name, declaration line, description) of each struct of _shared.py.
        self.shared_rows: dict[str, list[tuple[str, str, str]]] = {}

    # -- response types ------------------------------------------------------------------------

    def collect_response_types(self, mod: Module) -> None:
        """Merge each nested response table over the module's endpoints.

        A field that refers to table X in one endpoint and Y in another (the manual renames
        tables between get and query) unifies X and Y into one class.
        """
        alias: dict[str, str] = {}

        def find(name: str) -> str:
            while name in alias:
                name = alias[name]
            return name

        tables: dict[str, NestedType] = {}
        for ep in mod.endpoints:
            if ep["id"] in V2_ONLY_ANSWERS:
                continue  # answered with the hand-written rows of resources/_v2.py
            for table, fields in ep["response"].get("nested", {}).items():
                if (mod.group, table) in EXTERNAL_TYPES:
                    continue
                key = find(canon(mod.group, table))
                nt = tables.setdefault(key, NestedType(key, camel(key), ref(fields[0])))
                if ep["id"] not in nt.endpoints:
                    nt.endpoints.append(ep["id"])
                for f in fields:
                    template = f["name"] if f.get("name_template") or "~" in f["name"] else None
                    for name in expand(f["name"], f.get("name_template")):
                        info = nt.fields.setdefault(
                            name,
                            {
                                "types": [],
                                "desc": f["desc_en"],
                                "line": ref(f),
                                "template": template,
                            },
                        )
                        typ = f["type"]
                        m = ARRAY.match(typ) or OBJECT.match(typ)
                        if m and (mod.group, m.group(1)) in MERGE_TABLES:
                            target = canon(mod.group, m.group(1))
                            typ = typ.replace(m.group(1), target)
                        if typ not in info["types"]:
                            info["types"].append(typ)
        # Unify tables referenced from the same field.
        changed = True
        while changed:
            changed = False
            for nt in list(tables.values()):
                for info in nt.fields.values():
                    refs = {
                        find(canon(mod.group, m.group(1)))
                        for t in info["types"]
                        for m in [ARRAY.match(t) or OBJECT.match(t)]
                        if m
                        and m.group(1) not in ("String", "Integer")
                        and (mod.group, m.group(1)) not in EXTERNAL_TYPES
                    }
                    if len(refs) > 1:
                        keep, *others = sorted(refs, key=lambda r: _order(tables[r].first_line))
                        for other in others:
                            alias[other] = keep
                            merged = tables.pop(other)
                            for name, finfo in merged.fields.items():
                                kept = tables[keep].fields.setdefault(name, finfo)
                                for t in finfo["types"]:
                                    if t not in kept["types"]:
                                        kept["types"].append(t)
                        changed = True
                        break
                if changed:
                    break
        for (group, table, name), types in RESPONSE_EXTRA_TYPES.items():
            if group == mod.group and table in tables:
                tables[table].fields[name]["types"] += types
        for (group, table), extras in EXTRA_RESPONSE_FIELDS.items():
            if group == mod.group and table in tables:
                for name, typ, desc in extras:
                    tables[table].fields.setdefault(
                        name,
                        {"types": [typ], "desc": desc, "line": tables[table].first_line},
                    )
        self._alias = alias
        self._find = find
        mod.response_types = tables

    def ref_name(self, mod: Module, table: str) -> str:
        if (mod.group, table) in EXTERNAL_TYPES:
            name = EXTERNAL_TYPES[(mod.group, table)]
            mod.imports_external.add(name)
            return name
        return mod.response_types[self._find(canon(mod.group, table))].name

    def response_field_type(self, mod: Module, types: list[str]) -> str:
        """Type expression with default of a response field seen with ``types``."""
        scalars: list[str] = []
        structs: list[str] = []
        lists: list[str] = []
        for t in types:
            if t == "String":
                scalars.append("str")
            elif t == "Integer":
                # Bounded: an answer's integer beyond int64 is a decode error (issue 11, point 8).
                mod.imports_base.add("Int64")
                scalars.append("Int64")
            elif t == "number":
                scalars.append("float")
            elif t == "Object":
                mod.imports_typing.add("Any")
                scalars.append("dict[str, Any]")
            elif m := ARRAY.match(t):
                inner = m.group(1)
                if inner in ("String", "Integer"):
                    if inner == "Integer":
                        mod.imports_base.add("Int64")
                    lists.append({"String": "str", "Integer": "Int64"}[inner])
                else:
                    lists.append(self.ref_name(mod, inner))
            elif m := OBJECT.match(t):
                structs.append(self.ref_name(mod, m.group(1)))
            else:
                raise ValueError(f"unknown type {t!r}")
        scalars = list(dict.fromkeys(scalars))
        lists = list(dict.fromkeys(lists))
        structs = list(dict.fromkeys(structs))
        if lists and not scalars and not structs and len(lists) == 1:
            return f"list[{lists[0]}] = []"
        parts = [f"list[{x}]" for x in lists] + structs + scalars
        return f"{' | '.join(parts)} | None = None"

    def render_nested_response(
        self,
        mod: Module,
        nt: NestedType,
        base: Base | None = None,
        title: str | None = None,
    ) -> str:
        """One response struct; with a ``base`` it extends that class and declares only the
        other fields; ``title`` replaces the docstring's first line."""
        mod.uses_msgspec = True
        where = ", ".join(f"``{e}``" for e in nt.endpoints)
        full = base is None and title is None
        inherited = set(base.fields) if base else set()
        fields = {n: i for n, i in nt.fields.items() if n not in inherited}
        # Inherited fields the base describes otherwise are described here too.
        redescribed = {
            n: i
            for n, i in nt.fields.items()
            if base and n in inherited and base.docs[n] != i["desc"]
        }
        parent = base.name if base else "msgspec.Struct"
        lines = [f"class {nt.name}({parent}, kw_only=True):"]
        title = title or f"``{nt.table}`` of {where} ({cite_ref(nt.first_line)})."
        doc = wrap(title, "    ", '"""', hang=False)
        if base:
            doc.append("")
            doc += wrap(f"Also the fields of :class:`{base.name}`.", "    ", hang=False)
        lines += [*close_docstring(doc), ""]
        body: list[str] = []
        overrides = {
            f: t
            for (g, tb, f), t in RESPONSE_FIELD_TYPES.items()
            if g == mod.group and tb == nt.table
        }
        described = []
        # An inherited field described otherwise here is declared again, with its own doc.
        for name, info in nt.fields.items():
            if name not in fields and name not in redescribed:
                continue
            typ = overrides.get(name) or self.response_field_type(mod, info["types"])
            if base and base.name in self.shared_rows and typ.endswith(" = []"):
                # ruff cannot see that an imported base is a msgspec Struct (RUF012).
                typ = typ[: -len("[]")] + "msgspec.field(default_factory=list)"
            declaration = self.field_line(mod, name, typ)
            body.append(declaration)
            lines += attribute(declaration, key_doc(name, info.get("template"), info["desc"]))
            described.append((name, declaration, info["desc"]))
        if full:
            self.struct_keys[(mod.group, nt.name)] = tuple(body)
            self.struct_fields[(mod.group, nt.name)] = described
        return "\n".join(lines) + "\n"

    def plan_bases(self, mod: Module, structs: list[NestedType]) -> dict[str, Base]:
        """Fields (same name, same declaration) several response structs share are declared
        once, in a struct the others extend (kw_only: field order does not matter):

        1. a struct with every field of another (of the module, or of ``_shared.py``) extends
           it: the details of an item extend its list entry;
        2. then, largest overlap first, two structs without a base that share at least
           :data:`MIN_SHARED_FIELDS` fields, described alike, both extend a private
           ``_<Name>Fields`` struct of those (added to ``mod.base_structs``), which may in
           turn share fields with another struct and so extend a base of its own.

        Returns struct name -> :class:`Base`.
        """
        rows = {nt.name: self.struct_fields[(mod.group, nt.name)] for nt in structs}
        for name, _text in self.shared_structs.values():
            if name not in rows and name in self.shared_rows:
                rows[name] = self.shared_rows[name]
        decls = {name: {(f, line) for f, line, _ in row} for name, row in rows.items()}
        docs = {name: {f: d for f, _, d in row} for name, row in rows.items()}
        bases: dict[str, Base] = {}
        for nt in structs:
            found = [
                other
                for other in rows
                if len(decls[other]) >= MIN_BASE_FIELDS and decls[other] < decls[nt.name]
            ]
            if found:
                other = max(found, key=lambda o: len(decls[o]))
                bases[nt.name] = Base(other, [f for f, _, _ in rows[other]], docs[other])
        nodes = {nt.name: nt for nt in structs}
        roots = [nt.name for nt in structs if nt.name not in bases]
        # From here, a field is shared only when described alike too: a base documents it once.
        alike = {name: set(row) for name, row in rows.items()}
        made: list[NestedType] = []
        while True:
            pairs = [
                (len(alike[a] & alike[b]), a, b)
                for i, a in enumerate(roots)
                for b in roots[i + 1 :]
                if len(alike[a] & alike[b]) >= MIN_SHARED_FIELDS
            ]
            if not pairs:
                break
            _length, a, b = max(pairs, key=lambda p: p[0])
            common = alike[a] & alike[b]
            users = [r for r in roots if common <= alike[r]]
            names = [row[0] for row in rows[a] if row in common]
            base_name = (
                next(u for u in users if alike[u] == common)
                if any(alike[u] == common for u in users)
                else self.base_name(nodes, bases, users, {n.name for n in made})
            )
            if base_name not in nodes:
                first = nodes[a]
                fields = {n: first.fields[n] for n in names}
                nodes[base_name] = NestedType(first.table, base_name, first.first_line, [], fields)
                made.append(nodes[base_name])
                rows[base_name] = [row for row in rows[a] if row in common]
                alike[base_name], docs[base_name] = common, docs[a]
                roots.append(base_name)
            for user in users:
                if user != base_name:
                    bases[user] = Base(base_name, names, docs[a])
                    roots.remove(user)
        for base in made:
            shown = ", ".join(f":class:`{u}`" for u in self.users_of(base.name, nodes, bases))
            mod.base_structs.append((base, f"Fields shared by {shown}."))
        return bases

    @staticmethod
    def users_of(name: str, nodes: dict[str, NestedType], bases: dict[str, Base]) -> list[str]:
        """The public structs that extend ``name``, directly or through other bases."""
        out = []
        for other in nodes:
            parent = bases.get(other)
            while parent is not None and parent.name != name:
                parent = bases.get(parent.name)
            if parent is not None and not other.startswith("_"):
                out.append(other)
        return out

    @staticmethod
    def base_name(
        nodes: dict[str, NestedType], bases: dict[str, Base], users: list[str], taken: set[str]
    ) -> str:
        """``_<Name>Fields``, after the first public struct among ``users`` and what extends
        them whose name is not taken yet."""
        public = [u for u in users if not u.startswith("_")]
        public += [o for u in users for o in Generator.users_of(u, nodes, bases)]
        return next(f"_{u}Fields" for u in public if f"_{u}Fields" not in taken)

    def field_line(self, mod: Module, name: str, typ: str) -> str:
        attr = py_name(name)
        if attr != name:
            mod.uses_msgspec = True
            annotation, default = typ.split(" = ")
            return f'    {attr}: {annotation} = msgspec.field(default={default}, name="{name}")'
        return f"    {attr}: {typ}"

    def response_of(self, mod: Module, ep: dict[str, Any]) -> tuple[str, str | None, str | None]:
        """(return type expression, items field, item type) of an endpoint."""
        fields = [f for f in ep["response"]["fields"] if f["name"] not in ("errcode", "errmsg")]
        shape = {f["name"]: f["type"] for f in fields}
        paginated = ep["paginated"] or ep["id"] in PAGINATED_WITHOUT_TOTAL

        def item(t: str) -> str:
            m = ARRAY.match(t)
            assert m, t
            return self.ref_name(mod, m.group(1))

        if not fields:
            mod.uses_api_response = True
            return "ApiResponse", None, None
        if shape == {"id": "Integer"}:
            mod.imports_base.add("CreatedResponse")
            return "CreatedResponse", None, None
        if set(shape) == {"file", "download_resource_url"}:
            mod.imports_base.add("DownloadResponse")
            return "DownloadResponse", None, None
        data = shape.get("data", "")
        if ep["id"] in DATA_OBJECT_OR_LIST:
            inner = (ARRAY.match(data) or OBJECT.match(data)).group(1)  # type: ignore[union-attr]
            mod.imports_base.add("ObjectOrListResponse")
            return f"ObjectOrListResponse[{self.ref_name(mod, inner)}]", None, None
        if set(shape) == {"data"} and OBJECT.match(data):
            mod.imports_base.add("ObjectResponse")
            return f"ObjectResponse[{self.ref_name(mod, OBJECT.match(data).group(1))}]", None, None  # type: ignore[union-attr]
        if set(shape) == {"data"} and ARRAY.match(data):
            mod.imports_base.add("ListResponse")
            x = item(data)
            return f"ListResponse[{x}]", ("data" if paginated else None), x
        if set(shape) == {"data", "total_number"} and ARRAY.match(data):
            mod.imports_base.add("PageResponse")
            x = item(data)
            return f"PageResponse[{x}]", ("data" if paginated else None), x
        # A dedicated class, shared by endpoints of identical shape.
        key = json.dumps(sorted(shape.items()))
        items_field = None
        item_type = None
        if paginated:
            items_field = next(f["name"] for f in fields if ARRAY.match(f["type"]))
            item_type = item(shape[items_field])
        if key in mod.response_class_keys:
            return mod.response_class_keys[key], items_field, item_type
        action = ep["id"].split("/", 1)[1]
        name = RESPONSE_CLASS_NAMES.get(ep["id"]) or f"{camel(mod.group)}{camel(action)}Response"
        mod.response_class_keys[key] = name
        parent = "ApiResponse"
        title = f"Answer of ``{ep['id']}`` ({cite(ep['manual_line'], ep.get('source_url'))})"
        if shape.get("total_number") == "Integer" and ARRAY.match(shape.get("data", "")):
            # A page (data, total_number) and more: declared as such, with only the rest.
            mod.imports_base.add("PageResponse")
            page_item = item(shape["data"])
            parent = f"PageResponse[{page_item}]"
            title += f": a page of :class:`{page_item}` (``data``, ``total_number``)"
            fields = [f for f in fields if f["name"] not in ("data", "total_number")]
        else:
            mod.uses_api_response = True
        lines = [f"class {name}({parent}, kw_only=True):"]
        lines += [*close_docstring(wrap(title + ".", "    ", '"""', hang=False)), ""]
        for f in fields:
            typ = self.response_field_type(mod, [f["type"]])
            if typ.endswith(" = []"):
                # ruff cannot see that ApiResponse is a msgspec Struct (RUF012).
                mod.uses_msgspec = True
                typ = typ[: -len("[]")] + "msgspec.field(default_factory=list)"
            lines += attribute(self.field_line(mod, f["name"], typ), f["desc_en"])
        mod.response_classes.append((name, ep["id"], lines))
        return name, items_field, item_type

    # -- request types -------------------------------------------------------------------------

    def collect_request_types(self, mod: Module) -> None:
        tables: dict[str, NestedType] = {}
        for ep in mod.endpoints:
            for original, fields in ep["nested_request_types"].items():
                table = canon(mod.group, original)
                nt = tables.setdefault(
                    table, NestedType(table, camel(table) + "Param", ref(fields[0]))
                )
                if ep["id"] not in nt.endpoints:
                    nt.endpoints.append(ep["id"])
                present = set()
                for f in fields:
                    if (mod.group, table, f["name"]) in DROP_REQUEST_FIELDS:
                        continue
                    name = RENAME_REQUEST_FIELDS.get((mod.group, table, f["name"]), f["name"])
                    present.add(name)
                    info = nt.fields.get(name)
                    if info is None:
                        nt.fields[name] = {
                            **f,
                            "name": name,
                            "required": bool(f["required"]) and len(nt.endpoints) == 1,
                        }
                    else:
                        info["required"] = info["required"] and bool(f["required"])
                # Required only when every endpoint's table requires it.
                for name, info in nt.fields.items():
                    if name not in present:
                        info["required"] = False
        mod.request_types = tables

    def param_type(self, mod: Module, ep: dict[str, Any], p: dict[str, Any]) -> tuple[str, bool]:
        """(type expression without None, whether list values are comma-joined in a body)."""
        t = p["type"]
        enum = p.get("enum") or []
        comma = "comma-separated list" in (p.get("hints") or []) or (
            (mod.group, p["name"]) in COMMA_PARAMS
        )
        name = p["name"]
        if name in TIME_PARAMS:
            kind = TIME_PARAMS[name]
            mod.imports_datetime.add(kind)
            return f"str | {kind}", False
        if (mod.group, name) in DATE_PARAMS:
            mod.imports_datetime.add("date")
            return "str | date", False
        if m := (ARRAY.match(t) or OBJECT.match(t)):
            inner = m.group(1)
            mod.imports_abc.add("Sequence")
            if inner == "Integer":
                return "Sequence[int]", False
            if inner == "String":
                return "Sequence[str]", False
            nested = mod.request_types[canon(mod.group, inner)].name
            mod.imports_abc.add("Mapping")
            mod.imports_typing.add("Any")
            # Object<...> here is outbound_route/update's misprint for the arrays every
            # example sends (spec README 13.7).
            return f"Sequence[{nested} | Mapping[str, Any]]", False
        if enum and not p.get("enum_open"):
            as_int = t == "Integer" and all(v.lstrip("-").isdigit() for v in enum)
            if as_int and sorted(enum) == ["0", "1"]:
                mod.imports_base.add("Flag")
                base = "Flag"
            elif name == "order_by" and sorted(enum) == ["asc", "desc"]:
                mod.imports_base.add("OrderBy")
                base = "OrderBy"
            else:
                base = self.enum_alias(mod, ep, p, as_int)
            if comma or (mod.group, name) in PARAMS_ALSO_LIST:
                mod.imports_abc.add("Sequence")
                return f"{base} | Sequence[{base}]", comma
            return base, False
        if comma:
            mod.imports_abc.add("Sequence")
            if t == "Integer":
                return "int | Sequence[int]", False
            if p["in"] == "query" or name.endswith(("ids", "_id_list", "ext_id")):
                return "str | Sequence[int]", False
            return "str | Sequence[str]", True
        return {"String": "str", "Integer": "int", "number": "float"}[t], False

    def enum_alias(self, mod: Module, ep: dict[str, Any], p: dict[str, Any], as_int: bool) -> str:
        values = tuple(p["enum"])
        lit = literal(values, as_int)
        if len(values) <= 3:
            mod.imports_typing.add("Literal")
            return lit
        key = (str(as_int), *values)
        if key in mod.aliases:
            return mod.aliases[key][0]
        # The same values in another order: a second name for the first alias.
        same = next((a for k, a in mod.aliases.items() if set(k) == set(key)), None)
        if same is not None:
            lit = same[0]
        elif not as_int and set(values) >= set(DESTINATIONS):
            rest = [v for v in values if v not in DESTINATIONS]
            mod.imports_shared.add("Destination")
            lit = f"Destination | {literal(rest, False)}" if rest else "Destination"
        template = p.get("template", p["name"])
        base = re.sub(r"\{\w+\}", "", template).replace("__", "_")
        name = ALIAS_NAMES.get((mod.group, template)) or camel(mod.group) + camel(base)
        if name in mod.alias_names:
            name = camel(mod.group) + camel(ep["id"].split("/", 1)[1]) + camel(base)
        mod.alias_names.add(name)
        mod.imports_typing.add("Literal")
        mod.aliases[key] = (name, lit)
        return name

    def render_request_type(self, mod: Module, nt: NestedType) -> str:
        mod.imports_base.add("RequestModel")
        where = ", ".join(f"``{e}``" for e in nt.endpoints)
        lines = [f"class {nt.name}(RequestModel, kw_only=True):"]
        doc = wrap(
            f"``{nt.table}`` parameter of {where} ({cite_ref(nt.first_line)}).",
            "    ",
            '"""',
            hang=False,
        )
        # (RequestModel says that fields left as None are not sent.)
        lines += [*close_docstring(doc), ""]
        body = []
        fake_ep = {"id": nt.endpoints[0]}
        for name, info in nt.fields.items():
            typ, _ = self.param_type(mod, fake_ep, info)
            typ = typ.replace("Mapping[str, Any]", "dict[str, Any]")
            typ = typ.replace("Sequence[", "list[")
            if info["required"]:
                body.append(self.field_line_required(mod, name, typ))
            else:
                body.append(self.field_line(mod, name, f"{typ} | None = None"))
            lines += attribute(body[-1], key_doc(name, info.get("template"), info["desc_en"]))
        self.request_keys[(mod.group, nt.name)] = tuple(body)
        return "\n".join(lines) + "\n"

    def field_line_required(self, mod: Module, name: str, typ: str) -> str:
        attr = py_name(name)
        if attr != name:
            mod.uses_msgspec = True
            return f'    {attr}: {typ} = msgspec.field(name="{name}")'
        return f"    {attr}: {typ}"

    # -- endpoints -----------------------------------------------------------------------------

    def params_of(self, ep: dict[str, Any]) -> list[dict[str, Any]]:
        """Parameters with templates spelled out and the extra spellings added."""
        out: list[dict[str, Any]] = []
        for p in ep["params"]:
            extra_values = EXTRA_ENUM_VALUES.get((ep["id"], p["name"]), [])
            if extra_values:
                p = {**p, "enum": p["enum"] + extra_values}
            for name in expand(p["name"], p.get("name_template")):
                out.append({**p, "name": name, "template": p["name"]})
                for extra, copy_of, note in EXTRA_PARAMS.get(ep["id"], []):
                    if copy_of == name:
                        out.append({**p, "name": extra, "desc_en": f"{p['desc_en']} {note}"})
        # An extra parameter is listed right after its model; keep declaration order stable.
        seen: set[str] = set()
        unique = []
        for p in out:
            if p["name"] not in seen:
                seen.add(p["name"])
                unique.append(p)
        return unique

    def rules_of(
        self, ep: dict[str, Any], params: list[dict[str, Any]]
    ) -> tuple[list[str], set[str]]:
        """Rule expressions of an endpoint and the parameters they make conditional."""
        rules: list[str] = []
        conditional: set[str] = set()
        names = {p["name"]: p for p in params}
        # Variants selected by a parameter (trunk/create's type) or exclusive sets (call/query).
        variants = ep.get("param_variants") or {}
        all_required = (
            set.intersection(
                *({p["name"] for p in v["params"] if p["required"]} for v in variants.values())
            )
            if variants
            else set()
        )
        if variants and "type" in names and ep["id"] != "call/query":
            for v in variants.values():
                type_value = next(p["enum"][0] for p in v["params"] if p["name"] == "type")
                extra = [
                    p["name"]
                    for p in v["params"]
                    if p["required"] and p["name"] not in all_required
                ]
                if extra:
                    args = ", ".join(json.dumps(n) for n in extra)
                    rules.append(f'requires({args}, when="type", equals="{type_value}")')
                    conditional.update(extra)
        elif variants:
            # No selector parameter (call/query): what only some variants require is checked
            # by the EXTRA_RULES entry.
            for v in variants.values():
                conditional.update(
                    p["name"]
                    for p in v["params"]
                    if p["required"] and p["name"] not in all_required
                )
        # call_report: requirements per report type.
        by_types: dict[tuple[str, ...], list[str]] = {}
        for p in params:
            types = p.get("required_for_report_types") or (
                p.get("applies_to_report_types") if p["required"] else None
            )
            if types and types != ["*"]:
                if any(t in REPORT_TYPE_SPELLINGS for t in types):
                    types = [t for t in types if t not in REPORT_TYPE_SPELLINGS]
                    types += REPORT_TYPE_SPELLINGS
                by_types.setdefault(tuple(types), []).append(p["name"])
                conditional.add(p["name"])
        for types, req in by_types.items():
            args = ", ".join(json.dumps(n) for n in req)
            values = ", ".join(json.dumps(t) for t in types)
            equals = f"({values})" if len(types) > 1 else values
            rules.append(f'requires({args}, when="type", equals={equals})')
        # "required when X is Y" written in the descriptions.
        parsed: dict[tuple[str, str], list[str]] = {}
        for p in params:
            if p["required"] or (ep["id"], p["name"]) in SKIP_PARSED_RULES:
                continue
            for trigger, value in PROSE_RULE.findall(p.get("desc_zh") or ""):
                if trigger in names and trigger != p["name"]:
                    parsed.setdefault((trigger, value), []).append(p["name"])
                    conditional.add(p["name"])
        for (trigger, value), req in parsed.items():
            args = ", ".join(json.dumps(n) for n in req)
            tparam = names[trigger]
            shown = value if tparam["type"] == "Integer" and value.isdigit() else json.dumps(value)
            rules.append(f'requires({args}, when="{trigger}", equals={shown})')
        for expr in EXTRA_RULES.get(ep["id"], []):
            rules.append(expr)
            conditional.update(re.findall(r'"(\w+)"', expr.split("when=")[0]))
        return list(dict.fromkeys(rules)), conditional

    def v2_params(self, ep: dict[str, Any]) -> list[dict[str, Any]]:
        """Parameters only the endpoint's openapi/v2.0 form takes (documented as such)."""
        v2 = self.v2.get(ep["id"])
        if v2 is None or ep.get("api_version") == "2.0":
            return []
        own = {p["name"] for p in ep["params"]}
        return [
            {**p, "desc_en": f"{p['desc_en'].rstrip('.')}. openapi/v2.0 only."}
            for p in v2["params"]
            if p["name"] not in own and not p.get("v1_name")
        ]

    def v2_answer(
        self, mod: Module, ep: dict[str, Any], ret: str, item_type: str | None
    ) -> tuple[str, str | None]:
        """The union of the v1.0 and v2.0 answers (and items) of a versioned endpoint."""
        v2_ret, v2_item = V2_ANSWERS[ep["id"]]
        if v2_ret.startswith("v2."):
            mod.uses_v2 = True
        else:
            mod.imports_typing.add("ClassVar")
            title = (
                f"Answer of ``{ep['id']}`` at openapi/v2.0: the shape of :class:`{ret}` "
                '(``api_version`` is ``"2.0"``).'
            )
            lines = [f"class {v2_ret}({ret}, kw_only=True):"]
            lines += [*close_docstring(wrap(title, "    ", '"""', hang=False)), ""]
            lines.append('    api_version: ClassVar[str] = "2.0"')
            mod.response_classes.append((v2_ret, ep["id"], lines))
        union_item = f"{item_type} | {v2_item}" if item_type and v2_item else item_type
        return f"{ret} | {v2_ret}", union_item

    def plan_endpoint(self, mod: Module, ep: dict[str, Any]) -> EndpointPlan:
        """Parameters (typed and documented), rules and response of one endpoint."""
        params = self.params_of(ep) + self.v2_params(ep)
        assert all(p["name"] != "timeout" for p in params), ep["id"]
        rules, conditional = self.rules_of(ep, params)
        if ep["id"] in V2_ONLY_ANSWERS:
            mod.uses_v2 = True
            ret, items_field, item_type = V2_ONLY_ANSWERS[ep["id"]], None, None
        else:
            ret, items_field, item_type = self.response_of(mod, ep)
        if ep["id"] in V2_ANSWERS:
            ret, item_type = self.v2_answer(mod, ep, ret, item_type)
        plan = EndpointPlan(ep, rules, ret, items_field, item_type)
        for p in params:
            typ, join = self.param_type(mod, ep, p)
            desc = p["desc_en"]
            if (ep["id"], p["name"]) in PARAM_NOTES:
                desc += " " + PARAM_NOTES[(ep["id"], p["name"])]
            if TIME_PARAMS.get(p["name"]) == "datetime":
                desc += " " + DATETIME_NOTE
            if (mod.group, p["name"]) in DATE_PARAMS:
                desc += " " + DATE_NOTE
            if p.get("enum") and p.get("enum_open"):
                desc += f" E.g. {', '.join(p['enum'])} or a custom name."
            if p["name"] in conditional and p["required"]:
                desc += " Required in some cases (checked at call time)."
            if "Sequence[" in typ and (join or p["in"] == "query"):
                desc = desc.replace(" (comma-separated)", "")
                desc += " A list is sent comma-separated."
            elif (mod.group, p["name"]) in PARAMS_ALSO_LIST:
                desc += " A list is sent as a JSON array, as in the manual's examples."
            required = p["required"] and p["name"] not in conditional
            joined = join and p["in"] == "body"
            plan.params.append(
                ParamPlan(
                    p["name"], py_name(p["name"]), typ, required, joined, desc, p.get("template")
                )
            )
        return plan

    def plan_shared_sets(self, mod: Module, plans: dict[str, EndpointPlan]) -> None:
        """Move parameter sets several endpoints share into TypedDicts (``**kwargs``)."""
        # Paging: page/page_size/order_by come from _base; the rest of a list endpoint's
        # parameters (sort_by, is_all) form one TypedDict per distinct set.
        for plan in plans.values():
            if plan.items_field is None:
                continue
            names = {p.name for p in plan.params}
            base = "SortedPageQuery" if "order_by" in names else "PageQuery"
            inherited = {"page", "page_size"} | (
                {"order_by"} if base == "SortedPageQuery" else set()
            )
            moved = [p for p in plan.params if p.name not in inherited | {"search_value"}]
            for p in plan.params:
                if p.name in inherited:
                    assert not p.required, (plan.ep["id"], p.name)
            if not moved:
                mod.imports_base.add(base)
                plan.shared = SharedSet(base, base, [], external=True)
            else:
                key = (base, tuple((p.name, p.typ) for p in moved))
                found = mod.page_sets.get(key)
                if found is None:
                    action = plan.ep["id"].split("/", 1)[1]
                    name = f"{camel(mod.group)}{camel(action)}Query"
                    mod.imports_base.add(base)
                    found = SharedSet(name, base, moved)
                    mod.page_sets[key] = found
                    mod.shared_sets.append(found)
                found.endpoints.append(plan.ep["id"])
                plan.shared = found
            plan.params = [p for p in plan.params if p.name not in inherited and p not in moved]
            plan.var_keyword = "query"
        # Other sets: create/update pairs, and the configured ones.
        groups: list[tuple[list[str], str]] = []
        create, update = f"{mod.group}/create", f"{mod.group}/update"
        if create in plans and update in plans:
            groups.append(([create, update], f"{camel(mod.group)}Options"))
        for member_ids, name in SHARED_SETS.items():
            if all(i in plans for i in member_ids):
                groups.append((list(member_ids), name))
        for ids, name in groups:
            members = [plans[i] for i in ids]
            first = members[0]
            shared = [
                p
                for p in first.params
                if all(
                    any(
                        (q.name, q.typ, q.required) == (p.name, p.typ, p.required) for q in m.params
                    )
                    for m in members[1:]
                )
                and not (p.required and first.ep["id"].endswith("/create"))
            ]
            if len(shared) < 3:
                continue
            names = {p.name for p in shared}
            found = SharedSet(name, None, shared, endpoints=list(ids))
            mod.shared_sets.append(found)
            for m in members:
                m.params = [p for p in m.params if p.name not in names]
                m.shared = found
                m.var_keyword = "options"
            # Documented once: the later endpoints refer to the first for what they repeat.
            for m in members[1:]:
                m.same_as = (first.ep["id"].split("/", 1)[1], {p.name: p.doc for p in first.params})

    def render_shared_set(self, mod: Module, shared: SharedSet) -> str:
        if (
            shared.base == "SortedPageQuery"
            and [p.name for p in shared.params] == ["sort_by"]
            and shared.name not in mod.unpacked
        ):
            # Only a name now (list/search are ListEndpoint declarations): one generic alias.
            mod.imports_base.add("SortedQuery")
            where = ", ".join(f"``{e}``" for e in shared.endpoints)
            doc = wrap(
                f"Parameters of {where}: paging, ``order_by`` and ``sort_by``.",
                "    ",
                '"""',
                hang=False,
            )
            if len(doc) > 1:
                doc.append('    """')
            else:
                doc[-1] += '"""'
            head = f"class {shared.name}(SortedQuery[{shared.params[0].typ}], total=False):"
            return "\n".join([head, *doc]) + "\n"
        mod.imports_typing.add("TypedDict")
        bases = shared.base or "TypedDict"
        where = ", ".join(f"``{e}``" for e in shared.endpoints)
        lines = [f"class {shared.name}({bases}, total=False):"]
        text = f"Parameters shared by {where} (keyword arguments)."
        lines += [*close_docstring(wrap(text, "    ", '"""', hang=False)), ""]
        for p in shared.params:
            assert not keyword.iskeyword(p.name), p.name
            if p.required:
                mod.imports_typing.add("Required")
                declaration = f"    {p.name}: Required[{p.typ}]"
            else:
                # None is accepted and means "not given", as for the explicit keywords.
                declaration = f"    {p.name}: {p.typ} | None"
            lines += attribute(declaration, key_doc(p.name, p.template, p.doc))
        return "\n".join(lines) + "\n"

    def render_one_line(self, mod: Module, plan: EndpointPlan) -> str | None:
        """A one-line declaration (``by_id`` ...) where the endpoint has one of the common
        shapes; ``None`` where it needs a full ``@endpoint`` method.

        The path is left to the class (its ``group`` and the attribute name), and so are the
        docs of ``id``/``ids`` where they read as the class's ``id_doc``/``ids_doc``."""
        ep = plan.ep
        if plan.items_field is not None:
            return self.render_one_line_list(mod, plan)
        if plan.rules or plan.shared is not None:
            return None
        if any(p.joined for p in plan.params):
            return None
        notes = self.notes(ep)
        if ep["id"] in DATA_OBJECT_OR_LIST:
            notes = notes[1:]  # _base adds it for ObjectOrListResponse
        shape = tuple((p.py, p.typ, p.required) for p in plan.params)
        factory = ONE_LINE_SHAPES.get(shape)
        if factory is None or (notes and factory != "by_channel") or len(notes) > 1:
            return None
        if ep["method"] != ONE_LINE_METHODS[factory]:
            return None
        mod.imports_base.add(factory)
        action = ep["id"].split("/", 1)[1]
        title = (ep.get("title_en") or ep["id"]).rstrip(".") + "."
        args = [plan.ret, json.dumps(title), json.dumps(ref(ep))]
        for p in plan.params:
            if p.py in CLASS_DOCUMENTED and mod.class_docs.setdefault(p.py, p.doc) == p.doc:
                continue
            args.append(json.dumps(p.doc))
        for note in notes:
            # A docstring paragraph: a module constant (several endpoints may share it).
            name = mod.note_constants.setdefault(note, f"_{action.upper()}_NOTE")
            args.append(f"note={name}")
        return f"    {action} = {factory}({', '.join(args)})"

    def one_line_list_key(self, plan: EndpointPlan) -> tuple[str, str] | None:
        """(factory, type and option text) of a ``list``/``search`` declarable in one line:
        paging, order_by, sort_by (and search_value); ``None`` for any other shape."""
        ep, shared = plan.ep, plan.shared
        if plan.items_field is None or ep["method"] != "GET":
            return None
        if plan.rules or shared is None or shared.base != "SortedPageQuery":
            return None
        if [(p.name, p.required) for p in shared.params] != [("sort_by", False)]:
            return None
        own = [(p.name, p.typ, p.required) for p in plan.params]
        if own == [("search_value", "str", False)]:
            factory = "SearchEndpoint"
        elif not own:
            factory = "ListEndpoint"
        else:
            return None
        types = f"[{plan.ret}, {plan.item_type}, {shared.params[0].typ}]"
        options = []
        if plan.items_field != "data":
            options.append(f'items="{plan.items_field}"')
        if ep["id"] in PAGINATED_WITHOUT_TOTAL:
            options.append("has_total=False")
        return factory, f"{types}({', '.join(options)})"

    def render_one_line_list(self, mod: Module, plan: EndpointPlan) -> str | None:
        """``list``/``search`` in one line: from the class's :class:`Pages` where several
        endpoints answer the same pages, else a ``ListEndpoint[...]``/``SearchEndpoint[...]``."""
        key = self.one_line_list_key(plan)
        if key is None:
            return None
        factory, types = key
        action = plan.ep["id"].split("/", 1)[1]
        title = (plan.ep.get("title_en") or plan.ep["id"]).rstrip(".") + "."
        args = f"{json.dumps(title)}, {json.dumps(ref(plan.ep))}"
        if types in mod.pages:
            method = {"ListEndpoint": "list", "SearchEndpoint": "search"}[factory]
            return f"    {action} = {mod.pages[types]}.{method}({args})"
        mod.imports_base.add(factory)
        head, options = types.split("(", 1)
        options = options[:-1]
        return f"    {action} = {factory}{head}({args}{', ' if options else ''}{options})"

    def render_method(self, mod: Module, plan: EndpointPlan) -> str:
        one_line = self.render_one_line(mod, plan)
        if one_line is not None:
            return one_line
        ep = plan.ep
        action = ep["id"].split("/", 1)[1]
        is_paginated = plan.items_field is not None
        sig: list[str] = ["self", "*"]
        docs: list[str] = []
        repeated: list[str] = []
        documented = []
        for p in plan.params:
            sig.append(f"{p.py}: {p.typ}" if p.required else f"{p.py}: {p.typ} | None = None")
            if plan.same_as and plan.same_as[1].get(p.name) == p.doc:
                repeated.append(p.py)
            else:
                documented.append((p.py, p.template, p.doc))
        docs += doc_lines(documented, " " * 12)
        if repeated:
            names = ", ".join(repeated)
            docs += wrap(f"as for :meth:`{plan.same_as[0]}`.", " " * 12, f"{names}: ")  # type: ignore[index]
        for name, typ, doc in LOCAL_PARAMS.get(ep["id"], []):
            sig.append(f"{name}: {typ}")
            docs += wrap(doc, " " * 12, f"{name}: ")
        sig.append("timeout: float | None = None")
        if plan.shared is not None:
            mod.imports_typing.add("Unpack")
            mod.unpacked.add(plan.shared.name)
            sig.append(f"**{plan.var_keyword}: Unpack[{plan.shared.name}]")
        decorator_args = [json.dumps(ep["method"]), json.dumps(ep["id"])]
        ret = plan.ret
        if is_paginated:
            mod.imports_base.add("paginated")
            mod.imports_base.add("Paginator")
            if plan.items_field != "data":
                decorator_args.append(f'items="{plan.items_field}"')
            if ep["id"] in PAGINATED_WITHOUT_TOTAL:
                decorator_args.append("has_total=False")
            deco = "paginated"
            ret = f"Paginator[{ret}, {plan.item_type}]"
            head = "def"
        else:
            mod.imports_base.add("endpoint")
            deco = "endpoint"
            head = "async def"
        if plan.rules:
            text = f"({', '.join(plan.rules)},)"
            decorator_args.append(f"rules={mod.rule_constants.get(text, text)}")
            for r in plan.rules:
                mod.imports_base.add(r.split("(", 1)[0])
        joined = [
            p.name for p in plan.params + (plan.shared.params if plan.shared else []) if p.joined
        ]
        if joined:
            decorator_args.append(f"joined={tuple(joined)!r}".replace("'", '"'))
        if ep["id"] in WIRE_COPIES:
            decorator_args.append(f"also={json.dumps(WIRE_COPIES[ep['id']])}")
        lines = [f"    @{deco}({', '.join(decorator_args)})"]
        lines.append(f"    {head} {action}({', '.join(sig)}) -> {ret}:")
        title = ep.get("title_en") or ep["id"]
        lines += wrap(f"{title.rstrip('.')}.", " " * 8, '"""', hang=False)
        lines.append("")
        lead = f"``{ep['method']} {ep['id']}``, {cite(ep['manual_line'], ep.get('source_url'))}."
        if plan.shared is not None:
            more = "Parameters" if not plan.params else "More parameters"
            lead += f" {more}: :class:`{plan.shared.name}`."
        lines += wrap(lead, " " * 8, hang=False)
        for note in self.notes(ep):
            lines.append("")
            lines += wrap(note, " " * 8, hang=False)
        if plan.rules:
            text = f"({', '.join(plan.rules)},)"
            first = mod.rule_first[text]
            if first != ep["id"]:
                checks = f"Checked before sending: as for :meth:`{first.split('/', 1)[1]}`."
            else:
                checks = "Checked before sending (``ValueError``): "
                checks += "; ".join(rule_text(r) for r in plan.rules) + "."
            lines.append("")
            lines += wrap(checks, " " * 8, hang=False)
        if docs:
            lines.append("")
            lines.append("        Args:")
            lines += docs
        lines.append('        """')
        lines.append("")
        return "\n".join(lines)

    def notes(self, ep: dict[str, Any]) -> list[str]:
        out = []
        group = ep["id"].split("/", 1)[0]
        if ep["id"] in V2_ONLY_ANSWERS:
            out.append(
                f"Only at openapi/v2.0, from firmware {V2_FIRMWARE[group]}; an older PBX (or "
                'cdr_api_version="1.0") raises ApiUnavailableError before sending.'
            )
        elif ep["id"] in V2_ANSWERS:
            v2_ret = V2_ANSWERS[ep["id"]][0].removeprefix("v2.")
            out.append(
                f"Answered at openapi/v2.0 from firmware {V2_FIRMWARE[group]} (or with "
                f'cdr_api_version="2.0"): the answer is then a :class:`{v2_ret}`; '
                '``answer.api_version`` says which version answered ("1.0" or "2.0").'
            )
        if ep["id"] in DATA_OBJECT_OR_LIST:
            out.append(
                "The manual types ``data`` one way and prints the other; read ``.items`` for a "
                "list either way."
            )
        if ep["id"] in ("call/accept_inbound", "call/refuse_inbound"):
            out.append(
                "Only effective within 10 seconds of the 30016 event; after that the PBX routes "
                "the call by its inbound route."
            )
        if ep.get("returns_download_url"):
            out.append(
                "Fetch the file with ``client.files.save(answer, path)`` or "
                "``client.files.iter_bytes(answer)``; the URL is valid for 30 minutes."
            )
        if ep["id"] == "recording/download":
            out.append(
                "A call's recording is often not ready when its 30012 event fires; retry, e.g. "
                "``client.files.save(lambda: client.recording.download(file=name), path, "
                "retries=5)``."
            )
        return out

    # -- module --------------------------------------------------------------------------------

    def rule_value_aliases(self, mod: Module) -> list[str]:
        """The module's :data:`RULE_VALUE_ALIASES` as declarations; the enumerations and the
        rule constants holding their values are rewritten to name them instead."""
        out: list[str] = []
        for (group, param), (name, doc) in RULE_VALUE_ALIASES.items():
            if group != mod.group:
                continue
            pattern = re.compile(rf'requires\("{param}", when="\w+", equals=(\([^)]*\))\)')
            text, m = next((t, m) for t in mod.rule_constants if (m := pattern.search(t)))
            values = re.findall(r'"([^"]+)"', m.group(1))
            shown = mod.rule_text_out.get(text, text)
            mod.rule_text_out[text] = shown.replace(
                m.group(0), m.group(0).replace(m.group(1), f"get_args({name})")
            )
            mod.imports_typing.add("get_args")
            for key, (alias, lit) in mod.aliases.items():
                items = re.findall(r'"[^"]*"|\w+', lit[len("Literal[") : -1])
                if lit.startswith("Literal[") and set(values) <= {i.strip('"') for i in items}:
                    at = next(i for i, item in enumerate(items) if item.strip('"') in values)
                    kept = [item for item in items if item.strip('"') not in values]
                    kept.insert(len([i for i in items[:at] if i.strip('"') not in values]), name)
                    mod.aliases[key] = (alias, f"Literal[{', '.join(kept)}]")
            out += [f"#: {doc}", f"{name} = {literal(values, False)}"]
        return out

    def render_module(self, mod: Module) -> str:
        self.collect_response_types(mod)
        self.collect_request_types(mod)
        cls = f"{camel(mod.group)}Resource"
        plans = {ep["id"]: self.plan_endpoint(mod, ep) for ep in mod.endpoints}
        self.plan_shared_sets(mod, plans)
        # A rule set several endpoints share is declared once, as a module constant.
        uses: dict[str, list[str]] = {}
        for plan in plans.values():
            if plan.rules:
                uses.setdefault(f"({', '.join(plan.rules)},)", []).append(plan.ep["id"])
        for text, ids in uses.items():
            mod.rule_first[text] = ids[0]
            # A module constant where several endpoints share the rules, or where they would
            # not fit on the decorator's line.
            first = plans[ids[0]].ep
            line = f'    @api.endpoint("{first["method"]}", "{first["id"]}", rules={text})'
            if len(ids) > 1 or len(line) + 4 * text.count("(") > 100:
                mod.rule_constants[text] = f"_{ids[0].split('/', 1)[1].upper()}_RULES"
        subsets = self.rule_value_aliases(mod)
        # list/search declarations answering the same pages share one Pages of the class.
        page_keys = [self.one_line_list_key(plan) for plan in plans.values()]
        counts = collections.Counter(key[1] for key in page_keys if key is not None)
        shared_pages = [types for types, n in counts.items() if n > 1]
        assert len(shared_pages) <= 1, (mod.group, shared_pages)
        mod.pages = {types: "_pages" for types in shared_pages}
        methods = [self.render_method(mod, plan) for plan in plans.values()]
        shared_sets = [self.render_shared_set(mod, s) for s in mod.shared_sets]
        request_types = []
        shared_imports: set[str] = mod.imports_shared
        for nt in mod.request_types.values():
            text = self.render_request_type(mod, nt)
            if nt.name in self.shared_requests:
                shared_imports.add(nt.name)
            else:
                request_types.append(text)
        extra_classes = []
        for (group, name), (doc, fields) in EXTRA_RESPONSE_CLASSES.items():
            if group != mod.group:
                continue
            mod.uses_msgspec = True
            lines = [f"class {name}(msgspec.Struct, kw_only=True):", f'    """{doc}"""', ""]
            for fname, typ, fdoc in fields:
                lines += attribute(f"    {fname}: {typ}", fdoc)
            extra_classes.append("\n".join(lines) + "\n")
        # A struct whose fields another one already has (in this module, or in _shared.py for
        # shapes several modules answer) is declared once; the other names are aliases.
        response_types = []
        struct_aliases: list[str] = []
        local: dict[tuple[str, ...], str] = {}
        declared: list[NestedType] = []
        for nt in mod.response_types.values():
            self.render_nested_response(mod, nt)
            key = self.struct_keys[(mod.group, nt.name)]
            where = f"``{nt.table}`` of {', '.join(f'``{e}``' for e in nt.endpoints)}"
            target = self.shared_structs[key][0] if key in self.shared_structs else local.get(key)
            if key in self.shared_structs:
                shared_imports.add(target)  # type: ignore[arg-type]
            if target is None:
                local[key] = nt.name
                declared.append(nt)
            elif target != nt.name:
                struct_aliases.append(f"#: {where}: the fields of :class:`{target}`.")
                struct_aliases.append(f"{nt.name} = {target}")
        bases = self.plan_bases(mod, declared)
        # A class is defined after the one it extends.
        titles = {nt.name: title for nt, title in mod.base_structs}
        every = [nt for nt, _ in mod.base_structs] + declared
        by_name = {nt.name: nt for nt in every}
        ordered: list[NestedType] = []

        def place(nt: NestedType) -> None:
            base = bases.get(nt.name)
            if base is not None and base.name in by_name:
                place(by_name[base.name])
            if nt not in ordered:
                ordered.append(nt)

        for nt in every:
            place(nt)
        shared_imports.update(b.name for b in bases.values() if b.name in self.shared_rows)
        response_types += [
            self.render_nested_response(mod, nt, bases.get(nt.name), titles.get(nt.name))
            for nt in ordered
        ]
        lines = [e["manual_line"] for e in mod.endpoints if e["manual_line"] is not None]
        if lines:
            first, last = lines[0], lines[-1]
            where = "manual " + (f"line {first}" if first == last else f"lines {first}-{last}")
            if len(lines) < len(mod.endpoints):
                where += " and the vendor's current pages"
        else:
            where = "from the vendor's current pages"
        out = wrap(
            f"``{mod.group}/*`` endpoints, {where} (generated by tools/gen_resources.py).",
            "",
            '"""',
            96,
            hang=False,
        )
        if mod.group in MODULE_DOCS:
            out.append("")
            out += wrap(MODULE_DOCS[mod.group], "", "", 100, hang=False)
            out.append('"""')
        else:
            out[-1] += '"""'

        out.append("")
        out.append("from __future__ import annotations")
        out.append("")
        if mod.imports_abc:
            out.append(f"from collections.abc import {', '.join(sorted(mod.imports_abc))}")
        if mod.imports_datetime:
            out.append(f"from datetime import {', '.join(sorted(mod.imports_datetime))}")
        if mod.imports_typing:
            out.append(f"from typing import {', '.join(sorted(mod.imports_typing))}")
        out.append("")
        if mod.uses_msgspec:
            out.append("import msgspec")
            out.append("")
        if mod.uses_api_response:
            out.append("from yeastar_async._models import ApiResponse")
        if mod.imports_external:
            out.append(f"from {EXTERNAL_MODULE} import {', '.join(sorted(mod.imports_external))}")
        out.append("from yeastar_async.resources import _base as api")
        if mod.uses_v2:
            out.append("from yeastar_async.resources import _v2 as v2")
        if shared_imports:
            names = ", ".join(sorted(shared_imports))
            out.append(f"from yeastar_async.resources._shared import {names}")
        out.append("")
        public = [cls]
        public += [a[0] for a in mod.aliases.values()]
        public += [nt.name for nt in mod.request_types.values()]
        public += [s.name for s in mod.shared_sets]
        public += [c[0] for c in mod.response_classes]
        public += [n for (g, n) in EXTRA_RESPONSE_CLASSES if g == mod.group]
        public += [nt.name for nt in mod.response_types.values()]
        public += [line.split(" = ")[0] for line in subsets if not line.startswith("#")]
        out.append("__all__ = [")
        out += [f'    "{n}",' for n in sorted(set(public))]
        out.append("]")
        out.append("")
        out += subsets
        for name, lit in mod.aliases.values():
            out.append(f"{name} = {lit}")
        if mod.aliases:
            out.append("")
        out.append("")
        out += request_types
        out.append("")
        out += [t + "\n" for t in shared_sets]
        out += [t + "\n" for t in response_types]
        # After the structs: a page answer names its item type among its bases.
        for _name, _ep, lines in mod.response_classes:
            out += lines
            out.append("")
            out.append("")
        if struct_aliases:
            out += [*struct_aliases, "", ""]
        out += [t + "\n" for t in extra_classes]
        for text, name in mod.rule_constants.items():
            used_by = ", ".join(uses[text])
            out.append(f"#: Call-time checks of {used_by}.")
            out.append(f"{name} = {mod.rule_text_out.get(text, text)}")
            out.append("")
        if mod.rule_constants:
            out.append("")
        for text, name in mod.note_constants.items():
            out.append(f"#: Docstring note of {name[1:-5].lower()} and the others using it.")
            out.append(f"{name} = (")
            out += [
                f"    {json.dumps(part)}" for part in textwrap.wrap(text, 88, drop_whitespace=False)
            ]
            out += [")", "", ""]
        out.append(f"class {cls}(Resource):")
        actions = ", ".join(f"``{e['id'].split('/', 1)[1]}``" for e in mod.endpoints)
        out += wrap(f"``client.{mod.group}``: {actions}.", "    ", '"""', 96, hang=False)
        out.append('    """')
        out.append("")
        out.append(f'    group = "{mod.group}"')
        for param, doc in mod.class_docs.items():
            out.append(f"    {param}_doc = {json.dumps(doc)}")
        for types, name in mod.pages.items():
            out.append(f"    {name} = Pages{types}")
        # One-line declarations stand together; a full method gets a blank line around it.
        for method in methods:
            if method.endswith("\n") or out[-1].endswith('"""') or not out[-1]:
                out.append("")
            out.append(method)
        text = mask_secrets(mod.group, "\n".join(out) + "\n")
        return qualify(text, mod.imports_base | {"Pages", "Resource"})

    def render_init(self) -> str:
        out = [
            '"""Typed REST endpoints: one resource class per endpoint group (``client.<group>``).',
            "",
            ":data:`RESOURCE_GROUPS` maps each attribute name of the client to its class name;",
            "the group modules are imported on first use (:func:`resource_class`), which keeps",
            "``import yeastar_async`` fast. Every class is built as",
            "``cls(transport, datetime_format=...)``. Models live in the group modules",
            "(``yeastar_async.resources.extension`` ...). :class:`Downloader` fetches the files of",
            "the ``*/download`` endpoints.",
            "",
            "Generated by ``tools/gen_resources.py``.",
            '"""',
            "",
            "from __future__ import annotations",
            "",
            "from typing import TYPE_CHECKING, Any",
            "",
            "from yeastar_async._fds import imported",
        ]
        names = [(m.group, f"{camel(m.group)}Resource") for m in self.modules]
        out.append("from yeastar_async.resources._base import (")
        base = [
            "DEFAULT_DATETIME_FORMAT",
            "CreatedResponse",
            "DownloadResponse",
            "ListResponse",
            "ObjectOrListResponse",
            "ObjectResponse",
            "PageResponse",
            "Paginator",
            "Resource",
            "Transport",
        ]
        out += [f"    {b}," for b in base]
        out.append(")")
        out.append("from yeastar_async.resources._download import Downloader, file_not_ready")
        out.append("")
        out.append("if TYPE_CHECKING:")
        for group, cls in sorted(names):
            out.append(f"    from yeastar_async.resources.{group} import {cls}")
        out.append("")
        all_names = sorted(
            [c for _, c in names]
            + base
            + ["Downloader", "RESOURCE_CLASSES", "RESOURCE_GROUPS", "file_not_ready"]
            + ["resource_class"]
        )
        out.append("__all__ = [")
        out += [f'    "{n}",' for n in all_names]
        out.append("]")
        out.append("")
        out.append("#: Client attribute name (the endpoint group, also its module) -> class name.")
        out.append("RESOURCE_GROUPS: dict[str, str] = {")
        out += [f'    "{g}": "{c}",' for g, c in names]
        out.append("}")
        out.append("_GROUP_OF_CLASS = {cls: group for group, cls in RESOURCE_GROUPS.items()}")
        out.append("")
        out.append("")
        out.append("def resource_class(group: str) -> type[Resource]:")
        out.append('    """The resource class of ``group``, importing its module on first use."""')
        out.append(
            "    # Out of descriptors at first use: an OutOfFileDescriptorsError, and the next use"
            " retries."
        )
        out.append('    module = imported(f"{__name__}.{group}")')
        out.append("    cls: type[Resource] = getattr(module, RESOURCE_GROUPS[group])")
        out.append("    return cls")
        out.append("")
        out.append("")
        out.append("def __getattr__(name: str) -> Any:")
        out.append("    # PEP 562: resource classes (and RESOURCE_CLASSES) load on first access.")
        out.append('    if name == "RESOURCE_CLASSES":')
        out.append("        return {group: resource_class(group) for group in RESOURCE_GROUPS}")
        out.append("    if name in _GROUP_OF_CLASS:")
        out.append("        return resource_class(_GROUP_OF_CLASS[name])")
        out.append('    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")')
        return "\n".join(out) + "\n"


def qualify(source: str, names: set[str]) -> str:
    """``source`` with the ``_base`` names it uses written ``api.<name>`` (code, not strings).

    The modules import ``_base`` once, as ``api``, rather than name by name."""
    lines = source.splitlines(keepends=True)
    found = []
    previous = None
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.string in names and previous != ".":
            found.append(token.start)
        if token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            previous = token.string
    # Last first: an insertion must not shift the columns of the tokens still to do.
    for row, col in reversed(found):
        lines[row - 1] = f"{lines[row - 1][:col]}api.{lines[row - 1][col:]}"
    return "".join(lines)


#: Fewest fields a struct needs to be extended by those that have all of its fields, and to be
#: declared in _shared.py for several modules.
MIN_BASE_FIELDS = 5

#: Fewest fields (same declaration and description) two structs share to get a base struct:
#: three fields and their docs are six lines a reader would otherwise see twice.
MIN_SHARED_FIELDS = 3

#: Identifiers a struct may use to be declared in _shared.py (no module-local types).
PORTABLE = {"str", "int", "Int64", "float", "dict", "list", "Any", "None"}


def shared_structs(gen: Generator, texts: dict[tuple[str, str], str]) -> dict[Any, Any]:
    """Structs several modules answer, plain enough to share -> (name, class text): the same
    fields in several modules, or all fields of a struct another module's struct extends."""
    groups: dict[tuple[str, ...], list[tuple[str, str]]] = {}
    for (group, name), key in gen.struct_keys.items():
        groups.setdefault(key, []).append((group, name))
    found: dict[tuple[str, ...], tuple[str, str]] = {}
    taken: set[str] = set()
    for key, users in groups.items():
        modules = {g for g, _ in users}
        if len(modules) < 2 and len(key) >= MIN_BASE_FIELDS:
            # Extended by a struct of another module (a superset of its fields)?
            fields = set(key)
            modules |= {
                g
                for (g, _), other in gen.struct_keys.items()
                if g not in modules and fields < set(other)
            }
        if len(modules) < 2:
            continue
        annotations = " ".join(line.split(":", 1)[1].split(" = ")[0] for line in key)
        if not set(re.findall(r"[A-Za-z_]\w*", annotations)) <= PORTABLE:
            continue
        name = users[0][1]
        assert name not in taken, name
        taken.add(name)
        found[key] = (name, texts[users[0]])
    return found


def shared_requests(gen: Generator, texts: dict[tuple[str, str], str]) -> dict[str, str]:
    """Request structs of the same name and fields in several modules -> class text."""
    users: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (group, name), key in gen.request_keys.items():
        users.setdefault((name, key), []).append(group)
    found = {}
    for (name, body), groups in users.items():
        annotations = " ".join(line.split(":", 1)[1].split(" = ")[0] for line in body)
        portable = set(re.findall(r"[A-Za-z_]\w*", annotations)) <= PORTABLE
        if len(groups) > 1 and portable:
            found[name] = texts[(groups[0], name)]
    return found


def render_shared(found: dict[Any, Any], requests: dict[str, str]) -> str:
    """``_shared.py``: the response structs several group modules answer."""
    uses_base = bool(requests) or any("Int64" in text for _, text in found.values())
    out = [
        '"""Response structs several endpoint groups answer (generated by tools/gen_resources.py).',
        "",
        "Each group module imports the ones it uses (and names them as its tables do).",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "from typing import Any, Literal",
        "",
        "import msgspec",
        "",
        *(["from yeastar_async.resources import _base as api", ""] if uses_base else []),
        "__all__ = [",
        *[
            f'    "{name}",'
            for name in sorted([n for n, _ in found.values()] + list(requests) + ["Destination"])
        ],
        "]",
        "",
        "#: Destination types most destination parameters accept; each adds its own to these.",
        f"Destination = {literal(DESTINATIONS, False)}",
        "",
        "",
    ]
    out += [qualify(text, {"Int64"}) + "\n" for _, text in found.values()]
    out += [qualify(text, {"Int64", "RequestModel"}) + "\n" for text in requests.values()]
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--catalog", type=Path, default=catalog_files.CATALOG_DIR)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    catalog = catalog_files.endpoints(args.catalog)
    # First pass: which struct shapes several modules share (they go to _shared.py).
    v2 = catalog_files.v2_endpoints(args.catalog)
    first = Generator(catalog, v2)
    texts: dict[tuple[str, str], str] = {}
    request_texts: dict[tuple[str, str], str] = {}
    for mod in first.modules:
        first.render_module(mod)
        for nt in mod.response_types.values():
            texts[(mod.group, nt.name)] = first.render_nested_response(mod, nt)
        for nt in mod.request_types.values():
            request_texts[(mod.group, nt.name)] = first.render_request_type(mod, nt)
    gen = Generator(catalog, v2)
    gen.shared_structs = shared_structs(first, texts)
    first.shared_structs = gen.shared_structs
    gen.shared_requests = shared_requests(first, request_texts)
    gen.shared_rows = {
        name: first.struct_fields[users]
        for users, name in (
            (next(k for k, v in first.struct_keys.items() if v == key), name)
            for key, (name, _) in gen.shared_structs.items()
        )
    }
    for mod in gen.modules:
        (args.out / f"{mod.group}.py").write_text(gen.render_module(mod), encoding="utf-8")
    shared = render_shared(gen.shared_structs, gen.shared_requests)
    (args.out / "_shared.py").write_text(shared, encoding="utf-8")
    (args.out / "__init__.py").write_text(gen.render_init(), encoding="utf-8")
    print(f"wrote {len(gen.modules)} modules for {len(gen.catalog)} endpoints to {args.out}")
    written = [str(args.out / f"{m.group}.py") for m in gen.modules]
    written += [str(args.out / "__init__.py"), str(args.out / "_shared.py")]
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        print("ruff not found: run `ruff format` and `ruff check --fix` on the output")
        return 0
    subprocess.run([ruff, "format", "-q", *written], check=True)
    subprocess.run(
        [ruff, "check", "-q", "--fix", "--select", "F401,I,RUF022", *written], check=True
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
