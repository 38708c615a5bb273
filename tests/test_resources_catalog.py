"""Table-driven tests of every REST endpoint declaration against the packaged endpoint catalog.

The catalog is the FakePBX's ``yeastar_async/testing/catalog.json`` (built from the manual by
``tools/build_fake_catalog.py``): per endpoint its method, the parameters required on every call,
every documented parameter and the manual's example responses. Calls go through a recording
transport, so every test here checks what *would* be sent, and that nothing is sent when a call
is refused.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import types
import typing
from dataclasses import dataclass
from datetime import date, datetime, time
from importlib import resources
from typing import Any, Literal

import msgspec
import pytest

from yeastar_async._models import ApiResponse
from yeastar_async.resources import RESOURCE_CLASSES, Paginator, Resource
from yeastar_async.resources._base import EndpointSpec, Rule, wire_name
from yeastar_async.resources._profile import V2_NAMES, VERSION_ONLY

_DOC = json.loads(
    (resources.files("yeastar_async.testing") / "catalog.json").read_text(encoding="utf-8")
)
#: openapi/v2.0 forms (current firmware); an endpoint only there is declared from its entry.
CATALOG_V2: dict[str, dict[str, Any]] = _DOC["endpoints_v2"]
CATALOG: dict[str, dict[str, Any]] = {
    **_DOC["endpoints"],
    **{name: ep for name, ep in CATALOG_V2.items() if name not in _DOC["endpoints"]},
}
AUTH = {"get_token", "refresh_token", "del_token"}
REST = {name: ep for name, ep in CATALOG.items() if name not in AUTH}

#: Paginated endpoints whose answer carries no total_number (spec README section 7).
PAGES_WITHOUT_TOTAL = {
    "organization/list",
    "organization/search",
    "queue_pause_reason/list",
    "wakeupcall/list",
}

#: Parameters offered besides the tables' names, with the reason (see tools/gen_resources.py).
EXTRA_PARAMS = {
    # ivr/create's table spells prompt_manager_*; ivr/get, ivr/update and the examples manger.
    "ivr/create": {"prompt_manger_enb", "prompt_manger_password"},
    "ivr/update": {"prompt_manager_enb", "prompt_manager_password"},
}


@dataclass
class Sent:
    method: str
    endpoint: str
    params: dict[str, str] | None
    json: Any
    timeout: float | None


class RecordingTransport:
    """Records each request and answers ``reply`` (default: a bare success envelope)."""

    def __init__(self, reply: Any = None) -> None:
        self.sent: list[Sent] = []
        self.api_paths: list[str | None] = []
        self.reply = reply

    async def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: collections.abc.Mapping[str, str] | None = None,
        json: Any = None,
        response_type: Any,
        timeout: float | None = None,
        api_path: str | None = None,
    ) -> Any:
        self.api_paths.append(api_path)
        self.sent.append(
            Sent(method, endpoint, None if params is None else dict(params), json, timeout)
        )
        # The real transport encodes the body with msgspec: it must be encodable.
        msgspec.json.encode(json)
        reply = self.reply(self.sent[-1]) if callable(self.reply) else self.reply
        body = msgspec.json.encode(
            reply if reply is not None else {"errcode": 0, "errmsg": "SUCCESS"}
        )
        return msgspec.json.Decoder(response_type, strict=False).decode(body)

    def download(
        self, resource_url: str, *, timeout: float | None = None, chunk_size: int = 65536
    ) -> collections.abc.AsyncIterator[bytes]:
        raise AssertionError("resources never download")


def all_specs() -> dict[str, tuple[str, str, EndpointSpec]]:
    """Endpoint id -> (client attribute, method name, spec)."""
    found: dict[str, tuple[str, str, EndpointSpec]] = {}
    for attr, cls in RESOURCE_CLASSES.items():
        for name, spec in cls.endpoints().items():
            assert spec.path not in found, f"{spec.path} declared twice"
            found[spec.path] = (attr, name, spec)
    return found


SPECS = all_specs()
IDS = sorted(SPECS)


def method_of(endpoint_id: str, transport: RecordingTransport) -> Any:
    attr, name, _ = SPECS[endpoint_id]
    return getattr(RESOURCE_CLASSES[attr](transport), name)


# -- value synthesis --------------------------------------------------------------------------


def synth(tp: Any) -> Any:
    """A valid value of the annotated type (the first alternative of unions and literals)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return synth(next(a for a in args if a is not type(None)))
    if origin is Literal:
        return args[0]
    if origin in (collections.abc.Sequence, list):
        return [synth(args[0])]
    if origin in (collections.abc.Mapping, dict):
        return {}
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return tp(**{f.name: synth(f.type) for f in msgspec.structs.fields(tp) if f.required})
    simple = {str: "x", int: 1, float: 1.5, bool: True}
    if tp in simple:
        return simple[tp]
    if tp is datetime:
        return datetime(2022, 5, 30, 8, 0, 0)
    if tp is date:
        return date(2022, 5, 30)
    if tp is time:
        return time(7, 30)
    raise AssertionError(f"no sample for {tp!r}")


def hints(spec: EndpointSpec) -> dict[str, Any]:
    """Every parameter's type, keyword arguments and shared TypedDict keys alike."""
    return {name: f.annotation for name, f in spec.fields().items()}


def required_names(spec: EndpointSpec) -> list[str]:
    return [name for name, f in spec.fields().items() if f.required]


def satisfying(spec: EndpointSpec, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` plus what the spec's rules then demand (so that no rule fails)."""
    kwargs = dict(base)
    th = hints(spec)
    for _ in range(5):
        for rule in spec.rules:
            if not rule.applies(kwargs):
                continue
            if rule.exactly_one:
                if not any(n in kwargs for n in rule.names):
                    kwargs[rule.names[0]] = synth(th[rule.names[0]])
            else:
                for n in rule.names:
                    kwargs.setdefault(n, synth(th[n]))
    return kwargs


def minimal_call(spec: EndpointSpec) -> dict[str, Any]:
    th = hints(spec)
    return satisfying(spec, {n: synth(th[n]) for n in required_names(spec)})


def documented(endpoint_id: str) -> set[str]:
    """The catalog's parameter names with the IVR's per-key templates spelled out."""
    names: set[str] = set()
    for name in CATALOG[endpoint_id]["params"]:
        if "{x}" in name:
            names.update(name.replace("{x}", str(d)) for d in range(10))
        else:
            names.add(name)
    # A versioned endpoint also takes its v2.0-only parameters (a v2.0 name of a v1.0 one,
    # time_begin for start_time, is sent under it, not offered).
    v2 = set(CATALOG_V2.get(endpoint_id, {}).get("params", [])) - set(
        V2_NAMES.get(endpoint_id, {}).values()
    )
    return names | v2 | EXTRA_PARAMS.get(endpoint_id, set())


# -- the whole catalog ------------------------------------------------------------------------


def test_every_catalog_endpoint_is_declared_once() -> None:
    # The manual's 120 plus the endpoints of the current vendor pages (each with its URL).
    manual = {name for name, ep in REST.items() if ep["manual_line"] is not None}
    assert len(manual) == 120
    assert all(ep["source_url"] for name, ep in REST.items() if name not in manual)
    assert set(SPECS) == set(REST)


def test_names_follow_the_endpoint_ids() -> None:
    for endpoint_id, (attr, name, _spec) in SPECS.items():
        assert f"{attr}/{name}" == endpoint_id
        assert RESOURCE_CLASSES[attr].group == attr


@pytest.mark.parametrize("endpoint_id", IDS)
def test_declaration_matches_catalog(endpoint_id: str) -> None:
    spec = SPECS[endpoint_id][2]
    ep = CATALOG[endpoint_id]
    assert spec.method == ep["method"]
    # Required on every call -> required keyword; everything else optional.
    assert set(required_names(spec)) == set(ep["required"])
    kinds = {p.kind for name, p in spec.signature.parameters.items() if name != "self"}
    assert kinds <= {inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.VAR_KEYWORD}
    assert {wire_name(name) for name in spec.fields()} == documented(endpoint_id)
    assert spec.paginated == (ep["paginated"] or endpoint_id in PAGES_WITHOUT_TOTAL)
    assert spec.has_total == (endpoint_id not in PAGES_WITHOUT_TOTAL)
    cited = f"line {ep['manual_line']}" if ep["manual_line"] else f"source: {ep['source_url']}"
    assert cited in " ".join((spec.func.__doc__ or "").split())


@pytest.mark.parametrize("endpoint_id", IDS)
async def test_routing(endpoint_id: str) -> None:
    transport = RecordingTransport()
    spec = SPECS[endpoint_id][2]
    kwargs = minimal_call(spec)
    result = method_of(endpoint_id, transport)(**kwargs, timeout=3.5)
    answer = await result
    if spec.paginated:
        assert isinstance(result, Paginator)
    assert isinstance(answer, ApiResponse)
    [sent] = transport.sent
    assert (sent.method, sent.endpoint, sent.timeout) == (
        CATALOG[endpoint_id]["method"],
        endpoint_id,
        3.5,
    )
    wire = {wire_name(k) for k in kwargs}
    if sent.method == "GET":
        assert sent.json is None
        assert sent.params is not None
        assert set(sent.params) == wire
        assert all(isinstance(v, str) for v in sent.params.values())
    else:
        assert sent.params is None
        assert isinstance(sent.json, dict)
        assert set(sent.json) == wire


@pytest.mark.parametrize("endpoint_id", IDS)
async def test_every_optional_parameter_is_sent_under_its_wire_name(endpoint_id: str) -> None:
    transport = RecordingTransport()
    spec = SPECS[endpoint_id][2]
    th = hints(spec)
    kwargs = {name: synth(th[name]) for name in spec.fields()}
    # Drop the members of "exactly one of" sets but the first, so the call is valid.
    for rule in spec.rules:
        if rule.exactly_one and rule.applies(kwargs):
            for extra in rule.names[1:]:
                kwargs.pop(extra, None)
    # Without a client profile a versioned endpoint goes to v1.0: leave out what only v2.0
    # takes (tests/test_fwrest_versions.py sends those to v2.0).
    v2_only = VERSION_ONLY.get(endpoint_id, (frozenset(), frozenset()))[1]
    kwargs = {k: v for k, v in kwargs.items() if k not in v2_only}
    await method_of(endpoint_id, transport)(**kwargs)
    [sent] = transport.sent
    given = sent.params if sent.method == "GET" else sent.json
    assert given is not None
    copies = {spec.also[k] for k in kwargs if k in spec.also}  # the manual's second spelling
    assert set(given) == {wire_name(k) for k in kwargs} | copies


REQUIRED_CASES = [(e, n) for e in IDS for n in required_names(SPECS[e][2])]


@pytest.mark.parametrize(("endpoint_id", "missing"), REQUIRED_CASES)
def test_missing_required_parameter_raises_type_error_before_io(
    endpoint_id: str, missing: str
) -> None:
    transport = RecordingTransport()
    kwargs = minimal_call(SPECS[endpoint_id][2])
    del kwargs[missing]
    with pytest.raises(TypeError, match=missing):
        method_of(endpoint_id, transport)(**kwargs)
    assert transport.sent == []


def test_required_cases_cover_every_endpoint_with_required_parameters() -> None:
    with_required = {e for e in REST if CATALOG[e]["required"]}
    assert {e for e, _ in REQUIRED_CASES} == with_required


def rule_cases() -> list[tuple[str, int, str]]:
    cases = []
    for endpoint_id in IDS:
        for index, rule in enumerate(SPECS[endpoint_id][2].rules):
            cases.append((endpoint_id, index, "none"))
            if rule.exactly_one:
                cases.append((endpoint_id, index, "two"))
    return cases


def violating(spec: EndpointSpec, rule: Rule, mode: str) -> dict[str, Any]:
    th = hints(spec)
    kwargs = {n: synth(th[n]) for n in required_names(spec)}
    if rule.trigger is not None:
        kwargs[rule.trigger] = rule.values[0]
    kwargs = satisfying(spec, kwargs)
    for name in rule.names:
        kwargs.pop(name, None)
    if mode == "two":
        for name in rule.names[:2]:
            kwargs[name] = synth(th[name])
    return kwargs


@pytest.mark.parametrize(("endpoint_id", "index", "mode"), rule_cases())
async def test_conditional_rule_raises_value_error_before_io(
    endpoint_id: str, index: int, mode: str
) -> None:
    spec = SPECS[endpoint_id][2]
    rule = spec.rules[index]
    transport = RecordingTransport()
    method = method_of(endpoint_id, transport)
    with pytest.raises(ValueError, match=rule.names[-1]) as info:
        method(**violating(spec, rule, mode))
    assert transport.sent == []
    if rule.trigger is not None:
        assert rule.trigger in str(info.value)
    # Satisfying the rule makes the same call go out.
    await method(**satisfying(spec, violating(spec, rule, "none")))
    assert len(transport.sent) == 1


def test_rules_cover_the_conditional_cases_of_the_manual() -> None:
    ruled = {e for e in IDS if SPECS[e][2].rules}
    for endpoint_id in (
        "call/query",
        "call/hangup",
        "call/transfer",
        "recording/download",
        "call_report/list",
        "call_report/download",
        "trunk/create",
        "system/get_menuoptions",
        "inbound_route/create",
        "outbound_route/create",
        "ivr/create",
        "queue/create",
    ):
        assert endpoint_id in ruled


# -- manual examples --------------------------------------------------------------------------


EXAMPLES = [
    pytest.param(endpoint_id, index, ex["body"], id=f"{endpoint_id}#{index}-{ex['source']}")
    for endpoint_id in IDS
    for index, ex in enumerate(CATALOG[endpoint_id]["examples"])
    if ex["source"] in ("manual", "repaired")
]


def test_examples_cover_most_endpoints() -> None:
    assert len({e for e, *_ in (p.values for p in EXAMPLES)}) >= 100


@pytest.mark.parametrize(("endpoint_id", "index", "body"), EXAMPLES)
async def test_manual_example_decodes_into_the_response_type(
    endpoint_id: str, index: int, body: dict[str, Any]
) -> None:
    spec = SPECS[endpoint_id][2]
    transport = RecordingTransport(reply=body)
    answer = await method_of(endpoint_id, transport)(**minimal_call(spec))
    assert isinstance(answer, ApiResponse)
    assert answer.errcode == body["errcode"]
    documented_keys = set(CATALOG[endpoint_id]["response_keys"]) - {"errcode", "errmsg"}
    for key, value in body.items():
        if key not in documented_keys:
            continue  # page-break debris of a repaired example, or an undocumented extra
        # The manual's top-level keys are attributes of the answer.
        got = getattr(answer, key)
        if isinstance(value, list):
            assert isinstance(got, list)
            assert len(got) == len(value)
        elif isinstance(value, dict):
            assert got is not None
        else:
            assert got == value or str(got) == str(value)


async def test_example_fields_keep_the_manuals_names() -> None:
    transport = RecordingTransport(reply=CATALOG["system/information"]["examples"][0]["body"])
    info = await method_of("system/information", transport)()
    assert info.data.firmware_version == "X.7.0.16"
    transport.reply = CATALOG["call/dial"]["examples"][0]["body"]
    dialled = await method_of("call/dial", transport)(caller="2000", callee="5503301")
    assert dialled.call_id == CATALOG["call/dial"]["examples"][0]["body"]["call_id"]
    transport.reply = CATALOG["extension/list"]["examples"][0]["body"]
    page = await method_of("extension/list", transport)(page=1, page_size=50)
    assert page.total_number == CATALOG["extension/list"]["examples"][0]["body"]["total_number"]


# -- resource classes -------------------------------------------------------------------------


def test_resource_classes_are_exported_and_constructible() -> None:
    import yeastar_async.resources as package

    transport = RecordingTransport()
    for attr, cls in RESOURCE_CLASSES.items():
        assert getattr(package, cls.__name__) is cls
        assert issubclass(cls, Resource)
        instance = cls(transport)
        assert attr in repr(instance)
        assert cls.__doc__
