"""A check that no log record, at any level, contains a client secret or a token.

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
from typing import Any

import pytest

from yeastar_async import YeastarClient
from yeastar_async.testing import FakePBX

__all__ = ["SecretWatch"]


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
