"""Found by a newcomer's trial of merged main: what an error says about the request it answers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from yeastar_async import YeastarClient, cli
from yeastar_async.cli import _fake, _webhook
from yeastar_async.errors import NotFoundError
from yeastar_async.testing import FakePBX
from yeastar_async.webhooks import SIGNATURE_HEADER, WebhookReceiver, sign


@pytest.mark.usefixtures("yeastar_login_guard_isolation")
async def test_a_cdr_detail_not_found_names_the_uid_asked_for() -> None:
    # `cdr.detail(uid=...)` (v2.0) answered "DATA NOT FOUND" without saying for which record,
    # while every other lookup names its id ("... for id=235").
    async with (
        FakePBX(firmware="84.23.0.123") as fake,
        YeastarClient(fake.base_url, fake.client_id, fake.client_secret) as pbx,
    ):
        with pytest.raises(NotFoundError) as got:
            async with asyncio.timeout(10):
                await pbx.cdr.detail(uid="1796647840.2")
    assert "for uid=1796647840.2" in str(got.value)
    assert got.value.request_params == "uid=1796647840.2"


@pytest.mark.parametrize(
    ("call", "said"),
    [
        (lambda pbx: pbx.call.hangup(channel_id=""), "(got none) (channel_id given empty)"),
        (
            lambda pbx: pbx.call_report.list(
                type="extcallstatistics",
                start_time=datetime(2026, 1, 1),
                end_time=datetime(2026, 2, 1),
                ext_id_list=[],
            ),
            "ext_id_list required when type='extcallstatistics' or 'extcallactivity' "
            "(ext_id_list given empty)",
        ),
    ],
)
async def test_an_empty_required_argument_is_called_empty(call: Any, said: str) -> None:
    # `yeastar-async call hangup ""` printed "give exactly one of channel_id, paging_number
    # (got none)", as if no channel ID had been typed at all.
    pbx = YeastarClient("http://127.0.0.1:9", "client-id", "client-secret")  # no I/O: refused first
    try:
        with pytest.raises(ValueError, match="given empty") as got:
            await call(pbx)
        assert said in str(got.value)
    finally:
        await pbx.aclose()


@pytest.mark.usefixtures("yeastar_login_guard_isolation")
@pytest.mark.parametrize(
    ("firmware", "model"),
    [
        ("84.23.0.123", "P-Series Cloud Edition"),
        ("37.21.0.117", "P-Series Appliance Edition"),
        ("83.20.0.21", "P-Series Software Edition"),
        (None, "P-Series Software Edition"),  # the manual's example, X.7.0.16
    ],
)
async def test_the_fake_reports_the_model_of_its_firmware_edition(
    firmware: str | None, model: str
) -> None:
    # FakePBX(firmware="84.23.0.123") said "P-Series Software Edition, firmware 84.23.0.123" in
    # `yeastar-async doctor`: a Cloud firmware on a Software model.
    async with (
        FakePBX(firmware=firmware) as fake,
        YeastarClient(fake.base_url, fake.client_id, fake.client_secret) as pbx,
    ):
        async with asyncio.timeout(10):
            info = await pbx.system.information()
    assert info.data is not None
    assert info.data.model_name == model


@pytest.mark.usefixtures("yeastar_login_guard_isolation")
async def test_the_fake_downloads_a_listed_recording_under_its_listed_name(tmp_path: Path) -> None:
    # `yeastar-async recording download 614` saved the manual's download example (a 2022-04-12
    # file of 2002 and 2005), not recording 614 as `recording/list` shows it.
    async with (
        FakePBX() as fake,
        YeastarClient(fake.base_url, fake.client_id, fake.client_secret) as pbx,
    ):
        async with asyncio.timeout(10):
            page = await pbx.recording.list(page=1, page_size=10)
            for recording in page.data:
                assert recording.id is not None
                answer = await pbx.recording.download(id=recording.id)
                assert answer.file == recording.file
                saved = await pbx.files.save(answer, f"{tmp_path}/{recording.id}/")  # a folder
                assert saved.name == recording.file
            # An id the list does not show keeps the manual's example answer.
            assert (await pbx.recording.download(id=99999)).file


@pytest.mark.usefixtures("yeastar_login_guard_isolation")
async def test_fake_pbx_command_takes_the_firmware_to_behave_as(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The README's v2.0 CDRs could be tried only from Python (FakePBX(firmware=...)), not with
    # `yeastar-async fake-pbx` and the shell.
    started: asyncio.Queue[FakePBX] = asyncio.Queue()
    monkeypatch.setattr(_fake, "print_fake_credentials", started.put_nowait)
    command = asyncio.create_task(
        cli.amain(["fake-pbx", "--port", "0", "--firmware", "84.23.0.123"])
    )
    try:
        async with asyncio.timeout(10):
            fake = await started.get()
            async with YeastarClient(fake.base_url, fake.client_id, fake.client_secret) as pbx:
                info = await pbx.system.information()
                page = await pbx.cdr.list()
    finally:
        command.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await command
    assert info.data is not None
    assert info.data.firmware_version == "84.23.0.123"
    assert page.api_version == "2.0"
    assert "firmware       84.23.0.123" in capsys.readouterr().out


def test_fake_pbx_command_refuses_a_firmware_that_is_no_p_series_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["fake-pbx", "--firmware", "99.1.2.3"]) == 2
    assert "not a P-Series firmware version" in capsys.readouterr().err


def test_fake_pbx_command_runs_as_the_manual_without_firmware() -> None:
    # argparse runs an option's type on a string default: `default=""` made every plain
    # `fake-pbx` a usage error.
    args = cli.build_parser().parse_args(["fake-pbx"])
    assert args.firmware is None


@pytest.mark.parametrize(
    ("url", "said"),
    [
        (
            "http://0.0.0.0:8080/",
            "every interface of this host (register http://<this host's name or IP>:8080/ on",
        ),
        (
            "http://[::]:8080/hook",
            "(register http://<this host's name or IP>:8080/hook on the PBX)",
        ),
        ("http://192.0.2.7:8080/", "on http://192.0.2.7:8080/ (register this URL on the PBX)"),
    ],
)
def test_webhook_command_says_which_url_to_register(url: str, said: str) -> None:
    # `yeastar-async webhook --port 8080` said "receiving webhooks on http://0.0.0.0:8080/
    # (register this URL on the PBX)": the PBX cannot post to 0.0.0.0.
    assert said in _webhook.listening_line(url)


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
async def test_a_receiver_on_an_ipv6_address_gives_a_url_that_reaches_it() -> None:
    # serve("::1") yielded "http://::1:PORT/", which no client can parse (`webhook --host ::`
    # ended with "Invalid URL: port can't be converted to integer").
    secret = "Pugghh14VCb05rtG7WGumbD4hwJPIvzu"
    body = b'{"type":30036,"sn":"x","msg":{"event_name":"disk_full"}}'
    receiver = WebhookReceiver(secret=secret)
    got: asyncio.Queue[object] = asyncio.Queue()
    receiver.on(30036)(got.put)
    async with receiver, receiver.serve("::1", 0) as url:
        assert url.startswith("http://[::1]:")
        async with aiohttp.ClientSession() as session, asyncio.timeout(10):
            headers = {SIGNATURE_HEADER: sign(secret, body)}
            async with session.post(url, data=body, headers=headers) as answer:
                assert answer.status == 200
            await got.get()
