"""Audit of issue 11, point 2: a secret echoed in any percent-encoded spelling is masked.

The mask knew ``quote(value, safe="")`` and ``quote_plus``; a secret with ``/`` or ``+`` in it
came back unmasked when a proxy echoed it the way the request URL itself spells it (``/`` and
``?`` kept, ``+`` for a space), as ``urllib.parse.quote`` writes a path, or with lower-case hex
escapes (which RFC 3986 makes equivalent).
"""

from __future__ import annotations

import re
from urllib.parse import quote, quote_plus

import pytest
from yarl import URL

from yeastar_async._secrets import MASK, SecretMask

SECRET = "Ab+/=x y&z!9Q?k"


def lower_escapes(text: str) -> str:
    """``text`` with its percent-escapes in lower-case hex (the secret's letters unchanged)."""
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


FORMS = {
    "plain": SECRET,
    "quote-path": quote(SECRET),
    "quote-path-lower": lower_escapes(quote(SECRET)),
    "quote-all": quote(SECRET, safe=""),
    "quote-all-lower": lower_escapes(quote(SECRET, safe="")),
    "quote-plus": quote_plus(SECRET),
    "quote-plus-all-lower": lower_escapes(quote_plus(SECRET, safe="")),
    "request-url": URL.build(query={"x": SECRET}).raw_query_string[2:],
}


@pytest.mark.parametrize("name", list(FORMS))
def test_every_spelling_of_an_echoed_secret_is_masked(name: str) -> None:
    mask = SecretMask([SECRET])
    echoed = f"upstream said: [{FORMS[name]}] (no name beside it)"
    assert mask(echoed) == f"upstream said: [{MASK}] (no name beside it)"
    assert mask.contains_secret(echoed)


def test_other_text_is_left_alone() -> None:
    mask = SecretMask([SECRET])
    assert mask("ab%2b is not the secret") == "ab%2b is not the secret"
