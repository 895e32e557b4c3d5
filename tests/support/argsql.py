"""The reference evaluator's SqlCheck (tests/support/reference.py uses it), written from
docs/arguments.md ("SqlCheck", "Reasons") and docs/policy-v2.md, not from the engine.

Tokenizers nobody here wrote where one is exact:

- PostgreSQL: the server's own lexer, through pglast (`pglast.parser.scan`: libpg_query,
  PostgreSQL's scan.l with `standard_conforming_strings` on). What it refuses (an
  unterminated string, comment or dollar quote, a zero-length quoted name, trailing junk
  after a number) is text the server would not run: U. Its keyword classes
  (`pglast.keywords`) say which words the grammar never takes as a function name.
- SQLite: a tokenizer written here from SQLite's documented lexical rules
  (https://www.sqlite.org/lang_keywords.html, lang_expr.html "Literal Values",
  "Parameters", lang_comment.html), small enough to read against them; the tests hold its
  statement ends to `sqlite3.complete_statement` (SQLite's own tokenizer).
- MySQL: a tokenizer written here from MySQL 8's documented lexical rules (Reference
  Manual 11.1 "String Literals", 11.2 "Schema Object Names", 11.4 "User-Defined Variables",
  11.7 "Comments", 11.1.4-5 hexadecimal and bit-value literals), and from what
  docs/arguments.md's "MySQL" paragraph says the server's settings decide (U).

What the document adds to a tokenizer (what is U, the word lists, the statement kinds, the
tables a statement names, the reason texts) is written here, each from its sentence. The
built-in lists of functions known not to write are the ones the document points at: the
PG_FUNCS and SQLITE_FUNCS lists of scripts/gen_sql_words.py, loaded from that file (the list
is policy data; its other tables are not used here).

Where the document leaves a choice open, the reading taken is written next to the code as
"AMBIGUITY:".

This module must not import callgate.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

import orjson

DIALECTS = ("postgres", "sqlite", "mysql")
MAX_DEPTH = 64          # "unbalanced parentheses or deeper than 64"
MAX_PARTS = 3           # "more than 3 name parts"
MAX_CTES = 32           # "32 WITH queries"
PG_NAME_MAX = 63        # "a PostgreSQL name longer than 63 bytes"
ESCAPED_MAX = 64 * 1024  # "an escaped JSON string over 64 KB"

# "read_only": the words that write, anywhere (the document's list, in its spelling)
WRITE_WORDS = {"insert", "update", "delete", "merge", "into", "copy", "truncate", "drop", "create", "alter",
               "grant", "revoke", "call", "execute", "lock", "nextval", "setval"}

# "KIND: select, insert, update, delete, merge, DDL, copy, call, set, explain, transaction
# control, other", read from a statement's first word.
# AMBIGUITY: the document names the kinds, not every first word. The words below are the
# statements of PostgreSQL's and SQLite's manuals put in the kind their name says; any other
# first word (DECLARE, SHOW, LISTEN, LOCK, ...) is "other". Any kind but select and explain
# is not read-only, so the choice changes the reason's KIND word, never a decision.
KINDS = {
    "select": "select", "values": "select", "table": "select",
    "insert": "insert", "replace": "insert",          # SQLite's REPLACE INTO is an insert
    "update": "update", "delete": "delete", "merge": "merge",
    "create": "DDL", "alter": "DDL", "drop": "DDL", "truncate": "DDL", "comment": "DDL", "grant": "DDL",
    "revoke": "DDL", "reindex": "DDL", "vacuum": "DDL", "analyze": "DDL", "analyse": "DDL", "cluster": "DDL",
    "refresh": "DDL", "security": "DDL", "import": "DDL",
    "copy": "copy",
    "call": "call", "do": "call", "execute": "call",
    "set": "set", "reset": "set", "pragma": "set", "attach": "set", "detach": "set", "load": "set",
    "discard": "set",
    "explain": "explain",
    "begin": "transaction control", "start": "transaction control", "commit": "transaction control",
    "end": "transaction control", "rollback": "transaction control", "savepoint": "transaction control",
    "release": "transaction control", "abort": "transaction control",
}
QUERY_KINDS = ("select", "explain")      # "every statement is a query (..., EXPLAIN of one)"
# "with tables_in or schemas_in: a statement whose tables are not read (DDL, COPY, ...)" is U:
# the tables are read in queries and in the statements that change rows.
TABLE_KINDS = ("select", "explain", "insert", "update", "delete", "merge")

# Words the grammars take before a parenthesis without calling a function (IN (...),
# OVER (...), a type's modifier varchar(3), ...): a name followed by "(" is a call otherwise
# ("calls function F"). For PostgreSQL, add every word its grammar reserves (a reserved
# word is never a function name) and the join / operator words of TYPE_FUNC_NAME_KEYWORDS.
NOT_CALLS = {
    "and", "or", "not", "in", "exists", "any", "all", "some", "values", "as", "over", "filter", "within",
    "using", "on", "when", "then", "else", "case", "select", "from", "join", "where", "having", "lateral",
    "sets", "cube", "rollup", "by", "partition", "is", "like", "ilike", "between", "distinct", "union",
    "except", "intersect", "returning", "materialized", "recursive", "group", "order", "limit", "offset",
    "only", "with", "array", "row", "escape", "default", "asc", "desc", "nulls", "range", "rows", "groups",
    "exclude", "similar", "to", "collate", "natural", "inner", "outer", "cross", "full", "leading",
    "trailing", "both", "placing", "for", "at", "zone", "if", "window", "set", "conflict", "do",
    "explain", "analyze", "key", "unique", "primary", "check", "references", "foreign", "constraint",
    "table", "into", "glob", "isnull", "notnull", "overlaps", "tablesample", "partition",
    # types with a modifier
    "varchar", "char", "character", "varying", "numeric", "decimal", "dec", "float", "bit", "varbit",
    "time", "timetz", "timestamp", "timestamptz", "interval", "nchar", "nvarchar", "national", "double",
    "precision", "bpchar",
}
# what ends a FROM / USING list at its level
CLAUSE_ENDS = {"where", "group", "having", "order", "limit", "offset", "union", "except", "intersect", "window",
               "fetch", "returning", "values", "set", "select", "for", "qualify", "when", "then", "into",
               "default", "do", "conflict"}
JOIN_WORDS = {"join", "left", "right", "full", "inner", "outer", "cross", "natural"}
TABLE_WORDS = {"from", "join", "into", "update", "using", "table", "lateral", "only", "as", "on"} | JOIN_WORDS \
    | CLAUSE_ENDS
# SQLite's operators that are also functions: after an operand they are the operator
OPERATOR_WORDS = {"match", "regexp", "glob", "like"}
SUBQUERY_START = {"select", "values", "with", "table", "insert", "update", "delete", "merge"}
# MySQL: the words that may stand before INSERT's or UPDATE's table (LOW_PRIORITY, ...; the
# server reserves them, so none names a table unquoted)
MY_SKIP = {"low_priority", "high_priority", "delayed", "ignore"}
# "EXPLAIN [options] statement": the options of every dialect (PostgreSQL's ANALYZE, VERBOSE
# and parenthesised list, SQLite's QUERY PLAN, MySQL's ANALYZE, FORMAT = name, EXTENDED,
# PARTITIONS), and the statements EXPLAIN shows as themselves (queries, and the statements
# that change rows, whose writes are seen); EXPLAIN of another statement is that statement.
# MySQL: EXPLAIN t shows table t.
EXPLAIN_OPTIONS = ("analyze", "analyse", "verbose", "query", "plan", "format", "extended", "partitions")
EXPLAINED = {"select", "table", "values", "with", "insert", "replace", "update", "delete", "merge"}


def _builtin_functions() -> dict[str, frozenset[str]]:
    """docs/arguments.md: "the dialect's built-in list of functions known not to write
    (scripts/gen_sql_words.py ...)": its PG_FUNCS, SQLITE_FUNCS and MYSQL_FUNCS, read from
    that file."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "gen_sql_words.py"
    spec = importlib.util.spec_from_file_location("_cg_gen_sql_words_data", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"postgres": frozenset(module.PG_FUNCS), "sqlite": frozenset(module.SQLITE_FUNCS),
            "mysql": frozenset(module.MYSQL_FUNCS)}


BUILTIN = _builtin_functions()


class Unread(Exception):
    """The text is not SQL the check can read with certainty (U)."""


class Tok(NamedTuple):
    kind: str    # word, qname, badname, str, dq, num, param, op, ( ) , . ;
    text: str    # as written (for words, names: the name as the server compares it)
    pos: int = -1   # where it starts (SQLite's punctuation; the tests hold the ';' to SQLite's)
    raw: str = ""   # MySQL words: as written (text is folded for the keywords; tables keep their case)


def _fold(name: str) -> str:
    """Unquoted names fold to lower case (ASCII letters: both servers' rule for UTF-8 text)."""
    return name.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


# ---------------------------------------------------------------- PostgreSQL (pglast)

_PG_PUNCT = {"ASCII_40": "(", "ASCII_41": ")", "ASCII_44": ",", "ASCII_46": ".", "ASCII_59": ";"}


def _pg_keywords() -> frozenset[str]:
    from pglast import keywords
    # TYPE_FUNC_NAME_KEYWORDS that are joins and operators (left, right, collation for, ...
    # are function names and stay calls)
    return frozenset(keywords.RESERVED_KEYWORDS) | {"join", "cross", "inner", "natural", "full", "outer",
                                                     "like", "ilike", "similar", "is", "isnull", "notnull",
                                                     "overlaps", "tablesample", "verbose", "freeze",
                                                     "concurrently", "binary"}


# PostgreSQL's numbers (scan.l: decinteger, hexinteger, octinteger, bininteger, numeric, real)
_PG_NUMBER = re.compile(r"0[xX](?:_?[0-9A-Fa-f])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+"
                        r"|(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)"
                        r"(?:[eE][-+]?[0-9](?:_?[0-9])*)?")
# ... followed by a name: the lexer's "trailing junk" token
_PG_JUNK = re.compile(_PG_NUMBER.pattern + r"[A-Za-z_][A-Za-z_0-9$]*")


def pg_tokens(sql: str) -> list[Tok]:
    """PostgreSQL's lexer (pglast), comments dropped."""
    from pglast import parser
    # pglast's scan fails on tokens around non-ASCII text (it decodes token bytes one at a
    # time). PostgreSQL's lexer takes every byte >= 0x80 as a letter (ident_start and
    # ident_cont, scan.l), so each non-ASCII character is scanned as the letter x, one
    # character for one: the offsets then index the original text, read from it.
    ascii_sql = re.sub(r"[^\x00-\x7f]", "x", sql)
    while True:
        try:
            scanned = parser.scan(ascii_sql)
            break
        except parser.ParseError as exc:   # the lexer's own refusal: the server would not run it
            at = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else -1
            junk = _PG_JUNK.match(ascii_sql, at) if "trailing junk after numeric" in str(exc) else None
            if junk is None:
                raise Unread(str(exc)) from exc
            # AMBIGUITY: PostgreSQL 15 and later refuse a number followed by a name as one
            # token ("trailing junk after numeric literal", scan.l's *_junk rules; SQLite
            # too: an illegal token), and the document does not list it under U. Taken: that
            # token is read as a number (nothing in it is a word), as the engine reads it.
            ascii_sql = ascii_sql[:at] + "1" * (junk.end() - at) + ascii_sql[junk.end():]
        except Exception as exc:
            raise Unread(str(exc)) from exc
    out = []
    for t in scanned:
        text = sql[t.start:t.end + 1]
        if t.name in ("C_COMMENT", "SQL_COMMENT"):
            continue
        if t.name in _PG_PUNCT:
            out.append(Tok(_PG_PUNCT[t.name], text))
        elif t.name == "UIDENT":
            out.append(Tok("badname", text))         # U& escapes
        elif t.name == "IDENT" and text.startswith('"'):
            name = text[1:-1].replace('""', '"')
            bad = "." in name or len(name.encode("utf-8")) > PG_NAME_MAX
            out.append(Tok("badname" if bad else "qname", name))
        elif t.name == "IDENT" or t.kind != "NO_KEYWORD":
            bad = len(text.encode("utf-8")) > PG_NAME_MAX    # the server truncates it
            out.append(Tok("badname" if bad else "word", _fold(text)))
        elif t.name == "SCONST":
            # "in PostgreSQL a backslash in a standard '...' string" (E'...' and $$...$$ are
            # not standard strings; N'...' is NCHAR then a standard string)
            if text.startswith("'") and "\\" in text:
                raise Unread("a backslash in a standard string")
            out.append(Tok("str", text))
        elif t.name in ("USCONST", "BCONST", "XCONST"):
            out.append(Tok("str", text))
        elif t.name in ("ICONST", "FCONST"):
            out.append(Tok("num", text))
        elif t.name == "PARAM":
            out.append(Tok("param", text))
        else:
            out.append(Tok("op", text))
    return out


# ---------------------------------------------------------------- SQLite (its documented rules)

_LITE_SPACE = " \t\n\f\r"
_DIGITS = "0123456789"
_ID_START = re.compile(r"[A-Za-z_\x80-\U0010ffff]")
_ID_CHARS = re.compile(r"[A-Za-z0-9_$\x80-\U0010ffff]*")
_NUMBER = re.compile(r"0[xX][0-9A-Fa-f_]+|(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9_]+)?")
_CLOSE = {'"': '"', "`": "`", "[": "]"}


def lite_tokens(sql: str) -> list[Tok]:
    """SQLite's tokens: '...' strings with '', "..." `...` [...] names (the first two with
    doubled quotes), -- and non-nested /* */ comments, ? ?N :a @a $a parameters, x'..'
    blobs; a backslash is an ordinary character."""
    out: list[Tok] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in _LITE_SPACE:
            i += 1
        elif sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            if j < 0:
                raise Unread("an unterminated comment")
            i = j + 2
        elif c in "(),.;" and not (c == "." and i + 1 < n and sql[i + 1] in _DIGITS):
            out.append(Tok(c, c, i))
            i += 1
        elif c == "'" or (c in "xX" and sql.startswith("'", i + 1)):
            start = i
            i += 1 if c == "'" else 2
            while True:
                j = sql.find("'", i)
                if j < 0:
                    raise Unread("an unterminated string")
                if sql.startswith("''", j):
                    i = j + 2
                    continue
                i = j + 1
                break
            out.append(Tok("str", sql[start:i]))
        elif c in _CLOSE:
            close, body, i = _CLOSE[c], [], i + 1
            while True:
                j = sql.find(close, i)
                if j < 0:
                    raise Unread("an unterminated quoted name")
                body.append(sql[i:j])
                if close != "]" and sql.startswith(close * 2, j):
                    body.append(close)
                    i = j + 2
                    continue
                i = j + 1
                break
            name = "".join(body)
            # "SQLite folds quoted ones too, as it compares names"
            out.append(Tok("badname" if "." in name else "qname", _fold(name)))
        elif c in _DIGITS or c == ".":
            m = _NUMBER.match(sql, i)
            assert m is not None
            i = _ID_CHARS.match(sql, m.end()).end()    # the name after it is part of the token
            # AMBIGUITY: SQLite refuses a number followed by a name (one illegal token) and
            # the document does not list it under U. Taken: that token read as a number, as
            # the engine reads it (the server runs neither).
            out.append(Tok("num", sql[m.start():i]))
        elif c == "?":
            j = i + 1
            while j < n and sql[j] in _DIGITS:
                j += 1
            out.append(Tok("param", sql[i:j]))
            i = j
        elif c in ":@$#" and i + 1 < n and (_ID_START.match(sql[i + 1]) or sql[i + 1] in _DIGITS):
            j = _ID_CHARS.match(sql, i + 1).end()
            out.append(Tok("param", sql[i:j]))
            i = j
        elif _ID_START.match(c):
            j = _ID_CHARS.match(sql, i).end()
            out.append(Tok("word", _fold(sql[i:j])))
            i = j
        else:
            out.append(Tok("op", c))
            i += 1
    return out


# ---------------------------------------------------------------- MySQL (its documented rules)

_MY_SPACE = " \t\n\v\f\r"
# 11.2: unquoted names are [0-9a-zA-Z$_] and U+0080 .. U+FFFF; they may begin with a digit
_MY_ID_CHAR = re.compile(r"[0-9A-Za-z$_\x80-\U0010ffff]")
_MY_ID = re.compile(r"[0-9A-Za-z$_\x80-\U0010ffff]+")
# 11.1.1 numbers, 11.1.4 0x.. hexadecimal, 11.1.5 0b.. bit-value literals
_MY_NUMBER = re.compile(r"0x[0-9A-Fa-f]+|0b[01]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
# 11.4: @name (letters, digits, '.', '_', '$'), @@[global.|session.]name
_MY_VAR = re.compile(r"@@?[0-9A-Za-z._$\x80-\U0010ffff]*")


def _my_string_end(sql: str, i: int, backslash: bool) -> int:
    """Where the string whose opening quote is at i ends (the index after its closing quote),
    reading a backslash as an escape or not (11.1.1: a doubled quote stands for one); -1 when
    it does not end."""
    q, j, n = sql[i], i + 1, len(sql)
    while j < n:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
        elif c == q:
            if j + 1 < n and sql[j + 1] == q:
                j += 2
            else:
                return j + 1
        else:
            j += 1
    return -1


def _my_string(sql: str, i: int) -> int:
    """The end of the '...' or "..." string at i. docs/arguments.md: "a backslash in a string
    is an escape by default and a plain character under NO_BACKSLASH_ESCAPES, so a string with
    a backslash is scanned both ways and is U unless both readings end at the same quote"."""
    escaped, plain = _my_string_end(sql, i, True), _my_string_end(sql, i, False)
    if escaped < 0 or plain < 0:
        raise Unread("an unterminated string" if escaped == plain else "sql_mode decides where the string ends")
    if escaped != plain:
        raise Unread("sql_mode decides where the string ends")
    return escaped


def my_tokens(sql: str) -> list[Tok]:
    """MySQL's tokens: '...' and "..." strings (a "..." is a `dq`: a name under ANSI_QUOTES),
    `...` names with doubled backticks, # and "-- " comments, non-nested /* */ comments
    (executable ones and hints are U), X'' B'' N'' strings, 0x.. 0b.. numbers, ? parameters,
    @ and @@ variables, the operator :=; a backslash outside a string is U."""
    out: list[Tok] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in _MY_SPACE:
            i += 1
        elif c == "#" or (sql.startswith("--", i) and (i + 2 >= n or sql[i + 2] <= " " or sql[i + 2] == "\x7f")):
            # 11.7: "#" to the end of the line; "-- " needs a space or control character after it
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif sql.startswith("/*", i):
            # 11.7: /*! ... */ (and /*!50001, MariaDB's /*M!) run their content, /*+ ... */ are
            # optimizer hints: "read by the server: U"
            if sql.startswith(("/*!", "/*+", "/*M!"), i):
                raise Unread("an executable comment or optimizer hint")
            j = sql.find("*/", i + 2)
            if j < 0:
                raise Unread("an unterminated comment")
            i = j + 2
        elif c == "\\":
            raise Unread("a backslash outside a string (the mysql client's command)")
        elif c in "(),;" or (c == "." and not (i + 1 < n and sql[i + 1] in _DIGITS)):
            out.append(Tok(c, c, i))
            i += 1
        elif c in "'\"" or (c in "xXbBnN" and sql.startswith("'", i + 1)):
            start = i + (0 if c in "'\"" else 1)
            i = _my_string(sql, start)
            out.append(Tok("dq" if c == '"' else "str", sql[start:i]))
        elif c == "`":
            body, i = [], i + 1
            while True:
                j = sql.find("`", i)
                if j < 0:
                    raise Unread("an unterminated quoted name")
                body.append(sql[i:j])
                if sql.startswith("``", j):
                    body.append("`")
                    i = j + 2
                    continue
                i = j + 1
                break
            name = "".join(body)
            out.append(Tok("badname" if "." in name or not name else "qname", name))
        elif c in _DIGITS or c == ".":
            m = _MY_NUMBER.match(sql, i)
            assert m is not None
            if _MY_ID_CHAR.match(sql, m.end()):
                # "A name that begins with a digit (1abc, which MySQL allows) is U"
                raise Unread("a name that begins with a digit")
            out.append(Tok("num", m.group()))
            i = m.end()
        elif c == "?":
            out.append(Tok("param", c))
            i += 1
        elif c == "@":
            m = _MY_VAR.match(sql, i)
            assert m is not None
            i = m.end()
            if m.group() in ("@", "@@") and i < n and sql[i] in "'\"`":    # @'my-var', @`my-var`
                if sql[i] != "`":
                    i = _my_string(sql, i)
                elif sql.find("`", i + 1) < 0:
                    raise Unread("an unterminated quoted name")
                else:
                    i = sql.find("`", i + 1) + 1
            out.append(Tok("param", sql[m.start():i]))
        elif c == ":" and sql.startswith(":=", i):
            out.append(Tok("op", ":="))
            i += 2
        elif _MY_ID_CHAR.match(c):
            word = _MY_ID.match(sql, i).group()
            out.append(Tok("word", _fold(word), i, word))
            i += len(word)
        else:
            out.append(Tok("op", c))
            i += 1
    return out


# ---------------------------------------------------------------- statements


@dataclass
class Statement:
    """What the check reads of one statement."""

    kind: str
    # in the order of the text: ("W", word) a word that writes, ("L", "") a locking clause,
    # ("F", name parts) a call, ("T", name parts) a table named
    events: list[tuple[str, Any]] = field(default_factory=list)


def split(tokens: list[Tok]) -> list[list[Tok]]:
    """Statements at ';' (outside parentheses); parentheses balanced, at most 64 deep."""
    out: list[list[Tok]] = []
    here: list[Tok] = []
    depth = 0
    for t in tokens:
        if t.kind == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise Unread("parentheses deeper than 64")
        elif t.kind == ")":
            depth -= 1
            if depth < 0:
                raise Unread("unbalanced parentheses")
        elif t.kind == ";":
            if depth:
                raise Unread("a ';' inside parentheses")
            if here:
                out.append(here)
            here = []
            continue
        here.append(t)
    if depth:
        raise Unread("unbalanced parentheses")
    if here:
        out.append(here)
    return out


def _is_name(t: Tok) -> bool:
    return t.kind in ("word", "qname", "badname")


def _chain(toks: list[Tok], i: int) -> tuple[tuple[str, ...], int]:
    """A dotted name from i: its parts and the index after it."""
    parts = [toks[i].raw or toks[i].text]     # (a MySQL name as written)
    j = i + 1
    while j + 1 < len(toks) and toks[j].kind == "." and _is_name(toks[j + 1]):
        parts.append(toks[j + 1].raw or toks[j + 1].text)
        j += 2
    return tuple(parts), j


def _matching(toks: list[Tok], i: int) -> int:
    """The index of the ')' closing the '(' at i."""
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].kind == "(":
            depth += 1
        elif toks[j].kind == ")":
            depth -= 1
            if depth == 0:
                return j
    raise Unread("unbalanced parentheses")


def _word(toks: list[Tok], i: int, *words: str) -> bool:
    return 0 <= i < len(toks) and toks[i].kind == "word" and toks[i].text in words


def _with_list(toks: list[Tok], i: int, marks: dict[int, str]) -> tuple[list[str], int]:
    """After the WITH at i: [RECURSIVE] name [(columns)] AS [NOT] [MATERIALIZED] (body), ...
    Returns the CTE names and the index after the list; marks the names' column lists and
    the bodies' parentheses."""
    names: list[str] = []
    j = i + 1
    if _word(toks, j, "recursive"):
        j += 1
    while j < len(toks) and (_is_name(toks[j]) or toks[j].kind == "dq"):
        if toks[j].kind == "dq":
            # MySQL: "..." "as a WITH query's name" is a name under ANSI_QUOTES: U
            raise Unread("a WITH query named by a \"...\" that sql_mode decides")
        name_at = j
        j += 1
        if j < len(toks) and toks[j].kind == "(":
            marks[j] = "columns"
            j = _matching(toks, j) + 1
        if not _word(toks, j, "as"):
            break
        j += 1
        if _word(toks, j, "not"):
            j += 1
        if _word(toks, j, "materialized"):
            j += 1
        if j >= len(toks) or toks[j].kind != "(":
            break
        marks[j] = "query"
        names.append(toks[name_at].raw or toks[name_at].text)   # (MySQL: "compared as written too")
        marks[name_at] = "cte"
        j = _matching(toks, j) + 1
        if j < len(toks) and toks[j].kind == ",":
            j += 1
            continue
        break
    return names, j


def analyze(toks: list[Tok], dialect: str) -> Statement:
    """The statement's kind, write words, locking clause, calls and tables."""
    not_calls = NOT_CALLS | (_pg_keywords() if dialect == "postgres" else frozenset())
    marks: dict[int, str] = {}
    ctes: list[str] = []
    for i, t in enumerate(toks):
        if t.kind == "word" and t.text == "with" and not _word(toks, i + 1, "ordinality", "time", "check",
                                                                  "no", "data", "ties", "grant", "local",
                                                                  "cascaded", "hold"):
            names, _ = _with_list(toks, i, marks)
            ctes += names
    if len(ctes) > MAX_CTES:
        raise Unread("more than 32 WITH queries")
    # the kind, from the first word (after the WITH list for WITH ... )
    # "reads kinds from a statement's first word": a statement may open with parentheses,
    # ((SELECT 1)) is a select
    first = 0
    while first < len(toks) and toks[first].kind == "(":
        first += 1
    if _word(toks, first, "with"):
        _, first = _with_list(toks, first, {})
    head = toks[first] if first < len(toks) else None
    kind = KINDS.get(head.text, "other") if head is not None and head.kind == "word" else "other"
    st = Statement(kind)
    my = dialect == "mysql"
    explain_table = -1       # MySQL's EXPLAIN t: the index of t
    shown_at = -1            # EXPLAIN's statement: the index of its first word
    body = kind              # the kind of the statement read (EXPLAIN's: the one it shows)
    if my and head is not None and head.kind == "word" and head.text == "delimiter":
        raise Unread("DELIMITER, the mysql client's command")
    if kind == "explain":
        # "EXPLAIN of one [a query]; EXPLAIN ANALYZE CREATE ... is the statement it explains":
        # past its options, the statement EXPLAIN shows gives the kind unless it is a query or
        # a statement that changes rows (whose writes are seen)
        j = first + 1
        if not my and j < len(toks) and toks[j].kind == "(":
            j = _matching(toks, j) + 1           # PostgreSQL's EXPLAIN (ANALYZE, ...) statement
        while j < len(toks):
            if _word(toks, j, *EXPLAIN_OPTIONS):
                j += 1
            elif toks[j].kind == "op":
                j += 1                           # FORMAT = JSON: a word after an operator is a value
                if j < len(toks) and toks[j].kind == "word":
                    j += 1
            elif toks[j].kind not in ("word", "qname", "badname", "dq"):
                j += 1     # "first word or name": a string, number or parenthesis is not one
            else:
                break
        shown, shown_at = (toks[j] if j < len(toks) else None), j
        statement_word = shown is not None and shown.kind == "word" and (shown.text in KINDS or shown.text in
                                                                         ("with", "for"))
        if my and j == first + 1 and shown is not None and (_is_name(shown) or shown.kind == "dq") \
                and not statement_word:
            explain_table = j        # MySQL: "EXPLAIN t (t's columns) names table t" (not EXPLAIN FOR ...)
        elif shown is not None and shown.kind == "word" and shown.text in EXPLAINED:
            main = _with_list(toks, j, {})[1] if shown.text == "with" else j   # EXPLAIN WITH ... INSERT
            body = KINDS.get(toks[main].text, "other") if main < len(toks) and toks[main].kind == "word" else "other"
        elif shown is not None and shown.kind == "word" and not (j + 1 < len(toks) and toks[j + 1].kind == "."):
            kind = body = "other" if shown.text == "explain" else KINDS.get(shown.text, "other")
            st.kind = kind
        elif shown is not None and _is_name(shown):
            kind = body = st.kind = "other"       # "any other first word or name": EXPLAIN s.f()

    # frames: one per open parenthesis; "q" a query (FROM lists read), "tbl" where a FROM /
    # JOIN / USING / INTO list stands (expect, expect1, after, after1, on, or None)
    stack: list[dict[str, Any]] = [{"q": True, "tbl": None, "from_table": False}]
    lock_updates: set[int] = set()
    i = 0
    n = len(toks)
    while i < n:
        t = toks[i]
        f = stack[-1]
        if i == explain_table:
            f["tbl"] = "expect1"
        if my and t.kind == "dq":
            # "..." is a string, or a name under ANSI_QUOTES: U "where it would be a name that
            # matters: where a table is expected, as a WITH query's name, before ( or ., after ."
            if (f["tbl"] in ("expect", "expect1") and f["q"]) or (i + 1 < n and toks[i + 1].kind in "(.") \
                    or (i > 0 and toks[i - 1].kind == "."):
                raise Unread("a \"...\" that sql_mode decides is a name")
            t = Tok("str", t.text)
        if my and t.kind in ("str", "num") and f["tbl"] in ("expect", "expect1") and f["q"]:
            raise Unread("a string or number where a table is expected")
        if my and t.kind == "op" and t.text == ":=":
            st.events.append(("W", ":="))      # "in MySQL also := (it assigns a user variable)"
        if my and t.kind == "param" and t.text.startswith("@@") and len(t.text) > 2:
            st.events.append(("W", t.text))    # "system variables (@@version) as VERSION()"
        if t.kind == "(":
            nxt = toks[i + 1] if i + 1 < n else None
            sub = nxt is not None and nxt.kind == "word" and nxt.text in SUBQUERY_START
            from_table = f["tbl"] in ("expect", "expect1")
            if marks.get(i) == "query" or sub:
                stack.append({"q": True, "tbl": None, "from_table": from_table})
            elif f["tbl"] == "expect":        # a parenthesised join
                stack.append({"q": True, "tbl": "expect", "from_table": True})
            else:
                stack.append({"q": False, "tbl": None, "from_table": False})
            i += 1
            continue
        if t.kind == ")":
            done = stack.pop()
            if done["from_table"]:
                stack[-1]["tbl"] = "after"
            i += 1
            continue
        if t.kind == ",":
            if f["tbl"] in ("after", "on"):
                f["tbl"] = "expect"
            elif f["tbl"] in ("after1", "expect1"):
                f["tbl"] = None
            i += 1
            continue
        if t.kind == "str" and f["tbl"] in ("expect", "expect1") and dialect == "sqlite":
            # AMBIGUITY: SQLite reads a string where a table is expected as the table's
            # name (FROM 'secret'); the document does not list it. Taken: U, as for a
            # name the check cannot compare with certainty.
            raise Unread("a string where a table is expected")
        if not _is_name(t):
            if f["tbl"] in ("expect", "expect1"):
                f["tbl"] = None
            i += 1
            continue
        w = t.text if t.kind == "word" else None
        # a keyword where a table is expected names the table: SQLite's grammar takes the join
        # words LEFT, RIGHT, FULL, INNER, OUTER, CROSS, NATURAL as names (its nm rule takes
        # JOIN_KW), and its parser falls back to a name for most others (FOR, ...).
        # AMBIGUITY: PostgreSQL and MySQL refuse such a text, as they refuse UPDATE, USING, AS
        # or ON there (FROM update, TABLE using); the document does not say. Taken: the name,
        # the reading that reports more; in SQLite every word but those that begin a subquery
        # or the clause words FROM and INTO.
        at_table = f["tbl"] in ("expect", "expect1")
        named_here = at_table and w is not None and (
            (dialect == "sqlite" and w not in ("from", "into", "select", "values", "table", "with"))
            or (w in JOIN_WORDS | {"update", "using", "as", "on"} and w != "join"))
        # the locking clause: FOR UPDATE, FOR SHARE, FOR NO KEY UPDATE, FOR KEY SHARE
        if w == "for" and not named_here:
            if _word(toks, i + 1, "update"):
                st.events.append(("L", ""))
                lock_updates.add(i + 1)
            elif _word(toks, i + 1, "share"):
                st.events.append(("L", ""))
            elif _word(toks, i + 1, "no") and _word(toks, i + 2, "key") and _word(toks, i + 3, "update"):
                st.events.append(("L", ""))
                lock_updates.add(i + 3)
            elif _word(toks, i + 1, "key") and _word(toks, i + 2, "share"):
                st.events.append(("L", ""))
        # "none contains a word that writes (...) anywhere": every unquoted word, the parts of
        # a dotted name and aliases included ("a column named update makes a statement not
        # read-only")
        if w in WRITE_WORDS and i not in lock_updates:
            st.events.append(("W", w))
        if marks.get(i) == "cte":
            i += 1
            continue
        if w == "as" and not named_here and i + 1 < n and _is_name(toks[i + 1]) \
                and not _word(toks, i + 1, *SUBQUERY_START, "not", "materialized"):
            # AS name: an alias (its parts' words that write are seen) or CAST's type; a '('
            # after it is the alias's column list or the type's modifiers, never a call (the
            # document: "write AS v(x)")
            parts, j = _chain(toks, i + 1)
            for k in range(i + 1, j, 2):
                if toks[k].kind == "word" and toks[k].text in WRITE_WORDS:
                    st.events.append(("W", toks[k].text))
            i = j
            if i < n and toks[i].kind == "(" and marks.get(i) != "query":
                i = _matching(toks, i) + 1
            continue
        if my and w in MY_SKIP and f["tbl"] in ("expect", "expect1"):
            i += 1          # INSERT LOW_PRIORITY IGNORE INTO t, UPDATE IGNORE t: the table follows
            continue
        if my and i == first and w in ("insert", "replace"):
            # "REPLACE and INSERT are insert (their table is read with or without INTO)"
            f["tbl"] = "expect1"
            f["write"] = True
            i += 1
            continue
        if w == "in" and dialect == "sqlite" and i + 1 < n and toks[i + 1].kind == "str":
            # lang_expr.html: "expr IN schema-name.table-name"; SQLite takes a string for a name
            # there as in FROM: U, as above
            raise Unread("a string where IN's table is expected")
        if w == "in" and dialect == "sqlite" and i + 1 < n and _is_name(toks[i + 1]):
            # lang_expr.html: "expr [NOT] IN table-name" (also schema.table, and a table-valued
            # function with its arguments): "every table named" includes it
            parts, j = _chain(toks, i + 1)
            for k in range(i + 1, j, 2):
                if toks[k].kind == "word" and toks[k].text in WRITE_WORDS:
                    st.events.append(("W", toks[k].text))
            if len(parts) > MAX_PARTS or any(toks[k].kind == "badname" for k in range(i + 1, j, 2)):
                raise Unread("a name the check cannot compare")
            if j < n and toks[j].kind == "(":
                st.events.append(("F", parts))
            elif parts[-1] not in ctes or len(parts) > 1:
                st.events.append(("T", parts))
            i = j
            continue
        if w is not None and f["q"] and (w in TABLE_WORDS or (my and w == "straight_join")) and not named_here:
            # "CTE names are not tables", but a written table (INSERT INTO, UPDATE, DELETE FROM,
            # MERGE INTO) is never a WITH query's: the servers write the table of that name
            f["write"] = w in ("into", "update") or (w == "from" and _word(toks, i - 1, "delete"))
            if w == "from":
                # x IS [NOT] DISTINCT FROM y is an operator; SELECT x distinct FROM t a bare label
                f["tbl"] = None if _word(toks, i - 1, "distinct") and _word(toks, i - 2, "is", "not") else "expect"
            elif w in ("join", "straight_join"):      # "STRAIGHT_JOIN joins"
                f["tbl"] = "expect"
            elif w == "into" and not (body in ("insert", "merge") or (not my and (body == "select" or i < first))):
                # INTO names a table in INSERT, MERGE and (but in MySQL: "SELECT ... INTO OUTFILE /
                # DUMPFILE / @var contains into (its target is not a table)") SELECT ... INTO,
                # a WITH query's too. AMBIGUITY: the document says "after INTO"; taken: in those
                # statements, the only ones where a table follows it (elsewhere the statement's
                # tables are not read, or the server refuses the text).
                f["tbl"] = None
            elif w in ("into", "table"):
                f["tbl"] = "expect1"
            elif w == "update":
                # AMBIGUITY: the document says "after UPDATE"; taken: the UPDATE that begins the
                # statement (the one EXPLAIN shows, a WITH query's after its '('), the only one a
                # table follows (FOR UPDATE, DO UPDATE SET, ON DUPLICATE KEY UPDATE, GRANT UPDATE
                # ON and ON UPDATE are followed by none)
                if i not in (first, shown_at) and not (i > 0 and toks[i - 1].kind == "("):
                    f["tbl"] = None
                elif dialect == "sqlite" and _word(toks, i + 1, "or"):
                    f["tbl"] = "expect1"
                    i += 3      # UPDATE OR IGNORE t
                    continue
                else:
                    f["tbl"] = "expect1"
            elif w == "using":
                f["tbl"] = "on" if i + 1 < n and toks[i + 1].kind == "(" else "expect"
            elif w in ("lateral", "only"):
                pass
            elif w == "as":
                pass            # (AS name is read above)
            elif w == "on":
                if f["tbl"] in ("after", "after1"):
                    f["tbl"] = "on"
            elif w in JOIN_WORDS:
                pass
            else:
                f["tbl"] = None
            i += 1
            continue
        parts, j = _chain(toks, i)
        for k in range(i + 2, j, 2):       # the other parts of a dotted name
            if toks[k].kind == "word" and toks[k].text in WRITE_WORDS:
                st.events.append(("W", toks[k].text))
        call = j < n and toks[j].kind == "(" and not (len(parts) == 1 and w is not None and w in not_calls)
        if call and dialect == "sqlite" and len(parts) == 1 and w in OPERATOR_WORDS and i > 0 and (
                toks[i - 1].kind in ("qname", "str", "num", "param", ")")
                or (toks[i - 1].kind == "word" and toks[i - 1].text not in not_calls | TABLE_WORDS)):
            call = False    # x MATCH (y): the operator (lang_expr.html), not a call of match()
        if call or (f["tbl"] in ("expect", "expect1") and f["q"]):
            # "a quoted name with a `.` or `U&` escapes, a PostgreSQL name longer than 63
            # bytes (...), more than 3 name parts" are U. AMBIGUITY: for the names the check
            # compares (tables, functions) or for every name? Taken: the compared ones; a
            # column's or an alias's name decides nothing.
            if len(parts) > MAX_PARTS or any(toks[k].kind == "badname" for k in range(i, j, 2)):
                raise Unread("a name the check cannot compare")
        # "MySQL folds only a function's name": the last part of a call's, to lower case
        called = (*parts[:-1], _fold(parts[-1])) if my else parts
        if f["tbl"] in ("expect", "expect1") and f["q"]:
            if call and f["tbl"] == "expect":
                st.events.append(("F", called))  # FROM f(x): a function, not a table
            elif my and not call and len(parts) == 1 and w == "dual":
                pass                             # "FROM DUAL names no table"
            else:
                if f.get("write") or parts[-1] not in ctes or len(parts) > 1:
                    st.events.append(("T", parts))
                f["write"] = False
                if j < n and toks[j].kind == "(":       # INSERT INTO t (a, b)
                    f["tbl"] = "after1"
                    stack.append({"q": False, "tbl": None, "from_table": False})
                    i = j + 1
                    continue
            f["tbl"] = "after" if f["tbl"] == "expect" else "after1"
            i = j
            continue
        if call:
            st.events.append(("F", called))
        i = j
    return st


def scan(sql: str, dialect: str) -> list[Statement]:
    """The statements of the text, or Unread."""
    if "\x00" in sql:
        # "a NUL byte anywhere": PostgreSQL's protocol and SQLite's prepare end the text there
        # (pglast's lexer too), drivers refuse it
        raise Unread("a NUL byte")
    tokens = {"postgres": pg_tokens, "sqlite": lite_tokens, "mysql": my_tokens}[dialect](sql)
    stmts = split(tokens)
    if not stmts:
        # AMBIGUITY: the document does not say what an empty text (or one of comments
        # only) is. Taken: U, there is no statement to read.
        raise Unread("no statement")
    return [analyze(s, dialect) for s in stmts]


# ---------------------------------------------------------------- the check


def _name_parts(entry: str) -> list[str]:
    return entry.split(".")


def check_sql_policy(spec: dict[str, Any], fail: Callable[[str], None]) -> None:
    """The SqlCheck keys the document lists, with their types."""
    known = {"source", "field", "pointer", "dialect", "read_only", "max_statements", "schemas_in", "tables_in",
             "functions_allowed"}
    if not set(spec) <= known:
        fail(f"SqlCheck: unknown keys {sorted(set(spec) - known)}")
    if spec.get("dialect") not in DIALECTS:
        fail("SqlCheck: dialect is required: postgres, sqlite or mysql")
    if "read_only" in spec and not isinstance(spec["read_only"], bool):
        fail("SqlCheck: read_only is a boolean")
    if "max_statements" in spec:
        m = spec["max_statements"]
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            fail("SqlCheck: max_statements is an integer >= 1")
    for key, most in (("schemas_in", 1), ("tables_in", MAX_PARTS), ("functions_allowed", MAX_PARTS)):
        if key not in spec:
            continue
        if not isinstance(spec[key], list) or not spec[key]:
            fail(f"SqlCheck: {key} is a non-empty list")
        for entry in spec[key]:
            if not isinstance(entry, str) or not 1 <= len(_name_parts(entry)) <= most \
                    or not all(_name_parts(entry)):
                fail(f"SqlCheck: {key} entries are names of at most {most} parts")


def _escaped_too_long(value: str) -> bool:
    """"an escaped JSON string over 64 KB (an unescaped one of any size is scanned)": the
    request's JSON text of the string (orjson, as the Python API sends it) holds an escape
    and is over 64 KB.
    AMBIGUITY: whether 64 KB counts the escaped text or the decoded one, quotes included or
    not. Taken: the escaped text between the quotes, over 65536 bytes."""
    if not any(c in value for c in '"\\') and not any(ord(c) < 0x20 for c in value):
        return False
    return len(orjson.dumps(value)) - 2 > ESCAPED_MAX


def eval_sql(spec: dict[str, Any], value: str, s: str, v: str, show_set: Callable[[list[Any]], str]) -> tuple[str, str]:
    """(T/F/U, the reason text) of a SqlCheck over a string: the checks in the document's
    order (max_statements, read_only, tables_in, schemas_in), the first that does not hold
    speaks."""
    dialect = spec["dialect"]
    unread = ("U", f"{s} = {v} is not SQL the check can read")
    if _escaped_too_long(value):
        return unread
    try:
        stmts = scan(value, dialect)
    except Unread:
        return unread
    count = len(stmts)
    if "max_statements" in spec and count > spec["max_statements"]:
        return "F", f"{s} has {count} statements, more than {spec['max_statements']}"

    def fold(name: str) -> str:
        return _fold(name) if dialect == "sqlite" else name

    def fold_function(parts: list[str]) -> tuple[str, ...]:
        # MySQL: "functions_allowed names compare with the last part in lower case (a routine's
        # name is case-insensitive) and the schema as written"
        return (*parts[:-1], _fold(parts[-1])) if dialect == "mysql" else tuple(fold(p) for p in parts)

    allowed = {fold_function(_name_parts(e)) for e in spec.get("functions_allowed", [])}

    def known(call: tuple[str, ...]) -> bool:
        return (len(call) == 1 and call[0] in BUILTIN[dialect]) or call in allowed

    def at(k: int) -> str:
        return f"{s} statement {k + 1} of {count}"

    if spec.get("read_only") is True:
        # AMBIGUITY: the document orders the checks (keys), not the failures inside one
        # statement. Taken: statement by statement, its kind, then its words that write,
        # locking clauses and calls of unknown functions in the order of the text.
        for k, st in enumerate(stmts):
            if st.kind not in QUERY_KINDS:
                return "F", f"{at(k)} is {st.kind}, not read-only"
            for what, data in st.events:
                if what == "W":
                    return "F", f"{at(k)} contains {data}, not read-only"
                if what == "L":
                    return "F", f"{at(k)} locks rows (FOR UPDATE / SHARE), not read-only"
                if what == "F" and not known(data):
                    return "F", f"{at(k)} calls function {'.'.join(data)}, not known to be read-only"
    if "tables_in" in spec or "schemas_in" in spec:
        listed = {tuple(fold(p) for p in _name_parts(e)) for e in spec.get("tables_in", [])}
        schemas = {fold(e) for e in spec.get("schemas_in", [])}
        # "with tables_in or schemas_in: a statement whose tables are not read (DDL, COPY,
        # ...), an unqualified table under schemas_in (...), a call of an unknown function"
        # are U. AMBIGUITY: the document does not order a U against an F. Taken: a statement
        # is decided by the first of its tables and calls, in the order of the text, that
        # does not hold (one whose tables are not read is U); the text is F when one
        # statement is F (the first), else U when one is U: a table named outside the set
        # is outside it whatever another statement does (F and U is F).
        first_unread = None
        for k, st in enumerate(stmts):
            verdict = None if st.kind in TABLE_KINDS else unread
            for what, data in st.events if verdict is None else ():
                if what == "F" and not known(data):
                    verdict = unread
                elif what == "T" and "tables_in" in spec and data not in listed:
                    verdict = "F", f"{at(k)} names table {'.'.join(data)}, not in {show_set(spec['tables_in'])}"
                elif what == "T" and "schemas_in" in spec and len(data) < 2:
                    verdict = unread
                elif what == "T" and "schemas_in" in spec and data[-2] not in schemas:
                    verdict = "F", (f"{at(k)} names table {'.'.join(data)}, whose schema {data[-2]} "
                                    f"is not in {show_set(spec['schemas_in'])}")
                if verdict is not None:
                    break
            if verdict is not None and verdict[0] == "F":
                return verdict
            if verdict is not None and first_unread is None:
                first_unread = verdict
        if first_unread is not None:
            return first_unread
    return "T", f"{s} = {v} passes the SQL check"

