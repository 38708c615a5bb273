"""The one mechanism behind every REST endpoint: declarations in, requests out.

A resource module declares each endpoint as a method whose body is ``...``::

    class ExtensionResource(Resource):
        @endpoint("GET", "extension/get")
        async def get(self, *, id: int) -> ObjectResponse[ExtDetailInfo]:
            '''Query the details of one extension (manual line 1927).'''

The decorator replaces the body with a call through :class:`Transport`. On every call it

1. binds the arguments to the declared signature, so a missing required keyword raises
   :class:`TypeError` at the call, before any I/O;
2. drops arguments left as ``None`` (``update`` sends only the fields the caller names);
3. runs all the declaration's :class:`Rule` checks (conditionally required parameters, "exactly
   one of" sets), then raises one :class:`ValueError` naming every broken one, before any I/O;
4. maps Python names to wire names (a trailing underscore is dropped: ``from_`` -> ``from``);
5. encodes the values: GET parameters go into the query string, POST parameters into the JSON
   body (see :func:`encode_query` and :func:`encode_body`);
6. decodes the answer into the return annotation's type (resolved once, lazily, then cached).

``timeout`` is never sent: it is the per-call timeout in seconds handed to the transport.

Paginated endpoints use :func:`paginated` and return a :class:`Paginator` instead of a coroutine.

Time values: the PBX reads date/time filters (``cdr/search``, ``cdr/download``, ``call_report/*``)
in its own *display format* (System > Date and Time > Display Format on the PBX) and silently
returns nothing for any other format (manual line 13882). A :class:`~datetime.datetime` is
therefore formatted with the resource's ``datetime_format`` (default
:data:`DEFAULT_DATETIME_FORMAT`, ``MM/DD/YYYY HH:mm:ss`` 24-hour, the format of the manual's
examples); a PBX set to ``YYYY/MM/DD`` with a 12-hour clock needs ``"%Y/%m/%d %I:%M:%S %p"``. A
:class:`~datetime.date` uses the date part of that format (the part before the first space), a
:class:`~datetime.time` is sent as ``HH:MM`` (wake-up alarms, manual line 15361). A parameter
declared as a date (its type admits :class:`~datetime.date` but not :class:`~datetime.datetime`,
e.g. ``time`` of ``call_report/*``) takes a ``datetime`` too, since it is a ``date`` subclass:
only its date part is sent, never a time of day. The PBX reads times as wall-clock times of its
own time zone: with the client's ``timezone`` (the PBX's), a timezone-aware ``datetime`` is
converted to it first (:func:`in_zone`); otherwise, and for naive ones, a ``datetime`` is sent
as its own wall-clock time.
"""

from __future__ import annotations

import functools
import inspect
import sys
import types
import typing
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Generator,
    Iterable,
    Mapping,
    Sequence,
    Set,
)
from dataclasses import dataclass, field
from datetime import date, datetime, time, tzinfo
from typing import (
    Any,
    Generic,
    Literal,
    Protocol,
    Required,
    TypedDict,
    TypeVar,
    Unpack,
    overload,
)

import msgspec

from yeastar_async._fds import importing
from yeastar_async._models import ApiResponse, Int64
from yeastar_async.errors import ApiUnavailableError
from yeastar_async.resources._profile import (
    V2_NAMES,
    V2_ONLY_ENDPOINTS,
    VERSION_ONLY,
    ApiVersion,
    PbxProfile,
)

__all__ = [
    "DEFAULT_DATETIME_FORMAT",
    "DEFAULT_PAGE_SIZE",
    "OFFSETS",
    "PAGE_NUMBERS",
    "ByChannel",
    "ById",
    "ByIds",
    "CreatedResponse",
    "Declared",
    "DownloadResponse",
    "EndpointSpec",
    "Field",
    "Flag",
    "Int64",
    "ListCall",
    "ListEndpoint",
    "ListResponse",
    "NoParams",
    "ObjectOrListResponse",
    "ObjectResponse",
    "OrderBy",
    "PageQuery",
    "PageResponse",
    "PageStyle",
    "Pages",
    "Paginator",
    "RequestModel",
    "Resource",
    "Rule",
    "SearchCall",
    "SearchEndpoint",
    "SortedPageQuery",
    "SortedQuery",
    "Transport",
    "by_channel",
    "by_id",
    "by_ids",
    "check_rules",
    "encode_body",
    "encode_query",
    "endpoint",
    "endpoint_spec",
    "exactly_one",
    "masked_repr",
    "no_params",
    "paginated",
    "requires",
]

#: Default ``datetime_format``: the PBX display format of the manual's examples (MM/DD/YYYY, 24 h).
DEFAULT_DATETIME_FORMAT = "%m/%d/%Y %H:%M:%S"
#: Page size used while iterating a paginated endpoint when the caller gives none.
DEFAULT_PAGE_SIZE = 100

T = TypeVar("T", bound=ApiResponse)
R = TypeVar("R", bound=ApiResponse)
I = TypeVar("I")  # noqa: E741 - the item type of a page
P = TypeVar("P")  # one page of a Paginator (any vendor's answer)
D = TypeVar("D")
F = TypeVar("F", bound=Callable[..., Any])
R_co = TypeVar("R_co", covariant=True)
C_co = TypeVar("C_co", covariant=True)
S = TypeVar("S")  # the sort_by values of a list endpoint
C = TypeVar("C")  # the type of a bound one-line declaration

#: A 0/1 switch of the manual; ``True``/``False`` are sent as ``1``/``0``.
Flag = Literal[0, 1] | bool
#: Sort direction of list endpoints.
OrderBy = Literal["asc", "desc"]


class PageQuery(TypedDict, total=False):
    """Paging parameters of list endpoints (keyword arguments).

    Attributes:
        page: page number, from 1 (default 1).
        page_size: items per page. Awaiting the call sends only what is given; iterating it
            uses :data:`DEFAULT_PAGE_SIZE` unless given.
    """

    page: int | None
    page_size: int | None


class SortedPageQuery(PageQuery, total=False):
    """Paging and sort direction of list endpoints (keyword arguments).

    Attributes:
        order_by: sort direction, ``"asc"`` or ``"desc"``.
    """

    order_by: OrderBy | None


class SortedQuery(SortedPageQuery, Generic[S], total=False):
    """Paging, sort direction and ``sort_by`` of a list endpoint (keyword arguments).

    ``S`` is the group's choice of ``sort_by`` values: ``SortedQuery[ExtensionSortBy]``.

    Attributes:
        sort_by: field to sort by.
    """

    sort_by: S | None


class Transport(Protocol):
    """What resources need from the HTTP layer (implemented by ``yeastar_async._http``)."""

    async def request(
        self,
        method: str,
        endpoint: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        response_type: type[T],
        timeout: float | None = None,
        api_path: str | None = None,
    ) -> T:
        """Authorised call of ``{base}/openapi/v1.0/{endpoint}``, decoded into ``response_type``.

        ``api_path`` (``"openapi/v2.0"``) selects another API version for this request only.

        The token goes into the query string, a 10004 is replayed once, and a non-zero
        ``errcode`` raises the typed :class:`~yeastar_async.errors.YeastarError`.
        """
        ...

    def download(
        self, resource_url: str, *, timeout: float | None = None, chunk_size: int = 65536
    ) -> AsyncIterator[bytes]:
        """Stream the bytes behind a ``download_resource_url`` of this PBX, with the token."""
        ...


# -- models ------------------------------------------------------------------------------------


def masked_repr(struct: msgspec.Struct, secret: Iterable[str]) -> str:
    """``Name(a=1, secret='***')``: the repr of a Struct holding secrets the PBX handed out."""
    hidden = set(secret)
    parts = [
        f"{name}={'***' if name in hidden and value else value!r}"
        for name, value in msgspec.structs.asdict(struct).items()
    ]
    return f"{type(struct).__name__}({', '.join(parts)})"


class RequestModel(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Base of nested request objects: fields left as ``None`` are not sent."""


class ObjectResponse(ApiResponse, Generic[D], kw_only=True):
    """An answer whose payload is one object in ``data``."""

    data: D | None = None


class ListResponse(ApiResponse, Generic[D], kw_only=True):
    """An answer whose payload is a list in ``data``."""

    data: list[D] = msgspec.field(default_factory=list)


class PageResponse(ApiResponse, Generic[D], kw_only=True):
    """One page of a list endpoint: ``data`` and the ``total_number`` of matching items."""

    total_number: Int64 | None = None
    data: list[D] = msgspec.field(default_factory=list)


class ObjectOrListResponse(ApiResponse, Generic[D], kw_only=True):
    """An answer whose ``data`` the manual types one way and prints the other.

    Some endpoints document ``data`` as an array but answer one object (``trunk/get``,
    ``wakeupcall/get``) or the reverse (``ivr/query``, ``queue/query``). Both decode; read
    :attr:`items` to get a list either way.
    """

    data: D | list[D] | None = None

    @property
    def items(self) -> list[D]:
        """``data`` as a list (empty when absent, one element when the PBX sent an object)."""
        if self.data is None:
            return []
        if isinstance(self.data, list):
            return self.data
        return [self.data]


class CreatedResponse(ApiResponse, kw_only=True):
    """Answer of a ``create`` endpoint: the new item's ``id``."""

    id: Int64 | None = None


class DownloadResponse(ApiResponse, kw_only=True):
    """Answer of a ``*/download`` endpoint: the file name and where to fetch the file.

    ``download_resource_url`` is a server path such as ``/api/download/x.wav`` outside the API
    prefix; it stays valid for 30 minutes (manual line 13587). Fetch it with
    :class:`~yeastar_async.resources.Downloader` (``client.files``).
    """

    file: str | None = None
    download_resource_url: str | None = None


# -- call-time checks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A call-time check of parameters the manual requires only in some cases.

    ``exactly_one`` rules demand exactly one of ``names``; the others demand all of ``names``.
    With a ``trigger``, the rule only applies when that parameter was given with one of
    ``values``. Build rules with :func:`requires` and :func:`exactly_one`.
    """

    names: tuple[str, ...]
    exactly_one: bool = False
    trigger: str | None = None
    values: tuple[object, ...] = ()

    def applies(self, arguments: Mapping[str, Any]) -> bool:
        """Whether the rule's condition holds for these (given, non-None) arguments."""
        if self.trigger is None:
            return True
        return self.trigger in arguments and arguments[self.trigger] in self.values

    def violation(self, arguments: Mapping[str, Any]) -> str | None:
        """What ``arguments`` break of the rule, in words (``None`` when they keep it)."""
        if not self.applies(arguments):
            return None
        condition = ""
        if self.trigger is not None:
            shown = " or ".join(repr(v) for v in self.values)
            condition = f" when {self.trigger}={shown}"
        # Passed but empty ("", []): say so, or `hangup(channel_id="")` reads "got none".
        empty = [name for name in self.names if name in arguments and not _given(arguments, name)]
        blank = f" ({', '.join(empty)} given empty)" if empty else ""
        if self.exactly_one:
            given = [name for name in self.names if _given(arguments, name)]
            if len(given) == 1:
                return None
            listed = ", ".join(self.names)
            got = ", ".join(given) if given else "none"
            return f"give exactly one of {listed}{condition} (got {got}){blank}"
        missing = [name for name in self.names if not _given(arguments, name)]
        if missing:
            return f"{', '.join(missing)} required{condition}{blank}"
        return None

    def check(self, where: str, arguments: Mapping[str, Any]) -> None:
        """Raise :class:`ValueError` when ``arguments`` break the rule."""
        check_rules(where, (self,), arguments)


def _given(arguments: Mapping[str, Any], name: str) -> bool:
    """Whether ``name`` carries a value: ``""`` or an empty list is no channel, id or number."""
    value = arguments.get(name)
    return value is not None and value != "" and not (_is_list(value) and not value)


def check_rules(where: str, rules: Iterable[Rule], arguments: Mapping[str, Any]) -> None:
    """Raise one :class:`ValueError` naming every rule ``arguments`` break (``where``: the call).

    All rules are checked first, so a caller missing several parameters learns of all of them
    at once; the violations are joined with ``"; "`` after ``where``.
    """
    broken = [text for rule in rules if (text := rule.violation(arguments)) is not None]
    if broken:
        raise ValueError(f"{where}: {'; '.join(broken)}")


def _values(equals: object) -> tuple[object, ...]:
    if isinstance(equals, str) or not isinstance(equals, Collection):
        return (equals,)
    return tuple(equals)


def requires(*names: str, when: str, equals: object) -> Rule:
    """``names`` are all required when parameter ``when`` equals ``equals`` (or one of them)."""
    return Rule(names=names, trigger=when, values=_values(equals))


def exactly_one(*names: str, when: str | None = None, equals: object = None) -> Rule:
    """Exactly one of ``names`` must be given (only when ``when`` equals ``equals``, if set)."""
    if when is None:
        return Rule(names=names, exactly_one=True)
    return Rule(names=names, exactly_one=True, trigger=when, values=_values(equals))


# -- encoding ----------------------------------------------------------------------------------


def wire_name(name: str) -> str:
    """The manual's name of a Python parameter (``from_`` -> ``from``)."""
    return name[:-1] if name.endswith("_") else name


def _scalar(value: Any, datetime_format: str) -> Any:
    # datetime is a date subclass: test it first.
    if isinstance(value, datetime):
        return value.strftime(datetime_format)
    if isinstance(value, date):
        return value.strftime(datetime_format.split(" ", 1)[0])
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, bool):
        return int(value)
    return value


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence | Set) and not isinstance(value, str | bytes | bytearray)


#: Values sent as they are: the usual parameters skip the isinstance checks against the ABCs
#: below (exact types only: bool, a subclass of int, and str subclasses take the full path).
_PLAIN_TYPES: frozenset[type] = frozenset({str, int, float})


def _query_text(name: str, value: Any, datetime_format: str) -> str:
    if type(value) in _PLAIN_TYPES:
        return value if type(value) is str else str(value)
    if _is_list(value):
        # The manual's multi-value query parameters are comma-separated ("ids=1,2,3").
        return ",".join(_query_text(name, item, datetime_format) for item in value)
    value = _scalar(value, datetime_format)
    if isinstance(value, str | int | float):
        return str(value)
    raise TypeError(f"parameter {name!r}: a {type(value).__name__} cannot go in a query string")


def encode_query(
    arguments: Mapping[str, Any], *, datetime_format: str = DEFAULT_DATETIME_FORMAT
) -> dict[str, str]:
    """Query-string values of a GET call: lists comma-joined, bools as 1/0, times formatted."""
    return {
        wire_name(name): _query_text(name, value, datetime_format)
        for name, value in arguments.items()
        if value is not None
    }


def _json_value(value: Any, datetime_format: str) -> Any:
    if type(value) in _PLAIN_TYPES:
        return value
    if isinstance(value, msgspec.Struct):
        value = msgspec.to_builtins(value)
    if isinstance(value, Mapping):
        # None means "not given" everywhere, also inside plain dicts.
        return {
            str(key): _json_value(item, datetime_format)
            for key, item in value.items()
            if item is not None
        }
    if _is_list(value):
        return [_json_value(item, datetime_format) for item in value]
    return _scalar(value, datetime_format)


def encode_body(
    arguments: Mapping[str, Any],
    *,
    joined: Collection[str] = (),
    datetime_format: str = DEFAULT_DATETIME_FORMAT,
) -> dict[str, Any]:
    """JSON body of a POST call: Structs and dicts as objects, bools as 1/0, times formatted.

    Parameters named in ``joined`` are strings the manual wants comma-separated (e.g. the
    ``prompt`` files of an IVR); a list given for them is joined with commas.
    """
    body: dict[str, Any] = {}
    for name, value in arguments.items():
        if value is None:
            continue
        if name in joined and _is_list(value):
            body[wire_name(name)] = _query_text(name, value, datetime_format)
        else:
            body[wire_name(name)] = _json_value(value, datetime_format)
    return body


# -- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One parameter of an endpoint: its Python name, resolved type and whether it is required."""

    name: str
    annotation: Any
    required: bool


def _unpacked(hint: Any) -> Any:
    """The TypedDict of a ``**kwargs: Unpack[TD]`` annotation."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is not typing.Unpack or not args:
        raise TypeError(f"**kwargs of an endpoint must be annotated Unpack[TypedDict], not {hint}")
    return args[0]


def _bind(annotation: Any, bound: Mapping[Any, Any]) -> Any:
    """``annotation`` with the type variables in ``bound`` replaced (``S | None`` -> ...)."""
    if annotation in bound:
        return bound[annotation]
    parameters = getattr(annotation, "__parameters__", ())
    if bound and parameters:
        return annotation[tuple(bound.get(p, p) for p in parameters)]
    return annotation


@dataclass(eq=False)
class EndpointSpec:
    """Everything the mechanism knows about one declared endpoint.

    Parameters are the method's keyword arguments; a declaration may also take
    ``**kwargs: Unpack[SomeTypedDict]`` to share a parameter set between endpoints (the keys
    of the TypedDict are then parameters too, checked like the others).
    """

    method: Literal["GET", "POST"]
    path: str
    func: Callable[..., Any]
    rules: tuple[Rule, ...] = ()
    joined: frozenset[str] = frozenset()
    #: Parameter -> a second wire name it is sent under too.
    also: dict[str, str] = field(default_factory=dict)
    #: For paginated endpoints: the response field holding the items, and whether the
    #: response carries ``total_number``.
    items: str | None = None
    has_total: bool = True
    signature: inspect.Signature = field(init=False)
    _var_keyword: str | None = field(default=None, init=False)
    _fields: dict[str, Field] | None = field(default=None, init=False)
    _response_type: Any = field(default=None, init=False)
    _where: str = field(default="", init=False)
    #: The keyword names a call may give and those it must give, for the fast path of
    #: :meth:`bind` (None until the first call; empty sets when there is no fast path).
    _accepted: frozenset[str] | None = field(default=None, init=False)
    _required: frozenset[str] = field(default=frozenset(), init=False)
    #: Names of the date-only parameters (None until first needed), see :meth:`date_only`.
    _dates: frozenset[str] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.signature = inspect.signature(self.func)
        self._where = f"{self.path.replace('/', '.')}()"
        for name, parameter in self.signature.parameters.items():
            if parameter.kind is parameter.VAR_KEYWORD:
                self._var_keyword = name

    @property
    def paginated(self) -> bool:
        """Whether the endpoint returns a :class:`Paginator`."""
        return self.items is not None

    def fields(self) -> dict[str, Field]:
        """Every request parameter by Python name (``timeout`` excluded), resolved on first use."""
        if self._fields is None:
            hints = typing.get_type_hints(self.func, include_extras=True)
            found: dict[str, Field] = {}
            for name, parameter in self.signature.parameters.items():
                if name in _NOT_SENT:
                    continue
                if parameter.kind is not parameter.VAR_KEYWORD:
                    found[name] = Field(name, hints[name], parameter.default is parameter.empty)
                    continue
                shared = _unpacked(hints[name])
                # A generic TypedDict comes with its arguments (SortedQuery[...]): bind them.
                origin = typing.get_origin(shared) or shared
                parameters = getattr(origin, "__parameters__", ())
                bound = dict(zip(parameters, typing.get_args(shared), strict=False))
                raw = typing.get_type_hints(origin, include_extras=True)
                for key, annotation in typing.get_type_hints(origin).items():
                    # __required_keys__ misses Required[...] under postponed annotations.
                    required = key in origin.__required_keys__ or (
                        typing.get_origin(raw[key]) is Required
                    )
                    found[key] = Field(key, _bind(annotation, bound), required)
            self._fields = found
        return self._fields

    def date_only(self) -> frozenset[str]:
        """Parameters declared as a date: their type admits ``date`` but not ``datetime``.

        A ``datetime`` given for one (a ``date`` subclass, so type checkers accept it) is sent
        as its date part only.
        """
        if self._dates is None:
            self._dates = frozenset(
                name for name, spec_field in self.fields().items() if _date_only(spec_field)
            )
        return self._dates

    def response_type(self) -> Any:
        """The type answers decode into, read from the return annotation on first use."""
        if self._response_type is None:
            hint = typing.get_type_hints(self.func)["return"]
            if self.paginated:
                hint = typing.get_args(hint)[0]
            self._response_type = hint
        return self._response_type

    def _keyword_sets(self) -> tuple[frozenset[str], frozenset[str]]:
        """(names a call may give by keyword, names it must give), ``self`` excluded.

        Both empty when a parameter other than ``self`` is positional-only: such calls always
        take the full :meth:`inspect.Signature.bind` path.
        """
        accepted: set[str] = set()
        required: set[str] = set()
        for index, (name, parameter) in enumerate(self.signature.parameters.items()):
            if index == 0:
                continue  # self
            if parameter.kind is parameter.VAR_KEYWORD:
                continue
            if parameter.kind in (parameter.POSITIONAL_ONLY, parameter.VAR_POSITIONAL):
                return frozenset(), frozenset()
            accepted.add(name)
            if parameter.default is parameter.empty:
                required.add(name)
        if self._var_keyword is not None:
            for spec_field in self.fields().values():
                accepted.add(spec_field.name)
                if spec_field.required:
                    required.add(spec_field.name)
        return frozenset(accepted), frozenset(required)

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Check a call's arguments; return the given ones (``timeout`` included) by name.

        Raises :class:`TypeError` for a call that does not fit the signature and
        :class:`ValueError` for one that breaks a :class:`Rule`.
        """
        accepted = self._accepted
        if accepted is None:
            accepted, self._required = self._keyword_sets()
            self._accepted = accepted
        # Fast path, the usual call: ``self`` plus keywords that all fit, the required ones
        # among them. It gives what the full binding below gives, at a fraction of its cost
        # (this runs on every request); anything else takes the full binding for its errors.
        if len(args) == 1 and kwargs.keys() <= accepted and kwargs.keys() >= self._required:
            if not kwargs and not self.rules:
                return {}
            for name in self._required:
                _check_given(self._where, name, kwargs[name])
            arguments = {name: value for name, value in kwargs.items() if value is not None}
            if self.rules:
                check_rules(self._where, self.rules, arguments)
            return arguments
        where = self._where
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{where}: {exc}") from None
        given = dict(bound.arguments)
        given.pop("self", None)
        if self._var_keyword is not None:
            extra = given.pop(self._var_keyword, {})
            fields = self.fields()
            unknown = [key for key in extra if key not in fields]
            if unknown:
                raise TypeError(f"{where}: unexpected keyword argument {unknown[0]!r}")
            given.update(extra)
            missing = [f.name for f in fields.values() if f.required and f.name not in given]
            if missing:
                raise TypeError(f"{where}: missing required keyword argument {missing[0]!r}")
        for name in self._required:
            _check_given(where, name, given[name])
        arguments = {name: value for name, value in given.items() if value is not None}
        if self.rules:
            check_rules(where, self.rules, arguments)
        return arguments


def _check_given(where: str, name: str, value: Any) -> None:
    """A required parameter must carry a value: ``None``, ``""`` or an empty list would reach
    the PBX as a missing parameter (40002) or an empty string."""
    if not _given({name: value}, name):
        raise ValueError(f"{where}: {name} is required and cannot be {value!r}")


def in_zone(arguments: Mapping[str, Any], zone: tzinfo) -> Mapping[str, Any]:
    """``arguments`` with their timezone-aware datetimes converted to ``zone`` (the PBX's), so
    that they are formatted as the PBX's wall-clock time; naive ones are left as given."""
    aware = [k for k, v in arguments.items() if isinstance(v, datetime) and v.tzinfo is not None]
    if not aware:
        return arguments
    return {**arguments, **{k: arguments[k].astimezone(zone) for k in aware}}


def _members(annotation: Any) -> set[Any]:
    """The types a (possibly ``Annotated``, nested) union annotation admits."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        found: set[Any] = set()
        for member in typing.get_args(annotation):
            found |= _members(member)
        return found
    return {annotation}


def _date_only(spec_field: Field) -> bool:
    members = _members(spec_field.annotation)
    return date in members and datetime not in members


def _as_dates(arguments: Mapping[str, Any], dates: frozenset[str]) -> dict[str, Any]:
    """``arguments`` with the datetimes given for date-only parameters cut to their date."""
    return {
        name: value.date() if name in dates and isinstance(value, datetime) else value
        for name, value in arguments.items()
    }


#: Keyword arguments the client handles itself (``merge_history`` of ``cdr.search``).
_NOT_SENT = frozenset({"self", "timeout", "merge_history"})
_SPEC_ATTRIBUTE = "__yeastar_endpoint__"


def endpoint_spec(func: Any) -> EndpointSpec | None:
    """The :class:`EndpointSpec` behind a declared method (bound or not), or ``None``."""
    spec = getattr(func, _SPEC_ATTRIBUTE, None)
    return spec if isinstance(spec, EndpointSpec) else None


def _install(spec: EndpointSpec) -> Any:
    @functools.wraps(spec.func)
    def method(self: Resource, /, *args: Any, **kwargs: Any) -> Any:
        arguments = spec.bind((self, *args), kwargs)
        timeout = arguments.pop("timeout", None)
        if spec.items is None:
            return self._send(spec, arguments, timeout)
        return Paginator(
            functools.partial(self._send, spec, timeout=timeout),
            arguments,
            items=spec.items,
            has_total=spec.has_total,
        )

    method.__dict__[_SPEC_ATTRIBUTE] = spec
    if sys.version_info >= (3, 12) and spec.items is None:
        inspect.markcoroutinefunction(method)
    return method


def endpoint(
    method: Literal["GET", "POST"],
    path: str,
    *,
    rules: Iterable[Rule] = (),
    joined: Iterable[str] = (),
    also: Mapping[str, str] | None = None,
) -> Callable[[F], F]:
    """Declare an ``async def`` method with body ``...`` as the endpoint ``path``.

    Args:
        method: ``"GET"`` (parameters in the query string) or ``"POST"`` (JSON body).
        path: the endpoint id of the manual, e.g. ``"extension/get"``.
        rules: call-time checks (:func:`requires`, :func:`exactly_one`).
        joined: POST parameters whose list values are sent as one comma-separated string.
        also: parameters sent under a second name too (the manual spells them two ways).
    """

    def decorate(func: F) -> F:
        spec = EndpointSpec(
            method, path, func, tuple(rules), frozenset(joined), also=dict(also or {})
        )
        return typing.cast(F, _install(spec))

    return decorate


def paginated(
    method: Literal["GET", "POST"],
    path: str,
    *,
    items: str = "data",
    has_total: bool = True,
    rules: Iterable[Rule] = (),
) -> Callable[[F], F]:
    """Declare a list endpoint; the method (a plain ``def``) returns a :class:`Paginator`.

    Args:
        method: the HTTP method.
        path: the endpoint id of the manual.
        items: the response field that holds a page's items.
        has_total: whether the response carries ``total_number`` (``organization/list``,
            ``queue_pause_reason/list`` and ``wakeupcall/list`` take pages but return no total).
        rules: call-time checks.
    """

    def decorate(func: F) -> F:
        spec = EndpointSpec(method, path, func, tuple(rules), items=items, has_total=has_total)
        return typing.cast(F, _install(spec))

    return decorate


class Resource:
    """Base of the resource classes: one instance per endpoint group, ``client.<group>``.

    Every endpoint method takes ``timeout=`` (seconds to wait for the answer; default: the
    client's timeout) besides the manual's parameters.

    Args:
        transport: the HTTP layer (see :class:`Transport`).
        datetime_format: ``strftime`` format of the PBX's date/time display format, used for
            :class:`~datetime.datetime` values. Its date part (before the first space) formats
            :class:`~datetime.date` values, and datetimes given for date-only parameters.
        timezone: the PBX's time zone: a timezone-aware datetime is converted to it before it
            is formatted. Without it (and always for naive datetimes) a datetime is sent as
            its own wall-clock time.
    """

    #: The endpoint group (the part of the endpoint id before "/").
    group: typing.ClassVar[str] = ""
    #: What ``id`` / ``ids`` are, for the docstrings of the one-line declarations.
    id_doc: typing.ClassVar[str] = ""
    ids_doc: typing.ClassVar[str] = ""

    def __init__(
        self,
        transport: Transport,
        *,
        datetime_format: str = DEFAULT_DATETIME_FORMAT,
        timezone: tzinfo | None = None,
        profile: PbxProfile | None = None,
    ) -> None:
        self._transport = transport
        self._datetime_format = datetime_format
        self._timezone = timezone
        #: The client's view of ``system/information`` (API versions, date format, time zone);
        #: None keeps the April 2024 API and the formats given here.
        self._profile = profile

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.group!r}>"

    @classmethod
    def endpoints(cls) -> dict[str, EndpointSpec]:
        """The declared endpoints of this group: method name -> :class:`EndpointSpec`."""
        found: dict[str, EndpointSpec] = {}
        for name in dir(cls):
            spec = endpoint_spec(getattr(cls, name))
            if spec is not None:
                found[name] = spec
        return found

    def _send(
        self, spec: EndpointSpec, arguments: Mapping[str, Any], timeout: float | None = None
    ) -> Awaitable[Any]:
        # A plain function handing back the transport's coroutine: no coroutine frame of its
        # own on every request, and encoding errors surface at the call, before any I/O.
        merge = False
        if "merge_history" in arguments:
            merge = bool(arguments["merge_history"])
            arguments = {k: v for k, v in arguments.items() if k != "merge_history"}
        profile = self._profile
        if merge or (profile is not None and profile.needs_facts(spec.path, arguments)):
            return self._send_after_read(spec, arguments, timeout, merge)
        return self._dispatch(spec, arguments, timeout, self.version_of(spec.path), *self.formats())

    async def _send_after_read(
        self,
        spec: EndpointSpec,
        arguments: Mapping[str, Any],
        timeout: float | None,
        merge: bool,
    ) -> Any:
        if self._profile is not None:
            await self._profile.read()
        if merge:
            with importing("yeastar_async.resources._history"):  # out of fds: said as such
                from yeastar_async.resources._history import merged_search

            return await merged_search(self, spec, arguments, timeout)
        return await self._send(spec, arguments, timeout)

    def version_of(self, path: str) -> ApiVersion:
        """The API version ``path`` goes to now: the profile's choice; without a profile the
        April 2024 API, and v2.0 for an endpoint that exists only there."""
        if self._profile is not None:
            return self._profile.version_for(path)
        return "2.0" if path in V2_ONLY_ENDPOINTS else "1.0"

    def formats(self) -> tuple[str, tzinfo | None]:
        """The ``strftime`` format and time zone datetimes are sent with now."""
        profile = self._profile
        if profile is None:
            return self._datetime_format, self._timezone
        return profile.datetime_format(self._datetime_format), profile.timezone()

    def _dispatch(
        self,
        spec: EndpointSpec,
        arguments: Mapping[str, Any],
        timeout: float | None,
        version: ApiVersion,
        datetime_format: str,
        zone: tzinfo | None,
    ) -> Awaitable[Any]:
        """Encode ``arguments`` for ``version`` of the endpoint and hand them to the transport."""
        _check_version(spec, arguments, version)
        dates = spec._dates if spec._dates is not None else spec.date_only()
        if dates and not dates.isdisjoint(arguments):
            arguments = _as_dates(arguments, dates)
        if zone is not None:
            arguments = in_zone(arguments, zone)
        if spec.also:
            extra = {copy: arguments[name] for name, copy in spec.also.items() if name in arguments}
            arguments = {**arguments, **extra}
        options: dict[str, Any] = {}
        if version != "1.0":
            renamed = V2_NAMES.get(spec.path, {})
            arguments = {renamed.get(name, name): value for name, value in arguments.items()}
            options["api_path"] = _api_path(self._transport, version)
        response_type = _answer_type(spec.response_type(), version)
        if spec.method == "GET":
            params = encode_query(arguments, datetime_format=datetime_format) if arguments else {}
            return self._transport.request(
                "GET",
                spec.path,
                params=params,
                response_type=response_type,
                timeout=timeout,
                **options,
            )
        body = encode_body(arguments, joined=spec.joined, datetime_format=datetime_format)
        return self._transport.request(
            "POST", spec.path, json=body, response_type=response_type, timeout=timeout, **options
        )


def _check_version(spec: EndpointSpec, arguments: Mapping[str, Any], version: ApiVersion) -> None:
    """Refuse, before any I/O, what the answering API version does not take."""
    if version == "1.0" and spec.path in V2_ONLY_ENDPOINTS:
        raise ApiUnavailableError(
            f"{spec._where}: {spec.path} exists only at openapi/v2.0, which this client does "
            "not use for this PBX (firmware too old for it, or cdr_api_version='1.0')",
            endpoint=spec.path,
        )
    only = VERSION_ONLY.get(spec.path)
    if only is None:
        return
    v1_only, v2_only = only
    refused = sorted((v2_only if version == "1.0" else v1_only) & arguments.keys())
    if refused:
        other = "2.0" if version == "1.0" else "1.0"
        raise ValueError(
            f"{spec._where}: {', '.join(refused)} only exist at openapi/v{other}, and this "
            f"request goes to openapi/v{version} (see cdr_api_version)"
        )


def _api_path(transport: Any, version: str) -> str:
    # The client's API path with its version replaced: "openapi/v1.0" -> "openapi/v2.0".
    base = str(getattr(transport, "api_path", "openapi/v1.0")).strip("/")
    head, _, tail = base.rpartition("/")
    if tail.startswith("v") and tail[1:2].isdigit():
        return f"{head}/v{version}" if head else f"v{version}"
    return f"{base}/v{version}"


@functools.lru_cache(maxsize=256)
def _answer_type(declared: Any, version: str) -> Any:
    """The member of a versioned answer union (``A | AV2``) whose ``api_version`` is ``version``."""
    members = typing.get_args(declared) if _is_union(declared) else (declared,)
    for member in members:
        if getattr(member, "api_version", "1.0") == version:
            return member
    return members[0]


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


# -- one-line declarations -----------------------------------------------------------------------
#
# Most endpoints of the CRUD groups differ only in their response type, title and manual line
# (``get(id)``, ``query(ids)``, ``delete(id)``, the call actions on one ``channel_id``, ``list``
# and ``search``). A group declares each in one line, e.g.
# ``get = by_id(ObjectResponse[ExtDetailInfo], "Query one extension.", 1927)``. The class
# supplies the rest: the path is its ``group`` and the attribute name (``extension/get``, as the
# client's ``client.group.action`` naming promises), the docs of ``id`` / ``ids`` are its
# ``id_doc`` / ``ids_doc``. When the class is created, the declaration puts in its place the
# same function ``@endpoint`` makes (same spec, same call path, ``help()`` shows the title and
# manual line). Its static type is a descriptor whose bound form has the exact keyword
# signature, so mypy still checks ``client.extension.get(id=1)`` and knows its return type.


class ById(Protocol[R_co]):
    """A bound endpoint method taking one ``id``."""

    async def __call__(self, *, id: int, timeout: float | None = None) -> R_co:
        """Call the endpoint for the item ``id``."""
        ...


class ByIds(Protocol[R_co]):
    """A bound endpoint method taking ``ids`` (a list is sent comma-separated)."""

    async def __call__(self, *, ids: str | Sequence[int], timeout: float | None = None) -> R_co:
        """Call the endpoint for the items ``ids``."""
        ...


class ByChannel(Protocol[R_co]):
    """A bound endpoint method taking one ``channel_id``."""

    async def __call__(self, *, channel_id: str, timeout: float | None = None) -> R_co:
        """Call the endpoint for the call channel ``channel_id``."""
        ...


class NoParams(Protocol[R_co]):
    """A bound endpoint method without parameters."""

    async def __call__(self, *, timeout: float | None = None) -> R_co:
        """Call the endpoint."""
        ...


_OBJECT_OR_LIST_NOTE = (
    "The manual types ``data`` one way and prints the other; read ``.items`` for a list either way."
)


class Declared(Generic[C]):
    """An endpoint declared in one line; ``C`` is the static type of its bound method.

    When the owning class is created, :meth:`__set_name__` builds the endpoint function (what
    ``@endpoint`` makes) and puts it in the declaration's place, so at run time the class holds
    a plain function; the ``__get__`` overloads tell type checkers what an instance hands out.

    Args:
        template: a ``__call__`` whose signature the endpoint takes (its body never runs).
        response: the answer's type.
        title: the docstring's first line.
        line: the manual's line of the endpoint, for the docstring; for an endpoint the manual
            does not have, the URL of the vendor page it was typed from.
        args: ``(parameter, doc)`` for the docstring; a ``None`` doc takes the class attribute
            ``<parameter>_doc`` (``id_doc``, ``ids_doc``).
        method: the HTTP method.
        path: the endpoint id; default: the class's ``group`` and the attribute name.
        note: a paragraph added to the docstring.
    """

    def __init__(
        self,
        template: Callable[..., Any],
        response: Any,
        title: str,
        line: int | str,
        args: Iterable[tuple[str, str | None]] = (),
        *,
        method: Literal["GET", "POST"] = "GET",
        path: str | None = None,
        note: str = "",
    ) -> None:
        self._template = template
        self._response = response
        self._title = title
        self._line = line
        self._args = tuple(args)
        self._method: Literal["GET", "POST"] = method
        self._path = path
        self._note = note
        #: For paginated endpoints: the response field of the items, and whether the response
        #: carries ``total_number``.
        self._items: str | None = None
        self._has_total = True

    def _annotations(self) -> dict[str, Any]:
        """Annotations replacing the template's (they end up in :meth:`EndpointSpec.fields`)."""
        return {}

    def __set_name__(self, owner: type[Any], name: str) -> None:
        group = getattr(owner, "group", "")
        if self._path is None and not group:
            raise TypeError(f"{owner.__name__}.{name}: no group to make the path of: give path=")
        path = self._path or f"{group}/{name}"
        args = [
            (arg, getattr(owner, f"{arg}_doc", "") if doc is None else doc)
            for arg, doc in self._args
        ]
        # type.__new__ calls this on a copy of the namespace: replacing the attribute is safe.
        setattr(owner, name, self._function(name, path, args))

    def _function(self, name: str, path: str, args: Iterable[tuple[str, str]]) -> Any:
        template = self._template
        func = types.FunctionType(template.__code__, template.__globals__, name)
        func.__kwdefaults__ = dict(template.__kwdefaults__ or {})
        func.__annotations__ = {**template.__annotations__, **self._annotations()}
        response: Any = self._response
        func.__annotations__["return"] = Paginator[response, Any] if self._items else response
        func.__qualname__ = name
        where = (
            f"manual line {self._line}" if isinstance(self._line, int) else f"source: {self._line}"
        )
        doc = f"{self._title}\n\n``{self._method} {path}``, {where}."
        if typing.get_origin(response) is ObjectOrListResponse:
            doc += f"\n\n{_OBJECT_OR_LIST_NOTE}"
        if self._note:
            doc += f"\n\n{self._note}"
        documented = "".join(f"\n    {arg}: {text}" for arg, text in args)
        if documented:
            doc += f"\n\nArgs:{documented}"
        func.__doc__ = doc
        spec = EndpointSpec(self._method, path, func, items=self._items, has_total=self._has_total)
        # The response type is given, not annotated: set it as response_type() would cache it.
        spec._response_type = response
        return _install(spec)

    @overload
    def __get__(self, instance: None, owner: type[Any], /) -> Callable[..., Any]: ...
    @overload
    def __get__(self, instance: Resource, owner: type[Any], /) -> C: ...
    def __get__(self, instance: Resource | None, owner: type[Any], /) -> Any:
        """Only reached outside a class body: the declaration was never installed."""
        raise TypeError("declare endpoints in the body of a Resource class")


def by_id(
    response: type[R],
    title: str,
    line: int | str,
    id: str | None = None,
    *,
    path: str | None = None,
) -> Declared[ById[R]]:
    """Declare a GET endpoint taking one ``id: int``, answering ``response``.

    ``title`` and ``line`` (the manual's line) make the docstring; ``id`` documents the id
    (default: the class's ``id_doc``); ``path`` defaults to the class's ``group``/attribute.
    """
    return Declared(ById.__call__, response, title, line, [("id", id)], path=path)


def by_ids(
    response: type[R],
    title: str,
    line: int | str,
    ids: str | None = None,
    *,
    path: str | None = None,
) -> Declared[ByIds[R]]:
    """Declare a GET endpoint taking ``ids`` (comma-separated), answering ``response``.

    ``ids`` documents the parameter (default: the class's ``ids_doc``).
    """
    return Declared(ByIds.__call__, response, title, line, [("ids", ids)], path=path)


def by_channel(
    response: type[R],
    title: str,
    line: int | str,
    channel_id: str,
    *,
    note: str = "",
    path: str | None = None,
) -> Declared[ByChannel[R]]:
    """Declare a POST call action taking one ``channel_id: str``, answering ``response``.

    ``channel_id`` documents the parameter; ``note`` is a paragraph added to the docstring.
    """
    args = [("channel_id", channel_id)]
    return Declared(
        ByChannel.__call__, response, title, line, args, method="POST", path=path, note=note
    )


def no_params(
    response: type[R], title: str, line: int | str, *, path: str | None = None
) -> Declared[NoParams[R]]:
    """Declare a GET endpoint that takes no parameters, answering ``response``."""
    return Declared(NoParams.__call__, response, title, line, path=path)


# The list endpoints of the CRUD groups (``list`` and ``search``: paging, order_by and a sort_by
# whose values differ by group) are declared in one line too. The types come by explicit type
# application: mypy reads the bound signature from ListCall/SearchCall, the runtime reads the
# types from ``__orig_class__``. A group with both declares the types once, on :class:`Pages`.

_PAGE_ARGS = (
    ("sort_by", "Field to sort by."),
    ("page", "Page number, from 1 (iterating starts there)."),
    ("page_size", "Items per page (iterating uses DEFAULT_PAGE_SIZE unless given)."),
    ("order_by", 'Sort direction, "asc" or "desc".'),
)


class ListCall(Generic[R, I, S]):
    """Static type of a bound ``list`` method declared with :class:`ListEndpoint`."""

    def __call__(
        self, *, timeout: float | None = None, **query: Unpack[SortedQuery[S]]
    ) -> Paginator[R, I]:
        """One page when awaited, every item when iterated (see :class:`Paginator`)."""
        raise NotImplementedError  # only a type: the runtime object is the bound endpoint


class SearchCall(Generic[R, I, S]):
    """Static type of a bound ``search`` method declared with :class:`SearchEndpoint`."""

    def __call__(
        self,
        *,
        search_value: str | None = None,
        timeout: float | None = None,
        **query: Unpack[SortedQuery[S]],
    ) -> Paginator[R, I]:
        """One page when awaited, every item when iterated (see :class:`Paginator`)."""
        raise NotImplementedError  # only a type: the runtime object is the bound endpoint


class _PagedEndpoint(Declared[C]):
    """A paginated GET endpoint declared in one line; ``C`` is the type of its bound method.

    The subclasses are subscripted with (response, item, sort_by) where they are declared.
    """

    _call: typing.ClassVar[Callable[..., Any]]
    _search: typing.ClassVar[bool] = False

    def __init__(
        self,
        title: str,
        line: int | str,
        *,
        items: str = "data",
        has_total: bool = True,
        path: str | None = None,
    ) -> None:
        args = (("search_value", "Search keyword."),) * self._search + _PAGE_ARGS
        super().__init__(type(self)._call, None, title, line, args, path=path)
        self._items = items
        self._has_total = has_total
        self._sort: Any = None

    def __set_name__(self, owner: type[Any], name: str) -> None:
        # Set by the subscripted class on the instance, before the owner class calls this.
        alias = getattr(self, "__orig_class__", None)
        if alias is None:
            raise TypeError(f"{name}: give the types, e.g. {type(self).__name__}[R, I, S](...)")
        self._response, _item, self._sort = typing.get_args(alias)
        super().__set_name__(owner, name)

    def _annotations(self) -> dict[str, Any]:
        # Built at run time from the declared sort_by values (no static type to give here).
        query: Any = SortedQuery
        return {"query": Unpack[query[self._sort]]}


class ListEndpoint(_PagedEndpoint[ListCall[R, I, S]], Generic[R, I, S]):
    """``list = ListEndpoint[Response, Item, SortBy](title, manual_line)``."""

    _call = ListCall.__call__


class SearchEndpoint(_PagedEndpoint[SearchCall[R, I, S]], Generic[R, I, S]):
    """``search = SearchEndpoint[Response, Item, SortBy](title, manual_line)``."""

    _call = SearchCall.__call__
    _search = True


class Pages(Generic[R, I, S]):
    """The types of a group's ``list`` and ``search`` answers, given once for both::

        _pages = Pages[PageResponse[ExtBasicinfo], ExtBasicinfo, ExtensionSortBy]()
        list = _pages.list("Query extension list.", 1538)
        search = _pages.search("Search extensions.", 1774)

    ``R`` is the answer of one page, ``I`` the type of its items (the response field ``items``),
    ``S`` the values of ``sort_by``; ``has_total`` is false where the answer has no
    ``total_number``.
    """

    def __init__(self, *, items: str = "data", has_total: bool = True) -> None:
        self._items = items
        self._has_total = has_total

    def _declare(self, kind: Any, title: str, line: int | str) -> Any:
        alias = getattr(self, "__orig_class__", None)
        if alias is None:
            raise TypeError("give the types, e.g. Pages[R, I, S]()")
        return kind[typing.get_args(alias)](
            title, line, items=self._items, has_total=self._has_total
        )

    def list(self, title: str, line: int | str) -> ListEndpoint[R, I, S]:
        """A ``list`` endpoint (paging, ``order_by``, ``sort_by``) answering these pages."""
        declared: ListEndpoint[R, I, S] = self._declare(ListEndpoint, title, line)
        return declared

    def search(self, title: str, line: int | str) -> SearchEndpoint[R, I, S]:
        """A ``search`` endpoint (``search_value`` too) answering these pages."""
        declared: SearchEndpoint[R, I, S] = self._declare(SearchEndpoint, title, line)
        return declared


# -- pagination --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageStyle:
    """How a list endpoint is paged: the names of its two paging arguments and what they count.

    Yeastar endpoints number their pages (:data:`PAGE_NUMBERS`: ``page`` from 1, ``page_size``);
    other vendors' APIs skip items (:data:`OFFSETS`: ``offset`` from 0, ``limit``). One
    :class:`Paginator` walks both.

    Attributes:
        start: the argument saying where a page starts (``page`` / ``offset``).
        size: the argument saying how many items a page holds (``page_size`` / ``limit``).
        first: the value of ``start`` for the first page (1 / 0).
        by_offset: ``start`` counts items (an offset), not pages.
        total: the attribute of a page holding the number of matching items.
        default_size: ``size`` used while iterating when the caller gives none.
    """

    start: str = "page"
    size: str = "page_size"
    first: int = 1
    by_offset: bool = False
    total: str = "total_number"
    default_size: int = DEFAULT_PAGE_SIZE


#: Yeastar's paging: ``page`` numbers from 1 and ``page_size``, the total in ``total_number``.
PAGE_NUMBERS = PageStyle()
#: Offset paging: ``offset`` (items to skip, from 0) and ``limit``, the total in ``total``.
OFFSETS = PageStyle(start="offset", size="limit", first=0, by_offset=True, total="total")


class Paginator(Generic[P, I]):
    """The result of a paginated endpoint: awaitable for one page, async-iterable for all items.

    ``await pbx.extension.list(page=2, page_size=50)`` fetches exactly that page (the response,
    with ``.data`` and ``.total_number``). ``async for ext in pbx.extension.list()`` walks every
    item from ``page`` (default 1) on, ``page_size`` items per request (default
    :data:`DEFAULT_PAGE_SIZE`). It stops once ``total_number`` items were seen (without an extra
    request) or at an empty page. Where the endpoint returns no total, a page shorter than
    ``page_size`` ends it too; with a total, a short page does not, because a PBX caps
    ``page_size`` (at 10000, manual line 6187) and sends full pages of that smaller size.
    :meth:`pages` yields whole responses instead of items.

    ``style`` names the paging arguments (:class:`PageStyle`): with :data:`OFFSETS` the same
    holds for ``offset`` / ``limit`` / ``total``, and each next offset is the previous one plus
    the items actually received (a server that caps ``limit`` skips nothing).
    """

    def __init__(
        self,
        fetch: Callable[[dict[str, Any]], Awaitable[P]],
        arguments: Mapping[str, Any],
        *,
        items: str = "data",
        has_total: bool = True,
        style: PageStyle = PAGE_NUMBERS,
    ) -> None:
        self._fetch = fetch
        self._arguments = dict(arguments)
        self._items = items
        self._has_total = has_total
        self._style = style

    def __repr__(self) -> str:
        return f"<Paginator {self._arguments!r}>"

    def __await__(self) -> Generator[Any, None, P]:
        return self._fetch(dict(self._arguments)).__await__()

    async def fetch(self) -> P:
        """The one page ``await`` gives, as a coroutine: for ``asyncio.create_task`` and
        ``TaskGroup.create_task``, which take coroutines only."""
        return await self._fetch(dict(self._arguments))

    def __aiter__(self) -> AsyncIterator[I]:
        return self._iterate_items()

    def items_of(self, page: P) -> list[I]:
        """The items of one page (an empty list where the PBX sent none)."""
        found = getattr(page, self._items, None)
        return list(found) if found else []

    async def pages(self) -> AsyncIterator[P]:
        """Every page from the starting one, as whole responses."""
        style = self._style
        start = int(self._arguments.get(style.start, style.first))
        size = int(self._arguments.get(style.size, style.default_size))
        if size < 1:
            raise ValueError(f"{style.size} must be at least 1 to iterate")
        seen = start if style.by_offset else (start - style.first) * size
        while True:
            page = await self._fetch({**self._arguments, style.start: start, style.size: size})
            yield page
            count = len(self.items_of(page))
            seen += count
            if count == 0:
                return
            total = getattr(page, style.total, None) if self._has_total else None
            if isinstance(total, int):
                if seen >= total:
                    return
            elif count < size:
                return
            start += count if style.by_offset else 1

    async def _iterate_items(self) -> AsyncIterator[I]:
        async for page in self.pages():
            for item in self.items_of(page):
                yield item
