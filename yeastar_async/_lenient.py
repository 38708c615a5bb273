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
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final, TypeVar

import msgspec
from msgspec import inspect as mi

__all__ = ["EXACT_JSON", "convert"]

T = TypeVar("T")

#: Parses JSON keeping floats exact, so a number can become its original text.
EXACT_JSON: Final = msgspec.json.Decoder(float_hook=Decimal)

_DROP: Final = object()  # "use the field's default"
_TYPE_INFO: dict[Any, mi.Type] = {}
_FIELD_TYPES: dict[type[Any], dict[str, mi.Type]] = {}


def convert(value: Any, target: type[T]) -> T:
    """Convert parsed JSON ``value`` (from :data:`EXACT_JSON`) to ``target``, leniently.

    Raises :class:`msgspec.ValidationError` when even the nudged value does not fit.
    """
    info = _TYPE_INFO.get(target)
    if info is None:
        info = _TYPE_INFO[target] = mi.type_info(target)
    fixed = _coerce(value, info)
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
        if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
            return int(value)
        return _DROP if _blank(value) else _plain(value)
    if isinstance(tp, mi.FloatType):
        if isinstance(value, Decimal):
            return float(value)
        return _DROP if _blank(value) else value
    if isinstance(tp, mi.ListType):
        if isinstance(value, dict):
            value = [value]  # one object where the manual says Array
        if isinstance(value, list):
            items = (_coerce(item, tp.item_type) for item in value)
            return [item for item in items if item is not _DROP]
        return _DROP if _blank(value) else value
    if isinstance(tp, mi.StructType):
        if isinstance(value, dict):
            types = _field_types(tp)
            out = {}
            for key, item in value.items():
                field_type = types.get(key)
                if field_type is None:
                    continue  # unknown key: ignored anyway
                fixed = _coerce(item, field_type)
                if fixed is not _DROP:
                    out[key] = fixed
            return out
        return _DROP if _blank(value) else value
    return _DROP if _blank(value) and not isinstance(tp, mi.AnyType) else _plain(value)


def _plain(value: Any) -> Any:
    """Exact decimals back to floats wherever the model gives no better hint."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value
