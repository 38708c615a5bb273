"""TLS contexts are shared per TLS choice and built only when a TLS connection needs one."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from yeastar_async import YeastarClient
from yeastar_async import _tls as tls


@pytest.fixture
def no_shared_contexts(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, ...], ssl.SSLContext]:
    """An empty process-wide cache, and a count of the contexts the SDK builds."""
    cache: dict[tuple[str, ...], ssl.SSLContext] = {}
    monkeypatch.setattr(tls, "_shared_contexts", cache)
    return cache


def test_clients_of_one_tls_choice_share_one_default_context(
    no_shared_contexts: dict[tuple[str, ...], ssl.SSLContext],
) -> None:
    clients = [YeastarClient(f"https://pbx{i}.example.com:8088", "id", "secret") for i in range(3)]
    # Construction builds nothing: the trust store is loaded at the first TLS connection.
    assert no_shared_contexts == {}
    contexts = {id(c._transport.tls.for_aiohttp()) for c in clients}
    contexts |= {id(c._transport.tls.for_websocket()) for c in clients}
    assert len(contexts) == 1
    assert list(no_shared_contexts) == [("default",)]


def test_a_plain_http_client_builds_no_context(
    no_shared_contexts: dict[tuple[str, ...], ssl.SSLContext],
) -> None:
    client = YeastarClient("http://pbx.example.com", "id", "secret")
    assert client._transport.ws_ssl() is None
    assert no_shared_contexts == {}


def test_pinned_clients_share_one_unverified_websocket_context(
    no_shared_contexts: dict[tuple[str, ...], ssl.SSLContext],
) -> None:
    pins = ("aa" * 32, "bb" * 32)
    policies = [tls.TlsPolicy(pin) for pin in pins]
    first, second = (p.for_websocket() for p in policies)
    assert first is second
    assert first.verify_mode == ssl.CERT_NONE
    # Each client still checks its own pin.
    assert [p.pin for p in policies] == [bytes.fromhex(pin) for pin in pins]


def test_a_ca_file_is_loaded_once_and_again_when_it_changes(
    no_shared_contexts: dict[tuple[str, ...], ssl.SSLContext], tmp_path: Path
) -> None:
    ca_file = tmp_path / "pbx-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    first = tls.TlsPolicy(str(ca_file)).for_aiohttp()
    assert tls.TlsPolicy(ca_file).for_aiohttp() is first
    # A renewed CA written over the old file is read anew, not served from the cache.
    trustme.CA().cert_pem.write_to_path(str(ca_file))
    renewed = tls.TlsPolicy(str(ca_file)).for_aiohttp()
    assert renewed is not first
    assert isinstance(renewed, ssl.SSLContext)


def test_a_broken_ca_file_is_still_refused_at_construction(tmp_path: Path) -> None:
    broken = tmp_path / "broken.pem"
    broken.write_text("not a certificate\n")
    with pytest.raises(ssl.SSLError):
        YeastarClient("https://pbx.example.com:8088", "id", "secret", ssl=str(broken))
