"""The policy language: pydantic models of the policy JSON format (perso and v2).

These models are the single definition of what a policy may contain: the compiler reads
them, `callgate schema` prints their JSON Schema, and every validation error is turned into
one line naming its exact location (``rules[3].condition.All[1].NumericCheck.op: ...``).

Two families of models:

- the v2 language (docs/policy-v2.md), used by the default (strict) semantics: `Policy`,
  `Rule`, `NumericCheck`... Unknown keys are errors.
- the perso format (docs/semantics.md), used by ``semantics="perso"``: `PersoPolicy` and
  its parts, subclasses of the v2 models narrowed to what the original engine knew (so code
  that walks a policy with ``isinstance`` works for both). Unknown keys, including every v2
  key, are dropped before validation (``strip_unknown``), as the original engine's
  deserializer ignored them; v2 condition kinds, ops and sources are unknown variants there.

Checks that involve more than one key (an op and the shape of its value, ``field`` vs
``pointer``, ``effect`` and ``approvals``...) are validators on the models; the ones that
depend on where a node sits (``Element`` only inside Every/Some, quantifier nesting) run
over the validated tree (`check_structure`). Either way the error is a `PolicyError` with
the exact location.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Iterator, Literal, NoReturn, Optional, TypeVar, Union

from pydantic import (
    BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, ValidationInfo,
    WithJsonSchema, field_validator, model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import PolicyError

if TYPE_CHECKING:
    from typing import Protocol
    from zoneinfo import ZoneInfo

    from pydantic_core import ErrorDetails

    class Located(Protocol):
        """Anything with a location in a policy (a PolicyError, a lint problem)."""

        @property
        def location(self) -> str: ...

_Located = TypeVar("_Located", bound="Located")

# ---------------------------------------------------------------- vocabularies

SOURCES = ("Arguments", "AgentAttributes", "ResourceAttributes", "Context", "Principal")
PRINCIPAL = "Principal"
PERSO_SOURCES = ("Arguments", "AgentAttributes", "ResourceAttributes")
ELEMENT = "Element"
NUMERIC_OPS = ("Lt", "Lte", "Gt", "Gte", "Eq", "Ne", "Between")
PERSO_NUMERIC_OPS = ("Lt", "Lte", "Gt", "Gte", "Eq")
STRING_SET_OPS = ("In", "NotIn")
STRING_MATCH_OPS = ("Eq", "Ne", "StartsWith", "EndsWith", "Contains", "Glob", "PathGlob")
STRING_OPS = STRING_SET_OPS + STRING_MATCH_OPS
LENGTH_OPS = ("Lt", "Lte", "Gt", "Gte", "Eq", "Ne")
TYPE_NAMES = ("string", "number", "integer", "boolean", "null", "array", "object")
DAYS: tuple[Day, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
TIERS = ("public", "read", "write", "destructive")   # in order of strictness
EFFECTS = ("allow", "deny", "elevate")
MAX_QUANTIFIER_NESTING = 8
# a rule's optional id: a letter first, so that no id reads as a rule number ("rule 4")
RULE_ID_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")
LENGTH_MAX = 2 ** 53

Source = Literal["Arguments", "AgentAttributes", "ResourceAttributes", "Context", "Principal", "Element"]
PersoSource = Literal["Arguments", "AgentAttributes", "ResourceAttributes"]
NumericOp = Literal["Lt", "Lte", "Gt", "Gte", "Eq", "Ne", "Between"]
PersoNumericOp = Literal["Lt", "Lte", "Gt", "Gte", "Eq"]
StringOp = Literal["In", "NotIn", "Eq", "Ne", "StartsWith", "EndsWith", "Contains", "Glob", "PathGlob"]
PersoStringOp = Literal["In", "NotIn"]
LengthOp = Literal["Lt", "Lte", "Gt", "Gte", "Eq", "Ne"]
TypeName = Literal["string", "number", "integer", "boolean", "null", "array", "object"]
Day = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
Tier = Literal["public", "read", "write", "destructive"]
Effect = Literal["allow", "deny", "elevate"]
Approvals = Literal[1, 2]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
LengthValue = Annotated[int, Field(strict=True, ge=0, le=LENGTH_MAX)]

PERSO_CONDITION_KINDS = ("NumericCheck", "StringCheck", "FieldPresent", "FieldEquals", "All", "Any", "Not")
CONDITION_KINDS = PERSO_CONDITION_KINDS + ("Length", "Type", "BooleanCheck", "TimeWindow", "Every", "Some", "ScopeCheck",
                                           "UrlCheck", "PathCheck", "SqlCheck")
URL_SCHEMES = ("http", "https", "ws", "wss", "ftp")   # the schemes UrlCheck reads (docs/arguments.md)
# a ScopeCheck's required scope has at most this many segments: it compiles to the set of the
# 2**n patterns that cover it (docs/principals.md), kept small
SCOPE_CHECK_MAX_SEGMENTS = 8

_NUMBER_SCHEMA = {"type": "number"}
_POINTER_RE = re.compile(r"(/([^~/]|~[01])*)*")
_HHMM_RE = re.compile(r"([0-9]{2}):([0-9]{2})")
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def _fail(message: str, *at: Union[str, int]) -> NoReturn:
    """A validation error with our own one-line message, `at` below the validator's own
    location (validate() appends it)."""
    raise PydanticCustomError("callgate", "{message}", {"message": message, "at": at})


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return json.dumps(value) if isinstance(value, (bool, int, float, type(None))) else type(value).__name__


def _what(value: Any) -> str:
    """A value as named in a message: 'x', 5, true, a list, an object."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return _describe(value)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def pointer_tokens(pointer: str) -> tuple[str, ...]:
    """The reference tokens of a (valid) RFC 6901 pointer, unescaped: "/a~1b/0" -> ("a/b", "0")."""
    if pointer == "":
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def _check_pointer(pointer: str) -> None:
    if pointer and not pointer.startswith("/"):
        _fail(f"{_describe(pointer)} is not a JSON Pointer: it must be empty or start with '/'")
    if not _POINTER_RE.fullmatch(pointer):
        _fail(f"{_describe(pointer)} is not a JSON Pointer: '~' must be followed by 0 or 1")


def _check_effect(effect: str, has_approvals: bool) -> None:
    if effect == "elevate" and not has_approvals:
        _fail("required when effect is 'elevate' (1 or 2)", "approvals")
    if effect != "elevate" and has_approvals:
        _fail(f"only valid with effect 'elevate', not '{effect}'", "approvals")


def _approvals_type(data: dict[str, Any]) -> None:
    """approvals is an integer: Literal[1, 2] alone would take true and 1.0."""
    if "approvals" in data and type(data["approvals"]) is not int:
        _fail(f"expected 1 or 2, got {_describe(data['approvals'])}", "approvals")


def _parse_hhmm(text: str, what: str, lo: int, hi: int) -> int:
    m = _HHMM_RE.fullmatch(text)
    minutes = int(m.group(1)) * 60 + int(m.group(2)) if m and int(m.group(2)) < 60 else -1
    if not lo <= minutes <= hi:
        _fail(f"expected {what} as HH:MM from {lo // 60:02d}:{lo % 60:02d} to {hi // 60:02d}:{hi % 60:02d}, "
              f"got {_describe(text)}")
    return minutes


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name` as zoneinfo loads it (the compiler's offset tables come from it)."""
    from zoneinfo import ZoneInfo

    if name in ("localtime", "posixrules"):  # the host's own settings, not an IANA zone
        raise ValueError(name)
    return ZoneInfo(name)


# ---------------------------------------------------------------- models


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    PERSO: ClassVar[bool] = False  # the perso subclasses skip every v2 check


class _Ref(_Model):
    """A value named by `source` and `field` or `pointer` (a leaf's own reference)."""

    def ref_check(self, suffix: str = "") -> None:
        source = getattr(self, "source" + suffix)
        field = getattr(self, "field" + suffix)
        pointer = getattr(self, "pointer" + suffix)
        if field is not None and pointer is not None:
            _fail(f"give field{suffix} or pointer{suffix}, not both", "pointer" + suffix)
        if field is None and pointer is None and source != ELEMENT:
            _fail(f"field{suffix} or pointer{suffix} is required (only source Element may have neither)")
        if pointer == "" and source != ELEMENT:
            _fail(f"the empty pointer is only valid with source Element; {source} needs at least one token",
                  "pointer" + suffix)


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _optional(description: str) -> Any:
    """A key that may be absent (None then) but is never null: typed without None, so an
    explicit null is a type error, and absent from the schema's defaults."""
    return Field(default=None, description=description, json_schema_extra=_drop_default)


_FIELD_DOC = "a top-level key of the source, read literally (or give pointer)"
_POINTER_DOC = 'an RFC 6901 JSON Pointer, e.g. "/filters/0/amount" (or give field)'


class _Leaf(_Ref):
    source: Source
    field: str = _optional(_FIELD_DOC)
    pointer: str = _optional(_POINTER_DOC)

    @field_validator("pointer")
    @classmethod
    def _pointer_syntax(cls, value: str) -> str:
        _check_pointer(value)
        return value

    @model_validator(mode="after")
    def _refs(self) -> Any:
        if not self.PERSO:
            self.ref_check()
        return self


class NumericCheckBody(_Leaf):
    """Compare a number with a constant (`value`), or with a range (`Between`: [lo, hi])."""

    op: NumericOp
    value: Annotated[Any, WithJsonSchema({
        "anyOf": [_NUMBER_SCHEMA, {"type": "array", "prefixItems": [_NUMBER_SCHEMA, _NUMBER_SCHEMA],
                                   "minItems": 2, "maxItems": 2}],
        "description": "a finite number; [lo, hi] with lo <= hi for op Between"})]

    @field_validator("value")
    @classmethod
    def _value_fits_op(cls, value: Any, info: ValidationInfo) -> Any:
        op = info.data.get("op")
        if op is None or cls.PERSO:
            return value  # the op's own error is reported
        if op != "Between":
            if not _is_number(value):
                _fail(f"expected a finite number, got {_what(value)}"
                      + (" (a list is only valid with op Between)" if isinstance(value, list) else ""))
            return float(value)
        if not isinstance(value, list) or len(value) != 2:
            _fail(f"op 'Between' needs [lo, hi], got {_what(value)}"
                  + (f" of {len(value)}" if isinstance(value, list) else ""))
        for k, item in enumerate(value):
            if not _is_number(item):
                _fail(f"expected a finite number, got {_describe(item)}", k)
        lo, hi = float(value[0]), float(value[1])
        if lo > hi:
            _fail(f"lo {_describe(value[0])} is greater than hi {_describe(value[1])}")
        return [lo, hi]


class StringCheckBody(_Leaf):
    """Test a string: membership in a list (`In`, `NotIn`), or a match with one string."""

    op: StringOp
    value: Annotated[Any, WithJsonSchema({
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "a list of strings for In/NotIn; one string for the other ops"})]

    @field_validator("value")
    @classmethod
    def _value_fits_op(cls, value: Any, info: ValidationInfo) -> Any:
        op = info.data.get("op")
        if op is None or cls.PERSO:
            return value
        if op in STRING_SET_OPS:
            if not isinstance(value, list):
                _fail(f"op '{op}' needs a list of strings, got {_what(value)}")
            for k, item in enumerate(value):
                if not isinstance(item, str):
                    _fail(f"expected a string, got {_describe(item)}", k)
            return value
        if not isinstance(value, str):
            _fail(f"op '{op}' needs one string, got {_what(value)}")
        return value


class FieldPresentBody(_Leaf):
    """The value exists and is not null."""


class FieldEqualsBody(_Ref):
    """Two values are equal JSON values."""

    source_a: Source
    field_a: str = _optional(_FIELD_DOC)
    pointer_a: str = _optional(_POINTER_DOC)
    source_b: Source
    field_b: str = _optional(_FIELD_DOC)
    pointer_b: str = _optional(_POINTER_DOC)

    @field_validator("pointer_a", "pointer_b")
    @classmethod
    def _pointer_syntax(cls, value: str) -> str:
        _check_pointer(value)
        return value

    @model_validator(mode="after")
    def _refs(self) -> Any:
        if not self.PERSO:
            self.ref_check("_a")
            self.ref_check("_b")
        return self


class LengthBody(_Leaf):
    """A string's length in code points, or an array's element count, compared with `value`."""

    op: LengthOp
    value: LengthValue


class TypeBody(_Leaf):
    """The value has the JSON type `is` (a missing value is F, never U)."""

    is_: TypeName = Field(alias="is")


class BooleanCheckBody(_Leaf):
    """The value is the JSON boolean `value` (another boolean: F; missing, null or another
    type: U)."""

    value: bool = Field(strict=True)


class TimeWindowBody(_Leaf):
    """The instant (Unix seconds or RFC 3339) falls in a weekly window, in local time.
    Without field and pointer, the instant is the field "time" (Context by default)."""

    source: Source = "Context"
    days: list[Day] = Field(default_factory=lambda: list(DAYS))
    start: str = Field(description="HH:MM, 00:00 to 23:59")
    end: str = Field(description="HH:MM, 00:01 to 24:00 (before start: an overnight window)")
    timezone: str = Field(description="an IANA time zone name, e.g. Europe/Paris")

    @model_validator(mode="before")
    @classmethod
    def _default_field(cls, data: Any) -> Any:
        """Without field and pointer the instant is Context's field "time" (Element's own
        value inside a quantifier)."""
        if (isinstance(data, dict) and "field" not in data and "pointer" not in data
                and data.get("source", "Context") != ELEMENT):
            data = {**data, "field": "time"}
        return data

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        if not value:
            _fail("needs at least one day")
        seen: set[str] = set()
        for k, day in enumerate(value):
            if day in seen:
                _fail(f"day '{day}' is listed twice", k)
            seen.add(day)
        return value

    @field_validator("start")
    @classmethod
    def _start(cls, value: str) -> str:
        _parse_hhmm(value, "a start time", 0, 23 * 60 + 59)
        return value

    @field_validator("end")
    @classmethod
    def _end(cls, value: str, info: ValidationInfo) -> str:
        minutes = _parse_hhmm(value, "an end time", 1, 24 * 60)
        start = info.data.get("start")
        if start is not None and _parse_hhmm(start, "a start time", 0, 23 * 60 + 59) == minutes:
            _fail("end equals start: the window would be empty")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zone(value)
        except Exception:
            _fail(f"unknown time zone {_describe(value)}; expected an IANA name such as Europe/Paris")
        return value

    @property
    def start_minute(self) -> int:
        """`start` in minutes after midnight (0 to 1439)."""
        return int(self.start[:2]) * 60 + int(self.start[3:])

    @property
    def end_minute(self) -> int:
        """`end` in minutes after midnight (1 to 1440)."""
        return int(self.end[:2]) * 60 + int(self.end[3:])


class ScopeCheckBody(_Model):
    """Scopes the calling chain's effective authority must grant (Principal.scopes, after the
    policy's ceilings): every one (`mode` "all") or at least one ("any"). No chain: unknown."""

    requires: list[str] = Field(min_length=1, description="concrete scopes (dot-separated segments, no '*')")
    mode: Literal["all", "any"] = "all"

    @field_validator("requires")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        from .scopes import ScopeError, parse

        for k, scope in enumerate(value):
            try:
                segments = parse(scope, wildcards=False)
            except ScopeError as exc:
                _fail(str(exc), k)
            if len(segments) > SCOPE_CHECK_MAX_SEGMENTS:
                _fail(f"{scope!r} has {len(segments)} segments; a required scope has at most "
                      f"{SCOPE_CHECK_MAX_SEGMENTS}", k)
        return value


def _optional_list(description: str) -> Any:
    """An optional, non-empty list (absent: None; never null, never empty)."""
    return Field(default=None, min_length=1, description=description, json_schema_extra=_drop_default)


def _canonical_each(values: list[str], canon: Any) -> None:
    """Each entry goes through an arguments.canonical_* function; its ValueError is the error."""
    for k, v in enumerate(values):
        try:
            canon(v)
        except ValueError as exc:
            _fail(str(exc), k)


class UrlCheckBody(_Leaf):
    """A URL, parsed as the WHATWG standard does (docs/arguments.md): every listed check holds.
    A value that is not a string, or a URL the parser cannot read with certainty, is U."""

    schemes_in: list[Literal["http", "https", "ws", "wss", "ftp"]] = _optional_list("lower-case schemes")
    hosts_in: list[str] = _optional_list("hosts, exactly (IP literals in any form a browser accepts)")
    host_suffixes_in: list[str] = _optional_list("domain names: the host is one or lies under one (at a "
                                                 "label boundary); with hosts_in, either holds")
    ports_in: list[Annotated[int, Field(strict=True, ge=0, le=65535)]] = _optional_list(
        "ports, the scheme's default when the URL gives none")
    userinfo: bool = Field(default=True, description="false: a URL with '@' before its host fails")
    ip: Literal["public"] = _optional('"public": no loopback, private, link-local, ... address, '
                                      "nor localhost (names are not resolved)")

    @field_validator("hosts_in")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        from .arguments import canonical_host

        _canonical_each(value, canonical_host)
        return value

    @field_validator("host_suffixes_in")
    @classmethod
    def _suffixes(cls, value: list[str]) -> list[str]:
        from .arguments import canonical_suffix

        _canonical_each(value, canonical_suffix)
        return value


class PathCheckBody(_Leaf):
    """A file path, normalized lexically in its style (docs/arguments.md): every listed check
    holds. Symlinks are not seen. A value that is not a string, or a path that cannot be
    normalized with certainty (NUL, relative unless allowed, Windows device forms), is U."""

    style: Literal["posix", "windows"] = "posix"
    within: list[str] = _optional_list("roots: the path equals one or lies under one")
    not_within: list[str] = _optional_list("roots the path must not equal nor lie under")
    absolute: bool = Field(default=True, description="true: a relative path is U")
    extensions_in: list[str] = _optional_list('extensions of the last segment, e.g. ".csv"')

    @model_validator(mode="after")
    def _lists(self) -> Any:
        from .arguments import canonical_extension, canonical_root

        for key in ("within", "not_within"):
            roots = getattr(self, key)
            if roots is not None:
                for k, root in enumerate(roots):
                    try:
                        canonical_root(root, self.style, not self.absolute)
                    except ValueError as exc:
                        _fail(str(exc), key, k)
        if self.extensions_in is not None:
            for k, ext in enumerate(self.extensions_in):
                try:
                    canonical_extension(ext, self.style)
                except ValueError as exc:
                    _fail(str(exc), "extensions_in", k)
        return self


_SQL_NAME_RE = re.compile(r"[^.]+(\.[^.]+){0,2}")


class SqlCheckBody(_Leaf):
    """SQL text, tokenized as the dialect's server does (docs/arguments.md): every listed check
    holds for every statement. Text the scanner cannot read with certainty is U."""

    dialect: Literal["postgres", "sqlite", "mysql"] = Field(description="the server's dialect")
    read_only: bool = Field(default=False, description="every statement is a query that cannot write or lock")
    max_statements: Annotated[int, Field(strict=True, ge=1, le=1 << 20)] = _optional("at most this many statements")
    schemas_in: list[str] = _optional_list("schemas of every table named (an unqualified table: U)")
    tables_in: list[str] = _optional_list("tables, as named (schema.table when qualified)")
    functions_allowed: list[str] = _optional_list("functions read_only accepts beyond the built-in list")

    @model_validator(mode="after")
    def _names(self) -> Any:
        for key, parts in (("schemas_in", 1), ("tables_in", 3), ("functions_allowed", 3)):
            for k, name in enumerate(getattr(self, key) or ()):
                if not _SQL_NAME_RE.fullmatch(name) or name.count(".") >= parts:
                    _fail(f"{name!r} is not a name of at most {parts} dot-separated parts", key, k)
        return self


class QuantifierBody(_Leaf):
    """An array, and the condition its elements are tested with (`source: Element` there)."""

    condition: "Condition"


class NumericCheck(_Model):
    """The condition {"NumericCheck": {...}}: a number compared with a constant or a range."""

    NumericCheck: NumericCheckBody


class StringCheck(_Model):
    """The condition {"StringCheck": {...}}: a string in a list, or matched with one string."""

    StringCheck: StringCheckBody


class FieldPresent(_Model):
    """The condition {"FieldPresent": {...}}: the value exists and is not null."""

    FieldPresent: FieldPresentBody


class FieldEquals(_Model):
    """The condition {"FieldEquals": {...}}: two values are equal JSON values."""

    FieldEquals: FieldEqualsBody


class Length(_Model):
    """The condition {"Length": {...}}: a string's or an array's length compared with a constant."""

    Length: LengthBody


class Type(_Model):
    """The condition {"Type": {...}}: the value has a given JSON type."""

    Type: TypeBody


class BooleanCheck(_Model):
    """The condition {"BooleanCheck": {...}}: the value is true, or false."""

    BooleanCheck: BooleanCheckBody


class TimeWindow(_Model):
    """The condition {"TimeWindow": {...}}: an instant falls in a weekly window."""

    TimeWindow: TimeWindowBody


class Every(_Model):
    """The condition {"Every": {...}}: every element of an array passes the inner condition."""

    Every: QuantifierBody


class Some(_Model):
    """The condition {"Some": {...}}: some element of an array passes the inner condition."""

    Some: QuantifierBody


class ScopeCheck(_Model):
    """The condition {"ScopeCheck": {...}}: the calling chain's effective scopes grant these."""

    ScopeCheck: ScopeCheckBody


class UrlCheck(_Model):
    """The condition {"UrlCheck": {...}}: a URL's scheme, userinfo, host, port and address kind."""

    UrlCheck: UrlCheckBody


class PathCheck(_Model):
    """The condition {"PathCheck": {...}}: a normalized path's place, under roots, and extension."""

    PathCheck: PathCheckBody


class SqlCheck(_Model):
    """The condition {"SqlCheck": {...}}: SQL statements' kinds, writes, tables and functions."""

    SqlCheck: SqlCheckBody


class All(_Model):
    """The condition {"All": [...]}: every condition in the list passes."""

    All: list["Condition"]


class AnyOf(_Model):
    """The condition {"Any": [...]}: at least one condition in the list passes."""

    Any: list["Condition"]


class Not(_Model):
    """The condition {"Not": ...}: passes when the inner condition fails (missing data: docs/semantics.md)."""

    Not: "Condition"


def _condition_tag(value: Any) -> Optional[str]:
    """A condition is an object with exactly one key, which names its kind."""
    if isinstance(value, dict):
        return next(iter(value)) if len(value) == 1 else None
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


def _condition_union(members: dict[str, type], kinds: tuple[str, ...]) -> Any:
    return Annotated[
        Union[tuple(Annotated[cls, Tag(tag)] for tag, cls in members.items())],
        Discriminator(
            _condition_tag,
            custom_error_type="condition_kind",
            custom_error_message="a condition is an object with one key: " + ", ".join(kinds),
        ),
    ]


if TYPE_CHECKING:   # the union as a type checker reads it (pydantic reads the tagged one below)
    Condition = Union[NumericCheck, StringCheck, FieldPresent, FieldEquals, All, AnyOf, Not, Length, Type,
                      BooleanCheck, TimeWindow, Every, Some, ScopeCheck, UrlCheck, PathCheck, SqlCheck]
else:
    Condition = _condition_union(
        {"NumericCheck": NumericCheck, "StringCheck": StringCheck, "FieldPresent": FieldPresent,
         "FieldEquals": FieldEquals, "All": All, "Any": AnyOf, "Not": Not, "Length": Length,
         "Type": Type, "BooleanCheck": BooleanCheck, "TimeWindow": TimeWindow, "Every": Every, "Some": Some, "ScopeCheck": ScopeCheck,
         "UrlCheck": UrlCheck, "PathCheck": PathCheck, "SqlCheck": SqlCheck},
        CONDITION_KINDS,
    )


class TierDefaultEffect(_Model):
    """A tier's default as an object: an effect, and approvals for elevate."""

    effect: Effect
    approvals: Approvals = _optional("approvals an elevate needs (required for elevate, refused otherwise)")

    @model_validator(mode="before")
    @classmethod
    def _approvals_type(cls, data: Any) -> Any:
        if isinstance(data, dict):
            _approvals_type(data)
        return data

    @model_validator(mode="after")
    def _approvals(self) -> Any:
        _check_effect(self.effect, self.approvals is not None)
        return self


def _tier_default_tag(value: Any) -> Optional[str]:
    if isinstance(value, str):
        return "<name>"
    if isinstance(value, (dict, TierDefaultEffect)):
        return "<object>"
    return None


# tags of the unions below that are not part of the JSON path (format_location drops them)
_HIDDEN_TAGS = {"<name>", "<object>"}

TierDefault = Annotated[
    Union[Annotated[Literal["allow", "deny"], Tag("<name>")], Annotated[TierDefaultEffect, Tag("<object>")]],
    Discriminator(
        _tier_default_tag,
        custom_error_type="tier_default",
        custom_error_message="expected 'allow', 'deny' or an object with effect and approvals",
    ),
]


class Rule(_Model):
    """Gives `roles` the tool (or every declared tool the glob matches, or every tool of the
    tier) the effect `effect` when `condition` holds."""

    id: str = _optional("a name for the rule, unique in the policy, that reasons and every output use "
                        "instead of its number: a letter, then up to 63 letters, digits, '_', '.', ':' or '-'")
    tool_name: str = _optional("a declared tool, or a glob (`*`) over the declared tools (or give tier)")
    tier: Tier = _optional("every declared tool of this tier (or give tool_name)")
    roles: list[str]
    effect: Effect = "allow"
    approvals: Approvals = _optional("approvals an elevate needs (required for elevate, refused otherwise)")
    condition: Optional[Condition] = None
    mode: Literal["enforce", "shadow"] = Field(
        default="enforce", description="shadow: evaluated and recorded beside the policy (the audit event "
                                       "says what it would have changed), never deciding a call")

    @field_validator("id")
    @classmethod
    def _id(cls, value: Optional[str]) -> Optional[str]:
        if value is not None and not RULE_ID_PATTERN.fullmatch(value):
            _fail(f"{_describe(value)} is not a rule id: a letter, then up to 63 letters, digits, "
                  "'_', '.', ':' or '-'")
        return value

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, data: Any) -> Any:
        if not isinstance(data, dict) or cls.PERSO:
            return data
        _approvals_type(data)
        if "tool_name" in data and "tier" in data:
            _fail("give tool_name or tier, not both", "tier")
        if "tool_name" not in data and "tier" not in data:
            _fail("tool_name or tier is required")
        return data

    @model_validator(mode="after")
    def _effect(self) -> Any:
        if not self.PERSO:
            _check_effect(self.effect, self.approvals is not None)
        return self


class PrincipalCeiling(_Model):
    """The most a principal (a chain link) may be granted: the chain's scopes are narrowed to
    these wherever it appears in the chain."""

    max_scopes: list[str] = Field(description="scope patterns ('*' is one whole segment)")

    @field_validator("max_scopes")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        from .scopes import ScopeError, parse

        for k, scope in enumerate(value):
            try:
                parse(scope)
            except ScopeError as exc:
                _fail(str(exc), k)
        return value


class Policy(_Model):
    """A whole policy file."""

    version: str
    default_action: Literal["Allow", "Deny"]
    tools: list[str]
    roles: list[str]
    rules: list[Rule]
    tool_tiers: dict[str, Tier] = Field(
        default_factory=dict, description="tool name or glob -> tier (an exact name wins over globs; "
                                          "among globs the strictest tier wins)")
    tier_defaults: dict[Tier, TierDefault] = Field(
        default_factory=dict, description="tier -> the default of its tools when no rule decides")
    principals: dict[str, PrincipalCeiling] = Field(
        default_factory=dict, description="chain link name or glob (`worker:*`) -> its ceiling; an exact "
                                          "name wins, else every matching glob applies")
    principals_default: PrincipalCeiling = _optional("the ceiling of a link no `principals` entry names "
                                                     "(absent: no ceiling)")
    arguments: dict[str, Literal["open", "closed"]] = Field(
        default_factory=dict, description="tool name, glob or `tier:TIER` -> closed: a call carrying an argument "
                                          "its input schema does not have is denied, naming it (schema drift)")
    pins: Union[str, dict[str, str]] = _optional(
        "the reviewed tool definitions the policy requires: a pins file (`callgate pins approve`; a path "
        "relative to the policy file) or {tool: \"sha256:...\"}; a tool whose live definition differs, or has "
        "no pin, is denied and hidden")

    @field_validator("arguments")
    @classmethod
    def _argument_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.startswith("tier:") and key[5:] not in TIERS:
                _fail(f"'{key}' names no tier; expected tier:{', tier:'.join(TIERS)}", key)
        return value

    @field_validator("pins")
    @classmethod
    def _pin_digests(cls, value: Union[str, dict[str, str]]) -> Union[str, dict[str, str]]:
        if isinstance(value, str):
            if not value:
                _fail("a pins file path is not empty")
            return value
        for tool, digest in value.items():
            if not _DIGEST_RE.fullmatch(digest):
                _fail(f"'{digest}' is not a tool digest (sha256: and 64 hex digits, as `callgate pins list` "
                      "prints)", tool)
        return value

    @model_validator(mode="after")
    def _unique_rule_ids(self) -> Any:
        first: dict[str, int] = {}
        for i, rule in enumerate(self.rules):
            if rule.id is None:
                continue
            if rule.id in first:
                _fail(f"rule id '{rule.id}' is already the id of rules[{first[rule.id]}]", "rules", i, "id")
            first[rule.id] = i
        return self


QuantifierBody.model_rebuild()
_cls: type[BaseModel]
for _cls in (All, AnyOf, Not, Every, Some, Rule, Policy):
    _cls.model_rebuild()


# ---------------------------------------------------------------- the perso format

class PersoNumericCheckBody(NumericCheckBody):
    """NumericCheckBody in the perso format: a top-level `field` of the three perso sources, the perso ops."""

    PERSO = True
    source: PersoSource
    field: str
    op: PersoNumericOp
    value: Number


class PersoStringCheckBody(StringCheckBody):
    """StringCheckBody in the perso format: a top-level `field` of the three perso sources, the perso ops."""

    PERSO = True
    source: PersoSource
    field: str
    op: PersoStringOp
    value: list[str]


class PersoFieldPresentBody(FieldPresentBody):
    """FieldPresentBody in the perso format: a top-level `field` of the three perso sources, the perso ops."""

    PERSO = True
    source: PersoSource
    field: str


class PersoFieldEqualsBody(FieldEqualsBody):
    """FieldEqualsBody in the perso format: a top-level `field` of the three perso sources, the perso ops."""

    PERSO = True
    source_a: PersoSource
    field_a: str
    source_b: PersoSource
    field_b: str


class PersoNumericCheck(NumericCheck):
    """NumericCheck in the perso format."""

    NumericCheck: PersoNumericCheckBody


class PersoStringCheck(StringCheck):
    """StringCheck in the perso format."""

    StringCheck: PersoStringCheckBody


class PersoFieldPresent(FieldPresent):
    """FieldPresent in the perso format."""

    FieldPresent: PersoFieldPresentBody


class PersoFieldEquals(FieldEquals):
    """FieldEquals in the perso format."""

    FieldEquals: PersoFieldEqualsBody


# the perso models narrow their parents' fields: sound, since the models are frozen, but
# mypy holds a list field invariant (the type: ignore[assignment] below)
class PersoAll(All):
    """All in the perso format (of perso conditions)."""

    All: list["PersoCondition"]  # type: ignore[assignment]


class PersoAny(AnyOf):
    """Any in the perso format (of perso conditions)."""

    Any: list["PersoCondition"]  # type: ignore[assignment]


class PersoNot(Not):
    """Not in the perso format (of a perso condition)."""

    Not: "PersoCondition"


if TYPE_CHECKING:   # as Condition above
    PersoCondition = Union[PersoNumericCheck, PersoStringCheck, PersoFieldPresent, PersoFieldEquals, PersoAll,
                           PersoAny, PersoNot]
else:
    PersoCondition = _condition_union(
        {"NumericCheck": PersoNumericCheck, "StringCheck": PersoStringCheck,
         "FieldPresent": PersoFieldPresent, "FieldEquals": PersoFieldEquals, "All": PersoAll,
         "Any": PersoAny, "Not": PersoNot},
        PERSO_CONDITION_KINDS,
    )


class PersoRule(Rule):
    """A rule in the perso format: tool_name (no tier), roles and a perso condition; it allows."""

    PERSO = True
    tool_name: str
    condition: Optional[PersoCondition] = None


class PersoPolicy(Policy):
    """A whole policy in the perso format (docs/semantics.md), as ``semantics="perso"`` reads it."""

    PERSO = True
    rules: list[PersoRule]  # type: ignore[assignment]  # narrowed, as PersoAll's


for _cls in (PersoAll, PersoAny, PersoNot, PersoRule, PersoPolicy):
    _cls.model_rebuild()

_PERSO_POLICY_KEYS = ("version", "default_action", "tools", "roles", "rules")
_PERSO_RULE_KEYS = ("tool_name", "roles", "condition")
_BODY_KEYS = {
    "NumericCheck": {"source", "field", "op", "value"},
    "StringCheck": {"source", "field", "op", "value"},
    "FieldPresent": {"source", "field"},
    "FieldEquals": {"source_a", "field_a", "source_b", "field_b"},
}


def strip_unknown(policy: Any) -> Any:
    """Perso semantics: drop the keys the original engine's deserializer ignored (every v2
    key among them: effect, approvals, tier, tool_tiers, tier_defaults, pointer...)."""
    if not isinstance(policy, dict):
        return policy
    out = {k: v for k, v in policy.items() if k in _PERSO_POLICY_KEYS}
    if isinstance(out.get("rules"), list):
        out["rules"] = [_strip_rule(r) for r in out["rules"]]
    return out


def _strip_rule(rule: Any) -> Any:
    if not isinstance(rule, dict):
        return rule
    out = {k: v for k, v in rule.items() if k in _PERSO_RULE_KEYS}
    if "condition" in out:
        out["condition"] = _strip_condition(out["condition"])
    return out


def _strip_condition(cond: Any) -> Any:
    if not isinstance(cond, dict) or len(cond) != 1:
        return cond  # not a condition: validation reports it
    (kind, body), = cond.items()
    if kind in _BODY_KEYS and isinstance(body, dict):
        return {kind: {k: v for k, v in body.items() if k in _BODY_KEYS[kind]}}
    if kind in ("All", "Any") and isinstance(body, list):
        return {kind: [_strip_condition(c) for c in body]}
    if kind == "Not":
        return {kind: _strip_condition(body)}
    return cond


# ---------------------------------------------------------------- where a node sits


def check_structure(policy: Policy) -> None:
    """The rules that depend on a node's place: `Element` only inside Every/Some, and
    quantifiers nested at most MAX_QUANTIFIER_NESTING deep. Raises the first problem."""
    for problem in structure_errors(policy):
        raise problem


def structure_errors(policy: Policy) -> list[PolicyError]:
    """Every problem `check_structure` looks for, in policy order."""
    out: list[PolicyError] = []
    for i, rule in enumerate(policy.rules):
        if rule.condition is not None:
            out += _walk(rule.condition, f"rules[{i}].condition", 0)
    return out


def _walk(node: Any, where: str, quantifiers: int) -> Iterator[PolicyError]:
    kind = next(iter(type(node).model_fields))
    body = getattr(node, kind)
    at = f"{where}.{'Any' if kind == 'Any' else kind}"
    if kind in ("All", "Any"):
        for k, child in enumerate(body):
            yield from _walk(child, f"{at}[{k}]", quantifiers)
        return
    if kind == "Not":
        yield from _walk(body, at, quantifiers)
        return
    if kind == "ScopeCheck":   # compiles to one Some per required scope: a quantifier level
        if quantifiers == MAX_QUANTIFIER_NESTING:
            yield PolicyError(f"a ScopeCheck is a Some: nested too deeply (at most {MAX_QUANTIFIER_NESTING} "
                              "levels)", at)
        return
    suffixes = ("_a", "_b") if kind == "FieldEquals" else ("",)
    for suffix in suffixes:
        if getattr(body, "source" + suffix) == ELEMENT and quantifiers == 0:
            yield PolicyError("source 'Element' is only valid inside Every or Some", f"{at}.source{suffix}")
    if kind in ("Every", "Some"):
        if quantifiers == MAX_QUANTIFIER_NESTING:
            yield PolicyError(f"Every/Some nested too deeply (at most {MAX_QUANTIFIER_NESTING} levels)", at)
            return
        yield from _walk(body.condition, f"{at}.condition", quantifiers + 1)


# ---------------------------------------------------------------- error reporting


def format_location(loc: tuple[Union[int, str], ...]) -> str:
    """('rules', 3, 'condition', 'All', 'All', 1, ...) -> 'rules[3].condition.All[1]...'.

    A condition union puts its tag before the field of the same name; each such pair is
    one step of the JSON path, so the tag is dropped (pairwise, from the left: a Not inside
    a Not is ('Not', 'Not', 'Not', 'Not') and reads Not.Not). So are the tags of unions that
    have no key of their own, and pydantic's '[key]' marker of a dict key."""
    parts: list[str] = []
    i = 0
    while i < len(loc):
        item = loc[i]
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in CONDITION_KINDS and i + 1 < len(loc) and loc[i + 1] == item:
            parts.append(("." if parts else "") + item)
            i += 1   # the field after its tag
        elif item not in _HIDDEN_TAGS and item != "[key]":
            parts.append(("." if parts else "") + str(item))
        i += 1
    return "".join(parts) or "(policy)"


def _literal_name(loc: tuple[Union[int, str], ...]) -> str:
    """What a literal is called in 'unknown X': the key, or what the value stands for."""
    names = [x for x in loc if isinstance(x, str) and x not in _HIDDEN_TAGS]
    if loc and loc[-1] == "[key]":
        return "tier" if "tier_defaults" in loc else "key"
    if len(loc) == 2 and loc[0] == "tool_tiers":
        return "tier"
    if loc and loc[-1] == "<name>":
        return "tier default"
    last = names[-1] if names else "value"
    return {"is": "type", "days": "day"}.get(last, last)


def _message(err: ErrorDetails) -> str:
    kind, loc, value = err["type"], err["loc"], err.get("input")
    last = next((x for x in reversed(loc) if isinstance(x, str)), "value")
    if kind == "callgate":
        message: str = err["ctx"]["message"]   # our own (_fail)
        return message
    if kind == "literal_error":
        expected = err["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
        name = _literal_name(loc)
        if name == "approvals":
            return f"expected 1 or 2, got {_describe(value)}"
        if name == "tier default":
            expected += ", or an object with effect and approvals"
        return f"unknown {name} {_describe(value)}; expected {expected}"
    if kind == "extra_forbidden":
        return f"unknown key '{loc[-1]}'"
    if kind == "missing":
        return "required key is missing"
    if kind == "condition_kind":
        if isinstance(value, dict) and len(value) == 1:
            kinds = err["msg"].split(": ", 1)[1]  # the union's own list (perso or v2)
            return f"unknown condition {_describe(next(iter(value)))}; expected {kinds}"
        return err["msg"]
    if kind in ("union_tag_invalid",):
        return f"unknown condition {_describe(err['ctx'].get('tag'))}; expected " + ", ".join(CONDITION_KINDS)
    if kind == "tier_default":
        return f"{err['msg']}, got {_describe(value)}"
    if kind in ("string_type",):
        return f"expected a string, got {_describe(value)}"
    if kind in ("float_type", "finite_number"):
        return f"expected a finite number, got {_describe(value)}"
    if kind in ("int_type", "greater_than_equal", "less_than_equal"):
        if last == "value":  # Length
            return f"expected an integer from 0 to {LENGTH_MAX}, got {_describe(value)}"
        return f"expected an integer, got {_describe(value)}"
    if kind in ("list_type",):
        return f"expected a list, got {_describe(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected an object, got {_describe(value)}"
    return err["msg"]


def validate(data: Any, semantics: str = "strict") -> Policy:
    """Validate a decoded policy; raise PolicyError naming the first problem's location (the
    first in the document's order, see `validation_errors`).

    `semantics="perso"` validates the perso format (give it `strip_unknown(data)`): v2
    constructs are unknown there."""
    policy, problems = validation_errors(data, semantics)
    if problems:
        raise problems[0]
    assert policy is not None
    return policy


def validation_errors(data: Any, semantics: str = "strict") -> tuple[Optional[Policy], list[PolicyError]]:
    """Every problem validation finds, in the order of their places in `data` (the order of
    the file it was read from), and the validated policy (None when the models refused it;
    when only the checks of a node's place failed, the policy and those problems).

    Each pydantic error is one problem: the unions of the language are discriminated, so a
    mistake inside one reports only the member its tag names."""
    model = PersoPolicy if semantics == "perso" else Policy
    try:
        policy = model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if err["type"] == "callgate":
                loc += tuple(err["ctx"]["at"])
            # an unknown key, or a dict key that is not a tier: the key is the problem
            at_key = err["type"] == "extra_forbidden" or (bool(loc) and loc[-1] == "[key]")
            problems.append(PolicyError(_message(err), format_location(loc), at_key=at_key))
        return None, in_document_order(data, _unique(problems))
    problems = structure_errors(policy) if semantics != "perso" else []
    return policy, in_document_order(data, problems)


def _unique(problems: list[PolicyError]) -> list[PolicyError]:
    seen: set[tuple[str, str]] = set()
    out = []
    for problem in problems:
        if (problem.location, problem.message) not in seen:
            seen.add((problem.location, problem.message))
            out.append(problem)
    return out


# ---------------------------------------------------------------- paths in the document

_INDEX_RE = re.compile(r"\[([0-9]+)\]")


def format_path(path: tuple[Union[int, str], ...]) -> str:
    """A path of keys and indices as a location: ('rules', 3, 'condition') -> 'rules[3].condition'."""
    parts: list[str] = []
    for step in path:
        parts.append(f"[{step}]" if isinstance(step, int) else ("." if parts else "") + step)
    return "".join(parts) or "(policy)"


def location_path(data: Any, location: str) -> tuple[tuple[Union[int, str], ...], bool]:
    """The path (keys and indices) of the node of `data` that `location` names, and whether
    `data` has all of it. A location below a key that is missing (a required key, a default
    such as TimeWindow's field) names the deepest node that exists: (path, False).

    Locations are read against the data rather than split on '.', because a key may itself
    hold '.' or '[' (tool_tiers keys, field names): the longest key that fits is tried first.
    ``(policy)`` is the whole policy; other parenthesized locations name nothing in it."""
    if location.startswith("("):
        return (), location == "(policy)"
    deepest: list[tuple[Union[int, str], ...]] = [()]

    def walk(node: Any, rest: str, path: tuple[Union[int, str], ...]) -> Optional[tuple[Union[int, str], ...]]:
        if len(path) > len(deepest[0]):
            deepest[0] = path
        if not rest:
            return path
        if isinstance(node, list):
            m = _INDEX_RE.match(rest)
            if m is None or int(m.group(1)) >= len(node):
                return None
            return walk(node[int(m.group(1))], rest[m.end():], path + (int(m.group(1)),))
        if not isinstance(node, dict):
            return None
        if path:  # every key but the first follows a '.'
            if not rest.startswith("."):
                return None
            rest = rest[1:]
        fits = [k for k in node if isinstance(k, str) and rest.startswith(k)
                and (len(rest) == len(k) or rest[len(k)] in ".[")]
        for key in sorted(fits, key=len, reverse=True):
            found = walk(node[key], rest[len(key):], path + (key,))
            if found is not None:
                return found
        return None

    found = walk(data, location, ())
    return (found, True) if found is not None else (deepest[0], False)


def document_order(data: Any, location: str) -> tuple[Union[int, str], ...]:
    """A sort key that puts locations in the order their nodes appear in `data` (the order
    of its file: a decoded object keeps its keys in file order). A node comes before the
    nodes inside it; a missing key sorts with the object that lacks it."""
    path, _ = location_path(data, location)
    order: list[Union[int, str]] = []
    node = data
    for step in path:
        order.append(list(node).index(step) if isinstance(node, dict) else step)
        node = node[step]
    return tuple(order)


def in_document_order(data: Any, problems: list[_Located]) -> list[_Located]:
    """`problems` (anything with a `location`) sorted by `document_order`; ties keep their order."""
    return sorted(problems, key=lambda p: document_order(data, p.location))


def parse_json(text: str | bytes) -> Any:
    """Decode policy JSON strictly: duplicate keys and NaN/Infinity are errors."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise PolicyError(f"duplicate key '{key}'", "(json)")
            seen[key] = value
        return seen

    def no_constants(name: str) -> Any:
        raise PolicyError(f"{name} is not JSON", "(json)")

    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise PolicyError(exc.msg, f"line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"invalid UTF-8 at byte {exc.start}", "(json)") from None


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a policy file (the v2 language), for editors."""
    schema = Policy.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "callgate policy"
    return schema
