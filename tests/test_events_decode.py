"""Event models and ``events.decode``: manual examples, live-frame drift, malformed input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec import inspect as mi

from yeastar_async import events
from yeastar_async.errors import EventDecodeError, YeastarError
from yeastar_async.events import (
    TOPICS,
    AgentAutoPaused,
    AgentRingTimeout,
    CallFailed,
    CallInfo,
    CallMember,
    CallStatusChanged,
    Connected,
    Disconnected,
    DtmfReceived,
    Event,
    ExtensionCallStatusChanged,
    ExtensionConfigChanged,
    ExtensionLeg,
    InboundLeg,
    IncomingCallRequest,
    LocalEvent,
    NewCdr,
    OutboundLeg,
    TrunkConfigChanged,
    UaCstaCallEvent,
    UnknownEvent,
    decode,
    topic_of,
)

FIXTURES = Path(__file__).parent / "fixtures" / "events"
CATALOG = json.loads((FIXTURES / "catalog_examples.json").read_text("utf-8"))["examples"]

EXPECTED_NAMES = {
    30005: "OrganizationStatusChanged",
    30006: "OrganizationConfigChanged",
    30007: "ExtensionRegistrationChanged",
    30008: "ExtensionCallStatusChanged",
    30009: "ExtensionPresenceChanged",
    30010: "TrunkRegistrationChanged",
    30011: "CallStatusChanged",
    30012: "NewCdr",
    30013: "CallTransferred",
    30014: "CallForwarded",
    30015: "CallFailed",
    30016: "IncomingCallRequest",
    30017: "DtmfReceived",
    30018: "PromptPlaybackEnded",
    30019: "SatisfactionSurveyResult",
    30020: "UaCstaCallEvent",
    30022: "ExtensionConfigChanged",
    30023: "TrunkConfigChanged",
    30024: "ConferenceHostLeft",
    30025: "AgentAutoPaused",
    30026: "AgentRingTimeout",
    30028: "CallNoteAvailability",
    30029: "AgentStatusChanged",
    30030: "BulkMessageFailed",
    30032: "MessageSendingResult",
    30034: "SystemEventInformation",
    30035: "SystemEventWarning",
    30036: "SystemEventAlert",
    30038: "ReadReceipt",
}


def payload_type(cls: type[Event]) -> Any:
    """The typed ``msg`` of an event class."""
    return next(f.type for f in msgspec.structs.fields(cls) if f.name == "msg")


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text("utf-8").strip()


def frame(topic: int, msg: Any, sn: str | None = "3631A2124XXX", *, as_string: bool = True) -> str:
    envelope: dict[str, Any] = {"type": topic}
    if sn is not None:
        envelope["sn"] = sn
    envelope["msg"] = json.dumps(msg) if as_string else msg
    return json.dumps(envelope)


# ---------------------------------------------------------------------------------------------
# Registry and models
# ---------------------------------------------------------------------------------------------


def test_one_class_per_topic_with_the_designed_names() -> None:
    assert {topic: cls.__name__ for topic, cls in TOPICS.items()} == EXPECTED_NAMES
    for topic, cls in TOPICS.items():
        assert topic == cls.TOPIC
        assert getattr(events, cls.__name__) is cls
        default = cls()
        assert (default.type, default.sn) == (topic, None)
        assert isinstance(default.msg, msgspec.Struct)


def test_topic_of() -> None:
    assert topic_of(CallStatusChanged) == 30011
    assert topic_of(IncomingCallRequest) == 30016
    assert topic_of(30012) == 30012
    assert topic_of(39029) == 39029  # newer firmware topic: arrives as UnknownEvent
    assert topic_of(Connected) is None
    assert topic_of(Disconnected) is None
    for bad_class in (Event, UnknownEvent, LocalEvent):
        with pytest.raises(ValueError, match=bad_class.__name__):
            topic_of(bad_class)
    with pytest.raises(ValueError, match="0"):
        topic_of(0)
    for bad in (True, "30011", 30011.0, dict, None):
        with pytest.raises(TypeError, match="not an event class or topic number"):
            topic_of(bad)  # type: ignore[arg-type]


def test_events_are_frozen_and_buildable_with_defaults() -> None:
    ev = CallStatusChanged(msg=CallInfo(call_id="1.2"))
    assert (ev.type, ev.sn, ev.msg.call_id, ev.msg.members) == (30011, None, "1.2", [])
    with pytest.raises(AttributeError):
        ev.sn = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        ev.msg.call_id = "2"  # type: ignore[misc]


def test_local_events() -> None:
    first = Connected()
    assert (first.reconnect, first.gap) == (False, None)
    again = Connected(reconnect=True, gap=1.5)
    assert (again.reconnect, again.gap) == (True, 1.5)
    assert Disconnected(reason="heartbeat timeout").reason == "heartbeat timeout"
    assert isinstance(again, LocalEvent)
    assert not isinstance(again, Event)


def test_call_member_helpers() -> None:
    ext = ExtensionLeg(number="1001")
    inbound = InboundLeg(from_="5503301")
    outbound = OutboundLeg(to="5503301")
    assert CallMember(extension=ext).leg is ext
    assert CallMember(extension=ext).kind == "extension"
    assert CallMember(inbound=inbound).leg is inbound
    assert CallMember(inbound=inbound).kind == "inbound"
    assert CallMember(outbound=outbound).kind == "outbound"
    assert CallMember().leg is None
    assert CallMember().kind is None


def test_from_keeps_its_wire_name() -> None:
    leg = msgspec.json.decode(b'{"from":"5503301","to":"2002"}', type=InboundLeg)
    assert leg.from_ == "5503301"
    assert json.loads(msgspec.json.encode(leg))["from"] == "5503301"


def test_leg_aliases_are_normalised_on_construction() -> None:
    leg = ExtensionLeg(number="1", member_statuses="BYE", call_path=" ")
    assert (leg.member_status, leg.member_statuses, leg.call_path) == ("BYE", "", "")
    both = OutboundLeg(member_status="ANSWER", member_statuses="BYE")
    assert both.member_status == "ANSWER"  # the live key wins when both are sent


# ---------------------------------------------------------------------------------------------
# Every example of the manual (repaired into valid JSON), msg as string and as object
# ---------------------------------------------------------------------------------------------


def _normalised(value: Any) -> Any:
    """What the model exposes for an example value: blanks (" ") become ""."""
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return "" if value == " " else value


def _assert_fields(struct: Any, expected: dict[str, Any]) -> None:
    """Each key of the example equals the typed field (wire names; member_statuses folded)."""
    fields = {f.encode_name: f.name for f in msgspec.structs.fields(type(struct))}
    for key, value in expected.items():
        if key == "member_statuses":
            key = "member_status"
        if key == "ip_addresses":
            key = "ip_address"
        assert key in fields, f"{type(struct).__name__} lacks {key!r}"
        actual = getattr(struct, fields[key])
        if isinstance(actual, msgspec.Struct):
            _assert_fields(actual, value)
        elif isinstance(actual, list) and actual and isinstance(actual[0], msgspec.Struct):
            assert len(actual) == len(value)
            for item, item_expected in zip(actual, value, strict=True):
                _assert_fields(item, item_expected)
        else:
            assert actual == _normalised(value), key


CATALOG_CASES = [
    pytest.param(int(topic), report, as_string, id=f"{topic}-{i}-{'str' if as_string else 'obj'}")
    for topic, reports in CATALOG.items()
    for i, report in enumerate(reports)
    for as_string in (True, False)
]


def test_catalog_covers_every_topic_of_the_manual() -> None:
    # The topics past the 2024 manual have their vendor examples in test_events_current_fw.py.
    assert {int(t) for t in CATALOG} == set(events.MANUAL_TOPICS)


@pytest.mark.parametrize(("topic", "report", "as_string"), CATALOG_CASES)
def test_catalog_example_decodes(topic: int, report: dict[str, Any], as_string: bool) -> None:
    raw = frame(topic, report["msg"], report.get("sn"), as_string=as_string)
    ev = decode(raw)
    assert type(ev) is TOPICS[topic]
    assert ev.type == topic
    assert ev.sn == report.get("sn")
    _assert_fields(ev.msg, report["msg"])
    assert decode(raw.encode()) == ev  # bytes frames too


def test_catalog_examples_typed_values() -> None:
    """Spot checks of types the generic comparison would not show."""
    org = decode(frame(30005, CATALOG["30005"][0]["msg"]))
    assert (org.msg.org_status, org.msg.show_root_org) == (1, 1)
    trunk = decode(frame(30010, CATALOG["30010"][0]["msg"]))
    assert trunk.msg.status == 1
    cdr = decode(frame(30012, CATALOG["30012"][0]["msg"]))
    assert isinstance(cdr, NewCdr)
    assert (cdr.msg.call_duration, cdr.msg.talk_duration) == (24, 21)
    assert (cdr.msg.status_normalized, cdr.msg.type_normalized) == ("ANSWERED", "internal")
    status = decode(frame(30008, CATALOG["30008"][0]["msg"]))
    assert isinstance(status, ExtensionCallStatusChanged)
    assert (status.msg.status, status.msg.status_normalized) == ("Ringing", "ringing")
    ua = decode(frame(30020, CATALOG["30020"][0]["msg"]))
    assert isinstance(ua, UaCstaCallEvent)
    assert ua.msg.ip_address == "192.168.28.2:5060"


# ---------------------------------------------------------------------------------------------
# Frames as live PBXes send them (tests/fixtures/events/*.json)
# ---------------------------------------------------------------------------------------------


def test_live_30011_extension_hangs_up() -> None:
    ev = decode(fixture("30011_extension_bye"))
    assert isinstance(ev, CallStatusChanged)
    assert (ev.type, ev.sn, ev.msg.call_id) == (30011, "3631A2124XXX", "1702287660.000012")
    first, second = ev.msg.members
    assert first == CallMember(
        extension=ExtensionLeg(
            number="1001", channel_id="PJSIP/1001-0000001a", member_status="BYE", call_path=""
        )
    )
    assert (first.kind, first.inbound, first.outbound) == ("extension", None, None)
    assert second.extension is not None
    assert (second.extension.number, second.extension.member_status) == ("1002", "ANSWER")


def test_live_30011_inbound_trunk_leg() -> None:
    ev = decode(fixture("30011_inbound_trunk"))
    assert isinstance(ev, CallStatusChanged)
    assert ev.msg.call_id == "1702290315.000158"
    inbound = ev.msg.members[0].inbound
    assert inbound == InboundLeg(
        from_="+4915112345678",
        to="4930123456",
        trunk_name="Telekom-SIP",
        channel_id="PJSIP/trunk-Telekom-SIP-endpoint-0000009e",
        member_status="ALERT",
        call_path="",
    )
    ext = ev.msg.members[1].extension
    assert ext is not None
    assert (ext.number, ext.channel_id, ext.member_status, ext.call_path) == (
        "2002",
        "PJSIP/2002-0000009f",
        "RING",
        "6400",
    )


def test_live_30012_outbound_busy_cdr() -> None:
    ev = decode(fixture("30012_outbound_busy"))
    assert isinstance(ev, NewCdr)
    cdr = ev.msg
    assert (cdr.call_id, cdr.time_start) == ("1702291022.000201", "2023-12-11 10:37:02")
    assert (cdr.call_from, cdr.call_to) == ("1001", "004420794600")
    assert (cdr.call_duration, cdr.talk_duration, cdr.agent_ring_time) == (7, 0, 0)
    assert (cdr.src_trunk_name, cdr.dst_trunk_name) == ("", "SIP-Provider")
    assert (cdr.pin_code, cdr.recording, cdr.did_number, cdr.did_name) == ("", "", "", "")
    assert (cdr.status, cdr.type, cdr.type_normalized) == ("BUSY", "Outbound", "outbound")
    assert cdr.uid == "1702291022.000201-1001"


def test_live_30012_numbers_sent_as_strings() -> None:
    ev = decode(fixture("30012_string_numbers"))
    assert isinstance(ev, NewCdr)
    assert (ev.msg.call_duration, ev.msg.talk_duration, ev.msg.agent_ring_time) == (45, 38, 3)
    assert (ev.msg.did_number, ev.msg.did_name, ev.msg.uid) == ("4930123456", "Support", "cdr-77")
    assert ev.msg.src_trunk_name == "peer-to-41"


def test_live_30015_members_null() -> None:
    ev = decode(fixture("30015_members_null"))
    assert isinstance(ev, CallFailed)
    assert (ev.msg.call_id, ev.msg.reason, ev.msg.members) == (
        "1702292000.000300",
        "NO Dial Permission",
        [],
    )


def test_live_30015_busy_here() -> None:
    ev = decode(fixture("30015_busy_here"))
    assert isinstance(ev, CallFailed)
    assert ev.msg.reason == "486 Busy Here"
    ext, out = (m.leg for m in ev.msg.members)
    assert isinstance(ext, ExtensionLeg)
    assert (ext.number, ext.member_status, ext.call_path) == ("1001", "BYE", "")
    assert out == OutboundLeg(
        from_="1001",
        to="5503301",
        trunk_name="peer-to-41",
        channel_id="PJSIP/trunk-peer-to-41-endpoint-00000132",
        member_status="ALERT",
    )


def test_live_30016_call_path_blank() -> None:
    ev = decode(fixture("30016_call_path_blank"))
    assert isinstance(ev, IncomingCallRequest)
    inbound = ev.msg.members[0].inbound
    assert inbound is not None
    assert inbound.call_path == ""
    assert inbound.channel_id == "PJSIP/trunk-peer-to-41-endpoint-000000b5"
    assert (inbound.from_, inbound.to, inbound.trunk_name) == ("5503301", "2002", "peer-to-41")


def test_live_30017_member_statuses_key() -> None:
    ev = decode(fixture("30017_member_statuses"))
    assert isinstance(ev, DtmfReceived)
    inbound = ev.msg.members[0].inbound
    assert inbound is not None
    assert (inbound.member_status, inbound.member_statuses) == ("ANSWERED", "")
    assert (ev.msg.info, ev.msg.flag, ev.msg.infos) == ("5", 0, "")


def test_live_30020_ip_addresses_key() -> None:
    ev = decode(fixture("30020_ip_addresses"))
    assert isinstance(ev, UaCstaCallEvent)
    assert (ev.msg.operation, ev.msg.extension, ev.msg.call_id) == ("call_answer", "2000", "32789")
    assert (ev.msg.ip_address, ev.msg.ip_addresses) == ("192.168.28.2:5060", "")


def test_live_30008_capitalised_status() -> None:
    ev = decode(fixture("30008_ringing_capital"))
    assert isinstance(ev, ExtensionCallStatusChanged)
    assert (ev.msg.extension, ev.msg.status, ev.msg.status_normalized) == (
        "2002",
        "Ringing",
        "ringing",
    )


def test_live_frames_without_sn() -> None:
    ext = decode(fixture("30022_no_sn"))
    assert isinstance(ext, ExtensionConfigChanged)
    assert (ext.sn, ext.msg.ext_number, ext.msg.option) == (None, "3355", "UPDATE")
    trunk = decode(fixture("30023_no_sn"))
    assert isinstance(trunk, TrunkConfigChanged)
    assert (trunk.sn, trunk.msg.trunk_name, trunk.msg.option) == (None, "peer-trunking", "DELETE")
    paused = decode(fixture("30025_object_no_sn"))
    assert isinstance(paused, AgentAutoPaused)
    assert (paused.sn, paused.msg.queue_number, paused.msg.agent_number) == (None, "6402", "2010")
    assert [(c.caller_number, c.call_id) for c in paused.msg.calls] == [
        ("5003300", "1713151497.32"),
        ("5003301", "1713151475.26"),
    ]
    ring = decode(fixture("30026_object_no_sn"))
    assert isinstance(ring, AgentRingTimeout)
    assert (ring.sn, ring.msg.queue_number, ring.msg.agent_number) == (None, "6402", "2010")
    assert (ring.msg.caller_number, ring.msg.call_id) == ("5503301", "1713151497.32")


def test_live_call_id_sent_as_a_number_stays_an_exact_string() -> None:
    ev = decode(fixture("30011_numeric_call_id"))
    assert isinstance(ev, CallStatusChanged)
    assert ev.msg.call_id == "1702287660.000120"  # digits as sent, trailing zero kept
    ext = ev.msg.members[0].extension
    assert ext is not None
    assert (ext.number, ext.member_status, ext.call_path) == ("1001", "RING", "")
    ring = decode(fixture("30026_numeric_fields"))
    assert isinstance(ring, AgentRingTimeout)
    assert (ring.msg.queue_number, ring.msg.agent_number) == ("6402", "2010")
    assert (ring.msg.caller_number, ring.msg.call_id) == ("5503301", "1713151497.320")


# A call id in the frame's own spelling: never through float (1648801160.110 -> ...11).
NUMERIC_CALL_IDS = ["1648801160.110", "1648801160.000100", "1.5e9", "16488E-2", "0.0000001"]


@pytest.mark.parametrize("literal", NUMERIC_CALL_IDS)
@pytest.mark.parametrize("shape", ["string", "object", "twice"])
def test_a_numeric_call_id_keeps_the_exact_text_of_the_frame(literal: str, shape: str) -> None:
    # Built by hand: json.dumps(1648801160.110) would already write 1648801160.11.
    inner = '{"call_id":' + literal + ',"members":[]}'
    msg = {"string": json.dumps(inner), "object": inner, "twice": json.dumps(json.dumps(inner))}
    ev = decode('{"type":30011,"sn":"S","msg":' + msg[shape] + "}")
    assert isinstance(ev, CallStatusChanged)
    assert ev.msg.call_id == literal
    cdr_msg = json.dumps('{"call_id":' + literal + ',"call_duration":24.0}')
    cdr = decode('{"type":30012,"sn":"S","msg":' + cdr_msg + "}")
    assert isinstance(cdr, NewCdr)
    assert (cdr.msg.call_id, cdr.msg.call_duration) == (literal, 24)
    ring = decode('{"type":30026,"msg":{"call_id":' + literal + ',"agent_number":2010}}')
    assert isinstance(ring, AgentRingTimeout)
    assert (ring.msg.call_id, ring.msg.agent_number) == (literal, "2010")


def test_a_numeric_sn_keeps_the_exact_text_of_the_frame() -> None:
    ev = decode('{"type":30011,"sn":36312124.10,"msg":"{}"}')
    assert ev.sn == "36312124.10"
    assert decode('{"type":30011,"sn":3631212410,"msg":"{}"}').sn == "3631212410"


def test_every_fixture_decodes_to_its_topic() -> None:
    files = sorted(FIXTURES.glob("300*.json"))
    assert len(files) >= 16
    for path in files:
        ev = decode(path.read_bytes())
        # A topic known by number only (30027) has a fixture too: an UnknownEvent of it.
        assert type(ev) is TOPICS.get(int(path.name[:5]), UnknownEvent), path.name


# ---------------------------------------------------------------------------------------------
# More drift the decoder tolerates
# ---------------------------------------------------------------------------------------------


def test_msg_encoded_twice_is_unwrapped() -> None:
    inner = json.dumps({"call_id": "7.1", "members": []})
    ev = decode(json.dumps({"type": 30011, "sn": "S", "msg": json.dumps(inner)}))
    assert isinstance(ev, CallStatusChanged)
    assert ev.msg.call_id == "7.1"


def test_unknown_fields_are_ignored_and_missing_ones_defaulted() -> None:
    ev = decode(frame(30011, {"call_id": "1.1", "future_field": {"x": [1]}, "members": [{}]}))
    assert isinstance(ev, CallStatusChanged)
    assert ev.msg.members == [CallMember()]
    empty = decode(frame(30012, {}))
    assert isinstance(empty, NewCdr)
    assert empty.msg == NewCdr().msg


def test_blank_and_null_values_fall_back_to_defaults() -> None:
    ev = decode(frame(30012, {"call_duration": " ", "talk_duration": None, "call_id": "9.9"}))
    assert isinstance(ev, NewCdr)
    assert (ev.msg.call_duration, ev.msg.talk_duration, ev.msg.call_id) == (0, 0, "9.9")
    members = decode(frame(30011, {"call_id": "1", "members": [None, {"extension": None}]}))
    assert isinstance(members, CallStatusChanged)
    assert members.msg.members == [CallMember()]


def test_single_object_where_a_list_is_expected() -> None:
    ev = decode(frame(30025, {"queue_number": "1", "calls": {"call_id": "2.5"}}, None))
    assert isinstance(ev, AgentAutoPaused)
    assert [c.call_id for c in ev.msg.calls] == ["2.5"]


def test_envelope_leniency() -> None:
    numeric_sn = decode('{"type":30022,"sn":3631,"msg":"{\\"ext_number\\":\\"1\\"}"}')
    assert isinstance(numeric_sn, ExtensionConfigChanged)
    assert numeric_sn.sn == "3631"
    odd_sn = decode('{"type":30022,"sn":["x"],"msg":{"ext_number":"1"}}')
    assert isinstance(odd_sn, ExtensionConfigChanged)
    assert odd_sn.sn is None
    string_type = decode('{"type":"30022","msg":{"ext_number":"1"}}')
    assert isinstance(string_type, ExtensionConfigChanged)
    assert string_type.type == 30022
    spaced = decode(b' { "msg" : { "ext_number" : "1" } , "type" : 30022 } ')
    assert isinstance(spaced, ExtensionConfigChanged)
    assert spaced.msg.ext_number == "1"
    buffer = decode(bytearray(b'{"type":30022,"msg":"{}"}'))
    assert isinstance(buffer, ExtensionConfigChanged)


# ---------------------------------------------------------------------------------------------
# Unknown and malformed frames
# ---------------------------------------------------------------------------------------------


def test_unknown_topic_keeps_the_raw_frame() -> None:
    raw = '{"type":39032,"sn":"S","msg":"{\\"param\\":\\"{}\\",\\"id\\":3}"}'
    ev = decode(raw)
    assert isinstance(ev, UnknownEvent)
    assert (ev.type, ev.sn, ev.msg, ev.raw, ev.reason) == (
        39032,
        "S",
        {"param": "{}", "id": 3},
        raw,
        "unknown topic",
    )
    raw_bytes = raw.encode()
    assert decode(raw_bytes).raw == raw_bytes  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("raw", "msg"),
    [
        ('{"type":30011,"sn":"S","msg":"not json"}', "not json"),
        ('{"type":30011,"sn":"S","msg":[1,2]}', [1, 2]),
        ('{"type":30011,"sn":"S","msg":"[1,2]"}', [1, 2]),
        ('{"type":30011,"sn":"S"}', None),
        ('{"type":30011,"sn":"S","msg":null}', None),
        ('{"type":30011,"sn":"S","msg":"{\\"members\\":\\"abc\\"}"}', {"members": "abc"}),
        ('{"type":30011,"sn":"S","msg":{"call_id":{"a":1}}}', {"call_id": {"a": 1}}),
        ('{"type":30012,"sn":"S","msg":{"call_duration":"long"}}', {"call_duration": "long"}),
        ('{"type":30012,"sn":"S","msg":{"call_duration":2.5}}', {"call_duration": 2.5}),
    ],
)
def test_known_topic_with_undecodable_msg_is_unknown_event(raw: str, msg: Any) -> None:
    ev = decode(raw)
    assert isinstance(ev, UnknownEvent)
    assert (ev.type, ev.sn, ev.msg, ev.raw) == (json.loads(raw)["type"], "S", msg, raw)
    assert ev.reason


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "heartbeat response",
        "{",
        "[]",
        "30011",
        '"text"',
        "null",
        '{"errcode":0,"errmsg":"SUCCESS"}',
        '{"errcode":10004,"errmsg":"TOKEN EXPIRED"}',
        '{"type":"thirty","msg":"{}"}',
        '{"type":30011.5,"msg":"{}"}',
        '{"type":true,"msg":"{}"}',
        '{"type":null,"msg":"{}"}',
        b"\xff\xfe{}",
        "[" * 5000 + "]" * 5000,
    ],
)
def test_not_an_envelope_raises_event_decode_error(raw: str | bytes) -> None:
    with pytest.raises(EventDecodeError) as info:
        decode(raw)
    assert isinstance(info.value, YeastarError)
    assert len(str(info.value)) < 300  # a short excerpt, not the whole frame


def test_decode_error_shows_an_excerpt() -> None:
    with pytest.raises(EventDecodeError, match="heartbeat response"):
        decode("heartbeat response")
    with pytest.raises(EventDecodeError, match=r"errcode.*\.\.\."):
        decode(json.dumps({"errcode": 10004, "errmsg": "TOKEN EXPIRED", "pad": "x" * 200}))


def test_wrong_argument_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        decode(12345)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

PROPERTY = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def _check_outcome(raw: str | bytes) -> None:
    try:
        ev = decode(raw)
    except EventDecodeError:
        return
    assert isinstance(ev, (Event, UnknownEvent))
    if isinstance(ev, Event):
        assert type(ev) is TOPICS[ev.type]
    else:
        assert ev.raw == raw


@PROPERTY
@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    _check_outcome(raw)


@PROPERTY
@given(st.text(max_size=300))
def test_arbitrary_text(raw: str) -> None:
    _check_outcome(raw)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

FIELD_NAMES = sorted(
    {f.encode_name for cls in TOPICS.values() for f in msgspec.structs.fields(payload_type(cls))}
    | {"extension", "inbound", "outbound", "member_statuses", "ip_addresses", "from"}
)


def _payload_dicts() -> st.SearchStrategy[dict[str, Any]]:
    """Objects with the models' own keys and arbitrary values: deep drift."""
    key = st.sampled_from(FIELD_NAMES) | st.text(max_size=6)
    return st.dictionaries(key, JSON_VALUES | st.dictionaries(key, JSON_VALUES), max_size=6)


@PROPERTY
@given(
    topic=st.sampled_from(sorted(TOPICS)) | st.integers(-5, 40000),
    sn=st.none() | st.text(max_size=12) | st.integers(),
    msg=JSON_VALUES | _payload_dicts(),
    encode_msg=st.booleans(),
    extra=st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=2),
)
def test_arbitrary_envelopes(
    topic: int, sn: Any, msg: Any, encode_msg: bool, extra: dict[str, Any]
) -> None:
    envelope: dict[str, Any] = {**extra, "type": topic, "sn": sn}
    envelope["msg"] = json.dumps(msg) if encode_msg else msg
    raw = json.dumps(envelope)
    refused: EventDecodeError | None = None
    try:
        ev = decode(raw)
    except EventDecodeError as exc:
        refused = exc
    if refused is not None:
        # The one refusal of a well-formed envelope: a number beyond int64 where the payload
        # holds an integer (issue 11). Anything else decodes.
        assert "out of the int64 range" in str(refused)
        return
    assert ev.type == topic
    if isinstance(ev, UnknownEvent):
        assert ev.raw == raw
    else:
        assert type(ev) is TOPICS[topic]


def _strategy_for(tp: mi.Type, text: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    if isinstance(tp, mi.StrType):
        return text
    if isinstance(tp, mi.IntType):
        return st.integers(-(2**63), 2**63 - 1)
    if isinstance(tp, mi.ListType):
        return st.lists(_strategy_for(tp.item_type, text), max_size=3)
    if isinstance(tp, mi.UnionType):
        return st.one_of([_strategy_for(t, text) for t in tp.types])
    if isinstance(tp, mi.NoneType):
        return st.none()
    if isinstance(tp, mi.AnyType):
        return st.integers(-1000, 1000) | st.text(max_size=5)
    if isinstance(tp, mi.DictType):  # plain JSON objects (30032 `sender`, `param`)
        return st.dictionaries(st.text(max_size=5), st.integers(-1000, 1000) | st.text(max_size=5))
    assert isinstance(tp, mi.StructType), tp
    return st.fixed_dictionaries(
        {},
        optional={f.encode_name: _strategy_for(f.type, text) for f in tp.fields},
    )


# Strings as the PBX sends them, plus digit strings that the "numbers as JSON numbers" drift
# below may put on the wire as bare numbers (no leading zero, so the text survives exactly).
PBX_TEXT = (
    st.text(max_size=12) | st.just(" ") | st.from_regex(r"\A[1-9][0-9]{0,11}(\.[0-9]{1,6})?\Z")
)


def _drift(value: Any, tp: mi.Type, data: st.DataObject) -> Any:
    """Put some values on the wire the way drifting firmware does."""
    if isinstance(tp, mi.UnionType):
        inner = [t for t in tp.types if not isinstance(t, mi.NoneType)]
        return value if value is None else _drift(value, inner[0], data)
    if isinstance(tp, mi.StrType) and isinstance(value, str):
        digits = value.replace(".", "", 1)
        numeric = value.isascii() and digits.isdigit() and value[0] != "0" and value[-1] != "."
        if numeric and data.draw(st.booleans()):
            return msgspec.Raw(value.encode())  # the number as a bare JSON number
        return value
    if isinstance(tp, mi.IntType) and data.draw(st.booleans()):
        return str(value)  # an int sent as a string
    if isinstance(tp, mi.ListType):
        return [_drift(v, tp.item_type, data) for v in value]
    if isinstance(tp, mi.StructType):
        names = {f.encode_name: f.type for f in tp.fields}
        out = {k: _drift(v, names[k], data) for k, v in value.items()}
        if "member_status" in out and "member_statuses" not in out and data.draw(st.booleans()):
            out["member_statuses"] = out.pop("member_status")  # the tables' spelling
        if "ip_address" in out and "ip_addresses" not in out and data.draw(st.booleans()):
            out["ip_addresses"] = out.pop("ip_address")
        return out
    return value


@PROPERTY
@given(topic=st.sampled_from(sorted(TOPICS)), as_string=st.booleans(), data=st.data())
def test_typed_payloads_survive_drift(topic: int, as_string: bool, data: st.DataObject) -> None:
    model = payload_type(TOPICS[topic])
    info = mi.type_info(model)
    payload = data.draw(_strategy_for(info, PBX_TEXT))
    expected = msgspec.convert(payload, model)
    wire_msg = _drift(payload, info, data)
    encoded_msg = msgspec.json.encode(wire_msg)
    envelope = b'{"type":%d,"sn":"S","msg":' % topic
    raw = envelope + (msgspec.json.encode(encoded_msg.decode()) if as_string else encoded_msg)
    ev = decode(raw + b"}")
    assert type(ev) is TOPICS[topic], getattr(ev, "reason", "")
    assert ev.msg == expected
