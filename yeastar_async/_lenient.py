"""Lenient conversion of parsed JSON into msgspec types: the slow path for drifting firmware.

The fast paths decode JSON straight into Structs. When that fails because a PBX sent a value of
another JSON type than the manual documents, this module nudges the parsed value towards the
model, where the intent is unambiguous, and converts it:

* a number where a string is expected becomes its exact text (``1702287660.000012`` stays
  ``"1702287660.000012"``: floats are parsed as :class:`~decimal.Decimal`);
* ``null``, or a blank string (the PBX writes ``" "`` for empty), where a number, list or
  object is expected falls back to the field's default (``"members": null`` gives ``[]``);
* a single object where a list is expected is wrapped in a list;
* a whole-number :class:`~decimal.Decimal` where an int is expected becomes an int.

Anything else is left as it is, and :func:`msgspec.convert` (lax mode) has the last word.

Numbers outside what the models can hold are refused, cheaply: a number literal beyond the
float range (``1e1000000``) fails the parse itself (:func:`exact_number`), and an integer outside
int64 where an int is expected fails the conversion. Without that, turning ``1e1000000`` into an
int would take the event loop for many seconds and give an integer too long to print.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

import msgspec
from msgspec import inspect as mi

from yeastar_async._models import INT64_MAX, INT64_MIN

__all__ = [
    "EXACT_JSON",
    "INT64_MAX",
    "INT64_MIN",
    "NumberOutOfRange",
    "check_number",
    "convert",
    "exact_number",
    "out_of_range",
]

T = TypeVar("T")

#: Largest decimal exponent of a finite float (1.79e308); anything above is out of range.
_FLOAT_MAX_EXPONENT: Final = 308
_SHOWN: Final = 40  # characters of an offending number shown in an error


class NumberOutOfRange(msgspec.ValidationError):
    """A JSON number no field can hold: beyond the float range, or an int beyond int64."""


#: How msgspec's own parser words a literal it cannot hold at all: an integer of more than
#: 4,300 digits (it never reaches a hook), or a float beyond the float range.
_MSGSPEC_OUT_OF_RANGE: Final = ("Integer value out of range", "Number out of range")


def out_of_range(exc: BaseException) -> bool:
    """Whether ``exc`` (from a decode or :func:`convert`) is a number out of range.

    msgspec wraps what a float hook raises in its own ValidationError, keeping the cause; an
    integer literal too long for msgspec to parse fails before any hook, in its own words.
    """
    return (
        isinstance(exc, NumberOutOfRange)
        or isinstance(exc.__cause__, NumberOutOfRange)
        or (isinstance(exc, msgspec.ValidationError) and str(exc).startswith(_MSGSPEC_OUT_OF_RANGE))
    )


def _shown(text: str) -> str:
    """``text`` (a number's spelling), shortened for an error message."""
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


def check_number(text: str, value: Decimal) -> Decimal:
    """Return ``value`` (parsed from the JSON literal ``text``) if a float can hold it.

    Raises :class:`NumberOutOfRange` (a ValueError) naming the literal otherwise:
    ``1e1000000`` is not a number any field of the PBX's answers can mean, and every later
    step (int(), comparisons, str() of the int) would cost time in proportion to its
    exponent. Costs a few microseconds.
    """
    if value.is_zero():
        return value  # 0e400 is a zero, whatever its exponent
    # adjusted() is the exponent of the leading digit: O(1), unlike anything that expands it.
    exponent = value.adjusted()
    if exponent > _FLOAT_MAX_EXPONENT or (
        exponent == _FLOAT_MAX_EXPONENT and math.isinf(float(value))
    ):
        raise NumberOutOfRange(f"number out of range: {_shown(text)}")
    return value


def exact_number(text: str) -> Decimal:
    """The float hook of :data:`EXACT_JSON`: ``text`` as an exact Decimal, range-checked.

    An exponent beyond what :mod:`decimal` itself can hold (``1e-99999999999999999999``)
    raises InvalidOperation, an ArithmeticError: refused as out of range too.
    """
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise NumberOutOfRange(f"number out of range: {_shown(text)}") from None
    return check_number(text, value)


#: Parses JSON keeping floats exact, so a number can become its original text. A number
#: beyond the float range is a :class:`msgspec.ValidationError` naming where it was.
EXACT_JSON: Final = msgspec.json.Decoder(float_hook=exact_number)


def _int_shown(value: object) -> str:
    # str() of a very long int is slow (and refused past 4300 digits): say how long it is.
    if type(value) is int and value.bit_length() > 4 * _SHOWN:
        return f"an integer of about {int(value.bit_length() * math.log10(2))} digits"
    return _shown(str(value))


class _OutOfRange(ValueError):
    """An integer field got a number outside int64; ``path`` is filled on the way up."""

    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value
        self.path: list[str] = []


_DROP: Final = object()  # "use the field's default"
#: An integer spelled as a string, as lax conversion reads it; int64 has at most 19 digits.
_INT_TEXT: Final = re.compile(r"[+-]?[0-9]+")
_INT64_DIGITS: Final = 19
_TYPE_INFO: dict[Any, mi.Type] = {}
_FIELD_TYPES: dict[type[Any], dict[str, mi.Type]] = {}


def convert(value: Any, target: type[T]) -> T:
    """Convert parsed JSON ``value`` (from :data:`EXACT_JSON`) to ``target``, leniently.

    Raises :class:`msgspec.ValidationError` when even the nudged value does not fit, or when an
    int field holds a number outside int64 (the message names the field's path).
    """
    info = _TYPE_INFO.get(target)
    if info is None:
        info = _TYPE_INFO[target] = mi.type_info(target)
    try:
        fixed = _coerce(value, info)
    except _OutOfRange as exc:
        raise NumberOutOfRange(
            f"integer out of the int64 range: {_int_shown(exc.value)} - at `${''.join(exc.path)}`"
        ) from None
    if fixed is _DROP:
        fixed = value
    return msgspec.convert(fixed, target, strict=False)


def _field_types(struct: mi.StructType) -> dict[str, mi.Type]:
    types = _FIELD_TYPES.get(struct.cls)
    if types is None:
        types = _FIELD_TYPES[struct.cls] = {f.encode_name: f.type for f in struct.fields}
    return types


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _coerce(value: Any, tp: mi.Type) -> Any:
    """Return ``value`` adjusted to ``tp`` where that is unambiguous, or _DROP."""
    if value is None:
        if isinstance(tp, mi.NoneType | mi.AnyType) or (
            isinstance(tp, mi.UnionType) and any(isinstance(t, mi.NoneType) for t in tp.types)
        ):
            return None
        return _DROP
    if isinstance(tp, mi.UnionType):
        others = [t for t in tp.types if not isinstance(t, mi.NoneType)]
        return _coerce(value, others[0]) if len(others) == 1 else _plain(value)
    if isinstance(tp, mi.StrType):
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return str(value)
        return value
    if isinstance(tp, mi.IntType):
        return _to_int(value)
    if isinstance(tp, mi.FloatType):
        if isinstance(value, Decimal):
            return float(value)
        return _DROP if _blank(value) else value
    if isinstance(tp, mi.ListType):
        if isinstance(value, dict):
            value = [value]  # one object where the manual says Array
        if isinstance(value, list):
            out_items = []
            for index, item in enumerate(value):
                try:
                    fixed_item = _coerce(item, tp.item_type)
                except _OutOfRange as exc:
                    exc.path.insert(0, f"[{index}]")
                    raise
                if fixed_item is not _DROP:
                    out_items.append(fixed_item)
            return out_items
        return _DROP if _blank(value) else value
    if isinstance(tp, mi.StructType):
        if isinstance(value, dict):
            types = _field_types(tp)
            out = {}
            for key, item in value.items():
                field_type = types.get(key)
                if field_type is None:
                    continue  # unknown key: ignored anyway
                try:
                    fixed = _coerce(item, field_type)
                except _OutOfRange as exc:
                    exc.path.insert(0, f".{key}")
                    raise
                if fixed is not _DROP:
                    out[key] = fixed
            return out
        return _DROP if _blank(value) else value
    return _DROP if _blank(value) and not isinstance(tp, mi.AnyType) else _plain(value)


def _to_int(value: Any) -> Any:
    """``value`` for an int field: whole decimals become ints; outside int64 is refused."""
    if isinstance(value, Decimal) and value.is_zero():
        value = 0  # 0e400 included, whose exponent would fail the test below
    elif isinstance(value, Decimal):
        # The exponent test first: it is O(1), while to_integral_value() and int() of a huge
        # exponent are not (the range check of the parse allows up to 1e308).
        if value.is_finite() and value.adjusted() < 19 and value == value.to_integral_value():
            value = int(value)
        elif value.is_finite() and value.adjusted() >= 19:
            raise _OutOfRange(value)
    elif isinstance(value, str) and _INT_TEXT.fullmatch(value):
        # Lax mode parses "9223372036854775808" as an int: refuse it as the number it spells
        # (the length test first, so that a 100,000-digit string is never converted).
        digits = value.lstrip("+-").lstrip("0")
        if len(digits) > _INT64_DIGITS or not INT64_MIN <= int(value) <= INT64_MAX:
            raise _OutOfRange(value)
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        raise _OutOfRange(value)
    return _DROP if _blank(value) else _plain(value)


def _plain(value: Any) -> Any:
    """Exact decimals back to floats wherever the model gives no better hint."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
