#!/usr/bin/env python3
"""Build ``yeastar_async/testing/catalog.json`` (the FakePBX's endpoint table) from the spec.

The fake PBX ships inside the package and cannot read the repository's ``catalog/`` at run
time, so this script distils what it needs from the catalog into one small JSON file:

* per endpoint: method, whether it needs a token, the parameters the manual requires on *every*
  call (conditional ones are left out), pagination/download flags, the top-level response keys,
  and the manual's example responses (with the request parameters each example was made with,
  so an endpoint with several examples can answer the one that fits the request);
* the error codes and their messages;
* per event topic: whether frames carry ``sn``, whether ``msg`` is sent as a string or an object,
  and the manual's example payload.

Printed examples that are not valid JSON are repaired when the damage is mechanical (``//``
comments, ``...`` truncation markers, trailing commas, text after the document, unclosed
brackets, line breaks inside strings); what cannot be repaired becomes a minimal success body
holding the response's top-level keys. Each example records which of the three it is.

Usage: python tools/build_fake_catalog.py [--spec DIR] [--out FILE] [--check]
(``--check`` exits 1 when the packaged file is stale instead of writing it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import catalog_files

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT / "catalog"
DEFAULT_OUT = ROOT / "yeastar_async" / "testing" / "catalog.json"

_CLOSERS = {"{": "}", "[": "]"}


def _strip_comments(text: str) -> str:
    """Drop ``// ...`` comments that sit outside JSON strings."""
    out: list[str] = []
    in_str = escaped = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_str:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
            out.append(ch)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def _close_brackets(text: str) -> str:
    """Append the closers of brackets left open (a truncated example)."""
    stack: list[str] = []
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in _CLOSERS:
            stack.append(_CLOSERS[ch])
        elif ch in "}]" and stack:
            stack.pop()
    return text.rstrip().rstrip(",") + "".join(reversed(stack))


def _join_broken_strings(value: Any) -> Any:
    """Undo page-break line wraps inside string values."""
    if isinstance(value, str):
        return re.sub(r"\s*\n\s*", "", value)
    if isinstance(value, list):
        return [_join_broken_strings(v) for v in value]
    if isinstance(value, dict):
        return {k: _join_broken_strings(v) for k, v in value.items()}
    return value


def _parse_prefix(text: str) -> Any:
    decoder = json.JSONDecoder(strict=False)
    value, _ = decoder.raw_decode(text)
    return value


def parse_example(raw: str) -> tuple[dict[str, Any] | None, str]:
    """Parse a printed response example: (body, "manual" | "repaired") or (None, "")."""
    start = raw.find("{")
    if start < 0:
        return None, ""
    text = raw[start:]
    try:
        value = json.loads(text)
        return (value, "manual") if isinstance(value, dict) else (None, "")
    except ValueError:
        pass
    text = _strip_comments(text)
    text = re.sub(r"(?m)^\s*(\.\s*){2,}.*$|…", "", text)  # "... .." truncation markers
    text = re.sub(r",(\s*[}\]])", r"\1", text)  # trailing commas
    for candidate in (text, _close_brackets(text)):
        try:
            value = _parse_prefix(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return _join_broken_strings(value), "repaired"
    return None, ""


def _placeholder(type_name: str) -> Any:
    t = type_name.lower()
    if t.startswith("array"):
        return []
    if t.startswith("object"):
        return {}
    if t.startswith("integer") or t.startswith("number"):
        return 0
    return ""


def minimal_body(endpoint: dict[str, Any]) -> dict[str, Any]:
    """A success body with the response's documented top-level keys."""
    body: dict[str, Any] = {"errcode": 0, "errmsg": "SUCCESS"}
    for field in endpoint["response"]["fields"]:
        if field["name"] not in body:
            body[field["name"]] = _placeholder(field.get("type") or "")
    return body


def request_params(raw_request: str) -> dict[str, str]:
    """Parameters an example request was made with (query string and JSON body, strings only)."""
    params: dict[str, str] = {}
    head = raw_request.split("{", 1)[0]
    # The request line is wrapped over several lines in the manual: glue it back together.
    line = "".join(part.strip() for part in head.splitlines() if not part.startswith("Host"))
    if "?" in line:
        for key, value in re.findall(r"([A-Za-z_]\w*)=([^&\s]*)", line.split("?", 1)[1]):
            if key != "access_token":
                params[key] = value.replace("HTTP/1.1", "")
    if "{" in raw_request:
        try:
            body = _parse_prefix(raw_request[raw_request.index("{") :])
        except ValueError:
            body = None
        if isinstance(body, dict):
            params.update({k: str(v) for k, v in body.items() if isinstance(v, (str, int))})
    return params


def required_every_call(endpoint: dict[str, Any]) -> list[str]:
    """Parameters marked required with no condition attached (variants, report types...)."""
    names: list[str] = []
    all_variants = {v for p in endpoint["params"] for v in p.get("variants", [])}
    for p in endpoint["params"]:
        if p.get("required") is not True or "{" in p["name"]:
            continue
        if p.get("required_note") or p.get("required_condition_zh"):
            continue
        applies = p.get("applies_to_report_types")
        if applies and applies != ["*"]:
            continue
        variants = p.get("variants")
        if variants and set(variants) != all_variants:
            continue
        names.append(p["name"])
    return names


def _endpoint(ep: dict[str, Any]) -> dict[str, Any]:
    examples = []
    for ex in ep["examples"]:
        body, source = parse_example(ex.get("response") or "")
        if body is None or body.get("errcode") != 0:
            body, source = minimal_body(ep), "minimal"
        examples.append(
            {"match": request_params(ex.get("request") or ""), "source": source, "body": body}
        )
    if not examples:
        examples.append({"match": {}, "source": "minimal", "body": minimal_body(ep)})
    return {
        "method": ep["method"],
        "auth": ep["auth"],
        "required": required_every_call(ep),
        "params": [p["name"] for p in ep["params"]],
        "paginated": ep["paginated"],
        "download": ep["returns_download_url"],
        "response_keys": [f["name"] for f in ep["response"]["fields"]],
        "manual_line": ep["manual_line"],
        "source_url": ep.get("source_url"),
        "firmware": ep.get("firmware") or {},
        "examples": examples,
    }


def build(spec: Path) -> dict[str, Any]:
    """The catalog document the FakePBX loads."""
    endpoints = catalog_files.endpoints(spec)
    errors = json.loads((spec / "p_series_errors.json").read_text())
    topics = json.loads((spec / "p_series_events.json").read_text())

    v2 = catalog_files.v2_endpoints(spec)
    only_v2 = {e["id"] for e in v2}
    out_endpoints = {
        ep["id"]: _endpoint(ep)
        for ep in endpoints
        if not (ep.get("api_version") == "2.0" and ep["id"] in only_v2)
    }
    out_v2 = {ep["id"]: _endpoint(ep) for ep in v2}

    out_errors = {str(e["code"]): e["message"] for e in errors}
    out_events: dict[str, Any] = {}
    for t in topics:
        normalized = t.get("examples_normalized") or []
        report = normalized[0]["report"] if normalized else {}
        out_events[str(t["topic"])] = {
            "name": t["name_en"],
            "has_sn": bool(t["has_sn"]),
            "msg_as": "object" if str(t["topic"]) in ("30025", "30026") else "string",
            "example": report.get("msg", {}),
        }
    return {
        "generated_by": "tools/build_fake_catalog.py",
        "source": "Yeastar P-Series Software Edition developer manual V1.0 (2024-04-22) and the "
        "vendor's current developer pages (catalog/p_series_current.json)",
        "endpoints": out_endpoints,
        "endpoints_v2": out_v2,
        "errors": out_errors,
        "events": out_events,
    }


def main() -> int:
    """Write (or ``--check``) the packaged catalog."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = json.dumps(build(args.spec), ensure_ascii=False, indent=1) + "\n"
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run tools/build_fake_catalog.py", file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text)
    doc = json.loads(text)
    sources: dict[str, int] = {}
    for ep in doc["endpoints"].values():
        for ex in ep["examples"]:
            sources[ex["source"]] = sources.get(ex["source"], 0) + 1
    print(f"wrote {args.out}: {len(doc['endpoints'])} endpoints, examples {sources}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
