"""``extension/*`` endpoints, manual lines 1538-3888 and the vendor's current pages (generated
by tools/gen_resources.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict, Unpack

import msgspec

from yeastar_async._models import ApiResponse
from yeastar_async.resources import _base as api
from yeastar_async.resources._shared import Destination, SubOrg

__all__ = [
    "ExtBasicinfo",
    "ExtDetailInfo",
    "ExtensionDtmfMode",
    "ExtensionForwardDestination",
    "ExtensionGetpasswordResponse",
    "ExtensionLinkusMobileCodec",
    "ExtensionListQuery",
    "ExtensionOptions",
    "ExtensionPresenceStatus",
    "ExtensionResource",
    "ExtensionSortBy",
    "OnlineStatus",
    "OnlineStatusByEndpoint",
    "OrganizationInfo",
    "OrganizationInfoParam",
    "PresenceSetting",
    "PresenceSettingParam",
    "StatusList",
]

ExtensionSortBy = Literal[
    "id", "number", "caller_id_name", "email_addr", "mobile_number", "presence_status"
]
ExtensionPresenceStatus = Literal[
    "available", "away", "business_trip", "do_not_disturb", "lunch", "off_work"
]
ExtensionDtmfMode = Literal["rfc4733", "info", "inband", "auto"]
ExtensionLinkusMobileCodec = Literal["ulaw", "alaw", "ilbc", "g722", "g729", "opus"]
ExtensionForwardDestination = Destination | Literal["mobile_number"]


class OrganizationInfoParam(api.RequestModel, kw_only=True):
    """``Organization_Info`` parameter of ``extension/create``, ``extension/update`` (manual
    line 3249).
    """

    value: str
    """Unique ID of the department."""


class PresenceSettingParam(api.RequestModel, kw_only=True):
    """``Presence_Setting`` parameter of ``extension/create``, ``extension/update`` (manual line
    3257).
    """

    status: ExtensionPresenceStatus
    """Extension presence status."""
    enb_in_always_forward: api.Flag | None = None
    """Whether to forward all internal calls to a destination (always forward)."""
    in_always_forward_dest: ExtensionForwardDestination | None = None
    """Destination type for always-forwarding internal calls."""
    in_always_forward_prefix: str | None = None
    """Prefix / play count for always-forwarding internal calls; depends on the destination
    type."""
    in_always_forward_value: str | None = None
    """Destination for always-forwarding internal calls."""
    in_always_forward_num: str | None = None
    """External number when the internal always-forward destination is external_num."""
    enb_in_no_answer_forward: api.Flag | None = None
    """Whether to forward internal calls when the extension does not answer (no-answer forward)."""
    in_no_answer_forward_dest: ExtensionForwardDestination | None = None
    """Destination type for no-answer forwarding of internal calls."""
    in_no_answer_forward_prefix: str | None = None
    """Prefix / play count for no-answer forwarding of internal calls; depends on the
    destination type."""
    in_no_answer_forward_value: str | None = None
    """Destination for no-answer forwarding of internal calls."""
    in_no_answer_forward_num: str | None = None
    """External number when the internal no-answer forward destination is external_num."""
    enb_in_busy_forward: api.Flag | None = None
    """Whether to forward internal calls when the extension is busy (busy forward)."""
    in_busy_forward_dest: ExtensionForwardDestination | None = None
    """Destination type for busy forwarding of internal calls."""
    in_busy_forward_prefix: str | None = None
    """Prefix / play count for busy forwarding of internal calls; depends on the destination
    type."""
    in_busy_forward_value: str | None = None
    """Destination for busy forwarding of internal calls."""
    in_busy_forward_num: str | None = None
    """External number when the internal busy forward destination is external_num."""
    enb_ex_always_forward: api.Flag | None = None
    """Whether to forward all external calls to a destination (always forward)."""
    ex_always_forward_dest: ExtensionForwardDestination | None = None
    """Destination type for always-forwarding external calls."""
    ex_always_forward_prefix: str | None = None
    """Prefix / play count for always-forwarding external calls; depends on the destination
    type."""
    ex_always_forward_value: str | None = None
    """Destination for always-forwarding external calls."""
    ex_always_forward_num: str | None = None
    """External number when the external always-forward destination is external_num."""
    enb_ex_no_answer_forward: api.Flag | None = None
    """Whether to forward external calls when the extension does not answer (no-answer forward)."""
    ex_no_answer_forward_dest: ExtensionForwardDestination | None = None
    """Destination type for no-answer forwarding of external calls."""
    ex_no_answer_forward_prefix: str | None = None
    """Prefix / play count for no-answer forwarding of external calls; depends on the
    destination type."""
    ex_no_answer_forward_value: str | None = None
    """Destination for no-answer forwarding of external calls."""
    ex_no_answer_forward_num: str | None = None
    """External number when the external no-answer forward destination is external_num."""
    enb_ex_busy_forward: api.Flag | None = None
    """Whether to forward external calls when the extension is busy (busy forward)."""
    ex_busy_forward_dest: ExtensionForwardDestination | None = None
    """Destination type for busy forwarding of external calls."""
    ex_busy_forward_prefix: str | None = None
    """Prefix / play count for busy forwarding of external calls; depends on the destination
    type."""
    ex_busy_forward_value: str | None = None
    """Destination for busy forwarding of external calls."""
    ex_busy_forward_num: str | None = None
    """External number when the external busy forward destination is external_num."""
    ring_timeout: int | None = None
    """Ring timeout for incoming calls."""
    enb_ring_mobile: api.Flag | None = None
    """Whether the mobile phone rings simultaneously when the extension rings."""


class ExtensionListQuery(api.SortedQuery[ExtensionSortBy], total=False):
    """Parameters of ``extension/list``, ``extension/search``: paging, ``order_by`` and
    ``sort_by``.
    """


class ExtensionOptions(TypedDict, total=False):
    """Parameters shared by ``extension/create``, ``extension/update`` (keyword arguments)."""

    first_name: str | None
    """First name."""
    last_name: str | None
    """Last name."""
    email_addr: str | None
    """Email address."""
    mobile_number: str | None
    """Mobile number."""
    role_id: int | None
    """Unique ID of the extension user's role."""
    organization_list: Sequence[OrganizationInfoParam | Mapping[str, Any]] | None
    """Departments the extension belongs to. Required when department management is enabled on
    the PBX."""
    title: str | None
    """Job title of the extension user."""
    caller_id: str | None
    """Caller ID number."""
    presence_list: Sequence[PresenceSettingParam | Mapping[str, Any]] | None
    """Presence status settings."""
    presence_mobile_prefix: str | None
    """Dial prefix of the mobile number for the "ring mobile simultaneously" feature."""
    agent_id: str | None
    """Agent ID announced to callers when the extension answers a queue call as an agent."""
    enb_vm: api.Flag | None
    """Whether to enable voicemail."""
    enb_vm_pin: api.Flag | None
    """Whether to enable voicemail PIN authentication."""
    vm_pin: str | None
    """PIN for accessing voicemail."""
    new_vm_notification: Literal["no", "with_attach", "without_attach"] | None
    """Whether and how to notify the extension of new voicemail."""
    vm_after_notification: Literal["no", "mark_read", "delete"] | None
    """What to do with voicemail after the notification email is sent."""
    enb_all_reject_mode_for_endpoints: api.Flag | None
    """Whether to stop ringing the other endpoints after a call is rejected on one of the
    extension's endpoints."""
    dtmf_mode: ExtensionDtmfMode | None
    """DTMF mode."""
    transport: Literal["udp", "tcp", "tls"] | None
    """Transport protocol."""
    enb_qualify: api.Flag | None
    """Whether to enable Qualify."""
    enb_t38_support: api.Flag | None
    """Whether to enable T.38 support."""
    enb_nat: api.Flag | None
    """Whether to enable NAT."""
    enb_srtp: api.Flag | None
    """Whether to enable voice encryption (SRTP)."""
    allow_reg_remotely: api.Flag | None
    """Whether to allow remote registration."""
    disable_outb_call: api.Flag | None
    """Whether outbound (external) calls are blocked."""
    disable_outb_call_outside_business_hours: api.Flag | None
    """Whether outbound calls outside business hours are blocked."""
    disable_international_call: api.Flag | None
    """Whether international calls are blocked."""
    outbound_route_permission: Sequence[int] | None
    """Unique IDs of the outbound routes the extension may use."""
    enb_internal_client: api.Flag | None
    """Whether to enable Linkus calling."""
    linkus_mobile_codec: ExtensionLinkusMobileCodec | None
    """Codec for the Linkus Mobile client."""
    enb_ice: Literal["yes", "no"] | None
    """Whether to enable ICE (Interactive Connectivity Establishment) for Linkus Mobile."""


class _ExtBasicinfoFields(msgspec.Struct, kw_only=True):
    """Fields shared by :class:`ExtBasicinfo`, :class:`ExtDetailInfo`."""

    id: api.Int64 | None = None
    """Unique ID of the extension."""
    number: str | None = None
    """Extension number."""
    email_addr: str | None = None
    """Email address."""
    mobile_number: str | None = None
    """Mobile number."""


class ExtBasicinfo(_ExtBasicinfoFields, kw_only=True):
    """``Ext_Basicinfo`` of ``extension/list``, ``extension/search`` (manual line 1578).

    Also the fields of :class:`_ExtBasicinfoFields`.
    """

    online_status: OnlineStatusByEndpoint | None = None
    """Online status of the extension's endpoints, covering the following endpoints."""
    presence_statuses: str | None = None
    """Extension presence status."""
    caller_id_name: str | None = None
    """User name."""
    role_name: str | None = None
    """User role."""
    presence_status: str | None = None
    """Extension presence status."""


class OnlineStatus(msgspec.Struct, kw_only=True):
    """``Online_Status`` of ``extension/list``, ``extension/search`` (manual line 1597)."""

    status: api.Int64 | None = None
    """Online status of the extension on this endpoint (except SIP endpoints)."""
    ext_dev_type: str | None = None
    """Type of the online endpoint."""
    status_list: list[StatusList] = []
    """Details of the extension's online status on SIP endpoints."""


class StatusList(msgspec.Struct, kw_only=True):
    """``Status_List`` of ``extension/list``, ``extension/search`` (manual line 1606)."""

    status: api.Int64 | None = None
    """Online status of the extension on the SIP endpoint."""
    ip: str | None = None
    """IP address and SIP port of the SIP endpoint."""
    linkus_dev_type: str | None = None
    """Type of the online Linkus Mobile / Linkus Pad (SDK) client."""


class ExtDetailInfo(_ExtBasicinfoFields, kw_only=True):
    """``Ext_DetailInfo`` of ``extension/get``, ``extension/query`` (manual line 1958).

    Also the fields of :class:`_ExtBasicinfoFields`.
    """

    type: str | None = None
    """Extension type."""
    first_name: str | None = None
    """First name."""
    last_name: str | None = None
    """Last name."""
    organization_list: list[OrganizationInfo] = []
    """Departments the extension belongs to."""
    role_id: api.Int64 | None = None
    """Unique ID of the extension user's role."""
    title: str | None = None
    """Job title of the extension user."""
    caller_id: str | None = None
    """Caller ID number."""
    reg_name: str | None = None
    """Authentication (registration) name."""
    reg_password: str | None = None
    """Registration password."""
    concurrent_registrations: api.Int64 | None = None
    """Number of concurrent SIP endpoint registrations."""
    presence_status: str | None = None
    """Current presence status of the extension."""
    presence_list: list[PresenceSetting] = []
    """Presence status settings."""
    agent_id: str | None = None
    """Agent ID announced to callers when the extension answers a queue call as an agent."""
    enb_vm: api.Int64 | None = None
    """Whether voicemail is enabled."""
    enb_vm_pin: api.Int64 | None = None
    """Whether voicemail PIN authentication is enabled."""
    vm_pin: str | None = None
    """PIN for accessing voicemail."""
    new_vm_notification: str | None = None
    """Whether and how to notify the extension of new voicemail."""
    vm_after_notification: str | None = None
    """What to do with voicemail after the notification email is sent."""
    enb_all_reject_mode_for_endpoints: api.Int64 | None = None
    """Whether the other endpoints stop ringing after a call is rejected on one of the
    extension's endpoints."""
    dtmf_mode: str | None = None
    """DTMF mode."""
    transport: str | None = None
    """Transport protocol."""
    enb_qualify: api.Int64 | None = None
    """Whether Qualify is enabled."""
    enb_t38_support: api.Int64 | None = None
    """Whether T.38 support is enabled."""
    enb_nat: api.Int64 | None = None
    """Whether NAT is enabled."""
    enb_srtp: api.Int64 | None = None
    """Whether voice encryption (SRTP) is enabled."""
    allow_reg_remotely: api.Int64 | None = None
    """Whether remote registration is allowed."""
    disable_outb_call: api.Int64 | None = None
    """Whether outbound (external) calls are blocked."""
    disable_outb_call_outside_business_hours: api.Int64 | None = None
    """Whether outbound calls outside business hours are blocked."""
    disable_international_call: api.Int64 | None = None
    """Whether international calls are blocked."""
    outbound_route_permission: list[api.Int64] = []
    """Unique IDs of the outbound routes the extension may use."""
    enb_mobile_client: api.Int64 | None = None
    """Whether Linkus Mobile client is enabled."""
    enb_web_client: api.Int64 | None = None
    """Whether Linkus Web client is enabled."""
    enb_desktop_client: api.Int64 | None = None
    """Whether Linkus Desktop client is enabled."""
    enb_pad_client: api.Int64 | None = None
    """Whether Linkus Pad (SDK) client is enabled."""
    enb_internal_client: api.Int64 | None = None
    """Whether Linkus calling is enabled."""
    linkus_mobile_codec: str | None = None
    """Codec for the Linkus Mobile client."""
    enb_ice: str | None = None
    """Whether ICE (Interactive Connectivity Establishment) is enabled for Linkus Mobile."""
    user_password: str | None = None
    """User password."""


class PresenceSetting(msgspec.Struct, kw_only=True):
    """``Presence_Setting`` of ``extension/get``, ``extension/query`` (manual line 2019)."""

    status: str | None = None
    """Extension presence status."""
    enb_in_always_forward: api.Int64 | None = None
    """Whether to forward all internal calls to a destination (always forward)."""
    in_always_forward_dest: str | None = None
    """Destination type for always-forwarding internal calls."""
    in_always_forward_prefix: str | None = None
    """Prefix / play count for always-forwarding internal calls; meaning depends on the
    destination type."""
    in_always_forward_value: str | None = None
    """Destination for always-forwarding internal calls."""
    in_always_forward_num: str | None = None
    """External number when the internal always-forward destination is external_num."""
    enb_in_no_answer_forward: api.Int64 | None = None
    """Whether to forward internal calls when the extension does not answer (no-answer forward)."""
    in_no_answer_forward_dest: str | None = None
    """Destination type for no-answer forwarding of internal calls."""
    in_no_answer_forward_prefix: str | None = None
    """Prefix / play count for no-answer forwarding of internal calls; meaning depends on the
    destination type."""
    in_no_answer_forward_value: str | None = None
    """Destination for no-answer forwarding of internal calls."""
    in_no_answer_forward_num: str | None = None
    """External number when the internal no-answer forward destination is external_num."""
    enb_in_busy_forward: api.Int64 | None = None
    """Whether to forward internal calls when the extension is busy (busy forward)."""
    in_busy_forward_dest: str | None = None
    """Destination type for busy forwarding of internal calls."""
    in_busy_forward_prefix: str | None = None
    """Prefix / play count for busy forwarding of internal calls; meaning depends on the
    destination type."""
    in_busy_forward_value: str | None = None
    """Destination for busy forwarding of internal calls."""
    in_busy_forward_num: str | None = None
    """External number when the internal busy forward destination is external_num."""
    enb_ex_always_forward: api.Int64 | None = None
    """Whether to forward all external calls to a destination (always forward)."""
    ex_always_forward_dest: str | None = None
    """Destination type for always-forwarding external calls."""
    ex_always_forward_prefix: str | None = None
    """Prefix / play count for always-forwarding external calls; meaning depends on the
    destination type."""
    ex_always_forward_value: str | None = None
    """Destination for always-forwarding external calls."""
    ex_always_forward_num: str | None = None
    """External number when the external always-forward destination is external_num."""
    enb_ex_no_answer_forward: api.Int64 | None = None
    """Whether to forward external calls when the extension does not answer (no-answer forward)."""
    ex_no_answer_forward_dest: str | None = None
    """Destination type for no-answer forwarding of external calls."""
    ex_no_answer_forward_prefix: str | None = None
    """Prefix / play count for no-answer forwarding of external calls; meaning depends on the
    destination type."""
    ex_no_answer_forward_value: str | None = None
    """Destination for no-answer forwarding of external calls."""
    ex_no_answer_forward_num: str | None = None
    """External number when the external no-answer forward destination is external_num."""
    enb_ex_busy_forward: api.Int64 | None = None
    """Whether to forward external calls when the extension is busy (busy forward)."""
    ex_busy_forward_dest: str | None = None
    """Destination type for busy forwarding of external calls."""
    ex_busy_forward_prefix: str | None = None
    """Prefix / play count for busy forwarding of external calls; meaning depends on the
    destination type."""
    ex_busy_forward_value: str | None = None
    """Destination for busy forwarding of external calls."""
    ex_busy_forward_num: str | None = None
    """External number when the external busy forward destination is external_num."""
    ring_timeout: api.Int64 | None = None
    """Ring timeout for incoming calls."""
    enb_ring_mobile: api.Int64 | None = None
    """Whether the mobile number rings simultaneously when the extension rings."""
    mobile_prefix: str | None = None
    """Dial prefix for the "ring mobile simultaneously" feature."""
    mobile_number: str | None = None
    """Mobile number."""
    in_always_forward_destination: str | None = None
    """Spelling variant of in_always_forward_dest."""


class ExtensionGetpasswordResponse(ApiResponse, kw_only=True):
    """Answer of ``extension/getpassword`` (source:
    https://help.yeastar.com/en/p-series-appliance-edition/developer-guide/query-password-of-an-extension.html).
    """

    password: str | None = None
    """The password or PIN, Base64-encoded."""

    def __repr__(self) -> str:
        return api.masked_repr(self, ["password"])


#: ``Organization_Info`` of ``extension/get``: the fields of :class:`SubOrg`.
OrganizationInfo = SubOrg


class OnlineStatusByEndpoint(msgspec.Struct, kw_only=True):
    """Online status of an extension per endpoint kind (manual line 1579)."""

    sip_phone: OnlineStatus | None = None
    """SIP phones."""
    linkus_desktop: OnlineStatus | None = None
    """Linkus desktop client."""
    linkus_mobile: OnlineStatus | None = None
    """Linkus mobile client."""
    linkus_web: OnlineStatus | None = None
    """Linkus web client."""


class ExtensionResource(api.Resource):
    """``client.extension``: ``list``, ``search``, ``get``, ``query``, ``create``,
    ``send_welcome_email``, ``update``, ``delete``, ``getpassword``.
    """

    group = "extension"
    id_doc = "Unique ID of the extension."
    ids_doc = "Unique IDs of the extensions. A list is sent comma-separated."
    _pages = api.Pages[api.PageResponse[ExtBasicinfo], ExtBasicinfo, ExtensionSortBy]()
    list = _pages.list("Query extension list.", 1538)
    search = _pages.search("Search extensions.", 1774)
    get = api.by_id(api.ObjectResponse[ExtDetailInfo], "Query one extension.", 1927)
    query = api.by_ids(api.ListResponse[ExtDetailInfo], "Query multiple extensions.", 2386)

    @api.endpoint("POST", "extension/create")
    async def create(
        self,
        *,
        type: Literal["SIP"],
        user_password: str,
        number: str,
        reg_name: str,
        reg_password: str,
        concurrent_registrations: Literal[1, 2, 3],
        presence_status: ExtensionPresenceStatus,
        timeout: float | None = None,
        **options: Unpack[ExtensionOptions],
    ) -> api.CreatedResponse:
        """Add an extension.

        ``POST extension/create``, manual line 3162. More parameters: :class:`ExtensionOptions`.

        Args:
            type: Extension type.
            user_password: User password.
            number: Extension number.
            reg_name: Authentication (registration) name.
            reg_password: Registration password.
            concurrent_registrations: Number of concurrent IP phone registrations.
            presence_status: Current presence status of the extension.
        """

    @api.endpoint("POST", "extension/send_welcome_email")
    async def send_welcome_email(
        self, *, id_list: Sequence[int], timeout: float | None = None
    ) -> ApiResponse:
        """Send Linkus welcome email to extensions.

        ``POST extension/send_welcome_email``, manual line 3633.

        Args:
            id_list: Unique IDs of the extensions.
        """

    @api.endpoint("POST", "extension/update")
    async def update(
        self,
        *,
        id: int,
        user_password: str | None = None,
        reg_name: str | None = None,
        reg_password: str | None = None,
        concurrent_registrations: Literal[1, 2, 3] | None = None,
        presence_status: ExtensionPresenceStatus | None = None,
        timeout: float | None = None,
        **options: Unpack[ExtensionOptions],
    ) -> ApiResponse:
        """Edit an extension.

        ``POST extension/update``, manual line 3695. More parameters: :class:`ExtensionOptions`.

        Args:
            id: Unique ID of the extension.
            presence_status: Extension presence status.
            user_password, reg_name, reg_password, concurrent_registrations: as for
                :meth:`create`.
        """

    delete = api.by_id(ApiResponse, "Delete an extension.", 3888)

    @api.endpoint("GET", "extension/getpassword")
    async def getpassword(
        self, *, id: int, type: Literal["reg_password", "vm_pin"], timeout: float | None = None
    ) -> ExtensionGetpasswordResponse:
        """Query the password of an extension.

        ``GET extension/getpassword``, source:
        https://help.yeastar.com/en/p-series-appliance-edition/developer-guide/query-password-of-an-extension.html.

        Args:
            id: Unique ID of the extension.
            type: Password type: reg_password (registration password) or vm_pin (voicemail
                access PIN).
        """
