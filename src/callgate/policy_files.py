"""Reading a policy from a file or from text: JSON, or YAML (a ``.yaml``/``.yml`` file, with
PyYAML), each as strict as the other, and every error placed in the text.

`read_policy(path)` is how a policy file is read: `Engine.from_file` and `Engine.reload`
call it, and so should every command that takes a policy file. It returns a `PolicySource`:
the decoded policy (`data`, what `Engine.from_dict` and `lint` take) and where each of its
nodes is in the text, so that a `PolicyError` found later by validation or the compiler,
which knows only the path (``rules[3].condition.All[1].NumericCheck.op``), gets the file,
line and column of that path too (`PolicySource.locate`, `PolicySource.compile`).

The same strictness in both formats:

- a key given twice in one object is an error, placed at its second occurrence;
- JSON is RFC 8259 as the standard library's decoder reads it (which alone decides the
  values), with NaN and Infinity refused;
- YAML plain scalars resolve as in YAML 1.2's core schema only: ``null``/``~``/empty,
  ``true``/``false`` (also ``True``, ``TRUE``...), decimal, ``0o`` and ``0x`` integers,
  decimal floats. So ``yes``, ``on``, ``2024-01-01``, ``17:00`` and ``.inf`` are strings, as
  their JSON spelling would be, never booleans, dates, sexagesimal numbers or infinities;
  keys must be strings; one document; no aliases (a policy is a tree of JSON values, and
  aliases would let a small file expand without bound); no tags but the core ones.

Positions: line and column count from 1, the column in characters (code points). A value
is placed at its first character; an unknown or duplicate key (`PolicyError.at_key`) at the
key; a required key that is missing at the object that lacks it. JSON lines are counted at
"\\n", as the decoder's own error positions are; YAML lines are PyYAML's (its marks).

JSON positions come from a scan of the text made only when an error needs placing (the
decoder does not report them), so a policy that loads pays nothing for them. The scan reads
strings with the decoder's own ``json.decoder.scanstring``: escapes and characters outside
ASCII decode exactly as in the data, and so do the keys the positions are filed under.
"""

from __future__ import annotations

import functools
import json
import os
import re
from bisect import bisect_right
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from .errors import PolicyError
from .policy import format_path, location_path

if TYPE_CHECKING:
    from .compiler import Compiled

    # json.decoder has it (the C scanner, or the Python one), but typeshed does not declare it
    def scanstring(s: str, end: int, strict: bool = True, /) -> tuple[str, int]: ...
else:
    from json.decoder import scanstring

YAML_SUFFIXES = (".yaml", ".yml")
YAML_INSTALL = "pip install 'callgate[yaml]'"

Position = tuple[int, int]                      # (line, column), both from 1
NodePath = tuple[Union[str, int], ...]          # keys and indices from the root
Positions = Mapping[NodePath, tuple[Position, Optional[Position]]]   # path -> (value, key)


class PolicySource:
    """A decoded policy (`data`) and where each of its nodes is in the text it was read from:
    `file` (None for text that is not a file), `format` ("json" or "yaml")."""

    def __init__(self, data: Any, file: Optional[str] = None, format: str = "json",
                 positions: Optional[Positions] = None, text: Optional[str] = None) -> None:
        self.data = data
        self.file = file
        self.format = format
        self._positions = positions
        self._text = text   # JSON: scanned for positions when first needed

    def __repr__(self) -> str:
        return f"PolicySource(file={self.file!r}, format={self.format!r})"

    @property
    def positions(self) -> Positions:
        """path (keys and indices) -> ((line, column) of its value, (line, column) of its key
        or None for an array element or the whole policy)."""
        if self._positions is None:
            self._positions = _JsonScan(self._text or "").walk().positions
        return self._positions

    def position(self, location: str, at_key: bool = False) -> Optional[Position]:
        """(line, column) of a location (a path, as PolicyError.location gives it); at_key:
        of its key rather than its value. None for a location the text does not hold
        (``(discovered_tools)``...)."""
        path, whole = location_path(self.data, location)
        if location.startswith("(") and not whole:
            return None
        entry = self.positions.get(path)
        if entry is None:
            return None
        value, key = entry
        return key if at_key and whole and key is not None else value

    def locate(self, exc: PolicyError) -> PolicyError:
        """`exc` with this source's file and the line and column of its location filled in
        (an error that already has a place, or whose location is not in the text, such as
        ``(discovered_tools)``, is left as is)."""
        if exc.line is None and exc.file is None:
            where = self.position(exc.location, exc.at_key)
            if where is not None:
                exc.file = self.file
                exc.line, exc.column = where
            elif exc.location == "(policy)":   # the whole policy, and the text holds none (empty YAML)
                exc.file = self.file
        return exc

    def compile(self, semantics: str = "strict", discovered_tools: Optional[Mapping[str, str]] = None) -> Compiled:
        """The compiled policy (compiler.compile_policy); a PolicyError is placed in the text."""
        from .compiler import compile_policy

        try:
            return compile_policy(self.data, semantics, discovered_tools=discovered_tools)
        except PolicyError as exc:
            self.locate(exc)
            raise


def policy_format(path: Union[str, "os.PathLike[str]"]) -> str:
    """"yaml" for a .yaml/.yml name (any case), else "json"."""
    return "yaml" if os.fsdecode(path).lower().endswith(YAML_SUFFIXES) else "json"


def read_policy(path: Union[str, "os.PathLike[str]"]) -> PolicySource:
    """Read and decode a policy file, JSON or YAML by its name. Any problem is a PolicyError
    naming the file (and the line and column where the text is at fault)."""
    name = os.fsdecode(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc.strerror or exc}", "(file)", file=name) from None
    return parse_policy(raw, file=name, format=policy_format(name))


def parse_policy(text: Union[str, bytes], *, file: Optional[str] = None, format: str = "json") -> PolicySource:
    """Decode policy text (bytes: UTF-8, or UTF-16/32 as JSON allows) as JSON or YAML."""
    if format not in ("json", "yaml"):
        raise ValueError(f"format: expected json or yaml, got {format!r}")
    where = f"({format})"
    if isinstance(text, (bytes, bytearray)):
        raw = bytes(text)
        encoding = json.detect_encoding(raw)
        try:
            # surrogatepass: as json.loads does with bytes (the compiler refuses lone surrogates)
            text = raw.decode(encoding, "surrogatepass")
        except UnicodeDecodeError as exc:
            raise _bad_encoding(raw, exc, encoding, where, file) from None
    if format == "yaml":
        return _parse_yaml(text, file)
    return _parse_json(text, file)


def _bad_encoding(raw: bytes, exc: UnicodeDecodeError, encoding: str, where: str, file: Optional[str]) -> PolicyError:
    if encoding.startswith("utf-8"):
        start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[start:exc.start].decode("utf-8", "replace")) + 1
        return PolicyError(f"invalid UTF-8 at byte {exc.start}", where, file=file,
                           line=raw.count(b"\n", 0, exc.start) + 1, column=column)
    return PolicyError(f"invalid {encoding.upper()} at byte {exc.start}", where, file=file)


# ---------------------------------------------------------------- JSON


class _Refused(Exception):
    """The decoder met a duplicate key or NaN/Infinity: the scan finds where."""


def _parse_json(text: str, file: Optional[str]) -> PolicySource:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise _Refused
            out[key] = value
        return out

    def constant(name: str) -> Any:
        raise _Refused

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as exc:
        path = _JsonScan(text).walk(stop=exc.pos).path_at_stop
        raise PolicyError(exc.msg, format_path(path) if path else "(json)", file=file,
                          line=exc.lineno, column=exc.colno) from None
    except _Refused:
        # the decoder calls the hook when an object ends, innermost first: the scan reports
        # the first problem in the order of the text instead
        scan = _JsonScan(text)
        problem = scan.walk(first_problem=True).problem
        if problem is None:  # pragma: no cover (the scan sees whatever the decoder saw)
            raise PolicyError("duplicate key, or NaN or Infinity", "(json)", file=file) from None
        message, path, offset, at_key = problem
        line, column = scan.where(offset)
        raise PolicyError(message, format_path(path), file=file, line=line, column=column, at_key=at_key) from None
    except RecursionError:
        raise PolicyError("nested too deeply for the JSON decoder", "(json)", file=file) from None
    except ValueError as exc:  # an integer too long to convert, ...
        raise PolicyError(str(exc), "(json)", file=file) from None
    return PolicySource(data, file, "json", text=text)


_WS_RE = re.compile(r"[ \t\n\r]*")
_ATOM_RE = re.compile(r'[^ \t\n\r,:\[\]{}"]+')   # a number, true, false, null (or NaN...)
_CONSTANTS = ("NaN", "Infinity", "-Infinity")


class _Frame:
    __slots__ = ("path", "keys", "key", "key_at", "index", "awaiting_key")

    def __init__(self, path: NodePath, is_object: bool) -> None:
        self.path = path
        self.keys: Optional[set[str]] = set() if is_object else None
        self.key: Any = None
        self.key_at: Optional[int] = None
        self.index = 0
        self.awaiting_key = is_object


class _Walked:
    __slots__ = ("positions", "problem", "path_at_stop")

    def __init__(self, positions: dict[NodePath, tuple[Position, Optional[Position]]],
                 problem: Optional[tuple[str, NodePath, int, bool]], path_at_stop: NodePath) -> None:
        self.positions = positions
        self.problem = problem
        self.path_at_stop = path_at_stop


class _JsonScan:
    """Where each value and key of a JSON text starts: a walk over the text that follows its
    structure (it does not check the syntax: the decoder has, up to where it stopped)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._lines: Optional[list[int]] = None

    def where(self, offset: int) -> Position:
        """(line, column) of a character offset: lines end at "\\n", as in JSONDecodeError."""
        if self._lines is None:
            self._lines = [0] + [m.end() for m in re.finditer("\n", self.text)]
        line = bisect_right(self._lines, offset)
        return line, offset - self._lines[line - 1] + 1

    def walk(self, stop: Optional[int] = None, first_problem: bool = False) -> _Walked:
        """The offsets of every value and key (as (line, column)), up to `stop` (a syntax
        error's offset: then also the path being read there); with first_problem, stop at
        the first duplicate key or NaN/Infinity and report it."""
        text, n = self.text, len(self.text)
        offsets: dict[NodePath, tuple[int, Optional[int]]] = {}
        stack: list[_Frame] = []
        problem: Optional[tuple[str, NodePath, int, bool]] = None
        i = _WS_RE.match(text, 0).end()  # type: ignore[union-attr]  # (matches the empty string: never None)
        while i < n and (stop is None or i < stop):
            c = text[i]
            frame = stack[-1] if stack else None
            if c == ",":
                if frame is not None:
                    if frame.keys is None:
                        frame.index += 1
                    else:
                        frame.awaiting_key = True
                i += 1
            elif c == ":":
                i += 1
            elif c in "}]":
                if stack:
                    stack.pop()
                i += 1
            elif frame is not None and frame.keys is not None and frame.awaiting_key:
                if c != '"':
                    break  # past a syntax error
                try:
                    key, end = scanstring(text, i + 1, True)
                except ValueError:
                    break
                if first_problem and key in frame.keys:
                    problem = (f"duplicate key '{key}'", frame.path + (key,), i, True)
                    break
                frame.keys.add(key)
                frame.key, frame.key_at, frame.awaiting_key = key, i, False
                i = end
            else:  # a value starts here
                path: NodePath
                key_at: Optional[int]
                if frame is None:
                    path, key_at = (), None
                elif frame.keys is None:
                    path, key_at = frame.path + (frame.index,), None
                else:
                    path, key_at = frame.path + (frame.key,), frame.key_at
                offsets[path] = (i, key_at)
                if c == "{" or c == "[":
                    stack.append(_Frame(path, c == "{"))
                    i += 1
                elif c == '"':
                    try:
                        i = scanstring(text, i + 1, True)[1]
                    except ValueError:
                        break
                else:
                    m = _ATOM_RE.match(text, i)
                    if m is None:
                        break
                    if first_problem and m.group() in _CONSTANTS:
                        problem = (f"{m.group()} is not JSON", path, i, False)
                        break
                    i = m.end()
            i = _WS_RE.match(text, i).end()  # type: ignore[union-attr]  # (as above)
        at_stop: NodePath = ()
        if stack:
            top = stack[-1]
            if top.keys is None:
                at_stop = top.path + (top.index,)
            else:
                at_stop = top.path if top.awaiting_key else top.path + (top.key,)
        positions = {path: (self.where(value), None if key is None else self.where(key))
                     for path, (value, key) in offsets.items()}
        return _Walked(positions, problem, at_stop)


# ---------------------------------------------------------------- YAML

_STR = "tag:yaml.org,2002:str"
_NULL_RE = re.compile(r"(?:~|null|Null|NULL|)\Z")
_BOOL_RE = re.compile(r"(?:true|True|TRUE|false|False|FALSE)\Z")
_INT_RE = re.compile(r"(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)\Z")
_FLOAT_RE = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")


def _core_int(text: str) -> int:
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)   # a leading zero is decimal in YAML 1.2 (never octal)


@functools.lru_cache(maxsize=1)
def _loader(yaml: Any) -> Any:
    """PyYAML's safe loader narrowed to the core schema, without aliases (see the module)."""
    from yaml.composer import ComposerError
    from yaml.constructor import ConstructorError, SafeConstructor

    # (the base comes from the yaml module passed in, imported only when a YAML policy is read)
    class PolicyLoader(yaml.SafeLoader):  # type: ignore[misc]
        yaml_implicit_resolvers: dict[Any, Any] = {}   # none of YAML 1.1's: only those added below
        yaml_constructors: dict[Any, Any] = {}
        yaml_multi_constructors: dict[Any, Any] = {}

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                raise ComposerError(None, None, "aliases (*name) are not allowed in a policy: write the value out",
                                    self.peek_event().start_mark)
            return super().compose_node(parent, index)

    for tag, regexp, first in (("null", _NULL_RE, ["~", "n", "N", ""]), ("bool", _BOOL_RE, list("tTfF")),
                               ("int", _INT_RE, list("-+0123456789")), ("float", _FLOAT_RE, list("-+.0123456789"))):
        PolicyLoader.add_implicit_resolver(f"tag:yaml.org,2002:{tag}", regexp, first)

    def scalar(regexp: Any, convert: Any, what: str) -> Any:
        def construct(loader: Any, node: Any) -> Any:
            text = loader.construct_scalar(node)
            if not regexp.match(text):
                raise ConstructorError(None, None, f"{text!r} is not {what}", node.start_mark)
            try:
                return convert(text)
            except ValueError as exc:
                raise ConstructorError(None, None, f"{text[:40]!r} is not {what}: {exc}", node.start_mark) from None
        return construct

    def undefined(loader: Any, node: Any) -> Any:
        raise ConstructorError(None, None, f"tag {node.tag!r} is not allowed in a policy", node.start_mark)

    PolicyLoader.add_constructor("tag:yaml.org,2002:null", scalar(_NULL_RE, lambda t: None, "null"))
    PolicyLoader.add_constructor("tag:yaml.org,2002:bool", scalar(_BOOL_RE, lambda t: t.lower() == "true", "a boolean"))
    PolicyLoader.add_constructor("tag:yaml.org,2002:int", scalar(_INT_RE, _core_int, "an integer"))
    PolicyLoader.add_constructor("tag:yaml.org,2002:float", scalar(_FLOAT_RE, float, "a number"))
    PolicyLoader.add_constructor(_STR, SafeConstructor.construct_yaml_str)
    PolicyLoader.add_constructor("tag:yaml.org,2002:seq", SafeConstructor.construct_yaml_seq)
    PolicyLoader.add_constructor("tag:yaml.org,2002:map", SafeConstructor.construct_yaml_map)
    PolicyLoader.add_constructor(None, undefined)
    return PolicyLoader


def _mark(mark: Any) -> Position:
    return mark.line + 1, mark.column + 1


def _parse_yaml(text: str, file: Optional[str]) -> PolicySource:
    try:
        import yaml
    except ImportError:
        raise PolicyError(f"reading a YAML policy needs PyYAML: {YAML_INSTALL}", "(file)", file=file) from None
    loader = None
    try:
        loader = _loader(yaml)(text)   # reads the whole text at once: a bad character fails here
        node = loader.get_single_node()
        positions = _yaml_positions(yaml, node, file)
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = ": ".join(str(part) for part in (exc.context, exc.problem) if part) or "not valid YAML"
        if mark is None:
            raise PolicyError(message, "(yaml)", file=file) from None
        line, column = _mark(mark)
        raise PolicyError(message, "(yaml)", file=file, line=line, column=column) from None
    except yaml.reader.ReaderError as exc:   # a character YAML does not allow
        scan = _JsonScan(text)  # only its line counting
        line, column = scan.where(exc.position)
        raise PolicyError(f"character U+{exc.character:04X} is not allowed in YAML", "(yaml)", file=file,
                          line=line, column=column) from None
    except RecursionError:
        raise PolicyError("nested too deeply for the YAML reader", "(yaml)", file=file) from None
    except yaml.YAMLError as exc:  # pragma: no cover (every PyYAML error above is marked or a ReaderError)
        raise PolicyError(str(exc), "(yaml)", file=file) from None
    finally:
        if loader is not None:
            loader.dispose()
    return PolicySource(data, file, "yaml", positions)


def _yaml_positions(yaml: Any, root: Any, file: Optional[str]) -> dict[NodePath, tuple[Position, Optional[Position]]]:
    """The positions of a composed document, checking its keys on the way: strings only, none
    twice in one mapping (compared as the strings they are, whatever their quoting)."""
    positions: dict[NodePath, tuple[Position, Optional[Position]]] = {}
    if root is None:
        return positions
    todo: list[tuple[Any, NodePath, Optional[Position]]] = [(root, (), None)]
    while todo:  # depth first, without recursion: nesting is bounded by the composer alone
        node, path, key_at = todo.pop()
        positions[path] = (_mark(node.start_mark), key_at)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                line, column = _mark(key_node.start_mark)
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
                    shown = repr(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "a list or mapping"
                    raise PolicyError(f"a key must be a string, not {shown} (quote it)", format_path(path),
                                      file=file, line=line, column=column)
                key = key_node.value
                if key in seen:
                    raise PolicyError(f"duplicate key '{key}'", format_path(path + (key,)), file=file,
                                      line=line, column=column, at_key=True)
                seen.add(key)
                todo.append((value_node, path + (key,), (line, column)))
        elif isinstance(node, yaml.SequenceNode):
            todo.extend((item, path + (k,), None) for k, item in enumerate(node.value))
    return positions
