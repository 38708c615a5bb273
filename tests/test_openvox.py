"""OpenVoxClient against FakeOpenVox over loopback: every route call, session and error path,
in both wire formats."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trustme

from tests._openvox import MD5, PASSWORD, watch
from tests._secrets import SecretWatch
from tests.security._transport_rig import bounded
from yeastar_async.errors import AuthenticationError, LockoutGuardError, TransportError
from yeastar_async.openvox import (
    InboundRoute,
    OpenVoxAuthError,
    OpenVoxClient,
    OpenVoxError,
    OpenVoxLockoutError,
    OpenVoxTokenError,
    OutboundRoute,
    forget_login_failures,
)
from yeastar_async.testing import FakeOpenVox

pytestmark = pytest.mark.parametrize("fmt", ["json", "xml"])


class Clock:
    """A monotonic clock the test moves by hand, shared by the fake and the client."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def pbx(clock: Clock, secrets_never_logged: SecretWatch) -> AsyncIterator[FakeOpenVox]:
    forget_login_failures()
    async with FakeOpenVox(password=PASSWORD, clock=clock) as fake:
        yield fake
    watch(secrets_never_logged, fake)
    forget_login_failures()


def client(pbx: FakeOpenVox, fmt: Any, **kwargs: Any) -> OpenVoxClient:
    kwargs.setdefault("password", PASSWORD)
    kwargs.setdefault("clock", pbx.clock)
    return OpenVoxClient(pbx.base_url, kwargs.pop("username", "api"), fmt=fmt, **kwargs)


async def attempt(ov: OpenVoxClient) -> None:
    """Log in and out (closing the client whatever happens)."""
    async with ov:
        pass


def sent(pbx: FakeOpenVox, endpoint: str) -> list[dict[str, str]]:
    return [r.params for r in pbx.requests if r.endpoint == endpoint]


@bounded()
async def test_inroute_calls(pbx: FakeOpenVox, fmt: Any) -> None:
    pbx.add_inroute("main", "extension", "1000", did="5550100")
    async with client(pbx, fmt) as ov:
        await ov.inroute.add("night", desttype="voicemail", dest="1000", caller_id="")
        routes = await ov.inroute.query()
        assert routes == [
            InboundRoute(id=1, name="main", did="5550100", desttype="extension", dest="1000"),
            InboundRoute(id=2, name="night", desttype="voicemail", dest="1000"),
        ]
        assert [r.name for r in await ov.inroute.query(["night", "main"])] == ["night", "main"]
        await ov.inroute.update("main", desttype="queue", dest="6400")
        (main,) = await ov.inroute.query("main")
        # did left out of the update: the PBX keeps it.
        assert (main.desttype, main.dest, main.did) == ("queue", "6400", "5550100")
        await ov.inroute.delete("night")
        assert [r.name for r in await ov.inroute.query("all")] == ["main"]
        await ov.inroute.delete("all")
        assert await ov.inroute.query() == []
    assert sent(pbx, "inroute/update") == [{"name": "main", "desttype": "queue", "dest": "6400"}]
    assert sent(pbx, "inroute/add")[0]["caller_id"] == ""
    assert sent(pbx, "inroute/query")[1] == {"name": "night,main"}
    for record in pbx.requests:
        assert record.fmt == fmt
        if record.body:
            assert record.body.startswith(b"<?xml" if fmt == "xml" else b"{")
            assert record.content_type.startswith(f"application/{fmt}")


@bounded()
async def test_outroute_calls(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt) as ov:
        await ov.outroute.add("to16", matchpattern="X.", prefix="16", trunks="to-18-16-2")
        await ov.outroute.add("intl", matchpattern="00X.", trunks=["sip1", "sip2"], callerid="2XX")
        routes = await ov.outroute.query()
        assert routes[1] == OutboundRoute(
            id=2, name="intl", matchpattern="00X.", callerid="2XX", trunks="sip1,sip2"
        )
        assert routes[1].trunk_names == ("sip1", "sip2")
        await ov.outroute.update(
            routes[0].id or 0, "to17", matchpattern="X.", trunks=["sip2"], prepend="9"
        )
        (renamed,) = await ov.outroute.query("to17")
        assert (renamed.id, renamed.prepend, renamed.prefix, renamed.trunks) == (
            1,
            "9",
            "16",
            "sip2",
        )
        await ov.outroute.delete(["to17", "intl"])
        assert await ov.outroute.query() == []
    assert sent(pbx, "outroute/add")[0] == {
        "name": "to16",
        "matchpattern": "X.",
        "trunks": "to-18-16-2",
        "prefix": "16",
    }
    assert sent(pbx, "outroute/update")[0]["id"] == "1"
    assert sent(pbx, "outroute/delete") == [{"name": "to17,intl"}]


@bounded()
async def test_login_md5_and_logout_on_close(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt, report_url="http://192.0.2.1:8260/reports") as ov:
        assert pbx.live_tokens
    (login,) = sent(pbx, "login")
    assert login["password"] == MD5
    assert (login["username"], login["port"], login["urltag"]) == ("api", "8260", "1")
    assert pbx.requests[-1].endpoint == "logout"
    assert pbx.live_tokens == []
    assert "logged_in=False" in repr(ov)
    with pytest.raises(RuntimeError, match="closed"):
        await ov.inroute.query()


@bounded()
async def test_wrong_password_is_an_auth_error(pbx: FakeOpenVox, fmt: Any) -> None:
    with pytest.raises(OpenVoxAuthError) as caught:
        async with client(pbx, fmt, password="wrong-password"):
            pass
    err = caught.value
    assert isinstance(err, AuthenticationError)
    assert (err.errno, err.endpoint) == ("30003", "login")
    assert "wrong-password" not in str(err)
    assert "username=api" in str(err)


@bounded()
async def test_a_fifth_wrong_password_is_never_sent(pbx: FakeOpenVox, fmt: Any) -> None:
    for _ in range(4):
        with pytest.raises(OpenVoxAuthError) as caught:
            await attempt(client(pbx, fmt, password="wrong-password"))
        assert not isinstance(caught.value, OpenVoxLockoutError)
    # Another client, even another user name: the PBX locks the IP, so the count is shared.
    for user in ("api", "other"):
        ov = client(pbx, fmt, password="wrong-password", username=user)
        with pytest.raises(OpenVoxLockoutError, match="refused 4 logins in a row") as caught:
            await attempt(ov)
        assert isinstance(caught.value, LockoutGuardError)
    assert pbx.count("login") == 4
    assert not pbx.is_locked()


@bounded()
async def test_concurrent_logins_cannot_add_up_to_five(pbx: FakeOpenVox, fmt: Any) -> None:
    clients = [client(pbx, fmt, password="wrong-password") for _ in range(6)]
    results = await asyncio.gather(*(c.login() for c in clients), return_exceptions=True)
    assert pbx.count("login") <= 4
    assert all(isinstance(r, OpenVoxAuthError) for r in results)
    assert not pbx.is_locked()
    await asyncio.gather(*(c.aclose() for c in clients))


@bounded()
async def test_a_success_resets_the_guard(pbx: FakeOpenVox, fmt: Any) -> None:
    for _ in range(3):
        with pytest.raises(OpenVoxAuthError):
            await attempt(client(pbx, fmt, password="wrong-password"))
    async with client(pbx, fmt):
        pass
    for _ in range(3):
        with pytest.raises(OpenVoxAuthError):
            await attempt(client(pbx, fmt, password="wrong-password"))
    assert pbx.count("login") == 7


@bounded()
async def test_heartbeat_before_the_idle_expiry(pbx: FakeOpenVox, fmt: Any, clock: Clock) -> None:
    async with client(pbx, fmt, report_host="192.0.2.7") as ov:
        await ov.inroute.query()
        clock.now += 1199
        await ov.inroute.query()
        assert pbx.count("heartbeat") == 0
        clock.now += 1201  # idle 20 minutes: a heartbeat first, the same token kept
        await ov.inroute.query()
        assert pbx.count("heartbeat") == 1
        assert sent(pbx, "heartbeat")[0] == {"ipaddr": "192.0.2.7", "port": "8260"}
        clock.now += 1799  # idle 29:59: the token still lives, a heartbeat keeps it
        await ov.inroute.query()
        assert (pbx.count("login"), pbx.count("heartbeat")) == (1, 2)
        clock.now += 1801  # idle past 30 minutes: the token is gone, log in again
        await ov.inroute.query()
        assert (pbx.count("login"), pbx.count("heartbeat")) == (2, 2)
        assert len(pbx.live_tokens) == 1


@bounded()
async def test_heartbeat_default_address_is_this_host(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt) as ov:
        await ov.heartbeat()
    assert sent(pbx, "heartbeat")[0]["ipaddr"] == "127.0.0.1"


@bounded()
async def test_a_refused_token_logs_in_again_once(pbx: FakeOpenVox, fmt: Any) -> None:
    pbx.add_inroute("main", "extension", "1000")
    async with client(pbx, fmt) as ov:
        pbx.expire_tokens()
        await ov.inroute.update("main", desttype="queue", dest="6400")
        assert pbx.count("login") == 2
        assert pbx.inroutes["main"]["dest"] == "6400"
        pbx.fail_next_errno(2, "20006", endpoint="inroute/query")
        with pytest.raises(OpenVoxTokenError) as caught:
            await ov.inroute.query()
        assert caught.value.errno == "20006"
        assert pbx.count("login") == 3


@bounded()
async def test_failed_answers_are_typed_with_their_errno(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt) as ov:
        with pytest.raises(OpenVoxError) as caught:
            await ov.inroute.update("nope", desttype="hangup", dest="")
        err = caught.value
        assert type(err) is OpenVoxError
        assert (err.errno, err.endpoint, err.request_params) == (
            "40004",
            "inroute/update",
            "name=nope",
        )
        assert "errno 40004" in str(err)
        assert "name=nope" in str(err)
        await ov.outroute.add("a", matchpattern="X.", trunks="t")
        with pytest.raises(OpenVoxError, match="errno 40003"):
            await ov.outroute.add("a", matchpattern="X.", trunks="t")
        with pytest.raises(OpenVoxError, match="errno 40004"):
            await ov.outroute.update(99, "a", matchpattern="X.", trunks="t")
        with pytest.raises(OpenVoxError, match="errno 40004"):
            await ov.outroute.delete(["a", "missing"])


@bounded()
async def test_http_errors_are_transport_errors(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt) as ov:
        pbx.fail_next(1, 503, endpoint="inroute/query")
        with pytest.raises(TransportError) as caught:
            await ov.inroute.query()
        assert caught.value.status == 503
        pbx.answer_raw(b"<html>not an answer", endpoint="outroute/query")
        with pytest.raises(TransportError, match=f"not {fmt.upper()}"):
            await ov.outroute.query()
        pbx.answer_raw(b'{"no": "status"}' if fmt == "json" else b"<xml><a>1</a></xml>")
        with pytest.raises(TransportError, match="no status"):
            await ov.outroute.query()


QUIRKY = {
    "json": (
        b'{"status":"Success","inroutes":[{"id":"","name":"a","did":5550100,"desttype":"queue",'
        b'"dest":6400},{"id":"19","name":"b","desttype":"hangup","dest":""}]}'
    ),
    "xml": (
        b'<?xml version="1.0" encoding="utf-8"?><xml><status>Success</status><inroutes>'
        b'<item id="0"><id></id><name>a</name><did>5550100</did><desttype>queue</desttype>'
        b'<dest>6400</dest></item><item id="1"><id>19</id><name>b</name>'
        b"<desttype>hangup</desttype><dest/></item></inroutes></xml>"
    ),
}


@bounded()
async def test_the_manuals_quirks_decode(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt) as ov:
        pbx.answer_raw(QUIRKY[fmt], endpoint="inroute/query")
        routes = await ov.inroute.query()
        assert routes == [
            InboundRoute(id=None, name="a", did="5550100", desttype="queue", dest="6400"),
            InboundRoute(id=19, name="b", desttype="hangup", dest=""),
        ]
        one = (
            b'{"status":"Success","outroutes":{"id":"3","name":"x","trunks":"t"}}'
            if fmt == "json"
            else b'<xml><status>Success</status><outroutes><item id="0"><id>3</id><name>x</name>'
            b"<trunks>t</trunks></item></outroutes></xml>"
        )
        pbx.answer_raw(one, endpoint="outroute/query")
        assert await ov.outroute.query() == [OutboundRoute(id=3, name="x", trunks="t")]
        pbx.answer_raw(
            b'{"status":"Success","inroutes":[{"name":"a","desttype":"fax","dest":"1"}]}'
            if fmt == "json"
            else b"<xml><status>Success</status><inroutes><item><name>a</name>"
            b"<desttype>fax</desttype><dest>1</dest></item></inroutes></xml>",
            endpoint="inroute/query",
        )
        with pytest.raises(TransportError, match="does not fit"):
            await ov.inroute.query()


@bounded()
async def test_fake_accepts_urltag_as_a_number(pbx: FakeOpenVox, fmt: Any) -> None:
    import aiohttp

    body = (
        f'{{"username":"api","password":"{MD5}","port":8260,"url":"/r","urltag":0}}'
        if fmt == "json"
        else f"<xml><username>api</username><password>{MD5}</password><port>8260</port>"
        "<urltag>0</urltag></xml>"
    )
    async with aiohttp.ClientSession() as session:
        url = f"{pbx.base_url}/api/v0.0.1/login?type={fmt}"
        async with session.post(url, data=body) as resp:
            text = await resp.text()
    assert "Success" in text
    assert pbx.requests[-1].params["urltag"] == "0"


@bounded()
async def test_the_fake_locks_the_ip_for_ten_minutes(
    pbx: FakeOpenVox, fmt: Any, clock: Clock
) -> None:
    for _ in range(4):
        with pytest.raises(OpenVoxAuthError):
            await attempt(client(pbx, fmt, password="wrong-password"))
    forget_login_failures()  # let a 5th through, to see the fake lock
    with pytest.raises(OpenVoxAuthError):
        await attempt(client(pbx, fmt, password="wrong-password"))
    assert pbx.is_locked()
    forget_login_failures()
    with pytest.raises(OpenVoxAuthError) as caught:
        await attempt(client(pbx, fmt))  # the right password, but the IP is locked
    assert caught.value.errno == "20002"
    clock.now += 600
    async with client(pbx, fmt):
        assert not pbx.is_locked()


@bounded()
async def test_arguments_are_checked_before_any_request(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt) as ov:
        before = len(pbx.requests)
        bad: list[tuple[Callable[[], Any], type[Exception], str]] = [
            (lambda: ov.inroute.update("a", desttype="fax", dest="1"), ValueError, "'fax'"),
            (lambda: ov.inroute.add("a", desttype="queue", dest=" "), ValueError, "dest"),
            (lambda: ov.inroute.add("", desttype="queue", dest="1"), ValueError, "name"),
            (lambda: ov.inroute.query([]), ValueError, "at least one"),
            (lambda: ov.inroute.delete("a,b"), ValueError, "'a,b' holds a comma"),
            (lambda: ov.inroute.delete(["all", "a"]), ValueError, "'all' stands alone"),
            (lambda: ov.inroute.query([1]), TypeError, "1"),  # type: ignore[list-item]
            (lambda: ov.outroute.add("a", matchpattern="", trunks="t"), ValueError, "matchpattern"),
            (lambda: ov.outroute.add("a", matchpattern="X", trunks=[]), ValueError, "trunks"),
            (lambda: ov.outroute.update(-1, "a", matchpattern="X", trunks="t"), ValueError, "-1"),
            (lambda: ov.outroute.add("a", matchpattern="X", trunks="t", prefix=9), TypeError, "9"),  # type: ignore[arg-type]
        ]
        for call, exc, text in bad:
            with pytest.raises(exc, match=text):
                await call()
        assert len(pbx.requests) == before


def test_constructor_refuses_bad_settings(fmt: Any) -> None:
    for kwargs, text in [
        ({"base_url": "ftp://pbx"}, "base_url"),
        ({"base_url": "https://pbx/api/v1.1.0"}, "API path"),
        ({"fmt": "yaml"}, "'yaml'"),
        ({"username": " "}, "username"),
        ({"report_port": 0}, "report_port"),
        ({"heartbeat_after": 1800.0}, "idle_expiry"),
        ({"max_concurrency": 0}, "max_concurrency"),
    ]:
        args: dict[str, Any] = {
            "base_url": "https://pbx",
            "username": "api",
            "password": PASSWORD,
            "fmt": fmt,
            **kwargs,
        }
        with pytest.raises(ValueError, match=text) as caught:
            OpenVoxClient(args.pop("base_url"), args.pop("username"), args.pop("password"), **args)
        assert PASSWORD not in str(caught.value)


@bounded()
async def test_no_secret_in_logs_or_repr(
    pbx: FakeOpenVox, fmt: Any, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pbx.add_inroute("main", "extension", "1000")
    async with client(pbx, fmt) as ov:
        await ov.inroute.query()
        clock.now += 1500
        await ov.inroute.query()
        pbx.expire_tokens()
        await ov.inroute.query()
        pbx.fail_next(1, 500)
        with pytest.raises(TransportError):
            await ov.inroute.query()
        text = repr(ov) + caplog.text
    for secret in (PASSWORD, MD5, *pbx.issued_tokens):
        assert secret not in text


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@bounded()
async def test_tls_pin_and_ca_file(fmt: Any, ca: trustme.CA, tmp_path: Any) -> None:
    cert = ca.issue_cert("127.0.0.1")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server)
    der = ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())
    pin = hashlib.sha256(der).hexdigest()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    forget_login_failures()
    async with FakeOpenVox(password=PASSWORD, ssl_context=server) as fake:
        assert fake.base_url.startswith("https://")
        for option in (pin, str(ca_file)):
            async with client(fake, fmt, ssl=option) as ov:
                await ov.inroute.query()
        with pytest.raises(TransportError, match="does not match the pin"):
            await attempt(client(fake, fmt, ssl="00" * 32))
        with pytest.raises(TransportError):
            await attempt(client(fake, fmt))  # the system store does not know the test CA
        assert fake.count("login") == 2


@bounded()
async def test_a_login_without_verdict_is_not_counted(pbx: FakeOpenVox, fmt: Any) -> None:
    pbx.fail_next(4, 503, endpoint="login")
    for _ in range(4):
        with pytest.raises(TransportError):
            await attempt(client(pbx, fmt))
    for _ in range(4):  # four wrong passwords are still allowed: the 503s proved nothing
        with pytest.raises(OpenVoxAuthError) as caught:
            await attempt(client(pbx, fmt, password="wrong-password"))
        assert not isinstance(caught.value, OpenVoxLockoutError)


@bounded()
async def test_a_request_that_never_left_is_retried(fmt: Any) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)

    forget_login_failures()
    # A port nothing listens on: refused, so the login provably never left.
    async with FakeOpenVox(password=PASSWORD) as fake:
        dead = fake.base_url
    ov = OpenVoxClient(dead, "api", PASSWORD, fmt=fmt, retries=2, sleep=sleep)
    with pytest.raises(TransportError, match="cannot connect") as caught:
        await attempt(ov)
    assert caught.value.sent is False
    assert len(delays) == 2


@bounded()
async def test_values_xml_cannot_carry_fail_before_any_request(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt) as ov:
        before = len(pbx.requests)
        if fmt == "xml":
            with pytest.raises(ValueError, match=r"dest='1\\x07'"):
                await ov.inroute.add("a", desttype="extension", dest="1\x07")
            assert len(pbx.requests) == before
        else:
            await ov.inroute.add("a", desttype="extension", dest="1\x07")
            assert pbx.inroutes["a"]["dest"] == "1\x07"


@bounded()
async def test_login_twice_keeps_one_token(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt) as ov:
        await ov.login()
        await asyncio.gather(ov.inroute.query(), ov.outroute.query(), ov.login())
    assert (pbx.count("login"), len(pbx.issued_tokens), pbx.live_tokens) == (1, 1, [])


@bounded()
async def test_close_goes_on_when_logout_fails(pbx: FakeOpenVox, fmt: Any) -> None:
    async with client(pbx, fmt) as ov:
        pbx.fail_next(1, 500, endpoint="logout")
    assert pbx.count("logout") == 1
    assert "logged_in=False" in repr(ov)
    await ov.aclose()  # idempotent
    assert pbx.count("logout") == 1
