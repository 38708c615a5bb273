"""Audit of issue 11, point 5: an unanswered login is never sent again by the retry loop.

A ``get_token`` that went out and got no answer (a PBX or proxy slower than ``timeout``, a
connection dropped after the request) may have been counted by the PBX as a rejected login,
while the lockout guard, having no verdict, takes it back. The transport retried it up to
``retries`` times: one ``login()`` with a wrong secret against a PBX answering late reached the
PBX three times, and six logins blocked the IP (18 rejections). Now such a login is sent once;
a login that provably never left, or that got a 502/503/504, is still retried.
"""

from __future__ import annotations

import asyncio

import pytest

from yeastar_async import YeastarClient
from yeastar_async.errors import AuthenticationError, TransportError
from yeastar_async.testing import FakePBX

WRONG = "wrong-secret-123"


async def test_a_login_without_an_answer_is_sent_once() -> None:
    async with FakePBX() as pbx, asyncio.timeout(10):
        pbx.delay_next(10, 5.0, endpoint="get_token")  # answers after the client gave up
        async with YeastarClient(
            pbx.base_url, pbx.client_id, WRONG, timeout=0.2, retries=2, retry_backoff=0.01
        ) as client:
            with pytest.raises(TransportError, match="no answer"):
                await client.login()
        assert pbx.count("get_token") == 1  # was 3: two retries the guard never counted


async def test_a_login_answered_503_is_still_retried() -> None:
    async with FakePBX() as pbx, asyncio.timeout(10):
        pbx.fail_next(2, 503, endpoint="get_token")  # a proxy's "try again": no verdict
        async with YeastarClient(
            pbx.base_url, pbx.client_id, pbx.client_secret, retries=2, retry_backoff=0.01
        ) as client:
            await client.login()
        assert pbx.count("get_token") == 3


async def test_a_rejected_login_is_still_sent_once_and_counted() -> None:
    async with FakePBX() as pbx, asyncio.timeout(10):
        async with YeastarClient(pbx.base_url, pbx.client_id, WRONG, retries=2) as client:
            with pytest.raises(AuthenticationError):
                await client.login()
        assert pbx.count("get_token") == 1
        assert not pbx.is_blocked()
