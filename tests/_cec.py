"""Fixtures of the CEC tests (``pytest_plugins = ["tests._cec"]``): a settable clock, the fake,
and a client of it.

The ``cec_fake`` fixture registers the fake's app secret and every token it issued with the
autouse log watch (``secrets_never_logged``), so no CEC test can log one unnoticed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests._clock import Clock
from tests._secrets import SecretWatch
from yeastar_async.huawei_cec import CecClient
from yeastar_async.testing import FakeCec


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def cec_fake(clock: Clock, secrets_never_logged: SecretWatch) -> AsyncIterator[FakeCec]:
    async with FakeCec(clock=clock) as fake:
        try:
            yield fake
        finally:
            secrets_never_logged.client_secrets.add(fake.app_secret)
            secrets_never_logged.client_secrets.update(fake.issued_tokens())


@pytest.fixture
async def cec(cec_fake: FakeCec, clock: Clock) -> AsyncIterator[CecClient]:
    async with CecClient(
        cec_fake.base_url, cec_fake.app_key, cec_fake.app_secret, clock=clock, timeout=5.0
    ) as client:
        yield client
