"""Events past the 2024 manual (30027–30038): typed classes, named UnknownEvents, dispatch."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from yeastar_async import YeastarClient, events
from yeastar_async.events import (
    KNOWN_TOPICS,
    MANUAL_TOPICS,
    TOPICS,
    AgentStatusChanged,
    BulkMessageFailed,
    CallNoteAvailability,
    MessageSendingResult,
    ReadReceipt,
    SystemEventAlert,
    SystemEventInformation,
    SystemEventWarning,
    UnknownEvent,
    decode,
)
from yeastar_async.testing import FakePBX

FIXTURES = Path(__file__).parent / "fixtures" / "events"
NEW_TOPICS = sorted(set(TOPICS) - MANUAL_TOPICS)


def fixture(name: str) -> str:
    return (FIXTURES / f"{name}.json").read_text("utf-8").strip()


def flipped(frame: str) -> str:
    """The same frame with ``msg`` sent the other way (object <-> JSON string)."""
    doc = json.loads(frame)
    msg = doc["msg"]
    doc["msg"] = json.loads(msg) if isinstance(msg, str) else json.dumps(msg)
    return json.dumps(doc)


def test_the_new_topics_are_typed_and_the_manual_set_is_unchanged() -> None:
    assert NEW_TOPICS == [30028, 30029, 30030, 30032, 30034, 30035, 30036, 30038]
    assert min(MANUAL_TOPICS) == 30005
    assert max(MANUAL_TOPICS) == 30026
    assert len(MANUAL_TOPICS) == 21
    # No topic is both typed and "known by number only".
    assert not set(KNOWN_TOPICS) & set(TOPICS)
    for topic in NEW_TOPICS:
        cls = TOPICS[topic]
        assert "https://help.yeastar.com/" in (cls.__doc__ or ""), cls  # the source page


@pytest.mark.parametrize("direction", ["as sent", "flipped"])
def test_system_event_notifications(direction: str) -> None:
    def read(name: str) -> Any:
        frame = fixture(name)
        return decode(frame if direction == "as sent" else flipped(frame))

    info, warn, alert = read("30034_object"), read("30035_string"), read("30036_object")
    assert isinstance(info, SystemEventInformation)
    assert isinstance(warn, SystemEventWarning)
    assert isinstance(alert, SystemEventAlert)
    assert (info.type, info.sn) == (30034, "365XXXXXXXXXXUUG")
    assert (info.msg.event_name, info.msg.event_type, info.msg.event_level) == (
        "web_admin_login_succ",
        "operation",
        "info",
    )
    assert info.msg.event_content.splitlines()[1].startswith("The operation was derived")
    assert info.msg.create_time == "2026/01/16 16:00:49"
    assert (warn.msg.event_name, warn.msg.event_type, warn.msg.event_level) == (
        "sip_trunk_disconnect",
        "telephony",
        "warn",
    )
    assert (alert.msg.event_type, alert.msg.event_level) == ("system", "error")


@pytest.mark.parametrize("direction", ["as sent", "flipped"])
def test_read_receipt_string_encoded_with_a_nested_data_object(direction: str) -> None:
    frame = fixture("30038_string")
    ev = decode(frame if direction == "as sent" else flipped(frame))
    assert isinstance(ev, ReadReceipt)
    receipt = ev.msg.data
    # read_msg_id arrives as a string: decoded as the documented integer.
    assert (receipt.session_id, receipt.read_msg_id, receipt.user_id) == (51, 309, 0)
    assert receipt.read_time == "1741224790"


@pytest.mark.parametrize("direction", ["as sent", "flipped"])
def test_messaging_and_agent_events(direction: str) -> None:
    def read(name: str) -> Any:
        frame = fixture(name)
        return decode(frame if direction == "as sent" else flipped(frame))

    bulk = read("30030_object")
    assert isinstance(bulk, BulkMessageFailed)
    assert (bulk.msg.task_id, bulk.msg.total, bulk.msg.fail_count) == (203, 2, 2)

    result = read("30032_nested_json")
    assert isinstance(result, MessageSendingResult)
    msg = result.msg
    assert (msg.session_id, msg.msg_id, msg.delivery_status, msg.msg_type) == (88, 1203, 2, 0)
    assert (msg.msg_body, msg.send_time, msg.send_error) == (
        "Hello",
        1741224782,
        "invalid_phone_number",
    )
    assert msg.sender == {"type": "extension", "id": 2001}
    assert msg.files == [{"file_name": "a.png", "file_size": 1024}]
    assert msg.params == {"template": "welcome"}

    agent = read("30029_agent_paused")
    assert isinstance(agent, AgentStatusChanged)
    assert (agent.msg.queue_number, agent.msg.agent_number) == ("queue-6402", "1002")
    assert (agent.msg.status, agent.msg.reason) == ("Paused", "Lunch")


def test_message_sending_result_nested_json_already_decoded_or_broken() -> None:
    decoded = {"type": 30032, "sn": "S", "msg": {"msg_files": [{"id": 1}], "param": {"a": 1}}}
    ev = decode(json.dumps(decoded))
    assert isinstance(ev, MessageSendingResult)
    assert (ev.msg.files, ev.msg.params) == ([{"id": 1}], {"a": 1})
    broken = {"type": 30032, "sn": "S", "msg": {"msg_files": "[{oops", "param": "[1]"}}
    ev = decode(json.dumps(broken))
    assert isinstance(ev, MessageSendingResult)
    assert (ev.msg.files, ev.msg.params) == ([], {})


def test_call_note_availability_no_sn_and_numbers_for_strings() -> None:
    ev = decode(fixture("30028_string_no_sn"))
    assert isinstance(ev, CallNoteAvailability)
    assert ev.sn is None
    note = ev.msg
    assert (note.display, note.trigger_call_note_popup) == (1, 1)
    # group_id and ext_num sent as JSON numbers: their exact text (the trailing zero stays).
    assert (note.group_id, note.ext_num) == ("1741224782.220", "2001")
    assert (note.call_note_id, note.channel) == ("20250306093306-5E6B3", "PJSIP/2001-0000001b")


@pytest.mark.parametrize("topic", sorted(KNOWN_TOPICS))
def test_topics_known_by_number_give_a_named_unknown_event(topic: int) -> None:
    ev = decode(json.dumps({"type": topic, "sn": "S", "msg": json.dumps({"k": 1})}))
    assert type(ev) is UnknownEvent
    assert (ev.type, ev.msg, ev.reason) == (topic, {"k": 1}, "unknown topic")
    assert ev.name == KNOWN_TOPICS[topic]
    assert KNOWN_TOPICS[topic] in repr(ev)


def test_unknown_event_names() -> None:
    ev = decode(fixture("30027_unknown_payload"))
    assert isinstance(ev, UnknownEvent)
    assert "name='report download'" in repr(ev)
    # A typed topic whose payload cannot be read is named by its class.
    broken = decode(json.dumps({"type": 30034, "sn": "S", "msg": "[1, 2]"}))
    assert isinstance(broken, UnknownEvent)
    assert broken.name == "SystemEventInformation"
    # A topic never heard of has no name; a name given explicitly is kept.
    assert decode(json.dumps({"type": 39999, "msg": "{}"})).name == ""  # type: ignore[union-attr]
    assert UnknownEvent(type=30027, name="mine").name == "mine"


async def test_on_and_subscribe_take_the_new_classes_and_the_known_numbers() -> None:
    async with FakePBX() as fake:
        client = YeastarClient(fake.base_url, fake.client_id, fake.client_secret)
        got: list[Any] = []
        done = asyncio.Event()

        @client.on(SystemEventAlert)
        async def alert(ev: SystemEventAlert) -> None:
            got.append(ev)

        @client.on(30027)
        async def report(ev: Any) -> None:
            got.append(ev)
            done.set()

        async with client, client.subscribe(ReadReceipt) as receipts:
            assert {30027, 30036, 30038} <= client._stream.topics
            alert_doc = json.loads(fixture("30036_object"))
            assert await fake.emit(30036, alert_doc["msg"]) == 1
            await fake.emit(30038, json.loads(json.loads(fixture("30038_string"))["msg"]))
            await fake.emit(30027, {"task_id": 1})
            async with asyncio.timeout(5):
                receipt = await anext(aiter(receipts))
                await done.wait()
        assert isinstance(receipt, events.ReadReceipt)
        assert receipt.msg.data.read_msg_id == 309
        first, second = got
        assert isinstance(first, SystemEventAlert)
        assert first.msg.event_name == "storage_device_failure"
        assert isinstance(second, UnknownEvent)
        assert (second.type, second.name) == (30027, "report download")
