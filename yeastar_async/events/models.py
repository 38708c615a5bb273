"""Typed models of the PBX's events (topics 30005–30038) and the local stream events.

Topics 30005–30026 are the April 2024 manual's; 30028–30038 come from the vendor's current
developer-guide pages (each class names its page). Topics known by number only (30027, 30031,
30033, 30037: no payload documented anywhere we could read) decode as :class:`UnknownEvent`,
whose :attr:`~UnknownEvent.name` says what they are.

Every event is a frozen :class:`msgspec.Struct` with ``type`` (the topic number), ``sn`` (the PBX
serial number, ``None`` when the frame carries none: 30022/30023/30025/30026/30028) and ``msg``
(the typed payload). Field names are the manual's; the key ``from`` is exposed as ``from_``.

Payloads are lenient because real PBX frames drift from the manual:

* every field has a default, so a missing key never makes a frame undecodable, and unknown keys
  are ignored;
* a single space, which the PBX sends for "empty", is exposed as ``""`` on the fields where the
  PBX is known to do it (``call_path`` of the legs; the CDR's trunk, PIN, DID and recording
  fields; 30017 ``info``/``infos``);
* keys that the manual and live firmware spell differently are read under both spellings and
  exposed under one canonical name (``member_status`` for ``member_statuses``, ``ip_address`` for
  ``ip_addresses``);
* status strings are kept exactly as sent (``Ringing`` vs ``ringing``): compare them
  case-insensitively, or use the ``status_normalized`` properties.

Numbers sent as strings (and the other way round), ``null`` where a list or value is expected and
call ids sent as JSON numbers are repaired by :func:`yeastar_async.events.decode`; see there.

The member shapes :class:`CallMember`, :class:`ExtensionLeg`, :class:`InboundLeg` and
:class:`OutboundLeg` are shared with the REST ``call/query`` models.

All Structs are ``frozen`` (one event object is handed to several handlers: none may change it
under the others) and ``gc=False`` (decoded events are acyclic trees; not tracking them makes
decoding cheaper).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import msgspec
from msgspec.structs import force_setattr

from yeastar_async._models import Int64

__all__ = [
    "KNOWN_TOPICS",
    "MANUAL_TOPICS",
    "TOPICS",
    "AgentAutoPaused",
    "AgentAutoPausedInfo",
    "AgentRingTimeout",
    "AgentRingTimeoutInfo",
    "AgentStatusChanged",
    "AgentStatusInfo",
    "BulkMessageFailed",
    "BulkMessageFailedInfo",
    "CallFailed",
    "CallFailedInfo",
    "CallForwarded",
    "CallInfo",
    "CallMember",
    "CallNoteAvailability",
    "CallNoteInfo",
    "CallStatusChanged",
    "CallTransferred",
    "CdrInfo",
    "CdrRecovered",
    "ConferenceHostInfo",
    "ConferenceHostLeft",
    "Connected",
    "Disconnected",
    "DtmfInfo",
    "DtmfReceived",
    "Event",
    "ExtensionCallStatusChanged",
    "ExtensionCallStatusInfo",
    "ExtensionConfigChanged",
    "ExtensionConfigInfo",
    "ExtensionLeg",
    "ExtensionPresenceChanged",
    "ExtensionPresenceInfo",
    "ExtensionRegistrationChanged",
    "ExtensionRegistrationInfo",
    "InboundLeg",
    "IncomingCallRequest",
    "LocalEvent",
    "MessageSendingInfo",
    "MessageSendingResult",
    "NewCdr",
    "OrganizationConfigChanged",
    "OrganizationConfigInfo",
    "OrganizationStatusChanged",
    "OrganizationStatusInfo",
    "OutboundLeg",
    "PromptPlaybackEnded",
    "PromptPlaybackInfo",
    "QueuedCall",
    "ReadReceipt",
    "ReadReceiptData",
    "ReadReceiptInfo",
    "SatisfactionSurveyResult",
    "SurveyResultInfo",
    "SystemEventAlert",
    "SystemEventInfo",
    "SystemEventInformation",
    "SystemEventWarning",
    "TrunkConfigChanged",
    "TrunkConfigInfo",
    "TrunkRegistrationChanged",
    "TrunkRegistrationInfo",
    "UaCstaCallEvent",
    "UaCstaCallInfo",
    "UnknownEvent",
    "topic_of",
]


def _clear_blanks(obj: msgspec.Struct, names: tuple[str, ...]) -> None:
    # The PBX writes " " for "no value"; expose it as "" so `if cdr.pin_code:` works.
    for name in names:
        if getattr(obj, name) == " ":
            force_setattr(obj, name, "")


# --------------------------------------------------------------------------------------------
# Call member shapes (30011 and the other call events; also REST call/query)
# --------------------------------------------------------------------------------------------


def _move_statuses(leg: ExtensionLeg | InboundLeg | OutboundLeg) -> None:
    # Some manual tables (and maybe some firmware) spell the key `member_statuses`; live frames
    # use `member_status`. Expose one name, whichever key was sent.
    if not leg.member_status:
        force_setattr(leg, "member_status", leg.member_statuses)
    force_setattr(leg, "member_statuses", "")


class ExtensionLeg(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """An extension taking part in a call (manual type ``Extension_Info``)."""

    number: str = ""
    """Extension number."""
    channel_id: str = ""
    """Channel of this member in the call, e.g. ``PJSIP/2002-0000004f``: what call control takes."""
    member_status: str = ""
    """ALERT, RING, ANSWERED, ANSWER, HOLD or BYE (also read from ``member_statuses``)."""
    call_path: str = ""
    """How the call was set up (IVR, queue, ring group, paging, conference); ``""`` otherwise."""
    member_statuses: str = ""
    """Wire alias only: its value is moved to :attr:`member_status` and this field is left empty."""

    def __post_init__(self) -> None:
        # Inlined checks: this runs for every leg of every call event (hot path).
        if self.call_path == " ":
            force_setattr(self, "call_path", "")
        if self.member_statuses:
            _move_statuses(self)


class InboundLeg(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """An external caller that came in on a trunk (manual type ``Inbound_Info``).

    Its :attr:`channel_id` is what ``call.accept_inbound`` / ``call.refuse_inbound`` expect.
    """

    from_: str = msgspec.field(default="", name="from")
    """Caller number (wire key ``from``)."""
    to: str = ""
    """Called number."""
    trunk_name: str = ""
    """Trunk the call came in on."""
    channel_id: str = ""
    """Channel of this member, e.g. ``PJSIP/trunk-peer-to-41-endpoint-000000b5``."""
    member_status: str = ""
    """ALERT, RING, ANSWERED, ANSWER, HOLD or BYE (also read from ``member_statuses``)."""
    call_path: str = ""
    """How the call was set up (IVR, queue, ring group, paging, conference); ``""`` otherwise."""
    member_statuses: str = ""
    """Wire alias only: its value is moved to :attr:`member_status` and this field is left empty."""

    def __post_init__(self) -> None:
        # Inlined checks: this runs for every leg of every call event (hot path).
        if self.call_path == " ":
            force_setattr(self, "call_path", "")
        if self.member_statuses:
            _move_statuses(self)


class OutboundLeg(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """An external party called out over a trunk (manual type ``Outbound_Info``)."""

    from_: str = msgspec.field(default="", name="from")
    """Caller number (wire key ``from``)."""
    to: str = ""
    """Called number."""
    trunk_name: str = ""
    """Trunk the call went out on."""
    channel_id: str = ""
    """Channel of this member, e.g. ``PJSIP/trunk-peer-to-41-endpoint-00000050``."""
    member_status: str = ""
    """ALERT, RING, EARLYMEDIA (183 received), ANSWERED, ANSWER, HOLD or BYE (also read from
    ``member_statuses``)."""
    call_path: str = ""
    """How the call was set up (IVR, queue, ring group, paging, conference); ``""`` otherwise."""
    member_statuses: str = ""
    """Wire alias only: its value is moved to :attr:`member_status` and this field is left empty."""

    def __post_init__(self) -> None:
        # Inlined checks: this runs for every leg of every call event (hot path).
        if self.call_path == " ":
            force_setattr(self, "call_path", "")
        if self.member_statuses:
            _move_statuses(self)


class CallMember(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One member of a call: exactly one of ``extension``, ``inbound``, ``outbound`` is set."""

    extension: ExtensionLeg | None = None
    """Set when the member is an extension."""
    inbound: InboundLeg | None = None
    """Set when the member is an external caller (inbound over a trunk)."""
    outbound: OutboundLeg | None = None
    """Set when the member is an external callee (outbound over a trunk)."""

    @property
    def leg(self) -> ExtensionLeg | InboundLeg | OutboundLeg | None:
        """Whichever leg is set (``None`` for an empty member object)."""
        return self.extension or self.inbound or self.outbound

    @property
    def kind(self) -> Literal["extension", "inbound", "outbound"] | None:
        """Which leg is set: ``"extension"``, ``"inbound"``, ``"outbound"``, or ``None``."""
        if self.extension is not None:
            return "extension"
        if self.inbound is not None:
            return "inbound"
        if self.outbound is not None:
            return "outbound"
        return None


# --------------------------------------------------------------------------------------------
# Payloads (the typed ``msg`` of each topic)
# --------------------------------------------------------------------------------------------


class OrganizationStatusInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30005 payload: the multi-organization feature was switched on or off."""

    org_status: Int64 = 0
    """1 = organization feature on, 0 = off."""
    show_root_org: Int64 = 0
    """1 = the root organization is shown, 0 = hidden (the manual types it String, live frames
    send a number; both decode)."""
    sn: str = ""
    """PBX serial number (repeated inside the payload)."""


class OrganizationConfigInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30006 payload: organizations were created, changed or deleted."""

    id_list: list[Int64] = []
    """IDs of the organizations concerned."""
    action: str = ""
    """create, update, delete, update_order or update_extension (lower case)."""
    sn: str = ""
    """PBX serial number (repeated inside the payload)."""


class ExtensionRegistrationInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30007 payload: an extension's device registered or unregistered."""

    extension: str = ""
    """Extension number."""
    kind: str = ""
    """Device kind: Sip, Mobile, Desktop, Web or Pad."""
    status: str = ""
    """Registered or Unregistered."""
    registered_ip: str = ""
    """Address of the device."""


class ExtensionCallStatusInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30008 payload: an extension's call status changed."""

    extension: str = ""
    """Extension number."""
    status: str = ""
    """ringing, busy or idle, as sent: live PBXes also send ``Ringing``. Compare
    case-insensitively or use :attr:`status_normalized`."""

    @property
    def status_normalized(self) -> str:
        """:attr:`status` stripped and lower-cased (``"ringing"``, ``"busy"``, ``"idle"``)."""
        return self.status.strip().lower()


class ExtensionPresenceInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30009 payload: an extension's presence status changed."""

    extension: str = ""
    """Extension number."""
    status: str = ""
    """available, away, business_trip, do_not_disturb, lunch or off_work."""


class TrunkRegistrationInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30010 payload: a trunk's registration status changed."""

    trunk_name: str = ""
    """Trunk name."""
    kind: str = ""
    """Trunk kind (PJSIP)."""
    status: Int64 = 0
    """Trunk status code (see the manual's trunk status table)."""
    registered_ip: str = ""
    """Registered address, e.g. ``112.48.19.183:18211``."""


class CallInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Payload of the call events 30011, 30013, 30014 and 30016 (manual type ``Call_Info``).

    ``members`` is always a list: a frame with ``"members": null`` gives ``[]``.
    """

    call_id: str = ""
    """Unique ID of the call, e.g. ``"1648801160.110"`` (always a string)."""
    members: list[CallMember] = []
    """The members of the call, one leg each."""


class CallFailedInfo(CallInfo, kw_only=True, frozen=True, gc=False):
    """30015 payload: a call failed (busy, no permission, unreachable...)."""

    reason: str = ""
    """Why the call failed, free text as sent: ``"486 Busy Here"``, ``"NO Dial Permission"``..."""


class DtmfInfo(CallInfo, kw_only=True, frozen=True, gc=False):
    """30017 payload: a member pressed DTMF keys."""

    info: str = ""
    """The key(s) pressed."""
    flag: Int64 = 0
    """Flag as sent by the PBX."""
    infos: str = ""
    """Accumulated keys as sent by the PBX (``""`` when the PBX sends a blank)."""

    def __post_init__(self) -> None:
        _clear_blanks(self, ("info", "infos"))


class PromptPlaybackInfo(CallInfo, kw_only=True, frozen=True, gc=False):
    """30018 payload: a prompt started with ``call.play_prompt`` finished playing."""

    prompt: str = ""
    """Name of the prompt, as sent (it may carry a trailing space)."""


class CdrInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30012 payload: a new call detail record.

    Blank values (``" "``) of the trunk, PIN, DID and recording fields are exposed as ``""``.
    """

    call_id: str = ""
    """Unique ID of the call."""
    time_start: str = ""
    """Start time as formatted by the PBX, e.g. ``"2022-04-27 19:04:36"``."""
    call_from: str = ""
    """Caller number."""
    call_to: str = ""
    """Called number."""
    call_duration: Int64 = 0
    """Call duration in seconds."""
    talk_duration: Int64 = 0
    """Talk duration in seconds."""
    src_trunk_name: str = ""
    """Trunk the call came in on (``""`` if none)."""
    dst_trunk_name: str = ""
    """Trunk the call went out on (``""`` if none)."""
    pin_code: str = ""
    """PIN used for the call (``""`` if none)."""
    status: str = ""
    """Result as sent: ANSWER/ANSWERED, NO ANSWER, BUSY, FAILED, VOICEMAIL. Compare
    case-insensitively or use :attr:`status_normalized`."""
    type: str = ""
    """internal, inbound or outbound, as sent (live PBXes send ``Internal``); see
    :attr:`type_normalized`."""
    recording: str = ""
    """Recording file name (``""`` if not recorded)."""
    did_number: str = ""
    """DID the call came in on (``""`` if none)."""
    agent_ring_time: Int64 = 0
    """Seconds a queue agent's phone rang."""
    did_name: str = ""
    """Name of the DID (sent by live PBXes, not in the manual)."""
    uid: str = ""
    """Unique CDR identifier (sent by live PBXes, not in the manual)."""

    def __post_init__(self) -> None:
        # Spelled out rather than looped: cheaper on the hot path.
        if self.src_trunk_name == " ":
            force_setattr(self, "src_trunk_name", "")
        if self.dst_trunk_name == " ":
            force_setattr(self, "dst_trunk_name", "")
        if self.pin_code == " ":
            force_setattr(self, "pin_code", "")
        if self.recording == " ":
            force_setattr(self, "recording", "")
        if self.did_number == " ":
            force_setattr(self, "did_number", "")
        if self.did_name == " ":
            force_setattr(self, "did_name", "")

    @property
    def status_normalized(self) -> str:
        """:attr:`status` stripped and upper-cased (``"ANSWERED"`` stays ``"ANSWERED"``)."""
        return self.status.strip().upper()

    @property
    def type_normalized(self) -> str:
        """:attr:`type` stripped and lower-cased (``"internal"``, ``"inbound"``, ``"outbound"``)."""
        return self.type.strip().lower()


class SurveyResultInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30019 payload: a caller answered the satisfaction survey."""

    call_id: str = ""
    """Unique ID of the call."""
    survey_result: str = ""
    """The key the caller pressed, e.g. ``"1"``."""


class UaCstaCallInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30020 payload: a uaCSTA call event from a supported phone.

    The manual's table names the address ``ip_addresses``, its example and live PBXes send
    ``ip_address``; either key ends up in :attr:`ip_address`.
    """

    operation: str = ""
    """call_start, call_answer or call_over."""
    extension: str = ""
    """Extension number."""
    call_id: str = ""
    """uaCSTA call ID (pass it to ``uacsta_call.*``)."""
    ip_address: str = ""
    """The phone's address, e.g. ``"192.168.28.2:5060"``."""
    ip_addresses: str = ""
    """Wire alias only: its value is moved to :attr:`ip_address` and this field is left empty."""

    def __post_init__(self) -> None:
        if self.ip_addresses:
            if not self.ip_address:
                force_setattr(self, "ip_address", self.ip_addresses)
            force_setattr(self, "ip_addresses", "")


class ExtensionConfigInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30022 payload: an extension was created, changed or deleted."""

    ext_number: str = ""
    """Extension number."""
    option: str = ""
    """CREATE, UPDATE or DELETE (upper case)."""


class TrunkConfigInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30023 payload: a trunk was created, changed or deleted."""

    trunk_name: str = ""
    """Trunk name."""
    option: str = ""
    """CREATE, UPDATE or DELETE (upper case)."""


class ConferenceHostInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30024 payload: the host left an audio conference."""

    conference_id: str = ""
    """Conference call ID."""
    host_num: str = ""
    """Number of the host who left."""


class QueuedCall(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A call waiting for the agent (inside 30025; unrelated to :class:`CallInfo`)."""

    caller_number: str = ""
    """Caller number."""
    call_id: str = ""
    """Unique ID of the call."""


class _QueueAgentInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """The queue and agent both queue-agent payloads (30025, 30026) start with."""

    queue_number: str = ""
    """Queue number."""
    agent_number: str = ""
    """Agent (extension) number."""


class AgentAutoPausedInfo(_QueueAgentInfo, kw_only=True, frozen=True, gc=False):
    """30025 payload: a queue agent was paused automatically after missing calls."""

    calls: list[QueuedCall] = []
    """The calls the agent missed."""


class AgentRingTimeoutInfo(_QueueAgentInfo, kw_only=True, frozen=True, gc=False):
    """30026 payload: a queue call rang an agent without being answered."""

    caller_number: str = ""
    """Caller number."""
    call_id: str = ""
    """Unique ID of the call."""


# --------------------------------------------------------------------------------------------
# Payloads of the topics past the April 2024 manual (current developer-guide pages)
# --------------------------------------------------------------------------------------------


def _json_value(value: Any, kind: type[Any], default: Any) -> Any:
    # The PBX nests JSON as a string inside some payloads (30032 `msg_files`, `param`); accept
    # the decoded value too, and give `default` for anything that does not hold a `kind`.
    if isinstance(value, str):
        if not value.strip():
            return default
        try:
            value = msgspec.json.decode(value)
        except (msgspec.DecodeError, RecursionError):
            return default
    return value if isinstance(value, kind) else default


class CallNoteInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30028 payload: whether the call note can be edited in the current call."""

    display: Int64 = 0
    """1 = the call note button is shown (the user may edit call notes), 0 = hidden."""
    trigger_call_note_popup: Int64 = 0
    """1 = the call note introduction popup was triggered, 0 = not."""
    sip_call_id: str = ""
    """Unique SIP ID of the call."""
    call_note_id: str = ""
    """Unique ID of the call note, e.g. ``"20250306093306-5E6B3"``."""
    group_id: str = ""
    """Group ID of the call note, e.g. ``"1741224782.220"``."""
    ext_num: str = ""
    """Extension number."""
    channel: str = ""
    """The extension's channel in the call, e.g. ``"PJSIP/2001-0000001b"``."""


class AgentStatusInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30029 payload: a queue agent's status changed."""

    queue_number: str = ""
    """Queue number, as sent (the vendor's example: ``"queue-6402"``)."""
    agent_number: str = ""
    """Extension number of the agent."""
    status: str = ""
    """The agent's new status as sent, e.g. ``"Paused"``."""
    reason: str = ""
    """Why the agent was paused (the pause reason's name, e.g. ``"Lunch"``)."""


class BulkMessageFailedInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30030 payload: some or all messages of a bulk message campaign failed."""

    task_id: Int64 = 0
    """ID of the message campaign."""
    total: Int64 = 0
    """Messages sent in total."""
    fail_count: Int64 = 0
    """Messages that failed."""


class MessageSendingInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30032 payload: the delivery status of a message sent through the API changed.

    ``msg_files`` and ``param`` are JSON *text* inside the payload (as the vendor documents
    them); :attr:`files` and :attr:`params` give them decoded. Either may also arrive already
    decoded.
    """

    session_id: Int64 = 0
    """Unique ID of the message session."""
    msg_id: Int64 = 0
    """Unique ID of the message."""
    delivery_status: Int64 = 0
    """0 = sending, 1 = sent, 2 = failed."""
    sender: dict[str, Any] = {}
    """The sender (the vendor's ``Sender_Info``), as plain JSON values."""
    msg_type: Int64 = 0
    """0 = user message, 4 = notification of an unsupported message type."""
    msg_body: str = ""
    """Message text."""
    msg_files: Any = ""
    """Attached files as sent: JSON text of a list of file objects (see :attr:`files`), or
    whatever JSON value the PBX put there."""
    send_time: Int64 = 0
    """Unix time (seconds) the message was sent."""
    param: Any = ""
    """More parameters as sent: JSON text of an object (see :attr:`params`), or whatever JSON
    value the PBX put there."""
    send_error: str = ""
    """Why sending failed, e.g. ``"invalid_phone_number"``; ``""`` when it did not."""

    @property
    def files(self) -> list[Any]:
        """:attr:`msg_files` decoded (``[]`` when empty or not a JSON list)."""
        files: list[Any] = _json_value(self.msg_files, list, [])
        return files

    @property
    def params(self) -> dict[str, Any]:
        """:attr:`param` decoded (``{}`` when empty or not a JSON object)."""
        params: dict[str, Any] = _json_value(self.param, dict, {})
        return params


class SystemEventInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Payload of the system event notifications 30034 (information), 30035 (warning) and
    30036 (alert): a PBX system event with notification enabled occurred."""

    event_name: str = ""
    """The system event's name, e.g. ``"web_admin_login_succ"``, ``"sip_trunk_disconnect"``."""
    event_type: str = ""
    """operation, telephony, system, security or reminder."""
    event_level: str = ""
    """info (30034), warn (30035) or error (30036)."""
    event_content: str = ""
    """The notification text (several lines)."""
    create_time: str = ""
    """When the event occurred, formatted by the PBX, e.g. ``"2026/01/16 16:00:49"``."""


class ReadReceiptData(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """The read receipt inside a 30038 payload."""

    session_id: Int64 = 0
    """ID of the external chat session."""
    read_msg_id: Int64 = 0
    """ID of the last message read."""
    user_id: Int64 = 0
    """Always 0 (vendor page)."""
    read_time: str = ""
    """When the message was read, as sent (the vendor page gives no format; a JSON number
    arrives as its exact text)."""


class ReadReceiptInfo(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """30038 payload: ``{"data": {...}}``; the receipt is :attr:`data`."""

    data: ReadReceiptData = msgspec.field(default_factory=ReadReceiptData)
    """The read receipt."""


# --------------------------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------------------------


class Event(msgspec.Struct, frozen=True, gc=False):
    """Base of the typed PBX events: ``type`` (topic), ``sn`` (PBX serial or None), ``msg``.

    Each subclass has a class attribute ``TOPIC`` and a typed ``msg``; every field has a default,
    so ``CallStatusChanged(msg=CallInfo(call_id="1.2"))`` builds a complete event (handy in tests).
    """

    TOPIC: ClassVar[int]

    type: int = 0
    """The topic number, e.g. 30011."""
    sn: str | None = None
    """PBX serial number; ``None`` when the frame has none (30022, 30023, 30025, 30026)."""
    msg: Any = None
    """The typed payload (see the subclass)."""


class OrganizationStatusChanged(Event, frozen=True, gc=False):
    """30005: the multi-organization feature was switched on or off."""

    TOPIC: ClassVar[int] = 30005
    type: int = 30005
    msg: OrganizationStatusInfo = msgspec.field(default_factory=OrganizationStatusInfo)


class OrganizationConfigChanged(Event, frozen=True, gc=False):
    """30006: organizations were created, changed, reordered or deleted."""

    TOPIC: ClassVar[int] = 30006
    type: int = 30006
    msg: OrganizationConfigInfo = msgspec.field(default_factory=OrganizationConfigInfo)


class ExtensionRegistrationChanged(Event, frozen=True, gc=False):
    """30007: an extension's registration status changed (needs registration monitoring)."""

    TOPIC: ClassVar[int] = 30007
    type: int = 30007
    msg: ExtensionRegistrationInfo = msgspec.field(default_factory=ExtensionRegistrationInfo)


class ExtensionCallStatusChanged(Event, frozen=True, gc=False):
    """30008: an extension's call status changed (needs call status monitoring)."""

    TOPIC: ClassVar[int] = 30008
    type: int = 30008
    msg: ExtensionCallStatusInfo = msgspec.field(default_factory=ExtensionCallStatusInfo)


class ExtensionPresenceChanged(Event, frozen=True, gc=False):
    """30009: an extension's presence status changed (needs presence monitoring)."""

    TOPIC: ClassVar[int] = 30009
    type: int = 30009
    msg: ExtensionPresenceInfo = msgspec.field(default_factory=ExtensionPresenceInfo)


class TrunkRegistrationChanged(Event, frozen=True, gc=False):
    """30010: a trunk's registration status changed (needs the trunk's monitoring switch)."""

    TOPIC: ClassVar[int] = 30010
    type: int = 30010
    msg: TrunkRegistrationInfo = msgspec.field(default_factory=TrunkRegistrationInfo)


class CallStatusChanged(Event, frozen=True, gc=False):
    """30011: the status of a call changed (trunk legs need trunk call monitoring)."""

    TOPIC: ClassVar[int] = 30011
    type: int = 30011
    msg: CallInfo = msgspec.field(default_factory=CallInfo)


class NewCdr(Event, frozen=True, gc=False):
    """30012: a call ended and its call detail record was written."""

    TOPIC: ClassVar[int] = 30012
    type: int = 30012
    msg: CdrInfo = msgspec.field(default_factory=CdrInfo)

    @property
    def recovered(self) -> bool:
        """``False``: sent live by the PBX (see :class:`CdrRecovered`)."""
        return False


class CdrRecovered(NewCdr, kw_only=True, frozen=True, gc=False):
    """A CDR of a gap in the stream, fetched over REST (``recover_cdrs=True``, the default).

    A :class:`NewCdr`: handlers of ``NewCdr`` (or of 30012) get it, after the
    :class:`Connected` that ends the gap, in start-time order, once per call (a call delivered
    live is not recovered, a recovered one is not delivered again live). ``msg`` holds what
    the REST record says in the 30012 shape (``call_id`` is the record's ``uid``,
    ``time_start`` its ``time`` as the PBX formats it, ``status`` its disposition); ``record``
    is the record itself (``CdrV2`` from API v2.0, else ``CDRDetails``). ``sn`` is ``None``.
    """

    record: Any = None
    """The REST row (``resources.cdr.CDRDetails`` or ``CdrV2``)."""

    @property
    def recovered(self) -> bool:
        """``True``: fetched over REST after a gap."""
        return True


class CallTransferred(Event, frozen=True, gc=False):
    """30013: a call was transferred."""

    TOPIC: ClassVar[int] = 30013
    type: int = 30013
    msg: CallInfo = msgspec.field(default_factory=CallInfo)


class CallForwarded(Event, frozen=True, gc=False):
    """30014: a call was forwarded."""

    TOPIC: ClassVar[int] = 30014
    type: int = 30014
    msg: CallInfo = msgspec.field(default_factory=CallInfo)


class CallFailed(Event, frozen=True, gc=False):
    """30015: a call failed; ``msg.reason`` says why."""

    TOPIC: ClassVar[int] = 30015
    type: int = 30015
    msg: CallFailedInfo = msgspec.field(default_factory=CallFailedInfo)


class IncomingCallRequest(Event, frozen=True, gc=False):
    """30016: an inbound call waits for ``call.accept_inbound`` / ``refuse_inbound`` (10 s).

    Needs "inbound call control" on the trunk; the inbound leg's ``channel_id`` is the handle.
    """

    TOPIC: ClassVar[int] = 30016
    type: int = 30016
    msg: CallInfo = msgspec.field(default_factory=CallInfo)


class DtmfReceived(Event, frozen=True, gc=False):
    """30017: a call member pressed DTMF keys."""

    TOPIC: ClassVar[int] = 30017
    type: int = 30017
    msg: DtmfInfo = msgspec.field(default_factory=DtmfInfo)


class PromptPlaybackEnded(Event, frozen=True, gc=False):
    """30018: a prompt played with ``call.play_prompt`` finished."""

    TOPIC: ClassVar[int] = 30018
    type: int = 30018
    msg: PromptPlaybackInfo = msgspec.field(default_factory=PromptPlaybackInfo)


class SatisfactionSurveyResult(Event, frozen=True, gc=False):
    """30019: a caller answered the satisfaction survey."""

    TOPIC: ClassVar[int] = 30019
    type: int = 30019
    msg: SurveyResultInfo = msgspec.field(default_factory=SurveyResultInfo)


class UaCstaCallEvent(Event, frozen=True, gc=False):
    """30020: a uaCSTA phone started, answered or ended a call."""

    TOPIC: ClassVar[int] = 30020
    type: int = 30020
    msg: UaCstaCallInfo = msgspec.field(default_factory=UaCstaCallInfo)


class ExtensionConfigChanged(Event, frozen=True, gc=False):
    """30022: an extension was created, changed or deleted (no ``sn``)."""

    TOPIC: ClassVar[int] = 30022
    type: int = 30022
    msg: ExtensionConfigInfo = msgspec.field(default_factory=ExtensionConfigInfo)


class TrunkConfigChanged(Event, frozen=True, gc=False):
    """30023: a trunk was created, changed or deleted (no ``sn``)."""

    TOPIC: ClassVar[int] = 30023
    type: int = 30023
    msg: TrunkConfigInfo = msgspec.field(default_factory=TrunkConfigInfo)


class ConferenceHostLeft(Event, frozen=True, gc=False):
    """30024: the host left an audio conference."""

    TOPIC: ClassVar[int] = 30024
    type: int = 30024
    msg: ConferenceHostInfo = msgspec.field(default_factory=ConferenceHostInfo)


class AgentAutoPaused(Event, frozen=True, gc=False):
    """30025: a queue agent was paused automatically (no ``sn``)."""

    TOPIC: ClassVar[int] = 30025
    type: int = 30025
    msg: AgentAutoPausedInfo = msgspec.field(default_factory=AgentAutoPausedInfo)


class AgentRingTimeout(Event, frozen=True, gc=False):
    """30026: a queue call rang an agent until the ring timeout (no ``sn``)."""

    TOPIC: ClassVar[int] = 30026
    type: int = 30026
    msg: AgentRingTimeoutInfo = msgspec.field(default_factory=AgentRingTimeoutInfo)


class CallNoteAvailability(Event, frozen=True, gc=False):
    """30028: call information changed during a call; says whether its call note is editable
    (no ``sn``).

    Source: https://help.yeastar.com/en/p-series-software-edition/developer-guide/event-call-note-status-changed.html
    """

    TOPIC: ClassVar[int] = 30028
    type: int = 30028
    msg: CallNoteInfo = msgspec.field(default_factory=CallNoteInfo)


class AgentStatusChanged(Event, frozen=True, gc=False):
    """30029: a queue agent's status changed (paused, unpaused...).

    Source: https://help.yeastar.com/en/p-series-appliance-edition/developer-guide/event-agent-status-changed.html
    """

    TOPIC: ClassVar[int] = 30029
    type: int = 30029
    msg: AgentStatusInfo = msgspec.field(default_factory=AgentStatusInfo)


class BulkMessageFailed(Event, frozen=True, gc=False):
    """30030: messages of a bulk message campaign failed, partly or completely.

    Source: https://help.yeastar.com/en/p-series-software-edition/developer-guide/event-bulk-message-sending-failed.html
    """

    TOPIC: ClassVar[int] = 30030
    type: int = 30030
    msg: BulkMessageFailedInfo = msgspec.field(default_factory=BulkMessageFailedInfo)


class MessageSendingResult(Event, frozen=True, gc=False):
    """30032: the delivery status of a message sent through the API changed.

    Source: https://help.yeastar.com/en/p-series-appliance-edition/developer-guide/event-message-sending-result.html
    """

    TOPIC: ClassVar[int] = 30032
    type: int = 30032
    msg: MessageSendingInfo = msgspec.field(default_factory=MessageSendingInfo)


class SystemEventInformation(Event, frozen=True, gc=False):
    """30034: an information-level PBX system event occurred (``msg.event_level`` ``info``).

    Source: https://help.yeastar.com/en/p-series-appliance-edition/developer-guide/event-system-event-notification-information.html
    """

    TOPIC: ClassVar[int] = 30034
    type: int = 30034
    msg: SystemEventInfo = msgspec.field(default_factory=SystemEventInfo)


class SystemEventWarning(Event, frozen=True, gc=False):
    """30035: a warning-level PBX system event occurred (``msg.event_level`` ``warn``).

    Source: https://help.yeastar.com/en/p-series-appliance-edition/developer-guide/event-system-event-notification-warning.html
    """

    TOPIC: ClassVar[int] = 30035
    type: int = 30035
    msg: SystemEventInfo = msgspec.field(default_factory=SystemEventInfo)


class SystemEventAlert(Event, frozen=True, gc=False):
    """30036: an alert-level PBX system event occurred (``msg.event_level`` ``error``).

    Source: https://help.yeastar.com/en/p-series-cloud-edition/developer-guide/event-system-event-notification-alert.html
    (same payload as 30034/30035, whose pages give the table and examples).
    """

    TOPIC: ClassVar[int] = 30036
    type: int = 30036
    msg: SystemEventInfo = msgspec.field(default_factory=SystemEventInfo)


class ReadReceipt(Event, frozen=True, gc=False):
    """30038: an external chat contact read a message (needs "External chat read receipt").

    ``msg`` arrives JSON-encoded as a string: ``{"data": {session_id, read_msg_id, user_id,
    read_time}}``. Source:
    https://help.yeastar.com/zh-cn/p-series-appliance-edition/developer-guide/event-read-receipt-event-notification.html
    """

    TOPIC: ClassVar[int] = 30038
    type: int = 30038
    msg: ReadReceiptInfo = msgspec.field(default_factory=ReadReceiptInfo)


class UnknownEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A frame with a topic that has no event class, or whose ``msg`` could not be decoded.

    ``msg`` is the payload decoded as plain JSON values (a JSON-string ``msg`` is parsed when it
    holds JSON; otherwise it is kept as the string); ``raw`` is the frame exactly as received.
    """

    type: int | None = None
    """The topic number from the frame, when it had one."""
    sn: str | None = None
    """PBX serial number, when the frame had one."""
    msg: Any = None
    """The payload as plain JSON values."""
    raw: str | bytes = ""
    """The whole frame as received."""
    reason: str = ""
    """Why it is not a typed event: ``"unknown topic"`` or the payload's decoding error."""
    name: str = ""
    """What the topic is, when this library knows it: a topic known by number only (see
    :data:`KNOWN_TOPICS`, e.g. ``"report download"`` for 30027), or the event class whose
    payload could not be decoded (``"CallStatusChanged"``); ``""`` for a topic never heard of.
    Filled in when not given."""

    def __post_init__(self) -> None:
        if not self.name and self.type is not None:
            cls = TOPICS.get(self.type)
            name = cls.__name__ if cls is not None else KNOWN_TOPICS.get(self.type, "")
            if name:
                force_setattr(self, "name", name)


class LocalEvent(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Base of the events the client itself emits about the link (never sent by the PBX)."""


class Connected(LocalEvent, kw_only=True, frozen=True, gc=False):
    """The stream is connected and subscribed (the PBX acknowledged the topic list)."""

    reconnect: bool = False
    """``False`` on the first connect, ``True`` after a link was lost and replaced."""
    gap: float | None = None
    """Seconds since the previous link was lost (``None`` on the first connect): live events of
    that window were missed. A token rotation that overlapped makes no gap (no event)."""
    recovered_cdrs: int = 0
    """CDRs of the gap (or since the ``since=`` checkpoint) fetched over REST; that many
    :class:`CdrRecovered` events follow this one."""
    recovery_error: str = ""
    """Why CDR recovery failed (``""``: it worked, or was not needed)."""
    unrecoverable_topics: frozenset[int] = frozenset()
    """Subscribed topics whose events of the gap are gone for good: every topic but 30012
    (and 30012 too without ``recover_cdrs``). Reconcile them over REST (``call.query`` ...)."""


class Disconnected(LocalEvent, kw_only=True, frozen=True, gc=False):
    """The link was lost or replaced; a reconnect follows unless the client is closing."""

    reason: str = ""
    """Short human-readable cause (never contains a token)."""
    unrecoverable_topics: frozenset[int] = frozenset()
    """Subscribed topics whose events until the next :class:`Connected` will be missed for good
    (see :attr:`Connected.unrecoverable_topics`); CDRs are recovered with ``recover_cdrs``."""


#: Topic number -> event class, for every topic whose payload is documented.
TOPICS: dict[int, type[Event]] = {
    cls.TOPIC: cls
    for cls in (
        OrganizationStatusChanged,
        OrganizationConfigChanged,
        ExtensionRegistrationChanged,
        ExtensionCallStatusChanged,
        ExtensionPresenceChanged,
        TrunkRegistrationChanged,
        CallStatusChanged,
        NewCdr,
        CallTransferred,
        CallForwarded,
        CallFailed,
        IncomingCallRequest,
        DtmfReceived,
        PromptPlaybackEnded,
        SatisfactionSurveyResult,
        UaCstaCallEvent,
        ExtensionConfigChanged,
        TrunkConfigChanged,
        ConferenceHostLeft,
        AgentAutoPaused,
        AgentRingTimeout,
        CallNoteAvailability,
        AgentStatusChanged,
        BulkMessageFailed,
        MessageSendingResult,
        SystemEventInformation,
        SystemEventWarning,
        SystemEventAlert,
        ReadReceipt,
    )
}

#: The topics of the April 2024 manual (30005–30026): what every P-Series firmware with the API
#: sends. The others in :data:`TOPICS` come with later firmware.
MANUAL_TOPICS: frozenset[int] = frozenset(topic for topic in TOPICS if topic <= 30026)

#: Topics known by number but not by payload -> what they are. Their frames decode as
#: :class:`UnknownEvent` with this :attr:`~UnknownEvent.name`; ``on()`` / ``subscribe()`` take
#: the number. 30031 and 30033 are listed among the webhook-capable IDs of ``webhook/query``;
#: 30027 is named by a third-party summary (unverified); 30037 is only known to exist.
KNOWN_TOPICS: dict[int, str] = {
    30027: "report download",
    30031: "undocumented topic (listed by webhook/query)",
    30033: "undocumented topic (listed by webhook/query)",
    30037: "undocumented topic",
}


def topic_of(target: int | type) -> int | None:
    """The PBX topic that ``target`` stands for; ``None`` for a local event class.

    ``target`` is an event class (``CallStatusChanged`` -> 30011; ``Connected`` /
    ``Disconnected`` -> None) or a topic number. Any positive topic number is accepted, also one
    this library has no class for (newer firmware): such frames arrive as :class:`UnknownEvent`.

    Raises:
        TypeError: ``target`` is neither an int nor an event class.
        ValueError: ``target`` is a non-positive number, or a class that stands for no single
            topic (``Event``, ``UnknownEvent``, ``LocalEvent``).
    """
    if isinstance(target, bool):
        raise TypeError(f"not an event class or topic number: {target!r}")
    if isinstance(target, int):
        if target <= 0:
            raise ValueError(f"not a valid topic number: {target!r}")
        return target
    if isinstance(target, type):
        topic = getattr(target, "TOPIC", None)
        if issubclass(target, Event) and isinstance(topic, int):
            return topic
        if issubclass(target, LocalEvent) and target is not LocalEvent:
            return None
        if issubclass(target, (Event, UnknownEvent, LocalEvent)):
            raise ValueError(f"{target.__name__} stands for no single topic; name a concrete event")
    raise TypeError(f"not an event class or topic number: {target!r}")
