// audit.mjs -- callgate's audit trail in JavaScript: one event per decision with the fields
// of the Python trail (docs/audit.md, "Events"), sealed into a per-writer SHA-256 hash chain
// that `callgate audit verify` checks, written in batches by a transport: the console, HTTP,
// a function of your own, or a JSONL file (audit-file.mjs, Node only).
//
// Browser-safe: no imports (SHA-256 is computed here; ids come from crypto.getRandomValues).
// The Python wheel's playground serves a byte-for-byte copy (written by `npm run build`).
//
//   import { Callgate } from "callgate";
//   import { Audit, consoleTransport } from "callgate/audit";
//   const audit = new Audit(consoleTransport());
//   const cg = await Callgate.load(blob, { audit });
//   cg.evaluate("process_refund", { amount: 800 }, { role: "agent", principal: "user:alice" });
//   await audit.close();                              // everything written, the stop marker last

const VERSION = "0.1.0"; // the engine's version, as engine_version (callgate.mjs VERSION)
const encoder = new TextEncoder();
const RAW_LIMIT = 4096; // characters of a refused request kept verbatim in an error event
export const MASK = "***";

// ---------------------------------------------------------------- SHA-256

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const W = new Uint32Array(64);

/** SHA-256 of bytes (or of a string's UTF-8), as 32 bytes. */
export function sha256(data) {
  const bytes = typeof data === "string" ? encoder.encode(data) : data;
  const n = bytes.length;
  const padded = new Uint8Array(((n + 9 + 63) >>> 6) << 6);
  padded.set(bytes);
  padded[n] = 0x80;
  const dv = new DataView(padded.buffer);
  dv.setUint32(padded.length - 8, Math.floor(n / 0x20000000));
  dv.setUint32(padded.length - 4, (n << 3) >>> 0);
  let h0 = 0x6a09e667, h1 = 0xbb67ae85, h2 = 0x3c6ef372, h3 = 0xa54ff53a;
  let h4 = 0x510e527f, h5 = 0x9b05688c, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) W[i] = dv.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const a = W[i - 15], b = W[i - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      W[i] = (W[i - 16] + s0 + W[i - 7] + s1) | 0;
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i] + W[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
  }
  const out = new Uint8Array(32);
  const ov = new DataView(out.buffer);
  [h0, h1, h2, h3, h4, h5, h6, h7].forEach((v, i) => ov.setUint32(4 * i, v >>> 0));
  return out;
}

/** Bytes as lower-case hex. */
export function hex(bytes) {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** The first record of a chain links to these 32 zero bytes. */
export const GENESIS = new Uint8Array(32);

/** A record's hash: SHA-256(0x00 || prev_hash || canonical_record) (docs/audit.md, "Tamper evidence"). */
export function link(prev, body) {
  const b = typeof body === "string" ? encoder.encode(body) : body;
  const input = new Uint8Array(1 + 32 + b.length);
  input.set(prev, 1);
  input.set(b, 33);
  return sha256(input);
}

// ---------------------------------------------------------------- canonical JSON

/** Canonical JSON: keys sorted at every level (by code point, as Python sorts them), no
 * insignificant whitespace, UTF-8 as is; undefined members left out (as JSON.stringify). */
export function canonical(value) {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) throw new TypeError("NaN and Infinity are not JSON");
      return JSON.stringify(value);
    case "bigint":
      return value.toString();
    case "object":
      break;
    default:
      return "null";
  }
  if (typeof value.toJSON === "function") return canonical(value.toJSON());
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined || typeof v === "function" ? "null" : canonical(v))).join(",")}]`;
  const keys = Object.keys(value).filter((k) => value[k] !== undefined && typeof value[k] !== "function");
  keys.sort(byCodePoint);
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
}

function byCodePoint(a, b) {
  // Python sorts str by code point; JavaScript's < compares UTF-16 units (they differ above U+FFFF)
  if (a === b) return 0;
  const x = [...a], y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i].codePointAt(0), q = y[i].codePointAt(0);
    if (p !== q) return p - q;
  }
  return x.length - y.length;
}

/** A record's envelope line (newline included): {"hash":"<hex>","record":<body>}. */
export function envelope(body, hash) {
  return `{"hash":"${hex(hash)}","record":${body}}\n`;
}

// ---------------------------------------------------------------- ids and time

/** A UUID 4. */
export function uuid4() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === "function") return c.randomUUID();
  const b = new Uint8Array(16);
  c.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = hex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Microseconds since the epoch, now. */
export function nowMicros() {
  const p = globalThis.performance;
  if (p && typeof p.timeOrigin === "number") return Math.floor((p.timeOrigin + p.now()) * 1000);
  return Date.now() * 1000;
}

/** RFC 3339 UTC with microseconds: 2026-05-01T12:00:00.123456Z. */
export function timestamp(micros = nowMicros()) {
  const ms = Math.floor(micros / 1000);
  const iso = new Date(ms).toISOString(); // ...T12:00:00.123Z
  return `${iso.slice(0, 19)}.${String(micros % 1000000).padStart(6, "0")}Z`;
}

// ---------------------------------------------------------------- masks

/** '/args/card~1number' -> ['args', 'card/number'] (RFC 6901). */
export function parsePointer(pointer) {
  if (typeof pointer !== "string" || !pointer.startsWith("/")) throw new TypeError(`a JSON pointer starts with '/': ${JSON.stringify(pointer)}`);
  return pointer.slice(1).split("/").map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function applyMasks(event, masks, originals) {
  const masked = [];
  for (const [text, parts] of masks) {
    let node = event;
    for (const p of parts.slice(0, -1)) {
      node = child(node, p);
      if (node === undefined) break;
    }
    if (node === undefined || node === null || typeof node !== "object") continue;
    const last = parts[parts.length - 1];
    if (Array.isArray(node)) {
      if (!/^\d+$/.test(last) || Number(last) >= node.length) continue;
      originals.push(node[Number(last)]);
      node[Number(last)] = MASK;
    } else {
      if (!Object.prototype.hasOwnProperty.call(node, last)) continue;
      originals.push(node[last]);
      node[last] = MASK;
    }
    masked.push(text);
  }
  return masked;
}

function child(node, p) {
  if (Array.isArray(node)) return /^\d+$/.test(p) && Number(p) < node.length ? node[Number(p)] : undefined;
  if (node !== null && typeof node === "object") return Object.prototype.hasOwnProperty.call(node, p) ? node[p] : undefined;
  return undefined;
}

function scrub(text, values) {
  for (const v of values) {
    if (typeof v === "string") {
      text = text.replaceAll(JSON.stringify(v), MASK);
      if (v.length >= 3) text = text.replaceAll(v, MASK);
    } else if (typeof v === "number") {
      const form = String(v).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      text = text.replace(new RegExp(`(?<![\\w.])${form}(?![\\w.])`, "g"), MASK);
    }
  }
  return text;
}

// ---------------------------------------------------------------- events

const digests = new WeakMap(); // policy state -> [version, digest]

function policyOf(state) {
  let hit = state ? digests.get(state) : undefined;
  if (!hit && state) {
    hit = [state.info.version, hex(sha256(state.blob))];
    digests.set(state, hit);
  }
  return hit ?? [null, null];
}

/** The principal a call names (`principal`, e.g. "user:alice"), or null. */
export function principalOf(who) {
  return typeof who?.principal === "string" ? who.principal : null;
}

function liftExtras(event, extras) {
  if (!extras || typeof extras !== "object") return;
  const rest = { ...extras };
  if ("risk_score" in rest) {
    event.risk_score = rest.risk_score;
    delete rest.risk_score;
  }
  if (Object.keys(rest).length) event.extras = rest;
}

/** The event of one decision (kind "decision"), from what the engine decided. */
export function decisionEvent(d, call, micros) {
  const [version, digest] = policyOf(call.state);
  const parts = JSON.parse(call.request);
  const id = uuid4();
  const event = {
    kind: "decision", id, trace_id: call.who?.traceId ?? id, timestamp: timestamp(micros),
    tool: parts[0], args: parts[2], role: parts[1], principal: principalOf(call.who),
    agent_attributes: parts[3], resource_attributes: parts[4],
    decision: d.decision, reason: d.reason, rule: d.rule, approvals_required: d.approvalsRequired,
    policy_version: version, policy_digest: digest, engine_version: VERSION,
  };
  const context = parts[5];
  if (context && typeof context === "object" && Object.keys(context).length) event.context = context;
  liftExtras(event, call.who?.extras);
  return event;
}

/** The event of a request the core refused (kind "error"): a Deny with the error as reason,
 * the refused text kept verbatim (bounded) with its SHA-256. */
export function errorEvent(error, call, micros) {
  const [version, digest] = policyOf(call.state);
  const raw = call.request;
  const event = {
    kind: "error", id: uuid4(), trace_id: call.who?.traceId ?? uuid4(), timestamp: timestamp(micros),
    principal: principalOf(call.who), decision: "Deny", reason: String(error.message), rule: null,
    approvals_required: 0, error_code: error.code ?? "invalid", engine_version: VERSION,
    policy_version: version, policy_digest: digest, tool: call.tool, role: call.who?.role ?? null,
    args_raw: raw.slice(0, RAW_LIMIT), args_sha256: hex(sha256(raw)),
  };
  liftExtras(event, call.who?.extras);
  return event;
}

/** What followed an Elevate (kind "approval"): the final decision and how approval was or
 * was not obtained, linked to the Elevate's decision event by trace_id. */
export function approvalEvent(f, micros, state) {
  const [version, digest] = policyOf(state);
  const id = uuid4();
  const event = {
    kind: "approval", id, trace_id: f.traceId ?? id, timestamp: timestamp(micros),
    tool: f.tool ?? null, args: f.args ?? {}, role: f.role ?? null, principal: f.principal ?? null,
    agent_attributes: f.agentAttributes ?? null, resource_attributes: f.resourceAttributes ?? null,
    decision: f.decision, reason: f.reason, rule: f.rule ?? null, approvals_required: f.approvalsRequired ?? 0,
    approval: f.approval, policy_version: version, policy_digest: digest, engine_version: VERSION,
  };
  liftExtras(event, f.extras);
  return event;
}

function gapEvent(lost, reason, firstMicros, lastMicros) {
  return { kind: "gap", id: uuid4(), timestamp: timestamp(lastMicros), lost, reason,
           extras: { first_lost: timestamp(firstMicros) }, engine_version: VERSION };
}

/** A writer marker (kind "writer", state "start" or "stop"): who wrote this part of the chain. */
export function writerEvent(state, writer, details = {}) {
  return { kind: "writer", state, id: uuid4(), timestamp: timestamp(), writer, engine_version: VERSION, ...details };
}

// ---------------------------------------------------------------- transports

function runtimeWriter() {
  const p = globalThis.process;
  return { host: globalThis.__callgateHost ?? (p?.versions?.node ? "node" : "browser"), pid: typeof p?.pid === "number" ? p.pid : 0 };
}

async function nodeHost() {
  try {
    const os = await import("node:os");
    return os.hostname();
  } catch {
    return null;
  }
}

async function processChainId() {
  const host = await nodeHost();
  const pid = globalThis.process?.pid;
  return host && typeof pid === "number" ? `${host}:${pid}` : `browser:${uuid4().slice(0, 8)}`;
}

/**
 * JSON lines (the envelope of docs/audit.md) to stdout, or to `write(text)`. Chain id: host:pid.
 * @param {{write?: (text: string) => void}} [options]
 */
export function consoleTransport(options = {}) {
  const write = options.write ?? ((text) => {
    const out = globalThis.process?.stdout;
    if (out && typeof out.write === "function") out.write(text);
    else for (const line of text.split("\n")) if (line) console.log(line);
  });
  return {
    name: "console",
    defaultChain: processChainId,
    writerMarkers: false,
    async open() { return null; },
    async write(lines) { write(lines); },
    async close() {},
  };
}

/**
 * Batched POSTs of envelope lines (application/x-ndjson), with `Idempotency-Key` (the hash
 * of the batch's last record) and retries with exponential backoff; a 4xx other than 408 and
 * 429 is not retried. Chain id: host:pid. Writer markers are written (the receiver keeps a log).
 * @param {string} url
 * @param {{headers?: Record<string,string>, retries?: number, backoffMs?: number, fetch?: typeof fetch}} [options]
 */
export function httpTransport(url, options = {}) {
  const retries = options.retries ?? 3;
  const backoff = options.backoffMs ?? 50;
  const doFetch = options.fetch ?? globalThis.fetch;
  return {
    name: `http ${url}`,
    defaultChain: processChainId,
    writerMarkers: true,
    async open() { return null; },
    async write(lines, records) {
      const headers = { ...(options.headers ?? {}), "content-type": "application/x-ndjson",
                        "idempotency-key": hex(records[records.length - 1].hash) };
      let error = new Error("no attempt");
      for (let attempt = 0; attempt < retries; attempt++) {
        try {
          const response = await doFetch(url, { method: "POST", headers, body: lines });
          if (response.status < 300) return;
          error = new Error(`HTTP ${response.status} from ${url}`);
          if (response.status >= 400 && response.status < 500 && response.status !== 408 && response.status !== 429) break;
        } catch (e) {
          error = e;
        }
        await new Promise((r) => setTimeout(r, backoff * 2 ** attempt));
      }
      throw error;
    },
    async close() {},
  };
}

/**
 * Your own function, called once per record with the event (chain, seq and hash set), in
 * order; it may return a promise (the next waits for it). Chain id: host:pid.
 * @param {(event: object) => void | Promise<void>} fn
 */
export function functionTransport(fn) {
  if (typeof fn !== "function") throw new TypeError("functionTransport() takes a function");
  return {
    name: "function",
    defaultChain: processChainId,
    writerMarkers: false,
    async open() { return null; },
    async write(_lines, records) {
      for (const r of records) await fn({ ...r.event, hash: hex(r.hash) });
    },
    async close() {},
  };
}

/** An in-memory log (what the playground keeps for its session): `lines` holds every envelope line. */
export function memoryTransport() {
  const t = {
    name: "memory",
    lines: [],
    defaultChain: async () => "main",
    writerMarkers: true,
    async open() { return null; },
    async write(lines) { t.lines.push(...lines.split("\n").filter(Boolean)); },
    async close() {},
  };
  return t;
}

// ---------------------------------------------------------------- the recorder

/**
 * An audit trail: decisions queued by the engine (`Callgate.load(blob, {audit})`), built
 * into events, sealed into the chain and written in batches by one transport.
 *
 * Options: `chain` (the chain id; default the transport's: "main" for a file, host:pid
 * otherwise), `masks` (JSON pointers into the event, e.g. "/args/card_number", replaced by
 * "***" before anything is hashed), `hashArgs` (args replaced by args_sha256),
 * `batchSize` (256), `maxQueue` (10000: beyond it events are counted and written as a "gap"
 * record), `flushIntervalMs` (10), `onFailure` ("retry": records stay queued and are retried
 * with backoff; "deny": while the transport fails, every decision is a Deny saying so),
 * `closeOnExit` (Node: close the trail, stop marker included, when the process is about to exit; true).
 */
export class Audit {
  constructor(transport, options = {}) {
    if (!transport || typeof transport.write !== "function") throw new TypeError("new Audit(transport) needs a transport (consoleTransport(), fileTransport(path), ...)");
    this.transport = transport;
    this.options = { batchSize: 256, maxQueue: 10000, flushIntervalMs: 10, onFailure: "retry", closeOnExit: true, ...options };
    if (!["retry", "deny"].includes(this.options.onFailure)) throw new TypeError(`onFailure must be "retry" or "deny", not ${JSON.stringify(this.options.onFailure)}`);
    this.masks = (this.options.masks ?? []).map((p) => [p, parsePointer(p)]);
    this.queue = []; // {kind, ...} items waiting to be built
    this.pending = null; // a sealed batch whose write failed: retried first
    this.lost = null; // {n, first, last, why}: events that could not be queued
    this.head = null; // {chain, seq, hash} once opened
    this.failing = null; // why the transport fails (a string), or null
    this.closed = false;
    this.written = 0; // records written
    this.counted = 0; // items taken from the queue and durable
    this.taken = 0; // items taken off the queue so far
    this.waiters = [];
    this.leading = null; // marker events sealed ahead of the next items
    this.stopping = false; // close() asked for the stop marker
    this.engine = null;
    this._timer = null;
    this._running = null;
    this._backoff = 0;
    this._exitHook = null;
  }

  /** Called by Callgate when the trail is attached to it. */
  attach(engine) {
    this.engine = engine;
    const p = globalThis.process;
    if (this.options.closeOnExit && p?.versions?.node && typeof p.once === "function" && !this._exitHook) {
      this._exitHook = () => { if (!this.closed) this.close().catch(() => {}); };
      p.once("beforeExit", this._exitHook);
    }
  }

  /** A reason to refuse decisions now (onFailure "deny" while failing, or closed), or null. */
  refusal() {
    if (this.closed) return "the audit trail is closed";
    if (this.options.onFailure === "deny" && this.failing !== null) return `the audit trail cannot record decisions (${this.failing}); denied (on_failure=deny)`;
    return null;
  }

  #queue(item) {
    if (this.closed) return false;
    if (this.queue.length >= this.options.maxQueue) {
      const now = nowMicros();
      if (this.lost === null) this.lost = { n: 0, first: now, last: now, why: `the audit queue was full (max_queue=${this.options.maxQueue})` };
      this.lost.n += 1;
      this.lost.last = now;
      return false;
    }
    this.queue.push(item);
    this.#schedule(this.options.flushIntervalMs);
    return true;
  }

  /** Queue a decision's event (the engine calls this). */
  record(d, call) {
    return this.#queue({ kind: "decision", d, call, t: nowMicros() });
  }

  /** Queue the event of a request the core refused (the engine calls this). */
  recordError(error, call) {
    return this.#queue({ kind: "error", error, call, t: nowMicros() });
  }

  /**
   * Queue what followed an Elevate (an "approval" event, as the Python proxy records it):
   * {tool, args, role, principal, agentAttributes, resourceAttributes, traceId, decision,
   * reason, rule, approvalsRequired, approval: {method, outcome, required, approved_by?}}.
   * False when it could not be queued (the host must then not act on the approval).
   */
  recordApproval(fields) {
    return this.#queue({ kind: "approval", fields, t: nowMicros() });
  }

  #schedule(ms) {
    if (this._timer !== null || this._running !== null) return;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._running = this.#drain().finally(() => {
        this._running = null;
        if (this.queue.length || this.pending || this.lost) this.#schedule(this.failing ? this._backoff : 0);
      });
    }, ms);
  }

  async #open() {
    const t = this.transport;
    const chain = this.options.chain ?? (typeof t.defaultChain === "function" ? await t.defaultChain() : t.defaultChain ?? "main");
    const last = await t.open(chain);
    this.head = { chain, seq: last ? last.seq + 1 : 0, hash: last ? last.hash : GENESIS };
    if (t.writerMarkers) {
      const writer = typeof t.writer === "function" ? await t.writer() : runtimeWriter();
      const details = typeof t.startDetails === "function" ? t.startDetails() : {};
      this.leading = [writerEvent("start", writer, details)];
    }
  }

  #seal(events) {
    const records = [];
    let { chain, seq, hash } = this.head;
    for (const event of events) {
      event.chain = chain;
      event.seq = seq;
      const body = canonical(event);
      hash = link(hash, body);
      records.push({ chain, seq, body, hash, event });
      seq += 1;
    }
    return { records, lines: records.map((r) => envelope(r.body, r.hash)).join(""), next: { chain, seq, hash } };
  }

  #build(item) {
    let event;
    if (item.kind === "decision") event = decisionEvent(item.d, item.call, item.t);
    else if (item.kind === "error") event = errorEvent(item.error, item.call, item.t);
    else event = approvalEvent(item.fields, item.t, this.engine ? stateOf(this.engine) : null);
    return this.#shape(event);
  }

  #shape(event) {
    if (this.masks.length) {
      const originals = [];
      const masked = applyMasks(event, this.masks, originals);
      if (originals.length && typeof event.reason === "string") event.reason = scrub(event.reason, originals);
      if ("args_raw" in event) {
        delete event.args_raw;
        masked.push("/args_raw");
      }
      if (masked.length) event.masked = masked;
    }
    if (this.options.hashArgs && "args" in event) {
      event.args_sha256 = hex(sha256(canonical(event.args)));
      delete event.args;
    }
    return event;
  }

  async #drain() {
    try {
      if (this.head === null) await this.#open();
      for (;;) {
        let batch = this.pending;
        let taken = 0;
        if (batch === null) {
          const events = this.leading ?? [];
          this.leading = null;
          if (this.lost !== null) {
            events.push(gapEvent(this.lost.n, this.lost.why, this.lost.first, this.lost.last));
            this.lost = null;
          }
          const items = this.queue.splice(0, this.options.batchSize);
          taken = items.length;
          for (const item of items) events.push(this.#build(item));
          if (this.stopping && this.queue.length === 0) {
            if (this.transport.writerMarkers) events.push(writerEvent("stop", await writerOf(this.transport)));
            this.stopping = false;
          }
          if (!events.length) return;
          batch = { ...this.#seal(events), taken };
          this.taken += taken;
        }
        try {
          await this.transport.write(batch.lines, batch.records);
        } catch (e) {
          this.pending = batch;
          this.failing = `${e?.name ?? "Error"}: ${e?.message ?? e}`;
          this._backoff = Math.min(Math.max(this._backoff * 2, 50), 5000);
          return;
        }
        this.pending = null;
        this.failing = null;
        this._backoff = 0;
        this.head = batch.next;
        this.written += batch.records.length;
        this.counted += batch.taken;
        this.#wake();
      }
    } catch (e) {
      this.failing = `${e?.name ?? "Error"}: ${e?.message ?? e}`;
      this._backoff = Math.min(Math.max(this._backoff * 2, 50), 5000);
    }
  }

  #wake() {
    const still = [];
    for (const w of this.waiters) {
      if (this.counted >= w.mark) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }

  /** A position at or after every event queued so far (see flush). */
  mark() {
    return this.taken + this.queue.length;
  }

  /**
   * Resolves once every event queued so far is written by the transport; rejects after
   * `timeoutMs` (default 10 s) with the reason it is not (the transport failing).
   */
  async flush(timeoutMs = 10000) {
    const mark = this.mark();
    if (this.counted >= mark && !this.queue.length) return;
    this.#schedule(0);
    let timer;
    const done = new Promise((resolve) => this.waiters.push({ mark, resolve }));
    const late = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the audit trail did not write within ${timeoutMs} ms${this.failing ? ` (${this.failing})` : ""}`)), timeoutMs);
    });
    try {
      await Promise.race([done, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Write everything, then the stop marker, and close the transport. Decisions after this are denied. */
  async close(timeoutMs = 10000) {
    if (this.closed) return;
    if (this._exitHook) globalThis.process?.removeListener?.("beforeExit", this._exitHook);
    let error = null;
    if (this.head !== null || this.queue.length || this.lost || this.pending) {
      this.stopping = true;
      try {
        await this.flush(timeoutMs);
        if (this.stopping || this.pending) {
          // nothing was left to write but the stop marker: it goes on its own
          this.#schedule(0);
          await this.#settle(timeoutMs);
        }
      } catch (e) {
        error = e;
      }
    }
    this.closed = true;
    if (this._timer !== null) clearTimeout(this._timer);
    this._timer = null;
    await this.transport.close();
    if (error) throw error;
  }

  async #settle(timeoutMs) {
    const until = Date.now() + timeoutMs;
    while ((this.stopping || this.pending || this._running || this._timer) && Date.now() < until) {
      if (this._running) await this._running;
      else await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** {queued, written, failing}: how the trail is doing. */
  get stats() {
    return { queued: this.queue.length, written: this.written, failing: this.failing };
  }
}

async function writerOf(t) {
  return typeof t.writer === "function" ? await t.writer() : runtimeWriter();
}

function stateOf(engine) {
  // the policy state in force, for events not made by a decision (approvals): its blob and version
  return { blob: engine.blob, info: { version: engine.policyVersion } };
}
