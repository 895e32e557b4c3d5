"""MCP 2026-07-28 on the wire, without I/O: what a request of that revision carries, how it
is told apart from the handshake revisions, which HTTP headers mirror its body, and the
results the proxy writes in it. The session core (session.py), the HTTP front and guard()
read the protocol from here and nowhere else (docs/mcp.md, "Protocol revisions", says where
each fact was taken from: the official Python SDK 2.x, `mcp_types` and `mcp.shared.inbound`).

- **The envelope.** A 2026 request is self-contained: `params._meta` carries
  `io.modelcontextprotocol/protocolVersion` (the key alone marks the revision, as the SDK's
  dual-era servers decide), `…/clientCapabilities` (required) and `…/clientInfo`
  (optional). There is no `initialize`, no session, and no request from the server to the
  client: a server that needs input answers `{"resultType": "input_required",
  "inputRequests": {...}, "requestState": "..."}` and the client retries the request with
  `inputResponses` and the state echoed. `envelope()` reads and checks the envelope;
  anything it cannot read is refused with the SDK's error codes (-32602, -32022).
- **Headers (Streamable HTTP).** `MCP-Protocol-Version`, `Mcp-Method` and, for tools/call,
  prompts/get and resources/read, `Mcp-Name` mirror the body; a tool's arguments whose
  input schema carries `x-mcp-header` are mirrored in `Mcp-Param-<token>`. An
  intermediary may route by them, so `check_headers()` refuses (-32020, HTTP 400) a request
  whose headers are missing, repeated or disagree with the body; `upstream_headers()` builds
  them for an HTTP upstream from the body that was decided, never from what the client sent.

Header values that are not plain printable ASCII travel as `=?base64?<standard base64 of
UTF-8>?=` (canonical base64 only); a value that does not decode never matches.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping, Optional

MODERN_VERSIONS = ("2026-07-28",)
HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE = HANDSHAKE_VERSIONS[-1]
LATEST_MODERN = MODERN_VERSIONS[-1]

VERSION_KEY = "io.modelcontextprotocol/protocolVersion"
CLIENT_INFO_KEY = "io.modelcontextprotocol/clientInfo"
CAPABILITIES_KEY = "io.modelcontextprotocol/clientCapabilities"
LOG_LEVEL_KEY = "io.modelcontextprotocol/logLevel"
SERVER_INFO_KEY = "io.modelcontextprotocol/serverInfo"
SUBSCRIPTION_ID_KEY = "io.modelcontextprotocol/subscriptionId"
RESERVED_PREFIX = "io.modelcontextprotocol/"

# JSON-RPC error codes (mcp_types.jsonrpc)
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
HEADER_MISMATCH = -32020
MISSING_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022
# the HTTP status of an error answer (mcp.shared.inbound.ERROR_CODE_HTTP_STATUS)
_HTTP_STATUS = {-32700: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
                MISSING_CAPABILITY: 400, UNSUPPORTED_VERSION: 400, METHOD_NOT_FOUND: 404}

VERSION_HEADER = "mcp-protocol-version"
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
PARAM_PREFIX = "mcp-param-"
PARAM_HEADER = "Mcp-Param-"
X_MCP_HEADER = "x-mcp-header"
ROUTING_HEADERS = (VERSION_HEADER, METHOD_HEADER, NAME_HEADER)
# method -> the params key its Mcp-Name header mirrors
NAME_BEARING = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
# the methods whose result may be input_required (mcp_types.methods.INPUT_REQUIRED_METHODS)
INPUT_REQUIRED_METHODS = frozenset(("tools/call", "prompts/get", "resources/read"))
# the methods whose 2026 results carry ttlMs and cacheScope (mcp_types.methods.CACHEABLE_METHODS)
CACHEABLE_METHODS = frozenset(("prompts/list", "resources/list", "resources/read", "resources/templates/list",
                               "server/discover", "tools/list"))
MAX_HEADER_VALUE = 8192   # characters of one mirrored header value the proxy will decode


@dataclass(frozen=True)
class Envelope:
    """What a 2026 request says about its client: the protocol version, the capabilities it
    declares for this request (an object), and its self-reported client info (or None)."""

    version: str
    capabilities: Mapping[str, Any]
    client_info: Any = None


@dataclass(frozen=True)
class Refusal:
    """A request the proxy refuses as a JSON-RPC error (code, message, data)."""

    code: int
    message: str
    data: Any = None

    @property
    def http_status(self) -> int:
        """The HTTP status this refusal is sent with (the SDK's mapping)."""
        return http_status(self.code)

    def error(self, id_: Any) -> dict[str, Any]:
        """The JSON-RPC error answer to the request with id `id_`."""
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return {"jsonrpc": "2.0", "id": id_, "error": err}


def http_status(code: Any) -> int:
    """The HTTP status of a JSON-RPC error answer with this code (200 when none is assigned)."""
    return _HTTP_STATUS.get(code, 200) if isinstance(code, int) else 200


# ---------------------------------------------------------------- the envelope


def meta_of(msg: Any) -> Optional[dict[str, Any]]:
    """params._meta of a message, when it is an object."""
    params = msg.get("params") if isinstance(msg, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    return meta if isinstance(meta, dict) else None


def is_modern(msg: Any) -> bool:
    """Whether a message is of the 2026 revision: its params._meta holds the protocol version
    key (whatever its value: a half-built envelope is refused by envelope(), not taken for a
    handshake-era request). `initialize` never is: the handshake does not exist in 2026."""
    meta = meta_of(msg)
    return meta is not None and VERSION_KEY in meta and msg.get("method") != "initialize"


def envelope(msg: Any) -> Envelope | Refusal:
    """The envelope of a request is_modern() says is of the 2026 revision, or why it is
    refused: -32602 for a missing or malformed key, -32022 (with the supported versions) for
    a version the proxy does not speak."""
    meta = meta_of(msg)
    if meta is None:
        return Refusal(INVALID_PARAMS, f"params._meta must be an object carrying {VERSION_KEY!r} and "
                                       f"{CAPABILITIES_KEY!r}")
    missing = [k for k in (VERSION_KEY, CAPABILITIES_KEY) if k not in meta]
    if missing:
        return Refusal(INVALID_PARAMS, f"params._meta is missing the required key(s): {', '.join(missing)}")
    version = meta[VERSION_KEY]
    if not isinstance(version, str):
        return Refusal(INVALID_PARAMS, "the protocol version in params._meta must be a string")
    if version not in MODERN_VERSIONS:
        return Refusal(UNSUPPORTED_VERSION, "Unsupported protocol version",
                       {"supported": list(MODERN_VERSIONS), "requested": version})
    capabilities = meta[CAPABILITIES_KEY]
    if not isinstance(capabilities, dict):
        return Refusal(INVALID_PARAMS, f"params._meta[{CAPABILITIES_KEY!r}] must be an object")
    info = meta.get(CLIENT_INFO_KEY)
    if info is not None and not isinstance(info, dict):
        return Refusal(INVALID_PARAMS, f"params._meta[{CLIENT_INFO_KEY!r}] must be an object")
    return Envelope(version, capabilities, info)


def lent_meta(meta: Any) -> dict[str, Any]:
    """The entries of a client request's _meta the proxy lends to a request it makes on its
    behalf (its own tools/list): the reserved protocol keys and the W3C trace context."""
    if not isinstance(meta, dict) or VERSION_KEY not in meta:
        return {}
    return {k: v for k, v in meta.items()
            if k in (VERSION_KEY, CLIENT_INFO_KEY, CAPABILITIES_KEY) or k in ("traceparent", "tracestate")}


def without_envelope(meta: Mapping[str, Any]) -> dict[str, Any]:
    """_meta without the reserved 2026 keys (what a handshake-era server may be sent)."""
    return {k: v for k, v in meta.items() if not k.startswith(RESERVED_PREFIX)}


# ---------------------------------------------------------------- header values


_SENTINEL = re.compile(r"=\?base64\?(.*)\?=", re.DOTALL)
_PLAIN = re.compile(r"[\x20-\x7e]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def encode_header_value(value: str) -> str:
    """A value as it may travel in a header: itself when plain printable ASCII without edge
    spaces (and not looking like the sentinel), else `=?base64?…?=`."""
    if _PLAIN.fullmatch(value) and value == value.strip() and not _SENTINEL.fullmatch(value):
        return value
    return "=?base64?" + base64.b64encode(value.encode("utf-8", "surrogatepass")).decode("ascii") + "?="


def decode_header_value(value: Optional[str]) -> Optional[str]:
    """The value a header carries: itself, or the decoded sentinel; None when absent, too
    long, or a sentinel that is not canonical base64 of UTF-8 (it then matches nothing)."""
    if value is None or len(value) > MAX_HEADER_VALUE:
        return None
    m = _SENTINEL.fullmatch(value)
    if m is None:
        return value
    payload = m.group(1)
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != payload:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


# ---------------------------------------------------------------- Mcp-Param-* (x-mcp-header)


def x_mcp_headers(schema: Any) -> dict[tuple[str, ...], tuple[str, str]]:
    """path of properties -> (token, JSON type) for each `x-mcp-header` annotation on a
    property reached from the schema's root through `properties` alone, of type string,
    integer or boolean. An invalid annotation anywhere (another position, another type, not
    a token, a token used twice) makes the whole schema declare none: conforming clients
    then send none (mcp.shared.inbound.find_invalid_x_mcp_header)."""
    found: dict[tuple[str, ...], tuple[str, str]] = {}
    seen: set[str] = set()
    for path, node in _positions(schema):
        if X_MCP_HEADER not in node:
            continue
        token, kind = node[X_MCP_HEADER], node.get("type")
        if not path or not isinstance(token, str) or not _TOKEN.fullmatch(token) or \
                kind not in ("string", "integer", "boolean") or token.lower() in seen:
            return {}
        seen.add(token.lower())
        found[path] = (token, kind)
    return found


_SINGLE = frozenset(("items", "contains", "unevaluatedItems", "additionalProperties", "propertyNames",
                     "unevaluatedProperties", "not", "if", "then", "else", "contentSchema"))
_LISTS = frozenset(("allOf", "anyOf", "oneOf", "prefixItems"))
_MAPS = frozenset(("patternProperties", "dependentSchemas", "$defs", "definitions"))
_MAX_POSITIONS = 10000   # a schema the proxy walks has at most this many positions


def _positions(root: Any) -> Iterator[tuple[Optional[tuple[str, ...]], dict[str, Any]]]:
    """(path through `properties` from the root, or None once another keyword was crossed;
    the schema object) for each schema position, iteratively and bounded."""
    stack: list[tuple[Optional[tuple[str, ...]], Any]] = [((), root)]
    count = 0
    while stack and count < _MAX_POSITIONS:
        path, node = stack.pop()
        if not isinstance(node, dict):
            continue
        count += 1
        yield path, node
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, sub in value.items():
                    stack.append(((*path, name) if path is not None else None, sub))
            elif key in _SINGLE:
                stack.append((None, value))
            elif key in _LISTS and isinstance(value, list):
                stack.extend((None, sub) for sub in value)
            elif key in _MAPS and isinstance(value, dict):
                stack.extend((None, sub) for sub in value.values())


def _at(arguments: Any, path: tuple[str, ...]) -> Any:
    node = arguments
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node


def _rendered(value: Any) -> Optional[str]:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        try:
            return str(value)
        except ValueError:   # an integer beyond str()'s digit limit has no header form
            return None
    return None


def param_headers(schema: Any, arguments: Any) -> dict[str, str]:
    """The Mcp-Param-* headers a tools/call with these arguments carries under this input
    schema (mcp.shared.inbound.mcp_param_headers): one per annotated property present."""
    out: dict[str, str] = {}
    for path, (token, _kind) in x_mcp_headers(schema).items():
        rendered = _rendered(_at(arguments, path))
        if rendered is not None:
            out[PARAM_HEADER + token] = encode_header_value(rendered)
    return out


_DECIMAL = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _param_matches(kind: str, value: Any, rendered: str, header: str) -> bool:
    if kind == "integer" and not isinstance(value, bool) and \
            (isinstance(value, int) or (isinstance(value, float) and value.is_integer())) and \
            _DECIMAL.fullmatch(header):
        whole, _, fraction = header.partition(".")
        return not fraction.strip("0") and int(whole) == int(value)
    return header == rendered


def check_param_headers(schema: Any, arguments: Any, headers: Mapping[str, list[str]]) -> Optional[Refusal]:
    """Refusal when a tools/call's Mcp-Param-* headers (lower-cased name -> every value sent)
    disagree with its arguments under the tool's input schema: a header for an absent
    argument, an argument without its header, a repeated header, a value that differs."""
    for path, (token, kind) in x_mcp_headers(schema).items():
        name = PARAM_HEADER + token
        values = headers.get(name.lower(), [])
        value = _at(arguments, path)
        where = ".".join(path)
        if len(values) > 1:
            return Refusal(HEADER_MISMATCH, f"{name} header appears more than once")
        rendered = _rendered(value) if value is not None else None
        if rendered is None:
            if values:
                return Refusal(HEADER_MISMATCH, f"{name} header is present but the body's argument {where!r} is not")
            continue
        if not values:
            return Refusal(HEADER_MISMATCH, f"{name} header is missing but the body's argument {where!r} is present")
        decoded = decode_header_value(values[0])
        if decoded is None:
            return Refusal(HEADER_MISMATCH, f"{name} header is malformed")
        if not _param_matches(kind, value, rendered, decoded):
            return Refusal(HEADER_MISMATCH, f"{name} header does not match the body's argument {where!r}")
    return None


# ---------------------------------------------------------------- headers vs body


def fold_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Header lines as lower-cased name -> every value, in order (duplicates kept visible)."""
    folded: dict[str, list[str]] = {}
    for name, value in pairs:
        folded.setdefault(name.lower(), []).append(value)
    return folded


def check_headers(headers: Mapping[str, list[str]], msg: Any, schema: Any = None) -> Optional[Refusal]:
    """Refusal (-32020, HTTP 400) when a 2026 request's HTTP headers (fold_headers()) do not
    mirror its body: a routing header sent twice; MCP-Protocol-Version absent or not the
    envelope's version; Mcp-Method absent or not the method; for a name-bearing method whose
    body names its target, Mcp-Name absent or not that name (after decoding); and, when the
    tool's input schema is known (`schema`), Mcp-Param-* against the arguments. The body is
    what is decided and forwarded either way: the headers are only checked."""
    for name in ROUTING_HEADERS:
        if len(headers.get(name, ())) > 1:
            return Refusal(HEADER_MISMATCH, f"the {name} header appears more than once")
    meta = meta_of(msg) or {}
    version = headers.get(VERSION_HEADER, [None])[0]
    if version is None or version != meta.get(VERSION_KEY):
        return Refusal(HEADER_MISMATCH, f"the {VERSION_HEADER} header does not match the protocol version in "
                                        "params._meta")
    method = msg.get("method") if isinstance(msg, dict) else None
    if headers.get(METHOD_HEADER, [None])[0] != method:
        return Refusal(HEADER_MISMATCH, f"the {METHOD_HEADER} header does not match the request's method")
    key = NAME_BEARING.get(method) if isinstance(method, str) else None
    params = msg.get("params") if isinstance(msg, dict) else None
    if key is not None and isinstance(params, dict) and params.get(key) is not None:
        if decode_header_value(headers.get(NAME_HEADER, [None])[0]) != params.get(key):
            return Refusal(HEADER_MISMATCH, f"the {NAME_HEADER} header does not match the request's {key!r}")
    if method == "tools/call" and schema is not None and isinstance(params, dict):
        return check_param_headers(schema, params.get("arguments") or {}, headers)
    return None


def upstream_headers(msg: Any, schema: Any = None) -> dict[str, str]:
    """The mirrored headers for a 2026 request the proxy sends an HTTP upstream, built from
    the body it forwards (and the tool's input schema, for Mcp-Param-*)."""
    meta = meta_of(msg) or {}
    out = {"mcp-protocol-version": str(meta.get(VERSION_KEY)), "mcp-method": str(msg.get("method"))}
    params = msg.get("params") if isinstance(msg, dict) else None
    key = NAME_BEARING.get(msg.get("method"))
    if key is not None and isinstance(params, dict) and isinstance(params.get(key), str):
        out["mcp-name"] = encode_header_value(params[key])
    if msg.get("method") == "tools/call" and schema is not None and isinstance(params, dict):
        out.update(param_headers(schema, params.get("arguments") or {}))
    return out


# ---------------------------------------------------------------- results


def is_input_required(result: Any) -> bool:
    """Whether a result is the 2026 input_required interim result."""
    return isinstance(result, dict) and result.get("resultType") == "input_required"


def completed(method: str, result: Any) -> Any:
    """A handshake-era server's result as a 2026 client must get it: `resultType` (absent
    means complete, but a 2026 server MUST send it) and, for the cacheable methods, the
    cache hints a 2026 result requires (`ttlMs` 0, `cacheScope` private: nothing is
    promised a cache). Anything already there is kept."""
    if not isinstance(result, dict):
        return result
    out = dict(result)
    out.setdefault("resultType", "complete")
    if method in CACHEABLE_METHODS and out["resultType"] == "complete":
        out.setdefault("ttlMs", 0)
        out.setdefault("cacheScope", "private")
    return out


def discover_result(initialize_result: Any) -> dict[str, Any]:
    """server/discover answered for a handshake-era server, from its initialize result:
    its capabilities and instructions, the one modern version the proxy speaks for it."""
    init = initialize_result if isinstance(initialize_result, dict) else {}
    result: dict[str, Any] = {"supportedVersions": list(MODERN_VERSIONS),
                              "capabilities": init.get("capabilities") if isinstance(init.get("capabilities"), dict)
                              else {}}
    if isinstance(init.get("instructions"), str):
        result["instructions"] = init["instructions"]
    if isinstance(init.get("serverInfo"), dict):
        result["_meta"] = {SERVER_INFO_KEY: init["serverInfo"]}
    done: dict[str, Any] = completed("server/discover", result)
    return done
