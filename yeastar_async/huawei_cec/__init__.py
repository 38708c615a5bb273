"""Huawei Cloud CEC (AICC) client: the called routes of the contact-center management API.

::

    from yeastar_async.huawei_cec import CecClient, DeviceType

    async with CecClient("service.besclouds.com", app_key, app_secret) as cec:
        page = await cec.called_route.query(access_code="4001")
        for route in page.routes:
            await cec.called_route.modify(
                route_id=route.id, device_type=DeviceType.SKILL_QUEUE, device_id=7
            )

Endpoints (all ``POST``): ``tokenByAkSk`` (the token, renewed by the client),
``calledRoute/createCalledRoute``, ``queryCalledRoute`` (a :class:`Paginator`),
``modifyCalledRoute`` (by route :data:`CalledRouteId`) and ``deleteCalledRoute`` (by
:data:`Dnid`). Errors: :class:`CecError` and its subclasses for what the CEC answered,
:class:`~yeastar_async.errors.TransportError` below that.
"""

from ..resources._base import Paginator
from ._client import DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL, CecClient
from ._errors import (
    CecAuthError,
    CecError,
    CecHttpError,
    CecPartialDeleteError,
    CecReturnCodeError,
)
from ._models import (
    CalledRoute,
    CalledRouteId,
    CalledRouteList,
    CalledRoutePage,
    CecResult,
    DeleteOutcome,
    DeleteResult,
    DeviceType,
    Dnid,
    MediaTypeId,
)
from ._routes import MAX_DNIDS, MAX_LIMIT, CalledRouteResource

__all__ = [
    "DEFAULT_TOKEN_TTL",
    "MAX_DNIDS",
    "MAX_LIMIT",
    "MAX_TOKEN_TTL",
    "CalledRoute",
    "CalledRouteId",
    "CalledRouteList",
    "CalledRoutePage",
    "CalledRouteResource",
    "CecAuthError",
    "CecClient",
    "CecError",
    "CecHttpError",
    "CecPartialDeleteError",
    "CecResult",
    "CecReturnCodeError",
    "DeleteOutcome",
    "DeleteResult",
    "DeviceType",
    "Dnid",
    "MediaTypeId",
    "Paginator",
]
