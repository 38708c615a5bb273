"""What a type checker tells users about their code: mypy --strict on a user's module.

The SDK promises typed handlers, subscriptions and answers; these checks keep the promise from
eroding (a too-loose signature passes every runtime test).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

USER_CODE = """
from typing import Any

import msgspec

from yeastar_async import YeastarClient, events


class Info(msgspec.Struct):
    firmware_version: str = ""


class Answer(msgspec.Struct):
    data: Info


async def fine(pbx: YeastarClient) -> None:
    @pbx.on(events.NewCdr)
    async def exact(ev: events.NewCdr) -> None: ...

    @pbx.on(events.NewCdr)
    async def wider(ev: events.Event) -> None: ...

    @pbx.on(30012)
    async def by_topic(ev: Any) -> None: ...

    async with pbx.subscribe(events.NewCdr) as cdrs:
        async for cdr in cdrs:
            reveal_type(cdr)
    answer = await pbx.request("GET", "system/information", response_type=Answer)
    reveal_type(answer)
    async for ext in pbx.extension.list():
        reveal_type(ext)


async def wrong(pbx: YeastarClient) -> None:
    @pbx.on(events.NewCdr)
    async def other_event(ev: events.CallStatusChanged) -> None: ...

    @pbx.on(events.NewCdr)
    async def two_arguments(ev: events.NewCdr, extra: int) -> None: ...

    @pbx.on(events.NewCdr)
    def not_async(ev: events.NewCdr) -> None: ...
"""


def test_mypy_strict_on_user_code(tmp_path: Path) -> None:
    module = tmp_path / "user_code.py"
    module.write_text(textwrap.dedent(USER_CODE), encoding="utf-8")
    # A cache of its own: the module name is the same in every run, its path is not.
    cache = str(tmp_path / "mypy-cache")
    out, err, status = api.run(
        ["--strict", "--no-error-summary", "--cache-dir", cache, str(module)]
    )
    assert status == 1, (out, err)
    lines = [line.split(": ", 1)[1] for line in out.splitlines() if line.strip()]
    assert 'note: Revealed type is "yeastar_async.events.models.NewCdr"' in lines
    assert 'note: Revealed type is "user_code.Answer"' in lines
    assert 'note: Revealed type is "yeastar_async.resources.extension.ExtBasicinfo"' in lines
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 3, out
    assert "CallStatusChanged" in errors[0]
    assert "[NewCdr, int]" in errors[1]
    assert '"Callable[[NewCdr], None]"' in errors[2]  # a plain function: no Awaitable
