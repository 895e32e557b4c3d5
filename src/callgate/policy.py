"""The policy language: pydantic models of the perso JSON format.

These models are the single definition of what a policy may contain: the compiler reads
them, `callgate schema` prints their JSON Schema, and every validation error is turned into
one line naming its exact location (``rules[3].condition.All[1].NumericCheck.op: ...``).

Default semantics rejects unknown keys; perso semantics drops them before validation
(``strip_unknown``), as the original engine's deserializer ignored them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError

from .errors import PolicyError

Source = Literal["Arguments", "AgentAttributes", "ResourceAttributes"]
NumericOp = Literal["Lt", "Lte", "Gt", "Gte", "Eq"]
StringOp = Literal["In", "NotIn"]
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]

CONDITION_KINDS = ("NumericCheck", "StringCheck", "FieldPresent", "FieldEquals", "All", "Any", "Not")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class NumericCheckBody(_Model):
    """Compare a numeric field with a constant."""

    source: Source
    field: str
    op: NumericOp
    value: Number


class StringCheckBody(_Model):
    """Test a string field for membership in a list."""

    source: Source
    field: str
    op: StringOp
    value: list[str]


class FieldPresentBody(_Model):
    """The field exists and is not null."""

    source: Source
    field: str


class FieldEqualsBody(_Model):
    """Two fields hold equal JSON values."""

    source_a: Source
    field_a: str
    source_b: Source
    field_b: str


class NumericCheck(_Model):
    NumericCheck: NumericCheckBody


class StringCheck(_Model):
    StringCheck: StringCheckBody


class FieldPresent(_Model):
    FieldPresent: FieldPresentBody


class FieldEquals(_Model):
    FieldEquals: FieldEqualsBody


class All(_Model):
    All: list["Condition"]


class AnyOf(_Model):
    Any: list["Condition"]


class Not(_Model):
    Not: "Condition"


def _condition_tag(value: Any) -> Optional[str]:
    """A condition is an object with exactly one key, which names its kind."""
    if isinstance(value, dict):
        return next(iter(value)) if len(value) == 1 else None
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    return None


Condition = Annotated[
    Union[
        Annotated[NumericCheck, Tag("NumericCheck")],
        Annotated[StringCheck, Tag("StringCheck")],
        Annotated[FieldPresent, Tag("FieldPresent")],
        Annotated[FieldEquals, Tag("FieldEquals")],
        Annotated[All, Tag("All")],
        Annotated[AnyOf, Tag("Any")],
        Annotated[Not, Tag("Not")],
    ],
    Discriminator(
        _condition_tag,
        custom_error_type="condition_kind",
        custom_error_message="a condition is an object with one key: " + ", ".join(CONDITION_KINDS),
    ),
]


class Rule(_Model):
    """Grants `roles` the tool (or every declared tool the glob matches) when `condition` holds."""

    tool_name: str
    roles: list[str]
    condition: Optional[Condition] = None


class Policy(_Model):
    """A whole policy file."""

    version: str
    default_action: Literal["Allow", "Deny"]
    tools: list[str]
    roles: list[str]
    rules: list[Rule]


All.model_rebuild()
AnyOf.model_rebuild()
Not.model_rebuild()
Rule.model_rebuild()
Policy.model_rebuild()

_BODY_KEYS = {
    "NumericCheck": set(NumericCheckBody.model_fields),
    "StringCheck": set(StringCheckBody.model_fields),
    "FieldPresent": set(FieldPresentBody.model_fields),
    "FieldEquals": set(FieldEqualsBody.model_fields),
}


def strip_unknown(policy: Any) -> Any:
    """Perso semantics: drop the keys the original engine's deserializer ignored."""
    if not isinstance(policy, dict):
        return policy
    out = {k: v for k, v in policy.items() if k in Policy.model_fields}
    if isinstance(out.get("rules"), list):
        out["rules"] = [_strip_rule(r) for r in out["rules"]]
    return out


def _strip_rule(rule: Any) -> Any:
    if not isinstance(rule, dict):
        return rule
    out = {k: v for k, v in rule.items() if k in Rule.model_fields}
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


# ---------------------------------------------------------------- error reporting


def format_location(loc: tuple) -> str:
    """('rules', 3, 'condition', 'All', 'All', 1, ...) -> 'rules[3].condition.All[1]...'.

    A discriminated union repeats the tag before the field of the same name; the repeat
    is dropped so the location reads like the JSON path."""
    parts: list[str] = []
    prev = None
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item != prev:
            parts.append(("." if parts else "") + str(item))
        prev = item
    return "".join(parts) or "(policy)"


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return json.dumps(value) if isinstance(value, (bool, int, float, type(None))) else type(value).__name__


def _message(err: dict) -> str:
    kind, loc, value = err["type"], err["loc"], err.get("input")
    last = next((x for x in reversed(loc) if isinstance(x, str)), "value")
    if kind == "literal_error":
        expected = err["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
        return f"unknown {last} {_describe(value)}; expected {expected}"
    if kind == "extra_forbidden":
        return f"unknown key '{loc[-1]}'"
    if kind == "missing":
        return "required key is missing"
    if kind == "condition_kind":
        if isinstance(value, dict) and len(value) == 1:
            return f"unknown condition {_describe(next(iter(value)))}; expected " + ", ".join(CONDITION_KINDS)
        return err["msg"]
    if kind in ("union_tag_invalid",):
        return f"unknown condition {_describe(err['ctx'].get('tag'))}; expected " + ", ".join(CONDITION_KINDS)
    if kind in ("string_type",):
        return f"expected a string, got {_describe(value)}"
    if kind in ("float_type", "finite_number"):
        return f"expected a finite number, got {_describe(value)}"
    if kind in ("list_type",):
        return f"expected a list, got {_describe(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected an object, got {_describe(value)}"
    return err["msg"]


def validate(data: Any) -> Policy:
    """Validate a decoded policy; raise PolicyError naming the first problem's location."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        # a union reports one error per member; the most specific is the deepest
        err = max(errors, key=lambda e: len(e["loc"]))
        loc = format_location(err["loc"])
        raise PolicyError(_message(err), loc) from None


def parse_json(text: str | bytes) -> Any:
    """Decode policy JSON strictly: duplicate keys and NaN/Infinity are errors."""

    def no_duplicates(pairs: list) -> dict:
        seen: dict = {}
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


def json_schema() -> dict:
    """The JSON Schema of a policy file, for editors."""
    schema = Policy.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "callgate policy"
    return schema
