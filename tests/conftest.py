"""Shared test setup.

aioresponses compatibility shim: aioresponses 0.7.9 builds ``ClientResponse`` objects without the
``stream_writer`` argument that aiohttp 3.14 requires (pnuckowski/aioresponses#289; fixes in PRs
#288 and #292, unreleased). aiohttp only reads ``stream_writer.output_size`` from it, so the shim
passes a stand-in with ``output_size = 0``. Remove it once aioresponses releases a fix.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests._secrets import SecretWatch
from yeastar_async._guard import reset_login_guards


def _install_aioresponses_shim() -> None:
    try:
        import aioresponses.core as core
    except ImportError:  # pragma: no cover - aioresponses is in the test extra
        return
    params = inspect.signature(aiohttp.ClientResponse.__init__).parameters
    if "stream_writer" not in params or getattr(core, "_yeastar_shim", False):
        return

    class _NoStreamWriter:
        output_size = 0

    class _CompatClientResponse(aiohttp.ClientResponse):
        def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", _NoStreamWriter())
            super().__init__(method, url, **kwargs)

    core.ClientResponse = _CompatClientResponse  # type: ignore[misc]
    core._yeastar_shim = True  # type: ignore[attr-defined]


_install_aioresponses_shim()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def secrets_never_logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[SecretWatch]:
    """Every test: no log record at any level holds a client secret or a token a fake issued."""
    watch = SecretWatch(monkeypatch)
    watch.install()
    try:
        yield watch
    finally:
        watch.uninstall()
    watch.check()


@pytest.fixture(autouse=True)
def login_guard_isolated(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every test: the lockout guard's state file in a fresh temporary directory (never the
    developer's home), and no count or cached resolution left in memory by another test (every
    FakePBX is 127.0.0.1, one guard key)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state")))
    reset_login_guards()
    try:
        yield
    finally:
        reset_login_guards()
