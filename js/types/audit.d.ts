// Types of callgate's audit trail ("callgate/audit").
import type { AuditTrail, Callgate, Decision, RequestError } from "./engine.js";

/** One record as the trail writes it (docs/audit.md, "Events"): snake_case, as the Python trail. */
export interface AuditEvent {
  kind: "decision" | "error" | "approval" | "gap" | "writer";
  id: string;
  timestamp: string;
  trace_id?: string;
  tool?: string | null;
  args?: unknown;
  args_sha256?: string;
  role?: string | null;
  principal?: string | null;
  agent_attributes?: unknown;
  resource_attributes?: unknown;
  decision?: "Allow" | "Deny" | "Elevate";
  reason?: string;
  rule?: number | null;
  approvals_required?: number;
  approval?: { method: string; outcome: string; required: number; approved_by?: string[] };
  context?: unknown;
  policy_version?: string | null;
  policy_digest?: string | null;
  engine_version?: string;
  risk_score?: number;
  extras?: Record<string, unknown>;
  masked?: string[];
  error_code?: string;
  args_raw?: string;
  lost?: number;
  state?: "start" | "stop";
  writer?: { host: string; pid: number };
  torn?: { offset: number; length: number; sha256: string };
  chain: string;
  seq: number;
  /** Set for functionTransport's events: the record's hash, hex. */
  hash?: string;
}

/** A sealed record: its canonical JSON body and hash. */
export interface SealedRecord {
  chain: string;
  seq: number;
  body: string;
  hash: Uint8Array;
  event: AuditEvent;
}

/** Where sealed records go. */
export interface Transport {
  name: string;
  /** The chain id when the Audit is given none. */
  defaultChain: string | (() => string | Promise<string>);
  /** Whether the writer puts start and stop markers into the chain (logs verify reads). */
  writerMarkers: boolean;
  /** {seq, hash} of the chain's last record, or null for a new chain. */
  open(chain: string): Promise<{ seq: number; hash: Uint8Array } | null>;
  /** Write one batch: its envelope lines (newline-terminated) and the records. */
  write(lines: string, records: SealedRecord[]): Promise<void>;
  close(): Promise<void>;
  startDetails?(): Record<string, unknown>;
  writer?(): { host: string; pid: number } | Promise<{ host: string; pid: number }>;
}

export interface AuditOptions {
  /** The chain id (default: the transport's). */
  chain?: string;
  /** JSON pointers into the event replaced by "***" before hashing ("/args/card_number"). */
  masks?: string[];
  /** Replace args by args_sha256. */
  hashArgs?: boolean;
  batchSize?: number;
  maxQueue?: number;
  flushIntervalMs?: number;
  /** "retry" (default): records stay queued and are retried; "deny": decisions are denied while the transport fails. */
  onFailure?: "retry" | "deny";
  /** Node: close the trail when the process is about to exit (default true). */
  closeOnExit?: boolean;
}

export interface ApprovalFields {
  tool?: string;
  args?: unknown;
  role?: string;
  principal?: string | null;
  agentAttributes?: unknown;
  resourceAttributes?: unknown;
  traceId?: string;
  decision: "Allow" | "Deny";
  reason: string;
  rule?: number | null;
  approvalsRequired?: number;
  approval: { method: string; outcome: string; required: number; approved_by?: string[] };
  extras?: Record<string, unknown>;
}

export declare class Audit implements AuditTrail {
  constructor(transport: Transport, options?: AuditOptions);
  readonly transport: Transport;
  attach(engine: Callgate): void;
  refusal(): string | null;
  record(decision: Decision, call: object): boolean;
  recordError(error: RequestError, call: object): boolean;
  /** What followed an Elevate; false when it could not be queued. */
  recordApproval(fields: ApprovalFields): boolean;
  /** Resolves once everything queued so far is written. */
  flush(timeoutMs?: number): Promise<void>;
  /** Write everything and the stop marker; close the transport. */
  close(timeoutMs?: number): Promise<void>;
  readonly stats: { queued: number; written: number; failing: string | null };
}

export declare const MASK: string;
export declare const GENESIS: Uint8Array;
export declare function consoleTransport(options?: { write?: (text: string) => void }): Transport;
export declare function httpTransport(url: string, options?: {
  headers?: Record<string, string>; retries?: number; backoffMs?: number; fetch?: typeof fetch;
}): Transport;
export declare function functionTransport(fn: (event: AuditEvent) => void | Promise<void>): Transport;
export declare function memoryTransport(): Transport & { lines: string[] };
export declare function sha256(data: Uint8Array | string): Uint8Array;
export declare function hex(bytes: Uint8Array): string;
export declare function link(prev: Uint8Array, body: Uint8Array | string): Uint8Array;
export declare function canonical(value: unknown): string;
export declare function envelope(body: string, hash: Uint8Array): string;
export declare function uuid4(): string;
export declare function nowMicros(): number;
export declare function timestamp(micros?: number): string;
export declare function parsePointer(pointer: string): string[];
export declare function principalOf(caller: { principal?: string } | undefined): string | null;
export declare function decisionEvent(decision: Decision, call: object, micros: number): AuditEvent;
export declare function errorEvent(error: RequestError, call: object, micros: number): AuditEvent;
export declare function approvalEvent(fields: ApprovalFields, micros: number, state: object | null): AuditEvent;
export declare function writerEvent(state: "start" | "stop", writer: { host: string; pid: number }, details?: object): AuditEvent;
