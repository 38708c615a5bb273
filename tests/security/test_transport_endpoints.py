"""Red team, issue 11 point 4: endpoint strings and the User-Agent cannot steer the request.

``request()`` refuses endpoints that would leave the API path or carry a fragment before any
I/O (no login either); a ``user_agent`` with control characters is refused at construction.
"""

from __future__ import annotations

import pytest

from tests._secrets import SecretWatch
from yeastar_async import YeastarClient
from yeastar_async._http import check_endpoint

from ._transport_rig import CLIENT_ID, SECRET, bounded, client_for, hostile

BAD_ENDPOINTS = [
    "../get_token",
    "extension/../../admin",
    "extension/..",
    "%2e%2e/get_token",
    "%2E%2e/x",
    ".%2e/x",
    "%252e%252e/x",  # decoded twice by a lenient proxy
    "extension/./list",
    "extension/list#frag",
    "extension/list%23frag",
    "extension\\..\\list",
    "extension/list\r\nX-Injected: 1",
    "extension/list\x00",
    "extension/list?page=1",
]


@pytest.mark.parametrize("endpoint", BAD_ENDPOINTS)
@bounded()
async def test_bad_endpoints_are_refused_before_any_io(
    endpoint: str, secrets_never_logged: SecretWatch
) -> None:
    async with hostile(secrets_never_logged) as pbx:
        async with client_for(pbx, revoke_on_close=False) as client:
            with pytest.raises(ValueError, match="endpoint") as info:
                await client.request("GET", endpoint)
        assert repr(endpoint) in str(info.value)
        assert pbx.seen == []  # not even a login


@pytest.mark.parametrize(
    "endpoint", ["extension/list", "/extension/list/", "recording/download", "call/dial", "a.b/c"]
)
def test_ordinary_endpoints_pass(endpoint: str) -> None:
    assert check_endpoint(endpoint) == endpoint.strip("/")


@pytest.mark.parametrize("agent", ["OpenAPI\r\nX-Evil: 1", "OpenAPI\n", "Open\x00API", "A\x7f"])
def test_user_agent_with_control_characters_is_refused(agent: str) -> None:
    with pytest.raises(ValueError, match="user_agent") as info:
        YeastarClient("http://127.0.0.1:9", CLIENT_ID, SECRET, user_agent=agent)
    assert repr(agent) in str(info.value)


def test_an_ordinary_user_agent_is_kept() -> None:
    client = YeastarClient("http://127.0.0.1:9", CLIENT_ID, SECRET, user_agent="OpenAPI bot/1.0")
    assert client._transport.user_agent == "OpenAPI bot/1.0"
