"""The OpenVox UC IPPBX API v0.0.1: inbound and outbound routes, JSON or XML on the wire.

``from yeastar_async.openvox import OpenVoxClient``; see :class:`OpenVoxClient`. The fake PBX
for tests is :class:`yeastar_async.testing.FakeOpenVox`.
"""

from ._codec import Format
from ._guard import MAX_REJECTED, forget_login_failures
from .client import TOKEN_ERRNOS, InboundRouteApi, OpenVoxClient, OutboundRouteApi
from .errors import OpenVoxAuthError, OpenVoxError, OpenVoxLockoutError, OpenVoxTokenError
from .models import DEST_TYPES, DestType, InboundRoute, Names, OutboundRoute

__all__ = [
    "DEST_TYPES",
    "MAX_REJECTED",
    "TOKEN_ERRNOS",
    "DestType",
    "Format",
    "InboundRoute",
    "InboundRouteApi",
    "Names",
    "OpenVoxAuthError",
    "OpenVoxClient",
    "OpenVoxError",
    "OpenVoxLockoutError",
    "OpenVoxTokenError",
    "OutboundRoute",
    "OutboundRouteApi",
    "forget_login_failures",
]
