"""The OpenVox wire codec: XML and JSON bodies to and from dicts, hostile input refused cleanly."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yeastar_async.openvox._codec import WireFormatError, decode, encode

# Text XML 1.0 can carry (\r is normalised to \n by every XML parser, so it is left out).
xml_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r").filter(
        lambda c: c in "\t\n" or c >= " "
    )
).filter(lambda t: "\ufffe" not in t and "\uffff" not in t)
names = st.sampled_from(["name", "did", "caller_id", "desttype", "dest", "trunks"])


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(names, xml_text, min_size=1))
def test_xml_and_json_round_trip(params: dict[str, str]) -> None:
    for fmt in ("json", "xml"):
        assert decode(fmt, encode(fmt, params)) == params  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_decode_or_raise_wire_format_error(body: bytes) -> None:
    for fmt in ("json", "xml"):
        with contextlib.suppress(WireFormatError):
            assert isinstance(decode(fmt, body), dict)  # type: ignore[arg-type]


def test_the_manuals_examples_decode() -> None:
    answer = (
        b'<?xml version="1.0" encoding="utf-8"?>\n<xml>\n\t<status>Success</status>\n'
        b'\t<inroutes>\n\t\t<item id="0"><id>19</id><name>test2</name></item>\n\t</inroutes>\n'
        b"</xml>"
    )
    assert decode("xml", answer) == {
        "status": "Success",
        "inroutes": [{"id": "19", "name": "test2"}],
    }
    assert encode("xml", {"name": "R&D <1>"}).endswith(b"<xml><name>R&amp;D &lt;1&gt;</name></xml>")


def test_control_characters_are_refused_in_xml() -> None:
    with pytest.raises(ValueError, match=r"dest='1\\x00': the character '\\x00'"):
        encode("xml", {"dest": "1\x00"})
    assert decode("json", encode("json", {"dest": "1\x00"})) == {"dest": "1\x00"}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[1, 2]", "not an object"),
        (b"<xml>text only</xml>", "no child elements"),
        (b"", "not well-formed"),
        (b"<xml><a></xml>", "not well-formed"),
    ],
)
def test_refusals_say_why(body: bytes, reason: str) -> None:
    fmt = "json" if body.startswith(b"[") else "xml"
    with pytest.raises(WireFormatError, match=reason):
        decode(fmt, body)  # type: ignore[arg-type]
