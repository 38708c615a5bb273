"""Red team, issue 11 point 2: a server echoing the client's secret or token gets it masked.

The PBX, or a proxy in front of it, may echo what it was sent in any field of an error answer
or in a body that is not JSON at all. The client knows its own secret and tokens: no exception
message, attribute, chain or log record built from such an answer may show them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from aiohttp import web

from tests._secrets import SecretWatch, assert_no_secret
from yeastar_async._http import decode_envelope
from yeastar_async._models import ApiResponse
from yeastar_async._secrets import SecretMask
from yeastar_async.errors import ParameterError, TransportError, YeastarError, error_for

from ._transport_rig import SECRET, Handler, HostilePBX, bounded, client_for, hostile, secrets_of

#: Non-JSON bodies in the shapes seen from proxies and broken firmware; {t} is the token sent.
BODY_SHAPES = [
    "upstream error for access_token%3D{t}&x=1",
    "{{'access_token': '{t}'}}",
    "invalid token {t}",
    "proxy said: {t} is not allowed",  # bare: only the client's own knowledge can mask it
    "<html>rejected {t} / {s}</html>",
    '{{"errcode": "x", "errmsg": "{t}"}}',
]


def echo_body(shape: str, status: int) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        return web.Response(status=status, text=shape.format(t=token, s=SECRET))

    return handler


def echo_envelope(errcode: int) -> Handler:
    """An error envelope that puts the request's token and the client secret everywhere."""

    async def handler(request: web.Request) -> web.Response:
        token = request.query.get("access_token") or SECRET
        return web.json_response(
            {
                "errcode": errcode,
                "errmsg": f"PARAMETER ERROR {token}",
                "submsg": f"{SECRET} was {token}",
                "invalid_param_list": [
                    {"field": "number", "value": token, "validation_type": SECRET},
                    {"field": token, "value": [token, {"nested": SECRET}]},
                ],
                "duplicate_field_list": [{"field": "username", "value": SECRET}],
            }
        )

    return handler


def check_masked(exc: BaseException, pbx: HostilePBX) -> None:
    assert_no_secret(exc, secrets_of(pbx))
    assert "***" in str(exc) or "***" in getattr(exc, "body_excerpt", "")


@pytest.mark.parametrize("status", [200, 500])
@pytest.mark.parametrize("shape", BODY_SHAPES)
@bounded()
async def test_non_json_bodies_echoing_the_token_are_masked(
    shape: str, status: int, secrets_never_logged: SecretWatch
) -> None:
    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["extension/list"] = echo_body(shape, status)
        async with client_for(pbx) as client:
            with pytest.raises(TransportError) as info:
                await client.request("GET", "extension/list")
        assert info.value.status == status
        check_masked(info.value, pbx)


@bounded()
async def test_retry_log_records_of_an_echoing_502_are_masked(
    secrets_never_logged: SecretWatch,
) -> None:
    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["extension/list"] = echo_body("bad gateway for {t}", 502)
        async with client_for(pbx, retries=1, retry_backoff=0.01) as client:
            with pytest.raises(TransportError) as info:
                await client.request("GET", "extension/list")
        check_masked(info.value, pbx)
        assert pbx.hits("extension/list") == 2  # the INFO record of the retry was checked too


@pytest.mark.parametrize("route", ["extension/list", "get_token"])
@bounded()
async def test_error_envelopes_echoing_secrets_are_masked_in_every_attribute(
    route: str, secrets_never_logged: SecretWatch
) -> None:
    async with hostile(secrets_never_logged) as pbx:
        pbx.routes[route] = echo_envelope(40002)
        async with client_for(pbx) as client:
            with pytest.raises(ParameterError) as info:
                await client.request("GET", "extension/list", params={"number": "1000"})
        exc = info.value
        check_masked(exc, pbx)
        assert exc.errmsg.startswith("PARAMETER ERROR ***")
        assert exc.submsg == "*** was ***"
        assert exc.invalid_param_list[0] == {
            "field": "number",
            "value": "***",
            "validation_type": "***",
        }
        assert exc.invalid_param_list[1]["value"] == ["***", {"nested": "***"}]
        assert exc.duplicate_field_list == [{"field": "username", "value": "***"}]


@pytest.mark.parametrize(
    "route",
    [
        lambda: echo_envelope(10005),
        lambda: echo_body("forbidden: {t}", 403),
        lambda: echo_body('{{"errcode": 60001, "errmsg": "no file for {t}"}}', 200),
    ],
)
@bounded()
async def test_download_errors_echoing_the_token_are_masked(
    route: Callable[[], Handler], secrets_never_logged: SecretWatch
) -> None:
    async with hostile(secrets_never_logged) as pbx:
        pbx.routes["/api/download/call.wav"] = route()
        async with client_for(pbx) as client:
            with pytest.raises(YeastarError) as info:
                async for _ in client.files.iter_bytes("/api/download/call.wav"):
                    pass
        check_masked(info.value, pbx)


def test_error_for_applies_the_mask_to_every_server_text() -> None:
    mask = SecretMask([SECRET])
    exc = error_for(
        40002,
        f"bad {SECRET}",
        endpoint="x",
        submsg=SECRET,
        invalid_param_list=[{"field": SECRET, "value": (SECRET, 5)}],
        duplicate_field_list=[{"field": "f", "value": {"k": SECRET}}],
        mask=mask,
    )
    assert_no_secret(exc, [SECRET])
    assert exc.invalid_param_list == [{"field": "***", "value": ["***", 5]}]


def test_decode_envelope_masks_with_the_mask_it_is_given() -> None:
    mask = SecretMask([SECRET])
    with pytest.raises(TransportError) as info:
        decode_envelope(f"<html>{SECRET}</html>".encode(), "x", ApiResponse, mask=mask)
    assert_no_secret(info.value, [SECRET])
    assert info.value.body_excerpt == "<html>***</html>"
    assert info.value.__context__ is None
