"""Event lines (table-driven: one format per event class) and JSON lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

import msgspec

from .. import events

#: Event class -> (short label, line format). ``m`` is the event's ``msg``; ``members`` is its
#: call members rendered by :func:`format_members`.
_EVENT_LINES: Final[dict[type[Any], tuple[str, str]]] = {
    events.OrganizationStatusChanged: ("organization", "status {m.org_status}"),
    events.OrganizationConfigChanged: ("organization", "{m.action} ids {m.id_list}"),
    events.ExtensionRegistrationChanged: (
        "registration",
        "extension {m.extension} {m.kind} {m.status} {m.registered_ip}",
    ),
    events.ExtensionCallStatusChanged: ("extension", "{m.extension} is {m.status}"),
    events.ExtensionPresenceChanged: ("presence", "extension {m.extension} is now {m.status}"),
    events.TrunkRegistrationChanged: ("trunk", "{m.trunk_name} {m.kind} status {m.status}"),
    events.CallStatusChanged: ("call status", "call {m.call_id}: {members}"),
    events.NewCdr: (
        "new CDR",
        "call {m.call_id}: {m.call_from} → {m.call_to} {m.status} "
        "({m.type}, {m.call_duration} s, talk {m.talk_duration} s)",
    ),
    events.CallTransferred: ("transferred", "call {m.call_id}: {members}"),
    events.CallForwarded: ("forwarded", "call {m.call_id}: {members}"),
    events.CallFailed: ("call failed", "call {m.call_id}: {m.reason} {members}"),
    events.IncomingCallRequest: (
        "incoming",
        "call {m.call_id}: {members}: accept or refuse within 10 s",
    ),
    events.DtmfReceived: ("DTMF", "call {m.call_id}: key {m.info} pressed (so far {m.infos})"),
    events.PromptPlaybackEnded: ("prompt", "call {m.call_id}: {m.prompt} finished"),
    events.SatisfactionSurveyResult: ("survey", "call {m.call_id}: result {m.survey_result}"),
    events.UaCstaCallEvent: (
        "uaCSTA",
        "{m.operation} extension {m.extension} call {m.call_id} {m.ip_address}",
    ),
    events.ExtensionConfigChanged: ("extension config", "{m.ext_number} {m.option}"),
    events.TrunkConfigChanged: ("trunk config", "{m.trunk_name} {m.option}"),
    events.ConferenceHostLeft: ("conference", "{m.conference_id}: host {m.host_num} left"),
    events.AgentAutoPaused: (
        "agent paused",
        "queue {m.queue_number}: agent {m.agent_number} auto-paused",
    ),
    events.AgentRingTimeout: (
        "agent missed",
        "queue {m.queue_number}: agent {m.agent_number} did not answer {m.caller_number}",
    ),
    events.CallNoteAvailability: (
        "call note",
        "ext {m.ext_num} {m.channel}: note {m.call_note_id} shown {m.display}",
    ),
    events.AgentStatusChanged: (
        "agent status",
        "queue {m.queue_number}: agent {m.agent_number} {m.status} {m.reason}",
    ),
    events.BulkMessageFailed: (
        "bulk message",
        "task {m.task_id}: {m.fail_count} of {m.total} failed",
    ),
    events.MessageSendingResult: (
        "message",
        "session {m.session_id} message {m.msg_id} status {m.delivery_status} {m.send_error}",
    ),
    events.SystemEventInformation: (
        "system info",
        "{m.event_type} {m.event_name}: {m.event_content}",
    ),
    events.SystemEventWarning: (
        "system warning",
        "{m.event_type} {m.event_name}: {m.event_content}",
    ),
    events.SystemEventAlert: ("system alert", "{m.event_type} {m.event_name}: {m.event_content}"),
    events.ReadReceipt: (
        "read receipt",
        "session {m.data.session_id}: read up to message {m.data.read_msg_id}",
    ),
}


def _member(member: events.CallMember) -> str:
    ext, inbound, outbound = member.extension, member.inbound, member.outbound
    if ext is not None:
        text, channel = f"ext {ext.number} {ext.member_status}", ext.channel_id
    elif inbound is not None:
        text = f"in {inbound.from_} via {inbound.trunk_name} {inbound.member_status}"
        channel = inbound.channel_id
    elif outbound is not None:
        text = f"out {outbound.to} via {outbound.trunk_name} {outbound.member_status}"
        channel = outbound.channel_id
    else:
        return "?"
    # The channel is what `call hangup` (and accept / refuse_inbound) take.
    return f"{text.rstrip()} channel {channel}" if channel.strip() else text.rstrip()


def format_members(msg: Any) -> str:
    """A call's members in one line, each with its channel ID (``ext 2000 RING channel
    PJSIP/2000-0000004f, ...``); ``no members`` when there are none."""
    members = getattr(msg, "members", None) or []
    return ", ".join(_member(m) for m in members) or "no members"


def format_event(event: Any, *, clock: Callable[[], float] = time.time) -> str:
    """One readable line for a PBX event: time, topic, label and the payload's gist.

    ``12:00:01.250  30011 call status    call 1702287660.12: ext 2000 RING channel
    PJSIP/2000-0000004f, ...`` (the channel IDs ``call hangup`` takes). Events this
    library has no format for (newer firmware) show their raw frame.
    """
    now = clock()
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + f".{int(now % 1 * 1000):03d}"
    spec = _EVENT_LINES.get(type(event))
    if spec is None:
        raw = getattr(event, "raw", "")
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        label, body = "unknown", text[:200]
    else:
        label, template = spec
        body = template.format(m=event.msg, members=format_members(event.msg))
    return f"{stamp}  {event.type} {label:<13} {' '.join(body.split())}"


#: Wire-only aliases the models read and then leave empty (see events.models).
_ALIAS_FIELDS: Final = frozenset({"member_statuses", "ip_addresses"})


def _prune(value: Any) -> Any:
    # Leave out what carries nothing (absent legs are null, aliases are emptied): a JSON line
    # per event stays close to what the PBX sent.
    if isinstance(value, dict):
        return {k: _prune(v) for k, v in value.items() if v is not None and k not in _ALIAS_FIELDS}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


def event_json(event: Any) -> str:
    """One JSON object for a PBX event, without the fields that carry nothing."""
    doc = msgspec.to_builtins(event)
    if isinstance(doc, dict) and isinstance(doc.get("msg"), dict | list):
        doc["msg"] = _prune(doc["msg"])
    return msgspec.json.encode(doc).decode()
