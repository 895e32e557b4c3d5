// mcp.mjs -- guard(): callgate's policy inside an MCP server built on the official TypeScript
// SDK (@modelcontextprotocol/sdk), with the decisions and reasons of the Python proxy's gate
// (src/callgate/mcp/gate.py, elevate.py; docs/mcp.md).
//
//   import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
//   import { Callgate } from "callgate";
//   import { guard } from "callgate/mcp";
//   const server = new McpServer({ name: "crm", version: "1.0.0" });
//   guard(server, await Callgate.load(blob), { identity: { role: "agent", agentAttributes: { user_id: "agt-099" } } });
//   server.registerTool(...); await server.connect(transport);
//
// The guard wraps every transport the server connects to: each tools/call is decided before the
// SDK sees it (a denied call never reaches argument validation nor the tool's handler: its
// answer is a tool result with isError and "Denied by policy: <reason>"), and each tools/list
// answer shows the caller only the tools it could ever be allowed to call. Identity comes from
// the host (a fixed identity, or a function of the request's auth info), never from the model.
// An Elevate asks the client's user through the server's own elicitation (when the client
// declared it and the count is within `elevation.maxApprovals`), else it is denied saying that
// approval is required.

import { canonical, uuid4 } from "./audit.mjs";
import { CallgateError } from "./callgate.mjs";

export const DENIED_PREFIX = "Denied by policy: ";
export const APPROVALS_KEY = "callgate/approvals";
const MODERN_VERSION_KEY = "io.modelcontextprotocol/protocolVersion";
const MODERN_SINCE = "2026-07-28";
const FORM_SINCE = "2025-11-25";
const ARGS_SHOWN = 1000;

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

/** A tool result the model can read: why the call did not run. */
export function denialResult(reason, params = undefined) {
  const result = { content: [{ type: "text", text: DENIED_PREFIX + reason }], isError: true };
  const meta = isObject(params) ? params._meta : undefined;
  if (isObject(meta) && MODERN_VERSION_KEY in meta) result.resultType = "complete";
  return result;
}

/** The verdict on one tools/call: decision, reason (read on demand), rule, approvalsRequired,
 * and the call as decided (tool, args, resource, traceId). */
export class Verdict {
  #reason;
  #source;
  constructor(decision, reason, fields = {}) {
    this.decision = decision;
    if (typeof reason === "string") this.#reason = reason;
    else this.#source = reason;
    this.rule = fields.rule ?? null;
    this.approvalsRequired = fields.approvalsRequired ?? 0;
    this.tool = fields.tool ?? null;
    this.args = fields.args ?? null;
    this.resource = fields.resource ?? {};
    this.traceId = fields.traceId ?? null;
    this.approvalsGiven = fields.approvalsGiven ?? false;
  }
  /** Why: the engine's reason, or the gate's own. */
  get reason() {
    if (this.#reason === undefined) this.#reason = this.#source.reason;
    return this.#reason;
  }
  /** True only for Allow. */
  get allowed() {
    return this.decision === "Allow";
  }
}

const deny = (reason, tool = null, args = null) => new Verdict("Deny", reason, { tool, args });

/** (tokens, problem) from params._meta["callgate/approvals"]. */
export function approvalsIn(params) {
  const meta = isObject(params) ? params._meta : undefined;
  if (!isObject(meta) || !(APPROVALS_KEY in meta)) return [null, null];
  const tokens = meta[APPROVALS_KEY];
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === "string")) {
    return [null, `params._meta["${APPROVALS_KEY}"] must be a list of approval strings`];
  }
  return [tokens.length ? tokens : null, null];
}

/** The reason an Elevate did not run (the Python gate's elevate_reason). */
export function elevateReason(v, why) {
  const n = v.approvalsRequired;
  const count = `${n} approval${n !== 1 ? "s" : ""}`;
  const how = v.approvalsGiven ? "the approvals attached do not satisfy it"
    : `attach ${count} signed for this call in params._meta["${APPROVALS_KEY}"]`;
  return `${v.reason}; approval required (${count}): ${why ? `${why}; ${how}` : how}`;
}

/** The gate: decides tools/call params for an identity, and which tools a role may see. */
export class Gate {
  /** @param {import("./callgate.mjs").Callgate} engine @param {{resolver?: Function}} [options] */
  constructor(engine, options = {}) {
    this.engine = engine;
    this.resolver = options.resolver ?? null;
  }

  /** Could `role` ever be allowed to call `tool`? */
  visible(tool, role) {
    try {
      return this.engine.visible(tool, role);
    } catch {
      return false; // what cannot be read is not shown
    }
  }

  /** The tools of a listing the role may see (each a definition with a string name). */
  filterTools(tools, role) {
    return tools.filter((t) => isObject(t) && typeof t.name === "string" && this.visible(t.name, role));
  }

  /** The verdict on a tools/call with these params (a Verdict, or a promise of one when the
   * resolver returns a promise). */
  decide(params, identity) {
    if (!isObject(params)) return deny("tools/call params must be an object");
    const tool = params.name;
    if (typeof tool !== "string") return deny("tools/call needs a tool name (a string)");
    let args = params.arguments;
    if (args === undefined || args === null) args = {};
    else if (!isObject(args)) return deny(`the arguments of ${tool} must be an object`, tool);
    const [tokens, problem] = approvalsIn(params);
    if (problem !== null) return deny(problem, tool, args);
    if (this.resolver === null) return this.#evaluate(tool, args, identity, {}, tokens);
    let resource;
    try {
      resource = this.resolver(tool, args);
    } catch (e) {
      return deny(`resource attributes for ${tool} could not be resolved (${e?.name ?? "Error"}: ${e?.message ?? e})`, tool, args);
    }
    if (resource && typeof resource.then === "function") {
      return resource.then(
        (r) => this.#resolved(tool, args, identity, r, tokens),
        (e) => deny(`resource attributes for ${tool} could not be resolved (${e?.name ?? "Error"}: ${e?.message ?? e})`, tool, args),
      );
    }
    return this.#resolved(tool, args, identity, resource, tokens);
  }

  #resolved(tool, args, identity, resource, tokens) {
    if (resource === undefined || resource === null) resource = {};
    else if (!isObject(resource)) return deny(`the resolver returned ${Array.isArray(resource) ? "list" : typeof resource}, not a mapping`, tool, args);
    return this.#evaluate(tool, args, identity, resource, tokens);
  }

  #evaluate(tool, args, identity, resource, tokens) {
    const traceId = this.engine.audit ? uuid4().replaceAll("-", "") : undefined;
    try {
      const d = this.engine.evaluate(tool, args, {
        role: identity.role, agentAttributes: identity.agentAttributes ?? {}, resourceAttributes: resource,
        principal: identity.principal, traceId,
      });
      return new Verdict(d.decision, d, { rule: d.rule, approvalsRequired: d.approvalsRequired, tool, args, resource, traceId, approvalsGiven: Boolean(tokens) });
    } catch (e) {
      if (e instanceof CallgateError) return deny(e.message, tool, args);
      return deny("internal error while deciding", tool, args);
    }
  }

  /** null when a tools/call with these params may run, else why not (an Elevate is a denial
   * saying approval is required). */
  async check(params, identity) {
    const v = await this.decide(params, identity);
    if (v.allowed) return null;
    if (v.decision === "Elevate") return elevateReason(v, null);
    return v.reason;
  }
}

/** The elicitation/create params asking the user to approve an Elevate (the Python proxy's). */
export function elicitationParams(v, protocol = undefined) {
  let text = canonical(v.args ?? {});
  if (text.length > ARGS_SHOWN) text = `${text.slice(0, ARGS_SHOWN)}… (${text.length - ARGS_SHOWN} more characters)`;
  const params = {
    message: `Approve this tool call?\n\nTool: ${v.tool}\nArguments: ${text}\nWhy approval is needed: ${v.reason}\n\nThe call runs only if you approve it.`,
    requestedSchema: {
      type: "object",
      properties: { approve: { type: "boolean", title: "Approve", description: `Run ${v.tool} with the arguments shown`, default: false } },
      required: ["approve"],
    },
  };
  if (typeof protocol === "string" && protocol >= FORM_SINCE) params.mode = "form";
  return params;
}

function canElicit(capabilities) {
  if (!isObject(capabilities) || !isObject(capabilities.elicitation)) return false;
  return "form" in capabilities.elicitation || !("url" in capabilities.elicitation);
}

function outcomeOf(result, error) {
  if (error) return ["error", `the client could not ask the user (${error?.name ?? "Error"}: ${error?.message ?? error})`];
  const action = isObject(result) ? result.action : undefined;
  if (action === "accept") {
    return isObject(result.content) && result.content.approve === true ? ["approved", ""] : ["declined", "the user did not approve"];
  }
  if (action === "decline") return ["declined", "the user declined"];
  if (action === "cancel") return ["cancelled", "the user cancelled"];
  return ["error", "the client's answer to the elicitation is not an elicitation result"];
}

function withoutApprovals(msg) {
  const meta = isObject(msg.params) ? msg.params._meta : undefined;
  if (!isObject(meta) || !(APPROVALS_KEY in meta)) return msg;
  const rest = { ...meta };
  delete rest[APPROVALS_KEY];
  const params = { ...msg.params };
  if (Object.keys(rest).length) params._meta = rest;
  else delete params._meta;
  return { ...msg, params };
}

/**
 * The guard installed on one SDK server. `identity`: the caller ({role, agentAttributes?,
 * principal?}) or a function of the request's info ({authInfo, requestInfo, sessionId}),
 * sync or async, returning one (null or a throw: the call is denied, the listing empty);
 * `resolver(tool, args)`: the resource attributes of a call (sync or async); `elevation`:
 * {maxApprovals: 1, timeoutMs: 300000}; `durable`: with an audit trail, a call runs only once
 * its decision is written (audit.flush()).
 */
export class Guard {
  constructor(server, engine, options = {}) {
    if (!options || options.identity === undefined) throw new TypeError("guard() needs an identity: {role, agentAttributes?} or a function of the request");
    this.server = server?.server ?? server; // McpServer holds the low-level Server
    this.gate = new Gate(engine, { resolver: options.resolver });
    this.identity = options.identity;
    this.elevation = { maxApprovals: 1, timeoutMs: 300000, ...(options.elevation ?? {}) };
    this.durable = Boolean(options.durable);
    this.log = options.log ?? null; // (event) => void: each verdict, for the host's own logs
  }

  /** The caller's identity for a request, or null. */
  async who(info) {
    try {
      const found = typeof this.identity === "function" ? await this.identity(info) : this.identity;
      return isObject(found) && typeof found.role === "string" ? found : null;
    } catch {
      return null;
    }
  }

  /** A transport whose messages pass through the gate (what the server is connected to). */
  wrap(transport) {
    const guard = this;
    const listings = new Map(); // id of a tools/list request -> its info
    let deliver = null;
    const info = (extra) => ({ authInfo: extra?.authInfo, requestInfo: extra?.requestInfo, sessionId: transport.sessionId });
    const incoming = (msg, extra) => {
      // a tools/call without an id (a notification) has no answer to carry a decision: it is
      // dropped rather than handed to the SDK undecided
      if (isObject(msg) && msg.method === "tools/call" && msg.id === undefined) return;
      if (isObject(msg) && typeof msg.method === "string" && msg.id !== undefined) {
        if (msg.method === "tools/list") listings.set(msg.id, info(extra));
        else if (msg.method === "tools/call") {
          guard.#call(msg, extra, info(extra), (m) => deliver?.(m, extra), (m) => transport.send(m, { relatedRequestId: msg.id }))
            .catch((e) => transport.send({ jsonrpc: "2.0", id: msg.id, result: denialResult(`internal error while deciding (${e?.message ?? e})`) }));
          return;
        }
      }
      deliver?.(msg, extra);
    };
    const send = async (msg, options) => {
      if (isObject(msg) && msg.id !== undefined && listings.has(msg.id) && !("method" in msg)) {
        const req = listings.get(msg.id);
        listings.delete(msg.id);
        if (isObject(msg.result) && Array.isArray(msg.result.tools)) {
          const who = await guard.who(req);
          const tools = who ? guard.gate.filterTools(msg.result.tools, who.role) : [];
          msg = { ...msg, result: { ...msg.result, tools } };
        }
      }
      return transport.send(msg, options);
    };
    return new Proxy(transport, {
      get(target, prop) {
        if (prop === "send") return send;
        if (prop === "onmessage") return deliver ?? undefined;
        const value = Reflect.get(target, prop, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
      set(target, prop, value) {
        if (prop === "onmessage") {
          deliver = value;
          target.onmessage = value ? incoming : value;
          return true;
        }
        return Reflect.set(target, prop, value, target);
      },
    });
  }

  async #call(msg, extra, req, forward, answer) {
    const who = await this.who(req);
    const reply = (reason) => answer({ jsonrpc: "2.0", id: msg.id, result: denialResult(reason, msg.params) });
    if (who === null) return reply("the server could not establish who is calling");
    const v = await this.gate.decide(msg.params, who);
    this.log?.({ tool: v.tool, role: who.role, decision: v.decision, reason: v.reason });
    if (v.allowed) {
      if (this.durable && this.gate.engine.audit) {
        try {
          await this.gate.engine.audit.flush();
        } catch (e) {
          return reply(`the audit trail could not make the decision durable (${e?.message ?? e}); denied (durable)`);
        }
      }
      return forward(withoutApprovals(msg));
    }
    if (v.decision !== "Elevate") return reply(v.reason);
    const reason = await this.#elevate(v, who, msg);
    if (reason !== null) return reply(reason);
    return forward(withoutApprovals(msg));
  }

  // null when the user approved (the call runs), else the reason it does not
  async #elevate(v, who, msg) {
    const n = v.approvalsRequired;
    const meta = isObject(msg.params?._meta) ? msg.params._meta : {};
    const modern = typeof meta[MODERN_VERSION_KEY] === "string" && meta[MODERN_VERSION_KEY] >= MODERN_SINCE;
    let refused = null;
    if (v.approvalsGiven) refused = ["insufficient", ""];
    else if (n > this.elevation.maxApprovals) {
      const most = this.elevation.maxApprovals;
      refused = ["unsupported", most ? `${n} approval${n !== 1 ? "s" : ""} cannot come from one user's confirmation (an elicitation gives at most ${most})`
        : "the proxy does not ask the user for approval (elicitation is off)"];
    } else if (modern) refused = ["unsupported", "the proxy cannot ask the user on a request of the 2026 protocol (no elicitation)"];
    else if (!canElicit(this.server.getClientCapabilities?.())) {
      refused = ["unsupported", "the client cannot ask the user (it did not declare the elicitation capability)"];
    }
    if (refused !== null) {
      const method = v.approvalsGiven ? "tokens" : refused[0] === "unsupported" ? "none" : "elicitation";
      return this.#denial(v, who, refused[0], refused[1], method);
    }
    let result, error;
    try {
      result = await this.server.elicitInput(elicitationParams(v), { relatedRequestId: msg.id, timeout: this.elevation.timeoutMs });
    } catch (e) {
      error = e;
    }
    let [outcome, why] = outcomeOf(result, error);
    if (error && /timed out/i.test(String(error?.message))) [outcome, why] = ["timeout", `no answer within ${this.elevation.timeoutMs / 1000} s`];
    if (outcome === "approved") {
      const by = who.principal ? ` (${who.principal})` : "";
      if (this.#record(v, who, "elicitation", outcome, `${v.reason}; approved by the user of the client session${by} (elicitation)`)) return null;
      [outcome, why] = ["error", "the audit trail could not record the approval"];
    }
    return this.#denial(v, who, outcome, why, "elicitation");
  }

  #denial(v, who, outcome, why, method) {
    const reason = elevateReason(v, why || null);
    this.#record(v, who, method, outcome, reason);
    return reason;
  }

  #record(v, who, method, outcome, reason) {
    const audit = this.gate.engine.audit;
    if (!audit) return true;
    const approval = { method, outcome, required: v.approvalsRequired };
    if (outcome === "approved") approval.approved_by = who.principal ? [who.principal] : [];
    return audit.recordApproval({
      tool: v.tool, args: v.args, role: who.role, principal: who.principal ?? null,
      agentAttributes: { ...(who.agentAttributes ?? {}) }, resourceAttributes: { ...v.resource },
      traceId: v.traceId, decision: outcome === "approved" ? "Allow" : "Deny", reason, rule: v.rule,
      approvalsRequired: v.approvalsRequired, approval,
    });
  }
}

/**
 * Install callgate's gate on an MCP server of the official TypeScript SDK (an McpServer or a
 * low-level Server), before it connects: every transport it connects to is guarded.
 * @param {any} server
 * @param {import("./callgate.mjs").Callgate} engine
 * @param {{identity: object | ((info: object) => object | Promise<object>), resolver?: Function,
 *          elevation?: {maxApprovals?: number, timeoutMs?: number}, durable?: boolean, log?: Function}} options
 * @returns {Guard}
 */
export function guard(server, engine, options) {
  const low = server?.server ?? server;
  if (!low || typeof low.connect !== "function") throw new TypeError("guard() needs an MCP SDK server (McpServer or Server)");
  if (low.transport) throw new TypeError("guard() must be installed before the server connects");
  if (!engine || typeof engine.evaluate !== "function" || typeof engine.visible !== "function") throw new TypeError("guard() needs a Callgate engine (await Callgate.load(policy))");
  const g = new Guard(server, engine, options);
  const connect = low.connect.bind(low);
  low.connect = (transport) => connect(g.wrap(transport));
  return g;
}
