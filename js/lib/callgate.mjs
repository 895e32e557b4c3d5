// callgate.mjs -- the callgate engine in any JavaScript host with WebAssembly (Node.js,
// browsers, workers): the C core compiled to one wasm module, with the Python engine's
// decisions and reasons. No dependencies and no imports.
//
// One source: this file is js/lib/callgate.mjs of the npm package "callgate". The Python
// wheel's callgate/callgate.mjs is a byte-for-byte copy written by `npm run build`
// (js/scripts/build.mjs) and held to it by the tests (js/test/sources.test.mjs).
//
//   import { Callgate } from "callgate";
//   const cg = await Callgate.load(policy);          // `callgate compile POLICY -o BLOB`, or a
//                                                    // module from `callgate build-wasm`
//   const d = cg.evaluate("process_refund", { amount: 800 }, { role: "agent" });
//   d.decision; d.rule; d.approvalsRequired;         // one call into the module
//   d.reason;                                        // built only when read

/** The version of the engine (the Python package's and the npm package's version). */
export const VERSION = "0.1.0";

const DECISIONS = ["Deny", "Allow", "Elevate", "Deny"];
const WASM_MAGIC = 0x6d736100; // "\0asm"
const BLOB_MAGIC = 0x42504743; // "CGPB"
const EMBED_MAGIC = 0x4d454743; // "CGEM": the trailer of a policy `callgate build-wasm` embedded
const HEADER_SIZE = 80;
const FLAG_PERSO = 1;
const FLAG_DEFAULT_ALLOW = 2;
const NO_NAME = 0xffffffff;
const RAW = Symbol("callgate.rawJson");
const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

// ---------------------------------------------------------------- errors

/** Base class of every error callgate raises. `code` names the cause (the core's error
 * name, e.g. "duplicate_key", "blob_checksum"); `offset` is a byte offset when known. */
export class CallgateError extends Error {
  /** @param {string} message @param {string} [code] @param {number} [offset] */
  constructor(message, code = "invalid", offset = undefined) {
    super(message);
    this.name = "CallgateError";
    this.code = code;
    this.offset = offset;
  }
}

/** A request that cannot be decided: bad JSON, or a value JSON cannot carry (NaN, a
 * cycle). `input` says which text `offset` counts in ("request", "arguments", "context"). */
export class RequestError extends CallgateError {
  /** @param {string} message @param {string} [code] @param {number} [offset] @param {string} [input] */
  constructor(message, code = "invalid", offset = undefined, input = undefined) {
    super(offset !== undefined && input ? `${message} at byte ${offset} of ${input}` : message, code, offset);
    this.name = "RequestError";
    this.input = input;
  }
}

/** A policy that cannot be loaded. `location` is where the problem is ("(blob)" for a
 * compiled policy, "(module)" for a wasm module). */
export class PolicyError extends CallgateError {
  /** @param {string} message @param {string} [location] @param {string} [code] @param {number} [offset] */
  constructor(message, location = "(policy)", code = "invalid", offset = undefined) {
    super(message, code, offset);
    this.name = "PolicyError";
    this.location = location;
  }
}

/** A compiled policy the core refused (corrupt, truncated, another format): `code` is the
 * core's cause (csrc/cg_errors.h: "blob_checksum", "blob_opcode"...), `offset` the byte of
 * the blob at fault. The policy in force before stays in force. */
export class BlobError extends PolicyError {
  /** @param {string} message @param {string} [code] @param {number} [offset] */
  constructor(message, code = "blob", offset = undefined) {
    super(offset !== undefined ? `${message} at byte ${offset}` : message, "(blob)", code, offset);
    this.name = "BlobError";
  }
}

/** The wasm module is not one callgate can use (not wasm, another ABI, no policy), or it ran
 * out of memory. */
export class WasmError extends CallgateError {
  /** @param {string} message @param {string} [code] */
  constructor(message, code = "wasm") {
    super(message, code);
    this.name = "WasmError";
  }
}

// ---------------------------------------------------------------- JSON text as it is

/**
 * JSON text to be decided as it is, byte for byte: `evaluate(tool, rawJson('{"amount": 800.0}'), ...)`.
 * A JavaScript number has no `800.0` (nor `-0.0`) form, so a reason quoting a value read from
 * an object says `800`; from the text, it says what the text says (as the Python engine,
 * which keeps `800.0`, does). The core reads the text as strictly as any request.
 * @param {string} text @returns {{readonly text: string}}
 */
export function rawJson(text) {
  if (typeof text !== "string") throw new TypeError("rawJson() takes JSON text (a string)");
  return Object.freeze({ [RAW]: true, text });
}

function part(value) {
  if (value !== null && typeof value === "object" && value[RAW] === true) return value.text;
  return undefined;
}

/** The request the core reads, `["tool", "role", args, agent, resource, context?]`, as text. */
export function requestText(tool, args, who) {
  if (typeof tool !== "string") throw new RequestError("the tool name must be a string", "type");
  if (who === null || typeof who !== "object") throw new RequestError("the caller ({role, ...}) must be an object", "type");
  if (typeof who.role !== "string") throw new RequestError("the role must be a string", "type");
  const values = [args ?? {}, who.agentAttributes ?? {}, who.resourceAttributes ?? {}];
  if (who.context !== undefined && who.context !== null) values.push(who.context);
  let raw = false;
  for (const v of values) if (part(v) !== undefined) raw = true;
  if (!raw) {
    let text;
    try {
      text = JSON.stringify([tool, who.role, ...values]);
    } catch (e) {
      return slowText([tool, who.role, ...values], e);
    }
    if (text.includes("null")) checkFinite(values);
    return text;
  }
  const pieces = [JSON.stringify(tool), JSON.stringify(who.role)];
  for (const v of values) {
    const t = part(v);
    if (t !== undefined) pieces.push(t);
    else pieces.push(requestValue(v));
  }
  return `[${pieces.join(",")}]`;
}

function requestValue(v) {
  let text;
  try {
    text = JSON.stringify(v);
  } catch (e) {
    return slowText(v, e);
  }
  if (text.includes("null")) checkFinite([v]);
  return text;
}

// JSON.stringify writes NaN and Infinity as null: only when a null shows up, look for them
function checkFinite(values) {
  const seen = new Set();
  const walk = (v) => {
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new RequestError("NaN and Infinity are not JSON", "nonfinite");
    } else if (v !== null && typeof v === "object" && !seen.has(v)) {
      seen.add(v);
      if (typeof v.toJSON === "function") return;
      for (const k of Object.keys(v)) walk(v[k]);
    }
  };
  values.forEach(walk);
}

// what JSON.stringify refuses: a BigInt is written as its exact digits (the core keeps
// integers beyond 64 bits exact); a cycle is a RequestError
function slowText(value, cause) {
  const stack = [];
  const write = (v) => {
    if (typeof v === "bigint") return v.toString();
    if (typeof v === "number") {
      if (!Number.isFinite(v)) throw new RequestError("NaN and Infinity are not JSON", "nonfinite");
      return JSON.stringify(v);
    }
    if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
    if (typeof v.toJSON === "function") return write(v.toJSON());
    if (part(v) !== undefined) return part(v);
    if (stack.includes(v)) throw new RequestError("a value refers to itself (a cycle): not JSON", "type");
    stack.push(v);
    let out;
    if (Array.isArray(v)) out = `[${v.map((x) => (x === undefined || typeof x === "function" ? "null" : write(x))).join(",")}]`;
    else {
      const items = [];
      for (const k of Object.keys(v)) {
        const x = v[k];
        if (x === undefined || typeof x === "function" || typeof x === "symbol") continue;
        items.push(`${JSON.stringify(k)}:${write(x)}`);
      }
      out = `{${items.join(",")}}`;
    }
    stack.pop();
    return out;
  };
  try {
    return write(value);
  } catch (e) {
    if (e instanceof CallgateError) throw e;
    throw new RequestError(`the request is not JSON (${cause?.message ?? e.message})`, "type");
  }
}

// ---------------------------------------------------------------- the policy blob

/**
 * What a compiled policy says beyond decisions, read from its blob (the layout of
 * csrc/cg_opcodes.h, already verified by the module): its version, the tools and roles it
 * names, rule ids, and which tools a role could ever be allowed to call (the listing rule of
 * docs/mcp.md, as the Python gate's `visible`).
 */
export class PolicyInfo {
  /** @param {Uint8Array} blob */
  constructor(blob) {
    const b = blob;
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const u32 = (at) => {
      if (at + 4 > b.byteLength) throw new BlobError("blob shorter than its sections", "blob_truncated", at);
      return dv.getUint32(at, true);
    };
    if (b.byteLength < HEADER_SIZE || u32(0) !== BLOB_MAGIC) throw new BlobError("not a callgate policy blob", "blob_magic", 0);
    this.format = dv.getUint16(4, true);
    this.flags = dv.getUint16(6, true);
    const n = (slot) => u32(slot);
    const counts = {
      strings: n(16), fields: n(20), sets: n(24), members: n(28), numbers: n(32), entries: n(36),
      rules: n(40), code: n(44), strdata: n(48), version: n(52), policyRules: n(56), words: n(60), defaults: n(64),
    };
    let at = HEADER_SIZE;
    const place = (size) => { const start = at; at += size; return start; };
    const strings = place(8 * counts.strings);
    place(12 * counts.fields);
    place(12 * counts.sets);
    place(4 * counts.members);
    place(8 * counts.numbers);
    const entries = place(16 * counts.entries);
    const rules = place(16 * counts.rules);
    place(4 * counts.words);
    const defaults = place(12 * counts.defaults);
    const names = place(4 * counts.policyRules);
    place(counts.code);
    const strdata = place(counts.strdata);
    if (at !== b.byteLength) throw new BlobError("section sizes do not add up to the length", "blob_sizes", 8);
    const str = (sid) => {
      const off = u32(strings + 8 * sid), len = u32(strings + 8 * sid + 4);
      return decoder.decode(b.subarray(strdata + off, strdata + off + len));
    };
    /** The policy's `version`. */
    this.version = str(counts.version);
    /** "perso" or "strict". */
    this.semantics = this.flags & FLAG_PERSO ? "perso" : "strict";
    /** The default action: "Allow" or "Deny". */
    this.defaultAction = this.flags & FLAG_DEFAULT_ALLOW ? "Allow" : "Deny";
    /** Each policy rule's `id` (null when it has none), by rule index. */
    this.ruleIds = [];
    for (let i = 0; i < counts.policyRules; i++) {
      const sid = u32(names + 4 * i);
      this.ruleIds.push(sid === NO_NAME ? null : str(sid));
    }
    this._pairs = new Map(); // "tool\0role" -> [{decision, conditional}]
    const tools = new Set(), roles = new Set();
    for (let e = 0; e < counts.entries; e++) {
      const rec = entries + 16 * e;
      const tool = str(u32(rec)), role = str(u32(rec + 4));
      const first = u32(rec + 8), count = u32(rec + 12);
      tools.add(tool);
      roles.add(role);
      const list = [];
      for (let r = first; r < first + count; r++) {
        const rule = rules + 16 * r;
        list.push({ index: u32(rule), decision: DECISIONS[u32(rule + 12) & 3], conditional: u32(rule + 8) !== 0 });
      }
      this._pairs.set(`${tool}\0${role}`, list);
    }
    this._defaults = new Map(); // tool -> {decision, tier}
    for (let k = 0; k < counts.defaults; k++) {
      const rec = defaults + 12 * k;
      const tool = str(u32(rec));
      tools.add(tool);
      this._defaults.set(tool, { decision: DECISIONS[u32(rec + 4) & 3], approvals: (u32(rec + 4) >> 2) & 3, tier: str(u32(rec + 8)) });
    }
    /** The tools the compiled policy names (its rules' and its tier defaults'), sorted. */
    this.tools = [...tools].sort();
    /** The roles its rules name, sorted. */
    this.roles = [...roles].sort();
  }

  /** The tool's tier, from the policy's tool_tiers (null when it has none or is decided by default_action). */
  tierOf(tool) {
    return this._defaults.get(tool)?.tier ?? null;
  }

  /**
   * Could `role` ever be allowed to call `tool`? (docs/mcp.md, "Listing"; the Python
   * gate's Meaning.visible): an unconditional deny rule for the pair hides the tool; else
   * any allow or elevate rule shows it; else the tool's default (its tier's, or
   * default_action) shows it when it allows or elevates.
   * @param {string} tool @param {string} role @returns {boolean}
   */
  visible(tool, role) {
    let grants = false;
    for (const r of this._pairs.get(`${tool}\0${role}`) ?? []) {
      if (r.decision === "Deny") {
        if (!r.conditional) return false;
      } else grants = true;
    }
    if (grants) return true;
    const d = this._defaults.get(tool);
    return (d ? d.decision : this.defaultAction) !== "Deny";
  }
}

function u32le(bytes, at) {
  return (bytes[at] | (bytes[at + 1] << 8) | (bytes[at + 2] << 16) | (bytes[at + 3] << 24)) >>> 0;
}

function asBytes(source, what) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  throw new TypeError(`${what} must be bytes (a Uint8Array, Buffer or ArrayBuffer)`);
}

/** "module" for wasm bytes, "blob" for a compiled policy, else null. */
export function kindOf(bytes) {
  if (bytes.length >= 4 && u32le(bytes, 0) === WASM_MAGIC) return "module";
  if (bytes.length >= 4 && u32le(bytes, 0) === BLOB_MAGIC) return "blob";
  return null;
}

async function readSource(source, what) {
  if (typeof source === "string" || source instanceof URL) {
    const url = source instanceof URL ? source : null;
    if (url && url.protocol !== "file:" || (!url && /^(https?|blob|data):/.test(source))) {
      const response = await fetch(source);
      if (!response.ok) throw new CallgateError(`${what} ${source}: HTTP ${response.status}`, "fetch");
      return new Uint8Array(await response.arrayBuffer());
    }
    if (typeof process === "object" && process.versions?.node) {
      const { readFile } = await import("node:fs/promises");
      return new Uint8Array(await readFile(source));
    }
    const response = await fetch(source);
    if (!response.ok) throw new CallgateError(`${what} ${source}: HTTP ${response.status}`, "fetch");
    return new Uint8Array(await response.arrayBuffer());
  }
  return asBytes(source, what);
}

let bundled; // the compiled callgate.wasm beside this file, compiled once per process
async function bundledModule() {
  if (!bundled) {
    bundled = readSource(new URL("./callgate.wasm", import.meta.url), "the bundled callgate.wasm")
      .then((bytes) => WebAssembly.compile(bytes))
      .catch((e) => {
        bundled = undefined;
        throw e;
      });
  }
  return bundled;
}

// ---------------------------------------------------------------- one instance, one policy

/** One instance of the module with one policy loaded: what a decision's reason is asked of
 * (a reload makes a new one, so a decision keeps explaining itself by the policy that made it). */
class PolicyState {
  constructor(instance, blob, embedded) {
    this.x = /** @type {any} */ (instance.exports);
    for (const name of ["memory", "alloc", "dealloc", "init", "request_buffer", "decide", "explain"]) {
      if (!(name in this.x)) throw new WasmError(`the module lacks the export ${name}: not a callgate module`, "abi");
    }
    this.bufPtr = 0;
    this.bufSize = 0;
    this.blob = blob ?? embedded;
    if (!this.blob) throw new WasmError("the module has no embedded policy and none was given (callgate compile POLICY -o BLOB)", "no_policy");
    const reply = blob ? this.#initWith(blob) : this.take(this.x.init(0, 0));
    if (reply.error) throw new BlobError(`the module refused the policy: ${reply.error}`, reply.code, reply.offset);
    this.info = new PolicyInfo(this.blob);
  }

  #initWith(blob) {
    const x = this.x;
    const ptr = x.alloc(blob.length);
    if (ptr === 0) throw new WasmError("the module is out of memory", "memory");
    new Uint8Array(x.memory.buffer, ptr, blob.length).set(blob);
    try {
      return this.take(x.init(ptr, blob.length));
    } finally {
      x.dealloc(ptr, blob.length);
    }
  }

  /** Encode text into the module's reusable request buffer; returns its byte length. */
  write(text) {
    const need = text.length * 3; // UTF-8 worst case
    if (need > this.bufSize) {
      this.bufSize = Math.max(need, 4096);
      this.bufPtr = this.x.request_buffer(this.bufSize);
      if (this.bufPtr === 0) {
        this.bufSize = 0;
        throw new WasmError("the module is out of memory", "memory");
      }
    }
    const view = new Uint8Array(this.x.memory.buffer, this.bufPtr, this.bufSize);
    return encoder.encodeInto(text, view).written;
  }

  decide(request) {
    const n = this.write(request);
    const rc = this.x.decide(this.bufPtr, n);
    if (rc < 0) this.explain(request); // throws the module's error with its offset
    return rc;
  }

  explain(request) {
    const reply = this.take(this.x.explain(this.bufPtr, this.write(request)));
    if (reply.error) throw new RequestError(reply.error, reply.code, reply.offset, reply.input);
    return reply;
  }

  /** Read a response (u32 length + JSON) and free it. */
  take(resp) {
    if (resp === 0) throw new WasmError("the module returned no response (out of memory)", "memory");
    const x = this.x;
    const at = resp >>> 0;
    const n = new DataView(x.memory.buffer).getUint32(at, true);
    const text = decoder.decode(new Uint8Array(x.memory.buffer, at + 4, n));
    x.dealloc(resp, 4 + n);
    return JSON.parse(text);
  }
}

function embeddedBlob(instance) {
  // `callgate build-wasm` puts the blob at the top of the initial memory: blob, u32 length, "CGEM"
  const memory = instance.exports.memory;
  if (!(memory instanceof WebAssembly.Memory)) return undefined;
  const bytes = new Uint8Array(memory.buffer);
  const end = bytes.length;
  if (end < 8 || u32le(bytes, end - 4) !== EMBED_MAGIC) return undefined;
  const len = u32le(bytes, end - 8);
  if (len > end - 8) return undefined;
  return bytes.slice(end - 8 - len, end - 8);
}

// ---------------------------------------------------------------- decisions

/** One decision: `decision` ("Allow" | "Deny" | "Elevate"), `rule` (the deciding rule's index
 * from 0; null when a default decided), `approvalsRequired` (1-3 for an Elevate, else 0),
 * and `reason`, built by the policy that decided when first read. */
export class Decision {
  #state;
  #request;
  #reason;

  constructor(rc, state, request) {
    /** "Allow", "Deny" or "Elevate". */
    this.decision = DECISIONS[rc & 3];
    /** The deciding rule's index from 0, or null when a default decided. */
    this.rule = rc >= 16 ? (rc >> 4) - 1 : null;
    /** The approvals an Elevate requires (1-3); 0 for Allow and Deny. */
    this.approvalsRequired = (rc >> 2) & 3;
    this.#state = state;
    this.#request = request;
  }

  /** True only for Allow. */
  get allowed() {
    return this.decision === "Allow";
  }

  /** The deciding rule's `id`, when it has one. */
  get ruleId() {
    return this.rule === null ? null : this.#state.info.ruleIds[this.rule] ?? null;
  }

  /** Why, in the engine's words (the Python engine's reason, character for character). */
  get reason() {
    if (this.#reason === undefined) {
      if (typeof this.#state === "string") this.#reason = this.#state;
      else this.#reason = this.#state.explain(this.#request).reason;
    }
    return this.#reason;
  }

  /** The request text the core read (for the audit trail). */
  get request() {
    return this.#request;
  }

  /** {decision, reason, rule, approvalsRequired}. */
  toJSON() {
    return { decision: this.decision, reason: this.reason, rule: this.rule, approvalsRequired: this.approvalsRequired };
  }
}

/** A Deny the host made itself (the audit trail refusing, say): its reason is given. */
export function hostDecision(decision, reason) {
  const d = new Decision(DECISIONS.indexOf(decision), reason, null);
  return d;
}

// ---------------------------------------------------------------- the engine

/**
 * The engine: a wasm instance with a compiled policy loaded.
 *
 *   await Callgate.load(blobBytes)                  the bundled module with this compiled policy
 *   await Callgate.load(moduleBytes)                a `callgate build-wasm` module (its policy embedded)
 *   await Callgate.load("policy.blob")              a file (Node) or a URL (browsers) of either
 *   await Callgate.load(wasmBytes, blobBytes)       a given callgate.wasm with this policy
 *   await Callgate.load(blob, { audit })            with an audit trail (callgate/audit)
 */
export class Callgate {
  #module;
  #state;
  #audit;

  constructor(module, state, audit) {
    this.#module = module;
    this.#state = state;
    this.#audit = audit ?? null;
    if (this.#audit) this.#audit.attach(this);
  }

  /**
   * @param {BufferSource | string | URL} policy a compiled blob, a build-wasm module, or where to read one
   * @param {BufferSource | {module?: BufferSource | string | URL | WebAssembly.Module, audit?: any}} [second]
   *   the policy blob (when `policy` is a callgate.wasm), or options
   * @returns {Promise<Callgate>}
   */
  static async load(policy, second = undefined) {
    let options = {};
    let blob;
    let moduleSource;
    const first = await readSource(policy, "policy");
    const isBytes = second instanceof ArrayBuffer || ArrayBuffer.isView(second);
    if (isBytes) {
      moduleSource = first;
      blob = asBytes(second, "the policy blob");
    } else {
      options = second ?? {};
      const kind = kindOf(first);
      if (kind === "module") moduleSource = first;
      else if (kind === "blob") {
        blob = first;
        moduleSource = options.module;
      } else throw new PolicyError("not a compiled policy (callgate compile) nor a wasm module (callgate build-wasm)", "(policy)", "blob_magic", 0);
    }
    let module;
    if (moduleSource === undefined) module = await bundledModule();
    else if (moduleSource instanceof WebAssembly.Module) module = moduleSource;
    else module = await WebAssembly.compile(await readSource(moduleSource, "module"));
    const instance = await WebAssembly.instantiate(module, {});
    const state = new PolicyState(instance, blob, blob ? undefined : embeddedBlob(instance));
    return new Callgate(module, state, options.audit);
  }

  /** The module's ABI version (callgate_abi_version(): it changes with the C API and the blob format). */
  get abiVersion() {
    return this.#state.x.callgate_abi_version();
  }

  /** The compiled policy in force (its bytes). */
  get blob() {
    return this.#state.blob;
  }

  /** What the policy in force says beyond decisions: version, tools, roles, visibility. */
  get policy() {
    return this.#state.info;
  }

  /** The policy's `version`. */
  get policyVersion() {
    return this.#state.info.version;
  }

  /** The audit trail attached at load, or null. */
  get audit() {
    return this.#audit;
  }

  /** Could `role` ever be allowed to call `tool`? (what a tools/list shows a role) */
  visible(tool, role) {
    return this.#state.info.visible(tool, role);
  }

  /**
   * Replace the policy, atomically: decisions already made keep their own policy for their
   * reasons; a refused blob leaves the policy in force (BlobError).
   * @param {BufferSource | string | URL} policy a compiled blob (or where to read one)
   */
  async reload(policy) {
    const blob = await readSource(policy, "policy");
    if (kindOf(blob) !== "blob") throw new PolicyError("reload() takes a compiled policy (callgate compile POLICY -o BLOB)", "(policy)", "blob_magic", 0);
    const instance = await WebAssembly.instantiate(this.#module, {});
    this.#state = new PolicyState(instance, blob, undefined);
  }

  /**
   * Decide one tool call: one call into the module. Throws RequestError for a request the
   * core refuses (and records it, with an audit trail).
   * @param {string} tool
   * @param {object} [args]
   * @param {{role: string, agentAttributes?: object, resourceAttributes?: object, context?: object,
   *          principal?: string, traceId?: string, extras?: object}} who
   * @returns {Decision}
   */
  evaluate(tool, args, who) {
    const state = this.#state;
    const request = requestText(tool, args, who);
    const audit = this.#audit;
    if (audit !== null) {
      const refusal = audit.refusal();
      if (refusal !== null) {
        const d = hostDecision("Deny", refusal);
        audit.record(d, { tool, args, who, state, request, refused: true });
        return d;
      }
    }
    let rc;
    try {
      rc = state.decide(request);
    } catch (e) {
      if (audit !== null && e instanceof RequestError) audit.recordError(e, { tool, args, who, state, request });
      throw e;
    }
    const d = new Decision(rc, state, request);
    if (audit !== null) audit.record(d, { tool, args, who, state, request });
    return d;
  }

  /** The full reply ({decision, reason, rule, approvals_required?}) through the perso ABI's
   * evaluate export: arguments and the context `{"role", "agent_attrs", "resource_attrs",
   * "context"?}` as JSON text.
   * @param {string} tool @param {string} argsJson @param {string} contextJson */
  evaluateJson(tool, argsJson, contextJson) {
    const x = this.#state.x;
    const parts = [tool, argsJson, contextJson].map((s) => encoder.encode(s));
    const ptrs = [];
    try {
      for (const p of parts) {
        const ptr = x.alloc(p.length);
        if (ptr === 0) throw new WasmError("the module is out of memory", "memory");
        new Uint8Array(x.memory.buffer, ptr, p.length).set(p);
        ptrs.push(ptr);
      }
      const reply = this.#state.take(x.evaluate(ptrs[0], parts[0].length, ptrs[1], parts[1].length, ptrs[2], parts[2].length));
      if (reply.error) throw new RequestError(reply.error, reply.code, reply.offset, reply.input);
      return reply;
    } finally {
      ptrs.forEach((ptr, i) => x.dealloc(ptr, parts[i].length));
    }
  }
}
