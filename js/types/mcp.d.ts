// Types of the MCP guard ("callgate/mcp").
import type { Callgate, Decision, DecisionName, JsonObject } from "./engine.js";

export declare const DENIED_PREFIX: string;
export declare const APPROVALS_KEY: string;

/** Who is calling an MCP server: set by the host (its auth), never by the model. */
export interface Identity {
  role: string;
  agentAttributes?: JsonObject;
  principal?: string;
}

/** What the identity function is given: the request's auth info and HTTP request, the session. */
export interface RequestInfo {
  authInfo?: unknown;
  requestInfo?: unknown;
  sessionId?: string;
}

export type IdentitySource = Identity | ((info: RequestInfo) => Identity | null | undefined | Promise<Identity | null | undefined>);
export type Resolver = (tool: string, args: JsonObject) => JsonObject | null | undefined | Promise<JsonObject | null | undefined>;

export interface GuardOptions {
  identity: IdentitySource;
  resolver?: Resolver;
  /** maxApprovals: the most approvals one user's elicitation may give (default 1; 0: never ask); timeoutMs: 300000. */
  elevation?: { maxApprovals?: number; timeoutMs?: number };
  /** With an audit trail: run a call only once its decision is written. */
  durable?: boolean;
  /** Called with each verdict. */
  log?: (entry: { tool: string | null; role: string; decision: DecisionName; reason: string }) => void;
}

export declare class Verdict {
  readonly decision: DecisionName;
  readonly reason: string;
  readonly allowed: boolean;
  readonly rule: number | null;
  readonly approvalsRequired: number;
  readonly tool: string | null;
  readonly args: JsonObject | null;
  readonly resource: JsonObject;
  readonly traceId: string | null;
  readonly approvalsGiven: boolean;
}

export declare class Gate {
  constructor(engine: Callgate, options?: { resolver?: Resolver });
  readonly engine: Callgate;
  visible(tool: string, role: string): boolean;
  filterTools<T extends { name: string }>(tools: T[], role: string): T[];
  decide(params: unknown, identity: Identity): Verdict | Promise<Verdict>;
  check(params: unknown, identity: Identity): Promise<string | null>;
}

/** Anything the SDK's Server (or McpServer, through .server) offers the guard. */
export interface GuardableServer {
  connect(transport: any): Promise<void>;
}

export declare class Guard {
  constructor(server: unknown, engine: Callgate, options: GuardOptions);
  readonly gate: Gate;
  who(info: RequestInfo): Promise<Identity | null>;
  wrap<T extends object>(transport: T): T;
}

/** Install the gate on an MCP SDK server (McpServer or Server) before it connects. */
export declare function guard(server: GuardableServer | { server: GuardableServer }, engine: Callgate, options: GuardOptions): Guard;
export declare function denialResult(reason: string, params?: unknown): { content: { type: "text"; text: string }[]; isError: true; resultType?: "complete" };
export declare function approvalsIn(params: unknown): [string[] | null, string | null];
export declare function elevateReason(verdict: Verdict, why: string | null): string;
export declare function elicitationParams(verdict: Verdict, protocol?: string): {
  message: string; requestedSchema: object; mode?: "form";
};
