"""The two wire formats of the OpenVox UC API: JSON and XML bodies, both to and from plain dicts.

A request's parameters are a flat ``{name: str}`` mapping; an answer decodes into nested dicts,
lists and strings, which :mod:`.models` turns into Structs the same way for both formats.

XML answers are parsed with the standard library's expat, hardened: a document with a DOCTYPE is
refused outright, so no entity can be declared (no "billion laughs") and none can point outside
(no external entities, no DTD fetched). Nesting depth and element count are bounded too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final, Literal, TypeAlias
from xml.parsers import expat
from xml.sax.saxutils import escape

import msgspec

__all__ = ["CONTENT_TYPES", "Format", "WireFormatError", "decode", "encode"]

#: The ``type=`` of every request: the format of its body and of the answer.
Format: TypeAlias = Literal["json", "xml"]

CONTENT_TYPES: Final[dict[str, str]] = {
    "json": "application/json; charset=utf-8",
    "xml": "application/xml; charset=utf-8",
}

#: Deeper than any answer of the manual (``<xml><inroutes><item><name>``), far below recursion.
_MAX_DEPTH: Final = 16
_MAX_ELEMENTS: Final = 100_000
_XML_PROLOG: Final = '<?xml version="1.0" encoding="UTF-8" ?>'
#: Characters XML 1.0 cannot carry at all, even escaped (most C0 controls, lone surrogates).
_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class WireFormatError(ValueError):
    """A body is not a well-formed, acceptable document of its format (the reason says why)."""


def encode(fmt: Format, params: Mapping[str, str]) -> bytes:
    """``params`` as a request body: a JSON object, or ``<xml>`` with one child per name.

    Raises :class:`ValueError` for a value XML cannot carry (a control character).
    """
    if fmt == "json":
        return msgspec.json.encode(dict(params))
    parts = [_XML_PROLOG, "<xml>"]
    for name, value in params.items():
        bad = _NOT_XML.search(value)
        if bad is not None:
            raise ValueError(
                f"{name}={value!r}: the character {bad.group()!r} cannot be sent in XML "
                "(use fmt='json')"
            )
        parts.append(f"<{name}>{escape(value)}</{name}>")
    parts.append("</xml>")
    return "".join(parts).encode("utf-8")


def decode(fmt: Format, body: bytes) -> dict[str, Any]:
    """The answer ``body`` as a dict (the JSON object, or the children of the XML root).

    Raises :class:`WireFormatError` for anything else.
    """
    if fmt == "json":
        try:
            value = msgspec.json.decode(body)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise WireFormatError(f"not JSON ({exc})") from None
        if not isinstance(value, dict):
            raise WireFormatError(f"a JSON {type(value).__name__}, not an object")
        return value
    tree = _XmlTree().parse(body)
    if not isinstance(tree, dict):
        # A root with text only (<xml>oops</xml>) has no fields to read.
        raise WireFormatError("the XML root element has no child elements")
    return tree


class _Refused(Exception):
    """Raised inside expat callbacks; turned into a WireFormatError after parsing stops."""


class _Node:
    __slots__ = ("children", "tag", "text")

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.children: list[_Node] = []
        self.text: list[str] = []

    def value(self) -> Any:
        """Text for a leaf; a list for a container of ``<item>``s; else a dict by tag."""
        if not self.children:
            return "".join(self.text)
        if all(child.tag == "item" for child in self.children):
            return [child.value() for child in self.children]
        out: dict[str, Any] = {}
        for child in self.children:
            out[child.tag] = child.value()  # a repeated tag: the last one wins
        return out


class _XmlTree:
    """One expat parse into :class:`_Node`s, refusing DTDs and bounding size."""

    def __init__(self) -> None:
        self._stack: list[_Node] = []
        self._root: _Node | None = None
        self._count = 0

    def parse(self, body: bytes) -> Any:
        parser = expat.ParserCreate()
        # Belt and braces: no DOCTYPE reaches here, but never resolve an external parameter
        # entity either way.
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        parser.StartDoctypeDeclHandler = self._doctype
        parser.EntityDeclHandler = self._entity
        parser.ExternalEntityRefHandler = self._external
        parser.StartElementHandler = self._start
        parser.EndElementHandler = self._end
        parser.CharacterDataHandler = self._text
        try:
            parser.Parse(body, True)
        except _Refused as exc:
            raise WireFormatError(str(exc)) from None
        except expat.ExpatError as exc:
            raise WireFormatError(
                f"not well-formed XML ({expat.errors.messages[exc.code]})"
            ) from None
        if self._root is None:
            raise WireFormatError("no XML root element")
        return self._root.value()

    def _doctype(self, *_: Any) -> None:
        raise _Refused("an XML DOCTYPE is refused (entity declarations are never expanded)")

    def _entity(self, *_: Any) -> None:
        raise _Refused("an XML entity declaration is refused")

    def _external(self, *_: Any) -> int:
        raise _Refused("an XML external entity is refused")

    def _start(self, tag: str, _attrs: dict[str, str]) -> None:
        self._count += 1
        if self._count > _MAX_ELEMENTS:
            raise _Refused(f"more than {_MAX_ELEMENTS} XML elements")
        if len(self._stack) >= _MAX_DEPTH:
            raise _Refused(f"XML nested deeper than {_MAX_DEPTH} levels")
        node = _Node(tag)
        if self._stack:
            self._stack[-1].children.append(node)
        else:
            self._root = node
        self._stack.append(node)

    def _end(self, _tag: str) -> None:
        self._stack.pop()

    def _text(self, data: str) -> None:
        if self._stack:
            self._stack[-1].text.append(data)
