// callgate.mjs -- the callgate WebAssembly module from Node.js (or any JS host with
// WebAssembly): the same decisions and reasons as the Python engine. No dependencies.
//
//   import { Callgate } from "./callgate.mjs";
//   const cg = await Callgate.load(wasmBytes, blobBytes);   // blob: `callgate compile POLICY -o BLOB`
//   const d = cg.evaluate("process_refund", { amount: 800 }, { role: "agent" });
//   d.decision; d.rule; d.reason;                            // reason is fetched only when read

/** @typedef {{role: string, agentAttributes?: object, resourceAttributes?: object, context?: object}} Identity */
/** @typedef {{decision: "Allow"|"Deny"|"Elevate", rule: number|null, approvalsRequired: number, allowed: boolean, readonly reason: string}} Decision */

const DECISIONS = ["Deny", "Allow", "Elevate", "Deny"];
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class CallgateError extends Error {
  /** @param {string} message @param {string} code @param {number|undefined} offset */
  constructor(message, code, offset) {
    super(message);
    this.code = code;
    this.offset = offset;
  }
}

export class Callgate {
  /** @param {WebAssembly.Instance} instance */
  constructor(instance) {
    this.exports = /** @type {any} */ (instance.exports);
    this.bufPtr = 0;
    this.bufSize = 0;
  }

  /**
   * Instantiate the module and load a compiled policy blob (omit it for a module made by
   * `callgate build-wasm`, which embeds its policy).
   * @param {BufferSource} wasm @param {Uint8Array} [blob] @returns {Promise<Callgate>}
   */
  static async load(wasm, blob) {
    const { instance } = await WebAssembly.instantiate(wasm, {});
    const cg = new Callgate(instance);
    cg.init(blob);
    return cg;
  }

  /** The module's ABI version (callgate_abi_version). @returns {number} */
  get abiVersion() {
    return this.exports.callgate_abi_version();
  }

  /** Load (or atomically replace) the policy. @param {Uint8Array} [blob] */
  init(blob) {
    const x = this.exports;
    let reply;
    if (blob === undefined) {
      reply = this.#take(x.init(0, 0));
    } else {
      const ptr = x.alloc(blob.length);
      new Uint8Array(x.memory.buffer, ptr, blob.length).set(blob);
      try {
        reply = this.#take(x.init(ptr, blob.length));
      } finally {
        x.dealloc(ptr, blob.length);
      }
    }
    if (reply.error) throw new CallgateError(`init refused the policy: ${reply.error}`, reply.code);
  }

  /**
   * Decide one tool call: one call into the module, no allocation.
   * @param {string} tool @param {object} args @param {Identity} who @returns {Decision}
   */
  evaluate(tool, args, who) {
    const request = JSON.stringify([tool, who.role, args ?? {}, who.agentAttributes ?? {}, who.resourceAttributes ?? {}, who.context ?? {}]);
    const bytes = this.#write(request);
    const rc = this.exports.decide(this.bufPtr, bytes);
    if (rc < 0) this.#explain(bytes); // throws the module's error with its offset
    const self = this;
    let reason;
    return {
      decision: DECISIONS[rc & 3],
      rule: rc >= 16 ? (rc >> 4) - 1 : null,
      approvalsRequired: (rc >> 2) & 3,
      allowed: (rc & 3) === 1,
      get reason() {
        if (reason === undefined) reason = self.#explain(self.#write(request)).reason;
        return reason;
      },
    };
  }

  /** The full reply ({decision, reason, rule}) through the perso ABI's evaluate export.
   * @param {string} tool @param {string} argsJson @param {string} contextJson */
  evaluateJson(tool, argsJson, contextJson) {
    const x = this.exports;
    const parts = [tool, argsJson, contextJson].map((s) => encoder.encode(s));
    const ptrs = parts.map((p) => {
      const ptr = x.alloc(p.length);
      new Uint8Array(x.memory.buffer, ptr, p.length).set(p);
      return ptr;
    });
    try {
      const reply = this.#take(x.evaluate(ptrs[0], parts[0].length, ptrs[1], parts[1].length, ptrs[2], parts[2].length));
      if (reply.error) throw new CallgateError(reply.error, reply.code, reply.offset);
      return reply;
    } finally {
      ptrs.forEach((ptr, i) => x.dealloc(ptr, parts[i].length));
    }
  }

  /** Encode text into the module's reusable request buffer; returns its byte length. */
  #write(text) {
    const need = text.length * 3; // UTF-8 worst case
    if (need > this.bufSize) {
      this.bufSize = Math.max(need, 4096);
      this.bufPtr = this.exports.request_buffer(this.bufSize);
      if (this.bufPtr === 0) throw new CallgateError("the module is out of memory", "memory");
    }
    const view = new Uint8Array(this.exports.memory.buffer, this.bufPtr, this.bufSize);
    return encoder.encodeInto(text, view).written;
  }

  #explain(length) {
    const reply = this.#take(this.exports.explain(this.bufPtr, length));
    if (reply.error) throw new CallgateError(reply.error, reply.code, reply.offset);
    return reply;
  }

  /** Read a response (u32 length + JSON) and free it. */
  #take(resp) {
    if (resp === 0) throw new CallgateError("the module returned no response", "memory");
    const x = this.exports;
    const n = new DataView(x.memory.buffer).getUint32(resp >>> 0, true);
    const text = decoder.decode(new Uint8Array(x.memory.buffer, (resp >>> 0) + 4, n));
    x.dealloc(resp, 4 + n);
    return JSON.parse(text);
  }
}
