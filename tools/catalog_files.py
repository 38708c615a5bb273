"""Read the repository's API catalog (``catalog/``): the manual's entries and the current pages'.

``catalog/p_series_endpoints.json`` is the April 2024 manual, extracted and hand-checked (each
entry, parameter and field names its ``manual_line``). ``catalog/p_series_current.json`` holds
what the vendor's current pages add, each item with the ``source_url`` of the page it was typed
from and, where the page or the notes say so, the ``firmware`` it needs:

* ``endpoints``: whole entries in the manual's schema (keys left out take their empty value);
  ``api_version`` ``"2.0"`` marks the ``openapi/v2.0`` form of an endpoint;
* ``additions``: parameters, enumeration values and response fields the current pages list for
  an endpoint of the manual.

:func:`endpoints` merges both into one list (the shape both tools read); :func:`v2_endpoints`
returns the ``openapi/v2.0`` entries. Used by ``gen_resources.py`` and ``build_fake_catalog.py``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"
MANUAL = "p_series_endpoints.json"
CURRENT = "p_series_current.json"

#: Values of the keys an entry of p_series_current.json may leave out.
_ENTRY_DEFAULTS: dict[str, Any] = {
    "manual_line": None,
    "auth": True,
    "content_type": None,
    "params": [],
    "nested_request_types": {},
    "paginated": False,
    "pagination": {
        "page_param": False,
        "page_size_param": False,
        "sort_by_param": False,
        "order_by_param": False,
        "total_number_in_response": False,
    },
    "returns_download_url": False,
    "example_request": None,
    "example_response": None,
    "examples": [],
    "notes_zh": [],
    "quirks": [],
    "api_version": "1.0",
}


def _complete(entry: dict[str, Any]) -> dict[str, Any]:
    out = {**copy.deepcopy(_ENTRY_DEFAULTS), **copy.deepcopy(entry)}
    out.setdefault("group", out["id"].split("/", 1)[0])
    url = out.get("source_url")
    # Parameters and fields typed from the same page cite it too (the manual's cite their line).
    for item in out["params"]:
        item.setdefault("manual_line", None)
        item.setdefault("source_url", url)
    for table in (out["nested_request_types"], out["response"].get("nested", {})):
        for fields in table.values():
            for f in fields:
                f.setdefault("manual_line", None)
                f.setdefault("source_url", url)
    for f in out["response"]["fields"]:
        f.setdefault("manual_line", None)
        f.setdefault("source_url", url)
    return out


def _current(directory: Path) -> dict[str, Any]:
    path = directory / CURRENT
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def _apply(entry: dict[str, Any], addition: dict[str, Any]) -> None:
    url = addition["source_url"]
    for p in addition.get("params", []):
        entry["params"].append({"manual_line": None, "source_url": url, **p})
    for name, values in addition.get("enum_values", {}).items():
        param = next(p for p in entry["params"] if p["name"] == name)
        param["enum"] = [*param["enum"], *[v for v in values if v not in param["enum"]]]
        param.setdefault("enum_sources", {}).update(dict.fromkeys(values, url))
    for f in addition.get("response_fields", []):
        entry["response"]["fields"].append({"manual_line": None, "source_url": url, **f})
    for table, fields in addition.get("response_table_fields", {}).items():
        entry["response"]["nested"][table] += [
            {"manual_line": None, "source_url": url, **f} for f in fields
        ]
    for table, fields in addition.get("response_nested", {}).items():
        entry["response"].setdefault("nested", {})[table] = [
            {"manual_line": None, "source_url": url, **f} for f in fields
        ]
    entry.setdefault("current_sources", []).append(url)


def _v1(directory: Path) -> list[dict[str, Any]]:
    manual: list[dict[str, Any]] = json.loads((directory / MANUAL).read_text(encoding="utf-8"))
    current = _current(directory)
    by_id = {e["id"]: e for e in manual}
    for addition in current.get("additions", []):
        _apply(by_id[addition["endpoint"]], addition)
    new = [_complete(e) for e in current.get("endpoints", []) if e.get("api_version") != "2.0"]
    return [*manual, *new]


def endpoints(directory: Path = CATALOG_DIR) -> list[dict[str, Any]]:
    """Every endpoint to declare: the manual's (with the current additions), then the new.

    An endpoint only at openapi/v2.0 (``cdr/detail``) comes last, from its v2.0 entry.
    """
    v1 = _v1(directory)
    known = {e["id"] for e in v1}
    return [*v1, *[e for e in v2_endpoints(directory) if e["id"] not in known]]


def v2_endpoints(directory: Path = CATALOG_DIR) -> list[dict[str, Any]]:
    """The ``openapi/v2.0`` entries of the current pages.

    An entry marked ``same_as_v1`` takes the v1.0 form's parameters and response (the page
    says only that new data is served at v2.0) and examples, keeping its own source, firmware
    and quirks.
    """
    current = _current(directory)
    entries = [_complete(e) for e in current.get("endpoints", []) if e.get("api_version") == "2.0"]
    if any(e.get("same_as_v1") for e in entries):
        v1 = {e["id"]: e for e in _v1(directory)}
        for entry in entries:
            if entry.get("same_as_v1"):
                base = copy.deepcopy(v1[entry["id"]])
                for key in ("params", "response", "nested_request_types", "paginated", "examples"):
                    entry[key] = base[key]
    return entries
