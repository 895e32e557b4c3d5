"""Scopes: what a principal chain may do, as dot-separated segments (docs/principals.md).

A scope is a non-empty run of segments separated by `.`: `postgres.read.analytics`. A
segment is one or more of the letters, digits and `_ - : /`, or `*`, which stands for
exactly one whole segment: `postgres.read.*` covers `postgres.read.analytics` and not
`postgres.readwrite.x` (no partial segment), `postgres.read` (one segment fewer) or
`postgres.read.analytics.events` (one more). Matching is exact otherwise: no case folding,
no regular expression.

Sets of scopes narrow by `meet`: the scopes two patterns both cover, itself one pattern (or
none): segment by segment, equal segments stay, `*` gives way to the other's segment, two
different literal segments meet in nothing. Intersecting sets is meeting every pair, which
is how a chain's effective authority is computed: the token's scopes, narrowed by each link's
ceiling (`narrow`).
"""

from __future__ import annotations

import re
from typing import Iterable, Optional

WILDCARD = "*"
_SEGMENT = re.compile(r"[A-Za-z0-9_\-:/]+")
MAX_SCOPE_LENGTH = 256


class ScopeError(ValueError):
    """A string that is not a scope; str() says why in one line."""


def parse(scope: object, *, wildcards: bool = True) -> tuple[str, ...]:
    """The segments of `scope`; ScopeError when it is not one (or holds `*` and `wildcards` is
    False: a scope a check requires is concrete)."""
    if not isinstance(scope, str):
        raise ScopeError(f"a scope is a string, not {type(scope).__name__}")
    if not scope or len(scope) > MAX_SCOPE_LENGTH:
        raise ScopeError(f"a scope has 1 to {MAX_SCOPE_LENGTH} characters, got {len(scope)}")
    segments = tuple(scope.split("."))
    for segment in segments:
        if segment == WILDCARD:
            if not wildcards:
                raise ScopeError(f"{scope!r}: a required scope is concrete (no '*')")
        elif not _SEGMENT.fullmatch(segment):
            raise ScopeError(f"{scope!r}: each segment is '*' or letters, digits and _ - : / (got {segment!r})")
    return segments


def covers(pattern: str, scope: str) -> bool:
    """Whether `pattern` covers every scope `scope` covers (a concrete scope: just it)."""
    p, s = pattern.split("."), scope.split(".")
    return len(p) == len(s) and all(a == WILDCARD or a == b for a, b in zip(p, s))


def meet(a: str, b: str) -> Optional[str]:
    """The one pattern covering exactly what both `a` and `b` cover, or None."""
    x, y = a.split("."), b.split(".")
    if len(x) != len(y):
        return None
    out = []
    for p, q in zip(x, y):
        if p == q or q == WILDCARD:
            out.append(p)
        elif p == WILDCARD:
            out.append(q)
        else:
            return None
    return ".".join(out)


def intersect(scopes: Iterable[str], ceiling: Iterable[str]) -> frozenset[str]:
    """What `scopes` and `ceiling` both grant: every pairwise meet, without the patterns
    another kept pattern already covers."""
    ceiling = list(ceiling)
    met = {m for s in scopes for c in ceiling if (m := meet(s, c)) is not None}
    return frozenset(m for m in met if not any(o != m and covers(o, m) for o in met))


def narrow(scopes: Iterable[str], ceilings: Iterable[Optional[Iterable[str]]]) -> frozenset[str]:
    """`scopes` narrowed by each ceiling in turn; a ceiling of None leaves them as they are."""
    out = frozenset(scopes)
    for ceiling in ceilings:
        if ceiling is not None:
            out = intersect(out, ceiling)
    return out


def granted(effective: Iterable[str], scope: str) -> bool:
    """Whether the (concrete) `scope` is covered by one of the `effective` patterns."""
    return any(covers(p, scope) for p in effective)


def covering_patterns(scope: str) -> list[str]:
    """Every pattern that covers the concrete `scope`: each segment kept or replaced by `*`
    (2**n patterns for n segments, the scope itself first). A set of granted patterns grants
    `scope` exactly when it holds one of these, which is how a ScopeCheck compiles."""
    out = [""]
    for k, segment in enumerate(scope.split(".")):
        sep = "." if k else ""
        out = [p + sep + s for p in out for s in (segment, WILDCARD)]
    return out


def subset(child: Iterable[str], parent: Iterable[str]) -> Optional[str]:
    """None when every pattern of `child` is covered by one of `parent`'s; else the first
    that is not (a delegation that would widen what its upstream holds)."""
    parent = list(parent)
    for pattern in child:
        if not any(covers(p, pattern) for p in parent):
            return pattern
    return None
