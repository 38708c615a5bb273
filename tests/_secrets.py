"""Checks that no log record, and no raised exception, contains a client secret or a token.

:func:`assert_no_secret` walks one exception as a user (or a logging handler, or an error
reporter) could see it: its ``str`` and ``repr``, its ``args``, every attribute, and the same for
every exception in its ``__cause__`` / ``__context__`` chain.

:class:`SecretWatch` registers every FakePBX started and every YeastarClient built while it is
installed, captures every log record at DEBUG through a handler on the root logger, and at the
end compares each formatted record (message, arguments, traceback) with every client secret and
every access/refresh token the fakes issued, dead or alive.

The cost stays small under a flood of DEBUG records: a record is formatted once when logged,
and the final check joins the texts and searches each secret in the joined text (one C-level
substring scan per secret, not one per record and secret).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import pytest

from yeastar_async import YeastarClient
from yeastar_async.testing import FakePBX

__all__ = ["SecretWatch", "assert_no_secret", "exception_texts"]


def _texts_of(value: Any, seen: set[int], depth: int = 0) -> Iterable[str]:
    """Every string reachable from ``value`` through containers and attributes (bounded)."""
    if depth > 6 or id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, str):
        yield value
    elif isinstance(value, bytes | bytearray):
        yield bytes(value).decode("latin-1")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts_of(key, seen, depth + 1)
            yield from _texts_of(item, seen, depth + 1)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _texts_of(item, seen, depth + 1)
    elif isinstance(value, BaseException):
        yield from exception_texts(value, seen)
    elif value is not None and not isinstance(value, type | int | float | bool):
        # Any other object (a URL, aiohttp's request info ...): its text, then its attributes.
        yield str(value)
        yield repr(value)
        for item in getattr(value, "__dict__", {}).values():
            yield from _texts_of(item, seen, depth + 1)


def exception_texts(exc: BaseException, seen: set[int] | None = None) -> Iterable[str]:
    """The texts of ``exc`` and of its whole ``__cause__`` / ``__context__`` chain."""
    seen = set() if seen is None else seen
    current: BaseException | None = exc
    while current is not None:
        seen.add(id(current))
        yield f"{type(current).__name__}: {current}"
        yield repr(current)
        for arg in current.args:
            yield from _texts_of(arg, seen)
        for item in vars(current).values():
            yield from _texts_of(item, seen)
        yield from getattr(current, "__notes__", ())
        cause = current.__cause__
        if cause is not None and id(cause) not in seen:
            yield from exception_texts(cause, seen)
        nxt = current.__context__
        current = nxt if nxt is not None and id(nxt) not in seen else None


def assert_no_secret(exc: BaseException, secrets: Iterable[str]) -> None:
    """Fail if any secret appears anywhere in ``exc`` or its chain (the secret stays masked)."""
    texts = list(exception_texts(exc))
    for secret in secrets:
        for text in texts:
            if secret in text:
                raise AssertionError(
                    f"a secret appears in {type(exc).__name__}'s texts or chain: "
                    f"{text.replace(secret, '<SECRET>')[:300]}"
                )


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)  # the message with its args, plus any traceback
        except Exception:  # a record that cannot be formatted: keep what it holds
            text = f"{record.msg!r} {record.args!r}"
        self.texts.append(text)


class SecretWatch:
    """Collects secrets and log records; :meth:`check` fails on any secret in any record."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fakes: list[FakePBX] = []
        self.client_secrets: set[str] = set()
        self.extra: dict[str, str] = {}
        self._capture = _Capture()
        self._root = logging.getLogger()
        self._level = self._root.level
        fake_start = FakePBX.start
        client_init = YeastarClient.__init__
        watch = self

        async def start(fake: FakePBX) -> FakePBX:
            watch.fakes.append(fake)
            return await fake_start(fake)

        def init(client: YeastarClient, *args: Any, **kwargs: Any) -> None:
            secret = args[2] if len(args) > 2 else kwargs.get("client_secret")
            if isinstance(secret, str) and secret:
                watch.client_secrets.add(secret)
            client_init(client, *args, **kwargs)

        monkeypatch.setattr(FakePBX, "start", start)
        monkeypatch.setattr(YeastarClient, "__init__", init)

    def add(self, secret: str, label: str) -> None:
        """Look for ``secret`` too (a token a hostile test server issued, say)."""
        self.extra[secret] = label

    def install(self) -> None:
        """Capture every record from now on (the root logger goes to DEBUG)."""
        self._root.addHandler(self._capture)
        self._root.setLevel(logging.DEBUG)

    def uninstall(self) -> None:
        """Stop capturing and restore the root logger's level."""
        self._root.removeHandler(self._capture)
        self._root.setLevel(self._level)

    @property
    def records(self) -> int:
        """How many records were captured."""
        return len(self._capture.texts)

    def secrets(self) -> dict[str, str]:
        """Every secret to look for, with a label saying what it is (never the secret itself)."""
        found: dict[str, str] = {}
        for fake in self.fakes:
            found[fake.client_secret] = "the client secret of a FakePBX"
            for token in fake.issued_tokens():
                found[token] = "a token issued by a FakePBX"
        for secret in self.client_secrets:
            found.setdefault(secret, "the client secret given to a YeastarClient")
        for secret, label in self.extra.items():
            found.setdefault(secret, label)
        # Guard against a degenerate value that would match everything.
        return {s: label for s, label in found.items() if len(s) >= 8}

    def check(self) -> None:
        """Fail naming the first record that contains a secret (the secret stays masked)."""
        texts = self._capture.texts
        if not texts:
            return
        blob = "\n".join(texts)
        for secret, label in self.secrets().items():
            if secret not in blob:
                continue
            record = next(t for t in texts if secret in t)
            raise AssertionError(
                f"{label} appears in a log record: {record.replace(secret, '<SECRET>')[:300]}"
            )
