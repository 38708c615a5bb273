"""Shared pieces of the OpenVox tests: the fake's password and the log check for its secrets."""

from __future__ import annotations

import hashlib

from tests._secrets import SecretWatch
from yeastar_async.testing import FakeOpenVox

__all__ = ["MD5", "PASSWORD", "watch"]

PASSWORD = "correct-horse-battery"
MD5 = hashlib.md5(PASSWORD.encode()).hexdigest()


def watch(secrets: SecretWatch, fake: FakeOpenVox) -> None:
    """No log record of the test may hold the password, its MD5 or a token the fake issued."""
    secrets.add(PASSWORD, "OpenVox password")
    secrets.add(MD5, "OpenVox password MD5")
    for token in fake.issued_tokens:
        secrets.add(token, "OpenVox token")
