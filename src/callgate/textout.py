"""Text for people: styled lines, a plain table and a tree, with colour only on a terminal.

The command line's whole renderer, on the standard library alone (the base install has no
rich). Colour is used when the stream is a terminal and NO_COLOR is not set
(https://no-color.org): a pipe, a file or a test's buffer gets the plain text, so what a
script reads never holds escape codes. Streams are looked up when a line is written, not
when this module is imported, so redirecting sys.stdout (tests, embedding hosts) works.

    Text("Deny", "bold red").append("  the reason")   a line of styled runs
    table(["call", "role"], rows, title=...)          columns padded to their widest cell
    tree(Node(label, [Node(...), ...]))               ├── / └── guides, as `callgate explain` draws
    echo(line) / error(message)                       write one line to stdout / `error: ...` to stderr
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import IO, Iterable, List, Optional, Sequence, Tuple, Union

# SGR codes of the styles the command line uses (a style is words: "bold red", "dim italic")
_SGR = {"bold": "1", "dim": "2", "italic": "3", "red": "31", "green": "32", "yellow": "33", "blue": "34",
        "magenta": "35", "cyan": "36", "white": "37"}


def colour_on(stream: Optional[IO[str]]) -> bool:
    """Whether to colour what goes to `stream`: a terminal, and NO_COLOR unset or empty."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed or detached stream is no terminal
        return False


def paint(text: str, style: str, colour: bool) -> str:
    """`text` in `style` (unknown words are ignored), or as is without colour."""
    if not colour or not style or not text:
        return text
    codes = [_SGR[word] for word in style.split() if word in _SGR]
    return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text


def one_line(text: str) -> str:
    """`text` on one line: an error must never spill over several (a traceback's habit)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip()) or str(text).strip()


class Text:
    """A line made of runs of text, each with its style."""

    __slots__ = ("runs",)

    def __init__(self, text: str = "", style: str = "") -> None:
        self.runs: List[Tuple[str, str]] = [(text, style)] if text else []

    def append(self, text: str, style: str = "") -> "Text":
        """Add a run (an empty `text` adds nothing); returns self, for chaining."""
        if text:
            self.runs.append((text, style))
        return self

    def extend(self, other: "Text") -> "Text":
        """Add `other`'s runs, styles kept; returns self."""
        self.runs.extend(other.runs)
        return self

    def restyle(self, style: str) -> "Text":
        """Add `style` to every run (a whole line dimmed, say)."""
        self.runs = [(text, f"{style} {own}".strip()) for text, own in self.runs]
        return self

    @property
    def plain(self) -> str:
        """The text without styles."""
        return "".join(text for text, _ in self.runs)

    def __len__(self) -> int:
        return len(self.plain)

    def __str__(self) -> str:
        return self.plain

    def render(self, colour: bool) -> str:
        """The line with its styles as escape codes when `colour`, else plain."""
        return "".join(paint(text, style, colour) for text, style in self.runs)


Cell = Union[str, Text]


def as_text(cell: Cell) -> Text:
    """A cell as a Text (a str becomes one unstyled run; a Text is returned as is)."""
    return cell if isinstance(cell, Text) else Text(str(cell))


def table(columns: Sequence[str], rows: Iterable[Sequence[Cell]], title: Optional[str] = None) -> List[Text]:
    """The lines of a table: an optional title, the header, a rule, one line per row; each
    column as wide as its widest cell, two spaces between columns, nothing cut or wrapped."""
    body = [[as_text(c) for c in row] for row in rows]
    widths = [max([len(name)] + [len(row[i]) for row in body if i < len(row)]) for i, name in enumerate(columns)]

    def line(cells: Sequence[Text]) -> Text:
        out = Text()
        for i, cell in enumerate(cells):
            out.extend(cell)
            if i < len(cells) - 1:
                out.append(" " * (widths[i] - len(cell) + 2))
        return out

    lines = [Text(title, "bold")] if title else []
    lines.append(line([Text(name, "bold") for name in columns]))
    lines.append(Text("  ".join("-" * w for w in widths)))
    lines.extend(line(row) for row in body)
    return lines


@dataclass
class Node:
    """A tree: a label and the nodes under it."""

    label: Text
    children: List["Node"] = field(default_factory=list)

    def add(self, label: Cell) -> "Node":
        """Add a child with this label; returns the child."""
        child = Node(as_text(label))
        self.children.append(child)
        return child


def tree(root: Node) -> List[Text]:
    """The lines of a tree: the root's label, then each child under `├── ` (the last under
    `└── `), its own children indented by `│   ` (or four spaces under a last child)."""
    lines = [Text().extend(root.label)]

    def walk(node: Node, prefix: str) -> None:
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            lines.append(Text(prefix + ("└── " if last else "├── ")).extend(child.label))
            walk(child, prefix + ("    " if last else "│   "))

    walk(root, "")
    return lines


def echo(line: Cell = "", stream: Optional[IO[str]] = None) -> None:
    """Write one line (coloured when `stream`, stdout by default, is a terminal)."""
    stream = sys.stdout if stream is None else stream
    text = as_text(line).render(colour_on(stream)) + "\n"
    try:
        stream.write(text)
    except UnicodeEncodeError:  # a console that cannot show the tree's guides or ◀ gets "?"
        encoding = getattr(stream, "encoding", None) or "ascii"
        stream.write(text.encode(encoding, "replace").decode(encoding))


def echo_all(lines: Iterable[Cell], stream: Optional[IO[str]] = None) -> None:
    """echo() each line, whole: a long line is never cut (a terminal wraps it)."""
    for line in lines:
        echo(line, stream)


def error(message: str, stream: Optional[IO[str]] = None) -> None:
    """`error: <message>` on one line of stderr."""
    echo(f"error: {one_line(message)}", sys.stderr if stream is None else stream)


def note(message: str, stream: Optional[IO[str]] = None) -> None:
    """A line for people on stderr (a warning, a note): never mixed into what stdout carries."""
    echo(one_line(message), sys.stderr if stream is None else stream)
