"""Masking of secrets in text built from what a server sent.

Two layers, because a server (or a proxy in front of it) may echo a secret back in any shape:

- :func:`redact` masks values by their *name*: ``access_token=…``, ``"refresh_token": "…"``,
  ``{'password': '…'}``, ``token …``, whatever the value is.
- :class:`SecretMask` masks values by their *text*: one client knows its own client secret and
  the tokens it holds, and masks those literal values wherever they appear, percent-encoded or
  JSON-escaped forms included, even with no name beside them.

Every piece of the SDK that turns server data into text (exception messages and attributes, body
excerpts, close reasons, log records) passes it through the client's :class:`SecretMask`, which
applies both layers.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

from yarl import URL

__all__ = ["MASK", "SecretMask", "redact"]

#: A percent-escape, whose hex digits a server may write in either case.
_PERCENT = re.compile(r"%[0-9A-F]{2}")

#: What a masked value is replaced with.
MASK = "***"

_NAMES = r"access_token|refresh_token|password|client_secret|secret|token"
# name=value in URLs, query strings and form bodies (the value may be percent-encoded).
_QUERY = re.compile(rf"((?:{_NAMES})(?:=|%3D))[^&\s\"'<>]+", re.IGNORECASE)
# "name": "value" (JSON) and 'name': 'value' (a Python repr), either quote.
_MAPPING = re.compile(rf"([\"']?(?:{_NAMES})[\"']?\s*:\s*[\"'])[^\"']*", re.IGNORECASE)
# "token abc…" / "Bearer abc…": a bare word after the name.
# Only a word with a digit in it: "token revocation" is prose, "token 3f9a0c1d…" is a value.
_WORD = re.compile(
    r"(\b(?:token|bearer)\s+)(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE
)


def redact(text: str) -> str:
    """Mask values that stand beside a secret's name (token, password, secret) in ``text``."""
    text = _QUERY.sub(rf"\1{MASK}", text)
    text = _MAPPING.sub(rf"\1{MASK}", text)
    return _WORD.sub(rf"\1{MASK}", text)


#: Values shorter than this are not masked by their text: masking a 3-letter secret would mangle
#: every message, and a secret that short is no secret.
_MIN_LENGTH = 6
#: Secrets one mask remembers: the client secret, the live tokens, and a few retired ones
#: (a retired token echoed back is still worth hiding).
_MAX_VALUES = 32


class SecretMask:
    """The literal secrets one client holds, masked in any text.

    Thread-safe; cheap when there is nothing to mask. Calling the mask (``mask(text)``) applies
    :func:`redact` and then replaces every known secret, in its plain, percent-encoded
    (``quote`` and ``quote_plus``, ``/`` escaped or not, the request URL's own form, escapes
    in either case) and JSON-escaped forms.
    """

    __slots__ = ("_lock", "_pattern", "_values")

    def __init__(self, values: Iterable[str | None] = ()) -> None:
        self._lock = threading.Lock()
        self._values: OrderedDict[str, None] = OrderedDict()
        self._pattern: re.Pattern[str] | None = None
        for value in values:
            self.add(value)

    def __repr__(self) -> str:
        return f"SecretMask(<{len(self._values)} secrets hidden>)"

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: str | None) -> None:
        """Remember ``value`` as a secret (``None``, empty or very short values are ignored)."""
        if not value or len(value) < _MIN_LENGTH:
            return
        with self._lock:
            if value in self._values:
                self._values.move_to_end(value)
                return
            self._values[value] = None
            while len(self._values) > _MAX_VALUES:
                self._values.popitem(last=False)
            # Compiled at the next use: a client constructed and never failing compiles nothing.
            self._pattern = None

    def _compiled(self) -> re.Pattern[str] | None:
        pattern = self._pattern
        if pattern is None and self._values:
            with self._lock:
                pattern = self._pattern = self._build()
        return pattern

    def _build(self) -> re.Pattern[str]:
        forms: set[str] = set()
        for value in self._values:
            encoded = {
                quote(value, safe=""),
                quote(value),  # "/" kept, as urllib writes a path
                quote_plus(value, safe=""),
                quote_plus(value),
                # As the transport itself writes it in the request URL ("/" and "?" kept, "+"
                # for a space): what a proxy echoing the request line shows.
                URL.build(query={"v": value}).raw_query_string[2:],
            }
            # Percent-escapes are case-insensitive (RFC 3986): a proxy may rewrite %2B as %2b.
            encoded |= {_PERCENT.sub(lambda m: m.group(0).lower(), form) for form in encoded}
            forms.update((value, json.dumps(value)[1:-1], *encoded))
        # Longest first: a secret that contains another is masked whole.
        return re.compile("|".join(map(re.escape, sorted(forms, key=len, reverse=True))))

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked, by name and by value."""
        text = redact(text)
        pattern = self._compiled()
        if pattern is None:
            return text
        return pattern.sub(MASK, text)

    def contains_secret(self, text: str) -> bool:
        """Whether ``text`` holds a known secret in any of its forms (for checks and tests)."""
        pattern = self._compiled()
        return pattern is not None and pattern.search(text) is not None
