// Types of callgate's engine (lib/callgate.mjs): the npm package "callgate" and "callgate/engine".

/** The version of the engine (engine_version in audit events). */
export declare const VERSION: string;

export type DecisionName = "Allow" | "Deny" | "Elevate";
/** Bytes: a Uint8Array (a Node Buffer is one), an ArrayBuffer or any typed array view. */
export type Bytes = Uint8Array | ArrayBuffer | ArrayBufferView;
/** Bytes, or where to read them: a file path (Node) or a URL. */
export type Source = Bytes | string | URL;
/** A JSON object (what arguments, attributes and the context are). */
export type JsonObject = { [key: string]: unknown };

/** JSON text decided as it is (see rawJson). */
export interface RawJson {
  readonly text: string;
}

/** Who is calling, and with what: the identity comes from the host, never from the model. */
export interface Caller {
  /** The role the policy knows. */
  role: string;
  /** The agent's attributes ("AgentAttributes" in conditions). */
  agentAttributes?: JsonObject | RawJson;
  /** The resource's attributes ("ResourceAttributes"): what a resolver looked up. */
  resourceAttributes?: JsonObject | RawJson;
  /** The host's context ("Context"): time, risk, ... */
  context?: JsonObject | RawJson;
  /** Who, for the audit trail (e.g. "user:alice"). */
  principal?: string;
  /** A trace id for the audit trail (default: the event id). */
  traceId?: string;
  /** More for the audit trail: risk_score is lifted to the top of the event. */
  extras?: JsonObject;
}

export declare class CallgateError extends Error {
  constructor(message: string, code?: string, offset?: number);
  /** The cause, in the core's words ("duplicate_key", "blob_checksum", ...). */
  code: string;
  /** A byte offset, when known. */
  offset: number | undefined;
}
export declare class RequestError extends CallgateError {
  constructor(message: string, code?: string, offset?: number, input?: string);
  /** Which text `offset` counts in: "request", "arguments" or "context". */
  input: string | undefined;
}
export declare class PolicyError extends CallgateError {
  constructor(message: string, location?: string, code?: string, offset?: number);
  /** Where the problem is: "(blob)", "(policy)". */
  location: string;
}
export declare class BlobError extends PolicyError {
  constructor(message: string, code?: string, offset?: number);
}
export declare class WasmError extends CallgateError {
  constructor(message: string, code?: string);
}

/** One decision. */
export declare class Decision {
  readonly decision: DecisionName;
  /** The deciding rule's index from 0; null when a default decided. */
  readonly rule: number | null;
  /** The approvals an Elevate requires (1-3); 0 otherwise. */
  readonly approvalsRequired: number;
  /** True only for Allow. */
  readonly allowed: boolean;
  /** The deciding rule's id, when it has one. */
  readonly ruleId: string | null;
  /** Why, exactly as the Python engine says it; built when first read. */
  readonly reason: string;
  /** The request text the core read. */
  readonly request: string | null;
  toJSON(): { decision: DecisionName; reason: string; rule: number | null; approvalsRequired: number };
}

/** What a compiled policy says beyond decisions. */
export declare class PolicyInfo {
  constructor(blob: Uint8Array);
  readonly format: number;
  readonly flags: number;
  readonly version: string;
  readonly semantics: "strict" | "perso";
  readonly defaultAction: "Allow" | "Deny";
  readonly ruleIds: (string | null)[];
  readonly tools: string[];
  readonly roles: string[];
  tierOf(tool: string): string | null;
  /** Could `role` ever be allowed to call `tool`? (what a tools/list shows a role) */
  visible(tool: string, role: string): boolean;
}

/** Anything with the audit trail's recorder interface (callgate/audit's Audit). */
export interface AuditTrail {
  attach(engine: Callgate): void;
  refusal(): string | null;
  record(decision: Decision, call: object): boolean;
  recordError(error: RequestError, call: object): boolean;
  recordApproval(fields: object): boolean;
  flush(timeoutMs?: number): Promise<void>;
  close(timeoutMs?: number): Promise<void>;
}

export interface LoadOptions {
  /** A callgate.wasm to use instead of the one in the package (bytes, a path/URL, or compiled). */
  module?: Source | WebAssembly.Module;
  /** Record every decision (new Audit(transport) from "callgate/audit"). */
  audit?: AuditTrail;
}

export declare class Callgate {
  /**
   * Load a compiled policy (`callgate compile POLICY -o BLOB`) into the package's wasm module,
   * or a module made by `callgate build-wasm` (its policy embedded); bytes, a file path (Node)
   * or a URL. `Callgate.load(wasmBytes, blobBytes)` loads a given callgate.wasm with a blob.
   */
  static load(policy: Source, options?: LoadOptions): Promise<Callgate>;
  static load(module: Bytes, blob: Bytes): Promise<Callgate>;
  readonly abiVersion: number;
  /** The compiled policy in force. */
  readonly blob: Uint8Array;
  readonly policy: PolicyInfo;
  readonly policyVersion: string;
  readonly audit: AuditTrail | null;
  visible(tool: string, role: string): boolean;
  /** Replace the policy atomically (a refused blob leaves the old one in force: BlobError). */
  reload(policy: Source): Promise<void>;
  /** Decide one call. Throws RequestError for a request the core refuses. */
  evaluate(tool: string, args: JsonObject | RawJson | undefined | null, caller: Caller): Decision;
  /** The perso ABI's evaluate: arguments and {"role", "agent_attrs", "resource_attrs", "context"?} as JSON text. */
  evaluateJson(tool: string, argsJson: string, contextJson: string): {
    decision: DecisionName; reason: string; rule: number | null; approvals_required?: number;
  };
}

/** JSON text decided byte for byte (a number keeps its form: 800.0, -0.0). */
export declare function rawJson(text: string): RawJson;
/** The request text the core reads for a call. */
export declare function requestText(tool: string, args: JsonObject | RawJson | undefined | null, caller: Caller): string;
/** "module" for wasm bytes, "blob" for a compiled policy, else null. */
export declare function kindOf(bytes: Uint8Array): "module" | "blob" | null;
/** A decision the host made itself (its reason given). */
export declare function hostDecision(decision: DecisionName, reason: string): Decision;
