"""Hand-built format-2 blobs for testing the C core's v2 leaves without the compiler.

`Cond` collects a condition's instructions with bytecode.BlobBuilder; `blob_for(cond)`
wraps it in two entries sharing the code: tool "allow" (an allow rule) and tool "deny" (a
deny rule, default_action Allow), both for role "r". Evaluating both tells T, F and U
apart: T allows "allow" and denies "deny"; F denies "allow" and allows "deny"; U denies
both (a deny that cannot be evaluated denies).
"""

from __future__ import annotations

import struct
from typing import Callable

import orjson

from callgate import bytecode as bc

ARGS, AGENT, RESOURCE, CONTEXT = range(4)


def jtext(s: str) -> str:
    return orjson.dumps(s).decode()


class Cond:
    """Emit helpers over a BlobBuilder; each returns the instruction's code offset."""

    def __init__(self, b: bc.BlobBuilder) -> None:
        self.b = b

    # refs: ("Arguments", "a", "b") style -> (operand, is_path)
    def ref(self, source: int | None, *tokens: str, display: str | None = None) -> tuple[int, bool]:
        if display is None:
            if source is None:
                display = "element" + "".join("/" + t for t in tokens)
            elif len(tokens) == 1:
                display = f"{bc.SOURCES[source]}.{tokens[0]}"
            else:
                display = bc.SOURCES[source] + "".join("/" + t for t in tokens)
        return self.b.ref(source, tuple(tokens), display)

    def element_field(self, name: str) -> tuple[int, bool]:
        """An Element `field` (a key only: on an array element it is missing): a path with
        the CG_PATH_KEY bit in its token count."""
        return self.b.ref(None, (name,), f"element.{name}", key_only=True)

    def _fl(self, ref: tuple[int, bool], flags: int, negated: bool) -> int:
        return flags | (bc.F_PATH_A if ref[1] else 0) | (bc.F_NEGATED if negated else 0)

    def num(self, ref, op: str, k: float, display: str | None = None, negated=False) -> int:
        cmp = bc.CMP_OPS.index(op)
        return self.b.emit("NUM", self._fl(ref, cmp, negated), ref[0], self.b.number(k),
                           self.b.string(display if display is not None else _num_text(k)))

    def between(self, ref, lo: float, hi: float, negated=False) -> int:
        return self.b.emit("NUM", self._fl(ref, 6, negated), ref[0], self.b.number_pair(lo, hi),
                           self.b.string(f"{_num_text(lo)} and {_num_text(hi)}"))

    def present(self, ref, negated=False) -> int:
        return self.b.emit("PRESENT", self._fl(ref, 0, negated), ref[0])

    def isin(self, ref, values: list[str], notin=False, negated=False) -> int:
        display = "[" + ", ".join(jtext(v) for v in values) + "]"
        return self.b.emit("IN", self._fl(ref, bc.F_NOTIN if notin else 0, negated), ref[0],
                           self.b.set(values, display))

    def eq(self, ra, rb, negated=False) -> int:
        fl = self._fl(ra, bc.F_PATH_B if rb[1] else 0, negated)
        return self.b.emit("EQ", fl, ra[0], rb[0])

    def string(self, ref, op: str, pattern: str, negated=False) -> int:
        """StringCheck Eq Ne StartsWith EndsWith Contains Glob PathGlob, as the compiler
        is expected to lower them (texts c / d are what follows "S = V ")."""
        x = jtext(pattern)
        texts = {
            "Eq": (f"is {x}", f"is not {x}"), "Ne": (f"is not {x}", f"is {x}"),
            "StartsWith": (f"starts with {x}", f"does not start with {x}"),
            "EndsWith": (f"ends with {x}", f"does not end with {x}"),
            "Contains": (f"contains {x}", f"does not contain {x}"),
            "Glob": (f"matches glob {x}", f"does not match glob {x}"),
            "PathGlob": (f"matches path glob {x}", f"does not match path glob {x}"),
        }[op]
        flags = bc.F_STR_NOT if op == "Ne" else 0
        if op in ("Eq", "Ne"):
            g = self.b.glob([pattern])
        elif op == "StartsWith":
            g = self.b.glob([pattern, ""])
        elif op == "EndsWith":
            g = self.b.glob(["", pattern])
        elif op == "Contains":
            g = self.b.glob(["", pattern, ""])
        elif op == "Glob":
            g = self.b.glob(pattern.split("*"))
        else:
            g = self.b.pglob([c.split("*") for c in pattern.split("/")])
            flags |= bc.F_STR_PATH
        return self.b.emit("STR", self._fl(ref, flags, negated), ref[0], g,
                           self.b.string(texts[0]), self.b.string(texts[1]))

    def length(self, ref, op: str, k: int, negated=False) -> int:
        return self.b.emit("LEN", self._fl(ref, bc.CMP_OPS.index(op), negated), ref[0],
                           self.b.number(k), self.b.string(str(k)))

    def boolean(self, ref, value: bool, negated=False) -> int:
        return self.b.emit("BOOL", self._fl(ref, 0, negated), ref[0], int(value))

    def type(self, ref, name: str, negated=False) -> int:
        return self.b.emit("TYPE", self._fl(ref, 0, negated), ref[0], bc.TYPES.index(name),
                           self.b.string(name))

    def time(self, ref, days: int, start: int, end: int, offsets: list[tuple[int, int]],
             text: str = "W", negated=False) -> int:
        return self.b.emit("TIME", self._fl(ref, 0, negated), ref[0],
                           self.b.window(days, start, end, offsets), self.b.string(text))

    def quant(self, kind: str, ref, body: Callable[[], object], negated=False) -> int:
        at = self.b.emit(kind, self._fl(ref, 0, negated), ref[0], 0)
        body()
        self.b.emit("ENDQ")
        struct.pack_into("<I", self.b.code, at + 6, len(self.b.code))
        return at

    def op(self, name: str, *operands: int) -> int:
        return self.b.emit(name, 0, *operands)


def _num_text(k: float) -> str:
    return str(int(k)) if float(k).is_integer() and abs(k) < 1e16 else repr(float(k))


def build(cond: Callable[[Cond], object], perso: bool = False) -> bc.BlobBuilder:
    """The builder for a condition, rules and entries in place (see the module doc)."""
    b = bc.BlobBuilder(perso=perso, default_allow=True)
    b.version_sid = b.string("v2-test")
    b.n_policy_rules = 2
    start = len(b.code)
    cond(Cond(b))
    b.emit("RET")
    n = len(b.code) - start
    b.rules.append((0, start, n, bc.effect_word(bc.ALLOW)))
    b.entries.append((b.string("allow"), b.string("r"), 0, 1))
    if not perso:
        b.rules.append((1, start, n, bc.effect_word(bc.DENY)))
        b.entries.append((b.string("deny"), b.string("r"), 1, 1))
    return b


def blob_for(cond: Callable[[Cond], object], perso: bool = False) -> bytes:
    return build(cond, perso).encode()


def request(tool: str, args, ctx=None) -> bytes:
    """The request form; args / ctx given as str are raw JSON text (for escapes)."""
    a = args if isinstance(args, str) else orjson.dumps(args).decode()
    c = "{}" if ctx is None else ctx if isinstance(ctx, str) else orjson.dumps(ctx).decode()
    return f'["{tool}","r",{a},{{}},{{}},{c}]'.encode()
